// The durable side of a stream: its directory, metadata file and one ShardStore (segment files)
// per shard. Internal to rill; Stream owns one when StreamOptions::storage is set.
//
// Directory layout:
//   <dir>/LOCK                  flock'ed by the process that has the stream open
//   <dir>/METADATA              the stream's metadata (StreamMeta), replaced atomically
//   <dir>/COUNTERS              each shard's counter ceiling, replaced atomically
//   <dir>/METRICS               the owner's ToJson(metrics()), refreshed about once a second
//                               (advisory, for `rill metrics` and `rill top`; never read here)
//   <dir>/journal/*.jnl         the write-ahead journal (journal.h)
//   <dir>/shard-<index>/<first counter, 20 digits>.seg   segment files, oldest first
//
// The data path: a put call reserves one journal region; each record is appended to the
// in-memory ShardLog and, under the same lock, copied into the region (in the page cache, so it
// survives the process); kEveryBatch then writes the region and syncs the journal (one fdatasync
// for all shards and concurrent callers) before the records become visible. Behind the puts,
// ShardStore::Commit writes every record of the log not yet written as one compressed frame (group
// commit) and syncs as the FsyncPolicy says (kEveryBatch: only before the journal files holding
// its records are recycled); the journal files whose records are all in the segments are then
// recycled. The memory log fixes the order; the segment follows it.
#ifndef RILL_STORAGE_STREAM_STORE_H_
#define RILL_STORAGE_STREAM_STORE_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "log/shard_log.h"
#include "rill/base/hash_key.h"
#include "rill/base/internal/mutex.h"
#include "rill/storage/storage_options.h"
#include "storage/file_util.h"
#include "storage/journal.h"
#include "storage/segment.h"

namespace rill::internal {

// What METADATA holds.
struct ShardMeta {
  uint32_t index = 0;
  HashKeyRange range;
  std::optional<uint32_t> parent;
  std::optional<uint32_t> adjacent_parent;
  uint64_t first_counter = 1;
  int64_t created_us = 0;
  // Set once the shard is closed by resharding.
  std::optional<int64_t> closed_us;
  uint64_t ending_counter = 0;  // meaningful once closed
};

struct ConsumerMeta {
  std::string name;
  int64_t created_ns = 0;  // Unix nanoseconds
};

struct StreamMeta {
  std::string name;
  std::array<uint8_t, 16> seed{};
  int64_t creation_ns = 0;  // Unix nanoseconds
  int64_t retention_us = 0;
  uint8_t capacity_mode = 0;
  std::vector<ShardMeta> shards;  // by index
  std::vector<ConsumerMeta> consumers;
  // The highest retention cutoff (arrival time) applied before the retention last increased:
  // records that arrived before it stay invisible after a reopen, though their segment remains.
  int64_t trim_floor_us = INT64_MIN;
  // Server-side encryption: 0 = NONE, 1 = KMS with key_id (empty iff NONE).
  uint8_t encryption_type = 0;
  std::string key_id;
};

// METADATA's bytes: magic "RILLMETA", u32 version, u32 payload length, payload, u32 masked
// CRC-32C of everything before it. Decode returns DATA_LOSS for anything else.
std::string EncodeStreamMeta(const StreamMeta& meta);
[[nodiscard]] absl::StatusOr<StreamMeta> DecodeStreamMeta(std::string_view bytes);

// What recovery found in one shard's segments.
struct ShardRecovery {
  uint64_t records = 0;
  uint64_t bytes = 0;
  std::optional<uint64_t> last_counter;  // the highest counter found on disk
  bool torn_tail = false;                // a torn last frame was cut off
  absl::Status corruption;               // DATA_LOSS: records after it were not recovered
  // After damage: the highest counter any intact frame header names, readable or not. New
  // records must number above it (and above last_counter).
  uint64_t counter_floor = 0;
  // After damage: records from this one on (counting from the first replayed) must be written
  // again, since their segment was set aside.
  std::optional<uint64_t> rewrite_from_record;
};

// A shard's server-side encryption: the stream's keyring, for reading encrypted frames (not owned:
// the stream's, which outlives its stores; null: none can be read), the shard's context (the
// stream's seed and the shard's index, bound into every frame), and the data key new frames are
// written with (null: in the clear).
struct ShardCrypto {
  FrameKeyring* keyring = nullptr;
  std::string context;
  std::shared_ptr<const FrameWriteKey> write_key;
};

// The context a shard's encrypted frames are bound to: the stream's seed, then the shard's index
// (u32, little-endian). Part of the format: changing it makes every encrypted frame unreadable.
std::string ShardEncryptionContext(const std::array<uint8_t, 16>& seed, uint32_t index);

// One shard's segment files. Thread-safe: Commit and Sync serialise on the store's mutex.
class ShardStore {
 public:
  // Opens (creating it if needed) the shard's directory and recovers its segments: calls
  // replay(record) for every record on disk, in order, then gets ready to append after them.
  // Errors: an I/O error; a key error (IsKeyError: an encrypted frame whose data key cannot be
  // had), since records must not be set aside for want of a key; the segments' damage is
  // reported in *recovery, not as an error.
  // `segment_done(n)` is called after each segment replayed in full: the first n records
  // replayed are safely on disk (the caller may evict them from memory).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ShardStore>> Open(
      const std::string& dir, const StorageOptions& options,
      const std::function<void(const StoredRecord&)>& replay, ShardRecovery* recovery,
      const std::function<void(uint64_t)>& segment_done = nullptr, ShardCrypto crypto = {});

