// Cross-checks rill::sql's tumbling and sliding aggregates against SQLite on the same generated
// rows: a tumbling window of ROWTIME is SQLite's GROUP BY ts_ms / size, a RANGE INTERVAL
// PRECEDING window is SQLite's RANGE BETWEEN n PRECEDING AND CURRENT ROW.
#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "rill/base/clock.h"
#include "rill/sql/application.h"

namespace rill::sql {
namespace {

// 2026-01-01 00:00:00 UTC: a multiple of 5 minutes since the epoch.
constexpr int64_t kStartMs = int64_t{1767225600} * 1000;

struct GenRow {
  std::optional<std::string> k;
  std::optional<int64_t> v;
  int64_t ts_ms = 0;  // arrival time
};

// n rows over `keys` keys ("k0" ...) plus, when null_keys, a JSON null key about 1 row in 26;
// v in 0..1000 or (1 in 10) null; arrival times advance by min_step..200 ms. With null_keys the
// last key's v is always null (its SUM, MIN and MAX are NULL), and 1 row in 2000 has the rare
// key "rare" (absent from most windows).
std::vector<GenRow> Generate(uint64_t seed, int n, int keys, bool null_keys, int min_step) {
  std::mt19937_64 rng(seed);
  std::vector<GenRow> rows;
  rows.reserve(n);
  int64_t t = kStartMs;
  for (int i = 0; i < n; ++i) {
    GenRow r;
    const int key = static_cast<int>(rng() % static_cast<uint64_t>(keys + (null_keys ? 2 : 0)));
    if (key < keys) r.k = absl::StrCat("k", key);
    if (null_keys && rng() % 2000 == 0) r.k = "rare";
    if (rng() % 10 != 0 && !(null_keys && key == keys - 1)) {
      r.v = static_cast<int64_t>(rng() % 1001);
    }
    t += min_step + static_cast<int64_t>(rng() % static_cast<uint64_t>(201 - min_step));
    r.ts_ms = t;
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string Json(const GenRow& r) {
  return absl::StrCat(R"({"k":)", r.k ? absl::StrCat("\"", *r.k, "\"") : "null", R"(,"v":)",
                      r.v ? absl::StrCat(*r.v) : "null", R"(,"ts":)", r.ts_ms, "}");
}

// Runs `sql` over `rows` to completion and returns the rows of stream `out`.
std::vector<Row> RunRill(const std::string& sql, const std::vector<GenRow>& rows,
                         const std::string& out, std::vector<std::string>* errors) {
  SimulatedClock clock(absl::FromUnixMillis(kStartMs));
  ApplicationOptions options;
  options.sql = sql;
  options.clock = &clock;
  Input input;
  input.format.columns = {{"K", {SqlType::kVarchar, 8, 0, 0}, "$.k"},
                          {"V", {SqlType::kInteger, 0, 0, 0}, "$.v"},
                          {"TS", {SqlType::kTimestamp, 0, 0, 0}, "$.ts"}};
  auto source = std::make_unique<MemorySource>(1024);
  for (const GenRow& r : rows) source->Add(Json(r), absl::FromUnixMillis(r.ts_ms));
  input.source = std::move(source);
  options.inputs.push_back(std::move(input));
  std::vector<Row> result;
  Output o;
  o.stream = out;
  o.callback = [&result](const OutputRow& r) {
    result.push_back(r.row);
    return absl::OkStatus();
  };
  options.outputs.push_back(std::move(o));
  Output e;
  e.stream = "error_stream";
  e.callback = [errors](const OutputRow& r) {
    std::vector<std::string> parts;
    for (const Value& v : r.row.values) parts.push_back(v.ToString());
    errors->push_back(absl::StrJoin(parts, " | "));
    return absl::OkStatus();
  };
  options.outputs.push_back(std::move(e));
  absl::StatusOr<std::unique_ptr<Application>> app = Application::Create(std::move(options));
  REQUIRE(app.ok());
  REQUIRE((*app)->Finish().ok());
  return result;
}

// An in-memory SQLite database holding t(id, k, v, ts_ms).
class Sqlite {
 public:
  explicit Sqlite(const std::vector<GenRow>& rows) {
    REQUIRE(sqlite3_open(":memory:", &db_) == SQLITE_OK);
    Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v INTEGER, ts_ms INTEGER NOT NULL)");
    Exec("BEGIN");
    sqlite3_stmt* insert = nullptr;
    REQUIRE(sqlite3_prepare_v2(db_, "INSERT INTO t (id, k, v, ts_ms) VALUES (?, ?, ?, ?)", -1,
                               &insert, nullptr) == SQLITE_OK);
    for (size_t i = 0; i < rows.size(); ++i) {
      const GenRow& r = rows[i];
      sqlite3_bind_int64(insert, 1, static_cast<sqlite3_int64>(i));
      if (r.k) {
        sqlite3_bind_text(insert, 2, r.k->data(), static_cast<int>(r.k->size()), SQLITE_TRANSIENT);
      } else {
        sqlite3_bind_null(insert, 2);
      }
      if (r.v) {
        sqlite3_bind_int64(insert, 3, *r.v);
      } else {
        sqlite3_bind_null(insert, 3);
      }
      sqlite3_bind_int64(insert, 4, r.ts_ms);
      REQUIRE(sqlite3_step(insert) == SQLITE_DONE);
      sqlite3_reset(insert);
    }
    sqlite3_finalize(insert);
    Exec("COMMIT");
  }
  ~Sqlite() { sqlite3_close(db_); }
  Sqlite(const Sqlite&) = delete;
  Sqlite& operator=(const Sqlite&) = delete;

  void Exec(const char* sql) {
    char* error = nullptr;
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
    INFO((error != nullptr ? error : ""));
    sqlite3_free(error);
    REQUIRE(rc == SQLITE_OK);
  }

  // Each result row's columns as text ("NULL" for NULL; integers in decimal; reals with %.17g).
  std::vector<std::vector<std::string>> Query(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    const int prepared = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
    INFO(sqlite3_errmsg(db_));
    REQUIRE(prepared == SQLITE_OK);
    std::vector<std::vector<std::string>> out;
    int rc = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_NULL:
            row.push_back("NULL");
            break;
          case SQLITE_INTEGER:
            row.push_back(absl::StrCat(sqlite3_column_int64(stmt, c)));
            break;
          case SQLITE_FLOAT:
            row.push_back(absl::StrFormat("%.17g", sqlite3_column_double(stmt, c)));
            break;
          default:
            row.push_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, c)));
            break;
        }
      }
      out.push_back(std::move(row));
    }
    sqlite3_finalize(stmt);
    REQUIRE(rc == SQLITE_DONE);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

