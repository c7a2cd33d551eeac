// dfs-chunkserver: stores chunks on local data folders and serves them over
// gRPC (proto/chunk.proto); registers and heartbeats with dfs-meta.
//
//   dfs-chunkserver --listen HOST:PORT --data DIR [--data DIR2 ...]
//       --meta HOST:PORT[,HOST:PORT...] [--advertise HOST:PORT]
//       [--metrics HOST:PORT] [--ready-file PATH] [--cluster-key-file PATH |
//       --insecure-dev-key] [--heartbeat-interval 1s] [--min-free-space 1G] [--log-*]
//       [--config FILE]
//       [--tls-ca PEM --tls-cert PEM --tls-key PEM [--tls-client-auth]]
//       [--client-secret-file PATH]
//
// Threads:
//   - main: parses flags, starts everything, then waits in sigwait() for
//     SIGTERM/SIGINT and shuts down (heartbeats stop, the gRPC server drains
//     with a deadline), exit 0.
//   - gRPC's sync-server thread pool: the ChunkService handlers.
//   - MetaClient: one heartbeat thread (register, inventory, heartbeats) and
//     one command thread (delete/replicate commands from meta).
//   - the metrics HTTP server's threads (civetweb) when --metrics is given.
// Exit codes: 0 after a clean shutdown, 1 on a start-up failure, 2 on bad flags.
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <prometheus/registry.h>

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "chunkserver/service/chunk_service.h"
#include "chunkserver/service/cs_metrics.h"
#include "chunkserver/service/meta_client.h"
#include "chunkserver/service/scrubber.h"
#include "chunkserver/store/chunk_store.h"
#include "chunkserver/store/node_id.h"
#include "common/daemon.h"
#include "common/file_util.h"
#include "common/flags.h"
#include "common/grpc_metrics.h"
#include "common/leader_channel.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/runtime.h"
#include "common/write_token.h"

namespace {

namespace common = dfs::common;
namespace chunkserver = dfs::chunkserver;

struct Flags : common::DaemonFlags {
  std::vector<std::string> data;
  std::string meta;
  std::string advertise;
  std::string heartbeat_interval = "1s";
  double scrub_rate_mib = 32;
  std::string scrub_pause = "1h";
  std::string min_free_space = "1G";
  bool direct_io = true;
};

int BadFlags(const std::string& message) {
  std::fprintf(stderr, "dfs-chunkserver: %s\nRun with --help for usage.\n", message.c_str());
  return 2;
}

int Run(int argc, char** argv) {
  Flags flags;
  flags.log.name = "dfs-chunkserver";
  CLI::App app("dfs-chunkserver: checksummed chunk storage served over gRPC");
  common::AddDaemonFlags(app, flags, "address of the ChunkService");
  app.add_option("--data", flags.data, "a data folder (one per disk); repeat for more")->required();
  app.add_option("--meta", flags.meta, "dfs-meta addresses HOST:PORT[,HOST:PORT...]")->required();
  app.add_option("--advertise", flags.advertise, "address clients and peers use (default: the listen address)");
  app.add_option("--heartbeat-interval", flags.heartbeat_interval, "time between heartbeats to meta")
      ->capture_default_str();
  app.add_option("--scrub-rate", flags.scrub_rate_mib,
                 "MiB/s the background scrubber reads to verify every stored block (0: no scrubbing)")
      ->capture_default_str();
  app.add_option("--scrub-pause", flags.scrub_pause, "pause between two scrub passes over all chunks")
      ->capture_default_str();
  app.add_option("--min-free-space", flags.min_free_space,
                 "with less room than this in its best data folder, the node asks meta to place new chunks "
                 "and copies elsewhere while other nodes have room (0: never)")
      ->capture_default_str();
  app.add_option("--direct-io", flags.direct_io,
                 "on: write large pieces of chunk data with O_DIRECT, past the page cache; off: every write "
                 "through the page cache")
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
  auto meta_addresses = common::ParseAddressList(flags.meta);
  if (!meta_addresses.ok()) return BadFlags("--meta: " + meta_addresses.status().ToString());
  auto interval_ms = common::ParseDurationMs(flags.heartbeat_interval);
  if (!interval_ms.ok() || *interval_ms <= 0) return BadFlags("--heartbeat-interval: must be a positive duration");
  if (!flags.advertise.empty()) {
    auto advertise = common::ParseHostPort(flags.advertise);
    if (!advertise.ok()) return BadFlags("--advertise: " + advertise.status().ToString());
  } else if (listen->host.empty() || listen->host == "0.0.0.0" || listen->host == "::") {
    return BadFlags("--advertise is required when --listen is a wildcard address");
  }
  auto scrub_pause_ms = common::ParseDurationMs(flags.scrub_pause);
  if (!scrub_pause_ms.ok() || *scrub_pause_ms < 0) return BadFlags("--scrub-pause: must be a duration");
  if (flags.scrub_rate_mib < 0) return BadFlags("--scrub-rate: must be >= 0");
  auto min_free_bytes = common::ParseByteSize(flags.min_free_space);
  if (!min_free_bytes.ok()) return BadFlags("--min-free-space: " + std::string(min_free_bytes.status().message()));
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

  auto node_id = chunkserver::LoadOrCreateNodeId(flags.data);
  if (!node_id.ok()) {
    spdlog::critical("data folders: {}", node_id.status().ToString());
    return 1;
  }
  chunkserver::ChunkStore::Options store_options;
  store_options.folders = flags.data;
  store_options.direct_io = flags.direct_io;
  auto store = chunkserver::ChunkStore::Open(store_options);
  if (!store.ok()) {
    spdlog::critical("chunk store: {}", store.status().ToString());
    return 1;
  }

  auto registry = std::make_shared<prometheus::Registry>();
  chunkserver::ChunkServiceImpl::Options service_options;
  service_options.cluster_key = *cluster_key;
  service_options.auth = security->auth;
  service_options.metrics = registry;
  chunkserver::ChunkServiceImpl service(**store, service_options);

  common::GrpcCallMetrics call_metrics(registry, "dfs_chunkserver");  // outlives the server
  grpc::ServerBuilder builder;
  builder.experimental().SetInterceptorCreators(common::GrpcMetricsInterceptors(&call_metrics));
  int port = 0;
  builder.AddListeningPort(flags.listen, security->server_credentials, &port);
  common::SetServerLimits(builder, "dfs-chunkserver");
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::critical("cannot listen on {}", flags.listen);
    return 1;
  }
  common::HostPort bound = *listen;
  bound.port = static_cast<uint16_t>(port);
  const std::string address = bound.ToString();
  const std::string advertise = flags.advertise.empty() ? address : flags.advertise;

