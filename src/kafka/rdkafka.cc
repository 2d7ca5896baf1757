#include "kafka/rdkafka.h"

#include "kafka/stream_internal.h"

#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "rill/base/error.h"

namespace rill::kafka::internal {

absl::StatusOr<Conf> MakeConf(const Properties& defaults, const Properties& properties) {
  Conf conf(rd_kafka_conf_new());
  char reason[512];
  for (const Properties* list : {&defaults, &properties}) {
    for (const auto& [name, value] : *list) {
      if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), reason, sizeof(reason)) !=
          RD_KAFKA_CONF_OK) {
        return InvalidArgumentError(absl::StrCat("Kafka property ", name, ": ", reason));
      }
    }
  }
  return conf;
}

absl::StatusOr<Handle> MakeHandle(rd_kafka_type_t type, Conf conf) {
  char reason[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), reason, sizeof(reason));
  if (rk == nullptr) {
    return InvalidArgumentError(absl::StrCat("cannot make a Kafka client: ", reason));
  }
  (void)conf.release();  // rd_kafka_new took it
  return Handle(rk);
}

absl::Status KafkaError(rd_kafka_resp_err_t err, std::string_view what) {
  ErrorCode code = ErrorCode::kInternalFailure;
  switch (err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_GROUP:
      code = ErrorCode::kResourceNotFound;
      break;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
      code = ErrorCode::kAccessDenied;
      break;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_INVALID_REQUEST:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
      code = ErrorCode::kInvalidArgument;
      break;
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
      code = ErrorCode::kResourceInUse;
      break;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
      code = ErrorCode::kProvisionedThroughputExceeded;
      break;
    default:
      break;
  }
  return MakeError(code, absl::StrCat(rill::internal::ToAbsl(what), ": Kafka ",
                                      rd_kafka_err2name(err), ": ", rd_kafka_err2str(err)));
}

absl::Status KafkaError(const rd_kafka_error_t* error, std::string_view what) {
  const rd_kafka_resp_err_t err = rd_kafka_error_code(error);
  return MakeError(GetErrorCode(KafkaError(err, what)),
                   absl::StrCat(rill::internal::ToAbsl(what), ": Kafka ", rd_kafka_err2name(err),
                                ": ", rd_kafka_error_string(error)));
}

absl::Status RequireController(rd_kafka_t* client) {
  // From the cached metadata (never waits: a cluster without a controller would make it wait
  // for the whole timeout). The controller must be one of the brokers: librdkafka's mock
  // cluster names broker 0, which does not exist.
  const int32_t controller = rd_kafka_controllerid(client, 0);
  const rd_kafka_metadata_t* metadata = nullptr;
  if (controller >= 0 &&
      rd_kafka_metadata(client, 0, nullptr, &metadata, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    bool known = false;
    for (int i = 0; i < metadata->broker_cnt; ++i) known |= metadata->brokers[i].id == controller;
    rd_kafka_metadata_destroy(metadata);
    if (known) return absl::OkStatus();
  }
  return InvalidArgumentError(
      "the Kafka cluster names no controller, so it cannot serve admin requests (CreateTopics, "
      "DescribeConfigs, AlterConfigs); librdkafka's mock cluster has none");
}

absl::Status CreateTopic(rd_kafka_t* client, const std::string& topic, int partitions,
                         int replication_factor, absl::Duration timeout) {
  if (absl::Status s = RequireController(client); !s.ok()) return s;
  char reason[512];
  rd_kafka_NewTopic_t* new_topic =
      rd_kafka_NewTopic_new(topic.c_str(), partitions, replication_factor, reason, sizeof(reason));
  if (new_topic == nullptr) {
    return InvalidArgumentError(absl::StrCat("cannot create topic ", topic, ": ", reason));
  }
  Queue queue(rd_kafka_queue_new(client));
  rd_kafka_AdminOptions_t* admin =
      rd_kafka_AdminOptions_new(client, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(admin, TimeoutMs(timeout), reason, sizeof(reason));
  rd_kafka_CreateTopics(client, &new_topic, 1, admin, queue.get());
  rd_kafka_AdminOptions_destroy(admin);
  rd_kafka_NewTopic_destroy(new_topic);
  Event event(rd_kafka_queue_poll(queue.get(), TimeoutMs(timeout) + 1000));
  if (event == nullptr) return InternalFailureError("CreateTopics: no answer from Kafka");
  rd_kafka_resp_err_t err = rd_kafka_event_error(event.get());
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    size_t count = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(
        rd_kafka_event_CreateTopics_result(event.get()), &count);
    if (count == 1) err = rd_kafka_topic_result_error(results[0]);
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return KafkaError(err, absl::StrCat("creating topic ", topic));
  }
  return absl::OkStatus();
}

}  // namespace rill::kafka::internal
