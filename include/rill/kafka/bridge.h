// Bridges between rill streams and Kafka topics, resumable after a crash with nothing lost or
// duplicated and per-key order kept:
//   StreamToTopic   mirrors a rill stream (in-memory, durable, or any StreamApi) into a topic;
//   TopicToStream   mirrors a topic into a rill stream.
//
//   rill::kafka::BridgeOptions options;
//   options.checkpoint_path = "/var/lib/game/bridge-to-kafka.checkpoint";
//   auto bridge = rill::kafka::StreamToTopic::Create(*durable_stream, **topic, options);
//   for (;;) { auto n = (*bridge)->Poll(); ... }     // or from a thread of the application's
//
// How each resumes exactly (the checkpoint file is written atomically after every batch the
// destination acknowledged: temporary file, fsync, rename, fsync of the directory):
//   StreamToTopic   every Kafka record it writes carries headers naming the source stream, shard
//                   and sequence number ("rill.stream", "rill.shard", "rill.seq"). The checkpoint
//                   holds each source shard's position and, per partition, the offset after the
//                   bridge's last acknowledged record. On start (and after an error) it reads the
//                   topic from those offsets to its end: the records found there from the source
//                   advance each shard's position over the run of its records found, so a batch
//                   written but not checkpointed before a crash is not written again. A round
//                   writes to several partitions, so a failure can leave a shard's later record
//                   written and an earlier one not: the position stops before the earlier one,
//                   and the later ones found are skipped (once) when the next round reads them.
//   TopicToStream   the checkpoint holds each partition's next offset and the destination's last
//                   sequence number per shard. On start it reads the destination after those
//                   numbers: the records there are the (acknowledged part of the) batch in flight
//                   at the crash, and the topic's records matching them (partition key and data)
//                   are skipped once each. The destination should have no other writer: an
//                   identical record of another writer would be taken for the bridge's.
// Per-key order: a key goes to one partition or shard, and batches are written in order, each
// waiting for its acknowledgement; a PutRecords entry that fails is retried before the key's next
// record (TopicToStream puts a key at most once per PutRecords call for that reason). Resharding
// of a source rill stream: a child shard is mirrored once its parents are read to their end.
// Kafka records without a key get the partition key "<topic>-<partition>".
//
// Thread safety: a bridge is driven from one thread at a time (Poll). The streams must outlive it.
#ifndef RILL_KAFKA_BRIDGE_H_
#define RILL_KAFKA_BRIDGE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/kafka/stream.h"
#include "rill/stream/stream_api.h"

namespace rill::kafka {

struct BridgeOptions {
  // Where the bridge keeps its progress. Required. A missing file starts from the beginning of
  // the source (TRIM_HORIZON, or each partition's earliest offset).
  std::string checkpoint_path;
  // Records read per shard or partition per round. Range: 1..10,000. Default: 1,000.
  int max_records = 1000;
};

// Counts of a bridge's work since it was created.
struct BridgeStats {
  int64_t records_written = 0;
  // Records found already written at recovery (written before a crash, not checkpointed).
  int64_t records_recovered = 0;
  int64_t checkpoints = 0;
};

class StreamToTopic {
 public:
  // Reads the checkpoint and recovers (see above). Errors: kInvalidArgument for bad options or a
  // checkpoint file that is not this bridge's; the streams' errors.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StreamToTopic>> Create(StreamApi& source,
                                                                             Stream& topic,
                                                                             BridgeOptions options);
  ~StreamToTopic();

  // One round: reads every source shard it may read once, writes what it read to the topic,
  // waits for the acknowledgements, checkpoints. Returns how many records it wrote (0: caught
  // up). After an error nothing is lost: the next Poll recovers first.
  [[nodiscard]] absl::StatusOr<int64_t> Poll();

  // Per source shard, the last record mirrored (nullopt: none yet).
  std::map<ShardId, std::optional<SequenceNumber>> positions() const;
  BridgeStats stats() const;

  class Impl;

 private:
  explicit StreamToTopic(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class TopicToStream {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TopicToStream>> Create(Stream& topic,
                                                                             StreamApi& destination,
                                                                             BridgeOptions options);
  ~TopicToStream();

  // One round: reads what each partition has (up to max_records each), puts it into the
  // destination, checkpoints. Returns how many records it handled: put, or found already put
  // at recovery (0: caught up).
  [[nodiscard]] absl::StatusOr<int64_t> Poll();

  // Per partition, the next offset to mirror.
  std::map<int, int64_t> positions() const;
  BridgeStats stats() const;

  class Impl;

 private:
  explicit TopicToStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rill::kafka

#endif  // RILL_KAFKA_BRIDGE_H_
