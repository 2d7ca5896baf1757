// Keyed window aggregation: events per second through a WindowOperator counting per key in 1-minute
// tumbling windows over 10 k keys (integer and string keys), summing in 5-minute / 1-minute
// and 10-minute / 3-minute hopping windows, counting in 30-second sessions, and ranking the top
// items per game level, with 100 k events per simulated second and the watermark advanced every
// 1,000 events. The baseline is a plain per-key count into a vector: what any keyed count costs
// before windows.
#include <cstdint>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "rill/process/aggregators.h"
#include "rill/process/top_k.h"
#include "rill/process/window.h"
#include "rill/process/window_operator.h"

namespace {

constexpr int kKeys = 10000;

// The i-th event's key index: a multiplicative hash, so that consecutive events hit scattered keys.
uint64_t KeyIndex(uint64_t i) { return (i * 2654435761u) % kKeys; }

void BM_PlainKeyedCountBaseline(benchmark::State& state) {
  std::vector<int64_t> counts(kKeys);
  uint64_t i = 0;
  for (auto _ : state) {
    ++counts[KeyIndex(i++)];
  }
  benchmark::DoNotOptimize(counts.data());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PlainKeyedCountBaseline);

// Feeds event i = (key_of(i), t0 + 10 us * i, value_of(i)) and advances the watermark to 5 s
// behind the newest event every 1,000 events.
template <typename Key, typename Assigner, typename Agg, typename KeyOf, typename ValueOf>
void Run(benchmark::State& state, Assigner assigner, Agg agg, KeyOf key_of, ValueOf value_of) {
  rill::WindowOperator<Key, Agg, Assigner> op(agg, assigner);
  const absl::Time t0 = absl::FromUnixSeconds(1704067200);
  int64_t emitted = 0;
  auto emit = [&emitted](const auto&) { ++emitted; };
  uint64_t i = 0;
  for (auto _ : state) {
    // 100 k events per simulated second.
    const absl::Time t = t0 + absl::Microseconds(static_cast<int64_t>(i * 10));
    op.Add(key_of(i), t, value_of(i), emit);
    if (++i % 1000 == 0) op.AdvanceWatermark(t - absl::Seconds(5), emit);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["emitted"] = static_cast<double>(emitted);
  state.counters["live_windows"] = static_cast<double>(op.live_windows());
}

int64_t IntKey(uint64_t i) { return static_cast<int64_t>(KeyIndex(i)); }
int64_t One(uint64_t) { return 1; }

void BM_TumblingCount(benchmark::State& state) {
  Run<int64_t>(state, rill::TumblingWindow(absl::Minutes(1)), rill::Count(), IntKey, One);
}
BENCHMARK(BM_TumblingCount);

// As BM_TumblingCount with keys "player-0" .. "player-9999" (short enough for the string's
// inline buffer, as most ids are).
void BM_TumblingCountStringKey(benchmark::State& state) {
  std::vector<std::string> keys;
  keys.reserve(kKeys);
  for (int k = 0; k < kKeys; ++k) keys.push_back("player-" + std::to_string(k));
  auto key_of = [&keys](uint64_t i) -> const std::string& { return keys[KeyIndex(i)]; };
  Run<std::string>(state, rill::TumblingWindow(absl::Minutes(1)), rill::Count(), key_of, One);
}
BENCHMARK(BM_TumblingCountStringKey);

void BM_HoppingSum(benchmark::State& state) {
  Run<int64_t>(state, rill::HoppingWindow(absl::Minutes(5), absl::Minutes(1)), rill::Sum<int64_t>(),
               IntKey, One);
}
BENCHMARK(BM_HoppingSum);

// 10-minute windows every 3 minutes: the slide does not divide the size, so the state is kept in
// 1-minute panes (the gcd), 10 per window, and each pane is in 3 or 4 windows.
void BM_HoppingSumNonMultiple(benchmark::State& state) {
  Run<int64_t>(state, rill::HoppingWindow(absl::Minutes(10), absl::Minutes(3)),
               rill::Sum<int64_t>(), IntKey, One);
}
BENCHMARK(BM_HoppingSumNonMultiple);

void BM_SessionCount(benchmark::State& state) {
  Run<int64_t>(state, rill::SessionWindow(absl::Seconds(30)), rill::Count(), IntKey, One);
}
BENCHMARK(BM_SessionCount);

// The 10 most sold items per game level in 1-minute windows: 100 levels, 10 k distinct items
// drawn with a skew towards low ids (u * u / 10 k for u uniform), TopK with its default 100
// counters. Mostly the cost of the Space-Saving sketch; the operator's share is the key lookup.
void BM_TopK(benchmark::State& state) {
  auto level_of = [](uint64_t i) { return static_cast<int64_t>((i * 2654435761u) % 100); };
  auto item_of = [](uint64_t i) {
    const uint64_t u = (i * 0x9e3779b97f4a7c15ULL >> 32) % kKeys;
    return static_cast<int64_t>(u * u / kKeys);
  };
  Run<int64_t>(state, rill::TumblingWindow(absl::Minutes(1)), rill::TopK<int64_t>(10), level_of,
               item_of);
}
BENCHMARK(BM_TopK);

}  // namespace
