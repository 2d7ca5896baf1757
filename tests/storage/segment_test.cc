#include "storage/segment.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "segment_testing.h"
#include "storage/file_util.h"
#include "testing/fixtures.h"

namespace rill::internal {
namespace {

using ::rill::testing::TempDir;
using testing::OwnedRecord;
using testing::SameRecord;
using testing::Views;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// Telemetry-like records: compressible JSON with a few varying fields.
std::vector<OwnedRecord> JsonRecords(std::mt19937_64& rng, uint64_t first_counter, size_t count,
                                     uint64_t max_gap = 1) {
  std::vector<OwnedRecord> records;
  uint64_t counter = first_counter;
  int64_t arrival = 1'700'000'000'000'000 + static_cast<int64_t>(rng() % 1000);
  for (size_t i = 0; i < count; ++i) {
    OwnedRecord r;
    r.counter = counter;
    r.arrival_us = arrival;
    r.partition_key = absl::StrFormat("sensor-%04d", rng() % 100);
    r.data = absl::StrFormat(R"({"device":"%s","ts":%d,"temp":%.2f,"humidity":%d})",
                             r.partition_key, arrival, 15.0 + (rng() % 2000) / 100.0, rng() % 100);
    records.push_back(std::move(r));
    counter += 1 + rng() % max_gap;
    // Arrival times mostly advance, sometimes go back a little.
    arrival += static_cast<int64_t>(rng() % 50) - 10;
  }
  return records;
}

std::string RandomBytes(std::mt19937_64& rng, size_t size) {
  std::string s(size, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Writes `frames` to a new segment at `path`; returns the expected frame list.
void WriteSegment(const std::string& path, const std::vector<std::vector<OwnedRecord>>& frames,
                  int level) {
  absl::StatusOr<std::unique_ptr<SegmentWriter>> writer =
      SegmentWriter::Create(path, SegmentWriterOptions{.compression_level = level});
  REQUIRE(writer.ok());
  for (const auto& frame : frames) {
    const std::vector<StoredRecord> views = Views(frame);
    REQUIRE((*writer)->Append(views).ok());
  }
  REQUIRE((*writer)->Sync().ok());
  REQUIRE((*writer)->Close().ok());
}

// Checks that `scan`'s frames are the first frames of `expected`, with matching contents.
void CheckFramesMatch(std::string_view file, const SegmentScan& scan,
                      const std::vector<std::vector<OwnedRecord>>& expected) {
  REQUIRE(scan.frames.size() <= expected.size());
  FrameBuffer scratch;
  std::vector<StoredRecord> out;
  for (size_t f = 0; f < scan.frames.size(); ++f) {
    const FrameInfo& info = scan.frames[f];
    REQUIRE(info.offset + info.total_size <= file.size());
    REQUIRE(
        DecodeFrame(file.substr(info.offset, info.total_size), info.offset, &scratch, &out).ok());
    REQUIRE(out.size() == expected[f].size());
    for (size_t i = 0; i < out.size(); ++i) REQUIRE(SameRecord(out[i], expected[f][i].view()));
    CHECK(info.first_counter == expected[f].front().counter);
    CHECK(info.last_counter == expected[f].back().counter);
    CHECK(info.record_count == expected[f].size());
    CHECK(info.first_arrival_us == expected[f].front().arrival_us);
    CHECK(info.last_arrival_us == expected[f].back().arrival_us);
  }
}

void CheckReaderRoundTrip(const std::string& path,
                          const std::vector<std::vector<OwnedRecord>>& expected) {
  absl::StatusOr<SegmentReader> reader = SegmentReader::Open(path);
  REQUIRE(reader.ok());
  REQUIRE(reader->scan().corruption.ok());
  REQUIRE_FALSE(reader->scan().torn_tail);
  REQUIRE(reader->frames().size() == expected.size());
  FrameBuffer scratch;
  std::vector<StoredRecord> out;
  for (size_t f = 0; f < expected.size(); ++f) {
    REQUIRE(reader->ReadFrame(reader->frames()[f], &scratch, &out).ok());
    REQUIRE(out.size() == expected[f].size());
    for (size_t i = 0; i < out.size(); ++i) REQUIRE(SameRecord(out[i], expected[f][i].view()));
  }
  absl::StatusOr<std::string> bytes = ReadFile(path);
  REQUIRE(bytes.ok());
  const SegmentScan scan = ScanSegment(*bytes);
  CHECK(scan.frames == reader->frames());
  CHECK(scan.valid_bytes == bytes->size());
  CHECK(reader->scan().valid_bytes == bytes->size());
}

std::vector<std::vector<OwnedRecord>> JsonFrames(uint64_t seed, size_t frames, size_t per_frame,
                                                 uint64_t max_gap = 1) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<OwnedRecord>> out;
  uint64_t counter = 1;
  for (size_t f = 0; f < frames; ++f) {
    out.push_back(JsonRecords(rng, counter, per_frame, max_gap));
    counter = out.back().back().counter + 1 + rng() % max_gap;
  }
  return out;
}

TEST_CASE("Segment round-trips with and without compression", "[segment]") {
  const int level = GENERATE(0, 1, 3, -5);
  TempDir dir;
  const std::string path = dir.File("00000001.seg");
  const auto frames = JsonFrames(1, 20, 100);
  WriteSegment(path, frames, level);
  CheckReaderRoundTrip(path, frames);
  absl::StatusOr<std::string> bytes = ReadFile(path);
  REQUIRE(bytes.ok());
  size_t raw = 0;
  for (const auto& frame : frames) {
    std::string payload;
    AppendRawPayload(Views(frame), &payload);
    raw += kFrameHeaderBytes + payload.size();
  }
  INFO("level " << level << ": " << bytes->size() << " bytes for " << raw << " raw");
  if (level == 0) {
    CHECK(bytes->size() == kSegmentFileHeaderBytes + raw);
  } else {
    CHECK(bytes->size() * 2 < raw);  // JSON telemetry compresses well
  }
}

TEST_CASE("Segment round-trips many frames with counter gaps and odd records", "[segment]") {
  const int level = GENERATE(0, 1);
  TempDir dir;
  const std::string path = dir.File("seg");
  std::mt19937_64 rng(3);
  std::vector<std::vector<OwnedRecord>> frames;
  uint64_t counter = 1000;
  for (int f = 0; f < 500; ++f) {
    std::vector<OwnedRecord> frame;
    const size_t n = 1 + rng() % 20;
    for (size_t i = 0; i < n; ++i) {
      OwnedRecord r;
      r.counter = counter;
      counter += 1 + (rng() % 4 == 0 ? rng() % 1'000'000 : 0);             // gaps, some large
      r.arrival_us = static_cast<int64_t>(rng() % 2'000'000) - 1'000'000;  // any order, negative
      switch (rng() % 4) {
        case 0:
          break;  // empty key and empty data
        case 1:
          r.partition_key = std::string(kMaxSegmentPartitionKeyBytes, 'k');
          r.data = RandomBytes(rng, rng() % 300);
          break;
        default:
          r.partition_key = absl::StrFormat("key-%d", rng() % 10);
          r.data = std::string(rng() % 200, 'x');
      }
      frame.push_back(std::move(r));
    }
    counter += rng() % 100;  // gaps between frames too
    frames.push_back(std::move(frame));
  }
  WriteSegment(path, frames, level);
  CheckReaderRoundTrip(path, frames);
}

TEST_CASE("Segment round-trips large and incompressible records", "[segment]") {
  const int level = GENERATE(0, 1);
  TempDir dir;
  const std::string path = dir.File("seg");
  std::mt19937_64 rng(5);
  std::vector<std::vector<OwnedRecord>> frames(3);
  frames[0].push_back(OwnedRecord{1, 10, "big", std::string(10 << 20, 'a')});  // 10 MiB
  frames[0].push_back(OwnedRecord{2, 11, "", "small"});
  frames[1].push_back(OwnedRecord{3, 12, "random", RandomBytes(rng, 3 << 20)});
  frames[2].push_back(OwnedRecord{4, 13, "k", RandomBytes(rng, 100)});
  WriteSegment(path, frames, level);
  CheckReaderRoundTrip(path, frames);
  // The random frame cannot shrink, so it is stored raw even with compression on.
  absl::StatusOr<std::string> bytes = ReadFile(path);
  REQUIRE(bytes.ok());
  const SegmentScan scan = ScanSegment(*bytes);
  REQUIRE(scan.frames.size() == 3);
  absl::StatusOr<FrameHeader> h =
      ParseFrameHeader(std::string_view(*bytes).substr(scan.frames[1].offset, kFrameHeaderBytes));
  REQUIRE(h.ok());
  CHECK(h->codec == FrameCodec::kNone);
  if (level != 0) CHECK(scan.frames[0].total_size < (1 << 20));
}

TEST_CASE("Segment keeps extreme counters and arrival times", "[segment]") {
  TempDir dir;
  const std::string path = dir.File("seg");
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr uint64_t kTop = std::numeric_limits<uint64_t>::max();
  std::vector<std::vector<OwnedRecord>> frames(2);
  frames[0] = {{0, kMax, "a", "1"}, {1, kMin, "b", "2"}, {2, 0, "c", "3"}};
  frames[1] = {{kTop - 2, kMin, "", ""}, {kTop - 1, kMax, "", ""}, {kTop, -1, "", ""}};
  WriteSegment(path, frames, 1);
  CheckReaderRoundTrip(path, frames);
}

// A file of `count` JSON frames, in memory, with its expected contents.
struct BuiltSegment {
  std::vector<std::vector<OwnedRecord>> frames;
  std::string bytes;
  SegmentScan scan;
};

BuiltSegment BuildSegment(int level, size_t count, size_t per_frame, uint64_t seed = 9) {
  TempDir dir;
  BuiltSegment built;
  built.frames = JsonFrames(seed, count, per_frame, 3);
  WriteSegment(dir.File("seg"), built.frames, level);
  absl::StatusOr<std::string> bytes = ReadFile(dir.File("seg"));
  REQUIRE(bytes.ok());
  built.bytes = *std::move(bytes);
  built.scan = ScanSegment(built.bytes);
  REQUIRE(built.scan.corruption.ok());
  REQUIRE(built.scan.frames.size() == count);
  return built;
}

TEST_CASE("Segment scan treats every cut inside the last frame as a torn tail", "[segment]") {
  const int level = GENERATE(0, 1);
  const BuiltSegment built = BuildSegment(level, 3, 5);
  const FrameInfo& last = built.scan.frames.back();
  for (uint64_t cut = last.offset; cut <= built.bytes.size(); ++cut) {
    const std::string_view prefix = std::string_view(built.bytes).substr(0, cut);
    const SegmentScan scan = ScanSegment(prefix);
    INFO("cut at " << cut << " of " << built.bytes.size());
    REQUIRE(scan.corruption.ok());
    if (cut == built.bytes.size()) {
      REQUIRE(scan.frames.size() == 3);
      REQUIRE_FALSE(scan.torn_tail);
      REQUIRE(scan.valid_bytes == cut);
    } else {
      REQUIRE(scan.frames.size() == 2);
      REQUIRE(scan.torn_tail == (cut > last.offset));
      REQUIRE(scan.valid_bytes == last.offset);
    }
    CheckFramesMatch(prefix, scan, built.frames);
  }
}

TEST_CASE("Segment scan accepts every prefix of a file as whole frames and a torn tail",
          "[segment]") {
  const BuiltSegment built = BuildSegment(1, 4, 3);
  for (uint64_t cut = 0; cut <= built.bytes.size(); ++cut) {
    const std::string_view prefix = std::string_view(built.bytes).substr(0, cut);
    const SegmentScan scan = ScanSegment(prefix);
    INFO("cut at " << cut);
    REQUIRE(scan.corruption.ok());
    size_t whole = 0;
    while (whole < built.scan.frames.size() &&
           built.scan.frames[whole].offset + built.scan.frames[whole].total_size <= cut) {
      ++whole;
    }
    REQUIRE(scan.frames.size() == whole);
    const uint64_t end_of_whole =
        whole == 0 ? (cut < kSegmentFileHeaderBytes ? 0 : kSegmentFileHeaderBytes)
                   : built.scan.frames[whole - 1].offset + built.scan.frames[whole - 1].total_size;
    REQUIRE(scan.valid_bytes == end_of_whole);
    // A file shorter than its header was never fully created: a torn tail too.
    REQUIRE(scan.torn_tail == (cut < kSegmentFileHeaderBytes || cut != end_of_whole));
    CheckFramesMatch(prefix, scan, built.frames);
  }
}

TEST_CASE("Segment reader sees a truncated file as a torn tail", "[segment]") {
  TempDir dir;
  const std::string path = dir.File("seg");
  const auto frames = JsonFrames(2, 3, 10);
  WriteSegment(path, frames, 1);
  absl::StatusOr<SegmentReader> full = SegmentReader::Open(path);
  REQUIRE(full.ok());
  const FrameInfo last = full->frames().back();
  for (uint64_t cut = last.offset + 1; cut < last.offset + last.total_size; cut += 13) {
    REQUIRE(::truncate(path.c_str(), static_cast<off_t>(cut)) == 0);
    absl::StatusOr<SegmentReader> reader = SegmentReader::Open(path);
    REQUIRE(reader.ok());
    CHECK(reader->scan().torn_tail);
    CHECK(reader->scan().corruption.ok());
    CHECK(reader->scan().valid_bytes == last.offset);
    CHECK(reader->frames().size() == 2);
  }
}

TEST_CASE("Segment scan reports a bit flip in a middle frame as data loss", "[segment]") {
  const int level = GENERATE(0, 1);
  const BuiltSegment built = BuildSegment(level, 5, 4);
  const FrameInfo& middle = built.scan.frames[2];
  for (uint64_t pos = middle.offset; pos < middle.offset + middle.total_size; ++pos) {
    std::string damaged = built.bytes;
    damaged[pos] = static_cast<char>(damaged[pos] ^ (1 << (pos % 8)));
    const SegmentScan scan = ScanSegment(damaged);
    INFO("flip at " << pos << ": " << scan.corruption);
    REQUIRE(absl::IsDataLoss(scan.corruption));
    REQUIRE(Msg(scan.corruption).find(absl::StrFormat("offset %d", middle.offset)) !=
            std::string::npos);
    REQUIRE_FALSE(scan.torn_tail);
    REQUIRE(scan.valid_bytes == middle.offset);
    REQUIRE(scan.frames.size() == 2);
    CheckFramesMatch(damaged, scan, built.frames);
  }
}

TEST_CASE("Segment scan never returns wrong data after a bit flip in the last frame", "[segment]") {
  const int level = GENERATE(0, 1);
  const BuiltSegment built = BuildSegment(level, 3, 4);
  const FrameInfo& last = built.scan.frames.back();
  for (uint64_t pos = last.offset; pos < built.bytes.size(); ++pos) {
    std::string damaged = built.bytes;
    damaged[pos] = static_cast<char>(damaged[pos] ^ (0x80 >> (pos % 8)));
    const SegmentScan scan = ScanSegment(damaged);
    INFO("flip at " << pos);
    REQUIRE((scan.torn_tail || absl::IsDataLoss(scan.corruption)));
    REQUIRE(scan.frames.size() == 2);
    REQUIRE(scan.valid_bytes == last.offset);
    CheckFramesMatch(damaged, scan, built.frames);
  }
}

TEST_CASE("Segment scan reports damage to the file header or the first frame", "[segment]") {
  const BuiltSegment built = BuildSegment(1, 3, 4);
  for (uint64_t pos = 0; pos < built.scan.frames[1].offset; ++pos) {
    std::string damaged = built.bytes;
    damaged[pos] = static_cast<char>(damaged[pos] ^ 0x10);
    const SegmentScan scan = ScanSegment(damaged);
    INFO("flip at " << pos);
    REQUIRE(absl::IsDataLoss(scan.corruption));
    REQUIRE(scan.frames.empty());
    REQUIRE(scan.valid_bytes == (pos < kSegmentFileHeaderBytes ? 0 : kSegmentFileHeaderBytes));
  }
}

TEST_CASE("Segment scan handles empty, short, foreign and newer files", "[segment]") {
  SECTION("empty file: never fully created") {
    const SegmentScan scan = ScanSegment("");
    CHECK(scan.torn_tail);
    CHECK(scan.corruption.ok());
    CHECK(scan.valid_bytes == 0);
  }
  SECTION("header only") {
    const BuiltSegment built = BuildSegment(1, 1, 1);
    const SegmentScan scan = ScanSegment(built.bytes.substr(0, kSegmentFileHeaderBytes));
    CHECK(scan.corruption.ok());
    CHECK_FALSE(scan.torn_tail);
    CHECK(scan.frames.empty());
    CHECK(scan.valid_bytes == kSegmentFileHeaderBytes);
  }
  SECTION("foreign bytes") {
    CHECK(absl::IsDataLoss(ScanSegment("hello").corruption));
    CHECK(absl::IsDataLoss(ScanSegment(std::string(100, 'x')).corruption));
  }
  SECTION("a newer format version with an intact header") {
    std::string header(kSegmentFileMagic);
    header.append("\x02\0\0\0", 4);
    header.append(4, '\0');
    testing::StoreLe32(header.data() + 12, MaskCrc32c(Crc32c(header.substr(0, 12))));
    const SegmentScan scan = ScanSegment(header);
    CHECK(absl::IsUnimplemented(scan.corruption));
    CHECK(scan.frames.empty());
  }
}

// Damage that checksums cannot see: rewrite a frame's header with EncodeFrameHeader.
TEST_CASE("Segment decoding rejects frames whose header and records disagree", "[segment]") {
  const BuiltSegment built = BuildSegment(0, 1, 5);
  const FrameInfo& info = built.scan.frames[0];
  const std::string frame = built.bytes.substr(info.offset, info.total_size);
  absl::StatusOr<FrameHeader> original = ParseFrameHeader(frame);
  REQUIRE(original.ok());
  FrameBuffer scratch;
  std::vector<StoredRecord> out;
  REQUIRE(DecodeFrame(frame, 0, &scratch, &out).ok());

  auto decode_with = [&](FrameHeader h, std::string payload) {
    h.stored_bytes = h.raw_bytes = static_cast<uint32_t>(payload.size());
    h.payload_crc = Crc32c(payload);
    std::string bytes(kFrameHeaderBytes, '\0');
    EncodeFrameHeader(h, bytes.data());
    bytes += payload;
    return DecodeFrame(bytes, 77, &scratch, &out);
  };
  const std::string payload = frame.substr(kFrameHeaderBytes);
  REQUIRE(decode_with(*original, payload).ok());
  FrameHeader h = *original;
  SECTION("record count too high") { h.record_count += 1; }
  SECTION("record count too low") { h.record_count -= 1; }
  SECTION("last counter differs") { h.last_counter += 1; }
  SECTION("first counter differs") { h.first_counter -= 1; }
  SECTION("last arrival differs") { h.last_arrival_us += 1; }
  SECTION("first arrival differs") { h.first_arrival_us += 1; }
  const absl::Status s = decode_with(h, payload);
  INFO(s);
  CHECK(absl::IsDataLoss(s));
  CHECK(Msg(s).find("offset 77") != std::string::npos);
  CHECK(out.empty());
}

TEST_CASE("Segment decoding rejects payloads with bad lengths or leftovers", "[segment]") {
  FrameBuffer scratch;
  std::vector<StoredRecord> out;
  std::string bytes;  // the frame; decoded records of an uncompressed frame point into it
  auto decode = [&](std::string payload, uint32_t count, uint64_t last_counter) {
    FrameHeader h;
    h.record_count = count;
    h.first_counter = 5;
    h.last_counter = last_counter;
    h.stored_bytes = h.raw_bytes = static_cast<uint32_t>(payload.size());
    h.payload_crc = Crc32c(payload);
    bytes.assign(kFrameHeaderBytes, '\0');
    EncodeFrameHeader(h, bytes.data());
    bytes += payload;
    return DecodeFrame(bytes, 0, &scratch, &out);
  };
  // counter delta 0, arrival 0, key "ab", data "xyz".
  const std::string good(
      "\x00\x00\x02"
      "ab"
      "\x03"
      "xyz",
      9);
  REQUIRE(decode(good, 1, 5).ok());
  REQUIRE(out.size() == 1);
  CHECK(out[0].partition_key == "ab");
  CHECK(out[0].data == "xyz");
  CHECK(absl::IsDataLoss(decode(good + std::string(1, '\0'), 1, 5)));  // trailing byte
  CHECK(absl::IsDataLoss(decode(std::string("\x00\x00\x09"
                                            "ab"
                                            "\x03"
                                            "xyz",
                                            9),
                                1, 5)));
  CHECK(absl::IsDataLoss(decode(std::string("\x00\x00\x02"
                                            "ab"
                                            "\x09"
                                            "xyz",
                                            9),
                                1, 5)));
  CHECK(absl::IsDataLoss(decode(std::string("\x01\x00\x02"
                                            "ab"
                                            "\x03"
                                            "xyz",
                                            9),
                                1, 5)));
  CHECK(absl::IsDataLoss(decode(std::string("\x02\x00\x02"
                                            "ab"
                                            "\x03"
                                            "xyz",
                                            9),
                                1, 5)));
  // A second record whose counter does not advance.
  CHECK(absl::IsDataLoss(decode(good + std::string("\x00\x00\x00\x00", 4), 2, 6)));
  // An overlong varint.
  CHECK(absl::IsDataLoss(decode(std::string(11, '\xff') + good, 1, 5)));
  // A key longer than Kinesis allows.
  std::string long_key("\x00\x00\x81\x08", 4);  // key length 1025
  long_key += std::string(1025, 'k') + std::string("\x00", 1);
  CHECK(absl::IsDataLoss(decode(long_key, 1, 5)));
}

TEST_CASE("Segment scan reports frames whose counters do not increase", "[segment]") {
  TempDir dir;
  const std::string path = dir.File("seg");
  const auto first = JsonFrames(4, 2, 5);
  WriteSegment(path, first, 1);
  absl::StatusOr<SegmentReader> reader = SegmentReader::Open(path);
  REQUIRE(reader.ok());
  // Reopened without telling the writer the last counter, it cannot refuse an old counter.
  absl::StatusOr<std::unique_ptr<SegmentWriter>> writer =
      SegmentWriter::OpenForAppend(path, reader->scan().valid_bytes, std::nullopt);
  REQUIRE(writer.ok());
  const std::vector<StoredRecord> again = Views(first[1]);
  REQUIRE((*writer)->Append(again).ok());
  REQUIRE((*writer)->Close().ok());
  absl::StatusOr<SegmentReader> bad = SegmentReader::Open(path);
  REQUIRE(bad.ok());
  INFO(bad->scan().corruption);
  CHECK(absl::IsDataLoss(bad->scan().corruption));
  CHECK(Msg(bad->scan().corruption).find(path) != std::string::npos);
  CHECK(bad->frames().size() == 2);
  CHECK(bad->scan().valid_bytes == reader->scan().valid_bytes);
}

TEST_CASE("Segment appends after recovery round-trip", "[segment]") {
  const int level = GENERATE(0, 1);
  TempDir dir;
  const std::string path = dir.File("seg");
  auto frames = JsonFrames(6, 3, 8);
  WriteSegment(path, frames, level);
  absl::StatusOr<SegmentReader> whole = SegmentReader::Open(path);
  REQUIRE(whole.ok());
  const FrameInfo last = whole->frames().back();
  // The crash cut the third frame.
  REQUIRE(::truncate(path.c_str(), static_cast<off_t>(last.offset + last.total_size / 2)) == 0);
  absl::StatusOr<SegmentReader> torn = SegmentReader::Open(path);
  REQUIRE(torn.ok());
  REQUIRE(torn->scan().torn_tail);
  REQUIRE(torn->frames().size() == 2);

  absl::StatusOr<std::unique_ptr<SegmentWriter>> writer = SegmentWriter::OpenForAppend(
      path, torn->scan().valid_bytes, torn->frames().back().last_counter,
      SegmentWriterOptions{.compression_level = level});
  REQUIRE(writer.ok());
  CHECK((*writer)->size_bytes() == last.offset);
  // An old counter is refused, and the writer stays usable.
  const std::vector<StoredRecord> old = Views(frames[1]);
  const absl::Status refused = (*writer)->Append(old);
  CHECK(absl::IsInvalidArgument(refused));
  CHECK(Msg(refused).find(path) != std::string::npos);

  frames.pop_back();
  std::mt19937_64 rng(8);
  for (int i = 0; i < 2; ++i) {
    frames.push_back(JsonRecords(rng, frames.back().back().counter + 10, 6));
    const std::vector<StoredRecord> views = Views(frames.back());
    REQUIRE((*writer)->Append(views).ok());
  }
  REQUIRE((*writer)->Sync().ok());
  REQUIRE((*writer)->Close().ok());
  CheckReaderRoundTrip(path, frames);
}

TEST_CASE("Segment writer refuses to overwrite an existing file", "[segment]") {
  TempDir dir;
  const std::string path = dir.File("seg");
  WriteSegment(path, JsonFrames(1, 1, 1), 1);
  absl::StatusOr<std::unique_ptr<SegmentWriter>> again = SegmentWriter::Create(path);
  REQUIRE(absl::IsAlreadyExists(again.status()));
  CHECK(Msg(again.status()).find(path) != std::string::npos);
  CheckReaderRoundTrip(path, JsonFrames(1, 1, 1));  // untouched
}

TEST_CASE("Segment writer rejects bad arguments and stays usable", "[segment]") {
  TempDir dir;
  const std::string path = dir.File("seg");
  CHECK(absl::IsInvalidArgument(
      SegmentWriter::Create(path, SegmentWriterOptions{.compression_level = 99}).status()));
  absl::StatusOr<std::unique_ptr<SegmentWriter>> writer = SegmentWriter::Create(path);
  REQUIRE(writer.ok());
  SegmentWriter& w = **writer;
  CHECK(absl::IsInvalidArgument(w.Append({})));
  const std::string long_key(kMaxSegmentPartitionKeyBytes + 1, 'k');
  const StoredRecord too_long[] = {{1, 0, long_key, "d"}};
  CHECK(absl::IsInvalidArgument(w.Append(too_long)));
  const StoredRecord unordered[] = {{5, 0, "k", "d"}, {5, 0, "k", "d"}};
  CHECK(absl::IsInvalidArgument(w.Append(unordered)));
  const StoredRecord good[] = {{1, 0, "k", "d"}, {2, 0, "k", "d"}};
  REQUIRE(w.Append(good).ok());
  CHECK(w.last_counter() == 2);
  CHECK(absl::IsInvalidArgument(w.Append(good)));  // counters must increase across frames
  REQUIRE(w.Close().ok());
  CHECK(w.Close().ok());  // idempotent
  const StoredRecord later[] = {{3, 0, "k", "d"}};
  CHECK(absl::IsFailedPrecondition(w.Append(later)));
  absl::StatusOr<SegmentReader> reader = SegmentReader::Open(path);
  REQUIRE(reader.ok());
  CHECK(reader->frames().size() == 1);
}

TEST_CASE("Segment writer reports I/O errors with the path and stays failed", "[segment]") {
  TempDir dir;
  SECTION("a missing directory") {
    const std::string path = dir.File("missing/seg");
    absl::StatusOr<std::unique_ptr<SegmentWriter>> writer = SegmentWriter::Create(path);
    REQUIRE_FALSE(writer.ok());
    CHECK(Msg(writer.status()).find(path) != std::string::npos);
    CHECK(Msg(writer.status()).find("No such file") != std::string::npos);
  }
  SECTION("the file size limit cuts a frame short") {
    const std::string path = dir.File("seg");
    absl::StatusOr<std::unique_ptr<SegmentWriter>> writer =
        SegmentWriter::Create(path, SegmentWriterOptions{.compression_level = 0});
    REQUIRE(writer.ok());
    SegmentWriter& w = **writer;
    const StoredRecord first[] = {{1, 0, "k", "first"}};
    REQUIRE(w.Append(first).ok());
    const uint64_t good_size = w.size_bytes();
    // RLIMIT_FSIZE makes the kernel write a prefix, then fail with EFBIG (SIGXFSZ ignored).
    struct sigaction ignore = {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction previous_action;
    REQUIRE(::sigaction(SIGXFSZ, &ignore, &previous_action) == 0);
    struct rlimit previous_limit;
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &previous_limit) == 0);
    struct rlimit limit = previous_limit;
    limit.rlim_cur = good_size + 1000;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &limit) == 0);
    const std::string big(100'000, 'b');
    const StoredRecord second[] = {{2, 0, "k", big}};
    const absl::Status failed = w.Append(second);
    const StoredRecord third[] = {{3, 0, "k", "small"}};
    const absl::Status after = w.Append(third);
    const absl::Status sync = w.Sync();
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &previous_limit) == 0);
    REQUIRE(::sigaction(SIGXFSZ, &previous_action, nullptr) == 0);
    INFO(failed);
    CHECK(failed.code() == absl::StatusCode::kInternal);
    CHECK(Msg(failed).find(path) != std::string::npos);
    CHECK(Msg(failed).find("too large") != std::string::npos);
    CHECK(after == failed);
    CHECK(sync == failed);
    CHECK(w.size_bytes() == good_size);
    CHECK(w.Close() == failed);
    // What reached the disk is the good frame (the writer trimmed the partial one).
    absl::StatusOr<SegmentReader> reader = SegmentReader::Open(path);
    REQUIRE(reader.ok());
    CHECK(reader->frames().size() == 1);
    CHECK(reader->scan().valid_bytes == good_size);
  }
}

