// ShardReader: every starting position, paging, caught-up reads, closed shards, iterator renewal,
// the KCL checkpoint rule, checkpoints in a store and resuming from them, range-for, and record
// views. Deterministic: a SimulatedClock and exact expected records.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/base/error.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/shard_reader.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

namespace fs = std::filesystem;

constexpr absl::uint128 kHalf = absl::MakeUint128(uint64_t{1} << 63, 0);  // 2^127

struct Fixture {
  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream;
  // What was put, in order, per shard index.
  std::vector<std::vector<OwnedRecord>> put;

  explicit Fixture(int shards = 1, ShardLimits limits = ShardLimits::Unlimited()) {
    StreamOptions options = testing::MemoryStreamOptions(clock, shards, "reader");
    options.shard_limits = limits;
    stream = testing::MustCreate(std::move(options));
  }

  // Puts `data` (also used as the partition key) into the shard owning `hash_key`.
  OwnedRecord Put(const std::string& data, HashKey hash_key = HashKey()) {
    PutOptions options;
    options.explicit_hash_key = hash_key;
    auto p = stream->PutRecord(data, data, options);
    REQUIRE(p.ok());
    OwnedRecord r{p->sequence_number, clock->Now(), data, data};
    if (put.size() <= p->shard_id.index()) put.resize(p->shard_id.index() + 1);
    put[p->shard_id.index()].push_back(r);
    return r;
  }

  // Puts n records "<prefix>0".."<prefix>n-1", advancing the clock by `step` before each.
  std::vector<OwnedRecord> PutMany(int n, const std::string& prefix = "r",
                                   absl::Duration step = absl::ZeroDuration()) {
    std::vector<OwnedRecord> out;
    for (int i = 0; i < n; ++i) {
      clock->Advance(step);
      out.push_back(Put(prefix + std::to_string(i)));
    }
    return out;
  }

  std::unique_ptr<ShardReader> Reader(StartingPosition position, ShardReaderOptions options = {},
                                      ShardId shard = ShardId(0)) {
    auto r = ShardReader::Create(*stream, shard, std::move(position), std::move(options));
    REQUIRE(r.ok());
    return std::move(*r);
  }

  // A reader whose checkpoints go to `store`.
  std::unique_ptr<ShardReader> Reader(StartingPosition position, CheckpointStore& store,
                                      ShardReaderOptions options, ShardId shard = ShardId(0)) {
    auto r = ShardReader::Create(*stream, shard, std::move(position), store, std::move(options));
    REQUIRE(r.ok());
    return std::move(*r);
  }

  int64_t GetRecordsCalls() const { return stream->metrics().get_records_success; }
};

// Options with a batch size, and optionally an application (designated initializers would trip
// -Wmissing-field-initializers on g++).
ShardReaderOptions Options(int batch_size, std::string application = "") {
  ShardReaderOptions options;
  options.batch_size = batch_size;
  options.application_name = std::move(application);
  return options;
}

// Options for a reader with a store: the application whose lease table holds the checkpoints.
ShardReaderOptions Application(std::string application) {
  return Options(ShardReaderOptions().batch_size, std::move(application));
}

// Calls Next() until it returns nullopt (or fails the test on an error); the records, copied.
std::vector<OwnedRecord> Drain(ShardReader& reader) {
  std::vector<OwnedRecord> out;
  for (;;) {
    absl::StatusOr<std::optional<RecordView>> next = reader.Next();
    REQUIRE(next.ok());
    if (!next->has_value()) return out;
    out.push_back((*next)->ToOwned());
  }
}

std::vector<std::string> Data(const std::vector<OwnedRecord>& records) {
  std::vector<std::string> out;
  for (const OwnedRecord& r : records) out.push_back(r.data);
  return out;
}

std::vector<OwnedRecord> Slice(const std::vector<OwnedRecord>& v, size_t from, size_t to) {
  return std::vector<OwnedRecord>(v.begin() + static_cast<std::ptrdiff_t>(from),
                                  v.begin() + static_cast<std::ptrdiff_t>(to));
}

