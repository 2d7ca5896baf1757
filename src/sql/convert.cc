#include "sql/convert.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "rill/base/error.h"

namespace rill::sql {
namespace {

// absl::string_view is not std::string_view in Debian's Abseil.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr uint64_t kPow10[] = {1ULL,
                               10ULL,
                               100ULL,
                               1000ULL,
                               10000ULL,
                               100000ULL,
                               1000000ULL,
                               10000000ULL,
                               100000000ULL,
                               1000000000ULL,
                               10000000000ULL,
                               100000000000ULL,
                               1000000000000ULL,
                               10000000000000ULL,
                               100000000000000ULL,
                               1000000000000000ULL,
                               10000000000000000ULL,
                               100000000000000000ULL,
                               1000000000000000000ULL};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

void AppendTypeName(const ColumnType& type, std::string* out) {
  char buffer[16];
  out->append(SqlTypeName(type.type));
  if (type.type == SqlType::kVarchar) {
    out->push_back('(');
    auto r = std::to_chars(buffer, buffer + sizeof(buffer), type.length);
    out->append(buffer, static_cast<size_t>(r.ptr - buffer));
    out->push_back(')');
  } else if (type.type == SqlType::kDecimal) {
    out->push_back('(');
    auto r = std::to_chars(buffer, buffer + sizeof(buffer), int{type.precision});
    out->append(buffer, static_cast<size_t>(r.ptr - buffer));
    out->push_back(',');
    r = std::to_chars(buffer, buffer + sizeof(buffer), int{type.scale});
    out->append(buffer, static_cast<size_t>(r.ptr - buffer));
    out->push_back(')');
  }
}

// Appends "cannot convert '<text>' to <TYPE>[: <why>]" to *reason; returns false.
bool TextError(std::string_view text, const ColumnType& type, std::string_view why,
               std::string* reason) {
  constexpr size_t kShown = 64;
  const std::string_view shown = text.substr(0, Utf8PrefixBytes(text.substr(0, kShown), kShown));
  reason->append("cannot convert '");
  reason->append(shown);
  if (shown.size() < text.size()) reason->append("...");
  reason->append("' to ");
  AppendTypeName(type, reason);
  if (!why.empty()) {
    reason->append(": ");
    reason->append(why);
  }
  return false;
}

absl::Status ValueError(const Value& in, const ColumnType& type, std::string_view why) {
  return MakeError(ErrorCode::kInvalidArgument,
                   absl::StrCat("cannot convert ", Av(SqlTypeName(in.type)), " ", in.ToString(),
                                " to ", ColumnTypeName(type), why.empty() ? "" : ": ", Av(why)));
}

enum class NumberResult { kOk, kSyntax, kRange, kFraction };

// Reads decimal or exponent notation exactly: *magnitude = |value| * 10^scale rounded half away
// from zero (or, when `exact`, kFraction if that drops a non-zero digit), at most `max_magnitude`.
NumberResult ParseDecimal(std::string_view text, int scale, uint64_t max_magnitude, bool exact,
                          bool* negative, uint64_t* magnitude) {
  size_t pos = 0;
  *negative = false;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    *negative = text[pos] == '-';
    ++pos;
  }
  const size_t mantissa_begin = pos;
  size_t digit_count = 0;
  size_t fraction_digits = 0;
  bool point = false;
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (c >= '0' && c <= '9') {
      ++digit_count;
      if (point) ++fraction_digits;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      break;
    }
  }
  if (digit_count == 0) return NumberResult::kSyntax;
  const size_t mantissa_end = pos;
  int64_t exponent = 0;
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    bool exponent_negative = false;
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
      exponent_negative = text[pos] == '-';
      ++pos;
    }
    if (pos == text.size()) return NumberResult::kSyntax;
    for (; pos < text.size(); ++pos) {
      const char c = text[pos];
      if (c < '0' || c > '9') return NumberResult::kSyntax;
      if (exponent < 100000) exponent = exponent * 10 + (c - '0');
    }
    if (exponent_negative) exponent = -exponent;
  }
  if (pos != text.size()) return NumberResult::kSyntax;

  // value = digits * 10^(exponent - fraction_digits); keep the first `keep` digits of
  // digits * 10^shift.
  const int64_t shift = exponent - static_cast<int64_t>(fraction_digits) + scale;
  const int64_t keep = static_cast<int64_t>(digit_count) + shift;
  uint64_t acc = 0;
  int round_digit = 0;
  bool dropped_non_zero = false;
  int64_t index = 0;
  for (size_t i = mantissa_begin; i < mantissa_end; ++i) {
    const char c = text[i];
    if (c == '.') continue;
    const int d = c - '0';
    if (index < keep) {
      if (acc > (max_magnitude - static_cast<uint64_t>(d)) / 10) return NumberResult::kRange;
      acc = acc * 10 + static_cast<uint64_t>(d);
    } else {
      if (index == keep) round_digit = d;
      if (d != 0) dropped_non_zero = true;
    }
    ++index;
  }
  if (keep > static_cast<int64_t>(digit_count) && acc != 0) {
    for (int64_t i = static_cast<int64_t>(digit_count); i < keep; ++i) {
      if (acc > max_magnitude / 10) return NumberResult::kRange;
      acc *= 10;
    }
  }
  if (exact && dropped_non_zero) return NumberResult::kFraction;
  if (round_digit >= 5) {
    if (acc == max_magnitude) return NumberResult::kRange;
    ++acc;
  }
  *magnitude = acc;
  return NumberResult::kOk;
}

