// ConsumerGroup: an application's workers sharing a stream's shards by leases (what the Kinesis
// Client Library does), with checkpoints, failover and parent-before-child processing.
//
// A group is an application name over one stream and one CheckpointStore (the lease table). Each
// worker, on every Poll():
//   1. syncs the lease table with the stream: one lease per unexpired shard, created with the
//      group's initial position (children of a resharding start at TRIM_HORIZON, so that nothing
//      after their parents is skipped);
//   2. renews the leases it holds (every renew_interval); a failed renewal means the lease was
//      taken: its processor gets LeaseLost();
//   3. takes leases (every take_interval): expired or unowned ones up to an even share
//      ceil(leases / workers), or, when none is free, steals from the most loaded workers (at
//      most max_leases_to_steal). A lease expires when its counter has not changed for
//      failover_time, as this worker observes it on the group's clock (KCL: no clock
//      synchronisation between workers needed);
//   4. for each lease it holds, reads one batch and hands it to the shard's RecordProcessor. A
//      shard whose parents have not checkpointed SHARD_END waits.
// Cost: a round reads the lease table at most once (ListLeases, only when the stream's shards
// changed, a take is due or a shard waits on its parents) and writes it in batches: all renewals
// in one CheckpointStore::UpdateLeases call, all takes in one, all new shards' leases in one
// CreateLeasesIfAbsent, and Shutdown's checkpoints and releases in one. With a store that makes a
// batch one write (SqliteCheckpointStore, FileCheckpointStore), a round's cost does not grow with
// the number of leases written. Checkpoints that processors make while processing are written
// one by one, when they are made.
//
// A worker that stops being polled (or whose thread dies) stops renewing: that is how a crash
// looks. After failover_time its leases are taken by the others and processing resumes after the
// last checkpoint.
//
// Guarantee: at-least-once. Records after a shard's last checkpoint may be delivered twice (once
// to the crashed worker, once to the one that takes over); none is lost; within a shard, records
// are delivered in order; a child shard's records are delivered only after every parent has
// checkpointed SHARD_END. For effectively-once side effects, see rill/consume/dedup.h.
//
// Example:
//   rill::InMemoryCheckpointStore store;     // or a rill::FileCheckpointStore; outlives the group
//   rill::ConsumerGroupOptions options;
//   options.application_name = "billing";
//   options.initial_position = rill::StartingPosition::TrimHorizon();
//   auto group = rill::ConsumerGroup::Create(*stream, store, options);
//   if (!group.ok()) return group.status();
//   auto worker = (*group)->AddWorker("worker-1", [](rill::ShardId) {
//     return std::make_unique<MyProcessor>();
//   });
//   (*worker)->Start();            // or call (*worker)->Poll() from your own loop
//   ...
//   (*worker)->Shutdown();         // processors checkpoint, leases are released
//
// Thread safety: ConsumerGroup and Worker methods are thread-safe. One worker polls on one
// thread at a time (Poll, the Start()ed thread and Shutdown are serialised per worker).
#ifndef RILL_CONSUME_CONSUMER_GROUP_H_
#define RILL_CONSUME_CONSUMER_GROUP_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/record_processor.h"
#include "rill/stream/shard_iterator.h"

namespace rill {

class StreamApi;

struct ConsumerGroupOptions {
  // The application's name: the lease table's name in the store. 1-128 characters of
  // [a-zA-Z0-9_.-]. Required.
  std::string application_name;
  // Where a new lease of a shard without parents starts: TRIM_HORIZON, LATEST (the KCL's default)
  // or AT_TIMESTAMP; sequence-number positions are kInvalidArgument. Default: LATEST.
  StartingPosition initial_position = StartingPosition::Latest();
  // How long a lease lives without renewal before others may take it. Default: 10 s (KCL).
  absl::Duration failover_time = absl::Seconds(10);
  // How often a worker renews its leases. Zero means failover_time / 3 - 25 ms, as the KCL
  // (3,308 ms for 10 s). Range: [0, failover_time). Default: 0.
  absl::Duration renew_interval = absl::ZeroDuration();
  // How often a worker tries to take leases: new shards' leases (after a resharding), leases of
  // workers that failed, and leases to steal for an even share. Zero means
  // 2 * (failover_time + 25 ms), as the KCL (20,050 ms for 10 s). Range: >= 0. Default: 250 ms,
  // so that workers in one process balance and pick up child shards within about a second
  // (the KCL's 20 s suits a fleet sharing a DynamoDB table; see KclTiming()).
  absl::Duration take_interval = absl::Milliseconds(250);
  // Leases a worker steals at most per take, when no lease is free and another worker holds more
  // than its even share. Range: >= 1. Default: unlimited, so two workers started together split
  // the shards in one take (the KCL steals one at a time: 17 minutes for 100 shards).
  int max_leases_to_steal = std::numeric_limits<int>::max();
  // Records per GetRecords call. Range: 1..10,000. Default: 10,000.
  int max_records = 10000;
  // Leases one worker holds at most. Default: unlimited.
  int max_leases_per_worker = std::numeric_limits<int>::max();
  // How long a Start()ed worker sleeps between polls that found nothing to read, on the group's
  // clock (the stream's; Clock::WaitUntil): real time with a SystemClock; with a SimulatedClock
  // the worker polls again once the clock has been advanced this far. Default: 1 ms (rill reads
  // from memory; the KCL's 1.5 s is for a network service).
  absl::Duration idle_time_between_polls = absl::Milliseconds(1);

