#include "sql/random_cut_forest.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/base/error.h"

namespace rill::sql {
namespace {

RandomCutForest MakeForest(const RandomCutForestOptions& options, size_t dimensions) {
  absl::StatusOr<RandomCutForest> forest = RandomCutForest::Create(options, dimensions);
  REQUIRE(forest.ok());
  return std::move(*forest);
}

RandomCutForestOptions Options(int trees, int sample, int64_t time_decay, int shingle,
                               uint64_t seed = 42) {
  RandomCutForestOptions options;
  options.number_of_trees = trees;
  options.sub_sample_size = sample;
  options.time_decay = time_decay;
  options.shingle_size = shingle;
  options.seed = seed;
  return options;
}

// The value below which `fraction` of `values` lie.
double Percentile(std::vector<double> values, double fraction) {
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(fraction * values.size()));
  return values[index];
}

std::vector<std::vector<double>> GaussianPoints(size_t count, size_t dimensions, double mean,
                                                uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(mean, 1.0);
  std::vector<std::vector<double>> points(count, std::vector<double>(dimensions));
  for (auto& point : points) {
    for (double& value : point) value = normal(rng);
  }
  return points;
}

TEST_CASE("a fixed seed gives identical scores and another seed different ones", "[rcf]") {
  const auto points = GaussianPoints(1500, 2, 0.0, 1);
  RandomCutForest a = MakeForest(RandomCutForestOptions{}, 2);
  RandomCutForest b = MakeForest(RandomCutForestOptions{}, 2);
  RandomCutForest c = MakeForest(Options(100, 256, 100000, 1, 43), 2);
  std::vector<double> scores_a, scores_b, scores_c;
  for (const auto& point : points) {
    scores_a.push_back(a.ScoreAndUpdate(point));
    scores_b.push_back(b.ScoreAndUpdate(point));
    scores_c.push_back(c.ScoreAndUpdate(point));
  }
  CHECK(scores_a == scores_b);
  CHECK(scores_a != scores_c);
  CHECK(a.dimensions() == 2);
  CHECK(a.options().number_of_trees == 100);
}

TEST_CASE("scores are 0 until the shingle is full and the forest holds sub_sample_size/4 points",
          "[rcf]") {
  RandomCutForest forest = MakeForest(Options(10, 40, 1000, 3), 1);
  // 2 inputs fill no shingle; then 10 shingled points (40/4) are taken without a score.
  for (int i = 0; i < 12; ++i) {
    const double value = (i % 2 == 0) ? 0.0 : 1000.0 * i;
    CHECK(forest.ScoreAndUpdate(std::vector<double>{value}) == 0.0);
  }
  CHECK(forest.ScoreAndUpdate(std::vector<double>{1e6}) > 0.0);
}

TEST_CASE("scores follow AnomalyScoreVisitor on a tree of two points", "[rcf]") {
  // One tree over {0, 1}: whatever the cut, the root separates them and each is a leaf at depth 1.
  // The score starts after max(1, 10/4) = 2 points.
  const double log2_3 = std::log2(3.0);
  {
    RandomCutForest forest = MakeForest(Options(1, 10, 100000, 1), 1);
    CHECK(forest.ScoreAndUpdate(std::vector<double>{0.0}) == 0.0);
    CHECK(forest.ScoreAndUpdate(std::vector<double>{1.0}) == 0.0);
    // 10 falls to the leaf of 1 (depth 1): 1/(1+1); at the root the box [0, 1] grown to [0, 10]
    // is cut away from 10 with probability 9/10: 0.9 * 1/(0+1) + 0.1 * 0.5; times log2(mass + 1).
    std::vector<RandomCutForest::Attribution> attribution;
    const double score = forest.ScoreAndUpdate(std::vector<double>{10.0}, &attribution);
    CHECK(score == Approx((0.9 + 0.1 * 0.5) * log2_3).epsilon(1e-12));
    CHECK(attribution[0].high == Approx(score).epsilon(1e-12));
    CHECK(attribution[0].low == 0.0);
  }
  {
    RandomCutForest forest = MakeForest(Options(1, 10, 100000, 1), 2);
    forest.ScoreAndUpdate(std::vector<double>{0.0, 5.0});
    forest.ScoreAndUpdate(std::vector<double>{1.0, 5.0});
    // A point already in the tree: damp(1, 2) * scoreSeen(1, 1) = (1 - 1/4) / (1 + log2(2)).
    std::vector<RandomCutForest::Attribution> attribution;
    const double score = forest.ScoreAndUpdate(std::vector<double>{0.0, 5.0}, &attribution);
    CHECK(score == Approx(0.75 * 0.5 * log2_3).epsilon(1e-12));
    CHECK(attribution[0].high + attribution[0].low + attribution[1].high + attribution[1].low ==
          Approx(score).epsilon(1e-12));
  }
}

TEST_CASE("injected spikes in a noisy sine wave score above the 99th percentile", "[rcf]") {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 0.5);
  const std::vector<int> spikes = {1150, 1380, 1520, 1777, 1930};
  RandomCutForest forest = MakeForest(RandomCutForestOptions{}, 1);
  std::vector<double> normal_scores;
  std::vector<double> spike_scores;
  std::vector<double> all_scores;  // after the warm-up
  for (int i = 0; i < 2000; ++i) {
    double value = 10.0 * std::sin(2 * M_PI * i / 50.0) + noise(rng);
    const bool spike = std::find(spikes.begin(), spikes.end(), i) != spikes.end();
    if (spike) value += 25.0;
    const double score = forest.ScoreAndUpdate(std::vector<double>{value});
    if (i < 1000) continue;
    all_scores.push_back(score);
    (spike ? spike_scores : normal_scores).push_back(score);
  }
  REQUIRE(spike_scores.size() == spikes.size());
  const double p99 = Percentile(normal_scores, 0.99);
  std::vector<double> sorted = all_scores;
  std::sort(sorted.rbegin(), sorted.rend());
  const double tenth = sorted[9];
  for (double score : spike_scores) {
    INFO("spike score " << score << ", 99th percentile " << p99 << ", 10th highest " << tenth);
    CHECK(score > p99);
    CHECK(score >= tenth);
  }
}

