// Input mappings and output encodings of rill::sql: column types, the conversion rules of
// rill/sql/record_format.h and sql/convert.h, the JSON and CSV decoders, the encoders and
// reference tables.
#include "rill/sql/record_format.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "rill/base/error.h"
#include "rill/sql/value.h"
#include "sql/convert.h"
#include "sql/record_decoder.h"
#include "sql/record_encoder.h"
#include "sql/reference_table.h"

#include "sql/allocation_counter.h"

using rill::sql::testing::g_allocations;
using rill::sql::testing::g_count_allocations;

namespace rill::sql {
namespace {

using Catch::Contains;

std::string Message(const absl::Status& status) {
  return std::string(status.message().data(), status.message().size());
}

ColumnType Type(std::string_view text) {
  absl::StatusOr<ColumnType> type = ParseColumnType(text);
  REQUIRE(type.ok());
  return *type;
}

Value Text(std::string_view text, std::string_view type) {
  Value v;
  const absl::Status status = ConvertText(text, Type(type), &v);
  INFO(text << " -> " << type << ": " << Message(status));
  REQUIRE(status.ok());
  return v;
}

std::string TextError(std::string_view text, std::string_view type) {
  Value v;
  const absl::Status status = ConvertText(text, Type(type), &v);
  INFO(text << " -> " << type);
  REQUIRE_FALSE(status.ok());
  CHECK(GetErrorCode(status) == ErrorCode::kInvalidArgument);
  return Message(status);
}

Value Cast(const Value& in, std::string_view type) {
  Value v;
  const absl::Status status = ConvertValue(in, Type(type), &v);
  INFO(in.ToString() << " -> " << type << ": " << Message(status));
  REQUIRE(status.ok());
  return v;
}

std::string CastError(const Value& in, std::string_view type) {
  Value v;
  const absl::Status status = ConvertValue(in, Type(type), &v);
  INFO(in.ToString() << " -> " << type);
  REQUIRE_FALSE(status.ok());
  CHECK(GetErrorCode(status) == ErrorCode::kInvalidArgument);
  return Message(status);
}

int64_t Micros(int y, int mo, int d, int h, int mi, int s) {
  return absl::ToUnixMicros(
      absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone()));
}

RecordColumn Col(std::string name, std::string_view type, std::string mapping = "") {
  return RecordColumn{std::move(name), Type(type), std::move(mapping)};
}

struct Decoded {
  std::vector<std::vector<Value>> rows;
  std::vector<std::string> errors;
};

Decoded DecodeAll(RecordDecoder& decoder, std::string_view data) {
  Decoded out;
  decoder.Decode(
      data, [&](std::vector<Value>& values) { out.rows.push_back(values); },
      [&](std::string_view reason) { out.errors.emplace_back(reason); });
  return out;
}

std::unique_ptr<RecordDecoder> MakeDecoder(const RecordFormat& format) {
  absl::StatusOr<std::unique_ptr<RecordDecoder>> decoder = RecordDecoder::Create(format);
  INFO(Message(decoder.status()));
  REQUIRE(decoder.ok());
  return std::move(*decoder);
}

TEST_CASE("Column types parse as SQL writes them", "[sql][record_format]") {
  CHECK(Type("BOOLEAN") == ColumnType{SqlType::kBoolean, 0, 0, 0});
  CHECK(Type("integer").type == SqlType::kInteger);
  CHECK(Type("INT").type == SqlType::kInteger);
  CHECK(Type("SmallInt").type == SqlType::kInteger);
  CHECK(Type("TINYINT").type == SqlType::kInteger);
  CHECK(Type("BIGINT").type == SqlType::kBigint);
  CHECK(Type("DOUBLE").type == SqlType::kDouble);
  CHECK(Type("double  precision").type == SqlType::kDouble);
  CHECK(Type("REAL").type == SqlType::kDouble);
  CHECK(Type("FLOAT").type == SqlType::kDouble);
  CHECK(Type("DECIMAL") == ColumnType{SqlType::kDecimal, 0, 18, 0});
  CHECK(Type("decimal(10)") == ColumnType{SqlType::kDecimal, 0, 10, 0});
  CHECK(Type(" NUMERIC ( 10 , 2 ) ") == ColumnType{SqlType::kDecimal, 0, 10, 2});
  CHECK(Type("DECIMAL(18,18)") == ColumnType{SqlType::kDecimal, 0, 18, 18});
  CHECK(Type("VARCHAR(16)") == ColumnType{SqlType::kVarchar, 16, 0, 0});
  CHECK(Type("char(1)") == ColumnType{SqlType::kVarchar, 1, 0, 0});
  CHECK(Type("VARCHAR(65535)").length == 65535);
  CHECK(Type("timestamp").type == SqlType::kTimestamp);

  const auto error = [](std::string_view text) {
    absl::StatusOr<ColumnType> type = ParseColumnType(text);
    REQUIRE_FALSE(type.ok());
    CHECK(GetErrorCode(type.status()) == ErrorCode::kInvalidArgument);
    return Message(type.status());
  };
  CHECK_THAT(error("VARCHAR"), Contains("VARCHAR needs a length"));
  CHECK_THAT(error("VARCHAR(0)"), Contains("1..65535"));
  CHECK_THAT(error("VARCHAR(65536)"), Contains("1..65535"));
  CHECK_THAT(error("DECIMAL(19)"), Contains("precision must be 1..18"));
  CHECK_THAT(error("DECIMAL(0)"), Contains("precision must be 1..18"));
  CHECK_THAT(error("DECIMAL(5,6)"), Contains("scale must be 0..precision"));
  CHECK_THAT(error("DECIMAL(5,"), Contains("expected a scale"));
  CHECK_THAT(error("STRING"), Contains("invalid column type 'STRING': unknown type"));
  CHECK_THAT(error("INTEGER(3)"), Contains("unexpected text"));
  CHECK_THAT(error(""), Contains("unknown type"));

  RecordFormat format;
  format.columns = {Col("A", "INTEGER"), Col("b", "VARCHAR(4)")};
  const Schema schema = SchemaOf(format);
  REQUIRE(schema.size() == 2);
  CHECK(schema[0] == Column{"A", ColumnType{SqlType::kInteger, 0, 0, 0}});
  CHECK(schema[1] == Column{"b", ColumnType{SqlType::kVarchar, 4, 0, 0}});
}

TEST_CASE("Text converts to integers, booleans and doubles", "[sql][record_format]") {
  CHECK(Text("42", "INTEGER") == Value::Integer(42));
  CHECK(Text("  -7 ", "INTEGER") == Value::Integer(-7));
  CHECK(Text("+7", "INTEGER") == Value::Integer(7));
  CHECK(Text("2147483647", "INTEGER") == Value::Integer(2147483647));
  CHECK(Text("-2147483648", "INTEGER") == Value::Integer(std::numeric_limits<int32_t>::min()));
  CHECK(Text("4.0", "INTEGER") == Value::Integer(4));
  CHECK(Text("1e3", "INTEGER") == Value::Integer(1000));
  CHECK(Text("9223372036854775807", "BIGINT") ==
        Value::Bigint(std::numeric_limits<int64_t>::max()));
  CHECK(Text("-9223372036854775808", "BIGINT") ==
        Value::Bigint(std::numeric_limits<int64_t>::min()));
  CHECK_THAT(TextError("4.5", "INTEGER"), Contains("cannot convert '4.5' to INTEGER: fraction"));
  CHECK_THAT(TextError("abc", "INTEGER"), Contains("cannot convert 'abc' to INTEGER"));
  CHECK_THAT(TextError("", "INTEGER"), Contains("cannot convert '' to INTEGER"));
  CHECK_THAT(TextError("1 2", "INTEGER"), Contains("cannot convert '1 2' to INTEGER"));
  CHECK_THAT(TextError("2147483648", "INTEGER"), Contains("out of range"));
  CHECK_THAT(TextError("-2147483649", "INTEGER"), Contains("out of range"));
  CHECK_THAT(TextError("9223372036854775808", "BIGINT"),
             Contains("cannot convert '9223372036854775808' to BIGINT: out of range"));
  CHECK_THAT(TextError("1e400", "BIGINT"), Contains("out of range"));
  CHECK_THAT(TextError(std::string(100, '7'), "BIGINT"), Contains("7777..."));

  CHECK(Text("true", "BOOLEAN") == Value::Boolean(true));
  CHECK(Text(" FALSE ", "BOOLEAN") == Value::Boolean(false));
  CHECK(Text("True", "BOOLEAN") == Value::Boolean(true));
  CHECK(Text("1", "BOOLEAN") == Value::Boolean(true));
  CHECK(Text("0", "BOOLEAN") == Value::Boolean(false));
  CHECK_THAT(TextError("yes", "BOOLEAN"), Contains("cannot convert 'yes' to BOOLEAN"));
  CHECK_THAT(TextError("2", "BOOLEAN"), Contains("cannot convert '2' to BOOLEAN"));

  CHECK(Text("1.5", "DOUBLE") == Value::Double(1.5));
  CHECK(Text(" -2.5e-3 ", "DOUBLE") == Value::Double(-2.5e-3));
  CHECK(Text("+1E10", "DOUBLE") == Value::Double(1e10));
  CHECK(Text("0.1", "DOUBLE") == Value::Double(0.1));
  CHECK(Text("7", "DOUBLE") == Value::Double(7));
  CHECK_THAT(TextError("1.5x", "DOUBLE"), Contains("cannot convert '1.5x' to DOUBLE"));
  CHECK_THAT(TextError("++1", "DOUBLE"), Contains("cannot convert '++1' to DOUBLE"));
  CHECK_THAT(TextError("1e999", "DOUBLE"), Contains("out of range"));
}

TEST_CASE("Text converts to DECIMAL exactly, rounding half away from zero",
          "[sql][record_format]") {
  CHECK(Text("0.1", "DECIMAL(10,1)") == Value::Decimal(1, 1));
  CHECK(Text("0.1", "DECIMAL(18,17)") == Value::Decimal(10000000000000000, 17));
  CHECK(Text("123.455", "DECIMAL(10,2)") == Value::Decimal(12346, 2));
  CHECK(Text("123.454", "DECIMAL(10,2)") == Value::Decimal(12345, 2));
  CHECK(Text("-0.005", "DECIMAL(5,2)") == Value::Decimal(-1, 2));
  CHECK(Text("-0.004", "DECIMAL(5,2)") == Value::Decimal(0, 2));
  CHECK(Text("2.5", "DECIMAL(5,0)") == Value::Decimal(3, 0));
  CHECK(Text("-2.5", "DECIMAL(5,0)") == Value::Decimal(-3, 0));
  CHECK(Text("1.5e2", "DECIMAL(5,1)") == Value::Decimal(1500, 1));
  CHECK(Text("12345e-4", "DECIMAL(5,2)") == Value::Decimal(123, 2));
  CHECK(Text(".5", "DECIMAL(3,1)") == Value::Decimal(5, 1));
  CHECK(Text("7", "DECIMAL") == Value::Decimal(7, 0));
  CHECK(Text("999999999999999999", "DECIMAL") == Value::Decimal(999999999999999999, 0));
  CHECK(Text("999.994", "DECIMAL(5,2)") == Value::Decimal(99999, 2));
  CHECK(Text("0.00000000000000000000001", "DECIMAL(5,2)") == Value::Decimal(0, 2));
  CHECK(Text("123.455", "DECIMAL(10,2)").ToString() == "123.46");
  CHECK_THAT(TextError("999.995", "DECIMAL(5,2)"),
             Contains("cannot convert '999.995' to DECIMAL(5,2): out of range"));
  CHECK_THAT(TextError("1000", "DECIMAL(5,2)"), Contains("out of range"));
  CHECK_THAT(TextError("1e18", "DECIMAL"), Contains("out of range"));
  CHECK_THAT(TextError("abc", "DECIMAL(10,2)"), Contains("cannot convert 'abc' to DECIMAL(10,2)"));
  CHECK_THAT(TextError("1.2.3", "DECIMAL(10,2)"), Contains("cannot convert"));
  CHECK_THAT(TextError("1e", "DECIMAL(10,2)"), Contains("cannot convert"));
  CHECK_THAT(TextError(".", "DECIMAL(10,2)"), Contains("cannot convert"));
}

TEST_CASE("Text converts to VARCHAR truncating whole characters", "[sql][record_format]") {
  CHECK(Text("héllo", "VARCHAR(3)") == Value::Varchar("hél"));
  CHECK(Text("héllo", "VARCHAR(2)") == Value::Varchar("hé"));
  CHECK(Text("héllo", "VARCHAR(5)") == Value::Varchar("héllo"));
  CHECK(Text("€€€", "VARCHAR(1)") == Value::Varchar("€"));
  CHECK(Text("a😀b", "VARCHAR(2)") == Value::Varchar("a😀"));
  CHECK(Text(" padded ", "VARCHAR(10)") == Value::Varchar(" padded "));
  CHECK(Text("", "VARCHAR(10)") == Value::Varchar(""));
  CHECK(Utf8PrefixBytes("héllo", 0) == 0);
  CHECK(Utf8PrefixBytes("héllo", 2) == 3);
}

TEST_CASE("Text converts to TIMESTAMP in each accepted form", "[sql][record_format]") {
  const int64_t base = Micros(2026, 3, 14, 15, 9, 26);
  CHECK(Text("2026-03-14 15:09:26", "TIMESTAMP").i == base);
  CHECK(Text(" 2026-03-14 15:09:26 ", "TIMESTAMP").i == base);
  CHECK(Text("2026-03-14 15:09:26.5", "TIMESTAMP").i == base + 500000);
  CHECK(Text("2026-03-14 15:09:26.123", "TIMESTAMP").i == base + 123000);
  CHECK(Text("2026-03-14 15:09:26.123456", "TIMESTAMP").i == base + 123456);
  CHECK(Text("2026-03-14 15:09:26.123456789", "TIMESTAMP").i == base + 123456);
  CHECK(Text("2026-03-14", "TIMESTAMP").i == Micros(2026, 3, 14, 0, 0, 0));
  CHECK(Text("2026-03-14T15:09:26", "TIMESTAMP").i == base);
  CHECK(Text("2026-03-14T15:09:26Z", "TIMESTAMP").i == base);
  CHECK(Text("2026-03-14T15:09:26.250Z", "TIMESTAMP").i == base + 250000);
  CHECK(Text("2026-03-14T17:09:26+02:00", "TIMESTAMP").i == base);
  CHECK(Text("2026-03-14T10:39:26-0430", "TIMESTAMP").i == base);
  CHECK(Text("2026-03-14T15:09", "TIMESTAMP").i == base - 26000000);
  CHECK(Text("2024-02-29 00:00:00", "TIMESTAMP").i == Micros(2024, 2, 29, 0, 0, 0));
  CHECK(Text("1969-12-31 23:59:59.999", "TIMESTAMP").i == -1000);
  CHECK(Text("1970-01-01 00:00:00", "TIMESTAMP") == Value::Timestamp(absl::UnixEpoch()));
  for (const char* bad :
       {"2026-13-01", "2026-02-29", "2026-03-14 24:00:00", "2026-03-14 15:60:00",
        "2026-03-14 15:09:26.", "2026-03-14 15:09:26.1234567890", "26-03-14", "2026/03/14",
        "2026-03-14X15:09:26", "2026-03-14T15:09:26+2", "1773500966000", "now"}) {
    CHECK_THAT(TextError(bad, "TIMESTAMP"),
               Contains(std::string("cannot convert '") + bad + "' to TIMESTAMP"));
  }
}

TEST_CASE("Values convert for CAST and INSERT", "[sql][record_format]") {
  // NULL stays NULL, of the target type.
  CHECK(Cast(Value::Null(), "INTEGER") == Value::Null(SqlType::kInteger));
  CHECK(Cast(Value::Null(SqlType::kVarchar), "DECIMAL(5,2)") == Value::Null(SqlType::kDecimal));
  // Numbers widen and narrow.
  CHECK(Cast(Value::Integer(5), "BIGINT") == Value::Bigint(5));
  CHECK(Cast(Value::Bigint(5), "INTEGER") == Value::Integer(5));
  CHECK_THAT(CastError(Value::Bigint(int64_t{1} << 40), "INTEGER"),
             Contains("cannot convert BIGINT 1099511627776 to INTEGER: out of range"));
  CHECK(Cast(Value::Double(2.9), "INTEGER") == Value::Integer(2));
  CHECK(Cast(Value::Double(-2.9), "BIGINT") == Value::Bigint(-2));
  CHECK_THAT(CastError(Value::Double(1e300), "BIGINT"), Contains("out of range"));
  CHECK_THAT(CastError(Value::Double(std::numeric_limits<double>::quiet_NaN()), "INTEGER"),
             Contains("out of range"));
  CHECK(Cast(Value::Decimal(-12999, 3), "INTEGER") == Value::Integer(-12));
  CHECK(Cast(Value::Integer(7), "DOUBLE") == Value::Double(7));
  CHECK(Cast(Value::Decimal(15, 1), "DOUBLE") == Value::Double(1.5));
  CHECK(Cast(Value::Integer(7), "DECIMAL(5,2)") == Value::Decimal(700, 2));
  CHECK_THAT(CastError(Value::Integer(1000), "DECIMAL(5,2)"),
             Contains("cannot convert INTEGER 1000 to DECIMAL(5,2): out of range"));
  CHECK(Cast(Value::Decimal(123455, 3), "DECIMAL(10,2)") == Value::Decimal(12346, 2));
  CHECK(Cast(Value::Decimal(-5, 3), "DECIMAL(5,2)") == Value::Decimal(-1, 2));
  CHECK(Cast(Value::Decimal(5, 1), "DECIMAL(5,3)") == Value::Decimal(500, 3));
  CHECK(Cast(Value::Double(0.1), "DECIMAL(18,17)") == Value::Decimal(10000000000000000, 17));
  CHECK(Cast(Value::Double(123.455), "DECIMAL(10,2)") == Value::Decimal(12346, 2));
  CHECK_THAT(CastError(Value::Double(1e20), "DECIMAL(18,0)"), Contains("out of range"));
  // BOOLEAN <-> numbers.
  CHECK(Cast(Value::Boolean(true), "INTEGER") == Value::Integer(1));
  CHECK(Cast(Value::Boolean(false), "DOUBLE") == Value::Double(0));
  CHECK(Cast(Value::Boolean(true), "DECIMAL(3,2)") == Value::Decimal(100, 2));
  CHECK(Cast(Value::Integer(1), "BOOLEAN") == Value::Boolean(true));
  CHECK(Cast(Value::Decimal(0, 2), "BOOLEAN") == Value::Boolean(false));
  CHECK(Cast(Value::Decimal(100, 2), "BOOLEAN") == Value::Boolean(true));
  CHECK_THAT(CastError(Value::Integer(2), "BOOLEAN"),
             Contains("cannot convert INTEGER 2 to BOOLEAN"));
  // TIMESTAMP <-> BIGINT as milliseconds.
  CHECK(Cast(Value::Bigint(1767225600123), "TIMESTAMP").i == 1767225600123000);
  CHECK(Cast(Value::Timestamp(absl::FromUnixMicros(1767225600123999)), "BIGINT") ==
        Value::Bigint(1767225600123));
  CHECK(Cast(Value::Timestamp(absl::FromUnixMicros(-1)), "BIGINT") == Value::Bigint(-1));
  CHECK_THAT(CastError(Value::Timestamp(absl::UnixEpoch()), "DOUBLE"),
             Contains("cannot convert TIMESTAMP 1970-01-01 00:00:00.000 to DOUBLE"));
  CHECK_THAT(CastError(Value::Double(1.5), "TIMESTAMP"), Contains("to TIMESTAMP"));
  // Anything -> VARCHAR by its text; VARCHAR -> anything by ConvertText.
  CHECK(Cast(Value::Decimal(12345, 2), "VARCHAR(10)") == Value::Varchar("123.45"));
  CHECK(Cast(Value::Decimal(12345, 2), "VARCHAR(3)") == Value::Varchar("123"));
  CHECK(Cast(Value::Boolean(true), "VARCHAR(5)") == Value::Varchar("TRUE"));
  CHECK(Cast(Value::Double(0.1), "VARCHAR(5)") == Value::Varchar("0.1"));
  CHECK(Cast(Value::Timestamp(absl::FromUnixMillis(1767225600123)), "VARCHAR(30)") ==
        Value::Varchar("2026-01-01 00:00:00.123"));
  CHECK(Cast(Value::Varchar("héllo"), "VARCHAR(3)") == Value::Varchar("hél"));
  CHECK(Cast(Value::Varchar(" 12 "), "INTEGER") == Value::Integer(12));
  CHECK(Cast(Value::Varchar("2026-01-01"), "TIMESTAMP").i == 1767225600000000);
  CHECK_THAT(CastError(Value::Varchar("abc"), "INTEGER"),
             Contains("cannot convert 'abc' to INTEGER"));
  // In place.
  Value v = Value::Varchar("héllo world");
  REQUIRE(ConvertValue(v, Type("VARCHAR(4)"), &v).ok());
  CHECK(v == Value::Varchar("héll"));
  v = Value::Varchar("42");
  REQUIRE(ConvertValue(v, Type("BIGINT"), &v).ok());
  CHECK(v == Value::Bigint(42));
}

TEST_CASE("Record formats are validated", "[sql][record_format]") {
  const auto error = [](const RecordFormat& format) {
    absl::StatusOr<std::unique_ptr<RecordDecoder>> decoder = RecordDecoder::Create(format);
    REQUIRE_FALSE(decoder.ok());
    CHECK(GetErrorCode(decoder.status()) == ErrorCode::kInvalidArgument);
    return Message(decoder.status());
  };
  RecordFormat format;
  CHECK_THAT(error(format), Contains("1..1000 columns, not 0"));
  for (int i = 0; i < 1001; ++i) format.columns.push_back(Col("C" + std::to_string(i), "INT"));
  CHECK_THAT(error(format), Contains("not 1001"));
  format.columns.resize(1000);
  CHECK(RecordDecoder::Create(format).ok());
  format.columns = {Col("A", "INT"), Col("A", "INT")};
  CHECK_THAT(error(format), Contains("duplicate column name 'A'"));
  format.columns = {Col("", "INT")};
  CHECK_THAT(error(format), Contains("a column name is empty"));
  format.columns = {RecordColumn{"A", ColumnType{SqlType::kVarchar, 0, 0, 0}, ""}};
  CHECK_THAT(error(format), Contains("column A: invalid type VARCHAR(0)"));
  format.columns = {Col("A", "INT", "a.b")};
  CHECK_THAT(error(format), Contains("column mapping 'a.b': must start with '$'"));
  format.columns = {Col("A", "INT", "$.a[0:]")};
  CHECK_THAT(error(format), Contains("[0:] is for the record row path only"));
  format.columns = {Col("A", "INT", "$.a[x]")};
  CHECK_THAT(error(format), Contains("an index must be digits"));
  format.columns = {Col("A", "INT", "$..a")};
  CHECK_THAT(error(format), Contains("empty member name"));
  format.columns = {Col("A", "INT", "$.a[1")};
  CHECK_THAT(error(format), Contains("missing ']'"));
  format.columns = {Col("A", "INT", "$.a.b[2].c")};
  CHECK(RecordDecoder::Create(format).ok());
  format.record_row_path = "$.items";
  CHECK_THAT(error(format), Contains("record row path '$.items': must be \"$\" or end in [0:]"));
  format.record_row_path = "$.items[0:].x";
  CHECK_THAT(error(format), Contains("[0:] must come last"));
  format.record_row_path = "$.a[1].items[0:]";
  CHECK(RecordDecoder::Create(format).ok());
  format.record_row_path = "$[0:]";
  CHECK(RecordDecoder::Create(format).ok());

  RecordFormat csv;
  csv.type = RecordFormatType::kCsv;
  csv.columns = {Col("A", "INT")};
  csv.row_delimiter = "";
  CHECK_THAT(error(csv), Contains("must not be empty"));
  csv.row_delimiter = ",";
  CHECK_THAT(error(csv), Contains("must differ"));
  csv.row_delimiter = "\"";
  CHECK_THAT(error(csv), Contains("must not contain"));
  csv.row_delimiter = "\r\n";
  CHECK(RecordDecoder::Create(csv).ok());
}

RecordFormat TradeFormat() {
  RecordFormat format;
  format.columns = {
      Col("TICKER", "VARCHAR(4)", "$.ticker"), Col("PRICE", "DECIMAL(10,2)", "$.price"),
      Col("QTY", "INTEGER", "$.qty"),          Col("BIG", "BIGINT", "$.big"),
      Col("RATE", "DOUBLE", "$.rate"),         Col("OK", "BOOLEAN", "$.ok"),
      Col("AT", "TIMESTAMP", "$.at"),          Col("note", "VARCHAR(64)")};
  return format;
}

TEST_CASE("JSON records map to rows by the conversion rules", "[sql][record_format]") {
  std::unique_ptr<RecordDecoder> decoder = MakeDecoder(TradeFormat());
  CHECK(decoder->schema().size() == 8);
  CHECK(decoder->schema()[7].name == "note");

  Decoded d =
      DecodeAll(*decoder, R"({"ticker":"AMZNX","price":0.1,"qty":3,"big":-9000000000,"rate":1.5e3,)"
                          R"("ok":true,"at":"2026-01-01 00:00:00.123","note":"hi \"x\""})");
  REQUIRE(d.errors.empty());
  REQUIRE(d.rows.size() == 1);
  std::vector<Value> r = d.rows[0];
  CHECK(r[0] == Value::Varchar("AMZN"));
  CHECK(r[1] == Value::Decimal(10, 2));
  CHECK(r[2] == Value::Integer(3));
  CHECK(r[3] == Value::Bigint(-9000000000));
  CHECK(r[4] == Value::Double(1500));
  CHECK(r[5] == Value::Boolean(true));
  CHECK(r[6].i == 1767225600123000);
  CHECK(r[7] == Value::Varchar("hi \"x\""));

