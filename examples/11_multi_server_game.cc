// Tutorial 11: a game on several servers, with Kafka as the log between them.
//
// One game server was enough for tutorial 5. When the game outgrows it, several server processes
// produce player events into a Kafka topic, and an analytics process reads the topic with the same
// pipelines. Here everything runs on this machine, and Kafka is librdkafka's mock cluster, hosted
// by a small process of its own (rill::kafka::MockCluster: real Kafka protocol on 127.0.0.1):
//
//   example_11_multi_server_game                 the demo: runs the game in one process on a rill
//                                                Stream first, then starts the processes below,
//                                                prints the analytics' results and checks that
//                                                they are the same as in one process
//   example_11_multi_server_game cluster         hosts a 3-broker mock cluster with the topic
//                                                "player-events" (4 partitions); prints its
//                                                bootstrap servers; stops at end of input
//   example_11_multi_server_game server N BOOTSTRAP
//                                                game server N (0 or 1): its players' events,
//                                                through a rill::Producer on a rill::kafka::Stream
//   example_11_multi_server_game analytics BOOTSTRAP
//                                                purchases per level (5-minute windows) and the
//                                                leaderboard (top 3, 5 minutes every minute), each
//                                                pipeline a Kafka consumer group (FromKafka)
//
// With a real cluster, run the servers and the analytics with its bootstrap servers instead (the
// topic must exist with 4 partitions). Only the line that makes the stream differs from tutorial
// 5: rill::kafka::Stream::Open instead of rill::Stream::Create, FromKafka instead of
// FromSubscription.
//
// The events carry the time they happened; the pipelines window by that time and allow events to
// be up to 15 minutes out of order (more than the whole game), so the results do not depend on
// how the two servers' events interleave: they are the same in one process and across three.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "rill/kafka/mock_cluster.h"
#include "rill/kafka/source.h"
#include "rill/kafka/stream.h"
#include "rill/process/pipeline.h"
#include "rill/rill.h"

extern char** environ;

namespace {

constexpr char kTopic[] = "player-events";
constexpr int kPartitions = 4;
constexpr int kServers = 2;
constexpr int kPlayersPerServer = 100;
constexpr int kLevels = 5;
constexpr int kEventsPerServer = 20000;
const absl::Time kStart = rill::SimulatedClock::DefaultStart();
const absl::Duration kPlayTime = absl::Minutes(10);

struct GameEvent {
  int64_t player = 0;
  int64_t level = 1;
  bool purchase = false;
  int64_t score = 0;
  absl::Time time;
};

// "player,level,kind,score,time_us".
std::string Encode(const GameEvent& e) {
  return absl::StrCat(e.player, ",", e.level, ",", e.purchase ? "buy" : "click", ",", e.score, ",",
                      absl::ToUnixMicros(e.time));
}

std::optional<GameEvent> Decode(const rill::Record& r) {
  std::vector<absl::string_view> f =
      absl::StrSplit(absl::string_view(r.data.data(), r.data.size()), ',');
  GameEvent e;
  int64_t us = 0;
  if (f.size() != 5 || !absl::SimpleAtoi(f[0], &e.player) || !absl::SimpleAtoi(f[1], &e.level) ||
      !absl::SimpleAtoi(f[3], &e.score) || !absl::SimpleAtoi(f[4], &us)) {
    return std::nullopt;
  }
  e.purchase = f[2] == "buy";
  e.time = absl::FromUnixMicros(us);
  return e;
}

// SplitMix64: the same sequence on every platform.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  int64_t Uniform(int64_t n) {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<int64_t>((z ^ (z >> 31)) % static_cast<uint64_t>(n));
  }

 private:
  uint64_t state_;
};

// Server `server`'s events, in the order it sends them: its own players, spread over the game.
std::vector<GameEvent> ServerEvents(int server) {
  Random random(2026 + static_cast<uint64_t>(server));
  std::vector<GameEvent> events;
  for (int i = 0; i < kEventsPerServer; ++i) {
    GameEvent e;
    e.player = server * kPlayersPerServer + random.Uniform(kPlayersPerServer);
    e.level = 1 + random.Uniform(kLevels);
    e.purchase = random.Uniform(100) < 3;
    e.score = e.purchase ? 0 : 1 + random.Uniform(20);
    e.time = kStart + kPlayTime * i / kEventsPerServer;
    events.push_back(e);
  }
  return events;
}

std::string PlayerKey(int64_t player) { return absl::StrCat("player-", player); }

