// Keyed window aggregation: events per second through a WindowOperator counting per key in 1-minute
// tumbling windows over 10 k keys, and summing in 5-minute / 1-minute hopping windows, with the
// watermark advanced every 1,000 events. The baseline is a plain per-key count into a vector: what
// any keyed count costs before windows.
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include "rill/process/aggregators.h"
#include "rill/process/window.h"
#include "rill/process/window_operator.h"

namespace {

constexpr int kKeys = 10000;

void BM_PlainKeyedCountBaseline(benchmark::State& state) {
  std::vector<int64_t> counts(kKeys);
  uint64_t i = 0;
  for (auto _ : state) {
    ++counts[(i++ * 2654435761u) % kKeys];
  }
  benchmark::DoNotOptimize(counts.data());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PlainKeyedCountBaseline);

template <typename Assigner, typename Agg>
void Run(benchmark::State& state, Assigner assigner, Agg agg) {
  rill::WindowOperator<int64_t, Agg, Assigner> op(agg, assigner);
  const absl::Time t0 = absl::FromUnixSeconds(1704067200);
  int64_t emitted = 0;
  auto emit = [&emitted](const auto&) { ++emitted; };
  uint64_t i = 0;
  for (auto _ : state) {
    // 100 k events per simulated second.
    const absl::Time t = t0 + absl::Microseconds(static_cast<int64_t>(i * 10));
    const auto key = static_cast<int64_t>((i * 2654435761u) % kKeys);
    op.Add(key, t, 1, emit);
    if (++i % 1000 == 0) op.AdvanceWatermark(t - absl::Seconds(5), emit);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["emitted"] = static_cast<double>(emitted);
  state.counters["live_windows"] = static_cast<double>(op.live_windows());
}

void BM_TumblingCount(benchmark::State& state) {
  Run(state, rill::TumblingWindow(absl::Minutes(1)), rill::Count());
}
BENCHMARK(BM_TumblingCount);

void BM_HoppingSum(benchmark::State& state) {
  Run(state, rill::HoppingWindow(absl::Minutes(5), absl::Minutes(1)), rill::Sum<int64_t>());
}
BENCHMARK(BM_HoppingSum);

void BM_SessionCount(benchmark::State& state) {
  Run(state, rill::SessionWindow(absl::Seconds(30)), rill::Count());
}
BENCHMARK(BM_SessionCount);

}  // namespace