bool NumberError(NumberResult result, std::string_view text, const ColumnType& type,
                 std::string* reason) {
  switch (result) {
    case NumberResult::kRange:
      return TextError(text, type, "out of range", reason);
    case NumberResult::kFraction:
      return TextError(text, type, "fraction", reason);
    default:
      return TextError(text, type, "", reason);
  }
}

void SetInt(SqlType type, int64_t x, uint8_t scale, Value* out) {
  out->type = type;
  out->null = false;
  out->scale = scale;
  out->i = x;
  out->s.clear();
}

void SetDouble(double d, Value* out) {
  out->type = SqlType::kDouble;
  out->null = false;
  out->scale = 0;
  out->d = d;
  out->s.clear();
}

void SetVarchar(std::string_view text, uint32_t length, Value* out) {
  out->type = SqlType::kVarchar;
  out->null = false;
  out->scale = 0;
  out->i = 0;
  const size_t bytes = Utf8PrefixBytes(text, length);
  if (text.data() == out->s.data()) {
    out->s.resize(bytes);
  } else {
    out->s.assign(text.data(), bytes);
  }
}

// Signed integer within [lo, hi] from decimal or exponent notation (integral values only).
bool ParseInteger(std::string_view text, const ColumnType& type, int64_t lo, int64_t hi,
                  int64_t* out, std::string* reason) {
  bool negative = false;
  uint64_t magnitude = 0;
  const uint64_t max_magnitude = std::max(static_cast<uint64_t>(hi), 0 - static_cast<uint64_t>(lo));
  const NumberResult r = ParseDecimal(text, 0, max_magnitude, true, &negative, &magnitude);
  if (r != NumberResult::kOk) return NumberError(r, text, type, reason);
  if (negative) {
    if (magnitude > 0 - static_cast<uint64_t>(lo))
      return NumberError(NumberResult::kRange, text, type, reason);
    *out = static_cast<int64_t>(0 - magnitude);
  } else {
    if (magnitude > static_cast<uint64_t>(hi))
      return NumberError(NumberResult::kRange, text, type, reason);
    *out = static_cast<int64_t>(magnitude);
  }
  return true;
}

bool ParseDecimalValue(std::string_view text, const ColumnType& type, int64_t* out,
                       std::string* reason) {
  bool negative = false;
  uint64_t magnitude = 0;
  const NumberResult r =
      ParseDecimal(text, type.scale, kPow10[type.precision] - 1, false, &negative, &magnitude);
  if (r != NumberResult::kOk) return NumberError(r, text, type, reason);
  *out = negative ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
  return true;
}