  // Frames written from now on are encrypted with `key` (null: in the clear).
  [[nodiscard]] absl::Status SetWriteKey(std::shared_ptr<const FrameWriteKey> key);

  // Writes the log's records from the last one written up to its published end, then syncs if
  // the policy says so (kInterval: when fsync_interval has passed since the last sync;
  // kEveryBatch: never, since every put synced the journal, which holds the records until the
  // segments are synced before its files are recycled). `force_sync` syncs whatever the policy
  // but kNever. Sticky error after an I/O failure.
  // `now_ns`: the stream's Clock (Unix nanoseconds), so that a SimulatedClock decides when the
  // interval has passed, never the system's time.
  [[nodiscard]] absl::Status Commit(const ShardLog& log, bool force_sync, int64_t now_ns);

  // Syncs what was written since the last sync (the flusher, before it recycles journal files).
  [[nodiscard]] absl::Status Sync();
  // The sticky I/O error, or OK.
  absl::Status status() const;

  // Whether the store has enough unwritten bytes or time to write now. Cheap.
  bool ShouldCommit(const ShardLog& log, int64_t now_ns) const;
  // Whether an I/O error failed the store (Commit returns it). Cheap.
  bool failed() const { return failed_.load(std::memory_order_acquire); }

  // Deletes whole segments whose every record arrived before `cutoff_us` (never the one being
  // written). Returns the first error.
  [[nodiscard]] absl::Status DropBefore(int64_t cutoff_us);

  // Deletes every segment and the directory (the shard has expired).
  [[nodiscard]] absl::Status DropAll();

  // Cold reads: records the log evicted from memory, read back from the segment files.
  struct ColdRead {
    std::vector<StoredRecord> records;  // views into keep_alive
    std::shared_ptr<const void> keep_alive;
    uint64_t next = 0;  // the ordinal after the last record returned
  };
  // Reads from ordinal `from` (raised to the first record still on disk) up to `end`, within
  // one frame: at most `limit` records and `max_data_bytes` of data, but at least one record.
  // DATA_LOSS if the frame no longer decodes (the disk rotted since it was written).
  [[nodiscard]] absl::Status ReadCold(uint64_t from, uint64_t end, size_t limit,
                                      size_t max_data_bytes, ColdRead* out) const;
  // The first ordinal on disk whose record's counter >= `counter` (arrival >= `time_us`), or
  // `limit` if none below it is.
  [[nodiscard]] absl::StatusOr<uint64_t> LowerBoundCounter(uint64_t counter, uint64_t limit) const;
  [[nodiscard]] absl::StatusOr<uint64_t> LowerBoundTime(int64_t time_us, uint64_t limit) const;
  // The first ordinal still on disk (retention deletes whole segments).
  uint64_t first_disk_ordinal() const;
  // The arrival of the oldest record on disk (INT64_MAX if none).
  int64_t oldest_arrival_us() const;

  // The ordinal of the log after the last record written.
  uint64_t persisted_ordinal() const;
  void set_persisted_ordinal(uint64_t ordinal);

  uint64_t disk_bytes() const;

