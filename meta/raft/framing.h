// The bytes of one Raft log entry. libraft 0.15 requires every entry
// buffer's length to be a multiple of 8 and does not check it: a follower
// that receives a batch of unaligned entries silently shifts each payload
// (toolchain notes §2.1). So every entry is framed and padded:
//
//   [u32 magic "dfs1"][u32 payload length][payload][zero pad to 8n bytes]
//
// (little endian). The payload is a serialized pb::Entry; trailing zeros
// would not parse as protobuf, hence the explicit length.
#pragma once

#include <string_view>

#include "common/result.h"
#include "meta/raft/raft_c.h"

namespace dfs::meta::raft {

inline constexpr uint32_t kEntryMagic = 0x31736664;  // "dfs1"

// A raft_malloc'd buffer (what raft_apply takes over), length a multiple of
// 8. Nullptr base if out of memory.
raft_buffer EncodeEntry(std::string_view payload);
// The payload inside `buf`; DataLoss if the frame is malformed.
common::Result<std::string_view> DecodeEntry(const raft_buffer& buf);

}  // namespace dfs::meta::raft
