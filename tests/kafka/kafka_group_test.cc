// ConsumerGroup on a rill::kafka::Stream: Kafka's group protocol (cooperative-sticky), with
// checkpoints as committed offsets; in one process, and across two processes.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "catch2/catch.hpp"
#include "kafka/kafka_fixture.h"
#include "rill/base/error.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/kafka/stream.h"

extern char** environ;

namespace rill::kafka {
namespace {

using testing::KafkaCluster;

// Records what its shard's processor saw, into a map shared by the test.
// What a group's processors saw. A checkpoint may fail while the group rebalances (Kafka refuses
// commits then: REBALANCE_IN_PROGRESS, as kResourceInUse); the records after the last checkpoint
// that took are then delivered again to the partition's next owner (at-least-once, as any
// consumer group). Without a failed checkpoint, every record is delivered exactly once.
struct Seen {
  std::mutex mu;
  int failed_checkpoints = 0;
  std::map<std::string, int> times;                        // data -> how often processed
  std::map<std::string, std::vector<std::string>> events;  // worker -> "assigned 3", ...
};

class Recorder final : public RecordProcessor {
 public:
  Recorder(Seen* seen, std::string worker, ShardId shard)
      : seen_(seen), worker_(std::move(worker)), shard_(shard) {}
  void Initialize(const InitializationInput& input) override {
    Event("assigned " + std::to_string(shard_.index()) + " " + input.extended_sequence_number);
  }
  void ProcessRecords(const ProcessRecordsInput& input) override {
    {
      std::lock_guard<std::mutex> lock(seen_->mu);
      for (const Record& r : input.records) ++seen_->times[std::string(r.data)];
    }
    Checkpoint(input.checkpointer);
    if (ok_) {
      CHECK(input.checkpointer.last_checkpoint() ==
            input.records.back().sequence_number.ToString());
    }
  }
  void LeaseLost() override { Event("lost " + std::to_string(shard_.index())); }
  void ShardEnded(Checkpointer&) override { FAIL("a Kafka partition never ends"); }
  void ShutdownRequested(Checkpointer& c) override {
    Checkpoint(c);
    Event("revoked " + std::to_string(shard_.index()));
  }

