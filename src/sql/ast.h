// The syntax tree of a rill SQL script (internal): what the parser (parser.h) produces and the
// planner (planner.h) consumes. Names are already resolved for case: an unquoted identifier is
// folded to upper case, a quoted one ("Name") kept exactly. Keywords are case-insensitive.
#ifndef RILL_SQL_AST_H_
#define RILL_SQL_AST_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rill/sql/value.h"

namespace rill::sql::ast {

// Where a node starts in the script: 1-based line and column (bytes).
struct Position {
  uint32_t line = 1;
  uint32_t column = 1;
};

// Time units of INTERVAL literals, FLOOR(x TO unit) and CEIL(x TO unit).
enum class TimeUnit : uint8_t { kMillisecond, kSecond, kMinute, kHour, kDay, kWeek, kMonth, kYear };

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;
struct Select;

enum class ExprKind : uint8_t {
  kLiteral,   // literal: a typed constant (NULL is Value::Null(), 'text' VARCHAR, 12 INTEGER
              //   (BIGINT when it does not fit), 1.5 DECIMAL (scale = digits after the point),
              //   1.5E3 DOUBLE, TRUE / FALSE BOOLEAN, TIMESTAMP '2026-01-01 00:00:00' TIMESTAMP,
              //   INTERVAL '5' MINUTE kInterval in microseconds (INTERVAL '1' MONTH / YEAR are
              //   refused by the parser: months have no fixed length))
  kColumn,    // qualifier (may be empty) . name; ROWTIME is a column like any other here
  kStar,      // * in COUNT(*) or a select list (qualifier set for s.*)
  kUnary,     // op in {"-", "+", "NOT"}; args[0]
  kBinary,    // op in {"+", "-", "*", "/", "%", "||", "=", "<>", "<", "<=", ">", ">=", "AND",
              //   "OR"}; args[0], args[1] ("!=" is parsed as "<>")
  kIsNull,    // args[0] IS [NOT] NULL; negated
  kBetween,   // args[0] [NOT] BETWEEN args[1] AND args[2]; negated
  kIn,        // args[0] [NOT] IN (args[1..]); negated
  kLike,      // args[0] [NOT] LIKE args[1] [ESCAPE args[2]]; negated
  kFunction,  // name (upper case) (args...), e.g. COUNT, SUM, LAG, SUBSTRING, STEP, FLOOR...
              //   distinct: COUNT(DISTINCT x); star: COUNT(*) (args empty);
              //   over: "w" of `... OVER w`, or an inline window in over_window;
              //   FLOOR(x TO unit) / CEIL(x TO unit): unit set, args = {x};
              //   STEP(x BY INTERVAL ...): args = {x, interval literal};
              //   SUBSTRING(s FROM a [FOR b]) is parsed as SUBSTRING(s, a[, b]);
              //   POSITION(a IN b) as POSITION(a, b); TRIM([BOTH|LEADING|TRAILING] [c] FROM s)
              //   as TRIM(s[, c]) with trim_side set; EXTRACT(unit FROM x) as EXTRACT(x) with
              //   unit; CURRENT_ROW_TIMESTAMP / CURRENT_TIMESTAMP / LOCALTIMESTAMP with no
              //   parentheses as a function with no args.
  kCase,      // CASE [operand] WHEN w THEN t ... [ELSE e] END:
              //   args = [operand?] w1, t1, w2, t2, ... [e]; has_operand, has_else say which
  kCast,      // CAST(args[0] AS cast_type)
  kCursor,    // CURSOR(SELECT STREAM ...): a table function's input; cursor holds it
};

enum class TrimSide : uint8_t { kBoth, kLeading, kTrailing };

struct WindowSpec;

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  Position pos;
  Value literal;          // kLiteral
  std::string qualifier;  // kColumn, kStar
  std::string name;       // kColumn: column name; kFunction: function name (upper case)
  std::string op;         // kUnary, kBinary
  std::vector<ExprPtr> args;
  bool negated = false;          // kIsNull, kBetween, kIn, kLike
  bool distinct = false;         // kFunction: an aggregate over DISTINCT values
  bool star = false;             // kFunction: COUNT(*)
  bool has_operand = false;      // kCase
  bool has_else = false;         // kCase
  std::optional<TimeUnit> unit;  // kFunction: FLOOR / CEIL ... TO unit, EXTRACT(unit FROM ...)
  TrimSide trim_side = TrimSide::kBoth;
  std::string over;                         // kFunction: OVER name ("" if none, or inline)
  std::unique_ptr<WindowSpec> over_window;  // kFunction: OVER (PARTITION BY ... RANGE ...)
  ColumnType cast_type;                     // kCast
  std::unique_ptr<Select> cursor;           // kCursor
};

