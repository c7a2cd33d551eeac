#include "meta/raft/no_delay_transport.h"

#include <spdlog/spdlog.h>
#include <uv.h>

#include <atomic>

namespace dfs::meta::raft {

namespace {
using ConnectFn = int (*)(raft_uv_transport*, raft_uv_connect*, raft_id, const char*, raft_uv_connect_cb);
using ListenFn = int (*)(raft_uv_transport*, raft_uv_accept_cb);

// libraft's own functions and its accept callback: the same for every
// transport of the process (tests run several nodes in one), so plain
// process-wide slots suffice.
std::atomic<ConnectFn> tcp_connect{nullptr};
std::atomic<ListenFn> tcp_listen{nullptr};
std::atomic<raft_uv_accept_cb> accepted_cb{nullptr};

void NoDelay(uv_stream_s* stream) {
  if (stream == nullptr || stream->type != UV_TCP) return;
  if (int rv = uv_tcp_nodelay(reinterpret_cast<uv_tcp_t*>(stream), 1); rv != 0) {
    spdlog::warn("raft: TCP_NODELAY: {}", uv_strerror(rv));
  }
}

// A connect request of ours around libraft's: its callback sets the option,
// then completes the caller's request.
struct Connecting {
  raft_uv_connect request;  // handed to libraft's connect
  raft_uv_connect* caller;
};

void Connected(raft_uv_connect* request, uv_stream_s* stream, int status) {
  auto* connecting = static_cast<Connecting*>(request->data);
  raft_uv_connect* caller = connecting->caller;
  delete connecting;
  if (status == 0) NoDelay(stream);
  caller->cb(caller, stream, status);
}

int Connect(raft_uv_transport* t, raft_uv_connect* req, raft_id id, const char* address, raft_uv_connect_cb cb) {
  req->cb = cb;  // what libraft's connect would record in the caller's request
  auto* connecting = new Connecting{{nullptr, Connected}, req};
  connecting->request.data = connecting;
  int rv = tcp_connect.load()(t, &connecting->request, id, address, Connected);
  if (rv != 0) delete connecting;  // no callback follows a refused request
  return rv;
}

void Accepted(raft_uv_transport* t, raft_id id, const char* address, uv_stream_s* stream) {
  NoDelay(stream);
  accepted_cb.load()(t, id, address, stream);
}

int Listen(raft_uv_transport* t, raft_uv_accept_cb cb) {
  accepted_cb.store(cb);
  return tcp_listen.load()(t, Accepted);
}
}  // namespace

void DisableNagle(raft_uv_transport* transport) {
  if (transport->connect != Connect) {
    tcp_connect.store(transport->connect);
    transport->connect = Connect;
  }
  if (transport->listen != Listen) {
    tcp_listen.store(transport->listen);
    transport->listen = Listen;
  }
}

}  // namespace dfs::meta::raft
