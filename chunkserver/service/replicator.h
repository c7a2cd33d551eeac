// ReplicateChunk: pull one chunk version from a peer chunkserver over its
// Read stream, verify every block, and install it atomically in the local
// store (a .tmp build renamed into place, see chunk_store.h). Used by the
// ReplicateFrom RPC and by meta's replicate commands.
//
// Thread-safety: safe from any thread (the store serializes writers).
#pragma once

#include <cstdint>
#include <string>

#include "chunkserver/store/chunk_store.h"
#include "common/result.h"

namespace dfs::chunkserver {

struct ReplicateSpec {
  uint64_t chunk_id = 0;
  uint64_t version = 0;
  std::string source_address;          // host:port of the peer's ChunkService
  uint64_t bandwidth_limit_bytes_per_s = 0;  // 0 = unlimited
  int64_t timeout_ms = 300'000;
};

// Returns the installed length. If the version is already stored and not
// damaged, returns its length without copying. Errors: the peer's status
// (NOT_FOUND, FAILED_PRECONDITION, UNAVAILABLE...), DATA_LOSS (a block failed
// its CRC, or the stream ended short), FAILED_PRECONDITION (a newer version is
// stored here), I/O errors. Nothing is installed on error. Blocks.
common::Result<uint64_t> ReplicateChunk(ChunkStore& store, const ReplicateSpec& spec);

}  // namespace dfs::chunkserver
