#include "sql/parser.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rill/base/error.h"
#include "sql/ast.h"

namespace rill::sql {
namespace {

std::string Sv(std::string_view s) { return std::string(s); }

std::string UnitName(ast::TimeUnit unit) {
  switch (unit) {
    case ast::TimeUnit::kMillisecond:
      return "MILLISECOND";
    case ast::TimeUnit::kSecond:
      return "SECOND";
    case ast::TimeUnit::kMinute:
      return "MINUTE";
    case ast::TimeUnit::kHour:
      return "HOUR";
    case ast::TimeUnit::kDay:
      return "DAY";
    case ast::TimeUnit::kWeek:
      return "WEEK";
    case ast::TimeUnit::kMonth:
      return "MONTH";
    case ast::TimeUnit::kYear:
      return "YEAR";
  }
  return "?";
}

// Literals: INTEGER as digits, VARCHAR quoted, untyped NULL as NULL, others TYPE:value (INTERVAL
// in microseconds).
std::string LiteralText(const Value& v) {
  if (v.type == SqlType::kNull) return "NULL";
  if (v.null) return absl::StrCat("NULL:", Sv(SqlTypeName(v.type)));
  if (v.type == SqlType::kInteger) return v.ToString();
  if (v.type == SqlType::kVarchar) return absl::StrCat("'", v.s, "'");
  if (v.type == SqlType::kInterval) return absl::StrCat("INTERVAL:", v.i);
  return absl::StrCat(Sv(SqlTypeName(v.type)), ":", v.ToString());
}

std::string Sexp(const ast::Expr& e);
std::string WindowText(const ast::WindowSpec& w);

std::string Args(const ast::Expr& e, size_t from = 0) {
  std::string out;
  for (size_t i = from; i < e.args.size(); ++i) absl::StrAppend(&out, " ", Sexp(*e.args[i]));
  return out;
}

std::string Sexp(const ast::Expr& e) {
  switch (e.kind) {
    case ast::ExprKind::kLiteral:
      return LiteralText(e.literal);
    case ast::ExprKind::kColumn:
      return e.qualifier.empty() ? absl::StrCat("(col ", e.name, ")")
                                 : absl::StrCat("(col ", e.qualifier, " ", e.name, ")");
    case ast::ExprKind::kStar:
      return e.qualifier.empty() ? "*" : absl::StrCat("(* ", e.qualifier, ")");
    case ast::ExprKind::kUnary:
    case ast::ExprKind::kBinary:
      return absl::StrCat("(", e.op, Args(e), ")");
    case ast::ExprKind::kIsNull:
      return absl::StrCat(e.negated ? "(is-not-null" : "(is-null", Args(e), ")");
    case ast::ExprKind::kBetween:
      return absl::StrCat(e.negated ? "(not-between" : "(between", Args(e), ")");
    case ast::ExprKind::kIn:
      return absl::StrCat(e.negated ? "(not-in" : "(in", Args(e), ")");
    case ast::ExprKind::kLike:
      return absl::StrCat(e.negated ? "(not-like" : "(like", Args(e), ")");
    case ast::ExprKind::kFunction: {
      std::string out = absl::StrCat("(", e.name);
      if (e.distinct) out += " distinct";
      if (e.star) out += " *";
      if (e.unit) absl::StrAppend(&out, " unit=", UnitName(*e.unit));
      if (e.name == "TRIM") {
        out += e.trim_side == ast::TrimSide::kLeading    ? " leading"
               : e.trim_side == ast::TrimSide::kTrailing ? " trailing"
                                                         : "";
      }
      out += Args(e);
      if (!e.over.empty()) absl::StrAppend(&out, " over=", e.over);
      if (e.over_window) absl::StrAppend(&out, " over=", WindowText(*e.over_window));
      return out + ")";
    }
    case ast::ExprKind::kCase: {
      std::string out = "(case";
      size_t i = 0;
      if (e.has_operand) absl::StrAppend(&out, " op:", Sexp(*e.args[i++]));
      const size_t pairs_end = e.args.size() - (e.has_else ? 1 : 0);
      for (; i + 1 < pairs_end + 1 && i < pairs_end; i += 2) {
        absl::StrAppend(&out, " (when ", Sexp(*e.args[i]), " ", Sexp(*e.args[i + 1]), ")");
      }
      if (e.has_else) absl::StrAppend(&out, " else:", Sexp(*e.args.back()));
      return out + ")";
    }
    case ast::ExprKind::kCast:
      return absl::StrCat("(cast ", Sexp(*e.args[0]), " ", ColumnTypeName(e.cast_type), ")");
    case ast::ExprKind::kCursor:
      return absl::StrCat("(cursor ", e.cursor->from.name, ")");
  }
  return "?";
}

std::string WindowText(const ast::WindowSpec& w) {
  std::string out = "(window";
  if (!w.name.empty()) absl::StrAppend(&out, " ", w.name);
  if (!w.partition_by.empty()) {
    out += " partition";
    for (const ast::ExprPtr& e : w.partition_by) absl::StrAppend(&out, " ", Sexp(*e));
  }
  if (w.range_micros) absl::StrAppend(&out, " range=", *w.range_micros);
  if (w.rows) absl::StrAppend(&out, " rows=", *w.rows);
  return out + ")";
}

// The expression's S-expression, or "error: <message>".
std::string Expr(std::string_view text) {
  absl::StatusOr<ast::ExprPtr> e = ParseExpression(text);
  if (!e.ok()) return absl::StrCat("error: ", std::string(e.status().message()));
  return Sexp(**e);
}

// The error message of a script that must not parse.
std::string ScriptError(std::string_view sql) {
  absl::StatusOr<ast::Script> script = ParseScript(sql);
  if (script.ok()) return "parsed";
  CHECK(GetErrorCode(script.status()) == ErrorCode::kCodeValidation);
  return std::string(script.status().message());
}

// The one pump's SELECT of `sql` (which must parse).
ast::Script MustParse(std::string_view sql) {
  absl::StatusOr<ast::Script> script = ParseScript(sql);
  INFO(std::string(script.status().message()));
  REQUIRE(script.ok());
  return std::move(*script);
}

std::string PumpOf(const std::string& select) {
  return "CREATE PUMP p AS INSERT INTO out " + select;
}

ast::Select SelectOf(const std::string& select) {
  ast::Script script = MustParse(PumpOf(select));
  REQUIRE(script.statements.size() == 1);
  REQUIRE(script.statements[0].kind == ast::Statement::Kind::kCreatePump);
  return std::move(script.statements[0].create_pump.select);
}

std::string Items(const ast::Select& s) {
  std::vector<std::string> items;
  for (const ast::SelectItem& item : s.items) {
    items.push_back(item.alias.empty() ? Sexp(*item.expr)
                                       : absl::StrCat(Sexp(*item.expr), " AS ", item.alias));
  }
  return absl::StrJoin(items, ", ");
}

constexpr std::string_view kKdaExample =
    R"(CREATE OR REPLACE STREAM "DEST_SQL_STREAM" ("win_start" TIMESTAMP, "k" VARCHAR(64), "cnt" BIGINT);
CREATE OR REPLACE PUMP "COUNT_PUMP" AS
  INSERT INTO "DEST_SQL_STREAM"
  SELECT STREAM STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '5' MINUTE), "k", COUNT(*)
  FROM "SOURCE_SQL_STREAM_001"
  GROUP BY "k", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '5' MINUTE);
)";

