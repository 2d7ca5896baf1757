// Golden tests of rill::sql: hand-placed input and the exact rows reference §11's semantics give
// for it. Every expected row below is derived by hand from the input (the comments show the
// arithmetic), never copied from the engine's output.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
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
#include "rill/sql/application.h"

namespace rill::sql {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1767225600);  // 2026-01-01 00:00:00 UTC

ColumnType Varchar(uint32_t n) { return {SqlType::kVarchar, n, 0, 0}; }
ColumnType Int() { return {SqlType::kInteger, 0, 0, 0}; }
ColumnType Double() { return {SqlType::kDouble, 0, 0, 0}; }
ColumnType Decimal(uint8_t p, uint8_t s) { return {SqlType::kDecimal, 0, p, s}; }
ColumnType Timestamp() { return {SqlType::kTimestamp, 0, 0, 0}; }

// "ROWTIME | v1 | v2 ..."
std::string RowString(const Row& row) {
  std::vector<std::string> parts;
  parts.push_back(Value::Timestamp(row.rowtime).ToString());
  for (const Value& v : row.values) parts.push_back(v.ToString());
  return absl::StrJoin(parts, " | ");
}

// One input (SOURCE_SQL_STREAM_001) fed from a MemorySource, a SimulatedClock, and every named
// output (and error_stream) collected both as text and as rows.
struct Harness {
  SimulatedClock clock{kT0};
  MemorySource* source = nullptr;
  std::map<std::string, std::vector<std::string>> text;
  std::map<std::string, std::vector<Row>> rows;
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
        text[std::string(r.stream)].push_back(RowString(r.row));
        rows[std::string(r.stream)].push_back(r.row);
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
  std::vector<std::string>& Text(const std::string& stream) { return text[stream]; }
};

// ---------------------------------------------------------------------------------------------
// 1. Purchases and revenue per game level per 5 minutes.

struct GameEvent {
  int second;
  const char* kind;
  int level;           // -1: "level": null
  const char* amount;  // nullptr: no "amount"
};

// Windows [0, 5m), [5m, 10m), [10m, 15m) from kT0. The purchase totals are worked out below.
const std::vector<GameEvent> kGameEvents = {
    // Window 0 [00:00, 00:05)
    {5, "purchase", 1, "4.99"},
    {12, "login", 1, nullptr},
    {30, "purchase", 2, "1.50"},
    {45, "purchase", 1, "0.99"},
    {60, "levelup", 2, nullptr},
    {75, "purchase", 3, "9.99"},
    {90, "purchase", -1, "2.00"},
    {120, "login", 3, nullptr},
    {150, "purchase", 2, "1.50"},
    {180, "purchase", 1, "4.99"},
    {200, "logout", 1, nullptr},
    {240, "purchase", 3, "19.99"},
    {270, "purchase", 2, "0.50"},
    {299, "login", 2, nullptr},
    // Window 1 [00:05, 00:10): the first event is exactly at the boundary.
    {300, "purchase", 1, "4.99"},
    {310, "purchase", 1, "0.99"},
    {330, "login", 2, nullptr},
    {360, "purchase", 2, "2.50"},
    {400, "purchase", -1, "1.00"},
    {420, "purchase", -1, "3.00"},
    {450, "purchase", 3, "9.99"},
    {480, "levelup", 3, nullptr},
    {500, "purchase", 2, "2.50"},
    {520, "purchase", 1, nullptr},  // no amount: COUNT(*) counts it, SUM skips it
    {540, "login", 1, nullptr},
    {560, "purchase", 2, "7.25"},
    {590, "logout", 2, nullptr},
    // Window 2 [00:10, 00:15): no purchase at level 1 nor at NULL level.
    {600, "login", 1, nullptr},
    {620, "purchase", 3, "9.99"},
    {640, "purchase", 3, "0.01"},
    {660, "purchase", 2, "1.00"},
    {700, "login", -1, nullptr},
    {720, "purchase", 3, "4.00"},
    {760, "levelup", 1, nullptr},
    {800, "purchase", 2, "3.00"},
    {830, "login", 3, nullptr},
    {850, "purchase", 3, "1.00"},
    {880, "logout", 2, nullptr},
    {890, "purchase", 2, "0.49"},
    {899, "login", 1, nullptr},
};

