// Pipeline: a typed, header-only stream-processing pipeline — what Kinesis Data Analytics does for
// a stream, in-process.
//
//   auto p = rill::Pipeline<Event>::From(std::move(source), clock)
//                .Filter([](const Event& e) { return e.kind == Kind::kPurchase; })
//                .KeyBy([](const Event& e) { return e.level; })
//                .Window(rill::TumblingWindow(absl::Minutes(5)))
//                .EventTime([](const Event& e) { return e.time; })
//                .Watermark({.max_out_of_orderness = absl::Seconds(5),
//                            .idle_timeout = absl::Seconds(30)})
//                .AllowedLateness(absl::Minutes(1))
//                .Emit(rill::EmitMode::kOnClose)
//                .Aggregate(rill::Count())
//                .To(rill::ToVector(&results));     // absl::StatusOr<a pipeline>
//   if (!p.ok()) return p.status();                 // a bad parameter: kInvalidArgument
//   p->Start().IgnoreError();                       // its own thread; or p->Poll(timeout)
//   std::string snapshot = p->Snapshot();  Save(snapshot);  p->Commit().IgnoreError();
//
// Stages. From(source) → Filter / Map / FlatMap (any number, any order; Map and FlatMap change
// the element type; FlatMap's function returns any range) → either To(sink) (a record pipeline:
// every element to the sink) or KeyBy(key_of) → Window(assigner) → options → Aggregate(agg
// [, value_of]) → To(sink) (a windowed pipeline). The stages are composed at compile time: a
// record goes through inlined calls, with no virtual call and no allocation per record (only the
// source is called through an interface, once per batch).
//
// Validation. To(sink) checks every parameter before it builds anything and returns the
// pipeline, or kInvalidArgument (rill/base/error.h) for the first bad one in the order of the
// stages, its message naming the stage, the parameter and its value (e.g. "Window: HoppingWindow
// slide (15m) must not exceed its size (10m): ..."): a null source; a null function pointer or
// empty std::function given to a stage or as the sink; a window whose Validate() fails (window.h:
// sizes and slides positive whole microseconds, slide <= size, session gap positive); EventTime
// together with ProcessingTime; a negative max_out_of_orderness, idle_timeout or allowed
// lateness; an unknown emit mode. A pipeline that builds never fails for its parameters.
//
// Time. The event time is the source's arrival time unless EventTime(fn) extracts one from the
// element; ProcessingTime() uses the clock's time when the record is processed instead. The
// watermark is tracked per source shard (WatermarkTracker): the minimum over shards that are not
// idle, minus max_out_of_orderness; when every source is idle it advances with the clock, so
// windows also close when input goes quiet. Processing-time windows close as the clock passes
// their end. With arrival time as event time, every record a shard delivers advances its
// watermark, filtered out or not. With EventTime(fn), only records that reach the window stage
// do (fn applies to the staged element): a shard whose records are all filtered out counts as
// idle after idle_timeout, and its later records may then be late — when replaying old input
// through a selective filter, give idle_timeout room.
//
// Lateness. A record for a window closed less than AllowedLateness ago updates that window and
// re-emits its result (is_update = true). A later record goes to the late side output
// (LateRecords(), with its key and event time) and late_records() counts it: nothing is dropped
// silently. Records a stream source could not decode are counted by undecodable_records().
//
// Driving. Poll() reads at most `max_batches` batches, processes them and advances the
// watermark (also when no input came, so idle time closes windows). Poll(timeout) waits for
// input up to a deadline, and Start() runs the pipeline on a thread of its own until Stop() or
// the destructor; both wait on the pipeline's clock (PollOptions::idle_time_between_polls between
// looks), so under a SimulatedClock nothing sleeps in real time: Poll(timeout) moves the clock
// forward, a Start()ed thread looks again when the clock is advanced. Backpressure: a sink is
// called synchronously, so a slow sink slows Poll, and the stream — the log is the buffer — is
// read no faster than results are taken. Finish() ends a bounded input: it processes what is left
// and closes every window; for a stream source, wait for caught_up() first (the source has read
// every shard to its current end; see Source::caught_up). A sink error stops the pipeline: Poll
// returns it from then on (a Start()ed thread ends and Stop() returns it); restore from the last
// snapshot to go on (the input after it is read again, nothing is lost).
//
// Watermark and batches. The watermark moves once per source batch (and once more at the end
// of each Poll), never inside one: a batch is one shard's records, and a result can only come out
// after the batch that closes its window. The batch size is the source's: VectorSource's
// batch_size; for a stream source, a subscription event (SubscribeOptions::max_records_per_event)
// or a group worker's GetRecords (ConsumerGroupOptions::max_records). Larger batches cost less per
// record but let a shard run further ahead of the others within one batch — harmless for
// correctness, since a shard's watermark is its newest event time minus max_out_of_orderness and
// the pipeline's is the minimum over shards. A shard that delivers no record for idle_timeout (on
// the pipeline's clock; heartbeats and empty batches do not count) stops holding the watermark
// back; once every shard is idle the watermark follows the clock (clock minus
// max_out_of_orderness), so windows close when input stops. A stream source announces every
// unfinished shard before its first record (known_shards), so a shard that never delivers holds
// the watermark back for one idle_timeout from the start. idle_timeout 0 means never idle.
//
// Several aggregates, top keys. Aggregate(rill::Aggregates(Count(), Sum<T>(), ...), value_of)
// gives one result whose value is a std::tuple of each aggregate (aggregators.h).
// Aggregate(...).TopN(n, by) gives, per window, the n keys with the largest by(aggregate)
// (TopNResult) instead of one result per key.
//
// Snapshots. Snapshot() captures the source's input position, every live window, the watermark
// tracker and the sink's position, in one versioned byte string. Save it, then call Commit(),
// which lets a consumer-group source checkpoint its shards there. After the sink failed, the
// results of the batch being processed were not all delivered: Commit() then returns that
// failure and moves no checkpoint, and a snapshot taken since must not be restored from (go on
// from the last one taken before). A pipeline built the same way (the same stages; functions
// cannot be saved) and given Restore(snapshot) before its first Poll emits exactly the results
// that the original would have emitted after that snapshot. With
// a StreamSink, results the stopped pipeline had written after its snapshot are not written
// again. The counters (records_in, results_out, late and undecodable records) carry over too.
//
// Thread safety: a built pipeline's methods may be called from any thread: they take the
// pipeline's lock, which its Start()ed thread holds while it polls (at most max_batches
// batches). Not from the sink (the lock is held there; Stop() reports it). sink() and
// LateRecords() return references into the pipeline: not while Start()ed. A pipeline is a
// movable value (its state stays on the heap, so a Start()ed one may move); hold any of them as
// a rill::AnyPipeline. The builder stages are used by one thread.
//
// Layout: this header is the builder (Pipeline, Flow, KeyedFlow, WindowedFlow) and the two
// pipelines it builds; the stage transforms, PipelineCore and the snapshot layout are in
// rill/process/internal/pipeline_core.h.
#ifndef RILL_PROCESS_PIPELINE_H_
#define RILL_PROCESS_PIPELINE_H_

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/shard_id.h"
#include "rill/process/aggregators.h"
#include "rill/process/internal/pipeline_core.h"
#include "rill/process/internal/pipeline_driver.h"
#include "rill/process/sink.h"
#include "rill/process/source.h"
#include "rill/process/watermark.h"
#include "rill/process/window.h"
#include "rill/process/window_operator.h"

