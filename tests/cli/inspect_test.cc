// rill describe, shards, get, split, merge and scale on durable streams made by the library with
// known records, sequence numbers and arrival times.
#include <simdjson.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli_testing.h"
#include "rill/base/hash_key.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

using cli_testing::Rill;
using cli_testing::RunResult;

struct Put {
  ShardId shard;
  SequenceNumber sequence_number;
  std::string key;
  std::string data;
  absl::Time arrival;
};

// A closed durable stream "clicks" of two shards: two text records in shard 0, one text and one
// binary record in shard 1, one second apart.
struct KnownStream {
  testing::TempDir dir{"cli", testing::TempDir::kAbsent};
  std::vector<Put> puts;
  absl::Time created;

  KnownStream() {
    auto clock = cli_testing::RecentClock();
    auto stream = testing::MustCreate(cli_testing::DurableOptions(dir.path(), clock, 2));
    created = stream->creation_time();
    const std::vector<std::pair<std::string, std::string>> records = {
        {cli_testing::KeyForShard(0, 2, 0), "alpha"},
        {cli_testing::KeyForShard(1, 2, 0), "charlie"},
        {cli_testing::KeyForShard(0, 2, 1), "bravo"},
        {cli_testing::KeyForShard(1, 2, 1), std::string("\x00\x01\xff\n", 4)},
    };
    for (const auto& [key, data] : records) {
      clock->Advance(absl::Seconds(1));
      const PutRecordResult r = testing::MustPut(*stream, key, data);
      puts.push_back(Put{r.shard_id, r.sequence_number, key, data, clock->Now()});
    }
    REQUIRE(stream->Flush().ok());
  }
  const std::string& path() const { return dir.path(); }
};

std::string GetRow(const Put& p, size_t key_width) {
  const bool text = p.data.find_first_of(std::string("\x00\x01\xff\n", 4)) == std::string::npos;
  return absl::StrFormat("%-38s  %-27s  %-*s  %-8s  %s", p.sequence_number.ToString(),
                         cli_testing::Rfc3339(p.arrival), key_width, p.key,
                         text ? "text" : "base64", text ? p.data : "AAH/Cg==");
}

std::string GetHeader(size_t key_width) {
  return absl::StrFormat("%-38s  %-27s  %-*s  %-8s  %s", "SEQUENCE", "ARRIVAL", key_width, "KEY",
                         "ENCODING", "DATA");
}

TEST_CASE("describe prints the stream's summary, as a table and as JSON", "[cli]") {
  KnownStream s;
  uint64_t record_bytes = 0;
  for (const Put& p : s.puts) record_bytes += p.key.size() + p.data.size();
  const uint64_t segment_bytes =
      cli_testing::SegmentBytes(s.path(), 0) + cli_testing::SegmentBytes(s.path(), 1);

  RunResult r = Rill({"describe", s.path()});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(r.lines() == std::vector<std::string>{
                         "stream:        clicks",
                         "status:        ACTIVE",
                         "mode:          PROVISIONED",
                         "open shards:   2",
                         "closed shards: 0",
                         "retention:     24h",
                         "created:       " + cli_testing::Rfc3339(s.created),
                         "encryption:    NONE",
                         "consumers:     0",
                         "records:       4",
                         absl::StrFormat("record bytes:  %d", record_bytes),
                         absl::StrFormat("segment bytes: %d", segment_bytes),
                         absl::StrFormat("bytes on disk: %d", cli_testing::TreeBytes(s.path())),
                     });

  r = Rill({"describe", s.path(), "--json"});
  CHECK(r.exit_code == 0);
  REQUIRE(r.lines().size() == 1);
  simdjson::dom::parser parser;
  simdjson::dom::element o = parser.parse(r.out);
  CHECK(std::string_view(o["stream"]) == "clicks");
  CHECK(std::string_view(o["status"]) == "ACTIVE");
  CHECK(std::string_view(o["mode"]) == "PROVISIONED");
  CHECK(int64_t(o["open_shards"]) == 2);
  CHECK(int64_t(o["retention_hours"]) == 24);
  CHECK(std::string_view(o["creation_time"]) == cli_testing::Rfc3339(s.created));
  CHECK(std::string_view(o["encryption_type"]) == "NONE");
  CHECK(std::string_view(o["key_id"]) == "");
  CHECK(int64_t(o["consumer_count"]) == 0);
  CHECK(int64_t(o["records"]) == 4);
  CHECK(uint64_t(o["record_bytes"]) == record_bytes);
  CHECK(uint64_t(o["segment_bytes"]) == segment_bytes);
  CHECK(uint64_t(o["bytes_on_disk"]) == cli_testing::TreeBytes(s.path()));
}

