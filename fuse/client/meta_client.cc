#include "fuse/client/meta_client.h"

#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <variant>

#include "common/grpc_status.h"
#include "common/meta_calls.h"
#include "common/posix_acl.h"
#include "common/posix_attr.h"
#include "common/tls.h"

namespace dfs::fuse {

namespace {

pb::OpenSessionRequest OpenSessionRequestFor(const MetaClient::Options& options) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  pb::OpenSessionRequest request;
  request.set_hostname(host);
  request.set_mount_point(options.mount_point);
  request.set_client_version("dfs 0.1");
  request.set_reports_read_pins(true);
  // A retried OpenSession must not open two sessions: the request id is
  // random per attempt series, and meta dedups on (0, request_id).
  request.set_request_id((static_cast<uint64_t>(::getpid()) << 32) ^
                         static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  return request;
}

// Queued releases one request carries at most (meta takes up to 1024).
constexpr int kMaxReleasesPerRequest = 256;
}  // namespace

using common::Result;
using common::Status;

MetaClient::MetaClient(std::unique_ptr<common::LeaderChannel> channel, Options options)
    : channel_(std::move(channel)),
      options_(std::move(options)),
      dir_attrs_(options_.dir_attr_ttl_ms, common::SystemClock::Get()),
      acl_hints_(options_.dir_attr_ttl_ms, common::SystemClock::Get()),
      listings_(DirListings::Options{.ttl_ms = options_.listing_ttl_ms}, common::SystemClock::Get(), &remote_),
      carried_(options_.release_delay_ms) {}

Result<std::unique_ptr<MetaClient>> MetaClient::Connect(const Options& options, int64_t connect_timeout_ms) {
  common::LeaderChannel::Options channel_options;
  channel_options.total_timeout_ms = connect_timeout_ms;
  channel_options.attempt_timeout_ms = std::min<int64_t>(options.attempt_timeout_ms, connect_timeout_ms);
  ASSIGN_OR_RETURN(auto channel, common::LeaderChannel::Create(options.source, channel_options));
  std::unique_ptr<MetaClient> client(new MetaClient(std::move(channel), options));

  pb::OpenSessionRequest request = OpenSessionRequestFor(options);
  pb::OpenSessionReply reply;
  Status s = client->Invoke(&pb::MetaService::Stub::OpenSession, request, &reply);
  if (s.code() == common::StatusCode::kUnauthenticated || s.code() == common::StatusCode::kPermissionDenied) {
    return common::Status(s.code(), "the metadata service at " + options.source + " refused this client: " +
                                        std::string(s.message()));
  }
  if (!s.ok()) {
    return common::UnavailableError(
        "cannot reach the metadata service at " + options.source + ": " + std::string(s.message()) +
        (common::GetClientIdentity().tls ? "" : " (a cluster that serves TLS needs -o tls_ca=PEM)"));
  }
  RETURN_IF_ERROR(common::FromFsStatus(reply.status()));
  client->client_id_ = reply.client_id();
  client->root_ino_ = reply.root_ino() != 0 ? reply.root_ino() : 1;
  client->features_ = reply.features();
  client->inline_max_bytes_ = reply.inline_max_bytes();
  client->lease_ms_ = reply.lease_ms() != 0 ? reply.lease_ms() : 30'000;

  // Later calls ride through failovers for up to retry_timeout_ms.
  common::LeaderChannel::Options steady = channel_options;
  steady.total_timeout_ms = options.retry_timeout_ms;
  steady.attempt_timeout_ms = options.attempt_timeout_ms;
  ASSIGN_OR_RETURN(client->channel_, common::LeaderChannel::Create(options.source, steady));
  common::LeaderChannel::Options quick = channel_options;
  quick.total_timeout_ms = kQuickCallMs;
  quick.attempt_timeout_ms = std::min<int64_t>(kQuickCallMs / 2, options.attempt_timeout_ms);
  ASSIGN_OR_RETURN(client->quick_channel_, common::LeaderChannel::Create(options.source, quick));
  MetaClient* self = client.get();
  client->prefetch_ = std::make_unique<DirPrefetch>(
      DirPrefetch::Options{.ttl_ms = options.listing_ttl_ms}, common::SystemClock::Get(),
      [self](const Caller& c, uint64_t dir) { return self->PrefetchPage(c, dir); }, &client->remote_);
  client->keepalive_thread_ = std::thread([c = client.get()] { c->KeepAliveLoop(); });
  client->carry_thread_ = std::thread([c = client.get()] { c->CarryLoop(); });
  return client;
}

MetaClient::~MetaClient() {
  prefetch_.reset();  // its workers call into this client
  carried_.Stop();  // the loop sends what is queued, then ends
  if (carry_thread_.joinable()) carry_thread_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (keepalive_thread_.joinable()) keepalive_thread_.join();
  if (client_id_ != 0 && quick_channel_ != nullptr) {
    // A courtesy, bounded by kQuickCallMs: a session left open ends with its
    // lease, and an unmount from a cluster that is gone kept the daemon (and
    // its pid file) around for the whole retry_timeout after umount.
    pb::CloseSessionRequest request;
    FillContext(request.mutable_ctx(), nullptr, Kind::kQuiet, /*carry=*/false);  // the queue was sent above
    pb::StatusReply reply;
    (void)CallOn(*quick_channel_, &pb::MetaService::Stub::CloseSession, request, &reply);
  }
}

void MetaClient::KeepAliveLoop() {
  // Meta frees a file nobody names only after every mount that may read it
  // reported (twice: see meta/service/read_pins.h), so a short period here
  // frees space soon after rm; a KeepAlive costs no log entry.
  const uint32_t period_ms = Supports(pb::FEATURE_LAZY_READ_OPEN) ? std::min<uint32_t>(lease_ms_ / 3, 1'000)
                                                                   : lease_ms_ / 3;
  bool told_expired = false;
  bool failing = false;  // logged once per outage
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::milliseconds(std::max<uint32_t>(period_ms, 100)));
    if (stopping_) break;
    lock.unlock();
    Result<bool> alive = KeepAliveOnce();
    if (!alive.ok()) {
      if (!std::exchange(failing, true)) spdlog::warn("session keep-alive failed: {}", alive.status().ToString());
    } else if (std::exchange(failing, false)) {
      spdlog::info("session keep-alive works again");
    }
    if (alive.ok() && !*alive) {
      // Cut off from meta for longer than the session lease: meta ended
      // this mount's handles and file locks (processes here still believe
      // they hold them). The handler takes the session back.
      std::lock_guard<std::mutex> handler_lock(lost_handler_mu_);
      if (lost_handler_ && Supports(pb::FEATURE_RESUME_SESSION)) {
        lost_handler_();
      } else if (!std::exchange(told_expired, true)) {
        spdlog::error("meta ended this mount's session (no keep-alive for {} ms): its open files and file "
                      "locks are gone there; remount", lease_ms_);
      }
    }
    lock.lock();
  }
}