TEST_CASE("a reader starts at every kind of starting position", "[shard_reader]") {
  Fixture f;
  // r0..r9, one second apart.
  const std::vector<OwnedRecord> records = f.PutMany(10, "r", absl::Seconds(1));
  f.clock->Advance(absl::Seconds(1));

  SECTION("TRIM_HORIZON") {
    auto reader = f.Reader(StartingPosition::TrimHorizon());
    CHECK(Drain(*reader) == records);
  }
  SECTION("LATEST") {
    auto reader = f.Reader(StartingPosition::Latest());
    CHECK(Drain(*reader).empty());
    const std::vector<OwnedRecord> later = f.PutMany(2, "later");
    CHECK(Drain(*reader) == later);
  }
  SECTION("AT_SEQUENCE_NUMBER") {
    auto reader = f.Reader(StartingPosition::AtSequenceNumber(records[3].sequence_number));
    CHECK(Drain(*reader) == Slice(records, 3, 10));
  }
  SECTION("AFTER_SEQUENCE_NUMBER") {
    auto reader = f.Reader(StartingPosition::AfterSequenceNumber(records[3].sequence_number));
    CHECK(Drain(*reader) == Slice(records, 4, 10));
  }
  SECTION("AT_TIMESTAMP") {
    auto reader = f.Reader(StartingPosition::AtTimestamp(records[5].approximate_arrival_timestamp));
    CHECK(Drain(*reader) == Slice(records, 5, 10));
    auto before_all = f.Reader(StartingPosition::AtTimestamp(absl::UnixEpoch()));
    CHECK(Drain(*before_all) == records);
  }
}

TEST_CASE("Create rejects bad options, positions and shards", "[shard_reader]") {
  Fixture f;
  const OwnedRecord r = f.Put("x");
  auto code = [&](StartingPosition position, ShardReaderOptions options = {},
                  ShardId shard = ShardId(0)) {
    return GetErrorCode(ShardReader::Create(*f.stream, shard, position, options).status());
  };
  CHECK(code(StartingPosition::TrimHorizon(), Options(0)) == ErrorCode::kInvalidArgument);
  CHECK(code(StartingPosition::TrimHorizon(), Options(10001)) == ErrorCode::kInvalidArgument);
  CHECK(code(StartingPosition::TrimHorizon(), Options(10000)) == ErrorCode::kOk);
  InMemoryCheckpointStore store;
  auto stored_code = [&](ShardReaderOptions options) {
    return GetErrorCode(
        ShardReader::Create(*f.stream, ShardId(0), StartingPosition::TrimHorizon(), store, options)
            .status());
  };
  CHECK(stored_code(Application("")) == ErrorCode::kInvalidArgument);
  CHECK(stored_code(Application("a/b")) == ErrorCode::kInvalidArgument);
  CHECK(stored_code(Application("billing")) == ErrorCode::kOk);
  // Without a store the application is ignored.
  CHECK(code(StartingPosition::TrimHorizon(), Application("a/b")) == ErrorCode::kOk);
  CHECK(code(StartingPosition::TrimHorizon(), {}, ShardId(7)) == ErrorCode::kResourceNotFound);
  CHECK(code(StartingPosition::AtTimestamp(f.clock->Now() + absl::Seconds(1))) ==
        ErrorCode::kInvalidArgument);
  CHECK(code(StartingPosition::AtSequenceNumber("12x")) == ErrorCode::kInvalidArgument);
  CHECK(code(StartingPosition::AtSequenceNumber(r.sequence_number)) == ErrorCode::kOk);
}

TEST_CASE("a reader pages through many batches in order", "[shard_reader]") {
  Fixture f;
  const std::vector<OwnedRecord> records = f.PutMany(100);
  auto reader = f.Reader(StartingPosition::TrimHorizon(), Options(7));
  const int64_t calls_before = f.GetRecordsCalls();
  std::vector<OwnedRecord> got;
  for (int i = 0; i < 100; ++i) {
    auto next = reader->Next();
    REQUIRE(next.ok());
    REQUIRE(next->has_value());
    got.push_back((*next)->ToOwned());
    CHECK(reader->last_delivered() == records[i].sequence_number);
  }
  CHECK(got == records);
  // ceil(100 / 7) = 15 batches so far; the next call finds nothing (one more GetRecords).
  CHECK(f.GetRecordsCalls() - calls_before == 15);
  auto end = reader->Next();
  REQUIRE(end.ok());
  CHECK_FALSE(end->has_value());
  CHECK(f.GetRecordsCalls() - calls_before == 16);
  CHECK_FALSE(reader->at_shard_end());
}

