// One member of a rill ConsumerGroup on Kafka, run as its own process by kafka_group_test.cc:
//   kafka_group_member BOOTSTRAP TOPIC GROUP WORKER_ID OUTPUT_FILE
// It appends to OUTPUT_FILE one line per event, flushed at once:
//   assigned <partition>             a processor was initialized for the partition
//   record <partition> <offset> <data>
//   revoked <partition>              ShutdownRequested (handed over, checkpointed)
//   lost <partition>                 LeaseLost
//   checkpoint-failed <partition> <message>
// and checkpoints after every batch. It shuts down gracefully (leaving the group) when its
// standard input reaches end of file, and exits 0.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/kafka/stream.h"

namespace {

class Output {
 public:
  explicit Output(const std::string& path) : out_(path, std::ios::app) {}
  void Line(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    out_ << line << "\n";
    out_.flush();
  }

 private:
  std::mutex mu_;
  std::ofstream out_;
};

class Recorder final : public rill::RecordProcessor {
 public:
  Recorder(Output* out, rill::ShardId shard) : out_(out), shard_(shard.index()) {}
  void Initialize(const rill::InitializationInput&) override {
    out_->Line("assigned " + std::to_string(shard_));
  }
  void ProcessRecords(const rill::ProcessRecordsInput& input) override {
    for (const rill::Record& r : input.records) {
      out_->Line("record " + std::to_string(shard_) + " " + r.sequence_number.ToString() + " " +
                 std::string(r.data));
    }
    Checkpoint(input.checkpointer);
  }
  void LeaseLost() override { out_->Line("lost " + std::to_string(shard_)); }
  void ShardEnded(rill::Checkpointer& c) override { Checkpoint(c); }
  void ShutdownRequested(rill::Checkpointer& c) override {
    Checkpoint(c);
    out_->Line("revoked " + std::to_string(shard_));
  }

 private:
  void Checkpoint(rill::Checkpointer& c) {
    if (absl::Status s = c.Checkpoint(); !s.ok()) {
      out_->Line("checkpoint-failed " + std::to_string(shard_) + " " + std::string(s.message()));
    }
  }
  Output* const out_;
  const uint32_t shard_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: kafka_group_member BOOTSTRAP TOPIC GROUP WORKER_ID OUTPUT_FILE\n";
    return 2;
  }
  rill::kafka::StreamOptions options;
  options.topic = argv[2];
  options.properties = {{"bootstrap.servers", argv[1]}, {"fetch.wait.max.ms", "10"}};
  auto stream = rill::kafka::Stream::Open(options);
  if (!stream.ok()) {
    std::cerr << stream.status() << "\n";
    return 1;
  }
  Output out(argv[5]);
  rill::InMemoryCheckpointStore unused;  // Kafka keeps the checkpoints (committed offsets)
  rill::ConsumerGroupOptions group_options;
  group_options.application_name = argv[3];
  group_options.initial_position = rill::StartingPosition::TrimHorizon();
  group_options.failover_time =
      absl::Seconds(4);  // the mock waits 3 s for first joins, session - 1 s for rejoins
  auto group = rill::ConsumerGroup::Create(**stream, unused, group_options);
  if (!group.ok()) {
    std::cerr << group.status() << "\n";
    return 1;
  }
  auto worker = (*group)->AddWorker(
      argv[4], [&](rill::ShardId shard) { return std::make_unique<Recorder>(&out, shard); });
  if (!worker.ok() || !(*worker)->Start().ok()) {
    std::cerr << "cannot start the worker\n";
    return 1;
  }
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  (*worker)->Shutdown();
  return 0;
}