int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Reads exactly `n` digits at *pos.
bool Digits(std::string_view text, size_t* pos, int n, int64_t* out) {
  if (*pos + static_cast<size_t>(n) > text.size()) return false;
  int64_t v = 0;
  for (int i = 0; i < n; ++i) {
    const char c = text[*pos + static_cast<size_t>(i)];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *pos += static_cast<size_t>(n);
  *out = v;
  return true;
}

bool Expect(std::string_view text, size_t* pos, char c) {
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

bool ParseTimestamp(std::string_view text, int64_t* micros) {
  size_t pos = 0;
  int64_t year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, fraction = 0;
  if (!Digits(text, &pos, 4, &year) || !Expect(text, &pos, '-') || !Digits(text, &pos, 2, &month) ||
      !Expect(text, &pos, '-') || !Digits(text, &pos, 2, &day)) {
    return false;
  }
  if (month < 1 || month > 12) return false;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const int64_t month_days = kDays[month - 1] + (month == 2 && IsLeap(year) ? 1 : 0);
  if (day < 1 || day > month_days) return false;
  int64_t offset_minutes = 0;
  if (pos < text.size()) {
    if (text[pos] != ' ' && text[pos] != 'T' && text[pos] != 't') return false;
    ++pos;
    if (!Digits(text, &pos, 2, &hour) || !Expect(text, &pos, ':') ||
        !Digits(text, &pos, 2, &minute)) {
      return false;
    }
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      if (!Digits(text, &pos, 2, &second)) return false;
      if (pos < text.size() && text[pos] == '.') {
        ++pos;
        int n = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          if (n < 6) fraction = fraction * 10 + (text[pos] - '0');
          ++n;
          ++pos;
        }
        if (n == 0 || n > 9) return false;
        for (int i = n; i < 6; ++i) fraction *= 10;
      }
    }
    if (hour > 23 || minute > 59 || second > 59) return false;
    if (pos < text.size()) {
      const char z = text[pos];
      if (z == 'Z' || z == 'z') {
        ++pos;
      } else if (z == '+' || z == '-') {
        ++pos;
        int64_t oh = 0, om = 0;
        if (!Digits(text, &pos, 2, &oh)) return false;
        if (pos < text.size() && text[pos] == ':') ++pos;
        if (!Digits(text, &pos, 2, &om)) return false;
        if (oh > 23 || om > 59) return false;
        offset_minutes = (oh * 60 + om) * (z == '-' ? -1 : 1);
      } else {
        return false;
      }
    }
    if (pos != text.size()) return false;
  }
  const int64_t seconds = DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                          second - offset_minutes * 60;
  *micros = seconds * 1000000 + fraction;
  return true;
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// `unscaled` at `from_scale` -> at `to_scale`, half away from zero; false when the magnitude
// exceeds `max_magnitude`.
bool Rescale(int64_t unscaled, int from_scale, int to_scale, uint64_t max_magnitude, int64_t* out) {
  const bool negative = unscaled < 0;
  uint64_t m = negative ? 0 - static_cast<uint64_t>(unscaled) : static_cast<uint64_t>(unscaled);
  if (to_scale >= from_scale) {
    for (int i = from_scale; i < to_scale; ++i) {
      if (m > max_magnitude / 10) return false;
      m *= 10;
    }
  } else {
    const int drop = from_scale - to_scale;
    if (drop > 19) {
      m = 0;
    } else if (drop == 19) {
      m = m >= 5000000000000000000ULL ? 1 : 0;
    } else {
      const uint64_t p = kPow10[drop];
      const uint64_t rest = m % p;
      m /= p;
      if (rest >= p / 2) ++m;  // half away from zero (on the magnitude)
    }
  }
  if (m > max_magnitude) return false;
  *out = negative ? static_cast<int64_t>(0 - m) : static_cast<int64_t>(m);
  return true;
}

std::string_view DoubleText(double d, char* buffer, size_t size) {
  auto [end, ec] = std::to_chars(buffer, buffer + size, d);
  if (ec != std::errc()) return {};
  return std::string_view(buffer, static_cast<size_t>(end - buffer));
}

}  // namespace

size_t Utf8PrefixBytes(std::string_view text, size_t max_chars) {
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (chars == max_chars) return i;
      ++chars;
    }
  }
  return text.size();
}

bool IsValidColumnType(const ColumnType& type) {
  switch (type.type) {
    case SqlType::kBoolean:
    case SqlType::kInteger:
    case SqlType::kBigint:
    case SqlType::kDouble:
    case SqlType::kTimestamp:
      return true;
    case SqlType::kDecimal:
      return type.precision >= 1 && type.precision <= 18 && type.scale <= type.precision;
    case SqlType::kVarchar:
      return type.length >= 1 && type.length <= 65535;
    default:
      return false;
  }
}

