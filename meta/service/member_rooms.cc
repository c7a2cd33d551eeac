#include "meta/service/member_rooms.h"

namespace dfs::meta {

void MemberRooms::Report(uint64_t id, Room room, int64_t now_mono_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  heard_[id] = Heard{room, now_mono_ns};
}

std::optional<MemberRooms::Room> MemberRooms::Of(uint64_t id, int64_t now_mono_ns) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = heard_.find(id);
  if (it == heard_.end() || now_mono_ns - it->second.at_mono_ns > kFreshNs) return std::nullopt;
  return it->second.room;
}

std::vector<uint64_t> MemberRooms::Short(const std::vector<uint64_t>& voters, int64_t now_mono_ns) const {
  std::vector<uint64_t> out;
  for (uint64_t id : voters) {
    std::optional<Room> room = Of(id, now_mono_ns);
    if (room && room->short_of_room) out.push_back(id);
  }
  return out;
}

bool MemberRooms::AnyShort(int64_t now_mono_ns) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, heard] : heard_) {
    if (heard.room.short_of_room && now_mono_ns - heard.at_mono_ns <= kFreshNs) return true;
  }
  return false;
}

void MemberRooms::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  heard_.clear();
}

}  // namespace dfs::meta
