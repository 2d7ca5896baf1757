// rill::sql against what it stands for, measured in the same run: the 5-minute count query of the
// issue (purchases per game level per 5-minute tumbling window) over the same 200,000 JSON
// records, as
//
//   BM_PipelineCount    the equivalent hand-written rill::Pipeline: a VectorSource of the JSON
//                       records (string_views of the same bytes), each decoded with simdjson's DOM
//                       parser (one parser, reused: the JSON work the SQL input does), Filter
//                       kind == "purchase", KeyBy level, TumblingWindow(5 min) on arrival time,
//                       Count, a sink counting results. items/s = records/s
//   BM_SqliteBatch      SQLite in memory, the batch form: the records pre-decoded into (kind,
//                       level, ts) and, timed, inserted with one prepared INSERT in one
//                       transaction, then SELECT level, ts / 300000, COUNT(*) ... WHERE kind =
//                       'purchase' GROUP BY 1, 2. items/s = records/s
//   BM_SqliteQueryOnly  the SELECT alone over a table filled once, untimed. items/s = records/s
//   BM_SqlCount         a rill::sql::Application running
//                         SELECT STREAM "level", COUNT(*) FROM "SOURCE_SQL_STREAM_001"
//                         WHERE "kind" = 'purchase'
//                         GROUP BY "level", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL
//                         '5' MINUTE)
//                       over a MemorySource holding the records (filled untimed), Finish(), the
//                       output a callback counting rows. items/s = records/s; vs_pipeline,
//                       vs_sqlite, vs_sqlite_query: its rate over each baseline's in this run.
//
// The input: levels 0..99, about half purchases (the others login, level_up, kill), amounts of
// 0.5 to 50, arriving 18 ms apart over one hour from a 5-minute boundary (12 windows, so 1,200
// result rows in each case; every case checks its row count against the data's and stops the run
// if it differs). Baselines are registered, and so run, first (each case's repetitions run
// together), and the ratios use their mean rate. Time is measured around each iteration's work
// only (UseManualTime): filling sources and opening SQLite databases are not counted; creating
// the Application, building the pipeline and preparing SQLite's statements are.
//
// The goal: vs_pipeline >= 0.5. Compare ratios, not absolute numbers: the machine is shared.
//
// The command (about half a minute):
//   build/benchmarks/sql_benchmark --benchmark_repetitions=3
//   --benchmark_report_aggregates_only=true
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <simdjson.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "rill/base/clock.h"
#include "rill/process/aggregators.h"
#include "rill/process/pipeline.h"
#include "rill/process/source.h"
#include "rill/process/window.h"
#include "rill/sql/application.h"

namespace {

constexpr int kRecords = 200'000;
constexpr int kLevels = 100;
const absl::Duration kWindow = absl::Minutes(5);
const absl::Time kT0 = absl::FromUnixSeconds(1767225600);  // 2026-01-01 00:00:00 UTC

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "sql_benchmark: %s\n", what.c_str());
  std::exit(1);
}

// ---- The input, generated once ----

struct Decoded {
  std::string kind;
  int64_t level = 0;
  int64_t ts_ms = 0;  // arrival time, Unix milliseconds
};

struct Input {
  std::vector<std::string> json;
  std::vector<absl::Time> arrival;
  std::vector<Decoded> rows;
  size_t result_rows = 0;  // distinct (level, window) among purchases
};

