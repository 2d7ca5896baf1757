#include "deliver/object_key.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "base/utf.h"
#include "rill/base/error.h"

namespace rill::deliver_internal {
namespace {

using internal::ToAbsl;

constexpr std::string_view kMonthNames[12] = {"January",   "February", "March",    "April",
                                              "May",       "June",     "July",     "August",
                                              "September", "October",  "November", "December"};
// Indexed by absl::Weekday (monday = 0).
constexpr std::string_view kDayNames[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                           "Friday", "Saturday", "Sunday"};

constexpr std::string_view kAlphanumeric =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

bool IsAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// The most letters Java accepts in a row for each supported letter; 0 = unsupported.
int MaxPatternLetters(char letter) {
  switch (letter) {
    case 'y':
    case 'u':
      return 19;  // appendValue's widest
    case 'M':
    case 'E':
      return 5;
    case 'd':
    case 'H':
    case 'h':
    case 'm':
    case 's':
      return 2;
    case 'D':
      return 3;
    case 'S':
      return 9;
    case 'a':
      return 1;
    default:
      return 0;
  }
}

// Appends `value` with at least `min_width` digits (zero-padded) and a '-' when negative.
void AppendPadded(int64_t value, int min_width, std::string* out) {
  // The magnitude as unsigned, so that INT64_MIN does not overflow.
  uint64_t magnitude = value < 0 ? ~static_cast<uint64_t>(value) + 1 : static_cast<uint64_t>(value);
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  if (value < 0) out->push_back('-');
  for (int i = n; i < min_width; ++i) out->push_back('0');
  while (n > 0) out->push_back(digits[--n]);
}

int DigitCount(int64_t value) {
  uint64_t magnitude = value < 0 ? ~static_cast<uint64_t>(value) + 1 : static_cast<uint64_t>(value);
  int n = 1;
  while (magnitude >= 10) {
    magnitude /= 10;
    ++n;
  }
  return n;
}

// Java's year printing: 'yy' is the last two digits; from four letters on the year is padded to
// `count` digits and gets a '+' when it needs more (SignStyle.EXCEEDS_PAD).
void AppendYear(int64_t year, int count, std::string* out) {
  if (count == 2) {
    AppendPadded(((year % 100) + 100) % 100, 2, out);
    return;
  }
  if (count >= 4 && year >= 0 && DigitCount(year) > count) out->push_back('+');
  AppendPadded(year, count, out);
}

// Fills `buf` with random bytes from the kernel (getrandom), so that processes forked from one
// another never draw the same UUIDs; a thread-local generator seeded from std::random_device if
// the kernel cannot.
void FillRandom(unsigned char* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t got = ::getrandom(buf + done, n - done, 0);
    if (got > 0) {
      done += static_cast<size_t>(got);
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    break;
  }
  if (done == n) return;
  thread_local std::mt19937_64 fallback = [] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }();
  for (; done < n; ++done) buf[done] = static_cast<unsigned char>(fallback());
}

std::string_view FieldName(PrefixField field) {
  return field == PrefixField::kPrefix ? "Prefix" : "ErrorOutputPrefix";
}

absl::Status FieldError(PrefixField field, std::string_view message) {
  return InvalidArgumentError(absl::StrCat(ToAbsl(FieldName(field)), ": ", ToAbsl(message)));
}

}  // namespace

