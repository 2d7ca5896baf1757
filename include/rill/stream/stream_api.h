// StreamApi: one Kinesis data stream, wherever it lives. The seam between rill's readers and
// writers and the stream they use.
//
// Three implementations:
//   rill::Stream               a stream inside this process (rill/stream/stream.h);
//   rill::kinesis::Client      a stream behind a Kinesis endpoint: a `rill serve` process (a
//                              rill::net::KinesisServer), kinesalite, or Amazon Kinesis itself
//                              (rill/kinesis/client.h).
// Producer, ShardReader, ConsumerGroup, StreamSubscriber, Dispatcher and the pipeline's sources
// and sinks take a StreamApi&, so the same application runs on either; only the line that makes
// the stream changes:
//
//   std::unique_ptr<rill::StreamApi> stream = *rill::Stream::Create(options);           // here
//   std::unique_ptr<rill::StreamApi> stream = *rill::kinesis::Client::Create(client_options);
//   auto producer = rill::Producer::Create(*stream);
//   auto group = rill::ConsumerGroup::Create(*stream, store, group_options);
//
// Errors are Kinesis' (rill/base/error.h), whichever side produced them. Through a StreamApi
// every call may fail: a remote stream adds the network's errors (kInternalFailure for a
// connection that failed, kServiceUnavailable, kProvisionedThroughputExceeded after the client's
// retries) to the stream's own. A Stream, used as a Stream, also offers infallible forms of a few
// calls (ListShards(), DescribeStreamSummary(), ListStreamConsumers()): in-process they cannot
// fail.
//
// What differs between the implementations, and what does not:
//   - Records read from a Stream are views into its memory, kept alive by the result's
//     RecordKeepAlive; records read through a Client are views into the decoded response, kept
//     alive the same way. Either way they are valid while the result (or a copy) lives.
//   - Sequence numbers: a Stream issues 128-bit ones that name their shard; Kinesis issues
//     56-digit ones. Both are SequenceNumbers; only a Stream checks that a number is its own.
//   - Shard iterators: a Stream's are values it can check; a Client's carry the endpoint's token
//     (ShardIterator::FromToken). Each implementation rejects the other's with kInvalidArgument.
//   - clock(): a Stream's is the StreamOptions::clock it runs on; a Client's is the one in its
//     options (the system clock by default). Readers wait, renew iterators and time heartbeats
//     on it.
//
// Thread safety: every implementation is safe to call from any number of threads at once.
#ifndef RILL_STREAM_STREAM_API_H_
#define RILL_STREAM_STREAM_API_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "rill/base/clock.h"
#include "rill/base/hash_key.h"
#include "rill/base/shard_id.h"
#include "rill/stream/list_shards.h"
#include "rill/stream/record.h"
#include "rill/stream/shard_description.h"
#include "rill/stream/shard_iterator.h"
#include "rill/stream/stream_summary.h"
#include "rill/stream/subscription.h"

namespace rill {

// Kinesis' fixed limits that are not options.
inline constexpr int kMaxPartitionKeyChars = 256;
inline constexpr int kMaxPutRecordsEntries = 500;
inline constexpr int kMaxGetRecordsLimit = 10000;
inline constexpr size_t kMaxGetRecordsBytes = size_t{10} << 20;
inline constexpr absl::Duration kShardIteratorLifetime = absl::Minutes(5);
inline constexpr absl::Duration kMinRetention = absl::Hours(24);
inline constexpr absl::Duration kMaxRetention = absl::Hours(8760);
inline constexpr absl::Duration kNextTokenLifetime = absl::Minutes(5);
inline constexpr int kMaxListShardsResults = 1000;

struct GetRecordsResult {
  // The records, in sequence-number order. May be empty even when more records exist (keep
  // calling with next_shard_iterator).
  std::vector<Record> records;
  // Where to continue. Absent only when the shard is closed and every record was returned.
  std::optional<ShardIterator> next_shard_iterator;
  // How far behind the newest record of the shard this read is: 0 when it returned everything
  // published, otherwise now minus the arrival time of the first record not yet returned, at
  // least 1 (so 0 always means caught up, even on a clock that stands still).
  int64_t millis_behind_latest = 0;
  // Set on the read that reaches the end of a closed shard: the shards that took over its range.
  std::vector<ChildShard> child_shards;
  // Keeps the storage that `records` point into alive. Copying the result shares it.
  RecordKeepAlive storage;
};

// The sizes a writer must respect (a Producer batches within them).
struct PutLimits {
  // Largest record: partition-key bytes plus data bytes. Kinesis: 1 MiB (up to 10 MiB when the
  // stream is configured for it).
  size_t max_record_bytes = size_t{1} << 20;
  // Largest PutRecords request: keys plus data of every entry. Kinesis: 5 MiB.
  size_t max_put_records_bytes = size_t{5} << 20;
};

class StreamApi {
 public:
  virtual ~StreamApi() = default;

