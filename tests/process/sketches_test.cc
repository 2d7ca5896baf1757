#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "rill/process/hyperloglog.h"
#include "rill/process/quantiles.h"
#include "rill/process/top_k.h"

namespace {

// Deterministic uniform double in [0, 1) from a 64-bit generator (std distributions differ
// between standard libraries).
double Uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

template <typename A, typename V>
typename A::State FoldRange(const A& agg, const std::vector<V>& v, size_t begin, size_t end) {
  auto s = agg.Init();
  for (size_t i = begin; i < end; ++i) agg.Add(s, v[i]);
  return s;
}

std::vector<uint64_t> Iota(uint64_t begin, uint64_t end) {
  std::vector<uint64_t> v;
  v.reserve(end - begin);
  for (uint64_t i = begin; i < end; ++i) v.push_back(i);
  return v;
}

double RelativeError(uint64_t estimate, uint64_t truth) {
  return std::abs(static_cast<double>(estimate) - static_cast<double>(truth)) /
         static_cast<double>(truth);
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Stable hashing

TEST_CASE("StableHash is pinned: the same on every run and platform", "[sketches][hash]") {
  CHECK(rill::StableHash(uint64_t{0}) == 0xe220a8397b1dcdafULL);
  CHECK(rill::StableHash(uint64_t{1}) == 0x910a2dec89025cc1ULL);
  CHECK(rill::StableHash(std::string_view("")) == rill::StableHash(std::string()));
  CHECK(rill::StableHash(std::string_view("player-42")) ==
        rill::StableHash(std::string("player-42")));
  CHECK(rill::StableHash("player-42") == 0xfa810a9c7b1a8293ULL);
  CHECK(rill::StableHash(static_cast<const char*>(nullptr)) == rill::StableHash(""));
  // Equal values hash equally across integer types; +0.0/-0.0 and NaNs hash alike.
  CHECK(rill::StableHash(5) == rill::StableHash(uint64_t{5}));
  CHECK(rill::StableHash(int16_t{-1}) == rill::StableHash(int64_t{-1}));
  CHECK(rill::StableHash(0.0) == rill::StableHash(-0.0));
  CHECK(rill::StableHash(std::nan("1")) == rill::StableHash(std::nan("2")));
  CHECK(rill::StableHash(1.5f) == rill::StableHash(1.5));
  // Strings that differ in one byte, or only in length (trailing NULs), differ.
  CHECK(rill::StableHash(std::string_view("abc\0", 4)) !=
        rill::StableHash(std::string_view("abc")));
  CHECK(rill::StableHash("abcdefgh") != rill::StableHash("abcdefgi"));
}

// ------------------------------------------------------------------------------------------------
// HyperLogLog

TEST_CASE("DistinctCount is within 3 standard errors on 1e3, 1e5 and 1e6 values",
          "[sketches][hll]") {
  const auto hll = rill::DistinctCount<uint64_t>();
  CHECK(hll.precision() == 14);
  CHECK(hll.standard_error() == Approx(1.04 / 128.0));
  const uint64_t n = GENERATE(1000, 100000, 1000000);
  auto s = hll.Init();
  for (uint64_t i = 0; i < n; ++i) hll.Add(s, i * 0x9E3779B1u + 17);  // deterministic data
  const uint64_t estimate = hll.Finish(s);
  INFO("n=" << n << " estimate=" << estimate);
  CHECK(RelativeError(estimate, n) <= 3 * hll.standard_error());
}

TEST_CASE("DistinctCount of strings, other precisions, duplicates", "[sketches][hll]") {
  const int p = GENERATE(10, 12, 16);
  const auto hll = rill::DistinctCount<std::string>(p);
  auto s = hll.Init();
  const uint64_t n = 50000;
  for (int rep = 0; rep < 3; ++rep) {  // every value three times: still n distinct
    for (uint64_t i = 0; i < n; ++i) hll.Add(s, "user-" + std::to_string(i));
  }
  INFO("p=" << p << " estimate=" << hll.Finish(s));
  CHECK(RelativeError(hll.Finish(s), n) <= 3 * hll.standard_error());
  // Views and C strings hash like the std::string.
  auto a = hll.Init(), b = hll.Init();
  hll.Add(a, std::string("x"));
  hll.Add(b, std::string_view("x"));
  hll.Add(b, "x");
  CHECK(a == b);
}

TEST_CASE("DistinctCount is nearly exact for few values", "[sketches][hll]") {
  const auto hll = rill::DistinctCount<int64_t>();
  auto s = hll.Init();
  CHECK(hll.Finish(s) == 0);
  hll.Add(s, 7);
  CHECK(hll.Finish(s) == 1);
  for (int64_t i = 0; i < 100; ++i) hll.Add(s, i);
  CHECK(RelativeError(hll.Finish(s), 100) <= 0.02);
  // Across the small range, every count up to 2000 is within 2%.
  auto t = hll.Init();
  for (int64_t i = 1; i <= 2000; ++i) {
    hll.Add(t, -i);
    if (i % 50 == 0) {
      INFO("i=" << i);
      CHECK(RelativeError(hll.Finish(t), static_cast<uint64_t>(i)) <= 0.02);
    }
  }
  // And across the transition out of it (no jump at a threshold): within 3 standard errors.
  for (int64_t i = 2001; i <= 200000; ++i) {
    hll.Add(t, -i);
    if (i % 997 == 0) {
      INFO("i=" << i);
      CHECK(RelativeError(hll.Finish(t), static_cast<uint64_t>(i)) <= 3 * hll.standard_error());
    }
  }
}

TEST_CASE("DistinctCount merges disjoint and overlapping sets exactly as their union",
          "[sketches][hll]") {
  const auto hll = rill::DistinctCount<uint64_t>();
  const auto all = Iota(0, 100000);
  const auto whole = FoldRange(hll, all, 0, all.size());
  SECTION("disjoint") {
    auto a = FoldRange(hll, all, 0, 37000);
    const auto b = FoldRange(hll, all, 37000, all.size());
    hll.Merge(a, b);
    CHECK(a == whole);
  }
  SECTION("overlapping") {
    auto a = FoldRange(hll, all, 0, 70000);
    const auto b = FoldRange(hll, all, 30000, all.size());
    auto ba = b;
    hll.Merge(a, b);
    hll.Merge(ba, FoldRange(hll, all, 0, 70000));
    CHECK(a == whole);
    CHECK(ba == whole);
    CHECK(RelativeError(hll.Finish(a), 100000) <= 3 * hll.standard_error());
  }
  SECTION("many panes, and merging a sketch with itself") {
    auto acc = hll.Init();
    for (size_t i = 0; i < all.size(); i += 4096) {
      hll.Merge(acc, FoldRange(hll, all, i, std::min(all.size(), i + 4096)));
    }
    CHECK(acc == whole);
    const auto copy = acc;
    hll.Merge(acc, copy);
    CHECK(acc == whole);
  }
}

TEST_CASE("DistinctCount is deterministic: golden estimates", "[sketches][hll]") {
  const auto hll = rill::DistinctCount<uint64_t>();
  auto s = hll.Init();
  for (uint64_t i = 0; i < 100000; ++i) hll.Add(s, i);
  CHECK(hll.Finish(s) == 101356u);
  const auto shll = rill::DistinctCount<std::string>(12);
  auto t = shll.Init();
  for (int i = 0; i < 10000; ++i) shll.Add(t, "k" + std::to_string(i));
  CHECK(shll.Finish(t) == 10102u);
}

TEST_CASE("DistinctCount snapshots round-trip and refuse garbage", "[sketches][hll]") {
  const auto hll = rill::DistinctCount<uint64_t>(10);
  auto s = hll.Init();
  for (uint64_t i = 0; i < 5000; ++i) hll.Add(s, i);
  std::string bytes;
  hll.Encode(s, &bytes);
  CHECK(bytes.size() == 3 + 1 + 1024);
  auto d = hll.Init();
  REQUIRE(hll.Decode(bytes, &d));
  CHECK(d == s);
  const auto before = d;
  CHECK_FALSE(hll.Decode(bytes.substr(0, bytes.size() - 1), &d));
  CHECK_FALSE(hll.Decode(bytes + "x", &d));
  CHECK_FALSE(hll.Decode("", &d));
  std::string bad_rank = bytes;
  bad_rank[10] = static_cast<char>(64 - 10 + 2);
  CHECK_FALSE(hll.Decode(bad_rank, &d));
  std::string other_precision;
  rill::DistinctCount<uint64_t>(11).Encode(rill::DistinctCount<uint64_t>(11).Init(),
                                           &other_precision);
  CHECK_FALSE(hll.Decode(other_precision, &d));
  std::string other_type = bytes;
  other_type[1] = static_cast<char>(rill::AggregatorKind::kTopK);
  CHECK_FALSE(hll.Decode(other_type, &d));
  CHECK(d == before);
  // Precision is clamped to [4, 18]; a foreign state is ignored, not a crash.
  CHECK(rill::DistinctCount<int>(1).precision() == 4);
  CHECK(rill::DistinctCount<int>(30).precision() == 18);
  auto small = rill::DistinctCount<uint64_t>(4).Init();
  hll.Merge(small, s);
  hll.Add(small, 1);
  CHECK(hll.Finish(small) == 0);
}

// ------------------------------------------------------------------------------------------------
// TopK

namespace {

// A Zipf(s) stream over `items` values: rank r (1-based) has weight 1/r^s. Value of rank r is
// scrambled so that frequency does not follow value order.
std::vector<int64_t> ZipfStream(size_t n, size_t items, double s, uint64_t seed) {
  std::vector<double> cdf(items);
  double acc = 0;
  for (size_t r = 0; r < items; ++r) cdf[r] = acc += 1.0 / std::pow(static_cast<double>(r + 1), s);
  std::mt19937_64 rng(seed);
  std::vector<int64_t> out(n);
  for (auto& v : out) {
    const double u = Uniform(rng) * acc;
    const auto r = static_cast<int64_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
    v = (r * 7919) % 100003;
  }
  return out;
}

template <typename T>
std::map<T, uint64_t> TrueCounts(const std::vector<T>& v) {
  std::map<T, uint64_t> counts;
  for (const auto& x : v) ++counts[x];
  return counts;
}

// The true top k, by count descending then value ascending.
template <typename T>
std::vector<std::pair<T, uint64_t>> TrueTop(const std::map<T, uint64_t>& counts, size_t k) {
  std::vector<std::pair<T, uint64_t>> all(counts.begin(), counts.end());
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  all.resize(std::min(k, all.size()));
  return all;
}

// Every entry's count brackets the truth, errors are within N / capacity, the order is by count
// then value, and the true top k are the reported ones.
template <typename T>
void CheckTopK(const rill::TopKResult<T>& r, const std::map<T, uint64_t>& truth, size_t k,
               size_t capacity) {
  REQUIRE(r.entries.size() == std::min(k, truth.size()));
  CHECK(r.max_error <= r.total / capacity);
  for (size_t i = 0; i < r.entries.size(); ++i) {
    const auto& e = r.entries[i];
    const uint64_t t = truth.count(e.value) ? truth.at(e.value) : 0;
    INFO("entry " << i << " count " << e.count << " error " << e.error << " truth " << t);
    CHECK(e.count >= t);
    CHECK(e.count - e.error <= t);
    CHECK(e.error <= r.max_error);
    if (i > 0) {
      const auto& p = r.entries[i - 1];
      CHECK((p.count > e.count || (p.count == e.count && p.value < e.value)));
    }
  }
  for (const auto& top : TrueTop(truth, k)) {
    INFO("true top value " << top.first << " count " << top.second);
    CHECK(std::any_of(r.entries.begin(), r.entries.end(),
                      [&](const auto& e) { return e.value == top.first; }));
  }
}

}  // namespace

TEST_CASE("TopK reports the true top 10 of a Zipf stream within the bound", "[sketches][topk]") {
  const size_t capacity = GENERATE(100, 1000);
  const auto top = rill::TopK<int64_t>(10, capacity);
  const auto stream = ZipfStream(200000, 10000, 1.1, 42);
  const auto truth = TrueCounts(stream);
  const auto s = FoldRange(top, stream, 0, stream.size());
  const auto r = top.Finish(s);
  CHECK(r.total == stream.size());
  INFO("capacity " << capacity);
  CheckTopK(r, truth, 10, capacity);
}

TEST_CASE("TopK merges per the Space-Saving rule and keeps the bound", "[sketches][topk]") {
  const size_t capacity = 200;
  const auto top = rill::TopK<int64_t>(10, capacity);
  const auto stream = ZipfStream(200000, 10000, 1.1, 7);
  const auto truth = TrueCounts(stream);
  const size_t parts = GENERATE(2, 8, 64);
  std::vector<rill::TopKState<int64_t>> states;
  for (size_t i = 0; i < parts; ++i) {
    states.push_back(
        FoldRange(top, stream, i * stream.size() / parts, (i + 1) * stream.size() / parts));
  }
  auto forward = top.Init();
  for (const auto& s : states) top.Merge(forward, s);
  auto backward = top.Init();
  for (size_t i = parts; i-- > 0;) top.Merge(backward, states[i]);
  INFO("parts " << parts);
  CHECK(forward.total == stream.size());
  CheckTopK(top.Finish(forward), truth, 10, capacity);
  CheckTopK(top.Finish(backward), truth, 10, capacity);
  // Two states merge the same in either order.
  auto ab = states[0], ba = states[1];
  top.Merge(ab, states[1]);
  top.Merge(ba, states[0]);
  CHECK(top.Finish(ab).entries == top.Finish(ba).entries);
}

TEST_CASE("TopK is exact below capacity and orders ties by value", "[sketches][topk]") {
  const auto top = rill::TopK<std::string>(4, 16);
  auto s = top.Init();
  for (const char* v : {"pear", "fig", "apple", "fig", "kiwi", "pear", "date", "apple", "plum"}) {
    top.Add(s, v);
  }
  const auto r = top.Finish(s);
  REQUIRE(r.entries.size() == 4);
  CHECK(r.entries[0] == rill::TopKEntry<std::string>{"apple", 2, 0});
  CHECK(r.entries[1] == rill::TopKEntry<std::string>{"fig", 2, 0});
  CHECK(r.entries[2] == rill::TopKEntry<std::string>{"pear", 2, 0});
  CHECK(r.entries[3] == rill::TopKEntry<std::string>{"date", 1, 0});
  CHECK(r.max_error == 0);
  CHECK(r.total == 9);
  // The empty state.
  CHECK(top.Finish(top.Init()).entries.empty());
  // Full capacity: a newcomer inherits the minimum as its error.
  const auto tiny = rill::TopK<int>(2, 2);
  auto t = tiny.Init();
  for (int v : {1, 1, 1, 2, 3}) tiny.Add(t, v);
  const auto tr = tiny.Finish(t);
  CHECK(tr.entries[0] == rill::TopKEntry<int>{1, 3, 0});
  CHECK(tr.entries[1] == rill::TopKEntry<int>{3, 2, 1});
  CHECK(tr.max_error == 2);
}

TEST_CASE("TopK of strings on a Zipf stream", "[sketches][topk]") {
  const auto ints = ZipfStream(100000, 5000, 1.2, 3);
  std::vector<std::string> stream;
  stream.reserve(ints.size());
  for (int64_t v : ints) stream.push_back("product-" + std::to_string(v));
  const auto truth = TrueCounts(stream);
  const auto top = rill::TopK<std::string>(10);
  CHECK(top.capacity() == 100);
  const auto s = FoldRange(top, stream, 0, stream.size());
  CheckTopK(top.Finish(s), truth, 10, 100);
}

TEST_CASE("TopK snapshots round-trip and refuse garbage", "[sketches][topk]") {
  const auto top = rill::TopK<std::string>(3, 8);
  const auto ints = ZipfStream(2000, 50, 1.0, 5);
  auto s = top.Init();
  for (int64_t v : ints) top.Add(s, std::to_string(v));
  std::string bytes;
  top.Encode(s, &bytes);
  auto d = top.Init();
  REQUIRE(top.Decode(bytes, &d));
  CHECK(top.Finish(d).entries == top.Finish(s).entries);
  CHECK(d.total == s.total);
  std::string again;
  top.Encode(d, &again);
  CHECK(again == bytes);
  // Decoded states keep working: adds and merges give what the original gives.
  top.Add(s, "x");
  top.Add(d, "x");
  CHECK(top.Finish(d).entries == top.Finish(s).entries);

  const auto before = top.Finish(d).entries;
  for (size_t len = 0; len < bytes.size(); ++len) {
    CHECK_FALSE(top.Decode(std::string_view(bytes).substr(0, len), &d));
  }
  CHECK_FALSE(top.Decode(bytes + '\0', &d));
  std::string other_capacity;
  rill::TopK<std::string>(3, 9).Encode(s, &other_capacity);
  CHECK_FALSE(top.Decode(other_capacity, &d));
  rill::TopKState<int64_t> ints_state;
  CHECK_FALSE(rill::TopK<int64_t>(3, 8).Decode(bytes, &ints_state));  // value type checked
  // A duplicated value is refused.
  auto dup = top.Init();
  top.Add(dup, "a");
  top.Add(dup, "b");
  std::string dup_bytes;
  top.Encode(dup, &dup_bytes);
  const size_t b_at = dup_bytes.rfind('b');
  dup_bytes[b_at] = 'a';
  CHECK_FALSE(top.Decode(dup_bytes, &d));
  std::mt19937 rng(1);
  for (int i = 0; i < 500; ++i) {
    std::string junk = bytes;
    junk[std::uniform_int_distribution<size_t>(0, junk.size() - 1)(rng)] = static_cast<char>(rng());
    auto scratch = top.Init();
    (void)top.Decode(junk, &scratch);  // any answer, no crash (ASan checks)
  }
  CHECK(top.Finish(d).entries == before);
}

// ------------------------------------------------------------------------------------------------
// Quantiles

namespace {

// The largest normalized rank error of Quantile(q) over a grid of q, against the sorted truth.
template <typename T>
double MaxQuantileRankError(const rill::QuantilesResult<T>& r, const std::vector<T>& sorted) {
  const double n = static_cast<double>(sorted.size());
  double worst = 0;
  for (int i = 0; i <= 1000; ++i) {
    const double q = i / 1000.0;
    const T v = *r.Quantile(q);
    const double lo =
        static_cast<double>(std::lower_bound(sorted.begin(), sorted.end(), v) - sorted.begin()) / n;
    const double hi =
        static_cast<double>(std::upper_bound(sorted.begin(), sorted.end(), v) - sorted.begin()) / n;
    worst = std::max({worst, lo - q, q - hi});
  }
  return worst;
}

// The largest error of Rank(x) at the true deciles and percentiles.
template <typename T>
double MaxRankError(const rill::QuantilesResult<T>& r, const std::vector<T>& sorted) {
  const double n = static_cast<double>(sorted.size());
  double worst = 0;
  for (int i = 0; i < 100; ++i) {
    const T x = sorted[sorted.size() * static_cast<size_t>(i) / 100];
    const double truth =
        static_cast<double>(std::upper_bound(sorted.begin(), sorted.end(), x) - sorted.begin()) / n;
    worst = std::max(worst, std::abs(r.Rank(x) - truth));
  }
  return worst;
}

std::vector<double> Dataset(const std::string& kind, size_t n) {
  std::mt19937_64 rng(99);
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) {
    if (kind == "uniform") {
      v[i] = Uniform(rng) * 1000.0;
    } else if (kind == "skewed") {  // heavy-tailed: Pareto-like
      v[i] = 1.0 / std::pow(1.0 - Uniform(rng), 1.5);
    } else if (kind == "sorted") {
      v[i] = static_cast<double>(i);
    } else if (kind == "reverse") {
      v[i] = static_cast<double>(n - i);
    } else {  // "duplicates": 50 distinct values
      v[i] = static_cast<double>(rng() % 50);
    }
  }
  return v;
}

}  // namespace

TEST_CASE("Quantiles keep the stated rank error on uniform, skewed, sorted and reverse input",
          "[sketches][quantiles]") {
  const auto quantiles = rill::Quantiles<double>();
  CHECK(quantiles.accuracy() == 0.01);
  const std::string kind = GENERATE("uniform", "skewed", "sorted", "reverse", "duplicates");
  const size_t n = GENERATE(100000, 1000000);
  const auto data = Dataset(kind, n);
  auto s = quantiles.Init();
  for (double v : data) quantiles.Add(s, v);
  auto sorted = data;
  std::sort(sorted.begin(), sorted.end());
  const auto r = quantiles.Finish(s);
  INFO(kind << " n=" << n << " retained=" << s.size);
  CHECK(r.count() == n);
  CHECK(s.size <= 3 * quantiles.k() + 8 * 20);
  CHECK(r.min() == sorted.front());
  CHECK(r.max() == sorted.back());
  CHECK(r.Quantile(0) == sorted.front());
  CHECK(r.Quantile(1) == sorted.back());
  const double quantile_error = MaxQuantileRankError(r, sorted);
  const double rank_error = MaxRankError(r, sorted);
  INFO("quantile error " << quantile_error << " rank error " << rank_error);
  CHECK(quantile_error <= quantiles.accuracy());
  CHECK(rank_error <= quantiles.accuracy());
}

TEST_CASE("Quantiles merged from many sketches keep the bound", "[sketches][quantiles]") {
  const double accuracy = GENERATE(0.01, 0.002);
  const auto quantiles = rill::Quantiles<double>(accuracy);
  const auto data = Dataset("skewed", 400000);
  auto sorted = data;
  std::sort(sorted.begin(), sorted.end());
  const size_t parts = GENERATE(2, 100);
  std::vector<rill::QuantilesState<double>> states;
  for (size_t i = 0; i < parts; ++i) {
    states.push_back(
        FoldRange(quantiles, data, i * data.size() / parts, (i + 1) * data.size() / parts));
  }
  // A balanced merge tree and a left fold.
  auto fold = quantiles.Init();
  for (const auto& s : states) quantiles.Merge(fold, s);
  auto tree = states;
  while (tree.size() > 1) {
    std::vector<rill::QuantilesState<double>> next;
    for (size_t i = 0; i + 1 < tree.size(); i += 2) {
      next.push_back(tree[i]);
      quantiles.Merge(next.back(), tree[i + 1]);
    }
    if (tree.size() % 2 == 1) next.push_back(tree.back());
    tree = std::move(next);
  }
  INFO("accuracy " << accuracy << " parts " << parts);
  for (const auto* s : {&fold, &tree[0]}) {
    const auto r = quantiles.Finish(*s);
    CHECK(r.count() == data.size());
    CHECK(r.min() == sorted.front());
    CHECK(r.max() == sorted.back());
    CHECK(MaxQuantileRankError(r, sorted) <= accuracy);
    CHECK(MaxRankError(r, sorted) <= accuracy);
  }
  // Merge(a, b) and Merge(b, a) answer the same.
  auto ab = states[0], ba = states[1];
  quantiles.Merge(ab, states[1]);
  quantiles.Merge(ba, states[0]);
  for (double q : {0.1, 0.5, 0.9, 0.99}) {
    CHECK(quantiles.Finish(ab).Quantile(q) == quantiles.Finish(ba).Quantile(q));
  }
}

TEST_CASE("Quantiles are exact while nothing is compacted", "[sketches][quantiles]") {
  const auto quantiles = rill::Quantiles<int>();
  auto s = quantiles.Init();
  CHECK(quantiles.Finish(s).Quantile(0.5) == std::nullopt);
  CHECK(quantiles.Finish(s).min() == std::nullopt);
  CHECK(quantiles.Finish(s).Rank(3) == 0);
  std::vector<int> values;
  for (int i = 0; i < 200; ++i) values.push_back((i * 37) % 200 - 100);  // a permutation
  for (int v : values) quantiles.Add(s, v);
  const auto r = quantiles.Finish(s);
  std::sort(values.begin(), values.end());
  CHECK(r.Quantile(0.5) == values[99]);  // the lower median
  CHECK(r.Quantile(0.25) == values[49]);
  CHECK(r.Quantile(0.999) == values[199]);
  CHECK(r.Quantile(std::nan("")) == std::nullopt);
  CHECK(r.Quantile(-3) == -100);
  CHECK(r.Quantile(7) == 99);
  CHECK(r.Rank(-1) == Approx(100.0 / 200));
  // NaN is ignored.
  const auto dq = rill::Quantiles<double>();
  auto d = dq.Init();
  dq.Add(d, std::nan(""));
  dq.Add(d, 2.0);
  CHECK(dq.Finish(d).count() == 1);
  CHECK(dq.Finish(d).Quantile(0.5) == 2.0);
  // Accuracy is clamped; merging a state with itself doubles every weight.
  CHECK(rill::Quantiles<int>(0).accuracy() == rill::kMinQuantilesAccuracy);
  CHECK(rill::Quantiles<int>(2).accuracy() == rill::kMaxQuantilesAccuracy);
  quantiles.Merge(s, s);
  CHECK(quantiles.Finish(s).count() == 400);
  CHECK(quantiles.Finish(s).Quantile(0.5) == values[99]);
}

TEST_CASE("Quantiles snapshots round-trip and refuse garbage", "[sketches][quantiles]") {
  const auto quantiles = rill::Quantiles<double>(0.05);
  const auto data = Dataset("uniform", 5000);
  auto s = FoldRange(quantiles, data, 0, data.size());
  std::string bytes;
  quantiles.Encode(s, &bytes);
  auto d = quantiles.Init();
  REQUIRE(quantiles.Decode(bytes, &d));
  std::string again;
  quantiles.Encode(d, &again);
  CHECK(again == bytes);
  // The decoded state continues exactly as the original.
  for (int i = 0; i < 3000; ++i) {
    quantiles.Add(s, i * 0.1);
    quantiles.Add(d, i * 0.1);
  }
  for (double q : {0.01, 0.5, 0.99}) {
    CHECK(quantiles.Finish(d).Quantile(q) == quantiles.Finish(s).Quantile(q));
  }
  bytes.clear();
  quantiles.Encode(s, &bytes);
  const auto before = quantiles.Finish(d).Quantile(0.5);
  for (size_t len = 0; len < bytes.size(); len += 7) {
    CHECK_FALSE(quantiles.Decode(std::string_view(bytes).substr(0, len), &d));
  }
  CHECK_FALSE(quantiles.Decode(bytes + '\0', &d));
  rill::QuantilesState<float> f;
  CHECK_FALSE(rill::Quantiles<float>(0.05).Decode(bytes, &f));
  CHECK_FALSE(rill::Quantiles<double>(0.01).Decode(bytes, &d));  // another k
  std::string wrong_n = bytes;
  wrong_n[3 + 4] ^= 1;  // n no longer matches the weights
  CHECK_FALSE(quantiles.Decode(wrong_n, &d));
  std::mt19937 rng(3);
  for (int i = 0; i < 300; ++i) {
    std::string junk = bytes;
    junk[std::uniform_int_distribution<size_t>(0, junk.size() - 1)(rng)] = static_cast<char>(rng());
    auto scratch = quantiles.Init();
    if (quantiles.Decode(junk, &scratch)) {  // a value changed within the rules: still usable
      quantiles.Add(scratch, 1.0);
      CHECK(quantiles.Finish(scratch).count() == s.n + 1);
    }
  }
  CHECK(quantiles.Finish(d).Quantile(0.5) == before);
}
