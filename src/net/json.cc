#include "net/json.h"

#include <array>
#include <cstdint>

#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "base/utf.h"

namespace rill::net {
namespace {

constexpr char kHex[] = "0123456789abcdef";

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '+' ? 62 : 63;
}

}  // namespace

void AppendJsonString(std::string_view value, std::string* out) {
  out->push_back('"');
  const auto* p = reinterpret_cast<const unsigned char*>(value.data());
  const size_t n = value.size();
  size_t i = 0;
  while (i < n) {
    // Copy the longest run that needs no escaping in one append.
    size_t run = i;
    while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') ++run;
    out->append(value.data() + i, run - i);
    i = run;
    if (i == n) break;
    const unsigned char c = p[i];
    if (c >= 0x80) {
      uint32_t code_point;
      const size_t len = rill::internal::DecodeUtf8(value.substr(i), &code_point);
      if (len == 0) {
        out->append("\xEF\xBF\xBD");  // U+FFFD for each byte that is not valid UTF-8
        ++i;
      } else {
        out->append(value.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default: {
        const char escaped[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out->append(escaped, sizeof(escaped));
      }
    }
    ++i;
  }
  out->push_back('"');
}

void JsonWriter::Separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!nonempty_.empty()) {
    if (nonempty_.back()) out_->push_back(',');
    nonempty_.back() = 1;
  }
}

void JsonWriter::BeginObject() {
  Separate();
  out_->push_back('{');
  nonempty_.push_back(0);
}

void JsonWriter::EndObject() {
  out_->push_back('}');
  if (!nonempty_.empty()) nonempty_.pop_back();
}

void JsonWriter::BeginArray() {
  Separate();
  out_->push_back('[');
  nonempty_.push_back(0);
}

void JsonWriter::EndArray() {
  out_->push_back(']');
  if (!nonempty_.empty()) nonempty_.pop_back();
}

void JsonWriter::Key(std::string_view key) {
  Separate();
  AppendJsonString(key, out_);
  out_->push_back(':');
  after_key_ = true;
}

void JsonWriter::String(std::string_view value) {
  Separate();
  AppendJsonString(value, out_);
}

void JsonWriter::Int(int64_t value) {
  Separate();
  absl::StrAppend(out_, value);
}

void JsonWriter::Bool(bool value) {
  Separate();
  out_->append(value ? "true" : "false");
}

void JsonWriter::Null() {
  Separate();
  out_->append("null");
}

void JsonWriter::EpochSeconds(absl::Time t) {
  Separate();
  // Milliseconds floored (absl::ToUnixMillis rounds towards the past), so that a time before the
  // epoch still prints its own second and a positive fraction's digits.
  const int64_t ms = absl::ToUnixMillis(t);
  int64_t seconds = ms / 1000;
  int64_t fraction = ms % 1000;
  if (fraction < 0) {
    fraction += 1000;
    --seconds;
  }
  absl::StrAppend(out_, seconds);
  if (fraction != 0) {
    char digits[4] = {static_cast<char>('0' + fraction / 100),
                      static_cast<char>('0' + fraction / 10 % 10),
                      static_cast<char>('0' + fraction % 10), 0};
    int len = 3;
    while (digits[len - 1] == '0') --len;  // as JavaScript prints numbers: 0.5, not 0.500
    out_->push_back('.');
    out_->append(digits, static_cast<size_t>(len));
  }
}

void JsonWriter::Base64(std::string_view bytes) {
  Separate();
  out_->push_back('"');
  AppendBase64(bytes, out_);
  out_->push_back('"');
}

void AppendBase64(std::string_view bytes, std::string* out) {
  // absl::Base64Escape replaces its destination, so it writes to a per-thread scratch string
  // that keeps its capacity: no allocation per record once warm.
  thread_local std::string scratch;
  absl::Base64Escape(internal::ToAbsl(bytes), &scratch);
  out->append(scratch);
}

namespace {

// Base64 value of each byte, or -1.
constexpr std::array<int8_t, 256> MakeBase64Table() {
  std::array<int8_t, 256> table{};
  for (int8_t& v : table) v = -1;
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  }
  return table;
}
constexpr std::array<int8_t, 256> kBase64Table = MakeBase64Table();

// Decodes canonical, padded base64 in one pass into *out; false for anything else (the caller
// then finds the fault and its message the careful way). Every record's data on the wire passes
// here, so it is one table lookup per character and no intermediate string.
bool DecodeBase64Fast(std::string_view text, std::string* out) {
  if (text.size() % 4 != 0) return false;
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  out->resize(text.size() / 4 * 3 - padding);
  char* o = out->data();
  const auto* in = reinterpret_cast<const unsigned char*>(text.data());
  const size_t full = text.size() - (padding > 0 ? 4 : 0);
  int bad = 0;
  for (size_t i = 0; i < full; i += 4) {
    const int a = kBase64Table[in[i]], b = kBase64Table[in[i + 1]];
    const int c = kBase64Table[in[i + 2]], d = kBase64Table[in[i + 3]];
    bad |= a | b | c | d;  // -1 sets the sign bit
    const uint32_t v = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) |
                       (static_cast<uint32_t>(c) << 6) | static_cast<uint32_t>(d);
    o[0] = static_cast<char>(v >> 16);
    o[1] = static_cast<char>(v >> 8);
    o[2] = static_cast<char>(v);
    o += 3;
  }
  if (bad < 0) return false;
  if (padding > 0) {
    const unsigned char* q = in + full;
    const int a = kBase64Table[q[0]], b = kBase64Table[q[1]];
    if ((a | b) < 0) return false;
    if (padding == 2) {
      if ((b & 0xF) != 0) return false;  // bits the padding says are unused: not canonical
      o[0] = static_cast<char>((a << 2) | (b >> 4));
    } else {
      const int c = kBase64Table[q[2]];
      if (c < 0 || (c & 0x3) != 0) return false;
      o[0] = static_cast<char>((a << 2) | (b >> 4));
      o[1] = static_cast<char>(((b & 0xF) << 4) | (c >> 2));
    }
  }
  return true;
}

}  // namespace

