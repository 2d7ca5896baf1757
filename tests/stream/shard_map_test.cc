#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/numeric/int128.h"
#include "stream/stream_shard.h"

namespace rill {
namespace {

using internal::ShardMap;
using internal::StreamShard;

// Open shards starting at `starts` (sorted, the first 0), each ending below the next.
struct Shards {
  std::vector<std::unique_ptr<StreamShard>> owned;
  ShardMap map;

  explicit Shards(const std::vector<absl::uint128>& starts) {
    for (size_t i = 0; i < starts.size(); ++i) {
      const absl::uint128 end = i + 1 < starts.size() ? starts[i + 1] - 1 : absl::Uint128Max();
      owned.push_back(std::make_unique<StreamShard>(ShardId(static_cast<uint32_t>(i)),
                                                    HashKeyRange{HashKey(starts[i]), HashKey(end)},
                                                    1, 0, ShardLimits{}, nullptr));
      map.open.push_back(owned.back().get());
      map.all.push_back(owned.back().get());
      map.starts.push_back(HashKey(starts[i]));
    }
    map.Index();
  }

  // The shard whose range holds `key`, by looking at every range.
  uint32_t Expected(absl::uint128 key) const {
    for (const auto& s : owned) {
      if (s->range.Contains(HashKey(key))) return s->id.index();
    }
    return UINT32_MAX;
  }
};

// Every start, the key before it, the key space's ends, and random keys.
void CheckEveryRoute(const Shards& shards, const std::vector<absl::uint128>& starts) {
  std::vector<absl::uint128> keys = {0, 1, absl::Uint128Max(), absl::Uint128Max() - 1};
  for (absl::uint128 s : starts) {
    keys.push_back(s);
    if (s != 0) keys.push_back(s - 1);
    keys.push_back(s + 1);
  }
  std::mt19937_64 random(42);
  for (int i = 0; i < 20000; ++i) keys.push_back(absl::MakeUint128(random(), random()));
  for (absl::uint128 key : keys) {
    INFO("key " << HashKey(key));
    CHECK(shards.map.Route(HashKey(key))->id.index() == shards.Expected(key));
  }
}

TEST_CASE("Route finds the shard holding each key with even ranges", "[shard_map]") {
  const int count = GENERATE(1, 2, 3, 4, 100, 1000);
  std::vector<absl::uint128> starts;
  for (const HashKeyRange& r : SplitHashKeySpace(count))
    starts.push_back(r.starting_hash_key.value());
  const Shards shards(starts);
  CHECK(shards.map.bucket_first.size() ==
        std::min<size_t>(std::bit_ceil(4 * static_cast<size_t>(count)), 65536) + 1);
  CheckEveryRoute(shards, starts);
}

TEST_CASE("Route finds the shard holding each key when many shards share a bucket", "[shard_map]") {
  // 60 shards in the first 2^64 keys (all in bucket 0 of 256), then 4 wide ones.
  std::vector<absl::uint128> starts;
  for (uint64_t i = 0; i < 60; ++i) starts.push_back(absl::MakeUint128(0, i * 1000003));
  for (uint64_t i = 1; i <= 3; ++i) starts.push_back(absl::MakeUint128(i << 62, 0));
  starts.push_back(absl::MakeUint128((uint64_t{3} << 62) + (uint64_t{1} << 61), 7));
  const Shards shards(starts);
  CHECK(shards.map.bucket_first.size() == 257);
  CHECK(shards.map.bucket_first[0] == 0);
  CHECK(shards.map.bucket_first[1] == 59);
  CheckEveryRoute(shards, starts);
}

}  // namespace
}  // namespace rill
