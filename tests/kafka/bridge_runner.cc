// A bridge in its own process, for kafka_bridge_test.cc's SIGKILL test:
//   kafka_bridge_runner to-topic DIR BOOTSTRAP TOPIC CHECKPOINT MAX_RECORDS PAUSE_MS
//   kafka_bridge_runner to-stream BOOTSTRAP TOPIC DIR CHECKPOINT MAX_RECORDS PAUSE_MS
// It mirrors the durable rill stream in DIR into TOPIC (or TOPIC into the durable stream in DIR,
// created with 4 shards if missing), one round every PAUSE_MS (so that a test can kill it
// half-way), until its standard input reaches end of file; then it exits 0.
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <string>
#include <thread>

#include "rill/kafka/bridge.h"
#include "rill/stream/stream.h"

namespace {

std::unique_ptr<rill::Stream> OpenDurable(const std::string& dir) {
  rill::StreamOptions options;
  options.name = "durable-events";
  options.shard_count = 4;
  rill::StorageOptions storage;
  storage.directory = dir;
  storage.fsync = rill::FsyncPolicy::kEveryBatch;
  options.storage = storage;
  auto stream = rill::Stream::Open(options);
  if (!stream.ok()) {
    std::cerr << stream.status() << "\n";
    std::exit(1);
  }
  return std::move(*stream);
}

std::unique_ptr<rill::kafka::Stream> OpenTopic(const std::string& bootstrap,
                                               const std::string& topic) {
  rill::kafka::StreamOptions options;
  options.topic = topic;
  options.properties = {{"bootstrap.servers", bootstrap}, {"fetch.wait.max.ms", "10"}};
  auto stream = rill::kafka::Stream::Open(options);
  if (!stream.ok()) {
    std::cerr << stream.status() << "\n";
    std::exit(1);
  }
  return std::move(*stream);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::cerr << "usage: kafka_bridge_runner to-topic|to-stream ... (see the source)\n";
    return 2;
  }
  const std::string mode = argv[1];
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    std::string line;
    while (std::getline(std::cin, line)) {
    }
    stop = true;
  });
  rill::kafka::BridgeOptions options;
  options.checkpoint_path = argv[5];
  options.max_records = std::stoi(argv[6]);
  const auto pause = std::chrono::milliseconds(std::stoi(argv[7]));
  int status = 0;
  if (mode == "to-topic") {
    auto source = OpenDurable(argv[2]);
    auto topic = OpenTopic(argv[3], argv[4]);
    auto bridge = rill::kafka::StreamToTopic::Create(*source, *topic, options);
    if (!bridge.ok()) {
      std::cerr << bridge.status() << "\n";
      std::exit(1);
    }
    while (!stop.load()) {
      if (auto n = (*bridge)->Poll(); !n.ok()) std::cerr << n.status() << "\n";
      std::this_thread::sleep_for(pause);
    }
  } else if (mode == "to-stream") {
    auto topic = OpenTopic(argv[2], argv[3]);
    auto dest = OpenDurable(argv[4]);
    auto bridge = rill::kafka::TopicToStream::Create(*topic, *dest, options);
    if (!bridge.ok()) {
      std::cerr << bridge.status() << "\n";
      std::exit(1);
    }
    while (!stop.load()) {
      if (auto n = (*bridge)->Poll(); !n.ok()) std::cerr << n.status() << "\n";
      std::this_thread::sleep_for(pause);
    }
  } else {
    status = 2;
  }
  watcher.join();
  return status;
}