TEST_CASE("Segment OpenForAppend checks its arguments and the file header", "[segment]") {
  TempDir dir;
  const std::string path = dir.File("seg");
  CHECK(absl::IsNotFound(SegmentWriter::OpenForAppend(path, 16, std::nullopt).status()));
  WriteSegment(path, JsonFrames(1, 1, 3), 1);
  absl::StatusOr<std::string> bytes = ReadFile(path);
  REQUIRE(bytes.ok());
  CHECK(absl::IsInvalidArgument(
      SegmentWriter::OpenForAppend(path, bytes->size() + 1, std::nullopt).status()));
  CHECK(absl::IsInvalidArgument(SegmentWriter::OpenForAppend(path, 3, std::nullopt).status()));
  std::string damaged = *bytes;
  damaged[2] ^= 1;
  const std::string other = dir.File("damaged");
  REQUIRE(WriteFileAtomically(other, damaged).ok());
  const absl::Status s = SegmentWriter::OpenForAppend(other, 16, std::nullopt).status();
  CHECK(absl::IsDataLoss(s));
  CHECK(Msg(s).find(other) != std::string::npos);
}

TEST_CASE("Segment reader verifies frames again when reading them", "[segment]") {
  TempDir dir;
  const std::string path = dir.File("seg");
  const auto frames = JsonFrames(12, 3, 10);
  WriteSegment(path, frames, 1);
  absl::StatusOr<SegmentReader> reader = SegmentReader::Open(path);
  REQUIRE(reader.ok());
  FrameBuffer scratch;
  std::vector<StoredRecord> out;
  const FrameInfo middle = reader->frames()[1];
  SECTION("a byte rots after Open") {
    absl::StatusOr<ScopedFd> fd = OpenFile(path, O_RDWR);
    REQUIRE(fd.ok());
    char byte;
    const uint64_t pos = middle.offset + middle.total_size - 3;
    REQUIRE(::pread(fd->get(), &byte, 1, static_cast<off_t>(pos)) == 1);
    byte = static_cast<char>(byte ^ 4);
    REQUIRE(::pwrite(fd->get(), &byte, 1, static_cast<off_t>(pos)) == 1);
    const absl::Status s = reader->ReadFrame(middle, &scratch, &out);
    CHECK(absl::IsDataLoss(s));
    CHECK(Msg(s).find(path) != std::string::npos);
    CHECK(out.empty());
    CHECK(reader->ReadFrame(reader->frames()[0], &scratch, &out).ok());
  }
  SECTION("the file shrinks after Open") {
    REQUIRE(::truncate(path.c_str(), static_cast<off_t>(middle.offset + 10)) == 0);
    CHECK(absl::IsDataLoss(reader->ReadFrame(middle, &scratch, &out)));
    CHECK(reader->ReadFrame(reader->frames()[0], &scratch, &out).ok());
  }
  SECTION("a frame that is not this file's") {
    FrameInfo wrong = middle;
    wrong.last_counter += 1;
    CHECK(absl::IsDataLoss(reader->ReadFrame(wrong, &scratch, &out)));
    wrong = middle;
    wrong.total_size = 3;
    CHECK(absl::IsInvalidArgument(reader->ReadFrame(wrong, &scratch, &out)));
  }
}

