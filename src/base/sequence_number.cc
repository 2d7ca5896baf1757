#include "rill/base/sequence_number.h"

#include "base/decimal.h"
#include "rill/base/error.h"

namespace rill {

absl::StatusOr<SequenceNumber> SequenceNumber::Parse(std::string_view decimal) {
  // Kinesis' pattern allows up to 129 digits; anything past 58 cannot fit in 192 bits, and no
  // Kinesis endpoint issues more than 56.
  std::optional<internal::Uint192> value = internal::ParseDecimalUint192(decimal);
  if (!value) {
    return InvalidArgumentError(
        "sequence number must be a decimal number in [0, 2^192 - 1] without leading zeros");
  }
  return SequenceNumber::FromParts(value->high, value->low);
}

std::string SequenceNumber::ToString() const {
  if (high_ == 0) return internal::FormatDecimalUint128(value());
  return internal::FormatDecimalUint192({high_, value()});
}

}  // namespace rill
