// Open handles and sessions: unlinked-but-open files live until the last
// handle of any session goes away.
#include <fcntl.h>
#include <sys/stat.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "common/status.h"
#include "meta/state_machine/test_util.h"

namespace dfs::meta {
namespace {

using common::StatusCode;
constexpr uint64_t kRoot = 1;

class SessionTest : public ::testing::Test {
 protected:
  uint64_t OpenSession() {
    pb::Op op;
    op.mutable_open_session()->set_lease_ms(1000);
    return h.Apply(op).client_id();
  }
  uint64_t Open(uint64_t client, uint64_t ino, uint32_t flags) {
    pb::Op op;
    op.set_client_id(client);
    op.mutable_open()->set_ino(ino);
    op.mutable_open()->set_flags(flags);
    pb::OpResult result = h.Apply(op);
    EXPECT_EQ(result.status().code(), 0);
    return result.handle_id();
  }
  void Release(uint64_t client, uint64_t ino, uint64_t handle) {
    pb::Op op;
    op.set_client_id(client);
    op.mutable_release()->set_ino(ino);
    op.mutable_release()->set_handle_id(handle);
    EXPECT_EQ(h.Apply(op).status().code(), 0);
  }
  testing::SmHarness h;
};

TEST_F(SessionTest, OpenSession_AllocatesDistinctClientIds) {
  uint64_t a = OpenSession(), b = OpenSession();
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
}

TEST_F(SessionTest, Release_LastHandleOfUnlinkedFileFreesIt) {
  uint64_t c1 = OpenSession(), c2 = OpenSession();
  h.client_id = c1;
  pb::Attr f;
  uint64_t h1 = 0;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f, &h1), 0);
  ASSERT_NE(h1, 0u);
  uint64_t h2 = Open(c2, f.ino(), O_RDONLY);
  ASSERT_EQ(h.Unlink(kRoot, "f"), 0);
  pb::Attr orphan;
  ASSERT_EQ(h.GetAttr(f.ino(), &orphan), 0);
  EXPECT_EQ(orphan.nlink(), 0u);
  Release(c1, f.ino(), h1);
  EXPECT_EQ(h.GetAttr(f.ino()), 0);  // c2 still holds it
  Release(c2, f.ino(), h2);
  EXPECT_EQ(h.GetAttr(f.ino()), static_cast<int>(StatusCode::kNotFound));
}

// Ops stamped defer_frees (all a leader proposes now) leave a regular file
// without names or handles as an orphan - kept, with nlink 0 - for the
// leader's FreeOrphansOp, since a client may read it through a lazy open
// meta has no record of. Other inodes go at once; an orphan a handle holds
// is skipped, and listed again once the handle goes.
TEST_F(SessionTest, DeferredFrees_OrphansWaitForFreeOrphans) {
  h.defer_frees = true;
  uint64_t c1 = OpenSession();
  h.client_id = c1;
  pb::Attr f, g, d;
  uint64_t hf = 0, hg = 0;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f, &hf), 0);
  ASSERT_EQ(h.Create(kRoot, "g", 0644, &g, &hg), 0);
  Release(c1, f.ino(), hf);
  Release(c1, g.ino(), hg);
  ASSERT_EQ(h.Mkdir(kRoot, "d", 0755, &d), 0);
  ASSERT_EQ(h.Unlink(kRoot, "f"), 0);
  ASSERT_EQ(h.Rmdir(kRoot, "d"), 0);
  ASSERT_EQ(h.Create(kRoot, "g2", 0644), 0);
  ASSERT_EQ(h.Rename(kRoot, "g2", kRoot, "g"), 0);  // replaces g
  EXPECT_EQ(h.GetAttr(d.ino()), static_cast<int>(StatusCode::kNotFound));
  pb::Attr orphan;
  ASSERT_EQ(h.GetAttr(f.ino(), &orphan), 0);
  EXPECT_EQ(orphan.nlink(), 0u);
  EXPECT_EQ(h.GetAttr(g.ino()), 0);
  EXPECT_EQ(h.sm().Orphans(10), (std::vector<uint64_t>{f.ino(), g.ino()}));

  const uint64_t held = Open(c1, f.ino(), O_RDONLY);
  EXPECT_EQ(h.sm().Orphans(10), (std::vector<uint64_t>{g.ino()}));
  pb::Op free_op;
  free_op.mutable_free_orphans()->add_inos(f.ino());
  free_op.mutable_free_orphans()->add_inos(g.ino());
  free_op.mutable_free_orphans()->add_inos(999);  // long gone: nothing to do
  EXPECT_EQ(h.Apply(free_op).status().code(), 0);
  EXPECT_EQ(h.GetAttr(g.ino()), static_cast<int>(StatusCode::kNotFound));
  EXPECT_EQ(h.GetAttr(f.ino()), 0) << "freed under an open handle";
  Release(c1, f.ino(), held);
  EXPECT_EQ(h.GetAttr(f.ino()), 0);
  EXPECT_EQ(h.sm().Orphans(10), (std::vector<uint64_t>{f.ino()}));
  pb::Op again;
  again.mutable_free_orphans()->add_inos(f.ino());
  EXPECT_EQ(h.Apply(again).status().code(), 0);
  EXPECT_EQ(h.GetAttr(f.ino()), static_cast<int>(StatusCode::kNotFound));
  EXPECT_TRUE(h.sm().Orphans(10).empty());
}

