#include "fuse/client/chunk_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/chunk_geometry.h"
#include "common/crc32c.h"
#include "common/grpc_status.h"
#include "common/leader_channel.h"
#include "fuse/client/read_reply.h"

namespace dfs::fuse {

using common::Result;
using common::Status;

namespace {
constexpr size_t kMessageBytes = 1 << 20;  // the data-path sweet spot (notes/toolchain.md §4)
constexpr int64_t kFirstPauseMs = 50;
constexpr int64_t kMaxPauseMs = 1'000;

// How long replicas beyond the write quorum may take after it was reached:
// four times what the quorum took (bulk writes on a busy disk finish
// unevenly), at least a second, so that on a healthy cluster every
// replica normally makes it and nothing needs copying again afterwards.
constexpr int64_t kMinStragglerGraceMs = 1'000;
std::chrono::steady_clock::duration StragglerGrace(std::chrono::steady_clock::duration to_quorum) {
  return std::max<std::chrono::steady_clock::duration>(4 * to_quorum,
                                                       std::chrono::milliseconds(kMinStragglerGraceMs));
}

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

// No replica answered: worth another round. Anything else is an answer.
bool Unanswered(const Status& s) {
  return s.code() == common::StatusCode::kUnavailable || s.code() == common::StatusCode::kDeadlineExceeded;
}
}  // namespace

ChunkClient::ChunkClient(int64_t io_timeout_ms, BadReplicaReporter reporter, int64_t retry_timeout_ms)
    : io_timeout_ms_(io_timeout_ms), reporter_(std::move(reporter)), retry_timeout_ms_(retry_timeout_ms) {}

template <typename Round>
auto ChunkClient::Retry(Round round) -> decltype(round()) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(retry_timeout_ms_);
  for (int64_t pause = kFirstPauseMs;; pause = std::min(pause * 2, kMaxPauseMs)) {
    auto result = round();
    if (result.ok() || !Unanswered(StatusOf(result)) ||
        std::chrono::steady_clock::now() + std::chrono::milliseconds(pause) >= give_up) {
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(pause));
  }
}

pb::ChunkService::Stub& ChunkClient::StubFor(const std::string& address) {
  // One stub per address: building a stub registers each of the service's
  // methods with the channel (common/stub_cache.h says why that is dear).
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<pb::ChunkService::Stub>& stub = stubs_[address];
  if (stub == nullptr) stub = std::make_unique<pb::ChunkService::Stub>(common::MakeChannel(address));
  return *stub;
}

std::vector<ChunkClient::Piece> ChunkClient::CutIntoMessages(std::span<const Range> ranges) {
  std::vector<Piece> pieces;
  for (const Range& range : ranges) {
    for (size_t pos = 0; pos < range.data.size();) {
      Piece piece;
      piece.offset = range.offset_in_chunk + pos;
      piece.first_of_range = pos == 0;
      size_t n = std::min(kMessageBytes, range.data.size() - pos);
      // Cut messages at block boundaries so each carries whole pieces.
      uint64_t in_block = piece.offset % common::kBlockSizeBytes;
      if (n == kMessageBytes && in_block != 0) n -= in_block;
      piece.data = range.data.substr(pos, n);
      piece.crcs.resize(common::PieceCount(piece.offset, n, common::kBlockSizeBytes));
      common::PieceCrcs(piece.offset, std::as_bytes(std::span(piece.data.data(), n)), common::kBlockSizeBytes,
                        piece.crcs);
      pieces.push_back(std::move(piece));
      pos += n;
    }
  }
  return pieces;
}

