#include "rill/stream/shard_iterator.h"

#include <cstring>

#include "base/sealed_token.h"
#include "rill/base/error.h"

namespace rill {
namespace {

constexpr std::string_view kDomain = "rill.shard-iterator.v1";
constexpr size_t kFieldBytes = 8 + 4 + 8 + 8;
constexpr size_t kCheckBytes = 12;

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
  if (!token_.empty()) return token_;
  char fields[kFieldBytes];
  std::memcpy(fields, &stream_instance_, 8);
  std::memcpy(fields + 8, &shard_index_, 4);
  std::memcpy(fields + 12, &ordinal_, 8);
  std::memcpy(fields + 20, &issued_at_us_, 8);
  return internal::SealToken(kDomain, std::string_view(fields, kFieldBytes), kCheckBytes);
}

absl::StatusOr<ShardIterator> ShardIterator::Parse(std::string_view token) {
  char fields[kFieldBytes];
  if (!internal::OpenToken(kDomain, token, kCheckBytes, fields, kFieldBytes)) {
    return InvalidArgumentError("invalid shard iterator token");
  }
  ShardIterator it;
  std::memcpy(&it.stream_instance_, fields, 8);
  std::memcpy(&it.shard_index_, fields + 8, 4);
  std::memcpy(&it.ordinal_, fields + 12, 8);
  std::memcpy(&it.issued_at_us_, fields + 20, 8);
  return it;
}

}  // namespace rill