std::string GameJson(const GameEvent& e, int i) {
  std::string json = absl::StrCat(R"({"kind":")", e.kind, R"(","player":"p)", i % 7,
                                  R"(","level":)", e.level < 0 ? "null" : absl::StrCat(e.level));
  if (e.amount != nullptr) absl::StrAppend(&json, R"(,"amount":)", e.amount);
  return json + "}";
}

TEST_CASE("Golden: purchases and revenue per level per 5-minute window", "[sql][golden]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE OR REPLACE STREAM "DEST_SQL_STREAM" ("win_start" TIMESTAMP, "level" INTEGER,
                                                "purchases" BIGINT, "revenue" DECIMAL(10,2));
    CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DEST_SQL_STREAM"
      SELECT STREAM STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '5' MINUTE), "level",
                    COUNT(*), SUM("amount")
      FROM "SOURCE_SQL_STREAM_001"
      WHERE "kind" = 'purchase'
      GROUP BY "level", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '5' MINUTE);)",
                   {{"kind", Varchar(16), "$.kind"},
                    {"player", Varchar(8), "$.player"},
                    {"level", Int(), "$.level"},
                    {"amount", Decimal(10, 2), "$.amount"}},
                   {"DEST_SQL_STREAM"})
              .ok());
  // Up to and including the event at exactly 00:05:00: it belongs to window 1 and its ROWTIME
  // reaching 00:05:00 closes window 0.
  for (int i = 0; i < 15; ++i)
    h.Put(GameJson(kGameEvents[i], i), absl::Seconds(kGameEvents[i].second));
  REQUIRE(h.app->Poll().ok());
  // Window 0, in group-key order (encoded INTEGER keys: 1, 2, 3, then the NULL key):
  //   level 1: 4.99 + 0.99 + 4.99 = 10.97 (3)   level 2: 1.50 + 1.50 + 0.50 = 3.50 (3)
  //   level 3: 9.99 + 19.99 = 29.98 (2)         NULL: 2.00 (1)
  const std::vector<std::string> window0 = {
      "2026-01-01 00:05:00.000 | 2026-01-01 00:00:00.000 | 1 | 3 | 10.97",
      "2026-01-01 00:05:00.000 | 2026-01-01 00:00:00.000 | 2 | 3 | 3.50",
      "2026-01-01 00:05:00.000 | 2026-01-01 00:00:00.000 | 3 | 2 | 29.98",
      "2026-01-01 00:05:00.000 | 2026-01-01 00:00:00.000 | NULL | 1 | 2.00"};
  CHECK(h.Text("DEST_SQL_STREAM") == window0);

  for (size_t i = 15; i < kGameEvents.size(); ++i) {
    h.Put(GameJson(kGameEvents[i], static_cast<int>(i)), absl::Seconds(kGameEvents[i].second));
  }
  REQUIRE(h.app->Finish().ok());
  std::vector<std::string> want = window0;
  // Window 1: level 1: 4.99 (the boundary event) + 0.99 + NULL = 5.98 (3)
  //           level 2: 2.50 + 2.50 + 7.25 = 12.25 (3)   level 3: 9.99 (1)
  //           NULL: 1.00 + 3.00 = 4.00 (2)
  // Window 2: level 2: 1.00 + 3.00 + 0.49 = 4.49 (3)   level 3: 9.99 + 0.01 + 4.00 + 1.00 = 15.00
  //           (4); no purchases at level 1 or NULL level: no rows.
  for (const char* row : {"2026-01-01 00:10:00.000 | 2026-01-01 00:05:00.000 | 1 | 3 | 5.98",
                          "2026-01-01 00:10:00.000 | 2026-01-01 00:05:00.000 | 2 | 3 | 12.25",
                          "2026-01-01 00:10:00.000 | 2026-01-01 00:05:00.000 | 3 | 1 | 9.99",
                          "2026-01-01 00:10:00.000 | 2026-01-01 00:05:00.000 | NULL | 2 | 4.00",
                          "2026-01-01 00:15:00.000 | 2026-01-01 00:10:00.000 | 2 | 3 | 4.49",
                          "2026-01-01 00:15:00.000 | 2026-01-01 00:10:00.000 | 3 | 4 | 15.00"}) {
    want.push_back(row);
  }
  CHECK(h.Text("DEST_SQL_STREAM") == want);
  CHECK(h.Text("error_stream").empty());
  CHECK(h.app->counters().rows_in == kGameEvents.size());
  // The revenue column is DECIMAL(10,2) exactly.
  REQUIRE(!h.rows["DEST_SQL_STREAM"].empty());
  CHECK(h.rows["DEST_SQL_STREAM"][0].values[3] == Value::Decimal(1097, 2));
}

