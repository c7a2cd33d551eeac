#include "fuse/client/remote_changes.h"

namespace dfs::fuse {

uint64_t RemoteChanges::Now() const {
  std::lock_guard<std::mutex> lock(mu_);
  return seq_;
}

void RemoteChanges::Note(const std::vector<uint64_t>& ids, bool all) {
  std::lock_guard<std::mutex> lock(mu_);
  // A fetch that took the old seq_ was sent before this change was heard,
  // and may hold what came before it: its stamp is now below the mark.
  ++seq_;
  if (all || changed_at_.size() + ids.size() > max_ids_) {
    // Everything fetched before now counts as changed: no mark is needed.
    floor_ = seq_;
    changed_at_.clear();
    return;
  }
  for (uint64_t id : ids) changed_at_[id] = seq_;
}

bool RemoteChanges::CurrentLocked(uint64_t id, uint64_t since) const {
  if (since < floor_) return false;
  auto it = changed_at_.find(id);
  return it == changed_at_.end() || it->second <= since;
}

bool RemoteChanges::Current(uint64_t id, uint64_t since) const {
  std::lock_guard<std::mutex> lock(mu_);
  return CurrentLocked(id, since);
}

bool RemoteChanges::Current(const std::vector<uint64_t>& ids, uint64_t since) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t id : ids) {
    if (!CurrentLocked(id, since)) return false;
  }
  return true;
}

size_t RemoteChanges::TEST_Marks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return changed_at_.size();
}

}  // namespace dfs::fuse
