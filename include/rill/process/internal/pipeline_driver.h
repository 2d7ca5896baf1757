// PipelineDriver: what makes a built pipeline (pipeline.h) pleasant to hold — its runner on the
// heap behind a lock, a Poll that waits, and a thread of its own. Not public API.
//
// Why on the heap: a Start()ed thread points at the runner, while the pipeline object itself is
// a value the application moves around (out of a StatusOr, into a member, into an AnyPipeline).
// The driver never moves; the pipeline holds it by unique_ptr. Why a lock: with a thread of its
// own, the application still calls Snapshot(), Commit() and the counters from its threads; each
// call waits for the poll in progress (at most PollOptions::max_batches batches) to end.
//
// Waits go through the pipeline's clock (Clock::WaitFor on the caller's thread in Poll(timeout),
// Clock::WaitUntil on the Start()ed thread): under a SimulatedClock nothing sleeps in real time.
#ifndef RILL_PROCESS_INTERNAL_PIPELINE_DRIVER_H_
#define RILL_PROCESS_INTERNAL_PIPELINE_DRIVER_H_

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"
#include "rill/process/internal/pipeline_core.h"

namespace rill {

// How a pipeline waits for input in Poll(timeout) and on its Start()ed thread.
struct PollOptions {
  // Batches read at most per look at the source. Range: >= 1. Default: 16.
  int max_batches = 16;
  // How long to wait, on the pipeline's clock, before looking again at a source that had nothing
  // (sources are looked at, not listened to: rill reads from memory, so a look is cheap). Real
  // time with a SystemClock; with a SimulatedClock a Poll(timeout) moves the clock forward by it,
  // and a Start()ed thread looks again once the clock has been advanced this far. Range: > 0.
  // Default: 1 ms.
  absl::Duration idle_time_between_polls = absl::Milliseconds(1);

  // OK, or kInvalidArgument naming the setting out of range.
  absl::Status Validate() const {
    if (max_batches < 1) {
      return InvalidArgumentError(absl::StrCat("max_batches must be >= 1; got ", max_batches));
    }
    if (idle_time_between_polls <= absl::ZeroDuration() ||
        idle_time_between_polls == absl::InfiniteDuration()) {
      return InvalidArgumentError(
          absl::StrCat("idle_time_between_polls must be positive and finite; got ",
                       absl::FormatDuration(idle_time_between_polls)));
    }
    return absl::OkStatus();
  }
};

namespace internal {

// Impl: a pipeline runner with Poll(int), Finish(), Restore(view) and clock().
template <typename Impl>
class PipelineDriver {
 public:
  template <typename... Args>
  explicit PipelineDriver(Args&&... args)
      : impl_(std::forward<Args>(args)...), clock_(impl_.clock()) {}

  ~PipelineDriver() { Stop().IgnoreError(); }

  PipelineDriver(const PipelineDriver&) = delete;
  PipelineDriver& operator=(const PipelineDriver&) = delete;

  // f(impl) under the lock.
  template <typename F>
  decltype(auto) Locked(F&& f) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock<Mutex> lock(&mu_);
    return std::forward<F>(f)(impl_);
  }

  absl::StatusOr<size_t> Poll(int max_batches) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock<Mutex> lock(&mu_);
    if (started_) return RunningError("Poll");
    return impl_.Poll(max_batches);
  }

  absl::StatusOr<size_t> PollFor(absl::Duration timeout, const PollOptions& options)
      ABSL_LOCKS_EXCLUDED(mu_) {
    if (absl::Status s = options.Validate(); !s.ok()) return InStage("Poll", s);
    const absl::Time deadline = clock_->Now() + std::max(timeout, absl::ZeroDuration());
    // The caller's own waker: nothing wakes it but its timeouts (sources are looked at), and
    // each caller of Poll waits on its own.
    Waker waker;
    while (true) {
      absl::StatusOr<size_t> n;
      size_t batches = 0;
      {
        MutexLock<Mutex> lock(&mu_);
        if (started_) return RunningError("Poll");
        n = impl_.Poll(options.max_batches);
        batches = impl_.last_batches();
      }
      if (!n.ok() || *n > 0) return n;
      const absl::Time now = clock_->Now();
      if (now >= deadline) return n;
      // Batches whose records all failed to decode: more may be waiting, look again at once.
      if (batches > 0) continue;
      clock_->WaitFor(std::min(options.idle_time_between_polls, deadline - now), waker);
    }
  }

