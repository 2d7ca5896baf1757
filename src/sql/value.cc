#include "rill/sql/value.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "sql/pow10.h"

namespace rill::sql {

std::string_view SqlTypeName(SqlType type) {
  switch (type) {
    case SqlType::kNull:
      return "NULL";
    case SqlType::kBoolean:
      return "BOOLEAN";
    case SqlType::kInteger:
      return "INTEGER";
    case SqlType::kBigint:
      return "BIGINT";
    case SqlType::kDouble:
      return "DOUBLE";
    case SqlType::kDecimal:
      return "DECIMAL";
    case SqlType::kVarchar:
      return "VARCHAR";
    case SqlType::kTimestamp:
      return "TIMESTAMP";
    case SqlType::kInterval:
      return "INTERVAL";
  }
  return "UNKNOWN";
}

std::string ColumnTypeName(const ColumnType& type) {
  switch (type.type) {
    case SqlType::kVarchar:
      return absl::StrCat("VARCHAR(", type.length, ")");
    case SqlType::kDecimal:
      return absl::StrCat("DECIMAL(", type.precision, ",", type.scale, ")");
    default:
      return std::string(SqlTypeName(type.type));
  }
}

bool IsNumeric(SqlType type) {
  return type == SqlType::kInteger || type == SqlType::kBigint || type == SqlType::kDouble ||
         type == SqlType::kDecimal;
}

namespace {

std::string DecimalText(int64_t unscaled, uint8_t scale) {
  // Through unsigned arithmetic so that INT64_MIN prints too.
  const bool negative = unscaled < 0;
  uint64_t magnitude = negative ? 0 - static_cast<uint64_t>(unscaled) : unscaled;
  std::string digits = std::to_string(magnitude);
  if (scale > 0) {
    if (digits.size() <= scale) digits.insert(0, scale + 1 - digits.size(), '0');
    digits.insert(digits.size() - scale, 1, '.');
  }
  return negative ? "-" + digits : digits;
}

std::string DoubleText(double d) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), d);
  if (ec != std::errc()) return std::to_string(d);
  return std::string(buffer, end);
}

}  // namespace

double Value::AsDouble() const {
  switch (type) {
    case SqlType::kDouble:
      return d;
    case SqlType::kDecimal:
      return static_cast<double>(i) / static_cast<double>(kPow10[scale > 18 ? 18 : scale]);
    case SqlType::kBoolean:
    case SqlType::kInteger:
    case SqlType::kBigint:
    case SqlType::kTimestamp:
    case SqlType::kInterval:
      return static_cast<double>(i);
    default:
      return 0;
  }
}

std::string Value::ToString() const {
  if (null) return "NULL";
  switch (type) {
    case SqlType::kNull:
      return "NULL";
    case SqlType::kBoolean:
      return i != 0 ? "TRUE" : "FALSE";
    case SqlType::kInteger:
    case SqlType::kBigint:
      return std::to_string(i);
    case SqlType::kDouble:
      return DoubleText(d);
    case SqlType::kDecimal:
      return DecimalText(i, scale);
    case SqlType::kVarchar:
      return s;
    case SqlType::kTimestamp: {
      const absl::Time t = absl::FromUnixMicros(i);
      const int64_t micros_of_second = ((i % 1000000) + 1000000) % 1000000;
      if (micros_of_second % 1000 == 0) {
        return absl::FormatTime("%Y-%m-%d %H:%M:%E3S", t, absl::UTCTimeZone());
      }
      return absl::FormatTime("%Y-%m-%d %H:%M:%E6S", t, absl::UTCTimeZone());
    }
    case SqlType::kInterval:
      return absl::FormatDuration(absl::Microseconds(i));
  }
  return "?";
}

bool operator==(const Value& a, const Value& b) {
  if (a.type != b.type || a.null != b.null) return false;
  if (a.null) return true;
  switch (a.type) {
    case SqlType::kDouble:
      return a.d == b.d || (a.d != a.d && b.d != b.d);
    case SqlType::kVarchar:
      return a.s == b.s;
    case SqlType::kDecimal:
      return a.scale == b.scale && a.i == b.i;
    default:
      return a.i == b.i;
  }
}

}  // namespace rill::sql
