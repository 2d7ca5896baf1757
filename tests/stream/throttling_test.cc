// Per-shard limits (ShardLimits) with exact token arithmetic on a SimulatedClock, and on-demand
// scaling driven by Tick().
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/base/error.h"
#include "rill/stream/stream.h"

namespace rill {
namespace {

struct Fixture {
  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream;

  explicit Fixture(StreamOptions options) {
    options.name = "throttled";
    options.clock = clock;
    auto s = Stream::Create(options);
    REQUIRE(s.ok());
    stream = std::move(*s);
  }
};

StreamOptions WithLimits(ShardLimits limits, int shards = 1) {
  StreamOptions options;
  options.shard_count = shards;
  options.shard_limits = limits;
  return options;
}

TEST_CASE("ShardLimits::Kinesis holds Kinesis' provisioned numbers", "[throttling]") {
  const ShardLimits k = ShardLimits::Kinesis();
  CHECK(k.write_bytes_per_second == 1048576);
  CHECK(k.write_records_per_second == 1000);
  CHECK(k.read_calls_per_second == 5);
  CHECK(k.read_bytes_per_second == 2097152);
  CHECK(k.get_shard_iterator_calls_per_second == 5);
  const ShardLimits u = ShardLimits::Unlimited();
  CHECK(u.write_records_per_second == ShardLimits::kUnlimited);
}

TEST_CASE("write records: a second's burst, then exactly the refill rate", "[throttling]") {
  Fixture f(WithLimits(ShardLimits::Kinesis()));
  for (int i = 0; i < 1000; ++i) REQUIRE(f.stream->PutRecord("k", "x").ok());
  auto refused = f.stream->PutRecord("k", "x");
  CHECK(GetErrorCode(refused.status()) == ErrorCode::kProvisionedThroughputExceeded);
  // One record's token takes 1 ms to refill.
  f.clock->Advance(absl::Microseconds(999));
  CHECK(GetErrorCode(f.stream->PutRecord("k", "x").status()) ==
        ErrorCode::kProvisionedThroughputExceeded);
  f.clock->Advance(absl::Microseconds(1));
  CHECK(f.stream->PutRecord("k", "x").ok());
  CHECK_FALSE(f.stream->PutRecord("k", "x").ok());
  // Half a second refills 500, never more than the one-second bucket.
  f.clock->Advance(absl::Milliseconds(500));
  int accepted = 0;
  while (f.stream->PutRecord("k", "x").ok()) ++accepted;
  CHECK(accepted == 500);
  f.clock->Advance(absl::Hours(1));
  accepted = 0;
  while (f.stream->PutRecord("k", "x").ok()) ++accepted;
  CHECK(accepted == 1000);
  // Refused puts wrote nothing: 1000 + 1 + 500 + 1000 records are in the shard.
  const MetricsSnapshot m = f.stream->metrics();
  CHECK(m.incoming_records == 2501);
  CHECK(m.write_provisioned_throughput_exceeded == 5);
  REQUIRE(m.shards.size() == 1);
  CHECK(m.shards[0].write_provisioned_throughput_exceeded == 5);
}

TEST_CASE("write bytes count the partition key too", "[throttling]") {
  ShardLimits limits;
  limits.write_bytes_per_second = 1000;
  Fixture f(WithLimits(limits));
  // 10 bytes of key + 90 of data = 100 bytes: ten fit in the bucket.
  const std::string key(10, 'k');
  const std::string data(90, 'd');
  for (int i = 0; i < 10; ++i) REQUIRE(f.stream->PutRecord(key, data).ok());
  CHECK(GetErrorCode(f.stream->PutRecord(key, data).status()) ==
        ErrorCode::kProvisionedThroughputExceeded);
  // 1 byte refills every millisecond: 100 ms for the next record.
  f.clock->Advance(absl::Milliseconds(99));
  CHECK_FALSE(f.stream->PutRecord(key, data).ok());
  f.clock->Advance(absl::Milliseconds(1));
  CHECK(f.stream->PutRecord(key, data).ok());
  // A record larger than the whole bucket can never pass.
  CHECK(GetErrorCode(f.stream->PutRecord(key, std::string(1000, 'd')).status()) ==
        ErrorCode::kProvisionedThroughputExceeded);
}

TEST_CASE("in PutRecords only the throttled entries fail", "[throttling]") {
  ShardLimits limits;
  limits.write_records_per_second = 3;
  Fixture f(WithLimits(limits, 2));
  // "a" is in shard 0, "user-1" in shard 1 (reference test vectors).
  std::vector<PutRecordsEntry> entries;
  for (int i = 0; i < 5; ++i) {
    entries.push_back({"a", "a" + std::to_string(i), {}});
    entries.push_back({"user-1", "u" + std::to_string(i), {}});
  }
  auto result = f.stream->PutRecords(entries);
  REQUIRE(result.ok());
  CHECK(result->failed_record_count == 4);
  for (size_t i = 0; i < entries.size(); ++i) {
    INFO("entry " << i);
    const bool expect_ok = i / 2 < 3;
    CHECK(result->entries[i].ok() == expect_ok);
    if (!expect_ok) {
      CHECK(result->entries[i].error_code == ErrorCode::kProvisionedThroughputExceeded);
      CHECK_FALSE(result->entries[i].error_message.empty());
    }
  }
  const MetricsSnapshot m = f.stream->metrics();
  CHECK(m.put_records_total_records == 10);
  CHECK(m.put_records_successful_records == 6);
  CHECK(m.put_records_throttled_records == 4);
  CHECK(m.put_records_failed_records == 0);
  CHECK(m.put_records_success == 1);
  CHECK(m.incoming_records == 6);
}

TEST_CASE("GetRecords: 5 calls per second per shard", "[throttling]") {
  Fixture f(WithLimits(ShardLimits::Kinesis()));
  REQUIRE(f.stream->PutRecord("k", "x").ok());
  auto it = f.stream->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  for (int i = 0; i < 5; ++i) REQUIRE(f.stream->GetRecords(*it).ok());
  auto refused = f.stream->GetRecords(*it);
  CHECK(GetErrorCode(refused.status()) == ErrorCode::kProvisionedThroughputExceeded);
  f.clock->Advance(absl::Milliseconds(199));
  CHECK_FALSE(f.stream->GetRecords(*it).ok());
  f.clock->Advance(absl::Milliseconds(1));
  CHECK(f.stream->GetRecords(*it).ok());
  CHECK(f.stream->metrics().read_provisioned_throughput_exceeded == 2);
}

TEST_CASE("GetRecords: a 10 MiB read blocks the shard's reads for 5 seconds", "[throttling]") {
  StreamOptions options = WithLimits(ShardLimits::Kinesis());
  options.shard_limits.write_bytes_per_second = ShardLimits::kUnlimited;
  options.shard_limits.write_records_per_second = ShardLimits::kUnlimited;
  Fixture f(options);
  // Ten records of exactly 1 MiB (key + data): 10 MiB, one GetRecords call.
  const std::string data((size_t{1} << 20) - 1, 'd');
  for (int i = 0; i < 10; ++i) REQUIRE(f.stream->PutRecord("k", data).ok());
  auto it = f.stream->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  auto big = f.stream->GetRecords(*it);
  REQUIRE(big.ok());
  REQUIRE(big->records.size() == 10);
  f.clock->Advance(absl::Seconds(5) - absl::Microseconds(1));
  CHECK(GetErrorCode(f.stream->GetRecords(*big->next_shard_iterator).status()) ==
        ErrorCode::kProvisionedThroughputExceeded);
  f.clock->Advance(absl::Microseconds(1));
  CHECK(f.stream->GetRecords(*big->next_shard_iterator).ok());
}

TEST_CASE("GetShardIterator: 5 calls per second per shard", "[throttling]") {
  Fixture f(WithLimits(ShardLimits::Kinesis(), 2));
  for (int i = 0; i < 5; ++i) {
    REQUIRE(f.stream->GetShardIterator(ShardId(0), StartingPosition::Latest()).ok());
  }
  CHECK(GetErrorCode(f.stream->GetShardIterator(ShardId(0), StartingPosition::Latest()).status()) ==
        ErrorCode::kProvisionedThroughputExceeded);
  // Another shard has its own bucket.
  CHECK(f.stream->GetShardIterator(ShardId(1), StartingPosition::Latest()).ok());
  f.clock->Advance(absl::Milliseconds(200));
  CHECK(f.stream->GetShardIterator(ShardId(0), StartingPosition::Latest()).ok());
}

TEST_CASE("unlimited is the default: no put is ever throttled", "[throttling]") {
  StreamOptions options;
  Fixture f(options);
  for (int i = 0; i < 20000; ++i) REQUIRE(f.stream->PutRecord("k", "x").ok());
  auto it = f.stream->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  for (int i = 0; i < 50; ++i) REQUIRE(f.stream->GetRecords(*it, 1).ok());
}

TEST_CASE("KinesisLimits turns on every Kinesis rate limit and leaves the rest as defaults",
          "[throttling]") {
  const StreamOptions defaults;
  CHECK(defaults.shard_limits.write_records_per_second == ShardLimits::kUnlimited);
  CHECK(defaults.shard_limits.read_calls_per_second == ShardLimits::kUnlimited);
  CHECK(defaults.enhanced_fan_out.bytes_per_second_per_shard == 0);

  StreamOptions options = StreamOptions::KinesisLimits();
  CHECK(options.shard_limits.write_bytes_per_second == 1048576);
  CHECK(options.shard_limits.write_records_per_second == 1000);
  CHECK(options.shard_limits.read_calls_per_second == 5);
  CHECK(options.shard_limits.read_bytes_per_second == 2097152);
  CHECK(options.shard_limits.get_shard_iterator_calls_per_second == 5);
  CHECK(options.enhanced_fan_out.bytes_per_second_per_shard == 2097152);
  // Kinesis' count rules are the defaults' already.
  CHECK(options.enhanced_fan_out.max_consumers == defaults.enhanced_fan_out.max_consumers);
  CHECK(options.max_shard_count_updates_per_day == defaults.max_shard_count_updates_per_day);
  CHECK(options.retention == defaults.retention);

  // The preset throttles: a second's burst of 1,000 records, then kProvisionedThroughputExceeded.
  Fixture f(options);
  for (int i = 0; i < 1000; ++i) REQUIRE(f.stream->PutRecord("k", "x").ok());
  auto refused = f.stream->PutRecord("k", "x");
  REQUIRE_FALSE(refused.ok());
  CHECK(GetErrorCode(refused.status()) == ErrorCode::kProvisionedThroughputExceeded);
}

TEST_CASE("bad limits are refused at creation", "[throttling]") {
  StreamOptions options;
  options.name = "bad";
  options.shard_limits.write_records_per_second = -1;
  CHECK(GetErrorCode(Stream::Create(options).status()) == ErrorCode::kInvalidArgument);
}

// Puts `records` records of `bytes` bytes each (key included) to one hash key.
void Load(Stream& stream, HashKey key, int records, size_t bytes) {
  const std::string data(bytes - 1, 'd');
  PutOptions put;
  put.explicit_hash_key = key;
  for (int i = 0; i < records; ++i) REQUIRE(stream.PutRecord("k", data, put).ok());
}

TEST_CASE("on-demand: a shard hot for hot_for is split, cold neighbours are merged",
          "[on_demand]") {
  StreamOptions options;
  options.capacity_mode = CapacityMode::kOnDemand;
  options.shard_count = 1;
  options.on_demand.min_shards = 2;
  options.on_demand.max_shards = 4;
  options.on_demand.split_records_per_second = 100;
  options.on_demand.merge_records_per_second = 10;
  options.on_demand.hot_for = absl::Minutes(2);
  options.on_demand.cold_for = absl::Minutes(3);
  Fixture f(options);
  // Starts at min_shards.
  CHECK(f.stream->DescribeStreamSummary().open_shard_count == 2);
  CHECK(f.stream->DescribeStreamSummary().capacity_mode == CapacityMode::kOnDemand);

  // Shard 0 takes 150 records/s for a minute at a time; shard 1 stays idle.
  const HashKey in_shard0(12345);
  f.clock->Advance(absl::Minutes(1));
  Load(*f.stream, in_shard0, 9000, 10);
  f.stream->Tick();  // hot for 1 minute: not yet
  CHECK(f.stream->DescribeStreamSummary().open_shard_count == 2);
  f.clock->Advance(absl::Minutes(1));
  Load(*f.stream, in_shard0, 9000, 10);
  f.stream->Tick();  // hot for 2 minutes: split at the middle of its range
  CHECK(f.stream->DescribeStreamSummary().open_shard_count == 3);
  std::vector<ShardDescription> shards = f.stream->ListShards();
  REQUIRE(shards.size() == 4);
  CHECK(shards[0].closed());
  CHECK(shards[2].parent_shard_id == ShardId(0));
  CHECK(shards[2].hash_key_range.starting_hash_key == HashKey());
  CHECK(shards[3].hash_key_range.starting_hash_key.value() ==
        absl::MakeUint128(uint64_t{1} << 62, 0));

  // Then everything goes quiet: after cold_for, adjacent cold shards merge, never below
  // min_shards.
  for (int minute = 0; minute < 10; ++minute) {
    f.clock->Advance(absl::Minutes(1));
    f.stream->Tick();
  }
  CHECK(f.stream->DescribeStreamSummary().open_shard_count == 2);
  std::vector<HashKeyRange> open;
  for (const ShardDescription& d : f.stream->ListShards()) {
    if (!d.closed()) open.push_back(d.hash_key_range);
  }
  REQUIRE(open.size() == 2);
}

TEST_CASE("on-demand never grows past max_shards", "[on_demand]") {
  StreamOptions options;
  options.capacity_mode = CapacityMode::kOnDemand;
  options.on_demand.min_shards = 1;
  options.on_demand.max_shards = 2;
  options.on_demand.split_records_per_second = 10;
  options.on_demand.hot_for = absl::Seconds(1);
  Fixture f(options);
  for (int round = 0; round < 5; ++round) {
    f.clock->Advance(absl::Seconds(1));
    Load(*f.stream, HashKey(1), 100, 10);
    Load(*f.stream, HashKey::Max(), 100, 10);
    f.stream->Tick();
  }
  CHECK(f.stream->DescribeStreamSummary().open_shard_count == 2);
}

TEST_CASE("StartAutoScaling runs Tick on a thread the application starts", "[on_demand]") {
  StreamOptions options;
  options.capacity_mode = CapacityMode::kOnDemand;
  options.on_demand.min_shards = 1;
  options.on_demand.split_records_per_second = 10;
  options.on_demand.hot_for = absl::Seconds(1);
  Fixture f(options);
  CHECK(GetErrorCode(f.stream->StartAutoScaling(absl::ZeroDuration())) ==
        ErrorCode::kInvalidArgument);
  REQUIRE(f.stream->StartAutoScaling(absl::Milliseconds(2)).ok());
  CHECK(GetErrorCode(f.stream->StartAutoScaling(absl::Milliseconds(2))) ==
        ErrorCode::kResourceInUse);
  // Keep the shard hot on the simulated clock until the thread has split it. The thread ticks
  // only when the clock passes its next 2 ms, so each Advance lets it tick once, whenever it
  // runs; the loop ends on the split, not on a count that a slow machine might not reach.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (f.stream->DescribeStreamSummary().open_shard_count == 1 &&
         std::chrono::steady_clock::now() < give_up) {
    f.clock->Advance(absl::Seconds(1));
    Load(*f.stream, HashKey(1), 50, 10);
    std::this_thread::yield();
  }
  f.stream->StopAutoScaling();
  CHECK(f.stream->DescribeStreamSummary().open_shard_count >= 2);
}

TEST_CASE("the housekeeping thread ticks on the stream's clock", "[housekeeping]") {
  // Expired chunks leave memory when the thread ticks after the clock passed their retention
  // (nothing else touches the shard here).
  StreamOptions options;
  options.shard_count = 1;
  Fixture f(options);
  for (int i = 0; i < 16; ++i) {
    f.clock->Advance(absl::Seconds(1));
    Load(*f.stream, HashKey(1), 1, 256 << 10);
  }
  const size_t full = f.stream->MemoryBytes();
  REQUIRE(full >= size_t{4} << 20);
  REQUIRE(f.stream->StartHousekeeping(absl::Hours(1)).ok());
  f.clock->Advance(absl::Hours(25));
  // The thread wakes at the advance and trims. Waiting for it is waiting for a thread to run,
  // not for time to pass: the bound is only there so that a broken thread fails the test.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (f.stream->MemoryBytes() >= full / 2 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }
  f.stream->StopHousekeeping();
  INFO("before " << full << " bytes, after " << f.stream->MemoryBytes() << " bytes");
  // What is left is at most the chunk the writer is filling.
  CHECK(f.stream->MemoryBytes() <= (size_t{2} << 20) + 4096);
  f.stream->StopHousekeeping();  // idempotent
}

}  // namespace
}  // namespace rill
