#include "rill/base/sequence_number.h"

#include "base/decimal.h"
#include "rill/base/error.h"

namespace rill {

absl::StatusOr<SequenceNumber> SequenceNumber::Parse(std::string_view decimal) {
  // Kinesis' pattern allows up to 129 digits; anything past 39 cannot fit in 128 bits.
  std::optional<absl::uint128> value = internal::ParseDecimalUint128(decimal);
  if (!value) {
    return InvalidArgumentError(
        "sequence number must be a decimal number in [0, 2^128 - 1] without leading zeros");
  }
  return SequenceNumber(*value);
}

std::string SequenceNumber::ToString() const { return internal::FormatDecimalUint128(value_); }

}  // namespace rill
