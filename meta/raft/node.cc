#include "meta/raft/node.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <utility>

#include "common/check.h"
#include "meta/raft/no_delay_transport.h"
#include "meta/raft/append_fixes.h"
#include "meta/raft/framing.h"
#include "meta/raft/read_lease.h"

namespace dfs::meta::raft {

namespace {

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

common::Status FromRaft(int rv, std::string_view what) {
  std::string message = std::string(what) + ": " + raft_strerror(rv);
  switch (rv) {
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
    case RAFT_SHUTDOWN:
      return common::UnavailableError(message);
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
      return common::Status(common::StatusCode::kAlreadyExists, message);
    case RAFT_BADID:
      return common::Status(common::StatusCode::kNotFound, message);
    case RAFT_CANTCHANGE:
    case RAFT_BADROLE:
      return common::Status(common::StatusCode::kFailedPrecondition, message);
    default:
      return common::UnavailableError(message);
  }
}

const char* StateName(int state) {
  switch (state) {
    case RAFT_LEADER: return "leader";
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
    default: return "unavailable";
  }
}

}  // namespace

struct RaftNode::ApplyReq {
  struct raft_apply req {};
  RaftNode* node = nullptr;
  std::vector<Done> dones;
};

struct RaftNode::BarrierReq {
  struct raft_barrier req {};
  RaftNode* node = nullptr;
  raft_term term = 0;
  bool lease = false;  // only renews the read lease
};

struct RaftNode::ChangeReq {
  struct raft_change req {};
  RaftNode* node = nullptr;
  uint64_t id = 0;
  bool promote_next = false;  // AddMember: raft_add done, raft_assign next
  std::function<void(common::Status)> done;
};

RaftNode::RaftNode(StateMachine* state_machine, RaftOptions options)
    : state_machine_(state_machine), options_(std::move(options)), fsm_(state_machine) {}

common::Result<std::unique_ptr<RaftNode>> RaftNode::Start(StateMachine* state_machine, RaftOptions options) {
  // libuv writes to peers with write(2): a peer that died raises SIGPIPE,
  // which would kill the survivors (toolchain notes §2.1). Process-wide, on
  // purpose: nothing in dfs-meta wants SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<RaftNode> node(new RaftNode(state_machine, std::move(options)));
  RETURN_IF_ERROR(node->Init());
  RaftNode* self = node.get();
  node->thread_ = std::thread([self] { uv_run(&self->loop_, UV_RUN_DEFAULT); });
  return node;
}

common::Status RaftNode::Init() {
  // A database that applied entries of some Raft log, next to no Raft state
  // at all, would skip that many entries of the new log as "already
  // applied" and silently diverge from the group: refuse.
  std::error_code ec;
  const bool has_raft_state = std::filesystem::exists(options_.dir + "/metadata1", ec) ||
                              std::filesystem::exists(options_.dir + "/metadata2", ec);
  if (!has_raft_state && state_machine_->AppliedIndex() > 0) {
    return common::FailedPreconditionError(
        "the metadata database has applied Raft index " + std::to_string(state_machine_->AppliedIndex()) +
        " but " + options_.dir + " holds no Raft state; starting would diverge from the group. Restore the "
        "raft folder, or move meta.db away to join the group empty");
  }
  if (int rv = uv_loop_init(&loop_); rv != 0) return common::UnavailableError(std::string("uv loop: ") + uv_strerror(rv));
  loop_ready_ = true;
  if (int rv = raft_uv_tcp_init(&transport_, &loop_); rv != 0) return FromRaft(rv, "raft transport");
  DisableNagle(&transport_);
  if (int rv = raft_uv_init(&io_, &loop_, options_.dir.c_str(), &transport_); rv != 0) {
    return common::UnavailableError(std::string("raft io on ") + options_.dir + ": " + io_.errmsg);
  }
  // The default 1 s between reconnects slows recovery after a restart.
  raft_uv_set_connect_retry_delay(&io_, 200);
  HookedIo::Hooks hooks;
  hooks.on_recv = [this](raft_message* message) { return OnRecv(message); };
  hooks.on_send = [this](raft_message* message) { OnSend(message); };
  hooks.on_recv_done = [this] { handling_append_from_ = 0; };
  hooked_io_ = std::make_unique<HookedIo>(&io_, std::move(hooks));
  fsm_.set_raft(&raft_);
  fsm_.set_before_copy(options_.before_snapshot_copy);
  if (int rv = raft_init(&raft_, hooked_io_->get(), fsm_.get(), options_.id, options_.raft_address.c_str());
      rv != 0) {
    return FromRaft(rv, std::string("raft init: ") + raft_errmsg(&raft_));
  }
  raft_.data = this;
  raft_ready_ = true;
  raft_set_election_timeout(&raft_, options_.election_timeout_ms);
  raft_set_heartbeat_timeout(&raft_, options_.heartbeat_timeout_ms);
  raft_set_snapshot_threshold(&raft_, options_.snapshot_threshold);
  raft_set_snapshot_trailing(&raft_, options_.snapshot_trailing);
  // libraft waits this long for an InstallSnapshot answer before sending the
  // snapshot again (default 30 s): a follower restarted while it was being
  // sent one stayed behind for that long (seen in the kill -9 storm test).
  raft_set_install_snapshot_timeout(&raft_, std::max(1000u, 10 * options_.election_timeout_ms));
  // An isolated node must not inflate terms and depose a healthy leader.
  raft_set_pre_vote(&raft_, true);

  if (!options_.initial_members.empty()) {
    raft_configuration conf;
    raft_configuration_init(&conf);
    for (const Member& m : options_.initial_members) {
      if (int rv = raft_configuration_add(&conf, m.id, m.raft_address.c_str(), RAFT_VOTER); rv != 0) {
        raft_configuration_close(&conf);
        return FromRaft(rv, "initial members");
      }
    }
    int rv = raft_bootstrap(&raft_, &conf);
    raft_configuration_close(&conf);
    // A restart finds the group already bootstrapped: nothing to do.
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) return FromRaft(rv, std::string("bootstrap: ") + raft_errmsg(&raft_));
  }
  started_ns_ = SteadyNs();
  if (int rv = raft_start(&raft_); rv != 0) {
    std::string detail = raft_errmsg(&raft_);
    // libraft 0.15 reports a taken port as a bare I/O error.
    if (rv == RAFT_IOERR) detail += " (is the address in use, or the data folder unusable?)";
    return FromRaft(rv, "raft start on " + options_.raft_address + ": " + detail);
  }
  async_.data = this;
  uv_async_init(&loop_, &async_, &RaftNode::OnAsync);
  poll_.data = this;
  uv_timer_init(&loop_, &poll_);
  drain_.data = this;
  uv_check_init(&loop_, &drain_);
  uv_check_start(&drain_, [](uv_check_t* handle) { static_cast<RaftNode*>(handle->data)->fsm_.Drain(); });
  uv_timer_start(&poll_, &RaftNode::OnPoll, 0, 10);
  handles_ready_ = true;
  spdlog::info("raft: member {} at {} (election {} ms, heartbeat {} ms), applied index {}", options_.id,
               options_.raft_address, options_.election_timeout_ms, options_.heartbeat_timeout_ms,
               state_machine_->AppliedIndex());
  return common::Status::Ok();
}

