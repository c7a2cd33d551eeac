#include "meta/service/meta_metrics.h"

namespace dfs::meta {

MetaMetrics::MetaMetrics(prometheus::Registry& registry, int64_t cluster_every_ms)
    : cluster_every_ms_(cluster_every_ms) {
  auto& raft = prometheus::BuildGauge().Name("dfs_meta_raft").Help("This member's Raft state").Register(registry);
  term_ = &raft.Add({{"what", "term"}});
  commit_ = &raft.Add({{"what", "commit_index"}});
  applied_ = &raft.Add({{"what", "applied_index"}});
  leader_ = &raft.Add({{"what", "is_leader"}});
  auto& chunks = prometheus::BuildGauge()
                     .Name("dfs_meta_chunks")
                     .Help("Chunks, and those short of copies, misplaced, or with a surplus copy (leader)")
                     .Register(registry);
  chunks_all_ = &chunks.Add({{"state", "all"}});
  chunks_under_ = &chunks.Add({{"state", "under_replicated"}});
  chunks_misplaced_ = &chunks.Add({{"state", "misplaced"}});
  chunks_surplus_ = &chunks.Add({{"state", "surplus"}});
  chunks_damaged_ = &chunks.Add({{"state", "damaged_copies"}});
  auto& inline_data = prometheus::BuildGauge()
                          .Name("dfs_meta_inline")
                          .Help("Small files' chunks meta keeps in its database (--inline-max), and their bytes (leader)")
                          .Register(registry);
  inline_chunks_ = &inline_data.Add({{"what", "chunks"}});
  inline_bytes_ = &inline_data.Add({{"what", "bytes"}});
  files_ = &prometheus::BuildGauge().Name("dfs_meta_files").Help("Regular files (leader)").Register(registry).Add({});
  auto& copies = prometheus::BuildGauge()
                     .Name("dfs_meta_copies_in_flight")
                     .Help("Chunk copies commanded and not yet reported: repairs and rebalancing moves (leader)")
                     .Register(registry);
  repairs_ = &copies.Add({{"kind", "repair"}});
  moves_ = &copies.Add({{"kind", "move"}});
  auto& nodes = prometheus::BuildGauge()
                    .Name("dfs_meta_chunkservers")
                    .Help("Chunkservers by state (leader)")
                    .Register(registry);
  nodes_up_ = &nodes.Add({{"state", "up"}});
  nodes_dead_ = &nodes.Add({{"state", "dead"}});
  nodes_draining_ = &nodes.Add({{"state", "draining"}});
  auto& bytes = prometheus::BuildGauge()
                    .Name("dfs_meta_chunkserver_bytes")
                    .Help("Disk capacity and use summed over live chunkservers (leader)")
                    .Register(registry);
  capacity_ = &bytes.Add({{"what", "capacity"}});
  used_ = &bytes.Add({{"what", "used"}});
  data_free_ = &prometheus::BuildGauge()
                    .Name("dfs_meta_data_free_bytes")
                    .Help("Room left in this member's data folder")
                    .Register(registry)
                    .Add({});
  data_short_ = &prometheus::BuildGauge()
                     .Name("dfs_meta_data_short_of_room")
                     .Help("1 while the folder is under --min-free-space plus meta.db: creates and writes get ENOSPC")
                     .Register(registry)
                     .Add({});
  call_streams_ = &prometheus::BuildGauge()
                       .Name("dfs_meta_call_streams")
                       .Help("MetaService.Calls streams open now (mounts send lookups and getattrs on them)")
                       .Register(registry)
                       .Add({});
  stream_calls_ = &prometheus::BuildCounter()
                       .Name("dfs_meta_stream_calls_total")
                       .Help("Calls answered on MetaService.Calls streams")
                       .Register(registry)
                       .Add({});
}

void MetaMetrics::Refresh(const Group::View& view, uint64_t self_id, MetaServiceImpl& service, int64_t now_ms) {
  term_->Set(static_cast<double>(view.term));
  commit_->Set(static_cast<double>(view.commit_index));
  applied_->Set(static_cast<double>(view.applied_index));
  leader_->Set(view.leader_id == self_id ? 1 : 0);
  if (service.disk_guard().free_bytes() != UINT64_MAX) {
    data_free_->Set(static_cast<double>(service.disk_guard().free_bytes()));
  }
  data_short_->Set(service.disk_guard().short_of_room() ? 1 : 0);
  MetaServiceImpl::CallStreamCounts streams = service.call_stream_counts();
  call_streams_->Set(static_cast<double>(streams.open));
  if (streams.calls > seen_stream_calls_) {
    stream_calls_->Increment(static_cast<double>(streams.calls - seen_stream_calls_));
    seen_stream_calls_ = streams.calls;
  }
  if (now_ms - last_cluster_ms_ < cluster_every_ms_) return;
  last_cluster_ms_ = now_ms;
  pb::ClusterStatusReply counts;
  // A follower knows none of this: zeros, so a sum over members is right.
  service.ClusterCounts(&counts);
  chunks_all_->Set(static_cast<double>(counts.chunks()));
  chunks_under_->Set(static_cast<double>(counts.under_replicated_chunks()));
  chunks_misplaced_->Set(static_cast<double>(counts.misplaced_chunks()));
  chunks_surplus_->Set(static_cast<double>(counts.surplus_chunks()));
  chunks_damaged_->Set(static_cast<double>(counts.damaged_chunks()));
  files_->Set(static_cast<double>(counts.files()));
  inline_chunks_->Set(static_cast<double>(counts.chunks_in_meta()));
  inline_bytes_->Set(static_cast<double>(counts.bytes_in_meta()));
  repairs_->Set(static_cast<double>(counts.repairs_in_flight() - counts.moves_in_flight()));
  moves_->Set(static_cast<double>(counts.moves_in_flight()));
  double up = 0, dead = 0, draining = 0, capacity = 0, used = 0;
  for (const pb::NodeStatus& n : counts.nodes()) {
    if (n.state() == "up") up += 1;
    if (n.state() == "dead") dead += 1;
    if (n.state() == "draining") draining += 1;
    if (n.state() != "dead") {
      capacity += static_cast<double>(n.capacity_bytes());
      used += static_cast<double>(n.used_bytes());
    }
  }
  nodes_up_->Set(up);
  nodes_dead_->Set(dead);
  nodes_draining_->Set(draining);
  capacity_->Set(capacity);
  used_->Set(used);
}

}  // namespace dfs::meta
