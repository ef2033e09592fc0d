// The fake hub's two loopback servers (see fake_hub.h): Beast parses each request, one
// request per connection, answered on the server's own thread.
#include "fake_hub.h"

#include <openssl/sha.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace bitnet::testing {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct Reply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool send_body = true;               // false for HEAD
  std::optional<uint64_t> drop_after;  // close after this many body bytes
};

using Handler = std::function<Reply(const http::request<http::string_body>&)>;

std::string hex(const unsigned char* digest, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

// One loopback HTTP server on its own thread.
class LoopbackServer {
 public:
  explicit LoopbackServer(Handler handler)
      : handler_(std::move(handler)), acceptor_(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~LoopbackServer() {
    stopping_ = true;
    boost::system::error_code ec;
    tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);  // wakes the blocking accept
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  void loop() {
    while (!stopping_) {
      tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopping_) continue;
      serve(socket);
    }
  }

  void serve(tcp::socket& socket) {
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    boost::system::error_code ec;
    http::read(socket, buffer, request, ec);
    if (ec) return;
    const Reply reply = handler_(request);
    std::string text = fmt::format("HTTP/1.1 {} {}\r\n", reply.status,
                                   std::string(http::obsolete_reason(static_cast<http::status>(reply.status))));
    bool has_length = false;
    for (const auto& [name, value] : reply.headers) {
      text += name + ": " + value + "\r\n";
      has_length |= name == "Content-Length";
    }
    if (!has_length) text += fmt::format("Content-Length: {}\r\n", reply.body.size());
    text += "Connection: close\r\n\r\n";
    if (reply.send_body) text += reply.body.substr(0, reply.drop_after.value_or(reply.body.size()));
    net::write(socket, net::buffer(text), ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  Handler handler_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

struct File {
  std::string content;
  bool lfs = true;
  std::string reported_etag;  // empty: the content's own
  uint64_t drop_bytes = 0;
  int drops_left = 0;
};

struct Repo {
  std::string commit = std::string(40, 'a');
  std::string token;
  std::map<std::string, File> files;
};

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

struct FakeHub::State {
  mutable std::mutex mutex;
  std::map<std::string, Repo> repos;
  std::map<std::string, std::string> renamed;
  bool ignore_range = false;
  std::vector<Request> requests;
  std::unique_ptr<LoopbackServer> hub;
  std::unique_ptr<LoopbackServer> cdn;

  std::string etag_of(const File& f) const {
    if (!f.reported_etag.empty()) return f.reported_etag;
    return f.lfs ? sha256_hex(f.content) : git_blob_sha1_hex(f.content);
  }

  void record(const char* server, const http::request<http::string_body>& r) {
    requests.push_back({server, std::string(r.method_string()), std::string(r.target()),
                        std::string(r[http::field::authorization]), std::string(r[http::field::range])});
  }

  Reply error(int status, const std::string& code, const std::string& message) {
    Reply reply{status, {{"Content-Type", "application/json"}}, nlohmann::json{{"error", message}}.dump(), true, {}};
    if (!code.empty()) reply.headers.emplace_back("X-Error-Code", code);
    reply.headers.emplace_back("X-Error-Message", message);
    return reply;
  }

  // Authorization for a repo: none needed, or the right bearer token.
  std::optional<Reply> check_token(const Repo& repo, const http::request<http::string_body>& r) {
    if (repo.token.empty()) return std::nullopt;
    const std::string given(r[http::field::authorization]);
    if (given == "Bearer " + repo.token) return std::nullopt;
    return error(
        401, given.empty() ? "GatedRepo" : "",
        given.empty() ? "Access to this repository is restricted." : "Invalid credentials in Authorization header");
  }

  Reply on_hub(const http::request<http::string_body>& r) {
    std::lock_guard lock(mutex);
    record("hub", r);
    const bool head = r.method() == http::verb::head;
    const std::string target(r.target());
    const auto parts = split_path(std::string_view(target).substr(1));
    // /api/models/ORG/NAME/revision/REV
    if (parts.size() == 6 && parts[0] == "api" && parts[1] == "models" && parts[4] == "revision") {
      auto it = repos.find(parts[2] + "/" + parts[3]);
      if (it == repos.end()) return error(401, "RepoNotFound", "Repository not found");
      if (auto denied = check_token(it->second, r)) return *denied;
      nlohmann::json siblings = nlohmann::json::array();
      for (const auto& [name, file] : it->second.files) siblings.push_back({{"rfilename", name}});
      return Reply{200,
                   {{"Content-Type", "application/json"}},
                   nlohmann::json{{"sha", it->second.commit}, {"siblings", siblings}}.dump(),
                   true,
                   {}};
    }
    // /ORG/NAME/resolve/REV/FILE...
    if (parts.size() < 5 || parts[2] != "resolve") return error(404, "", "Not Found");
    const std::string repo_id = parts[0] + "/" + parts[1];
    if (auto moved = renamed.find(repo_id); moved != renamed.end()) {
      return Reply{307, {{"Location", "/" + moved->second + target.substr(repo_id.size() + 1)}}, "", !head, {}};
    }
    auto it = repos.find(repo_id);
    if (it == repos.end()) return error(401, "RepoNotFound", "Repository not found");
    Repo& repo = it->second;
    if (auto denied = check_token(repo, r)) return *denied;
    const std::string revision = url_decode(parts[3]);
    if (revision != "main" && revision != repo.commit) return error(404, "RevisionNotFound", "Invalid rev id");
    std::string file_name = url_decode(parts[4]);
    for (size_t i = 5; i < parts.size(); ++i) file_name += "/" + url_decode(parts[i]);
    auto f = repo.files.find(file_name);
    if (f == repo.files.end()) {
      Reply reply = error(404, "EntryNotFound", "Entry not found");
      reply.headers.emplace_back("X-Repo-Commit", repo.commit);
      return reply;
    }
    const File& file = f->second;
    const std::string etag = etag_of(file);
    if (file.lfs) {
      // As the hub: the pointer's ETag, the real file's in X-Linked-*, and a signed CDN URL.
      return Reply{
          302,
          {{"Location", fmt::format("http://127.0.0.1:{}/blobs/{}?sig=x", cdn->port(), sha256_hex(file.content))},
           {"X-Repo-Commit", repo.commit},
           {"ETag", "\"" + git_blob_sha1_hex("pointer") + "\""},
           {"X-Linked-Etag", "\"" + etag + "\""},
           {"X-Linked-Size", std::to_string(file.content.size())}},
          "",
          !head,
          {}};
    }
    Reply reply{200, {{"X-Repo-Commit", repo.commit}, {"ETag", "\"" + etag + "\""}}, file.content, !head, {}};
    apply_drop(f->second, reply, head);
    return reply;
  }

  void apply_drop(File& file, Reply& reply, bool head) {
    if (head || file.drops_left == 0) return;
    --file.drops_left;
    reply.drop_after = file.drop_bytes;
  }

  Reply on_cdn(const http::request<http::string_body>& r) {
    std::lock_guard lock(mutex);
    record("cdn", r);
    const std::string target(r.target());
    const std::string sha = target.substr(7, target.find('?') - 7);  // /blobs/SHA?sig=x
    for (auto& [id, repo] : repos) {
      for (auto& [name, file] : repo.files) {
        if (!file.lfs || sha256_hex(file.content) != sha) continue;
        const std::string range(r[http::field::range]);
        Reply reply;
        if (!range.empty() && !ignore_range) {
          const uint64_t from = std::stoull(range.substr(6));  // bytes=N-
          if (from >= file.content.size()) return Reply{416, {}, "", true, {}};
          reply.status = 206;
          reply.body = file.content.substr(from);
          reply.headers.emplace_back("Content-Range",
                                     fmt::format("bytes {}-{}/{}", from, file.content.size() - 1, file.content.size()));
        } else {
          reply.body = file.content;
        }
        apply_drop(file, reply, false);
        return reply;
      }
    }
    return Reply{403, {}, "AccessDenied", true, {}};
  }
};

FakeHub::FakeHub() : state_(std::make_shared<State>()) {
  State* s = state_.get();
  state_->cdn = std::make_unique<LoopbackServer>([s](const auto& r) { return s->on_cdn(r); });
  state_->hub = std::make_unique<LoopbackServer>([s](const auto& r) { return s->on_hub(r); });
}

FakeHub::~FakeHub() {
  state_->hub.reset();
  state_->cdn.reset();
}

std::string FakeHub::endpoint() const {
  return fmt::format("http://127.0.0.1:{}", state_->hub->port());
}
std::string FakeHub::cdn_endpoint() const {
  return fmt::format("http://127.0.0.1:{}", state_->cdn->port());
}

void FakeHub::add_file(const std::string& repo, const std::string& file, const std::string& content, bool lfs) {
  std::lock_guard lock(state_->mutex);
  File& f = state_->repos[repo].files[file];
  f.content = content;
  f.lfs = lfs;
}

void FakeHub::set_commit(const std::string& repo, const std::string& commit) {
  std::lock_guard lock(state_->mutex);
  state_->repos[repo].commit = commit;
}

std::string FakeHub::commit(const std::string& repo) const {
  std::lock_guard lock(state_->mutex);
  return state_->repos[repo].commit;
}

void FakeHub::require_token(const std::string& repo, const std::string& token) {
  std::lock_guard lock(state_->mutex);
  state_->repos[repo].token = token;
}

void FakeHub::report_etag(const std::string& repo, const std::string& file, const std::string& etag) {
  std::lock_guard lock(state_->mutex);
  state_->repos[repo].files[file].reported_etag = etag;
}

void FakeHub::drop_after(const std::string& repo, const std::string& file, uint64_t bytes, int times) {
  std::lock_guard lock(state_->mutex);
  File& f = state_->repos[repo].files[file];
  f.drop_bytes = bytes;
  f.drops_left = times;
}

void FakeHub::ignore_range(bool ignore) {
  std::lock_guard lock(state_->mutex);
  state_->ignore_range = ignore;
}

void FakeHub::rename_repo(const std::string& old_repo, const std::string& new_repo) {
  std::lock_guard lock(state_->mutex);
  state_->renamed[old_repo] = new_repo;
}

std::vector<FakeHub::Request> FakeHub::requests() const {
  std::lock_guard lock(state_->mutex);
  return state_->requests;
}

void FakeHub::clear_requests() {
  std::lock_guard lock(state_->mutex);
  state_->requests.clear();
}

std::string FakeHub::sha256_hex(const std::string& content) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(content.data()), content.size(), digest);
  return hex(digest, sizeof digest);
}

std::string FakeHub::git_blob_sha1_hex(const std::string& content) {
  const std::string object = "blob " + std::to_string(content.size()) + std::string(1, '\0') + content;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(object.data()), object.size(), digest);
  return hex(digest, sizeof digest);
}

}  // namespace bitnet::testing
