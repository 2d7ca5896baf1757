// Time as rill sees it: every component reads the time from an injected rill::Clock, never from the
// system directly, so that a SimulatedClock makes retention, iterator expiry, throttling and
// windows deterministic. Every wait goes through the clock too (SleepFor, WaitFor, WaitUntil), so
// that under a SimulatedClock nothing in rill sleeps in real time: a foreground wait moves the
// simulated time forward, a background thread waits until someone advances it.
//
// Example:
//   auto clock = std::make_shared<rill::SimulatedClock>();
//   rill::StreamOptions options{.name = "events", .clock = clock};
//   ...
//   clock->Advance(absl::Hours(25));  // Records put before now fall out of a 24 h retention.
//
// Thread safety: every method of every implementation here is thread-safe; SimulatedClock's
// Advance() and Set() may be called from any thread while others call Now() or wait.
#ifndef RILL_BASE_CLOCK_H_
#define RILL_BASE_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "rill/base/internal/mutex.h"

namespace rill {

namespace internal {
class Waker;  // rill/base/internal/waker.h
}

class Clock {
 public:
  virtual ~Clock() = default;

  // The current time. Implementations must be thread-safe and cheap (it is read once per put).
  virtual absl::Time Now() const = 0;
  // Waits `d` as this clock counts time: what rill's components do when they back off (a
  // StreamSink retrying a throttled put). The default sleeps for real; SimulatedClock moves
  // itself forward instead. Thread-safe.
  virtual void SleepFor(absl::Duration d);

  // The two waits below end early when `waker` is woken: by an append to a log it is registered
  // with, or by Wake() / Interrupt() (a Subscribe, a Stop, a Put for a producer's worker). A
  // wake-up that came while nobody waited ends the next wait at once, as woken; each wake-up is
  // reported once. One thread at a time waits on a given waker. Both are thread-safe.
  //
  // WaitFor: for a call that waits on the application's thread (Subscription::Next(timeout),
  // StreamSubscriber::Next(timeout), Producer::Flush waiting for a retry). Waits until `waker` is
  // woken or `d` has passed on this clock; returns true if woken. The default (and SystemClock)
  // blocks for up to `d` of real time. SimulatedClock never blocks: it returns true at once if a
  // wake-up is pending, else moves itself forward by `d` (as SleepFor) and returns false; a
  // single-threaded test that calls Next(timeout) is thus instant and deterministic, and the
  // simulated time passes.
  virtual bool WaitFor(absl::Duration d, internal::Waker& waker);

  // WaitUntil: for a thread rill runs in the background (a Start()ed consumer-group worker, a
  // producer's worker, Dispatcher::Run). Blocks until this clock reads `deadline` or later, or
  // `waker` is woken; returns true if woken, false once the clock has reached the deadline (at
  // once if it already has). InfiniteFuture() waits for the waker alone. The default (and
  // SystemClock) waits in real time for the clock to get there. SimulatedClock never times out on
  // real time: the thread sleeps until Advance() or Set() moves the clock to `deadline` or beyond
  // (or the waker is woken), so a background thread takes its steps exactly when a test moves the
  // time.
  virtual bool WaitUntil(absl::Time deadline, internal::Waker& waker);
};

// The system's real-time clock (absl::Now()).
class SystemClock final : public Clock {
 public:
  absl::Time Now() const override;

  // A process-wide instance, the default clock of every options struct.
  static std::shared_ptr<Clock> Default();
};

// A clock that moves only when told to. Now() never reads the system clock, and no wait on it
// ever ends because real time passed (see Clock::WaitFor and Clock::WaitUntil).
class SimulatedClock final : public Clock {
 public:
  // The default start, 2024-01-01T00:00:00Z: far enough from the epoch that "an hour ago" is a
  // valid time, and the same on every run.
  static absl::Time DefaultStart() { return absl::FromUnixSeconds(1704067200); }

  explicit SimulatedClock(absl::Time start = DefaultStart()) : now_ns_(absl::ToUnixNanos(start)) {}

  // Lock-free: it is read once per put.
  absl::Time Now() const override {
    return absl::FromUnixNanos(now_ns_.load(std::memory_order_acquire));
  }

  // Moves the clock forward by `d`, then lets every thread in WaitUntil look at the new time. A
  // negative `d` is ignored: use Set() to move backwards.
  void Advance(absl::Duration d) ABSL_LOCKS_EXCLUDED(waiters_mu_);

  // Sets the clock to `t`, forwards or backwards, then lets every thread in WaitUntil look at
  // the new time. (Records already stored keep their arrival times; a shard never stamps a
  // record earlier than the one before it.)
  void Set(absl::Time t) ABSL_LOCKS_EXCLUDED(waiters_mu_);

  // A simulated wait costs no real time: the clock moves forward by `d` (as Kafka's
  // MockTime.sleep does), so a component that backs off stays deterministic and instant.
  void SleepFor(absl::Duration d) override { Advance(d); }

  // Never blocks: true at once if a wake-up is pending, else Advance(d) and false.
  bool WaitFor(absl::Duration d, internal::Waker& waker) override;

  // Blocks until Advance() or Set() reach `deadline`, or the waker is woken.
  bool WaitUntil(absl::Time deadline, internal::Waker& waker) override
      ABSL_LOCKS_EXCLUDED(waiters_mu_);

 private:
  // Makes every waiting thread look at the time again (after it changed).
  void NudgeWaiters() ABSL_LOCKS_EXCLUDED(waiters_mu_);

  std::atomic<int64_t> now_ns_;
  // The wakers of threads in WaitUntil. A waiter registers before it first reads the time and
  // Advance nudges under each waker's lock after it changed the time, so no move is missed.
  internal::Mutex waiters_mu_;
  std::vector<internal::Waker*> waiters_ ABSL_GUARDED_BY(waiters_mu_);
};

}  // namespace rill

#endif  // RILL_BASE_CLOCK_H_