 private:
  void Checkpoint(Checkpointer& c) {
    const absl::Status s = c.Checkpoint();
    ok_ = s.ok();
    if (!s.ok()) {
      INFO(worker_ << " " << shard_ << ": " << s);
      CHECK(GetErrorCode(s) == ErrorCode::kResourceInUse);  // only a rebalance refuses it
      std::lock_guard<std::mutex> lock(seen_->mu);
      ++seen_->failed_checkpoints;
    }
  }
  bool ok_ = true;
  void Event(const std::string& e) {
    std::lock_guard<std::mutex> lock(seen_->mu);
    seen_->events[worker_].push_back(e);
  }
  Seen* const seen_;
  const std::string worker_;
  const ShardId shard_;
};

void Put(Stream& stream, int from, int to) {
  std::vector<PutRecordsEntry> entries;
  for (int i = from; i < to; ++i) {
    entries.push_back({"player-" + std::to_string(i % 40), std::to_string(i), std::nullopt});
  }
  auto result = stream.PutRecords(entries);
  REQUIRE(result.ok());
  REQUIRE(result->failed_record_count == 0);
}

// Polls the workers in turn until `done` or a bound of real time passes (Kafka's network and the
// group's rebalances take real time; the loop ends as soon as `done` holds).
template <typename Done>
bool PollUntil(const std::vector<Worker*>& workers, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    for (Worker* w : workers) (void)w->Poll();
  }
  return true;
}

TEST_CASE("a consumer group on Kafka splits the partitions and hands them over on shutdown",
          "[kafka][group]") {
  KafkaCluster cluster;
  auto stream = Stream::Open(cluster.Options(cluster.CreateTopic("group", 4)));
  REQUIRE(stream.ok());
  Put(**stream, 0, 200);

  InMemoryCheckpointStore unused;
  ConsumerGroupOptions options;
  options.application_name = "leaderboard";
  options.initial_position = StartingPosition::TrimHorizon();
  options.failover_time =
      absl::Seconds(4);  // the mock waits 3 s for first joins, session - 1 s for rejoins
  auto group = ConsumerGroup::Create(**stream, unused, options);
  REQUIRE(group.ok());
  Seen seen;
  auto factory = [&](std::string name) {
    return [&seen, name](ShardId shard) { return std::make_unique<Recorder>(&seen, name, shard); };
  };
  auto a = (*group)->AddWorker("a", factory("a"));
  REQUIRE(a.ok());
  auto total = [&] {
    std::lock_guard<std::mutex> lock(seen.mu);
    return seen.times.size();
  };
  REQUIRE(PollUntil({*a}, [&] { return total() == 200; }));
  CHECK((*a)->held_shards().size() == 4);
  {
    std::lock_guard<std::mutex> lock(seen.mu);
    REQUIRE(seen.events["a"].size() == 4);
    // A new group starts from the initial position.
    CHECK(seen.events["a"][0].substr(seen.events["a"][0].size() - 12) == "TRIM_HORIZON");
  }

  // A second member: cooperative-sticky moves two partitions to it, and only those.
  auto b = (*group)->AddWorker("b", factory("b"));
  REQUIRE(b.ok());
  REQUIRE(PollUntil({*a, *b}, [&] {
    return (*a)->held_shards().size() == 2 && (*b)->held_shards().size() == 2;
  }));
  Put(**stream, 200, 400);
  REQUIRE(PollUntil({*a, *b}, [&] { return total() == 400; }));
  {
    std::lock_guard<std::mutex> lock(seen.mu);
    for (const auto& [data, times] : seen.times) {
      INFO(data);
      CHECK(times >= 1);
      // Checkpointed every batch and handed over with a checkpoint: once, unless a rebalance
      // refused a checkpoint.
      if (seen.failed_checkpoints == 0) CHECK(times == 1);
    }
    // b resumed where a's checkpoints were, not from the trim horizon.
    for (const std::string& e : seen.events["b"])
      CHECK(e.find("TRIM_HORIZON") == std::string::npos);
    int revoked = 0;
    for (const std::string& e : seen.events["a"]) revoked += e.rfind("revoked", 0) == 0;
    CHECK(revoked == 2);
  }

  // a shuts down gracefully: b gets everything at once, again after a's checkpoints.
  (*a)->Shutdown();
  CHECK(GetErrorCode((*a)->Poll()) == ErrorCode::kResourceInUse);
  REQUIRE(PollUntil({*b}, [&] { return (*b)->held_shards().size() == 4; }));
  Put(**stream, 400, 500);
  REQUIRE(PollUntil({*b}, [&] { return total() == 500; }));
  {
    std::lock_guard<std::mutex> lock(seen.mu);
    for (const auto& [data, times] : seen.times) {
      CHECK(times >= 1);
      if (seen.failed_checkpoints == 0) CHECK(times == 1);
    }
  }

  // Checkpoints outside a callback follow the KCL rule.
  const ShardId shard = (*b)->held_shards()[0];
  CHECK(GetErrorCode((*b)->Checkpoint(
            shard, (*stream)->ToSequenceNumber(static_cast<int>(shard.index()), 100000))) ==
        ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode((*b)->Checkpoint(ShardId(9), (*stream)->ToSequenceNumber(0, 0))) ==
        ErrorCode::kResourceInUse);
  (*b)->Shutdown();
}

TEST_CASE("a crashed member's partitions move when its Kafka session expires", "[kafka][group]") {
  KafkaCluster cluster;
  if (cluster.is_real()) return;  // the session timeout is the broker's to enforce; see docs
  auto stream = Stream::Open(cluster.Options(cluster.CreateTopic("crash", 2)));
  REQUIRE(stream.ok());
  Put(**stream, 0, 100);
  InMemoryCheckpointStore unused;
  ConsumerGroupOptions options;
  options.application_name = "archiver";
  options.initial_position = StartingPosition::TrimHorizon();
  options.failover_time = absl::Seconds(4);
  auto group = ConsumerGroup::Create(**stream, unused, options);
  REQUIRE(group.ok());
  Seen seen;
  auto a = (*group)->AddWorker(
      "a", [&](ShardId s) { return std::make_unique<Recorder>(&seen, "a", s); });
  auto b = (*group)->AddWorker(
      "b", [&](ShardId s) { return std::make_unique<Recorder>(&seen, "b", s); });
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(PollUntil({*a, *b}, [&] {
    return (*a)->held_shards().size() == 1 && (*b)->held_shards().size() == 1;
  }));
  auto total = [&] {
    std::lock_guard<std::mutex> lock(seen.mu);
    return seen.times.size();
  };
  REQUIRE(PollUntil({*a, *b}, [&] { return total() == 100; }));
  (*group)->CrashWorker("a");
  Put(**stream, 100, 200);
  REQUIRE(PollUntil({*b}, [&] { return (*b)->held_shards().size() == 2 && total() == 200; }));
  std::lock_guard<std::mutex> lock(seen.mu);
  for (const auto& [data, times] : seen.times) {
    CHECK(times >= 1);
    if (seen.failed_checkpoints == 0) CHECK(times == 1);  // a checkpointed every batch
  }
}

// ---- Two processes ----

struct Member {
  pid_t pid = -1;
  int stdin_fd = -1;
  std::string output;
};

Member StartMember(const KafkaCluster& cluster, const std::string& topic, const std::string& id) {
  Member m;
  char dir[] = "/tmp/rill-kafka-group-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  m.output = std::string(dir) + "/" + id + ".log";
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);  // no other member inherits this one's stdin
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  std::vector<std::string> args = {
      RILL_KAFKA_GROUP_MEMBER, cluster.bootstrap_servers(), topic, "scores", id, m.output};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  REQUIRE(posix_spawn(&m.pid, RILL_KAFKA_GROUP_MEMBER, &actions, nullptr, argv.data(), environ) ==
          0);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[0]);
  m.stdin_fd = fds[1];
  return m;
}

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

