#include "storage/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define RILL_CRC32C_HAVE_SSE42_PATH 1
#else
#define RILL_CRC32C_HAVE_SSE42_PATH 0
#endif

namespace rill::internal {
namespace {

constexpr uint32_t kPolynomial = 0x82f63b78u;  // 0x1EDC6F41 bit-reversed

// kTables[0] is the classic byte-at-a-time table; kTables[k][b] is the CRC of byte b followed by
// k zero bytes, which lets the slicing loop fold 8 input bytes with 8 independent lookups.
using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables MakeTables() {
  Tables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c >> 1) ^ (kPolynomial & (0u - (c & 1u)));
    t[0][i] = c;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (uint32_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xffu];
  }
  return t;
}

constexpr Tables kTables = MakeTables();

inline uint32_t LoadLittleEndian32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

#if RILL_CRC32C_HAVE_SSE42_PATH
// The crc32 instruction computes exactly CRC-32C (on the inverted register, like the tables).
__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc, const uint8_t* p,
                                                       size_t size) {
  uint64_t c = ~crc;
  while (size > 0 && (reinterpret_cast<uintptr_t>(p) & 7u) != 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    --size;
  }
  while (size >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
    p += 8;
    size -= 8;
  }
  while (size > 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    --size;
  }
  return ~static_cast<uint32_t>(c);
}

bool DetectSse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#endif

}  // namespace

uint32_t Crc32cExtendPortable(uint32_t crc, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  while (size >= 8) {
    const uint32_t one = LoadLittleEndian32(p) ^ c;
    const uint32_t two = LoadLittleEndian32(p + 4);
    c = kTables[7][one & 0xffu] ^ kTables[6][(one >> 8) & 0xffu] ^ kTables[5][(one >> 16) & 0xffu] ^
        kTables[4][one >> 24] ^ kTables[3][two & 0xffu] ^ kTables[2][(two >> 8) & 0xffu] ^
        kTables[1][(two >> 16) & 0xffu] ^ kTables[0][two >> 24];
    p += 8;
    size -= 8;
  }
  while (size > 0) {
    c = kTables[0][(c ^ *p++) & 0xffu] ^ (c >> 8);
    --size;
  }
  return ~c;
}

bool Crc32cIsHardwareAccelerated() {
#if RILL_CRC32C_HAVE_SSE42_PATH
  static const bool has_sse42 = DetectSse42();
  return has_sse42;
#else
  return false;
#endif
}

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size) {
#if RILL_CRC32C_HAVE_SSE42_PATH
  if (Crc32cIsHardwareAccelerated()) {
    return ExtendSse42(crc, static_cast<const uint8_t*>(data), size);
  }
#endif
  return Crc32cExtendPortable(crc, data, size);
}

}  // namespace rill::internal