const Input& TheInput() {
  static const Input* input = [] {
    auto* in = new Input;
    const char* kinds[] = {"login", "level_up", "kill"};
    uint64_t state = 20260101;  // SplitMix64
    auto next = [&state] {
      uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      return z ^ (z >> 31);
    };
    std::set<std::pair<int64_t, int64_t>> groups;
    for (int i = 0; i < kRecords; ++i) {
      const uint64_t r = next();
      const bool purchase = r % 2 == 0;
      const std::string kind = purchase ? "purchase" : kinds[(r >> 1) % 3];
      const auto level = static_cast<int64_t>((r >> 8) % kLevels);
      const double amount = static_cast<double>(1 + (r >> 20) % 100) / 2;
      const absl::Time at = kT0 + absl::Milliseconds(18) * i;
      in->json.push_back(
          absl::StrFormat(R"({"kind":"%s","level":%d,"amount":%g})", kind, level, amount));
      in->arrival.push_back(at);
      in->rows.push_back({kind, level, absl::ToUnixMillis(at)});
      if (purchase) groups.insert({level, absl::ToUnixMillis(at) / 300'000});
    }
    in->result_rows = groups.size();
    return in;
  }();
  return *input;
}

void CheckRows(const char* what, size_t rows) {
  if (rows != TheInput().result_rows) {
    Die(absl::StrCat(what, " gave ", rows, " result rows, the data has ", TheInput().result_rows));
  }
}

// ---- Rates, for the ratios (as benchmarks/deliver_benchmark.cc) ----

// The rates of the baselines' runs so far in this process (their mean, by name), for
// BM_SqlCount's vs_* counters: the baselines are registered, and so run, first.
std::map<std::string, std::pair<double, int>> g_rates;

void RecordRate(const std::string& name, double rate) {
  auto& [sum, runs] = g_rates[name];
  sum += rate;
  ++runs;
}

void SetRatio(benchmark::State& state, const char* counter, double rate,
              const std::string& baseline) {
  if (auto it = g_rates.find(baseline); it != g_rates.end() && it->second.first > 0) {
    state.counters[counter] = rate / (it->second.first / it->second.second);
  }
}

// Sums the time of the measured parts of the iterations and reports each one (UseManualTime).
class Stopwatch {
 public:
  void Start() { start_ = std::chrono::steady_clock::now(); }
  void Stop(benchmark::State& state) {
    const std::chrono::duration<double> d = std::chrono::steady_clock::now() - start_;
    state.SetIterationTime(d.count());
    total_ += d.count();
  }
  double Rate(double items) const { return total_ > 0 ? items / total_ : 0; }

 private:
  std::chrono::steady_clock::time_point start_;
  double total_ = 0;
};

void ReportRate(benchmark::State& state, const Stopwatch& watch, const char* name) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kRecords);
  RecordRate(name, watch.Rate(static_cast<double>(state.iterations()) * kRecords));
}

// ---- The hand-written pipeline ----

struct Event {
  bool ok = false;
  bool purchase = false;
  int64_t level = 0;
};

void BM_PipelineCount(benchmark::State& state) {
  const Input& in = TheInput();
  simdjson::dom::parser parser;
  Stopwatch watch;
  for (auto _ : state) {
    auto source = std::make_unique<rill::VectorSource<std::string_view>>();
    for (int i = 0; i < kRecords; ++i) source->Add(in.json[i], in.arrival[i]);
    size_t rows = 0;
    watch.Start();
    auto built = rill::Pipeline<std::string_view>::From(std::move(source))
                     .Map([&parser](std::string_view json) {
                       Event e;
                       simdjson::dom::element doc;
                       if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS)
                         return e;
                       std::string_view kind;
                       if (doc["kind"].get(kind) != simdjson::SUCCESS) return e;
                       if (doc["level"].get(e.level) != simdjson::SUCCESS) return e;
                       e.ok = true;
                       e.purchase = kind == "purchase";
                       return e;
                     })
                     .Filter([](const Event& e) { return e.ok && e.purchase; })
                     .KeyBy([](const Event& e) { return e.level; })
                     .Window(rill::TumblingWindow(kWindow))
                     .Aggregate(rill::Count())
                     .To([&rows](const rill::WindowResult<int64_t, uint64_t>&) { ++rows; });
    if (!built.ok()) Die(built.status().ToString());
    if (absl::Status s = built->Finish(); !s.ok()) Die(s.ToString());
    watch.Stop(state);
    CheckRows("the pipeline", rows);
  }
  ReportRate(state, watch, "pipeline");
}
BENCHMARK(BM_PipelineCount)->UseManualTime()->Unit(benchmark::kMillisecond);

// ---- SQLite ----

sqlite3* OpenMemoryDatabase() {
  sqlite3* db = nullptr;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) Die("sqlite3_open");
  if (sqlite3_exec(db, "CREATE TABLE events (kind TEXT, level INTEGER, ts INTEGER)", nullptr,
                   nullptr, nullptr) != SQLITE_OK) {
    Die(sqlite3_errmsg(db));
  }
  return db;
}

void Exec(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) Die(sqlite3_errmsg(db));
}

sqlite3_stmt* Prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) Die(sqlite3_errmsg(db));
  return stmt;
}

void Insert(sqlite3* db) {
  sqlite3_stmt* insert = Prepare(db, "INSERT INTO events (kind, level, ts) VALUES (?, ?, ?)");
  Exec(db, "BEGIN");
  for (const Decoded& r : TheInput().rows) {
    sqlite3_bind_text(insert, 1, r.kind.data(), static_cast<int>(r.kind.size()), SQLITE_STATIC);
    sqlite3_bind_int64(insert, 2, r.level);
    sqlite3_bind_int64(insert, 3, r.ts_ms);
    if (sqlite3_step(insert) != SQLITE_DONE) Die(sqlite3_errmsg(db));
    sqlite3_reset(insert);
  }
  Exec(db, "COMMIT");
  sqlite3_finalize(insert);
}

