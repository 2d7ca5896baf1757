#include "rill/consume/stream_subscriber.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_format.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/internal/waker.h"
#include "rill/stream/stream_api.h"

namespace rill {
namespace {

// On the stream's clock. How often Next() lists the stream's shards to find new ones (a shard's
// end also triggers a listing); and how often a waiting Next() looks again without being woken
// (subscribing again after a refusal, a renewal, a heartbeat come due on the clock, unannounced).
constexpr absl::Duration kRefreshInterval = absl::Milliseconds(200);
constexpr absl::Duration kLookInterval = absl::Milliseconds(20);

}  // namespace

struct StreamSubscriber::State {
  enum class Phase { kWaiting, kActive, kFinished };
  struct Shard {
    Phase phase = Phase::kWaiting;
    std::vector<ShardId> parents;
    std::optional<SequenceNumber> continuation;  // resume after it
    bool from_parent = false;  // a child of a shard we read: starts at TRIM_HORIZON
    std::unique_ptr<Subscription> subscription;
    // On the stream's clock, which is what the resubscribe interval is measured on: a simulation
    // retries as soon as its clock has moved on, not after real time passed.
    absl::Time retry_at = absl::InfinitePast();
  };

  StreamApi* stream;
  StreamSubscriberOptions options;
  std::map<ShardId, Shard> shards;
  internal::Waker waker;  // registered with every active subscription
  size_t next_index = 0;  // round-robin start
  absl::Time next_refresh = absl::InfinitePast();

  ~State() {
    for (auto& [id, s] : shards) {
      if (s.subscription) s.subscription->RemoveWaker(&waker);
    }
  }

  // Learns the stream's shards: new ones wait for their parents. A listing that fails (a remote
  // stream) is reported; the shards already known keep going.
  absl::Status Refresh() {
    absl::StatusOr<std::vector<ShardDescription>> listed = stream->ListShards();
    if (!listed.ok()) return listed.status();
    for (const ShardDescription& d : *listed) {
      if (shards.count(d.shard_id) != 0) continue;
      Shard s;
      for (const std::optional<ShardId>& p : {d.parent_shard_id, d.adjacent_parent_shard_id}) {
        if (p) s.parents.push_back(*p);
      }
      auto resumed = options.resume_from.find(d.shard_id);
      if (resumed != options.resume_from.end()) {
        if (!resumed->second) s.phase = Phase::kFinished;
        s.continuation = resumed->second;
      }
      shards.emplace(d.shard_id, std::move(s));
    }
    // A child of a shard known to this subscriber starts at its beginning.
    for (auto& [id, s] : shards) {
      for (const ShardId& p : s.parents) {
        if (shards.count(p) != 0) s.from_parent = true;
      }
    }
    return absl::OkStatus();
  }

  bool ParentsFinished(const Shard& s) const {
    for (const ShardId& p : s.parents) {
      auto it = shards.find(p);
      if (it != shards.end() && it->second.phase != Phase::kFinished) return false;
    }
    return true;
  }

  absl::Status StartReady() {
    const absl::Time now = stream->clock()->Now();
    for (auto& [id, s] : shards) {
      if (s.phase == Phase::kFinished || s.subscription || now < s.retry_at) continue;
      if (!ParentsFinished(s)) continue;
      StartingPosition position = options.initial_position;
      if (s.continuation) {
        position = StartingPosition::AfterSequenceNumber(*s.continuation);
      } else if (s.from_parent) {
        position = StartingPosition::TrimHorizon();
      }
      absl::StatusOr<std::unique_ptr<Subscription>> sub =
          stream->SubscribeToShard(options.consumer_name, id, position, options.subscribe);
      if (!sub.ok()) {
        const ErrorCode code = GetErrorCode(sub.status());
        if (code == ErrorCode::kResourceInUse) {
          // Subscribed too recently (the resubscribe interval): try again shortly.
          s.retry_at = now + absl::Milliseconds(100);
          continue;
        }
        if (code == ErrorCode::kResourceNotFound &&
            stream->DescribeStreamConsumer(options.consumer_name).ok()) {
          s.phase = Phase::kFinished;  // the shard expired meanwhile: nothing left to read
          continue;
        }
        return sub.status();
      }
      s.subscription = std::move(*sub);
      s.subscription->AddWaker(&waker);
      s.phase = Phase::kActive;
    }
    return absl::OkStatus();
  }

