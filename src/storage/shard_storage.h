// ShardStorage: one shard's records below the stream. It owns the memory log (ShardLog) and, in
// durable mode, the shard's segment files (ShardStore), and answers for both at once: append
// goes to the log (the stream's journal hook makes it durable), commit writes the log behind to
// the segments, reads and position lookups fall through from memory to disk, trim applies
// retention to both, eviction drops written chunks from memory, and recovery rebuilds the log
// from the segments and the journal.
//
// The stream keeps routing, limits, lineage and metrics; everything about where a shard's bytes
// live is here.
//
// Thread safety: as ShardLog (one writer at a time under the log's append lock, readers
// lock-free) and ShardStore (Commit/Sync serialise on the store's mutex). Attach the disk
// (OpenDisk / Recover) before the shard is reachable by other threads.
#ifndef RILL_STORAGE_SHARD_STORAGE_H_
#define RILL_STORAGE_SHARD_STORAGE_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "log/shard_log.h"
#include "rill/storage/storage_options.h"
#include "storage/journal.h"
#include "storage/stream_store.h"

namespace rill::internal {

// MillisBehindLatest of a read that left records unread, the first of them stamped `arrival_us`:
// at least 1 however recent it is, since 0 says there is nothing more to read (Kinesis: "zero
// indicates that record processing is caught up"), and consumers stop on it.
inline int64_t MillisBehind(int64_t now_us, int64_t arrival_us) {
  return std::max<int64_t>(1, (now_us - arrival_us) / 1000);
}

// What one read of a shard returned (see ShardStorage::Read).
struct ShardRead {
  uint64_t next = 0;            // the ordinal after the last record read
  uint64_t records = 0;         // records read
  int64_t bytes_with_keys = 0;  // throughput limits and metrics count keys and data
  int64_t millis_behind = 0;    // MillisBehind() of the first record not read; 0 if none
  absl::Status status;          // durable mode: a cold read that failed (DATA_LOSS, I/O)
};

class ShardStorage {
 public:
  // `account`: see ShardLog.
  explicit ShardStorage(uint64_t first_counter, ChunkAccount* account = nullptr)
      : log_(first_counter, account) {}
  ShardStorage(const ShardStorage&) = delete;
  ShardStorage& operator=(const ShardStorage&) = delete;

  ShardLog& log() { return log_; }
  const ShardLog& log() const { return log_; }
  // Durable mode: the segment files; null in memory mode, or if opening them failed (every put
  // to the shard then fails with that error).
  ShardStore* disk() const { return disk_.get(); }

  // Durable mode, a new shard: creates its (empty) directory of segments.
  [[nodiscard]] absl::Status OpenDisk(const std::string& dir, const StorageOptions& options,
                                      ShardCrypto crypto = {});

  // Durable mode, at open: replays the shard's segments from `dir` into the log, then the
  // journal's `entries` for the shard that the segments do not hold yet (sorted here by
  // counter), writes and syncs what the journal added, and closes the log at `ending_counter`
  // when the shard was closed. Records that arrived before `expire_before_us` are not kept;
  // replay keeps at most `memory_budget` bytes in memory (0 = no bound). The segments' damage
  // is reported in `recovery`, not as an error.
  struct Recovered {
    ShardRecovery recovery;
    uint64_t journal_records = 0;
    // What Recover left to write: the journal's records (and those of a set-aside segment),
    // written by FinishRecovery once every shard has recovered, so that a shard that cannot
    // (a key error) leaves nothing written in the others.
    bool needs_commit = false;
  };
  [[nodiscard]] absl::Status Recover(const std::string& dir, const StorageOptions& options,
                                     int64_t expire_before_us, size_t memory_budget,
                                     std::vector<JournalEntry>& entries,
                                     std::optional<uint64_t> ending_counter, int64_t now_ns,
                                     Recovered* out, ShardCrypto crypto = {});
  // Writes and syncs what Recover left to write (out.needs_commit).
  [[nodiscard]] absl::Status FinishRecovery(int64_t now_ns);

  // Retention: makes records that arrived before `cutoff_us` invisible for good, in memory and
  // on disk (the trim point only moves forward), reclaims memory, and returns the first visible
  // ordinal. Readers call it too: retention is applied on every access. DropExpired deletes
  // whole segments older than `cutoff_us`, or all of them when the shard `expired`.
  uint64_t Trim(int64_t cutoff_us);
  // As Trim, counting into `*counted` the in-memory records it drops that arrived at or after
  // `count_from_us` (ShardLog::TrimBefore).
  uint64_t Trim(int64_t cutoff_us, int64_t count_from_us, ShardLog::Trimmed* counted);
  void DropExpired(int64_t cutoff_us, bool expired);

