#include "fuse/client_metrics.h"

namespace dfs::fuse {

const char* FuseOpName(FuseOp op) {
  static const char* kNames[] = {
      "lookup",  "forget",    "getattr",     "setattr",    "readlink",   "mknod",    "mkdir",
      "unlink",  "rmdir",     "symlink",     "rename",     "link",       "open",     "create",
      "read",    "write",     "flush",       "release",    "fsync",      "opendir",  "readdir",
      "readdirplus", "releasedir", "fsyncdir", "statfs",   "setxattr",   "getxattr", "listxattr",
      "removexattr", "access", "fallocate",  "lseek",      "copy_file_range"};
  static_assert(sizeof kNames / sizeof kNames[0] == static_cast<size_t>(FuseOp::kCount));
  return kNames[static_cast<size_t>(op)];
}

ClientMetrics::ClientMetrics(prometheus::Registry& registry) {
  auto& ops = prometheus::BuildCounter()
                  .Name("dfs_client_ops_total")
                  .Help("FUSE requests handled, by operation")
                  .Register(registry);
  auto& seconds = prometheus::BuildHistogram()
                      .Name("dfs_client_op_seconds")
                      .Help("Time from a FUSE request to its reply, by operation")
                      .Register(registry);
  const prometheus::Histogram::BucketBoundaries buckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                           0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1,
                                                           2.5,     5,      10};
  for (size_t i = 0; i < ops_.size(); ++i) {
    const char* name = FuseOpName(static_cast<FuseOp>(i));
    ops_[i] = &ops.Add({{"op", name}});
    seconds_[i] = &seconds.Add({{"op", name}}, buckets);
  }
  auto& bytes = prometheus::BuildCounter()
                    .Name("dfs_client_bytes_total")
                    .Help("Bytes returned to applications (read) and accepted from them (write)")
                    .Register(registry);
  read_bytes_ = &bytes.Add({{"dir", "read"}});
  write_bytes_ = &bytes.Add({{"dir", "write"}});
  auto& lookups = prometheus::BuildCounter()
                      .Name("dfs_client_cache_lookups_total")
                      .Help("Block cache lookups that found their block (hit) or not (miss)")
                      .Register(registry);
  hits_ = &lookups.Add({{"result", "hit"}});
  misses_ = &lookups.Add({{"result", "miss"}});
  cache_bytes_ = &prometheus::BuildGauge()
                      .Name("dfs_client_cache_bytes")
                      .Help("Bytes held by the block cache")
                      .Register(registry)
                      .Add({});
  auto& prefetch = prometheus::BuildCounter()
                       .Name("dfs_client_dir_prefetch_total")
                       .Help("Directory listing pages fetched ahead of a tree walk, and those it used")
                       .Register(registry);
  prefetch_fetched_ = &prefetch.Add({{"result", "fetched"}});
  prefetch_served_ = &prefetch.Add({{"result", "served"}});
  auto& listings = prometheus::BuildCounter()
                       .Name("dfs_client_dir_listings_total")
                       .Help("Whole directory listings fetched for lookups one by one (statahead), fetches given up, "
                             "and lookups and getattrs they answered")
                       .Register(registry);
  listings_fetched_ = &listings.Add({{"result", "fetched"}});
  listings_abandoned_ = &listings.Add({{"result", "abandoned"}});
  listings_served_ = &listings.Add({{"result", "served"}});
  auto& notices = prometheus::BuildCounter()
                      .Name("dfs_client_change_notices_total")
                      .Help("Names and inodes other clients changed, heard from meta, and streams that missed some")
                      .Register(registry);
  notice_names_ = &notices.Add({{"kind", "name"}});
  notice_inodes_ = &notices.Add({{"kind", "inode"}});
  notice_missed_ = &notices.Add({{"kind", "missed"}});
  watching_ = &prometheus::BuildGauge()
                   .Name("dfs_client_change_watching")
                   .Help("1 while the mount hears other clients' changes from meta; 0: they show within the timeouts")
                   .Register(registry)
                   .Add({});
  appends_moved_ = &prometheus::BuildCounter()
                        .Name("dfs_client_appends_moved_total")
                        .Help("Runs of O_APPEND writes placed at an end of file another client had moved")
                        .Register(registry)
                        .Add({});
}

void ClientMetrics::RecordOp(FuseOp op, double seconds) {
  ops_[static_cast<size_t>(op)]->Increment();
  seconds_[static_cast<size_t>(op)]->Observe(seconds);
}

void ClientMetrics::RecordNotices(uint64_t names, uint64_t inodes, bool missed) {
  notice_names_->Increment(static_cast<double>(names));
  notice_inodes_->Increment(static_cast<double>(inodes));
  if (missed) notice_missed_->Increment();
}

namespace {
// Adds what a monotonic count gained since `seen`.
void AddGrowth(prometheus::Counter* counter, uint64_t now, uint64_t seen) {
  if (now > seen) counter->Increment(static_cast<double>(now - seen));
}
}  // namespace

void ClientMetrics::Refresh(PageCache& cache, const DirPrefetch::Stats& prefetch, const DirListings::Stats& listings,
                            bool watching, uint64_t appends_moved) {
  watching_->Set(watching ? 1 : 0);
  const uint64_t hits = cache.hits(), misses = cache.misses();
  AddGrowth(hits_, hits, seen_hits_);
  AddGrowth(misses_, misses, seen_misses_);
  seen_hits_ = hits;
  seen_misses_ = misses;
  cache_bytes_->Set(static_cast<double>(cache.size_bytes()));
  AddGrowth(prefetch_fetched_, prefetch.fetched, seen_prefetch_.fetched);
  AddGrowth(prefetch_served_, prefetch.served, seen_prefetch_.served);
  seen_prefetch_ = prefetch;
  AddGrowth(listings_fetched_, listings.fetched, seen_listings_.fetched);
  AddGrowth(listings_abandoned_, listings.abandoned, seen_listings_.abandoned);
  AddGrowth(listings_served_, listings.served, seen_listings_.served);
  seen_listings_ = listings;
  AddGrowth(appends_moved_, appends_moved, seen_appends_moved_);
  seen_appends_moved_ = appends_moved;
}

}  // namespace dfs::fuse
