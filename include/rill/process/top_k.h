// TopK: the k most frequent values ("heavy hitters"), by the Space-Saving algorithm.
//
// A State keeps at most `capacity` counters (value, count, error). A value already counted
// increments its counter; a new value takes a free counter, or else replaces the counter with the
// smallest count c, inheriting count c + 1 and error c (Metwally, Agrawal, El Abbadi 2005).
//
// Error bound (N = number of values added, summed over merged states): every reported count
// over-estimates the true count by at most its `error`, and
//     true count <= count <= true count + error,   error <= min counter <= N / capacity.
// Any value with a true count above N / capacity is guaranteed to be tracked. An entry whose
// lower bound (count - error) is at least the next entry's count is certainly in the true order.
//
// Merge follows the mergeable Space-Saving rule (Agarwal et al., "Mergeable summaries", 2012;
// Cafaro et al. 2016): a value tracked by both states adds its counts and errors; a value tracked
// by one only adds the other state's minimum counter (0 if that state is not full) to its count and
// error; the `capacity` largest combined counters are kept (ties by value, ascending). The bound
// above keeps holding for the merged N. Merge is exactly commutative; it is associative up to the
// stated bound (different merge trees can keep different low counters).
//
// Example:
//   auto top = rill::TopK<std::string>(/*k=*/3);              // capacity 30 counters
//   auto s = top.Init();
//   for (const auto& product : views) top.Add(s, product);
//   const rill::TopKResult<std::string> result = top.Finish(s);
//   for (const auto& e : result.entries) {
//     // e.value, e.count (upper bound), e.count - e.error (lower bound)
//   }
//
// Cost: Add is one hash lookup plus O(log capacity) counter moves. Memory: capacity counters and
// a hash table of 2-4 cells per counter. Allocation: a State grows (amortized) until it holds
// `capacity` values; after that Add allocates only when T itself allocates on copy (a new
// std::string longer than the small string buffer). Merge and Finish allocate. Thread safety: the
// aggregator is immutable and thread-safe; a State is not. Values: T needs a stable hash
// (rill::StablyHashable), == and < (for deterministic tie order); snapshots need
// rill::ValueCodec<T> (built in for arithmetic types and std::string).
#ifndef RILL_PROCESS_TOP_K_H_
#define RILL_PROCESS_TOP_K_H_

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rill/process/aggregators.h"

namespace rill {

// One reported heavy hitter. The true count lies in [count - error, count].
template <typename T>
struct TopKEntry {
  T value;
  uint64_t count = 0;  // upper bound of the true count
  uint64_t error = 0;  // count - error is a lower bound
  friend bool operator==(const TopKEntry&, const TopKEntry&) = default;
};

// What TopK's Finish returns.
template <typename T>
struct TopKResult {
  // At most k entries, by count descending, then value ascending.
  std::vector<TopKEntry<T>> entries;
  // N: the number of values the state has seen (through Add and Merge).
  uint64_t total = 0;
  // The smallest tracked count when all counters are in use, else 0: no untracked value has a
  // true count above it, and no error exceeds it. At most total / capacity.
  uint64_t max_error = 0;
};

// A Space-Saving summary. Copyable value.
template <typename T>
struct TopKState {
  struct Counter {
    T value;
    uint64_t count;
    uint64_t error;
    uint64_t hash;  // StableHash(value)
  };
  std::vector<Counter> counters;   // by slot
  std::vector<uint32_t> heap;      // slots, a min-heap by count
  std::vector<uint32_t> position;  // slot -> index in heap
  // value -> slot: open addressing with linear probing over a power-of-two table (kept at most
  // half full), kNoSlot marks a free cell. Own table rather than a hash map: no allocation per
  // insert, and its layout depends only on the values (StableHash), never on the run.
  std::vector<uint32_t> table;
  uint64_t total = 0;
  static constexpr uint32_t kNoSlot = 0xffffffffu;
};

template <typename T>
requires StablyHashable<T> && std::totally_ordered<T> && std::copyable<T>
class TopKAggregator {
 public:
  using Input = T;
  using State = TopKState<T>;
  using Result = TopKResult<T>;
  using Counter = typename State::Counter;

