// Event-time windows: which windows a timestamp belongs to (tumbling, hopping, session), and the
// watermark that says when a window may close.
//
// A window is a half-open interval [start, end) of event time. Tumbling windows of size S tile
// the time line from the Unix epoch; hopping windows of size S start at every multiple of the
// slide D (D <= S; S need not be a multiple of D, as in Flink and Kinesis Data Analytics), overlap,
// and a timestamp falls into about S / D of them; session windows are per key and grow while
// records keep arriving within the inactivity gap of each other.
//
// Parameters. A size or slide is a positive, finite, whole number of microseconds (the unit
// windows are aligned in); a slide is at most the size (a larger one would leave gaps no window
// covers); a session gap is positive and finite. Validate() says whether a window's parameters
// are such, and if not returns kInvalidArgument naming the parameter and its value; the pipeline
// builder (pipeline.h) and WindowOperator::Create (window_operator.h) report it. A window with
// bad parameters never crashes: it holds no time (WindowOf(t) is the empty [t, t), ForEachWindow
// calls nothing).
//
// Example:
//   rill::TumblingWindow five_minutes(absl::Minutes(5));
//   rill::WindowBounds w = five_minutes.WindowOf(event_time);   // [12:05, 12:10)
//   rill::HoppingWindow hop(absl::Minutes(5), absl::Minutes(1));
//   hop.ForEachWindow(event_time, [](rill::WindowBounds w) { ... });  // five windows
//   rill::HoppingWindow odd(absl::Minutes(10), absl::Minutes(3));      // 3 or 4 windows
//   if (absl::Status s = odd.Validate(); !s.ok()) return s;
//
// Thread safety: immutable values.
#ifndef RILL_PROCESS_WINDOW_H_
#define RILL_PROCESS_WINDOW_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <ostream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "rill/base/error.h"

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
// InfiniteFuture (the window operator treats such records as late). A size under one microsecond
// gives t itself.
inline absl::Time FloorTo(absl::Time t, absl::Duration size) {
  const int64_t us = absl::ToUnixMicros(t);
  const int64_t step = absl::ToInt64Microseconds(size);
  if (step < 1) return t;
  int64_t q = us / step;
  if (us % step < 0) --q;
  if (q < std::numeric_limits<int64_t>::min() / step) return absl::InfinitePast();
  if (q > std::numeric_limits<int64_t>::max() / step) return absl::InfiniteFuture();
  return absl::FromUnixMicros(q * step);
}

// d in microseconds if it is a positive, finite, whole number of them; else 0.
inline int64_t WindowMicros(absl::Duration d) {
  const int64_t us = absl::ToInt64Microseconds(d);
  return us > 0 && absl::Microseconds(us) == d ? us : 0;
}

inline absl::Status BadWindowLength(const char* what, absl::Duration d) {
  return InvalidArgumentError(absl::StrCat(
      what, " must be a positive whole number of microseconds; got ", absl::FormatDuration(d)));
}

}  // namespace internal

// Non-overlapping windows of `size`, aligned to the Unix epoch. Valid when size is a positive whole
// number of microseconds.
class TumblingWindow {
 public:
  explicit TumblingWindow(absl::Duration size)
      : size_(size), size_us_(internal::WindowMicros(size)) {}
  absl::Duration size() const { return size_; }

  // OK, or kInvalidArgument naming the size.
  absl::Status Validate() const {
    return valid() ? absl::OkStatus() : internal::BadWindowLength("TumblingWindow size", size_);
  }
  // Validate().ok(), without building a status.
  bool valid() const { return size_us_ > 0; }

  // The window holding t; the empty [t, t) if the window is not valid().
  WindowBounds WindowOf(absl::Time t) const {
    if (!valid()) return {t, t};
    const absl::Time start = internal::FloorTo(t, size_);
    return {start, start + size_};
  }
  // fn(WindowOf(t)), if valid().
  template <typename Fn>
  void ForEachWindow(absl::Time t, Fn fn) const {
    if (valid()) fn(WindowOf(t));
  }

 private:
  absl::Duration size_;
  int64_t size_us_;  // 0 if not valid
};

// Windows [k * slide, k * slide + size) for every integer k (in time since the Unix epoch). Valid
// when size and slide are positive whole numbers of microseconds and slide <= size. The size need
// not be a multiple of the slide: the operator keeps the state in panes of gcd(size, slide), each
// in the same windows, and a window is the merge of its size / gcd panes (size / slide of them
// when the slide divides the size). A gcd much smaller than the slide means as many more panes,
// each with a State per key: 10 min / 3 min keeps 1-minute panes, but 60,001 ms / 60,000 ms
// would keep 1-ms ones.
class HoppingWindow {
 public:
  HoppingWindow(absl::Duration size, absl::Duration slide)
      : size_(size),
        slide_(slide),
        size_us_(internal::WindowMicros(size)),
        slide_us_(internal::WindowMicros(slide)) {
    if (size_us_ > 0 && slide_us_ > 0 && slide_us_ <= size_us_) {
      pane_us_ = std::gcd(size_us_, slide_us_);
    } else {
      size_us_ = slide_us_ = 0;
    }
    pane_ = absl::Microseconds(pane_us_);
  }
  absl::Duration size() const { return size_; }
  absl::Duration slide() const { return slide_; }

