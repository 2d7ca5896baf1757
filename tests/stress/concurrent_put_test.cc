// Many producers and readers on one stream at once: nothing lost, nothing duplicated, each shard
// in put order. Run it under ThreadSanitizer with `scripts/test.sh tsan`.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

struct Payload {
  uint32_t thread;
  uint32_t index;
};

std::string Encode(uint32_t thread, uint32_t index) {
  Payload p{thread, index};
  std::string s(sizeof(p), '\0');
  std::memcpy(s.data(), &p, sizeof(p));
  s.append(24, 'x');  // some bulk, so chunks fill and roll over under contention
  return s;
}

Payload Decode(std::string_view data) {
  Payload p;
  REQUIRE(data.size() == sizeof(p) + 24);
  std::memcpy(&p, data.data(), sizeof(p));
  return p;
}

// Reads a whole shard from TRIM_HORIZON.
std::vector<Record> ReadShard(const Stream& stream, ShardId shard, GetRecordsResult* keep_alive) {
  std::vector<Record> records;
  auto it = stream.GetShardIterator(shard, StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  ShardIterator iterator = *it;
  for (;;) {
    auto batch = stream.GetRecords(iterator, 10000);
    REQUIRE(batch.ok());
    if (batch->records.empty()) break;
    records.insert(records.end(), batch->records.begin(), batch->records.end());
    keep_alive->storage.Add(batch->storage);
    REQUIRE(batch->next_shard_iterator.has_value());
    iterator = *batch->next_shard_iterator;
  }
  return records;
}

TEST_CASE("8 producers x 100k records: nothing lost, per-shard order kept", "[stress]") {
  constexpr uint32_t kThreads = 8;
  constexpr uint32_t kPerThread = 100000;
  auto stream = testing::MakeStream(SystemClock::Default(), 4, "stress");

  // Readers tail every shard while the producers run; each checks that what it sees is a
  // consistent, ordered prefix.
  std::atomic<bool> done{false};
  std::atomic<uint64_t> tailed{0};
  std::vector<std::thread> readers;
  for (const ShardDescription& shard : stream->ListShards()) {
    readers.emplace_back([&, id = shard.shard_id] {
      auto it = stream->GetShardIterator(id, StartingPosition::TrimHorizon());
      if (!it.ok()) return;
      ShardIterator iterator = *it;
      SequenceNumber last;
      std::vector<uint32_t> next_index(kThreads, 0);
      bool ordered = true;
      for (;;) {
        const bool finished = done.load();
        auto batch = stream->GetRecords(iterator, 1000);
        if (!batch.ok()) break;
        for (const Record& r : batch->records) {
          const Payload p = Decode(r.data);
          ordered = ordered && r.sequence_number > last && p.index >= next_index[p.thread];
          next_index[p.thread] = p.index + 1;
          last = r.sequence_number;
        }
        tailed.fetch_add(batch->records.size());
        iterator = *batch->next_shard_iterator;
        if (finished && batch->records.empty()) break;
      }
      CHECK(ordered);
    });
  }

  std::vector<std::thread> producers;
  std::atomic<int> failures{0};
  for (uint32_t t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (uint32_t i = 0; i < kPerThread; ++i) {
        // Keys spread every thread over every shard.
        const std::string key = "player-" + std::to_string(t) + "-" + std::to_string(i % 64);
        if (!stream->PutRecord(key, Encode(t, i)).ok()) failures.fetch_add(1);
      }
    });
  }
  for (auto& p : producers) p.join();
  done.store(true);
  for (auto& r : readers) r.join();
  REQUIRE(failures.load() == 0);
  CHECK(tailed.load() == uint64_t{kThreads} * kPerThread);

  // Everything is there exactly once, and within a shard each producer's records are in the order
  // it put them.
  std::vector<std::vector<bool>> seen(kThreads, std::vector<bool>(kPerThread, false));
  uint64_t total = 0;
  GetRecordsResult keep_alive;
  for (const ShardDescription& shard : stream->ListShards()) {
    const std::vector<Record> records = ReadShard(*stream, shard.shard_id, &keep_alive);
    std::vector<int64_t> last_index(kThreads, -1);
    for (size_t i = 0; i < records.size(); ++i) {
      const Record& r = records[i];
      if (i > 0) REQUIRE(records[i - 1].sequence_number < r.sequence_number);
      REQUIRE(shard.hash_key_range.Contains(HashKey::FromPartitionKey(r.partition_key)));
      const Payload p = Decode(r.data);
      REQUIRE(p.thread < kThreads);
      REQUIRE(p.index < kPerThread);
      REQUIRE_FALSE(seen[p.thread][p.index]);
      seen[p.thread][p.index] = true;
      REQUIRE(static_cast<int64_t>(p.index) > last_index[p.thread]);
      last_index[p.thread] = p.index;
      ++total;
    }
  }
  CHECK(total == uint64_t{kThreads} * kPerThread);
}

