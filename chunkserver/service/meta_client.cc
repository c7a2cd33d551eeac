#include "chunkserver/service/meta_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "chunkserver/service/replicator.h"
#include "chunkserver/store/room.h"
#include "common/grpc_status.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::chunkserver {

using common::Status;

namespace {

constexpr int64_t kBackoffInitialMs = 200;
constexpr int64_t kBackoffMaxMs = 5000;
constexpr size_t kMaxRememberedCommands = 10000;

// LeaderChannel hands an attempt its channel; stubs want a shared_ptr.
[[maybe_unused]] std::shared_ptr<grpc::Channel> SharedChannel(const std::shared_ptr<grpc::Channel>& channel) {
  return channel;
}
[[maybe_unused]] std::shared_ptr<grpc::Channel> SharedChannel(grpc::Channel& channel) {
  return std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {});
}

void FillDisks(const std::vector<DiskStats>& disks, google::protobuf::RepeatedPtrField<pb::DiskUsage>* out,
               uint64_t* capacity, uint64_t* used) {
  for (const DiskStats& d : disks) {
    pb::DiskUsage* u = out->Add();
    u->set_path(d.path);
    u->set_capacity_bytes(d.capacity_bytes);
    u->set_used_bytes(d.used_bytes);
    u->set_healthy(d.healthy);
    *capacity += d.capacity_bytes;
    *used += d.used_bytes;
  }
}

void FillRef(const ChunkMeta& m, pb::ChunkRef* out) {
  out->set_chunk_id(m.chunk_id);
  out->set_version(m.version);
  out->set_length(m.length);
  out->set_damaged(m.damaged);
}

}  // namespace

MetaClient::MetaClient(ChunkStore& store, Options options)
    : store_(store), options_(std::move(options)), interval_ms_(options_.heartbeat_interval_ms) {}

MetaClient::~MetaClient() { Stop(); }

Status MetaClient::Start() {
  common::LeaderChannel::Options lc;
  lc.attempt_timeout_ms = options_.rpc_timeout_ms;
  lc.total_timeout_ms = options_.rpc_timeout_ms;
  ASSIGN_OR_RETURN(meta_, common::LeaderChannel::Create(options_.meta_addresses, lc));
  lc.attempt_timeout_ms = std::max<int64_t>(options_.rpc_timeout_ms, 60'000);
  lc.total_timeout_ms = lc.attempt_timeout_ms;
  ASSIGN_OR_RETURN(inventory_meta_, common::LeaderChannel::Create(options_.meta_addresses, lc));
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
  command_thread_ = std::thread([this] { CommandLoop(); });
  return Status::Ok();
}

void MetaClient::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  if (command_thread_.joinable()) command_thread_.join();
}

bool MetaClient::SleepMs(int64_t ms) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(ms), [this]() REQUIRES(mu_) { return stopping_; });
  return !stopping_;
}

void MetaClient::LogState(const std::string& state, bool error) {
  if (state == last_state_) {
    spdlog::debug("meta: {}", state);
    return;
  }
  last_state_ = state;
  if (error) {
    spdlog::warn("meta: {}", state);
  } else {
    spdlog::info("meta: {}", state);
  }
}

void MetaClient::HeartbeatLoop() {
  int64_t backoff_ms = kBackoffInitialMs;
  while (true) {
    if (!registered_) {
      Status s = RegisterOnce();
      if (!s.ok()) {
        // Log per kind of failure, not per attempt.
        LogState(fmt::format("registration failing ({}); retrying with backoff", common::StatusCodeName(s.code())),
                 true);
        spdlog::debug("meta: register: {}", s.ToString());
        if (!SleepMs(backoff_ms)) return;
        backoff_ms = std::min(backoff_ms * 2, kBackoffMaxMs);
        continue;
      }
      registered_ = true;
      backoff_ms = kBackoffInitialMs;
      LogState(fmt::format("registered as node {:016x} via {}", options_.node_id, meta_->current_leader()), false);
    }
    if (!SleepMs(interval_ms_.load())) return;
    bool reregister = false;
    Status s = HeartbeatOnce(&reregister);
    if (reregister) {
      registered_ = false;
      LogState("meta asked to register again", false);
      continue;
    }
    if (!s.ok()) {
      LogState(fmt::format("heartbeats failing ({})", common::StatusCodeName(s.code())), true);
      spdlog::debug("meta: heartbeat: {}", s.ToString());
    } else {
      LogState("heartbeating", false);
    }
  }
}

