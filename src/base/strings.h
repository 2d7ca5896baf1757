// Debian's Abseil has its own absl::string_view, distinct from std::string_view even in C++20.
// rill's API speaks std::string_view; these convert at the boundary.
#ifndef RILL_BASE_STRINGS_H_
#define RILL_BASE_STRINGS_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace rill::internal {

inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}
inline std::string_view FromAbsl(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}

// Kinesis' rule for stream, consumer, shard and application names: 1-128 characters of
// [a-zA-Z0-9_.-].
inline bool IsKinesisName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace rill::internal

#endif  // RILL_BASE_STRINGS_H_