Result<pb::WriteReply> ChunkClient::WriteOne(grpc::ClientContext& ctx, const pb::ChunkLease& lease,
                                             const pb::ReplicaLocation& replica, std::span<const Piece> pieces,
                                             bool durable, std::optional<uint64_t> truncate_to) {
  pb::ChunkService::Stub& stub = StubFor(replica.address());
  // The call's metadata goes out with the header, and the last message
  // carries the half-close: a small write is two sends, not four, and the
  // chunkserver wakes for each one it gets.
  ctx.set_initial_metadata_corked(true);
  pb::WriteReply reply;
  auto writer = stub.Write(&ctx, &reply);

  pb::WriteRequest msg;
  pb::WriteHeader* header = msg.mutable_header();
  header->set_chunk_id(lease.chunk_id());
  header->set_version(lease.version());
  // The chunkserver builds `version` from base_version when it does not hold
  // it yet (the first write under a lease) and writes in place afterwards.
  header->set_base_version(lease.base_version());
  header->set_offset(!pieces.empty() ? pieces[0].offset : truncate_to.value_or(0));
  if (!header->mutable_token()->ParseFromString(lease.write_token())) {
    return common::InternalError("meta sent an unparsable write token");
  }
  header->set_durable(durable);
  if (truncate_to) {
    header->set_truncate(true);
    header->set_truncate_to(*truncate_to);
  }
  bool closed = false;  // a half-close was sent (gRPC refuses a second one)
  auto options = [&](size_t messages_left) {
    if (messages_left != 0) return grpc::WriteOptions();
    closed = true;
    return grpc::WriteOptions().set_last_message();
  };
  bool ok = writer->Write(msg, options(pieces.size()));
  for (size_t i = 0; ok && i < pieces.size(); ++i) {
    const Piece& piece = pieces[i];
    msg.Clear();
    pb::WriteData* d = msg.mutable_data();
    if (piece.first_of_range) d->set_offset(piece.offset);
    d->set_data(piece.data.data(), piece.data.size());
    d->mutable_piece_crcs()->Add(piece.crcs.begin(), piece.crcs.end());
    ok = writer->Write(msg, options(pieces.size() - i - 1));
  }
  // A Write that failed before the last one left the half-close unsent;
  // Finish then reports why.
  if (!closed) writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return common::FromGrpcStatus(s).WithContext("write chunk " + std::to_string(lease.chunk_id()) +
                                                            " on " + replica.address());
  return reply;
}

Result<ChunkClient::Written> ChunkClient::Write(const pb::ChunkLease& lease, std::span<const Range> ranges,
                                                bool durable, std::optional<uint64_t> truncate_to) {
  // Every replica of the lease holds all earlier writes under it (the
  // caller drops those that missed one), so sending the same ranges again
  // to all of them, those that took them included, is safe. Cut and
  // checksummed once: every replica, and every round, sends these messages.
  const std::vector<Piece> pieces = CutIntoMessages(ranges);
  return Retry([&] { return WriteOnce(lease, pieces, durable, truncate_to); });
}

