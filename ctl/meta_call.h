// The call every mutating dfsctl command makes: a MetaService method that
// answers StatusReply, through the leader; one Status for both the RPC's
// failure and the reply's.
#pragma once

#include <functional>

#include "common/status.h"
#include "ctl/ctl.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::ctl {

using StatusCall = std::function<grpc::Status(pb::MetaService::Stub&, grpc::ClientContext&, pb::StatusReply*)>;
common::Status CallMeta(Context& ctx, const StatusCall& call);

}  // namespace dfs::ctl
