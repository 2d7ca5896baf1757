// What ListShards says about a shard, and what GetRecords says about a closed shard's children.
//
// Thread safety: plain values.
#ifndef RILL_STREAM_SHARD_DESCRIPTION_H_
#define RILL_STREAM_SHARD_DESCRIPTION_H_

#include <optional>
#include <vector>

#include "rill/base/hash_key.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"

namespace rill {

struct SequenceNumberRange {
  // At or below the shard's first record's sequence number.
  SequenceNumber starting_sequence_number;
  // Set once the shard is closed: at or above its last record's sequence number.
  std::optional<SequenceNumber> ending_sequence_number;
};

struct ShardDescription {
  ShardId shard_id;
  HashKeyRange hash_key_range;
  // For a split child, the split shard; for a merge child, the shard merged into.
  std::optional<ShardId> parent_shard_id;
  // For a merge child, the other parent.
  std::optional<ShardId> adjacent_parent_shard_id;
  SequenceNumberRange sequence_number_range;

  // A closed shard takes no more records but stays readable until its records expire.
  bool closed() const { return sequence_number_range.ending_sequence_number.has_value(); }
};

// A child of a closed shard, returned with the read that reaches the closed shard's end.
struct ChildShard {
  ShardId shard_id;
  std::vector<ShardId> parent_shards;
  HashKeyRange hash_key_range;
};

}  // namespace rill

#endif  // RILL_STREAM_SHARD_DESCRIPTION_H_
