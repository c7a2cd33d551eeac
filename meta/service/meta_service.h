// MetaServiceImpl: the gRPC face of dfs-meta (proto/meta.proto). Handlers are
// thin: they reject malformed requests with INVALID_ARGUMENT, turn mutations
// into Ops stamped with the leader's time (and placement, lease expiry),
// propose them and copy the OpResult into the reply; reads go straight to the
// StateMachine. Filesystem outcomes travel in the reply's FsStatus.
//
// Ownership: borrows the StateMachine, Proposer, Clock and ClusterState; all
// must outlive it. Thread-safety: handlers run on gRPC's threads
// concurrently; Housekeeping on the daemon's housekeeping thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/admission.h"
#include "common/clock.h"
#include "common/grpc_metrics.h"
#include "common/grpc_status.h"
#include "meta/service/carried.h"
#include "meta/service/change_feed.h"
#include "meta/service/cluster_state.h"
#include "meta/service/disk_guard.h"
#include "meta/service/group.h"
#include "meta/service/member_rooms.h"
#include "meta/service/proposer.h"
#include "meta/service/read_pins.h"
#include "meta/service/wanted_chunks.h"
#include "meta/state_machine/state_machine.h"
#include "proto/meta.grpc.pb.h"

namespace dfs::meta {

// The hot methods use gRPC's callback API: reads answer on gRPC's own thread,
// mutations are finished by the proposer's callback (no thread parked per
// pending mutation, no extra hand-offs). The rest are synchronous.
using MetaServiceBase =
    pb::MetaService::WithCallbackMethod_Lookup<pb::MetaService::WithCallbackMethod_GetAttr<pb::MetaService::WithCallbackMethod_SetAttr<pb::MetaService::WithCallbackMethod_Mknod<pb::MetaService::WithCallbackMethod_Create<pb::MetaService::WithCallbackMethod_Mkdir<pb::MetaService::WithCallbackMethod_Unlink<pb::MetaService::WithCallbackMethod_Rmdir<pb::MetaService::WithCallbackMethod_Symlink<pb::MetaService::WithCallbackMethod_Readlink<pb::MetaService::WithCallbackMethod_Link<pb::MetaService::WithCallbackMethod_Rename<pb::MetaService::WithCallbackMethod_ReadDir<pb::MetaService::WithCallbackMethod_ReadDirPlus<pb::MetaService::WithCallbackMethod_Open<pb::MetaService::WithCallbackMethod_Release<pb::MetaService::WithCallbackMethod_Access<pb::MetaService::WithCallbackMethod_GetChunkLocations<pb::MetaService::WithCallbackMethod_LeaseChunk<pb::MetaService::WithCallbackMethod_CommitWrite<pb::MetaService::Service>>>>>>>>>>>>>>>>>>>>;

struct MetaServiceOptions {
  uint32_t replicas = 3;                // R for new chunks (capped by live nodes)
  int64_t chunk_lease_ms = 60'000;      // write lease lifetime
  uint32_t session_lease_ms = 30'000;   // client must KeepAlive within this
  uint32_t heartbeat_interval_ms = 1'000;
  size_t gc_batch = 256;                // Delete commands per heartbeat reply
  size_t max_repairs = 16;              // copies (repairs and moves) in flight at once
  size_t max_moves = 4;                 // rebalancing copies among them (0: no rebalancing)
  size_t max_trims = 32;                // surplus copies dropped per housekeeping pass
  size_t repair_scan = 10'000;          // chunks examined per housekeeping pass
  int64_t repair_timeout_ms = 120'000;  // a copy not reported by then is tried again
  uint64_t repair_bandwidth = 0;        // bytes/s per copy (0: unlimited)
  std::string cluster_key;              // signs write tokens
  // Mounts are told to keep files up to this size in meta's database
  // (OpenSessionReply.inline_max_bytes; 0: none). Apply takes any up to
  // common::kMaxInlineBytes: a mount told more by an earlier leader with
  // another setting still commits, rather than fail a close.
  uint64_t inline_max_bytes = 0;
  // Calls streams open at once (each holds one of gRPC's sync threads,
  // 512 in all: KeepAlive, Statfs and the chunkservers' heartbeats must
  // always find one). Beyond, mounts use unary calls; 0: streams off.
  int max_call_streams = 256;
  // Watch calls open at once (one per mount; each holds a sync thread too).
  // Beyond, a mount goes without notices and its timeouts alone bound what
  // it may show stale.
  int max_watchers = 128;
  // The data folder and the room kept in it (DiskGuard; 0: not guarded).
  std::string data_dir;
  uint64_t min_free_bytes = 0;
  // Who may call (client secret, mutual TLS) and per-client-host request
  // rates; admission.auth.cluster_key is set from cluster_key.
  common::Admission::Options admission;
  // The Raft group this node belongs to (borrowed); null: a lone node that
  // always serves (unit tests, benchmarks).
  Group* group = nullptr;
  uint64_t raft_id = 0;         // this node's id in `group`
  std::string raft_address;     // this node's Raft address
};

class MetaServiceImpl final : public MetaServiceBase {
 public:
  MetaServiceImpl(StateMachine* state_machine, Proposer* proposer, common::Clock& clock, ClusterState* cluster,
                  MetaServiceOptions options);

