#include "rill/base/clock.h"

#include "absl/time/clock.h"

namespace rill {

absl::Time SystemClock::Now() const { return absl::Now(); }

std::shared_ptr<Clock> SystemClock::Default() {
  // Leaked on purpose: it must outlive every stream, including those destroyed during exit.
  static auto* const clock = new std::shared_ptr<Clock>(std::make_shared<SystemClock>());
  return *clock;
}

// The default is real time on purpose: it is the system clock's wait. SimulatedClock overrides it.
void Clock::SleepFor(absl::Duration d) { absl::SleepFor(d); }

}  // namespace rill
