// One HTTP/1.1 exchange over Boost.Beast (the parser `bitnet serve` already uses) and Asio,
// with OpenSSL for https. Written as one C++20 coroutine run on a private io_context, because
// Asio's synchronous calls have no timeouts: every connect, handshake, write and read here is
// bounded by beast::tcp_stream's expiry. Only this file includes Boost or libssl (slow headers).
#include "hub/http_client.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <exception>
#include <optional>

namespace bitnet::hub {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

constexpr auto kTuple = net::as_tuple(net::use_awaitable);

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

std::string describe(const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) return "timed out";
  if (ec == http::error::partial_message || ec == net::error::eof) return "the connection closed mid-body";
  return ec.message();
}

struct Exchange {
  const HttpRequest& request;
  const BodySink& sink;
  const HttpOptions& options;
  HttpResponse response;
  std::optional<Error> error;
  std::string where() const { return request.url.authority(); }
};

template <class Stream>
net::awaitable<void> talk(Stream& stream, Exchange& x) {
  const HttpRequest& rq = x.request;
  auto& lowest = beast::get_lowest_layer(stream);
  http::request<http::empty_body> message{rq.method == "HEAD" ? http::verb::head : http::verb::get, rq.url.target, 11};
  message.set(http::field::host, rq.url.authority());
  message.set(http::field::user_agent, "bitnet-hub/1");
  message.set(http::field::connection, "close");
  for (const auto& [name, value] : rq.headers.fields) message.set(name, value);
  lowest.expires_after(seconds(x.options.read_timeout_s));
  if (auto [ec, n] = co_await http::async_write(stream, message, kTuple); ec) {
    x.error = make_error("cannot send the request to {}: {}", x.where(), describe(ec));
    co_return;
  }

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  parser.skip(rq.method == "HEAD");  // a HEAD response's Content-Length announces no body
  lowest.expires_after(seconds(x.options.read_timeout_s));
  if (auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kTuple); ec) {
    x.error = make_error("no HTTP response from {}: {}", x.where(), describe(ec));
    co_return;
  }
  HttpResponse& out = x.response;
  out.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) out.headers.fields.emplace_back(field.name_string(), field.value());
  const bool to_sink = x.sink && out.status >= 200 && out.status < 300;
  if (to_sink && x.sink.start) {
    if (Status s = x.sink.start(out.status, out.headers); !s.ok()) {
      x.error = s.error();
      co_return;
    }
  }

  std::array<char, 1 << 16> chunk;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    lowest.expires_after(seconds(x.options.read_timeout_s));
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kTuple);
    if (ec == http::error::need_buffer) ec = {};
    const size_t got = chunk.size() - parser.get().body().size;
    if (got > 0) {
      out.body_bytes += got;
      if (to_sink) {
        if (Status s = x.sink.write({chunk.data(), got}); !s.ok()) {
          x.error = s.error();
          co_return;
        }
      } else if (out.body.size() + got > x.options.max_kept_body) {
        x.error = make_error("the response from {} is larger than {} bytes", x.where(), x.options.max_kept_body);
        co_return;
      } else {
        out.body.append(chunk.data(), got);
      }
    }
    if (ec) {
      out.complete = false;
      out.broken_because = describe(ec);
      co_return;
    }
  }
}

net::awaitable<void> exchange(Exchange& x) {
  const Url& url = x.request.url;
  auto executor = co_await net::this_coro::executor;
  tcp::resolver resolver(executor);
  auto [resolve_error, endpoints] = co_await resolver.async_resolve(url.host, std::to_string(url.port), kTuple);
  if (resolve_error) {
    x.error = make_error("cannot resolve {}: {}", url.host, describe(resolve_error));
    co_return;
  }
  beast::tcp_stream tcp_stream(executor);
  tcp_stream.expires_after(seconds(x.options.connect_timeout_s));
  if (auto [ec, endpoint] = co_await tcp_stream.async_connect(endpoints, kTuple); ec) {
    x.error = make_error("cannot connect to {}: {}", x.where(), describe(ec));
    co_return;
  }
  if (!url.is_https()) {
    co_await talk(tcp_stream, x);
    co_return;
  }
  ssl::context context(ssl::context::tls_client);
  context.set_default_verify_paths();  // the system's CAs; SSL_CERT_FILE / SSL_CERT_DIR override
  context.set_verify_mode(ssl::verify_peer);
  beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), context);
  boost::system::error_code ip_check;
  net::ip::make_address(url.host, ip_check);
  const bool host_is_ip = !ip_check;
  if (!host_is_ip) SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str());  // SNI
  stream.set_verify_callback(ssl::host_name_verification(url.host));
  beast::get_lowest_layer(stream).expires_after(seconds(x.options.connect_timeout_s));
  if (auto [ec] = co_await stream.async_handshake(ssl::stream_base::client, kTuple); ec) {
    x.error = make_error("TLS handshake with {} failed: {}", x.where(), describe(ec));
    co_return;
  }
  co_await talk(stream, x);
}

}  // namespace

std::string HttpHeaders::get(std::string_view name) const {
  for (const auto& [n, v] : fields) {
    if (iequals(n, name)) return v;
  }
  return "";
}

bool HttpHeaders::has(std::string_view name) const {
  return std::any_of(fields.begin(), fields.end(), [&](const auto& f) { return iequals(f.first, name); });
}

void HttpHeaders::set(std::string name, std::string value) {
  remove(name);
  fields.emplace_back(std::move(name), std::move(value));
}

void HttpHeaders::remove(std::string_view name) {
  std::erase_if(fields, [&](const auto& f) { return iequals(f.first, name); });
}

Expected<HttpResponse> http_send(const HttpRequest& request, const BodySink& sink, const HttpOptions& options) {
  if (request.method != "GET" && request.method != "HEAD") return make_error("unsupported method {}", request.method);
  // A header value from the user or the environment (a token) must not smuggle in more lines.
  for (const auto& [name, value] : request.headers.fields) {
    if (std::any_of(value.begin(), value.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
      return make_error("the {} header would contain a control character (a token with a line break?)", name);
    }
  }
  Exchange x{request, sink, options, {}, std::nullopt};
  std::exception_ptr failure;
  try {
    net::io_context io;
    net::co_spawn(io, exchange(x), [&failure](std::exception_ptr e) { failure = e; });
    io.run();
    if (failure) std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    return make_error("HTTP request to {} failed: {}", request.url.authority(), e.what());
  }
  if (x.error) return *x.error;
  return std::move(x.response);
}

}  // namespace bitnet::hub