  // OK, or kInvalidArgument naming the size or the slide.
  absl::Status Validate() const {
    if (internal::WindowMicros(size_) == 0) {
      return internal::BadWindowLength("HoppingWindow size", size_);
    }
    if (internal::WindowMicros(slide_) == 0) {
      return internal::BadWindowLength("HoppingWindow slide", slide_);
    }
    if (slide_ > size_) {
      return InvalidArgumentError(absl::StrCat(
          "HoppingWindow slide (", absl::FormatDuration(slide_), ") must not exceed its size (",
          absl::FormatDuration(size_), "): the windows would leave gaps"));
    }
    return absl::OkStatus();
  }
  // Validate().ok(), without building a status.
  bool valid() const { return pane_us_ > 0; }

  // The pane length: gcd(size, slide) (the slide when it divides the size); zero if not valid().
  absl::Duration pane() const { return pane_; }
  // Panes per window: size / pane(); zero if not valid().
  int64_t panes() const { return valid() ? size_us_ / pane_us_ : 0; }
  // The pane holding `t`: every time in it belongs to the same windows. The empty [t, t) if not
  // valid().
  WindowBounds PaneOf(absl::Time t) const {
    if (!valid()) return {t, t};
    const absl::Time start = internal::FloorTo(t, pane_);
    return {start, start + pane_};
  }

  // The windows holding the pane starting at `pane_start`: the first ends at first_end, the next
  // ones every slide() after it, the last at last_end (the window starting at the latest multiple
  // of the slide at or before pane_start). REQUIRES: valid(); pane_start is a pane's start (a
  // multiple of pane()) within int64 microseconds since the epoch.
  struct PaneWindows {
    absl::Time first_end;
    absl::Time last_end;
  };
  PaneWindows WindowsOfPane(absl::Time pane_start) const {
    if (pane_us_ == slide_us_) {  // the slide divides the size: a pane is a slide
      return {pane_start + slide_, pane_start + size_};
    }
    int64_t rem = absl::ToUnixMicros(pane_start) % slide_us_;
    if (rem < 0) rem += slide_us_;
    const absl::Time last_end = pane_start - absl::Microseconds(rem) + size_;
    // The windows before the last one: those starting at most size - pane before pane_start.
    const int64_t earlier = (size_us_ - pane_us_ - rem) / slide_us_;
    return {last_end - slide_ * earlier, last_end};
  }

  // Every window holding `t`, earliest first; none if not valid().
  template <typename Fn>
  void ForEachWindow(absl::Time t, Fn fn) const {
    if (!valid() || t == absl::InfinitePast() || t == absl::InfiniteFuture()) return;
    const absl::Time last_start = internal::FloorTo(t, slide_);
    if (last_start == absl::InfinitePast() || last_start == absl::InfiniteFuture()) return;
    absl::Time first_start = last_start;
    while (first_start - slide_ + size_ > t) first_start -= slide_;
    for (absl::Time start = first_start; start <= last_start; start += slide_) {
      fn(WindowBounds{start, start + size_});
    }
  }

 private:
  absl::Duration size_;
  absl::Duration slide_;
  absl::Duration pane_;
  int64_t size_us_;      // 0 if not valid
  int64_t slide_us_;     // 0 if not valid
  int64_t pane_us_ = 0;  // gcd(size_us_, slide_us_); 0 if not valid
};

// Per-key sessions: a record at t opens [t, t + gap); a record inside a session's gap extends it;
// a record bridging two sessions merges them. Valid when the gap is positive and finite.
class SessionWindow {
 public:
  explicit SessionWindow(absl::Duration gap)
      : gap_(gap), valid_(gap > absl::ZeroDuration() && gap != absl::InfiniteDuration()) {}
  absl::Duration gap() const { return gap_; }

  // OK, or kInvalidArgument naming the gap.
  absl::Status Validate() const {
    if (valid()) return absl::OkStatus();
    return InvalidArgumentError(absl::StrCat("SessionWindow gap must be positive and finite; got ",
                                             absl::FormatDuration(gap_)));
  }
  // Validate().ok(), without building a status.
  bool valid() const { return valid_; }

  // The session a record at t opens: [t, t + gap); the empty [t, t) if not valid().
  WindowBounds WindowOf(absl::Time t) const {
    if (!valid()) return {t, t};
    return {t, t + gap_};
  }
  // Whether two session windows touch or overlap, so that they form one session.
  static bool Mergeable(const WindowBounds& a, const WindowBounds& b) {
    return a.start <= b.end && b.start <= a.end;
  }
  static WindowBounds Merge(const WindowBounds& a, const WindowBounds& b) {
    return {std::min(a.start, b.start), std::max(a.end, b.end)};
  }

 private:
  absl::Duration gap_;
  bool valid_;
};

}  // namespace rill

#endif  // RILL_PROCESS_WINDOW_H_
