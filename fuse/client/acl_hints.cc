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
  if (expires_ms_.size() >= kMaxEntries) {
    std::erase_if(expires_ms_, [now](const auto& kv) { return kv.second <= now; });
    if (expires_ms_.size() >= kMaxEntries) expires_ms_.clear();
  }
  expires_ms_[attr.ino()] = now + ttl_ms_;
}

void AclHints::Forget(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  expires_ms_.erase(ino);
}

bool AclHints::KnownNone(uint64_t ino) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = expires_ms_.find(ino);
  return it != expires_ms_.end() && it->second > NowMs();
}

}  // namespace dfs::fuse
