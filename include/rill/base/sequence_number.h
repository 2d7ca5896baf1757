// SequenceNumber: the number a stream gives each record it accepts.
//
// What is promised, as in Kinesis: a sequence number is unique within its stream; within a shard
// it strictly increases in put order; a record put with sequence_number_for_ordering = S gets a
// number greater than S; the children of a resharded shard number above their parents. What is
// NOT promised: density. Numbers jump; never compute "the next one" by adding 1.
//
// A sequence number is an unsigned integer of up to 192 bits, printed in decimal and compared
// numerically. rill's streams issue 128-bit numbers (38 digits) that encode the stream and shard
// they came from, so a shard rejects a number from another shard or another stream with
// kInvalidArgument. Kinesis itself issues 56-digit numbers (about 185 bits), which is why the type
// holds 192: a rill::kinesis::Client reading a Kinesis endpoint hands them back unchanged.
//
// Example:
//   absl::StatusOr<rill::SequenceNumber> s = rill::SequenceNumber::Parse(text);
//   if (s.ok() && *s > last_seen) { ... }
//
// Thread safety: an immutable value.
#ifndef RILL_BASE_SEQUENCE_NUMBER_H_
#define RILL_BASE_SEQUENCE_NUMBER_H_

#include <compare>
#include <cstdint>
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
  constexpr explicit SequenceNumber(absl::uint128 value)
      : mid_(absl::Uint128High64(value)), low_(absl::Uint128Low64(value)) {}
  // The number high64 * 2^128 + low128.
  static constexpr SequenceNumber FromParts(uint64_t high64, absl::uint128 low128) {
    SequenceNumber s(low128);
    s.high_ = high64;
    return s;
  }

  // Parses a decimal sequence number (`0|[1-9][0-9]*`, at most 2^192 - 1: 58 digits). Garbage,
  // leading zeros, signs, spaces or overflow are kInvalidArgument. Whether the number belongs to
  // a given shard is checked where it is used (GetShardIterator, PutRecord's ordering).
  [[nodiscard]] static absl::StatusOr<SequenceNumber> Parse(std::string_view decimal);

  // The low 128 bits: the whole number when fits_128() (every number a rill stream issues).
  constexpr absl::uint128 value() const { return absl::MakeUint128(mid_, low_); }
  // Bits 128..191: zero for rill's own numbers, set for Kinesis' 56-digit ones.
  constexpr uint64_t high64() const { return high_; }
  constexpr bool fits_128() const { return high_ == 0; }

  // The decimal form.
  std::string ToString() const;

  friend constexpr bool operator==(SequenceNumber a, SequenceNumber b) = default;
  friend constexpr std::strong_ordering operator<=>(SequenceNumber a, SequenceNumber b) {
    if (a.high_ != b.high_) return a.high_ <=> b.high_;
    if (a.mid_ != b.mid_) return a.mid_ <=> b.mid_;
    return a.low_ <=> b.low_;
  }
  friend std::ostream& operator<<(std::ostream& os, SequenceNumber s) { return os << s.ToString(); }

 private:
  // Three words, most significant first: 24 bytes aligned to 8 (a Record is 72 bytes, 8 more
  // than with a 128-bit number).
  uint64_t high_ = 0;
  uint64_t mid_ = 0;
  uint64_t low_ = 0;
};

}  // namespace rill

#endif  // RILL_BASE_SEQUENCE_NUMBER_H_
