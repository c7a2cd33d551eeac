// Benchmark (prints, never fails): 1 GiB written then read through one
// dfs-chunkserver on loopback with the real gRPC client (16 chunks of 64 MiB,
// 1 MiB messages, durable writes), against plain pwrite/pread of the same
// bytes into the same data folder (1 MiB calls, fdatasync per 64 MiB file).
// Reads are measured twice: cold (pages dropped with posix_fadvise DONTNEED
// first, so the disk is read) and hot (from the page cache). The raw figures
// are taken first, so the page cache holds no dirty chunkserver data while
// they run.
//
// Run: meson test -C build --benchmark, or directly with DFS_CHUNKSERVER_BIN set.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "chunkserver/service/chunk_client.h"
#include "chunkserver/service/test_server.h"
#include "chunkserver/store/test_util.h"
#include "common/chunk_geometry.h"
#include "common/file_util.h"
#include "common/leader_channel.h"
#include "tests/harness/process.h"

namespace dfs::chunkserver {
namespace {

constexpr int kChunks = 16;  // 16 x 64 MiB = 1 GiB
constexpr uint64_t kChunkBytes = common::kChunkSizeBytes;
constexpr size_t kIoBytes = 1 << 20;

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double MiBps(double seconds) { return static_cast<double>(kChunks * kChunkBytes) / (1 << 20) / seconds; }

void DropCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

std::string ChunkFile(const std::string& data_dir, uint64_t id) {
  return fmt::format("{}/chunks/{:02x}/{:016x}.1.chunk", data_dir, id & 0xff, id);
}

int Run() {
  dfs::testing::TempDir dir("cs-bench");
  const std::string data_dir = dir / "data";
  std::filesystem::create_directories(data_dir);
  if (!common::WriteFileAtomic(dir / "key", testing::kTestKey).ok()) return 0;
  auto process = dfs::testing::Process::Start(
      {dfs::testing::BinaryPath("DFS_CHUNKSERVER_BIN"), "--listen", "127.0.0.1:0", "--data", data_dir, "--meta",
       "127.0.0.1:1", "--cluster-key-file", dir / "key", "--ready-file", dir / "ready", "--log-level", "warn"},
      dir / "cs.log");
  if (!process.ok()) {
    std::printf("cannot start dfs-chunkserver: %s\n", process.status().ToString().c_str());
    return 0;
  }
  auto address = dfs::testing::WaitForReadyFile(dir / "ready", **process, 20'000);
  if (!address.ok()) {
    std::printf("dfs-chunkserver not ready: %s\n", address.status().ToString().c_str());
    return 0;
  }
  auto stub = pb::ChunkService::NewStub(common::MakeChannel(*address));
  std::string data = testing::RandomBytes(kChunkBytes, 1);
  std::vector<std::string> chunk_files;

  // Plain pwrite + fdatasync per file into the same folder.
  const std::string raw_dir = data_dir + "/raw";
  std::filesystem::create_directories(raw_dir);
  std::vector<std::string> raw_files;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kChunks; ++i) {
    data[0] = static_cast<char>(i);
    std::string path = fmt::format("{}/raw{}", raw_dir, i);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 0;
    for (uint64_t off = 0; off < kChunkBytes; off += kIoBytes) {
      if (::pwrite(fd, data.data() + off, kIoBytes, static_cast<off_t>(off)) != static_cast<ssize_t>(kIoBytes)) {
        std::printf("pwrite failed\n");
        ::close(fd);
        return 0;
      }
    }
    ::fdatasync(fd);
    ::close(fd);
    raw_files.push_back(path);
  }
  const double raw_write = Seconds(start);
  double raw_read[2] = {0, 0};
  std::string buffer(kIoBytes, '\0');
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 0) {
      for (const auto& f : raw_files) DropCache(f);
    }
    start = std::chrono::steady_clock::now();
    for (const auto& path : raw_files) {
      int fd = ::open(path.c_str(), O_RDONLY);
      for (uint64_t off = 0; off < kChunkBytes; off += kIoBytes) {
        if (::pread(fd, buffer.data(), kIoBytes, static_cast<off_t>(off)) != static_cast<ssize_t>(kIoBytes)) break;
      }
      ::close(fd);
    }
    raw_read[pass] = Seconds(start);
  }

  // gRPC write, durable.
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < kChunks; ++i) {
    data[0] = static_cast<char>(i);
    pb::WriteHeader header = testing::Header(1000 + static_cast<uint64_t>(i), 1, 0, 0);
    header.set_durable(true);
    auto written = WriteChunk(*stub, header, testing::Bytes(data), 120'000);
    if (!written.ok()) {
      std::printf("gRPC write failed: %s\n", written.status().ToString().c_str());
      return 0;
    }
    chunk_files.push_back(ChunkFile(data_dir, 1000 + static_cast<uint64_t>(i)));
  }
  const double grpc_write = Seconds(start);

  // gRPC read (verifying CRCs on the client), cold then hot.
  double grpc_read[2] = {0, 0};
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 0) {
      for (const auto& f : chunk_files) DropCache(f);
    }
    start = std::chrono::steady_clock::now();
    for (int i = 0; i < kChunks; ++i) {
      auto read = ReadChunk(*stub, 1000 + static_cast<uint64_t>(i), 1, 0, kChunkBytes, 120'000);
      if (!read.ok() || read->size() != kChunkBytes) {
        std::printf("gRPC read failed: %s\n", read.status().ToString().c_str());
        return 0;
      }
    }
    grpc_read[pass] = Seconds(start);
  }

  // Hot reads on two concurrent streams (8 chunks each): does a second
  // stream buy anything on this machine?
  start = std::chrono::steady_clock::now();
  {
    std::vector<std::thread> readers;
    for (int t = 0; t < 2; ++t) {
      readers.emplace_back([&, t] {
        for (int i = t; i < kChunks; i += 2) {
          (void)ReadChunk(*stub, 1000 + static_cast<uint64_t>(i), 1, 0, kChunkBytes, 120'000);
        }
      });
    }
    for (auto& r : readers) r.join();
  }
  const double grpc_read_parallel = Seconds(start);

  std::printf("dfs-chunkserver benchmark: 1 GiB (16 chunks x 64 MiB), 1 MiB messages/calls, loopback\n");
  std::printf("%-26s %12s %12s %8s\n", "", "gRPC MiB/s", "raw MiB/s", "ratio");
  auto row = [](const char* name, double grpc_s, double raw_s) {
    std::printf("%-26s %12.0f %12.0f %8.2f\n", name, MiBps(grpc_s), MiBps(raw_s), raw_s / grpc_s);
  };
  row("write (durable)", grpc_write, raw_write);
  row("read, cold (from disk)", grpc_read[0], raw_read[0]);
  row("read, hot (page cache)", grpc_read[1], raw_read[1]);
  row("read, hot, 2 gRPC streams", grpc_read_parallel, raw_read[1]);
  return 0;
}

}  // namespace
}  // namespace dfs::chunkserver

int main() { return dfs::chunkserver::Run(); }
