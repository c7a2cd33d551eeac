// Carried changes: what a client did that needed no answer from meta rides
// in its next mutation's RequestContext instead of costing a log entry of
// its own: the handles it closed (releases; close(2) does not wait for a
// release) and root's chmod/chown of files it holds open (set_attrs; the
// client answered them itself). HoistCarried moves them from the request
// inside an Op's body to Op.releases / Op.set_attrs, which the state machine
// applies before the body (StateMachine::ApplyEntry).
//
// Thread-safety: a pure function.
#pragma once

#include "common/status.h"
#include "proto/meta_entry.pb.h"

namespace dfs::meta {

// More in one request are refused (INVALID_ARGUMENT): a client sends at most
// a few hundred releases (fuse/client/carry_queue.h) and far fewer set_attrs.
inline constexpr int kMaxCarriedReleases = 1024;
inline constexpr int kMaxCarriedSetAttrs = 1024;
// The only SetAttrRequest.valid bits a carried set_attr may have.
inline constexpr uint32_t kCarriableSetAttrBits = pb::SET_MODE | pb::SET_UID | pb::SET_GID | pb::SET_CTIME;

// Moves the releases and set_attrs of the RequestContext in `op`'s body (the
// body's ctx, or that of the request a body wraps, as LeaseChunkOp does) to
// op->releases and op->set_attrs. INVALID_ARGUMENT, moving nothing, when
// there are too many, or a set_attr has other bits than
// kCarriableSetAttrBits, a commit, or carried changes of its own.
common::Status HoistCarried(pb::Op* op);

}  // namespace dfs::meta
