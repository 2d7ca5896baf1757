// Producer: buffering by time and size, batching, retries with backoff and jitter, TTL expiry,
// per-key order through throttling and resharding, Flush and the destructor resolving everything,
// the worker thread, and a concurrent stress case. Everything but the real-time worker and stress
// cases runs on a SimulatedClock (or a clock that stands still) and is deterministic.
#include "rill/stream/producer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/str_format.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/internal/waker.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

// A clock that stands still while anyone waits on it: WaitFor neither sleeps nor moves it (no
// clock rill provides does that), so that a Flush waiting for a retry can make no progress. The
// test moves it by hand.
class StandStillClock final : public Clock {
 public:
  absl::Time Now() const override { return clock_.Now(); }
  bool WaitFor(absl::Duration, internal::Waker& waker) override { return waker.TakeWakeup(); }
  void Advance(absl::Duration d) { clock_.Advance(d); }

 private:
  SimulatedClock clock_;
};

using Result = absl::StatusOr<PutRecordResult>;
using Future = std::future<Result>;

// Per-shard write limits only (Kinesis' 1 MiB/s and 1,000 records/s), so that reading back is
// not throttled.
ShardLimits KinesisWrites() {
  ShardLimits limits;
  limits.write_bytes_per_second = ShardLimits::Kinesis().write_bytes_per_second;
  limits.write_records_per_second = ShardLimits::Kinesis().write_records_per_second;
  return limits;
}

std::unique_ptr<Stream> MakeStream(std::shared_ptr<Clock> clock, int shards,
                                   ShardLimits limits = ShardLimits::Unlimited(),
                                   std::string name = "producer") {
  StreamOptions options = testing::MemoryStreamOptions(std::move(clock), shards, std::move(name));
  options.shard_limits = limits;
  return testing::MustCreate(std::move(options));
}

std::unique_ptr<Producer> MakeProducer(Stream& stream, ProducerOptions options = {}) {
  auto producer = Producer::Create(stream, options);
  REQUIRE(producer.ok());
  return std::move(*producer);
}

