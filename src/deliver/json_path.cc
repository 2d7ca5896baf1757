// The jq path subset on simdjson's On-Demand API.
//
// Why On-Demand rather than DOM: the DOM keeps parsed numbers only, and a number must come back
// exactly as written ("3.50", "1e3", integers beyond 64 bits), which On-Demand's raw tokens give.
// On-Demand validates only what it visits, so Extract first walks the whole record once (every
// key, string, number and literal checked), then rewinds and follows each path. Objects and arrays
// come back as written in the record (not minified), trimmed of the whitespace around them.
#include "deliver/json_path.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/utf.h"
#include "rill/base/error.h"

namespace rill::deliver_internal {
namespace {

namespace od = simdjson::ondemand;

// As simdjson's DOM parser (DEFAULT_MAX_DEPTH). On-Demand itself does not limit nesting, and the
// validating walk recurses once per level: about 300 bytes of stack a level with g++ -O2, so at
// most ~320 KiB for the deepest record accepted.
constexpr int kMaxDepth = 1024;

absl::Status BadPath(std::string_view query, size_t at, std::string_view expected) {
  return MakeError(ErrorCode::kInvalidArgument,
                   absl::StrCat("bad jq path \"", std::string(query), "\" at ", at + 1,
                                ": expected ", std::string(expected)));
}

bool IsNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads the 4 hex digits of a \u escape at query[at..at+3] into *unit, or says which one is bad.
absl::Status ReadHex4(std::string_view query, size_t at, uint32_t* unit) {
  *unit = 0;
  for (size_t k = 0; k < 4; ++k) {
    const int h = at + k < query.size() ? HexValue(query[at + k]) : -1;
    if (h < 0) return BadPath(query, at + k, "a hex digit");
    *unit = (*unit << 4) | static_cast<uint32_t>(h);
  }
  return absl::OkStatus();
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Parses the quoted field whose opening '"' is query[*at]; leaves *at after the closing '"'.
// The contents follow JSON's string rules (RFC 8259 §7), so a name can be copied from a record.
absl::Status ParseQuoted(std::string_view query, size_t* at, std::string* name) {
  size_t i = *at + 1;
  while (true) {
    if (i >= query.size()) return BadPath(query, i, "a closing '\"'");
    const auto c = static_cast<unsigned char>(query[i]);
    if (c == '"') break;
    if (c < 0x20)
      return BadPath(query, i, "a printable character (control characters are escaped)");
    if (c >= 0x80) {
      uint32_t cp;
      const size_t n = internal::DecodeUtf8(query.substr(i), &cp);
      if (n == 0) return BadPath(query, i, "valid UTF-8");
      name->append(query.substr(i, n));
      i += n;
      continue;
    }
    if (c != '\\') {
      name->push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (i + 1 >= query.size()) return BadPath(query, i + 1, "an escaped character");
    const char e = query[i + 1];
    char simple = 0;
    switch (e) {
      case '"':
      case '\\':
      case '/':
        simple = e;
        break;
      case 'b':
        simple = '\b';
        break;
      case 'f':
        simple = '\f';
        break;
      case 'n':
        simple = '\n';
        break;
      case 'r':
        simple = '\r';
        break;
      case 't':
        simple = '\t';
        break;
      case 'u':
        break;
      default:
        return BadPath(query, i + 1, "an escape: one of \" \\ / b f n r t u");
    }
    if (e != 'u') {
      name->push_back(simple);
      i += 2;
      continue;
    }
    uint32_t unit;
    if (absl::Status s = ReadHex4(query, i + 2, &unit); !s.ok()) return s;
    if (unit >= 0xDC00 && unit <= 0xDFFF) {
      return BadPath(query, i, "a \\uD800-\\uDBFF escape before this low surrogate");
    }
    if (unit >= 0xD800 && unit <= 0xDBFF) {
      // A high surrogate must be followed at once by the escaped low surrogate of its pair.
      const size_t low_at = i + 6;
      if (low_at + 1 >= query.size() || query[low_at] != '\\' || query[low_at + 1] != 'u') {
        return BadPath(query, low_at, "a \\uDC00-\\uDFFF escape completing the surrogate pair");
      }
      uint32_t low;
      if (absl::Status s = ReadHex4(query, low_at + 2, &low); !s.ok()) return s;
      if (low < 0xDC00 || low > 0xDFFF) {
        return BadPath(query, low_at, "a \\uDC00-\\uDFFF escape completing the surrogate pair");
      }
      AppendUtf8(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), name);
      i = low_at + 6;
      continue;
    }
    AppendUtf8(unit, name);
    i += 6;
  }
  *at = i + 1;
  return absl::OkStatus();
}

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// simdjson's raw tokens run up to the next token, so they carry the whitespace in between.
std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && IsJsonSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsJsonSpace(s.front())) s.remove_prefix(1);
  return TrimRight(s);
}

// RFC 8259 §6. simdjson's own number parser refuses valid numbers it cannot represent (integers
// beyond 64 bits, 1e400), which a record may hold and which Extract returns as text anyway.
bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

simdjson::error_code ValidateValue(od::value value, int depth);

simdjson::error_code ValidateObject(od::object object, int depth) {
  if (depth > kMaxDepth) return simdjson::DEPTH_ERROR;
  for (auto field_result : object) {
    od::field field;
    if (auto e = std::move(field_result).get(field)) return e;
    std::string_view key;
    if (auto e = field.unescaped_key().get(key)) return e;
    if (auto e = ValidateValue(field.value(), depth)) return e;
  }
  return simdjson::SUCCESS;
}

simdjson::error_code ValidateArray(od::array array, int depth) {
  if (depth > kMaxDepth) return simdjson::DEPTH_ERROR;
  for (auto element_result : array) {
    od::value element;
    if (auto e = std::move(element_result).get(element)) return e;
    if (auto e = ValidateValue(element, depth)) return e;
  }
  return simdjson::SUCCESS;
}

simdjson::error_code ValidateValue(od::value value, int depth) {
  od::json_type type;
  if (auto e = value.type().get(type)) return e;
  switch (type) {
    case od::json_type::object: {
      od::object object;
      if (auto e = value.get_object().get(object)) return e;
      return ValidateObject(object, depth + 1);
    }
    case od::json_type::array: {
      od::array array;
      if (auto e = value.get_array().get(array)) return e;
      return ValidateArray(array, depth + 1);
    }
    case od::json_type::string: {
      std::string_view s;
      return value.get_string().get(s);
    }
    case od::json_type::number:
      return IsJsonNumber(TrimRight(value.raw_json_token())) ? simdjson::SUCCESS
                                                             : simdjson::NUMBER_ERROR;
    case od::json_type::boolean: {
      // type() looks at the first letter only: "tru" and "trueish" get here too.
      const std::string_view token = TrimRight(value.raw_json_token());
      if (token == "true" || token == "false") return simdjson::SUCCESS;
      return token.front() == 't' ? simdjson::T_ATOM_ERROR : simdjson::F_ATOM_ERROR;
    }
    case od::json_type::null:
      return TrimRight(value.raw_json_token()) == "null" ? simdjson::SUCCESS
                                                         : simdjson::N_ATOM_ERROR;
  }
  return simdjson::TAPE_ERROR;
}

// Sets *out from `value`, the end of a path.
simdjson::error_code Read(od::value value, JsonValue* out) {
  od::json_type type;
  if (auto e = value.type().get(type)) return e;
  std::string_view text;
  switch (type) {
    case od::json_type::object: {
      od::object object;
      if (auto e = value.get_object().get(object)) return e;
      if (auto e = object.raw_json().get(text)) return e;
      out->kind = JsonValueKind::kObject;
      text = TrimRight(text);
      break;
    }
    case od::json_type::array: {
      od::array array;
      if (auto e = value.get_array().get(array)) return e;
      if (auto e = array.raw_json().get(text)) return e;
      out->kind = JsonValueKind::kArray;
      text = TrimRight(text);
      break;
    }
    case od::json_type::string:
      if (auto e = value.get_string().get(text)) return e;
      out->kind = JsonValueKind::kString;
      break;
    case od::json_type::number:
      out->kind = JsonValueKind::kNumber;
      text = TrimRight(value.raw_json_token());
      break;
    case od::json_type::boolean:
      out->kind = JsonValueKind::kBool;
      text = TrimRight(value.raw_json_token());
      break;
    case od::json_type::null:
      out->kind = JsonValueKind::kNull;
      break;
  }
  out->text.assign(text.data(), text.size());
  return simdjson::SUCCESS;
}

// Follows `fields` from the document's root object and reads the value there; leaves *out as
// kMissing when a field is absent or a step meets something other than an object. A key that
// appears twice in an object is found at its first occurrence (jq would take the last): the
// walk stops at the first match, which keeps one pass over each object.
simdjson::error_code Follow(od::document& doc, const std::vector<std::string>& fields,
                            JsonValue* out) {
  doc.rewind();
  od::object object;
  if (auto e = doc.get_object().get(object)) return e;
  od::value value;
  for (size_t step = 0; step < fields.size(); ++step) {
    bool found = false;
    for (auto field_result : object) {
      od::field field;
      if (auto e = std::move(field_result).get(field)) return e;
      std::string_view key;
      if (auto e = field.unescaped_key().get(key)) return e;
      if (key == fields[step]) {
        value = field.value();
        found = true;
        break;
      }
    }
    if (!found) return simdjson::SUCCESS;
    if (step + 1 == fields.size()) break;
    od::json_type type;
    if (auto e = value.type().get(type)) return e;
    if (type != od::json_type::object) return simdjson::SUCCESS;
    if (auto e = value.get_object().get(object)) return e;
  }
  return Read(value, out);
}

absl::Status InvalidJson(simdjson::error_code e) {
  return MakeError(ErrorCode::kInvalidArgument,
                   absl::StrCat("record is not valid JSON: ", simdjson::error_message(e)));
}

}  // namespace

