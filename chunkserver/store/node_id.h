// Node identity of a chunkserver, stamped into its data folders.
//
// Format: DIR/dfs-folder, written atomically (common::WriteFileAtomic):
//   "dfs-chunkserver-folder\nformat=1\nnode_id=<16 hex digits>\n"
// The node id is a random non-zero u64 created on the first start and kept
// by every restart. Every data folder carries the stamp, so a folder moved
// from another node (or a wrong --data) is refused instead of mixing chunks.
//
// Thread-safety: call once at start-up.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace dfs::chunkserver {

// Reads the stamps of `folders` (which must exist). All stamped folders must
// name the same node; unstamped ones (a new, empty disk) are stamped with it;
// if none is stamped a new id is created. Errors: FAILED_PRECONDITION when two
// folders belong to different nodes, DATA_LOSS for an unreadable stamp,
// I/O errors.
common::Result<uint64_t> LoadOrCreateNodeId(const std::vector<std::string>& folders);

}  // namespace dfs::chunkserver
