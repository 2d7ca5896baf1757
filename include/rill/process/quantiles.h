// Quantiles: approximate quantiles (median, p95, p99, ...) of arithmetic values, by a KLL sketch.
//
// KLL (Karnin, Lang, Liberty, "Optimal quantile approximation in streams", 2016) keeps a stack
// of sorted buffers ("compactors"); level h holds values of weight 2^h. When the sketch is full,
// the lowest full level is sorted and every other value (a random half: odd or even positions)
// moves up one level with twice the weight. Level capacities shrink by 2/3 per level down from
// the top (at least 8), so a sketch holds about 3·k values whatever the input length.
//
// Error: with accuracy ε, k is chosen as (2.296 / ε)^(1 / 0.9723) (the constants DataSketches
// measured for this variant of KLL), so that the normalized rank error of a query is at most ε
// with 99% confidence:
//     |rank(Quantile(q)) / n - q| <= ε        and       |Rank(x) - true rank of x / n| <= ε,
// independent of the input order and distribution. Examples: ε = 0.01 (default): k = 269, about
// 800 retained values; ε = 0.001: k ≈ 2,870. min() and max() — and Quantile(0), Quantile(1) —
// are exact. The coin flips come from a deterministic generator in the State, so the same input
// (and the same merge order) always gives the same answer; tests pin the bound on fixed data.
//
// Merge concatenates level by level and compacts again; the bound holds for the merged n, for any
// number of merges. Merge(a, b) and Merge(b, a) give the same answers; different merge trees
// give different answers within the bound.
//
// Example:
//   auto latency = rill::Quantiles<double>();                 // ε = 0.01
//   auto s = latency.Init();
//   for (double ms : samples) latency.Add(s, ms);
//   auto q = latency.Finish(s);
//   std::optional<double> p99 = q.Quantile(0.99);              // nullopt when empty
//
// Cost: Add is amortized O(1) (a compaction sorts one level every ~k/2 adds). Allocation: the
// levels grow (amortized) up to about 3·k values and then stay; Add does not allocate after that.
// Finish allocates its sorted view. NaN inputs are ignored; infinities are values like any other.
// Thread safety: the aggregator is immutable and thread-safe; a State is not.
#ifndef RILL_PROCESS_QUANTILES_H_
#define RILL_PROCESS_QUANTILES_H_

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/numeric/int128.h"
#include "rill/process/aggregators.h"

