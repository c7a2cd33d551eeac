#include "fuse/client/page_cache.h"

namespace dfs::fuse {

PageCache::PageCache(uint64_t capacity_bytes) : capacity_bytes_(capacity_bytes) {}

Block PageCache::Get(const BlockKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->block;
}

void PageCache::Put(const BlockKey& key, Block block) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    size_bytes_ -= it->second->block->size();
    lru_.erase(it->second);
    index_.erase(it);
  }
  size_bytes_ += block->size();
  lru_.push_front(Entry{key, std::move(block)});
  index_[key] = lru_.begin();
  EvictLocked();
}

void PageCache::DropChunk(uint64_t chunk_id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->key.chunk_id == chunk_id) {
      size_bytes_ -= it->block->size();
      index_.erase(it->key);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

uint64_t PageCache::size_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return size_bytes_;
}

void PageCache::EvictLocked() {
  while (size_bytes_ > capacity_bytes_ && !lru_.empty()) {
    Entry& victim = lru_.back();
    size_bytes_ -= victim.block->size();
    index_.erase(victim.key);
    lru_.pop_back();
  }
}

}  // namespace dfs::fuse