Result<ChunkClient::Written> ChunkClient::WriteOnce(const pb::ChunkLease& lease, std::span<const Piece> pieces,
                                                    bool durable, std::optional<uint64_t> truncate_to) {
  if (lease.replicas().empty()) return common::UnavailableError("no replicas to write to");
  const uint32_t quorum = lease.write_quorum() != 0 ? lease.write_quorum()
                                                    : static_cast<uint32_t>(lease.replicas_size() / 2 + 1);
  const int n = lease.replicas_size();
  const auto start = std::chrono::steady_clock::now();
  std::vector<grpc::ClientContext> contexts(static_cast<size_t>(n));
  for (grpc::ClientContext& ctx : contexts) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(io_timeout_ms_));
  }
  struct Progress {
    std::mutex mu;
    std::condition_variable cv;
    int done = 0;
    uint32_t ok = 0;
    std::optional<std::chrono::steady_clock::time_point> quorum_at;
  } progress;
  std::vector<std::future<Result<pb::WriteReply>>> results;
  for (int i = 0; i < n; ++i) {
    results.push_back(std::async(std::launch::async, [&, i] {
      Result<pb::WriteReply> r = WriteOne(contexts[i], lease, lease.replicas(i), pieces, durable, truncate_to);
      std::lock_guard<std::mutex> lock(progress.mu);
      ++progress.done;
      if (r.ok() && ++progress.ok == quorum) progress.quorum_at = std::chrono::steady_clock::now();
      progress.cv.notify_all();
      return r;
    }));
  }
  {
    // Once W replicas have the data, the write is durable. The others get
    // a grace (StragglerGrace) and are then cancelled: a replica that hangs
    // (a stopped process, a dead link that still looks open) costs a flush
    // that much, not io_timeout. One cut off is left out of the commit like
    // one that failed: the caller stops writing to it under this lease, and
    // meta copies the version to it again.
    std::unique_lock<std::mutex> lock(progress.mu);
    progress.cv.wait(lock, [&] { return progress.done == n || progress.quorum_at.has_value(); });
    if (progress.done < n) {
      const auto deadline = *progress.quorum_at + StragglerGrace(*progress.quorum_at - start);
      if (!progress.cv.wait_until(lock, deadline, [&] { return progress.done == n; })) {
        spdlog::warn("chunk {}: {} of {} replicas still writing {} ms after a quorum had the data; cut off",
                     lease.chunk_id(), n - progress.done, n,
                     std::chrono::duration_cast<std::chrono::milliseconds>(deadline - *progress.quorum_at).count());
        for (grpc::ClientContext& ctx : contexts) ctx.TryCancel();  // a finished call ignores it
      }
    }
  }
  std::vector<uint64_t> acked;
  std::vector<uint64_t> from_abandoned;  // built from a newer version than the base
  std::map<uint64_t, uint64_t> stored;   // node -> WriteReply.stored_bytes
  Status first_error;
  for (int i = 0; i < n; ++i) {
    Result<pb::WriteReply> reply = results[i].get();
    const uint64_t node = lease.replicas(i).node_id();
    if (reply.ok()) {
      acked.push_back(node);
      if (lease.base_version() != 0 && reply->built_from_version() > lease.base_version()) {
        from_abandoned.push_back(node);
      }
      if (reply->has_stored_bytes()) stored[node] = reply->stored_bytes();
    } else {
      spdlog::warn("{}", reply.status().ToString());
      // An answer (disk full...) says more than a silence, and is not retried.
      if (first_error.ok() || (Unanswered(first_error) && !Unanswered(reply.status()))) {
        first_error = reply.status();
      }
    }
  }
  // A writer that died before its commit may have finished its version on
  // some replicas and not others: they now hold different bytes (its write
  // was never acknowledged). Keep one side only, so the replicas of the new
  // version agree: the base's when it has a quorum (the others are left
  // out of the commit, and meta copies the version to them again), else the
  // abandoned version's.
  if (!from_abandoned.empty() && acked.size() - from_abandoned.size() >= quorum) {
    spdlog::info("chunk {}: {} replica(s) held a version its writer abandoned; writing on without them",
                 lease.chunk_id(), from_abandoned.size());
    std::erase_if(acked, [&](uint64_t node) {
      return std::find(from_abandoned.begin(), from_abandoned.end(), node) != from_abandoned.end();
    });
  }
  if (acked.size() < quorum) {
    // Prefer the reason a local filesystem would report (disk full) over "unavailable".
    return first_error.WithContext("only " + std::to_string(acked.size()) + " of " +
                                   std::to_string(lease.replicas_size()) + " replicas took the write, need " +
                                   std::to_string(quorum));
  }
  Written written;
  for (uint64_t node : acked) {
    auto it = stored.find(node);
    if (it != stored.end()) written.stored_bytes = std::max(written.stored_bytes.value_or(0), it->second);
  }
  written.acked = std::move(acked);
  return written;
}

