// Output encodings (internal): rows of an in-application stream -> the bytes an output
// destination receives, as Kinesis Data Analytics' JSON and CSV output formats write them.
//
// Both append to *out (which the caller reuses: no allocation once it has grown, except a
// TIMESTAMP's text) and assume row.values has one Value per schema column (extra values are
// ignored, missing ones written as NULL). Thread safety: free functions, reentrant.
#ifndef RILL_SQL_RECORD_ENCODER_H_
#define RILL_SQL_RECORD_ENCODER_H_

#include <string>
#include <string_view>

#include "rill/sql/value.h"

namespace rill::sql {

// A JSON object with the schema's column names as keys, in schema order: INTEGER, BIGINT and
// DECIMAL as JSON numbers (DECIMAL's exact text with its scale's digits), DOUBLE in the shortest
// form that reads back the same (non-finite as null), BOOLEAN as true / false, VARCHAR as an
// escaped JSON string, TIMESTAMP as "yyyy-MM-dd HH:mm:ss.SSS" (Value::ToString), NULL as null.
// No trailing newline.
void EncodeJsonRow(const Schema& schema, const Row& row, std::string* out);

// CSV: the fields' text (Value::ToString: TRUE / FALSE, DECIMAL with its scale's digits, ...)
// joined by ','; a field is double-quoted (with "" for a quote) when it contains ',', '"', '\n'
// or '\r', and an empty VARCHAR is written as "" so that it reads back as '' rather than NULL.
// NULL is an empty field. No trailing newline.
void EncodeCsvRow(const Schema& schema, const Row& row, std::string* out);

// `text` as a JSON string literal, quotes included: '"', '\\' and control characters escaped
// (\n, \t, ... or \u00XX); other bytes as they are.
void AppendJsonString(std::string_view text, std::string* out);

}  // namespace rill::sql

#endif  // RILL_SQL_RECORD_ENCODER_H_
