#include "common/rate_limiter.h"

#include <gtest/gtest.h>

namespace dfs::common {
namespace {

constexpr int64_t kSecondNs = 1'000'000'000;

TEST(RateLimiterTest, TryAcquire_RefusesBeyondBurstUntilRefilled) {
  ManualClock clock;
  RateLimiter limiter(/*rate_per_s=*/100, /*burst=*/10, clock);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(limiter.TryAcquire(1)) << i;
  EXPECT_FALSE(limiter.TryAcquire(1));
  clock.Advance(kSecondNs / 100);  // one token
  EXPECT_TRUE(limiter.TryAcquire(1));
  EXPECT_FALSE(limiter.TryAcquire(1));
}

TEST(RateLimiterTest, Refill_CapsAtBurst) {
  ManualClock clock;
  RateLimiter limiter(100, 10, clock);
  clock.Advance(100 * kSecondNs);
  EXPECT_DOUBLE_EQ(limiter.Available(), 10);
}

TEST(RateLimiterTest, ReserveNs_LargeRequestGoesIntoDebt) {
  ManualClock clock;
  RateLimiter limiter(/*rate_per_s=*/1'000'000, /*burst=*/1'000'000, clock);
  EXPECT_EQ(limiter.ReserveNs(1'000'000), 0);           // the full bucket
  EXPECT_EQ(limiter.ReserveNs(2'000'000), 2 * kSecondNs);  // two seconds of debt
  EXPECT_FALSE(limiter.TryAcquire(1));
  clock.Advance(2 * kSecondNs);
  EXPECT_NEAR(limiter.Available(), 0, 1e-6);
}

TEST(RateLimiterTest, Acquire_HoldsLongRunRate) {
  ManualClock clock;
  RateLimiter limiter(/*rate_per_s=*/1000, /*burst=*/100, clock);
  int64_t start = clock.MonotonicNs();
  for (int i = 0; i < 100; ++i) limiter.Acquire(100);  // 10,000 tokens
  double elapsed_s = static_cast<double>(clock.MonotonicNs() - start) / kSecondNs;
  // The first 100 tokens came from the full bucket: 9,900 at 1,000/s.
  EXPECT_NEAR(elapsed_s, 9.9, 0.01);
}

TEST(RateLimiterTest, ZeroRate_IsUnlimited) {
  ManualClock clock;
  RateLimiter limiter(0, 1, clock);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.TryAcquire(1'000'000));
  EXPECT_EQ(limiter.ReserveNs(1e12), 0);
}

TEST(RateLimiterTest, SetRate_TakesEffect) {
  ManualClock clock;
  RateLimiter limiter(10, 10, clock);
  EXPECT_TRUE(limiter.TryAcquire(10));
  limiter.SetRate(1000, 1000);
  clock.Advance(kSecondNs / 10);  // 100 tokens at the new rate
  EXPECT_TRUE(limiter.TryAcquire(100));
  EXPECT_FALSE(limiter.TryAcquire(1));
}

}  // namespace
}  // namespace dfs::common
