// Request counts and latency histograms for every method of a gRPC server,
// through gRPC's server interceptor hook (no per-handler code):
//   <prefix>_requests_total{method, code}   finished calls by status code
//   <prefix>_request_seconds{method}        time from arrival to status sent
//
// Thread-safety: the interceptors run on gRPC's threads; prometheus-cpp
// metrics are thread-safe, and the label lookup is guarded.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/support/server_interceptor.h>

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace dfs::common {

// For ServerBuilder::experimental().SetInterceptorCreators.
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> GrpcMetricsInterceptors(
    std::shared_ptr<prometheus::Registry> registry, const std::string& prefix);

}  // namespace dfs::common