Result<bool> MetaClient::KeepAliveOnce() {
  pb::KeepAliveRequest request;
  request.set_client_id(client_id_);
  request.set_reports_read_pins(true);
  // The epoch first, then the pins: the list must hold every pin added
  // before meta sent the reply that carried this epoch.
  request.set_pin_epoch(pin_epoch_.load());
  for (uint64_t ino : read_pins_.List()) request.add_read_pins(ino);
  pb::KeepAliveReply reply;
  // Through the quick channel: the loop tries again next period anyway, and
  // an unmount must not wait out retry_timeout for this call to end.
  RETURN_IF_ERROR(
      common::FromGrpcStatus(CallOn(*quick_channel_, &pb::MetaService::Stub::KeepAlive, request, &reply)));
  if (reply.status().code() == static_cast<int>(common::StatusCode::kNotFound)) return false;
  pin_epoch_.store(reply.pin_epoch());
  return true;
}

Result<std::vector<uint64_t>> MetaClient::ResumeSession(const std::vector<pb::ResumedHandle>& handles) {
  if (!Supports(pb::FEATURE_RESUME_SESSION)) {
    return common::Status(common::StatusCode::kFailedPrecondition, "meta cannot resume sessions: remount");
  }
  pb::OpenSessionRequest request = OpenSessionRequestFor(options_);
  request.set_resume_client_id(client_id_);
  for (const pb::ResumedHandle& h : handles) *request.add_handles() = h;
  pb::OpenSessionReply reply;
  RETURN_IF_ERROR(Invoke(&pb::MetaService::Stub::OpenSession, request, &reply));
  RETURN_IF_ERROR(common::FromFsStatus(reply.status()));
  if (reply.client_id() != client_id_) {
    return common::InternalError("meta resumed session " + std::to_string(client_id_) + " as " +
                                 std::to_string(reply.client_id()));
  }
  return std::vector<uint64_t>(reply.lost_handles().begin(), reply.lost_handles().end());
}

void MetaClient::SetSessionLostHandler(std::function<void()> handler) {
  std::lock_guard<std::mutex> lock(lost_handler_mu_);
  lost_handler_ = std::move(handler);
}

void MetaClient::CarryLoop() {
  while (std::optional<CarryQueue::Item> item = carried_.WaitOverdue()) {
    Status s;
    if (auto* release = std::get_if<pb::ReleaseRequest>(&*item)) {
      const uint64_t ino = release->ino(), handle_id = release->handle_id();
      s = SendRelease(std::move(*release));
      if (!s.ok()) spdlog::warn("release of inode {} handle {}: {}", ino, handle_id, s.ToString());
    } else {
      const uint64_t ino = std::get<pb::SetAttrRequest>(*item).ino();
      pb::RequestContext front;
      *front.add_set_attrs() = std::move(std::get<pb::SetAttrRequest>(*item));
      carried_.PutBack(front);
      s = SendCarrier(ino);
      if (!s.ok()) spdlog::warn("chmod/chown of inode {}: {}", ino, s.ToString());
    }
    if (!s.ok() && carried_.stopping()) {
      // Unmounting with meta out of reach: each try would wait out the
      // retry timeout again. Meta ends the handles with the session; the
      // attribute changes are lost, as unsynced ones are in a crash.
      const size_t dropped = carried_.Clear();
      if (dropped > 0) spdlog::warn("{} more releases and attribute changes not sent", dropped);
      return;
    }
  }
}

