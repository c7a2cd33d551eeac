// CsMetrics: dfs-chunkserver's state gauges, refreshed every couple of
// seconds (bytes and errors are counted by ChunkServiceImpl, requests and
// latencies by common/grpc_metrics.h):
//   dfs_chunkserver_disk_bytes{folder, what=capacity|used}
//   dfs_chunkserver_chunks{state=all|damaged}   chunk versions stored, and those found damaged
//   dfs_chunkserver_short_of_room            1 while under --min-free-space (meta places elsewhere)
//   dfs_chunkserver_heartbeats_total         heartbeats sent to meta
//   dfs_chunkserver_commands_total           meta commands run (deletes, copies)
//   dfs_chunkserver_scrub_total{what=passes|chunks|bytes|damaged}
//   dfs_chunkserver_direct_write_bytes_total  chunk data written with O_DIRECT
// The counters advance by what their owners counted since the last refresh.
//
// Thread-safety: Refresh from one thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "chunkserver/service/meta_client.h"
#include "chunkserver/service/scrubber.h"
#include "chunkserver/store/chunk_store.h"

namespace dfs::chunkserver {

class CsMetrics {
 public:
  explicit CsMetrics(prometheus::Registry& registry);
  // `scrubber` may be null (scrubbing off).
  void Refresh(const ChunkStore& store, const MetaClient& meta, const Scrubber* scrubber);

 private:
  prometheus::Family<prometheus::Gauge>& disk_;
  std::map<std::string, std::pair<prometheus::Gauge*, prometheus::Gauge*>> disks_;
  prometheus::Gauge* chunks_;
  prometheus::Gauge* damaged_;
  prometheus::Gauge* short_of_room_;
  // A counter and the owner's count it has caught up with.
  struct Tracked {
    prometheus::Counter* counter = nullptr;
    uint64_t seen = 0;
    void Advance(uint64_t now);
  };
  Tracked heartbeats_, commands_, scrub_passes_, scrub_chunks_, scrub_bytes_, scrub_damaged_, direct_bytes_;
};

}  // namespace dfs::chunkserver
