#include "rill/sql/application.h"

#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/stream/stream.h"
#include "sql/allocation_counter.h"

namespace rill::sql {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1767225600);  // 2026-01-01 00:00:00 UTC

ColumnType Varchar(uint32_t n) { return {SqlType::kVarchar, n, 0, 0}; }
ColumnType Int() { return {SqlType::kInteger, 0, 0, 0}; }
ColumnType Double() { return {SqlType::kDouble, 0, 0, 0}; }

// Rows an output saw, as "ROWTIME | v1 | v2 ...".
struct Collected {
  std::map<std::string, std::vector<std::string>> rows;
};

std::string Text(const OutputRow& r) {
  std::vector<std::string> parts;
  parts.push_back(Value::Timestamp(r.row.rowtime).ToString());
  for (const Value& v : r.row.values) parts.push_back(v.ToString());
  return absl::StrJoin(parts, " | ");
}

struct Harness {
  SimulatedClock clock{kT0};
  MemorySource* source = nullptr;
  Collected out;
  std::unique_ptr<Application> app;

  absl::Status Create(std::string sql, std::vector<RecordColumn> columns,
                      std::vector<std::string> outputs, std::vector<ReferenceTable> refs = {}) {
    ApplicationOptions options;
    options.sql = std::move(sql);
    options.clock = &clock;
    Input input;
    input.format.columns = std::move(columns);
    auto src = std::make_unique<MemorySource>(4);
    source = src.get();
    input.source = std::move(src);
    options.inputs.push_back(std::move(input));
    options.reference_tables = std::move(refs);
    outputs.push_back("error_stream");
    for (const std::string& name : outputs) {
      Output o;
      o.stream = name;
      o.callback = [this](const OutputRow& r) {
        out.rows[std::string(r.stream)].push_back(Text(r));
        return absl::OkStatus();
      };
      options.outputs.push_back(std::move(o));
    }
    absl::StatusOr<std::unique_ptr<Application>> a = Application::Create(std::move(options));
    if (!a.ok()) return a.status();
    app = std::move(*a);
    return absl::OkStatus();
  }
  void Put(std::string json, absl::Duration at) { source->Add(std::move(json), kT0 + at); }
  std::vector<std::string>& Rows(const std::string& stream) { return out.rows[stream]; }
};

std::string CodeOf(const absl::Status& s) { return std::string(ErrorCodeName(GetErrorCode(s))); }

const char* kCountSql = R"(
CREATE OR REPLACE STREAM "DEST_SQL_STREAM" ("win_start" TIMESTAMP, "k" VARCHAR(64), "cnt" BIGINT);
CREATE OR REPLACE PUMP "COUNT_PUMP" AS
  INSERT INTO "DEST_SQL_STREAM"
  SELECT STREAM STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '5' MINUTE), "k", COUNT(*)
  FROM "SOURCE_SQL_STREAM_001"
  GROUP BY "k", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '5' MINUTE);
)";

TEST_CASE("After an output failed, Commit returns the failure", "[sql][application]") {
  // Rows of what was read were not all written: no checkpoint may pass them.
  SimulatedClock clock{kT0};
  ApplicationOptions options;
  options.sql = kCountSql;
  options.clock = &clock;
  Input input;
  input.format.columns = {{"k", Varchar(64), "$.k"}};
  auto source = std::make_unique<MemorySource>(4);
  MemorySource* src = source.get();
  input.source = std::move(source);
  options.inputs.push_back(std::move(input));
  Output o;
  o.stream = "DEST_SQL_STREAM";
  o.callback = [](const OutputRow&) { return absl::UnavailableError("database down"); };
  options.outputs.push_back(std::move(o));
  auto app = Application::Create(std::move(options));
  REQUIRE(app.ok());
  REQUIRE((*app)->Commit().ok());
  src->Add(R"({"k":"a"})", kT0 + absl::Seconds(10));
  src->Add(R"({"k":"a"})", kT0 + absl::Minutes(6));  // closes the first window: its row fails
  CHECK(absl::IsUnavailable((*app)->Poll()));
  CHECK(absl::IsUnavailable((*app)->Commit()));
  CHECK((*app)->counters().rows_out == 0);  // the one row was not delivered
}

