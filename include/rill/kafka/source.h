// FromKafka: a pipeline source reading a Kafka topic (a rill::kafka::Stream) as a member of a
// Kafka consumer group, with offsets committed only together with the pipeline's snapshots.
//
//   auto input = rill::kafka::Stream::Open(input_options);          // the topic
//   rill::kafka::SourceOptions source;
//   source.group = "purchases-per-level";                            // Kafka's group.id
//   auto from = rill::kafka::FromKafka<Purchase>(**input, source, ParsePurchase);
//   if (!from.ok()) return from.status();
//   auto p = rill::Pipeline<Purchase>::From(std::move(*from), clock)
//                .KeyBy(...).Window(...).Aggregate(...)
//                .To(rill::StreamSink(**output, "per-level", Encode));  // output: another topic
//
// What it is: a rill::ConsumerGroupSource (rill/process/source.h) over a ConsumerGroup on the
// Kafka stream, whose worker is a member of the Kafka consumer group (cooperative-sticky
// assignment; see Stream::MakeGroupWorker). So:
//   - each partition is a source shard, with its own watermark (the pipeline tracks them);
//   - Commit() (after the application saved Snapshot()) commits every partition's offset up to
//     the last record the pipeline took, and nothing is committed otherwise;
//   - Restore(snapshot) skips whatever the snapshot covers, so input read again after a crash
//     (from older committed offsets) is not counted twice;
//   - with a StreamSink on another Kafka topic as the sink (deterministic record ids, read back
//     on restore), the results after a crash and restart are exactly those of an uninterrupted
//     run, with no duplicates.
// A restarted pipeline's member gets its partitions once the crashed member's Kafka session has
// expired (failover_time), as with any Kafka consumer.
//
// Thread safety: a source is driven by one pipeline, from one thread. The stream must outlive it.
#ifndef RILL_KAFKA_SOURCE_H_
#define RILL_KAFKA_SOURCE_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/kafka/stream.h"
#include "rill/process/source.h"

namespace rill::kafka {

struct SourceOptions {
  // The Kafka consumer group (group.id). Required: 1-128 characters of [a-zA-Z0-9_.-].
  std::string group;
  // This member's id within the pipeline's process (Kafka's client.id is "rill-<id>").
  // Default: "pipeline".
  std::string worker_id = "pipeline";
  // Where partitions without a committed offset start. Default: TRIM_HORIZON (the whole topic).
  StartingPosition initial_position = StartingPosition::TrimHorizon();
  // Kafka's session timeout: how long a crashed member keeps its partitions. Default: 10 s.
  absl::Duration failover_time = absl::Seconds(10);
  // Records per batch (the most one partition advances within one watermark step). Default:
  // 1,000.
  int max_records = 1000;
};

template <typename T, typename Decode>
class KafkaSource final : public Source<T> {
 public:
  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;

  static absl::StatusOr<std::unique_ptr<KafkaSource>> Create(Stream& stream, SourceOptions options,
                                                             Decode decode) {
    std::unique_ptr<KafkaSource> source(new KafkaSource());
    ConsumerGroupOptions group;
    group.application_name = options.group;
    group.initial_position = options.initial_position;
    group.failover_time = options.failover_time;
    group.max_records = options.max_records;
    absl::StatusOr<std::unique_ptr<ConsumerGroup>> made =
        ConsumerGroup::Create(stream, source->unused_store_, group);
    if (!made.ok()) return made.status();
    source->group_ = std::move(*made);
    source->inner_ = std::make_unique<ConsumerGroupSource<T, Decode>>(
        *source->group_, std::move(options.worker_id), std::move(decode));
    return source;
  }

  absl::StatusOr<std::optional<SourceBatch<T>>> Next() override { return inner_->Next(); }
  bool caught_up() const override { return inner_->caught_up(); }
  std::vector<ShardId> known_shards() const override { return inner_->known_shards(); }
  void SavePosition(std::string* out) const override { inner_->SavePosition(out); }
  absl::Status RestorePosition(std::string_view saved) override {
    return inner_->RestorePosition(saved);
  }
  absl::Status Commit() override { return inner_->Commit(); }
  uint64_t undecodable_records() const override { return inner_->undecodable_records(); }

 private:
  KafkaSource() = default;

  // Kafka keeps the group's checkpoints (committed offsets); a ConsumerGroup needs a store to be
  // made, and a Kafka group never uses it.
  InMemoryCheckpointStore unused_store_;
  std::unique_ptr<ConsumerGroup> group_;
  std::unique_ptr<ConsumerGroupSource<T, Decode>> inner_;  // destroyed first: it uses group_
};

// A source reading `stream` as a member of options.group; see KafkaSource. Errors: those of
// ConsumerGroup::Create (kInvalidArgument for a bad group name or max_records).
template <typename T, typename Decode>
absl::StatusOr<std::unique_ptr<Source<T>>> FromKafka(Stream& stream, SourceOptions options,
                                                     Decode decode) {
  absl::StatusOr<std::unique_ptr<KafkaSource<T, Decode>>> source =
      KafkaSource<T, Decode>::Create(stream, std::move(options), std::move(decode));
  if (!source.ok()) return source.status();
  return std::unique_ptr<Source<T>>(std::move(*source));
}

}  // namespace rill::kafka

#endif  // RILL_KAFKA_SOURCE_H_
