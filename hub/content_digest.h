// Checking a downloaded file against the ETag the hub reported for it. The hub's ETag is the
// file's identity: for a file stored with Git LFS (every model file) it is the SHA-256 of the
// content; for a small file stored in git it is the git blob id, the SHA-1 of
// "blob <size>\0" followed by the content. Either is recomputed over the bytes received.
#pragma once

#include "ir/support/expected.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace bitnet::hub {

enum class EtagKind { kSha256, kGitBlobSha1 };

// Which checksum an ETag (already stripped of quotes and "W/") is, or an error for one that is
// neither 64 nor 40 lower-case hex digits (also what makes it safe as a file name).
Expected<EtagKind> etag_kind(std::string_view etag);

class ContentDigest {
 public:
  // `size` is the file's size as the hub reported it (the git blob header names it).
  ContentDigest(EtagKind kind, uint64_t size);
  ContentDigest(ContentDigest&&) noexcept;
  ContentDigest& operator=(ContentDigest&&) noexcept;
  ~ContentDigest();

  void update(std::span<const char> bytes);
  void restart();            // forget every byte seen (a server that ignored a Range request)
  std::string finish_hex();  // lower-case hex; the digest then restarts
  std::string_view name() const { return kind_ == EtagKind::kSha256 ? "sha256" : "git blob sha1"; }

 private:
  struct State;
  EtagKind kind_;
  uint64_t size_;
  std::unique_ptr<State> state_;
};

}  // namespace bitnet::hub
