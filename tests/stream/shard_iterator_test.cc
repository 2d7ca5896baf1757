// Tests of reading a stream: GetShardIterator with every StartingPosition type and Kinesis'
// argument rules, GetRecords (limits, paging, the 10 MiB cap, millis_behind_latest), iterator
// expiry, ShardIterator's token form, and the lifetime of the views a read returns. Every stream
// runs on a SimulatedClock, so arrival times, lags and expiry are exact.
#include "rill/stream/shard_iterator.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/numeric/int128.h"
#include "absl/time/time.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/hash_key.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

using testing::MakeStream;
using testing::MemoryStreamOptions;
using testing::MustCreate;
using testing::MustIterator;
using testing::MustPut;
using testing::MustRead;

// A record as put, and as it should read back.
struct Written {
  std::string key;
  std::string data;
  SequenceNumber sequence_number;
  absl::Time arrival;
};

// A record as read back, copied out of the stream's storage.
struct Got {
  std::string key;
  std::string data;
  SequenceNumber sequence_number;
  absl::Time arrival;
};

Got Copy(const Record& r) {
  return {std::string(r.partition_key), std::string(r.data), r.sequence_number,
          r.approximate_arrival_timestamp};
}

// Reads from `it` until a read comes back empty; returns the records and the last iterator.
std::vector<Got> Drain(const Stream& stream, ShardIterator it, int limit = kMaxGetRecordsLimit,
                       ShardIterator* last = nullptr) {
  std::vector<Got> out;
  for (;;) {
    GetRecordsResult batch = MustRead(stream, it, limit);
    REQUIRE(batch.records.size() <= static_cast<size_t>(limit));
    for (const Record& r : batch.records) out.push_back(Copy(r));
    REQUIRE(batch.next_shard_iterator.has_value());
    it = *batch.next_shard_iterator;
    if (batch.records.empty()) break;
  }
  if (last != nullptr) *last = it;
  return out;
}

// Checks that `got` is exactly written[first..].
void CheckSuffix(const std::vector<Got>& got, const std::vector<Written>& written, size_t first) {
  REQUIRE(first <= written.size());
  REQUIRE(got.size() == written.size() - first);
  for (size_t i = 0; i < got.size(); ++i) {
    const Written& w = written[first + i];
    INFO("record " << first + i);
    CHECK(got[i].key == w.key);
    CHECK(got[i].data == w.data);
    CHECK(got[i].sequence_number == w.sequence_number);
    CHECK(got[i].arrival == w.arrival);
  }
}

// Puts `n` records with key `key` on a 1-shard stream, `gap` apart on the clock; data of
// varying sizes so that the shard spans several chunks.
std::vector<Written> PutMany(Stream& stream, SimulatedClock& clock, int n,
                             absl::Duration gap = absl::Milliseconds(1),
                             std::string_view key = "key") {
  std::vector<Written> written;
  for (int i = 0; i < n; ++i) {
    const std::string data = std::to_string(i) + std::string(static_cast<size_t>(i % 97), '.');
    const absl::Time now = clock.Now();
    const PutRecordResult put = MustPut(stream, key, data);
    written.push_back({std::string(key), data, put.sequence_number, now});
    clock.Advance(gap);
  }
  return written;
}

absl::Status IteratorStatus(const Stream& stream, ShardId shard, const StartingPosition& p) {
  return stream.GetShardIterator(shard, p).status();
}

// ---------------------------------------------------------------------------------------------
// Starting positions

TEST_CASE("TRIM_HORIZON reads every record of a shard in put order", "[shard_iterator]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2);
  std::map<uint32_t, std::vector<Written>> written;
  for (int i = 0; i < 1200; ++i) {
    const std::string key = "k" + std::to_string(i % 13);
    const std::string data =
        "payload-" + std::to_string(i) + std::string(static_cast<size_t>(i % 200), '#');
    const absl::Time now = clock->Now();
    const PutRecordResult put = MustPut(*stream, key, data);
    written[put.shard_id.index()].push_back({key, data, put.sequence_number, now});
    clock->Advance(absl::Microseconds(250));
  }
  REQUIRE(written.size() == 2);
  for (uint32_t shard = 0; shard < 2; ++shard) {
    INFO("shard " << shard);
    const ShardIterator it = MustIterator(*stream, ShardId(shard), StartingPosition::TrimHorizon());
    CheckSuffix(Drain(*stream, it), written[shard], 0);
  }
}

TEST_CASE("TRIM_HORIZON on an empty shard reads records put later", "[shard_iterator]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  const ShardIterator it = MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon());
  ShardIterator next;
  CHECK(Drain(*stream, it, kMaxGetRecordsLimit, &next).empty());
  const std::vector<Written> written = PutMany(*stream, *clock, 5);
  CheckSuffix(Drain(*stream, it), written, 0);
  CheckSuffix(Drain(*stream, next), written, 0);
}

TEST_CASE("LATEST returns only records put after the call", "[shard_iterator]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  SECTION("on an empty shard") {
    const ShardIterator latest = MustIterator(*stream, ShardId(0), StartingPosition::Latest());
    const std::vector<Written> written = PutMany(*stream, *clock, 3);
    CheckSuffix(Drain(*stream, latest), written, 0);
  }
  SECTION("after some records") {
    const std::vector<Written> old = PutMany(*stream, *clock, 300);
    const ShardIterator latest = MustIterator(*stream, ShardId(0), StartingPosition::Latest());
    GetRecordsResult empty = MustRead(*stream, latest);
    CHECK(empty.records.empty());
    CHECK(empty.millis_behind_latest == 0);
    REQUIRE(empty.next_shard_iterator.has_value());

    std::vector<Written> written = old;
    const std::vector<Written> fresh = PutMany(*stream, *clock, 4);
    written.insert(written.end(), fresh.begin(), fresh.end());
    CheckSuffix(Drain(*stream, latest), written, old.size());
    CheckSuffix(Drain(*stream, *empty.next_shard_iterator), written, old.size());
    // A new LATEST is past them too.
    const ShardIterator later = MustIterator(*stream, ShardId(0), StartingPosition::Latest());
    CHECK(Drain(*stream, later).empty());
  }
}