TEST_CASE("Parser reads the KDA tumbling window example", "[sql][parser]") {
  const ast::Script script = MustParse(kKdaExample);
  REQUIRE(script.statements.size() == 2);

  const ast::Statement& first = script.statements[0];
  REQUIRE(first.kind == ast::Statement::Kind::kCreateStream);
  const ast::CreateStream& stream = first.create_stream;
  CHECK(stream.or_replace);
  CHECK(stream.name == "DEST_SQL_STREAM");
  CHECK(stream.pos.line == 1);
  CHECK(stream.pos.column == 1);
  REQUIRE(stream.columns.size() == 3);
  CHECK(stream.columns[0].name == "win_start");
  CHECK(stream.columns[0].type == ColumnType{SqlType::kTimestamp});
  CHECK(stream.columns[1].name == "k");
  CHECK(stream.columns[1].type == ColumnType{SqlType::kVarchar, 64});
  CHECK(stream.columns[2].name == "cnt");
  CHECK(stream.columns[2].type == ColumnType{SqlType::kBigint});
  CHECK(stream.columns[1].pos.line == 1);
  CHECK(stream.columns[1].pos.column == 68);

  const ast::Statement& second = script.statements[1];
  REQUIRE(second.kind == ast::Statement::Kind::kCreatePump);
  const ast::CreatePump& pump = second.create_pump;
  CHECK(pump.or_replace);
  CHECK(pump.name == "COUNT_PUMP");
  CHECK(pump.target == "DEST_SQL_STREAM");
  CHECK(pump.target_columns.empty());
  CHECK(pump.pos.line == 2);
  CHECK(pump.pos.column == 1);

  const ast::Select& select = pump.select;
  CHECK(select.stream);
  CHECK_FALSE(select.distinct);
  CHECK(select.pos.line == 4);
  CHECK(select.pos.column == 3);
  CHECK(Items(select) ==
        "(STEP (col SOURCE_SQL_STREAM_001 ROWTIME) INTERVAL:300000000), (col k), (COUNT *)");
  CHECK(select.from.kind == ast::TableRef::Kind::kNamed);
  CHECK(select.from.name == "SOURCE_SQL_STREAM_001");
  CHECK(select.from.alias.empty());
  CHECK(select.from.over == nullptr);
  CHECK(select.joins.empty());
  CHECK(select.where == nullptr);
  REQUIRE(select.group_by.size() == 2);
  CHECK(Sexp(*select.group_by[0]) == "(col k)");
  CHECK(Sexp(*select.group_by[1]) ==
        "(STEP (col SOURCE_SQL_STREAM_001 ROWTIME) INTERVAL:300000000)");
  CHECK(select.group_by[1]->pos.line == 6);
  CHECK(select.group_by[1]->pos.column == 17);
  // STEP's first argument: "SOURCE_SQL_STREAM_001".ROWTIME starts right after STEP(.
  CHECK(select.items[0].expr->args[0]->pos.line == 4);
  CHECK(select.items[0].expr->args[0]->pos.column == 22);
  CHECK(select.stagger == nullptr);
  CHECK(select.having == nullptr);
  CHECK(select.windows.empty());
}

TEST_CASE("Parser folds unquoted names to upper case and keeps quoted ones", "[sql][parser]") {
  const ast::Script script =
      MustParse("create stream Orders (orderId integer, \"orderId\" int, \"a\"\"b\" bigint)");
  const ast::CreateStream& s = script.statements[0].create_stream;
  CHECK_FALSE(s.or_replace);
  CHECK(s.name == "ORDERS");
  REQUIRE(s.columns.size() == 3);
  CHECK(s.columns[0].name == "ORDERID");
  CHECK(s.columns[1].name == "orderId");
  CHECK(s.columns[2].name == "a\"b");
  CHECK(Expr("s.price") == "(col S PRICE)");
  CHECK(Expr("s.\"ticker\"") == "(col S ticker)");
  CHECK(Expr("\"Src\".rowtime") == "(col Src ROWTIME)");
  CHECK(Expr("my_col$1") == "(col MY_COL$1)");
  CHECK(Expr("lower(x)") == "(LOWER (col X))");
  CHECK(Expr("\"myFunc\"(x)") == "(myFunc (col X))");
  // Reserved words need quotes; non-reserved keywords are names where no keyword is expected.
  CHECK(Expr("\"FROM\" + \"select\"") == "(+ (col FROM) (col select))");
  CHECK(Expr("rowtime + stream + timestamp + stagger + floor + step + minute") ==
        "(+ (+ (+ (+ (+ (+ (col ROWTIME) (col STREAM)) (col TIMESTAMP)) (col STAGGER)) "
        "(col FLOOR)) (col STEP)) (col MINUTE))");
}

