#include "meta/raft/framing.h"

#include <gtest/gtest.h>

#include <string>

#include "meta/raft/read_lease.h"

namespace dfs::meta::raft {
namespace {

TEST(Framing, EveryLengthRoundTripsInAMultipleOfEight) {
  // libraft 0.15 shifts unaligned entries on followers: every frame must be
  // 8n bytes, whatever the payload.
  for (size_t n = 0; n < 70; ++n) {
    std::string payload(n, 'x');
    for (size_t i = 0; i < n; ++i) payload[i] = static_cast<char>(i * 7 + 1);
    raft_buffer buf = EncodeEntry(payload);
    ASSERT_NE(buf.base, nullptr);
    EXPECT_EQ(buf.len % 8, 0u) << n;
    EXPECT_LT(buf.len - 8 - n, 8u) << n;
    auto decoded = DecodeEntry(buf);
    ASSERT_TRUE(decoded.ok()) << n;
    EXPECT_EQ(*decoded, payload);
    raft_free(buf.base);
  }
}

TEST(Framing, RejectsMalformedFrames) {
  raft_buffer buf = EncodeEntry("hello, raft");
  char* p = static_cast<char*>(buf.base);
  raft_buffer truncated{buf.base, buf.len - 8};
  EXPECT_FALSE(DecodeEntry(truncated).ok());
  raft_buffer unaligned{buf.base, buf.len - 1};
  EXPECT_FALSE(DecodeEntry(unaligned).ok());
  p[4] = 100;  // length beyond the buffer
  EXPECT_FALSE(DecodeEntry(buf).ok());
  p[4] = 11;
  p[0] = 'X';  // magic
  EXPECT_FALSE(DecodeEntry(buf).ok());
  raft_buffer tiny{buf.base, 0};
  EXPECT_FALSE(DecodeEntry(tiny).ok());
  raft_free(buf.base);
}

TEST(ReadLease, QuorumContactIsTheMajorityThMostRecent) {
  EXPECT_EQ(QuorumContact({}), 0);
  EXPECT_EQ(QuorumContact({100}), 100);                // one voter: itself
  EXPECT_EQ(QuorumContact({100, 0, 0}), 0);            // nobody answered
  EXPECT_EQ(QuorumContact({100, 40, 0}), 40);          // leader + one of three
  EXPECT_EQ(QuorumContact({100, 40, 90}), 90);
  EXPECT_EQ(QuorumContact({100, 10, 20, 30, 0}), 20);  // 3 of 5
  EXPECT_EQ(QuorumContact({100, 10, 0, 0, 0}), 0);
}

TEST(ReadLease, LeaseIsContactPlusElectionTimeoutMinusMargin) {
  EXPECT_EQ(LeaseUntil(0, 1000, 100), 0);
  EXPECT_EQ(LeaseUntil(5000, 1000, 100), 5900);
}

}  // namespace
}  // namespace dfs::meta::raft
