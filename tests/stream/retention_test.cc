// Retention through the public API, on a SimulatedClock: a record is readable while
// now - arrival <= retention and gone for good after that.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/time/time.h"
#include "log/shard_log.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/hash_key.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/stream/record.h"
#include "rill/stream/shard_iterator.h"
#include "rill/stream/stream.h"
#include "rill/stream/stream_options.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

// A record read back, owning its bytes.
struct Got {
  SequenceNumber sequence_number;
  absl::Time arrival;
  std::string key;
  std::string data;
};

struct Fixture {
  explicit Fixture(absl::Duration retention = absl::Hours(24), bool allow_short = false,
                   int shard_count = 1) {
    StreamOptions options;
    options.name = "retention";
    options.shard_count = shard_count;
    options.retention = retention;
    options.allow_short_retention = allow_short;
    options.clock = clock;
    absl::StatusOr<std::unique_ptr<Stream>> created = Stream::Create(options);
    REQUIRE(created.ok());
    stream = *std::move(created);
  }

  PutRecordResult Put(std::string_view key, std::string_view data) {
    absl::StatusOr<PutRecordResult> put = stream->PutRecord(key, data);
    REQUIRE(put.ok());
    return *put;
  }

  ShardIterator Iterator(const StartingPosition& position, ShardId shard = ShardId(0)) {
    absl::StatusOr<ShardIterator> it = stream->GetShardIterator(shard, position);
    REQUIRE(it.ok());
    return *it;
  }

  // Reads from `it` until a call returns no record, copying what it gets.
  std::vector<Got> ReadFrom(ShardIterator it) {
    std::vector<Got> out;
    for (;;) {
      absl::StatusOr<GetRecordsResult> batch = stream->GetRecords(it);
      REQUIRE(batch.ok());
      for (const Record& r : batch->records) {
        out.push_back({r.sequence_number, r.approximate_arrival_timestamp,
                       std::string(r.partition_key), std::string(r.data)});
      }
      REQUIRE(batch->next_shard_iterator.has_value());
      if (batch->records.empty()) break;
      it = *batch->next_shard_iterator;
    }
    return out;
  }

  std::vector<Got> Read(const StartingPosition& position, ShardId shard = ShardId(0)) {
    return ReadFrom(Iterator(position, shard));
  }

  // The data of the records readable from TRIM_HORIZON.
  std::vector<std::string> Retained(ShardId shard = ShardId(0)) {
    std::vector<std::string> data;
    for (const Got& g : Read(StartingPosition::TrimHorizon(), shard)) data.push_back(g.data);
    return data;
  }

  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream;
};

using Strings = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------
// The retention boundary

TEST_CASE("a record is readable until exactly the retention period has passed", "[retention]") {
  Fixture f(absl::Minutes(10), /*allow_short=*/true);
  const absl::Time t0 = f.clock->Now();
  f.Put("k", "r0");
  f.clock->Advance(absl::Minutes(4));
  f.Put("k", "r1");

  f.clock->Set(t0 + absl::Minutes(10) - absl::Microseconds(1));
  CHECK(f.Retained() == Strings{"r0", "r1"});
  f.clock->Set(t0 + absl::Minutes(10));  // now - arrival == retention: still readable
  CHECK(f.Retained() == Strings{"r0", "r1"});
  // An iterator taken at the boundary, read at the boundary.
  const ShardIterator at_boundary = f.Iterator(StartingPosition::TrimHorizon());
  {
    absl::StatusOr<GetRecordsResult> batch = f.stream->GetRecords(at_boundary);
    REQUIRE(batch.ok());
    REQUIRE(batch->records.size() == 2u);
    CHECK(batch->records[0].data == "r0");
  }
  f.clock->Advance(absl::Microseconds(1));  // one microsecond past: gone
  {
    // Read first through the iterator taken at the boundary (well within its 5 minutes).
    absl::StatusOr<GetRecordsResult> batch = f.stream->GetRecords(at_boundary);
    REQUIRE(batch.ok());
    REQUIRE(batch->records.size() == 1u);
    CHECK(batch->records[0].data == "r1");
  }
  CHECK(f.Retained() == Strings{"r1"});

  f.clock->Set(t0 + absl::Minutes(14));
  CHECK(f.Retained() == Strings{"r1"});
  f.clock->Advance(absl::Microseconds(1));
  CHECK(f.Retained().empty());
  // Gone for good, even if the clock is set back.
  f.clock->Set(t0);
  CHECK(f.Retained().empty());
}

TEST_CASE("with the default retention a record is readable for exactly 24 hours", "[retention]") {
  Fixture f;  // default options: 24 h, no short retention
  CHECK(f.stream->retention() == absl::Hours(24));
  CHECK(f.stream->options().retention == absl::Hours(24));
  const PutRecordResult first = f.Put("player-1", "first");
  f.clock->Advance(absl::Hours(1));
  f.Put("player-2", "second");

  f.clock->Advance(absl::Hours(23));  // first is exactly 24 h old
  std::vector<Got> got = f.Read(StartingPosition::TrimHorizon());
  REQUIRE(got.size() == 2u);
  CHECK(got[0].data == "first");
  CHECK(got[0].sequence_number == first.sequence_number);
  CHECK(got[1].data == "second");

  f.clock->Advance(absl::Microseconds(1));
  got = f.Read(StartingPosition::TrimHorizon());
  REQUIRE(got.size() == 1u);
  CHECK(got[0].data == "second");

  f.clock->Advance(absl::Hours(1) - absl::Microseconds(1));  // second is exactly 24 h old
  CHECK(f.Retained() == Strings{"second"});
  f.clock->Advance(absl::Microseconds(1));
  CHECK(f.Retained().empty());
}

TEST_CASE("the boundary holds on the write path too: a put does not expire a retained record",
          "[retention]") {
  Fixture f(absl::Seconds(30), /*allow_short=*/true);
  f.Put("k", "old");
  f.clock->Advance(absl::Seconds(30));
  f.Put("k", "new");  // the write path trims with the same cutoff
  CHECK(f.Retained() == Strings{"old", "new"});
  f.clock->Advance(absl::Microseconds(1));
  f.Put("k", "newer");
  CHECK(f.Retained() == Strings{"new", "newer"});
}

// ---------------------------------------------------------------------------------------------
// Iterators over expiring records

