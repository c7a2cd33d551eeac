#include "common/stub_cache.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

#include "proto/meta.grpc.pb.h"

namespace dfs::common {
namespace {

std::shared_ptr<grpc::Channel> Unconnected() {
  // Never dialled: a stub is made without connecting.
  return grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
}

TEST(StubCacheTest, OneStubPerChannel) {
  StubCache<pb::MetaService> cache;
  auto a = Unconnected();
  auto b = Unconnected();
  pb::MetaService::Stub* first = &cache.For(a);
  EXPECT_EQ(&cache.For(a), first);
  EXPECT_NE(&cache.For(b), first);
  EXPECT_EQ(&cache.For(b), &cache.For(b));
}

TEST(StubCacheTest, KeepsItsChannelAliveAndIsSafeFromManyThreads) {
  StubCache<pb::MetaService> cache;
  std::weak_ptr<grpc::Channel> weak;
  pb::MetaService::Stub* made = nullptr;
  {
    auto ch = Unconnected();
    weak = ch;
    made = &cache.For(ch);
  }
  // The key is the channel's address: the cache holds it, so no later
  // channel can reuse that address and get this stub.
  EXPECT_FALSE(weak.expired());
  auto same = weak.lock();
  std::vector<std::thread> threads;
  std::vector<pb::MetaService::Stub*> got(8);
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] { got[i] = &cache.For(same); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(std::set<pb::MetaService::Stub*>(got.begin(), got.end()), std::set<pb::MetaService::Stub*>{made});
}

}  // namespace
}  // namespace dfs::common
