#include "meta/raft/append_fixes.h"

#include <algorithm>
#include <cstring>

namespace dfs::meta::raft {

namespace {

// Received entries either share one batch buffer or own their buffers.
void FreeEntries(raft_entry* entries, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) {
    if (entries[i].batch == nullptr) raft_free(entries[i].buf.base);
  }
}

}  // namespace

bool FixIncomingAppend(raft_append_entries* append, const LocalSnapshot& snapshot) {
  bool changed = false;
  if (snapshot.index > 0 && append->prev_log_index < snapshot.index) {
    const raft_index skip = snapshot.index - append->prev_log_index;
    if (append->n_entries > skip) {
      append->prev_log_term = append->entries[skip - 1].term;
      FreeEntries(append->entries, 0, skip);
      std::memmove(append->entries, append->entries + skip, (append->n_entries - skip) * sizeof(raft_entry));
      append->n_entries -= static_cast<unsigned>(skip);
    } else {
      if (append->entries != nullptr) {
        void* batch = append->n_entries > 0 ? append->entries[0].batch : nullptr;
        FreeEntries(append->entries, 0, append->n_entries);
        if (batch != nullptr) raft_free(batch);
        raft_free(append->entries);
      }
      append->entries = nullptr;
      append->n_entries = 0;
      append->prev_log_term = snapshot.term;
    }
    append->prev_log_index = snapshot.index;
    changed = true;
  }
  const raft_index vouched = VouchedThrough(*append);
  if (append->leader_commit > vouched) {
    append->leader_commit = vouched;
    changed = true;
  }
  return changed;
}

bool FixAppendResult(raft_append_entries_result* result, raft_index vouched_through) {
  if (result->rejected != 0 || result->last_log_index <= vouched_through) return false;
  result->last_log_index = vouched_through;
  return true;
}

}  // namespace dfs::meta::raft
