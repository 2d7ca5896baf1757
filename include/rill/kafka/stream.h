// rill::kafka::Stream: a Kafka topic as a rill stream. Its shards are the topic's partitions.
//
// The same StreamApi as an in-process rill::Stream (rill/stream/stream_api.h), so Producer,
// ShardReader, StreamSubscriber, Dispatcher and the pipeline's sources and sinks run on Kafka
// unchanged; only the line that makes the stream differs:
//
//   rill::kafka::StreamOptions options;
//   options.topic = "player-events";
//   options.properties = {{"bootstrap.servers", "kafka-1:9092,kafka-2:9092"}};
//   absl::StatusOr<std::unique_ptr<rill::kafka::Stream>> stream =
//       rill::kafka::Stream::Open(options);
//   if (!stream.ok()) return stream.status();
//   auto put = (*stream)->PutRecord("player-42", payload);   // shardId-000000000003, 1st number
//   auto producer = rill::Producer::Create(**stream);         // as with a rill::Stream
//
// How Kinesis maps onto Kafka:
//   shards          partition p is shard "shardId-<p, 12 digits>". Each partition owns the slice
//                   of the 128-bit hash-key space that CreateStream(N) would give shard p
//                   (rill::SplitHashKeySpace(N)), and every record goes to the partition whose
//                   slice holds the MD5 of its partition key (or its explicit hash key), as
//                   Kinesis routes to shards. One key is always in one partition, so per-key
//                   order holds, and a key lands in the same shard index on Kafka as on a rill
//                   Stream of N shards. Kafka's own partitioner is not used.
//   puts            PutRecord and PutRecords produce with the partition key as the Kafka key and
//                   wait for the broker's acknowledgement (acks=all, idempotent producer by
//                   default), so what they report written is written. A record that Kafka
//                   refuses or that times out (message.timeout.ms) fails its entry, with the
//                   error mapped below; see "Failed puts" for what that means.
//   sequence        (partition, offset), as a 128-bit number that orders as the offset does within
//     numbers       a partition and names its topic and partition: a number from another topic or
//                   partition is kInvalidArgument where a shard's own number is expected.
//   arrival time    the Kafka record timestamp, set from options.clock when produced (ms), or the
//                   broker's if the topic has message.timestamp.type=LogAppendTime.
//   iterators       TRIM_HORIZON = the partition's low watermark, LATEST = its high watermark,
//                   AT/AFTER_SEQUENCE_NUMBER = that offset (+1), AT_TIMESTAMP = offsets-for-times
//                   (ListOffsets by time). A broker that does not answer ListOffsets by time
//                   (librdkafka's mock cluster) is searched instead: a binary search on the
//                   records' timestamps, exact when they do not decrease within a partition.
//                   Iterators are tokens (ShardIterator::is_remote()) naming topic, partition and
//                   offset; they expire after 5 minutes on options.clock, as Kinesis'.
//   retention       the topic's retention.ms (DescribeConfigs); Increase/DecreaseStreamRetention-
//                   Period set it (AlterConfigs, keeping the topic's other settings). A broker that
//                   answers neither (the mock cluster) reports Kafka's default, 168 hours, and the
//                   changes fail with kInvalidArgument.
//   consumers       enhanced fan-out consumers are registered in this Stream object (Kafka has no
//                   such registry; any reader may read any partition). SubscribeToShard reads the
//                   partition with its own Kafka consumer and thread, at its own pace.
//
// What Kafka cannot do, and what it returns:
//   SplitShard, MergeShards      kInvalidArgument: a partition cannot split or merge.
//   UpdateShardCount             kInvalidArgument: a topic can only gain partitions (kafka-topics
//                                --alter), and that would move keys to other partitions, breaking
//                                per-key order; create a new topic and bridge to it instead.
//   The partition count is read when the stream is opened: partitions added to the topic later
//   are not seen until it is opened again.
//
// Failed puts: an entry that failed may still have been written when the failure was a timeout
// (Kafka cannot tell), exactly as a Kinesis PutRecords that timed out. Retrying it (a Producer
// does) then writes it twice; the idempotent producer prevents duplicates only within its own
// retries. Entries refused before sending (too large, queue full) are never written.
//
// Errors (Kafka's names are kept in the message, "Kafka <ERROR_NAME>: ..."):
//   unknown topic or partition            kResourceNotFound
//   authorization / authentication        kAccessDenied
//   record too large, invalid config or
//   request, unsupported by the broker    kInvalidArgument
//   local queue full, quota exceeded      kProvisionedThroughputExceeded
//   timeouts, brokers down, no leader,
//   anything else                         kInternalFailure (retryable, as Kinesis' 500s)
//
// Configuration: `properties` are librdkafka's (https://github.com/confluentinc/librdkafka/blob/
// master/CONFIGURATION.md) and are passed through to every Kafka client the stream makes:
// bootstrap.servers, security.protocol, sasl.*, ssl.*, client.id, ... rill sets a few defaults
// first (listed at StreamOptions::properties); any property given here replaces rill's.
//
// Thread safety: every method may be called from any number of threads at once. GetRecords calls
// on the same shard are serialized (one Kafka fetcher per partition is positioned at a time);
// readers of different shards proceed in parallel.
//
// Threads and allocation: librdkafka runs its own threads (one per broker, plus a few) for the
// producer and for the reader; the stream adds one thread serving delivery reports, and each
// subscription one more. PutRecords allocates one result vector and one slot per entry; the
// record bytes are copied once, into librdkafka's queue. GetRecords allocates the record vector
// and one keep-alive per call that holds the Kafka messages the records point into.
#ifndef RILL_KAFKA_STREAM_H_
#define RILL_KAFKA_STREAM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rill/base/clock.h"
#include "rill/consume/consumer_group.h"
#include "rill/stream/stream_api.h"

