#include "chunkserver/service/scrubber.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <string>

#include "common/chunk_geometry.h"
#include "common/status.h"

namespace dfs::chunkserver {

namespace {
constexpr uint64_t kBlocksPerRead = 16;  // 1 MiB
}

Scrubber::Scrubber(ChunkStore& store, Options options)
    : store_(store), options_(options), limiter_(options.bytes_per_s, options.bytes_per_s) {
  thread_ = std::thread([this] { Run(); });
}

Scrubber::~Scrubber() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Scrubber::Stats Scrubber::stats() const {
  Stats s;
  s.passes = passes_.load();
  s.chunks = chunks_.load();
  s.bytes = bytes_.load();
  s.damaged = damaged_.load();
  return s;
}

bool Scrubber::Verify(const ChunkMeta& chunk) {
  std::string data;
  const uint64_t blocks = (chunk.length + common::kBlockSizeBytes - 1) / common::kBlockSizeBytes;
  for (uint64_t first = 0; first < blocks; first += kBlocksPerRead) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return true;
    }
    // Paced before the read, so the disk sees at most the budget.
    const int64_t wait_ns = limiter_.ReserveNs(static_cast<double>(
        std::min(kBlocksPerRead, blocks - first) * common::kBlockSizeBytes));
    if (wait_ns > 0) {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, std::chrono::nanoseconds(wait_ns), [this] { return stopping_; })) return true;
    }
    BlockRead read;
    common::Status s = store_.ReadBlocks(chunk.chunk_id, chunk.version, first, kBlocksPerRead, &data, &read);
    if (s.code() == common::StatusCode::kDataLoss) {
      spdlog::error("scrub: chunk {:016x} version {}: {}", chunk.chunk_id, chunk.version, s.ToString());
      return false;
    }
    // Deleted, replaced or cut meanwhile: nothing left to verify.
    if (!s.ok()) return true;
    bytes_ += data.size();
  }
  return true;
}

void Scrubber::Run() {
  for (;;) {
    for (const ChunkMeta& chunk : store_.List()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      if (chunk.damaged) continue;  // already reported
      if (!Verify(chunk)) ++damaged_;
      ++chunks_;
    }
    ++passes_;
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, std::chrono::milliseconds(options_.pause_ms), [this] { return stopping_; })) return;
  }
}

}  // namespace dfs::chunkserver
