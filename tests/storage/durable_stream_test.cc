// Golden tests of durable streams (StreamOptions::storage): what Stream::Open recovers, exactly,
// after clean shutdowns, after a process dies without one, and after the files were cut short or
// damaged; the directory lock; resharding, retention, consumers and retention changes across
// reopens; fsync policies and compression.
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <random>
#include <thread>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "rill/base/error.h"
#include "rill/stream/stream.h"
#include "storage/crc32c.h"
#include "storage/file_util.h"
#include "storage/segment.h"
#include "storage/stream_store.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

StreamOptions Durable(const std::string& dir, std::shared_ptr<Clock> clock, int shards = 2,
                      FsyncPolicy fsync = FsyncPolicy::kEveryBatch) {
  return testing::DurableStreamOptions(dir, std::move(clock), shards, fsync, "telemetry");
}

// A record as a reader sees it, owning its bytes.
struct Stored {
  SequenceNumber sequence_number;
  std::string partition_key;
  std::string data;
  absl::Time arrival;

  friend bool operator==(const Stored&, const Stored&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Stored& r) {
    return os << "{" << r.sequence_number << " key=" << r.partition_key.size()
              << "B:" << r.partition_key.substr(0, 16) << " data=" << r.data.size()
              << "B:" << r.data.substr(0, 16) << " at " << absl::FormatTime(r.arrival) << "}";
  }
};

using Contents = std::map<ShardId, std::vector<Stored>>;

// The time a record put now gets: the clock read at microsecond precision.
absl::Time ArrivalNow(const Clock& clock) {
  return absl::FromUnixMicros(absl::ToUnixMicros(clock.Now()));
}

struct ShardRead {
  std::vector<Stored> records;
  // The child shards the final read of a closed shard names.
  std::vector<ChildShard> children;
  bool reached_end = false;  // the read of a closed shard returned no next iterator
};

