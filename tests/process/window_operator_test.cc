// The keyed window operator: golden emissions per window kind, lateness, emit modes, snapshots,
// and randomized comparisons with a brute-force reference.
#include "rill/process/window_operator.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

namespace rill {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1704067200);  // 2024-01-01T00:00:00Z

absl::Time At(int minutes, int seconds = 0) {
  return kT0 + absl::Minutes(minutes) + absl::Seconds(seconds);
}

using StrCount = WindowResult<std::string, uint64_t>;

StrCount R(std::string key, absl::Time start, absl::Time end, uint64_t v, bool update) {
  return StrCount{std::move(key), start, end, v, update};
}

template <typename Result>
struct Collector {
  std::vector<Result> out;
  void operator()(const Result& r) { out.push_back(r); }
};

TEST_CASE("tumbling counts per key close only when the watermark passes their end",
          "[window_operator]") {
  WindowOperator<std::string, CountAggregator, TumblingWindow> op(Count(),
                                                                  TumblingWindow(absl::Minutes(1)));
  Collector<StrCount> c;
  CHECK(op.Add("b", At(0, 20), 1, c));
  CHECK(op.Add("a", At(0, 50), 1, c));
  CHECK(op.Add("a", At(1, 5), 1, c));
  CHECK(op.Add("a", At(0, 10), 1, c));  // out of order, still before the watermark
  CHECK(op.Add("b", At(0, 30), 1, c));
  CHECK(op.Add("c", At(2, 0), 1, c));
  CHECK(op.live_windows() == 4);
  CHECK(op.live_keys() == 3);
  CHECK(op.state_bytes() > 0);
  op.AdvanceWatermark(At(1) - absl::Microseconds(1), c);
  CHECK(c.out.empty());
  op.AdvanceWatermark(At(1), c);  // end == watermark closes
  CHECK(c.out ==
        std::vector<StrCount>{R("a", At(0), At(1), 2, false), R("b", At(0), At(1), 2, false)});
  CHECK(op.live_windows() == 2);
  CHECK(op.live_keys() == 2);
  op.AdvanceWatermark(At(0), c);  // backwards: ignored
  CHECK(op.watermark() == At(1));
  CHECK(op.Add("b", At(2, 59), 1, c));
  c.out.clear();
  op.AdvanceWatermark(At(10), c);  // several windows at once: (end, key) order
  CHECK(c.out == std::vector<StrCount>{R("a", At(1), At(2), 1, false),
                                       R("b", At(2), At(3), 1, false),
                                       R("c", At(2), At(3), 1, false)});
  CHECK(op.live_windows() == 0);
  CHECK(op.live_keys() == 0);
  CHECK(op.late_records() == 0);
}

TEST_CASE("session windows merge through a bridging record and when they touch",
          "[window_operator]") {
  WindowOperator<std::string, CountAggregator, SessionWindow> op(Count(),
                                                                 SessionWindow(absl::Minutes(10)));
  Collector<StrCount> c;
  CHECK(op.Add("k", At(0), 1, c));   // [0, 10)
  CHECK(op.Add("k", At(20), 1, c));  // [20, 30)
  CHECK(op.Add("j", At(5), 1, c));   // another key: [5, 15)
  CHECK(op.live_windows() == 3);
  CHECK(op.Add("k", At(10), 1, c));  // [10, 20) touches both: one session [0, 30)
  CHECK(op.live_windows() == 2);
  CHECK(op.Add("k", At(30), 1, c));  // exactly at the end: extends to [0, 40)
  CHECK(op.live_windows() == 2);
  // [41, 51) does not touch [0, 40): a new session.
  CHECK(op.Add("k", At(41), 1, c));
  CHECK(op.live_windows() == 3);
  CHECK(c.out.empty());
  op.AdvanceWatermark(At(40), c);
  CHECK(c.out ==
        std::vector<StrCount>{R("j", At(5), At(15), 1, false), R("k", At(0), At(40), 4, false)});
  c.out.clear();
  // A record whose session ends exactly at another's start merges with it.
  CHECK(op.Add("k", At(31), 1, c));  // [31, 41) touches [41, 51) -> [31, 51)
  CHECK(op.live_windows() == 1);
  op.AdvanceWatermark(At(51), c);
  CHECK(c.out == std::vector<StrCount>{R("k", At(31), At(51), 2, false)});
  CHECK(op.live_windows() == 0);
  CHECK(op.live_keys() == 0);
}

