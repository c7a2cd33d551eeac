#include "meta/service/proposer.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/check.h"

namespace dfs::meta {

LocalProposer::LocalProposer(StateMachine* state_machine, size_t max_ops_per_entry)
    : state_machine_(state_machine), max_ops_per_entry_(max_ops_per_entry) {
  applier_ = std::thread([this] { Run(); });
}

LocalProposer::~LocalProposer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  applier_.join();
  for (Pending& pending : queue_) pending.done(common::UnavailableError("shutting down"));
}

std::future<common::Result<pb::OpResult>> Proposer::Propose(pb::Op op) {
  auto promise = std::make_shared<std::promise<common::Result<pb::OpResult>>>();
  std::future<common::Result<pb::OpResult>> future = promise->get_future();
  ProposeAsync(std::move(op), [promise](common::Result<pb::OpResult> result) { promise->set_value(std::move(result)); });
  return future;
}

void LocalProposer::ProposeAsync(pb::Op op, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      queue_.push_back(Pending{std::move(op), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  done(common::UnavailableError("shutting down"));
}

LocalProposer::Stats LocalProposer::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void LocalProposer::Run() {
  std::vector<Pending> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      while (!queue_.empty() && batch.size() < max_ops_per_entry_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    pb::Entry entry;
    entry.set_format(1);
    for (Pending& pending : batch) *entry.add_ops() = std::move(pending.op);
    // Through bytes, as the Raft log will carry it.
    std::string bytes = entry.SerializeAsString();
    common::Result<std::vector<pb::OpResult>> results = state_machine_->Apply(bytes);
    CHECK(results.ok());  // we built the Entry ourselves
    CHECK(results->size() == batch.size());
    {
      // Counted before anyone hears of the result, so a caller that saw its
      // result also sees it counted.
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.entries;
      stats_.ops += batch.size();
    }
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move((*results)[i]));
    batch.clear();
  }
}

}  // namespace dfs::meta
