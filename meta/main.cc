// dfs-meta: the metadata service (single node until meta-raft).
//
//   dfs-meta --listen HOST:PORT --data DIR [--metrics HOST:PORT]
//       [--ready-file PATH] [--cluster-key-file PATH | --insecure-dev-key]
//       [--replicas 3] [--node-dead-after 10s] [--sync full|normal] [--log-*]
//       [--config FILE]
//
// State: DIR/meta.db (SQLite, WAL; schema in state_machine/schema.h).
//
// Threads:
//   - main: parses flags, starts everything, then waits in sigwait() for
//     SIGTERM/SIGINT and shuts down (gRPC drains with a deadline), exit 0.
//   - gRPC's sync-server thread pool: the MetaService handlers.
//   - LocalProposer's applier: batches proposed Ops into Entries and applies them.
//   - housekeeping: every 500 ms expires silent chunkservers and sessions.
//   - the metrics HTTP server's threads (civetweb) when --metrics is given.
// Exit codes: 0 after a clean shutdown, 1 on a start-up failure, 2 on bad flags.
#include <grpcpp/grpcpp.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/stat.h>

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
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/daemon.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/leader_channel.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/write_token.h"
#include "meta/service/cluster_state.h"
#include "meta/service/meta_service.h"
#include "meta/service/proposer.h"
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
  std::string sync = "full";
};

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
  app.add_option("--sync", flags.sync,
                 "full: fsync every commit (survives power loss); normal: WAL without fsync per commit "
                 "(survives a process crash, may lose the last commits on power loss)")
      ->check(CLI::IsMember({"full", "normal"}))
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
  if (flags.replicas == 0 || flags.replicas > 16) return BadFlags("--replicas: must be 1..16");
  if (common::Status s = common::InitLogging(flags.log); !s.ok()) return BadFlags("logging: " + s.ToString());

  auto cluster_key = common::ResolveClusterKey(flags.cluster_key_file, flags.insecure_dev_key);
  if (!cluster_key.ok()) {
    spdlog::critical("cluster key: {}", cluster_key.status().ToString());
    return 1;
  }

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
  meta::LocalProposer proposer(state_machine->get());
  common::Clock& clock = common::SystemClock::Get();
  meta::ClusterState cluster(*dead_after_ms * 1'000'000);
  meta::MetaServiceOptions options;
  options.replicas = flags.replicas;
  options.cluster_key = *cluster_key;
  meta::MetaServiceImpl service(state_machine->get(), &proposer, clock, &cluster, options);

  // The replication factor is replicated state (the root's, inherited by new
  // files), so it changes through an Op, never by Apply reading a flag.
  {
    pb::Op op;
    op.mutable_set_replication()->set_ino(1);
    op.mutable_set_replication()->set_replicas(flags.replicas);
    auto result = service.Submit(std::move(op));
    if (!result.ok() || result->status().code() != 0) {
      spdlog::critical("cannot set the replication factor");
      return 1;
    }
  }
  // Sessions from before a restart get a fresh lease to come back.
  for (uint64_t id : (*state_machine)->SessionIds()) {
    cluster.SessionAlive(id, clock.MonotonicNs(), int64_t{options.session_lease_ms} * 1'000'000);
  }

  auto registry = std::make_shared<prometheus::Registry>();
  auto& applied = prometheus::BuildGauge()
                      .Name("dfs_meta_applied")
                      .Help("Entries (transactions) and ops applied by the state machine")
                      .Register(*registry);
  prometheus::Gauge& applied_entries = applied.Add({{"kind", "entries"}});
  prometheus::Gauge& applied_ops = applied.Add({{"kind", "ops"}});

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(flags.listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(common::kMaxGrpcMessageBytes);
  builder.SetMaxSendMessageSize(common::kMaxGrpcMessageBytes);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::critical("cannot listen on {}", flags.listen);
    return 1;
  }
  common::HostPort bound = *listen;
  bound.port = static_cast<uint16_t>(port);
  const std::string address = bound.ToString();

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
      meta::LocalProposer::Stats stats = proposer.stats();
      applied_entries.Set(static_cast<double>(stats.entries));
      applied_ops.Set(static_cast<double>(stats.ops));
      lock.lock();
    }
  });

  spdlog::info("dfs-meta serving on {} (data {}, replicas {})", address, flags.data, flags.replicas);
  int exit_code = 0;
  if (!flags.ready_file.empty()) {
    if (common::Status s = common::WriteReadyFile(flags.ready_file, address); !s.ok()) {
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
  spdlog::info("stopped");
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  return Run(argc, argv);
}
