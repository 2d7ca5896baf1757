// Add throughput of each aggregator (values/s) beside a plain loop baseline, and Merge cost.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "rill/process/aggregators.h"
#include "rill/process/hyperloglog.h"
#include "rill/process/quantiles.h"
#include "rill/process/top_k.h"

namespace {

constexpr size_t kValues = 1 << 16;

const std::vector<int64_t>& Ints() {
  static const std::vector<int64_t> v = [] {
    std::mt19937_64 rng(1);
    std::vector<int64_t> out(kValues);
    for (auto& x : out) x = static_cast<int64_t>(rng() % 1000000);
    return out;
  }();
  return v;
}

const std::vector<double>& Doubles() {
  static const std::vector<double> v = [] {
    std::mt19937_64 rng(2);
    std::vector<double> out(kValues);
    for (auto& x : out) x = static_cast<double>(rng() >> 11) * 0x1.0p-53 * 1000.0;
    return out;
  }();
  return v;
}

// Zipf(1.1) over 100k items: a realistic heavy-hitter stream.
const std::vector<int64_t>& Zipf() {
  static const std::vector<int64_t> v = [] {
    std::vector<double> cdf(100000);
    double acc = 0;
    for (size_t r = 0; r < cdf.size(); ++r) cdf[r] = acc += 1.0 / std::pow(r + 1.0, 1.1);
    std::mt19937_64 rng(3);
    std::vector<int64_t> out(kValues);
    for (auto& x : out) {
      const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * acc;
      x = std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
    }
    return out;
  }();
  return v;
}

const std::vector<std::string>& Strings() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> out;
    out.reserve(kValues);
    for (int64_t x : Zipf()) out.push_back("product-" + std::to_string(x));
    return out;
  }();
  return v;
}

// The baseline: what a hand-written loop costs (sum into a local).
void BM_Baseline_SumLoop(benchmark::State& state) {
  const auto& v = Ints();
  for (auto _ : state) {
    int64_t sum = 0;
    for (int64_t x : v) {
      sum += x;
      benchmark::DoNotOptimize(sum);  // keep it one add per value, as the aggregators do
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * v.size()));
}
BENCHMARK(BM_Baseline_SumLoop);

void BM_Baseline_SumLoopDouble(benchmark::State& state) {
  const auto& v = Doubles();
  for (auto _ : state) {
    double sum = 0;
    for (double x : v) {
      sum += x;
      benchmark::DoNotOptimize(sum);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * v.size()));
}
BENCHMARK(BM_Baseline_SumLoopDouble);

template <typename A, typename V>
void RunAdd(benchmark::State& state, const A& agg, const std::vector<V>& values) {
  auto s = agg.Init();
  for (auto _ : state) {
    for (const V& x : values) {
      agg.Add(s, x);
      benchmark::DoNotOptimize(s);
    }
  }
  benchmark::DoNotOptimize(agg.Finish(s));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * values.size()));
}

void BM_Count(benchmark::State& state) { RunAdd(state, rill::Count(), Ints()); }
void BM_Sum_Int64(benchmark::State& state) { RunAdd(state, rill::Sum<int64_t>(), Ints()); }
void BM_Sum_Double(benchmark::State& state) { RunAdd(state, rill::Sum<double>(), Doubles()); }
void BM_Min_Int64(benchmark::State& state) { RunAdd(state, rill::Min<int64_t>(), Ints()); }
void BM_Max_Double(benchmark::State& state) { RunAdd(state, rill::Max<double>(), Doubles()); }
void BM_Mean_Double(benchmark::State& state) { RunAdd(state, rill::Mean<double>(), Doubles()); }
void BM_DistinctCount_Int64(benchmark::State& state) {
  RunAdd(state, rill::DistinctCount<int64_t>(), Ints());
}
void BM_DistinctCount_String(benchmark::State& state) {
  RunAdd(state, rill::DistinctCount<std::string>(), Strings());
}
void BM_Quantiles_Double(benchmark::State& state) {
  RunAdd(state, rill::Quantiles<double>(), Doubles());
}
void BM_TopK_Int64_Zipf(benchmark::State& state) {
  RunAdd(state, rill::TopK<int64_t>(10, static_cast<size_t>(state.range(0))), Zipf());
}
void BM_TopK_String_Zipf(benchmark::State& state) {
  RunAdd(state, rill::TopK<std::string>(10, static_cast<size_t>(state.range(0))), Strings());
}
BENCHMARK(BM_Count);
BENCHMARK(BM_Sum_Int64);
BENCHMARK(BM_Sum_Double);
BENCHMARK(BM_Min_Int64);
BENCHMARK(BM_Max_Double);
BENCHMARK(BM_Mean_Double);
BENCHMARK(BM_DistinctCount_Int64);
BENCHMARK(BM_DistinctCount_String);
BENCHMARK(BM_Quantiles_Double);
BENCHMARK(BM_TopK_Int64_Zipf)->Arg(100)->Arg(1000);
BENCHMARK(BM_TopK_String_Zipf)->Arg(100)->Arg(1000);

// Merge: one pane state into a window state (what a hopping window does per pane).
template <typename A, typename V>
void RunMerge(benchmark::State& state, const A& agg, const std::vector<V>& values) {
  auto a = agg.Init(), b = agg.Init();
  for (size_t i = 0; i < values.size(); ++i) agg.Add(i % 2 ? a : b, values[i]);
  for (auto _ : state) {
    auto into = a;  // copying is part of the cost a window pays
    agg.Merge(into, b);
    benchmark::DoNotOptimize(into);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_Merge_Sum(benchmark::State& state) { RunMerge(state, rill::Sum<int64_t>(), Ints()); }
void BM_Merge_DistinctCount(benchmark::State& state) {
  RunMerge(state, rill::DistinctCount<int64_t>(static_cast<int>(state.range(0))), Ints());
}
void BM_Merge_Quantiles(benchmark::State& state) {
  RunMerge(state, rill::Quantiles<double>(), Doubles());
}
void BM_Merge_TopK(benchmark::State& state) {
  RunMerge(state, rill::TopK<int64_t>(10, static_cast<size_t>(state.range(0))), Zipf());
}
BENCHMARK(BM_Merge_Sum);
BENCHMARK(BM_Merge_DistinctCount)->Arg(10)->Arg(14);
BENCHMARK(BM_Merge_Quantiles);
BENCHMARK(BM_Merge_TopK)->Arg(100)->Arg(1000);

}  // namespace