TEST_CASE("caught_up waits for a consumer-group input to hold every lease and read it all",
          "[sql][application]") {
  // A new worker taking over from one that stopped renewing holds no lease until they expire:
  // Finish() before then would close the windows on nothing.
  auto clock = std::make_shared<SimulatedClock>(kT0);
  StreamOptions so;
  so.name = "events";
  so.shard_count = 2;
  so.clock = clock;
  auto stream = Stream::Create(so);
  REQUIRE(stream.ok());
  for (int i = 0; i < 100; ++i) {
    REQUIRE((*stream)
                ->PutRecord(absl::StrCat("p", i), i % 4 == 0 ? R"({"k":"a"})" : R"({"k":"b"})")
                .ok());
  }
  InMemoryCheckpointStore store;
  ConsumerGroupOptions go;
  go.application_name = "sql-counts";
  go.initial_position = StartingPosition::TrimHorizon();
  go.max_records = 10;
  auto group = ConsumerGroup::Create(**stream, store, go);
  REQUIRE(group.ok());
  std::map<std::string, int64_t> counts;
  auto make = [&](std::string worker) {
    ApplicationOptions options;
    options.sql = kCountSql;
    options.clock = clock.get();
    Input input;
    input.format.columns = {{"k", Varchar(64), "$.k"}};
    input.source = FromConsumerGroup(**group, std::move(worker));
    options.inputs.push_back(std::move(input));
    Output o;
    o.stream = "DEST_SQL_STREAM";
    o.callback = [&counts](const OutputRow& r) {
      counts[r.row.values[1].ToString()] += std::stoll(r.row.values[2].ToString());
      return absl::OkStatus();
    };
    options.outputs.push_back(std::move(o));
    auto app = Application::Create(std::move(options));
    REQUIRE(app.ok());
    return std::move(*app);
  };
  auto first = make("w1");
  REQUIRE(first->Poll(1).ok());  // takes the leases, then stops renewing them
  auto second = make("w2");
  CHECK_FALSE(second->caught_up());
  REQUIRE(second->Poll().ok());
  CHECK_FALSE(second->caught_up());  // w1's leases have not expired
  int polls = 0;
  while (!second->caught_up() && polls < 200) {
    clock->Advance(absl::Milliseconds(500));
    REQUIRE(second->Poll().ok());
    ++polls;
  }
  REQUIRE(second->caught_up());
  CHECK(polls >= 20);  // the 10 s failover time, in 500 ms steps
  REQUIRE(second->Finish().ok());
  CHECK(counts == std::map<std::string, int64_t>{{"a", 25}, {"b", 75}});
}

TEST_CASE("A row read after a caught-up Poll moved ROWTIME to the clock is counted, not lost",
          "[sql][application]") {
  // The caught-up Poll closed the first window at the clock's time; a record stamped before it
  // but read afterwards took ROWTIME = its arrival, below that window's end: late, and dropped
  // with no row and no error.
  Harness h;
  REQUIRE(h.Create(kCountSql, {{"k", Varchar(64), "$.k"}}, {"DEST_SQL_STREAM"}).ok());
  h.Put(R"({"k":"a"})", absl::Seconds(10));
  REQUIRE(h.app->Poll().ok());
  h.clock.Advance(absl::Minutes(6));
  REQUIRE(h.app->Poll().ok());  // caught up: ROWTIME moves to 00:06, the first window closes
  REQUIRE(h.Rows("DEST_SQL_STREAM").size() == 1);
  h.Put(R"({"k":"b"})", absl::Minutes(4));  // stamped 00:04, read now
  REQUIRE(h.app->Poll().ok());
  h.clock.Advance(absl::Minutes(5));
  REQUIRE(h.app->Poll().ok());
  CHECK(h.Rows("DEST_SQL_STREAM") ==
        std::vector<std::string>{"2026-01-01 00:05:00.000 | 2026-01-01 00:00:00.000 | a | 1",
                                 "2026-01-01 00:10:00.000 | 2026-01-01 00:05:00.000 | b | 1"});
  CHECK(h.Rows("error_stream").empty());
}

TEST_CASE(
    "The reference's count per key per 5-minute window emits one row per group at the "
    "window's end",
    "[sql][application]") {
  Harness h;
  REQUIRE(h.Create(kCountSql, {{"k", Varchar(64), "$.k"}}, {"DEST_SQL_STREAM"}).ok());
  h.Put(R"({"k":"a"})", absl::Seconds(10));
  h.Put(R"({"k":"b"})", absl::Seconds(20));
  h.Put(R"({"k":"a"})", absl::Minutes(4));
  h.Put(R"({"k":"a"})", absl::Minutes(6));  // the next window: closes the first
  REQUIRE(h.app->Poll().ok());
  CHECK(h.Rows("DEST_SQL_STREAM") ==
        std::vector<std::string>{"2026-01-01 00:05:00.000 | 2026-01-01 00:00:00.000 | a | 2",
                                 "2026-01-01 00:05:00.000 | 2026-01-01 00:00:00.000 | b | 1"});
  // The clock passing the second window's end closes it with no new row.
  h.clock.Advance(absl::Minutes(11));
  REQUIRE(h.app->Poll().ok());
  REQUIRE(h.Rows("DEST_SQL_STREAM").size() == 3);
  CHECK(h.Rows("DEST_SQL_STREAM")[2] ==
        "2026-01-01 00:10:00.000 | 2026-01-01 00:05:00.000 | a | 1");
  CHECK(h.Rows("error_stream").empty());
  CHECK(h.app->counters().rows_in == 4);
}

