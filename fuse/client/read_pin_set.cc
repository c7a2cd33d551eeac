#include "fuse/client/read_pin_set.h"

namespace dfs::fuse {

bool ReadPinSet::Pin(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(ino);
  if (it != counts_.end()) {
    ++it->second;
    return true;
  }
  if (counts_.size() >= kMaxInodes) return false;
  counts_.emplace(ino, 1);
  return true;
}

bool ReadPinSet::Unpin(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(ino);
  if (it == counts_.end()) return false;
  if (--it->second == 0) counts_.erase(it);
  return true;
}

std::vector<uint64_t> ReadPinSet::List() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> inos;
  inos.reserve(counts_.size());
  for (const auto& [ino, count] : counts_) inos.push_back(ino);
  return inos;
}

}  // namespace dfs::fuse
