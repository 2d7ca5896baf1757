// JSON for the Kinesis wire API: parsing request bodies (simdjson) and writing response bodies
// (JsonWriter, appending to a reused std::string), plus Kinesis' base64 for record data.
//
// Example:
//   std::string out;
//   rill::net::JsonWriter w(&out);
//   w.BeginObject();
//   w.Key("ShardId");
//   w.String("shardId-000000000000");
//   w.Key("ApproximateArrivalTimestamp");
//   w.EpochSeconds(absl::FromUnixMillis(1704067200123));  // 1704067200.123
//   w.EndObject();
//
//   absl::StatusOr<simdjson::dom::element> doc = rill::net::ParseJson(body);
//
// Why simdjson's DOM API rather than On-Demand: a Kinesis request is small (at most a few MiB,
// one PutRecords batch) and its members must be looked up by name in the order of the operation's
// shape, not of the document, so that type errors and validation messages come out in the order
// Kinesis reports them; On-Demand is forward-only and would have us re-scan or buffer. The DOM
// parse of a request is a few microseconds; the parser's buffers are reused per thread.
//
// Thread safety: JsonWriter is used by one thread at a time. ParseJson uses a thread_local parser:
// the element it returns is valid until the same thread's next ParseJson. The base64 functions are
// pure.
#ifndef RILL_NET_JSON_H_
#define RILL_NET_JSON_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rill::net {

// Appends JSON text to a string. The writer inserts commas and quotes; the caller keeps the
// structure well formed (a Key before each value in an object, balanced Begin/End). Allocation:
// only what appending to `out` and the nesting stack (one byte per open level) need; reuse both
// across responses to allocate nothing in the steady state.
class JsonWriter {
 public:
  // Appends to *out (not cleared). `out` must outlive the writer.
  explicit JsonWriter(std::string* out) : out_(out) {}

  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  // An object member's name (escaped as a string).
  void Key(std::string_view key);

  // A string, escaped per RFC 8259: '"', '\\' and every control character below U+0020 are
  // escaped (\b \f \n \r \t, others as \u00XX). Bytes that are not valid UTF-8 are written as
  // U+FFFD, one per bad byte, so that the output is always valid UTF-8 JSON.
  void String(std::string_view value);
  void Int(int64_t value);
  void Bool(bool value);
  void Null();
  // A point in time as Kinesis writes it: epoch seconds as a JSON number with up to three
  // decimals (milliseconds, truncated towards the past), trailing zeros dropped: 1704067200,
  // 1704067200.5, 1704067200.123.
  void EpochSeconds(absl::Time t);
  // Bytes as a base64 string (RFC 4648, padded), as Kinesis sends record data.
  void Base64(std::string_view bytes);

  // Key(key) followed by the value.
  void Member(std::string_view key, std::string_view value) {
    Key(key);
    String(value);
  }
  void Member(std::string_view key, const char* value) { Member(key, std::string_view(value)); }
  void Member(std::string_view key, int64_t value) {
    Key(key);
    Int(value);
  }
  void Member(std::string_view key, int value) { Member(key, static_cast<int64_t>(value)); }
  void Member(std::string_view key, bool value) {
    Key(key);
    Bool(value);
  }

 private:
  // Before a value or key: a comma unless it is the first in its container.
  void Separate();

  std::string* out_;
  // One entry per open container: 1 once it holds something (so the next item needs a comma).
  std::vector<char> nonempty_;
  // Set by Key(): the value that follows takes no comma.
  bool after_key_ = false;
};

// Appends `value` as an escaped JSON string (with its quotes) to *out. See JsonWriter::String.
void AppendJsonString(std::string_view value, std::string* out);

// Parses `body` with this thread's reusable parser. Malformed JSON (including invalid UTF-8 and
// nesting deeper than simdjson's default 1024 levels) is kInvalidArgument with simdjson's
// message. The element is valid until this thread calls ParseJson again.
[[nodiscard]] absl::StatusOr<simdjson::dom::element> ParseJson(std::string_view body);

// Appends the padded base64 encoding of `bytes` to *out.
void AppendBase64(std::string_view bytes, std::string* out);

// Decodes base64 as strictly as Kinesis: the length must be a multiple of 4, only [A-Za-z0-9+/]
// and trailing '=' padding may appear, and the encoding must be canonical (unused bits of the
// last character zero), since Kinesis rejects anything whose re-encoding differs. On failure
// returns kInvalidArgument whose message is Kinesis' (and kinesalite's) text after
// "'<value>' can not be converted to a Blob: ", e.g. "Base64 encoded length is expected a
// multiple of 4 bytes but found: 5"; *out is then unspecified.
[[nodiscard]] absl::Status DecodeBase64Strict(std::string_view text, std::string* out);

}  // namespace rill::net

#endif  // RILL_NET_JSON_H_