// A rill value as the SQLite side writes it: NULL, integers in decimal, VARCHAR as is, a
// TIMESTAMP window start as its 5-minute bucket number (ms / 300000).
std::string Cell(const Value& v) {
  if (v.null) return "NULL";
  switch (v.type) {
    case SqlType::kTimestamp:
      return absl::StrCat(v.i / 1000 / 300000);
    case SqlType::kVarchar:
      return v.s;
    case SqlType::kDouble:
      return absl::StrFormat("%.17g", v.d);
    default:
      return absl::StrCat(v.i);
  }
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

constexpr uint64_t kSeed = 0x5eed2026;
constexpr int kRows = 20000;

TEST_CASE("SQLite cross-check: COUNT, SUM, MIN and MAX per key per 5-minute window",
          "[sql][sqlite]") {
  const std::vector<GenRow> rows = Generate(kSeed, kRows, 50, true, 0);
  std::vector<std::string> errors;
  const std::vector<Row> got = RunRill(R"(
    CREATE STREAM "AGG" (k VARCHAR(8), win TIMESTAMP, n BIGINT, nv BIGINT, total BIGINT,
                         lo INTEGER, hi INTEGER);
    CREATE PUMP "P" AS INSERT INTO "AGG"
      SELECT STREAM k, STEP(ROWTIME BY INTERVAL '5' MINUTE), COUNT(*), COUNT(v), SUM(v), MIN(v),
             MAX(v)
      FROM SOURCE_SQL_STREAM_001
      GROUP BY k, STEP(ROWTIME BY INTERVAL '5' MINUTE);)",
                                       rows, "AGG", &errors);
  CHECK(errors.empty());
  Sqlite db(rows);
  const auto want = db.Query(
      "SELECT k, ts_ms / 300000, COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v) FROM t "
      "GROUP BY k, ts_ms / 300000");
  std::vector<std::string> a, b;
  for (const Row& r : got) {
    std::vector<std::string> cells;
    for (const Value& v : r.values) cells.push_back(Cell(v));
    a.push_back(absl::StrJoin(cells, "|"));
    // ROWTIME is the window's end.
    CHECK(r.rowtime == r.values[1].time() + absl::Minutes(5));
  }
  for (const auto& r : want) b.push_back(absl::StrJoin(r, "|"));
  // The run spans about 2000 s: 7 windows of 5 minutes, 51 groups (50 keys and NULL) in most.
  CHECK(b.size() > 300);
  size_t null_groups = 0, null_sums = 0;
  for (const auto& r : want) {
    null_groups += r[0] == "NULL";
    null_sums += r[4] == "NULL";
  }
  CHECK(null_groups >= 7);
  CHECK(null_sums >= 7);  // k49's
  CHECK(Sorted(a) == Sorted(b));
}