bool Ready(const Future& f) {
  return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

struct ReadRecord {
  ShardId shard;
  SequenceNumber sequence_number;
  std::string key;
  std::string data;
};

// Every record of every unexpired shard, shard by shard in shard-id order (so a parent comes
// before its children), each shard from TRIM_HORIZON. A read refused by the stream's read limits
// advances `clock` (when given) by a second and tries again.
std::vector<ReadRecord> ReadAll(const Stream& stream, SimulatedClock* clock = nullptr) {
  std::vector<ReadRecord> out;
  for (const ShardDescription& shard : stream.ListShards()) {
    auto it = stream.GetShardIterator(shard.shard_id, StartingPosition::TrimHorizon());
    while (!it.ok() && clock != nullptr &&
           GetErrorCode(it.status()) == ErrorCode::kProvisionedThroughputExceeded) {
      clock->Advance(absl::Seconds(1));
      it = stream.GetShardIterator(shard.shard_id, StartingPosition::TrimHorizon());
    }
    REQUIRE(it.ok());
    ShardIterator iterator = *it;
    for (;;) {
      auto batch = stream.GetRecords(iterator);
      if (!batch.ok() && clock != nullptr &&
          GetErrorCode(batch.status()) == ErrorCode::kProvisionedThroughputExceeded) {
        clock->Advance(absl::Seconds(1));
        continue;
      }
      REQUIRE(batch.ok());
      for (const Record& r : batch->records) {
        out.push_back(ReadRecord{shard.shard_id, r.sequence_number, std::string(r.partition_key),
                                 std::string(r.data)});
      }
      if (batch->records.empty() || !batch->next_shard_iterator) break;
      iterator = *batch->next_shard_iterator;
    }
  }
  return out;
}

std::string Data(const std::string& key, int index) { return key + "#" + std::to_string(index); }
int IndexOf(const std::string& data) { return std::stoi(data.substr(data.find('#') + 1)); }

// Checks that `records` hold, for every key of `expected_counts`, exactly indices 0..n-1 in order.
void CheckPerKeyOrder(const std::vector<ReadRecord>& records,
                      const std::map<std::string, int>& expected_counts) {
  std::map<std::string, std::vector<int>> seen;
  for (const ReadRecord& r : records) seen[r.key].push_back(IndexOf(r.data));
  REQUIRE(seen.size() == expected_counts.size());
  for (const auto& [key, n] : expected_counts) {
    const std::vector<int>& indices = seen[key];
    REQUIRE(indices.size() == static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      if (indices[i] != i) FAIL("key " << key << ": position " << i << " holds " << indices[i]);
    }
  }
}

TEST_CASE("Create validates every option", "[producer]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 1);

  const auto invalid = [&](ProducerOptions o) {
    return GetErrorCode(Producer::Create(*stream, o).status()) == ErrorCode::kInvalidArgument;
  };
  ProducerOptions o;
  o.max_buffered_time = absl::Milliseconds(-1);
  CHECK(invalid(o));
  o = {};
  o.max_batch_records = 0;
  CHECK(invalid(o));
  o.max_batch_records = 501;
  CHECK(invalid(o));
  o = {};
  o.max_batch_bytes = 0;
  CHECK(invalid(o));
  o = {};
  o.record_ttl = absl::ZeroDuration();
  CHECK(invalid(o));
  o = {};
  o.initial_backoff = absl::ZeroDuration();
  CHECK(invalid(o));
  o = {};
  o.max_backoff = o.initial_backoff / 2;
  CHECK(invalid(o));
  o = {};
  o.max_backoff = absl::InfiniteDuration();
  CHECK(invalid(o));
  o = {};
  o.max_outstanding_records = 0;
  CHECK(invalid(o));
  o = {};
  o.max_put_wait = absl::Milliseconds(-1);
  CHECK(invalid(o));

  o = {};
  o.max_batch_records = 500;
  o.max_buffered_time = absl::ZeroDuration();
  o.record_ttl = absl::InfiniteDuration();
  auto producer = Producer::Create(*stream, o);
  REQUIRE(producer.ok());
  CHECK((*producer)->options().max_batch_records == 500);
  CHECK((*producer)->outstanding() == 0);
}

TEST_CASE("a record waits max_buffered_time for company, then Poll sends it", "[producer]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 2);
  auto producer = MakeProducer(*stream);  // max_buffered_time 100 ms

  Future f = producer->Put("player-1", "jump");
  producer->Poll();
  CHECK(producer->outstanding() == 1);
  CHECK(producer->stats().put_records_calls == 0);
  clock->Advance(absl::Milliseconds(99));
  producer->Poll();
  CHECK_FALSE(Ready(f));
  clock->Advance(absl::Milliseconds(1));
  producer->Poll();
  REQUIRE(Ready(f));
  const Result r = f.get();
  REQUIRE(r.ok());
  CHECK(producer->outstanding() == 0);

  const std::vector<ReadRecord> records = ReadAll(*stream);
  REQUIRE(records.size() == 1);
  CHECK(records[0].shard == r->shard_id);
  CHECK(records[0].sequence_number == r->sequence_number);
  CHECK(records[0].key == "player-1");
  CHECK(records[0].data == "jump");
}

TEST_CASE("a batch's worth is sent at once, in calls bounded by records and bytes", "[producer]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 1);

  SECTION("max_batch_records") {
    ProducerOptions o;
    o.max_batch_records = 100;
    auto producer = MakeProducer(*stream, o);
    for (int i = 0; i < 99; ++i) producer->Put("key-" + std::to_string(i), "x", nullptr);
    producer->Poll();
    CHECK(producer->stats().put_records_calls == 0);
    producer->Put("key-99", "x", nullptr);  // the 100th: a full batch
    producer->Poll();
    CHECK(producer->stats().put_records_calls == 1);
    CHECK(producer->outstanding() == 0);
    for (int i = 100; i < 350; ++i) producer->Put("key-" + std::to_string(i), "x", nullptr);
    producer->Flush();
    const ProducerStats s = producer->stats();
    CHECK(s.put_records_calls == 1 + 3);  // 100 + 100 + 50 after the first
    CHECK(s.kinesis_records_sent == 350);
    CHECK(s.user_records_written == 350);
  }
  SECTION("max_batch_bytes") {
    ProducerOptions o;
    o.max_batch_bytes = 1000;
    auto producer = MakeProducer(*stream, o);
    const std::string data(90, 'd');
    for (int i = 0; i < 9; ++i) producer->Put(absl::StrFormat("key-%06d", i), data, nullptr);
    producer->Poll();
    CHECK(producer->stats().put_records_calls == 0);  // 900 bytes: not yet a batch
    producer->Put("key-000009", data, nullptr);       // 1,000 bytes
    producer->Poll();
    CHECK(producer->stats().put_records_calls == 1);
    for (int i = 10; i < 35; ++i) producer->Put(absl::StrFormat("key-%06d", i), data, nullptr);
    producer->Flush();
    CHECK(producer->stats().put_records_calls == 1 + 3);  // 10 + 10 + 5 records of 100 bytes
    CHECK(producer->stats().user_records_written == 35);
  }
}

TEST_CASE("one record per key per call: a key's records go out one call after another",
          "[producer][order]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 1);
  auto producer = MakeProducer(*stream);
  std::vector<Future> futures;
  for (int i = 0; i < 3; ++i) futures.push_back(producer->Put("a", Data("a", i)));
  futures.push_back(producer->Put("b", Data("b", 0)));
  futures.push_back(producer->Put("c", Data("c", 0)));
  producer->Flush();
  // a0 b0 c0, then a1, then a2.
  CHECK(producer->stats().put_records_calls == 3);
  for (Future& f : futures) CHECK(f.get().ok());
  CheckPerKeyOrder(ReadAll(*stream), {{"a", 3}, {"b", 1}, {"c", 1}});
}

TEST_CASE("futures and callbacks carry the shard and sequence number the stream assigned",
          "[producer]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 4);
  auto producer = MakeProducer(*stream);
  std::map<std::string, PutRecordResult> by_data;
  std::vector<std::pair<std::string, Future>> futures;
  int callbacks = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string key = "k" + std::to_string(i % 37);
    const std::string data = Data(key, i);
    if (i % 2 == 0) {
      futures.emplace_back(data, producer->Put(key, data));
    } else {
      producer->Put(key, data, [&by_data, &callbacks, data](Result r) {
        ++callbacks;
        REQUIRE(r.ok());
        by_data[data] = *r;
      });
    }
  }
  producer->Flush();
  CHECK(callbacks == 100);
  for (auto& [data, f] : futures) {
    Result r = f.get();
    REQUIRE(r.ok());
    by_data[data] = *r;
  }
  const std::vector<ReadRecord> records = ReadAll(*stream);
  REQUIRE(records.size() == 200);
  for (const ReadRecord& r : records) {
    REQUIRE(by_data.count(r.data) == 1);
    CHECK(by_data[r.data].shard_id == r.shard);
    CHECK(by_data[r.data].sequence_number == r.sequence_number);
  }
  const ProducerStats s = producer->stats();
  CHECK(s.user_records_put == 200);
  CHECK(s.user_records_written == 200);
  CHECK(s.shard_map_refreshes == 0);  // every prediction was right
}

