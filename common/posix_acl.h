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

// A stored access ACL after chmod to `mode` (posix_acl_chmod): the owner and
// other entries take the mode's bits, the mask (or, without one, the owning
// group entry) the group bits; named entries stay. A value that does not
// parse is returned as it is.
std::string AclWithMode(std::string_view value, uint32_t mode);

}  // namespace dfs::common
