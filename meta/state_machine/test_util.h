// Test helpers: a StateMachine on a temp file and one-liners that build,
// apply and unwrap Ops. Test-only.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "meta/state_machine/state_machine.h"

namespace dfs::meta::testing {

inline std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/dfs-meta-test-XXXXXX";
  char* dir = mkdtemp(tmpl.data());
  if (dir == nullptr) std::abort();
  return tmpl;
}

// A TCP port on 127.0.0.1 nothing listens on just now (the OS picks it).
inline uint16_t FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Credentials shorthand.
inline pb::Credentials Creds(uint32_t uid, uint32_t gid) {
  pb::Credentials c;
  c.set_uid(uid);
  c.set_gid(gid);
  return c;
}

class SmHarness {
 public:
  SmHarness() : dir_(MakeTempDir()) { Reopen(); }
  ~SmHarness() {
    sm_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void Reopen() {
    sm_.reset();
    StateMachine::Options options;
    options.synchronous = "OFF";  // unit tests: no fsync
    auto sm = StateMachine::Open(dir_ + "/meta.db", options);
    ASSERT_TRUE(sm.ok()) << sm.status().ToString();
    sm_ = std::move(sm).value();
  }
  StateMachine& sm() { return *sm_; }
  const std::string& dir() const { return dir_; }

  // Applies one Op in its own Entry, stamped with now_ns.
  pb::OpResult Apply(pb::Op op) {
    op.set_now_ns(now_ns);
    if (defer_frees) op.set_defer_frees(true);
    if (posix_acls) op.set_posix_acls(true);
    if (movable_leases) op.set_movable_leases(true);
    if (locks_need_session) op.set_locks_need_session(true);
    if (keep_ended_requests) op.set_keep_ended_requests(true);
    pb::Entry entry;
    entry.set_format(1);
    *entry.add_ops() = std::move(op);
    auto results = sm_->Apply(entry.SerializeAsString());
    EXPECT_TRUE(results.ok());
    return results.ok() ? (*results)[0] : pb::OpResult();
  }

  pb::RequestContext Ctx() const {
    pb::RequestContext ctx;
    *ctx.mutable_creds() = creds;
    return ctx;
  }

  // Each returns the dfs StatusCode (0 = OK); the attr lands in *attr.
  int Mkdir(uint64_t parent, const std::string& name, uint32_t mode = 0755, pb::Attr* attr = nullptr) {
    pb::Op op;
    auto* r = op.mutable_mkdir();
    *r->mutable_ctx() = Ctx();
    r->set_parent(parent);
    r->set_name(name);
    r->set_mode(mode);
    return Unwrap(Apply(std::move(op)), attr);
  }
  int Create(uint64_t parent, const std::string& name, uint32_t mode = 0644, pb::Attr* attr = nullptr,
             uint64_t* handle = nullptr, uint32_t flags = 0101 /* O_WRONLY|O_CREAT */) {
    pb::Op op;
    op.set_client_id(client_id);
    auto* r = op.mutable_create();
    *r->mutable_ctx() = Ctx();
    r->set_parent(parent);
    r->set_name(name);
    r->set_mode(mode);
    r->set_flags(flags);
    pb::OpResult result = Apply(std::move(op));
    if (handle) *handle = result.handle_id();
    return Unwrap(result, attr);
  }
  int Unlink(uint64_t parent, const std::string& name) {
    pb::Op op;
    auto* r = op.mutable_unlink();
    *r->mutable_ctx() = Ctx();
    r->set_parent(parent);
    r->set_name(name);
    return Unwrap(Apply(std::move(op)), nullptr);
  }
  int Rmdir(uint64_t parent, const std::string& name) {
    pb::Op op;
    auto* r = op.mutable_rmdir();
    *r->mutable_ctx() = Ctx();
    r->set_parent(parent);
    r->set_name(name);
    return Unwrap(Apply(std::move(op)), nullptr);
  }
  int Rename(uint64_t parent, const std::string& name, uint64_t new_parent, const std::string& new_name,
             uint32_t flags = 0) {
    pb::Op op;
    auto* r = op.mutable_rename();
    *r->mutable_ctx() = Ctx();
    r->set_parent(parent);
    r->set_name(name);
    r->set_new_parent(new_parent);
    r->set_new_name(new_name);
    r->set_flags(flags);
    return Unwrap(Apply(std::move(op)), nullptr);
  }
  int Link(uint64_t ino, uint64_t new_parent, const std::string& new_name, pb::Attr* attr = nullptr) {
    pb::Op op;
    auto* r = op.mutable_link();
    *r->mutable_ctx() = Ctx();
    r->set_ino(ino);
    r->set_new_parent(new_parent);
    r->set_new_name(new_name);
    return Unwrap(Apply(std::move(op)), attr);
  }
  int Symlink(uint64_t parent, const std::string& name, const std::string& target, pb::Attr* attr = nullptr) {
    pb::Op op;
    auto* r = op.mutable_symlink();
    *r->mutable_ctx() = Ctx();
    r->set_parent(parent);
    r->set_name(name);
    r->set_target(target);
    return Unwrap(Apply(std::move(op)), attr);
  }
  int SetAttr(const pb::SetAttrRequest& req, pb::Attr* attr = nullptr) {
    pb::Op op;
    op.set_client_id(client_id);
    *op.mutable_set_attr() = req;
    *op.mutable_set_attr()->mutable_ctx() = Ctx();
    return Unwrap(Apply(std::move(op)), attr);
  }
  int Lookup(uint64_t parent, const std::string& name, pb::Attr* attr = nullptr) {
    pb::LookupRequest req;
    *req.mutable_ctx() = Ctx();
    req.set_parent(parent);
    req.set_name(name);
    pb::EntryReply reply;
    sm_->Lookup(req, &reply);
    if (attr) *attr = reply.attr();
    return reply.status().code();
  }
  int GetAttr(uint64_t ino, pb::Attr* attr = nullptr) {
    pb::GetAttrRequest req;
    req.set_ino(ino);
    pb::AttrReply reply;
    sm_->GetAttr(req, &reply);
    if (attr) *attr = reply.attr();
    return reply.status().code();
  }

  pb::Credentials creds = Creds(0, 0);
  int64_t now_ns = 1'700'000'000'000'000'000;
  uint64_t client_id = 0;
  bool defer_frees = false;  // stamp Op.defer_frees, as a leader does
  bool posix_acls = true;    // stamp Op.posix_acls, as a leader does
  bool movable_leases = true;  // stamp Op.movable_leases, as a leader does
  bool locks_need_session = true;  // stamp Op.locks_need_session, as a leader does
  bool keep_ended_requests = true;  // stamp Op.keep_ended_requests, as a leader does

 private:
  static int Unwrap(const pb::OpResult& result, pb::Attr* attr) {
    if (attr) *attr = result.attr();
    return result.status().code();
  }

  std::string dir_;
  std::unique_ptr<StateMachine> sm_;
};

}  // namespace dfs::meta::testing
