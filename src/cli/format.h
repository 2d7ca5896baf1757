// Output helpers of the `rill` command: aligned tables, one-line JSON objects, record data shown
// as text or base64, and the time and size formats every command shares.
//
// Example:
//   Table table({"SHARD", "RECORDS"}, {Align::kLeft, Align::kRight});
//   table.AddRow({"shardId-000000000000", "12"});
//   std::cout << table.Render();   // "SHARD                 RECORDS\nshardId-000000000000 12\n"
//   JsonObject o;
//   o.Str("shard_id", "shardId-000000000000").Int("records", 12);
//   std::cout << o.Line();          // {"shard_id":"shardId-000000000000","records":12}\n
//
// Thread safety: plain values and pure functions.
#ifndef RILL_CLI_FORMAT_H_
#define RILL_CLI_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace rill::cli {

enum class Align { kLeft, kRight };

// A table rendered with columns padded to their widest cell (counted in code points), separated
// by two spaces, without trailing blanks. Cells should be single-line display text
// (DisplayText()).
class Table {
 public:
  // `aligns` may be shorter than `headers`: missing columns are left-aligned.
  explicit Table(std::vector<std::string> headers, std::vector<Align> aligns = {});
  // A row with fewer cells than headers is padded with empty cells.
  void AddRow(std::vector<std::string> row);
  bool empty() const { return rows_.empty(); }
  // The header line and every row, each ending in "\n".
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<Align> aligns_;
  std::vector<std::vector<std::string>> rows_;
};

// A JSON string literal (quotes included). Escapes '"', '\\' and control characters (as \n, \t,
// or \u00XX); bytes that are not valid UTF-8 become U+FFFD.
std::string JsonString(std::string_view text);

// Builds one JSON object, keys in the order added.
class JsonObject {
 public:
  JsonObject& Str(std::string_view key, std::string_view value);
  JsonObject& Int(std::string_view key, int64_t value);
  JsonObject& Uint(std::string_view key, uint64_t value);
  JsonObject& Double(std::string_view key, double value);
  JsonObject& Bool(std::string_view key, bool value);
  JsonObject& Null(std::string_view key);
  // `json` is already valid JSON (an object, an array, a number...).
  JsonObject& Raw(std::string_view key, std::string_view json);
  // The object, e.g. {"a":1}.
  std::string str() const { return body_ + "}"; }
  // The object and "\n".
  std::string Line() const { return str() + "\n"; }

 private:
  void Key(std::string_view key);
  std::string body_ = "{";
};

// A JSON array of the given JSON values, e.g. ["a","b"] from {"\"a\"", "\"b\""}.
std::string JsonArray(const std::vector<std::string>& values);

// True when `data` is valid UTF-8 without control characters (C0, DEL, C1): it can be shown on
// one line as it is. The empty string is printable.
bool IsPrintableText(std::string_view data);

// Standard base64 with padding (RFC 4648).
std::string Base64(std::string_view data);

// `text` for one table cell or log line: valid UTF-8 with control characters written as \n, \t,
// \r or \xNN, and invalid bytes as \xNN.
std::string DisplayText(std::string_view text);

// RFC 3339 in UTC with microseconds: "2024-05-01T12:00:00.000000Z".
std::string TimeText(absl::Time time);

// A duration in the largest whole unit up to hours (as Kinesis gives retention): "24h", "168h",
// "90s", "1500ms"; "0s" for zero.
std::string DurationText(absl::Duration duration);

// Parses a time given on the command line: RFC 3339 ("2024-05-01T12:00:00Z", fractions and
// offsets allowed) or seconds since the Unix epoch ("1714564800", "1714564800.25"). False if
// it is neither.
bool ParseTimeArgument(std::string_view text, absl::Time* time);

}  // namespace rill::cli

#endif  // RILL_CLI_FORMAT_H_
