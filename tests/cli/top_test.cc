// rill top in a real terminal: tmux on a private socket runs it in a 120x40 pane; the test reads
// the pane (capture-pane), rewrites METRICS to make the rates move, and quits with q (and with
// Ctrl-C). Skipped, with a warning, when tmux is not installed.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli_testing.h"
#include "rill/metrics/metrics.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

// Runs a shell command; its stdout.
std::string Shell(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  ::pclose(pipe);
  return out;
}

// A tmux server of its own (tmux -L), killed with everything in it on destruction.
class Tmux {
 public:
  Tmux() : socket_(absl::StrFormat("rill-cli-test-%d", ::getpid())) {}
  ~Tmux() { std::system((Prefix() + " kill-server >/dev/null 2>&1").c_str()); }
  // Not nested in a tmux the tests may run in.
  std::string Prefix() const {
    return absl::StrFormat("env -u TMUX tmux -L %s -f /dev/null", socket_);
  }
  // A detached 120x40 session running `command` in sh.
  void NewSession(const std::string& name, const std::string& command) {
    const std::string line =
        absl::StrFormat("%s new-session -d -s %s -x 120 -y 40 \"%s\"", Prefix(), name, command);
    REQUIRE(std::system(line.c_str()) == 0);
  }
  std::string Capture(const std::string& name) {
    return Shell(absl::StrFormat("%s capture-pane -p -t %s", Prefix(), name));
  }
  void SendKeys(const std::string& name, const std::string& keys) {
    REQUIRE(std::system(absl::StrFormat("%s send-keys -t %s %s", Prefix(), name, keys).c_str()) ==
            0);
  }
  // Polls the pane until `done(text)` holds (30 s at most); the last text seen.
  bool WaitFor(const std::string& name, const std::function<bool(const std::string&)>& done,
               std::string* text) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      *text = Capture(name);
      if (done(*text)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

 private:
  std::string socket_;
};

MetricsSnapshot Snapshot(absl::Time taken_at, int64_t shard0_records, int64_t shard1_records) {
  MetricsSnapshot s;
  s.stream_name = "clicks";
  s.taken_at = taken_at;
  s.incoming_records = shard0_records + shard1_records;
  s.incoming_bytes = 10 * s.incoming_records;
  s.shards.push_back(ShardMetrics{.shard_id = ShardId(0),
                                  .incoming_bytes = 10 * shard0_records,
                                  .incoming_records = shard0_records,
                                  .outgoing_bytes = 0,
                                  .outgoing_records = 0,
                                  .write_provisioned_throughput_exceeded = 4,
                                  .read_provisioned_throughput_exceeded = 0,
                                  .iterator_age_milliseconds = 250});
  s.shards.push_back(ShardMetrics{.shard_id = ShardId(1),
                                  .incoming_bytes = 10 * shard1_records,
                                  .incoming_records = shard1_records,
                                  .outgoing_bytes = 0,
                                  .outgoing_records = 0,
                                  .write_provisioned_throughput_exceeded = 0,
                                  .read_provisioned_throughput_exceeded = 0,
                                  .iterator_age_milliseconds = 0});
  return s;
}

// The pane's line that starts with `prefix`, or "".
std::string LineStarting(const std::string& text, const std::string& prefix) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, prefix)) return std::string(line);
  }
  return "";
}

