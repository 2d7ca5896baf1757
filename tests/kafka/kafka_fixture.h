// The Kafka cluster a test runs on: librdkafka's mock cluster (3 brokers on 127.0.0.1 at free
// ports, started by the fixture and stopped with it), or a real cluster when the environment
// variable RILL_KAFKA_BOOTSTRAP names its bootstrap servers (see docs/kafka.md). Topics get
// names unique to the run, so a real cluster can be shared.
#ifndef RILL_TESTS_KAFKA_KAFKA_FIXTURE_H_
#define RILL_TESTS_KAFKA_KAFKA_FIXTURE_H_

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "catch2/catch.hpp"
#include "rill/kafka/mock_cluster.h"
#include "rill/kafka/stream.h"

namespace rill::kafka::testing {

class KafkaCluster {
 public:
  using TopicName = std::string;

  KafkaCluster() {
    if (const char* real = std::getenv("RILL_KAFKA_BOOTSTRAP"); real != nullptr && *real != 0) {
      bootstrap_ = real;
      return;
    }
    auto mock = MockCluster::Create(3);
    REQUIRE(mock.ok());
    mock_ = std::move(*mock);
    bootstrap_ = mock_->bootstrap_servers();
  }

  bool is_real() const { return mock_ == nullptr; }
  // The mock cluster (null on a real one).
  MockCluster* mock() const { return mock_.get(); }
  const std::string& bootstrap_servers() const { return bootstrap_; }

  // Creates a topic named after `base`, unique to this run, and returns its name.
  TopicName CreateTopic(const std::string& base, int partitions) {
    static std::atomic<int> counter{0};
    const std::string name = "rill-" + base + "-" + std::to_string(getpid()) + "-" +
                             std::to_string(counter.fetch_add(1));
    if (mock_ != nullptr) {
      REQUIRE(mock_->CreateTopic(name, partitions, 3).ok());
    } else {
      StreamOptions options = Options(name);
      options.create_partitions = partitions;
      auto stream = Stream::Open(options);
      INFO(stream.status());
      REQUIRE(stream.ok());
    }
    return name;
  }

  StreamOptions Options(const std::string& topic) const {
    StreamOptions options;
    options.topic = topic;
    options.properties = {{"bootstrap.servers", bootstrap_}};
    if (mock_ != nullptr) {
      // The mock broker holds a fetch that finds nothing for the whole fetch.wait.max.ms (500 ms
      // by default), even when records arrive meanwhile; a real broker answers at once.
      options.properties.emplace_back("fetch.wait.max.ms", "10");
    }
    return options;
  }

 private:
  std::unique_ptr<MockCluster> mock_;
  std::string bootstrap_;
};

}  // namespace rill::kafka::testing

#endif  // RILL_TESTS_KAFKA_KAFKA_FIXTURE_H_