void SetNull(const ColumnType& type, Value* out) {
  out->type = type.type;
  out->null = true;
  out->scale = type.type == SqlType::kDecimal ? type.scale : 0;
  out->i = 0;
  out->s.clear();
}

bool ConvertText(std::string_view text, const ColumnType& type, Value* out, std::string* reason) {
  if (type.type == SqlType::kVarchar) {
    SetVarchar(text, type.length, out);
    return true;
  }
  const std::string_view t = Trim(text);
  switch (type.type) {
    case SqlType::kBoolean:
      if (EqualsIgnoreCase(t, "true") || t == "1") {
        SetInt(SqlType::kBoolean, 1, 0, out);
      } else if (EqualsIgnoreCase(t, "false") || t == "0") {
        SetInt(SqlType::kBoolean, 0, 0, out);
      } else {
        return TextError(text, type, "", reason);
      }
      return true;
    case SqlType::kInteger:
    case SqlType::kBigint: {
      int64_t x = 0;
      const bool bigint = type.type == SqlType::kBigint;
      if (!ParseInteger(
              t, type,
              bigint ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int32_t>::min(),
              bigint ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int32_t>::max(),
              &x, reason)) {
        return false;
      }
      SetInt(type.type, x, 0, out);
      return true;
    }
    case SqlType::kDouble: {
      std::string_view d = t;
      if (!d.empty() && d.front() == '+') d.remove_prefix(1);
      if (d.empty() || d.front() == '+') return TextError(text, type, "", reason);
      double x = 0;
      auto [end, ec] = std::from_chars(d.data(), d.data() + d.size(), x);
      if (ec == std::errc::result_out_of_range)
        return TextError(text, type, "out of range", reason);
      if (ec != std::errc() || end != d.data() + d.size()) return TextError(text, type, "", reason);
      SetDouble(x, out);
      return true;
    }
    case SqlType::kDecimal: {
      int64_t x = 0;
      if (!ParseDecimalValue(t, type, &x, reason)) return false;
      SetInt(SqlType::kDecimal, x, type.scale, out);
      return true;
    }
    case SqlType::kTimestamp: {
      int64_t micros = 0;
      if (!ParseTimestamp(t, &micros)) return TextError(text, type, "", reason);
      SetInt(SqlType::kTimestamp, micros, 0, out);
      return true;
    }
    default:
      reason->append("cannot convert to ");
      AppendTypeName(type, reason);
      return false;
  }
}

absl::Status ConvertText(std::string_view text, const ColumnType& type, Value* out) {
  std::string reason;
  if (ConvertText(text, type, out, &reason)) return absl::OkStatus();
  return MakeError(ErrorCode::kInvalidArgument, reason);
}