// A sliding window: WINDOW name AS (PARTITION BY ... RANGE INTERVAL ... PRECEDING) or
// (PARTITION BY ... ROWS n PRECEDING). Exactly one of range / rows is set.
struct WindowSpec {
  Position pos;
  std::string name;  // "" for an inline OVER (...)
  std::vector<ExprPtr> partition_by;
  std::optional<int64_t> range_micros;  // RANGE INTERVAL 'n' unit PRECEDING
  std::optional<int64_t> rows;          // ROWS n PRECEDING
};

// WINDOWED BY STAGGER (PARTITION BY e1, e2, ... RANGE INTERVAL 'n' unit)
struct Stagger {
  Position pos;
  std::vector<ExprPtr> partition_by;
  int64_t range_micros = 0;
};

struct SelectItem {
  ExprPtr expr;
  std::string alias;  // "" when none (AS is optional)
};

// What a FROM names: a stream (in-application stream, or the reference table), or a table
// function over a cursor: FROM TABLE(TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM ...), 'col', 10,
// 60)) or FROM TABLE(RANDOM_CUT_FOREST(CURSOR(...), ...)). A parenthesised subquery
// `FROM (SELECT STREAM ...) AS t` is a kSubquery.
struct TableRef {
  enum class Kind : uint8_t { kNamed, kTableFunction, kSubquery };
  Kind kind = Kind::kNamed;
  Position pos;
  std::string name;                  // kNamed: stream or table name
  ExprPtr function;                  // kTableFunction: a kFunction whose first arg is a kCursor
  std::unique_ptr<Select> subquery;  // kSubquery
  // A window over a stream in a stream-to-stream join, KDA's form:
  //   FROM "ORDERS" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS o
  //   JOIN "TRADES" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS t ON o."id" = t."id"
  // (name empty, no PARTITION BY; null when absent).
  std::unique_ptr<WindowSpec> over;
  std::string alias;  // "" when none
};

struct Join {
  enum class Kind : uint8_t { kInner, kLeftOuter };
  Kind kind = Kind::kInner;
  Position pos;
  TableRef table;
  ExprPtr on;
};

struct OrderItem {
  ExprPtr expr;
  bool descending = false;
};

struct Select {
  Position pos;
  bool stream = false;  // SELECT STREAM (required for a pump; the planner checks)
  bool distinct = false;
  std::vector<SelectItem> items;
  TableRef from;
  std::vector<Join> joins;
  ExprPtr where;                     // may be null
  std::vector<ExprPtr> group_by;     // empty when none
  std::unique_ptr<Stagger> stagger;  // WINDOWED BY STAGGER (...), instead of GROUP BY
  ExprPtr having;                    // may be null
  std::vector<WindowSpec> windows;   // WINDOW w AS (...), w2 AS (...)
  std::vector<OrderItem> order_by;   // ORDER BY (accepted, planner decides)
};

struct ColumnDef {
  Position pos;
  std::string name;
  ColumnType type;
};

// CREATE [OR REPLACE] STREAM name (col type, ...) [DESCRIPTION '...']
struct CreateStream {
  Position pos;
  bool or_replace = false;
  std::string name;
  std::vector<ColumnDef> columns;
  std::string description;  // DESCRIPTION '...' ("" when none); documentation only
};

// CREATE [OR REPLACE] PUMP name [STOPPED] AS INSERT INTO target [(col, ...)] SELECT STREAM ...
struct CreatePump {
  Position pos;
  bool or_replace = false;
  std::string name;
  std::string target;
  std::vector<std::string> target_columns;  // empty: all, in order
  Select select;
};

struct Statement {
  enum class Kind : uint8_t { kCreateStream, kCreatePump };
  Kind kind = Kind::kCreateStream;
  CreateStream create_stream;
  CreatePump create_pump;
};

// A whole script: statements separated by ';' (a trailing ';' is optional). Comments: -- to end
// of line, /* ... */.
struct Script {
  std::vector<Statement> statements;
};

}  // namespace rill::sql::ast

#endif  // RILL_SQL_AST_H_