absl::StatusOr<TimestampPattern> TimestampPattern::Parse(std::string_view pattern) {
  if (pattern.empty()) return InvalidArgumentError("the timestamp pattern is empty");
  TimestampPattern result;
  auto add_literal = [&result](std::string_view text) {
    if (text.empty()) return;
    if (result.tokens_.empty() || result.tokens_.back().letter != 0) result.tokens_.emplace_back();
    result.tokens_.back().literal.append(text);
  };
  int optional_depth = 0;
  size_t i = 0;
  while (i < pattern.size()) {
    const char c = pattern[i];
    if (IsAsciiLetter(c)) {
      size_t j = i;
      while (j < pattern.size() && pattern[j] == c) ++j;
      const int count = static_cast<int>(j - i);
      const int max = MaxPatternLetters(c);
      if (max == 0) {
        return InvalidArgumentError(absl::StrFormat(
            "the timestamp pattern '%s' has the letter '%c', which rill does not support (it "
            "supports y u M d D H h m s S E a)",
            ToAbsl(pattern), c));
      }
      if (count > max) {
        return InvalidArgumentError(
            absl::StrFormat("the timestamp pattern '%s' has too many pattern letters '%c' (%d; at "
                            "most %d)",
                            ToAbsl(pattern), c, count, max));
      }
      Token token;
      token.letter = c;
      token.count = count;
      result.tokens_.push_back(std::move(token));
      i = j;
    } else if (c == '\'') {
      if (i + 1 < pattern.size() && pattern[i + 1] == '\'') {  // '' outside quotes
        add_literal("'");
        i += 2;
        continue;
      }
      std::string literal;
      size_t j = i + 1;
      while (true) {
        if (j >= pattern.size()) {
          return InvalidArgumentError(absl::StrFormat(
              "the timestamp pattern '%s' ends inside a quoted literal", ToAbsl(pattern)));
        }
        if (pattern[j] == '\'') {
          if (j + 1 < pattern.size() && pattern[j + 1] == '\'') {
            literal.push_back('\'');
            j += 2;
            continue;
          }
          break;
        }
        literal.push_back(pattern[j++]);
      }
      add_literal(literal);
      i = j + 1;
    } else if (c == '[') {
      ++optional_depth;
      ++i;
    } else if (c == ']') {
      if (optional_depth == 0) {
        return InvalidArgumentError(absl::StrFormat(
            "the timestamp pattern '%s' has ']' without a '[' before it", ToAbsl(pattern)));
      }
      --optional_depth;
      ++i;
    } else if (c == '#' || c == '{' || c == '}') {
      return InvalidArgumentError(absl::StrFormat(
          "the timestamp pattern '%s' has the reserved character '%c' (quote it: '%c')",
          ToAbsl(pattern), c, c));
    } else {
      add_literal(pattern.substr(i, 1));
      ++i;
    }
  }
  return result;
}

void TimestampPattern::Format(const absl::TimeZone::CivilInfo& civil, std::string* out) const {
  const absl::CivilSecond& cs = civil.cs;
  for (const Token& t : tokens_) {
    switch (t.letter) {
      case 0:
        out->append(t.literal);
        break;
      case 'y':  // year of era: 1 BC is 1
        AppendYear(cs.year() > 0 ? cs.year() : 1 - cs.year(), t.count, out);
        break;
      case 'u':
        AppendYear(cs.year(), t.count, out);
        break;
      case 'M': {
        const std::string_view name = kMonthNames[cs.month() - 1];
        if (t.count <= 2) {
          AppendPadded(cs.month(), t.count, out);
        } else if (t.count == 3) {
          out->append(name.substr(0, 3));
        } else if (t.count == 4) {
          out->append(name);
        } else {
          out->append(name.substr(0, 1));
        }
        break;
      }
      case 'd':
        AppendPadded(cs.day(), t.count, out);
        break;
      case 'D':
        AppendPadded(absl::GetYearDay(absl::CivilDay(cs)), t.count, out);
        break;
      case 'H':
        AppendPadded(cs.hour(), t.count, out);
        break;
      case 'h':
        AppendPadded(cs.hour() % 12 == 0 ? 12 : cs.hour() % 12, t.count, out);
        break;
      case 'm':
        AppendPadded(cs.minute(), t.count, out);
        break;
      case 's':
        AppendPadded(cs.second(), t.count, out);
        break;
      case 'S': {
        // The nanoseconds as 9 digits, truncated to `count` (Java's appendFraction).
        int64_t nanos = absl::ToInt64Nanoseconds(civil.subsecond);
        nanos = std::clamp<int64_t>(nanos, 0, 999'999'999);
        std::string digits;
        AppendPadded(nanos, 9, &digits);
        out->append(digits, 0, static_cast<size_t>(t.count));
        break;
      }
      case 'E': {
        const std::string_view name = kDayNames[static_cast<int>(absl::GetWeekday(cs))];
        if (t.count <= 3) {
          out->append(name.substr(0, 3));
        } else if (t.count == 4) {
          out->append(name);
        } else {
          out->append(name.substr(0, 1));
        }
        break;
      }
      case 'a':
        out->append(cs.hour() < 12 ? "AM" : "PM");
        break;
      default:
        break;  // Parse admits no other letter
    }
  }
}