TEST_CASE("an outlier far from a 2-D cluster scores more than twice the median", "[rcf]") {
  const auto points = GaussianPoints(1000, 2, 0.0, 3);
  RandomCutForest forest = MakeForest(RandomCutForestOptions{}, 2);
  std::vector<double> scores;
  for (size_t i = 0; i < points.size(); ++i) {
    const double score = forest.ScoreAndUpdate(points[i]);
    if (i >= 500) scores.push_back(score);
  }
  const double median = Percentile(scores, 0.5);
  const double outlier = forest.ScoreAndUpdate(std::vector<double>{20.0, -15.0});
  INFO("outlier " << outlier << ", median " << median);
  CHECK(median > 0.0);
  CHECK(outlier > 2 * median);
}

TEST_CASE("shingling detects a shuffled period that single points do not", "[rcf]") {
  const std::vector<double> period = {0, 1, 2, 3, 4, 5, 6, 7};
  const std::vector<double> shuffled = {3, 6, 0, 7, 1, 5, 2, 4};
  constexpr int kBreak = 250 * 8;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> noise(0.0, 0.05);
  std::vector<double> series;
  for (int i = 0; i < 300 * 8; ++i) {
    const bool broken = i >= kBreak && i < kBreak + 8;
    series.push_back((broken ? shuffled : period)[i % 8] + noise(rng));
  }
  auto run = [&series](int shingle, double* break_max, std::vector<double>* normal) {
    RandomCutForest forest = MakeForest(Options(100, 256, 100000, shingle), 1);
    *break_max = 0;
    for (int i = 0; i < static_cast<int>(series.size()); ++i) {
      const double score = forest.ScoreAndUpdate(std::vector<double>{series[i]});
      if (i < 1000) continue;
      if (i >= kBreak && i < kBreak + 8 + shingle) {
        *break_max = std::max(*break_max, score);
      } else {
        normal->push_back(score);
      }
    }
  };
  double single_break = 0, shingled_break = 0;
  std::vector<double> single_normal, shingled_normal;
  run(1, &single_break, &single_normal);
  run(4, &shingled_break, &shingled_normal);
  const double single_p99 = Percentile(single_normal, 0.99);
  const double shingled_p99 = Percentile(shingled_normal, 0.99);
  INFO("single points: break " << single_break << " vs 99th percentile " << single_p99);
  INFO("shingle 4: break " << shingled_break << " vs 99th percentile " << shingled_p99);
  CHECK(shingled_break > 1.5 * shingled_p99);
  CHECK(single_break < 1.5 * single_p99);
}

double AttributionSum(const std::vector<RandomCutForest::Attribution>& attribution) {
  double sum = 0;
  for (const auto& column : attribution) sum += column.high + column.low;
  return sum;
}

