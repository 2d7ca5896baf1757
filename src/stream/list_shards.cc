// ListShards (with its paging tokens) and DescribeStreamSummary.
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_format.h"
#include "base/partition_key_cache.h"
#include "base/sealed_token.h"
#include "base/sequence_layout.h"
#include "base/strings.h"
#include "base/utf.h"
#include "log/shard_log.h"
#include "rill/base/md5.h"
#include "storage/stream_store.h"
#include "stream/rate_limiter.h"
#include "stream/stream_impl.h"
#include "stream/stream_shard.h"

namespace rill::internal {

namespace {

// The self-checking next_token of ListShards: the stream, the request's filter and the last
// shard index returned, and when it was issued.
struct NextToken {
  uint64_t stream_instance = 0;
  uint32_t filter_type = 0;  // ShardFilterType, or kNoFilter
  uint32_t filter_shard = 0;
  int64_t filter_time_us = 0;
  uint32_t has_filter_shard = 0;
  uint32_t has_filter_time = 0;
  uint32_t last_index = 0;
  uint32_t reserved = 0;  // no padding: every byte of the token is a defined field
  int64_t issued_us = 0;
};
static_assert(std::has_unique_object_representations_v<NextToken>);

constexpr uint32_t kNoFilter = 0xffffffff;
constexpr std::string_view kTokenDomain = "rill.list-shards.v1";
constexpr size_t kTokenCheckBytes = 8;

std::string EncodeNextToken(const NextToken& t) {
  return internal::SealToken(kTokenDomain,
                             std::string_view(reinterpret_cast<const char*>(&t), sizeof(t)),
                             kTokenCheckBytes);
}

std::optional<NextToken> DecodeNextToken(std::string_view token) {
  NextToken t;
  if (!internal::OpenToken(kTokenDomain, token, kTokenCheckBytes, &t, sizeof(t))) {
    return std::nullopt;
  }
  return t;
}

}  // namespace

ShardDescription StreamImpl::Describe(const StreamShard& shard) const {
  ShardDescription d;
  d.shard_id = shard.id;
  d.hash_key_range = shard.range;
  d.parent_shard_id = shard.parent;
  d.adjacent_parent_shard_id = shard.adjacent_parent;
  d.sequence_number_range.starting_sequence_number =
      internal::MakeSequenceNumber(shard.log().first_counter(), shard.id.index(), stream_tag_);
  if (shard.log().closed()) {
    d.sequence_number_range.ending_sequence_number =
        internal::MakeSequenceNumber(shard.log().ending_counter(), shard.id.index(), stream_tag_);
  }
  return d;
}

std::vector<ShardDescription> StreamImpl::ListShards() const {
  const ShardMap* map = shard_map_.load(std::memory_order_acquire);
  const int64_t now_us = ToMicros(options_.clock->Now());
  std::vector<ShardDescription> shards;
  shards.reserve(map->all.size());
  for (const StreamShard* shard : map->all) {
    if (!Expired(*shard, now_us)) shards.push_back(Describe(*shard));
  }
  return shards;
}

absl::StatusOr<ListShardsResult> StreamImpl::ListShards(const ListShardsRequest& request) const {
  if (request.max_results < 1 || request.max_results > 10000) {
    return InvalidArgumentError(
        absl::StrFormat("MaxResults must be within [1, 10000], not %d", request.max_results));
  }
  const int64_t now_us = ToMicros(options_.clock->Now());
  ShardFilter filter;
  int64_t after_index = -1;  // list shards with a greater index
  if (request.next_token) {
    if (request.exclusive_start_shard_id) {
      return InvalidArgumentError("NextToken and ExclusiveStartShardId cannot be used together");
    }
    std::optional<NextToken> token = DecodeNextToken(*request.next_token);
    if (!token || token->stream_instance != instance_ ||
        (token->filter_type != kNoFilter &&
         token->filter_type > static_cast<uint32_t>(ShardFilterType::kFromTimestamp))) {
      return InvalidArgumentError("NextToken is malformed or belongs to another stream");
    }
    if (now_us - token->issued_us > absl::ToInt64Microseconds(kNextTokenLifetime)) {
      return ExpiredNextTokenError(
          absl::StrFormat("NextToken issued at %s has expired",
                          absl::FormatTime(absl::FromUnixMicros(token->issued_us))));
    }
    if (token->filter_type != kNoFilter) {
      filter.type = static_cast<ShardFilterType>(token->filter_type);
      if (token->has_filter_shard) filter.shard_id = ShardId(token->filter_shard);
      if (token->has_filter_time) filter.timestamp = absl::FromUnixMicros(token->filter_time_us);
    }
    after_index = token->last_index;
  } else {
    if (request.filter) filter = *request.filter;
    if (request.exclusive_start_shard_id) after_index = request.exclusive_start_shard_id->index();
  }
  if (filter.type == ShardFilterType::kAfterShardId && !filter.shard_id) {
    return InvalidArgumentError("ShardFilter AFTER_SHARD_ID requires a ShardId");
  }
  if ((filter.type == ShardFilterType::kAtTimestamp ||
       filter.type == ShardFilterType::kFromTimestamp) &&
      !filter.timestamp) {
    return InvalidArgumentError(
        absl::StrFormat("ShardFilter %s requires a Timestamp", ShardFilterTypeName(filter.type)));
  }

  const int64_t creation_us = ToMicros(creation_time_);
  int64_t at_us = 0;  // for the AT_ filters: the moment whose open shards are listed
  if (filter.type == ShardFilterType::kAtTrimHorizon) {
    at_us = std::max(now_us - retention_us_.load(std::memory_order_relaxed), creation_us);
  } else if (filter.type == ShardFilterType::kAtTimestamp) {
    at_us = std::max(ToMicros(*filter.timestamp), creation_us);
  }
  auto selected = [&](const StreamShard& shard) {
    const int64_t closed_us = shard.closed_us.load(std::memory_order_acquire);
    switch (filter.type) {
      case ShardFilterType::kAfterShardId:
        return shard.id.index() > filter.shard_id->index();
      case ShardFilterType::kAtTrimHorizon:
      case ShardFilterType::kAtTimestamp:
        return shard.created_us <= at_us && at_us <= closed_us;
      case ShardFilterType::kFromTrimHorizon:
        return true;
      case ShardFilterType::kAtLatest:
        return !shard.log().closed();
      case ShardFilterType::kFromTimestamp:
        return closed_us >= ToMicros(*filter.timestamp);
    }
    return false;
  };

  const ShardMap* map = shard_map_.load(std::memory_order_acquire);
  const size_t page = static_cast<size_t>(std::min(request.max_results, kMaxListShardsResults));
  ListShardsResult result;
  for (const StreamShard* shard : map->all) {
    if (static_cast<int64_t>(shard->id.index()) <= after_index) continue;
    if (Expired(*shard, now_us) || !selected(*shard)) continue;
    if (result.shards.size() == page) {
      NextToken token;
      token.stream_instance = instance_;
      token.filter_type =
          request.next_token || request.filter ? static_cast<uint32_t>(filter.type) : kNoFilter;
      if (filter.shard_id) {
        token.has_filter_shard = 1;
        token.filter_shard = filter.shard_id->index();
      }
      if (filter.timestamp) {
        token.has_filter_time = 1;
        token.filter_time_us = ToMicros(*filter.timestamp);
      }
      token.last_index = result.shards.back().shard_id.index();
      token.issued_us = now_us;
      result.next_token = EncodeNextToken(token);
      break;
    }
    result.shards.push_back(Describe(*shard));
  }
  return result;
}

StreamSummary StreamImpl::DescribeStreamSummary() const {
  const int64_t now_us = ToMicros(options_.clock->Now());
  StreamSummary summary;
  summary.stream_name = options_.name;
  summary.status = now_us < updating_until_us_.load(std::memory_order_acquire)
                       ? StreamStatus::kUpdating
                       : StreamStatus::kActive;
  summary.capacity_mode = capacity_mode_.load(std::memory_order_acquire);
  summary.open_shard_count =
      static_cast<int>(shard_map_.load(std::memory_order_acquire)->open.size());
  summary.retention = retention();
  summary.creation_time = creation_time_;
  summary.max_record_bytes = options_.max_record_bytes;
  {
    MutexLock lock(&consumers_mu_);
    summary.consumer_count = static_cast<int>(consumers_.size());
  }
  summary.retired_records = counters_->retired_records.load(std::memory_order_relaxed);
  summary.retired_bytes = counters_->retired_bytes.load(std::memory_order_relaxed);
  {
    MutexLock lock(&encryption_mu_);
    summary.encryption_type = encryption_type_;
    summary.key_id = key_id_;
  }
  return summary;
}

}  // namespace rill::internal
