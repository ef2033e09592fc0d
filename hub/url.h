// URLs as the hub client needs them: parsing http(s) URLs, resolving a redirect's Location
// against the URL it answered, and percent-encoding path parts the way huggingface_hub's
// quote() does. No I/O here.
#pragma once

#include "ir/support/expected.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace bitnet::hub {

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // as written, lower-cased; IPv6 literals without brackets
  uint16_t port = 0;   // the scheme's default when the URL names none
  std::string target;  // path and query, starting with '/'

  bool is_https() const { return scheme == "https"; }
  // "host" or "host:port" when the port is not the scheme's default (the Host header's form).
  std::string authority() const;
  std::string str() const;
};

// Only http:// and https:// URLs with a host; user info ("user@") and fragments are refused
// or dropped (a fragment never reaches the server).
Expected<Url> parse_url(std::string_view text);

// Resolves a redirect's Location (absolute "https://h/p", scheme-relative "//h/p", absolute-path
// "/p", or relative "p") against `base` (RFC 9110 7.1.2 / RFC 3986 5.2, without dot-segment
// removal: the hub sends absolute paths).
Expected<Url> resolve_location(const Url& base, std::string_view location);

// Percent-encodes every byte except unreserved characters (A-Z a-z 0-9 - . _ ~) and those in
// `safe`: Python's urllib.parse.quote(text, safe=...), which the hub client uses with safe="/"
// for file names and safe="" for revisions.
std::string percent_encode(std::string_view text, std::string_view safe);

// True when both URLs reach the same server (scheme, host and port): the Authorization header
// is only ever sent back to the host it was meant for.
bool same_origin(const Url& a, const Url& b);

}  // namespace bitnet::hub
