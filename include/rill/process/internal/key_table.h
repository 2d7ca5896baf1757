// KeyMap: the hash map under WindowOperator's state (one map of States per tumbling window or
// hopping pane, one of live-window counts per key, one of sessions per key), and the few helpers
// the engines need around it. Not public API.
//
// Why absl::flat_hash_map keyed by rill::StableHash: it measured as fast as the hand-written
// table it replaced (see the commit that introduced it), and StableHash is what a key type must
// provide anyway (aggregators.h), so no second hash requirement (absl::Hash) is imposed on keys.
// Iteration order is unspecified (absl salts it per table); everything the operator emits or
// snapshots is sorted by key first (SortedByKey), so results and snapshot bytes do not depend
// on it.
#ifndef RILL_PROCESS_INTERNAL_KEY_TABLE_H_
#define RILL_PROCESS_INTERNAL_KEY_TABLE_H_

#include <algorithm>
#include <cstddef>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "rill/process/aggregators.h"

namespace rill::internal {

// Hashes a key with rill::StableHash (built in, or the user's found by argument-dependent lookup).
template <typename Key>
struct StableHasher {
  size_t operator()(const Key& key) const { return static_cast<size_t>(StableHash(key)); }
};

template <typename Key, typename V>
using KeyMap = absl::flat_hash_map<Key, V, StableHasher<Key>>;

// Releases all memory once the map is empty, and shrinks it once it is under an eighth full, so
// that a burst of keys does not hold memory for ever.
template <typename Map>
void ShrinkIfSparse(Map& map) {
  constexpr size_t kMinCapacity = 16;
  if (map.empty()) {
    if (map.capacity() > 0) Map().swap(map);
  } else if (map.capacity() > kMinCapacity && 8 * map.size() < map.capacity()) {
    map.rehash(0);  // to the smallest capacity that holds size()
  }
}

// Bytes of the map's slots and control bytes (not counting heap held by keys or values).
template <typename Map>
size_t FootprintBytes(const Map& map) {
  const size_t capacity = map.capacity();
  if (capacity == 0) return 0;
  // One control byte per slot, plus a sentinel and a group's worth of cloned control bytes.
  return capacity * (sizeof(typename Map::value_type) + 1) + 1 + 16;
}

// The map's entries ordered by key, for deterministic emission and snapshots.
template <typename Map>
std::vector<const typename Map::value_type*> SortedByKey(const Map& map) {
  using Entry = typename Map::value_type;
  std::vector<const Entry*> sorted;
  sorted.reserve(map.size());
  for (const Entry& e : map) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(),
            [](const Entry* a, const Entry* b) { return a->first < b->first; });
  return sorted;
}

}  // namespace rill::internal

#endif  // RILL_PROCESS_INTERNAL_KEY_TABLE_H_
