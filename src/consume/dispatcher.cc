#include "rill/consume/dispatcher.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <vector>

#include "log/shard_log.h"
#include "rill/stream/stream.h"

namespace rill {

struct Dispatcher::State {
  DispatcherOptions options;
  struct Entry {
    std::unique_ptr<Subscription> subscription;
    EventCallback on_event;
    EndCallback on_end;
  };
  internal::Waker waker;  // registered with every subscription's shard
  mutable std::mutex mu;
  std::vector<Entry> pending;  // added by Subscribe, taken by the dispatching thread; guarded by mu
  std::vector<Entry> active;   // the dispatching thread's own
  size_t count = 0;            // pending + active; guarded by mu
  bool stop = false;           // guarded by mu

  ~State() {
    for (Entry& e : active) e.subscription->RemoveWaker(&waker);
    for (Entry& e : pending) e.subscription->RemoveWaker(&waker);
  }

  void TakePending() {
    std::lock_guard<std::mutex> lock(mu);
    for (Entry& e : pending) active.push_back(std::move(e));
    pending.clear();
  }
};

Dispatcher::Dispatcher(DispatcherOptions options) : state_(std::make_unique<State>()) {
  state_->options = options;
}

Dispatcher::~Dispatcher() = default;

void Dispatcher::Subscribe(std::unique_ptr<Subscription> subscription, EventCallback on_event,
                           EndCallback on_end) {
  subscription->AddWaker(&state_->waker);
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->pending.push_back({std::move(subscription), std::move(on_event), std::move(on_end)});
    ++state_->count;
  }
  state_->waker.Interrupt();
}

absl::Status Dispatcher::Subscribe(Stream& stream, std::string_view consumer_name, ShardId shard_id,
                                   const StartingPosition& position, EventCallback on_event,
                                   EndCallback on_end, const SubscribeOptions& options) {
  absl::StatusOr<std::unique_ptr<Subscription>> sub =
      stream.SubscribeToShard(consumer_name, shard_id, position, options);
  if (!sub.ok()) return sub.status();
  Subscribe(std::move(*sub), std::move(on_event), std::move(on_end));
  return absl::OkStatus();
}

size_t Dispatcher::RunOnce() {
  State& s = *state_;
  s.TakePending();
  size_t delivered = 0;
  for (size_t i = 0; i < s.active.size();) {
    State::Entry& e = s.active[i];
    absl::StatusOr<std::optional<SubscribeToShardEvent>> event = e.subscription->TryNext();
    if (event.ok() && event->has_value()) {
      ++delivered;
      if (e.on_event) e.on_event(**event);
    }
    if (event.ok() && e.subscription->active()) {
      ++i;
      continue;
    }
    // Ended: say why once, and let it go.
    State::Entry ended = std::move(e);
    s.active.erase(s.active.begin() + static_cast<ptrdiff_t>(i));
    ended.subscription->RemoveWaker(&s.waker);
    {
      std::lock_guard<std::mutex> lock(s.mu);
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
      std::lock_guard<std::mutex> lock(s.mu);
      if (s.stop) {
        s.stop = false;
        return;
      }
    }
    if (RunOnce() > 0) continue;
    // Nothing now: look again for a little while before sleeping.
    const auto spin_until =
        std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(s.options.spin);
    bool found = false;
    while (std::chrono::steady_clock::now() < spin_until) {
      if (RunOnce() > 0) {
        found = true;
        break;
      }
    }
    if (found) continue;
    // Nothing now: sleep until a watched shard gets a record, Subscribe or Stop interrupts, or a
    // while passes (throughput limits and heartbeats run on the stream's clock).
    s.waker.WaitUntil(
        [&] {
          std::lock_guard<std::mutex> lock(s.mu);
          return s.stop || !s.pending.empty();
        },
        std::chrono::steady_clock::now() + std::chrono::milliseconds(10));
  }
}

void Dispatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->waker.Interrupt();
}

size_t Dispatcher::size() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->count;
}

}  // namespace rill
