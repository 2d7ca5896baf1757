// ShardLog: one shard's append-only record log in memory.
//
// Records live in large chunks, packed back to back with a 14-byte header each and a sparse
// index (one 4-byte offset per 16 records) growing down from the chunk's end: about 14.25 bytes
// of overhead per record beyond its key and data, and no allocation per record.
//
// Positions are ordinals: the i-th record ever appended to the shard has ordinal i, forever, so a
// position stays meaningful while older records are trimmed.
//
// Thread safety: Append() may be called from many threads (they serialise on the shard's append
// lock, which fixes put order). Readers (Seek, cursors, lookups) never take the append lock: they
// see the published prefix [trim_ordinal(), end_ordinal()). Chunks are reference-counted, so a
// chunk dropped by retention stays alive while a reader or a returned record still points into it.
// Moving the trim point is serialised on a trim lock, taken only when there is something to trim.
#ifndef RILL_LOG_SHARD_LOG_H_
#define RILL_LOG_SHARD_LOG_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"

namespace rill::internal {

// One record as stored; the views point into a chunk.
struct StoredRecord {
  uint64_t counter;
  int64_t arrival_us;
  std::string_view partition_key;
  std::string_view data;
};

inline constexpr size_t kRecordHeaderBytes = 14;  // u32 counter delta, u32 time delta, u16, u32
inline constexpr uint32_t kIndexStride = 16;      // one sparse-index entry per 16 records

// Chunk memory, from ChunkPool::Default() (log/chunk_pool.h): 2 MiB regions marked for
// transparent huge pages, smaller chunks carved from them, freed chunks pooled.
inline constexpr size_t kHugeChunkBytes = size_t{2} << 20;
char* AllocateChunkBytes(size_t capacity);
void FreeChunkBytes(char* bytes, size_t capacity);

// The chunk memory of a set of logs (one stream's), kept as chunks come and go: the stream compares
// it with its memory budget on every put, and one relaxed load must do. It also caps the size of
// the chunks the logs start, so that a tight budget is filled, refused and retired at a finer
// grain than the 2 MiB chunks a busy shard grows to. Thread-safe.
class ChunkAccount {
 public:
  // Bytes of the chunks every attached log holds: the sum of their MemoryBytes().
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  // The largest chunk a log starts (a record too large for it still gets a chunk of its own
  // size). Range: [4 KiB, 2 MiB], a power of two. Default: 2 MiB.
  size_t max_chunk_bytes() const { return max_chunk_bytes_.load(std::memory_order_relaxed); }
  void set_max_chunk_bytes(size_t bytes) {
    max_chunk_bytes_.store(bytes, std::memory_order_relaxed);
  }

 private:
  friend class ShardLog;
  // Under the log's chunk lock, as the chunk list changes (only when a chunk is started or
  // dropped). Relaxed: a reader wants the count, not what it was published with.
  void Add(size_t bytes) { bytes_.fetch_add(bytes, std::memory_order_relaxed); }
  void Sub(size_t bytes) { bytes_.fetch_sub(bytes, std::memory_order_relaxed); }

  std::atomic<size_t> bytes_{0};
  std::atomic<size_t> max_chunk_bytes_{kHugeChunkBytes};
};

class Chunk {
 public:
  Chunk(size_t capacity, uint64_t first_ordinal, uint64_t base_counter, int64_t base_us)
      : bytes_(AllocateChunkBytes(capacity), Deleter{capacity}),
        capacity_(capacity),
        first_ordinal_(first_ordinal),
        base_counter_(base_counter),
        base_us_(base_us) {}

  uint64_t first_ordinal() const { return first_ordinal_; }
  uint64_t base_counter() const { return base_counter_; }
  int64_t base_us() const { return base_us_; }
  size_t capacity() const { return capacity_; }
  // Records written so far; readers must also bound themselves by the log's published end.
  uint32_t count() const { return count_.load(std::memory_order_acquire); }

  // Offset of record `i`'s header. REQUIRES: i < count().
  size_t OffsetOf(uint32_t i) const {
    size_t offset = IndexEntry(i / kIndexStride);
    for (uint32_t j = i - i % kIndexStride; j < i; ++j) offset += RecordSizeAt(offset);
    return offset;
  }