TEST_CASE("WHERE, projections, CASE and CAST run per row, and failures go to error_stream",
          "[sql][application]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE STREAM "OUT" (player VARCHAR(16), score_per_level DOUBLE, tier VARCHAR(8), lvl BIGINT);
    CREATE PUMP "P" AS INSERT INTO "OUT"
      SELECT STREAM UPPER(player), CAST(score AS DOUBLE) / lvl,
             CASE WHEN score >= 100 THEN 'gold' WHEN score >= 10 THEN 'silver' ELSE 'bronze' END,
             lvl
      FROM SOURCE_SQL_STREAM_001 WHERE kind = 'score' AND score / lvl >= 0;)",
                   {{"KIND", Varchar(8), "$.kind"},
                    {"PLAYER", Varchar(16), "$.player"},
                    {"SCORE", Int(), "$.score"},
                    {"LVL", Int(), "$.level"}},
                   {"OUT"})
              .ok());
  h.Put(R"({"kind":"score","player":"ann","score":150,"level":3})", absl::Seconds(1));
  h.Put(R"({"kind":"login","player":"bob","score":0,"level":1})", absl::Seconds(2));
  h.Put(R"({"kind":"score","player":"cy","score":5,"level":0})", absl::Seconds(3));
  h.Put(R"({"kind":"score","player":"dee","score":"lots","level":1})", absl::Seconds(4));
  h.Put(R"({"kind":"score","player":"eve","score":12,"level":2})", absl::Seconds(5));
  h.Put("{not json", absl::Seconds(6));
  REQUIRE(h.app->Poll().ok());
  CHECK(h.Rows("OUT") ==
        std::vector<std::string>{"2026-01-01 00:00:01.000 | ANN | 50 | gold | 3",
                                 "2026-01-01 00:00:05.000 | EVE | 6 | silver | 2"});
  const std::vector<std::string>& errors = h.Rows("error_stream");
  REQUIRE(errors.size() == 3);
  CHECK_THAT(errors[0], Catch::Contains("Runtime_error") && Catch::Contains("division by zero") &&
                            Catch::Contains("| P"));
  CHECK_THAT(errors[1], Catch::Contains("Type_conversion_error") && Catch::Contains("lots") &&
                            Catch::Contains("SOURCE_SQL_STREAM_001"));
  CHECK_THAT(errors[2], Catch::Contains("Type_conversion_error") && Catch::Contains("{not json"));
  CHECK(h.app->counters().error_rows == 3);
}

TEST_CASE("A sliding RANGE window aggregates each partition's preceding rows per input row",
          "[sql][application]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE STREAM "AVG_PRICE" (ticker VARCHAR(4), price DOUBLE, avg_price DOUBLE, n BIGINT,
                               max_price DOUBLE, prev DOUBLE);
    CREATE PUMP "P" AS INSERT INTO "AVG_PRICE"
      SELECT STREAM ticker, price, AVG(price) OVER w, COUNT(*) OVER w, MAX(price) OVER w,
             LAG(price, 1, -1.0) OVER w
      FROM SOURCE_SQL_STREAM_001
      WINDOW w AS (PARTITION BY ticker RANGE INTERVAL '1' MINUTE PRECEDING);)",
                   {{"TICKER", Varchar(4), "$.t"}, {"PRICE", Double(), "$.p"}}, {"AVG_PRICE"})
              .ok());
  h.Put(R"({"t":"A","p":10})", absl::Seconds(0));
  h.Put(R"({"t":"B","p":100})", absl::Seconds(10));
  h.Put(R"({"t":"A","p":20})", absl::Seconds(30));
  h.Put(R"({"t":"A","p":30})", absl::Seconds(60));  // 0 s is still within [0 s, 60 s]
  h.Put(R"({"t":"A","p":40})", absl::Seconds(61));  // 0 s has left
  REQUIRE(h.app->Poll().ok());
  CHECK(h.Rows("AVG_PRICE") ==
        std::vector<std::string>{"2026-01-01 00:00:00.000 | A | 10 | 10 | 1 | 10 | -1",
                                 "2026-01-01 00:00:10.000 | B | 100 | 100 | 1 | 100 | -1",
                                 "2026-01-01 00:00:30.000 | A | 20 | 15 | 2 | 20 | 10",
                                 "2026-01-01 00:01:00.000 | A | 30 | 20 | 3 | 30 | 20",
                                 "2026-01-01 00:01:01.000 | A | 40 | 30 | 3 | 40 | 30"});
}

