// KeyTable: the hash table under WindowOperator's state (one table of States per tumbling window or
// hopping pane, one of live-window counts per key, one of sessions per key). Not public API.
//
// Why hand-written: entries are dense in a vector, so closing a window scans and sorts them
// without chasing nodes, and freeing a window frees two arrays; probes start from the key's
// StableHash, so the layout (and the cost) is the same on every run.
#ifndef RILL_PROCESS_INTERNAL_KEY_TABLE_H_
#define RILL_PROCESS_INTERNAL_KEY_TABLE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"

namespace rill::internal {

// A hash table from Key to V for the operator's states (one table per window or pane) and its
// per-key bookkeeping. Entries are dense in a vector (cheap to scan, sort and free), indexed by
// a power-of-two array of cells probed linearly from the key's StableHash and kept at most half
// full; an erase moves the last entry into the gap. Entry indices are stable until an erase.
// At most 2^31 entries. Not thread-safe.
template <typename Key, typename V>
class KeyTable {
 public:
  struct Entry {
    Key key;
    V value;
    uint64_t hash;  // StableHash(key)
  };
  static constexpr uint32_t kNone = 0xffffffffu;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const std::vector<Entry>& entries() const { return entries_; }
  Entry& at(uint32_t i) { return entries_[i]; }
  const Entry& at(uint32_t i) const { return entries_[i]; }

  // The index of key's entry, or kNone.
  uint32_t Find(const Key& key, uint64_t hash) const {
    return cells_.empty() ? kNone : cells_[Probe(key, hash)];
  }

  // The index of key's entry, appended with value make() if missing (*inserted says which).
  template <typename Make>
  uint32_t FindOrInsert(const Key& key, uint64_t hash, Make&& make, bool* inserted) {
    if (!cells_.empty()) {
      const uint32_t i = cells_[Probe(key, hash)];
      if (i != kNone) {
        *inserted = false;
        return i;
      }
    }
    *inserted = true;
    return Insert(key, hash, make);
  }

  // Removes entry i; the last entry takes its index.
  void EraseAt(uint32_t i) {
    EraseCell(CellOf(i));
    const auto last = static_cast<uint32_t>(entries_.size() - 1);
    if (i != last) {
      cells_[CellOf(last)] = i;
      entries_[i] = std::move(entries_[last]);
    }
    entries_.pop_back();
  }

  // Releases all memory once empty, and shrinks the cells (and the entries' capacity) once the
  // table is under an eighth full, so that a burst of keys does not hold memory forever.
  void ShrinkIfSparse() {
    if (entries_.empty()) {
      std::vector<Entry>().swap(entries_);
      std::vector<uint32_t>().swap(cells_);
    } else if (cells_.size() > kMinCells && 8 * entries_.size() < cells_.size()) {
      entries_.shrink_to_fit();
      size_t n = kMinCells;
      while (n < 2 * entries_.size()) n *= 2;
      Rehash(n);
    }
  }

  // Bytes of the entries' and cells' storage (not counting heap held by keys or values).
  size_t FootprintBytes() const {
    return entries_.capacity() * sizeof(Entry) + cells_.capacity() * sizeof(uint32_t);
  }

  // The entries ordered by key, for deterministic emission and snapshots.
  std::vector<const Entry*> SortedByKey() const {
    std::vector<const Entry*> sorted;
    sorted.reserve(entries_.size());
    for (const Entry& e : entries_) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(),
              [](const Entry* a, const Entry* b) { return a->key < b->key; });
    return sorted;
  }

 private:
  static constexpr size_t kMinCells = 16;

  // The cell holding key, or the free cell where probing for it stopped. REQUIRES: cells exist.
  size_t Probe(const Key& key, uint64_t hash) const {
    const size_t mask = cells_.size() - 1;
    for (size_t c = hash & mask;; c = (c + 1) & mask) {
      const uint32_t i = cells_[c];
      if (i == kNone) return c;
      const Entry& e = entries_[i];
      if (e.hash == hash && e.key == key) return c;
    }
  }

  // The cell pointing at entry i.
  size_t CellOf(uint32_t i) const {
    const size_t mask = cells_.size() - 1;
    size_t c = entries_[i].hash & mask;
    while (cells_[c] != i) c = (c + 1) & mask;
    return c;
  }

  // Appends key (absent) with value make(), growing the cells first if they would pass half full.
  // Out of line: the lookup above is the hot path.
  template <typename Make>
  ABSL_ATTRIBUTE_NOINLINE uint32_t Insert(const Key& key, uint64_t hash, Make& make) {
    if (2 * (entries_.size() + 1) > cells_.size()) {
      Rehash(std::max<size_t>(kMinCells, 2 * cells_.size()));
    }
    const size_t cell = Probe(key, hash);
    const auto i = static_cast<uint32_t>(entries_.size());
    entries_.push_back(Entry{key, make(), hash});
    cells_[cell] = i;
    return i;
  }

  void Rehash(size_t cells) {
    cells_.assign(cells, kNone);
    const size_t mask = cells - 1;
    for (size_t i = 0; i < entries_.size(); ++i) {
      size_t c = entries_[i].hash & mask;
      while (cells_[c] != kNone) c = (c + 1) & mask;
      cells_[c] = static_cast<uint32_t>(i);
    }
  }

  // Frees a cell by backward-shift deletion (no tombstones, so probes stay short).
  void EraseCell(size_t c) {
    const size_t mask = cells_.size() - 1;
    size_t j = c;
    for (;;) {
      j = (j + 1) & mask;
      const uint32_t i = cells_[j];
      if (i == kNone) break;
      const size_t home = entries_[i].hash & mask;
      // Move the entry at j back to c unless its home lies cyclically in (c, j].
      const bool home_in_range = c <= j ? (c < home && home <= j) : (c < home || home <= j);
      if (!home_in_range) {
        cells_[c] = i;
        c = j;
      }
    }
    cells_[c] = kNone;
  }

  std::vector<Entry> entries_;
  std::vector<uint32_t> cells_;  // entry index, or kNone for a free cell
};

}  // namespace rill::internal

#endif  // RILL_PROCESS_INTERNAL_KEY_TABLE_H_