void MetaClient::FillContext(pb::RequestContext* ctx, const Caller* caller, Kind kind, bool carry) {
  ctx->set_client_id(client_id_);
  const bool mutation = kind != Kind::kRead;
  if (mutation) ctx->set_request_id(next_request_id_.fetch_add(1));
  if (kind == Kind::kChange) {
    std::lock_guard<std::mutex> lock(changes_mu_);
    ++changes_started_;
    changes_in_flight_.insert(ctx->request_id());
  }
  if (mutation && carry && Supports(pb::FEATURE_RELEASES_IN_CONTEXT)) carried_.TakeInto(ctx, kMaxReleasesPerRequest);
  if (caller != nullptr) {
    pb::Credentials* creds = ctx->mutable_creds();
    creds->set_uid(caller->uid);
    creds->set_gid(caller->gid);
    creds->set_pid(caller->pid);
    for (uint32_t g : caller->groups) creds->add_groups(g);
  }
}

template <typename Request, typename Reply>
grpc::Status MetaClient::CallOn(common::LeaderChannel& channel, Method<Request, Reply> method, const Request& request,
                                Reply* reply) {
  return channel.Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& ctx) {
    reply->Clear();
    return (stubs_.For(ch).*method)(&ctx, request, reply);
  });
}

template <typename Request, typename Reply>
grpc::Status MetaClient::CallStreamed(Method<Request, Reply> method, const Request& request, Reply* reply) {
  pb::MetaCall call;
  common::PutCall(&call, request);
  pb::MetaReturn ret;
  return channel_->Call([&](const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext& ctx) {
    reply->Clear();
    grpc::Status sent = streams_.Call(ch, ctx.deadline(), call, &ret);
    const bool unknown_here = sent.ok() && ret.code() == grpc::StatusCode::UNIMPLEMENTED;
    if (unknown_here || sent.error_code() == grpc::StatusCode::UNIMPLEMENTED ||
        sent.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      // This member has no call streams, or too many open, or does not
      // know this request (an older meta became leader): the unary call,
      // on this attempt's context.
      return (stubs_.For(ch).*method)(&ctx, request, reply);
    }
    if (!sent.ok()) return sent;
    grpc::Status answered(static_cast<grpc::StatusCode>(ret.code()), ret.message());
    if (!ret.leader_hint().empty()) return common::WithHint(answered, common::kLeaderHintKey, ret.leader_hint());
    if (ret.retry_after_ms() > 0) {
      return common::WithHint(answered, common::kRetryAfterHeader, std::to_string(ret.retry_after_ms()));
    }
    if (answered.ok() && !common::TakeReply(&ret, reply)) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "meta answered a call stream message without its reply");
    }
    return answered;
  });
}

template <typename Request, typename Reply>
Status MetaClient::Invoke(Method<Request, Reply> method, const Request& request, Reply* reply) {
  grpc::Status s;
  if constexpr (requires(pb::MetaCall* call) { common::PutCall(call, request); }) {
    s = options_.call_streams && Supports(pb::FEATURE_CALL_STREAMS) ? CallStreamed(method, request, reply)
                                                                     : CallOn(*channel_, method, request, reply);
  } else {
    s = CallOn(*channel_, method, request, reply);
  }
  if constexpr (requires { request.ctx().request_id(); }) {
    if (request.ctx().request_id() != 0) {
      std::lock_guard<std::mutex> lock(changes_mu_);
      changes_in_flight_.erase(request.ctx().request_id());
    }
  }
  if constexpr (requires { request.ctx().releases(); }) {
    // What it carried may not have reached meta: the next mutation takes it
    // again (a release or a chmod/chown applied twice is harmless).
    if (!s.ok()) {
      carried_.PutBack(request.ctx());
    } else {
      AckCarried(request.ctx());
    }
  }
  return common::FromGrpcStatus(s);
}

namespace {
// The reply's own outcome, once the call itself succeeded.
template <typename Reply>
Status Outcome(const Status& call, const Reply& reply) {
  RETURN_IF_ERROR(call);
  return common::FromFsStatus(reply.status());
}

// The directory attributes a mutation's reply carries, or null (an old meta,
// or a refused mutation).
template <typename Reply>
const pb::Attr* ParentAttrOf(const Reply& reply) {
  return reply.has_parent_attr() ? &reply.parent_attr() : nullptr;
}
}  // namespace

void MetaClient::LearnDir(uint64_t ino, const pb::Attr* attr) {
  if (attr != nullptr && attr->ino() == ino) {
    dir_attrs_.Put(*attr);
  } else {
    dir_attrs_.Drop(ino);
  }
}

Result<pb::Attr> MetaClient::Lookup(const Caller& c, uint64_t parent, const std::string& name) {
  pb::LookupRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kRead);
  request.set_parent(parent);
  request.set_name(name);
  pb::EntryReply reply;
  const uint64_t epoch = overlay_.Epoch();
  Status status = Outcome(Invoke(&pb::MetaService::Stub::Lookup, request, &reply), reply);
  if (status.code() == common::StatusCode::kNotFound) listings_.Answered(parent, name, 0);
  RETURN_IF_ERROR(status);
  listings_.Answered(parent, name, reply.attr().ino());
  overlay_.Apply(reply.mutable_attr(), epoch);
  acl_hints_.Learn(reply.attr());
  Refreshed(reply.attr());
  return reply.attr();
}

