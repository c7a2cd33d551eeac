#include "fuse/client/lock_waiters.h"

#include <algorithm>
#include <chrono>

namespace dfs::fuse {

namespace {

int64_t NowMonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

LockWaiters::LockWaiters() : thread_([this] { Loop(); }) {}

LockWaiters::~LockWaiters() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void LockWaiters::Add(Waiter waiter) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      waiting_.push_back({std::move(waiter), NowMonoMs() + kFirstPauseMs, kFirstPauseMs});
      cv_.notify_all();
      return;
    }
  }
  waiter.answer(common::Status(common::StatusCode::kCancelled, "the mount is stopping"));
}

size_t LockWaiters::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_.size() + trying_;
}

void LockWaiters::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (stopping_) {
      std::vector<Entry> left = std::move(waiting_);
      waiting_.clear();
      lock.unlock();
      for (Entry& e : left) e.waiter.answer(common::Status(common::StatusCode::kCancelled, "the mount is stopping"));
      return;
    }
    if (waiting_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const int64_t now = NowMonoMs();
    auto due = std::min_element(waiting_.begin(), waiting_.end(),
                                [](const Entry& a, const Entry& b) { return a.due_mono_ms < b.due_mono_ms; });
    if (due->due_mono_ms > now) {
      cv_.wait_for(lock, std::chrono::milliseconds(due->due_mono_ms - now));
      continue;
    }
    Entry entry = std::move(*due);
    waiting_.erase(due);
    ++trying_;
    lock.unlock();
    bool done = true;
    if (entry.waiter.interrupted()) {
      entry.waiter.answer(common::Status(common::StatusCode::kCancelled, "interrupted"));
    } else if (common::Status s = entry.waiter.attempt(); s.code() != common::StatusCode::kAborted) {
      entry.waiter.answer(s);
    } else {
      done = false;
    }
    lock.lock();
    --trying_;
    if (!done) {
      entry.pause_ms = std::min(kMaxPauseMs, entry.pause_ms * 2);
      entry.due_mono_ms = NowMonoMs() + entry.pause_ms;
      waiting_.push_back(std::move(entry));
    }
  }
}

}  // namespace dfs::fuse