  // Missing paths and null are NULL; booleans are 1 / 0 in numbers; numeric strings are numbers;
  // numbers and booleans are their text in VARCHAR; JSON numbers are milliseconds in TIMESTAMP.
  d = DecodeAll(*decoder, R"({"ticker":12.5,"price":"123.455","qty":false,"big":"77","rate":true,)"
                          R"("ok":null,"at":1767225600123,"note":true})");
  REQUIRE(d.errors.empty());
  REQUIRE(d.rows.size() == 1);
  r = d.rows[0];
  CHECK(r[0] == Value::Varchar("12.5"));
  CHECK(r[1] == Value::Decimal(12346, 2));
  CHECK(r[2] == Value::Integer(0));
  CHECK(r[3] == Value::Bigint(77));
  CHECK(r[4] == Value::Double(1));
  CHECK(r[5] == Value::Null(SqlType::kBoolean));
  CHECK(r[6].i == 1767225600123000);
  CHECK(r[7] == Value::Varchar("true"));

  d = DecodeAll(*decoder, R"({"price":true,"at":1767225600123.5,"ok":1,"qty":4.0})");
  REQUIRE(d.errors.empty());
  REQUIRE(d.rows.size() == 1);
  r = d.rows[0];
  CHECK(r[0] == Value::Null(SqlType::kVarchar));
  CHECK(r[1] == Value::Decimal(100, 2));
  CHECK(r[2] == Value::Integer(4));
  CHECK(r[5] == Value::Boolean(true));
  CHECK(r[6].i == 1767225600123500);
  CHECK(r[7] == Value::Null(SqlType::kVarchar));