  // This member's data folder, as housekeeping last measured it.
  const DiskGuard& disk_guard() const { return disk_guard_; }
  // On the serving leader: expires silent chunkservers (in memory) and
  // sessions (through an ExpireSessionsOp, waiting for it to apply), and
  // makes sure the members table holds this node's address. No-op elsewhere.
  void Housekeeping();
  // The cluster half of ClusterStatus (chunkservers, file, chunk and
  // placement counts: a full scan of the chunks); false unless this node
  // serves. For the status RPC and the metrics.
  bool ClusterCounts(pb::ClusterStatusReply* out);
  // Called by the group when this node has just become the leader, before
  // it serves: applies the --replicas flag to the root, takes over the
  // chunkservers and sessions the replicated state knows (each with a fresh
  // grace period, as after a restart) and publishes this node's address.
  // Does not block on the group.
  void BecameLeader();
  // Whether this node answers clients now (the serving leader, or a lone
  // node without a group).
  bool Serving() const { return options_.group == nullptr || options_.group->Serving(); }
  // Where the messages of Calls streams are counted, each as its method's
  // unary call (borrowed; set before the server starts; null: nowhere).
  void SetCallMetrics(common::GrpcCallMetrics* metrics) { call_metrics_ = metrics; }
  // Calls streams open now, and the calls answered on them so far.
  struct CallStreamCounts {
    int open = 0;
    uint64_t calls = 0;
  };
  CallStreamCounts call_stream_counts() const { return {open_call_streams_.load(), stream_calls_.load()}; }
  // The MetaService address clients reach this node at (known once gRPC has
  // bound its port); followers hand it out as the leader hint.
  void SetRpcAddress(const std::string& address);
  // Proposes `op` stamped with now and waits for its result. Unavailable if
  // the proposer stopped.
  common::Result<pb::OpResult> Submit(pb::Op op);

