// Pieces of rill::kafka::Stream that its files share (reading messages, defaults, topics).
#ifndef RILL_SRC_KAFKA_STREAM_INTERNAL_H_
#define RILL_SRC_KAFKA_STREAM_INTERNAL_H_

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "kafka/rdkafka.h"
#include "rill/consume/consumer_group.h"
#include "rill/stream/record.h"

namespace rill::kafka::internal {

// A duration as librdkafka's timeout in milliseconds, within [1, INT32_MAX].
int TimeoutMs(absl::Duration d);

// Consumes from a started partition of a simple consumer: waits up to `wait_ms` (real time: it
// waits on the network) for one message, then takes what is already fetched, up to `max` in all.
// The caller destroys the messages.
size_t ConsumeAvailable(rd_kafka_topic_t* topic, int partition, int wait_ms, size_t max,
                        std::vector<rd_kafka_message_t*>* out);

// Messages copied into one buffer, as Records (sequence numbers left for the caller): the
// leading messages without error whose key and data fit within max_bytes (at least one).
struct MessageCopy {
  std::vector<Record> records;
  std::vector<int64_t> offsets;
  std::shared_ptr<const void> storage;
  size_t taken = 0;  // messages copied
  // The error of the first message not copied because it carried one, else none.
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
};
MessageCopy CopyMessages(absl::Span<rd_kafka_message_t* const> messages, size_t max_bytes);

// rill's default librdkafka properties (the user's are applied after them).
Properties ProducerDefaults();
Properties ReaderDefaults();

// Admin requests (CreateTopics, DescribeConfigs, AlterConfigs) go to the cluster's controller;
// librdkafka waits for one until the request times out. A cluster whose metadata names none
// (librdkafka's mock cluster) gets kInvalidArgument at once instead. REQUIRES: the client has
// fetched metadata (rd_kafka_metadata), which names the controller.
absl::Status RequireController(rd_kafka_t* client);

// CreateTopics through `client`. kResourceInUse if the topic exists.
absl::Status CreateTopic(rd_kafka_t* client, const std::string& topic, int partitions,
                         int replication_factor, absl::Duration timeout);

}  // namespace rill::kafka::internal

namespace rill::kafka {
class Stream;
namespace internal {

// A ConsumerGroup worker on Kafka's group protocol (group_worker.cc).
absl::StatusOr<std::unique_ptr<NativeGroupWorker>> MakeKafkaGroupWorker(
    Stream& stream, const ConsumerGroupOptions& options, std::string worker_id,
    RecordProcessorFactory factory);

}  // namespace internal
}  // namespace rill::kafka

#endif  // RILL_SRC_KAFKA_STREAM_INTERNAL_H_