TEST_CASE("Parser applies operator precedence and associativity", "[sql][parser]") {
  CHECK(Expr("1 + 2 * 3") == "(+ 1 (* 2 3))");
  CHECK(Expr("(1 + 2) * 3") == "(* (+ 1 2) 3)");
  CHECK(Expr("1 - 2 - 3") == "(- (- 1 2) 3)");
  CHECK(Expr("8 / 4 % 3 * 2") == "(* (% (/ 8 4) 3) 2)");
  CHECK(Expr("NOT a = b AND c OR d") == "(OR (AND (NOT (= (col A) (col B))) (col C)) (col D))");
  CHECK(Expr("a OR b AND c") == "(OR (col A) (AND (col B) (col C)))");
  CHECK(Expr("NOT NOT a") == "(NOT (NOT (col A)))");
  CHECK(Expr("-a * -2") == "(* (- (col A)) (- 2))");
  CHECK(Expr("+a - -b") == "(- (+ (col A)) (- (col B)))");
  CHECK(Expr("a || b || 'c'") == "(|| (|| (col A) (col B)) 'c')");
  CHECK(Expr("a || b = c + 1") == "(= (|| (col A) (col B)) (+ (col C) 1))");
  CHECK(Expr("a <> b") == "(<> (col A) (col B))");
  CHECK(Expr("a != b") == "(<> (col A) (col B))");
  CHECK(Expr("a<=b") == "(<= (col A) (col B))");
  CHECK(Expr("a >= b") == "(>= (col A) (col B))");
  CHECK(Expr("a < b") == "(< (col A) (col B))");
  CHECK(Expr("a > b") == "(> (col A) (col B))");
  CHECK(Expr("a + 1 < b * 2 AND NOT c IS NULL") ==
        "(AND (< (+ (col A) 1) (* (col B) 2)) (NOT (is-null (col C))))");
}

TEST_CASE("Parser reads literals with their types", "[sql][parser]") {
  CHECK(Expr("12") == "12");
  CHECK(Expr("2147483647") == "2147483647");
  CHECK(Expr("2147483648") == "BIGINT:2147483648");
  CHECK(Expr("9223372036854775807") == "BIGINT:9223372036854775807");
  CHECK(Expr("-5") == "(- 5)");
  CHECK(Expr("1.50") == "DECIMAL:1.50");
  CHECK(Expr("0.005") == "DECIMAL:0.005");
  CHECK(Expr(".5") == "DECIMAL:0.5");
  CHECK(Expr("1234567890.12345678") == "DECIMAL:1234567890.12345678");
  CHECK(Expr("1234567890.123456789") == "DOUBLE:1234567890.1234567");
  CHECK(Expr("1.5E3") == "DOUBLE:1500");
  CHECK(Expr("2e-1") == "DOUBLE:0.2");
  CHECK(Expr("'text'") == "'text'");
  CHECK(Expr("'it''s'") == "'it's'");
  CHECK(Expr("''") == "''");
  CHECK(Expr("'a -- not a comment /* nor this */'") == "'a -- not a comment /* nor this */'");
  CHECK(Expr("TRUE") == "BOOLEAN:TRUE");
  CHECK(Expr("false") == "BOOLEAN:FALSE");
  CHECK(Expr("NULL") == "NULL");
  CHECK(Expr("UNKNOWN") == "NULL:BOOLEAN");
  CHECK(Expr("TIMESTAMP '2026-01-01 00:00:00'") == "TIMESTAMP:2026-01-01 00:00:00.000");
  CHECK(Expr("timestamp '2026-03-04 05:06:07.089'") == "TIMESTAMP:2026-03-04 05:06:07.089");
  CHECK(Expr("TIMESTAMP '2026-03-04'") == "TIMESTAMP:2026-03-04 00:00:00.000");
  CHECK(Expr("INTERVAL '5' MINUTE") == "INTERVAL:300000000");
  CHECK(Expr("INTERVAL '10' SECOND") == "INTERVAL:10000000");
  CHECK(Expr("INTERVAL '1.5' SECOND") == "INTERVAL:1500000");
  CHECK(Expr("INTERVAL '250' MILLISECOND") == "INTERVAL:250000");
  CHECK(Expr("INTERVAL '250' MILLISECONDS") == "INTERVAL:250000");
  CHECK(Expr("INTERVAL '2' HOUR") == "INTERVAL:7200000000");
  CHECK(Expr("INTERVAL '1' DAY") == "INTERVAL:86400000000");
  CHECK(Expr("INTERVAL '-3' SECOND") == "INTERVAL:-3000000");
  CHECK(Expr("INTERVAL '1:30' MINUTE TO SECOND") == "INTERVAL:90000000");
  CHECK(Expr("INTERVAL '1 02:03:04.5' DAY TO SECOND") == "INTERVAL:93784500000");
  CHECK(Expr("INTERVAL '2:30' HOUR TO MINUTE") == "INTERVAL:9000000000");
}

