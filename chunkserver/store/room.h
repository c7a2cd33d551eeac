// Whether a chunkserver is too short of room to be given new chunks.
//
// A new chunk goes to the data folder with the most room, so that folder's
// room decides: short when it has less than `min_free_bytes` available
// (statvfs f_bavail: what remains outside the filesystem's reserve). Once
// short, a node stays short until that folder has a quarter more than
// min_free_bytes, so a node near the line does not flip at every heartbeat.
// min_free_bytes 0: never short. Unhealthy folders do not count.
//
// Meta is told in every heartbeat and places no new chunk and no copy on a
// short node while another node can take them (meta/service/cluster_state.h);
// writes to chunks the node already holds go on until the disk is full.
//
// Thread-safety: a pure function.
#pragma once

#include <cstdint>
#include <vector>

#include "chunkserver/store/chunk_store.h"

namespace dfs::chunkserver {

bool ShortOfRoom(bool was_short, const std::vector<DiskStats>& disks, uint64_t min_free_bytes);

}  // namespace dfs::chunkserver
