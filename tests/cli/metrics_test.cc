// rill metrics: <dir>/METRICS as Prometheus text or JSON, exactly as rill::ToPrometheusText and
// rill::ToJson write the snapshot; and what it says when no process has written one.
#include <simdjson.h>

#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "cli_testing.h"
#include "rill/metrics/metrics.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

using cli_testing::Rill;
using cli_testing::RunResult;

MetricsSnapshot KnownSnapshot() {
  MetricsSnapshot s;
  s.stream_name = "clicks";
  s.taken_at = absl::FromUnixMicros(1714564800250000);
  s.incoming_bytes = 1234;
  s.incoming_records = 56;
  s.outgoing_bytes = 789;
  s.outgoing_records = 12;
  s.put_record_success = 50;
  s.put_record_failure = 1;
  s.put_records_success = 2;
  s.put_records_total_records = 7;
  s.put_records_successful_records = 6;
  s.put_records_failed_records = 1;
  s.put_records_throttled_records = 3;
  s.get_records_success = 4;
  s.get_records_records = 12;
  s.get_records_bytes = 789;
  s.write_provisioned_throughput_exceeded = 3;
  s.read_provisioned_throughput_exceeded = 2;
  s.iterator_age_milliseconds = 1500;
  s.memory_bytes = 65536;
  s.memory_budget_exceeded = 8;
  s.retired_records = 9;
  s.retired_bytes = 10;
  s.put_record_latency = LatencySummary{.count = 3, .sum_micros = 30, .max_micros = 20};
  s.put_records_latency = LatencySummary{.count = 2, .sum_micros = 500, .max_micros = 400};
  s.get_records_latency = LatencySummary{.count = 4, .sum_micros = 44, .max_micros = 21};
  s.shards.push_back(ShardMetrics{.shard_id = ShardId(0),
                                  .incoming_bytes = 1000,
                                  .incoming_records = 50,
                                  .outgoing_bytes = 700,
                                  .outgoing_records = 10,
                                  .write_provisioned_throughput_exceeded = 3,
                                  .read_provisioned_throughput_exceeded = 2,
                                  .iterator_age_milliseconds = 1500});
  s.shards.push_back(ShardMetrics{.shard_id = ShardId(1),
                                  .incoming_bytes = 234,
                                  .incoming_records = 6,
                                  .outgoing_bytes = 89,
                                  .outgoing_records = 2,
                                  .write_provisioned_throughput_exceeded = 0,
                                  .read_provisioned_throughput_exceeded = 0,
                                  .iterator_age_milliseconds = 0});
  return s;
}

TEST_CASE("metrics prints METRICS as Prometheus text and as JSON", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  testing::MustCreate(cli_testing::DurableOptions(dir.path(), cli_testing::RecentClock(), 2));
  // The owner wrote METRICS when it closed; replace it with a snapshot whose every field is known.
  const MetricsSnapshot snapshot = KnownSnapshot();
  cli_testing::WriteFileAtomically(dir.File("METRICS"), ToJson(snapshot));

  RunResult r = Rill({"metrics", dir.path()});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(r.out == ToPrometheusText(snapshot));
  r = Rill({"metrics", dir.path(), "--format", "prometheus"});
  CHECK(r.out == ToPrometheusText(snapshot));
  r = Rill({"metrics", dir.path(), "--format", "json"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == ToJson(snapshot) + "\n");
}

TEST_CASE("metrics shows what the owning process wrote, and says when nothing was", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  {
    auto stream =
        testing::MustCreate(cli_testing::DurableOptions(dir.path(), cli_testing::RecentClock(), 1));
    testing::MustPut(*stream, "k", "abc");
    testing::MustPut(*stream, "k", "defg");
  }  // closing writes METRICS
  RunResult r = Rill({"metrics", dir.path(), "--format", "json"});
  CHECK(r.exit_code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element o = parser.parse(r.out);
  CHECK(std::string_view(o["stream"]) == "clicks");
  CHECK(int64_t(o["metrics"]["IncomingRecords"]) == 2);
  CHECK(int64_t(o["metrics"]["IncomingBytes"]) == 9);
  CHECK(int64_t(o["shards"].at(0)["IncomingRecords"]) == 2);
  r = Rill({"metrics", dir.path()});
  CHECK(absl::StrContains(r.out, "\nrill_incoming_records_total{stream=\"clicks\"} 2\n"));
  CHECK(absl::StrContains(r.out,
                          "\nrill_shard_incoming_bytes_total{stream=\"clicks\",shard_id=\"shardId-"
                          "000000000000\"} 9\n"));

  std::filesystem::remove(dir.File("METRICS"));
  r = Rill({"metrics", dir.path()});
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK(r.err == absl::StrFormat("rill: error: no metrics for the stream in %s: no process has "
                                 "written %s/METRICS yet (the process that holds the stream writes "
                                 "it about once a second while it runs, and when it closes the "
                                 "stream)\n",
                                 dir.path(), dir.path()));
  cli_testing::WriteFileAtomically(dir.File("METRICS"), "{\"stream\":");
  r = Rill({"metrics", dir.path()});
  CHECK(r.exit_code == 5);
  CHECK(absl::StrContains(r.err, "not a rill metrics snapshot"));
}

}  // namespace
}  // namespace rill
