#include "rill/stream/stream_api.h"

#include <utility>

namespace rill {

absl::StatusOr<std::vector<ShardDescription>> StreamApi::ListAllShardsOrError() const {
  std::vector<ShardDescription> shards;
  ListShardsRequest request;
  request.max_results = kMaxListShardsResults;
  for (;;) {
    absl::StatusOr<ListShardsResult> page = ListShards(request);
    if (!page.ok()) return page.status();
    for (ShardDescription& shard : page->shards) shards.push_back(std::move(shard));
    if (!page->next_token) return shards;
    // A next token carries the filter; Kinesis refuses a request that repeats it.
    request = ListShardsRequest{};
    request.next_token = std::move(page->next_token);
  }
}

}  // namespace rill
