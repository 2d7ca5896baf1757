#include "rill/metrics/metrics.h"

#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace rill {
namespace {

constexpr int64_t kBig = (int64_t{1} << 62) + 12345;  // 4611686018427400249
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// ---- An independent UTF-8 check ------------------------------------------------------------

// True when `s` is well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    int n;
    uint32_t cp;
    if (b0 < 0x80) {
      n = 1;
      cp = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      n = 2;
      cp = b0 & 0x1Fu;
    } else if ((b0 & 0xF0) == 0xE0) {
      n = 3;
      cp = b0 & 0x0Fu;
    } else if ((b0 & 0xF8) == 0xF0) {
      n = 4;
      cp = b0 & 0x07u;
    } else {
      return false;
    }
    if (i + static_cast<size_t>(n) > s.size()) return false;
    for (int k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    const uint32_t min_for_length[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_length[n]) return false;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    if (cp > 0x10FFFF) return false;
    i += static_cast<size_t>(n);
  }
  return true;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool ParseInt64(std::string_view text, int64_t* value) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *value);
  return ec == std::errc() && ptr == end;
}

// ---- A strict parser for the Prometheus text format 0.0.4, as rill writes it ---------------
//
// Every family is "# HELP name text", then "# TYPE name type", then its samples
// "name{label="value",...} integer". Anything else is an error: a sample outside its family's
// block, a family seen twice, an unknown escape, a value that is not an exact int64, a timestamp,
// a blank line, a missing final newline.

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  int64_t value = 0;
};

struct PromFamily {
  std::string name;
  std::string help;
  std::string type;
  std::vector<PromSample> samples;
};

bool IsMetricName(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsLabelName(std::string_view s) {
  return IsMetricName(s) && s.find(':') == std::string_view::npos;
}

// Returns "" on success, otherwise what is wrong and where.
std::string ParsePrometheus(std::string_view text, std::vector<PromFamily>* families) {
  families->clear();
  if (!text.empty() && text.back() != '\n') return "the text does not end with a newline";
  std::set<std::string> seen;
  bool expect_type = false;  // a HELP line was just read
  int line_no = 0;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol + 1);
    ++line_no;
    const auto fail = [&](const std::string& what) {
      return "line " + std::to_string(line_no) + " (" + std::string(line) + "): " + what;
    };

    if (line.empty()) return fail("blank line");
    if (line.substr(0, 7) == "# HELP ") {
      if (expect_type) return fail("HELP without TYPE before it");
      std::string_view rest = line.substr(7);
      const size_t space = rest.find(' ');
      if (space == std::string_view::npos) return fail("HELP without text");
      const std::string name(rest.substr(0, space));
      if (!IsMetricName(name)) return fail("bad metric name");
      if (!seen.insert(name).second) return fail("family " + name + " appears twice");
      PromFamily family;
      family.name = name;
      for (size_t i = space + 1; i < rest.size(); ++i) {
        if (rest[i] != '\\') {
          family.help.push_back(rest[i]);
          continue;
        }
        if (++i == rest.size()) return fail("HELP ends in a backslash");
        if (rest[i] == '\\') {
          family.help.push_back('\\');
        } else if (rest[i] == 'n') {
          family.help.push_back('\n');
        } else {
          return fail("unknown escape in HELP");
        }
      }
      families->push_back(std::move(family));
      expect_type = true;
      continue;
    }
    if (line.substr(0, 7) == "# TYPE ") {
      if (!expect_type) return fail("TYPE without HELP just before it");
      expect_type = false;
      std::string_view rest = line.substr(7);
      const size_t space = rest.find(' ');
      if (space == std::string_view::npos) return fail("TYPE without a type");
      if (rest.substr(0, space) != families->back().name) return fail("TYPE names another family");
      const std::string_view type = rest.substr(space + 1);
      if (type != "counter" && type != "gauge" && type != "summary" && type != "histogram" &&
          type != "untyped") {
        return fail("unknown type");
      }
      families->back().type = std::string(type);
      continue;
    }
    if (line[0] == '#') return fail("unexpected comment");

    // A sample: it belongs to the family whose block is open.
    if (families->empty() || expect_type) return fail("sample before its HELP and TYPE");
    PromFamily& family = families->back();
    PromSample sample;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    sample.name = std::string(line.substr(0, i));
    if (!IsMetricName(sample.name)) return fail("bad sample name");
    const bool belongs = family.type == "summary" ? (sample.name == family.name + "_sum" ||
                                                     sample.name == family.name + "_count")
                                                  : sample.name == family.name;
    if (!belongs) return fail("sample outside its family's block (family " + family.name + ")");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (true) {
        const size_t eq = line.find('=', i);
        if (eq == std::string_view::npos) return fail("label without '='");
        const std::string label(line.substr(i, eq - i));
        if (!IsLabelName(label)) return fail("bad label name '" + label + "'");
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') return fail("label value without quotes");
        ++i;
        std::string value;
        while (true) {
          if (i >= line.size()) return fail("unterminated label value");
          const char c = line[i++];
          if (c == '"') break;
          if (c != '\\') {
            value.push_back(c);
            continue;
          }
          if (i >= line.size()) return fail("label value ends in a backslash");
          const char e = line[i++];
          if (e == '\\') {
            value.push_back('\\');
          } else if (e == '"') {
            value.push_back('"');
          } else if (e == 'n') {
            value.push_back('\n');
          } else {
            return fail("unknown escape in a label value");
          }
        }
        if (!sample.labels.emplace(label, value).second) return fail("label repeated");
        if (i >= line.size()) return fail("unterminated label set");
        if (line[i] == '}') {
          ++i;
          break;
        }
        if (line[i] != ',') return fail("expected ',' or '}' after a label");
        ++i;
      }
    }
    if (i >= line.size() || line[i] != ' ') return fail("no space before the value");
    if (!ParseInt64(line.substr(i + 1), &sample.value)) {
      return fail("the value is not exactly one int64 (or a timestamp follows)");
    }
    for (const PromSample& other : family.samples) {
      if (other.name == sample.name && other.labels == sample.labels) {
        return fail("series repeated");
      }
    }
    family.samples.push_back(std::move(sample));
  }
  if (expect_type) return "the last HELP has no TYPE";
  return "";
}