  // Arrays and objects are their JSON text in VARCHAR.
  d = DecodeAll(*decoder, R"({"note": {"a" : [1, 2.5, "x\n", null, false, {}]}, "ticker": []})");
  REQUIRE(d.errors.empty());
  REQUIRE(d.rows.size() == 1);
  CHECK(d.rows[0][7] == Value::Varchar(R"({"a":[1,2.5,"x\n",null,false,{}]})"));
  CHECK(d.rows[0][0] == Value::Varchar("[]"));

  // Each failing conversion names its column and reason.
  const auto error_of = [&](std::string_view json) {
    Decoded e = DecodeAll(*decoder, json);
    CHECK(e.rows.empty());
    REQUIRE(e.errors.size() == 1);
    return e.errors[0];
  };
  CHECK(error_of(R"({"price":"abc"})") == "column PRICE: cannot convert 'abc' to DECIMAL(10,2)");
  CHECK(error_of(R"({"qty":4.5})") == "column QTY: cannot convert '4.5' to INTEGER: fraction");
  CHECK(error_of(R"({"qty":3000000000})") ==
        "column QTY: cannot convert '3000000000' to INTEGER: out of range");
  CHECK(error_of(R"({"big":18446744073709551615})") ==
        "column BIG: cannot convert '18446744073709551615' to BIGINT: out of range");
  CHECK(error_of(R"({"qty":[1]})") == "column QTY: cannot convert an array to INTEGER");
  CHECK(error_of(R"({"price":{"v":1}})") == "column PRICE: cannot convert an object to DECIMAL");
  CHECK(error_of(R"({"at":"yesterday"})") == "column AT: cannot convert 'yesterday' to TIMESTAMP");
  CHECK(error_of(R"({"at":true})") == "column AT: cannot convert 'true' to TIMESTAMP");
  CHECK(error_of(R"({"at":1e300})") ==
        "column AT: cannot convert '1e300' to TIMESTAMP: out of range");
  CHECK(error_of(R"({"ok":"maybe"})") == "column OK: cannot convert 'maybe' to BOOLEAN");
  CHECK(error_of(R"({"price":1e9})") ==
        "column PRICE: cannot convert '1e9' to DECIMAL(10,2): out of range");
  CHECK_THAT(error_of(R"({"ticker":"AMZN", "price": 1.5)"), Contains("malformed JSON: "));
  CHECK_THAT(error_of(R"({"ticker":tru})"), Contains("malformed JSON: "));
  CHECK_THAT(error_of(""), Contains("malformed JSON: "));
  CHECK_THAT(error_of(R"({"a":1} {"a":2})"), Contains("malformed JSON: "));
  CHECK_THAT(error_of("{\"note\":\"\xff\"}"), Contains("malformed JSON: "));

