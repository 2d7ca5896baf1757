// WindowOperator: keyed event-time windows with an aggregator, closed by the watermark.
//
// The operator keeps one aggregator State per (key, window) for tumbling windows, per (key, pane)
// for hopping windows (panes of gcd(size, slide), the slide itself when it divides the size; a
// window's result is the Merge of its size / pane panes, computed when it is emitted, never
// recomputed per record) and per (key, session) for session windows. Records
// come in with Add; AdvanceWatermark closes every window whose end is at or before the watermark
// and emits its result. It is the engine under the typed Pipeline; it can be used on its own.
//
// Example:
//   rill::WindowOperator<std::string, rill::CountAggregator, rill::TumblingWindow> op(
//       rill::Count(), rill::TumblingWindow(absl::Minutes(5)),
//       {.allowed_lateness = absl::Minutes(1)});
//   // Or, with parameters from outside, checked (kInvalidArgument naming a bad one):
//   auto checked = rill::WindowOperator<std::string, rill::CountAggregator,
//                                       rill::HoppingWindow>::Create(
//       rill::Count(), rill::HoppingWindow(size, slide), {.allowed_lateness = lateness});
//   auto emit = [](const rill::WindowResult<std::string, uint64_t>& r) { ... };
//   op.Add("level-3", event_time, purchase, emit);
//   op.AdvanceWatermark(watermark, emit);   // emits every window with end <= watermark
//
// Semantics:
//   * Windows are half-open [start, end). A window is *closed* once end <= watermark and
//     *expired* once end + allowed_lateness <= watermark. The watermark never goes back: a lower
//     value passed to AdvanceWatermark is ignored.
//   * Emission. AdvanceWatermark emits, for every window that closes, its result with
//     is_update = false, in (end, key) order. Every other emission has is_update = true:
//       - EmitMode::kOnUpdate: after every Add, the current result of each open window the record
//         went into (early results);
//       - in both modes: after an Add into a closed but not expired window (a late record within
//         allowed lateness), that window's updated result. Consumers should upsert results by
//         (key, start, end). (A late record may also land in a closed window that had no record
//         for its key before; its first result then has is_update = true.)
//     Every result of a window carries its result over all records accepted so far.
//   * Late records. A record is late when it would go into no window that has not expired:
//     tumbling, its window has expired; hopping, every window holding it has expired (a record
//     whose earliest windows expired but whose later ones did not counts in the later ones only);
//     session, it touches no live session and its own session [t, t + gap) has expired. A late
//     record is not aggregated: Add returns false, late_records() counts it, and the overload of
//     Add taking a `late` callback passes it on (key, event time, value). An infinite event time
//     is treated as late, and so is, for tumbling and hopping windows, one whose window would
//     start or end beyond the range of int64 microseconds since the Unix epoch (about 292,000
//     years either way). Nothing is dropped silently.
//   * Sessions. A record at t opens [t, t + gap). Sessions that overlap or touch (one's end equals
//     the other's start) are one session: a record exactly at a session's end extends it, and a
//     record bridging two sessions merges them (their States are merged). A session closes when
//     its end <= watermark. When a late record merges closed sessions, the merged session's
//     result (is_update = true) supersedes those of the sessions it absorbed.
//   * State is freed as soon as it expires: a tumbling window or session at end + lateness <=
//     watermark, a hopping pane once the last window holding it has expired (that window starts
//     at the latest multiple of the slide at or before the pane's start: pane start + size +
//     lateness <= watermark when the slide divides the size); a key with no live window is
//     forgotten.
//   * Snapshot / Restore capture everything (watermark, late count, every live window, pane or
//     session with its encoded State): an operator restored from a snapshot and fed the rest of
//     the input emits exactly what the original would have. Equal states give equal snapshots.
//
// Requirements: Key is copyable, compared by operator== and totally ordered by operator< (results
// are emitted in key order for determinism), hashed by rill::StableHash (aggregators.h: built in
// for integral types and std::string; declare `uint64_t StableHash(const YourKey&)` next to your
// own type), and has a rill::KeyCodec<Key> for snapshots (provided for integral types and
// std::string; specialise it for your own). Emit is any callable taking
// `const WindowResult<Key, typename Agg::Result>&`; it must not call back into the operator.
//
// Cost: Add into the tumbling window or hopping pane that the previous Add went into, while it is
// open, is one hash of the key and one probe of that window's hash table (keyed by StableHash,
// so the layout and the cost are the same on every run); Add into another window first finds it
// in an ordered map of the live windows, O(log windows). A session Add is one probe of the table
// of keys and a scan of the key's sessions. Closing a window sorts its keys, so results come out
// in key order whatever the hash.
//
// Thread safety: not thread-safe; one thread drives one operator.
// Allocation: Add into an existing (key, window), (key, pane) or (key, session) never allocates
// (an emission builds its WindowResult, which copies the key: a std::string key longer than its
// small buffer allocates, as may the aggregator's Result). Add allocates when a new key, window,
// pane or session appears (amortized: a window's hash table grows by doubling). AdvanceWatermark
// allocates scratch vectors when it closes windows or sessions (to sort their keys) and shrinks
// tables that expiry left mostly empty; Snapshot allocates to sort keys.
#ifndef RILL_PROCESS_WINDOW_OPERATOR_H_
#define RILL_PROCESS_WINDOW_OPERATOR_H_

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "rill/base/error.h"
#include "rill/process/aggregators.h"
#include "rill/process/internal/aggregator_encoding.h"
#include "rill/process/window.h"

