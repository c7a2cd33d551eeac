// DirAttrCache: directories' attributes as this client's own mutations left
// them, for the kernel's attribute timeout.
//
// Why: the kernel drops its cached attributes of a directory after every
// create, mkdir, unlink or rename in it, and with default_permissions asks
// for them again (GETATTR) at the next path walk through it: one more round
// trip per file created in tar, cp or a create loop. Meta's reply to the
// mutation already carries the directory as it left it; the client answers
// that GETATTR from here. Staleness is what the kernel's own attribute cache
// allows: a change by another client shows within the timeout (the cache
// entry counts its age from the mutation's reply, and the kernel is told to
// keep the answer only for what is left of it).
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "common/clock.h"
#include "common/thread_annotations.h"
#include "proto/meta.pb.h"

namespace dfs::fuse {

class DirAttrCache {
 public:
  // ttl_ms 0 turns the cache off. Ages are counted on `clock`'s monotonic time.
  DirAttrCache(int64_t ttl_ms, const common::Clock& clock);

  // Remembers `attr` (ignored unless a directory). An answer that is not
  // newer than the one held (two of our mutations in one directory whose
  // replies crossed) drops the entry instead: meta is asked next time.
  void Put(const pb::Attr& attr);
  void Drop(uint64_t ino);
  void Clear();

  struct Fresh {
    pb::Attr attr;
    double valid_s;  // what is left of the timeout
  };
  std::optional<Fresh> Get(uint64_t ino) const;

 private:
  struct Entry {
    pb::Attr attr;
    int64_t expires_ms;
  };
  static constexpr size_t kMaxEntries = 4096;  // beyond it, expired entries are swept

  const int64_t ttl_ms_;
  int64_t NowMs() const { return clock_.MonotonicNs() / 1'000'000; }

  const common::Clock& clock_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_ GUARDED_BY(mu_);
};

}  // namespace dfs::fuse
