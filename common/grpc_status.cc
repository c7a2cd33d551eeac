#include "common/grpc_status.h"

namespace dfs::common {

grpc::Status ToGrpcStatus(const Status& status) {
  if (status.ok()) return grpc::Status::OK;
  auto code = static_cast<grpc::StatusCode>(StatusCodeToGrpcCode(status.code()));
  // Keep the dfs code name when it differs from the gRPC one (e.g. NOT_EMPTY
  // travelling as FAILED_PRECONDITION), so the message stays precise.
  return grpc::Status(code, status.ToString());
}

Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return Status::Ok();
  int code = static_cast<int>(status.error_code());
  if (code < 1 || code > 16) code = static_cast<int>(StatusCode::kUnknown);
  return Status(static_cast<StatusCode>(code), status.error_message());
}

void ToFsStatus(const Status& status, pb::FsStatus* out) {
  out->set_code(static_cast<int32_t>(status.code()));
  out->set_message(std::string(status.message()));
}

Status FromFsStatus(const pb::FsStatus& status) {
  if (status.code() == 0) return Status::Ok();
  if (!IsKnownStatusCode(status.code())) {
    return Status(StatusCode::kUnknown,
                  "unknown status code " + std::to_string(status.code()) + ": " + status.message());
  }
  return Status(static_cast<StatusCode>(status.code()), status.message());
}

grpc::Status NotLeaderStatus(grpc::ServerContext* context, std::string_view leader_address) {
  if (!leader_address.empty()) {
    context->AddTrailingMetadata(kLeaderHintKey, std::string(leader_address));
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "not leader; leader is " + std::string(leader_address));
  }
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not leader; leader unknown");
}

grpc::Status WithHint(const grpc::Status& status, std::string_view key, std::string_view value) {
  return grpc::Status(status.error_code(), status.error_message(), std::string(key) + "=" + std::string(value));
}

std::optional<std::string> HintOf(const grpc::ClientContext& context, const grpc::Status& status,
                                  std::string_view key) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(grpc::string_ref(key.data(), key.size()));
  if (it != trailers.end()) return std::string(it->second.data(), it->second.size());
  const std::string details = status.error_details();  // a copy: it returns by value
  if (details.size() > key.size() && details.starts_with(key) && details[key.size()] == '=') {
    return std::string(details.substr(key.size() + 1));
  }
  return std::nullopt;
}

}  // namespace dfs::common