// A stream whose single shard can never take a record of more than 100 bytes: such a record is
// refused with kProvisionedThroughputExceeded on every attempt.
std::unique_ptr<Stream> NeverFitsStream(std::shared_ptr<Clock> clock, std::string name) {
  ShardLimits limits;
  limits.write_bytes_per_second = 100;
  return MakeStream(std::move(clock), 1, limits, std::move(name));
}

// The clock times at which the producer attempted a record that can never be written, polling
// every millisecond for `span`.
std::vector<absl::Time> AttemptTimes(uint64_t seed, absl::Duration span) {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = NeverFitsStream(clock, "never-fits");
  ProducerOptions o;
  o.max_buffered_time = absl::ZeroDuration();
  o.initial_backoff = absl::Milliseconds(100);
  o.max_backoff = absl::Seconds(1);
  o.record_ttl = absl::Minutes(1);
  o.jitter_seed = seed;
  auto producer = MakeProducer(*stream, o);
  producer->Put("key", std::string(150, 'x'), nullptr);
  std::vector<absl::Time> times;
  int64_t sent = 0;
  for (absl::Time end = clock->Now() + span; clock->Now() < end;) {
    producer->Poll();
    const ProducerStats s = producer->stats();
    if (s.kinesis_records_sent != sent) {
      REQUIRE(s.kinesis_records_sent == sent + 1);
      sent = s.kinesis_records_sent;
      times.push_back(clock->Now());
    }
    clock->Advance(absl::Milliseconds(1));
  }
  CHECK(producer->stats().kinesis_records_retried == sent);
  return times;
}

TEST_CASE("retries back off exponentially with jitter, capped, deterministic per seed",
          "[producer][retry]") {
  const std::vector<absl::Time> times = AttemptTimes(/*seed=*/7, absl::Seconds(10));
  REQUIRE(times.size() >= 8);
  bool jittered = false;
  for (size_t n = 1; n < times.size(); ++n) {
    // After the n-th failed attempt: a wait in [d/2, d], d = min(1 s, 100 ms * 2^(n-1)), seen
    // through a 1 ms polling grid.
    const absl::Duration d = std::min(
        absl::Seconds(1), absl::Milliseconds(100) * (int64_t{1} << std::min<size_t>(n - 1, 20)));
    const absl::Duration gap = times[n] - times[n - 1];
    INFO("attempt " << n << ": waited " << absl::FormatDuration(gap));
    CHECK(gap >= d / 2);
    CHECK(gap <= d + absl::Milliseconds(1));
    if (gap < d) jittered = true;
  }
  CHECK(jittered);
  CHECK(AttemptTimes(7, absl::Seconds(10)) == times);  // same seed, same schedule
  CHECK(AttemptTimes(8, absl::Seconds(10)) != times);  // another seed, another schedule
}

TEST_CASE("records still unwritten when their TTL passes fail with the Expired status",
          "[producer][ttl]") {
  auto clock = std::make_shared<SimulatedClock>();

  SECTION("exactly the throttled ones, and later Puts still work") {
    auto stream = MakeStream(clock, 1, KinesisWrites());
    auto producer = MakeProducer(*stream);
    int ok = 0, expired = 0, other = 0;
    for (int i = 0; i < 1500; ++i) {
      producer->Put("key-" + std::to_string(i), "x", [&](Result r) {
        if (r.ok()) {
          ++ok;
        } else if (IsRecordExpired(r.status())) {
          ++expired;
          CHECK(GetErrorCode(r.status()) == ErrorCode::kProvisionedThroughputExceeded);
          CHECK_THAT(std::string(r.status().message()),
                     Catch::Contains("TTL of 30s passed after 1 attempt;") &&
                         Catch::Contains("ProvisionedThroughputExceeded"));
        } else {
          ++other;
        }
      });
    }
    producer->Poll();  // a batch's worth: 1,000 fit the shard's second, 500 are throttled
    CHECK(ok == 1000);
    CHECK(producer->outstanding() == 500);
    clock->Advance(absl::Seconds(30));  // their TTL passes before any retry
    producer->Poll();
    CHECK(expired == 500);
    CHECK(ok == 1000);
    CHECK(other == 0);
    CHECK(producer->outstanding() == 0);
    CHECK(producer->stats().user_records_expired == 500);

    Future later = producer->Put("later", "x");
    producer->Flush();
    CHECK(later.get().ok());
  }

  SECTION("a record that can never fit, and the records of its key behind it") {
    auto stream = NeverFitsStream(clock, "never-fits");
    ProducerOptions o;
    o.record_ttl = absl::Seconds(5);
    auto producer = MakeProducer(*stream, o);
    Future big = producer->Put("k", std::string(150, 'x'));
    Future other_key = producer->Put("other", "small");
    clock->Advance(absl::Seconds(2));
    Future behind = producer->Put("k", "small");  // waits behind `big`, then outlives it
    for (int i = 0; i < 45 && !Ready(big); ++i) {
      producer->Poll();
      if (!Ready(big)) REQUIRE_FALSE(Ready(behind));  // never sent while `big` is pending
      clock->Advance(absl::Milliseconds(100));
    }
    REQUIRE(Ready(big));
    const Result r = big.get();
    CHECK(IsRecordExpired(r.status()));
    CHECK_THAT(std::string(r.status().message()), Catch::Contains("TTL of 5s passed after"));
    CHECK(producer->stats().kinesis_records_retried >= 3);
    CHECK(other_key.get().ok());
    producer->Flush();  // `big` failed for good: `behind` may go now (it may already have)
    CHECK(behind.get().ok());
    const std::vector<ReadRecord> records = ReadAll(*stream);
    REQUIRE(records.size() == 2);
    CHECK(records[0].data == "small");
    CHECK(records[1].data == "small");
  }
}

