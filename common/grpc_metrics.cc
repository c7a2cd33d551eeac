#include "common/grpc_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <map>
#include <mutex>
#include <utility>

namespace dfs::common {

namespace {

// Latency buckets from 100 us to 10 s: metadata calls take ~1 ms, chunk
// streams up to seconds.
prometheus::Histogram::BucketBoundaries Buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

}  // namespace

class GrpcCallMetrics::Families {
 public:
  Families(std::shared_ptr<prometheus::Registry> registry, const std::string& prefix)
      : registry_(std::move(registry)),
        requests_(prometheus::BuildCounter()
                      .Name(prefix + "_requests_total")
                      .Help("gRPC calls finished, by method and status code")
                      .Register(*registry_)),
        seconds_(prometheus::BuildHistogram()
                     .Name(prefix + "_request_seconds")
                     .Help("gRPC call time from arrival to status, by method")
                     .Register(*registry_)) {}

  void Record(const std::string& method, int code, double seconds) {
    prometheus::Counter* count;
    prometheus::Histogram* histogram;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto key = std::make_pair(method, code);
      auto it = counters_.find(key);
      if (it == counters_.end()) {
        it = counters_.emplace(key, &requests_.Add({{"method", method}, {"code", CodeName(code)}})).first;
      }
      count = it->second;
      auto h = histograms_.find(method);
      if (h == histograms_.end()) h = histograms_.emplace(method, &seconds_.Add({{"method", method}}, Buckets())).first;
      histogram = h->second;
    }
    count->Increment();
    histogram->Observe(seconds);
  }

 private:
  static std::string CodeName(int code) {
    static const char* kNames[] = {"OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
                                   "DEADLINE_EXCEEDED", "NOT_FOUND",   "ALREADY_EXISTS",    "PERMISSION_DENIED",
                                   "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                   "UNIMPLEMENTED", "INTERNAL",         "UNAVAILABLE",       "DATA_LOSS",
                                   "UNAUTHENTICATED"};
    return code >= 0 && code < 17 ? kNames[code] : "CODE_" + std::to_string(code);
  }

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& seconds_;
  std::mutex mu_;
  std::map<std::pair<std::string, int>, prometheus::Counter*> counters_;
  std::map<std::string, prometheus::Histogram*> histograms_;
};

GrpcCallMetrics::GrpcCallMetrics(std::shared_ptr<prometheus::Registry> registry, const std::string& prefix)
    : families_(std::make_unique<Families>(std::move(registry), prefix)) {}
GrpcCallMetrics::~GrpcCallMetrics() = default;

void GrpcCallMetrics::Record(const std::string& method, int code, double seconds) {
  families_->Record(method, code, seconds);
}

namespace {

class Interceptor : public grpc::experimental::Interceptor {
 public:
  Interceptor(GrpcCallMetrics* metrics, const char* method)
      : metrics_(metrics), method_(method), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics_->Record(method_, static_cast<int>(methods->GetSendStatus().error_code()), seconds);
    }
    methods->Proceed();
  }

 private:
  GrpcCallMetrics* metrics_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
};

class Factory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(GrpcCallMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new Interceptor(metrics_, info->method());
  }

 private:
  GrpcCallMetrics* metrics_;
};

}  // namespace

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> GrpcMetricsInterceptors(
    GrpcCallMetrics* metrics) {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<Factory>(metrics));
  return out;
}

}  // namespace dfs::common