Result<pb::Attr> MetaClient::GetAttr(const Caller& c, uint64_t ino) {
  pb::GetAttrRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kRead);
  request.set_ino(ino);
  pb::AttrReply reply;
  const uint64_t epoch = overlay_.Epoch();
  RETURN_IF_ERROR(Outcome(Invoke(&pb::MetaService::Stub::GetAttr, request, &reply), reply));
  overlay_.Apply(reply.mutable_attr(), epoch);
  acl_hints_.Learn(reply.attr());
  Refreshed(reply.attr());
  return reply.attr();
}

std::optional<DirListings::Hit> MetaClient::ListedLookup(uint64_t parent, const std::string& name) {
  std::optional<DirListings::Hit> hit = listings_.Find(parent, name, ChangesStarted());
  if (hit) overlay_.Apply(&hit->attr, hit->epoch);
  return hit;
}

void MetaClient::NoteRemoteChanges(const pb::ChangeNotices& notices) {
  // Listings and pages fetched before, or while, it came are not used for
  // the directories it names (their entries changed) nor for the inodes it
  // names (their attributes did); a directory among the inodes had its
  // entries changed too. The rest of what is held stays in use.
  std::vector<uint64_t> ids;
  ids.reserve(notices.names_size() + notices.inodes_size());
  for (const pb::ChangedName& n : notices.names()) ids.push_back(n.parent());
  for (uint64_t ino : notices.inodes()) ids.push_back(ino);
  remote_.Note(ids, notices.missed());
  if (notices.missed()) dir_attrs_.Clear();
  for (uint64_t ino : notices.inodes()) {
    dir_attrs_.Drop(ino);
    acl_hints_.Forget(ino);
  }
}

std::optional<DirListings::Hit> MetaClient::ListedAttr(uint64_t ino) {
  std::optional<DirListings::Hit> hit = listings_.FindIno(ino, ChangesStarted());
  if (hit) overlay_.Apply(&hit->attr, hit->epoch);
  return hit;
}

uint64_t MetaClient::ChangesStarted() {
  std::lock_guard<std::mutex> lock(changes_mu_);
  return changes_started_;
}

std::optional<uint64_t> MetaClient::QuietStamp() {
  std::lock_guard<std::mutex> lock(changes_mu_);
  if (!changes_in_flight_.empty()) return std::nullopt;
  return changes_started_;
}

void MetaClient::MaybeFetchListing(const Caller& c, uint64_t parent) {
  if (!listings_.NoteLookup(parent)) return;
  // Our own changes must all be in what meta lists: none may be in flight.
  const std::optional<uint64_t> stamp = QuietStamp();
  if (!stamp) return listings_.Abandon(parent, false);
  const uint64_t epoch = overlay_.Epoch();
  const uint64_t remote = remote_.Now();
  const DirListings::Options& o = listings_.options();
  std::vector<pb::DirEntry> entries;
  for (uint64_t cookie = 0;;) {
    Result<pb::ReadDirReply> page = ReadDir(c, parent, cookie, o.page_entries, /*plus=*/true);
    if (!page.ok()) return listings_.Abandon(parent, false);
    if (entries.size() + page->entries_size() > o.max_entries) return listings_.Abandon(parent, true);
    for (pb::DirEntry& e : *page->mutable_entries()) entries.push_back(std::move(e));
    if (page->eof() || page->entries_size() == 0) break;
    cookie = entries.back().cookie();
  }
  listings_.Put(parent, std::move(entries), *stamp, epoch, remote);
}

Result<pb::Attr> MetaClient::SetAttr(const Caller& c, pb::SetAttrRequest request) {
  RETURN_IF_ERROR(SettleCarried(request.ino()));
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  pb::AttrReply reply;
  Status outcome = Outcome(Invoke(&pb::MetaService::Stub::SetAttr, request, &reply), reply);
  LearnDir(request.ino(), outcome.ok() ? &reply.attr() : nullptr);
  RETURN_IF_ERROR(outcome);
  return reply.attr();
}

Result<pb::Attr> MetaClient::Mknod(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode,
                                   uint64_t rdev, uint32_t umask) {
  pb::MknodRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  request.set_parent(parent);
  request.set_name(name);
  request.set_mode(mode);
  request.set_rdev(rdev);
  request.set_umask(umask);
  pb::EntryReply reply;
  Status outcome = Outcome(Invoke(&pb::MetaService::Stub::Mknod, request, &reply), reply);
  LearnDir(parent, ParentAttrOf(reply));
  RETURN_IF_ERROR(outcome);
  return reply.attr();
}

Result<pb::Attr> MetaClient::Mkdir(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode,
                                   uint32_t umask) {
  pb::MkdirRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  request.set_parent(parent);
  request.set_name(name);
  request.set_mode(mode);
  request.set_umask(umask);
  pb::EntryReply reply;
  Status outcome = Outcome(Invoke(&pb::MetaService::Stub::Mkdir, request, &reply), reply);
  LearnDir(parent, ParentAttrOf(reply));
  RETURN_IF_ERROR(outcome);
  return reply.attr();
}

Result<pb::CreateReply> MetaClient::Create(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode,
                                           uint32_t flags, uint32_t umask, bool lease_first_chunk) {
  pb::CreateRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  request.set_parent(parent);
  request.set_name(name);
  request.set_mode(mode);
  request.set_flags(flags);
  request.set_umask(umask);
  request.set_lease_first_chunk(lease_first_chunk);
  pb::CreateReply reply;
  Status outcome = Outcome(Invoke(&pb::MetaService::Stub::Create, request, &reply), reply);
  LearnDir(parent, ParentAttrOf(reply));
  RETURN_IF_ERROR(outcome);
  return reply;
}