  StoredRecord RecordAt(size_t offset) const {
    const char* p = bytes_.get() + offset;
    uint32_t counter_delta, time_delta, data_len;
    uint16_t key_len;
    std::memcpy(&counter_delta, p, 4);
    std::memcpy(&time_delta, p + 4, 4);
    std::memcpy(&key_len, p + 8, 2);
    std::memcpy(&data_len, p + 10, 4);
    const char* key = p + kRecordHeaderBytes;
    return StoredRecord{base_counter_ + counter_delta, base_us_ + time_delta,
                        std::string_view(key, key_len), std::string_view(key + key_len, data_len)};
  }

  // Offset just past record `i - 1` (the start of record `i`, or of free space if i == count()).
  // REQUIRES: 0 < i <= count().
  size_t EndOffsetOf(uint32_t i) const {
    const size_t last = OffsetOf(i - 1);
    return last + RecordSizeAt(last);
  }

  size_t RecordSizeAt(size_t offset) const {
    const char* p = bytes_.get() + offset;
    uint16_t key_len;
    uint32_t data_len;
    std::memcpy(&key_len, p + 8, 2);
    std::memcpy(&data_len, p + 10, 4);
    return kRecordHeaderBytes + key_len + data_len;
  }

 private:
  friend class ShardLog;

  uint32_t IndexEntry(uint32_t k) const {
    uint32_t offset;
    std::memcpy(&offset, bytes_.get() + capacity_ - 4 * (k + 1), 4);
    return offset;
  }

  struct Deleter {
    size_t capacity;
    void operator()(char* p) const { FreeChunkBytes(p, capacity); }
  };
  std::unique_ptr<char[], Deleter> bytes_;
  const size_t capacity_;
  const uint64_t first_ordinal_;
  const uint64_t base_counter_;
  const int64_t base_us_;
  std::atomic<uint32_t> count_{0};
};

class ShardLog {
 public:
  // Chunk sizes adapt to the shard's traffic: each new chunk is a power of two near twice the bytes
  // the previous one held, within [kMinChunkBytes, kMaxChunkBytes] (a larger record gets a chunk
  // of its own size). Freed chunks are pooled for reuse (see log/chunk_pool.h).
  static constexpr size_t kMinChunkBytes = 4 << 10;
  static constexpr size_t kMaxChunkBytes = kHugeChunkBytes;

  // `first_counter` is the counter of the shard's first record (its starting sequence number).
  // `account`, if not null, counts this log's chunks and caps their size; it must outlive the log.
  explicit ShardLog(uint64_t first_counter, ChunkAccount* account = nullptr)
      : account_(account),
        next_counter_(first_counter),
        next_counter_published_(first_counter),
        first_counter_(first_counter) {}

  ShardLog(const ShardLog&) = delete;
  ShardLog& operator=(const ShardLog&) = delete;

  struct Appended {
    uint64_t counter;
    int64_t arrival_us;
    uint64_t ordinal;
  };

  // REQUIRES: key.size() <= 65535 (stored in 16 bits; streams allow at most 1,024 bytes).
  // Appends a record stamped `now_us` (raised to the previous record's time if the clock went
  // backwards) with a counter above both the previous record's and `counter_floor` (exclusive;
  // 0 = none). Returns nullopt if the log is closed. Allocates only when a chunk fills.
  // If `expire_before_us` is past the oldest chunk's last record, drops expired chunks.
  std::optional<Appended> Append(std::string_view key, std::string_view data, int64_t now_us,
                                 uint64_t counter_floor, int64_t expire_before_us);

  // Durable mode. As Append, but first calls `journal(counter, arrival_us)` under the append
  // lock, which fixes the order of a shard's journal entries to the order of its records; if it
  // fails, nothing is appended (and the counter is not used) and its status is returned.
  // Returns nullopt if the log is closed.
  //
  // Visibility::kDeferred (a put that must sync before it is acknowledged): the record is
  // written but readers see it only once its writer, and every writer of a deferred record
  // before it, has called FinishDeferred. A writer's first deferred record in this log passes
  // kDeferredFirst, which enters the writer (by that record's ordinal) in the log's ledger of
  // unfinished writers; its later records pass kDeferred.
  enum class Visibility { kNow, kDeferredFirst, kDeferred };
  absl::StatusOr<std::optional<Appended>> AppendJournaled(
      std::string_view key, std::string_view data, int64_t now_us, uint64_t counter_floor,
      int64_t expire_before_us, Visibility visibility,
      absl::FunctionRef<absl::Status(uint64_t counter, int64_t arrival_us)> journal)
      ABSL_LOCKS_EXCLUDED(append_mu_, ledger_mu_);

