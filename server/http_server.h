// The HTTP/1.1 layer of `bitnet serve`, on Boost.Beast/Asio: one I/O thread runs every
// connection asynchronously (no connection holds a thread while it waits), parses requests with
// Beast's parser under size and time limits, and hands each request with its Reply to a handler.
// Boost stays out of this header: the rest of the server never sees it.
#pragma once

#include "bitnet/result.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bitnet::server {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target up to '?'
  std::string query;   // after '?', "" when none
  std::string body;
  Headers headers;                                             // names lower-cased
  std::string header(std::string_view lower_case_name) const;  // "" when absent
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  Headers headers;  // extra headers
};

// The answer channel of one request. Every method must be called on the I/O thread (a handler
// runs there; other threads hand work over with post()).
class Reply {
 public:
  virtual ~Reply() = default;
  virtual void send(HttpResponse response) = 0;  // the whole response, once
  // A streamed response (chunked transfer encoding): the header now, then write() pieces, then
  // end(). The connection closes after it.
  virtual void start_stream(int status, std::string content_type, Headers headers = {}) = 0;
  virtual void write(std::string data) = 0;
  virtual void end() = 0;
  // The client closed the connection or stopped reading past the timeout: nothing written
  // reaches it any more. `callback` runs once, when that is first seen (at once if already so).
  virtual bool client_gone() const = 0;
  virtual void on_client_gone(std::function<void()> callback) = 0;
  // Runs `task` on the I/O thread (from any thread), if the server still runs.
  virtual void post(std::function<void()> task) = 0;
};

using Handler = std::function<void(HttpRequest request, std::shared_ptr<Reply> reply)>;

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                     // 0: any free port (port() says which)
  size_t max_body_bytes = 1 << 20;     // larger bodies get 413
  size_t max_header_bytes = 16 << 10;  // larger headers get 431
  int max_connections = 256;           // more are answered 503 and closed
  double timeout_s = 600;              // a request must arrive, and each write complete, within this
};

class HttpServer {
 public:
  // Binds and listens (errors: address in use, bad host); run() serves.
  static Result<std::unique_ptr<HttpServer>> create(const HttpOptions& options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  std::string address() const;  // "host:port" as bound
  // Serves on this thread until stop().
  void run();
  // Thread-safe: close the listening socket (connections already open go on).
  void stop_accepting();
  // Thread-safe: end run(); open connections are dropped, with whatever they had still to write.
  void stop();
  // Thread-safe: runs `task` on the I/O thread.
  void post(std::function<void()> task);
  // Requests whose header has arrived and whose response is not yet all written to the socket
  // (a graceful stop waits for these: a request that is done is not yet delivered). I/O thread,
  // or approximate.
  int responses_in_progress() const;

  struct Impl;  // opaque (public so that the connections in the .cpp can name it)

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "Bad Request" for 400, ... ("" for an unknown status).
std::string_view status_reason(int status);

}  // namespace bitnet::server