TEST_CASE("SQLite cross-check: AVG per key per 5-minute window", "[sql][sqlite]") {
  const std::vector<GenRow> rows = Generate(kSeed, kRows, 50, true, 0);
  std::vector<std::string> errors;
  const std::vector<Row> got = RunRill(R"(
    CREATE STREAM "AGG" (k VARCHAR(8), win TIMESTAMP, a DOUBLE);
    CREATE PUMP "P" AS INSERT INTO "AGG"
      SELECT STREAM k, STEP(ROWTIME BY INTERVAL '5' MINUTE), AVG(v)
      FROM SOURCE_SQL_STREAM_001
      GROUP BY k, STEP(ROWTIME BY INTERVAL '5' MINUTE);)",
                                       rows, "AGG", &errors);
  CHECK(errors.empty());
  Sqlite db(rows);
  const auto want = db.Query("SELECT k, ts_ms / 300000, AVG(v) FROM t GROUP BY k, ts_ms / 300000");
  std::map<std::string, std::string> expected;  // "k|bucket" -> AVG text
  for (const auto& r : want) expected[r[0] + "|" + r[1]] = r[2];
  REQUIRE(got.size() == want.size());
  for (const Row& r : got) {
    const std::string group = Cell(r.values[0]) + "|" + Cell(r.values[1]);
    INFO(group);
    REQUIRE(expected.count(group) == 1);
    const std::string& e = expected[group];
    if (e == "NULL" || r.values[2].null) {
      CHECK(r.values[2].null);
      CHECK(e == "NULL");
      continue;
    }
    const double x = r.values[2].d, y = std::stod(e);
    CHECK(std::abs(x - y) <= 1e-9 * std::max(std::abs(x), std::abs(y)));
  }
}

TEST_CASE("SQLite cross-check: WHERE and HAVING per key per 5-minute window", "[sql][sqlite]") {
  const std::vector<GenRow> rows = Generate(kSeed, kRows, 50, true, 0);
  std::vector<std::string> errors;
  const std::vector<Row> got = RunRill(R"(
    CREATE STREAM "AGG" (k VARCHAR(8), win TIMESTAMP, n BIGINT, total BIGINT);
    CREATE PUMP "P" AS INSERT INTO "AGG"
      SELECT STREAM k, STEP(ROWTIME BY INTERVAL '5' MINUTE), COUNT(*), SUM(v)
      FROM SOURCE_SQL_STREAM_001
      WHERE v > 500
      GROUP BY k, STEP(ROWTIME BY INTERVAL '5' MINUTE)
      HAVING COUNT(*) >= 3;)",
                                       rows, "AGG", &errors);
  CHECK(errors.empty());
  Sqlite db(rows);
  const auto want = db.Query(
      "SELECT k, ts_ms / 300000, COUNT(*), SUM(v) FROM t WHERE v > 500 "
      "GROUP BY k, ts_ms / 300000 HAVING COUNT(*) >= 3");
  std::vector<std::string> a, b;
  for (const Row& r : got) {
    std::vector<std::string> cells;
    for (const Value& v : r.values) cells.push_back(Cell(v));
    a.push_back(absl::StrJoin(cells, "|"));
  }
  for (const auto& r : want) b.push_back(absl::StrJoin(r, "|"));
  CHECK(b.size() > 100);
  CHECK(Sorted(a) == Sorted(b));
}