TEST_CASE("invalid records fail at once and are never retried", "[producer]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 1);
  auto producer = MakeProducer(*stream);

  // Too large for the stream: refused by Put itself.
  Future oversized = producer->Put("k", std::string(size_t{1} << 20, 'x'));
  REQUIRE(Ready(oversized));
  CHECK(GetErrorCode(oversized.get().status()) == ErrorCode::kInvalidArgument);

  // Refused by the stream when sent.
  Future long_key = producer->Put(std::string(257, 'k'), "x");
  Future bad_utf8 = producer->Put("\xff\xfe", "x");
  Future empty_key = producer->Put("", "x");
  Future good = producer->Put("k", "x");
  producer->Flush();
  CHECK(GetErrorCode(long_key.get().status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(bad_utf8.get().status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(empty_key.get().status()) == ErrorCode::kInvalidArgument);
  CHECK(good.get().ok());
  const ProducerStats s = producer->stats();
  CHECK(s.user_records_refused == 1);
  CHECK(s.kinesis_records_sent == 4);
  CHECK(s.kinesis_records_retried == 0);
  CHECK(s.user_records_failed == 4);
  CHECK(s.user_records_written == 1);
}

TEST_CASE("a throttled record holds back the later records of its key, not other keys",
          "[producer][order]") {
  // 1 MiB/s per shard: after a 600 KB record only ~424 KB are left, so a second 600 KB record is
  // throttled while a 100-byte one would still fit. Sent in one call, the small record would be
  // written before the large one it follows.
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 1, KinesisWrites());
  auto producer = MakeProducer(*stream);
  const std::string large(600000, 'L');
  Future a0 = producer->Put("a", large);
  Future a1 = producer->Put("a", large);
  Future a2 = producer->Put("a", "a#2");
  Future b0 = producer->Put("b", "b#0");
  clock->Advance(absl::Milliseconds(100));  // max_buffered_time: the shard is due
  producer->Poll();  // a0 and b0 in one call, then a1 alone: throttled, it waits in backoff
  CHECK(a0.get().ok());
  CHECK(b0.get().ok());
  CHECK_FALSE(Ready(a1));
  CHECK_FALSE(Ready(a2));
  CHECK(producer->outstanding() == 2);
  CHECK(ReadAll(*stream).size() == 2);

  clock->Advance(absl::Seconds(1));
  producer->Flush();
  const Result r1 = a1.get();
  const Result r2 = a2.get();
  REQUIRE(r1.ok());
  REQUIRE(r2.ok());
  CHECK(r1->sequence_number < r2->sequence_number);
  std::vector<std::string> a_order;
  for (const ReadRecord& r : ReadAll(*stream)) {
    if (r.key == "a") a_order.push_back(r.data.size() > 100 ? "large" : r.data);
  }
  CHECK(a_order == std::vector<std::string>{"large", "large", "a#2"});
}

TEST_CASE("5000 records over 10 keys through throttled shards keep each key's order",
          "[producer][order]") {
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions options;
  options.name = "throttled";
  options.shard_count = 4;
  options.shard_limits = ShardLimits::Kinesis();
  options.clock = clock;
  auto created = Stream::Create(options);
  REQUIRE(created.ok());
  Stream& stream = **created;
  auto producer = MakeProducer(stream);

  constexpr int kKeys = 10;
  constexpr int kRecords = 5000;
  std::vector<std::string> keys;
  for (int k = 0; k < kKeys; ++k) keys.push_back("device-" + std::to_string(k));
  std::vector<Future> futures;
  std::map<std::string, int> counts;
  std::vector<std::vector<int>> callback_order(kKeys);
  // 100 Puts per 1 ms step: 100,000 records a second over 4 shards (4 of the keys share shard 0),
  // far past the 1,000 per second (after a one-second burst) a shard takes.
  int put = 0;
  int steps = 0;
  for (; producer->outstanding() > 0 || put < kRecords; ++steps) {
    REQUIRE(steps < 100000);  // 100 s of simulated time: far more than needed
    for (int i = 0; i < 100 && put < kRecords; ++i, ++put) {
      const int k = put % kKeys;
      const int index = counts[keys[k]]++;
      if (put % 2 == 0) {
        futures.push_back(producer->Put(keys[k], Data(keys[k], index)));
      } else {
        producer->Put(keys[k], Data(keys[k], index), [&callback_order, k, index](Result r) {
          REQUIRE(r.ok());
          callback_order[k].push_back(index);
        });
      }
    }
    clock->Advance(absl::Milliseconds(1));
    producer->Poll();
  }
  for (Future& f : futures) {
    REQUIRE(Ready(f));
    CHECK(f.get().ok());
  }
  // The odd-numbered Puts used callbacks: within a key they ran in Put order.
  for (const std::vector<int>& order : callback_order) {
    CHECK(std::is_sorted(order.begin(), order.end()));
  }
  const ProducerStats s = producer->stats();
  // The shards really were saturated: shard 0 (2,000 records) needed more than its one-second
  // burst, and entries were refused again and again (about one per key per backoff cycle).
  CHECK(steps > 1000);
  CHECK(s.kinesis_records_retried >= 40);
  CHECK(s.user_records_written == kRecords);
  CHECK(s.user_records_failed == 0);

  const std::vector<ReadRecord> records = ReadAll(stream, clock.get());
  CHECK(records.size() == kRecords);
  std::set<std::string> unique;
  for (const ReadRecord& r : records) unique.insert(r.data);
  CHECK(unique.size() == kRecords);   // nothing duplicated
  CheckPerKeyOrder(records, counts);  // nothing lost, each key in Put order
}

TEST_CASE("thousands of keys with several records each, throttled, keep each key's order",
          "[producer][order]") {
  // Many distinct keys come and go in the producer's key table while retries reorder which keys
  // resolve first.
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 2, KinesisWrites());
  auto producer = MakeProducer(*stream);
  std::map<std::string, int> counts;
  int failed = 0;
  for (int round = 0; round < 3; ++round) {
    for (int k = 0; k < 3000; ++k) {
      const std::string key = "user-" + std::to_string(k * 7919);
      producer->Put(key, Data(key, counts[key]++), [&failed](Result r) { failed += !r.ok(); });
    }
  }
  for (int i = 0; i < 20000 && producer->outstanding() > 0; ++i) {
    clock->Advance(absl::Milliseconds(1));
    producer->Poll();
  }
  CHECK(producer->outstanding() == 0);
  CHECK(failed == 0);
  CHECK(producer->stats().kinesis_records_retried > 0);
  CheckPerKeyOrder(ReadAll(*stream), counts);
}