RaftNode::~RaftNode() {
  if (thread_.joinable()) {
    Post([this] { Close(); });
    thread_.join();
  } else if (raft_ready_) {
    // Start failed half-way: close what was opened on this thread.
    raft_close(&raft_, &RaftNode::OnRaftClosed);
    uv_run(&loop_, UV_RUN_DEFAULT);
  }
  if (loop_ready_) uv_loop_close(&loop_);
  std::deque<Pending> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(proposals_);
  }
  for (Pending& p : left) p.done(common::UnavailableError("metadata service shutting down"));
}

void RaftNode::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return;
    tasks_.push_back(std::move(fn));
  }
  uv_async_send(&async_);
}

void RaftNode::ProposeAsync(pb::Op op, Done done) {
  bool closing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing = closing_;
    if (!closing && proposals_.size() < kMaxQueuedProposals) {
      proposals_.push_back(Pending{std::move(op), std::move(done)});
      uv_async_send(&async_);
      return;
    }
  }
  done(common::UnavailableError(closing ? "metadata service shutting down"
                                        : "metadata service overloaded (proposal queue full); retry"));
}

bool RaftNode::Serving() const {
  return ready_.load(std::memory_order_acquire) && SteadyNs() < lease_until_ns_.load(std::memory_order_acquire);
}

RaftNode::View RaftNode::view() const {
  std::lock_guard<std::mutex> lock(mu_);
  return view_;
}

