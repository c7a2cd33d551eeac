// PageCache: the client's cache of chunk blocks, keyed by (chunk id,
// version, block index, stamp). A block enters the cache only after its
// CRC32C was verified against the CRC the chunkserver stored with it, so a
// cached block is always good data; a new chunk version is a new key, so a
// writer never reads a stale block of an older version.
//
// The stamp is the file's ctime at the open the read belongs to. A version
// is not frozen at its commit: a writer keeps its lease's version across
// flushes and rewrites it in place, committing each time (a new version is a
// copy of the whole chunk). Every commit changes the ctime, so an open after
// it asks under a new key; without the stamp, another mount read a file held
// open and rewritten that way as it was at its first read, open after open.
//
// Bounded by bytes (mount option cache_size), least recently used block
// evicted first. Blocks are immutable shared buffers: a reader keeps its
// block alive after eviction.
//
// Thread-safety: all methods may be called concurrently (one internal mutex,
// never held across I/O).
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/thread_annotations.h"

namespace dfs::fuse {

struct BlockKey {
  uint64_t chunk_id = 0;
  uint64_t version = 0;
  uint64_t block_index = 0;
  uint64_t stamp = 0;  // see the header comment
  friend bool operator==(const BlockKey&, const BlockKey&) = default;
};

struct BlockKeyHash {
  size_t operator()(const BlockKey& k) const {
    uint64_t h = k.chunk_id * 0x9E3779B97F4A7C15ull ^ (k.version + 0x632BE59BD9B4E019ull) * 31 ^
                 (k.stamp * 0xD6E8FEB86659FD93ull) ^ k.block_index;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

using Block = std::shared_ptr<const std::string>;

class PageCache {
 public:
  explicit PageCache(uint64_t capacity_bytes);
  PageCache(const PageCache&) = delete;
  PageCache& operator=(const PageCache&) = delete;

  // The block, or null if absent. Marks it most recently used.
  Block Get(const BlockKey& key);
  // Inserts (or replaces) a verified block, evicting LRU blocks beyond capacity.
  void Put(const BlockKey& key, Block block);
  // Drops every cached block of `chunk_id` (all versions and stamps), e.g. after a write.
  void DropChunk(uint64_t chunk_id);

  uint64_t size_bytes();
  // Lookups that found their block, and those that did not, since start.
  uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }
  uint64_t capacity_bytes() const { return capacity_bytes_; }

 private:
  struct Entry {
    BlockKey key;
    Block block;
  };
  void EvictLocked() REQUIRES(mu_);

  const uint64_t capacity_bytes_;
  std::mutex mu_;  // guards everything below
  std::list<Entry> lru_ GUARDED_BY(mu_);  // front = most recently used
  std::unordered_map<BlockKey, std::list<Entry>::iterator, BlockKeyHash> index_ GUARDED_BY(mu_);
  uint64_t size_bytes_ GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> hits_{0}, misses_{0};
};

}  // namespace dfs::fuse