absl::Status DecodeBase64Strict(std::string_view text, std::string* out) {
  if (DecodeBase64Fast(text, out)) return absl::OkStatus();
  if (text.size() % 4 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Base64 encoded length is expected a multiple of 4 bytes but found: ", text.size()));
  }
  // The first character outside the alphabet, or a '=' that something other than '=' follows.
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (IsBase64Char(c)) continue;
    if (c == '=' && (i + 1 == text.size() || text[i + 1] == '=')) continue;
    return absl::InvalidArgumentError(
        absl::StrCat("Invalid Base64 character: '", absl::string_view(&c, 1), "'"));
  }
  size_t padding = 0;
  while (padding < text.size() && text[text.size() - 1 - padding] == '=') ++padding;
  // Kinesis re-encodes what it decoded and refuses a difference: more than two '=', or bits set
  // in the last character that the padding says are unused. (Its message has this spelling.)
  constexpr absl::string_view kNotCanonical = "Invalid last non-pad Base64 character dectected";
  if (padding > 2) return absl::InvalidArgumentError(kNotCanonical);
  if (padding > 0) {
    const int last = Base64Value(text[text.size() - 1 - padding]);
    const int unused_mask = padding == 2 ? 0xF : 0x3;
    if ((last & unused_mask) != 0) return absl::InvalidArgumentError(kNotCanonical);
  }
  if (!absl::Base64Unescape(internal::ToAbsl(text), out)) {
    return absl::InvalidArgumentError(kNotCanonical);
  }
  return absl::OkStatus();
}

absl::StatusOr<simdjson::dom::element> ParseJson(std::string_view body) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element element;
  // parse() copies the body into the parser's padded buffer (simdjson reads up to 64 bytes past
  // the end of its input), which the parser keeps and reuses.
  const simdjson::error_code error = parser.parse(body.data(), body.size()).get(element);
  if (error != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(simdjson::error_message(error));
  }
  return element;
}

}  // namespace rill::net