void RaftNode::AddMember(uint64_t id, std::string raft_address, std::function<void(common::Status)> done) {
  Post([this, id, raft_address = std::move(raft_address), done = std::move(done)]() mutable {
    auto* change = new ChangeReq;
    change->node = this;
    change->id = id;
    change->promote_next = true;
    change->done = std::move(done);
    change->req.data = change;
    if (int rv = raft_add(&raft_, &change->req, id, raft_address.c_str(), &RaftNode::OnChange); rv != 0) {
      change->done(FromRaft(rv, "add member"));
      delete change;
    }
  });
}

void RaftNode::RemoveMember(uint64_t id, std::function<void(common::Status)> done) {
  Post([this, id, done = std::move(done)]() mutable {
    auto* change = new ChangeReq;
    change->node = this;
    change->id = id;
    change->done = std::move(done);
    change->req.data = change;
    if (int rv = raft_remove(&raft_, &change->req, id, &RaftNode::OnChange); rv != 0) {
      change->done(FromRaft(rv, "remove member"));
      delete change;
    }
  });
}

void RaftNode::OnChange(struct raft_change* req, int status) {
  auto* change = static_cast<ChangeReq*>(req->data);
  RaftNode* self = change->node;
  if (status == 0 && change->promote_next) {
    // Added as a spare; promotion to voter waits until it has caught up.
    change->promote_next = false;
    if (int rv = raft_assign(&self->raft_, &change->req, change->id, RAFT_VOTER, &RaftNode::OnChange); rv == 0) return;
    else status = rv;
  }
  change->done(status == 0 ? common::Status::Ok() : FromRaft(status, "membership change"));
  delete change;
}

void RaftNode::OnAsync(uv_async_t* handle) { static_cast<RaftNode*>(handle->data)->Drain(); }

void RaftNode::Drain() {
  std::deque<std::function<void()>> tasks;
  std::deque<Pending> proposals;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks.swap(tasks_);
    proposals.swap(proposals_);
  }
  for (auto& task : tasks) task();
  if (proposals.empty()) return;
  if (raft_state(&raft_) != RAFT_LEADER) {
    for (Pending& p : proposals) p.done(common::UnavailableError("not the leader"));
    return;
  }
  while (!proposals.empty()) {
    auto* apply = new ApplyReq;
    apply->node = this;
    apply->req.data = apply;
    pb::Entry entry;
    entry.set_format(1);
    while (!proposals.empty() && apply->dones.size() < options_.max_ops_per_entry) {
      *entry.add_ops() = std::move(proposals.front().op);
      apply->dones.push_back(std::move(proposals.front().done));
      proposals.pop_front();
    }
    raft_buffer buf = EncodeEntry(entry.SerializeAsString());
    int rv = buf.base == nullptr ? RAFT_NOMEM : raft_apply(&raft_, &apply->req, &buf, 1, &RaftNode::OnApplied);
    if (rv == 0) Appended();
    if (rv != 0) {
      // Not taken over: still ours to free.
      if (buf.base != nullptr) raft_free(buf.base);
      for (Done& done : apply->dones) done(FromRaft(rv, "propose"));
      delete apply;
    }
  }
}

void RaftNode::OnApplied(struct raft_apply* req, int status, void* result) {
  auto* apply = static_cast<ApplyReq*>(req->data);
  if (status == 0) {
    auto* results = static_cast<std::vector<pb::OpResult>*>(result);
    if (results->size() == apply->dones.size()) {
      for (size_t i = 0; i < apply->dones.size(); ++i) apply->dones[i](std::move((*results)[i]));
    } else {
      for (Done& done : apply->dones) done(common::InternalError("entry applied without results"));
    }
  } else {
    // Leadership lost before commit: the entry may still commit under the
    // next leader, and the client's retry (same request id) finds it.
    for (Done& done : apply->dones) done(FromRaft(status, "not committed"));
  }
  delete apply;
}

void RaftNode::OnBarrier(struct raft_barrier* req, int status) {
  auto* barrier = static_cast<BarrierReq*>(req->data);
  RaftNode* self = barrier->node;
  if (barrier->lease) {
    self->lease_barrier_in_flight_ = false;
    delete barrier;
    return;
  }
  self->barrier_in_flight_ = false;
  if (status == 0 && self->leading_ && self->raft_.current_term == barrier->term &&
      raft_state(&self->raft_) == RAFT_LEADER) {
    self->fsm_.Drain();  // what it applied as a follower
    if (self->options_.on_leader) self->options_.on_leader();
    self->caught_up_ = true;
    self->ready_.store(true, std::memory_order_release);
    spdlog::info("raft: member {} leads term {} (applied index {})", self->options_.id, barrier->term,
                 self->state_machine_->AppliedIndex());
  }
  delete barrier;
}

