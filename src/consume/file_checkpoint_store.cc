// FileCheckpointStore: one text file per application, replaced atomically on every write.
//
// File format, version 1 (every string is length-prefixed, "<bytes>:<bytes of text>", so that any
// byte, newlines included, survives; integers are decimal):
//
//   rill-leases 1\n
//   application <n>:<application>\n
//   leases <count>\n
//   lease <n>:<key> <n>:<owner> <counter> <n>:<checkpoint> <owner switches> <parents>[
//   <n>:<parent>]*\n
//   ... (one line per lease, in lease-key order)
//   md5 <32 lower-case hex digits: MD5 of every byte before this line>\n
//
// The checksum is checked before anything else is believed, so a flipped byte, a truncated file
// or a stray file is reported instead of read. MD5 is not a defence against an adversary here,
// only against accidents, which is all a checksum has to be.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "consume/checkpoint_store_internal.h"
#include "rill/base/error.h"
#include "rill/base/md5.h"
#include "rill/consume/checkpoint_store.h"
#include "storage/file_util.h"

namespace rill {
namespace {

using internal::ToAbsl;
using Table = std::map<std::string, Lease, std::less<>>;

constexpr std::string_view kMagic = "rill-leases ";
constexpr int kFormatVersion = 1;
constexpr std::string_view kChecksumPrefix = "md5 ";
// "md5 " + 32 hex digits + "\n".
constexpr size_t kChecksumLineSize = 4 + 32 + 1;
// A lease table is a few hundred bytes per lease; anything near this is not one.
constexpr int64_t kMaxFileBytes = int64_t{1} << 30;

std::string ErrnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

absl::Status IoError(std::string_view what, const std::string& path, int error) {
  return InternalFailureError(absl::StrFormat("%s %s: %s", ToAbsl(what), path, ErrnoText(error)));
}

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now, reporting the error (close can report a deferred write error).
  int Close() {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd);
  }

 private:
  int fd_;
};

// ---- Encoding -------------------------------------------------------------------------------

void AppendString(std::string* out, std::string_view s) {
  absl::StrAppend(out, s.size(), ":", ToAbsl(s));
}

std::string Encode(std::string_view application, const Table& table) {
  std::string out;
  absl::StrAppend(&out, ToAbsl(kMagic), kFormatVersion, "\n");
  out += "application ";
  AppendString(&out, application);
  absl::StrAppend(&out, "\nleases ", table.size(), "\n");
  for (const auto& [key, lease] : table) {
    out += "lease ";
    AppendString(&out, lease.lease_key);
    out += ' ';
    AppendString(&out, lease.owner);
    absl::StrAppend(&out, " ", lease.counter, " ");
    AppendString(&out, lease.checkpoint);
    absl::StrAppend(&out, " ", lease.owner_switches_since_checkpoint, " ",
                    lease.parent_shard_ids.size());
    for (const std::string& parent : lease.parent_shard_ids) {
      out += ' ';
      AppendString(&out, parent);
    }
    out += '\n';
  }
  absl::StrAppend(&out, ToAbsl(kChecksumPrefix), Md5Hex(Md5(out)), "\n");
  return out;
}

// ---- Decoding -------------------------------------------------------------------------------

