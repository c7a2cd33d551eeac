// Paths inside the filesystem for dfsctl (as root: it is the operator's
// tool): resolving "/a/b" to an inode and walking a tree.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"
#include "ctl/ctl.h"
#include "proto/meta.pb.h"

namespace dfs::ctl {

struct Resolved {
  uint64_t ino = 0;
  pb::Attr attr;
};

// "/" or "/a/b" (a path inside dfs, not a local mount path): its inode.
common::Result<Resolved> ResolvePath(Context& ctx, const std::string& path);

// Calls `visit(path, attr)` for `root` and everything below it, depth first.
// Stops at the first error (of the walk or from `visit`).
common::Status WalkTree(Context& ctx, const std::string& path, const Resolved& root,
                        const std::function<common::Status(const std::string&, const pb::Attr&)>& visit);

// The request context dfsctl sends: root credentials.
pb::RequestContext RootContext();

}  // namespace dfs::ctl
