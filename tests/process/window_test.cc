// Window assigners and the watermark tracker.
#include "rill/process/window.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/base/error.h"
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

// The message of a kInvalidArgument status, or a note that it is not one.
std::string InvalidArgumentMessage(const absl::Status& s) {
  if (GetErrorCode(s) != ErrorCode::kInvalidArgument)
    return "not kInvalidArgument: " + s.ToString();
  return std::string(s.message());
}

TEST_CASE("windows validate their parameters and name the bad one", "[window]") {
  CHECK(TumblingWindow(absl::Minutes(5)).Validate().ok());
  CHECK(TumblingWindow(absl::Microseconds(1)).Validate().ok());
  CHECK(HoppingWindow(absl::Minutes(10), absl::Minutes(3)).Validate().ok());
  CHECK(HoppingWindow(absl::Minutes(10), absl::Minutes(10)).Validate().ok());
  CHECK(SessionWindow(absl::Nanoseconds(1)).Validate().ok());
  CHECK(TumblingWindow(absl::Minutes(5)).valid());
  CHECK(HoppingWindow(absl::Minutes(10), absl::Minutes(3)).valid());
  CHECK(SessionWindow(absl::Seconds(1)).valid());

  CHECK(InvalidArgumentMessage(TumblingWindow(absl::ZeroDuration()).Validate()) ==
        "TumblingWindow size must be a positive whole number of microseconds; got 0");
  CHECK(InvalidArgumentMessage(TumblingWindow(-absl::Minutes(1)).Validate()) ==
        "TumblingWindow size must be a positive whole number of microseconds; got -1m");
  CHECK(InvalidArgumentMessage(TumblingWindow(absl::Nanoseconds(1500)).Validate()) ==
        "TumblingWindow size must be a positive whole number of microseconds; got 1.5us");
  CHECK(InvalidArgumentMessage(TumblingWindow(absl::InfiniteDuration()).Validate()) ==
        "TumblingWindow size must be a positive whole number of microseconds; got inf");
  CHECK(InvalidArgumentMessage(HoppingWindow(absl::ZeroDuration(), absl::Seconds(1)).Validate()) ==
        "HoppingWindow size must be a positive whole number of microseconds; got 0");
  CHECK(InvalidArgumentMessage(HoppingWindow(absl::Minutes(1), absl::ZeroDuration()).Validate()) ==
        "HoppingWindow slide must be a positive whole number of microseconds; got 0");
  CHECK(InvalidArgumentMessage(HoppingWindow(absl::Minutes(1), -absl::Seconds(5)).Validate()) ==
        "HoppingWindow slide must be a positive whole number of microseconds; got -5s");
  CHECK(InvalidArgumentMessage(HoppingWindow(absl::Minutes(10), absl::Minutes(11)).Validate()) ==
        "HoppingWindow slide (11m) must not exceed its size (10m): the windows would leave gaps");
  CHECK(InvalidArgumentMessage(SessionWindow(absl::ZeroDuration()).Validate()) ==
        "SessionWindow gap must be positive and finite; got 0");
  CHECK(InvalidArgumentMessage(SessionWindow(-absl::Seconds(30)).Validate()) ==
        "SessionWindow gap must be positive and finite; got -30s");
  CHECK(InvalidArgumentMessage(SessionWindow(absl::InfiniteDuration()).Validate()) ==
        "SessionWindow gap must be positive and finite; got inf");
  CHECK_FALSE(TumblingWindow(absl::ZeroDuration()).valid());
  CHECK_FALSE(HoppingWindow(absl::Minutes(10), absl::Minutes(11)).valid());
  CHECK_FALSE(SessionWindow(absl::ZeroDuration()).valid());
  // An invalid hopping window has no panes.
  CHECK(HoppingWindow(absl::Minutes(10), absl::Minutes(11)).panes() == 0);
  CHECK(HoppingWindow(absl::Minutes(10), absl::Minutes(11)).pane() == absl::ZeroDuration());
  CHECK(SessionWindow(absl::ZeroDuration()).WindowOf(kT0) == WindowBounds{kT0, kT0});
}

TEST_CASE("the windows holding a pane", "[window]") {
  const HoppingWindow w(absl::Minutes(10), absl::Minutes(3));
  CHECK(w.pane() == absl::Minutes(1));
  // Every pane of a day, against ForEachWindow of a time inside it.
  for (int m = -60; m < 24 * 60; ++m) {
    const absl::Time start = kT0 + absl::Minutes(m);
    std::vector<absl::Time> ends;
    w.ForEachWindow(start + absl::Seconds(30), [&](WindowBounds b) { ends.push_back(b.end); });
    REQUIRE(!ends.empty());
    const HoppingWindow::PaneWindows p = w.WindowsOfPane(start);
    INFO(m);
    CHECK(p.first_end == ends.front());
    CHECK(p.last_end == ends.back());
    CHECK((p.last_end - p.first_end) / w.slide() + 1 == static_cast<int64_t>(ends.size()));
  }
  const HoppingWindow even(absl::Minutes(5), absl::Minutes(1));
  CHECK(even.WindowsOfPane(kT0).first_end == kT0 + absl::Minutes(1));
  CHECK(even.WindowsOfPane(kT0).last_end == kT0 + absl::Minutes(5));
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

TEST_CASE("watermark options validate and name the bad one", "[watermark]") {
  CHECK(WatermarkOptions{}.Validate().ok());
  CHECK(WatermarkOptions{.max_out_of_orderness = absl::ZeroDuration(),
                         .idle_timeout = absl::ZeroDuration()}
            .Validate()
            .ok());
  CHECK(InvalidArgumentMessage(
            WatermarkOptions{.max_out_of_orderness = -absl::Seconds(5)}.Validate()) ==
        "max_out_of_orderness must not be negative; got -5s");
  CHECK(
      InvalidArgumentMessage(WatermarkOptions{.idle_timeout = -absl::Milliseconds(1)}.Validate()) ==
      "idle_timeout must not be negative; got -1ms");
}

}  // namespace
}  // namespace rill
