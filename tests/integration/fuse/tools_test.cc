// Integration: programs issue 10 names (make and gcc, rsync, Python, git
// beyond add and commit, SQLite with writers at once) doing their ordinary
// work through a real mount, and the same work in a local directory,
// compared: what they produce, and what they decide from timestamps (make's
// rebuilds, rsync's "nothing to send", Python's reuse of its bytecode).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/harness/process.h"
#include "tests/integration/fuse/cluster_fixture.h"

namespace dfs::testing {
namespace {

class ToolsTest : public MountAndLocalTest {
 protected:
  // Runs `command` in `dir`; its exit code and output.
  static CommandResult In(const std::string& dir, const std::string& command) {
    return RunShell("cd '" + dir + "' && " + command);
  }
  // Runs `command` in both directories; the two results, mount's first.
  std::pair<CommandResult, CommandResult> Both(const std::string& command) const {
    return {In(dfs_, command), In(local_, command)};
  }
};

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// The lines of `text`, sorted (make -j2 may print its commands in any order).
std::vector<std::string> SortedLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  return lines;
}

constexpr int kModules = 24;

// A C project: a static library of kModules modules, each with its own
// header and a shared one, and a program that links it; make with -MMD
// header dependencies, built two at a time.
void WriteProject(const std::string& dir) {
  ASSERT_EQ(::mkdir((dir + "/include").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir + "/src").c_str(), 0755), 0);
  WriteFile(dir + "/include/common.h", "#define COMMON_BIAS 7\n");
  std::string decls, calls;
  for (int i = 0; i < kModules; ++i) {
    const std::string m = "mod" + std::to_string(i);
    WriteFile(dir + "/include/" + m + ".h", "int " + m + "(int x);\n");
    WriteFile(dir + "/src/" + m + ".c", "#include \"" + m + ".h\"\n#include \"common.h\"\nint " + m +
                                            "(int x) { return x * " + std::to_string(i + 1) + " + COMMON_BIAS; }\n");
    decls += "int " + m + "(int x);\n";
    calls += "  sum += " + m + "(" + std::to_string(i) + ");\n";
  }
  WriteFile(dir + "/src/main.c", "#include <stdio.h>\n" + decls + "int main(void) {\n  long sum = 0;\n" + calls +
                                     "  printf(\"%ld\\n\", sum);\n  return 0;\n}\n");
  WriteFile(dir + "/Makefile",
            "CFLAGS := -O2 -Iinclude -MMD -MP\n"
            "SRCS := $(sort $(wildcard src/*.c))\n"
            "OBJS := $(SRCS:src/%.c=build/%.o)\n"
            "LIBOBJS := $(filter-out build/main.o,$(OBJS))\n"
            "prog: build/main.o build/libmods.a\n"
            "\t$(CC) -o $@ build/main.o build/libmods.a\n"
            "build/libmods.a: $(LIBOBJS)\n"
            "\trm -f $@ && $(AR) rcs $@ $^\n"
            "build/%.o: src/%.c | build\n"
            "\t$(CC) $(CFLAGS) -c -o $@ $<\n"
            "build:\n"
            "\tmkdir -p build\n"
            "-include $(OBJS:.o=.d)\n");
}

TEST_F(ToolsTest, MakeAndGcc_BuildAsLocallyAndRebuildOnlyWhatChanged) {
  if (RunShell("command -v make && command -v gcc && command -v ar").exit_code != 0) GTEST_SKIP() << "no make/gcc";
  WriteProject(dfs_);
  WriteProject(local_);
  auto [on_dfs, on_local] = Both("make -j2 2>&1 && ./prog");
  ASSERT_EQ(on_dfs.exit_code, 0) << on_dfs.output;
  ASSERT_EQ(on_local.exit_code, 0) << on_local.output;
  EXPECT_EQ(SortedLines(on_dfs.output), SortedLines(on_local.output));
  // The same bytes out of the compiler, the archiver and the linker.
  CommandResult same = RunShell("cd '" + dfs_ + "' && for f in build/*.o build/libmods.a prog; do cmp \"$f\" '" +
                                local_ + "'/\"$f\" || exit 1; done");
  EXPECT_EQ(same.exit_code, 0) << same.output;

  // Up to date: every target is newer than what it was made from.
  EXPECT_EQ(In(dfs_, "make -q").exit_code, 0);

  // One module's header changed: that module, the archive and the program
  // are made again, nothing else. Then the header all modules include.
  for (const std::string touched : {"include/mod3.h", "include/common.h"}) {
    auto [dfs_make, local_make] = Both("touch " + touched + " && make -q; echo \"q=$?\" && make -j2 2>&1");
    ASSERT_EQ(dfs_make.exit_code, 0) << dfs_make.output;
    ASSERT_EQ(local_make.exit_code, 0) << local_make.output;
    EXPECT_NE(dfs_make.output.find("q=1"), std::string::npos) << touched << ": make -q saw nothing to do";
    EXPECT_EQ(SortedLines(dfs_make.output), SortedLines(local_make.output)) << touched;
    EXPECT_EQ(In(dfs_, "make -q").exit_code, 0) << touched;
  }
  auto [run_dfs, run_local] = Both("./prog");
  EXPECT_EQ(run_dfs.output, run_local.output);
}

