#include "fuse/client/dir_listings.h"

#include <algorithm>

namespace dfs::fuse {

namespace {
// A page of a fetch costs about as much as this many lookups it saves.
constexpr uint64_t kLookupsPerPage = 10;
}  // namespace

DirListings::DirListings(Options options, const common::Clock& clock, const RemoteChanges* remote)
    : options_(options), clock_(clock), remote_(remote) {}

bool DirListings::NoteLookup(uint64_t dir) {
  if (options_.ttl_ms <= 0) return false;
  const int64_t now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  if (dirs_.size() >= kMaxDirStates && !dirs_.contains(dir)) {
    const int64_t idle_ms = 10 * options_.ttl_ms;
    std::erase_if(dirs_, [&](const auto& kv) {
      return !kv.second.in_flight && now - kv.second.last_used_ms > idle_ms && !listings_.contains(kv.first);
    });
    if (dirs_.size() >= kMaxDirStates) return false;
  }
  DirState& d = dirs_[dir];
  d.last_used_ms = now;
  if (d.trigger == 0) d.trigger = options_.trigger_lookups;
  if (d.in_flight || now < d.no_listing_until_ms) return false;
  // Lookups count toward a fetch only while they come close together.
  if (d.lookups == 0 || now - d.window_start_ms > options_.ttl_ms) {
    d.lookups = 0;
    d.window_start_ms = now;
  }
  if (++d.lookups < d.trigger) return false;
  d.lookups = 0;
  d.in_flight = true;
  return true;
}

void DirListings::Put(uint64_t dir, std::vector<pb::DirEntry> entries, uint64_t stamp, uint64_t epoch,
                      uint64_t remote) {
  const int64_t now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.fetched;
  dirs_[dir].in_flight = false;
  if (auto it = listings_.find(dir); it != listings_.end()) Retire(it);
  const size_t incoming = entries.size();
  while ((listings_.size() >= options_.max_dirs || total_entries_ + incoming > options_.max_total_entries) &&
         !order_.empty()) {
    auto oldest = listings_.find(order_.front());
    if (oldest == listings_.end()) {
      order_.pop_front();
    } else {
      Retire(oldest);
    }
  }
  Listing& l = listings_[dir];
  l.stamp = stamp;
  l.epoch = epoch;
  l.remote = remote;
  l.expires_ms = now + options_.ttl_ms;
  l.pages = std::max<size_t>(1, (entries.size() + options_.page_entries - 1) / options_.page_entries);
  l.by_name.reserve(entries.size());
  for (pb::DirEntry& e : entries) {
    if (!e.has_attr() || e.attr().ino() != e.ino() || e.name() == "." || e.name() == "..") continue;
    // A second name of one inode is left to meta: Refresh keeps one copy.
    if (l.by_ino.contains(e.ino())) continue;
    auto [pos, inserted] = l.by_name.emplace(std::move(*e.mutable_name()), std::move(*e.mutable_attr()));
    if (!inserted) continue;
    l.by_ino[e.ino()] = &pos->second;
    dirs_of_ino_.emplace(e.ino(), dir);
  }
  l.entries = l.by_name.size();
  total_entries_ += l.entries;
  order_.push_back(dir);
}

void DirListings::Abandon(uint64_t dir, bool too_big) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.abandoned;
  DirState& d = dirs_[dir];
  d.in_flight = false;
  if (too_big) d.no_listing_until_ms = NowMs() + kTooBigPauseMs;
  d.trigger = std::min(options_.max_trigger_lookups, std::max<uint32_t>(1, d.trigger) * 2);
}

void DirListings::Refresh(const pb::Attr& attr) {
  if (options_.ttl_ms <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t dir : DirsOf(attr.ino())) {
    pb::Attr* held = listings_.at(dir).by_ino.at(attr.ino());
    if (attr.ctime_ns() >= held->ctime_ns()) *held = attr;
  }
}

void DirListings::DropListingsOf(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t dir : DirsOf(ino)) Retire(listings_.find(dir));
}

void DirListings::Answered(uint64_t dir, std::string_view name, uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = listings_.find(dir);
  if (it == listings_.end()) return;
  auto entry = it->second.by_name.find(std::string(name));
  if (entry != it->second.by_name.end() && entry->second.ino() != ino) Retire(it);
}

std::vector<uint64_t> DirListings::DirsOf(uint64_t ino) const {
  std::vector<uint64_t> dirs;
  auto [first, last] = dirs_of_ino_.equal_range(ino);
  for (auto it = first; it != last; ++it) dirs.push_back(it->second);
  return dirs;
}

void DirListings::Retire(std::unordered_map<uint64_t, Listing>::iterator it) {
  const Listing& l = it->second;
  DirState& d = dirs_[it->first];
  const bool paid = l.hits >= l.pages * kLookupsPerPage;
  d.trigger = paid ? options_.trigger_lookups
                   : std::min(options_.max_trigger_lookups, std::max<uint32_t>(1, d.trigger) * 2);
  for (const auto& [ino, attr] : l.by_ino) {
    auto [first, last] = dirs_of_ino_.equal_range(ino);
    for (auto pos = first; pos != last; ++pos) {
      if (pos->second == it->first) {
        dirs_of_ino_.erase(pos);
        break;
      }
    }
  }
  order_.remove(it->first);
  total_entries_ -= l.entries;
  listings_.erase(it);
}

DirListings::Listing* DirListings::Usable(uint64_t dir, uint64_t stamp, int64_t now) {
  auto it = listings_.find(dir);
  if (it == listings_.end()) return nullptr;
  if (it->second.stamp != stamp || it->second.expires_ms <= now ||
      (remote_ != nullptr && !remote_->Current(dir, it->second.remote))) {
    Retire(it);
    return nullptr;
  }
  return &it->second;
}

std::optional<DirListings::Hit> DirListings::Find(uint64_t dir, std::string_view name, uint64_t stamp) {
  if (options_.ttl_ms <= 0) return std::nullopt;
  const int64_t now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  Listing* l = Usable(dir, stamp, now);
  if (l == nullptr) return std::nullopt;
  auto it = l->by_name.find(std::string(name));
  if (it == l->by_name.end()) return std::nullopt;
  if (remote_ != nullptr && !remote_->Current(it->second.ino(), l->remote)) return std::nullopt;
  ++l->hits;
  ++stats_.served;
  return Hit{it->second, static_cast<double>(l->expires_ms - now) / 1000.0, l->epoch};
}

std::optional<DirListings::Hit> DirListings::FindIno(uint64_t ino, uint64_t stamp) {
  if (options_.ttl_ms <= 0) return std::nullopt;
  const int64_t now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t dir : DirsOf(ino)) {
    Listing* l = Usable(dir, stamp, now);
    if (l == nullptr) continue;
    auto it = l->by_ino.find(ino);
    if (it == l->by_ino.end()) continue;
    if (remote_ != nullptr && !remote_->Current(ino, l->remote)) continue;
    ++l->hits;
    ++stats_.served;
    return Hit{*it->second, static_cast<double>(l->expires_ms - now) / 1000.0, l->epoch};
  }
  return std::nullopt;
}

DirListings::Stats DirListings::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

size_t DirListings::TEST_Listings() const {
  std::lock_guard<std::mutex> lock(mu_);
  return listings_.size();
}

}  // namespace dfs::fuse
