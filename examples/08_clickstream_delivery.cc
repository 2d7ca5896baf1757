// Tutorial 8: clickstream delivery — what Firehose does for a game, in simulated time.
//
// 200 players on 5 levels click and buy for 30 simulated minutes. Their events go into a rill
// stream ("clickstream", 4 shards, the player as partition key) and from there two ways:
//
//   1. a delivery stream "clicks-to-files" reads the stream through a consumer group and writes
//      every event to date-partitioned, zstd-compressed objects in a directory (S3's role):
//        <bucket>/events/level=<level>/2024/01/01/00/clicks-to-files-1-2024-01-01-00-05-00-<uuid>.zst
//      The level comes from each event's JSON (MetadataExtraction: dynamic partitioning), the
//      date from the oldest event's arrival time, and each event gets a newline.
//   2. a windowed pipeline counts purchases per level per 5-minute tumbling window, writes each
//      result as JSON to a second stream ("purchase-counts"), and a delivery stream
//      "counts-to-postgres" COPYs them into the PostgreSQL table purchase_counts, exactly once.
//
// Ten minutes in, the database is stopped for eight minutes. The delivery to PostgreSQL fails,
// retries with backoff, and after its retry duration (2 minutes) sends the results to its error
// output: failed-record documents under <errors>/postgresql-failed/... When the database is back,
// later results are delivered. At the end the example checks that every purchase count is either
// in the table or in the error output, never both and never twice, and that the objects hold
// every event; it exits 1 if not.
//
// PostgreSQL: the example starts its own throwaway server (initdb + pg_ctl on a free 127.0.0.1
// port, as rill's tests do; Debian's `postgresql` package, which scripts/install-deps.sh
// installs). To use a server of yours instead, set RILL_TEST_POSTGRES to a libpq connection
// string whose user may create databases, e.g.
//   RILL_TEST_POSTGRES="host=127.0.0.1 port=5432 user=me dbname=postgres"
//   example_08_clickstream_delivery
// (the part that stops the database is then skipped: the example does not stop your server).
#include <libpq-fe.h>

#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "deliver/postgres_fixture.h"
#include "rill/deliver/delivery_stream.h"
#include "rill/process/aggregators.h"
#include "rill/process/pipeline.h"
#include "rill/process/source.h"
#include "rill/rill.h"

namespace {

constexpr int kPlayers = 200;
constexpr int kLevels = 5;
const absl::Duration kPlayTime = absl::Minutes(30);
const absl::Duration kTick = absl::Seconds(1);
const absl::Duration kWindow = absl::Minutes(5);
const absl::Duration kDatabaseDownAt = absl::Minutes(10);
const absl::Duration kDatabaseDownFor = absl::Minutes(8);

int Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
  return 1;
}

struct Event {
  std::string player;
  int level = 0;
  bool purchase = false;
  absl::Time time;
};

// The events' JSON, as a game client would send it.
std::string ToJson(const Event& e) {
  return absl::StrFormat(R"({"player":"%s","level":%d,"kind":"%s","time":%d})", e.player, e.level,
                         e.purchase ? "purchase" : "click", absl::ToUnixMillis(e.time));
}

