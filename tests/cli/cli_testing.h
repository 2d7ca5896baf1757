// Helpers of the cli tests: run the installed `rill` binary (RILL_CLI_BINARY) as a plain process
// with posix_spawn, feed its stdin, collect its stdout, stderr and exit code; keep a long-running
// one (tail -f, serve, the stream holder) and talk to it; build durable streams with known
// records.
#ifndef RILL_TESTS_CLI_CLI_TESTING_H_
#define RILL_TESTS_CLI_CLI_TESTING_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rill/base/clock.h"
#include "rill/stream/stream.h"

namespace rill::cli_testing {

// The installed binary, and the stream-holding helper.
std::string RillBinary();
std::string HolderBinary();

struct RunResult {
  int exit_code = -1;  // 128 + signal number if it was killed
  std::string out;
  std::string err;
  // `out` split at "\n" (without a final empty piece).
  std::vector<std::string> lines() const;
};

// Runs `rill args...` with `input` on stdin and waits for it (at most 60 s, then kills it and
// fails the test).
RunResult Rill(const std::vector<std::string>& args, std::string_view input = "");

// A child process with pipes on its stdin, stdout and stderr.
class Child {
 public:
  // Starts `program args...`; fails the test if it cannot.
  Child(const std::string& program, const std::vector<std::string>& args);
  ~Child();  // kills it (SIGKILL) if it still runs
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  void Write(std::string_view text);
  void CloseStdin();
  // Reads until `done(stdout so far)` holds, the output ends or `timeout` passes; returns
  // whether it holds.
  bool WaitForOutput(const std::function<bool(const std::string&)>& done,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // The next line of stdout (without "\n"), or nullopt at its end or after `timeout`.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  void Signal(int signal);
  // Waits for the exit (reading its output meanwhile): the exit code, 128 + signal if killed,
  // or -1 after `timeout` (the child is then killed).
  int Wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  // Reads what is available on stdout and stderr, waiting up to `timeout` for something.
  // False when both are closed.
  bool Pump(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int in_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
  size_t line_start_ = 0;  // of the next unread line in out_
  std::optional<int> exit_code_;
};

// A SimulatedClock an hour behind the system clock, on a whole second: records put on it are
// within every retention period for the tool, which reads on the system clock, and their
// arrival times are known exactly.
std::shared_ptr<SimulatedClock> RecentClock();

// The options of a durable stream in `dir` (kEveryBatch, so that every put is on disk at once).
StreamOptions DurableOptions(const std::string& dir, std::shared_ptr<Clock> clock, int shards,
                             std::string name = "clicks");

// A partition key (key-<n>) that routes to shard `index` of a stream of `shard_count` shards
// created as CreateStream splits the hash-key space.
std::string KeyForShard(int index, int shard_count, int nth = 0);

// RFC 3339 in UTC with microseconds, as the tool prints times.
std::string Rfc3339(absl::Time t);

// Bytes of every regular file under `dir`, and of shard `index`'s segment files.
uint64_t TreeBytes(const std::string& dir);
uint64_t SegmentBytes(const std::string& dir, int index);

// Writes `contents` to `path` atomically (a temporary file renamed over it).
void WriteFileAtomically(const std::string& path, std::string_view contents);

}  // namespace rill::cli_testing

#endif  // RILL_TESTS_CLI_CLI_TESTING_H_
