// Window assigners and the watermark tracker.
#include "rill/process/window.h"

#include <vector>

#include <catch2/catch.hpp>

#include "rill/process/watermark.h"

namespace rill {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1704067200);  // 2024-01-01T00:00:00Z

TEST_CASE("tumbling windows tile time from the epoch", "[window]") {
  const TumblingWindow w(absl::Minutes(5));
  CHECK(w.WindowOf(kT0) == WindowBounds{kT0, kT0 + absl::Minutes(5)});
  CHECK(w.WindowOf(kT0 + absl::Minutes(5) - absl::Microseconds(1)) ==
        WindowBounds{kT0, kT0 + absl::Minutes(5)});
  CHECK(w.WindowOf(kT0 + absl::Minutes(7)) ==
        WindowBounds{kT0 + absl::Minutes(5), kT0 + absl::Minutes(10)});
  // Before the epoch too: floor, not truncation toward zero.
  const absl::Time before = absl::FromUnixSeconds(-1);
  CHECK(TumblingWindow(absl::Seconds(10)).WindowOf(before) ==
        WindowBounds{absl::FromUnixSeconds(-10), absl::FromUnixSeconds(0)});
  int calls = 0;
  w.ForEachWindow(kT0, [&](WindowBounds) { ++calls; });
  CHECK(calls == 1);
}

TEST_CASE("a timestamp falls in size / slide hopping windows", "[window]") {
  const HoppingWindow w(absl::Minutes(5), absl::Minutes(1));
  CHECK(w.panes() == 5);
  std::vector<WindowBounds> got;
  const absl::Time t = kT0 + absl::Minutes(7) + absl::Seconds(30);
  w.ForEachWindow(t, [&](WindowBounds b) { got.push_back(b); });
  REQUIRE(got.size() == 5);
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].start == kT0 + absl::Minutes(3 + static_cast<int>(i)));
    CHECK(got[i].end - got[i].start == absl::Minutes(5));
    CHECK(got[i].Contains(t));
  }
  CHECK(w.PaneOf(t) == WindowBounds{kT0 + absl::Minutes(7), kT0 + absl::Minutes(8)});
}

TEST_CASE("hopping windows need not be a multiple of the slide", "[window]") {
  // Windows start at multiples of the slide; a timestamp is in every window [start, start + size)
  // holding it. The panes are gcd(size, slide) long.
  const HoppingWindow w(absl::Minutes(10), absl::Minutes(3));
  CHECK(w.panes() == 10);
  CHECK(w.PaneOf(kT0 + absl::Minutes(7) + absl::Seconds(30)) ==
        WindowBounds{kT0 + absl::Minutes(7), kT0 + absl::Minutes(8)});
  auto starts = [](const HoppingWindow& h, absl::Time t) {
    std::vector<absl::Duration> got;
    h.ForEachWindow(t, [&](WindowBounds b) {
      CHECK(b.end - b.start == h.size());
      CHECK(b.Contains(t));
      got.push_back(b.start - kT0);
    });
    return got;
  };
  // 7:30 is in the windows starting at 0, 3 and 6 (not -3: [-3, 7) ends before it).
  CHECK(starts(w, kT0 + absl::Minutes(7) + absl::Seconds(30)) ==
        std::vector<absl::Duration>{absl::Minutes(0), absl::Minutes(3), absl::Minutes(6)});
  // 9:30 is in four: 0, 3, 6 and 9.
  CHECK(starts(w, kT0 + absl::Minutes(9) + absl::Seconds(30)) ==
        std::vector<absl::Duration>{absl::Minutes(0), absl::Minutes(3), absl::Minutes(6),
                                    absl::Minutes(9)});
  // A window's end belongs to the next ones only: 10:00 is in 3, 6 and 9.
  CHECK(starts(w, kT0 + absl::Minutes(10)) ==
        std::vector<absl::Duration>{absl::Minutes(3), absl::Minutes(6), absl::Minutes(9)});
  const HoppingWindow h(absl::Seconds(7), absl::Seconds(2));
  CHECK(h.panes() == 7);
  CHECK(starts(h, kT0 + absl::Seconds(6)) ==
        std::vector<absl::Duration>{absl::Seconds(0), absl::Seconds(2), absl::Seconds(4),
                                    absl::Seconds(6)});
  CHECK(starts(h, kT0 + absl::Seconds(7)) ==
        std::vector<absl::Duration>{absl::Seconds(2), absl::Seconds(4), absl::Seconds(6)});
  // Before the epoch as well.
  CHECK(starts(h, absl::FromUnixSeconds(-1)) ==
        std::vector<absl::Duration>{absl::FromUnixSeconds(-6) - kT0,
                                    absl::FromUnixSeconds(-4) - kT0,
                                    absl::FromUnixSeconds(-2) - kT0});
  // Size equal to the slide: tumbling.
  CHECK(starts(HoppingWindow(absl::Seconds(5), absl::Seconds(5)), kT0 + absl::Seconds(7)) ==
        std::vector<absl::Duration>{absl::Seconds(5)});
}