namespace rill::kafka {

struct StreamOptions {
  // The Kafka topic. Required. It must exist (create it with Kafka's tools, an admin client, or
  // MockCluster::CreateTopic) unless create_partitions is set.
  std::string topic;
  // The stream's name (what name() and DescribeStreamSummary report). Default: the topic.
  std::string name;
  // librdkafka properties, passed through in this order after rill's defaults, which are:
  //   producer: enable.idempotence=true (acks=all, no reordering or duplicates from its own
  //             retries), linger.ms=1 (a PutRecords waits for its acknowledgement, so batching
  //             longer only adds latency);
  //   readers:  auto.offset.reset=earliest (an iterator whose records retention removed reads
  //             from the trim horizon, as in Kinesis), enable.partition.eof=false,
  //             fetch.wait.max.ms=100, queued.max.messages.kbytes=10240 (per partition).
  // bootstrap.servers is required here.
  std::vector<std::pair<std::string, std::string>> properties;
  // Creates the topic with this many partitions when it does not exist (CreateTopics), with
  // replication_factor replicas (-1: the broker's default). 0: never create. Default: 0.
  int create_partitions = 0;
  int replication_factor = -1;
  // The clock for record timestamps, iterator expiry and readers' waits. Default: the system
  // clock. Kafka's own timeouts are real time (they wait on the network).
  std::shared_ptr<Clock> clock;
  // Longest real time a call waits on Kafka: metadata, offsets, a GetRecords whose partition
  // holds records not yet fetched. Range: > 0. Default: 30 s.
  absl::Duration timeout = absl::Seconds(30);
  // Largest record (key plus data). Kafka's own limit (message.max.bytes, 1 MB by default) also
  // applies. Default: 1 MiB, as Kinesis.
  size_t max_record_bytes = size_t{1} << 20;
};

class Stream final : public StreamApi, public NativeConsumerGroups {
 public:
  // Connects, reads the topic's partitions and retention. kResourceNotFound if the topic does
  // not exist (and create_partitions is 0), kInvalidArgument for bad options or a property
  // librdkafka refuses (its message says which), kInternalFailure if no broker answered within
  // options.timeout.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Stream>> Open(StreamOptions options);
  // Waits (up to options.timeout) for records still in flight, then disconnects. Subscriptions
  // must have been destroyed first.
  ~Stream() override;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  const StreamOptions& options() const;
  const std::string& topic() const;
  int partition_count() const;

  // The offset a starting position names in `partition` (as GetShardIterator resolves it).
  [[nodiscard]] absl::StatusOr<int64_t> ResolveOffset(int partition,
                                                      const StartingPosition& position) const;

  // The partition a partition key (or explicit hash key) routes to.
  int PartitionFor(std::string_view partition_key) const;
  int PartitionFor(HashKey hash_key) const;

