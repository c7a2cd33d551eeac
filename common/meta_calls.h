// The requests a MetaService.Calls stream carries and the replies that come
// back, by type: PutCall(&call, request) exists for each request type a
// pb::MetaCall holds (so `requires { PutCall(call, request); }` tells
// whether a request may go on a stream), and TakeReply moves a reply of the
// wanted type out of a pb::MetaReturn. Used by the mount and meta_bench.
#pragma once

#include <type_traits>

#include "proto/meta.pb.h"

namespace dfs::common {

inline void PutCall(pb::MetaCall* call, const pb::LookupRequest& r) { *call->mutable_lookup() = r; }
inline void PutCall(pb::MetaCall* call, const pb::GetAttrRequest& r) { *call->mutable_get_attr() = r; }
inline void PutCall(pb::MetaCall* call, const pb::SetAttrRequest& r) { *call->mutable_set_attr() = r; }
inline void PutCall(pb::MetaCall* call, const pb::MknodRequest& r) { *call->mutable_mknod() = r; }
inline void PutCall(pb::MetaCall* call, const pb::CreateRequest& r) { *call->mutable_create() = r; }
inline void PutCall(pb::MetaCall* call, const pb::MkdirRequest& r) { *call->mutable_mkdir() = r; }
inline void PutCall(pb::MetaCall* call, const pb::UnlinkRequest& r) { *call->mutable_unlink() = r; }
inline void PutCall(pb::MetaCall* call, const pb::RmdirRequest& r) { *call->mutable_rmdir() = r; }
inline void PutCall(pb::MetaCall* call, const pb::SymlinkRequest& r) { *call->mutable_symlink() = r; }
inline void PutCall(pb::MetaCall* call, const pb::ReadlinkRequest& r) { *call->mutable_readlink() = r; }
inline void PutCall(pb::MetaCall* call, const pb::LinkRequest& r) { *call->mutable_link() = r; }
inline void PutCall(pb::MetaCall* call, const pb::RenameRequest& r) { *call->mutable_rename() = r; }
inline void PutCall(pb::MetaCall* call, const pb::OpenRequest& r) { *call->mutable_open() = r; }
inline void PutCall(pb::MetaCall* call, const pb::ReleaseRequest& r) { *call->mutable_release() = r; }
inline void PutCall(pb::MetaCall* call, const pb::AccessRequest& r) { *call->mutable_access() = r; }
inline void PutCall(pb::MetaCall* call, const pb::GetChunkLocationsRequest& r) {
  *call->mutable_get_chunk_locations() = r;
}
inline void PutCall(pb::MetaCall* call, const pb::LeaseChunkRequest& r) { *call->mutable_lease_chunk() = r; }
inline void PutCall(pb::MetaCall* call, const pb::CommitWriteRequest& r) { *call->mutable_commit_write() = r; }

// Moves the reply out of `ret` into *reply; false if `ret` holds another
// kind or none (a failed call).
template <typename Reply>
bool TakeReply(pb::MetaReturn* ret, Reply* reply) {
  Reply* held = nullptr;
  if constexpr (std::is_same_v<Reply, pb::EntryReply>) {
    if (ret->has_entry()) held = ret->mutable_entry();
  } else if constexpr (std::is_same_v<Reply, pb::AttrReply>) {
    if (ret->has_attr()) held = ret->mutable_attr();
  } else if constexpr (std::is_same_v<Reply, pb::CreateReply>) {
    if (ret->has_create()) held = ret->mutable_create();
  } else if constexpr (std::is_same_v<Reply, pb::StatusReply>) {
    if (ret->has_status()) held = ret->mutable_status();
  } else if constexpr (std::is_same_v<Reply, pb::ReadlinkReply>) {
    if (ret->has_readlink()) held = ret->mutable_readlink();
  } else if constexpr (std::is_same_v<Reply, pb::OpenReply>) {
    if (ret->has_open()) held = ret->mutable_open();
  } else if constexpr (std::is_same_v<Reply, pb::GetChunkLocationsReply>) {
    if (ret->has_locations()) held = ret->mutable_locations();
  } else {
    static_assert(std::is_same_v<Reply, pb::LeaseChunkReply>, "a reply MetaReturn does not carry");
    if (ret->has_lease()) held = ret->mutable_lease();
  }
  if (held == nullptr) return false;
  reply->Swap(held);
  return true;
}

}  // namespace dfs::common
