// MetaMetrics: dfs-meta's Prometheus gauges, refreshed by the housekeeping
// thread (request counts and latencies come from common/grpc_metrics.h):
//   dfs_meta_raft{what=term|commit_index|applied_index|is_leader}
//   dfs_meta_chunks{state=all|under_replicated|misplaced|surplus|damaged_copies}   leader only
//   dfs_meta_files                                                   leader only
//   dfs_meta_copies_in_flight{kind=repair|move}                      leader only
//   dfs_meta_chunkservers{state=up|dead|draining}                    leader only
//   dfs_meta_chunkserver_bytes{what=capacity|used}                   leader only
//   dfs_meta_data_free_bytes, dfs_meta_data_short_of_room            every member (DiskGuard)
//   dfs_meta_call_streams, dfs_meta_stream_calls_total               MetaService.Calls: open
//                                                                    streams, calls answered
// The cluster gauges need a scan of every chunk, so they are refreshed at
// most every `cluster_every_ms`; a follower reports them as 0.
//
// Thread-safety: Refresh from one thread; scrapes read concurrently.
#pragma once

#include <cstdint>
#include <memory>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "meta/service/group.h"
#include "meta/service/meta_service.h"

namespace dfs::meta {

class MetaMetrics {
 public:
  MetaMetrics(prometheus::Registry& registry, int64_t cluster_every_ms);
  void Refresh(const Group::View& view, uint64_t self_id, MetaServiceImpl& service, int64_t now_ms);

 private:
  const int64_t cluster_every_ms_;
  int64_t last_cluster_ms_ = INT64_MIN / 2;
  prometheus::Gauge* term_;
  prometheus::Gauge* commit_;
  prometheus::Gauge* applied_;
  prometheus::Gauge* leader_;
  prometheus::Gauge* chunks_all_;
  prometheus::Gauge* chunks_under_;
  prometheus::Gauge* chunks_misplaced_;
  prometheus::Gauge* chunks_surplus_;
  prometheus::Gauge* chunks_damaged_;
  prometheus::Gauge* files_;
  prometheus::Gauge* inline_chunks_;
  prometheus::Gauge* inline_bytes_;
  prometheus::Gauge* repairs_;
  prometheus::Gauge* moves_;
  prometheus::Gauge* nodes_up_;
  prometheus::Gauge* nodes_dead_;
  prometheus::Gauge* nodes_draining_;
  prometheus::Gauge* capacity_;
  prometheus::Gauge* used_;
  prometheus::Gauge* data_free_;
  prometheus::Gauge* data_short_;
  prometheus::Gauge* call_streams_;
  prometheus::Counter* stream_calls_;
  uint64_t seen_stream_calls_ = 0;
};

}  // namespace dfs::meta
