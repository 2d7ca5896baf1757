#include "rill/base/hash_key.h"

#include <algorithm>

#include "base/decimal.h"
#include "rill/base/error.h"
#include "rill/base/md5.h"

namespace rill {

absl::StatusOr<HashKey> HashKey::FromDecimal(std::string_view decimal) {
  if (decimal.empty() || decimal.size() > 39) {
    return InvalidArgumentError("hash key must be a decimal number of 1 to 39 digits");
  }
  std::optional<absl::uint128> value = internal::ParseDecimalUint128(decimal);
  if (!value) {
    return InvalidArgumentError(
        "hash key must be a decimal number in [0, 2^128 - 1] without leading zeros");
  }
  return HashKey(*value);
}

HashKey HashKey::FromPartitionKey(std::string_view partition_key) {
  const Md5Digest d = Md5(partition_key);
  uint64_t high = 0, low = 0;
  for (int i = 0; i < 8; ++i) high = (high << 8) | d[i];
  for (int i = 8; i < 16; ++i) low = (low << 8) | d[i];
  return HashKey(absl::MakeUint128(high, low));
}

std::string HashKey::ToString() const { return internal::FormatDecimalUint128(value_); }

std::vector<HashKeyRange> SplitHashKeySpace(int shard_count) {
  std::vector<HashKeyRange> ranges;
  if (shard_count < 1) return ranges;
  const absl::uint128 n = static_cast<uint64_t>(shard_count);
  // floor(2^128 / n), computed without 2^128: 2^128 = (2^128 - 1) + 1.
  absl::uint128 step = absl::Uint128Max() / n;
  if (absl::Uint128Max() % n == n - 1) step += 1;
  ranges.reserve(static_cast<size_t>(shard_count));
  for (int i = 0; i < shard_count; ++i) {
    const absl::uint128 start = step * static_cast<uint64_t>(i);
    const absl::uint128 end =
        i == shard_count - 1 ? absl::Uint128Max() : step * static_cast<uint64_t>(i + 1) - 1;
    ranges.push_back({HashKey(start), HashKey(end)});
  }
  return ranges;
}

}  // namespace rill
