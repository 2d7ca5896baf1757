// rill::kafka::MockCluster: librdkafka's mock Kafka cluster (rd_kafka_mock_cluster_new), for tests
// and demos that need Kafka's real wire protocol without a broker to run.
//
// The brokers live in this process, listening on 127.0.0.1 at free ports; any Kafka client,
// rill::kafka::Stream included, reaches them through bootstrap_servers(). The mock speaks
// Produce, Fetch, ListOffsets (earliest/latest, not by time), Metadata, the consumer-group
// protocol, offset commits, idempotent and transactional producers; it does not speak the admin
// APIs (CreateTopics, DescribeConfigs): create topics with CreateTopic(). It keeps everything in
// memory and applies no retention.
//
// Example:
//   auto cluster = rill::kafka::MockCluster::Create(3);
//   (void)(*cluster)->CreateTopic("events", 4, 3);
//   options.properties = {{"bootstrap.servers", (*cluster)->bootstrap_servers()}};
//   ...
//   (void)(*cluster)->SetBrokerDown(2);   // clients see connections refused until SetBrokerUp
//
// Thread safety: every method may be called from any thread. Destroy the cluster after the
// clients that use it.
#ifndef RILL_KAFKA_MOCK_CLUSTER_H_
#define RILL_KAFKA_MOCK_CLUSTER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rill::kafka {

class MockCluster {
 public:
  // Starts `brokers` brokers (ids 1..brokers). kInvalidArgument for fewer than 1.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<MockCluster>> Create(int brokers = 3);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  // "127.0.0.1:port,127.0.0.1:port,...".
  const std::string& bootstrap_servers() const;
  int broker_count() const;

  // Creates a topic. replication_factor ≤ broker_count().
  [[nodiscard]] absl::Status CreateTopic(const std::string& topic, int partitions,
                                         int replication_factor);
  // Takes a broker down (its connections are closed and new ones refused) or brings it back.
  [[nodiscard]] absl::Status SetBrokerDown(int32_t broker_id);
  [[nodiscard]] absl::Status SetBrokerUp(int32_t broker_id);
  // Moves a partition's leadership to another broker (a leader change, as after a failure).
  [[nodiscard]] absl::Status SetPartitionLeader(const std::string& topic, int partition,
                                                int32_t broker_id);
  // Makes the next `count` requests of Kafka API `api_key` (e.g. 0 = Produce) fail with Kafka
  // error code `error` (e.g. 6 = NOT_LEADER_OR_FOLLOWER): for fault-injection tests.
  void PushRequestErrors(int16_t api_key, int count, int error);

 private:
  struct State;
  explicit MockCluster(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace rill::kafka

#endif  // RILL_KAFKA_MOCK_CLUSTER_H_