TEST_CASE("A ROWS window holds the current row and n before it", "[sql][application]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE STREAM "S" (v INTEGER, total BIGINT, lowest INTEGER);
    CREATE PUMP "P" AS INSERT INTO "S"
      SELECT STREAM v, SUM(v) OVER (ROWS 2 PRECEDING), MIN(v) OVER (ROWS 2 PRECEDING)
      FROM SOURCE_SQL_STREAM_001;)",
                   {{"V", Int(), "$.v"}}, {"S"})
              .ok());
  for (int v : {5, 1, 7, 3, 9}) h.Put(absl::StrCat(R"({"v":)", v, "}"), absl::Seconds(v));
  REQUIRE(h.app->Poll().ok());
  std::vector<std::string> values;
  for (const std::string& r : h.Rows("S")) values.push_back(r.substr(26));
  CHECK(values == std::vector<std::string>{"5 | 5 | 5", "1 | 6 | 1", "7 | 13 | 1", "3 | 11 | 1",
                                           "9 | 19 | 3"});
}

TEST_CASE("A stagger window opens at a key's first row and emits after its range",
          "[sql][application]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE STREAM "S" (device VARCHAR(8), n BIGINT, opened TIMESTAMP);
    CREATE PUMP "P" AS INSERT INTO "S"
      SELECT STREAM device, COUNT(*), MIN(ROWTIME) FROM SOURCE_SQL_STREAM_001
      WINDOWED BY STAGGER (PARTITION BY device RANGE INTERVAL '1' MINUTE);)",
                   {{"DEVICE", Varchar(8), "$.d"}}, {"S"})
              .ok());
  h.Put(R"({"d":"x"})", absl::Seconds(20));
  h.Put(R"({"d":"x"})", absl::Seconds(30));
  h.Put(R"({"d":"y"})", absl::Seconds(50));
  h.Put(R"({"d":"x"})", absl::Seconds(80));  // x's window [20 s, 80 s) has closed: a new one
  h.Put(R"({"d":"y"})", absl::Seconds(109));
  REQUIRE(h.app->Poll().ok());
  CHECK(h.Rows("S") ==
        std::vector<std::string>{"2026-01-01 00:01:20.000 | x | 2 | 2026-01-01 00:00:20.000"});
  REQUIRE(h.app->Finish().ok());
  CHECK(h.Rows("S") ==
        std::vector<std::string>{"2026-01-01 00:01:20.000 | x | 2 | 2026-01-01 00:00:20.000",
                                 "2026-01-01 00:01:50.000 | y | 2 | 2026-01-01 00:00:50.000",
                                 "2026-01-01 00:02:20.000 | x | 1 | 2026-01-01 00:01:20.000"});
}

TEST_CASE("A reference table joins by hash lookup, inner and left outer", "[sql][application]") {
  const std::string path = absl::StrCat(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp",
                                        "/rill_sql_ref_", ::getpid(), ".csv");
  {
    std::ofstream f(path);
    f << "AMZN,Amazon\nMSFT,Microsoft\n";
  }
  ReferenceTable ref;
  ref.name = "COMPANY";
  ref.path = path;
  ref.format.type = RecordFormatType::kCsv;
  ref.format.columns = {{"TICKER", Varchar(4), ""}, {"NAME", Varchar(32), ""}};
  for (bool outer : {false, true}) {
    Harness h;
    const std::string join = outer ? "LEFT OUTER JOIN" : "JOIN";
    REQUIRE(h.Create(absl::StrCat(R"(
      CREATE STREAM "S" (ticker VARCHAR(4), company VARCHAR(32), price DOUBLE);
      CREATE PUMP "P" AS INSERT INTO "S"
        SELECT STREAM s.ticker, c.name, s.price FROM SOURCE_SQL_STREAM_001 AS s )",
                                  join, R"( COMPANY AS c ON s.ticker = c.ticker;)"),
                     {{"TICKER", Varchar(4), "$.t"}, {"PRICE", Double(), "$.p"}}, {"S"}, {ref})
                .ok());
    h.Put(R"({"t":"MSFT","p":1.5})", absl::Seconds(1));
    h.Put(R"({"t":"XYZ","p":2})", absl::Seconds(2));
    h.Put(R"({"t":"AMZN","p":3})", absl::Seconds(3));
    REQUIRE(h.app->Poll().ok());
    std::vector<std::string> want = {"2026-01-01 00:00:01.000 | MSFT | Microsoft | 1.5",
                                     "2026-01-01 00:00:03.000 | AMZN | Amazon | 3"};
    if (outer) want.insert(want.begin() + 1, "2026-01-01 00:00:02.000 | XYZ | NULL | 2");
    CHECK(h.Rows("S") == want);
    CHECK_THAT(h.app->Explain(), Catch::Contains("hash lookup"));
  }
  std::remove(path.c_str());
}

