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
#ifndef RILL_STREAM_STREAM_H_
#define RILL_STREAM_STREAM_H_

#include <atomic>
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
#include "rill/base/internal/mutex.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/stream/record.h"
#include "rill/stream/shard_description.h"
#include "rill/stream/shard_iterator.h"
#include "rill/stream/stream_options.h"

namespace rill {

namespace internal {
struct StreamShard;
struct ShardMap;
}  // namespace internal

// Kinesis' fixed limits that are not options.
inline constexpr int kMaxPartitionKeyChars = 256;
inline constexpr int kMaxPutRecordsEntries = 500;
inline constexpr int kMaxGetRecordsLimit = 10000;
inline constexpr size_t kMaxGetRecordsBytes = size_t{10} << 20;
inline constexpr absl::Duration kShardIteratorLifetime = absl::Minutes(5);
inline constexpr absl::Duration kMinRetention = absl::Hours(24);
inline constexpr absl::Duration kMaxRetention = absl::Hours(8760);

struct GetRecordsResult {
  // The records, in sequence-number order. May be empty even when more records exist (keep
  // calling with next_shard_iterator).
  std::vector<Record> records;
  // Where to continue. Absent only when the shard is closed and every record was returned.
  std::optional<ShardIterator> next_shard_iterator;
  // How far behind the newest record of the shard this read is: 0 when it returned everything
  // published, otherwise now minus the arrival time of the first record not yet returned.
  int64_t millis_behind_latest = 0;
  // Set on the read that reaches the end of a closed shard: the shards that took over its range.
  std::vector<ChildShard> child_shards;
  // Keeps the storage that `records` point into alive. Copying the result shares it.
  std::vector<std::shared_ptr<const void>> storage;
};

class Stream {
 public:
  // Creates an empty stream. Errors: kInvalidArgument for a bad name, a shard count below 1 or a
  // retention outside [24 h, 8760 h]; kValidation for max_record_bytes outside [1 MiB, 10 MiB];
  // kLimitExceeded for more shards than max_shards.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Stream>> Create(StreamOptions options);

  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  const std::string& name() const { return options_.name; }
  const StreamOptions& options() const { return options_; }
  // The current retention period.
  absl::Duration retention() const;
  // The time the stream was created, by its clock.
  absl::Time creation_time() const { return creation_time_; }

  // Puts one record. partition_key: 1-256 characters (UTF-16 code units, as Kinesis counts) of
  // valid UTF-8; key bytes plus data bytes at most max_record_bytes. Errors: kInvalidArgument for
  // a bad key, an oversized record or a sequence_number_for_ordering this stream did not issue.
  // Thread-safe; does not allocate.
  [[nodiscard]] absl::StatusOr<PutRecordResult> PutRecord(std::string_view partition_key,
                                                          std::string_view data,
                                                          const PutOptions& options = {});

  // Puts up to 500 records. The request as a whole fails with kInvalidArgument if it has no entry,
  // more than 500, or more than max_put_records_bytes of keys and data. Otherwise each entry
  // succeeds or fails on its own: a bad entry gets its own error code and message, the others are
  // written, and entries bound for the same shard keep request order. (Kinesis rejects the whole
  // request for a malformed entry; rill fails only that entry, so nothing valid is held back.)
  [[nodiscard]] absl::StatusOr<PutRecordsResult> PutRecords(
      absl::Span<const PutRecordsEntry> entries);

  // Every shard that still holds retained records or is open, in shard-id order.
  std::vector<ShardDescription> ListShards() const;

  // An iterator at `position` in `shard_id`. Errors: kInvalidArgument for a malformed shard id or
  // any breach of StartingPosition's rules (including a sequence number of another shard or
  // stream, or one not issued yet); kResourceNotFound for a shard that does not exist.
  [[nodiscard]] absl::StatusOr<ShardIterator> GetShardIterator(
      ShardId shard_id, const StartingPosition& position) const;
  [[nodiscard]] absl::StatusOr<ShardIterator> GetShardIterator(
      std::string_view shard_id, const StartingPosition& position) const;

  // Reads up to `limit` (1..10,000) records, and at most 10 MiB of data (at least one record),
  // from the iterator's position. Errors: kInvalidArgument for a bad limit or an iterator of
  // another stream; kExpiredIterator for an iterator issued more than 5 minutes ago;
  // kResourceNotFound for a shard that no longer exists.
  [[nodiscard]] absl::StatusOr<GetRecordsResult> GetRecords(const ShardIterator& iterator,
                                                            int limit = kMaxGetRecordsLimit) const;

  // Kinesis' retention changes: Increase requires new >= current, Decrease new <= current, both
  // within [24 h, 8760 h] (or the short-retention escape). Records already past the old period
  // stay gone after an increase. Errors: kInvalidArgument.
  [[nodiscard]] absl::Status IncreaseStreamRetentionPeriod(absl::Duration retention);
  [[nodiscard]] absl::Status DecreaseStreamRetentionPeriod(absl::Duration retention);

  // Bytes of record storage held in memory, across shards.
  size_t MemoryBytes() const;

 private:
  explicit Stream(StreamOptions options);

  absl::StatusOr<ShardIterator> GetShardIteratorImpl(uint32_t shard_index,
                                                     const StartingPosition& position) const;
  // The shard with that index, or null.
  internal::StreamShard* FindShard(uint32_t index) const;
  // Validates a sequence_number_for_ordering; returns the counter it carries.
  absl::StatusOr<uint64_t> OrderingCounter(SequenceNumber s) const;
  // Trims every shard with the current retention, so that a later increase revives nothing.
  void TrimAll() const;
  // The check and write shared by PutRecord and PutRecords: 0 on success, else the error code
  // with *error set.
  ErrorCode PutOne(std::string_view partition_key, std::string_view data,
                   const std::optional<HashKey>& explicit_hash_key, uint64_t counter_floor,
                   int64_t now_us, PutRecordResult* result, std::string* error);
  absl::Status ValidateRecord(std::string_view partition_key, std::string_view data) const;

  const StreamOptions options_;
  const absl::Time creation_time_;
  const uint64_t instance_;     // names this stream in iterators
  const uint32_t stream_tag_;   // names this stream in sequence numbers
  std::atomic<int64_t> retention_us_;

  mutable internal::Mutex shards_mu_;
  // Every shard ever created, indexed by shard index; never shrinks while the stream lives.
  std::vector<std::unique_ptr<internal::StreamShard>> shards_ ABSL_GUARDED_BY(shards_mu_);
  // Routing table of open shards. Replaced (never modified) when the shard set changes; old
  // tables live until the stream dies, so a put that loaded one never reads freed memory.
  std::atomic<const internal::ShardMap*> shard_map_{nullptr};
  std::vector<std::unique_ptr<const internal::ShardMap>> shard_maps_ ABSL_GUARDED_BY(shards_mu_);
};

}  // namespace rill

#endif  // RILL_STREAM_STREAM_H_