TEST_CASE("AT_SEQUENCE_NUMBER starts at the record, AFTER_SEQUENCE_NUMBER just after it",
          "[shard_iterator]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2);
  // Shard 1 runs far ahead, so that shard 0's numbers jump when a put is ordered after it.
  std::vector<Written> written;
  for (int i = 0; i < 400; ++i) {
    PutOptions options;
    if (i % 50 == 25) {
      PutRecordResult ahead;
      for (int j = 0; j < 40; ++j) ahead = MustPut(*stream, "user-1", "ahead");
      options.sequence_number_for_ordering = ahead.sequence_number;
    }
    const std::string data =
        "r" + std::to_string(i) + std::string(static_cast<size_t>(i % 89), '-');
    const absl::Time now = clock->Now();
    const PutRecordResult put = MustPut(*stream, "a", data, options);
    REQUIRE(put.shard_id == ShardId(0));
    written.push_back({"a", data, put.sequence_number, now});
    clock->Advance(absl::Milliseconds(2));
  }
  for (size_t i = 0; i < written.size(); ++i) {
    INFO("record " << i);
    const SequenceNumber s = written[i].sequence_number;
    const ShardIterator at =
        MustIterator(*stream, ShardId(0), StartingPosition::AtSequenceNumber(s));
    const ShardIterator at_text =
        MustIterator(*stream, ShardId(0), StartingPosition::AtSequenceNumber(s.ToString()));
    const ShardIterator after =
        MustIterator(*stream, ShardId(0), StartingPosition::AfterSequenceNumber(s));
    const ShardIterator after_text =
        MustIterator(*stream, ShardId(0), StartingPosition::AfterSequenceNumber(s.ToString()));
    CHECK(at == at_text);
    CHECK(after == after_text);
    const GetRecordsResult at_one = MustRead(*stream, at, 1);
    REQUIRE(at_one.records.size() == 1);
    CHECK(at_one.records[0].sequence_number == s);
    CHECK(at_one.records[0].data == written[i].data);
    const GetRecordsResult after_one = MustRead(*stream, after, 1);
    if (i + 1 < written.size()) {
      REQUIRE(after_one.records.size() == 1);
      CHECK(after_one.records[0].sequence_number == written[i + 1].sequence_number);
    } else {
      CHECK(after_one.records.empty());
    }
    if (i % 37 == 0 || i + 1 == written.size()) {
      CheckSuffix(Drain(*stream, at), written, i);
      CheckSuffix(Drain(*stream, after), written, i + 1);
    }
  }
}

TEST_CASE("AT_SEQUENCE_NUMBER of a shard's starting sequence number reads from its first record",
          "[shard_iterator]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  const SequenceNumber start =
      stream->ListShards().at(0).sequence_number_range.starting_sequence_number;
  const ShardIterator before =
      MustIterator(*stream, ShardId(0), StartingPosition::AtSequenceNumber(start));
  const std::vector<Written> written = PutMany(*stream, *clock, 3);
  CheckSuffix(Drain(*stream, before), written, 0);
  CheckSuffix(
      Drain(*stream, MustIterator(*stream, ShardId(0), StartingPosition::AtSequenceNumber(start))),
      written, 0);
}

// The index of the first record with arrival >= t, or written.size().
size_t FirstAtOrAfter(const std::vector<Written>& written, absl::Time t) {
  size_t i = 0;
  while (i < written.size() && written[i].arrival < t) ++i;
  return i;
}

TEST_CASE("AT_TIMESTAMP starts at the first record that arrived at or after the time",
          "[shard_iterator]") {
  auto clock = std::make_shared<SimulatedClock>();
  const absl::Time t0 = SimulatedClock::DefaultStart();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  // Arrival times: t0, t0+10ms, t0+10ms (twice), t0+25ms, t0+2h (past a 32-bit microsecond
  // delta, so a new chunk), t0+2h+1us.
  std::vector<Written> written;
  auto put_at = [&](absl::Time t, const std::string& data) {
    clock->Set(t);
    written.push_back({"k", data, MustPut(*stream, "k", data).sequence_number, t});
  };
  put_at(t0, "r0");
  put_at(t0 + absl::Milliseconds(10), "r1");
  put_at(t0 + absl::Milliseconds(10), "r2");
  put_at(t0 + absl::Milliseconds(25), "r3");
  put_at(t0 + absl::Hours(2), "r4");
  put_at(t0 + absl::Hours(2) + absl::Microseconds(1), "r5");
  clock->Set(t0 + absl::Hours(3));

  struct Case {
    absl::Time t;
    size_t first;
  };
  const Case cases[] = {
      {t0 - absl::Hours(1), 0},  // before the stream existed: the trim horizon
      {t0 - absl::Microseconds(1), 0},
      {t0, 0},  // equal to a record's time
      {t0 + absl::Microseconds(1), 1},
      {t0 + absl::Milliseconds(5), 1},   // between two records
      {t0 + absl::Milliseconds(10), 1},  // equal: the first of two records with that time
      {t0 + absl::Milliseconds(10) + absl::Microseconds(1), 3},
      {t0 + absl::Milliseconds(25), 3},
      {t0 + absl::Hours(1), 4},
      {t0 + absl::Hours(2), 4},
      {t0 + absl::Hours(2) + absl::Microseconds(1), 5},
      {t0 + absl::Hours(2) + absl::Microseconds(2), 6},  // after every record
      {t0 + absl::Hours(3), 6},                          // now
  };
  for (const Case& c : cases) {
    INFO("timestamp " << c.t);
    REQUIRE(FirstAtOrAfter(written, c.t) == c.first);
    const ShardIterator it = MustIterator(*stream, ShardId(0), StartingPosition::AtTimestamp(c.t));
    CheckSuffix(Drain(*stream, it), written, c.first);
  }

  // An iterator past every record reads the records put later.
  const ShardIterator at_now =
      MustIterator(*stream, ShardId(0), StartingPosition::AtTimestamp(clock->Now()));
  put_at(clock->Now(), "r6");
  CheckSuffix(Drain(*stream, at_now), written, 6);
}