  // Fractions convert from their text as written, not through a double.
  RecordFormat exact;
  exact.columns = {Col("D", "DECIMAL(18,2)", "$.d"),    Col("V", "VARCHAR(30)", "$.v"),
                   Col("E", "DECIMAL(18,2)", "$.e[1]"), Col("F", "DOUBLE", "$.f"),
                   Col("G", "DECIMAL(5,2)", "$.g"),     Col("H", "DECIMAL(5,2)", "$.h")};
  std::unique_ptr<RecordDecoder> exact_decoder = MakeDecoder(exact);
  d = DecodeAll(*exact_decoder,
                R"({"d":1234567890123456.78,"v":4.50,"e":[0.5, 9999999999999999.99],)"
                R"("f":0.1,"g":1.25,"g":2.5,"h\u0000":1,"h":-0.125})");
  REQUIRE(d.errors.empty());
  REQUIRE(d.rows.size() == 1);
  CHECK(d.rows[0][0] == Value::Decimal(123456789012345678, 2));
  CHECK(d.rows[0][1] == Value::Varchar("4.50"));
  CHECK(d.rows[0][2] == Value::Decimal(999999999999999999, 2));
  CHECK(d.rows[0][3] == Value::Double(0.1));
  CHECK(d.rows[0][4] == Value::Decimal(125, 2));  // the first of duplicate keys, as in the DOM
  CHECK(d.rows[0][5] == Value::Decimal(-13, 2));
  // A key written with an escape sequence: the double's shortest text.
  d = DecodeAll(*exact_decoder, R"({"\u0064":0.1,"v":1e-7})");
  REQUIRE(d.rows.size() == 1);
  CHECK(d.rows[0][0] == Value::Decimal(10, 2));
  CHECK(d.rows[0][1] == Value::Varchar("1e-7"));

