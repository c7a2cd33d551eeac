// Scrubber: re-reads every stored chunk in the background at a bounded rate
// and verifies every block's CRC32C, so a block that rots on a disk nobody
// reads is found before the other copies are needed. The store's ReadBlocks
// does the checking: a mismatch marks the version damaged and queues it for
// the next heartbeat; meta then drops that copy (garbage) and copies the
// chunk again from a good one.
//
// Thread-safety: owns one thread; stats() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "chunkserver/store/chunk_store.h"
#include "common/rate_limiter.h"

namespace dfs::chunkserver {

class Scrubber {
 public:
  struct Options {
    double bytes_per_s = 32 << 20;  // read budget (> 0)
    int64_t pause_ms = 60'000;      // between passes over all chunks
  };
  struct Stats {
    uint64_t passes = 0;   // complete passes over the store
    uint64_t chunks = 0;   // chunk versions verified
    uint64_t bytes = 0;
    uint64_t damaged = 0;  // versions found damaged
  };

  // `store` must outlive the scrubber. Starts the thread.
  Scrubber(ChunkStore& store, Options options);
  ~Scrubber();  // stops and joins (within one read of up to 1 MiB)
  Scrubber(const Scrubber&) = delete;
  Scrubber& operator=(const Scrubber&) = delete;

  Stats stats() const;

 private:
  void Run();
  // Verifies one version; false if it is damaged.
  bool Verify(const ChunkMeta& chunk);

  ChunkStore& store_;
  const Options options_;
  common::RateLimiter limiter_;
  std::atomic<uint64_t> passes_{0}, chunks_{0}, bytes_{0}, damaged_{0};
  std::mutex mu_;  // guards stopping_; leaf lock
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace dfs::chunkserver
