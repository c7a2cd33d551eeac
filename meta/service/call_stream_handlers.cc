// MetaServiceImpl: the Calls stream. A mount sends its namespace and chunk
// map calls as messages of long-lived streams; each message runs the same
// handler body (DoCreate ...) as its unary twin and is answered in order.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "meta/service/meta_service.h"

namespace dfs::meta {

namespace {
// A Calls message's answer, waited for by the stream's thread.
class StreamAnswer final : public MetaServiceImpl::Answer {
 public:
  void Done(const grpc::Status& status, const std::string& leader) override {
    // Notified under the lock: the waiter destroys this once it sees done_.
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    leader_ = leader;
    done_ = true;
    cv_.notify_one();
  }
  grpc::Status Wait(std::string* leader) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    *leader = leader_;
    return status_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
  std::string leader_;
};

// The unary method a Calls message stands for ("/dfs.pb.MetaService/Create"
// for a CreateRequest), as the metrics name it.
const std::string& CallMethod(const pb::MetaCall& call) {
  static const std::vector<std::string> kNames = [] {
    const google::protobuf::OneofDescriptor* request = pb::MetaCall::descriptor()->FindOneofByName("request");
    std::vector<std::string> names;
    for (int i = 0; i < request->field_count(); ++i) {
      const google::protobuf::FieldDescriptor* field = request->field(i);
      std::string type = field->message_type()->name();  // "CreateRequest"
      if (type.ends_with("Request")) type.resize(type.size() - 7);
      if (names.size() <= static_cast<size_t>(field->number())) names.resize(field->number() + 1);
      names[field->number()] = "/dfs.pb.MetaService/" + type;
    }
    return names;
  }();
  static const std::string kNone = "/dfs.pb.MetaService/Calls(unknown)";
  const size_t n = static_cast<size_t>(call.request_case());
  return n < kNames.size() && !kNames[n].empty() ? kNames[n] : kNone;
}
}  // namespace

grpc::Status MetaServiceImpl::Calls(Ctx* ctx, grpc::ServerReaderWriter<pb::MetaReturn, pb::MetaCall>* stream) {
  if (grpc::Status s = admission_.Admit(ctx, common::Role::kClient); !s.ok()) return s;
  if (open_call_streams_.fetch_add(1) >= options_.max_call_streams) {
    open_call_streams_.fetch_sub(1);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too many call streams open (--max-call-streams " +
                                                                  std::to_string(options_.max_call_streams) +
                                                                  "); use unary calls");
  }
  const std::string peer = ctx->peer();
  pb::MetaCall call;
  pb::MetaReturn ret;
  while (stream->Read(&call)) {
    const auto start = std::chrono::steady_clock::now();
    ret.Clear();
    AnswerCall(peer, call, &ret);
    stream_calls_.fetch_add(1, std::memory_order_relaxed);
    if (call_metrics_ != nullptr) {
      call_metrics_->Record(CallMethod(call), ret.code(),
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    if (!stream->Write(ret)) break;
  }
  open_call_streams_.fetch_sub(1);
  return grpc::Status::OK;
}


template <typename Req, typename Reply>
grpc::Status MetaServiceImpl::Streamed(const Req& req, Reply* reply, Body<Req, Reply> body, std::string* leader) {
  StreamAnswer answer;
  (this->*body)(&req, reply, &answer);
  return answer.Wait(leader);
}

void MetaServiceImpl::AnswerCall(const std::string& peer, const pb::MetaCall& call, pb::MetaReturn* ret) {
  grpc::Status status = grpc::Status::OK;
  int64_t retry_after_ms = 0;
  std::string leader;
  if (status = admission_.Charge(peer, &retry_after_ms); !status.ok()) {
    ret->set_retry_after_ms(retry_after_ms);
  } else if (status = ServingStatus(&leader); status.ok()) {
    using M = MetaServiceImpl;
    switch (call.request_case()) {
      case pb::MetaCall::kLookup:
        status = Streamed(call.lookup(), ret->mutable_entry(), &M::DoLookup, &leader);
        break;
      case pb::MetaCall::kGetAttr:
        status = Streamed(call.get_attr(), ret->mutable_attr(), &M::DoGetAttr, &leader);
        break;
      case pb::MetaCall::kSetAttr:
        status = Streamed(call.set_attr(), ret->mutable_attr(), &M::DoSetAttr, &leader);
        break;
      case pb::MetaCall::kMknod:
        status = Streamed(call.mknod(), ret->mutable_entry(), &M::DoMknod, &leader);
        break;
      case pb::MetaCall::kCreate:
        status = Streamed(call.create(), ret->mutable_create(), &M::DoCreate, &leader);
        break;
      case pb::MetaCall::kMkdir:
        status = Streamed(call.mkdir(), ret->mutable_entry(), &M::DoMkdir, &leader);
        break;
      case pb::MetaCall::kUnlink:
        status = Streamed(call.unlink(), ret->mutable_status(), &M::DoUnlink, &leader);
        break;
      case pb::MetaCall::kRmdir:
        status = Streamed(call.rmdir(), ret->mutable_status(), &M::DoRmdir, &leader);
        break;
      case pb::MetaCall::kSymlink:
        status = Streamed(call.symlink(), ret->mutable_entry(), &M::DoSymlink, &leader);
        break;
      case pb::MetaCall::kReadlink:
        status = Streamed(call.readlink(), ret->mutable_readlink(), &M::DoReadlink, &leader);
        break;
      case pb::MetaCall::kLink:
        status = Streamed(call.link(), ret->mutable_entry(), &M::DoLink, &leader);
        break;
      case pb::MetaCall::kRename:
        status = Streamed(call.rename(), ret->mutable_status(), &M::DoRename, &leader);
        break;
      case pb::MetaCall::kOpen:
        status = Streamed(call.open(), ret->mutable_open(), &M::DoOpen, &leader);
        break;
      case pb::MetaCall::kRelease:
        status = Streamed(call.release(), ret->mutable_status(), &M::DoRelease, &leader);
        break;
      case pb::MetaCall::kAccess:
        status = Streamed(call.access(), ret->mutable_status(), &M::DoAccess, &leader);
        break;
      case pb::MetaCall::kGetChunkLocations:
        status = Streamed(call.get_chunk_locations(), ret->mutable_locations(), &M::DoGetChunkLocations, &leader);
        break;
      case pb::MetaCall::kLeaseChunk:
        status = Streamed(call.lease_chunk(), ret->mutable_lease(), &M::DoLeaseChunk, &leader);
        break;
      case pb::MetaCall::kCommitWrite:
        status = Streamed(call.commit_write(), ret->mutable_attr(), &M::DoCommitWrite, &leader);
        break;
      case pb::MetaCall::REQUEST_NOT_SET:
        // A newer client's call this meta does not know, or an empty
        // message: the client makes the unary call instead.
        status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "call stream message carries no request this meta knows");
        break;
    }
  }
  if (!status.ok()) ret->clear_reply();  // as a failed unary call has none
  if (!leader.empty()) ret->set_leader_hint(leader);
  ret->set_code(status.error_code());
  ret->set_message(status.error_message());
}

}  // namespace dfs::meta
