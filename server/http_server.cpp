// HTTP/1.1 over Boost.Beast (parsing) and Asio (sockets, timers), all on one I/O thread.
//
// Why Beast: it is Boost's maintained HTTP parser, shipped and security-patched by Debian with
// the rest of Boost, and its asynchronous model lets one thread serve every connection. Beast
// parses requests (the part where HTTP servers get request smuggling wrong); responses are
// written by hand as plain HTTP/1.1 text because they are few and simple.
#include "server/http_server.h"

#include <fmt/format.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <optional>

namespace bitnet::server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

std::string response_text(const HttpResponse& r, bool keep_alive) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", r.status, status_reason(r.status));
  if (!r.content_type.empty()) out += fmt::format("Content-Type: {}\r\n", r.content_type);
  out += fmt::format("Content-Length: {}\r\n", r.body.size());
  for (const auto& [name, value] : r.headers) out += fmt::format("{}: {}\r\n", name, value);
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  out += r.body;
  return out;
}

std::string error_text(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = fmt::format(R"({{"error":{{"message":"{}","type":"{}","code":{},"param":null}}}})", message,
                       status == 503 ? "unavailable_error" : "invalid_request_error", status);
  if (status == 503) r.headers.emplace_back("Retry-After", "1");
  return response_text(r, false);
}

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "";
}

std::string_view status_reason(int status) {
  const auto reason = http::obsolete_reason(static_cast<http::status>(status));
  return {reason.data(), reason.size()};
}

struct HttpServer::Impl {
  HttpOptions options;
  Handler handler;
  // Before `io`: the handlers io's destructor drops hold connections that count themselves here.
  std::atomic<int> connections{0};
  std::atomic<int> responding{0};  // see responses_in_progress()
  net::io_context io{1};
  // run() returns on stop() only, not when the listening socket is closed and nothing is left.
  net::executor_work_guard<net::io_context::executor_type> work = net::make_work_guard(io);
  tcp::acceptor acceptor{io};
  int bound_port = 0;
  std::string bound_address;

  void accept();
};