ShardRead ReadShard(const Stream& s, ShardId shard) {
  ShardRead out;
  auto it = s.GetShardIterator(shard, StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  std::optional<ShardIterator> next = *it;
  while (next) {
    auto batch = s.GetRecords(*next);
    REQUIRE(batch.ok());
    for (const Record& r : batch->records) {
      out.records.push_back(Stored{r.sequence_number, std::string(r.partition_key),
                                   std::string(r.data), r.approximate_arrival_timestamp});
    }
    if (!batch->child_shards.empty()) out.children = batch->child_shards;
    next = batch->next_shard_iterator;
    if (!next) out.reached_end = true;
    if (batch->records.empty() && batch->millis_behind_latest == 0) break;
  }
  return out;
}

// Every readable record of every listed shard, empty shards left out.
Contents ReadAll(const Stream& s) {
  Contents out;
  for (const ShardDescription& d : s.ListShards()) {
    std::vector<Stored> records = ReadShard(s, d.shard_id).records;
    if (!records.empty()) out[d.shard_id] = std::move(records);
  }
  return out;
}

uint64_t Count(const Contents& c) {
  uint64_t n = 0;
  for (const auto& [shard, records] : c) n += records.size();
  return n;
}

// Every field of a shard description, so that two lists compare with a readable difference.
std::string Describe(const ShardDescription& d) {
  return absl::StrFormat("%s [%s, %s] parent=%s adjacent=%s start=%s end=%s", d.shard_id.ToString(),
                         d.hash_key_range.starting_hash_key.ToString(),
                         d.hash_key_range.ending_hash_key.ToString(),
                         d.parent_shard_id ? d.parent_shard_id->ToString() : "-",
                         d.adjacent_parent_shard_id ? d.adjacent_parent_shard_id->ToString() : "-",
                         d.sequence_number_range.starting_sequence_number.ToString(),
                         d.sequence_number_range.ending_sequence_number
                             ? d.sequence_number_range.ending_sequence_number->ToString()
                             : "-");
}

std::vector<std::string> DescribeAll(const std::vector<ShardDescription>& shards) {
  std::vector<std::string> out;
  for (const ShardDescription& d : shards) out.push_back(Describe(d));
  return out;
}

std::string Describe(const ConsumerDescription& c) {
  return absl::StrCat(c.name, " ", c.id, " ", std::string(ConsumerStatusName(c.status)), " ",
                      absl::FormatTime(absl::RFC3339_full, c.creation_time, absl::UTCTimeZone()));
}

std::vector<std::string> DescribeAll(const std::vector<ConsumerDescription>& consumers) {
  std::vector<std::string> out;
  for (const ConsumerDescription& c : consumers) out.push_back(Describe(c));
  return out;
}

// Puts one record, checks that its sequence number is above every earlier one of its shard, and
// adds it to *expected.
PutRecordResult Put(Stream& s, const Clock& clock, const std::string& key, const std::string& data,
                    Contents* expected) {
  const absl::Time arrival = ArrivalNow(clock);
  auto p = s.PutRecord(key, data);
  REQUIRE(p.ok());
  std::vector<Stored>& shard = (*expected)[p->shard_id];
  if (!shard.empty()) CHECK(p->sequence_number > shard.back().sequence_number);
  shard.push_back(Stored{p->sequence_number, key, data, arrival});
  return *p;
}

// Puts a PutRecords batch (every entry must succeed), with the same checks as Put.
void PutBatch(Stream& s, const Clock& clock, const std::vector<PutRecordsEntry>& entries,
              Contents* expected) {
  const absl::Time arrival = ArrivalNow(clock);
  auto result = s.PutRecords(entries);
  REQUIRE(result.ok());
  REQUIRE(result->failed_record_count == 0);
  for (size_t i = 0; i < entries.size(); ++i) {
    const PutRecordsResultEntry& e = result->entries[i];
    std::vector<Stored>& shard = (*expected)[e.shard_id];
    if (!shard.empty()) CHECK(e.sequence_number > shard.back().sequence_number);
    shard.push_back(Stored{e.sequence_number, entries[i].partition_key, entries[i].data, arrival});
  }
}

// The segment files of a shard directory, by name (oldest first).
std::vector<std::string> SegmentFiles(const std::string& shard_dir) {
  std::vector<std::string> names;
  if (!fs::exists(shard_dir)) return names;
  for (const auto& entry : fs::directory_iterator(shard_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.substr(name.size() - 4) == ".seg") names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> FilesEndingWith(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix) {
      names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

uint64_t SizeOfFiles(const std::string& dir, const std::vector<std::string>& names) {
  uint64_t total = 0;
  for (const std::string& name : names) total += fs::file_size(dir + "/" + name);
  return total;
}

std::string ReadBytes(const std::string& path) {
  absl::StatusOr<std::string> bytes = internal::ReadFile(path);
  REQUIRE(bytes.ok());
  return *bytes;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// Runs `child` in a forked process and returns its exit status (-1 if it did not exit): child()'s
// result, or what it passes to _exit. To die as a crash would, with its stream alive, child()
// calls _exit itself: returning destroys its locals first.
template <typename F>
int RunInChild(F child) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(child());
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_CASE("a durable stream reopens with every record and numbers new ones above them",
          "[durable]") {
  TempDir dir("reopen", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  std::vector<PutRecordResult> puts;
  {
    auto s = Stream::Create(Durable(dir.path(), clock));
    REQUIRE(s.ok());
    for (int i = 0; i < 1000; ++i) {
      clock->Advance(absl::Milliseconds(1));
      auto p = (*s)->PutRecord("k" + std::to_string(i % 17), "v" + std::to_string(i));
      REQUIRE(p.ok());
      puts.push_back(*p);
    }
  }
  auto s = Stream::Open(Durable(dir.path(), clock));
  REQUIRE(s.ok());
  CHECK((*s)->recovery_status() == absl::OkStatus());
  CHECK((*s)->recovered_records() == 1000);
  std::vector<std::string> all;
  for (uint32_t shard = 0; shard < 2; ++shard) {
    for (const Stored& r : ReadShard(**s, ShardId(shard)).records) all.push_back(r.data);
  }
  CHECK(all.size() == 1000);
  auto p = (*s)->PutRecord("k0", "after");
  REQUIRE(p.ok());
  for (const auto& old : puts) {
    if (old.shard_id == p->shard_id) CHECK(old.sequence_number < p->sequence_number);
  }
  // Old sequence numbers still name records of this stream.
  auto it = (*s)->GetShardIterator(puts[10].shard_id,
                                   StartingPosition::AtSequenceNumber(puts[10].sequence_number));
  REQUIRE(it.ok());
  auto batch = (*s)->GetRecords(*it, 1);
  REQUIRE(batch.ok());
  REQUIRE(batch->records.size() == 1);
  CHECK(batch->records[0].data == "v10");
  CHECK(batch->records[0].sequence_number == puts[10].sequence_number);
}

TEST_CASE("reopen cycles keep data keys sequence numbers and arrival times exactly", "[durable]") {
  // kEveryBatch writes a frame per call; kInterval's background group commits put many calls'
  // records (with their own arrival times) in one frame.
  const FsyncPolicy policy = GENERATE(FsyncPolicy::kEveryBatch, FsyncPolicy::kInterval);
  INFO("policy " << static_cast<int>(policy));
  TempDir dir("cycles", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  Contents expected;
  absl::Time created;
  for (int cycle = 0; cycle < 5; ++cycle) {
    INFO("cycle " << cycle);
    // On reopen the shard count given is ignored: the stream keeps its 3 shards.
    auto s = cycle == 0 ? Stream::Create(Durable(dir.path(), clock, 3, policy))
                        : Stream::Open(Durable(dir.path(), clock, 1, policy));
    REQUIRE(s.ok());
    CHECK((*s)->recovery_status() == absl::OkStatus());
    CHECK((*s)->recovered_records() == Count(expected));
    CHECK((*s)->ListShards().size() == 3);
    if (cycle == 0) created = (*s)->creation_time();
    CHECK((*s)->creation_time() == created);
    const Contents recovered = ReadAll(**s);
    REQUIRE(recovered.size() == expected.size());
    for (const auto& [shard, records] : expected) {
      INFO(shard.ToString());
      REQUIRE(recovered.count(shard) == 1);
      CHECK(recovered.at(shard) == records);
    }
    if (cycle == 4) break;

    // Single puts: sub-microsecond clock steps, keys of every length, binary and empty data.
    for (int i = 0; i < 60; ++i) {
      clock->Advance(absl::Nanoseconds(1234567));
      const std::string key =
          i % 10 == 9 ? std::string(256, static_cast<char>('a' + i % 26)) : absl::StrCat("k", i);
      std::string data = absl::StrCat(cycle, ":", i);
      if (i % 7 == 0) data = std::string("\0\xff\x01 binary\n", 12) + data;
      if (i == 13) data.clear();
      if (i == 41) data = std::string(100 << 10, static_cast<char>('A' + cycle));
      Put(**s, *clock, key, data, &expected);
    }
    // PutRecords batches: one arrival time per call, request order kept within a shard.
    for (int b = 0; b < 3; ++b) {
      clock->Advance(absl::Microseconds(777));
      std::vector<PutRecordsEntry> entries;
      for (int i = 0; i < 100 + 50 * b; ++i) {
        entries.push_back(PutRecordsEntry{
            absl::StrCat("batch-key-", i % 13), absl::StrCat("c", cycle, "b", b, "#", i), {}});
      }
      PutBatch(**s, *clock, entries, &expected);
    }
  }
}

TEST_CASE("Create Open and their errors on a durable directory", "[durable]") {
  TempDir dir("open-create", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();

  SECTION("Open without storage is kInvalidArgument") {
    StreamOptions o = Durable(dir.path(), clock);
    o.storage.reset();
    auto s = Stream::Open(o);
    REQUIRE_FALSE(s.ok());
    CHECK(GetErrorCode(s.status()) == ErrorCode::kInvalidArgument);
  }

  SECTION("Open on a missing directory creates the stream") {
    REQUIRE_FALSE(fs::exists(dir.path()));
    {
      auto s = Stream::Open(Durable(dir.path(), clock, 3));
      REQUIRE(s.ok());
      CHECK((*s)->ListShards().size() == 3);
      CHECK((*s)->recovered_records() == 0);
      CHECK((*s)->recovery_status() == absl::OkStatus());
      CHECK(fs::exists(dir.path() + "/METADATA"));
      REQUIRE((*s)->PutRecord("k", "v").ok());
    }
    auto s = Stream::Open(Durable(dir.path(), clock, 1));
    REQUIRE(s.ok());
    CHECK((*s)->ListShards().size() == 3);
    CHECK(Count(ReadAll(**s)) == 1);
  }

  SECTION("Open on an empty directory creates the stream") {
    fs::create_directories(dir.path());
    auto s = Stream::Open(Durable(dir.path(), clock, 2));
    REQUIRE(s.ok());
    CHECK((*s)->ListShards().size() == 2);
    CHECK(fs::exists(dir.path() + "/METADATA"));
  }

  SECTION("Create on a directory holding a stream is kResourceInUse") {
    { REQUIRE(Stream::Create(Durable(dir.path(), clock)).ok()); }
    auto s = Stream::Create(Durable(dir.path(), clock));
    REQUIRE_FALSE(s.ok());
    CHECK(GetErrorCode(s.status()) == ErrorCode::kResourceInUse);
    CHECK_THAT(std::string(s.status().message()), Catch::Contains(dir.path()));
    // The stream there is intact.
    CHECK(Stream::Open(Durable(dir.path(), clock)).ok());
  }

  SECTION("Open with another name is kInvalidArgument") {
    { REQUIRE(Stream::Create(Durable(dir.path(), clock)).ok()); }
    StreamOptions o = Durable(dir.path(), clock);
    o.name = "other";
    auto s = Stream::Open(o);
    REQUIRE_FALSE(s.ok());
    CHECK(GetErrorCode(s.status()) == ErrorCode::kInvalidArgument);
    CHECK_THAT(std::string(s.status().message()), Catch::Contains("telemetry"));
    CHECK(Stream::Open(Durable(dir.path(), clock)).ok());
  }
}

TEST_CASE("one open stream per directory: the lock", "[durable]") {
  TempDir dir("lock", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  auto first = Stream::Create(Durable(dir.path(), clock));
  REQUIRE(first.ok());
  REQUIRE((*first)->PutRecord("k", "v").ok());

  auto open = Stream::Open(Durable(dir.path(), clock));
  REQUIRE_FALSE(open.ok());
  CHECK(GetErrorCode(open.status()) == ErrorCode::kResourceInUse);
  CHECK_THAT(std::string(open.status().message()), Catch::Contains(dir.path()));

  auto create = Stream::Create(Durable(dir.path(), clock));
  REQUIRE_FALSE(create.ok());
  CHECK(GetErrorCode(create.status()) == ErrorCode::kResourceInUse);
  CHECK_THAT(std::string(create.status().message()), Catch::Contains(dir.path()));

  // Another process is refused too.
  const int child = RunInChild([&] {
    auto s = Stream::Open(Durable(dir.path(), clock));
    return !s.ok() && GetErrorCode(s.status()) == ErrorCode::kResourceInUse ? 0 : 1;
  });
  CHECK(child == 0);

  // The failed attempts changed nothing; once the first stream is gone the directory opens.
  REQUIRE((*first)->PutRecord("k", "w").ok());
  first->reset();
  auto again = Stream::Open(Durable(dir.path(), clock));
  REQUIRE(again.ok());
  CHECK((*again)->recovery_status() == absl::OkStatus());
  CHECK(Count(ReadAll(**again)) == 2);
}

TEST_CASE("split and merge persist with their lineage", "[durable][resharding]") {
  TempDir dir("reshard", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  Contents expected;
  std::vector<std::string> shards_before;
  auto put_some = [&](Stream& s, const std::string& tag) {
    for (int i = 0; i < 40; ++i) {
      clock->Advance(absl::Microseconds(10));
      Put(s, *clock, absl::StrCat("key-", i), absl::StrCat(tag, "-", i), &expected);
    }
  };
  {
    auto s = Stream::Create(Durable(dir.path(), clock, 2));
    REQUIRE(s.ok());
    put_some(**s, "before");
    const HashKeyRange r0 = (*s)->ListShards()[0].hash_key_range;
    const HashKey middle(r0.starting_hash_key.value() +
                         (r0.ending_hash_key.value() - r0.starting_hash_key.value()) / 2);
    REQUIRE((*s)->SplitShard(ShardId(0), middle).ok());  // children 2 (low) and 3 (high)
    put_some(**s, "split");
    REQUIRE((*s)->MergeShards(ShardId(3), ShardId(1)).ok());  // child 4
    put_some(**s, "merged");
    shards_before = DescribeAll((*s)->ListShards());
  }
  REQUIRE(shards_before.size() == 5);
  // Records went to the parents before and to the children after: shard 0 took records until
  // the split, shard 1 until the merge, 2 since the split, 3 between split and merge, 4 since.
  const std::map<uint32_t, std::set<std::string>> phases = {{0, {"before"}},
                                                            {1, {"before", "split"}},
                                                            {2, {"split", "merged"}},
                                                            {3, {"split"}},
                                                            {4, {"merged"}}};
  for (const auto& [shard, records] : expected) {
    for (const Stored& r : records) {
      INFO(shard.ToString() << " " << r.data);
      CHECK(phases.at(shard.index()).count(r.data.substr(0, r.data.find('-'))) == 1);
    }
  }

  for (int cycle = 0; cycle < 2; ++cycle) {
    INFO("cycle " << cycle);
    auto s = Stream::Open(Durable(dir.path(), clock, 2));
    REQUIRE(s.ok());
    CHECK((*s)->recovery_status() == absl::OkStatus());
    const std::vector<ShardDescription> shards = (*s)->ListShards();
    CHECK(DescribeAll(shards) == shards_before);
    REQUIRE(shards.size() == 5);
    for (const ShardDescription& d : shards) {
      const bool parent =
          d.shard_id.index() == 0 || d.shard_id.index() == 1 || d.shard_id.index() == 3;
      CHECK(d.closed() == parent);
    }
    // Reads of the parents end with their children.
    const std::map<uint32_t, std::vector<uint32_t>> children = {{0, {2, 3}}, {1, {4}}, {3, {4}}};
    for (const auto& [parent, kids] : children) {
      INFO("parent " << parent);
      const ShardRead read = ReadShard(**s, ShardId(parent));
      CHECK(read.reached_end);
      std::vector<uint32_t> got;
      for (const ChildShard& c : read.children) got.push_back(c.shard_id.index());
      CHECK(got == kids);
    }
    CHECK(ReadAll(**s) == expected);
    // New records go to the open children only, numbered above what they hold.
    put_some(**s, "reopened");
    for (const auto& [shard, records] : expected) {
      if (records.back().data.starts_with("reopened")) {
        CHECK((shard.index() == 2 || shard.index() == 4));
      }
    }
    shards_before = DescribeAll((*s)->ListShards());
  }
}

TEST_CASE("UpdateShardCount persists", "[durable][resharding]") {
  TempDir dir("update-count", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  Contents expected;
  auto put_some = [&](Stream& s, int n) {
    for (int i = 0; i < n; ++i) {
      clock->Advance(absl::Microseconds(3));
      Put(s, *clock, absl::StrCat("key-", i), absl::StrCat("r", i), &expected);
    }
  };
  std::vector<std::string> shards_before;
  {
    auto s = Stream::Create(Durable(dir.path(), clock, 2));
    REQUIRE(s.ok());
    put_some(**s, 30);
    REQUIRE((*s)->UpdateShardCount(4).ok());
    put_some(**s, 30);
    shards_before = DescribeAll((*s)->ListShards());
  }
  for (int target : {3, 6}) {
    INFO("target " << target);
    auto s = Stream::Open(Durable(dir.path(), clock));
    REQUIRE(s.ok());
    CHECK((*s)->recovery_status() == absl::OkStatus());
    CHECK(DescribeAll((*s)->ListShards()) == shards_before);
    CHECK(ReadAll(**s) == expected);
    put_some(**s, 20);
    {
      auto st = (*s)->UpdateShardCount(target);
      INFO(st.ToString());
      REQUIRE(st.ok());
    }
    put_some(**s, 20);
    shards_before = DescribeAll((*s)->ListShards());
  }
  auto s = Stream::Open(Durable(dir.path(), clock));
  REQUIRE(s.ok());
  CHECK(DescribeAll((*s)->ListShards()) == shards_before);
  CHECK(ReadAll(**s) == expected);
  // Six open shards tiling the hash-key space, each within 10% of an even share
  // (Stream::UpdateShardCount's tolerance).
  std::vector<HashKeyRange> open;
  for (const ShardDescription& d : (*s)->ListShards()) {
    if (!d.closed()) open.push_back(d.hash_key_range);
  }
  std::sort(open.begin(), open.end(), [](const HashKeyRange& a, const HashKeyRange& b) {
    return a.starting_hash_key < b.starting_hash_key;
  });
  REQUIRE(open.size() == 6);
  CHECK(open.front().starting_hash_key == HashKey());
  CHECK(open.back().ending_hash_key == HashKey::Max());
  for (size_t i = 0; i < open.size(); ++i) {
    if (i > 0) CHECK(open[i].starting_hash_key.value() == open[i - 1].ending_hash_key.value() + 1);
    const absl::uint128 span = open[i].ending_hash_key.value() - open[i].starting_hash_key.value();
    const long double share = (static_cast<long double>(span) + 1) * 6 / 0x1p128L;
    CHECK(share >= 0.9L);
    CHECK(share <= 1.1L);
  }
}

// Issue 13: without a flusher thread, the time-driven group commit follows the stream's Clock,
// so a SimulatedClock decides it, never the system's time.
TEST_CASE("without a flusher thread, segments are written when the stream's clock says",
          "[durable][clock]") {
  TempDir dir("clocked-commit", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions o = Durable(dir.path(), clock, 1, FsyncPolicy::kNever);
  o.storage->background_flush = false;
  o.storage->fsync_interval = absl::Hours(1);
  auto s = Stream::Create(o);
  REQUIRE(s.ok());
  Contents expected;
  Put(**s, *clock, "k", "first", &expected);
  CHECK((*s)->DiskBytes() == 0);  // the journal holds it; no commit is due
  clock->Advance(absl::Minutes(59));
  Put(**s, *clock, "k", "second", &expected);
  CHECK((*s)->DiskBytes() == 0);
  clock->Advance(absl::Minutes(1));  // an hour of simulated time, none of real time
  Put(**s, *clock, "k", "third", &expected);
  CHECK((*s)->DiskBytes() > 0);
  const uint64_t after_commit = (*s)->DiskBytes();
  Put(**s, *clock, "k", "fourth", &expected);
  CHECK((*s)->DiskBytes() == after_commit);  // the next commit is an hour away again
  CHECK(ReadAll(**s) == expected);
}

TEST_CASE("retention deletes whole segments on disk and stays applied after reopen",
          "[durable][retention]") {
  TempDir dir("retention", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  const absl::Time t0 = clock->Now();
  StreamOptions o = Durable(dir.path(), clock, 1, FsyncPolicy::kNever);
  o.allow_short_retention = true;
  o.retention = absl::Minutes(30);
  o.storage->segment_bytes = 64 << 10;
  o.storage->compression_level = 0;
  o.storage->fsync_interval = absl::ZeroDuration();  // one frame per put
  o.storage->background_flush = false;
  Contents expected;
  // Record i: 1 KiB, at t0 + i s for the first 1000, then 200 more from t0 + 2200 s. With
  // counters 1, 2, ... record i has counter i + 1.
  std::vector<absl::Time> arrival;
  auto s = Stream::Create(o);
  REQUIRE(s.ok());
  for (int i = 0; i < 1200; ++i) {
    clock->Set(t0 + absl::Seconds(i < 1000 ? i : 1200 + i));
    std::string data = absl::StrFormat("%06d|", i);
    data.resize(1024, static_cast<char>('a' + i % 26));
    arrival.push_back(ArrivalNow(*clock));
    Put(**s, *clock, absl::StrCat("k", i % 5), data, &expected);
  }
  REQUIRE((*s)->Flush().ok());
  const std::vector<std::string> files = SegmentFiles(dir.Shard(0));
  REQUIRE(files.size() > 10);
  CHECK(files.front() == "00000000000000000001.seg");
  const uint64_t disk_before = (*s)->DiskBytes();
  CHECK(disk_before == SizeOfFiles(dir.Shard(0), files));
  CHECK(disk_before > 1200 * 1024);

  // Now t0 + 2400 s: everything before t0 + 600 s is past retention.
  clock->Set(t0 + absl::Seconds(2400));
  const absl::Time cutoff = clock->Now() - absl::Minutes(30);
  (*s)->Tick();
  // A segment goes when its last record has expired, except the newest one.
  std::vector<std::string> kept;
  for (size_t j = 0; j < files.size(); ++j) {
    if (j + 1 < files.size() && kept.empty()) {
      const uint64_t next_first = std::stoull(files[j + 1].substr(0, 20));
      if (arrival[next_first - 2] < cutoff) continue;
    }
    kept.push_back(files[j]);
  }
  REQUIRE(kept.size() < files.size());
  CHECK(SegmentFiles(dir.Shard(0)) == kept);
  CHECK((*s)->DiskBytes() == SizeOfFiles(dir.Shard(0), kept));
  CHECK((*s)->DiskBytes() + 500 * 1024 < disk_before);  // 600 of 1200 KiB expired
  // Records past retention are unreadable, the others all readable.
  std::vector<Stored>& all = expected[ShardId(0)];
  all.erase(
      std::remove_if(all.begin(), all.end(), [&](const Stored& r) { return r.arrival < cutoff; }),
      all.end());
  REQUIRE(all.size() == 600);
  CHECK(ReadAll(**s) == expected);
  const uint64_t disk_after = (*s)->DiskBytes();

  s->reset();
  s = Stream::Open(o);
  REQUIRE(s.ok());
  CHECK((*s)->recovery_status() == absl::OkStatus());
  CHECK(SegmentFiles(dir.Shard(0)) == kept);
  CHECK((*s)->DiskBytes() == disk_after);
  CHECK(ReadAll(**s) == expected);

  // Retention changes persist; options.retention is ignored for an existing stream.
  REQUIRE((*s)->IncreaseStreamRetentionPeriod(absl::Hours(2)).ok());
  s->reset();
  o.retention = absl::Hours(24);
  s = Stream::Open(o);
  REQUIRE(s.ok());
  CHECK((*s)->retention() == absl::Hours(2));
  // What had expired stays gone, although part of it is still in the oldest kept segment.
  CHECK(Count(ReadAll(**s)) == Count(expected));
  CHECK(ReadAll(**s) == expected);
  REQUIRE((*s)->DecreaseStreamRetentionPeriod(absl::Minutes(45)).ok());
  s->reset();
  s = Stream::Open(o);
  REQUIRE(s.ok());
  CHECK((*s)->retention() == absl::Minutes(45));
  CHECK(Count(ReadAll(**s)) == Count(expected));
  CHECK(ReadAll(**s) == expected);

  // Past the retention of the newest record, a reopen drops every segment but the newest.
  clock->Set(t0 + absl::Hours(10));
  s->reset();
  s = Stream::Open(o);
  REQUIRE(s.ok());
  CHECK(ReadAll(**s).empty());
  CHECK(SegmentFiles(dir.Shard(0)).size() == 1);
  Contents fresh;
  Put(**s, *clock, "k", "fresh", &fresh);
  CHECK(fresh.at(ShardId(0)).back().sequence_number > all.back().sequence_number);
  CHECK(ReadAll(**s) == fresh);
}

TEST_CASE("registered consumers persist", "[durable][fanout]") {
  TempDir dir("consumers", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  std::vector<std::string> before;
  {
    auto s = Stream::Create(Durable(dir.path(), clock));
    REQUIRE(s.ok());
    REQUIRE((*s)->RegisterStreamConsumer("alpha").ok());
    clock->Advance(absl::Seconds(90));
    REQUIRE((*s)->RegisterStreamConsumer("beta").ok());
    clock->Advance(absl::Milliseconds(1500));
    REQUIRE((*s)->RegisterStreamConsumer("gamma").ok());
    REQUIRE((*s)->DeregisterStreamConsumer("beta").ok());
    before = DescribeAll((*s)->ListStreamConsumers());
  }
  REQUIRE(before.size() == 2);
  {
    auto s = Stream::Open(Durable(dir.path(), clock));
    REQUIRE(s.ok());
    CHECK(DescribeAll((*s)->ListStreamConsumers()) == before);
    auto beta = (*s)->DescribeStreamConsumer("beta");
    CHECK(GetErrorCode(beta.status()) == ErrorCode::kResourceNotFound);
    clock->Advance(absl::Seconds(1));
    REQUIRE((*s)->RegisterStreamConsumer("beta").ok());
    CHECK(GetErrorCode((*s)->RegisterStreamConsumer("alpha").status()) ==
          ErrorCode::kResourceInUse);
    before = DescribeAll((*s)->ListStreamConsumers());
  }
  auto s = Stream::Open(Durable(dir.path(), clock));
  REQUIRE(s.ok());
  CHECK(DescribeAll((*s)->ListStreamConsumers()) == before);
  REQUIRE(before.size() == 3);
}

TEST_CASE("registered consumers keep sub-microsecond creation times across reopen",
          "[durable][fanout]") {
  TempDir dir("consumer-times", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  clock->Advance(absl::Nanoseconds(123456789));
  std::vector<std::string> before;
  absl::Time created;
  {
    auto s = Stream::Create(Durable(dir.path(), clock));
    REQUIRE(s.ok());
    created = (*s)->creation_time();
    REQUIRE((*s)->RegisterStreamConsumer("alpha").ok());
    before = DescribeAll((*s)->ListStreamConsumers());
  }
  auto s = Stream::Open(Durable(dir.path(), clock));
  REQUIRE(s.ok());
  CHECK(DescribeAll((*s)->ListStreamConsumers()) == before);
  CHECK((*s)->creation_time() == created);
}

// FsyncPolicy: what a process that dies without a clean shutdown leaves behind.
TEST_CASE("fsync policies: Flush and a clean shutdown write everything", "[durable][fsync]") {
  TempDir dir("fsync", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  constexpr int kRecords = 300;
  const auto policy = GENERATE(FsyncPolicy::kNever, FsyncPolicy::kInterval);
  const bool background = GENERATE(true, false);
  const int ending = GENERATE(0, 1, 2);  // Flush then die, destroy then die, just die
  INFO("policy " << static_cast<int>(policy) << " background " << background << " ending "
                 << ending);
  StreamOptions o = Durable(dir.path(), clock, 2, policy);
  // No group commit falls due during the test: what reaches the disk is what Flush or the
  // destructor writes.
  o.storage->fsync_interval = absl::Hours(1);
  o.storage->background_flush = background;
  const int child = RunInChild([&] {
    auto s = Stream::Create(o);
    if (!s.ok()) return 10;
    for (int i = 0; i < kRecords; ++i) {
      if (!(*s)->PutRecord(absl::StrCat("k", i), absl::StrCat("v", i)).ok()) return 11;
    }
    if (ending == 0 && !(*s)->Flush().ok()) return 12;
    if (ending == 1) s->reset();
    ::_exit(0);  // as a crash: the stream's destructor does not run
  });
  REQUIRE(child == 0);
  auto s = Stream::Open(o);
  REQUIRE(s.ok());
  CHECK((*s)->recovery_status() == absl::OkStatus());
  const Contents got = ReadAll(**s);
  CHECK(Count(got) == (*s)->recovered_records());
  // Every ending keeps every acknowledged record: without Flush or a clean shutdown no group
  // commit fell due (an hour did not pass), but the journal kept the records (issue 21: a
  // process crash loses nothing acknowledged under any policy).
  CHECK(Count(got) == kRecords);
  // Either way each shard holds a prefix of the records routed to it, in put order.
  const std::vector<HashKeyRange> ranges = SplitHashKeySpace(2);
  for (const auto& [shard, records] : got) {
    std::vector<std::string> routed;
    for (int i = 0; i < kRecords; ++i) {
      if (ranges[shard.index()].Contains(HashKey::FromPartitionKey(absl::StrCat("k", i)))) {
        routed.push_back(absl::StrCat("v", i));
      }
    }
    REQUIRE(records.size() <= routed.size());
    for (size_t i = 0; i < records.size(); ++i) CHECK(records[i].data == routed[i]);
  }
  REQUIRE((*s)->PutRecord("k", "after").ok());
}

TEST_CASE("kEveryBatch: every acknowledged record survives the process dying", "[durable][fsync]") {
  TempDir dir("every-batch", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  const StreamOptions o = Durable(dir.path(), clock, 2, FsyncPolicy::kEveryBatch);
  const int child = RunInChild([&] {
    auto s = Stream::Create(o);
    if (!s.ok()) return 10;
    for (int i = 0; i < 50; ++i) {
      if (!(*s)->PutRecord(absl::StrCat("k", i), absl::StrCat("v", i)).ok()) return 11;
    }
    std::vector<PutRecordsEntry> entries;
    for (int i = 0; i < 50; ++i) entries.push_back({absl::StrCat("b", i), "w", {}});
    auto r = (*s)->PutRecords(entries);
    if (!r.ok() || r->failed_record_count != 0) return 12;
    ::_exit(0);  // as a crash: the stream's destructor does not run
  });
  REQUIRE(child == 0);
  auto s = Stream::Open(o);
  REQUIRE(s.ok());
  CHECK(Count(ReadAll(**s)) == 100);
}

// Issue 21 §5: a kEveryBatch call costs one sync, the journal's, however many shards it wrote
// to — also when the call writes the segments, which are synced only before the journal files
// holding their records are recycled (and at Flush).
TEST_CASE("kEveryBatch: a PutRecords call over 20 shards makes exactly one sync",
          "[durable][fsync]") {
  TempDir dir("one-sync", TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions o = Durable(dir.path(), clock, 20, FsyncPolicy::kEveryBatch);
  o.storage->background_flush = false;  // no flusher thread: every sync counted is the put's
  auto s = Stream::Create(o);
  REQUIRE(s.ok());
  // The first put creates the journal's file (syncing its directory) and starts the segments'
  // commit interval: not counted.
  REQUIRE((*s)->PutRecord("first", "reading").ok());
  constexpr int kCalls = 10, kPerCall = 200;
  for (int call = 0; call < kCalls; ++call) {
    // The segments' group commit is due: the put writes them too.
    clock->Advance(o.storage->fsync_interval);
    std::vector<PutRecordsEntry> entries;
    for (int i = 0; i < kPerCall; ++i) {
      entries.push_back({absl::StrCat("device-", call, "-", i), "reading", {}});
    }
    const uint64_t syncs_before = internal::SyncCount();
    auto r = (*s)->PutRecords(entries);
    const uint64_t syncs = internal::SyncCount() - syncs_before;
    REQUIRE(r.ok());
    REQUIRE(r->failed_record_count == 0);
    std::set<ShardId> shards;
    for (const PutRecordsResultEntry& e : r->entries) shards.insert(e.shard_id);
    CHECK(shards.size() == 20);
    CHECK(syncs == 1);
    CHECK((*s)->DiskBytes() > 0);  // the call wrote the segments
  }
  CHECK(Count(ReadAll(**s)) == 1 + kCalls * kPerCall);
  // Flush syncs the segments, one sync per shard and none for the journal.
  const uint64_t syncs_before = internal::SyncCount();
  REQUIRE((*s)->Flush().ok());
  CHECK(internal::SyncCount() - syncs_before >= 20);
}

TEST_CASE("compression levels round-trip and JSON records compress", "[durable][compression]") {
  auto clock = std::make_shared<SimulatedClock>();
  const int level = GENERATE(0, 1, 3);
  TempDir dir(absl::StrCat("compression-", level), TempDir::kAbsent);
  StreamOptions o = Durable(dir.path(), clock, 2);
  o.storage->compression_level = level;
  Contents expected;
  uint64_t raw = 0;
  {
    auto s = Stream::Create(o);
    REQUIRE(s.ok());
    for (int b = 0; b < 8; ++b) {
      clock->Advance(absl::Milliseconds(5));
      std::vector<PutRecordsEntry> entries;
      for (int i = 0; i < 500; ++i) {
        const int n = b * 500 + i;
        PutRecordsEntry e;
        e.partition_key = absl::StrCat("player-", n % 40);
        e.data = absl::StrFormat(
            R"({"event":"move","player":"player-%d","match":%d,"x":%d,"y":%d,"hp":%d,)"
            R"("weapon":"%s","ts":"2024-01-01T00:%02d:%02d.%03dZ"})",
            n % 40, n / 100, (n * 37) % 1000, (n * 91) % 1000, 100 - n % 100,
            n % 3 == 0 ? "rifle" : "shotgun", n / 600 % 60, n / 10 % 60, n % 1000);
        raw += e.partition_key.size() + e.data.size();
        entries.push_back(std::move(e));
      }
      PutBatch(**s, *clock, entries, &expected);
    }
    // The segments are written behind the journal: Flush makes them complete.
    REQUIRE((*s)->Flush().ok());
    INFO("level " << level << ": " << (*s)->DiskBytes() << " bytes on disk for " << raw
                  << " raw bytes");
    if (level == 0) {
      CHECK((*s)->DiskBytes() > raw);
    } else {
      CHECK((*s)->DiskBytes() * 4 < raw);
    }
  }
  // Reopened with another level: old frames decode, new ones use the new level.
  o.storage->compression_level = level == 0 ? 3 : 0;
  for (int cycle = 0; cycle < 2; ++cycle) {
    auto s = Stream::Open(o);
    REQUIRE(s.ok());
    CHECK((*s)->recovery_status() == absl::OkStatus());
    CHECK(ReadAll(**s) == expected);
    clock->Advance(absl::Milliseconds(5));
    Put(**s, *clock, "player-1", R"({"event":"quit"})", &expected);
  }
}

// Writes `puts` frames (kEveryBatch, one PutRecord each) into one shard and returns the size of
// the segment after each one, so that tests know where every frame ends.
std::vector<uint64_t> WriteFrames(const StreamOptions& o, Clock& clock, int puts,
                                  Contents* expected) {
  std::vector<uint64_t> ends;
  auto s = Stream::Create(o);
  REQUIRE(s.ok());
  for (int i = 0; i < puts; ++i) {
    Put(**s, clock, absl::StrCat("key-", i % 3), absl::StrCat("record-", i, std::string(i, '.')),
        expected);
    REQUIRE((*s)->Flush().ok());  // one frame: segments are written behind the journal
    const std::vector<std::string> files = SegmentFiles(o.storage->directory + "/shard-0");
    REQUIRE(files.size() == 1);
    ends.push_back(fs::file_size(o.storage->directory + "/shard-0/" + files[0]));
  }
  return ends;
}

TEST_CASE("a torn tail is cut off and the stream goes on", "[durable][recovery]") {
  auto clock = std::make_shared<SimulatedClock>();
  // How many bytes to cut off the end of the segment: `bytes`, or the last frame's size plus
  // `bytes` when from_last_frame is set.
  struct Cut {
    const char* what;
    bool from_last_frame;
    int64_t bytes;
  };
  const Cut cut = GENERATE(values<Cut>({
      {"1 byte", false, 1},
      {"2 bytes", false, 2},
      {"17 bytes", false, 17},
      {"all but 10 bytes of the last frame (inside its header)", true, -10},
      {"all but 59 bytes of the last frame (its header less a byte)", true, -59},
      {"all but 61 bytes of the last frame (its header and a byte)", true, -61},
      {"exactly the last frame", true, 0},
      {"the last frame and 5 bytes of the one before", true, 5},
  }));
  INFO("cut " << cut.what);
  TempDir dir("torn", TempDir::kAbsent);
  const StreamOptions o = Durable(dir.path(), clock, 1);
  Contents expected;
  const std::vector<uint64_t> ends = WriteFrames(o, *clock, 20, &expected);
  const uint64_t size = ends.back();
  const int64_t last = static_cast<int64_t>(ends[19] - ends[18]);
  const uint64_t cut_bytes =
      static_cast<uint64_t>(cut.from_last_frame ? last + cut.bytes : cut.bytes);
  const std::string segment = dir.Shard(0) + "/" + SegmentFiles(dir.Shard(0))[0];
  fs::resize_file(segment, size - cut_bytes);
  // The complete frames that remain.
  size_t kept = 0;
  while (kept < ends.size() && ends[kept] <= size - cut_bytes) ++kept;
  std::vector<Stored>& records = expected[ShardId(0)];
  records.resize(kept);
  REQUIRE(kept >= 18);

  for (int cycle = 0; cycle < 2; ++cycle) {
    auto s = Stream::Open(o);
    REQUIRE(s.ok());
    CHECK((*s)->recovery_status() == absl::OkStatus());
    CHECK((*s)->recovered_records() == records.size());
    CHECK(ReadAll(**s) == expected);
    clock->Advance(absl::Microseconds(11));
    Put(**s, *clock, "new", absl::StrCat("after-", cycle), &expected);
    Put(**s, *clock, "new", absl::StrCat("after-", cycle, "-b"), &expected);
  }
  auto s = Stream::Open(o);
  REQUIRE(s.ok());
  CHECK(ReadAll(**s) == expected);
  CHECK(FilesEndingWith(dir.Shard(0), ".damaged").empty());
}

TEST_CASE("damage in the middle of a segment keeps the records before it", "[durable][recovery]") {
  auto clock = std::make_shared<SimulatedClock>();
  // Which byte of frame 10 (of 30) is flipped: in its header or its payload.
  const int offset_in_frame = GENERATE(20, 70);
  INFO("byte " << offset_in_frame << " of frame 10");
  TempDir dir("bitflip", TempDir::kAbsent);
  const StreamOptions o = Durable(dir.path(), clock, 1);
  Contents expected;
  const std::vector<uint64_t> ends = WriteFrames(o, *clock, 30, &expected);
  const std::string name = SegmentFiles(dir.Shard(0))[0];
  const std::string segment = dir.Shard(0) + "/" + name;
  std::string bytes = ReadBytes(segment);
  bytes[ends[9] + static_cast<uint64_t>(offset_in_frame)] ^= 0x10;
  WriteBytes(segment, bytes);
  const std::vector<Stored> all = expected[ShardId(0)];
  expected[ShardId(0)].resize(10);

  {
    auto s = Stream::Open(o);
    REQUIRE(s.ok());
    const absl::Status recovery = (*s)->recovery_status();
    CHECK(GetErrorCode(recovery) == ErrorCode::kInternalFailure);
    CHECK_THAT(std::string(recovery.message()), Catch::Contains(ShardId(0).ToString()));
    CHECK((*s)->recovered_records() == 10);
    CHECK(ReadAll(**s) == expected);
    // New records number above every record that was on disk, readable or not.
    clock->Advance(absl::Microseconds(5));
    const PutRecordResult p = Put(**s, *clock, "new", "after-damage", &expected);
    CHECK(p.sequence_number > all.back().sequence_number);
    // An old sequence number of an unreadable record is still one this shard issued: reading
    // from it finds the next readable record.
    auto it = (*s)->GetShardIterator(ShardId(0),
                                     StartingPosition::AtSequenceNumber(all[20].sequence_number));
    REQUIRE(it.ok());
    auto batch = (*s)->GetRecords(*it);
    REQUIRE(batch.ok());
    REQUIRE(batch->records.size() == 1);
    CHECK(batch->records[0].data == "after-damage");
  }
  CHECK(FilesEndingWith(dir.Shard(0), ".damaged") == std::vector<std::string>{name + ".damaged"});
  for (int cycle = 0; cycle < 2; ++cycle) {
    auto s = Stream::Open(o);
    REQUIRE(s.ok());
    CHECK((*s)->recovery_status() == absl::OkStatus());
    CHECK((*s)->recovered_records() == Count(expected));
    CHECK(ReadAll(**s) == expected);
    Put(**s, *clock, "new", absl::StrCat("cycle-", cycle), &expected);
  }
}

TEST_CASE("a cut in a segment that is not the newest is reported as damage",
          "[durable][recovery]") {
  auto clock = std::make_shared<SimulatedClock>();
  TempDir dir("cut-old-segment", TempDir::kAbsent);
  StreamOptions o = Durable(dir.path(), clock, 1);
  o.storage->segment_bytes = 64 << 10;
  o.storage->compression_level = 0;
  // One frame per put, written by the put itself: with the flusher thread, how many puts share
  // a frame (and so how many segments 320 KiB fill) would depend on the machine's speed.
  o.storage->fsync_interval = absl::ZeroDuration();
  o.storage->background_flush = false;
  Contents expected;
  std::vector<PutRecordResult> puts;
  {
    auto s = Stream::Create(o);
    REQUIRE(s.ok());
    for (int i = 0; i < 40; ++i) {
      clock->Advance(absl::Microseconds(5));
      puts.push_back(
          Put(**s, *clock, "k", absl::StrFormat("%04d%s", i, std::string(8000, 'x')), &expected));
    }
  }
  const std::vector<std::string> files = SegmentFiles(dir.Shard(0));
  REQUIRE(files.size() == 5);  // 40 frames of 8 KiB, 8 to a 64 KiB segment
  // Cut 100 bytes off the first segment: records in its last frame are lost though later
  // segments hold acknowledged records after them.
  const std::string first = dir.Shard(0) + "/" + files[0];
  fs::resize_file(first, fs::file_size(first) - 100);
  auto s = Stream::Open(o);
  REQUIRE(s.ok());
  const absl::Status recovery = (*s)->recovery_status();
  CHECK(GetErrorCode(recovery) == ErrorCode::kInternalFailure);
  CHECK_THAT(std::string(recovery.message()), Catch::Contains(ShardId(0).ToString()));
  const std::vector<Stored> got = ReadAll(**s)[ShardId(0)];
  // What is readable is a prefix of what was written: no gap in the middle.
  REQUIRE(got.size() < expected[ShardId(0)].size());
  CHECK(std::equal(got.begin(), got.end(), expected[ShardId(0)].begin()));
  const PutRecordResult p = Put(**s, *clock, "k", "after", &expected);
  CHECK(p.sequence_number > puts.back().sequence_number);
  // Once reported, the damage is set aside: the next reopen is clean and keeps the same records.
  std::vector<Stored> now = got;
  now.push_back(expected[ShardId(0)].back());
  s->reset();
  s = Stream::Open(o);
  REQUIRE(s.ok());
  CHECK((*s)->recovery_status() == absl::OkStatus());
  CHECK(ReadAll(**s)[ShardId(0)] == now);
}

TEST_CASE("a damaged METADATA fails Open with kInternalFailure", "[durable][recovery]") {
  auto clock = std::make_shared<SimulatedClock>();
  TempDir dir("metadata", TempDir::kAbsent);
  {
    auto s = Stream::Create(Durable(dir.path(), clock));
    REQUIRE(s.ok());
    REQUIRE((*s)->PutRecord("k", "v").ok());
  }
  const std::string path = dir.path() + "/METADATA";
  const std::string good = ReadBytes(path);
  const int damage = GENERATE(0, 1, 2, 3);
  std::string bad = good;
  switch (damage) {
    case 0:
      bad[bad.size() / 2] ^= 1;  // a bit in the payload
      break;
    case 1:
      bad.resize(bad.size() - 3);  // cut short
      break;
    case 2:
      bad[0] = 'X';  // not a METADATA file
      break;
    case 3:
      bad.clear();  // empty
      break;
  }
  WriteBytes(path, bad);
  INFO("damage " << damage);
  auto s = Stream::Open(Durable(dir.path(), clock));
  REQUIRE_FALSE(s.ok());
  CHECK(GetErrorCode(s.status()) == ErrorCode::kInternalFailure);
  CHECK_THAT(std::string(s.status().message()), Catch::Contains("METADATA"));
  // Create refuses to overwrite it either way, and the lock was released.
  CHECK_FALSE(Stream::Create(Durable(dir.path(), clock)).ok());
  WriteBytes(path, good);
  auto repaired = Stream::Open(Durable(dir.path(), clock));
  REQUIRE(repaired.ok());
  CHECK(Count(ReadAll(**repaired)) == 1);
}

TEST_CASE("records evicted by the memory budget are read back from disk exactly",
          "[durable][memory]") {
  auto clock = std::make_shared<SimulatedClock>();
  TempDir dir("memory-budget", TempDir::kAbsent);
  StreamOptions o = Durable(dir.path(), clock, 1);
  o.storage->memory_budget_bytes = 1 << 20;
  Contents expected;
  uint64_t raw = 0;
  auto s = Stream::Create(o);
  REQUIRE(s.ok());
  for (int b = 0; b < 16; ++b) {
    clock->Advance(absl::Microseconds(1001));
    std::vector<PutRecordsEntry> entries;
    for (int i = 0; i < 500; ++i) {
      std::string data = absl::StrFormat("{\"batch\":%d,\"i\":%d,\"pad\":\"", b, i);
      data.resize(1000, static_cast<char>('a' + (b + i) % 26));
      raw += data.size();
      entries.push_back(PutRecordsEntry{absl::StrCat("k", i % 7), std::move(data), {}});
    }
    PutBatch(**s, *clock, entries, &expected);
  }
  // At most the budget and the chunk being filled (up to 2 MiB) stay in memory once the flusher
  // has written what it holds (Flush: without it, the check would race the flusher thread).
  REQUIRE((*s)->Flush().ok());
  INFO((*s)->MemoryBytes() << " bytes in memory for " << raw << " bytes of records");
  CHECK((*s)->MemoryBytes() < (size_t{4} << 20));
  for (int cycle = 0; cycle < 2; ++cycle) {
    INFO("cycle " << cycle);
    CHECK(ReadAll(**s) == expected);
    // Positioned reads inside evicted chunks.
    const std::vector<Stored>& all = expected.at(ShardId(0));
    for (size_t at : {size_t{0}, size_t{1}, size_t{777}, size_t{4001}, all.size() - 1}) {
      auto it = (*s)->GetShardIterator(ShardId(0),
                                       StartingPosition::AtSequenceNumber(all[at].sequence_number));
      REQUIRE(it.ok());
      auto batch = (*s)->GetRecords(*it, 3);
      REQUIRE(batch.ok());
      REQUIRE(!batch->records.empty());
      CHECK(batch->records[0].sequence_number == all[at].sequence_number);
      CHECK(batch->records[0].data == all[at].data);
    }
    s->reset();
    s = Stream::Open(o);
    REQUIRE(s.ok());
    CHECK((*s)->recovery_status() == absl::OkStatus());
    CHECK((*s)->MemoryBytes() < (size_t{4} << 20));
  }
}

TEST_CASE("partition keys of 256 multibyte characters are stored", "[durable]") {
  auto clock = std::make_shared<SimulatedClock>();
  TempDir dir("multibyte-keys", TempDir::kAbsent);
  Contents expected;
  std::string two_byte, three_byte;
  for (int i = 0; i < 256; ++i) two_byte += "\xc3\xa9";        // é: 512 bytes
  for (int i = 0; i < 256; ++i) three_byte += "\xe2\x82\xac";  // €: 768 bytes
  {
    auto s = Stream::Create(Durable(dir.path(), clock, 1));
    REQUIRE(s.ok());
    // Valid Kinesis keys (256 characters each): the stream must accept and store them.
    for (const std::string& key : {two_byte, three_byte}) {
      const absl::Time arrival = ArrivalNow(*clock);
      auto p = (*s)->PutRecord(key, "data");
      INFO(p.status());
      CHECK(p.ok());
      if (p.ok()) expected[p->shard_id].push_back(Stored{p->sequence_number, key, "data", arrival});
    }
    // Whatever happened to them, the shard still takes ordinary records.
    const absl::Time arrival = ArrivalNow(*clock);
    auto p = (*s)->PutRecord("plain", "data");
    INFO(p.status());
    CHECK(p.ok());
    if (p.ok())
      expected[p->shard_id].push_back(Stored{p->sequence_number, "plain", "data", arrival});
  }
  auto s = Stream::Open(Durable(dir.path(), clock, 1));
  REQUIRE(s.ok());
  CHECK((*s)->recovery_status() == absl::OkStatus());
  CHECK(ReadAll(**s) == expected);
}

TEST_CASE("retention changes persist with the default fsync policy", "[durable][retention]") {
  auto clock = std::make_shared<SimulatedClock>();
  TempDir dir("retention-default-policy", TempDir::kAbsent);
  StreamOptions o;
  o.name = "telemetry";
  o.clock = clock;
  o.storage = StorageOptions{};
  o.storage->directory = dir.path();  // kInterval with background flush
  Contents expected;
  {
    auto s = Stream::Create(o);
    REQUIRE(s.ok());
    Put(**s, *clock, "k", "one", &expected);
    REQUIRE((*s)->IncreaseStreamRetentionPeriod(absl::Hours(48)).ok());
    Put(**s, *clock, "k", "two", &expected);
  }
  {
    auto s = Stream::Open(o);
    REQUIRE(s.ok());
    CHECK((*s)->retention() == absl::Hours(48));
    REQUIRE((*s)->DecreaseStreamRetentionPeriod(absl::Hours(30)).ok());
    Put(**s, *clock, "k", "three", &expected);
  }
  auto s = Stream::Open(o);
  REQUIRE(s.ok());
  CHECK((*s)->retention() == absl::Hours(30));
  CHECK(ReadAll(**s) == expected);
}

constexpr int64_t kCreatedUs = 1704067200123456;

internal::StreamMeta SampleMeta() {
  internal::StreamMeta meta;
  meta.name = "telemetry";
  for (size_t i = 0; i < meta.seed.size(); ++i) meta.seed[i] = static_cast<uint8_t>(i * 17);
  meta.creation_ns = int64_t{1704067200123456789};
  meta.retention_us = int64_t{24} * 3600 * 1000000;
  meta.capacity_mode = 0;
  const std::vector<HashKeyRange> ranges = SplitHashKeySpace(2);
  for (uint32_t i = 0; i < 2; ++i) {
    internal::ShardMeta s;
    s.index = i;
    s.range = ranges[i];
    s.first_counter = 1;
    s.created_us = kCreatedUs;
    meta.shards.push_back(s);
  }
  return meta;
}

TEST_CASE("METADATA decodes only its canonical encoding", "[durable][metadata]") {
  internal::StreamMeta meta = SampleMeta();
  const std::string canonical = internal::EncodeStreamMeta(meta);
  auto decoded = internal::DecodeStreamMeta(canonical);
  REQUIRE(decoded.ok());
  CHECK(internal::EncodeStreamMeta(*decoded) == canonical);
  // A parent index, adjacent parent or close time without its flag is not a METADATA this rill
  // writes: decoding it and writing it back would change the bytes.
  // Payload offsets of shard 0's fields: after the name (4 + 9), seed (16), creation, retention
  // (8 + 8), mode (1) and shard count (4): index 4, range 32, flags 1, parent 4, adjacent 4.
  constexpr size_t kShard0 = 16 + 4 + 9 + 16 + 8 + 8 + 1 + 4;
  constexpr size_t kParent = kShard0 + 4 + 32 + 1;
  for (const size_t field : {kParent, kParent + 4, kParent + 4 + 4 + 8 + 8}) {
    std::string bytes = canonical;
    bytes[field] = 1;  // shard 0 has no parents and is open: these fields must be 0
    const uint32_t crc =
        internal::MaskCrc32c(internal::Crc32c(std::string_view(bytes).substr(0, bytes.size() - 4)));
    for (int i = 0; i < 4; ++i) bytes[bytes.size() - 4 + i] = static_cast<char>(crc >> (8 * i));
    auto odd = internal::DecodeStreamMeta(bytes);
    INFO("field at " << field);
    if (odd.ok()) CHECK(internal::EncodeStreamMeta(*odd) == bytes);
  }
}

// Not run by ctest: writes the METADATA fuzzer's seed corpus into $RILL_METADATA_CORPUS_DIR (see
// tests/fuzz/CMakeLists.txt).
TEST_CASE("Write the metadata fuzzer seed corpus", "[.][corpus]") {
  const char* out = std::getenv("RILL_METADATA_CORPUS_DIR");
  REQUIRE(out != nullptr);
  auto save = [&](const std::string& name, const internal::StreamMeta& meta) {
    REQUIRE(internal::WriteFileAtomically(std::string(out) + "/" + name,
                                          internal::EncodeStreamMeta(meta))
                .ok());
  };
  internal::StreamMeta meta = SampleMeta();
  save("two_shards", meta);
  // After a split of shard 0 and a merge of its upper child with shard 1, with consumers.
  meta.capacity_mode = 1;
  meta.shards[0].closed_us = kCreatedUs + 1000;
  meta.shards[0].ending_counter = 41;
  meta.shards[1].closed_us = kCreatedUs + 2000;
  meta.shards[1].ending_counter = 77;
  const HashKeyRange r0 = meta.shards[0].range;
  const HashKey middle(r0.starting_hash_key.value() + (r0.ending_hash_key.value() / 2));
  internal::ShardMeta low;
  low.index = 2;
  low.range = {r0.starting_hash_key, HashKey(middle.value() - 1)};
  low.parent = 0;
  low.first_counter = 42;
  low.created_us = kCreatedUs + 1000;
  internal::ShardMeta high = low;
  high.index = 3;
  high.range = {middle, r0.ending_hash_key};
  high.closed_us = kCreatedUs + 2000;
  high.ending_counter = 60;
  internal::ShardMeta merged;
  merged.index = 4;
  merged.range = {middle, meta.shards[1].range.ending_hash_key};
  merged.parent = 3;
  merged.adjacent_parent = 1;
  merged.first_counter = 78;
  merged.created_us = kCreatedUs + 2000;
  meta.shards.push_back(low);
  meta.shards.push_back(high);
  meta.shards.push_back(merged);
  meta.consumers = {{"alpha", meta.creation_ns + 5}, {"beta-2", meta.creation_ns + 99000}};
  meta.trim_floor_us = kCreatedUs + 500;
  save("resharded_with_consumers", meta);
}

// --- Issue 21: what a crash, a full disk and a read-only disk may and may not do -------------

// A SIGKILL right after acknowledgements, under every policy: nothing acknowledged is lost
// (the journal lives in the page cache), and no sequence number is ever issued twice.
TEST_CASE("a SIGKILL loses nothing acknowledged and never reuses a sequence number",
          "[durable][crash]") {
  const auto policy =
      GENERATE(FsyncPolicy::kNever, FsyncPolicy::kInterval, FsyncPolicy::kEveryBatch);
  const bool background = GENERATE(true, false);
  INFO("policy " << static_cast<int>(policy) << " background " << background);
  TempDir dir(absl::StrCat("sigkill-", static_cast<int>(policy), background), TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions o = Durable(dir.path(), clock, 3, policy);
  o.storage->background_flush = background;
  // No group commit falls due: only the journal can keep what the children acknowledged.
  o.storage->fsync_interval = absl::Hours(1);
  std::map<std::string, std::string> acked;  // sequence number -> data, across every child
  for (int iteration = 0; iteration < 6; ++iteration) {
    INFO("iteration " << iteration);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      auto s = Stream::Open(o);
      if (!s.ok()) ::_exit(10);
      auto report = [&](const SequenceNumber& seq, const std::string& data) {
        const std::string line = absl::StrCat(seq.ToString(), " ", data, "\n");
        if (::write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
          ::_exit(11);
        }
      };
      for (int i = 0; i < 10; ++i) {
        const std::string data = absl::StrCat("one-", iteration, "-", i);
        auto p = (*s)->PutRecord(absl::StrCat("k", i), data);
        if (!p.ok()) ::_exit(12);
        report(p->sequence_number, data);
      }
      std::vector<PutRecordsEntry> entries(25);
      for (int i = 0; i < 25; ++i) {
        entries[i].partition_key = absl::StrCat("k", i);
        entries[i].data = absl::StrCat("batch-", iteration, "-", i);
      }
      auto batch = (*s)->PutRecords(entries);
      if (!batch.ok() || batch->failed_record_count != 0) ::_exit(13);
      for (int i = 0; i < 25; ++i) report(batch->entries[i].sequence_number, entries[i].data);
      ::raise(SIGKILL);
      ::_exit(14);
    }
    ::close(fds[1]);
    std::string text;
    char buffer[4096];
    for (ssize_t n; (n = ::read(fds[0], buffer, sizeof(buffer))) > 0;) text.append(buffer, n);
    ::close(fds[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);
    int lines = 0;
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      const std::pair<std::string, std::string> kv = absl::StrSplit(line, ' ');
      INFO("sequence number " << kv.first);
      CHECK(acked.emplace(kv.first, kv.second).second);  // never issued before
      ++lines;
    }
    REQUIRE(lines == 35);
    auto s = Stream::Open(o);
    REQUIRE(s.ok());
    CHECK((*s)->recovery_status() == absl::OkStatus());
    std::map<std::string, std::string> found;
    for (const auto& [shard, records] : ReadAll(**s)) {
      for (const Stored& r : records) found.emplace(r.sequence_number.ToString(), r.data);
    }
    CHECK(found == acked);  // every acknowledged record, nothing else
  }
}

// Mounts a small tmpfs for the disk-full and read-only cases; empty if this process may not.
class ScopedTmpfs {
 public:
  explicit ScopedTmpfs(const std::string& name, const std::string& size)
      : dir_(name, TempDir::kAbsent) {
    fs::create_directories(dir_.path());
    mounted_ =
        ::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, absl::StrCat("size=", size).c_str()) == 0;
  }
  ~ScopedTmpfs() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  bool Remount(unsigned long flags, const std::string& options) {
    return ::mount("tmpfs", dir_.path().c_str(), "tmpfs", MS_REMOUNT | flags, options.c_str()) == 0;
  }
  std::string path() const { return dir_.path() + "/stream"; }

 private:
  TempDir dir_;
  bool mounted_ = false;
};

TEST_CASE("a put that fails on a full disk is never readable, and its number is never reused",
          "[durable][disk-full]") {
  const auto policy = GENERATE(FsyncPolicy::kEveryBatch, FsyncPolicy::kInterval);
  INFO("policy " << static_cast<int>(policy));
  ScopedTmpfs tmpfs(absl::StrCat("full-", static_cast<int>(policy)), "512k");
  if (!tmpfs.mounted()) {
    WARN("skipped: mounting a tmpfs needs root (CAP_SYS_ADMIN)");
    return;
  }
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions o = Durable(tmpfs.path(), clock, 1, policy);
  const std::string data(64 << 10, 'x');
  std::vector<Stored> acked;
  std::optional<absl::Status> failure;
  {
    auto s = Stream::Create(o);
    REQUIRE(s.ok());
    for (int i = 0; i < 64 && !failure; ++i) {
      clock->Advance(absl::Milliseconds(1));
      auto p = (*s)->PutRecord("k", data);
      if (p.ok()) {
        acked.push_back(Stored{p->sequence_number, "k", data, ArrivalNow(*clock)});
      } else {
        failure = p.status();
      }
    }
    REQUIRE(failure.has_value());
    INFO(failure->ToString());
    CHECK(GetErrorCode(*failure) == ErrorCode::kInternalFailure);
    CHECK(absl::StrContains(failure->message(), "No space left on device"));
    // What the reader sees is exactly what was acknowledged: the failed put wrote nothing.
    const std::vector<Stored> read = ReadShard(**s, ShardId(0)).records;
    CHECK(read.size() == acked.size());
    CHECK(read == acked);
  }
  REQUIRE(tmpfs.Remount(0, "size=8m"));
  auto s = Stream::Open(o);
  REQUIRE(s.ok());
  CHECK(ReadShard(**s, ShardId(0)).records == acked);
  auto next = (*s)->PutRecord("k", "after");
  REQUIRE(next.ok());
  CHECK(next->sequence_number > acked.back().sequence_number);
}

TEST_CASE("an I/O error on the LOCK file is kInternalFailure, not kResourceInUse",
          "[durable][lock]") {
  ScopedTmpfs tmpfs("readonly", "4m");
  if (!tmpfs.mounted()) {
    WARN("skipped: mounting a tmpfs needs root (CAP_SYS_ADMIN)");
    return;
  }
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions o = Durable(tmpfs.path(), clock);
  fs::create_directories(tmpfs.path());
  REQUIRE(tmpfs.Remount(MS_RDONLY, "size=4m"));
  auto s = Stream::Open(o);
  REQUIRE_FALSE(s.ok());
  INFO(s.status().ToString());
  CHECK(GetErrorCode(s.status()) == ErrorCode::kInternalFailure);
  CHECK(absl::StrContains(s.status().message(), "LOCK"));
  REQUIRE(tmpfs.Remount(0, "size=4m"));
}

// UpdateShardCount 4 -> 8 is four splits; a SIGKILL at any moment leaves all or none of them.
TEST_CASE("UpdateShardCount is one step across a SIGKILL", "[durable][crash]") {
  std::mt19937 rng(21);
  int complete = 0;
  for (int iteration = 0; iteration < 12; ++iteration) {
    TempDir dir(absl::StrCat("reshard-kill-", iteration), TempDir::kAbsent);
    auto clock = std::make_shared<SimulatedClock>();
    const StreamOptions o = Durable(dir.path(), clock, 4);
    {
      auto s = Stream::Create(o);
      REQUIRE(s.ok());
    }
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      auto s = Stream::Open(o);
      if (!s.ok()) ::_exit(10);
      if (!(*s)->UpdateShardCount(8).ok()) ::_exit(11);
      for (;;) ::pause();
    }
    std::this_thread::sleep_for(
        std::chrono::microseconds(std::uniform_int_distribution<int>(0, 20000)(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    auto s = Stream::Open(o);
    REQUIRE(s.ok());
    CHECK((*s)->recovery_status() == absl::OkStatus());
    int open = 0;
    for (const ShardDescription& d : (*s)->ListShards()) open += d.closed() ? 0 : 1;
    INFO("iteration " << iteration << ": " << open << " open shards");
    CHECK((open == 4 || open == 8));
    complete += open == 8;
  }
  WARN(complete << " of 12 kills came after the resharding was complete");
}

}  // namespace
}  // namespace rill
