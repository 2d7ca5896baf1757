// SplitShard, MergeShards, UpdateShardCount, ListShards filters and paging, stream status and
// capacity modes, against Kinesis' rules (docs/semantics.md: ListShards, Resharding, Capacity
// modes).
#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/base/error.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

const HashKey kHalf(absl::MakeUint128(uint64_t{1} << 63, 0));  // 2^127

struct Fixture {
  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream;

  explicit Fixture(int shards, StreamOptions options = {}) {
    options.name = "reshard";
    options.shard_count = shards;
    options.clock = clock;
    auto s = Stream::Create(options);
    REQUIRE(s.ok());
    stream = std::move(*s);
  }

  ShardDescription Shard(uint32_t index) {
    for (const ShardDescription& d : stream->ListShards()) {
      if (d.shard_id == ShardId(index)) return d;
    }
    FAIL("shard " << index << " not listed");
    return {};
  }

  std::vector<std::string> ReadAll(ShardId shard, GetRecordsResult* last = nullptr) {
    auto it = stream->GetShardIterator(shard, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    std::vector<std::string> data;
    std::optional<ShardIterator> next = *it;
    for (int calls = 0; next && calls < 100; ++calls) {
      auto batch = stream->GetRecords(*next);
      REQUIRE(batch.ok());
      for (const Record& r : batch->records) data.emplace_back(r.data);
      next = batch->next_shard_iterator;
      if (batch->records.empty() && next) break;  // caught up on an open shard
      if (last) *last = *batch;
    }
    return data;
  }
};

std::vector<uint32_t> OpenIndexes(const Stream& s) {
  std::vector<uint32_t> open;
  for (const ShardDescription& d : s.ListShards()) {
    if (!d.closed()) open.push_back(d.shard_id.index());
  }
  return open;
}

void CheckTiling(const Stream& s) {
  std::vector<HashKeyRange> ranges;
  for (const ShardDescription& d : s.ListShards()) {
    if (!d.closed()) ranges.push_back(d.hash_key_range);
  }
  std::sort(ranges.begin(), ranges.end(), [](const HashKeyRange& a, const HashKeyRange& b) {
    return a.starting_hash_key < b.starting_hash_key;
  });
  REQUIRE_FALSE(ranges.empty());
  CHECK(ranges.front().starting_hash_key == HashKey());
  CHECK(ranges.back().ending_hash_key == HashKey::Max());
  for (size_t i = 0; i + 1 < ranges.size(); ++i) {
    CHECK(ranges[i].ending_hash_key.value() + 1 == ranges[i + 1].starting_hash_key.value());
  }
}

TEST_CASE("SplitShard closes the parent and opens two children with the next ids", "[resharding]") {
  Fixture f(2);
  REQUIRE(f.stream->PutRecord("a", "before").ok());            // "a" hashes into shard 0 of 2
  const HashKey key(absl::MakeUint128(uint64_t{1} << 62, 0));  // 2^126
  REQUIRE(f.stream->SplitShard(ShardId(0), key).ok());

  const std::vector<ShardDescription> shards = f.stream->ListShards();
  REQUIRE(shards.size() == 4);
  const ShardDescription parent = f.Shard(0);
  CHECK(parent.closed());
  CHECK_FALSE(f.Shard(1).closed());
  const ShardDescription a = f.Shard(2);
  const ShardDescription b = f.Shard(3);
  CHECK(a.shard_id.ToString() == "shardId-000000000002");
  CHECK(b.shard_id.ToString() == "shardId-000000000003");
  CHECK(a.parent_shard_id == ShardId(0));
  CHECK(b.parent_shard_id == ShardId(0));
  CHECK_FALSE(a.adjacent_parent_shard_id.has_value());
  CHECK(a.hash_key_range.starting_hash_key == HashKey());
  CHECK(a.hash_key_range.ending_hash_key.ToString() == "85070591730234615865843651857942052863");
  CHECK(b.hash_key_range.starting_hash_key.ToString() == "85070591730234615865843651857942052864");
  CHECK(b.hash_key_range.ending_hash_key.ToString() == "170141183460469231731687303715884105727");
  // Children number above every parent record, and the parent's range ends at its last record.
  REQUIRE(parent.sequence_number_range.ending_sequence_number.has_value());
  CHECK(*parent.sequence_number_range.ending_sequence_number >=
        parent.sequence_number_range.starting_sequence_number);
  CHECK((a.sequence_number_range.starting_sequence_number.value() >> 60) >
        (parent.sequence_number_range.ending_sequence_number->value() >> 60));
  CheckTiling(*f.stream);

  // New records for "a" go to the child that owns its hash key; the old one stays in the parent.
  auto put = f.stream->PutRecord("a", "after");
  REQUIRE(put.ok());
  CHECK(put->shard_id == ShardId(2));
  CHECK(put->sequence_number.value() >
        parent.sequence_number_range.ending_sequence_number->value());
  CHECK(f.ReadAll(ShardId(0)) == std::vector<std::string>{"before"});
  CHECK(f.ReadAll(ShardId(2)) == std::vector<std::string>{"after"});
}

TEST_CASE("a closed shard is read to its end, then gives a null iterator and its children",
          "[resharding]") {
  Fixture f(1);
  for (int i = 0; i < 5; ++i) REQUIRE(f.stream->PutRecord("k" + std::to_string(i), "x").ok());
  auto it = f.stream->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  REQUIRE(f.stream->SplitShard(ShardId(0), kHalf).ok());

  auto first = f.stream->GetRecords(*it, 3);
  REQUIRE(first.ok());
  CHECK(first->records.size() == 3);
  REQUIRE(first->next_shard_iterator.has_value());
  CHECK(first->child_shards.empty());
  auto second = f.stream->GetRecords(*first->next_shard_iterator, 3);
  REQUIRE(second.ok());
  CHECK(second->records.size() == 2);
  CHECK_FALSE(second->next_shard_iterator.has_value());
  REQUIRE(second->child_shards.size() == 2);
  CHECK(second->child_shards[0].shard_id == ShardId(1));
  CHECK(second->child_shards[1].shard_id == ShardId(2));
  CHECK(second->child_shards[0].parent_shards == std::vector<ShardId>{ShardId(0)});
  CHECK(second->child_shards[1].hash_key_range.starting_hash_key == kHalf);

  // LATEST on a closed shard is its end: nothing more, null iterator, the children.
  auto latest = f.stream->GetShardIterator(ShardId(0), StartingPosition::Latest());
  REQUIRE(latest.ok());
  auto end = f.stream->GetRecords(*latest);
  REQUIRE(end.ok());
  CHECK(end->records.empty());
  CHECK_FALSE(end->next_shard_iterator.has_value());
  CHECK(end->child_shards.size() == 2);

  // AT_SEQUENCE_NUMBER of the ending sequence number is accepted on the closed shard.
  const ShardDescription parent = f.Shard(0);
  auto at_end = f.stream->GetShardIterator(
      ShardId(0),
      StartingPosition::AtSequenceNumber(*parent.sequence_number_range.ending_sequence_number));
  CHECK(at_end.ok());
}

TEST_CASE("SplitShard enforces Kinesis' rules", "[resharding]") {
  Fixture f(2);
  const ShardDescription s0 = f.Shard(0);
  const absl::uint128 start = s0.hash_key_range.starting_hash_key.value();
  const absl::uint128 end = s0.hash_key_range.ending_hash_key.value();
  // start + 1 < key < end, strictly.
  for (absl::uint128 bad : {start, start + 1, end, end + 1}) {
    absl::Status s = f.stream->SplitShard(ShardId(0), HashKey(bad));
    CHECK(GetErrorCode(s) == ErrorCode::kInvalidArgument);
  }
  CHECK(f.stream->SplitShard(ShardId(0), HashKey(start + 2)).ok());
  // The shard is closed now: not eligible again.
  CHECK(GetErrorCode(f.stream->SplitShard(ShardId(0), kHalf)) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(f.stream->SplitShard(ShardId(7), kHalf)) == ErrorCode::kResourceNotFound);
  CHECK(GetErrorCode(f.stream->SplitShard("shardId-000000000099", kHalf)) ==
        ErrorCode::kResourceNotFound);
  CHECK(GetErrorCode(f.stream->SplitShard("not a shard", kHalf)) == ErrorCode::kInvalidArgument);
  CheckTiling(*f.stream);
}

TEST_CASE("SplitShard past the shard quota is LimitExceeded", "[resharding]") {
  StreamOptions options;
  options.max_shards = 2;
  Fixture f(2, options);
  CHECK(GetErrorCode(f.stream->SplitShard(ShardId(0), HashKey(12345))) ==
        ErrorCode::kLimitExceeded);
  CHECK(OpenIndexes(*f.stream) == std::vector<uint32_t>{0, 1});
}

TEST_CASE("MergeShards joins two adjacent shards in either order", "[resharding]") {
  Fixture f(3);
  REQUIRE(f.stream->PutRecord("user-1", "p").ok());
  // Non-adjacent: shards 0 and 2.
  CHECK(GetErrorCode(f.stream->MergeShards(ShardId(0), ShardId(2))) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(f.stream->MergeShards(ShardId(1), ShardId(1))) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(f.stream->MergeShards(ShardId(1), ShardId(9))) ==
        ErrorCode::kResourceNotFound);
  // Higher range first: the child still covers both, with the given parent order.
  REQUIRE(f.stream->MergeShards(ShardId(2), ShardId(1)).ok());
  const ShardDescription child = f.Shard(3);
  CHECK(child.parent_shard_id == ShardId(2));
  CHECK(child.adjacent_parent_shard_id == ShardId(1));
  CHECK(child.hash_key_range.starting_hash_key.ToString() ==
        "113427455640312821154458202477256070485");
  CHECK(child.hash_key_range.ending_hash_key == HashKey::Max());
  CHECK(f.Shard(1).closed());
  CHECK(f.Shard(2).closed());
  CHECK(OpenIndexes(*f.stream) == std::vector<uint32_t>{0, 3});
  CheckTiling(*f.stream);
  // Both parents end with the same single child.
  GetRecordsResult last;
  f.ReadAll(ShardId(1), &last);
  REQUIRE(last.child_shards.size() == 1);
  CHECK(last.child_shards[0].shard_id == ShardId(3));
  CHECK(last.child_shards[0].parent_shards == std::vector<ShardId>{ShardId(2), ShardId(1)});
  // A merged (closed) shard cannot take part again.
  CHECK(GetErrorCode(f.stream->MergeShards(ShardId(0), ShardId(1))) == ErrorCode::kInvalidArgument);
}

// The open ranges, in hash-key order.
std::vector<HashKeyRange> OpenRanges(const Stream& s) {
  std::vector<HashKeyRange> open;
  for (const ShardDescription& d : s.ListShards()) {
    if (!d.closed()) open.push_back(d.hash_key_range);
  }
  std::sort(open.begin(), open.end(), [](const HashKeyRange& a, const HashKeyRange& b) {
    return a.starting_hash_key < b.starting_hash_key;
  });
  return open;
}

// The keys `r` covers as a multiple of 2^128 / n: 1 is an even share of n shards.
long double Share(const HashKeyRange& r, int n) {
  const absl::uint128 span = r.ending_hash_key.value() - r.starting_hash_key.value();
  return (static_cast<long double>(span) + 1) * n / 0x1p128L;
}

// UpdateShardCount's contract: `n` open shards tiling the hash-key space, each within 10% of
// an even share.
void CheckUniform(const Stream& s, int n) {
  const std::vector<HashKeyRange> open = OpenRanges(s);
  CHECK(open.size() == static_cast<size_t>(n));
  CheckTiling(s);
  for (const HashKeyRange& r : open) {
    INFO(r << " is " << static_cast<double>(Share(r, n)) << " of an even share of " << n);
    CHECK(Share(r, n) >= 0.9L);
    CHECK(Share(r, n) <= 1.1L);
  }
}

// UpdateShardCount(target) on `f`, which must succeed, checked against its contract: the open
// shards (CheckUniform), no new shard (short-lived ones included) narrower than 1% of an even
// share, and every new shard's parents known and closed. Returns how many shards it created.
size_t UpdateAndCheck(Fixture& f, int target) {
  const size_t before = f.stream->ListShards().size();
  const absl::Status status = f.stream->UpdateShardCount(target);
  INFO(status.ToString());
  REQUIRE(status.ok());
  CheckUniform(*f.stream, target);
  const std::vector<ShardDescription> shards = f.stream->ListShards();
  std::map<uint32_t, const ShardDescription*> by_index;
  for (const ShardDescription& d : shards) by_index[d.shard_id.index()] = &d;
  for (const ShardDescription& d : shards) {
    if (d.shard_id.index() < before) continue;
    INFO("shard " << d.shard_id.ToString() << " " << d.hash_key_range);
    CHECK(Share(d.hash_key_range, target) >= 0.01L);
    REQUIRE(d.parent_shard_id.has_value());
    for (std::optional<ShardId> parent : {d.parent_shard_id, d.adjacent_parent_shard_id}) {
      if (!parent) continue;
      REQUIRE(by_index.count(parent->index()) == 1);
      CHECK(parent->index() < d.shard_id.index());
      CHECK(by_index[parent->index()]->closed());
    }
  }
  return shards.size() - before;
}

TEST_CASE("UpdateShardCount scales uniformly with lineage", "[resharding]") {
  Fixture f(1);
  REQUIRE(f.stream->UpdateShardCount(2).ok());
  // 1 -> 2 is a single split at the midpoint, exactly as Kinesis does it.
  CHECK(OpenIndexes(*f.stream) == std::vector<uint32_t>{1, 2});
  CHECK(f.Shard(1).parent_shard_id == ShardId(0));
  CHECK(OpenRanges(*f.stream) == SplitHashKeySpace(2));

  CHECK(f.stream->DescribeStreamSummary().open_shard_count == 2);
  // 2 -> 3 (x1.5): the two shards merge and the merge splits in three, 1 + 2 * 2 new shards.
  CHECK(UpdateAndCheck(f, 3) == 5);
  CHECK(f.stream->DescribeStreamSummary().open_shard_count == 3);
  CHECK(UpdateAndCheck(f, 6) == 6);  // doubling: three splits at the midpoints
  // 6 -> 4: two runs of three shards, each two merges and a split, 2 * (2 + 2) new shards.
  CHECK(UpdateAndCheck(f, 4) == 8);
  CHECK(UpdateAndCheck(f, 2) == 2);  // halving: two pairwise merges
  CHECK(f.stream->ListShards().size() == 24);
}

TEST_CASE("UpdateShardCount bounds and daily quota", "[resharding]") {
  Fixture f(4);
  CHECK(GetErrorCode(f.stream->UpdateShardCount(9)) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(f.stream->UpdateShardCount(1)) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(f.stream->UpdateShardCount(0)) == ErrorCode::kInvalidArgument);
  CHECK(f.stream->UpdateShardCount(8).ok());
  CHECK(f.stream->UpdateShardCount(4).ok());
  for (int i = 0; i < 8; ++i) REQUIRE(f.stream->UpdateShardCount(i % 2 == 0 ? 5 : 4).ok());
  // Ten in the last 24 hours: the eleventh is refused until the first leaves the window.
  CHECK(GetErrorCode(f.stream->UpdateShardCount(5)) == ErrorCode::kLimitExceeded);
  f.clock->Advance(absl::Hours(24));
  CHECK(f.stream->UpdateShardCount(5).ok());
  CheckUniform(*f.stream, 5);

  StreamOptions small;
  small.max_shards = 5;
  Fixture g(4, small);
  CHECK(GetErrorCode(g.stream->UpdateShardCount(6)) == ErrorCode::kLimitExceeded);
}

// Issue 14: scaling by doubling, by 25% and back down, with the number of shards created (closed
// and open) at each step. Doubling splits every shard at its midpoint (2N new shards), halving
// merges neighbours pairwise (N / 2). By 25% no shard can stay (it would be 25% off an even
// share), so the fewest new shards keep every fourth (fifth) boundary: 800 -> 1000 turns each 4
// shards into 5 (3 merges + 4 splits: 11 new shards, 200 times), 1000 -> 800 each 5 into 4
// (4 merges + 3 splits: 10 new shards, 200 times).
TEST_CASE("UpdateShardCount from 100 to 1000 shards and back stays within 10% of an even share",
          "[resharding]") {
  Fixture f(100);
  struct Step {
    int target;
    size_t created;
  };
  for (const Step& step : {Step{200, 200}, Step{400, 400}, Step{800, 800}, Step{1000, 2200},
                           Step{800, 2000}, Step{400, 400}, Step{200, 200}, Step{100, 100}}) {
    const int open = f.stream->DescribeStreamSummary().open_shard_count;
    INFO(open << " -> " << step.target);
    CHECK(UpdateAndCheck(f, step.target) == step.created);
  }
  CHECK(f.stream->ListShards().size() == 6400);
}

TEST_CASE("UpdateShardCount by other ratios keeps the boundaries an even spread allows",
          "[resharding]") {
  Fixture f(100);
  const std::vector<HashKeyRange> before = OpenRanges(*f.stream);
  // x1.25: every fourth boundary stays and each 4 shards become 5 (25 * (3 + 2 * 4) new).
  CHECK(UpdateAndCheck(f, 125) == 275);
  const std::vector<HashKeyRange> after = OpenRanges(*f.stream);
  for (size_t run = 0; run < 25; ++run) {
    CHECK(after[5 * run].starting_hash_key == before[4 * run].starting_hash_key);
  }
  // x1.2: each 5 shards become 6 (25 * (4 + 2 * 5) new).
  CHECK(UpdateAndCheck(f, 150) == 350);

  // x1.01: a shard 1% wider than an even share may stay, so 91 of them do, and one run of 9
  // becomes 10 (8 merges + 9 splits: 26 new shards).
  Fixture g(100);
  CHECK(UpdateAndCheck(g, 101) == 26);
  const std::vector<uint32_t> open = OpenIndexes(*g.stream);
  CHECK(std::count_if(open.begin(), open.end(), [](uint32_t i) { return i < 100; }) == 91);
  // x1.33: 32 runs of 3 shards become 4 (2 merges + 3 splits) and one of 4 becomes 5
  // (3 merges + 4 splits): 32 * 8 + 11 new shards.
  Fixture h(100);
  CHECK(UpdateAndCheck(h, 133) == 267);
}

TEST_CASE("UpdateShardCount merges hand-made slivers into wider shards", "[resharding]") {
  Fixture f(4);
  // Shard 4 covers 2 keys, [0, 1]; shard 5 the rest of shard 0's quarter.
  REQUIRE(f.stream->SplitShard(ShardId(0), HashKey(2)).ok());
  CHECK(OpenIndexes(*f.stream) == std::vector<uint32_t>{1, 2, 3, 4, 5});
  // 5 -> 8: shards 4 and 5 merge (into 6, no narrower than shard 5), which splits in two, and the
  // other three split at their midpoints: 1 + 2 + 3 * 2 new shards.
  CHECK(UpdateAndCheck(f, 8) == 9);
  CHECK(f.Shard(6).parent_shard_id == ShardId(4));
  CHECK(f.Shard(6).adjacent_parent_shard_id == ShardId(5));
  CHECK(OpenRanges(*f.stream) == SplitHashKeySpace(8));

  Fixture g(4);
  REQUIRE(g.stream->SplitShard(ShardId(0), HashKey(2)).ok());
  // 5 -> 4: the sliver merges back into its sibling, the one new shard.
  CHECK(UpdateAndCheck(g, 4) == 1);
  CHECK(OpenRanges(*g.stream) == SplitHashKeySpace(4));
}

// A shard as ListShards describes it, every field.
std::string Describe(const ShardDescription& d) {
  std::ostringstream os;
  os << d.shard_id.ToString() << " " << d.hash_key_range
     << " parent=" << (d.parent_shard_id ? d.parent_shard_id->ToString() : "-")
     << " adjacent=" << (d.adjacent_parent_shard_id ? d.adjacent_parent_shard_id->ToString() : "-")
     << " start=" << d.sequence_number_range.starting_sequence_number.ToString()
     << " end=" << (d.closed() ? d.sequence_number_range.ending_sequence_number->ToString() : "-");
  return os.str();
}

std::vector<std::string> DescribeAll(const Stream& s) {
  std::vector<std::string> out;
  for (const ShardDescription& d : s.ListShards()) out.push_back(Describe(d));
  return out;
}

// Every record's data, shard by shard.
std::vector<std::string> ReadEverything(const Stream& s) {
  std::vector<std::string> data;
  for (const ShardDescription& d : s.ListShards()) {
    const ShardIterator it = testing::MustIterator(s, d.shard_id, StartingPosition::TrimHorizon());
    for (const Record& r : testing::MustRead(s, it).records) data.emplace_back(r.data);
  }
  return data;
}

TEST_CASE("an UpdateShardCount survives a reopen with the same open ranges and lineage",
          "[resharding][durable]") {
  testing::TempDir dir("reshard-reopen", testing::TempDir::kAbsent);
  auto clock = std::make_shared<SimulatedClock>();
  const StreamOptions options =
      testing::DurableStreamOptions(dir.path(), clock, 8, FsyncPolicy::kEveryBatch, "reshard");
  std::vector<HashKeyRange> open;
  std::vector<std::string> shards;
  std::vector<std::string> records;
  {
    std::unique_ptr<Stream> stream = testing::MustCreate(options);
    for (int i = 0; i < 40; ++i) testing::MustPut(*stream, "k" + std::to_string(i), "before");
    // x1.25: two runs of 4 shards become 5 each, 2 * (3 + 2 * 4) new shards.
    REQUIRE(stream->UpdateShardCount(10).ok());
    for (int i = 0; i < 40; ++i) testing::MustPut(*stream, "k" + std::to_string(i), "after");
    open = OpenRanges(*stream);
    shards = DescribeAll(*stream);
    records = ReadEverything(*stream);
  }
  CHECK(open.size() == 10);
  CHECK(shards.size() == 30);
  CHECK(records.size() == 80);

  absl::StatusOr<std::unique_ptr<Stream>> opened = Stream::Open(options);
  INFO(opened.status().ToString());
  REQUIRE(opened.ok());
  Stream* reopened = opened->get();
  CHECK(reopened->recovery_status() == absl::OkStatus());
  CHECK(OpenRanges(*reopened) == open);
  CHECK(DescribeAll(*reopened) == shards);
  CHECK(ReadEverything(*reopened) == records);
  CheckUniform(*reopened, 10);
  // New records go to the open shard that owns their hash key.
  const PutRecordResult put = testing::MustPut(*reopened, "k0", "reopened");
  for (const ShardDescription& d : reopened->ListShards()) {
    if (d.shard_id != put.shard_id) continue;
    CHECK_FALSE(d.closed());
    CHECK(d.hash_key_range.Contains(HashKey::FromPartitionKey("k0")));
  }
}

TEST_CASE("puts during and after UpdateShardCount go to the shard owning their hash key",
          "[resharding]") {
  Fixture f(3);
  std::map<std::string, std::vector<ShardId>> placed;
  auto put_round = [&](int round) {
    for (int k = 0; k < 200; ++k) {
      const std::string key = "device-" + std::to_string(k);
      auto put = f.stream->PutRecord(key, std::to_string(round));
      REQUIRE(put.ok());
      placed[key].push_back(put->shard_id);
      // The shard that took it owned the key's hash key then.
      bool owner = false;
      for (const ShardDescription& d : f.stream->ListShards()) {
        if (d.shard_id == put->shard_id) {
          owner = !d.closed() && d.hash_key_range.Contains(HashKey::FromPartitionKey(key));
        }
      }
      CHECK(owner);
    }
  };
  put_round(0);
  REQUIRE(f.stream->UpdateShardCount(5).ok());
  put_round(1);
  REQUIRE(f.stream->UpdateShardCount(3).ok());
  put_round(2);
  // Per key: every record is readable, and the later round is in a later (descendant) shard
  // whose sequence numbers are higher.
  size_t total = 0;
  for (const ShardDescription& d : f.stream->ListShards()) total += f.ReadAll(d.shard_id).size();
  CHECK(total == 600);
}

TEST_CASE("closed shards expire once retention has passed since they closed", "[resharding]") {
  StreamOptions options;
  options.retention = absl::Hours(1);
  options.allow_short_retention = true;
  Fixture f(1, options);
  REQUIRE(f.stream->PutRecord("k", "old").ok());
  f.clock->Advance(absl::Minutes(30));
  REQUIRE(f.stream->SplitShard(ShardId(0), kHalf).ok());
  f.clock->Advance(absl::Minutes(60));  // the record is past retention, the close is not yet
  CHECK(f.stream->ListShards().size() == 3);
  CHECK(f.ReadAll(ShardId(0)).empty());
  f.clock->Advance(absl::Minutes(1));
  std::vector<ShardDescription> shards = f.stream->ListShards();
  REQUIRE(shards.size() == 2);
  CHECK(shards[0].shard_id == ShardId(1));
  CHECK(GetErrorCode(
            f.stream->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon()).status()) ==
        ErrorCode::kResourceNotFound);
  // Raising retention does not bring the expired shard back.
  REQUIRE(f.stream->IncreaseStreamRetentionPeriod(absl::Hours(48)).ok());
  CHECK(f.stream->ListShards().size() == 2);
}