// The batch query; returns its rows.
size_t Query(sqlite3* db) {
  sqlite3_stmt* select = Prepare(db,
                                 "SELECT level, ts / 300000, COUNT(*) FROM events "
                                 "WHERE kind = 'purchase' GROUP BY level, ts / 300000");
  size_t rows = 0;
  int rc;
  while ((rc = sqlite3_step(select)) == SQLITE_ROW) {
    benchmark::DoNotOptimize(sqlite3_column_int64(select, 2));
    ++rows;
  }
  if (rc != SQLITE_DONE) Die(sqlite3_errmsg(db));
  sqlite3_finalize(select);
  return rows;
}

void BM_SqliteBatch(benchmark::State& state) {
  TheInput();
  Stopwatch watch;
  for (auto _ : state) {
    sqlite3* db = OpenMemoryDatabase();
    watch.Start();
    Insert(db);
    const size_t rows = Query(db);
    watch.Stop(state);
    CheckRows("SQLite", rows);
    sqlite3_close(db);
  }
  ReportRate(state, watch, "sqlite");
}
BENCHMARK(BM_SqliteBatch)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_SqliteQueryOnly(benchmark::State& state) {
  sqlite3* db = OpenMemoryDatabase();
  Insert(db);
  Stopwatch watch;
  for (auto _ : state) {
    watch.Start();
    const size_t rows = Query(db);
    watch.Stop(state);
    CheckRows("SQLite", rows);
  }
  sqlite3_close(db);
  ReportRate(state, watch, "sqlite_query");
}
BENCHMARK(BM_SqliteQueryOnly)->UseManualTime()->Unit(benchmark::kMillisecond);

// ---- rill::sql ----

constexpr char kCountSql[] = R"(
CREATE OR REPLACE STREAM "DEST_SQL_STREAM" ("level" INTEGER, "purchases" BIGINT);
CREATE OR REPLACE PUMP "COUNT_PUMP" AS INSERT INTO "DEST_SQL_STREAM"
  SELECT STREAM "level", COUNT(*) FROM "SOURCE_SQL_STREAM_001"
  WHERE "kind" = 'purchase'
  GROUP BY "level", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '5' MINUTE);
)";

void BM_SqlCount(benchmark::State& state) {
  const Input& in = TheInput();
  rill::SimulatedClock clock(kT0);
  Stopwatch watch;
  for (auto _ : state) {
    auto source = std::make_unique<rill::sql::MemorySource>();
    for (int i = 0; i < kRecords; ++i) source->Add(in.json[i], in.arrival[i]);
    size_t rows = 0;
    rill::sql::ApplicationOptions options;
    options.sql = kCountSql;
    options.clock = &clock;
    rill::sql::Input input;
    input.format.columns = {{"kind", {rill::sql::SqlType::kVarchar, 16, 0, 0}, "$.kind"},
                            {"level", {rill::sql::SqlType::kInteger, 0, 0, 0}, "$.level"}};
    input.source = std::move(source);
    options.inputs.push_back(std::move(input));
    rill::sql::Output output;
    output.stream = "DEST_SQL_STREAM";
    output.callback = [&rows](const rill::sql::OutputRow&) {
      ++rows;
      return absl::OkStatus();
    };
    options.outputs.push_back(std::move(output));
    watch.Start();
    absl::StatusOr<std::unique_ptr<rill::sql::Application>> app =
        rill::sql::Application::Create(std::move(options));
    if (!app.ok()) Die(app.status().ToString());
    if (absl::Status s = (*app)->Finish(); !s.ok()) Die(s.ToString());
    watch.Stop(state);
    CheckRows("the SQL application", rows);
    if ((*app)->counters().error_rows != 0) Die("the SQL application reported error rows");
  }
  ReportRate(state, watch, "sql");
  const double rate = watch.Rate(static_cast<double>(state.iterations()) * kRecords);
  SetRatio(state, "vs_pipeline", rate, "pipeline");
  SetRatio(state, "vs_sqlite", rate, "sqlite");
  SetRatio(state, "vs_sqlite_query", rate, "sqlite_query");
}
BENCHMARK(BM_SqlCount)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace
