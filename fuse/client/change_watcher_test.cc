#include "fuse/client/change_watcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dfs::fuse {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// A stand-in meta: its first Watch stream carries two notices and ends (a
// leader that stepped down); the next carries one and stays open.
class FakeMeta final : public pb::MetaService::Service {
 public:
  grpc::Status Watch(grpc::ServerContext* ctx, const pb::WatchRequest* req,
                     grpc::ServerWriter<pb::ChangeNotices>* writer) override {
    const int n = streams.fetch_add(1);
    client_id = req->client_id();
    writer->SendInitialMetadata();
    for (int i = 0; i < (n == 0 ? 2 : 1); ++i) {
      pb::ChangeNotices notices;
      pb::ChangedName* name = notices.add_names();
      name->set_parent(1);
      name->set_name("s" + std::to_string(n) + "." + std::to_string(i));
      writer->Write(notices);
    }
    if (n == 0) return grpc::Status::OK;
    while (!ctx->IsCancelled()) std::this_thread::sleep_for(milliseconds(5));
    return grpc::Status::OK;
  }
  std::atomic<int> streams{0};
  std::atomic<uint64_t> client_id{0};
};

class OldMeta final : public pb::MetaService::Service {
 public:
  grpc::Status Watch(grpc::ServerContext*, const pb::WatchRequest*, grpc::ServerWriter<pb::ChangeNotices>*) override {
    calls.fetch_add(1);
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no Watch here");
  }
  std::atomic<int> calls{0};
};

struct Server {
  explicit Server(grpc::Service* service) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &bound);
    builder.RegisterService(service);
    server = builder.BuildAndStart();
  }
  ~Server() { server->Shutdown(std::chrono::system_clock::now() + milliseconds(200)); }
  std::string Address() const { return "127.0.0.1:" + std::to_string(bound); }
  int bound = 0;
  std::unique_ptr<grpc::Server> server;
};

// What the handler heard: a name per notice, "missed" for a missed one.
struct Heard {
  std::mutex mu;
  std::vector<std::string> items;
  void Add(const pb::ChangeNotices& n) {
    std::lock_guard<std::mutex> lock(mu);
    if (n.missed()) items.push_back("missed");
    for (const pb::ChangedName& name : n.names()) items.push_back(name.name());
  }
  std::vector<std::string> Get() {
    std::lock_guard<std::mutex> lock(mu);
    return items;
  }
};

bool Within(int ms, const std::function<bool()>& done) {
  for (auto end = steady_clock::now() + milliseconds(ms); steady_clock::now() < end;) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return done();
}

TEST(ChangeWatcher, HandsOnNoticesAndSaysSomeWereMissedAfterAStreamEnded) {
  FakeMeta meta;
  Server server(&meta);
  Heard heard;
  auto watcher = ChangeWatcher::Start({.source = server.Address(), .client_id = 42, .retry_ms = 20},
                                      [&](const pb::ChangeNotices& n) { heard.Add(n); });
  ASSERT_TRUE(watcher.ok()) << watcher.status().ToString();
  ASSERT_TRUE(Within(10'000, [&] { return heard.Get().size() >= 4; }));
  EXPECT_EQ(heard.Get(), (std::vector<std::string>{"s0.0", "s0.1", "missed", "s1.0"}));
  EXPECT_EQ(meta.client_id.load(), 42u);
  EXPECT_TRUE((*watcher)->watching());
  EXPECT_EQ((*watcher)->notices(), 3u);
  const auto start = steady_clock::now();
  watcher->reset();  // cancels the open stream
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(meta.streams.load(), 2);
}

TEST(ChangeWatcher, AMetaWithoutWatchIsAskedRarelyAndStopDoesNotWaitForIt) {
  OldMeta meta;
  Server server(&meta);
  auto watcher = ChangeWatcher::Start({.source = server.Address(), .client_id = 1, .retry_ms = 10},
                                      [](const pb::ChangeNotices&) {});
  ASSERT_TRUE(watcher.ok());
  ASSERT_TRUE(Within(10'000, [&] { return meta.calls.load() >= 1; }));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(meta.calls.load(), 1);  // not every retry_ms
  EXPECT_FALSE((*watcher)->watching());
  const auto start = steady_clock::now();
  watcher->reset();
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(ChangeWatcher, ASourceThatDoesNotParseIsRefused) {
  auto watcher = ChangeWatcher::Start({.source = "", .client_id = 1}, [](const pb::ChangeNotices&) {});
  EXPECT_FALSE(watcher.ok());
}

}  // namespace
}  // namespace dfs::fuse
