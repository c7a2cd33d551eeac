#include "chunkserver/service/chunk_service.h"

#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <future>

#include "chunkserver/service/chunk_client.h"
#include "chunkserver/service/test_server.h"
#include "chunkserver/store/test_util.h"
#include "common/tls.h"
#include "common/chunk_geometry.h"
#include "common/crc32c.h"

namespace dfs::chunkserver {
namespace {

using common::StatusCode;
using testing::Bytes;
using testing::Header;
using testing::InProcessChunkserver;
using testing::RandomBytes;

// Sends raw messages on a Write stream and returns the outcome.
grpc::Status RawWrite(pb::ChunkService::Stub& stub, const std::vector<pb::WriteRequest>& messages) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  pb::WriteReply reply;
  auto writer = stub.Write(&context, &reply);
  for (const auto& m : messages) {
    if (!writer->Write(m)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

pb::WriteRequest HeaderMsg(const pb::WriteHeader& header) {
  pb::WriteRequest r;
  *r.mutable_header() = header;
  return r;
}

pb::WriteRequest DataMsg(uint64_t offset, const std::string& data) {
  pb::WriteRequest r;
  r.mutable_data()->set_data(data);
  auto crcs = testing::PieceCrcsOf(offset, data);
  r.mutable_data()->mutable_piece_crcs()->Assign(crcs.begin(), crcs.end());
  return r;
}

TEST(ChunkServiceImpl, WriteRead_RoundTripWithPartialRanges) {
  InProcessChunkserver cs;
  const std::string data = RandomBytes(3'000'000, 1);
  auto written = WriteChunk(*cs.stub, Header(1, 1, 0, 0), Bytes(data));
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(written->bytes_written, data.size());
  EXPECT_EQ(written->chunk_length, data.size());
  EXPECT_TRUE(written->durable);
  uint64_t length = 0;
  auto all = ReadChunk(*cs.stub, 1, 1, 0, common::kChunkSizeBytes, 10'000, &length);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(*all, data);
  EXPECT_EQ(length, data.size());
  auto part = ReadChunk(*cs.stub, 1, 1, 70'001, 1'234'567);
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(*part, data.substr(70'001, 1'234'567));
  auto empty = ReadChunk(*cs.stub, 1, 1, data.size(), 10, 10'000, &length);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(length, data.size());
}

// One stream may carry scattered ranges (WriteData.offset), as a client
// flushing random writes sends them: each lands where it says, the gaps
// read as zeros, and a message without an offset follows the previous one.
TEST(ChunkServiceImpl, Write_ScatteredRangesInOneStream) {
  InProcessChunkserver cs;
  const std::string a = RandomBytes(5000, 1), b = RandomBytes(70'000, 2), c = RandomBytes(100, 3);
  std::vector<pb::WriteRequest> messages = {HeaderMsg(Header(9, 1, 0, 1'000'000))};
  messages.push_back(DataMsg(1'000'000, a));
  messages.back().mutable_data()->set_offset(1'000'000);
  messages.push_back(DataMsg(10, b));
  messages.back().mutable_data()->set_offset(10);
  messages.push_back(DataMsg(10 + b.size(), c));  // no offset: right after b
  ASSERT_TRUE(RawWrite(*cs.stub, messages).ok());

  auto all = ReadChunk(*cs.stub, 9, 1, 0, common::kChunkSizeBytes);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  std::string want(1'000'000 + a.size(), '\0');
  want.replace(1'000'000, a.size(), a);
  want.replace(10, b.size(), b);
  want.replace(10 + b.size(), c.size(), c);
  EXPECT_TRUE(*all == want);

  messages = {HeaderMsg(Header(9, 1, 0, 0)), DataMsg(0, a)};
  messages.back().mutable_data()->set_offset(common::kChunkSizeBytes + 1);
  EXPECT_EQ(RawWrite(*cs.stub, messages).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(ChunkServiceImpl, Read_RepliesAreWholeBlocksOfAboutOneMiB) {
  InProcessChunkserver cs;
  const std::string data = RandomBytes(2'500'000, 2);
  ASSERT_TRUE(WriteChunk(*cs.stub, Header(2, 1, 0, 0), Bytes(data)).ok());
  grpc::ClientContext context;
  pb::ReadRequest request;
  request.set_chunk_id(2);
  request.set_version(1);
  request.set_offset(100'000);
  request.set_length(2'000'000);
  auto reader = cs.stub->Read(&context, request);
  pb::ReadReply reply;
  std::vector<uint64_t> offsets;
  while (reader->Read(&reply)) {
    offsets.push_back(reply.offset());
    EXPECT_LE(reply.data().size(), 1u << 20);
    EXPECT_EQ(static_cast<uint64_t>(reply.block_crcs_size()), common::BlockCount(reply.data().size()));
    EXPECT_EQ(reply.chunk_length(), data.size());
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(offsets.size(), 2u);
  EXPECT_EQ(offsets[0], 65536u);            // widened down to a block boundary
  EXPECT_EQ(offsets[1], 65536u + (1 << 20));
}

// An exact read sends only the bytes asked for, over as many messages as a
// whole-block read would, and with each block's stored CRC the terms that
// check the part of it sent (common/crc32c.h, PieceCheck).
TEST(ChunkServiceImpl, Read_ExactSendsOnlyTheRangeWithTermsForEachBlock) {
  InProcessChunkserver cs;
  const std::string data = RandomBytes(2'500'000, 3);
  ASSERT_TRUE(WriteChunk(*cs.stub, Header(2, 1, 0, 0), Bytes(data)).ok());
  for (auto [from, length] : std::vector<std::pair<uint64_t, uint64_t>>{
           {100'000, 4'096}, {65'530, 20}, {100'000, 2'000'000}, {2'499'000, 5'000}, {data.size(), 10}}) {
    grpc::ClientContext context;
    pb::ReadRequest request;
    request.set_chunk_id(2);
    request.set_version(1);
    request.set_offset(from);
    request.set_length(length);
    request.set_exact(true);
    auto reader = cs.stub->Read(&context, request);
    pb::ReadReply reply;
    std::string got;
    int messages = 0;
    while (reader->Read(&reply)) {
      ++messages;
      EXPECT_EQ(reply.offset(), from + got.size());
      EXPECT_EQ(reply.chunk_length(), data.size());
      ASSERT_EQ(reply.head_crcs_size(), reply.block_crcs_size());
      ASSERT_EQ(reply.tail_terms_size(), reply.block_crcs_size());
      uint64_t pos = reply.offset();
      for (int i = 0; i < reply.block_crcs_size(); ++i) {
        const uint64_t block = reply.offset() / common::kBlockSizeBytes + i;
        const uint64_t start = block * common::kBlockSizeBytes;
        const uint64_t size = common::BlockLength(data.size(), block);
        EXPECT_EQ(reply.block_crcs(i), common::Crc32c(data.data() + start, size)) << "block " << block;
        const uint64_t end = std::min(reply.offset() + reply.data().size(), start + size);
        const auto piece = std::as_bytes(std::span(reply.data().data() + (pos - reply.offset()), end - pos));
        EXPECT_TRUE(common::Crc32cPieceMatches(reply.block_crcs(i), size, pos - start, piece,
                                               {reply.head_crcs(i), reply.tail_terms(i)}))
            << "block " << block;
        pos = end;
      }
      got += reply.data();
    }
    ASSERT_TRUE(reader->Finish().ok());
    const uint64_t want = std::min<uint64_t>(length, data.size() - from);
    EXPECT_TRUE(got == data.substr(from, want)) << from << "+" << length;
    EXPECT_EQ(messages, want > (1 << 20) ? 2 : 1) << from << "+" << length;
  }
}

TEST(ChunkServiceImpl, Write_TokenChecks) {
  InProcessChunkserver cs;
  pb::WriteHeader no_token = Header(3, 1, 0, 0);
  no_token.clear_token();
  auto s = WriteChunk(*cs.stub, no_token, Bytes("x"));
  EXPECT_EQ(s.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.status().message().find("missing write token"), std::string_view::npos);
  EXPECT_EQ(WriteChunk(*cs.stub, Header(3, 1, 0, 0, "another-key-of-16-bytes"), Bytes("x")).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(WriteChunk(*cs.stub, Header(3, 1, 0, 0, testing::kTestKey, 1000), Bytes("x")).status().code(),
            StatusCode::kPermissionDenied);  // expired
  pb::WriteHeader other_chunk = Header(4, 1, 0, 0);
  other_chunk.set_chunk_id(3);
  EXPECT_EQ(WriteChunk(*cs.stub, other_chunk, Bytes("x")).status().code(), StatusCode::kPermissionDenied);
  pb::WriteHeader other_version = Header(3, 2, 0, 0);
  other_version.set_version(1);
  EXPECT_EQ(WriteChunk(*cs.stub, other_version, Bytes("x")).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(cs.store->Find(3, 1).status().code(), StatusCode::kNotFound);
}

// With a client secret configured, a caller's role comes from its
// "dfs-auth" header: none or a wrong one is refused, the client secret may
// write (with a token) and read, only the node secret (cluster key) may use
// the chunkserver-to-chunkserver and admin calls.
TEST(ChunkServiceImpl, Callers_NeedTheirRole) {
  const std::string client_secret = "client-secret-of-this-test";
  InProcessChunkserver cs({client_secret, testing::kTestKey, false});
  // A stub whose calls carry `auth` (as MakeChannel adds the process's).
  auto stub_as = [&](const std::string& auth) {
    common::SetClientIdentity({nullptr, false, auth});
    auto stub = pb::ChunkService::NewStub(common::MakeChannel(cs.address));
    common::SetClientIdentity({});
    return stub;
  };
  auto stat = [&](pb::ChunkService::Stub& stub) {
    grpc::ClientContext ctx;
    pb::StatRequest req;
    req.set_chunk_id(3);
    pb::StatReply reply;
    return stub.Stat(&ctx, req, &reply).error_code();
  };
  auto nobody = stub_as("");
  auto wrong = stub_as("a-wrong-secret-of-some-length");
  auto client = stub_as(client_secret);
  auto node = stub_as(common::NodeSecret(testing::kTestKey));
  auto other_cluster = stub_as(common::NodeSecret("another-cluster-key-0123"));

  EXPECT_EQ(stat(*nobody), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stat(*wrong), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(stat(*other_cluster), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(WriteChunk(*nobody, Header(3, 1, 0, 0), Bytes("abc")).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(cs.store->Find(3, 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(stat(*client), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(WriteChunk(*client, Header(3, 1, 0, 0), Bytes("abc")).ok());
  EXPECT_EQ(stat(*node), grpc::StatusCode::OK);
  {
    grpc::ClientContext ctx;
    pb::ReplicateFromRequest req;
    req.set_chunk_id(3);
    req.set_version(1);
    req.set_source_address("127.0.0.1:1");
    pb::ReplicateFromReply reply;
    EXPECT_EQ(client->ReplicateFrom(&ctx, req, &reply).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    pb::DeleteRequest req;
    req.set_chunk_id(3);
    req.set_version(1);
    pb::DeleteReply reply;
    EXPECT_EQ(client->Delete(&ctx, req, &reply).error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_TRUE(cs.store->Find(3, 1).ok());
  }
  {
    grpc::ClientContext ctx;
    pb::ReadRequest req;
    req.set_chunk_id(3);
    req.set_version(1);
    req.set_length(3);
    auto reader = client->Read(&ctx, req);
    pb::ReadReply reply;
    std::string got;
    while (reader->Read(&reply)) got += reply.data();
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_EQ(got, "abc");
  }
}

TEST(ChunkServiceImpl, Write_MalformedStreamsAreInvalidArgument) {
  InProcessChunkserver cs;
  grpc::Status s = RawWrite(*cs.stub, {});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = RawWrite(*cs.stub, {DataMsg(0, "abc")});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  s = RawWrite(*cs.stub, {HeaderMsg(Header(5, 1, 0, 0)), HeaderMsg(Header(5, 1, 0, 0))});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Over the 1 MiB per message limit (but under gRPC's own limit).
  s = RawWrite(*cs.stub, {HeaderMsg(Header(5, 1, 0, 0)), DataMsg(0, std::string((1 << 20) + 1, 'a'))});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("1 MiB"), std::string::npos);
  // Over gRPC's message limit: refused by gRPC itself.
  s = RawWrite(*cs.stub, {HeaderMsg(Header(5, 1, 0, 0)), DataMsg(0, std::string(9 << 20, 'a'))});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Outside the chunk.
  s = RawWrite(*cs.stub, {HeaderMsg(Header(5, 1, 0, common::kChunkSizeBytes + 1))});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = RawWrite(*cs.stub, {HeaderMsg(Header(5, 1, 0, common::kChunkSizeBytes - 1)),
                          DataMsg(common::kChunkSizeBytes - 1, "ab")});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  pb::WriteHeader truncate = Header(5, 1, 0, 0);
  truncate.set_truncate(true);
  truncate.set_truncate_to(common::kChunkSizeBytes + 1);
  EXPECT_EQ(RawWrite(*cs.stub, {HeaderMsg(truncate)}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Wrong number of piece CRCs.
  pb::WriteRequest bad = DataMsg(0, std::string(70'000, 'a'));
  bad.mutable_data()->mutable_piece_crcs()->RemoveLast();
  EXPECT_EQ(RawWrite(*cs.stub, {HeaderMsg(Header(5, 1, 0, 0)), bad}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Version 0, and a base newer than the version.
  EXPECT_EQ(RawWrite(*cs.stub, {HeaderMsg(Header(5, 0, 0, 0))}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RawWrite(*cs.stub, {HeaderMsg(Header(5, 1, 2, 0))}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(cs.store->Find(5, 1).status().code(), StatusCode::kNotFound);
}

// Bytes that are not a protobuf, and a valid ReadRequest cut short: gRPC
// refuses them before a handler runs, and the server keeps serving.
TEST(ChunkServiceImpl, GarbageAndTruncatedMessagesAreRefused) {
  InProcessChunkserver cs;
  grpc::GenericStub generic(common::MakeChannel(cs.address));
  auto call = [&](const std::string& method, const std::string& bytes) {
    grpc::ClientContext ctx;
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                      [&](grpc::Status s) { done.set_value(s); });
    return done.get_future().get();
  };
  EXPECT_FALSE(call("/dfs.pb.ChunkService/Stat", "\xff\xff\xff\xff\x0f not a protobuf").ok());
  pb::StatRequest stat;
  stat.set_chunk_id(0x0123456789abcdef);
  stat.set_version(300);
  std::string bytes = stat.SerializeAsString();
  bytes.resize(bytes.size() - 3);
  EXPECT_FALSE(call("/dfs.pb.ChunkService/Stat", bytes).ok());
  EXPECT_TRUE(WriteChunk(*cs.stub, Header(9, 1, 0, 0), Bytes("still serving")).ok());
}

TEST(ChunkServiceImpl, Write_DataWhoseCrcDoesNotMatchIsDataLoss) {
  InProcessChunkserver cs;
  pb::WriteRequest bad = DataMsg(0, "hello world");
  bad.mutable_data()->set_piece_crcs(0, bad.data().piece_crcs(0) ^ 1);
  grpc::Status s = RawWrite(*cs.stub, {HeaderMsg(Header(6, 1, 0, 0)), bad});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_NE(s.error_message().find("block 0"), std::string::npos) << s.error_message();
  EXPECT_EQ(cs.store->Find(6, 1).status().code(), StatusCode::kNotFound);
}

TEST(ChunkServiceImpl, Versions_StaleFutureAndUnknown) {
  InProcessChunkserver cs;
  ASSERT_TRUE(WriteChunk(*cs.stub, Header(7, 3, 0, 0), Bytes("v3")).ok());
  EXPECT_EQ(WriteChunk(*cs.stub, Header(7, 2, 0, 0), Bytes("old")).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(WriteChunk(*cs.stub, Header(7, 5, 4, 0), Bytes("?")).status().code(), StatusCode::kFailedPrecondition);
  // A read of a version that is gone is served from the newer one (built
  // from it; ChunkStore::FindReadable); a future version is not there.
  auto gone = ReadChunk(*cs.stub, 7, 2, 0, 10);
  ASSERT_TRUE(gone.ok()) << gone.status().ToString();
  EXPECT_EQ(*gone, "v3");
  auto future = ReadChunk(*cs.stub, 7, 4, 0, 10);
  EXPECT_EQ(future.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(future.status().message().find("future"), std::string_view::npos);
  EXPECT_EQ(ReadChunk(*cs.stub, 8, 1, 0, 10).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(WriteChunk(*cs.stub, Header(8, 2, 1, 0), Bytes("x")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadChunk(*cs.stub, 7, 3, 3, 10).status().code(), StatusCode::kInvalidArgument);  // past the end
  EXPECT_EQ(ReadChunk(*cs.stub, 7, 3, 0, common::kChunkSizeBytes + 1).status().code(), StatusCode::kInvalidArgument);
  // A new version from the stored base.
  auto v4 = WriteChunk(*cs.stub, Header(7, 4, 3, 2), Bytes("+4"));
  ASSERT_TRUE(v4.ok()) << v4.status().ToString();
  EXPECT_EQ(*ReadChunk(*cs.stub, 7, 4, 0, 100), "v3+4");

  grpc::ClientContext c1;
  pb::StatRequest stat;
  stat.set_chunk_id(8);
  pb::StatReply stat_reply;
  EXPECT_EQ(cs.stub->Stat(&c1, stat, &stat_reply).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext c2;
  stat.set_chunk_id(7);
  ASSERT_TRUE(cs.stub->Stat(&c2, stat, &stat_reply).ok());
  ASSERT_EQ(stat_reply.versions_size(), 1);
  EXPECT_EQ(stat_reply.versions(0).version(), 4u);
  EXPECT_EQ(stat_reply.versions(0).length(), 4u);
  grpc::ClientContext c3;
  pb::DeleteRequest del;
  del.set_chunk_id(9);
  pb::DeleteReply del_reply;
  EXPECT_EQ(cs.stub->Delete(&c3, del, &del_reply).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext c4;
  del.set_chunk_id(7);
  ASSERT_TRUE(cs.stub->Delete(&c4, del, &del_reply).ok());
  EXPECT_GT(del_reply.bytes_freed(), 0u);
  EXPECT_EQ(ReadChunk(*cs.stub, 7, 4, 0, 10).status().code(), StatusCode::kNotFound);
}

TEST(ChunkServiceImpl, Read_CorruptBlockIsDataLossAndReportedDamaged) {
  InProcessChunkserver cs;
  const std::string data = RandomBytes(5 * common::kBlockSizeBytes, 3);
  ASSERT_TRUE(WriteChunk(*cs.stub, Header(10, 1, 0, 0), Bytes(data)).ok());
  int fd = ::open(cs.store->TEST_PathOf(10, 1).c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "X", 1, kChunkDataOffset + 3 * common::kBlockSizeBytes + 7), 1);
  ::close(fd);
  auto read = ReadChunk(*cs.stub, 10, 1, 0, data.size());
  EXPECT_EQ(read.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(read.status().message().find("chunk 000000000000000a version 1: block 3"), std::string_view::npos)
      << read.status().ToString();
  auto damaged = cs.store->TakeNewlyDamaged();
  ASSERT_EQ(damaged.size(), 1u);
  EXPECT_EQ(damaged[0].chunk_id, 10u);
  // The good blocks still read.
  EXPECT_EQ(*ReadChunk(*cs.stub, 10, 1, 0, 3 * common::kBlockSizeBytes), data.substr(0, 3 * common::kBlockSizeBytes));
}

TEST(ChunkServiceImpl, ListChunks_Pages) {
  InProcessChunkserver cs;
  for (uint64_t id = 1; id <= 5; ++id) ASSERT_TRUE(WriteChunk(*cs.stub, Header(id, 1, 0, 0), Bytes("x")).ok());
  grpc::ClientContext context;
  pb::ListChunksRequest request;
  request.set_page_size(2);
  auto reader = cs.stub->ListChunks(&context, request);
  pb::ListChunksReply reply;
  std::vector<int> pages;
  while (reader->Read(&reply)) pages.push_back(reply.chunks_size());
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(pages, (std::vector<int>{2, 2, 1}));
}

// Asks `target` to copy (chunk_id, version) from `source`.
grpc::Status Replicate(InProcessChunkserver& target, const InProcessChunkserver& source, uint64_t chunk_id,
                       uint64_t version, pb::ReplicateFromReply* reply) {
  grpc::ClientContext context;
  pb::ReplicateFromRequest request;
  request.set_chunk_id(chunk_id);
  request.set_version(version);
  request.set_source_address(source.address);
  return target.stub->ReplicateFrom(&context, request, reply);
}

TEST(ChunkServiceImpl, ReplicateFrom_PullsVerifiesAndInstalls) {
  InProcessChunkserver source;
  InProcessChunkserver target;
  const std::string data = RandomBytes(3'333'333, 4);
  ASSERT_TRUE(WriteChunk(*source.stub, Header(11, 2, 0, 0), Bytes(data)).ok());
  pb::ReplicateFromReply reply;
  grpc::Status s = Replicate(target, source, 11, 2, &reply);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(reply.length(), data.size());
  EXPECT_EQ(*ReadChunk(*target.stub, 11, 2, 0, common::kChunkSizeBytes), data);
  // A missing source chunk fails cleanly and installs nothing.
  EXPECT_EQ(Replicate(target, source, 12, 2, &reply).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(target.store->Find(12, 2).status().code(), StatusCode::kNotFound);
  // A corrupt source block: DATA_LOSS, nothing installed.
  int fd = ::open(source.store->TEST_PathOf(11, 2).c_str(), O_RDWR);
  ASSERT_EQ(::pwrite(fd, "X", 1, kChunkDataOffset + 2'000'000), 1);
  ::close(fd);
  ASSERT_TRUE(target.store->Delete(11, 0).ok());
  EXPECT_EQ(Replicate(target, source, 11, 2, &reply).error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(target.store->Find(11, 2).status().code(), StatusCode::kNotFound);
}

// A sparse chunk (a gap, then data): a reader that accepts zero blocks gets
// the gap as counts with the stored CRCs, a replica pulled from it crosses
// the network as its data only and is as sparse, and a reader that does not
// ask gets every byte, as before.
TEST(ChunkServiceImpl, ReplicateFrom_ASparseChunkCrossesAsItsDataOnly) {
  InProcessChunkserver source;
  InProcessChunkserver target;
  const std::string data = RandomBytes(1 << 20, 5);
  ASSERT_TRUE(WriteChunk(*source.stub, Header(13, 1, 0, 0), Bytes("head")).ok());
  ASSERT_TRUE(WriteChunk(*source.stub, Header(13, 1, 0, 30 << 20), Bytes(data)).ok());
  const std::string whole = "head" + std::string((30 << 20) - 4, '\0') + data;

  grpc::ClientContext context;
  pb::ReadRequest request;
  request.set_chunk_id(13);
  request.set_version(1);
  request.set_length(common::kChunkSizeBytes);
  request.set_zero_blocks_ok(true);
  auto reader = source.stub->Read(&context, request);
  pb::ReadReply reply;
  std::string rebuilt;
  uint64_t sent = 0, zero_messages = 0;
  const std::string zero_block(common::kBlockSizeBytes, '\0');
  const uint32_t zero_crc = common::Crc32c(zero_block.data(), zero_block.size());
  while (reader->Read(&reply)) {
    ASSERT_EQ(reply.offset(), rebuilt.size());
    sent += reply.data().size();
    if (reply.zero_blocks() == 0) {
      rebuilt += reply.data();
      continue;
    }
    ++zero_messages;
    EXPECT_TRUE(reply.data().empty());
    ASSERT_EQ(static_cast<uint64_t>(reply.block_crcs_size()), reply.zero_blocks());
    for (uint32_t crc : reply.block_crcs()) EXPECT_EQ(crc, zero_crc);
    rebuilt.append(reply.zero_blocks() * common::kBlockSizeBytes, '\0');
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(rebuilt == whole);
  EXPECT_LT(sent, 3u << 20);
  EXPECT_GE(zero_messages, 28u);
  EXPECT_TRUE(*ReadChunk(*source.stub, 13, 1, 0, common::kChunkSizeBytes) == whole);  // not asked: bytes

  pb::ReplicateFromReply replicated;
  grpc::Status s = Replicate(target, source, 13, 1, &replicated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(replicated.length(), whole.size());
  EXPECT_TRUE(*ReadChunk(*target.stub, 13, 1, 0, common::kChunkSizeBytes) == whole);
  struct stat st {};
  ASSERT_EQ(::stat(target.store->TEST_PathOf(13, 1).c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 3u << 20);
}

}  // namespace
}  // namespace dfs::chunkserver
