// LockWaiters: a waiter is answered once - granted, failed, interrupted,
// or cancelled when the waiters stop - and retried with back-off meanwhile.
#include "fuse/client/lock_waiters.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>

namespace dfs::fuse {
namespace {

using common::Status;
using common::StatusCode;

struct Probe {
  std::atomic<int> attempts{0};
  std::atomic<int> answers{0};
  std::atomic<bool> interrupted{false};
  std::promise<Status> answered;
};

LockWaiters::Waiter WaiterFor(std::shared_ptr<Probe> p, std::function<Status(int)> outcome) {
  return {[p, outcome] { return outcome(++p->attempts); }, [p] { return p->interrupted.load(); },
          [p](const Status& s) {
            if (++p->answers == 1) p->answered.set_value(s);
          }};
}

Status Busy() { return Status(StatusCode::kAborted, "in the way"); }

TEST(LockWaitersTest, RetriesUntilGrantedAndAnswersOnce) {
  LockWaiters waiters;
  auto p = std::make_shared<Probe>();
  auto answer = p->answered.get_future();
  waiters.Add(WaiterFor(p, [](int n) { return n < 4 ? Busy() : Status::Ok(); }));
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(answer.get().ok());
  EXPECT_EQ(p->attempts.load(), 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(p->answers.load(), 1);
  EXPECT_EQ(waiters.size(), 0u);
}

TEST(LockWaitersTest, AnotherFailureEndsTheWait) {
  LockWaiters waiters;
  auto p = std::make_shared<Probe>();
  auto answer = p->answered.get_future();
  waiters.Add(WaiterFor(p, [](int n) { return n < 2 ? Busy() : Status(StatusCode::kUnavailable, "meta down"); }));
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(answer.get().code(), StatusCode::kUnavailable);
}

TEST(LockWaitersTest, AnInterruptedCallIsAnsweredEintrAndNotRetried) {
  LockWaiters waiters;
  auto p = std::make_shared<Probe>();
  auto answer = p->answered.get_future();
  waiters.Add(WaiterFor(p, [](int) { return Busy(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(waiters.size(), 1u);
  p->interrupted = true;
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  Status s = answer.get();
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
  EXPECT_EQ(s.ToErrno(), EINTR);
  const int attempts = p->attempts.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(p->attempts.load(), attempts);
}

TEST(LockWaitersTest, BacksOffBetweenTries) {
  LockWaiters waiters;
  auto p = std::make_shared<Probe>();
  waiters.Add(WaiterFor(p, [](int) { return Busy(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  // 5, 10, 20 ... 200 ms pauses: about 9 tries in a second, not hundreds.
  EXPECT_GE(p->attempts.load(), 4);
  EXPECT_LE(p->attempts.load(), 14);
  p->interrupted = true;
}

TEST(LockWaitersTest, StoppingCancelsEveryWaiter) {
  std::vector<std::shared_ptr<Probe>> probes;
  std::vector<std::future<Status>> answers;
  {
    LockWaiters waiters;
    for (int i = 0; i < 3; ++i) {
      probes.push_back(std::make_shared<Probe>());
      answers.push_back(probes.back()->answered.get_future());
      waiters.Add(WaiterFor(probes.back(), [](int) { return Busy(); }));
    }
  }
  for (auto& a : answers) {
    ASSERT_EQ(a.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_EQ(a.get().code(), StatusCode::kCancelled);
  }
}

}  // namespace
}  // namespace dfs::fuse
