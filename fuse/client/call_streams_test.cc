#include "fuse/client/call_streams.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace dfs::fuse {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

// A stand-in meta that answers a getattr of ino N with size N on Calls
// streams; it counts the streams it saw and can be told to hold answers.
class FakeMeta final : public pb::MetaService::Service {
 public:
  grpc::Status Calls(grpc::ServerContext* ctx, grpc::ServerReaderWriter<pb::MetaReturn, pb::MetaCall>* stream) override {
    streams_opened++;
    pb::MetaCall call;
    while (stream->Read(&call)) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !hold || ctx->IsCancelled(); });
      }
      pb::MetaReturn ret;
      ret.mutable_attr()->mutable_attr()->set_ino(call.get_attr().ino());
      ret.mutable_attr()->mutable_attr()->set_size(call.get_attr().ino());
      if (!stream->Write(ret)) break;
    }
    return grpc::Status::OK;
  }
  void Hold(bool on) {
    std::lock_guard<std::mutex> lock(mu);
    hold = on;
    cv.notify_all();
  }
  std::atomic<int> streams_opened{0};
  std::mutex mu;
  std::condition_variable cv;
  bool hold = false;
};

// A member older than call streams: it knows no Calls method.
class OldMeta final : public pb::MetaService::Service {
 public:
  grpc::Status Calls(grpc::ServerContext*, grpc::ServerReaderWriter<pb::MetaReturn, pb::MetaCall>*) override {
    streams_refused++;
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");  // what the generated base answers
  }
  std::atomic<int> streams_refused{0};
};

struct Server {
  explicit Server(grpc::Service* service, int port = 0) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &bound);
    builder.RegisterService(service);
    server = builder.BuildAndStart();
  }
  ~Server() { Stop(); }
  void Stop() {
    if (server) server->Shutdown(system_clock::now() + milliseconds(200));
    server.reset();
  }
  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(bound), grpc::InsecureChannelCredentials());
  }
  int bound = 0;
  std::unique_ptr<grpc::Server> server;
};

pb::MetaCall GetAttr(uint64_t ino) {
  pb::MetaCall call;
  call.mutable_get_attr()->set_ino(ino);
  return call;
}

system_clock::time_point In(int ms) { return system_clock::now() + milliseconds(ms); }

TEST(CallStreamsTest, OneCallerReusesOneStream) {
  FakeMeta meta;
  Server server(&meta);
  auto channel = server.Channel();
  CallStreams streams;
  for (uint64_t ino = 1; ino <= 50; ++ino) {
    pb::MetaReturn ret;
    ASSERT_TRUE(streams.Call(channel, In(5'000), GetAttr(ino), &ret).ok());
    EXPECT_EQ(ret.attr().attr().size(), ino);
  }
  EXPECT_EQ(meta.streams_opened.load(), 1);
  EXPECT_EQ(streams.open_streams(), 1u);
}

TEST(CallStreamsTest, ConcurrentCallersGetTheirOwnAnswers_IdleStreamsBounded) {
  FakeMeta meta;
  Server server(&meta);
  auto channel = server.Channel();
  CallStreams::Options options;
  options.max_idle_per_channel = 2;
  CallStreams streams(options);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < 100; ++i) {
        uint64_t ino = t * 1000 + i + 1;
        pb::MetaReturn ret;
        if (!streams.Call(channel, In(5'000), GetAttr(ino), &ret).ok() || ret.attr().attr().size() != ino) wrong++;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LE(streams.open_streams(), 2u);
  EXPECT_LE(meta.streams_opened.load(), 6 * 100);
}

TEST(CallStreamsTest, NoAnswerByTheDeadline_DeadlineExceeded_ThenAFreshStreamWorks) {
  FakeMeta meta;
  Server server(&meta);
  auto channel = server.Channel();
  CallStreams streams;
  pb::MetaReturn ret;
  ASSERT_TRUE(streams.Call(channel, In(5'000), GetAttr(1), &ret).ok());
  meta.Hold(true);
  auto start = std::chrono::steady_clock::now();
  grpc::Status held = streams.Call(channel, In(300), GetAttr(2), &ret);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(held.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << held.error_message();
  EXPECT_GE(waited, 0.25);
  EXPECT_LT(waited, 3.0);
  meta.Hold(false);
  ASSERT_TRUE(streams.Call(channel, In(5'000), GetAttr(3), &ret).ok());
  EXPECT_EQ(ret.attr().attr().size(), 3u);
}

TEST(CallStreamsTest, AStreamBrokenWhileIdle_TheCallGoesOnAFreshOne) {
  FakeMeta meta;
  auto server = std::make_unique<Server>(&meta);
  const int port = server->bound;
  auto channel = server->Channel();
  CallStreams streams;
  pb::MetaReturn ret;
  ASSERT_TRUE(streams.Call(channel, In(5'000), GetAttr(1), &ret).ok());
  server->Stop();  // the idle stream ends with its server
  server = std::make_unique<Server>(&meta, port);
  ASSERT_EQ(server->bound, port);
  grpc::Status s = streams.Call(channel, In(10'000), GetAttr(2), &ret);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(ret.attr().attr().size(), 2u);
}

TEST(CallStreamsTest, AMetaWithoutCalls_Unimplemented) {
  OldMeta meta;
  Server server(&meta);
  CallStreams streams;
  pb::MetaReturn ret;
  EXPECT_EQ(streams.Call(server.Channel(), In(5'000), GetAttr(1), &ret).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(streams.open_streams(), 0u);
}

TEST(CallStreamsTest, ARefusalIsRememberedForAWhileThenAskedAgain) {
  OldMeta old;
  auto server = std::make_unique<Server>(&old);
  const int port = server->bound;
  auto channel = server->Channel();
  CallStreams::Options options;
  options.refusal_memory_ms = 300;
  CallStreams streams(options);
  pb::MetaReturn ret;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(streams.Call(channel, In(5'000), GetAttr(1), &ret).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  EXPECT_EQ(old.streams_refused.load(), 1);  // one refused stream, not one per call
  // The member is upgraded in place; once the refusal is forgotten, the next
  // call goes on a stream again.
  server.reset();
  FakeMeta upgraded;
  server = std::make_unique<Server>(&upgraded, port);
  ASSERT_EQ(server->bound, port);
  EXPECT_EQ(streams.Call(channel, In(5'000), GetAttr(2), &ret).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  std::this_thread::sleep_for(milliseconds(400));
  grpc::Status s = streams.Call(channel, In(10'000), GetAttr(3), &ret);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(ret.attr().attr().size(), 3u);
  EXPECT_EQ(old.streams_refused.load(), 1);
}

TEST(CallStreamsTest, IdleStreamsAreClosed) {
  FakeMeta meta;
  Server server(&meta);
  CallStreams::Options options;
  options.idle_close_ms = 100;
  CallStreams streams(options);
  pb::MetaReturn ret;
  ASSERT_TRUE(streams.Call(server.Channel(), In(5'000), GetAttr(1), &ret).ok());
  for (int i = 0; i < 100 && streams.open_streams() > 0; ++i) std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(streams.open_streams(), 0u);
}

}  // namespace
}  // namespace dfs::fuse
