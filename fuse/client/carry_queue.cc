#include "fuse/client/carry_queue.h"

#include <utility>

namespace dfs::fuse {

namespace {
bool IsSetAttr(const CarryQueue::Item& item) { return std::holds_alternative<pb::SetAttrRequest>(item); }
}  // namespace

void CarryQueue::Add(Item item) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (IsSetAttr(item)) ++set_attrs_;
    queue_.push_back(Queued{std::move(item), Clock::now()});
  }
  cv_.notify_all();
}

void CarryQueue::TakeInto(pb::RequestContext* ctx, int max_releases) {
  std::lock_guard<std::mutex> lock(mu_);
  int releases = 0;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (auto* set = std::get_if<pb::SetAttrRequest>(&it->item)) {
      *ctx->add_set_attrs() = std::move(*set);
      --set_attrs_;
    } else if (releases < max_releases) {
      *ctx->add_releases() = std::move(std::get<pb::ReleaseRequest>(it->item));
      ++releases;
    } else {
      ++it;
      continue;
    }
    it = queue_.erase(it);
  }
}

void CarryQueue::PutBack(const pb::RequestContext& ctx) {
  if (ctx.releases_size() == 0 && ctx.set_attrs_size() == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    for (int i = ctx.releases_size() - 1; i >= 0; --i) queue_.push_front(Queued{ctx.releases(i), now});
    for (int i = ctx.set_attrs_size() - 1; i >= 0; --i) queue_.push_front(Queued{ctx.set_attrs(i), now});
    set_attrs_ += static_cast<size_t>(ctx.set_attrs_size());
  }
  cv_.notify_all();
}

std::optional<CarryQueue::Item> CarryQueue::WaitOverdue() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (queue_.empty()) {
      if (stopping_) return std::nullopt;
      cv_.wait(lock);
      continue;
    }
    if (stopping_ || Clock::now() - queue_.front().since >= delay_) {
      Item item = std::move(queue_.front().item);
      queue_.pop_front();
      if (IsSetAttr(item)) --set_attrs_;
      return item;
    }
    cv_.wait_until(lock, queue_.front().since + delay_);
  }
}

void CarryQueue::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

bool CarryQueue::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

size_t CarryQueue::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t n = queue_.size();
  queue_.clear();
  set_attrs_ = 0;
  return n;
}

size_t CarryQueue::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

size_t CarryQueue::set_attr_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return set_attrs_;
}

bool CarryQueue::HoldsSetAttrFor(uint64_t ino) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Queued& q : queue_) {
    if (const auto* set = std::get_if<pb::SetAttrRequest>(&q.item); set != nullptr && set->ino() == ino) return true;
  }
  return false;
}

}  // namespace dfs::fuse
