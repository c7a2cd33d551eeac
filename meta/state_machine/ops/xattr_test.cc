// Extended attributes: namespaces, flags and Linux limits.
#include <gtest/gtest.h>

#include "common/status.h"
#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

using common::StatusCode;
constexpr int C(StatusCode code) { return static_cast<int>(code); }
constexpr uint64_t kRoot = 1;

class XattrTest : public ::testing::Test {
 protected:
  int Set(uint64_t ino, const std::string& name, const std::string& value, uint32_t flags = 0) {
    pb::Op op;
    auto* r = op.mutable_set_xattr();
    *r->mutable_ctx() = h.Ctx();
    r->set_ino(ino);
    r->set_name(name);
    r->set_value(value);
    r->set_flags(flags);
    return h.Apply(op).status().code();
  }
  int Get(uint64_t ino, const std::string& name, std::string* value = nullptr) {
    pb::GetXattrRequest req;
    *req.mutable_ctx() = h.Ctx();
    req.set_ino(ino);
    req.set_name(name);
    pb::GetXattrReply reply;
    h.sm().GetXattr(req, &reply);
    if (value) *value = reply.value();
    return reply.status().code();
  }
  int Remove(uint64_t ino, const std::string& name) {
    pb::Op op;
    auto* r = op.mutable_remove_xattr();
    *r->mutable_ctx() = h.Ctx();
    r->set_ino(ino);
    r->set_name(name);
    return h.Apply(op).status().code();
  }
  testing::SmHarness h;
};

TEST_F(XattrTest, SetGetListRemove) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  ASSERT_EQ(Set(f.ino(), "user.a", "1"), 0);
  ASSERT_EQ(Set(f.ino(), "trusted.b", std::string("\0x", 2)), 0);
  std::string value;
  ASSERT_EQ(Get(f.ino(), "trusted.b", &value), 0);
  EXPECT_EQ(value, std::string("\0x", 2));
  pb::ListXattrRequest list;
  list.set_ino(f.ino());
  pb::ListXattrReply names;
  h.sm().ListXattr(list, &names);
  ASSERT_EQ(names.names_size(), 2);
  EXPECT_EQ(Remove(f.ino(), "user.a"), 0);
  EXPECT_EQ(Remove(f.ino(), "user.a"), C(StatusCode::kNoAttribute));
  EXPECT_EQ(Get(f.ino(), "user.a"), C(StatusCode::kNoAttribute));
}

TEST_F(XattrTest, CreateAndReplaceFlags) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  EXPECT_EQ(Set(f.ino(), "user.a", "1", 2), C(StatusCode::kNoAttribute));  // XATTR_REPLACE
  EXPECT_EQ(Set(f.ino(), "user.a", "1", 1), 0);                            // XATTR_CREATE
  EXPECT_EQ(Set(f.ino(), "user.a", "2", 1), C(StatusCode::kAlreadyExists));
  EXPECT_EQ(Set(f.ino(), "user.a", "2", 2), 0);
}

TEST_F(XattrTest, Limits) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  EXPECT_EQ(Set(f.ino(), "user." + std::string(251, 'n'), "v"), C(StatusCode::kRange));  // ERANGE
  EXPECT_EQ(Set(f.ino(), "", "v"), C(StatusCode::kRange));
  EXPECT_EQ(Set(f.ino(), "user.big", std::string(65537, 'v')), C(StatusCode::kValueTooLarge));  // E2BIG
  EXPECT_EQ(Set(f.ino(), "user.max", std::string(65536, 'v')), 0);
  EXPECT_EQ(Set(f.ino(), "bogus.ns", "v"), C(StatusCode::kUnimplemented));
}

TEST_F(XattrTest, NamespacePermissions) {
  pb::Attr f, s;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  ASSERT_EQ(h.Symlink(kRoot, "s", "f", &s), 0);
  EXPECT_EQ(Set(s.ino(), "user.a", "1"), C(StatusCode::kNotPermitted));
  h.creds = testing::Creds(1000, 1000);
  EXPECT_EQ(Set(f.ino(), "user.a", "1"), C(StatusCode::kPermissionDenied));
  EXPECT_EQ(Set(f.ino(), "trusted.a", "1"), C(StatusCode::kNotPermitted));
  EXPECT_EQ(Set(f.ino(), "system.posix_acl_access", "1"), C(StatusCode::kNotPermitted));
}

}  // namespace
}  // namespace dfs::meta