  // The stream's name.
  virtual const std::string& name() const = 0;
  // The clock readers and writers of this stream wait and measure time on.
  virtual const std::shared_ptr<Clock>& clock() const = 0;
  virtual PutLimits put_limits() const = 0;

  // Kinesis' PutRecord and PutRecords (see rill::Stream for the rules; a Client sends them as
  // they are and returns what the endpoint answers).
  [[nodiscard]] virtual absl::StatusOr<PutRecordResult> PutRecord(
      std::string_view partition_key, std::string_view data, const PutOptions& options = {}) = 0;
  [[nodiscard]] virtual absl::StatusOr<PutRecordsResult> PutRecords(
      absl::Span<const PutRecordsEntry> entries) = 0;

  // Kinesis' ListShards, one page at a time.
  [[nodiscard]] virtual absl::StatusOr<ListShardsResult> ListShards(
      const ListShardsRequest& request) const = 0;
  // Every unexpired shard (the default FROM_TRIM_HORIZON filter), every page, in shard-id order.
  [[nodiscard]] absl::StatusOr<std::vector<ShardDescription>> ListShards() const {
    return ListAllShardsOrError();
  }

  [[nodiscard]] absl::StatusOr<StreamSummary> DescribeStreamSummary() const {
    return DescribeStreamSummaryOrError();
  }

  [[nodiscard]] virtual absl::StatusOr<ShardIterator> GetShardIterator(
      std::string_view shard_id, const StartingPosition& position) const = 0;
  [[nodiscard]] absl::StatusOr<ShardIterator> GetShardIterator(
      ShardId shard_id, const StartingPosition& position) const {
    return GetShardIterator(std::string_view(shard_id.ToString()), position);
  }
  // Up to `limit` (1..10,000) records from the iterator's position.
  [[nodiscard]] virtual absl::StatusOr<GetRecordsResult> GetRecords(
      const ShardIterator& iterator, int limit = kMaxGetRecordsLimit) const = 0;

  // Resharding (provisioned streams).
  [[nodiscard]] virtual absl::Status SplitShard(std::string_view shard_id,
                                                HashKey new_starting_hash_key) = 0;
  [[nodiscard]] absl::Status SplitShard(ShardId shard_id, HashKey new_starting_hash_key) {
    return SplitShard(std::string_view(shard_id.ToString()), new_starting_hash_key);
  }
  [[nodiscard]] virtual absl::Status MergeShards(std::string_view shard_id,
                                                 std::string_view adjacent_shard_id) = 0;
  [[nodiscard]] absl::Status MergeShards(ShardId shard_id, ShardId adjacent_shard_id) {
    return MergeShards(std::string_view(shard_id.ToString()),
                       std::string_view(adjacent_shard_id.ToString()));
  }
  [[nodiscard]] virtual absl::Status UpdateShardCount(int target_shard_count) = 0;

  // Retention.
  [[nodiscard]] virtual absl::Status IncreaseStreamRetentionPeriod(absl::Duration retention) = 0;
  [[nodiscard]] virtual absl::Status DecreaseStreamRetentionPeriod(absl::Duration retention) = 0;

  // Enhanced fan-out.
  [[nodiscard]] virtual absl::StatusOr<ConsumerDescription> RegisterStreamConsumer(
      std::string_view name) = 0;
  [[nodiscard]] virtual absl::Status DeregisterStreamConsumer(std::string_view name) = 0;
  [[nodiscard]] virtual absl::StatusOr<ConsumerDescription> DescribeStreamConsumer(
      std::string_view name) const = 0;
  // In registration order.
  [[nodiscard]] absl::StatusOr<std::vector<ConsumerDescription>> ListStreamConsumers() const {
    return ListStreamConsumersOrError();
  }
  // A push subscription of a registered consumer to a shard (see rill/stream/subscription.h).
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<Subscription>> SubscribeToShard(
      std::string_view consumer_name, std::string_view shard_id, const StartingPosition& position,
      const SubscribeOptions& options = {}) = 0;
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Subscription>> SubscribeToShard(
      std::string_view consumer_name, ShardId shard_id, const StartingPosition& position,
      const SubscribeOptions& options = {}) {
    return SubscribeToShard(consumer_name, std::string_view(shard_id.ToString()), position,
                            options);
  }

 protected:
  // Behind ListShards(): by default every page of ListShards(request); a Stream lists its shards
  // at once (a consumer group lists them on every poll).
  virtual absl::StatusOr<std::vector<ShardDescription>> ListAllShardsOrError() const;
  // The fallible forms behind DescribeStreamSummary() and ListStreamConsumers(): a Stream offers
  // infallible ones under those names, which a virtual could not share.
  virtual absl::StatusOr<StreamSummary> DescribeStreamSummaryOrError() const = 0;
  virtual absl::StatusOr<std::vector<ConsumerDescription>> ListStreamConsumersOrError() const = 0;
};

}  // namespace rill

#endif  // RILL_STREAM_STREAM_API_H_