TEST_CASE("get reads a shard from each kind of --from position", "[cli]") {
  KnownStream s;
  const Put& first = s.puts[0];   // shard 0
  const Put& second = s.puts[2];  // shard 0
  REQUIRE(first.shard == ShardId(0));
  REQUIRE(second.shard == ShardId(0));
  const size_t w = std::max(first.key.size(), second.key.size());
  const std::vector<std::string> both = {GetHeader(w), GetRow(first, w), GetRow(second, w)};
  const std::vector<std::string> only_second = {GetHeader(second.key.size()),
                                                GetRow(second, second.key.size())};

  RunResult r = Rill({"get", s.path(), "--shard", "shardId-000000000000"});
  CHECK(r.exit_code == 0);
  CHECK(r.lines() == both);
  CHECK(Rill({"get", s.path(), "--shard", "0", "--from", "trim-horizon"}).lines() == both);
  CHECK(Rill({"get", s.path(), "-s", "0", "-n", "1"}).lines() ==
        std::vector<std::string>{GetHeader(first.key.size()), GetRow(first, first.key.size())});
  CHECK(Rill({"get", s.path(), "-s", "0", "--from", "at:" + second.sequence_number.ToString()})
            .lines() == only_second);
  CHECK(Rill({"get", s.path(), "-s", "0", "--from", "after:" + first.sequence_number.ToString()})
            .lines() == only_second);
  CHECK(Rill({"get", s.path(), "-s", "0", "--from", "time:" + cli_testing::Rfc3339(second.arrival)})
            .lines() == only_second);
  CHECK(Rill({"get", s.path(), "-s", "0", "--from",
              absl::StrFormat("time:%d", absl::ToUnixSeconds(second.arrival))})
            .lines() == only_second);
  r = Rill({"get", s.path(), "-s", "0", "--from", "latest"});
  CHECK(r.exit_code == 0);
  CHECK(r.lines() == std::vector<std::string>{"SEQUENCE  ARRIVAL  KEY  ENCODING  DATA"});

  // Shard 1 holds a binary record: base64, said in the ENCODING column and the JSON key.
  r = Rill({"get", s.path(), "-s", "1", "--json"});
  CHECK(r.exit_code == 0);
  const std::vector<std::string> lines = r.lines();
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == absl::StrFormat("{\"shard_id\":\"shardId-000000000001\",\"sequence_number\":"
                                    "\"%s\",\"arrival\":\"%s\",\"partition_key\":\"%s\","
                                    "\"data\":\"charlie\"}",
                                    s.puts[1].sequence_number.ToString(),
                                    cli_testing::Rfc3339(s.puts[1].arrival), s.puts[1].key));
  CHECK(lines[1] == absl::StrFormat("{\"shard_id\":\"shardId-000000000001\",\"sequence_number\":"
                                    "\"%s\",\"arrival\":\"%s\",\"partition_key\":\"%s\","
                                    "\"data_base64\":\"AAH/Cg==\"}",
                                    s.puts[3].sequence_number.ToString(),
                                    cli_testing::Rfc3339(s.puts[3].arrival), s.puts[3].key));
  const size_t w1 = std::max(s.puts[1].key.size(), s.puts[3].key.size());
  CHECK(Rill({"get", s.path(), "-s", "1"}).lines() ==
        std::vector<std::string>{GetHeader(w1), GetRow(s.puts[1], w1), GetRow(s.puts[3], w1)});
  // --raw writes the bytes.
  r = Rill({"get", s.path(), "-s", "1", "--raw"});
  CHECK(r.out == std::string("charlie\n\x00\x01\xff\n\n", 13));
}

TEST_CASE("get refuses bad positions and unknown shards with their exit codes", "[cli]") {
  KnownStream s;
  RunResult r = Rill({"get", s.path(), "-s", "0", "--from", "sideways"});
  CHECK(r.exit_code == 1);
  CHECK(r.err ==
        "rill: error: bad --from 'sideways': give trim-horizon, latest, at:SEQUENCE, "
        "after:SEQUENCE or time:TIME\n");
  r = Rill({"get", s.path(), "-s", "0", "--from", "time:yesterday"});
  CHECK(r.exit_code == 1);
  r = Rill({"get", s.path(), "-s", "0", "--from", "at:12"});
  CHECK(r.exit_code == 1);  // not a sequence number of this shard
  r = Rill({"get", s.path(), "-s", "7"});
  CHECK(r.exit_code == 2);
  CHECK(r.err == absl::StrFormat("rill: error: shard shardId-000000000007 does not exist in the "
                                 "stream in %s (or has expired); `rill shards %s` lists them\n",
                                 s.path(), s.path()));
  r = Rill({"get", s.path(), "-s", "shard-seven"});
  CHECK(r.exit_code == 1);
}