  using Ctx = grpc::ServerContext;
  using CbCtx = grpc::CallbackServerContext;
  // Where a handler body's outcome goes: a unary callback RPC or a message
  // of a Calls stream. Done is called once, on any thread (a mutation's on
  // the applier's); `leader`, with UNAVAILABLE, names the leader if known.
  class Answer {
   public:
    virtual ~Answer() = default;
    virtual void Done(const grpc::Status& status, const std::string& leader = {}) = 0;
  };
  grpc::ServerUnaryReactor* Lookup(CbCtx*, const pb::LookupRequest*, pb::EntryReply*) override;
  grpc::ServerUnaryReactor* GetAttr(CbCtx*, const pb::GetAttrRequest*, pb::AttrReply*) override;
  // Lookups and getattrs on one stream (pb::MetaCall). Synchronous: each
  // open stream holds one of gRPC's sync threads while it lives (a
  // blocked Read answers the next message at once, where the callback API
  // measured ~25% slower here), so at most options.max_call_streams are open;
  // beyond, RESOURCE_EXHAUSTED and clients use unary calls.
  grpc::Status Calls(Ctx*, grpc::ServerReaderWriter<pb::MetaReturn, pb::MetaCall>* stream) override;
  grpc::ServerUnaryReactor* SetAttr(CbCtx*, const pb::SetAttrRequest*, pb::AttrReply*) override;
  grpc::ServerUnaryReactor* Mknod(CbCtx*, const pb::MknodRequest*, pb::EntryReply*) override;
  grpc::ServerUnaryReactor* Create(CbCtx*, const pb::CreateRequest*, pb::CreateReply*) override;
  grpc::ServerUnaryReactor* Mkdir(CbCtx*, const pb::MkdirRequest*, pb::EntryReply*) override;
  grpc::ServerUnaryReactor* Unlink(CbCtx*, const pb::UnlinkRequest*, pb::StatusReply*) override;
  grpc::ServerUnaryReactor* Rmdir(CbCtx*, const pb::RmdirRequest*, pb::StatusReply*) override;
  grpc::ServerUnaryReactor* Symlink(CbCtx*, const pb::SymlinkRequest*, pb::EntryReply*) override;
  grpc::ServerUnaryReactor* Readlink(CbCtx*, const pb::ReadlinkRequest*, pb::ReadlinkReply*) override;
  grpc::ServerUnaryReactor* Link(CbCtx*, const pb::LinkRequest*, pb::EntryReply*) override;
  grpc::ServerUnaryReactor* Rename(CbCtx*, const pb::RenameRequest*, pb::StatusReply*) override;
  grpc::ServerUnaryReactor* ReadDir(CbCtx*, const pb::ReadDirRequest*, pb::ReadDirReply*) override;
  grpc::ServerUnaryReactor* ReadDirPlus(CbCtx*, const pb::ReadDirRequest*, pb::ReadDirReply*) override;
  grpc::ServerUnaryReactor* Open(CbCtx*, const pb::OpenRequest*, pb::OpenReply*) override;
  grpc::ServerUnaryReactor* Release(CbCtx*, const pb::ReleaseRequest*, pb::StatusReply*) override;
  grpc::Status Statfs(Ctx*, const pb::StatfsRequest*, pb::StatfsReply*) override;
  grpc::Status SetXattr(Ctx*, const pb::SetXattrRequest*, pb::StatusReply*) override;
  grpc::Status GetXattr(Ctx*, const pb::GetXattrRequest*, pb::GetXattrReply*) override;
  grpc::Status ListXattr(Ctx*, const pb::ListXattrRequest*, pb::ListXattrReply*) override;
  grpc::Status RemoveXattr(Ctx*, const pb::RemoveXattrRequest*, pb::StatusReply*) override;
  grpc::ServerUnaryReactor* Access(CbCtx*, const pb::AccessRequest*, pb::StatusReply*) override;
  grpc::Status Fallocate(Ctx*, const pb::FallocateRequest*, pb::AttrReply*) override;
  grpc::Status SetLock(Ctx*, const pb::SetLockRequest*, pb::AttrReply*) override;
  grpc::Status GetLock(Ctx*, const pb::GetLockRequest*, pb::GetLockReply*) override;
  // Synchronous: each watching mount holds one of gRPC's sync threads, as
  // a Calls stream does; at most options.max_watchers at once.
  grpc::Status Watch(Ctx*, const pb::WatchRequest*, grpc::ServerWriter<pb::ChangeNotices>* writer) override;

  grpc::Status OpenSession(Ctx*, const pb::OpenSessionRequest*, pb::OpenSessionReply*) override;
  grpc::Status KeepAlive(Ctx*, const pb::KeepAliveRequest*, pb::KeepAliveReply*) override;
  grpc::Status CloseSession(Ctx*, const pb::CloseSessionRequest*, pb::StatusReply*) override;

  grpc::ServerUnaryReactor* GetChunkLocations(CbCtx*, const pb::GetChunkLocationsRequest*, pb::GetChunkLocationsReply*) override;
  grpc::ServerUnaryReactor* LeaseChunk(CbCtx*, const pb::LeaseChunkRequest*, pb::LeaseChunkReply*) override;
  grpc::ServerUnaryReactor* CommitWrite(CbCtx*, const pb::CommitWriteRequest*, pb::AttrReply*) override;
  grpc::Status ReportBadReplica(Ctx*, const pb::ReportBadReplicaRequest*, pb::StatusReply*) override;

