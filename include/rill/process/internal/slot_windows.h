// SlotWindows: the tumbling and hopping engine under WindowOperator (window_operator.h). Not
// public API; the semantics are documented in window_operator.h.
//
// Why a separate engine: tumbling windows and hopping panes ("slots") share one representation
// (an ordered map of slots by end, one KeyMap of States per slot, a count of live slots per
// key), which has nothing in common with sessions (session_windows.h). The engine holds only
// state; the parameters (aggregator, assigner, lateness, emit mode) come in as a WindowEnv and
// the watermark as an argument, both owned by the facade. Results go out as
// emit(key, start, end, state, is_update); the facade turns them into WindowResults.
#ifndef RILL_PROCESS_INTERNAL_SLOT_WINDOWS_H_
#define RILL_PROCESS_INTERNAL_SLOT_WINDOWS_H_

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/time/time.h"
#include "rill/process/aggregators.h"
#include "rill/process/internal/key_table.h"
#include "rill/process/internal/window_common.h"
#include "rill/process/window.h"

namespace rill::internal {

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

// The engine's last-used open window or pane and its event-time range, so that a record for it
// skips the map lookup. Never survives a copy or move (it points into its engine).
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

// Keyed tumbling windows (Assigner = TumblingWindow) or hopping windows kept as panes
// (Assigner = HoppingWindow; a window's result is the Merge of its panes, computed when emitted).
// Not thread-safe.
template <typename Key, typename Agg, typename Assigner>
requires(std::same_as<Assigner, TumblingWindow> ||
         std::same_as<Assigner, HoppingWindow>) class SlotWindows {
 public:
  using State = typename Agg::State;
  using Input = typename Agg::Input;
  using Env = WindowEnv<Agg, Assigner>;

  // Adds a record at event time t (finite) under watermark wm; false if it is late. Emits the
  // updated result(s) (is_update = true) in kOnUpdate mode or for a closed, unexpired window.
  template <typename Emit>
  bool Add(const Env& env, absl::Time wm, const Key& key, absl::Time t, const Input& value,
           Emit&& emit) {
    Slot* slot = SlotOf(env, wm, t);
    if (slot == nullptr) return false;
    auto it = slot->states.find(key);
    if (it == slot->states.end()) it = NewState(env, *slot, key);
    State& state = it->second;
    env.agg.Add(state, value);
    if (env.on_update || slot->end <= wm) {
      if constexpr (kHopping) {
        EmitHoppingUpdates(env, wm, key, *slot, emit);
      } else {
        emit(key, slot->start, slot->end, state, /*is_update=*/true);
      }
    }
    return true;
  }

  // The watermark moved from prev to wm (> prev): emits every window closing in (prev, wm] with
  // is_update = false in (end, key) order, then frees what expired.
  template <typename Emit>
  void Advance(const Env& env, absl::Time prev, absl::Time wm, Emit&& emit) {
    if (cache_.slot != nullptr && cache_.slot->end <= wm) cache_.Reset();
    if constexpr (kHopping) {
      AdvanceHopping(env, prev, wm, emit);
    } else {
      AdvanceTumbling(env, prev, wm, emit);
    }
  }

  // (slot, key) States.
  size_t live_windows() const { return live_slots_; }
  size_t live_keys() const { return key_windows_.size(); }

  size_t state_bytes(const Env& env) const {
    size_t bytes = 0;
    for (const auto& [end, slot] : slots_) {
      bytes += sizeof(end) + sizeof(Slot) + kMapNodeOverhead;
      bytes += FootprintBytes(slot.states);
      for (const auto& [key, state] : slot.states) {
        bytes += KeyHeapBytes(key) + env.StateHeapBytes(state);
      }
    }
    bytes += FootprintBytes(key_windows_);
    for (const auto& e : key_windows_) bytes += KeyHeapBytes(e.first);
    return bytes;
  }

  // put(key, start, end, state) for every State, in (end, key) order (whatever order the hash
  // tables hold them in, so that equal states give equal snapshots).
  template <typename Put>
  void ForEachInOrder(Put&& put) const {
    for (const auto& [end, slot] : slots_) {
      for (const auto* e : SortedByKey(slot.states)) put(e->first, slot.start, slot.end, e->second);
    }
  }

  // Restores one snapshot entry into this (fresh) engine; false if it does not fit: not an
  // unexpired slot of this size and alignment at watermark wm, or a duplicate.
  bool RestoreEntry(const Env& env, absl::Time wm, const Key& key, absl::Time start, absl::Time end,
                    State&& state) {
    if constexpr (!kHopping) {
      if (env.Expired(end, wm)) return false;
    }
    int64_t start_us;
    if (!FloorToStep(absl::ToUnixMicros(start), SlotMicros(env), &start_us) ||
        absl::FromUnixMicros(start_us) != start || end - start != SlotSize(env)) {
      return false;  // misaligned, or not a slot of this size
    }
    if constexpr (kHopping) {
      if (env.Expired(LastWindowEnd(env, start), wm)) return false;
    }
    Slot& slot = slots_.try_emplace(end, Slot{start, end, {}}).first->second;
    if (!slot.states.try_emplace(key, std::move(state)).second) return false;
    ++key_windows_[key];
    ++live_slots_;
    return true;
  }

  // After the last RestoreEntry.
  void FinishRestore(const Env&, absl::Time) {}

 private:
  static constexpr bool kHopping = std::same_as<Assigner, HoppingWindow>;

  // A tumbling window or a hopping pane: its bounds and one State per key.
  struct Slot {
    absl::Time start;
    absl::Time end;
    KeyMap<Key, State> states;
  };
  using Slots = std::map<absl::Time, Slot>;  // by end
  using StateEntry = typename KeyMap<Key, State>::value_type;
  using KeyCounts = KeyMap<Key, size_t>;  // live slots per key

  // The key's first State in `slot`: out of line, so that the lookup of an existing one inlines
  // into Add.
  ABSL_ATTRIBUTE_NOINLINE typename KeyMap<Key, State>::iterator NewState(const Env& env, Slot& slot,
                                                                         const Key& key) {
    ++live_slots_;
    ++key_windows_[key];
    return slot.states.try_emplace(key, env.agg.Init()).first;
  }

  // The size of a tumbling window or of a hopping pane (zero if the assigner is not valid).
  static absl::Duration SlotSize(const Env& env) {
    if constexpr (kHopping) {
      return env.assigner.pane();
    } else {
      return env.assigner.valid() ? env.assigner.size() : absl::ZeroDuration();
    }
  }
  // The step slots are aligned to, as FloorTo takes it (whole microseconds); 0 if the assigner is
  // not valid, so that no slot is ever made.
  static int64_t SlotMicros(const Env& env) { return absl::ToInt64Microseconds(SlotSize(env)); }

  // The end of the last window holding the slot starting at `start`: for a hopping pane, the
  // window starting at the latest multiple of the slide at or before it.
  static absl::Time LastWindowEnd(const Env& env, absl::Time start) {
    if constexpr (kHopping) {
      return env.assigner.WindowsOfPane(start).last_end;
    } else {
      return start + env.assigner.size();
    }
  }

  // The slot holding t: the cached one, else found or created in slots_. nullptr if the record
  // is late: the last window holding the slot (the window itself, or for a pane the window
  // starting with it) has expired, or the slot lies beyond int64 microseconds.
  Slot* SlotOf(const Env& env, absl::Time wm, absl::Time t) {
    if (Slot* cached = cache_.Lookup(t)) return cached;
    return FindSlot(env, wm, t);
  }

  // SlotOf past the cache; out of line, so that the cached path inlines into Add.
  ABSL_ATTRIBUTE_NOINLINE Slot* FindSlot(const Env& env, absl::Time wm, absl::Time t) {
    // Floor to the slot in whole microseconds, as the assigner's WindowOf / PaneOf do.
    int64_t start_us;
    const int64_t step = SlotMicros(env);
    if (!FloorToStep(absl::ToUnixMicros(t), step, &start_us)) return nullptr;
    const absl::Time start = absl::FromUnixMicros(start_us);
    if (env.Expired(LastWindowEnd(env, start), wm)) return nullptr;
    const absl::Time end = start + SlotSize(env);
    Slot& slot = slots_.try_emplace(end, Slot{start, end, {}}).first->second;
    if (end > wm) {
      cache_.slot = &slot;
      cache_.from = start;
      cache_.to = absl::FromUnixMicros(start_us + step);
    }
    return &slot;
  }

  // Frees a slot that expired, and forgets keys left without any.
  void FreeSlot(typename Slots::iterator it) {
    for (const StateEntry& e : it->second.states) {
      const auto k = key_windows_.find(e.first);
      if (--k->second == 0) key_windows_.erase(k);
    }
    live_slots_ -= it->second.states.size();
    slots_.erase(it);
  }

  template <typename Emit>
  void AdvanceTumbling(const Env& env, absl::Time prev, absl::Time wm, Emit&& emit) {
    for (auto it = slots_.upper_bound(prev); it != slots_.end() && it->first <= wm; ++it) {
      const Slot& slot = it->second;
      for (const StateEntry* e : SortedByKey(slot.states)) {
        emit(e->first, slot.start, slot.end, e->second, /*is_update=*/false);
      }
    }
    while (!slots_.empty() && env.Expired(slots_.begin()->first, wm)) FreeSlot(slots_.begin());
    ShrinkIfSparse(key_windows_);
  }

  // --- Hopping ---

  // The live panes of the window ending at `end`, earliest first: those ending in
  // (end - size, end].
  typename Slots::const_iterator FirstPaneOf(const Env& env, absl::Time end) const {
    return slots_.upper_bound(end - env.assigner.size());
  }

  // The Merge of the key's panes in the window ending at `end`, earliest first; false if it has
  // none.
  bool MergeWindow(const Env& env, const Key& key, absl::Time end, State* out) const {
    bool any = false;
    for (auto it = FirstPaneOf(env, end); it != slots_.end() && it->first <= end; ++it) {
      const auto found = it->second.states.find(key);
      if (found == it->second.states.end()) continue;
      if (!any) {
        *out = found->second;
        any = true;
      } else {
        env.agg.Merge(*out, found->second);
      }
    }
    return any;
  }

  // After an Add into `pane`: the updated result of every window holding it that is not expired
  // and, in kOnClose mode, closed.
  template <typename Emit>
  void EmitHoppingUpdates(const Env& env, absl::Time wm, const Key& key, const Slot& pane,
                          Emit&& emit) const {
    State merged = env.agg.Init();
    const auto [first_end, last_end] = env.assigner.WindowsOfPane(pane.start);
    for (absl::Time end = first_end; end <= last_end; end += env.assigner.slide()) {
      if (env.Expired(end, wm)) continue;
      if (!env.on_update && end > wm) continue;
      MergeWindow(env, key, end, &merged);
      emit(key, end - env.assigner.size(), end, merged, /*is_update=*/true);
    }
  }

  template <typename Emit>
  void AdvanceHopping(const Env& env, absl::Time prev, absl::Time wm, Emit&& emit) {
    const HoppingWindow& assigner = env.assigner;
    // Windows ending in (prev, watermark] hold panes ending at or before the watermark and
    // starting after prev - size (so ending after prev - size + pane).
    std::vector<absl::Time> ends;
    for (auto it = slots_.upper_bound(prev - assigner.size() + assigner.pane());
         it != slots_.end() && it->first <= wm; ++it) {
      const auto [first_end, last_end] = assigner.WindowsOfPane(it->second.start);
      for (absl::Time end = first_end; end <= last_end && end <= wm; end += assigner.slide()) {
        if (end > prev) ends.push_back(end);
      }
    }
    std::sort(ends.begin(), ends.end());
    ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
    std::vector<const StateEntry*> keys;
    State merged = env.agg.Init();
    for (const absl::Time end : ends) {
      // The keys of the window's panes, each once, in order.
      keys.clear();
      for (auto it = FirstPaneOf(env, end); it != slots_.end() && it->first <= end; ++it) {
        for (const StateEntry& e : it->second.states) keys.push_back(&e);
      }
      std::sort(keys.begin(), keys.end(),
                [](const StateEntry* a, const StateEntry* b) { return a->first < b->first; });
      keys.erase(std::unique(
                     keys.begin(), keys.end(),
                     [](const StateEntry* a, const StateEntry* b) { return a->first == b->first; }),
                 keys.end());
      for (const StateEntry* e : keys) {
        if (MergeWindow(env, e->first, end, &merged)) {
          emit(e->first, end - assigner.size(), end, merged, /*is_update=*/false);
        }
      }
    }
    // A pane expires with the last window holding it (in the order of the panes).
    while (!slots_.empty() && env.Expired(LastWindowEnd(env, slots_.begin()->second.start), wm)) {
      FreeSlot(slots_.begin());
    }
    ShrinkIfSparse(key_windows_);
  }

  // Tumbling: one State per (window, key). Hopping: one per (pane, key).
  Slots slots_;
  SlotCache<Slot> cache_;  // the last open slot an Add went into
  KeyCounts key_windows_;  // live slots per key
  size_t live_slots_ = 0;  // (slot, key) States
};

}  // namespace rill::internal

#endif  // RILL_PROCESS_INTERNAL_SLOT_WINDOWS_H_
