// Tests of Stream::Create, PutRecord, PutRecords and ListShards: the rules Kinesis puts on names,
// shard counts, record sizes and partition keys; MD5 routing onto the CreateStream hash-key
// ranges; sequence numbers; and PutRecords' per-entry failures. Every stream runs on a
// SimulatedClock, so arrival times are exact.
#include "rill/stream/stream.h"

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
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
#include "rill/base/md5.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr const char* kMaxDecimal = "340282366920938463463374607431768211455";  // 2^128 - 1

// U+1F642 (slightly smiling face): 4 UTF-8 bytes, 2 UTF-16 units.
constexpr std::string_view kSmiley = "\xF0\x9F\x99\x82";
// U+00E9 (e acute): 2 UTF-8 bytes, 1 UTF-16 unit.
constexpr std::string_view kEAcute = "\xC3\xA9";
// U+20AC (euro sign): 3 UTF-8 bytes, 1 UTF-16 unit.
constexpr std::string_view kEuro = "\xE2\x82\xAC";

std::string Repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out.append(s);
  return out;
}

using testing::DurableStreamOptions;
using testing::MakeStream;
using testing::MemoryStreamOptions;
using testing::MustCreate;
using testing::MustPut;
using testing::TempDir;

// A record as read back, copied out of the stream's storage.
struct Got {
  SequenceNumber sequence_number;
  absl::Time arrival;
  std::string key;
  std::string data;
};

// Reads the whole shard from TRIM_HORIZON, following next_shard_iterator until a read comes back
// empty.
std::vector<Got> ReadShard(const Stream& stream, ShardId shard) {
  absl::StatusOr<ShardIterator> it =
      stream.GetShardIterator(shard, StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  ShardIterator next = *it;
  std::vector<Got> out;
  for (;;) {
    absl::StatusOr<GetRecordsResult> batch = stream.GetRecords(next);
    REQUIRE(batch.ok());
    for (const Record& r : batch->records) {
      out.push_back({r.sequence_number, r.approximate_arrival_timestamp,
                     std::string(r.partition_key), std::string(r.data)});
    }
    REQUIRE(batch->next_shard_iterator.has_value());
    next = *batch->next_shard_iterator;
    if (batch->records.empty()) break;
  }
  return out;
}

// What a test expects to read back from a shard.
struct Expected {
  std::string key;
  std::string data;
  SequenceNumber sequence_number;
};

void CheckShardHolds(const Stream& stream, ShardId shard, const std::vector<Expected>& expected) {
  const std::vector<Got> got = ReadShard(stream, shard);
  INFO("shard " << shard);
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("record " << i);
    CHECK(got[i].key == expected[i].key);
    CHECK(got[i].data == expected[i].data);
    CHECK(got[i].sequence_number == expected[i].sequence_number);
  }
}

// The MD5 of `key` as an unsigned big-endian 128-bit integer, computed here from the digest so
// that routing is checked independently of HashKey::FromPartitionKey.
HashKey Md5HashKey(std::string_view key) {
  const Md5Digest d = Md5(key);
  uint64_t high = 0, low = 0;
  for (size_t i = 0; i < 8; ++i) high = (high << 8) | d[i];
  for (size_t i = 8; i < 16; ++i) low = (low << 8) | d[i];
  return HashKey(absl::MakeUint128(high, low));
}

HashKey MustHashKey(const char* decimal) {
  absl::StatusOr<HashKey> k = HashKey::FromDecimal(decimal);
  REQUIRE(k.ok());
  return *k;
}

ShardId ShardHolding(const std::vector<ShardDescription>& shards, HashKey key) {
  for (const ShardDescription& s : shards) {
    if (s.hash_key_range.Contains(key)) return s.shard_id;
  }
  FAIL("no shard holds hash key " << key);
  return ShardId();
}

// ---------------------------------------------------------------------------------------------
// Create

TEST_CASE("Create accepts 1-128 characters of [a-zA-Z0-9_.-] as a name", "[stream][create]") {
  auto clock = std::make_shared<SimulatedClock>();
  const std::string accepted[] = {
      "a", "Z", "0", "_", ".", "-", "aZ09_.-", std::string(128, 'n'), "player-actions.v2_eu"};
  for (const std::string& name : accepted) {
    INFO("name '" << name << "'");
    absl::StatusOr<std::unique_ptr<Stream>> stream =
        Stream::Create(MemoryStreamOptions(clock, 1, name));
    REQUIRE(stream.ok());
    CHECK((*stream)->name() == name);
    CHECK((*stream)->creation_time() == SimulatedClock::DefaultStart());
  }
}