TEST_CASE("a caught-up reader returns nullopt, then the records put since", "[shard_reader]") {
  Fixture f;
  const std::vector<OwnedRecord> first = f.PutMany(3, "a");
  auto reader = f.Reader(StartingPosition::TrimHorizon());
  CHECK_FALSE(reader->last_delivered().has_value());
  CHECK(Drain(*reader) == first);
  for (int i = 0; i < 3; ++i) {
    auto next = reader->Next();
    REQUIRE(next.ok());
    CHECK_FALSE(next->has_value());
    CHECK(reader->status().ok());
  }
  CHECK(reader->last_delivered() == first.back().sequence_number);
  CHECK_FALSE(reader->at_shard_end());
  CHECK(reader->child_shards().empty());
  const std::vector<OwnedRecord> second = f.PutMany(4, "b");
  CHECK(Drain(*reader) == second);
  CHECK(reader->last_delivered() == second.back().sequence_number);
}

TEST_CASE("millis_behind_latest reports the latest batch's lag", "[shard_reader]") {
  Fixture f;
  f.PutMany(10, "r", absl::Seconds(1));  // arrivals T+1s .. T+10s
  f.clock->Advance(absl::Seconds(1));    // now T+11s
  auto reader = f.Reader(StartingPosition::TrimHorizon(), Options(4));
  CHECK(reader->millis_behind_latest() == 0);
  REQUIRE(reader->Next().ok());
  CHECK(reader->millis_behind_latest() == 6000);  // r4, the first not returned, arrived at T+5s
  Drain(*reader);
  CHECK(reader->millis_behind_latest() == 0);
}

TEST_CASE("a closed shard is read to its end, then names its children", "[shard_reader]") {
  Fixture f;
  const std::vector<OwnedRecord> parent = f.PutMany(5, "p");
  REQUIRE(f.stream->SplitShard(ShardId(0), HashKey(kHalf)).ok());
  f.Put("child-low", HashKey(1));
  f.Put("child-high", HashKey(kHalf + 1));
  const std::vector<ChildShard> expected = {
      {ShardId(1), {ShardId(0)}, {HashKey(0), HashKey(kHalf - 1)}},
      {ShardId(2), {ShardId(0)}, {HashKey(kHalf), HashKey::Max()}},
  };
  auto check_children = [&](const std::vector<ChildShard>& children) {
    REQUIRE(children.size() == 2);
    for (size_t i = 0; i < 2; ++i) {
      CHECK(children[i].shard_id == expected[i].shard_id);
      CHECK(children[i].parent_shards == expected[i].parent_shards);
      CHECK(children[i].hash_key_range == expected[i].hash_key_range);
    }
  };
  const int batch_size = GENERATE(2, 5, 1000);
  INFO("batch size " << batch_size);
  auto reader = f.Reader(StartingPosition::TrimHorizon(), Options(batch_size));
  for (const OwnedRecord& r : parent) {
    auto next = reader->Next();
    REQUIRE(next.ok());
    REQUIRE(next->has_value());
    CHECK((*next)->ToOwned() == r);
    // Not at the end while records remain to be delivered, even if the last batch is in hand.
    CHECK_FALSE(reader->at_shard_end());
    CHECK(reader->child_shards().empty());
  }
  for (int i = 0; i < 2; ++i) {
    auto end = reader->Next();
    REQUIRE(end.ok());
    CHECK_FALSE(end->has_value());
    CHECK(reader->at_shard_end());
    check_children(reader->child_shards());
  }
  // The children hold what was put after the split.
  auto low = f.Reader(StartingPosition::TrimHorizon(), {}, ShardId(1));
  CHECK(Data(Drain(*low)) == std::vector<std::string>{"child-low"});
}

