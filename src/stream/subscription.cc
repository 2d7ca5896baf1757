// Enhanced fan-out: the consumer registry of a Stream and push subscriptions to its shards.
#include "rill/stream/subscription.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "base/sequence_layout.h"
#include "base/spin.h"
#include "base/strings.h"
#include "log/shard_log.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"
#include "rill/stream/stream.h"
#include "storage/stream_store.h"
#include "stream/rate_limiter.h"
#include "stream/stream_impl.h"
#include "stream/stream_shard.h"

namespace rill {

std::string_view ConsumerStatusName(ConsumerStatus status) {
  switch (status) {
    case ConsumerStatus::kCreating:
      return "CREATING";
    case ConsumerStatus::kDeleting:
      return "DELETING";
    case ConsumerStatus::kActive:
      return "ACTIVE";
  }
  return "UNKNOWN";
}

namespace internal {

// Why a subscription stopped.
enum class EndReason : int { kNone, kCancelled, kLifetime, kShardEnd, kTakenOver, kDeregistered };

// What a subscription shares with the consumer registry, so that a takeover or a
// deregistration can end it from another thread.
struct SubscriptionControl {
  std::atomic<int> end{static_cast<int>(EndReason::kNone)};
  Waker waker;  // Next() sleeps on it

  void End(EndReason reason) {
    int expected = static_cast<int>(EndReason::kNone);
    end.compare_exchange_strong(expected, static_cast<int>(reason));
    waker.Interrupt();
  }
  EndReason reason() const { return static_cast<EndReason>(end.load(std::memory_order_acquire)); }
};

struct ConsumerState {
  ConsumerDescription description;
  Mutex mu;
  struct Slot {
    int64_t subscribed_us = 0;
    std::weak_ptr<SubscriptionControl> current;
  };
  std::map<uint32_t, Slot> by_shard ABSL_GUARDED_BY(mu);
  bool deregistered ABSL_GUARDED_BY(mu) = false;
};

namespace {

// How often a waiting Next() looks again without being woken, on the stream's clock: throughput
// refills, heartbeats and lifetimes are judged on that clock, and no append announces them.
constexpr absl::Duration kLookInterval = absl::Milliseconds(50);

class SubscriptionImpl final : public Subscription {
 public:
  SubscriptionImpl(const StreamImpl* stream, StreamShard* shard, uint32_t stream_tag,
                   std::shared_ptr<ConsumerState> consumer,
                   std::shared_ptr<SubscriptionControl> control, uint64_t ordinal,
                   const SubscribeOptions& options, int64_t bytes_per_second, int64_t now_us)
      : stream_(stream),
        shard_(shard),
        stream_tag_(stream_tag),
        consumer_(std::move(consumer)),
        control_(std::move(control)),
        options_(options),
        clock_(stream->options().clock),
        position_(ordinal),
        started_us_(now_us),
        last_event_us_(now_us),
        throughput_(bytes_per_second, now_us) {
    shard_->log().AddWaker(&control_->waker);
  }

  ~SubscriptionImpl() override {
    shard_->log().RemoveWaker(&control_->waker);
    control_->End(EndReason::kCancelled);
  }

  absl::StatusOr<std::optional<SubscribeToShardEvent>> TryNext() override {
    return Poll(absl::ToUnixMicros(clock_->Now()));
  }

  // The timeout runs on the stream's clock (Clock::WaitFor): under a SimulatedClock a Next that
  // finds nothing moves the clock forward by `timeout` instead of blocking.
  absl::StatusOr<std::optional<SubscribeToShardEvent>> Next(absl::Duration timeout) override {
    const absl::Time deadline = clock_->Now() + timeout;
    bool spun = false;
    for (;;) {
      absl::StatusOr<std::optional<SubscribeToShardEvent>> event = TryNext();
      if (!event.ok() || event->has_value()) return event;
      // Ended after that look: look once more, which reports why (a takeover or a
      // deregistration is an error, not a clean end).
      if (!active()) return TryNext();
      const absl::Time now = clock_->Now();
      if (now >= deadline) return event;
      if (!spun) {
        spun = true;
        const bool found = SpinFor(options_.spin, [this] {
          if (Ready()) return true;
          std::this_thread::yield();
          return false;
        });
        if (found) continue;
      }
      // Sleep until a record is appended (the log wakes us), the shard closes, the subscription
      // is ended from outside, or the deadline, looking again every kLookInterval.
      clock_->WaitFor(std::min(deadline - now, kLookInterval), control_->waker);
    }
  }

