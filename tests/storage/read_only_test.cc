// StorageOptions::read_only: a durable stream opened to be looked at while another owner may hold
// it. What it shows (every acknowledged record, from the segments and from the journal, with its
// sequence number), what it refuses (every change, kAccessDenied), and that it leaves every file of
// the directory exactly as it found it, damage included.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rill/base/error.h"
#include "rill/metrics/metrics.h"
#include "rill/stream/stream.h"
#include "storage/file_util.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// Every file under `dir` with its bytes: what "nothing was written" is checked against.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    absl::StatusOr<std::string> bytes = internal::ReadFile(entry.path().string());
    REQUIRE(bytes.ok());
    files[fs::relative(entry.path(), dir).string()] = *bytes;
  }
  return files;
}

struct Seen {
  std::string sequence;
  std::string key;
  std::string data;
  friend bool operator==(const Seen&, const Seen&) = default;
};

std::map<std::string, std::vector<Seen>> ReadAll(const Stream& s) {
  std::map<std::string, std::vector<Seen>> out;
  for (const ShardDescription& d : s.ListShards()) {
    auto it = s.GetShardIterator(d.shard_id, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    std::optional<ShardIterator> next = *it;
    while (next) {
      auto batch = s.GetRecords(*next);
      REQUIRE(batch.ok());
      for (const Record& r : batch->records) {
        out[d.shard_id.ToString()].push_back(
            Seen{r.sequence_number.ToString(), std::string(r.partition_key), std::string(r.data)});
      }
      next = batch->next_shard_iterator;
      if (batch->records.empty() && batch->millis_behind_latest == 0) break;
    }
  }
  return out;
}

StreamOptions ReadOnly(const std::string& dir, std::shared_ptr<Clock> clock) {
  StreamOptions o;
  o.clock = std::move(clock);
  o.storage = StorageOptions{};
  o.storage->directory = dir;
  o.storage->read_only = true;
  return o;  // no name: whatever the directory holds
}

TEST_CASE("a read-only open of a held stream sees every acknowledged record and writes nothing",
          "[durable][read_only]") {
  auto clock = std::make_shared<SimulatedClock>();
  TempDir dir("read_only", TempDir::kAbsent);
  StreamOptions o =
      testing::DurableStreamOptions(dir.path(), clock, 2, FsyncPolicy::kEveryBatch, "telemetry");
  o.storage->background_flush = false;  // records put after Flush stay in the journal only
  auto writer = Stream::Create(o);
  REQUIRE(writer.ok());
  std::map<std::string, std::vector<Seen>> expected;
  const auto put = [&](int i) {
    const std::string key = absl::StrCat("device-", i % 7);
    const std::string data = absl::StrCat("reading ", i);
    auto p = (*writer)->PutRecord(key, data);
    REQUIRE(p.ok());
    expected[p->shard_id.ToString()].push_back(Seen{p->sequence_number.ToString(), key, data});
  };
  for (int i = 0; i < 40; ++i) put(i);
  REQUIRE((*writer)->Flush().ok());      // these are in the segments
  for (int i = 40; i < 55; ++i) put(i);  // and these only in the journal
  REQUIRE(!expected.empty());

  const std::map<std::string, std::string> before = Snapshot(dir.path());
  {
    // The writer still holds the directory: a normal open is refused, a read-only one is not.
    auto locked = Stream::Open(
        testing::DurableStreamOptions(dir.path(), clock, 2, FsyncPolicy::kEveryBatch, "telemetry"));
    CHECK(GetErrorCode(locked.status()) == ErrorCode::kResourceInUse);

    auto reader = Stream::Open(ReadOnly(dir.path(), clock));
    REQUIRE(reader.ok());
    CHECK((*reader)->name() == "telemetry");
    CHECK((*reader)->recovery_status().ok());
    CHECK((*reader)->recovered_records() == 55);
    CHECK(ReadAll(**reader) == expected);
    CHECK((*reader)->DescribeStreamSummary().open_shard_count == 2);

    // Every change is refused, and names the operation.
    const auto denied = [](const absl::Status& s, const std::string& op) {
      CHECK(GetErrorCode(s) == ErrorCode::kAccessDenied);
      CHECK_THAT(std::string(s.message()), Catch::Contains(op));
    };
    denied((*reader)->PutRecord("k", "v").status(), "PutRecord");
    PutRecordsEntry entry;
    entry.partition_key = "k";
    entry.data = "v";
    denied((*reader)->PutRecords({entry}).status(), "PutRecords");
    denied((*reader)->SplitShard(ShardId(0), HashKey(1)), "SplitShard");
    denied((*reader)->MergeShards(ShardId(0), ShardId(1)), "MergeShards");
    denied((*reader)->UpdateShardCount(4), "UpdateShardCount");
    denied((*reader)->UpdateStreamMode(CapacityMode::kOnDemand), "UpdateStreamMode");
    denied((*reader)->RegisterStreamConsumer("c").status(), "RegisterStreamConsumer");
    denied((*reader)->IncreaseStreamRetentionPeriod(absl::Hours(48)),
           "IncreaseStreamRetentionPeriod");
    denied((*reader)->Flush(), "Flush");
    // Time passing does not make it write either (no group commit, no retention on disk).
    clock->Advance(absl::Hours(1));
    (*reader)->Tick();
  }
  CHECK(Snapshot(dir.path()) == before);

  // The writer goes on, unaffected, and a later read-only open sees its new records.
  put(55);
  auto again = Stream::Open(ReadOnly(dir.path(), clock));
  REQUIRE(again.ok());
  CHECK(ReadAll(**again) == expected);
}

TEST_CASE("read-only opens refuse what is not a stream", "[durable][read_only]") {
  auto clock = std::make_shared<SimulatedClock>();
  TempDir dir("read_only_errors", TempDir::kAbsent);
  auto missing = Stream::Open(ReadOnly(dir.path() + "/nothing", clock));
  CHECK(GetErrorCode(missing.status()) == ErrorCode::kResourceNotFound);
  CHECK(!fs::exists(dir.path() + "/nothing"));  // not created

  fs::create_directories(dir.path() + "/empty");
  auto empty = Stream::Open(ReadOnly(dir.path() + "/empty", clock));
  CHECK(GetErrorCode(empty.status()) == ErrorCode::kResourceNotFound);
  CHECK(fs::is_empty(dir.path() + "/empty"));

  // A name-less normal open of an empty directory has nothing to open either.
  StreamOptions any = ReadOnly(dir.path() + "/empty", clock);
  any.storage->read_only = false;
  CHECK(GetErrorCode(Stream::Open(any).status()) == ErrorCode::kResourceNotFound);

  StreamOptions create =
      testing::DurableStreamOptions(dir.path() + "/new", clock, 1, FsyncPolicy::kInterval, "s");
  create.storage->read_only = true;
  CHECK(GetErrorCode(Stream::Create(create).status()) == ErrorCode::kInvalidArgument);
}

TEST_CASE("a read-only open reports damage and leaves the damaged segment in place",
          "[durable][read_only][recovery]") {
  auto clock = std::make_shared<SimulatedClock>();
  TempDir dir("read_only_damage", TempDir::kAbsent);
  StreamOptions o =
      testing::DurableStreamOptions(dir.path(), clock, 1, FsyncPolicy::kEveryBatch, "s");
  o.storage->background_flush = false;
  o.storage->compression_level = 0;
  {
    auto s = Stream::Create(o);
    REQUIRE(s.ok());
    for (int i = 0; i < 3; ++i) {
      REQUIRE((*s)->PutRecord("k", absl::StrCat("record-", i)).ok());
      REQUIRE((*s)->Flush().ok());  // one frame each
    }
  }
  std::string segment;
  for (const auto& e : fs::directory_iterator(dir.path() + "/shard-0")) segment = e.path();
  REQUIRE(!segment.empty());
  std::string bytes = *internal::ReadFile(segment);
  const size_t at = bytes.rfind("record-1");
  REQUIRE(at != std::string::npos);
  bytes[at] ^= 0x01;  // the second frame's payload: its CRC no longer matches
  {
    std::ofstream out(segment, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  const std::map<std::string, std::string> before = Snapshot(dir.path());
  {
    auto reader = Stream::Open(ReadOnly(dir.path(), clock));
    REQUIRE(reader.ok());
    const absl::Status damage = (*reader)->recovery_status();
    CHECK(GetErrorCode(damage) == ErrorCode::kInternalFailure);
    CHECK_THAT(std::string(damage.message()), Catch::Contains("shardId-000000000000"));
    CHECK_THAT(std::string(damage.message()), Catch::Contains(segment));
    CHECK((*reader)->recovered_records() == 1);
  }
  CHECK(Snapshot(dir.path()) == before);  // not renamed to .damaged, not truncated
}

TEST_CASE("the owner of a durable stream publishes its metrics in METRICS", "[durable][metrics]") {
  auto clock = std::make_shared<SimulatedClock>();
  TempDir dir("metrics_file", TempDir::kAbsent);
  StreamOptions o =
      testing::DurableStreamOptions(dir.path(), clock, 2, FsyncPolicy::kInterval, "scores");
  o.storage->background_flush = false;  // written at Flush and close only: deterministic
  const std::string path = dir.path() + "/METRICS";
  {
    auto s = Stream::Create(o);
    REQUIRE(s.ok());
    CHECK(!fs::exists(path));
    for (int i = 0; i < 10; ++i) REQUIRE((*s)->PutRecord(absl::StrCat("p", i), "x").ok());
    REQUIRE((*s)->Flush().ok());
    CHECK(*internal::ReadFile(path) == ToJson((*s)->metrics()) + "\n");
    CHECK_THAT(*internal::ReadFile(path), Catch::Contains("\"IncomingRecords\":10"));
    REQUIRE((*s)->PutRecord("p", "y").ok());
  }
  // Closing writes the last figures.
  CHECK_THAT(*internal::ReadFile(path), Catch::Contains("\"IncomingRecords\":11"));
  CHECK(!fs::exists(path + ".tmp"));
}

}  // namespace
}  // namespace rill
