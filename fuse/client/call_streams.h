// CallStreams: long-lived MetaService.Calls streams, per meta channel, that
// a mount sends its namespace and chunk map calls on (pb::MetaCall). A
// message on an open stream costs about half of a unary call here (no
// HTTP/2 stream, headers and trailers per call), which every lookup of a
// path walk and every create, rename and close pays.
//
// One call at a time per stream: a caller takes an idle stream (or opens
// one), writes its call, reads the answer, and puts the stream back. A
// watchdog thread cancels a stream whose answer has not come by the call's
// deadline (a stopped meta must not hang a lookup) and closes streams idle
// for longer than idle_close_ms, so a mount at rest holds none open.
//
// Thread-safety: Call() may run concurrently from any number of threads.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/thread_annotations.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::fuse {

class CallStreams {
 public:
  struct Options {
    size_t max_idle_per_channel = 16;  // streams kept open beyond that are closed
    int64_t idle_close_ms = 30'000;    // an idle stream older than this is closed
    // A meta that refused a stream as UNIMPLEMENTED (an older member became
    // leader during a rolling upgrade) is not offered one again for this
    // long: every call would pay a refused stream before its unary call.
    int64_t refusal_memory_ms = 60'000;
  };
  explicit CallStreams(Options options);
  CallStreams() : CallStreams(Options{}) {}
  // Cancels every stream.
  ~CallStreams();
  CallStreams(const CallStreams&) = delete;
  CallStreams& operator=(const CallStreams&) = delete;

  // Sends `call` to `channel`'s meta and waits for the answer until
  // `deadline`. OK: *ret is meta's answer (whose own code may not be OK).
  // Otherwise what became of the stream: DEADLINE_EXCEEDED (no answer in
  // time), UNAVAILABLE (it broke; a stream that sat idle is retried once on
  // a fresh one first), or meta's refusal of the stream itself
  // (UNIMPLEMENTED from a meta without Calls, RESOURCE_EXHAUSTED when it has
  // too many open): the caller then uses the unary call. UNIMPLEMENTED is
  // answered at once, without a stream, for refusal_memory_ms after that.
  grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel, std::chrono::system_clock::time_point deadline,
                    const pb::MetaCall& call, pb::MetaReturn* ret);

  // Streams open now, idle or in use (tests, metrics).
  size_t open_streams() const;

 private:
  struct Stream {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<pb::MetaService::Stub> stub;
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<pb::MetaCall, pb::MetaReturn>> rw;
    // Guarded by mu_:
    std::chrono::system_clock::time_point deadline;  // of the call in flight
    bool cancelled = false;                          // by the watchdog
    int64_t idle_since_ns = 0;
  };
  std::unique_ptr<Stream> Open(const std::shared_ptr<grpc::Channel>& channel);
  // Ends a stream that failed or is not wanted: cancels it, drains it,
  // and returns its final status. Never blocks on meta.
  static grpc::Status Close(std::unique_ptr<Stream> stream);
  // The final status of a stream whose call is over (a Write or Read
  // failed): drains it and finishes it, without cancelling.
  static grpc::Status Ended(std::unique_ptr<Stream> stream);
  // Puts an answered stream back among the idle ones (or closes it).
  void PutIdle(std::unique_ptr<Stream> stream);
  void Watch();

  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<const grpc::Channel*, std::vector<std::unique_ptr<Stream>>> idle_ GUARDED_BY(mu_);
  std::set<Stream*> busy_ GUARDED_BY(mu_);
  struct Refusal {
    std::weak_ptr<grpc::Channel> channel;  // the key's address may be reused
    std::chrono::system_clock::time_point until;
  };
  std::map<const grpc::Channel*, Refusal> refused_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  // When the sleeping watchdog looks next (min() while it is awake).
  std::chrono::system_clock::time_point next_watch_ GUARDED_BY(mu_) = std::chrono::system_clock::time_point::min();
  std::thread watchdog_;
};

}  // namespace dfs::fuse