std::vector<DiskStats> MetaClient::MeasureDisks(bool* short_of_room) {
  std::vector<DiskStats> disks = store_.Disks();
  const bool was = short_of_room_.load();
  *short_of_room = ShortOfRoom(was, disks, options_.min_free_bytes);
  if (*short_of_room != was) {
    uint64_t best = 0;
    for (const DiskStats& d : disks) best = d.healthy ? std::max(best, d.available_bytes) : best;
    if (*short_of_room) {
      spdlog::warn("data folders short of room: {} MiB free at best, under --min-free-space {} MiB; meta places "
                   "new chunks elsewhere while it can",
                   best >> 20, options_.min_free_bytes >> 20);
    } else {
      spdlog::info("data folders have room again: {} MiB free at best", best >> 20);
    }
    short_of_room_ = *short_of_room;
  }
  return disks;
}

Status MetaClient::RegisterOnce() {
  pb::RegisterRequest request;
  request.set_node_id(options_.node_id);
  request.set_address(options_.advertise_address);
  request.set_version(options_.software_version);
  uint64_t capacity = 0;
  uint64_t used = 0;
  bool full = false;
  FillDisks(MeasureDisks(&full), request.mutable_disks(), &capacity, &used);
  request.set_full(full);
  pb::RegisterReply reply;
  grpc::Status rpc = meta_->Call([&](auto& channel, grpc::ClientContext& context) {
    auto stub = pb::MetaService::NewStub(SharedChannel(channel));
    return stub->Register(&context, request, &reply);
  });
  if (!rpc.ok()) return common::FromGrpcStatus(rpc).WithContext("Register");
  RETURN_IF_ERROR(common::FromFsStatus(reply.status()).WithContext("Register"));
  if (reply.heartbeat_interval_ms() > 0) interval_ms_ = reply.heartbeat_interval_ms();

  // The inventory, in pages; the whole stream is retried on another leader.
  std::vector<ChunkMeta> chunks = store_.List();
  pb::InventoryReply inventory_reply;
  rpc = inventory_meta_->Call([&](auto& channel, grpc::ClientContext& context) {
    auto stub = pb::MetaService::NewStub(SharedChannel(channel));
    auto writer = stub->ReportInventory(&context, &inventory_reply);
    pb::InventoryPage page;
    size_t i = 0;
    do {
      page.Clear();
      page.set_node_id(options_.node_id);
      for (size_t n = 0; n < options_.inventory_page_size && i < chunks.size(); ++n, ++i) {
        FillRef(chunks[i], page.add_chunks());
      }
      page.set_last(i >= chunks.size());
      if (!writer->Write(page)) break;
    } while (i < chunks.size());
    writer->WritesDone();
    return writer->Finish();
  });
  if (!rpc.ok()) return common::FromGrpcStatus(rpc).WithContext("ReportInventory");
  RETURN_IF_ERROR(common::FromFsStatus(inventory_reply.status()).WithContext("ReportInventory"));
  spdlog::info("meta: reported an inventory of {} chunk versions", chunks.size());
  return Status::Ok();
}

