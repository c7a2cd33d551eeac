#include "fuse/client/acl_hints.h"

namespace dfs::fuse {

AclHints::AclHints(int64_t ttl_ms, const common::Clock& clock) : ttl_ms_(ttl_ms), clock_(clock) {}

void AclHints::Learn(const pb::Attr& attr) {
  if (ttl_ms_ <= 0 || attr.ino() == 0) return;
  if (attr.access_acl() != pb::Attr::ACL_NONE) {
    if (attr.access_acl() == pb::Attr::ACL_PRESENT) Forget(attr.ino());
    return;
  }
  const int64_t now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  if (hints_.size() >= kMaxEntries) {
    std::erase_if(hints_, [now](const auto& kv) { return kv.second.expires_ms <= now; });
    if (hints_.size() >= kMaxEntries) hints_.clear();
  }
  hints_[attr.ino()] = Hint{now + ttl_ms_, attr.no_xattrs()};
}

void AclHints::Forget(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  hints_.erase(ino);
}

bool AclHints::KnownNone(uint64_t ino) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hints_.find(ino);
  return it != hints_.end() && it->second.expires_ms > NowMs();
}

bool AclHints::KnownNoXattrs(uint64_t ino) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hints_.find(ino);
  return it != hints_.end() && it->second.no_xattrs && it->second.expires_ms > NowMs();
}

}  // namespace dfs::fuse
