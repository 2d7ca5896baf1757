#include "rill/consume/dispatcher.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/spin.h"
#include "rill/base/clock.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"
#include "rill/stream/stream_api.h"

namespace rill {
namespace {

using internal::Mutex;
using internal::MutexLock;

// How often a sleeping Run() looks again without being woken, on the dispatcher's clock:
// throughput refills, heartbeats and lifetimes are judged on the streams' clocks, and no append
// announces them.
constexpr absl::Duration kLookInterval = absl::Milliseconds(10);

}  // namespace

struct Dispatcher::State {
  explicit State(DispatcherOptions o)
      : options(std::move(o)), clock(options.clock ? options.clock : SystemClock::Default()) {}

  const DispatcherOptions options;
  const std::shared_ptr<Clock> clock;
  struct Entry {
    std::unique_ptr<Subscription> subscription;
    EventCallback on_event;
    EndCallback on_end;
  };
  internal::Waker waker;  // registered with every subscription's shard
  mutable Mutex mu;
  // Added by Subscribe, taken by the dispatching thread.
  std::vector<Entry> pending ABSL_GUARDED_BY(mu);
  std::vector<Entry> active;             // the dispatching thread's own
  size_t count ABSL_GUARDED_BY(mu) = 0;  // pending + active
  bool stop ABSL_GUARDED_BY(mu) = false;

  ~State() {
    for (Entry& e : active) e.subscription->RemoveWaker(&waker);
    for (Entry& e : pending) e.subscription->RemoveWaker(&waker);
  }

  void TakePending() ABSL_LOCKS_EXCLUDED(mu) {
    MutexLock<Mutex> lock(&mu);
    for (Entry& e : pending) active.push_back(std::move(e));
    pending.clear();
  }
};

Dispatcher::Dispatcher(DispatcherOptions options)
    : state_(std::make_unique<State>(std::move(options))) {}

Dispatcher::~Dispatcher() = default;

void Dispatcher::Subscribe(std::unique_ptr<Subscription> subscription, EventCallback on_event,
                           EndCallback on_end) {
  subscription->AddWaker(&state_->waker);
  {
    MutexLock<Mutex> lock(&state_->mu);
    state_->pending.push_back({std::move(subscription), std::move(on_event), std::move(on_end)});
    ++state_->count;
  }
  state_->waker.Interrupt();
}

absl::Status Dispatcher::Subscribe(StreamApi& stream, std::string_view consumer_name,
                                   ShardId shard_id, const StartingPosition& position,
                                   EventCallback on_event, EndCallback on_end,
                                   const SubscribeOptions& options) {
  absl::StatusOr<std::unique_ptr<Subscription>> sub =
      stream.SubscribeToShard(consumer_name, shard_id, position, options);
  if (!sub.ok()) return sub.status();
  Subscribe(std::move(*sub), std::move(on_event), std::move(on_end));
  return absl::OkStatus();
}

namespace {
constexpr int kMaxEventsPerRun = 64;
}  // namespace

size_t Dispatcher::RunOnce() {
  State& s = *state_;
  s.TakePending();
  size_t delivered = 0;
  for (size_t i = 0; i < s.active.size();) {
    State::Entry& e = s.active[i];
    // Every event ready now: an event holds at most max_records_per_event records, so a burst
    // takes several. At most kMaxEventsPerRun per subscription, so that records appended faster
    // than the callbacks take them cannot keep the call from returning.
    absl::StatusOr<std::optional<SubscribeToShardEvent>> event;
    for (int n = 0; n < kMaxEventsPerRun; ++n) {
      event = e.subscription->TryNext();
      if (!event.ok() || !event->has_value()) break;
      ++delivered;
      if (e.on_event) e.on_event(**event);
      if (!e.subscription->active()) break;
    }
    if (event.ok() && e.subscription->active()) {
      ++i;
      continue;
    }
    // Ended: say why once, and let it go. An end seen only through active() may have come after
    // the look: look once more, which reports a takeover or a deregistration as the error it is.
    if (event.ok()) event = e.subscription->TryNext();
    State::Entry ended = std::move(e);
    s.active.erase(s.active.begin() + static_cast<ptrdiff_t>(i));
    ended.subscription->RemoveWaker(&s.waker);
    {
      MutexLock<Mutex> lock(&s.mu);
      --s.count;
    }
    if (ended.on_end)
      ended.on_end(*ended.subscription, event.ok() ? absl::OkStatus() : event.status());
  }
  return delivered;
}

void Dispatcher::Run() {
  State& s = *state_;
  for (;;) {
    {
      MutexLock<Mutex> lock(&s.mu);
      if (s.stop) {
        s.stop = false;
        return;
      }
    }
    // Read before the look: the next look is due kLookInterval after this one, so a clock moved
    // on during the look (a test advancing a SimulatedClock) brings it at once.
    const absl::Time looked = s.clock->Now();
    if (RunOnce() > 0) continue;
    // Nothing now: look again for a little while before sleeping.
    if (internal::SpinFor(s.options.spin, [this] { return RunOnce() > 0; })) continue;
    // Sleep until a watched shard gets a record, Subscribe or Stop interrupts (the waker is
    // pending then, even if they came before the wait), or the next look is due on the clock.
    s.clock->WaitUntil(looked + kLookInterval, s.waker);
  }
}

void Dispatcher::Stop() {
  {
    MutexLock<Mutex> lock(&state_->mu);
    state_->stop = true;
  }
  state_->waker.Interrupt();
}

size_t Dispatcher::size() const {
  MutexLock<Mutex> lock(&state_->mu);
  return state_->count;
}

}  // namespace rill