TEST_CASE("Two streams join over windows, each row against the other side's window",
          "[sql][application]") {
  Harness h;
  REQUIRE(
      h.Create(R"(
    CREATE STREAM "ORDERS" (id INTEGER, amount DOUBLE);
    CREATE STREAM "PAYMENTS" (id INTEGER, paid DOUBLE);
    CREATE STREAM "MATCHED" (id INTEGER, amount DOUBLE, paid DOUBLE);
    CREATE PUMP "O" AS INSERT INTO "ORDERS"
      SELECT STREAM id, amount FROM SOURCE_SQL_STREAM_001 WHERE kind = 'order';
    CREATE PUMP "PAY" AS INSERT INTO "PAYMENTS"
      SELECT STREAM id, amount FROM SOURCE_SQL_STREAM_001 WHERE kind = 'payment';
    CREATE PUMP "J" AS INSERT INTO "MATCHED"
      SELECT STREAM o.id, o.amount, p.paid
      FROM ORDERS OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS o
      JOIN PAYMENTS OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS p ON o.id = p.id;)",
               {{"KIND", Varchar(8), "$.k"}, {"ID", Int(), "$.id"}, {"AMOUNT", Double(), "$.a"}},
               {"MATCHED"})
          .ok());
  h.Put(R"({"k":"order","id":1,"a":10})", absl::Seconds(0));
  h.Put(R"({"k":"order","id":2,"a":20})", absl::Seconds(5));
  h.Put(R"({"k":"payment","id":1,"a":10})", absl::Seconds(30));  // within the minute
  h.Put(R"({"k":"payment","id":2,"a":20})", absl::Seconds(70));  // order 2 has left (5 s)
  h.Put(R"({"k":"order","id":3,"a":30})", absl::Seconds(80));
  h.Put(R"({"k":"payment","id":3,"a":29})", absl::Seconds(81));
  REQUIRE(h.app->Poll().ok());
  CHECK(h.Rows("MATCHED") == std::vector<std::string>{"2026-01-01 00:00:30.000 | 1 | 10 | 10",
                                                      "2026-01-01 00:01:21.000 | 3 | 30 | 29"});
}

TEST_CASE("TOP_K_ITEMS_TUMBLING gives the most frequent items per window at its end",
          "[sql][application]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE STREAM "TOP" (item VARCHAR(16), item_count BIGINT);
    CREATE PUMP "P" AS INSERT INTO "TOP"
      SELECT STREAM ITEM, ITEM_COUNT FROM TABLE(TOP_K_ITEMS_TUMBLING(
        CURSOR(SELECT STREAM * FROM SOURCE_SQL_STREAM_001), 'PRODUCT', 2, 60));)",
                   {{"PRODUCT", Varchar(16), "$.p"}}, {"TOP"})
              .ok());
  int second = 0;
  for (const char* p : {"sword", "shield", "sword", "potion", "sword", "shield"}) {
    h.Put(absl::StrCat(R"({"p":")", p, "\"}"), absl::Seconds(++second));
  }
  h.Put(R"({"p":"potion"})", absl::Seconds(61));
  REQUIRE(h.app->Finish().ok());
  CHECK(h.Rows("TOP") == std::vector<std::string>{"2026-01-01 00:01:00.000 | sword | 3",
                                                  "2026-01-01 00:01:00.000 | shield | 2",
                                                  "2026-01-01 00:02:00.000 | potion | 1"});
}

TEST_CASE("RANDOM_CUT_FOREST scores an injected anomaly far above normal rows",
          "[sql][application]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE STREAM "SCORED" (sensor VARCHAR(8), temp DOUBLE, anomaly_score DOUBLE);
    CREATE PUMP "P" AS INSERT INTO "SCORED"
      SELECT STREAM sensor, temp, ANOMALY_SCORE FROM TABLE(RANDOM_CUT_FOREST(
        CURSOR(SELECT STREAM sensor, temp FROM SOURCE_SQL_STREAM_001), 50, 128, 1000, 1));)",
                   {{"SENSOR", Varchar(8), "$.s"}, {"TEMP", Double(), "$.t"}}, {"SCORED"})
              .ok());
  for (int i = 0; i < 1500; ++i) {
    const double temp = i == 1200 ? 95.0 : 20.0 + (i % 7) * 0.3;
    h.Put(absl::StrCat(R"({"s":"s1","t":)", temp, "}"), absl::Milliseconds(100 * i));
  }
  REQUIRE(h.app->Finish().ok());
  const std::vector<std::string>& rows = h.Rows("SCORED");
  REQUIRE(rows.size() == 1500);
  auto score = [&](int i) { return std::stod(rows[i].substr(rows[i].rfind('|') + 2)); };
  double max_normal = 0;
  for (int i = 600; i < 1500; ++i) {
    if (i != 1200) max_normal = std::max(max_normal, score(i));
  }
  CHECK(score(1200) > 2 * max_normal);
}

