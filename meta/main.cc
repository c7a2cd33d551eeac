// dfs-meta: the metadata service, one member of a Raft group of 1, 3 or 5.
//
//   dfs-meta --listen HOST:PORT --data DIR [--metrics HOST:PORT]
//       [--node-id N] [--raft-listen HOST:PORT]
//       [--members ID=HOST:PORT,...] [--election-timeout 1000ms]
//       [--heartbeat-timeout 100ms] [--snapshot-threshold N]
//       [--snapshot-trailing N]
//       [--ready-file PATH] [--cluster-key-file PATH | --insecure-dev-key]
//       [--tls-ca PEM --tls-cert PEM --tls-key PEM [--tls-client-auth]]
//       [--client-secret-file PATH] [--client-rate N] [--client-burst N]
//       [--replicas 3] [--node-dead-after 10s] [--sync normal|full] [--log-*]
//       [--config FILE]
//
// Without --members (and --raft-listen) the node is a group of one that
// listens for Raft on an ephemeral loopback port: fine for one machine, but
// it cannot grow. With --members, every member gets the same list and the
// group is bootstrapped on the first start (the list is ignored afterwards:
// membership then lives in the Raft log). A node started with --raft-listen
// and without --members waits to be added (dfsctl add-member).
//
// State: DIR/meta.db (SQLite, WAL; schema in state_machine/schema.h) and
// DIR/raft/ (libraft's log segments, snapshots, term and vote).
//
// Threads:
//   - main: parses flags, starts everything, then waits in sigwait() for
//     SIGTERM/SIGINT and shuts down (gRPC drains with a deadline), exit 0.
//   - gRPC's thread pool: the MetaService handlers.
//   - the Raft loop thread (meta/raft/node.h): libraft, group commit, Apply.
//   - housekeeping: every 500 ms (leader only) expires silent chunkservers
//     and sessions.
//   - the metrics HTTP server's threads (civetweb) when --metrics is given.
// Exit codes: 0 after a clean shutdown, 1 on a start-up failure, 2 on bad flags.
#include <grpcpp/grpcpp.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <stdexcept>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "common/chunk_geometry.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/grpc_metrics.h"
#include "common/leader_channel.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/runtime.h"
#include "common/write_token.h"
#include "meta/raft/node.h"
#include "meta/service/cluster_state.h"
#include "meta/service/meta_metrics.h"
#include "meta/service/meta_service.h"
#include "meta/state_machine/state_machine.h"

