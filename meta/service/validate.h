// Request validation shared by the handlers: malformed requests fail the
// call with INVALID_ARGUMENT (proto/meta.proto), they are not FS outcomes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string_view>

namespace dfs::meta {

// Empty names and names holding '/' or NUL. (Over-long names are an answer,
// ENAMETOOLONG, produced by the state machine.)
inline grpc::Status CheckName(std::string_view name) {
  if (name.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty name");
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "name contains '/' or NUL");
  }
  return grpc::Status::OK;
}

inline grpc::Status CheckIno(uint64_t ino) {
  if (ino == 0) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "inode 0");
  return grpc::Status::OK;
}

}  // namespace dfs::meta

#define DFS_RETURN_IF_BAD(expr)      \
  do {                               \
    grpc::Status dfs_bad_ = (expr);  \
    if (!dfs_bad_.ok()) return dfs_bad_; \
  } while (0)
