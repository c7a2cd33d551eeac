#include "meta/service/change_feed.h"

#include <fcntl.h>

#include <algorithm>
#include <utility>

namespace dfs::meta {
namespace {

void AddName(Change& c, uint64_t parent, const std::string& name) {
  pb::ChangedName n;
  n.set_parent(parent);
  n.set_name(name);
  c.names.push_back(std::move(n));
  c.inodes.push_back(parent);  // its mtime, size and link count moved too
}

}  // namespace

Change ChangeOf(const pb::Op& op) {
  Change c;
  c.client_id = op.client_id();
  for (const pb::SetAttrRequest& carried : op.set_attrs()) c.inodes.push_back(carried.ino());
  switch (op.body_case()) {
    case pb::Op::kSetAttr:
      c.inodes.push_back(op.set_attr().ino());
      break;
    case pb::Op::kMknod:
      AddName(c, op.mknod().parent(), op.mknod().name());
      break;
    case pb::Op::kCreate:
      AddName(c, op.create().parent(), op.create().name());
      break;
    case pb::Op::kMkdir:
      AddName(c, op.mkdir().parent(), op.mkdir().name());
      break;
    case pb::Op::kUnlink:
      AddName(c, op.unlink().parent(), op.unlink().name());
      break;
    case pb::Op::kRmdir:
      AddName(c, op.rmdir().parent(), op.rmdir().name());
      break;
    case pb::Op::kSymlink:
      AddName(c, op.symlink().parent(), op.symlink().name());
      break;
    case pb::Op::kLink:
      AddName(c, op.link().new_parent(), op.link().new_name());
      c.inodes.push_back(op.link().ino());
      break;
    case pb::Op::kRename:
      AddName(c, op.rename().parent(), op.rename().name());
      AddName(c, op.rename().new_parent(), op.rename().new_name());
      break;
    case pb::Op::kOpen:
      if (op.open().flags() & O_TRUNC) c.inodes.push_back(op.open().ino());
      break;
    case pb::Op::kSetXattr:
      c.inodes.push_back(op.set_xattr().ino());
      break;
    case pb::Op::kRemoveXattr:
      c.inodes.push_back(op.remove_xattr().ino());
      break;
    case pb::Op::kFallocate:
      c.inodes.push_back(op.fallocate().ino());
      break;
    case pb::Op::kCommitWrite:
      c.inodes.push_back(op.commit_write().ino());
      break;
    default:
      break;
  }
  return c;
}

void ChangeFeed::Publish(Change change) {
  if (change.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (Waiter* w : waiters_) {
    if (w->client_id != change.client_id || w->client_id == 0) {
      w->woken = true;
      w->cv.notify_one();
    }
  }
  changes_.push_back(std::move(change));
  if (changes_.size() > capacity_) {
    changes_.pop_front();
    ++first_;
  }
}

uint64_t ChangeFeed::End() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_ + changes_.size();
}

bool ChangeFeed::Next(uint64_t* cursor, uint64_t client_id, std::chrono::steady_clock::time_point deadline,
                      pb::ChangeNotices* out) {
  std::unique_lock<std::mutex> lock(mu_);
  if (CollectLocked(cursor, client_id, out)) return true;
  Waiter self{client_id, {}, false};
  waiters_.push_back(&self);
  self.cv.wait_until(lock, deadline, [&] { return self.woken; });
  std::erase(waiters_, &self);
  return CollectLocked(cursor, client_id, out);
}

bool ChangeFeed::CollectLocked(uint64_t* cursor, uint64_t client_id, pb::ChangeNotices* out) {
  bool any = false;
  if (*cursor < first_) {  // some were dropped: it must hear so
    out->set_missed(true);
    *cursor = first_;
    any = true;
  }
  for (size_t i = *cursor - first_; i < changes_.size(); ++i) {
    const Change& c = changes_[i];
    if (c.client_id == client_id && client_id != 0) continue;  // its own: skipped
    for (const pb::ChangedName& n : c.names) *out->add_names() = n;
    for (uint64_t ino : c.inodes) out->add_inodes(ino);
    any = true;
  }
  *cursor = first_ + changes_.size();
  return any;
}

}  // namespace dfs::meta
