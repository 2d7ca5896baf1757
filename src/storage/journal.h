// Journal: a durable stream's write-ahead journal. Internal to rill.
//
// Why: a put is acknowledged once its record is in the journal, and the journal's bytes sit in
// the kernel's page cache as soon as they are written, so they survive the death of the process
// (SIGKILL, abort, a crash) under every FsyncPolicy; only a power cut can lose what was not yet
// synced. The segment files are written behind, compressed, by the flusher; once a journal
// file's records are all in the segments (and synced, where the policy syncs), the file is
// recycled.
//
// Two ways of writing, chosen at Open:
//   kMapped        records are copied into the files' MAP_SHARED mappings: no system call per
//                  put. For kNever and kInterval, which never sync the journal.
//   kWriteThrough  a call's records are built in a buffer and pwritten once, then fdatasynced
//                  (kEveryBatch). Syncing mapped pages that the process writes to would
//                  write-protect them, so that every later store faults and every sync shoots
//                  down TLBs: written through, the pages are never mapped writable.
//
// Layout: <stream dir>/journal/<seq, 20 digits>.jnl, each file preallocated (so writing to the
// mapping never meets a full disk) and laid out as
//   header (64 bytes): magic "RILLJRNL", u32 version (1), u32 header CRC, u64 seq, zeros
//   then regions, back to back from offset 64. A region is the space one put call reserved:
//     u32 magic "RJR2", u32 region bytes (this header included), u64 file seq,
//     u32 zero, u32 masked CRC-32C of the 20 bytes before it;
//     then its blocks, back to back, each 8-byte aligned:
//       record: u32 magic "RJB1", u32 block bytes (header + key + data + padding), u64 file seq,
//               u32 shard index, u16 key bytes, u16 zero, u64 counter, i64 arrival (Unix
//               microseconds), u32 data bytes, u32 masked CRC-32C of the 44 bytes before it,
//               the key and the data; then the key, the data, zero padding.
//       void:   u32 magic "RJV1", u32 bytes: space reserved but not used (an entry that failed).
//   An encrypted region (server-side encryption) has the magic "RJR3" and its key slot in the
//     u16 at offset 16 of its header; its blocks, as above, are one AES-256-GCM ciphertext
//     followed by the 16-byte tag that ends the region. The nonce is the file seq and the
//     region's offset in the file, unique under a data key, which lives for one process at most
//     (a new one at every open and every SetEncryption); the associated data is the header's
//     first 20 bytes. The records are gathered in the caller's staging buffer and sealed into
//     the file by Finish, so no byte of them reaches the file in the clear. The slots' keys (key
//     id and wrapped data key) are in <stream dir>/journal/KEYS, written atomically (synced)
//     before a slot is used:
//       magic "RJKEYS1\n", u32 count, then per key: u16 slot, u16 key id bytes, key id, u16
//       wrapped bytes, wrapped key; then u32 masked CRC-32C of everything before it.
// A region's header is written (under the journal's lock) before anything after it, so the
// chain of region headers is whole up to the last reservation. Within a region, one thread
// writes the blocks in order, so a scan of it stops at the first block that is not whole: the
// torn tail of a call that had not returned. A region left unfinished by a dead call is skipped
// by its length, so the regions of other calls after it still count. A recycled file gets a new
// seq; regions of its earlier life name the old seq and end the scan. (Files of the first
// format held bare record blocks at the top level; a scan still reads them.)
//
// Thread safety: thread-safe. Reserve serialises on the journal's lock (a region header); the
// region's blocks are written by its owner without a lock. SyncTo lets concurrent callers share
// one fdatasync per file (group commit).
#ifndef RILL_STORAGE_JOURNAL_H_
#define RILL_STORAGE_JOURNAL_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rill/base/internal/mutex.h"
#include "storage/aead.h"
#include "storage/file_util.h"
#include "storage/segment.h"

namespace rill::internal {

// One record as the journal holds it (the views point into the mapped file).
struct JournalEntry {
  uint32_t shard = 0;
  uint64_t counter = 0;
  int64_t arrival_us = 0;
  std::string_view partition_key;
  std::string_view data;
};

class Journal {
 public:
  struct File;
  struct JournalKey;  // a data key and its slot