// ---------------------------------------------------------------------------------------------
// 2. The reference's §11 example: a tumbling count and a stagger window over the same rows.

TEST_CASE("Golden: the stagger-window example rows in a 1-minute tumbling and a stagger window",
          "[sql][golden]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE OR REPLACE STREAM "DEST_SQL_STREAM" ("win_start" TIMESTAMP, "k" VARCHAR(64),
                                                "cnt" BIGINT);
    CREATE OR REPLACE STREAM "STAGGER_STREAM" ("k" VARCHAR(64), "cnt" BIGINT,
                                               "opened" TIMESTAMP);
    CREATE OR REPLACE PUMP "COUNT_PUMP" AS
      INSERT INTO "DEST_SQL_STREAM"
      SELECT STREAM STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' MINUTE), "k", COUNT(*)
      FROM "SOURCE_SQL_STREAM_001"
      GROUP BY "k", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '1' MINUTE);
    CREATE OR REPLACE PUMP "STAGGER_PUMP" AS
      INSERT INTO "STAGGER_STREAM"
      SELECT STREAM "k", COUNT(*), MIN("SOURCE_SQL_STREAM_001".ROWTIME)
      FROM "SOURCE_SQL_STREAM_001"
      WINDOWED BY STAGGER (PARTITION BY "k" RANGE INTERVAL '1' MINUTE);)",
                   {{"k", Varchar(64), "$.k"}}, {"DEST_SQL_STREAM", "STAGGER_STREAM"})
              .ok());
  const absl::Duration eleven = absl::Hours(11);
  h.Put(R"({"k":"x"})", eleven + absl::Seconds(20));
  h.Put(R"({"k":"x"})", eleven + absl::Seconds(30));
  h.clock.Advance(eleven + absl::Seconds(59));
  REQUIRE(h.app->Poll().ok());
  CHECK(h.Text("DEST_SQL_STREAM").empty());
  CHECK(h.Text("STAGGER_STREAM").empty());
  // 11:01:00: the tumbling window [11:00, 11:01) closes with both rows.
  h.clock.Advance(absl::Seconds(1));
  REQUIRE(h.app->Poll().ok());
  CHECK(h.Text("DEST_SQL_STREAM") ==
        std::vector<std::string>{"2026-01-01 11:01:00.000 | 2026-01-01 11:00:00.000 | x | 2"});
  CHECK(h.Text("STAGGER_STREAM").empty());
  // The stagger window opened by the row at 11:00:20 spans [11:00:20, 11:01:20).
  h.clock.Advance(absl::Seconds(19));
  REQUIRE(h.app->Poll().ok());
  CHECK(h.Text("STAGGER_STREAM").empty());
  h.clock.Advance(absl::Seconds(1));
  REQUIRE(h.app->Poll().ok());
  CHECK(h.Text("STAGGER_STREAM") ==
        std::vector<std::string>{"2026-01-01 11:01:20.000 | x | 2 | 2026-01-01 11:00:20.000"});
  CHECK(h.Text("DEST_SQL_STREAM").size() == 1);
  CHECK(h.Text("error_stream").empty());
}