  // The decoder recovers after an error.
  d = DecodeAll(*decoder, R"({"qty":1})");
  REQUIRE(d.rows.size() == 1);
  CHECK(d.rows[0][2] == Value::Integer(1));
}

TEST_CASE("JSON paths reach nested members, elements and whole rows", "[sql][record_format]") {
  RecordFormat format;
  format.columns = {Col("DEEP", "INTEGER", "$.a.b[1].c"), Col("FIRST", "INTEGER", "$.dup"),
                    Col("ALL", "VARCHAR(100)", "$"), Col("SECOND", "VARCHAR(5)", "$.list[1]")};
  std::unique_ptr<RecordDecoder> decoder = MakeDecoder(format);
  const Decoded d =
      DecodeAll(*decoder, R"({"a":{"b":[{"c":1},{"c":2}]},"dup":1,"dup":2,"list":["x","y"]})");
  REQUIRE(d.rows.size() == 1);
  CHECK(d.rows[0][0] == Value::Integer(2));
  CHECK(d.rows[0][1] == Value::Integer(1));  // the first of duplicate keys wins
  CHECK(d.rows[0][2] ==
        Value::Varchar(R"({"a":{"b":[{"c":1},{"c":2}]},"dup":1,"dup":2,"list":["x","y"]})"));
  CHECK(d.rows[0][3] == Value::Varchar("y"));

  const Decoded missing = DecodeAll(*decoder, R"({"a":{"b":"not an array"},"list":[]})");
  REQUIRE(missing.rows.size() == 1);
  CHECK(missing.rows[0][0] == Value::Null(SqlType::kInteger));
  CHECK(missing.rows[0][3] == Value::Null(SqlType::kVarchar));

  const Decoded scalar = DecodeAll(*decoder, "42");  // a record that is no object
  REQUIRE(scalar.rows.size() == 1);
  CHECK(scalar.rows[0][0] == Value::Null(SqlType::kInteger));
  CHECK(scalar.rows[0][2] == Value::Varchar("42"));
}

