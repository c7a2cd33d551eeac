#include "common/status.h"

#include <array>
#include <cerrno>
#include <cstring>

namespace dfs::common {
namespace {

struct CodeInfo {
  StatusCode code;
  std::string_view name;
  int errno_value;
  int grpc_code;  // grpc::StatusCode; kept numeric so this file needs no gRPC header
};

// The one table: code -> name, errno, gRPC code. gRPC codes 0..16 equal the
// canonical codes; the POSIX outcomes travel as FAILED_PRECONDITION (9) when
// they must cross a wire as a call failure (normally they travel in replies).
constexpr std::array<CodeInfo, 28> kCodes = {{
    {StatusCode::kOk, "OK", 0, 0},
    {StatusCode::kCancelled, "CANCELLED", EINTR, 1},
    {StatusCode::kUnknown, "UNKNOWN", EIO, 2},
    {StatusCode::kInvalidArgument, "INVALID_ARGUMENT", EINVAL, 3},
    {StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED", ETIMEDOUT, 4},
    {StatusCode::kNotFound, "NOT_FOUND", ENOENT, 5},
    {StatusCode::kAlreadyExists, "ALREADY_EXISTS", EEXIST, 6},
    {StatusCode::kPermissionDenied, "PERMISSION_DENIED", EACCES, 7},
    {StatusCode::kResourceExhausted, "RESOURCE_EXHAUSTED", ENOSPC, 8},
    {StatusCode::kFailedPrecondition, "FAILED_PRECONDITION", EINVAL, 9},
    {StatusCode::kAborted, "ABORTED", EAGAIN, 10},
    {StatusCode::kOutOfRange, "OUT_OF_RANGE", EFBIG, 11},
    {StatusCode::kUnimplemented, "UNIMPLEMENTED", EOPNOTSUPP, 12},
    {StatusCode::kInternal, "INTERNAL", EIO, 13},
    {StatusCode::kUnavailable, "UNAVAILABLE", EIO, 14},
    {StatusCode::kDataLoss, "DATA_LOSS", EIO, 15},
    {StatusCode::kUnauthenticated, "UNAUTHENTICATED", EACCES, 16},
    {StatusCode::kNotADirectory, "NOT_A_DIRECTORY", ENOTDIR, 9},
    {StatusCode::kIsADirectory, "IS_A_DIRECTORY", EISDIR, 9},
    {StatusCode::kNotEmpty, "NOT_EMPTY", ENOTEMPTY, 9},
    {StatusCode::kNameTooLong, "NAME_TOO_LONG", ENAMETOOLONG, 3},
    {StatusCode::kStale, "STALE", ESTALE, 5},
    {StatusCode::kNotPermitted, "NOT_PERMITTED", EPERM, 7},
    {StatusCode::kNoAttribute, "NO_ATTRIBUTE", ENODATA, 5},
    {StatusCode::kTooManyLinks, "TOO_MANY_LINKS", EMLINK, 9},
    {StatusCode::kCrossDevice, "CROSS_DEVICE", EXDEV, 9},
    {StatusCode::kRange, "RANGE", ERANGE, 11},
    {StatusCode::kValueTooLarge, "VALUE_TOO_LARGE", E2BIG, 3},
}};

const CodeInfo* Find(StatusCode code) {
  for (const CodeInfo& info : kCodes) {
    if (info.code == code) return &info;
  }
  return nullptr;
}

// errno -> code, for ErrnoStatus. Anything unlisted is kUnknown (EIO-like).
StatusCode CodeForErrno(int e) {
  switch (e) {
    case 0: return StatusCode::kOk;
    case ENOENT: return StatusCode::kNotFound;
    case EEXIST: return StatusCode::kAlreadyExists;
    case EACCES: return StatusCode::kPermissionDenied;
    case EPERM: return StatusCode::kNotPermitted;
    case ENOSPC: case EDQUOT: return StatusCode::kResourceExhausted;
    case EINVAL: return StatusCode::kInvalidArgument;
    case ENOTDIR: return StatusCode::kNotADirectory;
    case EISDIR: return StatusCode::kIsADirectory;
    case ENOTEMPTY: return StatusCode::kNotEmpty;
    case ENAMETOOLONG: return StatusCode::kNameTooLong;
    case ESTALE: return StatusCode::kStale;
    case ENODATA: return StatusCode::kNoAttribute;
    case EMLINK: return StatusCode::kTooManyLinks;
    case EXDEV: return StatusCode::kCrossDevice;
    case ERANGE: return StatusCode::kRange;
    case E2BIG: return StatusCode::kValueTooLarge;
    case EFBIG: return StatusCode::kOutOfRange;
    case EINTR: return StatusCode::kCancelled;
    case EAGAIN: return StatusCode::kAborted;
    case ETIMEDOUT: return StatusCode::kDeadlineExceeded;
    case EOPNOTSUPP: case ENOSYS: return StatusCode::kUnimplemented;
    case ECONNREFUSED: case ECONNRESET: case EHOSTUNREACH: return StatusCode::kUnavailable;
    default: return StatusCode::kUnknown;
  }
}

}  // namespace

std::string_view StatusCodeName(StatusCode code) {
  const CodeInfo* info = Find(code);
  return info != nullptr ? info->name : "UNKNOWN_CODE";
}

bool IsKnownStatusCode(int value) { return Find(static_cast<StatusCode>(value)) != nullptr; }

int StatusCodeToErrno(StatusCode code) {
  const CodeInfo* info = Find(code);
  return info != nullptr ? info->errno_value : EIO;
}

int StatusCodeToGrpcCode(StatusCode code) {
  const CodeInfo* info = Find(code);
  return info != nullptr ? info->grpc_code : 2;
}

Status::Status(StatusCode code, std::string_view message) : code_(code) {
  if (code_ != StatusCode::kOk) message_ = std::make_unique<std::string>(message);
}

Status::Status(const Status& other) : code_(other.code_) {
  if (other.message_) message_ = std::make_unique<std::string>(*other.message_);
}

Status& Status::operator=(const Status& other) {
  if (this != &other) {
    code_ = other.code_;
    message_ = other.message_ ? std::make_unique<std::string>(*other.message_) : nullptr;
  }
  return *this;
}

std::string_view Status::message() const {
  return message_ ? std::string_view(*message_) : std::string_view();
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out;
  const CodeInfo* info = Find(code_);
  if (info != nullptr) {
    out = info->name;
  } else {
    out = "UNKNOWN_CODE(" + std::to_string(static_cast<int>(code_)) + ")";
  }
  if (!message().empty()) {
    out += ": ";
    out += message();
  }
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  if (!message().empty()) {
    msg += ": ";
    msg += message();
  }
  return Status(code_, msg);
}

int Status::ToErrno() const { return StatusCodeToErrno(code_); }

Status ErrnoStatus(int saved_errno, std::string_view context) {
  StatusCode code = CodeForErrno(saved_errno);
  if (code == StatusCode::kOk) code = StatusCode::kUnknown;  // a failure with errno 0 is still a failure
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(saved_errno);
  return Status(code, msg);
}

Status InvalidArgumentError(std::string_view m) { return Status(StatusCode::kInvalidArgument, m); }
Status NotFoundError(std::string_view m) { return Status(StatusCode::kNotFound, m); }
Status AlreadyExistsError(std::string_view m) { return Status(StatusCode::kAlreadyExists, m); }
Status PermissionDeniedError(std::string_view m) { return Status(StatusCode::kPermissionDenied, m); }
Status ResourceExhaustedError(std::string_view m) { return Status(StatusCode::kResourceExhausted, m); }
Status FailedPreconditionError(std::string_view m) { return Status(StatusCode::kFailedPrecondition, m); }
Status OutOfRangeError(std::string_view m) { return Status(StatusCode::kOutOfRange, m); }
Status UnimplementedError(std::string_view m) { return Status(StatusCode::kUnimplemented, m); }
Status InternalError(std::string_view m) { return Status(StatusCode::kInternal, m); }
Status UnavailableError(std::string_view m) { return Status(StatusCode::kUnavailable, m); }
Status DataLossError(std::string_view m) { return Status(StatusCode::kDataLoss, m); }
Status DeadlineExceededError(std::string_view m) { return Status(StatusCode::kDeadlineExceeded, m); }

}  // namespace dfs::common