Status MetaClient::Unlink(const Caller& c, uint64_t parent, const std::string& name) {
  NameChange counted(name_changes_);
  pb::UnlinkRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  request.set_parent(parent);
  request.set_name(name);
  pb::StatusReply reply;
  Status outcome = Outcome(Invoke(&pb::MetaService::Stub::Unlink, request, &reply), reply);
  LearnDir(parent, ParentAttrOf(reply));
  return outcome;
}

Status MetaClient::Rmdir(const Caller& c, uint64_t parent, const std::string& name) {
  pb::RmdirRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  request.set_parent(parent);
  request.set_name(name);
  pb::StatusReply reply;
  Status outcome = Outcome(Invoke(&pb::MetaService::Stub::Rmdir, request, &reply), reply);
  // The removed directory may be held too (we made entries in it): forget all.
  if (outcome.ok()) dir_attrs_.Clear();
  LearnDir(parent, ParentAttrOf(reply));
  return outcome;
}

Result<pb::Attr> MetaClient::Symlink(const Caller& c, uint64_t parent, const std::string& name,
                                     const std::string& target) {
  pb::SymlinkRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  request.set_parent(parent);
  request.set_name(name);
  request.set_target(target);
  pb::EntryReply reply;
  Status outcome = Outcome(Invoke(&pb::MetaService::Stub::Symlink, request, &reply), reply);
  LearnDir(parent, ParentAttrOf(reply));
  RETURN_IF_ERROR(outcome);
  return reply.attr();
}

Result<std::string> MetaClient::Readlink(const Caller& c, uint64_t ino) {
  {
    std::lock_guard<std::mutex> lock(targets_mu_);
    if (auto it = targets_.find(ino); it != targets_.end()) return it->second;
  }
  pb::ReadlinkRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kRead);
  request.set_ino(ino);
  pb::ReadlinkReply reply;
  RETURN_IF_ERROR(Outcome(Invoke(&pb::MetaService::Stub::Readlink, request, &reply), reply));
  return reply.target();
}

Result<pb::Attr> MetaClient::Link(const Caller& c, uint64_t ino, uint64_t new_parent, const std::string& new_name) {
  RETURN_IF_ERROR(SettleCarried(ino));
  NameChange counted(name_changes_);
  pb::LinkRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  request.set_ino(ino);
  request.set_new_parent(new_parent);
  request.set_new_name(new_name);
  pb::EntryReply reply;
  Status outcome = Outcome(Invoke(&pb::MetaService::Stub::Link, request, &reply), reply);
  LearnDir(new_parent, ParentAttrOf(reply));
  RETURN_IF_ERROR(outcome);
  return reply.attr();
}

Status MetaClient::Rename(const Caller& c, uint64_t parent, const std::string& name, uint64_t new_parent,
                          const std::string& new_name, uint32_t flags) {
  NameChange counted(name_changes_);  // a rename may replace a file
  pb::RenameRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  request.set_parent(parent);
  request.set_name(name);
  request.set_new_parent(new_parent);
  request.set_new_name(new_name);
  request.set_flags(flags);
  pb::StatusReply reply;
  Status outcome = Outcome(Invoke(&pb::MetaService::Stub::Rename, request, &reply), reply);
  // A moved or replaced directory changes too (ctime, "..", nlink), and we
  // do not know its inode here: forget all, then keep the two parents.
  dir_attrs_.Clear();
  if (outcome.ok()) {
    LearnDir(parent, ParentAttrOf(reply));
    if (new_parent != parent) LearnDir(new_parent, reply.has_new_parent_attr() ? &reply.new_parent_attr() : nullptr);
  }
  return outcome;
}

Result<pb::ReadDirReply> MetaClient::ReadDir(const Caller& c, uint64_t ino, uint64_t cookie, uint32_t max_entries,
                                             bool plus) {
  pb::ReadDirRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kRead);
  request.set_ino(ino);
  request.set_cookie(cookie);
  request.set_max_entries(max_entries);
  request.set_packed(!plus);
  pb::ReadDirReply reply;
  auto method = plus ? &pb::MetaService::Stub::ReadDirPlus : &pb::MetaService::Stub::ReadDir;
  const uint64_t epoch = overlay_.Epoch();
  RETURN_IF_ERROR(Outcome(Invoke(method, request, &reply), reply));
  LearnListed(&reply, epoch);
  return reply;
}

