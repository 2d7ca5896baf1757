#include "rill/metrics/metrics.h"

#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "fmt/format.h"

namespace rill {
namespace {

// One table describes every metric, so that the two formats cannot drift apart: a metric added
// here appears in both, under its Kinesis name in JSON and its Prometheus name in the text.
enum class Kind {
  kCounter,  // a cumulative int64_t
  kGauge,    // an int64_t as of the snapshot
  kLatency,  // a LatencySummary: a Prometheus summary (_sum, _count) plus a _max gauge
};

struct StreamMetric {
  std::string_view kinesis_name;
  // The full family name for counters and gauges; the summary's base name for latencies.
  std::string_view prometheus_name;
  Kind kind;
  std::string_view help;
  int64_t MetricsSnapshot::*value = nullptr;           // kCounter, kGauge
  LatencySummary MetricsSnapshot::*latency = nullptr;  // kLatency
  std::string_view max_help = {};                      // kLatency: of the _max gauge
};

// In the order of Kinesis' documentation: traffic, then PutRecord, PutRecords, GetRecords, limits;
// then rill's memory metrics.
constexpr StreamMetric kStreamMetrics[] = {
    {"IncomingBytes", "rill_incoming_bytes_total", Kind::kCounter,
     "Bytes (partition keys and data) successfully put by PutRecord and PutRecords (Kinesis: "
     "IncomingBytes).",
     &MetricsSnapshot::incoming_bytes},
    {"IncomingRecords", "rill_incoming_records_total", Kind::kCounter,
     "Records successfully put by PutRecord and PutRecords (Kinesis: IncomingRecords).",
     &MetricsSnapshot::incoming_records},
    {"OutgoingBytes", "rill_outgoing_bytes_total", Kind::kCounter,
     "Bytes (partition keys and data) of records returned to readers (Kinesis: OutgoingBytes).",
     &MetricsSnapshot::outgoing_bytes},
    {"OutgoingRecords", "rill_outgoing_records_total", Kind::kCounter,
     "Records returned to readers (Kinesis: OutgoingRecords).", &MetricsSnapshot::outgoing_records},
    {"PutRecord.Success", "rill_put_record_success_total", Kind::kCounter,
     "PutRecord calls that wrote their record (Kinesis: PutRecord.Success).",
     &MetricsSnapshot::put_record_success},
    {"PutRecord.Failure", "rill_put_record_failure_total", Kind::kCounter,
     "PutRecord calls that returned an error (rill's addition; Kinesis derives it from "
     "PutRecord.Success).",
     &MetricsSnapshot::put_record_failure},
    {"PutRecord.Latency", "rill_put_record_latency_microseconds", Kind::kLatency,
     "Time per PutRecord call, in microseconds on the stream's clock (Kinesis: "
     "PutRecord.Latency).",
     nullptr, &MetricsSnapshot::put_record_latency,
     "Longest PutRecord call, in microseconds on the stream's clock (Kinesis: PutRecord.Latency "
     "Maximum)."},
    {"PutRecords.Success", "rill_put_records_success_total", Kind::kCounter,
     "PutRecords calls that wrote at least one record (Kinesis: PutRecords.Success).",
     &MetricsSnapshot::put_records_success},
    {"PutRecords.TotalRecords", "rill_put_records_total_records_total", Kind::kCounter,
     "Entries in PutRecords calls, written or not (Kinesis: PutRecords.TotalRecords).",
     &MetricsSnapshot::put_records_total_records},
    {"PutRecords.SuccessfulRecords", "rill_put_records_successful_records_total", Kind::kCounter,
     "PutRecords entries written (Kinesis: PutRecords.SuccessfulRecords).",
     &MetricsSnapshot::put_records_successful_records},
    {"PutRecords.FailedRecords", "rill_put_records_failed_records_total", Kind::kCounter,
     "PutRecords entries that failed other than by throttling (Kinesis: "
     "PutRecords.FailedRecords).",
     &MetricsSnapshot::put_records_failed_records},
    {"PutRecords.ThrottledRecords", "rill_put_records_throttled_records_total", Kind::kCounter,
     "PutRecords entries refused by a shard's write limits (Kinesis: "
     "PutRecords.ThrottledRecords).",
     &MetricsSnapshot::put_records_throttled_records},
    {"PutRecords.Latency", "rill_put_records_latency_microseconds", Kind::kLatency,
     "Time per PutRecords call, in microseconds on the stream's clock (Kinesis: "
     "PutRecords.Latency).",
     nullptr, &MetricsSnapshot::put_records_latency,
     "Longest PutRecords call, in microseconds on the stream's clock (Kinesis: PutRecords.Latency "
     "Maximum)."},
    {"GetRecords.Success", "rill_get_records_success_total", Kind::kCounter,
     "GetRecords calls that returned a result (Kinesis: GetRecords.Success).",
     &MetricsSnapshot::get_records_success},
    {"GetRecords.Records", "rill_get_records_records_total", Kind::kCounter,
     "Records returned by GetRecords (Kinesis: GetRecords.Records).",
     &MetricsSnapshot::get_records_records},
    {"GetRecords.Bytes", "rill_get_records_bytes_total", Kind::kCounter,
     "Bytes returned by GetRecords (Kinesis: GetRecords.Bytes).",
     &MetricsSnapshot::get_records_bytes},
    {"GetRecords.Latency", "rill_get_records_latency_microseconds", Kind::kLatency,
     "Time per GetRecords call, in microseconds on the stream's clock (Kinesis: "
     "GetRecords.Latency).",
     nullptr, &MetricsSnapshot::get_records_latency,
     "Longest GetRecords call, in microseconds on the stream's clock (Kinesis: GetRecords.Latency "
     "Maximum)."},
    {"GetRecords.IteratorAgeMilliseconds", "rill_get_records_iterator_age_milliseconds",
     Kind::kGauge,
     "Largest iterator age over the shards: now minus the arrival time of the last record the "
     "last GetRecords returned; 0 when caught up (Kinesis: GetRecords.IteratorAgeMilliseconds).",
     &MetricsSnapshot::iterator_age_milliseconds},
    {"WriteProvisionedThroughputExceeded", "rill_write_provisioned_throughput_exceeded_total",
     Kind::kCounter,
     "Records refused by shard write limits, PutRecord and PutRecords (Kinesis: "
     "WriteProvisionedThroughputExceeded).",
     &MetricsSnapshot::write_provisioned_throughput_exceeded},
    {"ReadProvisionedThroughputExceeded", "rill_read_provisioned_throughput_exceeded_total",
     Kind::kCounter,
     "GetRecords calls refused by shard read limits (Kinesis: "
     "ReadProvisionedThroughputExceeded).",
     &MetricsSnapshot::read_provisioned_throughput_exceeded},
    {"MemoryBytes", "rill_memory_bytes", Kind::kGauge,
     "Bytes of record chunks the stream holds in memory (rill's addition; Kinesis has no "
     "equivalent).",
     &MetricsSnapshot::memory_bytes},
    {"MemoryBudgetExceeded", "rill_memory_budget_exceeded_total", Kind::kCounter,
     "Records refused because the stream's memory budget was used up (rill's addition; Kinesis "
     "has no equivalent).",
     &MetricsSnapshot::memory_budget_exceeded},
    {"RetiredRecords", "rill_retired_records_total", Kind::kCounter,
     "Records retired before their retention period to keep the stream within its memory budget "
     "(rill's addition; Kinesis has no equivalent).",
     &MetricsSnapshot::retired_records},
    {"RetiredBytes", "rill_retired_bytes_total", Kind::kCounter,
     "Bytes (partition keys and data) of records retired to keep the stream within its memory "
     "budget (rill's addition; Kinesis has no equivalent).",
     &MetricsSnapshot::retired_bytes},
};

struct ShardMetric {
  std::string_view kinesis_name;
  std::string_view prometheus_name;
  Kind kind;  // kCounter or kGauge
  std::string_view help;
  int64_t ShardMetrics::*value;
};

constexpr ShardMetric kShardMetrics[] = {
    {"IncomingBytes", "rill_shard_incoming_bytes_total", Kind::kCounter,
     "Bytes successfully put to the shard (Kinesis shard-level: IncomingBytes).",
     &ShardMetrics::incoming_bytes},
    {"IncomingRecords", "rill_shard_incoming_records_total", Kind::kCounter,
     "Records successfully put to the shard (Kinesis shard-level: IncomingRecords).",
     &ShardMetrics::incoming_records},
    {"OutgoingBytes", "rill_shard_outgoing_bytes_total", Kind::kCounter,
     "Bytes returned from the shard (Kinesis shard-level: OutgoingBytes).",
     &ShardMetrics::outgoing_bytes},
    {"OutgoingRecords", "rill_shard_outgoing_records_total", Kind::kCounter,
     "Records returned from the shard (Kinesis shard-level: OutgoingRecords).",
     &ShardMetrics::outgoing_records},
    {"WriteProvisionedThroughputExceeded", "rill_shard_write_provisioned_throughput_exceeded_total",
     Kind::kCounter,
     "Records refused by the shard's write limits (Kinesis shard-level: "
     "WriteProvisionedThroughputExceeded).",
     &ShardMetrics::write_provisioned_throughput_exceeded},
    {"ReadProvisionedThroughputExceeded", "rill_shard_read_provisioned_throughput_exceeded_total",
     Kind::kCounter,
     "GetRecords calls refused by the shard's read limits (Kinesis shard-level: "
     "ReadProvisionedThroughputExceeded).",
     &ShardMetrics::read_provisioned_throughput_exceeded},
    {"IteratorAgeMilliseconds", "rill_shard_iterator_age_milliseconds", Kind::kGauge,
     "Iterator age of the shard's last GetRecords: now minus the arrival time of the last record "
     "returned; 0 when caught up (Kinesis shard-level: IteratorAgeMilliseconds).",
     &ShardMetrics::iterator_age_milliseconds},
};

// ---- UTF-8 ---------------------------------------------------------------------------------

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// The length of the well-formed UTF-8 sequence (RFC 3629) at the start of `s`, which is not empty,
// as a positive number; or, when there is none, minus the length of the maximal ill-formed
// subpart, which Unicode (section 3.9, "U+FFFD Substitution of Maximal Subparts") replaces with
// one U+FFFD.
int Utf8SequenceLength(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) return 1;
  int length;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return -1;  // a continuation byte, C0, C1 or F5-FF
  }
  for (int i = 1; i < length; ++i) {
    if (static_cast<size_t>(i) >= s.size()) return -i;
    const auto b = static_cast<unsigned char>(s[static_cast<size_t>(i)]);
    if (b < lo || b > hi) return -i;
    lo = 0x80;
    hi = 0xBF;
  }
  return length;
}

