#include "rill/base/clock.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "rill/base/internal/waker.h"

namespace rill {

using internal::MutexLock;

absl::Time SystemClock::Now() const { return absl::Now(); }

std::shared_ptr<Clock> SystemClock::Default() {
  // Leaked on purpose: it must outlive every stream, including those destroyed during exit.
  static auto* const clock = new std::shared_ptr<Clock>(std::make_shared<SystemClock>());
  return *clock;
}

// The defaults are real time on purpose: they are the system clock's waits. SimulatedClock
// overrides them.
void Clock::SleepFor(absl::Duration d) { absl::SleepFor(d); }

bool Clock::WaitFor(absl::Duration d, internal::Waker& waker) { return waker.WaitFor(d); }

bool Clock::WaitUntil(absl::Time deadline, internal::Waker& waker) {
  // In slices until this clock, not the steady clock the real wait runs on, reads the deadline:
  // the two may drift apart.
  for (;;) {
    const absl::Time now = Now();
    if (now >= deadline) return waker.TakeWakeup();
    if (waker.WaitFor(deadline - now)) return true;
  }
}

void SimulatedClock::Advance(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return;
  now_ns_.fetch_add(absl::ToInt64Nanoseconds(d), std::memory_order_acq_rel);
  NudgeWaiters();
}

void SimulatedClock::Set(absl::Time t) {
  now_ns_.store(absl::ToUnixNanos(t), std::memory_order_release);
  NudgeWaiters();
}

bool SimulatedClock::WaitFor(absl::Duration d, internal::Waker& waker) {
  if (waker.TakeWakeup()) return true;
  Advance(d);
  return false;
}

bool SimulatedClock::WaitUntil(absl::Time deadline, internal::Waker& waker) {
  {
    MutexLock<internal::Mutex> lock(&waiters_mu_);
    waiters_.push_back(&waker);
  }
  const bool woken = waker.WaitWhile([&] { return Now() < deadline; });
  MutexLock<internal::Mutex> lock(&waiters_mu_);
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &waker));
  return woken;
}

void SimulatedClock::NudgeWaiters() {
  MutexLock<internal::Mutex> lock(&waiters_mu_);
  for (internal::Waker* waker : waiters_) waker->Nudge();
}

}  // namespace rill
