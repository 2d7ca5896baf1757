// Enhanced fan-out: registered consumers and their push subscriptions to shards.
//
// A consumer registered on a stream (Stream::RegisterStreamConsumer) subscribes to a shard with
// Stream::SubscribeToShard and receives SubscribeToShardEvents as records arrive, with its own
// read throughput per shard, independent of GetRecords readers and of other consumers. Events are
// pulled with Next(timeout) (blocking, woken the moment a record is appended) or TryNext(), or
// pushed to callbacks by a rill::Dispatcher (rill/consume/dispatcher.h).
//
// Example:
//   auto consumer = stream->RegisterStreamConsumer("dashboard");
//   auto sub = stream->SubscribeToShard("dashboard", shard, rill::StartingPosition::Latest());
//   for (;;) {
//     absl::StatusOr<std::optional<rill::SubscribeToShardEvent>> event =
//         (*sub)->Next(absl::Milliseconds(100));
//     if (!event.ok()) break;                    // taken over, or the consumer was deregistered
//     if (!*event) {
//       if (!(*sub)->active()) break;            // lifetime over: resubscribe from continuation
//       continue;                                // nothing yet
//     }
//     for (const rill::Record& r : (*event)->records) { ... }
//     if (!(*event)->continuation_sequence_number) break;  // shard ended: see child_shards
//   }
//
// A subscription reads the shard's log directly: a slow or stalled subscriber holds no buffer and
// never slows producers or other subscribers; it falls behind and catches up from the log.
//
// Thread safety: a Subscription is used by one thread at a time (Next/TryNext), except Cancel()
// and active(), which any thread may call. It must not outlive its stream.
#ifndef RILL_STREAM_SUBSCRIPTION_H_
#define RILL_STREAM_SUBSCRIPTION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/stream/record.h"
#include "rill/stream/shard_description.h"

namespace rill {

namespace internal {
class Waker;  // rill/base/internal/waker.h
}

// Kinesis' ConsumerStatus. rill's consumers are ACTIVE as soon as they are registered.
enum class ConsumerStatus { kCreating, kDeleting, kActive };

// "CREATING", "DELETING", "ACTIVE".
std::string_view ConsumerStatusName(ConsumerStatus status);

struct ConsumerDescription {
  // The consumer's name (Kinesis' ConsumerName).
  std::string name;
  // Kinesis-style ARN (Kinesis' ConsumerARN): "<stream ARN>/consumer/<name>:<creation epoch
  // seconds>"; a consumer registered again under the same name gets a different one.
  std::string id;
  ConsumerStatus status = ConsumerStatus::kActive;
  absl::Time creation_time;
};

struct SubscribeOptions {
  // How long the subscription delivers before it ends and must be renewed with a new
  // SubscribeToShard from its continuation (Kinesis: 5 minutes), on the stream's clock. Zero
  // means unlimited. Default: 5 minutes.
  absl::Duration lifetime = absl::Minutes(5);
  // Most records per event (and at most 10 MiB of data, as GetRecords). Range: 1..10,000.
  // Default: 10,000.
  int max_records_per_event = 10000;
  // With no new record for this long (stream clock), an event with no records and the current
  // continuation is delivered, so that a consumer knows it is caught up. Zero disables it.
  // Default: 5 s.
  absl::Duration heartbeat_interval = absl::Seconds(5);
  // Real time a waiting Next() spins before it sleeps: trades a little CPU for wake-up latency.
  // Real time on purpose (a property of the machine, not of the stream's time): a spin only looks
  // again sooner and changes no outcome, also under a SimulatedClock. Default: 20 us. Zero sleeps
  // at once.
  absl::Duration spin = absl::Microseconds(20);
};

struct SubscribeToShardEvent {
  // The records, in sequence-number order; may be empty (a heartbeat, or the shard's end).
  std::vector<Record> records;
  // Where to resume (with AFTER_SEQUENCE_NUMBER): the last record delivered, or the position
  // reached when none was. Absent only at the end of a closed shard, with child_shards set.
  std::optional<SequenceNumber> continuation_sequence_number;
  // How far behind the shard's newest record this event is; 0 when caught up, at least 1 when
  // records are left.
  int64_t millis_behind_latest = 0;
  // At the end of a closed shard: the shards that took over its range.
  std::vector<ChildShard> child_shards;
  // Keeps the storage the records point into alive.
  RecordKeepAlive storage;
};

class Subscription {
 public:
  virtual ~Subscription() = default;

  // Waits up to `timeout` for the next event, on the stream's clock (Clock::WaitFor): with a
  // SystemClock it blocks up to `timeout` of real time, woken the moment a record is appended;
  // with a SimulatedClock it never blocks, and a Next that finds nothing moves the clock forward
  // by `timeout` (so heartbeats and lifetimes come due as they would have). Returns nullopt if
  // no event came, and also once the subscription has ended cleanly (active() is false: its
  // lifetime passed, the shard's end was delivered, or Cancel() was called). Errors: kResourceInUse
  // when a newer subscription of the same consumer took over the shard; kResourceNotFound when the
  // consumer was deregistered or the shard expired.
  [[nodiscard]] virtual absl::StatusOr<std::optional<SubscribeToShardEvent>> Next(
      absl::Duration timeout) = 0;
  // Next() without waiting.
  [[nodiscard]] virtual absl::StatusOr<std::optional<SubscribeToShardEvent>> TryNext() = 0;

  // False once the subscription has ended, for any reason.
  virtual bool active() const = 0;
  // Ends the subscription; a Next() waiting on another thread returns at once.
  virtual void Cancel() = 0;

  virtual ShardId shard_id() const = 0;
  virtual const std::string& consumer_name() const = 0;
  // The continuation of the last event delivered (absent after the shard's end).
  virtual std::optional<SequenceNumber> continuation_sequence_number() const = 0;

  // For dispatchers: registers a waker that is woken when this subscription may have an event.
  // Internal; the waker must be removed before it is destroyed.
  virtual void AddWaker(internal::Waker* waker) = 0;
  virtual void RemoveWaker(internal::Waker* waker) = 0;
};

}  // namespace rill

#endif  // RILL_STREAM_SUBSCRIPTION_H_