namespace rill {

inline constexpr double kDefaultQuantilesAccuracy = 0.01;
inline constexpr double kMinQuantilesAccuracy = 0.0005;
inline constexpr double kMaxQuantilesAccuracy = 0.25;

// A KLL sketch. Copyable value.
template <typename T>
struct QuantilesState {
  uint64_t n = 0;  // values added (total weight)
  T min{};         // exact; meaningful when n > 0
  T max{};
  uint64_t coin = 0x2545f4914f6cdd1dULL;  // deterministic coin-flip generator
  uint64_t size = 0;                      // values retained, over all levels
  uint64_t capacity = 0;                  // total capacity for the current number of levels
  std::vector<std::vector<T>> levels;     // level h has weight 2^h; levels >= 1 are sorted
};

// What Quantiles' Finish returns: a sorted, weighted view of the sketch.
template <typename T>
class QuantilesResult {
 public:
  QuantilesResult() = default;
  QuantilesResult(std::vector<std::pair<T, uint64_t>> weighted, uint64_t n, T min, T max,
                  double accuracy)
      : n_(n), min_(min), max_(max), accuracy_(accuracy) {
    std::sort(weighted.begin(), weighted.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    items_.reserve(weighted.size());
    cumulative_.reserve(weighted.size());
    uint64_t acc = 0;
    for (const auto& [v, w] : weighted) {
      items_.push_back(v);
      cumulative_.push_back(acc += w);
    }
  }

  // The number of values summarized.
  uint64_t count() const { return n_; }
  bool empty() const { return n_ == 0; }
  // Exact extremes; nullopt when empty.
  std::optional<T> min() const { return empty() ? std::nullopt : std::optional<T>(min_); }
  std::optional<T> max() const { return empty() ? std::nullopt : std::optional<T>(max_); }
  // The sketch's ε: the normalized rank error bound (99% confidence).
  double accuracy() const { return accuracy_; }

  // The q-quantile, q in [0, 1] (clamped): the smallest retained value x such that an estimated
  // q·n values are <= x. Quantile(0) is the exact min, Quantile(1) the exact max. nullopt when
  // empty or q is NaN.
  std::optional<T> Quantile(double q) const {
    if (empty() || std::isnan(q)) return std::nullopt;
    if (q <= 0) return min_;
    if (q >= 1) return max_;
    const double target = q * static_cast<double>(n_);
    const auto it =
        std::lower_bound(cumulative_.begin(), cumulative_.end(), target,
                         [](uint64_t c, double t) { return static_cast<double>(c) < t; });
    if (it == cumulative_.end()) return max_;
    return items_[static_cast<size_t>(it - cumulative_.begin())];
  }

  // The estimated fraction of values <= x, in [0, 1]; 0 when empty.
  double Rank(T x) const {
    if (empty()) return 0;
    if (x < min_) return 0;
    if (!(x < max_)) return 1;
    const auto it = std::upper_bound(items_.begin(), items_.end(), x);
    if (it == items_.begin()) return 0;
    return static_cast<double>(cumulative_[static_cast<size_t>(it - items_.begin()) - 1]) /
           static_cast<double>(n_);
  }

 private:
  std::vector<T> items_;
  std::vector<uint64_t> cumulative_;
  uint64_t n_ = 0;
  T min_{};
  T max_{};
  double accuracy_ = 0;
};

template <typename T>
requires std::is_arithmetic_v<T> &&(!std::is_same_v<T, bool>)class QuantilesAggregator {
 public:
  using Input = T;
  using State = QuantilesState<T>;
  using Result = QuantilesResult<T>;

  static constexpr uint32_t kMinWidth = 8;  // the smallest level capacity
  static constexpr size_t kMaxLevels = 61;  // n < 2^64 never needs more

  // `accuracy` (ε) is clamped to [kMinQuantilesAccuracy, kMaxQuantilesAccuracy].
  explicit QuantilesAggregator(double accuracy = kDefaultQuantilesAccuracy)
      : accuracy_(std::clamp(std::isnan(accuracy) ? kDefaultQuantilesAccuracy : accuracy,
                             kMinQuantilesAccuracy, kMaxQuantilesAccuracy)),
        k_(static_cast<uint32_t>(
            std::max<double>(kMinWidth, std::ceil(std::pow(2.296 / accuracy_, 1.0 / 0.9723))))) {
    // Level capacities by depth, computed once: Compress runs every few adds on long inputs.
    for (size_t depth = 0; depth < kMaxLevels; ++depth) {
      const double cap =
          std::ceil(static_cast<double>(k_) * std::pow(2.0 / 3.0, static_cast<double>(depth)));
      capacity_by_depth_[depth] = std::max<uint32_t>(kMinWidth, static_cast<uint32_t>(cap));
    }
  }

  double accuracy() const { return accuracy_; }
  // KLL's k: the top level's capacity.
  uint32_t k() const { return k_; }

  State Init() const {
    State s;
    s.levels.resize(1);
    s.capacity = TotalCapacity(1);
    return s;
  }

  void Add(State& s, const T& v) const {
    if (internal::IsNan(v)) return;
    if (s.levels.empty()) s = Init();
    if (s.n == 0) {
      s.min = s.max = v;
    } else {
      if (v < s.min) s.min = v;
      if (s.max < v) s.max = v;
    }
    ++s.n;
    s.levels[0].push_back(v);
    if (++s.size > s.capacity) Compress(s);
  }

  void Merge(State& into, const State& from) const {
    if (from.n == 0) return;
    if (&into == &from) {  // merging a state with itself: merge a copy
      const State copy = from;
      Merge(into, copy);
      return;
    }
    if (into.n == 0) {
      into = from;
      return;
    }
    if (from.min < into.min) into.min = from.min;
    if (into.max < from.max) into.max = from.max;
    into.n += from.n;
    into.coin = internal::Mix64(into.coin ^ from.coin);
    if (into.levels.size() < from.levels.size()) into.levels.resize(from.levels.size());
    for (size_t h = 0; h < from.levels.size(); ++h) {
      const std::vector<T>& src = from.levels[h];
      if (h == 0) {
        into.levels[0].insert(into.levels[0].end(), src.begin(), src.end());
      } else {
        MergeSortedInto(into.levels[h], src.data(), src.size());
      }
    }
    into.size += from.size;
    into.capacity = TotalCapacity(into.levels.size());
    Compress(into);
  }

  Result Finish(const State& s) const {
    std::vector<std::pair<T, uint64_t>> weighted;
    weighted.reserve(s.size);
    for (size_t h = 0; h < s.levels.size(); ++h) {
      for (const T& v : s.levels[h]) weighted.emplace_back(v, uint64_t{1} << h);
    }
    return Result(std::move(weighted), s.n, s.min, s.max, accuracy_);
  }

  // Layout after the header: u32 k, u64 n, min, max, u64 coin, u8 number of levels, then per
  // level u32 count and its values.
  void Encode(const State& s, std::string* out) const {
    internal::PutHeader(out, static_cast<uint8_t>(AggregatorKind::kQuantiles),
                        internal::ArithmeticTypeCode<T>());
    internal::PutLittleEndian(out, k_);
    internal::PutLittleEndian(out, s.n);
    internal::PutArithmetic(out, s.min);
    internal::PutArithmetic(out, s.max);
    internal::PutLittleEndian(out, s.coin);
    internal::PutU8(out, static_cast<uint8_t>(s.levels.size()));
    for (const auto& level : s.levels) {
      internal::PutLittleEndian(out, static_cast<uint32_t>(level.size()));
      for (const T& v : level) internal::PutArithmetic(out, v);
    }
  }

  // Accepts only a state of this aggregator's k whose weights add up to n, with sorted upper
  // levels, no NaN, every value within [min, max], and no more values than the levels hold.
  bool Decode(std::string_view bytes, State* state) const {
    internal::ByteReader in(bytes);
    uint32_t k;
    uint8_t num_levels;
    State s;
    if (!internal::ReadHeader(&in, static_cast<uint8_t>(AggregatorKind::kQuantiles),
                              internal::ArithmeticTypeCode<T>()) ||
        !in.LittleEndian(&k) || k != k_ || !in.LittleEndian(&s.n) || !in.Arithmetic(&s.min) ||
        !in.Arithmetic(&s.max) || !in.LittleEndian(&s.coin) || !in.U8(&num_levels) ||
        num_levels == 0 || num_levels > kMaxLevels || internal::IsNan(s.min) ||
        internal::IsNan(s.max)) {
      return false;
    }
    s.capacity = TotalCapacity(num_levels);
    s.levels.resize(num_levels);
    absl::uint128 weight = 0;
    for (size_t h = 0; h < num_levels; ++h) {
      uint32_t count;
      if (!in.LittleEndian(&count) || count > in.remaining() / sizeof(T)) return false;
      s.size += count;
      if (s.size > s.capacity) return false;
      auto& level = s.levels[h];
      level.resize(count);
      for (T& v : level) {
        if (!in.Arithmetic(&v) || internal::IsNan(v) || v < s.min || s.max < v) return false;
      }
      if (h > 0 && !std::is_sorted(level.begin(), level.end())) return false;
      weight += absl::uint128(count) << h;
    }
    if (!in.AtEnd() || weight != s.n || (s.n > 0 && s.max < s.min)) return false;
    if (s.n == 0) s.min = s.max = T{};
    *state = std::move(s);
    return true;
  }

 private:
  // Capacity of level h among `num_levels`: k·(2/3)^depth (depth 0 at the top), at least 8.
  uint64_t LevelCapacity(size_t h, size_t num_levels) const {
    return capacity_by_depth_[num_levels - 1 - h];
  }
  uint64_t TotalCapacity(size_t num_levels) const {
    uint64_t total = 0;
    for (size_t h = 0; h < num_levels; ++h) total += LevelCapacity(h, num_levels);
    return total;
  }

  // Merges sorted `src` into sorted `dst` from the back, in place (no temporary buffer).
  static void MergeSortedInto(std::vector<T>& dst, const T* src, size_t m) {
    size_t i = dst.size();
    size_t j = m;
    dst.resize(dst.size() + m);
    size_t w = dst.size();
    while (j > 0) {
      if (i > 0 && src[j - 1] < dst[i - 1]) {
        dst[--w] = dst[--i];
      } else {
        dst[--w] = src[--j];
      }
    }
  }

  // Compacts the lowest full level until the sketch fits its capacity.
  void Compress(State& s) const {
    while (s.size > s.capacity) {
      size_t h = 0;
      while (h + 1 < s.levels.size() && s.levels[h].size() < LevelCapacity(h, s.levels.size())) {
        ++h;
      }
      if (h + 1 == s.levels.size()) {
        if (s.levels.size() >= kMaxLevels) return;  // unreachable below 2^61 values
        s.levels.emplace_back();
        s.capacity = TotalCapacity(s.levels.size());
      }
      std::vector<T>& level = s.levels[h];
      if (h == 0) std::sort(level.begin(), level.end());
      // An odd value out stays behind (the largest); the rest halve.
      const size_t pairs = level.size() / 2;
      const bool odd = level.size() % 2 == 1;
      s.coin = internal::Mix64(s.coin);
      const size_t offset = s.coin >> 63;
      for (size_t j = 0; j < pairs; ++j) level[j] = level[2 * j + offset];
      const T left_behind = odd ? level[2 * pairs] : T{};
      MergeSortedInto(s.levels[h + 1], level.data(), pairs);
      level.resize(odd ? 1 : 0);
      if (odd) level[0] = left_behind;
      s.size -= pairs;
    }
  }

  double accuracy_;
  uint32_t k_;
  std::array<uint32_t, kMaxLevels> capacity_by_depth_{};
};

// Quantiles of T with normalized rank error <= accuracy (99% confidence); accuracy in
// [0.0005, 0.25], default 0.01.
template <typename T>
QuantilesAggregator<T> Quantiles(double accuracy = kDefaultQuantilesAccuracy) {
  return QuantilesAggregator<T>(accuracy);
}

static_assert(Aggregator<QuantilesAggregator<double>>);

}  // namespace rill

#endif  // RILL_PROCESS_QUANTILES_H_
