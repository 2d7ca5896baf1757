#include "cli/metrics_file.h"

#include <cstdint>
#include <string>

#include <simdjson.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "cli/common.h"
#include "storage/file_util.h"

namespace rill::cli {
namespace {

// The names ToJson writes (rill/metrics/metrics.h), mapped back to the snapshot's fields.
struct CounterField {
  std::string_view name;
  int64_t MetricsSnapshot::*field;
};
constexpr CounterField kStreamCounters[] = {
    {"IncomingBytes", &MetricsSnapshot::incoming_bytes},
    {"IncomingRecords", &MetricsSnapshot::incoming_records},
    {"OutgoingBytes", &MetricsSnapshot::outgoing_bytes},
    {"OutgoingRecords", &MetricsSnapshot::outgoing_records},
    {"PutRecord.Success", &MetricsSnapshot::put_record_success},
    {"PutRecord.Failure", &MetricsSnapshot::put_record_failure},
    {"PutRecords.Success", &MetricsSnapshot::put_records_success},
    {"PutRecords.TotalRecords", &MetricsSnapshot::put_records_total_records},
    {"PutRecords.SuccessfulRecords", &MetricsSnapshot::put_records_successful_records},
    {"PutRecords.FailedRecords", &MetricsSnapshot::put_records_failed_records},
    {"PutRecords.ThrottledRecords", &MetricsSnapshot::put_records_throttled_records},
    {"GetRecords.Success", &MetricsSnapshot::get_records_success},
    {"GetRecords.Records", &MetricsSnapshot::get_records_records},
    {"GetRecords.Bytes", &MetricsSnapshot::get_records_bytes},
    {"GetRecords.IteratorAgeMilliseconds", &MetricsSnapshot::iterator_age_milliseconds},
    {"WriteProvisionedThroughputExceeded", &MetricsSnapshot::write_provisioned_throughput_exceeded},
    {"ReadProvisionedThroughputExceeded", &MetricsSnapshot::read_provisioned_throughput_exceeded},
    {"MemoryBytes", &MetricsSnapshot::memory_bytes},
    {"MemoryBudgetExceeded", &MetricsSnapshot::memory_budget_exceeded},
    {"RetiredRecords", &MetricsSnapshot::retired_records},
    {"RetiredBytes", &MetricsSnapshot::retired_bytes},
};
struct LatencyField {
  std::string_view name;
  LatencySummary MetricsSnapshot::*field;
};
constexpr LatencyField kLatencies[] = {
    {"PutRecord.Latency", &MetricsSnapshot::put_record_latency},
    {"PutRecords.Latency", &MetricsSnapshot::put_records_latency},
    {"GetRecords.Latency", &MetricsSnapshot::get_records_latency},
};
struct ShardField {
  std::string_view name;
  int64_t ShardMetrics::*field;
};
constexpr ShardField kShardCounters[] = {
    {"IncomingBytes", &ShardMetrics::incoming_bytes},
    {"IncomingRecords", &ShardMetrics::incoming_records},
    {"OutgoingBytes", &ShardMetrics::outgoing_bytes},
    {"OutgoingRecords", &ShardMetrics::outgoing_records},
    {"WriteProvisionedThroughputExceeded", &ShardMetrics::write_provisioned_throughput_exceeded},
    {"ReadProvisionedThroughputExceeded", &ShardMetrics::read_provisioned_throughput_exceeded},
    {"IteratorAgeMilliseconds", &ShardMetrics::iterator_age_milliseconds},
};

absl::Status Bad(std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrFormat("not a rill metrics snapshot: %s", std::string(what)));
}

}  // namespace

