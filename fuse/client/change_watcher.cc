#include "fuse/client/change_watcher.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <utility>

namespace dfs::fuse {

common::Result<std::unique_ptr<ChangeWatcher>> ChangeWatcher::Start(Options options, Handler handler) {
  common::LeaderChannel::Options channel_options;
  // A watch lasts as long as the mount: no deadline but a day's, renewed.
  channel_options.attempt_timeout_ms = int64_t{24} * 3600 * 1000;
  channel_options.total_timeout_ms = channel_options.attempt_timeout_ms;
  channel_options.backoff_max_ms = 1'000;
  auto channel = common::LeaderChannel::Create(options.source, channel_options);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<ChangeWatcher>(
      new ChangeWatcher(std::move(channel).value(), std::move(options), std::move(handler)));
}

ChangeWatcher::ChangeWatcher(std::unique_ptr<common::LeaderChannel> channel, Options options, Handler handler)
    : channel_(std::move(channel)), options_(std::move(options)), handler_(std::move(handler)) {
  thread_ = std::thread([this] { Run(); });
}

ChangeWatcher::~ChangeWatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (call_ != nullptr) call_->TryCancel();
  }
  cv_.notify_all();
  thread_.join();
}

grpc::Status ChangeWatcher::WatchOnce(const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext& context) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return grpc::Status(grpc::StatusCode::CANCELLED, "stopping");
    call_ = &context;
  }
  struct Forget {
    ChangeWatcher* w;
    ~Forget() {
      std::lock_guard<std::mutex> lock(w->mu_);
      w->call_ = nullptr;
    }
  } forget{this};
  auto stub = pb::MetaService::NewStub(channel);
  pb::WatchRequest request;
  request.set_client_id(options_.client_id);
  std::unique_ptr<grpc::ClientReader<pb::ChangeNotices>> reader = stub->Watch(&context, request);
  reader->WaitForInitialMetadata();  // meta sends its headers once it watches for us
  watching_.store(true);
  if (missed_) {
    // What changed while no stream was open is unknown: caches of the
    // mount's own may not be used; the kernel's end with their timeouts.
    pb::ChangeNotices missed;
    missed.set_missed(true);
    handler_(missed);
    missed_ = false;
  }
  pb::ChangeNotices notices;
  while (reader->Read(&notices)) {
    notices_.fetch_add(1);
    handler_(notices);
    notices.Clear();
  }
  watching_.store(false);
  missed_ = true;
  return reader->Finish();
}

void ChangeWatcher::Run() {
  for (;;) {
    grpc::Status status = channel_->Call(
        [this](const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext& context) {
          return WatchOnce(channel, context);
        });
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) return;
    // An older meta (UNIMPLEMENTED) may be replaced by a newer leader, and
    // a full one (RESOURCE_EXHAUSTED) may have room later: ask again, rarely.
    const bool refused = status.error_code() == grpc::StatusCode::UNIMPLEMENTED ||
                         status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
    if (refused && !told_refusal_) {
      spdlog::info("meta sends no change notices ({}): other mounts' changes show within the timeouts",
                   status.error_message());
      told_refusal_ = true;
    }
    const int64_t pause = refused ? 60'000 : options_.retry_ms;
    cv_.wait_for(lock, std::chrono::milliseconds(pause), [this] { return stopping_; });
    if (stopping_) return;
  }
}

}  // namespace dfs::fuse
