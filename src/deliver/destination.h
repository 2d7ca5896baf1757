// The seam between a delivery stream's core (buffers, retries, error output, checkpoints) and
// its destinations. A destination makes one attempt per Deliver() call; the core decides when to
// retry, when to give up and what goes to the error output.
#ifndef RILL_SRC_DELIVER_DESTINATION_H_
#define RILL_SRC_DELIVER_DESTINATION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"

namespace rill::deliver_internal {

// One record of a batch. Its data is batch.arena[offset, offset + size).
struct BatchRecord {
  uint64_t offset = 0;
  uint32_t size = 0;
  absl::Time arrival;
  // The source record it came from: its shard and sequence number (of the internal stream for
  // DirectPut). Records of one shard are in sequence-number order within a batch, and a later
  // batch of the same destination holds only later records of that shard (without dynamic
  // partitioning), which PostgreSQL's exactly-once progress relies on.
  ShardId shard;
  SequenceNumber sequence_number;
  // Index into the core's checkpoint tracking; destinations ignore it.
  uint64_t ticket = 0;
  // The record id (DirectPut's answer, the Lambda's recordId): batch.ids[id_offset, +id_size).
  uint32_t id_offset = 0;
  uint16_t id_size = 0;
  // The source record's partition key (stream source; empty for DirectPut):
  // batch.ids[key_offset, +key_size).
  uint32_t key_offset = 0;
  uint16_t key_size = 0;
};

// A buffer to deliver: records of one partition (the same partition keys), in arrival order.
struct Batch {
  // Unique per batch and stable across its retries (HTTP: the request id). A GUID.
  std::string delivery_id;
  // Dynamic partitioning's keys of this buffer (name, value), empty without it.
  std::vector<std::pair<std::string, std::string>> partition_keys;
  // The approximate arrival time of the oldest record: object keys are named after it.
  absl::Time oldest_arrival;
  std::string arena;  // record data, back to back
  std::string ids;    // record ids and partition keys, back to back
  std::vector<BatchRecord> records;

  std::string_view data(const BatchRecord& r) const {
    return std::string_view(arena).substr(r.offset, r.size);
  }
  std::string_view record_id(const BatchRecord& r) const {
    return std::string_view(ids).substr(r.id_offset, r.id_size);
  }
  std::string_view partition_key(const BatchRecord& r) const {
    return std::string_view(ids).substr(r.key_offset, r.key_size);
  }
  // Bytes of record data: what buffering hints count (before compression).
  uint64_t bytes() const { return arena.size(); }
};

enum class AttemptResult {
  kDelivered,
  // Try again after a backoff, until the destination's retry duration is over.
  kRetryable,
  // Do not retry (HTTP 413, a row the table refuses): error output at once.
  kPermanent,
};

struct DeliveryAttempt {
  AttemptResult result = AttemptResult::kDelivered;
  // For the error output's errorCode / errorMessage, e.g. "HttpEndpoint.ResponseCode" /
  // "The response received from the endpoint ... 503".
  std::string error_code;
  std::string error_message;
  // Records the destination refused one by one while it delivered the others (PostgreSQL: a row
  // the table rejects; a stream: a record too large for it): (index into batch.records, reason).
  // The core acts on the list of the attempt that ends the batch (kDelivered, or the one after
  // which it gives up), so a destination that resumes a batch across attempts reports every
  // refusal of the batch so far. Each goes to the error output with rejected_error_code and its
  // reason, once; none of them is delivered.
  std::vector<std::pair<size_t, std::string>> rejected;
  // The errorCode of the rejected records, e.g. "PostgreSQL.DataError".
  std::string rejected_error_code;
  // For kRetryable and kPermanent: how many of the batch's first records reached the destination
  // (earlier attempts included), for a destination that delivers record by record and resumes
  // where it stopped. When the core gives up, those count as delivered and only the others go to
  // the error output. 0 for a destination that delivers a batch as a whole or not at all.
  size_t delivered = 0;

  static DeliveryAttempt Delivered() { return {}; }
  static DeliveryAttempt Retryable(std::string code, std::string message) {
    return {AttemptResult::kRetryable, std::move(code), std::move(message), {}, {}, 0};
  }
  static DeliveryAttempt Permanent(std::string code, std::string message) {
    return {AttemptResult::kPermanent, std::move(code), std::move(message), {}, {}, 0};
  }
};

class Destination {
 public:
  virtual ~Destination() = default;
  // Connects, creates what it needs, checks what must exist. Called once, before any Deliver.
  // An error fails DeliveryStream::Create with it.
  virtual absl::Status Open() { return absl::OkStatus(); }
  // The metric name's middle: DeliveryTo<metric_name()>.Records ("S3", "HttpEndpoint",
  // "PostgreSQL", "Stream", "Callback").
  virtual std::string_view metric_name() const = 0;
  // !{firehose:error-output-type} of the records it gives up on ("http-endpoint-failed", ...).
  virtual std::string_view error_output_type() const = 0;
  // How long the core retries kRetryable attempts of one batch before the error output.
  // absl::InfiniteDuration(): never gives up (the object store: its error output is itself).
  virtual absl::Duration retry_duration() const = 0;
  // One attempt to deliver the whole batch; `attempt` counts from 1. Called from the delivery
  // thread only, one call at a time. Must not keep references into `batch`.
  virtual DeliveryAttempt Deliver(const Batch& batch, int attempt) = 0;
};

}  // namespace rill::deliver_internal

#endif  // RILL_SRC_DELIVER_DESTINATION_H_
