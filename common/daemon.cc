#include "common/daemon.h"

#include <CLI/CLI.hpp>

#include "common/file_util.h"
#include "common/leader_channel.h"

namespace dfs::common {

ShutdownSignals::ShutdownSignals() {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGTERM);
  sigaddset(&signals_, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
}

int ShutdownSignals::Wait() {
  int signal_number = 0;
  while (sigwait(&signals_, &signal_number) != 0) {
  }
  return signal_number;
}

void AddDaemonFlags(CLI::App& app, DaemonFlags& flags, const std::string& listen_help) {
  AddConfigFileFlag(app);
  app.add_option("--listen", flags.listen, listen_help + " (HOST:PORT; port 0 = any)")->required();
  app.add_option("--metrics", flags.metrics, "serve Prometheus metrics at HOST:PORT");
  app.add_option("--ready-file", flags.ready_file, "write 'address=HOST:PORT' here once serving");
  app.add_option("--cluster-key-file", flags.cluster_key_file, "the cluster key that signs write tokens");
  app.add_flag("--insecure-dev-key", flags.insecure_dev_key,
               "without --cluster-key-file, use a well-known key (development only)");
  AddTlsFlags(app, flags.tls);
  app.add_option("--client-secret-file", flags.client_secret_file,
                 "admit only clients that present this secret (dfs -o secret_file=...)");
  AddLogFlags(app, flags.log);
}

Result<HostPort> ValidateDaemonFlags(const DaemonFlags& flags) {
  auto listen = ParseHostPort(flags.listen, /*allow_port_zero=*/true);
  if (!listen.ok()) return listen.status().WithContext("--listen");
  if (!flags.metrics.empty()) {
    auto metrics = ParseHostPort(flags.metrics, /*allow_port_zero=*/true);
    if (!metrics.ok()) return metrics.status().WithContext("--metrics");
  }
  if (flags.cluster_key_file.empty() && !flags.insecure_dev_key) {
    return InvalidArgumentError("--cluster-key-file is required (or --insecure-dev-key for a development cluster)");
  }
  return listen;
}

Result<DaemonSecurity> SetUpSecurity(const DaemonFlags& flags, const std::string& cluster_key) {
  DaemonSecurity security;
  ASSIGN_OR_RETURN(security.server_credentials, MakeServerCredentials(flags.tls));
  if (!flags.client_secret_file.empty()) {
    auto secret = LoadSecret(flags.client_secret_file);
    if (!secret.ok()) return secret.status().WithContext("--client-secret-file");
    security.auth.client_secret = std::move(*secret);
  }
  security.auth.cluster_key = cluster_key;
  security.auth.mutual_tls = flags.tls.client_auth;
  ASSIGN_OR_RETURN(ClientIdentity identity, MakeClientIdentity(flags.tls, "", cluster_key));
  SetClientIdentity(std::move(identity));
  return security;
}

void SetServerLimits(grpc::ServerBuilder& builder, const std::string& name) {
  builder.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
  builder.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
  // A client multiplexes its calls over one connection; 256 streams is far
  // above what dfs's clients keep open (write-behind and readahead use a
  // few per chunk) but stops one connection from opening thousands.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 256);
  // gRPC's server defaults allow one ping per 5 minutes without calls and
  // answer the third extra one with GOAWAY "too_many_pings". Our clients no
  // longer ping idle connections (MakeChannel), but other and older ones
  // may: allow pings at half our clients' keepalive period.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, kKeepAliveTimeMs / 2);
  grpc::ResourceQuota quota(name);
  quota.SetMaxThreads(512);   // sync handlers: calls beyond wait for a thread
  quota.Resize(1ull << 30);   // buffers of all connections together
  builder.SetResourceQuota(quota);
}

Status WriteReadyFile(const std::string& path, const std::string& address, const std::string& metrics) {
  return WriteFileAtomic(path, "address=" + address + "\n" + (metrics.empty() ? "" : "metrics=" + metrics + "\n"));
}

}  // namespace dfs::common