namespace rill {

// A record that came too late for every window it belonged to.
template <typename Key, typename T>
struct LateRecord {
  Key key;
  absl::Time event_time;
  T value;
};

// One window's top keys by an aggregate value (WindowedFlow's Aggregate(...).TopN(n, by)).
template <typename Key, typename R>
struct TopNResult {
  absl::Time start;
  absl::Time end;
  // At most n (key, aggregate) pairs, the largest by(aggregate) first; equal ones in key order.
  std::vector<std::pair<Key, R>> top;

  friend bool operator==(const TopNResult&, const TopNResult&) = default;
};

// Window options of a pipeline, set through the builder. Defaults as stated.
struct PipelineWindowOptions {
  // Default: 5 s out-of-orderness, 30 s idle timeout (WatermarkOptions).
  WatermarkOptions watermark;
  // Default: 0 (WindowOperatorOptions).
  absl::Duration allowed_lateness = absl::ZeroDuration();
  // Default: kOnClose.
  EmitMode emit = EmitMode::kOnClose;
  // Window by the time of processing instead of event time. Default: false.
  bool processing_time = false;
};

namespace internal {

// Whether Aggregate(agg, value_of) fits the element type Cur (WindowedFlow::Aggregate
// static_asserts each condition with its own message).
template <typename Agg, typename ValueFn, typename Cur>
constexpr bool AggregateFits() {
  if constexpr (!Aggregator<Agg>) {
    return false;
  } else if constexpr (std::is_same_v<ValueFn, std::identity>) {
    return std::is_convertible_v<const Cur&, const typename Agg::Input&>;
  } else if constexpr (!std::is_invocable_v<ValueFn&, const Cur&>) {
    return false;
  } else {
    return std::is_convertible_v<std::invoke_result_t<ValueFn&, const Cur&>,
                                 const typename Agg::Input&>;
  }
}

// What a stage that failed its static_assert returns: the later stages accept anything and
// build nothing, so that the static_assert's message is the only error.
struct Rejected {
  template <typename... A>
  Rejected TopN(A&&...) && {
    return {};
  }
  template <typename S>
  absl::StatusOr<Rejected> To(S&&) && {
    return InvalidArgumentError("rejected at compile time");
  }
};

// TopN's sink: collects the results of the windows that close in one watermark advance, then
// gives the user's sink one TopNResult per window. Holds nothing between advances, so a
// snapshot needs nothing from it but the user's sink's position.
template <typename Key, typename R, typename By, typename Sink>
struct TopNSink {
  size_t n;
  By by;
  Sink sink;
  std::vector<WindowResult<Key, R>> closed;

  absl::Status operator()(const WindowResult<Key, R>& r) {
    closed.push_back(r);
    return absl::OkStatus();
  }

  // Ranks and delivers every window collected, counting each in *delivered.
  absl::Status Flush(uint64_t* delivered) {
    absl::Status status;
    size_t begin = 0;
    // The operator emits window by window, each in key order.
    while (begin < closed.size() && status.ok()) {
      size_t end = begin + 1;
      while (end < closed.size() && closed[end].start == closed[begin].start &&
             closed[end].end == closed[begin].end) {
        ++end;
      }
      // Stable: equal values keep their key order.
      std::stable_sort(closed.begin() + static_cast<std::ptrdiff_t>(begin),
                       closed.begin() + static_cast<std::ptrdiff_t>(end),
                       [this](const WindowResult<Key, R>& a, const WindowResult<Key, R>& b) {
                         return by(b.value) < by(a.value);
                       });
      TopNResult<Key, R> result{closed[begin].start, closed[begin].end, {}};
      for (size_t i = begin; i < end && i - begin < n; ++i) {
        result.top.emplace_back(std::move(closed[i].key), std::move(closed[i].value));
      }
      status = CallSink(sink, result);
      if (status.ok()) ++*delivered;
      begin = end;
    }
    closed.clear();
    return status;
  }

  void SavePosition(std::string* out) requires PositionedSink<Sink> { sink.SavePosition(out); }
  absl::Status RestorePosition(std::string_view in) requires PositionedSink<Sink> {
    return sink.RestorePosition(in);
  }
};

template <typename S>
struct IsTopNSink : std::false_type {};
template <typename Key, typename R, typename By, typename Sink>
struct IsTopNSink<TopNSink<Key, R, By, Sink>> : std::true_type {};

// The runners: what a pipeline does, single-threaded. The public pipelines below hold one in a
// PipelineDriver (internal/pipeline_driver.h), which adds the lock, the waits and the thread.

// A record pipeline's runner: every element that passes the stages goes to the sink.
template <typename In, typename Cur, typename Xf, typename Sink>
class RecordRunner {
 public:
  RecordRunner(internal::PipelineCore<In> core, Xf xf, Sink sink)
      : core_(std::move(core)), xf_(std::move(xf)), sink_(std::move(sink)) {}

  // Reads and processes up to `max_batches` batches. Returns the source records read.
  [[nodiscard]] absl::StatusOr<size_t> Poll(int max_batches = 16) {
    return core_.PollBatches(max_batches, [this](const SourceBatch<In>& batch) {
      for (const SourceRecord<In>& r : batch.records) {
        xf_(r.value, [&](const Cur& v) {
          if (!core_.failed.ok()) return;
          core_.failed = internal::CallSink(sink_, v);
          if (core_.failed.ok()) ++core_.results_out;
        });
      }
    });
  }

