// Waker: what a thread waiting for new records (a push subscription, a dispatcher, a producer's
// worker) sleeps on, and what the code that makes records available wakes.
//
// A waker may watch several logs; a log notes every append on its wakers and pays for a wake-up
// only while a waker is actually asleep: the append path reads one atomic when no waker is
// registered, and MarkPending() plus Wake() take no lock while nobody sleeps.
//
// No wake-up is lost: a writer marks the waker pending, then looks whether it sleeps; a waiter
// marks itself asleep, then looks whether it is pending, all with sequentially consistent
// operations. One of the two always sees the other.
//
// Threads do not wait on a waker directly: they wait through their Clock (Clock::WaitFor,
// Clock::WaitUntil in rill/base/clock.h), which decides what a timeout means (real time for
// SystemClock, the clock's own time for SimulatedClock). The waiting side below is for Clock
// implementations.
//
// Thread safety: MarkPending, Wake, Interrupt and Nudge may be called from any thread at any
// time. One thread at a time waits on a waker (TakeWakeup, WaitFor, WaitWhile).
#ifndef RILL_BASE_INTERNAL_WAKER_H_
#define RILL_BASE_INTERNAL_WAKER_H_

#include <algorithm>
#include <atomic>
#include <chrono>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "rill/base/internal/mutex.h"

namespace rill::internal {

class Waker {
 public:
  Waker() = default;
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

  // ---- The waking side ----

  // Writers: MarkPending(), then Wake(). Both sides use sequentially consistent operations
  // (store, then load of the other's flag), so one of them always sees the other.
  void MarkPending() { pending_.store(true, std::memory_order_seq_cst); }
  void Wake() ABSL_LOCKS_EXCLUDED(mu_) {
    if (!sleeping_.load(std::memory_order_seq_cst)) return;
    MutexLock<Mutex> lock(&mu_);
    signaled_ = true;
    cv_.SignalAll();
  }

  // Wakes the waiter whether or not it is asleep now, and makes its next wait return at once if
  // it is not (for shutdown, cancellation and new work handed to a waiting thread).
  void Interrupt() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock<Mutex> lock(&mu_);
    signaled_ = true;
    pending_.store(true, std::memory_order_relaxed);
    cv_.SignalAll();
  }

  // Makes a waiter in WaitWhile() look at its condition again; it is not a wake-up (the wait
  // does not report one). Taken under the waker's lock, so that a waiter that has just found its
  // condition true is already asleep, and hears it.
  void Nudge() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock<Mutex> lock(&mu_);
    cv_.SignalAll();
  }

  // ---- The waiting side (Clock implementations) ----

  // Consumes a wake-up that came since the last wait ended (an append, Wake, Interrupt): true
  // if there was one. Never blocks.
  bool TakeWakeup() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock<Mutex> lock(&mu_);
    const bool woken = pending_.exchange(false, std::memory_order_acq_rel) || signaled_;
    signaled_ = false;
    return woken;
  }

  // Blocks until woken or `timeout` of real time has passed; returns whether it was woken (at
  // once if a wake-up came since the last wait ended). A zero or negative timeout only looks.
  bool WaitFor(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    // Beyond a century is "for ever", and keeps the steady clock's arithmetic in range.
    const auto deadline = std::chrono::steady_clock::now() +
                          absl::ToChronoNanoseconds(std::min(timeout, absl::Hours(24 * 365 * 100)));
    return Wait([] { return true; }, &deadline);
  }

  // Blocks until woken or `keep_waiting()` returns false; returns whether it was woken (at once
  // if a wake-up came since the last wait ended). `keep_waiting` is called under the waker's
  // lock, first and after every Nudge() (and spurious wake-up): it must be cheap and must not
  // take a lock that a caller of Nudge, Wake or Interrupt may hold.
  template <typename KeepWaiting>
  bool WaitWhile(KeepWaiting keep_waiting) ABSL_LOCKS_EXCLUDED(mu_) {
    return Wait(keep_waiting, nullptr);
  }

 private:
  // `deadline`: real time, or null for none.
  template <typename KeepWaiting>
  bool Wait(KeepWaiting keep_waiting, const std::chrono::steady_clock::time_point* deadline)
      ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock<Mutex> lock(&mu_);
    sleeping_.store(true, std::memory_order_seq_cst);
    bool woken = pending_.exchange(false, std::memory_order_seq_cst) || signaled_;
    while (!woken && keep_waiting()) {
      if (deadline == nullptr) {
        cv_.Wait(&mu_);
      } else if (!cv_.WaitUntil(&mu_, *deadline)) {
        woken = signaled_;  // a wake-up that raced the timeout still counts
        break;
      }
      woken = signaled_;
    }
    signaled_ = false;
    // Acquire: a wake-up consumed here also makes what its writer published visible.
    pending_.exchange(false, std::memory_order_acq_rel);
    sleeping_.store(false, std::memory_order_relaxed);
    return woken;
  }

  Mutex mu_;
  CondVar cv_;
  bool signaled_ ABSL_GUARDED_BY(mu_) = false;  // Wake or Interrupt since the wait began
  std::atomic<bool> pending_{false};            // a wake-up not consumed by a wait yet
  std::atomic<bool> sleeping_{false};           // a thread is in a wait (Wake must signal)
};

}  // namespace rill::internal

#endif  // RILL_BASE_INTERNAL_WAKER_H_