TEST_CASE("attribution sums to the score and points at the spiking column", "[rcf]") {
  const auto points = GaussianPoints(1000, 3, 0.0, 5);
  RandomCutForest forest = MakeForest(Options(100, 256, 100000, 2), 3);
  RandomCutForest twin = MakeForest(Options(100, 256, 100000, 2), 3);
  std::vector<RandomCutForest::Attribution> attribution;
  for (const auto& point : points) {
    const double score = forest.ScoreAndUpdate(point, &attribution);
    // The attribution overload scores exactly as the plain one.
    REQUIRE(score == twin.ScoreAndUpdate(point));
    REQUIRE(attribution.size() == 3);
    CHECK(AttributionSum(attribution) == Approx(score).epsilon(1e-9).margin(1e-300));
  }
  const double score = forest.ScoreAndUpdate(std::vector<double>{0.1, 15.0, -0.2}, &attribution);
  CHECK(AttributionSum(attribution) == Approx(score).epsilon(1e-9));
  const double column1 = attribution[1].high + attribution[1].low;
  CHECK(column1 > attribution[0].high + attribution[0].low);
  CHECK(column1 > attribution[2].high + attribution[2].low);
  CHECK(attribution[1].high >= attribution[1].low);  // DIRECTION HIGH
  CHECK(column1 > 0.5 * score);

  // A dip gives DIRECTION LOW.
  forest.ScoreAndUpdate(std::vector<double>{0.0, 0.0, 0.0}, &attribution);
  const double dip = forest.ScoreAndUpdate(std::vector<double>{-0.3, 0.2, -14.0}, &attribution);
  CHECK(AttributionSum(attribution) == Approx(dip).epsilon(1e-9));
  CHECK(attribution[2].low > attribution[2].high);
}

TEST_CASE("attribution sums to the score when points repeat exactly", "[rcf]") {
  // Values from a 4x4 grid: most points land on a leaf holding the same point.
  RandomCutForest forest = MakeForest(Options(50, 64, 1000, 1), 2);
  std::mt19937_64 rng(9);
  std::vector<RandomCutForest::Attribution> attribution;
  for (int i = 0; i < 1500; ++i) {
    const std::vector<double> point = {static_cast<double>(rng() % 4),
                                       static_cast<double>(rng() % 4)};
    const double score = forest.ScoreAndUpdate(point, &attribution);
    CHECK(AttributionSum(attribution) == Approx(score).epsilon(1e-9).margin(1e-300));
  }
}

TEST_CASE("Encode and Decode mid-stream continue with exactly the same scores", "[rcf]") {
  // A small decay so that the reservoirs evict and trees delete before and after the snapshot.
  const RandomCutForestOptions options = Options(20, 64, 200, 2, 99);
  auto points = GaussianPoints(1600, 3, 0.0, 13);
  for (size_t i = 0; i < points.size(); i += 37) points[i][i % 3] += 12.0;
  for (size_t i = 5; i < points.size(); i += 101) points[i] = points[i - 1];  // exact repeats
  RandomCutForest original = MakeForest(options, 3);
  std::string bytes;
  std::vector<double> expected;
  std::vector<RandomCutForest::Attribution> attribution;
  for (size_t i = 0; i < points.size(); ++i) {
    if (i == 700) original.Encode(&bytes);
    expected.push_back(original.ScoreAndUpdate(points[i], &attribution));
  }
  absl::StatusOr<RandomCutForest> restored = RandomCutForest::Decode(bytes);
  REQUIRE(restored.ok());
  CHECK(restored->dimensions() == 3);
  CHECK(restored->options().time_decay == 200);
  CHECK(restored->options().seed == 99);
  std::string again;
  restored->Encode(&again);
  CHECK(again == bytes);
  for (size_t i = 700; i < points.size(); ++i) {
    REQUIRE(restored->ScoreAndUpdate(points[i]) == expected[i]);
  }

  // A snapshot before the shingle is full, too.
  RandomCutForest early = MakeForest(options, 3);
  std::string early_bytes;
  early.Encode(&early_bytes);
  absl::StatusOr<RandomCutForest> early_restored = RandomCutForest::Decode(early_bytes);
  REQUIRE(early_restored.ok());
  for (size_t i = 0; i < 200; ++i) {
    REQUIRE(early_restored->ScoreAndUpdate(points[i]) == expected[i]);
  }
}