TEST_CASE("TRIM_HORIZON moves forward as records expire", "[retention]") {
  Fixture f(absl::Minutes(1), /*allow_short=*/true);
  const absl::Time t0 = f.clock->Now();
  // Record i arrives at t0 + 10 s * i.
  std::vector<PutRecordResult> puts;
  for (int i = 0; i < 10; ++i) {
    f.clock->Set(t0 + absl::Seconds(10 * i));
    puts.push_back(f.Put("k", "r" + std::to_string(i)));
  }
  // Step through the expiries in 5 s steps: each record expires 60 s after its arrival.
  for (int step = 0; step <= 36; ++step) {
    const absl::Time now = t0 + absl::Seconds(90) + absl::Seconds(5 * step);
    f.clock->Set(now);
    Strings expected;
    for (int i = 0; i < 10; ++i) {
      if (now - (t0 + absl::Seconds(10 * i)) <= absl::Minutes(1)) {
        expected.push_back("r" + std::to_string(i));
      }
    }
    INFO("now = t0 + " << absl::FormatDuration(now - t0));
    const std::vector<Got> got = f.Read(StartingPosition::TrimHorizon());
    Strings data;
    for (const Got& g : got) data.push_back(g.data);
    CHECK(data == expected);
    // What is still there is unchanged: same sequence numbers, same arrival times.
    for (const Got& g : got) {
      const int i = std::stoi(g.data.substr(1));
      CHECK(g.sequence_number == puts[static_cast<size_t>(i)].sequence_number);
      CHECK(g.arrival == t0 + absl::Seconds(10 * i));
    }
  }
  // Once everything has expired, TRIM_HORIZON is where LATEST is, and a new record is seen from
  // both.
  const ShardIterator horizon = f.Iterator(StartingPosition::TrimHorizon());
  const ShardIterator latest = f.Iterator(StartingPosition::Latest());
  CHECK(horizon == latest);
  f.Put("k", "fresh");
  CHECK(f.ReadFrom(horizon).size() == 1u);
  const std::vector<Got> from_latest = f.ReadFrom(latest);
  REQUIRE(from_latest.size() == 1u);
  CHECK(from_latest[0].data == "fresh");
}

TEST_CASE("an old iterator pointing at expired records starts at the oldest retained record",
          "[retention]") {
  Fixture f(absl::Minutes(1), /*allow_short=*/true);
  const absl::Time t0 = f.clock->Now();
  f.Put("k", "r0");  // t0
  f.clock->Advance(absl::Seconds(20));
  f.Put("k", "r1");  // t0 + 20 s
  f.clock->Advance(absl::Seconds(20));
  f.Put("k", "r2");  // t0 + 40 s
  f.clock->Advance(absl::Seconds(20));
  f.Put("k", "r3");  // t0 + 60 s

  // Both taken at t0 + 60 s, when everything is retained.
  const ShardIterator horizon = f.Iterator(StartingPosition::TrimHorizon());
  ShardIterator after_r0;  // the next_shard_iterator of a read of r0: points at r1
  {
    absl::StatusOr<GetRecordsResult> first = f.stream->GetRecords(horizon, 1);
    REQUIRE(first.ok());
    REQUIRE(first->records.size() == 1u);
    CHECK(first->records[0].data == "r0");
    REQUIRE(first->next_shard_iterator.has_value());
    after_r0 = *first->next_shard_iterator;
  }

  SECTION("one record expired") {
    f.clock->Set(t0 + absl::Seconds(70));  // r0 is 70 s old; the iterators are 10 s old
    std::vector<Got> got = f.ReadFrom(horizon);
    REQUIRE(got.size() == 3u);
    CHECK(got[0].data == "r1");
    CHECK(got[1].data == "r2");
    CHECK(got[2].data == "r3");
    got = f.ReadFrom(after_r0);
    REQUIRE(got.size() == 3u);
    CHECK(got[0].data == "r1");
  }
  SECTION("the record a next_shard_iterator points at expired") {
    f.clock->Set(t0 + absl::Seconds(100) + absl::Microseconds(1));  // r0, r1 and r2 are gone
    std::vector<Got> got = f.ReadFrom(horizon);
    REQUIRE(got.size() == 1u);
    CHECK(got[0].data == "r3");
    got = f.ReadFrom(after_r0);
    REQUIRE(got.size() == 1u);
    CHECK(got[0].data == "r3");
    // The next iterator of such a read continues after r3, not at the expired position.
    absl::StatusOr<GetRecordsResult> batch = f.stream->GetRecords(after_r0);
    REQUIRE(batch.ok());
    REQUIRE(batch->next_shard_iterator.has_value());
    f.Put("k", "r4");
    got = f.ReadFrom(*batch->next_shard_iterator);
    REQUIRE(got.size() == 1u);
    CHECK(got[0].data == "r4");
  }
  SECTION("everything expired") {
    f.clock->Set(t0 + absl::Seconds(121));
    CHECK(f.ReadFrom(horizon).empty());
    CHECK(f.ReadFrom(after_r0).empty());
    f.Put("k", "r4");
    const std::vector<Got> got = f.ReadFrom(horizon);
    REQUIRE(got.size() == 1u);
    CHECK(got[0].data == "r4");
  }
}

TEST_CASE("AT_TIMESTAMP before the trim horizon behaves as TRIM_HORIZON", "[retention]") {
  Fixture f(absl::Minutes(1), /*allow_short=*/true);
  const absl::Time t0 = f.clock->Now();
  for (int i = 0; i < 6; ++i) {
    f.clock->Set(t0 + absl::Seconds(10 * i));
    f.Put("k", "r" + std::to_string(i));
  }
  f.clock->Set(t0 + absl::Seconds(85));  // r0, r1 and r2 expired; r3 (30 s) is the horizon
  const ShardIterator horizon = f.Iterator(StartingPosition::TrimHorizon());
  for (const absl::Time ts : {absl::UnixEpoch(), t0 - absl::Hours(1), t0, t0 + absl::Seconds(10),
                              t0 + absl::Seconds(25), t0 + absl::Seconds(30)}) {
    INFO("timestamp t0 + " << absl::FormatDuration(ts - t0));
    const ShardIterator it = f.Iterator(StartingPosition::AtTimestamp(ts));
    CHECK(it == horizon);
    const std::vector<Got> got = f.ReadFrom(it);
    REQUIRE(got.size() == 3u);
    CHECK(got[0].data == "r3");
    CHECK(got[0].arrival == t0 + absl::Seconds(30));
  }
  // Inside retention AT_TIMESTAMP is exact.
  std::vector<Got> got =
      f.Read(StartingPosition::AtTimestamp(t0 + absl::Seconds(30) + absl::Microseconds(1)));
  REQUIRE(got.size() == 2u);
  CHECK(got[0].data == "r4");
  got = f.Read(StartingPosition::AtTimestamp(t0 + absl::Seconds(50)));
  REQUIRE(got.size() == 1u);
  CHECK(got[0].data == "r5");
  CHECK(f.Read(StartingPosition::AtTimestamp(t0 + absl::Seconds(85))).empty());
}