TEST_CASE("an expired iterator is renewed transparently", "[shard_reader]") {
  Fixture f;
  SECTION("after delivering: resumes after the last delivered record") {
    const std::vector<OwnedRecord> records = f.PutMany(5);
    auto reader = f.Reader(StartingPosition::TrimHorizon(), Options(2));
    std::vector<OwnedRecord> got;
    for (int i = 0; i < 2; ++i) got.push_back((*reader->Next())->ToOwned());
    f.clock->Advance(absl::Minutes(6));
    for (int i = 0; i < 2; ++i) got.push_back((*reader->Next())->ToOwned());
    f.clock->Advance(absl::Minutes(6));
    const std::vector<OwnedRecord> rest = Drain(*reader);
    got.insert(got.end(), rest.begin(), rest.end());
    CHECK(got == records);
    CHECK(reader->status().ok());
  }
  SECTION("caught up, then records arrive while the iterator expires") {
    const std::vector<OwnedRecord> first = f.PutMany(2, "a");
    auto reader = f.Reader(StartingPosition::TrimHorizon());
    CHECK(Drain(*reader) == first);
    f.clock->Advance(absl::Minutes(3));
    const std::vector<OwnedRecord> second = f.PutMany(2, "b");
    f.clock->Advance(absl::Minutes(3));
    CHECK(Drain(*reader) == second);
  }
  SECTION("before delivering anything: restarts at the starting position") {
    const std::vector<OwnedRecord> records = f.PutMany(4);
    auto at = f.Reader(StartingPosition::AtSequenceNumber(records[1].sequence_number));
    auto horizon = f.Reader(StartingPosition::TrimHorizon());
    f.clock->Advance(absl::Minutes(6));
    CHECK(Drain(*at) == Slice(records, 1, 4));
    CHECK(Drain(*horizon) == records);
  }
  SECTION("a LATEST reader that has delivered nothing loses nothing") {
    f.PutMany(3, "old");
    f.clock->Advance(absl::Seconds(1));
    auto reader = f.Reader(StartingPosition::Latest());
    CHECK(Drain(*reader).empty());
    f.clock->Advance(absl::Minutes(2));
    const std::vector<OwnedRecord> fresh = f.PutMany(2, "new");
    f.clock->Advance(absl::Minutes(4));
    CHECK(Drain(*reader) == fresh);
  }
  SECTION("documented: LATEST renewal also returns records of its starting microsecond") {
    // The old records arrived in the very microsecond the reader started (a simulated clock that
    // stood still); the renewed iterator is AT_TIMESTAMP of that time, so they come too.
    const std::vector<OwnedRecord> old = f.PutMany(3, "old");
    auto reader = f.Reader(StartingPosition::Latest());
    f.clock->Advance(absl::Minutes(6));
    const std::vector<OwnedRecord> fresh = f.PutMany(1, "new");
    std::vector<OwnedRecord> expected = old;
    expected.push_back(fresh[0]);
    CHECK(Drain(*reader) == expected);
  }
  // The premise: an iterator this old is refused by the stream.
  auto it = f.stream->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  f.clock->Advance(absl::Minutes(6));
  CHECK(GetErrorCode(f.stream->GetRecords(*it).status()) == ErrorCode::kExpiredIterator);
}