  // Files start at kMinFileBytes and double up to kMaxFileBytes as the journal grows (a record
  // larger than that gets a file of its own size). Small first files keep a quiet stream's
  // footprint small.
  static constexpr size_t kMinFileBytes = size_t{256} << 10;
  static constexpr size_t kMaxFileBytes = size_t{32} << 20;
  static constexpr size_t kFileHeaderBytes = 64;
  static constexpr size_t kBlockHeaderBytes = 48;

  enum class Mode { kMapped, kWriteThrough };

  // Opens `<dir>/journal` (created if missing) and calls `replay` for every whole block of every
  // live file, oldest file first and, within a file, in append order. The views stay valid until
  // Reset(). Errors: I/O errors (a damaged block is skipped, not an error: its record was never
  // acknowledged, or the disk rotted, which the segments' own checks report).
  // `read_only`: creates, removes and writes nothing, and maps the files read-only (another
  // process may be writing them: a block it has not finished fails its CRC and ends the scan of
  // its region); the journal returned may only be destroyed.
  // Encrypted regions are decrypted with data keys from `keyring` (null: none can be); the
  // keyring's KMS error fails the open (acknowledged records must not be skipped for want of a
  // key). An encrypted region that does not authenticate counts for nothing, as a torn block:
  // its call never finished (or the disk rotted, which the segments' checks report).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Journal>> Open(
      const std::string& dir, Mode mode, const std::function<void(const JournalEntry&)>& replay,
      bool read_only = false, FrameKeyring* keyring = nullptr);

  // Records of regions reserved from now on are encrypted with `key` (null: written in the
  // clear again). Writes journal/KEYS first. Errors: I/O (nothing changes), kLimitExceeded after
  // 65535 keys in one process life.
  [[nodiscard]] absl::Status SetEncryption(std::shared_ptr<const FrameWriteKey> key);

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // After recovery has written every replayed record to the segments (and synced them): every
  // file becomes free for reuse and its old blocks stop counting.
  [[nodiscard]] absl::Status Reset();

  // The space one put call writes its records into. Owned by the calling thread; not
  // thread-safe. Reserve() fills it; Put() writes records without taking the journal's lock.
  class Region {
   public:
    Region() = default;
    Region(const Region&) = delete;
    Region& operator=(const Region&) = delete;

    bool active() const { return file_ != nullptr; }
    // Whether a record of `key_bytes` + `data_bytes` still fits.
    bool Fits(size_t key_bytes, size_t data_bytes) const {
      return active() && used_ + BlockBytes(key_bytes, data_bytes) <= end_;
    }
    // Writes one record into the next block. REQUIRES: Fits(key, data).
    void Put(const JournalEntry& entry);

   private:
    friend class Journal;
    File* file_ = nullptr;
    char* base_ = nullptr;             // the region's first byte: in the mapping, or in staging_
    size_t offset_ = 0;                // of the region in its file
    size_t bytes_ = 0;                 // reserved, header included
    size_t used_ = 0;                  // written so far, header included
    size_t end_ = 0;                   // where the blocks end (bytes_, less an encrypted tag)
    char* target_ = nullptr;           // mapped: the region in the mapping
    uint64_t seq_ = 0;                 // the file's seq
    std::string* staging_ = nullptr;   // kWriteThrough: the calling thread's buffer
    const JournalKey* key_ = nullptr;  // encrypts the blocks; null: in the clear
  };

  // Bytes a record block takes (header, key, data, padding).
  static constexpr size_t BlockBytes(size_t key_bytes, size_t data_bytes) {
    return (kBlockHeaderBytes + key_bytes + data_bytes + 7) & ~size_t{7};
  }
  static constexpr size_t kRegionHeaderBytes = 24;