  // Processes everything the source has now (all of a bounded source).
  [[nodiscard]] absl::Status Finish() {
    while (true) {
      absl::StatusOr<size_t> n = Poll();
      if (!n.ok()) return n.status();
      if (core_.last_batches == 0) return absl::OkStatus();
    }
  }

  // Batches the last Poll took from the source (0: it had none).
  size_t last_batches() const { return core_.last_batches; }

  std::string Snapshot() { return core_.Snapshot(internal::PipelineKind::kRecords, {}, sink_); }

  // Refused after a failure: what was read since was not all delivered.
  [[nodiscard]] absl::Status Commit() {
    if (!core_.failed.ok()) return core_.failed;
    return core_.source->Commit();
  }

  [[nodiscard]] absl::Status Restore(std::string_view snapshot) {
    if (core_.started) return InvalidArgumentError("Restore after the pipeline started");
    typename internal::PipelineCore<In>::Saved saved;
    if (!internal::PipelineCore<In>::Decode(snapshot, internal::PipelineKind::kRecords, &saved) ||
        !saved.state.empty()) {
      return InvalidArgumentError("not a snapshot of a record pipeline");
    }
    return core_.Apply(saved, sink_);
  }

  uint64_t records_in() const { return core_.records_in; }
  uint64_t results_out() const { return core_.results_out; }
  uint64_t undecodable_records() const { return core_.undecodable(); }
  bool caught_up() const { return core_.source->caught_up(); }
  absl::Time watermark() const { return absl::InfinitePast(); }
  uint64_t late_records() const { return 0; }
  const std::shared_ptr<Clock>& clock() const { return core_.clock; }
  Sink& sink() { return sink_; }

 private:
  internal::PipelineCore<In> core_;
  Xf xf_;
  Sink sink_;
};

// A windowed pipeline's runner: keyed windows with an aggregator, results to the sink.
template <typename In, typename Cur, typename Xf, typename KeyFn, typename Assigner,
          typename TimeFn, typename Agg, typename ValueFn, typename Sink>
class WindowRunner {
 public:
  using Key = std::decay_t<std::invoke_result_t<KeyFn&, const Cur&>>;
  using Result = WindowResult<Key, typename Agg::Result>;
  using Late = LateRecord<Key, Cur>;

  WindowRunner(internal::PipelineCore<In> core, Xf xf, KeyFn key_of, Assigner assigner,
               TimeFn time_of, PipelineWindowOptions options, Agg agg, ValueFn value_of, Sink sink)
      : core_(std::move(core)),
        xf_(std::move(xf)),
        key_of_(std::move(key_of)),
        time_of_(std::move(time_of)),
        options_(options),
        value_of_(std::move(value_of)),
        sink_(std::move(sink)),
        op_(std::move(agg), std::move(assigner),
            WindowOperatorOptions{options.allowed_lateness, options.emit}),
        tracker_(options.watermark) {}

  // Reads and processes up to `max_batches` batches, advancing the watermark after each, and
  // once more at the end (so that idle time closes windows). Returns the source records read.
  [[nodiscard]] absl::StatusOr<size_t> Poll(int max_batches = 16) {
    if (!core_.started) {
      for (ShardId shard : core_.source->known_shards()) tracker_.AddSource(shard, Now());
    }
    absl::StatusOr<size_t> read = core_.PollBatches(
        max_batches, [this](const SourceBatch<In>& batch) { ProcessBatch(batch); });
    if (!read.ok()) return read;
    AdvanceWatermark(WatermarkAt(Now()));
    if (!core_.failed.ok()) return core_.failed;
    return read;
  }

  // Ends a bounded input: processes everything the source still holds, then closes every
  // window (the watermark moves to the end of time).
  [[nodiscard]] absl::Status Finish() {
    while (true) {
      absl::StatusOr<size_t> n = Poll();
      if (!n.ok()) return n.status();
      if (core_.last_batches == 0) break;
    }
    AdvanceWatermark(absl::InfiniteFuture());
    return core_.failed;
  }

  // Batches the last Poll took from the source (0: it had none).
  size_t last_batches() const { return core_.last_batches; }

  // The late side output, oldest first; TakeLateRecords() hands it over and empties it.
  const std::vector<Late>& LateRecords() const { return late_; }
  std::vector<Late> TakeLateRecords() { return std::exchange(late_, {}); }

  std::string Snapshot() {
    std::string op_state;
    op_.Snapshot(&op_state);
    return core_.Snapshot(internal::PipelineKind::kWindowed,
                          internal::EncodeWindowedState(op_state, tracker_), sink_);
  }

  // Refused after a failure: what was read since was not all delivered.
  [[nodiscard]] absl::Status Commit() {
    if (!core_.failed.ok()) return core_.failed;
    return core_.source->Commit();
  }

  // REQUIRES: called before the first Poll, on a pipeline built like the one snapshotted.
  // Errors: kInvalidArgument for anything but such a snapshot (nothing is changed then); a
  // source's or StreamSink's error restoring its position.
  [[nodiscard]] absl::Status Restore(std::string_view snapshot) {
    if (core_.started) return InvalidArgumentError("Restore after the pipeline started");
    typename internal::PipelineCore<In>::Saved saved;
    if (!internal::PipelineCore<In>::Decode(snapshot, internal::PipelineKind::kWindowed, &saved)) {
      return InvalidArgumentError("not a snapshot of a windowed pipeline");
    }
    std::string_view op_state;
    WatermarkTracker tracker(options_.watermark);
    if (!internal::DecodeWindowedState(saved.state, &op_state, &tracker)) {
      return InvalidArgumentError("not a snapshot of a windowed pipeline");
    }
    WindowOperator<Key, Agg, Assigner> op(op_.aggregator(), op_.assigner(), op_.options());
    if (!op.Restore(op_state)) {
      return InvalidArgumentError(
          "the snapshot's window state does not fit this pipeline (another window, lateness, "
          "aggregator or key type)");
    }
    if (absl::Status s = core_.Apply(saved, sink_); !s.ok()) return s;
    op_ = std::move(op);
    // Idleness measures silence while running: a restarted pipeline gives every source a full
    // idle timeout again (a shard is not idle just because the process was down).
    std::map<ShardId, WatermarkTracker::Source> sources = tracker.sources();
    for (auto& [shard, source] : sources) source.last_seen = Now();
    tracker_.Restore(std::move(sources), tracker.current());
    return absl::OkStatus();
  }

