#include "common/leader_channel.h"

#include <algorithm>
#include <chrono>

#include "common/flags.h"
#include "common/grpc_status.h"

namespace dfs::common {

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
  args.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
  // Notice a dead peer within seconds even on an idle channel.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Reconnect quickly after a failover instead of gRPC's 1 s minimum with
  // exponential growth up to 120 s.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
  return grpc::CreateCustomChannel(address, credentials, args);
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
  auto channel = MakeChannel(address, options_.credentials);
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
    bool retryable = last.error_code() == grpc::StatusCode::UNAVAILABLE ||
                     last.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!retryable) return last;

    std::string hint = LeaderHint(context).value_or("");
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
