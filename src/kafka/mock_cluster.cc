#include "rill/kafka/mock_cluster.h"

#include <librdkafka/rdkafka.h>
// After rdkafka.h, which it needs.
#include <librdkafka/rdkafka_mock.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kafka/rdkafka.h"
#include "rill/base/error.h"

namespace rill::kafka {

struct MockCluster::State {
  internal::Handle owner;  // the client whose background thread runs the brokers
  rd_kafka_mock_cluster_t* cluster = nullptr;
  std::string bootstrap;
  int brokers = 0;

  ~State() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
  }
};

absl::StatusOr<std::unique_ptr<MockCluster>> MockCluster::Create(int brokers) {
  if (brokers < 1) return InvalidArgumentError("a mock cluster needs at least one broker");
  // The owning client never connects anywhere: it only hosts the mock brokers' thread. The
  // brokers take their socket options from it: without TCP_NODELAY a broker holds a response back
  // until the client has acknowledged the previous one, which a client delays by up to 40 ms, and
  // a producer waiting for its acknowledgements runs 10-20 times slower in some runs (Kafka's
  // brokers set TCP_NODELAY).
  absl::StatusOr<internal::Conf> conf =
      internal::MakeConf({{"log_level", "3"}, {"socket.nagle.disable", "true"}}, {});
  if (!conf.ok()) return conf.status();
  absl::StatusOr<internal::Handle> owner =
      internal::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
  if (!owner.ok()) return owner.status();
  auto state = std::make_unique<State>();
  state->owner = std::move(*owner);
  state->cluster = rd_kafka_mock_cluster_new(state->owner.get(), brokers);
  if (state->cluster == nullptr)
    return InternalFailureError("the Kafka mock cluster did not start");
  state->bootstrap = rd_kafka_mock_cluster_bootstraps(state->cluster);
  state->brokers = brokers;
  return std::unique_ptr<MockCluster>(new MockCluster(std::move(state)));
}

MockCluster::MockCluster(std::unique_ptr<State> state) : state_(std::move(state)) {}
MockCluster::~MockCluster() = default;

const std::string& MockCluster::bootstrap_servers() const { return state_->bootstrap; }
int MockCluster::broker_count() const { return state_->brokers; }

absl::Status MockCluster::CreateTopic(const std::string& topic, int partitions,
                                      int replication_factor) {
  if (partitions < 1 || replication_factor < 1 || replication_factor > state_->brokers) {
    return InvalidArgumentError(absl::StrCat("cannot create ", topic, " with ", partitions,
                                             " partitions and ", replication_factor,
                                             " replicas on ", state_->brokers, " brokers"));
  }
  const rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(state_->cluster, topic.c_str(), partitions, replication_factor);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return internal::KafkaError(err, "CreateTopic");
  return absl::OkStatus();
}

absl::Status MockCluster::SetBrokerDown(int32_t broker_id) {
  const rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_down(state_->cluster, broker_id);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return internal::KafkaError(err, "SetBrokerDown");
  return absl::OkStatus();
}

absl::Status MockCluster::SetBrokerUp(int32_t broker_id) {
  const rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_up(state_->cluster, broker_id);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return internal::KafkaError(err, "SetBrokerUp");
  return absl::OkStatus();
}

absl::Status MockCluster::SetPartitionLeader(const std::string& topic, int partition,
                                             int32_t broker_id) {
  const rd_kafka_resp_err_t err =
      rd_kafka_mock_partition_set_leader(state_->cluster, topic.c_str(), partition, broker_id);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return internal::KafkaError(err, "SetPartitionLeader");
  return absl::OkStatus();
}

void MockCluster::PushRequestErrors(int16_t api_key, int count, int error) {
  std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count),
                                          static_cast<rd_kafka_resp_err_t>(error));
  rd_kafka_mock_push_request_errors_array(state_->cluster, api_key, errors.size(), errors.data());
}

}  // namespace rill::kafka