TEST_CASE("a late record within allowed lateness re-emits, beyond it, it is counted",
          "[window_operator]") {
  WindowOperator<std::string, CountAggregator, TumblingWindow> op(
      Count(), TumblingWindow(absl::Minutes(1)), {.allowed_lateness = absl::Seconds(30)});
  Collector<StrCount> c;
  std::vector<std::pair<std::string, absl::Time>> late;
  auto on_late = [&](const std::string& k, absl::Time t, const AnyInput&) {
    late.emplace_back(k, t);
  };
  CHECK(op.Add("a", At(0, 10), 1, c, on_late));
  op.AdvanceWatermark(At(1), c);
  CHECK(op.Add("a", At(0, 20), 1, c, on_late));  // late, within lateness
  op.AdvanceWatermark(At(1, 10), c);
  CHECK(op.Add("b", At(0, 5), 1, c, on_late));  // a closed window new to this key
  CHECK(c.out == std::vector<StrCount>{R("a", At(0), At(1), 1, false),
                                       R("a", At(0), At(1), 2, true),
                                       R("b", At(0), At(1), 1, true)});
  op.AdvanceWatermark(At(1, 29), c);
  CHECK(op.live_windows() == 2);
  op.AdvanceWatermark(At(1, 30), c);  // end + lateness: freed
  CHECK(op.live_windows() == 0);
  CHECK(op.live_keys() == 0);
  CHECK(op.state_bytes() == 0);
  CHECK_FALSE(op.Add("a", At(0, 40), 1, c, on_late));
  CHECK_FALSE(op.Add("a", At(0, 50), 1, c));
  CHECK(op.late_records() == 2);
  CHECK(late == std::vector<std::pair<std::string, absl::Time>>{{"a", At(0, 40)}});
  CHECK(c.out.size() == 3);  // the late records changed nothing
  CHECK(op.live_windows() == 0);
}

TEST_CASE("late records in hopping and session windows", "[window_operator]") {
  SECTION("hopping: a record counts in the windows that have not expired") {
    WindowOperator<std::string, CountAggregator, HoppingWindow> op(
        Count(), HoppingWindow(absl::Minutes(3), absl::Minutes(1)),
        {.allowed_lateness = absl::Seconds(30)});
    Collector<StrCount> c;
    op.AdvanceWatermark(At(2, 30), c);
    // Windows holding 0:30 end at 1, 2, 3: [-2, 1) and [-1, 2) have expired, [0, 3) is open.
    CHECK(op.Add("a", At(0, 30), 1, c));
    CHECK(c.out.empty());
    op.AdvanceWatermark(At(3), c);
    CHECK(c.out == std::vector<StrCount>{R("a", At(0), At(3), 1, false)});
    CHECK(op.Add("a", At(0, 40), 1, c));  // closed, within lateness
    CHECK(c.out.back() == R("a", At(0), At(3), 2, true));
    op.AdvanceWatermark(At(3, 30), c);
    CHECK(op.live_windows() == 0);
    CHECK_FALSE(op.Add("a", At(0, 50), 1, c));
    CHECK(op.late_records() == 1);
    CHECK(c.out.size() == 2);
  }
  SECTION("session: a record touching no live session whose own session expired is late") {
    WindowOperator<std::string, CountAggregator, SessionWindow> op(
        Count(), SessionWindow(absl::Minutes(10)), {.allowed_lateness = absl::Minutes(5)});
    Collector<StrCount> c;
    CHECK(op.Add("k", At(0), 1, c));
    op.AdvanceWatermark(At(12), c);
    CHECK(c.out == std::vector<StrCount>{R("k", At(0), At(10), 1, false)});
    CHECK(op.Add("k", At(8), 1, c));  // merges into the closed session: [0, 18) reopens
    CHECK(c.out.size() == 1);         // [0, 18) is open again: no update until it closes
    op.AdvanceWatermark(At(18), c);
    CHECK(c.out.back() == R("k", At(0), At(18), 2, false));
    op.AdvanceWatermark(At(23), c);  // end + lateness: freed
    CHECK(op.live_windows() == 0);
    CHECK_FALSE(op.Add("k", At(2), 1, c));  // [2, 12) has expired and nothing live is left
    CHECK(op.late_records() == 1);
    CHECK(op.live_windows() == 0);
    CHECK(c.out.size() == 2);
  }
}

TEST_CASE("kOnUpdate emits every change, then the final result on close", "[window_operator]") {
  WindowOperator<std::string, CountAggregator, TumblingWindow> op(
      Count(), TumblingWindow(absl::Minutes(1)),
      {.allowed_lateness = absl::Seconds(30), .emit = EmitMode::kOnUpdate});
  Collector<StrCount> c;
  CHECK(op.Add("a", At(0, 10), 1, c));
  CHECK(op.Add("a", At(0, 20), 1, c));
  CHECK(op.Add("b", At(0, 30), 1, c));
  CHECK(op.Add("a", At(1, 30), 1, c));
  op.AdvanceWatermark(At(1), c);
  CHECK(op.Add("a", At(0, 40), 1, c));
  op.AdvanceWatermark(At(1, 30), c);
  CHECK_FALSE(op.Add("a", At(0, 50), 1, c));
  op.AdvanceWatermark(At(2), c);
  CHECK(c.out ==
        std::vector<StrCount>{R("a", At(0), At(1), 1, true), R("a", At(0), At(1), 2, true),
                              R("b", At(0), At(1), 1, true), R("a", At(1), At(2), 1, true),
                              R("a", At(0), At(1), 2, false), R("b", At(0), At(1), 1, false),
                              R("a", At(0), At(1), 3, true), R("a", At(1), At(2), 1, false)});

  WindowOperator<std::string, CountAggregator, HoppingWindow> hop(
      Count(), HoppingWindow(absl::Minutes(2), absl::Minutes(1)), {.emit = EmitMode::kOnUpdate});
  Collector<StrCount> h;
  CHECK(hop.Add("a", At(1, 10), 1, h));
  CHECK(hop.Add("a", At(0, 10), 1, h));
  hop.AdvanceWatermark(At(3), h);
  CHECK(h.out ==
        std::vector<StrCount>{R("a", At(0), At(2), 1, true), R("a", At(1), At(3), 1, true),
                              R("a", At(-1), At(1), 1, true), R("a", At(0), At(2), 2, true),
                              R("a", At(-1), At(1), 1, false), R("a", At(0), At(2), 2, false),
                              R("a", At(1), At(3), 1, false)});
}

