#include "cli/common.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "storage/file_util.h"
#include "storage/segment.h"

namespace rill::cli {
namespace {

namespace fs = std::filesystem;

constexpr char kExitPayload[] = "rill.cli/exit";

absl::Time Now() { return SystemClock::Default()->Now(); }

}  // namespace

std::string_view ExitCodeHelp() {
  return "Exit codes:\n"
         "  0  success\n"
         "  1  usage: a bad command line or argument\n"
         "  2  not found: no such directory, stream, shard, checkpoint store or METRICS file\n"
         "  3  locked: another process has the stream open (the read-only commands describe,\n"
         "     shards, get, tail, groups, metrics, verify and top still work)\n"
         "  4  damage found (verify), or a damaged METADATA\n"
         "  5  any other error (I/O, records that could not be put)\n";
}

absl::Status Failure(ExitCode code, absl::string_view message) {
  absl::StatusCode status_code = absl::StatusCode::kUnknown;
  switch (code) {
    case kExitOk:
      return absl::OkStatus();
    case kExitUsage:
      status_code = absl::StatusCode::kInvalidArgument;
      break;
    case kExitNotFound:
      status_code = absl::StatusCode::kNotFound;
      break;
    case kExitLocked:
      status_code = absl::StatusCode::kFailedPrecondition;
      break;
    case kExitDamage:
      status_code = absl::StatusCode::kDataLoss;
      break;
    case kExitError:
      status_code = absl::StatusCode::kInternal;
      break;
  }
  absl::Status status(status_code, message);
  status.SetPayload(kExitPayload, absl::Cord(std::to_string(static_cast<int>(code))));
  return status;
}

ExitCode ExitCodeOf(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (auto payload = status.GetPayload(kExitPayload)) {
    int code = 0;
    if (absl::SimpleAtoi(std::string(*payload), &code) && code >= 0 && code <= kExitError) {
      return static_cast<ExitCode>(code);
    }
  }
  switch (GetErrorCode(status)) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kValidation:
      return kExitUsage;
    case ErrorCode::kResourceNotFound:
      return kExitNotFound;
    case ErrorCode::kResourceInUse:
      return kExitLocked;
    default:
      return kExitError;
  }
}

int Report(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  std::cout.flush();
  std::cerr << "rill: error: " << status.message() << "\n";
  return ExitCodeOf(status);
}

void Warn(std::string_view message) {
  std::cout.flush();
  std::cerr << "rill: warning: " << message << "\n";
}

namespace {
std::string& KeyringPathStorage() {
  static std::string* path = new std::string;
  return *path;
}
}  // namespace

void SetKeyringPath(std::string path) { KeyringPathStorage() = std::move(path); }

absl::StatusOr<std::shared_ptr<KeyProvider>> Keyring() {
  static absl::StatusOr<std::shared_ptr<KeyProvider>>* provider = [] {
    const std::string& path = KeyringPathStorage();
    if (path.empty()) {
      return new absl::StatusOr<std::shared_ptr<KeyProvider>>(std::shared_ptr<KeyProvider>());
    }
    absl::StatusOr<std::unique_ptr<FileKeyProvider>> opened = FileKeyProvider::Open(path);
    if (!opened.ok()) {
      return new absl::StatusOr<std::shared_ptr<KeyProvider>>(Failure(
          kExitError,
          absl::StrFormat("cannot open the keyring %s: %s", path, opened.status().message())));
    }
    return new absl::StatusOr<std::shared_ptr<KeyProvider>>(
        std::shared_ptr<KeyProvider>(*std::move(opened)));
  }();
  return *provider;
}

absl::StatusOr<internal::StreamMeta> ReadStreamMeta(const std::string& dir) {
  std::error_code error;
  const fs::file_status status = fs::status(dir, error);
  if (!fs::exists(status)) {
    return Failure(kExitNotFound,
                   absl::StrFormat("no such directory: %s (give the directory of a durable "
                                   "stream, as its StorageOptions::directory names it)",
                                   dir));
  }
  if (!fs::is_directory(status)) {
    return Failure(kExitNotFound,
                   absl::StrFormat("%s is not a directory (give the directory of a durable "
                                   "stream, as its StorageOptions::directory names it)",
                                   dir));
  }
  const std::string path = dir + "/METADATA";
  absl::StatusOr<std::string> bytes = internal::ReadFile(path);
  if (absl::IsNotFound(bytes.status())) {
    return Failure(kExitNotFound,
                   absl::StrFormat("%s holds no rill stream (it has no METADATA file): is it the "
                                   "directory a durable stream was created in?",
                                   dir));
  }
  if (!bytes.ok()) return Failure(kExitError, bytes.status().message());
  absl::StatusOr<internal::StreamMeta> meta = internal::DecodeStreamMeta(*bytes);
  if (!meta.ok()) {
    return Failure(absl::IsDataLoss(meta.status()) ? kExitDamage : kExitError,
                   absl::StrFormat("%s: %s (run `rill verify %s` for a full check)", path,
                                   meta.status().message(), dir));
  }
  return meta;
}