// Appends `s` to `out` with every ill-formed UTF-8 subpart replaced by U+FFFD, passing each ASCII
// character through `escape_ascii(out, c)`, which returns false to have it appended as it is.
template <typename EscapeAscii>
void AppendUtf8(std::string& out, std::string_view s, EscapeAscii escape_ascii) {
  while (!s.empty()) {
    const int n = Utf8SequenceLength(s);
    if (n == 1) {
      if (!escape_ascii(out, s[0])) out.push_back(s[0]);
      s.remove_prefix(1);
    } else if (n > 1) {
      out.append(s.substr(0, static_cast<size_t>(n)));
      s.remove_prefix(static_cast<size_t>(n));
    } else {
      out.append(kReplacementCharacter);
      s.remove_prefix(static_cast<size_t>(-n));
    }
  }
}

// ---- Prometheus text -----------------------------------------------------------------------

// A label value: backslash, double quote and line feed are the three escapes the format has.
void AppendPrometheusLabelValue(std::string& out, std::string_view value) {
  AppendUtf8(out, value, [](std::string& o, char c) {
    switch (c) {
      case '\\':
        o.append("\\\\");
        return true;
      case '"':
        o.append("\\\"");
        return true;
      case '\n':
        o.append("\\n");
        return true;
      default:
        return false;
    }
  });
}

