// URL parsing and resolution for the hub client (see url.h).
#include "hub/url.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace bitnet::hub {
namespace {

uint16_t default_port(std::string_view scheme) {
  return scheme == "https" ? 443 : 80;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// "host", "host:port", "[v6]" or "[v6]:port" -> host and port.
Status parse_authority(std::string_view text, std::string_view scheme, Url& url) {
  if (text.find('@') != std::string_view::npos) return make_error("URLs with user info are not supported");
  std::string_view host = text;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return make_error("unterminated IPv6 address");
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return make_error("bad text after the IPv6 address");
      port = rest.substr(1);
    }
  } else if (const size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) return make_error("no host");
  for (unsigned char c : host) {
    if (!(std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':' || c == '%')) {
      return make_error("bad character in the host name");
    }
  }
  url.host = lower(host);
  url.port = default_port(scheme);
  if (!port.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return make_error("bad port '{}'", port);
    }
    url.port = static_cast<uint16_t>(value);
  }
  return Status::success();
}

}  // namespace

std::string Url::authority() const {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port == default_port(scheme) ? h : h + ":" + std::to_string(port);
}

std::string Url::str() const {
  return scheme + "://" + authority() + target;
}

Expected<Url> parse_url(std::string_view text) {
  auto bad = [&](std::string_view why) { return make_error("bad URL '{}': {}", text, why); };
  const size_t sep = text.find("://");
  if (sep == std::string_view::npos) return bad("expected http://HOST/... or https://HOST/...");
  Url url;
  url.scheme = lower(text.substr(0, sep));
  if (url.scheme != "http" && url.scheme != "https") return bad("only http and https are supported");
  std::string_view rest = text.substr(sep + 3);
  if (const size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  const size_t path_at = std::min(rest.find_first_of("/?"), rest.size());
  if (auto s = parse_authority(rest.substr(0, path_at), url.scheme, url); !s.ok()) return bad(s.error().message);
  url.target = std::string(rest.substr(path_at));
  if (url.target.empty() || url.target.front() == '?') url.target.insert(0, "/");
  for (unsigned char c : url.target) {
    if (c <= 0x20 || c >= 0x7f) return bad("unencoded space or control character in the path");
  }
  return url;
}

Expected<Url> resolve_location(const Url& base, std::string_view location) {
  if (location.empty()) return make_error("empty Location header");
  if (location.find("://") != std::string_view::npos) return parse_url(location);
  if (location.substr(0, 2) == "//") return parse_url(base.scheme + ":" + std::string(location));
  std::string target;
  if (location.front() == '/') {
    target = location;
  } else {
    // Relative to the base path's directory (query dropped).
    const std::string path = base.target.substr(0, base.target.find('?'));
    target = std::string(path.substr(0, path.rfind('/') + 1)) + std::string(location);
  }
  return parse_url(base.scheme + "://" + base.authority() + target);
}

std::string percent_encode(std::string_view text, std::string_view safe) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (is_unreserved(c) || safe.find(static_cast<char>(c)) != std::string_view::npos) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

bool same_origin(const Url& a, const Url& b) {
  return a.scheme == b.scheme && a.host == b.host && a.port == b.port;
}

}  // namespace bitnet::hub