  absl::Time watermark() const { return op_.watermark(); }
  uint64_t records_in() const { return core_.records_in; }
  uint64_t results_out() const { return core_.results_out; }
  uint64_t late_records() const { return op_.late_records(); }
  uint64_t undecodable_records() const { return core_.undecodable(); }
  bool caught_up() const { return core_.source->caught_up(); }
  const std::shared_ptr<Clock>& clock() const { return core_.clock; }
  size_t live_windows() const { return op_.live_windows(); }
  size_t live_keys() const { return op_.live_keys(); }
  // The state's estimated bytes (WindowOperator::state_bytes), and per live key (0 with none).
  size_t state_bytes() const { return op_.state_bytes(); }
  double state_bytes_per_live_key() const {
    const size_t keys = op_.live_keys();
    return keys == 0 ? 0.0 : static_cast<double>(op_.state_bytes()) / static_cast<double>(keys);
  }
  Sink& sink() { return sink_; }

 private:
  absl::Time Now() const { return core_.clock->Now(); }

  absl::Time WatermarkAt(absl::Time now) {
    if (options_.processing_time) return now;
    return tracker_.Watermark(now);
  }

  void ProcessBatch(const SourceBatch<In>& batch) {
    const absl::Time now = Now();
    absl::Time newest = absl::InfinitePast();
    auto emit = [this](const Result& r) { Deliver(r); };
    for (const SourceRecord<In>& r : batch.records) {
      if constexpr (std::is_same_v<TimeFn, internal::ArrivalTime>) {
        // The event time is the arrival time: every source record shows how far its shard has
        // come, also one the stages filter out.
        if (r.arrival_time > newest) newest = r.arrival_time;
      }
      xf_(r.value, [&](const Cur& v) {
        absl::Time t;
        if (options_.processing_time) {
          t = now;
        } else if constexpr (std::is_same_v<TimeFn, internal::ArrivalTime>) {
          t = r.arrival_time;
        } else {
          t = time_of_(v);
        }
        if (t > newest) newest = t;
        Key key = key_of_(v);
        op_.Add(key, t, ValueOf(v), emit, [&](const Key& k, absl::Time et, const auto&) {
          late_.push_back(Late{k, et, v});
        });
      });
    }
    if (!options_.processing_time) {
      // Only records count as activity: a heartbeat (an empty batch) does not keep a source
      // from going idle, else a quiet shard would hold the watermark back for ever.
      if (newest != absl::InfinitePast()) tracker_.Observe(batch.shard, newest, now);
      if (batch.shard_ended) tracker_.RemoveSource(batch.shard);
    }
    AdvanceWatermark(WatermarkAt(now));
  }

  decltype(auto) ValueOf(const Cur& v) {
    if constexpr (std::is_same_v<ValueFn, std::identity>) {
      return v;
    } else {
      return value_of_(v);
    }
  }

  void AdvanceWatermark(absl::Time wm) {
    op_.AdvanceWatermark(wm, [this](const Result& r) { Deliver(r); });
    if constexpr (internal::IsTopNSink<Sink>::value) {
      // Every window that closed did so in this call, with all its keys: rank them now.
      if (core_.failed.ok()) core_.failed = sink_.Flush(&core_.results_out);
    }
  }

  void Deliver(const Result& r) {
    if (!core_.failed.ok()) return;  // a failed pipeline emits nothing more
    core_.failed = internal::CallSink(sink_, r);
    if constexpr (!internal::IsTopNSink<Sink>::value) {
      if (core_.failed.ok()) ++core_.results_out;
    }
  }

  internal::PipelineCore<In> core_;
  Xf xf_;
  KeyFn key_of_;
  TimeFn time_of_;
  PipelineWindowOptions options_;
  ValueFn value_of_;
  Sink sink_;
  WindowOperator<Key, Agg, Assigner> op_;
  WatermarkTracker tracker_;
  std::vector<Late> late_;
};

// What every built pipeline is: a tag for AnyPipeline, and the methods both kinds share.
struct PipelineTag {};

template <typename Impl>
class PipelineHandle : public PipelineTag {
 public:
  // Reads and processes up to `max_batches` batches, advancing the watermark (see "Driving"
  // above). Returns the source records read: 0 when the source had nothing. kResourceInUse
  // while Start()ed.
  [[nodiscard]] absl::StatusOr<size_t> Poll(int max_batches = 16) {
    return driver_->Poll(max_batches);
  }
  // Polls until some input was read or `timeout` has passed on the pipeline's clock, looking
  // again every options.idle_time_between_polls: returns the records read by the look that found
  // some, or 0 at the deadline (a timeout <= 0 looks once). Every look advances the watermark, so
  // idle time closes windows while it waits. With a SimulatedClock it never blocks: the clock is
  // moved forward instead (as Subscription::Next(timeout) does). kInvalidArgument for bad
  // options; kResourceInUse while Start()ed.
  [[nodiscard]] absl::StatusOr<size_t> Poll(absl::Duration timeout, PollOptions options = {}) {
    return driver_->PollFor(timeout, options);
  }
  // Runs the pipeline on a thread of its own until Stop() (or the destructor): it polls, and
  // after a look that found nothing waits options.idle_time_between_polls on the pipeline's clock
  // (Clock::WaitUntil: with a SimulatedClock, until the clock is advanced that far). The sink is
  // called on that thread. A source or sink error ends the thread; Stop() returns it.
  // kInvalidArgument for bad options; kResourceInUse if already started.
  [[nodiscard]] absl::Status Start(PollOptions options = {}) { return driver_->Start(options); }
  // Ends the Start()ed thread (its current poll completes; its wait ends at once) and joins it.
  // Returns the error that ended the thread, else OK (also when not started). kResourceInUse when
  // called from the sink, on the pipeline's own thread (no other method may be called from the
  // sink: the pipeline's lock is held there). Poll again, or Start() again, afterwards.
  absl::Status Stop() { return driver_->Stop(); }
  // Start()ed and the thread has not ended on an error.
  bool running() const { return driver_->running(); }
  // Ends a bounded input (see "Driving" above); stops a Start()ed thread first.
  [[nodiscard]] absl::Status Finish() { return driver_->Finish(); }

