// Stream: a Kinesis data stream inside the process.
//
// A stream is a set of shards, each owning a contiguous range of the 128-bit hash-key space.
// PutRecord hashes the partition key (MD5, as Kinesis), routes the record to the open shard whose
// range holds the hash key, and appends it there with a sequence number. Readers take a shard
// iterator and call GetRecords to read a shard in order, as often as they like, until the records
// pass the retention period.
//
// Example:
//   rill::StreamOptions options;
//   options.name = "clicks";
//   options.shard_count = 4;
//   auto stream = rill::Stream::Create(options);
//   if (!stream.ok()) return stream.status();
//   auto put = (*stream)->PutRecord("user-1", "{\"page\": \"/home\"}");
//   for (const rill::ShardDescription& shard : (*stream)->ListShards()) {
//     auto it = (*stream)->GetShardIterator(shard.shard_id, rill::StartingPosition::TrimHorizon());
//     auto batch = (*stream)->GetRecords(*it, 100);
//     for (const rill::Record& r : batch->records) { /* r.partition_key, r.data */ }
//   }
//
// Thread safety: every method is thread-safe. Any number of threads may put at once; records of
// one shard keep the order in which their puts took the shard's append lock, which for one thread
// is the order of its calls. Readers never take the append lock: they see the published prefix
// of each shard, so a slow reader never slows a writer.
//
// Allocation: PutRecord does not allocate per record (records are copied into large chunks, a new
// chunk is allocated only when one fills). GetRecords allocates its result vectors, never per
// record byte: records are views into the stream's chunks.
//
// Memory: about 14.25 bytes per record beyond its key and data, plus the unfilled part of each
// shard's newest chunk. Records leave memory when their retention passes (on the next put, read
// or Tick() that touches their shard: see Tick()), or earlier at StreamOptions::memory_limit.
//
// Durable mode (options.storage): the same, plus the disk. A put appends to memory, then takes
// part in a group commit of its shard (kEveryBatch: before it returns; kNever / kInterval: on the
// stream's flusher thread, or in the put when background_flush is off). GetRecords of records
// evicted from memory reads their frame back from the segment file (one frame per call, cached
// for the next sequential read). Open recovers the shards in parallel, one thread per core,
// joined before it returns.
#ifndef RILL_STREAM_STREAM_H_
#define RILL_STREAM_STREAM_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/hash_key.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/metrics/metrics.h"
#include "rill/stream/list_shards.h"
#include "rill/stream/record.h"
#include "rill/stream/shard_description.h"
#include "rill/stream/shard_iterator.h"
#include "rill/stream/stream_api.h"
#include "rill/stream/stream_options.h"
#include "rill/stream/stream_summary.h"
#include "rill/stream/subscription.h"

namespace rill {

namespace internal {
class StreamImpl;
}  // namespace internal

// The stream's operations as StreamApi declares them (Stream is its in-process implementation:
// rill/stream/stream_api.h), and more that only a stream in this process has.
class Stream final : public StreamApi {
 public:
  // Creates an empty stream. Errors: kInvalidArgument for a bad name, a shard count below 1 or a
  // retention outside [24 h, 8760 h]; kValidation for max_record_bytes outside [1 MiB, 10 MiB];
  // kLimitExceeded for more shards than max_shards.
  //
  // Durable mode (options.storage set): the directory must not hold a stream yet
  // (kResourceInUse: use Open); it is created if missing and locked while the stream lives
  // (kResourceInUse naming it if another process or stream holds it).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Stream>> Create(StreamOptions options);

  // Opens the durable stream in options.storage->directory, or creates it there (as Create) if
  // the directory holds none. Recovery restores the shards and their lineage, every record that
  // reached the disk (FsyncPolicy says which acknowledged ones did), sequence counters (never
  // reused), arrival times, retention and registered consumers; options.name must match the
  // stored name and options.shard_count, options.retention and options.capacity_mode are
  // ignored for an existing stream. A torn last write is cut off. A damaged frame in the middle
  // of a shard's segments is reported by recovery_status() (kInternalFailure, DATA_LOSS in the
  // message's detail): the shard keeps the records before the damage and numbers new ones above
  // every record on disk. An empty options.name opens whatever stream the directory holds
  // (kResourceNotFound if it holds none). With storage->read_only the directory is only read
  // (no lock, nothing written; see StorageOptions::read_only) and must hold a stream
  // (kResourceNotFound otherwise). Errors: kInvalidArgument without options.storage or for a
  // name mismatch; kResourceInUse when the directory is locked; kInternalFailure for an
  // unreadable or damaged METADATA or an I/O error.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Stream>> Open(StreamOptions options);

  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() override;

