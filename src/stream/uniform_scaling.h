// The plan behind Stream::UpdateShardCount: which runs of adjacent open shards to merge and split
// evenly so that the stream ends with `target` shards of near-equal width, keeping as many of the
// current shard boundaries as it can (a kept boundary costs no split and no merge).
// Internal to src/.
#ifndef RILL_STREAM_UNIFORM_SCALING_H_
#define RILL_STREAM_UNIFORM_SCALING_H_

#include <vector>

#include "absl/types/span.h"
#include "rill/base/hash_key.h"

namespace rill::internal {

// UpdateShardCount's tolerance: every open shard ends within this many percent of
// 2^128 / target keys wide (Stream::UpdateShardCount says why 10).
inline constexpr int kUniformTolerancePercent = 10;

// A run of adjacent open shards, open[first, first + shards), that becomes `pieces` shards cutting
// the run's range evenly (PieceStart). shards == pieces == 1 is a shard that stays as it is.
struct ScalingRun {
  int first = 0;
  int shards = 0;
  int pieces = 0;
  friend bool operator==(const ScalingRun&, const ScalingRun&) = default;
};

// Plans uniform scaling of the open ranges `open` (in hash-key order, tiling the hash-key space)
// to `target` >= 1 shards. The runs cover `open` in order, their pieces add up to `target`, and
// every piece is within kUniformTolerancePercent of 2^128 / target wide. Among such plans it
// keeps the most current boundaries, so a plan of R runs costs (N - R) merges and (target - R)
// splits for N open shards, the fewest that reach such ranges; ties go to the plan whose kept
// boundaries sit nearest the even grid. Two cases are exact when the open shards allow them
// (each piece within the tolerance): target = 2N splits every shard in two, target = N / 2 merges
// neighbours pairwise. A run never ends next to a shard narrower than 1% of 2^128 / target, so
// every run of two or more shards holds one at least that wide.
std::vector<ScalingRun> PlanUniformScaling(absl::Span<const HashKeyRange> open, int target);

// Where piece `j` (0 <= j < pieces) of `range` starts when the range is cut into `pieces` even
// pieces: its start + floor(j * width / pieces), width being the keys it covers (up to 2^128).
// The pieces' widths differ by at most one key.
HashKey PieceStart(const HashKeyRange& range, int pieces, int j);

}  // namespace rill::internal

#endif  // RILL_STREAM_UNIFORM_SCALING_H_