TEST_CASE("a closed shard lives as long as its newest record, even when the clock went back",
          "[resharding]") {
  StreamOptions options;
  options.retention = absl::Minutes(10);
  options.allow_short_retention = true;
  Fixture f(1, options);
  const absl::Time t0 = f.clock->Now();
  REQUIRE(f.stream->PutRecord("k", "r0").ok());
  f.clock->Set(t0 - absl::Minutes(5));
  REQUIRE(f.stream->PutRecord("k", "r1").ok());  // stamped t0: arrivals never go back
  REQUIRE(f.stream->SplitShard(ShardId(0), kHalf).ok());
  f.clock->Set(t0 + absl::Minutes(6));  // r1 is 6 minutes old
  CHECK(f.ReadAll(ShardId(0)) == std::vector<std::string>{"r0", "r1"});
  f.clock->Set(t0 + absl::Minutes(10) + absl::Microseconds(1));
  CHECK(f.stream->ListShards().size() == 2);
}

TEST_CASE("ListShards filters select shards as Kinesis does", "[resharding][list_shards]") {
  Fixture f(2);
  const absl::Time t0 = f.clock->Now();
  f.clock->Advance(absl::Minutes(10));
  const absl::Time t_split = f.clock->Now();
  REQUIRE(f.stream->SplitShard(ShardId(0), HashKey(1000)).ok());  // 0 -> 2, 3
  f.clock->Advance(absl::Minutes(10));
  const absl::Time t_merge = f.clock->Now();
  REQUIRE(f.stream->MergeShards(ShardId(3), ShardId(1)).ok());  // 3 + 1 -> 4
  f.clock->Advance(absl::Minutes(10));

  auto ids = [&](std::optional<ShardFilter> filter) {
    ListShardsRequest request;
    request.filter = filter;
    auto result = f.stream->ListShards(request);
    REQUIRE(result.ok());
    CHECK_FALSE(result->next_token.has_value());
    std::vector<uint32_t> out;
    for (const ShardDescription& d : result->shards) out.push_back(d.shard_id.index());
    return out;
  };
  using V = std::vector<uint32_t>;
  CHECK(ids(std::nullopt) == V{0, 1, 2, 3, 4});
  CHECK(ids(ShardFilter{ShardFilterType::kFromTrimHorizon, {}, {}}) == V{0, 1, 2, 3, 4});
  CHECK(ids(ShardFilter{ShardFilterType::kAtTrimHorizon, {}, {}}) == V{0, 1});
  CHECK(ids(ShardFilter{ShardFilterType::kAtLatest, {}, {}}) == V{2, 4});
  CHECK(ids(ShardFilter{ShardFilterType::kAfterShardId, ShardId(2), {}}) == V{3, 4});
  CHECK(ids(ShardFilter{ShardFilterType::kAtTimestamp, {}, t0 - absl::Hours(1)}) == V{0, 1});
  CHECK(ids(ShardFilter{ShardFilterType::kAtTimestamp, {}, t_split + absl::Minutes(1)}) ==
        V{1, 2, 3});
  // At the instant of a reshard both the parent (closing) and its children are listed.
  CHECK(ids(ShardFilter{ShardFilterType::kAtTimestamp, {}, t_merge}) == V{1, 2, 3, 4});
  CHECK(ids(ShardFilter{ShardFilterType::kFromTimestamp, {}, t_split + absl::Minutes(1)}) ==
        V{1, 2, 3, 4});
  CHECK(ids(ShardFilter{ShardFilterType::kFromTimestamp, {}, t_merge + absl::Minutes(1)}) ==
        V{2, 4});

  ListShardsRequest missing;
  missing.filter = ShardFilter{ShardFilterType::kAfterShardId, {}, {}};
  CHECK(GetErrorCode(f.stream->ListShards(missing).status()) == ErrorCode::kInvalidArgument);
  missing.filter = ShardFilter{ShardFilterType::kAtTimestamp, {}, {}};
  CHECK(GetErrorCode(f.stream->ListShards(missing).status()) == ErrorCode::kInvalidArgument);
  missing.filter = ShardFilter{ShardFilterType::kFromTimestamp, {}, {}};
  CHECK(GetErrorCode(f.stream->ListShards(missing).status()) == ErrorCode::kInvalidArgument);
}

