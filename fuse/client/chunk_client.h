// ChunkClient: the FUSE client's data path to the chunkservers.
//
// Write sends one byte range of a leased chunk version to every replica in
// parallel (one client-streaming Write each, ~1 MiB messages with per-piece
// CRC32Cs) and succeeds when the lease's write quorum W acknowledged; it
// returns who did, so the commit names only replicas that hold the data.
// Replicas still writing a grace period after W acknowledged (four times
// what W took, at least 1 s) are cancelled and left out: a hung replica
// costs a flush that grace, not io_timeout.
//
// ReadBlocks fetches whole 64 KiB blocks of a chunk version, verifies each
// against the CRC the chunkserver stored with it, and on a CRC mismatch, a
// DATA_LOSS answer or an unreachable replica moves to the next replica
// (reporting a corrupt one through the callback). ReadRange does the same
// for an exact byte range: the chunkserver sends only those bytes, with the
// terms that let them be checked against the stored CRCs of their blocks
// (common/crc32c.h, PieceCheck). Bytes that failed a check are never
// returned.
//
// Both ride through chunkservers that are briefly out of reach (a restart,
// a network blip): when no replica answered (UNAVAILABLE or each past its
// io_timeout), the whole round is tried again, with pauses growing from
// 50 ms to 1 s, until retry_timeout has passed since the first try; then
// the error goes back (EIO at the mount). A refusal (disk full, a stale
// version, corrupt data) is not retried here.
//
// Thread-safety: all methods may be called concurrently; channels are shared.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/thread_annotations.h"
#include "fuse/client/read_reply.h"
#include "proto/chunk.grpc.pb.h"
#include "proto/meta.pb.h"

namespace dfs::fuse {

class ChunkClient {
 public:
  // Called for a replica that served corrupt data (node id, reason).
  using BadReplicaReporter = std::function<void(uint64_t chunk_id, uint64_t version, uint64_t node_id,
                                                const std::string& reason)>;

  ChunkClient(int64_t io_timeout_ms, BadReplicaReporter reporter, int64_t retry_timeout_ms = 0);
  ChunkClient(const ChunkClient&) = delete;
  ChunkClient& operator=(const ChunkClient&) = delete;

  // Writes `ranges` (byte ranges of the lease's chunk version, in one stream
  // per replica, made durable once at its end if `durable`) on all replicas
  // in parallel; a replica builds the version from lease.base_version on the
  // first write under the lease, then writes in place. With `truncate_to`,
  // the version's length becomes exactly that after the data (an empty write
  // cuts a copy built from a longer base). Returns the node ids that
  // acknowledged (at least W) and what the version takes on their disks
  // (the most any said; none when none said), or the error of the quorum
  // failure (Unavailable, ResourceExhausted for disk full, PermissionDenied...).
  // Replicas that built the version from one a dead writer abandoned, not
  // from the lease's base, are left out when those that had the base make a
  // quorum (see the .cc): the acknowledged replicas always hold equal bytes.
  struct Range {
    uint64_t offset_in_chunk = 0;
    std::string_view data;
  };
  struct Written {
    std::vector<uint64_t> acked;
    std::optional<uint64_t> stored_bytes;  // WriteReply.stored_bytes
  };
  common::Result<Written> Write(const pb::ChunkLease& lease, std::span<const Range> ranges, bool durable,
                                std::optional<uint64_t> truncate_to = std::nullopt);

  // Blocks [first_block, first_block + count) of a chunk version, clipped to
  // the chunk length; each string is one verified block. DataLoss if no
  // replica could serve good data, Unavailable if none answered.
  common::Result<std::vector<std::string>> ReadBlocks(const pb::ChunkLocation& location, uint64_t first_block,
                                                      uint64_t count);
  // Bytes [offset, offset + length) of a chunk version, clipped to its
  // length; errors as ReadBlocks.
  common::Result<std::string> ReadRange(const pb::ChunkLocation& location, uint64_t offset, uint64_t length);

 private:
  // The stub of the channel to `address`, made on first use and kept.
  pb::ChunkService::Stub& StubFor(const std::string& address);
  // Runs fetch(replica) over the replicas until one succeeds (see ReadBlocks).
  template <typename Fetch>
  common::Status FromSomeReplica(const pb::ChunkLocation& location, Fetch fetch);
  // Runs `round` again while it fails for want of an answer, up to
  // retry_timeout_ms_ in all.
  template <typename Round>
  auto Retry(Round round) -> decltype(round());
  // One WriteData message: at most 1 MiB, cut at block boundaries, with
  // the CRC32C of each piece of it within a 64 KiB block.
  struct Piece {
    uint64_t offset = 0;
    bool first_of_range = false;  // the message names its offset
    std::string_view data;
    std::vector<uint32_t> crcs;
  };
  static std::vector<Piece> CutIntoMessages(std::span<const Range> ranges);
  // The replica's answer (built_from_version, stored_bytes). `ctx` is the
  // caller's, with the deadline set, so that it can cancel.
  common::Result<pb::WriteReply> WriteOne(grpc::ClientContext& ctx, const pb::ChunkLease& lease,
                                    const pb::ReplicaLocation& replica, std::span<const Piece> pieces, bool durable,
                                    std::optional<uint64_t> truncate_to);
  // One round of Write over the replicas.
  common::Result<Written> WriteOnce(const pb::ChunkLease& lease, std::span<const Piece> pieces, bool durable,
                                    std::optional<uint64_t> truncate_to);
  // One replica's answer to a Read of [offset, offset + length), each
  // verified piece handed to `take` as it arrives: whole blocks unless
  // `exact`.
  common::Status ReadFrom(const pb::ChunkLocation& location, const pb::ReplicaLocation& replica, uint64_t offset,
                          uint64_t length, bool exact, const PieceSink& take);

  const int64_t io_timeout_ms_;
  BadReplicaReporter reporter_;
  const int64_t retry_timeout_ms_;
  std::mutex mu_;  // guards stubs_
  // unique_ptr: a stub's address stays put while the map grows.
  std::map<std::string, std::unique_ptr<pb::ChunkService::Stub>> stubs_ GUARDED_BY(mu_);
};

}  // namespace dfs::fuse