Result<pb::ReadDirReply> MetaClient::ReadDirForKernel(const Caller& c, uint64_t ino, uint64_t cookie, uint32_t want,
                                                      bool plus, double* valid_s) {
  if (std::optional<DirPrefetch::Hit> hit = prefetch_->Take(c, ino, cookie, ChangesStarted(), want)) {
    // As ListedLookup: changes this mount made since (carried chmods) are
    // laid over what meta listed.
    for (pb::DirEntry& entry : *hit->page.mutable_entries()) {
      if (entry.has_attr()) overlay_.Apply(entry.mutable_attr(), hit->epoch);
    }
    *valid_s = hit->valid_s;
    return std::move(hit->page);
  }
  if (want >= DirPrefetch::kPageEntries || options_.listing_ttl_ms <= 0) return ReadDir(c, ino, cookie, want, plus);
  // Our own changes must all be in what is held: none may be in flight.
  const std::optional<uint64_t> stamp = QuietStamp();
  // A plain listing (the kernel's calls after the first, unless lookups
  // came between) fetches a page with attributes too, to be held: one call
  // of kPageEntries costs meta less than the five plain calls it saves.
  if (!plus && !stamp) return ReadDir(c, ino, cookie, want, /*plus=*/false);
  const uint64_t epoch = overlay_.Epoch();
  const uint64_t remote = remote_.Now();
  ASSIGN_OR_RETURN(pb::ReadDirReply page, ReadDir(c, ino, cookie, DirPrefetch::kPageEntries, /*plus=*/true));
  if (stamp && page.entries_size() > static_cast<int>(want)) {
    prefetch_->Keep(c, ino, cookie, DirPrefetch::Fetched{page, *stamp, epoch, remote});
  }
  return page;
}

std::optional<DirPrefetch::Fetched> MetaClient::PrefetchPage(const Caller& c, uint64_t dir) {
  // Our own changes must all be in what meta lists: none may be in flight.
  const std::optional<uint64_t> stamp = QuietStamp();
  if (!stamp) return std::nullopt;
  const uint64_t epoch = overlay_.Epoch();
  const uint64_t remote = remote_.Now();
  pb::ReadDirRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kRead);
  request.set_ino(dir);
  request.set_max_entries(DirPrefetch::kPageEntries);
  pb::ReadDirReply reply;
  const grpc::Status call = CallOn(*quick_channel_, &pb::MetaService::Stub::ReadDirPlus, request, &reply);
  if (!Outcome(common::FromGrpcStatus(call), reply).ok()) return std::nullopt;
  LearnListed(&reply, epoch);
  return DirPrefetch::Fetched{std::move(reply), *stamp, epoch, remote};
}

void MetaClient::LearnListed(pb::ReadDirReply* reply, uint64_t epoch) {
  for (pb::DirEntry& entry : *reply->mutable_entries()) {
    if (!entry.has_attr()) continue;
    overlay_.Apply(entry.mutable_attr(), epoch);
    acl_hints_.Learn(entry.attr());
    Refreshed(entry.attr());
  }
}

void MetaClient::Refreshed(const pb::Attr& attr) {
  if (S_ISLNK(attr.mode()) && !attr.symlink_target().empty()) {
    std::lock_guard<std::mutex> lock(targets_mu_);
    auto [it, added] = targets_.try_emplace(attr.ino());
    if (added || it->second != attr.symlink_target()) {  // an inode number reused
      if (target_bytes_ + attr.symlink_target().size() > kMaxTargetBytes) {
        targets_.clear();
        target_bytes_ = 0;
        it = targets_.try_emplace(attr.ino()).first;
      }
      target_bytes_ += attr.symlink_target().size() - it->second.size();
      it->second = attr.symlink_target();
    }
  }
  listings_.Refresh(attr);
  if (prefetch_ != nullptr) prefetch_->Refresh(attr);
}

void MetaClient::NoteListed(const Caller& c, uint64_t dir, const pb::ReadDirReply& page) {
  prefetch_->Listed(c, dir, page);
}

DirPrefetch::Stats MetaClient::prefetch_stats() const { return prefetch_->stats(); }

Result<pb::OpenReply> MetaClient::Open(const Caller& c, uint64_t ino, uint32_t flags) {
  RETURN_IF_ERROR(SettleCarried(ino));
  // Pinned before it is sent (read_pin_set.h).
  const bool lazy = Supports(pb::FEATURE_LAZY_READ_OPEN) && common::IsReadOnlyOpen(flags) && read_pins_.Pin(ino);
  pb::OpenRequest request;
  // A lazy open meta answers from its state carries nothing: what it took
  // would never be applied. (It keeps a request id: meta may still make it
  // a logged open, for a file with no name left.)
  FillContext(request.mutable_ctx(), &c, lazy ? Kind::kQuiet : Kind::kChange, /*carry=*/!lazy);
  request.set_ino(ino);
  request.set_flags(flags);
  request.set_lazy_read(lazy);
  request.set_want_first_chunk((flags & O_ACCMODE) != O_WRONLY && !(flags & O_TRUNC));
  pb::OpenReply reply;
  Status s = Outcome(Invoke(&pb::MetaService::Stub::Open, request, &reply), reply);
  if (lazy && (!s.ok() || reply.handle_id() != 0)) read_pins_.Unpin(ino);
  RETURN_IF_ERROR(s);
  acl_hints_.Learn(reply.attr());
  Refreshed(reply.attr());
  return reply;
}

Status MetaClient::Release(uint64_t ino, uint64_t handle_id, const std::vector<uint64_t>& unwritten_chunk_ids) {
  if (handle_id == 0) {
    read_pins_.Unpin(ino);  // a lazy read open: meta holds nothing
    return Status::Ok();
  }
  pb::ReleaseRequest request;
  request.set_ino(ino);
  request.set_handle_id(handle_id);
  for (uint64_t id : unwritten_chunk_ids) request.add_unwritten_chunk_ids(id);
  if (Supports(pb::FEATURE_RELEASES_IN_CONTEXT)) {
    carried_.Add(std::move(request));
    return Status::Ok();
  }
  return SendRelease(std::move(request));
}