// ---------------------------------------------------------------------------------------------
// 3. Top products per 5 minutes.

TEST_CASE("Golden: TOP_K_ITEMS_TUMBLING gives the top 3 purchased products per 5 minutes",
          "[sql][golden]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE OR REPLACE STREAM "TOP_PRODUCTS" ("product" VARCHAR(16), "purchases" BIGINT);
    CREATE OR REPLACE PUMP "TOP_PUMP" AS INSERT INTO "TOP_PRODUCTS"
      SELECT STREAM ITEM, ITEM_COUNT FROM TABLE(TOP_K_ITEMS_TUMBLING(
        CURSOR(SELECT STREAM "product" FROM "SOURCE_SQL_STREAM_001" WHERE "kind" = 'purchase'),
        'product', 3, 300));)",
                   {{"kind", Varchar(16), "$.kind"}, {"product", Varchar(16), "$.product"}},
                   {"TOP_PRODUCTS"})
              .ok());
  // Window [00:00, 00:05): purchases sword x4, shield x3, potion x3, gem x1; gem is also viewed
  // 5 times (not purchases). Window [00:05, 00:10): bow x2, gem x2, sword x1, plus a purchase
  // with no product (NULL: not an item).
  const std::vector<std::pair<const char*, const char*>> w0 = {
      {"purchase", "sword"},  {"view", "gem"},        {"purchase", "shield"},
      {"purchase", "potion"}, {"view", "gem"},        {"purchase", "sword"},
      {"purchase", "gem"},    {"purchase", "shield"}, {"view", "gem"},
      {"purchase", "potion"}, {"purchase", "sword"},  {"view", "gem"},
      {"purchase", "shield"}, {"purchase", "potion"}, {"view", "gem"},
      {"purchase", "sword"}};
  int second = 0;
  for (const auto& [kind, product] : w0) {
    h.Put(absl::StrCat(R"({"kind":")", kind, R"(","product":")", product, "\"}"),
          absl::Seconds(second += 15));
  }
  REQUIRE(second < 300);
  const std::vector<const char*> w1 = {"gem", "bow", "sword", "bow", "gem"};
  second = 300;
  for (const char* product : w1) {
    h.Put(absl::StrCat(R"({"kind":"purchase","product":")", product, "\"}"), absl::Seconds(second));
    second += 40;
  }
  h.Put(R"({"kind":"purchase"})", absl::Seconds(590));
  REQUIRE(h.app->Finish().ok());
  // Count descending, ties by value ascending: potion before shield, bow before gem.
  CHECK(h.Text("TOP_PRODUCTS") ==
        std::vector<std::string>{
            "2026-01-01 00:05:00.000 | sword | 4", "2026-01-01 00:05:00.000 | potion | 3",
            "2026-01-01 00:05:00.000 | shield | 3", "2026-01-01 00:10:00.000 | bow | 2",
            "2026-01-01 00:10:00.000 | gem | 2", "2026-01-01 00:10:00.000 | sword | 1"});
  CHECK(h.Text("error_stream").empty());
}

// ---------------------------------------------------------------------------------------------
// 4. A per-sensor sliding average feeding RANDOM_CUT_FOREST.

