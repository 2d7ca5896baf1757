// Pipelines that are pleasant to hold: Poll(timeout), Start()/Stop(), AnyPipeline, several
// aggregates per window, the caught-up signal of stream sources, TopN. Everything runs on a
// SimulatedClock: nothing sleeps in real time, and a Start()ed thread is synchronised with by
// waiting on what its sink received.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/process/aggregators.h"
#include "rill/process/pipeline.h"
#include "rill/process/sink.h"
#include "rill/process/source.h"
#include "rill/stream/record.h"
#include "rill/stream/stream.h"

namespace rill {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000 / 300 * 300);

absl::Time At(int64_t seconds) { return kT0 + absl::Seconds(seconds); }

struct Order {
  std::string region;
  int64_t cents = 0;
  absl::Time time;
};

template <typename P>
P Built(absl::StatusOr<P> p) {
  REQUIRE(p.status() == absl::OkStatus());
  return *std::move(p);
}

// A sink another thread can wait on: it keeps what it got, under a lock.
template <typename R>
class WaitableSink {
 public:
  struct Shared {
    internal::Mutex mu;
    internal::CondVar cv;
    std::vector<R> got ABSL_GUARDED_BY(mu);
    absl::Status fail_with ABSL_GUARDED_BY(mu);
  };
  explicit WaitableSink(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  absl::Status operator()(const R& r) {
    internal::MutexLock<internal::Mutex> lock(&shared_->mu);
    shared_->got.push_back(r);
    shared_->cv.SignalAll();
    return shared_->fail_with;
  }

 private:
  std::shared_ptr<Shared> shared_;
};

// Blocks until the sink has `n` results (no timeout: a missing result fails the test by the
// test runner's timeout, never by a race), and returns them.
template <typename Shared>
auto WaitForResults(Shared& shared, size_t n) {
  internal::MutexLock<internal::Mutex> lock(&shared.mu);
  while (shared.got.size() < n) shared.cv.Wait(&shared.mu);
  return shared.got;
}

using CountResult = WindowResult<std::string, uint64_t>;

// (key, start s, end s, value) rows.
std::vector<std::tuple<std::string, int64_t, int64_t, uint64_t>> Rows(
    const std::vector<CountResult>& results) {
  std::vector<std::tuple<std::string, int64_t, int64_t, uint64_t>> rows;
  for (const CountResult& r : results) {
    rows.emplace_back(r.key, absl::ToInt64Seconds(r.start - kT0), absl::ToInt64Seconds(r.end - kT0),
                      r.value);
  }
  return rows;
}

std::unique_ptr<VectorSource<Order>> Orders(
    const std::vector<std::pair<std::string, int64_t>>& in) {
  auto source = std::make_unique<VectorSource<Order>>(2);
  for (const auto& [region, t] : in) source->Add(Order{region, t * 10, At(t)}, At(t));
  return source;
}

template <typename Sink>
auto CountsByRegion(std::unique_ptr<Source<Order>> source, std::shared_ptr<Clock> clock,
                    Sink sink) {
  return Pipeline<Order>::From(std::move(source), std::move(clock))
      .KeyBy([](const Order& o) { return o.region; })
      .Window(TumblingWindow(absl::Seconds(10)))
      .EventTime([](const Order& o) { return o.time; })
      .Watermark({.max_out_of_orderness = absl::Seconds(5), .idle_timeout = absl::Seconds(30)})
      .Aggregate(Count())
      .To(std::move(sink));
}

// --- Poll(timeout) ---

TEST_CASE(
    "Poll with a timeout returns at once with input and waits out idle time in simulated "
    "time",
    "[pipeline][running]") {
  auto clock = std::make_shared<SimulatedClock>(At(0));
  std::vector<CountResult> results;
  auto p = Built(CountsByRegion(Orders({{"eu", 1}, {"us", 3}, {"eu", 12}, {"eu", 16}}), clock,
                                ToVector(&results)));
  absl::StatusOr<size_t> n = p.Poll(absl::Seconds(5));
  REQUIRE(n.ok());
  CHECK(*n == 4);
  CHECK(clock->Now() == At(0));  // input came at once: no wait
  // The watermark is 16 - 5 = 11: [0,10) closed.
  CHECK(Rows(results) == decltype(Rows(results)){{"eu", 0, 10, 1}, {"us", 0, 10, 1}});

  // Nothing more comes: the whole timeout passes on the clock, none of it in real time, and
  // once the source is idle (30 s) the watermark follows the clock and closes [10,20).
  n = p.Poll(absl::Seconds(29));
  REQUIRE(n.ok());
  CHECK(*n == 0);
  CHECK(clock->Now() == At(29));
  CHECK(results.size() == 2);
  n = p.Poll(absl::Seconds(2), PollOptions{.idle_time_between_polls = absl::Milliseconds(500)});
  REQUIRE(n.ok());
  CHECK(*n == 0);
  CHECK(clock->Now() == At(31));
  CHECK(Rows(results).back() == std::make_tuple(std::string("eu"), 10, 20, 2));

  // A zero or negative timeout looks once.
  REQUIRE(p.Poll(absl::ZeroDuration()).ok());
  REQUIRE(p.Poll(-absl::Seconds(1)).ok());
  CHECK(clock->Now() == At(31));
}

TEST_CASE("Poll and Start report bad poll options naming them", "[pipeline][running]") {
  std::vector<CountResult> results;
  auto p = Built(
      CountsByRegion(Orders({}), std::make_shared<SimulatedClock>(At(0)), ToVector(&results)));
  absl::StatusOr<size_t> n = p.Poll(absl::Seconds(1), PollOptions{.max_batches = 0});
  CHECK(GetErrorCode(n.status()) == ErrorCode::kInvalidArgument);
  CHECK(n.status().message() == "Poll: max_batches must be >= 1; got 0");
  absl::Status s = p.Start(PollOptions{.idle_time_between_polls = absl::ZeroDuration()});
  CHECK(GetErrorCode(s) == ErrorCode::kInvalidArgument);
  CHECK(s.message() == "Start: idle_time_between_polls must be positive and finite; got 0");
  CHECK(!p.running());
}

// --- Start() / Stop() ---

TEST_CASE("a Start()ed pipeline runs on its own thread and closes windows as the clock moves",
          "[pipeline][running]") {
  auto clock = std::make_shared<SimulatedClock>(At(0));
  auto shared = std::make_shared<WaitableSink<CountResult>::Shared>();
  auto p = Built(CountsByRegion(
      Orders({{"eu", 1}, {"us", 3}, {"eu", 0}, {"eu", 9}, {"us", 12}, {"eu", 11}, {"eu", 25}}),
      clock, WaitableSink<CountResult>(shared)));
  REQUIRE(p.Start().ok());
  CHECK(p.running());
  // Poll, Restore and a second Start are refused while the thread runs.
  CHECK(GetErrorCode(p.Poll().status()) == ErrorCode::kResourceInUse);
  CHECK(GetErrorCode(p.Poll(absl::Seconds(1)).status()) == ErrorCode::kResourceInUse);
  CHECK(GetErrorCode(p.Restore("x")) == ErrorCode::kResourceInUse);
  CHECK(GetErrorCode(p.Start()) == ErrorCode::kResourceInUse);

  // The watermark reaches 25 - 5 = 20 from the input alone: four results.
  std::vector<CountResult> got = WaitForResults(*shared, 4);
  CHECK(Rows(got) == decltype(Rows(got)){
                         {"eu", 0, 10, 3}, {"us", 0, 10, 1}, {"eu", 10, 20, 1}, {"us", 10, 20, 1}});
  // Snapshot and the counters work from this thread while the pipeline's runs.
  CHECK(p.records_in() == 7);
  CHECK(!p.Snapshot().empty());
  // The source goes idle after 30 s of the clock; the thread looks again once the clock has
  // moved, and the watermark follows the clock: the last window closes.
  clock->Advance(absl::Seconds(60));
  got = WaitForResults(*shared, 5);
  CHECK(Rows(got).back() == std::make_tuple(std::string("eu"), 20, 30, 1));
  CHECK(p.Stop().ok());
  CHECK(!p.running());
  CHECK(p.results_out() == 5);
  // Stopped, it is driven by hand again; a second Stop is a no-op.
  CHECK(p.Stop().ok());
  REQUIRE(p.Poll().ok());
  REQUIRE(p.Finish().ok());
}

TEST_CASE("a Start()ed pipeline may move and its destructor stops the thread",
          "[pipeline][running]") {
  auto clock = std::make_shared<SimulatedClock>(At(0));
  auto shared = std::make_shared<WaitableSink<CountResult>::Shared>();
  {
    auto p = Built(
        CountsByRegion(Orders({{"eu", 1}, {"eu", 30}}), clock, WaitableSink<CountResult>(shared)));
    REQUIRE(p.Start().ok());
    auto moved = std::move(p);  // the thread points at state on the heap, not at `p`
    CHECK(moved.running());
    CHECK(WaitForResults(*shared, 1).size() == 1);
  }  // joined here
  internal::MutexLock<internal::Mutex> lock(&shared->mu);
  CHECK(shared->got.size() == 1);
}

TEST_CASE("a sink error ends the Start()ed thread and Stop returns it", "[pipeline][running]") {
  auto shared = std::make_shared<WaitableSink<CountResult>::Shared>();
  {
    internal::MutexLock<internal::Mutex> lock(&shared->mu);
    shared->fail_with = ResourceNotFoundError("the dashboard is gone");
  }
  auto p = Built(CountsByRegion(Orders({{"eu", 1}, {"us", 3}, {"eu", 30}}),
                                std::make_shared<SimulatedClock>(At(0)),
                                WaitableSink<CountResult>(shared)));
  REQUIRE(p.Start().ok());
  CHECK(WaitForResults(*shared, 1).size() == 1);
  absl::Status stopped = p.Stop();
  CHECK(GetErrorCode(stopped) == ErrorCode::kResourceNotFound);
  CHECK(stopped.message() == "the dashboard is gone");
  {
    internal::MutexLock<internal::Mutex> lock(&shared->mu);
    CHECK(shared->got.size() == 1);  // nothing more after the error
  }
  CHECK(GetErrorCode(p.Finish()) == ErrorCode::kResourceNotFound);
}

TEST_CASE("Stop from the sink on the pipeline's own thread is refused, not a deadlock",
          "[pipeline][running]") {
  std::optional<absl::Status> from_sink;
  AnyPipeline* self = nullptr;
  auto shared = std::make_shared<WaitableSink<CountResult>::Shared>();
  WaitableSink<CountResult> wait(shared);
  AnyPipeline p =
      Built(CountsByRegion(Orders({{"eu", 1}, {"eu", 30}}), std::make_shared<SimulatedClock>(At(0)),
                           [&](const CountResult& r) {
                             if (!from_sink) from_sink = self->Stop();
                             return wait(r);
                           }));
  self = &p;
  REQUIRE(p.Start().ok());
  WaitForResults(*shared, 1);
  REQUIRE(p.Stop().ok());
  REQUIRE(from_sink.has_value());
  CHECK(GetErrorCode(*from_sink) == ErrorCode::kResourceInUse);
}

// --- AnyPipeline ---

// An application class holding a pipeline without naming its type.
class RegionCounter {
 public:
  static absl::StatusOr<std::unique_ptr<RegionCounter>> Create(
      std::unique_ptr<Source<Order>> source, std::shared_ptr<Clock> clock) {
    auto counter = std::unique_ptr<RegionCounter>(new RegionCounter());
    absl::StatusOr<AnyPipeline> p =
        CountsByRegion(std::move(source), std::move(clock), ToVector(&counter->results_));
    if (!p.ok()) return p.status();
    counter->pipeline_ = *std::move(p);
    return counter;
  }
  AnyPipeline& pipeline() { return pipeline_; }
  const std::vector<CountResult>& results() const { return results_; }

