#include "rill/base/clock.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "rill/base/internal/waker.h"

namespace rill {
namespace {

absl::Time Utc(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
  return absl::FromCivil(absl::CivilSecond(year, month, day, hour, minute, second),
                         absl::UTCTimeZone());
}

TEST_CASE("a SimulatedClock starts at 2024-01-01T00:00:00Z", "[clock]") {
  CHECK(SimulatedClock::DefaultStart() == Utc(2024, 1, 1));
  CHECK(absl::ToUnixSeconds(SimulatedClock::DefaultStart()) == 1704067200);
  const SimulatedClock clock;
  CHECK(clock.Now() == Utc(2024, 1, 1));
  // Reading the time does not move it.
  CHECK(clock.Now() == clock.Now());
  const Clock& as_clock = clock;
  CHECK(as_clock.Now() == Utc(2024, 1, 1));
}

TEST_CASE("a SimulatedClock starts where it is told", "[clock]") {
  CHECK(SimulatedClock(absl::UnixEpoch()).Now() == absl::UnixEpoch());
  const absl::Time start = Utc(2031, 7, 15, 12, 34, 56) + absl::Nanoseconds(789);
  CHECK(SimulatedClock(start).Now() == start);
}

TEST_CASE("Advance moves a SimulatedClock forward by exactly the duration", "[clock]") {
  SimulatedClock clock;
  const absl::Time start = clock.Now();
  clock.Advance(absl::Nanoseconds(1));
  CHECK(clock.Now() == start + absl::Nanoseconds(1));
  clock.Advance(absl::Microseconds(999));
  CHECK(clock.Now() == start + absl::Nanoseconds(999001));
  clock.Advance(absl::Hours(25));
  CHECK(clock.Now() == start + absl::Hours(25) + absl::Nanoseconds(999001));
  CHECK(clock.Now() == Utc(2024, 1, 2, 1, 0, 0) + absl::Nanoseconds(999001));
  clock.Advance(absl::Hours(24 * 366));  // 2024 is a leap year.
  CHECK(clock.Now() == Utc(2025, 1, 2, 1, 0, 0) + absl::Nanoseconds(999001));
}

TEST_CASE("Advance ignores zero and negative durations", "[clock]") {
  SimulatedClock clock;
  const absl::Time start = clock.Now();
  clock.Advance(absl::ZeroDuration());
  CHECK(clock.Now() == start);
  clock.Advance(absl::Seconds(-1));
  CHECK(clock.Now() == start);
  clock.Advance(absl::Nanoseconds(-1));
  CHECK(clock.Now() == start);
  clock.Advance(-absl::Hours(1000));
  CHECK(clock.Now() == start);
  clock.Advance(absl::Seconds(3));
  clock.Advance(absl::Seconds(-2));
  CHECK(clock.Now() == start + absl::Seconds(3));
}

TEST_CASE("Set moves a SimulatedClock forwards and backwards", "[clock]") {
  SimulatedClock clock;
  const absl::Time later = Utc(2024, 6, 30, 23, 59, 59);
  clock.Set(later);
  CHECK(clock.Now() == later);
  const absl::Time earlier = Utc(2020, 2, 29);
  clock.Set(earlier);
  CHECK(clock.Now() == earlier);
  clock.Advance(absl::Milliseconds(1500));
  CHECK(clock.Now() == earlier + absl::Milliseconds(1500));
  clock.Set(SimulatedClock::DefaultStart());
  CHECK(clock.Now() == SimulatedClock::DefaultStart());
}

TEST_CASE("concurrent Advance calls all count", "[clock]") {
  SimulatedClock clock;
  const absl::Time start = clock.Now();
  constexpr int kThreads = 4;
  constexpr int kAdvancesPerThread = 10000;
  std::atomic<bool> go{false};
  std::atomic<bool> readers_saw_backwards{false};
  std::atomic<bool> done{false};

  // A reader checks, while the writers run, that the time it sees never goes backwards.
  std::thread reader([&] {
    absl::Time last = clock.Now();
    while (!done.load(std::memory_order_acquire)) {
      const absl::Time now = clock.Now();
      if (now < last) readers_saw_backwards.store(true);
      last = now;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (int i = 0; i < kAdvancesPerThread; ++i) clock.Advance(absl::Microseconds(1));
    });
  }
  go.store(true, std::memory_order_release);
  for (std::thread& w : writers) w.join();
  done.store(true, std::memory_order_release);
  reader.join();

  CHECK(clock.Now() - start == absl::Microseconds(kThreads * kAdvancesPerThread));
  CHECK(clock.Now() == start + absl::Microseconds(40000));
  CHECK_FALSE(readers_saw_backwards.load());
}

TEST_CASE("SystemClock reads the real time", "[clock]") {
  const SystemClock clock;
  const absl::Time now = clock.Now();
  CHECK(absl::AbsDuration(now - absl::Now()) < absl::Seconds(5));
  CHECK(absl::AbsDuration(clock.Now() - absl::Now()) < absl::Seconds(5));
  // Not a simulated time: well after the default simulated start.
  CHECK(now > SimulatedClock::DefaultStart());
}

TEST_CASE("SystemClock::Default is one shared system clock", "[clock]") {
  const std::shared_ptr<Clock> first = SystemClock::Default();
  const std::shared_ptr<Clock> second = SystemClock::Default();
  REQUIRE(first != nullptr);
  CHECK(first.get() == second.get());
  CHECK(first == second);
  CHECK(dynamic_cast<SystemClock*>(first.get()) != nullptr);
  CHECK(absl::AbsDuration(first->Now() - absl::Now()) < absl::Seconds(5));
  // Callers share ownership; the process-wide instance keeps its own reference.
  CHECK(first.use_count() >= 3);
}

}  // namespace
TEST_CASE("SleepFor on a SimulatedClock moves it forward and returns at once", "[clock]") {
  SimulatedClock clock;
  const absl::Time start = clock.Now();
  Clock& as_clock = clock;  // what components call, through the interface
  as_clock.SleepFor(absl::Hours(5));
  CHECK(clock.Now() - start == absl::Hours(5));
  as_clock.SleepFor(-absl::Seconds(1));  // a negative wait waits nothing
  CHECK(clock.Now() - start == absl::Hours(5));
}

TEST_CASE("WaitFor on a SimulatedClock moves it forward by the timeout when nothing wakes it",
          "[clock][wait]") {
  SimulatedClock clock;
  Clock& as_clock = clock;
  internal::Waker waker;
  const absl::Time start = clock.Now();
  CHECK_FALSE(as_clock.WaitFor(absl::Seconds(3), waker));
  CHECK(clock.Now() - start == absl::Seconds(3));
  CHECK_FALSE(as_clock.WaitFor(absl::Milliseconds(250), waker));
  CHECK(clock.Now() - start == absl::Milliseconds(3250));
  CHECK_FALSE(as_clock.WaitFor(-absl::Seconds(1), waker));  // a negative wait waits nothing
  CHECK(clock.Now() - start == absl::Milliseconds(3250));
}

TEST_CASE("WaitFor on a SimulatedClock returns true at once for a pending wake-up",
          "[clock][wait]") {
  SimulatedClock clock;
  Clock& as_clock = clock;
  internal::Waker waker;
  const absl::Time start = clock.Now();

  // An append marks its readers' wakers pending, then wakes those that sleep.
  waker.MarkPending();
  waker.Wake();
  CHECK(as_clock.WaitFor(absl::Hours(1), waker));
  CHECK(clock.Now() == start);
  // Each wake-up is reported once: the next wait times out and moves the clock.
  CHECK_FALSE(as_clock.WaitFor(absl::Seconds(1), waker));
  CHECK(clock.Now() - start == absl::Seconds(1));

  waker.Interrupt();
  CHECK(as_clock.WaitFor(absl::Hours(1), waker));
  CHECK(clock.Now() - start == absl::Seconds(1));
}

TEST_CASE("WaitUntil on a SimulatedClock returns once another thread advances past the deadline",
          "[clock][wait]") {
  SimulatedClock clock;
  internal::Waker waker;
  const absl::Time deadline = clock.Now() + absl::Seconds(10);
  std::atomic<bool> returned{false};
  bool woken = true;
  absl::Time seen;
  std::thread waiter([&] {
    woken = clock.WaitUntil(deadline, waker);
    seen = clock.Now();
    returned.store(true);
  });
  // Advances that stay short of the deadline only make the waiter look at the time again.
  clock.Advance(absl::Seconds(4));
  clock.Advance(absl::Seconds(5) + absl::Nanoseconds(999999999));
  CHECK_FALSE(returned.load());
  clock.Advance(absl::Nanoseconds(1));  // exactly the deadline
  waiter.join();
  CHECK(returned.load());
  CHECK_FALSE(woken);
  CHECK(seen >= deadline);

  // Set() moves a waiter's clock too, and a deadline already passed returns at once.
  const absl::Time later = clock.Now() + absl::Hours(1);
  std::thread second([&] {
    woken = clock.WaitUntil(later, waker);
    seen = clock.Now();
  });
  clock.Set(later + absl::Seconds(1));
  second.join();
  CHECK_FALSE(woken);
  CHECK(seen >= later);
  CHECK_FALSE(clock.WaitUntil(later, waker));
}

TEST_CASE("WaitUntil on a SimulatedClock returns true when the waker is woken", "[clock][wait]") {
  SimulatedClock clock;
  Clock& as_clock = clock;
  internal::Waker waker;
  const absl::Time start = clock.Now();

  SECTION("by Interrupt") {
    bool woken = false;
    std::thread waiter([&] { woken = as_clock.WaitUntil(absl::InfiniteFuture(), waker); });
    waker.Interrupt();
    waiter.join();
    CHECK(woken);
  }
  SECTION("by an append: MarkPending, then Wake") {
    bool woken = false;
    std::thread waiter([&] { woken = as_clock.WaitUntil(start + absl::Hours(1), waker); });
    waker.MarkPending();
    waker.Wake();
    waiter.join();
    CHECK(woken);
  }
  SECTION("by a wake-up that came before the wait") {
    waker.MarkPending();
    CHECK(as_clock.WaitUntil(absl::InfiniteFuture(), waker));
  }
  // No simulated time passed: the waits ended on the waker, not the clock.
  CHECK(clock.Now() == start);
}

TEST_CASE("the system clock's waits end on the waker or in real time", "[clock][wait]") {
  SystemClock clock;
  internal::Waker waker;
  waker.Interrupt();
  CHECK(clock.WaitFor(absl::Hours(1), waker));  // pending: at once
  CHECK_FALSE(clock.WaitFor(absl::Milliseconds(1), waker));
  const absl::Time deadline = clock.Now() + absl::Milliseconds(1);
  CHECK_FALSE(clock.WaitUntil(deadline, waker));
  CHECK(clock.Now() >= deadline);

  bool woken = false;
  std::thread waiter([&] { woken = clock.WaitUntil(absl::InfiniteFuture(), waker); });
  waker.Interrupt();
  waiter.join();
  CHECK(woken);
}

}  // namespace rill
