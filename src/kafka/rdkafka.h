// What rill::kafka's files share about librdkafka: owning handles, configurations built from
// rill's defaults and the user's properties, and Kafka errors as rill's (Kinesis-named) errors.
#ifndef RILL_SRC_KAFKA_RDKAFKA_H_
#define RILL_SRC_KAFKA_RDKAFKA_H_

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rill::kafka::internal {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;

struct TopicDeleter {
  void operator()(rd_kafka_topic_t* rkt) const { rd_kafka_topic_destroy(rkt); }
};
using Topic = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using Conf = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
using Queue = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;

struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
using Event = std::unique_ptr<rd_kafka_event_t, EventDeleter>;

using Properties = std::vector<std::pair<std::string, std::string>>;

// A configuration with `defaults` set first and `properties` after them (so the user's win).
// kInvalidArgument naming the property librdkafka refused.
absl::StatusOr<Conf> MakeConf(const Properties& defaults, const Properties& properties);

// A client of `type` made from `conf` (which it takes). kInvalidArgument with librdkafka's reason.
absl::StatusOr<Handle> MakeHandle(rd_kafka_type_t type, Conf conf);

// A Kafka error as a rill error: see the table in rill/kafka/stream.h. `what` starts the message.
absl::Status KafkaError(rd_kafka_resp_err_t err, std::string_view what);
// The same for an error object (rd_kafka_error_t), which it does not destroy.
absl::Status KafkaError(const rd_kafka_error_t* error, std::string_view what);

}  // namespace rill::kafka::internal

#endif  // RILL_SRC_KAFKA_RDKAFKA_H_
