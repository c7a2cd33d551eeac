#include "common/dir_page.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dfs::common {
namespace {

std::string Visit(const pb::ReadDirReply& page, size_t stop_after = SIZE_MAX, Status* status = nullptr) {
  std::string out;
  size_t n = 0;
  Status s = ForEachDirEntry(page, [&](const DirPageEntry& e) {
    out += std::string(e.name) + ":" + std::to_string(e.ino) + ":" + std::to_string(e.type) + ":" +
           std::to_string(e.cookie) + (e.attr ? "+attr" : "") + " ";
    return ++n < stop_after;
  });
  if (status) *status = s;
  return out;
}

pb::ReadDirReply Packed() {
  pb::ReadDirReply page;
  pb::PackedEntries* p = page.mutable_packed();
  p->set_names(std::string("a\0bc\0d\0", 7));
  for (uint64_t ino : {10, 11, 12}) p->add_inos(ino);
  for (uint32_t type : {0100000u, 0040000u, 0120000u}) p->add_types(type);
  for (uint64_t cookie : {3, 5, 9}) p->add_cookies(cookie);
  return page;
}

TEST(DirPageTest, PackedColumnsReadAsEntries) {
  pb::ReadDirReply page = Packed();
  EXPECT_EQ(Visit(page), "a:10:32768:3 bc:11:16384:5 d:12:40960:9 ");
  EXPECT_EQ(DirPageSize(page), 3u);
  EXPECT_EQ(Visit(page, 2), "a:10:32768:3 bc:11:16384:5 ") << "stops when told";
}

TEST(DirPageTest, EntriesOfAnOlderMetaOrOfReadDirPlus) {
  pb::ReadDirReply page;
  pb::DirEntry* e = page.add_entries();
  e->set_name("x");
  e->set_ino(7);
  e->set_type(0100000);
  e->set_cookie(1);
  e->mutable_attr()->set_ino(7);
  EXPECT_EQ(Visit(page), "x:7:32768:1+attr ");
  EXPECT_EQ(DirPageSize(page), 1u);
  EXPECT_EQ(Visit(pb::ReadDirReply()), "");
  EXPECT_EQ(DirPageSize(pb::ReadDirReply()), 0u);
}

TEST(DirPageTest, ColumnsThatDisagreeAreAnErrorAndVisitNothing) {
  std::vector<pb::ReadDirReply> bad(4, Packed());
  bad[0].mutable_packed()->add_inos(13);                                   // one ino too many
  bad[1].mutable_packed()->mutable_cookies()->RemoveLast();                // one cookie short
  bad[2].mutable_packed()->set_names(std::string("a\0bc\0d", 6));          // last name unterminated
  bad[3].mutable_packed()->set_names(std::string("a\0b\0c\0d\0", 8));      // a name too many
  for (const pb::ReadDirReply& page : bad) {
    Status s;
    EXPECT_EQ(Visit(page, SIZE_MAX, &s), "");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << page.ShortDebugString();
  }
}

}  // namespace
}  // namespace dfs::common