TEST_CASE("ListShards pages with expiring next tokens", "[resharding][list_shards]") {
  Fixture f(7);
  ListShardsRequest request;
  request.max_results = 3;
  std::vector<uint32_t> seen;
  int pages = 0;
  std::string first_token;
  for (;;) {
    auto page = f.stream->ListShards(request);
    REQUIRE(page.ok());
    ++pages;
    CHECK(page->shards.size() <= 3);
    for (const ShardDescription& d : page->shards) seen.push_back(d.shard_id.index());
    if (!page->next_token) break;
    if (first_token.empty()) first_token = *page->next_token;
    request = ListShardsRequest{};
    request.max_results = 3;
    request.next_token = page->next_token;
  }
  CHECK(pages == 3);
  CHECK(seen == std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6});

  // The token carries the filter of the first request.
  ListShardsRequest filtered;
  filtered.filter = ShardFilter{ShardFilterType::kAfterShardId, ShardId(1), {}};
  filtered.max_results = 2;
  auto p1 = f.stream->ListShards(filtered);
  REQUIRE(p1.ok());
  REQUIRE(p1->next_token.has_value());
  ListShardsRequest follow;
  follow.next_token = p1->next_token;
  follow.max_results = 10;
  auto p2 = f.stream->ListShards(follow);
  REQUIRE(p2.ok());
  REQUIRE(p2->shards.size() == 3);
  CHECK(p2->shards[0].shard_id == ShardId(4));

  ListShardsRequest both;
  both.next_token = first_token;
  both.exclusive_start_shard_id = ShardId(0);
  CHECK(GetErrorCode(f.stream->ListShards(both).status()) == ErrorCode::kInvalidArgument);
  ListShardsRequest garbage;
  garbage.next_token = "not-a-token";
  CHECK(GetErrorCode(f.stream->ListShards(garbage).status()) == ErrorCode::kInvalidArgument);
  ListShardsRequest bad_max;
  bad_max.max_results = 0;
  CHECK(GetErrorCode(f.stream->ListShards(bad_max).status()) == ErrorCode::kInvalidArgument);
  bad_max.max_results = 10001;
  CHECK(GetErrorCode(f.stream->ListShards(bad_max).status()) == ErrorCode::kInvalidArgument);

  ListShardsRequest expiring;
  expiring.next_token = first_token;
  f.clock->Advance(absl::Minutes(5));
  CHECK(f.stream->ListShards(expiring).ok());
  f.clock->Advance(absl::Microseconds(1));
  CHECK(GetErrorCode(f.stream->ListShards(expiring).status()) == ErrorCode::kExpiredNextToken);

  ListShardsRequest start;
  start.exclusive_start_shard_id = ShardId(4);
  auto tail = f.stream->ListShards(start);
  REQUIRE(tail.ok());
  REQUIRE(tail->shards.size() == 2);
  CHECK(tail->shards[0].shard_id == ShardId(5));
}

