// ClientMetrics: the dfs client's Prometheus metrics, served when mounted
// with -o metrics=HOST:PORT:
//   dfs_client_ops_total{op}                 FUSE requests handled
//   dfs_client_op_seconds{op}                time from request to reply
//   dfs_client_bytes_total{dir=read|write}   bytes returned to / accepted from applications
//   dfs_client_cache_lookups_total{result=hit|miss}   block cache lookups
//   dfs_client_cache_bytes                   bytes held by the block cache
//   dfs_client_dir_prefetch_total{result=fetched|served}
//                                            listing pages fetched ahead of a tree walk
//                                            (DirPrefetch) and those the walk used
//   dfs_client_dir_listings_total{result=fetched|abandoned|served}
//                                            whole listings fetched for lookups one by one
//                                            (DirListings, "statahead"), fetches given up,
//                                            and lookups/getattrs they answered
//   dfs_client_change_notices_total{kind=name|inode|missed}
//                                            other clients' changes heard from meta
//                                            (ChangeWatcher), and streams that lost some
//   dfs_client_change_watching               1 while a Watch stream to meta is open: 0
//                                            means others' changes show only within the
//                                            attr/entry timeouts
//   dfs_client_appends_moved_total           runs of O_APPEND writes placed at an end of
//                                            file another mount had moved (it appends to
//                                            or cuts the same file)
// Cache, prefetch, listing, watching and append figures are copied by Refresh (every 2 s).
//
// Thread-safety: Record* from the libfuse workers, Refresh from one thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "fuse/client/dir_listings.h"
#include "fuse/client/dir_prefetch.h"
#include "fuse/client/page_cache.h"

namespace dfs::fuse {

// Every FUSE operation dfs implements, for per-operation metrics.
enum class FuseOp {
  kLookup, kForget, kGetattr, kSetattr, kReadlink, kMknod, kMkdir, kUnlink, kRmdir, kSymlink, kRename, kLink,
  kOpen, kCreate, kRead, kWrite, kFlush, kRelease, kFsync, kOpendir, kReaddir, kReaddirplus, kReleasedir,
  kFsyncdir, kStatfs, kSetxattr, kGetxattr, kListxattr, kRemovexattr, kAccess, kFallocate, kLseek,
  kCopyFileRange, kCount
};
const char* FuseOpName(FuseOp op);

class ClientMetrics {
 public:
  explicit ClientMetrics(prometheus::Registry& registry);
  void RecordOp(FuseOp op, double seconds);
  void RecordRead(uint64_t bytes) { read_bytes_->Increment(static_cast<double>(bytes)); }
  void RecordWrite(uint64_t bytes) { write_bytes_->Increment(static_cast<double>(bytes)); }
  void RecordNotices(uint64_t names, uint64_t inodes, bool missed);
  void Refresh(PageCache& cache, const DirPrefetch::Stats& prefetch, const DirListings::Stats& listings,
               bool watching, uint64_t appends_moved);

 private:
  std::array<prometheus::Counter*, static_cast<size_t>(FuseOp::kCount)> ops_{};
  std::array<prometheus::Histogram*, static_cast<size_t>(FuseOp::kCount)> seconds_{};
  prometheus::Counter* read_bytes_;
  prometheus::Counter* write_bytes_;
  prometheus::Counter* hits_;
  prometheus::Counter* misses_;
  prometheus::Gauge* cache_bytes_;
  prometheus::Counter* prefetch_fetched_;
  prometheus::Counter* prefetch_served_;
  prometheus::Counter* listings_fetched_;
  prometheus::Counter* listings_abandoned_;
  prometheus::Counter* listings_served_;
  prometheus::Counter* notice_names_;
  prometheus::Counter* notice_inodes_;
  prometheus::Counter* notice_missed_;
  prometheus::Gauge* watching_;
  prometheus::Counter* appends_moved_;
  uint64_t seen_hits_ = 0, seen_misses_ = 0, seen_appends_moved_ = 0;
  DirPrefetch::Stats seen_prefetch_;
  DirListings::Stats seen_listings_;
};

}  // namespace dfs::fuse