  // A batch of one call's records for one shard, appended under one acquisition of the append
  // lock. The log fills in counter, arrival and ordinal.
  struct BatchRecord {
    std::string_view key;
    std::string_view data;
    uint32_t index = 0;  // the caller's
    uint64_t counter = 0;
    int64_t arrival_us = 0;
    uint64_t ordinal = 0;
  };
  // As AppendJournaled for each record of `records` in order (the first with `visibility`, the
  // rest kDeferred if it is deferred), calling `journal(record)` before each. Stops at the first
  // record the journal refuses, returning its status; `*appended` receives how many were
  // appended (fewer than records.size() with OK: the log is closed). Allocates only when a
  // chunk fills.
  absl::Status AppendJournaledBatch(absl::Span<BatchRecord> records, int64_t now_us,
                                    int64_t expire_before_us, Visibility visibility,
                                    absl::FunctionRef<absl::Status(const BatchRecord&)> journal,
                                    size_t* appended) ABSL_LOCKS_EXCLUDED(append_mu_, ledger_mu_);

  // Ends the writer whose first deferred record has ordinal `start` and whose records here end
  // below `end`. If `durable`, its records may become visible: the log publishes up to the first
  // record of a writer still unfinished (or everything written, if none is). If not (its sync
  // failed), the writer stays in the ledger and nothing from its first record on is ever
  // published. Why a ledger: writers sync their own journal regions, and one that syncs first
  // must not make visible the records of an earlier writer that are not durable yet.
  void FinishDeferred(uint64_t start, uint64_t end, bool durable) ABSL_LOCKS_EXCLUDED(ledger_mu_);

  // Makes every later record's counter greater than `floor` (recovery of a durable shard: never
  // reuse a counter a lost record may have had). Never lowers the next counter.
  void RaiseNextCounter(uint64_t floor);

  // Closes the log: later appends fail. Returns the last counter issued, or nullopt if none was.
  // Closing twice returns the same answer.
  std::optional<uint64_t> Close();
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  // Once closed(): the counter of the shard's ending sequence number, at or above every record's
  // counter and at or above first_counter() (an empty closed shard ends where it started).
  uint64_t ending_counter() const { return ending_counter_.load(std::memory_order_acquire); }
  // Once closed(): the newest record's arrival time (INT64_MIN if the log is empty). It can be
  // later than the clock at closing when the clock was set back (arrivals never go backwards).
  int64_t last_arrival_at_close_us() const {
    return last_arrival_at_close_us_.load(std::memory_order_acquire);
  }

  // One past the last published ordinal.
  uint64_t end_ordinal() const { return published_.load(std::memory_order_acquire); }
  // The counter the next record would get at least (never decreases).
  uint64_t next_counter() const { return next_counter_published_.load(std::memory_order_acquire); }
  uint64_t first_counter() const { return first_counter_; }
  // Bytes of keys and data appended so far (IncomingBytes); end_ordinal() counts the records.
  uint64_t appended_bytes() const { return appended_bytes_.load(std::memory_order_relaxed); }

  // Makes records that arrived before `cutoff_us` invisible for good (the trim point only moves
  // forward, so raising retention later revives nothing), reclaims whole chunks below the trim
  // point, and returns the first visible ordinal.
  uint64_t TrimBefore(int64_t cutoff_us) ABSL_LOCKS_EXCLUDED(trim_mu_);
  // As TrimBefore, and adds to `*counted` the records this call made invisible that arrived at or
  // after `count_from_us`, and their key and data bytes: a stream retiring records early (cutoff
  // above retention's) counts exactly what it took. Each record is counted by one call only.
  // In-memory logs: records already evicted to disk are not counted.
  struct Trimmed {
    uint64_t records = 0;
    uint64_t bytes = 0;
  };
  uint64_t TrimBefore(int64_t cutoff_us, int64_t count_from_us, Trimmed* counted)
      ABSL_LOCKS_EXCLUDED(trim_mu_);
  // The newest record's arrival in the oldest chunk that no writer fills any more (sealed), or
  // INT64_MAX if there is none.
  int64_t oldest_sealed_last_us() const {
    return oldest_sealed_last_us_.load(std::memory_order_relaxed);
  }
  // A stream's memory limit: trims every record of the oldest sealed chunk (and any before it)
  // and reclaims the chunk, if its newest record still arrived at `last_us` (what
  // oldest_sealed_last_us() said); counts as TrimBefore does. Returns whether it did (false: a
  // concurrent trim took that chunk, or it is not sealed).
  bool RetireOldestChunk(int64_t last_us, int64_t count_from_us, Trimmed* counted)
      ABSL_LOCKS_EXCLUDED(trim_mu_, chunks_mu_);
  uint64_t trim_ordinal() const { return trim_ordinal_.load(std::memory_order_acquire); }

