// The Linux POSIX ACL xattr (system.posix_acl_access and _default, format of
// include/uapi/linux/posix_acl_xattr.h: le32 version 2, then le16 tag, le16
// perm, le32 id per entry) and what setting an access ACL does to a file's
// mode, as fs/posix_acl.c does it. Hand-written: libacl parses this format
// only inside acl_get_file, with no public call for a value in memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace dfs::common {

// The two xattr names.
inline constexpr std::string_view kAccessAclXattr = "system.posix_acl_access";
inline constexpr std::string_view kDefaultAclXattr = "system.posix_acl_default";

struct AclEntry {
  uint16_t tag = 0;   // ACL_USER_OBJ 0x01, ACL_USER 0x02, ACL_GROUP_OBJ 0x04,
                      // ACL_GROUP 0x08, ACL_MASK 0x10, ACL_OTHER 0x20
  uint16_t perm = 0;  // rwx bits
  uint32_t id = 0;    // uid/gid for ACL_USER/ACL_GROUP
};

// The entries of an ACL xattr value, checked as posix_acl_valid does (one
// owner, owning-group and other entry, a mask when named entries exist,
// entries in tag order); InvalidArgument otherwise. No entries
// (an empty value or the header alone) means "no ACL".
Result<std::vector<AclEntry>> ParseAcl(std::string_view value);

// The xattr value of `entries` (the inverse of ParseAcl).
std::string EncodeAcl(const std::vector<AclEntry>& entries);

// What an access ACL makes of the permission bits (posix_acl_equiv_mode):
// owner from ACL_USER_OBJ, group from ACL_MASK if there is one (else
// ACL_GROUP_OBJ), other from ACL_OTHER. `equivalent`: the ACL says no more
// than those bits, so Linux keeps no ACL, only the mode.
struct AclMode {
  uint32_t perm_bits = 0;  // 0777 part
  bool equivalent = true;
};
AclMode ModeOfAcl(const std::vector<AclEntry>& entries);

// Whether an access ACL grants `want` (rwx bits) to a caller who is not
// root (posix_acl_permission): the owner by the owner entry; a named user by
// its entry within the mask; else every group entry that matches the
// caller's groups (the owning group by its entry) within the mask, any one
// granting all of `want`; else the other entry.
template <typename InGroup>
bool AclPermits(const std::vector<AclEntry>& entries, uint32_t owner_uid, uint32_t owner_gid, uint32_t uid,
                InGroup in_group, uint32_t want);

// What a new inode gets from its directory's default ACL (posix_acl_create
// with posix_acl_create_masq). `mode`: the type and the mode asked for,
// before any umask. Without a default ACL (empty or malformed `dir_default`)
// the umask applies and no ACL is made; with one, the umask does not, the
// new inode's permission bits are the mode's bits cut by the ACL's, its
// access ACL is that default ACL cut by the mode (kept only when it says
// more than the bits), and a new directory inherits the default ACL itself.
// Symlinks get no ACLs.
struct InheritedAcl {
  uint32_t mode = 0;
  std::string access;         // empty: none
  std::string default_acl;    // empty: none
};
InheritedAcl InheritAcl(std::string_view dir_default, uint32_t mode, uint32_t umask);

// A stored access ACL after chmod to `mode` (posix_acl_chmod): the owner and
// other entries take the mode's bits, the mask (or, without one, the owning
// group entry) the group bits; named entries stay. A value that does not
// parse is returned as it is.
std::string AclWithMode(std::string_view value, uint32_t mode);

template <typename InGroup>
bool AclPermits(const std::vector<AclEntry>& entries, uint32_t owner_uid, uint32_t owner_gid, uint32_t uid,
                InGroup in_group, uint32_t want) {
  constexpr uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10, kOther = 0x20;
  uint16_t mask = 7;
  for (const AclEntry& e : entries) {
    if (e.tag == kMask) mask = e.perm;
  }
  bool group_matched = false;
  for (const AclEntry& e : entries) {
    switch (e.tag) {
      case kUserObj:
        if (uid == owner_uid) return (e.perm & want) == want;
        break;
      case kUser:
        if (uid == e.id) return (e.perm & mask & want) == want;
        break;
      case kGroupObj:
      case kGroup:
        if (in_group(e.tag == kGroupObj ? owner_gid : e.id)) {
          group_matched = true;
          if ((e.perm & mask & want) == want) return true;
        }
        break;
      case kOther:
        return !group_matched && (e.perm & want) == want;
      default: break;
    }
  }
  return false;
}

}  // namespace dfs::common
