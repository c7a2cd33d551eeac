#include "common/daemon.h"

#include <CLI/CLI.hpp>

#include "common/file_util.h"

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

Status WriteReadyFile(const std::string& path, const std::string& address, const std::string& metrics) {
  return WriteFileAtomic(path, "address=" + address + "\n" + (metrics.empty() ? "" : "metrics=" + metrics + "\n"));
}

}  // namespace dfs::common
