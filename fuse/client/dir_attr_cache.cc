#include "fuse/client/dir_attr_cache.h"

#include <sys/stat.h>

namespace dfs::fuse {

DirAttrCache::DirAttrCache(int64_t ttl_ms, const common::Clock& clock) : ttl_ms_(ttl_ms), clock_(clock) {}

void DirAttrCache::Put(const pb::Attr& attr) {
  if (ttl_ms_ <= 0 || !S_ISDIR(attr.mode()) || attr.ino() == 0) return;
  const int64_t now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(attr.ino());
  if (it != entries_.end() && it->second.expires_ms > now) {
    // Every mutation of a directory moves its ctime forward (leader time);
    // an equal ctime with other contents means two changes in one entry.
    const pb::Attr& held = it->second.attr;
    if (attr.ctime_ns() < held.ctime_ns() ||
        (attr.ctime_ns() == held.ctime_ns() && attr.SerializeAsString() != held.SerializeAsString())) {
      entries_.erase(it);
      return;
    }
  }
  if (entries_.size() >= kMaxEntries) {
    std::erase_if(entries_, [now](const auto& kv) { return kv.second.expires_ms <= now; });
    if (entries_.size() >= kMaxEntries) entries_.clear();
  }
  entries_[attr.ino()] = Entry{attr, now + ttl_ms_};
}

void DirAttrCache::Drop(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(ino);
}

void DirAttrCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.clear();
}

std::optional<DirAttrCache::Fresh> DirAttrCache::Get(uint64_t ino) const {
  const int64_t now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(ino);
  if (it == entries_.end() || it->second.expires_ms <= now) return std::nullopt;
  return Fresh{it->second.attr, static_cast<double>(it->second.expires_ms - now) / 1000.0};
}

}  // namespace dfs::fuse