TEST_CASE("checkpoints follow the KCL rule", "[shard_reader][checkpoint]") {
  Fixture f(2);
  // Shard 0 owns hash keys [0, 2^127 - 1].
  const std::vector<OwnedRecord> records = f.PutMany(5);
  const OwnedRecord foreign = f.Put("foreign", HashKey::Max());
  REQUIRE(f.put[1].size() == 1);
  auto reader = f.Reader(StartingPosition::TrimHorizon(), Options(2));
  auto seq = [&](int i) { return records[i].sequence_number; };

  // Nothing delivered: nothing to checkpoint.
  CHECK(reader->Checkpoint().ok());
  CHECK_FALSE(reader->last_checkpoint().has_value());
  CHECK(GetErrorCode(reader->Checkpoint(seq(0))) == ErrorCode::kInvalidArgument);

  for (int i = 0; i < 4; ++i) REQUIRE(reader->Next()->has_value());  // delivered r0..r3
  REQUIRE(reader->Checkpoint(seq(2)).ok());
  CHECK(reader->last_checkpoint() == seq(2));
  CHECK(GetErrorCode(reader->Checkpoint(seq(1))) == ErrorCode::kInvalidArgument);  // below
  CHECK(GetErrorCode(reader->Checkpoint(seq(4))) == ErrorCode::kInvalidArgument);  // above
  CHECK(GetErrorCode(reader->Checkpoint(foreign.sequence_number)) ==
        ErrorCode::kInvalidArgument);  // another shard's
  CHECK(GetErrorCode(reader->Checkpoint(SequenceNumber())) == ErrorCode::kInvalidArgument);
  CHECK(reader->last_checkpoint() == seq(2));
  CHECK(reader->Checkpoint(seq(2)).ok());  // the same again: allowed
  CHECK(reader->Checkpoint(seq(3)).ok());  // the last delivered: allowed
  CHECK(reader->last_checkpoint() == seq(3));
  CHECK(reader->Checkpoint().ok());  // nothing new delivered
  CHECK(reader->last_checkpoint() == seq(3));

  REQUIRE(reader->Next()->has_value());  // r4
  CHECK(reader->Checkpoint().ok());
  CHECK(reader->last_checkpoint() == seq(4));
  CHECK_FALSE(reader->shard_end_checkpointed());
  // An open shard never reaches SHARD_END.
  CHECK_FALSE(reader->Next()->has_value());
  CHECK(reader->Checkpoint().ok());
  CHECK_FALSE(reader->shard_end_checkpointed());
}

TEST_CASE("checkpoints are stored and a new reader resumes after them",
          "[shard_reader][checkpoint]") {
  Fixture f;
  const std::vector<OwnedRecord> records = f.PutMany(10);
  const std::string kind = GENERATE(std::string("memory"), std::string("file"));
  INFO(kind << " store");
  std::unique_ptr<CheckpointStore> store;
  const fs::path dir = fs::temp_directory_path() / ("rill-reader-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  if (kind == "memory") {
    store = std::make_unique<InMemoryCheckpointStore>();
  } else {
    auto opened = FileCheckpointStore::Open(dir.string());
    REQUIRE(opened.ok());
    store = std::move(*opened);
  }
  const ShardReaderOptions options = Options(3, "billing");
  const std::string key = "shardId-000000000000";

  {
    auto reader = f.Reader(StartingPosition::TrimHorizon(), *store, options);
    CHECK(reader->starting_position().type == ShardIteratorType::kTrimHorizon);
    for (int i = 0; i < 6; ++i) REQUIRE(reader->Next()->has_value());
    REQUIRE(reader->Checkpoint().ok());  // creates the row
    auto lease = store->GetLease("billing", key);
    REQUIRE(lease.ok());
    REQUIRE(lease->has_value());
    CHECK((*lease)->checkpoint == records[5].sequence_number.ToString());
    CHECK((*lease)->counter == 0);
    CHECK((*lease)->owner.empty());
    CHECK((*lease)->parent_shard_ids.empty());
    for (int i = 0; i < 2; ++i) REQUIRE(reader->Next()->has_value());  // r6, r7: not checkpointed
  }
  {
    // The position given is ignored: the reader resumes after r5 and redelivers r6 and r7.
    auto reader = f.Reader(StartingPosition::Latest(), *store, options);
    CHECK(reader->starting_position().type == ShardIteratorType::kAfterSequenceNumber);
    CHECK(reader->last_checkpoint() == records[5].sequence_number);
    CHECK_FALSE(reader->last_delivered().has_value());
    // Before any delivery, the checkpoint itself is the largest permitted.
    CHECK(reader->Checkpoint(records[5].sequence_number).ok());
    CHECK(GetErrorCode(reader->Checkpoint(records[6].sequence_number)) ==
          ErrorCode::kInvalidArgument);
    CHECK(Drain(*reader) == Slice(records, 6, 10));
    REQUIRE(reader->Checkpoint(records[8].sequence_number).ok());  // an update of the row
    auto lease = store->GetLease("billing", key);
    CHECK((*lease)->checkpoint == records[8].sequence_number.ToString());
    CHECK((*lease)->counter == 1);
  }
  SECTION("resume_from_checkpoint = false starts at the given position") {
    ShardReaderOptions fresh = options;
    fresh.resume_from_checkpoint = false;
    auto reader =
        f.Reader(StartingPosition::AtSequenceNumber(records[2].sequence_number), *store, fresh);
    CHECK_FALSE(reader->last_checkpoint().has_value());
    CHECK(Drain(*reader) == Slice(records, 2, 10));
    // Its first checkpoint overwrites the stored one, even below it.
    REQUIRE(reader->Checkpoint(records[3].sequence_number).ok());
    CHECK((*store->GetLease("billing", key))->checkpoint == records[3].sequence_number.ToString());
  }
  SECTION("a sentinel checkpoint means: start at the given position") {
    for (std::string_view sentinel :
         {kCheckpointTrimHorizon, kCheckpointLatest, kCheckpointAtTimestamp, std::string_view()}) {
      INFO("sentinel '" << sentinel << "'");
      Lease lease = **store->GetLease("billing", key);
      const int64_t expected = lease.counter;
      lease.counter = expected + 1;
      lease.checkpoint = std::string(sentinel);
      REQUIRE(store->UpdateLease("billing", lease, expected).ok());
      auto reader =
          f.Reader(StartingPosition::AtSequenceNumber(records[7].sequence_number), *store, options);
      CHECK_FALSE(reader->last_checkpoint().has_value());
      CHECK(Drain(*reader) == Slice(records, 7, 10));
    }
  }
  SECTION("a checkpoint that is not a sequence number is an error") {
    Lease lease = **store->GetLease("billing", key);
    lease.checkpoint = "garbage";
    lease.counter = 2;
    REQUIRE(store->UpdateLease("billing", lease, 1).ok());
    auto reader = ShardReader::Create(*f.stream, ShardId(0), StartingPosition::TrimHorizon(),
                                      *store, options);
    CHECK(GetErrorCode(reader.status()) == ErrorCode::kInternalFailure);
    CHECK_THAT(std::string(reader.status().message()), Catch::Contains("'garbage'"));
  }
  fs::remove_all(dir);
}