TEST_F(ToolsTest, Rsync_CopiesATreeBothWaysAndASecondRunSendsNothing) {
  if (RunShell("command -v rsync").exit_code != 0) GTEST_SKIP() << "no rsync";
  // The source: a real tree, plus what /usr/include lacks: modification
  // times with nanoseconds, an unusual mode, a symbolic link, an empty
  // directory.
  const std::string src = local_root_.path() + "/src/";
  CommandResult r = RunShell("cp -a /usr/include/linux " + src + " && cd " + src +
                             " && touch -d @1700000000.123456789 types.h && touch -d @1600000000.5 fs.h && "
                             "chmod 751 fs.h && ln -s types.h link.h && touch -h -d @1400000000.000000001 link.h && "
                             "mkdir empty && touch -d @1500000000.987654321 empty android");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // --modify-window=-1: rsync compares times to the nanosecond (by default
  // to the second, and then it leaves alone a time within the same second).
  r = RunShell("rsync -a --modify-window=-1 " + src + " '" + dfs_ + "/tree/' && diff -r " + src + " '" + dfs_ +
               "/tree'");
  ASSERT_EQ(r.exit_code, 0) << r.output.substr(0, 2000);
  // rsync decides what to send from sizes and modification times: each came
  // back as it was set.
  r = RunShell("rsync -a -i --modify-window=-1 " + src + " '" + dfs_ + "/tree/'");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "") << "a second rsync found differences:\n" << r.output.substr(0, 2000);
  // Everything below the top (rsync leaves the top directory's mtime at
  // its own last rename there, locally too), and sizes of files only.
  const std::string list =
      "{ find . -mindepth 1 -type f -printf '%P f %m %s %T@\\n'; "
      "find . -mindepth 1 ! -type f -printf '%P %y %m %T@ %l\\n'; } | sort";
  CommandResult there = In(dfs_ + "/tree", list), here = In(src, list);
  ASSERT_EQ(there.exit_code, 0);
  EXPECT_EQ(there.output, here.output);

  // Changes on the mount go back to a local copy: one file grown, one
  // removed, one mode changed; rsync sends just those.
  r = RunShell("rsync -a --modify-window=-1 " + src + " '" + local_ + "/tree/'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = In(dfs_, "echo '/* more */' >> tree/types.h && rm tree/acct.h && chmod 600 tree/a.out.h");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunShell("rsync -a -i --delete --modify-window=-1 '" + dfs_ + "/tree/' '" + local_ + "/tree/'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(SortedLines(r.output),
            SortedLines("*deleting   acct.h\n.d..t...... ./\n.f...p..... a.out.h\n>f.st...... types.h\n"));
  there = In(dfs_ + "/tree", list);
  here = In(local_ + "/tree", list);
  ASSERT_EQ(there.exit_code, 0);
  EXPECT_EQ(there.output, here.output);
  EXPECT_EQ(RunShell("diff -r '" + dfs_ + "/tree' '" + local_ + "/tree'").exit_code, 0);
}

TEST_F(ToolsTest, Python_WritesItsBytecodeOnceAndAVenvWorks) {
  if (RunShell("command -v python3").exit_code != 0) GTEST_SKIP() << "no python3";
  for (const std::string& dir : {dfs_, local_}) {
    ASSERT_EQ(::mkdir((dir + "/pkg").c_str(), 0755), 0);
    WriteFile(dir + "/pkg/__init__.py", "from .a import f\n");
    WriteFile(dir + "/pkg/a.py", "from .b import g\ndef f():\n    return g() * 2\n");
    WriteFile(dir + "/pkg/b.py", "def g():\n    return 21\n");
  }
  // (PYTHONDONTWRITEBYTECODE in the environment would keep it from
  // writing any.)
  const std::string run = "env -u PYTHONDONTWRITEBYTECODE python3 -c 'import pkg; print(pkg.f())'";
  auto [first, first_local] = Both(run);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_EQ(first.output, "42\n");
  EXPECT_EQ(first.output, first_local.output);
  // Python wrote pkg/__pycache__/*.pyc (a temporary file renamed into
  // place) with each source's size and mtime; a second run finds them valid
  // and writes nothing.
  const std::string pycs = "find pkg/__pycache__ -name '*.pyc' -printf '%f %T@ %s\\n' | sort";
  CommandResult before = In(dfs_, pycs);
  ASSERT_EQ(before.exit_code, 0);
  EXPECT_EQ(SortedLines(before.output).size(), 3u) << before.output;
  CommandResult again = In(dfs_, run);
  EXPECT_EQ(again.output, "42\n");
  EXPECT_EQ(In(dfs_, pycs).output, before.output) << "the second run rewrote its bytecode";
  // A changed source is compiled again, as locally.
  auto [changed, changed_local] = Both("printf 'def g():\\n    return 25 * 2\\n' > pkg/b.py && " + run);
  EXPECT_EQ(changed.output, "100\n");
  EXPECT_EQ(changed.output, changed_local.output);

  auto [venv, venv_local] = Both("python3 -m venv --without-pip venv && venv/bin/python -c "
                                 "'import sys; print(sys.prefix != sys.base_prefix)'");
  EXPECT_EQ(venv.exit_code, 0) << venv.output;
  EXPECT_EQ(venv.output, "True\n");
  EXPECT_EQ(venv.output, venv_local.output);
}

