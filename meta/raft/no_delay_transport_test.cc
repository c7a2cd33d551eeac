// DisableNagle on two real raft_uv_tcp transports on 127.0.0.1: the stream
// libraft gets from a connect and the one from an accept both have
// TCP_NODELAY set.
#include "meta/raft/no_delay_transport.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <string>

#include "meta/state_machine/test_util.h"

namespace dfs::meta::raft {
namespace {

// -1: no stream seen; else the stream's TCP_NODELAY.
int NoDelayOf(uv_stream_s* stream) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(stream), &fd) != 0) return -1;
  int on = 0;
  socklen_t len = sizeof on;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) != 0) return -1;
  return on != 0 ? 1 : 0;
}

// The streams are the callbacks' to close and free (raft/uv.h).
void CloseStream(uv_stream_s* stream) {
  uv_close(reinterpret_cast<uv_handle_t*>(stream), [](uv_handle_t* h) { raft_free(h); });
}

struct Seen {
  int accepted = -1;
  int connected = -1;
  int connect_status = -1;
};
Seen* seen = nullptr;  // the loop runs on this test's thread only

TEST(NoDelayTransportTest, ConnectedAndAcceptedStreamsHaveNagleOff) {
  Seen result;
  seen = &result;
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  raft_uv_transport server{}, client{};
  ASSERT_EQ(raft_uv_tcp_init(&server, &loop), 0);
  ASSERT_EQ(raft_uv_tcp_init(&client, &loop), 0);
  DisableNagle(&server);
  DisableNagle(&client);
  DisableNagle(&client);  // twice is once
  const std::string address = "127.0.0.1:" + std::to_string(meta::testing::FreeLoopbackPort());
  ASSERT_EQ(server.init(&server, 1, address.c_str()), 0);
  ASSERT_EQ(client.init(&client, 2, "127.0.0.1:1"), 0);
  ASSERT_EQ(server.listen(&server,
                          [](raft_uv_transport*, raft_id id, const char*, uv_stream_s* stream) {
                            EXPECT_EQ(id, 2u);
                            seen->accepted = NoDelayOf(stream);
                            CloseStream(stream);
                          }),
            0);
  raft_uv_connect req{};
  ASSERT_EQ(client.connect(&client, &req, 1, address.c_str(),
                           [](raft_uv_connect* r, uv_stream_s* stream, int status) {
                             EXPECT_EQ(r->data, nullptr);  // the caller's request, untouched
                             seen->connect_status = status;
                             if (status == 0) {
                               seen->connected = NoDelayOf(stream);
                               CloseStream(stream);
                             }
                           }),
            0);
  // Bounded: at most ~5 s of loop turns.
  for (int i = 0; i < 500 && (result.accepted < 0 || result.connect_status < 0); ++i) {
    uv_run(&loop, UV_RUN_NOWAIT);
    ::usleep(10'000);
  }
  EXPECT_EQ(result.connect_status, 0);
  EXPECT_EQ(result.connected, 1);
  EXPECT_EQ(result.accepted, 1);
  server.close(&server, [](raft_uv_transport*) {});
  client.close(&client, [](raft_uv_transport*) {});
  for (int i = 0; i < 500 && uv_run(&loop, UV_RUN_NOWAIT) != 0; ++i) ::usleep(1'000);
  raft_uv_tcp_close(&server);
  raft_uv_tcp_close(&client);
  EXPECT_EQ(uv_loop_close(&loop), 0);
  seen = nullptr;
}

}  // namespace
}  // namespace dfs::meta::raft
