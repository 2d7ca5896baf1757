// Value conversions (internal): text -> typed value (input mappings, CSV fields, JSON strings,
// CAST from VARCHAR) and value -> typed value (CAST, INSERT INTO a stream's column).
//
// Text rules (ConvertText):
//   - Surrounding white space (' ', '\t', '\r', '\n') is ignored except into VARCHAR, which takes
//     the text as is.
//   - BOOLEAN: true / false (any case), 1 / 0.
//   - INTEGER, BIGINT: an optional sign and digits. The decimal forms of an integral value
//     ("4.0", "1e3") are accepted too; a fraction ("4.5") or a value outside the type's range is
//     an error.
//   - DOUBLE: decimal or exponent notation (std::from_chars' general format after an optional
//     '+'); "inf" and "nan" are accepted; a finite text outside double's range is an error.
//   - DECIMAL(p, s): decimal or exponent notation, read exactly and rounded half away from zero to
//     s digits after the point; more than p - s digits before the point is an error.
//   - VARCHAR(n): the first n characters (UTF-8 code points; a character is never split).
//   - TIMESTAMP: 'yyyy-MM-dd' (midnight), 'yyyy-MM-dd HH:mm[:ss[.f]]' or ISO 8601's
//     'yyyy-MM-ddTHH:mm[:ss[.f]]', either followed by an optional zone 'Z', '±hh:mm' or '±hhmm'
//     (none means UTC). Up to 9 fraction digits; digits beyond microseconds are truncated.
//     Stored as microseconds since the Unix epoch, UTC.
//   Errors: kInvalidArgument "cannot convert '<text>' to <TYPE>" (text shortened past 64 bytes),
//   with ": out of range" or ": fraction" appended where that is the reason.
//
// Value rules (ConvertValue), beyond "same type" and "NULL stays NULL (of the target type)":
//   - To VARCHAR(n): the value's text (Value::ToString), truncated to n characters.
//   - From VARCHAR: ConvertText.
//   - Between numbers: INTEGER / BIGINT / DECIMAL widen exactly (range-checked); DOUBLE and
//     DECIMAL to INTEGER / BIGINT truncate toward zero, as Kinesis Data Analytics (SQLstream)
//     casts; DOUBLE to DECIMAL goes through the double's shortest text (0.1 -> 0.1) and DECIMAL
//     rescaling rounds half away from zero. Out of range or non-finite is an error.
//   - BOOLEAN <-> numbers: TRUE / FALSE are 1 / 0; only a number equal to 0 or 1 becomes a
//     BOOLEAN.
//   - TIMESTAMP <-> BIGINT (and INTEGER to TIMESTAMP): milliseconds since the Unix epoch, as
//     KDA's UNIX_TIMESTAMP (TIMESTAMP -> BIGINT rounds toward the past).
//   - Anything else (a TIMESTAMP to DOUBLE, an INTERVAL to anything but VARCHAR) is an error.
//
// Allocation: only a VARCHAR result's string, and only when `out` had no room for it (out->s is
// reused); error statuses allocate their message. Thread safety: free functions, reentrant.
#ifndef RILL_SQL_CONVERT_H_
#define RILL_SQL_CONVERT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "rill/sql/value.h"

namespace rill::sql {

// Text -> a value of `type`. On error *out is unspecified.
absl::Status ConvertText(std::string_view text, const ColumnType& type, Value* out);

// The same, for callers that keep a buffer: false on error, with the reason (the status' message
// above) appended to *reason, which is the only allocation an error makes (none once *reason has
// the capacity).
bool ConvertText(std::string_view text, const ColumnType& type, Value* out, std::string* reason);

// A value -> a value of `type`. `in` and `out` may be the same object. On error *out is
// unspecified.
absl::Status ConvertValue(const Value& in, const ColumnType& type, Value* out);

// Sets *out to a NULL of `type` (keeping out->s's capacity).
void SetNull(const ColumnType& type, Value* out);

// The length in bytes of the first `max_chars` UTF-8 characters of `text` (all of it when it has
// no more).
size_t Utf8PrefixBytes(std::string_view text, size_t max_chars);

// Whether `type` can be a column's type (BOOLEAN, INTEGER, BIGINT, DOUBLE, DECIMAL with
// 1 <= p <= 18 and 0 <= s <= p, VARCHAR with 1 <= n <= 65535, TIMESTAMP).
bool IsValidColumnType(const ColumnType& type);

}  // namespace rill::sql

#endif  // RILL_SQL_CONVERT_H_
