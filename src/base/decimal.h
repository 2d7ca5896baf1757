// Decimal text <-> unsigned 128-bit integers, for hash keys and sequence numbers.
#ifndef RILL_BASE_DECIMAL_H_
#define RILL_BASE_DECIMAL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/numeric/int128.h"

namespace rill::internal {

// Parses `0|[1-9][0-9]*` into a 128-bit value; nullopt for anything else, including overflow.
std::optional<absl::uint128> ParseDecimalUint128(std::string_view text);

// The decimal form of `value`.
std::string FormatDecimalUint128(absl::uint128 value);

// A 192-bit unsigned integer: high * 2^128 + low (sequence numbers of Kinesis endpoints).
struct Uint192 {
  uint64_t high = 0;
  absl::uint128 low = 0;
};

// As ParseDecimalUint128, up to 2^192 - 1.
std::optional<Uint192> ParseDecimalUint192(std::string_view text);
std::string FormatDecimalUint192(Uint192 value);

}  // namespace rill::internal

#endif  // RILL_BASE_DECIMAL_H_