TEST_CASE("Parser reads predicates, CASE and CAST", "[sql][parser]") {
  CHECK(Expr("a IS NULL") == "(is-null (col A))");
  CHECK(Expr("a IS NOT NULL") == "(is-not-null (col A))");
  CHECK(Expr("a BETWEEN 1 AND 2 + 3") == "(between (col A) 1 (+ 2 3))");
  CHECK(Expr("a NOT BETWEEN 1 AND 2 AND b") == "(AND (not-between (col A) 1 2) (col B))");
  CHECK(Expr("a IN (1, 2, 3)") == "(in (col A) 1 2 3)");
  CHECK(Expr("a NOT IN ('x')") == "(not-in (col A) 'x')");
  CHECK(Expr("a LIKE 'ab%'") == "(like (col A) 'ab%')");
  CHECK(Expr("a NOT LIKE 'a!%%' ESCAPE '!'") == "(not-like (col A) 'a!%%' '!')");
  CHECK(Expr("CASE WHEN a > 1 THEN 'big' WHEN a > 0 THEN 'small' ELSE 'none' END") ==
        "(case (when (> (col A) 1) 'big') (when (> (col A) 0) 'small') else:'none')");
  CHECK(Expr("CASE a WHEN 1 THEN 'one' END") == "(case op:(col A) (when 1 'one'))");
  CHECK(Expr("CAST(a AS VARCHAR(10))") == "(cast (col A) VARCHAR(10))");
  CHECK(Expr("CAST(a AS DOUBLE PRECISION) / 2") == "(/ (cast (col A) DOUBLE) 2)");
  CHECK(Expr("CAST(p AS DECIMAL(10, 2))") == "(cast (col P) DECIMAL(10,2))");
  CHECK(Expr("CAST(p AS DECIMAL)") == "(cast (col P) DECIMAL(18,0))");
}

TEST_CASE("Parser reads function calls and the special function forms", "[sql][parser]") {
  CHECK(Expr("COUNT(*)") == "(COUNT *)");
  CHECK(Expr("count(DISTINCT x)") == "(COUNT distinct (col X))");
  CHECK(Expr("now()") == "(NOW)");
  CHECK(Expr("coalesce(a, b, 0)") == "(COALESCE (col A) (col B) 0)");
  CHECK(Expr("FLOOR(ROWTIME TO MINUTE)") == "(FLOOR unit=MINUTE (col ROWTIME))");
  CHECK(Expr("FLOOR(x)") == "(FLOOR (col X))");
  CHECK(Expr("CEIL(s.ROWTIME TO HOUR)") == "(CEIL unit=HOUR (col S ROWTIME))");
  CHECK(Expr("STEP(ROWTIME BY INTERVAL '10' SECOND)") == "(STEP (col ROWTIME) INTERVAL:10000000)");
  CHECK(Expr("SUBSTRING(s FROM 2 FOR 3)") == "(SUBSTRING (col S) 2 3)");
  CHECK(Expr("SUBSTRING(s FROM 2)") == "(SUBSTRING (col S) 2)");
  CHECK(Expr("SUBSTRING(s, 2, 3)") == "(SUBSTRING (col S) 2 3)");
  CHECK(Expr("POSITION('b' IN s)") == "(POSITION 'b' (col S))");
  CHECK(Expr("TRIM(s)") == "(TRIM (col S))");
  CHECK(Expr("TRIM(BOTH FROM s)") == "(TRIM (col S))");
  CHECK(Expr("TRIM(LEADING 'x' FROM s)") == "(TRIM leading (col S) 'x')");
  CHECK(Expr("TRIM(TRAILING FROM s)") == "(TRIM trailing (col S))");
  CHECK(Expr("TRIM('x' FROM s)") == "(TRIM (col S) 'x')");
  CHECK(Expr("EXTRACT(HOUR FROM ROWTIME)") == "(EXTRACT unit=HOUR (col ROWTIME))");
  CHECK(Expr("CURRENT_ROW_TIMESTAMP") == "(CURRENT_ROW_TIMESTAMP)");
  CHECK(Expr("current_timestamp - LOCALTIMESTAMP") == "(- (CURRENT_TIMESTAMP) (LOCALTIMESTAMP))");
  CHECK(Expr("AVG(price) OVER w") == "(AVG (col PRICE) over=W)");
  CHECK(Expr("SUM(x) OVER (PARTITION BY a, b RANGE INTERVAL '1' MINUTE PRECEDING)") ==
        "(SUM (col X) over=(window partition (col A) (col B) range=60000000))");
  CHECK(Expr("LAG(x, 1) OVER (ROWS 10 PRECEDING)") == "(LAG (col X) 1 over=(window rows=10))");
}

TEST_CASE("Parser reads sliding windows, named and inline", "[sql][parser]") {
  const ast::Select s = SelectOf(
      "SELECT STREAM ticker, AVG(price) OVER w10 AS avg10, "
      "MAX(price) OVER (PARTITION BY ticker ROWS 5 PRECEDING) mx "
      "FROM src "
      "WINDOW w10 AS (PARTITION BY ticker RANGE INTERVAL '10' SECOND PRECEDING), "
      "\"w2\" AS (RANGE INTERVAL '1' HOUR PRECEDING)");
  CHECK(Items(s) ==
        "(col TICKER), (AVG (col PRICE) over=W10) AS AVG10, "
        "(MAX (col PRICE) over=(window partition (col TICKER) rows=5)) AS MX");
  REQUIRE(s.windows.size() == 2);
  CHECK(WindowText(s.windows[0]) == "(window W10 partition (col TICKER) range=10000000)");
  CHECK(WindowText(s.windows[1]) == "(window w2 range=3600000000)");
  CHECK(s.windows[0].pos.column == 160);
}

