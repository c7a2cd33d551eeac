#include "meta/service/wanted_chunks.h"

namespace dfs::meta {

namespace {
// Past this many entries a refusal first drops those out of the window, so
// the map stays as small as the chunks contended right now.
constexpr size_t kPruneAbove = 1024;
}  // namespace

void WantedChunks::Refused(uint64_t ino, uint64_t chunk_index, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (refused_ms_.size() >= kPruneAbove) {
    std::erase_if(refused_ms_, [&](const auto& entry) { return now_ms - entry.second > window_ms_; });
  }
  refused_ms_[{ino, chunk_index}] = now_ms;
}

bool WantedChunks::Wanted(uint64_t ino, uint64_t chunk_index, int64_t now_ms) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = refused_ms_.find({ino, chunk_index});
  return it != refused_ms_.end() && now_ms - it->second <= window_ms_;
}

size_t WantedChunks::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return refused_ms_.size();
}

}  // namespace dfs::meta