void RaftNode::OnPoll(uv_timer_t* handle) { static_cast<RaftNode*>(handle->data)->Poll(); }

void RaftNode::Poll() {
  const int state = raft_state(&raft_);
  if (state == RAFT_UNAVAILABLE) {
    bool closing;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing = closing_;
    }
    if (!closing) {
      // libraft stops a member for good when its log contradicts the
      // group's (or its disk fails); it would sit silent forever. Exit so the
      // supervisor restarts it from what is on disk.
      spdlog::critical("raft: libraft stopped member {} (log conflict or I/O error; LIBRAFT_TRACE=1 shows why); "
                       "exiting so that it restarts from disk", options_.id);
      spdlog::shutdown();
      std::_Exit(70);
    }
  }
  if (state == RAFT_LEADER) {
    if (!leading_ || raft_.current_term != leader_term_) {
      leading_ = true;
      leader_term_ = raft_.current_term;
      caught_up_ = false;
      contacts_.clear();
      appended_.clear();
      ready_.store(false, std::memory_order_release);
    }
    if (!caught_up_ && !barrier_in_flight_) {
      auto* barrier = new BarrierReq;
      barrier->node = this;
      barrier->term = leader_term_;
      barrier->req.data = barrier;
      if (raft_barrier(&raft_, &barrier->req, &RaftNode::OnBarrier) == 0) {
        barrier_in_flight_ = true;
        Appended();
      } else {
        delete barrier;  // retried at the next poll
      }
    }
    const int64_t renew_ns = int64_t{options_.election_timeout_ms} * 1'000'000 / 4;
    unsigned voters = 0;
    for (unsigned i = 0; i < raft_.configuration.n; ++i) voters += raft_.configuration.servers[i].role == RAFT_VOTER;
    // A lone voter is its own quorum: nothing to renew.
    if (caught_up_ && voters > 1 && !lease_barrier_in_flight_ &&
        (appended_.empty() || SteadyNs() - appended_.back().second > renew_ns)) {
      auto* barrier = new BarrierReq;
      barrier->node = this;
      barrier->term = leader_term_;
      barrier->lease = true;
      barrier->req.data = barrier;
      if (raft_barrier(&raft_, &barrier->req, &RaftNode::OnBarrier) == 0) {
        lease_barrier_in_flight_ = true;
        Appended();
      } else {
        delete barrier;
      }
    }
    UpdateLease();
  } else if (leading_) {
    leading_ = false;
    caught_up_ = false;
    ready_.store(false, std::memory_order_release);
    lease_until_ns_.store(0, std::memory_order_release);
    spdlog::info("raft: member {} no longer leads (now {})", options_.id, StateName(state));
  }

  View view;
  view.self_id = options_.id;
  raft_id leader_id = 0;
  const char* leader_address = nullptr;
  raft_leader(&raft_, &leader_id, &leader_address);
  view.leader_id = leader_id;
  view.state = StateName(state);
  view.term = raft_.current_term;
  view.commit_index = raft_.commit_index;
  view.applied_index = raft_last_applied(&raft_);
  view.last_index = raft_last_index(&raft_);
  const int64_t now = SteadyNs();
  const int64_t stale_ns = int64_t{options_.election_timeout_ms} * 1'000'000;
  for (unsigned i = 0; i < raft_.configuration.n; ++i) {
    const raft_server& server = raft_.configuration.servers[i];
    MemberView member;
    member.id = server.id;
    member.raft_address = server.address;
    if (server.id == leader_id) {
      member.role = "leader";
    } else if (server.role == RAFT_STANDBY) {
      member.role = "standby";
    } else if (server.role == RAFT_SPARE) {
      member.role = "spare";
    } else if (server.id == options_.id) {
      member.role = StateName(state);
    } else {
      member.role = "follower";
      // Only a leader knows who answers it.
      if (state == RAFT_LEADER) {
        auto it = contacts_.find(server.id);
        if (it == contacts_.end() || now - it->second > stale_ns) member.role = "unreachable";
      }
    }
    view.members.push_back(std::move(member));
  }
  std::lock_guard<std::mutex> lock(mu_);
  view_ = std::move(view);
}

