// Watermarks: how far event time has surely advanced, across the shards feeding an operator.
//
// Each source (a shard) reports the event times it delivers; its watermark is the highest event
// time seen minus the allowed out-of-orderness. The operator's watermark is the minimum over the
// sources that are not idle, so a slow shard holds windows open until its records arrive. A source
// that delivered nothing for idle_timeout (processing time, on a Clock) stops holding the
// watermark back; and when every source is idle, the watermark advances with processing time
// (minus the out-of-orderness), so that a last window still closes when input goes quiet.
//
// Example:
//   rill::WatermarkTracker tracker({.max_out_of_orderness = absl::Seconds(5),
//                                   .idle_timeout = absl::Seconds(30)});
//   tracker.Observe(shard, event_time, clock->Now());
//   absl::Time wm = tracker.Watermark(clock->Now());   // windows ending at or before wm close
//
// Thread safety: not thread-safe; one operator owns one tracker.
#ifndef RILL_PROCESS_WATERMARK_H_
#define RILL_PROCESS_WATERMARK_H_

#include <algorithm>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "rill/base/error.h"
#include "rill/base/shard_id.h"

namespace rill {

struct WatermarkOptions {
  // How late (in event time) a record may be relative to the newest of its source and still be
  // on time. Range: >= 0. Default: 5 s.
  absl::Duration max_out_of_orderness = absl::Seconds(5);
  // A source silent for this long (processing time) no longer holds the watermark back. Zero
  // means never. Range: >= 0. Default: 30 s.
  absl::Duration idle_timeout = absl::Seconds(30);

  // OK, or kInvalidArgument naming the option out of range.
  absl::Status Validate() const {
    if (max_out_of_orderness < absl::ZeroDuration()) {
      return InvalidArgumentError(absl::StrCat("max_out_of_orderness must not be negative; got ",
                                               absl::FormatDuration(max_out_of_orderness)));
    }
    if (idle_timeout < absl::ZeroDuration()) {
      return InvalidArgumentError(absl::StrCat("idle_timeout must not be negative; got ",
                                               absl::FormatDuration(idle_timeout)));
    }
    return absl::OkStatus();
  }
};

class WatermarkTracker {
 public:
  explicit WatermarkTracker(WatermarkOptions options = {}) : options_(options) {}

  // A record of `source` with event time `event_time`, delivered at processing time `now`.
  void Observe(ShardId source, absl::Time event_time, absl::Time now) {
    Source& s = sources_[source];
    s.max_event_time = std::max(s.max_event_time, event_time);
    s.last_seen = now;
  }

  // Makes `source` known before its first record, so that it holds the watermark back (until it
  // goes idle) instead of being ignored.
  void AddSource(ShardId source, absl::Time now) {
    auto [it, added] = sources_.try_emplace(source);
    if (added) it->second.last_seen = now;
  }

  // Forgets a source that has ended (a closed shard read to its end).
  void RemoveSource(ShardId source) { sources_.erase(source); }

  // The watermark at processing time `now`; never decreases between calls.
  absl::Time Watermark(absl::Time now) {
    absl::Time wm = absl::InfiniteFuture();
    bool any_active = false;
    absl::Time newest = absl::InfinitePast();
    for (const auto& [id, s] : sources_) {
      newest = std::max(newest, s.max_event_time);
      const bool idle = options_.idle_timeout > absl::ZeroDuration() &&
                        now - s.last_seen >= options_.idle_timeout;
      if (idle) continue;
      any_active = true;
      wm = std::min(wm, s.max_event_time - options_.max_out_of_orderness);
    }
    if (!any_active) {
      // Everything is idle (or nothing is known): time itself moves the watermark, so that quiet
      // input still closes its windows.
      wm = sources_.empty() ? current_ : std::max(newest, now) - options_.max_out_of_orderness;
    }
    current_ = std::max(current_, wm);
    return current_;
  }

  const WatermarkOptions& options() const { return options_; }

  // What a snapshot needs: every source and the watermark reached.
  struct Source {
    absl::Time max_event_time = absl::InfinitePast();
    absl::Time last_seen = absl::InfinitePast();
  };
  const std::map<ShardId, Source>& sources() const { return sources_; }
  absl::Time current() const { return current_; }
  // Replaces the state with a saved one (from sources() and current()).
  void Restore(std::map<ShardId, Source> sources, absl::Time current) {
    sources_ = std::move(sources);
    current_ = current;
  }

 private:
  WatermarkOptions options_;
  std::map<ShardId, Source> sources_;
  absl::Time current_ = absl::InfinitePast();
};

}  // namespace rill

#endif  // RILL_PROCESS_WATERMARK_H_