// git beyond add and commit: a clone onto the mount, a local clone on the
// mount (git hard-links the objects), repacks that replace objects one
// clone still links, and fsck of both; the same steps locally must name the
// same trees.
TEST_F(ToolsTest, Git_ClonesRepacksAndChecksAsLocally) {
  if (RunShell("command -v git").exit_code != 0) GTEST_SKIP() << "no git";
  const std::string origin = local_root_.path() + "/origin";
  CommandResult r = RunShell(
      "git init -q " + origin + " && cd " + origin + " && cp -r /usr/include/linux/can* /usr/include/linux/a*.h . && "
      "git add -A && git -c user.name=t -c user.email=t@example.com commit -qm one && "
      "for i in 1 2 3 4; do echo \"/* $i */\" >> can.h && mv acct*.h acct$i.h && git add -A && "
      "git -c user.name=t -c user.email=t@example.com commit -qm c$i; done");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string steps =
      "git clone -q --no-local " + origin + " a && git clone -q a b && ls b/.git/objects/pack >/dev/null && "
      "(cd a && git gc -q --aggressive --prune=now && git fsck --full --strict 2>&1) && "
      "(cd b && git repack -adq && git fsck --full --strict 2>&1 && git status --porcelain) && "
      "for repo in a b; do (cd $repo && git rev-parse HEAD^{tree} && git log --format='%H %s' | head -3 && "
      "git count-objects -v | grep -E '^(count|in-pack)'); done";
  auto [on_dfs, on_local] = Both(steps);
  ASSERT_EQ(on_local.exit_code, 0) << on_local.output;
  EXPECT_EQ(on_dfs.exit_code, 0) << on_dfs.output;
  EXPECT_EQ(on_dfs.output, on_local.output);
  // The clone on the mount reads back whole through a fresh clone of it.
  r = RunShell("git clone -q --no-local '" + dfs_ + "/b' " + local_root_.path() + "/back && cd " +
               local_root_.path() + "/back && git fsck --full --strict && git diff --quiet " + origin + " . ; "
               "diff -r --exclude=.git " + origin + " .");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// SQLite in WAL mode, several writers at once: they share the -shm file
// through MAP_SHARED mappings and take byte-range locks on it all the time,
// while each commit writes and fsyncs the -wal file. The mount once learned
// the size of the -shm file from a lock's reply that meta made before this
// mount's own flush of it ended: reads of it then stopped at the old end,
// the kernel cut the file's size to match, and the writers died of SIGBUS.
TEST_F(ToolsTest, SqliteInWalMode_WritersAtOnceLoseNothing) {
  if (RunShell("command -v sqlite3").exit_code != 0) GTEST_SKIP() << "no sqlite3";
  constexpr int kWriters = 3, kRows = 200;
  // Three rounds, a fresh database each: the race it once lost showed in
  // about two runs of three (of two rounds each).
  for (const std::string db : {"one.db", "two.db", "three.db"}) {
    std::string writers;
    for (int w = 1; w <= kWriters; ++w) {
      writers += "(for i in $(seq 1 " + std::to_string(kRows) + "); do echo \"insert into t(who, v) values(" +
                 std::to_string(w) + ", randomblob(200));\"; done | sqlite3 -cmd '.timeout 30000' " + db +
                 "; echo \"w" + std::to_string(w) + "=$?\") & ";
    }
    const std::string run = "sqlite3 " + db + " 'pragma journal_mode=wal; create table t(id integer primary key, "
                            "who, v);' >/dev/null && { " + writers + "wait; } 2>&1 && sqlite3 " + db +
                            " 'pragma integrity_check; select who, count(*) from t group by who;'";
    auto [on_dfs, on_local] = Both(run);
    EXPECT_EQ(on_local.exit_code, 0) << on_local.output;
    EXPECT_EQ(on_dfs.exit_code, 0) << on_dfs.output;
    EXPECT_EQ(SortedLines(on_dfs.output), SortedLines(on_local.output)) << on_dfs.output;
    std::string want = "ok\n";
    for (int w = 1; w <= kWriters; ++w) want += std::to_string(w) + "|" + std::to_string(kRows) + "\n";
    EXPECT_NE(on_dfs.output.find(want), std::string::npos) << on_dfs.output;
  }
}

}  // namespace
}  // namespace dfs::testing
