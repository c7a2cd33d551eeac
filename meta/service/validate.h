// Request validation shared by the handlers: malformed requests fail the
// call with INVALID_ARGUMENT (proto/meta.proto), they are not FS outcomes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "proto/meta.pb.h"

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

// Chunks a commit asks meta to keep (ChunkCommit.inlined) must fit this
// member's --inline-max (`inline_max`; 0: it keeps none). Apply checks
// only what holds on every member (common::kMaxInlineBytes).
inline grpc::Status CheckInline(const pb::CommitWriteRequest& req, uint64_t inline_max) {
  for (const pb::ChunkCommit& c : req.chunks()) {
    if (c.inlined() && c.data().size() > inline_max) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "inline data of " + std::to_string(c.data().size()) + " bytes: this meta keeps at most " +
                              std::to_string(inline_max) + " (--inline-max)");
    }
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
