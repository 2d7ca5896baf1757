#include "sql/record_encoder.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace rill::sql {
namespace {

void AppendInt(int64_t x, std::string* out) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), x);
  out->append(buffer, static_cast<size_t>(end - buffer));
}

void AppendDecimal(int64_t unscaled, uint8_t scale, std::string* out) {
  const bool negative = unscaled < 0;
  const uint64_t magnitude =
      negative ? 0 - static_cast<uint64_t>(unscaled) : static_cast<uint64_t>(unscaled);
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), magnitude);
  const size_t n = static_cast<size_t>(end - digits);
  if (negative) out->push_back('-');
  if (scale == 0) {
    out->append(digits, n);
    return;
  }
  if (n <= scale) {
    out->append("0.");
    out->append(scale - n, '0');
    out->append(digits, n);
  } else {
    out->append(digits, n - scale);
    out->push_back('.');
    out->append(digits + (n - scale), scale);
  }
}

void AppendDouble(double d, std::string* out) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), d);
  out->append(buffer, static_cast<size_t>(end - buffer));
}

// The text of a non-NULL value, as Value::ToString writes it, appended.
void AppendText(const Value& v, std::string* out) {
  switch (v.type) {
    case SqlType::kBoolean:
      out->append(v.i != 0 ? "TRUE" : "FALSE");
      return;
    case SqlType::kInteger:
    case SqlType::kBigint:
      AppendInt(v.i, out);
      return;
    case SqlType::kDecimal:
      AppendDecimal(v.i, v.scale, out);
      return;
    case SqlType::kDouble:
      AppendDouble(v.d, out);
      return;
    case SqlType::kVarchar:
      out->append(v.s);
      return;
    default:
      out->append(v.ToString());
      return;
  }
}

bool NeedsQuotes(std::string_view text) {
  return text.find_first_of(",\"\n\r") != std::string_view::npos;
}

void AppendCsvField(std::string_view text, std::string* out) {
  if (!NeedsQuotes(text)) {
    out->append(text.data(), text.size());
    return;
  }
  out->push_back('"');
  for (const char c : text) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace

void AppendJsonString(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(text.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
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
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 0xF]);
        break;
    }
  }
  out->append(text.data() + run, text.size() - run);
  out->push_back('"');
}

void EncodeJsonRow(const Schema& schema, const Row& row, std::string* out) {
  out->push_back('{');
  for (size_t c = 0; c < schema.size(); ++c) {
    if (c > 0) out->push_back(',');
    AppendJsonString(schema[c].name, out);
    out->push_back(':');
    if (c >= row.values.size() || row.values[c].null || row.values[c].type == SqlType::kNull) {
      out->append("null");
      continue;
    }
    const Value& v = row.values[c];
    switch (v.type) {
      case SqlType::kBoolean:
        out->append(v.i != 0 ? "true" : "false");
        break;
      case SqlType::kInteger:
      case SqlType::kBigint:
        AppendInt(v.i, out);
        break;
      case SqlType::kDecimal:
        AppendDecimal(v.i, v.scale, out);
        break;
      case SqlType::kDouble:
        if (std::isfinite(v.d)) {
          AppendDouble(v.d, out);
        } else {
          out->append("null");
        }
        break;
      case SqlType::kVarchar:
        AppendJsonString(v.s, out);
        break;
      default:
        AppendJsonString(v.ToString(), out);
        break;
    }
  }
  out->push_back('}');
}

void EncodeCsvRow(const Schema& schema, const Row& row, std::string* out) {
  for (size_t c = 0; c < schema.size(); ++c) {
    if (c > 0) out->push_back(',');
    if (c >= row.values.size() || row.values[c].null || row.values[c].type == SqlType::kNull) {
      continue;
    }
    const Value& v = row.values[c];
    if (v.type == SqlType::kVarchar) {
      if (v.s.empty()) {
        out->append("\"\"");
      } else {
        AppendCsvField(v.s, out);
      }
      continue;
    }
    const size_t start = out->size();
    AppendText(v, out);
    if (NeedsQuotes(std::string_view(*out).substr(start))) {
      const std::string text = out->substr(start);
      out->resize(start);
      AppendCsvField(text, out);
    }
  }
}

}  // namespace rill::sql