TEST_CASE("Flush sends everything without the clock moving when nothing is throttled",
          "[producer][flush]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 4);
  auto producer = MakeProducer(*stream);
  const absl::Time start = clock->Now();
  std::vector<Future> futures;
  for (int i = 0; i < 1000; ++i)
    futures.push_back(producer->Put("k" + std::to_string(i % 50), "x"));
  producer->Flush();
  CHECK(producer->outstanding() == 0);
  for (Future& f : futures) {
    REQUIRE(Ready(f));
    CHECK(f.get().ok());
  }
  CHECK(clock->Now() == start);
  producer->Flush();  // nothing to do
}

TEST_CASE("Flush on a SimulatedClock moves the clock through the backoffs and writes everything",
          "[producer][flush][clock]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 1, KinesisWrites());
  auto producer = MakeProducer(*stream);
  std::vector<Future> futures;
  for (int i = 0; i < 1500; ++i) futures.push_back(producer->Put("k" + std::to_string(i), "x"));
  const absl::Time start = clock->Now();
  producer->Flush();  // instant: it waits on the clock, which moves instead of sleeping
  CHECK(producer->outstanding() == 0);
  for (Future& f : futures) {
    REQUIRE(Ready(f));
    CHECK(f.get().ok());
  }
  CHECK(producer->stats().kinesis_records_retried > 0);
  // The shard takes 1,000 records a second: the last 500 waited half a second at least for its
  // bucket, all of it simulated, and far less than their 30 s TTL.
  CHECK(clock->Now() - start >= absl::Milliseconds(500));
  CHECK(clock->Now() - start < absl::Seconds(30));
}

TEST_CASE("Flush returns when the clock stands still while it waits for a retry",
          "[producer][flush]") {
  auto clock = std::make_shared<StandStillClock>();
  auto stream = MakeStream(clock, 1, KinesisWrites());
  auto producer = MakeProducer(*stream);
  std::vector<Future> futures;
  for (int i = 0; i < 1500; ++i) futures.push_back(producer->Put("k" + std::to_string(i), "x"));

  producer->Flush();  // one wait in which the clock did not move: no progress is possible
  CHECK(producer->outstanding() == 500);  // waiting for the clock

  SECTION("advancing the clock and polling finishes the job") {
    for (int i = 0; i < 100 && producer->outstanding() > 0; ++i) {
      clock->Advance(absl::Milliseconds(100));
      producer->Poll();
    }
  }
  SECTION("so does Flush while another thread advances the clock") {
    // A Flush returns whenever a wait of it finds the clock where it was, so call Flush again
    // while the ticker runs. The ticker moves the clock 10 s in all, as the section above may,
    // far within the records' 30 s TTL and past every retry the throttle asks for; once it has
    // stopped, one more Flush sends what is left.
    std::atomic<bool> done{false};
    std::atomic<bool> ticked_out{false};
    std::thread ticker([&] {
      for (int i = 0; i < 1000 && !done.load(); ++i) {
        clock->Advance(absl::Milliseconds(10));
        std::this_thread::yield();
      }
      ticked_out = true;
    });
    while (producer->outstanding() > 0 && !ticked_out.load()) producer->Flush();
    done = true;
    ticker.join();
    producer->Flush();
  }
  CHECK(producer->outstanding() == 0);
  for (Future& f : futures) {
    REQUIRE(Ready(f));
    CHECK(f.get().ok());
  }
}

