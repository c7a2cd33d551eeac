// Result<T>: either a value of type T or a non-OK Status (the shape of
// absl::StatusOr<T>; C++20 has no std::expected).
//
// Constructing a Result from an OK Status is a bug and aborts: an OK outcome
// must carry its value. value() on an error aborts with the status message.
//
// Thread-safety: a value type, like Status.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <type_traits>
#include <utility>

#include "common/status.h"

namespace dfs::common {

template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Status>, "Result<Status> is meaningless");

 public:
  // Implicit from a value and from an error, so `return value;` and
  // `return NotFoundError("...");` both work in a function returning Result<T>.
  Result(const T& value) : value_(value) {}
  Result(T&& value) : value_(std::move(value)) {}
  Result(Status status) : status_(std::move(status)) {
    if (status_.ok()) {
      std::fprintf(stderr, "dfs: Result constructed from an OK Status without a value\n");
      std::abort();
    }
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const& { return status_; }
  Status status() && { return std::move(status_); }

  const T& value() const& { CheckOk(); return *value_; }
  T& value() & { CheckOk(); return *value_; }
  T value() && { CheckOk(); return std::move(*value_); }

  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  // The value, or `fallback` on error.
  T value_or(T fallback) const& { return ok() ? *value_ : std::move(fallback); }

 private:
  void CheckOk() const {
    if (!status_.ok()) {
      std::fprintf(stderr, "dfs: value() of an error Result: %s\n", status_.ToString().c_str());
      std::abort();
    }
  }

  Status status_;
  std::optional<T> value_;
};

}  // namespace dfs::common