  const std::string& name() const override;
  // options().clock.
  const std::shared_ptr<Clock>& clock() const override;
  // options().max_record_bytes and max_put_records_bytes.
  PutLimits put_limits() const override;
  // The options the stream was created with; for a stream Open recovered, with its stored
  // retention period and capacity mode. They do not change: the current retention period is
  // retention(), the current mode DescribeStreamSummary().stream_mode.
  const StreamOptions& options() const;
  // The current retention period (IncreaseStreamRetentionPeriod / Decrease... change it).
  absl::Duration retention() const;
  // The time the stream was created, by its clock.
  absl::Time creation_time() const;

  // Puts one record. partition_key: 1-256 characters (UTF-16 code units, as Kinesis counts) of
  // valid UTF-8; key bytes plus data bytes at most max_record_bytes. Errors: kInvalidArgument for
  // a bad key, an oversized record or a sequence_number_for_ordering this stream did not issue;
  // kProvisionedThroughputExceeded when a shard's write limit is used up or, with
  // memory_limit's kRejectPuts, the memory budget is (retry later; nothing was written).
  // Thread-safe; does not allocate.
  [[nodiscard]] absl::StatusOr<PutRecordResult> PutRecord(std::string_view partition_key,
                                                          std::string_view data,
                                                          const PutOptions& options = {}) override;

  // Puts up to 500 records. The request as a whole fails with kInvalidArgument if it has no entry,
  // more than 500, or more than max_put_records_bytes of keys and data. Otherwise each entry
  // succeeds or fails on its own: a bad entry gets its own error code and message, the others are
  // written, and entries bound for the same shard keep request order. (Kinesis rejects the whole
  // request for a malformed entry; rill fails only that entry, so nothing valid is held back.)
  [[nodiscard]] absl::StatusOr<PutRecordsResult> PutRecords(
      absl::Span<const PutRecordsEntry> entries) override;

  // Every unexpired shard (open, or closed less than a retention period ago), in shard-id
  // order: ListShards with the default FROM_TRIM_HORIZON filter, every page at once.
  std::vector<ShardDescription> ListShards() const;

  // Kinesis' ListShards: the shards that `request.filter` selects, in shard-id order, one page at
  // a time. Errors: kInvalidArgument for max_results outside [1, 10,000], a filter missing its
  // shard id or timestamp, a next_token together with exclusive_start_shard_id, or a malformed
  // next_token; kExpiredNextToken for a token issued more than 5 minutes ago.
  [[nodiscard]] absl::StatusOr<ListShardsResult> ListShards(
      const ListShardsRequest& request) const override;

  // The stream's status, mode, open shard count, retention and limits.
  StreamSummary DescribeStreamSummary() const;

  // Resharding (provisioned mode only). Each closes its parent shards (they stay readable until
  // their records expire) and opens children with the next free shard ids; records for a hash
  // key go to the children from the moment the call returns, and every child's sequence numbers
  // are above every parent's. Puts racing with the call are neither lost nor misrouted: a put
  // that reached a parent before it closed is in the parent, any later put is in a child.
  //
  // SplitShard: children [start, new_starting_hash_key - 1] and [new_starting_hash_key, end],
  // both with the split shard as parent. new_starting_hash_key must satisfy
  // start + 1 < new_starting_hash_key < end (kInvalidArgument otherwise).
  // MergeShards: the two shards' ranges must be adjacent (in either order); the child covers both,
  // with shard_id as parent and adjacent_shard_id as adjacent parent.
  // UpdateShardCount: uniform scaling to `target_shard_count` open shards, between half and twice
  // the open count, at most max_shard_count_updates_per_day times per rolling 24 hours. Every open
  // shard ends within 10% of an even share (2^128 / target_shard_count keys), so under evenly
  // spread keys the busiest shard takes at most 1.1 / target of them. Its splits and merges
  // (lineage is kept) keep as many current shard boundaries as that tolerance allows, which makes
  // them the fewest that reach it (the search looks within 8 even shares of where a boundary would
  // fall evenly, which only hand splits far from even can exceed): each run of adjacent shards
  // between two kept boundaries merges into one, no narrower than its widest shard, which splits
  // into equal pieces. So from shards within 10% of an even share (as CreateStream and
  // UpdateShardCount leave them), doubling splits every shard at its midpoint (2N new shards for N
  // open) and halving merges neighbours pairwise (N / 2 new shards). Scaling by x1.25, x0.8 or
  // x0.75 keeps no shard (each would be at least 20% off) but every fourth or fifth boundary: going
  // from 800 to 1,000 turns each 4 shards into 5 (2,200 new shards, 1,000 of them open), from 1,000
  // to 800 each 5 into 4 (2,000). A step under 10% may leave shards as they are, up to 10% wider
  // than an even share. No new shard, short-lived ones included, is narrower than 1% of an even
  // share. Why 10%: tighter creates no fewer shards for steps of 25% (which Kinesis recommends) and
  // more for others; looser saves shards on few steps at the price of evenness, and from 25% on
  // lets a 25% step up leave shards as wide as they were.
  // Errors: kResourceNotFound for an unknown shard; kInvalidArgument for a closed shard, a bad
  // key, non-adjacent shards or a target out of bounds; kLimitExceeded past max_shards or the
  // daily update quota; kResourceInUse while the stream is UPDATING; kValidation in on-demand mode.
  [[nodiscard]] absl::Status SplitShard(ShardId shard_id, HashKey new_starting_hash_key);
  [[nodiscard]] absl::Status SplitShard(std::string_view shard_id,
                                        HashKey new_starting_hash_key) override;
  [[nodiscard]] absl::Status MergeShards(ShardId shard_id, ShardId adjacent_shard_id);
  [[nodiscard]] absl::Status MergeShards(std::string_view shard_id,
                                         std::string_view adjacent_shard_id) override;
  [[nodiscard]] absl::Status UpdateShardCount(int target_shard_count) override;

