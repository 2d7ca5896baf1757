// Enhanced fan-out on a Stream: the consumer registry and SubscribeToShard's events.
#include <atomic>
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

  explicit Fixture(int shards = 1, StreamOptions options = {}) {
    options.name = "fanout";
    options.shard_count = shards;
    options.clock = clock;
    auto s = Stream::Create(options);
    REQUIRE(s.ok());
    stream = std::move(*s);
  }

  std::vector<SequenceNumber> Put(int n, const std::string& tag = "r") {
    std::vector<SequenceNumber> out;
    for (int i = 0; i < n; ++i) {
      auto p = stream->PutRecord("k", tag + std::to_string(i));
      REQUIRE(p.ok());
      out.push_back(p->sequence_number);
    }
    return out;
  }

  std::unique_ptr<Subscription> Subscribe(const std::string& consumer, StartingPosition position,
                                          SubscribeOptions options = {}) {
    auto sub = stream->SubscribeToShard(consumer, ShardId(0), position, options);
    REQUIRE(sub.ok());
    return std::move(*sub);
  }
};

// Every record the subscription has now, by TryNext.
std::vector<std::string> Drain(Subscription& sub, std::optional<SequenceNumber>* continuation) {
  std::vector<std::string> data;
  for (;;) {
    auto event = sub.TryNext();
    REQUIRE(event.ok());
    if (!event->has_value()) return data;
    if ((*event)->records.empty()) return data;  // heartbeat: caught up
    for (const Record& r : (*event)->records) data.emplace_back(r.data);
    if (continuation) *continuation = (*event)->continuation_sequence_number;
  }
}

TEST_CASE("consumers register, list, describe and deregister", "[fanout][consumers]") {
  StreamOptions options;
  options.enhanced_fan_out.max_consumers = 2;
  Fixture f(1, options);
  auto a = f.stream->RegisterStreamConsumer("alerts");
  REQUIRE(a.ok());
  CHECK(a->name == "alerts");
  CHECK(a->status == ConsumerStatus::kActive);
  CHECK(a->creation_time == f.clock->Now());
  CHECK(a->id.find("stream/fanout/consumer/alerts:") != std::string::npos);
  CHECK(GetErrorCode(f.stream->RegisterStreamConsumer("alerts").status()) ==
        ErrorCode::kResourceInUse);
  CHECK(GetErrorCode(f.stream->RegisterStreamConsumer("bad name").status()) ==
        ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(f.stream->RegisterStreamConsumer("").status()) == ErrorCode::kInvalidArgument);
  REQUIRE(f.stream->RegisterStreamConsumer("dashboard").ok());
  CHECK(GetErrorCode(f.stream->RegisterStreamConsumer("third").status()) ==
        ErrorCode::kLimitExceeded);
  const std::vector<ConsumerDescription> list = f.stream->ListStreamConsumers();
  REQUIRE(list.size() == 2);
  CHECK(list[0].name == "alerts");
  CHECK(list[1].name == "dashboard");
  CHECK(f.stream->DescribeStreamSummary().consumer_count == 2);
  CHECK(f.stream->DescribeStreamConsumer("dashboard")->name == "dashboard");
  CHECK(GetErrorCode(f.stream->DescribeStreamConsumer("nope").status()) ==
        ErrorCode::kResourceNotFound);
  REQUIRE(f.stream->DeregisterStreamConsumer("alerts").ok());
  CHECK(GetErrorCode(f.stream->DeregisterStreamConsumer("alerts")) == ErrorCode::kResourceNotFound);
  // Registered again later, the same name gets a different ARN.
  f.clock->Advance(absl::Seconds(3));
  auto again = f.stream->RegisterStreamConsumer("alerts");
  REQUIRE(again.ok());
  CHECK(again->id != a->id);
  CHECK(ConsumerStatusName(ConsumerStatus::kActive) == "ACTIVE");
}