TEST_CASE("A JSON row path with [0:] makes each element a row", "[sql][record_format]") {
  RecordFormat format;
  format.record_row_path = "$.items[0:]";
  format.columns = {Col("ID", "INTEGER", "$.id"), Col("NAME", "VARCHAR(8)", "$.name")};
  std::unique_ptr<RecordDecoder> decoder = MakeDecoder(format);

  Decoded d = DecodeAll(
      *decoder,
      R"({"items":[{"id":1,"name":"a"},{"id":2},{"id":"x","name":"c"},{"id":4,"name":"d"}]})");
  REQUIRE(d.rows.size() == 3);
  CHECK(d.rows[0][0] == Value::Integer(1));
  CHECK(d.rows[0][1] == Value::Varchar("a"));
  CHECK(d.rows[1][0] == Value::Integer(2));
  CHECK(d.rows[1][1] == Value::Null(SqlType::kVarchar));
  CHECK(d.rows[2][0] == Value::Integer(4));
  REQUIRE(d.errors.size() == 1);
  CHECK(d.errors[0] == "column ID: cannot convert 'x' to INTEGER");

  // Fractions in rows of an array are read from their text too.
  d = DecodeAll(*decoder, R"({"items":[{"id":1.0,"name":0.10},{"id":2.50,"name":1e1}]})");
  REQUIRE(d.rows.size() == 1);
  CHECK(d.rows[0][0] == Value::Integer(1));
  CHECK(d.rows[0][1] == Value::Varchar("0.10"));
  REQUIRE(d.errors.size() == 1);
  CHECK(d.errors[0] == "column ID: cannot convert '2.50' to INTEGER: fraction");

  d = DecodeAll(*decoder, R"({"items":[]})");
  CHECK(d.rows.empty());
  CHECK(d.errors.empty());

  d = DecodeAll(*decoder, R"({"other":[]})");
  CHECK(d.rows.empty());
  REQUIRE(d.errors.size() == 1);
  CHECK(d.errors[0] == "record row path $.items[0:]: no array there");

  d = DecodeAll(*decoder, R"({"items":[{"id":1},{"id":2})");  // malformed: one error, no rows
  CHECK(d.rows.empty());
  REQUIRE(d.errors.size() == 1);
  CHECK_THAT(d.errors[0], Contains("malformed JSON"));

  format.record_row_path = "$[0:]";
  decoder = MakeDecoder(format);
  d = DecodeAll(*decoder, R"([{"id":1},{"id":2},{"id":3}])");
  CHECK(d.rows.size() == 3);
}

RecordFormat CsvFormat() {
  RecordFormat format;
  format.type = RecordFormatType::kCsv;
  format.columns = {Col("A", "INTEGER"), Col("B", "VARCHAR(20)"), Col("C", "DECIMAL(6,2)")};
  return format;
}

TEST_CASE("CSV records split into rows and fields with RFC 4180 quoting", "[sql][record_format]") {
  std::unique_ptr<RecordDecoder> decoder = MakeDecoder(CsvFormat());
  Decoded d = DecodeAll(*decoder, "1,abc,1.005\n2,,\n 3 ,\"x,\"\"y\"\"\nz\",-0.005\n");
  REQUIRE(d.errors.empty());
  REQUIRE(d.rows.size() == 3);
  CHECK(d.rows[0][0] == Value::Integer(1));
  CHECK(d.rows[0][1] == Value::Varchar("abc"));
  CHECK(d.rows[0][2] == Value::Decimal(101, 2));
  CHECK(d.rows[1][0] == Value::Integer(2));
  CHECK(d.rows[1][1] == Value::Null(SqlType::kVarchar));
  CHECK(d.rows[1][2] == Value::Null(SqlType::kDecimal));
  CHECK(d.rows[2][0] == Value::Integer(3));
  CHECK(d.rows[2][1] == Value::Varchar("x,\"y\"\nz"));
  CHECK(d.rows[2][2] == Value::Decimal(-1, 2));

  // A quoted "" is the empty string; a quote inside an unquoted field is literal; extra fields
  // are ignored; empty rows are skipped; no trailing delimiter needed.
  d = DecodeAll(*decoder, "4,\"\",1,extra,fields\n\n5,a\"b,2");
  REQUIRE(d.errors.empty());
  REQUIRE(d.rows.size() == 2);
  CHECK(d.rows[0][1] == Value::Varchar(""));
  CHECK(d.rows[0][2] == Value::Decimal(100, 2));
  CHECK(d.rows[1][1] == Value::Varchar("a\"b"));

  // A trailing column delimiter is one more, empty, field.
  d = DecodeAll(*decoder, "6,x,");
  REQUIRE(d.rows.size() == 1);
  CHECK(d.rows[0][2] == Value::Null(SqlType::kDecimal));

  // Errors: one per bad row; the other rows decode.
  d = DecodeAll(*decoder, "1,a\n2\nx,b,1\n3,c,10000\n4,\"d\"e,1\n7,g,1\n5,\"open\n6,f,1");
  REQUIRE(d.rows.size() == 1);
  CHECK(d.rows[0][0] == Value::Integer(7));
  REQUIRE(d.errors.size() == 6);
  CHECK(d.errors[0] == "CSV row has 2 fields, 3 columns expected");
  CHECK(d.errors[1] == "CSV row has 1 field, 3 columns expected");
  CHECK(d.errors[2] == "column A: cannot convert 'x' to INTEGER");
  CHECK(d.errors[3] == "column C: cannot convert '10000' to DECIMAL(6,2): out of range");
  CHECK(d.errors[4] == "malformed CSV: text after the closing quote of field 2");
  CHECK(d.errors[5] == "malformed CSV: unterminated quoted field");

  RecordFormat custom = CsvFormat();
  custom.row_delimiter = "\r\n";
  custom.column_delimiter = "|";
  decoder = MakeDecoder(custom);
  d = DecodeAll(*decoder, "1|a,b|2.5\r\n2|\"c|d\"|3\r\n");
  REQUIRE(d.errors.empty());
  REQUIRE(d.rows.size() == 2);
  CHECK(d.rows[0][1] == Value::Varchar("a,b"));
  CHECK(d.rows[1][1] == Value::Varchar("c|d"));
  CHECK(d.rows[1][2] == Value::Decimal(300, 2));

  d = DecodeAll(*decoder, "");
  CHECK(d.rows.empty());
  CHECK(d.errors.empty());
}