absl::StatusOr<MetricsSnapshot> ParseMetricsJson(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) {
    return Bad("invalid JSON");
  }
  simdjson::dom::object object;
  if (root.get(object) != simdjson::SUCCESS) return Bad("not an object");
  MetricsSnapshot snapshot;
  std::string_view name;
  if (object["stream"].get(name) != simdjson::SUCCESS) return Bad("no \"stream\"");
  snapshot.stream_name = std::string(name);
  simdjson::dom::element taken_at;
  if (object["taken_at"].get(taken_at) != simdjson::SUCCESS) return Bad("no \"taken_at\"");
  if (taken_at.is_null()) {
    snapshot.taken_at = absl::InfinitePast();
  } else {
    std::string_view text;
    std::string error;
    if (taken_at.get(text) != simdjson::SUCCESS ||
        !absl::ParseTime(absl::RFC3339_full, absl::string_view(text.data(), text.size()),
                         &snapshot.taken_at, &error)) {
      return Bad("\"taken_at\" is not an RFC 3339 time");
    }
  }
  simdjson::dom::object metrics;
  if (object["metrics"].get(metrics) != simdjson::SUCCESS) return Bad("no \"metrics\" object");
  for (const CounterField& f : kStreamCounters) {
    int64_t value = 0;
    const simdjson::error_code e = metrics[f.name].get(value);
    if (e == simdjson::SUCCESS) {
      snapshot.*f.field = value;
    } else if (e != simdjson::NO_SUCH_FIELD) {
      return Bad(absl::StrFormat("\"%s\" is not an integer", std::string(f.name)));
    }
  }
  for (const LatencyField& f : kLatencies) {
    simdjson::dom::object latency;
    const simdjson::error_code e = metrics[f.name].get(latency);
    if (e == simdjson::NO_SUCH_FIELD) continue;
    if (e != simdjson::SUCCESS)
      return Bad(absl::StrFormat("\"%s\" is not an object", std::string(f.name)));
    LatencySummary& out = snapshot.*f.field;
    if (latency["count"].get(out.count) != simdjson::SUCCESS ||
        latency["sum_micros"].get(out.sum_micros) != simdjson::SUCCESS ||
        latency["max_micros"].get(out.max_micros) != simdjson::SUCCESS) {
      return Bad(
          absl::StrFormat("\"%s\" lacks count, sum_micros or max_micros", std::string(f.name)));
    }
  }
  simdjson::dom::array shards;
  if (object["shards"].get(shards) != simdjson::SUCCESS) return Bad("no \"shards\" array");
  for (simdjson::dom::element element : shards) {
    simdjson::dom::object shard;
    std::string_view id;
    if (element.get(shard) != simdjson::SUCCESS || shard["ShardId"].get(id) != simdjson::SUCCESS) {
      return Bad("a shard without \"ShardId\"");
    }
    absl::StatusOr<ShardId> parsed = ShardId::Parse(id);
    if (!parsed.ok()) return Bad("a malformed \"ShardId\"");
    ShardMetrics m;
    m.shard_id = *parsed;
    for (const ShardField& f : kShardCounters) {
      int64_t value = 0;
      const simdjson::error_code e = shard[f.name].get(value);
      if (e == simdjson::SUCCESS) {
        m.*f.field = value;
      } else if (e != simdjson::NO_SUCH_FIELD) {
        return Bad(absl::StrFormat("shard \"%s\" is not an integer", std::string(f.name)));
      }
    }
    snapshot.shards.push_back(m);
  }
  return snapshot;
}

absl::StatusOr<MetricsFile> ReadMetricsFile(const std::string& dir) {
  const std::string path = dir + "/METRICS";
  absl::StatusOr<std::string> text = internal::ReadFile(path);
  if (absl::IsNotFound(text.status())) {
    return Failure(kExitNotFound,
                   absl::StrFormat("no metrics for the stream in %s: no process has written %s "
                                   "yet (the process that holds the stream writes it about once "
                                   "a second while it runs, and when it closes the stream)",
                                   dir, path));
  }
  if (!text.ok()) return Failure(kExitError, text.status().message());
  MetricsFile file;
  file.line = std::string(absl::StripTrailingAsciiWhitespace(*text));
  absl::StatusOr<MetricsSnapshot> snapshot = ParseMetricsJson(file.line);
  if (!snapshot.ok()) {
    return Failure(kExitError, absl::StrFormat("%s: %s", path, snapshot.status().message()));
  }
  file.snapshot = *std::move(snapshot);
  return file;
}

}  // namespace rill::cli