// HELP text escapes only backslash and line feed.
void AppendPrometheusHelp(std::string& out, std::string_view help) {
  AppendUtf8(out, help, [](std::string& o, char c) {
    switch (c) {
      case '\\':
        o.append("\\\\");
        return true;
      case '\n':
        o.append("\\n");
        return true;
      default:
        return false;
    }
  });
}

void AppendFamilyHeader(std::string& out, std::string_view name, std::string_view type,
                        std::string_view help) {
  out.append("# HELP ").append(name).push_back(' ');
  AppendPrometheusHelp(out, help);
  out.append("\n# TYPE ").append(name).append(" ").append(type).push_back('\n');
}

// `labels` is the already escaped text between the braces.
void AppendSample(std::string& out, std::string_view name, std::string_view suffix,
                  std::string_view labels, int64_t value) {
  fmt::format_to(std::back_inserter(out), "{}{}{{{}}} {}\n", name, suffix, labels, value);
}

// ---- JSON ----------------------------------------------------------------------------------

void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  AppendUtf8(out, s, [](std::string& o, char c) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      o.push_back('\\');
      o.push_back(c);
      return true;
    }
    if (u < 0x20 || u == 0x7F) {
      fmt::format_to(std::back_inserter(o), "\\u{:04x}", u);
      return true;
    }
    return false;
  });
  out.push_back('"');
}

