#include "common/metrics.h"

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <exception>

#include "common/flags.h"

namespace dfs::common {

MetricsServer::MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port)
    : exposer_(std::move(exposer)), port_(port) {}

MetricsServer::~MetricsServer() = default;

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Registry> registry) {
  ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(address, /*allow_port_zero=*/true));
  std::unique_ptr<prometheus::Exposer> exposer;
  // prometheus-cpp reports a failed bind by throwing; convert here.
  try {
    exposer = std::make_unique<prometheus::Exposer>(hp.ToString(), /*num_threads=*/1);
  } catch (const std::exception& e) {
    return UnavailableError("metrics endpoint " + address + ": " + e.what());
  }
  exposer->RegisterCollectable(registry);
  std::vector<int> ports = exposer->GetListeningPorts();
  int port = ports.empty() ? hp.port : ports.front();
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(exposer), port));
}

std::string MetricsAddress(const std::string& flag, const MetricsServer* server) {
  if (server == nullptr) return "";
  auto address = ParseHostPort(flag, /*allow_port_zero=*/true);
  if (!address.ok()) return "";
  address->port = static_cast<uint16_t>(server->port());
  return address->ToString();
}

}  // namespace dfs::common