// A strict reader over the body of a file. Every method returns false (and records what it
// expected) on the first mismatch; nothing reads past the end.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  bool Literal(std::string_view s) {
    if (text_.substr(pos_, s.size()) != s) return Fail(absl::StrCat("expected '", ToAbsl(s), "'"));
    pos_ += s.size();
    return true;
  }

  bool Int(int64_t* value) {
    size_t end = pos_;
    if (end < text_.size() && text_[end] == '-') ++end;
    while (end < text_.size() && text_[end] >= '0' && text_[end] <= '9') ++end;
    const std::string_view token = text_.substr(pos_, end - pos_);
    if (token.empty() || token.size() > 20 || !absl::SimpleAtoi(ToAbsl(token), value)) {
      return Fail("expected an integer");
    }
    pos_ = end;
    return true;
  }

  bool Count(size_t* value) {
    int64_t v = 0;
    if (!Int(&v)) return false;
    if (v < 0 || v > static_cast<int64_t>(text_.size())) return Fail("implausible count");
    *value = static_cast<size_t>(v);
    return true;
  }

  bool String(std::string* value) {
    int64_t size = 0;
    if (!Int(&size)) return false;
    if (size < 0) return Fail("negative string length");
    if (!Literal(":")) return false;
    if (static_cast<uint64_t>(size) > text_.size() - pos_) {
      return Fail("string runs past the end of the file");
    }
    value->assign(text_.substr(pos_, static_cast<size_t>(size)));
    pos_ += static_cast<size_t>(size);
    return true;
  }

  bool AtEnd() const { return pos_ == text_.size(); }
  size_t pos() const { return pos_; }
  const std::string& error() const { return error_; }

 private:
  bool Fail(std::string what) {
    error_ = std::move(what);
    return false;
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::string error_;
};

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Decodes a whole file. `path` and `application` are for the checks and the messages.
absl::StatusOr<Table> Decode(std::string_view text, const std::string& path,
                             std::string_view application) {
  auto corrupt = [&path](std::string_view what) {
    return InternalFailureError(
        absl::StrFormat("checkpoint file %s is unusable: %s", path, ToAbsl(what)));
  };
  if (text.empty()) return corrupt("the file is empty (0 bytes)");
  if (text.size() < kMagic.size() && kMagic.substr(0, text.size()) == text) {
    return corrupt(absl::StrFormat("the file is truncated (%d bytes)", text.size()));
  }
  if (text.substr(0, kMagic.size()) != kMagic) {
    return corrupt("not a rill lease file (it does not start with 'rill-leases')");
  }
  {
    Parser header(text.substr(kMagic.size()));
    int64_t version = 0;
    if (!header.Int(&version)) return corrupt("not a rill lease file (no format version)");
    if (version != kFormatVersion) {
      return corrupt(
          absl::StrFormat("format version %d is not supported (this build reads version %d)",
                          version, kFormatVersion));
    }
  }
  // The checksum line, then the checksum, before believing a single field.
  const size_t body_size = text.size() >= kChecksumLineSize ? text.size() - kChecksumLineSize : 0;
  const std::string_view checksum_line = text.substr(body_size);
  if (text.size() < kChecksumLineSize || text.back() != '\n' ||
      checksum_line.substr(0, kChecksumPrefix.size()) != kChecksumPrefix ||
      (body_size > 0 && text[body_size - 1] != '\n')) {
    return corrupt(absl::StrFormat(
        "the file is truncated or damaged: it does not end with its checksum line (%d bytes)",
        text.size()));
  }
  const std::string_view stored = checksum_line.substr(kChecksumPrefix.size(), 32);
  const std::string_view body = text.substr(0, body_size);
  const std::string computed = Md5Hex(Md5(body));
  if (!IsLowerHex(stored) || stored != computed) {
    return corrupt(absl::StrFormat(
        "checksum mismatch: the file says %s, its contents hash to %s (damaged or edited)",
        ToAbsl(stored), computed));
  }

  Parser p(body);
  int64_t version = 0;
  std::string file_application;
  size_t count = 0;
  bool ok = p.Literal(kMagic) && p.Int(&version) && p.Literal("\napplication ") &&
            p.String(&file_application) && p.Literal("\nleases ") && p.Count(&count) &&
            p.Literal("\n");
  Table table;
  for (size_t i = 0; ok && i < count; ++i) {
    Lease lease;
    size_t parents = 0;
    ok = p.Literal("lease ") && p.String(&lease.lease_key) && p.Literal(" ") &&
         p.String(&lease.owner) && p.Literal(" ") && p.Int(&lease.counter) && p.Literal(" ") &&
         p.String(&lease.checkpoint) && p.Literal(" ") &&
         p.Int(&lease.owner_switches_since_checkpoint) && p.Literal(" ") && p.Count(&parents);
    for (size_t j = 0; ok && j < parents; ++j) {
      std::string parent;
      ok = p.Literal(" ") && p.String(&parent);
      lease.parent_shard_ids.push_back(std::move(parent));
    }
    ok = ok && p.Literal("\n");
    if (ok && (lease.lease_key.empty() || table.count(lease.lease_key) != 0)) {
      return corrupt(absl::StrFormat("lease %d has an empty or duplicate key", i));
    }
    if (ok) {
      std::string key = lease.lease_key;
      table.emplace(std::move(key), std::move(lease));
    }
  }
  if (!ok) {
    return corrupt(absl::StrFormat("malformed at byte %d: %s", p.pos(), p.error()));
  }
  if (!p.AtEnd()) {
    return corrupt(absl::StrFormat("unexpected bytes after the last lease, at byte %d", p.pos()));
  }
  if (file_application != application) {
    return corrupt(absl::StrFormat("it holds the leases of application '%s', not '%s'",
                                   file_application, ToAbsl(application)));
  }
  return table;
}

}  // namespace

struct FileCheckpointStore::State {
  std::string directory;
  int dir_fd = -1;

  ~State() {
    if (dir_fd >= 0) ::close(dir_fd);
  }

  std::string PathOf(std::string_view name) const {
    return absl::StrCat(directory, "/", ToAbsl(name));
  }
  static std::string TableName(std::string_view application) {
    return absl::StrCat(ToAbsl(application), ".leases");
  }

