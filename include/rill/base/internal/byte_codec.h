// Little-endian byte writer and bounds-checked reader: the encoding under aggregator and
// pipeline snapshots and the durable stream's METADATA. Not public API.
//
// Thread safety: free functions on caller-owned strings; a ByteReader is a plain value.
#ifndef RILL_BASE_INTERNAL_BYTE_CODEC_H_
#define RILL_BASE_INTERNAL_BYTE_CODEC_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace rill::internal {

// The unsigned integer type of the same size as arithmetic type T (its bits, for encoding).
template <typename T>
using BitsOf =
    std::conditional_t<sizeof(T) == 1, uint8_t,
                       std::conditional_t<sizeof(T) == 2, uint16_t,
                                          std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>;

// One byte that names an arithmetic type in snapshots, so that a state encoded for int32_t is not
// decoded as float: bit 7 floating point, bit 6 signed, low bits the size in bytes.
template <typename T>
constexpr uint8_t ArithmeticTypeCode() {
  static_assert(std::is_arithmetic_v<T> && sizeof(T) <= 8);
  return static_cast<uint8_t>((std::is_floating_point_v<T> ? 0x80 : 0) |
                              (std::is_signed_v<T> ? 0x40 : 0) | sizeof(T));
}

inline void PutU8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }

template <typename U>
void PutLittleEndian(std::string* out, U v) {
  static_assert(std::is_unsigned_v<U>);
  for (size_t i = 0; i < sizeof(U); ++i) {
    out->push_back(static_cast<char>(static_cast<uint8_t>(v >> (8 * i))));
  }
}

// Any arithmetic value, by its bits (floating point keeps NaN payloads and signed zeros).
template <typename T>
void PutArithmetic(std::string* out, T v) {
  if constexpr (sizeof(T) == 1) {
    PutU8(out, std::bit_cast<uint8_t>(v));
  } else {
    PutLittleEndian(out, std::bit_cast<BitsOf<T>>(v));
  }
}

// Reads a snapshot front to back; every read checks the remaining length, so garbage fails
// cleanly instead of reading out of bounds.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}

  bool U8(uint8_t* v) {
    if (in_.empty()) return false;
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }

  template <typename U>
  bool LittleEndian(U* v) {
    static_assert(std::is_unsigned_v<U>);
    if (in_.size() < sizeof(U)) return false;
    U r = 0;
    for (size_t i = 0; i < sizeof(U); ++i) {
      r |= static_cast<U>(static_cast<uint8_t>(in_[i])) << (8 * i);
    }
    in_.remove_prefix(sizeof(U));
    *v = r;
    return true;
  }

  template <typename T>
  bool Arithmetic(T* v) {
    BitsOf<T> bits;
    if constexpr (sizeof(T) == 1) {
      uint8_t b;
      if (!U8(&b)) return false;
      bits = b;
    } else {
      if (!LittleEndian(&bits)) return false;
    }
    if constexpr (std::is_same_v<T, bool>) {
      if (bits > 1) return false;  // a bool with any other byte is undefined behaviour to read
    }
    *v = std::bit_cast<T>(bits);
    return true;
  }

  bool Bytes(size_t n, std::string_view* v) {
    if (in_.size() < n) return false;
    *v = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }

  size_t remaining() const { return in_.size(); }
  bool AtEnd() const { return in_.empty(); }

 private:
  std::string_view in_;
};

}  // namespace rill::internal

#endif  // RILL_BASE_INTERNAL_BYTE_CODEC_H_