TEST_CASE("AT_TIMESTAMP agrees with a linear scan over many records and chunks",
          "[shard_iterator]") {
  auto clock = std::make_shared<SimulatedClock>();
  const absl::Time t0 = SimulatedClock::DefaultStart();
  StreamOptions options = MemoryStreamOptions(clock);
  options.retention = kMaxRetention;
  std::unique_ptr<Stream> stream = MustCreate(options);
  std::mt19937_64 rng(7);
  std::vector<Written> written;
  for (int i = 0; i < 2000; ++i) {
    const int pick = std::uniform_int_distribution<int>(0, 99)(rng);
    // Mostly small steps, some equal times, a few jumps of hours.
    if (pick < 10) {
      // same time as the previous record
    } else if (pick < 12) {
      clock->Advance(absl::Hours(std::uniform_int_distribution<int>(1, 3)(rng)));
    } else {
      clock->Advance(absl::Microseconds(std::uniform_int_distribution<int>(1, 5000)(rng)));
    }
    const std::string data = std::to_string(i) + std::string(static_cast<size_t>(pick), 'x');
    const absl::Time now = clock->Now();
    written.push_back({"k", data, MustPut(*stream, "k", data).sequence_number, now});
  }
  REQUIRE(clock->Now() - t0 < kMaxRetention);  // nothing has expired
  clock->Advance(absl::Seconds(1));

  std::vector<absl::Time> probes = {t0 - absl::Seconds(1), t0, clock->Now()};
  for (size_t i = 0; i < written.size(); i += 7) {
    probes.push_back(written[i].arrival);
    probes.push_back(written[i].arrival - absl::Microseconds(1));
    probes.push_back(written[i].arrival + absl::Microseconds(1));
  }
  for (absl::Time t : probes) {
    INFO("timestamp " << t);
    const size_t first = FirstAtOrAfter(written, t);
    const ShardIterator it = MustIterator(*stream, ShardId(0), StartingPosition::AtTimestamp(t));
    const GetRecordsResult batch = MustRead(*stream, it, 1);
    if (first < written.size()) {
      REQUIRE(batch.records.size() == 1);
      CHECK(batch.records[0].sequence_number == written[first].sequence_number);
    } else {
      CHECK(batch.records.empty());
    }
  }
  // One full read from the middle, for good measure.
  const size_t mid = written.size() / 2;
  CheckSuffix(Drain(*stream, MustIterator(*stream, ShardId(0),
                                          StartingPosition::AtTimestamp(written[mid].arrival))),
              written, FirstAtOrAfter(written, written[mid].arrival));
}

TEST_CASE("AT_TIMESTAMP compares the timestamp at full precision", "[shard_iterator]") {
  // Arrival times are kept in microseconds. A timestamp 1 ns after a record's arrival is after
  // it, so AT_TIMESTAMP must start at the next record (regression: the timestamp was once
  // truncated to microseconds, which returned the earlier record).
  auto clock = std::make_shared<SimulatedClock>();
  const absl::Time t0 = SimulatedClock::DefaultStart();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  const PutRecordResult first = MustPut(*stream, "k", "first");
  clock->Advance(absl::Milliseconds(1));
  const PutRecordResult second = MustPut(*stream, "k", "second");
  const ShardIterator it =
      MustIterator(*stream, ShardId(0), StartingPosition::AtTimestamp(t0 + absl::Nanoseconds(1)));
  const GetRecordsResult batch = MustRead(*stream, it);
  REQUIRE_FALSE(batch.records.empty());
  CHECK(batch.records[0].approximate_arrival_timestamp >= t0 + absl::Nanoseconds(1));
  CHECK(batch.records[0].sequence_number == second.sequence_number);
  CHECK(batch.records[0].sequence_number != first.sequence_number);
}

TEST_CASE("Positions before the trim horizon start at the trim horizon", "[shard_iterator]") {
  auto clock = std::make_shared<SimulatedClock>();
  const absl::Time t0 = SimulatedClock::DefaultStart();
  StreamOptions options = MemoryStreamOptions(clock);
  options.allow_short_retention = true;
  options.retention = absl::Seconds(10);
  std::unique_ptr<Stream> stream = MustCreate(options);
  const std::vector<Written> old = PutMany(*stream, *clock, 3, absl::Seconds(1));
  clock->Set(t0 + absl::Seconds(20));
  const std::vector<Written> fresh = PutMany(*stream, *clock, 2, absl::Seconds(1));
  // Now t0 + 22 s: the first three (t0 .. t0 + 2 s) are past the 10 s retention.
  const ShardIterator positions[] = {
      MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon()),
      MustIterator(*stream, ShardId(0), StartingPosition::AtSequenceNumber(old[0].sequence_number)),
      MustIterator(*stream, ShardId(0),
                   StartingPosition::AfterSequenceNumber(old[1].sequence_number)),
      MustIterator(*stream, ShardId(0), StartingPosition::AtTimestamp(t0)),
      MustIterator(*stream, ShardId(0), StartingPosition::AtTimestamp(t0 - absl::Hours(1))),
  };
  for (const ShardIterator& it : positions) CheckSuffix(Drain(*stream, it), fresh, 0);
}

// ---------------------------------------------------------------------------------------------
// GetShardIterator's argument rules

