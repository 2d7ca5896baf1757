// Compiled expressions (internal): an ast::Expr, type-checked once against the columns in scope,
// becomes a tree of closures. Evaluating one walks no syntax tree and looks nothing up by name;
// it writes into a caller's Value (whose string storage is reused), so a row costs no allocation
// unless a VARCHAR result outgrows what its Value held.
#ifndef RILL_SQL_EXPR_H_
#define RILL_SQL_EXPR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rill/sql/value.h"
#include "sql/ast.h"

namespace rill::sql {

// What an expression reads: up to three rows (a pump's input row; a join's two sides; a window's
// group values and aggregate results), and the current row's ROWTIME.
struct EvalContext {
  const Row* rows[3] = {nullptr, nullptr, nullptr};
  absl::Time rowtime = absl::UnixEpoch();
  // Set by an expression that fails at run time (division by zero, an overflow, a failed CAST):
  // the row goes to error_stream with this reason.
  std::string error;
};

// Evaluates into *out; false (with ctx.error set) for a run-time error.
using EvalFn = std::function<bool(EvalContext& ctx, Value& out)>;

struct CompiledExpr {
  ColumnType type;  // the result's type (kNull only for a bare NULL literal)
  EvalFn eval;
  std::string text;  // the expression as SQL, for Explain and error messages
};

// A column an expression may name: `qualifier.name` (or `name` alone when unambiguous).
struct ScopeColumn {
  std::string qualifier;  // the stream's name or alias ("" for computed columns)
  std::string name;
  ColumnType type;
  int frame = 0;  // which EvalContext row
  int index = 0;  // column index in that row; -1 for ROWTIME
};

// Names in scope, and how special forms resolve.
struct Scope {
  std::vector<ScopeColumn> columns;
  // Aliases a qualifier may use for ROWTIME (every stream in FROM); empty: any qualifier.
  std::vector<std::string> qualifiers;
  // Expressions replaced by slots (a GROUP BY expression or an aggregate call after
  // aggregation): the canonical text (ExprText) -> the slot.
  struct Slot {
    std::string key;
    ColumnType type;
    int frame = 0;
    int index = 0;
  };
  std::vector<Slot> slots;
  // Whether aggregate calls are allowed here (they must have been replaced by slots when not).
  bool aggregates_replaced = false;
};

// Canonical text of an expression: equal for equal trees (used to match GROUP BY expressions
// and aggregate calls). Positions are ignored.
std::string ExprText(const ast::Expr& e);

// Position prefix for CodeValidation messages: "line 3, column 14: ".
std::string At(const ast::Position& pos);

// A CodeValidation error at `pos`.
absl::Status CodeError(const ast::Position& pos, std::string_view message);

// Type-checks and compiles `e` against `scope`. Errors: kCodeValidation naming the line, column
// and problem (unknown column, ambiguous column, type mismatch, unknown function, wrong
// argument count, an aggregate where none may be).
absl::StatusOr<CompiledExpr> Compile(const ast::Expr& e, const Scope& scope);

// Whether `name` is an aggregate function (COUNT, SUM, AVG, MIN, MAX).
bool IsAggregateFunction(std::string_view name);

// Whether `e` contains an aggregate call (not looking inside OVER windows' bodies).
bool ContainsAggregate(const ast::Expr& e);

// Comparison of two non-null values of comparable types: <0, 0, >0.
int CompareValues(const Value& a, const Value& b);

// Casts `in` to `type` into *out (CAST's rules, and INSERT INTO's). False with *error set when
// the value does not convert.
bool CastValue(const Value& in, const ColumnType& type, Value* out, std::string* error);

// Epoch-aligned floor of a time to a fixed interval (STEP) and to a calendar unit (FLOOR ... TO).
int64_t StepMicros(int64_t micros, int64_t interval);
int64_t FloorToUnit(int64_t micros, ast::TimeUnit unit);

}  // namespace rill::sql

#endif  // RILL_SQL_EXPR_H_