TEST_CASE("SHARD_END is checkpointed at a closed shard's end and resumed from",
          "[shard_reader][checkpoint]") {
  Fixture f;
  const std::vector<OwnedRecord> parent = f.PutMany(3, "p");
  REQUIRE(f.stream->SplitShard(ShardId(0), HashKey(kHalf)).ok());
  InMemoryCheckpointStore store;
  const ShardReaderOptions options = Application("app");
  {
    auto reader = f.Reader(StartingPosition::TrimHorizon(), store, options);
    CHECK(Drain(*reader) == parent);
    REQUIRE(reader->at_shard_end());
    REQUIRE(reader->Checkpoint().ok());
    CHECK(reader->shard_end_checkpointed());
    CHECK(reader->last_checkpoint() == std::nullopt);  // SHARD_END is not a sequence number
    CHECK((*store.GetLease("app", "shardId-000000000000"))->checkpoint == "SHARD_END");
    CHECK(GetErrorCode(reader->Checkpoint(parent[2].sequence_number)) ==
          ErrorCode::kInvalidArgument);
    CHECK(reader->Checkpoint().ok());  // again: nothing to do
  }
  auto resumed = f.Reader(StartingPosition::TrimHorizon(), store, options);
  CHECK(resumed->shard_end_checkpointed());
  auto next = resumed->Next();
  REQUIRE(next.ok());
  CHECK_FALSE(next->has_value());
  CHECK(resumed->at_shard_end());
  CHECK(resumed->child_shards().size() == 2);

  // A child's lease row, created by its reader, names its parent.
  auto child = f.Reader(StartingPosition::TrimHorizon(), store, options, ShardId(2));
  f.Put("c", HashKey::Max());
  REQUIRE(child->Next()->has_value());
  REQUIRE(child->Checkpoint().ok());
  CHECK((*store.GetLease("app", "shardId-000000000002"))->parent_shard_ids ==
        std::vector<std::string>{"shardId-000000000000"});
}