  // See "Snapshots" above.
  std::string Snapshot() {
    return driver_->Locked([](Impl& p) { return p.Snapshot(); });
  }
  [[nodiscard]] absl::Status Commit() {
    return driver_->Locked([](Impl& p) { return p.Commit(); });
  }
  // REQUIRES: before the first Poll, on a pipeline built like the one snapshotted. Errors:
  // kInvalidArgument for anything but such a snapshot (nothing is changed then); a source's or
  // StreamSink's error restoring its position; kResourceInUse while Start()ed.
  [[nodiscard]] absl::Status Restore(std::string_view snapshot) {
    return driver_->Restore(snapshot);
  }

  // Whether the source has delivered everything there is to read now (Source::caught_up): for a
  // bounded source, all of it; for a stream source, every shard it reads up to its newest record.
  // What to wait for before Finish() when a pipeline reads a stream to its current end.
  bool caught_up() const {
    return driver_->Locked([](Impl& p) { return p.caught_up(); });
  }

  uint64_t records_in() const {
    return driver_->Locked([](Impl& p) { return p.records_in(); });
  }
  uint64_t results_out() const {
    return driver_->Locked([](Impl& p) { return p.results_out(); });
  }
  uint64_t undecodable_records() const {
    return driver_->Locked([](Impl& p) { return p.undecodable_records(); });
  }
  // The sink. Not while Start()ed (the thread calls it).
  auto& sink() {
    return driver_->Locked([](Impl& p) -> decltype(auto) { return p.sink(); });
  }

 protected:
  template <typename... Args>
  explicit PipelineHandle(std::in_place_t, Args&&... args)
      : driver_(std::make_unique<PipelineDriver<Impl>>(std::forward<Args>(args)...)) {}

  // Never null, except in a moved-from pipeline (which may only be destroyed or assigned to).
  std::unique_ptr<PipelineDriver<Impl>> driver_;
};

}  // namespace internal

// A record pipeline: every element that passes the stages goes to the sink. Built by
// Pipeline<T>::From(...)...To(sink); a movable value (its state stays put on the heap, so a
// Start()ed pipeline may be moved too). Methods: internal::PipelineHandle above.
template <typename In, typename Cur, typename Xf, typename Sink>
class RecordPipeline : public internal::PipelineHandle<internal::RecordRunner<In, Cur, Xf, Sink>> {
 public:
  template <typename... Args>
  explicit RecordPipeline(std::in_place_t, Args&&... args)
      : internal::PipelineHandle<internal::RecordRunner<In, Cur, Xf, Sink>>(
            std::in_place, std::forward<Args>(args)...) {}

  // For AnyPipeline: a record pipeline has no watermark and no late records.
  absl::Time watermark() const { return absl::InfinitePast(); }
  uint64_t late_records() const { return 0; }
};

// A windowed pipeline: keyed windows with an aggregator, results (WindowResult<Key,
// Agg::Result>) to the sink. Built by Pipeline<T>::From(...)...Aggregate(...).To(sink); a movable
// value like RecordPipeline. Methods: internal::PipelineHandle above, and the window state below.
template <typename In, typename Cur, typename Xf, typename KeyFn, typename Assigner,
          typename TimeFn, typename Agg, typename ValueFn, typename Sink>
class WindowPipeline
    : public internal::PipelineHandle<
          internal::WindowRunner<In, Cur, Xf, KeyFn, Assigner, TimeFn, Agg, ValueFn, Sink>> {
  using Impl = internal::WindowRunner<In, Cur, Xf, KeyFn, Assigner, TimeFn, Agg, ValueFn, Sink>;
  using Base = internal::PipelineHandle<Impl>;

 public:
  using Key = typename Impl::Key;
  using Result = typename Impl::Result;
  using Late = typename Impl::Late;

  template <typename... Args>
  explicit WindowPipeline(std::in_place_t, Args&&... args)
      : Base(std::in_place, std::forward<Args>(args)...) {}

  // The late side output, oldest first. LateRecords() returns a reference into the pipeline:
  // not while Start()ed; TakeLateRecords() hands it over and empties it, from any thread.
  const std::vector<Late>& LateRecords() const {
    return this->driver_->Locked(
        [](Impl& p) -> const std::vector<Late>& { return p.LateRecords(); });
  }
  std::vector<Late> TakeLateRecords() {
    return this->driver_->Locked([](Impl& p) { return p.TakeLateRecords(); });
  }

  absl::Time watermark() const {
    return this->driver_->Locked([](Impl& p) { return p.watermark(); });
  }
  uint64_t late_records() const {
    return this->driver_->Locked([](Impl& p) { return p.late_records(); });
  }
  size_t live_windows() const {
    return this->driver_->Locked([](Impl& p) { return p.live_windows(); });
  }
  size_t live_keys() const {
    return this->driver_->Locked([](Impl& p) { return p.live_keys(); });
  }
  // The state's estimated bytes (WindowOperator::state_bytes), and per live key (0 with none).
  size_t state_bytes() const {
    return this->driver_->Locked([](Impl& p) { return p.state_bytes(); });
  }
  double state_bytes_per_live_key() const {
    return this->driver_->Locked([](Impl& p) { return p.state_bytes_per_live_key(); });
  }
};

// The windowed stages before the aggregator: options and the event time.
template <typename In, typename Cur, typename Xf, typename KeyFn, typename Assigner,
          typename TimeFn>
class WindowedFlow {
 public:
  WindowedFlow(internal::PipelineCore<In> core, Xf xf, KeyFn key_of, Assigner assigner,
               TimeFn time_of, PipelineWindowOptions options)
      : core_(std::move(core)),
        xf_(std::move(xf)),
        key_of_(std::move(key_of)),
        assigner_(std::move(assigner)),
        time_of_(std::move(time_of)),
        options_(options) {}

