// A Robust Random Cut Forest (Guha et al. 2016, "Robust Random Cut Forest Based Anomaly Detection
// on Streams"), scored as AWS' randomcutforest-by-aws scores it: the model behind Kinesis Data
// Analytics for SQL's RANDOM_CUT_FOREST and RANDOM_CUT_FOREST_WITH_EXPLANATION.
//
// Each of number_of_trees trees is a random cut tree over its own sample of at most
// sub_sample_size (shingled) points. The sample is a time-decayed reservoir: a point arriving as
// the n-th update gets the priority -n/time_decay + log(E), E ~ Exp(1), and each tree keeps the
// points of smallest priority, so recent points are favoured (lambda = 1/time_decay). A point the
// reservoir evicts is deleted from its tree. Cuts are chosen with probability proportional to each
// dimension's range in the bounding box.
//
// A point is scored against the forest BEFORE it is inserted. The score is the average over trees
// of AnomalyScoreVisitor's score: from the leaf where the point would fall up to the root,
//   leaf:      1/(depth+1), or (1 - m/(2M)) / (depth + log2(m+1)) if the leaf holds the same point
//              m times (M = the tree's mass);
//   ancestor:  s <- q/(depth+1) + (1-q) s, q = the probability that a random cut of the node's box
//              grown by the point separates the point (stop when q = 0);
// and finally s * log2(M+1). Typical scores are around 1; anomalies score several times that.
// The attribution (WITH_EXPLANATION) is AnomalyAttributionVisitor's DiVector: the same recursion
// split by dimension into "high" (the point is above the box) and "low" parts, which sum to the
// score; shingled copies of a column are summed.
//
// Choices where KDA does not say:
//   - With shingle_size s, nothing is scored or inserted until s inputs have arrived; those first
//     s-1 inputs score 0.
//   - The score is 0 until the forest has taken max(1, sub_sample_size/4) shingled points
//     (randomcutforest-java's outputAfter default); those points are inserted all the same.
//   - NaN inputs are read as 0 and values are clamped to +-1e300, so that ranges stay finite.
//
// Randomness comes from one splitmix64 generator per tree, seeded from options.seed: a given seed
// and input give the same scores on every platform, and Encode/Decode carries the generators.
//
// Memory: per tree, node pools for sub_sample_size leaves and sub_sample_size internal nodes (each
// with a bounding box of 2 * dimensions * shingle_size doubles) and the reservoir, all allocated by
// Create. The shingled points live once in a store shared by the trees, reference-counted; it
// grows (amortised doubling) only while the number of live points reaches a new high, bounded by
// 2 * number_of_trees * sub_sample_size. ScoreAndUpdate therefore does not allocate in steady
// state (the attribution overload resizes its output vector on the first call only).
//
// Thread safety: not thread-safe; use one forest from one thread at a time. Movable, not copyable;
// a moved-from forest may only be assigned to or destroyed.
#ifndef RILL_SQL_RANDOM_CUT_FOREST_H_
#define RILL_SQL_RANDOM_CUT_FOREST_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace rill::sql {

// KDA's defaults and documented ranges.
struct RandomCutForestOptions {
  int number_of_trees = 100;    // 1..1000
  int sub_sample_size = 256;    // 10..1000
  int64_t time_decay = 100000;  // 1..2147483647; lambda = 1/time_decay
  int shingle_size = 1;         // 1..30
  uint64_t seed = 42;           // any value
};

class RandomCutForest {
 public:
  // A forest for inputs of `dimensions` (1..1000) numeric columns. Errors: kInvalidArgument naming
  // the parameter and its value when an option or `dimensions` is out of range, or when
  // number_of_trees x sub_sample_size x dimensions x shingle_size exceeds 2^26 (the preallocated
  // bounding boxes would pass 1 GiB).
  static absl::StatusOr<RandomCutForest> Create(const RandomCutForestOptions& options,
                                                size_t dimensions);

  RandomCutForest(RandomCutForest&& other) noexcept;
  RandomCutForest& operator=(RandomCutForest&& other) noexcept;
  RandomCutForest(const RandomCutForest&) = delete;
  RandomCutForest& operator=(const RandomCutForest&) = delete;
  ~RandomCutForest();

  // Shingles `input` (dimensions() values; missing ones read as 0, extra ones are ignored), scores
  // the shingled point against the forest, then inserts it. Returns ANOMALY_SCORE (>= 0).
  double ScoreAndUpdate(absl::Span<const double> input);

  // Attribution of a score to one input column: `high` is the part due to the value being above
  // what the forest has seen, `low` below. KDA's DIRECTION is HIGH when high >= low.
  struct Attribution {
    double high = 0;
    double low = 0;
  };
  // The same, also setting *attribution to one entry per input column (shingled copies summed);
  // the entries' high + low sum to the returned score (all zero when the score is 0).
  double ScoreAndUpdate(absl::Span<const double> input, std::vector<Attribution>* attribution);

  // Appends a snapshot of the whole model (options, the point store, every tree's reservoir,
  // structure and generator, the shingle buffer) to *out. Decode of it gives a forest that scores
  // the rest of the input exactly as this one would.
  void Encode(std::string* out) const;
  // Errors: kInvalidArgument for bytes that are not a well-formed Encode output (never crashes).
  static absl::StatusOr<RandomCutForest> Decode(std::string_view bytes);

  size_t dimensions() const;
  const RandomCutForestOptions& options() const;

 private:
  struct Impl;
  explicit RandomCutForest(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace rill::sql

#endif  // RILL_SQL_RANDOM_CUT_FOREST_H_
