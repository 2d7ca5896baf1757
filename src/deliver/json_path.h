// The jq path subset of MetadataExtraction and of PostgresDestination's json_paths, on simdjson.
//   path   := "." | ("." field)+
//   field  := name | '"' json-string-contents '"'     name = [A-Za-z_][A-Za-z0-9_]*
// e.g. ".customer.id", ."order id".total. Nothing else of jq (no [] or pipes).
#ifndef RILL_SRC_DELIVER_JSON_PATH_H_
#define RILL_SRC_DELIVER_JSON_PATH_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace rill::deliver_internal {

class JsonPath {
 public:
  // kInvalidArgument naming the position and what was expected for anything outside the subset.
  static absl::StatusOr<JsonPath> Parse(std::string_view query);
  // The field names, unquoted and unescaped; empty for ".".
  const std::vector<std::string>& fields() const { return fields_; }
  const std::string& text() const { return text_; }

 private:
  std::vector<std::string> fields_;
  std::string text_;
};

enum class JsonValueKind { kMissing, kNull, kString, kNumber, kBool, kObject, kArray };

struct JsonValue {
  JsonValueKind kind = JsonValueKind::kMissing;
  // kString: the unescaped contents; kNumber, kBool: the token as written ("3.50", "true");
  // kObject, kArray: the value's JSON text (as written); kNull, kMissing: empty.
  std::string text;
};

// Extracts values from JSON records. Reuses its parser and buffers, so that after the first
// records a call allocates nothing unless a value outgrows its string.
// Thread safety: one extractor per thread.
class JsonExtractor {
 public:
  JsonExtractor();
  ~JsonExtractor();
  JsonExtractor(JsonExtractor&&) noexcept;
  JsonExtractor& operator=(JsonExtractor&&) noexcept;

  // Parses `json` and sets values[i] to the value at paths[i] (values is resized to
  // paths.size()). kInvalidArgument if `json` is not a valid JSON document whose root is an
  // object, naming simdjson's error.
  absl::Status Extract(std::string_view json, absl::Span<const JsonPath> paths,
                       std::vector<JsonValue>& values);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace rill::deliver_internal

#endif  // RILL_SRC_DELIVER_JSON_PATH_H_