TEST_CASE("Parser reads WINDOWED BY STAGGER after WHERE and after GROUP BY", "[sql][parser]") {
  const ast::Select before = SelectOf(
      "SELECT STREAM k, COUNT(*) FROM src WHERE v > 0 "
      "WINDOWED BY STAGGER (PARTITION BY k, FLOOR(ROWTIME TO MINUTE) RANGE INTERVAL '1' MINUTE)");
  REQUIRE(before.stagger != nullptr);
  CHECK(Sexp(*before.where) == "(> (col V) 0)");
  REQUIRE(before.stagger->partition_by.size() == 2);
  CHECK(Sexp(*before.stagger->partition_by[0]) == "(col K)");
  CHECK(Sexp(*before.stagger->partition_by[1]) == "(FLOOR unit=MINUTE (col ROWTIME))");
  CHECK(before.stagger->range_micros == 60000000);
  CHECK(before.group_by.empty());

  const ast::Select after = SelectOf(
      "SELECT STREAM k, COUNT(*) FROM src GROUP BY k "
      "WINDOWED BY STAGGER (PARTITION BY k RANGE INTERVAL '30' SECOND) HAVING COUNT(*) > 1");
  REQUIRE(after.stagger != nullptr);
  CHECK(after.stagger->range_micros == 30000000);
  REQUIRE(after.group_by.size() == 1);
  CHECK(Sexp(*after.having) == "(> (COUNT *) 1)");

  CHECK(ScriptError(PumpOf("SELECT STREAM k FROM src "
                           "WINDOWED BY STAGGER (PARTITION BY k RANGE INTERVAL '1' MINUTE) "
                           "GROUP BY k "
                           "WINDOWED BY STAGGER (PARTITION BY k RANGE INTERVAL '1' MINUTE)")) ==
        "SQL syntax error at line 1, column 133 near 'WINDOWED': WINDOWED BY may appear only "
        "once");
}

TEST_CASE("Parser reads table functions over cursors in FROM", "[sql][parser]") {
  const ast::Select top = SelectOf(
      "SELECT STREAM * FROM TABLE(TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM "
      "\"SOURCE_SQL_STREAM_001\"), 'ticker', 10, 60)) AS t");
  CHECK(Items(top) == "*");
  REQUIRE(top.from.kind == ast::TableRef::Kind::kTableFunction);
  CHECK(top.from.alias == "T");
  CHECK(Sexp(*top.from.function) ==
        "(TOP_K_ITEMS_TUMBLING (cursor SOURCE_SQL_STREAM_001) 'ticker' 10 60)");
  const ast::Select& cursor = *top.from.function->args[0]->cursor;
  CHECK(cursor.stream);
  CHECK(Items(cursor) == "*");

  const ast::Select rcf = SelectOf(
      "SELECT STREAM \"price\", ANOMALY_SCORE FROM TABLE(RANDOM_CUT_FOREST("
      "CURSOR(SELECT STREAM \"price\" FROM \"IN\" WHERE \"price\" > 0)))");
  REQUIRE(rcf.from.kind == ast::TableRef::Kind::kTableFunction);
  CHECK(Sexp(*rcf.from.function) == "(RANDOM_CUT_FOREST (cursor IN))");
  CHECK(Sexp(*rcf.from.function->args[0]->cursor->where) == "(> (col price) 0)");

  CHECK(ScriptError(PumpOf("SELECT STREAM * FROM TABLE(F(1))")) ==
        "SQL syntax error at line 1, column 61 near 'F': a table function takes "
        "CURSOR(SELECT STREAM ...) as its first argument");
}

TEST_CASE("Parser reads reference, outer and stream to stream joins", "[sql][parser]") {
  const ast::Select ref = SelectOf(
      "SELECT STREAM s.ticker, c.name FROM src AS s JOIN companies c ON s.ticker = c.ticker");
  REQUIRE(ref.joins.size() == 1);
  CHECK(ref.from.alias == "S");
  CHECK(ref.joins[0].kind == ast::Join::Kind::kInner);
  CHECK(ref.joins[0].table.name == "COMPANIES");
  CHECK(ref.joins[0].table.alias == "C");
  CHECK(Sexp(*ref.joins[0].on) == "(= (col S TICKER) (col C TICKER))");
  CHECK(ref.joins[0].pos.column == 79);

  const ast::Select outer = SelectOf(
      "SELECT STREAM * FROM src s LEFT OUTER JOIN a ON s.k = a.k INNER JOIN b ON s.k = b.k "
      "LEFT JOIN c ON TRUE");
  REQUIRE(outer.joins.size() == 3);
  CHECK(outer.joins[0].kind == ast::Join::Kind::kLeftOuter);
  CHECK(outer.joins[1].kind == ast::Join::Kind::kInner);
  CHECK(outer.joins[2].kind == ast::Join::Kind::kLeftOuter);

  const ast::Select ss = SelectOf(
      "SELECT STREAM o.\"id\", t.\"px\" "
      "FROM \"ORDERS\" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS o "
      "JOIN \"TRADES\" OVER (RANGE INTERVAL '2' MINUTE PRECEDING) AS t ON o.\"id\" = t.\"id\"");
  REQUIRE(ss.from.over != nullptr);
  CHECK(ss.from.name == "ORDERS");
  CHECK(ss.from.alias == "O");
  CHECK(ss.from.over->range_micros == 60000000);
  CHECK_FALSE(ss.from.over->rows.has_value());
  REQUIRE(ss.joins.size() == 1);
  REQUIRE(ss.joins[0].table.over != nullptr);
  CHECK(ss.joins[0].table.over->range_micros == 120000000);
  CHECK(Sexp(*ss.joins[0].on) == "(= (col O id) (col T id))");
}