TEST_CASE("Create rejects a bad name with kInvalidArgument", "[stream][create]") {
  auto clock = std::make_shared<SimulatedClock>();
  const std::string rejected[] = {"",
                                  std::string(129, 'n'),
                                  "a b",
                                  "\xC3\xBC",  // "ü"
                                  "stream\xC3\xBC",
                                  "a/b",
                                  "a:b",
                                  "a\tb",
                                  std::string("a\0b", 3),
                                  " leading",
                                  "trailing "};
  for (const std::string& name : rejected) {
    INFO("name '" << name << "' (" << name.size() << " bytes)");
    absl::StatusOr<std::unique_ptr<Stream>> stream =
        Stream::Create(MemoryStreamOptions(clock, 1, name));
    REQUIRE_FALSE(stream.ok());
    CHECK(GetErrorCode(stream.status()) == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("Create checks shard_count against 1 and max_shards", "[stream][create]") {
  auto clock = std::make_shared<SimulatedClock>();
  SECTION("below 1 is kInvalidArgument") {
    for (int count : {0, -1, -10000}) {
      INFO("shard_count " << count);
      absl::StatusOr<std::unique_ptr<Stream>> stream =
          Stream::Create(MemoryStreamOptions(clock, count));
      REQUIRE_FALSE(stream.ok());
      CHECK(GetErrorCode(stream.status()) == ErrorCode::kInvalidArgument);
    }
  }
  SECTION("above the default quota of 10,000 is kLimitExceeded") {
    absl::StatusOr<std::unique_ptr<Stream>> stream =
        Stream::Create(MemoryStreamOptions(clock, 10001));
    REQUIRE_FALSE(stream.ok());
    CHECK(GetErrorCode(stream.status()) == ErrorCode::kLimitExceeded);
  }
  SECTION("a custom quota is inclusive") {
    StreamOptions options = MemoryStreamOptions(clock, 5);
    options.max_shards = 5;
    std::unique_ptr<Stream> stream = MustCreate(options);
    CHECK(stream->ListShards().size() == 5);

    options.shard_count = 6;
    absl::StatusOr<std::unique_ptr<Stream>> over = Stream::Create(options);
    REQUIRE_FALSE(over.ok());
    CHECK(GetErrorCode(over.status()) == ErrorCode::kLimitExceeded);
  }
  SECTION("a quota below 1 is kInvalidArgument") {
    StreamOptions options = MemoryStreamOptions(clock, 1);
    options.max_shards = 0;
    absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create(options);
    REQUIRE_FALSE(stream.ok());
    CHECK(GetErrorCode(stream.status()) == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("Create takes max_record_bytes within [1 MiB, 10 MiB], else kValidation",
          "[stream][create]") {
  auto clock = std::make_shared<SimulatedClock>();
  for (size_t bytes : {kMiB, kMiB + 1, 5 * kMiB, 10 * kMiB - 1, 10 * kMiB}) {
    INFO("max_record_bytes " << bytes);
    StreamOptions options = MemoryStreamOptions(clock);
    options.max_record_bytes = bytes;
    absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create(options);
    REQUIRE(stream.ok());
    CHECK((*stream)->options().max_record_bytes == bytes);
  }
  for (size_t bytes : {size_t{0}, size_t{1}, kMiB - 1, 10 * kMiB + 1, 100 * kMiB}) {
    INFO("max_record_bytes " << bytes);
    StreamOptions options = MemoryStreamOptions(clock);
    options.max_record_bytes = bytes;
    absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create(options);
    REQUIRE_FALSE(stream.ok());
    CHECK(GetErrorCode(stream.status()) == ErrorCode::kValidation);
  }
}

TEST_CASE("Create takes a retention within [24 h, 8760 h], else kInvalidArgument",
          "[stream][create]") {
  auto clock = std::make_shared<SimulatedClock>();
  const absl::Duration accepted[] = {absl::Hours(24), absl::Hours(24) + absl::Microseconds(1),
                                     absl::Hours(168), absl::Hours(8760)};
  for (absl::Duration retention : accepted) {
    INFO("retention " << retention);
    StreamOptions options = MemoryStreamOptions(clock);
    options.retention = retention;
    absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create(options);
    REQUIRE(stream.ok());
    CHECK((*stream)->retention() == retention);
  }
  const absl::Duration rejected[] = {absl::ZeroDuration(),
                                     -absl::Hours(24),
                                     absl::Hours(24) - absl::Microseconds(1),
                                     absl::Hours(8760) + absl::Microseconds(1),
                                     absl::Hours(100000),
                                     absl::Milliseconds(1)};
  for (absl::Duration retention : rejected) {
    INFO("retention " << retention);
    StreamOptions options = MemoryStreamOptions(clock);
    options.retention = retention;
    absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create(options);
    REQUIRE_FALSE(stream.ok());
    CHECK(GetErrorCode(stream.status()) == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("allow_short_retention lowers the minimum retention to 1 ms only", "[stream][create]") {
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions options = MemoryStreamOptions(clock);
  options.allow_short_retention = true;
  for (absl::Duration retention : {absl::Milliseconds(1), absl::Seconds(5), absl::Hours(8760)}) {
    INFO("retention " << retention);
    options.retention = retention;
    absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create(options);
    REQUIRE(stream.ok());
    CHECK((*stream)->retention() == retention);
  }
  for (absl::Duration retention :
       {absl::ZeroDuration(), absl::Milliseconds(1) - absl::Microseconds(1),
        absl::Hours(8760) + absl::Microseconds(1)}) {
    INFO("retention " << retention);
    options.retention = retention;
    absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create(options);
    REQUIRE_FALSE(stream.ok());
    CHECK(GetErrorCode(stream.status()) == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("Create takes max_put_records_bytes of at least 1 MiB", "[stream][create]") {
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions options = MemoryStreamOptions(clock);
  options.max_put_records_bytes = kMiB;
  CHECK(Stream::Create(options).ok());
  options.max_put_records_bytes = kMiB - 1;
  absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create(options);
  REQUIRE_FALSE(stream.ok());
  CHECK(GetErrorCode(stream.status()) == ErrorCode::kInvalidArgument);
}

TEST_CASE("memory_limit is for in-memory streams: with storage Create and Open refuse it",
          "[stream][create]") {
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions options = MemoryStreamOptions(clock);
  CHECK(options.memory_limit.budget_bytes == 0u);  // unbounded by default
  CHECK(options.memory_limit.policy == MemoryLimitPolicy::kRejectPuts);
  options.memory_limit.budget_bytes = kMiB;
  CHECK(Stream::Create(options).ok());
  options.memory_limit.policy = MemoryLimitPolicy::kRetireOldest;
  CHECK(Stream::Create(options).ok());

  TempDir dir("memory-limit", TempDir::kAbsent);
  StreamOptions durable = DurableStreamOptions(dir.path(), clock, 1, FsyncPolicy::kNever, "d");
  durable.memory_limit.budget_bytes = kMiB;
  for (const bool open : {false, true}) {
    absl::StatusOr<std::unique_ptr<Stream>> stream =
        open ? Stream::Open(durable) : Stream::Create(durable);
    REQUIRE_FALSE(stream.ok());
    CHECK(GetErrorCode(stream.status()) == ErrorCode::kInvalidArgument);
    CHECK(stream.status().message() ==
          "memory_limit is for in-memory streams: a durable stream's memory is bounded by "
          "storage->memory_budget_bytes, which evicts to disk and loses nothing");
  }
}

// ---------------------------------------------------------------------------------------------
// ListShards

struct GoldenRange {
  const char* start;
  const char* end;
};

TEST_CASE("ListShards gives N shards the CreateStream hash-key ranges", "[stream][list_shards]") {
  // Computed with python3: step = 2**128 // N; shard i = [i*step, (i+1)*step - 1], the last one
  // ending at 2**128 - 1.
  const std::map<int, std::vector<GoldenRange>> golden = {
      {1, {{"0", kMaxDecimal}}},
      {2,
       {{"0", "170141183460469231731687303715884105727"},
        {"170141183460469231731687303715884105728", kMaxDecimal}}},
      {3,
       {{"0", "113427455640312821154458202477256070484"},
        {"113427455640312821154458202477256070485", "226854911280625642308916404954512140969"},
        {"226854911280625642308916404954512140970", kMaxDecimal}}},
      {4,
       {{"0", "85070591730234615865843651857942052863"},
        {"85070591730234615865843651857942052864", "170141183460469231731687303715884105727"},
        {"170141183460469231731687303715884105728", "255211775190703847597530955573826158591"},
        {"255211775190703847597530955573826158592", kMaxDecimal}}},
      {7,
       {{"0", "48611766702991209066196372490252601635"},
        {"48611766702991209066196372490252601636", "97223533405982418132392744980505203271"},
        {"97223533405982418132392744980505203272", "145835300108973627198589117470757804907"},
        {"145835300108973627198589117470757804908", "194447066811964836264785489961010406543"},
        {"194447066811964836264785489961010406544", "243058833514956045330981862451263008179"},
        {"243058833514956045330981862451263008180", "291670600217947254397178234941515609815"},
        {"291670600217947254397178234941515609816", kMaxDecimal}}},
  };
  const int n = GENERATE(1, 2, 3, 4, 7);
  INFO("shard_count " << n);
  const std::vector<GoldenRange>& ranges = golden.at(n);
  std::unique_ptr<Stream> stream = MakeStream(std::make_shared<SimulatedClock>(), n);
  const std::vector<ShardDescription> shards = stream->ListShards();
  REQUIRE(shards.size() == ranges.size());
  const std::string ids[] = {"shardId-000000000000", "shardId-000000000001", "shardId-000000000002",
                             "shardId-000000000003", "shardId-000000000004", "shardId-000000000005",
                             "shardId-000000000006"};
  for (size_t i = 0; i < shards.size(); ++i) {
    INFO("shard " << i);
    CHECK(shards[i].shard_id == ShardId(static_cast<uint32_t>(i)));
    CHECK(shards[i].shard_id.ToString() == ids[i]);
    CHECK(shards[i].hash_key_range.starting_hash_key.ToString() == ranges[i].start);
    CHECK(shards[i].hash_key_range.ending_hash_key.ToString() == ranges[i].end);
    CHECK_FALSE(shards[i].parent_shard_id.has_value());
    CHECK_FALSE(shards[i].adjacent_parent_shard_id.has_value());
    CHECK_FALSE(shards[i].closed());
    CHECK_FALSE(shards[i].sequence_number_range.ending_sequence_number.has_value());
  }
  // The reference's N = 3 ends, recorded from AWS.
  if (n == 3) {
    CHECK(shards[0].hash_key_range.ending_hash_key.ToString() ==
          "113427455640312821154458202477256070484");
    CHECK(shards[1].hash_key_range.ending_hash_key.ToString() ==
          "226854911280625642308916404954512140969");
    CHECK(shards[2].hash_key_range.ending_hash_key.ToString() ==
          "340282366920938463463374607431768211455");
  }
}

TEST_CASE("A shard's starting sequence number is at or below its first record's",
          "[stream][list_shards]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2);
  const std::vector<ShardDescription> before = stream->ListShards();
  const PutRecordResult a = MustPut(*stream, "a", "first");        // shard 0
  const PutRecordResult b = MustPut(*stream, "user-1", "second");  // shard 1
  REQUIRE(a.shard_id == ShardId(0));
  REQUIRE(b.shard_id == ShardId(1));
  CHECK(before[0].sequence_number_range.starting_sequence_number <= a.sequence_number);
  CHECK(before[1].sequence_number_range.starting_sequence_number <= b.sequence_number);
  // Puts do not move it.
  const std::vector<ShardDescription> after = stream->ListShards();
  CHECK(after[0].sequence_number_range.starting_sequence_number ==
        before[0].sequence_number_range.starting_sequence_number);
  CHECK(after[1].sequence_number_range.starting_sequence_number ==
        before[1].sequence_number_range.starting_sequence_number);
  CHECK_FALSE(after[0].closed());
}

// ---------------------------------------------------------------------------------------------
// Routing

TEST_CASE("PutRecord routes the reference test vectors as Kinesis does", "[stream][routing]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2);
  CHECK(HashKey::FromPartitionKey("a").ToString() == "16955237001963240173058271559858726497");
  CHECK(HashKey::FromPartitionKey("user-1").ToString() ==
        "285573413173782752570879317399258818820");

  const PutRecordResult a = MustPut(*stream, "a", "data-a");
  const PutRecordResult u = MustPut(*stream, "user-1", "data-u");
  CHECK(a.shard_id == ShardId(0));
  CHECK(a.shard_id == "shardId-000000000000");
  CHECK(u.shard_id == ShardId(1));
  CHECK(u.shard_id == "shardId-000000000001");
  CheckShardHolds(*stream, ShardId(0), {{"a", "data-a", a.sequence_number}});
  CheckShardHolds(*stream, ShardId(1), {{"user-1", "data-u", u.sequence_number}});
}

TEST_CASE("An explicit hash key overrides the partition key's MD5", "[stream][routing]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 3);
  // By MD5, "a" goes to shard 0 of 3 and "user-1" to shard 2 of 3.
  REQUIRE(MustPut(*stream, "a", "").shard_id == ShardId(0));
  REQUIRE(MustPut(*stream, "user-1", "").shard_id == ShardId(2));

  struct Case {
    const char* key;
    HashKey hash_key;
    uint32_t shard;
  };
  const Case cases[] = {
      {"user-1", HashKey(0), 0},
      {"user-1", MustHashKey("0"), 0},
      {"a", HashKey::Max(), 2},
      {"a", MustHashKey(kMaxDecimal), 2},
      // The edges of every range.
      {"a", MustHashKey("113427455640312821154458202477256070484"), 0},
      {"a", MustHashKey("113427455640312821154458202477256070485"), 1},
      {"a", MustHashKey("226854911280625642308916404954512140969"), 1},
      {"a", MustHashKey("226854911280625642308916404954512140970"), 2},
      {"user-1", MustHashKey("113427455640312821154458202477256070484"), 0},
      {"user-1", MustHashKey("170141183460469231731687303715884105728"), 1},
  };
  for (const Case& c : cases) {
    INFO("key " << c.key << ", explicit hash key " << c.hash_key);
    PutOptions options;
    options.explicit_hash_key = c.hash_key;
    CHECK(MustPut(*stream, c.key, "x", options).shard_id == ShardId(c.shard));
  }
}

TEST_CASE("PutRecords entries route by their explicit hash keys too", "[stream][routing]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 3);
  std::vector<PutRecordsEntry> entries = {
      {"user-1", "to-0", HashKey(0)},
      {"a", "to-2", HashKey::Max()},
      {"a", "to-1", MustHashKey("113427455640312821154458202477256070485")},
      {"user-1", "by-md5", std::nullopt},
  };
  absl::StatusOr<PutRecordsResult> result = stream->PutRecords(entries);
  REQUIRE(result.ok());
  CHECK(result->failed_record_count == 0);
  REQUIRE(result->entries.size() == 4);
  CHECK(result->entries[0].shard_id == ShardId(0));
  CHECK(result->entries[1].shard_id == ShardId(2));
  CHECK(result->entries[2].shard_id == ShardId(1));
  CHECK(result->entries[3].shard_id == ShardId(2));
}

// A random partition key of 1-256 UTF-16 units mixing 1-, 2-, 3- and 4-byte characters.
std::string RandomKey(std::mt19937_64& rng) {
  const int units = std::uniform_int_distribution<int>(1, kMaxPartitionKeyChars)(rng);
  std::string key;
  int used = 0;
  while (used < units) {
    const int pick = std::uniform_int_distribution<int>(0, 9)(rng);
    if (pick == 0 && used + 2 <= units) {
      key.append(kSmiley);
      used += 2;
    } else if (pick == 1) {
      key.append(kEAcute);
      ++used;
    } else if (pick == 2) {
      key.append(kEuro);
      ++used;
    } else {
      key.push_back(static_cast<char>(std::uniform_int_distribution<int>(0x21, 0x7E)(rng)));
      ++used;
    }
  }
  return key;
}

TEST_CASE("Random keys land on the shard whose range holds the MD5 of the key",
          "[stream][routing]") {
  auto clock = std::make_shared<SimulatedClock>();
  const int n = GENERATE(2, 7);
  INFO("shard_count " << n);
  std::unique_ptr<Stream> stream = MakeStream(clock, n);
  const std::vector<ShardDescription> shards = stream->ListShards();
  std::mt19937_64 rng(20240101 + static_cast<uint64_t>(n));
  std::vector<std::string> used;
  std::map<uint32_t, std::vector<Expected>> expected;
  for (int i = 0; i < 1500; ++i) {
    // A third of the puts reuse an earlier key, as real traffic does.
    std::string key = !used.empty() && i % 3 == 0
                          ? used[std::uniform_int_distribution<size_t>(0, used.size() - 1)(rng)]
                          : RandomKey(rng);
    if (i % 50 == 0) key = "short-" + std::to_string(i);
    used.push_back(key);
    const std::string data = "record-" + std::to_string(i);
    const PutRecordResult put = MustPut(*stream, key, data);
    const ShardId want = ShardHolding(shards, Md5HashKey(key));
    INFO("put " << i << ", key of " << key.size() << " bytes");
    REQUIRE(put.shard_id == want);
    CHECK(ShardHolding(shards, HashKey::FromPartitionKey(key)) == want);
    expected[want.index()].push_back({key, data, put.sequence_number});
  }
  for (const ShardDescription& s : shards) {
    CheckShardHolds(*stream, s.shard_id, expected[s.shard_id.index()]);
  }
  // With 1,500 keys every shard gets some.
  CHECK(expected.size() == static_cast<size_t>(n));
}

// ---------------------------------------------------------------------------------------------
// Partition keys and record sizes

TEST_CASE("Partition keys have 1 to 256 characters counted in UTF-16 units",
          "[stream][partition_key]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  std::vector<Expected> written;
  written.push_back({"before", "b", MustPut(*stream, "before", "b").sequence_number});

  const std::string accepted[] = {
      "k",
      std::string(255, 'k'),
      std::string(256, 'k'),
      Repeat(kSmiley, 128),                          // 512 bytes, 256 units
      Repeat(kEAcute, 256),                          // 512 bytes, 256 units
      Repeat(kEuro, 256),                            // 768 bytes, 256 units
      std::string(254, 'k') + std::string(kSmiley),  // 256 units
      std::string(kSmiley),
      std::string("a\0b", 3),  // NUL is a valid character
  };
  for (const std::string& key : accepted) {
    INFO("key of " << key.size() << " bytes");
    absl::StatusOr<PutRecordResult> put = stream->PutRecord(key, "ok");
    REQUIRE(put.ok());
    written.push_back({key, "ok", put->sequence_number});
  }

  const std::string rejected[] = {
      "",
      std::string(257, 'k'),
      std::string(1000, 'k'),
      Repeat(kSmiley, 129),                          // 258 units
      std::string(255, 'k') + std::string(kSmiley),  // 257 units
      Repeat(kEAcute, 257),                          // 257 units
      Repeat(kEuro, 257),                            // 257 units
  };
  for (const std::string& key : rejected) {
    INFO("key of " << key.size() << " bytes");
    absl::StatusOr<PutRecordResult> put = stream->PutRecord(key, "bad");
    REQUIRE_FALSE(put.ok());
    CHECK(GetErrorCode(put.status()) == ErrorCode::kInvalidArgument);
    CHECK_FALSE(put.status().message().empty());
  }

  written.push_back({"after", "a", MustPut(*stream, "after", "a").sequence_number});
  CheckShardHolds(*stream, ShardId(0), written);
}

TEST_CASE("Partition keys must be valid UTF-8", "[stream][partition_key]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  const PutRecordResult before = MustPut(*stream, "before", "b");

  const std::string rejected[] = {
      "\xFF",
      "abc\xFE",
      "\x80",  // a lone continuation byte
      "a\xBF"
      "b",             // a continuation byte after ASCII
      "\xC3",          // truncated 2-byte sequence
      "\xE2\x82",      // truncated 3-byte sequence
      "\xF0\x9F\x99",  // truncated 4-byte sequence
      "\xC3"
      "a",                      // a lead byte followed by ASCII
      "\xC0\x80",               // overlong NUL
      "\xC1\xBF",               // overlong
      "\xE0\x80\xAF",           // overlong '/'
      "\xF0\x80\x80\xAF",       // overlong '/'
      "\xED\xA0\x80",           // U+D800, a surrogate
      "\xED\xBF\xBF",           // U+DFFF, a surrogate
      "\xF4\x90\x80\x80",       // U+110000, past Unicode
      "\xF8\x88\x80\x80\x80",   // a 5-byte form
      "k\xF0\x9F\x99\x82\xF0",  // valid, then a truncated lead
  };
  for (const std::string& key : rejected) {
    INFO("key of " << key.size() << " bytes");
    absl::StatusOr<PutRecordResult> put = stream->PutRecord(key, "bad");
    REQUIRE_FALSE(put.ok());
    CHECK(GetErrorCode(put.status()) == ErrorCode::kInvalidArgument);
  }

  std::vector<Expected> written = {{"before", "b", before.sequence_number}};
  // The edges of the valid ranges are accepted.
  const std::string accepted[] = {"\x7F",         "\xC2\x80",         "\xDF\xBF",
                                  "\xE0\xA0\x80", "\xED\x9F\xBF",     "\xEE\x80\x80",
                                  "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF"};
  for (const std::string& key : accepted) {
    INFO("key of " << key.size() << " bytes");
    absl::StatusOr<PutRecordResult> put = stream->PutRecord(key, "ok");
    REQUIRE(put.ok());
    written.push_back({key, "ok", put->sequence_number});
  }
  written.push_back({"after", "a", MustPut(*stream, "after", "a").sequence_number});
  CheckShardHolds(*stream, ShardId(0), written);
}

TEST_CASE("A record's key bytes plus data bytes may not exceed max_record_bytes",
          "[stream][record_size]") {
  auto clock = std::make_shared<SimulatedClock>();
  const size_t max = GENERATE(size_t{1} << 20, size_t{10} << 20);
  INFO("max_record_bytes " << max);
  StreamOptions options = MemoryStreamOptions(clock);
  options.max_record_bytes = max;
  std::unique_ptr<Stream> stream = MustCreate(options);
  std::vector<Expected> written;
  written.push_back({"before", "b", MustPut(*stream, "before", "b").sequence_number});

  // Exactly the maximum is accepted, with a 1-byte and a 2-byte (one-character) key.
  const std::string full1(max - 1, 'x');
  written.push_back({"k", full1, MustPut(*stream, "k", full1).sequence_number});
  const std::string eacute(kEAcute);
  const std::string full2(max - 2, 'y');
  written.push_back({eacute, full2, MustPut(*stream, eacute, full2).sequence_number});

  // One byte more is kInvalidArgument.
  const std::string over1(max, 'x');
  const std::string over2(max - 1, 'y');
  const std::string key1 = "k";
  const std::string key10 = std::string(10, 'k');
  const std::string over3(max - 9, 'z');
  struct Bad {
    const std::string* key;
    const std::string* data;
  };
  for (const Bad& bad : {Bad{&key1, &over1}, Bad{&eacute, &over2}, Bad{&key10, &over3}}) {
    INFO("key of " << bad.key->size() << " bytes, data of " << bad.data->size() << " bytes");
    absl::StatusOr<PutRecordResult> put = stream->PutRecord(*bad.key, *bad.data);
    REQUIRE_FALSE(put.ok());
    CHECK(GetErrorCode(put.status()) == ErrorCode::kInvalidArgument);
  }

  // An empty data blob is fine.
  written.push_back({"empty", "", MustPut(*stream, "empty", "").sequence_number});
  written.push_back({"after", "a", MustPut(*stream, "after", "a").sequence_number});
  CheckShardHolds(*stream, ShardId(0), written);
}

TEST_CASE("Rejected puts leave every shard intact", "[stream][partition_key]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2);
  std::map<uint32_t, std::vector<Expected>> expected;
  auto put = [&](const std::string& key, const std::string& data) {
    const PutRecordResult r = MustPut(*stream, key, data);
    expected[r.shard_id.index()].push_back({key, data, r.sequence_number});
  };
  const std::string big(kMiB, 'x');
  for (int round = 0; round < 20; ++round) {
    put("a", "a-" + std::to_string(round));
    put("user-1", "u-" + std::to_string(round));
    CHECK_FALSE(stream->PutRecord("", "x").ok());
    CHECK_FALSE(stream->PutRecord(std::string(257, 'k'), "x").ok());
    CHECK_FALSE(stream->PutRecord("\xFF", "x").ok());
    CHECK_FALSE(stream->PutRecord("a", big).ok());
    CHECK_FALSE(stream->PutRecord("user-1", big).ok());
    PutOptions bad_order;
    bad_order.sequence_number_for_ordering = SequenceNumber(12345);
    CHECK_FALSE(stream->PutRecord("a", "x", bad_order).ok());
    clock->Advance(absl::Milliseconds(3));
  }
  CheckShardHolds(*stream, ShardId(0), expected[0]);
  CheckShardHolds(*stream, ShardId(1), expected[1]);
}

TEST_CASE("Records carry the clock's time, never going backwards within a shard",
          "[stream][arrival]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  const absl::Time t0 = SimulatedClock::DefaultStart();
  MustPut(*stream, "k", "0");
  clock->Advance(absl::Milliseconds(1500));
  MustPut(*stream, "k", "1");
  clock->Advance(absl::Microseconds(7));
  MustPut(*stream, "k", "2");
  clock->Set(t0 + absl::Milliseconds(100));  // backwards
  MustPut(*stream, "k", "3");
  clock->Set(t0 + absl::Seconds(10));
  MustPut(*stream, "k", "4");

  const std::vector<Got> got = ReadShard(*stream, ShardId(0));
  REQUIRE(got.size() == 5);
  CHECK(got[0].arrival == t0);
  CHECK(got[1].arrival == t0 + absl::Milliseconds(1500));
  CHECK(got[2].arrival == t0 + absl::Milliseconds(1500) + absl::Microseconds(7));
  CHECK(got[3].arrival == got[2].arrival);  // raised to the previous record's time
  CHECK(got[4].arrival == t0 + absl::Seconds(10));
}

// ---------------------------------------------------------------------------------------------
// Sequence numbers

TEST_CASE("Sequence numbers increase within a shard and are unique in the stream",
          "[stream][sequence_number]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 4);
  std::map<uint32_t, std::vector<Expected>> expected;
  std::set<SequenceNumber> seen;
  for (int i = 0; i < 2000; ++i) {
    const std::string key = "key-" + std::to_string(i % 37);
    const std::string data = std::to_string(i);
    const PutRecordResult put = MustPut(*stream, key, data);
    INFO("put " << i);
    std::vector<Expected>& shard = expected[put.shard_id.index()];
    if (!shard.empty()) CHECK(shard.back().sequence_number < put.sequence_number);
    CHECK(seen.insert(put.sequence_number).second);
    // The decimal form is canonical, 38 digits, and parses back to the same number.
    const std::string text = put.sequence_number.ToString();
    CHECK(text.size() == 38);
    absl::StatusOr<SequenceNumber> parsed = SequenceNumber::Parse(text);
    REQUIRE(parsed.ok());
    CHECK(*parsed == put.sequence_number);
    shard.push_back({key, data, put.sequence_number});
    if (i % 100 == 0) clock->Advance(absl::Seconds(1));
  }
  CHECK(seen.size() == 2000);
  REQUIRE(expected.size() == 4);
  for (const auto& [index, records] : expected) {
    CheckShardHolds(*stream, ShardId(index), records);
  }
}

TEST_CASE("sequence_number_for_ordering gives a greater sequence number",
          "[stream][sequence_number]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2);
  std::map<uint32_t, std::vector<Expected>> expected;
  auto put = [&](const std::string& key, const std::string& data, const PutOptions& options) {
    const PutRecordResult r = MustPut(*stream, key, data, options);
    expected[r.shard_id.index()].push_back({key, data, r.sequence_number});
    return r;
  };

  SECTION("from the same shard") {
    PutRecordResult last = put("a", "0", {});
    for (int i = 1; i < 20; ++i) {
      PutOptions options;
      options.sequence_number_for_ordering = last.sequence_number;
      const PutRecordResult next = put("a", std::to_string(i), options);
      CHECK(next.shard_id == ShardId(0));
      CHECK(next.sequence_number > last.sequence_number);
      last = next;
    }
    // An older number of the shard still orders the new record after it (and after the newest).
    PutOptions options;
    options.sequence_number_for_ordering = expected[0].front().sequence_number;
    const PutRecordResult again = put("a", "again", options);
    CHECK(again.sequence_number > last.sequence_number);
  }

  SECTION("from another shard that is far ahead") {
    PutRecordResult ahead;
    for (int i = 0; i < 500; ++i) ahead = put("user-1", std::to_string(i), {});
    REQUIRE(ahead.shard_id == ShardId(1));
    const PutRecordResult plain = put("a", "plain", {});
    REQUIRE(plain.shard_id == ShardId(0));
    REQUIRE(plain.sequence_number < ahead.sequence_number);  // counters are per shard

    PutOptions options;
    options.sequence_number_for_ordering = ahead.sequence_number;
    const PutRecordResult ordered = put("a", "ordered", options);
    CHECK(ordered.shard_id == ShardId(0));
    CHECK(ordered.sequence_number > ahead.sequence_number);
    // Later puts of the shard keep increasing past it.
    const PutRecordResult later = put("a", "later", {});
    CHECK(later.sequence_number > ordered.sequence_number);
    // And the ordered number can itself order a put on the far shard.
    options.sequence_number_for_ordering = later.sequence_number;
    const PutRecordResult back = put("user-1", "back", options);
    CHECK(back.shard_id == ShardId(1));
    CHECK(back.sequence_number > later.sequence_number);
  }

  SECTION("combined with an explicit hash key") {
    const PutRecordResult first = put("user-1", "first", {});
    PutOptions options;
    options.sequence_number_for_ordering = first.sequence_number;
    options.explicit_hash_key = HashKey(0);
    const PutRecordResult second = put("user-1", "second", options);
    CHECK(second.shard_id == ShardId(0));
    CHECK(second.sequence_number > first.sequence_number);
  }

  CheckShardHolds(*stream, ShardId(0), expected[0]);
  CheckShardHolds(*stream, ShardId(1), expected[1]);
}

TEST_CASE("sequence_number_for_ordering must be a number this stream issued",
          "[stream][sequence_number]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2, "ordering-stream");
  std::unique_ptr<Stream> other = MakeStream(clock, 2, "other-stream");
  const PutRecordResult mine = MustPut(*stream, "a", "mine");
  const PutRecordResult theirs = MustPut(*other, "a", "theirs");
  REQUIRE(theirs.shard_id == mine.shard_id);

  absl::StatusOr<SequenceNumber> big = SequenceNumber::Parse(kMaxDecimal);
  REQUIRE(big.ok());
  // mine's successor: the same shard and stream, but a counter not issued yet.
  const SequenceNumber unissued(mine.sequence_number.value() + (absl::uint128(1) << 60));
  const SequenceNumber rejected[] = {
      SequenceNumber(),       SequenceNumber(1), SequenceNumber(12345), *big,
      theirs.sequence_number, unissued,
  };
  for (const SequenceNumber& s : rejected) {
    INFO("sequence_number_for_ordering " << s);
    PutOptions options;
    options.sequence_number_for_ordering = s;
    absl::StatusOr<PutRecordResult> put = stream->PutRecord("a", "bad", options);
    REQUIRE_FALSE(put.ok());
    CHECK(GetErrorCode(put.status()) == ErrorCode::kInvalidArgument);
  }

  // Nothing was written, and the stream still takes puts in order.
  const PutRecordResult after = MustPut(*stream, "a", "after");
  CHECK(after.sequence_number > mine.sequence_number);
  CheckShardHolds(*stream, ShardId(0),
                  {{"a", "mine", mine.sequence_number}, {"a", "after", after.sequence_number}});
  CheckShardHolds(*other, ShardId(0), {{"a", "theirs", theirs.sequence_number}});
}

// ---------------------------------------------------------------------------------------------
// PutRecords

TEST_CASE("PutRecords rejects an empty or a 501-entry request as a whole",
          "[stream][put_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);

  absl::StatusOr<PutRecordsResult> empty = stream->PutRecords({});
  REQUIRE_FALSE(empty.ok());
  CHECK(GetErrorCode(empty.status()) == ErrorCode::kInvalidArgument);

  std::vector<PutRecordsEntry> entries;
  for (int i = 0; i < 501; ++i) entries.push_back({"k", std::to_string(i), std::nullopt});
  absl::StatusOr<PutRecordsResult> too_many = stream->PutRecords(entries);
  REQUIRE_FALSE(too_many.ok());
  CHECK(GetErrorCode(too_many.status()) == ErrorCode::kInvalidArgument);
  CHECK(ReadShard(*stream, ShardId(0)).empty());

  entries.pop_back();
  absl::StatusOr<PutRecordsResult> full = stream->PutRecords(entries);
  REQUIRE(full.ok());
  CHECK(full->failed_record_count == 0);
  REQUIRE(full->entries.size() == 500);
  const std::vector<Got> got = ReadShard(*stream, ShardId(0));
  REQUIRE(got.size() == 500);
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("entry " << i);
    CHECK(got[i].data == std::to_string(i));
    CHECK(got[i].sequence_number == full->entries[i].sequence_number);
  }
}

TEST_CASE("PutRecords rejects a request over max_put_records_bytes as a whole",
          "[stream][put_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2);
  REQUIRE(stream->options().max_put_records_bytes == 5 * kMiB);

  // Five records of exactly 1 MiB each (1-byte key + data) make exactly 5 MiB.
  std::vector<PutRecordsEntry> entries;
  for (int i = 0; i < 5; ++i) {
    entries.push_back(
        {i % 2 == 0 ? "a" : "b", std::string(kMiB - 1, static_cast<char>('0' + i)), std::nullopt});
  }
  SECTION("one byte over") {
    entries.push_back({"k", "", std::nullopt});
    absl::StatusOr<PutRecordsResult> result = stream->PutRecords(entries);
    REQUIRE_FALSE(result.ok());
    CHECK(GetErrorCode(result.status()) == ErrorCode::kInvalidArgument);
    // Nothing was written.
    CHECK(ReadShard(*stream, ShardId(0)).empty());
    CHECK(ReadShard(*stream, ShardId(1)).empty());
  }
  SECTION("one byte over, counted in a partition key") {
    entries[4].partition_key = "bb";
    absl::StatusOr<PutRecordsResult> result = stream->PutRecords(entries);
    REQUIRE_FALSE(result.ok());
    CHECK(GetErrorCode(result.status()) == ErrorCode::kInvalidArgument);
    CHECK(ReadShard(*stream, ShardId(0)).empty());
    CHECK(ReadShard(*stream, ShardId(1)).empty());
  }
  SECTION("exactly at the limit") {
    absl::StatusOr<PutRecordsResult> result = stream->PutRecords(entries);
    REQUIRE(result.ok());
    CHECK(result->failed_record_count == 0);
    size_t read = ReadShard(*stream, ShardId(0)).size() + ReadShard(*stream, ShardId(1)).size();
    CHECK(read == 5);
  }
}

TEST_CASE("A custom max_put_records_bytes is enforced exactly", "[stream][put_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions options = MemoryStreamOptions(clock);
  options.max_put_records_bytes = 2 * kMiB + 10;
  std::unique_ptr<Stream> stream = MustCreate(options);
  std::vector<PutRecordsEntry> entries = {{"k", std::string(kMiB - 1, 'x'), std::nullopt},
                                          {"k", std::string(kMiB - 1, 'y'), std::nullopt},
                                          {"0123456789", "", std::nullopt}};
  REQUIRE(stream->PutRecords(entries).ok());
  entries[2].data = "!";
  absl::StatusOr<PutRecordsResult> over = stream->PutRecords(entries);
  REQUIRE_FALSE(over.ok());
  CHECK(GetErrorCode(over.status()) == ErrorCode::kInvalidArgument);
  CHECK(ReadShard(*stream, ShardId(0)).size() == 3);
}

TEST_CASE("PutRecords fails bad entries alone and writes the others", "[stream][put_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 2);
  const PutRecordResult before = MustPut(*stream, "a", "before");

  const std::string oversized(kMiB, 'o');  // with any key, over 1 MiB
  const std::vector<PutRecordsEntry> entries = {
      {"a", "e0", std::nullopt},                          // shard 0
      {"", "empty key", std::nullopt},                    // bad
      {"user-1", "e2", std::nullopt},                     // shard 1
      {"a", oversized, std::nullopt},                     // bad
      {"a", "e4", std::nullopt},                          // shard 0
      {std::string(257, 'k'), "long key", std::nullopt},  // bad
      {"user-1", "e6", std::nullopt},                     // shard 1
      {"\xC3", "broken UTF-8", std::nullopt},             // bad
      {"x", "e8", HashKey(0)},                            // shard 0
      {"user-1", "e9", std::nullopt},                     // shard 1
  };
  const bool bad[] = {false, true, false, true, false, true, false, true, false, false};
  const uint32_t shard[] = {0, 0, 1, 0, 0, 0, 1, 0, 0, 1};

  clock->Advance(absl::Seconds(1));
  absl::StatusOr<PutRecordsResult> result = stream->PutRecords(entries);
  REQUIRE(result.ok());
  CHECK(result->failed_record_count == 4);
  REQUIRE(result->entries.size() == entries.size());

  std::map<uint32_t, std::vector<Expected>> expected;
  expected[0].push_back({"a", "before", before.sequence_number});
  for (size_t i = 0; i < entries.size(); ++i) {
    INFO("entry " << i);
    const PutRecordsResultEntry& e = result->entries[i];
    if (bad[i]) {
      CHECK_FALSE(e.ok());
      CHECK(e.error_code == ErrorCode::kInvalidArgument);
      CHECK_FALSE(e.error_message.empty());
      CHECK(e.sequence_number == SequenceNumber());
    } else {
      CHECK(e.ok());
      CHECK(e.error_code == ErrorCode::kOk);
      CHECK(e.error_message.empty());
      CHECK(e.shard_id == ShardId(shard[i]));
      expected[e.shard_id.index()].push_back(
          {entries[i].partition_key, entries[i].data, e.sequence_number});
    }
  }
  // The good entries are readable with the returned shards and sequence numbers, in request
  // order within each shard; the bad ones wrote nothing.
  CheckShardHolds(*stream, ShardId(0), expected[0]);
  CheckShardHolds(*stream, ShardId(1), expected[1]);
  for (const Got& g : ReadShard(*stream, ShardId(0))) {
    if (g.data != "before") CHECK(g.arrival == SimulatedClock::DefaultStart() + absl::Seconds(1));
  }

  // The stream keeps working.
  const PutRecordResult after = MustPut(*stream, "a", "after");
  CHECK(after.sequence_number > result->entries[8].sequence_number);
}

TEST_CASE("PutRecords where every entry is bad writes nothing", "[stream][put_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock);
  const std::vector<PutRecordsEntry> entries = {{"", "x", std::nullopt},
                                                {"\xFF", "y", std::nullopt}};
  absl::StatusOr<PutRecordsResult> result = stream->PutRecords(entries);
  REQUIRE(result.ok());
  CHECK(result->failed_record_count == 2);
  REQUIRE(result->entries.size() == 2);
  CHECK(result->entries[0].error_code == ErrorCode::kInvalidArgument);
  CHECK(result->entries[1].error_code == ErrorCode::kInvalidArgument);
  CHECK(ReadShard(*stream, ShardId(0)).empty());
}

TEST_CASE("PutRecords keeps request order within each shard", "[stream][put_records]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = MakeStream(clock, 3);
  std::map<uint32_t, std::vector<Expected>> expected;
  std::set<SequenceNumber> seen;
  for (int call = 0; call < 4; ++call) {
    std::vector<PutRecordsEntry> entries;
    for (int i = 0; i < 500; ++i) {
      entries.push_back({"player-" + std::to_string((i * 7 + call) % 23),
                         std::to_string(call) + "/" + std::to_string(i), std::nullopt});
    }
    absl::StatusOr<PutRecordsResult> result = stream->PutRecords(entries);
    REQUIRE(result.ok());
    REQUIRE(result->failed_record_count == 0);
    REQUIRE(result->entries.size() == 500);
    for (size_t i = 0; i < entries.size(); ++i) {
      const PutRecordsResultEntry& e = result->entries[i];
      REQUIRE(e.ok());
      CHECK(e.shard_id == ShardHolding(stream->ListShards(), Md5HashKey(entries[i].partition_key)));
      std::vector<Expected>& shard = expected[e.shard_id.index()];
      if (!shard.empty()) CHECK(shard.back().sequence_number < e.sequence_number);
      CHECK(seen.insert(e.sequence_number).second);
      shard.push_back({entries[i].partition_key, entries[i].data, e.sequence_number});
    }
    clock->Advance(absl::Milliseconds(10));
  }
  for (const auto& [index, records] : expected) {
    CheckShardHolds(*stream, ShardId(index), records);
  }
}

}  // namespace
}  // namespace rill