TEST_CASE("AT_SEQUENCE_NUMBER of an expired record starts at the trim horizon", "[retention]") {
  Fixture f(absl::Minutes(1), /*allow_short=*/true);
  const absl::Time t0 = f.clock->Now();
  std::vector<SequenceNumber> seq;
  for (int i = 0; i < 5; ++i) {
    f.clock->Set(t0 + absl::Seconds(10 * i));
    seq.push_back(f.Put("k", "r" + std::to_string(i)).sequence_number);
  }
  f.clock->Set(t0 + absl::Seconds(80));  // r0 and r1 expired; r2 is the horizon
  const ShardIterator horizon = f.Iterator(StartingPosition::TrimHorizon());
  for (const int i : {0, 1}) {
    INFO("record r" << i);
    const ShardIterator at =
        f.Iterator(StartingPosition::AtSequenceNumber(seq[static_cast<size_t>(i)]));
    CHECK(at == horizon);
    const std::vector<Got> got = f.ReadFrom(at);
    REQUIRE(got.size() == 3u);
    CHECK(got[0].data == "r2");
    CHECK(got[0].sequence_number == seq[2]);
  }
  // AFTER_SEQUENCE_NUMBER of an expired record: also the horizon.
  std::vector<Got> got = f.Read(StartingPosition::AfterSequenceNumber(seq[0]));
  REQUIRE(got.size() == 3u);
  CHECK(got[0].data == "r2");
  // AFTER the last expired record: the horizon, the record right after it.
  got = f.Read(StartingPosition::AfterSequenceNumber(seq[1]));
  REQUIRE(got.size() == 3u);
  CHECK(got[0].data == "r2");
  // Retained records are found exactly.
  got = f.Read(StartingPosition::AtSequenceNumber(seq[3]));
  REQUIRE(got.size() == 2u);
  CHECK(got[0].data == "r3");
  got = f.Read(StartingPosition::AfterSequenceNumber(seq[3]));
  REQUIRE(got.size() == 1u);
  CHECK(got[0].data == "r4");
  // Once all have expired, every one of them starts at the (empty) horizon.
  f.clock->Set(t0 + absl::Seconds(101));
  for (const SequenceNumber& s : seq) {
    CHECK(f.Read(StartingPosition::AtSequenceNumber(s)).empty());
  }
}

// ---------------------------------------------------------------------------------------------
// Changing the retention period

TEST_CASE("IncreaseStreamRetentionPeriod never revives records past the old period",
          "[retention]") {
  Fixture f;  // 24 h
  const absl::Time t0 = f.clock->Now();
  f.Put("k", "r0");  // t0
  f.clock->Advance(absl::Hours(12));
  f.Put("k", "r1");                   // t0 + 12 h
  f.clock->Advance(absl::Hours(13));  // t0 + 25 h: r0 is past 24 h, r1 is 13 h old

  SECTION("with no read since the record expired") {}
  SECTION("after a read trimmed it") { CHECK(f.Retained() == Strings{"r1"}); }

  REQUIRE(f.stream->IncreaseStreamRetentionPeriod(absl::Hours(48)).ok());
  CHECK(f.stream->retention() == absl::Hours(48));
  CHECK(f.Retained() == Strings{"r1"});
  CHECK(f.Read(StartingPosition::AtTimestamp(t0)).size() == 1u);

  // r1 now lives by the new period: readable at 47 h and at exactly 48 h, gone after.
  f.clock->Set(t0 + absl::Hours(12) + absl::Hours(30));
  CHECK(f.Retained() == Strings{"r1"});
  f.clock->Set(t0 + absl::Hours(12) + absl::Hours(48));
  CHECK(f.Retained() == Strings{"r1"});
  f.clock->Advance(absl::Microseconds(1));
  CHECK(f.Retained().empty());
}

TEST_CASE("IncreaseStreamRetentionPeriod keeps records expired by exactly one microsecond out",
          "[retention]") {
  Fixture f(absl::Minutes(1), /*allow_short=*/true);
  const absl::Time t0 = f.clock->Now();
  f.Put("k", "r0");
  f.clock->Advance(absl::Microseconds(1));
  f.Put("k", "r1");
  f.clock->Set(t0 + absl::Minutes(1) + absl::Microseconds(1));  // r0 just expired, r1 at the edge
  REQUIRE(f.stream->IncreaseStreamRetentionPeriod(absl::Hours(1)).ok());
  CHECK(f.Retained() == Strings{"r1"});
  f.clock->Advance(absl::Minutes(30));
  CHECK(f.Retained() == Strings{"r1"});
}

TEST_CASE("DecreaseStreamRetentionPeriod hides records older than the new period at once",
          "[retention]") {
  Fixture f(absl::Hours(48));
  const absl::Time t0 = f.clock->Now();
  f.Put("k", "r0");  // t0
  f.clock->Advance(absl::Hours(6));
  f.Put("k", "r1");  // t0 + 6 h
  f.clock->Advance(absl::Hours(20));
  f.Put("k", "r2");                  // t0 + 26 h
  f.clock->Advance(absl::Hours(4));  // t0 + 30 h: ages 30 h, 24 h, 4 h
  const ShardIterator before = f.Iterator(StartingPosition::TrimHorizon());
  CHECK(f.Retained() == Strings{"r0", "r1", "r2"});

  REQUIRE(f.stream->DecreaseStreamRetentionPeriod(absl::Hours(24)).ok());
  CHECK(f.stream->retention() == absl::Hours(24));
  // r1 is exactly 24 h old: still readable; r0 is gone, also through an iterator taken before.
  CHECK(f.Retained() == Strings{"r1", "r2"});
  std::vector<Got> got = f.ReadFrom(before);
  REQUIRE(got.size() == 2u);
  CHECK(got[0].data == "r1");
  CHECK(got[0].arrival == t0 + absl::Hours(6));
  f.clock->Advance(absl::Microseconds(1));
  CHECK(f.Retained() == Strings{"r2"});

  // Raising it again revives nothing.
  REQUIRE(f.stream->IncreaseStreamRetentionPeriod(absl::Hours(48)).ok());
  CHECK(f.Retained() == Strings{"r2"});
  got = f.ReadFrom(before);
  REQUIRE(got.size() == 1u);
  CHECK(got[0].data == "r2");
}

TEST_CASE("a decrease takes effect even with no read in between", "[retention]") {
  Fixture f(absl::Hours(10), /*allow_short=*/true);
  f.Put("k", "r0");
  f.clock->Advance(absl::Hours(2));
  f.Put("k", "r1");
  f.clock->Advance(absl::Hours(2));  // ages 4 h and 2 h
  REQUIRE(f.stream->DecreaseStreamRetentionPeriod(absl::Hours(3)).ok());
  REQUIRE(f.stream->IncreaseStreamRetentionPeriod(absl::Hours(10)).ok());
  CHECK(f.Retained() == Strings{"r1"});
}