TEST_CASE("Parser reads subqueries, DISTINCT, qualified stars and ORDER BY", "[sql][parser]") {
  const ast::Select s = SelectOf(
      "SELECT STREAM DISTINCT q.*, x + 1 total FROM (SELECT STREAM * FROM src WHERE a > 1) AS q "
      "ORDER BY ROWTIME, x DESC, y ASC");
  CHECK(s.distinct);
  CHECK(Items(s) == "(* Q), (+ (col X) 1) AS TOTAL");
  REQUIRE(s.from.kind == ast::TableRef::Kind::kSubquery);
  CHECK(s.from.alias == "Q");
  CHECK(Sexp(*s.from.subquery->where) == "(> (col A) 1)");
  REQUIRE(s.order_by.size() == 3);
  CHECK(Sexp(*s.order_by[0].expr) == "(col ROWTIME)");
  CHECK_FALSE(s.order_by[0].descending);
  CHECK(s.order_by[1].descending);
  CHECK_FALSE(s.order_by[2].descending);

  // STREAM after SELECT is the keyword, unless a FROM or ',' follows it.
  CHECK_FALSE(SelectOf("SELECT a FROM src").stream);
  CHECK(Items(SelectOf("SELECT stream FROM src")) == "(col STREAM)");
  CHECK(Items(SelectOf("SELECT stream, a FROM src")) == "(col STREAM), (col A)");
  CHECK(Items(SelectOf("SELECT STREAM stream FROM src")) == "(col STREAM)");
}

TEST_CASE("Parser reads column types and pump forms", "[sql][parser]") {
  const ast::Script script = MustParse(
      "CREATE STREAM t (a BOOLEAN, b INTEGER, c INT, d SMALLINT, e TINYINT, f BIGINT, "
      "g DOUBLE, h DOUBLE PRECISION, i REAL, j FLOAT, k DECIMAL, l DECIMAL(10, 2), "
      "m NUMERIC(5), n VARCHAR(1), o CHAR(10), p CHARACTER VARYING(65535), q TIMESTAMP) "
      "DESCRIPTION 'all the types';"
      "CREATE PUMP p2 STOPPED AS INSERT INTO t (a, \"b\") SELECT STREAM x, y FROM s;");
  REQUIRE(script.statements.size() == 2);
  const ast::CreateStream& t = script.statements[0].create_stream;
  CHECK(t.description == "all the types");
  std::vector<std::string> types;
  for (const ast::ColumnDef& c : t.columns) types.push_back(ColumnTypeName(c.type));
  CHECK(absl::StrJoin(types, " ") ==
        "BOOLEAN INTEGER INTEGER INTEGER INTEGER BIGINT DOUBLE DOUBLE DOUBLE DOUBLE "
        "DECIMAL(18,0) DECIMAL(10,2) DECIMAL(5,0) VARCHAR(1) VARCHAR(10) VARCHAR(65535) TIMESTAMP");
  const ast::CreatePump& p = script.statements[1].create_pump;
  CHECK_FALSE(p.or_replace);
  CHECK(p.name == "P2");
  CHECK(p.target == "T");
  CHECK(p.target_columns == std::vector<std::string>{"A", "b"});
}

TEST_CASE("Parser skips comments and whitespace and tracks positions", "[sql][parser]") {
  const ast::Script script = MustParse(
      "-- leading comment\n"
      "/* a block\n   comment */ CREATE STREAM s (a INT) ; ; \n"
      "\tCREATE /* inline */ PUMP p AS INSERT INTO s -- trailing\n"
      "SELECT STREAM a\n"
      "  , b -- the second\n"
      "  FROM src WHERE a = /* x */ 1;");
  REQUIRE(script.statements.size() == 2);
  CHECK(script.statements[0].create_stream.pos.line == 3);
  CHECK(script.statements[0].create_stream.pos.column == 15);
  const ast::CreatePump& p = script.statements[1].create_pump;
  CHECK(p.pos.line == 4);
  CHECK(p.pos.column == 2);
  CHECK(p.select.pos.line == 5);
  CHECK(p.select.items[1].expr->pos.line == 6);
  CHECK(p.select.items[1].expr->pos.column == 5);
  CHECK(Sexp(*p.select.where) == "(= (col A) 1)");
  CHECK(p.select.where->args[1]->pos.column == 30);
  CHECK(p.select.from.pos.line == 7);
  CHECK(p.select.from.pos.column == 8);

  CHECK(MustParse("").statements.empty());
  CHECK(MustParse("  -- nothing\n ;;").statements.empty());
  CHECK(Expr("  a   /* c */ +\n b --x") == "(+ (col A) (col B))");
}