TEST_CASE("Pumps chain through in-application streams and ROWTIME stays monotonic",
          "[sql][application]") {
  Harness h;
  REQUIRE(
      h.Create(R"(
    CREATE STREAM "PURCHASES" (lvl INTEGER, amount DOUBLE);
    CREATE STREAM "PER_LEVEL" (lvl INTEGER, total DOUBLE, n BIGINT);
    CREATE PUMP "FILTER" AS INSERT INTO "PURCHASES"
      SELECT STREAM lvl, amount FROM SOURCE_SQL_STREAM_001 WHERE kind = 'purchase';
    CREATE PUMP "SUM" AS INSERT INTO "PER_LEVEL"
      SELECT STREAM lvl, SUM(amount), COUNT(*) FROM "PURCHASES"
      GROUP BY lvl, FLOOR("PURCHASES".ROWTIME TO MINUTE) HAVING COUNT(*) > 1;)",
               {{"KIND", Varchar(8), "$.k"}, {"LVL", Int(), "$.l"}, {"AMOUNT", Double(), "$.a"}},
               {"PER_LEVEL", "PURCHASES"})
          .ok());
  h.Put(R"({"k":"purchase","l":1,"a":2.5})", absl::Seconds(1));
  h.Put(R"({"k":"purchase","l":2,"a":1})", absl::Seconds(2));
  h.Put(R"({"k":"login","l":1,"a":0})", absl::Seconds(3));
  h.Put(R"({"k":"purchase","l":1,"a":4})", absl::Seconds(50));
  h.Put(R"({"k":"purchase","l":1,"a":1})", absl::Seconds(70));
  REQUIRE(h.app->Finish().ok());
  CHECK(h.Rows("PER_LEVEL") == std::vector<std::string>{"2026-01-01 00:01:00.000 | 1 | 6.5 | 2"});
  CHECK(h.Rows("PURCHASES").size() == 4);
  CHECK_THAT(h.app->Explain(), Catch::Contains("TumblingWindow(1m)") &&
                                   Catch::Contains("PUMP \"FILTER\"") && Catch::Contains("having"));
}

TEST_CASE("A restored snapshot produces exactly the rows the uninterrupted run produces",
          "[sql][application]") {
  const char* sql = R"(
    CREATE STREAM "C" (k VARCHAR(8), n BIGINT, total DOUBLE, d BIGINT);
    CREATE STREAM "R" (k VARCHAR(8), a DOUBLE);
    CREATE PUMP "P1" AS INSERT INTO "C"
      SELECT STREAM k, COUNT(*), SUM(v), COUNT(DISTINCT v) FROM SOURCE_SQL_STREAM_001
      GROUP BY k, STEP(ROWTIME BY INTERVAL '30' SECOND);
    CREATE PUMP "P2" AS INSERT INTO "R"
      SELECT STREAM k, AVG(v) OVER (PARTITION BY k RANGE INTERVAL '20' SECOND PRECEDING)
      FROM SOURCE_SQL_STREAM_001;)";
  const std::vector<RecordColumn> columns = {{"K", Varchar(8), "$.k"}, {"V", Double(), "$.v"}};
  std::vector<std::pair<std::string, absl::Duration>> input;
  for (int i = 0; i < 200; ++i) {
    input.emplace_back(absl::StrCat(R"({"k":"k)", i % 3, R"(","v":)", i % 11, "}"),
                       absl::Seconds(i));
  }
  Harness whole;
  REQUIRE(whole.Create(sql, columns, {"C", "R"}).ok());
  for (const auto& [json, at] : input) whole.Put(json, at);
  REQUIRE(whole.app->Finish().ok());

  Harness first;
  REQUIRE(first.Create(sql, columns, {"C", "R"}).ok());
  for (const auto& [json, at] : input) first.Put(json, at);
  REQUIRE(first.app->Poll(25).ok());  // 100 records (batches of 4)
  const std::string snapshot = first.app->Snapshot();
  Harness second;
  REQUIRE(second.Create(sql, columns, {"C", "R"}).ok());
  for (const auto& [json, at] : input) second.Put(json, at);
  REQUIRE(second.app->Restore(snapshot).ok());
  REQUIRE(second.app->Finish().ok());
  for (const char* stream : {"C", "R"}) {
    std::vector<std::string> joined = first.Rows(stream);
    joined.insert(joined.end(), second.Rows(stream).begin(), second.Rows(stream).end());
    CHECK(joined == whole.Rows(stream));
  }
  CHECK(whole.Rows("C").size() == 21);  // 7 windows x 3 keys
  Harness bad;
  REQUIRE(bad.Create(sql, columns, {"C"}).ok());
  CHECK(CodeOf(bad.app->Restore(snapshot.substr(0, snapshot.size() - 3))) == "InvalidArgument");
}

