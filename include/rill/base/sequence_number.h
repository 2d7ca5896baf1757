// SequenceNumber: the number a stream gives each record it accepts.
//
// What is promised, as in Kinesis: a sequence number is unique within its stream; within a shard
// it strictly increases in put order; a record put with sequence_number_for_ordering = S gets a
// number greater than S; the children of a resharded shard number above their parents. What is
// NOT promised: density. Numbers jump; never compute "the next one" by adding 1.
//
// A sequence number is a 128-bit unsigned integer, printed in decimal (38 digits) and compared
// numerically. It encodes the stream and shard it came from, so a shard rejects a number from
// another shard or another stream with kInvalidArgument.
//
// Example:
//   absl::StatusOr<rill::SequenceNumber> s = rill::SequenceNumber::Parse(text);
//   if (s.ok() && *s > last_seen) { ... }
//
// Thread safety: an immutable value.
#ifndef RILL_BASE_SEQUENCE_NUMBER_H_
#define RILL_BASE_SEQUENCE_NUMBER_H_

#include <compare>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"

namespace rill {

class SequenceNumber {
 public:
  // Zero, below every number a stream issues.
  constexpr SequenceNumber() = default;
  constexpr explicit SequenceNumber(absl::uint128 value) : value_(value) {}

  // Parses a decimal sequence number (`0|[1-9][0-9]*`, at most 2^128 - 1). Garbage, leading
  // zeros, signs, spaces or overflow are kInvalidArgument. Whether the number belongs to a given
  // shard is checked where it is used (GetShardIterator, PutRecord's ordering).
  [[nodiscard]] static absl::StatusOr<SequenceNumber> Parse(std::string_view decimal);

  constexpr absl::uint128 value() const { return value_; }

  // The decimal form.
  std::string ToString() const;

  friend constexpr bool operator==(SequenceNumber a, SequenceNumber b) {
    return a.value_ == b.value_;
  }
  friend constexpr std::strong_ordering operator<=>(SequenceNumber a, SequenceNumber b) {
    if (a.value_ == b.value_) return std::strong_ordering::equal;
    return a.value_ < b.value_ ? std::strong_ordering::less : std::strong_ordering::greater;
  }
  friend std::ostream& operator<<(std::ostream& os, SequenceNumber s) { return os << s.ToString(); }

 private:
  absl::uint128 value_ = 0;
};

}  // namespace rill

#endif  // RILL_BASE_SEQUENCE_NUMBER_H_