  // The KCL's lease timing, for simulations that want it: take_interval 0 (20,050 ms for the
  // default 10 s failover_time) and one steal per take. Everything else as the defaults.
  static ConsumerGroupOptions KclTiming() {
    ConsumerGroupOptions options;
    options.take_interval = absl::ZeroDuration();
    options.max_leases_to_steal = 1;
    return options;
  }
  // The consumer-group half of StreamOptions::KinesisLimits(): the same as KclTiming().
  static ConsumerGroupOptions KinesisLimits() { return KclTiming(); }
};

class ConsumerGroup;

// One worker of a group. Obtained from ConsumerGroup::AddWorker; owned by the group.
class Worker {
 public:
  virtual ~Worker() = default;

  virtual const std::string& id() const = 0;

  // One round: sync, renew, take, and one batch per held shard (see ConsumerGroup). Errors from
  // the store or the stream are returned after the round did what it could; the next Poll()
  // retries. Deterministic under a SimulatedClock.
  virtual absl::Status Poll() = 0;

  // Starts a thread that polls until Shutdown(), sleeping idle_time_between_polls (on the
  // stream's clock) after a poll that read nothing; Shutdown() and CrashWorker() end that sleep
  // at once. kResourceInUse if already started.
  [[nodiscard]] virtual absl::Status Start() = 0;

  // Graceful shutdown: stops the thread if started, gives every processor ShutdownRequested (it
  // checkpoints), releases the leases so others take them at once, and stops polling for good.
  virtual void Shutdown() = 0;

  // The shards this worker holds leases for, in shard-id order.
  virtual std::vector<ShardId> held_shards() const = 0;

  // Checkpoints a held shard at `sequence_number` between polls, as a KCL processor may with a
  // checkpointer it kept: the same rule as Checkpointer::Checkpoint(sequence_number) (between
  // the last checkpoint and the last record delivered, kInvalidArgument otherwise).
  // kResourceInUse if this worker does not hold the shard (any more). Must not be called from
  // inside a processor callback (use the callback's Checkpointer there).
  [[nodiscard]] virtual absl::Status Checkpoint(ShardId shard, SequenceNumber sequence_number) = 0;
};

// A worker that a stream's own system coordinates (see NativeConsumerGroups).
class NativeGroupWorker : public Worker {
 public:
  // Stops at once, without any processor callback and without leaving the group gracefully: the
  // system notices when the member's session expires (ConsumerGroup::CrashWorker).
  virtual void Crash() = 0;
};

// Implemented by a stream whose own system runs consumer groups, beside StreamApi: a
// rill::kafka::Stream (Kafka's group protocol, cooperative-sticky assignment, checkpoints as
// committed offsets). ConsumerGroup::AddWorker asks it for the worker instead of running rill's
// leases; the group's CheckpointStore is then not used. The same RecordProcessor life cycle holds.
class NativeConsumerGroups {
 public:
  virtual ~NativeConsumerGroups() = default;
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<NativeGroupWorker>> MakeGroupWorker(
      const ConsumerGroupOptions& options, std::string worker_id,
      RecordProcessorFactory factory) = 0;
};

class ConsumerGroup {
 public:
  // A group consuming `stream`, with its lease table in `store`. Both are borrowed: they must
  // outlive the group (and so every worker and every ConsumerGroupSource over it). Errors:
  // kInvalidArgument for a bad application name, a bad initial position or bad intervals.
  // On a stream that runs its own groups (NativeConsumerGroups: Kafka), the workers are its own
  // and `store` is not used.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ConsumerGroup>> Create(
      StreamApi& stream, CheckpointStore& store, ConsumerGroupOptions options);

  ~ConsumerGroup();
  ConsumerGroup(const ConsumerGroup&) = delete;
  ConsumerGroup& operator=(const ConsumerGroup&) = delete;

  // Adds a worker. Its id must be unique in the group and non-empty (kInvalidArgument).
  [[nodiscard]] absl::StatusOr<Worker*> AddWorker(std::string worker_id,
                                                  RecordProcessorFactory factory);
  // The same with a factory that does not need the shard id.
  [[nodiscard]] absl::StatusOr<Worker*> AddWorker(
      std::string worker_id, std::function<std::unique_ptr<RecordProcessor>()> factory);

  // Drops a worker without a graceful shutdown: its thread (if any) is stopped and its processors
  // destroyed without any callback, and its leases are left to expire — a crash, for tests and
  // simulations. The Worker* is invalid afterwards.
  void CrashWorker(std::string_view worker_id);

  const ConsumerGroupOptions& options() const { return options_; }
  // The stream and the lease table given to Create().
  StreamApi& stream() const { return stream_; }
  CheckpointStore& store() const { return store_; }

 private:
  ConsumerGroup(StreamApi& stream, CheckpointStore& store, ConsumerGroupOptions options);
  class WorkerImpl;
  friend class WorkerImpl;

  StreamApi& stream_;
  CheckpointStore& store_;
  const ConsumerGroupOptions options_;
  NativeConsumerGroups* const native_;  // null: rill's leases
  struct Workers;
  std::unique_ptr<Workers> workers_;
};

}  // namespace rill

#endif  // RILL_CONSUME_CONSUMER_GROUP_H_
