// rill tail (across resharding) and rill put (lines, JSON keys, length-prefixed), read back.
#include <simdjson.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/str_format.h"
#include "cli_testing.h"
#include "rill/base/hash_key.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

using cli_testing::Rill;
using cli_testing::RunResult;

struct Seen {
  std::string shard;
  std::string sequence_number;
  std::string key;
  std::string data;
  friend bool operator==(const Seen&, const Seen&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Seen& s) {
    return os << s.shard << " " << s.sequence_number << " " << s.key << " " << s.data;
  }
};

std::vector<Seen> ParseRecords(const RunResult& r) {
  std::vector<Seen> seen;
  simdjson::dom::parser parser;
  for (const std::string& line : r.lines()) {
    simdjson::dom::element o = parser.parse(line);
    seen.push_back(Seen{std::string(std::string_view(o["shard_id"])),
                        std::string(std::string_view(o["sequence_number"])),
                        std::string(std::string_view(o["partition_key"])),
                        std::string(std::string_view(o["data"]))});
  }
  return seen;
}

Seen Expect(const PutRecordResult& put, std::string key, std::string data) {
  return Seen{put.shard_id.ToString(), put.sequence_number.ToString(), std::move(key),
              std::move(data)};
}

TEST_CASE("tail reads every shard in order, parents before children, across a split and a merge",
          "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  std::vector<Seen> expected;
  {
    auto clock = cli_testing::RecentClock();
    auto stream = testing::MustCreate(cli_testing::DurableOptions(dir.path(), clock, 1));
    auto put = [&](const std::string& key, const std::string& data) {
      clock->Advance(absl::Seconds(1));
      return Expect(testing::MustPut(*stream, key, data), key, data);
    };
    // Shard 0, then its split children 1 (lower half) and 2, then their merge child 3. Each
    // shard's records are put interleaved with the others' where the lineage allows.
    expected.push_back(put("k0", "zero-a"));
    expected.push_back(put("k1", "zero-b"));
    REQUIRE(stream->SplitShard(ShardId(0), HashKey(absl::uint128(1) << 127)).ok());
    const std::string low1 = cli_testing::KeyForShard(0, 2, 0);
    const std::string high1 = cli_testing::KeyForShard(1, 2, 0);
    const std::string low2 = cli_testing::KeyForShard(0, 2, 1);
    const Seen c = put(high1, "two-a");
    const Seen a = put(low1, "one-a");
    const Seen b = put(low2, "one-b");
    REQUIRE(stream->MergeShards(ShardId(1), ShardId(2)).ok());
    const Seen d = put(low1, "three-a");
    const Seen e = put(high1, "three-b");
    expected.insert(expected.end(), {a, b, c, d, e});
    REQUIRE(expected[2].shard == "shardId-000000000001");
    REQUIRE(expected[4].shard == "shardId-000000000002");
    REQUIRE(expected[5].shard == "shardId-000000000003");
  }
  RunResult r = Rill({"tail", dir.path(), "--json"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(ParseRecords(r) == expected);

  r = Rill({"tail", dir.path(), "--json", "--max", "3"});
  CHECK(r.exit_code == 0);
  CHECK(ParseRecords(r) == std::vector<Seen>(expected.begin(), expected.begin() + 3));

  r = Rill({"tail", dir.path()});
  CHECK(r.exit_code == 0);
  const std::vector<std::string> lines = r.lines();
  REQUIRE(lines.size() == expected.size() + 1);
  CHECK(lines[0].rfind("SHARD                 SEQUENCE", 0) == 0);
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(lines[i + 1].rfind(expected[i].shard + "  " + expected[i].sequence_number, 0) == 0);
    CHECK(lines[i + 1].size() >= expected[i].data.size());
    CHECK(lines[i + 1].substr(lines[i + 1].size() - expected[i].data.size()) == expected[i].data);
  }
  r = Rill({"tail", dir.path(), "--raw"});
  CHECK(r.out == "zero-a\nzero-b\none-a\none-b\ntwo-a\nthree-a\nthree-b\n");
}

TEST_CASE("put takes lines from stdin and they read back", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  testing::MustCreate(cli_testing::DurableOptions(dir.path(), cli_testing::RecentClock(), 2));
  const std::string key = cli_testing::KeyForShard(1, 2, 0);

  RunResult r = Rill({"put", dir.path(), "--key", key, "--json"}, "one\ntwo\nthree\n");
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  simdjson::dom::parser parser;
  simdjson::dom::element result = parser.parse(r.out);
  CHECK(std::string_view(result["stream"]) == "clicks");
  CHECK(uint64_t(result["put"]) == 3);
  CHECK(uint64_t(result["failed"]) == 0);
  simdjson::dom::array shards = result["shards"];
  REQUIRE(shards.size() == 1);
  simdjson::dom::element shard = shards.at(0);
  CHECK(std::string_view(shard["shard_id"]) == "shardId-000000000001");
  CHECK(uint64_t(shard["records"]) == 3);
  const std::string first{std::string_view(shard["first_sequence_number"])};
  const std::string last{std::string_view(shard["last_sequence_number"])};

  std::vector<Seen> seen = ParseRecords(Rill({"get", dir.path(), "-s", "1", "--json"}));
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] == Seen{"shardId-000000000001", first, key, "one"});
  CHECK(seen[1].data == "two");
  CHECK(seen[2] == Seen{"shardId-000000000001", last, key, "three"});

  // The human form: a count, then the sequence range per shard; a last line without "\n" counts.
  r = Rill({"put", dir.path(), "--key", key}, "four\nfive");
  CHECK(r.exit_code == 0);
  const std::vector<std::string> lines = r.lines();
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "put 2 records to stream clicks");
  CHECK(lines[1] == absl::StrFormat("%-20s  %7s  %-38s  %s", "SHARD", "RECORDS", "FIRST SEQUENCE",
                                    "LAST SEQUENCE"));
  seen = ParseRecords(Rill({"get", dir.path(), "-s", "1", "--json", "--from", "after:" + last}));
  REQUIRE(seen.size() == 2);
  CHECK(lines[2] == absl::StrFormat("shardId-000000000001  %7d  %s  %s", 2, seen[0].sequence_number,
                                    seen[1].sequence_number));
  CHECK(seen[1].data == "five");
}