// Both pipelines over sources `make_source` gives (one per pipeline), polled until both have
// read everything, then finished; their results as text, the same wherever the events came from.
template <typename MakeSource>
absl::StatusOr<std::string> Analytics(MakeSource make_source, std::shared_ptr<rill::Clock> clock) {
  const rill::WatermarkOptions watermark{.max_out_of_orderness = absl::Minutes(15),
                                         .idle_timeout = absl::ZeroDuration()};
  std::map<std::pair<int64_t, absl::Time>, uint64_t> purchases;  // (level, window start)
  absl::StatusOr<std::unique_ptr<rill::Source<GameEvent>>> purchase_source =
      make_source("purchases-per-level");
  if (!purchase_source.ok()) return purchase_source.status();
  auto purchases_per_level = rill::Pipeline<GameEvent>::From(std::move(*purchase_source), clock)
                                 .Filter([](const GameEvent& e) { return e.purchase; })
                                 .KeyBy([](const GameEvent& e) { return e.level; })
                                 .Window(rill::TumblingWindow(absl::Minutes(5)))
                                 .EventTime([](const GameEvent& e) { return e.time; })
                                 .Watermark(watermark)
                                 .Aggregate(rill::Count())
                                 .To([&](const rill::WindowResult<int64_t, uint64_t>& r) {
                                   purchases[{r.key, r.start}] = r.value;
                                 });
  if (!purchases_per_level.ok()) return purchases_per_level.status();

  std::map<absl::Time, std::vector<std::pair<int64_t, int64_t>>> boards;  // by window end
  absl::StatusOr<std::unique_ptr<rill::Source<GameEvent>>> board_source =
      make_source("leaderboard");
  if (!board_source.ok()) return board_source.status();
  auto leaderboard =
      rill::Pipeline<GameEvent>::From(std::move(*board_source), clock)
          .Filter([](const GameEvent& e) { return !e.purchase; })
          .KeyBy([](const GameEvent& e) { return e.player; })
          .Window(rill::HoppingWindow(absl::Minutes(5), absl::Minutes(1)))
          .EventTime([](const GameEvent& e) { return e.time; })
          .Watermark(watermark)
          .Aggregate(rill::Sum<int64_t>(), [](const GameEvent& e) { return e.score; })
          .TopN(3, [](int64_t score) { return score; })
          .To([&](const rill::TopNResult<int64_t, int64_t>& r) { boards[r.end] = r.top; });
  if (!leaderboard.ok()) return leaderboard.status();

  // Poll both until each has read all there is (bounded: 2 minutes of real time).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (!purchases_per_level->caught_up() || !leaderboard->caught_up()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError("the pipelines did not catch up within 2 minutes");
    }
    if (absl::StatusOr<size_t> n = purchases_per_level->Poll(); !n.ok()) return n.status();
    if (absl::StatusOr<size_t> n = leaderboard->Poll(); !n.ok()) return n.status();
  }
  if (absl::Status s = purchases_per_level->Finish(); !s.ok()) return s;
  if (absl::Status s = leaderboard->Finish(); !s.ok()) return s;

  std::string out;
  for (const auto& [key, count] : purchases) {
    absl::StrAppendFormat(&out, "purchases  level %d  [%s, +5m)  %d\n", key.first,
                          absl::FormatTime("%H:%M", key.second, absl::UTCTimeZone()), count);
  }
  for (const auto& [end, top] : boards) {
    if (end > kStart + kPlayTime) continue;  // a partial window at the end of play
    std::string line;
    for (size_t i = 0; i < top.size(); ++i) {
      absl::StrAppendFormat(&line, "  %d. %s %d", i + 1, PlayerKey(top[i].first), top[i].second);
    }
    absl::StrAppendFormat(&out, "top 3 to %s:%s\n",
                          absl::FormatTime("%H:%M", end, absl::UTCTimeZone()), line);
  }
  return out;
}

// ---- The processes ----

int Cluster() {
  auto cluster = rill::kafka::MockCluster::Create(3);
  if (!cluster.ok() || !(*cluster)->CreateTopic(kTopic, kPartitions, 3).ok()) return 1;
  std::printf("%s\n", (*cluster)->bootstrap_servers().c_str());
  std::fflush(stdout);
  // Serves until its input ends (the demo closes it).
  for (std::string line; std::getline(std::cin, line);) {
  }
  return 0;
}

rill::kafka::StreamOptions TopicOptions(const std::string& bootstrap) {
  rill::kafka::StreamOptions options;
  options.topic = kTopic;
  // The mock broker holds an empty fetch for the whole fetch.wait.max.ms; a real one answers as
  // soon as records arrive.
  options.properties = {{"bootstrap.servers", bootstrap}, {"fetch.wait.max.ms", "10"}};
  return options;
}

int Server(int server, const std::string& bootstrap) {
  auto stream = rill::kafka::Stream::Open(TopicOptions(bootstrap));
  if (!stream.ok()) {
    std::fprintf(stderr, "server %d: %s\n", server, stream.status().ToString().c_str());
    return 1;
  }
  auto producer = rill::Producer::Create(**stream);
  if (!producer.ok()) return 1;
  int failed = 0;
  for (const GameEvent& e : ServerEvents(server)) {
    (*producer)->Put(PlayerKey(e.player), Encode(e),
                     [&](const absl::StatusOr<rill::PutRecordResult>& r) { failed += !r.ok(); });
  }
  (*producer)->Flush();
  std::fprintf(stderr, "server %d: %d events sent, %d failed\n", server, kEventsPerServer, failed);
  return failed == 0 ? 0 : 1;
}