  // Durable mode: records below the returned ordinal are not in memory any more (evicted to the
  // segment files); the log's end if no chunk is held.
  uint64_t memory_start_ordinal() const ABSL_LOCKS_EXCLUDED(chunks_mu_);
  // Durable mode: drops the chunks (never the newest) whose records all lie below `ordinal`,
  // which must be written to disk already, oldest first, until at least `max_bytes` are given
  // back. Returns the bytes given back.
  size_t EvictBefore(uint64_t ordinal, size_t max_bytes = std::numeric_limits<size_t>::max())
      ABSL_LOCKS_EXCLUDED(chunks_mu_);
  // Durable mode: retention found on disk that records below `ordinal` have expired.
  void RaiseTrim(uint64_t ordinal) ABSL_LOCKS_EXCLUDED(trim_mu_);

  // The first ordinal in [trim, end) whose record has counter >= `counter`, or `end`.
  uint64_t LowerBoundCounter(uint64_t counter, uint64_t end) const;
  // The first ordinal in [trim, end) whose record arrived at or after `time_us`, or `end`.
  uint64_t LowerBoundTime(int64_t time_us, uint64_t end) const;

  // Reads records in ordinal order. A cursor holds a reference on its current chunk.
  class Cursor {
   public:
    // Positions at `ordinal`, clamped up to the oldest record still in memory, bounded by `end`.
    Cursor(const ShardLog& log, uint64_t ordinal, uint64_t end);
    bool Valid() const { return ordinal_ < end_; }
    uint64_t ordinal() const { return ordinal_; }
    StoredRecord Get() const { return chunk_->RecordAt(offset_); }
    const std::shared_ptr<const Chunk>& chunk() const { return chunk_; }
    void Next();

   private:
    void Load(uint64_t ordinal);

    const ShardLog* log_;
    uint64_t ordinal_;
    uint64_t end_;
    std::shared_ptr<const Chunk> chunk_;
    size_t offset_ = 0;
  };

  // Registers `waker` to be woken after every append (and on Close). The waker must be removed
  // before it is destroyed.
  void AddWaker(Waker* waker) ABSL_LOCKS_EXCLUDED(wakers_mu_);
  void RemoveWaker(Waker* waker) ABSL_LOCKS_EXCLUDED(wakers_mu_);

  // Approximate bytes held by chunks (capacity, not just what is used).
  size_t MemoryBytes() const;

