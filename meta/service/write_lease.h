// Write leases as handlers hand them out: where a new chunk goes (the key
// the ring places it by) and the signed token a chunkserver checks. Shared
// by LeaseChunk and by Create, which may grant the first lease of a new file.
//
// Thread-safety: pure functions.
#pragma once

#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/write_token.h"
#include "proto/chunk.pb.h"
#include "proto/meta.pb.h"

namespace dfs::meta {

inline constexpr size_t kMaxPlacement = 16;  // the most replicas a file may ask for

// Placement key of chunk `index` of inode `ino`: the chunk id is allocated
// inside Apply, so the proposer places by (ino, index), which it knows.
inline uint64_t ChunkPlacementKey(uint64_t ino, uint64_t index) {
  uint64_t in[2] = {ino, index};
  return XXH64(in, sizeof(in), 0);
}

// Placement key of chunk 0 of a file Create is about to make: its inode
// number is allocated inside Apply too, so the proposer places by
// (parent, name).
inline uint64_t NewFilePlacementKey(uint64_t parent, const std::string& name) {
  return XXH64(name.data(), name.size(), parent);
}

// Signs `lease` (from an applied OpResult) with the cluster key into its
// write_token.
inline void SignLease(const std::string& cluster_key, pb::ChunkLease* lease) {
  common::WriteGrant grant{lease->chunk_id(), lease->version(), lease->lease_id(), lease->lease_expires_unix_ms()};
  pb::WriteToken token;
  common::SignWriteToken(cluster_key, grant, &token);
  lease->set_write_token(token.SerializeAsString());
}

}  // namespace dfs::meta
