// Resharding while producers put: nothing lost, nothing misrouted, per-key order across lineage.
// Run it under ThreadSanitizer with `scripts/test.sh tsan`.
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/stream/stream.h"

namespace rill {
namespace {

struct Put {
  std::string key;
  std::string data;
  PutRecordResult result;
};

TEST_CASE("4 producers put while the stream splits, merges and rescales", "[stress][resharding]") {
  StreamOptions options;
  options.name = "reshard-stress";
  options.shard_count = 2;
  options.max_shard_count_updates_per_day = 1000;
  auto created = Stream::Create(options);
  REQUIRE(created.ok());
  Stream& stream = **created;

  constexpr int kThreads = 4;
  constexpr int kKeysPerThread = 16;
  std::atomic<bool> stop{false};
  std::vector<std::vector<Put>> puts(kThreads);
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = 0; !stop.load(std::memory_order_relaxed) || i < 2000; ++i) {
        Put p;
        p.key = "t" + std::to_string(t) + "-k" + std::to_string(i % kKeysPerThread);
        p.data = std::to_string(t) + ":" + std::to_string(i);
        auto r = stream.PutRecord(p.key, p.data);
        if (!r.ok()) FAIL_CHECK(r.status().ToString());
        p.result = *r;
        puts[t].push_back(std::move(p));
      }
    });
  }

  // Reshape the stream continuously while they put.
  int operations = 0;
  for (int round = 0; round < 30; ++round) {
    const int open = stream.DescribeStreamSummary().open_shard_count;
    absl::Status s;
    switch (round % 3) {
      case 0:
        s = stream.UpdateShardCount(open < 6 ? open + 2 : open - 2);
        break;
      case 1: {
        // Split the first open shard at its middle.
        for (const ShardDescription& d : stream.ListShards()) {
          if (d.closed()) continue;
          const absl::uint128 a = d.hash_key_range.starting_hash_key.value();
          const absl::uint128 b = d.hash_key_range.ending_hash_key.value();
          s = stream.SplitShard(d.shard_id, HashKey(a + (b - a) / 2));
          break;
        }
        break;
      }
      case 2: {
        // Merge the first two adjacent open shards.
        std::vector<ShardDescription> open_shards;
        for (const ShardDescription& d : stream.ListShards()) {
          if (!d.closed()) open_shards.push_back(d);
        }
        std::sort(open_shards.begin(), open_shards.end(), [](const auto& x, const auto& y) {
          return x.hash_key_range.starting_hash_key < y.hash_key_range.starting_hash_key;
        });
        s = stream.MergeShards(open_shards[0].shard_id, open_shards[1].shard_id);
        break;
      }
    }
    REQUIRE(s.ok());
    ++operations;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  stop = true;
  for (std::thread& t : producers) t.join();
  CHECK(operations == 30);

  // Index the stream's contents and lineage.
  std::map<uint32_t, ShardDescription> shards;
  for (const ShardDescription& d : stream.ListShards()) shards[d.shard_id.index()] = d;
  std::map<std::pair<uint32_t, std::string>, int> found;  // (shard, data) -> copies
  std::vector<GetRecordsResult> keep;
  for (const auto& [index, d] : shards) {
    auto it = stream.GetShardIterator(d.shard_id, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    std::optional<ShardIterator> next = *it;
    SequenceNumber last;
    while (next) {
      auto batch = stream.GetRecords(*next);
      REQUIRE(batch.ok());
      for (const Record& r : batch->records) {
        CHECK(r.sequence_number > last);
        last = r.sequence_number;
        // Not misrouted: the shard owns the record's hash key.
        CHECK(d.hash_key_range.Contains(HashKey::FromPartitionKey(r.partition_key)));
        ++found[{index, std::string(r.data)}];
      }
      next = batch->next_shard_iterator;
      if (batch->records.empty()) break;
      keep.push_back(std::move(*batch));
    }
  }

  // is `a` an ancestor of (or equal to) `b`?
  auto descends = [&](uint32_t b, uint32_t a) {
    std::vector<uint32_t> todo{b};
    while (!todo.empty()) {
      const uint32_t x = todo.back();
      todo.pop_back();
      if (x == a) return true;
      const ShardDescription& d = shards.at(x);
      if (d.parent_shard_id) todo.push_back(d.parent_shard_id->index());
      if (d.adjacent_parent_shard_id) todo.push_back(d.adjacent_parent_shard_id->index());
    }
    return false;
  };

  size_t total = 0;
  for (const std::vector<Put>& thread_puts : puts) {
    std::map<std::string, const Put*> previous;  // per key
    for (const Put& p : thread_puts) {
      ++total;
      // Nothing lost, nothing duplicated, in the shard the put reported.
      const auto it = found.find({p.result.shard_id.index(), p.data});
      REQUIRE(it != found.end());
      CHECK(it->second == 1);
      // Per key, later puts are in the same shard or a descendant, with a higher number.
      const Put*& prev = previous[p.key];
      if (prev != nullptr) {
        CHECK(p.result.sequence_number > prev->result.sequence_number);
        CHECK(descends(p.result.shard_id.index(), prev->result.shard_id.index()));
      }
      prev = &p;
    }
  }
  size_t stored = 0;
  for (const auto& [k, copies] : found) stored += static_cast<size_t>(copies);
  CHECK(stored == total);
  CHECK(total >= kThreads * 2000);
}

}  // namespace
}  // namespace rill
