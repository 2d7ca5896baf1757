// Time as rill sees it: every component reads the time from an injected rill::Clock, never from the
// system directly, so that a SimulatedClock makes retention, iterator expiry, throttling and
// windows deterministic.
//
// Example:
//   auto clock = std::make_shared<rill::SimulatedClock>();
//   rill::StreamOptions options{.name = "events", .clock = clock};
//   ...
//   clock->Advance(absl::Hours(25));  // Records put before now fall out of a 24 h retention.
//
// Thread safety: Clock::Now() is thread-safe in every implementation here; SimulatedClock's
// Advance() and Set() may be called from any thread while others call Now().
#ifndef RILL_BASE_CLOCK_H_
#define RILL_BASE_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/time/time.h"

namespace rill {

class Clock {
 public:
  virtual ~Clock() = default;

  // The current time. Implementations must be thread-safe and cheap (it is read once per put).
  virtual absl::Time Now() const = 0;
  // Waits `d` as this clock counts time: what rill's components do when they back off (a
  // StreamSink retrying a throttled put). The default sleeps for real; SimulatedClock moves
  // itself forward instead. Thread-safe.
  virtual void SleepFor(absl::Duration d);
};

// The system's real-time clock (absl::Now()).
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override;

  // A process-wide instance, the default clock of every options struct.
  static std::shared_ptr<Clock> Default();
};

// A clock that moves only when told to. Now() never reads the system clock.
class SimulatedClock final : public Clock {
 public:
  // The default start, 2024-01-01T00:00:00Z: far enough from the epoch that "an hour ago" is a
  // valid time, and the same on every run.
  static absl::Time DefaultStart() { return absl::FromUnixSeconds(1704067200); }

  explicit SimulatedClock(absl::Time start = DefaultStart()) : now_ns_(absl::ToUnixNanos(start)) {}

  absl::Time Now() const override {
    return absl::FromUnixNanos(now_ns_.load(std::memory_order_acquire));
  }

  // Moves the clock forward by `d`. A negative `d` is ignored: use Set() to move backwards.
  void Advance(absl::Duration d) {
    if (d <= absl::ZeroDuration()) return;
    now_ns_.fetch_add(absl::ToInt64Nanoseconds(d), std::memory_order_acq_rel);
  }

  // Sets the clock to `t`, forwards or backwards. (Records already stored keep their arrival
  // times; a shard never stamps a record earlier than the one before it.)
  void Set(absl::Time t) { now_ns_.store(absl::ToUnixNanos(t), std::memory_order_release); }
  // A simulated wait costs no real time: the clock moves forward by `d` (as Kafka's
  // MockTime.sleep does), so a component that backs off stays deterministic and instant.
  void SleepFor(absl::Duration d) override { Advance(d); }

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace rill

#endif  // RILL_BASE_CLOCK_H_
