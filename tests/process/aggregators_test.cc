#include "rill/process/aggregators.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

template <rill::Aggregator A, typename V>
typename A::State Fold(const A& agg, const std::vector<V>& values, size_t begin, size_t end) {
  auto state = agg.Init();
  for (size_t i = begin; i < end; ++i) agg.Add(state, values[i]);
  return state;
}

template <rill::Aggregator A, typename V>
typename A::Result FoldAll(const A& agg, const std::vector<V>& values) {
  return agg.Finish(Fold(agg, values, 0, values.size()));
}

// Merge of the two halves, split at every position, in both orders, equals the whole.
template <rill::Aggregator A, typename V>
void CheckEverySplit(const A& agg, const std::vector<V>& values) {
  const auto whole = FoldAll(agg, values);
  for (size_t split = 0; split <= values.size(); ++split) {
    auto left = Fold(agg, values, 0, split);
    auto right = Fold(agg, values, split, values.size());
    auto lr = left;
    agg.Merge(lr, right);
    auto rl = right;
    agg.Merge(rl, left);
    INFO("split at " << split);
    CHECK(agg.Finish(lr) == whole);
    CHECK(agg.Finish(rl) == whole);
  }
}

// Random chunks merged in a random order equal the whole.
template <rill::Aggregator A, typename V>
void CheckRandomSplits(const A& agg, const std::vector<V>& values, uint32_t seed) {
  const auto whole = FoldAll(agg, values);
  std::mt19937 rng(seed);
  for (int round = 0; round < 20; ++round) {
    std::vector<typename A::State> parts;
    size_t begin = 0;
    while (begin < values.size()) {
      const size_t len = std::uniform_int_distribution<size_t>(0, values.size() / 4 + 1)(rng);
      const size_t end = std::min(values.size(), begin + len);
      parts.push_back(Fold(agg, values, begin, end));
      begin = end;
    }
    while (parts.size() > 1) {  // merge random pairs: a random merge tree
      const size_t i = std::uniform_int_distribution<size_t>(0, parts.size() - 1)(rng);
      size_t j = std::uniform_int_distribution<size_t>(0, parts.size() - 2)(rng);
      if (j >= i) ++j;
      agg.Merge(parts[i], parts[j]);
      parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(j));
    }
    CHECK(agg.Finish(parts.empty() ? agg.Init() : parts[0]) == whole);
  }
}