// A store that lets an intruder write the row just before each of the next `intrusions` updates,
// or fails updates outright: what a reader's checkpoint must survive.
class MeddlingStore : public CheckpointStore {
 public:
  InMemoryCheckpointStore inner;
  int intrusions = 0;
  bool fail_updates = false;

  absl::StatusOr<std::vector<Lease>> ListLeases(std::string_view application) override {
    return inner.ListLeases(application);
  }
  absl::StatusOr<std::optional<Lease>> GetLease(std::string_view application,
                                                std::string_view lease_key) override {
    return inner.GetLease(application, lease_key);
  }
  absl::StatusOr<bool> CreateLeaseIfAbsent(std::string_view application,
                                           const Lease& lease) override {
    return inner.CreateLeaseIfAbsent(application, lease);
  }
  absl::Status UpdateLease(std::string_view application, const Lease& lease,
                           int64_t expected_counter) override {
    if (fail_updates) return InternalFailureError("disk on fire");
    if (intrusions > 0) {
      --intrusions;
      Lease theirs = **inner.GetLease(application, lease.lease_key);
      theirs.owner = "intruder";
      theirs.counter += 1;
      REQUIRE(inner.UpdateLease(application, theirs, theirs.counter - 1).ok());
    }
    return inner.UpdateLease(application, lease, expected_counter);
  }
  absl::Status DeleteLease(std::string_view application, std::string_view lease_key,
                           int64_t expected_counter) override {
    return inner.DeleteLease(application, lease_key, expected_counter);
  }
};

TEST_CASE("a checkpoint retries conditional writes that lose a race, and keeps state on errors",
          "[shard_reader][checkpoint]") {
  Fixture f;
  const std::vector<OwnedRecord> records = f.PutMany(4);
  MeddlingStore store;
  auto reader = f.Reader(StartingPosition::TrimHorizon(), store, Application("app"));
  const std::string key = "shardId-000000000000";
  REQUIRE(reader->Next()->has_value());
  REQUIRE(reader->Checkpoint().ok());  // creates the row, counter 0

  REQUIRE(reader->Next()->has_value());
  store.intrusions = 3;
  REQUIRE(reader->Checkpoint().ok());
  Lease row = **store.GetLease("app", key);
  CHECK(row.checkpoint == records[1].sequence_number.ToString());
  CHECK(row.owner == "intruder");  // the reader changes the checkpoint field only
  CHECK(row.counter == 4);         // 3 intrusions and the reader's write

  REQUIRE(reader->Next()->has_value());
  store.intrusions = 1000;  // the row never holds still: the reader gives up
  CHECK(GetErrorCode(reader->Checkpoint()) == ErrorCode::kResourceInUse);
  CHECK(reader->last_checkpoint() == records[1].sequence_number);
  store.intrusions = 0;

  store.fail_updates = true;
  absl::Status failed = reader->Checkpoint();
  CHECK(GetErrorCode(failed) == ErrorCode::kInternalFailure);
  CHECK(reader->last_checkpoint() == records[1].sequence_number);
  store.fail_updates = false;
  REQUIRE(reader->Checkpoint().ok());
  CHECK(reader->last_checkpoint() == records[2].sequence_number);
  CHECK((*store.GetLease("app", key))->checkpoint == records[2].sequence_number.ToString());
}

