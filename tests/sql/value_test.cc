#include "rill/sql/value.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>

#include "absl/time/time.h"

namespace rill::sql {
namespace {

TEST_CASE("Values print as Kinesis Data Analytics shows them", "[sql][value]") {
  CHECK(Value::Null(SqlType::kInteger).ToString() == "NULL");
  CHECK(Value::Boolean(true).ToString() == "TRUE");
  CHECK(Value::Boolean(false).ToString() == "FALSE");
  CHECK(Value::Integer(-42).ToString() == "-42");
  CHECK(Value::Bigint(std::numeric_limits<int64_t>::min()).ToString() == "-9223372036854775808");
  CHECK(Value::Decimal(12345, 2).ToString() == "123.45");
  CHECK(Value::Decimal(-5, 3).ToString() == "-0.005");
  CHECK(Value::Decimal(7, 0).ToString() == "7");
  CHECK(Value::Double(0.1).ToString() == "0.1");
  CHECK(Value::Double(2.5e10).ToString() == "2.5e+10");
  CHECK(Value::Varchar("héllo").ToString() == "héllo");
  const absl::Time t = absl::FromUnixMillis(1767225600123);  // 2026-01-01 00:00:00.123 UTC
  CHECK(Value::Timestamp(t).ToString() == "2026-01-01 00:00:00.123");
  CHECK(Value::Timestamp(t + absl::Microseconds(4)).ToString() == "2026-01-01 00:00:00.123004");
  CHECK(Value::Timestamp(absl::FromUnixMillis(-1)).ToString() == "1969-12-31 23:59:59.999");
}

TEST_CASE("Values compare by type, nullness and value", "[sql][value]") {
  CHECK(Value::Integer(3) == Value::Integer(3));
  CHECK_FALSE(Value::Integer(3) == Value::Bigint(3));
  CHECK_FALSE(Value::Integer(3) == Value::Null(SqlType::kInteger));
  CHECK(Value::Null(SqlType::kInteger) == Value::Null(SqlType::kInteger));
  CHECK_FALSE(Value::Decimal(10, 1) == Value::Decimal(100, 2));
  CHECK(Value::Varchar("a") == Value::Varchar("a"));
  CHECK_FALSE(Value::Varchar("a") == Value::Varchar("A"));
  CHECK(Value::Decimal(150, 2).AsDouble() == 1.5);
  CHECK(Value::Integer(7).AsDouble() == 7.0);
}

TEST_CASE("Column types have their SQL names", "[sql][value]") {
  CHECK(ColumnTypeName({SqlType::kVarchar, 16, 0, 0}) == "VARCHAR(16)");
  CHECK(ColumnTypeName({SqlType::kDecimal, 0, 10, 2}) == "DECIMAL(10,2)");
  CHECK(ColumnTypeName({SqlType::kTimestamp, 0, 0, 0}) == "TIMESTAMP");
  CHECK(IsNumeric(SqlType::kDecimal));
  CHECK_FALSE(IsNumeric(SqlType::kVarchar));
}

}  // namespace
}  // namespace rill::sql