  // The sequence number of (partition, offset) on this topic, and back. FromSequenceNumber
  // fails with kInvalidArgument for a number that is not this topic's.
  SequenceNumber ToSequenceNumber(int partition, int64_t offset) const;
  [[nodiscard]] absl::StatusOr<std::pair<int, int64_t>> FromSequenceNumber(
      SequenceNumber sequence_number) const;

  // StreamApi.
  const std::string& name() const override;
  const std::shared_ptr<Clock>& clock() const override;
  PutLimits put_limits() const override;
  [[nodiscard]] absl::StatusOr<PutRecordResult> PutRecord(std::string_view partition_key,
                                                          std::string_view data,
                                                          const PutOptions& options = {}) override;
  [[nodiscard]] absl::StatusOr<PutRecordsResult> PutRecords(
      absl::Span<const PutRecordsEntry> entries) override;
  using StreamApi::ListShards;
  [[nodiscard]] absl::StatusOr<ListShardsResult> ListShards(
      const ListShardsRequest& request) const override;
  using StreamApi::GetShardIterator;
  [[nodiscard]] absl::StatusOr<ShardIterator> GetShardIterator(
      std::string_view shard_id, const StartingPosition& position) const override;
  [[nodiscard]] absl::StatusOr<GetRecordsResult> GetRecords(
      const ShardIterator& iterator, int limit = kMaxGetRecordsLimit) const override;
  using StreamApi::MergeShards;
  using StreamApi::SplitShard;
  [[nodiscard]] absl::Status SplitShard(std::string_view shard_id,
                                        HashKey new_starting_hash_key) override;
  [[nodiscard]] absl::Status MergeShards(std::string_view shard_id,
                                         std::string_view adjacent_shard_id) override;
  [[nodiscard]] absl::Status UpdateShardCount(int target_shard_count) override;
  [[nodiscard]] absl::Status IncreaseStreamRetentionPeriod(absl::Duration retention) override;
  [[nodiscard]] absl::Status DecreaseStreamRetentionPeriod(absl::Duration retention) override;
  [[nodiscard]] absl::StatusOr<ConsumerDescription> RegisterStreamConsumer(
      std::string_view name) override;
  [[nodiscard]] absl::Status DeregisterStreamConsumer(std::string_view name) override;
  [[nodiscard]] absl::StatusOr<ConsumerDescription> DescribeStreamConsumer(
      std::string_view name) const override;
  using StreamApi::SubscribeToShard;
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Subscription>> SubscribeToShard(
      std::string_view consumer_name, std::string_view shard_id, const StartingPosition& position,
      const SubscribeOptions& options = {}) override;

  // ConsumerGroup on this stream (NativeConsumerGroups): a worker is a member of the Kafka
  // consumer group named options.application_name, using Kafka's group protocol, not rill's
  // leases:
  //   - assignment: cooperative-sticky (partition.assignment.strategy), so a rebalance moves
  //     only the partitions that change owner;
  //   - checkpoints are committed offsets (offset of the checkpointed record + 1), committed
  //     synchronously when the processor checkpoints;
  //   - failover_time is session.timeout.ms, renew_interval heartbeat.interval.ms (a third of
  //     the session when zero); take_interval, max_leases_to_steal and max_leases_per_worker
  //     have no Kafka equivalent and are ignored;
  //   - a partition revoked by a rebalance (handed to another member) gets ShutdownRequested,
  //     so that the processor checkpoints and the next owner resumes exactly there; a partition
  //     whose assignment was lost (the session expired) gets LeaseLost;
  //   - Poll() waits up to 100 ms of real time for the first record (Kafka's network), then
  //     takes what has arrived, up to max_records, and hands each partition's records to its
  //     processor in offset order. Partitions never end, so ShardEnded is never called.
  // The stream's properties (bootstrap.servers, security, ...) apply to the group's consumer
  // too; group.id and enable.auto.commit=false are set by rill.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<NativeGroupWorker>> MakeGroupWorker(
      const ConsumerGroupOptions& options, std::string worker_id,
      RecordProcessorFactory factory) override;

  class Impl;

 protected:
  absl::StatusOr<std::vector<ShardDescription>> ListAllShardsOrError() const override;
  absl::StatusOr<StreamSummary> DescribeStreamSummaryOrError() const override;
  absl::StatusOr<std::vector<ConsumerDescription>> ListStreamConsumersOrError() const override;

 private:
  explicit Stream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rill::kafka

#endif  // RILL_KAFKA_STREAM_H_
