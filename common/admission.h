// Admission: the first thing every dfs RPC handler does. It checks the
// caller's role (auth.h) and holds each client host to a request rate (a
// token bucket per peer IP, common/rate_limiter.h), so one client cannot
// starve the others. Only calls that need no more than kClient count against
// the rate: chunkservers' heartbeats and admin calls are never throttled.
//
// A throttled call gets RESOURCE_EXHAUSTED with the trailing metadata
// kRetryAfterHeader (leader_channel.h), which LeaderChannel honours by
// waiting and retrying, so applications see a slower call, not an error.
//
// Thread-safety: Admit may run concurrently on any thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/auth.h"
#include "common/rate_limiter.h"
#include "common/thread_annotations.h"

namespace dfs::common {

class Admission {
 public:
  struct Options {
    Authorizer::Options auth;
    double client_rate_per_s = 0;  // requests/s per client host; 0: unlimited
    double client_burst = 0;       // bucket size; 0: one second's worth
    size_t max_tracked_hosts = 10'000;  // buckets kept; beyond, all are forgotten
  };
  explicit Admission(Options options, Clock& clock = SystemClock::Get());
  Admission(const Admission&) = delete;
  Admission& operator=(const Admission&) = delete;

  // OK, or the Authorizer's refusal, or RESOURCE_EXHAUSTED (with the
  // retry-after header added to `ctx`) when the caller's host is over its
  // rate. Never blocks.
  grpc::Status Admit(grpc::ServerContextBase* ctx, Role needed);
  // The rate half of Admit, for a call that is not an RPC of its own (a
  // message of a stream admitted once) from `peer` (ServerContext::peer()):
  // OK, or RESOURCE_EXHAUSTED with the wait in *retry_after_ms.
  grpc::Status Charge(const std::string& peer, int64_t* retry_after_ms);

  const Authorizer& authorizer() const { return authorizer_; }

 private:
  // "ipv4:10.0.0.5:41234" -> "ipv4:10.0.0.5".
  static std::string PeerHost(const std::string& peer);

  const Options options_;
  Clock& clock_;
  const Authorizer authorizer_;
  std::mutex mu_;  // guards buckets_ (and serializes their use: never waits)
  std::map<std::string, std::unique_ptr<RateLimiter>> buckets_ GUARDED_BY(mu_);
};

}  // namespace dfs::common
