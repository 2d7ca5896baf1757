// Many producers and readers on one stream at once: nothing lost, nothing duplicated, each shard
// in put order. Run it under ThreadSanitizer with `scripts/test.sh tsan`.
#include <algorithm>
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

TEST_CASE("putters and readers under a small memory budget that retires the oldest records",
          "[stress][memory]") {
  constexpr uint32_t kThreads = 4;
  constexpr uint32_t kPerThread = 50000;  // 4 x 50k x ~70 bytes: 14 MB through a 1 MiB budget
  constexpr size_t kBudget = size_t{1} << 20;
  StreamOptions options = testing::MemoryStreamOptions(SystemClock::Default(), 8, "stress-retire");
  options.memory_limit =
      MemoryLimit{.budget_bytes = kBudget, .policy = MemoryLimitPolicy::kRetireOldest};
  auto stream = testing::MustCreate(options);

  // A reader tails every shard while the putters run: each pass must be ordered, though records
  // retired under it are skipped.
  std::atomic<bool> done{false};
  bool ordered = true;  // the reader's findings, checked once it is joined
  bool read_ok = true;
  std::thread reader([&] {
    const std::vector<ShardDescription> shards = stream->ListShards();
    std::vector<ShardIterator> iterators;
    for (const ShardDescription& shard : shards) {
      auto it = stream->GetShardIterator(shard.shard_id, StartingPosition::TrimHorizon());
      if (!it.ok()) {
        read_ok = false;
        return;
      }
      iterators.push_back(*it);
    }
    std::vector<SequenceNumber> last(shards.size());
    std::vector<std::vector<uint32_t>> next_index(shards.size(), std::vector<uint32_t>(kThreads));
    for (bool finished = false; !finished;) {
      finished = done.load();
      for (size_t s = 0; s < shards.size(); ++s) {
        auto batch = stream->GetRecords(iterators[s], 500);
        if (!batch.ok()) {
          read_ok = false;
          return;
        }
        for (const Record& r : batch->records) {
          const Payload p = Decode(r.data);
          ordered = ordered && r.sequence_number > last[s] && p.index >= next_index[s][p.thread];
          next_index[s][p.thread] = p.index + 1;
          last[s] = r.sequence_number;
        }
        iterators[s] = *batch->next_shard_iterator;
      }
    }
  });

  // Three putters use PutRecord, one PutRecords batches of 100; each notes where its records went.
  std::vector<std::vector<ShardId>> shard_of(kThreads, std::vector<ShardId>(kPerThread));
  std::atomic<int> failures{0};
  std::vector<std::thread> putters;
  auto key_of = [](uint32_t t, uint32_t i) {
    return "player-" + std::to_string(t) + "-" + std::to_string(i % 64);
  };
  for (uint32_t t = 0; t < kThreads; ++t) {
    putters.emplace_back([&, t] {
      if (t + 1 < kThreads) {
        for (uint32_t i = 0; i < kPerThread; ++i) {
          auto put = stream->PutRecord(key_of(t, i), Encode(t, i));
          if (!put.ok()) {
            failures.fetch_add(1);
            continue;
          }
          shard_of[t][i] = put->shard_id;
        }
        return;
      }
      for (uint32_t i = 0; i < kPerThread; i += 100) {
        std::vector<PutRecordsEntry> entries;
        for (uint32_t j = i; j < i + 100; ++j) entries.push_back({key_of(t, j), Encode(t, j), {}});
        auto batch = stream->PutRecords(entries);
        if (!batch.ok() || batch->failed_record_count != 0) {
          failures.fetch_add(1);
          continue;
        }
        for (uint32_t j = 0; j < 100; ++j) shard_of[t][i + j] = batch->entries[j].shard_id;
      }
    });
  }
  for (auto& p : putters) p.join();
  done.store(true);
  reader.join();
  REQUIRE(failures.load() == 0);
  CHECK(read_ok);
  CHECK(ordered);

  // Within the budget once the puts are done.
  CHECK(stream->MemoryBytes() <= kBudget);
  // What is left of each putter in each shard is the end of what it sent there, in order; what
  // is gone is exactly what was counted as retired.
  GetRecordsResult keep_alive;
  int64_t kept = 0;
  int64_t kept_bytes = 0;
  for (const ShardDescription& shard : stream->ListShards()) {
    const std::vector<Record> records = ReadShard(*stream, shard.shard_id, &keep_alive);
    std::vector<std::vector<uint32_t>> indices(kThreads);
    for (size_t i = 0; i < records.size(); ++i) {
      if (i > 0) REQUIRE(records[i - 1].sequence_number < records[i].sequence_number);
      const Payload p = Decode(records[i].data);
      indices[p.thread].push_back(p.index);
      kept_bytes += static_cast<int64_t>(records[i].partition_key.size() + records[i].data.size());
    }
    kept += static_cast<int64_t>(records.size());
    for (uint32_t t = 0; t < kThreads; ++t) {
      std::vector<uint32_t> sent;  // what t put into this shard, in order
      for (uint32_t i = 0; i < kPerThread; ++i) {
        if (shard_of[t][i] == shard.shard_id) sent.push_back(i);
      }
      INFO("shard " << shard.shard_id.ToString() << ", putter " << t);
      REQUIRE(indices[t].size() <= sent.size());
      CHECK(std::equal(indices[t].begin(), indices[t].end(),
                       sent.end() - static_cast<std::ptrdiff_t>(indices[t].size())));
    }
  }
  // Read after the shards: a put that read the clock before a retirement and appended after it
  // is retired (it arrived before the cutoff) by the next trim of its shard, which the reads did.
  const StreamSummary summary = stream->DescribeStreamSummary();
  CHECK(summary.retired_records > int64_t{kThreads} * kPerThread / 2);
  int64_t total_bytes = 0;
  for (uint32_t t = 0; t < kThreads; ++t) {
    for (uint32_t i = 0; i < kPerThread; ++i) {
      total_bytes += static_cast<int64_t>(key_of(t, i).size() + Encode(t, i).size());
    }
  }
  CHECK(summary.retired_records + kept == int64_t{kThreads} * kPerThread);
  CHECK(summary.retired_bytes + kept_bytes == total_bytes);
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