TEST_CASE("Decode rejects truncated and garbage bytes", "[rcf]") {
  RandomCutForest forest = MakeForest(Options(5, 32, 100, 2), 2);
  const auto points = GaussianPoints(300, 2, 0.0, 17);
  for (const auto& point : points) forest.ScoreAndUpdate(point);
  std::string bytes;
  forest.Encode(&bytes);
  REQUIRE(RandomCutForest::Decode(bytes).ok());
  auto invalid = [](std::string_view data) {
    absl::StatusOr<RandomCutForest> decoded = RandomCutForest::Decode(data);
    return !decoded.ok() && GetErrorCode(decoded.status()) == ErrorCode::kInvalidArgument;
  };
  CHECK(invalid(""));
  CHECK(invalid("garbage"));
  for (size_t length = 0; length < bytes.size(); length += 7) {
    INFO("prefix of " << length << " bytes");
    CHECK(invalid(std::string_view(bytes).substr(0, length)));
  }
  CHECK(invalid(std::string_view(bytes).substr(0, bytes.size() - 1)));
  CHECK(invalid(bytes + "x"));
  std::mt19937_64 rng(23);
  for (int round = 0; round < 200; ++round) {
    std::string noise(1 + rng() % 400, '\0');
    for (char& c : noise) c = static_cast<char>(rng());
    if (round % 2 == 0) noise.replace(0, std::min<size_t>(4, noise.size()), "RCF1");
    CHECK(invalid(noise));
  }
  // Flipped bits either still decode (e.g. a generator state) or are refused; neither crashes,
  // and a forest that decodes can be used.
  for (int round = 0; round < 300; ++round) {
    std::string flipped = bytes;
    flipped[rng() % flipped.size()] ^= static_cast<char>(1 << (rng() % 8));
    absl::StatusOr<RandomCutForest> decoded = RandomCutForest::Decode(flipped);
    if (decoded.ok()) {
      for (int i = 0; i < 50; ++i) decoded->ScoreAndUpdate(points[i]);
    } else {
      CHECK(GetErrorCode(decoded.status()) == ErrorCode::kInvalidArgument);
    }
  }
}

TEST_CASE("Create rejects out-of-range options with InvalidArgument", "[rcf]") {
  auto error = [](const RandomCutForestOptions& options, size_t dimensions) {
    absl::StatusOr<RandomCutForest> forest = RandomCutForest::Create(options, dimensions);
    REQUIRE(!forest.ok());
    CHECK(GetErrorCode(forest.status()) == ErrorCode::kInvalidArgument);
    return std::string(forest.status().message());
  };
  using Catch::Matchers::Contains;
  CHECK_THAT(error(Options(0, 256, 100000, 1), 1), Contains("numberOfTrees") && Contains("0"));
  CHECK_THAT(error(Options(1001, 256, 100000, 1), 1), Contains("1001"));
  CHECK_THAT(error(Options(100, 9, 100000, 1), 1), Contains("subSampleSize"));
  CHECK_THAT(error(Options(100, 1001, 100000, 1), 1), Contains("subSampleSize"));
  CHECK_THAT(error(Options(100, 256, 0, 1), 1), Contains("timeDecay"));
  CHECK_THAT(error(Options(100, 256, 2147483648LL, 1), 1), Contains("2147483648"));
  CHECK_THAT(error(Options(100, 256, 100000, 0), 1), Contains("shingleSize"));
  CHECK_THAT(error(Options(100, 256, 100000, 31), 1), Contains("31"));
  CHECK_THAT(error(RandomCutForestOptions{}, 0), Contains("columns"));
  CHECK_THAT(error(RandomCutForestOptions{}, 1001), Contains("1001"));
  CHECK_THAT(error(Options(1000, 1000, 100000, 30), 1000), Contains("too large"));
  CHECK(RandomCutForest::Create(Options(1, 10, 1, 30), 1).ok());
  CHECK(RandomCutForest::Create(Options(1000, 1000, 2147483647, 1), 1).ok());
}

TEST_CASE("a small time decay forgets the old regime after a shift", "[rcf]") {
  constexpr int kShift = 2000;
  auto points = GaussianPoints(2 * kShift, 1, 0.0, 19);
  for (int i = kShift; i < 2 * kShift; ++i) points[i][0] += 100.0;
  auto mean = [](const std::vector<double>& scores, int begin, int end) {
    return std::accumulate(scores.begin() + begin, scores.begin() + end, 0.0) / (end - begin);
  };
  auto run = [&points](int64_t time_decay) {
    RandomCutForest forest = MakeForest(Options(100, 256, time_decay, 1), 1);
    std::vector<double> scores;
    for (const auto& point : points) scores.push_back(forest.ScoreAndUpdate(point));
    return scores;
  };
  const std::vector<double> fast = run(256);
  const double baseline = mean(fast, kShift - 512, kShift);
  const double at_shift = mean(fast, kShift, kShift + 5);
  const double later = mean(fast, kShift + 3 * 256, kShift + 4 * 256);
  INFO("baseline " << baseline << ", at the shift " << at_shift << ", 3-4 samples later " << later);
  CHECK(at_shift > 2 * baseline);
  CHECK(later < 1.25 * baseline);

  // With the default decay the old regime keeps most of the sample for longer.
  const std::vector<double> slow = run(100000);
  const double slow_later = mean(slow, kShift + 3 * 256, kShift + 4 * 256);
  INFO("default decay, 3-4 samples later " << slow_later);
  CHECK(slow_later > later);
}

}  // namespace
}  // namespace rill::sql
