// The chunk map: leases, commits, truncation, fallocate, garbage, and the
// chunkserver-driven replica changes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>

#include <optional>
#include <string>
#include <vector>

#include "common/chunk_geometry.h"
#include "common/status.h"
#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

using common::StatusCode;
constexpr int C(StatusCode code) { return static_cast<int>(code); }
constexpr uint64_t kRoot = 1;
constexpr uint64_t kMiB = 1 << 20;

class ChunkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (uint64_t node : {11, 12, 13}) {
      pb::Op op;
      auto* r = op.mutable_register_node()->mutable_request();
      r->set_node_id(node);
      r->set_address("127.0.0.1:" + std::to_string(9000 + node));
      ASSERT_EQ(h.Apply(op).status().code(), 0);
    }
    pb::Op op;
    op.mutable_open_session()->set_lease_ms(1000);
    client_ = h.Apply(op).client_id();
    h.client_id = client_;
    ASSERT_EQ(h.Create(kRoot, "f", 0644, &file_, &handle_), 0);
  }
  pb::OpResult Lease(uint64_t index, uint64_t client, uint64_t handle, int64_t expires_ms) {
    pb::Op op;
    op.set_client_id(client);
    op.add_placement(12);
    op.add_placement(11);
    op.add_placement(13);
    auto* r = op.mutable_lease_chunk()->mutable_request();
    r->set_ino(file_.ino());
    r->set_handle_id(handle);
    r->set_chunk_index(index);
    op.mutable_lease_chunk()->set_lease_expires_unix_ms(expires_ms);
    return h.Apply(op);
  }
  pb::CommitWriteRequest CommitRequest(const pb::ChunkLease& lease, uint64_t length, uint64_t new_size,
                                       std::vector<uint64_t> nodes = {11, 12, 13}) {
    pb::CommitWriteRequest r;
    r.set_ino(file_.ino());
    r.set_handle_id(handle_);
    r.set_new_size(new_size);
    auto* c = r.add_chunks();
    c->set_chunk_index(lease.chunk_index());
    c->set_chunk_id(lease.chunk_id());
    c->set_version(lease.version());
    c->set_length(length);
    for (uint64_t n : nodes) c->add_replica_node_ids(n);
    return r;
  }
  pb::OpResult Commit(const pb::ChunkLease& lease, uint64_t length, uint64_t new_size,
                      std::vector<uint64_t> nodes = {11, 12, 13}, int64_t busy_until_ms = 0) {
    pb::Op op;
    op.set_client_id(client_);
    op.set_lease_expires_unix_ms(busy_until_ms);
    *op.mutable_commit_write() = CommitRequest(lease, length, new_size, std::move(nodes));
    return h.Apply(op);
  }
  // A commit of chunk `lease.chunk_index()` as `data` kept in meta, with the
  // file size `new_size` (default: the data's).
  pb::OpResult InlineCommit(const pb::ChunkLease& lease, const std::string& data,
                            std::optional<uint64_t> new_size = std::nullopt) {
    pb::Op op;
    op.set_client_id(client_);
    *op.mutable_commit_write() = CommitRequest(lease, data.size(), new_size.value_or(data.size()), {});
    op.mutable_commit_write()->mutable_chunks(0)->set_inlined(true);
    op.mutable_commit_write()->mutable_chunks(0)->set_data(data);
    return h.Apply(op);
  }
  pb::GetChunkLocationsReply Locations(uint64_t offset, uint64_t length) {
    pb::GetChunkLocationsRequest req;
    req.set_ino(file_.ino());
    req.set_offset(offset);
    req.set_length(length);
    pb::GetChunkLocationsReply reply;
    h.sm().GetChunkLocations(req, &reply);
    return reply;
  }
  int64_t NowMs() const { return h.now_ns / 1'000'000; }
  // A second mount: its own session and a writable handle of the file.
  void OtherMount(uint64_t* client, uint64_t* handle) {
    pb::Op op;
    op.mutable_open_session()->set_lease_ms(1000);
    *client = h.Apply(op).client_id();
    h.client_id = *client;
    ASSERT_EQ(h.Create(kRoot, "f", 0644, nullptr, handle, O_WRONLY), 0);
    h.client_id = client_;
  }

  // Chunk 0 leased for 60 s and committed by this mount, then a second mount.
  void CommittedThenAnotherMount(pb::ChunkLease* lease, uint64_t* client, uint64_t* handle) {
    *lease = Lease(0, client_, handle_, NowMs() + 60'000).lease();
    ASSERT_EQ(Commit(*lease, 10, 10).status().code(), 0);
    ASSERT_NO_FATAL_FAILURE(OtherMount(client, handle));
  }

  testing::SmHarness h;
  uint64_t client_ = 0;
  uint64_t handle_ = 0;
  pb::Attr file_;
};

TEST_F(ChunkTest, LeaseChunk_AllocatesWithPlacementAndBumpsVersion) {
  pb::OpResult first = Lease(0, client_, handle_, NowMs() + 1000);
  ASSERT_EQ(first.status().code(), 0);
  const pb::ChunkLease& lease = first.lease();
  EXPECT_NE(lease.chunk_id(), 0u);
  EXPECT_EQ(lease.version(), 1u);
  EXPECT_EQ(lease.base_version(), 0u);
  ASSERT_EQ(lease.replicas_size(), 3);
  EXPECT_EQ(lease.write_quorum(), 2u);
  EXPECT_EQ(lease.replicas(0).address(), "127.0.0.1:9011");
  // Renewal by the same writer keeps the version.
  pb::OpResult renewed = Lease(0, client_, handle_, NowMs() + 2000);
  EXPECT_EQ(renewed.lease().version(), 1u);
  EXPECT_EQ(renewed.lease().lease_id(), lease.lease_id());
}

