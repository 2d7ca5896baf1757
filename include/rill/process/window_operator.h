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
// open, is one hash of the key (StableHash) and one probe of that window's hash map; Add into
// another window first finds it
// in an ordered map of the live windows, O(log windows). A session Add is one probe of the table
// of keys and a scan of the key's sessions. Closing a window sorts its keys, so results come out
// in key order whatever the hash.
//
// Thread safety: not thread-safe; one thread drives one operator.
// Allocation: Add into an existing (key, window), (key, pane) or (key, session) never allocates
// (an emission builds its WindowResult, which copies the key: a std::string key longer than its
// small buffer allocates, as may the aggregator's Result). Add allocates when a new key, window,
// pane or session appears (amortized: a window's hash map grows by doubling). AdvanceWatermark
// allocates scratch vectors when it closes windows or sessions (to sort their keys) and shrinks
// tables that expiry left mostly empty; Snapshot allocates to sort keys.
//
// Layout: this header is the facade (the public API, parameters, late counting and the snapshot
// envelope); the engines and the codec are internal headers under rill/process/internal/:
// slot_windows.h (tumbling windows and hopping panes), session_windows.h, key_table.h (their hash
// table) and snapshot_codec.h (the pinned snapshot layout).
#ifndef RILL_PROCESS_WINDOW_OPERATOR_H_
#define RILL_PROCESS_WINDOW_OPERATOR_H_

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "rill/base/error.h"
#include "rill/process/aggregators.h"
#include "rill/process/internal/aggregator_encoding.h"
#include "rill/process/internal/session_windows.h"
#include "rill/process/internal/slot_windows.h"
#include "rill/process/internal/snapshot_codec.h"
#include "rill/process/internal/window_common.h"
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

// The engine behind a WindowOperator of Assigner.
template <typename Key, typename Agg, typename Assigner>
struct WindowEngine {
  using type = SlotWindows<Key, Agg, Assigner>;
};
template <typename Key, typename Agg>
struct WindowEngine<Key, Agg, SessionWindow> {
  using type = SessionWindows<Key, Agg>;
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
      : env_{std::move(agg), assigner, absl::ZeroDuration(), false}, options_(options) {
    if (options_.allowed_lateness < absl::ZeroDuration()) {
      options_.allowed_lateness = absl::ZeroDuration();
    }
    if (options_.emit != EmitMode::kOnUpdate) options_.emit = EmitMode::kOnClose;
    env_.allowed_lateness = options_.allowed_lateness;
    env_.on_update = options_.emit == EmitMode::kOnUpdate;
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
    const bool accepted = event_time != absl::InfinitePast() &&
                          event_time != absl::InfiniteFuture() &&
                          engine_.Add(env_, watermark_, key, event_time, value, Emitter(emit));
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
    engine_.Advance(env_, prev, watermark_, Emitter(emit));
  }

  absl::Time watermark() const { return watermark_; }
  // Records not aggregated because they were late.
  uint64_t late_records() const { return late_records_; }

  // Live windows: tumbling windows, hopping panes, or sessions held in state, each counted once
  // per key it holds a State for.
  size_t live_windows() const { return engine_.live_windows(); }

  // Keys with at least one live window.
  size_t live_keys() const { return engine_.live_keys(); }

  // A rough estimate of the bytes held by state: the capacity of the hash tables holding keys,
  // States and bounds, the windows' and timers' tree nodes, heap held by string keys, and heap
  // held by States when the aggregator reports it (an optional `size_t StateBytes(const State&)
  // const` member returning the State's total bytes; otherwise sizeof(State)). O(live windows).
  size_t state_bytes() const { return engine_.state_bytes(env_); }

  // Appends a versioned binary snapshot of the whole operator state to *out.
  void Snapshot(std::string* out) const {
    internal::PutWindowSnapshotHeader(out, env_.assigner,
                                      {options_.allowed_lateness, watermark_, late_records_,
                                       static_cast<uint64_t>(live_windows())});
    std::string scratch;
    // Entries in key order (sessions) or (end, key) order (windows and panes), whatever order the
    // hash tables hold them in, so that equal states give equal bytes.
    engine_.ForEachInOrder(
        [&](const Key& key, absl::Time start, absl::Time end, const State& state) {
          KeyCodec<Key>::Encode(key, out);
          internal::PutTime(out, start);
          internal::PutTime(out, end);
          scratch.clear();
          env_.agg.Encode(state, &scratch);
          internal::PutBlob(out, scratch);
        });
  }

  // Replaces the state with a snapshot's. Returns false, leaving the operator unchanged, if `in`
  // is not exactly one snapshot of an operator with the same assigner (kind and sizes) and
  // allowed lateness, or is inconsistent (misaligned or expired windows, duplicates, overlapping
  // sessions, undecodable keys or States, trailing bytes).
  [[nodiscard]] bool Restore(std::string_view in) {
    internal::ByteReader r(in);
    internal::WindowSnapshotHeader h;
    if (!internal::ReadWindowSnapshotHeader(&r, env_.assigner, &h) ||
        h.allowed_lateness != options_.allowed_lateness) {
      return false;
    }
    // Each entry takes at least 20 bytes; reject absurd counts before looping.
    if (h.entries > r.remaining() / 4) return false;
    Engine restored;
    for (uint64_t i = 0; i < h.entries; ++i) {
      Key key{};
      absl::Time start, end;
      std::string_view blob;
      State state = env_.agg.Init();
      if (!KeyCodec<Key>::Decode(&r, &key) || !internal::ReadTime(&r, &start) ||
          !internal::ReadTime(&r, &end) || !internal::ReadBlob(&r, &blob) ||
          !env_.agg.Decode(blob, &state)) {
        return false;
      }
      if (!(start < end) || start == absl::InfinitePast() || end == absl::InfiniteFuture()) {
        return false;
      }
      if (!restored.RestoreEntry(env_, h.watermark, key, start, end, std::move(state))) {
        return false;
      }
    }
    if (!r.AtEnd()) return false;
    restored.FinishRestore(env_, h.watermark);
    watermark_ = h.watermark;
    late_records_ = h.late_records;
    engine_ = std::move(restored);
    return true;
  }

  const Agg& aggregator() const { return env_.agg; }
  const Assigner& assigner() const { return env_.assigner; }
  const WindowOperatorOptions& options() const { return options_; }

 private:
  using Engine = typename internal::WindowEngine<Key, Agg, Assigner>::type;

  // The engines' emission, emit(key, start, end, state, is_update), as a WindowResult to `emit`.
  template <typename Emit>
  auto Emitter(Emit& emit) const {
    return [this, &emit](const Key& key, absl::Time start, absl::Time end, const State& state,
                         bool is_update) {
      const Result result{key, start, end, env_.agg.Finish(state), is_update};
      emit(result);
    };
  }

  internal::WindowEnv<Agg, Assigner> env_;
  WindowOperatorOptions options_;
  absl::Time watermark_ = absl::InfinitePast();
  uint64_t late_records_ = 0;
  Engine engine_;
};

}  // namespace rill

#endif  // RILL_PROCESS_WINDOW_OPERATOR_H_
