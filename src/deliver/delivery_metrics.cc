// DeliveryMetrics as Prometheus text and JSON, in the shape of rill's stream metrics
// (rill/metrics/metrics.h): Prometheus families rill_firehose_<snake_case>, JSON keyed by
// Firehose's CloudWatch names.
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "rill/deliver/delivery_stream.h"

namespace rill {
namespace {

struct Metric {
  const char* cloudwatch;  // Firehose's name; "%s" is the destination's
  const char* prometheus;  // the family after rill_firehose_
  const char* help;
  bool counter;
  int64_t DeliveryMetrics::*field;
};

constexpr Metric kMetrics[] = {
    {"IncomingRecords", "incoming_records_total", "Records accepted or read from the source.", true,
     &DeliveryMetrics::incoming_records},
    {"IncomingBytes", "incoming_bytes_total", "Bytes accepted or read from the source.", true,
     &DeliveryMetrics::incoming_bytes},
    {"IncomingPutRequests", "incoming_put_requests_total", "PutRecord and PutRecordBatch calls.",
     true, &DeliveryMetrics::incoming_put_requests},
    {"ThrottledRecords", "throttled_records_total",
     "Records refused because the buffers were full.", true, &DeliveryMetrics::throttled_records},
    {"DeliveryTo%s.Records", "delivery_records_total", "Records delivered to the destination.",
     true, &DeliveryMetrics::delivery_records},
    {"DeliveryTo%s.Bytes", "delivery_bytes_total",
     "Bytes delivered to the destination (before compression).", true,
     &DeliveryMetrics::delivery_bytes},
    {"DeliveryTo%s.Success", "delivery_success_total", "Successful deliveries (buffers).", true,
     &DeliveryMetrics::delivery_success},
    {"DeliveryTo%s.Attempts", "delivery_attempts_total",
     "Delivery attempts, failed ones included (rill's addition).", true,
     &DeliveryMetrics::delivery_attempts},
    {"DeliveryTo%s.DataFreshness", "delivery_data_freshness_milliseconds",
     "Age of the oldest record not yet delivered.", false, &DeliveryMetrics::data_freshness_ms},
    {"ExecuteProcessing.Success", "execute_processing_success_total",
     "Transformation invocations that succeeded.", true,
     &DeliveryMetrics::execute_processing_success},
    {"ExecuteProcessing.Failure", "execute_processing_failure_total",
     "Transformation invocations that failed (rill's addition).", true,
     &DeliveryMetrics::execute_processing_failure},
    {"SucceedProcessing.Records", "succeed_processing_records_total",
     "Records the transformation returned Ok.", true, &DeliveryMetrics::succeed_processing_records},
    {"SucceedProcessing.Bytes", "succeed_processing_bytes_total",
     "Bytes of records the transformation returned Ok.", true,
     &DeliveryMetrics::succeed_processing_bytes},
    {"DroppedRecords", "dropped_records_total",
     "Records the transformation dropped (rill's addition).", true,
     &DeliveryMetrics::dropped_records},
    {"ErrorOutput.Records", "error_output_records_total",
     "Records written to the error output (rill's addition).", true,
     &DeliveryMetrics::error_output_records},
    {"ErrorOutput.Failures", "error_output_failures_total",
     "Failed writes of the error output (rill's addition).", true,
     &DeliveryMetrics::error_output_failures},
    {"PartitionCount", "partition_count", "Partition buffers open now.", false,
     &DeliveryMetrics::active_partitions},
    {"BufferedBytes", "buffered_bytes", "Bytes held in buffers now (rill's addition).", false,
     &DeliveryMetrics::buffered_bytes},
};

std::string CloudWatchName(const Metric& m, const std::string& destination) {
  std::string name = m.cloudwatch;
  const size_t at = name.find("%s");
  if (at != std::string::npos) name.replace(at, 2, destination);
  return name;
}

// A JSON string (or a Prometheus label value: the same escapes for '"', '\\' and newline).
void AppendQuoted(std::string* out, const std::string& s, bool json) {
  out->push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out->append("\\n");
    } else if (json && (c < 0x20 || c == 0x7f)) {
      static constexpr char kHex[] = "0123456789abcdef";
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xf]);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  out->push_back('"');
}

}  // namespace

std::string ToPrometheusText(const DeliveryMetrics& metrics) {
  std::string out;
  std::string labels = "{delivery_stream=";
  AppendQuoted(&labels, metrics.delivery_stream, false);
  labels.append(",destination=");
  AppendQuoted(&labels, metrics.destination, false);
  labels.push_back('}');
  for (const Metric& m : kMetrics) {
    const std::string family = absl::StrCat("rill_firehose_", m.prometheus);
    absl::StrAppend(&out, "# HELP ", family, " ", m.help,
                    " (Firehose: ", CloudWatchName(m, metrics.destination), ").\n");
    absl::StrAppend(&out, "# TYPE ", family, " ", m.counter ? "counter" : "gauge", "\n");
    absl::StrAppend(&out, family, labels, " ", metrics.*(m.field), "\n");
  }
  return out;
}

std::string ToJson(const DeliveryMetrics& metrics) {
  std::string out = "{\"delivery_stream\":";
  AppendQuoted(&out, metrics.delivery_stream, true);
  out.append(",\"destination\":");
  AppendQuoted(&out, metrics.destination, true);
  out.append(",\"taken_at\":");
  if (metrics.taken_at == absl::InfiniteFuture() || metrics.taken_at == absl::InfinitePast()) {
    out.append("null");
  } else {
    AppendQuoted(&out,
                 absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", metrics.taken_at, absl::UTCTimeZone()),
                 true);
  }
  out.append(",\"metrics\":{");
  bool first = true;
  for (const Metric& m : kMetrics) {
    if (!first) out.push_back(',');
    first = false;
    AppendQuoted(&out, CloudWatchName(m, metrics.destination), true);
    absl::StrAppend(&out, ":", metrics.*(m.field));
  }
  out.append("}}");
  return out;
}

}  // namespace rill