Row MakeRow(std::vector<Value> values) {
  Row row;
  row.values = std::move(values);
  return row;
}

TEST_CASE("Rows encode as KDA's JSON and CSV output", "[sql][record_format]") {
  const Schema schema = {{"ID", Type("INTEGER")},       {"PRICE", Type("DECIMAL(10,2)")},
                         {"RATE", Type("DOUBLE")},      {"OK", Type("BOOLEAN")},
                         {"NAME", Type("VARCHAR(20)")}, {"AT", Type("TIMESTAMP")},
                         {"big", Type("BIGINT")}};
  const Row row = MakeRow({Value::Integer(-3), Value::Decimal(-5, 2), Value::Double(0.1),
                           Value::Boolean(true), Value::Varchar("a \"q\"\\\n\x01é"),
                           Value::Timestamp(absl::FromUnixMillis(1767225600123)),
                           Value::Bigint(std::numeric_limits<int64_t>::min())});
  std::string json = "prefix:";
  EncodeJsonRow(schema, row, &json);
  CHECK(json ==
        "prefix:{\"ID\":-3,\"PRICE\":-0.05,\"RATE\":0.1,\"OK\":true,"
        "\"NAME\":\"a \\\"q\\\"\\\\\\n\\u0001é\",\"AT\":\"2026-01-01 00:00:00.123\","
        "\"big\":-9223372036854775808}");
  std::string csv;
  EncodeCsvRow(schema, row, &csv);
  CHECK(csv ==
        "-3,-0.05,0.1,TRUE,\"a \"\"q\"\"\\\n\x01é\",2026-01-01 00:00:00.123,"
        "-9223372036854775808");

  const Row nulls =
      MakeRow({Value::Null(SqlType::kInteger), Value::Null(SqlType::kDecimal),
               Value::Double(std::numeric_limits<double>::infinity()), Value::Boolean(false),
               Value::Varchar(""), Value::Null(SqlType::kTimestamp), Value::Bigint(0)});
  json.clear();
  EncodeJsonRow(schema, nulls, &json);
  CHECK(json == R"({"ID":null,"PRICE":null,"RATE":null,"OK":false,"NAME":"","AT":null,"big":0})");
  csv.clear();
  EncodeCsvRow(schema, nulls, &csv);
  CHECK(csv == ",,inf,FALSE,\"\",,0");

  json.clear();
  EncodeJsonRow({{"D", Type("DECIMAL(5,3)")}, {"E", Type("DOUBLE")}},
                MakeRow({Value::Decimal(5, 3), Value::Double(2.5e10)}), &json);
  CHECK(json == R"({"D":0.005,"E":2.5e+10})");
  csv.clear();
  EncodeCsvRow({{"V", Type("VARCHAR(5)")}}, MakeRow({Value::Varchar("a\rb")}), &csv);
  CHECK(csv == "\"a\rb\"");
}

TEST_CASE("Rows round-trip through decode, encode and decode", "[sql][record_format]") {
  RecordFormat format;
  format.columns = {Col("ID", "INTEGER"), Col("PRICE", "DECIMAL(10,2)"), Col("RATE", "DOUBLE"),
                    Col("OK", "BOOLEAN"), Col("NAME", "VARCHAR(20)"),    Col("AT", "TIMESTAMP"),
                    Col("BIG", "BIGINT")};
  const std::string input = R"({"ID":7,"PRICE":"123.455","RATE":0.30000000000000004,"OK":false,)"
                            R"("NAME":"x, \"y\"\nz é","AT":"2026-03-14T15:09:26.5Z","BIG":-12})";
  std::unique_ptr<RecordDecoder> json_decoder = MakeDecoder(format);
  const Decoded first = DecodeAll(*json_decoder, input);
  REQUIRE(first.rows.size() == 1);
  const Row row = MakeRow(first.rows[0]);
  CHECK(row.values[1] == Value::Decimal(12346, 2));
  CHECK(row.values[2] == Value::Double(0.30000000000000004));

  std::string json;
  EncodeJsonRow(json_decoder->schema(), row, &json);
  const Decoded again = DecodeAll(*json_decoder, json);
  REQUIRE(again.rows.size() == 1);
  CHECK(again.rows[0] == first.rows[0]);

  RecordFormat csv_format = format;
  csv_format.type = RecordFormatType::kCsv;
  std::unique_ptr<RecordDecoder> csv_decoder = MakeDecoder(csv_format);
  std::string csv;
  EncodeCsvRow(csv_decoder->schema(), row, &csv);
  csv += '\n';
  EncodeCsvRow(
      csv_decoder->schema(),
      MakeRow({Value::Null(SqlType::kInteger), Value::Null(SqlType::kDecimal),
               Value::Null(SqlType::kDouble), Value::Null(SqlType::kBoolean), Value::Varchar(""),
               Value::Null(SqlType::kTimestamp), Value::Null(SqlType::kBigint)}),
      &csv);
  const Decoded via_csv = DecodeAll(*csv_decoder, csv);
  REQUIRE(via_csv.errors.empty());
  REQUIRE(via_csv.rows.size() == 2);
  CHECK(via_csv.rows[0] == first.rows[0]);
  CHECK(via_csv.rows[1][0] == Value::Null(SqlType::kInteger));
  CHECK(via_csv.rows[1][4] == Value::Varchar(""));
}

