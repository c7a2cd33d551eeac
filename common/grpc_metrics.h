// Request counts and latency histograms for every method of a gRPC server,
// through gRPC's server interceptor hook (no per-handler code), and for
// calls that are not RPCs of their own (a message of dfs-meta's Calls
// stream counts as its method's unary call would):
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

class GrpcCallMetrics {
 public:
  // Registers <prefix>_requests_total and <prefix>_request_seconds.
  GrpcCallMetrics(std::shared_ptr<prometheus::Registry> registry, const std::string& prefix);
  ~GrpcCallMetrics();
  // One finished call of `method` ("/dfs.pb.MetaService/Create").
  void Record(const std::string& method, int code, double seconds);

 private:
  class Families;
  std::unique_ptr<Families> families_;
};

// For ServerBuilder::experimental().SetInterceptorCreators: records every
// RPC in `metrics`, which must outlive the server.
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> GrpcMetricsInterceptors(
    GrpcCallMetrics* metrics);

}  // namespace dfs::common
