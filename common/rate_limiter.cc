#include "common/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace dfs::common {

RateLimiter::RateLimiter(double rate_per_s, double burst, Clock& clock)
    : clock_(clock),
      rate_per_s_(std::max(0.0, rate_per_s)),
      burst_(std::max(1.0, burst)),
      tokens_(burst_),
      last_refill_ns_(clock.MonotonicNs()) {}

void RateLimiter::RefillLocked(int64_t now_ns) {
  if (now_ns > last_refill_ns_) {
    double elapsed_s = static_cast<double>(now_ns - last_refill_ns_) / 1e9;
    tokens_ = std::min(burst_, tokens_ + elapsed_s * rate_per_s_);
  }
  last_refill_ns_ = now_ns;
}

bool RateLimiter::TryAcquire(double tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  if (rate_per_s_ == 0) return true;
  RefillLocked(clock_.MonotonicNs());
  if (tokens_ < tokens) return false;
  tokens_ -= tokens;
  return true;
}

int64_t RateLimiter::ReserveNs(double tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  if (rate_per_s_ == 0) return 0;
  RefillLocked(clock_.MonotonicNs());
  tokens_ -= tokens;
  if (tokens_ >= 0) return 0;
  return static_cast<int64_t>(std::ceil(-tokens_ / rate_per_s_ * 1e9));
}

void RateLimiter::Acquire(double tokens) { clock_.SleepForNs(ReserveNs(tokens)); }

void RateLimiter::SetRate(double rate_per_s, double burst) {
  std::lock_guard<std::mutex> lock(mu_);
  RefillLocked(clock_.MonotonicNs());
  rate_per_s_ = std::max(0.0, rate_per_s);
  burst_ = std::max(1.0, burst);
  tokens_ = std::min(tokens_, burst_);
}

double RateLimiter::Available() {
  std::lock_guard<std::mutex> lock(mu_);
  RefillLocked(clock_.MonotonicNs());
  return tokens_;
}

}  // namespace dfs::common