  // The event time of an element (absl::Time time_of(const Cur&)). Default: arrival time. Not
  // with ProcessingTime.
  template <typename F>
  auto EventTime(F time_of) && {
    static_assert(std::is_invocable_r_v<absl::Time, F&, const Cur&>,
                  "EventTime(time_of): time_of must take the element of this stage (const T&) "
                  "and return an absl::Time");
    return WindowedFlow<In, Cur, Xf, KeyFn, Assigner, F>(std::move(core_), std::move(xf_),
                                                         std::move(key_of_), std::move(assigner_),
                                                         std::move(time_of), options_);
  }
  // Windows by processing time (the clock when a record is processed). Not with EventTime.
  WindowedFlow&& ProcessingTime() && {
    options_.processing_time = true;
    return std::move(*this);
  }
  // Out-of-orderness and idle timeout (watermark.h), each >= 0; To() reports a negative one.
  WindowedFlow&& Watermark(WatermarkOptions watermark) && {
    options_.watermark = watermark;
    return std::move(*this);
  }
  // How long a closed window still takes late records (window_operator.h), >= 0.
  WindowedFlow&& AllowedLateness(absl::Duration lateness) && {
    options_.allowed_lateness = lateness;
    return std::move(*this);
  }
  // kOnClose or kOnUpdate (window_operator.h).
  WindowedFlow&& Emit(EmitMode mode) && {
    options_.emit = mode;
    return std::move(*this);
  }

  // Aggregates the elements themselves (e.g. Count()), or value_of(element) (e.g. Sum<int64_t>()
  // of an amount).
  template <typename Agg>
  auto Aggregate(Agg agg) && {
    return std::move(*this).Aggregate(std::move(agg), std::identity());
  }
  template <typename Agg, typename ValueFn>
  auto Aggregate(Agg agg, ValueFn value_of) && {
    // The common mistakes get one clear message each (and the pipeline is not built, so no
    // cascade of template errors follows).
    static_assert(Aggregator<Agg>,
                  "Aggregate(agg, ...): `agg` is not a rill aggregator: use rill::Count(), "
                  "rill::Sum<T>(), rill::Aggregates(...), ... (rill/process/aggregators.h) or a "
                  "type satisfying rill::Aggregator");
    if constexpr (Aggregator<Agg>) {
      if constexpr (std::is_same_v<ValueFn, std::identity>) {
        static_assert(std::is_convertible_v<const Cur&, const typename Agg::Input&>,
                      "Aggregate(agg): without a value function the element itself is "
                      "aggregated, and this aggregator cannot take it: give the value to "
                      "aggregate, e.g. .Aggregate(rill::Sum<int64_t>(), [](const Event& e) { "
                      "return e.amount; })");
      } else {
        static_assert(std::is_invocable_v<ValueFn&, const Cur&>,
                      "Aggregate(agg, value_of): value_of must take the element of this stage "
                      "(const T&, or the type the last Map or FlatMap made)");
        if constexpr (std::is_invocable_v<ValueFn&, const Cur&>) {
          static_assert(std::is_convertible_v<std::invoke_result_t<ValueFn&, const Cur&>,
                                              const typename Agg::Input&>,
                        "Aggregate(agg, value_of): the aggregator cannot take what value_of "
                        "returns (e.g. rill::Sum<int64_t>() of a std::string)");
        }
      }
    }
    if constexpr (internal::AggregateFits<Agg, ValueFn, Cur>()) {
      return Aggregated<Agg, ValueFn>{std::move(*this), std::move(agg), std::move(value_of)};
    } else {
      return internal::Rejected{};
    }
  }

  // The last stage: To(sink) checks every parameter (see "Validation" above) and builds the
  // pipeline, or returns kInvalidArgument naming the first bad one.
  template <typename Agg, typename ValueFn>
  struct Aggregated {
    WindowedFlow flow;
    Agg agg;
    ValueFn value_of;

    template <typename Sink>
    absl::StatusOr<WindowPipeline<In, Cur, Xf, KeyFn, Assigner, TimeFn, Agg, ValueFn, Sink>> To(
        Sink sink) && {
      static_assert(
          std::is_invocable_v<
              Sink&, const WindowResult<std::decay_t<std::invoke_result_t<KeyFn&, const Cur&>>,
                                        typename Agg::Result>&>,
          "To(sink): a windowed pipeline's sink must take const rill::WindowResult<Key, "
          "Result>& (Key: what KeyBy's function returns; Result: the aggregator's, a std::tuple "
          "for rill::Aggregates; with TopN, const rill::TopNResult<Key, Result>&)");
      if (absl::Status s = flow.Check(); !s.ok()) return s;
      if (internal::IsNullCallable(value_of)) {
        return internal::NullInStage("Aggregate", "value function");
      }
      if (internal::IsNullCallable(sink)) return internal::NullInStage("To", "sink");
      return WindowPipeline<In, Cur, Xf, KeyFn, Assigner, TimeFn, Agg, ValueFn, Sink>(
          std::in_place, std::move(flow.core_), std::move(flow.xf_), std::move(flow.key_of_),
          std::move(flow.assigner_), std::move(flow.time_of_), flow.options_, std::move(agg),
          std::move(value_of), std::move(sink));
    }

    // Instead of one result per key and window, one TopNResult<Key, Agg::Result> per window:
    // its `n` keys with the largest by(aggregate) (any type with operator<; default: the
    // aggregate itself), e.g. the 10 players with the highest total score per hour:
    //   .Aggregate(rill::Sum<int64_t>(), score).TopN(10).To(sink)
    //   .Aggregate(rill::Aggregates(rill::Count(), rill::Sum<int64_t>()), amount)
    //       .TopN(3, [](const auto& r) { return std::get<1>(r); })   // by the sum
    // Ranks complete windows, so it needs Emit(kOnClose), no AllowedLateness and tumbling or
    // hopping windows (sessions are per key): To() reports kInvalidArgument otherwise, and n < 1.
    // The ranking holds no state between polls: the snapshot is the one without TopN.
    // results_out() counts TopNResults.
    template <typename By = std::identity>
    auto TopN(size_t n, By by = {}) && {
      static_assert(!std::is_same_v<Assigner, SessionWindow>,
                    "TopN ranks the keys of a window: use TumblingWindow or HoppingWindow (session "
                    "windows are per key)");
      static_assert(std::is_invocable_v<const By&, const typename Agg::Result&>,
                    "TopN(n, by): `by` must take the aggregate's Result (const Agg::Result&)");
      return Ranked<By>{std::move(*this), n, std::move(by)};
    }

    template <typename By>
    struct Ranked {
      Aggregated aggregated;
      size_t n;
      By by;

