#include "cli_testing.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "rill/base/hash_key.h"

extern char** environ;

namespace rill::cli_testing {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

void MakePipe(int fds[2]) { REQUIRE(::pipe2(fds, O_CLOEXEC) == 0); }

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::string RillBinary() { return RILL_CLI_BINARY; }
std::string HolderBinary() { return RILL_CLI_TEST_HOLDER; }

std::vector<std::string> RunResult::lines() const {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    lines.push_back(out.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

Child::Child(const std::string& program, const std::vector<std::string>& args) {
  int in[2], out[2], err[2];
  MakePipe(in);
  MakePipe(out);
  MakePipe(err);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  std::vector<std::string> argv_strings{program};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int spawned =
      ::posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  in_ = in[1];
  out_fd_ = out[0];
  err_fd_ = err[0];
  INFO("posix_spawn " << program << ": " << std::strerror(spawned));
  REQUIRE(spawned == 0);
  // A child that exits before reading all its input must not kill the test with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
}

Child::~Child() {
  if (!exit_code_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  for (int fd : {in_, out_fd_, err_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

void Child::Write(std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(in_, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the child closed its stdin
    text.remove_prefix(static_cast<size_t>(n));
  }
}

void Child::CloseStdin() {
  if (in_ >= 0) ::close(in_);
  in_ = -1;
}

bool Child::Pump(std::chrono::milliseconds timeout) {
  struct pollfd fds[2];
  int count = 0;
  if (out_fd_ >= 0) fds[count++] = {out_fd_, POLLIN, 0};
  if (err_fd_ >= 0) fds[count++] = {err_fd_, POLLIN, 0};
  if (count == 0) return false;
  const int ready = ::poll(fds, count, static_cast<int>(timeout.count()));
  if (ready <= 0) return true;
  for (int i = 0; i < count; ++i) {
    if (fds[i].revents == 0) continue;
    char buffer[65536];
    const ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
    const bool is_out = fds[i].fd == out_fd_;
    if (n > 0) {
      (is_out ? out_ : err_).append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      ::close(fds[i].fd);
      (is_out ? out_fd_ : err_fd_) = -1;
    }
  }
  return true;
}

bool Child::WaitForOutput(const std::function<bool(const std::string&)>& done,
                          std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!done(out_)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) return false;
    if (!Pump(left)) return done(out_);
  }
  return true;
}

std::optional<std::string> Child::ReadLine(std::chrono::milliseconds timeout) {
  const bool found = WaitForOutput(
      [&](const std::string& out) { return out.find('\n', line_start_) != std::string::npos; },
      timeout);
  if (!found) return std::nullopt;
  const size_t end = out_.find('\n', line_start_);
  std::string line = out_.substr(line_start_, end - line_start_);
  line_start_ = end + 1;
  return line;
}

void Child::Signal(int signal) {
  if (!exit_code_) ::kill(pid_, signal);
}

int Child::Wait(std::chrono::milliseconds timeout) {
  if (exit_code_) return *exit_code_;
  const auto deadline = SteadyClock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      while (Pump(std::chrono::milliseconds(0)) && (out_fd_ >= 0 || err_fd_ >= 0)) {
        if (!Pump(std::chrono::milliseconds(100))) break;
      }
      exit_code_ = DecodeWaitStatus(status);
      return *exit_code_;
    }
    if (SteadyClock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      exit_code_ = -1;
      return -1;
    }
    // Reading keeps a chatty child from blocking on a full pipe; the poll also paces the loop.
    if (!Pump(std::chrono::milliseconds(20)))
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

RunResult Rill(const std::vector<std::string>& args, std::string_view input) {
  Child child(RillBinary(), args);
  child.Write(input);
  child.CloseStdin();
  RunResult result;
  result.exit_code = child.Wait(std::chrono::seconds(60));
  result.out = child.out();
  result.err = child.err();
  INFO("rill " << absl::StrJoin(args, " ") << "\nstdout:\n"
               << result.out << "stderr:\n"
               << result.err);
  REQUIRE(result.exit_code != -1);  // it finished
  return result;
}

std::shared_ptr<SimulatedClock> RecentClock() {
  const absl::Time now = absl::Now();
  const absl::Time start = absl::FromUnixSeconds(absl::ToUnixSeconds(now)) - absl::Hours(1);
  return std::make_shared<SimulatedClock>(start);
}

StreamOptions DurableOptions(const std::string& dir, std::shared_ptr<Clock> clock, int shards,
                             std::string name) {
  StreamOptions options;
  options.name = std::move(name);
  options.shard_count = shards;
  options.clock = std::move(clock);
  StorageOptions storage;
  storage.directory = dir;
  storage.fsync = FsyncPolicy::kEveryBatch;
  options.storage = storage;
  return options;
}

std::string KeyForShard(int index, int shard_count, int nth) {
  const std::vector<HashKeyRange> ranges = SplitHashKeySpace(shard_count);
  for (int n = 0;; ++n) {
    const std::string key = absl::StrCat("key-", n);
    if (ranges[index].Contains(HashKey::FromPartitionKey(key)) && nth-- == 0) return key;
  }
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

uint64_t TreeBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) total += entry.file_size();
  }
  return total;
}

uint64_t SegmentBytes(const std::string& dir, int index) {
  uint64_t total = 0;
  std::error_code error;
  for (fs::directory_iterator it(absl::StrCat(dir, "/shard-", index), error), end;
       !error && it != end; it.increment(error)) {
    if (it->path().extension() == ".seg") total += it->file_size();
  }
  return total;
}

void WriteFileAtomically(const std::string& path, std::string_view contents) {
  const std::string temp = path + ".test-tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    REQUIRE(out.good());
  }
  fs::rename(temp, path);
}

}  // namespace rill::cli_testing
