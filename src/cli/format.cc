#include "cli/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "base/utf.h"

namespace rill::cli {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// Code points in `s` (invalid bytes count one each), the width a terminal gives it for the
// scripts operators name streams and shards in.
size_t DisplayWidth(std::string_view s) {
  size_t width = 0;
  while (!s.empty()) {
    uint32_t cp = 0;
    const size_t n = internal::DecodeUtf8(s, &cp);
    s.remove_prefix(n == 0 ? 1 : n);
    ++width;
  }
  return width;
}

bool IsControl(uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

}  // namespace

Table::Table(std::vector<std::string> headers, std::vector<Align> aligns)
    : headers_(std::move(headers)), aligns_(std::move(aligns)) {
  aligns_.resize(headers_.size(), Align::kLeft);
}

void Table::AddRow(std::vector<std::string> row) {
  row.resize(headers_.size());
  rows_.push_back(std::move(row));
}

std::string Table::Render() const {
  std::vector<size_t> widths(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) widths[c] = DisplayWidth(headers_[c]);
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], DisplayWidth(row[c]));
  }
  std::string out;
  auto render_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c > 0) line.append("  ");
      const size_t pad = widths[c] - DisplayWidth(row[c]);
      if (aligns_[c] == Align::kRight) line.append(pad, ' ');
      line.append(row[c]);
      if (aligns_[c] == Align::kLeft) line.append(pad, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out.append(line).push_back('\n');
  };
  render_row(headers_);
  for (const auto& row : rows_) render_row(row);
  return out;
}

std::string JsonString(std::string_view text) {
  std::string out = "\"";
  while (!text.empty()) {
    uint32_t cp = 0;
    const size_t n = internal::DecodeUtf8(text, &cp);
    if (n == 0) {
      out.append(kReplacementCharacter);
      text.remove_prefix(1);
      continue;
    }
    switch (cp) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\r':
        out.append("\\r");
        break;
      default:
        if (cp < 0x20 || cp == 0x7F) {
          out.append(absl::StrFormat("\\u%04x", cp));
        } else {
          out.append(text.substr(0, n));
        }
    }
    text.remove_prefix(n);
  }
  out.push_back('"');
  return out;
}

void JsonObject::Key(std::string_view key) {
  if (body_.size() > 1) body_.push_back(',');
  body_.append(JsonString(key)).push_back(':');
}

JsonObject& JsonObject::Str(std::string_view key, std::string_view value) {
  Key(key);
  body_.append(JsonString(value));
  return *this;
}

JsonObject& JsonObject::Int(std::string_view key, int64_t value) {
  Key(key);
  body_.append(std::to_string(value));
  return *this;
}

JsonObject& JsonObject::Uint(std::string_view key, uint64_t value) {
  Key(key);
  body_.append(std::to_string(value));
  return *this;
}

JsonObject& JsonObject::Double(std::string_view key, double value) {
  Key(key);
  if (std::isfinite(value)) {
    body_.append(absl::StrFormat("%.3f", value));
  } else {
    body_.append("null");
  }
  return *this;
}

JsonObject& JsonObject::Bool(std::string_view key, bool value) {
  Key(key);
  body_.append(value ? "true" : "false");
  return *this;
}

JsonObject& JsonObject::Null(std::string_view key) {
  Key(key);
  body_.append("null");
  return *this;
}

JsonObject& JsonObject::Raw(std::string_view key, std::string_view json) {
  Key(key);
  body_.append(json);
  return *this;
}

std::string JsonArray(const std::vector<std::string>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append(values[i]);
  }
  out.push_back(']');
  return out;
}

bool IsPrintableText(std::string_view data) {
  while (!data.empty()) {
    uint32_t cp = 0;
    const size_t n = internal::DecodeUtf8(data, &cp);
    if (n == 0 || IsControl(cp)) return false;
    data.remove_prefix(n);
  }
  return true;
}

std::string Base64(std::string_view data) {
  return absl::Base64Escape(absl::string_view(data.data(), data.size()));
}

std::string DisplayText(std::string_view text) {
  std::string out;
  while (!text.empty()) {
    uint32_t cp = 0;
    const size_t n = internal::DecodeUtf8(text, &cp);
    if (n == 0 || IsControl(cp)) {
      const auto byte = static_cast<unsigned char>(text[0]);
      if (n != 0 && cp == '\n') {
        out.append("\\n");
      } else if (n != 0 && cp == '\t') {
        out.append("\\t");
      } else if (n != 0 && cp == '\r') {
        out.append("\\r");
      } else if (n > 1) {  // a C1 control: show its code point
        out.append(absl::StrFormat("\\u%04x", cp));
      } else {
        out.append(absl::StrFormat("\\x%02x", byte));
      }
      text.remove_prefix(n == 0 ? 1 : n);
      continue;
    }
    if (cp == '\\') {
      out.append("\\\\");
    } else {
      out.append(text.substr(0, n));
    }
    text.remove_prefix(n);
  }
  return out;
}

std::string TimeText(absl::Time time) {
  if (time == absl::InfiniteFuture() || time == absl::InfinitePast()) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone());
}

std::string DurationText(absl::Duration duration) {
  const int64_t ms = absl::ToInt64Milliseconds(duration);
  if (ms == 0) return "0s";
  if (ms % 3600000 == 0) return absl::StrFormat("%dh", ms / 3600000);
  if (ms % 60000 == 0) return absl::StrFormat("%dm", ms / 60000);
  if (ms % 1000 == 0) return absl::StrFormat("%ds", ms / 1000);
  return absl::StrFormat("%dms", ms);
}

bool ParseTimeArgument(std::string_view text, absl::Time* time) {
  const absl::string_view t(text.data(), text.size());
  if (t.empty()) return false;
  if (std::all_of(t.begin(), t.end(), [](char c) { return absl::ascii_isdigit(c) || c == '.'; })) {
    // Epoch seconds: whole seconds exactly, fractions to the microsecond.
    const size_t dot = t.find('.');
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(t.substr(0, dot), &seconds)) return false;
    int64_t micros = 0;
    if (dot != absl::string_view::npos) {
      absl::string_view fraction = t.substr(dot + 1);
      if (fraction.empty() || fraction.size() > 9 || fraction.find('.') != fraction.npos) {
        return false;
      }
      std::string digits(fraction.substr(0, std::min<size_t>(fraction.size(), 6)));
      digits.resize(6, '0');
      if (!absl::SimpleAtoi(digits, &micros)) return false;
    }
    *time = absl::FromUnixSeconds(seconds) + absl::Microseconds(micros);
    return true;
  }
  std::string error;
  return absl::ParseTime(absl::RFC3339_full, t, time, &error);
}

}  // namespace rill::cli
