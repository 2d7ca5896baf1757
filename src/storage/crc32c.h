// CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected as 0x82F63B78), the checksum of iSCSI,
// ext4 metadata, LevelDB and RocksDB, used by rill's segment files.
//
// Values are those of RFC 3720 B.4: Crc32c("123456789") == 0xE3069283. The SSE4.2 instruction
// computes the same function; it is used when the CPU has it (checked once, at run time), and a
// slicing-by-8 table walk otherwise.
//
// Example:
//   uint32_t crc = Crc32c(header_bytes);
//   crc = Crc32cExtend(crc, payload_bytes);       // == Crc32c(header_bytes + payload_bytes)
//   StoreLittleEndian32(out, MaskCrc32c(crc));    // what a file stores
//
// Thread safety: every function here is thread-safe and allocates nothing.
#ifndef RILL_STORAGE_CRC32C_H_
#define RILL_STORAGE_CRC32C_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rill::internal {

// Returns the CRC-32C of `data` appended to bytes whose CRC-32C is `crc`. Crc32cExtend(0, x) is
// Crc32c(x), and Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);

inline uint32_t Crc32cExtend(uint32_t crc, std::string_view data) {
  return Crc32cExtend(crc, data.data(), data.size());
}

inline uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data); }

// The portable table implementation, whatever the CPU; exposed so that tests can compare it with
// the hardware one.
uint32_t Crc32cExtendPortable(uint32_t crc, const void* data, size_t size);

// True when Crc32cExtend uses the SSE4.2 crc32 instruction on this machine.
bool Crc32cIsHardwareAccelerated();

// A CRC stored beside the data it covers is "masked" (LevelDB's scheme: rotate right by 15 bits and
// add a constant), because the CRC of bytes that contain their own CRC is degenerate, and segment
// records may hold whole segment frames. Unmask(Mask(c)) == c. The mask is part of the file format:
// it never changes.
inline constexpr uint32_t kCrc32cMaskDelta = 0xa282ead8u;

inline uint32_t MaskCrc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kCrc32cMaskDelta; }

inline uint32_t UnmaskCrc32c(uint32_t masked) {
  const uint32_t rotated = masked - kCrc32cMaskDelta;
  return (rotated >> 17) | (rotated << 15);
}

}  // namespace rill::internal

#endif  // RILL_STORAGE_CRC32C_H_