  // Switches between provisioned and on-demand mode (at most max_mode_updates_per_day times per
  // rolling 24 hours: kLimitExceeded). The shards stay as they are. Switching to the current mode
  // changes nothing. Errors: kResourceInUse while UPDATING.
  [[nodiscard]] absl::Status UpdateStreamMode(CapacityMode mode);

  // Housekeeping, run by hand or by the housekeeping thread (StartHousekeeping). In order:
  //   - trims every shard to the retention period, freeing the memory of expired chunks, and
  //     expires closed shards whose retention has passed since they closed;
  //   - memory_limit kRetireOldest: retires the oldest records while over the budget;
  //   - durable mode: the group commits that are due (background_flush off);
  //   - on-demand mode: applies the OnDemandPolicy to the ingress measured since the previous
  //     Tick() (splits and merges).
  // Deterministic under a SimulatedClock. Puts and reads trim the shards they touch as they go,
  // but nothing else does: without Tick() calls (or the housekeeping thread), a shard that
  // receives no puts and no reads keeps its expired records in memory, and an on-demand stream
  // never rescales.
  void Tick();

  // Starts a thread that calls Tick() every `interval` of the stream's Clock (Clock::WaitUntil):
  // in real time on the system clock; under a SimulatedClock it ticks when Advance() or Set()
  // move the clock past the next interval, never on real time. Errors:
  // kInvalidArgument for a non-positive interval, kResourceInUse if already running. A stream
  // with a long retention and steady traffic wants it (e.g. every second): it bounds how long
  // expired records stay in memory on shards nobody reads.
  [[nodiscard]] absl::Status StartHousekeeping(absl::Duration interval);
  // Stops and joins that thread, if running. Also done by the destructor.
  void StopHousekeeping();
  // The former names of StartHousekeeping / StopHousekeeping (the thread also scales on-demand
  // streams); they do exactly the same.
  [[nodiscard]] absl::Status StartAutoScaling(absl::Duration interval);
  void StopAutoScaling();

  // Enhanced fan-out (see rill/stream/subscription.h). RegisterStreamConsumer: a name of 1-128
  // characters of [a-zA-Z0-9_.-] (kInvalidArgument), not registered yet (kResourceInUse), at most
  // enhanced_fan_out.max_consumers at once (kLimitExceeded). DeregisterStreamConsumer ends the
  // consumer's subscriptions (their Next() returns kResourceNotFound). Unknown names are
  // kResourceNotFound.
  [[nodiscard]] absl::StatusOr<ConsumerDescription> RegisterStreamConsumer(
      std::string_view name) override;
  [[nodiscard]] absl::Status DeregisterStreamConsumer(std::string_view name) override;
  [[nodiscard]] absl::StatusOr<ConsumerDescription> DescribeStreamConsumer(
      std::string_view name) const override;
  // In registration order.
  std::vector<ConsumerDescription> ListStreamConsumers() const;

  // Subscribes a registered consumer to a shard from `position` (every StartingPosition type,
  // with GetShardIterator's rules; not counted against its rate limit). Errors: kResourceNotFound
  // for an unknown consumer or shard; kInvalidArgument for a bad position; kResourceInUse within
  // enhanced_fan_out.resubscribe_interval of the consumer's previous subscription to the shard
  // (after it, the new subscription takes over and the old one ends with kResourceInUse).
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Subscription>> SubscribeToShard(
      std::string_view consumer_name, ShardId shard_id, const StartingPosition& position,
      const SubscribeOptions& options = {});
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Subscription>> SubscribeToShard(
      std::string_view consumer_name, std::string_view shard_id, const StartingPosition& position,
      const SubscribeOptions& options = {}) override;