  grpc::Status Register(Ctx*, const pb::RegisterRequest*, pb::RegisterReply*) override;
  grpc::Status ReportInventory(Ctx*, grpc::ServerReader<pb::InventoryPage>*, pb::InventoryReply*) override;
  grpc::Status Heartbeat(Ctx*, const pb::HeartbeatRequest*, pb::HeartbeatReply*) override;

  grpc::Status ClusterStatus(Ctx*, const pb::ClusterStatusRequest*, pb::ClusterStatusReply*) override;
  grpc::Status ListNodes(Ctx*, const pb::ListNodesRequest*, pb::ListNodesReply*) override;
  grpc::Status DrainNode(Ctx*, const pb::DrainNodeRequest*, pb::StatusReply*) override;
  grpc::Status SetNodeWeight(Ctx*, const pb::SetNodeWeightRequest*, pb::StatusReply*) override;
  grpc::Status SetReplication(Ctx*, const pb::SetReplicationRequest*, pb::StatusReply*) override;
  grpc::Status AddMember(Ctx*, const pb::AddMemberRequest*, pb::MembershipReply*) override;
  grpc::Status RemoveMember(Ctx*, const pb::RemoveMemberRequest*, pb::MembershipReply*) override;
  grpc::Status PublishMember(Ctx*, const pb::PublishMemberRequest*, pb::StatusReply*) override;
  grpc::Status ReportRoom(Ctx*, const pb::ReportRoomRequest*, pb::StatusReply*) override;

