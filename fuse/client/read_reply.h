// CheckReadReply: verifies one message of a ChunkService.Read answer before
// any of its bytes go further (proto/chunk.proto, ReadReply).
//
// Each piece of the message's data that falls in one block is checked
// against that block's stored CRC: a whole block directly, a part of one
// (an exact read) with the PieceCheck terms the chunkserver sent
// (common/crc32c.h). Bytes no CRC covers, a partial block without terms, or
// terms in answer to a whole-block read are all DataLoss, and nothing of
// the message is handed on after a failed piece.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "common/status.h"
#include "proto/chunk.pb.h"

namespace dfs::fuse {

// Verified bytes, in order: (offset in the chunk, bytes).
using PieceSink = std::function<void(uint64_t offset, std::string_view bytes)>;

// Hands each verified piece of `reply` to `take`, in order. `exact` says
// whether the request asked for exact bytes: only then may a piece be part
// of a block (a whole-block reader caches what it gets as whole blocks).
// A message of whole zero blocks sent as a count (ReadReply.zero_blocks)
// hands on a zero block for each, once every stored CRC is a zero block's.
common::Status CheckReadReply(const pb::ReadReply& reply, bool exact, const PieceSink& take);

// How many chunk bytes `reply` stands for (its data, or its zero blocks).
uint64_t ReplyBytes(const pb::ReadReply& reply);

}  // namespace dfs::fuse