absl::StatusOr<std::string> FormatTimestamp(std::string_view pattern, absl::Time time,
                                            absl::TimeZone zone) {
  absl::StatusOr<TimestampPattern> parsed = TimestampPattern::Parse(pattern);
  if (!parsed.ok()) return parsed.status();
  std::string out;
  parsed->Format(zone.At(time), &out);
  return out;
}

absl::StatusOr<KeyPrefix> KeyPrefix::Parse(std::string_view text, PrefixField field) {
  if (CharacterCount(text) > kMaxPrefixLength) {
    return FieldError(field, absl::StrFormat("longer than %d characters", kMaxPrefixLength));
  }
  if (field == PrefixField::kErrorOutputPrefix && text.empty()) {
    return FieldError(field, "empty (use DefaultErrorOutputPrefix)");
  }
  KeyPrefix result;
  bool has_timestamp = false;
  bool has_error_output_type = false;
  auto add_literal = [&result](std::string_view literal) {
    if (literal.empty()) return;
    if (result.parts_.empty() || result.parts_.back().kind != Kind::kLiteral) {
      result.parts_.emplace_back();
    }
    result.parts_.back().text.append(literal);
  };
  auto add_key = [&result](std::vector<std::string>* names, Kind kind, std::string_view name) {
    Part part;
    part.kind = kind;
    part.text = std::string(name);
    result.parts_.push_back(std::move(part));
    if (std::find(names->begin(), names->end(), name) == names->end()) {
      names->emplace_back(name);
    }
  };
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = text.find("!{", i);
    if (start == std::string_view::npos) {
      add_literal(text.substr(i));
      break;
    }
    add_literal(text.substr(i, start - i));
    const size_t end = text.find('}', start + 2);
    if (end == std::string_view::npos) {
      return FieldError(field, absl::StrFormat("'!{' may only start an expression "
                                               "!{namespace:value}, and '%s' has no closing '}'",
                                               ToAbsl(text.substr(start))));
    }
    const std::string_view expression = text.substr(start, end + 1 - start);
    const std::string_view body = text.substr(start + 2, end - start - 2);
    if (body.find("!{") != std::string_view::npos) {
      return FieldError(field, absl::StrFormat("'!{' may only start an expression, and '%s' has "
                                               "one inside",
                                               ToAbsl(expression)));
    }
    const size_t colon = body.find(':');
    if (colon == std::string_view::npos) {
      return FieldError(field, absl::StrFormat("the expression '%s' is not !{namespace:value}",
                                               ToAbsl(expression)));
    }
    const std::string_view ns = body.substr(0, colon);
    const std::string_view value = body.substr(colon + 1);
    if (ns == "timestamp") {
      absl::StatusOr<TimestampPattern> pattern = TimestampPattern::Parse(value);
      if (!pattern.ok()) {
        return FieldError(field,
                          absl::StrCat(ToAbsl(expression), ": ", pattern.status().message()));
      }
      Part part;
      part.kind = Kind::kTimestamp;
      part.text = std::string(value);
      part.pattern = *std::move(pattern);
      result.parts_.push_back(std::move(part));
      has_timestamp = true;
    } else if (ns == "firehose") {
      Part part;
      if (value == "random-string") {
        part.kind = Kind::kRandomString;
      } else if (value == "error-output-type") {
        if (field == PrefixField::kPrefix) {
          return FieldError(field,
                            "Prefix must not contain !{firehose:error-output-type} (only "
                            "ErrorOutputPrefix may)");
        }
        part.kind = Kind::kErrorOutputType;
        has_error_output_type = true;
      } else {
        return FieldError(field, absl::StrFormat("unknown firehose value in '%s' (random-string or "
                                                 "error-output-type)",
                                                 ToAbsl(expression)));
      }
      result.parts_.push_back(std::move(part));
    } else if (ns == "partitionKeyFromQuery" || ns == "partitionKeyFromLambda") {
      if (field == PrefixField::kErrorOutputPrefix) {
        return FieldError(field, absl::StrFormat("partitionKey expressions are not allowed in "
                                                 "ErrorOutputPrefix ('%s')",
                                                 ToAbsl(expression)));
      }
      if (value.empty()) {
        return FieldError(field,
                          absl::StrFormat("'%s' names no partition key", ToAbsl(expression)));
      }
      if (ns == "partitionKeyFromQuery") {
        add_key(&result.needs_.query_keys, Kind::kQueryKey, value);
      } else {
        add_key(&result.needs_.lambda_keys, Kind::kLambdaKey, value);
      }
    } else {
      return FieldError(field, absl::StrFormat("unknown namespace in '%s' (timestamp, firehose, "
                                               "partitionKeyFromQuery or partitionKeyFromLambda)",
                                               ToAbsl(expression)));
    }
    i = end + 1;
  }
  result.text_ = std::string(text);
  if (field == PrefixField::kErrorOutputPrefix && !has_error_output_type) {
    return FieldError(field, "ErrorOutputPrefix must contain !{firehose:error-output-type}");
  }
  if (field == PrefixField::kPrefix && !has_timestamp) {
    // Firehose appends the default time prefix to a Prefix without a timestamp expression, as a
    // directory of its own.
    if (!result.text_.empty() && result.text_.back() != '/') {
      result.text_.push_back('/');
      add_literal("/");
    }
    result.text_.append(kDefaultTimePrefix);
    Part part;
    part.kind = Kind::kTimestamp;
    part.text = "yyyy/MM/dd/HH/";
    part.pattern = *TimestampPattern::Parse(part.text);
    result.parts_.push_back(std::move(part));
  }
  return result;
}

