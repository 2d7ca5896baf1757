#include "rill/stream/shard_iterator.h"

#include <array>
#include <cstring>

#include "rill/base/error.h"
#include "rill/base/md5.h"

namespace rill {
namespace {

constexpr size_t kFieldBytes = 8 + 4 + 8 + 8;
constexpr size_t kCheckBytes = 12;
constexpr size_t kTokenChars = 2 * (kFieldBytes + kCheckBytes);
constexpr char kHex[] = "0123456789abcdef";

// A check over the fields, so that a mistyped or altered token is refused rather than read as
// some other position. (Not a security boundary: the library trusts its caller.)
std::array<uint8_t, kCheckBytes> Check(const uint8_t* fields) {
  static constexpr std::string_view kDomain = "rill.shard-iterator.v1";
  char buffer[kDomain.size() + kFieldBytes];
  std::memcpy(buffer, kDomain.data(), kDomain.size());
  std::memcpy(buffer + kDomain.size(), fields, kFieldBytes);
  const Md5Digest d = Md5(std::string_view(buffer, sizeof(buffer)));
  std::array<uint8_t, kCheckBytes> check;
  std::memcpy(check.data(), d.data(), kCheckBytes);
  return check;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string_view ShardIteratorTypeName(ShardIteratorType type) {
  switch (type) {
    case ShardIteratorType::kTrimHorizon:
      return "TRIM_HORIZON";
    case ShardIteratorType::kLatest:
      return "LATEST";
    case ShardIteratorType::kAtSequenceNumber:
      return "AT_SEQUENCE_NUMBER";
    case ShardIteratorType::kAfterSequenceNumber:
      return "AFTER_SEQUENCE_NUMBER";
    case ShardIteratorType::kAtTimestamp:
      return "AT_TIMESTAMP";
  }
  return "UNKNOWN";
}

std::string ShardIterator::ToString() const {
  uint8_t bytes[kFieldBytes + kCheckBytes];
  std::memcpy(bytes, &stream_instance_, 8);
  std::memcpy(bytes + 8, &shard_index_, 4);
  std::memcpy(bytes + 12, &ordinal_, 8);
  std::memcpy(bytes + 20, &issued_at_us_, 8);
  const auto check = Check(bytes);
  std::memcpy(bytes + kFieldBytes, check.data(), kCheckBytes);
  std::string token(kTokenChars, '0');
  for (size_t i = 0; i < sizeof(bytes); ++i) {
    token[2 * i] = kHex[bytes[i] >> 4];
    token[2 * i + 1] = kHex[bytes[i] & 15];
  }
  return token;
}

absl::StatusOr<ShardIterator> ShardIterator::Parse(std::string_view token) {
  if (token.size() != kTokenChars) return InvalidArgumentError("invalid shard iterator token");
  uint8_t bytes[kFieldBytes + kCheckBytes];
  for (size_t i = 0; i < sizeof(bytes); ++i) {
    const int high = HexValue(token[2 * i]);
    const int low = HexValue(token[2 * i + 1]);
    if (high < 0 || low < 0) return InvalidArgumentError("invalid shard iterator token");
    bytes[i] = static_cast<uint8_t>(high * 16 + low);
  }
  const auto check = Check(bytes);
  if (std::memcmp(check.data(), bytes + kFieldBytes, kCheckBytes) != 0) {
    return InvalidArgumentError("invalid shard iterator token");
  }
  ShardIterator it;
  std::memcpy(&it.stream_instance_, bytes, 8);
  std::memcpy(&it.shard_index_, bytes + 8, 4);
  std::memcpy(&it.ordinal_, bytes + 12, 8);
  std::memcpy(&it.issued_at_us_, bytes + 20, 8);
  return it;
}

}  // namespace rill