TEST_CASE("GetShardIterator enforces which arguments each iterator type takes",
          "[shard_iterator][arguments]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  const PutRecordResult put = MustPut(*stream, "k", "v");
  clock->Advance(absl::Seconds(1));
  const std::string seq = put.sequence_number.ToString();
  const absl::Time past = clock->Now() - absl::Milliseconds(500);

  struct Case {
    const char* what;
    StartingPosition position;
  };
  const Case rejected[] = {
      {"TRIM_HORIZON with a sequence number", {ShardIteratorType::kTrimHorizon, seq, {}}},
      {"LATEST with a sequence number", {ShardIteratorType::kLatest, seq, {}}},
      {"TRIM_HORIZON with a timestamp", {ShardIteratorType::kTrimHorizon, {}, past}},
      {"LATEST with a timestamp", {ShardIteratorType::kLatest, {}, past}},
      {"TRIM_HORIZON with both", {ShardIteratorType::kTrimHorizon, seq, past}},
      {"AT_SEQUENCE_NUMBER without one", {ShardIteratorType::kAtSequenceNumber, {}, {}}},
      {"AFTER_SEQUENCE_NUMBER without one", {ShardIteratorType::kAfterSequenceNumber, {}, {}}},
      {"AT_SEQUENCE_NUMBER with a timestamp", {ShardIteratorType::kAtSequenceNumber, seq, past}},
      {"AFTER_SEQUENCE_NUMBER with a timestamp",
       {ShardIteratorType::kAfterSequenceNumber, seq, past}},
      {"AT_SEQUENCE_NUMBER with only a timestamp",
       {ShardIteratorType::kAtSequenceNumber, {}, past}},
      {"AT_TIMESTAMP without one", {ShardIteratorType::kAtTimestamp, {}, {}}},
      {"AT_TIMESTAMP with a sequence number", {ShardIteratorType::kAtTimestamp, seq, past}},
      {"AT_TIMESTAMP with only a sequence number", {ShardIteratorType::kAtTimestamp, seq, {}}},
      {"AT_TIMESTAMP 1 us in the future",
       StartingPosition::AtTimestamp(clock->Now() + absl::Microseconds(1))},
      {"AT_TIMESTAMP 1 ns in the future",
       StartingPosition::AtTimestamp(clock->Now() + absl::Nanoseconds(1))},
      {"AT_TIMESTAMP a day in the future",
       StartingPosition::AtTimestamp(clock->Now() + absl::Hours(24))},
  };
  for (const Case& c : rejected) {
    INFO(c.what);
    const absl::Status status = IteratorStatus(*stream, ShardId(0), c.position);
    REQUIRE_FALSE(status.ok());
    CHECK(GetErrorCode(status) == ErrorCode::kInvalidArgument);
    CHECK_FALSE(status.message().empty());
  }

  const Case accepted[] = {
      {"TRIM_HORIZON", StartingPosition::TrimHorizon()},
      {"LATEST", StartingPosition::Latest()},
      {"AT_SEQUENCE_NUMBER", StartingPosition::AtSequenceNumber(seq)},
      {"AFTER_SEQUENCE_NUMBER", StartingPosition::AfterSequenceNumber(seq)},
      {"AT_TIMESTAMP in the past", StartingPosition::AtTimestamp(past)},
      {"AT_TIMESTAMP now", StartingPosition::AtTimestamp(clock->Now())},
  };
  for (const Case& c : accepted) {
    INFO(c.what);
    CHECK(IteratorStatus(*stream, ShardId(0), c.position).ok());
  }
}

TEST_CASE("GetShardIterator rejects sequence numbers that are malformed or not of this shard",
          "[shard_iterator][arguments]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2, "first-stream");
  std::unique_ptr<Stream> other = MakeStream(clock, 2, "second-stream");
  const PutRecordResult mine = MustPut(*stream, "a", "mine");         // shard 0
  const PutRecordResult neighbour = MustPut(*stream, "user-1", "n");  // shard 1
  const PutRecordResult theirs = MustPut(*other, "a", "theirs");      // shard 0 of the other
  REQUIRE(mine.shard_id == ShardId(0));
  REQUIRE(neighbour.shard_id == ShardId(1));
  REQUIRE(theirs.shard_id == ShardId(0));
  // Two counters past the newest record: of this shard and stream, but not issued.
  const SequenceNumber future(mine.sequence_number.value() + (absl::uint128(2) << 60));

  const std::string rejected[] = {
      "abc",
      "-1",
      "01",
      "",
      " 1",
      "1 ",
      "+1",
      "1.0",
      "0x10",
      "340282366920938463463374607431768211456",  // 2^128
      "0",
      "1",
      "0" + mine.sequence_number.ToString(),
      mine.sequence_number.ToString() + "0",
      neighbour.sequence_number.ToString(),
      theirs.sequence_number.ToString(),
      future.ToString(),
  };
  for (const std::string& s : rejected) {
    INFO("sequence number '" << s << "'");
    for (auto make :
         {+[](std::string_view d) { return StartingPosition::AtSequenceNumber(d); },
          +[](std::string_view d) { return StartingPosition::AfterSequenceNumber(d); }}) {
      const absl::Status status = IteratorStatus(*stream, ShardId(0), make(s));
      REQUIRE_FALSE(status.ok());
      CHECK(GetErrorCode(status) == ErrorCode::kInvalidArgument);
    }
  }
  // Each number works on its own shard and stream.
  CHECK(
      IteratorStatus(*stream, ShardId(0), StartingPosition::AtSequenceNumber(mine.sequence_number))
          .ok());
  CHECK(IteratorStatus(*stream, ShardId(1),
                       StartingPosition::AtSequenceNumber(neighbour.sequence_number))
            .ok());
  CHECK(
      IteratorStatus(*other, ShardId(0), StartingPosition::AtSequenceNumber(theirs.sequence_number))
          .ok());
  // And this shard's number is refused by the neighbour shard.
  const absl::Status cross = IteratorStatus(
      *stream, ShardId(1), StartingPosition::AfterSequenceNumber(mine.sequence_number));
  CHECK(GetErrorCode(cross) == ErrorCode::kInvalidArgument);
}

TEST_CASE("GetShardIterator rejects the sequence number right after the newest one",
          "[shard_iterator][arguments]") {
  // A number carrying the counter the NEXT record will get was never issued: refused, as
  // PutRecord's ordering check refuses it (regression: it was once accepted and positioned at
  // the end of the shard).
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  MustPut(*stream, "k", "0");
  const PutRecordResult newest = MustPut(*stream, "k", "1");
  const SequenceNumber next(newest.sequence_number.value() + (absl::uint128(1) << 60));
  // The same number is refused as sequence_number_for_ordering: it was not issued.
  PutOptions ordering;
  ordering.sequence_number_for_ordering = next;
  CHECK(GetErrorCode(stream->PutRecord("k", "x", ordering).status()) ==
        ErrorCode::kInvalidArgument);
  CHECK(
      GetErrorCode(IteratorStatus(*stream, ShardId(0), StartingPosition::AtSequenceNumber(next))) ==
      ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(
            IteratorStatus(*stream, ShardId(0), StartingPosition::AfterSequenceNumber(next))) ==
        ErrorCode::kInvalidArgument);
}

