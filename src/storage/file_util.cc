#include "storage/file_util.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "rill/base/error.h"

namespace rill::internal {

std::string ErrnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

absl::Status IoError(std::string_view what, std::string_view path, int error) {
  return InternalFailureError(absl::StrFormat("%s %s: %s", what, path, ErrnoText(error)));
}

ScopedFd::~ScopedFd() { Close(); }

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = other.release();
  }
  return *this;
}

int ScopedFd::Close() {
  if (fd_ < 0) return 0;
  // Linux releases the descriptor even when close() fails (EINTR included): never retry.
  return ::close(release());
}

absl::StatusOr<ScopedFd> OpenFile(const std::string& path, int flags, int mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) {
      return absl::NotFoundError(
          absl::StrFormat("cannot open %s: %s", path, ToAbsl(ErrnoText(error))));
    }
    return IoError("cannot open", path, error);
  }
  return ScopedFd(fd);
}

absl::Status PwriteFully(int fd, std::string_view data, uint64_t offset, std::string_view path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      return IoError(absl::StrFormat("cannot write %d bytes at offset %d of", data.size() - done,
                                     offset + done),
                     path, error);
    }
    // A regular file never accepts zero bytes of a non-empty write without an error; do not spin.
    if (n == 0) {
      return IoError(absl::StrFormat("wrote nothing at offset %d of", offset + done), path, EIO);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> PreadFully(int fd, char* out, size_t size, uint64_t offset,
                                  std::string_view path) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      return IoError(
          absl::StrFormat("cannot read %d bytes at offset %d of", size - done, offset + done), path,
          error);
    }
    if (n == 0) break;  // end of file
    done += static_cast<size_t>(n);
  }
  return done;
}

std::string DirectoryOf(std::string_view path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

namespace {
std::atomic<uint64_t> sync_count{0};
}  // namespace

int DataSync(int fd) {
  sync_count.fetch_add(1, std::memory_order_relaxed);
  return ::fdatasync(fd);
}

int FullSync(int fd) {
  sync_count.fetch_add(1, std::memory_order_relaxed);
  return ::fsync(fd);
}

uint64_t SyncCount() { return sync_count.load(std::memory_order_relaxed); }

absl::Status SyncDirectory(const std::string& dir) {
  absl::StatusOr<ScopedFd> fd = OpenFile(dir, O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return fd.status();
  if (FullSync(fd->get()) != 0) return IoError("cannot fsync directory", dir, errno);
  return absl::OkStatus();
}

namespace {

// `mode` < 0: the default (0644 less the umask), and a leftover temporary file is reused as it is.
absl::Status WriteAndRename(const std::string& path, std::string_view contents, bool durable,
                            int mode = -1) {
  // One fixed temporary name: writers of a path are serialised by their caller's lock, and a
  // temporary a crash left behind is simply truncated and reused, so crashes leave no litter.
  const std::string temp = path + ".tmp";
  int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  if (mode >= 0) {
    // A secret's temporary file must be new: an old one keeps its permissions and any
    // descriptor opened on it.
    if (::unlink(temp.c_str()) != 0 && errno != ENOENT) {
      return IoError("cannot remove", temp, errno);
    }
    flags |= O_EXCL;
  }
  int raw;
  do {
    raw = ::open(temp.c_str(), flags, mode >= 0 ? mode : 0644);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0) return IoError("cannot create", temp, errno);
  ScopedFd fd(raw);
  auto fail = [&](absl::Status status) {
    ::unlink(temp.c_str());
    return status;
  };
  // open() applied the umask to `mode`; the file is still empty, so nothing was exposed.
  if (mode >= 0 && ::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0) {
    return fail(IoError("cannot chmod", temp, errno));
  }
  if (absl::Status s = PwriteFully(fd.get(), contents, 0, temp); !s.ok()) return fail(s);
  if (durable && FullSync(fd.get()) != 0) return fail(IoError("cannot fsync", temp, errno));
  if (fd.Close() != 0) return fail(IoError("cannot close", temp, errno));
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    return fail(IoError(absl::StrFormat("cannot rename %s over", temp), path, error));
  }
  // Past the rename the new contents are visible; this makes the rename itself durable.
  return durable ? SyncDirectory(DirectoryOf(path)) : absl::OkStatus();
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  return WriteAndRename(path, contents, /*durable=*/true);
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents, int mode) {
  return WriteAndRename(path, contents, /*durable=*/true, mode);
}

absl::Status ReplaceFile(const std::string& path, std::string_view contents) {
  return WriteAndRename(path, contents, /*durable=*/false);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  absl::StatusOr<ScopedFd> fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return IoError("cannot stat", path, errno);
  std::string contents;
  // The size is a hint only (the file may change under us): read until end of file.
  contents.resize(static_cast<size_t>(st.st_size > 0 ? st.st_size : 0) + 1);
  size_t used = 0;
  while (true) {
    if (used == contents.size()) contents.resize(contents.size() * 2);
    absl::StatusOr<size_t> n =
        PreadFully(fd->get(), contents.data() + used, contents.size() - used, used, path);
    if (!n.ok()) return n.status();
    used += *n;
    if (used < contents.size()) break;
  }
  contents.resize(used);
  return contents;
}

absl::StatusOr<DirectoryLock> DirectoryLock::Acquire(const std::string& dir) {
  const std::string lock_path = dir + "/LOCK";
  absl::StatusOr<ScopedFd> fd = OpenFile(lock_path, O_RDWR | O_CREAT);
  if (!fd.ok()) {
    return fd.status();  // its message names <dir>/LOCK
  }
  int locked;
  do {
    locked = ::flock(fd->get(), LOCK_EX | LOCK_NB);
  } while (locked != 0 && errno == EINTR);
  if (locked != 0) {
    const int error = errno;
    if (error != EWOULDBLOCK) return IoError("cannot lock", lock_path, error);
    // Name the holder if its pid is readable; the file is advisory text, so trust nothing in it.
    char text[32];
    absl::StatusOr<size_t> n = PreadFully(fd->get(), text, sizeof(text), 0, lock_path);
    std::string holder;
    int pid = 0;
    if (n.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(text, *n)), &pid)) {
      holder = absl::StrFormat(" (pid %d, per %s)", pid, lock_path);
    }
    return absl::FailedPreconditionError(absl::StrFormat(
        "directory %s is locked by another process or another open handle%s: only one owner "
        "may use it at a time",
        dir, holder));
  }
  const std::string pid = absl::StrFormat("%d\n", ::getpid());
  if (::ftruncate(fd->get(), 0) != 0) return IoError("cannot truncate", lock_path, errno);
  if (absl::Status s = PwriteFully(fd->get(), pid, 0, lock_path); !s.ok()) return s;
  return DirectoryLock(dir, *std::move(fd));
}

}  // namespace rill::internal
