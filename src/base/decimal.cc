#include "base/decimal.h"

#include <array>

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

namespace {

// Little-endian 64-bit limbs.
using Limbs = std::array<uint64_t, 3>;

// limbs = limbs * factor + add; false on overflow past 192 bits.
bool MultiplyAdd(Limbs& limbs, uint64_t factor, uint64_t add) {
  absl::uint128 carry = add;
  for (uint64_t& limb : limbs) {
    const absl::uint128 product = absl::uint128(limb) * factor + carry;
    limb = absl::Uint128Low64(product);
    carry = absl::Uint128High64(product);
  }
  return carry == 0;
}

// limbs /= divisor; returns the remainder.
uint64_t DivideInPlace(Limbs& limbs, uint64_t divisor) {
  absl::uint128 remainder = 0;
  for (size_t i = limbs.size(); i-- > 0;) {
    const absl::uint128 current = (remainder << 64) | limbs[i];
    limbs[i] = absl::Uint128Low64(current / divisor);
    remainder = current % divisor;
  }
  return absl::Uint128Low64(remainder);
}

}  // namespace

std::optional<Uint192> ParseDecimalUint192(std::string_view text) {
  if (text.empty() || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  // Past 58 digits nothing fits; the bound also keeps a long input from costing more.
  if (text.size() > 58) return std::nullopt;
  Limbs limbs{};
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    if (!MultiplyAdd(limbs, 10, static_cast<uint64_t>(c - '0'))) return std::nullopt;
  }
  return Uint192{limbs[2], absl::MakeUint128(limbs[1], limbs[0])};
}

std::string FormatDecimalUint192(Uint192 value) {
  Limbs limbs{absl::Uint128Low64(value.low), absl::Uint128High64(value.low), value.high};
  char buffer[64];
  char* const end = buffer + sizeof(buffer);
  char* p = end;
  do {
    *--p = static_cast<char>('0' + DivideInPlace(limbs, 10));
  } while (limbs[0] != 0 || limbs[1] != 0 || limbs[2] != 0);
  return std::string(p, end);
}

}  // namespace rill::internal