TEST_CASE("every future gets a value and every callback runs exactly once, also on destruction",
          "[producer][flush]") {
  // A clock that stands still while the destructor's Flush waits: it cannot write everything.
  auto clock = std::make_shared<StandStillClock>();
  auto stream = MakeStream(clock, 1, KinesisWrites());
  constexpr int kRecords = 1500;
  std::vector<int> calls(kRecords, 0);
  int ok = 0, destroyed = 0, invalid = 0;
  std::vector<Future> futures;
  {
    ProducerOptions o;
    o.max_batch_records = 250;
    auto producer = MakeProducer(*stream, o);
    for (int i = 0; i < kRecords; ++i) {
      const std::string key = i % 100 == 99 ? "" : "k" + std::to_string(i);  // 15 invalid keys
      producer->Put(key, "x", [&, i](Result r) {
        ++calls[i];
        if (r.ok()) {
          ++ok;
        } else if (GetErrorCode(r.status()) == ErrorCode::kInternalFailure) {
          CHECK_THAT(std::string(r.status().message()), Catch::Contains("destroyed"));
          ++destroyed;
        } else if (GetErrorCode(r.status()) == ErrorCode::kInvalidArgument) {
          ++invalid;
        }
      });
      if (i % 3 == 0) futures.push_back(producer->Put("f" + std::to_string(i), "y"));
    }
    producer->Poll();
    // The clock never moves: the destructor flushes what fits and fails the rest.
  }
  for (int i = 0; i < kRecords; ++i) {
    if (calls[i] != 1) FAIL("callback " << i << " ran " << calls[i] << " times");
  }
  int futures_ok = 0, futures_destroyed = 0;
  for (Future& f : futures) {
    REQUIRE(Ready(f));
    const Result r = f.get();
    if (r.ok()) {
      ++futures_ok;
    } else {
      CHECK(GetErrorCode(r.status()) == ErrorCode::kInternalFailure);
      ++futures_destroyed;
    }
  }
  CHECK(invalid == 15);
  CHECK(ok + futures_ok == 1000);  // one second's worth of the shard
  CHECK(ok + destroyed + invalid == kRecords);
  CHECK(futures_ok + futures_destroyed == 500);
  CHECK(destroyed + futures_destroyed > 0);
  CHECK(ReadAll(*stream).size() == 1000);
}

TEST_CASE("Put beyond max_outstanding_records fails fast with kLimitExceeded", "[producer]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 1);
  ProducerOptions o;
  o.max_outstanding_records = 10;
  auto producer = MakeProducer(*stream, o);
  std::vector<Future> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(producer->Put("k", Data("k", i)));
  Future refused = producer->Put("k", "refused");
  REQUIRE(Ready(refused));
  CHECK(GetErrorCode(refused.get().status()) == ErrorCode::kLimitExceeded);
  bool called = false;
  producer->Put("k", "refused", [&](Result r) {
    called = true;
    CHECK(GetErrorCode(r.status()) == ErrorCode::kLimitExceeded);
  });
  CHECK(called);  // before Put returned
  CHECK(producer->outstanding() == 10);
  producer->Flush();
  for (Future& f : futures) CHECK(f.get().ok());
  Future again = producer->Put("k", Data("k", 10));  // room again
  producer->Flush();
  CHECK(again.get().ok());
  const ProducerStats s = producer->stats();
  CHECK(s.user_records_refused == 2);
  CHECK(s.user_records_put == s.user_records_written + s.user_records_failed);
}

TEST_CASE("the Put that completes a batch sends it on the caller's thread", "[producer]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 1);
  ProducerOptions o;
  o.max_batch_records = 100;
  auto producer = MakeProducer(*stream, o);
  int written = 0;
  for (int i = 0; i < 99; ++i) {
    producer->Put("key-" + std::to_string(i), "x", [&](Result r) { written += r.ok(); });
  }
  CHECK(producer->stats().put_records_calls == 0);
  producer->Put("key-99", "x", [&](Result r) { written += r.ok(); });
  // No Poll, no worker: the 100th Put sent the batch and ran its callbacks before returning.
  CHECK(producer->stats().put_records_calls == 1);
  CHECK(written == 100);
  CHECK(producer->outstanding() == 0);
}

// Puts directly to the stream until its single shard refuses one: the shard's write budget is
// spent, and refills at 1,000 records a second on the clock.
void SpendWriteBudget(Stream& stream) {
  for (int i = 0; i < 100000; ++i) {
    auto r = stream.PutRecord("budget", "x");
    if (!r.ok()) {
      REQUIRE(GetErrorCode(r.status()) == ErrorCode::kProvisionedThroughputExceeded);
      return;
    }
  }
  FAIL("the shard never refused a record");
}