namespace {

namespace common = dfs::common;
namespace meta = dfs::meta;
namespace pb = dfs::pb;

// Well known (the same as dfs-chunkserver's), so only for development
// clusters (--insecure-dev-key).

struct Flags : common::DaemonFlags {
  std::string data;
  uint32_t replicas = 3;
  std::string node_dead_after = "10s";
  std::string session_lease = "30s";
  std::string min_free_space = "256M";
  std::string inline_max = "16K";
  int max_call_streams = 256;
  std::string sync = "normal";
  uint64_t node_id = 1;
  std::string raft_listen;
  std::string members;
  std::string election_timeout = "1000ms";
  std::string heartbeat_timeout = "100ms";
  unsigned snapshot_threshold = 8192;
  unsigned snapshot_trailing = 2048;
  double repair_bandwidth = 0;  // MiB/s per copy
  unsigned max_repairs = 16;
  unsigned max_moves = 4;
  double client_rate = 0;  // requests/s per client host
  double client_burst = 0;
};

// "1=host:port,2=host:port" -> members.
common::Result<std::vector<meta::raft::Member>> ParseMembers(const std::string& text) {
  std::vector<meta::raft::Member> members;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t eq = item.find('=');
    if (eq == std::string::npos) return common::InvalidArgumentError("expected ID=HOST:PORT, got '" + item + "'");
    meta::raft::Member member;
    try {
      size_t used = 0;
      member.id = std::stoull(item.substr(0, eq), &used);
      if (used != eq || member.id == 0) throw std::invalid_argument("id");
    } catch (const std::exception&) {
      return common::InvalidArgumentError("bad member id in '" + item + "'");
    }
    auto address = common::ParseHostPort(item.substr(eq + 1));
    if (!address.ok()) return common::InvalidArgumentError("bad member address in '" + item + "'");
    member.raft_address = address->ToString();
    for (const auto& other : members) {
      if (other.id == member.id) return common::InvalidArgumentError("member id listed twice: " + item);
    }
    members.push_back(std::move(member));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return members;
}

int BadFlags(const std::string& message) {
  std::fprintf(stderr, "dfs-meta: %s\nRun with --help for usage.\n", message.c_str());
  return 2;
}

int Run(int argc, char** argv) {
  Flags flags;
  flags.log.name = "dfs-meta";
  CLI::App app("dfs-meta: the dfs metadata service (namespace and chunk map)");
  common::AddDaemonFlags(app, flags, "address of the MetaService");
  app.add_option("--data", flags.data, "data folder (holds meta.db)")->required();
  app.add_option("--replicas", flags.replicas, "replication factor of new files")->capture_default_str();
  app.add_option("--node-dead-after", flags.node_dead_after, "a chunkserver silent this long is dead")
      ->capture_default_str();
  app.add_option("--session-lease", flags.session_lease,
                 "a mount silent this long loses its session: its file locks go (another mount may take "
                 "them) and its open files are kept only if it resumes")
      ->capture_default_str();
  app.add_option("--min-free-space", flags.min_free_space,
                 "room kept free in the data folder, besides one more copy of meta.db for a snapshot: with less, "
                 "creates and writes fail with ENOSPC (deletes go on) rather than the disk filling; 0: off")
      ->capture_default_str();
  app.add_option("--inline-max", flags.inline_max,
                 "files up to this size keep their bytes in meta's database (replicated by Raft) rather than on "
                 "chunkservers: a small file's write and read skip the chunkservers, and meta.db grows by its "
                 "bytes; at most 64K; 0: off")
      ->capture_default_str();
  app.add_option("--max-call-streams", flags.max_call_streams,
                 "call streams (mounts send their metadata calls on them, about half a unary call's cost) open at "
                 "once; each holds one of the 512 threads of the sync handlers while open. Beyond, mounts make "
                 "unary calls; 0: none")
      ->check(CLI::Range(0, 384))
      ->capture_default_str();
  app.add_option("--sync", flags.sync,
                 "SQLite durability. normal: no fsync per commit - the Raft log (fsynced) is the durable "
                 "record and is replayed after a crash; full: also fsync every SQLite commit")
      ->check(CLI::IsMember({"full", "normal"}))
      ->capture_default_str();
  app.add_option("--node-id", flags.node_id, "this member's id in the metadata Raft group (> 0)")
      ->capture_default_str();
  app.add_option("--raft-listen", flags.raft_listen,
                 "HOST:PORT for Raft traffic between metadata members (no authentication: bind it to a "
                 "private address). Default: a one-member group on an ephemeral loopback port");
  app.add_option("--members", flags.members,
                 "initial voters ID=HOST:PORT,... (Raft addresses, this node included), used on the first "
                 "start only. Omit with --raft-listen to start empty and wait to be added");
  app.add_option("--election-timeout", flags.election_timeout,
                 "Raft election timeout (all members must agree; loopback clusters use 300ms)")
      ->capture_default_str();
  app.add_option("--heartbeat-timeout", flags.heartbeat_timeout, "Raft heartbeat interval")->capture_default_str();
  app.add_option("--snapshot-threshold", flags.snapshot_threshold, "Raft entries between snapshots")
      ->capture_default_str();
  app.add_option("--snapshot-trailing", flags.snapshot_trailing, "Raft entries kept behind a snapshot")
      ->capture_default_str();
  app.add_option("--repair-bandwidth", flags.repair_bandwidth,
                 "MiB/s each re-replication or rebalancing copy may use (0: unlimited)")
      ->capture_default_str();
  app.add_option("--max-repairs", flags.max_repairs, "re-replication copies in flight at once (>= 1)")
      ->capture_default_str();
  app.add_option("--max-moves", flags.max_moves,
                 "rebalancing copies in flight at once, within --max-repairs (0: no rebalancing)")
      ->capture_default_str();
  app.add_option("--client-rate", flags.client_rate,
                 "requests/s each client host may make (token bucket; 0: unlimited). Over it, calls are "
                 "answered 'retry after' and the client slows down")
      ->capture_default_str();
  app.add_option("--client-burst", flags.client_burst, "requests a client host may make at once (0: --client-rate)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  auto listen = common::ValidateDaemonFlags(flags);
  if (!listen.ok()) return BadFlags(std::string(listen.status().message()));
  auto dead_after_ms = common::ParseDurationMs(flags.node_dead_after);
  if (!dead_after_ms.ok() || *dead_after_ms <= 0) return BadFlags("--node-dead-after: must be a positive duration");
  auto session_lease_ms = common::ParseDurationMs(flags.session_lease);
  if (!session_lease_ms.ok() || *session_lease_ms < 1'000 || *session_lease_ms > 3'600'000) {
    return BadFlags("--session-lease: must be a duration from 1s to 1h");
  }
  auto min_free_bytes = common::ParseByteSize(flags.min_free_space);
  if (!min_free_bytes.ok()) return BadFlags("--min-free-space: " + std::string(min_free_bytes.status().message()));
  auto inline_max = common::ParseByteSize(flags.inline_max);
  if (!inline_max.ok() || *inline_max > common::kMaxInlineBytes) {
    return BadFlags("--inline-max: must be a size from 0 to 64K");
  }
  if (flags.replicas == 0 || flags.replicas > 16) return BadFlags("--replicas: must be 1..16");
  if (!(flags.repair_bandwidth >= 0) || flags.repair_bandwidth > 1e6) {
    return BadFlags("--repair-bandwidth: must be 0 (unlimited) or a positive MiB/s");
  }
  if (flags.max_repairs == 0 || flags.max_repairs > 10'000) return BadFlags("--max-repairs: must be 1..10000");
  if (flags.max_moves > flags.max_repairs) return BadFlags("--max-moves: must not exceed --max-repairs");
  auto election_ms = common::ParseDurationMs(flags.election_timeout);
  auto heartbeat_ms = common::ParseDurationMs(flags.heartbeat_timeout);
  if (!election_ms.ok() || *election_ms < 10) return BadFlags("--election-timeout: must be a duration >= 10ms");
  if (!heartbeat_ms.ok() || *heartbeat_ms < 1 || *heartbeat_ms * 2 > *election_ms) {
    return BadFlags("--heartbeat-timeout: must be a duration of at most half the election timeout");
  }
  if (flags.node_id == 0) return BadFlags("--node-id: must be > 0");
  if (!(flags.client_rate >= 0) || !(flags.client_burst >= 0)) {
    return BadFlags("--client-rate and --client-burst: must be >= 0");
  }
  meta::raft::RaftOptions raft_options;
  raft_options.id = flags.node_id;
  raft_options.election_timeout_ms = static_cast<unsigned>(*election_ms);
  raft_options.heartbeat_timeout_ms = static_cast<unsigned>(*heartbeat_ms);
  raft_options.snapshot_threshold = std::max(flags.snapshot_threshold, 16u);
  raft_options.snapshot_trailing = flags.snapshot_trailing;
  if (flags.raft_listen.empty()) {
    if (!flags.members.empty()) return BadFlags("--members needs --raft-listen (this member's own address)");
    raft_options.raft_address = "127.0.0.1:0";
    raft_options.initial_members = {{flags.node_id, raft_options.raft_address}};
  } else {
    auto raft_listen = common::ParseHostPort(flags.raft_listen);
    if (!raft_listen.ok()) return BadFlags("--raft-listen: " + std::string(raft_listen.status().message()));
    raft_options.raft_address = raft_listen->ToString();
    if (!flags.members.empty()) {
      auto members = ParseMembers(flags.members);
      if (!members.ok()) return BadFlags("--members: " + std::string(members.status().message()));
      bool self = false;
      for (const auto& m : *members) {
        if (m.id == flags.node_id) {
          if (m.raft_address != raft_options.raft_address) {
            return BadFlags("--members: member " + std::to_string(m.id) + " is " + m.raft_address +
                            " but --raft-listen is " + raft_options.raft_address);
          }
          self = true;
        }
      }
      if (!self) return BadFlags("--members must include this node (--node-id " + std::to_string(flags.node_id) + ")");
      raft_options.initial_members = std::move(*members);
    }
  }
  if (common::Status s = common::InitLogging(flags.log); !s.ok()) return BadFlags("logging: " + s.ToString());

  auto cluster_key = common::ResolveClusterKey(flags.cluster_key_file, flags.insecure_dev_key);
  if (!cluster_key.ok()) {
    spdlog::critical("cluster key: {}", cluster_key.status().ToString());
    return 1;
  }

  auto security = common::SetUpSecurity(flags, *cluster_key);
  if (!security.ok()) return BadFlags(std::string(security.status().message()));

  // SIGTERM/SIGINT are taken by Wait() in this thread only: blocked before
  // any thread starts so every thread inherits the mask.
  common::ShutdownSignals signals;

  if (::mkdir(flags.data.c_str(), 0755) != 0 && errno != EEXIST) {
    spdlog::critical("cannot create data folder {}: {}", flags.data, std::strerror(errno));
    return 1;
  }
  meta::StateMachine::Options sm_options;
  sm_options.synchronous = flags.sync == "normal" ? "NORMAL" : "FULL";
  auto state_machine = meta::StateMachine::Open(flags.data + "/meta.db", sm_options);
  if (!state_machine.ok()) {
    spdlog::critical("state machine: {}", state_machine.status().ToString());
    return 1;
  }
  raft_options.dir = flags.data + "/raft";
  if (::mkdir(raft_options.dir.c_str(), 0755) != 0 && errno != EEXIST) {
    spdlog::critical("cannot create {}: {}", raft_options.dir, std::strerror(errno));
    return 1;
  }
  common::Clock& clock = common::SystemClock::Get();
  meta::ClusterState cluster(*dead_after_ms * 1'000'000);
  // The service exists only after the node (it proposes through it); a
  // leadership won before then is taken over below, after construction.
  std::mutex leader_mu;
  meta::MetaServiceImpl* leader_service = nullptr;  // guarded by leader_mu
  bool leader_missed = false;                       // guarded by leader_mu
  raft_options.on_leader = [&] {
    std::lock_guard<std::mutex> lock(leader_mu);
    if (leader_service != nullptr) {
      leader_service->BecameLeader();
    } else {
      leader_missed = true;
    }
  };
  auto node = meta::raft::RaftNode::Start(state_machine->get(), raft_options);
  if (!node.ok()) {
    spdlog::critical("raft: {}", node.status().ToString());
    return 1;
  }
  meta::MetaServiceOptions options;
  options.replicas = flags.replicas;
  options.session_lease_ms = static_cast<uint32_t>(*session_lease_ms);
  options.data_dir = flags.data;
  options.min_free_bytes = *min_free_bytes;
  options.inline_max_bytes = *inline_max;
  options.max_call_streams = flags.max_call_streams;
  options.repair_bandwidth = static_cast<uint64_t>(flags.repair_bandwidth * 1024 * 1024);
  options.max_repairs = flags.max_repairs;
  options.max_moves = flags.max_moves;
  options.cluster_key = *cluster_key;
  options.admission.auth = security->auth;
  options.admission.client_rate_per_s = flags.client_rate;
  options.admission.client_burst = flags.client_burst;
  options.group = node->get();
  options.raft_id = flags.node_id;
  options.raft_address = raft_options.raft_address;
  meta::MetaServiceImpl service(state_machine->get(), node->get(), clock, &cluster, options);
  {
    std::lock_guard<std::mutex> lock(leader_mu);
    leader_service = &service;
    if (leader_missed) service.BecameLeader();
  }

  auto registry = std::make_shared<prometheus::Registry>();
  meta::MetaMetrics metrics(*registry, /*cluster_every_ms=*/10'000);

  common::GrpcCallMetrics call_metrics(registry, "dfs_meta");  // outlives the server
  service.SetCallMetrics(&call_metrics);
  grpc::ServerBuilder builder;
  builder.experimental().SetInterceptorCreators(common::GrpcMetricsInterceptors(&call_metrics));
  int port = 0;
  builder.AddListeningPort(flags.listen, security->server_credentials, &port);
  common::SetServerLimits(builder, "dfs-meta");
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::critical("cannot listen on {}", flags.listen);
    return 1;
  }
  common::HostPort bound = *listen;
  bound.port = static_cast<uint16_t>(port);
  const std::string address = bound.ToString();
  service.SetRpcAddress(address);

  std::unique_ptr<common::MetricsServer> metrics_server;
  if (!flags.metrics.empty()) {
    auto m = common::MetricsServer::Start(flags.metrics, registry);
    if (!m.ok()) {
      spdlog::critical("metrics: {}", m.status().ToString());
      return 1;
    }
    metrics_server = std::move(*m);
  }

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;  // guarded by stop_mu
  std::thread housekeeping([&] {
    std::unique_lock<std::mutex> lock(stop_mu);
    while (!stop_cv.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping; })) {
      lock.unlock();
      service.Housekeeping();
      if (metrics_server) metrics.Refresh((*node)->view(), flags.node_id, service, clock.UnixNs() / 1'000'000);
      lock.lock();
    }
  });

  spdlog::info("dfs-meta member {} listening on {} (raft {}, data {}, replicas {})", flags.node_id, address,
               raft_options.raft_address, flags.data, flags.replicas);
  int exit_code = 0;
  if (!flags.ready_file.empty()) {
    if (common::Status s = common::WriteReadyFile(flags.ready_file, address, common::MetricsAddress(flags.metrics, metrics_server.get()));
        !s.ok()) {
      spdlog::critical("ready file: {}", s.ToString());
      exit_code = 1;
    }
  }
  if (exit_code == 0) {
    int signal_number = signals.Wait();
    spdlog::info("signal {}: shutting down", signal_number);
  }
  // In-flight calls get a second; idle client connections otherwise hold
  // Shutdown until the deadline.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  {
    std::lock_guard<std::mutex> lock(stop_mu);
    stopping = true;
  }
  stop_cv.notify_all();
  housekeeping.join();
  node->reset();  // before the service and state machine it feeds
  spdlog::info("stopped");
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  dfs::common::ConfigureRuntime();
  return Run(argc, argv);
}
