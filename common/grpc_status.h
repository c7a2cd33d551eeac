// The edge between dfs Status and gRPC: conversions both ways, filesystem
// outcomes carried in replies (pb::FsStatus), and the "not leader" hint.
//
// Only transport files include this header (it pulls in gRPC); core logic
// deals in common::Status.
//
// Wire rules (proto/meta.proto): an FsStatus in a reply is an answer; a
// non-OK grpc::Status is a failed call. A follower fails a call with
// UNAVAILABLE and the trailing metadata key kLeaderHintKey = "host:port".
#pragma once

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "proto/meta.pb.h"

namespace dfs::common {

inline constexpr char kLeaderHintKey[] = "dfs-leader";

// Status -> grpc::Status with the same message; codes map through the one
// table in status.cc.
grpc::Status ToGrpcStatus(const Status& status);
// grpc::Status -> Status. gRPC codes are canonical codes, so they keep their meaning.
Status FromGrpcStatus(const grpc::Status& status);

// Status <-> the FsStatus of a reply. An unknown code from a newer peer
// becomes kUnknown with the code number in the message.
void ToFsStatus(const Status& status, pb::FsStatus* out);
Status FromFsStatus(const pb::FsStatus& status);

// Server side: fails the call as "not leader", naming the leader if known.
grpc::Status NotLeaderStatus(grpc::ServerContext* context, std::string_view leader_address);
// A call that has no trailing metadata of its own (a message of a
// MetaService.Calls stream) carries a hint (kLeaderHintKey,
// kRetryAfterHeader) in its status details instead, as "key=value".
grpc::Status WithHint(const grpc::Status& status, std::string_view key, std::string_view value);
// Client side: the hint `key` of a finished call, from its trailing
// metadata or else its status details (WithHint); nullopt if neither has it.
std::optional<std::string> HintOf(const grpc::ClientContext& context, const grpc::Status& status,
                                  std::string_view key);

}  // namespace dfs::common