void RaftNode::Appended() {
  const int64_t now = SteadyNs();
  appended_.emplace_back(raft_last_index(&raft_), now);
  const int64_t keep_ns = 2 * int64_t{options_.election_timeout_ms} * 1'000'000;
  while (appended_.size() > 1 && now - appended_.front().second > keep_ns) appended_.pop_front();
}

bool RaftNode::OnRecv(raft_message* message) {
  if (message->type == RAFT_IO_REQUEST_VOTE &&
      SteadyNs() - started_ns_ < int64_t{options_.election_timeout_ms} * 1'000'000) {
    // Before it stopped, this member may have heard from a leader that
    // still counts on it for its read lease (read_lease.h), and libraft
    // forgot that at the restart. It votes again once one election timeout
    // has passed since it started, which is later than any lease it could
    // have helped to grant.
    if (votes_refused_.fetch_add(1) == 0) {
      spdlog::info("raft: member {} hears no vote request during its first {} ms", options_.id,
                   options_.election_timeout_ms);
    }
    return false;
  }
  if (message->type == RAFT_IO_APPEND_ENTRIES_RESULT) {
    OnAppendResult(message->server_id, message->append_entries_result);
  } else if (message->type == RAFT_IO_APPEND_ENTRIES) {
    raft_append_entries& append = message->append_entries;
    const raft_index prev = append.prev_log_index;
    const LocalSnapshot snapshot{raft_.log.snapshot.last_index, raft_.log.snapshot.last_term};
    if (FixIncomingAppend(&append, snapshot) && prev < snapshot.index) {
      spdlog::info("raft: AppendEntries from {} starts at {}, below our snapshot {}: skipped to it", message->server_id,
                   prev, snapshot.index);
    }
    handling_append_from_ = message->server_id;
    handling_append_vouched_ = VouchedThrough(append);
  }
  return true;
}

void RaftNode::OnSend(raft_message* message) {
  if (message->type == RAFT_IO_APPEND_ENTRIES_RESULT && handling_append_from_ != 0 &&
      message->server_id == handling_append_from_) {
    FixAppendResult(&message->append_entries_result, handling_append_vouched_);
  }
}

void RaftNode::OnAppendResult(raft_id from, const raft_append_entries_result& result) {
  // Only a success in our term says the follower's log matches ours up to
  // last_log_index (what libraft itself trusts to advance its match index).
  if (!leading_ || result.term != raft_.current_term || result.rejected != 0) return;
  for (auto it = appended_.rbegin(); it != appended_.rend(); ++it) {
    if (it->first <= result.last_log_index) {
      int64_t& contact = contacts_[from];
      contact = std::max(contact, it->second);
      break;
    }
  }
  UpdateLease();
}

void RaftNode::UpdateLease() {
  const int64_t now = SteadyNs();
  std::vector<int64_t> voters;
  for (unsigned i = 0; i < raft_.configuration.n; ++i) {
    const raft_server& server = raft_.configuration.servers[i];
    if (server.role != RAFT_VOTER) continue;
    if (server.id == options_.id) {
      voters.push_back(now);
    } else {
      auto it = contacts_.find(server.id);
      voters.push_back(it == contacts_.end() ? 0 : it->second);
    }
  }
  lease_until_ns_.store(
      LeaseUntil(QuorumContact(std::move(voters)), int64_t{options_.election_timeout_ms} * 1'000'000,
                 int64_t{options_.heartbeat_timeout_ms} * 1'000'000),
      std::memory_order_release);
}

void RaftNode::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  ready_.store(false);
  lease_until_ns_.store(0);
  uv_timer_stop(&poll_);
  raft_close(&raft_, &RaftNode::OnRaftClosed);
}

void RaftNode::OnRaftClosed(struct raft* r) {
  auto* self = static_cast<RaftNode*>(r->data);
  raft_uv_close(&self->io_);
  raft_uv_tcp_close(&self->transport_);
  if (self->handles_ready_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&self->async_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&self->poll_), nullptr);
    self->fsm_.Drain();
    uv_close(reinterpret_cast<uv_handle_t*>(&self->drain_), nullptr);
  }
}

}  // namespace dfs::meta::raft
