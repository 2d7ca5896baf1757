// Metrics: a stream's counters and gauges under Kinesis' CloudWatch metric names, as a snapshot
// value, and its exposition as Prometheus text or JSON.
//
// A stream counts with relaxed atomics as it works and hands out a MetricsSnapshot on request:
// plain values, copied at one moment (taken_at, on the stream's Clock). Counters are cumulative
// since the stream was created and never go down; gauges (iterator age, latency maxima) are as of
// the snapshot. ToPrometheusText() and ToJson() turn a snapshot into text for a scrape endpoint,
// a log line or a test.
//
// Example:
//   rill::MetricsSnapshot snapshot = stream->metrics();
//   snapshot.incoming_records;                  // records put so far
//   snapshot.put_record_latency.MeanMillis();   // mean PutRecord latency
//   std::string text = rill::ToPrometheusText(snapshot);
//   // # HELP rill_incoming_records_total Records successfully put ... (Kinesis: IncomingRecords).
//   // # TYPE rill_incoming_records_total counter
//   // rill_incoming_records_total{stream="clicks"} 1234
//   std::string json = rill::ToJson(snapshot);
//   // {"stream":"clicks","taken_at":"2024-01-01T00:00:00Z","metrics":{"IncomingBytes":...},
//   //  "shards":[{"ShardId":"shardId-000000000000","IncomingBytes":...}]}
//
// Thread safety: the structs are plain values; copy them freely. ToPrometheusText() and ToJson()
// are pure functions, safe to call from any thread; each allocates its result.
#ifndef RILL_METRICS_METRICS_H_
#define RILL_METRICS_METRICS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "rill/base/shard_id.h"

namespace rill {

// Count, sum and maximum of one operation's latencies, in microseconds, measured on the stream's
// Clock (so a SimulatedClock that does not move between start and end reports 0). Kinesis
// reports these as PutRecord.Latency etc. in milliseconds; rill keeps microseconds, exactly.
struct LatencySummary {
  // Operations measured.
  int64_t count = 0;
  // Their latencies added up, in microseconds.
  int64_t sum_micros = 0;
  // The largest one, in microseconds; 0 when count is 0.
  int64_t max_micros = 0;

  // sum_micros / count in milliseconds (Kinesis' unit); 0 when count is 0.
  double MeanMillis() const;

  friend bool operator==(const LatencySummary&, const LatencySummary&) = default;
};

// One shard's metrics, under Kinesis' shard-level names (the ones EnableEnhancedMonitoring turns
// on). All counters are cumulative since the shard was created.
struct ShardMetrics {
  ShardId shard_id;
  // IncomingBytes: bytes (partition key plus data) of records successfully put to this shard.
  int64_t incoming_bytes = 0;
  // IncomingRecords: records successfully put to this shard.
  int64_t incoming_records = 0;
  // OutgoingBytes: bytes (partition key plus data) of records returned from this shard.
  int64_t outgoing_bytes = 0;
  // OutgoingRecords: records returned from this shard.
  int64_t outgoing_records = 0;
  // WriteProvisionedThroughputExceeded: records refused by this shard's write limits.
  int64_t write_provisioned_throughput_exceeded = 0;
  // ReadProvisionedThroughputExceeded: GetRecords calls refused by this shard's read limits.
  int64_t read_provisioned_throughput_exceeded = 0;
  // IteratorAgeMilliseconds: of the last GetRecords on this shard, now minus the arrival time of
  // the last record it returned; 0 when that call was caught up. A gauge.
  int64_t iterator_age_milliseconds = 0;

  friend bool operator==(const ShardMetrics&, const ShardMetrics&) = default;
};

// A stream's metrics at one moment. Each field names the Kinesis metric it carries; the ones that
// Kinesis does not have are marked "rill's addition".
struct MetricsSnapshot {
  // The stream's name.
  std::string stream_name;
  // When the snapshot was taken, on the stream's Clock.
  absl::Time taken_at;

  // IncomingBytes, IncomingRecords: successfully put by PutRecord and PutRecords.
  int64_t incoming_bytes = 0;
  int64_t incoming_records = 0;
  // OutgoingBytes, OutgoingRecords: returned by GetRecords (and, later, subscriptions).
  int64_t outgoing_bytes = 0;
  int64_t outgoing_records = 0;

  // PutRecord.Success: PutRecord calls that wrote their record.
  int64_t put_record_success = 0;
  // PutRecord calls that returned an error. rill's addition: Kinesis gives this only as the
  // complement of PutRecord.Success's average.
  int64_t put_record_failure = 0;
  // PutRecords.Success: PutRecords calls that wrote at least one record.
  int64_t put_records_success = 0;
  // PutRecords.TotalRecords: entries in PutRecords calls, written or not.
  int64_t put_records_total_records = 0;
  // PutRecords.SuccessfulRecords: entries written.
  int64_t put_records_successful_records = 0;
  // PutRecords.FailedRecords: entries that failed for any reason other than throttling.
  int64_t put_records_failed_records = 0;
  // PutRecords.ThrottledRecords: entries refused by a shard's write limits.
  int64_t put_records_throttled_records = 0;