// "key": (the caller writes the value).
void AppendJsonKey(std::string& out, std::string_view key) {
  AppendJsonString(out, key);
  out.push_back(':');
}

void AppendJsonInt(std::string& out, std::string_view key, int64_t value) {
  AppendJsonKey(out, key);
  fmt::format_to(std::back_inserter(out), "{}", value);
}

// RFC 3339 in UTC with 'Z' and only as many fractional digits as needed, or null where RFC 3339
// has no spelling (infinite times, years outside 0000-9999). Written by hand rather than with
// absl::FormatTime because its %Y does not zero-pad years below 1000.
void AppendJsonTime(std::string& out, absl::Time t) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast() ||
      t < absl::FromCivil(absl::CivilSecond(0, 1, 1, 0, 0, 0), utc) ||
      t >= absl::FromCivil(absl::CivilSecond(10000, 1, 1, 0, 0, 0), utc)) {
    out.append("null");
    return;
  }
  const absl::CivilSecond cs = absl::ToCivilSecond(t, utc);
  // In [0, 1 s): ToCivilSecond rounds down, also before the epoch.
  int64_t nanos = absl::ToInt64Nanoseconds(t - absl::FromCivil(cs, utc));
  fmt::format_to(std::back_inserter(out), "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", cs.year(),
                 cs.month(), cs.day(), cs.hour(), cs.minute(), cs.second());
  if (nanos > 0) {
    int digits = 9;
    while (nanos % 10 == 0) {
      nanos /= 10;
      --digits;
    }
    fmt::format_to(std::back_inserter(out), ".{:0{}}", nanos, digits);
  }
  out.append("Z\"");
}

}  // namespace

double LatencySummary::MeanMillis() const {
  if (count <= 0) return 0.0;
  return static_cast<double>(sum_micros) / static_cast<double>(count) / 1000.0;
}

