// Journal: a durable stream's write-ahead journal of memory-mapped files. Internal to rill.
//
// Why: a put is acknowledged once its record is in the journal. The journal's files are mapped
// MAP_SHARED, so a record copied into them sits in the kernel's page cache at once and survives
// the death of the process (SIGKILL, abort, a crash) under every FsyncPolicy; only a power cut
// can lose what was not yet synced. The segment files are written behind, compressed, by the
// flusher; once a journal file's records are all in the segments (and synced, where the policy
// syncs), the file is recycled.
//
// Layout: <stream dir>/journal/<seq, 20 digits>.jnl, each file preallocated (so writing to the
// mapping never meets a full disk) and laid out as
//   header (64 bytes): magic "RILLJRNL", u32 version (1), u32 header CRC, u64 seq, zeros
//   blocks, back to back from offset 64, each 8-byte aligned:
//     u32 magic "RJB1", u32 block bytes (header + key + data + padding), u64 file seq,
//     u32 shard index, u16 key bytes, u16 zero, u64 counter, i64 arrival (Unix microseconds),
//     u32 data bytes, u32 masked CRC-32C of the 44 bytes before it, the key and the data;
//     then the key, the data, zero padding.
// A block's header is complete before anything after it is written (blocks are written under
// one mutex, in order), so a scan stops at the first block that is not whole: the torn tail of
// a process that died while copying. A recycled file gets a new seq; blocks of its earlier life
// name the old seq and end the scan.
//
// Thread safety: thread-safe. Append serialises on the journal's mutex (a memcpy of the record);
// SyncTo lets concurrent callers share one fdatasync per file (group commit).
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
#include "storage/file_util.h"

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

  // Files start at kMinFileBytes and double up to kMaxFileBytes as the journal grows (a record
  // larger than that gets a file of its own size). Small first files keep a quiet stream's
  // footprint small.
  static constexpr size_t kMinFileBytes = size_t{256} << 10;
  static constexpr size_t kMaxFileBytes = size_t{32} << 20;
  static constexpr size_t kFileHeaderBytes = 64;
  static constexpr size_t kBlockHeaderBytes = 48;

  // Opens `<dir>/journal` (created if missing) and calls `replay` for every whole block of every
  // live file, oldest file first and, within a file, in append order. The views stay valid until
  // Reset(). Errors: I/O errors (a damaged block is skipped, not an error: its record was never
  // acknowledged, or the disk rotted, which the segments' own checks report).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Journal>> Open(
      const std::string& dir, const std::function<void(const JournalEntry&)>& replay);

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // After recovery has written every replayed record to the segments (and synced them): every
  // file becomes free for reuse and its old blocks stop counting.
  [[nodiscard]] absl::Status Reset();

  // Copies one record into the journal. Returns the file it went to, whose in-flight count is
  // now one higher: the caller calls Done(file) once the record is published (visible), which
  // lets the file be recycled. `*end_lsn` receives the journal position after the record (for
  // SyncTo). Errors (nothing written): the journal failed earlier, or a new file could not be
  // created (no space). Allocates only when a new file is created.
  [[nodiscard]] absl::StatusOr<File*> Append(const JournalEntry& entry, uint64_t* end_lsn);
  void Done(File* file, uint32_t records = 1);

  // Makes everything appended up to `lsn` durable (fdatasync of the files holding it); callers
  // arriving while a sync runs share the next one. Sticky error after a failed sync.
  [[nodiscard]] absl::Status SyncTo(uint64_t lsn);
  // SyncTo(everything appended so far).
  [[nodiscard]] absl::Status SyncAll();

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
  explicit Journal(std::string dir);
  absl::StatusOr<File*> NewFileLocked(size_t min_bytes);
  absl::Status StartFileLocked(File* file);

  const std::string dir_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<File>> files_;  // every file, mapped, for the journal's life
  File* current_ = nullptr;                   // receives appends; null before the first
  std::vector<File*> sealed_;                 // full (or sealed) files, not yet recycled
  std::vector<File*> free_;                   // recycled, ready to reuse
  uint64_t next_seq_ = 1;
  uint64_t next_file_id_ = 1;  // names new files
  uint64_t lsn_ = 0;           // bytes appended in the journal's life
  size_t next_file_bytes_ = kMinFileBytes;
  absl::Status error_;
  std::atomic<bool> failed_{false};
  std::atomic<size_t> sealed_count_{0};

  // Group commit.
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  uint64_t synced_lsn_ = 0;
  bool syncing_ = false;
};

}  // namespace rill::internal

#endif  // RILL_STORAGE_JOURNAL_H_
