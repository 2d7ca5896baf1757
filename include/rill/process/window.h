// Event-time windows: which windows a timestamp belongs to (tumbling, hopping, session), and the
// watermark that says when a window may close.
//
// A window is a half-open interval [start, end) of event time. Tumbling windows of size S tile
// the time line from the Unix epoch; hopping windows of size S and slide D (D < S, S a multiple of
// D) overlap, and a timestamp falls into S / D of them; session windows are per key and grow
// while records keep arriving within the inactivity gap of each other.
//
// Example:
//   rill::TumblingWindow five_minutes(absl::Minutes(5));
//   rill::WindowBounds w = five_minutes.WindowOf(event_time);   // [12:05, 12:10)
//   rill::HoppingWindow hop(absl::Minutes(5), absl::Minutes(1));
//   hop.ForEachWindow(event_time, [](rill::WindowBounds w) { ... });  // five windows
//
// Thread safety: immutable values.
#ifndef RILL_PROCESS_WINDOW_H_
#define RILL_PROCESS_WINDOW_H_

#include <cstdint>
#include <limits>
#include <ostream>

#include "absl/time/time.h"

namespace rill {

// [start, end) in event time.
struct WindowBounds {
  absl::Time start;
  absl::Time end;

  bool Contains(absl::Time t) const { return start <= t && t < end; }
  friend bool operator==(const WindowBounds&, const WindowBounds&) = default;
  friend std::ostream& operator<<(std::ostream& os, const WindowBounds& w) {
    return os << "[" << absl::FormatTime(w.start) << ", " << absl::FormatTime(w.end) << ")";
  }
};

namespace internal {

// floor(t / size) * size, for any t (also before the epoch), in whole microseconds.
// Times so far out that the floor does not fit in int64 microseconds give InfinitePast or
// InfiniteFuture (the window operator treats such records as late).
inline absl::Time FloorTo(absl::Time t, absl::Duration size) {
  const int64_t us = absl::ToUnixMicros(t);
  const int64_t step = absl::ToInt64Microseconds(size);
  int64_t q = us / step;
  if (us % step < 0) --q;
  if (q < std::numeric_limits<int64_t>::min() / step) return absl::InfinitePast();
  if (q > std::numeric_limits<int64_t>::max() / step) return absl::InfiniteFuture();
  return absl::FromUnixMicros(q * step);
}

}  // namespace internal

// Non-overlapping windows of `size`, aligned to the Unix epoch. REQUIRES: size >= 1 us.
class TumblingWindow {
 public:
  explicit TumblingWindow(absl::Duration size) : size_(size) {}
  absl::Duration size() const { return size_; }
  WindowBounds WindowOf(absl::Time t) const {
    const absl::Time start = internal::FloorTo(t, size_);
    return {start, start + size_};
  }
  template <typename Fn>
  void ForEachWindow(absl::Time t, Fn fn) const {
    fn(WindowOf(t));
  }

 private:
  absl::Duration size_;
};

// Windows of `size` starting every `slide`. REQUIRES: 1 us <= slide <= size, and size a whole
// multiple of slide (so that a window is made of size / slide panes, merged rather than
// recomputed).
class HoppingWindow {
 public:
  HoppingWindow(absl::Duration size, absl::Duration slide) : size_(size), slide_(slide) {}
  absl::Duration size() const { return size_; }
  absl::Duration slide() const { return slide_; }
  // Panes per window.
  int64_t panes() const {
    return absl::ToInt64Microseconds(size_) / absl::ToInt64Microseconds(slide_);
  }
  // The pane (a slide-sized tumbling window) holding `t`.
  WindowBounds PaneOf(absl::Time t) const {
    const absl::Time start = internal::FloorTo(t, slide_);
    return {start, start + slide_};
  }
  // Every window holding `t`, earliest first.
  template <typename Fn>
  void ForEachWindow(absl::Time t, Fn fn) const {
    const absl::Time last_start = internal::FloorTo(t, slide_);
    for (absl::Time start = last_start - size_ + slide_; start <= last_start; start += slide_) {
      fn(WindowBounds{start, start + size_});
    }
  }

 private:
  absl::Duration size_;
  absl::Duration slide_;
};

// Per-key sessions: a record at t opens [t, t + gap); a record inside a session's gap extends it;
// a record bridging two sessions merges them. REQUIRES: gap >= 1 us.
class SessionWindow {
 public:
  explicit SessionWindow(absl::Duration gap) : gap_(gap) {}
  absl::Duration gap() const { return gap_; }
  WindowBounds WindowOf(absl::Time t) const { return {t, t + gap_}; }
  // Whether two session windows touch or overlap, so that they form one session.
  static bool Mergeable(const WindowBounds& a, const WindowBounds& b) {
    return a.start <= b.end && b.start <= a.end;
  }
  static WindowBounds Merge(const WindowBounds& a, const WindowBounds& b) {
    return {std::min(a.start, b.start), std::max(a.end, b.end)};
  }

 private:
  absl::Duration gap_;
};

}  // namespace rill

#endif  // RILL_PROCESS_WINDOW_H_
