// HashKey: a position in Kinesis' 128-bit hash-key space, and HashKeyRange, a shard's slice of it.
//
// A record's hash key is the MD5 of its partition key's UTF-8 bytes read as an unsigned big-endian
// 128-bit integer, unless the producer gives an explicit hash key. Each open shard owns one
// contiguous inclusive range, and the open shards tile [0, 2^128 - 1].
//
// Example:
//   rill::HashKey k = rill::HashKey::FromPartitionKey("a");
//   k.ToString();   // "16955237001963240173058271559858726497"
//   std::vector<rill::HashKeyRange> r = rill::SplitHashKeySpace(2);  // as CreateStream does
//
// Thread safety: HashKey and HashKeyRange are immutable values.
#ifndef RILL_BASE_HASH_KEY_H_
#define RILL_BASE_HASH_KEY_H_

#include <compare>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"

namespace rill {

class HashKey {
 public:
  // The hash key 0.
  constexpr HashKey() = default;
  constexpr explicit HashKey(absl::uint128 value) : value_(value) {}

  // The largest hash key, 2^128 - 1.
  static constexpr HashKey Max() { return HashKey(absl::Uint128Max()); }

  // Parses a decimal hash key as Kinesis' ExplicitHashKey: `0|[1-9][0-9]{0,38}`, at most
  // 2^128 - 1. Anything else is kInvalidArgument.
  [[nodiscard]] static absl::StatusOr<HashKey> FromDecimal(std::string_view decimal);

  // The hash key of a partition key: MD5 of its bytes as a big-endian unsigned integer. Does not
  // validate the key (Stream does) and does not allocate.
  static HashKey FromPartitionKey(std::string_view partition_key);

  constexpr absl::uint128 value() const { return value_; }

  // The decimal form, e.g. "340282366920938463463374607431768211455".
  std::string ToString() const;

  friend constexpr bool operator==(HashKey a, HashKey b) { return a.value_ == b.value_; }
  friend constexpr std::strong_ordering operator<=>(HashKey a, HashKey b) {
    if (a.value_ == b.value_) return std::strong_ordering::equal;
    return a.value_ < b.value_ ? std::strong_ordering::less : std::strong_ordering::greater;
  }
  friend std::ostream& operator<<(std::ostream& os, HashKey k) { return os << k.ToString(); }

 private:
  absl::uint128 value_ = 0;
};

// An inclusive range [starting_hash_key, ending_hash_key].
struct HashKeyRange {
  HashKey starting_hash_key;
  HashKey ending_hash_key;

  constexpr bool Contains(HashKey k) const {
    return starting_hash_key <= k && k <= ending_hash_key;
  }
  friend constexpr bool operator==(const HashKeyRange&, const HashKeyRange&) = default;
  friend std::ostream& operator<<(std::ostream& os, const HashKeyRange& r) {
    return os << "[" << r.starting_hash_key << ", " << r.ending_hash_key << "]";
  }
};

// The ranges CreateStream gives `shard_count` shards (>= 1): step = floor(2^128 / shard_count),
// shard i covers [i * step, (i + 1) * step - 1], and the last shard ends at 2^128 - 1.
std::vector<HashKeyRange> SplitHashKeySpace(int shard_count);

}  // namespace rill

#endif  // RILL_BASE_HASH_KEY_H_