TEST_CASE("SQLite cross-check: GROUP BY expressions that may be NULL", "[sql][sqlite]") {
  // Keys computed per row (UPPER of a maybe-NULL VARCHAR, integer division of a maybe-NULL v):
  // every NULL result must land in the one NULL group, whatever the row before it held.
  const std::vector<GenRow> rows = Generate(kSeed + 4, kRows, 50, true, 0);
  std::vector<std::string> errors;
  const std::vector<Row> got = RunRill(R"(
    CREATE STREAM "AGG" (uk VARCHAR(8), bucket INTEGER, win TIMESTAMP, n BIGINT, total BIGINT);
    CREATE PUMP "P" AS INSERT INTO "AGG"
      SELECT STREAM UPPER(k), v / 100, STEP(ROWTIME BY INTERVAL '5' MINUTE), COUNT(*), SUM(v)
      FROM SOURCE_SQL_STREAM_001
      GROUP BY UPPER(k), v / 100, STEP(ROWTIME BY INTERVAL '5' MINUTE);)",
                                       rows, "AGG", &errors);
  CHECK(errors.empty());
  Sqlite db(rows);
  const auto want = db.Query(
      "SELECT upper(k), v / 100, ts_ms / 300000, COUNT(*), SUM(v) FROM t "
      "GROUP BY upper(k), v / 100, ts_ms / 300000");
  std::vector<std::string> a, b;
  for (const Row& r : got) {
    std::vector<std::string> cells;
    for (const Value& v : r.values) cells.push_back(Cell(v));
    a.push_back(absl::StrJoin(cells, "|"));
  }
  for (const auto& r : want) b.push_back(absl::StrJoin(r, "|"));
  CHECK(b.size() > 1000);
  CHECK(Sorted(a) == Sorted(b));
}