TEST_CASE("retention changes follow Kinesis' bounds", "[retention]") {
  auto code = [](const absl::Status& s) { return GetErrorCode(s); };

  SECTION("within [24 h, 8760 h]") {
    Fixture f;  // 24 h
    Stream& s = *f.stream;
    CHECK(code(s.IncreaseStreamRetentionPeriod(absl::Hours(23))) == ErrorCode::kInvalidArgument);
    CHECK(code(s.DecreaseStreamRetentionPeriod(absl::Hours(24) - absl::Microseconds(1))) ==
          ErrorCode::kInvalidArgument);
    CHECK(code(s.DecreaseStreamRetentionPeriod(absl::Hours(1))) == ErrorCode::kInvalidArgument);
    CHECK(code(s.IncreaseStreamRetentionPeriod(absl::Hours(8760) + absl::Microseconds(1))) ==
          ErrorCode::kInvalidArgument);
    CHECK(code(s.IncreaseStreamRetentionPeriod(absl::Hours(10000))) == ErrorCode::kInvalidArgument);
    CHECK(code(s.IncreaseStreamRetentionPeriod(absl::InfiniteDuration())) ==
          ErrorCode::kInvalidArgument);
    CHECK(code(s.IncreaseStreamRetentionPeriod(absl::ZeroDuration())) ==
          ErrorCode::kInvalidArgument);
    CHECK(code(s.IncreaseStreamRetentionPeriod(-absl::Hours(48))) == ErrorCode::kInvalidArgument);
    CHECK(s.retention() == absl::Hours(24));

    // Equal to the current period is allowed both ways.
    CHECK(s.IncreaseStreamRetentionPeriod(absl::Hours(24)).ok());
    CHECK(s.DecreaseStreamRetentionPeriod(absl::Hours(24)).ok());
    CHECK(s.retention() == absl::Hours(24));

    // Increase requires new >= current, decrease new <= current.
    CHECK(code(s.DecreaseStreamRetentionPeriod(absl::Hours(48))) == ErrorCode::kInvalidArgument);
    CHECK(s.retention() == absl::Hours(24));
    CHECK(s.IncreaseStreamRetentionPeriod(absl::Hours(8760)).ok());
    CHECK(s.retention() == absl::Hours(8760));
    CHECK(code(s.IncreaseStreamRetentionPeriod(absl::Hours(100))) == ErrorCode::kInvalidArgument);
    CHECK(code(s.IncreaseStreamRetentionPeriod(absl::Hours(8760) - absl::Microseconds(1))) ==
          ErrorCode::kInvalidArgument);
    CHECK(s.retention() == absl::Hours(8760));
    CHECK(s.DecreaseStreamRetentionPeriod(absl::Hours(100)).ok());
    CHECK(s.retention() == absl::Hours(100));
    CHECK(code(s.DecreaseStreamRetentionPeriod(absl::Hours(101))) == ErrorCode::kInvalidArgument);
    CHECK(code(s.DecreaseStreamRetentionPeriod(absl::Hours(23))) == ErrorCode::kInvalidArgument);
    CHECK(s.DecreaseStreamRetentionPeriod(absl::Hours(24)).ok());
    CHECK(s.retention() == absl::Hours(24));
  }
  SECTION("with allow_short_retention, from 1 ms") {
    Fixture f(absl::Hours(24), /*allow_short=*/true);
    Stream& s = *f.stream;
    CHECK(s.DecreaseStreamRetentionPeriod(absl::Minutes(5)).ok());
    CHECK(s.retention() == absl::Minutes(5));
    CHECK(s.DecreaseStreamRetentionPeriod(absl::Milliseconds(1)).ok());
    CHECK(s.retention() == absl::Milliseconds(1));
    CHECK(code(s.DecreaseStreamRetentionPeriod(absl::Microseconds(999))) ==
          ErrorCode::kInvalidArgument);
    CHECK(code(s.DecreaseStreamRetentionPeriod(absl::ZeroDuration())) ==
          ErrorCode::kInvalidArgument);
    CHECK(code(s.DecreaseStreamRetentionPeriod(-absl::Seconds(1))) == ErrorCode::kInvalidArgument);
    CHECK(s.retention() == absl::Milliseconds(1));
    CHECK(code(s.IncreaseStreamRetentionPeriod(absl::Hours(8761))) == ErrorCode::kInvalidArgument);
    CHECK(s.IncreaseStreamRetentionPeriod(absl::Hours(8760)).ok());
    CHECK(s.retention() == absl::Hours(8760));
  }
}

TEST_CASE("Create rejects a retention outside the bounds", "[retention]") {
  auto create = [](absl::Duration retention, bool allow_short) {
    StreamOptions options;
    options.name = "bounds";
    options.retention = retention;
    options.allow_short_retention = allow_short;
    options.clock = std::make_shared<SimulatedClock>();
    return Stream::Create(options);
  };
  for (const absl::Duration bad :
       {absl::Hours(24) - absl::Microseconds(1), absl::Hours(1), absl::Milliseconds(1),
        absl::ZeroDuration(), -absl::Hours(24), absl::Hours(8760) + absl::Microseconds(1),
        absl::Hours(8761), absl::InfiniteDuration()}) {
    INFO("retention " << absl::FormatDuration(bad));
    const auto created = create(bad, false);
    CHECK(GetErrorCode(created.status()) == ErrorCode::kInvalidArgument);
  }
  for (const absl::Duration bad : {absl::Microseconds(999), absl::ZeroDuration(), -absl::Seconds(1),
                                   absl::Hours(8761), absl::InfiniteDuration()}) {
    INFO("short retention " << absl::FormatDuration(bad));
    const auto created = create(bad, true);
    CHECK(GetErrorCode(created.status()) == ErrorCode::kInvalidArgument);
  }
  for (const absl::Duration good : {absl::Hours(24), absl::Hours(100), absl::Hours(8760)}) {
    const auto created = create(good, false);
    REQUIRE(created.ok());
    CHECK((*created)->retention() == good);
  }
  for (const absl::Duration good : {absl::Milliseconds(1), absl::Minutes(1), absl::Hours(8760)}) {
    const auto created = create(good, true);
    REQUIRE(created.ok());
    CHECK((*created)->retention() == good);
  }
}

// ---------------------------------------------------------------------------------------------
// Memory