namespace {

// One client connection: reads requests one after another (keep-alive), hands each to the
// handler, and writes what the handler's Reply gets, in order.
class Connection : public Reply, public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server), timer_(stream_.get_executor()) {
    ++server_.connections;
  }
  ~Connection() override {
    response_delivered();
    --server_.connections;
  }

  void start() { read_header(); }

  // ---- Reply ----
  void send(HttpResponse response) override {
    if (state_ != State::kHandling) return;
    state_ = State::kResponded;
    queue(response_text(response, keep_alive_));
  }
  void start_stream(int status, std::string content_type, Headers headers) override {
    if (state_ != State::kHandling) return;
    state_ = State::kStreaming;
    keep_alive_ = false;
    std::string head = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nCache-Control: no-cache\r\n", status,
                                   status_reason(status), content_type);
    for (const auto& [name, value] : headers) head += fmt::format("{}: {}\r\n", name, value);
    head += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    queue(std::move(head));
  }
  void write(std::string data) override {
    if (state_ != State::kStreaming || data.empty()) return;
    queue(fmt::format("{:x}\r\n", data.size()) + data + "\r\n");
  }
  void end() override {
    if (state_ != State::kStreaming) return;
    state_ = State::kResponded;
    queue("0\r\n\r\n");
  }
  bool client_gone() const override { return gone_; }
  void on_client_gone(std::function<void()> callback) override {
    if (gone_) {
      callback();
      return;
    }
    on_gone_ = std::move(callback);
  }
  void post(std::function<void()> task) override {
    net::post(server_.io, [self = shared_from_this(), task = std::move(task)] { task(); });
  }

 private:
  enum class State { kReading, kHandling, kStreaming, kResponded };

  // Between requests: wait (under the timeout) for the first byte of the next one, or for the
  // client's close, so that a graceful stop knows when a request has begun arriving.
  void read_header() {
    state_ = State::kReading;
    if (buffer_.size() > 0) return read_request();  // a pipelined request is here already
    timer_.expires_after(seconds(server_.options.timeout_s));
    timer_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->close();
    });
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      self->timer_.cancel();
      if (ec) return self->close();
      self->read_request();
    });
  }

  void read_request() {
    response_owed();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_.options.max_header_bytes));
    parser_->body_limit(server_.options.max_body_bytes);
    // The whole request (header and body) must arrive within the timeout: a client that
    // trickles bytes cannot hold the connection longer.
    stream_.expires_after(seconds(server_.options.timeout_s));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return fail_read(ec);
    const auto& req = parser_->get();
    if (req[http::field::expect] == "100-continue") {
      const auto length = parser_->content_length();
      if (length && *length > server_.options.max_body_bytes) return fail_read(http::error::body_limit);
      // curl waits for this before sending a body over 1 KiB.
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue), [self = shared_from_this()](beast::error_code e, size_t) {
        if (e) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_request(ec); });
  }

  void fail_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof) {
      return close();
    }
    int status = 400;
    std::string message = fmt::format("malformed HTTP request: {}", ec.message());
    if (ec == http::error::body_limit) {
      status = 413;
      message = fmt::format("the request body is larger than {} bytes", server_.options.max_body_bytes);
    } else if (ec == http::error::header_limit) {
      status = 431;
      message = fmt::format("the request header is larger than {} bytes", server_.options.max_header_bytes);
    } else if (ec == beast::error::timeout) {
      status = 408;
      message = fmt::format("the request did not arrive within {} s", server_.options.timeout_s);
    }
    // The request was not read whole: answer, then close (the rest of the stream is unknown).
    if (status == 408) {
      // The timer closed the socket already; nothing can be written.
      return close();
    }
    keep_alive_ = false;
    state_ = State::kResponded;
    queue(error_text(status, message));
  }

  void on_request(beast::error_code ec) {
    if (ec) return fail_read(ec);
    stream_.expires_never();  // generation may take long; writes set their own deadline
    http::request<http::string_body> req = parser_->release();
    keep_alive_ = req.keep_alive();
    HttpRequest request;
    request.method = std::string(req.method_string());
    const std::string_view target(req.target().data(), req.target().size());
    const size_t q = target.find('?');
    request.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) request.query = std::string(target.substr(q + 1));
    for (const auto& f : req) {
      request.headers.emplace_back(lower({f.name_string().data(), f.name_string().size()}),
                                   std::string(f.value().data(), f.value().size()));
    }
    request.body = std::move(req.body());
    state_ = State::kHandling;
    watch_for_close();
    server_.handler(std::move(request), shared_from_this());
  }

  // While a request is handled, a readable socket means the client closed it (or sent the next
  // request early, which is then read after the response).
  void watch_for_close() {
    if (watching_) return;
    watching_ = true;
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      self->watching_ = false;
      if (ec == net::error::operation_aborted) return;
      if (self->state_ != State::kHandling && self->state_ != State::kStreaming) return;
      char byte = 0;
      beast::error_code peek_ec;
      self->stream_.socket().non_blocking(true, peek_ec);  // a peek must never wait on the I/O thread
      const size_t n = self->stream_.socket().receive(net::buffer(&byte, 1), tcp::socket::message_peek, peek_ec);
      if (peek_ec == net::error::would_block || peek_ec == net::error::try_again) return self->watch_for_close();
      if (ec || peek_ec || n == 0) self->mark_gone();
      // n > 0: a pipelined request; it waits in the socket until this response is written.
    });
  }

  void mark_gone() {
    if (gone_) return;
    gone_ = true;
    if (auto callback = std::move(on_gone_)) callback();
    close();
  }

  void queue(std::string data) {
    if (gone_) return;
    out_.push_back(std::move(data));
    if (!writing_) write_next();
  }

  void write_next() {
    if (out_.empty()) {
      writing_ = false;
      if (state_ == State::kResponded) {
        response_delivered();
        if (keep_alive_ && !gone_) return read_header();
        return linger_close();
      }
      return;
    }
    writing_ = true;
    // A client that stops reading is dropped after the timeout instead of growing the queue.
    timer_.expires_after(seconds(server_.options.timeout_s));
    timer_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->mark_gone();
    });
    net::async_write(stream_.socket(), net::buffer(out_.front()),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->timer_.cancel();
                       if (ec || self->gone_) return self->mark_gone();
                       self->out_.pop_front();
                       self->write_next();
                     });
  }

  // The response is out and the connection ends: read what the client still sends (a body
  // that was refused) for a moment, so that closing does not reset the connection before the
  // client has read the answer.
  void linger_close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(1));
    drain();
  }
  void drain() {
    stream_.async_read_some(net::buffer(discard_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->close();
      self->drain();
    });
  }

  // A request has begun arriving: from now until its response is written (or the connection
  // ends), a graceful stop waits for this connection.
  void response_owed() {
    if (owed_) return;
    owed_ = true;
    ++server_.responding;
  }
  void response_delivered() {
    if (!owed_) return;
    owed_ = false;
    --server_.responding;
  }

  void close() {
    response_delivered();
    beast::error_code ignored;
    timer_.cancel();
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    if (!gone_ && (state_ == State::kHandling || state_ == State::kStreaming)) {
      gone_ = true;
      if (auto callback = std::move(on_gone_)) callback();
    }
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  State state_ = State::kReading;
  bool keep_alive_ = false;
  bool writing_ = false;
  bool gone_ = false;
  bool watching_ = false;
  bool owed_ = false;
  std::function<void()> on_gone_;
  std::deque<std::string> out_;
  std::array<char, 4096> discard_{};
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      if (connections.load() >= options.max_connections) {
        // Refused cleanly: a 503 the client can read, then the socket closes.
        auto refused = std::make_shared<tcp::socket>(std::move(socket));
        auto text = std::make_shared<std::string>(
            error_text(503, fmt::format("too many connections (at most {})", options.max_connections)));
        net::async_write(*refused, net::buffer(*text), [refused, text](beast::error_code, size_t) {
          beast::error_code ignored;
          refused->shutdown(tcp::socket::shutdown_both, ignored);
          refused->close(ignored);
        });
      } else {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);  // stream chunks go out as produced
        std::make_shared<Connection>(std::move(socket), *this)->start();
      }
    }
    accept();
  });
}

