// WindowOperator: keyed event-time windows with an aggregator, closed by the watermark.
//
// The operator keeps one aggregator State per (key, window) for tumbling windows, per (key, pane)
// for hopping windows (a window's result is the Merge of its size / slide panes, computed when it
// is emitted, never recomputed per record) and per (key, session) for session windows. Records
// come in with Add; AdvanceWatermark closes every window whose end is at or before the watermark
// and emits its result. It is the engine under the typed Pipeline; it can be used on its own.
//
// Example:
//   rill::WindowOperator<std::string, rill::CountAggregator, rill::TumblingWindow> op(
//       rill::Count(), rill::TumblingWindow(absl::Minutes(5)),
//       {.allowed_lateness = absl::Minutes(1)});
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
//     is treated as late. Nothing is dropped silently.
//   * Sessions. A record at t opens [t, t + gap). Sessions that overlap or touch (one's end equals
//     the other's start) are one session: a record exactly at a session's end extends it, and a
//     record bridging two sessions merges them (their States are merged). A session closes when
//     its end <= watermark. When a late record merges closed sessions, the merged session's
//     result (is_update = true) supersedes those of the sessions it absorbed.
//   * State is freed as soon as it expires: a tumbling window or session at end + lateness <=
//     watermark, a hopping pane once the last window holding it has expired (pane start + size +
//     lateness <= watermark); a key with no live window is forgotten.
//   * Snapshot / Restore capture everything (watermark, late count, every live window, pane or
//     session with its encoded State): an operator restored from a snapshot and fed the rest of
//     the input emits exactly what the original would have.
//
// Requirements: Key is copyable and totally ordered by operator< (results are emitted in key
// order for determinism), with a rill::KeyCodec<Key> for snapshots (provided for integral types
// and std::string; specialise it for your own). Emit is any callable taking
// `const WindowResult<Key, typename Agg::Result>&`; it must not call back into the operator.
//
// Thread safety: not thread-safe; one thread drives one operator.
// Allocation: Add into an existing window, pane or session never allocates (an emission builds
// its WindowResult, which copies the key: a std::string key longer than its small buffer
// allocates, as may the aggregator's Result). Add allocates when a new key, window, pane or
// session appears; AdvanceWatermark allocates a small scratch vector when it closes hopping
// windows or sessions.
#ifndef RILL_PROCESS_WINDOW_OPERATOR_H_
#define RILL_PROCESS_WINDOW_OPERATOR_H_

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/time/time.h"
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
  // and re-emit its result. Range: >= 0. Default: 0 (a record for a closed window is late).
  absl::Duration allowed_lateness = absl::ZeroDuration();
  // When results are emitted. Default: kOnClose.
  EmitMode emit = EmitMode::kOnClose;
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

// (end, key) ordering for windows and panes; transparent so that a lookup needs no key copy.
template <typename Key>
struct SlotKey {
  absl::Time end;
  Key key;
};
template <typename Key>
struct SlotRef {
  absl::Time end;
  const Key* key;
};
template <typename Key>
struct SlotLess {
  using is_transparent = void;
  static const Key& KeyOf(const SlotKey<Key>& s) { return s.key; }
  static const Key& KeyOf(const SlotRef<Key>& s) { return *s.key; }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    if (a.end != b.end) return a.end < b.end;
    return KeyOf(a) < KeyOf(b);
  }
  // By end only, for range scans (upper_bound(time) = the first slot with end > time).
  bool operator()(absl::Time a, const SlotKey<Key>& b) const { return a < b.end; }
  bool operator()(const SlotKey<Key>& a, absl::Time b) const { return a.end < b; }
};

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

}  // namespace internal

