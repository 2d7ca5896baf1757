#include "rill/base/shard_id.h"

#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "rill/base/error.h"

namespace rill {
namespace {}  // namespace

absl::StatusOr<ShardId> ShardId::Parse(std::string_view text) {
  if (!internal::IsKinesisName(text)) {
    return InvalidArgumentError("shard id must be 1 to 128 characters of [a-zA-Z0-9_.-]");
  }
  std::string_view digits = text;
  constexpr std::string_view kPrefix = "shardId-";
  if (digits.substr(0, kPrefix.size()) == kPrefix) digits.remove_prefix(kPrefix.size());
  const auto not_found = [&] {
    return ResourceNotFoundError(
        absl::StrFormat("shard %s does not exist", absl::string_view(text.data(), text.size())));
  };
  // Leading zeros do not count (kinesalite parses the number, so "shardId-0000000000005" is
  // shard 5); past them, more than 12 digits is out of range whatever they are.
  while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
  if (digits.empty() || digits.size() > 12) return not_found();
  uint64_t index = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return not_found();
    index = index * 10 + static_cast<uint64_t>(c - '0');
  }
  if (index > kMaxIndex) return not_found();
  return ShardId(static_cast<uint32_t>(index));
}

std::string ShardId::ToString() const { return absl::StrFormat("shardId-%012u", index_); }

}  // namespace rill