std::optional<int> LockHolderPid(const std::string& dir) {
  absl::StatusOr<std::string> text = internal::ReadFile(dir + "/LOCK");
  int pid = 0;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pid) || pid <= 0) {
    return std::nullopt;
  }
  return pid;
}

absl::StatusOr<std::unique_ptr<Stream>> OpenStream(const std::string& dir, Access access,
                                                   bool warn_damage) {
  absl::StatusOr<internal::StreamMeta> meta = ReadStreamMeta(dir);
  if (!meta.ok()) return meta.status();
  StreamOptions options;
  options.name = meta->name;
  // The stored retention is what counts; pass it so that a stream made with a short one (tests,
  // simulations) passes the options check.
  options.allow_short_retention = true;
  if (meta->retention_us > 0) options.retention = absl::Microseconds(meta->retention_us);
  StorageOptions storage;
  storage.directory = dir;
  storage.read_only = access == Access::kReadOnly;
  options.storage = storage;
  absl::StatusOr<std::shared_ptr<KeyProvider>> keyring = Keyring();
  if (!keyring.ok()) return keyring.status();
  options.key_provider = *keyring;
  absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Open(options);
  if (!stream.ok()) {
    if (GetErrorCode(stream.status()) == ErrorCode::kResourceInUse) {
      const std::optional<int> pid = LockHolderPid(dir);
      const std::string holder = pid ? absl::StrFormat("process %d", *pid) : "another process";
      return Failure(
          kExitLocked,
          absl::StrFormat("stream %s in %s is locked by %s (per %s/LOCK), which has it open; "
                          "this command changes the stream and needs it to itself. Stop that "
                          "process first, or use the read-only commands (describe, shards, get, "
                          "tail, groups, metrics, verify, top), which work while it runs",
                          meta->name, dir, holder, dir));
    }
    if (internal::IsKeyError(stream.status())) {
      return Failure(
          kExitError,
          absl::StrFormat("cannot open the stream in %s: %s (%s)", dir, stream.status().message(),
                          KeyringPathStorage().empty()
                              ? "it is encrypted: give its keyring with --keyring PATH or "
                                "RILL_KEYRING"
                              : absl::StrCat("with the keyring ", KeyringPathStorage())));
    }
    return Failure(kExitError, absl::StrFormat("cannot open the stream in %s: %s", dir,
                                               stream.status().message()));
  }
  const absl::Status recovery = (*stream)->recovery_status();
  if (!recovery.ok() && warn_damage) {
    Warn(
        absl::StrFormat("recovery found damage in %s: %s; the damaged shard shows the records "
                        "before it. Run `rill verify %s` for details",
                        dir, recovery.message(), dir));
  }
  return stream;
}

uint64_t ShardSegmentBytes(const std::string& dir, uint32_t index) {
  uint64_t total = 0;
  std::error_code error;
  for (fs::directory_iterator it(absl::StrCat(dir, "/shard-", index), error), end;
       !error && it != end; it.increment(error)) {
    if (it->path().extension() != ".seg") continue;
    const uintmax_t size = it->file_size(error);
    if (!error) total += size;
    error.clear();
  }
  return total;
}

uint64_t DirectoryBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code error;
  for (fs::recursive_directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    if (!it->is_regular_file(error)) continue;
    const uintmax_t size = it->file_size(error);
    if (!error) total += size;
    error.clear();
  }
  return total;
}

absl::StatusOr<ShardId> ParseShardArgument(std::string_view text) {
  absl::StatusOr<ShardId> id = ShardId::Parse(text);
  if (!id.ok()) {
    return Failure(kExitUsage, absl::StrFormat("bad shard '%s': give a shard id "
                                               "(shardId-000000000001) or its number (1)",
                                               std::string(text)));
  }
  return id;
}

