#include "fuse/client/dir_prefetch.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>

#include "common/dir_page.h"

namespace dfs::fuse {

DirPrefetch::DirPrefetch(Options options, const common::Clock& clock, Fetch fetch, const RemoteChanges* remote)
    : options_(options), clock_(clock), fetch_(std::move(fetch)), remote_(remote) {
  if (options_.ttl_ms <= 0) return;
  for (size_t i = 0; i < options_.threads; ++i) workers_.emplace_back([this] { Work(); });
}

DirPrefetch::~DirPrefetch() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  work_cv_.notify_all();
  landed_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void DirPrefetch::Listed(const Caller& c, uint64_t dir, const pb::ReadDirReply& page) {
  if (options_.ttl_ms <= 0) return;
  std::vector<uint64_t> subdirs;
  (void)common::ForEachDirEntry(page, [&](const common::DirPageEntry& e) {
    if (e.type == S_IFDIR && e.name != "." && e.name != "..") subdirs.push_back(e.ino);
    return true;
  });
  std::lock_guard<std::mutex> lock(mu_);
  if (!subdirs.empty()) {
    auto [it, made] = children_.try_emplace(dir);
    if (made) {
      parents_order_.push_back(dir);
      if (parents_order_.size() > kMaxKnownParents) {
        const uint64_t oldest = parents_order_.front();
        parents_order_.pop_front();
        for (uint64_t child : children_[oldest]) {
          if (auto p = parent_of_.find(child); p != parent_of_.end() && p->second == oldest) parent_of_.erase(p);
        }
        children_.erase(oldest);
        it = children_.find(dir);
      }
    }
    for (uint64_t child : subdirs) {
      // A page read again (the kernel re-lists) adds nothing twice.
      auto [p, added] = parent_of_.try_emplace(child, dir);
      if (added) {
        it->second.push_back(child);
      } else if (p->second != dir) {
        p->second = dir;  // moved since: its latest listing says where it is
        it->second.push_back(child);
      }
    }
  }
  // A walk going down: `dir` was a subdirectory of an earlier listing.
  auto parent = parent_of_.find(dir);
  if (parent == parent_of_.end()) return;
  const size_t window = options_.look_ahead;
  if (auto own = children_.find(dir); own != children_.end()) {
    const std::vector<uint64_t>& list = own->second;
    for (size_t i = 0; i < list.size() && i < window; ++i) Queue(c, list[i]);
  }
  if (auto siblings = children_.find(parent->second); siblings != children_.end()) {
    const std::vector<uint64_t>& list = siblings->second;
    auto self = std::find(list.begin(), list.end(), dir);
    if (self != list.end()) {
      const auto end = list.end() - self - 1 > static_cast<ptrdiff_t>(window) ? self + 1 + window : list.end();
      for (auto next = self + 1; next != end; ++next) Queue(c, *next);
    }
  }
}

void DirPrefetch::Queue(const Caller& c, uint64_t dir) {
  if (queue_.size() >= options_.max_queue || pending_.count(dir) != 0) return;
  if (auto h = held_.find(dir); h != held_.end() && h->second.expires_ms > NowMs()) return;
  pending_.insert(dir);
  queue_.push_back(Job{dir, c});
  work_cv_.notify_one();
}

void DirPrefetch::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    std::optional<Fetched> fetched = fetch_(job.caller, job.dir);
    const int64_t now = NowMs();
    lock.lock();
    pending_.erase(job.dir);
    if (fetched) {
      Hold(job.dir, Held{std::move(*fetched), std::move(job.caller), 0, now + options_.ttl_ms});
      ++stats_.fetched;
    }
    landed_cv_.notify_all();
  }
}

void DirPrefetch::Hold(uint64_t dir, Held held) {
  Drop(dir);
  for (const pb::DirEntry& e : held.fetched.page.entries()) dirs_of_ino_.emplace(e.ino(), dir);
  held_[dir] = std::move(held);
  held_order_.push_back(dir);
  while (held_order_.size() > options_.max_pages) DropOldest();
}

void DirPrefetch::Unindex(uint64_t dir, const Held& held) {
  for (const pb::DirEntry& e : held.fetched.page.entries()) {
    auto [first, last] = dirs_of_ino_.equal_range(e.ino());
    for (auto it = first; it != last; ++it) {
      if (it->second == dir) {
        dirs_of_ino_.erase(it);
        break;
      }
    }
  }
}