TEST_CASE("the stream is UPDATING for update_duration and refuses other reshards",
          "[resharding][status]") {
  StreamOptions options;
  options.update_duration = absl::Milliseconds(500);
  Fixture f(2, options);
  CHECK(f.stream->DescribeStreamSummary().status == StreamStatus::kActive);
  REQUIRE(f.stream->SplitShard(ShardId(0), HashKey(5000)).ok());
  CHECK(f.stream->DescribeStreamSummary().status == StreamStatus::kUpdating);
  CHECK(GetErrorCode(f.stream->SplitShard(ShardId(1), HashKey(kHalf.value() + 7))) ==
        ErrorCode::kResourceInUse);
  CHECK(GetErrorCode(f.stream->UpdateShardCount(4)) == ErrorCode::kResourceInUse);
  CHECK(GetErrorCode(f.stream->UpdateStreamMode(CapacityMode::kOnDemand)) ==
        ErrorCode::kResourceInUse);
  // Records keep flowing while UPDATING, into the new shards.
  CHECK(f.stream->PutRecord("a", "x").ok());
  f.clock->Advance(absl::Milliseconds(500));
  CHECK(f.stream->DescribeStreamSummary().status == StreamStatus::kActive);
  CHECK(f.stream->SplitShard(ShardId(1), HashKey(kHalf.value() + 7)).ok());
}

