// Small POSIX file helpers for rill's durable storage: whole-file atomic replacement, whole-file
// reads, full-length pread/pwrite, directory fsync and an exclusive directory lock.
//
// Every failure is an absl::Status whose message names the path and the errno text. I/O failures
// are kInternalFailure (absl INTERNAL); a held lock is FAILED_PRECONDITION.
//
// Example:
//   absl::StatusOr<DirectoryLock> lock = DirectoryLock::Acquire(root);
//   if (!lock.ok()) return lock.status();  // "... /data/rill is locked by another ..."
//   absl::Status s = WriteFileAtomically(root + "/MANIFEST", manifest_text);
//
// Thread safety: the functions are thread-safe (they share no state). ScopedFd and DirectoryLock
// are not: use one object from one thread at a time.
#ifndef RILL_STORAGE_FILE_UTIL_H_
#define RILL_STORAGE_FILE_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rill::internal {

// The text of an errno value ("No space left on device").
std::string ErrnoText(int error);

// kInternalFailure "<what> <path>: <errno text>".
absl::Status IoError(std::string_view what, std::string_view path, int error);

// Owns a file descriptor and closes it on destruction. Movable, not copyable.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd();
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership: returns the descriptor and leaves this object empty.
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes now and returns close()'s result: 0, or -1 with errno set (close can report a
  // deferred write error). A no-op returning 0 when empty.
  int Close();

 private:
  int fd_ = -1;
};

// open(2) retried on EINTR; the error names `path`.
[[nodiscard]] absl::StatusOr<ScopedFd> OpenFile(const std::string& path, int flags,
                                                int mode = 0644);

// Writes all of `data` at `offset` (pwrite, retried on EINTR and short writes). On failure some
// prefix of `data` may have been written.
[[nodiscard]] absl::Status PwriteFully(int fd, std::string_view data, uint64_t offset,
                                       std::string_view path);

// Reads up to `size` bytes at `offset` into `out`, retrying on EINTR and short reads; returns the
// number read, which is less than `size` only at end of file.
[[nodiscard]] absl::StatusOr<size_t> PreadFully(int fd, char* out, size_t size, uint64_t offset,
                                                std::string_view path);

// fdatasync(2) and fsync(2) of `fd`, counted. rill's durable storage syncs only through these,
// so that a test (or a benchmark) can tell how many syncs an operation costs: a sync is the
// expensive step of a durable put (a device cache flush, milliseconds on some disks). Each
// returns what the system call does: 0, or -1 with errno set. Thread-safe.
int DataSync(int fd);
int FullSync(int fd);
// Syncs issued through DataSync and FullSync (SyncDirectory and WriteFileAtomically included)
// by this process so far. Thread-safe; one relaxed atomic load.
uint64_t SyncCount();

// fsyncs the directory `dir`, making the creation, removal or renaming of its entries durable.
[[nodiscard]] absl::Status SyncDirectory(const std::string& dir);

// The directory part of `path` ("a/b" for "a/b/c", "." for "c", "/" for "/c").
std::string DirectoryOf(std::string_view path);

// Replaces `path` with `contents` atomically: readers and a crash see either the old file or the
// new one, never a mix. Writes `<path>.tmp` (same directory, so the rename stays within one file
// system; one left by a crash is reused), fsyncs it, renames it over `path` and fsyncs the
// directory. On failure the temporary file is removed; `path` is untouched unless the final
// directory fsync failed (then the new contents may be visible but not yet durable).
// REQUIRES: writers of one path are serialised (both users hold a lock).
// Thread-safe for distinct paths.
[[nodiscard]] absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// WriteFileAtomically for a secret (a keyring): the file gets exactly the permission bits `mode`
// (e.g. 0600), whatever the umask. A temporary file left by a crash is removed and created anew
// (O_EXCL) with `mode` before anything is written, so that the contents are never readable under
// wider permissions, nor through a descriptor someone opened on the old temporary file.
// Same REQUIRES and thread safety.
[[nodiscard]] absl::Status WriteFileAtomically(const std::string& path, std::string_view contents,
                                               int mode);

// Replaces `path` with `contents` so that a reader sees the old file or the new one, never a
// mix, as WriteFileAtomically does, but syncs nothing: for files that are advisory (METRICS),
// where a crash may leave the old contents or none. Same temporary file and REQUIRES.
[[nodiscard]] absl::Status ReplaceFile(const std::string& path, std::string_view contents);

// Returns the whole contents of `path`. NOT_FOUND when it does not exist.
[[nodiscard]] absl::StatusOr<std::string> ReadFile(const std::string& path);

// An exclusive advisory lock on a directory, held through flock(LOCK_EX | LOCK_NB) on the file
// `<dir>/LOCK` (created if missing, never deleted). It excludes other processes and other
// DirectoryLocks in this process (flock locks belong to an open file description, and each Acquire
// opens its own), and it disappears with the process, so a crash never leaves a stale lock. The
// file holds the owner's pid, for the error message of the next contender only.
//
// Thread safety: not thread-safe; movable. The lock is released by the destructor or Release().
class DirectoryLock {
 public:
  // Locks `dir`, which must exist. FAILED_PRECONDITION, naming `dir`, when the directory is
  // already locked; kInternalFailure on an I/O error.
  [[nodiscard]] static absl::StatusOr<DirectoryLock> Acquire(const std::string& dir);

  DirectoryLock(DirectoryLock&&) noexcept = default;
  DirectoryLock& operator=(DirectoryLock&&) noexcept = default;
  ~DirectoryLock() = default;  // closing the descriptor releases the lock

  // Releases the lock now. Idempotent.
  void Release() { fd_.Close(); }

  bool held() const { return fd_.valid(); }
  const std::string& dir() const { return dir_; }

 private:
  DirectoryLock(std::string dir, ScopedFd fd) : dir_(std::move(dir)), fd_(std::move(fd)) {}

  std::string dir_;
  ScopedFd fd_;
};

}  // namespace rill::internal

#endif  // RILL_STORAGE_FILE_UTIL_H_
