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
#include "librdkafka/rdkafka.h"
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

// Writes records into `topic` as StreamToTopic would (headers naming the source stream, shard and
// sequence number): what a round left in the topic when some partitions' writes failed.
void ProduceAsBridge(const std::string& bootstrap, const std::string& topic,
                     const std::string& stream, const std::string& shard,
                     const std::vector<std::pair<int, Record>>& records) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof(err)) ==
          RD_KAFKA_CONF_OK);
  int failed = 0;
  rd_kafka_conf_set_opaque(conf, &failed);
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) ++*static_cast<int*>(opaque);
  });
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  REQUIRE(producer != nullptr);
  for (const auto& [partition, r] : records) {
    const std::string seq = r.sequence_number.ToString();
    REQUIRE(
        rd_kafka_producev(
            producer, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(r.partition_key.data(), r.partition_key.size()),
            RD_KAFKA_V_VALUE(const_cast<char*>(r.data.data()), r.data.size()),
            RD_KAFKA_V_HEADER("rill.stream", stream.data(), static_cast<ssize_t>(stream.size())),
            RD_KAFKA_V_HEADER("rill.shard", shard.data(), static_cast<ssize_t>(shard.size())),
            RD_KAFKA_V_HEADER("rill.seq", seq.data(), static_cast<ssize_t>(seq.size())),
            RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  REQUIRE(rd_kafka_flush(producer, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(producer);
  REQUIRE(failed == 0);
}

TEST_CASE("StreamToTopic recovers a round that wrote a shard's later records, not its earlier",
          "[kafka][bridge]") {
  // A round writes a shard's records to several partitions. When one partition's writes failed
  // (or the process died) and another's did not, recovery used to move the shard's position to
  // the highest record found: the earlier records that were not written were never mirrored.
  KafkaCluster cluster;
  const std::string topic_name = cluster.CreateTopic("gap", 3);
  auto topic = Stream::Open(cluster.Options(topic_name));
  REQUIRE(topic.ok());
  rill::StreamOptions source_options;
  source_options.name = "gappy";
  source_options.shard_count = 1;
  auto source = rill::Stream::Create(source_options);
  REQUIRE(source.ok());
  PutEvents(**source, 0, 60);

  const std::string dir = TempDir();
  BridgeOptions options;
  options.checkpoint_path = dir + "/to-topic.checkpoint";
  options.max_records = 10;
  {
    auto bridge = StreamToTopic::Create(**source, **topic, options);  // a checkpoint, no round
    REQUIRE(bridge.ok());
  }
  // The round's writes to one partition (the first record's) landed, the others' did not.
  auto it = (*source)->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  auto all = (*source)->GetRecords(*it);
  REQUIRE(all.ok());
  REQUIRE(all->records.size() == 60);
  const int landed = (*topic)->PartitionFor(all->records[0].partition_key);
  std::vector<std::pair<int, Record>> written;
  size_t run = 0;  // the records before the first one not written
  bool gap = false;
  for (const Record& r : all->records) {
    if ((*topic)->PartitionFor(r.partition_key) == landed) {
      written.push_back({landed, r});
      if (!gap) ++run;
    } else {
      gap = true;
    }
  }
  REQUIRE(run >= 1);
  REQUIRE(run < written.size());  // some written records come after one that was not
  ProduceAsBridge(cluster.bootstrap_servers(), topic_name, "gappy", ShardId(0).ToString(), written);
  {
    auto bridge = StreamToTopic::Create(**source, **topic, options);
    REQUIRE(bridge.ok());
    CHECK((*bridge)->stats().records_recovered == static_cast<int64_t>(run));
    CHECK((*bridge)->positions().at(ShardId(0)) == all->records[run - 1].sequence_number);
    // One round, then a restart: the found records not yet reached are still skipped.
    auto first = (*bridge)->Poll();
    REQUIRE(first.ok());
    CHECK(*first == 10);
  }
  {
    auto bridge = StreamToTopic::Create(**source, **topic, options);
    REQUIRE(bridge.ok());
    // A round that fails, and the same bridge goes on: the found records that round passed over
    // must still be skipped (recovery does not search the topic before the offsets after them).
    if (cluster.mock() != nullptr) {
      cluster.mock()->PushRequestErrors(/*Produce=*/0, 1, /*MESSAGE_TOO_LARGE=*/10);
      CHECK_FALSE((*bridge)->Poll().ok());
    }
    DrainBridge(**bridge);
  }
  CheckMirror(ByKey(**topic), 60);  // each record once, in per-key order
  std::filesystem::remove_all(dir);
}

// A destination that accepts the first `accept` entries of the next PutRecords call and refuses
// the rest for throughput, then fails the following call as a whole after writing it (a
// connection lost before the answer), as a remote endpoint can.
class FlakyDestination : public StreamApi {
 public:
  explicit FlakyDestination(rill::Stream& stream) : s_(stream) {}
  void FailNextCalls(size_t accept) { accept_ = accept; }

  const std::string& name() const override { return s_.name(); }
  const std::shared_ptr<Clock>& clock() const override { return s_.clock(); }
  PutLimits put_limits() const override { return s_.put_limits(); }
  absl::StatusOr<PutRecordResult> PutRecord(std::string_view key, std::string_view data,
                                            const PutOptions& options) override {
    return s_.PutRecord(key, data, options);
  }
  absl::StatusOr<PutRecordsResult> PutRecords(absl::Span<const PutRecordsEntry> entries) override {
    if (!accept_) {
      if (!lose_answer_) return s_.PutRecords(entries);
      lose_answer_ = false;
      auto put = s_.PutRecords(entries);
      REQUIRE(put.ok());
      return MakeError(ErrorCode::kInternalFailure, "connection reset");
    }
    const size_t accept = std::min(*accept_, entries.size());
    accept_.reset();
    lose_answer_ = true;
    auto put = s_.PutRecords(entries.subspan(0, accept));
    REQUIRE(put.ok());
    PutRecordsResult result = *put;
    for (size_t i = accept; i < entries.size(); ++i) {
      PutRecordsResultEntry e;
      e.error_code = ErrorCode::kProvisionedThroughputExceeded;
      e.error_message = "Rate exceeded";
      result.entries.push_back(e);
      ++result.failed_record_count;
    }
    return result;
  }
  absl::StatusOr<ListShardsResult> ListShards(const ListShardsRequest& r) const override {
    return static_cast<const StreamApi&>(s_).ListShards(r);
  }
  absl::StatusOr<ShardIterator> GetShardIterator(std::string_view shard,
                                                 const StartingPosition& p) const override {
    return static_cast<const StreamApi&>(s_).GetShardIterator(shard, p);
  }
  absl::StatusOr<GetRecordsResult> GetRecords(const ShardIterator& it, int limit) const override {
    return s_.GetRecords(it, limit);
  }
  absl::Status SplitShard(std::string_view shard, HashKey key) override {
    return static_cast<StreamApi&>(s_).SplitShard(shard, key);
  }
  absl::Status MergeShards(std::string_view a, std::string_view b) override {
    return static_cast<StreamApi&>(s_).MergeShards(a, b);
  }
  absl::Status UpdateShardCount(int n) override { return s_.UpdateShardCount(n); }
  absl::Status IncreaseStreamRetentionPeriod(absl::Duration d) override {
    return s_.IncreaseStreamRetentionPeriod(d);
  }
  absl::Status DecreaseStreamRetentionPeriod(absl::Duration d) override {
    return s_.DecreaseStreamRetentionPeriod(d);
  }
  absl::StatusOr<ConsumerDescription> RegisterStreamConsumer(std::string_view n) override {
    return s_.RegisterStreamConsumer(n);
  }
  absl::Status DeregisterStreamConsumer(std::string_view n) override {
    return s_.DeregisterStreamConsumer(n);
  }
  absl::StatusOr<ConsumerDescription> DescribeStreamConsumer(std::string_view n) const override {
    return s_.DescribeStreamConsumer(n);
  }
  absl::StatusOr<std::unique_ptr<Subscription>> SubscribeToShard(
      std::string_view consumer, std::string_view shard, const StartingPosition& p,
      const SubscribeOptions& o) override {
    return static_cast<StreamApi&>(s_).SubscribeToShard(consumer, shard, p, o);
  }

 protected:
  absl::StatusOr<StreamSummary> DescribeStreamSummaryOrError() const override {
    return s_.DescribeStreamSummary();
  }
  absl::StatusOr<std::vector<ConsumerDescription>> ListStreamConsumersOrError() const override {
    return s_.ListStreamConsumers();
  }

 private:
  rill::Stream& s_;
  std::optional<size_t> accept_;
  bool lose_answer_ = false;
};

TEST_CASE("TopicToStream puts nothing twice when a retry fails after a partial put",
          "[kafka][bridge]") {
  // The entries a PutRecords accepted before its retry failed as a whole used to be put again
  // next round: recovery looked for the records after them only.
  KafkaCluster cluster;
  auto topic = Stream::Open(cluster.Options(cluster.CreateTopic("flaky", 2)));
  REQUIRE(topic.ok());
  PutEvents(**topic, 0, 300);
  rill::StreamOptions dest_options;
  dest_options.name = "flaky-dest";
  dest_options.shard_count = 2;
  auto dest = rill::Stream::Create(dest_options);
  REQUIRE(dest.ok());
  FlakyDestination flaky(**dest);

  const std::string dir = TempDir();
  BridgeOptions options;
  options.checkpoint_path = dir + "/to-stream.checkpoint";
  auto bridge = TopicToStream::Create(**topic, flaky, options);
  REQUIRE(bridge.ok());
  flaky.FailNextCalls(10);  // 10 accepted, the rest refused, then the retry's answer lost
  auto failed = (*bridge)->Poll();
  CHECK(GetErrorCode(failed.status()) == ErrorCode::kInternalFailure);
  DrainBridge(**bridge);
  CheckMirror(ByKey(**dest), 300);
  CHECK((*bridge)->stats().records_written + (*bridge)->stats().records_recovered == 300);
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
