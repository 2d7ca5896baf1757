// DeliveryStream: what Kinesis Data Firehose does, in-process. Records come in (put directly, or
// read from a rill stream through a consumer group), are processed (decompression, a
// transformation function with the Lambda contract, JSON metadata extraction for dynamic
// partitioning, a newline appended), buffered per destination and per partition, compressed,
// and delivered to a destination (rill/deliver/destinations.h). What cannot be delivered goes to
// the error output, as Firehose's failed-record documents, never silently away.
//
// Data path (docs/delivery.md has the whole of it):
//
//   PutRecord(Batch) --> internal stream --+
//                                          +--> consumer group --> processors --> buffers
//   source stream --------------------------+    (checkpoints)       (per partition, hints)
//                                                                         |
//                  error output (files) <-- retries exhausted <-- destination.Deliver
//
// DirectPut records go through an internal rill stream (in memory, or durable in
// direct_put_directory), so that both kinds share one path: a source shard's checkpoint moves
// only past records that were delivered or written to the error output. A crash therefore loses
// nothing acknowledged (from a durable source): what was buffered is read again after the restart
// and delivered at least once (exactly once to PostgreSQL).
//
// Rounds. Poll() runs one round on the caller's thread: read the source (unless the buffers are
// full: a slow destination pushes back), process, deliver every buffer whose size or interval is
// reached (and retry failed deliveries whose backoff is over), write error output, checkpoint.
// Start() runs rounds on a thread, back to back while they read records, otherwise waiting on
// the clock between them (so a SimulatedClock makes every delivery happen exactly when the test
// advances the time). Flush() delivers everything buffered now, whatever the hints say.
//
// Example (DirectPut to gzip files, partitioned by a JSON field):
//   rill::DeliveryStreamOptions options;
//   options.name = "clicks";
//   options.destination = rill::ObjectStoreDestination{
//       .directory = "/data/bucket",
//       .prefix = "game=!{partitionKeyFromQuery:game}/!{timestamp:yyyy/MM/dd}/",
//       .error_output_prefix = "errors/!{firehose:error-output-type}/",
//       .compression = rill::CompressionFormat::kGzip};
//   options.processing.metadata_extraction = {{"game", ".game"}};
//   options.processing.append_delimiter = true;
//   auto firehose = rill::DeliveryStream::Create(std::move(options));
//   (*firehose)->Start();
//   (*firehose)->PutRecord(R"({"game":"chess","score":3})");
//
// Thread safety: every method is thread-safe. PutRecord(Batch) may be called from many threads
// while the delivery thread runs, and never waits for a delivery.
//
// Allocation: records are copied into arenas that grow in large steps and are reused from one
// buffer to the next, so a warm delivery stream does not allocate per record; PutRecordBatch
// allocates its result (one record id string per entry), and a transformation invocation its
// inputs. Memory is bounded by max_buffered_bytes (plus, for DirectPut, 32 MiB of records already
// read that its internal stream keeps).
#ifndef RILL_DELIVER_DELIVERY_STREAM_H_
#define RILL_DELIVER_DELIVERY_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "rill/base/clock.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/deliver/destinations.h"
#include "rill/deliver/transform.h"
#include "rill/stream/shard_iterator.h"

namespace rill {

class StreamApi;

// Firehose's limits for DirectPut.
inline constexpr size_t kMaxDeliveryRecordBytes = 1024000;  // 1,000 KiB
inline constexpr int kMaxPutRecordBatchEntries = 500;
inline constexpr size_t kMaxPutRecordBatchBytes = size_t{4} << 20;  // 4 MiB

using DeliveryDestination =
    std::variant<ObjectStoreDestination, PostgresDestination, HttpEndpointDestination,
                 StreamDestination, CallbackDestination>;

// Where records that could not be delivered go, for destinations other than the object store
// (which writes its error output under its own error_output_prefix): Firehose's S3 backup.
struct ErrorOutput {
  std::string directory;
  // Must contain !{firehose:error-output-type}; used as given (no time is appended, as for
  // Firehose's ErrorOutputPrefix). Default
  // "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/".
  std::string prefix = "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/";
  std::string custom_time_zone = "UTC";
};

struct DeliveryStreamOptions {
  // DeliveryStreamName: 1-64 characters of [a-zA-Z0-9_.-]. Required.
  std::string name;
  // The time every buffer, timestamp and retry is measured on. Default: the system clock.
  std::shared_ptr<Clock> clock = SystemClock::Default();

  // The source. Null: DirectPut (PutRecord / PutRecordBatch). Otherwise KinesisStreamAsSource:
  // the stream is read by a consumer group named after the delivery stream, with its leases and
  // checkpoints in `checkpoint_store` (required then); PutRecord is kInvalidArgument.
  // Both are borrowed and must outlive the delivery stream.
  StreamApi* source_stream = nullptr;
  CheckpointStore* checkpoint_store = nullptr;
  // Where a stream source starts the first time. Default LATEST (Firehose).
  StartingPosition starting_position = StartingPosition::Latest();

  // DirectPut only: a directory that keeps acknowledged records (a durable internal stream and
  // its checkpoints) until they are delivered, so that a process crash loses none. Empty: memory
  // only (a crash loses what was not yet delivered, as it would an in-memory stream's records).
  std::string direct_put_directory;

  ProcessingConfiguration processing;
  DeliveryDestination destination;
  // Required for every destination but ObjectStoreDestination.
  std::optional<ErrorOutput> error_output;