TEST_CASE("Parser reports syntax errors with line, column and token", "[sql][parser]") {
  // Missing FROM.
  CHECK(ScriptError("CREATE PUMP p AS INSERT INTO o\nSELECT STREAM a, b WHERE a > 1") ==
        "SQL syntax error at line 2, column 20 near 'WHERE': expected FROM");
  // Unbalanced parentheses.
  CHECK(Expr("(1 + 2") ==
        "error: SQL syntax error at line 1, column 7 near 'end of input': "
        "expected ')'");
  CHECK(Expr("(1 + 2))") ==
        "error: SQL syntax error at line 1, column 8 near ')': "
        "expected end of expression");
  CHECK(Expr("f(a, ") ==
        "error: SQL syntax error at line 1, column 6 near 'end of input': "
        "expected an expression");
  CHECK(Expr("1 +") ==
        "error: SQL syntax error at line 1, column 4 near 'end of input': expected an expression");
  CHECK(Expr("") ==
        "error: SQL syntax error at line 1, column 1 near 'end of input': expected an expression");
  CHECK(Expr("a IS 1") == "error: SQL syntax error at line 1, column 6 near '1': expected NULL");
  CHECK(Expr("CASE a END") ==
        "error: SQL syntax error at line 1, column 8 near 'END': "
        "expected WHEN");
  CHECK(Expr("CASE WHEN a THEN b") ==
        "error: SQL syntax error at line 1, column 19 near 'end of input': expected END");
  CHECK(Expr("CAST(a VARCHAR(3))") ==
        "error: SQL syntax error at line 1, column 8 near 'VARCHAR': expected AS");
  CHECK(Expr("'open") ==
        "error: SQL syntax error at line 1, column 1 near ''open': "
        "unterminated string literal");
  CHECK(Expr("\"open") ==
        "error: SQL syntax error at line 1, column 1 near '\"open': "
        "unterminated quoted identifier");
  CHECK(Expr("a /* open") ==
        "error: SQL syntax error at line 1, column 3 near '/*': "
        "unterminated comment");
  CHECK(Expr("SUM(x) OVER") ==
        "error: SQL syntax error at line 1, column 12 near "
        "'end of input': expected a window name or '('");
  CHECK(Expr("a $ b") ==
        "error: SQL syntax error at line 1, column 3 near '$': "
        "expected end of expression");
  CHECK(Expr("x\x01") ==
        "error: SQL syntax error at line 1, column 2 near '\\x01': "
        "expected end of expression");
  CHECK(ScriptError("SELECT 1") ==
        "SQL syntax error at line 1, column 1 near 'SELECT': expected CREATE STREAM or CREATE "
        "PUMP");
  CHECK(ScriptError("CREATE TABLE t (a INT)") ==
        "SQL syntax error at line 1, column 8 near 'TABLE': expected STREAM or PUMP");
  CHECK(ScriptError("CREATE STREAM s (a INT) CREATE STREAM t (b INT)") ==
        "SQL syntax error at line 1, column 25 near 'CREATE': expected ';'");
  CHECK(ScriptError("CREATE STREAM s (a INT,)") ==
        "SQL syntax error at line 1, column 24 near ')': expected a column name");
  CHECK(ScriptError("CREATE PUMP p AS INSERT INTO o SELECT STREAM a FROM") ==
        "SQL syntax error at line 1, column 52 near 'end of input': expected a stream name, "
        "TABLE(...) or a subquery");
  CHECK(ScriptError("CREATE PUMP p AS INSERT INTO o SELECT STREAM a FROM s GROUP a") ==
        "SQL syntax error at line 1, column 61 near 'a': expected BY");
  CHECK(ScriptError("CREATE PUMP p AS INSERT INTO o SELECT STREAM a FROM s\n"
                    "WINDOW w AS (PARTITION BY a)") ==
        "SQL syntax error at line 2, column 28 near ')': expected RANGE or ROWS");
  CHECK(ScriptError("CREATE PUMP p AS SELECT STREAM a FROM s") ==
        "SQL syntax error at line 1, column 18 near 'SELECT': expected INSERT");
  // A reserved word where a name is expected.
  CHECK(ScriptError("CREATE STREAM select (a INT)") ==
        "SQL syntax error at line 1, column 15 near 'select': expected a name");
  CHECK(ScriptError("CREATE STREAM s (from INT)") ==
        "SQL syntax error at line 1, column 18 near 'from': expected a column name");
  CHECK(ScriptError("CREATE STREAM \"\" (a INT)") ==
        "SQL syntax error at line 1, column 15 near '\"\"': a quoted identifier may not be "
        "empty");
  // Long tokens are cut at 20 bytes.
  CHECK(Expr("a aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") ==
        "error: SQL syntax error at line 1, column 3 near 'aaaaaaaaaaaaaaaaaaaa...': "
        "expected end of expression");
}

TEST_CASE("Parser reports bad types and out of range literals", "[sql][parser]") {
  CHECK(ScriptError("CREATE STREAM s (a TEXT)") ==
        "SQL syntax error at line 1, column 20 near 'TEXT': expected a type");
  CHECK(ScriptError("CREATE STREAM s (a INT, b VARCHAR)") ==
        "SQL syntax error at line 1, column 27 near 'VARCHAR': VARCHAR needs a length, e.g. "
        "VARCHAR(64)");
  CHECK(ScriptError("CREATE STREAM s (b CHARACTER VARYING)") ==
        "SQL syntax error at line 1, column 20 near 'CHARACTER': CHARACTER needs a length, e.g. "
        "CHARACTER(64)");
  CHECK(ScriptError("CREATE STREAM s (b VARCHAR(0))") ==
        "SQL syntax error at line 1, column 28 near '0': VARCHAR length must be 1 to 65535, not "
        "0");
  CHECK(ScriptError("CREATE STREAM s (b VARCHAR(65536))") ==
        "SQL syntax error at line 1, column 28 near '65536': VARCHAR length must be 1 to 65535, "
        "not 65536");
  CHECK(ScriptError("CREATE STREAM s (b DECIMAL(20,2))") ==
        "SQL syntax error at line 1, column 28 near '20': DECIMAL precision must be 1 to 18, "
        "not 20");
  CHECK(ScriptError("CREATE STREAM s (b DECIMAL(0))") ==
        "SQL syntax error at line 1, column 28 near '0': DECIMAL precision must be 1 to 18, "
        "not 0");
  CHECK(ScriptError("CREATE STREAM s (b DECIMAL(5, 6))") ==
        "SQL syntax error at line 1, column 31 near '6': DECIMAL scale must be 0 to the "
        "precision (5), not 6");
  CHECK(ScriptError("CREATE STREAM s (b DECIMAL(99999999999999999999))") ==
        "SQL syntax error at line 1, column 28 near '99999999999999999999': integer out of "
        "range");
  CHECK(Expr("9223372036854775808") ==
        "error: SQL syntax error at line 1, column 1 near '9223372036854775808': integer "
        "literal 9223372036854775808 is out of range (BIGINT)");
  CHECK(Expr("1 + 99999999999999999999999") ==
        "error: SQL syntax error at line 1, column 5 near '99999999999999999999...': integer "
        "literal 99999999999999999999999 is out of range (BIGINT)");
  CHECK(Expr("1e999") ==
        "error: SQL syntax error at line 1, column 1 near '1e999': numeric "
        "literal 1e999 is out of range");
  CHECK(Expr("INTERVAL '1' MONTH") ==
        "error: SQL syntax error at line 1, column 1 near 'INTERVAL': INTERVAL in MONTH or YEAR "
        "is not supported: months have no fixed length");
  CHECK(Expr("x + INTERVAL '2' YEAR") ==
        "error: SQL syntax error at line 1, column 5 near 'INTERVAL': INTERVAL in MONTH or YEAR "
        "is not supported: months have no fixed length");
  CHECK(Expr("INTERVAL 'abc' MINUTE") ==
        "error: SQL syntax error at line 1, column 10 near ''abc'': invalid INTERVAL value 'abc'");
  CHECK(Expr("INTERVAL '1.5' MINUTE") ==
        "error: SQL syntax error at line 1, column 10 near ''1.5'': invalid INTERVAL value "
        "'1.5'");
  CHECK(Expr("INTERVAL '99999999999999' DAY") ==
        "error: SQL syntax error at line 1, column 10 near ''99999999999999'': invalid INTERVAL "
        "value '99999999999999'");
  CHECK(Expr("INTERVAL '1' FORTNIGHT") ==
        "error: SQL syntax error at line 1, column 14 near 'FORTNIGHT': expected a time unit "
        "(MILLISECOND, SECOND, MINUTE, HOUR, DAY, WEEK, MONTH or YEAR)");
  CHECK(Expr("INTERVAL '1:30' SECOND TO MINUTE") ==
        "error: SQL syntax error at line 1, column 1 near 'INTERVAL': INTERVAL ... TO ... takes "
        "DAY, HOUR or MINUTE TO a smaller one of HOUR, MINUTE or SECOND");
  CHECK(Expr("TIMESTAMP '2026-13-01 00:00:00'") ==
        "error: SQL syntax error at line 1, column 11 near ''2026-13-01 00:00:00...': invalid "
        "TIMESTAMP '2026-13-01 00:00:00' (expected 'yyyy-MM-dd HH:mm:ss[.fff]')");
}

