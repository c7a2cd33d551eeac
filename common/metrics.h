// Metrics: each daemon keeps its counters, gauges and histograms in one
// prometheus-cpp Registry and serves them at http://ADDRESS/metrics in the
// Prometheus text format (prometheus-cpp's pull exposer, civetweb inside).
//
// Code defines metrics with prometheus-cpp's own builders
// (prometheus::BuildCounter().Name(...).Register(*registry)); this file only
// starts and stops the HTTP endpoint.
//
// Thread-safety: metric updates are thread-safe (prometheus-cpp); Start and
// destruction happen on the owning thread.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace dfs::common {

class MetricsServer {
 public:
  // Serves `registry` at `address` ("host:port"; port 0 = any free port).
  // InvalidArgument for a malformed address, Unavailable if it cannot bind.
  static Result<std::unique_ptr<MetricsServer>> Start(const std::string& address,
                                                      std::shared_ptr<prometheus::Registry> registry);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port (the chosen one when asked for port 0).
  int port() const { return port_; }

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port);
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

// "HOST:PORT" a started server serves at (the bound port when `flag` asked
// for port 0); "" without a server.
std::string MetricsAddress(const std::string& flag, const MetricsServer* server);

}  // namespace dfs::common