  // Counters under Kinesis' metric names, stream-wide and per unexpired shard. Cheap: relaxed
  // atomic loads. PutRecord.Latency is sampled (one call in 64 per thread) to keep the clock off
  // the put path; PutRecords and GetRecords latencies are measured on every call.
  MetricsSnapshot metrics() const;

  // An iterator at `position` in `shard_id`. Errors: kInvalidArgument for a malformed shard id or
  // any breach of StartingPosition's rules (including a sequence number of another shard or
  // stream, or one not issued yet); kResourceNotFound for a shard that does not exist.
  [[nodiscard]] absl::StatusOr<ShardIterator> GetShardIterator(
      ShardId shard_id, const StartingPosition& position) const;
  [[nodiscard]] absl::StatusOr<ShardIterator> GetShardIterator(
      std::string_view shard_id, const StartingPosition& position) const override;

  // Reads up to `limit` (1..10,000) records, and at most 10 MiB of data (at least one record),
  // from the iterator's position. Errors: kInvalidArgument for a bad limit or an iterator of
  // another stream; kExpiredIterator for an iterator issued more than 5 minutes ago;
  // kResourceNotFound for a shard that no longer exists. Like every access, a read applies the
  // retention period first: records it finds expired are gone for good (even if a
  // SimulatedClock is set back later) and their memory is reclaimed; so it is const to the
  // caller but not free of housekeeping.
  [[nodiscard]] absl::StatusOr<GetRecordsResult> GetRecords(
      const ShardIterator& iterator, int limit = kMaxGetRecordsLimit) const override;

  // Kinesis' retention changes: Increase requires new >= current, Decrease new <= current, both
  // within [24 h, 8760 h] (or the short-retention escape). Records already past the old period
  // stay gone after an increase. Errors: kInvalidArgument.
  // Server-side encryption, with Kinesis' semantics: records put after StartStreamEncryption
  // returns are encrypted at rest (AES-256-GCM, under a data key from options().key_provider
  // wrapped by `key_id`); records written before stay as they were (some put just before the call
  // may be encrypted too, if they had not reached the segments). StopStreamEncryption: records
  // put after it are stored in the clear; encrypted ones stay encrypted and readable while the
  // provider can unwrap their keys. DescribeStreamSummary shows the type and key id. The setting
  // persists across reopens; every open of an encrypted durable stream uses a fresh data key.
  // An in-memory stream keeps nothing at rest: it records the setting only.
  // Errors: kInvalidArgument for a type other than kKms, a malformed key id, or (Stop) a key id
  // other than the stream's; the provider's KMS errors (kKmsNotFound without a provider or for an
  // unknown key, kKmsDisabled, kKmsInvalidState, kKmsAccessDenied); kLimitExceeded past 25 key
  // changes or stops in 24 hours (stream clock). Starting with the key already in use, or
  // stopping an unencrypted stream, does nothing. Thread-safe.
  [[nodiscard]] absl::Status StartStreamEncryption(EncryptionType type, std::string_view key_id);
  [[nodiscard]] absl::Status StopStreamEncryption(EncryptionType type, std::string_view key_id);

  [[nodiscard]] absl::Status IncreaseStreamRetentionPeriod(absl::Duration retention) override;
  [[nodiscard]] absl::Status DecreaseStreamRetentionPeriod(absl::Duration retention) override;

  // Bytes of record storage held in memory, across shards: the capacity of every chunk the
  // shards hold (chunks dropped by retention but still referenced by a returned GetRecordsResult
  // are not counted). Cheap: one relaxed atomic load of a count kept as chunks come and go.
  // StreamOptions::memory_limit (in memory) or StorageOptions::memory_budget_bytes (durable)
  // bound it.
  size_t MemoryBytes() const;

  // Durable mode: writes every record not yet written and syncs it, whatever the FsyncPolicy.
  // Returns the first I/O error. In memory mode: nothing to do.
  [[nodiscard]] absl::Status Flush();
  // Durable mode: OK, or what recovery found damaged (see Open). In memory mode: OK.
  absl::Status recovery_status() const;
  // Durable mode: records recovered from disk by Open. In memory mode: 0.
  uint64_t recovered_records() const;
  // Durable mode: bytes of segment files on disk. In memory mode: 0.
  uint64_t DiskBytes() const;

 protected:
  absl::StatusOr<std::vector<ShardDescription>> ListAllShardsOrError() const override {
    return ListShards();
  }
  absl::StatusOr<StreamSummary> DescribeStreamSummaryOrError() const override {
    return DescribeStreamSummary();
  }
  absl::StatusOr<std::vector<ConsumerDescription>> ListStreamConsumersOrError() const override {
    return ListStreamConsumers();
  }

 private:
  explicit Stream(std::unique_ptr<internal::StreamImpl> impl);
  std::unique_ptr<internal::StreamImpl> impl_;
};

}  // namespace rill

#endif  // RILL_STREAM_STREAM_H_