absl::Status ConvertValue(const Value& in, const ColumnType& type, Value* out) {
  if (in.null || in.type == SqlType::kNull) {
    SetNull(type, out);
    return absl::OkStatus();
  }
  if (in.type == SqlType::kVarchar) {
    if (type.type == SqlType::kVarchar) {
      SetVarchar(in.s, type.length, out);
      return absl::OkStatus();
    }
    if (&in == out) {
      const std::string text = in.s;
      return ConvertText(text, type, out);
    }
    return ConvertText(in.s, type, out);
  }
  if (in.type == SqlType::kDecimal && in.scale > 18) return ValueError(in, type, "invalid scale");
  if (type.type == SqlType::kVarchar) {
    const std::string text = in.ToString();
    SetVarchar(text, type.length, out);
    return absl::OkStatus();
  }
  switch (type.type) {
    case SqlType::kBoolean: {
      bool b = false;
      switch (in.type) {
        case SqlType::kBoolean:
        case SqlType::kInteger:
        case SqlType::kBigint:
          if (in.i != 0 && in.i != 1) return ValueError(in, type, "");
          b = in.i == 1;
          break;
        case SqlType::kDecimal:
          if (in.i != 0 && static_cast<uint64_t>(in.i) != kPow10[in.scale]) {
            return ValueError(in, type, "");
          }
          b = in.i != 0;
          break;
        case SqlType::kDouble:
          if (in.d != 0.0 && in.d != 1.0) return ValueError(in, type, "");
          b = in.d == 1.0;
          break;
        default:
          return ValueError(in, type, "");
      }
      SetInt(SqlType::kBoolean, b ? 1 : 0, 0, out);
      return absl::OkStatus();
    }
    case SqlType::kInteger:
    case SqlType::kBigint: {
      const bool bigint = type.type == SqlType::kBigint;
      const int64_t lo =
          bigint ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int32_t>::min();
      const int64_t hi =
          bigint ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int32_t>::max();
      int64_t x = 0;
      switch (in.type) {
        case SqlType::kBoolean:
        case SqlType::kInteger:
        case SqlType::kBigint:
          x = in.i;
          break;
        case SqlType::kDecimal:
          x = in.i / static_cast<int64_t>(kPow10[in.scale]);  // truncates toward zero
          break;
        case SqlType::kDouble: {
          if (!std::isfinite(in.d)) return ValueError(in, type, "out of range");
          const double t = std::trunc(in.d);
          // 2^63 is exactly representable; anything at or beyond it does not fit.
          if (t >= 9223372036854775808.0 || t < -9223372036854775808.0) {
            return ValueError(in, type, "out of range");
          }
          x = static_cast<int64_t>(t);
          break;
        }
        case SqlType::kTimestamp:
          x = FloorDiv(in.i, 1000);
          break;
        default:
          return ValueError(in, type, "");
      }
      if (x < lo || x > hi) return ValueError(in, type, "out of range");
      SetInt(type.type, x, 0, out);
      return absl::OkStatus();
    }
    case SqlType::kDouble: {
      switch (in.type) {
        case SqlType::kBoolean:
        case SqlType::kInteger:
        case SqlType::kBigint:
        case SqlType::kDecimal:
        case SqlType::kDouble:
          SetDouble(in.AsDouble(), out);
          return absl::OkStatus();
        default:
          return ValueError(in, type, "");
      }
    }
    case SqlType::kDecimal: {
      const uint64_t max_magnitude = kPow10[type.precision] - 1;
      int64_t x = 0;
      switch (in.type) {
        case SqlType::kBoolean:
        case SqlType::kInteger:
        case SqlType::kBigint:
          if (!Rescale(in.i, 0, type.scale, max_magnitude, &x)) {
            return ValueError(in, type, "out of range");
          }
          break;
        case SqlType::kDecimal:
          if (!Rescale(in.i, in.scale, type.scale, max_magnitude, &x)) {
            return ValueError(in, type, "out of range");
          }
          break;
        case SqlType::kDouble: {
          if (!std::isfinite(in.d)) return ValueError(in, type, "out of range");
          char buffer[64];
          const std::string_view text = DoubleText(in.d, buffer, sizeof(buffer));
          bool negative = false;
          uint64_t magnitude = 0;
          const NumberResult r =
              ParseDecimal(text, type.scale, max_magnitude, false, &negative, &magnitude);
          if (r == NumberResult::kRange) return ValueError(in, type, "out of range");
          if (r != NumberResult::kOk) return ValueError(in, type, "");
          x = negative ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
          break;
        }
        default:
          return ValueError(in, type, "");
      }
      SetInt(SqlType::kDecimal, x, type.scale, out);
      return absl::OkStatus();
    }
    case SqlType::kTimestamp: {
      switch (in.type) {
        case SqlType::kTimestamp:
          SetInt(SqlType::kTimestamp, in.i, 0, out);
          return absl::OkStatus();
        case SqlType::kInteger:
        case SqlType::kBigint: {
          constexpr int64_t kMaxMillis = std::numeric_limits<int64_t>::max() / 1000;
          if (in.i > kMaxMillis || in.i < -kMaxMillis) {
            return ValueError(in, type, "out of range");
          }
          SetInt(SqlType::kTimestamp, in.i * 1000, 0, out);
          return absl::OkStatus();
        }
        default:
          return ValueError(in, type, "");
      }
    }
    default:
      return MakeError(ErrorCode::kInvalidArgument,
                       absl::StrCat("cannot convert to ", ColumnTypeName(type)));
  }
}

}  // namespace rill::sql