TEST_CASE("expired records' memory is reclaimed", "[retention][memory]") {
  constexpr size_t kRecordBytes = 100 << 10;
  constexpr int kRecords = 500;  // 50 MB
  std::string payload(kRecordBytes, 'x');

  SECTION("one shard, reclaimed by the next put") {
    Fixture f(absl::Minutes(10), /*allow_short=*/true);
    for (int i = 0; i < kRecords; ++i) {
      payload[0] = static_cast<char>(i);
      f.Put("k", payload);
    }
    const size_t full = f.stream->MemoryBytes();
    CHECK(full >= size_t{kRecords} * kRecordBytes);
    f.clock->Advance(absl::Minutes(10) + absl::Microseconds(1));
    f.Put("k", "one more");
    const size_t after = f.stream->MemoryBytes();
    INFO("before " << full << " bytes, after " << after << " bytes");
    // What is left is at most the chunk the writer is filling.
    CHECK(after <= (size_t{2} << 20) + 4096);
    CHECK(after < full / 20);
    CHECK(f.Retained() == Strings{"one more"});
  }
  SECTION("four shards, reclaimed by reading") {
    Fixture f(absl::Minutes(10), /*allow_short=*/true, /*shard_count=*/4);
    for (int i = 0; i < kRecords; ++i) {
      payload[0] = static_cast<char>(i);
      f.Put("key-" + std::to_string(i), payload);
    }
    const size_t full = f.stream->MemoryBytes();
    CHECK(full >= size_t{kRecords} * kRecordBytes);
    f.clock->Advance(absl::Minutes(10) + absl::Microseconds(1));
    for (int shard = 0; shard < 4; ++shard) {
      CHECK(f.Retained(ShardId(static_cast<uint32_t>(shard))).empty());
    }
    const size_t after = f.stream->MemoryBytes();
    INFO("before " << full << " bytes, after " << after << " bytes");
    CHECK(after <= 4 * ((size_t{2} << 20) + 4096));
    CHECK(after < full / 5);
  }
}

TEST_CASE("only expired records' memory is reclaimed, the rest stays readable",
          "[retention][memory]") {
  constexpr size_t kRecordBytes = 100 << 10;
  constexpr int kPerBatch = 200;  // 20 MB per batch
  Fixture f(absl::Minutes(10), /*allow_short=*/true);
  auto payload = [](int batch, int i) {
    std::string s(kRecordBytes, static_cast<char>('a' + batch));
    const std::string tag = std::to_string(batch) + "/" + std::to_string(i);
    s.replace(0, tag.size(), tag);
    return s;
  };
  for (int i = 0; i < kPerBatch; ++i) f.Put("k", payload(0, i));
  f.clock->Advance(absl::Minutes(5));
  for (int i = 0; i < kPerBatch; ++i) f.Put("k", payload(1, i));
  const size_t full = f.stream->MemoryBytes();
  f.clock->Advance(absl::Minutes(5) + absl::Microseconds(1));  // batch 0 expired, batch 1 not

  std::vector<Got> got = f.Read(StartingPosition::TrimHorizon());
  const size_t after = f.stream->MemoryBytes();
  INFO("before " << full << " bytes, after " << after << " bytes");
  REQUIRE(got.size() == size_t{kPerBatch});
  bool exact = true;
  for (int i = 0; i < kPerBatch; ++i)
    exact = exact && got[static_cast<size_t>(i)].data == payload(1, i);
  CHECK(exact);
  got.clear();
  // Batch 1 is still held; batch 0 is gone but for the chunk it shares with batch 1.
  CHECK(after >= size_t{kPerBatch} * kRecordBytes);
  CHECK(after <= size_t{kPerBatch} * kRecordBytes + 3 * ((size_t{2} << 20) + 4096));
  CHECK(after < full * 2 / 3);
}

// ---------------------------------------------------------------------------------------------
// The memory limit (StreamOptions::memory_limit)

// Bytes MemoryBytes() counts for a chunk of `capacity` bytes.
constexpr size_t ChunkBytes(size_t capacity) { return capacity + sizeof(internal::Chunk); }

struct MemoryFixture : Fixture {
  MemoryFixture(MemoryLimitPolicy policy, size_t budget, int shard_count,
                absl::Duration retention = absl::Minutes(10)) {
    StreamOptions options;
    options.name = "memory";
    options.shard_count = shard_count;
    options.retention = retention;
    options.allow_short_retention = true;
    options.clock = clock;
    options.memory_limit = MemoryLimit{.budget_bytes = budget, .policy = policy};
    absl::StatusOr<std::unique_ptr<Stream>> created = Stream::Create(options);
    REQUIRE(created.ok());
    stream = *std::move(created);
  }
};

const char kMemoryRefusal[] =
    "Rate exceeded for stream memory: its memory budget of 16384 bytes "
    "(StreamOptions::memory_limit) is used up; retry once retention frees memory";

TEST_CASE("kRejectPuts refuses puts at the budget and writes nothing", "[retention][memory]") {
  // 16 KiB over one shard: chunks of at most 16 KiB / 4 = 4 KiB. A record of 1 + 500 bytes takes
  // 515 bytes with its header, so 7 fill a chunk (and its 4-byte index entry). Chunks 1-3 leave
  // the stream under the budget; the record that starts chunk 4 is still accepted (the stream
  // held 3 chunks when it checked); from then on the stream holds 4 chunks, past the budget.
  MemoryFixture f(MemoryLimitPolicy::kRejectPuts, 16 << 10, 1);
  const std::string data(500, 'd');
  std::vector<PutRecordResult> accepted;
  absl::Status refused;
  for (int i = 0; i < 100 && refused.ok(); ++i) {
    absl::StatusOr<PutRecordResult> put = f.stream->PutRecord("k", data);
    if (put.ok()) {
      accepted.push_back(*put);
    } else {
      refused = put.status();
    }
  }
  CHECK(accepted.size() == 22u);
  CHECK(GetErrorCode(refused) == ErrorCode::kProvisionedThroughputExceeded);
  CHECK(refused.message() == kMemoryRefusal);
  CHECK(f.stream->MemoryBytes() == 4 * ChunkBytes(4 << 10));
  // Every later put is refused the same way, and writes nothing.
  const absl::StatusOr<PutRecordResult> again = f.stream->PutRecord("k", "small");
  CHECK(GetErrorCode(again.status()) == ErrorCode::kProvisionedThroughputExceeded);
  CHECK(again.status().message() == kMemoryRefusal);
  std::vector<PutRecordsEntry> entries(10, PutRecordsEntry{"k", "entry", {}});
  absl::StatusOr<PutRecordsResult> batch = f.stream->PutRecords(entries);
  REQUIRE(batch.ok());
  CHECK(batch->failed_record_count == 10);
  for (const PutRecordsResultEntry& e : batch->entries) {
    CHECK(e.error_code == ErrorCode::kProvisionedThroughputExceeded);
    CHECK(e.error_message == kMemoryRefusal);
  }
  CHECK(f.stream->MemoryBytes() == 4 * ChunkBytes(4 << 10));
  const std::vector<Got> got = f.Read(StartingPosition::TrimHorizon());
  REQUIRE(got.size() == accepted.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].sequence_number == accepted[i].sequence_number);
    CHECK(got[i].data == data);
  }
  const MetricsSnapshot m = f.stream->metrics();
  CHECK(m.incoming_records == 22);
  CHECK(m.put_record_failure == 2);
  CHECK(m.put_records_throttled_records == 10);
  CHECK(m.put_records_failed_records == 0);
  CHECK(m.memory_budget_exceeded == 12);
  CHECK(m.memory_bytes == static_cast<int64_t>(4 * ChunkBytes(4 << 10)));
  CHECK(m.write_provisioned_throughput_exceeded == 0);  // the shard's limits refused nothing
  CHECK(f.stream->DescribeStreamSummary().retired_records == 0);
}