// The file reader reads in 1 MiB windows when it looks for a frame after damage; a frame magic
// that straddles two windows must still be found, and the file and memory scans must agree.
TEST_CASE("Segment file and memory scans agree across read windows", "[segment]") {
  const int shift = GENERATE(0, 1, 2, 3, 4, 5);
  TempDir dir;
  const std::string path = dir.File("seg");
  std::vector<std::vector<OwnedRecord>> frames(3);
  frames[0].push_back(OwnedRecord{1, 0, "", "first"});
  std::string first_payload;
  AppendRawPayload(Views(frames[0]), &first_payload);
  const uint64_t frame1 = kSegmentFileHeaderBytes;
  const uint64_t frame2 = frame1 + kFrameHeaderBytes + first_payload.size();
  // Damage to frame 1's header makes the search start at frame1 + 1; its first window ends at
  // frame1 + 1 + 2^20. Put frame 3's magic `shift` bytes before that end.
  const uint64_t window_end = frame1 + 1 + (uint64_t{1} << 20);
  const uint64_t frame3 = window_end - static_cast<uint64_t>(shift);
  const uint64_t raw2 = frame3 - frame2 - kFrameHeaderBytes;
  const uint64_t data_size = raw2 - 6;  // 1 + 1 + 1 varint bytes and a 3-byte data length
  std::mt19937_64 rng(1);
  frames[1].push_back(OwnedRecord{2, 0, "", RandomBytes(rng, data_size)});
  frames[2].push_back(OwnedRecord{3, 0, "", "third"});
  WriteSegment(path, frames, 0);
  absl::StatusOr<std::string> bytes = ReadFile(path);
  REQUIRE(bytes.ok());
  REQUIRE(ScanSegment(*bytes).frames.size() == 3);
  REQUIRE(ScanSegment(*bytes).frames[2].offset == frame3);

  std::string damaged = *bytes;
  damaged[frame1 + 20] ^= 1;  // frame 1's header
  damaged[frame2 + 20] ^= 1;  // frame 2's header: the search must go through its payload
  REQUIRE(WriteFileAtomically(path, damaged).ok());
  const SegmentScan memory = ScanSegment(damaged);
  absl::StatusOr<SegmentReader> file = SegmentReader::Open(path);
  REQUIRE(file.ok());
  INFO(memory.corruption);
  CHECK(absl::IsDataLoss(memory.corruption));
  CHECK(Msg(memory.corruption).find(absl::StrFormat("follows at offset %d", frame3)) !=
        std::string::npos);
  CHECK(memory.frames.empty());
  CHECK(memory.valid_bytes == frame1);
  CHECK(file->frames() == memory.frames);
  CHECK(file->scan().valid_bytes == memory.valid_bytes);
  CHECK(file->scan().torn_tail == memory.torn_tail);
  CHECK(Msg(file->scan().corruption).find(Msg(memory.corruption)) != std::string::npos);
}