  absl::Status Start(const PollOptions& options) ABSL_LOCKS_EXCLUDED(run_mu_, mu_) {
    if (absl::Status s = options.Validate(); !s.ok()) return InStage("Start", s);
    MutexLock<Mutex> run_lock(&run_mu_);
    MutexLock<Mutex> lock(&mu_);
    if (started_) return ResourceInUseError("Start: the pipeline already runs on its own thread");
    started_ = true;
    stop_ = false;
    ended_ = false;
    thread_status_ = absl::OkStatus();
    thread_ = std::thread([this, options] { Run(options); });
    return absl::OkStatus();
  }

  absl::Status Stop() ABSL_LOCKS_EXCLUDED(run_mu_, mu_) {
    // The sink runs under mu_ on the pipeline's thread: a Stop from there could take no lock
    // (and could not join itself).
    if (OnOwnThread()) return ResourceInUseError("Stop: called from the sink");
    MutexLock<Mutex> run_lock(&run_mu_);
    {
      MutexLock<Mutex> lock(&mu_);
      if (!started_) return absl::OkStatus();
      stop_ = true;
    }
    waker_.Interrupt();
    thread_.join();  // thread_ changes only under run_mu_, which this holds
    MutexLock<Mutex> lock(&mu_);
    started_ = false;
    return thread_status_;
  }

  bool running() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock<Mutex> lock(&mu_);
    return started_ && !ended_;
  }

  absl::Status Finish() ABSL_LOCKS_EXCLUDED(mu_) {
    if (absl::Status s = Stop(); !s.ok()) return s;
    MutexLock<Mutex> lock(&mu_);
    return impl_.Finish();
  }

  absl::Status Restore(std::string_view snapshot) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock<Mutex> lock(&mu_);
    if (started_) return RunningError("Restore");
    return impl_.Restore(snapshot);
  }

 private:
  static absl::Status RunningError(const char* what) {
    return ResourceInUseError(
        absl::StrCat(what, ": the pipeline runs on its own thread (Start); Stop() it first"));
  }

  // Whether the caller is this driver's Start()ed thread (the sink calling back).
  bool OnOwnThread() const { return CurrentDriver() == this; }
  static const void*& CurrentDriver() {
    static thread_local const void* current = nullptr;
    return current;
  }

  void Run(PollOptions options) ABSL_LOCKS_EXCLUDED(mu_) {
    CurrentDriver() = this;
    while (true) {
      absl::Time look;
      {
        MutexLock<Mutex> lock(&mu_);
        if (stop_) return;
        // The next look is timed from before this one: a clock moved during the poll (a test
        // advancing a SimulatedClock) is not missed.
        look = clock_->Now();
        absl::StatusOr<size_t> n = impl_.Poll(options.max_batches);
        if (!n.ok()) {
          thread_status_ = n.status();
          ended_ = true;
          return;
        }
        if (impl_.last_batches() > 0) continue;  // more may be waiting: look again at once
      }
      clock_->WaitUntil(look + options.idle_time_between_polls, waker_);
    }
  }

  // Serialises Start and Stop (Stop joins outside mu_, which the thread needs).
  Mutex run_mu_;
  mutable Mutex mu_ ABSL_ACQUIRED_AFTER(run_mu_);
  Impl impl_ ABSL_GUARDED_BY(mu_);
  const std::shared_ptr<Clock> clock_;
  std::thread thread_ ABSL_GUARDED_BY(run_mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // the thread ended on an error
  absl::Status thread_status_ ABSL_GUARDED_BY(mu_);
  Waker waker_;  // the Start()ed thread's; Stop interrupts its wait
};

}  // namespace internal
}  // namespace rill

#endif  // RILL_PROCESS_INTERNAL_PIPELINE_DRIVER_H_