TEST_CASE("kRejectPuts fails exactly the PutRecords entries past the budget",
          "[retention][memory]") {
  MemoryFixture f(MemoryLimitPolicy::kRejectPuts, 16 << 10, 1);
  const std::string data(500, 'd');
  std::vector<PutRecordsEntry> entries;
  for (int i = 0; i < 30; ++i) entries.push_back({"k", data + std::to_string(i % 10), {}});
  absl::StatusOr<PutRecordsResult> batch = f.stream->PutRecords(entries);
  REQUIRE(batch.ok());
  // As with PutRecord: 22 records fit (the 22nd starts the fourth chunk), the other 8 fail.
  CHECK(batch->failed_record_count == 8);
  for (size_t i = 0; i < entries.size(); ++i) {
    INFO("entry " << i);
    CHECK(batch->entries[i].ok() == (i < 22));
    if (i >= 22) CHECK(batch->entries[i].error_message == kMemoryRefusal);
  }
  const std::vector<Got> got = f.Read(StartingPosition::TrimHorizon());
  REQUIRE(got.size() == 22u);
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].sequence_number == batch->entries[i].sequence_number);
    CHECK(got[i].data == entries[i].data);
  }
  CHECK(f.stream->metrics().put_records_throttled_records == 8);
  CHECK(f.stream->metrics().memory_budget_exceeded == 8);
}

TEST_CASE("kRejectPuts accepts puts again once retention frees memory", "[retention][memory]") {
  MemoryFixture f(MemoryLimitPolicy::kRejectPuts, 16 << 10, 1, absl::Minutes(10));
  const std::string data(500, 'd');
  int accepted = 0;
  while (f.stream->PutRecord("k", data).ok()) ++accepted;
  REQUIRE(accepted == 22);
  f.clock->Advance(absl::Minutes(10));
  CHECK_FALSE(f.stream->PutRecord("k", data).ok());  // nothing has expired yet
  CHECK(f.stream->metrics().memory_budget_exceeded == 2);
  f.clock->Advance(absl::Microseconds(1));  // now every record has
  // Once the sealed chunks are trimmed, the one the writer fills (with one expired record and
  // room for six more) is all the stream holds.
  std::vector<std::string> after;
  for (int i = 0; i < 6; ++i) after.push_back("again-" + std::to_string(i));
  SECTION("a refused PutRecord applies retention to every shard, then puts") {
    for (const std::string& d : after) REQUIRE(f.stream->PutRecord("k", d).ok());
  }
  SECTION("a refused PutRecords applies retention to every shard, then puts") {
    std::vector<PutRecordsEntry> entries;
    for (const std::string& d : after) entries.push_back({"k", d, {}});
    absl::StatusOr<PutRecordsResult> batch = f.stream->PutRecords(entries);
    REQUIRE(batch.ok());
    CHECK(batch->failed_record_count == 0);
  }
  SECTION("Tick() applies retention") {
    f.stream->Tick();
    CHECK(f.stream->MemoryBytes() == ChunkBytes(4 << 10));
    for (const std::string& d : after) REQUIRE(f.stream->PutRecord("k", d).ok());
  }
  CHECK(f.stream->MemoryBytes() == ChunkBytes(4 << 10));
  CHECK(f.Retained() == after);
  CHECK(f.stream->metrics().memory_budget_exceeded == 2);
}

TEST_CASE("kRejectPuts also accepts puts again when a read trims the shard",
          "[retention][memory]") {
  MemoryFixture f(MemoryLimitPolicy::kRejectPuts, 16 << 10, 1, absl::Minutes(10));
  const std::string data(500, 'd');
  while (f.stream->PutRecord("k", data).ok()) {
  }
  f.clock->Advance(absl::Minutes(10) + absl::Microseconds(1));
  CHECK(f.Retained().empty());  // the read applies retention, which frees the sealed chunks
  CHECK(f.stream->MemoryBytes() == ChunkBytes(4 << 10));
  CHECK(f.stream->PutRecord("k", "back").ok());
  CHECK(f.Retained() == Strings{"back"});
}

// A record put by the retirement tests, as they expect to find it.
struct Sent {
  PutRecordResult put;
  absl::Time arrival;
  std::string key;
  std::string data;
};

// Reads every shard of `f` from TRIM_HORIZON; checks that each shard holds exactly the suffix of
// what was sent to it, in order, and returns which records of `sent` are still there.
std::vector<bool> CheckSuffixes(Fixture& f, int shard_count, const std::vector<Sent>& sent) {
  std::vector<bool> present(sent.size(), false);
  for (int shard = 0; shard < shard_count; ++shard) {
    const ShardId id(static_cast<uint32_t>(shard));
    std::vector<size_t> mine;  // indices into `sent` of this shard's records, in put order
    for (size_t i = 0; i < sent.size(); ++i) {
      if (sent[i].put.shard_id == id) mine.push_back(i);
    }
    const std::vector<Got> got = f.Read(StartingPosition::TrimHorizon(), id);
    REQUIRE(got.size() <= mine.size());
    const size_t gone = mine.size() - got.size();
    bool exact = true;
    for (size_t j = 0; j < got.size(); ++j) {
      const Sent& s = sent[mine[gone + j]];
      exact = exact && got[j].sequence_number == s.put.sequence_number &&
              got[j].arrival == s.arrival && got[j].key == s.key && got[j].data == s.data;
      present[mine[gone + j]] = true;
    }
    INFO("shard " << shard);
    CHECK(exact);
  }
  return present;
}

