// Decimal text <-> unsigned 128-bit integers, for hash keys and sequence numbers.
#ifndef RILL_BASE_DECIMAL_H_
#define RILL_BASE_DECIMAL_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/numeric/int128.h"

namespace rill::internal {

// Parses `0|[1-9][0-9]*` into a 128-bit value; nullopt for anything else, including overflow.
std::optional<absl::uint128> ParseDecimalUint128(std::string_view text);

// The decimal form of `value`.
std::string FormatDecimalUint128(absl::uint128 value);

}  // namespace rill::internal

#endif  // RILL_BASE_DECIMAL_H_
