#include "fuse/client/release_queue.h"

#include <utility>

namespace dfs::fuse {

void ReleaseQueue::Add(pb::ReleaseRequest release) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Queued{std::move(release), Clock::now()});
  }
  cv_.notify_all();
}

void ReleaseQueue::TakeInto(google::protobuf::RepeatedPtrField<pb::ReleaseRequest>* out, int max) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int n = 0; n < max && !queue_.empty(); ++n) {
    *out->Add() = std::move(queue_.front().release);
    queue_.pop_front();
  }
}

void ReleaseQueue::PutBack(const google::protobuf::RepeatedPtrField<pb::ReleaseRequest>& releases) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    for (int i = releases.size() - 1; i >= 0; --i) queue_.push_front(Queued{releases.Get(i), now});
  }
  cv_.notify_all();
}

std::optional<pb::ReleaseRequest> ReleaseQueue::WaitOverdue() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (queue_.empty()) {
      if (stopping_) return std::nullopt;
      cv_.wait(lock);
      continue;
    }
    if (stopping_ || Clock::now() - queue_.front().since >= delay_) {
      pb::ReleaseRequest release = std::move(queue_.front().release);
      queue_.pop_front();
      return release;
    }
    cv_.wait_until(lock, queue_.front().since + delay_);
  }
}

void ReleaseQueue::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

bool ReleaseQueue::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

size_t ReleaseQueue::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t n = queue_.size();
  queue_.clear();
  return n;
}

size_t ReleaseQueue::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

}  // namespace dfs::fuse