TEST_CASE("concurrent PutRecords batches keep request order per shard", "[stress]") {
  constexpr int kThreads = 4;
  constexpr int kBatches = 200;
  constexpr int kBatchSize = 500;
  auto stream = testing::MakeStream(SystemClock::Default(), 2, "stress");
  std::vector<std::thread> producers;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      std::vector<PutRecordsEntry> entries(kBatchSize);
      for (int b = 0; b < kBatches; ++b) {
        for (int i = 0; i < kBatchSize; ++i) {
          entries[i].partition_key = "k" + std::to_string(i % 16);
          entries[i].data =
              Encode(static_cast<uint32_t>(t), static_cast<uint32_t>(b * kBatchSize + i));
        }
        auto result = stream->PutRecords(entries);
        if (!result.ok() || result->failed_record_count != 0) failures.fetch_add(1);
      }
    });
  }
  for (auto& p : producers) p.join();
  REQUIRE(failures.load() == 0);
  uint64_t total = 0;
  GetRecordsResult keep_alive;
  for (const ShardDescription& shard : stream->ListShards()) {
    std::vector<int64_t> last_index(kThreads, -1);
    for (const Record& r : ReadShard(*stream, shard.shard_id, &keep_alive)) {
      const Payload p = Decode(r.data);
      REQUIRE(static_cast<int64_t>(p.index) > last_index[p.thread]);
      last_index[p.thread] = p.index;
      ++total;
    }
  }
  CHECK(total == uint64_t{kThreads} * kBatches * kBatchSize);
}

// kEveryBatch writers sync their own journal regions and finish in any order; each shard's
// ledger publishes up to the first writer still syncing. Every acknowledged record must become
// visible (nothing stuck behind a finished writer), in put order per writer, while a reader
// follows along; and a reopen recovers exactly the same.
TEST_CASE("concurrent kEveryBatch PutRecords all become visible, in order, and survive a reopen",
          "[stress][durable]") {
  constexpr int kThreads = 4;
  constexpr int kBatches = 60;
  constexpr int kBatchSize = 100;
  testing::TempDir dir("every-batch-stress", testing::TempDir::kAbsent);
  const StreamOptions options = testing::DurableStreamOptions(dir.path(), SystemClock::Default(), 2,
                                                              FsyncPolicy::kEveryBatch, "stress");
  auto stream = testing::MustCreate(options);
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::atomic<uint64_t> seen_while_writing{0};
  std::thread reader([&] {
    // Follows shard 0: what it sees is always a prefix of what the shard ends with.
    auto it = stream->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
    if (!it.ok()) {
      failures.fetch_add(1);
      return;
    }
    ShardIterator iterator = *it;
    std::vector<int64_t> last_index(kThreads, -1);
    while (!done.load()) {
      auto batch = stream->GetRecords(iterator, 1000);
      if (!batch.ok() || !batch->next_shard_iterator) {
        failures.fetch_add(1);
        return;
      }
      for (const Record& r : batch->records) {
        Payload p;
        std::memcpy(&p, r.data.data(), sizeof(p));
        if (static_cast<int64_t>(p.index) <= last_index[p.thread]) failures.fetch_add(1);
        last_index[p.thread] = p.index;
        seen_while_writing.fetch_add(1);
      }
      iterator = *batch->next_shard_iterator;
    }
  });
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      std::vector<PutRecordsEntry> entries(kBatchSize);
      for (int b = 0; b < kBatches; ++b) {
        for (int i = 0; i < kBatchSize; ++i) {
          entries[i].partition_key = "k" + std::to_string(i % 16);
          entries[i].data =
              Encode(static_cast<uint32_t>(t), static_cast<uint32_t>(b * kBatchSize + i));
        }
        auto result = stream->PutRecords(entries);
        if (!result.ok() || result->failed_record_count != 0) failures.fetch_add(1);
      }
    });
  }
  for (auto& p : producers) p.join();
  done.store(true);
  reader.join();
  REQUIRE(failures.load() == 0);
  auto count = [&](const Stream& s) {
    uint64_t total = 0;
    GetRecordsResult keep_alive;
    for (const ShardDescription& shard : s.ListShards()) {
      std::vector<int64_t> last_index(kThreads, -1);
      for (const Record& r : ReadShard(s, shard.shard_id, &keep_alive)) {
        const Payload p = Decode(r.data);
        REQUIRE(static_cast<int64_t>(p.index) > last_index[p.thread]);
        last_index[p.thread] = p.index;
        ++total;
      }
    }
    return total;
  };
  constexpr uint64_t kTotal = uint64_t{kThreads} * kBatches * kBatchSize;
  CHECK(count(*stream) == kTotal);
  stream.reset();
  auto reopened = Stream::Open(options);
  REQUIRE(reopened.ok());
  CHECK(count(**reopened) == kTotal);
}

}  // namespace
}  // namespace rill