  // Reserves `record_bytes` (a sum of BlockBytes) for the records of one call and writes the
  // region's header. The region's file stays unrecyclable until Finish(). Errors (nothing
  // reserved): the journal failed earlier, or a new file could not be created (no space).
  // Allocates only when a new file is created (and, written through, when the thread's staging
  // buffer first grows to a size).
  // While the journal encrypts, the region is kAeadTagBytes longer (its tag), added here.
  [[nodiscard]] absl::Status Reserve(size_t record_bytes, Region* region);
  // Ends a region: the unused rest becomes a void block; written through, the region is
  // pwritten. Returns the ticket to pass to SyncTo. The region becomes inactive; call Done()
  // with the file (region.file) once its records are published (visible).
  [[nodiscard]] absl::StatusOr<uint64_t> Finish(Region* region);
  // Once the records of a finished region are published: lets its file be recycled.
  void Done(File* file);
  static File* FileOf(const Region& region) { return region.file_; }

  // Makes everything of regions finished with tickets up to `ticket` durable (fdatasync of the
  // files written since the last sync); callers arriving while a sync runs share the next one.
  // Sticky error after a failed sync.
  [[nodiscard]] absl::Status SyncTo(uint64_t ticket);

  // Tests only: run by the thread that leads a group sync, once it has chosen what to sync and
  // before it syncs, so that a test can hold a sync in flight. REQUIRES: no SyncTo runs while
  // it is set.
  void SetBeforeSyncForTesting(std::function<void()> hook) { before_sync_ = std::move(hook); }

  // Recycling, for the flusher. Seal() ends the current file so that its blocks can be recycled
  // once flushed. TakeRecyclable() returns the sealed files with no record in flight: every
  // record in them is published, so a flush that starts after this call writes them all to the
  // segments. Give them back with Recycle() once that flush is done (and synced, where the
  // policy syncs), or with Untake() if it failed.
  void Seal();
  std::vector<File*> TakeRecyclable();
  [[nodiscard]] absl::Status Recycle(const std::vector<File*>& files);
  void Untake(const std::vector<File*>& files);

  // Whether some sealed file waits for recycling (cheap: one atomic load).
  bool has_sealed() const { return sealed_count_.load(std::memory_order_relaxed) != 0; }
  // Bytes of the journal's files on disk.
  uint64_t disk_bytes() const;
  absl::Status status() const;

 private:
  Journal(std::string dir, Mode mode);
  // Writes a file header (a zero seq retires the file) with pwrite: the mapping is not touched.
  absl::Status WriteHeaderLocked(File* file, uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<File*> NewFileLocked(size_t min_bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  const Mode mode_;
  // Encryption: every key of this life (slots 1..), and the one new regions use.
  std::vector<std::unique_ptr<JournalKey>> keys_ ABSL_GUARDED_BY(mu_);
  const JournalKey* current_key_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Open's decrypted records (the replay's views point into them) and what it could not
  // authenticate.
  std::vector<std::string> decrypted_;
  mutable Mutex mu_ ABSL_ACQUIRED_AFTER(sync_mu_);
  // Every file, mapped, for the journal's life.
  std::vector<std::unique_ptr<File>> files_ ABSL_GUARDED_BY(mu_);
  File* current_ ABSL_GUARDED_BY(mu_) = nullptr;    // receives regions; null before the first
  std::vector<File*> sealed_ ABSL_GUARDED_BY(mu_);  // full (or sealed) files, not yet recycled
  std::vector<File*> free_ ABSL_GUARDED_BY(mu_);    // recycled, ready to reuse
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_file_id_ ABSL_GUARDED_BY(mu_) = 1;  // names new files
  size_t next_file_bytes_ ABSL_GUARDED_BY(mu_) = kMinFileBytes;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> failed_{false};
  std::atomic<size_t> sealed_count_{0};

  // Group commit.
  Mutex sync_mu_;
  CondVar sync_cv_;
  std::atomic<uint64_t> finished_{0};  // regions finished (tickets issued)
  uint64_t synced_ticket_ ABSL_GUARDED_BY(sync_mu_) = 0;
  bool syncing_ ABSL_GUARDED_BY(sync_mu_) = false;
  std::function<void()> before_sync_;
};

}  // namespace rill::internal

#endif  // RILL_STORAGE_JOURNAL_H_