      template <typename Sink>
      auto To(Sink sink) && {
        using Key = std::decay_t<std::invoke_result_t<KeyFn&, const Cur&>>;
        using Ranking = internal::TopNSink<Key, typename Agg::Result, By, Sink>;
        using P = WindowPipeline<In, Cur, Xf, KeyFn, Assigner, TimeFn, Agg, ValueFn, Ranking>;
        const PipelineWindowOptions& options = aggregated.flow.options_;
        if (absl::Status s = aggregated.flow.Check(); !s.ok()) return absl::StatusOr<P>(s);
        if (n < 1) return absl::StatusOr<P>(InvalidArgumentError("TopN: n must be >= 1; got 0"));
        if (options.emit != EmitMode::kOnClose ||
            options.allowed_lateness != absl::ZeroDuration()) {
          return absl::StatusOr<P>(InvalidArgumentError(absl::StrCat(
              "TopN: ranks complete windows, so it needs Emit(kOnClose) and no AllowedLateness; "
              "got allowed lateness ",
              absl::FormatDuration(options.allowed_lateness),
              options.emit == EmitMode::kOnClose ? "" : " and emit mode kOnUpdate")));
        }
        if (internal::IsNullCallable(by)) {
          return absl::StatusOr<P>(internal::NullInStage("TopN", "function"));
        }
        if (internal::IsNullCallable(sink)) {
          return absl::StatusOr<P>(internal::NullInStage("To", "sink"));
        }
        return std::move(aggregated).To(Ranking{n, std::move(by), std::move(sink), {}});
      }
    };
  };

 private:
  // The stages so far, in their order: OK or kInvalidArgument naming the first bad parameter.
  absl::Status Check() const {
    if (absl::Status s = internal::CheckStages(core_, xf_); !s.ok()) return s;
    if (internal::IsNullCallable(key_of_)) return internal::NullInStage("KeyBy", "function");
    if (absl::Status s = assigner_.Validate(); !s.ok()) return internal::InStage("Window", s);
    if constexpr (!std::is_same_v<TimeFn, internal::ArrivalTime>) {
      if (internal::IsNullCallable(time_of_)) {
        return internal::NullInStage("EventTime", "function");
      }
      if (options_.processing_time) {
        return InvalidArgumentError(
            "ProcessingTime: the pipeline also has EventTime(fn); choose one");
      }
    }
    if (absl::Status s = options_.watermark.Validate(); !s.ok()) {
      return internal::InStage("Watermark", s);
    }
    if (absl::Status s =
            WindowOperatorOptions{.allowed_lateness = options_.allowed_lateness}.Validate();
        !s.ok()) {
      return internal::InStage("AllowedLateness", s);
    }
    if (absl::Status s = WindowOperatorOptions{.emit = options_.emit}.Validate(); !s.ok()) {
      return internal::InStage("Emit", s);
    }
    return absl::OkStatus();
  }

  internal::PipelineCore<In> core_;
  Xf xf_;
  KeyFn key_of_;
  Assigner assigner_;
  TimeFn time_of_;
  PipelineWindowOptions options_;
};

template <typename In, typename Cur, typename Xf, typename KeyFn>
class KeyedFlow {
 public:
  KeyedFlow(internal::PipelineCore<In> core, Xf xf, KeyFn key_of)
      : core_(std::move(core)), xf_(std::move(xf)), key_of_(std::move(key_of)) {}

  // TumblingWindow, HoppingWindow or SessionWindow (window.h); To() reports one whose
  // Validate() fails.
  template <typename Assigner>
  auto Window(Assigner assigner) && {
    return WindowedFlow<In, Cur, Xf, KeyFn, Assigner, internal::ArrivalTime>(
        std::move(core_), std::move(xf_), std::move(key_of_), std::move(assigner),
        internal::ArrivalTime{}, PipelineWindowOptions{});
  }

 private:
  internal::PipelineCore<In> core_;
  Xf xf_;
  KeyFn key_of_;
};

// The element stages; Cur is the current element type.
template <typename In, typename Cur, typename Xf>
class Flow {
 public:
  Flow(internal::PipelineCore<In> core, Xf xf) : core_(std::move(core)), xf_(std::move(xf)) {}

  // Keeps the elements for which pred(element) is true.
  template <typename F>
  auto Filter(F pred) && {
    static_assert(std::is_invocable_r_v<bool, F&, const Cur&>,
                  "Filter(pred): pred must take the element of this stage (const T&, or the type "
                  "the last Map or FlatMap made) and return bool");
    using Next = internal::FilterTransform<Xf, F>;
    return Flow<In, Cur, Next>(std::move(core_), Next{std::move(xf_), std::move(pred)});
  }
  // Replaces each element by f(element).
  template <typename F>
  auto Map(F f) && {
    using Next = internal::MapTransform<Xf, F>;
    using Out = std::decay_t<std::invoke_result_t<F&, const Cur&>>;
    return Flow<In, Out, Next>(std::move(core_), Next{std::move(xf_), std::move(f)});
  }
  // Replaces each element by the elements of the range f(element) (none, one or more).
  template <typename F>
  auto FlatMap(F f) && {
    using Next = internal::FlatMapTransform<Xf, F>;
    using Range = std::invoke_result_t<F&, const Cur&>;
    using Out = std::decay_t<std::ranges::range_value_t<Range>>;
    return Flow<In, Out, Next>(std::move(core_), Next{std::move(xf_), std::move(f)});
  }
  // Partitions by key_of(element): a key is copyable, ordered (operator<), equality-comparable,
  // with a rill::StableHash and a rill::KeyCodec (integers and std::string have both).
  template <typename KeyFn>
  auto KeyBy(KeyFn key_of) && {
    static_assert(std::is_invocable_v<KeyFn&, const Cur&>,
                  "KeyBy(key_of): key_of must take the element of this stage (const T&, or the "
                  "type the last Map or FlatMap made)");
    return KeyedFlow<In, Cur, Xf, KeyFn>(std::move(core_), std::move(xf_), std::move(key_of));
  }
  // Every element to the sink. Checks the source, the stages' functions and the sink (see
  // "Validation" above): the pipeline, or kInvalidArgument naming the first one that is null.
  template <typename Sink>
  absl::StatusOr<RecordPipeline<In, Cur, Xf, Sink>> To(Sink sink) && {
    static_assert(std::is_invocable_v<Sink&, const Cur&>,
                  "To(sink): a record pipeline's sink must take the element of the last stage "
                  "(const T&, or the type the last Map or FlatMap made)");
    if (absl::Status s = internal::CheckStages(core_, xf_); !s.ok()) return s;
    if (internal::IsNullCallable(sink)) return internal::NullInStage("To", "sink");
    return RecordPipeline<In, Cur, Xf, Sink>(std::in_place, std::move(core_), std::move(xf_),
                                             std::move(sink));
  }