Status ChunkClient::ReadFrom(const pb::ChunkLocation& location, const pb::ReplicaLocation& replica,
                             uint64_t offset, uint64_t length, bool exact, const PieceSink& take) {
  pb::ChunkService::Stub& stub = StubFor(replica.address());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(io_timeout_ms_));
  pb::ReadRequest request;
  request.set_chunk_id(location.chunk_id());
  request.set_version(location.version());
  request.set_offset(offset);
  request.set_length(length);
  request.set_exact(exact);
  request.set_zero_blocks_ok(!exact);  // a sparse file's holes come as counts
  auto reader = stub.Read(&ctx, request);

  pb::ReadReply reply;
  // Whole blocks start at a block boundary; exact bytes where asked, or at
  // the boundary before it from a chunkserver that predates exact reads.
  const uint64_t aligned = offset / common::kBlockSizeBytes * common::kBlockSizeBytes;
  std::optional<uint64_t> expect_offset;
  Status bad;
  while (bad.ok() && reader->Read(&reply)) {
    const bool in_order = expect_offset ? reply.offset() == *expect_offset
                                        : reply.offset() >= aligned && reply.offset() <= (exact ? offset : aligned);
    if (!in_order) {
      bad = common::DataLossError("reply out of order at offset " + std::to_string(reply.offset()));
      break;
    }
    bad = CheckReadReply(reply, exact, take);
    expect_offset = reply.offset() + ReplyBytes(reply);
  }
  if (!bad.ok()) {
    ctx.TryCancel();
    (void)reader->Finish();
    return bad;
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return common::FromGrpcStatus(s);
  return Status::Ok();
}

template <typename Fetch>
Status ChunkClient::FromSomeReplica(const pb::ChunkLocation& location, Fetch fetch) {
  Status last = common::UnavailableError("chunk " + std::to_string(location.chunk_id()) + " has no replicas");
  bool saw_corruption = false;
  for (const pb::ReplicaLocation& replica : location.replicas()) {
    Status s = fetch(replica);
    if (s.ok()) return s;
    last = s.WithContext("read chunk " + std::to_string(location.chunk_id()) + " v" +
                         std::to_string(location.version()) + " from " + replica.address());
    spdlog::warn("{}", last.ToString());
    if (last.code() == common::StatusCode::kDataLoss) {
      saw_corruption = true;
      if (reporter_) reporter_(location.chunk_id(), location.version(), replica.node_id(), std::string(last.message()));
    }
  }
  if (saw_corruption && last.code() != common::StatusCode::kDataLoss) {
    return common::DataLossError("no replica of chunk " + std::to_string(location.chunk_id()) +
                                 " served good data; last: " + std::string(last.message()));
  }
  return last;
}

Result<std::vector<std::string>> ChunkClient::ReadBlocks(const pb::ChunkLocation& location, uint64_t first_block,
                                                         uint64_t count) {
  std::vector<std::string> blocks;
  auto from_replica = [&](const pb::ReplicaLocation& replica) {
    blocks.clear();
    return ReadFrom(location, replica, first_block * common::kBlockSizeBytes, count * common::kBlockSizeBytes,
                    /*exact=*/false, [&](uint64_t, std::string_view block) { blocks.emplace_back(block); });
  };
  RETURN_IF_ERROR(Retry([&] { return FromSomeReplica(location, from_replica); }));
  return blocks;
}

Result<std::string> ChunkClient::ReadRange(const pb::ChunkLocation& location, uint64_t offset, uint64_t length) {
  std::string out;
  auto from_replica = [&](const pb::ReplicaLocation& replica) {
    out.clear();
    return ReadFrom(location, replica, offset, length, /*exact=*/true, [&](uint64_t at, std::string_view piece) {
      // Whole blocks from an older chunkserver: keep the part asked for.
      const uint64_t from = std::max(at, offset);
      const uint64_t to = std::min(at + piece.size(), offset + length);
      if (from < to) out.append(piece.substr(from - at, to - from));
    });
  };
  RETURN_IF_ERROR(Retry([&] { return FromSomeReplica(location, from_replica); }));
  return out;
}

}  // namespace dfs::fuse
