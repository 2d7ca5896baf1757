// SpinFor: the one place where rill reads real time without going through a Clock.
//
// A spin budget (SubscribeOptions::spin, DispatcherOptions::spin) trades CPU for wake-up latency:
// a waiting reader keeps looking for a little while before it sleeps, because being woken costs a
// few microseconds more than finding the record itself. That budget is a matter of the machine,
// not of the time rill simulates, so it is measured on the steady clock. It never decides an
// outcome: a look finds only what the log and the stream's clock say is there, and after the
// spin the caller waits through its Clock as it would have without it. Under a SimulatedClock a
// spin therefore changes nothing but how soon a record put by another thread is seen.
#ifndef RILL_BASE_SPIN_H_
#define RILL_BASE_SPIN_H_

#include <algorithm>
#include <chrono>

#include "absl/time/time.h"

namespace rill::internal {

// Calls `look` until it returns true or `budget` of real time has passed; returns whether it
// returned true. A zero or negative budget calls nothing and returns false.
template <typename Look>
bool SpinFor(absl::Duration budget, Look look) {
  if (budget <= absl::ZeroDuration()) return false;
  // Beyond a century is "for ever", and keeps the steady clock's arithmetic in range.
  const auto until = std::chrono::steady_clock::now() +
                     absl::ToChronoNanoseconds(std::min(budget, absl::Hours(24 * 365 * 100)));
  while (std::chrono::steady_clock::now() < until) {
    if (look()) return true;
  }
  return false;
}

}  // namespace rill::internal

#endif  // RILL_BASE_SPIN_H_