  // The first ordinal in [from, end) whose counter >= `counter` (arrival >= `time_us`), or
  // `end`; `from` is the first visible ordinal. Durable mode: below memory, the disk answers.
  [[nodiscard]] absl::StatusOr<uint64_t> LowerBoundCounter(uint64_t counter, uint64_t from,
                                                           uint64_t end) const;
  [[nodiscard]] absl::StatusOr<uint64_t> LowerBoundTime(int64_t time_us, uint64_t from,
                                                        uint64_t end) const;

  // Reads from ordinal `from` to `end`: at most `limit` records and `max_data_bytes` of data,
  // but always at least one record. Records evicted from memory come from the segment (one
  // frame per call). Calls keep(std::shared_ptr<const void>) for each piece of storage the
  // records point into, then emit(const StoredRecord&) for each record, in order. Allocates
  // nothing per record.
  template <typename Keep, typename Emit>
  ShardRead Read(uint64_t from, uint64_t end, size_t limit, size_t max_data_bytes, int64_t now_us,
                 Keep keep, Emit emit) const;

  // Durable mode: writing behind. NeedsCommit: the log has records the segments lack.
  // ShouldCommit: enough bytes or time have gathered to write now (the stream's clock, ns).
  bool NeedsCommit() const { return disk_->persisted_ordinal() < log_.end_ordinal(); }
  bool ShouldCommit(int64_t now_ns) const { return disk_->ShouldCommit(log_, now_ns); }
  [[nodiscard]] absl::Status Commit(bool force_sync, int64_t now_ns) {
    return disk_->Commit(log_, force_sync, now_ns);
  }
  // Durable mode: drops written chunks from memory, oldest first, until `max_bytes` are freed.
  // Returns the bytes freed.
  size_t EvictWritten(size_t max_bytes = std::numeric_limits<size_t>::max()) {
    return log_.EvictBefore(disk_->persisted_ordinal(), max_bytes);
  }
  uint64_t disk_bytes() const { return disk_ == nullptr ? 0 : disk_->disk_bytes(); }

 private:
  ShardLog log_;
  std::unique_ptr<ShardStore> disk_;
};

template <typename Keep, typename Emit>
ShardRead ShardStorage::Read(uint64_t from, uint64_t end, size_t limit, size_t max_data_bytes,
                             int64_t now_us, Keep keep, Emit emit) const {
  ShardRead read;
  if (disk_ != nullptr && from < end) {
    const uint64_t memory_start = log_.memory_start_ordinal();
    if (from < memory_start) {
      ShardStore::ColdRead cold;
      read.status =
          disk_->ReadCold(from, std::min(end, memory_start), limit, max_data_bytes, &cold);
      read.next = from;
      if (!read.status.ok()) return read;
      if (!cold.records.empty()) {
        keep(cold.keep_alive);
        for (const StoredRecord& r : cold.records) {
          read.bytes_with_keys += static_cast<int64_t>(r.data.size() + r.partition_key.size());
          emit(r);
        }
        read.records = cold.records.size();
        read.next = cold.next;
        if (read.next < end)
          read.millis_behind = MillisBehind(now_us, cold.records.back().arrival_us);
        return read;
      }
      from = std::max(from, std::min(cold.next, memory_start));
      if (from < memory_start) from = memory_start;  // nothing on disk there any more
    }
  }
  ShardLog::Cursor cursor(log_, from, end);
  size_t data_bytes = 0;
  const void* pinned = nullptr;
  while (cursor.Valid() && read.records < limit) {
    const StoredRecord r = cursor.Get();
    if (read.records > 0 && data_bytes + r.data.size() > max_data_bytes) break;
    if (cursor.chunk().get() != pinned) {
      pinned = cursor.chunk().get();
      keep(cursor.chunk());
    }
    data_bytes += r.data.size();
    read.bytes_with_keys += static_cast<int64_t>(r.data.size() + r.partition_key.size());
    emit(r);
    ++read.records;
    cursor.Next();
  }
  read.next = cursor.ordinal();
  if (cursor.Valid()) read.millis_behind = MillisBehind(now_us, cursor.Get().arrival_us);
  return read;
}

}  // namespace rill::internal

#endif  // RILL_STORAGE_SHARD_STORAGE_H_