  // k in [1, 2^20] and capacity in [k, 2^24], clamped; capacity 0 means 10·k.
  TopKAggregator(size_t k, size_t capacity)
      : k_(std::clamp<size_t>(k, 1, size_t{1} << 20)),
        capacity_(std::clamp<size_t>(capacity == 0 ? 10 * k_ : capacity, k_, size_t{1} << 24)) {}

  size_t k() const { return k_; }
  size_t capacity() const { return capacity_; }

  State Init() const { return State{}; }

  void Add(State& state, const T& value) const { AddImpl(state, value); }
  // For std::string values: strings by view; copied only when a new value is stored.
  void Add(State& state, std::string_view value) const requires std::same_as<T, std::string> {
    AddImpl(state, value);
  }
  void Add(State& state, const char* value) const requires std::same_as<T, std::string> {
    AddImpl(state, value == nullptr ? std::string_view() : std::string_view(value));
  }

  void Merge(State& into, const State& from) const {
    if (from.total == 0 && from.counters.empty()) return;
    if (into.total == 0 && into.counters.empty()) {
      into = from;
      return;
    }
    if (into.table.empty() || from.table.empty()) return;  // not reachable for states with values
    const uint64_t min_into = MinimumIfFull(into);
    const uint64_t min_from = MinimumIfFull(from);
    std::vector<Counter> combined;
    combined.reserve(into.counters.size() + from.counters.size());
    for (const Counter& c : into.counters) {
      const uint32_t cell = Find(from, c.value, c.hash);
      if (from.table[cell] != State::kNoSlot) {
        const Counter& f = from.counters[from.table[cell]];
        combined.push_back({c.value, c.count + f.count, c.error + f.error, c.hash});
      } else {
        combined.push_back({c.value, c.count + min_from, c.error + min_from, c.hash});
      }
    }
    for (const Counter& f : from.counters) {
      if (into.table[Find(into, f.value, f.hash)] == State::kNoSlot) {
        combined.push_back({f.value, f.count + min_into, f.error + min_into, f.hash});
      }
    }
    if (combined.size() > capacity_) {
      std::nth_element(combined.begin(), combined.begin() + capacity_, combined.end(), Heavier);
      combined.resize(capacity_);
    }
    const uint64_t total = into.total + from.total;
    (void)Rebuild(into, std::move(combined));  // values are distinct by construction
    into.total = total;
  }

  Result Finish(const State& state) const {
    Result r;
    r.total = state.total;
    r.max_error = MinimumIfFull(state);
    std::vector<const Counter*> order;
    order.reserve(state.counters.size());
    for (const Counter& c : state.counters) order.push_back(&c);
    const size_t n = std::min(k_, order.size());
    std::partial_sort(order.begin(), order.begin() + n, order.end(),
                      [](const Counter* a, const Counter* b) { return Heavier(*a, *b); });
    r.entries.reserve(n);
    for (size_t i = 0; i < n; ++i)
      r.entries.push_back({order[i]->value, order[i]->count, order[i]->error});
    return r;
  }

  // Layout after the header: u32 capacity, u64 total, u32 counter count, then per counter (in
  // Heavier order, so equal states encode equally): value (ValueCodec<T>), u64 count, u64 error.
  void Encode(const State& state, std::string* out) const requires requires {
    ValueCodec<T>::TypeCode();
  }
  {
    internal::PutHeader(out, static_cast<uint8_t>(AggregatorKind::kTopK),
                        ValueCodec<T>::TypeCode());
    internal::PutLittleEndian(out, static_cast<uint32_t>(capacity_));
    internal::PutLittleEndian(out, state.total);
    internal::PutLittleEndian(out, static_cast<uint32_t>(state.counters.size()));
    std::vector<const Counter*> order;
    order.reserve(state.counters.size());
    for (const Counter& c : state.counters) order.push_back(&c);
    std::sort(order.begin(), order.end(),
              [](const Counter* a, const Counter* b) { return Heavier(*a, *b); });
    for (const Counter* c : order) {
      ValueCodec<T>::Encode(c->value, out);
      internal::PutLittleEndian(out, c->count);
      internal::PutLittleEndian(out, c->error);
    }
  }