  // The application's table; empty if it has no file yet.
  absl::StatusOr<Table> Read(std::string_view application) const {
    const std::string name = TableName(application);
    const std::string path = PathOf(name);
    int raw;
    do {
      raw = ::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC);
    } while (raw < 0 && errno == EINTR);
    if (raw < 0) {
      if (errno == ENOENT) {
        // No file: no leases yet — unless the directory itself is gone, which must not read as
        // an empty table.
        struct stat dir_st;
        if (::fstat(dir_fd, &dir_st) == 0 && dir_st.st_nlink == 0) {
          return InternalFailureError(absl::StrFormat(
              "checkpoint directory %s was removed while the store was open", directory));
        }
        return Table();
      }
      return IoError("cannot open checkpoint file", path, errno);
    }
    Fd fd(raw);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return IoError("cannot stat checkpoint file", path, errno);
    if (!S_ISREG(st.st_mode)) {
      return InternalFailureError(
          absl::StrFormat("checkpoint file %s is unusable: it is not a regular file", path));
    }
    if (st.st_size > kMaxFileBytes) {
      return InternalFailureError(
          absl::StrFormat("checkpoint file %s is unusable: %d bytes is too large for a lease table",
                          path, static_cast<int64_t>(st.st_size)));
    }
    std::string text;
    char buffer[16384];
    while (true) {
      const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return IoError("cannot read checkpoint file", path, errno);
      if (n == 0) break;
      text.append(buffer, static_cast<size_t>(n));
      if (static_cast<int64_t>(text.size()) > kMaxFileBytes) {
        return InternalFailureError(
            absl::StrFormat("checkpoint file %s is unusable: it keeps growing", path));
      }
    }
    return Decode(text, path, application);
  }

  // Replaces the application's file with `table` atomically (temp file, fsync, rename, fsync of
  // the directory). If the last fsync fails the caller sees an error although readers may already
  // see the new table.
  absl::Status Write(std::string_view application, const Table& table) const {
    return AsKinesisError(
        internal::WriteFileAtomically(PathOf(TableName(application)), Encode(application, table)));
  }

  // Runs `change` on the application's table under the application's lock file; writes the table
  // back if `change` returns true. `change` returns StatusOr<bool>: false = nothing to write.
  template <typename Change>
  absl::Status Modify(std::string_view application, Change change) const {
    const std::string lock_name = absl::StrCat(ToAbsl(application), ".lock");
    int raw;
    do {
      raw = ::openat(dir_fd, lock_name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    } while (raw < 0 && errno == EINTR);
    if (raw < 0) return IoError("cannot open lock file", PathOf(lock_name), errno);
    Fd lock(raw);
    int locked;
    do {
      locked = ::flock(lock.get(), LOCK_EX);
    } while (locked != 0 && errno == EINTR);
    if (locked != 0) return IoError("cannot lock", PathOf(lock_name), errno);
    // Closing the descriptor (Fd's destructor) releases the lock.
    absl::StatusOr<Table> table = Read(application);
    if (!table.ok()) return table.status();
    absl::StatusOr<bool> changed = change(*table);
    if (!changed.ok()) return changed.status();
    if (!*changed) return absl::OkStatus();
    return Write(application, *table);
  }
};

absl::StatusOr<std::unique_ptr<FileCheckpointStore>> FileCheckpointStore::Open(
    std::string directory) {
  if (directory.empty()) return InvalidArgumentError("FileCheckpointStore: empty directory path");
  // The directories about to be created, so that their entries can be made durable too.
  std::vector<std::filesystem::path> created;
  std::error_code ec;
  for (std::filesystem::path p = std::filesystem::path(directory).lexically_normal();
       !p.empty() && p.has_relative_path(); p = p.parent_path()) {
    if (!p.has_filename()) continue;  // "a/b/" names "a/b"
    if (std::filesystem::exists(p, ec) || ec) break;
    created.push_back(p);
  }
  std::filesystem::create_directories(directory, ec);
  if (ec) {
    return InternalFailureError(absl::StrFormat(
        "FileCheckpointStore: cannot create directory %s: %s", directory, ec.message()));
  }
  for (const std::filesystem::path& p : created) {
    std::filesystem::path parent = p.parent_path();
    if (parent.empty()) parent = ".";
    Fd parent_fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (parent_fd.get() < 0 || ::fsync(parent_fd.get()) != 0) {
      return IoError("FileCheckpointStore: cannot fsync directory", parent.string(), errno);
    }
  }
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return InternalFailureError(absl::StrFormat("FileCheckpointStore: cannot open directory %s: %s",
                                                directory, ErrnoText(errno)));
  }
  auto state = std::make_unique<State>();
  state->dir_fd = fd;
  state->directory = std::move(directory);
  if (::faccessat(fd, ".", R_OK | W_OK | X_OK, 0) != 0) {
    return InternalFailureError(
        absl::StrFormat("FileCheckpointStore: directory %s is not readable and writable: %s",
                        state->directory, ErrnoText(errno)));
  }
  return std::unique_ptr<FileCheckpointStore>(new FileCheckpointStore(std::move(state)));
}

