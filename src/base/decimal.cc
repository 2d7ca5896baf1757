#include "base/decimal.h"

#include <algorithm>
#include <array>

namespace rill::internal {
namespace {

// Digits are handled 19 at a time (10^19 is the largest power of ten below 2^64), so that a
// 38-digit number costs two multiplications or divisions of the wide integer, not 38: sequence
// numbers are printed and parsed once per record on the wire.
constexpr int kChunkDigits = 19;
constexpr uint64_t kPow10[kChunkDigits + 1] = {1ULL,
                                               10ULL,
                                               100ULL,
                                               1000ULL,
                                               10000ULL,
                                               100000ULL,
                                               1000000ULL,
                                               10000000ULL,
                                               100000000ULL,
                                               1000000000ULL,
                                               10000000000ULL,
                                               100000000000ULL,
                                               1000000000000ULL,
                                               10000000000000ULL,
                                               100000000000000ULL,
                                               1000000000000000ULL,
                                               10000000000000000ULL,
                                               100000000000000000ULL,
                                               1000000000000000000ULL,
                                               10000000000000000000ULL};

// Little-endian 64-bit limbs.
template <size_t N>
using Limbs = std::array<uint64_t, N>;

// limbs = limbs * factor + add; false on overflow past N limbs.
template <size_t N>
bool MultiplyAdd(Limbs<N>& limbs, uint64_t factor, uint64_t add) {
  absl::uint128 carry = add;
  for (uint64_t& limb : limbs) {
    const absl::uint128 product = absl::uint128(limb) * factor + carry;
    limb = absl::Uint128Low64(product);
    carry = absl::Uint128High64(product);
  }
  return carry == 0;
}

// limbs /= divisor; returns the remainder.
template <size_t N>
uint64_t DivideInPlace(Limbs<N>& limbs, uint64_t divisor) {
  absl::uint128 remainder = 0;
  for (size_t i = N; i-- > 0;) {
    const absl::uint128 current = (remainder << 64) | limbs[i];
    limbs[i] = absl::Uint128Low64(current / divisor);
    remainder = current % divisor;
  }
  return absl::Uint128Low64(remainder);
}

template <size_t N>
bool IsZero(const Limbs<N>& limbs) {
  for (uint64_t limb : limbs) {
    if (limb != 0) return false;
  }
  return true;
}

// Parses `0|[1-9][0-9]*` into N limbs; false for anything else, including overflow.
template <size_t N>
bool ParseLimbs(std::string_view text, Limbs<N>* out) {
  if (text.empty() || (text.size() > 1 && text[0] == '0')) return false;
  // Past 20 digits per limb nothing fits; the bound also keeps a long input from costing more.
  if (text.size() > 20 * N) return false;
  Limbs<N> limbs{};
  size_t at = 0;
  while (at < text.size()) {
    const size_t digits = std::min<size_t>(kChunkDigits, text.size() - at);
    uint64_t chunk = 0;
    for (size_t i = 0; i < digits; ++i) {
      const char c = text[at + i];
      if (c < '0' || c > '9') return false;
      chunk = chunk * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!MultiplyAdd(limbs, kPow10[digits], chunk)) return false;
    at += digits;
  }
  *out = limbs;
  return true;
}

template <size_t N>
std::string FormatLimbs(Limbs<N> limbs) {
  char buffer[20 * N + 1];
  char* const end = buffer + sizeof(buffer);
  char* p = end;
  for (;;) {
    uint64_t chunk = DivideInPlace(limbs, kPow10[kChunkDigits]);
    if (IsZero(limbs)) {
      do {
        *--p = static_cast<char>('0' + chunk % 10);
        chunk /= 10;
      } while (chunk != 0);
      return std::string(p, end);
    }
    for (int i = 0; i < kChunkDigits; ++i) {
      *--p = static_cast<char>('0' + chunk % 10);
      chunk /= 10;
    }
  }
}

}  // namespace

std::optional<absl::uint128> ParseDecimalUint128(std::string_view text) {
  Limbs<2> limbs;
  if (!ParseLimbs(text, &limbs)) return std::nullopt;
  return absl::MakeUint128(limbs[1], limbs[0]);
}

std::string FormatDecimalUint128(absl::uint128 value) {
  return FormatLimbs(Limbs<2>{absl::Uint128Low64(value), absl::Uint128High64(value)});
}

std::optional<Uint192> ParseDecimalUint192(std::string_view text) {
  Limbs<3> limbs;
  if (!ParseLimbs(text, &limbs)) return std::nullopt;
  return Uint192{limbs[2], absl::MakeUint128(limbs[1], limbs[0])};
}

std::string FormatDecimalUint192(Uint192 value) {
  return FormatLimbs(
      Limbs<3>{absl::Uint128Low64(value.low), absl::Uint128High64(value.low), value.high});
}

}  // namespace rill::internal