int RunAnalytics(const std::string& bootstrap) {
  auto stream = rill::kafka::Stream::Open(TopicOptions(bootstrap));
  if (!stream.ok()) return 1;
  absl::StatusOr<std::string> results = Analytics(
      [&](const char* group) {
        rill::kafka::SourceOptions options;
        options.group = group;
        return rill::kafka::FromKafka<GameEvent>(**stream, options, Decode);
      },
      std::make_shared<rill::SystemClock>());
  if (!results.ok()) {
    std::fprintf(stderr, "analytics: %s\n", results.status().ToString().c_str());
    return 1;
  }
  std::fputs(results->c_str(), stdout);
  return 0;
}

// ---- The demo ----

struct Child {
  pid_t pid = -1;
  int in = -1;   // its standard input
  int out = -1;  // its standard output
};

Child Start(const char* self, std::vector<std::string> args) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) std::exit(1);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  args.insert(args.begin(), self);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Child c;
  if (posix_spawn(&c.pid, self, &actions, nullptr, argv.data(), environ) != 0) std::exit(1);
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  c.in = in[1];
  c.out = out[0];
  return c;
}

std::string ReadAll(int fd, bool one_line) {
  std::string text;
  char c;
  while (read(fd, &c, 1) == 1) {
    if (one_line && c == '\n') break;
    text.push_back(c);
  }
  return text;
}

int Wait(Child& c) {
  if (c.in >= 0) close(c.in);
  int status = 0;
  waitpid(c.pid, &status, 0);
  if (c.out >= 0) close(c.out);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int Demo(const char* self) {
  // 1. In one process: both servers' events into a rill Stream of 4 shards, read by the same
  //    pipelines through enhanced fan-out.
  rill::StreamOptions options;
  options.name = kTopic;
  options.shard_count = kPartitions;
  auto stream = rill::Stream::Create(options);
  if (!stream.ok()) return 1;
  for (int server = 0; server < kServers; ++server) {
    for (const GameEvent& e : ServerEvents(server)) {
      if (!(*stream)->PutRecord(PlayerKey(e.player), Encode(e)).ok()) return 1;
    }
  }
  absl::StatusOr<std::string> in_process = Analytics(
      [&](const char* consumer) -> absl::StatusOr<std::unique_ptr<rill::Source<GameEvent>>> {
        if (auto c = (*stream)->RegisterStreamConsumer(consumer); !c.ok()) return c.status();
        rill::StreamSubscriberOptions o;
        o.consumer_name = consumer;
        o.initial_position = rill::StartingPosition::TrimHorizon();
        return rill::FromSubscription<GameEvent>(**stream, o, Decode);
      },
      std::make_shared<rill::SimulatedClock>(kStart));
  if (!in_process.ok()) {
    std::fprintf(stderr, "in process: %s\n", in_process.status().ToString().c_str());
    return 1;
  }

  // 2. Across processes: the cluster, two game servers, then the analytics.
  Child cluster = Start(self, {"cluster"});
  const std::string bootstrap = ReadAll(cluster.out, /*one_line=*/true);
  std::printf("mock Kafka cluster at %s\n", bootstrap.c_str());
  std::fflush(stdout);
  std::vector<Child> servers;
  for (int server = 0; server < kServers; ++server) {
    servers.push_back(Start(self, {"server", std::to_string(server), bootstrap}));
  }
  int failed = 0;
  for (Child& s : servers) failed += Wait(s) != 0;
  Child analytics = Start(self, {"analytics", bootstrap});
  const std::string across = ReadAll(analytics.out, /*one_line=*/false);
  failed += Wait(analytics) != 0;
  failed += Wait(cluster) != 0;
  std::fputs(across.c_str(), stdout);
  if (failed != 0) {
    std::fprintf(stderr, "%d process(es) failed\n", failed);
    return 1;
  }
  if (across != *in_process) {
    std::printf("DIFFERENT from the same game in one process:\n%s", in_process->c_str());
    return 1;
  }
  std::printf("the same results as the same game in one process\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  // The demo starts its other processes from this same program.
  if (mode.empty()) return Demo("/proc/self/exe");
  if (mode == "cluster" && argc == 2) return Cluster();
  if (mode == "server" && argc == 4) return Server(std::atoi(argv[2]), argv[3]);
  if (mode == "analytics" && argc == 3) return RunAnalytics(argv[2]);
  std::fprintf(stderr, "usage: %s [cluster | server N BOOTSTRAP | analytics BOOTSTRAP]\n", argv[0]);
  return 2;
}
