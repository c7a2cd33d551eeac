#include "common/posix_acl.h"

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

std::string AclWithMode(std::string_view value, uint32_t mode) {
  std::string out(value);
  if (!ParseAcl(value).ok()) return out;
  auto set_perm = [&](size_t pos, uint32_t perm) {
    out[pos + 2] = static_cast<char>(perm & 7);
    out[pos + 3] = '\0';
  };
  size_t group_obj = 0, mask = 0;  // 0: none (entries start at 4)
  for (size_t pos = 4; pos + 8 <= out.size(); pos += 8) {
    switch (Le16(out.data() + pos)) {
      case kUserObj: set_perm(pos, mode >> 6); break;
      case kOther: set_perm(pos, mode); break;
      case kGroupObj: group_obj = pos; break;
      case kMask: mask = pos; break;
      default: break;
    }
  }
  if (mask != 0) {
    set_perm(mask, mode >> 3);
  } else if (group_obj != 0) {
    set_perm(group_obj, mode >> 3);
  }
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
