// StreamSubscriber: one consumer's push subscription to a whole stream, across resharding.
//
// It subscribes to every shard, starts a child only after all its parents have delivered their
// last event (so each partition key's records arrive in order), renews subscriptions whose
// lifetime passed from their continuation, and can be resumed later from positions() without
// gaps or duplicates.
//
// Example:
//   rill::StreamSubscriberOptions options;
//   options.consumer_name = "archiver";
//   options.initial_position = rill::StartingPosition::TrimHorizon();
//   options.resume_from = LoadPositions();          // empty the first time
//   auto subscriber = rill::StreamSubscriber::Create(*stream, options);
//   while (running) {
//     auto event = (*subscriber)->Next(absl::Milliseconds(100));
//     if (!event.ok()) break;
//     if (*event) Archive((*event)->shard_id, (*event)->event.records);
//     SavePositions((*subscriber)->positions());
//   }
//
// Thread safety: one thread at a time.
#ifndef RILL_CONSUME_STREAM_SUBSCRIBER_H_
#define RILL_CONSUME_STREAM_SUBSCRIBER_H_

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/stream/shard_iterator.h"
#include "rill/stream/subscription.h"

namespace rill {

class StreamApi;

struct StreamSubscriberOptions {
  // A consumer registered on the stream. Required.
  std::string consumer_name;
  // Where shards without a known parent start: TRIM_HORIZON, LATEST or AT_TIMESTAMP. Children of
  // shards this subscriber read start at TRIM_HORIZON. Default: LATEST.
  StartingPosition initial_position = StartingPosition::Latest();
  // Positions saved from positions(): a shard with a sequence number resumes after it; a shard
  // mapped to nullopt was finished and is not read again. Default: empty.
  std::map<ShardId, std::optional<SequenceNumber>> resume_from;
  // Options of each shard's subscription. Default: see SubscribeOptions.
  SubscribeOptions subscribe;
};

class StreamSubscriber {
 public:
  struct Event {
    ShardId shard_id;
    SubscribeToShardEvent event;
  };

  // A subscriber to every shard of `stream`. The stream is borrowed: it must outlive the
  // subscriber. Errors: kInvalidArgument for a sequence-number initial position;
  // kResourceNotFound for an unregistered consumer.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StreamSubscriber>> Create(
      StreamApi& stream, StreamSubscriberOptions options);

  ~StreamSubscriber();
  StreamSubscriber(const StreamSubscriber&) = delete;
  StreamSubscriber& operator=(const StreamSubscriber&) = delete;

  // The next event of any shard, waiting up to `timeout` on the stream's clock (as
  // Subscription::Next: real time with a SystemClock; a SimulatedClock is moved forward instead
  // of blocking); nullopt if none came.
  // Errors: a subscription's kResourceInUse (another subscriber of this consumer took a shard
  // over) or kResourceNotFound (the consumer was deregistered).
  [[nodiscard]] absl::StatusOr<std::optional<Event>> Next(absl::Duration timeout);

  // Every shard started so far: the continuation to resume after, or nullopt once finished.
  std::map<ShardId, std::optional<SequenceNumber>> positions() const;

 private:
  struct State;
  explicit StreamSubscriber(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace rill

#endif  // RILL_CONSUME_STREAM_SUBSCRIBER_H_