absl::StatusOr<JsonPath> JsonPath::Parse(std::string_view query) {
  JsonPath path;
  path.text_ = std::string(query);
  if (query.empty()) return BadPath(query, 0, "'.'");
  if (query == ".") return path;
  size_t i = 0;
  while (i < query.size()) {
    if (query[i] != '.') return BadPath(query, i, "'.'");
    ++i;
    if (i < query.size() && IsNameStart(query[i])) {
      const size_t start = i;
      while (i < query.size() && IsNameChar(query[i])) ++i;
      path.fields_.emplace_back(query.substr(start, i - start));
    } else if (i < query.size() && query[i] == '"') {
      std::string name;
      if (absl::Status s = ParseQuoted(query, &i, &name); !s.ok()) return s;
      path.fields_.push_back(std::move(name));
    } else {
      return BadPath(query, i, "a field name");
    }
  }
  return path;
}

struct JsonExtractor::State {
  od::parser parser;
  // The record, copied with simdjson's padding after it; grows, never shrinks.
  std::unique_ptr<char[]> buffer;
  size_t capacity = 0;
};

JsonExtractor::JsonExtractor() : state_(std::make_unique<State>()) {}
JsonExtractor::~JsonExtractor() = default;
JsonExtractor::JsonExtractor(JsonExtractor&&) noexcept = default;
JsonExtractor& JsonExtractor::operator=(JsonExtractor&&) noexcept = default;

