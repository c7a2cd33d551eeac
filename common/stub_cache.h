// StubCache<Service>: one generated gRPC stub per channel, made on first use
// and kept for the cache's lifetime (with a reference to its channel).
//
// Why: a generated Stub's constructor registers every method of its service
// with the channel (44 for MetaService), each a lock and a map lookup keyed
// by the method's name. A stub built for every call spent that on each
// FUSE request (perf of a create loop on a mount: Channel::RegisterCall and
// the string compares behind it were among the client's top symbols).
//
// Thread-safety: For() may run concurrently; the stub it returns is safe for
// concurrent calls (gRPC stubs are) and lives as long as the cache.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <mutex>

namespace dfs::common {

template <typename Service>
class StubCache {
 public:
  using Stub = typename Service::Stub;

  StubCache() = default;
  StubCache(const StubCache&) = delete;
  StubCache& operator=(const StubCache&) = delete;

  // The stub of `channel` (not null). Callers hand in a bounded set of
  // channels (one per peer address): the cache never forgets one.
  Stub& For(const std::shared_ptr<grpc::Channel>& channel) {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& entry = stubs_[channel.get()];
    if (entry.stub == nullptr) {
      entry.channel = channel;  // keeps the address behind the key unique
      entry.stub = std::make_unique<Stub>(channel);
    }
    return *entry.stub;
  }

 private:
  struct Entry {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<Stub> stub;
  };
  std::mutex mu_;  // guards stubs_; leaf lock
  std::map<const grpc::Channel*, Entry> stubs_;
};

}  // namespace dfs::common
