// rill verify on a clean stream (exit 0), on a stream with one byte flipped in a segment frame
// (exit 4, naming the shard, the segment file and the frame's offset) and on damaged lineage and
// counter files.
#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "cli_testing.h"
#include "rill/stream/stream.h"
#include "storage/file_util.h"
#include "storage/stream_store.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

using cli_testing::Rill;
using cli_testing::RunResult;

// A closed stream of one shard whose segment holds three frames (one per Flush), after a split
// into two children that got one record each, then reopened.
void MakeStream(const std::string& dir) {
  auto clock = cli_testing::RecentClock();
  auto stream = testing::MustCreate(cli_testing::DurableOptions(dir, clock, 1));
  for (const char* data : {"first", "second", "third"}) {
    testing::MustPut(*stream, "k", data);
    REQUIRE(stream->Flush().ok());
  }
  REQUIRE(stream->SplitShard(ShardId(0), HashKey(absl::uint128(1) << 127)).ok());
  testing::MustPut(*stream, cli_testing::KeyForShard(0, 2), "low");
  testing::MustPut(*stream, cli_testing::KeyForShard(1, 2), "high");
  REQUIRE(stream->Flush().ok());
  // Reopened once: the new owner rewrites COUNTERS with ceilings for the open shards only.
  stream.reset();
  absl::StatusOr<std::unique_ptr<Stream>> reopened =
      Stream::Open(cli_testing::DurableOptions(dir, clock, 1));
  REQUIRE(reopened.ok());
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  file.read(&c, 1);
  c = static_cast<char>(c ^ 0x40);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(&c, 1);
  REQUIRE(file.good());
}

TEST_CASE("verify passes a clean stream with exit 0", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  MakeStream(dir.path());
  RunResult r = Rill({"verify", dir.path()});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  const std::vector<std::string> lines = r.lines();
  REQUIRE(lines.size() == 6);
  CHECK(lines[0] == "METADATA: ok (stream clicks, 3 shards)");
  CHECK(lines[1] == "SHARD                 STATE   SEGMENTS  FRAMES  RECORDS  BYTES  RESULT");
  CHECK(absl::StartsWith(lines[2], "shardId-000000000000  closed         1       3        3  "));
  CHECK(absl::EndsWith(lines[2], "  ok"));
  CHECK(absl::StartsWith(lines[3], "shardId-000000000001  open           1       1        1  "));
  CHECK(absl::StartsWith(lines[4], "shardId-000000000002  open           1       1        1  "));
  CHECK(lines[5] == absl::StrFormat("verify: %s is ok: 3 shards, 3 segments, 5 frames, 5 records "
                                    "checked (0 notes)",
                                    dir.path()));

  r = Rill({"verify", dir.path(), "--json"});
  CHECK(r.exit_code == 0);
  REQUIRE(r.lines().size() == 4);
  CHECK(r.lines()[3] ==
        "{\"kind\":\"summary\",\"result\":\"ok\",\"damage\":0,\"notes\":0,\"shards\":3,"
        "\"segments\":3,\"frames\":5,\"records\":5}");
}

TEST_CASE("verify finds a flipped byte in a frame and names shard, segment and offset", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  MakeStream(dir.path());
  const std::string segment = dir.File("shard-0/00000000000000000001.seg");
  REQUIRE(std::filesystem::exists(segment));
  // The first frame starts after the 16-byte file header; its payload after the 60-byte frame
  // header. A byte of the payload: the payload checksum fails, and valid frames follow.
  FlipByte(segment, 16 + 60 + 3);

  RunResult r = Rill({"verify", dir.path()});
  CHECK(r.exit_code == 4);
  INFO(r.out);
  const std::string damage_line =
      absl::StrFormat("damage: shard shardId-000000000000, segment %s, offset 16: ", segment);
  CHECK(absl::StrContains(r.out, damage_line + "payload checksum mismatch, and a valid frame "
                                               "follows at offset "));
  CHECK(absl::StrContains(r.out, absl::StrFormat("verify: %s is DAMAGED: 1 problem", dir.path())));
  CHECK(absl::StrContains(r.out, "shardId-000000000000  closed         1       2        2  "));
  CHECK(absl::StrContains(r.out, "DAMAGED\n"));

  r = Rill({"verify", dir.path(), "--json"});
  CHECK(r.exit_code == 4);
  bool found = false;
  simdjson::dom::parser parser;
  for (const std::string& line : r.lines()) {
    simdjson::dom::element o = parser.parse(line);
    if (std::string_view(o["kind"]) != "damage") continue;
    found = true;
    CHECK(std::string_view(o["shard_id"]) == "shardId-000000000000");
    CHECK(std::string_view(o["file"]) == segment);
    CHECK(uint64_t(o["offset"]) == 16);
  }
  CHECK(found);

  // The read commands still work, with a warning, on what precedes the damage; verify left the
  // file as it was.
  r = Rill({"describe", dir.path()});
  CHECK(r.exit_code == 0);
  CHECK(absl::StrContains(r.err, "rill: warning: recovery found damage in " + dir.path()));
  CHECK(std::filesystem::exists(segment));
}

TEST_CASE("verify reports damaged COUNTERS and lineage that does not tile", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  MakeStream(dir.path());
  // COUNTERS: flip a ceiling byte (the checksum no longer matches).
  FlipByte(dir.File("COUNTERS"), 13);
  RunResult r = Rill({"verify", dir.path()});
  CHECK(r.exit_code == 4);
  CHECK(absl::StrContains(r.out, "damage: " + dir.File("COUNTERS") + ": checksum mismatch"));

  // METADATA whose checksums are right but whose lineage is not: shard 2 (the upper child of
  // shard 0's split) made to start one key later, so that neither the children nor the open
  // shards cover the key 2^127.
  absl::StatusOr<std::string> bytes = internal::ReadFile(dir.File("METADATA"));
  REQUIRE(bytes.ok());
  absl::StatusOr<internal::StreamMeta> meta = internal::DecodeStreamMeta(*bytes);
  REQUIRE(meta.ok());
  const absl::uint128 half = absl::uint128(1) << 127;
  REQUIRE(meta->shards[2].range.starting_hash_key == HashKey(half));
  meta->shards[2].range.starting_hash_key = HashKey(half + 1);
  cli_testing::WriteFileAtomically(dir.File("METADATA"), internal::EncodeStreamMeta(*meta));
  r = Rill({"verify", dir.path()});
  CHECK(r.exit_code == 4);
  const std::string where = "damage: shard shardId-000000000000, " + dir.File("METADATA") + ": ";
  CHECK(absl::StrContains(
      r.out, where + "the children of shardId-000000000000 [0, " + HashKey::Max().ToString() +
                 "] do not cover exactly its "
                 "range: shardId-000000000001 [0, " +
                 HashKey(half - 1).ToString() + "] shardId-000000000002 [" +
                 HashKey(half + 1).ToString() + ", " + HashKey::Max().ToString() + "]"));
  CHECK(absl::StrContains(r.out,
                          "the open shards do not tile the hash key space: "
                          "shardId-000000000002 starts at " +
                              HashKey(half + 1).ToString() + ", expected " +
                              HashKey(half).ToString()));
}

}  // namespace
}  // namespace rill
