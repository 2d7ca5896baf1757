// RecordProcessor: what a consumer-group application implements, one instance per shard it holds,
// with the Kinesis Client Library's life cycle; and the Checkpointer it records progress with.
//
// Life cycle of one processor (one shard, one lease holder):
//   Initialize            once, before any records: the shard and where processing resumes.
//   ProcessRecords        for each batch read, in order; checkpoint here as often as you like.
//   then exactly one of
//     ShardEnded          the shard was closed by resharding and read to its end: you MUST call
//                         checkpointer.Checkpoint() (which records SHARD_END), or the shard's
//                         children never start.
//     LeaseLost           another worker took the lease: stop; do not checkpoint.
//     ShutdownRequested   the worker shuts down gracefully: checkpoint what you have processed.
//
// Example:
//   class Counter : public rill::RecordProcessor {
//     void Initialize(const rill::InitializationInput& in) override { shard_ = in.shard_id; }
//     void ProcessRecords(const rill::ProcessRecordsInput& in) override {
//       count_ += in.records.size();
//       if (count_ % 1000 == 0) in.checkpointer.Checkpoint().IgnoreError();
//     }
//     void LeaseLost() override {}
//     void ShardEnded(rill::Checkpointer& c) override { c.Checkpoint().IgnoreError(); }
//     void ShutdownRequested(rill::Checkpointer& c) override { c.Checkpoint().IgnoreError(); }
//   };
//
// Thread safety: a processor's methods are called one at a time, from the thread polling its
// worker; different shards' processors may run on different workers' threads at once.
#ifndef RILL_CONSUME_RECORD_PROCESSOR_H_
#define RILL_CONSUME_RECORD_PROCESSOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/stream/record.h"

namespace rill {

// Records progress for one shard in the group's CheckpointStore.
class Checkpointer {
 public:
  virtual ~Checkpointer() = default;

  // Checkpoints the last record delivered to the processor; at the end of a shard (in
  // ShardEnded) it checkpoints SHARD_END. With nothing delivered since the last checkpoint it
  // changes nothing. Errors: kResourceInUse if the lease was lost (another worker owns it now).
  [[nodiscard]] virtual absl::Status Checkpoint() = 0;

  // Checkpoints at `sequence_number`, which must satisfy the KCL rule
  //   last checkpoint <= sequence_number <= last delivered record
  // (kInvalidArgument otherwise). Processing resumes after it.
  [[nodiscard]] virtual absl::Status Checkpoint(SequenceNumber sequence_number) = 0;

  // The last checkpoint: a sequence number, or a sentinel such as "TRIM_HORIZON".
  virtual std::string last_checkpoint() const = 0;
};

struct InitializationInput {
  ShardId shard_id;
  // Where processing resumes: the checkpoint (a decimal sequence number, processing restarts
  // after it) or a sentinel: "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP".
  std::string extended_sequence_number;
};

struct ProcessRecordsInput {
  // The batch, in sequence-number order. The views are valid during the call only.
  absl::Span<const Record> records;
  int64_t millis_behind_latest = 0;
  Checkpointer& checkpointer;
};

class RecordProcessor {
 public:
  virtual ~RecordProcessor() = default;
  virtual void Initialize(const InitializationInput& input) = 0;
  virtual void ProcessRecords(const ProcessRecordsInput& input) = 0;
  virtual void LeaseLost() = 0;
  virtual void ShardEnded(Checkpointer& checkpointer) = 0;
  virtual void ShutdownRequested(Checkpointer& checkpointer) = 0;
};

// Makes the processor for a shard a worker has just taken.
using RecordProcessorFactory = std::function<std::unique_ptr<RecordProcessor>(ShardId shard)>;

}  // namespace rill

#endif  // RILL_CONSUME_RECORD_PROCESSOR_H_
