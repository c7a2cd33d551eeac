#include "tests/integration/fuse/compare_local.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <vector>

namespace dfs::testing {

bool KernelMapsDirectIo() {
  utsname u{};
  int major = 0, minor = 0;
  if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 6 || (major == 6 && minor >= 6);
}

long ListingHash(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return -1;
  std::vector<std::string> listed;
  while (dirent* e = ::readdir(dir)) listed.emplace_back(e->d_name);
  ::closedir(dir);
  std::sort(listed.begin(), listed.end());
  std::string all;
  for (const std::string& n : listed) all += n + "/";
  return static_cast<long>(std::hash<std::string>()(all) % 1000003);
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<open failed: " + std::string(std::strerror(errno)) + ">";
  std::string out;
  char buf[1 << 16];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

std::map<std::string, TreeEntry> Snapshot(const std::string& root) {
  std::map<std::string, TreeEntry> out;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    struct stat st{};
    ::lstat(it->path().c_str(), &st);
    TreeEntry e;
    e.type = S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "link" : "file";
    e.nlink = e.type == "dir" ? 0 : st.st_nlink;  // directory link counts differ by design on some fs
    e.mode = st.st_mode;
    if (e.type == "file") {
      e.size = static_cast<uint64_t>(st.st_size);
      e.content = ReadFile(it->path().string());
    }
    out[it->path().string().substr(root.size())] = e;
  }
  return out;
}

void RunOpenFilesSequence(const std::string& dfs_root, const std::string& local_root, const SequenceOptions& options,
                          SequenceStats* stats) {
  const uint64_t seed = options.seed, steps = options.steps, trace = options.trace;
  std::mt19937_64 rng(seed);
  const std::vector<std::string> names = {"a", "b", "c", "d/a", "d/b", "e", "d"};
  auto pick = [&] { return names[rng() % names.size()]; };
  // Sizes and offsets: within the small-file limit (16 KiB), across a 64 KiB
  // block, and far out (many blocks on, with a hole before them).
  auto size = [&]() -> uint64_t {
    switch (rng() % 3) {
      case 0: return 1 + rng() % 4'096;
      case 1: return 1 + rng() % 20'000;
      default: return 1 + rng() % 200'000;
    }
  };
  auto offset = [&]() -> uint64_t {
    switch (rng() % 3) {
      case 0: return rng() % 16'384;
      case 1: return rng() % 70'000;
      default: return rng() % (1 << 20);
    }
  };
  struct Slot {
    int fd[2] = {-1, -1};
    bool append = false;
  };
  std::array<Slot, 3> slots;
  const std::array<std::string, 2> roots = {dfs_root, local_root};
  // What the local file system cannot do, the sequence does not ask of
  // either side (a /tmp without user xattrs or hole punching).
  bool local_xattrs = false, local_holes = false;
  {
    const std::string probe = local_root + "/probe";
    int fd = ::open(probe.c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    local_xattrs = ::fsetxattr(fd, "user.probe", "1", 1, 0) == 0;
    local_holes = ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0;
    ::close(fd);
    ::unlink(probe.c_str());
  }
  for (uint64_t step = 0; step < steps; ++step) {
    int op = static_cast<int>(rng() % 26);
    if (op >= 16 && op <= 19) op = 1;  // opens more often: most steps should find a file open
    if ((op == 8 && !local_holes) || (op == 15 && !local_xattrs)) op = 3;
    const std::string x = pick(), y = pick();
    const size_t slot_index = rng() % slots.size();
    Slot& slot = slots[slot_index];
    Slot& other = slots[rng() % slots.size()];
    const uint64_t off = offset(), len = size(), data_seed = rng(), choice = rng();
    std::vector<long> results;
    for (int side = 0; side < 2; ++side) {
      const std::string px = roots[side] + "/" + x, py = roots[side] + "/" + y;
      const int fd = slot.fd[side];
      long r = 0;
      errno = 0;
      switch (op) {
        case 0: r = ::mkdir(px.c_str(), 0755); break;
        case 1: {  // (re)open into the slot
          if (fd >= 0) ::close(fd);
          int flags = O_CREAT | O_RDWR;
          if (choice % 4 == 0) flags |= O_TRUNC;
          if (choice % 3 == 0) flags |= O_APPEND;
          slot.fd[side] = ::open(px.c_str(), flags, 0644);
          slot.append = (flags & O_APPEND) != 0;
          r = slot.fd[side] >= 0 ? 0 : -1;
          break;
        }
        case 2: {  // write through the slot (O_APPEND: at the end, whatever the offset)
          if (fd < 0) break;
          const std::string data = RandomBytes(len, data_seed);
          r = slot.append ? ::write(fd, data.data(), data.size())
                          : ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off));
          break;
        }
        case 3: {  // read through the slot
          if (fd < 0) break;
          std::string buf(len, '\0');
          r = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
          if (r > 0) r = static_cast<long>(std::hash<std::string>()(buf.substr(0, static_cast<size_t>(r))) % 1000003);
          break;
        }
        case 4:
          if (fd >= 0) r = ::ftruncate(fd, static_cast<off_t>(off));
          break;
        case 5:
          if (fd >= 0) r = ::fsync(fd);
          break;
        case 6: {  // the handle's view: size and link count (0 once unlinked)
          if (fd < 0) break;
          struct stat st{};
          r = ::fstat(fd, &st);
          if (r == 0) r = static_cast<long>(st.st_size * 10 + st.st_nlink);
          break;
        }
        case 7:
          if (fd >= 0) {
            r = ::close(fd);
            slot.fd[side] = -1;
          }
          break;
        case 8: {  // punch a hole through the slot, or reserve space past the end
          if (fd < 0) break;
          const int mode = choice % 2 == 0 ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : 0;
          r = ::fallocate(fd, mode, static_cast<off_t>(off), static_cast<off_t>(len));
          break;
        }
        case 9: r = ::truncate(px.c_str(), static_cast<off_t>(off)); break;
        case 10: r = ::rename(px.c_str(), py.c_str()); break;
        case 11: r = ::link(px.c_str(), py.c_str()); break;
        case 12: r = choice % 2 == 0 ? ::unlink(px.c_str()) : ::rmdir(px.c_str()); break;
        case 13: r = ::symlink(x.c_str(), py.c_str()); break;
        case 14: {  // chmod, then what stat says (a directory's size and links differ by design)
          // Setuid and setgid too: the writes after must drop them as
          // ext4 does (FUSE_HANDLE_KILLPRIV_V2), run as an ordinary user.
          static constexpr mode_t kModes[] = {0644, 0600, 0755, 0444, 04755, 02775, 06777, 02664};
          r = ::chmod(px.c_str(), kModes[choice % 8]);
          struct stat st{};
          if (r == 0) r = ::stat(px.c_str(), &st);
          if (r == 0) {
            r = static_cast<long>(st.st_mode);
            if (S_ISREG(st.st_mode)) r += static_cast<long>((st.st_size * 10 + st.st_nlink) << 17);
          }
          break;
        }
        case 15: {  // a user xattr set, then read back
          const std::string value = std::to_string(data_seed % 100'000);
          r = ::setxattr(px.c_str(), "user.k", value.data(), value.size(), 0);
          char buf[64];
          if (r == 0) r = ::getxattr(px.c_str(), "user.k", buf, sizeof buf);
          if (r > 0) r = static_cast<long>(std::hash<std::string>()(std::string(buf, static_cast<size_t>(r))) % 1000003);
          break;
        }
        case 20: {  // copy_file_range from the slot into another (or the same) open file
          if (fd < 0 || other.fd[side] < 0) break;
          loff_t in = static_cast<loff_t>(off), out = static_cast<loff_t>(choice % 100'000);
          r = ::copy_file_range(fd, &in, other.fd[side], &out, len, 0);
          break;
        }
        case 21: {  // rename that must not replace, or that swaps
          const unsigned flags = choice % 2 == 0 ? RENAME_NOREPLACE : RENAME_EXCHANGE;
          r = ::renameat2(AT_FDCWD, px.c_str(), AT_FDCWD, py.c_str(), flags);
          break;
        }
        case 22: {  // O_EXCL create into the slot
          if (fd >= 0) ::close(fd);
          slot.fd[side] = ::open(px.c_str(), O_CREAT | O_EXCL | O_RDWR, 0644);
          slot.append = false;
          r = slot.fd[side] >= 0 ? 0 : -1;
          break;
        }
        case 23: {  // a shared writable mapping of the slot's file, written inside its size
          // Of an O_APPEND handle (dfs opens those direct I/O) only where
          // the kernel can allow it (README: before Linux 6.6, ENODEV).
          if (fd < 0 || (slot.append && !KernelMapsDirectIo())) break;
          struct stat st{};
          if (::fstat(fd, &st) != 0 || st.st_size == 0) break;
          const uint64_t size = static_cast<uint64_t>(st.st_size);
          const uint64_t start = off % size, n = std::min(len, size - start);
          void* map = ::mmap(nullptr, start + n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
          if (map == MAP_FAILED) {
            r = -1;
            break;
          }
          const std::string data = RandomBytes(n, data_seed);
          std::memcpy(static_cast<char*>(map) + start, data.data(), n);
          r = ::msync(map, start + n, MS_SYNC);
          ::munmap(map, start + n);
          if (r == 0) r = static_cast<long>(n);
          break;
        }
        case 24: r = ListingHash(px); break;  // the listing of a directory, in order of name
        case 25: {  // utimens with given times, then what stat says of them
          const struct timespec times[2] = {{static_cast<time_t>(choice % 1'000'000'000), 0},
                                            {static_cast<time_t>(data_seed % 1'000'000'000), 123}};
          r = ::utimensat(AT_FDCWD, px.c_str(), times, 0);
          struct stat st{};
          if (r == 0) r = ::stat(px.c_str(), &st);
          if (r == 0) r = static_cast<long>((st.st_mtim.tv_sec % 1'000'000) * 1000 + st.st_mtim.tv_nsec % 1000);
          break;
        }
      }
      results.push_back(r < 0 ? -errno : r);
    }
    if (trace) {
      std::fprintf(stderr, "step %lu op %d slot %zu %s %s off %lu len %lu choice %lu: %ld %ld\n",
                   static_cast<unsigned long>(step), op, slot_index, x.c_str(), y.c_str(),
                   static_cast<unsigned long>(off), static_cast<unsigned long>(len),
                   static_cast<unsigned long>(choice % 12), results[0], results[1]);
      for (size_t k = 0; trace >= 2 && k < slots.size(); ++k) {
        struct stat s0{}, s1{};
        if (slots[k].fd[0] < 0 || slots[k].fd[1] < 0) continue;
        ::fstat(slots[k].fd[0], &s0);
        ::fstat(slots[k].fd[1], &s1);
        if (s0.st_size != s1.st_size) {
          std::fprintf(stderr, "  slot %zu sizes differ: %ld %ld\n", k, static_cast<long>(s0.st_size),
                       static_cast<long>(s1.st_size));
        }
      }
    }
    ASSERT_EQ(results[0], results[1]) << "DFS_DIFF_SEED=" << seed << " DFS_DIFF_STEPS=" << steps << ": step " << step
                                      << " op " << op << " " << x << " " << y << " off " << off << " len " << len
                                      << " choice " << choice << " (dfs first, local second)";
    stats->succeeded += results[1] >= 0;
    stats->through_handles += ((op >= 2 && op <= 8) || op == 20 || op == 23) && slot.fd[1] >= 0 && results[1] >= 0;
  }
  for (Slot& slot : slots) {
    for (int fd : slot.fd) {
      if (fd >= 0) ::close(fd);
    }
  }
}

}  // namespace dfs::testing