  // Accepts only a state of this aggregator's capacity, with distinct values and error <= count.
  bool Decode(std::string_view bytes, State* state) const requires requires {
    ValueCodec<T>::TypeCode();
  }
  {
    internal::ByteReader in(bytes);
    uint32_t capacity, n;
    uint64_t total;
    if (!internal::ReadHeader(&in, static_cast<uint8_t>(AggregatorKind::kTopK),
                              ValueCodec<T>::TypeCode()) ||
        !in.LittleEndian(&capacity) || capacity != capacity_ || !in.LittleEndian(&total) ||
        !in.LittleEndian(&n) || n > capacity_) {
      return false;
    }
    std::vector<Counter> counters;
    counters.reserve(
        std::min<size_t>(n, in.remaining() / 16));  // garbage cannot force a big allocation
    for (uint32_t i = 0; i < n; ++i) {
      Counter c{T{}, 0, 0, 0};
      if (!ValueCodec<T>::Decode(&in, &c.value) || !in.LittleEndian(&c.count) ||
          !in.LittleEndian(&c.error) || c.error > c.count || c.count == 0) {
        return false;
      }
      c.hash = StableHash(c.value);
      counters.push_back(std::move(c));
    }
    if (!in.AtEnd()) return false;
    State decoded;
    if (!Rebuild(decoded, std::move(counters))) return false;  // a value twice
    decoded.total = total;
    *state = std::move(decoded);
    return true;
  }

 private:
  // Count descending, then value ascending: the deterministic report and retention order.
  static bool Heavier(const Counter& a, const Counter& b) {
    if (a.count != b.count) return a.count > b.count;
    return a.value < b.value;
  }

  uint64_t MinimumIfFull(const State& s) const {
    if (s.counters.size() < capacity_ || s.heap.empty()) return 0;
    return s.counters[s.heap[0]].count;
  }

  template <typename V>
  void AddImpl(State& s, const V& value) const {
    ++s.total;
    const uint64_t hash = StableHash(value);
    if (s.table.empty()) s.table.assign(16, State::kNoSlot);
    uint32_t cell = Find(s, value, hash);
    if (s.table[cell] != State::kNoSlot) {
      const uint32_t slot = s.table[cell];
      ++s.counters[slot].count;
      SiftDown(s, s.position[slot]);
      return;
    }
    if (s.counters.size() < capacity_) {
      const auto slot = static_cast<uint32_t>(s.counters.size());
      s.counters.push_back({T(value), 1, 0, hash});
      s.heap.push_back(slot);
      s.position.push_back(static_cast<uint32_t>(s.heap.size() - 1));
      SiftUp(s, s.heap.size() - 1);
      if (2 * s.counters.size() > s.table.size()) {
        Reindex(s);
      } else {
        s.table[cell] = slot;
      }
      return;
    }
    // Replace the minimum counter: the newcomer inherits its count as error.
    const uint32_t slot = s.heap[0];
    Counter& c = s.counters[slot];
    EraseCell(s, Find(s, c.value, c.hash));
    c.value = T(value);
    c.hash = hash;
    c.error = c.count;
    ++c.count;
    s.table[FindFree(s, hash)] = slot;
    SiftDown(s, 0);
  }

  static void Swap(State& s, size_t i, size_t j) {
    std::swap(s.heap[i], s.heap[j]);
    s.position[s.heap[i]] = static_cast<uint32_t>(i);
    s.position[s.heap[j]] = static_cast<uint32_t>(j);
  }
  static uint64_t CountAt(const State& s, size_t i) { return s.counters[s.heap[i]].count; }