EvaluatedPrefix KeyPrefix::Evaluate(
    absl::Time time, absl::TimeZone zone,
    absl::Span<const std::pair<std::string, std::string>> partition_keys,
    std::string_view error_output_type) const {
  EvaluatedPrefix result;
  // Every timestamp expression shows the same instant: convert once.
  const absl::TimeZone::CivilInfo civil = zone.At(time);
  for (const Part& part : parts_) {
    switch (part.kind) {
      case Kind::kLiteral:
        result.prefix.append(part.text);
        break;
      case Kind::kTimestamp:
        part.pattern.Format(civil, &result.prefix);
        break;
      case Kind::kRandomString:
        result.prefix.append(RandomString());
        break;
      case Kind::kErrorOutputType:
        result.prefix.append(error_output_type);
        break;
      case Kind::kQueryKey:
      case Kind::kLambdaKey: {
        auto it = std::find_if(partition_keys.begin(), partition_keys.end(),
                               [&part](const auto& kv) { return kv.first == part.text; });
        if (it == partition_keys.end()) {
          result.error_code = std::string(kMissingPartitionKeyCode);
          result.error_message = absl::StrFormat(
              "the prefix's !{%s:%s} has no value: the records have no partition key '%s'",
              part.kind == Kind::kQueryKey ? "partitionKeyFromQuery" : "partitionKeyFromLambda",
              part.text, absl::CHexEscape(part.text));
          result.prefix.clear();
          return result;
        }
        result.prefix.append(it->second);
        break;
      }
    }
  }
  const size_t length = CharacterCount(result.prefix);
  if (length > kMaxEvaluatedPrefixLength) {
    result.error_code = std::string(kInvalidPrefixCode);
    result.error_message =
        absl::StrFormat("the prefix evaluates to %d characters, more than the %d allowed", length,
                        kMaxEvaluatedPrefixLength);
    result.prefix.clear();
  }
  return result;
}

bool HasExpressions(std::string_view text) { return text.find("!{") != std::string_view::npos; }

std::string DefaultErrorOutputPrefix(std::string_view literal_prefix) {
  std::string out(literal_prefix);
  if (!out.empty() && out.back() != '/') out.push_back('/');
  out.append("!{firehose:error-output-type}/");
  out.append(kDefaultTimePrefix);
  return out;
}

