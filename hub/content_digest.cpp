// SHA-256 and git blob SHA-1 over OpenSSL's libcrypto (hardware SHA extensions where the CPU has
// them: a multi-GB model file is hashed at memory speed). See content_digest.h.
#include "hub/content_digest.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

namespace bitnet::hub {

struct ContentDigest::State {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~State() { EVP_MD_CTX_free(ctx); }
};

Expected<EtagKind> etag_kind(std::string_view etag) {
  const bool hex = !etag.empty() && std::all_of(etag.begin(), etag.end(), [](unsigned char c) {
    return std::isdigit(c) || (c >= 'a' && c <= 'f');
  });
  if (hex && etag.size() == 64) return EtagKind::kSha256;
  if (hex && etag.size() == 40) return EtagKind::kGitBlobSha1;
  return make_error("the hub reported ETag '{}', which is neither a SHA-256 nor a git blob id: cannot verify the file",
                    etag.substr(0, 100));
}

ContentDigest::ContentDigest(EtagKind kind, uint64_t size)
    : kind_(kind), size_(size), state_(std::make_unique<State>()) {
  restart();
}
ContentDigest::ContentDigest(ContentDigest&&) noexcept = default;
ContentDigest& ContentDigest::operator=(ContentDigest&&) noexcept = default;
ContentDigest::~ContentDigest() = default;

void ContentDigest::restart() {
  EVP_DigestInit_ex(state_->ctx, kind_ == EtagKind::kSha256 ? EVP_sha256() : EVP_sha1(), nullptr);
  if (kind_ == EtagKind::kGitBlobSha1) {
    const std::string header = "blob " + std::to_string(size_);
    EVP_DigestUpdate(state_->ctx, header.data(), header.size() + 1);  // with its NUL
  }
}

void ContentDigest::update(std::span<const char> bytes) {
  EVP_DigestUpdate(state_->ctx, bytes.data(), bytes.size());
}

std::string ContentDigest::finish_hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(state_->ctx, digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  restart();
  return out;
}

}  // namespace bitnet::hub
