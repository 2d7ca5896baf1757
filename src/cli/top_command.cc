// rill top: a live view of a stream's traffic per shard, from the METRICS snapshots the process
// holding it writes about once a second. Redraws in place with ANSI escapes (no curses); reads
// single keys with the terminal in non-canonical mode, restored on the way out.
#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/format.h"
#include "cli/metrics_file.h"
#include "rill/base/clock.h"

namespace rill::cli {
namespace {

// Puts the terminal on stdin in non-canonical, no-echo mode (keys arrive one at a time; Ctrl-C
// still raises SIGINT) and hides the cursor; the destructor restores both.
class TerminalMode {
 public:
  TerminalMode() {
    if (::isatty(STDIN_FILENO) != 1 || ::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    struct termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    std::cout << "\x1b[?25l" << std::flush;
  }
  ~TerminalMode() {
    std::cout << "\x1b[?25h" << std::flush;
    if (active_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  TerminalMode(const TerminalMode&) = delete;
  TerminalMode& operator=(const TerminalMode&) = delete;
  bool active() const { return active_; }

 private:
  struct termios saved_ = {};
  bool active_ = false;
};

struct ShardRates {
  double records_in = 0;
  double bytes_in = 0;
  double records_out = 0;
  double bytes_out = 0;
};

std::string Rate(const std::optional<double>& rate) {
  return rate ? absl::StrFormat("%.1f", *rate) : "-";
}

}  // namespace

int RunTop(const TopOptions& options) {
  absl::StatusOr<internal::StreamMeta> meta = ReadStreamMeta(options.dir);
  if (!meta.ok()) return Report(meta.status());
  StopSignals signals;
  TerminalMode terminal;
  const absl::Duration interval = absl::Seconds(options.interval_seconds);

  std::optional<MetricsSnapshot> previous;  // the last snapshot with a new taken_at
  std::map<ShardId, ShardRates> rates;      // between the last two snapshots
  bool have_rates = false;
  int64_t refresh = 0;
  bool quit = false;
  while (!quit) {
    ++refresh;
    std::string screen = "\x1b[H\x1b[2J";
    screen += absl::StrFormat("rill top: stream %s in %s   refresh %d every %s   q quits\n\n",
                              meta->name, options.dir, refresh, DurationText(interval));
    absl::StatusOr<MetricsFile> file = ReadMetricsFile(options.dir);
    if (!file.ok()) {
      screen += absl::StrFormat("waiting for metrics: %s\n", file.status().message());
    } else {
      const MetricsSnapshot& now = file->snapshot;
      if (previous && now.taken_at > previous->taken_at) {
        const double seconds = absl::ToDoubleSeconds(now.taken_at - previous->taken_at);
        rates.clear();
        for (const ShardMetrics& shard : now.shards) {
          for (const ShardMetrics& before : previous->shards) {
            if (before.shard_id != shard.shard_id) continue;
            rates[shard.shard_id] = ShardRates{
                .records_in =
                    static_cast<double>(shard.incoming_records - before.incoming_records) / seconds,
                .bytes_in =
                    static_cast<double>(shard.incoming_bytes - before.incoming_bytes) / seconds,
                .records_out =
                    static_cast<double>(shard.outgoing_records - before.outgoing_records) / seconds,
                .bytes_out =
                    static_cast<double>(shard.outgoing_bytes - before.outgoing_bytes) / seconds,
            };
          }
        }
        have_rates = true;
      }
      if (!previous || now.taken_at > previous->taken_at) previous = now;
      screen += absl::StrFormat(
          "metrics of %s   in: %d records, %d bytes   out: %d records   throttled: %d\n\n",
          TimeText(now.taken_at), now.incoming_records, now.incoming_bytes, now.outgoing_records,
          now.write_provisioned_throughput_exceeded);
      Table table({"SHARD", "RECORDS/S", "BYTES/S", "OUT RECORDS/S", "OUT BYTES/S",
                   "ITERATOR AGE MS", "THROTTLED", "RECORDS"},
                  {Align::kLeft, Align::kRight, Align::kRight, Align::kRight, Align::kRight,
                   Align::kRight, Align::kRight, Align::kRight});
      for (const ShardMetrics& shard : now.shards) {
        std::optional<ShardRates> r;
        if (have_rates) {
          auto it = rates.find(shard.shard_id);
          if (it != rates.end()) r = it->second;
        }
        table.AddRow({shard.shard_id.ToString(),
                      Rate(r ? std::optional<double>(r->records_in) : std::nullopt),
                      Rate(r ? std::optional<double>(r->bytes_in) : std::nullopt),
                      Rate(r ? std::optional<double>(r->records_out) : std::nullopt),
                      Rate(r ? std::optional<double>(r->bytes_out) : std::nullopt),
                      std::to_string(shard.iterator_age_milliseconds),
                      std::to_string(shard.write_provisioned_throughput_exceeded),
                      std::to_string(shard.incoming_records)});
      }
      screen += table.Render();
    }
    std::cout << screen << std::flush;
    if (options.iterations > 0 && refresh >= options.iterations) break;

    // Wait for the next refresh, reading keys meanwhile.
    const absl::Time deadline = SystemClock::Default()->Now() + interval;
    while (!quit) {
      const absl::Duration left = deadline - SystemClock::Default()->Now();
      if (left <= absl::ZeroDuration()) break;
      if (signals.Sleep(left, terminal.active() ? STDIN_FILENO : -1)) {
        quit = true;
        break;
      }
      if (!terminal.active()) continue;
      char keys[64];
      const ssize_t n = ::read(STDIN_FILENO, keys, sizeof(keys));
      for (ssize_t i = 0; i < n; ++i) {
        if (keys[i] == 'q' || keys[i] == 'Q' || keys[i] == 3) quit = true;
      }
    }
  }
  std::cout << "\n";
  return kExitOk;
}

}  // namespace rill::cli