TEST_CASE("a Put that finds no room waits on the clock while the records ahead are retried",
          "[producer][clock]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 1, KinesisWrites());
  ProducerOptions o;
  o.max_outstanding_records = 10;
  o.max_put_wait = absl::Seconds(5);
  auto producer = MakeProducer(*stream, o);
  SpendWriteBudget(*stream);
  std::vector<Future> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(producer->Put("k" + std::to_string(i), "x"));
  const absl::Time start = clock->Now();
  // No room: the Put sends the ten itself (throttled), then waits for their retries (each with
  // its own jitter), moving the simulated clock instead of sleeping, until one is written and
  // leaves room.
  Future eleventh = producer->Put("k10", "x");
  const auto ready = std::count_if(futures.begin(), futures.end(), Ready);
  CHECK(ready >= 1);
  CHECK_FALSE(Ready(eleventh));  // buffered, not refused
  CHECK(producer->outstanding() == static_cast<size_t>(10 - ready + 1));
  const ProducerStats s = producer->stats();
  CHECK(s.user_records_refused == 0);
  CHECK(s.kinesis_records_retried >= 10);
  CHECK(clock->Now() > start);
  CHECK(clock->Now() < start + absl::Seconds(5));
  producer->Flush();
  for (Future& f : futures) CHECK(f.get().ok());
  CHECK(eleventh.get().ok());
}

TEST_CASE("a Put that finds no room for max_put_wait fails with kLimitExceeded",
          "[producer][clock]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = NeverFitsStream(clock, "never-fits");
  ProducerOptions o;
  o.max_outstanding_records = 1;
  o.max_put_wait = absl::Seconds(1);
  o.record_ttl = absl::Seconds(30);
  auto producer = MakeProducer(*stream, o);
  Future big = producer->Put("k", std::string(150, 'x'));  // can never be written
  const absl::Time start = clock->Now();
  Future refused = producer->Put("other", "small");
  REQUIRE(Ready(refused));
  CHECK(GetErrorCode(refused.get().status()) == ErrorCode::kLimitExceeded);
  // It waited exactly max_put_wait, on the simulated clock, retrying `big` meanwhile.
  CHECK(clock->Now() == start + absl::Seconds(1));
  CHECK(producer->stats().kinesis_records_retried >= 2);
  CHECK(producer->stats().user_records_refused == 1);
  CHECK_FALSE(Ready(big));
  CHECK(producer->outstanding() == 1);

  SECTION("a callback's Put never waits") {
    Future from_callback;
    auto small_stream = MakeStream(clock, 1, ShardLimits::Unlimited(), "small");
    auto p = MakeProducer(*small_stream, o);
    Producer* raw = p.get();
    const absl::Time before = clock->Now();
    raw->Put("a", "x", [&](Result r) {
      CHECK(r.ok());
      raw->Put("b", "x", nullptr);         // takes the one place
      from_callback = raw->Put("c", "x");  // none left: refused at once
      CHECK(Ready(from_callback));
    });
    raw->Flush();
    CHECK(GetErrorCode(from_callback.get().status()) == ErrorCode::kLimitExceeded);
    CHECK(clock->Now() == before);
  }
}

TEST_CASE("Puts from 8 threads with little room lose nothing and keep each thread's order per key",
          "[producer][stress]") {
  // A SimulatedClock that nobody moves, no worker: the Put threads send full batches themselves
  // and, finding no room, send and wait for one another (max_put_wait infinite). What is written
  // is deterministic whatever the interleaving: every record once, each thread's records of a
  // key in its Put order.
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 4);
  ProducerOptions o;
  o.max_batch_records = 50;
  o.max_outstanding_records = 300;
  o.max_put_wait = absl::InfiniteDuration();
  auto producer = MakeProducer(*stream, o);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 4000;
  constexpr int kOwnKeys = 16;
  constexpr int kSharedKeys = 4;
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::map<std::string, int> next;
      for (int i = 0; i < kPerThread; ++i) {
        // Every third record goes to a key all threads share.
        const std::string key = i % 3 == 0
                                    ? "shared-" + std::to_string(i % kSharedKeys)
                                    : "t" + std::to_string(t) + "-k" + std::to_string(i % kOwnKeys);
        const std::string data = "t" + std::to_string(t) + ":" + Data(key, next[key]++);
        producer->Put(key, data, [&failed](Result r) {
          if (!r.ok()) failed.fetch_add(1);
        });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  producer->Flush();
  CHECK(failed.load() == 0);
  CHECK(producer->outstanding() == 0);
  const ProducerStats s = producer->stats();
  CHECK(s.user_records_put == kThreads * kPerThread);
  CHECK(s.user_records_written == kThreads * kPerThread);
  CHECK(s.user_records_refused == 0);
  CHECK(clock->Now() == SimulatedClock::DefaultStart());  // nobody waited on the clock

  // Per (thread, key): indices 0..n-1 in order, each once.
  std::map<std::string, std::vector<int>> seen;
  size_t total = 0;
  for (const ReadRecord& r : ReadAll(*stream)) {
    const std::string thread = r.data.substr(0, r.data.find(':'));
    seen[thread + "/" + r.key].push_back(IndexOf(r.data));
    ++total;
  }
  CHECK(total == static_cast<size_t>(kThreads * kPerThread));
  int expected_total = 0;
  for (const auto& [name, indices] : seen) {
    for (size_t i = 0; i < indices.size(); ++i) {
      if (indices[i] != static_cast<int>(i)) {
        FAIL(name << ": position " << i << " holds " << indices[i]);
      }
    }
    expected_total += static_cast<int>(indices.size());
  }
  CHECK(expected_total == kThreads * kPerThread);
  CHECK(seen.size() == static_cast<size_t>(kThreads * (kOwnKeys + kSharedKeys)));
}