  bool active() const override { return control_->reason() == EndReason::kNone; }
  void Cancel() override { control_->End(EndReason::kCancelled); }
  ShardId shard_id() const override { return shard_->id; }
  const std::string& consumer_name() const override { return consumer_->description.name; }
  std::optional<SequenceNumber> continuation_sequence_number() const override {
    return continuation_;
  }
  void AddWaker(Waker* waker) override { shard_->log().AddWaker(waker); }
  void RemoveWaker(Waker* waker) override { shard_->log().RemoveWaker(waker); }

 private:
  // Whether a look may find something: a record past the position, the shard's end, or the
  // subscription's end.
  bool Ready() const {
    return shard_->log().end_ordinal() > position_ || shard_->log().closed() ||
           control_->reason() != EndReason::kNone;
  }

  SequenceNumber Make(uint64_t counter) const {
    return MakeSequenceNumber(counter, shard_->id.index(), stream_tag_);
  }

  absl::StatusOr<std::optional<SubscribeToShardEvent>> Poll(int64_t now_us) {
    switch (control_->reason()) {
      case EndReason::kNone:
        break;
      case EndReason::kTakenOver:
        return ResourceInUseError(
            absl::StrFormat("a newer subscription of consumer %s took over shard %s",
                            consumer_->description.name, shard_->id.ToString()));
      case EndReason::kDeregistered:
        return ResourceNotFoundError(
            absl::StrFormat("consumer %s was deregistered", consumer_->description.name));
      default:
        return std::nullopt;
    }
    if (options_.lifetime > absl::ZeroDuration() &&
        now_us - started_us_ >= absl::ToInt64Microseconds(options_.lifetime)) {
      control_->End(EndReason::kLifetime);
      return std::nullopt;
    }
    ShardLog& log = shard_->log();
    // Closedness first: if it is closed, the end read next is final.
    const bool closed = log.closed();
    const uint64_t end = log.end_ordinal();

    if (position_ < end) {
      if (!throughput_.Allowed(now_us)) return std::nullopt;  // behind; catches up later
      // Trimming matters only when there is something to read: a caught-up subscriber that polls
      // in a loop does not touch the log's chunk list.
      position_ =
          std::max(position_,
                   shard_->storage.Trim(now_us - absl::ToInt64Microseconds(stream_->retention())));
      SubscribeToShardEvent event;
      // One allocation for the event's records (see StreamImpl::GetRecords).
      event.records.reserve(static_cast<size_t>(std::min<uint64_t>(
          static_cast<uint64_t>(options_.max_records_per_event), end - position_)));
      const ShardRead read = ReadShard(*shard_, stream_tag_, position_, end,
                                       static_cast<size_t>(options_.max_records_per_event),
                                       kMaxGetRecordsBytes, now_us, &event.records, &event.storage);
      if (!read.status.ok()) return AsKinesisError(read.status);
      position_ = std::max(position_, read.next);
      event.millis_behind_latest = read.millis_behind;
      throughput_.Charge(read.bytes_with_keys, now_us);
      if (!event.records.empty()) {
        continuation_ = event.records.back().sequence_number;
      } else {
        continuation_ = PositionContinuation(end);
      }
      event.continuation_sequence_number = continuation_;
      last_event_us_ = now_us;
      return event;
    }
    if (closed) {
      // Read to the end of a closed shard: the last event names the children.
      SubscribeToShardEvent event;
      event.child_shards = shard_->children;
      continuation_.reset();
      control_->End(EndReason::kShardEnd);
      return event;
    }
    if (options_.heartbeat_interval > absl::ZeroDuration() &&
        now_us - last_event_us_ >= absl::ToInt64Microseconds(options_.heartbeat_interval)) {
      SubscribeToShardEvent event;
      if (!continuation_) continuation_ = PositionContinuation(end);
      event.continuation_sequence_number = continuation_;
      last_event_us_ = now_us;
      return event;
    }
    return std::nullopt;
  }

