#include "tests/harness/process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <ctime>
#include <filesystem>
#include <set>

#include "common/file_util.h"

namespace dfs::testing {
namespace {

TEST(ProcessTest, Start_CapturesOutputAndExitStatus) {
  TempDir dir;
  auto p = Process::Start({"/bin/sh", "-c", "echo hello; exit 3"}, dir / "log");
  ASSERT_TRUE(p.ok());
  auto status = (*p)->Wait(5'000);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 3);
  EXPECT_EQ(*common::ReadFileToString(dir / "log"), "hello\n");
}

TEST(ProcessTest, Destructor_KillsWholeGroup) {
  TempDir dir;
  pid_t child_of_child = 0;
  {
    auto p = Process::Start({"/bin/sh", "-c", "sleep 30 & echo $! > " + (dir / "pid") + "; wait"}, dir / "log");
    ASSERT_TRUE(p.ok());
    for (int i = 0; i < 500 && !std::filesystem::exists(dir / "pid"); ++i) usleep(10'000);
    child_of_child = std::stoi(*common::ReadFileToString(dir / "pid"));
  }
  // The grandchild got SIGKILL with the group; it is gone once init reaps it.
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    gone = ::kill(child_of_child, 0) != 0;
    if (!gone) usleep(10'000);
  }
  EXPECT_TRUE(gone);
}

TEST(ProcessTest, WaitForReadyFile_ReturnsAddressOrExplains) {
  TempDir dir;
  auto ready = Process::Start(
      {"/bin/sh", "-c", "sleep 0.1; printf 'address=127.0.0.1:5\\n' > " + (dir / "ready") + "; sleep 30"},
      dir / "log");
  ASSERT_TRUE(ready.ok());
  auto address = WaitForReadyFile(dir / "ready", **ready, 5'000);
  ASSERT_TRUE(address.ok()) << address.status().ToString();
  EXPECT_EQ(*address, "127.0.0.1:5");

  auto dies = Process::Start({"/bin/sh", "-c", "exit 1"}, dir / "log2");
  ASSERT_TRUE(dies.ok());
  auto none = WaitForReadyFile(dir / "never", **dies, 5'000);
  EXPECT_EQ(none.status().code(), common::StatusCode::kUnavailable);
  EXPECT_NE(none.status().message().find("log2"), std::string_view::npos);
}

TEST(PickFreePortTest, PortsAreDistinctAndReservedAgainstOtherPrograms) {
  std::set<int> ports;
  for (int i = 0; i < 20; ++i) {
    const int port = PickFreePort();
    EXPECT_GE(port, 20'000);
    EXPECT_LE(port, 32'000);
    EXPECT_TRUE(ports.insert(port).second) << port << " given twice";
    // What local-cluster and tap.py look for before they take a port.
    struct stat st{};
    ASSERT_EQ(::stat(("/tmp/dfs-port-reservations/" + std::to_string(port)).c_str(), &st), 0) << port;
    EXPECT_LT(::time(nullptr) - st.st_mtime, 60) << port;
  }
}

}  // namespace
}  // namespace dfs::testing