TEST_CASE("kRetireOldest keeps memory within the budget by retiring the stream's oldest records",
          "[retention][memory]") {
  // 256 KiB over 4 shards: chunks of at most 256 KiB / 16 = 16 KiB, so the chunks writers fill
  // take at most 4 x 16 KiB and the rest of the budget holds sealed chunks, which retire.
  constexpr size_t kBudget = 256 << 10;
  constexpr int kShards = 4;
  constexpr int kRecords = 4000;  // about 880 KB of records: 3.4 times the budget
  MemoryFixture f(MemoryLimitPolicy::kRetireOldest, kBudget, kShards, absl::Hours(24));
  const absl::Time t0 = f.clock->Now();
  // Taken before anything is retired; still valid (well within 5 minutes) when read below.
  const ShardIterator early = f.Iterator(StartingPosition::TrimHorizon());
  std::vector<Sent> sent;
  size_t peak = 0;
  bool distinct_arrivals = true;
  auto send = [&](int i) {
    Sent s;
    s.key = "player-" + std::to_string(i);
    s.data = std::string(200, static_cast<char>('a' + i % 26)) + std::to_string(i);
    s.arrival = f.clock->Now();
    return s;
  };
  SECTION("by PutRecord") {
    for (int i = 0; i < kRecords; ++i) {
      f.clock->Advance(absl::Microseconds(1));  // every record arrives at its own time
      Sent s = send(i);
      s.put = f.Put(s.key, s.data);
      sent.push_back(s);
      // The exact bound: between calls, MemoryBytes() <= the budget (the chunks being filled,
      // at most 4 x 16 KiB, are far below it).
      peak = std::max(peak, f.stream->MemoryBytes());
    }
  }
  SECTION("by PutRecords") {
    distinct_arrivals = false;  // a call's records share its arrival time
    for (int i = 0; i < kRecords; i += 100) {
      f.clock->Advance(absl::Microseconds(1));  // one arrival time per call
      std::vector<PutRecordsEntry> entries;
      for (int j = i; j < i + 100; ++j) {
        sent.push_back(send(j));
        entries.push_back({sent.back().key, sent.back().data, {}});
      }
      absl::StatusOr<PutRecordsResult> batch = f.stream->PutRecords(entries);
      REQUIRE(batch.ok());
      REQUIRE(batch->failed_record_count == 0);
      for (int j = 0; j < 100; ++j) {
        sent[static_cast<size_t>(i + j)].put =
            PutRecordResult{batch->entries[static_cast<size_t>(j)].shard_id,
                            batch->entries[static_cast<size_t>(j)].sequence_number};
      }
      peak = std::max(peak, f.stream->MemoryBytes());
    }
  }
  INFO("peak " << peak << " bytes");
  CHECK(peak <= kBudget);
  CHECK(peak > kBudget - 2 * ChunkBytes(16 << 10));  // the budget is used, not just respected

  // Every shard keeps the suffix of what it was sent, in order, with exact contents...
  const std::vector<bool> present = CheckSuffixes(f, kShards, sent);
  // ...and what is gone is exactly the stream's oldest records: everything that arrived before
  // some time, in every shard, and nothing after it (records of one PutRecords call share a
  // time, and may fall on either side of it).
  absl::Time newest_gone = absl::InfinitePast();
  absl::Time oldest_kept = absl::InfiniteFuture();
  int64_t gone_records = 0;
  int64_t gone_bytes = 0;
  for (size_t i = 0; i < sent.size(); ++i) {
    if (present[i]) {
      oldest_kept = std::min(oldest_kept, sent[i].arrival);
    } else {
      newest_gone = std::max(newest_gone, sent[i].arrival);
      ++gone_records;
      gone_bytes += static_cast<int64_t>(sent[i].key.size() + sent[i].data.size());
    }
  }
  INFO("newest gone t0 + " << absl::FormatDuration(newest_gone - t0) << ", oldest kept t0 + "
                           << absl::FormatDuration(oldest_kept - t0));
  if (distinct_arrivals) {
    CHECK(newest_gone < oldest_kept);
  } else {
    CHECK(newest_gone <= oldest_kept);
  }
  CHECK(gone_records > kRecords / 2);
  CHECK(gone_records < kRecords);
  // Counted exactly, in the summary and the metrics.
  const StreamSummary summary = f.stream->DescribeStreamSummary();
  CHECK(summary.retired_records == gone_records);
  CHECK(summary.retired_bytes == gone_bytes);
  const MetricsSnapshot m = f.stream->metrics();
  CHECK(m.retired_records == gone_records);
  CHECK(m.retired_bytes == gone_bytes);
  CHECK(m.incoming_records == kRecords);
  CHECK(m.memory_budget_exceeded == 0);
  CHECK(m.memory_bytes == static_cast<int64_t>(f.stream->MemoryBytes()));
  // An iterator below the retired records continues at the first remaining one, as for
  // retention.
  absl::StatusOr<GetRecordsResult> from_early = f.stream->GetRecords(early, 1);
  REQUIRE(from_early.ok());
  REQUIRE(from_early->records.size() == 1u);
  for (size_t i = 0; i < sent.size(); ++i) {
    if (present[i] && sent[i].put.shard_id == ShardId(0)) {
      CHECK(from_early->records[0].sequence_number == sent[i].put.sequence_number);
      break;
    }
  }
  // Retired records are gone for good: retention counts from now on, nothing comes back.
  f.clock->Advance(absl::Hours(1));
  CHECK(CheckSuffixes(f, kShards, sent) == present);
  CHECK(f.stream->DescribeStreamSummary().retired_records == gone_records);
}

TEST_CASE("kRetireOldest does not count records that retention expired as retired",
          "[retention][memory]") {
  constexpr size_t kBudget = 64 << 10;  // two shards: chunks of at most 8 KiB
  MemoryFixture f(MemoryLimitPolicy::kRetireOldest, kBudget, 2, absl::Minutes(10));
  const std::string data(100, 'd');
  PutOptions to_0;
  to_0.explicit_hash_key = HashKey(1);
  PutOptions to_1;
  to_1.explicit_hash_key = HashKey::Max();
  auto put = [&](const PutOptions& to) {
    absl::StatusOr<PutRecordResult> p = f.stream->PutRecord("k", data, to);
    REQUIRE(p.ok());
    return *p;
  };
  // Shard 0 gets 200 records (several chunks), then nothing touches it while they expire. The
  // clock does not move between puts: every record of a batch shares its arrival time.
  for (int i = 0; i < 200; ++i) put(to_0);
  const size_t shard_0_bytes = f.stream->MemoryBytes();
  f.clock->Advance(absl::Minutes(10) + absl::Microseconds(1));
  // Shard 1 takes the stream past its budget. The oldest sealed chunks are shard 0's, which
  // retention has expired already: they go, but not as retired records.
  std::vector<PutRecordResult> kept;
  for (int i = 0; i < 400; ++i) kept.push_back(put(to_1));
  // Shard 0 keeps only the chunk its writer would fill; shard 1 holds 4 KiB + 6 x 8 KiB (35 + 5
  // x 71 records of 115 bytes, and 10 in the sixth 8 KiB chunk).
  CHECK(shard_0_bytes == ChunkBytes(4 << 10) + 3 * ChunkBytes(8 << 10));
  CHECK(f.stream->MemoryBytes() ==
        ChunkBytes(8 << 10) + ChunkBytes(4 << 10) + 6 * ChunkBytes(8 << 10));
  CHECK(f.stream->MemoryBytes() <= kBudget);
  CHECK(f.stream->DescribeStreamSummary().retired_records == 0);
  CHECK(f.stream->DescribeStreamSummary().retired_bytes == 0);
  CHECK(f.Retained(ShardId(0)).empty());
  CHECK(f.Retained(ShardId(1)).size() == 400u);
  // More into shard 1: now it retires its own oldest chunks, which retention still keeps. They
  // all arrived at one time, so whole chunks go and nothing else.
  for (int i = 0; i < 600; ++i) kept.push_back(put(to_1));
  CHECK(f.stream->MemoryBytes() <= kBudget);
  const int64_t retired = f.stream->DescribeStreamSummary().retired_records;
  CHECK(retired > 0);
  CHECK(f.stream->DescribeStreamSummary().retired_bytes == retired * 101);
  const std::vector<Got> got = f.Read(StartingPosition::TrimHorizon(), ShardId(1));
  REQUIRE(got.size() == kept.size() - static_cast<size_t>(retired));
  bool exact = true;
  for (size_t i = 0; i < got.size(); ++i) {
    exact =
        exact && got[i].sequence_number == kept[static_cast<size_t>(retired) + i].sequence_number;
  }
  CHECK(exact);
  CHECK(f.stream->metrics().retired_records == retired);
}