bool MetaClient::CanCarrySetAttr() const {
  return Supports(pb::FEATURE_SET_ATTRS_IN_CONTEXT) && !carried_.stopping() &&
         carried_.set_attr_count() < CarryQueue::kMaxQueuedSetAttrs;
}

void MetaClient::CarrySetAttr(const Caller& c, pb::SetAttrRequest request, const pb::Attr& answered) {
  // An older change of this inode in flight (a carrier sent, no answer yet)
  // could reach meta after this one if this one rode in another carrier:
  // let it land first. Changes in the queue stay in order anyway.
  if (overlay_.Pending(request.ino()) && !carried_.HoldsSetAttrFor(request.ino())) {
    (void)SettleCarried(request.ino());
  }
  FillContext(request.mutable_ctx(), &c, Kind::kRead);
  // Meta ignores a carried change's request id: here it names the change
  // for AttrOverlay::Acked.
  request.mutable_ctx()->set_request_id(overlay_.Add(answered));
  carried_.Add(std::move(request));
}

Status MetaClient::SendCarrier(uint64_t ino) {
  // A SetAttr that sets nothing itself: every queued change rides in its
  // ctx, so they reach meta in the order they were made.
  pb::SetAttrRequest carrier;
  carrier.set_ino(ino);
  FillContext(carrier.mutable_ctx(), nullptr, Kind::kQuiet);
  pb::AttrReply reply;
  return Invoke(&pb::MetaService::Stub::SetAttr, carrier, &reply);  // acks or puts back what it carried
}

void MetaClient::AckCarried(const pb::RequestContext& ctx) {
  for (const pb::SetAttrRequest& set : ctx.set_attrs()) overlay_.Acked(set.ino(), set.ctx().request_id());
}

Status MetaClient::SettleCarried(uint64_t ino) {
  // Bounded in time: a send that fails waits out retry_timeout once; a
  // change another thread's carrier holds ends in an ack or a put-back.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.retry_timeout_ms);
  while (overlay_.Pending(ino)) {
    if (carried_.HoldsSetAttrFor(ino)) {
      RETURN_IF_ERROR(SendCarrier(ino));
    } else if (std::chrono::steady_clock::now() > deadline) {
      return common::UnavailableError("meta has not applied the attribute changes of inode " + std::to_string(ino));
    } else {
      overlay_.WaitApplied(ino, std::chrono::milliseconds(50));
    }
  }
  return Status::Ok();
}

Status MetaClient::SendRelease(pb::ReleaseRequest request) {
  FillContext(request.mutable_ctx(), nullptr, Kind::kQuiet);
  pb::StatusReply reply;
  return Outcome(Invoke(&pb::MetaService::Stub::Release, request, &reply), reply);
}

Result<pb::StatfsReply> MetaClient::Statfs(const Caller& c) {
  pb::StatfsRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kRead);
  pb::StatfsReply reply;
  grpc::Status s = CallOn(*quick_channel_, &pb::MetaService::Stub::Statfs, request, &reply);
  std::lock_guard<std::mutex> lock(statfs_mu_);
  if (s.ok() && reply.status().code() == 0) {
    last_statfs_ = reply;
    return reply;
  }
  // Meta out of reach for kQuickCallMs: the last figures, which df and
  // umount(8) take over an error after retry_timeout.
  if (!s.ok() && last_statfs_.has_value()) return *last_statfs_;
  RETURN_IF_ERROR(Outcome(common::FromGrpcStatus(s), reply));
  return reply;
}

Status MetaClient::SetXattr(const Caller& c, uint64_t ino, const std::string& name, const std::string& value,
                            uint32_t flags) {
  RETURN_IF_ERROR(SettleCarried(ino));
  pb::SetXattrRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  request.set_ino(ino);
  request.set_name(name);
  request.set_value(value);
  request.set_flags(flags);
  pb::StatusReply reply;
  Status outcome = Outcome(Invoke(&pb::MetaService::Stub::SetXattr, request, &reply), reply);
  dir_attrs_.Drop(ino);  // its ctime moved
  acl_hints_.Forget(ino);
  return outcome;
}

Result<std::string> MetaClient::GetXattr(const Caller& c, uint64_t ino, const std::string& name) {
  if ((name == common::kAccessAclXattr && acl_hints_.KnownNone(ino)) || acl_hints_.KnownNoXattrs(ino)) {
    return Status(common::StatusCode::kNoAttribute, "no such attribute");
  }
  RETURN_IF_ERROR(SettleCarried(ino));
  pb::GetXattrRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kRead);
  request.set_ino(ino);
  request.set_name(name);
  pb::GetXattrReply reply;
  RETURN_IF_ERROR(Outcome(Invoke(&pb::MetaService::Stub::GetXattr, request, &reply), reply));
  return reply.value();
}

Result<std::vector<std::string>> MetaClient::ListXattr(const Caller& c, uint64_t ino) {
  if (acl_hints_.KnownNoXattrs(ino)) return std::vector<std::string>();
  RETURN_IF_ERROR(SettleCarried(ino));
  pb::ListXattrRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kRead);
  request.set_ino(ino);
  pb::ListXattrReply reply;
  RETURN_IF_ERROR(Outcome(Invoke(&pb::MetaService::Stub::ListXattr, request, &reply), reply));
  return std::vector<std::string>(reply.names().begin(), reply.names().end());
}