 private:
  // The start of every handler: admits the caller for `needed`
  // (common/admission.h: UNAUTHENTICATED, PERMISSION_DENIED or a rate
  // limit's RESOURCE_EXHAUSTED), then CheckServing.
  grpc::Status Admit(grpc::ServerContextBase* ctx, common::Role needed = common::Role::kClient);
  // OK if this node serves; otherwise UNAVAILABLE, with the leader's
  // address in the "dfs-leader" trailing metadata when it is known.
  grpc::Status CheckServing(grpc::ServerContextBase* ctx);
  // CheckServing's verdict, with the leader's address (when known) in
  // *leader rather than in trailing metadata.
  grpc::Status ServingStatus(std::string* leader);
  // One call of a Calls stream from `peer`: admitted against the rate (the
  // stream was authorized when it opened), checked like its unary twin,
  // answered into *ret.
  void AnswerCall(const std::string& peer, const pb::MetaCall& call, pb::MetaReturn* ret);
  // Proposes SetMember for this node unless the members table has it.
  void PublishSelf();
  // On a follower, each housekeeping pass: asks the leader (PublishMember)
  // to record this node unless the members table has it, at most every
  // kPublishRetryNs, and tells it the data folder's room (ReportRoom) every
  // kReportRoomNs.
  void TellLeader();
  // The voting members' ids (the group's view), this node's among them.
  std::vector<uint64_t> Voters() const;
  // Whether the members table has this node at `rpc_address` as it is now.
  bool Published(const std::string& rpc_address);
  // One pass of placement upkeep (placement_plan.h) over the next
  // repair_scan chunks: Replicate commands for the most endangered
  // under-replicated chunks first (fewest live copies), then for misplaced
  // ones (within max_moves), all within max_repairs; surplus copies trimmed
  // through the log (within max_trims).
  void Reconcile();
  // Frees the orphans no client may still read (read_pins.h).
  void FreeOrphans();
  // Counts over every chunk, for status: under-replicated, misplaced, with
  // a surplus copy.
  struct PlacementCounts {
    uint64_t under = 0, misplaced = 0, surplus = 0;
  };
  PlacementCounts CountPlacement();
  std::vector<uint64_t> LiveNodes();
  // A new Op carrying the request's exactly-once ids.
  static pb::Op NewOp(const pb::RequestContext& ctx);
  // Stamps the time and the apply rules this leader follows (the Op's
  // rule flags: entries from before a rule replay without it).
  void StampRules(pb::Op& op) const;
  // The DiskGuard's verdict on `op`, except that a retry of a request
  // already applied goes through (it answers its first result, adding
  // nothing).
  common::Status CheckRoom(const pb::Op& op);
  // Submit, mapping a proposer failure and a refusal of the DiskGuard to a
  // gRPC status.
  grpc::Status Run(pb::Op op, pb::OpResult* result);
  // Adds where chunk 0 is to an open's reply when the request wants it
  // (OpenRequest.want_first_chunk) and the open succeeded on a regular file.
  void FillFirstChunk(const pb::OpenRequest& req, pb::OpenReply* reply);
  // Finishes a callback RPC at once.
  static grpc::ServerUnaryReactor* Finish(CbCtx* ctx, const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  class UnaryAnswer final : public Answer {
   public:
    explicit UnaryAnswer(CbCtx* ctx) : ctx_(ctx), reactor_(ctx->DefaultReactor()) {}
    grpc::ServerUnaryReactor* reactor() const { return reactor_; }
    // Finishes the RPC (the leader in trailing metadata) and deletes this.
    void Done(const grpc::Status& status, const std::string& leader) override {
      if (!leader.empty()) ctx_->AddTrailingMetadata(common::kLeaderHintKey, leader);
      reactor_->Finish(status);
      delete this;
    }

   private:
    CbCtx* const ctx_;
    grpc::ServerUnaryReactor* const reactor_;
  };
  // A handler body: checks `req`, answers it into `reply` (at once, or
  // once its Op applies) and then calls answer->Done.
  template <typename Req, typename Reply>
  using Body = void (MetaServiceImpl::*)(const Req* req, Reply* reply, Answer* answer);
  // A unary callback RPC: Admit, then `body`.
  template <typename Req, typename Reply>
  grpc::ServerUnaryReactor* Unary(CbCtx* cb, const Req* req, Reply* reply, Body<Req, Reply> body) {
    if (grpc::Status s = Admit(cb); !s.ok()) return Finish(cb, s);
    auto* answer = new UnaryAnswer(cb);
    grpc::ServerUnaryReactor* reactor = answer->reactor();  // `answer` may be gone once body returns
    (this->*body)(req, reply, answer);
    return reactor;
  }
  // A message of a Calls stream: `body`, waited for on this thread.
  // Returns its status, and the leader hint in *leader.
  template <typename Req, typename Reply>
  grpc::Status Streamed(const Req& req, Reply* reply, Body<Req, Reply> body, std::string* leader);

  // Proposes `op` stamped with now; when applied, `fill(result)` fills the
  // reply and the call is answered (on the applier thread). A DiskGuard
  // refusal fails the whole call (RESOURCE_EXHAUSTED), so that the releases
  // and attribute changes the request carried ride with the client's next
  // one.
  template <typename Fill>
  void Mutate(Answer* answer, pb::Op op, Fill fill) {
    if (common::Status room = CheckRoom(op); !room.ok()) return answer->Done(common::ToGrpcStatus(room));
    if (common::Status carried = HoistCarried(&op); !carried.ok()) {
      return answer->Done(common::ToGrpcStatus(carried));
    }
    StampRules(op);
    Change change = ChangeOf(op);
    proposer_->ProposeAsync(std::move(op), [this, answer, change = std::move(change),
                                            fill = std::move(fill)](common::Result<pb::OpResult> result) {
      if (!result.ok()) {
        // Leadership moved while the Op waited: point the client onward.
        std::string leader;
        grpc::Status status = ServingStatus(&leader);
        answer->Done(status.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(result.status().message()))
                                 : status,
                     leader);
        return;
      }
      changes_.Publish(change);  // before the answer: watchers hear of it no later than need be
      fill(*result);
      answer->Done(grpc::Status::OK);
    });
  }
  void DoLookup(const pb::LookupRequest* req, pb::EntryReply* reply, Answer* answer);
  void DoGetAttr(const pb::GetAttrRequest* req, pb::AttrReply* reply, Answer* answer);
  void DoSetAttr(const pb::SetAttrRequest* req, pb::AttrReply* reply, Answer* answer);
  void DoMknod(const pb::MknodRequest* req, pb::EntryReply* reply, Answer* answer);
  void DoCreate(const pb::CreateRequest* req, pb::CreateReply* reply, Answer* answer);
  void DoMkdir(const pb::MkdirRequest* req, pb::EntryReply* reply, Answer* answer);
  void DoUnlink(const pb::UnlinkRequest* req, pb::StatusReply* reply, Answer* answer);
  void DoRmdir(const pb::RmdirRequest* req, pb::StatusReply* reply, Answer* answer);
  void DoSymlink(const pb::SymlinkRequest* req, pb::EntryReply* reply, Answer* answer);
  void DoReadlink(const pb::ReadlinkRequest* req, pb::ReadlinkReply* reply, Answer* answer);
  void DoLink(const pb::LinkRequest* req, pb::EntryReply* reply, Answer* answer);
  void DoRename(const pb::RenameRequest* req, pb::StatusReply* reply, Answer* answer);
  void DoReadDir(const pb::ReadDirRequest* req, pb::ReadDirReply* reply, Answer* answer);
  void DoReadDirPlus(const pb::ReadDirRequest* req, pb::ReadDirReply* reply, Answer* answer);
  void DoOpen(const pb::OpenRequest* req, pb::OpenReply* reply, Answer* answer);
  void DoRelease(const pb::ReleaseRequest* req, pb::StatusReply* reply, Answer* answer);
  void DoAccess(const pb::AccessRequest* req, pb::StatusReply* reply, Answer* answer);
  void DoGetChunkLocations(const pb::GetChunkLocationsRequest* req, pb::GetChunkLocationsReply* reply, Answer* answer);
  void DoLeaseChunk(const pb::LeaseChunkRequest* req, pb::LeaseChunkReply* reply, Answer* answer);
  void DoCommitWrite(const pb::CommitWriteRequest* req, pb::AttrReply* reply, Answer* answer);
  void FillNodeStatus(pb::NodeStatus* out, uint64_t node_id, const ClusterState::Node* live,
                      const StateMachine::NodeRow* row);