TEST_CASE("Rows output to a rill stream are written once across a snapshot and a restore",
          "[sql][application]") {
  const char* sql = R"(
    CREATE STREAM "C" (k VARCHAR(8), n BIGINT);
    CREATE PUMP "P" AS INSERT INTO "C"
      SELECT STREAM k, COUNT(*) FROM SOURCE_SQL_STREAM_001
      GROUP BY k, STEP(ROWTIME BY INTERVAL '10' SECOND);)";
  auto clock = std::make_shared<SimulatedClock>(kT0);
  StreamOptions so;
  so.name = "results";
  so.shard_count = 2;
  so.clock = clock;
  auto destination = Stream::Create(so);
  REQUIRE(destination.ok());
  auto make = [&](const std::string* restore_from) {
    ApplicationOptions options;
    options.name = "dedup";
    options.sql = sql;
    options.clock = clock.get();
    Input input;
    input.format.columns = {{"K", Varchar(8), "$.k"}};
    auto source = std::make_unique<MemorySource>(10);
    for (int i = 0; i < 120; ++i) {
      source->Add(absl::StrCat(R"({"k":"k)", i % 4, R"("})"), kT0 + absl::Seconds(i));
    }
    input.source = std::move(source);
    options.inputs.push_back(std::move(input));
    Output out;
    out.stream = "C";
    out.destination = destination->get();
    out.partition_key_column = "K";
    options.outputs.push_back(std::move(out));
    auto app = Application::Create(std::move(options));
    REQUIRE(app.ok());
    if (restore_from != nullptr) REQUIRE((*app)->Restore(*restore_from).ok());
    return std::move(*app);
  };
  // The first application snapshots after 6 batches (60 records), writes on to the end and
  // "crashes"; the second restores the snapshot and runs to the end on the same destination.
  auto first = make(nullptr);
  for (int i = 0; i < 6; ++i) REQUIRE(first->Poll(1).ok());
  const std::string snapshot = first->Snapshot();
  clock->Advance(absl::Seconds(1));
  REQUIRE(first->Finish().ok());
  auto second = make(&snapshot);
  REQUIRE(second->Finish().ok());
  // Every (key, window) row exactly once: 12 windows x 4 keys.
  std::map<std::string, int> seen;
  size_t records = 0;
  for (const ShardDescription& shard : (*destination)->ListShards()) {
    auto it = (*destination)->GetShardIterator(shard.shard_id, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    auto batch = (*destination)->GetRecords(*it);
    REQUIRE(batch.ok());
    for (const Record& r : batch->records) {
      ++records;
      ++seen[std::string(r.partition_key)];
    }
  }
  CHECK(records == 48);
  CHECK(seen.size() == 48);
  CHECK(second->counters().rows_out > 0);
}

TEST_CASE("Bad SQL gets a CodeValidation error naming the place and the problem",
          "[sql][application]") {
  const std::vector<RecordColumn> columns = {{"K", Varchar(8), "$.k"}, {"V", Int(), "$.v"}};
  struct Case {
    std::string sql;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"CREATE STREAM S (a INTEGER);\nCREATE PUMP P AS INSERT INTO S\n  SELECT STREAM v FORM "
       "SOURCE_SQL_STREAM_001;",
       "line 3"},
      {"CREATE STREAM S (a INTEGER); CREATE PUMP P AS INSERT INTO S SELECT STREAM nope FROM "
       "SOURCE_SQL_STREAM_001;",
       "unknown column \"NOPE\""},
      {"CREATE STREAM S (a INTEGER); CREATE PUMP P AS INSERT INTO S SELECT STREAM v FROM "
       "SOURCE_SQL_STREAM_001 WHERE k > 3;",
       "cannot compare VARCHAR(8)"},
      {"CREATE STREAM S (a INTEGER); CREATE PUMP P AS INSERT INTO S SELECT STREAM v FROM "
       "SOURCE_SQL_STREAM_001 WHERE COUNT(*) > 1;",
       "aggregates are not allowed in WHERE"},
      {"CREATE STREAM S (a BIGINT); CREATE PUMP P AS INSERT INTO S SELECT STREAM COUNT(*) FROM "
       "SOURCE_SQL_STREAM_001 GROUP BY k;",
       "needs a window"},
      {"CREATE STREAM S (a INTEGER, b BIGINT); CREATE PUMP P AS INSERT INTO S SELECT STREAM v, "
       "COUNT(*) FROM SOURCE_SQL_STREAM_001 GROUP BY k, STEP(ROWTIME BY INTERVAL '1' MINUTE);",
       "must be grouped by or inside an aggregate"},
      {"CREATE STREAM S (a INTEGER); CREATE PUMP P AS INSERT INTO S SELECT v FROM "
       "SOURCE_SQL_STREAM_001;",
       "SELECT STREAM"},
      {"CREATE STREAM S (a TIMESTAMP); CREATE PUMP P AS INSERT INTO S SELECT STREAM v FROM "
       "SOURCE_SQL_STREAM_001;",
       "is TIMESTAMP but the query gives INTEGER"},
      {"CREATE STREAM S (a INTEGER); CREATE PUMP P AS INSERT INTO T SELECT STREAM v FROM "
       "SOURCE_SQL_STREAM_001;",
       "unknown stream \"T\""},
      {"CREATE STREAM S (a DOUBLE); CREATE PUMP P AS INSERT INTO S SELECT STREAM SUM(k) OVER "
       "(ROWS 3 PRECEDING) FROM SOURCE_SQL_STREAM_001;",
       "SUM cannot take VARCHAR(8)"},
      {"CREATE STREAM S (a INTEGER); CREATE PUMP P AS INSERT INTO S SELECT STREAM NOSUCH(v) FROM "
       "SOURCE_SQL_STREAM_001;",
       "unknown function NOSUCH"},
      {"CREATE STREAM S (a INTEGER); CREATE PUMP P AS INSERT INTO S SELECT STREAM a FROM S;",
       "reads the stream \"S\" it inserts into"},
      {"CREATE STREAM S (a INTEGER); CREATE PUMP P AS INSERT INTO S SELECT STREAM v FROM "
       "SOURCE_SQL_STREAM_001 ORDER BY v;",
       "ORDER BY on a stream is supported only as ORDER BY ROWTIME"},
  };
  for (const Case& c : cases) {
    INFO(c.sql);
    Harness h;
    absl::Status s = h.Create(c.sql, columns, {});
    CHECK(CodeOf(s) == "CodeValidation");
    CHECK_THAT(std::string(s.message()), Catch::Contains(c.message));
  }
}

