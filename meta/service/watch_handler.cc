// MetaServiceImpl: the Watch stream. A mount hears what other clients
// change (change_feed.h) and drops its cached copies at once.
#include <chrono>
#include <string>
#include <thread>

#include "meta/service/meta_service.h"

namespace dfs::meta {

grpc::Status MetaServiceImpl::Watch(Ctx* ctx, const pb::WatchRequest* req,
                                    grpc::ServerWriter<pb::ChangeNotices>* writer) {
  if (grpc::Status s = Admit(ctx); !s.ok()) return s;
  if (watchers_.fetch_add(1) >= options_.max_watchers) {
    watchers_.fetch_sub(1);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "too many watchers (" + std::to_string(options_.max_watchers) +
                            "); the mount's timeouts bound what it shows stale");
  }
  struct Leave {
    std::atomic<int>& n;
    ~Leave() { n.fetch_sub(1); }
  } leave{watchers_};
  uint64_t cursor = changes_.End();
  // The headers go now, so the mount knows it is heard from this point on.
  writer->SendInitialMetadata();
  // Wakes at least this often to notice a cancelled call, a shutdown (it
  // cancels calls after its deadline) and a lost leadership.
  constexpr auto kPoll = std::chrono::milliseconds(250);
  // At most one message per kGather: under a stream of mutations (another
  // mount's create loop) each message carries several, and costs this
  // leader and the watching mount a wakeup per several (one per change
  // measured 6-8% off another mount's creates here). A lone change goes at
  // once.
  constexpr auto kGather = std::chrono::milliseconds(5);
  auto last_write = std::chrono::steady_clock::now() - kGather;
  while (!ctx->IsCancelled()) {
    const auto next_write = last_write + kGather;
    if (std::chrono::steady_clock::now() < next_write) std::this_thread::sleep_until(next_write);
    // A member that stopped leading applies nothing more here: the mount
    // must watch the new leader (the hint says which).
    if (grpc::Status serving = CheckServing(ctx); !serving.ok()) return serving;
    pb::ChangeNotices notices;
    if (!changes_.Next(&cursor, req->client_id(), std::chrono::steady_clock::now() + kPoll, &notices)) continue;
    if (notices.names_size() == 0 && notices.inodes_size() == 0 && !notices.missed()) continue;
    if (!writer->Write(notices)) break;
    last_write = std::chrono::steady_clock::now();
  }
  return grpc::Status::OK;
}

}  // namespace dfs::meta