class TempFile {
 public:
  explicit TempFile(std::string_view contents) {
    path_ = (std::filesystem::temp_directory_path() /
             ("rill_reference_" + std::to_string(reinterpret_cast<uintptr_t>(this)) + "_" +
              std::to_string(counter_++)))
                .string();
    std::ofstream out(path_, std::ios::binary);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  }
  ~TempFile() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

TEST_CASE("Reference tables load whole from CSV and JSON-lines files", "[sql][record_format]") {
  RecordFormat csv = CsvFormat();
  {
    TempFile file("1,one,1.5\n2,\"two\nlines\",2\n\n3,three,3\n");
    absl::StatusOr<std::vector<std::vector<Value>>> rows = LoadReferenceTable(file.path(), csv);
    REQUIRE(rows.ok());
    REQUIRE(rows->size() == 3);
    CHECK((*rows)[0][2] == Value::Decimal(150, 2));
    CHECK((*rows)[1][1] == Value::Varchar("two\nlines"));
    CHECK((*rows)[2][0] == Value::Integer(3));
  }
  {
    TempFile file("1,one,1.5\n2,\"two\nlines\",2\n3,three,x\n4,four,4\n");
    absl::StatusOr<std::vector<std::vector<Value>>> rows = LoadReferenceTable(file.path(), csv);
    REQUIRE_FALSE(rows.ok());
    CHECK(GetErrorCode(rows.status()) == ErrorCode::kInvalidArgument);
    CHECK_THAT(Message(rows.status()),
               Contains(", line 4: column C: cannot convert 'x' to DECIMAL(6,2)"));
    CHECK_THAT(Message(rows.status()), Contains(file.path()));
  }
  RecordFormat json;
  json.columns = {Col("ID", "INTEGER", "$.id"), Col("NAME", "VARCHAR(8)", "$.name")};
  {
    TempFile file("{\"id\":1,\"name\":\"a\"}\n\n  \r\n{\"id\":2}\r\n{\"id\":3,\"name\":\"c\"}");
    absl::StatusOr<std::vector<std::vector<Value>>> rows = LoadReferenceTable(file.path(), json);
    REQUIRE(rows.ok());
    REQUIRE(rows->size() == 3);
    CHECK((*rows)[1][0] == Value::Integer(2));
    CHECK((*rows)[1][1] == Value::Null(SqlType::kVarchar));
    CHECK((*rows)[2][1] == Value::Varchar("c"));
  }
  {
    TempFile file("{\"id\":1}\n{\"id\":2}\n{\"id\":\n{\"id\":\"four\"}\n");
    absl::StatusOr<std::vector<std::vector<Value>>> rows = LoadReferenceTable(file.path(), json);
    REQUIRE_FALSE(rows.ok());
    CHECK(GetErrorCode(rows.status()) == ErrorCode::kInvalidArgument);
    CHECK_THAT(Message(rows.status()), Contains(", line 3: malformed JSON"));
  }
  {
    TempFile file("{\"id\":1}\n{\"id\":\"four\"}\n");
    absl::StatusOr<std::vector<std::vector<Value>>> rows = LoadReferenceTable(file.path(), json);
    REQUIRE_FALSE(rows.ok());
    CHECK_THAT(Message(rows.status()),
               Contains(", line 2: column ID: cannot convert 'four' to INTEGER"));
  }
  const std::string missing =
      (std::filesystem::temp_directory_path() / "rill_reference_does_not_exist.csv").string();
  absl::StatusOr<std::vector<std::vector<Value>>> rows = LoadReferenceTable(missing, csv);
  REQUIRE_FALSE(rows.ok());
  CHECK(GetErrorCode(rows.status()) == ErrorCode::kResourceNotFound);
  CHECK_THAT(Message(rows.status()), Contains(missing));
  {
    // KDA's 1 GiB limit, on a sparse file.
    TempFile big("");
    std::filesystem::resize_file(big.path(), kMaxReferenceTableBytes + 1);
    absl::StatusOr<std::vector<std::vector<Value>>> too_big = LoadReferenceTable(big.path(), csv);
    REQUIRE_FALSE(too_big.ok());
    CHECK(GetErrorCode(too_big.status()) == ErrorCode::kLimitExceeded);
    CHECK_THAT(Message(too_big.status()), Contains("more than the limit of 1073741824"));
  }
  RecordFormat bad = csv;
  bad.columns.clear();
  TempFile file("1\n");
  CHECK(GetErrorCode(LoadReferenceTable(file.path(), bad).status()) == ErrorCode::kInvalidArgument);
}

TEST_CASE("Decode does not allocate in steady state", "[sql][record_format]") {
  RecordFormat json = TradeFormat();
  json.columns.push_back(Col("OBJ", "VARCHAR(100)", "$.obj"));
  std::unique_ptr<RecordDecoder> json_decoder = MakeDecoder(json);
  const std::vector<std::string> records = {
      R"({"ticker":"AMZN","price":"123.455","qty":3,"big":1,"rate":0.5,"ok":true,)"
      R"("at":"2026-01-01 00:00:00","note":"a longer note than the small string buffer holds",)"
      R"("obj":{"k":[1,2,3],"s":"a string long enough to leave the SSO buffer"}})",
      R"({"ticker":"X","price":1.5,"qty":"7","at":1767225600123,"note":"short"})",
      R"({"ticker":"Y","qty":"bad"})"};
  RecordFormat csv = CsvFormat();
  std::unique_ptr<RecordDecoder> csv_decoder = MakeDecoder(csv);
  const std::string csv_record =
      "1,\"a quoted, longer field \"\"than SSO\"\" holds\",1.25\n2,plain,2\n3,x,bad\n";

  int64_t rows = 0;
  int64_t errors = 0;
  const auto on_row = [&](std::vector<Value>&) { ++rows; };
  const auto on_error = [&](std::string_view) { ++errors; };
  const auto run = [&] {
    for (const std::string& record : records) json_decoder->Decode(record, on_row, on_error);
    csv_decoder->Decode(csv_record, on_row, on_error);
  };
  run();  // grows the buffers
  run();
  g_allocations = 0;
  g_count_allocations = true;
  for (int i = 0; i < 100; ++i) run();
  g_count_allocations = false;
  CHECK(g_allocations.load() == 0);
  // The counter sees allocations (a probe, so that the zero above means something).
  g_count_allocations = true;
  auto probe = std::make_unique<std::string>(100, 'x');
  g_count_allocations = false;
  CHECK(g_allocations.load() >= 2);
  probe.reset();
  CHECK(rows == 102 * 4);
  CHECK(errors == 102 * 2);
}

}  // namespace
}  // namespace rill::sql
