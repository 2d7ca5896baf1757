// ListShards' request and result: which shards to list (Kinesis' ShardFilter), and paging.
//
// Example:
//   rill::ListShardsRequest request;
//   request.filter = rill::ShardFilter{.type = rill::ShardFilterType::kAtLatest};
//   request.max_results = 100;
//   for (;;) {
//     absl::StatusOr<rill::ListShardsResult> page = stream->ListShards(request);
//     if (!page.ok()) return page.status();
//     for (const rill::ShardDescription& shard : page->shards) { ... }
//     if (!page->next_token) break;
//     request = rill::ListShardsRequest{.next_token = page->next_token};
//   }
//
// Thread safety: plain values.
#ifndef RILL_STREAM_LIST_SHARDS_H_
#define RILL_STREAM_LIST_SHARDS_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "rill/base/shard_id.h"
#include "rill/stream/shard_description.h"

namespace rill {

// Kinesis' ShardFilterType. Expired shards (closed, and retention has passed since they closed)
// are never listed.
enum class ShardFilterType {
  // Shards with an id greater than ShardFilter::shard_id (required).
  kAfterShardId,
  // The shards that were open at the trim horizon (now minus the retention period, or the
  // stream's creation if later).
  kAtTrimHorizon,
  // Every shard from the trim horizon on: all unexpired shards. The default.
  kFromTrimHorizon,
  // The open shards.
  kAtLatest,
  // The shards that were open at ShardFilter::timestamp (required; a time before the stream's
  // creation means its creation).
  kAtTimestamp,
  // The shards open at or after ShardFilter::timestamp (required): the open shards and the
  // closed ones that closed at or after it.
  kFromTimestamp,
};

// "AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP",
// "FROM_TIMESTAMP".
std::string_view ShardFilterTypeName(ShardFilterType type);

struct ShardFilter {
  ShardFilterType type = ShardFilterType::kFromTrimHorizon;
  std::optional<ShardId> shard_id;      // kAfterShardId only
  std::optional<absl::Time> timestamp;  // kAtTimestamp and kFromTimestamp only
};

struct ListShardsRequest {
  // Which shards. Default: none, which lists as kFromTrimHorizon.
  std::optional<ShardFilter> filter;
  // List only shards with a greater id. Default: none.
  std::optional<ShardId> exclusive_start_shard_id;
  // Shards per page. Range: 1..10,000; at most 1,000 are returned. Default: 1,000.
  int max_results = 1000;
  // The next_token of a previous page: it carries that request's filter and position, and
  // expires 5 minutes after it was issued (kExpiredNextToken). When set,
  // exclusive_start_shard_id must not be. Default: none.
  std::optional<std::string> next_token;
};

struct ListShardsResult {
  // In shard-id order.
  std::vector<ShardDescription> shards;
  // Set when more shards remain: pass it in the next request.
  std::optional<std::string> next_token;
};

}  // namespace rill

#endif  // RILL_STREAM_LIST_SHARDS_H_
