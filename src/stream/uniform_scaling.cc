#include "stream/uniform_scaling.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/numeric/int128.h"

namespace rill::internal {

namespace {

using absl::uint128;

// A boundary may be kept at final index k only while |p - k * 2^128 / target| is at most this
// many target widths. Bounds the work to (2 * kWindow + 1) candidates per boundary; it can only
// cost optimality for open shards far from uniform (hand splits), never validity.
constexpr int kWindow = 8;

// Keys covered less one: the whole space covers 2^128 keys, which do not fit in 128 bits.
uint128 SpanOf(uint128 first, uint128 last) { return last - first; }

// floor(w / c) and w mod c for w = span + 1 keys.
std::pair<uint128, uint128> DivideWidth(uint128 span, uint64_t c) {
  const uint128 q = span / c;
  const uint128 r = span % c;
  if (r + 1 == c) return {q + 1, 0};
  return {q, r + 1};
}

// Whether span + 1 keys cut into c even pieces leave every piece within [lo, hi] keys.
bool EvenPiecesFit(uint128 span, uint64_t c, uint128 lo, uint128 hi) {
  const auto [q, r] = DivideWidth(span, c);
  return q >= lo && q + (r != 0 ? 1 : 0) <= hi;
}

// floor(2^128 * a / b) and whether it was exact, for a < 2^32 and 0 < b < 2^64.
std::pair<uint128, bool> ScaledSpace(uint64_t a, uint64_t b) {
  const auto [q, r] = DivideWidth(absl::Uint128Max(), b);  // 2^128 = q * b + r
  const uint128 ar = uint128(a) * r;
  return {q * a + ar / b, ar % b == 0};
}

// floor(p * m / 2^128).
uint64_t MulHigh(uint128 p, uint64_t m) {
  const uint128 high = uint128(absl::Uint128High64(p)) * m;
  const uint128 low = uint128(absl::Uint128Low64(p)) * m;
  return absl::Uint128Low64((high + (low >> 64)) >> 64);
}

// A boundary kept at final index k: the plan's runs end at kept boundaries. A and B are the
// coordinates in which one kept boundary may follow another: p' - p >= (k' - k) * lo and
// p' - p <= (k' - k) * hi (the run between them cut into k' - k pieces fits the tolerance) is
// A' >= A and B' >= B, for A = p - k * lo and B = k * hi - p. So the most boundaries that can be
// kept is the longest chain under that order, found as a longest non-decreasing subsequence.
struct Candidate {
  uint128 a;
  uint128 b;
  int boundary;  // open[boundary] starts at p
  int k;
  double cost;  // |p - k * 2^128 / target| in target widths: the tie-break
};

struct Best {
  int kept = 0;
  double cost = 0;
  int candidate = -1;
  bool Beats(const Best& o) const { return kept != o.kept ? kept > o.kept : cost < o.cost; }
};

}  // namespace

HashKey PieceStart(const HashKeyRange& range, int pieces, int j) {
  const uint128 start = range.starting_hash_key.value();
  const auto [q, r] =
      DivideWidth(SpanOf(start, range.ending_hash_key.value()), static_cast<uint64_t>(pieces));
  const uint64_t jj = static_cast<uint64_t>(j);
  return HashKey(start + q * jj + r * jj / static_cast<uint64_t>(pieces));
}

std::vector<ScalingRun> PlanUniformScaling(absl::Span<const HashKeyRange> open, int target) {
  const int n = static_cast<int>(open.size());
  std::vector<ScalingRun> runs;
  if (target == 1) {
    runs.push_back({0, n, 1});
    return runs;
  }
  const uint64_t m = static_cast<uint64_t>(target);
  const auto span = [&](int first, int last) {
    return SpanOf(open[first].starting_hash_key.value(), open[last].ending_hash_key.value());
  };

  // The tolerance in keys: [lo, hi] = [ceil(W * (1 - x)), floor(W * (1 + x))], W = 2^128 / target.
  const auto [lo_floor, lo_exact] = ScaledSpace(100 - kUniformTolerancePercent, 100 * m);
  const uint128 lo = lo_floor + (lo_exact ? 0 : 1);
  const uint128 hi = ScaledSpace(100 + kUniformTolerancePercent, 100 * m).first;

  // Doubling and halving, when every piece fits.
  if (target == 2 * n) {
    bool fits = true;
    for (int i = 0; i < n && fits; ++i) fits = EvenPiecesFit(span(i, i), 2, lo, hi);
    if (fits) {
      for (int i = 0; i < n; ++i) runs.push_back({i, 1, 2});
      return runs;
    }
  }
  if (2 * target == n) {
    bool fits = true;
    for (int i = 0; i < n && fits; i += 2) fits = EvenPiecesFit(span(i, i + 1), 1, lo, hi);
    if (fits) {
      for (int i = 0; i < n; i += 2) runs.push_back({i, 2, 1});
      return runs;
    }
  }

  // Otherwise plan within a tolerance narrower by 2^-32 of a width, so that shards this leaves
  // at the edge still halve and pair within the tolerance (the cases above) for many steps to come.
  const auto [width, width_rem] = DivideWidth(absl::Uint128Max(), m);  // W = width + width_rem / m
  const uint128 margin = width >> 32;
  const uint128 plan_lo = lo + margin;
  const uint128 plan_hi = hi - margin;
  const double width_double = static_cast<double>(width);

  // A shard narrower than 1% of W is merged into a wider neighbour: no run ends next to one
  // (nor, for a run of them at the end of the space, starts next to one).
  const auto [tiny_floor, tiny_exact] = ScaledSpace(1, 100 * m);
  const uint128 tiny_width = tiny_floor + (tiny_exact ? 0 : 1);  // narrower: width < this
  std::vector<bool> tiny(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) tiny[i] = span(i, i) < tiny_width - 1;
  std::vector<bool> tiny_to_end(static_cast<size_t>(n) + 1, false);
  tiny_to_end[n] = true;
  for (int i = n - 1; i >= 0; --i) tiny_to_end[i] = tiny[i] && tiny_to_end[i + 1];

  std::vector<Candidate> candidates;
  for (int i = 1; i < n; ++i) {
    if (tiny[i - 1] || (tiny[i] && tiny_to_end[i])) continue;
    const uint128 p = open[i].starting_hash_key.value();
    const int64_t center = static_cast<int64_t>(MulHigh(p, m));
    const int64_t k_first = std::max<int64_t>(1, center - kWindow);
    const int64_t k_last = std::min<int64_t>(target - 1, center + kWindow);
    for (int64_t k = k_first; k <= k_last; ++k) {
      const uint64_t before = static_cast<uint64_t>(k);
      const uint64_t after = m - before;
      // Keys [0, p) in k pieces and [p, 2^128) in target - k pieces must be possible.
      if (!EvenPiecesFit(p - 1, before, plan_lo, plan_hi) ||
          !EvenPiecesFit(absl::Uint128Max() - p, after, plan_lo, plan_hi)) {
        continue;
      }
      // Both in [0, 2^128) by the checks above, so the wrapping arithmetic is exact.
      const uint128 grid = width * before + width_rem * before / m;
      const uint128 off = p > grid ? p - grid : grid - p;
      candidates.push_back(Candidate{p - plan_lo * before, plan_hi * before - p, i,
                                     static_cast<int>(k), static_cast<double>(off) / width_double});
    }
  }

  // Longest chain: by A, then the best predecessor with B' <= B from a prefix-maximum tree.
  std::vector<int> order(candidates.size());
  for (size_t c = 0; c < order.size(); ++c) order[c] = static_cast<int>(c);
  std::sort(order.begin(), order.end(), [&](int x, int y) {
    const Candidate& cx = candidates[x];
    const Candidate& cy = candidates[y];
    return cx.a != cy.a ? cx.a < cy.a : cx.b < cy.b;
  });
  std::vector<uint128> bs;
  for (const Candidate& c : candidates) bs.push_back(c.b);
  std::sort(bs.begin(), bs.end());
  bs.erase(std::unique(bs.begin(), bs.end()), bs.end());
  std::vector<Best> tree(bs.size() + 1);
  std::vector<int> previous(candidates.size(), -1);
  Best overall;
  for (int c : order) {
    const size_t rank =
        static_cast<size_t>(std::lower_bound(bs.begin(), bs.end(), candidates[c].b) - bs.begin());
    Best before;
    for (size_t at = rank + 1; at > 0; at -= at & -at) {
      if (tree[at].Beats(before)) before = tree[at];
    }
    previous[c] = before.candidate;
    const Best here{before.kept + 1, before.cost + candidates[c].cost, c};
    for (size_t at = rank + 1; at < tree.size(); at += at & -at) {
      if (here.Beats(tree[at])) tree[at] = here;
    }
    if (here.Beats(overall)) overall = here;
  }

  std::vector<int> chain;
  for (int c = overall.candidate; c >= 0; c = previous[c]) chain.push_back(c);
  std::reverse(chain.begin(), chain.end());
  int boundary = 0, k = 0;
  for (int c : chain) {
    runs.push_back({boundary, candidates[c].boundary - boundary, candidates[c].k - k});
    boundary = candidates[c].boundary;
    k = candidates[c].k;
  }
  runs.push_back({boundary, n - boundary, target - k});
  return runs;
}

}  // namespace rill::internal