 private:
  internal::PipelineCore<In> core_;
  Xf xf_;
};

template <typename T>
class Pipeline {
 public:
  // Starts a pipeline reading `source`, on `clock` (processing time, idle timeouts; use the
  // source stream's clock). A null clock means the system clock; a null source is reported by
  // To().
  static Flow<T, T, internal::IdentityTransform> From(
      std::unique_ptr<Source<T>> source, std::shared_ptr<Clock> clock = SystemClock::Default()) {
    internal::PipelineCore<T> core;
    core.source = std::move(source);
    core.clock = clock ? std::move(clock) : SystemClock::Default();
    return Flow<T, T, internal::IdentityTransform>(std::move(core), {});
  }
};

// A built pipeline of any type, for holding one without naming its template type (a class
// member, a container of pipelines). Converts implicitly from any pipeline To() builds, and from
// its StatusOr:
//
//   class Dashboard {
//     ...
//     rill::AnyPipeline pipeline_;
//   };
//   absl::StatusOr<rill::AnyPipeline> p = rill::Pipeline<Order>::From(...)...To(sink);
//   if (!p.ok()) return p.status();
//   pipeline_ = *std::move(p);
//   if (absl::Status s = pipeline_.Start(); !s.ok()) return s;
//
// The methods are the pipeline's (see PipelineHandle above), through one virtual call each (not
// per record). What is typed stays with the typed pipeline: the sink, and the late side output
// (late_records() counts it). An empty AnyPipeline (default-constructed or moved from) returns
// kInvalidArgument from every method returning a status, and zero, false or InfinitePast from
// the others. Allocation: one allocation at conversion. Thread safety: as the pipeline it holds.
class AnyPipeline {
 public:
  AnyPipeline() = default;
  template <typename P>
  requires std::derived_from<P, internal::PipelineTag> AnyPipeline(
      P pipeline)  // NOLINT(google-explicit-constructor): a conversion, on purpose
      : p_(std::make_unique<Model<P>>(std::move(pipeline))) {}

  AnyPipeline(AnyPipeline&&) = default;
  AnyPipeline& operator=(AnyPipeline&&) = default;

  // False when empty.
  explicit operator bool() const { return p_ != nullptr; }

  [[nodiscard]] absl::StatusOr<size_t> Poll(int max_batches = 16) {
    if (!p_) return Empty();
    return p_->Poll(max_batches);
  }
  [[nodiscard]] absl::StatusOr<size_t> Poll(absl::Duration timeout, PollOptions options = {}) {
    if (!p_) return Empty();
    return p_->PollFor(timeout, options);
  }
  [[nodiscard]] absl::Status Start(PollOptions options = {}) {
    return p_ ? p_->Start(options) : Empty();
  }
  absl::Status Stop() { return p_ ? p_->Stop() : absl::OkStatus(); }
  bool running() const { return p_ && p_->running(); }
  [[nodiscard]] absl::Status Finish() { return p_ ? p_->Finish() : Empty(); }
  // An empty AnyPipeline's snapshot is empty (and no pipeline restores it).
  std::string Snapshot() { return p_ ? p_->Snapshot() : std::string(); }
  [[nodiscard]] absl::Status Commit() { return p_ ? p_->Commit() : Empty(); }
  [[nodiscard]] absl::Status Restore(std::string_view snapshot) {
    return p_ ? p_->Restore(snapshot) : Empty();
  }
  bool caught_up() const { return p_ && p_->caught_up(); }
  uint64_t records_in() const { return p_ ? p_->records_in() : 0; }
  uint64_t results_out() const { return p_ ? p_->results_out() : 0; }
  uint64_t undecodable_records() const { return p_ ? p_->undecodable_records() : 0; }
  // A windowed pipeline's; a record pipeline's are 0 and InfinitePast.
  uint64_t late_records() const { return p_ ? p_->late_records() : 0; }
  absl::Time watermark() const { return p_ ? p_->watermark() : absl::InfinitePast(); }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual absl::StatusOr<size_t> Poll(int max_batches) = 0;
    virtual absl::StatusOr<size_t> PollFor(absl::Duration timeout, PollOptions options) = 0;
    virtual absl::Status Start(PollOptions options) = 0;
    virtual absl::Status Stop() = 0;
    virtual bool running() const = 0;
    virtual absl::Status Finish() = 0;
    virtual std::string Snapshot() = 0;
    virtual absl::Status Commit() = 0;
    virtual absl::Status Restore(std::string_view snapshot) = 0;
    virtual bool caught_up() const = 0;
    virtual uint64_t records_in() const = 0;
    virtual uint64_t results_out() const = 0;
    virtual uint64_t undecodable_records() const = 0;
    virtual uint64_t late_records() const = 0;
    virtual absl::Time watermark() const = 0;
  };
  template <typename P>
  struct Model final : Concept {
    explicit Model(P pipeline) : p(std::move(pipeline)) {}
    absl::StatusOr<size_t> Poll(int max_batches) override { return p.Poll(max_batches); }
    absl::StatusOr<size_t> PollFor(absl::Duration timeout, PollOptions options) override {
      return p.Poll(timeout, options);
    }
    absl::Status Start(PollOptions options) override { return p.Start(options); }
    absl::Status Stop() override { return p.Stop(); }
    bool running() const override { return p.running(); }
    absl::Status Finish() override { return p.Finish(); }
    std::string Snapshot() override { return p.Snapshot(); }
    absl::Status Commit() override { return p.Commit(); }
    absl::Status Restore(std::string_view snapshot) override { return p.Restore(snapshot); }
    bool caught_up() const override { return p.caught_up(); }
    uint64_t records_in() const override { return p.records_in(); }
    uint64_t results_out() const override { return p.results_out(); }
    uint64_t undecodable_records() const override { return p.undecodable_records(); }
    uint64_t late_records() const override { return p.late_records(); }
    absl::Time watermark() const override { return p.watermark(); }
    P p;
  };

  static absl::Status Empty() { return InvalidArgumentError("AnyPipeline: empty (no pipeline)"); }

  std::unique_ptr<Concept> p_;
};

}  // namespace rill

#endif  // RILL_PROCESS_PIPELINE_H_
