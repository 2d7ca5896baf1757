#include "sql/expr.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "rill/base/error.h"
#include "sql/convert.h"
#include "sql/pow10.h"

namespace rill::sql {
namespace {

ColumnType T(SqlType t) {
  ColumnType c;
  c.type = t;
  if (t == SqlType::kDecimal) c.precision = 18;
  if (t == SqlType::kVarchar) c.length = 65535;
  return c;
}
ColumnType Dec(uint8_t scale) {
  ColumnType c;
  c.type = SqlType::kDecimal;
  c.precision = 18;
  c.scale = scale;
  return c;
}

bool IsIntegral(SqlType t) { return t == SqlType::kInteger || t == SqlType::kBigint; }

void SetNull(Value& out, SqlType type) {
  out.type = type;
  out.null = true;
}
void SetInt(Value& out, SqlType type, int64_t v) {
  out.type = type;
  out.null = false;
  out.i = v;
}
void SetDouble(Value& out, double v) {
  out.type = SqlType::kDouble;
  out.null = false;
  out.d = v;
}
void SetBool(Value& out, bool v) { SetInt(out, SqlType::kBoolean, v ? 1 : 0); }
void SetDecimal(Value& out, int64_t unscaled, uint8_t scale) {
  out.type = SqlType::kDecimal;
  out.null = false;
  out.scale = scale;
  out.i = unscaled;
}

bool Fail(EvalContext& ctx, std::string message) {
  ctx.error = std::move(message);
  return false;
}

// A decimal or integer value as an unscaled integer at `scale`; false on overflow.
bool Rescale(const Value& v, uint8_t scale, int64_t* out) {
  const uint8_t from = v.type == SqlType::kDecimal ? v.scale : 0;
  if (from == scale) {
    *out = v.i;
    return true;
  }
  if (from < scale) return !__builtin_mul_overflow(v.i, kPow10[scale - from], out);
  *out = v.i / kPow10[from - scale];
  return true;
}

const char* UnitName(ast::TimeUnit u) {
  switch (u) {
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

std::string LiteralText(const Value& v) {
  if (v.null) return "NULL";
  switch (v.type) {
    case SqlType::kVarchar: {
      std::string out = "'";
      for (char c : v.s) {
        out += c;
        if (c == '\'') out += '\'';
      }
      return out + "'";
    }
    case SqlType::kTimestamp:
      return absl::StrCat("TIMESTAMP '", v.ToString(), "'");
    case SqlType::kInterval:
      return absl::StrCat("INTERVAL '", v.i, "' MICROSECOND");
    default:
      return v.ToString();
  }
}

}  // namespace

std::string At(const ast::Position& pos) {
  return absl::StrCat("line ", pos.line, ", column ", pos.column, ": ");
}

absl::Status CodeError(const ast::Position& pos, std::string_view message) {
  return MakeError(ErrorCode::kCodeValidation, absl::StrCat(At(pos), std::string(message)));
}

int64_t StepMicros(int64_t micros, int64_t interval) {
  int64_t q = micros / interval;
  if (micros % interval != 0 && micros < 0) --q;
  return q * interval;
}

int64_t FloorToUnit(int64_t micros, ast::TimeUnit unit) {
  switch (unit) {
    case ast::TimeUnit::kMillisecond:
      return StepMicros(micros, 1000);
    case ast::TimeUnit::kSecond:
      return StepMicros(micros, 1000000);
    case ast::TimeUnit::kMinute:
      return StepMicros(micros, 60000000);
    case ast::TimeUnit::kHour:
      return StepMicros(micros, 3600000000LL);
    case ast::TimeUnit::kDay:
      return StepMicros(micros, 86400000000LL);
    case ast::TimeUnit::kWeek: {
      // Weeks start on Monday (ISO); 1970-01-01 was a Thursday.
      const int64_t day = 86400000000LL;
      return StepMicros(micros + 3 * day, 7 * day) - 3 * day;
    }
    case ast::TimeUnit::kMonth:
    case ast::TimeUnit::kYear: {
      const absl::CivilSecond cs =
          absl::ToCivilSecond(absl::FromUnixMicros(micros), absl::UTCTimeZone());
      const absl::CivilSecond floor = unit == ast::TimeUnit::kMonth
                                          ? absl::CivilSecond(absl::CivilMonth(cs))
                                          : absl::CivilSecond(absl::CivilYear(cs));
      return absl::ToUnixMicros(absl::FromCivil(floor, absl::UTCTimeZone()));
    }
  }
  return micros;
}

std::string ExprText(const ast::Expr& e) {
  auto args = [&](size_t from = 0) {
    std::vector<std::string> parts;
    for (size_t i = from; i < e.args.size(); ++i) parts.push_back(ExprText(*e.args[i]));
    return absl::StrJoin(parts, ", ");
  };
  switch (e.kind) {
    case ast::ExprKind::kLiteral:
      return LiteralText(e.literal);
    case ast::ExprKind::kColumn:
      return e.qualifier.empty() ? absl::StrCat("\"", e.name, "\"")
                                 : absl::StrCat("\"", e.qualifier, "\".\"", e.name, "\"");
    case ast::ExprKind::kStar:
      return e.qualifier.empty() ? "*" : absl::StrCat("\"", e.qualifier, "\".*");
    case ast::ExprKind::kUnary:
      return absl::StrCat("(", e.op, " ", ExprText(*e.args[0]), ")");
    case ast::ExprKind::kBinary:
      return absl::StrCat("(", ExprText(*e.args[0]), " ", e.op, " ", ExprText(*e.args[1]), ")");
    case ast::ExprKind::kIsNull:
      return absl::StrCat("(", ExprText(*e.args[0]), e.negated ? " IS NOT NULL)" : " IS NULL)");
    case ast::ExprKind::kBetween:
      return absl::StrCat("(", ExprText(*e.args[0]), e.negated ? " NOT" : "", " BETWEEN ",
                          ExprText(*e.args[1]), " AND ", ExprText(*e.args[2]), ")");
    case ast::ExprKind::kIn:
      return absl::StrCat("(", ExprText(*e.args[0]), e.negated ? " NOT" : "", " IN (", args(1),
                          "))");
    case ast::ExprKind::kLike:
      return absl::StrCat("(", ExprText(*e.args[0]), e.negated ? " NOT" : "", " LIKE ",
                          ExprText(*e.args[1]),
                          e.args.size() > 2 ? " ESCAPE " + ExprText(*e.args[2]) : "", ")");
    case ast::ExprKind::kFunction: {
      std::string s = e.name + "(";
      if (e.distinct) s += "DISTINCT ";
      if (e.star) s += "*";
      if (e.unit && (e.name == "FLOOR" || e.name == "CEIL")) {
        absl::StrAppend(&s, args(), " TO ", UnitName(*e.unit));
      } else if (e.unit) {
        absl::StrAppend(&s, UnitName(*e.unit), " FROM ", args());
      } else {
        s += args();
      }
      s += ")";
      if (!e.over.empty()) absl::StrAppend(&s, " OVER \"", e.over, "\"");
      if (e.over_window) s += " OVER (...)";
      return s;
    }
    case ast::ExprKind::kCase:
      return absl::StrCat("CASE(", e.has_operand ? "operand " : "", e.has_else ? "else " : "",
                          args(), ")");
    case ast::ExprKind::kCast:
      return absl::StrCat("CAST(", ExprText(*e.args[0]), " AS ", ColumnTypeName(e.cast_type), ")");
    case ast::ExprKind::kCursor:
      return "CURSOR(...)";
  }
  return "?";
}

bool IsAggregateFunction(std::string_view name) {
  return name == "COUNT" || name == "SUM" || name == "AVG" || name == "MIN" || name == "MAX";
}

bool ContainsAggregate(const ast::Expr& e) {
  if (e.kind == ast::ExprKind::kFunction && IsAggregateFunction(e.name) && e.over.empty() &&
      !e.over_window) {
    return true;
  }
  if (e.kind == ast::ExprKind::kCursor) return false;
  for (const ast::ExprPtr& a : e.args) {
    if (a && ContainsAggregate(*a)) return true;
  }
  return false;
}

int CompareValues(const Value& a, const Value& b) {
  auto cmp = [](auto x, auto y) { return x < y ? -1 : (y < x ? 1 : 0); };
  if (a.type == SqlType::kVarchar || b.type == SqlType::kVarchar) return a.s.compare(b.s);
  if (a.type == SqlType::kDouble || b.type == SqlType::kDouble) {
    return cmp(a.AsDouble(), b.AsDouble());
  }
  if (a.type == SqlType::kDecimal || b.type == SqlType::kDecimal) {
    const uint8_t sa = a.type == SqlType::kDecimal ? a.scale : 0;
    const uint8_t sb = b.type == SqlType::kDecimal ? b.scale : 0;
    const uint8_t s = std::max(sa, sb);
    const absl::int128 x = absl::int128(a.i) * kPow10[s - sa];
    const absl::int128 y = absl::int128(b.i) * kPow10[s - sb];
    return cmp(x, y);
  }
  return cmp(a.i, b.i);
}

bool CastValue(const Value& in, const ColumnType& type, Value* out, std::string* error) {
  absl::Status s = ConvertValue(in, type, out);
  if (s.ok()) return true;
  *error = std::string(s.message());
  return false;
}

namespace {

// ---------------------------------------------------------------------------------------------
// The compiler.

class Compiler {
 public:
  explicit Compiler(const Scope& scope) : scope_(scope) {}

  absl::StatusOr<CompiledExpr> Compile(const ast::Expr& e, int depth = 0) {
    if (depth > 200) return CodeError(e.pos, "expression nested too deeply");
    if (!scope_.slots.empty()) {
      const std::string key = ExprText(e);
      for (const Scope::Slot& slot : scope_.slots) {
        if (slot.key != key) continue;
        const int frame = slot.frame, index = slot.index;
        return CompiledExpr{slot.type,
                            [frame, index](EvalContext& ctx, Value& out) {
                              out = ctx.rows[frame]->values[index];
                              return true;
                            },
                            key};
      }
    }
    switch (e.kind) {
      case ast::ExprKind::kLiteral:
        return Literal(e);
      case ast::ExprKind::kColumn:
        return Column(e);
      case ast::ExprKind::kStar:
        return CodeError(e.pos, "'*' is not allowed here");
      case ast::ExprKind::kUnary:
        return Unary(e, depth);
      case ast::ExprKind::kBinary:
        return Binary(e, depth);
      case ast::ExprKind::kIsNull:
        return IsNull(e, depth);
      case ast::ExprKind::kBetween:
        return Between(e, depth);
      case ast::ExprKind::kIn:
        return In(e, depth);
      case ast::ExprKind::kLike:
        return Like(e, depth);
      case ast::ExprKind::kFunction:
        return Function(e, depth);
      case ast::ExprKind::kCase:
        return Case(e, depth);
      case ast::ExprKind::kCast:
        return Cast(e, depth);
      case ast::ExprKind::kCursor:
        return CodeError(e.pos, "CURSOR is allowed only as a table function's first argument");
    }
    return CodeError(e.pos, "unsupported expression");
  }

 private:
  absl::StatusOr<std::vector<CompiledExpr>> Args(const ast::Expr& e, int depth, size_t from = 0) {
    std::vector<CompiledExpr> out;
    for (size_t i = from; i < e.args.size(); ++i) {
      absl::StatusOr<CompiledExpr> c = Compile(*e.args[i], depth + 1);
      if (!c.ok()) return c.status();
      out.push_back(std::move(*c));
    }
    return out;
  }

  absl::StatusOr<CompiledExpr> Literal(const ast::Expr& e) {
    Value v = e.literal;
    ColumnType type;
    type.type = v.type;
    if (v.type == SqlType::kVarchar) type.length = std::max<uint32_t>(1, v.s.size());
    if (v.type == SqlType::kDecimal) {
      type.precision = 18;
      type.scale = v.scale;
    }
    return CompiledExpr{type,
                        [v](EvalContext&, Value& out) {
                          out = v;
                          return true;
                        },
                        LiteralText(v)};
  }

  absl::StatusOr<CompiledExpr> Column(const ast::Expr& e) {
    if (e.name == "ROWTIME") {
      if (!e.qualifier.empty() && !scope_.qualifiers.empty() &&
          std::find(scope_.qualifiers.begin(), scope_.qualifiers.end(), e.qualifier) ==
              scope_.qualifiers.end()) {
        return CodeError(e.pos, absl::StrCat("unknown stream or alias \"", e.qualifier, "\""));
      }
      bool declared = false;
      for (const ScopeColumn& c : scope_.columns) declared |= c.name == "ROWTIME";
      if (!declared) {
        return CompiledExpr{T(SqlType::kTimestamp),
                            [](EvalContext& ctx, Value& out) {
                              SetInt(out, SqlType::kTimestamp, absl::ToUnixMicros(ctx.rowtime));
                              return true;
                            },
                            ExprText(e)};
      }
    }
    const ScopeColumn* found = nullptr;
    for (const ScopeColumn& c : scope_.columns) {
      if (c.name != e.name) continue;
      if (!e.qualifier.empty() && c.qualifier != e.qualifier) continue;
      if (found != nullptr) {
        return CodeError(e.pos, absl::StrCat("column \"", e.name,
                                             "\" is ambiguous: qualify it with its stream"));
      }
      found = &c;
    }
    if (found == nullptr) {
      if (!e.qualifier.empty()) {
        return CodeError(e.pos,
                         absl::StrCat("unknown column \"", e.qualifier, "\".\"", e.name, "\""));
      }
      return CodeError(e.pos, absl::StrCat("unknown column \"", e.name, "\""));
    }
    const int frame = found->frame, index = found->index;
    if (index < 0) {
      return CompiledExpr{found->type,
                          [frame](EvalContext& ctx, Value& out) {
                            SetInt(out, SqlType::kTimestamp,
                                   absl::ToUnixMicros(ctx.rows[frame]->rowtime));
                            return true;
                          },
                          ExprText(e)};
    }
    return CompiledExpr{found->type,
                        [frame, index](EvalContext& ctx, Value& out) {
                          out = ctx.rows[frame]->values[index];
                          return true;
                        },
                        ExprText(e)};
  }

  absl::StatusOr<CompiledExpr> Unary(const ast::Expr& e, int depth) {
    absl::StatusOr<CompiledExpr> a = Compile(*e.args[0], depth + 1);
    if (!a.ok()) return a.status();
    EvalFn f = std::move(a->eval);
    const ColumnType t = a->type;
    if (e.op == "NOT") {
      if (t.type != SqlType::kBoolean && t.type != SqlType::kNull) {
        return CodeError(e.pos, absl::StrCat("NOT needs a BOOLEAN, not ", ColumnTypeName(t)));
      }
      return CompiledExpr{T(SqlType::kBoolean),
                          [f](EvalContext& ctx, Value& out) {
                            if (!f(ctx, out)) return false;
                            if (out.null) {
                              SetNull(out, SqlType::kBoolean);
                            } else {
                              SetBool(out, out.i == 0);
                            }
                            return true;
                          },
                          ExprText(e)};
    }
    if (!IsNumeric(t.type) && t.type != SqlType::kInterval && t.type != SqlType::kNull) {
      return CodeError(e.pos,
                       absl::StrCat("unary ", e.op, " needs a number, not ", ColumnTypeName(t)));
    }
    if (e.op == "+") return CompiledExpr{t, f, ExprText(e)};
    return CompiledExpr{t,
                        [f](EvalContext& ctx, Value& out) {
                          if (!f(ctx, out)) return false;
                          if (out.null) return true;
                          if (out.type == SqlType::kDouble) {
                            out.d = -out.d;
                          } else if (out.i == std::numeric_limits<int64_t>::min() ||
                                     (out.type == SqlType::kInteger &&
                                      out.i == std::numeric_limits<int32_t>::min())) {
                            return Fail(ctx, "numeric overflow in unary minus");
                          } else {
                            out.i = -out.i;
                          }
                          return true;
                        },
                        ExprText(e)};
  }

  absl::StatusOr<CompiledExpr> Binary(const ast::Expr& e, int depth) {
    absl::StatusOr<CompiledExpr> a = Compile(*e.args[0], depth + 1);
    if (!a.ok()) return a.status();
    absl::StatusOr<CompiledExpr> b = Compile(*e.args[1], depth + 1);
    if (!b.ok()) return b.status();
    const std::string& op = e.op;
    if (op == "AND" || op == "OR") return Logical(e, std::move(*a), std::move(*b));
    if (op == "=" || op == "<>" || op == "<" || op == "<=" || op == ">" || op == ">=") {
      return Comparison(e, std::move(*a), std::move(*b));
    }
    if (op == "||") return Concat(e, std::move(*a), std::move(*b));
    return Arithmetic(e, std::move(*a), std::move(*b));
  }

  absl::StatusOr<CompiledExpr> Logical(const ast::Expr& e, CompiledExpr a, CompiledExpr b) {
    for (const CompiledExpr* x : {&a, &b}) {
      if (x->type.type != SqlType::kBoolean && x->type.type != SqlType::kNull) {
        return CodeError(e.pos, absl::StrCat(e.op, " needs BOOLEAN operands, not ",
                                             ColumnTypeName(x->type), " (", x->text, ")"));
      }
    }
    const bool is_and = e.op == "AND";
    EvalFn fa = std::move(a.eval), fb = std::move(b.eval);
    auto scratch = std::make_shared<Value>();
    return CompiledExpr{T(SqlType::kBoolean),
                        [fa, fb, is_and, scratch](EvalContext& ctx, Value& out) {
                          if (!fa(ctx, out)) return false;
                          // Three-valued logic; short-circuit on the deciding value.
                          if (!out.null && (out.i != 0) != is_and) {
                            SetBool(out, !is_and);
                            return true;
                          }
                          const bool a_null = out.null;
                          if (!fb(ctx, *scratch)) return false;
                          const Value& r = *scratch;
                          if (!r.null && (r.i != 0) != is_and) {
                            SetBool(out, !is_and);
                          } else if (a_null || r.null) {
                            SetNull(out, SqlType::kBoolean);
                          } else {
                            SetBool(out, is_and);
                          }
                          return true;
                        },
                        ExprText(e)};
  }

  static bool Comparable(SqlType a, SqlType b) {
    if (a == SqlType::kNull || b == SqlType::kNull) return true;
    if (IsNumeric(a) && IsNumeric(b)) return true;
    return a == b;
  }

  absl::StatusOr<CompiledExpr> Comparison(const ast::Expr& e, CompiledExpr a, CompiledExpr b) {
    if (!Comparable(a.type.type, b.type.type)) {
      return CodeError(e.pos, absl::StrCat("cannot compare ", ColumnTypeName(a.type), " (", a.text,
                                           ") with ", ColumnTypeName(b.type), " (", b.text, ")"));
    }
    int op = 0;  // 0 =, 1 <>, 2 <, 3 <=, 4 >, 5 >=
    const std::string& s = e.op;
    if (s == "<>") op = 1;
    if (s == "<") op = 2;
    if (s == "<=") op = 3;
    if (s == ">") op = 4;
    if (s == ">=") op = 5;
    EvalFn fa = std::move(a.eval), fb = std::move(b.eval);
    auto scratch = std::make_shared<Value>();
    return CompiledExpr{T(SqlType::kBoolean),
                        [fa, fb, op, scratch](EvalContext& ctx, Value& out) {
                          if (!fa(ctx, out) || !fb(ctx, *scratch)) return false;
                          if (out.null || scratch->null) {
                            SetNull(out, SqlType::kBoolean);
                            return true;
                          }
                          const int c = CompareValues(out, *scratch);
                          bool r = false;
                          switch (op) {
                            case 0:
                              r = c == 0;
                              break;
                            case 1:
                              r = c != 0;
                              break;
                            case 2:
                              r = c < 0;
                              break;
                            case 3:
                              r = c <= 0;
                              break;
                            case 4:
                              r = c > 0;
                              break;
                            default:
                              r = c >= 0;
                              break;
                          }
                          SetBool(out, r);
                          return true;
                        },
                        ExprText(e)};
  }

  absl::StatusOr<CompiledExpr> Concat(const ast::Expr& e, CompiledExpr a, CompiledExpr b) {
    for (const CompiledExpr* x : {&a, &b}) {
      if (x->type.type != SqlType::kVarchar && x->type.type != SqlType::kNull) {
        return CodeError(e.pos, absl::StrCat("|| needs VARCHAR operands, not ",
                                             ColumnTypeName(x->type), " (", x->text, ")"));
      }
    }
    ColumnType t = T(SqlType::kVarchar);
    t.length = std::min<uint32_t>(65535, a.type.length + b.type.length);
    EvalFn fa = std::move(a.eval), fb = std::move(b.eval);
    auto scratch = std::make_shared<Value>();
    return CompiledExpr{t,
                        [fa, fb, scratch](EvalContext& ctx, Value& out) {
                          if (!fa(ctx, out) || !fb(ctx, *scratch)) return false;
                          if (out.null || scratch->null) {
                            SetNull(out, SqlType::kVarchar);
                            return true;
                          }
                          out.s += scratch->s;
                          return true;
                        },
                        ExprText(e)};
  }

  absl::StatusOr<CompiledExpr> Arithmetic(const ast::Expr& e, CompiledExpr a, CompiledExpr b) {
    const SqlType ta = a.type.type, tb = b.type.type;
    const char op = e.op[0];
    EvalFn fa = std::move(a.eval), fb = std::move(b.eval);
    auto scratch = std::make_shared<Value>();
    auto mismatch = [&] {
      return CodeError(
          e.pos, absl::StrCat("operator ", e.op, " cannot take ", ColumnTypeName(a.type), " (",
                              a.text, ") and ", ColumnTypeName(b.type), " (", b.text, ")"));
    };
    // Time arithmetic: TIMESTAMP +/- INTERVAL, TIMESTAMP - TIMESTAMP (an INTERVAL).
    if (ta == SqlType::kTimestamp || tb == SqlType::kTimestamp || ta == SqlType::kInterval ||
        tb == SqlType::kInterval) {
      SqlType result;
      if (ta == SqlType::kTimestamp && tb == SqlType::kInterval && (op == '+' || op == '-')) {
        result = SqlType::kTimestamp;
      } else if (ta == SqlType::kInterval && tb == SqlType::kTimestamp && op == '+') {
        result = SqlType::kTimestamp;
      } else if (ta == SqlType::kTimestamp && tb == SqlType::kTimestamp && op == '-') {
        result = SqlType::kInterval;
      } else if (ta == SqlType::kInterval && tb == SqlType::kInterval && (op == '+' || op == '-')) {
        result = SqlType::kInterval;
      } else {
        return mismatch();
      }
      return CompiledExpr{T(result),
                          [fa, fb, scratch, op, result](EvalContext& ctx, Value& out) {
                            if (!fa(ctx, out) || !fb(ctx, *scratch)) return false;
                            if (out.null || scratch->null) {
                              SetNull(out, result);
                              return true;
                            }
                            int64_t r;
                            const bool overflow =
                                op == '+' ? __builtin_add_overflow(out.i, scratch->i, &r)
                                          : __builtin_sub_overflow(out.i, scratch->i, &r);
                            if (overflow) return Fail(ctx, "time arithmetic overflows");
                            SetInt(out, result, r);
                            return true;
                          },
                          ExprText(e)};
    }
    const bool a_ok = IsNumeric(ta) || ta == SqlType::kNull;
    const bool b_ok = IsNumeric(tb) || tb == SqlType::kNull;
    if (!a_ok || !b_ok) return mismatch();
    // Result type: DOUBLE if either is; DECIMAL if either is (DOUBLE for '/'); otherwise BIGINT
    // if either is, else INTEGER.
    ColumnType result;
    if (ta == SqlType::kDouble || tb == SqlType::kDouble) {
      result = T(SqlType::kDouble);
    } else if (ta == SqlType::kDecimal || tb == SqlType::kDecimal) {
      const uint8_t sa = ta == SqlType::kDecimal ? a.type.scale : 0;
      const uint8_t sb = tb == SqlType::kDecimal ? b.type.scale : 0;
      if (op == '/') {
        result = T(SqlType::kDouble);
      } else if (op == '*') {
        if (sa + sb > 18) {
          result = T(SqlType::kDouble);
        } else {
          result = Dec(static_cast<uint8_t>(sa + sb));
        }
      } else {
        result = Dec(std::max(sa, sb));
      }
    } else if (ta == SqlType::kBigint || tb == SqlType::kBigint) {
      result = T(SqlType::kBigint);
    } else if (ta == SqlType::kNull && tb == SqlType::kNull) {
      result = T(SqlType::kInteger);
    } else {
      result = T(SqlType::kInteger);
    }
    const SqlType rt = result.type;
    const uint8_t rscale = result.scale;
    return CompiledExpr{
        result,
        [fa, fb, scratch, op, rt, rscale](EvalContext& ctx, Value& out) {
          if (!fa(ctx, out) || !fb(ctx, *scratch)) return false;
          const Value& r = *scratch;
          if (out.null || r.null) {
            SetNull(out, rt);
            return true;
          }
          if (rt == SqlType::kDouble) {
            const double x = out.AsDouble(), y = r.AsDouble();
            double v = 0;
            switch (op) {
              case '+':
                v = x + y;
                break;
              case '-':
                v = x - y;
                break;
              case '*':
                v = x * y;
                break;
              case '/':
                if (y == 0) return Fail(ctx, "division by zero");
                v = x / y;
                break;
              default:
                if (y == 0) return Fail(ctx, "division by zero");
                v = std::fmod(x, y);
                break;
            }
            SetDouble(out, v);
            return true;
          }
          int64_t x, y, v = 0;
          if (rt == SqlType::kDecimal && op != '*') {
            if (!Rescale(out, rscale, &x) || !Rescale(r, rscale, &y)) {
              return Fail(ctx, "DECIMAL overflow");
            }
          } else {
            x = out.i;
            y = r.i;
          }
          bool overflow = false;
          switch (op) {
            case '+':
              overflow = __builtin_add_overflow(x, y, &v);
              break;
            case '-':
              overflow = __builtin_sub_overflow(x, y, &v);
              break;
            case '*':
              overflow = __builtin_mul_overflow(x, y, &v);
              break;
            case '/':
            case '%':
              if (y == 0) return Fail(ctx, "division by zero");
              if (x == std::numeric_limits<int64_t>::min() && y == -1) {
                overflow = true;
                break;
              }
              v = op == '/' ? x / y : x % y;
              break;
            default:
              break;
          }
          if (overflow) return Fail(ctx, "numeric overflow");
          if (rt == SqlType::kInteger && (v > std::numeric_limits<int32_t>::max() ||
                                          v < std::numeric_limits<int32_t>::min())) {
            return Fail(ctx, "INTEGER overflow");
          }
          if (rt == SqlType::kDecimal) {
            SetDecimal(out, v, rscale);
          } else {
            SetInt(out, rt, v);
          }
          return true;
        },
        ExprText(e)};
  }

  absl::StatusOr<CompiledExpr> IsNull(const ast::Expr& e, int depth) {
    absl::StatusOr<CompiledExpr> a = Compile(*e.args[0], depth + 1);
    if (!a.ok()) return a.status();
    EvalFn f = std::move(a->eval);
    const bool negated = e.negated;
    return CompiledExpr{T(SqlType::kBoolean),
                        [f, negated](EvalContext& ctx, Value& out) {
                          if (!f(ctx, out)) return false;
                          SetBool(out, out.null != negated);
                          return true;
                        },
                        ExprText(e)};
  }

  absl::StatusOr<CompiledExpr> Between(const ast::Expr& e, int depth) {
    // x BETWEEN lo AND hi == x >= lo AND x <= hi, with x evaluated once.
    absl::StatusOr<std::vector<CompiledExpr>> args = Args(e, depth);
    if (!args.ok()) return args.status();
    for (int i = 1; i <= 2; ++i) {
      if (!Comparable((*args)[0].type.type, (*args)[i].type.type)) {
        return CodeError(e.pos,
                         absl::StrCat("cannot compare ", ColumnTypeName((*args)[0].type), " with ",
                                      ColumnTypeName((*args)[i].type), " in BETWEEN"));
      }
    }
    EvalFn fx = (*args)[0].eval, flo = (*args)[1].eval, fhi = (*args)[2].eval;
    const bool negated = e.negated;
    auto lo = std::make_shared<Value>(), hi = std::make_shared<Value>();
    return CompiledExpr{T(SqlType::kBoolean),
                        [fx, flo, fhi, lo, hi, negated](EvalContext& ctx, Value& out) {
                          if (!fx(ctx, out) || !flo(ctx, *lo) || !fhi(ctx, *hi)) return false;
                          // Three-valued: a NULL bound decides only if the other fails.
                          int ge = out.null || lo->null ? -1 : CompareValues(out, *lo) >= 0;
                          int le = out.null || hi->null ? -1 : CompareValues(out, *hi) <= 0;
                          if (ge == 0 || le == 0) {
                            SetBool(out, negated);
                          } else if (ge < 0 || le < 0) {
                            SetNull(out, SqlType::kBoolean);
                          } else {
                            SetBool(out, !negated);
                          }
                          return true;
                        },
                        ExprText(e)};
  }

  absl::StatusOr<CompiledExpr> In(const ast::Expr& e, int depth) {
    absl::StatusOr<std::vector<CompiledExpr>> args = Args(e, depth);
    if (!args.ok()) return args.status();
    std::vector<EvalFn> fns;
    for (size_t i = 0; i < args->size(); ++i) {
      if (i > 0 && !Comparable((*args)[0].type.type, (*args)[i].type.type)) {
        return CodeError(e.args[i]->pos,
                         absl::StrCat("cannot compare ", ColumnTypeName((*args)[0].type), " with ",
                                      ColumnTypeName((*args)[i].type), " in IN"));
      }
      fns.push_back((*args)[i].eval);
    }
    const bool negated = e.negated;
    auto scratch = std::make_shared<Value>();
    return CompiledExpr{T(SqlType::kBoolean),
                        [fns, scratch, negated](EvalContext& ctx, Value& out) {
                          if (!fns[0](ctx, out)) return false;
                          if (out.null) {
                            SetNull(out, SqlType::kBoolean);
                            return true;
                          }
                          bool saw_null = false;
                          for (size_t i = 1; i < fns.size(); ++i) {
                            if (!fns[i](ctx, *scratch)) return false;
                            if (scratch->null) {
                              saw_null = true;
                            } else if (CompareValues(out, *scratch) == 0) {
                              SetBool(out, !negated);
                              return true;
                            }
                          }
                          if (saw_null) {
                            SetNull(out, SqlType::kBoolean);
                          } else {
                            SetBool(out, negated);
                          }
                          return true;
                        },
                        ExprText(e)};
  }

  // LIKE: '%' any run, '_' one character (bytes), with an optional escape character.
  static bool LikeMatch(std::string_view s, std::string_view p, char escape) {
    size_t si = 0, pi = 0, star_p = std::string_view::npos, star_s = 0;
    while (si < s.size()) {
      if (pi < p.size() && p[pi] == escape && escape != 0 && pi + 1 < p.size()) {
        if (s[si] == p[pi + 1]) {
          si++;
          pi += 2;
          continue;
        }
      } else if (pi < p.size() && p[pi] == '%') {
        star_p = pi++;
        star_s = si;
        continue;
      } else if (pi < p.size() && (p[pi] == '_' || p[pi] == s[si])) {
        si++;
        pi++;
        continue;
      }
      if (star_p == std::string_view::npos) return false;
      pi = star_p + 1;
      si = ++star_s;
    }
    while (pi < p.size() && p[pi] == '%') pi++;
    return pi == p.size();
  }

  absl::StatusOr<CompiledExpr> Like(const ast::Expr& e, int depth) {
    absl::StatusOr<std::vector<CompiledExpr>> args = Args(e, depth);
    if (!args.ok()) return args.status();
    for (const CompiledExpr& a : *args) {
      if (a.type.type != SqlType::kVarchar && a.type.type != SqlType::kNull) {
        return CodeError(e.pos, absl::StrCat("LIKE needs VARCHAR operands, not ",
                                             ColumnTypeName(a.type), " (", a.text, ")"));
      }
    }
    std::vector<EvalFn> fns;
    for (const CompiledExpr& a : *args) fns.push_back(a.eval);
    const bool negated = e.negated;
    auto p = std::make_shared<Value>(), esc = std::make_shared<Value>();
    return CompiledExpr{T(SqlType::kBoolean),
                        [fns, p, esc, negated](EvalContext& ctx, Value& out) {
                          if (!fns[0](ctx, out) || !fns[1](ctx, *p)) return false;
                          char escape = 0;
                          if (fns.size() > 2) {
                            if (!fns[2](ctx, *esc)) return false;
                            if (!esc->null && esc->s.size() != 1) {
                              return Fail(ctx, "LIKE's ESCAPE must be one character");
                            }
                            if (!esc->null) escape = esc->s[0];
                          }
                          if (out.null || p->null) {
                            SetNull(out, SqlType::kBoolean);
                            return true;
                          }
                          SetBool(out, LikeMatch(out.s, p->s, escape) != negated);
                          return true;
                        },
                        ExprText(e)};
  }

  absl::StatusOr<CompiledExpr> Case(const ast::Expr& e, int depth) {
    absl::StatusOr<std::vector<CompiledExpr>> args = Args(e, depth);
    if (!args.ok()) return args.status();
    size_t i = 0;
    std::optional<CompiledExpr> operand;
    if (e.has_operand) operand = (*args)[i++];
    const size_t end = args->size() - (e.has_else ? 1 : 0);
    std::vector<EvalFn> whens, thens;
    ColumnType result;
    auto unify = [&](const CompiledExpr& c) -> absl::Status {
      if (c.type.type == SqlType::kNull) return absl::OkStatus();
      if (result.type == SqlType::kNull) {
        result = c.type;
      } else if (result.type != c.type.type) {
        if (IsNumeric(result.type) && IsNumeric(c.type.type)) {
          // Widen: DOUBLE > DECIMAL > BIGINT > INTEGER.
          if (result.type == SqlType::kDouble || c.type.type == SqlType::kDouble) {
            result = T(SqlType::kDouble);
          } else if (result.type == SqlType::kDecimal || c.type.type == SqlType::kDecimal) {
            result = Dec(std::max(result.type == SqlType::kDecimal ? result.scale : 0,
                                  c.type.type == SqlType::kDecimal ? c.type.scale : 0));
          } else {
            result = T(SqlType::kBigint);
          }
        } else {
          return CodeError(
              e.pos, absl::StrCat("CASE branches have different types: ", ColumnTypeName(result),
                                  " and ", ColumnTypeName(c.type), " (", c.text, ")"));
        }
      } else if (result.type == SqlType::kVarchar) {
        result.length = std::max(result.length, c.type.length);
      } else if (result.type == SqlType::kDecimal) {
        result.scale = std::max(result.scale, c.type.scale);
      }
      return absl::OkStatus();
    };
    for (; i + 1 < end + 1 && i < end; i += 2) {
      const CompiledExpr& w = (*args)[i];
      if (operand) {
        if (!Comparable(operand->type.type, w.type.type)) {
          return CodeError(
              e.pos, absl::StrCat("CASE cannot compare ", ColumnTypeName(operand->type), " with ",
                                  ColumnTypeName(w.type)));
        }
      } else if (w.type.type != SqlType::kBoolean && w.type.type != SqlType::kNull) {
        return CodeError(e.pos, absl::StrCat("CASE WHEN needs a BOOLEAN condition, not ",
                                             ColumnTypeName(w.type), " (", w.text, ")"));
      }
      absl::Status s = unify((*args)[i + 1]);
      if (!s.ok()) return s;
      whens.push_back(w.eval);
      thens.push_back((*args)[i + 1].eval);
    }
    EvalFn else_fn;
    if (e.has_else) {
      absl::Status s = unify(args->back());
      if (!s.ok()) return s;
      else_fn = args->back().eval;
    }
    if (result.type == SqlType::kNull) result = T(SqlType::kVarchar);
    EvalFn op_fn = operand ? operand->eval : EvalFn();
    auto a = std::make_shared<Value>(), b = std::make_shared<Value>();
    const ColumnType rt = result;
    return CompiledExpr{result,
                        [op_fn, whens, thens, else_fn, a, b, rt](EvalContext& ctx, Value& out) {
                          if (op_fn && !op_fn(ctx, *a)) return false;
                          for (size_t k = 0; k < whens.size(); ++k) {
                            if (!whens[k](ctx, *b)) return false;
                            bool hit;
                            if (op_fn) {
                              hit = !a->null && !b->null && CompareValues(*a, *b) == 0;
                            } else {
                              hit = !b->null && b->i != 0;
                            }
                            if (hit) {
                              if (!thens[k](ctx, *b)) return false;
                              return CastToResult(ctx, *b, rt, out);
                            }
                          }
                          if (!else_fn) {
                            SetNull(out, rt.type);
                            return true;
                          }
                          if (!else_fn(ctx, *b)) return false;
                          return CastToResult(ctx, *b, rt, out);
                        },
                        ExprText(e)};
  }

  static bool CastToResult(EvalContext& ctx, const Value& v, const ColumnType& type, Value& out) {
    if (v.null) {
      SetNull(out, type.type);
      return true;
    }
    if (v.type == type.type && (type.type != SqlType::kDecimal || v.scale == type.scale)) {
      out = v;
      return true;
    }
    std::string error;
    if (!CastValue(v, type, &out, &error)) return Fail(ctx, error);
    return true;
  }

  absl::StatusOr<CompiledExpr> Cast(const ast::Expr& e, int depth) {
    absl::StatusOr<CompiledExpr> a = Compile(*e.args[0], depth + 1);
    if (!a.ok()) return a.status();
    const SqlType from = a->type.type;
    const SqlType to = e.cast_type.type;
    const bool ok = from == SqlType::kNull || from == to || to == SqlType::kVarchar ||
                    from == SqlType::kVarchar || (IsNumeric(from) && IsNumeric(to)) ||
                    (from == SqlType::kBoolean && IsNumeric(to)) ||
                    (IsNumeric(from) && to == SqlType::kBoolean) ||
                    (from == SqlType::kTimestamp && IsIntegral(to)) ||
                    (IsIntegral(from) && to == SqlType::kTimestamp);
    if (!ok) {
      return CodeError(e.pos, absl::StrCat("cannot CAST ", ColumnTypeName(a->type), " to ",
                                           ColumnTypeName(e.cast_type)));
    }
    EvalFn f = std::move(a->eval);
    const ColumnType type = e.cast_type;
    auto scratch = std::make_shared<Value>();
    return CompiledExpr{type,
                        [f, type, scratch](EvalContext& ctx, Value& out) {
                          if (!f(ctx, *scratch)) return false;
                          std::string error;
                          if (!CastValue(*scratch, type, &out, &error)) {
                            return Fail(ctx, error);
                          }
                          return true;
                        },
                        ExprText(e)};
  }

  absl::Status Arity(const ast::Expr& e, size_t lo, size_t hi) {
    if (e.args.size() < lo || e.args.size() > hi) {
      if (lo == hi) {
        return CodeError(e.pos, absl::StrCat(e.name, " takes ", lo, " argument", lo == 1 ? "" : "s",
                                             ", not ", e.args.size()));
      }
      return CodeError(e.pos, absl::StrCat(e.name, " takes ", lo, " to ", hi, " arguments, not ",
                                           e.args.size()));
    }
    return absl::OkStatus();
  }

  absl::Status Need(const ast::Expr& e, const CompiledExpr& a, bool ok, std::string_view what) {
    if (ok || a.type.type == SqlType::kNull) return absl::OkStatus();
    return CodeError(e.pos, absl::StrCat(e.name, " needs ", std::string(what), ", not ",
                                         ColumnTypeName(a.type), " (", a.text, ")"));
  }

  absl::StatusOr<CompiledExpr> Function(const ast::Expr& e, int depth) {
    const std::string& n = e.name;
    if (IsAggregateFunction(n) && e.over.empty() && !e.over_window) {
      return CodeError(e.pos, absl::StrCat("aggregate ", n,
                                           " is not allowed here (only in the select list or "
                                           "HAVING of a query with GROUP BY or a window)"));
    }
    if (!e.over.empty() || e.over_window) {
      return CodeError(e.pos, absl::StrCat(n,
                                           " OVER a window is allowed only in the select "
                                           "list"));
    }
    if (n == "LAG") return CodeError(e.pos, "LAG needs OVER a window");
    absl::StatusOr<std::vector<CompiledExpr>> args = Args(e, depth);
    if (!args.ok()) return args.status();
    std::vector<CompiledExpr>& a = *args;
    const std::string text = ExprText(e);
    auto fn = [&](size_t i) { return a[i].eval; };

    if (n == "STEP") {
      absl::Status s = Arity(e, 2, 2);
      if (!s.ok()) return s;
      if (e.args[1]->kind != ast::ExprKind::kLiteral ||
          e.args[1]->literal.type != SqlType::kInterval || e.args[1]->literal.i <= 0) {
        return CodeError(e.pos,
                         "STEP needs a positive INTERVAL literal: STEP(x BY INTERVAL "
                         "'n' unit)");
      }
      const int64_t interval = e.args[1]->literal.i;
      if (a[0].type.type == SqlType::kTimestamp) {
        EvalFn f = fn(0);
        return CompiledExpr{T(SqlType::kTimestamp),
                            [f, interval](EvalContext& ctx, Value& out) {
                              if (!f(ctx, out)) return false;
                              if (!out.null) out.i = StepMicros(out.i, interval);
                              return true;
                            },
                            text};
      }
      return CodeError(e.pos,
                       absl::StrCat("STEP needs a TIMESTAMP, not ", ColumnTypeName(a[0].type)));
    }
    if (n == "FLOOR" || n == "CEIL" || n == "CEILING") {
      absl::Status s = Arity(e, 1, 1);
      if (!s.ok()) return s;
      const bool ceil = n != "FLOOR";
      EvalFn f = fn(0);
      if (e.unit) {
        s = Need(e, a[0], a[0].type.type == SqlType::kTimestamp, "a TIMESTAMP");
        if (!s.ok()) return s;
        const ast::TimeUnit unit = *e.unit;
        return CompiledExpr{T(SqlType::kTimestamp),
                            [f, unit, ceil](EvalContext& ctx, Value& out) {
                              if (!f(ctx, out)) return false;
                              if (out.null) return true;
                              const int64_t fl = FloorToUnit(out.i, unit);
                              if (ceil && fl != out.i) {
                                // The next unit boundary: floor of (floor + one unit's max).
                                int64_t probe = fl;
                                int64_t step = 1000;
                                while (FloorToUnit(probe, unit) == fl) {
                                  probe = fl + step;
                                  step *= 2;
                                }
                                // Walk back to the exact boundary.
                                int64_t lo = fl, hi = probe;
                                while (hi - lo > 1) {
                                  const int64_t mid = lo + (hi - lo) / 2;
                                  (FloorToUnit(mid, unit) == fl ? lo : hi) = mid;
                                }
                                out.i = hi;
                              } else {
                                out.i = fl;
                              }
                              return true;
                            },
                            text};
      }
      s = Need(e, a[0], IsNumeric(a[0].type.type), "a number");
      if (!s.ok()) return s;
      ColumnType t = a[0].type;
      if (t.type == SqlType::kDecimal) t = Dec(0);
      return CompiledExpr{t,
                          [f, ceil](EvalContext& ctx, Value& out) {
                            if (!f(ctx, out)) return false;
                            if (out.null) return true;
                            if (out.type == SqlType::kDouble) {
                              out.d = ceil ? std::ceil(out.d) : std::floor(out.d);
                            } else if (out.type == SqlType::kDecimal) {
                              const int64_t p = kPow10[out.scale];
                              int64_t q = out.i / p;
                              const int64_t r = out.i % p;
                              if (r != 0 && ceil && out.i > 0) ++q;
                              if (r != 0 && !ceil && out.i < 0) --q;
                              SetDecimal(out, q, 0);
                            }
                            return true;
                          },
                          text};
    }
    if (n == "TSDIFF") {
      absl::Status s = Arity(e, 2, 2);
      if (!s.ok()) return s;
      for (int i = 0; i < 2; ++i) {
        s = Need(e, a[i], a[i].type.type == SqlType::kTimestamp, "TIMESTAMPs");
        if (!s.ok()) return s;
      }
      EvalFn f0 = fn(0), f1 = fn(1);
      auto scratch = std::make_shared<Value>();
      return CompiledExpr{T(SqlType::kBigint),
                          [f0, f1, scratch](EvalContext& ctx, Value& out) {
                            if (!f0(ctx, out) || !f1(ctx, *scratch)) return false;
                            if (out.null || scratch->null) {
                              SetNull(out, SqlType::kBigint);
                              return true;
                            }
                            // Milliseconds, as KDA's TSDIFF.
                            SetInt(out, SqlType::kBigint, (out.i - scratch->i) / 1000);
                            return true;
                          },
                          text};
    }
    if (n == "TO_TIMESTAMP") {
      absl::Status s = Arity(e, 1, 1);
      if (!s.ok()) return s;
      s = Need(e, a[0], IsIntegral(a[0].type.type), "BIGINT milliseconds");
      if (!s.ok()) return s;
      EvalFn f = fn(0);
      return CompiledExpr{T(SqlType::kTimestamp),
                          [f](EvalContext& ctx, Value& out) {
                            if (!f(ctx, out)) return false;
                            if (out.null) {
                              SetNull(out, SqlType::kTimestamp);
                              return true;
                            }
                            int64_t micros;
                            if (__builtin_mul_overflow(out.i, int64_t{1000}, &micros)) {
                              return Fail(ctx, "TO_TIMESTAMP out of range");
                            }
                            SetInt(out, SqlType::kTimestamp, micros);
                            return true;
                          },
                          text};
    }
    if (n == "UNIX_TIMESTAMP") {
      absl::Status s = Arity(e, 1, 1);
      if (!s.ok()) return s;
      s = Need(e, a[0], a[0].type.type == SqlType::kTimestamp, "a TIMESTAMP");
      if (!s.ok()) return s;
      EvalFn f = fn(0);
      return CompiledExpr{T(SqlType::kBigint),
                          [f](EvalContext& ctx, Value& out) {
                            if (!f(ctx, out)) return false;
                            if (out.null) {
                              SetNull(out, SqlType::kBigint);
                              return true;
                            }
                            SetInt(out, SqlType::kBigint, StepMicros(out.i, 1000) / 1000);
                            return true;
                          },
                          text};
    }
    if (n == "CURRENT_ROW_TIMESTAMP" || n == "CURRENT_TIMESTAMP" || n == "LOCALTIMESTAMP") {
      absl::Status s = Arity(e, 0, 0);
      if (!s.ok()) return s;
      return CompiledExpr{T(SqlType::kTimestamp),
                          [](EvalContext& ctx, Value& out) {
                            SetInt(out, SqlType::kTimestamp, absl::ToUnixMicros(ctx.rowtime));
                            return true;
                          },
                          text};
    }
    if (n == "EXTRACT") {
      absl::Status s = Arity(e, 1, 1);
      if (!s.ok()) return s;
      if (!e.unit) return CodeError(e.pos, "EXTRACT needs a unit: EXTRACT(unit FROM x)");
      s = Need(e, a[0], a[0].type.type == SqlType::kTimestamp, "a TIMESTAMP");
      if (!s.ok()) return s;
      EvalFn f = fn(0);
      const ast::TimeUnit unit = *e.unit;
      return CompiledExpr{T(SqlType::kBigint),
                          [f, unit](EvalContext& ctx, Value& out) {
                            if (!f(ctx, out)) return false;
                            if (out.null) {
                              SetNull(out, SqlType::kBigint);
                              return true;
                            }
                            const absl::CivilSecond c = absl::ToCivilSecond(
                                absl::FromUnixMicros(out.i), absl::UTCTimeZone());
                            int64_t v = 0;
                            switch (unit) {
                              case ast::TimeUnit::kYear:
                                v = c.year();
                                break;
                              case ast::TimeUnit::kMonth:
                                v = c.month();
                                break;
                              case ast::TimeUnit::kDay:
                                v = c.day();
                                break;
                              case ast::TimeUnit::kHour:
                                v = c.hour();
                                break;
                              case ast::TimeUnit::kMinute:
                                v = c.minute();
                                break;
                              case ast::TimeUnit::kSecond:
                                v = c.second();
                                break;
                              case ast::TimeUnit::kMillisecond:
                                v = ((out.i % 60000000) + 60000000) % 60000000 / 1000;
                                break;
                              case ast::TimeUnit::kWeek:
                                v = absl::GetWeekday(absl::CivilDay(c)) == absl::Weekday::sunday
                                        ? 7
                                        : static_cast<int>(absl::GetWeekday(absl::CivilDay(c))) + 1;
                                break;
                            }
                            SetInt(out, SqlType::kBigint, v);
                            return true;
                          },
                          text};
    }
    if (n == "LOWER" || n == "UPPER") {
      absl::Status s = Arity(e, 1, 1);
      if (!s.ok()) return s;
      s = Need(e, a[0], a[0].type.type == SqlType::kVarchar, "a VARCHAR");
      if (!s.ok()) return s;
      EvalFn f = fn(0);
      const bool upper = n == "UPPER";
      return CompiledExpr{a[0].type.type == SqlType::kNull ? T(SqlType::kVarchar) : a[0].type,
                          [f, upper](EvalContext& ctx, Value& out) {
                            if (!f(ctx, out)) return false;
                            if (out.null) return true;
                            if (upper) {
                              absl::AsciiStrToUpper(&out.s);
                            } else {
                              absl::AsciiStrToLower(&out.s);
                            }
                            return true;
                          },
                          text};
    }
    if (n == "CHAR_LENGTH" || n == "CHARACTER_LENGTH" || n == "LENGTH") {
      absl::Status s = Arity(e, 1, 1);
      if (!s.ok()) return s;
      s = Need(e, a[0], a[0].type.type == SqlType::kVarchar, "a VARCHAR");
      if (!s.ok()) return s;
      EvalFn f = fn(0);
      return CompiledExpr{T(SqlType::kInteger),
                          [f](EvalContext& ctx, Value& out) {
                            if (!f(ctx, out)) return false;
                            if (out.null) {
                              SetNull(out, SqlType::kInteger);
                              return true;
                            }
                            int64_t chars = 0;
                            for (unsigned char c : out.s) chars += (c & 0xC0) != 0x80;
                            SetInt(out, SqlType::kInteger, chars);
                            return true;
                          },
                          text};
    }
    if (n == "SUBSTRING") {
      absl::Status s = Arity(e, 2, 3);
      if (!s.ok()) return s;
      s = Need(e, a[0], a[0].type.type == SqlType::kVarchar, "a VARCHAR");
      if (!s.ok()) return s;
      for (size_t i = 1; i < a.size(); ++i) {
        s = Need(e, a[i], IsIntegral(a[i].type.type), "INTEGER positions");
        if (!s.ok()) return s;
      }
      EvalFn f = fn(0), fs = fn(1), fl = a.size() > 2 ? fn(2) : EvalFn();
      auto p = std::make_shared<Value>(), l = std::make_shared<Value>();
      return CompiledExpr{
          a[0].type.type == SqlType::kNull ? T(SqlType::kVarchar) : a[0].type,
          [f, fs, fl, p, l](EvalContext& ctx, Value& out) {
            if (!f(ctx, out) || !fs(ctx, *p)) return false;
            if (fl && !fl(ctx, *l)) return false;
            if (out.null || p->null || (fl && l->null)) {
              SetNull(out, SqlType::kVarchar);
              return true;
            }
            // SQL: 1-based start; characters [start, start + len).
            int64_t start = p->i;
            int64_t end = std::numeric_limits<int64_t>::max();
            if (fl) {
              if (l->i < 0) return Fail(ctx, "SUBSTRING length is negative");
              end = start + l->i;
            }
            std::string& str = out.s;
            size_t b = 0, byte_start = str.size(), byte_end = str.size();
            int64_t ch = 1;
            for (; b <= str.size(); ++b) {
              if (b < str.size() && (static_cast<unsigned char>(str[b]) & 0xC0) == 0x80) {
                continue;
              }
              if (ch == std::max<int64_t>(start, 1) && byte_start == str.size()) {
                byte_start = b;
              }
              if (ch == end) {
                byte_end = b;
                break;
              }
              ++ch;
            }
            if (end <= 1 || byte_start >= byte_end) {
              str.clear();
            } else {
              str.erase(byte_end);
              str.erase(0, byte_start);
            }
            return true;
          },
          text};
    }
    if (n == "POSITION") {
      absl::Status s = Arity(e, 2, 2);
      if (!s.ok()) return s;
      for (int i = 0; i < 2; ++i) {
        s = Need(e, a[i], a[i].type.type == SqlType::kVarchar, "VARCHARs");
        if (!s.ok()) return s;
      }
      EvalFn f0 = fn(0), f1 = fn(1);
      auto h = std::make_shared<Value>();
      return CompiledExpr{T(SqlType::kInteger),
                          [f0, f1, h](EvalContext& ctx, Value& out) {
                            if (!f0(ctx, out) || !f1(ctx, *h)) return false;
                            if (out.null || h->null) {
                              SetNull(out, SqlType::kInteger);
                              return true;
                            }
                            const size_t at = h->s.find(out.s);
                            int64_t pos = 0;
                            if (at != std::string::npos) {
                              pos = 1;
                              for (size_t b = 0; b < at; ++b) {
                                pos += (static_cast<unsigned char>(h->s[b]) & 0xC0) != 0x80;
                              }
                            }
                            SetInt(out, SqlType::kInteger, pos);
                            return true;
                          },
                          text};
    }
    if (n == "TRIM") {
      absl::Status s = Arity(e, 1, 2);
      if (!s.ok()) return s;
      for (size_t i = 0; i < a.size(); ++i) {
        s = Need(e, a[i], a[i].type.type == SqlType::kVarchar, "VARCHARs");
        if (!s.ok()) return s;
      }
      EvalFn f = fn(0), fc = a.size() > 1 ? fn(1) : EvalFn();
      const ast::TrimSide side = e.trim_side;
      auto c = std::make_shared<Value>();
      return CompiledExpr{a[0].type.type == SqlType::kNull ? T(SqlType::kVarchar) : a[0].type,
                          [f, fc, side, c](EvalContext& ctx, Value& out) {
                            if (!f(ctx, out)) return false;
                            char ch = ' ';
                            if (fc) {
                              if (!fc(ctx, *c)) return false;
                              if (c->null) {
                                SetNull(out, SqlType::kVarchar);
                                return true;
                              }
                              if (c->s.size() != 1) {
                                return Fail(ctx, "TRIM's character must be one character");
                              }
                              ch = c->s[0];
                            }
                            if (out.null) return true;
                            std::string& str = out.s;
                            if (side != ast::TrimSide::kLeading) {
                              while (!str.empty() && str.back() == ch) str.pop_back();
                            }
                            if (side != ast::TrimSide::kTrailing) {
                              size_t k = 0;
                              while (k < str.size() && str[k] == ch) ++k;
                              str.erase(0, k);
                            }
                            return true;
                          },
                          text};
    }
    if (n == "REGEX_REPLACE") {
      // REGEX_REPLACE(s, pattern, replacement): every match replaced (ECMAScript syntax, $1 for
      // groups). The pattern must be a literal, compiled once.
      absl::Status s = Arity(e, 3, 3);
      if (!s.ok()) return s;
      for (size_t i = 0; i < a.size(); ++i) {
        s = Need(e, a[i], a[i].type.type == SqlType::kVarchar, "VARCHARs");
        if (!s.ok()) return s;
      }
      if (e.args[1]->kind != ast::ExprKind::kLiteral || e.args[1]->literal.null) {
        return CodeError(e.args[1]->pos, "REGEX_REPLACE's pattern must be a string literal");
      }
      std::shared_ptr<std::regex> re;
      try {
        re = std::make_shared<std::regex>(e.args[1]->literal.s, std::regex::ECMAScript);
      } catch (const std::regex_error& error) {
        return CodeError(e.args[1]->pos,
                         absl::StrCat("invalid regular expression: ", error.what()));
      }
      EvalFn f = fn(0), fr = fn(2);
      auto r = std::make_shared<Value>();
      auto buffer = std::make_shared<std::string>();
      ColumnType t = T(SqlType::kVarchar);
      return CompiledExpr{t,
                          [f, fr, r, re, buffer](EvalContext& ctx, Value& out) {
                            if (!f(ctx, out) || !fr(ctx, *r)) return false;
                            if (out.null || r->null) {
                              SetNull(out, SqlType::kVarchar);
                              return true;
                            }
                            buffer->clear();
                            std::regex_replace(std::back_inserter(*buffer), out.s.begin(),
                                               out.s.end(), *re, r->s);
                            out.s.swap(*buffer);
                            return true;
                          },
                          text};
    }
    if (n == "ABS") {
      absl::Status s = Arity(e, 1, 1);
      if (!s.ok()) return s;
      s = Need(e, a[0], IsNumeric(a[0].type.type), "a number");
      if (!s.ok()) return s;
      EvalFn f = fn(0);
      return CompiledExpr{a[0].type,
                          [f](EvalContext& ctx, Value& out) {
                            if (!f(ctx, out)) return false;
                            if (out.null) return true;
                            if (out.type == SqlType::kDouble) {
                              out.d = std::fabs(out.d);
                            } else if (out.i == std::numeric_limits<int64_t>::min()) {
                              return Fail(ctx, "numeric overflow in ABS");
                            } else if (out.i < 0) {
                              out.i = -out.i;
                            }
                            return true;
                          },
                          text};
    }
    if (n == "MOD") {
      absl::Status s = Arity(e, 2, 2);
      if (!s.ok()) return s;
      ast::Expr mod;
      mod.kind = ast::ExprKind::kBinary;
      mod.pos = e.pos;
      mod.op = "%";
      return ArithmeticOf(mod, std::move(a[0]), std::move(a[1]), text);
    }
    if (n == "POWER" || n == "SQRT" || n == "LN" || n == "EXP" || n == "LOG10") {
      absl::Status s = Arity(e, n == "POWER" ? 2 : 1, n == "POWER" ? 2 : 1);
      if (!s.ok()) return s;
      for (const CompiledExpr& x : a) {
        s = Need(e, x, IsNumeric(x.type.type), "numbers");
        if (!s.ok()) return s;
      }
      std::vector<EvalFn> fns;
      for (const CompiledExpr& x : a) fns.push_back(x.eval);
      const std::string name = n;
      auto y = std::make_shared<Value>();
      return CompiledExpr{T(SqlType::kDouble),
                          [fns, name, y](EvalContext& ctx, Value& out) {
                            if (!fns[0](ctx, out)) return false;
                            if (fns.size() > 1 && !fns[1](ctx, *y)) return false;
                            if (out.null || (fns.size() > 1 && y->null)) {
                              SetNull(out, SqlType::kDouble);
                              return true;
                            }
                            const double x = out.AsDouble();
                            double v;
                            if (name == "POWER") {
                              v = std::pow(x, y->AsDouble());
                            } else if (name == "SQRT") {
                              if (x < 0) return Fail(ctx, "SQRT of a negative number");
                              v = std::sqrt(x);
                            } else if (name == "EXP") {
                              v = std::exp(x);
                            } else {
                              if (x <= 0) return Fail(ctx, name + " of a number <= 0");
                              v = name == "LN" ? std::log(x) : std::log10(x);
                            }
                            SetDouble(out, v);
                            return true;
                          },
                          text};
    }
    if (n == "COALESCE" || n == "NULLIF") {
      absl::Status s =
          n == "NULLIF" ? Arity(e, 2, 2) : Arity(e, 1, std::numeric_limits<size_t>::max());
      if (!s.ok()) return s;
      ColumnType t;
      for (const CompiledExpr& x : a) {
        if (x.type.type == SqlType::kNull) continue;
        if (t.type == SqlType::kNull) {
          t = x.type;
        } else if (!Comparable(t.type, x.type.type)) {
          return CodeError(e.pos, absl::StrCat(n, " arguments have different types: ",
                                               ColumnTypeName(t), " and ", ColumnTypeName(x.type)));
        } else if (t.type != x.type.type) {
          t = T(SqlType::kDouble);
        } else if (t.type == SqlType::kVarchar) {
          t.length = std::max(t.length, x.type.length);
        }
      }
      std::vector<EvalFn> fns;
      for (const CompiledExpr& x : a) fns.push_back(x.eval);
      const bool nullif = n == "NULLIF";
      auto y = std::make_shared<Value>();
      return CompiledExpr{t,
                          [fns, nullif, y, t](EvalContext& ctx, Value& out) {
                            if (nullif) {
                              if (!fns[0](ctx, out) || !fns[1](ctx, *y)) return false;
                              if (!out.null && !y->null && CompareValues(out, *y) == 0) {
                                SetNull(out, t.type);
                              }
                              return true;
                            }
                            for (const EvalFn& f : fns) {
                              if (!f(ctx, *y)) return false;
                              if (!y->null) return CastToResult(ctx, *y, t, out);
                            }
                            SetNull(out, t.type);
                            return true;
                          },
                          text};
    }
    return CodeError(e.pos, absl::StrCat("unknown function ", n));
  }

  absl::StatusOr<CompiledExpr> ArithmeticOf(const ast::Expr& shape, CompiledExpr a, CompiledExpr b,
                                            std::string text) {
    absl::StatusOr<CompiledExpr> c = Arithmetic(shape, std::move(a), std::move(b));
    if (c.ok()) c->text = std::move(text);
    return c;
  }

  const Scope& scope_;
};

}  // namespace

absl::StatusOr<CompiledExpr> Compile(const ast::Expr& e, const Scope& scope) {
  Compiler compiler(scope);
  return compiler.Compile(e);
}

}  // namespace rill::sql