TEST_CASE("a subscription delivers records in order with continuations", "[fanout]") {
  Fixture f;
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  const std::vector<SequenceNumber> before = f.Put(3, "old");
  SubscribeOptions options;
  options.max_records_per_event = 2;
  auto sub = f.Subscribe("c", StartingPosition::TrimHorizon(), options);
  CHECK(sub->shard_id() == ShardId(0));
  CHECK(sub->consumer_name() == "c");
  auto e1 = sub->TryNext();
  REQUIRE(e1.ok());
  REQUIRE(e1->has_value());
  REQUIRE((*e1)->records.size() == 2);
  CHECK((*e1)->records[0].data == "old0");
  CHECK((*e1)->continuation_sequence_number == before[1]);
  auto e2 = sub->TryNext();
  REQUIRE(e2.ok());
  REQUIRE((*e2)->records.size() == 1);
  CHECK((*e2)->continuation_sequence_number == before[2]);
  CHECK((*e2)->millis_behind_latest == 0);
  // Caught up: nothing until a record comes.
  auto none = sub->TryNext();
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  f.Put(1, "new");
  auto e3 = sub->TryNext();
  REQUIRE(e3.ok());
  REQUIRE(e3->has_value());
  CHECK((*e3)->records[0].data == "new0");
  CHECK(sub->continuation_sequence_number() == (*e3)->continuation_sequence_number);
}

