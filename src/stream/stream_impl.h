// StreamImpl: the state and the work behind rill::Stream (include/rill/stream/stream.h), which
// forwards every call here. Each public method has the contract written on Stream's method of
// the same name. The implementation is split by concern:
//   stream.cc            creation, durable open, the Stream facade
//   stream_put.cc        PutRecord / PutRecords, the journal path of durable puts
//   stream_read.cc       GetShardIterator / GetRecords, retention
//   stream_reshard.cc    SplitShard / MergeShards / UpdateShardCount / UpdateStreamMode, Tick, the
//                        housekeeping thread and on-demand scaling
//   stream_storage.cc    durable mode: recovery, group commit, the flusher, the memory budget
//   stream_memory.cc     in-memory mode: the memory limit (refusing puts, retiring records)
//   list_shards.cc       ListShards paging, DescribeStreamSummary
//   stream_metrics.cc    metrics()
//   subscription.cc      the consumer registry and push subscriptions
// Internal to src/.
#ifndef RILL_STREAM_STREAM_IMPL_H_
#define RILL_STREAM_STREAM_IMPL_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "log/shard_log.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"
#include "rill/stream/stream.h"
#include "storage/stream_store.h"

namespace rill::internal {

struct StreamShard;
struct ShardMap;
struct ConsumerState;
struct StreamMeta;
class StreamStore;

// Durable mode: counters a shard may issue beyond the ceiling on disk before writing a higher
// one (one small synced write per 16 M records per shard; the gap a reopen leaves).
inline constexpr uint64_t kCounterLease = uint64_t{1} << 24;

class StreamImpl {
 public:
  // Validates `options` (Stream::Create's errors) and builds the stream, or opens it (Open).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StreamImpl>> Create(StreamOptions options);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StreamImpl>> Open(StreamOptions options);
  // `recovered`: the metadata of a durable stream being opened, else null (a new stream).
  StreamImpl(StreamOptions options, const StreamMeta* recovered);
  StreamImpl(const StreamImpl&) = delete;
  StreamImpl& operator=(const StreamImpl&) = delete;
  ~StreamImpl();

  const StreamOptions& options() const { return options_; }
  absl::Duration retention() const;
  absl::Time creation_time() const { return creation_time_; }

  absl::StatusOr<PutRecordResult> PutRecord(std::string_view partition_key, std::string_view data,
                                            const PutOptions& options);
  absl::StatusOr<PutRecordsResult> PutRecords(absl::Span<const PutRecordsEntry> entries);

  std::vector<ShardDescription> ListShards() const;
  absl::StatusOr<ListShardsResult> ListShards(const ListShardsRequest& request) const;
  StreamSummary DescribeStreamSummary() const;

  absl::Status SplitShard(ShardId shard_id, HashKey new_starting_hash_key);
  absl::Status MergeShards(ShardId shard_id, ShardId adjacent_shard_id);
  absl::Status UpdateShardCount(int target_shard_count);
  absl::Status UpdateStreamMode(CapacityMode mode);
  void Tick();
  absl::Status StartHousekeeping(absl::Duration interval);
  void StopHousekeeping();

  absl::StatusOr<ConsumerDescription> RegisterStreamConsumer(std::string_view name);
  absl::Status DeregisterStreamConsumer(std::string_view name);
  absl::StatusOr<ConsumerDescription> DescribeStreamConsumer(std::string_view name) const;
  std::vector<ConsumerDescription> ListStreamConsumers() const;
  absl::StatusOr<std::unique_ptr<Subscription>> SubscribeToShard(std::string_view consumer_name,
                                                                 ShardId shard_id,
                                                                 const StartingPosition& position,
                                                                 const SubscribeOptions& options);

  MetricsSnapshot metrics() const;

  absl::StatusOr<ShardIterator> GetShardIterator(ShardId shard_id,
                                                 const StartingPosition& position) const;
  absl::StatusOr<GetRecordsResult> GetRecords(const ShardIterator& iterator, int limit) const;