// The pipeline's decoder: the fields it needs, from the JSON above.
std::optional<Event> Decode(const rill::Record& r) {
  const std::string data(r.data);
  Event e;
  const size_t level = data.find("\"level\":");
  const size_t time = data.find("\"time\":");
  if (level == std::string::npos || time == std::string::npos) return std::nullopt;
  e.level = std::atoi(data.c_str() + level + 8);
  e.purchase = data.find("\"kind\":\"purchase\"") != std::string::npos;
  e.time = absl::FromUnixMillis(std::atoll(data.c_str() + time + 7));
  return e;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main() {
  auto clock = std::make_shared<rill::SimulatedClock>();
  const std::filesystem::path work =
      std::filesystem::temp_directory_path() / absl::StrCat("rill-example-08-", getpid());
  std::filesystem::create_directories(work);
  std::printf("objects and error output under %s\n", work.c_str());

  // PostgreSQL: a throwaway server, or RILL_TEST_POSTGRES's.
  auto pg = rill::testing::TemporaryPostgres::Start();
  if (!pg.ok()) {
    std::fprintf(stderr,
                 "no PostgreSQL: %s\nInstall it (scripts/install-deps.sh) or point the example at "
                 "a server: RILL_TEST_POSTGRES=\"host=... port=... user=... dbname=postgres\"\n",
                 pg.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::string> db = (*pg)->CreateDatabase("clickstream_example");
  if (!db.ok()) return Fail("create database", db.status());
  {
    PGconn* conn = PQconnectdb(db->c_str());
    PGresult* r = PQexec(conn,
                         "CREATE TABLE purchase_counts (level int NOT NULL, window_start "
                         "timestamptz NOT NULL, purchases bigint NOT NULL)");
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    PQfinish(conn);
    if (!ok)
      return Fail("create table", rill::MakeError(rill::ErrorCode::kInternalFailure, "failed"));
  }

  // The streams.
  rill::StreamOptions clicks_options;
  clicks_options.name = "clickstream";
  clicks_options.shard_count = 4;
  clicks_options.clock = clock;
  auto clicks = rill::Stream::Create(clicks_options);
  if (!clicks.ok()) return Fail("clickstream", clicks.status());
  rill::StreamOptions counts_options;
  counts_options.name = "purchase-counts";
  counts_options.clock = clock;
  auto counts = rill::Stream::Create(counts_options);
  if (!counts.ok()) return Fail("purchase-counts", counts.status());

  // 1. Every event to date-partitioned zstd objects, partitioned by level.
  rill::InMemoryCheckpointStore leases;
  rill::DeliveryStreamOptions files;
  files.name = "clicks-to-files";
  files.clock = clock;
  files.source_stream = clicks->get();
  files.checkpoint_store = &leases;
  files.starting_position = rill::StartingPosition::TrimHorizon();
  files.processing.metadata_extraction = {{"level", ".level"}};
  files.processing.append_delimiter = true;
  rill::ObjectStoreDestination bucket;
  bucket.directory = (work / "bucket").string();
  bucket.prefix = "events/level=!{partitionKeyFromQuery:level}/!{timestamp:yyyy/MM/dd/HH}/";
  bucket.error_output_prefix = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/";
  bucket.compression = rill::CompressionFormat::kZstd;
  bucket.buffering = {.size_bytes = 5 << 20, .interval = absl::Seconds(300)};
  files.destination = bucket;
  auto to_files = rill::DeliveryStream::Create(files);
  if (!to_files.ok()) return Fail("clicks-to-files", to_files.status());

  // 2. Purchases per level per 5 minutes, as JSON into the purchase-counts stream...
  std::set<std::string> results;  // every result's JSON, to check the table against
  rill::InMemoryCheckpointStore analytics_leases;
  rill::ConsumerGroupOptions analytics_options;
  analytics_options.application_name = "purchase-analytics";
  analytics_options.initial_position = rill::StartingPosition::TrimHorizon();
  auto analytics = rill::ConsumerGroup::Create(**clicks, analytics_leases, analytics_options);
  if (!analytics.ok()) return Fail("consumer group", analytics.status());
  auto built =
      rill::Pipeline<Event>::From(rill::FromConsumerGroup<Event>(**analytics, "worker-1", Decode),
                                  clock)
          .Filter([](const Event& e) { return e.purchase; })
          .KeyBy([](const Event& e) { return int64_t{e.level}; })
          .Window(rill::TumblingWindow(kWindow))
          .EventTime([](const Event& e) { return e.time; })
          .Aggregate(rill::Count())
          .To([&](const rill::WindowResult<int64_t, uint64_t>& r) {
            const std::string json = absl::StrFormat(
                R"({"level":%d,"window_start":"%s","purchases":%d})", r.key,
                absl::FormatTime("%Y-%m-%d %H:%M:%S+00", r.start, absl::UTCTimeZone()), r.value);
            results.insert(json);
            (*counts)->PutRecord(absl::StrCat(r.key), json).IgnoreError();
          });
  if (!built.ok()) return Fail("pipeline", built.status());
  auto& pipeline = *built;

  // ...and from there into PostgreSQL, exactly once; what cannot be delivered goes to the error
  // output.
  rill::InMemoryCheckpointStore count_leases;
  rill::DeliveryStreamOptions to_db;
  to_db.name = "counts-to-postgres";
  to_db.clock = clock;
  to_db.source_stream = counts->get();
  to_db.checkpoint_store = &count_leases;
  to_db.starting_position = rill::StartingPosition::TrimHorizon();
  rill::PostgresDestination table;
  table.conninfo = *db;
  table.table = "purchase_counts";
  table.columns = {"level", "window_start", "purchases"};
  table.json_paths = {".level", ".window_start", ".purchases"};
  table.retry_duration = absl::Minutes(2);
  table.buffering = {.size_bytes = 1 << 20, .interval = absl::Seconds(60)};
  to_db.destination = table;
  to_db.error_output = rill::ErrorOutput{.directory = (work / "db-errors").string(),
                                         .prefix = "!{firehose:error-output-type}/",
                                         .custom_time_zone = "UTC"};
  auto to_postgres = rill::DeliveryStream::Create(to_db);
  if (!to_postgres.ok()) return Fail("counts-to-postgres", to_postgres.status());

  // Play.
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> player(0, kPlayers - 1);
  std::uniform_int_distribution<int> percent(0, 99);
  int64_t events = 0;
  const bool can_stop = !(*pg)->external();
  bool down = false;
  bool finished = false;
  for (absl::Duration t; t < kPlayTime + absl::Minutes(6); t += kTick) {
    if (t < kPlayTime) {
      for (int i = 0; i < 40; ++i) {  // 40 events per simulated second
        const int p = player(rng);
        Event e{absl::StrCat("p", p), p % kLevels + 1, percent(rng) < 5, clock->Now()};
        auto put = (*clicks)->PutRecord(e.player, ToJson(e));
        if (!put.ok()) return Fail("put", put.status());
        ++events;
      }
    }
    if (can_stop && !down && t >= kDatabaseDownAt && t < kDatabaseDownAt + kDatabaseDownFor) {
      std::printf("[%s] database stopped\n", absl::FormatDuration(t).c_str());
      if (absl::Status s = (*pg)->Stop(); !s.ok()) return Fail("stop", s);
      down = true;
    }
    if (down && t >= kDatabaseDownAt + kDatabaseDownFor) {
      std::printf("[%s] database started again\n", absl::FormatDuration(t).c_str());
      if (absl::Status s = (*pg)->Restart(); !s.ok()) return Fail("restart", s);
      down = false;
    }
    if (!finished) {
      if (absl::StatusOr<size_t> n = pipeline.Poll(); !n.ok()) return Fail("pipeline", n.status());
      // A little after the end of play, the last windows are closed.
      if (t >= kPlayTime + absl::Seconds(10)) {
        if (absl::Status s = pipeline.Finish(); !s.ok()) return Fail("finish", s);
        finished = true;
      }
    }
    (*to_files)->Poll().IgnoreError();
    (*to_postgres)->Poll().IgnoreError();  // fails while the database is down; it retries
    clock->Advance(kTick);
  }
  if (absl::Status s = (*to_files)->Close(); !s.ok()) return Fail("close files", s);
  if (absl::Status s = (*to_postgres)->Close(); !s.ok()) return Fail("close postgres", s);

  // What arrived where.
  int64_t in_objects = 0;
  std::map<std::string, int> objects_per_level;
  for (const auto& e : std::filesystem::recursive_directory_iterator(work / "bucket" / "events")) {
    if (!e.is_regular_file()) continue;
    const std::string level =
        e.path().lexically_relative(work / "bucket" / "events").begin()->string();
    ++objects_per_level[level];
    // zstd -dc would print the events; here they are counted from the decompressed size's lines.
    const std::string z = ReadFile(e.path());
    std::string raw(ZSTD_getFrameContentSize(z.data(), z.size()), '\0');
    ZSTD_decompress(raw.data(), raw.size(), z.data(), z.size());
    in_objects += std::count(raw.begin(), raw.end(), '\n');
  }
  std::printf("\n%lld events put, %lld in objects:\n", static_cast<long long>(events),
              static_cast<long long>(in_objects));
  for (const auto& [level, n] : objects_per_level)
    std::printf("  events/%s/...  %d objects\n", level.c_str(), n);

  std::set<std::string> in_errors;
  if (std::filesystem::exists(work / "db-errors")) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(work / "db-errors")) {
      if (!e.is_regular_file()) continue;
      std::istringstream lines(ReadFile(e.path()));
      std::string line;
      while (std::getline(lines, line)) {
        if (in_errors.empty()) std::printf("\nan error output document:\n  %s\n", line.c_str());
        const size_t at = line.find("\"rawData\":\"");
        std::string raw;
        absl::Base64Unescape(line.substr(at + 11, line.find('"', at + 11) - at - 11), &raw);
        in_errors.insert(raw);
      }
    }
  }
  std::set<std::string> in_table;
  int duplicates = 0;
  {
    PGconn* conn = PQconnectdb(db->c_str());
    PGresult* r = PQexec(conn,
                         "SELECT level, to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD "
                         "HH24:MI:SS'), purchases FROM purchase_counts ORDER BY 2, 1");
    std::printf("\npurchase_counts (level, window, purchases):\n");
    for (int i = 0; i < PQntuples(r); ++i) {
      const std::string json =
          absl::StrFormat(R"({"level":%s,"window_start":"%s+00","purchases":%s})",
                          PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
      if (!in_table.insert(json).second) ++duplicates;
      if (i < 10)
        std::printf("  %s  %s  %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                    PQgetvalue(r, i, 2));
    }
    PQclear(r);
    PQfinish(conn);
  }
  std::printf("  ... %zu rows; %zu results in the error output\n", in_table.size(),
              in_errors.size());

  bool ok = in_objects == events && duplicates == 0;
  for (const std::string& result : results) {
    const bool t = in_table.count(result) > 0;
    const bool e = in_errors.count(result) > 0;
    if (t == e) {
      std::printf("MISMATCH: %s is %s\n", result.c_str(), t ? "in both" : "in neither");
      ok = false;
    }
  }
  if (can_stop && in_errors.empty()) {
    std::printf(
        "MISMATCH: the database was down for 8 minutes but nothing went to the error output\n");
    ok = false;
  }
  std::filesystem::remove_all(work);
  std::printf("\n%s\n", ok ? "every event and every purchase count is accounted for" : "FAILED");
  return ok ? 0 : 1;
}
