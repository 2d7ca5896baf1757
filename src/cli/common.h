// What every command of the `rill` tool shares: its exit codes and error reporting, opening a
// stream directory (read-only for the commands that only look, read-write for those that change
// the stream), sizes on disk, record counts, a progress bar and SIGINT/SIGTERM handling.
//
// The tool is an application built in-tree, so it may use rill's internal storage headers (the
// METADATA decoder, the segment reader) as the tests do; nothing here is public API.
//
// Thread safety: single-threaded, like the tool; StopSignals' handler is async-signal-safe.
#ifndef RILL_CLI_COMMON_H_
#define RILL_CLI_COMMON_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rill/base/shard_id.h"
#include "rill/storage/encryption.h"
#include "rill/stream/shard_iterator.h"
#include "rill/stream/stream.h"
#include "storage/stream_store.h"

namespace rill::cli {

// The tool's exit codes, documented in `rill --help`. The values are part of its interface.
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,     // a bad command line or argument
  kExitNotFound = 2,  // no such directory, stream, shard, store or METRICS file
  kExitLocked = 3,    // another process holds the stream (for commands that change it)
  kExitDamage = 4,    // damage found (verify), or a damaged METADATA
  kExitError = 5,     // anything else: I/O errors, records that could not be put
};

// The text `rill --help` ends with.
std::string_view ExitCodeHelp();

// A status that carries `code`, for Report().
absl::Status Failure(ExitCode code, absl::string_view message);
// The exit code a status maps to: the one Failure() attached, else by its rill ErrorCode
// (kInvalidArgument and kValidation: usage; kResourceNotFound: not found; kResourceInUse:
// locked), else kExitError. kExitOk for OK.
ExitCode ExitCodeOf(const absl::Status& status);
// Prints "rill: error: <message>" to stderr and returns ExitCodeOf(status).
int Report(const absl::Status& status);
// Prints "rill: warning: <message>" to stderr.
void Warn(std::string_view message);

// The keyring (a FileKeyProvider file) of encrypted streams: --keyring or RILL_KEYRING; empty
// for none. Set once, by main, before any command runs.
void SetKeyringPath(std::string path);
// The provider of that keyring, opened on first use; null without a keyring. Failure kExitError
// naming the file when it cannot be opened.
absl::StatusOr<std::shared_ptr<KeyProvider>> Keyring();

// The METADATA of the stream in `dir`. Failure kExitNotFound for a missing directory or one
// without METADATA (not a stream), kExitDamage for a damaged METADATA, kExitError for I/O.
absl::StatusOr<internal::StreamMeta> ReadStreamMeta(const std::string& dir);

enum class Access {
  // StorageOptions::read_only: takes no lock and writes nothing, so it works while another
  // process holds the stream; sees what was acknowledged when it opened.
  kReadOnly,
  // Takes the directory's lock: Failure kExitLocked naming the holder's pid when another
  // process has the stream open.
  kReadWrite,
};

// Opens the durable stream in `dir` (it must hold one: ReadStreamMeta's failures), with the
// keyring's provider if there is one (an encrypted stream needs it: kExitError saying so). With
// `warn_damage`, warns on stderr when recovery found damage (the stream still opens, with the
// records before it).
absl::StatusOr<std::unique_ptr<Stream>> OpenStream(const std::string& dir, Access access,
                                                   bool warn_damage = true);

// The pid recorded in <dir>/LOCK by the last process that locked it, if readable.
std::optional<int> LockHolderPid(const std::string& dir);

// Bytes of the segment files of shard `index` (<dir>/shard-<index>/*.seg); 0 if none.
uint64_t ShardSegmentBytes(const std::string& dir, uint32_t index);
// Bytes of every regular file under `dir`.
uint64_t DirectoryBytes(const std::string& dir);

// Parses a shard given as "shardId-000000000001" or "1": Failure kExitUsage otherwise.
absl::StatusOr<ShardId> ParseShardArgument(std::string_view text);

// What a read of a shard from a position to its end found.
struct ShardCount {
  uint64_t records = 0;
  uint64_t bytes = 0;  // partition keys plus data
  std::optional<SequenceNumber> first;
  std::optional<SequenceNumber> last;
};
class Progress;
// Reads `shard` from `position` to its published end (the end of a closed shard), counting;
// advances `progress` (when given) by the records read.
absl::StatusOr<ShardCount> CountRecords(const Stream& stream, ShardId shard,
                                        const StartingPosition& position,
                                        Progress* progress = nullptr);

// A progress bar on stderr for long scans: drawn only when stderr is a terminal and the scan
// has run for more than a second, redrawn at most ten times a second, erased when destroyed.
class Progress {
 public:
  // `total` units of `unit` ("shards", "records", "bytes": shown in MiB) to go through; 0 when
  // unknown (then only the count so far is shown).
  Progress(std::string label, uint64_t total, std::string unit);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // Sets how many units are done.
  void Update(uint64_t done);
  void Advance(uint64_t units = 1) { Update(done_ + units); }

 private:
  std::string label_;
  uint64_t total_;
  std::string unit_;
  uint64_t done_ = 0;
  bool enabled_;
  bool drawn_ = false;
  absl::Time start_;
  absl::Time last_draw_;
};

// SIGINT and SIGTERM set a flag (and wake a waiting Sleep) instead of killing the process, for
// the commands that run until stopped (tail -f, serve, top). One instance at a time.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();  // restores the previous handlers
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  bool stop_requested() const;
  // Waits up to `d`, or until a signal arrives or `fd` (when >= 0) is readable; returns true if
  // stop was requested.
  bool Sleep(absl::Duration d, int fd = -1);
  // A descriptor that becomes readable when a signal arrived (for poll()).
  int wake_fd() const;
};

}  // namespace rill::cli

#endif  // RILL_CLI_COMMON_H_
