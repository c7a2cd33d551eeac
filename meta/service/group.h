// Group: the metadata replication group as the MetaService sees it -
// whether this node may serve, who leads, and membership changes. meta/raft
// implements it; a service without one (unit tests, benchmarks) always
// serves.
//
// Thread-safety: every method from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace dfs::meta {

class Group {
 public:
  struct MemberView {
    uint64_t id = 0;
    std::string raft_address;
    std::string role;  // "leader", "follower", "candidate", "standby", "spare", "unreachable"
  };
  struct View {
    uint64_t self_id = 0;
    uint64_t leader_id = 0;  // 0: unknown
    std::string state;       // this node: "leader", "follower", "candidate", "unavailable"
    uint64_t term = 0;
    uint64_t commit_index = 0;
    uint64_t applied_index = 0;
    uint64_t last_index = 0;
    std::vector<MemberView> members;
  };

  virtual ~Group() = default;
  // The leader, caught up with the log and within its read lease: it may
  // answer reads and accept mutations. False on every other node.
  virtual bool Serving() const = 0;
  virtual View view() const = 0;
  // Membership changes (leader only); `done` runs once with the outcome, on
  // a thread that must not be blocked.
  virtual void AddMember(uint64_t id, std::string raft_address, std::function<void(common::Status)> done) = 0;
  virtual void RemoveMember(uint64_t id, std::function<void(common::Status)> done) = 0;
};

}  // namespace dfs::meta