TEST_CASE(
    "Golden: a per-sensor sliding average feeds RANDOM_CUT_FOREST, which scores a spike "
    "highest",
    "[sql][golden]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE OR REPLACE STREAM "AVG_STREAM" ("sensor" VARCHAR(8), "temp" DOUBLE,
                                           "avg_temp" DOUBLE);
    CREATE OR REPLACE STREAM "SCORED" ("sensor" VARCHAR(8), "avg_temp" DOUBLE,
                                       "ANOMALY_SCORE" DOUBLE);
    CREATE OR REPLACE PUMP "AVG_PUMP" AS INSERT INTO "AVG_STREAM"
      SELECT STREAM "sensor", "temp",
             AVG("temp") OVER (PARTITION BY "sensor" RANGE INTERVAL '1' MINUTE PRECEDING)
      FROM "SOURCE_SQL_STREAM_001";
    CREATE OR REPLACE PUMP "SCORE_PUMP" AS INSERT INTO "SCORED"
      SELECT STREAM "sensor", "avg_temp", ANOMALY_SCORE FROM TABLE(RANDOM_CUT_FOREST(
        CURSOR(SELECT STREAM "sensor", "avg_temp" FROM "AVG_STREAM"), 50, 128, 1000, 1));)",
                   {{"sensor", Varchar(8), "$.sensor"}, {"temp", Double(), "$.temp"}},
                   {"AVG_STREAM", "SCORED"})
              .ok());
  // s1 reads every 10 s (at 10 i s), s2 every 10 s (at 10 i + 5 s); temperatures are multiples
  // of 0.5, so the window sums are exact. s1's reading 500 is a spike of 60.
  constexpr int kReadings = 700, kSpike = 500;
  auto s1 = [](int i) { return i == kSpike ? 60.0 : 20.0 + (i % 4) * 0.5; };
  auto s2 = [](int i) { return 30.0 + (i % 3) * 0.5; };
  for (int i = 0; i < kReadings; ++i) {
    h.Put(absl::StrCat(R"({"sensor":"s1","temp":)", s1(i), "}"), absl::Seconds(10 * i));
    h.Put(absl::StrCat(R"({"sensor":"s2","temp":)", s2(i), "}"), absl::Seconds(10 * i + 5));
  }
  REQUIRE(h.app->Finish().ok());
  const std::vector<Row>& avgs = h.rows["AVG_STREAM"];
  const std::vector<Row>& scored = h.rows["SCORED"];
  REQUIRE(avgs.size() == 2 * kReadings);
  REQUIRE(scored.size() == 2 * kReadings);
  // The first rows, alternating s1, s2. A 1-minute RANGE at 10 i s holds s1's readings with
  // 10 j in [10 i - 60, 10 i]: j = i-6 .. i (7 readings once i >= 6).
  //   s1: 20, 20.5, 21, 21.5, 20, 20.5, 21, 21.5 -> averages 20, 40.5/2, 61.5/3, 83/4, 103/5,
  //       123.5/6, 144.5/7, then (20.5+21+21.5+20+20.5+21+21.5)/7 = 146/7 (20 at 0 s has left)
  //   s2: 30, 30.5, 31, 30, 30.5, 31, 30, 30.5 -> averages 30, 60.5/2, 91.5/3, 121.5/4,
  //       152/5, 183/6, 213/7, then (30.5+31+30+30.5+31+30+30.5)/7 = 213.5/7
  const std::vector<double> want_s1 = {20.0,      40.5 / 2,  61.5 / 3,  83.0 / 4,
                                       103.0 / 5, 123.5 / 6, 144.5 / 7, 146.0 / 7};
  const std::vector<double> want_s2 = {30.0,      60.5 / 2,  91.5 / 3,  121.5 / 4,
                                       152.0 / 5, 183.0 / 6, 213.0 / 7, 213.5 / 7};
  for (size_t i = 0; i < want_s1.size(); ++i) {
    INFO("reading " << i);
    CHECK(avgs[2 * i].values[0] == Value::Varchar("s1"));
    CHECK(avgs[2 * i].rowtime == kT0 + absl::Seconds(10 * static_cast<int>(i)));
    CHECK(avgs[2 * i].values[2] == Value::Double(want_s1[i]));
    CHECK(avgs[2 * i + 1].values[0] == Value::Varchar("s2"));
    CHECK(avgs[2 * i + 1].values[2] == Value::Double(want_s2[i]));
  }
  // The spike's row: s1's readings 494..500: 20 + (i % 4) * 0.5 for i = 494..499 is
  // 21, 21.5, 20, 20.5, 21, 21.5 (sum 125.5) plus 60.
  CHECK(avgs[2 * kSpike].values[2] == Value::Double((125.5 + 60.0) / 7));
  // The score of the row the spike entered with is the run's maximum.
  size_t argmax = 0;
  for (size_t i = 0; i < scored.size(); ++i) {
    if (scored[i].values[2].d > scored[argmax].values[2].d) argmax = i;
  }
  CHECK(argmax == 2 * kSpike);
  CHECK(scored[2 * kSpike].values[1] == avgs[2 * kSpike].values[2]);
  CHECK(h.Text("error_stream").empty());
}

