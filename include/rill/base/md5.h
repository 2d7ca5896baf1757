// MD5 (RFC 1321), the hash Kinesis routes partition keys with.
//
// MD5 is no longer a secure hash and rill does not use it as one: it is the routing function that
// Kinesis fixed, so the same partition key lands on the same shard as in Kinesis. The
// implementation is self-contained and tuned for short inputs (partition keys are 1-256
// characters): keys up to 55 bytes take a single compression round with no buffering.
//
// Example:
//   rill::Md5Digest d = rill::Md5("user-1");   // 16 bytes, big-endian as printed by md5sum
//
// Thread safety: Md5() is a pure function. It does not allocate.
#ifndef RILL_BASE_MD5_H_
#define RILL_BASE_MD5_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace rill {

using Md5Digest = std::array<uint8_t, 16>;

// Returns the MD5 digest of `data`.
Md5Digest Md5(std::string_view data);

// Returns the digest as 32 lower-case hex digits, as md5sum prints it.
std::string Md5Hex(const Md5Digest& digest);

}  // namespace rill

#endif  // RILL_BASE_MD5_H_