TEST_CASE("capacity modes: on-demand refuses manual resharding, switches are limited",
          "[resharding][mode]") {
  Fixture f(2);
  StreamSummary s = f.stream->DescribeStreamSummary();
  CHECK(s.capacity_mode == CapacityMode::kProvisioned);
  CHECK(s.stream_name == "reshard");
  CHECK(s.open_shard_count == 2);
  CHECK(s.retention == absl::Hours(24));
  CHECK(CapacityModeName(s.capacity_mode) == "PROVISIONED");
  CHECK(StreamStatusName(s.status) == "ACTIVE");

  REQUIRE(f.stream->UpdateStreamMode(CapacityMode::kOnDemand).ok());
  CHECK(f.stream->DescribeStreamSummary().capacity_mode == CapacityMode::kOnDemand);
  CHECK(f.stream->DescribeStreamSummary().open_shard_count == 2);  // shards are kept
  CHECK(GetErrorCode(f.stream->SplitShard(ShardId(0), HashKey(5000))) == ErrorCode::kValidation);
  CHECK(GetErrorCode(f.stream->MergeShards(ShardId(0), ShardId(1))) == ErrorCode::kValidation);
  CHECK(GetErrorCode(f.stream->UpdateShardCount(3)) == ErrorCode::kValidation);
  REQUIRE(f.stream->UpdateStreamMode(CapacityMode::kProvisioned).ok());
  // Two switches in 24 hours: the third waits for the window.
  CHECK(GetErrorCode(f.stream->UpdateStreamMode(CapacityMode::kOnDemand)) ==
        ErrorCode::kLimitExceeded);
  CHECK(f.stream->UpdateStreamMode(CapacityMode::kProvisioned).ok());  // no change: allowed
  f.clock->Advance(absl::Hours(24) + absl::Seconds(1));
  CHECK(f.stream->UpdateStreamMode(CapacityMode::kOnDemand).ok());
}

}  // namespace
}  // namespace rill