TEST_CASE("GetShardIterator resolves shard ids by value and by name",
          "[shard_iterator][arguments]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2);
  const PutRecordResult put = MustPut(*stream, "user-1", "v");
  REQUIRE(put.shard_id == ShardId(1));

  for (std::string_view name : {"shardId-000000000001", "1"}) {
    INFO("shard id " << name);
    absl::StatusOr<ShardIterator> it =
        stream->GetShardIterator(name, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    CHECK(*it == MustIterator(*stream, ShardId(1), StartingPosition::TrimHorizon()));
    const GetRecordsResult batch = MustRead(*stream, *it);
    REQUIRE(batch.records.size() == 1);
    CHECK(batch.records[0].sequence_number == put.sequence_number);
  }

  SECTION("unknown shards are kResourceNotFound") {
    for (ShardId id : {ShardId(2), ShardId(99), ShardId(ShardId::kMaxIndex)}) {
      INFO("shard " << id);
      CHECK(GetErrorCode(IteratorStatus(*stream, id, StartingPosition::TrimHorizon())) ==
            ErrorCode::kResourceNotFound);
      CHECK(GetErrorCode(IteratorStatus(*stream, id, StartingPosition::Latest())) ==
            ErrorCode::kResourceNotFound);
    }
    for (std::string_view name : {"shardId-000000000099", "shardId-000000000002", "99",
                                  "shardId-2147483647", "shardId-2147483648", "shardId-abc"}) {
      INFO("shard id " << name);
      CHECK(
          GetErrorCode(stream->GetShardIterator(name, StartingPosition::TrimHorizon()).status()) ==
          ErrorCode::kResourceNotFound);
    }
  }
  SECTION("malformed shard ids are kInvalidArgument") {
    const std::string malformed[] = {
        "shard 1", "", "shardId-000000000001 ", "shard/1", "shard\xC3\xBC", std::string(129, '1')};
    for (const std::string& name : malformed) {
      INFO("shard id '" << name << "'");
      CHECK(
          GetErrorCode(stream->GetShardIterator(name, StartingPosition::TrimHorizon()).status()) ==
          ErrorCode::kInvalidArgument);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// GetRecords

TEST_CASE("GetRecords takes a limit of 1 to 10,000", "[get_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  std::vector<PutRecordsEntry> entries;
  for (int i = 0; i < 500; ++i) entries.push_back({"k", std::to_string(i), std::nullopt});
  for (int call = 0; call < 21; ++call) REQUIRE(stream->PutRecords(entries).ok());  // 10,500
  const ShardIterator it = MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon());

  for (int limit : {0, -1, 10001, INT_MIN, INT_MAX}) {
    INFO("limit " << limit);
    absl::StatusOr<GetRecordsResult> batch = stream->GetRecords(it, limit);
    REQUIRE_FALSE(batch.ok());
    CHECK(GetErrorCode(batch.status()) == ErrorCode::kInvalidArgument);
  }
  CHECK(MustRead(*stream, it, 1).records.size() == 1);
  CHECK(MustRead(*stream, it, 10000).records.size() == 10000);
  CHECK(MustRead(*stream, it).records.size() == 10000);  // the default is the maximum
  // The rest follows.
  const GetRecordsResult first = MustRead(*stream, it);
  const GetRecordsResult rest = MustRead(*stream, *first.next_shard_iterator);
  CHECK(rest.records.size() == 500);
}

TEST_CASE("GetRecords returns exactly `limit` records and pages through all of them once",
          "[get_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  const std::vector<Written> written = PutMany(*stream, *clock, 1000, absl::Microseconds(10));
  const int limit = GENERATE(1, 3, 64, 999, 1000, 1001, 10000);
  INFO("limit " << limit);
  ShardIterator it = MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon());
  std::vector<Got> got;
  size_t calls = 0;
  while (got.size() < written.size()) {
    const GetRecordsResult batch = MustRead(*stream, it, limit);
    const size_t want = std::min(static_cast<size_t>(limit), written.size() - got.size());
    REQUIRE(batch.records.size() == want);
    for (const Record& r : batch.records) got.push_back(Copy(r));
    REQUIRE(batch.next_shard_iterator.has_value());
    it = *batch.next_shard_iterator;
    ++calls;
  }
  CHECK(calls == (written.size() + static_cast<size_t>(limit) - 1) / static_cast<size_t>(limit));
  CheckSuffix(got, written, 0);
  const GetRecordsResult end = MustRead(*stream, it, limit);
  CHECK(end.records.empty());
  CHECK(end.millis_behind_latest == 0);
}

TEST_CASE("At the end of an open shard GetRecords returns nothing and a usable iterator",
          "[get_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  std::vector<Written> written = PutMany(*stream, *clock, 3);
  ShardIterator it = MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon());
  CHECK(MustRead(*stream, it).records.size() == 3);
  it = *MustRead(*stream, it).next_shard_iterator;

  // Repeated reads at the end return nothing, and an iterator each time.
  for (int i = 0; i < 3; ++i) {
    const GetRecordsResult batch = MustRead(*stream, it);
    CHECK(batch.records.empty());
    CHECK(batch.millis_behind_latest == 0);
    CHECK(batch.child_shards.empty());
    REQUIRE(batch.next_shard_iterator.has_value());
    it = *batch.next_shard_iterator;
    clock->Advance(absl::Seconds(1));
  }
  const std::vector<Written> more = PutMany(*stream, *clock, 2);
  written.insert(written.end(), more.begin(), more.end());
  CheckSuffix(Drain(*stream, it), written, 3);
}

TEST_CASE("millis_behind_latest is at least 1 while records are left, however recent",
          "[get_records]") {
  // 0 means caught up (Kinesis: "zero indicates that record processing is caught up, and there
  // are no new records to process at this moment"). Records younger than a millisecond, or any on
  // a clock that stands still, used to give 0 with records left, and readers that stop on 0 (a
  // pipeline's caught_up(), rill get) stopped early.
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  for (int i = 0; i < 5; ++i) MustPut(*stream, "k", "r" + std::to_string(i));
  ShardIterator it = MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon());
  GetRecordsResult batch = MustRead(*stream, it, 2);
  CHECK(batch.records.size() == 2);
  CHECK(batch.millis_behind_latest == 1);
  clock->Advance(absl::Microseconds(999));
  batch = MustRead(*stream, *batch.next_shard_iterator, 2);
  CHECK(batch.records.size() == 2);
  CHECK(batch.millis_behind_latest == 1);
  clock->Advance(absl::Microseconds(2001));  // the records are 3 ms old
  batch = MustRead(*stream, *batch.next_shard_iterator, 2);
  CHECK(batch.records.size() == 1);
  CHECK(batch.millis_behind_latest == 0);
  it = MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon());
  CHECK(MustRead(*stream, it, 4).millis_behind_latest == 3);
}

