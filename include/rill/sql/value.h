// SQL values, column types and rows: what rill::sql's in-application streams hold.
//
// Types follow Kinesis Data Analytics for SQL: BOOLEAN, INTEGER (32-bit; SMALLINT and TINYINT
// are accepted as INTEGER), BIGINT, DOUBLE (REAL and FLOAT are accepted as DOUBLE), DECIMAL(p, s)
// (exact, p <= 18), VARCHAR(n) and TIMESTAMP (UTC, microseconds since the Unix epoch; KDA keeps
// milliseconds). Every value may be NULL.
//
// A Row is a compact typed tuple: its ROWTIME and one Value per column of its stream's schema,
// read by column index. A Value is a small tagged union (a 64-bit payload) plus a std::string
// used only by VARCHAR values; rows are reused by the engine, so assigning a string into a row
// that held one of the same length or longer does not allocate.
//
// Thread safety: plain values; not synchronised. Allocation: only VARCHAR values allocate (the
// string's storage, when longer than the small-string buffer and than what the Value held).
#ifndef RILL_SQL_VALUE_H_
#define RILL_SQL_VALUE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace rill::sql {

enum class SqlType : uint8_t {
  kNull = 0,  // the type of an untyped NULL literal only; never a column's type
  kBoolean = 1,
  kInteger = 2,
  kBigint = 3,
  kDouble = 4,
  kDecimal = 5,
  kVarchar = 6,
  kTimestamp = 7,
  kInterval = 8,  // INTERVAL literals (microseconds); never a column's type
};

// "INTEGER", "VARCHAR", ...
std::string_view SqlTypeName(SqlType type);

// A column's declared type. length: VARCHAR(n)'s n (1..65535; 0 in other types). precision and
// scale: DECIMAL(p, s) (1 <= p <= 18, 0 <= s <= p; DECIMAL alone is DECIMAL(18, 0)).
struct ColumnType {
  SqlType type = SqlType::kNull;
  uint32_t length = 0;
  uint8_t precision = 0;
  uint8_t scale = 0;

  friend bool operator==(const ColumnType&, const ColumnType&) = default;
};

// "VARCHAR(32)", "DECIMAL(10,2)", "BIGINT", ...
std::string ColumnTypeName(const ColumnType& type);

bool IsNumeric(SqlType type);  // INTEGER, BIGINT, DOUBLE, DECIMAL

struct Column {
  std::string name;  // as it resolves: unquoted names are folded to upper case by the parser
  ColumnType type;

  friend bool operator==(const Column&, const Column&) = default;
};
using Schema = std::vector<Column>;

// One value. `type` is kNull only for an untyped NULL; a typed NULL has its type and null = true.
struct Value {
  SqlType type = SqlType::kNull;
  bool null = true;
  uint8_t scale = 0;  // kDecimal: digits after the point (i is the unscaled value)
  union {
    int64_t i = 0;  // kBoolean (0 or 1), kInteger, kBigint, kDecimal (unscaled), kTimestamp and
                    // kInterval (microseconds)
    double d;       // kDouble
  };
  std::string s;  // kVarchar

  static Value Null(SqlType type = SqlType::kNull) {
    Value v;
    v.type = type;
    return v;
  }
  static Value Boolean(bool b) { return Int(SqlType::kBoolean, b ? 1 : 0); }
  static Value Integer(int32_t x) { return Int(SqlType::kInteger, x); }
  static Value Bigint(int64_t x) { return Int(SqlType::kBigint, x); }
  static Value Double(double x) {
    Value v;
    v.type = SqlType::kDouble;
    v.null = false;
    v.d = x;
    return v;
  }
  static Value Decimal(int64_t unscaled, uint8_t scale) {
    Value v = Int(SqlType::kDecimal, unscaled);
    v.scale = scale;
    return v;
  }
  static Value Varchar(std::string_view text) {
    Value v;
    v.type = SqlType::kVarchar;
    v.null = false;
    v.s.assign(text.data(), text.size());
    return v;
  }
  static Value Timestamp(absl::Time t) { return Int(SqlType::kTimestamp, absl::ToUnixMicros(t)); }
  static Value Interval(absl::Duration d) {
    return Int(SqlType::kInterval, absl::ToInt64Microseconds(d));
  }

  absl::Time time() const { return absl::FromUnixMicros(i); }
  // The numeric value as a double (INTEGER, BIGINT, DOUBLE, DECIMAL, BOOLEAN); 0 for others.
  double AsDouble() const;

  // Text as KDA shows it: NULL, TRUE / FALSE, integers, DECIMAL with its scale's digits, DOUBLE in
  // the shortest form that reads back the same, TIMESTAMP as 'yyyy-MM-dd HH:mm:ss.SSS' (UTC;
  // microseconds shown only when not whole milliseconds), VARCHAR as is.
  std::string ToString() const;

  // Same type, same nullness, same value (DECIMAL: same scale and unscaled value). For tests.
  friend bool operator==(const Value& a, const Value& b);

 private:
  static Value Int(SqlType type, int64_t x) {
    Value v;
    v.type = type;
    v.null = false;
    v.i = x;
    return v;
  }
};

// A row of an in-application stream. ROWTIME is the time the row entered the application's
// first in-application stream (propagated through pumps, monotonic); a windowed result's ROWTIME
// is its window's end.
struct Row {
  absl::Time rowtime = absl::UnixEpoch();
  std::vector<Value> values;
};

}  // namespace rill::sql

#endif  // RILL_SQL_VALUE_H_
