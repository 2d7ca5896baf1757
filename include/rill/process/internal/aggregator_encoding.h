// Aggregator state snapshot headers (on the byte codec of rill/base/internal/byte_codec.h), and
// the stable 64-bit hash behind rill::StableHash. Not public API.
#ifndef RILL_PROCESS_INTERNAL_AGGREGATOR_ENCODING_H_
#define RILL_PROCESS_INTERNAL_AGGREGATOR_ENCODING_H_

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/numeric/int128.h"
#include "rill/base/internal/byte_codec.h"

namespace rill::internal {

// Snapshot header: format version, aggregator kind, value type. Pinned forever: bump the version
// when a layout changes, and keep decoding the old one.
inline constexpr uint8_t kAggregatorFormatVersion = 1;

inline void PutHeader(std::string* out, uint8_t kind, uint8_t type_code) {
  PutU8(out, kAggregatorFormatVersion);
  PutU8(out, kind);
  PutU8(out, type_code);
}

inline bool ReadHeader(ByteReader* in, uint8_t kind, uint8_t type_code) {
  uint8_t version, k, t;
  return in->U8(&version) && in->U8(&k) && in->U8(&t) && version == kAggregatorFormatVersion &&
         k == kind && t == type_code;
}

// --- Stable hashing (fixed constants: the same value hashes the same on every run and
// platform). ---

// SplitMix64's output function (Steele, Lea, Flood 2014; Stafford's "Mix13"): a bijection on 64
// bits whose every output bit depends on every input bit.
constexpr uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// 64x64 -> 128-bit multiply folded to 64 bits (the "mum" step of wyhash).
inline uint64_t MulFold(uint64_t a, uint64_t b) {
  const absl::uint128 p = absl::uint128(a) * b;
  return absl::Uint128High64(p) ^ absl::Uint128Low64(p);
}

inline uint64_t Load64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// A wyhash-style byte hash: 8 bytes per multiply-fold step, the tail zero-padded and the length
// folded in, finished by Mix64. Little-endian by construction, so platform-independent.
inline uint64_t HashBytes(std::string_view s) {
  constexpr uint64_t kS0 = 0xa0761d6478bd642fULL;
  constexpr uint64_t kS1 = 0xe7037ed1a0b428dbULL;
  constexpr uint64_t kS2 = 0x8ebc6af09c88c6e3ULL;
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = kS2 ^ (static_cast<uint64_t>(n) * kS0);
  while (n >= 8) {
    h = MulFold(Load64(p) ^ kS0, h ^ kS1);
    p += 8;
    n -= 8;
  }
  uint64_t tail = 0;
  for (size_t i = 0; i < n; ++i)
    tail |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  h = MulFold(tail ^ kS1 ^ (static_cast<uint64_t>(n) << 56), h ^ kS0);
  return Mix64(h);
}

}  // namespace rill::internal

#endif  // RILL_PROCESS_INTERNAL_AGGREGATOR_ENCODING_H_