absl::StatusOr<ShardCount> CountRecords(const Stream& stream, ShardId shard,
                                        const StartingPosition& position, Progress* progress) {
  absl::StatusOr<ShardIterator> it = stream.GetShardIterator(shard, position);
  if (!it.ok()) return it.status();
  ShardCount count;
  int empty_reads = 0;
  while (true) {
    absl::StatusOr<GetRecordsResult> batch = stream.GetRecords(*it, kMaxGetRecordsLimit);
    if (!batch.ok()) return batch.status();
    for (const Record& r : batch->records) {
      if (!count.first) count.first = r.sequence_number;
      count.last = r.sequence_number;
      ++count.records;
      count.bytes += r.partition_key.size() + r.data.size();
    }
    if (progress != nullptr) progress->Advance(batch->records.size());
    if (!batch->next_shard_iterator) break;
    // An empty read may still be followed by records (a gap left by retention); a read that is
    // caught up is the end of what the stream has published.
    if (batch->records.empty() && (batch->millis_behind_latest == 0 || ++empty_reads > 100)) {
      break;
    }
    it = *std::move(batch->next_shard_iterator);
  }
  return count;
}

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      enabled_(::isatty(STDERR_FILENO) == 1),
      start_(Now()),
      last_draw_(absl::InfinitePast()) {}

Progress::~Progress() {
  if (drawn_) std::fputs("\r\x1b[K", stderr);
}

void Progress::Update(uint64_t done) {
  done_ = done;
  if (!enabled_) return;
  const absl::Time now = Now();
  if (now - start_ < absl::Seconds(1) || now - last_draw_ < absl::Milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  // Bytes in MiB with one decimal; other units as counts.
  auto amount = [&](uint64_t n) {
    return unit_ == "bytes" ? absl::StrFormat("%.1f", static_cast<double>(n) / (1 << 20))
                            : std::to_string(n);
  };
  const std::string unit = unit_ == "bytes" ? "MiB" : unit_;
  std::string line;
  if (total_ > 0) {
    constexpr int kWidth = 30;
    const uint64_t shown = std::min(done_, total_);
    const int filled = static_cast<int>(shown * kWidth / total_);
    line =
        absl::StrFormat("\r%s [%s%s] %3d%% %s/%s %s\x1b[K", label_, std::string(filled, '#'),
                        std::string(kWidth - filled, ' '), static_cast<int>(shown * 100 / total_),
                        amount(shown), amount(total_), unit);
  } else {
    line = absl::StrFormat("\r%s: %s %s\x1b[K", label_, amount(done_), unit);
  }
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

namespace {

int g_wake_pipe[2] = {-1, -1};
volatile std::sig_atomic_t g_stop = 0;
struct sigaction g_previous_int;
struct sigaction g_previous_term;

extern "C" void OnStopSignal(int) {
  g_stop = 1;
  const int saved = errno;
  const char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(g_wake_pipe[1], &byte, 1);
  errno = saved;
}

}  // namespace

StopSignals::StopSignals() {
  g_stop = 0;
  if (::pipe2(g_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    g_wake_pipe[0] = g_wake_pipe[1] = -1;
  }
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;
  ::sigaction(SIGINT, &action, &g_previous_int);
  ::sigaction(SIGTERM, &action, &g_previous_term);
}

StopSignals::~StopSignals() {
  ::sigaction(SIGINT, &g_previous_int, nullptr);
  ::sigaction(SIGTERM, &g_previous_term, nullptr);
  for (int& fd : g_wake_pipe) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

bool StopSignals::stop_requested() const { return g_stop != 0; }

int StopSignals::wake_fd() const { return g_wake_pipe[0]; }

bool StopSignals::Sleep(absl::Duration d, int fd) {
  if (stop_requested()) return true;
  struct pollfd fds[2];
  int count = 0;
  if (g_wake_pipe[0] >= 0) fds[count++] = {g_wake_pipe[0], POLLIN, 0};
  if (fd >= 0) fds[count++] = {fd, POLLIN, 0};
  const int timeout_ms = static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(d)));
  const int ready = ::poll(fds, count, timeout_ms);
  (void)ready;  // EINTR and timeouts alike: the flag says whether to stop
  return stop_requested();
}

}  // namespace rill::cli