FileCheckpointStore::FileCheckpointStore(std::unique_ptr<State> state) : state_(std::move(state)) {}
FileCheckpointStore::~FileCheckpointStore() = default;

const std::string& FileCheckpointStore::directory() const { return state_->directory; }

absl::StatusOr<std::vector<Lease>> FileCheckpointStore::ListLeases(std::string_view application) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  absl::StatusOr<Table> table = state_->Read(application);
  if (!table.ok()) return table.status();
  std::vector<Lease> leases;
  leases.reserve(table->size());
  for (auto& [key, lease] : *table) leases.push_back(std::move(lease));
  return leases;
}

absl::StatusOr<std::optional<Lease>> FileCheckpointStore::GetLease(std::string_view application,
                                                                   std::string_view lease_key) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease_key); !s.ok()) return s;
  absl::StatusOr<Table> table = state_->Read(application);
  if (!table.ok()) return table.status();
  auto it = table->find(lease_key);
  if (it == table->end()) return std::optional<Lease>();
  return std::optional<Lease>(std::move(it->second));
}

absl::StatusOr<bool> FileCheckpointStore::CreateLeaseIfAbsent(std::string_view application,
                                                              const Lease& lease) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease.lease_key); !s.ok()) return s;
  bool created = false;
  absl::Status s = state_->Modify(application, [&](Table& table) -> absl::StatusOr<bool> {
    created = table.emplace(lease.lease_key, lease).second;
    return created;
  });
  if (!s.ok()) return s;
  return created;
}

namespace {

// The common check of UpdateLease and DeleteLease.
absl::Status CheckCounter(std::string_view application, std::string_view lease_key,
                          const Table& table, int64_t expected_counter) {
  auto it = table.find(lease_key);
  if (it == table.end()) {
    return ResourceNotFoundError(
        absl::StrFormat("application %s has no lease %s", ToAbsl(application), ToAbsl(lease_key)));
  }
  if (it->second.counter != expected_counter) {
    return ResourceInUseError(absl::StrFormat(
        "lease %s of application %s has counter %d, not the expected %d", ToAbsl(lease_key),
        ToAbsl(application), it->second.counter, expected_counter));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FileCheckpointStore::UpdateLease(std::string_view application, const Lease& lease,
                                              int64_t expected_counter) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease.lease_key); !s.ok()) return s;
  return state_->Modify(application, [&](Table& table) -> absl::StatusOr<bool> {
    if (absl::Status s = CheckCounter(application, lease.lease_key, table, expected_counter);
        !s.ok()) {
      return s;
    }
    table.find(lease.lease_key)->second = lease;
    return true;
  });
}

absl::Status FileCheckpointStore::DeleteLease(std::string_view application,
                                              std::string_view lease_key,
                                              int64_t expected_counter) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease_key); !s.ok()) return s;
  return state_->Modify(application, [&](Table& table) -> absl::StatusOr<bool> {
    if (absl::Status s = CheckCounter(application, lease_key, table, expected_counter); !s.ok()) {
      return s;
    }
    table.erase(table.find(lease_key));
    return true;
  });
}

absl::StatusOr<std::vector<absl::Status>> FileCheckpointStore::UpdateLeases(
    std::string_view application, absl::Span<const LeaseUpdate> updates) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  std::vector<absl::Status> results;
  absl::Status s = state_->Modify(application, [&](Table& table) -> absl::StatusOr<bool> {
    results.clear();  // a retried read-modify-write starts over
    bool changed = false;
    for (const LeaseUpdate& u : updates) {
      absl::Status r = internal::ValidateLeaseKey(u.lease.lease_key);
      if (r.ok()) r = CheckCounter(application, u.lease.lease_key, table, u.expected_counter);
      if (r.ok()) {
        table.find(u.lease.lease_key)->second = u.lease;
        changed = true;
      }
      results.push_back(std::move(r));
    }
    return changed;
  });
  if (!s.ok()) return s;
  return results;
}

absl::StatusOr<std::vector<bool>> FileCheckpointStore::CreateLeasesIfAbsent(
    std::string_view application, absl::Span<const Lease> leases) {
  if (absl::Status s = internal::ValidateLeases(application, leases); !s.ok()) return s;
  std::vector<bool> created;
  absl::Status s = state_->Modify(application, [&](Table& table) -> absl::StatusOr<bool> {
    created.clear();  // a retried read-modify-write starts over
    bool changed = false;
    for (const Lease& lease : leases) {
      const bool c = table.emplace(lease.lease_key, lease).second;
      changed = changed || c;
      created.push_back(c);
    }
    return changed;
  });
  if (!s.ok()) return s;
  return created;
}

}  // namespace rill
