// One HTTP/1.1 request over a fresh connection (plain TCP, or TLS with the system's trusted
// certificates and host-name checking), with timeouts. Redirects are not followed: the hub
// client decides which to follow and where the token may go. Boost.Beast/Asio and OpenSSL stay
// inside http_client.cpp; this header is all the rest of the code sees.
#pragma once

#include "hub/url.h"
#include "ir/support/expected.h"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bitnet::hub {

// Header fields in the order received; names compare case-insensitively.
struct HttpHeaders {
  std::vector<std::pair<std::string, std::string>> fields;
  // The first field named `name`, or "" when there is none.
  std::string get(std::string_view name) const;
  bool has(std::string_view name) const;
  void set(std::string name, std::string value);  // replaces every field of that name
  void remove(std::string_view name);
};

struct HttpRequest {
  std::string method = "GET";  // GET or HEAD
  Url url;
  HttpHeaders headers;  // Host, User-Agent and Connection are added
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;
  std::string body;            // the body when no sink took it (error pages, API JSON)
  uint64_t body_bytes = 0;     // bytes of body received (given to the sink or kept)
  bool complete = true;        // false: the connection broke or stalled mid-body
  std::string broken_because;  // why, when !complete
};

// Receives a 2xx response's body as it arrives. `start` (optional) sees the status and headers
// first; an error from either stops the transfer and is returned.
struct BodySink {
  std::function<Status(int status, const HttpHeaders& headers)> start;
  std::function<Status(std::span<const char> chunk)> write;
  explicit operator bool() const { return static_cast<bool>(write); }
};

struct HttpOptions {
  double connect_timeout_s = 15;      // name resolution, TCP connect and the TLS handshake
  double read_timeout_s = 60;         // the longest wait for any bytes once connected
  uint64_t max_kept_body = 64 << 20;  // a body kept in memory larger than this is an error
};

// Sends `request` and reads the response. An Error means no response arrived (name resolution,
// connection, TLS or timeout before the status line); a response whose body broke off has
// complete == false. With a sink, a 2xx body goes to the sink instead of `body`.
Expected<HttpResponse> http_send(const HttpRequest& request, const BodySink& sink = {},
                                 const HttpOptions& options = {});

}  // namespace bitnet::hub
