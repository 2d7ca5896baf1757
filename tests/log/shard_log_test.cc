#include "log/shard_log.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace rill {
namespace {

using internal::Chunk;
using internal::kIndexStride;
using internal::kRecordHeaderBytes;
using internal::ShardLog;
using internal::StoredRecord;

// Append's expire_before_us meaning "expire nothing".
constexpr int64_t kNoExpiry = std::numeric_limits<int64_t>::min();
// 2024-01-01T00:00:00Z in microseconds: a realistic time base.
constexpr int64_t kBaseUs = int64_t{1704067200} * 1000000;

// Deterministic contents for record i: keys of 0-10 bytes (every 17th empty), data of 0-599
// bytes (every 5th empty) whose bytes depend on both i and the position, so that a record read at
// the wrong offset or from reused memory cannot match.
std::string KeyFor(uint64_t i) {
  if (i % 17 == 0) return "";
  return "pk-" + std::to_string(i * 2654435761u % 1000003);
}

std::string DataFor(uint64_t i) {
  const size_t size = i % 5 == 0 ? 0 : static_cast<size_t>(i * 40503u % 600);
  std::string data(size, '\0');
  for (size_t j = 0; j < size; ++j) {
    data[j] = static_cast<char>((i * 131 + j * 7 + (j >> 8)) & 0xff);
  }
  return data;
}

std::string Filler(size_t size, char seed) {
  std::string s(size, '\0');
  for (size_t j = 0; j < size; ++j) s[j] = static_cast<char>(seed + static_cast<char>(j % 251));
  return s;
}

ShardLog::Appended MustAppend(ShardLog& log, std::string_view key, std::string_view data,
                              int64_t now_us, uint64_t counter_floor = 0,
                              int64_t expire_before_us = kNoExpiry) {
  std::optional<ShardLog::Appended> appended =
      log.Append(key, data, now_us, counter_floor, expire_before_us);
  REQUIRE(appended.has_value());
  return *appended;
}

// One record as read back, owning its bytes.
struct Read {
  uint64_t ordinal;
  uint64_t counter;
  int64_t arrival_us;
  std::string key;
  std::string data;
};

std::vector<Read> ReadAll(const ShardLog& log, uint64_t from, uint64_t end) {
  std::vector<Read> out;
  for (ShardLog::Cursor c(log, from, end); c.Valid(); c.Next()) {
    const StoredRecord r = c.Get();
    out.push_back(Read{c.ordinal(), r.counter, r.arrival_us, std::string(r.partition_key),
                       std::string(r.data)});
  }
  return out;
}

// The chunks a cursor walks through, oldest first.
struct ChunkInfo {
  const Chunk* chunk;
  uint64_t first_ordinal;
  uint32_t count;
  size_t capacity;
};

std::vector<ChunkInfo> ChunksInMemory(const ShardLog& log) {
  std::vector<ChunkInfo> chunks;
  for (ShardLog::Cursor c(log, 0, log.end_ordinal()); c.Valid(); c.Next()) {
    if (chunks.empty() || chunks.back().chunk != c.chunk().get()) {
      chunks.push_back(
          {c.chunk().get(), c.chunk()->first_ordinal(), c.chunk()->count(), c.chunk()->capacity()});
    }
  }
  return chunks;
}

size_t ExpectedMemory(const std::vector<ChunkInfo>& chunks, size_t from = 0) {
  size_t bytes = 0;
  for (size_t i = from; i < chunks.size(); ++i) bytes += chunks[i].capacity + sizeof(Chunk);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Append: counters and arrival times

TEST_CASE("a new ShardLog is empty", "[shard_log]") {
  ShardLog log(42);
  CHECK(log.first_counter() == 42u);
  CHECK(log.next_counter() == 42u);
  CHECK(log.end_ordinal() == 0u);
  CHECK(log.trim_ordinal() == 0u);
  CHECK_FALSE(log.closed());
  CHECK(log.MemoryBytes() == 0u);
  CHECK_FALSE(ShardLog::Cursor(log, 0, 0).Valid());
  CHECK(log.LowerBoundCounter(42, 0) == 0u);
  CHECK(log.LowerBoundTime(kBaseUs, 0) == 0u);
  CHECK(log.TrimBefore(kBaseUs) == 0u);
}

TEST_CASE("Append issues strictly increasing counters from first_counter", "[shard_log]") {
  const uint64_t first = GENERATE(uint64_t{1}, uint64_t{1000}, uint64_t{1} << 40);
  ShardLog log(first);
  for (uint64_t i = 0; i < 100; ++i) {
    const ShardLog::Appended a =
        MustAppend(log, KeyFor(i), DataFor(i), kBaseUs + 10 * static_cast<int64_t>(i));
    CHECK(a.counter == first + i);
    CHECK(a.arrival_us == kBaseUs + 10 * static_cast<int64_t>(i));
    CHECK(log.end_ordinal() == i + 1);
    CHECK(log.next_counter() == first + i + 1);
  }
  CHECK(log.first_counter() == first);
  const std::vector<Read> reads = ReadAll(log, 0, log.end_ordinal());
  REQUIRE(reads.size() == 100u);
  for (uint64_t i = 0; i < 100; ++i) {
    CHECK(reads[i].ordinal == i);
    CHECK(reads[i].counter == first + i);
  }
}

// first_counter is the counter of the shard's first record and counter_floor 0 means "none", so
// a log starting at 0 gives its first record counter 0 (regression: it once gave 1).
TEST_CASE("a log whose first_counter is 0 gives its first record counter 0", "[shard_log]") {
  ShardLog log(0);
  const ShardLog::Appended a = MustAppend(log, "k", "v", kBaseUs);
  CHECK(a.counter == 0u);
  CHECK(log.next_counter() == 1u);
  const std::optional<uint64_t> last = log.Close();
  REQUIRE(last.has_value());
  CHECK(*last == 0u);
}

TEST_CASE("counter_floor raises the counter strictly above it", "[shard_log]") {
  ShardLog log(1);
  std::vector<uint64_t> counters;
  auto append = [&](uint64_t floor) {
    const uint64_t c =
        MustAppend(log, "k", std::to_string(counters.size()), kBaseUs, floor).counter;
    counters.push_back(c);
    return c;
  };
  CHECK(append(0) == 1u);    // no floor
  CHECK(append(10) == 11u);  // above the floor
  CHECK(append(5) == 12u);   // a floor below the next counter changes nothing
  CHECK(append(13) == 14u);  // a floor equal to the next counter is exclusive
  CHECK(append(0) == 15u);
  CHECK(append(1000) == 1001u);
  // Jumps beyond the 32-bit delta a chunk can store start a new chunk; nothing is lost.
  const uint64_t big = uint64_t{1} << 40;
  CHECK(append(big) == big + 1);
  CHECK(append(0) == big + 2);
  CHECK(append(big * 1000) == big * 1000 + 1);
  CHECK(append(0) == big * 1000 + 2);
  CHECK(log.next_counter() == big * 1000 + 3);
  CHECK(log.end_ordinal() == counters.size());

  const std::vector<Read> reads = ReadAll(log, 0, log.end_ordinal());
  REQUIRE(reads.size() == counters.size());
  for (size_t i = 0; i < reads.size(); ++i) {
    CHECK(reads[i].counter == counters[i]);
    CHECK(reads[i].data == std::to_string(i));
  }

  // Lower bounds over the gaps.
  const uint64_t end = log.end_ordinal();
  CHECK(log.LowerBoundCounter(0, end) == 0u);
  CHECK(log.LowerBoundCounter(1, end) == 0u);
  CHECK(log.LowerBoundCounter(2, end) == 1u);
  CHECK(log.LowerBoundCounter(11, end) == 1u);
  CHECK(log.LowerBoundCounter(12, end) == 2u);
  CHECK(log.LowerBoundCounter(13, end) == 3u);
  CHECK(log.LowerBoundCounter(14, end) == 3u);
  CHECK(log.LowerBoundCounter(16, end) == 5u);
  CHECK(log.LowerBoundCounter(1001, end) == 5u);
  CHECK(log.LowerBoundCounter(1002, end) == 6u);
  CHECK(log.LowerBoundCounter(big, end) == 6u);
  CHECK(log.LowerBoundCounter(big + 1, end) == 6u);
  CHECK(log.LowerBoundCounter(big + 2, end) == 7u);
  CHECK(log.LowerBoundCounter(big + 3, end) == 8u);
  CHECK(log.LowerBoundCounter(big * 1000 + 2, end) == 9u);
  CHECK(log.LowerBoundCounter(big * 1000 + 3, end) == end);
  CHECK(log.LowerBoundCounter(std::numeric_limits<uint64_t>::max(), end) == end);
}

TEST_CASE("arrival time is raised to the previous record's when the clock goes backwards",
          "[shard_log]") {
  ShardLog log(1);
  CHECK(MustAppend(log, "a", "0", kBaseUs + 1000).arrival_us == kBaseUs + 1000);
  CHECK(MustAppend(log, "a", "1", kBaseUs + 500).arrival_us == kBaseUs + 1000);
  CHECK(MustAppend(log, "a", "2", kBaseUs + 1000).arrival_us == kBaseUs + 1000);
  CHECK(MustAppend(log, "a", "3", kBaseUs + 2000).arrival_us == kBaseUs + 2000);
  CHECK(MustAppend(log, "a", "4", kBaseUs + 1999).arrival_us == kBaseUs + 2000);
  CHECK(MustAppend(log, "a", "5", 0).arrival_us == kBaseUs + 2000);
  CHECK(MustAppend(log, "a", "6", kBaseUs + 2001).arrival_us == kBaseUs + 2001);
  // A jump beyond the 32-bit microsecond delta a chunk can store (about 71 minutes).
  const int64_t far = kBaseUs + (int64_t{1} << 33);
  CHECK(MustAppend(log, "a", "7", far).arrival_us == far);
  CHECK(MustAppend(log, "a", "8", far - 1).arrival_us == far);
  CHECK(MustAppend(log, "a", "9", far + 1).arrival_us == far + 1);

  const std::vector<int64_t> expected = {kBaseUs + 1000,
                                         kBaseUs + 1000,
                                         kBaseUs + 1000,
                                         kBaseUs + 2000,
                                         kBaseUs + 2000,
                                         kBaseUs + 2000,
                                         kBaseUs + 2001,
                                         far,
                                         far,
                                         far + 1};
  const std::vector<Read> reads = ReadAll(log, 0, log.end_ordinal());
  REQUIRE(reads.size() == expected.size());
  for (size_t i = 0; i < reads.size(); ++i) {
    CHECK(reads[i].arrival_us == expected[i]);
    CHECK(reads[i].counter == i + 1);
    CHECK(reads[i].data == std::to_string(i));
  }
  const uint64_t end = log.end_ordinal();
  CHECK(log.LowerBoundTime(kBaseUs + 1000, end) == 0u);
  CHECK(log.LowerBoundTime(kBaseUs + 1001, end) == 3u);
  CHECK(log.LowerBoundTime(kBaseUs + 2000, end) == 3u);
  CHECK(log.LowerBoundTime(kBaseUs + 2001, end) == 6u);
  CHECK(log.LowerBoundTime(kBaseUs + 2002, end) == 7u);
  CHECK(log.LowerBoundTime(far, end) == 7u);
  CHECK(log.LowerBoundTime(far + 1, end) == 9u);
  CHECK(log.LowerBoundTime(far + 2, end) == end);
}

// ---------------------------------------------------------------------------------------------
// Reading back

TEST_CASE("100k records read back in order with exact keys and data across many chunks",
          "[shard_log]") {
  constexpr uint64_t kRecords = 100000;
  constexpr uint64_t kFirstCounter = 7;
  // One record larger than the largest chunk, in the middle of the log.
  constexpr uint64_t kHugeAt = 54321;
  const std::string huge_data = Filler(ShardLog::kMaxChunkBytes + 12345, 'h');
  auto key_of = [](uint64_t i) { return i == kHugeAt ? std::string("huge-record") : KeyFor(i); };
  auto data_of = [&](uint64_t i) { return i == kHugeAt ? huge_data : DataFor(i); };
  // Three records per microsecond: arrival times repeat.
  auto time_of = [](uint64_t i) { return kBaseUs + static_cast<int64_t>(i / 3); };

  ShardLog log(kFirstCounter);
  std::vector<uint64_t> bad_appends;
  for (uint64_t i = 0; i < kRecords; ++i) {
    const ShardLog::Appended a = MustAppend(log, key_of(i), data_of(i), time_of(i));
    if (a.counter != kFirstCounter + i || a.arrival_us != time_of(i) ||
        log.end_ordinal() != i + 1) {
      bad_appends.push_back(i);
    }
  }
  CHECK(bad_appends.empty());
  CHECK(log.end_ordinal() == kRecords);
  CHECK(log.next_counter() == kFirstCounter + kRecords);
  CHECK(log.trim_ordinal() == 0u);

  // A full walk: every record once, in order, exact.
  std::vector<uint64_t> bad_reads;
  uint64_t expected_ordinal = 0;
  std::vector<ChunkInfo> chunks;
  for (ShardLog::Cursor c(log, 0, log.end_ordinal()); c.Valid(); c.Next()) {
    const StoredRecord r = c.Get();
    const uint64_t i = c.ordinal();
    if (i != expected_ordinal || r.counter != kFirstCounter + i || r.arrival_us != time_of(i) ||
        r.partition_key != key_of(i) || r.data != data_of(i)) {
      bad_reads.push_back(expected_ordinal);
    }
    if (chunks.empty() || chunks.back().chunk != c.chunk().get()) {
      chunks.push_back(
          {c.chunk().get(), c.chunk()->first_ordinal(), c.chunk()->count(), c.chunk()->capacity()});
    }
    ++expected_ordinal;
  }
  CHECK(expected_ordinal == kRecords);
  {
    INFO("first bad read at ordinal " << (bad_reads.empty() ? 0 : bad_reads.front()));
    CHECK(bad_reads.empty());
  }

  // The log really spans many chunks, laid end to end.
  CHECK(chunks.size() >= 10u);
  REQUIRE_FALSE(chunks.empty());
  CHECK(chunks.front().first_ordinal == 0u);
  for (size_t k = 0; k + 1 < chunks.size(); ++k) {
    CHECK(chunks[k].first_ordinal + chunks[k].count == chunks[k + 1].first_ordinal);
  }
  CHECK(chunks.back().first_ordinal + chunks.back().count == kRecords);
  CHECK(log.MemoryBytes() == ExpectedMemory(chunks));

  // The huge record has a chunk of its own; every other chunk is within kMaxChunkBytes.
  const auto huge_chunk = std::find_if(
      chunks.begin(), chunks.end(), [](const ChunkInfo& c) { return c.first_ordinal == kHugeAt; });
  REQUIRE(huge_chunk != chunks.end());
  CHECK(huge_chunk->count == 1u);
  CHECK(huge_chunk->capacity >= kRecordHeaderBytes + 11 + huge_data.size());
  for (const ChunkInfo& c : chunks) {
    if (c.first_ordinal != kHugeAt) CHECK(c.capacity <= ShardLog::kMaxChunkBytes);
  }

  // Cursors starting anywhere: at chunk starts and ends, at and around sparse-index entries, and
  // at a spread of ordinals; each reads the next records exactly, crossing chunk boundaries.
  std::set<uint64_t> starts;
  for (const ChunkInfo& c : chunks) {
    for (int64_t d = -3; d <= 3; ++d) {
      const int64_t o = static_cast<int64_t>(c.first_ordinal) + d;
      if (o >= 0 && o < static_cast<int64_t>(kRecords)) starts.insert(static_cast<uint64_t>(o));
    }
  }
  for (uint64_t o = 0; o < kRecords; o += 997) {
    for (uint64_t d = 0; d < 2 * kIndexStride && o + d < kRecords; ++d) starts.insert(o + d);
  }
  starts.insert(kRecords - 1);
  std::vector<uint64_t> bad_seeks;
  for (const uint64_t start : starts) {
    ShardLog::Cursor c(log, start, std::min(start + 20, kRecords));
    uint64_t i = start;
    for (; c.Valid(); c.Next(), ++i) {
      const StoredRecord r = c.Get();
      if (c.ordinal() != i || r.counter != kFirstCounter + i || r.partition_key != key_of(i) ||
          r.data != data_of(i)) {
        bad_seeks.push_back(start);
        break;
      }
    }
    if (i != std::min(start + 20, kRecords)) bad_seeks.push_back(start);
  }
  CHECK(bad_seeks.empty());

  // A cursor stops at its end bound even when more records exist.
  ShardLog::Cursor bounded(log, 10, 20);
  uint64_t n = 0;
  for (; bounded.Valid(); bounded.Next()) ++n;
  CHECK(n == 10u);
  CHECK(bounded.ordinal() == 20u);
  CHECK_FALSE(ShardLog::Cursor(log, 20, 20).Valid());
  CHECK_FALSE(ShardLog::Cursor(log, 30, 20).Valid());
}

TEST_CASE("records larger than the largest chunk get a chunk of their own", "[shard_log]") {
  ShardLog log(1);
  // A record (header + key + data) plus one index entry exactly filling kMaxChunkBytes still
  // fits a largest chunk; one byte more gets a chunk of its own size.
  const size_t exact = ShardLog::kMaxChunkBytes - 4 - kRecordHeaderBytes - 1;
  const std::vector<std::string> data = {
      "small before",
      Filler(exact, 'a'),
      "",
      Filler(exact + 1, 'b'),
      Filler(3 << 20, 'c'),
      "small after",
      Filler(ShardLog::kMaxChunkBytes, 'd'),
  };
  for (size_t i = 0; i < data.size(); ++i) {
    CHECK(MustAppend(log, "k", data[i], kBaseUs + static_cast<int64_t>(i)).counter == i + 1);
  }
  const std::vector<Read> reads = ReadAll(log, 0, log.end_ordinal());
  REQUIRE(reads.size() == data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    CHECK(reads[i].ordinal == i);
    CHECK(reads[i].key == "k");
    CHECK(reads[i].data == data[i]);
    CHECK(reads[i].arrival_us == kBaseUs + static_cast<int64_t>(i));
  }

  const std::vector<ChunkInfo> chunks = ChunksInMemory(log);
  auto chunk_of = [&](uint64_t ordinal) {
    const auto it = std::find_if(chunks.rbegin(), chunks.rend(),
                                 [&](const ChunkInfo& c) { return c.first_ordinal <= ordinal; });
    REQUIRE(it != chunks.rend());
    return *it;
  };
  for (const uint64_t big : {uint64_t{1}, uint64_t{3}, uint64_t{4}, uint64_t{6}}) {
    const ChunkInfo c = chunk_of(big);
    INFO("record " << big);
    CHECK(c.first_ordinal == big);
    CHECK(c.capacity >= kRecordHeaderBytes + 1 + data[big].size() + 4);
    CHECK(c.count == 1u);
  }
  CHECK(chunk_of(1).capacity == ShardLog::kMaxChunkBytes);
  CHECK(chunk_of(3).capacity > ShardLog::kMaxChunkBytes);
  CHECK(chunk_of(4).capacity > ShardLog::kMaxChunkBytes);
  CHECK(log.MemoryBytes() == ExpectedMemory(chunks));
}

// ---------------------------------------------------------------------------------------------
// Lower bounds

// A log of small records over several chunks, with gaps between counters and runs of equal
// arrival times; the expected answers come from std::lower_bound over the same values.
struct GappedLog {
  ShardLog log{100};
  std::vector<uint64_t> counters;
  std::vector<int64_t> times;
  std::vector<ChunkInfo> chunks;

  explicit GappedLog(uint64_t records) {
    uint64_t floor = 0;
    for (uint64_t i = 0; i < records; ++i) {
      // Counter gaps of 0-3; arrival runs of 50 equal times, 10 us apart.
      floor = i == 0 ? 0 : counters.back() + i % 4;
      const int64_t t = kBaseUs + 10 * static_cast<int64_t>(i / 50);
      const ShardLog::Appended a = MustAppend(log, KeyFor(i), Filler(40 + i % 30, 'x'), t, floor);
      counters.push_back(a.counter);
      times.push_back(a.arrival_us);
    }
    chunks = ChunksInMemory(log);
  }

  uint64_t ExpectedByCounter(uint64_t counter, uint64_t end) const {
    const auto n = static_cast<uint64_t>(
        std::lower_bound(counters.begin(), counters.end(), counter) - counters.begin());
    return std::clamp(n, log.trim_ordinal(), end);
  }
  uint64_t ExpectedByTime(int64_t time, uint64_t end) const {
    const auto n =
        static_cast<uint64_t>(std::lower_bound(times.begin(), times.end(), time) - times.begin());
    return std::clamp(n, log.trim_ordinal(), end);
  }
};

TEST_CASE("LowerBoundCounter finds exact ordinals for present, missing and outside counters",
          "[shard_log]") {
  GappedLog g(5000);
  const uint64_t end = g.log.end_ordinal();
  REQUIRE(end == 5000u);
  REQUIRE(g.chunks.size() >= 5u);  // the searches must cross chunk boundaries
  // Counters really have gaps.
  REQUIRE(g.counters.back() - g.counters.front() > 2 * end);

  // Every present counter, every value between two records, and values outside the log.
  std::vector<uint64_t> bad;
  for (uint64_t i = 0; i < end; ++i) {
    if (g.log.LowerBoundCounter(g.counters[i], end) != i) bad.push_back(i);
    if (g.log.LowerBoundCounter(g.counters[i] + 1, end) != i + 1) bad.push_back(i);
    if (g.log.LowerBoundCounter(g.counters[i] - 1, end) !=
        g.ExpectedByCounter(g.counters[i] - 1, end)) {
      bad.push_back(i);
    }
  }
  CHECK(bad.empty());
  CHECK(g.log.LowerBoundCounter(0, end) == 0u);
  CHECK(g.log.LowerBoundCounter(g.counters.front() - 1, end) == 0u);
  CHECK(g.log.LowerBoundCounter(g.counters.back() + 1, end) == end);
  CHECK(g.log.LowerBoundCounter(std::numeric_limits<uint64_t>::max(), end) == end);

  // Around every chunk boundary and every position within the 16-record index stride of the
  // first chunks, with explicit expectations.
  for (const ChunkInfo& c : g.chunks) {
    const uint64_t f = c.first_ordinal;
    CHECK(g.log.LowerBoundCounter(g.counters[f], end) == f);
    if (f > 0) {
      CHECK(g.log.LowerBoundCounter(g.counters[f - 1], end) == f - 1);
      CHECK(g.log.LowerBoundCounter(g.counters[f - 1] + 1, end) == f);
    }
  }
  for (uint64_t i = 0; i < 3 * kIndexStride; ++i) {
    CHECK(g.log.LowerBoundCounter(g.counters[i], end) == i);
  }

  // A smaller `end` bounds the answer: values at or past it give `end`.
  for (const ChunkInfo& c : g.chunks) {
    for (const uint64_t e : {c.first_ordinal, c.first_ordinal + 1, c.first_ordinal + 17}) {
      if (e == 0 || e > end) continue;
      INFO("end " << e);
      CHECK(g.log.LowerBoundCounter(g.counters[e - 1], e) == e - 1);
      CHECK(g.log.LowerBoundCounter(g.counters[e - 1] + 1, e) == e);
      if (e < end) CHECK(g.log.LowerBoundCounter(g.counters[e], e) == e);
      CHECK(g.log.LowerBoundCounter(std::numeric_limits<uint64_t>::max(), e) == e);
      CHECK(g.log.LowerBoundCounter(0, e) == 0u);
    }
  }
}

TEST_CASE(
    "LowerBoundTime finds the first record at or after a time, including in runs of equal "
    "times",
    "[shard_log]") {
  GappedLog g(5000);
  const uint64_t end = g.log.end_ordinal();
  REQUIRE(g.chunks.size() >= 5u);
  // At least one chunk boundary falls inside a run of equal arrival times.
  const bool boundary_in_run = std::any_of(
      g.chunks.begin() + 1, g.chunks.end(),
      [&](const ChunkInfo& c) { return g.times[c.first_ordinal - 1] == g.times[c.first_ordinal]; });
  REQUIRE(boundary_in_run);

  std::vector<int64_t> bad;
  for (int64_t t = g.times.front() - 25; t <= g.times.back() + 25; ++t) {
    if (g.log.LowerBoundTime(t, end) != g.ExpectedByTime(t, end)) bad.push_back(t - kBaseUs);
  }
  CHECK(bad.empty());
  // Explicit values: runs of 50 records share a time, 10 us apart.
  CHECK(g.log.LowerBoundTime(kBaseUs, end) == 0u);
  CHECK(g.log.LowerBoundTime(kBaseUs - 1, end) == 0u);
  CHECK(g.log.LowerBoundTime(std::numeric_limits<int64_t>::min(), end) == 0u);
  CHECK(g.log.LowerBoundTime(kBaseUs + 1, end) == 50u);
  CHECK(g.log.LowerBoundTime(kBaseUs + 10, end) == 50u);
  CHECK(g.log.LowerBoundTime(kBaseUs + 11, end) == 100u);
  CHECK(g.log.LowerBoundTime(kBaseUs + 990, end) == 4950u);
  CHECK(g.log.LowerBoundTime(kBaseUs + 991, end) == end);
  CHECK(g.log.LowerBoundTime(std::numeric_limits<int64_t>::max(), end) == end);
  // Across each chunk boundary: the first record of the run holding the chunk's first record.
  for (const ChunkInfo& c : g.chunks) {
    const uint64_t f = c.first_ordinal;
    CHECK(g.log.LowerBoundTime(g.times[f], end) == f / 50 * 50);
    CHECK(g.log.LowerBoundTime(g.times[f] + 1, end) == (f / 50 + 1) * 50);
  }
  // A smaller `end` bounds the answer.
  for (const ChunkInfo& c : g.chunks) {
    const uint64_t e = c.first_ordinal + 3;
    if (e > end) continue;
    INFO("end " << e);
    for (int64_t t = g.times[e - 1] - 15; t <= g.times[e - 1] + 15; ++t) {
      CHECK(g.log.LowerBoundTime(t, e) == g.ExpectedByTime(t, e));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Close

TEST_CASE("Close returns the last counter and refuses later appends", "[shard_log]") {
  SECTION("a log with no record") {
    ShardLog log(5);
    CHECK_FALSE(log.Close().has_value());
    CHECK(log.closed());
    CHECK_FALSE(log.Append("k", "v", kBaseUs, 0, kNoExpiry).has_value());
    CHECK(log.end_ordinal() == 0u);
    CHECK(log.next_counter() == 5u);
    CHECK_FALSE(log.Close().has_value());
  }
  SECTION("a log with records") {
    ShardLog log(5);
    MustAppend(log, "a", "0", kBaseUs);
    MustAppend(log, "b", "1", kBaseUs + 1);
    MustAppend(log, "c", "2", kBaseUs + 2, /*counter_floor=*/100);
    CHECK_FALSE(log.closed());
    const std::optional<uint64_t> last = log.Close();
    REQUIRE(last.has_value());
    CHECK(*last == 101u);
    CHECK(log.closed());
    CHECK_FALSE(log.Append("d", "3", kBaseUs + 3, 0, kNoExpiry).has_value());
    CHECK_FALSE(log.Append("d", "3", kBaseUs + 3, 1000, kNoExpiry).has_value());
    CHECK(log.end_ordinal() == 3u);
    CHECK(log.next_counter() == 102u);
    CHECK(log.Close().value_or(0) == 101u);  // closing twice gives the same answer
    // The records stay readable.
    const std::vector<Read> reads = ReadAll(log, 0, log.end_ordinal());
    REQUIRE(reads.size() == 3u);
    CHECK(reads[0].counter == 5u);
    CHECK(reads[1].counter == 6u);
    CHECK(reads[2].counter == 101u);
    CHECK(reads[2].key == "c");
    CHECK(reads[2].data == "2");
  }
}

// ---------------------------------------------------------------------------------------------
// Trimming

TEST_CASE("TrimBefore hides records that arrived before the cutoff, for good", "[shard_log]") {
  // Record i arrives at kBaseUs + 1000 * (i / 2): pairs share a time.
  ShardLog log(1);
  constexpr uint64_t kRecords = 400;
  for (uint64_t i = 0; i < kRecords; ++i) {
    MustAppend(log, KeyFor(i), DataFor(i), kBaseUs + 1000 * static_cast<int64_t>(i / 2));
  }
  const uint64_t end = log.end_ordinal();
  REQUIRE(ChunksInMemory(log).size() >= 3u);

  CHECK(log.TrimBefore(kBaseUs - 1) == 0u);
  CHECK(log.TrimBefore(kBaseUs) == 0u);  // arrival == cutoff stays
  CHECK(log.trim_ordinal() == 0u);
  CHECK(log.TrimBefore(kBaseUs + 1) == 2u);
  CHECK(log.TrimBefore(kBaseUs + 1000) == 2u);
  CHECK(log.TrimBefore(kBaseUs + 1001) == 4u);
  CHECK(log.TrimBefore(kBaseUs + 50 * 1000) == 100u);
  CHECK(log.trim_ordinal() == 100u);
  // A smaller cutoff later revives nothing.
  CHECK(log.TrimBefore(kBaseUs) == 100u);
  CHECK(log.TrimBefore(std::numeric_limits<int64_t>::min()) == 100u);
  CHECK(log.trim_ordinal() == 100u);

  // Lookups answer within [trim, end).
  CHECK(log.LowerBoundCounter(0, end) == 100u);
  CHECK(log.LowerBoundCounter(50, end) == 100u);
  CHECK(log.LowerBoundCounter(101, end) == 100u);
  CHECK(log.LowerBoundCounter(102, end) == 101u);
  CHECK(log.LowerBoundTime(kBaseUs, end) == 100u);
  CHECK(log.LowerBoundTime(kBaseUs + 50 * 1000, end) == 100u);
  CHECK(log.LowerBoundTime(kBaseUs + 50 * 1000 + 1, end) == 102u);
  CHECK(log.LowerBoundCounter(0, 50) == 50u);  // an end below the trim point: empty range

  // Reading from the trim point gives the remaining records exactly.
  const std::vector<Read> reads = ReadAll(log, log.trim_ordinal(), end);
  REQUIRE(reads.size() == kRecords - 100);
  for (const Read& r : reads) {
    CHECK(r.counter == r.ordinal + 1);
    CHECK(r.key == KeyFor(r.ordinal));
    CHECK(r.data == DataFor(r.ordinal));
  }

  // Trimming past the newest record hides everything; a new record is visible.
  CHECK(log.TrimBefore(kBaseUs + 1000 * 1000) == end);
  CHECK(log.TrimBefore(kBaseUs) == end);
  CHECK(log.LowerBoundCounter(0, end) == end);
  CHECK(log.LowerBoundTime(kBaseUs, end) == end);
  const ShardLog::Appended a = MustAppend(log, "new", "record", kBaseUs + 1000 * 1000);
  CHECK(a.counter == kRecords + 1);
  CHECK(log.end_ordinal() == end + 1);
  CHECK(log.TrimBefore(kBaseUs + 1000 * 1000) == end);
  CHECK(log.LowerBoundCounter(0, end + 1) == end);
  const std::vector<Read> after = ReadAll(log, log.trim_ordinal(), log.end_ordinal());
  REQUIRE(after.size() == 1u);
  CHECK(after[0].key == "new");
  CHECK(after[0].data == "record");
  CHECK(after[0].ordinal == end);
}

TEST_CASE("TrimBefore reclaims whole chunks below the trim point", "[shard_log]") {
  ShardLog log(1);
  constexpr uint64_t kRecords = 80000;
  for (uint64_t i = 0; i < kRecords; ++i) {
    MustAppend(log, "key", Filler(100, static_cast<char>(i)), kBaseUs + static_cast<int64_t>(i));
  }
  const std::vector<ChunkInfo> chunks = ChunksInMemory(log);
  REQUIRE(chunks.size() >= 6u);
  CHECK(log.MemoryBytes() == ExpectedMemory(chunks));
  auto time_of = [](uint64_t ordinal) { return kBaseUs + static_cast<int64_t>(ordinal); };

  // Inside the first chunk: its records go, its memory stays.
  CHECK(log.TrimBefore(time_of(chunks[0].first_ordinal + 1)) == 1u);
  CHECK(log.MemoryBytes() == ExpectedMemory(chunks));
  // At the last record of chunk 2: chunks 0 and 1 are reclaimed, chunk 2 stays.
  const uint64_t last_of_2 = chunks[3].first_ordinal - 1;
  CHECK(log.TrimBefore(time_of(last_of_2)) == last_of_2);
  CHECK(log.MemoryBytes() == ExpectedMemory(chunks, 2));
  // Chunk 2's trimmed records are still in memory, yet lookups never answer below the trim point.
  const uint64_t trimmed_in_memory = chunks[2].first_ordinal + 1;
  REQUIRE(trimmed_in_memory < last_of_2);
  CHECK(log.LowerBoundCounter(trimmed_in_memory + 1, log.end_ordinal()) == last_of_2);
  CHECK(log.LowerBoundTime(time_of(trimmed_in_memory), log.end_ordinal()) == last_of_2);
  CHECK(log.LowerBoundCounter(last_of_2 + 2, log.end_ordinal()) == last_of_2 + 1);
  // Exactly at the first record of chunk 3: chunk 2 goes too.
  CHECK(log.TrimBefore(time_of(chunks[3].first_ordinal)) == chunks[3].first_ordinal);
  CHECK(log.MemoryBytes() == ExpectedMemory(chunks, 3));
  // A smaller cutoff neither revives records nor memory.
  CHECK(log.TrimBefore(kBaseUs) == chunks[3].first_ordinal);
  CHECK(log.MemoryBytes() == ExpectedMemory(chunks, 3));
  // The remaining records read back exactly from the trim point.
  std::vector<uint64_t> bad;
  uint64_t n = 0;
  for (ShardLog::Cursor c(log, log.trim_ordinal(), log.end_ordinal()); c.Valid(); c.Next(), ++n) {
    if (c.ordinal() != chunks[3].first_ordinal + n ||
        c.Get().data != Filler(100, static_cast<char>(c.ordinal()))) {
      bad.push_back(c.ordinal());
    }
  }
  CHECK(n == kRecords - chunks[3].first_ordinal);
  CHECK(bad.empty());
  // Past everything: only the newest chunk (which the writer is filling) stays.
  CHECK(log.TrimBefore(time_of(kRecords)) == kRecords);
  CHECK(log.MemoryBytes() == ExpectedMemory(chunks, chunks.size() - 1));
  CHECK(log.MemoryBytes() < ExpectedMemory(chunks) / 4);
}

TEST_CASE("TrimBefore counts exactly the records it drops that arrived at or after count_from",
          "[shard_log]") {
  ShardLog log(1);
  constexpr uint64_t kRecords = 20000;
  // Record i arrives at kBaseUs + i, with key and data sizes that vary (KeyFor, DataFor).
  std::vector<uint64_t> bytes_before(kRecords + 1, 0);  // key and data bytes of records [0, i)
  for (uint64_t i = 0; i < kRecords; ++i) {
    MustAppend(log, KeyFor(i), DataFor(i), kBaseUs + static_cast<int64_t>(i));
    bytes_before[i + 1] = bytes_before[i] + KeyFor(i).size() + DataFor(i).size();
  }
  auto time_of = [](uint64_t ordinal) { return kBaseUs + static_cast<int64_t>(ordinal); };
  ShardLog::Trimmed counted;
  // To 1,000, counting from 400: records [400, 1000).
  CHECK(log.TrimBefore(time_of(1000), time_of(400), &counted) == 1000u);
  CHECK(counted.records == 600u);
  CHECK(counted.bytes == bytes_before[1000] - bytes_before[400]);
  // Nothing new to drop: nothing counted, whatever count_from says.
  CHECK(log.TrimBefore(time_of(900), time_of(0), &counted) == 1000u);
  CHECK(counted.records == 600u);
  // count_from below the trim point counts from the trim point, across chunk boundaries.
  CHECK(log.TrimBefore(time_of(15000), time_of(0), &counted) == 15000u);
  CHECK(counted.records == 600u + 14000u);
  CHECK(counted.bytes ==
        bytes_before[1000] - bytes_before[400] + bytes_before[15000] - bytes_before[1000]);
  // count_from past the cutoff counts nothing; the trim still happens.
  ShardLog::Trimmed none;
  CHECK(log.TrimBefore(time_of(16000), time_of(17000), &none) == 16000u);
  CHECK(none.records == 0u);
  CHECK(none.bytes == 0u);
}

TEST_CASE("concurrent counting trims count every dropped record exactly once", "[shard_log]") {
  ShardLog log(1);
  constexpr uint64_t kRecords = 50000;
  for (uint64_t i = 0; i < kRecords; ++i) {
    MustAppend(log, "key", Filler(50, static_cast<char>(i)), kBaseUs + static_cast<int64_t>(i));
  }
  constexpr int kThreads = 4;
  std::vector<ShardLog::Trimmed> counted(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&log, &counted, t] {
      for (uint64_t cut = static_cast<uint64_t>(t); cut <= kRecords; cut += 97) {
        log.TrimBefore(kBaseUs + static_cast<int64_t>(cut), kBaseUs, &counted[t]);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  log.TrimBefore(kBaseUs + static_cast<int64_t>(kRecords), kBaseUs, &counted[0]);
  uint64_t records = 0, bytes = 0;
  for (const ShardLog::Trimmed& c : counted) {
    records += c.records;
    bytes += c.bytes;
  }
  CHECK(records == kRecords);
  CHECK(bytes == kRecords * (3 + 50));
}

TEST_CASE("a ChunkAccount holds the sum of its logs' MemoryBytes as chunks come and go",
          "[shard_log]") {
  internal::ChunkAccount account;
  CHECK(account.bytes() == 0u);
  CHECK(account.max_chunk_bytes() == ShardLog::kMaxChunkBytes);
  ShardLog a(1, &account);
  ShardLog b(1, &account);
  ShardLog alone(1);  // not attached: not counted
  for (uint64_t i = 0; i < 30000; ++i) {
    const int64_t t = kBaseUs + static_cast<int64_t>(i);
    MustAppend(a, "key", Filler(100, static_cast<char>(i)), t);
    if (i % 3 == 0) MustAppend(b, "key", Filler(40, static_cast<char>(i)), t);
    MustAppend(alone, "key", Filler(100, static_cast<char>(i)), t);
  }
  CHECK(account.bytes() == a.MemoryBytes() + b.MemoryBytes());
  CHECK(account.bytes() == ExpectedMemory(ChunksInMemory(a)) + ExpectedMemory(ChunksInMemory(b)));
  a.TrimBefore(kBaseUs + 20000);
  CHECK(account.bytes() == a.MemoryBytes() + b.MemoryBytes());
  b.Close();
  b.TrimBefore(kBaseUs + 30000);  // a closed log trimmed to its end gives back every chunk
  CHECK(b.MemoryBytes() == 0u);
  CHECK(account.bytes() == a.MemoryBytes());
  a.TrimBefore(kBaseUs + 30000);
  CHECK(account.bytes() == a.MemoryBytes());
  CHECK(account.bytes() == ExpectedMemory(ChunksInMemory(a)));
}

TEST_CASE("a ChunkAccount's max_chunk_bytes caps the chunks its logs start", "[shard_log]") {
  internal::ChunkAccount account;
  account.set_max_chunk_bytes(16 << 10);
  ShardLog log(1, &account);
  for (uint64_t i = 0; i < 10000; ++i) {
    MustAppend(log, "key", Filler(100, static_cast<char>(i)), kBaseUs + static_cast<int64_t>(i));
  }
  // A record larger than the cap gets a chunk of its own size (a power of two above it).
  MustAppend(log, "key", Filler(40000, 'x'), kBaseUs + 10000);
  const std::vector<ChunkInfo> chunks = ChunksInMemory(log);
  REQUIRE(chunks.size() > 60u);
  // 4, 8, 16, 16, ... KiB: the sizes grow as usual, up to the cap.
  CHECK(chunks[0].capacity == 4u << 10);
  CHECK(chunks[1].capacity == 8u << 10);
  for (size_t i = 2; i + 1 < chunks.size(); ++i) CHECK(chunks[i].capacity == 16u << 10);
  CHECK(chunks.back().capacity == 64u << 10);
  CHECK(chunks.back().count == 1u);
  CHECK(account.bytes() == ExpectedMemory(chunks));
}

TEST_CASE("a cursor made before trimming still reads its chunk after it is reclaimed",
          "[shard_log]") {
  ShardLog log(1);
  constexpr uint64_t kRecords = 100000;
  auto data_of = [](uint64_t i) { return Filler(60 + i % 50, static_cast<char>(i * 3)); };
  for (uint64_t i = 0; i < kRecords; ++i) {
    MustAppend(log, KeyFor(i), data_of(i), kBaseUs + static_cast<int64_t>(i));
  }
  const std::vector<ChunkInfo> chunks = ChunksInMemory(log);
  // The cursor sits in a largest chunk: the size the writer takes again from the pool of freed
  // chunks, so a chunk freed while still in use would be overwritten below.
  const auto largest = std::find_if(chunks.begin(), chunks.end(), [](const ChunkInfo& c) {
    return c.capacity == ShardLog::kMaxChunkBytes;
  });
  REQUIRE(largest != chunks.end());
  const auto k = static_cast<size_t>(largest - chunks.begin());
  REQUIRE(k + 3 < chunks.size());

  const uint64_t start = chunks[k].first_ordinal + chunks[k].count / 2;
  ShardLog::Cursor cursor(log, start, log.end_ordinal());
  REQUIRE(cursor.ordinal() == start);
  // A record view from chunk 0, kept alive by holding its chunk.
  std::shared_ptr<const Chunk> pinned;
  StoredRecord first_record{};
  {
    ShardLog::Cursor first(log, 0, log.end_ordinal());
    pinned = first.chunk();
    first_record = first.Get();
  }

  // Trim into chunk k + 2, reclaiming chunks 0..k+1, then append enough to reuse freed memory.
  const uint64_t trim_to = chunks[k + 2].first_ordinal + 1;
  CHECK(log.TrimBefore(kBaseUs + static_cast<int64_t>(trim_to)) == trim_to);
  CHECK(log.MemoryBytes() == ExpectedMemory(chunks, k + 2));
  for (uint64_t i = kRecords; i < 2 * kRecords; ++i) {
    MustAppend(log, KeyFor(i), data_of(i), kBaseUs + static_cast<int64_t>(i));
  }

  CHECK(first_record.counter == 1u);
  CHECK(first_record.partition_key == KeyFor(0));
  CHECK(first_record.data == data_of(0));
  // The cursor reads the rest of its chunk exactly...
  std::vector<uint64_t> bad;
  for (uint64_t i = start; i < chunks[k + 1].first_ordinal; ++i, cursor.Next()) {
    REQUIRE(cursor.Valid());
    const StoredRecord r = cursor.Get();
    if (cursor.ordinal() != i || r.counter != i + 1 || r.partition_key != KeyFor(i) ||
        r.data != data_of(i)) {
      bad.push_back(i);
    }
  }
  CHECK(bad.empty());
  // ...then moves on to the oldest chunk still in memory (chunk k + 1 was reclaimed).
  REQUIRE(cursor.Valid());
  CHECK(cursor.ordinal() == chunks[k + 2].first_ordinal);
  CHECK(cursor.Get().counter == chunks[k + 2].first_ordinal + 1);
  CHECK(cursor.Get().data == data_of(chunks[k + 2].first_ordinal));
}

TEST_CASE("Append's expire_before_us trims expired chunks on the write path", "[shard_log]") {
  ShardLog log(1);
  constexpr uint64_t kRecords = 20000;
  auto time_of = [](uint64_t i) { return kBaseUs + 10 * static_cast<int64_t>(i); };
  for (uint64_t i = 0; i < kRecords; ++i) {
    MustAppend(log, "key", Filler(80, static_cast<char>(i)), time_of(i));
  }
  const std::vector<ChunkInfo> chunks = ChunksInMemory(log);
  REQUIRE(chunks.size() >= 5u);
  const size_t before = log.MemoryBytes();

  // A cutoff inside the oldest chunk hides no record at or after it and reclaims nothing.
  MustAppend(log, "key", "a", time_of(kRecords), 0, time_of(chunks[0].first_ordinal + 2));
  CHECK(log.trim_ordinal() <= 2u);
  CHECK(log.MemoryBytes() >= before);
  CHECK(ChunksInMemory(log).front().first_ordinal == 0u);

  // A cutoff in chunk 3 (past the oldest chunk's last record) trims and reclaims at once.
  const uint64_t target = chunks[3].first_ordinal + 5;
  MustAppend(log, "key", "b", time_of(kRecords + 1), 0, time_of(target) - 3);
  CHECK(log.trim_ordinal() == target);
  const std::vector<ChunkInfo> remaining = ChunksInMemory(log);
  CHECK(remaining.front().first_ordinal == chunks[3].first_ordinal);
  CHECK(log.MemoryBytes() == ExpectedMemory(remaining));
  CHECK(log.MemoryBytes() < before);
  CHECK(log.end_ordinal() == kRecords + 2);
  CHECK(log.LowerBoundTime(kBaseUs, log.end_ordinal()) == target);

  // What remains reads back exactly, the two new records last.
  const std::vector<Read> reads = ReadAll(log, log.trim_ordinal(), log.end_ordinal());
  REQUIRE(reads.size() == kRecords + 2 - target);
  CHECK(reads.front().ordinal == target);
  CHECK(reads.front().data == Filler(80, static_cast<char>(target)));
  CHECK(reads[reads.size() - 2].data == "a");
  CHECK(reads.back().data == "b");
  CHECK(reads.back().counter == kRecords + 2);

  // Everything expires: only the newest chunk is kept, and the new record is visible.
  MustAppend(log, "key", "c", time_of(kRecords + 5), 0, time_of(kRecords + 5));
  CHECK(log.trim_ordinal() == kRecords + 2);
  CHECK(log.MemoryBytes() <= ShardLog::kMaxChunkBytes + sizeof(Chunk));
  const std::vector<Read> last = ReadAll(log, log.trim_ordinal(), log.end_ordinal());
  REQUIRE(last.size() == 1u);
  CHECK(last[0].data == "c");
}

// ---------------------------------------------------------------------------------------------
// Concurrency

TEST_CASE("a reader sees exact records while a writer appends and expires chunks",
          "[shard_log][concurrency]") {
  ShardLog log(1);
  constexpr uint64_t kRecords = 250000;
  constexpr int64_t kKeep = 20000;  // the writer expires records older than this (in us)
  auto data_of = [](uint64_t i) { return Filler(i % 97, static_cast<char>(i)); };

  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (uint64_t i = 0; i < kRecords; ++i) {
      const int64_t now = kBaseUs + static_cast<int64_t>(i);
      if (!log.Append(KeyFor(i), data_of(i), now, 0, now - kKeep)) break;
    }
    done.store(true);
  });

  uint64_t position = 0;
  uint64_t read = 0;
  uint64_t clamped = 0;
  uint64_t bad = 0;
  while (position < kRecords) {
    ShardLog::Cursor c(log, position, log.end_ordinal());
    uint64_t expected = position;
    for (; c.Valid(); c.Next(), ++expected) {
      const uint64_t i = c.ordinal();
      if (i != expected) {
        // A cursor only skips records that were trimmed (and so may have been reclaimed).
        if (i < expected || i > log.trim_ordinal()) ++bad;
        ++clamped;
        expected = i;
      }
      const StoredRecord r = c.Get();
      if (r.counter != i + 1 || r.arrival_us != kBaseUs + static_cast<int64_t>(i) ||
          r.partition_key != KeyFor(i) || r.data != data_of(i)) {
        ++bad;
      }
      ++read;
    }
    position = std::max(position, c.ordinal());
    if (done.load() && log.end_ordinal() == position) break;
  }
  writer.join();
  INFO("read " << read << ", clamped " << clamped);
  CHECK(bad == 0u);
  CHECK(position == kRecords);
  CHECK(log.end_ordinal() == kRecords);
  CHECK(read > 0u);
  // The write path kept memory bounded: the retained records plus a few chunks, far below the
  // ~20 MB appended.
  CHECK(log.MemoryBytes() <= 4 * ShardLog::kMaxChunkBytes);
}

}  // namespace
}  // namespace rill

namespace rill {
namespace {

using internal::ShardLog;
using Visibility = ShardLog::Visibility;

uint64_t AppendDeferred(ShardLog& log, std::string_view data, Visibility visibility) {
  auto appended = log.AppendJournaled("k", data, int64_t{1704067200} * 1000000, 0,
                                      std::numeric_limits<int64_t>::min(), visibility,
                                      [](uint64_t, int64_t) { return absl::OkStatus(); });
  REQUIRE(appended.ok());
  REQUIRE(appended->has_value());
  return (*appended)->ordinal;
}

// kEveryBatch writers sync their own journal regions and may finish in any order: a writer that
// finishes first must not make visible an earlier writer's records, which may not be durable.
TEST_CASE("deferred records become visible only up to the first unfinished writer", "[shard_log]") {
  ShardLog log(1);
  const uint64_t a = AppendDeferred(log, "a1", Visibility::kDeferredFirst);  // writer A
  const uint64_t b = AppendDeferred(log, "b1", Visibility::kDeferredFirst);  // writer B
  AppendDeferred(log, "a2", Visibility::kDeferred);                          // A again
  CHECK(log.end_ordinal() == 0);
  log.FinishDeferred(b, b + 1, /*durable=*/true);  // B synced first: A's a1 is before it
  CHECK(log.end_ordinal() == 0);
  log.FinishDeferred(a, 3, /*durable=*/true);
  CHECK(log.end_ordinal() == 3);

  // A writer whose sync failed stops publication at its first record, for good.
  const uint64_t c = AppendDeferred(log, "c1", Visibility::kDeferredFirst);
  const uint64_t d = AppendDeferred(log, "d1", Visibility::kDeferredFirst);
  log.FinishDeferred(c, c + 1, /*durable=*/false);
  log.FinishDeferred(d, d + 1, /*durable=*/true);
  CHECK(log.end_ordinal() == 3);

  // Records published earlier than a failed writer stay readable.
  std::vector<std::string> seen;
  for (ShardLog::Cursor cursor(log, 0, log.end_ordinal()); cursor.Valid(); cursor.Next()) {
    seen.emplace_back(cursor.Get().data);
  }
  CHECK(seen == std::vector<std::string>{"a1", "b1", "a2"});
}

}  // namespace
}  // namespace rill