TEST_CASE("the shard map is refreshed after resharding, and order holds across it",
          "[producer][order]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 2);
  auto producer = MakeProducer(*stream);
  std::map<std::string, int> counts;
  std::vector<Future> futures;
  const auto put_round = [&] {
    for (int i = 0; i < 200; ++i) {
      const std::string key = "k" + std::to_string(i % 20);
      futures.push_back(producer->Put(key, Data(key, counts[key]++)));
    }
  };
  put_round();
  producer->Flush();
  CHECK(producer->stats().shard_map_refreshes == 0);

  put_round();  // predicted with the old map...
  REQUIRE(stream->UpdateShardCount(4).ok());
  producer->Flush();  // ...and written to the new shards
  put_round();
  producer->Flush();
  const int64_t refreshes = producer->stats().shard_map_refreshes;
  CHECK(refreshes >= 1);
  put_round();
  producer->Flush();
  CHECK(producer->stats().shard_map_refreshes == refreshes);  // the new map predicts right

  for (Future& f : futures) CHECK(f.get().ok());
  CheckPerKeyOrder(ReadAll(*stream), counts);
}

TEST_CASE("callbacks may Put, and Poll, Flush and Stop inside a callback do nothing",
          "[producer]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 1);
  auto producer = MakeProducer(*stream);
  Producer* p = producer.get();
  Future second;
  bool first_done = false;
  producer->Put("k", "k#0", [&](Result r) {
    CHECK(r.ok());
    p->Poll();
    p->Flush();
    p->Stop();
    second = p->Put("k", "k#1");
    first_done = true;
  });
  producer->Flush();
  CHECK(first_done);
  producer->Flush();
  CHECK(second.get().ok());
  CheckPerKeyOrder(ReadAll(*stream), {{"k", 2}});
}

TEST_CASE("Start runs a worker that sends without Poll, and a second Start is kResourceInUse",
          "[producer][worker]") {
  auto stream = MakeStream(SystemClock::Default(), 2);  // real time
  ProducerOptions o;
  o.max_buffered_time = absl::Milliseconds(1);
  auto producer = MakeProducer(*stream, o);
  REQUIRE(producer->Start().ok());
  CHECK(GetErrorCode(producer->Start()) == ErrorCode::kResourceInUse);
  std::vector<Future> futures;
  for (int i = 0; i < 100; ++i) futures.push_back(producer->Put("k" + std::to_string(i % 7), "x"));
  for (Future& f : futures) {
    REQUIRE(f.wait_for(std::chrono::seconds(2)) == std::future_status::ready);
    CHECK(f.get().ok());
  }
  producer->Stop();
  producer->Stop();
  Future after_stop = producer->Put("k", "x");
  CHECK(after_stop.wait_for(std::chrono::milliseconds(20)) == std::future_status::timeout);
  REQUIRE(producer->Start().ok());  // restartable: picks up what is buffered
  REQUIRE(after_stop.wait_for(std::chrono::seconds(2)) == std::future_status::ready);
  CHECK(after_stop.get().ok());
}

TEST_CASE("a worker on a SimulatedClock sends once the clock reaches max_buffered_time",
          "[producer][worker][clock]") {
  auto clock = std::make_shared<SimulatedClock>();
  auto stream = MakeStream(clock, 1);
  auto producer = MakeProducer(*stream);  // max_buffered_time: 100 ms
  REQUIRE(producer->Start().ok());
  Future f = producer->Put("k", "x");
  clock->Advance(absl::Milliseconds(99));
  // Not due on the clock yet, however long the worker runs: no real time counts.
  CHECK_FALSE(Ready(f));
  clock->Advance(absl::Milliseconds(1));
  f.wait();  // the worker, asleep until the clock got there, sends it
  CHECK(f.get().ok());
  producer->Stop();  // ends the worker's wait for the next Put at once
  CHECK(producer->outstanding() == 0);
  CHECK(ReadAll(*stream).size() == 1);
}

TEST_CASE("Puts from 4 threads with a worker: all written, each key in order",
          "[producer][stress]") {
  auto stream = MakeStream(SystemClock::Default(), 4);
  auto producer = MakeProducer(*stream);
  REQUIRE(producer->Start().ok());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  constexpr int kKeysPerThread = 16;
  std::vector<std::vector<Future>> futures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      futures[t].reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) {
        const std::string key = "t" + std::to_string(t) + "-k" + std::to_string(i % kKeysPerThread);
        futures[t].push_back(producer->Put(key, Data(key, i / kKeysPerThread)));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  producer->Flush();
  CHECK(producer->outstanding() == 0);
  for (auto& per_thread : futures) {
    for (Future& f : per_thread) {
      REQUIRE(Ready(f));
      REQUIRE(f.get().ok());
    }
  }
  std::map<std::string, int> counts;
  for (int t = 0; t < kThreads; ++t) {
    for (int k = 0; k < kKeysPerThread; ++k) {
      counts["t" + std::to_string(t) + "-k" + std::to_string(k)] = kPerThread / kKeysPerThread;
    }
  }
  const std::vector<ReadRecord> records = ReadAll(*stream);
  CHECK(records.size() == kThreads * kPerThread);
  CheckPerKeyOrder(records, counts);
  producer->Stop();
}

}  // namespace
}  // namespace rill