 private:
  struct Segment {
    std::string path;
    uint64_t first_counter = 0;
    int64_t last_arrival_us = INT64_MIN;
    uint64_t bytes = 0;
    uint64_t id = 0;                            // stable while the store lives, for the frame index
    mutable std::shared_ptr<ScopedFd> read_fd;  // opened on the first cold read
  };
  // One frame on disk and the ordinal of its first record.
  struct IndexedFrame {
    uint64_t first_ordinal = 0;
    uint64_t segment_id = 0;
    FrameInfo info;
  };
  struct DecodedFrame;

  ShardStore(std::string dir, StorageOptions options, ShardCrypto crypto)
      : dir_(std::move(dir)), options_(options), crypto_(std::move(crypto)) {}
  absl::Status WriteFrame(std::span<const StoredRecord> records, uint64_t first_ordinal,
                          int64_t last_arrival_us) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The decoded frame holding `ordinal`, or null if it is below the disk's first record.
  absl::StatusOr<std::shared_ptr<const DecodedFrame>> FrameAt(size_t index) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  template <typename Projection, typename Key>
  absl::StatusOr<uint64_t> LowerBound(Projection project, Key target, uint64_t limit) const;
  absl::Status SyncLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  const StorageOptions options_;
  mutable Mutex mu_;
  ShardCrypto crypto_ ABSL_GUARDED_BY(mu_);
  std::vector<Segment> segments_;    // oldest first; the last one is being written
  std::deque<IndexedFrame> frames_;  // every frame of segments_, in ordinal order
  uint64_t next_segment_id_ = 0;
  mutable std::shared_ptr<const DecodedFrame> last_read_;  // sequential cold reads reuse it
  std::unique_ptr<SegmentWriter> writer_;  // of segments_.back(), or null before the first frame
  uint64_t persisted_ordinal_ = 0;
  std::atomic<uint64_t> persisted_bytes_{0};  // log.appended_bytes() when last written
  bool dirty_ = false;                        // written since the last sync
  // Clock times (Unix ns) of the last sync and of the next time-driven commit; kUnset until the
  // first commit or check sets them from the clock.
  static constexpr int64_t kUnset = std::numeric_limits<int64_t>::min();
  int64_t last_sync_ns_ = kUnset;
  mutable std::atomic<int64_t> next_sync_ns_{kUnset};
  absl::Status error_;
  std::atomic<bool> failed_{false};
  bool dropped_ = false;
  std::vector<StoredRecord> batch_;
  std::vector<std::shared_ptr<const Chunk>> pins_;
};

// The stream's directory: the lock, METADATA and the shard stores' parent directory.
class StreamStore {
 public:
  // Locks `options.directory` (creating it if missing). FAILED_PRECONDITION naming the directory
  // if another process (or stream) holds it. options.read_only: takes no lock and creates
  // nothing; kResourceNotFound if the directory does not exist.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StreamStore>> Open(
      const StorageOptions& options);

  // The metadata, if the directory holds a stream.
  [[nodiscard]] absl::StatusOr<std::optional<StreamMeta>> LoadMeta() const;
  [[nodiscard]] absl::Status SaveMeta(const StreamMeta& meta);

  std::string ShardDirectory(uint32_t index) const;
  const StorageOptions& options() const { return options_; }

  // Counter ceilings (COUNTERS): a shard issues no counter at or above its ceiling before that
  // ceiling is on disk (synced), so a reopen — after a crash or a power cut — numbers every new
  // record above anything ever issued, as databases do for sequences. Indexed by shard; empty
  // when the file does not exist. DATA_LOSS if it is damaged.
  [[nodiscard]] absl::StatusOr<std::vector<uint64_t>> LoadCeilings() const;
  // Sets the ceilings of the shards in `updates` (index, ceiling) and writes the file.
  [[nodiscard]] absl::Status RaiseCeilings(std::span<const std::pair<uint32_t, uint64_t>> updates);

  // The journal, once AttachJournal has run.
  Journal* journal() const { return journal_.get(); }
  void AttachJournal(std::unique_ptr<Journal> journal) { journal_ = std::move(journal); }

 private:
  StreamStore(StorageOptions options, std::optional<DirectoryLock> lock)
      : options_(std::move(options)), lock_(std::move(lock)) {}
  const StorageOptions options_;
  std::optional<DirectoryLock> lock_;  // none when read-only
  Mutex meta_mu_;                      // serialises METADATA writes
  Mutex ceilings_mu_;
  std::vector<uint64_t> ceilings_ ABSL_GUARDED_BY(ceilings_mu_);
  std::unique_ptr<Journal> journal_;
};

}  // namespace rill::internal

#endif  // RILL_STORAGE_STREAM_STORE_H_
