#include "common/admission.h"

#include <algorithm>
#include <cmath>

#include "common/leader_channel.h"

namespace dfs::common {

Admission::Admission(Options options, Clock& clock)
    : options_(std::move(options)), clock_(clock), authorizer_(options_.auth) {}

std::string Admission::PeerHost(const std::string& peer) {
  size_t colon = peer.rfind(':');
  // "unix:/path" has no port; an IPv6 peer is "ipv6:[::1]:port".
  if (colon == std::string::npos || peer.starts_with("unix:")) return peer;
  return peer.substr(0, colon);
}

grpc::Status Admission::Admit(grpc::ServerContextBase* ctx, Role needed) {
  if (grpc::Status s = authorizer_.Check(*ctx, needed); !s.ok()) return s;
  if (needed > Role::kClient) return grpc::Status::OK;
  int64_t wait_ms = 0;
  grpc::Status s = Charge(ctx->peer(), &wait_ms);
  if (!s.ok()) ctx->AddTrailingMetadata(kRetryAfterHeader, std::to_string(wait_ms));
  return s;
}

grpc::Status Admission::Charge(const std::string& peer, int64_t* retry_after_ms) {
  if (options_.client_rate_per_s <= 0) return grpc::Status::OK;
  const std::string host = PeerHost(peer);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = buckets_.find(host);
    if (it == buckets_.end()) {
      if (buckets_.size() >= options_.max_tracked_hosts) buckets_.clear();
      double burst = options_.client_burst > 0 ? options_.client_burst : options_.client_rate_per_s;
      it = buckets_.emplace(host, std::make_unique<RateLimiter>(options_.client_rate_per_s, burst, clock_)).first;
    }
    RateLimiter* bucket = it->second.get();
    if (bucket->TryAcquire(1)) return grpc::Status::OK;
    double missing = 1 - bucket->Available();
    auto wait_ms = static_cast<int64_t>(std::ceil(missing * 1000 / options_.client_rate_per_s));
    *retry_after_ms = std::max<int64_t>(wait_ms, 1);
  }
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      "client " + host + " is over its request rate of " +
                          std::to_string(static_cast<int64_t>(options_.client_rate_per_s)) + "/s");
}

}  // namespace dfs::common
