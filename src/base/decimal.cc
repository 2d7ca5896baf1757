#include "base/decimal.h"

namespace rill::internal {

std::optional<absl::uint128> ParseDecimalUint128(std::string_view text) {
  if (text.empty() || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  absl::uint128 value = 0;
  const absl::uint128 max_before_multiply = absl::Uint128Max() / 10;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const unsigned digit = static_cast<unsigned>(c - '0');
    if (value > max_before_multiply) return std::nullopt;
    value *= 10;
    if (value > absl::Uint128Max() - digit) return std::nullopt;
    value += digit;
  }
  return value;
}

std::string FormatDecimalUint128(absl::uint128 value) {
  if (value == 0) return "0";
  char buffer[40];
  char* const end = buffer + sizeof(buffer);
  char* p = end;
  while (value != 0) {
    *--p = static_cast<char>('0' + static_cast<int>(value % 10));
    value /= 10;
  }
  return std::string(p, end);
}

}  // namespace rill::internal
