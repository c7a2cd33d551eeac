// Clock: the one source of time for code that must be testable without
// sleeping. Production code takes a Clock& (SystemClock::Get()); tests pass a
// ManualClock and advance it by hand.
//
// Two timelines: wall time (UnixNs, for timestamps stored in metadata and
// lease expiries exchanged between machines) and monotonic time (MonotonicNs,
// for timeouts and rates, never goes backwards).
//
// Thread-safety: all methods of both clocks may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace dfs::common {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t UnixNs() const = 0;
  virtual int64_t MonotonicNs() const = 0;
  // Blocks the calling thread for `duration_ns` of this clock's time.
  virtual void SleepForNs(int64_t duration_ns) = 0;
};

class SystemClock final : public Clock {
 public:
  static SystemClock& Get();
  int64_t UnixNs() const override;
  int64_t MonotonicNs() const override;
  void SleepForNs(int64_t duration_ns) override;
};

// Time stands still until Advance; SleepForNs advances the clock itself (a
// sleeping test thread is the only one moving time), so code under test that
// sleeps finishes instantly and deterministically.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_unix_ns = 1'700'000'000'000'000'000, int64_t start_mono_ns = 1'000'000'000)
      : unix_ns_(start_unix_ns), mono_ns_(start_mono_ns) {}
  int64_t UnixNs() const override { return unix_ns_.load(); }
  int64_t MonotonicNs() const override { return mono_ns_.load(); }
  void SleepForNs(int64_t duration_ns) override { Advance(duration_ns); }
  void Advance(int64_t duration_ns) {
    if (duration_ns <= 0) return;
    unix_ns_ += duration_ns;
    mono_ns_ += duration_ns;
  }

 private:
  std::atomic<int64_t> unix_ns_;
  std::atomic<int64_t> mono_ns_;
};

}  // namespace dfs::common
