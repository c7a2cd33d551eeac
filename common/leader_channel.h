// LeaderChannel: talks to whichever member of a Raft group is the leader.
//
// It holds one gRPC channel per known member address (created lazily; a
// leader hint may name a member that was not in the initial list). Call()
// runs an RPC against the current leader guess and, when the call fails with
// UNAVAILABLE or an attempt's deadline passes, moves to the hinted leader
// (trailing metadata "dfs-leader", see grpc_status.h) or else to the next
// member, backing off between rounds, until the call succeeds, fails for
// another reason, or the total deadline passes; a rate-limited answer
// (RESOURCE_EXHAUSTED with kRetryAfterHeader) is retried on the same member
// after the wait it names. Retrying a mutation is safe
// because every mutation carries (client_id, request_id) and meta applies it
// once: the caller must reuse the same request for every attempt.
//
// Thread-safety: Call() may run concurrently from any number of threads.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/thread_annotations.h"

namespace dfs::common {

// Largest gRPC message dfs sends or accepts: data messages carry 1 MiB, the
// rest is headroom; a bad peer cannot make us allocate more.
inline constexpr int kMaxGrpcMessageBytes = 8 << 20;

// Trailing metadata of a RESOURCE_EXHAUSTED answer from a rate limit:
// milliseconds to wait before trying again. Call() waits and retries.
inline constexpr char kRetryAfterHeader[] = "dfs-retry-after-ms";

// How often MakeChannel's channels ping a connection with calls in flight
// (to notice a dead peer); servers allow it (SetServerLimits in daemon.h).
inline constexpr int kKeepAliveTimeMs = 10'000;

// A channel to `address` with dfs's message limits and keepalive settings,
// the process's TLS credentials and its "dfs-auth" header (tls.h).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

class LeaderChannel {
 public:
  struct Options {
    int64_t attempt_timeout_ms = 5'000;   // deadline of one attempt
    int64_t total_timeout_ms = 30'000;    // give up after this long
    int64_t backoff_initial_ms = 10;      // pause after a full round of failures
    int64_t backoff_max_ms = 500;
    Clock* clock = &SystemClock::Get();
  };

  // An attempt: issue the RPC on `channel` with `context` (deadline already
  // set) and return its status.
  using Attempt = std::function<grpc::Status(const std::shared_ptr<grpc::Channel>& channel,
                                            grpc::ClientContext& context)>;

  // `addresses` is the SOURCE form "host:port[,host:port...]".
  // InvalidArgument if it does not parse.
  static Result<std::unique_ptr<LeaderChannel>> Create(std::string_view addresses, Options options);

  LeaderChannel(const LeaderChannel&) = delete;
  LeaderChannel& operator=(const LeaderChannel&) = delete;

  // Runs `attempt` until it succeeds or fails with a non-retryable status
  // (returned as is); UNAVAILABLE or DEADLINE_EXCEEDED once the total
  // deadline has passed. Blocks.
  grpc::Status Call(const Attempt& attempt);

  // The address the next call will try first.
  std::string current_leader() const;

 private:
  LeaderChannel(std::vector<std::string> addresses, Options options);
  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& address);
  // Records a successful call on `address`, or moves the guess after a failure.
  void Advance(const std::string& failed_address, const std::string& hint);

  const Options options_;
  mutable std::mutex mu_;  // guards the members below; never held across an RPC
  std::vector<std::string> members_ GUARDED_BY(mu_);
  size_t leader_index_ GUARDED_BY(mu_) = 0;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ GUARDED_BY(mu_);
};

}  // namespace dfs::common