// Encode/Decode round trip, and every truncation, extension and header corruption is refused
// without touching the target state.
template <rill::Aggregator A>
void CheckSnapshot(const A& agg, const typename A::State& state) {
  std::string bytes;
  agg.Encode(state, &bytes);
  auto decoded = agg.Init();
  REQUIRE(agg.Decode(bytes, &decoded));
  CHECK(agg.Finish(decoded) == agg.Finish(state));
  std::string again;
  agg.Encode(decoded, &again);
  CHECK(again == bytes);

  const auto untouched = agg.Finish(decoded);
  for (size_t len = 0; len < bytes.size(); ++len) {
    CHECK_FALSE(agg.Decode(std::string_view(bytes).substr(0, len), &decoded));
  }
  CHECK_FALSE(agg.Decode(bytes + '\0', &decoded));
  for (size_t i = 0; i < 3; ++i) {  // version, kind, type
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    CHECK_FALSE(agg.Decode(bad, &decoded));
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {  // random garbage: any answer, but no crash
    std::string junk(std::uniform_int_distribution<size_t>(0, 40)(rng), '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    auto scratch = agg.Init();
    (void)agg.Decode(junk, &scratch);
  }
  CHECK(agg.Finish(decoded) == untouched);
}

std::vector<int> SmallInts() { return {5, -3, 12, 0, 7, -3, 42, 8, -17, 1}; }

std::vector<int64_t> RandomInts(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> v(n);
  for (auto& x : v) x = static_cast<int64_t>(rng() % 2000001) - 1000000;
  return v;
}

// Doubles whose sums are exact (multiples of 1/8 far below 2^53), so merge order cannot matter.
std::vector<double> DyadicDoubles(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = static_cast<double>(static_cast<int>(rng() % 80001) - 40000) / 8.0;
  return v;
}

}  // namespace

TEST_CASE("Count counts values of any type", "[aggregators]") {
  const auto count = rill::Count();
  auto s = count.Init();
  CHECK(count.Finish(s) == 0);
  count.Add(s, 1);
  count.Add(s, std::string("x"));
  count.Add(s, 2.5);
  CHECK(count.Finish(s) == 3);
  CheckEverySplit(count, SmallInts());
  CheckRandomSplits(count, RandomInts(1000, 1), 2);
  CheckSnapshot(count, s);
  CheckSnapshot(count, count.Init());
  static_assert(rill::AggregatorFor<rill::CountAggregator, std::string>);
}

TEST_CASE("Sum is exact for integers and dyadic doubles", "[aggregators]") {
  const auto sum = rill::Sum<int>();
  CHECK(FoldAll(sum, SmallInts()) == 5 - 3 + 12 + 0 + 7 - 3 + 42 + 8 - 17 + 1);
  CHECK(sum.Finish(sum.Init()) == 0);
  static_assert(std::is_same_v<decltype(sum)::Result, int64_t>);
  CheckEverySplit(sum, SmallInts());

  const auto sum64 = rill::Sum<int64_t>();
  const auto big = RandomInts(5000, 3);
  int64_t expected = 0;
  for (int64_t v : big) expected += v;
  CHECK(FoldAll(sum64, big) == expected);
  CheckRandomSplits(sum64, big, 4);

  const auto sumd = rill::Sum<double>();
  const auto doubles = DyadicDoubles(5000, 5);
  double expected_d = 0;
  for (double v : doubles) expected_d += v;
  CHECK(FoldAll(sumd, doubles) == expected_d);
  CheckRandomSplits(sumd, doubles, 6);
  CheckSnapshot(sumd, Fold(sumd, doubles, 0, doubles.size()));
  CheckSnapshot(sum, Fold(sum, SmallInts(), 0, 10));
}

TEST_CASE("Sum of integers wraps around instead of overflowing", "[aggregators]") {
  const auto sum = rill::Sum<int64_t>();
  auto s = sum.Init();
  sum.Add(s, std::numeric_limits<int64_t>::max());
  sum.Add(s, 1);
  CHECK(sum.Finish(s) == std::numeric_limits<int64_t>::min());
  const auto usum = rill::Sum<uint32_t>();
  auto u = usum.Init();
  usum.Add(u, 4000000000u);
  usum.Add(u, 4000000000u);
  CHECK(usum.Finish(u) == 8000000000u);  // accumulates in uint64_t
}

TEST_CASE("Min and Max are exact, nullopt when empty, and ignore NaN", "[aggregators]") {
  const auto min = rill::Min<int>();
  const auto max = rill::Max<int>();
  CHECK(min.Finish(min.Init()) == std::nullopt);
  CHECK(max.Finish(max.Init()) == std::nullopt);
  CHECK(FoldAll(min, SmallInts()) == -17);
  CHECK(FoldAll(max, SmallInts()) == 42);
  CheckEverySplit(min, SmallInts());
  CheckEverySplit(max, SmallInts());
  const auto big = RandomInts(5000, 8);
  const auto min64 = rill::Min<int64_t>();
  const auto max64 = rill::Max<int64_t>();
  CHECK(FoldAll(min64, big) == *std::min_element(big.begin(), big.end()));
  CHECK(FoldAll(max64, big) == *std::max_element(big.begin(), big.end()));
  CheckRandomSplits(min64, big, 9);
  CheckRandomSplits(max64, big, 10);

  const auto mind = rill::Min<double>();
  const auto maxd = rill::Max<double>();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> with_nan = {nan, 3.0, -0.0, 0.0, nan, -2.5, 9.0, 0.0, nan};
  CHECK(FoldAll(mind, with_nan) == -2.5);
  CHECK(FoldAll(maxd, with_nan) == 9.0);
  CheckEverySplit(mind, with_nan);
  CheckEverySplit(maxd, with_nan);
  CHECK(FoldAll(mind, std::vector<double>{nan}) == std::nullopt);
  // Signed zeros: the result does not depend on the order.
  const auto zmin = FoldAll(mind, std::vector<double>{0.0, -0.0});
  const auto zmin2 = FoldAll(mind, std::vector<double>{-0.0, 0.0});
  CHECK(std::signbit(*zmin));
  CHECK(std::signbit(*zmin2));
  CHECK_FALSE(std::signbit(*FoldAll(maxd, std::vector<double>{-0.0, 0.0})));

  CheckSnapshot(min, Fold(min, SmallInts(), 0, 10));
  CheckSnapshot(max, max.Init());
  CheckSnapshot(maxd, Fold(maxd, with_nan, 0, with_nan.size()));
  // A NaN smuggled into a snapshot is refused.
  std::string bytes;
  maxd.Encode(std::optional<double>(1.0), &bytes);
  const double qnan = nan;
  std::memcpy(bytes.data() + 4, &qnan, sizeof(double));  // little-endian hosts only
  auto s = maxd.Init();
  CHECK_FALSE(maxd.Decode(bytes, &s));
}

TEST_CASE("Mean is sum over count, nullopt when empty", "[aggregators]") {
  const auto mean = rill::Mean<int>();
  CHECK(mean.Finish(mean.Init()) == std::nullopt);
  CHECK(*FoldAll(mean, SmallInts()) == Approx(52.0 / 10.0).epsilon(1e-15));
  CHECK(FoldAll(mean, std::vector<int>{1, 2}) == 1.5);
  CheckEverySplit(mean, SmallInts());
  const auto meand = rill::Mean<double>();
  const auto doubles = DyadicDoubles(4000, 11);
  CheckRandomSplits(meand, doubles, 12);
  CheckSnapshot(meand, Fold(meand, doubles, 0, doubles.size()));
  CheckSnapshot(mean, mean.Init());
  // An "empty" state with a sum is garbage.
  std::string bytes;
  rill::MeanAggregator<int>::State bad{5, 0};
  mean.Encode(bad, &bytes);
  auto s = mean.Init();
  CHECK_FALSE(mean.Decode(bytes, &s));
}

TEST_CASE("Snapshots pin their byte layout", "[aggregators]") {
  std::string bytes;
  rill::Count().Encode(0x0102, &bytes);
  CHECK(bytes == std::string("\x01\x01\x00\x02\x01\x00\x00\x00\x00\x00\x00", 11));
  bytes.clear();
  rill::Sum<int32_t>().Encode(-2, &bytes);  // accumulates in int64_t; type code: signed, 4 bytes
  CHECK(bytes == std::string("\x01\x02\x44\xfe\xff\xff\xff\xff\xff\xff\xff", 11));
  // A Sum<int32_t> state is not a Sum<uint32_t> or a Mean<int32_t> one.
  rill::SumAggregator<uint32_t>::State u;
  CHECK_FALSE(rill::Sum<uint32_t>().Decode(bytes, &u));
  rill::MeanAggregator<int32_t>::State m;
  CHECK_FALSE(rill::Mean<int32_t>().Decode(bytes, &m));
}

namespace {

// A user aggregator: population variance by Chan et al.'s parallel formula (count, mean, M2).
// Nothing to derive from: satisfying rill::Aggregator is enough.
struct Variance {
  using Input = double;
  struct State {
    uint64_t n = 0;
    double mean = 0;
    double m2 = 0;
  };
  using Result = std::optional<double>;

  State Init() const { return {}; }
  void Add(State& s, const double& x) const {
    ++s.n;
    const double delta = x - s.mean;
    s.mean += delta / static_cast<double>(s.n);
    s.m2 += delta * (x - s.mean);
  }
  void Merge(State& a, const State& b) const {
    if (b.n == 0) return;
    if (a.n == 0) {
      a = b;
      return;
    }
    const double n = static_cast<double>(a.n + b.n);
    const double delta = b.mean - a.mean;
    a.mean += delta * static_cast<double>(b.n) / n;
    a.m2 += b.m2 + delta * delta * static_cast<double>(a.n) * static_cast<double>(b.n) / n;
    a.n += b.n;
  }
  Result Finish(const State& s) const {
    if (s.n == 0) return std::nullopt;
    return s.m2 / static_cast<double>(s.n);
  }
  void Encode(const State& s, std::string* out) const {
    out->push_back('\x80');  // its own version byte
    out->append(reinterpret_cast<const char*>(&s), sizeof(s));
  }
  bool Decode(std::string_view in, State* s) const {
    if (in.size() != 1 + sizeof(State) || in[0] != '\x80') return false;
    std::memcpy(s, in.data() + 1, sizeof(State));
    return true;
  }
};
static_assert(rill::Aggregator<Variance>);
static_assert(rill::AggregatorFor<Variance, int>);
static_assert(!rill::AggregatorFor<rill::SumAggregator<int>, std::string>);

// What a pipeline does with any aggregator: one state per pane, merged into windows.
template <rill::Aggregator A>
typename A::Result MergePanes(const A& agg,
                              const std::vector<std::vector<typename A::Input>>& panes) {
  auto window = agg.Init();
  for (const auto& pane : panes) {
    auto s = agg.Init();
    for (const auto& v : pane) agg.Add(s, v);
    agg.Merge(window, s);
  }
  return agg.Finish(window);
}

}  // namespace

TEST_CASE("A user aggregator plugs in through the concept", "[aggregators]") {
  const Variance var;
  const std::vector<std::vector<double>> panes = {{2, 4}, {4, 4, 5}, {}, {5, 7, 9}};
  CHECK(*MergePanes(var, panes) == Approx(4.0));  // the classic example: stddev 2
  CHECK(MergePanes(rill::Mean<double>(), panes) == 5.0);
  CHECK(MergePanes(rill::Max<double>(), panes) == 9.0);
  auto s = var.Init();
  var.Add(s, 1.0);
  std::string bytes;
  var.Encode(s, &bytes);
  auto d = var.Init();
  REQUIRE(var.Decode(bytes, &d));
  CHECK(d.n == 1);
}
