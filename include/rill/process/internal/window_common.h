// What the window engines (slot_windows.h, session_windows.h) share with the WindowOperator facade
// (window_operator.h): the operator's fixed parameters, and the footprint arithmetic behind
// state_bytes(). Not public API.
//
// Why a separate header: the engines take the parameters as one argument (WindowEnv) instead of
// owning a copy, so that the facade keeps one aggregator, one assigner and one watermark, and an
// engine holds nothing but its state (it can be built empty, filled by Restore, and moved in).
#ifndef RILL_PROCESS_INTERNAL_WINDOW_COMMON_H_
#define RILL_PROCESS_INTERNAL_WINDOW_COMMON_H_

#include <concepts>
#include <cstddef>
#include <string>
#include <type_traits>

#include "absl/time/time.h"

namespace rill::internal {

// The operator's parameters, fixed at construction (normalised: lateness >= 0).
template <typename Agg, typename Assigner>
struct WindowEnv {
  using State = typename Agg::State;

  Agg agg;
  Assigner assigner;
  absl::Duration allowed_lateness;  // >= 0
  bool on_update;                   // EmitMode::kOnUpdate: emit after every Add

  // A window ending at `end` has expired at watermark `wm`: it no longer takes late records.
  bool Expired(absl::Time end, absl::Time wm) const { return end + allowed_lateness <= wm; }

  // The State's total bytes: the aggregator's optional `size_t StateBytes(const State&) const`,
  // else sizeof(State).
  size_t StateSize(const State& state) const {
    if constexpr (requires(const Agg& a, const State& s) {
                    { a.StateBytes(s) } -> std::convertible_to<size_t>;
                  }) {
      return agg.StateBytes(state);
    } else {
      return sizeof(State);
    }
  }
  // Bytes a State holds beyond its sizeof (counted with the table or vector holding it).
  size_t StateHeapBytes(const State& state) const {
    const size_t size = StateSize(state);
    return size > sizeof(State) ? size - sizeof(State) : 0;
  }
};

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

}  // namespace rill::internal

#endif  // RILL_PROCESS_INTERNAL_WINDOW_COMMON_H_