// ---------------------------------------------------------------------------------------------
// 5. A reference table of level names, LEFT OUTER joined to the purchases.

TEST_CASE("Golden: purchases LEFT OUTER JOIN a reference table of level names", "[sql][golden]") {
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp",
                                        "/rill_sql_golden_levels_", ::getpid(), ".csv");
  {
    std::ofstream f(path);
    f << "1,Novice\n2,Adept\n3,Master\n";
  }
  ReferenceTable ref;
  ref.name = "LEVELS";
  ref.path = path;
  ref.format.type = RecordFormatType::kCsv;
  ref.format.columns = {{"level", Int(), ""}, {"level_name", Varchar(16), ""}};
  Harness h;
  const absl::Status created = h.Create(R"(
    CREATE OR REPLACE STREAM "NAMED" ("player" VARCHAR(8), "level" INTEGER,
                                      "level_name" VARCHAR(16), "amount" DECIMAL(10,2));
    CREATE OR REPLACE PUMP "JOIN_PUMP" AS INSERT INTO "NAMED"
      SELECT STREAM p."player", p."level", l."level_name", p."amount"
      FROM "SOURCE_SQL_STREAM_001" AS p
      LEFT OUTER JOIN "LEVELS" AS l ON p."level" = l."level"
      WHERE p."kind" = 'purchase';)",
                                        {{"kind", Varchar(16), "$.kind"},
                                         {"player", Varchar(8), "$.player"},
                                         {"level", Int(), "$.level"},
                                         {"amount", Decimal(10, 2), "$.amount"}},
                                        {"NAMED"}, {ref});
  std::remove(path.c_str());  // loaded whole at Create
  REQUIRE(created.ok());
  h.Put(R"({"kind":"purchase","player":"p1","level":2,"amount":4.99})", absl::Seconds(1));
  h.Put(R"({"kind":"login","player":"p2","level":1})", absl::Seconds(2));
  h.Put(R"({"kind":"purchase","player":"p3","level":7,"amount":0.99})", absl::Seconds(3));
  h.Put(R"({"kind":"purchase","player":"p4","level":3,"amount":19.99})", absl::Seconds(4));
  h.Put(R"({"kind":"purchase","player":"p5","level":null,"amount":1.00})", absl::Seconds(5));
  h.Put(R"({"kind":"purchase","player":"p6","level":1,"amount":2.50})", absl::Seconds(6));
  REQUIRE(h.app->Poll().ok());
  // Each row keeps its stream row's ROWTIME; level 7 and the NULL level have no match.
  CHECK(h.Text("NAMED") ==
        std::vector<std::string>{"2026-01-01 00:00:01.000 | p1 | 2 | Adept | 4.99",
                                 "2026-01-01 00:00:03.000 | p3 | 7 | NULL | 0.99",
                                 "2026-01-01 00:00:04.000 | p4 | 3 | Master | 19.99",
                                 "2026-01-01 00:00:05.000 | p5 | NULL | NULL | 1.00",
                                 "2026-01-01 00:00:06.000 | p6 | 1 | Novice | 2.50"});
  CHECK(h.Text("error_stream").empty());
}