// Keyed windows of Assigner (TumblingWindow, HoppingWindow or SessionWindow) aggregated by Agg.
// See the file comment for the semantics.
template <typename Key, typename Agg, typename Assigner>
requires Aggregator<Agg> &&
    (std::same_as<Assigner, TumblingWindow> || std::same_as<Assigner, HoppingWindow> ||
     std::same_as<Assigner, SessionWindow>)class WindowOperator {
 public:
  using State = typename Agg::State;
  using Input = typename Agg::Input;
  using Result = WindowResult<Key, typename Agg::Result>;

  // REQUIRES: the assigner's preconditions (window.h); options.allowed_lateness >= 0.
  WindowOperator(Agg agg, Assigner assigner, WindowOperatorOptions options = {})
      : agg_(std::move(agg)), assigner_(assigner), options_(options) {
    if (options_.allowed_lateness < absl::ZeroDuration()) {
      options_.allowed_lateness = absl::ZeroDuration();
    }
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
    } else if constexpr (kKind == internal::AssignerKind::kTumbling) {
      accepted = AddTumbling(key, event_time, value, emit);
    } else if constexpr (kKind == internal::AssignerKind::kHopping) {
      accepted = AddHopping(key, event_time, value, emit);
    } else {
      accepted = AddSession(key, event_time, value, emit);
    }
    if (!accepted) {
      ++late_records_;
      late(key, event_time, value);
    }
    return accepted;
  }

  // Moves the watermark to `watermark` (ignored if lower than the current one), emits every
  // window that closes (end <= watermark) with is_update = false in (end, key) order, then frees
  // the state that expired (end + allowed_lateness <= watermark).
  template <typename Emit>
  void AdvanceWatermark(absl::Time watermark, Emit&& emit) {
    if (watermark <= watermark_) return;
    const absl::Time prev = watermark_;
    watermark_ = watermark;
    if constexpr (kKind == internal::AssignerKind::kTumbling) {
      AdvanceTumbling(prev, emit);
    } else if constexpr (kKind == internal::AssignerKind::kHopping) {
      AdvanceHopping(prev, emit);
    } else {
      AdvanceSession(prev, emit);
    }
  }

  absl::Time watermark() const { return watermark_; }
  // Records not aggregated because they were late.
  uint64_t late_records() const { return late_records_; }

  // Live windows: tumbling windows, hopping panes, or sessions held in state.
  size_t live_windows() const {
    if constexpr (kKind == internal::AssignerKind::kSession) {
      size_t n = 0;
      for (const auto& [key, ks] : sessions_) n += ks.sessions.size();
      return n;
    } else {
      return slots_.size();
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

  // A rough estimate of the bytes held by state: sizes of the stored keys, bounds and States,
  // their tree nodes, heap held by string keys, and heap held by States when the aggregator
  // reports it (an optional `size_t StateBytes(const State&) const` member returning the State's
  // total bytes; otherwise sizeof(State)). O(live windows).
  size_t state_bytes() const {
    size_t bytes = 0;
    if constexpr (kKind == internal::AssignerKind::kSession) {
      for (const auto& [key, ks] : sessions_) {
        bytes += sizeof(Key) + sizeof(KeySessions) + internal::kMapNodeOverhead +
                 internal::KeyHeapBytes(key);
        bytes += (sizeof(Key) + sizeof(absl::Time) + internal::kMapNodeOverhead);  // timer
        bytes += (ks.sessions.capacity() - ks.sessions.size()) * sizeof(Session);
        for (const Session& s : ks.sessions) {
          bytes += sizeof(WindowBounds) + StateSize(s.state);
        }
      }
    } else {
      for (const auto& [slot, state] : slots_) {
        bytes += sizeof(slot) + StateSize(state) + internal::kMapNodeOverhead +
                 internal::KeyHeapBytes(slot.key);
      }
      for (const auto& [key, n] : key_windows_) {
        bytes += sizeof(Key) + sizeof(n) + internal::kMapNodeOverhead + internal::KeyHeapBytes(key);
      }
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
    if constexpr (kKind == internal::AssignerKind::kSession) {
      for (const auto& [key, ks] : sessions_) {
        for (const Session& s : ks.sessions) put_entry(key, s.bounds.start, s.bounds.end, s.state);
      }
    } else {
      for (const auto& [slot, state] : slots_) {
        put_entry(slot.key, slot.end - SlotSize(), slot.end, state);
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
      if constexpr (kKind == internal::AssignerKind::kSession) {
        if (end - start < assigner_.gap()) return false;
        KeySessions& ks = sessions[key];
        // Sorted, and apart (touching sessions would have been merged).
        if (!ks.sessions.empty() && !(ks.sessions.back().bounds.end < start)) return false;
        ks.sessions.push_back(Session{{start, end}, std::move(state)});
      } else {
        const absl::Time aligned = internal::FloorTo(start, SlotSize());
        if (aligned != start || end - start != SlotSize()) return false;
        if constexpr (kKind == internal::AssignerKind::kHopping) {
          if (!(end - SlotSize() + assigner_.size() + options_.allowed_lateness > wm)) return false;
        }
        auto [it, added] = slots.try_emplace(internal::SlotKey<Key>{end, key}, std::move(state));
        if (!added) return false;
        ++key_windows[key];
      }
    }
    if (!r.AtEnd()) return false;
    Timers timers;
    if constexpr (kKind == internal::AssignerKind::kSession) {
      for (auto& [key, ks] : sessions) {
        ks.timer = NextDue(ks, wm);
        timers.emplace(ks.timer, key);
      }
    }
    watermark_ = wm;
    late_records_ = late;
    slots_ = std::move(slots);
    key_windows_ = std::move(key_windows);
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

  using Slots = std::map<internal::SlotKey<Key>, State, internal::SlotLess<Key>>;
  using KeyCounts = std::map<Key, size_t>;
  struct Session {
    WindowBounds bounds;
    State state;
  };
  struct KeySessions {
    std::vector<Session> sessions;  // sorted by start, pairwise apart (not touching)
    absl::Time timer;               // <= the next close or expiry of any of them
  };
  using Sessions = std::map<Key, KeySessions>;
  using Timers = std::set<std::pair<absl::Time, Key>>;

  size_t StateSize(const State& state) const {
    if constexpr (requires(const Agg& a, const State& s) {
                    { a.StateBytes(s) } -> std::convertible_to<size_t>;
                  }) {
      return agg_.StateBytes(state);
    } else {
      return sizeof(State);
    }
  }

  bool Expired(absl::Time end, absl::Time wm) const {
    return end + options_.allowed_lateness <= wm;
  }

  // The size of a tumbling window or of a hopping pane.
  absl::Duration SlotSize() const {
    if constexpr (kKind == internal::AssignerKind::kHopping) {
      return assigner_.slide();
    } else if constexpr (kKind == internal::AssignerKind::kTumbling) {
      return assigner_.size();
    } else {
      return absl::ZeroDuration();
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

  // The slot for (end, key), created if missing.
  State& SlotFor(const Key& key, absl::Time end) {
    auto it = slots_.lower_bound(internal::SlotRef<Key>{end, &key});
    if (it == slots_.end() || it->first.end != end || key < it->first.key) {
      it = slots_.emplace_hint(it, internal::SlotKey<Key>{end, key}, agg_.Init());
      ++key_windows_[key];
    }
    return it->second;
  }

  void EraseSlot(typename Slots::iterator it) {
    auto k = key_windows_.find(it->first.key);
    if (--k->second == 0) key_windows_.erase(k);
    slots_.erase(it);
  }

  // --- Tumbling ---

  template <typename Emit>
  bool AddTumbling(const Key& key, absl::Time t, const Input& value, Emit&& emit) {
    const WindowBounds w = assigner_.WindowOf(t);
    if (Expired(w.end, watermark_)) return false;
    State& state = SlotFor(key, w.end);
    agg_.Add(state, value);
    if (options_.emit == EmitMode::kOnUpdate || w.end <= watermark_) {
      EmitResult(key, w.start, w.end, state, /*is_update=*/true, emit);
    }
    return true;
  }

  template <typename Emit>
  void AdvanceTumbling(absl::Time prev, Emit&& emit) {
    for (auto it = slots_.upper_bound(prev); it != slots_.end() && it->first.end <= watermark_;
         ++it) {
      EmitResult(it->first.key, it->first.end - assigner_.size(), it->first.end, it->second,
                 /*is_update=*/false, emit);
    }
    while (!slots_.empty() && Expired(slots_.begin()->first.end, watermark_)) {
      EraseSlot(slots_.begin());
    }
  }

  // --- Hopping ---

  // The Merge of the key's panes in the window ending at `end`; false if it has none.
  bool MergeWindow(const Key& key, absl::Time end, State* out) const {
    bool any = false;
    const absl::Time first_pane_end = end - assigner_.size() + assigner_.slide();
    for (absl::Time pane_end = first_pane_end; pane_end <= end; pane_end += assigner_.slide()) {
      auto it = slots_.find(internal::SlotRef<Key>{pane_end, &key});
      if (it == slots_.end()) continue;
      if (!any) {
        *out = it->second;
        any = true;
      } else {
        agg_.Merge(*out, it->second);
      }
    }
    return any;
  }

  template <typename Emit>
  bool AddHopping(const Key& key, absl::Time t, const Input& value, Emit&& emit) {
    const WindowBounds pane = assigner_.PaneOf(t);
    // The last window holding the pane ends at pane.start + size.
    if (Expired(pane.start + assigner_.size(), watermark_)) return false;
    agg_.Add(SlotFor(key, pane.end), value);
    bool any_closed = false;
    for (absl::Time end = pane.end; end <= pane.start + assigner_.size();
         end += assigner_.slide()) {
      if (end <= watermark_) any_closed = true;
    }
    if (options_.emit == EmitMode::kOnUpdate || any_closed) {
      State merged = agg_.Init();
      for (absl::Time end = pane.end; end <= pane.start + assigner_.size();
           end += assigner_.slide()) {
        if (Expired(end, watermark_)) continue;
        if (options_.emit == EmitMode::kOnClose && end > watermark_) continue;
        MergeWindow(key, end, &merged);
        EmitResult(key, end - assigner_.size(), end, merged, /*is_update=*/true, emit);
      }
    }
    return true;
  }

  template <typename Emit>
  void AdvanceHopping(absl::Time prev, Emit&& emit) {
    // Windows ending in (prev, watermark] hold panes ending in (prev - size + slide, watermark].
    const absl::Duration span = assigner_.size() - assigner_.slide();
    std::vector<std::pair<absl::Time, const Key*>> closing;
    for (auto it = slots_.upper_bound(prev - span);
         it != slots_.end() && it->first.end <= watermark_; ++it) {
      const absl::Time last = it->first.end + span;
      for (absl::Time end = it->first.end; end <= last && end <= watermark_;
           end += assigner_.slide()) {
        if (end > prev) closing.emplace_back(end, &it->first.key);
      }
    }
    std::sort(closing.begin(), closing.end(), [](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first < b.first;
      return *a.second < *b.second;
    });
    State merged = agg_.Init();
    for (size_t i = 0; i < closing.size(); ++i) {
      if (i > 0 && closing[i].first == closing[i - 1].first &&
          !(*closing[i - 1].second < *closing[i].second)) {
        continue;  // the same window, reached from another of its panes
      }
      const Key& key = *closing[i].second;
      const absl::Time end = closing[i].first;
      if (MergeWindow(key, end, &merged)) {
        EmitResult(key, end - assigner_.size(), end, merged, /*is_update=*/false, emit);
      }
    }
    while (!slots_.empty() && Expired(slots_.begin()->first.end + span, watermark_)) {
      EraseSlot(slots_.begin());
    }
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
    if (due >= ks.timer) return;
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
    const WindowBounds fresh = assigner_.WindowOf(t);
    auto kit = sessions_.find(key);
    std::vector<Session>* list = kit == sessions_.end() ? nullptr : &kit->second.sessions;
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
        kit = sessions_.try_emplace(key).first;
        kit->second.timer = absl::InfiniteFuture();
        list = &kit->second.sessions;
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
    LowerTimer(kit->first, kit->second,
               b.end > watermark_ ? b.end : b.end + options_.allowed_lateness);
    if (options_.emit == EmitMode::kOnUpdate || b.end <= watermark_) {
      EmitResult(key, b.start, b.end, session->state, /*is_update=*/true, emit);
    }
    return true;
  }

  template <typename Emit>
  void AdvanceSession(absl::Time prev, Emit&& emit) {
    std::vector<typename Sessions::iterator> due;
    while (!timers_.empty() && timers_.begin()->first <= watermark_) {
      auto node = timers_.extract(timers_.begin());
      due.push_back(sessions_.find(node.value().second));
    }
    // Closings, in (end, key) order.
    std::vector<std::pair<absl::Time, typename Sessions::iterator>> closing;
    for (auto kit : due) {
      for (const Session& s : kit->second.sessions) {
        if (s.bounds.end > prev && s.bounds.end <= watermark_)
          closing.emplace_back(s.bounds.end, kit);
      }
    }
    std::sort(closing.begin(), closing.end(), [](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first < b.first;
      return a.second->first < b.second->first;
    });
    for (const auto& [end, kit] : closing) {
      for (const Session& s : kit->second.sessions) {
        if (s.bounds.end == end) {
          EmitResult(kit->first, s.bounds.start, s.bounds.end, s.state, /*is_update=*/false, emit);
        }
      }
    }
    // Expiry, and re-arming the timers.
    for (auto kit : due) {
      std::vector<Session>& list = kit->second.sessions;
      list.erase(
          std::remove_if(list.begin(), list.end(),
                         [&](const Session& s) { return Expired(s.bounds.end, watermark_); }),
          list.end());
      if (list.empty()) {
        sessions_.erase(kit);
        continue;
      }
      kit->second.timer = NextDue(kit->second, watermark_);
      timers_.emplace(kit->second.timer, kit->first);
    }
  }

  Agg agg_;
  Assigner assigner_;
  WindowOperatorOptions options_;
  absl::Time watermark_ = absl::InfinitePast();
  uint64_t late_records_ = 0;
  // Tumbling: one State per (window end, key). Hopping: one per (pane end, key).
  Slots slots_;
  KeyCounts key_windows_;  // live slots per key
  // Session: per key, its sessions; timers_ holds (ks.timer, key) for every key.
  Sessions sessions_;
  Timers timers_;
};

}  // namespace rill

#endif  // RILL_PROCESS_WINDOW_OPERATOR_H_