  // GetRecords.Success: GetRecords calls that returned a result (possibly empty).
  int64_t get_records_success = 0;
  // GetRecords.Records, GetRecords.Bytes: records and bytes those calls returned.
  int64_t get_records_records = 0;
  int64_t get_records_bytes = 0;

  // WriteProvisionedThroughputExceeded: records refused by write limits (PutRecord and
  // PutRecords).
  int64_t write_provisioned_throughput_exceeded = 0;
  // ReadProvisionedThroughputExceeded: GetRecords calls refused by read limits.
  int64_t read_provisioned_throughput_exceeded = 0;
  // GetRecords.IteratorAgeMilliseconds: the largest iterator_age_milliseconds over the shards.
  // A gauge.
  int64_t iterator_age_milliseconds = 0;

  // MemoryBytes: bytes of record chunks the stream holds in memory (Stream::MemoryBytes()). A
  // gauge. rill's addition.
  int64_t memory_bytes = 0;
  // MemoryBudgetExceeded: records refused because the stream's memory budget was used up
  // (MemoryLimitPolicy::kRejectPuts), by PutRecord and PutRecords; PutRecords' refused entries
  // also count as PutRecords.ThrottledRecords, since their error is the throttling one. rill's
  // addition.
  int64_t memory_budget_exceeded = 0;
  // RetiredRecords, RetiredBytes: records (and their key plus data bytes) retired before their
  // retention period to keep the stream within its memory budget
  // (MemoryLimitPolicy::kRetireOldest). rill's addition.
  int64_t retired_records = 0;
  int64_t retired_bytes = 0;

  // PutRecord.Latency, PutRecords.Latency, GetRecords.Latency: time per call. A stream may
  // measure only a sample of the calls; count says how many were measured.
  LatencySummary put_record_latency;
  LatencySummary put_records_latency;
  LatencySummary get_records_latency;

  // Shard-level metrics, in shard-id order.
  std::vector<ShardMetrics> shards;

  friend bool operator==(const MetricsSnapshot&, const MetricsSnapshot&) = default;
};

// The snapshot in the Prometheus text exposition format, version 0.0.4 (serve it as
// "text/plain; version=0.0.4; charset=utf-8"). Each metric family is one block: a "# HELP" line,
// a "# TYPE" line, then its samples; lines end with "\n". Names are "rill_" and the snake_case of
// the Kinesis name; every sample has the label stream="<stream_name>".
//   - Counters end in _total: IncomingBytes is rill_incoming_bytes_total, PutRecord.Success
//     rill_put_record_success_total.
//   - GetRecords.IteratorAgeMilliseconds is the gauge rill_get_records_iterator_age_milliseconds.
//   - PutRecord.Latency is the summary rill_put_record_latency_microseconds (samples _sum and
//     _count, no quantiles) and the gauge rill_put_record_latency_microseconds_max.
//   - Shard-level metrics are their own families, rill_shard_incoming_bytes_total and so on, with
//     the extra label shard_id="shardId-000000000000". (Kinesis reuses the stream-level names with
//     one more dimension; in Prometheus that would make sum() over a family count every record
//     twice.) With no shards, the shard-level families are left out.
// Label values escape backslash, double quote and newline as the format requires; bytes that are
// not valid UTF-8 become U+FFFD. Values are integers, printed exactly. No sample timestamps: the
// scraper's time is used, as the format recommends for live metrics.
std::string ToPrometheusText(const MetricsSnapshot& snapshot);

// The snapshot as one line of JSON (no trailing newline):
//   {"stream": "<stream_name>",
//    "taken_at": "2024-01-01T00:00:00.25Z",           (RFC 3339, UTC; null when taken_at is
//                                                       infinite or outside years 0000-9999)
//    "metrics": {"IncomingBytes": 1, ..., "PutRecord.Failure": 0, ..., "RetiredBytes": 0,
//                "PutRecord.Latency": {"count": 3, "sum_micros": 30, "max_micros": 20}, ...},
//    "shards": [{"ShardId": "shardId-000000000000", "IncomingBytes": 1, ...,
//                "IteratorAgeMilliseconds": 0}, ...]}
// "metrics" is keyed by Kinesis' exact metric names ("PutRecord.Failure", "MemoryBytes",
// "MemoryBudgetExceeded", "RetiredRecords" and "RetiredBytes" are rill's additions);
// integers are printed exactly. Strings escape '"' and '\\' and write every control character
// (U+0000-U+001F and U+007F) as \u00XX; bytes that are not valid UTF-8 become U+FFFD.
std::string ToJson(const MetricsSnapshot& snapshot);

}  // namespace rill

#endif  // RILL_METRICS_METRICS_H_
