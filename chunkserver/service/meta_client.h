// MetaClient: a chunkserver's membership in the cluster. It registers with
// dfs-meta (Register, then the inventory as a ReportInventory stream of
// pages), heartbeats every interval (capacity, use, chunk count, newly
// damaged chunks, load) and executes the commands a heartbeat reply carries
// (delete a chunk: at once, on the heartbeat thread, so the next heartbeat
// acknowledges it; replicate one from a peer: on a worker thread).
//
// Meta may be unreachable or not yet able to answer: the client keeps the
// chunkserver serving and retries registration with exponential backoff
// (200 ms .. 5 s), logging once per change of state, never crashing. A reply
// with `reregister`, or a heartbeat refused as unknown, starts registration
// again.
//
// Threads: one heartbeat thread (registration + heartbeats) and one command
// thread, both started by Start and joined by Stop.
//
// Thread-safety: Start/Stop from the owning thread; the accessors from any.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <vector>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "chunkserver/store/chunk_store.h"
#include "common/leader_channel.h"
#include "common/result.h"
#include "common/thread_annotations.h"
#include "proto/meta.pb.h"

namespace dfs::chunkserver {

class MetaClient {
 public:
  struct Options {
    std::string meta_addresses;          // "host:port[,host:port...]"
    uint64_t node_id = 0;
    std::string advertise_address;       // our ChunkService address
    int64_t heartbeat_interval_ms = 1000;  // unless meta's RegisterReply says otherwise
    int64_t rpc_timeout_ms = 3000;
    size_t inventory_page_size = 1000;
    std::string software_version = "dfs-chunkserver 0.1.0";
    std::function<double()> load;        // optional: requests in flight / workers
    // Below this much room in its best data folder the node tells meta it
    // is short of room (chunkserver/store/room.h); 0: never.
    uint64_t min_free_bytes = 0;
  };

  MetaClient(ChunkStore& store, Options options);
  ~MetaClient();  // Stop()
  MetaClient(const MetaClient&) = delete;
  MetaClient& operator=(const MetaClient&) = delete;

  // Starts the threads. InvalidArgument if the meta addresses do not parse.
  common::Status Start();
  // Stops and joins the threads; an RPC in flight finishes first (bounded by
  // rpc_timeout_ms). Idempotent.
  void Stop();

  bool registered() const { return registered_.load(); }
  bool short_of_room() const { return short_of_room_.load(); }
  uint64_t heartbeats_sent() const { return heartbeats_.load(); }
  uint64_t commands_done() const { return commands_done_.load(); }

 private:
  void HeartbeatLoop();
  void CommandLoop();
  common::Status RegisterOnce();
  common::Status HeartbeatOnce(bool* reregister);
  void Execute(const pb::Command& command);
  // Waits up to `ms` or until Stop; false if stopping.
  bool SleepMs(int64_t ms);
  void LogState(const std::string& state, bool error);
  // The disks' usage for a Register or Heartbeat, and whether the node is
  // short of room (logged when that changes). Heartbeat thread only.
  std::vector<DiskStats> MeasureDisks(bool* short_of_room);

  ChunkStore& store_;
  const Options options_;
  std::unique_ptr<common::LeaderChannel> meta_;
  std::unique_ptr<common::LeaderChannel> inventory_meta_;  // longer deadline for big inventories
  std::atomic<bool> registered_{false};
  std::atomic<uint64_t> heartbeats_{0};
  std::atomic<uint64_t> commands_done_{0};
  std::atomic<int64_t> interval_ms_;
  std::string last_state_;  // heartbeat thread only
  std::atomic<bool> short_of_room_{false};  // written by the heartbeat thread only

  std::mutex mu_;  // guards the members below
  std::condition_variable cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::deque<pb::Command> queue_ GUARDED_BY(mu_);
  // Replicate commands that succeeded / failed, reported (and then forgotten)
  // by the next successful heartbeat: meta counts a replica only once told,
  // and plans a failed copy again at once.
  std::vector<pb::ChunkRef> replicated_ GUARDED_BY(mu_);
  std::vector<pb::ChunkRef> copy_failed_ GUARDED_BY(mu_);
  std::set<uint64_t> seen_commands_ GUARDED_BY(mu_);   // ids queued or done (bounded)
  std::deque<uint64_t> seen_order_ GUARDED_BY(mu_);
  std::thread heartbeat_thread_;
  std::thread command_thread_;
};

}  // namespace dfs::chunkserver