// Random damage of random kinds: the file and memory scans agree, and nothing they accept decodes
// to anything but the records written.
TEST_CASE("Segment scans agree and return only written records under random damage", "[segment]") {
  TempDir dir;
  std::mt19937_64 rng(99);
  const BuiltSegment built = BuildSegment(1, 8, 6, 21);
  for (int round = 0; round < 300; ++round) {
    std::string damaged = built.bytes;
    switch (rng() % 4) {
      case 0:  // flip bits
        for (int i = 0, n = 1 + static_cast<int>(rng() % 4); i < n; ++i) {
          damaged[rng() % damaged.size()] ^= static_cast<char>(1 << (rng() % 8));
        }
        break;
      case 1:  // truncate
        damaged.resize(rng() % damaged.size());
        break;
      case 2: {  // zero a range, as a lost block would
        const size_t at = rng() % damaged.size();
        const size_t n = std::min<size_t>(damaged.size() - at, rng() % 600);
        std::fill_n(damaged.begin() + static_cast<ptrdiff_t>(at), n, '\0');
        break;
      }
      default:  // append garbage
        damaged += RandomBytes(rng, rng() % 200);
    }
    const std::string path = dir.File(absl::StrFormat("seg%d", round));
    REQUIRE(WriteFileAtomically(path, damaged).ok());
    const SegmentScan memory = ScanSegment(damaged);
    absl::StatusOr<SegmentReader> file = SegmentReader::Open(path);
    REQUIRE(file.ok());
    INFO("round " << round << ": " << memory.corruption);
    REQUIRE(file->frames() == memory.frames);
    REQUIRE(file->scan().valid_bytes == memory.valid_bytes);
    REQUIRE(file->scan().torn_tail == memory.torn_tail);
    REQUIRE(file->scan().corruption.code() == memory.corruption.code());
    REQUIRE(memory.valid_bytes <= damaged.size());
    CheckFramesMatch(damaged, memory, built.frames);
    FrameBuffer scratch;
    std::vector<StoredRecord> out;
    for (const FrameInfo& f : file->frames()) REQUIRE(file->ReadFrame(f, &scratch, &out).ok());
    ::unlink(path.c_str());
  }
}

