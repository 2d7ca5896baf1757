#include "rill/base/clock.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/time/civil_time.h"
#include "absl/time/clock.h"

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

}  // namespace rill
