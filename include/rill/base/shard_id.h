// ShardId: the name of one shard of a stream, "shardId-000000000000" style.
//
// Shard ids are handed out in order, 0, 1, 2, ..., and never reused: the children of a split or a
// merge take the next free numbers. A ShardId is a small value (no allocation); ToString() gives
// the Kinesis spelling, and comparisons with a string compare against that spelling.
//
// Example:
//   rill::ShardId id(3);
//   id.ToString();                       // "shardId-000000000003"
//   id == "shardId-000000000003";        // true
//   rill::ShardId::Parse("3");           // ShardId(3): Kinesis also accepts the bare number
//
// Thread safety: an immutable value.
#ifndef RILL_BASE_SHARD_ID_H_
#define RILL_BASE_SHARD_ID_H_

#include <compare>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rill {

class ShardId {
 public:
  // The largest index Kinesis resolves (2^31 - 1).
  static constexpr uint32_t kMaxIndex = 2147483647;

  constexpr ShardId() = default;
  constexpr explicit ShardId(uint32_t index) : index_(index) {}

  // Parses "shardId-<n>" or "<n>" with 0 <= n <= kMaxIndex. A string that is a valid Kinesis shard
  // id (1-128 characters of [a-zA-Z0-9_.-]) but names no possible shard is kResourceNotFound, as
  // Kinesis answers; anything else is kInvalidArgument.
  [[nodiscard]] static absl::StatusOr<ShardId> Parse(std::string_view text);

  constexpr uint32_t index() const { return index_; }

  // "shardId-" and the index as 12 zero-padded digits.
  std::string ToString() const;

  friend constexpr bool operator==(ShardId a, ShardId b) = default;
  friend constexpr auto operator<=>(ShardId a, ShardId b) = default;
  // True when `text` is this id's Kinesis spelling.
  friend bool operator==(ShardId id, std::string_view text) { return id.ToString() == text; }
  friend std::ostream& operator<<(std::ostream& os, ShardId id) { return os << id.ToString(); }

 private:
  uint32_t index_ = 0;
};

}  // namespace rill

#endif  // RILL_BASE_SHARD_ID_H_