// Not run by ctest: writes the segment fuzzer's seed corpus into $RILL_SEGMENT_CORPUS_DIR (see
// tests/fuzz/CMakeLists.txt). Small files, each showing one shape of segment.
TEST_CASE("Write the segment fuzzer seed corpus", "[.][corpus]") {
  const char* out = std::getenv("RILL_SEGMENT_CORPUS_DIR");
  REQUIRE(out != nullptr);
  TempDir dir;
  auto write = [&](const std::string& name, const std::vector<std::vector<OwnedRecord>>& frames,
                   int level) {
    WriteSegment(dir.File(name), frames, level);
    absl::StatusOr<std::string> bytes = ReadFile(dir.File(name));
    REQUIRE(bytes.ok());
    return *bytes;
  };
  auto save = [&](const std::string& name, const std::string& bytes) {
    REQUIRE(WriteFileAtomically(std::string(out) + "/" + name, bytes).ok());
  };
  save("header_only", write("header_only", {}, 1));
  save("one_raw_frame", write("one_raw_frame", JsonFrames(1, 1, 3), 0));
  save("one_zstd_frame", write("one_zstd_frame", JsonFrames(2, 1, 12), 1));
  const std::string mixed = write("mixed", JsonFrames(3, 4, 4, 5), 1);
  save("four_frames", mixed);
  const SegmentScan scan = ScanSegment(mixed);
  save("torn_tail", mixed.substr(0, scan.frames[3].offset + scan.frames[3].total_size / 2));
  std::string damaged = mixed;
  damaged[scan.frames[1].offset + kFrameHeaderBytes + 2] ^= 1;
  save("middle_damage", damaged);
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  std::vector<std::vector<OwnedRecord>> odd(2);
  odd[0] = {{0, kMax, "", ""}, {7, kMin, "k", ""}, {9, 0, "", "d"}};
  odd[1] = {{std::numeric_limits<uint64_t>::max(), -1, std::string(256, 'k'), "x"}};
  save("extremes", write("extremes", odd, 0));
}

}  // namespace
}  // namespace rill::internal