TEST_F(ChunkTest, LeaseChunk_SecondWriterWaitsForExpiry) {
  ASSERT_EQ(Lease(0, client_, handle_, NowMs() + 1000).status().code(), 0);
  uint64_t other_client = 0, other = 0;
  ASSERT_NO_FATAL_FAILURE(OtherMount(&other_client, &other));
  EXPECT_EQ(Lease(0, other_client, other, NowMs() + 1000).status().code(), C(StatusCode::kAborted));
  h.now_ns += 2'000'000'000;
  pb::OpResult taken = Lease(0, other_client, other, NowMs() + 1000);
  ASSERT_EQ(taken.status().code(), 0);
  EXPECT_EQ(taken.lease().version(), 2u);  // never reuses the abandoned version
}

// A lease its holder has not used for 2 s (no grant, renewal or commit)
// goes to a writer on another mount, with a new version; the holder's
// commit under it is then refused, even at the committed version.
TEST_F(ChunkTest, LeaseChunk_AnIdleLeaseGoesToAnotherMount) {
  pb::ChunkLease first;
  uint64_t other_client = 0, other = 0;
  ASSERT_NO_FATAL_FAILURE(CommittedThenAnotherMount(&first, &other_client, &other));
  h.now_ns += 1'000'000'000;
  EXPECT_EQ(Lease(0, other_client, other, NowMs() + 60'000).status().code(), C(StatusCode::kAborted));
  h.now_ns += 1'500'000'000;
  pb::OpResult taken = Lease(0, other_client, other, NowMs() + 60'000);
  ASSERT_EQ(taken.status().code(), 0) << taken.status().message();
  EXPECT_EQ(taken.lease().version(), 2u);
  EXPECT_EQ(taken.lease().base_version(), 1u);
  EXPECT_EQ(Commit(first, 20, 20).status().code(), C(StatusCode::kFailedPrecondition));
  // And the first mount waits for the new holder in turn.
  EXPECT_EQ(Lease(0, client_, handle_, NowMs() + 60'000).status().code(), C(StatusCode::kAborted));
}

// A lease says how long the file is when it is granted: a mount appending
// with O_APPEND puts its buffered appends there, past what another mount
// appended and committed meanwhile.
TEST_F(ChunkTest, LeaseChunk_SaysTheFilesCommittedSize) {
  pb::ChunkLease first;
  uint64_t other_client = 0, other = 0;
  ASSERT_NO_FATAL_FAILURE(CommittedThenAnotherMount(&first, &other_client, &other));
  EXPECT_TRUE(first.has_file_size());
  EXPECT_EQ(first.file_size(), 0u);  // granted before anything was committed
  h.now_ns += 2'500'000'000;
  pb::OpResult taken = Lease(0, other_client, other, NowMs() + 60'000);
  ASSERT_EQ(taken.status().code(), 0) << taken.status().message();
  ASSERT_TRUE(taken.lease().has_file_size());
  EXPECT_EQ(taken.lease().file_size(), 10u);
  // A lease on a later chunk, beyond the end, says the same.
  pb::OpResult later = Lease(3, other_client, other, NowMs() + 60'000);
  ASSERT_EQ(later.status().code(), 0) << later.status().message();
  EXPECT_EQ(later.lease().file_size(), 10u);
}

// Entries from before Op.movable_leases replay by the older rules: a live
// lease stays its holder's, and a commit at the committed version stands.
TEST_F(ChunkTest, EntriesFromBeforeMovableLeases_KeepTheOlderRules) {
  h.movable_leases = false;
  pb::ChunkLease first;
  uint64_t other_client = 0, other = 0;
  ASSERT_NO_FATAL_FAILURE(CommittedThenAnotherMount(&first, &other_client, &other));
  h.now_ns += 10'000'000'000;
  EXPECT_EQ(Lease(0, other_client, other, NowMs() + 60'000).status().code(), C(StatusCode::kAborted));
  h.movable_leases = true;
  ASSERT_EQ(Lease(0, other_client, other, NowMs() + 60'000).status().code(), 0);
  h.movable_leases = false;
  EXPECT_EQ(Commit(first, 20, 20).status().code(), 0);
}

// A commit stamped by the leader (no other writer waits) keeps the lease
// busy for 2 s more; one it did not stamp (a writer waits) does not.
TEST_F(ChunkTest, CommitWrite_KeepsItsLeaseBusyUnlessAnotherWriterWaits) {
  pb::ChunkLease lease = Lease(0, client_, handle_, NowMs() + 60'000).lease();
  uint64_t other_client = 0, other = 0;
  ASSERT_NO_FATAL_FAILURE(OtherMount(&other_client, &other));
  h.now_ns += 1'500'000'000;
  ASSERT_EQ(Commit(lease, 10, 10, {11, 12, 13}, NowMs() + 60'000).status().code(), 0);
  h.now_ns += 1'500'000'000;
  EXPECT_EQ(Lease(0, other_client, other, NowMs() + 60'000).status().code(), C(StatusCode::kAborted));
  ASSERT_EQ(Commit(lease, 20, 20).status().code(), 0);  // not stamped
  h.now_ns += 1'000'000'000;  // 2.5 s after the stamped commit
  pb::OpResult taken = Lease(0, other_client, other, NowMs() + 60'000);
  ASSERT_EQ(taken.status().code(), 0) << taken.status().message();
  EXPECT_EQ(taken.lease().version(), 2u);
  EXPECT_EQ(taken.lease().length(), 20u);
}

// A mount flushes a file's one write buffer through whichever of its
// writable handles wrote last: its other handle continues the lease (same
// version, the bytes already sent under it stay valid) and takes the row,
// so the first handle's release leaves it and the second's ends it.
TEST_F(ChunkTest, LeaseChunk_AnotherHandleOfTheSameMountContinuesTheLease) {
  pb::OpResult first = Lease(0, client_, handle_, NowMs() + 10'000);
  ASSERT_EQ(first.status().code(), 0);
  uint64_t second = 0;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, nullptr, &second, O_WRONLY), 0);
  pb::OpResult continued = Lease(0, client_, second, NowMs() + 10'000);
  ASSERT_EQ(continued.status().code(), 0) << continued.status().message();
  EXPECT_EQ(continued.lease().version(), first.lease().version());
  EXPECT_EQ(continued.lease().lease_id(), first.lease().lease_id());

  uint64_t other_client = 0, other = 0;
  ASSERT_NO_FATAL_FAILURE(OtherMount(&other_client, &other));
  auto release = [&](uint64_t handle) {
    pb::Op op;
    op.set_client_id(client_);
    op.mutable_release()->set_ino(file_.ino());
    op.mutable_release()->set_handle_id(handle);
    return h.Apply(op).status().code();
  };
  ASSERT_EQ(release(handle_), 0);
  EXPECT_EQ(Lease(0, other_client, other, NowMs() + 1000).status().code(), C(StatusCode::kAborted));
  ASSERT_EQ(release(second), 0);
  pb::OpResult taken = Lease(0, other_client, other, NowMs() + 1000);
  ASSERT_EQ(taken.status().code(), 0);
  EXPECT_EQ(taken.lease().version(), first.lease().version() + 1);
}

TEST_F(ChunkTest, LeaseChunk_IndexBeyondMaxFileSize_OutOfRange) {
  EXPECT_EQ(Lease(uint64_t{1} << 40, client_, handle_, NowMs() + 1000).status().code(), C(StatusCode::kOutOfRange));
  EXPECT_EQ(Lease(common::kMaxFileSizeBytes / common::kChunkSizeBytes, client_, handle_, NowMs() + 1000).status().code(),
            C(StatusCode::kOutOfRange));
}

TEST_F(ChunkTest, Release_EndsTheHandlesLease) {
  ASSERT_EQ(Lease(0, client_, handle_, NowMs() + 60000).status().code(), 0);
  uint64_t other_client = 0, other = 0;
  ASSERT_NO_FATAL_FAILURE(OtherMount(&other_client, &other));
  EXPECT_EQ(Lease(0, other_client, other, NowMs() + 1000).status().code(), C(StatusCode::kAborted));
  pb::Op release;
  release.set_client_id(client_);
  release.mutable_release()->set_ino(file_.ino());
  release.mutable_release()->set_handle_id(handle_);
  ASSERT_EQ(h.Apply(release).status().code(), 0);
  pb::OpResult taken = Lease(0, other_client, other, NowMs() + 1000);
  ASSERT_EQ(taken.status().code(), 0);
  EXPECT_EQ(taken.lease().version(), 2u);  // the released writer's version is not reused
}

// A mount that died (kill -9: no release ever comes) holds its leases
// until its session ends, not for their whole lifetime.
TEST_F(ChunkTest, ASessionsEnd_EndsItsLeases) {
  ASSERT_EQ(Lease(0, client_, handle_, NowMs() + 60'000).status().code(), 0);
  uint64_t other_client = 0, other = 0;
  ASSERT_NO_FATAL_FAILURE(OtherMount(&other_client, &other));
  EXPECT_EQ(Lease(0, other_client, other, NowMs() + 1000).status().code(), C(StatusCode::kAborted));
  pb::Op expire;
  expire.mutable_expire_sessions()->add_client_ids(client_);
  ASSERT_EQ(h.Apply(expire).status().code(), 0);
  pb::OpResult taken = Lease(0, other_client, other, NowMs() + 1000);
  ASSERT_EQ(taken.status().code(), 0);
  EXPECT_EQ(taken.lease().version(), 2u);  // the dead writer's version is not reused
}

TEST_F(ChunkTest, LeaseChunk_NeedsWritableHandleAndLiveNodes) {
  EXPECT_EQ(Lease(0, client_, 999, NowMs() + 1000).status().code(), C(StatusCode::kFailedPrecondition));
  pb::Op op;
  op.set_client_id(client_);
  op.mutable_lease_chunk()->mutable_request()->set_ino(file_.ino());
  op.mutable_lease_chunk()->mutable_request()->set_handle_id(handle_);
  EXPECT_EQ(h.Apply(op).status().code(), C(StatusCode::kResourceExhausted));  // no placement
}

TEST_F(ChunkTest, CommitWrite_RecordsVersionLengthSizeAndLocations) {
  pb::ChunkLease lease = Lease(1, client_, handle_, NowMs() + 1000).lease();
  pb::OpResult committed = Commit(lease, 5 * kMiB, common::kChunkSizeBytes + 5 * kMiB, {11, 13});
  ASSERT_EQ(committed.status().code(), 0);
  EXPECT_EQ(committed.attr().size(), common::kChunkSizeBytes + 5 * kMiB);
  EXPECT_EQ(committed.attr().blocks(), 5 * kMiB / 512);
  pb::GetChunkLocationsReply reply = Locations(0, 200 * kMiB);
  ASSERT_EQ(reply.chunks_size(), 2);
  EXPECT_EQ(reply.chunks(0).chunk_id(), 0u);  // hole
  EXPECT_EQ(reply.chunks(1).chunk_id(), lease.chunk_id());
  EXPECT_EQ(reply.chunks(1).version(), 1u);
  ASSERT_EQ(reply.chunks(1).replicas_size(), 2);
  // A stale version cannot be committed.
  pb::ChunkLease stale = lease;
  stale.set_version(7);
  EXPECT_EQ(Commit(stale, 1, 1).status().code(), C(StatusCode::kFailedPrecondition));
}

TEST_F(ChunkTest, ReadDirPlus_CountsCommittedBlocks) {
  pb::ChunkLease lease = Lease(0, client_, handle_, NowMs() + 1000).lease();
  ASSERT_EQ(Commit(lease, 3 * kMiB + 1, 3 * kMiB + 1).status().code(), 0);
  pb::ReadDirRequest req;
  req.set_ino(kRoot);
  pb::ReadDirReply reply;
  h.sm().ReadDir(req, true, &reply);
  ASSERT_EQ(reply.entries_size(), 1);
  pb::Attr expected;
  ASSERT_EQ(h.GetAttr(file_.ino(), &expected), 0);
  EXPECT_EQ(reply.entries(0).attr().blocks(), 3 * kMiB / 512 + 1);
  EXPECT_EQ(reply.entries(0).attr().SerializeAsString(), expected.SerializeAsString());
}

// A sparse chunk: the file's blocks count what its writer said the
// replicas store (du), never more than the committed length; a commit that
// says nothing (an older mount or chunkserver) counts the length again.
TEST_F(ChunkTest, CommitWrite_BlocksCountWhatTheReplicasStore) {
  auto commit = [&](const pb::ChunkLease& lease, uint64_t length, std::optional<uint64_t> stored) {
    pb::Op op;
    op.set_client_id(client_);
    *op.mutable_commit_write() = CommitRequest(lease, length, length);
    if (stored) op.mutable_commit_write()->mutable_chunks(0)->set_stored_bytes(*stored);
    return h.Apply(op);
  };
  pb::ChunkLease lease = Lease(0, client_, handle_, NowMs() + 60'000).lease();
  pb::OpResult committed = commit(lease, 37 * kMiB, kMiB + 8192);
  ASSERT_EQ(committed.status().code(), 0);
  EXPECT_EQ(committed.attr().size(), 37 * kMiB);
  EXPECT_EQ(committed.attr().blocks(), (kMiB + 8192) / 512);
  pb::Attr attr;
  ASSERT_EQ(h.GetAttr(file_.ino(), &attr), 0);
  EXPECT_EQ(attr.blocks(), (kMiB + 8192) / 512);
  pb::ReadDirRequest list;
  list.set_ino(kRoot);
  pb::ReadDirReply listed;
  h.sm().ReadDir(list, true, &listed);
  ASSERT_EQ(listed.entries_size(), 1);
  EXPECT_EQ(listed.entries(0).attr().blocks(), (kMiB + 8192) / 512);
  // A dense chunk's allocation rounds up: the length counts.
  EXPECT_EQ(commit(lease, 3 * kMiB + 1, 3 * kMiB + 4096).attr().blocks(), 3 * kMiB / 512 + 1);
  // Said nothing: the length.
  EXPECT_EQ(commit(lease, 37 * kMiB, std::nullopt).attr().blocks(), 37 * kMiB / 512);
  // Cut shorter than it stores: the length bounds it.
  ASSERT_EQ(commit(lease, 37 * kMiB, 2 * kMiB).status().code(), 0);
  pb::SetAttrRequest cut;
  cut.set_ino(file_.ino());
  cut.set_valid(pb::SET_SIZE);
  cut.set_size(kMiB);
  ASSERT_EQ(h.SetAttr(cut, &attr), 0);
  EXPECT_EQ(attr.blocks(), kMiB / 512);
}

// tar and cp -a set times and owners right after writing: the client sends
// the pending commit inside that SetAttr, one entry for both.
TEST_F(ChunkTest, SetAttrWithCommit_AppliesBothOrNeither) {
  pb::ChunkLease lease = Lease(0, client_, handle_, NowMs() + 1000).lease();

  // Refused (a non-owner may not set explicit times): neither half applies.
  pb::SetAttrRequest req;
  req.set_ino(file_.ino());
  req.set_valid(pb::SET_MTIME);
  req.set_mtime_ns(1'000'000'000);
  *req.mutable_commit() = CommitRequest(lease, 4096, 4096);
  h.creds = testing::Creds(1000, 1000);
  EXPECT_EQ(h.SetAttr(req), C(StatusCode::kNotPermitted));
  h.creds = testing::Creds(0, 0);
  pb::Attr attr;
  ASSERT_EQ(h.GetAttr(file_.ino(), &attr), 0);
  EXPECT_EQ(attr.size(), 0u);
  pb::GetChunkLocationsReply before = Locations(0, kMiB);
  for (const pb::ChunkLocation& loc : before.chunks()) EXPECT_EQ(loc.length(), 0u);

  // A commit of another inode is refused.
  pb::Attr other;
  ASSERT_EQ(h.Mkdir(kRoot, "other", 0755, &other), 0);
  pb::SetAttrRequest wrong = req;
  wrong.set_ino(other.ino());
  EXPECT_EQ(h.SetAttr(wrong), C(StatusCode::kInvalidArgument));

  // Accepted: the data is committed and the explicit mtime wins over the
  // commit's, as if the commit had come first.
  ASSERT_EQ(h.SetAttr(req, &attr), 0);
  EXPECT_EQ(attr.size(), 4096u);
  EXPECT_EQ(attr.mtime_ns(), 1'000'000'000);
  pb::GetChunkLocationsReply reply = Locations(0, kMiB);
  ASSERT_EQ(reply.chunks_size(), 1);
  EXPECT_EQ(reply.chunks(0).chunk_id(), lease.chunk_id());
  EXPECT_EQ(reply.chunks(0).version(), lease.version());
  EXPECT_EQ(reply.chunks(0).length(), 4096u);
  EXPECT_EQ(reply.chunks(0).replicas_size(), 3);
}

TEST_F(ChunkTest, Truncate_DropsWholeChunksAndQueuesGarbage) {
  for (uint64_t i = 0; i < 3; ++i) {
    pb::ChunkLease lease = Lease(i, client_, handle_, NowMs() + 1000).lease();
    ASSERT_EQ(Commit(lease, common::kChunkSizeBytes, (i + 1) * common::kChunkSizeBytes).status().code(), 0);
  }
  pb::SetAttrRequest req;
  req.set_ino(file_.ino());
  req.set_valid(pb::SET_SIZE);
  req.set_size(common::kChunkSizeBytes + 10);
  pb::Attr after;
  ASSERT_EQ(h.SetAttr(req, &after), 0);
  pb::GetChunkLocationsReply reply = Locations(0, 10 * common::kChunkSizeBytes);
  ASSERT_EQ(reply.chunks_size(), 2);
  EXPECT_EQ(reply.chunks(1).length(), 10u);  // the partial chunk's cut
  EXPECT_EQ(h.sm().Garbage(11, 100).size(), 1u);
  EXPECT_EQ(h.sm().CountAll().chunks, 2u);
  // Growing is sparse.
  req.set_size(5 * common::kChunkSizeBytes);
  ASSERT_EQ(h.SetAttr(req, &after), 0);
  reply = Locations(0, 10 * common::kChunkSizeBytes);
  ASSERT_EQ(reply.chunks_size(), 5);
  EXPECT_EQ(reply.chunks(4).chunk_id(), 0u);
}

TEST_F(ChunkTest, Unlink_QueuesGarbageAndGcDoneForgetsIt) {
  pb::ChunkLease lease = Lease(0, client_, handle_, NowMs() + 1000).lease();
  ASSERT_EQ(Commit(lease, 100, 100).status().code(), 0);
  ASSERT_EQ(h.Unlink(kRoot, "f"), 0);
  EXPECT_TRUE(h.sm().Garbage(12, 10).empty());  // still open
  pb::Op release;
  release.set_client_id(client_);
  release.mutable_release()->set_ino(file_.ino());
  release.mutable_release()->set_handle_id(handle_);
  ASSERT_EQ(h.Apply(release).status().code(), 0);
  std::vector<StateMachine::GarbageRow> garbage = h.sm().Garbage(12, 10);
  ASSERT_EQ(garbage.size(), 1u);
  EXPECT_EQ(garbage[0].ref.chunk_id(), lease.chunk_id());
  pb::Op done;
  done.mutable_gc_done()->set_node_id(12);
  *done.mutable_gc_done()->add_chunks() = garbage[0].ref;
  ASSERT_EQ(h.Apply(done).status().code(), 0);
  EXPECT_TRUE(h.sm().Garbage(12, 10).empty());
}

TEST_F(ChunkTest, InventoryPage_UnknownAndStaleChunksBecomeGarbage) {
  pb::ChunkLease lease = Lease(0, client_, handle_, NowMs() + 1000).lease();
  ASSERT_EQ(Commit(lease, 100, 100, {11}).status().code(), 0);
  pb::Op op;
  op.mutable_inventory_page()->set_node_id(12);
  auto* known = op.mutable_inventory_page()->add_chunks();
  known->set_chunk_id(lease.chunk_id());
  known->set_version(1);
  auto* unknown = op.mutable_inventory_page()->add_chunks();
  unknown->set_chunk_id(424242);
  unknown->set_version(3);
  ASSERT_EQ(h.Apply(op).status().code(), 0);
  // 12 was placed for version 1 but missed its write: whatever of version 1
  // it holds may be partial. It does not count, and it is deleted.
  EXPECT_EQ(Locations(0, 100).chunks(0).replicas_size(), 1);
  std::vector<StateMachine::GarbageRow> garbage = h.sm().Garbage(12, 10);
  ASSERT_EQ(garbage.size(), 2u);
  EXPECT_EQ(garbage[0].ref.chunk_id(), lease.chunk_id());  // condemned at the commit
  EXPECT_EQ(garbage[0].ref.version(), 1u);
  EXPECT_EQ(garbage[1].ref.chunk_id(), 424242u);
  // Once deleted there, a full copy made later (a repair whose report was
  // lost) counts when the node reports it.
  pb::Op done;
  done.mutable_gc_done()->set_node_id(12);
  *done.mutable_gc_done()->add_chunks() = garbage[0].ref;
  ASSERT_EQ(h.Apply(done).status().code(), 0);
  pb::Op again;
  again.mutable_inventory_page()->set_node_id(12);
  *again.mutable_inventory_page()->add_chunks() = *known;
  ASSERT_EQ(h.Apply(again).status().code(), 0);
  EXPECT_EQ(Locations(0, 100).chunks(0).replicas_size(), 2);  // 11 and now 12
}

// A small file's chunk 0 kept in meta: its bytes ride in the commit, no
// chunkserver holds (or is told to delete) anything, and the next writer
// gets the bytes with its lease.
TEST_F(ChunkTest, InlineCommit_KeepsASmallFilesBytesInMeta) {
  pb::ChunkLease lease = Lease(0, client_, handle_, NowMs() + 1000).lease();
  pb::OpResult committed = InlineCommit(lease, "hello");
  ASSERT_EQ(committed.status().code(), 0) << committed.status().message();
  EXPECT_EQ(committed.attr().size(), 5u);
  EXPECT_EQ(committed.attr().blocks(), 1u);
  pb::GetChunkLocationsReply where = Locations(0, 5);
  ASSERT_EQ(where.chunks_size(), 1);
  EXPECT_TRUE(where.chunks(0).inlined());
  EXPECT_EQ(where.chunks(0).data(), "hello");
  EXPECT_EQ(where.chunks(0).length(), 5u);
  EXPECT_EQ(where.chunks(0).replicas_size(), 0);
  for (uint64_t node : {11, 12, 13}) EXPECT_TRUE(h.sm().Garbage(node, 10).empty()) << node;
  EXPECT_EQ(h.sm().CountUnderReplicated({11, 12, 13}, NowMs() + 10'000), 0u);
  EXPECT_EQ(h.sm().CountAll().chunks, 1u);
  EXPECT_EQ(h.sm().CountAll().inline_chunks, 1u);
  EXPECT_EQ(h.sm().CountAll().inline_bytes, 5u);

  // The next lease carries the bytes, with no base on chunkservers, and
  // places replicas for a writer that outgrows meta.
  h.now_ns += 2'000'000'000;
  pb::ChunkLease next = Lease(0, client_, handle_, NowMs() + 1000).lease();
  EXPECT_EQ(next.version(), 2u);
  EXPECT_EQ(next.base_version(), 0u);
  EXPECT_TRUE(next.base_inlined());
  EXPECT_EQ(next.base_data(), "hello");
  EXPECT_EQ(next.length(), 5u);
  EXPECT_EQ(next.replicas_size(), 3);

  // A truncate cuts the kept bytes.
  pb::SetAttrRequest cut;
  cut.set_ino(file_.ino());
  cut.set_valid(pb::SET_SIZE);
  cut.set_size(3);
  ASSERT_EQ(h.SetAttr(cut), 0);
  EXPECT_EQ(Locations(0, 3).chunks(0).data(), "hel");
  EXPECT_EQ(Locations(0, 3).chunks(0).length(), 3u);
  EXPECT_EQ(h.sm().CountAll().inline_bytes, 3u);

  // Written to chunkservers (it grew): an ordinary chunk again.
  ASSERT_EQ(Commit(next, 100'000, 100'000).status().code(), 0);
  where = Locations(0, 100'000);
  ASSERT_EQ(where.chunks_size(), 1);
  EXPECT_FALSE(where.chunks(0).inlined());
  EXPECT_EQ(where.chunks(0).data(), "");
  EXPECT_EQ(where.chunks(0).replicas_size(), 3);
  EXPECT_EQ(h.sm().CountAll().inline_chunks, 0u);
  EXPECT_EQ(h.sm().CountAll().inline_bytes, 0u);
  h.now_ns += 2'000'000'000;
  pb::ChunkLease after = Lease(0, client_, handle_, NowMs() + 1000).lease();
  EXPECT_FALSE(after.base_inlined());
  EXPECT_EQ(after.base_version(), 2u);
}

TEST_F(ChunkTest, InlineCommit_MalformedIsRefused) {
  pb::ChunkLease lease = Lease(0, client_, handle_, NowMs() + 1000).lease();
  auto inline_commit = [&](uint64_t length, const std::string& data, std::vector<uint64_t> nodes) {
    pb::Op op;
    op.set_client_id(client_);
    *op.mutable_commit_write() = CommitRequest(lease, length, length, std::move(nodes));
    op.mutable_commit_write()->mutable_chunks(0)->set_inlined(true);
    op.mutable_commit_write()->mutable_chunks(0)->set_data(data);
    return h.Apply(op).status().code();
  };
  const int invalid = C(StatusCode::kInvalidArgument);
  EXPECT_EQ(inline_commit(4, "abc", {}), invalid);         // length and bytes disagree
  EXPECT_EQ(inline_commit(3, "abc", {11}), invalid);       // held by a node
  const std::string big(common::kMaxInlineBytes + 1, 'x');
  EXPECT_EQ(inline_commit(big.size(), big, {}), invalid);  // too big for any member
  pb::Attr attr;
  ASSERT_EQ(h.GetAttr(file_.ino(), &attr), 0);
  EXPECT_EQ(attr.size(), 0u);  // nothing committed
  pb::ChunkLease one = Lease(1, client_, handle_, NowMs() + 1000).lease();
  EXPECT_EQ(InlineCommit(one, "abc", common::kChunkSizeBytes + 3).status().code(), invalid);  // only chunk 0
  // The most any member keeps, whatever its --inline-max (what mounts are told).
  EXPECT_EQ(InlineCommit(lease, big.substr(1)).status().code(), 0);
}

// A chunkserver holding a copy of a chunk meta keeps (a writer sent bytes
// it then committed inline) deletes it; the copy never counts.
TEST_F(ChunkTest, InlineChunk_CopiesOnChunkserversAreGarbageAndNeverRepaired) {
  pb::ChunkLease lease = Lease(0, client_, handle_, NowMs() + 1000).lease();
  ASSERT_EQ(InlineCommit(lease, "hi").status().code(), 0);
  pb::Op op;
  op.mutable_inventory_page()->set_node_id(12);
  auto* copy = op.mutable_inventory_page()->add_chunks();
  copy->set_chunk_id(lease.chunk_id());
  copy->set_version(lease.version());
  ASSERT_EQ(h.Apply(op).status().code(), 0);
  EXPECT_EQ(Locations(0, 2).chunks(0).replicas_size(), 0);
  EXPECT_TRUE(Locations(0, 2).chunks(0).inlined());
  ASSERT_EQ(h.sm().Garbage(12, 10).size(), 1u);
  pb::Op added;
  added.mutable_replica_change()->set_chunk_id(lease.chunk_id());
  added.mutable_replica_change()->set_version(lease.version());
  added.mutable_replica_change()->set_node_id(13);
  added.mutable_replica_change()->set_added(true);
  EXPECT_EQ(h.Apply(added).status().code(), C(StatusCode::kFailedPrecondition));
  uint64_t next = 0;
  EXPECT_TRUE(h.sm().ScanReplicas({11, 12, 13}, 0, 100, NowMs() + 10'000, &next).empty());
  // Unlinked and released: the kept bytes go with the chunk, nothing to
  // collect on chunkservers but 12's leftover.
  ASSERT_EQ(h.Unlink(kRoot, "f"), 0);
  pb::Op release;
  release.set_client_id(client_);
  release.mutable_release()->set_ino(file_.ino());
  release.mutable_release()->set_handle_id(handle_);
  ASSERT_EQ(h.Apply(release).status().code(), 0);
  EXPECT_EQ(h.sm().CountAll().chunks, 0u);
  EXPECT_EQ(h.sm().CountAll().inline_chunks, 0u);
  EXPECT_EQ(h.sm().CountAll().inline_bytes, 0u);
  EXPECT_TRUE(h.sm().Garbage(11, 10).empty());
}

TEST_F(ChunkTest, Fallocate_ExtendsAndPunchesWholeChunks) {
  pb::Op op;
  op.set_client_id(client_);
  auto* r = op.mutable_fallocate();
  r->set_ino(file_.ino());
  r->set_handle_id(handle_);
  r->set_offset(0);
  r->set_length(3 * common::kChunkSizeBytes);
  pb::OpResult result = h.Apply(op);
  ASSERT_EQ(result.status().code(), 0);
  EXPECT_EQ(result.attr().size(), 3 * common::kChunkSizeBytes);
  pb::ChunkLease lease = Lease(1, client_, handle_, NowMs() + 1000).lease();
  ASSERT_EQ(Commit(lease, common::kChunkSizeBytes, 0).status().code(), 0);
  r->set_mode(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
  r->set_offset(common::kChunkSizeBytes);
  r->set_length(common::kChunkSizeBytes);
  ASSERT_EQ(h.Apply(op).status().code(), 0);
  EXPECT_EQ(Locations(0, 3 * common::kChunkSizeBytes).chunks(1).chunk_id(), 0u);
  r->set_offset(10);
  EXPECT_EQ(h.Apply(op).status().code(), C(StatusCode::kUnimplemented));
}

// fallocate changes the file as a write does (file_modified): without
// CAP_FSETID (not root, to meta) setuid and a real setgid go; root keeps them.
TEST_F(ChunkTest, Fallocate_ByAnOrdinaryUserDropsSetuidAndSetgid) {
  pb::SetAttrRequest chmod;
  chmod.set_ino(file_.ino());
  chmod.set_valid(pb::SET_MODE);
  chmod.set_mode(06777);
  ASSERT_EQ(h.SetAttr(chmod), 0);
  pb::Op op;
  op.set_client_id(client_);
  auto* r = op.mutable_fallocate();
  r->set_ino(file_.ino());
  r->set_handle_id(handle_);
  r->set_length(100);
  *r->mutable_ctx() = h.Ctx();  // root
  pb::OpResult result = h.Apply(op);
  ASSERT_EQ(result.status().code(), 0);
  EXPECT_EQ(result.attr().mode() & 07777, 06777u);
  *r->mutable_ctx()->mutable_creds() = testing::Creds(1000, 1000);
  result = h.Apply(op);
  ASSERT_EQ(result.status().code(), 0);
  EXPECT_EQ(result.attr().mode() & 07777, 0777u);
}

// Create with lease_first_chunk: the new file's chunk-0 lease rides along.
class CreateLeaseTest : public ChunkTest {
 protected:
  pb::OpResult CreateWithLease(const std::string& name, uint32_t flags, bool placement = true,
                               bool ask = true) {
    pb::Op op;
    op.set_client_id(client_);
    if (placement) {
      op.add_placement(13);
      op.add_placement(12);
      op.add_placement(11);
    }
    op.set_lease_expires_unix_ms(NowMs() + 60000);
    auto* r = op.mutable_create();
    *r->mutable_ctx() = h.Ctx();
    r->set_parent(kRoot);
    r->set_name(name);
    r->set_mode(0644);
    r->set_flags(flags);
    r->set_lease_first_chunk(ask);
    return h.Apply(op);
  }
  pb::OpResult Release(uint64_t ino, uint64_t handle, std::vector<uint64_t> unwritten) {
    pb::Op op;
    op.set_client_id(client_);
    op.mutable_release()->set_ino(ino);
    op.mutable_release()->set_handle_id(handle);
    for (uint64_t id : unwritten) op.mutable_release()->add_unwritten_chunk_ids(id);
    return h.Apply(op);
  }
  uint64_t LiveChunks() { return h.sm().CountAll().chunks; }
};

TEST_F(CreateLeaseTest, Create_GrantsChunkZeroLeaseThatCommits) {
  pb::OpResult created = CreateWithLease("g", O_WRONLY | O_CREAT | O_EXCL);
  ASSERT_EQ(created.status().code(), 0);
  const pb::ChunkLease& lease = created.lease();
  EXPECT_NE(lease.chunk_id(), 0u);
  EXPECT_EQ(lease.chunk_index(), 0u);
  EXPECT_EQ(lease.version(), 1u);
  EXPECT_EQ(lease.base_version(), 0u);
  EXPECT_EQ(lease.length(), 0u);
  EXPECT_EQ(lease.lease_expires_unix_ms(), NowMs() + 60000);
  ASSERT_EQ(lease.replicas_size(), 3);
  EXPECT_EQ(lease.write_quorum(), 2u);
  // The lease is the handle's: a commit under it, through that handle, works.
  file_ = created.attr();
  handle_ = created.handle_id();
  pb::OpResult committed = Commit(lease, 4096, 4096);
  ASSERT_EQ(committed.status().code(), 0);
  EXPECT_EQ(committed.attr().size(), 4096u);
  pb::GetChunkLocationsReply where = Locations(0, 4096);
  ASSERT_EQ(where.chunks_size(), 1);
  EXPECT_EQ(where.chunks(0).chunk_id(), lease.chunk_id());
  EXPECT_EQ(where.chunks(0).version(), 1u);
  // A later LeaseChunk of the same handle renews it like any lease of its own.
  pb::OpResult again = Lease(0, client_, handle_, NowMs() + 1000);
  ASSERT_EQ(again.status().code(), 0);
  EXPECT_EQ(again.lease().chunk_id(), lease.chunk_id());
  EXPECT_EQ(again.lease().version(), 2u);  // version 1 is committed: a new writer version
}

TEST_F(CreateLeaseTest, Create_NoLeaseUnlessAskedWritableNewAndPlaced) {
  EXPECT_FALSE(CreateWithLease("a", O_WRONLY | O_CREAT, true, /*ask=*/false).has_lease());
  EXPECT_FALSE(CreateWithLease("b", O_RDONLY | O_CREAT).has_lease());
  pb::OpResult unplaced = CreateWithLease("c", O_RDWR | O_CREAT, /*placement=*/false);
  EXPECT_EQ(unplaced.status().code(), 0);  // the create itself succeeds
  EXPECT_FALSE(unplaced.has_lease());
  // An existing name is an open: no lease (LeaseChunk decides, it knows the chunk).
  pb::OpResult existing = CreateWithLease("f", O_WRONLY | O_CREAT);
  EXPECT_EQ(existing.status().code(), 0);
  EXPECT_EQ(existing.attr().ino(), file_.ino());
  EXPECT_FALSE(existing.has_lease());
  // No session: no handle, so no lease.
  client_ = 0;
  EXPECT_FALSE(CreateWithLease("d", O_WRONLY | O_CREAT).has_lease());
}

TEST_F(CreateLeaseTest, Create_FailsAsBeforeAndGrantsNothing) {
  uint64_t before = LiveChunks();
  pb::OpResult exists = CreateWithLease("f", O_WRONLY | O_CREAT | O_EXCL);
  EXPECT_EQ(exists.status().code(), C(StatusCode::kAlreadyExists));
  EXPECT_FALSE(exists.has_lease());
  EXPECT_EQ(LiveChunks(), before);
}

TEST_F(CreateLeaseTest, Release_ForgetsUnwrittenChunkWithoutGarbage) {
  uint64_t before = LiveChunks();
  pb::OpResult created = CreateWithLease("g", O_WRONLY | O_CREAT | O_EXCL);
  ASSERT_TRUE(created.has_lease());
  EXPECT_EQ(LiveChunks(), before + 1);
  file_ = created.attr();
  ASSERT_EQ(Release(file_.ino(), created.handle_id(), {created.lease().chunk_id()}).status().code(), 0);
  EXPECT_EQ(LiveChunks(), before);
  EXPECT_TRUE(h.sm().Garbage(11, 10).empty());  // nothing was stored, nothing to delete
  // The file is an ordinary empty file: a later writer allocates a fresh chunk.
  uint64_t handle = 0;
  ASSERT_EQ(h.Create(kRoot, "g", 0644, nullptr, &handle, O_WRONLY), 0);
  pb::OpResult leased = Lease(0, client_, handle, NowMs() + 1000);
  ASSERT_EQ(leased.status().code(), 0);
  EXPECT_NE(leased.lease().chunk_id(), created.lease().chunk_id());
  EXPECT_EQ(leased.lease().version(), 1u);
}

TEST_F(CreateLeaseTest, Release_KeepsChunksThatAreCommittedOrNotTheHandles) {
  pb::OpResult created = CreateWithLease("g", O_WRONLY | O_CREAT | O_EXCL);
  ASSERT_TRUE(created.has_lease());
  file_ = created.attr();
  handle_ = created.handle_id();
  // Another handle naming the chunk: ignored.
  uint64_t other = 0;
  ASSERT_EQ(h.Create(kRoot, "g", 0644, nullptr, &other, O_WRONLY), 0);
  uint64_t chunks = LiveChunks();
  ASSERT_EQ(Release(file_.ino(), other, {created.lease().chunk_id()}).status().code(), 0);
  EXPECT_EQ(LiveChunks(), chunks);
  // Committed data: ignored even from the lease's own handle.
  ASSERT_EQ(Commit(created.lease(), 10, 10).status().code(), 0);
  ASSERT_EQ(Release(file_.ino(), handle_, {created.lease().chunk_id()}).status().code(), 0);
  pb::GetChunkLocationsReply where = Locations(0, 10);
  ASSERT_EQ(where.chunks_size(), 1);
  EXPECT_EQ(where.chunks(0).version(), 1u);
  EXPECT_EQ(where.chunks(0).length(), 10u);
}

TEST_F(CreateLeaseTest, Create_RetryAnswersTheSameLease) {
  pb::Op op;
  op.set_client_id(client_);
  op.set_request_id(77);
  op.add_placement(11);
  op.set_lease_expires_unix_ms(NowMs() + 60000);
  auto* r = op.mutable_create();
  *r->mutable_ctx() = h.Ctx();
  r->set_parent(kRoot);
  r->set_name("g");
  r->set_mode(0644);
  r->set_flags(O_WRONLY | O_CREAT | O_EXCL);
  r->set_lease_first_chunk(true);
  pb::OpResult first = h.Apply(op);
  ASSERT_TRUE(first.has_lease());
  pb::OpResult retried = h.Apply(op);
  EXPECT_EQ(retried.status().code(), 0);
  EXPECT_EQ(retried.handle_id(), first.handle_id());
  EXPECT_EQ(retried.lease().chunk_id(), first.lease().chunk_id());
  EXPECT_EQ(retried.lease().version(), first.lease().version());
}

}  // namespace
}  // namespace dfs::meta