  StateMachine* const state_machine_;
  Proposer* const proposer_;
  common::Clock& clock_;
  ClusterState* const cluster_;
  const MetaServiceOptions options_;
  DiskGuard disk_guard_{options_.data_dir, options_.min_free_bytes};
  common::Admission admission_;
  ReadPins read_pins_;
  // Chunks another writer was just refused a lease on (wanted_chunks.h).
  WantedChunks wanted_chunks_{3'000};
  // Calls streams open now, at most options_.max_call_streams.
  std::atomic<int> open_call_streams_{0};
  std::atomic<uint64_t> stream_calls_{0};
  // What applied mutations changed, for Watch; and the watchers open now.
  ChangeFeed changes_;
  std::atomic<int> watchers_{0};
  common::GrpcCallMetrics* call_metrics_ = nullptr;
  std::mutex self_mu_;          // guards rpc_address_; leaf lock
  std::string rpc_address_;
  uint64_t repair_cursor_ = 0;  // housekeeping thread only
  // TellLeader's state (housekeeping thread only): its last tries, its last
  // failure (logged once), and a channel to the leader it last told.
  int64_t last_publish_ns_ = 0;
  int64_t last_room_report_ns_ = 0;
  std::string last_tell_error_;
  std::string leader_channel_address_;
  std::shared_ptr<grpc::Channel> leader_channel_;
  static constexpr int64_t kPublishRetryNs = int64_t{5} * 1'000'000'000;
  static constexpr int64_t kReportRoomNs = int64_t{2} * 1'000'000'000;
  MemberRooms member_rooms_;  // the leader's: its followers' reports
  // When Housekeeping last ran (it runs every 500 ms; the service's start
  // before its first pass); a gap longer than kHousekeepingGapNs means this
  // process was not running.
  int64_t last_housekeeping_ns_ = clock_.MonotonicNs();  // housekeeping thread only
  int64_t paused_ms_ = 0;  // a gap seen and not yet acted on; housekeeping thread only
  static constexpr int64_t kHousekeepingGapNs = int64_t{5} * 1'000'000'000;
  std::atomic<uint64_t> next_command_id_;
};

}  // namespace dfs::meta