  // Takes an event of shard `id`'s subscription if it has one.
  absl::StatusOr<std::optional<Event>> TryShard(ShardId id, Shard& s) {
    absl::StatusOr<std::optional<SubscribeToShardEvent>> event = s.subscription->TryNext();
    if (!event.ok()) return event.status();
    if (event->has_value()) {
      SubscribeToShardEvent& e = **event;
      if (e.continuation_sequence_number) {
        s.continuation = e.continuation_sequence_number;
      } else {
        // The shard's end: its children may start once every parent is done.
        s.phase = Phase::kFinished;
        s.continuation.reset();
        Drop(s);
        next_refresh = absl::InfinitePast();
      }
      return Event{id, std::move(e)};
    }
    if (!s.subscription->active()) {
      // Lifetime over (or cancelled): renew from the continuation.
      Drop(s);
      if (s.phase != Phase::kFinished) s.phase = Phase::kWaiting;
    }
    return std::nullopt;
  }

  void Drop(Shard& s) {
    if (!s.subscription) return;
    s.subscription->RemoveWaker(&waker);
    s.subscription.reset();
  }
};

absl::StatusOr<std::unique_ptr<StreamSubscriber>> StreamSubscriber::Create(
    StreamApi& stream, StreamSubscriberOptions options) {
  const ShardIteratorType type = options.initial_position.type;
  if (type == ShardIteratorType::kAtSequenceNumber ||
      type == ShardIteratorType::kAfterSequenceNumber) {
    return InvalidArgumentError(
        "initial_position must be TRIM_HORIZON, LATEST or AT_TIMESTAMP: use resume_from for "
        "sequence numbers");
  }
  if (absl::StatusOr<ConsumerDescription> c = stream.DescribeStreamConsumer(options.consumer_name);
      !c.ok()) {
    return c.status();
  }
  auto state = std::make_unique<State>();
  state->stream = &stream;
  state->options = std::move(options);
  if (absl::Status listed = state->Refresh(); !listed.ok()) return listed;
  return std::unique_ptr<StreamSubscriber>(new StreamSubscriber(std::move(state)));
}

StreamSubscriber::StreamSubscriber(std::unique_ptr<State> state) : state_(std::move(state)) {}

StreamSubscriber::~StreamSubscriber() = default;

absl::StatusOr<std::optional<StreamSubscriber::Event>> StreamSubscriber::Next(
    absl::Duration timeout) {
  State& s = *state_;
  Clock& clock = *s.stream->clock();
  const absl::Time deadline = clock.Now() + timeout;
  for (;;) {
    const absl::Time now = clock.Now();
    // Also when the clock was set back behind the last listing.
    if (now >= s.next_refresh || now < s.next_refresh - kRefreshInterval) {
      s.next_refresh = now + kRefreshInterval;
      if (absl::Status listed = s.Refresh(); !listed.ok()) return listed;
    }
    if (absl::Status st = s.StartReady(); !st.ok()) return st;
    // Round-robin over the active shards, so that a busy shard cannot starve the others.
    std::vector<ShardId> active;
    for (const auto& [id, shard] : s.shards) {
      if (shard.subscription) active.push_back(id);
    }
    for (size_t k = 0; k < active.size(); ++k) {
      const ShardId id = active[(s.next_index + k) % active.size()];
      absl::StatusOr<std::optional<Event>> event = s.TryShard(id, s.shards.at(id));
      if (!event.ok()) return event.status();
      if (event->has_value()) {
        s.next_index = (s.next_index + k + 1) % std::max<size_t>(active.size(), 1);
        return event;
      }
    }
    const absl::Time after = clock.Now();
    if (after >= deadline) return std::nullopt;
    // Sleep until a subscribed shard gets a record or ends, or the deadline (Clock::WaitFor: a
    // SimulatedClock moves forward instead), looking again every kLookInterval.
    clock.WaitFor(std::min(deadline - after, kLookInterval), s.waker);
  }
}

std::map<ShardId, std::optional<SequenceNumber>> StreamSubscriber::positions() const {
  std::map<ShardId, std::optional<SequenceNumber>> out;
  for (const auto& [id, shard] : state_->shards) {
    if (shard.phase == State::Phase::kFinished) {
      out[id] = std::nullopt;
    } else if (shard.continuation) {
      out[id] = shard.continuation;
    }
  }
  return out;
}

}  // namespace rill