TEST_CASE("split, merge and scale reshard, and shards shows the lineage", "[cli]") {
  KnownStream s;
  const std::string half = HashKey(absl::uint128(1) << 127).ToString();     // shard 1 starts
  const std::string quarter = HashKey(absl::uint128(1) << 126).ToString();  // the midpoint
  const std::string half_minus_1 = HashKey((absl::uint128(1) << 127) - 1).ToString();
  const std::string quarter_minus_1 = HashKey((absl::uint128(1) << 126) - 1).ToString();
  const std::string max = HashKey::Max().ToString();

  RunResult r = Rill({"split", s.path(), "--shard", "0"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(r.lines() ==
        std::vector<std::string>{
            "split shardId-000000000000 of stream clicks at hash key " + quarter + " into:",
            absl::StrFormat("%-20s  %38s  %39s", "SHARD", "STARTING HASH KEY", "ENDING HASH KEY"),
            absl::StrFormat("shardId-000000000002  %38s  %39s", "0", quarter_minus_1),
            absl::StrFormat("shardId-000000000003  %38s  %39s", quarter, half_minus_1),
        });

  r = Rill({"merge", s.path(), "--shard", "2", "--adjacent", "shardId-000000000003", "--json"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == absl::StrFormat("{\"stream\":\"clicks\",\"merged\":\"shardId-000000000002\","
                                 "\"adjacent\":\"shardId-000000000003\",\"child\":{\"shard_id\":"
                                 "\"shardId-000000000004\",\"starting_hash_key\":\"0\","
                                 "\"ending_hash_key\":\"%s\"}}\n",
                                 half_minus_1));

  // Closed shards keep their records (shard 0: 2, shard 1 stays open with 2).
  r = Rill({"shards", s.path()});
  CHECK(r.exit_code == 0);
  const std::vector<std::string> lines = r.lines();
  REQUIRE(lines.size() == 6);
  CHECK(lines[0] == absl::StrFormat("%-20s  %-6s  %-20s  %-20s  %39s  %39s  %7s  %5s", "SHARD",
                                    "STATE", "PARENT", "ADJACENT PARENT", "STARTING HASH KEY",
                                    "ENDING HASH KEY", "RECORDS", "BYTES"));
  const uint64_t bytes0 = cli_testing::SegmentBytes(s.path(), 0);
  const uint64_t bytes1 = cli_testing::SegmentBytes(s.path(), 1);
  auto row = [&](int shard, const char* state, const std::string& parent,
                 const std::string& adjacent, const std::string& start, const std::string& end,
                 int records, uint64_t bytes) {
    return absl::StrFormat("shardId-%012d  %-6s  %-20s  %-20s  %39s  %39s  %7d  %5d", shard, state,
                           parent, adjacent, start, end, records, bytes);
  };
  CHECK(lines[1] == row(0, "closed", "-", "-", "0", half_minus_1, 2, bytes0));
  CHECK(lines[2] == row(1, "open", "-", "-", half, max, 2, bytes1));
  CHECK(lines[3] == row(2, "closed", "shardId-000000000000", "-", "0", quarter_minus_1, 0, 0));
  CHECK(lines[4] == row(3, "closed", "shardId-000000000000", "-", quarter, half_minus_1, 0, 0));
  CHECK(lines[5] ==
        row(4, "open", "shardId-000000000002", "shardId-000000000003", "0", half_minus_1, 0, 0));

  r = Rill({"shards", s.path(), "--json"});
  CHECK(r.exit_code == 0);
  REQUIRE(r.lines().size() == 5);
  simdjson::dom::parser parser;
  simdjson::dom::element child = parser.parse(r.lines()[4]);
  CHECK(std::string_view(child["shard_id"]) == "shardId-000000000004");
  CHECK(std::string_view(child["state"]) == "open");
  CHECK(std::string_view(child["parent_shard_id"]) == "shardId-000000000002");
  CHECK(std::string_view(child["adjacent_parent_shard_id"]) == "shardId-000000000003");
  CHECK(child["ending_sequence_number"].is_null());
  CHECK(uint64_t(child["records"]) == 0);

  r = Rill({"scale", s.path(), "--count", "4"});
  CHECK(r.exit_code == 0);
  REQUIRE(!r.lines().empty());
  CHECK(r.lines()[0] == "scaled stream clicks from 2 to 4 open shards:");
  CHECK(r.lines().size() == 6);  // the line, the header, four shards
  r = Rill({"describe", s.path(), "--json"});
  simdjson::dom::element summary = parser.parse(r.out);
  CHECK(int64_t(summary["open_shards"]) == 4);

  // Refusals: a closed shard, an unknown one, a key outside the shard.
  r = Rill({"split", s.path(), "--shard", "0"});
  CHECK(r.exit_code == 1);
  CHECK(r.err ==
        "rill: error: shard shardId-000000000000 of stream clicks is closed (resharded already); "
        "only open shards can be split or merged\n");
  CHECK(Rill({"split", s.path(), "--shard", "99"}).exit_code == 2);
  CHECK(Rill({"split", s.path(), "--shard", "1", "--at", "12"}).exit_code == 1);
  CHECK(Rill({"split", s.path(), "--shard", "1", "--at", "-3"}).exit_code == 1);
}

}  // namespace
}  // namespace rill
