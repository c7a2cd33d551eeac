#include "chunkserver/service/cs_metrics.h"

namespace dfs::chunkserver {

CsMetrics::CsMetrics(prometheus::Registry& registry)
    : disk_(prometheus::BuildGauge()
                .Name("dfs_chunkserver_disk_bytes")
                .Help("Capacity and use of each data folder's filesystem")
                .Register(registry)) {
  auto& chunks = prometheus::BuildGauge()
                     .Name("dfs_chunkserver_chunks")
                     .Help("Chunk versions stored (all), and those found damaged and not yet deleted")
                     .Register(registry);
  chunks_ = &chunks.Add({{"state", "all"}});
  damaged_ = &chunks.Add({{"state", "damaged"}});
  short_of_room_ = &prometheus::BuildGauge()
                        .Name("dfs_chunkserver_short_of_room")
                        .Help("1 while the best data folder has less room than --min-free-space: meta places "
                              "new chunks and copies on other nodes")
                        .Register(registry)
                        .Add({});
  heartbeats_.counter = &prometheus::BuildCounter()
                             .Name("dfs_chunkserver_heartbeats_total")
                             .Help("Heartbeats sent to meta")
                             .Register(registry)
                             .Add({});
  commands_.counter = &prometheus::BuildCounter()
                           .Name("dfs_chunkserver_commands_total")
                           .Help("Commands from meta (deletes, copies) run")
                           .Register(registry)
                           .Add({});
  auto& scrub = prometheus::BuildCounter()
                    .Name("dfs_chunkserver_scrub_total")
                    .Help("Background verification: passes, chunks and bytes read, damaged versions found")
                    .Register(registry);
  scrub_passes_.counter = &scrub.Add({{"what", "passes"}});
  scrub_chunks_.counter = &scrub.Add({{"what", "chunks"}});
  scrub_bytes_.counter = &scrub.Add({{"what", "bytes"}});
  scrub_damaged_.counter = &scrub.Add({{"what", "damaged"}});
  direct_bytes_.counter = &prometheus::BuildCounter()
                               .Name("dfs_chunkserver_direct_write_bytes_total")
                               .Help("Chunk data written with O_DIRECT, past the page cache (--direct-io)")
                               .Register(registry)
                               .Add({});
}

void CsMetrics::Refresh(const ChunkStore& store, const MetaClient& meta, const Scrubber* scrubber) {
  for (const DiskStats& disk : store.Disks()) {
    auto it = disks_.find(disk.path);
    if (it == disks_.end()) {
      it = disks_
               .emplace(disk.path, std::make_pair(&disk_.Add({{"folder", disk.path}, {"what", "capacity"}}),
                                                  &disk_.Add({{"folder", disk.path}, {"what", "used"}})))
               .first;
    }
    it->second.first->Set(static_cast<double>(disk.capacity_bytes));
    it->second.second->Set(static_cast<double>(disk.used_bytes));
  }
  chunks_->Set(static_cast<double>(store.chunk_count()));
  damaged_->Set(static_cast<double>(store.damaged_count()));
  short_of_room_->Set(meta.short_of_room() ? 1 : 0);
  heartbeats_.Advance(meta.heartbeats_sent());
  commands_.Advance(meta.commands_done());
  direct_bytes_.Advance(store.direct_bytes_written());
  if (scrubber != nullptr) {
    Scrubber::Stats s = scrubber->stats();
    scrub_passes_.Advance(s.passes);
    scrub_chunks_.Advance(s.chunks);
    scrub_bytes_.Advance(s.bytes);
    scrub_damaged_.Advance(s.damaged);
  }
}

void CsMetrics::Tracked::Advance(uint64_t now) {
  if (now > seen) counter->Increment(static_cast<double>(now - seen));
  seen = now;
}

}  // namespace dfs::chunkserver