// --- Randomized comparisons with a brute-force reference ---

struct Op {
  bool watermark = false;
  int key = 0;
  absl::Time t;
  int64_t value = 0;
};

// Records out of order by up to 90 s, with the watermark 2 minutes behind the newest record
// every 10 records, so that no record is late; then a final flush.
std::vector<Op> OnTimeInput(uint32_t seed, int records, int keys) {
  std::mt19937 rng(seed);
  std::vector<Op> ops;
  absl::Time cursor = kT0;
  absl::Time newest = absl::InfinitePast();
  for (int i = 0; i < records; ++i) {
    cursor += absl::Seconds(std::uniform_int_distribution<int>(0, 20)(rng));
    Op op;
    op.key = std::uniform_int_distribution<int>(0, keys - 1)(rng);
    op.t = cursor - absl::Milliseconds(std::uniform_int_distribution<int>(0, 90000)(rng));
    op.value = std::uniform_int_distribution<int>(-50, 100)(rng);
    newest = std::max(newest, op.t);
    ops.push_back(op);
    if (i % 10 == 9) ops.push_back(Op{true, 0, newest - absl::Minutes(2), 0});
  }
  ops.push_back(Op{true, 0, absl::InfiniteFuture(), 0});
  return ops;
}

using WindowId = std::tuple<int, absl::Time, absl::Time>;
struct Ref {
  uint64_t count = 0;
  int64_t sum = 0;
};

template <typename Assigner>
std::map<WindowId, Ref> BruteForce(const Assigner& assigner, const std::vector<Op>& ops) {
  std::map<WindowId, Ref> ref;
  if constexpr (std::is_same_v<Assigner, SessionWindow>) {
    std::map<int, std::vector<std::pair<absl::Time, int64_t>>> by_key;
    for (const Op& op : ops) {
      if (!op.watermark) by_key[op.key].emplace_back(op.t, op.value);
    }
    for (auto& [key, recs] : by_key) {
      std::sort(recs.begin(), recs.end());
      absl::Time start = recs[0].first, end = recs[0].first + assigner.gap();
      Ref acc;
      for (const auto& [t, v] : recs) {
        if (t > end) {
          ref[{key, start, end}] = acc;
          acc = Ref{};
          start = t;
        }
        end = std::max(end, t + assigner.gap());
        ++acc.count;
        acc.sum += v;
      }
      ref[{key, start, end}] = acc;
    }
  } else {
    for (const Op& op : ops) {
      if (op.watermark) continue;
      assigner.ForEachWindow(op.t, [&](WindowBounds w) {
        Ref& r = ref[{op.key, w.start, w.end}];
        ++r.count;
        r.sum += op.value;
      });
    }
  }
  return ref;
}

template <typename Agg, typename Assigner>
std::map<WindowId, typename Agg::Result> RunOnTime(Agg agg, const Assigner& assigner,
                                                   const std::vector<Op>& ops) {
  using Result = WindowResult<int, typename Agg::Result>;
  WindowOperator<int, Agg, Assigner> op(agg, assigner);
  std::map<WindowId, typename Agg::Result> got;
  bool duplicate = false, update = false, ordered = true;
  absl::Time last_end = absl::InfinitePast();
  auto emit = [&](const Result& r) {
    duplicate |= !got.emplace(WindowId{r.key, r.start, r.end}, r.value).second;
    update |= r.is_update;
    ordered &= r.end >= last_end;
    last_end = r.end;
  };
  for (const Op& o : ops) {
    if (o.watermark) {
      op.AdvanceWatermark(o.t, emit);
    } else {
      REQUIRE(op.Add(o.key, o.t, o.value, emit));
    }
  }
  CHECK_FALSE(duplicate);
  CHECK_FALSE(update);
  CHECK(ordered);
  CHECK(op.late_records() == 0);
  CHECK(op.live_windows() == 0);
  CHECK(op.live_keys() == 0);
  return got;
}