TEST_CASE("millis_behind_latest is the age of the first record not returned", "[get_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  const absl::Time t0 = SimulatedClock::DefaultStart();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  clock->Set(t0);
  MustPut(*stream, "k", "r0");
  clock->Set(t0 + absl::Seconds(1));
  MustPut(*stream, "k", "r1");
  clock->Set(t0 + absl::Seconds(3));
  MustPut(*stream, "k", "r2");
  clock->Set(t0 + absl::Seconds(10));

  ShardIterator it = MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon());
  GetRecordsResult batch = MustRead(*stream, it, 1);
  REQUIRE(batch.records.size() == 1);
  CHECK(batch.records[0].data == "r0");
  CHECK(batch.millis_behind_latest == 9000);  // r1 arrived at t0 + 1 s

  clock->Advance(absl::Milliseconds(250));
  batch = MustRead(*stream, *batch.next_shard_iterator, 1);
  REQUIRE(batch.records.size() == 1);
  CHECK(batch.records[0].data == "r1");
  CHECK(batch.millis_behind_latest == 7250);  // r2 arrived at t0 + 3 s; now t0 + 10.25 s

  batch = MustRead(*stream, *batch.next_shard_iterator, 1);
  REQUIRE(batch.records.size() == 1);
  CHECK(batch.records[0].data == "r2");
  CHECK(batch.millis_behind_latest == 0);

  batch = MustRead(*stream, *batch.next_shard_iterator, 1);
  CHECK(batch.records.empty());
  CHECK(batch.millis_behind_latest == 0);

  // A read that takes everything is caught up; one that takes two of three is not.
  it = MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon());
  CHECK(MustRead(*stream, it).millis_behind_latest == 0);
  CHECK(MustRead(*stream, it, 2).millis_behind_latest == 7250);
  // LATEST on a shard with records is caught up.
  CHECK(MustRead(*stream, MustIterator(*stream, ShardId(0), StartingPosition::Latest()))
            .millis_behind_latest == 0);
}

TEST_CASE("GetRecords returns at most 10 MiB per call and loses nothing", "[get_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  SECTION("twelve records of 1 MiB") {
    std::unique_ptr<Stream> stream = MakeStream(clock);
    // Each record is exactly 1 MiB: a 1-byte key and 1 MiB - 1 of data.
    std::vector<Written> written;
    for (int i = 0; i < 12; ++i) {
      const std::string data(kMiB - 1, static_cast<char>('a' + i));
      written.push_back({"k", data, MustPut(*stream, "k", data).sequence_number, clock->Now()});
    }
    clock->Advance(absl::Seconds(2));
    const ShardIterator it = MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon());
    const GetRecordsResult first = MustRead(*stream, it);
    size_t bytes = 0;
    for (const Record& r : first.records) bytes += r.partition_key.size() + r.data.size();
    CHECK(bytes <= kMaxGetRecordsBytes);
    CHECK(first.records.size() == 10);
    CHECK(first.millis_behind_latest == 2000);
    REQUIRE(first.next_shard_iterator.has_value());
    const GetRecordsResult second = MustRead(*stream, *first.next_shard_iterator);
    CHECK(second.records.size() == 12 - first.records.size());
    CHECK(second.millis_behind_latest == 0);

    std::vector<Got> got;
    for (const Record& r : first.records) got.push_back(Copy(r));
    for (const Record& r : second.records) got.push_back(Copy(r));
    CheckSuffix(got, written, 0);
    CHECK(MustRead(*stream, *second.next_shard_iterator).records.empty());
    // The record limit still applies below the byte cap.
    CHECK(MustRead(*stream, it, 4).records.size() == 4);
  }
  SECTION("one 10 MiB record is returned alone, the rest next") {
    StreamOptions options = MemoryStreamOptions(clock);
    options.max_record_bytes = 10 * kMiB;
    std::unique_ptr<Stream> stream = MustCreate(options);
    std::vector<Written> written;
    const std::string big(10 * kMiB - 1, 'B');
    written.push_back({"k", big, MustPut(*stream, "k", big).sequence_number, clock->Now()});
    for (int i = 0; i < 5; ++i) {
      const std::string data(100, static_cast<char>('0' + i));
      written.push_back({"k", data, MustPut(*stream, "k", data).sequence_number, clock->Now()});
    }
    const ShardIterator it = MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon());
    const GetRecordsResult first = MustRead(*stream, it);
    REQUIRE(first.records.size() == 1);
    CHECK(first.records[0].data.size() == big.size());
    const GetRecordsResult second = MustRead(*stream, *first.next_shard_iterator);
    CHECK(second.records.size() == 5);
    std::vector<Got> got;
    for (const Record& r : first.records) got.push_back(Copy(r));
    for (const Record& r : second.records) got.push_back(Copy(r));
    CheckSuffix(got, written, 0);
  }
}

TEST_CASE("GetRecords rejects an iterator of no stream or of another stream", "[get_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 1, "mine");
  std::unique_ptr<Stream> other = MakeStream(clock, 1, "theirs");
  MustPut(*stream, "k", "mine");
  MustPut(*other, "k", "theirs");

  const absl::StatusOr<GetRecordsResult> none = stream->GetRecords(ShardIterator());
  REQUIRE_FALSE(none.ok());
  CHECK(GetErrorCode(none.status()) == ErrorCode::kInvalidArgument);

  const ShardIterator foreign = MustIterator(*other, ShardId(0), StartingPosition::TrimHorizon());
  const absl::StatusOr<GetRecordsResult> wrong = stream->GetRecords(foreign);
  REQUIRE_FALSE(wrong.ok());
  CHECK(GetErrorCode(wrong.status()) == ErrorCode::kInvalidArgument);
  absl::StatusOr<ShardIterator> parsed = ShardIterator::Parse(foreign.ToString());
  REQUIRE(parsed.ok());
  CHECK(GetErrorCode(stream->GetRecords(*parsed).status()) == ErrorCode::kInvalidArgument);

  // A later stream of the same name is another stream.
  clock->Advance(absl::Seconds(1));
  std::unique_ptr<Stream> again = MakeStream(clock, 1, "theirs");
  CHECK(GetErrorCode(again->GetRecords(foreign).status()) == ErrorCode::kInvalidArgument);
  // The iterator still works where it came from.
  CHECK(MustRead(*other, foreign).records.size() == 1);
}