TEST_CASE("every starting position, and resuming after a continuation", "[fanout]") {
  Fixture f;
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  const std::vector<SequenceNumber> seqs = f.Put(5);
  const absl::Time t2 = f.clock->Now();
  f.clock->Advance(absl::Seconds(1));
  const std::vector<SequenceNumber> later = f.Put(2, "later");
  SubscribeOptions o;
  o.heartbeat_interval = absl::ZeroDuration();
  std::optional<SequenceNumber> cont;
  auto subscribe_at = [&](StartingPosition p) {
    f.clock->Advance(absl::Seconds(6));  // past the resubscribe interval
    auto sub = f.Subscribe("c", p, o);
    return Drain(*sub, &cont);
  };
  using V = std::vector<std::string>;
  CHECK(subscribe_at(StartingPosition::TrimHorizon()) ==
        V{"r0", "r1", "r2", "r3", "r4", "later0", "later1"});
  CHECK(subscribe_at(StartingPosition::AtSequenceNumber(seqs[3])) ==
        V{"r3", "r4", "later0", "later1"});
  CHECK(subscribe_at(StartingPosition::AfterSequenceNumber(seqs[3])) ==
        V{"r4", "later0", "later1"});
  CHECK(subscribe_at(StartingPosition::AtTimestamp(t2 + absl::Microseconds(1))) ==
        V{"later0", "later1"});
  CHECK(subscribe_at(StartingPosition::Latest()).empty());
  // Resume from a continuation: exactly the records after it, no gap, no duplicate.
  CHECK(subscribe_at(StartingPosition::AfterSequenceNumber(later[0])) == V{"later1"});
  CHECK(
      GetErrorCode(
          f.stream->SubscribeToShard("c", ShardId(0), StartingPosition::AtSequenceNumber("garbage"))
              .status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(f.stream->SubscribeToShard("nobody", ShardId(0), StartingPosition::Latest())
                         .status()) == ErrorCode::kResourceNotFound);
  CHECK(GetErrorCode(
            f.stream->SubscribeToShard("c", ShardId(9), StartingPosition::Latest()).status()) ==
        ErrorCode::kResourceNotFound);
}

TEST_CASE("heartbeats carry a continuation that resumes exactly, even before any record",
          "[fanout]") {
  Fixture f;
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  f.Put(2, "seen");
  auto sub = f.Subscribe("c", StartingPosition::Latest());
  auto quiet = sub->TryNext();
  REQUIRE(quiet.ok());
  CHECK_FALSE(quiet->has_value());
  f.clock->Advance(absl::Seconds(5));
  auto beat = sub->TryNext();
  REQUIRE(beat.ok());
  REQUIRE(beat->has_value());
  CHECK((*beat)->records.empty());
  REQUIRE((*beat)->continuation_sequence_number.has_value());
  // Records put after the heartbeat come after its continuation.
  f.Put(1, "fresh");
  f.clock->Advance(absl::Seconds(6));
  auto resumed = f.Subscribe(
      "c", StartingPosition::AfterSequenceNumber(*(*beat)->continuation_sequence_number));
  CHECK(Drain(*resumed, nullptr) == std::vector<std::string>{"fresh0"});
}

TEST_CASE("the end of a closed shard: a null continuation and the children", "[fanout]") {
  Fixture f;
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  f.Put(3);
  auto sub = f.Subscribe("c", StartingPosition::TrimHorizon());
  REQUIRE(f.stream->SplitShard(ShardId(0), HashKey(absl::MakeUint128(1, 0))).ok());
  auto data = sub->TryNext();
  REQUIRE(data.ok());
  CHECK((*data)->records.size() == 3);
  auto end = sub->TryNext();
  REQUIRE(end.ok());
  REQUIRE(end->has_value());
  CHECK((*end)->records.empty());
  CHECK_FALSE((*end)->continuation_sequence_number.has_value());
  REQUIRE((*end)->child_shards.size() == 2);
  CHECK((*end)->child_shards[0].shard_id == ShardId(1));
  CHECK_FALSE(sub->active());
  auto after = sub->TryNext();
  REQUIRE(after.ok());
  CHECK_FALSE(after->has_value());
}

TEST_CASE("a subscription ends cleanly after its lifetime", "[fanout]") {
  Fixture f;
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  auto sub = f.Subscribe("c", StartingPosition::Latest());
  f.clock->Advance(absl::Minutes(5) - absl::Microseconds(1));
  CHECK(sub->active());
  REQUIRE(sub->TryNext().ok());
  f.clock->Advance(absl::Microseconds(1));
  auto over = sub->TryNext();
  REQUIRE(over.ok());
  CHECK_FALSE(over->has_value());
  CHECK_FALSE(sub->active());
  SubscribeOptions unlimited;
  unlimited.lifetime = absl::ZeroDuration();
  auto forever = f.Subscribe("c", StartingPosition::Latest(), unlimited);
  f.clock->Advance(absl::Hours(2));
  REQUIRE(forever->TryNext().ok());
  CHECK(forever->active());
}

TEST_CASE("resubscribing within 5 s is ResourceInUse, later it takes over", "[fanout]") {
  Fixture f;
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  auto first = f.Subscribe("c", StartingPosition::Latest());
  f.clock->Advance(absl::Seconds(5) - absl::Microseconds(1));
  CHECK(GetErrorCode(
            f.stream->SubscribeToShard("c", ShardId(0), StartingPosition::Latest()).status()) ==
        ErrorCode::kResourceInUse);
  f.clock->Advance(absl::Microseconds(1));
  auto second = f.Subscribe("c", StartingPosition::Latest());
  CHECK(GetErrorCode(first->TryNext().status()) == ErrorCode::kResourceInUse);
  CHECK_FALSE(first->active());
  CHECK(second->active());
  // Another consumer is independent of c's interval.
  REQUIRE(f.stream->RegisterStreamConsumer("d").ok());
  CHECK(f.stream->SubscribeToShard("d", ShardId(0), StartingPosition::Latest()).ok());
}

// A stream on the system clock, whose Next(timeout) blocks in real time.
std::unique_ptr<Stream> RealTimeStream() {
  StreamOptions options;
  options.name = "fanout-real-time";
  options.clock = SystemClock::Default();
  auto s = Stream::Create(options);
  REQUIRE(s.ok());
  return std::move(*s);
}

TEST_CASE("deregistering a consumer ends its subscriptions, waking a waiting Next", "[fanout]") {
  // On the system clock, so that Next really blocks (a SimulatedClock would move instead). The
  // outcome does not depend on whether the waiter is asleep yet when the consumer goes.
  auto stream = RealTimeStream();
  REQUIRE(stream->RegisterStreamConsumer("c").ok());
  SubscribeOptions o;
  o.heartbeat_interval = absl::ZeroDuration();  // nothing but the deregistration ends the wait
  auto sub = stream->SubscribeToShard("c", ShardId(0), StartingPosition::Latest(), o);
  REQUIRE(sub.ok());
  std::atomic<int> code{-1};
  std::thread waiter([&] {
    auto event = (*sub)->Next(absl::Hours(1));
    code = static_cast<int>(GetErrorCode(event.status()));
  });
  REQUIRE(stream->DeregisterStreamConsumer("c").ok());
  waiter.join();
  CHECK(code == static_cast<int>(ErrorCode::kResourceNotFound));
}

TEST_CASE("Next wakes when a record is put from another thread", "[fanout]") {
  auto stream = RealTimeStream();
  REQUIRE(stream->RegisterStreamConsumer("c").ok());
  SubscribeOptions o;
  o.spin = absl::ZeroDuration();  // exercise the sleeping path
  o.heartbeat_interval = absl::ZeroDuration();
  auto sub = stream->SubscribeToShard("c", ShardId(0), StartingPosition::Latest(), o);
  REQUIRE(sub.ok());
  std::thread producer([&] { REQUIRE(stream->PutRecord("k", "ping").ok()); });
  // An hour's timeout: only the append can end the wait in a test's time.
  auto event = (*sub)->Next(absl::Hours(1));
  producer.join();
  REQUIRE(event.ok());
  REQUIRE(event->has_value());
  REQUIRE((*event)->records.size() == 1);
  CHECK((*event)->records[0].data == "ping");
}

TEST_CASE("Next on a SimulatedClock with nothing to read moves the clock instead of blocking",
          "[fanout][clock]") {
  Fixture f;  // heartbeats every 5 s of the stream's clock
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  const absl::Time start = f.clock->Now();
  auto sub = f.Subscribe("c", StartingPosition::Latest());
  auto quiet = sub->Next(absl::Seconds(1));
  REQUIRE(quiet.ok());
  CHECK_FALSE(quiet->has_value());
  CHECK(f.clock->Now() - start == absl::Seconds(1));
  // A longer wait meets the heartbeat, due 5 s after the subscription began.
  auto beat = sub->Next(absl::Minutes(1));
  REQUIRE(beat.ok());
  REQUIRE(beat->has_value());
  CHECK((*beat)->records.empty());
  CHECK((*beat)->continuation_sequence_number.has_value());
  CHECK(f.clock->Now() - start >= absl::Seconds(5));
  CHECK(f.clock->Now() - start < absl::Seconds(6));
  CHECK(sub->active());
}

TEST_CASE("Next on a SimulatedClock returns a record already put without moving the clock",
          "[fanout][clock]") {
  Fixture f;
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  auto sub = f.Subscribe("c", StartingPosition::Latest());
  f.Put(1, "now");
  const absl::Time before = f.clock->Now();
  auto event = sub->Next(absl::Seconds(30));
  REQUIRE(event.ok());
  REQUIRE(event->has_value());
  REQUIRE((*event)->records.size() == 1);
  CHECK((*event)->records[0].data == "now0");
  CHECK(f.clock->Now() == before);
}

TEST_CASE("with Kinesis' fan-out limits each consumer has its own 2 MiB/s per shard",
          "[fanout][throughput]") {
  // Only the fan-out half of KinesisLimits(): its 1 MiB/s write limit would refuse these puts.
  StreamOptions kinesis_fan_out;
  kinesis_fan_out.enhanced_fan_out = StreamOptions::KinesisLimits().enhanced_fan_out;
  Fixture f(1, kinesis_fan_out);
  REQUIRE(f.stream->RegisterStreamConsumer("slow").ok());
  REQUIRE(f.stream->RegisterStreamConsumer("other").ok());
  const std::string mib((size_t{1} << 20) - 1, 'd');  // with the 1-byte key: exactly 1 MiB
  for (int i = 0; i < 4; ++i) REQUIRE(f.stream->PutRecord("k", mib).ok());
  SubscribeOptions o;
  o.max_records_per_event = 1;
  auto slow = f.Subscribe("slow", StartingPosition::TrimHorizon(), o);
  auto count = [](Subscription& s) {
    int n = 0;
    for (;;) {
      auto e = s.TryNext();
      REQUIRE(e.ok());
      if (!e->has_value() || (*e)->records.empty()) return n;
      ++n;
    }
  };
  CHECK(count(*slow) == 2);  // a second's worth, then it waits
  // The other consumer is not slowed by the first.
  auto other = f.Subscribe("other", StartingPosition::TrimHorizon(), o);
  CHECK(count(*other) == 2);
  // A bucket of one second (2 MiB) that may go into debt: reads are allowed while it holds
  // anything. 499 ms refill 1,046,478.848 bytes: one more 1 MiB event, leaving a debt of
  // 2,097.152 bytes, which the next 1 ms repays exactly to zero (still not allowed).
  f.clock->Advance(absl::Milliseconds(499));
  CHECK(count(*slow) == 1);
  CHECK(count(*slow) == 0);
  f.clock->Advance(absl::Milliseconds(1));
  CHECK(count(*slow) == 0);
  f.clock->Advance(absl::Microseconds(1));
  CHECK(count(*slow) == 1);

  // By default no rate limit applies: a subscriber reads as fast as records arrive.
  Fixture g(1);
  REQUIRE(g.stream->RegisterStreamConsumer("fast").ok());
  for (int i = 0; i < 6; ++i) REQUIRE(g.stream->PutRecord("k", mib).ok());
  auto fast = g.Subscribe("fast", StartingPosition::TrimHorizon(), o);
  CHECK(count(*fast) == 6);
}

TEST_CASE("by default a single-shard subscriber keeps up with 100 k small records a second",
          "[fanout][throughput]") {
  // 100,000 records of 100 bytes in one second of the clock: 9.6 MiB, five times what the
  // Kinesis rate would let through. All of it arrives without the clock moving.
  Fixture f(1);
  REQUIRE(f.stream->RegisterStreamConsumer("leaderboard").ok());
  auto sub = f.Subscribe("leaderboard", StartingPosition::TrimHorizon());
  const std::string data(99, 'x');
  std::vector<PutRecordsEntry> batch(500);
  for (auto& e : batch) {
    e.partition_key = "k";
    e.data = data;
  }
  for (int i = 0; i < 200; ++i) {
    auto r = f.stream->PutRecords(batch);
    REQUIRE(r.ok());
    REQUIRE(r->failed_record_count == 0);
    f.clock->Advance(absl::Milliseconds(5));
  }
  const absl::Time end = f.clock->Now();
  size_t received = 0;
  for (;;) {
    auto e = sub->TryNext();
    REQUIRE(e.ok());
    if (!e->has_value() || (*e)->records.empty()) break;
    received += (*e)->records.size();
  }
  CHECK(received == 100000);
  CHECK(f.clock->Now() == end);
}

TEST_CASE("16 subscribers each see every record in order, a stalled one holds nobody up",
          "[fanout]") {
  Fixture f(4);
  std::vector<std::unique_ptr<Subscription>> subs;
  for (int c = 0; c < 16; ++c) {
    REQUIRE(f.stream->RegisterStreamConsumer("c" + std::to_string(c)).ok());
  }
  StreamOptions big;
  big.enhanced_fan_out.max_consumers = 20;
  for (int c = 0; c < 16; ++c) {
    for (uint32_t s = 0; s < 4; ++s) {
      auto sub = f.stream->SubscribeToShard("c" + std::to_string(c), ShardId(s),
                                            StartingPosition::TrimHorizon());
      REQUIRE(sub.ok());
      subs.push_back(std::move(*sub));
    }
  }
  std::vector<std::vector<std::string>> expected(4);
  for (int i = 0; i < 2000; ++i) {
    auto p = f.stream->PutRecord("key-" + std::to_string(i), std::to_string(i));
    REQUIRE(p.ok());
    expected[p->shard_id.index()].push_back(std::to_string(i));
  }
  // Consumer 0 never reads (stalled); all others read everything.
  for (size_t i = 4; i < subs.size(); ++i) {
    CHECK(Drain(*subs[i], nullptr) == expected[i % 4]);
  }
  // The stalled one still has everything waiting for it.
  CHECK(Drain(*subs[0], nullptr) == expected[0]);
}

}  // namespace
}  // namespace rill