template <typename Assigner>
void CompareWithBruteForce(const Assigner& assigner, const std::vector<Op>& ops) {
  const std::map<WindowId, Ref> ref = BruteForce(assigner, ops);
  const auto counts = RunOnTime(Count(), assigner, ops);
  const auto sums = RunOnTime(Sum<int64_t>(), assigner, ops);
  REQUIRE(counts.size() == ref.size());
  REQUIRE(sums.size() == ref.size());
  size_t mismatches = 0;
  for (const auto& [id, r] : ref) {
    auto c = counts.find(id);
    auto s = sums.find(id);
    if (c == counts.end() || s == sums.end() || c->second != r.count || s->second != r.sum) {
      ++mismatches;
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("hopping 5 min / 1 min sums equal a brute-force recomputation", "[window_operator]") {
  const HoppingWindow hop(absl::Minutes(5), absl::Minutes(1));
  const std::vector<Op> ops = OnTimeInput(7, 3000, 5);
  const auto counts = RunOnTime(Count(), hop, ops);
  uint64_t total = 0;
  for (const auto& [id, n] : counts) total += n;
  CHECK(total == 5 * 3000);  // each record in exactly five windows
  CompareWithBruteForce(hop, ops);
}

TEST_CASE("randomized: every window kind matches brute force with Count and Sum",
          "[window_operator]") {
  const uint32_t seed = GENERATE(1u, 2u, 3u);
  const std::vector<Op> ops = OnTimeInput(seed, 20000, 50);
  CompareWithBruteForce(TumblingWindow(absl::Minutes(1)), ops);
  CompareWithBruteForce(HoppingWindow(absl::Minutes(4), absl::Seconds(30)), ops);
  CompareWithBruteForce(HoppingWindow(absl::Minutes(4), absl::Seconds(70)), ops);
  CompareWithBruteForce(SessionWindow(absl::Minutes(3)), ops);
}

// --- Hopping windows whose size is not a multiple of the slide ---

TEST_CASE("hopping 10 min / 3 min windows start every 3 minutes and last 10", "[window_operator]") {
  WindowOperator<std::string, CountAggregator, HoppingWindow> op(
      Count(), HoppingWindow(absl::Minutes(10), absl::Minutes(3)));
  Collector<StrCount> c;
  CHECK(op.Add("a", At(7, 30), 1, c));  // in [0, 10), [3, 13), [6, 16)
  CHECK(op.Add("a", At(9, 30), 1, c));  // and in [9, 19)
  CHECK(op.Add("b", At(10), 1, c));     // in [3, 13), [6, 16), [9, 19)
  op.AdvanceWatermark(At(13), c);
  CHECK(c.out == std::vector<StrCount>{R("a", At(0), At(10), 2, false),
                                       R("a", At(3), At(13), 2, false),
                                       R("b", At(3), At(13), 1, false)});
  op.AdvanceWatermark(absl::InfiniteFuture(), c);
  CHECK(c.out ==
        std::vector<StrCount>{R("a", At(0), At(10), 2, false), R("a", At(3), At(13), 2, false),
                              R("b", At(3), At(13), 1, false), R("a", At(6), At(16), 2, false),
                              R("b", At(6), At(16), 1, false), R("a", At(9), At(19), 1, false),
                              R("b", At(9), At(19), 1, false)});
  CHECK(op.late_records() == 0);
  CHECK(op.live_windows() == 0);
  CHECK(op.live_keys() == 0);
}

TEST_CASE("Create reports a bad window or option, a bad window used directly takes no record",
          "[window_operator]") {
  using Hopping = WindowOperator<std::string, CountAggregator, HoppingWindow>;
  using Tumbling = WindowOperator<std::string, CountAggregator, TumblingWindow>;
  using Session = WindowOperator<std::string, CountAggregator, SessionWindow>;
  auto message = [](const absl::Status& s) {
    return GetErrorCode(s) == ErrorCode::kInvalidArgument ? std::string(s.message())
                                                          : "not kInvalidArgument: " + s.ToString();
  };
  CHECK(Hopping::Create(Count(), HoppingWindow(absl::Minutes(10), absl::Minutes(3))).ok());
  CHECK(message(Tumbling::Create(Count(), TumblingWindow(absl::ZeroDuration())).status()) ==
        "TumblingWindow size must be a positive whole number of microseconds; got 0");
  CHECK(message(
            Hopping::Create(Count(), HoppingWindow(absl::Minutes(1), absl::Minutes(2))).status()) ==
        "HoppingWindow slide (2m) must not exceed its size (1m): the windows would leave gaps");
  CHECK(message(Session::Create(Count(), SessionWindow(-absl::Seconds(1))).status()) ==
        "SessionWindow gap must be positive and finite; got -1s");
  CHECK(message(Tumbling::Create(Count(), TumblingWindow(absl::Minutes(1)),
                                 {.allowed_lateness = -absl::Seconds(1)})
                    .status()) == "allowed_lateness must not be negative; got -1s");
  CHECK(message(Tumbling::Create(Count(), TumblingWindow(absl::Minutes(1)),
                                 {.emit = static_cast<EmitMode>(7)})
                    .status()) == "emit mode 7 is neither kOnClose nor kOnUpdate");

  absl::StatusOr<Hopping> created =
      Hopping::Create(Count(), HoppingWindow(absl::Minutes(10), absl::Minutes(3)));
  REQUIRE(created.ok());
  Collector<StrCount> c;
  CHECK(created->Add("a", At(7, 30), 1, c));
  created->AdvanceWatermark(absl::InfiniteFuture(), c);
  CHECK(c.out.size() == 3);

  // Constructed directly (no status to return): never a crash; every record is late.
  c.out.clear();
  Tumbling zero(Count(), TumblingWindow(absl::ZeroDuration()));
  Hopping gaps(Count(), HoppingWindow(absl::Minutes(1), absl::Minutes(2)));
  Hopping no_slide(Count(), HoppingWindow(absl::Minutes(1), absl::ZeroDuration()));
  Session no_gap(Count(), SessionWindow(absl::ZeroDuration()));
  CHECK_FALSE(zero.Add("a", At(0), 1, c));
  CHECK_FALSE(gaps.Add("a", At(0), 1, c));
  CHECK_FALSE(no_slide.Add("a", At(0), 1, c));
  CHECK_FALSE(no_gap.Add("a", At(0), 1, c));
  zero.AdvanceWatermark(absl::InfiniteFuture(), c);
  gaps.AdvanceWatermark(absl::InfiniteFuture(), c);
  no_slide.AdvanceWatermark(absl::InfiniteFuture(), c);
  no_gap.AdvanceWatermark(absl::InfiniteFuture(), c);
  CHECK(c.out.empty());
  CHECK(zero.late_records() == 1);
  CHECK(gaps.late_records() == 1);
  CHECK(no_slide.late_records() == 1);
  CHECK(no_gap.late_records() == 1);
  std::string snapshot;
  created->Snapshot(&snapshot);
  CHECK_FALSE(gaps.Restore(snapshot));
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - (a % b < 0 ? 1 : 0); }

// Records up to a slide apart with millisecond times, out of order by up to size + 3 slides, and
// the watermark a slide behind the newest record every 7 records, so that some records are late
// by more than the allowed lateness (up to 2 slides) and some by less; then a final flush.
std::vector<Op> HoppingInput(uint32_t seed, int records, int keys, absl::Duration size,
                             absl::Duration slide) {
  std::mt19937 rng(seed);
  std::vector<Op> ops;
  absl::Time cursor = kT0;
  for (int i = 0; i < records; ++i) {
    cursor += slide * std::uniform_int_distribution<int>(0, 1000)(rng) / 1000;
    Op op;
    op.key = std::uniform_int_distribution<int>(0, keys - 1)(rng);
    op.t = cursor - (size + 3 * slide) * std::uniform_int_distribution<int>(0, 1000)(rng) / 1000;
    op.t = absl::FromUnixMillis(absl::ToUnixMillis(op.t));
    op.value = std::uniform_int_distribution<int>(-50, 100)(rng);
    ops.push_back(op);
    if (i % 7 == 6) ops.push_back(Op{true, 0, cursor - slide, 0});
  }
  ops.push_back(Op{true, 0, absl::InfiniteFuture(), 0});
  return ops;
}

// What each (key, window start) must finally hold: every record the window held whose Add came
// before the window expired (end + lateness <= watermark), computed window by window from the
// definition (windows [k * slide, k * slide + size) for every integer k), without the
// assigner's help. *late counts the records that fit no window still accepting.
std::map<std::pair<int, absl::Time>, Ref> HoppingReference(absl::Duration size,
                                                           absl::Duration slide,
                                                           absl::Duration lateness,
                                                           const std::vector<Op>& ops,
                                                           uint64_t* late) {
  const int64_t size_us = absl::ToInt64Microseconds(size);
  const int64_t slide_us = absl::ToInt64Microseconds(slide);
  std::map<std::pair<int, absl::Time>, Ref> ref;
  absl::Time wm = absl::InfinitePast();
  *late = 0;
  for (const Op& op : ops) {
    if (op.watermark) {
      wm = std::max(wm, op.t);
      continue;
    }
    const int64_t t = absl::ToUnixMicros(op.t);
    bool accepted = false;
    for (int64_t k = FloorDiv(t - size_us, slide_us) - 1; k <= FloorDiv(t, slide_us) + 1; ++k) {
      const int64_t start = k * slide_us;
      if (!(start <= t && t < start + size_us)) continue;
      if (absl::FromUnixMicros(start + size_us) + lateness <= wm) continue;  // expired
      accepted = true;
      Ref& r = ref[{op.key, absl::FromUnixMicros(start)}];
      ++r.count;
      r.sum += op.value;
    }
    if (!accepted) ++*late;
  }
  return ref;
}

// The operator's last result for each (key, window start), with its checks on the emissions.
template <typename Agg>
std::map<std::pair<int, absl::Time>, typename Agg::Result> RunHopping(Agg agg,
                                                                      const HoppingWindow& hop,
                                                                      WindowOperatorOptions options,
                                                                      const std::vector<Op>& ops,
                                                                      uint64_t* late) {
  using Result = WindowResult<int, typename Agg::Result>;
  WindowOperator<int, Agg, HoppingWindow> op(agg, hop, options);
  std::map<std::pair<int, absl::Time>, typename Agg::Result> last;
  std::set<std::pair<int, absl::Time>> closed;
  size_t misplaced = 0, closed_twice = 0;
  auto emit = [&](const Result& r) {
    const int64_t start_us = absl::ToUnixMicros(r.start);
    if (r.end - r.start != hop.size() || start_us % absl::ToInt64Microseconds(hop.slide()) != 0) {
      ++misplaced;
    }
    last[{r.key, r.start}] = r.value;
    if (!r.is_update && !closed.emplace(r.key, r.start).second) ++closed_twice;
  };
  for (const Op& o : ops) {
    if (o.watermark) {
      op.AdvanceWatermark(o.t, emit);
    } else {
      (void)op.Add(o.key, o.t, o.value, emit);
    }
  }
  CHECK(misplaced == 0);
  CHECK(closed_twice == 0);
  CHECK(op.live_windows() == 0);
  CHECK(op.live_keys() == 0);
  *late = op.late_records();
  return last;
}

TEST_CASE("hopping windows of any size and slide equal a brute-force reference",
          "[window_operator]") {
  // (size, slide): not multiples (10 min / 3 min, 7 s / 2 s, 6 s / 4 s, 1 min / 25 s), equal
  // (5 s / 5 s) and multiples (4 min / 30 s), so that both pane layouts are covered.
  const auto [size, slide] =
      GENERATE(table<absl::Duration, absl::Duration>({{absl::Minutes(10), absl::Minutes(3)},
                                                      {absl::Seconds(7), absl::Seconds(2)},
                                                      {absl::Seconds(6), absl::Seconds(4)},
                                                      {absl::Minutes(1), absl::Seconds(25)},
                                                      {absl::Seconds(5), absl::Seconds(5)},
                                                      {absl::Minutes(4), absl::Seconds(30)}}));
  const int lateness_slides = GENERATE(0, 2);
  const EmitMode mode = GENERATE(EmitMode::kOnClose, EmitMode::kOnUpdate);
  const absl::Duration lateness = slide * lateness_slides;
  const WindowOperatorOptions options{.allowed_lateness = lateness, .emit = mode};
  const HoppingWindow hop(size, slide);
  INFO("size " << size << " slide " << slide << " lateness " << lateness);
  const std::vector<Op> ops = HoppingInput(23, 3000, 4, size, slide);
  uint64_t ref_late;
  const auto ref = HoppingReference(size, slide, lateness, ops, &ref_late);
  REQUIRE(ref.size() > 100);
  CHECK(ref_late > 0);
  uint64_t count_late, sum_late;
  const auto counts = RunHopping(Count(), hop, options, ops, &count_late);
  const auto sums = RunHopping(Sum<int64_t>(), hop, options, ops, &sum_late);
  CHECK(count_late == ref_late);
  CHECK(sum_late == ref_late);
  REQUIRE(counts.size() == ref.size());
  REQUIRE(sums.size() == ref.size());
  size_t mismatches = 0;
  for (const auto& [id, r] : ref) {
    auto c = counts.find(id);
    auto s = sums.find(id);
    if (c == counts.end() || s == sums.end() || c->second != r.count || s->second != r.sum) {
      ++mismatches;
    }
  }
  CHECK(mismatches == 0);
}

// --- Snapshots ---

// Input with late records, up to 8 minutes old: some within and some beyond one minute of allowed
// lateness.
std::vector<Op> LateInput(uint32_t seed, int records, int keys) {
  std::mt19937 rng(seed);
  std::vector<Op> ops;
  absl::Time cursor = kT0;
  for (int i = 0; i < records; ++i) {
    cursor += absl::Seconds(std::uniform_int_distribution<int>(0, 15)(rng));
    Op op;
    op.key = std::uniform_int_distribution<int>(0, keys - 1)(rng);
    op.t = cursor - absl::Seconds(std::uniform_int_distribution<int>(0, 480)(rng));
    op.value = std::uniform_int_distribution<int>(0, 9)(rng);
    ops.push_back(op);
    if (i % 7 == 6) ops.push_back(Op{true, 0, cursor - absl::Minutes(2), 0});
  }
  ops.push_back(Op{true, 0, cursor + absl::Hours(1), 0});
  return ops;
}

template <typename Assigner>
void CheckSnapshotCuts(const Assigner& assigner, EmitMode mode) {
  using Operator = WindowOperator<int, SumAggregator<int64_t>, Assigner>;
  using Result = WindowResult<int, int64_t>;
  const WindowOperatorOptions options{.allowed_lateness = absl::Minutes(1), .emit = mode};
  const std::vector<Op> ops = LateInput(11, 600, 6);
  auto run = [&](Operator& op, size_t from, size_t to, std::vector<Result>* out) {
    auto emit = [&](const Result& r) { out->push_back(r); };
    for (size_t i = from; i < to; ++i) {
      if (ops[i].watermark) {
        op.AdvanceWatermark(ops[i].t, emit);
      } else {
        (void)op.Add(ops[i].key, ops[i].t, ops[i].value, emit);
      }
    }
  };
  Operator whole(Sum<int64_t>(), assigner, options);
  std::vector<Result> expected;
  run(whole, 0, ops.size(), &expected);
  INFO(whole.late_records() << " " << expected.size());
  REQUIRE(whole.late_records() > 0);
  REQUIRE(expected.size() > 100);
  for (size_t cut = 0; cut <= ops.size(); cut += 13) {
    Operator first(Sum<int64_t>(), assigner, options);
    std::vector<Result> got;
    run(first, 0, cut, &got);
    std::string snapshot;
    first.Snapshot(&snapshot);
    Operator second(Sum<int64_t>(), assigner, options);
    REQUIRE(second.Restore(snapshot));
    std::string again;
    second.Snapshot(&again);
    CHECK(again == snapshot);
    CHECK(second.live_windows() == first.live_windows());
    CHECK(second.live_keys() == first.live_keys());
    run(second, cut, ops.size(), &got);
    CHECK(got == expected);
    CHECK(second.late_records() == whole.late_records());
  }
}

TEST_CASE("an operator restored from a snapshot emits what one that never stopped emits",
          "[window_operator][snapshot]") {
  const EmitMode mode = GENERATE(EmitMode::kOnClose, EmitMode::kOnUpdate);
  CheckSnapshotCuts(TumblingWindow(absl::Minutes(1)), mode);
  CheckSnapshotCuts(HoppingWindow(absl::Minutes(3), absl::Minutes(1)), mode);
  CheckSnapshotCuts(HoppingWindow(absl::Minutes(3), absl::Seconds(80)), mode);
  CheckSnapshotCuts(SessionWindow(absl::Seconds(20)), mode);
}

TEST_CASE("Restore rejects garbage and leaves the operator unchanged",
          "[window_operator][snapshot]") {
  using Op1 = WindowOperator<std::string, CountAggregator, SessionWindow>;
  Collector<StrCount> c;
  Op1 source(Count(), SessionWindow(absl::Minutes(5)), {.allowed_lateness = absl::Minutes(1)});
  (void)source.Add("alpha", At(0), 1, c);
  (void)source.Add("beta", At(3), 1, c);
  (void)source.Add("alpha", At(20), 1, c);
  source.AdvanceWatermark(At(6), c);
  std::string good;
  source.Snapshot(&good);

  Op1 target(Count(), SessionWindow(absl::Minutes(5)), {.allowed_lateness = absl::Minutes(1)});
  (void)target.Add("gamma", At(1), 1, c);
  std::string before;
  target.Snapshot(&before);
  auto unchanged = [&] {
    std::string now;
    target.Snapshot(&now);
    return now == before;
  };
  CHECK_FALSE(target.Restore(""));
  CHECK(unchanged());
  for (size_t n = 0; n < good.size(); ++n) {
    CHECK_FALSE(target.Restore(std::string_view(good).substr(0, n)));
  }
  CHECK_FALSE(target.Restore(good + "x"));
  CHECK(unchanged());
  // Every single-byte corruption either fails cleanly or yields a consistent operator.
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    Op1 probe(Count(), SessionWindow(absl::Minutes(5)), {.allowed_lateness = absl::Minutes(1)});
    if (probe.Restore(bad)) {  // e.g. a changed count or key: still a valid snapshot
      std::string round, again;
      probe.Snapshot(&round);
      Op1 copy(Count(), SessionWindow(absl::Minutes(5)), {.allowed_lateness = absl::Minutes(1)});
      REQUIRE(copy.Restore(round));
      copy.Snapshot(&again);
      CHECK(again == round);
    }
  }
  // Another assigner, size or lateness.
  WindowOperator<std::string, CountAggregator, SessionWindow> other_gap(
      Count(), SessionWindow(absl::Minutes(6)), {.allowed_lateness = absl::Minutes(1)});
  CHECK_FALSE(other_gap.Restore(good));
  WindowOperator<std::string, CountAggregator, SessionWindow> other_lateness(
      Count(), SessionWindow(absl::Minutes(5)));
  CHECK_FALSE(other_lateness.Restore(good));
  WindowOperator<std::string, CountAggregator, TumblingWindow> tumbling(
      Count(), TumblingWindow(absl::Minutes(5)), {.allowed_lateness = absl::Minutes(1)});
  CHECK_FALSE(tumbling.Restore(good));
  CHECK(target.Restore(good));
  CHECK(target.live_windows() == 2);  // alpha [0, 5) expired at 6; beta [3, 8), alpha [20, 25)
  CHECK(target.live_keys() == 2);
  CHECK(target.watermark() == At(6));
}

// --- Many windows and keys at once; copies; extreme times ---

TEST_CASE("many windows open at once with interleaved keys close in end then key order",
          "[window_operator]") {
  WindowOperator<std::string, CountAggregator, TumblingWindow> op(
      Count(), TumblingWindow(absl::Minutes(1)), {.allowed_lateness = absl::Minutes(2)});
  Collector<StrCount> c;
  std::mt19937 rng(5);
  // (end, key) -> count. Every third key is too long for the string's inline buffer.
  std::map<std::pair<absl::Time, std::string>, uint64_t> expected;
  for (int i = 0; i < 20000; ++i) {
    const int minute = std::uniform_int_distribution<int>(0, 29)(rng);
    const int k = std::uniform_int_distribution<int>(0, 299)(rng);
    const std::string key = "player-" + std::to_string(k) + std::string(k % 3 == 0 ? 20 : 0, 'x');
    REQUIRE(op.Add(key, At(minute, std::uniform_int_distribution<int>(0, 59)(rng)), 1, c));
    ++expected[{At(minute + 1), key}];
  }
  CHECK(c.out.empty());
  CHECK(op.live_windows() == expected.size());
  std::set<std::string> keys;
  for (const auto& [id, n] : expected) keys.insert(id.second);
  CHECK(op.live_keys() == keys.size());
  // Close a few windows at a time; each step frees what expired.
  for (int minute = 0; minute <= 40; minute += 4) {
    op.AdvanceWatermark(At(minute), c);
    size_t live = 0;
    std::set<std::string> live_keys;
    for (const auto& [id, n] : expected) {
      if (id.first + absl::Minutes(2) > At(minute)) {
        ++live;
        live_keys.insert(id.second);
      }
    }
    CHECK(op.live_windows() == live);
    CHECK(op.live_keys() == live_keys.size());
  }
  std::vector<StrCount> want;
  for (const auto& [id, n] : expected) {
    want.push_back(R(id.second, id.first - absl::Minutes(1), id.first, n, false));
  }
  CHECK(c.out == want);
  CHECK(op.live_windows() == 0);
  CHECK(op.live_keys() == 0);
  CHECK(op.state_bytes() == 0);
}

// The same records in two orders: equal states, so equal snapshots, before and after expiry.
template <typename Assigner>
void CheckSnapshotOrderIndependent(const Assigner& assigner) {
  using Operator = WindowOperator<int, SumAggregator<int64_t>, Assigner>;
  auto ignore = [](const WindowResult<int, int64_t>&) {};
  std::mt19937 rng(17);
  std::vector<Op> ops;
  for (int i = 0; i < 3000; ++i) {
    Op op;
    op.key = std::uniform_int_distribution<int>(0, 499)(rng);
    op.t = kT0 + absl::Seconds(std::uniform_int_distribution<int>(0, 1200)(rng));
    op.value = std::uniform_int_distribution<int>(0, 9)(rng);
    ops.push_back(op);
  }
  std::vector<Op> shuffled = ops;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  const WindowOperatorOptions options{.allowed_lateness = absl::Minutes(1)};
  Operator a(Sum<int64_t>(), assigner, options), b(Sum<int64_t>(), assigner, options);
  for (const Op& o : ops) REQUIRE(a.Add(o.key, o.t, o.value, ignore));
  for (const Op& o : shuffled) REQUIRE(b.Add(o.key, o.t, o.value, ignore));
  for (const absl::Time wm :
       {kT0 - absl::Minutes(1), kT0 + absl::Minutes(7), kT0 + absl::Hours(1)}) {
    a.AdvanceWatermark(wm, ignore);
    b.AdvanceWatermark(wm, ignore);
    std::string sa, sb, sc;
    a.Snapshot(&sa);
    b.Snapshot(&sb);
    CHECK(sa == sb);
    Operator c(Sum<int64_t>(), assigner, options);
    REQUIRE(c.Restore(sb));
    c.Snapshot(&sc);
    CHECK(sc == sa);
  }
  CHECK(a.live_windows() == 0);
}

TEST_CASE("snapshots do not depend on the order records arrived in",
          "[window_operator][snapshot]") {
  CheckSnapshotOrderIndependent(TumblingWindow(absl::Minutes(1)));
  CheckSnapshotOrderIndependent(HoppingWindow(absl::Minutes(3), absl::Minutes(1)));
  CheckSnapshotOrderIndependent(HoppingWindow(absl::Minutes(3), absl::Seconds(80)));
  CheckSnapshotOrderIndependent(SessionWindow(absl::Seconds(5)));
}

TEST_CASE("a copied or moved operator is independent of the original", "[window_operator]") {
  using IntCount = WindowResult<int, uint64_t>;
  using Operator = WindowOperator<int, CountAggregator, TumblingWindow>;
  Collector<IntCount> ca, cb;
  Operator a(Count(), TumblingWindow(absl::Minutes(1)));
  CHECK(a.Add(1, At(0, 10), 1, ca));
  Operator b = a;  // a's last window is open in both
  CHECK(b.Add(1, At(0, 20), 1, cb));
  CHECK(b.Add(2, At(0, 30), 1, cb));
  CHECK(a.live_windows() == 1);
  CHECK(b.live_windows() == 2);
  CHECK(a.Add(1, At(0, 40), 1, ca));
  Operator moved = std::move(b);
  CHECK(moved.Add(1, At(0, 50), 1, cb));
  a.AdvanceWatermark(At(1), ca);
  moved.AdvanceWatermark(At(1), cb);
  CHECK(ca.out == std::vector<IntCount>{{1, At(0), At(1), 2, false}});
  CHECK(cb.out == std::vector<IntCount>{{1, At(0), At(1), 3, false}, {2, At(0), At(1), 1, false}});
  b = moved;  // a moved-from operator may be assigned to
  CHECK(b.live_windows() == 0);
}

// Regression: the floor of such a time to its window overflowed int64 (undefined behaviour; a
// far-past record was counted in a window in the year 294247).
TEST_CASE("an event time beyond int64 microseconds is late rather than overflowing",
          "[window_operator]") {
  const absl::Time far_past = absl::FromUnixSeconds(-(int64_t{1} << 50));
  const absl::Time far_future = absl::FromUnixSeconds(int64_t{1} << 50);
  // The window holding it would end past the last microsecond.
  const absl::Time last_us = absl::FromUnixMicros(std::numeric_limits<int64_t>::max() - 1);
  Collector<StrCount> c;
  WindowOperator<std::string, CountAggregator, TumblingWindow> tumbling(
      Count(), TumblingWindow(absl::Minutes(1)));
  WindowOperator<std::string, CountAggregator, HoppingWindow> hopping(
      Count(), HoppingWindow(absl::Minutes(2), absl::Minutes(1)));
  for (const absl::Time t : {far_past, far_future, last_us}) {
    CHECK_FALSE(tumbling.Add("a", t, 1, c));
    CHECK_FALSE(hopping.Add("a", t, 1, c));
  }
  CHECK(tumbling.late_records() == 3);
  CHECK(hopping.late_records() == 3);
  CHECK(tumbling.live_windows() == 0);
  CHECK(hopping.live_windows() == 0);
  CHECK(tumbling.Add("a", At(0), 1, c));
  tumbling.AdvanceWatermark(absl::InfiniteFuture(), c);
  hopping.AdvanceWatermark(absl::InfiniteFuture(), c);
  CHECK(c.out == std::vector<StrCount>{R("a", At(0), At(1), 1, false)});
}

}  // namespace
}  // namespace rill
