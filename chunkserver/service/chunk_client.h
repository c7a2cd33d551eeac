// Client-side helpers for ChunkService: a whole write stream and a verified
// read, in the shape every caller needs (replication, tests, benchmarks, and
// later the FUSE client). Piece CRCs are computed here (proto/chunk.proto).
//
// Thread-safety: stateless functions; a stub may be shared between threads.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "common/result.h"
#include "proto/chunk.grpc.pb.h"

namespace dfs::chunkserver {

inline constexpr size_t kDataMessageBytes = 1 << 20;

struct WriteOutcome {
  uint64_t bytes_written = 0;
  uint64_t chunk_length = 0;
  bool durable = false;
};

// One Write stream: `header`, then `data` in messages of at most
// `message_bytes`, each with its piece CRCs. Returns the reply, or the
// server's status (as a common::Status). Blocks up to timeout_ms.
common::Result<WriteOutcome> WriteChunk(pb::ChunkService::StubInterface& stub, const pb::WriteHeader& header,
                                        std::span<const std::byte> data, int64_t timeout_ms = 60'000,
                                        size_t message_bytes = kDataMessageBytes);

// Reads [offset, offset + length) of a chunk version (clipped to its length),
// verifying every block against the CRC the server sent, and returns exactly
// those bytes. `chunk_length` (optional) receives the version's length.
// Errors: the server's status; DATA_LOSS if a block fails verification here.
common::Result<std::string> ReadChunk(pb::ChunkService::StubInterface& stub, uint64_t chunk_id,
                                      uint64_t version, uint64_t offset, uint64_t length,
                                      int64_t timeout_ms = 60'000, uint64_t* chunk_length = nullptr);
// The same into `*out` (replaced), whose capacity is reused: a caller that
// reads many ranges pays for its memory once.
common::Status ReadChunkInto(pb::ChunkService::StubInterface& stub, uint64_t chunk_id, uint64_t version,
                             uint64_t offset, uint64_t length, std::string* out, int64_t timeout_ms = 60'000,
                             uint64_t* chunk_length = nullptr);

}  // namespace dfs::chunkserver
