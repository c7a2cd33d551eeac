// libFuzzer target: the metadata log's entry decoder and StateMachine::Apply.
//
// The first input byte picks a mode:
//   < 128  raw: the rest is a Raft log buffer, decoded (meta/raft/framing.h)
//          and, if the frame holds, applied as is: malformed frames,
//          entries and ops must be refused or applied, never crash;
//   >= 128 structured: the rest drives a FuzzedDataProvider that builds an
//          Entry of namespace, session and chunk ops over small inode
//          numbers and a few names, so the fuzzer gets deep into Apply.
// One database serves the whole run (a temp folder), so state carries over
// from input to input as on a replica. After each input a read must still
// answer (the database is usable).
#include <fuzzer/FuzzedDataProvider.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <cstdlib>
#include <string>

#include "meta/raft/framing.h"
#include "meta/state_machine/state_machine.h"

namespace {

using dfs::meta::StateMachine;
namespace pb = dfs::pb;

StateMachine* Machine() {
  static StateMachine* machine = [] {
    // Under $TMPDIR: run-fuzz points it at a folder it removes afterwards
    // (libFuzzer's exits run no destructors).
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/dfs-fuzz-meta.XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) std::abort();
    StateMachine::Options options;
    options.synchronous = "OFF";
    auto opened = StateMachine::Open(dir + "/meta.db", options);
    if (!opened.ok()) std::abort();
    return opened->release();
  }();
  return machine;
}

std::string Name(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 9)) {
    case 0: return ".";
    case 1: return "..";
    case 2: return std::string(in.ConsumeIntegralInRange<size_t>(250, 260), 'n');
    case 3: return in.ConsumeRandomLengthString(16);  // any bytes: '/', NUL, not UTF-8
    default: return std::string(1, static_cast<char>('a' + in.ConsumeIntegralInRange<int>(0, 5)));
  }
}

uint64_t Ino(FuzzedDataProvider& in) {
  return in.ConsumeBool() ? 1 : in.ConsumeIntegralInRange<uint64_t>(0, 48);
}

void FillCtx(FuzzedDataProvider& in, pb::RequestContext* ctx) {
  ctx->mutable_creds()->set_uid(in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<uint32_t>(0, 1002));
  ctx->mutable_creds()->set_gid(in.ConsumeIntegralInRange<uint32_t>(0, 1002));
}

