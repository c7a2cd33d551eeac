// Status: the outcome of an operation, a code plus a human-readable message.
//
// Errors are values in dfs: every function that can fail returns a Status or a
// Result<T> (result.h), and exceptions never cross a module boundary. OK carries
// no message and costs one small object; an error owns its message string.
//
// The codes are abseil's canonical codes (numerically identical to gRPC's, so
// they cross the wire 1:1), plus the few POSIX outcomes a filesystem must keep
// apart. Each code maps to exactly one errno (for fuse/) and one gRPC code, in
// one table in status.cc.
//
// Thread-safety: a Status is a value; distinct objects may be used from
// different threads, one object is not synchronized.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace dfs::common {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,           // the caller gave up (EINTR)
  kUnknown = 2,             // an error with no better code (EIO)
  kInvalidArgument = 3,     // the request is malformed whatever the state (EINVAL)
  kDeadlineExceeded = 4,    // the deadline passed before the work finished (ETIMEDOUT)
  kNotFound = 5,            // no such file, chunk, node... (ENOENT)
  kAlreadyExists = 6,       // the name or object exists (EEXIST)
  kPermissionDenied = 7,    // the caller lacks access rights (EACCES)
  kResourceExhausted = 8,   // disk full, quota, too many requests (ENOSPC)
  kFailedPrecondition = 9,  // the state forbids it, e.g. a stale chunk version (EINVAL)
  kAborted = 10,            // lost a race with a concurrent change; retry (EAGAIN)
  kOutOfRange = 11,         // offset or size beyond what is representable (EFBIG)
  kUnimplemented = 12,      // the operation is not supported (EOPNOTSUPP)
  kInternal = 13,           // a broken invariant inside dfs (EIO)
  kUnavailable = 14,        // a peer cannot be reached now; retrying may help (EIO)
  kDataLoss = 15,           // stored bytes failed their checksum (EIO)
  kUnauthenticated = 16,    // the caller did not prove who it is (EACCES)
  // POSIX outcomes with no canonical twin. Numbered apart so that they never
  // collide with a future canonical code.
  kNotADirectory = 100,     // a path component or target is not a directory (ENOTDIR)
  kIsADirectory = 101,      // the operation needs a non-directory (EISDIR)
  kNotEmpty = 102,          // rmdir or rename onto a directory that has entries (ENOTEMPTY)
  kNameTooLong = 103,       // a name over 255 bytes (ENAMETOOLONG)
  kStale = 104,             // the inode or handle no longer exists (ESTALE)
  kNotPermitted = 105,      // only the owner or root may do this (EPERM)
  kNoAttribute = 106,       // no such extended attribute (ENODATA)
  kTooManyLinks = 107,      // nlink would exceed the maximum (EMLINK)
  kCrossDevice = 108,       // the operation would cross a mount root (EXDEV)
  kRange = 109,             // a name or result does not fit, e.g. an xattr name (ERANGE)
  kValueTooLarge = 110,     // an argument is too large, e.g. an xattr value (E2BIG)
};

// Name of the code as in abseil ("NOT_FOUND"); "UNKNOWN_CODE(n)" for values
// outside the enum (for example from a newer peer).
std::string_view StatusCodeName(StatusCode code);

// True if `value` is one of the enum's values (use before casting wire input).
bool IsKnownStatusCode(int value);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string_view message);

  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  // Empty for OK.
  std::string_view message() const;

  // "NOT_FOUND: lookup 'a' in inode 1". "OK" for OK.
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>"; OK stays OK.
  Status WithContext(std::string_view context) const;

  // The errno a local filesystem would return for this outcome (0 for OK).
  int ToErrno() const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message() == b.message();
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::unique_ptr<std::string> message_;  // null when OK
};

// Errno of a code (0 for kOk); the single code -> errno table.
int StatusCodeToErrno(StatusCode code);
// The gRPC status code (grpc::StatusCode value) that carries `code` on the wire.
int StatusCodeToGrpcCode(StatusCode code);

// Builds a Status from an errno captured right after a failing syscall, e.g.
// ErrnoStatus(saved_errno, "open /data/c1") -> "NOT_FOUND: open /data/c1: No such file or directory".
Status ErrnoStatus(int saved_errno, std::string_view context);

// Shorthands, in the shape of absl::NotFoundError(...).
Status InvalidArgumentError(std::string_view message);
Status NotFoundError(std::string_view message);
Status AlreadyExistsError(std::string_view message);
Status PermissionDeniedError(std::string_view message);
Status ResourceExhaustedError(std::string_view message);
Status FailedPreconditionError(std::string_view message);
Status OutOfRangeError(std::string_view message);
Status UnimplementedError(std::string_view message);
Status InternalError(std::string_view message);
Status UnavailableError(std::string_view message);
Status DataLossError(std::string_view message);
Status DeadlineExceededError(std::string_view message);

}  // namespace dfs::common

// Propagation: the only two macros. `expr` is evaluated once.
#define RETURN_IF_ERROR(expr)                                       \
  do {                                                              \
    ::dfs::common::Status dfs_status_tmp_ = (expr);                 \
    if (!dfs_status_tmp_.ok()) return dfs_status_tmp_;              \
  } while (0)

#define DFS_STATUS_CONCAT_INNER_(a, b) a##b
#define DFS_STATUS_CONCAT_(a, b) DFS_STATUS_CONCAT_INNER_(a, b)
// ASSIGN_OR_RETURN(auto x, ComputeX()); or ASSIGN_OR_RETURN(x, ComputeX());
#define ASSIGN_OR_RETURN(lhs, expr)                                              \
  auto DFS_STATUS_CONCAT_(dfs_result_, __LINE__) = (expr);                       \
  if (!DFS_STATUS_CONCAT_(dfs_result_, __LINE__).ok())                           \
    return std::move(DFS_STATUS_CONCAT_(dfs_result_, __LINE__)).status();        \
  lhs = std::move(DFS_STATUS_CONCAT_(dfs_result_, __LINE__)).value()