TEST_CASE("top shows per-shard rates in a terminal, refreshes, and quits on q and Ctrl-C",
          "[cli]") {
  if (std::system("tmux -V >/dev/null 2>&1") != 0) {
    WARN("tmux is not installed: rill top's terminal test is skipped");
    return;
  }
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  testing::MustCreate(cli_testing::DurableOptions(dir.path(), cli_testing::RecentClock(), 2));
  const absl::Time t0 = absl::FromUnixSeconds(1714564800);
  cli_testing::WriteFileAtomically(dir.File("METRICS"), ToJson(Snapshot(t0, 100, 10)));

  Tmux tmux;
  // After top exits, the shell prints its exit code and whether the terminal is canonical and
  // echoing again, then stays for the test to read the pane.
  const std::string after =
      "echo top-exited-$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo "
      "-e -echo | tr '\\n' ' '; echo; sleep 60";
  tmux.NewSession("q", absl::StrFormat("%s top %s --interval 0.1; %s", cli_testing::RillBinary(),
                                       dir.path(), after));
  std::string text;
  // The shard rows appear (no rates yet: one snapshot).
  REQUIRE(tmux.WaitFor(
      "q",
      [](const std::string& t) {
        return absl::StrContains(t, "shardId-000000000000") &&
               absl::StrContains(t, "shardId-000000000001");
      },
      &text));
  CHECK(absl::StrContains(text, "rill top: stream clicks in " + dir.path()));
  CHECK(absl::StrContains(text, "RECORDS/S"));
  CHECK(absl::StrContains(text, "ITERATOR AGE MS"));
  // The writer's next snapshot, a second later: 50 records/s on shard 0, 5 on shard 1.
  cli_testing::WriteFileAtomically(dir.File("METRICS"),
                                   ToJson(Snapshot(t0 + absl::Seconds(1), 150, 15)));
  REQUIRE(tmux.WaitFor(
      "q",
      [](const std::string& t) {
        return absl::StrContains(LineStarting(t, "shardId-000000000000"), " 50.0 ");
      },
      &text));
  CHECK(LineStarting(text, "shardId-000000000000") ==
        absl::StrFormat("%-20s  %9s  %7s  %13s  %11s  %15s  %9s  %7s", "shardId-000000000000",
                        "50.0", "500.0", "0.0", "0.0", "250", "4", "150"));
  CHECK(LineStarting(text, "shardId-000000000001") ==
        absl::StrFormat("%-20s  %9s  %7s  %13s  %11s  %15s  %9s  %7s", "shardId-000000000001",
                        "5.0", "50.0", "0.0", "0.0", "0", "0", "15"));
  // It keeps refreshing: the refresh count in the title moves on.
  const std::string title = LineStarting(text, "rill top:");
  REQUIRE(tmux.WaitFor(
      "q",
      [&](const std::string& t) {
        return !LineStarting(t, "rill top:").empty() && LineStarting(t, "rill top:") != title;
      },
      &text));

  tmux.SendKeys("q", "q");
  REQUIRE(tmux.WaitFor(
      "q",
      [](const std::string& t) {
        return absl::StrContains(t, "top-exited-") && absl::StrContains(t, "echo");
      },
      &text));
  CHECK(absl::StrContains(text, "top-exited-0"));
  CHECK(absl::StrContains(text, "icanon echo"));  // the terminal is restored

  // Ctrl-C quits too, restoring the terminal.
  tmux.NewSession("c", absl::StrFormat("%s top %s --interval 0.1; %s", cli_testing::RillBinary(),
                                       dir.path(), after));
  REQUIRE(tmux.WaitFor(
      "c", [](const std::string& t) { return absl::StrContains(t, "shardId-000000000001"); },
      &text));
  tmux.SendKeys("c", "C-c");
  REQUIRE(tmux.WaitFor(
      "c",
      [](const std::string& t) {
        return absl::StrContains(t, "top-exited-") && absl::StrContains(t, "echo");
      },
      &text));
  CHECK(absl::StrContains(text, "top-exited-0"));
  CHECK(absl::StrContains(text, "icanon echo"));
}

TEST_CASE("top waits for a METRICS file and says so", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  testing::MustCreate(cli_testing::DurableOptions(dir.path(), cli_testing::RecentClock(), 1));
  std::remove(dir.File("METRICS").c_str());
  cli_testing::RunResult r =
      cli_testing::Rill({"top", dir.path(), "--iterations", "2", "--interval", "0.05"});
  CHECK(r.exit_code == 0);
  CHECK(absl::StrContains(r.out, "refresh 2 every 50ms"));
  CHECK(
      absl::StrContains(r.out, "waiting for metrics: no metrics for the stream in " + dir.path()));
}

}  // namespace
}  // namespace rill