  std::unique_ptr<common::MetricsServer> metrics_server;
  if (!flags.metrics.empty()) {
    auto m = common::MetricsServer::Start(flags.metrics, registry);
    if (!m.ok()) {
      spdlog::critical("metrics: {}", m.status().ToString());
      return 1;
    }
    metrics_server = std::move(*m);
    spdlog::info("metrics at http://{}:{}/metrics", common::ParseHostPort(flags.metrics, true)->host,
                 metrics_server->port());
  }

  chunkserver::MetaClient::Options meta_options;
  meta_options.meta_addresses = flags.meta;
  meta_options.node_id = *node_id;
  meta_options.advertise_address = advertise;
  meta_options.heartbeat_interval_ms = *interval_ms;
  meta_options.load = [&service] { return service.load(); };
  meta_options.min_free_bytes = *min_free_bytes;
  chunkserver::MetaClient meta_client(**store, meta_options);
  if (common::Status s = meta_client.Start(); !s.ok()) {
    spdlog::critical("meta client: {}", s.ToString());
    return 1;
  }

  std::unique_ptr<chunkserver::Scrubber> scrubber;
  if (flags.scrub_rate_mib > 0) {
    scrubber = std::make_unique<chunkserver::Scrubber>(
        **store, chunkserver::Scrubber::Options{flags.scrub_rate_mib * (1 << 20), *scrub_pause_ms});
  }
  spdlog::info("dfs-chunkserver node {:016x} serving on {} (advertised as {}), {} data folder(s)", *node_id, address,
               advertise, flags.data.size());
  // State gauges for the metrics endpoint, every 2 s.
  chunkserver::CsMetrics cs_metrics(*registry);
  std::mutex refresh_mu;
  std::condition_variable refresh_cv;
  bool stopping = false;  // guarded by refresh_mu
  std::thread refresher;
  if (metrics_server) {
    refresher = std::thread([&] {
      std::unique_lock<std::mutex> lock(refresh_mu);
      do {
        cs_metrics.Refresh(**store, meta_client, scrubber.get());
      } while (!refresh_cv.wait_for(lock, std::chrono::seconds(2), [&] { return stopping; }));
    });
  }
  if (!flags.ready_file.empty()) {
    if (common::Status s = common::WriteReadyFile(flags.ready_file, address,
                                                  common::MetricsAddress(flags.metrics, metrics_server.get()));
        !s.ok()) {
      spdlog::critical("ready file: {}", s.ToString());
      return 1;
    }
  }

  int signal_number = signals.Wait();
  spdlog::info("signal {}: shutting down", signal_number);
  if (refresher.joinable()) {
    {
      std::lock_guard<std::mutex> lock(refresh_mu);
      stopping = true;
    }
    refresh_cv.notify_all();
    refresher.join();
  }
  scrubber.reset();
  meta_client.Stop();
  service.BeginShutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server->Wait();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  dfs::common::ConfigureRuntime();
  // Every Write message brings ~1 MiB buffers (gRPC's, the request's bytes)
  // that live for one message. With glibc's adaptive defaults the heap top
  // beyond ~2x the largest freed buffer goes back to the kernel and comes
  // back as fresh pages to fault in and zero for the next messages. Keeping
  // up to 256 MiB: a 1 GiB write through a mount with 3 replicas ran 7-12%
  // faster here, each chunkserver's resident memory 28-32 -> 43-45 MiB.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  return Run(argc, argv);
}