 private:
  RegionCounter() = default;
  std::vector<CountResult> results_;
  AnyPipeline pipeline_;  // declared last: destroyed (and stopped) before results_
};

TEST_CASE("an AnyPipeline holds a windowed or a record pipeline as a class member",
          "[pipeline][any]") {
  auto clock = std::make_shared<SimulatedClock>(At(0));
  auto counter = RegionCounter::Create(Orders({{"eu", 1}, {"us", 3}, {"eu", 12}}), clock);
  REQUIRE(counter.ok());
  AnyPipeline& p = (*counter)->pipeline();
  CHECK(static_cast<bool>(p));
  REQUIRE(p.Poll().ok());
  CHECK(p.records_in() == 3);
  CHECK(p.watermark() == At(7));
  CHECK(p.caught_up());
  const std::string snapshot = p.Snapshot();
  REQUIRE(p.Finish().ok());
  CHECK(Rows((*counter)->results()) == decltype(Rows((*counter)->results())){
                                           {"eu", 0, 10, 1}, {"us", 0, 10, 1}, {"eu", 10, 20, 1}});
  CHECK(p.results_out() == 3);
  CHECK(p.late_records() == 0);

  // Restore through the handle.
  auto again = RegionCounter::Create(Orders({{"eu", 1}, {"us", 3}, {"eu", 12}}), clock);
  REQUIRE(again.ok());
  REQUIRE((*again)->pipeline().Restore(snapshot).ok());
  REQUIRE((*again)->pipeline().Finish().ok());
  CHECK((*again)->results() == (*counter)->results());

  // A record pipeline; bad input to the builder still comes back as a status.
  std::vector<std::string> regions;
  absl::StatusOr<AnyPipeline> records = Pipeline<Order>::From(Orders({{"eu", 1}, {"us", 2}}))
                                            .Map([](const Order& o) { return o.region; })
                                            .To(ToVector(&regions));
  REQUIRE(records.ok());
  REQUIRE(records->Finish().ok());
  CHECK(regions == std::vector<std::string>{"eu", "us"});
  CHECK(records->watermark() == absl::InfinitePast());
  absl::StatusOr<AnyPipeline> bad = Pipeline<Order>::From(nullptr)
                                        .Map([](const Order& o) { return o.region; })
                                        .To(ToVector(&regions));
  CHECK(bad.status().message() == "From: the source is null");
}

TEST_CASE("an empty AnyPipeline reports an error and never crashes", "[pipeline][any]") {
  AnyPipeline p;
  CHECK(!p);
  CHECK(GetErrorCode(p.Poll().status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(p.Poll(absl::Seconds(1)).status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(p.Start()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(p.Finish()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(p.Commit()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(p.Restore("")) == ErrorCode::kInvalidArgument);
  CHECK(p.Stop().ok());
  CHECK(p.Snapshot().empty());
  CHECK(!p.running());
  CHECK(!p.caught_up());
  CHECK(p.records_in() == 0);
}

// --- Several aggregates per window ---

using Stats = std::tuple<uint64_t, int64_t, std::optional<int64_t>, std::optional<int64_t>>;
using StatsResult = WindowResult<std::string, Stats>;

template <typename Sink>
auto StatsByRegion(std::unique_ptr<Source<Order>> source, Sink sink) {
  return Pipeline<Order>::From(std::move(source), std::make_shared<SimulatedClock>(At(0)))
      .KeyBy([](const Order& o) { return o.region; })
      .Window(HoppingWindow(absl::Seconds(20), absl::Seconds(10)))
      .EventTime([](const Order& o) { return o.time; })
      .Watermark({.max_out_of_orderness = absl::Seconds(3), .idle_timeout = absl::Seconds(30)})
      .Aggregate(Aggregates(Count(), Sum<int64_t>(), Min<int64_t>(), Max<int64_t>()),
                 [](const Order& o) { return o.cents; })
      .To(std::move(sink));
}

// A pseudo-random but fixed input: (region, time s, cents), out of order by up to 3 s.
std::vector<Order> MixedOrders() {
  std::vector<Order> orders;
  uint64_t x = 12345;
  for (int i = 0; i < 300; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const int64_t t = i / 3 - static_cast<int64_t>((x >> 33) % 3);
    orders.push_back(Order{std::string(1, static_cast<char>('a' + (x >> 40) % 4)),
                           static_cast<int64_t>((x >> 20) % 2001) - 1000,
                           At(std::max<int64_t>(t, 0))});
  }
  return orders;
}

std::unique_ptr<VectorSource<Order>> SourceOf(const std::vector<Order>& orders) {
  auto source = std::make_unique<VectorSource<Order>>(7);
  for (const Order& o : orders) source->Add(o, o.time);
  return source;
}

TEST_CASE("one pipeline gives the count sum min and max of each window as brute force does",
          "[pipeline][aggregates]") {
  const std::vector<Order> orders = MixedOrders();
  std::vector<StatsResult> results;
  auto p = Built(StatsByRegion(SourceOf(orders), ToVector(&results)));
  REQUIRE(p.Finish().ok());
  CHECK(p.late_records() == 0);

  // Brute force: every hopping window [10k, 10k + 20) of every region.
  std::map<std::pair<std::string, int64_t>, Stats> expected;
  for (const Order& o : orders) {
    const int64_t t = absl::ToInt64Seconds(o.time - kT0);
    for (int64_t start = (t / 10) * 10 - 10; start <= t; start += 10) {
      if (start < 0 && start + 20 <= 0) continue;
      if (t < start || t >= start + 20) continue;
      Stats& s = expected[{o.region, start}];
      auto& [count, sum, min, max] = s;
      ++count;
      sum += o.cents;
      min = min ? std::min(*min, o.cents) : o.cents;
      max = max ? std::max(*max, o.cents) : o.cents;
    }
  }
  std::map<std::pair<std::string, int64_t>, Stats> got;
  for (const StatsResult& r : results) {
    CHECK(r.end - r.start == absl::Seconds(20));
    CHECK(!r.is_update);
    CHECK(got.emplace(std::make_pair(r.key, absl::ToInt64Seconds(r.start - kT0)), r.value).second);
  }
  CHECK(got == expected);
  CHECK(got.size() > 20);
  auto [count, sum, min, max] = results.front().value;
  CHECK(count >= 1);
  CHECK(*min <= *max);
  CHECK(sum <= static_cast<int64_t>(count) * *max);
}

TEST_CASE(
    "a multi-aggregate pipeline restored from a snapshot emits what an uninterrupted one "
    "does",
    "[pipeline][aggregates][snapshot]") {
  const std::vector<Order> orders = MixedOrders();
  std::vector<StatsResult> all;
  auto reference = Built(StatsByRegion(SourceOf(orders), ToVector(&all)));
  REQUIRE(reference.Finish().ok());

  for (int polls : {1, 5, 17}) {
    std::vector<StatsResult> before, after;
    auto p = Built(StatsByRegion(SourceOf(orders), ToVector(&before)));
    for (int i = 0; i < polls; ++i) REQUIRE(p.Poll(1).ok());
    const std::string snapshot = p.Snapshot();
    auto q = Built(StatsByRegion(SourceOf(orders), ToVector(&after)));
    REQUIRE(q.Restore(snapshot).ok());
    REQUIRE(q.Finish().ok());
    before.insert(before.end(), after.begin(), after.end());
    CHECK(before == all);
  }

  // A single-aggregate pipeline's snapshot does not restore into a multi-aggregate one.
  std::vector<CountResult> counts;
  auto single = Built(
      Pipeline<Order>::From(SourceOf(orders), std::make_shared<SimulatedClock>(At(0)))
          .KeyBy([](const Order& o) { return o.region; })
          .Window(HoppingWindow(absl::Seconds(20), absl::Seconds(10)))
          .EventTime([](const Order& o) { return o.time; })
          .Watermark({.max_out_of_orderness = absl::Seconds(3), .idle_timeout = absl::Seconds(30)})
          .Aggregate(Count())
          .To(ToVector(&counts)));
  REQUIRE(single.Poll(3).ok());
  std::vector<StatsResult> unused;
  auto multi = Built(StatsByRegion(SourceOf(orders), ToVector(&unused)));
  CHECK(GetErrorCode(multi.Restore(single.Snapshot())) == ErrorCode::kInvalidArgument);
}

// --- The caught-up signal of stream sources ---

struct OrderStream {
  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>(At(0));
  std::unique_ptr<Stream> stream;
  int64_t put_cents = 0;  // the sum of every order put

  OrderStream() {
    StreamOptions options;
    options.name = "orders";
    options.shard_count = 2;
    options.clock = clock;
    stream = std::move(*Stream::Create(options));
  }
  // "region,cents" records, one per 100 ms of simulated time.
  void Put(int n) {
    for (int i = 0; i < n; ++i) {
      clock->Advance(absl::Milliseconds(100));
      const int64_t cents = (i * 37) % 101;
      put_cents += cents;
      REQUIRE(stream
                  ->PutRecord("customer-" + std::to_string(i % 11),
                              absl::StrCat(i % 2 == 0 ? "eu" : "us", ",", cents))
                  .ok());
    }
  }
};

std::optional<Order> ParseOrder(const Record& r) {
  const std::string data(r.data.data(), r.data.size());
  const size_t comma = data.find(',');
  Order o;
  if (comma == std::string::npos || !absl::SimpleAtoi(data.substr(comma + 1), &o.cents)) {
    return std::nullopt;
  }
  o.region = data.substr(0, comma);
  return o;
}

using SumResult = WindowResult<std::string, int64_t>;

template <typename SourcePtr>
auto SumsByRegion(SourcePtr source, std::shared_ptr<Clock> clock, std::vector<SumResult>* results) {
  return Built(Pipeline<Order>::From(std::move(source), std::move(clock))
                   .KeyBy([](const Order& o) { return o.region; })
                   .Window(TumblingWindow(absl::Minutes(10)))
                   .Aggregate(Sum<int64_t>(), [](const Order& o) { return o.cents; })
                   .To(ToVector(results)));
}

int64_t Total(const std::vector<SumResult>& results) {
  int64_t total = 0;
  for (const SumResult& r : results) total += r.value;
  return total;
}

TEST_CASE("a subscription source is caught up once it has read every shard to its end",
          "[pipeline][caught_up]") {
  OrderStream s;
  REQUIRE(s.stream->RegisterStreamConsumer("totals").ok());
  s.Put(300);
  StreamSubscriberOptions options;
  options.consumer_name = "totals";
  options.initial_position = StartingPosition::TrimHorizon();
  options.subscribe.max_records_per_event = 20;  // several events per shard
  std::vector<SumResult> results;
  auto p = SumsByRegion(FromSubscription<Order>(*s.stream, options, ParseOrder), s.clock, &results);
  CHECK(!p.caught_up());
  int polls = 0;
  while (!p.caught_up()) {
    REQUIRE(polls++ < 100);
    REQUIRE(p.Poll(1).ok());
  }
  CHECK(polls > 2);
  CHECK(p.records_in() == 300);  // caught up means everything put so far was read
  REQUIRE(p.Finish().ok());
  CHECK(Total(results) == s.put_cents);
}

TEST_CASE("a new consumer-group worker is caught up only once it holds leases and read to the end",
          "[pipeline][caught_up]") {
  OrderStream s;
  s.Put(400);
  InMemoryCheckpointStore store;
  ConsumerGroupOptions go;
  go.application_name = "totals";
  go.initial_position = StartingPosition::TrimHorizon();
  go.max_records = 50;
  auto group = ConsumerGroup::Create(*s.stream, store, go);
  REQUIRE(group.ok());
  {
    // The first worker takes every lease, reads a little and crashes without a checkpoint.
    std::vector<SumResult> ignored;
    auto first =
        SumsByRegion(FromConsumerGroup<Order>(**group, "w1", ParseOrder), s.clock, &ignored);
    REQUIRE(first.Poll(1).ok());
    CHECK(!first.caught_up());
  }
  std::vector<SumResult> results;
  auto p = SumsByRegion(FromConsumerGroup<Order>(**group, "w2", ParseOrder), s.clock, &results);
  REQUIRE(p.Poll().ok());
  // w1's leases have not expired: w2 steals one of them (the group balances), reads that shard
  // to its end, but the other shard is not read yet. That is not caught up.
  CHECK(p.records_in() < 400);
  CHECK(!p.caught_up());
  int seconds = 0;
  while (!p.caught_up()) {
    REQUIRE(seconds++ < 120);
    s.clock->Advance(absl::Seconds(1));
    REQUIRE(p.Poll().ok());
  }
  CHECK(seconds > 10);           // not before the failover time
  CHECK(p.records_in() == 400);  // nothing was checkpointed: w2 read everything
  REQUIRE(p.Finish().ok());
  CHECK(Total(results) == s.put_cents);
  // New records: the next poll reads them, and the source is caught up again after it.
  s.Put(10);
  REQUIRE(p.Poll().ok());
  CHECK(p.records_in() == 410);
  REQUIRE(p.Poll().ok());
  CHECK(p.caught_up());
}

// --- Top N keys by an aggregate per window ---

using Top = TopNResult<std::string, int64_t>;

template <typename Sink>
auto TopSpenders(std::unique_ptr<Source<Order>> source, size_t n, Sink sink) {
  return Pipeline<Order>::From(std::move(source), std::make_shared<SimulatedClock>(At(0)))
      .KeyBy([](const Order& o) { return o.region; })
      .Window(TumblingWindow(absl::Seconds(10)))
      .EventTime([](const Order& o) { return o.time; })
      .Watermark({.max_out_of_orderness = absl::Seconds(3), .idle_timeout = absl::Seconds(30)})
      .Aggregate(Sum<int64_t>(), [](const Order& o) { return o.cents; })
      .TopN(n)
      .To(std::move(sink));
}

TEST_CASE("TopN gives each window's keys with the largest sums as brute force does",
          "[pipeline][topn]") {
  const std::vector<Order> orders = MixedOrders();
  for (size_t n : {1, 2, 3, 10}) {
    std::vector<Top> results;
    auto p = Built(TopSpenders(SourceOf(orders), n, ToVector(&results)));
    REQUIRE(p.Finish().ok());
    // Brute force: sums per window and region, sorted by sum descending, then region.
    std::map<int64_t, std::map<std::string, int64_t>> sums;
    for (const Order& o : orders)
      sums[absl::ToInt64Seconds(o.time - kT0) / 10 * 10][o.region] += o.cents;
    std::vector<Top> expected;
    for (const auto& [start, by_region] : sums) {
      std::vector<std::pair<std::string, int64_t>> ranked(by_region.begin(), by_region.end());
      std::stable_sort(ranked.begin(), ranked.end(),
                       [](const auto& a, const auto& b) { return a.second > b.second; });
      if (ranked.size() > n) ranked.resize(n);
      expected.push_back(Top{At(start), At(start + 10), ranked});
    }
    CHECK(results == expected);
    CHECK(p.results_out() == expected.size());
  }
}

TEST_CASE("TopN ranks by a part of a multi-aggregate and ties keep key order", "[pipeline][topn]") {
  auto source = std::make_unique<VectorSource<Order>>();
  // Window [0,10): c spends 50 in one order, a and b 30 each in two; d 5.
  for (auto [region, cents] : std::vector<std::pair<std::string, int64_t>>{
           {"b", 10}, {"a", 10}, {"c", 50}, {"a", 20}, {"b", 20}, {"d", 5}}) {
    source->Add(Order{region, cents, At(1)}, At(1));
  }
  using Result = TopNResult<std::string, std::tuple<uint64_t, int64_t>>;
  std::vector<Result> results;
  auto p = Built(
      Pipeline<Order>::From(std::move(source), std::make_shared<SimulatedClock>(At(0)))
          .KeyBy([](const Order& o) { return o.region; })
          .Window(TumblingWindow(absl::Seconds(10)))
          .Aggregate(Aggregates(Count(), Sum<int64_t>()), [](const Order& o) { return o.cents; })
          .TopN(3, [](const auto& r) { return std::get<1>(r); })
          .To(ToVector(&results)));
  REQUIRE(p.Finish().ok());
  REQUIRE(results.size() == 1);
  CHECK(results[0].top == std::vector<std::pair<std::string, std::tuple<uint64_t, int64_t>>>{
                              {"c", {1, 50}}, {"a", {2, 30}}, {"b", {2, 30}}});
}

TEST_CASE("TopN resumes from a snapshot and reports what it cannot rank", "[pipeline][topn]") {
  const std::vector<Order> orders = MixedOrders();
  std::vector<Top> all;
  auto reference = Built(TopSpenders(SourceOf(orders), 2, ToVector(&all)));
  REQUIRE(reference.Finish().ok());
  std::vector<Top> before, after;
  auto p = Built(TopSpenders(SourceOf(orders), 2, ToVector(&before)));
  for (int i = 0; i < 9; ++i) REQUIRE(p.Poll(1).ok());
  CHECK(!before.empty());
  auto q = Built(TopSpenders(SourceOf(orders), 2, ToVector(&after)));
  REQUIRE(q.Restore(p.Snapshot()).ok());
  REQUIRE(q.Finish().ok());
  before.insert(before.end(), after.begin(), after.end());
  CHECK(before == all);

  std::vector<Top> unused;
  auto zero = TopSpenders(SourceOf(orders), 0, ToVector(&unused));
  CHECK(zero.status().message() == "TopN: n must be >= 1; got 0");
  auto late = Pipeline<Order>::From(SourceOf(orders))
                  .KeyBy([](const Order& o) { return o.region; })
                  .Window(TumblingWindow(absl::Seconds(10)))
                  .AllowedLateness(absl::Seconds(5))
                  .Aggregate(Count())
                  .TopN(1)
                  .To([](const TopNResult<std::string, uint64_t>&) {});
  CHECK(GetErrorCode(late.status()) == ErrorCode::kInvalidArgument);
  CHECK(late.status().message() ==
        "TopN: ranks complete windows, so it needs Emit(kOnClose) and no AllowedLateness; got "
        "allowed lateness 5s");
}

// --- Compile-time checks ---

// What Aggregate static_asserts (each with its own message; the pipeline is then not built).
static_assert(internal::AggregateFits<CountAggregator, std::identity, Order>());
static_assert(!internal::AggregateFits<SumAggregator<int64_t>, std::identity, Order>());
static_assert(internal::AggregateFits<SumAggregator<int64_t>, int64_t (*)(const Order&), Order>());
static_assert(
    !internal::AggregateFits<SumAggregator<int64_t>, std::string (*)(const Order&), Order>());
static_assert(
    !internal::AggregateFits<SumAggregator<int64_t>, int64_t (*)(const std::string&), Order>());
static_assert(!internal::AggregateFits<int, std::identity, Order>());

}  // namespace
}  // namespace rill