TEST_CASE("the housekeeping thread trims shards that nobody puts to or reads",
          "[retention][memory]") {
  Fixture f(absl::Minutes(10), /*allow_short=*/true);
  const std::string data(1000, 'd');
  // 1 + 1000 + 14 bytes a record: chunks of 4, 8, 16 and 32 KiB hold 60 records, a 64 KiB one
  // the other 40.
  for (int i = 0; i < 100; ++i) f.Put("k", data);
  const size_t full = f.stream->MemoryBytes();
  CHECK(full == ChunkBytes(4 << 10) + ChunkBytes(8 << 10) + ChunkBytes(16 << 10) +
                    ChunkBytes(32 << 10) + ChunkBytes(64 << 10));
  CHECK(GetErrorCode(f.stream->StartHousekeeping(absl::ZeroDuration())) ==
        ErrorCode::kInvalidArgument);
  REQUIRE(f.stream->StartHousekeeping(absl::Milliseconds(1)).ok());
  CHECK(GetErrorCode(f.stream->StartHousekeeping(absl::Milliseconds(1))) ==
        ErrorCode::kResourceInUse);
  // StartAutoScaling is the same thread under its former name.
  CHECK(GetErrorCode(f.stream->StartAutoScaling(absl::Milliseconds(1))) ==
        ErrorCode::kResourceInUse);
  f.clock->Advance(absl::Minutes(10) + absl::Microseconds(1));
  // Nothing else touches the stream now: only the thread's Tick() can free the expired chunks,
  // all at once (the one the writer fills stays).
  while (f.stream->MemoryBytes() == full) std::this_thread::yield();
  CHECK(f.stream->MemoryBytes() == ChunkBytes(64 << 10));
  f.stream->StopHousekeeping();
  f.stream->StopHousekeeping();  // stopping a stopped thread does nothing

  // The former names start and stop it too.
  REQUIRE(f.stream->StartAutoScaling(absl::Milliseconds(1)).ok());
  CHECK(GetErrorCode(f.stream->StartHousekeeping(absl::Milliseconds(1))) ==
        ErrorCode::kResourceInUse);
  f.stream->StopAutoScaling();
  REQUIRE(f.stream->StartHousekeeping(absl::Milliseconds(1)).ok());
  CHECK(f.Retained().empty());
  // The destructor stops the running thread.
}

// ---------------------------------------------------------------------------------------------
// Arrival timestamps

TEST_CASE("arrival timestamps are the clock's time at the put", "[retention]") {
  Fixture f(absl::Hours(1), /*allow_short=*/true, /*shard_count=*/2);
  std::vector<absl::Time> times;
  std::vector<PutRecordResult> puts;
  const std::vector<absl::Duration> steps = {
      absl::ZeroDuration(),       absl::Microseconds(1), absl::Milliseconds(1), absl::Seconds(1),
      absl::Microseconds(123456), absl::ZeroDuration(),  absl::Minutes(10)};
  for (size_t i = 0; i < steps.size(); ++i) {
    f.clock->Advance(steps[i]);
    times.push_back(f.clock->Now());
    puts.push_back(f.Put("key-" + std::to_string(i), std::to_string(i)));
  }
  size_t read = 0;
  for (uint32_t shard = 0; shard < 2; ++shard) {
    for (const Got& g : f.Read(StartingPosition::TrimHorizon(), ShardId(shard))) {
      const size_t i = std::stoul(g.data);
      INFO("record " << i);
      REQUIRE(i < times.size());
      CHECK(puts[i].shard_id == ShardId(shard));
      CHECK(g.arrival == times[i]);
      ++read;
    }
  }
  CHECK(read == times.size());
  // PutRecords stamps every entry with the same time.
  f.clock->Advance(absl::Microseconds(7));
  const absl::Time batch_time = f.clock->Now();
  std::vector<PutRecordsEntry> entries;
  for (int i = 0; i < 10; ++i) entries.push_back({"batch-" + std::to_string(i), "b", {}});
  absl::StatusOr<PutRecordsResult> batch = f.stream->PutRecords(entries);
  REQUIRE(batch.ok());
  CHECK(batch->failed_record_count == 0);
  size_t seen = 0;
  for (uint32_t shard = 0; shard < 2; ++shard) {
    for (const Got& g : f.Read(StartingPosition::AtTimestamp(batch_time), ShardId(shard))) {
      CHECK(g.arrival == batch_time);
      CHECK(g.data == "b");
      ++seen;
    }
  }
  CHECK(seen == entries.size());
}

TEST_CASE("arrival timestamps have microsecond precision", "[retention]") {
  Fixture f(absl::Hours(1), /*allow_short=*/true);
  f.clock->Advance(absl::Nanoseconds(1500));  // t0 + 1.5 us
  const absl::Time now = f.clock->Now();
  f.Put("k", "v");
  const std::vector<Got> got = f.Read(StartingPosition::TrimHorizon());
  REQUIRE(got.size() == 1u);
  CHECK(got[0].arrival <= now);
  CHECK(now - got[0].arrival < absl::Microseconds(1));
  CHECK(absl::ToUnixNanos(got[0].arrival) % 1000 == 0);
}

TEST_CASE("a record stamped later than the clock (clock set back) expires by its stamp",
          "[retention]") {
  Fixture f(absl::Minutes(10), /*allow_short=*/true);
  const absl::Time t0 = f.clock->Now();
  f.Put("k", "r0");
  f.clock->Set(t0 - absl::Minutes(5));  // the clock goes backwards
  f.Put("k", "r1");                     // stamped t0, not t0 - 5 min
  std::vector<Got> got = f.Read(StartingPosition::TrimHorizon());
  REQUIRE(got.size() == 2u);
  CHECK(got[1].arrival == t0);
  f.clock->Set(t0 + absl::Minutes(10));
  CHECK(f.Retained() == Strings{"r0", "r1"});
  f.clock->Advance(absl::Microseconds(1));
  CHECK(f.Retained().empty());
}

}  // namespace
}  // namespace rill
