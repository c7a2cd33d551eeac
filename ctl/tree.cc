#include "ctl/tree.h"

#include <sys/stat.h>

#include <vector>

#include "common/grpc_status.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::ctl {

pb::RequestContext RootContext() {
  pb::RequestContext rc;
  rc.mutable_creds()->set_uid(0);
  rc.mutable_creds()->set_gid(0);
  return rc;
}

namespace {

common::Result<pb::Attr> GetAttr(Context& ctx, uint64_t ino) {
  pb::AttrReply reply;
  grpc::Status s = ctx.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
    pb::GetAttrRequest req;
    *req.mutable_ctx() = RootContext();
    req.set_ino(ino);
    return pb::MetaService::Stub(ch).GetAttr(&c, req, &reply);
  });
  if (!s.ok()) return common::FromGrpcStatus(s);
  RETURN_IF_ERROR(common::FromFsStatus(reply.status()));
  return reply.attr();
}

}  // namespace

common::Result<Resolved> ResolvePath(Context& ctx, const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return common::InvalidArgumentError("'" + path + "' is not an absolute path inside dfs (it starts with /)");
  }
  Resolved at;
  at.ino = 1;
  size_t start = 1;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    const std::string name = path.substr(start, slash - start);
    start = slash + 1;
    if (name.empty() || name == ".") continue;
    if (name == "..") return common::InvalidArgumentError("'..' is not allowed in " + path);
    pb::EntryReply reply;
    grpc::Status s = ctx.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
      pb::LookupRequest req;
      *req.mutable_ctx() = RootContext();
      req.set_parent(at.ino);
      req.set_name(name);
      return pb::MetaService::Stub(ch).Lookup(&c, req, &reply);
    });
    if (!s.ok()) return common::FromGrpcStatus(s);
    common::Status status = common::FromFsStatus(reply.status());
    if (!status.ok()) return common::Status(status.code(), path + ": " + std::string(status.message()));
    at.ino = reply.attr().ino();
    at.attr = reply.attr();
  }
  if (at.ino == 1) {
    auto attr = GetAttr(ctx, 1);
    if (!attr.ok()) return attr.status();
    at.attr = *attr;
  }
  return at;
}

common::Status WalkTree(Context& ctx, const std::string& path, const Resolved& root,
                        const std::function<common::Status(const std::string&, const pb::Attr&)>& visit) {
  RETURN_IF_ERROR(visit(path, root.attr));
  if (!S_ISDIR(root.attr.mode())) return common::Status::Ok();
  uint64_t cookie = 0;
  for (;;) {
    pb::ReadDirReply reply;
    grpc::Status s = ctx.meta->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& c) {
      pb::ReadDirRequest req;
      *req.mutable_ctx() = RootContext();
      req.set_ino(root.ino);
      req.set_cookie(cookie);
      return pb::MetaService::Stub(ch).ReadDirPlus(&c, req, &reply);
    });
    if (!s.ok()) return common::FromGrpcStatus(s);
    RETURN_IF_ERROR(common::FromFsStatus(reply.status()));
    for (const pb::DirEntry& entry : reply.entries()) {
      cookie = entry.cookie();
      if (entry.name() == "." || entry.name() == "..") continue;
      Resolved child;
      child.ino = entry.ino();
      child.attr = entry.attr();
      const std::string child_path = (path == "/" ? "" : path) + "/" + entry.name();
      RETURN_IF_ERROR(WalkTree(ctx, child_path, child, visit));
    }
    if (reply.eof() || reply.entries().empty()) break;
  }
  return common::Status::Ok();
}

}  // namespace dfs::ctl