int Stop(Member& m) {
  close(m.stdin_fd);  // end of input: the member shuts down gracefully
  int status = 0;
  waitpid(m.pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_CASE("a consumer-group rebalance across two processes loses nothing", "[kafka][group]") {
  KafkaCluster cluster;
  const std::string topic = cluster.CreateTopic("processes", 4);
  auto stream = Stream::Open(cluster.Options(topic));
  REQUIRE(stream.ok());
  Put(**stream, 0, 200);

  // Waits (bounded real time: other processes and the network) for a condition on the outputs.
  auto wait_for = [](auto done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  };
  auto records = [](const std::vector<std::string>& lines) {
    std::vector<std::string> out;
    for (const std::string& l : lines) {
      if (l.rfind("record ", 0) == 0) out.push_back(l);
    }
    return out;
  };
  auto count = [&](const std::string& path, const std::string& prefix) {
    int n = 0;
    for (const std::string& l : Lines(path)) n += l.rfind(prefix, 0) == 0;
    return n;
  };

  Member a = StartMember(cluster, topic, "a");
  REQUIRE(wait_for([&] { return records(Lines(a.output)).size() == 200; }));
  Member b = StartMember(cluster, topic, "b");
  // Two partitions move to b, and a hands them over with a checkpoint.
  REQUIRE(wait_for(
      [&] { return count(b.output, "assigned") == 2 && count(a.output, "revoked") == 2; }));
  Put(**stream, 200, 400);
  REQUIRE(wait_for(
      [&] { return records(Lines(a.output)).size() + records(Lines(b.output)).size() == 400; }));
  CHECK(Stop(a) == 0);
  CHECK(Stop(b) == 0);

  // Every record exactly once (each member checkpoints every batch and on hand-over), and per
  // partition in offset order within each member.
  std::map<std::string, int> times;
  bool checkpoint_failed = false;
  int b_records = 0;
  for (const Member* m : {&a, &b}) {
    std::map<std::string, std::string> last_by_partition;
    for (const std::string& l : Lines(m->output)) {
      checkpoint_failed |= l.rfind("checkpoint-failed", 0) == 0;
      if (l.rfind("record ", 0) != 0) continue;
      std::istringstream in(l.substr(7));
      std::string partition, sequence, data;
      in >> partition >> sequence >> data;
      ++times[data];
      if (m == &b) ++b_records;
      auto [at, fresh] = last_by_partition.try_emplace(partition, sequence);
      if (!fresh) {
        CHECK(SequenceNumber::Parse(at->second).value() < SequenceNumber::Parse(sequence).value());
        at->second = sequence;
      }
    }
  }
  CHECK(times.size() == 400);
  for (const auto& [data, n] : times) {
    INFO(data);
    CHECK(n >= 1);
    if (!checkpoint_failed) CHECK(n == 1);  // see Seen
  }
  CHECK(b_records > 0);
}

}  // namespace
}  // namespace rill::kafka