absl::Status JsonExtractor::Extract(std::string_view json, absl::Span<const JsonPath> paths,
                                    std::vector<JsonValue>& values) {
  values.resize(paths.size());
  for (JsonValue& v : values) {
    v.kind = JsonValueKind::kMissing;
    v.text.clear();
  }
  State& st = *state_;
  const size_t needed = json.size() + simdjson::SIMDJSON_PADDING;
  if (st.capacity < needed) {
    st.capacity = std::max(needed, st.capacity + st.capacity / 2);
    st.buffer = std::make_unique<char[]>(st.capacity);
  }
  if (!json.empty()) std::memcpy(st.buffer.get(), json.data(), json.size());
  std::memset(st.buffer.get() + json.size(), 0, simdjson::SIMDJSON_PADDING);

  od::document doc;
  if (auto e = st.parser.iterate(st.buffer.get(), json.size(), st.capacity).get(doc)) {
    return InvalidJson(e);
  }
  od::json_type type;
  if (auto e = doc.type().get(type)) return InvalidJson(e);
  if (type != od::json_type::object) {
    return MakeError(ErrorCode::kInvalidArgument, "record is not a JSON object");
  }
  od::object root;
  if (auto e = doc.get_object().get(root)) return InvalidJson(e);
  if (auto e = ValidateObject(root, 1)) return InvalidJson(e);
  // Having consumed the root object, a location still in bounds means more follows it.
  if (!doc.current_location().error()) return InvalidJson(simdjson::TRAILING_CONTENT);

  for (size_t i = 0; i < paths.size(); ++i) {
    if (paths[i].fields().empty()) {
      values[i].kind = JsonValueKind::kObject;
      const std::string_view whole = Trim(json);
      values[i].text.assign(whole.data(), whole.size());
      continue;
    }
    if (auto e = Follow(doc, paths[i].fields(), &values[i])) return InvalidJson(e);
  }
  return absl::OkStatus();
}

}  // namespace rill::deliver_internal