const PromFamily* FindFamily(const std::vector<PromFamily>& families, std::string_view name) {
  for (const PromFamily& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// ---- A strict recursive-descent JSON parser (RFC 8259) -------------------------------------

struct Json {
  enum class Type { kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0;
  std::string string;
  std::vector<Json> items;        // kArray
  std::vector<std::string> keys;  // kObject, in order
  std::vector<Json> values;       // kObject, parallel to keys

  const Json* Find(std::string_view key) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &values[i];
    }
    return nullptr;
  }
};

class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  // Returns "" on success, otherwise what is wrong and where.
  std::string Parse(Json* out) {
    SkipSpace();
    if (!Value(out, 0)) return error_;
    SkipSpace();
    if (pos_ != text_.size()) return Fail("text after the value");
    return "";
  }

 private:
  std::string Fail(const std::string& what) {
    if (error_.empty()) error_ = "at offset " + std::to_string(pos_) + ": " + what;
    return error_;
  }
  bool Error(const std::string& what) {
    Fail(what);
    return false;
  }
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }
  void SkipSpace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r')) {
      ++pos_;
    }
  }
  bool Literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return Error("bad literal");
    pos_ += word.size();
    return true;
  }

  bool Value(Json* out, int depth) {
    if (depth > 64) return Error("nested too deeply");
    if (AtEnd()) return Error("value expected");
    switch (Peek()) {
      case '{':
        return Object(out, depth);
      case '[':
        return Array(out, depth);
      case '"':
        out->type = Json::Type::kString;
        return String(&out->string);
      case 't':
        out->type = Json::Type::kBool;
        out->boolean = true;
        return Literal("true");
      case 'f':
        out->type = Json::Type::kBool;
        out->boolean = false;
        return Literal("false");
      case 'n':
        out->type = Json::Type::kNull;
        return Literal("null");
      default:
        return Number(out);
    }
  }

  bool Object(Json* out, int depth) {
    out->type = Json::Type::kObject;
    ++pos_;  // '{'
    SkipSpace();
    if (!AtEnd() && Peek() == '}') {
      ++pos_;
      return true;
    }
    while (true) {
      SkipSpace();
      if (AtEnd() || Peek() != '"') return Error("object key expected");
      std::string key;
      if (!String(&key)) return false;
      if (out->Find(key) != nullptr) return Error("duplicate key " + key);
      SkipSpace();
      if (AtEnd() || Peek() != ':') return Error("':' expected");
      ++pos_;
      SkipSpace();
      Json value;
      if (!Value(&value, depth + 1)) return false;
      out->keys.push_back(std::move(key));
      out->values.push_back(std::move(value));
      SkipSpace();
      if (AtEnd()) return Error("unterminated object");
      if (Peek() == '}') {
        ++pos_;
        return true;
      }
      if (Peek() != ',') return Error("',' or '}' expected");
      ++pos_;
    }
  }

  bool Array(Json* out, int depth) {
    out->type = Json::Type::kArray;
    ++pos_;  // '['
    SkipSpace();
    if (!AtEnd() && Peek() == ']') {
      ++pos_;
      return true;
    }
    while (true) {
      SkipSpace();
      Json item;
      if (!Value(&item, depth + 1)) return false;
      out->items.push_back(std::move(item));
      SkipSpace();
      if (AtEnd()) return Error("unterminated array");
      if (Peek() == ']') {
        ++pos_;
        return true;
      }
      if (Peek() != ',') return Error("',' or ']' expected");
      ++pos_;
    }
  }

  bool Hex4(uint32_t* value) {
    if (pos_ + 4 > text_.size()) return Error("short \\u escape");
    *value = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text_[pos_++];
      uint32_t digit;
      if (c >= '0' && c <= '9') {
        digit = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return Error("bad hex digit");
      }
      *value = *value * 16 + digit;
    }
    return true;
  }

  bool String(std::string* out) {
    ++pos_;  // '"'
    while (true) {
      if (AtEnd()) return Error("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return Error("raw control character in a string");
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (AtEnd()) return Error("string ends in a backslash");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return Error("lone low surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (text_.substr(pos_, 2) != "\\u") return Error("lone high surrogate");
            pos_ += 2;
            uint32_t low;
            if (!Hex4(&low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return Error("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(*out, cp);
          break;
        }
        default:
          return Error("unknown escape");
      }
    }
  }

  bool Number(Json* out) {
    const size_t start = pos_;
    const auto digits = [&] {
      const size_t from = pos_;
      while (!AtEnd() && Peek() >= '0' && Peek() <= '9') ++pos_;
      return pos_ - from;
    };
    if (!AtEnd() && Peek() == '-') ++pos_;
    if (AtEnd()) return Error("number expected");
    if (Peek() == '0') {
      ++pos_;
    } else if (digits() == 0) {
      return Error("number expected");
    }
    bool integral = true;
    if (!AtEnd() && Peek() == '.') {
      integral = false;
      ++pos_;
      if (digits() == 0) return Error("digits expected after '.'");
    }
    if (!AtEnd() && (Peek() == 'e' || Peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!AtEnd() && (Peek() == '+' || Peek() == '-')) ++pos_;
      if (digits() == 0) return Error("digits expected in the exponent");
    }
    const std::string_view number = text_.substr(start, pos_ - start);
    if (integral) {
      out->type = Json::Type::kInt;
      if (!ParseInt64(number, &out->integer)) return Error("integer out of int64 range");
      return true;
    }
    out->type = Json::Type::kDouble;
    const char* end = number.data() + number.size();
    auto [ptr, ec] = std::from_chars(number.data(), end, out->number);
    if (ec != std::errc() || ptr != end) return Error("bad number");
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::string error_;
};

std::string ParseJson(std::string_view text, Json* out) { return JsonParser(text).Parse(out); }

// ---- The snapshot under test and what each format must say about it ------------------------

// Every value is different, so that two metrics swapped in either format cannot go unnoticed;
// kBig and kMax would lose digits on a trip through a double.
MetricsSnapshot DistinctSnapshot() {
  MetricsSnapshot s;
  s.stream_name = "player-actions.v2_eu-1";
  s.taken_at = absl::FromUnixMicros(1704067200123456);  // 2024-01-01T00:00:00.123456Z
  s.incoming_bytes = kBig;
  s.incoming_records = 1;
  s.outgoing_bytes = 22;
  s.outgoing_records = 333;
  s.put_record_success = 55555;
  s.put_record_failure = 666666;
  s.put_records_success = 88888888;
  s.put_records_total_records = 999999999;
  s.put_records_successful_records = 1010101010;
  s.put_records_failed_records = 11111111111;
  s.put_records_throttled_records = 121212121212;
  s.get_records_success = 1313131313131;
  s.get_records_records = 14141414141414;
  s.get_records_bytes = 151515151515151;
  s.write_provisioned_throughput_exceeded = 1616161616161616;
  s.read_provisioned_throughput_exceeded = 17171717171717171;
  s.iterator_age_milliseconds = 181818181818181818;
  s.memory_bytes = 28282828;
  s.memory_budget_exceeded = 2929292929;
  s.retired_records = 303030303030;
  s.retired_bytes = 31313131313131;
  s.put_record_latency = {.count = 19, .sum_micros = 2020, .max_micros = 212121};
  s.put_records_latency = {.count = 2323, .sum_micros = 242424, .max_micros = 25252525};
  s.get_records_latency = {.count = 26, .sum_micros = kMax, .max_micros = 2727};

  ShardMetrics a;
  a.shard_id = ShardId(0);
  a.incoming_bytes = 101;
  a.incoming_records = 102;
  a.outgoing_bytes = 103;
  a.outgoing_records = 104;
  a.write_provisioned_throughput_exceeded = 105;
  a.read_provisioned_throughput_exceeded = 106;
  a.iterator_age_milliseconds = 107;
  ShardMetrics b;
  b.shard_id = ShardId(1);
  b.incoming_bytes = 201;
  b.incoming_records = 202;
  b.outgoing_bytes = 203;
  b.outgoing_records = 204;
  b.write_provisioned_throughput_exceeded = 205;
  b.read_provisioned_throughput_exceeded = 206;
  b.iterator_age_milliseconds = 207;
  ShardMetrics c;  // a child of a split: ids are not dense
  c.shard_id = ShardId(12);
  c.incoming_bytes = kMax;
  c.iterator_age_milliseconds = kBig + 7;
  s.shards = {a, b, c};
  return s;
}

struct ExpectedScalar {
  const char* kinesis;     // JSON key
  const char* prometheus;  // Prometheus family and sample name
  const char* type;        // Prometheus type
  int64_t value;
};

// The stream-level counters and gauges of DistinctSnapshot(), written out by hand.
const ExpectedScalar kExpectedScalars[] = {
    {"IncomingBytes", "rill_incoming_bytes_total", "counter", 4611686018427400249},
    {"IncomingRecords", "rill_incoming_records_total", "counter", 1},
    {"OutgoingBytes", "rill_outgoing_bytes_total", "counter", 22},
    {"OutgoingRecords", "rill_outgoing_records_total", "counter", 333},
    {"PutRecord.Success", "rill_put_record_success_total", "counter", 55555},
    {"PutRecord.Failure", "rill_put_record_failure_total", "counter", 666666},
    {"PutRecords.Success", "rill_put_records_success_total", "counter", 88888888},
    {"PutRecords.TotalRecords", "rill_put_records_total_records_total", "counter", 999999999},
    {"PutRecords.SuccessfulRecords", "rill_put_records_successful_records_total", "counter",
     1010101010},
    {"PutRecords.FailedRecords", "rill_put_records_failed_records_total", "counter", 11111111111},
    {"PutRecords.ThrottledRecords", "rill_put_records_throttled_records_total", "counter",
     121212121212},
    {"GetRecords.Success", "rill_get_records_success_total", "counter", 1313131313131},
    {"GetRecords.Records", "rill_get_records_records_total", "counter", 14141414141414},
    {"GetRecords.Bytes", "rill_get_records_bytes_total", "counter", 151515151515151},
    {"WriteProvisionedThroughputExceeded", "rill_write_provisioned_throughput_exceeded_total",
     "counter", 1616161616161616},
    {"ReadProvisionedThroughputExceeded", "rill_read_provisioned_throughput_exceeded_total",
     "counter", 17171717171717171},
    {"GetRecords.IteratorAgeMilliseconds", "rill_get_records_iterator_age_milliseconds", "gauge",
     181818181818181818},
    {"MemoryBytes", "rill_memory_bytes", "gauge", 28282828},
    {"MemoryBudgetExceeded", "rill_memory_budget_exceeded_total", "counter", 2929292929},
    {"RetiredRecords", "rill_retired_records_total", "counter", 303030303030},
    {"RetiredBytes", "rill_retired_bytes_total", "counter", 31313131313131},
};

struct ExpectedLatency {
  const char* kinesis;     // JSON key
  const char* prometheus;  // summary family; the gauge is this + "_max"
  int64_t count;
  int64_t sum_micros;
  int64_t max_micros;
};

const ExpectedLatency kExpectedLatencies[] = {
    {"PutRecord.Latency", "rill_put_record_latency_microseconds", 19, 2020, 212121},
    {"PutRecords.Latency", "rill_put_records_latency_microseconds", 2323, 242424, 25252525},
    {"GetRecords.Latency", "rill_get_records_latency_microseconds", 26, 9223372036854775807, 2727},
};

struct ExpectedShardMetric {
  const char* kinesis;
  const char* prometheus;
  const char* type;
  int64_t ShardMetrics::*field;
};

const ExpectedShardMetric kExpectedShardMetrics[] = {
    {"IncomingBytes", "rill_shard_incoming_bytes_total", "counter", &ShardMetrics::incoming_bytes},
    {"IncomingRecords", "rill_shard_incoming_records_total", "counter",
     &ShardMetrics::incoming_records},
    {"OutgoingBytes", "rill_shard_outgoing_bytes_total", "counter", &ShardMetrics::outgoing_bytes},
    {"OutgoingRecords", "rill_shard_outgoing_records_total", "counter",
     &ShardMetrics::outgoing_records},
    {"WriteProvisionedThroughputExceeded", "rill_shard_write_provisioned_throughput_exceeded_total",
     "counter", &ShardMetrics::write_provisioned_throughput_exceeded},
    {"ReadProvisionedThroughputExceeded", "rill_shard_read_provisioned_throughput_exceeded_total",
     "counter", &ShardMetrics::read_provisioned_throughput_exceeded},
    {"IteratorAgeMilliseconds", "rill_shard_iterator_age_milliseconds", "gauge",
     &ShardMetrics::iterator_age_milliseconds},
};

// The exposition parsed; REQUIREs that it parses.
std::vector<PromFamily> ParsedPrometheus(const MetricsSnapshot& snapshot) {
  const std::string text = ToPrometheusText(snapshot);
  INFO(text);
  REQUIRE(IsValidUtf8(text));
  std::vector<PromFamily> families;
  const std::string error = ParsePrometheus(text, &families);
  INFO(error);
  REQUIRE(error.empty());
  return families;
}

Json ParsedJson(const MetricsSnapshot& snapshot) {
  const std::string text = ToJson(snapshot);
  INFO(text);
  REQUIRE(IsValidUtf8(text));
  Json json;
  const std::string error = ParseJson(text, &json);
  INFO(error);
  REQUIRE(error.empty());
  REQUIRE(json.type == Json::Type::kObject);
  return json;
}

const Json& Member(const Json& object, std::string_view key) {
  INFO("key " << key);
  REQUIRE(object.type == Json::Type::kObject);
  const Json* value = object.Find(key);
  REQUIRE(value != nullptr);
  return *value;
}

int64_t IntMember(const Json& object, std::string_view key) {
  const Json& value = Member(object, key);
  INFO("key " << key);
  REQUIRE(value.type == Json::Type::kInt);
  return value.integer;
}

// ---- The test parsers themselves -----------------------------------------------------------

TEST_CASE("The test's Prometheus parser accepts the format and rejects what breaks it",
          "[metrics][parser]") {
  std::vector<PromFamily> f;
  const std::string good =
      "# HELP a_total Help \\\\ with \\n escapes.\n"
      "# TYPE a_total counter\n"
      "a_total{stream=\"q\\\"b\\\\s\\nn\",shard_id=\"x\"} -9223372036854775808\n"
      "# HELP s A summary.\n"
      "# TYPE s summary\n"
      "s_sum 5\n"
      "s_count 2\n";
  REQUIRE(ParsePrometheus(good, &f) == "");
  REQUIRE(f.size() == 2);
  CHECK(f[0].help == "Help \\ with \n escapes.");
  CHECK(f[0].type == "counter");
  REQUIRE(f[0].samples.size() == 1);
  CHECK(f[0].samples[0].labels.at("stream") == "q\"b\\s\nn");
  CHECK(f[0].samples[0].labels.at("shard_id") == "x");
  CHECK(f[0].samples[0].value == std::numeric_limits<int64_t>::min());
  CHECK(f[1].samples.size() == 2);

  const char* bad[] = {
      "# HELP a A.\n# TYPE a gauge\na 1",    // no final newline
      "a 1\n",                               // no HELP, TYPE
      "# HELP a A.\na 1\n",                  // no TYPE
      "# TYPE a gauge\na 1\n",               // no HELP
      "# HELP a A.\n# TYPE b gauge\n",       // TYPE of another family
      "# HELP a A.\n# TYPE a gauge\nb 1\n",  // sample of another family
      "# HELP a A.\n# TYPE a gauge\na 1\n# HELP a A.\n# TYPE a gauge\n",  // family twice
      "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",                          // series twice
      "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",                    // unknown escape
      "# HELP a A.\n# TYPE a gauge\na{x=\"v\" 1\n",                       // unterminated labels
      "# HELP a A.\n# TYPE a gauge\na{x=\"v\",x=\"w\"} 1\n",              // label repeated
      "# HELP a A.\n# TYPE a gauge\na 1.5\n",                             // not an integer
      "# HELP a A.\n# TYPE a gauge\na 9223372036854775808\n",             // beyond int64
      "# HELP a A.\n# TYPE a gauge\na 1 1704067200000\n",                 // a timestamp
      "# HELP a A.\n# TYPE a gauge\n\na 1\n",                             // blank line
      "# HELP a A.\n# TYPE a summary\na 1\n",                             // summary without _sum
      "# HELP a A.\n# TYPE a counter\na{1x=\"v\"} 1\n",                   // bad label name
  };
  for (const char* text : bad) {
    INFO(text);
    CHECK(ParsePrometheus(text, &f) != "");
  }
}

TEST_CASE("The test's JSON parser accepts JSON and rejects what is not", "[metrics][parser]") {
  Json j;
  REQUIRE(ParseJson(R"( {"a": [1, -2.5e3, "x\u00e9\ud83d\ude00\n", true, null, {}], "b": []} )",
                    &j) == "");
  const Json& a = Member(j, "a");
  REQUIRE(a.type == Json::Type::kArray);
  REQUIRE(a.items.size() == 6);
  CHECK(a.items[0].integer == 1);
  CHECK(a.items[1].type == Json::Type::kDouble);
  CHECK(a.items[1].number == -2500.0);
  CHECK(a.items[2].string == "x\xC3\xA9\xF0\x9F\x98\x80\n");
  CHECK(a.items[3].boolean);
  CHECK(a.items[4].type == Json::Type::kNull);
  CHECK(a.items[5].type == Json::Type::kObject);
  CHECK(Member(j, "b").items.empty());
  REQUIRE(ParseJson("9223372036854775807", &j) == "");
  CHECK(j.integer == kMax);

  const char* bad[] = {
      "",                     // nothing
      "{",                    // unterminated
      "{\"a\":1,}",           // trailing comma
      "[1,]",                 // trailing comma
      "{\"a\":1,\"a\":2}",    // duplicate key
      "\"a\nb\"",             // raw control character
      "\"\\x41\"",            // unknown escape
      "\"\\ud83d\"",          // lone surrogate
      "01",                   // leading zero
      "9223372036854775808",  // beyond int64
      "1.",                   // no fraction digits
      "{} {}",                // text after the value
      "{'a':1}",              // single quotes
      "nul",                  // bad literal
  };
  for (const char* text : bad) {
    INFO(text);
    CHECK(ParseJson(text, &j) != "");
  }
}

// ---- LatencySummary ------------------------------------------------------------------------

TEST_CASE("MeanMillis is the mean latency in milliseconds, 0 with no calls", "[metrics]") {
  CHECK(LatencySummary{}.MeanMillis() == 0.0);
  CHECK(LatencySummary{.count = 0, .sum_micros = 0, .max_micros = 0}.MeanMillis() == 0.0);
  CHECK(LatencySummary{.count = 4, .sum_micros = 10000, .max_micros = 4000}.MeanMillis() == 2.5);
  CHECK(LatencySummary{.count = 1, .sum_micros = 1, .max_micros = 1}.MeanMillis() == 0.001);
  CHECK(LatencySummary{.count = 3, .sum_micros = 3000000, .max_micros = 1}.MeanMillis() == 1000.0);

  CHECK(LatencySummary{1, 2, 3} == LatencySummary{1, 2, 3});
  CHECK_FALSE(LatencySummary{1, 2, 3} == LatencySummary{1, 2, 4});
  CHECK(DistinctSnapshot() == DistinctSnapshot());
  MetricsSnapshot changed = DistinctSnapshot();
  changed.shards[2].outgoing_records = 1;
  CHECK_FALSE(changed == DistinctSnapshot());
}

// ---- Prometheus ----------------------------------------------------------------------------

TEST_CASE("Prometheus text: every family once, its HELP and TYPE before its samples",
          "[metrics][prometheus]") {
  const MetricsSnapshot snapshot = DistinctSnapshot();
  // ParsePrometheus enforces the block structure: HELP, TYPE, then only that family's samples,
  // and no family twice.
  const std::vector<PromFamily> families = ParsedPrometheus(snapshot);

  std::map<std::string, std::string> expected_types;
  for (const ExpectedScalar& e : kExpectedScalars) expected_types[e.prometheus] = e.type;
  for (const ExpectedLatency& e : kExpectedLatencies) {
    expected_types[e.prometheus] = "summary";
    expected_types[std::string(e.prometheus) + "_max"] = "gauge";
  }
  for (const ExpectedShardMetric& e : kExpectedShardMetrics) expected_types[e.prometheus] = e.type;
  REQUIRE(expected_types.size() == 21 + 3 * 2 + 7);

  std::map<std::string, std::string> types;
  for (const PromFamily& f : families) {
    INFO("family " << f.name);
    types[f.name] = f.type;
    CHECK(f.name.substr(0, 5) == "rill_");
    CHECK(f.help.size() > 10);
    CHECK(f.help.find("Kinesis") != std::string::npos);  // each names its Kinesis metric
    // Counters end in _total; nothing else does.
    const bool ends_in_total =
        f.name.size() > 6 && f.name.compare(f.name.size() - 6, 6, "_total") == 0;
    CHECK(ends_in_total == (f.type == "counter"));
    // Every sample carries the stream; shard families also the shard.
    const bool shard_family = f.name.substr(0, 11) == "rill_shard_";
    CHECK(f.samples.size() == (shard_family ? 3u : f.type == "summary" ? 2u : 1u));
    for (const PromSample& s : f.samples) {
      CHECK(s.labels.size() == (shard_family ? 2u : 1u));
      CHECK(s.labels.count("stream") == 1);
      CHECK(s.labels.count("shard_id") == (shard_family ? 1u : 0u));
    }
  }
  CHECK(types == expected_types);
  CHECK(families.size() == expected_types.size());

  // A summary's samples: _sum then _count.
  const PromFamily* latency = FindFamily(families, "rill_put_record_latency_microseconds");
  REQUIRE(latency != nullptr);
  REQUIRE(latency->samples.size() == 2);
  CHECK(latency->samples[0].name == "rill_put_record_latency_microseconds_sum");
  CHECK(latency->samples[1].name == "rill_put_record_latency_microseconds_count");
}

TEST_CASE("Prometheus text: every stream-level value comes back exactly", "[metrics][prometheus]") {
  const MetricsSnapshot snapshot = DistinctSnapshot();
  const std::vector<PromFamily> families = ParsedPrometheus(snapshot);
  const std::map<std::string, std::string> stream_label = {{"stream", "player-actions.v2_eu-1"}};

  for (const ExpectedScalar& e : kExpectedScalars) {
    INFO("family " << e.prometheus);
    const PromFamily* f = FindFamily(families, e.prometheus);
    REQUIRE(f != nullptr);
    REQUIRE(f->samples.size() == 1);
    CHECK(f->samples[0].name == e.prometheus);
    CHECK(f->samples[0].labels == stream_label);
    CHECK(f->samples[0].value == e.value);
  }
  for (const ExpectedLatency& e : kExpectedLatencies) {
    INFO("family " << e.prometheus);
    const PromFamily* summary = FindFamily(families, e.prometheus);
    REQUIRE(summary != nullptr);
    REQUIRE(summary->samples.size() == 2);
    CHECK(summary->samples[0].name == std::string(e.prometheus) + "_sum");
    CHECK(summary->samples[0].labels == stream_label);
    CHECK(summary->samples[0].value == e.sum_micros);
    CHECK(summary->samples[1].name == std::string(e.prometheus) + "_count");
    CHECK(summary->samples[1].labels == stream_label);
    CHECK(summary->samples[1].value == e.count);
    const PromFamily* max = FindFamily(families, std::string(e.prometheus) + "_max");
    REQUIRE(max != nullptr);
    REQUIRE(max->samples.size() == 1);
    CHECK(max->samples[0].labels == stream_label);
    CHECK(max->samples[0].value == e.max_micros);
  }

  // The digits themselves, not only what a parser makes of them.
  const std::string text = ToPrometheusText(snapshot);
  CHECK_THAT(text, Catch::Contains("\nrill_incoming_bytes_total{stream=\"player-actions.v2_eu-1\"} "
                                   "4611686018427400249\n"));
  CHECK_THAT(text, Catch::Contains("\nrill_get_records_latency_microseconds_sum{stream=\"player-"
                                   "actions.v2_eu-1\"} 9223372036854775807\n"));
  CHECK_THAT(text, Catch::StartsWith("# HELP rill_incoming_bytes_total Bytes (partition keys and "
                                     "data) successfully put by PutRecord and PutRecords "
                                     "(Kinesis: IncomingBytes).\n"
                                     "# TYPE rill_incoming_bytes_total counter\n"
                                     "rill_incoming_bytes_total{stream=\"player-actions.v2_eu-1\"}"
                                     " 4611686018427400249\n"));
  CHECK_THAT(text, Catch::Contains("# TYPE rill_put_record_latency_microseconds summary\n"
                                   "rill_put_record_latency_microseconds_sum{stream=\"player-"
                                   "actions.v2_eu-1\"} 2020\n"
                                   "rill_put_record_latency_microseconds_count{stream=\"player-"
                                   "actions.v2_eu-1\"} 19\n"
                                   "# HELP rill_put_record_latency_microseconds_max "));
}

TEST_CASE("Prometheus text: every shard-level value comes back exactly, in shard-id order",
          "[metrics][prometheus]") {
  const MetricsSnapshot snapshot = DistinctSnapshot();
  const std::vector<PromFamily> families = ParsedPrometheus(snapshot);
  const char* shard_ids[] = {"shardId-000000000000", "shardId-000000000001",
                             "shardId-000000000012"};

  for (const ExpectedShardMetric& e : kExpectedShardMetrics) {
    INFO("family " << e.prometheus);
    const PromFamily* f = FindFamily(families, e.prometheus);
    REQUIRE(f != nullptr);
    CHECK(f->type == e.type);
    REQUIRE(f->samples.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
      INFO("shard " << shard_ids[i]);
      const std::map<std::string, std::string> labels = {{"stream", "player-actions.v2_eu-1"},
                                                         {"shard_id", shard_ids[i]}};
      CHECK(f->samples[i].name == e.prometheus);
      CHECK(f->samples[i].labels == labels);
      CHECK(f->samples[i].value == snapshot.shards[i].*e.field);
    }
  }
  // Spot checks against literals, in case the snapshot and the table agree on a mistake.
  CHECK(FindFamily(families, "rill_shard_incoming_bytes_total")->samples[2].value == kMax);
  CHECK(FindFamily(families, "rill_shard_outgoing_records_total")->samples[1].value == 204);
  CHECK(FindFamily(families, "rill_shard_iterator_age_milliseconds")->samples[0].value == 107);
  CHECK(FindFamily(families, "rill_shard_iterator_age_milliseconds")->samples[2].value ==
        4611686018427400256);
  CHECK(FindFamily(families, "rill_shard_read_provisioned_throughput_exceeded_total")
            ->samples[1]
            .value == 206);
}

TEST_CASE("Prometheus text: label values escape backslash, double quote and newline",
          "[metrics][prometheus]") {
  // Stream names are [a-zA-Z0-9_.-], but the exposition must stay valid whatever it is given.
  MetricsSnapshot snapshot = DistinctSnapshot();
  const std::string name = "we\"ird\\name\nline two\\n \"\" caf\xC3\xA9 \xF0\x9F\x98\x80";
  snapshot.stream_name = name;

  const std::string text = ToPrometheusText(snapshot);
  CHECK_THAT(text,
             Catch::Contains("{stream=\"we\\\"ird\\\\name\\nline two\\\\n \\\"\\\" caf\xC3\xA9 "
                             "\xF0\x9F\x98\x80\"} 1\n"));
  const std::vector<PromFamily> families = ParsedPrometheus(snapshot);
  REQUIRE(families.size() == 21 + 3 * 2 + 7);
  size_t samples = 0;
  for (const PromFamily& f : families) {
    for (const PromSample& s : f.samples) {
      CHECK(s.labels.at("stream") == name);
      ++samples;
    }
  }
  CHECK(samples == 21 + 3 * 3 + 7 * 3);
  // Values still come back, so the escapes did not swallow anything.
  CHECK(FindFamily(families, "rill_incoming_bytes_total")->samples[0].value == kBig);
  CHECK(FindFamily(families, "rill_shard_incoming_bytes_total")->samples[2].value == kMax);
}

TEST_CASE("Prometheus text: ill-formed UTF-8 in a label value becomes U+FFFD",
          "[metrics][prometheus]") {
  struct Case {
    std::string in;
    std::string out;
  };
  const std::string r = "\xEF\xBF\xBD";  // U+FFFD
  const Case cases[] = {
      {"a\xFF"
       "b",
       "a" + r + "b"},
      {"\xC3(", r + "("},                        // a lead byte without its continuation
      {"x\xE2\x82", "x" + r},                    // truncated at the end: one U+FFFD
      {"\xED\xA0\x80", r + r + r},               // a surrogate: not UTF-8
      {"\xC0\xAF", r + r},                       // an overlong '/'
      {"\xE0\x80\xAF", r + r + r},               // an overlong '/' in three bytes
      {"\xF0\x80\x80\xAF", r + r + r + r},       // an overlong '/' in four bytes
      {"\xF4\x90\x80\x80", r + r + r + r},       // above U+10FFFF
      {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},  // well-formed: kept
      {std::string("nul\0byte", 8), std::string("nul\0byte", 8)},  // NUL is valid UTF-8
  };
  for (const Case& c : cases) {
    MetricsSnapshot snapshot;
    snapshot.stream_name = c.in;
    const std::vector<PromFamily> families = ParsedPrometheus(snapshot);
    REQUIRE_FALSE(families.empty());
    CHECK(families[0].samples[0].labels.at("stream") == c.out);

    const Json json = ParsedJson(snapshot);
    CHECK(Member(json, "stream").string == c.out);
  }
}

TEST_CASE("Prometheus text: with no shards, only the stream-level families",
          "[metrics][prometheus]") {
  MetricsSnapshot snapshot = DistinctSnapshot();
  snapshot.shards.clear();
  const std::vector<PromFamily> families = ParsedPrometheus(snapshot);
  CHECK(families.size() == 21 + 3 * 2);
  for (const PromFamily& f : families) {
    INFO("family " << f.name);
    CHECK(f.name.substr(0, 11) != "rill_shard_");
    for (const PromSample& s : f.samples) CHECK(s.labels.count("shard_id") == 0);
  }
  CHECK(FindFamily(families, "rill_incoming_bytes_total")->samples[0].value == kBig);

  // A default snapshot: an empty stream name, every value 0, still well-formed.
  const std::vector<PromFamily> empty = ParsedPrometheus(MetricsSnapshot{});
  CHECK(empty.size() == 21 + 3 * 2);
  for (const PromFamily& f : empty) {
    for (const PromSample& s : f.samples) {
      CHECK(s.labels.at("stream") == "");
      CHECK(s.value == 0);
    }
  }
}

// ---- JSON ----------------------------------------------------------------------------------

TEST_CASE("JSON: stream, taken_at, every metric and every shard come back exactly",
          "[metrics][json]") {
  const MetricsSnapshot snapshot = DistinctSnapshot();
  const Json json = ParsedJson(snapshot);

  CHECK(json.keys == std::vector<std::string>{"stream", "taken_at", "metrics", "shards"});
  CHECK(Member(json, "stream").string == "player-actions.v2_eu-1");
  CHECK(Member(json, "taken_at").string == "2024-01-01T00:00:00.123456Z");

  const Json& metrics = Member(json, "metrics");
  REQUIRE(metrics.type == Json::Type::kObject);
  std::set<std::string> expected_keys;
  for (const ExpectedScalar& e : kExpectedScalars) {
    INFO("metric " << e.kinesis);
    expected_keys.insert(e.kinesis);
    CHECK(IntMember(metrics, e.kinesis) == e.value);
  }
  for (const ExpectedLatency& e : kExpectedLatencies) {
    INFO("metric " << e.kinesis);
    expected_keys.insert(e.kinesis);
    const Json& latency = Member(metrics, e.kinesis);
    CHECK(latency.keys == std::vector<std::string>{"count", "sum_micros", "max_micros"});
    CHECK(IntMember(latency, "count") == e.count);
    CHECK(IntMember(latency, "sum_micros") == e.sum_micros);
    CHECK(IntMember(latency, "max_micros") == e.max_micros);
  }
  CHECK(std::set<std::string>(metrics.keys.begin(), metrics.keys.end()) == expected_keys);
  CHECK(metrics.keys.size() == 21 + 3);

  const Json& shards = Member(json, "shards");
  REQUIRE(shards.type == Json::Type::kArray);
  REQUIRE(shards.items.size() == 3);
  const char* shard_ids[] = {"shardId-000000000000", "shardId-000000000001",
                             "shardId-000000000012"};
  for (size_t i = 0; i < 3; ++i) {
    INFO("shard " << shard_ids[i]);
    const Json& shard = shards.items[i];
    REQUIRE(shard.type == Json::Type::kObject);
    CHECK(shard.keys.size() == 1 + 7);
    CHECK(shard.keys[0] == "ShardId");
    CHECK(Member(shard, "ShardId").string == shard_ids[i]);
    for (const ExpectedShardMetric& e : kExpectedShardMetrics) {
      INFO("metric " << e.kinesis);
      CHECK(IntMember(shard, e.kinesis) == snapshot.shards[i].*e.field);
    }
  }
  CHECK(IntMember(shards.items[2], "IncomingBytes") == kMax);
  CHECK(IntMember(shards.items[2], "IteratorAgeMilliseconds") == 4611686018427400256);
  CHECK(IntMember(shards.items[1], "OutgoingRecords") == 204);
  CHECK(IntMember(shards.items[0], "WriteProvisionedThroughputExceeded") == 105);
}

TEST_CASE("JSON: the exact text of a small snapshot", "[metrics][json]") {
  MetricsSnapshot s;
  s.stream_name = "s";
  s.taken_at = absl::FromUnixMillis(1704067200250);
  s.incoming_records = 1;
  s.put_record_latency = {.count = 3, .sum_micros = 30, .max_micros = 20};
  ShardMetrics shard;
  shard.shard_id = ShardId(7);
  shard.incoming_records = 1;
  s.shards = {shard};
  CHECK(ToJson(s) ==
        "{\"stream\":\"s\",\"taken_at\":\"2024-01-01T00:00:00.25Z\",\"metrics\":{"
        "\"IncomingBytes\":0,\"IncomingRecords\":1,\"OutgoingBytes\":0,\"OutgoingRecords\":0,"
        "\"PutRecord.Success\":0,\"PutRecord.Failure\":0,"
        "\"PutRecord.Latency\":{\"count\":3,\"sum_micros\":30,\"max_micros\":20},"
        "\"PutRecords.Success\":0,\"PutRecords.TotalRecords\":0,"
        "\"PutRecords.SuccessfulRecords\":0,\"PutRecords.FailedRecords\":0,"
        "\"PutRecords.ThrottledRecords\":0,"
        "\"PutRecords.Latency\":{\"count\":0,\"sum_micros\":0,\"max_micros\":0},"
        "\"GetRecords.Success\":0,\"GetRecords.Records\":0,\"GetRecords.Bytes\":0,"
        "\"GetRecords.Latency\":{\"count\":0,\"sum_micros\":0,\"max_micros\":0},"
        "\"GetRecords.IteratorAgeMilliseconds\":0,\"WriteProvisionedThroughputExceeded\":0,"
        "\"ReadProvisionedThroughputExceeded\":0,\"MemoryBytes\":0,\"MemoryBudgetExceeded\":0,"
        "\"RetiredRecords\":0,\"RetiredBytes\":0},"
        "\"shards\":[{\"ShardId\":\"shardId-000000000007\",\"IncomingBytes\":0,"
        "\"IncomingRecords\":1,\"OutgoingBytes\":0,\"OutgoingRecords\":0,"
        "\"WriteProvisionedThroughputExceeded\":0,\"ReadProvisionedThroughputExceeded\":0,"
        "\"IteratorAgeMilliseconds\":0}]}");
}

TEST_CASE("JSON: strings escape quotes, backslashes and every control character",
          "[metrics][json]") {
  std::string name;
  for (int c = 0; c < 0x20; ++c) name.push_back(static_cast<char>(c));
  name += "\x7F\"\\/ caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 end";
  MetricsSnapshot snapshot = DistinctSnapshot();
  snapshot.stream_name = name;

  const std::string text = ToJson(snapshot);
  for (char c : text) CHECK(static_cast<unsigned char>(c) >= 0x20);
  CHECK(text.find('\x7F') == std::string::npos);
  CHECK_THAT(text, Catch::StartsWith(
                       "{\"stream\":\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
                       "\\u0008\\u0009\\u000a\\u000b\\u000c\\u000d\\u000e\\u000f\\u0010\\u0011"
                       "\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b"
                       "\\u001c\\u001d\\u001e\\u001f\\u007f\\\"\\\\/ caf\xC3\xA9 \xE2\x82\xAC "
                       "\xF0\x9F\x98\x80 end\","));

  const Json json = ParsedJson(snapshot);
  CHECK(Member(json, "stream").string == name);
  CHECK(IntMember(Member(json, "metrics"), "IncomingBytes") == kBig);
  CHECK(Member(json, "shards").items.size() == 3);
}

TEST_CASE("JSON: taken_at is RFC 3339 in UTC, null where RFC 3339 cannot say it",
          "[metrics][json]") {
  const absl::TimeZone utc = absl::UTCTimeZone();
  struct Case {
    absl::Time t;
    const char* expected;  // nullptr: JSON null
  };
  const Case cases[] = {
      {absl::UnixEpoch(), "1970-01-01T00:00:00Z"},
      {absl::FromUnixSeconds(1704067200), "2024-01-01T00:00:00Z"},
      {absl::FromUnixMillis(1704067200250), "2024-01-01T00:00:00.25Z"},
      {absl::FromUnixMicros(1704067200123456), "2024-01-01T00:00:00.123456Z"},
      {absl::FromUnixNanos(1709251199999999999), "2024-02-29T23:59:59.999999999Z"},
      {absl::FromUnixNanos(-1), "1969-12-31T23:59:59.999999999Z"},
      {absl::FromUnixMillis(-1500), "1969-12-31T23:59:58.5Z"},
      {absl::FromCivil(absl::CivilSecond(0, 1, 1, 0, 0, 0), utc), "0000-01-01T00:00:00Z"},
      {absl::FromCivil(absl::CivilSecond(999, 3, 4, 5, 6, 7), utc), "0999-03-04T05:06:07Z"},
      {absl::FromCivil(absl::CivilSecond(10000, 1, 1, 0, 0, 0), utc) - absl::Nanoseconds(1),
       "9999-12-31T23:59:59.999999999Z"},
      {absl::FromCivil(absl::CivilSecond(10000, 1, 1, 0, 0, 0), utc), nullptr},
      {absl::FromCivil(absl::CivilSecond(0, 1, 1, 0, 0, 0), utc) - absl::Nanoseconds(1), nullptr},
      {absl::InfiniteFuture(), nullptr},
      {absl::InfinitePast(), nullptr},
  };
  for (const Case& c : cases) {
    INFO("expected " << (c.expected ? c.expected : "null"));
    MetricsSnapshot snapshot;
    snapshot.taken_at = c.t;
    const Json json = ParsedJson(snapshot);
    const Json& taken_at = Member(json, "taken_at");
    if (c.expected == nullptr) {
      CHECK(taken_at.type == Json::Type::kNull);
    } else {
      REQUIRE(taken_at.type == Json::Type::kString);
      CHECK(taken_at.string == c.expected);
      // And it reads back as the same instant, to the nanosecond.
      absl::Time parsed;
      std::string error;
      REQUIRE(absl::ParseTime(absl::RFC3339_full, taken_at.string, &parsed, &error));
      CHECK(absl::ToUnixNanos(parsed) == absl::ToUnixNanos(c.t));
    }
  }
}

TEST_CASE("JSON: with no shards, an empty array", "[metrics][json]") {
  MetricsSnapshot snapshot = DistinctSnapshot();
  snapshot.shards.clear();
  const Json json = ParsedJson(snapshot);
  const Json& shards = Member(json, "shards");
  CHECK(shards.type == Json::Type::kArray);
  CHECK(shards.items.empty());
  CHECK_THAT(ToJson(snapshot), Catch::EndsWith(",\"shards\":[]}"));
  CHECK(IntMember(Member(json, "metrics"), "IncomingBytes") == kBig);

  const Json empty = ParsedJson(MetricsSnapshot{});
  CHECK(Member(empty, "stream").string == "");
  CHECK(Member(empty, "taken_at").string == "1970-01-01T00:00:00Z");
  CHECK(Member(empty, "shards").items.empty());
  for (const Json& value : Member(empty, "metrics").values) {
    if (value.type == Json::Type::kObject) {
      for (const Json& v : value.values) CHECK(v.integer == 0);
    } else {
      CHECK(value.type == Json::Type::kInt);
      CHECK(value.integer == 0);
    }
  }
}

}  // namespace
}  // namespace rill