void DirPrefetch::Drop(uint64_t dir) {
  auto it = held_.find(dir);
  if (it == held_.end()) return;
  Unindex(dir, it->second);
  held_.erase(it);
  held_order_.remove(dir);
}

void DirPrefetch::DropOldest() {
  const uint64_t dir = held_order_.front();
  auto it = held_.find(dir);
  if (it != held_.end()) {
    Unindex(dir, it->second);
    held_.erase(it);
  }
  held_order_.pop_front();
}

void DirPrefetch::Refresh(const pb::Attr& attr) {
  if (options_.ttl_ms <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto [first, last] = dirs_of_ino_.equal_range(attr.ino());
  for (auto it = first; it != last; ++it) {
    for (pb::DirEntry& e : *held_.at(it->second).fetched.page.mutable_entries()) {
      if (e.ino() == attr.ino() && e.has_attr() && attr.ctime_ns() >= e.attr().ctime_ns()) *e.mutable_attr() = attr;
    }
  }
}

void DirPrefetch::DropPagesNaming(uint64_t ino) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> dirs;
  auto [first, last] = dirs_of_ino_.equal_range(ino);
  for (auto it = first; it != last; ++it) dirs.push_back(it->second);
  for (uint64_t dir : dirs) Drop(dir);
}

void DirPrefetch::Keep(const Caller& c, uint64_t dir, uint64_t start_cookie, Fetched fetched) {
  if (options_.ttl_ms <= 0) return;
  const int64_t now = NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  Hold(dir, Held{std::move(fetched), c, start_cookie, now + options_.ttl_ms});
}

std::optional<DirPrefetch::Hit> DirPrefetch::Take(const Caller& c, uint64_t dir, uint64_t cookie, uint64_t stamp,
                                                  uint32_t max_entries) {
  if (options_.ttl_ms <= 0) return std::nullopt;
  std::unique_lock<std::mutex> lock(mu_);
  if (cookie == 0 && pending_.count(dir) != 0) {
    // Running, it lands in well under the wait. Queued behind others, the
    // caller is better off asking meta itself, and the job is dropped.
    auto queued = std::find_if(queue_.begin(), queue_.end(), [&](const Job& j) { return j.dir == dir; });
    if (queued != queue_.end()) {
      queue_.erase(queued);
      pending_.erase(dir);
      return std::nullopt;
    }
    landed_cv_.wait_for(lock, std::chrono::milliseconds(kWaitInFlightMs),
                        [&] { return stopping_ || pending_.count(dir) == 0; });
  }
  auto it = held_.find(dir);
  if (it == held_.end()) return std::nullopt;
  const Held& held = it->second;
  const int64_t now = NowMs();
  if (held.expires_ms <= now || held.fetched.stamp != stamp || !SameCredentials(held.caller, c)) {
    Drop(dir);
    return std::nullopt;
  }
  const auto& entries = held.fetched.page.entries();
  int from = 0;
  if (cookie != held.start_cookie) {
    auto at = std::find_if(entries.begin(), entries.end(), [&](const pb::DirEntry& e) { return e.cookie() == cookie; });
    if (at == entries.end()) return std::nullopt;  // not a continuation of this page
    from = static_cast<int>(at - entries.begin()) + 1;
  }
  if (from == entries.size() && !held.fetched.page.eof()) return std::nullopt;
  const int64_t room = std::max<uint32_t>(max_entries, 1);
  const int to = static_cast<int>(std::min<int64_t>(entries.size(), from + room));
  if (remote_ != nullptr) {
    std::vector<uint64_t> ids = {dir};
    for (int i = from; i < to; ++i) ids.push_back(entries[i].ino());
    if (!remote_->Current(ids, held.fetched.remote)) {
      Drop(dir);
      return std::nullopt;
    }
  }
  Hit hit;
  hit.page.set_eof(held.fetched.page.eof() && to == entries.size());
  hit.page.mutable_entries()->Reserve(to - from);
  for (int i = from; i < to; ++i) *hit.page.add_entries() = entries[i];
  hit.epoch = held.fetched.epoch;
  hit.valid_s = static_cast<double>(held.expires_ms - now) / 1000.0;
  ++stats_.served;
  return hit;
}

DirPrefetch::Stats DirPrefetch::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace dfs::fuse