// Runs the sliding query `rill_over` and SQLite's `sqlite_over` (the same frame spelled for
// SQLite) over `rows`, selecting k, v, SUM, COUNT(*), COUNT(v), MIN, MAX and AVG, and compares
// them row by row (AVG within 1e-9 relative).
void CheckSliding(const std::vector<GenRow>& rows, const std::string& rill_over,
                  const std::string& sqlite_over) {
  std::vector<std::string> errors;
  const std::string w = absl::StrCat("OVER (", rill_over, ")");
  const std::vector<Row> got =
      RunRill(absl::StrCat(R"(
    CREATE STREAM "SLIDING" (k VARCHAR(8), v INTEGER, total BIGINT, n BIGINT, nv BIGINT,
                             lo INTEGER, hi INTEGER, a DOUBLE);
    CREATE PUMP "P" AS INSERT INTO "SLIDING"
      SELECT STREAM k, v, SUM(v) )",
                           w, ", COUNT(*) ", w, ", COUNT(v) ", w, ", MIN(v) ", w, ", MAX(v) ", w,
                           ", AVG(v) ", w, " FROM SOURCE_SQL_STREAM_001;"),
              rows, "SLIDING", &errors);
  CHECK(errors.empty());
  Sqlite db(rows);
  const std::string ws = absl::StrCat("OVER (", sqlite_over, ")");
  const auto want = db.Query(absl::StrCat("SELECT k, v, SUM(v) ", ws, ", COUNT(*) ", ws,
                                          ", COUNT(v) ", ws, ", MIN(v) ", ws, ", MAX(v) ", ws,
                                          ", AVG(v) ", ws, " FROM t ORDER BY id")
                                 .c_str());
  REQUIRE(got.size() == rows.size());
  REQUIRE(want.size() == rows.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<std::string> cells;
    for (size_t c = 0; c + 1 < got[i].values.size(); ++c) cells.push_back(Cell(got[i].values[c]));
    std::vector<std::string> expected(want[i].begin(), want[i].end() - 1);
    bool same = cells == expected && got[i].rowtime == absl::FromUnixMillis(rows[i].ts_ms);
    const Value& avg = got[i].values.back();
    const std::string& want_avg = want[i].back();
    if (avg.null || want_avg == "NULL") {
      same = same && avg.null && want_avg == "NULL";
    } else {
      const double x = avg.d, y = std::stod(want_avg);
      same = same && std::abs(x - y) <= 1e-9 * std::max(std::abs(x), std::abs(y));
    }
    if (!same && ++mismatches <= 5) {
      FAIL_CHECK("row " << i << ": rill " << absl::StrJoin(cells, "|") << "|" << avg.ToString()
                        << ", SQLite " << absl::StrJoin(want[i], "|"));
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("SQLite cross-check: SUM over a 10-second RANGE per key, row by row", "[sql][sqlite]") {
  // Strictly increasing arrival times (steps of 1..200 ms), so ROWTIMEs never tie.
  const std::vector<GenRow> rows = Generate(kSeed + 1, 2000, 3, false, 1);
  std::vector<std::string> errors;
  const std::vector<Row> got = RunRill(R"(
    CREATE STREAM "SLIDING" (k VARCHAR(8), v INTEGER, total BIGINT);
    CREATE PUMP "P" AS INSERT INTO "SLIDING"
      SELECT STREAM k, v, SUM(v) OVER (PARTITION BY k RANGE INTERVAL '10' SECOND PRECEDING)
      FROM SOURCE_SQL_STREAM_001;)",
                                       rows, "SLIDING", &errors);
  CHECK(errors.empty());
  Sqlite db(rows);
  const auto want = db.Query(
      "SELECT k, v, SUM(v) OVER (PARTITION BY k ORDER BY ts_ms "
      "RANGE BETWEEN 10000 PRECEDING AND CURRENT ROW) FROM t ORDER BY id");
  REQUIRE(got.size() == rows.size());
  REQUIRE(want.size() == rows.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<std::string> cells;
    for (const Value& v : got[i].values) cells.push_back(Cell(v));
    CHECK(got[i].rowtime == absl::FromUnixMillis(rows[i].ts_ms));
    if (cells != want[i] && ++mismatches <= 5) {
      FAIL_CHECK("row " << i << ": rill " << absl::StrJoin(cells, "|") << ", SQLite "
                        << absl::StrJoin(want[i], "|"));
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("SQLite cross-check: COUNT, MIN, MAX and AVG over a RANGE with a NULL partition",
          "[sql][sqlite]") {
  // 3 keys and a NULL key (one partition in both engines), strictly increasing arrival times.
  const std::vector<GenRow> rows = Generate(kSeed + 2, 2000, 3, true, 1);
  CheckSliding(rows, "PARTITION BY k RANGE INTERVAL '10' SECOND PRECEDING",
               "PARTITION BY k ORDER BY ts_ms RANGE BETWEEN 10000 PRECEDING AND CURRENT ROW");
  // A short range, so that MIN and MAX often leave the window.
  CheckSliding(rows, "PARTITION BY k RANGE INTERVAL '1' SECOND PRECEDING",
               "PARTITION BY k ORDER BY ts_ms RANGE BETWEEN 1000 PRECEDING AND CURRENT ROW");
}

TEST_CASE("SQLite cross-check: aggregates over ROWS n PRECEDING, row by row", "[sql][sqlite]") {
  const std::vector<GenRow> rows = Generate(kSeed + 3, 2000, 3, true, 1);
  CheckSliding(rows, "PARTITION BY k ROWS 4 PRECEDING",
               "PARTITION BY k ORDER BY ts_ms ROWS BETWEEN 4 PRECEDING AND CURRENT ROW");
  CheckSliding(rows, "ROWS 10 PRECEDING",
               "ORDER BY ts_ms ROWS BETWEEN 10 PRECEDING AND CURRENT ROW");
}

}  // namespace
}  // namespace rill::sql