TEST_CASE("Parser refuses nesting deeper than 200 levels without overflowing", "[sql][parser]") {
  const std::string deep_error = "nesting deeper than 200 levels is not supported";
  CHECK(Expr(std::string(10000, '(')).find(deep_error) != std::string::npos);
  CHECK(Expr(std::string(10000, '(') + "1" + std::string(10000, ')')).find(deep_error) !=
        std::string::npos);
  CHECK(Expr(std::string(100000, '-') + "1").find(deep_error) == std::string::npos);  // comment
  CHECK(Expr(std::string(5000, '+') + "1").find(deep_error) != std::string::npos);
  std::string nots;
  for (int i = 0; i < 5000; ++i) nots += "NOT ";
  CHECK(Expr(nots + "a").find(deep_error) != std::string::npos);
  std::string cases;
  for (int i = 0; i < 5000; ++i) cases += "CASE WHEN a THEN ";
  CHECK(Expr(cases + "1").find(deep_error) != std::string::npos);
  std::string fns;
  for (int i = 0; i < 5000; ++i) fns += "f(";
  CHECK(Expr(fns).find(deep_error) != std::string::npos);
  std::string cursors = "CREATE PUMP p AS INSERT INTO o SELECT STREAM * FROM ";
  for (int i = 0; i < 5000; ++i) cursors += "(SELECT STREAM * FROM ";
  CHECK(ScriptError(cursors).find(deep_error) != std::string::npos);

  // 200 levels are fine, 201 are not.
  CHECK(Expr(std::string(200, '(') + "1" + std::string(200, ')')) == "1");
  CHECK(Expr(std::string(201, '(') + "1" + std::string(201, ')')) ==
        "error: SQL syntax error at line 1, column 201 near '(': " + deep_error);
}

TEST_CASE("Parser reads long flat inputs and bounds the depth of chains", "[sql][parser]") {
  std::string sum = "1";
  for (int i = 0; i < 3000; ++i) sum += " - 1";
  absl::StatusOr<ast::ExprPtr> e = ParseExpression(sum);
  REQUIRE(e.ok());
  CHECK((*e)->op == "-");
  CHECK((*e)->args[1]->pos.column == 12001);
  std::string list = "a IN (0";
  for (int i = 1; i < 20000; ++i) absl::StrAppend(&list, ", ", i);
  e = ParseExpression(list + ")");
  REQUIRE(e.ok());
  CHECK((*e)->args.size() == 20001);
  // A chain is as deep in the tree as it is long: 1 + 1 + ... is refused beyond 4000 levels.
  for (int i = 0; i < 100000; ++i) sum += " + 1";
  CHECK(Expr(sum) ==
        "error: SQL syntax error at line 1, column 1 near '1': expression nested "
        "deeper than 4000 levels is not supported");
  std::string ands = "(a";
  for (int i = 0; i < 150; ++i) ands += " AND (a";
  for (int i = 0; i < 10000; ++i) ands += " OR b";
  CHECK(Expr(ands).find("expected ')'") != std::string::npos);
}

TEST_CASE("Parser accepts every seed of the fuzzer's corpus", "[sql][parser]") {
  const std::filesystem::path dir =
      std::filesystem::path(RILL_SQL_TEST_DIR) / ".." / "fuzz" / "corpus" / "sql_parser";
  int seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream file(entry.path());
    std::stringstream text;
    text << file.rdbuf();
    INFO(entry.path().string());
    if (entry.path().filename() == "expression.sql") {
      absl::StatusOr<ast::ExprPtr> e = ParseExpression(text.str());
      CHECK(e.ok());
    } else {
      absl::StatusOr<ast::Script> script = ParseScript(text.str());
      INFO(std::string(script.status().message()));
      CHECK(script.ok());
    }
    ++seeds;
  }
  CHECK(seeds >= 10);
}

}  // namespace
}  // namespace rill::sql
