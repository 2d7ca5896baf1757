// The transformation contract of a delivery stream (Firehose's data-transformation Lambda), and the
// other record processors a delivery stream can run before its destination.
//
// A TransformFunction is called with a batch of records (an "invocation") and must answer for
// every one of them, by record id:
//   - kOk: the record is replaced by `data` (which may be empty) and delivered;
//   - kDropped: the record is removed on purpose; it counts as a success;
//   - kProcessingFailed: the record goes to the error output ("processing-failed").
// A returned error status, a record id that is missing, unknown or repeated, or an unknown result
// fails the whole invocation. A failed invocation is retried number_of_retries times; then every
// record of the batch goes to the error output with the last failure's error code and message.
//
// Example (upper-cases each record and partitions by its first byte):
//   rill::TransformFunction upper = [](const rill::TransformInvocation& invocation)
//       -> absl::StatusOr<std::vector<rill::TransformedRecord>> {
//     std::vector<rill::TransformedRecord> out;
//     for (const rill::TransformInput& in : invocation.records) {
//       rill::TransformedRecord& t = out.emplace_back();
//       t.record_id = std::string(in.record_id);
//       t.result = rill::TransformResult::kOk;
//       t.data = absl::AsciiStrToUpper(in.data);
//       t.partition_keys = {{"first", t.data.substr(0, 1)}};
//     }
//     return out;
//   };
//
// Thread safety: a delivery stream calls its function from its delivery thread only, one
// invocation at a time. The views in a TransformInvocation are valid during the call only.
#ifndef RILL_DELIVER_TRANSFORM_H_
#define RILL_DELIVER_TRANSFORM_H_

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace rill {

enum class TransformResult { kOk, kDropped, kProcessingFailed };

// One record of an invocation (Firehose's records[]: recordId, approximateArrivalTimestamp, data,
// and kinesisRecordMetadata when the source is a stream).
struct TransformInput {
  std::string_view record_id;
  absl::Time approximate_arrival_timestamp;
  std::string_view data;
  // From a stream source: the record's partition key, shard id and sequence number (decimal);
  // empty for DirectPut.
  std::string_view partition_key;
  std::string_view shard_id;
  std::string_view sequence_number;
};

struct TransformInvocation {
  // A fresh id per invocation (a retry is a new invocation, as Lambda's are).
  std::string_view invocation_id;
  // arn:aws:firehose:<region>:<account>:deliverystream/<name>
  std::string_view delivery_stream_arn;
  absl::Span<const TransformInput> records;
};

struct TransformedRecord {
  std::string record_id;
  TransformResult result = TransformResult::kOk;
  std::string data;
  // metadata.partitionKeys, for !{partitionKeyFromLambda:<key>} in the prefix.
  std::vector<std::pair<std::string, std::string>> partition_keys;
};

using TransformFunction = std::function<absl::StatusOr<std::vector<TransformedRecord>>(
    const TransformInvocation& invocation)>;

// !{partitionKeyFromQuery:<name>} = the value at `query` in the record's JSON (MetadataExtraction).
// `query` is a jq path subset: "." then field names separated by '.', e.g. ".customer.id";
// a name may be quoted (."a b".c). The value must be a string, number or boolean (strings
// unquoted, numbers and booleans as JSON writes them); a missing field, another type, or a record
// that is not JSON sends the record to the error output
// ("DynamicPartitioning.MetadataExtractionFailed").
struct MetadataExtractionQuery {
  std::string name;
  std::string query;
};

// The record processors, run in Firehose's order: Decompression, then the Lambda, then
// MetadataExtraction, then AppendDelimiterToRecord.
struct ProcessingConfiguration {
  // Decompression: each record is gzip (one or more members) and is inflated first. A record that
  // does not inflate goes to the error output ("Decompression.Failed").
  bool decompress_gzip = false;

  // The Lambda. Empty: no transformation.
  TransformFunction transform;
  // Its ARN as the error output names it (lambdaArn). Default:
  // "arn:aws:lambda:local:000000000000:function:transform".
  std::string lambda_arn = "arn:aws:lambda:local:000000000000:function:transform";
  // Retries of a failed invocation. Range 0..300. Default 3 (Firehose).
  int number_of_retries = 3;
  // The processor's buffer: an invocation gets at most this many bytes of records (at least one
  // record), and records wait at most buffer_interval for one. Ranges (Firehose): 0.2-3 MB,
  // 60-900 s. Defaults: 1 MiB and 60 s. (With no transform, records are processed as they come.)
  size_t buffer_size_bytes = size_t{1} << 20;
  absl::Duration buffer_interval = absl::Seconds(60);

  // MetadataExtraction: partition keys from each record's JSON. Needs dynamic partitioning (a
  // prefix that uses !{partitionKeyFromQuery:...}).
  std::vector<MetadataExtractionQuery> metadata_extraction;

  // AppendDelimiterToRecord: appends "\n" to each record.
  bool append_delimiter = false;
};

}  // namespace rill

#endif  // RILL_DELIVER_TRANSFORM_H_