TEST_CASE("Filters, tumbling and sliding windows allocate nothing per row in steady state",
          "[sql][application][allocation]") {
  const char* sql = R"(
    CREATE STREAM "T" (k VARCHAR(8), n BIGINT, total DOUBLE, hi DOUBLE);
    CREATE STREAM "S" (k VARCHAR(8), v DOUBLE, a DOUBLE, p DOUBLE);
    CREATE STREAM "F" (k VARCHAR(8), v DOUBLE);
    CREATE PUMP "P1" AS INSERT INTO "T"
      SELECT STREAM k, COUNT(*), SUM(v), MAX(v) FROM SOURCE_SQL_STREAM_001
      WHERE v >= 0 GROUP BY k, STEP(ROWTIME BY INTERVAL '1' HOUR);
    CREATE PUMP "P2" AS INSERT INTO "S"
      SELECT STREAM k, v, AVG(v) OVER w, LAG(v) OVER w FROM SOURCE_SQL_STREAM_001
      WINDOW w AS (PARTITION BY k RANGE INTERVAL '1' SECOND PRECEDING);
    CREATE PUMP "P3" AS INSERT INTO "F"
      SELECT STREAM UPPER(k), v * 2 FROM SOURCE_SQL_STREAM_001 WHERE v > 50;)";
  ApplicationOptions options;
  SimulatedClock clock(kT0);
  options.sql = sql;
  options.clock = &clock;
  Input input;
  input.format.columns = {{"K", Varchar(8), "$.k"}, {"V", Double(), "$.v"}};
  auto source = std::make_unique<MemorySource>(100);
  for (int i = 0; i < 20000; ++i) {
    source->Add(absl::StrCat(R"({"k":"key)", i % 5, R"(","v":)", i % 97, "}"),
                kT0 + absl::Milliseconds(i));
  }
  input.source = std::move(source);
  options.inputs.push_back(std::move(input));
  int64_t rows = 0;
  for (const char* stream : {"T", "S", "F"}) {
    Output o;
    o.stream = stream;
    o.callback = [&rows](const OutputRow&) {
      ++rows;
      return absl::OkStatus();
    };
    options.outputs.push_back(std::move(o));
  }
  absl::StatusOr<std::unique_ptr<Application>> app = Application::Create(std::move(options));
  REQUIRE(app.ok());
  REQUIRE((*app)->Poll(50).ok());  // 5,000 records: every key, window and ring has grown
  const int64_t before = rows;
  testing::g_allocations = 0;
  testing::g_count_allocations = true;
  const absl::Status polled = (*app)->Poll(100);  // 10,000 more, within the same hour
  testing::g_count_allocations = false;
  REQUIRE(polled.ok());
  CHECK(rows - before > 10000);
  CHECK(testing::g_allocations.load() == 0);
}

TEST_CASE("Bad options get InvalidArgument", "[sql][application]") {
  ApplicationOptions none;
  none.sql = "CREATE STREAM S (a INTEGER);";
  CHECK(CodeOf(Application::Create(std::move(none)).status()) == "InvalidArgument");
  Harness h;
  CHECK(CodeOf(h.Create("CREATE STREAM S (a INTEGER);", {{"A", Int(), ""}}, {"NOPE"})) ==
        "InvalidArgument");
}

}  // namespace
}  // namespace rill::sql