// A new leader learns from the log which sessions report lazy read opens
// (and so may hold a file it must not free yet).
TEST_F(SessionTest, PinningSessions_KeptFromOpenUntilTheSessionEnds) {
  pb::Op open;
  open.mutable_open_session()->set_lease_ms(1000);
  open.mutable_open_session()->mutable_request()->set_reports_read_pins(true);
  const uint64_t pinning = h.Apply(open).client_id();
  const uint64_t plain = OpenSession();
  using Row = StateMachine::SessionRow;
  std::vector<Row> both = {{pinning, true}, {plain, false}};
  std::sort(both.begin(), both.end(), [](const Row& a, const Row& b) { return a.client_id < b.client_id; });
  EXPECT_EQ(h.sm().Sessions(), both);
  pb::Op close;
  close.set_client_id(pinning);
  close.mutable_close_session()->mutable_ctx()->set_client_id(pinning);
  EXPECT_EQ(h.Apply(close).status().code(), 0);
  EXPECT_EQ(h.sm().Sessions(), (std::vector<Row>{{plain, false}}));
}

// A mutation carries the releases of handles its client closed before it
// (Op.releases): they apply first, whatever the op's own outcome, once even
// if the op is replayed, and only to the carrying client's own handles.
TEST_F(SessionTest, CarriedReleases_ApplyBeforeTheOpOnceAndOnlyForTheirClient) {
  uint64_t c1 = OpenSession(), c2 = OpenSession();
  h.client_id = c1;
  pb::Attr f, g;
  uint64_t hf = 0, hg = 0;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f, &hf), 0);
  ASSERT_EQ(h.Create(kRoot, "g", 0644, &g, &hg), 0);
  ASSERT_EQ(h.Unlink(kRoot, "f"), 0);
  ASSERT_EQ(h.Unlink(kRoot, "g"), 0);
  auto carrier = [&](uint64_t client, uint64_t request_id, uint64_t ino, uint64_t handle) {
    pb::Op op;  // a mkdir that meta refuses: "d" exists after the first
    op.set_client_id(client);
    op.set_request_id(request_id);
    op.mutable_mkdir()->set_parent(kRoot);
    op.mutable_mkdir()->set_name("d");
    op.mutable_mkdir()->set_mode(0755);
    pb::ReleaseRequest* r = op.add_releases();
    r->set_ino(ino);
    r->set_handle_id(handle);
    return op;
  };
  ASSERT_EQ(h.Mkdir(kRoot, "d"), 0);

  // Another client cannot end c1's handle by carrying it.
  EXPECT_EQ(h.Apply(carrier(c2, 1, f.ino(), hf)).status().code(), static_cast<int>(StatusCode::kAlreadyExists));
  EXPECT_EQ(h.GetAttr(f.ino()), 0);
  // c1's refused mkdir still releases f: the last handle, so f goes.
  EXPECT_EQ(h.Apply(carrier(c1, 1, f.ino(), hf)).status().code(), static_cast<int>(StatusCode::kAlreadyExists));
  EXPECT_EQ(h.GetAttr(f.ino()), static_cast<int>(StatusCode::kNotFound));
  // A replay of that request (same ids) answers from memory; g's release,
  // carried by the replay only, is not applied.
  EXPECT_EQ(h.Apply(carrier(c1, 1, g.ino(), hg)).status().code(), static_cast<int>(StatusCode::kAlreadyExists));
  EXPECT_EQ(h.GetAttr(g.ino()), 0);
  // Carried twice (a retry after a lost reply is a new request): harmless.
  EXPECT_EQ(h.Apply(carrier(c1, 2, g.ino(), hg)).status().code(), static_cast<int>(StatusCode::kAlreadyExists));
  EXPECT_EQ(h.Apply(carrier(c1, 3, g.ino(), hg)).status().code(), static_cast<int>(StatusCode::kAlreadyExists));
  EXPECT_EQ(h.GetAttr(g.ino()), static_cast<int>(StatusCode::kNotFound));
}

