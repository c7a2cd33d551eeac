#include "common/leader_channel.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>

#include <grpcpp/support/client_interceptor.h>

#include "common/auth.h"
#include "common/flags.h"
#include "common/grpc_status.h"
#include "common/tls.h"

namespace dfs::common {
namespace {

// Adds the process's "dfs-auth" header to every call of a channel.
class AuthHeader final : public grpc::experimental::Interceptor {
 public:
  explicit AuthHeader(const std::string& value) : value_(value) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(kAuthHeader, value_);
    }
    methods->Proceed();
  }

 private:
  const std::string& value_;  // the factory's, which outlives the channel's calls
};

class AuthHeaderFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit AuthHeaderFactory(std::string value) : value_(std::move(value)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo*) override {
    return new AuthHeader(value_);
  }

 private:
  const std::string value_;
};

// A RESOURCE_EXHAUSTED answer that says when to try again (a rate limit,
// not an oversized message).
std::optional<int64_t> RetryAfterMs(const grpc::ClientContext& context, const grpc::Status& status) {
  if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) return std::nullopt;
  std::optional<std::string> hint = HintOf(context, status, kRetryAfterHeader);
  if (!hint) return std::nullopt;
  const std::string& text = *hint;
  char* end = nullptr;
  long long ms = std::strtoll(text.c_str(), &end, 10);
  if (end == text.c_str() || ms < 0) return std::nullopt;
  return std::min<int64_t>(ms, 1'000);
}

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  const ClientIdentity& identity = GetClientIdentity();
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
  args.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
  // Notice a dead peer within seconds while calls are in flight. Idle
  // connections are not pinged: gRPC 1.51 servers answer such pings with
  // GOAWAY "too_many_pings" after a few, and with that allowed the client's
  // keepalive watchdog still closed idle connections at ~30 s; either way
  // the next call of an idle client (a chunk write) failed with UNAVAILABLE.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepAliveTimeMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  // Reconnect quickly after a failover instead of gRPC's 1 s minimum with
  // exponential growth up to 120 s.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      identity.credentials != nullptr ? identity.credentials : grpc::InsecureChannelCredentials();
  if (identity.auth.empty()) return grpc::CreateCustomChannel(address, credentials, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<AuthHeaderFactory>(identity.auth));
  return grpc::experimental::CreateCustomChannelWithInterceptors(address, credentials, args, std::move(interceptors));
}

Result<std::unique_ptr<LeaderChannel>> LeaderChannel::Create(std::string_view addresses, Options options) {
  ASSIGN_OR_RETURN(std::vector<HostPort> parsed, ParseAddressList(addresses));
  std::vector<std::string> members;
  for (const HostPort& hp : parsed) members.push_back(hp.ToString());
  return std::unique_ptr<LeaderChannel>(new LeaderChannel(std::move(members), std::move(options)));
}

LeaderChannel::LeaderChannel(std::vector<std::string> addresses, Options options)
    : options_(std::move(options)), members_(std::move(addresses)) {}

std::string LeaderChannel::current_leader() const {
  std::lock_guard<std::mutex> lock(mu_);
  return members_[leader_index_];
}

std::shared_ptr<grpc::Channel> LeaderChannel::ChannelFor(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = channels_.find(address);
  if (it != channels_.end()) return it->second;
  auto channel = MakeChannel(address);
  channels_.emplace(address, channel);
  return channel;
}

void LeaderChannel::Advance(const std::string& failed_address, const std::string& hint) {
  std::lock_guard<std::mutex> lock(mu_);
  // Another thread may already have moved on; only move from where we failed.
  if (members_[leader_index_] != failed_address) return;
  if (!hint.empty() && hint != failed_address) {
    auto it = std::find(members_.begin(), members_.end(), hint);
    if (it == members_.end()) {
      members_.push_back(hint);  // a member we were not told about
      it = members_.end() - 1;
    }
    leader_index_ = static_cast<size_t>(it - members_.begin());
    return;
  }
  leader_index_ = (leader_index_ + 1) % members_.size();
}

grpc::Status LeaderChannel::Call(const Attempt& attempt) {
  Clock& clock = *options_.clock;
  const int64_t deadline_ns = clock.MonotonicNs() + options_.total_timeout_ms * 1'000'000;
  int64_t backoff_ms = options_.backoff_initial_ms;
  size_t failures_this_round = 0;
  grpc::Status last(grpc::StatusCode::UNAVAILABLE, "no attempt made");

  while (true) {
    std::string address = current_leader();
    grpc::ClientContext context;
    int64_t remaining_ms = (deadline_ns - clock.MonotonicNs()) / 1'000'000;
    if (remaining_ms <= 0) break;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(std::min(options_.attempt_timeout_ms, remaining_ms)));
    // Wait for a connection within the attempt's deadline rather than failing
    // at once while a restarted member comes back.
    context.set_wait_for_ready(false);

    std::shared_ptr<grpc::Channel> channel = ChannelFor(address);
    last = attempt(channel, context);
    if (last.ok()) return last;
    if (std::optional<int64_t> wait_ms = RetryAfterMs(context, last)) {
      // Over this client's request rate (meta's token bucket): wait as told.
      int64_t left_ms = (deadline_ns - clock.MonotonicNs()) / 1'000'000;
      if (left_ms <= 0) break;
      clock.SleepForNs(std::clamp<int64_t>(*wait_ms, 1, left_ms) * 1'000'000);
      continue;
    }
    bool retryable = last.error_code() == grpc::StatusCode::UNAVAILABLE ||
                     last.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!retryable) return last;

    std::string hint = HintOf(context, last, kLeaderHintKey).value_or("");
    Advance(address, hint);
    if (!hint.empty() && hint != address) continue;  // a concrete lead: follow it at once

    size_t member_count;
    {
      std::lock_guard<std::mutex> lock(mu_);
      member_count = members_.size();
    }
    if (++failures_this_round >= member_count) {
      // Every member failed once: nobody is leader yet (an election is
      // running) or the group is down. Back off before the next round.
      failures_this_round = 0;
      int64_t left_ms = (deadline_ns - clock.MonotonicNs()) / 1'000'000;
      if (left_ms <= 0) break;
      clock.SleepForNs(std::min(backoff_ms, left_ms) * 1'000'000);
      backoff_ms = std::min(backoff_ms * 2, options_.backoff_max_ms);
    }
  }
  return grpc::Status(last.error_code(),
                      "no leader reachable before the deadline; last error: " + last.error_message());
}

}  // namespace dfs::common
