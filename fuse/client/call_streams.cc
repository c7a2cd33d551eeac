#include "fuse/client/call_streams.h"

#include <algorithm>
#include <utility>

namespace dfs::fuse {

namespace {
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

CallStreams::CallStreams(Options options) : options_(options) {
  watchdog_ = std::thread([this] { Watch(); });
}

CallStreams::~CallStreams() {
  std::map<const grpc::Channel*, std::vector<std::unique_ptr<Stream>>> idle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    idle.swap(idle_);
    // Calls still in flight end now rather than at their deadline.
    for (Stream* s : busy_) s->context.TryCancel();
  }
  cv_.notify_all();
  watchdog_.join();
  for (auto& [channel, streams] : idle) {
    for (std::unique_ptr<Stream>& s : streams) Close(std::move(s));
  }
}

size_t CallStreams::open_streams() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = busy_.size();
  for (const auto& [channel, streams] : idle_) n += streams.size();
  return n;
}

std::unique_ptr<CallStreams::Stream> CallStreams::Open(const std::shared_ptr<grpc::Channel>& channel) {
  auto s = std::make_unique<Stream>();
  s->channel = channel;
  // No deadline on the stream itself: each call's is kept by the watchdog.
  s->context.set_wait_for_ready(false);
  s->stub = pb::MetaService::NewStub(channel);
  s->rw = s->stub->Calls(&s->context);
  return s;
}

grpc::Status CallStreams::Close(std::unique_ptr<Stream> stream) {
  stream->context.TryCancel();
  return Ended(std::move(stream));
}

grpc::Status CallStreams::Ended(std::unique_ptr<Stream> stream) {
  pb::MetaReturn drain;
  while (stream->rw->Read(&drain)) {
  }
  return stream->rw->Finish();
}

void CallStreams::PutIdle(std::unique_ptr<Stream> stream) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::unique_ptr<Stream>>& idle = idle_[stream->channel.get()];
    if (!stopping_ && idle.size() < options_.max_idle_per_channel) {
      stream->idle_since_ns = NowNs();
      idle.push_back(std::move(stream));
      return;
    }
  }
  Close(std::move(stream));
}

grpc::Status CallStreams::Call(const std::shared_ptr<grpc::Channel>& channel,
                               std::chrono::system_clock::time_point deadline, const pb::MetaCall& call,
                               pb::MetaReturn* ret) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<Stream> s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the mount is stopping");
      if (auto it = refused_.find(channel.get()); it != refused_.end()) {
        if (it->second.channel.lock() == channel && std::chrono::system_clock::now() < it->second.until) {
          return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this meta refused call streams lately");
        }
        refused_.erase(it);
      }
      auto it = idle_.find(channel.get());
      if (it != idle_.end() && !it->second.empty()) {
        // The most recently used: the likeliest to be alive.
        s = std::move(it->second.back());
        it->second.pop_back();
      }
    }
    const bool reused = s != nullptr;
    if (!reused) s = Open(channel);
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      s->deadline = deadline;
      s->cancelled = false;
      busy_.insert(s.get());
      // Only a deadline before the watchdog's next look needs it awake: a
      // wake-up per call would cost a thread switch on every lookup.
      wake = deadline < next_watch_;
    }
    if (wake) cv_.notify_all();
    ret->Clear();
    const bool answered = s->rw->Write(call) && s->rw->Read(ret);
    bool cancelled;
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_.erase(s.get());
      cancelled = s->cancelled;
    }
    if (answered) {
      // An answer that raced the watchdog's cancel still counts; the
      // cancelled stream does not go back.
      if (cancelled) {
        Close(std::move(s));
      } else {
        PutIdle(std::move(s));
      }
      return grpc::Status::OK;
    }
    // Its Write or Read failed: the call is over, so its status (meta's
    // refusal of the stream, or why it broke) is there to read.
    grpc::Status ended = Ended(std::move(s));
    if (cancelled) return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no answer on the call stream in time");
    if (reused && attempt == 0) {
      // A stream that sat idle broke with its connection (a meta restarted,
      // a connection was reset): so did its idle siblings. Drop them and
      // try once on a fresh stream before calling the member unreachable.
      std::vector<std::unique_ptr<Stream>> stale;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = idle_.find(channel.get());
        if (it != idle_.end()) stale.swap(it->second);
      }
      for (std::unique_ptr<Stream>& old : stale) Close(std::move(old));
      continue;
    }
    if (ended.ok() || ended.error_code() == grpc::StatusCode::CANCELLED) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "call stream ended: " + ended.error_message());
    }
    if (ended.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      std::lock_guard<std::mutex> lock(mu_);
      refused_[channel.get()] = Refusal{channel, std::chrono::system_clock::now() +
                                                     std::chrono::milliseconds(options_.refusal_memory_ms)};
    }
    return ended;
  }
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "call stream broke twice");
}

void CallStreams::Watch() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    const auto now = std::chrono::system_clock::now();
    auto next = now + std::chrono::milliseconds(std::max<int64_t>(options_.idle_close_ms / 2, 10));
    for (Stream* s : busy_) {
      if (s->cancelled) continue;
      if (s->deadline <= now) {
        s->cancelled = true;
        s->context.TryCancel();  // the caller's Write or Read returns false
      } else {
        next = std::min(next, s->deadline);
      }
    }
    std::vector<std::unique_ptr<Stream>> expired;
    const int64_t oldest_ns = NowNs() - options_.idle_close_ms * 1'000'000;
    for (auto& [channel, streams] : idle_) {
      auto keep = std::stable_partition(streams.begin(), streams.end(), [&](const std::unique_ptr<Stream>& s) {
        return s->idle_since_ns > oldest_ns;
      });
      for (auto it = keep; it != streams.end(); ++it) expired.push_back(std::move(*it));
      streams.erase(keep, streams.end());
    }
    if (!expired.empty()) {
      lock.unlock();
      for (std::unique_ptr<Stream>& s : expired) Close(std::move(s));
      lock.lock();
      continue;
    }
    next_watch_ = next;
    cv_.wait_until(lock, next);
    next_watch_ = std::chrono::system_clock::time_point::min();  // awake: looks at every call
  }
}

}  // namespace dfs::fuse
