// Dispatcher: delivers the events of many subscriptions to callbacks, on a thread the application
// runs (Run()) or driven by hand (RunOnce()).
//
// Example:
//   rill::Dispatcher dispatcher;
//   auto sub = stream->SubscribeToShard("alerts", shard, rill::StartingPosition::Latest());
//   dispatcher.Subscribe(std::move(*sub), [](const rill::SubscribeToShardEvent& e) {
//     for (const rill::Record& r : e.records) Alert(r);
//   });
//   std::thread t([&] { dispatcher.Run(); });   // or call dispatcher.RunOnce() from your loop
//   ...
//   dispatcher.Stop();
//   t.join();
//
// A callback runs on the dispatching thread; a slow callback delays only this dispatcher's
// subscriptions, never producers or other dispatchers (the shard log is the buffer).
//
// Lifetimes: the dispatcher owns the subscriptions it is given; each borrows its stream, so every
// stream subscribed to must outlive the dispatcher.
//
// Thread safety: Subscribe, Stop and size may be called from any thread at any time; RunOnce and
// Run from one thread at a time. Callbacks may call Subscribe and Stop.
#ifndef RILL_CONSUME_DISPATCHER_H_
#define RILL_CONSUME_DISPATCHER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "rill/base/clock.h"
#include "rill/base/shard_id.h"
#include "rill/stream/shard_iterator.h"
#include "rill/stream/subscription.h"

namespace rill {

class StreamApi;

struct DispatcherOptions {
  // Real time Run() keeps looking for events before it sleeps: trades CPU for wake-up latency
  // (a sleeping dispatcher is woken by the append, which costs a few microseconds more). Real
  // time on purpose: a spin only looks again sooner and changes no outcome. Default: 50 us. Zero
  // sleeps at once.
  absl::Duration spin = absl::Microseconds(50);
  // The clock Run() sleeps on: give it the clock of the streams whose subscriptions it
  // dispatches (StreamOptions::clock). Appends, Subscribe and Stop wake Run() at once; besides,
  // it looks again every 10 ms of this clock, because heartbeats, lifetimes and read throughput
  // are judged on the streams' clock and no append announces them. With a SimulatedClock, Run()
  // never wakes on real time: those looks happen as the test advances the clock
  // (Clock::WaitUntil). Null means the system clock. Default: SystemClock::Default().
  std::shared_ptr<Clock> clock = SystemClock::Default();
};

class Dispatcher {
 public:
  using EventCallback = std::function<void(const SubscribeToShardEvent& event)>;
  // Called once when a subscription ends: OK for a clean end (its lifetime passed, the shard's
  // end was delivered, it was cancelled), else why (kResourceInUse: taken over;
  // kResourceNotFound: the consumer was deregistered).
  using EndCallback = std::function<void(const Subscription& subscription, absl::Status status)>;

  // A plain constructor rather than a Create(): a dispatcher borrows nothing until Subscribe, and
  // setting one up cannot fail.
  explicit Dispatcher(DispatcherOptions options = {});
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Adds a subscription; its events go to `on_event`, its end to `on_end` (optional).
  void Subscribe(std::unique_ptr<Subscription> subscription, EventCallback on_event,
                 EndCallback on_end = {});

  // Subscribes `consumer_name` to `shard_id` of `stream` (Stream::SubscribeToShard, with its
  // errors) and adds the subscription as above. The stream is borrowed: it must outlive the
  // dispatcher.
  [[nodiscard]] absl::Status Subscribe(StreamApi& stream, std::string_view consumer_name,
                                       ShardId shard_id, const StartingPosition& position,
                                       EventCallback on_event, EndCallback on_end = {},
                                       const SubscribeOptions& options = {});

  // Delivers every event available now, without waiting: each subscription's events until it has
  // none ready (a burst of more than max_records_per_event records takes several), at most 64
  // per subscription per call. Returns the number of events.
  size_t RunOnce();

  // Delivers events as they come until Stop(); sleeps while there are none (woken by appends,
  // Subscribe and Stop; see DispatcherOptions::clock).
  void Run();

  // Makes Run() return (now, or as soon as it starts if it has not yet).
  void Stop();

  // Subscriptions still delivering.
  size_t size() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace rill

#endif  // RILL_CONSUME_DISPATCHER_H_
