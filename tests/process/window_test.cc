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