namespace rill {

// When results are emitted.
enum class EmitMode : uint8_t {
  // Once, when the watermark closes the window (plus updates for late records within allowed
  // lateness).
  kOnClose = 0,
  // After every change (is_update = true), and finally on close (is_update = false).
  kOnUpdate = 1,
};

struct WindowOperatorOptions {
  // How long (in event time) after its close a window still accepts late records, which update
  // and re-emit its result. Range: >= 0 (infinite: windows are kept until the watermark reaches
  // the end of time). Default: 0 (a record for a closed window is late).
  absl::Duration allowed_lateness = absl::ZeroDuration();
  // When results are emitted. Default: kOnClose.
  EmitMode emit = EmitMode::kOnClose;

  // OK, or kInvalidArgument naming the option out of range.
  absl::Status Validate() const {
    if (allowed_lateness < absl::ZeroDuration()) {
      return InvalidArgumentError(absl::StrCat("allowed_lateness must not be negative; got ",
                                               absl::FormatDuration(allowed_lateness)));
    }
    if (emit != EmitMode::kOnClose && emit != EmitMode::kOnUpdate) {
      return InvalidArgumentError(
          absl::StrCat("emit mode ", static_cast<int>(emit), " is neither kOnClose nor kOnUpdate"));
    }
    return absl::OkStatus();
  }
};

// One result of one window of one key. is_update: see "Emission" above.
template <typename Key, typename R>
struct WindowResult {
  Key key;
  absl::Time start;
  absl::Time end;
  R value;
  bool is_update = false;

  friend bool operator==(const WindowResult&, const WindowResult&) = default;
};

// How keys are written into snapshots. Provided for integral types and std::string (the same
// encoding as ValueCodec); specialise rill::KeyCodec<YourKey> with
//   static void Encode(const Key& k, std::string* out);        // appends
//   static bool Decode(internal::ByteReader* in, Key* k);      // false on garbage
template <typename Key, typename Enable = void>
struct KeyCodec;

template <typename Key>
struct KeyCodec<Key, std::enable_if_t<std::is_integral_v<Key>>> : ValueCodec<Key> {};

template <>
struct KeyCodec<std::string> : ValueCodec<std::string> {};

namespace internal {

// Snapshot layout, pinned: magic, version, assigner kind.
inline constexpr char kWindowSnapshotMagic[4] = {'R', 'W', 'O', 'P'};
inline constexpr uint8_t kWindowSnapshotVersion = 1;
enum class AssignerKind : uint8_t { kTumbling = 1, kHopping = 2, kSession = 3 };

// absl::Time exactly: a tag (0 infinite past, 1 finite, 2 infinite future), Unix seconds and the
// sub-second remainder in absl's quarter-nanosecond ticks.
inline void PutTime(std::string* out, absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) {
    PutU8(out, t == absl::InfinitePast() ? 0 : 2);
    return;
  }
  PutU8(out, 1);
  const int64_t s = absl::ToUnixSeconds(t);  // floor
  absl::Duration rem;
  const int64_t ticks =
      absl::IDivDuration(t - absl::FromUnixSeconds(s), absl::Nanoseconds(1) / 4, &rem);
  PutLittleEndian(out, static_cast<uint64_t>(s));
  PutLittleEndian(out, static_cast<uint32_t>(ticks));
}

inline bool ReadTime(ByteReader* in, absl::Time* t) {
  uint8_t tag;
  if (!in->U8(&tag) || tag > 2) return false;
  if (tag != 1) {
    *t = tag == 0 ? absl::InfinitePast() : absl::InfiniteFuture();
    return true;
  }
  uint64_t s;
  uint32_t ticks;
  if (!in->LittleEndian(&s) || !in->LittleEndian(&ticks) || ticks >= 4'000'000'000u) return false;
  const absl::Time decoded = absl::FromUnixSeconds(static_cast<int64_t>(s)) +
                             (absl::Nanoseconds(1) / 4) * static_cast<int64_t>(ticks);
  if (decoded == absl::InfinitePast() || decoded == absl::InfiniteFuture()) return false;
  *t = decoded;
  return true;
}

inline void PutDuration(std::string* out, absl::Duration d) { PutTime(out, absl::UnixEpoch() + d); }

inline bool ReadDuration(ByteReader* in, absl::Duration* d) {
  absl::Time t;
  if (!ReadTime(in, &t)) return false;
  *d = t - absl::UnixEpoch();
  return true;
}

inline void PutBlob(std::string* out, std::string_view bytes) {
  PutLittleEndian(out, static_cast<uint32_t>(bytes.size()));
  out->append(bytes);
}

inline bool ReadBlob(ByteReader* in, std::string_view* bytes) {
  uint32_t n;
  return in->LittleEndian(&n) && in->Bytes(n, bytes);
}

// Rough heap bytes of a key beyond its sizeof.
template <typename Key>
size_t KeyHeapBytes(const Key& key) {
  if constexpr (std::is_same_v<Key, std::string>) {
    return key.capacity() > 15 ? key.capacity() + 1 : 0;
  } else {
    return 0;
  }
}

// A red-black tree node's bookkeeping (three pointers and a colour), for state_bytes().
inline constexpr size_t kMapNodeOverhead = 32;

// The start, in Unix microseconds, of the `step`-microsecond slot holding `us` (the floor to a
// multiple of step, as FloorTo), so that [*start, *start + step) holds us. False when step < 1,
// when `us` is the saturated value of a time beyond int64 microseconds, or when the slot would
// reach beyond them.
inline bool FloorToStep(int64_t us, int64_t step, int64_t* start) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (step < 1 || us == kMin || us == kMax) return false;
  int64_t rem = us % step;
  if (rem < 0) rem += step;
  if (us < kMin + rem) return false;
  *start = us - rem;
  return *start <= kMax - step;
}

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

// The operator's last-used open window or pane and its event-time range, so that a record for it
// skips the map lookup. Never survives a copy or move (it points into its operator).
template <typename Slot>
struct SlotCache {
  Slot* slot = nullptr;
  absl::Time from = absl::UnixEpoch();  // [from, to) maps to slot; empty when slot is null
  absl::Time to = absl::UnixEpoch();