  // A sequence number just below the next record to deliver, for continuations before any record
  // was delivered: AFTER_SEQUENCE_NUMBER of it starts exactly there.
  SequenceNumber PositionContinuation(uint64_t end) const {
    if (continuation_) return *continuation_;
    if (position_ < end) {
      ShardLog::Cursor cursor(shard_->log(), position_, end);
      if (cursor.Valid()) return Make(cursor.Get().counter - 1);
    }
    return Make(shard_->log().next_counter() - 1);
  }

  const internal::StreamImpl* const stream_;
  StreamShard* const shard_;
  const uint32_t stream_tag_;
  const std::shared_ptr<ConsumerState> consumer_;
  const std::shared_ptr<SubscriptionControl> control_;
  const SubscribeOptions options_;
  const std::shared_ptr<Clock> clock_;
  uint64_t position_;
  const int64_t started_us_;
  int64_t last_event_us_;
  std::optional<SequenceNumber> continuation_;
  ReadThroughput throughput_;
};

}  // namespace
}  // namespace internal

absl::StatusOr<ConsumerDescription> internal::StreamImpl::RegisterStreamConsumer(
    std::string_view name) {
  if (!internal::IsKinesisName(name)) {
    return InvalidArgumentError("consumer name must be 1 to 128 characters of [a-zA-Z0-9_.-]");
  }
  const absl::Time now = options_.clock->Now();
  auto state = std::make_shared<internal::ConsumerState>();
  {
    internal::MutexLock lock(&consumers_mu_);
    for (const auto& c : consumers_) {
      if (c->description.name == name) {
        return ResourceInUseError(absl::StrFormat("consumer %s is already registered on stream %s",
                                                  absl::string_view(name.data(), name.size()),
                                                  options_.name));
      }
    }
    if (static_cast<int>(consumers_.size()) >= options_.enhanced_fan_out.max_consumers) {
      return LimitExceededError(
          absl::StrFormat("stream %s already has %d consumers", options_.name, consumers_.size()));
    }
    state->description = MakeConsumerDescription(name, now);
    consumers_.push_back(state);
  }
  if (absl::Status s = PersistMeta(); !s.ok()) return s;
  return state->description;
}

void internal::StreamImpl::RestoreConsumers(const internal::StreamMeta& meta) {
  internal::MutexLock lock(&consumers_mu_);
  for (const internal::ConsumerMeta& c : meta.consumers) {
    auto state = std::make_shared<internal::ConsumerState>();
    state->description = MakeConsumerDescription(c.name, absl::FromUnixNanos(c.created_ns));
    consumers_.push_back(std::move(state));
  }
}

void internal::StreamImpl::AppendConsumers(internal::StreamMeta* meta) const {
  internal::MutexLock lock(&consumers_mu_);
  for (const auto& c : consumers_) {
    meta->consumers.push_back(
        {c->description.name, absl::ToUnixNanos(c->description.creation_time)});
  }
}

ConsumerDescription internal::StreamImpl::MakeConsumerDescription(std::string_view name,
                                                                  absl::Time created) const {
  ConsumerDescription d;
  d.name = std::string(name);
  d.status = ConsumerStatus::kActive;
  d.creation_time = created;
  d.id =
      absl::StrFormat("arn:aws:kinesis:local:000000000000:stream/%s/consumer/%s:%d", options_.name,
                      absl::string_view(name.data(), name.size()), absl::ToUnixSeconds(created));
  return d;
}

absl::Status internal::StreamImpl::DeregisterStreamConsumer(std::string_view name) {
  std::shared_ptr<internal::ConsumerState> state;
  {
    internal::MutexLock lock(&consumers_mu_);
    auto it = std::find_if(consumers_.begin(), consumers_.end(),
                           [&](const auto& c) { return c->description.name == name; });
    if (it == consumers_.end()) {
      return ResourceNotFoundError(absl::StrFormat("consumer %s is not registered on stream %s",
                                                   absl::string_view(name.data(), name.size()),
                                                   options_.name));
    }
    state = *it;
    consumers_.erase(it);
  }
  {
    internal::MutexLock<internal::Mutex> lock(&state->mu);
    state->deregistered = true;
    for (auto& [shard, slot] : state->by_shard) {
      if (auto control = slot.current.lock()) control->End(internal::EndReason::kDeregistered);
    }
  }
  return PersistMeta();
}

absl::StatusOr<ConsumerDescription> internal::StreamImpl::DescribeStreamConsumer(
    std::string_view name) const {
  internal::MutexLock lock(&consumers_mu_);
  for (const auto& c : consumers_) {
    if (c->description.name == name) return c->description;
  }
  return ResourceNotFoundError(absl::StrFormat("consumer %s is not registered on stream %s",
                                               absl::string_view(name.data(), name.size()),
                                               options_.name));
}

std::vector<ConsumerDescription> internal::StreamImpl::ListStreamConsumers() const {
  internal::MutexLock lock(&consumers_mu_);
  std::vector<ConsumerDescription> out;
  for (const auto& c : consumers_) out.push_back(c->description);
  return out;
}

absl::StatusOr<std::unique_ptr<Subscription>> internal::StreamImpl::SubscribeToShard(
    std::string_view consumer_name, ShardId shard_id, const StartingPosition& position,
    const SubscribeOptions& options) {
  if (options.max_records_per_event < 1 || options.max_records_per_event > kMaxGetRecordsLimit ||
      options.lifetime < absl::ZeroDuration() ||
      options.heartbeat_interval < absl::ZeroDuration() || options.spin < absl::ZeroDuration()) {
    return InvalidArgumentError(
        "SubscribeOptions: max_records_per_event must be within [1, 10000], durations >= 0");
  }
  std::shared_ptr<internal::ConsumerState> consumer;
  {
    internal::MutexLock lock(&consumers_mu_);
    for (const auto& c : consumers_) {
      if (c->description.name == consumer_name) consumer = c;
    }
  }
  if (consumer == nullptr) {
    return ResourceNotFoundError(absl::StrFormat(
        "consumer %s is not registered on stream %s",
        absl::string_view(consumer_name.data(), consumer_name.size()), options_.name));
  }
  // The position, by GetShardIterator's rules (not counted against its rate limit).
  absl::StatusOr<ShardIterator> it = GetShardIteratorImpl(shard_id.index(), position, false);
  if (!it.ok()) return it.status();
  const int64_t now_us = absl::ToUnixMicros(options_.clock->Now());
  internal::StreamShard* shard = FindShard(shard_id.index());

  auto control = std::make_shared<internal::SubscriptionControl>();
  {
    internal::MutexLock<internal::Mutex> lock(&consumer->mu);
    if (consumer->deregistered) {
      return ResourceNotFoundError("the consumer was deregistered");
    }
    internal::ConsumerState::Slot& slot = consumer->by_shard[shard_id.index()];
    if (slot.subscribed_us != 0 &&
        now_us - slot.subscribed_us <
            absl::ToInt64Microseconds(options_.enhanced_fan_out.resubscribe_interval)) {
      return ResourceInUseError(
          absl::StrFormat("consumer %s subscribed to shard %s less than %s ago",
                          consumer->description.name, shard_id.ToString(),
                          absl::FormatDuration(options_.enhanced_fan_out.resubscribe_interval)));
    }
    if (auto old = slot.current.lock()) old->End(internal::EndReason::kTakenOver);
    slot.subscribed_us = now_us;
    slot.current = control;
  }
  return std::unique_ptr<Subscription>(new internal::SubscriptionImpl(
      this, shard, stream_tag_, consumer, control, it->ordinal_, options,
      options_.enhanced_fan_out.bytes_per_second_per_shard, now_us));
}

}  // namespace rill