// Root's chmod/chown of an open file, answered by the client and carried by
// its next mutation (Op.set_attrs): applied in order before the op, whatever
// the op's outcome; one meta refuses does not stop the others; not applied
// again when the carrier is replayed.
TEST_F(SessionTest, CarriedSetAttrs_ApplyInOrderBeforeTheOpAndOnce) {
  uint64_t c1 = OpenSession();
  h.client_id = c1;
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 04755, &f), 0);
  ASSERT_EQ(h.Mkdir(kRoot, "d"), 0);
  auto set = [](uint64_t ino, uint32_t valid, uint32_t mode, uint32_t owner, uint32_t caller) {
    pb::SetAttrRequest r;
    r.set_ino(ino);
    r.set_valid(valid);
    r.set_mode(mode);
    r.set_uid(owner);
    r.set_gid(owner);
    *r.mutable_ctx()->mutable_creds() = testing::Creds(caller, caller);
    return r;
  };
  pb::Op op;  // a mkdir meta refuses: "d" exists
  op.set_client_id(c1);
  op.set_request_id(1);
  op.mutable_mkdir()->set_parent(kRoot);
  op.mutable_mkdir()->set_name("d");
  op.mutable_mkdir()->set_mode(0755);
  *op.add_set_attrs() = set(f.ino(), pb::SET_UID | pb::SET_GID, 0, 1000, 0);  // chown: suid goes
  *op.add_set_attrs() = set(f.ino(), pb::SET_MODE, 0640, 0, 0);
  *op.add_set_attrs() = set(f.ino(), pb::SET_UID, 0, 2000, 1000);  // not root: refused, skipped
  *op.add_set_attrs() = set(f.ino(), pb::SET_MODE, 0600, 0, 0);    // after the 0640
  EXPECT_EQ(h.Apply(op).status().code(), static_cast<int>(StatusCode::kAlreadyExists));
  pb::Attr after;
  ASSERT_EQ(h.GetAttr(f.ino(), &after), 0);
  EXPECT_EQ(after.mode(), static_cast<uint32_t>(S_IFREG | 0600));
  EXPECT_EQ(after.uid(), 1000u);
  EXPECT_EQ(after.gid(), 1000u);

  // The replay answers from memory and applies nothing it carries.
  op.clear_set_attrs();
  *op.add_set_attrs() = set(f.ino(), pb::SET_MODE, 0777, 0, 0);
  EXPECT_EQ(h.Apply(op).status().code(), static_cast<int>(StatusCode::kAlreadyExists));
  ASSERT_EQ(h.GetAttr(f.ino(), &after), 0);
  EXPECT_EQ(after.mode(), static_cast<uint32_t>(S_IFREG | 0600));
}

TEST_F(SessionTest, ExpireSessions_ReleasesHandles) {
  uint64_t c1 = OpenSession();
  h.client_id = c1;
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  ASSERT_EQ(h.Unlink(kRoot, "f"), 0);
  ASSERT_EQ(h.GetAttr(f.ino()), 0);
  pb::Op op;
  op.mutable_expire_sessions()->add_client_ids(c1);
  ASSERT_EQ(h.Apply(op).status().code(), 0);
  EXPECT_EQ(h.GetAttr(f.ino()), static_cast<int>(StatusCode::kNotFound));
}

