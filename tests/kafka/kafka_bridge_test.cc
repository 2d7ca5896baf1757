// The bridges between rill streams and Kafka topics: everything mirrored once, in per-key order,
// and resumed exactly after a restart, a lost checkpoint and a SIGKILL.
#include "rill/kafka/bridge.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "catch2/catch.hpp"
#include "kafka/kafka_fixture.h"
#include "rill/base/error.h"
#include "rill/stream/stream.h"

extern char** environ;

namespace rill::kafka {
namespace {

using testing::KafkaCluster;

std::string TempDir() {
  char dir[] = "/tmp/rill-kafka-bridge-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  return dir;
}

// key -> data, in the order a stream's shards give them (per key: put order).
std::map<std::string, std::vector<std::string>> ByKey(StreamApi& stream) {
  std::map<std::string, std::vector<std::string>> out;
  auto shards = stream.ListShards();
  REQUIRE(shards.ok());
  for (const ShardDescription& d : *shards) {
    auto it = stream.GetShardIterator(d.shard_id, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    std::optional<ShardIterator> next = *it;
    while (next) {
      auto batch = stream.GetRecords(*next);
      REQUIRE(batch.ok());
      for (const Record& r : batch->records) {
        out[std::string(r.partition_key)].push_back(std::string(r.data));
      }
      if (batch->records.empty() && batch->millis_behind_latest == 0) break;
      next = batch->next_shard_iterator;
    }
  }
  return out;
}

size_t Count(const std::map<std::string, std::vector<std::string>>& by_key) {
  size_t n = 0;
  for (const auto& [k, v] : by_key) n += v.size();
  return n;
}

void PutEvents(StreamApi& stream, int from, int to) {
  for (int start = from; start < to; start += 250) {
    std::vector<PutRecordsEntry> entries;
    for (int i = start; i < std::min(to, start + 250); ++i) {
      entries.push_back({"player-" + std::to_string(i % 37), std::to_string(i), std::nullopt});
    }
    auto put = stream.PutRecords(entries);
    REQUIRE(put.ok());
    REQUIRE(put->failed_record_count == 0);
  }
}

// Per key, the values in increasing order: what PutEvents wrote, in its order.
void CheckMirror(const std::map<std::string, std::vector<std::string>>& got, int total) {
  std::map<std::string, std::vector<std::string>> expected;
  for (int i = 0; i < total; ++i) {
    expected["player-" + std::to_string(i % 37)].push_back(std::to_string(i));
  }
  CHECK(Count(got) == static_cast<size_t>(total));
  CHECK(got == expected);
}

template <typename Bridge>
int64_t DrainBridge(Bridge& bridge) {
  int64_t total = 0;
  for (int round = 0; round < 1000; ++round) {
    auto n = bridge.Poll();
    INFO(n.status());
    REQUIRE(n.ok());
    if (*n == 0) return total;
    total += *n;
  }
  FAIL("the bridge never caught up");
  return total;
}

TEST_CASE("a rill stream is mirrored into a topic once across restarts and resharding",
          "[kafka][bridge]") {
  KafkaCluster cluster;
  auto topic = Stream::Open(cluster.Options(cluster.CreateTopic("mirror", 3)));
  REQUIRE(topic.ok());
  rill::StreamOptions source_options;
  source_options.name = "events";
  source_options.shard_count = 2;
  auto source = rill::Stream::Create(source_options);
  REQUIRE(source.ok());
  PutEvents(**source, 0, 1000);

  const std::string dir = TempDir();
  BridgeOptions options;
  options.checkpoint_path = dir + "/to-topic.checkpoint";
  options.max_records = 100;
  std::string older_checkpoint;
  {
    auto bridge = StreamToTopic::Create(**source, **topic, options);
    REQUIRE(bridge.ok());
    REQUIRE((*bridge)->Poll().ok());
    std::filesystem::copy_file(options.checkpoint_path, dir + "/older");  // after 1 round
    CHECK(DrainBridge(**bridge) == 800);
    CHECK((*bridge)->stats().records_written == 1000);
  }
  CheckMirror(ByKey(**topic), 1000);

  // Resharding the source: children are mirrored after their parents.
  REQUIRE((*source)->SplitShard(ShardId(0), HashKey(absl::uint128(1) << 126)).ok());
  PutEvents(**source, 1000, 1500);
  {
    auto bridge = StreamToTopic::Create(**source, **topic, options);
    REQUIRE(bridge.ok());
    CHECK(DrainBridge(**bridge) == 500);
  }
  CheckMirror(ByKey(**topic), 1500);

  // A crash after records were written but before they were checkpointed: an older checkpoint.
  // Recovery finds them in the topic (by their headers) and writes nothing twice.
  std::filesystem::copy_file(dir + "/older", options.checkpoint_path,
                             std::filesystem::copy_options::overwrite_existing);
  {
    auto bridge = StreamToTopic::Create(**source, **topic, options);
    REQUIRE(bridge.ok());
    CHECK((*bridge)->stats().records_recovered > 0);
    CHECK(DrainBridge(**bridge) == 0);
  }
  CheckMirror(ByKey(**topic), 1500);

  // A checkpoint of another bridge is refused.
  rill::StreamOptions other_options;
  other_options.name = "other";
  auto other = rill::Stream::Create(other_options);
  REQUIRE(other.ok());
  CHECK(GetErrorCode(StreamToTopic::Create(**other, **topic, options).status()) ==
        ErrorCode::kInvalidArgument);
  BridgeOptions bad;
  CHECK(GetErrorCode(StreamToTopic::Create(**source, **topic, bad).status()) ==
        ErrorCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

TEST_CASE("Poll returns 0 only when caught up, also when a round reaches a parent's end",
          "[kafka][bridge]") {
  // A round reads only shards whose parents are done; one that finds nothing but a parent's end
  // used to return 0 ("caught up") with the children's records still to mirror.
  KafkaCluster cluster;
  auto topic = Stream::Open(cluster.Options(cluster.CreateTopic("split", 2)));
  REQUIRE(topic.ok());
  rill::StreamOptions source_options;
  source_options.name = "one";
  source_options.shard_count = 1;
  auto source = rill::Stream::Create(source_options);
  REQUIRE(source.ok());
  PutEvents(**source, 0, 100);
  const std::string dir = TempDir();
  BridgeOptions options;
  options.checkpoint_path = dir + "/to-topic.checkpoint";
  auto bridge = StreamToTopic::Create(**source, **topic, options);
  REQUIRE(bridge.ok());
  CHECK(DrainBridge(**bridge) == 100);
  // Every later record lands in the children.
  REQUIRE((*source)->SplitShard(ShardId(0), HashKey(absl::uint128(1) << 127)).ok());
  PutEvents(**source, 100, 600);
  auto first = (*bridge)->Poll();
  REQUIRE(first.ok());
  CHECK(*first == 500);
  CHECK(DrainBridge(**bridge) == 0);
  CheckMirror(ByKey(**topic), 600);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a topic is mirrored into a rill stream once across restarts", "[kafka][bridge]") {
  KafkaCluster cluster;
  auto topic = Stream::Open(cluster.Options(cluster.CreateTopic("feed", 4)));
  REQUIRE(topic.ok());
  PutEvents(**topic, 0, 1200);
  rill::StreamOptions dest_options;
  dest_options.name = "mirrored";
  dest_options.shard_count = 3;
  auto dest = rill::Stream::Create(dest_options);
  REQUIRE(dest.ok());

  const std::string dir = TempDir();
  BridgeOptions options;
  options.checkpoint_path = dir + "/to-stream.checkpoint";
  options.max_records = 100;
  {
    auto bridge = TopicToStream::Create(**topic, **dest, options);
    REQUIRE(bridge.ok());
    REQUIRE((*bridge)->Poll().ok());
    std::filesystem::copy_file(options.checkpoint_path, dir + "/older");
    DrainBridge(**bridge);
  }
  CheckMirror(ByKey(**dest), 1200);

  // More records, a restart: only the new ones.
  PutEvents(**topic, 1200, 1500);
  {
    auto bridge = TopicToStream::Create(**topic, **dest, options);
    REQUIRE(bridge.ok());
    CHECK(DrainBridge(**bridge) == 300);
  }
  CheckMirror(ByKey(**dest), 1500);

  // An older checkpoint (records put but not checkpointed): the ones found in the destination
  // after it are not put again. Only the last call before a crash can be in that state; here the
  // checkpoint is older by one whole round, which the bridge resolves the same way.
  std::filesystem::copy_file(dir + "/older", options.checkpoint_path,
                             std::filesystem::copy_options::overwrite_existing);
  {
    auto bridge = TopicToStream::Create(**topic, **dest, options);
    REQUIRE(bridge.ok());
    const int64_t handled = DrainBridge(**bridge);
    CHECK(handled > 0);
    CHECK((*bridge)->stats().records_written == 0);
    CHECK((*bridge)->stats().records_recovered == handled);
  }
  CheckMirror(ByKey(**dest), 1500);
  std::filesystem::remove_all(dir);
}

// ---- SIGKILL ----

struct Runner {
  pid_t pid = -1;
  int stdin_fd = -1;
};

Runner Spawn(std::vector<std::string> args) {
  Runner r;
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
  args.insert(args.begin(), RILL_KAFKA_BRIDGE_RUNNER);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  REQUIRE(posix_spawn(&r.pid, RILL_KAFKA_BRIDGE_RUNNER, &actions, nullptr, argv.data(), environ) ==
          0);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[0]);
  r.stdin_fd = fds[1];
  return r;
}

void Kill(Runner& r) {
  kill(r.pid, SIGKILL);
  waitpid(r.pid, nullptr, 0);
  close(r.stdin_fd);
}

int Stop(Runner& r) {
  close(r.stdin_fd);
  int status = 0;
  waitpid(r.pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Waits (bounded real time: another process works meanwhile) until `done`.
template <typename Done>
void WaitFor(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done()) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int64_t TopicSize(Stream& topic) {
  int64_t n = 0;
  for (int p = 0; p < topic.partition_count(); ++p) {
    auto high = topic.ResolveOffset(p, StartingPosition::Latest());
    REQUIRE(high.ok());
    n += *high;
  }
  return n;
}

rill::StreamOptions Durable(const std::string& dir) {
  rill::StreamOptions options;
  options.name = "durable-events";
  options.shard_count = 4;
  rill::StorageOptions storage;
  storage.directory = dir;
  options.storage = storage;
  return options;
}

TEST_CASE("the bridges resume after SIGKILL with nothing lost or duplicated", "[kafka][bridge]") {
  KafkaCluster cluster;
  const std::string dir = TempDir();
  constexpr int kRecords = 4000;

  SECTION("a durable rill stream into a topic") {
    {
      auto source = rill::Stream::Open(Durable(dir + "/source"));
      REQUIRE(source.ok());
      PutEvents(**source, 0, kRecords);
    }
    const std::string name = cluster.CreateTopic("killed-to-topic", 3);
    auto topic = Stream::Open(cluster.Options(name));
    REQUIRE(topic.ok());
    const std::vector<std::string> args = {
        "to-topic", dir + "/source", cluster.bootstrap_servers(), name, dir + "/checkpoint", "25",
        "5"};
    Runner first = Spawn(args);
    WaitFor([&] { return TopicSize(**topic) >= kRecords / 4; });
    Kill(first);
    CHECK(TopicSize(**topic) < kRecords);  // killed half-way
    Runner second = Spawn(args);
    WaitFor([&] { return TopicSize(**topic) >= kRecords; });
    CHECK(Stop(second) == 0);
    CheckMirror(ByKey(**topic), kRecords);
  }

  SECTION("a topic into a durable rill stream") {
    const std::string name = cluster.CreateTopic("killed-to-stream", 3);
    auto topic = Stream::Open(cluster.Options(name));
    REQUIRE(topic.ok());
    PutEvents(**topic, 0, kRecords);
    const std::vector<std::string> args = {
        "to-stream", cluster.bootstrap_servers(), name, dir + "/dest", dir + "/checkpoint", "25",
        "5"};
    Runner first = Spawn(args);
    // The checkpoint's offsets say how far it got.
    auto mirrored = [&] {
      std::ifstream in(dir + "/checkpoint");
      int64_t n = 0;
      for (std::string line; std::getline(in, line);) {
        if (line.rfind("offset ", 0) == 0) n += std::stoll(line.substr(line.rfind(' ') + 1));
      }
      return n;
    };
    WaitFor([&] { return mirrored() >= kRecords / 4; });
    Kill(first);
    CHECK(mirrored() < kRecords);
    Runner second = Spawn(args);
    WaitFor([&] { return mirrored() >= kRecords; });
    CHECK(Stop(second) == 0);
    auto dest = rill::Stream::Open(Durable(dir + "/dest"));
    REQUIRE(dest.ok());
    CheckMirror(ByKey(**dest), kRecords);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rill::kafka