  // At most this many bytes of records are held unprocessed or buffered; beyond it the source is
  // not read (and DirectPut puts fail with kServiceUnavailable) until deliveries make room.
  // Must be at least the destination's buffer size. Default 256 MiB.
  size_t max_buffered_bytes = size_t{256} << 20;
  // Dynamic partitioning: buffers open at once; a record for a new partition beyond it goes to
  // the error output ("DynamicPartitioning.ActivePartitionsLimitExceeded"). Range 1-5000.
  // Default 500.
  int max_active_partitions = 500;
  // The region and account in ARNs. Defaults "local" and "000000000000".
  std::string region = "local";
  std::string account_id = "000000000000";
};

// One PutRecordBatch entry's answer: a record id, or an error.
struct PutRecordBatchResponseEntry {
  std::string record_id;   // empty when the entry failed
  std::string error_code;  // Firehose's name, e.g. "ServiceUnavailableException"
  std::string error_message;
};

struct PutRecordBatchResult {
  int failed_put_count = 0;
  std::vector<PutRecordBatchResponseEntry> request_responses;  // in the request's order
};

// Counters since creation, under Firehose's CloudWatch names (docs/delivery.md lists them).
struct DeliveryMetrics {
  std::string delivery_stream;
  absl::Time taken_at;
  // IncomingRecords / IncomingBytes: accepted by PutRecord(Batch), or read from the source
  // stream (DataReadFromKinesisStream.Records / .Bytes then count the same).
  int64_t incoming_records = 0;
  int64_t incoming_bytes = 0;
  int64_t incoming_put_requests = 0;
  // ThrottledRecords: records refused because the buffers were full (ServiceUnavailable).
  int64_t throttled_records = 0;
  // The destination's metrics: DeliveryTo<Destination>.Records / .Bytes / .Success (successful
  // deliveries) / .DataFreshness (age of the oldest undelivered record, ms; a gauge) — with
  // <Destination> one of S3, PostgreSQL, HttpEndpoint, Stream, Callback.
  std::string destination;  // "S3", ...
  int64_t delivery_records = 0;
  int64_t delivery_bytes = 0;     // before compression
  int64_t delivery_success = 0;   // delivery attempts that succeeded
  int64_t delivery_attempts = 0;  // rill's addition: all attempts, failed ones included
  int64_t data_freshness_ms = 0;
  // ExecuteProcessing.Success / .Duration (sum, ms), SucceedProcessing.Records / .Bytes.
  int64_t execute_processing_success = 0;
  int64_t execute_processing_failure = 0;  // rill's addition
  int64_t succeed_processing_records = 0;
  int64_t succeed_processing_bytes = 0;
  // Records dropped on purpose by the transformation (rill's addition).
  int64_t dropped_records = 0;
  // Error output: records written there, and errors writing it (rill's additions; Firehose
  // counts the latter under DeliveryToS3.Success of the backup).
  int64_t error_output_records = 0;
  int64_t error_output_failures = 0;
  // Partition buffers open now (rill's addition: ActivePartitionsLimitExceeded's context).
  int64_t active_partitions = 0;
  int64_t buffered_bytes = 0;
};

// Prometheus text (rill_firehose_* families, label delivery_stream="...") and one JSON line
// keyed by the Firehose names.
std::string ToPrometheusText(const DeliveryMetrics& metrics);
std::string ToJson(const DeliveryMetrics& metrics);

class DeliveryStream {
 public:
  // Validates the options and connects the destination (PostgreSQL: connects and checks the
  // table; object store: creates the directory and clears staging). Errors: kInvalidArgument for
  // bad options (the message names the field and the rule), kValidation for a value outside its
  // range, kResourceNotFound for a missing table, kResourceInUse for a locked direct_put_directory,
  // kInternalFailure for an unreachable destination.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<DeliveryStream>> Create(
      DeliveryStreamOptions options);
  // Flushes nothing and stops the thread; what is buffered is delivered after a restart (from a
  // durable source) — call Close() first for a graceful end.
  ~DeliveryStream();
  DeliveryStream(const DeliveryStream&) = delete;
  DeliveryStream& operator=(const DeliveryStream&) = delete;

  const std::string& name() const;
  // arn:aws:firehose:<region>:<account>:deliverystream/<name>
  const std::string& arn() const;

  // DirectPut. Returns the record id. Errors: kInvalidArgument for a record over 1,000 KiB or a
  // stream-sourced delivery stream, kServiceUnavailable when the buffers are full (retry later),
  // kResourceInUse after Close().
  [[nodiscard]] absl::StatusOr<std::string> PutRecord(std::string_view data);
  // Up to 500 records and 4 MiB: kInvalidArgument for more, or an empty batch. Entries fail on
  // their own (record too large, buffers full), as FailedPutCount and per-entry errors.
  [[nodiscard]] absl::StatusOr<PutRecordBatchResult> PutRecordBatch(
      absl::Span<const std::string_view> records);

  // One round (see the top of this file). Returns the first error of the round (a source read or
  // a checkpoint that failed); records are never dropped for it. kResourceInUse once started.
  absl::Status Poll();
  // Starts the delivery thread. kResourceInUse if already started or closed.
  [[nodiscard]] absl::Status Start();
  // Processes and delivers everything buffered now, DirectPut records put before the call
  // included however many (a retrying buffer gets one more attempt), then checkpoints. With the
  // thread running, waits until it has done so. Returns the first delivery error of what it
  // flushed (those records stay queued for retry, or went to the error output if their retries
  // are over).
  absl::Status Flush();
  // Waits for puts under way (they are short), then stops reading, flushes (as Flush: everything
  // put before included), checkpoints and stops the thread. Puts fail afterwards with
  // kResourceInUse.
  absl::Status Close();

  DeliveryMetrics metrics() const;

 private:
  class Impl;
  explicit DeliveryStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rill

#endif  // RILL_DELIVER_DELIVERY_STREAM_H_