TEST_F(SessionTest, CloseSession_ReleasesHandlesAndSurvivesRestart) {
  uint64_t c1 = OpenSession();
  h.client_id = c1;
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0644, &f), 0);
  ASSERT_EQ(h.Unlink(kRoot, "f"), 0);
  h.Reopen();
  ASSERT_EQ(h.GetAttr(f.ino()), 0);  // the handle is replicated state
  pb::Op op;
  op.set_client_id(c1);
  op.mutable_close_session()->mutable_ctx()->set_client_id(c1);
  ASSERT_EQ(h.Apply(op).status().code(), 0);
  EXPECT_EQ(h.GetAttr(f.ino()), static_cast<int>(StatusCode::kNotFound));
}

TEST_F(SessionTest, Create_UnknownSession_Stale) {
  h.client_id = 12345;
  EXPECT_EQ(h.Create(kRoot, "f"), static_cast<int>(StatusCode::kStale));
  EXPECT_EQ(h.Lookup(kRoot, "f"), static_cast<int>(StatusCode::kNotFound));
}

// A mount cut off for longer than its lease asks for its session back:
// the same id, and each handle it still holds whose file exists. A handle
// of a file freed meanwhile, one the session never had (an id meta did not
// give out, or another session's), comes back lost.
TEST_F(SessionTest, ResumeSession_RestoresTheIdAndTheHandlesOfFilesThatExist) {
  uint64_t c1 = OpenSession(), c2 = OpenSession();
  h.client_id = c1;
  pb::Attr kept, unlinked, gone;
  uint64_t h_kept = 0, h_unlinked = 0, h_gone = 0;
  ASSERT_EQ(h.Create(kRoot, "kept", 0644, &kept, &h_kept), 0);
  ASSERT_EQ(h.Create(kRoot, "unlinked", 0644, &unlinked, &h_unlinked), 0);
  ASSERT_EQ(h.Create(kRoot, "gone", 0644, &gone, &h_gone), 0);
  const uint64_t h_other = Open(c2, unlinked.ino(), O_RDONLY);  // keeps "unlinked" alive
  ASSERT_EQ(h.Unlink(kRoot, "unlinked"), 0);
  ASSERT_EQ(h.Unlink(kRoot, "gone"), 0);

  pb::Op expire;
  expire.mutable_expire_sessions()->add_client_ids(c1);
  ASSERT_EQ(h.Apply(expire).status().code(), 0);
  EXPECT_EQ(h.GetAttr(gone.ino()), static_cast<int>(StatusCode::kNotFound));
  EXPECT_EQ(h.Create(kRoot, "new"), static_cast<int>(StatusCode::kStale));

  pb::Op resume;
  resume.mutable_open_session()->set_lease_ms(1000);
  resume.mutable_open_session()->set_client_id(777);  // the leader's draw, unused when resuming
  pb::OpenSessionRequest* req = resume.mutable_open_session()->mutable_request();
  req->set_resume_client_id(c1);
  auto add = [&](uint64_t handle, uint64_t ino) {
    pb::ResumedHandle* r = req->add_handles();
    r->set_handle_id(handle);
    r->set_ino(ino);
    r->set_flags(O_RDWR);
  };
  add(h_kept, kept.ino());
  add(h_unlinked, unlinked.ino());
  add(h_gone, gone.ino());
  add(h_other, unlinked.ino());   // c2's
  add(h_kept + 1000, kept.ino());  // never given out
  pb::OpResult resumed = h.Apply(resume);
  ASSERT_EQ(resumed.status().code(), 0);
  EXPECT_EQ(resumed.client_id(), c1);
  std::vector<uint64_t> lost(resumed.lost_handles().begin(), resumed.lost_handles().end());
  EXPECT_EQ(lost, (std::vector<uint64_t>{h_gone, h_other, h_kept + 1000}));

  // The session is back: creates pass, and the restored handle keeps the
  // unlinked file until it is released.
  EXPECT_EQ(h.Create(kRoot, "new"), 0);
  Release(c2, unlinked.ino(), h_other);
  EXPECT_EQ(h.GetAttr(unlinked.ino()), 0) << "freed under a restored handle";
  Release(c1, unlinked.ino(), h_unlinked);
  EXPECT_EQ(h.GetAttr(unlinked.ino()), static_cast<int>(StatusCode::kNotFound));

  // Resuming a session that had not ended keeps it and its handles.
  resumed = h.Apply(resume);
  EXPECT_EQ(resumed.client_id(), c1);
  EXPECT_EQ(resumed.lost_handles_size(), 4);  // h_unlinked was released just now
  EXPECT_EQ(resumed.lost_handles(0), h_unlinked);
}