Status MetaClient::RemoveXattr(const Caller& c, uint64_t ino, const std::string& name) {
  RETURN_IF_ERROR(SettleCarried(ino));
  pb::RemoveXattrRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  request.set_ino(ino);
  request.set_name(name);
  pb::StatusReply reply;
  Status outcome = Outcome(Invoke(&pb::MetaService::Stub::RemoveXattr, request, &reply), reply);
  dir_attrs_.Drop(ino);  // its ctime moved
  acl_hints_.Forget(ino);
  return outcome;
}

Status MetaClient::Access(const Caller& c, uint64_t ino, uint32_t mask) {
  RETURN_IF_ERROR(SettleCarried(ino));
  pb::AccessRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kRead);
  request.set_ino(ino);
  request.set_mask(mask);
  pb::StatusReply reply;
  return Outcome(Invoke(&pb::MetaService::Stub::Access, request, &reply), reply);
}

Result<pb::Attr> MetaClient::Fallocate(const Caller& c, uint64_t ino, uint64_t handle_id, uint32_t mode,
                                       uint64_t offset, uint64_t length) {
  RETURN_IF_ERROR(SettleCarried(ino));
  pb::FallocateRequest request;
  FillContext(request.mutable_ctx(), &c, Kind::kChange);
  request.set_ino(ino);
  request.set_handle_id(handle_id);
  request.set_mode(mode);
  request.set_offset(offset);
  request.set_length(length);
  pb::AttrReply reply;
  RETURN_IF_ERROR(Outcome(Invoke(&pb::MetaService::Stub::Fallocate, request, &reply), reply));
  return reply.attr();
}

Result<std::optional<pb::Attr>> MetaClient::SetLock(pb::SetLockRequest request) {
  // No name or attribute changes: a lock leaves listings valid. Carries
  // nothing: meta refuses a lock in the way without applying the request.
  FillContext(request.mutable_ctx(), nullptr, Kind::kQuiet, /*carry=*/false);
  pb::AttrReply reply;
  const uint64_t epoch = overlay_.Epoch();
  RETURN_IF_ERROR(Outcome(Invoke(&pb::MetaService::Stub::SetLock, request, &reply), reply));
  if (!reply.has_attr()) return std::optional<pb::Attr>();
  overlay_.Apply(reply.mutable_attr(), epoch);
  Refreshed(reply.attr());
  return std::optional<pb::Attr>(reply.attr());
}

Result<pb::GetLockReply> MetaClient::GetLock(pb::GetLockRequest request) {
  FillContext(request.mutable_ctx(), nullptr, Kind::kRead);  // ctx.client_id: whose locks are this mount's
  pb::GetLockReply reply;
  RETURN_IF_ERROR(Outcome(Invoke(&pb::MetaService::Stub::GetLock, request, &reply), reply));
  return reply;
}

Result<pb::GetChunkLocationsReply> MetaClient::GetChunkLocations(uint64_t ino, uint64_t offset, uint64_t length) {
  pb::GetChunkLocationsRequest request;
  FillContext(request.mutable_ctx(), nullptr, Kind::kRead);
  request.set_ino(ino);
  request.set_offset(offset);
  request.set_length(length);
  pb::GetChunkLocationsReply reply;
  RETURN_IF_ERROR(Outcome(Invoke(&pb::MetaService::Stub::GetChunkLocations, request, &reply), reply));
  return reply;
}

Result<pb::ChunkLease> MetaClient::LeaseChunk(uint64_t ino, uint64_t handle_id, uint64_t chunk_index) {
  pb::LeaseChunkRequest request;
  FillContext(request.mutable_ctx(), nullptr, Kind::kChange);
  request.set_ino(ino);
  request.set_handle_id(handle_id);
  request.set_chunk_index(chunk_index);
  pb::LeaseChunkReply reply;
  RETURN_IF_ERROR(Outcome(Invoke(&pb::MetaService::Stub::LeaseChunk, request, &reply), reply));
  return reply.lease();
}

Result<pb::Attr> MetaClient::CommitWrite(pb::CommitWriteRequest request) {
  FillContext(request.mutable_ctx(), nullptr, Kind::kChange);
  pb::AttrReply reply;
  RETURN_IF_ERROR(Outcome(Invoke(&pb::MetaService::Stub::CommitWrite, request, &reply), reply));
  return reply.attr();
}

void MetaClient::ReportBadReplica(uint64_t chunk_id, uint64_t version, uint64_t node_id, const std::string& reason) {
  pb::ReportBadReplicaRequest request;
  FillContext(request.mutable_ctx(), nullptr, Kind::kChange);
  request.set_chunk_id(chunk_id);
  request.set_version(version);
  request.set_node_id(node_id);
  request.set_reason(reason);
  pb::StatusReply reply;
  Status s = Outcome(Invoke(&pb::MetaService::Stub::ReportBadReplica, request, &reply), reply);
  if (!s.ok()) spdlog::warn("reporting bad replica of chunk {} on node {:x} failed: {}", chunk_id, node_id, s.ToString());
}

}  // namespace dfs::fuse