TEST_CASE("Two streams of the same name created at the same instant do not share iterators",
          "[get_records]") {
  // Two streams named alike on clocks that read the same time (two SimulatedClocks at
  // DefaultStart()) must still refuse each other's iterators and sequence numbers (regression:
  // their ids once came from the name and creation time alone).
  std::unique_ptr<Stream> first = MakeStream(std::make_shared<SimulatedClock>(), 1, "twin");
  std::unique_ptr<Stream> second = MakeStream(std::make_shared<SimulatedClock>(), 1, "twin");
  const PutRecordResult put = MustPut(*first, "k", "first");
  MustPut(*second, "k", "second");
  const ShardIterator it = MustIterator(*first, ShardId(0), StartingPosition::TrimHorizon());
  CHECK(GetErrorCode(second->GetRecords(it).status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(IteratorStatus(*second, ShardId(0),
                                    StartingPosition::AtSequenceNumber(put.sequence_number))) ==
        ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Expiry

TEST_CASE("An iterator works for 5 minutes after it was issued, then expires",
          "[shard_iterator][expiry]") {
  auto clock = std::make_shared<SimulatedClock>();
  const absl::Time t0 = SimulatedClock::DefaultStart();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  std::vector<Written> written = PutMany(*stream, *clock, 4, absl::ZeroDuration());
  clock->Set(t0 + absl::Seconds(30));
  const ShardIterator it = MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon());
  CHECK(it.issued_at() == t0 + absl::Seconds(30));
  absl::StatusOr<ShardIterator> copy = ShardIterator::Parse(it.ToString());
  REQUIRE(copy.ok());
  CHECK(copy->issued_at() == it.issued_at());

  // Exactly 5 minutes after issue it still works (expired only when now - issued > 5 min).
  clock->Set(it.issued_at() + kShardIteratorLifetime);
  const GetRecordsResult at_limit = MustRead(*stream, it, 2);
  CHECK(at_limit.records.size() == 2);
  REQUIRE(at_limit.next_shard_iterator.has_value());
  const ShardIterator next = *at_limit.next_shard_iterator;
  // The next iterator is issued at the time of the read.
  CHECK(next.issued_at() == clock->Now());

  // One microsecond later the original (and its parsed copy) has expired.
  clock->Advance(absl::Microseconds(1));
  for (const ShardIterator& old : {it, *copy}) {
    const absl::StatusOr<GetRecordsResult> expired = stream->GetRecords(old);
    REQUIRE_FALSE(expired.ok());
    CHECK(GetErrorCode(expired.status()) == ErrorCode::kExpiredIterator);
  }
  CHECK(GetErrorCode(stream->GetRecords(it, 1).status()) == ErrorCode::kExpiredIterator);

  // The re-issued iterator lives 5 minutes from its own issue and continues where it was.
  clock->Set(next.issued_at() + kShardIteratorLifetime);
  const GetRecordsResult rest = MustRead(*stream, next);
  REQUIRE(rest.records.size() == 2);
  CHECK(rest.records[0].sequence_number == written[2].sequence_number);
  CHECK(rest.records[1].sequence_number == written[3].sequence_number);
  clock->Advance(absl::Microseconds(1));
  CHECK(GetErrorCode(stream->GetRecords(next).status()) == ErrorCode::kExpiredIterator);
  // The iterator from that last read is fresh.
  CHECK(MustRead(*stream, *rest.next_shard_iterator).records.empty());
}

TEST_CASE("Iterators from an empty read and from every position type expire alike",
          "[shard_iterator][expiry]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  const PutRecordResult put = MustPut(*stream, "k", "v");
  clock->Advance(absl::Seconds(1));
  const absl::Time issued = clock->Now();
  const ShardIterator iterators[] = {
      MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon()),
      MustIterator(*stream, ShardId(0), StartingPosition::Latest()),
      MustIterator(*stream, ShardId(0), StartingPosition::AtSequenceNumber(put.sequence_number)),
      MustIterator(*stream, ShardId(0), StartingPosition::AfterSequenceNumber(put.sequence_number)),
      MustIterator(*stream, ShardId(0), StartingPosition::AtTimestamp(issued)),
      *MustRead(*stream, MustIterator(*stream, ShardId(0), StartingPosition::Latest()))
           .next_shard_iterator,
  };
  for (const ShardIterator& it : iterators) CHECK(it.issued_at() == issued);
  clock->Advance(kShardIteratorLifetime);
  for (const ShardIterator& it : iterators) CHECK(stream->GetRecords(it).ok());
  clock->Advance(absl::Microseconds(1));
  for (const ShardIterator& it : iterators) {
    CHECK(GetErrorCode(stream->GetRecords(it).status()) == ErrorCode::kExpiredIterator);
  }
}

// ---------------------------------------------------------------------------------------------
// Tokens

TEST_CASE("ShardIterator::ToString and Parse round-trip", "[shard_iterator][token]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2);
  std::vector<Written> written = PutMany(*stream, *clock, 20, absl::Milliseconds(3), "a");
  const ShardIterator originals[] = {
      MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon()),
      MustIterator(*stream, ShardId(0),
                   StartingPosition::AfterSequenceNumber(written[9].sequence_number)),
      MustIterator(*stream, ShardId(0), StartingPosition::Latest()),
      MustIterator(*stream, ShardId(1), StartingPosition::TrimHorizon()),
      *MustRead(*stream, MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon()), 5)
           .next_shard_iterator,
  };
  const size_t firsts[] = {0, 10, 20, 20, 5};
  for (size_t i = 0; i < std::size(originals); ++i) {
    INFO("iterator " << i);
    const ShardIterator& original = originals[i];
    const std::string token = original.ToString();
    CHECK(token.size() == 80);
    CHECK(token.find_first_not_of("0123456789abcdef") == std::string::npos);
    std::ostringstream printed;
    printed << original;
    CHECK(printed.str() == token);

    absl::StatusOr<ShardIterator> parsed = ShardIterator::Parse(token);
    REQUIRE(parsed.ok());
    CHECK(*parsed == original);
    CHECK(parsed->ToString() == token);
    CHECK(parsed->issued_at() == original.issued_at());
    if (i == 3) {
      CHECK(Drain(*stream, *parsed).empty());  // shard 1 holds nothing
    } else {
      CheckSuffix(Drain(*stream, *parsed), written, firsts[i]);
      CheckSuffix(Drain(*stream, original), written, firsts[i]);
    }
  }
  // Different positions give different tokens.
  CHECK(originals[0].ToString() != originals[1].ToString());
  CHECK(originals[0].ToString() != originals[3].ToString());

  // The default iterator round-trips too, and is still refused by GetRecords.
  absl::StatusOr<ShardIterator> none = ShardIterator::Parse(ShardIterator().ToString());
  REQUIRE(none.ok());
  CHECK(*none == ShardIterator());
  CHECK(GetErrorCode(stream->GetRecords(*none).status()) == ErrorCode::kInvalidArgument);
}

