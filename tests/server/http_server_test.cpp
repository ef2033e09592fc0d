// HttpServer seen from a raw socket: what a graceful stop of `bitnet serve` waits for
// (responses_in_progress). A request counts from its first byte until its last response byte is
// written to the socket; an idle keep-alive connection counts for nothing.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <string_view>
#include <thread>

namespace bitnet::server {
namespace {

using namespace std::chrono_literals;

// An HttpServer on a port of its own, served by a thread of its own.
class ServerThread {
 public:
  explicit ServerThread(Handler handler) {
    HttpOptions options;
    options.port = 0;
    auto created = HttpServer::create(options, std::move(handler));
    EXPECT_TRUE(created.ok()) << created.error().message;
    server_ = std::move(*created);
    thread_ = std::thread([this] { server_->run(); });
  }
  ~ServerThread() {
    server_->stop();
    thread_.join();
  }
  int port() const { return server_->port(); }
  int in_progress() {
    std::promise<int> count;
    server_->post([&] { count.set_value(server_->responses_in_progress()); });
    return count.get_future().get();
  }
  // Polls until in_progress() == want, for up to 10 s; returns the last count seen.
  int wait_for_in_progress(int want) {
    int seen = in_progress();
    for (auto deadline = std::chrono::steady_clock::now() + 10s;
         seen != want && std::chrono::steady_clock::now() < deadline; seen = in_progress()) {
      std::this_thread::sleep_for(10ms);
    }
    return seen;
  }

 private:
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

class Client {
 public:
  explicit Client(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  }
  ~Client() { ::close(fd_); }
  void send(std::string_view text) {
    while (!text.empty()) {
      const ssize_t n = ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL);
      ASSERT_GT(n, 0);
      text.remove_prefix(static_cast<size_t>(n));
    }
  }
  std::string read_to_end() {
    std::string all;
    char buffer[1 << 16];
    for (ssize_t n; (n = ::recv(fd_, buffer, sizeof buffer, 0)) > 0;) all.append(buffer, static_cast<size_t>(n));
    return all;
  }

 private:
  int fd_;
};

constexpr std::string_view kRequestHead = "GET /x HTTP/1.1\r\nHost: t";
constexpr std::string_view kRequestTail = "\r\nConnection: close\r\n\r\n";

TEST(HttpServer, ARequestCountsFromItsFirstByteUntilItsResponseIsWritten) {
  ServerThread server([](HttpRequest, std::shared_ptr<Reply> reply) {
    HttpResponse response;
    response.body = "ok";
    reply->send(std::move(response));
  });
  Client client(server.port());
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(server.in_progress(), 0) << "a connection with nothing sent owes nothing";
  client.send(kRequestHead);  // half a header: the request has begun arriving
  EXPECT_EQ(server.wait_for_in_progress(1), 1);
  client.send(kRequestTail);
  const std::string response = client.read_to_end();
  EXPECT_NE(response.find("\r\n\r\nok"), std::string::npos) << response;
  EXPECT_EQ(server.wait_for_in_progress(0), 0);
}

// The case a graceful stop got wrong: the handler is done with a stream (end() called) while
// most of it still waits to be written, because the client reads slower than it is produced.
TEST(HttpServer, AStreamIsInProgressUntilItsLastChunkIsWritten) {
  constexpr size_t kChunk = 1 << 16, kChunks = 512;  // 32 MiB: more than loopback buffers hold
  ServerThread server([&](HttpRequest, std::shared_ptr<Reply> reply) {
    reply->start_stream(200, "text/plain");
    for (size_t i = 0; i < kChunks; ++i) reply->write(std::string(kChunk, 'a' + static_cast<char>(i % 26)));
    reply->end();
  });
  Client client(server.port());
  client.send(std::string(kRequestHead) + std::string(kRequestTail));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(server.in_progress(), 1) << "the handler has ended the stream, but it is not all written";
  const std::string response = client.read_to_end();
  EXPECT_GT(response.size(), kChunk * kChunks);
  EXPECT_TRUE(response.ends_with("\r\n0\r\n\r\n")) << "the stream's last chunk arrived";
  EXPECT_EQ(server.wait_for_in_progress(0), 0);
}

TEST(HttpServer, AClientThatClosesMidRequestOwesNothing) {
  ServerThread server([](HttpRequest, std::shared_ptr<Reply> reply) { reply->send({}); });
  {
    Client client(server.port());
    client.send(kRequestHead);
    EXPECT_EQ(server.wait_for_in_progress(1), 1);
  }
  EXPECT_EQ(server.wait_for_in_progress(0), 0);
}

}  // namespace
}  // namespace bitnet::server