  SlotCache() = default;
  SlotCache(const SlotCache&) noexcept {}
  SlotCache(SlotCache&& other) noexcept { other.Reset(); }
  SlotCache& operator=(const SlotCache&) noexcept {
    Reset();
    return *this;
  }
  SlotCache& operator=(SlotCache&& other) noexcept {
    Reset();
    other.Reset();
    return *this;
  }
  ~SlotCache() = default;

  void Reset() {
    slot = nullptr;
    from = to = absl::UnixEpoch();
  }
  Slot* Lookup(absl::Time t) const { return from <= t && t < to ? slot : nullptr; }
};

}  // namespace internal

// Keyed windows of Assigner (TumblingWindow, HoppingWindow or SessionWindow) aggregated by Agg.
// See the file comment for the semantics.
template <typename Key, typename Agg, typename Assigner>
requires Aggregator<Agg> && std::equality_comparable<Key> && StablyHashable<Key> &&
    (std::same_as<Assigner, TumblingWindow> || std::same_as<Assigner, HoppingWindow> ||
     std::same_as<Assigner, SessionWindow>)class WindowOperator {
 public:
  using State = typename Agg::State;
  using Input = typename Agg::Input;
  using Result = WindowResult<Key, typename Agg::Result>;

  // An operator, or kInvalidArgument naming the first bad parameter: the assigner's (its
  // Validate(), window.h) or the options' (WindowOperatorOptions::Validate()).
  static absl::StatusOr<WindowOperator> Create(Agg agg, Assigner assigner,
                                               WindowOperatorOptions options = {}) {
    if (absl::Status s = assigner.Validate(); !s.ok()) return s;
    if (absl::Status s = options.Validate(); !s.ok()) return s;
    return WindowOperator(std::move(agg), assigner, options);
  }

  // REQUIRES: the assigner and the options are valid (Create checks them). Never crashes
  // otherwise: with an invalid assigner every record is late; a negative allowed lateness is
  // taken as zero, and an unknown emit mode as kOnClose.
  WindowOperator(Agg agg, Assigner assigner, WindowOperatorOptions options = {})
      : agg_(std::move(agg)), assigner_(assigner), options_(options) {
    if (options_.allowed_lateness < absl::ZeroDuration()) {
      options_.allowed_lateness = absl::ZeroDuration();
    }
    if (options_.emit != EmitMode::kOnUpdate) options_.emit = EmitMode::kOnClose;
  }

  // Adds one record. Returns true if it was aggregated, false if it was late (see the file
  // comment), in which case late_records() counts it. May emit (is_update = true) in kOnUpdate
  // mode or when the record updates a closed window within allowed lateness.
  // Allocates only when a new key, window, pane or session appears.
  template <typename Emit>
  bool Add(const Key& key, absl::Time event_time, const Input& value, Emit&& emit) {
    auto no_late = [](const Key&, absl::Time, const Input&) {};
    return Add(key, event_time, value, emit, no_late);
  }

  // As above, and a late record is also passed to late(key, event_time, value).
  template <typename Emit, typename Late>
  bool Add(const Key& key, absl::Time event_time, const Input& value, Emit&& emit, Late&& late) {
    bool accepted;
    if (event_time == absl::InfinitePast() || event_time == absl::InfiniteFuture()) {
      accepted = false;
    } else if constexpr (kKind == internal::AssignerKind::kSession) {
      accepted = AddSession(key, event_time, value, emit);
    } else {
      accepted = AddToSlot(key, event_time, value, emit);
    }
    if (!accepted) {
      ++late_records_;
      late(key, event_time, value);
    }
    return accepted;
  }

  // Moves the watermark to `watermark` (ignored if lower than the current one), emits every
  // window that closes (end <= watermark) with is_update = false in (end, key) order, then frees
  // the state that expired (end + allowed_lateness <= watermark). Allocates only when something
  // closes or expires (scratch to sort keys; shrinking tables).
  template <typename Emit>
  void AdvanceWatermark(absl::Time watermark, Emit&& emit) {
    if (watermark <= watermark_) return;
    const absl::Time prev = watermark_;
    watermark_ = watermark;
    if constexpr (kKind == internal::AssignerKind::kTumbling) {
      if (cache_.slot != nullptr && cache_.slot->end <= watermark_) cache_.Reset();
      AdvanceTumbling(prev, emit);
    } else if constexpr (kKind == internal::AssignerKind::kHopping) {
      if (cache_.slot != nullptr && cache_.slot->end <= watermark_) cache_.Reset();
      AdvanceHopping(prev, emit);
    } else {
      AdvanceSession(prev, emit);
    }
  }

  absl::Time watermark() const { return watermark_; }
  // Records not aggregated because they were late.
  uint64_t late_records() const { return late_records_; }

  // Live windows: tumbling windows, hopping panes, or sessions held in state, each counted once
  // per key it holds a State for.
  size_t live_windows() const {
    if constexpr (kKind == internal::AssignerKind::kSession) {
      size_t n = 0;
      for (const auto& e : sessions_.entries()) n += e.value.sessions.size();
      return n;
    } else {
      return live_slots_;
    }
  }

  // Keys with at least one live window.
  size_t live_keys() const {
    if constexpr (kKind == internal::AssignerKind::kSession) {
      return sessions_.size();
    } else {
      return key_windows_.size();
    }
  }

  // A rough estimate of the bytes held by state: the capacity of the hash tables holding keys,
  // States and bounds, the windows' and timers' tree nodes, heap held by string keys, and heap
  // held by States when the aggregator reports it (an optional `size_t StateBytes(const State&)
  // const` member returning the State's total bytes; otherwise sizeof(State)). O(live windows).
  size_t state_bytes() const {
    size_t bytes = 0;
    if constexpr (kKind == internal::AssignerKind::kSession) {
      bytes += sessions_.FootprintBytes();
      for (const auto& e : sessions_.entries()) {
        bytes += internal::KeyHeapBytes(e.key);
        bytes += sizeof(Key) + sizeof(absl::Time) + internal::kMapNodeOverhead;  // timer
        bytes += e.value.sessions.capacity() * sizeof(Session);
        for (const Session& s : e.value.sessions) bytes += StateHeapBytes(s.state);
      }
    } else {
      for (const auto& [end, slot] : slots_) {
        bytes += sizeof(end) + sizeof(Slot) + internal::kMapNodeOverhead;
        bytes += slot.states.FootprintBytes();
        for (const auto& e : slot.states.entries()) {
          bytes += internal::KeyHeapBytes(e.key) + StateHeapBytes(e.value);
        }
      }
      bytes += key_windows_.FootprintBytes();
      for (const auto& e : key_windows_.entries()) bytes += internal::KeyHeapBytes(e.key);
    }
    return bytes;
  }

  // Appends a versioned binary snapshot of the whole operator state to *out.
  void Snapshot(std::string* out) const {
    out->append(internal::kWindowSnapshotMagic, sizeof(internal::kWindowSnapshotMagic));
    internal::PutU8(out, internal::kWindowSnapshotVersion);
    internal::PutU8(out, static_cast<uint8_t>(kKind));
    PutAssigner(out);
    internal::PutDuration(out, options_.allowed_lateness);
    internal::PutTime(out, watermark_);
    internal::PutLittleEndian(out, late_records_);
    std::string scratch;
    auto put_entry = [&](const Key& key, absl::Time start, absl::Time end, const State& state) {
      KeyCodec<Key>::Encode(key, out);
      internal::PutTime(out, start);
      internal::PutTime(out, end);
      scratch.clear();
      agg_.Encode(state, &scratch);
      internal::PutBlob(out, scratch);
    };
    internal::PutLittleEndian(out, static_cast<uint64_t>(live_windows()));
    // Entries in key order (sessions) or (end, key) order (windows and panes), whatever order the
    // hash tables hold them in, so that equal states give equal bytes.
    if constexpr (kKind == internal::AssignerKind::kSession) {
      for (const auto* e : sessions_.SortedByKey()) {
        for (const Session& s : e->value.sessions) {
          put_entry(e->key, s.bounds.start, s.bounds.end, s.state);
        }
      }
    } else {
      for (const auto& [end, slot] : slots_) {
        for (const auto* e : slot.states.SortedByKey()) {
          put_entry(e->key, slot.start, slot.end, e->value);
        }
      }
    }
  }

  // Replaces the state with a snapshot's. Returns false, leaving the operator unchanged, if `in`
  // is not exactly one snapshot of an operator with the same assigner (kind and sizes) and
  // allowed lateness, or is inconsistent (misaligned or expired windows, duplicates, overlapping
  // sessions, undecodable keys or States, trailing bytes).
  [[nodiscard]] bool Restore(std::string_view in) {
    internal::ByteReader r(in);
    std::string_view magic;
    uint8_t version, kind;
    if (!r.Bytes(sizeof(internal::kWindowSnapshotMagic), &magic) ||
        magic != std::string_view(internal::kWindowSnapshotMagic,
                                  sizeof(internal::kWindowSnapshotMagic)) ||
        !r.U8(&version) || version != internal::kWindowSnapshotVersion || !r.U8(&kind) ||
        kind != static_cast<uint8_t>(kKind) || !CheckAssigner(&r)) {
      return false;
    }
    absl::Duration lateness;
    absl::Time wm;
    uint64_t late, n;
    if (!internal::ReadDuration(&r, &lateness) || lateness != options_.allowed_lateness ||
        !internal::ReadTime(&r, &wm) || !r.LittleEndian(&late) || !r.LittleEndian(&n)) {
      return false;
    }
    // Each entry takes at least 20 bytes; reject absurd counts before looping.
    if (n > r.remaining() / 4) return false;
    Slots slots;
    KeyCounts key_windows;
    Sessions sessions;
    for (uint64_t i = 0; i < n; ++i) {
      Key key{};
      absl::Time start, end;
      std::string_view blob;
      State state = agg_.Init();
      if (!KeyCodec<Key>::Decode(&r, &key) || !internal::ReadTime(&r, &start) ||
          !internal::ReadTime(&r, &end) || !internal::ReadBlob(&r, &blob) ||
          !agg_.Decode(blob, &state)) {
        return false;
      }
      if (!(start < end) || start == absl::InfinitePast() || end == absl::InfiniteFuture()) {
        return false;
      }
      if (kKind != internal::AssignerKind::kHopping && Expired(end, wm)) return false;
      const uint64_t hash = StableHash(key);
      bool inserted;
      if constexpr (kKind == internal::AssignerKind::kSession) {
        if (end - start < assigner_.gap()) return false;
        KeySessions& ks =
            sessions.at(sessions.FindOrInsert(key, hash, NewKeySessions, &inserted)).value;
        // Sorted, and apart (touching sessions would have been merged).
        if (!ks.sessions.empty() && !(ks.sessions.back().bounds.end < start)) return false;
        ks.sessions.push_back(Session{{start, end}, std::move(state)});
      } else {
        int64_t start_us;
        if (!internal::FloorToStep(absl::ToUnixMicros(start), SlotMicros(), &start_us) ||
            absl::FromUnixMicros(start_us) != start || end - start != SlotSize()) {
          return false;  // misaligned, or not a slot of this size
        }
        if constexpr (kKind == internal::AssignerKind::kHopping) {
          if (Expired(LastWindowEnd(start), wm)) return false;
        }
        Slot& slot = slots.try_emplace(end, Slot{start, end, {}}).first->second;
        slot.states.FindOrInsert(
            key, hash, [&state] { return std::move(state); }, &inserted);
        if (!inserted) return false;
        ++key_windows.at(key_windows.FindOrInsert(key, hash, Zero, &inserted)).value;
      }
    }
    if (!r.AtEnd()) return false;
    Timers timers;
    if constexpr (kKind == internal::AssignerKind::kSession) {
      for (uint32_t i = 0; i < sessions.size(); ++i) {
        auto& e = sessions.at(i);
        e.value.timer = NextDue(e.value, wm);
        timers.emplace(e.value.timer, e.key);
      }
    }
    watermark_ = wm;
    late_records_ = late;
    slots_ = std::move(slots);
    key_windows_ = std::move(key_windows);
    live_slots_ = kKind == internal::AssignerKind::kSession ? 0 : static_cast<size_t>(n);
    cache_.Reset();
    sessions_ = std::move(sessions);
    timers_ = std::move(timers);
    return true;
  }

  const Agg& aggregator() const { return agg_; }
  const Assigner& assigner() const { return assigner_; }
  const WindowOperatorOptions& options() const { return options_; }

 private:
  static constexpr internal::AssignerKind kKind =
      std::same_as<Assigner, TumblingWindow>  ? internal::AssignerKind::kTumbling
      : std::same_as<Assigner, HoppingWindow> ? internal::AssignerKind::kHopping
                                              : internal::AssignerKind::kSession;

  // A tumbling window or a hopping pane: its bounds and one State per key.
  struct Slot {
    absl::Time start;
    absl::Time end;
    internal::KeyTable<Key, State> states;
  };
  using Slots = std::map<absl::Time, Slot>;  // by end
  using StateEntry = typename internal::KeyTable<Key, State>::Entry;
  using KeyCounts = internal::KeyTable<Key, size_t>;  // live slots per key
  struct Session {
    WindowBounds bounds;
    State state;
  };
  struct KeySessions {
    std::vector<Session> sessions;  // sorted by start, pairwise apart (not touching)
    absl::Time timer;               // <= the next close or expiry of any of them
  };
  using Sessions = internal::KeyTable<Key, KeySessions>;
  using Timers = std::set<std::pair<absl::Time, Key>>;
  static constexpr uint32_t kNone = internal::KeyTable<Key, State>::kNone;

  static size_t Zero() { return 0; }
  static KeySessions NewKeySessions() { return KeySessions{{}, absl::InfiniteFuture()}; }

  size_t StateSize(const State& state) const {
    if constexpr (requires(const Agg& a, const State& s) {
                    { a.StateBytes(s) } -> std::convertible_to<size_t>;
                  }) {
      return agg_.StateBytes(state);
    } else {
      return sizeof(State);
    }
  }
  // Bytes a State holds beyond its sizeof (counted with the table or vector holding it).
  size_t StateHeapBytes(const State& state) const {
    const size_t size = StateSize(state);
    return size > sizeof(State) ? size - sizeof(State) : 0;
  }

  bool Expired(absl::Time end, absl::Time wm) const {
    return end + options_.allowed_lateness <= wm;
  }

  // The size of a tumbling window or of a hopping pane (zero if the assigner is not valid).
  absl::Duration SlotSize() const {
    if constexpr (kKind == internal::AssignerKind::kHopping) {
      return assigner_.pane();
    } else if constexpr (kKind == internal::AssignerKind::kTumbling) {
      return assigner_.valid() ? assigner_.size() : absl::ZeroDuration();
    } else {
      return absl::ZeroDuration();
    }
  }
  // The step slots are aligned to, as FloorTo takes it (whole microseconds); 0 if the assigner is
  // not valid, so that no slot is ever made.
  int64_t SlotMicros() const { return absl::ToInt64Microseconds(SlotSize()); }

  // The end of the last window holding the slot starting at `start`: for a hopping pane, the
  // window starting at the latest multiple of the slide at or before it.
  absl::Time LastWindowEnd(absl::Time start) const {
    if constexpr (kKind == internal::AssignerKind::kHopping) {
      return assigner_.WindowsOfPane(start).last_end;
    } else {
      return start + assigner_.size();
    }
  }

  void PutAssigner(std::string* out) const {
    if constexpr (kKind == internal::AssignerKind::kTumbling) {
      internal::PutDuration(out, assigner_.size());
    } else if constexpr (kKind == internal::AssignerKind::kHopping) {
      internal::PutDuration(out, assigner_.size());
      internal::PutDuration(out, assigner_.slide());
    } else {
      internal::PutDuration(out, assigner_.gap());
    }
  }

  bool CheckAssigner(internal::ByteReader* r) const {
    absl::Duration a, b;
    if constexpr (kKind == internal::AssignerKind::kTumbling) {
      return internal::ReadDuration(r, &a) && a == assigner_.size();
    } else if constexpr (kKind == internal::AssignerKind::kHopping) {
      return internal::ReadDuration(r, &a) && internal::ReadDuration(r, &b) &&
             a == assigner_.size() && b == assigner_.slide();
    } else {
      return internal::ReadDuration(r, &a) && a == assigner_.gap();
    }
  }

  template <typename Emit>
  void EmitResult(const Key& key, absl::Time start, absl::Time end, const State& state,
                  bool is_update, Emit&& emit) const {
    const Result result{key, start, end, agg_.Finish(state), is_update};
    emit(result);
  }

  // --- Tumbling windows and hopping panes ("slots") ---

  // The slot holding t: the cached one, else found or created in slots_. nullptr if the record
  // is late: the last window holding the slot (the window itself, or for a pane the window
  // starting with it) has expired, or the slot lies beyond int64 microseconds.
  Slot* SlotOf(absl::Time t) {
    if (Slot* cached = cache_.Lookup(t)) return cached;
    return FindSlot(t);
  }

  // SlotOf past the cache; out of line, so that the cached path inlines into Add.
  ABSL_ATTRIBUTE_NOINLINE Slot* FindSlot(absl::Time t) {
    // Floor to the slot in whole microseconds, as the assigner's WindowOf / PaneOf do.
    int64_t start_us;
    const int64_t step = SlotMicros();
    if (!internal::FloorToStep(absl::ToUnixMicros(t), step, &start_us)) return nullptr;
    const absl::Time start = absl::FromUnixMicros(start_us);
    if (Expired(LastWindowEnd(start), watermark_)) return nullptr;
    const absl::Time end = start + SlotSize();
    Slot& slot = slots_.try_emplace(end, Slot{start, end, {}}).first->second;
    if (end > watermark_) {
      cache_.slot = &slot;
      cache_.from = start;
      cache_.to = absl::FromUnixMicros(start_us + step);
    }
    return &slot;
  }

  template <typename Emit>
  bool AddToSlot(const Key& key, absl::Time t, const Input& value, Emit&& emit) {
    Slot* slot = SlotOf(t);
    if (slot == nullptr) return false;
    const uint64_t hash = StableHash(key);
    bool inserted;
    const uint32_t i = slot->states.FindOrInsert(
        key, hash, [this] { return agg_.Init(); }, &inserted);
    if (inserted) {
      ++live_slots_;
      ++key_windows_.at(key_windows_.FindOrInsert(key, hash, Zero, &inserted)).value;
    }
    State& state = slot->states.at(i).value;
    agg_.Add(state, value);
    if (options_.emit == EmitMode::kOnUpdate || slot->end <= watermark_) {
      if constexpr (kKind == internal::AssignerKind::kTumbling) {
        EmitResult(key, slot->start, slot->end, state, /*is_update=*/true, emit);
      } else {
        EmitHoppingUpdates(key, hash, *slot, emit);
      }
    }
    return true;
  }

  // Frees a slot that expired, and forgets keys left without any.
  void FreeSlot(typename Slots::iterator it) {
    for (const StateEntry& e : it->second.states.entries()) {
      const uint32_t k = key_windows_.Find(e.key, e.hash);
      if (--key_windows_.at(k).value == 0) key_windows_.EraseAt(k);
    }
    live_slots_ -= it->second.states.size();
    slots_.erase(it);
  }

  template <typename Emit>
  void AdvanceTumbling(absl::Time prev, Emit&& emit) {
    for (auto it = slots_.upper_bound(prev); it != slots_.end() && it->first <= watermark_; ++it) {
      const Slot& slot = it->second;
      for (const StateEntry* e : slot.states.SortedByKey()) {
        EmitResult(e->key, slot.start, slot.end, e->value, /*is_update=*/false, emit);
      }
    }
    while (!slots_.empty() && Expired(slots_.begin()->first, watermark_)) {
      FreeSlot(slots_.begin());
    }
    key_windows_.ShrinkIfSparse();
  }

  // --- Hopping ---

  // The live panes of the window ending at `end`, earliest first: those ending in
  // (end - size, end].
  typename Slots::const_iterator FirstPaneOf(absl::Time end) const {
    return slots_.upper_bound(end - assigner_.size());
  }

  // The Merge of the key's panes in the window ending at `end`, earliest first; false if it has
  // none.
  bool MergeWindow(const Key& key, uint64_t hash, absl::Time end, State* out) const {
    bool any = false;
    for (auto it = FirstPaneOf(end); it != slots_.end() && it->first <= end; ++it) {
      const uint32_t i = it->second.states.Find(key, hash);
      if (i == kNone) continue;
      if (!any) {
        *out = it->second.states.at(i).value;
        any = true;
      } else {
        agg_.Merge(*out, it->second.states.at(i).value);
      }
    }
    return any;
  }

  // After an Add into `pane`: the updated result of every window holding it that is not expired
  // and, in kOnClose mode, closed.
  template <typename Emit>
  void EmitHoppingUpdates(const Key& key, uint64_t hash, const Slot& pane, Emit&& emit) const {
    State merged = agg_.Init();
    const auto [first_end, last_end] = assigner_.WindowsOfPane(pane.start);
    for (absl::Time end = first_end; end <= last_end; end += assigner_.slide()) {
      if (Expired(end, watermark_)) continue;
      if (options_.emit == EmitMode::kOnClose && end > watermark_) continue;
      MergeWindow(key, hash, end, &merged);
      EmitResult(key, end - assigner_.size(), end, merged, /*is_update=*/true, emit);
    }
  }

  template <typename Emit>
  void AdvanceHopping(absl::Time prev, Emit&& emit) {
    // Windows ending in (prev, watermark] hold panes ending at or before the watermark and
    // starting after prev - size (so ending after prev - size + pane).
    std::vector<absl::Time> ends;
    for (auto it = slots_.upper_bound(prev - assigner_.size() + assigner_.pane());
         it != slots_.end() && it->first <= watermark_; ++it) {
      const auto [first_end, last_end] = assigner_.WindowsOfPane(it->second.start);
      for (absl::Time end = first_end; end <= last_end && end <= watermark_;
           end += assigner_.slide()) {
        if (end > prev) ends.push_back(end);
      }
    }
    std::sort(ends.begin(), ends.end());
    ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
    std::vector<const StateEntry*> keys;
    State merged = agg_.Init();
    for (const absl::Time end : ends) {
      // The keys of the window's panes, each once, in order.
      keys.clear();
      for (auto it = FirstPaneOf(end); it != slots_.end() && it->first <= end; ++it) {
        for (const StateEntry& e : it->second.states.entries()) keys.push_back(&e);
      }
      std::sort(keys.begin(), keys.end(),
                [](const StateEntry* a, const StateEntry* b) { return a->key < b->key; });
      keys.erase(
          std::unique(keys.begin(), keys.end(),
                      [](const StateEntry* a, const StateEntry* b) { return a->key == b->key; }),
          keys.end());
      for (const StateEntry* e : keys) {
        if (MergeWindow(e->key, e->hash, end, &merged)) {
          EmitResult(e->key, end - assigner_.size(), end, merged, /*is_update=*/false, emit);
        }
      }
    }
    // A pane expires with the last window holding it (in the order of the panes).
    while (!slots_.empty() && Expired(LastWindowEnd(slots_.begin()->second.start), watermark_)) {
      FreeSlot(slots_.begin());
    }
    key_windows_.ShrinkIfSparse();
  }

  // --- Session ---

  // When something next happens to the key's sessions after watermark `wm`: the earliest close
  // of an open session or expiry of a closed one.
  absl::Time NextDue(const KeySessions& ks, absl::Time wm) const {
    absl::Time due = absl::InfiniteFuture();
    for (const Session& s : ks.sessions) {
      due = std::min(due,
                     s.bounds.end > wm ? s.bounds.end : s.bounds.end + options_.allowed_lateness);
    }
    return due;
  }

  // Moves the key's timer earlier to `due` (never later: a timer that fires early is re-armed).
  void LowerTimer(const Key& key, KeySessions& ks, absl::Time due) {
    if (due < ks.timer) MoveTimer(key, ks, due);
  }
  ABSL_ATTRIBUTE_NOINLINE void MoveTimer(const Key& key, KeySessions& ks, absl::Time due) {
    auto node = timers_.extract(std::pair<absl::Time, Key>(ks.timer, key));
    ks.timer = due;
    if (node.empty()) {
      timers_.emplace(due, key);
    } else {
      node.value().first = due;
      timers_.insert(std::move(node));
    }
  }

  template <typename Emit>
  bool AddSession(const Key& key, absl::Time t, const Input& value, Emit&& emit) {
    if (!assigner_.valid()) return false;
    const WindowBounds fresh = assigner_.WindowOf(t);
    const uint64_t hash = StableHash(key);
    uint32_t k = sessions_.Find(key, hash);
    std::vector<Session>* list = k == kNone ? nullptr : &sessions_.at(k).value.sessions;
    // The sessions the record touches form a contiguous run [first, last).
    size_t first = 0, last = 0;
    if (list != nullptr) {
      while (first < list->size() && (*list)[first].bounds.end < fresh.start) ++first;
      last = first;
      while (last < list->size() && SessionWindow::Mergeable((*list)[last].bounds, fresh)) ++last;
    }
    Session* session;
    if (first == last) {
      if (Expired(fresh.end, watermark_)) return false;
      if (list == nullptr) {
        bool inserted;
        k = sessions_.FindOrInsert(key, hash, NewKeySessions, &inserted);
        list = &sessions_.at(k).value.sessions;
        first = 0;
      }
      session = &*list->insert(list->begin() + static_cast<std::ptrdiff_t>(first),
                               Session{fresh, agg_.Init()});
    } else {
      session = &(*list)[first];
      session->bounds = SessionWindow::Merge(session->bounds, fresh);
      for (size_t i = first + 1; i < last; ++i) {
        session->bounds = SessionWindow::Merge(session->bounds, (*list)[i].bounds);
        agg_.Merge(session->state, (*list)[i].state);
      }
      list->erase(list->begin() + static_cast<std::ptrdiff_t>(first + 1),
                  list->begin() + static_cast<std::ptrdiff_t>(last));
    }
    agg_.Add(session->state, value);
    const WindowBounds b = session->bounds;
    auto& entry = sessions_.at(k);
    LowerTimer(entry.key, entry.value,
               b.end > watermark_ ? b.end : b.end + options_.allowed_lateness);
    if (options_.emit == EmitMode::kOnUpdate || b.end <= watermark_) {
      EmitResult(key, b.start, b.end, session->state, /*is_update=*/true, emit);
    }
    return true;
  }

  template <typename Emit>
  void AdvanceSession(absl::Time prev, Emit&& emit) {
    // The keys whose timers fired, by entry index (stable until the erasures below).
    std::vector<uint32_t> due;
    while (!timers_.empty() && timers_.begin()->first <= watermark_) {
      auto node = timers_.extract(timers_.begin());
      const Key& key = node.value().second;
      due.push_back(sessions_.Find(key, StableHash(key)));
    }
    // Closings, in (end, key) order.
    std::vector<std::pair<absl::Time, uint32_t>> closing;
    for (const uint32_t k : due) {
      for (const Session& s : sessions_.at(k).value.sessions) {
        if (s.bounds.end > prev && s.bounds.end <= watermark_)
          closing.emplace_back(s.bounds.end, k);
      }
    }
    std::sort(closing.begin(), closing.end(), [this](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first < b.first;
      return sessions_.at(a.second).key < sessions_.at(b.second).key;
    });
    for (const auto& [end, k] : closing) {
      const auto& entry = sessions_.at(k);
      for (const Session& s : entry.value.sessions) {
        if (s.bounds.end == end) {
          EmitResult(entry.key, s.bounds.start, s.bounds.end, s.state, /*is_update=*/false, emit);
        }
      }
    }
    // Expiry, and re-arming the timers. From the highest index down, so that an erasure (which
    // moves the last entry into the gap) only moves an entry already handled.
    std::sort(due.begin(), due.end(), std::greater<>());
    for (const uint32_t k : due) {
      auto& entry = sessions_.at(k);
      std::vector<Session>& list = entry.value.sessions;
      list.erase(
          std::remove_if(list.begin(), list.end(),
                         [&](const Session& s) { return Expired(s.bounds.end, watermark_); }),
          list.end());
      if (list.empty()) {
        sessions_.EraseAt(k);
        continue;
      }
      entry.value.timer = NextDue(entry.value, watermark_);
      timers_.emplace(entry.value.timer, entry.key);
    }
    sessions_.ShrinkIfSparse();
  }

  Agg agg_;
  Assigner assigner_;
  WindowOperatorOptions options_;
  absl::Time watermark_ = absl::InfinitePast();
  uint64_t late_records_ = 0;
  // Tumbling: one State per (window, key). Hopping: one per (pane, key).
  Slots slots_;
  internal::SlotCache<Slot> cache_;  // the last open slot an Add went into
  KeyCounts key_windows_;            // live slots per key
  size_t live_slots_ = 0;            // (slot, key) States
  // Session: per key, its sessions; timers_ holds (ks.timer, key) for every key.
  Sessions sessions_;
  Timers timers_;
};

}  // namespace rill

#endif  // RILL_PROCESS_WINDOW_OPERATOR_H_