std::string ToPrometheusText(const MetricsSnapshot& snapshot) {
  std::string stream_label = "stream=\"";
  AppendPrometheusLabelValue(stream_label, snapshot.stream_name);
  stream_label.push_back('"');

  std::string out;
  out.reserve(10000 + snapshot.shards.size() * 1000);
  for (const StreamMetric& m : kStreamMetrics) {
    switch (m.kind) {
      case Kind::kCounter:
      case Kind::kGauge:
        AppendFamilyHeader(out, m.prometheus_name, m.kind == Kind::kCounter ? "counter" : "gauge",
                           m.help);
        AppendSample(out, m.prometheus_name, "", stream_label, snapshot.*m.value);
        break;
      case Kind::kLatency: {
        const LatencySummary& latency = snapshot.*m.latency;
        AppendFamilyHeader(out, m.prometheus_name, "summary", m.help);
        AppendSample(out, m.prometheus_name, "_sum", stream_label, latency.sum_micros);
        AppendSample(out, m.prometheus_name, "_count", stream_label, latency.count);
        const std::string max_name = fmt::format("{}_max", m.prometheus_name);
        AppendFamilyHeader(out, max_name, "gauge", m.max_help);
        AppendSample(out, max_name, "", stream_label, latency.max_micros);
        break;
      }
    }
  }

  if (snapshot.shards.empty()) return out;
  std::vector<std::string> shard_labels;
  shard_labels.reserve(snapshot.shards.size());
  for (const ShardMetrics& shard : snapshot.shards) {
    std::string labels = stream_label;
    labels.append(",shard_id=\"");
    AppendPrometheusLabelValue(labels, shard.shard_id.ToString());
    labels.push_back('"');
    shard_labels.push_back(std::move(labels));
  }
  for (const ShardMetric& m : kShardMetrics) {
    AppendFamilyHeader(out, m.prometheus_name, m.kind == Kind::kCounter ? "counter" : "gauge",
                       m.help);
    for (size_t i = 0; i < snapshot.shards.size(); ++i) {
      AppendSample(out, m.prometheus_name, "", shard_labels[i], snapshot.shards[i].*m.value);
    }
  }
  return out;
}

std::string ToJson(const MetricsSnapshot& snapshot) {
  std::string out;
  out.reserve(2000 + snapshot.shards.size() * 300);
  out.push_back('{');
  AppendJsonKey(out, "stream");
  AppendJsonString(out, snapshot.stream_name);
  out.push_back(',');
  AppendJsonKey(out, "taken_at");
  AppendJsonTime(out, snapshot.taken_at);

  out.push_back(',');
  AppendJsonKey(out, "metrics");
  out.push_back('{');
  bool first = true;
  for (const StreamMetric& m : kStreamMetrics) {
    if (!first) out.push_back(',');
    first = false;
    if (m.kind == Kind::kLatency) {
      const LatencySummary& latency = snapshot.*m.latency;
      AppendJsonKey(out, m.kinesis_name);
      out.push_back('{');
      AppendJsonInt(out, "count", latency.count);
      out.push_back(',');
      AppendJsonInt(out, "sum_micros", latency.sum_micros);
      out.push_back(',');
      AppendJsonInt(out, "max_micros", latency.max_micros);
      out.push_back('}');
    } else {
      AppendJsonInt(out, m.kinesis_name, snapshot.*m.value);
    }
  }
  out.push_back('}');

  out.push_back(',');
  AppendJsonKey(out, "shards");
  out.push_back('[');
  for (size_t i = 0; i < snapshot.shards.size(); ++i) {
    const ShardMetrics& shard = snapshot.shards[i];
    if (i > 0) out.push_back(',');
    out.push_back('{');
    AppendJsonKey(out, "ShardId");
    AppendJsonString(out, shard.shard_id.ToString());
    for (const ShardMetric& m : kShardMetrics) {
      out.push_back(',');
      AppendJsonInt(out, m.kinesis_name, shard.*m.value);
    }
    out.push_back('}');
  }
  out.append("]}");
  return out;
}

}  // namespace rill