  static void SiftUp(State& s, size_t i) {
    while (i > 0) {
      const size_t parent = (i - 1) / 2;
      if (CountAt(s, parent) <= CountAt(s, i)) break;
      Swap(s, i, parent);
      i = parent;
    }
  }
  static void SiftDown(State& s, size_t i) {
    const size_t n = s.heap.size();
    for (;;) {
      size_t smallest = i;
      const size_t l = 2 * i + 1, r = l + 1;
      if (l < n && CountAt(s, l) < CountAt(s, smallest)) smallest = l;
      if (r < n && CountAt(s, r) < CountAt(s, smallest)) smallest = r;
      if (smallest == i) return;
      Swap(s, i, smallest);
      i = smallest;
    }
  }

  // The cell holding `value`, or the free cell where probing for it stopped.
  template <typename V>
  static uint32_t Find(const State& s, const V& value, uint64_t hash) {
    const size_t mask = s.table.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const uint32_t slot = s.table[i];
      if (slot == State::kNoSlot) return static_cast<uint32_t>(i);
      const Counter& c = s.counters[slot];
      if (c.hash == hash && c.value == value) return static_cast<uint32_t>(i);
    }
  }
  static uint32_t FindFree(const State& s, uint64_t hash) {
    const size_t mask = s.table.size() - 1;
    size_t i = hash & mask;
    while (s.table[i] != State::kNoSlot) i = (i + 1) & mask;
    return static_cast<uint32_t>(i);
  }
  // Frees a cell by backward-shift deletion (no tombstones, so probes stay short).
  static void EraseCell(State& s, size_t i) {
    const size_t mask = s.table.size() - 1;
    size_t j = i;
    for (;;) {
      j = (j + 1) & mask;
      const uint32_t slot = s.table[j];
      if (slot == State::kNoSlot) break;
      const size_t home = s.counters[slot].hash & mask;
      // Move the entry at j back to i unless its home lies cyclically in (i, j].
      const bool home_in_range = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!home_in_range) {
        s.table[i] = slot;
        i = j;
      }
    }
    s.table[i] = State::kNoSlot;
  }
  // Rebuilds the table at twice the counters' number (a power of two >= 16). False if two
  // counters hold the same value.
  static bool Reindex(State& s) {
    size_t size = 16;
    while (size < 2 * s.counters.size() + 2) size *= 2;
    s.table.assign(size, State::kNoSlot);
    for (size_t slot = 0; slot < s.counters.size(); ++slot) {
      const Counter& c = s.counters[slot];
      const uint32_t cell = Find(s, c.value, c.hash);
      if (s.table[cell] != State::kNoSlot) return false;
      s.table[cell] = static_cast<uint32_t>(slot);
    }
    return true;
  }

  // Makes `s` hold exactly `counters` (heap and index rebuilt), in Heavier order. False if two
  // counters hold the same value.
  static bool Rebuild(State& s, std::vector<Counter> counters) {
    std::sort(counters.begin(), counters.end(), Heavier);
    s.counters = std::move(counters);
    s.heap.clear();
    s.position.clear();
    // Heavier order reversed is a valid min-heap by count: place slots from the last.
    const size_t n = s.counters.size();
    s.heap.resize(n);
    s.position.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const auto slot = static_cast<uint32_t>(n - 1 - i);
      s.heap[i] = slot;
      s.position[slot] = static_cast<uint32_t>(i);
    }
    return Reindex(s);
  }

  size_t k_;
  size_t capacity_;
};

// The k heaviest values of T, with `capacity` counters (k in [1, 2^20]; capacity in [k, 2^24],
// default 0 = 10·k). Each count over-estimates by at most N / capacity.
template <typename T>
TopKAggregator<T> TopK(size_t k, size_t capacity = 0) {
  return TopKAggregator<T>(k, capacity);
}

static_assert(Aggregator<TopKAggregator<int64_t>>);
static_assert(Aggregator<TopKAggregator<std::string>>);

}  // namespace rill

#endif  // RILL_PROCESS_TOP_K_H_
