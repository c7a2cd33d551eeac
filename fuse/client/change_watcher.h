// ChangeWatcher: keeps a MetaService.Watch stream open to the meta leader
// and hands each ChangeNotices to a handler, so the mount can drop what it
// and the kernel cache of names and inodes other clients changed at once,
// rather than when attr_timeout/entry_timeout end. Follows the leader
// (LeaderChannel's hints); between a broken stream and the next one,
// notices are lost, and the handler hears `missed` when the stream is back.
// The timeouts remain the bound of what a mount may show stale.
//
// Threads: one, which runs the handler. The handler must not wait for a
// FUSE request to finish (it may run while the kernel waits for one).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/leader_channel.h"
#include "common/result.h"
#include "common/thread_annotations.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::fuse {

class ChangeWatcher {
 public:
  using Handler = std::function<void(const pb::ChangeNotices&)>;
  struct Options {
    std::string source;       // host:port[,host:port...]
    uint64_t client_id = 0;   // this mount's session: meta leaves out its own changes
    int64_t retry_ms = 500;   // pause before watching again after the stream ended
  };
  // InvalidArgument if `source` does not parse.
  static common::Result<std::unique_ptr<ChangeWatcher>> Start(Options options, Handler handler);
  // Ends the stream and joins the thread (the handler is not called after).
  ~ChangeWatcher();
  ChangeWatcher(const ChangeWatcher&) = delete;
  ChangeWatcher& operator=(const ChangeWatcher&) = delete;

  // A stream is open and meta has answered it (tests).
  bool watching() const { return watching_.load(); }
  // Notices handed to the handler so far (tests, metrics).
  uint64_t notices() const { return notices_.load(); }

 private:
  ChangeWatcher(std::unique_ptr<common::LeaderChannel> channel, Options options, Handler handler);
  void Run();
  // One Watch call on `channel`: reads until the stream ends.
  grpc::Status WatchOnce(const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext& context);

  std::unique_ptr<common::LeaderChannel> channel_;
  const Options options_;
  const Handler handler_;
  std::atomic<bool> watching_{false};
  std::atomic<uint64_t> notices_{0};
  bool missed_ = false;  // the thread's own: a stream ended since the last notice
  bool told_refusal_ = false;  // the thread's own: meta's refusal was logged
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  grpc::ClientContext* call_ GUARDED_BY(mu_) = nullptr;  // the call in progress, to cancel
  std::thread thread_;
};

}  // namespace dfs::fuse