// A request applied just before its session expired, whose reply the
// client never got, is retried after the client resumed the session: it
// gets its first result, not a second application (EEXIST here). Kept 10
// minutes; entries from before the rule deleted the results at once.
TEST_F(SessionTest, ExpiredSession_KeepsItsResultsForAResume) {
  auto mkdir = [&](uint64_t client, uint64_t request_id, const std::string& name) {
    pb::Op op;
    op.set_client_id(client);
    op.set_request_id(request_id);
    op.mutable_mkdir()->set_parent(kRoot);
    op.mutable_mkdir()->set_name(name);
    op.mutable_mkdir()->set_mode(0755);
    return h.Apply(op).status().code();
  };
  auto expire = [&](uint64_t client) {
    pb::Op op;
    op.mutable_expire_sessions()->add_client_ids(client);
    ASSERT_EQ(h.Apply(op).status().code(), 0);
  };
  auto resume = [&](uint64_t client) {
    pb::Op op;
    op.mutable_open_session()->set_lease_ms(1000);
    op.mutable_open_session()->mutable_request()->set_resume_client_id(client);
    ASSERT_EQ(h.Apply(op).client_id(), client);
  };
  const uint64_t c1 = OpenSession(), c2 = OpenSession(), c3 = OpenSession();
  ASSERT_EQ(mkdir(c1, 7, "d1"), 0);
  ASSERT_EQ(mkdir(c2, 7, "d2"), 0);
  ASSERT_EQ(mkdir(c3, 7, "d3"), 0);
  expire(c1);
  resume(c1);
  EXPECT_EQ(mkdir(c1, 7, "d1"), 0) << "the retry was applied again";

  expire(c2);
  h.now_ns += int64_t{11} * 60 * 1'000'000'000;  // too late for c2's results
  expire(c3);                                     // housekeeping forgets them
  resume(c2);
  EXPECT_EQ(mkdir(c2, 7, "d2"), static_cast<int>(StatusCode::kAlreadyExists));

  h.keep_ended_requests = false;
  const uint64_t c4 = OpenSession();
  ASSERT_EQ(mkdir(c4, 7, "d4"), 0);
  expire(c4);
  resume(c4);
  EXPECT_EQ(mkdir(c4, 7, "d4"), static_cast<int>(StatusCode::kAlreadyExists));
}

TEST_F(SessionTest, Open_ChecksAccessAndTruncates) {
  pb::Attr f;
  ASSERT_EQ(h.Create(kRoot, "f", 0600, &f), 0);
  pb::SetAttrRequest grow;
  grow.set_ino(f.ino());
  grow.set_valid(pb::SET_SIZE);
  grow.set_size(100);
  ASSERT_EQ(h.SetAttr(grow), 0);
  pb::Op op;
  op.mutable_open()->set_ino(f.ino());
  op.mutable_open()->set_flags(O_RDONLY);
  *op.mutable_open()->mutable_ctx()->mutable_creds() = testing::Creds(1000, 1000);
  EXPECT_EQ(h.Apply(op).status().code(), static_cast<int>(StatusCode::kPermissionDenied));
  op.mutable_open()->mutable_ctx()->clear_creds();
  op.mutable_open()->set_flags(O_WRONLY | O_TRUNC);
  pb::OpResult result = h.Apply(op);
  ASSERT_EQ(result.status().code(), 0);
  EXPECT_EQ(result.attr().size(), 0u);
  op.mutable_open()->set_ino(kRoot);
  EXPECT_EQ(h.Apply(op).status().code(), static_cast<int>(StatusCode::kIsADirectory));
}

}  // namespace
}  // namespace dfs::meta