Result<std::unique_ptr<HttpServer>> HttpServer::create(const HttpOptions& options, Handler handler) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->handler = std::move(handler);
  beast::error_code ec;
  const auto address = net::ip::make_address(options.host, ec);
  if (ec) return Error{fmt::format("--host '{}' is not an IP address ({})", options.host, ec.message())};
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(options.port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Error{fmt::format("cannot listen on {}:{}: {}", options.host, options.port, ec.message())};
  const tcp::endpoint bound = impl->acceptor.local_endpoint();
  impl->bound_port = bound.port();
  const std::string host = bound.address().to_string();
  impl->bound_address =
      bound.address().is_v6() ? fmt::format("[{}]:{}", host, bound.port()) : fmt::format("{}:{}", host, bound.port());
  impl->accept();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;

int HttpServer::port() const {
  return impl_->bound_port;
}
std::string HttpServer::address() const {
  return impl_->bound_address;
}
void HttpServer::run() {
  impl_->io.run();
}
void HttpServer::stop_accepting() {
  net::post(impl_->io, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
  });
}
void HttpServer::stop() {
  impl_->io.stop();
}
void HttpServer::post(std::function<void()> task) {
  net::post(impl_->io, std::move(task));
}
int HttpServer::responses_in_progress() const {
  return impl_->responding.load();
}

}  // namespace bitnet::server
