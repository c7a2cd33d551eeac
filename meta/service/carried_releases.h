// Carried releases: the handles a client closed since its previous mutation
// travel in that mutation's RequestContext.releases (close(2) does not wait
// for a release, so it need not cost a log entry of its own). HoistReleases
// moves them from the request inside an Op's body to Op.releases, which the
// state machine applies before the body (StateMachine::ApplyEntry).
//
// Thread-safety: a pure function.
#pragma once

#include "common/status.h"
#include "proto/meta_entry.pb.h"

namespace dfs::meta {

// More in one request is refused (INVALID_ARGUMENT): a client sends at most
// a few hundred (fuse/client/release_queue.h).
inline constexpr int kMaxCarriedReleases = 1024;

// Moves the releases of the RequestContext in `op`'s body (the body's ctx,
// or that of the request a body wraps, as LeaseChunkOp does) to
// op->releases. INVALID_ARGUMENT, moving nothing, when there are more than
// kMaxCarriedReleases.
common::Status HoistReleases(pb::Op* op);

}  // namespace dfs::meta
