// Test helpers for the Raft adapter: Entries of real metadata Ops. Test-only.
#pragma once

#include <cstdint>
#include <string>

#include "proto/meta_entry.pb.h"

namespace dfs::meta::raft::testing {

// An Entry of `n` Ops: mkdirs named `prefix`-i in the root, each with an
// exactly-once id from `client`; every third also creates a file in it.
inline pb::Entry MkdirEntry(const std::string& prefix, int n, uint64_t client = 0, uint64_t* next_request = nullptr) {
  pb::Entry entry;
  entry.set_format(1);
  for (int i = 0; i < n; ++i) {
    pb::Op* op = entry.add_ops();
    op->set_now_ns(1'700'000'000'000'000'000 + i);
    if (client != 0 && next_request != nullptr) {
      op->set_client_id(client);
      op->set_request_id((*next_request)++);
    }
    auto* mkdir = op->mutable_mkdir();
    mkdir->set_parent(1);
    mkdir->set_name(prefix + "-" + std::to_string(i));
    mkdir->set_mode(0755);
  }
  return entry;
}

}  // namespace dfs::meta::raft::testing