TEST_CASE("range-for reads the records available now, errors end the loop",
          "[shard_reader][range]") {
  ShardLimits limits;
  limits.read_calls_per_second = 1;
  Fixture f(1, limits);
  const std::vector<OwnedRecord> records = f.PutMany(10);
  auto reader = f.Reader(StartingPosition::TrimHorizon(), Options(4));
  std::vector<OwnedRecord> got;
  for (const RecordView& r : *reader) got.push_back(r.ToOwned());
  // One GetRecords call allowed this second: 4 records, then the second call is throttled.
  CHECK(got == Slice(records, 0, 4));
  CHECK(GetErrorCode(reader->status()) == ErrorCode::kProvisionedThroughputExceeded);
  f.clock->Advance(absl::Seconds(1));
  for (const RecordView& r : *reader) got.push_back(r.ToOwned());
  CHECK(got == Slice(records, 0, 8));
  f.clock->Advance(absl::Seconds(1));
  for (const RecordView& r : *reader) got.push_back(r.ToOwned());
  CHECK(got == records);
  CHECK(GetErrorCode(reader->status()) == ErrorCode::kProvisionedThroughputExceeded);
  f.clock->Advance(absl::Seconds(1));
  int more = 0;
  for (const RecordView& r : *reader) more += static_cast<int>(r.data().size());
  CHECK(more == 0);  // caught up: the loop ends at nullopt, without an error
  CHECK(reader->status().ok());
  f.clock->Advance(absl::Seconds(1));
  const std::vector<OwnedRecord> later = f.PutMany(2, "later");
  std::vector<std::string> keys;
  for (auto it = reader->begin(); it != reader->end(); ++it) {
    keys.emplace_back(it->partition_key());
  }
  CHECK(keys == std::vector<std::string>{"later0", "later1"});
  CHECK(reader->last_delivered() == later[1].sequence_number);
}

// The range-for iterator is a C++20 input iterator with std::default_sentinel as its end.
static_assert(std::input_iterator<ShardReader::Iterator>);
static_assert(std::sentinel_for<std::default_sentinel_t, ShardReader::Iterator>);

TEST_CASE("record views are zero-copy and valid until the next Next()", "[shard_reader][view]") {
  Fixture f;
  const std::vector<OwnedRecord> records = f.PutMany(3, "v", absl::Seconds(1));
  auto reader = f.Reader(StartingPosition::TrimHorizon());
  auto first = reader->Next();
  REQUIRE(first.ok());
  REQUIRE(first->has_value());
  const RecordView view = **first;
  CHECK(view.valid());
  CHECK(view.partition_key() == "v0");
  CHECK(view.data() == "v0");
  CHECK(view.sequence_number() == records[0].sequence_number);
  CHECK(view.approximate_arrival_timestamp() == records[0].approximate_arrival_timestamp);
  CHECK(view.record().data.data() == view.data().data());  // the same bytes, not a copy
  const OwnedRecord owned = view.ToOwned();
  CHECK(owned == records[0]);
  CHECK(owned.data.data() != view.data().data());
  const RecordView copy = view;
  CHECK(copy.valid());

  auto second = reader->Next();
  REQUIRE(second->has_value());
  CHECK_FALSE(view.valid());
  CHECK_FALSE(copy.valid());
  CHECK((*second)->valid());
  CHECK((*second)->data() == "v1");
  auto third = reader->Next();
  REQUIRE(third->has_value());
  const RecordView last = **third;
  CHECK(last.data() == "v2");
  auto none = reader->Next();  // a call that returns nothing moves on too
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  CHECK_FALSE(last.valid());

  auto again = f.Reader(StartingPosition::TrimHorizon());
  const RecordView orphan = **again->Next();
  CHECK(orphan.valid());
  again.reset();
  CHECK_FALSE(orphan.valid());  // the reader is gone; the check itself is still safe
  CHECK(owned == records[0]);   // owned copies live on

  // A new reader may reuse the generation counter; an old view stays invalid.
  auto other = f.Reader(StartingPosition::TrimHorizon());
  REQUIRE(other->Next()->has_value());
  CHECK_FALSE(orphan.valid());
}

#ifndef NDEBUG
TEST_CASE("debug builds abort when a stale record view is read", "[shard_reader][view]") {
  Fixture f;
  f.PutMany(2);
  auto reader = f.Reader(StartingPosition::TrimHorizon());
  const RecordView view = **reader->Next();
  REQUIRE(reader->Next()->has_value());
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child reads the stale view: it must die with SIGABRT before touching the record.
    const std::string_view data = view.data();
    std::_Exit(static_cast<int>(data.size()));
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
}
#endif

}  // namespace
}  // namespace rill
