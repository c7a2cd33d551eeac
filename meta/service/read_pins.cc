#include "meta/service/read_pins.h"

#include <algorithm>
#include <random>

namespace dfs::meta {

void ReadPins::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  const uint32_t previous = incarnation_;
  std::random_device random;
  do {
    incarnation_ = random();
  } while (incarnation_ == previous);
  counter_ = 1;
  sessions_.clear();
  first_seen_.clear();
}

void ReadPins::TookOver(uint64_t client_id, bool reports_pins) {
  std::lock_guard<std::mutex> lock(mu_);
  Session s;
  s.unknown = reports_pins;
  sessions_[client_id] = s;
}

void ReadPins::Opened(uint64_t client_id, bool reports_pins) {
  std::lock_guard<std::mutex> lock(mu_);
  Session s;
  s.reports = reports_pins;
  sessions_[client_id] = s;
}

void ReadPins::Reported(const pb::KeepAliveRequest& report) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(report.client_id());
  if (it == sessions_.end()) return;
  Session& s = it->second;
  s.unknown = false;
  s.reports = report.reports_read_pins();
  if (!s.reports) {
    s.pins.clear();
    return;
  }
  const uint64_t epoch = report.pin_epoch();
  // Another leader's epoch says nothing about what this one saw.
  if ((epoch >> 32) != incarnation_) return;
  const auto counter = static_cast<uint32_t>(epoch);
  if (counter < s.epoch) return;  // an older report, overtaken
  s.epoch = counter;
  s.pins.assign(report.read_pins().begin(), report.read_pins().end());
  std::sort(s.pins.begin(), s.pins.end());
}

void ReadPins::Closed(uint64_t client_id) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(client_id);
}

bool ReadPins::MayPin(uint64_t client_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(client_id);
  return it != sessions_.end() && (it->second.unknown || it->second.reports);
}

uint64_t ReadPins::Epoch() {
  std::lock_guard<std::mutex> lock(mu_);
  return (uint64_t{incarnation_} << 32) | counter_;
}

std::vector<uint64_t> ReadPins::Freeable(const std::vector<uint64_t>& orphans) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<uint64_t> freeable;
  for (uint64_t ino : orphans) {
    const uint32_t seen = first_seen_.try_emplace(ino, counter_).first->second;
    bool free = true;
    for (const auto& [id, s] : sessions_) {
      if (s.unknown || (s.reports && (s.epoch <= seen || std::binary_search(s.pins.begin(), s.pins.end(), ino)))) {
        free = false;
        break;
      }
    }
    if (free) freeable.push_back(ino);
  }
  ++counter_;
  return freeable;
}

void ReadPins::Freed(const std::vector<uint64_t>& inos) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t ino : inos) first_seen_.erase(ino);
}

}  // namespace dfs::meta