Status MetaClient::HeartbeatOnce(bool* reregister) {
  pb::HeartbeatRequest request;
  request.set_node_id(options_.node_id);
  uint64_t capacity = 0;
  uint64_t used = 0;
  bool full = false;
  FillDisks(MeasureDisks(&full), request.mutable_disks(), &capacity, &used);
  request.set_capacity_bytes(capacity);
  request.set_used_bytes(used);
  request.set_full(full);
  request.set_chunk_count(store_.chunk_count());
  request.set_damaged_count(store_.damaged_count());
  request.set_load(options_.load ? options_.load() : 0.0);
  std::vector<ChunkMeta> damaged = store_.TakeNewlyDamaged();
  for (const ChunkMeta& m : damaged) FillRef(m, request.add_damaged());
  std::vector<pb::ChunkRef> replicated;
  std::vector<pb::ChunkRef> copy_failed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    replicated.swap(replicated_);
    copy_failed.swap(copy_failed_);
  }
  for (const pb::ChunkRef& ref : replicated) *request.add_replicated() = ref;
  for (const pb::ChunkRef& ref : copy_failed) *request.add_copy_failed() = ref;
  // Reports that did not reach meta go out with the next heartbeat.
  auto give_back_replicated = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    replicated_.insert(replicated_.end(), replicated.begin(), replicated.end());
    copy_failed_.insert(copy_failed_.end(), copy_failed.begin(), copy_failed.end());
  };
  pb::HeartbeatReply reply;
  grpc::Status rpc = meta_->Call([&](auto& channel, grpc::ClientContext& context) {
    auto stub = pb::MetaService::NewStub(SharedChannel(channel));
    return stub->Heartbeat(&context, request, &reply);
  });
  ++heartbeats_;
  if (!rpc.ok()) {
    store_.GiveBackDamaged(damaged);
    give_back_replicated();
    Status s = common::FromGrpcStatus(rpc);
    // Meta does not know us (or cannot take heartbeats): register again.
    if (s.code() == common::StatusCode::kNotFound || s.code() == common::StatusCode::kFailedPrecondition ||
        s.code() == common::StatusCode::kUnimplemented) {
      *reregister = true;
    }
    return s.WithContext("Heartbeat");
  }
  Status fs = common::FromFsStatus(reply.status());
  if (!fs.ok()) {
    store_.GiveBackDamaged(damaged);
    give_back_replicated();
    *reregister = true;
    return fs.WithContext("Heartbeat");
  }
  if (reply.reregister()) *reregister = true;
  if (reply.commands_size() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const pb::Command& command : reply.commands()) {
      // A repeated copy command is dropped (it may still be running).
      // Deletes are idempotent and always run: meta numbers them by garbage
      // row, and a number can come back once its row is gone.
      const bool dedup = command.command_id() != 0 && !command.has_delete_chunk();
      if (dedup && !seen_commands_.insert(command.command_id()).second) continue;
      if (dedup) {
        seen_order_.push_back(command.command_id());
        if (seen_order_.size() > kMaxRememberedCommands) {
          seen_commands_.erase(seen_order_.front());
          seen_order_.pop_front();
        }
      }
      queue_.push_back(command);
    }
  }
  // Deletes run here, before the next heartbeat (meta takes that heartbeat
  // as the acknowledgement); replications go to the command thread.
  std::vector<pb::Command> deletes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->has_delete_chunk()) {
        deletes.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  cv_.notify_all();
  for (const pb::Command& command : deletes) {
    Execute(command);
    ++commands_done_;
  }
  return Status::Ok();
}

void MetaClient::CommandLoop() {
  while (true) {
    pb::Command command;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      command = std::move(queue_.front());
      queue_.pop_front();
    }
    Execute(command);
    ++commands_done_;
  }
}

void MetaClient::Execute(const pb::Command& command) {
  if (command.has_delete_chunk()) {
    const auto& d = command.delete_chunk();
    auto freed = store_.Delete(d.chunk_id(), d.version());
    if (freed.ok()) {
      spdlog::info("command {}: deleted chunk {:016x} version {} ({} bytes)", command.command_id(), d.chunk_id(),
                   d.version(), *freed);
    } else {
      spdlog::warn("command {}: delete chunk {:016x}: {}", command.command_id(), d.chunk_id(),
                   freed.status().ToString());
    }
  } else if (command.has_replicate()) {
    const auto& r = command.replicate();
    ReplicateSpec spec;
    spec.chunk_id = r.chunk_id();
    spec.version = r.version();
    spec.source_address = r.source_address();
    spec.bandwidth_limit_bytes_per_s = r.bandwidth_limit_bytes_per_s();
    auto length = ReplicateChunk(store_, spec);
    pb::ChunkRef ref;
    ref.set_chunk_id(r.chunk_id());
    ref.set_version(r.version());
    if (length.ok()) {
      spdlog::info("command {}: replicated chunk {:016x} version {} ({} bytes) from {}", command.command_id(),
                   r.chunk_id(), r.version(), *length, r.source_address());
      ref.set_length(*length);
      std::lock_guard<std::mutex> lock(mu_);
      replicated_.push_back(std::move(ref));
    } else {
      spdlog::warn("command {}: replicate chunk {:016x} from {}: {}", command.command_id(), r.chunk_id(),
                   r.source_address(), length.status().ToString());
      // Told at once, meta plans the copy again (or drops it) instead of
      // waiting out its claim's deadline.
      std::lock_guard<std::mutex> lock(mu_);
      copy_failed_.push_back(std::move(ref));
    }
  } else {
    spdlog::warn("command {}: unknown command ignored", command.command_id());
  }
}

}  // namespace dfs::chunkserver
