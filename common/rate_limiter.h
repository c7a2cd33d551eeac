// RateLimiter: a token bucket. Tokens (bytes, requests...) refill at `rate`
// per second up to `burst`; a caller takes tokens before doing the work they
// stand for. Used for repair bandwidth limits and per-client request rates.
//
// A request larger than the bucket is not refused: it takes the bucket into
// debt and the caller waits until the debt is repaid, so the long-run rate
// holds for any request size. A rate of 0 means unlimited.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <mutex>

#include "common/clock.h"
#include "common/thread_annotations.h"

namespace dfs::common {

class RateLimiter {
 public:
  // `rate_per_s` >= 0 (0 = unlimited); `burst` > 0 tokens. The bucket starts full.
  RateLimiter(double rate_per_s, double burst, Clock& clock = SystemClock::Get());

  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes `tokens` if the bucket holds them now; never blocks, never goes
  // into debt. For admission control ("too many requests").
  bool TryAcquire(double tokens);

  // Takes `tokens` now, going into debt if needed, and returns how long the
  // caller must wait before doing the work (0 if none). Never blocks.
  int64_t ReserveNs(double tokens);

  // ReserveNs, then sleeps on the clock for the returned time. Blocks.
  void Acquire(double tokens);

  // Changes the rate and burst; tokens already in the bucket are kept (capped
  // at the new burst).
  void SetRate(double rate_per_s, double burst);

  // Tokens in the bucket now (negative while in debt).
  double Available();

 private:
  void RefillLocked(int64_t now_ns) REQUIRES(mu_);

  Clock& clock_;
  std::mutex mu_;  // guards everything below
  double rate_per_s_ GUARDED_BY(mu_);
  double burst_ GUARDED_BY(mu_);
  double tokens_ GUARDED_BY(mu_);
  int64_t last_refill_ns_ GUARDED_BY(mu_);
};

}  // namespace dfs::common