TEST_CASE("ShardIterator::Parse rejects altered and malformed tokens", "[shard_iterator][token]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  MustPut(*stream, "k", "v");
  const std::string token =
      MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon()).ToString();
  REQUIRE(token.size() == 80);

  auto check_rejected = [](const std::string& bad) {
    const absl::StatusOr<ShardIterator> parsed = ShardIterator::Parse(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(GetErrorCode(parsed.status()) == ErrorCode::kInvalidArgument);
  };
  SECTION("any one hex digit changed") {
    constexpr std::string_view kHex = "0123456789abcdef";
    for (size_t pos = 0; pos < token.size(); ++pos) {
      for (char digit : kHex) {
        if (digit == token[pos]) continue;
        std::string bad = token;
        bad[pos] = digit;
        INFO("position " << pos << " set to " << digit);
        check_rejected(bad);
      }
    }
  }
  SECTION("wrong length") {
    check_rejected("");
    check_rejected(token.substr(0, 79));
    check_rejected(token.substr(0, 78));
    check_rejected(token.substr(1));
    check_rejected(token + "0");
    check_rejected(token + "00");
    check_rejected(token + token);
  }
  SECTION("not lower-case hex") {
    for (size_t pos : {size_t{0}, size_t{17}, size_t{40}, size_t{79}}) {
      for (char c : {'g', 'z', 'G', ' ', '-', '\0', '\xFF'}) {
        std::string bad = token;
        bad[pos] = c;
        INFO("position " << pos << " set to char " << static_cast<int>(c));
        check_rejected(bad);
      }
    }
    const size_t letter = token.find_first_of("abcdef");
    REQUIRE(letter != std::string::npos);
    std::string upper = token;
    upper[letter] = static_cast<char>(upper[letter] - 'a' + 'A');
    check_rejected(upper);
  }
}

// ---------------------------------------------------------------------------------------------
// Record lifetime

TEST_CASE("Record views stay valid while their GetRecordsResult lives", "[get_records][views]") {
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions options = MemoryStreamOptions(clock);
  options.allow_short_retention = true;
  options.retention = absl::Seconds(10);
  std::unique_ptr<Stream> stream = MustCreate(options);
  const std::vector<Written> written = PutMany(*stream, *clock, 100, absl::Milliseconds(1));

  std::optional<GetRecordsResult> copy;
  {
    GetRecordsResult result =
        MustRead(*stream, MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon()));
    REQUIRE(result.records.size() == 100);
    // Fill many more chunks.
    for (int i = 0; i < 20000; ++i) {
      MustPut(*stream, "other-key-" + std::to_string(i % 10), std::string(200, 'z'));
    }
    std::vector<Got> got;
    for (const Record& r : result.records) got.push_back(Copy(r));
    CheckSuffix(got, written, 0);
    copy = result;  // shares the storage
  }
  // The original is gone; the copy's views still read the right bytes.
  std::vector<Got> got;
  for (const Record& r : copy->records) got.push_back(Copy(r));
  CheckSuffix(got, written, 0);

  // Past retention the records expire and their chunks are released (to the pool, whose buffers
  // new chunks reuse); the views still read the original bytes.
  clock->Advance(absl::Seconds(60));
  for (int i = 0; i < 20000; ++i)
    MustPut(*stream, "late-" + std::to_string(i % 10), std::string(200, 'y'));
  const GetRecordsResult now =
      MustRead(*stream, MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon()), 1);
  REQUIRE(now.records.size() == 1);
  CHECK(now.records[0].partition_key.substr(0, 5) == "late-");
  got.clear();
  for (const Record& r : copy->records) got.push_back(Copy(r));
  CheckSuffix(got, written, 0);

  // A new stream writing records of the same sizes takes chunks of the same sizes, which is
  // where a released buffer would be reused; the views are untouched.
  std::unique_ptr<Stream> next = MakeStream(clock, 1, "next-stream");
  for (int i = 0; i < 100; ++i)
    MustPut(*next, "key", std::string(static_cast<size_t>(i % 97) + 2, '!'));
  got.clear();
  for (const Record& r : copy->records) got.push_back(Copy(r));
  CheckSuffix(got, written, 0);
}

TEST_CASE("Record views outlive the stream that returned them", "[get_records][views]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  const std::vector<Written> written = PutMany(*stream, *clock, 300, absl::Milliseconds(1));
  const GetRecordsResult result =
      MustRead(*stream, MustIterator(*stream, ShardId(0), StartingPosition::TrimHorizon()));
  stream.reset();
  // Another stream of the same shape reuses whatever buffers were released.
  std::unique_ptr<Stream> next = MakeStream(clock, 1, "next-stream");
  for (int i = 0; i < 300; ++i) {
    MustPut(*next, "KEY", std::string(std::to_string(i).size() + static_cast<size_t>(i % 97), '!'));
  }
  std::vector<Got> got;
  for (const Record& r : result.records) got.push_back(Copy(r));
  CheckSuffix(got, written, 0);
}

}  // namespace
}  // namespace rill
