// SequenceDeduplicator: effectively-once side effects on top of at-least-once delivery.
//
// A consumer group (or a ShardReader resumed from a checkpoint) delivers at least once: after a
// failover, the records of a shard after its last checkpoint are delivered again, in the same
// order. Within a shard sequence numbers strictly increase, so it is enough to remember, per
// shard, the highest sequence number whose side effect was applied (the high-water mark), and to
// skip anything at or below it.
//
// Example:
//   rill::SequenceDeduplicator dedup;
//   absl::Status loaded = dedup.Load(*store, "billing.dedup");   // after a restart
//   ...
//   for (const rill::Record& r : input.records) {
//     if (!dedup.ShouldProcess(shard, r.sequence_number)) continue;  // a redelivery
//     Charge(r);
//   }
//   absl::Status saved = dedup.Save(*store, "billing.dedup");
//
// What it covers: redelivery of a shard's records in order — the failover case of a consumer
// group or a reader restarted from an older checkpoint. Each (shard, sequence number) is answered
// "process" at most once by one deduplicator.
//
// What it does not cover:
//   - Duplicates the producer made: a put retried after a lost acknowledgement is a new record
//     with a new sequence number. Deduplicate those by an id of your own in the data.
//   - Out-of-order processing within a shard: marking a later record first makes every earlier
//     one look done. Mark records in shard order.
//   - A crash between the side effect and the mark reaching durable storage: after a restart the
//     record is processed again. For exactly-once effects, store the marks atomically with the
//     effect itself (e.g. in the same database transaction, from high_water_marks()), or make the
//     effect idempotent. Save()/Load() persist the marks, but as a separate write.
//   - Several streams: shard ids repeat across streams; use one deduplicator (and one
//     application name when saving) per stream.
//   - Two live processes applying the same shard at once: the marks are per deduplicator.
//
// Thread safety: every method is thread-safe (one mutex). Memory: one entry per shard seen, until
// Forget().
#ifndef RILL_CONSUME_DEDUP_H_
#define RILL_CONSUME_DEDUP_H_

#include <map>
#include <memory>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"

namespace rill {

class CheckpointStore;

class SequenceDeduplicator {
 public:
  SequenceDeduplicator();
  ~SequenceDeduplicator();
  SequenceDeduplicator(const SequenceDeduplicator&) = delete;
  SequenceDeduplicator& operator=(const SequenceDeduplicator&) = delete;

  // True if `sequence_number` is above the shard's high-water mark — then the mark becomes
  // `sequence_number`, so the same number (or any lower one) is answered false from now on. The
  // mark is taken before your side effect runs: if the effect can fail and must be retried, use
  // IsProcessed() and MarkProcessed() around it instead.
  [[nodiscard]] bool ShouldProcess(ShardId shard, SequenceNumber sequence_number);

  // Whether `sequence_number` is at or below the shard's high-water mark (already applied).
  bool IsProcessed(ShardId shard, SequenceNumber sequence_number) const;

  // Raises the shard's high-water mark to `sequence_number` (a lower number changes nothing).
  void MarkProcessed(ShardId shard, SequenceNumber sequence_number);

  // The shard's high-water mark; nullopt for a shard never marked.
  std::optional<SequenceNumber> high_water_mark(ShardId shard) const;

  // Every high-water mark, by shard.
  std::map<ShardId, SequenceNumber> high_water_marks() const;

  // Merges marks (from high_water_marks() of an earlier run): each shard keeps the higher mark.
  void Restore(const std::map<ShardId, SequenceNumber>& marks);

  // Drops the shard's mark (e.g. once the shard has ended and expired from the stream).
  void Forget(ShardId shard);

  // Persists the marks in `store` under `application`, one lease row per shard (lease key = shard
  // id, checkpoint = the mark): rows are created when absent and raised with conditional writes,
  // never lowered (so two deduplicators saving to one table keep the higher marks). Use an
  // application name of its own, never a consumer group's lease table. Errors: the store's.
  [[nodiscard]] absl::Status Save(CheckpointStore& store, std::string_view application) const;

  // Merges the marks saved under `application` into this deduplicator (each shard keeps the
  // higher mark). Errors: the store's; kInternalFailure for a row that is not a shard id with a
  // decimal sequence number.
  [[nodiscard]] absl::Status Load(CheckpointStore& store, std::string_view application);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace rill

#endif  // RILL_CONSUME_DEDUP_H_