void FillOp(FuzzedDataProvider& in, pb::Op* op) {
  op->set_now_ns(in.ConsumeIntegral<int64_t>());
  if (in.ConsumeBool()) {
    op->set_client_id(in.ConsumeIntegralInRange<uint64_t>(0, 4));
    op->set_request_id(in.ConsumeIntegralInRange<uint64_t>(0, 64));
  }
  for (int i = in.ConsumeIntegralInRange<int>(0, 3); i > 0; --i) op->add_placement(in.ConsumeIntegralInRange<uint64_t>(1, 5));
  op->set_lease_expires_unix_ms(in.ConsumeIntegral<int64_t>());
  switch (in.ConsumeIntegralInRange<int>(0, 17)) {
    case 0: {
      auto* r = op->mutable_mkdir();
      FillCtx(in, r->mutable_ctx());
      r->set_parent(Ino(in));
      r->set_name(Name(in));
      r->set_mode(in.ConsumeIntegral<uint32_t>());
      break;
    }
    case 1: {
      auto* r = op->mutable_create();
      FillCtx(in, r->mutable_ctx());
      r->set_parent(Ino(in));
      r->set_name(Name(in));
      r->set_mode(in.ConsumeIntegral<uint32_t>());
      r->set_flags(in.ConsumeIntegral<uint32_t>());
      break;
    }
    case 2: {
      auto* r = op->mutable_mknod();
      FillCtx(in, r->mutable_ctx());
      r->set_parent(Ino(in));
      r->set_name(Name(in));
      r->set_mode(in.ConsumeIntegral<uint32_t>());
      r->set_rdev(in.ConsumeIntegral<uint32_t>());
      break;
    }
    case 3: {
      auto* r = op->mutable_symlink();
      FillCtx(in, r->mutable_ctx());
      r->set_parent(Ino(in));
      r->set_name(Name(in));
      r->set_target(in.ConsumeBool() ? std::string(in.ConsumeIntegralInRange<size_t>(4090, 4100), 't')
                                     : in.ConsumeRandomLengthString(32));
      break;
    }
    case 4: {
      auto* r = op->mutable_link();
      FillCtx(in, r->mutable_ctx());
      r->set_ino(Ino(in));
      r->set_new_parent(Ino(in));
      r->set_new_name(Name(in));
      break;
    }
    case 5: {
      auto* r = op->mutable_unlink();
      FillCtx(in, r->mutable_ctx());
      r->set_parent(Ino(in));
      r->set_name(Name(in));
      break;
    }
    case 6: {
      auto* r = op->mutable_rmdir();
      FillCtx(in, r->mutable_ctx());
      r->set_parent(Ino(in));
      r->set_name(Name(in));
      break;
    }
    case 7: {
      auto* r = op->mutable_rename();
      FillCtx(in, r->mutable_ctx());
      r->set_parent(Ino(in));
      r->set_name(Name(in));
      r->set_new_parent(Ino(in));
      r->set_new_name(Name(in));
      r->set_flags(in.ConsumeIntegralInRange<uint32_t>(0, 7));
      break;
    }
    case 8: {
      auto* r = op->mutable_set_attr();
      FillCtx(in, r->mutable_ctx());
      r->set_ino(Ino(in));
      r->set_valid(in.ConsumeIntegral<uint32_t>());
      r->set_handle_id(in.ConsumeIntegralInRange<uint64_t>(0, 16));
      r->set_mode(in.ConsumeIntegral<uint32_t>());
      r->set_uid(in.ConsumeIntegralInRange<uint32_t>(0, 1002));
      r->set_gid(in.ConsumeIntegralInRange<uint32_t>(0, 1002));
      r->set_size(in.ConsumeBool() ? in.ConsumeIntegral<uint64_t>() : in.ConsumeIntegralInRange<uint64_t>(0, 1 << 28));
      r->set_atime_ns(in.ConsumeIntegral<int64_t>());
      r->set_mtime_ns(in.ConsumeIntegral<int64_t>());
      break;
    }
    case 9: {
      auto* r = op->mutable_set_xattr();
      FillCtx(in, r->mutable_ctx());
      r->set_ino(Ino(in));
      r->set_name(in.ConsumeBool() ? "user." + Name(in) : in.ConsumeRandomLengthString(24));
      r->set_value(in.ConsumeBool() ? std::string(in.ConsumeIntegralInRange<size_t>(65530, 65540), 'v')
                                    : in.ConsumeRandomLengthString(64));
      r->set_flags(in.ConsumeIntegralInRange<uint32_t>(0, 3));
      break;
    }
    case 10: {
      auto* r = op->mutable_remove_xattr();
      FillCtx(in, r->mutable_ctx());
      r->set_ino(Ino(in));
      r->set_name("user." + Name(in));
      break;
    }
    case 11: {
      auto* r = op->mutable_open_session();
      r->mutable_request()->set_hostname(in.ConsumeRandomLengthString(16));
      r->set_lease_ms(in.ConsumeIntegral<uint32_t>());
      r->set_client_id(in.ConsumeIntegralInRange<uint64_t>(0, 4));
      break;
    }
    case 12: {
      auto* r = op->mutable_open();
      FillCtx(in, r->mutable_ctx());
      r->set_ino(Ino(in));
      r->set_flags(in.ConsumeIntegral<uint32_t>());
      break;
    }
    case 13: {
      auto* r = op->mutable_lease_chunk();
      FillCtx(in, r->mutable_request()->mutable_ctx());
      r->mutable_request()->set_ino(Ino(in));
      r->mutable_request()->set_handle_id(in.ConsumeIntegralInRange<uint64_t>(0, 16));
      r->mutable_request()->set_chunk_index(in.ConsumeIntegralInRange<uint64_t>(0, 4));
      r->set_lease_expires_unix_ms(in.ConsumeIntegral<int64_t>());
      break;
    }
    case 14: {
      auto* r = op->mutable_commit_write();
      FillCtx(in, r->mutable_ctx());
      r->set_ino(Ino(in));
      r->set_handle_id(in.ConsumeIntegralInRange<uint64_t>(0, 16));
      r->set_new_size(in.ConsumeIntegralInRange<uint64_t>(0, 1ull << 30));
      for (int i = in.ConsumeIntegralInRange<int>(0, 3); i > 0; --i) {
        auto* c = r->add_chunks();
        c->set_chunk_index(in.ConsumeIntegralInRange<uint64_t>(0, 16));
        c->set_chunk_id(in.ConsumeIntegralInRange<uint64_t>(0, 32));
        c->set_version(in.ConsumeIntegralInRange<uint64_t>(0, 8));
        c->set_length(in.ConsumeIntegralInRange<uint64_t>(0, 1ull << 27));
        c->add_replica_node_ids(in.ConsumeIntegralInRange<uint64_t>(1, 5));
      }
      break;
    }
    case 15: {
      auto* r = op->mutable_release();
      FillCtx(in, r->mutable_ctx());
      r->set_ino(Ino(in));
      r->set_handle_id(in.ConsumeIntegralInRange<uint64_t>(0, 16));
      break;
    }
    case 16: {
      auto* r = op->mutable_register_node()->mutable_request();
      r->set_node_id(in.ConsumeIntegralInRange<uint64_t>(1, 5));
      r->set_address("127.0.0.1:" + std::to_string(in.ConsumeIntegralInRange<int>(1, 9)));
      r->add_disks()->set_capacity_bytes(in.ConsumeIntegral<uint64_t>());
      break;
    }
    default: {
      auto* r = op->mutable_fallocate();
      FillCtx(in, r->mutable_ctx());
      r->set_ino(Ino(in));
      r->set_handle_id(in.ConsumeIntegralInRange<uint64_t>(0, 16));
      r->set_mode(in.ConsumeIntegralInRange<uint32_t>(0, 3));
      r->set_offset(in.ConsumeIntegral<uint64_t>());
      r->set_length(in.ConsumeIntegral<uint64_t>());
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  StateMachine* machine = Machine();
  if (data[0] < 128) {
    // libraft hands apply an 8-byte-aligned buffer; copy to get one.
    std::string copy(reinterpret_cast<const char*>(data + 1), size - 1);
    raft_buffer buffer{copy.data(), copy.size()};
    auto payload = dfs::meta::raft::DecodeEntry(buffer);
    if (payload.ok()) (void)machine->Apply(*payload);
    (void)machine->Apply(copy);  // and the bytes as an Entry without a frame
  } else {
    FuzzedDataProvider in(data + 1, size - 1);
    pb::Entry entry;
    entry.set_format(in.ConsumeIntegralInRange<uint32_t>(0, 2));
    for (int i = in.ConsumeIntegralInRange<int>(1, 8); i > 0 && in.remaining_bytes() > 0; --i) {
      FillOp(in, entry.add_ops());
    }
    (void)machine->Apply(entry.SerializeAsString());
  }
  pb::GetAttrRequest req;
  req.set_ino(1);
  pb::AttrReply reply;
  machine->GetAttr(req, &reply);
  if (reply.status().code() != 0) std::abort();  // the root vanished: the state is broken
  return 0;
}
