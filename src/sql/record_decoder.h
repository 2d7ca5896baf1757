// Input mappings (internal): a record's bytes -> rows of an in-application stream, as Kinesis
// Data Analytics' input schema (rill/sql/record_format.h) maps them.
//
// JSON (simdjson's DOM parser, which validates the whole record): the row path "$" makes the
// record one row; "$.a.b[0:]" makes each element of the array at .a.b a row (a missing path or
// one that is not an array is an error for the record; an empty array gives no rows). A column's
// mapping is followed from the row; when a key occurs twice in an object the first occurrence
// wins. JSON numbers convert from their text as written: integers exactly from the DOM, and a
// fraction or exponent form that reaches a column other than DOUBLE from its raw token, which
// the decoder finds by iterating the record a second time with simdjson's on-demand API (once per
// record that needs it); so 0.1 and 1234567890123456.78 are exact in DECIMAL(18,2). Should the
// raw token not be found (a key written with escape sequences on the way), the nearest double's
// shortest text is used. An integer beyond 64 bits makes the record malformed (simdjson's DOM).
// A number into VARCHAR is its text as written; a boolean "true" / "false"; an array or object
// its minified JSON text (numbers inside it in simdjson's parsed form: 4.50 -> 4.5). A number
// into TIMESTAMP is milliseconds since the Unix epoch (a fraction gives microseconds).
//
// CSV (RFC 4180 style): rows end at row_delimiter (a trailing delimiter makes no empty row, and
// empty rows are skipped), fields at column_delimiter. A field starting with '"' is quoted: it
// ends at the next '"' not doubled, may contain either delimiter, "" stands for '"', and only the
// end of the data, a column delimiter or a row delimiter may follow it; a quote elsewhere is
// literal text. An empty unquoted field is NULL (a quoted "" is the empty string). Fewer fields
// than columns is an error; extra fields are ignored. Fields are not trimmed except around
// numbers, booleans and timestamps (sql/convert.h); "\r\n" data wants row_delimiter "\r\n".
//
// Errors of a row go to on_error with a reason such as
//   "column PRICE: cannot convert 'abc' to DECIMAL(10,2)", "malformed JSON: ...",
//   "CSV row has 2 fields, 3 columns expected";
// the record's other rows still decode.
//
// Allocation: Decode allocates only while its buffers grow (the padded copy of the record, the
// parser's document, VARCHAR values' strings, scratch text and the error reason); in steady
// state it does not allocate, error rows included. Thread safety: one decoder per thread (Decode
// mutates it); distinct decoders are independent.
#ifndef RILL_SQL_RECORD_DECODER_H_
#define RILL_SQL_RECORD_DECODER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "rill/sql/record_format.h"
#include "rill/sql/value.h"

namespace rill::sql {

class RecordDecoder {
 public:
  // Validates the format: 1..1000 columns with unique non-empty names and valid types; JSON paths
  // "$", "$.a.b", "$.a[3]" (a row path is "$" or ends in "[0:]", e.g. "$.a.b[0:]"); CSV
  // delimiters non-empty, different and without '"'. Errors: kInvalidArgument naming the problem.
  static absl::StatusOr<std::unique_ptr<RecordDecoder>> Create(const RecordFormat& format);
  ~RecordDecoder();
  RecordDecoder(const RecordDecoder&) = delete;
  RecordDecoder& operator=(const RecordDecoder&) = delete;

  const Schema& schema() const { return schema_; }

  // Decodes one record's data. Calls on_row(values) once per row, values having one Value per
  // column (the vector is the decoder's and is reused: copy what you keep). A row or record that
  // cannot be converted calls on_error(reason) instead (the reason is valid during the call only);
  // other rows of the same record still decode.
  void Decode(std::string_view data, absl::FunctionRef<void(std::vector<Value>&)> on_row,
              absl::FunctionRef<void(std::string_view reason)> on_error);

  // The byte offset in the data being decoded of the row the latest on_row / on_error call is
  // about: the row's first byte for CSV, 0 for JSON (whose rows are in one record).
  size_t row_offset() const { return row_offset_; }

 private:
  struct PathStep {
    bool is_index = false;
    size_t index = 0;
    std::string key;
  };
  using Path = std::vector<PathStep>;
  struct Json;  // simdjson state

  explicit RecordDecoder(const RecordFormat& format);
  static absl::Status ParsePath(std::string_view text, bool row_path, Path* path);

  void DecodeJson(std::string_view data, absl::FunctionRef<void(std::vector<Value>&)> on_row,
                  absl::FunctionRef<void(std::string_view)> on_error);
  void DecodeCsv(std::string_view data, absl::FunctionRef<void(std::vector<Value>&)> on_row,
                 absl::FunctionRef<void(std::string_view)> on_error);
  // The raw text of the JSON number that column `column` of row `row_index` maps to, or empty
  // when it cannot be found (the caller then uses the parsed double).
  std::string_view RawNumber(size_t column, size_t row_index);
  // Sets error_ to "column <name>: <message>".
  void ColumnError(size_t column, std::string_view message);

  RecordFormat format_;
  Schema schema_;
  Path row_path_;                 // JSON: without the final [0:]
  bool row_per_element_ = false;  // JSON: the row path ends in [0:]
  std::vector<Path> column_paths_;
  std::unique_ptr<Json> json_;
  std::vector<Value> values_;
  std::string error_;    // the reason of an error row
  std::string scratch_;  // CSV quoted fields, JSON text for VARCHAR
  std::string reason_;   // a conversion's error
  size_t row_offset_ = 0;
};

}  // namespace rill::sql

#endif  // RILL_SQL_RECORD_DECODER_H_
