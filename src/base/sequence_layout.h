// How a SequenceNumber is built. Layout, most significant bits first:
//   [127:124]  format version, 2
//   [123: 60]  the shard's counter (64 bits): strictly increasing in put order within a shard
//   [ 59: 28]  shard index (32 bits)
//   [ 27:  0]  stream tag (28 bits): tells one stream (or incarnation of a name) from another
// Ordering is by counter first, so "greater than" follows put order within a shard, and a child
// shard whose counter starts above its parents' numbers above every parent record.
#ifndef RILL_BASE_SEQUENCE_LAYOUT_H_
#define RILL_BASE_SEQUENCE_LAYOUT_H_

#include <cstdint>

#include "absl/numeric/int128.h"
#include "rill/base/sequence_number.h"

namespace rill::internal {

inline constexpr uint64_t kSequenceVersion = 2;
inline constexpr uint32_t kStreamTagMask = (1u << 28) - 1;

inline SequenceNumber MakeSequenceNumber(uint64_t counter, uint32_t shard_index,
                                         uint32_t stream_tag) {
  const absl::uint128 high_bits = absl::MakeUint128(kSequenceVersion << 60, 0);
  const absl::uint128 counter_bits = absl::uint128(counter) << 60;
  const absl::uint128 shard_bits = absl::uint128(shard_index) << 28;
  return SequenceNumber(high_bits | counter_bits | shard_bits | (stream_tag & kStreamTagMask));
}

struct SequenceParts {
  uint64_t version;
  uint64_t counter;
  uint32_t shard_index;
  uint32_t stream_tag;
};

// A number wider than 128 bits (another Kinesis') decodes as version 0, which no shard accepts.
inline SequenceParts DecodeSequenceNumber(SequenceNumber s) {
  if (!s.fits_128())
    return SequenceParts{.version = 0, .counter = 0, .shard_index = 0, .stream_tag = 0};
  const absl::uint128 v = s.value();
  return SequenceParts{
      .version = absl::Uint128High64(v) >> 60,
      .counter = static_cast<uint64_t>(v >> 60),
      .shard_index = static_cast<uint32_t>(absl::Uint128Low64(v) >> 28),
      .stream_tag = static_cast<uint32_t>(absl::Uint128Low64(v)) & kStreamTagMask,
  };
}

}  // namespace rill::internal

#endif  // RILL_BASE_SEQUENCE_LAYOUT_H_