TEST_CASE("a window of zero or sub-microsecond size holds no time and does not crash", "[window]") {
  const absl::Time t = kT0 + absl::Seconds(7);
  for (const absl::Duration size :
       {absl::ZeroDuration(), absl::Nanoseconds(500), -absl::Minutes(1)}) {
    const TumblingWindow w(size);
    CHECK(w.WindowOf(t) == WindowBounds{t, t});
    CHECK_FALSE(w.WindowOf(t).Contains(t));
    int calls = 0;
    w.ForEachWindow(t, [&](WindowBounds) { ++calls; });
    CHECK(calls == 0);
    for (const HoppingWindow& h :
         {HoppingWindow(size, absl::Seconds(1)), HoppingWindow(absl::Seconds(1), size),
          HoppingWindow(absl::Seconds(1), absl::Seconds(2))}) {
      CHECK(h.PaneOf(t) == WindowBounds{t, t});
      h.ForEachWindow(t, [&](WindowBounds) { ++calls; });
      CHECK(calls == 0);
    }
  }
}

TEST_CASE("session windows merge when they touch", "[window]") {
  const SessionWindow s(absl::Minutes(10));
  const WindowBounds a = s.WindowOf(kT0);
  const WindowBounds b = s.WindowOf(kT0 + absl::Minutes(10));  // touches a's end
  const WindowBounds c = s.WindowOf(kT0 + absl::Minutes(30));
  CHECK(SessionWindow::Mergeable(a, b));
  CHECK_FALSE(SessionWindow::Mergeable(a, c));
  CHECK(SessionWindow::Merge(a, b) == WindowBounds{kT0, kT0 + absl::Minutes(20)});
}

TEST_CASE("the watermark is the slowest active source's, minus out-of-orderness", "[watermark]") {
  WatermarkTracker t({.max_out_of_orderness = absl::Seconds(5), .idle_timeout = absl::Seconds(30)});
  absl::Time now = kT0;
  CHECK(t.Watermark(now) == absl::InfinitePast());
  t.AddSource(ShardId(0), now);
  t.AddSource(ShardId(1), now);
  t.Observe(ShardId(0), kT0 + absl::Seconds(100), now);
  // Shard 1 has sent nothing yet: it holds the watermark back.
  CHECK(t.Watermark(now) == absl::InfinitePast());
  t.Observe(ShardId(1), kT0 + absl::Seconds(40), now);
  CHECK(t.Watermark(now) == kT0 + absl::Seconds(35));
  t.Observe(ShardId(1), kT0 + absl::Seconds(20), now);  // late record: the max stays
  CHECK(t.Watermark(now) == kT0 + absl::Seconds(35));
  // Shard 1 goes quiet; after the idle timeout only shard 0 counts.
  now += absl::Seconds(29);
  t.Observe(ShardId(0), kT0 + absl::Seconds(130), now);
  CHECK(t.Watermark(now) == kT0 + absl::Seconds(35));
  now += absl::Seconds(1);
  CHECK(t.Watermark(now) == kT0 + absl::Seconds(125));
  // Everything quiet: processing time moves the watermark.
  now += absl::Seconds(30);
  CHECK(t.Watermark(now) == std::max(kT0 + absl::Seconds(130), now) - absl::Seconds(5));
  // Never backwards, even when an idle source comes back behind.
  const absl::Time high = t.Watermark(now);
  t.Observe(ShardId(1), kT0 + absl::Seconds(50), now);
  CHECK(t.Watermark(now) == high);
  // A removed source no longer counts.
  t.RemoveSource(ShardId(1));
  t.Observe(ShardId(0), now + absl::Hours(1), now);
  CHECK(t.Watermark(now) == now + absl::Hours(1) - absl::Seconds(5));
}

}  // namespace
}  // namespace rill