 private:
  // The chunk holding `ordinal` (or the oldest one if it was reclaimed), or null if none.
  std::shared_ptr<const Chunk> FindChunk(uint64_t ordinal) const ABSL_LOCKS_EXCLUDED(chunks_mu_);
  int64_t ArrivalAt(uint64_t ordinal) const;
  // Adds the records [from, to) still in memory, and their keys plus data, to *counted: per
  // chunk from two offsets (at most 2 * kIndexStride record headers read), not record by record.
  void CountRecords(uint64_t from, uint64_t to, Trimmed* counted) const;
  void Reclaim() ABSL_EXCLUSIVE_LOCKS_REQUIRED(trim_mu_) ABSL_LOCKS_EXCLUDED(chunks_mu_);
  // Moves the trim point up to `target` (never down), counting as TrimBefore does.
  void TrimToLocked(uint64_t target, int64_t count_from_us, Trimmed* counted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(trim_mu_);
  // Drops the first `drop` chunks; updates the account and the oldest sealed chunk's time.
  void DropChunksLocked(size_t drop) ABSL_EXCLUSIVE_LOCKS_REQUIRED(chunks_mu_);
  // Writes one record at `counter` / `arrival_us`; publishes it if `publish`.
  void WriteLocked(std::string_view key, std::string_view data, uint64_t counter,
                   int64_t arrival_us, bool publish) ABSL_EXCLUSIVE_LOCKS_REQUIRED(append_mu_);
  uint64_t NextCounterLocked(uint64_t counter_floor) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(append_mu_) {
    return counter_floor == 0 ? next_counter_ : std::max(next_counter_, counter_floor + 1);
  }
  void AfterAppend(int64_t expire_before_us, bool published);

  // Seals the current chunk (if any) and starts one that can hold a record of `record_bytes`.
  void StartChunk(size_t record_bytes, uint64_t counter, int64_t arrival_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(append_mu_);
  template <typename Projection, typename Key>
  uint64_t LowerBound(Projection project, Key target, uint64_t end) const;

  ChunkAccount* const account_;

  // What every append reads and writes, together in three cache lines from a line's start: with
  // a hundred shards, a put finds its shard's lines cold (or, with two writing threads, in the
  // other core's cache) and pays per line, so the append touches no other line of the log and,
  // for the current chunk, only stores its count.
  alignas(64) Mutex append_mu_;
  // The current chunk, as the writer caches it (`current_` owns it).
  Chunk* chunk_ ABSL_GUARDED_BY(append_mu_) = nullptr;
  char* chunk_bytes_ ABSL_GUARDED_BY(append_mu_) = nullptr;
  size_t write_offset_ ABSL_GUARDED_BY(append_mu_) = 0;
  size_t chunk_capacity_ ABSL_GUARDED_BY(append_mu_) = 0;  // 0: no chunk yet
  uint64_t chunk_base_counter_ ABSL_GUARDED_BY(append_mu_) = 0;
  int64_t chunk_base_us_ ABSL_GUARDED_BY(append_mu_) = 0;
  uint32_t chunk_count_ ABSL_GUARDED_BY(append_mu_) = 0;  // the chunk's count(), the writer's copy
  uint64_t next_counter_ ABSL_GUARDED_BY(append_mu_);
  int64_t last_arrival_us_ ABSL_GUARDED_BY(append_mu_) = std::numeric_limits<int64_t>::min();
  // Ordinal of the next record written; ahead of published_ while deferred records wait.
  uint64_t written_ ABSL_GUARDED_BY(append_mu_) = 0;
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> published_{0};
  // Written only under append_mu_ (a plain load and store, no locked instruction), read by anyone.
  std::atomic<uint64_t> appended_bytes_{0};
  std::atomic<uint64_t> next_counter_published_{0};
  // chunk_last_us_ of the oldest chunk if it is sealed (max if none is): the writer compares it
  // with the retention cutoff on every append, without a lock, to know when to reclaim.
  std::atomic<int64_t> oldest_sealed_last_us_{std::numeric_limits<int64_t>::max()};
  // Readers to wake on append (wakers_); the append path skips the lock when there are none.
  std::atomic<size_t> waker_count_{0};

  // Writer state an append does not touch.
  std::shared_ptr<Chunk> current_ ABSL_GUARDED_BY(append_mu_);
  size_t next_chunk_bytes_ ABSL_GUARDED_BY(append_mu_) = kMinChunkBytes;
  std::atomic<uint64_t> ending_counter_{0};
  std::atomic<int64_t> last_arrival_at_close_us_{std::numeric_limits<int64_t>::min()};

  const uint64_t first_counter_;
  // Moved (and chunks reclaimed) under trim_mu_, so that a counting trim walks records that no
  // other trim reclaims meanwhile; read by anyone.
  alignas(64) std::atomic<uint64_t> trim_ordinal_{0};
  Mutex trim_mu_ ABSL_ACQUIRED_BEFORE(chunks_mu_);

  // Deferred writers, in the order of their first records (entered under append_mu_).
  struct DeferredWriter {
    uint64_t start;
    bool finished;
    bool durable;
  };
  Mutex ledger_mu_ ABSL_ACQUIRED_AFTER(append_mu_);
  std::vector<DeferredWriter> ledger_ ABSL_GUARDED_BY(ledger_mu_);
  uint64_t finished_end_ ABSL_GUARDED_BY(ledger_mu_) = 0;  // the highest end a writer finished

  void Publish(uint64_t end);
  void WakeReaders() ABSL_LOCKS_EXCLUDED(wakers_mu_);

  // Readers to wake on append (waker_count_ counts them).
  mutable Mutex wakers_mu_;
  std::vector<Waker*> wakers_ ABSL_GUARDED_BY(wakers_mu_);

  // Chunks in ordinal order; taken by readers for a moment to find a chunk, and by the writer when
  // a chunk fills or retention drops one.
  mutable SharedMutex chunks_mu_;
  std::vector<std::shared_ptr<const Chunk>> chunks_ ABSL_GUARDED_BY(chunks_mu_);
  // The newest record's arrival per sealed chunk, parallel to chunks_ (the last one unused).
  std::vector<int64_t> chunk_last_us_ ABSL_GUARDED_BY(chunks_mu_);
};

}  // namespace rill::internal

#endif  // RILL_LOG_SHARD_LOG_H_