// ---------------------------------------------------------------------------------------------
// 6. Event time beside ROWTIME.

TEST_CASE("Golden: grouping by event time beside ROWTIME gives late rows a partial row",
          "[sql][golden]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE OR REPLACE STREAM "BY_EVENT_TIME" ("rowtime_win" TIMESTAMP, "event_win" TIMESTAMP,
                                              "n" BIGINT);
    CREATE OR REPLACE PUMP "ET_PUMP" AS INSERT INTO "BY_EVENT_TIME"
      SELECT STREAM STEP(ROWTIME BY INTERVAL '1' MINUTE), STEP("event_ts" BY INTERVAL '1' MINUTE),
             COUNT(*)
      FROM "SOURCE_SQL_STREAM_001"
      GROUP BY STEP(ROWTIME BY INTERVAL '1' MINUTE), STEP("event_ts" BY INTERVAL '1' MINUTE);)",
                   {{"event_ts", Timestamp(), "$.ts"}}, {"BY_EVENT_TIME"})
              .ok());
  // (arrival, event time)
  const std::vector<std::pair<int, const char*>> rows = {
      {10, "2026-01-01 00:00:05"},  {40, "2026-01-01 00:00:35"},  {55, "2026-01-01 00:00:50"},
      {65, "2026-01-01 00:00:58"},  // late: event minute 00:00, ROWTIME minute 00:01
      {80, "2026-01-01 00:01:15"},  {90, "2026-01-01T00:00:59Z"},  // late again
      {110, "2026-01-01 00:01:45"}, {130, "2026-01-01 00:02:05"}};
  for (const auto& [at, ts] : rows) {
    h.Put(absl::StrCat(R"({"ts":")", ts, "\"}"), absl::Seconds(at));
  }
  REQUIRE(h.app->Finish().ok());
  // ROWTIME minute 00:00: event minute 00:00 x3. ROWTIME minute 00:01: event minute 00:00 x2 (the
  // late rows: a second, partial row for that event minute) and 00:01 x2. ROWTIME minute 00:02:
  // event minute 00:02 x1. Within a window rows come in encoded-key order, which for these two
  // TIMESTAMP keys (little-endian microseconds, low bytes 00 40 vs 00 c7) is 00:00 then 00:01.
  CHECK(h.Text("BY_EVENT_TIME") ==
        std::vector<std::string>{
            "2026-01-01 00:01:00.000 | 2026-01-01 00:00:00.000 | 2026-01-01 00:00:00.000 | 3",
            "2026-01-01 00:02:00.000 | 2026-01-01 00:01:00.000 | 2026-01-01 00:00:00.000 | 2",
            "2026-01-01 00:02:00.000 | 2026-01-01 00:01:00.000 | 2026-01-01 00:01:00.000 | 2",
            "2026-01-01 00:03:00.000 | 2026-01-01 00:02:00.000 | 2026-01-01 00:02:00.000 | 1"});
  CHECK(h.Text("error_stream").empty());
}

// ---------------------------------------------------------------------------------------------
// Regressions: groups and the reference-table hash index compared the encoded bytes of a value
// (type, scale, payload), where SQL's = compares numbers: -0.0 = 0.0, and 1.50 = 1.5 across
// DECIMAL scales. Keys are now normalised before they are encoded.

