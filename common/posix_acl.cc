#include "common/posix_acl.h"

#include <sys/stat.h>

namespace dfs::common {

namespace {
constexpr uint32_t kAclXattrVersion = 2;
constexpr uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10, kOther = 0x20;

uint32_t Le32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 | uint32_t{u[3]} << 24;
}
uint16_t Le16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] | u[1] << 8);
}
}  // namespace

Result<std::vector<AclEntry>> ParseAcl(std::string_view value) {
  std::vector<AclEntry> entries;
  if (value.empty()) return entries;
  if (value.size() < 4 || (value.size() - 4) % 8 != 0) return InvalidArgumentError("ACL value of a bad size");
  if (Le32(value.data()) != kAclXattrVersion) return InvalidArgumentError("unknown ACL version");
  for (size_t pos = 4; pos < value.size(); pos += 8) {
    AclEntry e;
    e.tag = Le16(value.data() + pos);
    e.perm = Le16(value.data() + pos + 2);
    e.id = Le32(value.data() + pos + 4);
    entries.push_back(e);
  }
  if (entries.empty()) return entries;
  // posix_acl_valid: the tags in this order, each of USER_OBJ, GROUP_OBJ
  // and OTHER once, a mask if there are named entries.
  int state = kUserObj;
  bool named = false;
  for (const AclEntry& e : entries) {
    if (e.perm & ~7u) return InvalidArgumentError("ACL permission bits beyond rwx");
    switch (e.tag) {
      case kUserObj:
        if (state != kUserObj) return InvalidArgumentError("ACL entries out of order");
        state = kUser;
        break;
      case kUser:
        if (state != kUser) return InvalidArgumentError("ACL entries out of order");
        named = true;
        break;
      case kGroupObj:
        if (state != kUser) return InvalidArgumentError("ACL entries out of order");
        state = kGroup;
        break;
      case kGroup:
        if (state != kGroup) return InvalidArgumentError("ACL entries out of order");
        named = true;
        break;
      case kMask:
        if (state != kGroup) return InvalidArgumentError("ACL entries out of order");
        state = kOther;
        break;
      case kOther:
        if (state != kOther && !(state == kGroup && !named)) return InvalidArgumentError("ACL entries out of order");
        state = 0;
        break;
      default:
        return InvalidArgumentError("unknown ACL tag");
    }
  }
  // Named entries without a mask fail at ACL_OTHER above.
  if (state != 0) return InvalidArgumentError("ACL lacks an owner, group or other entry");
  return entries;
}

std::string EncodeAcl(const std::vector<AclEntry>& entries) {
  std::string out;
  out.reserve(4 + 8 * entries.size());
  auto put = [&](uint32_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  };
  put(kAclXattrVersion, 4);
  for (const AclEntry& e : entries) {
    put(e.tag, 2);
    put(e.perm, 2);
    put(e.id, 4);
  }
  return out;
}

std::string AclWithMode(std::string_view value, uint32_t mode) {
  Result<std::vector<AclEntry>> parsed = ParseAcl(value);
  if (!parsed.ok() || parsed->empty()) return std::string(value);
  std::vector<AclEntry>& entries = *parsed;
  AclEntry* group = nullptr;  // the mask if there is one, else the owning group
  for (AclEntry& e : entries) {
    switch (e.tag) {
      case kUserObj: e.perm = (mode >> 6) & 7; break;
      case kOther: e.perm = mode & 7; break;
      case kGroupObj:
        if (group == nullptr) group = &e;
        break;
      case kMask: group = &e; break;
      default: break;
    }
  }
  if (group != nullptr) group->perm = (mode >> 3) & 7;
  return EncodeAcl(entries);
}

InheritedAcl InheritAcl(std::string_view dir_default, uint32_t mode, uint32_t umask) {
  InheritedAcl out;
  Result<std::vector<AclEntry>> parsed = ParseAcl(dir_default);
  if ((mode & S_IFMT) == S_IFLNK || !parsed.ok() || parsed->empty()) {
    out.mode = (mode & S_IFMT) == S_IFLNK ? mode : mode & ~(umask & 0777);
    return out;
  }
  // posix_acl_create_masq: each of the owner, other and mask (else owning
  // group) entries and the mode's matching bits keep only what both allow.
  std::vector<AclEntry> entries = *parsed;
  bool equivalent = true;
  AclEntry* group = nullptr;
  for (AclEntry& e : entries) {
    switch (e.tag) {
      case kUserObj:
        e.perm &= (mode >> 6) & 7;
        mode &= (uint32_t{e.perm} << 6) | ~uint32_t{0700};
        break;
      case kOther:
        e.perm &= mode & 7;
        mode &= uint32_t{e.perm} | ~uint32_t{0007};
        break;
      case kGroupObj:
        if (group == nullptr) group = &e;
        break;
      case kMask:
        group = &e;
        equivalent = false;
        break;
      default: equivalent = false; break;
    }
  }
  if (group != nullptr) {
    group->perm &= (mode >> 3) & 7;
    mode &= (uint32_t{group->perm} << 3) | ~uint32_t{0070};
  }
  out.mode = mode;
  if (!equivalent) out.access = EncodeAcl(entries);
  if ((mode & S_IFMT) == S_IFDIR) out.default_acl = std::string(dir_default);
  return out;
}

AclMode ModeOfAcl(const std::vector<AclEntry>& entries) {
  AclMode out;
  uint32_t group_obj = 0;
  bool mask = false;
  for (const AclEntry& e : entries) {
    switch (e.tag) {
      case kUserObj: out.perm_bits |= uint32_t{e.perm} << 6; break;
      case kGroupObj: group_obj = e.perm; break;
      case kOther: out.perm_bits |= e.perm; break;
      case kMask:
        out.perm_bits |= uint32_t{e.perm} << 3;
        mask = true;
        out.equivalent = false;
        break;
      default: out.equivalent = false; break;
    }
  }
  if (!mask) out.perm_bits |= group_obj << 3;
  return out;
}

}  // namespace dfs::common
