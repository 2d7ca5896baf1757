// How records' bytes map to rows of an in-application stream, and rows back to bytes: Kinesis
// Data Analytics' input schema (RecordFormat, RecordColumns) and output formats.
//
//   rill::sql::RecordFormat format;                       // JSON, one row per record
//   format.columns = {{"TICKER", {SqlType::kVarchar, 8}, "$.ticker"},
//                     {"PRICE", {SqlType::kDecimal, 0, 10, 2}, "$.price"}};
//
// JSON: record_row_path "$" maps each record to one row; "$.path[0:]" maps each element of the
// array at .path to a row. A column's mapping is a path from the row: "$.a.b" (object members;
// "$.a[2]" an array element); empty means "$.<name>" as written. CSV: rows are split at
// row_delimiter and columns at column_delimiter, in the order of `columns` (mapping unused).
//
// Conversions (KDA's, as reference §11.1 states): a missing path or JSON null -> NULL; true /
// false -> 1 / 0 in numeric columns; numeric strings -> numbers; numbers and booleans -> their
// text in VARCHAR; arrays and objects -> their JSON text in VARCHAR; VARCHAR(n) truncates to n
// characters (UTF-8 aware). TIMESTAMP accepts 'yyyy-MM-dd HH:mm:ss[.f...]', ISO 8601
// ('T', optional 'Z' or offset), and JSON numbers as milliseconds since the Unix epoch. A
// non-numeric string into a number, a fraction or out-of-range value into INTEGER / BIGINT, a
// non-scalar into a non-character column, an unparseable TIMESTAMP, malformed JSON, or a CSV row
// with too few columns is an error: that row goes to the application's error_stream with the
// reason. A CSV field is NULL when empty.
//
// Details rill decides (src/sql/record_decoder.h and src/sql/convert.h state them in full): a
// JSON key that occurs twice in an object maps its first occurrence; JSON numbers convert from
// their text as written (0.1 is exactly 0.1 in DECIMAL, 4.50 is "4.50" in VARCHAR); "4.0" and 1e3
// are integral and convert into INTEGER / BIGINT; DECIMAL rounds half away from zero; TIMESTAMP
// text may carry a zone ('Z', '+02:00') and up to 9 fraction digits (kept to microseconds). CSV
// quoting follows RFC 4180 ('"' around a field, "" inside it; a quoted field may hold delimiters),
// a quoted empty field is '' rather than NULL, empty rows are skipped and fields beyond the columns
// ignored.
//
// Thread safety: RecordFormat and RecordColumn are plain option values; ParseColumnType and
// SchemaOf are pure functions (they allocate only their results).
#ifndef RILL_SQL_RECORD_FORMAT_H_
#define RILL_SQL_RECORD_FORMAT_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rill/sql/value.h"

namespace rill::sql {

enum class RecordFormatType : uint8_t { kJson = 0, kCsv = 1 };

struct RecordColumn {
  // The column's name as SQL resolves it: unquoted names in SQL are upper case, so a column read
  // as `price` in SQL is named "PRICE" here; "price" is read as "price" (quoted) in SQL.
  std::string name;
  ColumnType type;
  // JSON path from the row ("$.a.b", "$.a[0]"). Default (empty): "$.<name>".
  std::string mapping;
};

struct RecordFormat {
  RecordFormatType type = RecordFormatType::kJson;
  // JSON: "$" (default) or "$.<path>[0:]".
  std::string record_row_path = "$";
  // CSV. Defaults: "\n" and ",". Neither may be empty; they must differ.
  std::string row_delimiter = "\n";
  std::string column_delimiter = ",";
  // 1..1000 columns, names unique and non-empty.
  std::vector<RecordColumn> columns;
};

// Parses a type name as SQL writes it: "INTEGER", "VARCHAR(16)", "DECIMAL(10, 2)", "TIMESTAMP",
// ... (case-insensitive). Errors: kInvalidArgument naming the text.
absl::StatusOr<ColumnType> ParseColumnType(std::string_view text);

// The schema a format produces.
Schema SchemaOf(const RecordFormat& format);

}  // namespace rill::sql

#endif  // RILL_SQL_RECORD_FORMAT_H_