  absl::Status StartStreamEncryption(EncryptionType type, std::string_view key_id);
  absl::Status StopStreamEncryption(EncryptionType type, std::string_view key_id);

  absl::Status IncreaseStreamRetentionPeriod(absl::Duration retention);
  absl::Status DecreaseStreamRetentionPeriod(absl::Duration retention);

  size_t MemoryBytes() const;
  absl::Status Flush();
  absl::Status recovery_status() const { return recovery_status_; }
  // StorageOptions::read_only: the stream was opened to be looked at, never changed.
  bool read_only() const { return read_only_; }
  // kAccessDenied naming `operation`, when read_only(); OK otherwise.
  absl::Status CheckWritable(std::string_view operation) const;
  // Durable, writable streams: replaces <dir>/METRICS with ToJson(metrics()) and a newline, for
  // tools outside the process (`rill metrics`, `rill top`). Advisory: not synced; errors ignored.
  void WriteMetricsFile();
  uint64_t recovered_records() const { return recovered_records_; }
  uint64_t DiskBytes() const;

 private:
  // Durable mode: locks the directory and creates or recovers the stream there; create_only
  // refuses a directory that holds a stream.
  static absl::StatusOr<std::unique_ptr<StreamImpl>> OpenDurable(StreamOptions options,
                                                                 bool create_only, bool any_name);
  // Durable mode: opens every shard's store (replaying its records when `recovered`, the
  // metadata the stream was built from, is set) and writes the metadata.
  absl::Status AttachStorage(std::unique_ptr<StreamStore> store, const StreamMeta* recovered);
  // Server-side encryption (stream_encryption.cc). The context bound into a shard's frames: the
  // stream's seed and the shard's index.
  std::string ShardContext(uint32_t index) const;
  // What a shard's store reads and writes with now.
  ShardCrypto CryptoFor(uint32_t index) const;
  // A fresh data key under `key_id` from the provider (kKmsNotFound without one).
  absl::StatusOr<std::shared_ptr<const FrameWriteKey>> NewWriteKey(std::string_view key_id) const;
  // Sets the key new records are written with, in every shard store and the journal (null: in
  // the clear).
  absl::Status ApplyWriteKeyLocked(std::shared_ptr<const FrameWriteKey> key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  // The metadata as it is now; PersistMeta writes it (no-op in memory mode).
  StreamMeta BuildMetaLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  absl::Status PersistMetaLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  absl::Status PersistMeta() ABSL_LOCKS_EXCLUDED(shards_mu_);
  ConsumerDescription MakeConsumerDescription(std::string_view name, absl::Time created) const;
  // Durable mode: the registered consumers from and into the metadata.
  void RestoreConsumers(const StreamMeta& meta);
  void AppendConsumers(StreamMeta* meta) const;
  // Durable mode: evicts written chunks, oldest shards' first in rounds, while MemoryBytes()
  // exceeds the storage's memory budget.
  void EnforceMemoryBudget();
  // Group commit of `shard` after a put, if durable and due; kInternalFailure on an I/O error.
  absl::Status CommitShard(StreamShard* shard, bool force_sync = false);

  // `rate_limited`: whether the call counts against get_shard_iterator_calls_per_second.
  absl::StatusOr<ShardIterator> GetShardIteratorImpl(uint32_t shard_index,
                                                     const StartingPosition& position,
                                                     bool rate_limited = true) const;
  // The shard with that index, or null.
  StreamShard* FindShard(uint32_t index) const;
  // The shard with that index unless it does not exist or has expired: else kResourceNotFound.
  absl::StatusOr<StreamShard*> FindLiveShard(uint32_t index, int64_t now_us) const;
  bool Expired(const StreamShard& shard, int64_t now_us) const;
  ShardDescription Describe(const StreamShard& shard) const;
  // Validates a sequence_number_for_ordering; returns the counter it carries.
  absl::StatusOr<uint64_t> OrderingCounter(SequenceNumber s) const;
  // Trims every shard with the current retention, so that a later increase revives nothing.
  void TrimAll();
  // Trims `shard` to records that arrived at or after `expire_before_us` (retention) and the
  // memory limit's retirement cutoff, counting what the latter alone takes as retired. Returns
  // the first visible ordinal.
  uint64_t TrimShard(StreamShard& shard, int64_t expire_before_us) const;

  // The memory limit (stream_memory.cc). What a put checks under the shard's append lock with
  // kRejectPuts: OK, or the refusal.
  absl::Status CheckMemoryBudget() const;
  // kRejectPuts, after a refusal: applies retention to every shard (in a stream that is only
  // written to, nothing else would) and says whether that made room.
  bool TrimForRoom(int64_t now_us);
  // kRetireOldest: whether the stream holds more than its budget (one relaxed load).
  bool OverMemoryBudget() const {
    return retire_oldest_ && chunk_account_.bytes() > options_.memory_limit.budget_bytes;
  }
  // kRetireOldest: retires the oldest records, stream-wide by arrival, until the stream is
  // within its budget or only chunks writers are filling are left.
  void RetireOldest(int64_t now_us) ABSL_LOCKS_EXCLUDED(retire_mu_);
  // Sets the largest chunk a shard starts from the budget and the open shard count.
  void UpdateChunkCap(size_t open_shards);
  // The check and write shared by PutRecord and PutRecords: kOk on success, else the error code
  // with *error set.
  // Durable mode, kEveryBatch: what one call wrote that waits for the journal sync.
  struct DurablePut;
  ErrorCode PutOne(std::string_view partition_key, std::string_view data,
                   const std::optional<HashKey>& explicit_hash_key, uint64_t counter_floor,
                   int64_t now_us, PutRecordResult* result, std::string* error,
                   StreamShard** shard_out = nullptr, DurablePut* durable = nullptr);
  // Durable mode: appends to the shard's log and journal together (nothing on error). Returns
  // false if the shard is closed; sets *counter otherwise.
  absl::StatusOr<bool> AppendDurable(StreamShard* shard, std::string_view partition_key,
                                     std::string_view data, int64_t now_us, uint64_t counter_floor,
                                     int64_t expire_before, DurablePut* durable, uint64_t* counter);
  // Durable mode: writes one record into the call's journal region (reserving it first) and
  // raises the shard's counter ceiling when due. Runs under the shard's append lock.
  absl::Status JournalRecord(StreamShard* shard, DurablePut* durable,
                             std::string_view partition_key, std::string_view data,
                             uint64_t counter, int64_t arrival_us);
  // PutRecords' records routed to one shard, appended under one acquisition of its lock; the
  // results go to `result`. Records the shard refuses because it closed go through PutOne.
  void PutShardBatch(StreamShard* shard, absl::Span<const PutRecordsEntry> entries,
                     absl::Span<const uint32_t> indices, int64_t now_us, PutRecordsResult* result,
                     int64_t* throttled, std::vector<StreamShard*>* touched, DurablePut* durable);
  // kEveryBatch: syncs the journal for `durable`, then publishes its records.
  absl::Status FinishDurablePut(DurablePut& durable);
  // Without a flusher thread: segment writes and journal recycling that are due.
  void AfterDurablePut(absl::Span<StreamShard* const> touched);
  // Writes every shard's unwritten records to its segments and recycles the journal files they
  // cover; `seal` also ends the current journal file and syncs everything (Flush()).
  absl::Status Checkpoint(bool seal);
  // Durable mode, at open: every open shard's counter starts at its persisted ceiling, and new
  // ceilings are written.
  absl::Status SetCounterCeilingsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  void LinkChildrenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  absl::Status ValidateRecord(std::string_view partition_key, std::string_view data) const;

  // Resharding internals; all run under shards_mu_.
  absl::Status CheckCanReshard(int64_t now_us) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  int OpenShardCount() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  // Closes `parents` and opens children with `child_ranges`; a split passes one parent and two
  // ranges, a merge two parents and one range. Publishes the new routing table.
  // Durable mode: the children's stores and the metadata are written before the new table is
  // published, so no record reaches a child the disk does not know; an I/O error is returned
  // (the resharding itself has happened in memory).
  absl::Status Reshard(const std::vector<StreamShard*>& parents,
                       const std::vector<HashKeyRange>& child_ranges, int64_t now_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  // Reshard in steps: ReshardStep closes parents and opens children in a plan (memory only);
  // the parents are adjacent open shards of the plan, the children's ranges tile theirs in order;
  // CommitReshard writes the plan to disk in one metadata write, then publishes one routing
  // table, so a multi-step UpdateShardCount is one operation, also across a crash.
  struct ReshardPlan;
  void ReshardStep(ReshardPlan& plan, const std::vector<StreamShard*>& parents,
                   const std::vector<HashKeyRange>& child_ranges, int64_t now_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  absl::Status CommitReshard(ReshardPlan& plan, int64_t now_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  absl::Status SplitLocked(StreamShard* shard, HashKey key, int64_t now_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  absl::Status MergeLocked(StreamShard* shard, StreamShard* adjacent, int64_t now_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  void AutoScaleLocked(int64_t now_us) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);
  void MarkUpdated(int64_t now_us) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shards_mu_);

  const StreamOptions options_;
  const absl::Time creation_time_;
  const std::array<uint8_t, 16> seed_;  // the MD5 naming this stream, see StreamSeed()
  const uint64_t instance_;             // names this stream in iterators
  const uint32_t stream_tag_;           // names this stream in sequence numbers
  std::atomic<int64_t> retention_us_;
  // The highest cutoff applied before a retention increase: never visible again (durable mode
  // keeps it across a reopen, where the memory log's trim point is gone).
  std::atomic<int64_t> trim_floor_us_{INT64_MIN};

  // Every shard's chunk memory (MemoryBytes()); declared before the shards, which point to it.
  ChunkAccount chunk_account_;
  // The memory limit's policy, if a budget is set.
  const bool reject_puts_;
  const bool retire_oldest_;
  // kRejectPuts: the error a refused put gets (made once: a refusal copies it, no allocation).
  absl::Status memory_refusal_;
  // kRetireOldest: records that arrived before this are retired (only moves forward).
  std::atomic<int64_t> retire_before_us_{INT64_MIN};
  // One thread retires at a time; others over the budget wait for it, then find room.
  Mutex retire_mu_;

  mutable Mutex shards_mu_;
  // Every shard ever created, indexed by shard index; never shrinks while the stream lives.
  std::vector<std::unique_ptr<StreamShard>> shards_ ABSL_GUARDED_BY(shards_mu_);
  // Routing table of open shards. Replaced (never modified) when the shard set changes; old
  // tables live until the stream dies, so a put that loaded one never reads freed memory.
  std::atomic<const ShardMap*> shard_map_{nullptr};
  std::vector<std::unique_ptr<const ShardMap>> shard_maps_ ABSL_GUARDED_BY(shards_mu_);
  std::atomic<CapacityMode> capacity_mode_;
  // The stream is UPDATING until this time (StreamOptions::update_duration after a change).
  std::atomic<int64_t> updating_until_us_{INT64_MIN};
  // When UpdateShardCount and UpdateStreamMode ran, for their rolling 24-hour quotas.
  std::vector<int64_t> shard_count_updates_us_ ABSL_GUARDED_BY(shards_mu_);
  std::vector<int64_t> mode_updates_us_ ABSL_GUARDED_BY(shards_mu_);
  int64_t last_tick_us_ ABSL_GUARDED_BY(shards_mu_);

  // Registered consumers, in registration order.
  mutable Mutex consumers_mu_;
  std::vector<std::shared_ptr<ConsumerState>> consumers_ ABSL_GUARDED_BY(consumers_mu_);

  // Durable mode only.
  std::unique_ptr<StreamStore> store_;
  absl::Status recovery_status_;
  bool read_only_ = false;
  // Server-side encryption. The keyring unwraps data keys through options_.key_provider.
  std::unique_ptr<FrameKeyring> keyring_;
  mutable Mutex encryption_mu_ ABSL_ACQUIRED_AFTER(shards_mu_);
  EncryptionType encryption_type_ ABSL_GUARDED_BY(encryption_mu_) = EncryptionType::kNone;
  std::string key_id_ ABSL_GUARDED_BY(encryption_mu_);
  std::shared_ptr<const FrameWriteKey> write_key_ ABSL_GUARDED_BY(encryption_mu_);
  std::deque<int64_t> key_changes_us_ ABSL_GUARDED_BY(encryption_mu_);  // the last 24 hours
  uint64_t recovered_records_ = 0;
  std::atomic<size_t> evict_round_{0};
  // The background group commit (StorageOptions::background_flush).
  void StopFlusher();
  Mutex flusher_mu_;
  CondVar flusher_cv_;
  bool flusher_stop_ ABSL_GUARDED_BY(flusher_mu_) = false;
  // Serialises writers of <dir>/METRICS (the flusher and Flush).
  Mutex metrics_file_mu_;
  std::thread flusher_thread_ ABSL_GUARDED_BY(flusher_mu_);

  // Stream-level counters that no shard owns (see metrics()).
  struct Counters;
  std::unique_ptr<Counters> counters_;

  // The housekeeping thread (StartHousekeeping): Tick() every interval of the stream's clock,
  // sleeping on housekeeping_waker_ (Clock::WaitUntil) in between.
  Mutex housekeeping_mu_;
  bool housekeeping_stop_ ABSL_GUARDED_BY(housekeeping_mu_) = false;
  std::thread housekeeping_thread_ ABSL_GUARDED_BY(housekeeping_mu_);
  Waker housekeeping_waker_;
};

// Per-call counters. Each is one relaxed add per call (PutRecords and GetRecords amortise it over
// their records; PutRecord's success count is derived instead, see metrics()).
struct StreamImpl::Counters {
  std::atomic<int64_t> put_record_failure{0};
  std::atomic<int64_t> put_records_success{0};
  std::atomic<int64_t> put_records_total{0};
  std::atomic<int64_t> put_records_successful{0};
  std::atomic<int64_t> put_records_failed{0};
  std::atomic<int64_t> put_records_throttled{0};
  std::atomic<int64_t> get_records_success{0};
  std::atomic<int64_t> memory_budget_exceeded{0};
  std::atomic<int64_t> retired_records{0};
  std::atomic<int64_t> retired_bytes{0};
  struct Latency {
    std::atomic<int64_t> count{0};
    std::atomic<int64_t> sum_us{0};
    std::atomic<int64_t> max_us{0};
    void Record(int64_t us) {
      count.fetch_add(1, std::memory_order_relaxed);
      sum_us.fetch_add(us, std::memory_order_relaxed);
      int64_t seen = max_us.load(std::memory_order_relaxed);
      while (us > seen && !max_us.compare_exchange_weak(seen, us, std::memory_order_relaxed)) {
      }
    }
    LatencySummary Get() const {
      return LatencySummary{count.load(std::memory_order_relaxed),
                            sum_us.load(std::memory_order_relaxed),
                            max_us.load(std::memory_order_relaxed)};
    }
  };
  Latency put_record_latency;
  Latency put_records_latency;
  Latency get_records_latency;
};

// Helpers shared by the stream's source files.
inline constexpr int64_t kMicrosPerDay = int64_t{86400} * 1000000;
inline int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }
// Adds `v` to a relaxed counter.
inline void Add(std::atomic<int64_t>& counter, int64_t v) {
  counter.fetch_add(v, std::memory_order_relaxed);
}
// kInvalidArgument unless `retention` is within [24 h, 8760 h] (from 1 ms with `allow_short`).
absl::Status ValidateRetention(absl::Duration retention, bool allow_short);

}  // namespace rill::internal

#endif  // RILL_STREAM_STREAM_IMPL_H_
