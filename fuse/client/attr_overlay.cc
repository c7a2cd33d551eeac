#include "fuse/client/attr_overlay.h"

namespace dfs::fuse {

uint64_t AttrOverlay::Epoch() const {
  std::lock_guard<std::mutex> lock(mu_);
  return epoch_;
}

uint64_t AttrOverlay::Add(const pb::Attr& attr) {
  std::lock_guard<std::mutex> lock(mu_);
  Change& c = changes_[attr.ino()];
  c.mode = attr.mode();
  c.uid = attr.uid();
  c.gid = attr.gid();
  c.ctime_ns = attr.ctime_ns();
  c.seq = next_seq_++;
  c.acked_epoch = 0;
  return c.seq;
}

void AttrOverlay::Acked(uint64_t ino, uint64_t seq) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    auto it = changes_.find(ino);
    if (it == changes_.end() || it->second.acked_epoch != 0 || it->second.seq > seq) return;
    it->second.acked_epoch = ++epoch_;
    it->second.acked_at = now;
    // Forget long-applied changes (no read lasts that long: retry_timeout),
    // sweeping at most once a second: the map holds every change of the
    // last two minutes (two per file in a tar x), too many to walk per ack.
    if (now - last_sweep_ >= std::chrono::seconds(1)) {
      last_sweep_ = now;
      for (auto old = changes_.begin(); old != changes_.end();) {
        const Change& c = old->second;
        old = c.acked_epoch != 0 && now - c.acked_at > kKeepApplied ? changes_.erase(old) : std::next(old);
      }
    }
  }
  applied_cv_.notify_all();
}

void AttrOverlay::Apply(pb::Attr* attr, uint64_t read_epoch) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = changes_.find(attr->ino());
  if (it == changes_.end()) return;
  const Change& c = it->second;
  if (c.acked_epoch != 0 && c.acked_epoch <= read_epoch) return;  // the read saw it applied
  attr->set_mode(c.mode);
  attr->set_uid(c.uid);
  attr->set_gid(c.gid);
  attr->set_ctime_ns(c.ctime_ns);
}

bool AttrOverlay::Pending(uint64_t ino) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = changes_.find(ino);
  return it != changes_.end() && it->second.acked_epoch == 0;
}

bool AttrOverlay::WaitApplied(uint64_t ino, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return applied_cv_.wait_for(lock, timeout, [&] {
    auto it = changes_.find(ino);
    return it == changes_.end() || it->second.acked_epoch != 0;
  });
}

size_t AttrOverlay::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return changes_.size();
}

}  // namespace dfs::fuse