TEST_CASE("Golden: GROUP BY a DOUBLE puts 0.0 and -0.0 in one group", "[sql][golden]") {
  Harness h;
  REQUIRE(h.Create(R"(
    CREATE STREAM "S" (x DOUBLE, n BIGINT);
    CREATE PUMP "P" AS INSERT INTO "S"
      SELECT STREAM x, COUNT(*) FROM SOURCE_SQL_STREAM_001
      GROUP BY x, STEP(ROWTIME BY INTERVAL '1' MINUTE);)",
                   {{"X", Double(), "$.x"}}, {"S"})
              .ok());
  h.Put(R"({"x":0.0})", absl::Seconds(1));
  h.Put(R"({"x":-0.0})", absl::Seconds(2));
  h.Put(R"({"x":0})", absl::Seconds(3));
  REQUIRE(h.app->Finish().ok());
  // 0.0 = -0.0 in SQL (and in SQLite's GROUP BY): one group of 3. The value shown is the
  // group's first.
  CHECK(h.Text("S") == std::vector<std::string>{"2026-01-01 00:01:00.000 | 0 | 3"});
}

// A reference table with a DECIMAL(10,1) key and a DOUBLE key, written to a temporary file.
struct KeyTable {
  std::string path;
  ReferenceTable ref;
  KeyTable() {
    const char* tmp = std::getenv("TMPDIR");
    path = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/rill_sql_golden_keys_",
                        ::getpid(), ".csv");
    std::ofstream f(path);
    f << "1.5,0,one-and-a-half\n2,0.5,two\n";
    ref.name = "T";
    ref.path = path;
    ref.format.type = RecordFormatType::kCsv;
    ref.format.columns = {
        {"D", Decimal(10, 1), ""}, {"X", Double(), ""}, {"NAME", Varchar(16), ""}};
  }
  ~KeyTable() { std::remove(path.c_str()); }
  KeyTable(const KeyTable&) = delete;
  KeyTable& operator=(const KeyTable&) = delete;
};

std::vector<std::string> JoinOn(const std::string& on) {
  KeyTable table;
  Harness h;
  const absl::Status created =
      h.Create(absl::StrCat(R"(
    CREATE STREAM "S" (d DECIMAL(10,2), x DOUBLE, name VARCHAR(16));
    CREATE PUMP "P" AS INSERT INTO "S"
      SELECT STREAM s.d, s.x, t.name FROM SOURCE_SQL_STREAM_001 AS s
      LEFT OUTER JOIN T AS t ON )",
                            on, ";"),
               {{"D", Decimal(10, 2), "$.d"}, {"X", Double(), "$.x"}}, {"S"}, {table.ref});
  if (!created.ok()) return {created.ToString()};
  h.Put(R"({"d":1.50,"x":-0.0})", absl::Seconds(1));
  h.Put(R"({"d":2.00,"x":0.5})", absl::Seconds(2));
  if (!h.app->Finish().ok()) return {"Finish failed"};
  return h.Text("S");
}

TEST_CASE("Golden: a reference-table join matches equal DECIMAL keys of different scales",
          "[sql][golden]") {
  // 1.50 (DECIMAL(10,2)) = 1.5 (DECIMAL(10,1)) and 2.00 = 2.0. The same ON condition evaluated
  // row by row (a scan: the AND keeps the planner from building a hash index) matches; the
  // hash lookup must agree with it.
  const std::vector<std::string> want = {"2026-01-01 00:00:01.000 | 1.50 | -0 | one-and-a-half",
                                         "2026-01-01 00:00:02.000 | 2.00 | 0.5 | two"};
  CHECK(JoinOn("t.d = s.d AND TRUE") == want);  // scan
  CHECK(JoinOn("s.d = t.d") == want);           // hash lookup
}

TEST_CASE("Golden: a reference-table join matches a -0.0 key with 0.0", "[sql][golden]") {
  const std::vector<std::string> want = {"2026-01-01 00:00:01.000 | 1.50 | -0 | one-and-a-half",
                                         "2026-01-01 00:00:02.000 | 2.00 | 0.5 | two"};
  CHECK(JoinOn("t.x = s.x AND TRUE") == want);  // scan
  CHECK(JoinOn("s.x = t.x") == want);           // hash lookup
}

}  // namespace
}  // namespace rill::sql