std::string ObjectKeySuffix(std::string_view stream_name, absl::Time time, absl::TimeZone zone,
                            std::string_view extension) {
  const absl::CivilSecond cs = zone.At(time).cs;
  std::string out(stream_name);
  absl::StrAppendFormat(&out, "-%d-", kDeliveryStreamVersion);
  AppendYear(cs.year(), 4, &out);
  absl::StrAppendFormat(&out, "-%02d-%02d-%02d-%02d-%02d-", cs.month(), cs.day(), cs.hour(),
                        cs.minute(), cs.second());
  out.append(RandomUuid());
  out.append(extension);
  return out;
}

std::string RandomUuid() {
  unsigned char b[16];
  FillRandom(b, sizeof(b));
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);  // variant 10xx
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 0x0F]);
  }
  return out;
}

std::string RandomString() {
  constexpr size_t kLength = 11;
  std::string out;
  out.reserve(kLength);
  unsigned char bytes[32];
  while (out.size() < kLength) {
    FillRandom(bytes, sizeof(bytes));
    for (unsigned char b : bytes) {
      // 248 = 4 * 62: rejecting the rest keeps every character equally likely.
      if (b < 248 && out.size() < kLength) out.push_back(kAlphanumeric[b % 62]);
    }
  }
  return out;
}

absl::Status CheckObjectKey(std::string_view key) {
  auto refuse = [key](std::string_view why) {
    return InvalidArgumentError(
        absl::StrFormat("the object key \"%s\" %s", absl::CHexEscape(ToAbsl(key)), ToAbsl(why)));
  };
  if (key.empty()) return refuse("is empty");
  if (key.front() == '/') return refuse("starts with '/'");
  if (key.find('\0') != std::string_view::npos) return refuse("contains a NUL character");
  size_t start = 0;
  bool first = true;
  while (true) {
    const size_t slash = key.find('/', start);
    const std::string_view segment =
        key.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (segment.empty()) {
      return refuse(
          "has an empty path segment ('//' or a trailing '/'), which a file system "
          "cannot keep");
    }
    if (segment == "." || segment == "..") return refuse("has a '.' or '..' path segment");
    if (segment.size() > kMaxKeySegmentBytes) {
      return refuse(
          absl::StrFormat("has a path segment longer than %d bytes", kMaxKeySegmentBytes));
    }
    if (first && segment == kStagingDirectoryName) {
      return refuse(absl::StrFormat("is under %s, the object store's staging area",
                                    ToAbsl(kStagingDirectoryName)));
    }
    first = false;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::TimeZone> LoadCustomTimeZone(std::string_view name) {
  if (name.empty()) return absl::UTCTimeZone();
  absl::TimeZone zone;
  // A zone name is looked up as a file under the zoneinfo directory: refuse paths out of it.
  const bool path_like = name.front() == '/' || name.find("..") != std::string_view::npos ||
                         name.find('\0') != std::string_view::npos;
  if (path_like || !absl::LoadTimeZone(std::string(name), &zone)) {
    return InvalidArgumentError(absl::StrFormat("CustomTimeZone \"%s\" is not a known time zone",
                                                absl::CHexEscape(ToAbsl(name))));
  }
  return zone;
}

absl::Status CheckFileExtension(std::string_view extension) {
  if (extension.empty()) return absl::OkStatus();
  auto allowed = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           std::string_view("!-_.*'()").find(c) != std::string_view::npos;
  };
  bool ok = extension.size() >= 2 && extension.size() <= 128 && extension.front() == '.';
  for (size_t i = 1; ok && i < extension.size(); ++i) ok = allowed(extension[i]);
  if (!ok) {
    return InvalidArgumentError(absl::StrFormat(
        "FileExtension \"%s\" must be '.' followed by 1-127 characters of 0-9, a-z and !-_.*'()",
        absl::CHexEscape(ToAbsl(extension))));
  }
  return absl::OkStatus();
}

size_t CharacterCount(std::string_view s) {
  size_t count = 0;
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp;
    const size_t n =
        static_cast<unsigned char>(s[i]) < 0x80 ? 1 : internal::DecodeUtf8(s.substr(i), &cp);
    i += n == 0 ? 1 : n;
    ++count;
  }
  return count;
}

}  // namespace rill::deliver_internal