TEST_CASE("put takes keys from a JSON field and reports the lines it could not put", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  testing::MustCreate(cli_testing::DurableOptions(dir.path(), cli_testing::RecentClock(), 1));
  const std::string input =
      "{\"user\":\"ann\",\"n\":1}\n"
      "{\"n\":2}\n"
      "{\"user\":42,\"n\":3}\n";
  RunResult r = Rill({"put", dir.path(), "--key-field", "user"}, input);
  CHECK(r.exit_code == 5);
  CHECK(r.err ==
        "rill: error: record 2 was not put: the line has no field \"user\"\n"
        "rill: error: 1 of 3 records were not put (see the errors above)\n");
  REQUIRE(!r.lines().empty());
  CHECK(r.lines()[0] == "put 2 records to stream clicks (1 failed)");
  std::vector<Seen> seen = ParseRecords(Rill({"tail", dir.path(), "--json"}));
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].key == "ann");
  CHECK(seen[0].data == "{\"user\":\"ann\",\"n\":1}");
  CHECK(seen[1].key == "42");

  // With --key as the fallback, every line goes in.
  r = Rill({"put", dir.path(), "--key-field", "user", "--key", "nobody"}, "{\"n\":4}\n");
  CHECK(r.exit_code == 0);
  seen = ParseRecords(Rill({"tail", dir.path(), "--json"}));
  REQUIRE(seen.size() == 3);
  CHECK(seen[2].key == "nobody");

  // Neither: a usage error, and nothing is read.
  r = Rill({"put", dir.path()}, "x\n");
  CHECK(r.exit_code == 1);
}

TEST_CASE("put --length-prefixed and get --raw --length-prefixed carry any bytes", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  testing::MustCreate(cli_testing::DurableOptions(dir.path(), cli_testing::RecentClock(), 1));
  const std::string a("line\nbreak", 10);
  const std::string b("\x00\xff\x01", 3);
  auto frame = [](const std::string& data) {
    const auto n = static_cast<uint32_t>(data.size());
    return std::string{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                       static_cast<char>(n >> 8), static_cast<char>(n)} +
           data;
  };
  const std::string input = frame(a) + frame(b) + frame("");
  RunResult r = Rill({"put", dir.path(), "--key", "bin", "--length-prefixed"}, input);
  CHECK(r.exit_code == 0);
  CHECK(r.lines()[0] == "put 3 records to stream clicks");
  r = Rill({"get", dir.path(), "-s", "0", "--raw", "--length-prefixed"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == input);
  // A record cut short: the ones before it are put, and the exit code says it failed.
  r = Rill({"put", dir.path(), "--key", "bin", "--length-prefixed"},
           frame("ok") + std::string("\x00\x00", 2));
  CHECK(r.exit_code == 5);
  CHECK(r.lines()[0] == "put 1 records to stream clicks (1 failed)");
}

}  // namespace
}  // namespace rill
