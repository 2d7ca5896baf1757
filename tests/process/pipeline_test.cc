#include "rill/process/pipeline.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "rill/base/clock.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/process/aggregators.h"
#include "rill/process/sink.h"
#include "rill/process/source.h"
#include "rill/stream/producer.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000 / 300 * 300);  // a 5-minute boundary

absl::Time At(int64_t seconds) { return kT0 + absl::Seconds(seconds); }

struct Event {
  std::string player;
  int64_t level = 0;
  int64_t score = 0;
  absl::Time time;
};

using CountResult = WindowResult<std::string, uint64_t>;

// (key, start offset s, end offset s, value, is_update) for readable expectations.
template <typename R>
std::vector<std::tuple<std::string, int64_t, int64_t, int64_t, bool>> Rows(
    const std::vector<R>& results) {
  std::vector<std::tuple<std::string, int64_t, int64_t, int64_t, bool>> rows;
  for (const R& r : results) {
    rows.emplace_back(absl::StrCat(r.key), absl::ToInt64Seconds(r.start - kT0),
                      absl::ToInt64Seconds(r.end - kT0), static_cast<int64_t>(r.value),
                      r.is_update);
  }
  return rows;
}

// The pipeline To() built; fails the test if To() reported a bad parameter.
template <typename P>
P Built(absl::StatusOr<P> p) {
  REQUIRE(p.status() == absl::OkStatus());
  return *std::move(p);
}

TEST_CASE("a tumbling count by event time with out-of-order input emits each window once",
          "[pipeline]") {
  auto source = std::make_unique<VectorSource<Event>>(2);
  // Out of order by up to 4 s, within the 5 s bound: nothing is late.
  for (auto [player, t] : std::vector<std::pair<std::string, int64_t>>{
           {"a", 1}, {"b", 3}, {"a", 0}, {"a", 9}, {"b", 12}, {"a", 11}, {"b", 8}, {"a", 25}}) {
    source->Add(Event{player, 1, 0, At(t)}, At(t));
  }
  std::vector<CountResult> results;
  auto p = Built(Pipeline<Event>::From(std::move(source), std::make_shared<SimulatedClock>(At(0)))
                     .KeyBy([](const Event& e) { return e.player; })
                     .Window(TumblingWindow(absl::Seconds(10)))
                     .EventTime([](const Event& e) { return e.time; })
                     .Watermark({.max_out_of_orderness = absl::Seconds(5),
                                 .idle_timeout = absl::ZeroDuration()})
                     .Aggregate(Count())
                     .To(ToVector(&results)));
  REQUIRE(p.Poll(100).ok());
  // The watermark reached 25 - 5 = 20: windows [0,10) and [10,20) closed, [20,30) is open.
  CHECK(Rows(results) == decltype(Rows(results)){{"a", 0, 10, 3, false},
                                                 {"b", 0, 10, 2, false},
                                                 {"a", 10, 20, 1, false},
                                                 {"b", 10, 20, 1, false}});
  CHECK(p.watermark() == At(20));
  CHECK(p.live_keys() == 1);
  REQUIRE(p.Finish().ok());
  CHECK(results.size() == 5);
  CHECK(Rows(results).back() == std::make_tuple(std::string("a"), 20, 30, 1, false));
  CHECK(p.late_records() == 0);
  CHECK(p.records_in() == 8);
  CHECK(p.results_out() == 5);
  CHECK(p.live_keys() == 0);
  CHECK(p.state_bytes() == 0);
}

TEST_CASE("filter and map stages run before the key and the window", "[pipeline]") {
  auto source = std::make_unique<VectorSource<Event>>();
  for (int i = 0; i < 20; ++i) {
    source->Add(Event{"p" + std::to_string(i % 4), i % 3, i, At(i)}, At(i));
  }
  std::vector<WindowResult<int64_t, int64_t>> results;
  auto p = Built(
      Pipeline<Event>::From(std::move(source))
          .Filter([](const Event& e) { return e.score % 2 == 0; })
          .Map([](const Event& e) { return std::make_pair(e.level, e.score * 10); })
          .KeyBy([](const std::pair<int64_t, int64_t>& v) { return v.first; })
          .Window(TumblingWindow(absl::Seconds(100)))
          .Aggregate(Sum<int64_t>(), [](const std::pair<int64_t, int64_t>& v) { return v.second; })
          .To(ToVector(&results)));
  REQUIRE(p.Finish().ok());
  // Even scores 0..18; level = score % 3.
  std::map<int64_t, int64_t> expected;
  for (int i = 0; i < 20; i += 2) expected[i % 3] += i * 10;
  REQUIRE(results.size() == 3);
  for (const auto& r : results) {
    CHECK(r.value == expected[r.key]);
    CHECK(r.start == At(0));
    CHECK_FALSE(r.is_update);
  }
}

TEST_CASE("the watermark is the minimum over source shards until a shard goes idle", "[pipeline]") {
  auto clock = std::make_shared<SimulatedClock>(At(0));
  auto owned = std::make_unique<VectorSource<Event>>();
  VectorSource<Event>* source = owned.get();
  std::vector<CountResult> results;
  auto p = Built(
      Pipeline<Event>::From(std::move(owned), clock)
          .KeyBy([](const Event& e) { return e.player; })
          .Window(TumblingWindow(absl::Seconds(10)))
          .EventTime([](const Event& e) { return e.time; })
          .Watermark({.max_out_of_orderness = absl::Seconds(1), .idle_timeout = absl::Seconds(30)})
          .Aggregate(Count())
          .To(ToVector(&results)));
  // Shard 0 runs ahead to t = 50; shard 1 stays at t = 2.
  source->Add(Event{"x", 0, 0, At(2)}, At(2), ShardId(1));
  for (int t = 0; t <= 50; t += 5) source->Add(Event{"x", 0, 0, At(t)}, At(t), ShardId(0));
  REQUIRE(p.Poll(100).ok());
  CHECK(results.empty());  // shard 1 holds the watermark at 2 - 1 = 1
  CHECK(p.watermark() == At(1));
  // Shard 1 catches up to 21: windows up to [10,20) close.
  source->Add(Event{"y", 0, 0, At(21)}, At(21), ShardId(1));
  REQUIRE(p.Poll(100).ok());
  CHECK(Rows(results) == decltype(Rows(results)){{"x", 0, 10, 3, false}, {"x", 10, 20, 2, false}});
  // Shard 1 goes silent; after the idle timeout shard 0 alone drives the watermark (49).
  clock->Advance(absl::Seconds(31));
  REQUIRE(p.Poll(100).ok());
  CHECK(p.watermark() == At(49));
  CHECK(Rows(results).size() == 5);  // + x [20,30), y [20,30), x [30,40)
  CHECK(Rows(results)[2] == std::make_tuple(std::string("x"), 20, 30, 2, false));
  CHECK(Rows(results)[3] == std::make_tuple(std::string("y"), 20, 30, 1, false));
  // Everything idle: the watermark follows the clock, so the last window closes without input.
  clock->Advance(absl::Minutes(5));
  REQUIRE(p.Poll(100).ok());
  CHECK(Rows(results).size() == 7);
  CHECK(Rows(results)[5] == std::make_tuple(std::string("x"), 40, 50, 2, false));
  CHECK(Rows(results)[6] == std::make_tuple(std::string("x"), 50, 60, 1, false));
}

TEST_CASE("with arrival time a selective filter does not make a busy shard idle in a replay",
          "[pipeline]") {
  // Replaying yesterday: the clock is a day ahead of the arrival times; one record in 500 passes
  // the filter; each Poll reads one batch of 10 records and takes 1 s of processing time, so 50 s
  // pass between two records that pass — longer than the idle timeout.
  auto clock = std::make_shared<SimulatedClock>(At(86400));
  auto source = std::make_unique<VectorSource<Event>>(10);
  for (int i = 0; i < 1000; ++i) source->Add(Event{"a", 0, i, At(i)}, At(i));
  std::vector<CountResult> out;
  auto p = Built(
      Pipeline<Event>::From(std::move(source), clock)
          .Filter([](const Event& e) { return e.score % 500 == 0; })
          .KeyBy([](const Event& e) { return e.player; })
          .Window(TumblingWindow(absl::Seconds(60)))
          .Watermark({.max_out_of_orderness = absl::Seconds(5), .idle_timeout = absl::Seconds(30)})
          .Aggregate(Count())
          .To(ToVector(&out)));
  for (int i = 0; i < 100; ++i) {
    REQUIRE(p.Poll(1).ok());
    clock->Advance(absl::Seconds(1));
  }
  REQUIRE(p.Finish().ok());
  CHECK(p.late_records() == 0);
  CHECK(Rows(out) == decltype(Rows(out)){{"a", 0, 60, 1, false}, {"a", 480, 540, 1, false}});
}

TEST_CASE("late records update within allowed lateness and go to the side output beyond it",
          "[pipeline]") {
  auto source = std::make_unique<VectorSource<Event>>(1);
  source->Add(Event{"a", 0, 0, At(1)}, At(1));
  source->Add(Event{"a", 0, 0, At(22)}, At(22));  // watermark 22: [0,10) closes with 1
  source->Add(Event{"a", 0, 0, At(5)}, At(5));    // within lateness (10 + 15 > 22): update
  source->Add(Event{"a", 0, 0, At(40)}, At(40));  // watermark 40: [0,10) expires
  source->Add(Event{"a", 0, 0, At(7)}, At(7));    // beyond lateness: side output
  std::vector<CountResult> results;
  auto p = Built(Pipeline<Event>::From(std::move(source))
                     .KeyBy([](const Event& e) { return e.player; })
                     .Window(TumblingWindow(absl::Seconds(10)))
                     .EventTime([](const Event& e) { return e.time; })
                     .Watermark({.max_out_of_orderness = absl::ZeroDuration(),
                                 .idle_timeout = absl::ZeroDuration()})
                     .AllowedLateness(absl::Seconds(15))
                     .Aggregate(Count())
                     .To(ToVector(&results)));
  REQUIRE(p.Finish().ok());
  CHECK(Rows(results) == decltype(Rows(results)){{"a", 0, 10, 1, false},
                                                 {"a", 0, 10, 2, true},
                                                 {"a", 20, 30, 1, false},
                                                 {"a", 40, 50, 1, false}});
  CHECK(p.late_records() == 1);
  REQUIRE(p.LateRecords().size() == 1);
  CHECK(p.LateRecords()[0].key == "a");
  CHECK(p.LateRecords()[0].event_time == At(7));
  CHECK(p.LateRecords()[0].value.time == At(7));
  CHECK(p.TakeLateRecords().size() == 1);
  CHECK(p.LateRecords().empty());
}

TEST_CASE("hopping sums come from panes and session windows merge", "[pipeline]") {
  auto make_source = [] {
    auto source = std::make_unique<VectorSource<Event>>();
    for (int64_t t : {0, 5, 12, 61, 65, 200}) source->Add(Event{"k", 0, t, At(t)}, At(t));
    return source;
  };
  std::vector<WindowResult<std::string, int64_t>> hops;
  auto hopping = Built(Pipeline<Event>::From(make_source())
                           .KeyBy([](const Event& e) { return e.player; })
                           .Window(HoppingWindow(absl::Seconds(20), absl::Seconds(10)))
                           .Aggregate(Sum<int64_t>(), [](const Event& e) { return e.score; })
                           .To(ToVector(&hops)));
  REQUIRE(hopping.Finish().ok());
  CHECK(Rows(hops) == decltype(Rows(hops)){{"k", -10, 10, 5, false},
                                           {"k", 0, 20, 17, false},
                                           {"k", 10, 30, 12, false},
                                           {"k", 50, 70, 126, false},
                                           {"k", 60, 80, 126, false},
                                           {"k", 190, 210, 200, false},
                                           {"k", 200, 220, 200, false}});

  std::vector<CountResult> sessions;
  auto session = Built(Pipeline<Event>::From(make_source())
                           .KeyBy([](const Event& e) { return e.player; })
                           .Window(SessionWindow(absl::Seconds(10)))
                           .Aggregate(Count())
                           .To(ToVector(&sessions)));
  REQUIRE(session.Finish().ok());
  // 0, 5, 12 chain into [0, 22); 61, 65 into [61, 75); 200 alone.
  CHECK(Rows(sessions) == decltype(Rows(sessions)){{"k", 0, 22, 3, false},
                                                   {"k", 61, 75, 2, false},
                                                   {"k", 200, 210, 1, false}});
}

TEST_CASE("hopping windows whose size is not a multiple of the slide give every window",
          "[pipeline]") {
  // 10-minute windows every 3 minutes (as Flink and Kinesis Data Analytics allow).
  const std::vector<int64_t> times = {0, 100, 179, 180, 599, 600, 1000, 1234, 1799};
  auto source = std::make_unique<VectorSource<Event>>(2);
  for (int64_t t : times) source->Add(Event{"k", 0, t + 1, At(t)}, At(t));
  std::vector<WindowResult<std::string, int64_t>> hops;
  auto p = Built(Pipeline<Event>::From(std::move(source))
                     .KeyBy([](const Event& e) { return e.player; })
                     .Window(HoppingWindow(absl::Minutes(10), absl::Minutes(3)))
                     .EventTime([](const Event& e) { return e.time; })
                     .Aggregate(Sum<int64_t>(), [](const Event& e) { return e.score; })
                     .To(ToVector(&hops)));
  REQUIRE(p.Finish().ok());
  // By the definition: the windows [180 k, 180 k + 600) s since the epoch holding some record,
  // in end order (kT0 is 60 s past a multiple of 180 s).
  const int64_t phase = absl::ToUnixSeconds(kT0) % 180;
  REQUIRE(phase == 60);
  decltype(Rows(hops)) expected;
  for (int64_t start = -720 - phase; start <= 1800; start += 180) {
    int64_t sum = 0;
    bool any = false;
    for (int64_t t : times) {
      if (start <= t && t < start + 600) {
        sum += t + 1;
        any = true;
      }
    }
    if (any) expected.emplace_back("k", start, start + 600, sum, false);
  }
  REQUIRE(expected.size() == 13);
  CHECK(Rows(hops) == expected);
  CHECK(p.late_records() == 0);
  CHECK(p.records_in() == times.size());
}

// --- Bad parameters: To() returns kInvalidArgument naming the first one ---

std::unique_ptr<VectorSource<Event>> OneEvent() {
  auto source = std::make_unique<VectorSource<Event>>();
  source->Add(Event{"a", 0, 0, At(0)}, At(0));
  return source;
}

// The message of a kInvalidArgument status, or a note that it is not one.
std::string InvalidArgumentMessage(const absl::Status& s) {
  if (GetErrorCode(s) != ErrorCode::kInvalidArgument)
    return "not kInvalidArgument: " + s.ToString();
  return std::string(s.message());
}

// What To() says of a count pipeline with this window and these options.
template <typename Assigner>
std::string BuildWindowed(Assigner window, absl::Duration lateness = absl::ZeroDuration(),
                          WatermarkOptions watermark = {}, EmitMode mode = EmitMode::kOnClose) {
  std::vector<CountResult> out;
  return InvalidArgumentMessage(Pipeline<Event>::From(OneEvent())
                                    .KeyBy([](const Event& e) { return e.player; })
                                    .Window(window)
                                    .EventTime([](const Event& e) { return e.time; })
                                    .Watermark(watermark)
                                    .AllowedLateness(lateness)
                                    .Emit(mode)
                                    .Aggregate(Count())
                                    .To(ToVector(&out))
                                    .status());
}

TEST_CASE("To() reports a bad window, lateness, watermark or emit mode, naming it",
          "[pipeline][validation]") {
  CHECK(BuildWindowed(TumblingWindow(absl::ZeroDuration())) ==
        "Window: TumblingWindow size must be a positive whole number of microseconds; got 0");
  CHECK(BuildWindowed(TumblingWindow(-absl::Minutes(5))) ==
        "Window: TumblingWindow size must be a positive whole number of microseconds; got -5m");
  CHECK(BuildWindowed(TumblingWindow(absl::Nanoseconds(10))) ==
        "Window: TumblingWindow size must be a positive whole number of microseconds; got 10ns");
  CHECK(BuildWindowed(HoppingWindow(absl::ZeroDuration(), absl::Minutes(1))) ==
        "Window: HoppingWindow size must be a positive whole number of microseconds; got 0");
  CHECK(BuildWindowed(HoppingWindow(absl::Minutes(10), absl::ZeroDuration())) ==
        "Window: HoppingWindow slide must be a positive whole number of microseconds; got 0");
  CHECK(BuildWindowed(HoppingWindow(absl::Minutes(10), -absl::Minutes(1))) ==
        "Window: HoppingWindow slide must be a positive whole number of microseconds; got -1m");
  CHECK(BuildWindowed(HoppingWindow(absl::Minutes(10), absl::Minutes(15))) ==
        "Window: HoppingWindow slide (15m) must not exceed its size (10m): the windows would "
        "leave gaps");
  CHECK(BuildWindowed(SessionWindow(absl::ZeroDuration())) ==
        "Window: SessionWindow gap must be positive and finite; got 0");
  CHECK(BuildWindowed(SessionWindow(-absl::Seconds(30))) ==
        "Window: SessionWindow gap must be positive and finite; got -30s");
  const TumblingWindow good(absl::Minutes(1));
  CHECK(BuildWindowed(good, -absl::Seconds(1)) ==
        "AllowedLateness: allowed_lateness must not be negative; got -1s");
  CHECK(BuildWindowed(good, absl::ZeroDuration(), {.max_out_of_orderness = -absl::Seconds(5)}) ==
        "Watermark: max_out_of_orderness must not be negative; got -5s");
  CHECK(BuildWindowed(good, absl::ZeroDuration(), {.idle_timeout = -absl::Seconds(30)}) ==
        "Watermark: idle_timeout must not be negative; got -30s");
  CHECK(BuildWindowed(good, absl::ZeroDuration(), {}, static_cast<EmitMode>(9)) ==
        "Emit: emit mode 9 is neither kOnClose nor kOnUpdate");
  // Several bad parameters: the first in the order of the stages.
  CHECK(BuildWindowed(TumblingWindow(absl::ZeroDuration()), -absl::Seconds(1),
                      {.idle_timeout = -absl::Seconds(1)}) ==
        "Window: TumblingWindow size must be a positive whole number of microseconds; got 0");
  // Edges that are fine: zero lateness, out-of-orderness and idle timeout (never idle), infinite
  // lateness, a slide equal to the size, sizes not a multiple of the slide.
  CHECK(BuildWindowed(good, absl::ZeroDuration(),
                      {.max_out_of_orderness = absl::ZeroDuration(),
                       .idle_timeout = absl::ZeroDuration()}) == "not kInvalidArgument: OK");
  CHECK(BuildWindowed(good, absl::InfiniteDuration()) == "not kInvalidArgument: OK");
  CHECK(BuildWindowed(HoppingWindow(absl::Minutes(1), absl::Minutes(1))) ==
        "not kInvalidArgument: OK");
  CHECK(BuildWindowed(HoppingWindow(absl::Seconds(7), absl::Seconds(2))) ==
        "not kInvalidArgument: OK");
}

TEST_CASE("a zero-size window is reported, not every record silently late",
          "[pipeline][validation]") {
  // It used to build, Finish() OK with no results and every record counted late.
  std::vector<CountResult> out;
  auto p = Pipeline<Event>::From(OneEvent())
               .KeyBy([](const Event& e) { return e.player; })
               .Window(TumblingWindow(absl::ZeroDuration()))
               .Aggregate(Count())
               .To(ToVector(&out));
  REQUIRE_FALSE(p.ok());
  CHECK(GetErrorCode(p.status()) == ErrorCode::kInvalidArgument);
  CHECK(p.status().code() == absl::StatusCode::kInvalidArgument);
}

bool NoEvent(const Event&) { return false; }

TEST_CASE("To() reports a null source, function or sink, naming the stage",
          "[pipeline][validation]") {
  auto key_of = [](const Event& e) { return e.player; };
  std::vector<CountResult> out;
  CHECK(InvalidArgumentMessage(Pipeline<Event>::From(nullptr)
                                   .KeyBy(key_of)
                                   .Window(TumblingWindow(absl::Minutes(1)))
                                   .Aggregate(Count())
                                   .To(ToVector(&out))
                                   .status()) == "From: the source is null");
  bool (*no_filter)(const Event&) = nullptr;
  CHECK(InvalidArgumentMessage(Pipeline<Event>::From(OneEvent())
                                   .Filter(NoEvent)
                                   .Filter(no_filter)
                                   .KeyBy(key_of)
                                   .Window(TumblingWindow(absl::Minutes(1)))
                                   .Aggregate(Count())
                                   .To(ToVector(&out))
                                   .status()) == "Filter: the function is null");
  CHECK(InvalidArgumentMessage(Pipeline<Event>::From(OneEvent())
                                   .KeyBy(std::function<std::string(const Event&)>())
                                   .Window(TumblingWindow(absl::Minutes(1)))
                                   .Aggregate(Count())
                                   .To(ToVector(&out))
                                   .status()) == "KeyBy: the function is null");
  absl::Time (*no_time)(const Event&) = nullptr;
  CHECK(InvalidArgumentMessage(Pipeline<Event>::From(OneEvent())
                                   .KeyBy(key_of)
                                   .Window(TumblingWindow(absl::Minutes(1)))
                                   .EventTime(no_time)
                                   .Aggregate(Count())
                                   .To(ToVector(&out))
                                   .status()) == "EventTime: the function is null");
  std::vector<WindowResult<std::string, int64_t>> sums;
  CHECK(
      InvalidArgumentMessage(Pipeline<Event>::From(OneEvent())
                                 .KeyBy(key_of)
                                 .Window(TumblingWindow(absl::Minutes(1)))
                                 .Aggregate(Sum<int64_t>(), std::function<int64_t(const Event&)>())
                                 .To(ToVector(&sums))
                                 .status()) == "Aggregate: the value function is null");
  CHECK(InvalidArgumentMessage(Pipeline<Event>::From(OneEvent())
                                   .KeyBy(key_of)
                                   .Window(TumblingWindow(absl::Minutes(1)))
                                   .Aggregate(Count())
                                   .To(std::function<void(const CountResult&)>())
                                   .status()) == "To: the sink is null");
  // Event time from the element and from the clock at once: one would be ignored.
  CHECK(InvalidArgumentMessage(Pipeline<Event>::From(OneEvent())
                                   .KeyBy(key_of)
                                   .Window(TumblingWindow(absl::Minutes(1)))
                                   .EventTime([](const Event& e) { return e.time; })
                                   .ProcessingTime()
                                   .Aggregate(Count())
                                   .To(ToVector(&out))
                                   .status()) ==
        "ProcessingTime: the pipeline also has EventTime(fn); choose one");

  // A record pipeline checks its source, stages and sink too.
  std::vector<std::string> words;
  CHECK(
      InvalidArgumentMessage(Pipeline<std::string>::From(nullptr).To(ToVector(&words)).status()) ==
      "From: the source is null");
  std::string (*no_map)(const std::string&) = nullptr;
  auto one_line = [] {
    auto source = std::make_unique<VectorSource<std::string>>();
    source->Add("a b", At(0));
    return source;
  };
  CHECK(InvalidArgumentMessage(
            Pipeline<std::string>::From(one_line()).Map(no_map).To(ToVector(&words)).status()) ==
        "Map: the function is null");
  std::vector<std::string> (*no_flat_map)(const std::string&) = nullptr;
  CHECK(InvalidArgumentMessage(Pipeline<std::string>::From(one_line())
                                   .FlatMap(no_flat_map)
                                   .To(ToVector(&words))
                                   .status()) == "FlatMap: the function is null");
  CHECK(InvalidArgumentMessage(Pipeline<std::string>::From(one_line())
                                   .To(std::function<absl::Status(const std::string&)>())
                                   .status()) == "To: the sink is null");
  auto fine = Pipeline<std::string>::From(one_line()).To(ToVector(&words));
  REQUIRE(fine.ok());
  REQUIRE(fine->Finish().ok());
  CHECK(words == std::vector<std::string>{"a b"});
}

TEST_CASE("early results in kOnUpdate mode and processing-time windows", "[pipeline]") {
  auto clock = std::make_shared<SimulatedClock>(At(0));
  auto owned = std::make_unique<VectorSource<Event>>();
  VectorSource<Event>* source = owned.get();
  std::vector<CountResult> results;
  auto p = Built(Pipeline<Event>::From(std::move(owned), clock)
                     .KeyBy([](const Event& e) { return e.player; })
                     .Window(TumblingWindow(absl::Minutes(1)))
                     .ProcessingTime()
                     .Emit(EmitMode::kOnUpdate)
                     .Aggregate(Count())
                     .To(ToVector(&results)));
  // Event times are ignored: the clock decides the window.
  source->Add(Event{"a", 0, 0, At(-1000)}, At(-1000));
  source->Add(Event{"a", 0, 0, At(5000)}, At(5000));
  REQUIRE(p.Poll().ok());
  CHECK(Rows(results) == decltype(Rows(results)){{"a", 0, 60, 1, true}, {"a", 0, 60, 2, true}});
  clock->Advance(absl::Seconds(60));
  REQUIRE(p.Poll().ok());
  CHECK(Rows(results).back() == std::make_tuple(std::string("a"), 0, 60, 2, false));
}

// Input for the restart tests: 3 shards, 10 players, 2000 events over 20 minutes, some out of
// order.
std::unique_ptr<VectorSource<Event>> GameInput() {
  auto source = std::make_unique<VectorSource<Event>>(16);
  uint64_t x = 12345;
  for (int i = 0; i < 2000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const int64_t jitter = static_cast<int64_t>((x >> 33) % 4000);  // up to 4 s back
    const absl::Time t = At(i * 600 / 1000) - absl::Milliseconds(jitter);
    source->Add(Event{"p" + std::to_string((x >> 40) % 10), static_cast<int64_t>((x >> 20) % 5),
                      static_cast<int64_t>((x >> 50) % 100), t},
                t, ShardId(static_cast<uint32_t>((x >> 45) % 3)));
  }
  return source;
}

template <typename Sink>
auto GamePipeline(std::unique_ptr<Source<Event>> source, Sink sink) {
  return Built(Pipeline<Event>::From(std::move(source), std::make_shared<SimulatedClock>(At(0)))
                   .KeyBy([](const Event& e) { return e.player; })
                   .Window(HoppingWindow(absl::Minutes(2), absl::Minutes(1)))
                   .EventTime([](const Event& e) { return e.time; })
                   .Watermark({.max_out_of_orderness = absl::Seconds(2),
                               .idle_timeout = absl::ZeroDuration()})
                   .AllowedLateness(absl::Seconds(30))
                   .Aggregate(Sum<int64_t>(), [](const Event& e) { return e.score; })
                   .To(std::move(sink)));
}

TEST_CASE("a pipeline restored from a snapshot emits exactly what an uninterrupted one emits",
          "[pipeline][snapshot]") {
  std::vector<WindowResult<std::string, int64_t>> uninterrupted;
  auto whole = GamePipeline(GameInput(), ToVector(&uninterrupted));
  REQUIRE(whole.Finish().ok());
  REQUIRE(uninterrupted.size() > 100);
  const uint64_t late = whole.late_records();

  for (int cut : {1, 7, 40, 90}) {
    std::vector<WindowResult<std::string, int64_t>> results;
    std::string snapshot;
    size_t at_snapshot = 0;
    {
      auto first = GamePipeline(GameInput(), ToVector(&results));
      REQUIRE(first.Poll(cut).ok());
      snapshot = first.Snapshot();
      at_snapshot = results.size();
      REQUIRE(first.Commit().ok());
      // Killed mid-window: whatever it emits after the snapshot is lost with it.
      REQUIRE(first.Poll(3).ok());
    }
    std::vector<WindowResult<std::string, int64_t>> before(results.begin(),
                                                           results.begin() + at_snapshot);
    std::vector<WindowResult<std::string, int64_t>> resumed;
    auto second = GamePipeline(GameInput(), ToVector(&resumed));
    REQUIRE(second.Restore(snapshot).ok());
    REQUIRE(second.Finish().ok());
    before.insert(before.end(), resumed.begin(), resumed.end());
    CHECK(before == uninterrupted);
    CHECK(second.late_records() == late);
    CHECK(second.records_in() == 2000);
  }
}

TEST_CASE("Restore refuses garbage and another pipeline's snapshot", "[pipeline][snapshot]") {
  std::vector<WindowResult<std::string, int64_t>> out;
  auto p = GamePipeline(GameInput(), ToVector(&out));
  CHECK(GetErrorCode(p.Restore("")) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(p.Restore("RPIP garbage")) == ErrorCode::kInvalidArgument);

  std::vector<CountResult> counts;
  auto other = Built(Pipeline<Event>::From(GameInput())
                         .KeyBy([](const Event& e) { return e.player; })
                         .Window(TumblingWindow(absl::Minutes(1)))
                         .Aggregate(Count())
                         .To(ToVector(&counts)));
  REQUIRE(other.Poll(5).ok());
  std::string snapshot = other.Snapshot();
  CHECK(GetErrorCode(p.Restore(snapshot)) == ErrorCode::kInvalidArgument);
  for (size_t cut = 0; cut < snapshot.size(); cut += 7) {
    CHECK(GetErrorCode(p.Restore(snapshot.substr(0, cut))) == ErrorCode::kInvalidArgument);
  }
  REQUIRE(p.Poll(1).ok());
  CHECK(GetErrorCode(p.Restore(snapshot)) == ErrorCode::kInvalidArgument);  // already started
}

TEST_CASE("a sink error stops the pipeline and nothing more is emitted", "[pipeline]") {
  auto source = std::make_unique<VectorSource<Event>>(1);
  for (int t = 0; t < 50; t += 10) source->Add(Event{"a", 0, 0, At(t)}, At(t));
  int calls = 0;
  auto p = Built(Pipeline<Event>::From(std::move(source))
                     .KeyBy([](const Event& e) { return e.player; })
                     .Window(TumblingWindow(absl::Seconds(10)))
                     .Watermark({.max_out_of_orderness = absl::ZeroDuration(),
                                 .idle_timeout = absl::ZeroDuration()})
                     .Aggregate(Count())
                     .To([&calls](const CountResult&) -> absl::Status {
                       return ++calls == 2 ? ResourceInUseError("sink full") : absl::OkStatus();
                     }));
  absl::Status s = p.Finish();
  CHECK(GetErrorCode(s) == ErrorCode::kResourceInUse);
  CHECK(calls == 2);
  CHECK(p.results_out() == 1);
  CHECK(GetErrorCode(p.Poll().status()) == ErrorCode::kResourceInUse);
  CHECK(calls == 2);
}

TEST_CASE("a record pipeline flat-maps elements to its sink and resumes from a snapshot",
          "[pipeline]") {
  auto make = [](std::vector<std::string>* out) {
    auto source = std::make_unique<VectorSource<std::string>>(2);
    for (const char* line : {"a b", "", "c", "d e f"}) source->Add(line, At(0));
    return Built(Pipeline<std::string>::From(std::move(source))
                     .FlatMap([](const std::string& line) {
                       return std::vector<std::string>(
                           absl::StrSplit(line, ' ', absl::SkipEmpty()));
                     })
                     .Map([](const std::string& word) { return word + "!"; })
                     .To(ToVector(out)));
  };
  std::vector<std::string> words;
  auto p = make(&words);
  REQUIRE(p.Poll(1).ok());
  CHECK(words == std::vector<std::string>{"a!", "b!"});
  std::string snapshot = p.Snapshot();
  std::vector<std::string> rest;
  auto q = make(&rest);
  REQUIRE(q.Restore(snapshot).ok());
  REQUIRE(q.Finish().ok());
  CHECK(rest == std::vector<std::string>{"c!", "d!", "e!", "f!"});
  CHECK(q.records_in() == 4);
}

// --- Stream sources and the Stream sink ---

struct StreamFixture {
  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>(At(0));
  std::unique_ptr<Stream> input;
  std::unique_ptr<Stream> output;

  StreamFixture() {
    StreamOptions options;
    options.name = "purchases";
    options.shard_count = 2;
    options.clock = clock;
    input = std::move(*Stream::Create(options));
    options.name = "purchases-per-level";
    options.shard_count = 2;
    output = std::move(*Stream::Create(options));
  }

  // "level,amount" records: `n` purchases, one per 100 ms of simulated time.
  void Put(int n, int start = 0) {
    for (int i = start; i < start + n; ++i) {
      clock->Advance(absl::Milliseconds(100));
      REQUIRE(input->PutRecord("player-" + std::to_string(i % 7), absl::StrCat(i % 3, ",", i % 10))
                  .ok());
    }
  }
};

std::optional<std::pair<int64_t, int64_t>> ParsePurchase(const Record& r) {
  const absl::string_view data(r.data.data(), r.data.size());
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(data, ',');
  int64_t level, amount;
  if (!absl::SimpleAtoi(parts.first, &level) || !absl::SimpleAtoi(parts.second, &amount)) {
    return std::nullopt;
  }
  return std::make_pair(level, amount);
}

using Purchase = std::pair<int64_t, int64_t>;

StreamSubscriberOptions AnalyticsFromStart() {
  StreamSubscriberOptions options;
  options.consumer_name = "analytics";
  options.initial_position = StartingPosition::TrimHorizon();
  return options;
}

std::string EncodeResult(const WindowResult<int64_t, int64_t>& r) {
  return absl::StrCat(r.key, "|", absl::ToUnixSeconds(r.start), "|", r.value, "|",
                      r.is_update ? 1 : 0);
}

template <typename SourcePtr>
auto LevelSums(SourcePtr source, std::shared_ptr<Clock> clock, Stream& output) {
  return Built(Pipeline<Purchase>::From(std::move(source), std::move(clock))
                   .KeyBy([](const Purchase& p) { return p.first; })
                   .Window(TumblingWindow(absl::Seconds(10)))
                   .Watermark({.max_out_of_orderness = absl::ZeroDuration(),
                               .idle_timeout = absl::Seconds(10)})
                   .Aggregate(Sum<int64_t>(), [](const Purchase& p) { return p.second; })
                   .To(StreamSink(output, "level-sums", EncodeResult)));
}

// Every record of a stream, by data.
std::multiset<std::string> ReadAll(const Stream& stream, std::set<std::string>* ids = nullptr) {
  std::multiset<std::string> all;
  for (const ShardDescription& shard : stream.ListShards()) {
    auto it = stream.GetShardIterator(shard.shard_id, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    auto batch = stream.GetRecords(*it);
    REQUIRE(batch.ok());
    for (const Record& r : batch->records) {
      all.insert(std::string(r.data));
      if (ids != nullptr) ids->insert(std::string(r.partition_key));
    }
  }
  return all;
}

TEST_CASE("a subscription source feeds a Stream sink and a restart writes no duplicates",
          "[pipeline][stream]") {
  // The reference: one pipeline that never stops.
  std::multiset<std::string> expected;
  {
    StreamFixture f;
    REQUIRE(f.input->RegisterStreamConsumer("analytics").ok());
    f.Put(600);
    StreamSubscriberOptions options = AnalyticsFromStart();
    auto p =
        LevelSums(FromSubscription<Purchase>(*f.input, options, ParsePurchase), f.clock, *f.output);
    for (int i = 0; i < 20; ++i) REQUIRE(p.Poll().ok());
    f.clock->Advance(absl::Seconds(30));  // idle input closes the last windows
    REQUIRE(p.Poll().ok());
    expected = ReadAll(*f.output);
    CHECK(p.records_in() == 600);
    // The golden sums: record i arrives at (i + 1) * 100 ms, level i % 3, amount i % 10.
    std::map<std::pair<int64_t, int64_t>, int64_t> sums;
    for (int i = 0; i < 600; ++i) sums[{i % 3, (i + 1) / 100 * 10}] += i % 10;
    std::multiset<std::string> golden;
    for (const auto& [k, v] : sums) {
      golden.insert(absl::StrCat(k.first, "|", absl::ToUnixSeconds(kT0) + k.second, "|", v, "|0"));
    }
    CHECK(expected == golden);
    CHECK(expected.size() == 19);  // 6 windows x 3 levels, and record 599 alone in [60, 70)
    CHECK(p.late_records() == 0);
  }

  StreamFixture f;
  REQUIRE(f.input->RegisterStreamConsumer("analytics").ok());
  f.Put(600);
  StreamSubscriberOptions options = AnalyticsFromStart();
  std::string snapshot;
  uint64_t written_before_restart = 0;
  {
    auto p =
        LevelSums(FromSubscription<Purchase>(*f.input, options, ParsePurchase), f.clock, *f.output);
    REQUIRE(p.Poll(1).ok());
    snapshot = p.Snapshot();
    // Runs on after the snapshot, writes more results, then dies without another snapshot.
    for (int i = 0; i < 20; ++i) REQUIRE(p.Poll().ok());
    CHECK(ReadAll(*f.output).size() > 0);
    written_before_restart = p.sink().written();
  }
  auto p =
      LevelSums(FromSubscription<Purchase>(*f.input, options, ParsePurchase), f.clock, *f.output);
  REQUIRE(p.Restore(snapshot).ok());
  // The consumer re-subscribes to a shard 5 s after its last subscription (Kinesis' rule).
  for (int i = 0; i < 8; ++i) {
    f.clock->Advance(absl::Seconds(1));
    REQUIRE(p.Poll().ok());
  }
  CHECK(p.records_in() == 600);
  f.clock->Advance(absl::Seconds(30));
  REQUIRE(p.Poll().ok());
  std::set<std::string> ids;
  CHECK(ReadAll(*f.output, &ids) == expected);
  CHECK(ids.size() == expected.size());
  INFO("written before the restart: " << written_before_restart);
  CHECK(p.sink().duplicates_skipped() == written_before_restart);
  CHECK(p.sink().written() + written_before_restart == expected.size());
}

TEST_CASE("a subscription source counts undecodable records", "[pipeline][stream]") {
  StreamFixture f;
  REQUIRE(f.input->RegisterStreamConsumer("analytics").ok());
  f.Put(10);
  REQUIRE(f.input->PutRecord("x", "not a purchase").ok());
  StreamSubscriberOptions options = AnalyticsFromStart();
  auto p =
      LevelSums(FromSubscription<Purchase>(*f.input, options, ParsePurchase), f.clock, *f.output);
  REQUIRE(p.Poll().ok());
  CHECK(p.undecodable_records() == 1);
  CHECK(p.records_in() == 10);
}

std::optional<int64_t> ParseNumber(const Record& r) {
  int64_t v;
  if (!absl::SimpleAtoi(absl::string_view(r.data.data(), r.data.size()), &v)) return std::nullopt;
  return v;
}

TEST_CASE("a restored pipeline keeps the undecodable count of its snapshot", "[pipeline][stream]") {
  StreamFixture f;
  REQUIRE(f.input->RegisterStreamConsumer("analytics").ok());
  for (int i = 0; i < 10; ++i) REQUIRE(f.input->PutRecord("k", std::to_string(i)).ok());
  REQUIRE(f.input->PutRecord("k", "not a number").ok());
  std::vector<WindowResult<int64_t, uint64_t>> out;
  auto build = [&] {
    return Built(
        Pipeline<int64_t>::From(
            FromSubscription<int64_t>(*f.input, AnalyticsFromStart(), ParseNumber), f.clock)
            .KeyBy([](int64_t v) { return v % 2; })
            .Window(TumblingWindow(absl::Seconds(10)))
            .Aggregate(Count())
            .To(ToVector(&out)));
  };
  std::string snapshot;
  {
    auto p = build();
    REQUIRE(p.Poll().ok());
    REQUIRE(p.records_in() == 10);
    REQUIRE(p.undecodable_records() == 1);
    snapshot = p.Snapshot();
  }
  auto q = build();
  REQUIRE(q.Restore(snapshot).ok());
  CHECK(q.records_in() == 10);
  CHECK(q.undecodable_records() == 1);
}

TEST_CASE("a consumer-group source checkpoints at commits and a restart counts nothing twice",
          "[pipeline][stream]") {
  StreamFixture f;
  f.Put(400);
  InMemoryCheckpointStore store;
  ConsumerGroupOptions go;
  go.application_name = "level-sums";
  go.initial_position = StartingPosition::TrimHorizon();
  go.max_records = 50;
  auto group = ConsumerGroup::Create(*f.input, store, go);
  REQUIRE(group.ok());

  std::vector<WindowResult<int64_t, int64_t>> results;
  auto build = [&](std::string worker) {
    return Built(
        Pipeline<Purchase>::From(
            FromConsumerGroup<Purchase>(**group, std::move(worker), ParsePurchase), f.clock)
            .KeyBy([](const Purchase& p) { return p.first; })
            .Window(TumblingWindow(absl::Seconds(100)))
            // Longer than a failover (10 s here), so shards waiting for a new lease holder are not
            // taken for idle ones.
            .Watermark(
                {.max_out_of_orderness = absl::ZeroDuration(), .idle_timeout = absl::Seconds(30)})
            .Aggregate(Sum<int64_t>(), [](const Purchase& p) { return p.second; })
            .To(ToVector(&results)));
  };
  std::string snapshot;
  {
    auto p = build("w1");
    REQUIRE(p.Poll(2).ok());
    REQUIRE(p.Poll(2).ok());
    CHECK(p.records_in() > 0);
    snapshot = p.Snapshot();
    REQUIRE(p.Commit().ok());
    REQUIRE(p.Poll(4).ok());  // more input after the commit, then a crash
    snapshot = p.Snapshot();  // saved, but the crash comes before Commit
  }
  // w2 restores the last snapshot, takes the leases once they expire and resumes from the
  // (older) checkpoints, skipping what the snapshot already covers.
  auto p = build("w2");
  REQUIRE(p.Restore(snapshot).ok());
  for (int i = 0; i < 25; ++i) {
    f.clock->Advance(absl::Seconds(1));
    REQUIRE(p.Poll().ok());
  }
  REQUIRE(p.Commit().ok());
  f.clock->Advance(absl::Seconds(200));
  REQUIRE(p.Poll().ok());
  CHECK(p.records_in() == 400);
  CHECK(p.late_records() == 0);
  int64_t total = 0;
  for (const auto& r : results) total += r.value;
  int64_t expected = 0;
  for (int i = 0; i < 400; ++i) expected += i % 10;
  CHECK(total == expected);
  // The commit moved the group's checkpoints to the end of each shard.
  auto leases = store.ListLeases("level-sums");
  REQUIRE(leases.ok());
  for (const Lease& lease : *leases) CHECK(lease.checkpoint != "TRIM_HORIZON");
}

// --- A consumer-group source across snapshots: a position covers only what the pipeline took ---

// A stream of `shards` shards on a simulated clock, and consumer groups over it that read from the
// start, fail over within a second and read `max_records` records per shard and worker poll.
struct GroupFixture {
  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>(At(0));
  std::unique_ptr<Stream> stream;
  InMemoryCheckpointStore store;
  int max_records;

  GroupFixture(int shards, int max_records) : max_records(max_records) {
    StreamOptions options;
    options.name = "readings";
    options.shard_count = shards;
    options.clock = clock;
    stream = std::move(*Stream::Create(options));
  }

  // Puts `data` on the shard at `shard_index` in ListShards order.
  SequenceNumber PutDataOn(int shard_index, std::string_view partition_key, std::string_view data) {
    PutOptions options;
    options.explicit_hash_key = stream->ListShards()[shard_index].hash_key_range.starting_hash_key;
    auto put = stream->PutRecord(partition_key, data, options);
    REQUIRE(put.ok());
    return put->sequence_number;
  }
  // Puts "key,value" there, with a partition key of its own.
  SequenceNumber PutOn(int shard_index, int64_t key, int64_t value) {
    return PutDataOn(shard_index, absl::StrCat("k", value), absl::StrCat(key, ",", value));
  }

  std::unique_ptr<ConsumerGroup> Group(std::string application) {
    ConsumerGroupOptions go;
    go.application_name = std::move(application);
    go.initial_position = StartingPosition::TrimHorizon();
    go.max_records = max_records;
    go.failover_time = absl::Seconds(1);
    go.take_interval = absl::Milliseconds(200);
    auto group = ConsumerGroup::Create(*stream, store, go);
    REQUIRE(group.ok());
    return std::move(*group);
  }

  // Each shard's checkpoint in the group's lease table, by shard id.
  std::map<std::string, std::string> Checkpoints(const std::string& application) {
    auto leases = store.ListLeases(application);
    REQUIRE(leases.ok());
    std::map<std::string, std::string> checkpoints;
    for (const Lease& l : *leases) checkpoints[l.lease_key] = l.checkpoint;
    return checkpoints;
  }
};

// A record pipeline: every record's value to `out`.
auto Passthrough(ConsumerGroup& group, std::string worker, std::shared_ptr<Clock> clock,
                 std::vector<Purchase>* out) {
  return Built(
      Pipeline<Purchase>::From(FromConsumerGroup<Purchase>(group, std::move(worker), ParsePurchase),
                               std::move(clock))
          .To(ToVector(out)));
}

TEST_CASE("a restored consumer-group source commits shards with nothing new to read",
          "[pipeline][stream]") {
  GroupFixture f(2, 10000);
  for (int i = 0; i < 3; ++i) {
    f.PutOn(0, 0, i);
    f.PutOn(1, 1, 10 + i);
  }
  auto group = f.Group("passthrough");
  std::vector<Purchase> seen;
  std::string snapshot;
  {
    auto p = Passthrough(*group, "w1", f.clock, &seen);
    REQUIRE(p.Poll().ok());
    REQUIRE(p.records_in() == 6);
    snapshot = p.Snapshot();
    REQUIRE(p.Commit().ok());
  }
  const std::map<std::string, std::string> committed = f.Checkpoints("passthrough");
  const std::string shard0 = f.stream->ListShards()[0].shard_id.ToString();
  const std::string shard1 = f.stream->ListShards()[1].shard_id.ToString();
  REQUIRE(committed.at(shard0) != "TRIM_HORIZON");
  REQUIRE(committed.at(shard1) != "TRIM_HORIZON");
  // The group's checkpoints are where the snapshot is: the restarted worker takes the leases
  // and reads nothing new, and its commits have nothing to move (they are not errors).
  auto p = Passthrough(*group, "w2", f.clock, &seen);
  REQUIRE(p.Restore(snapshot).ok());
  for (int i = 0; i < 30; ++i) {
    f.clock->Advance(absl::Milliseconds(100));
    REQUIRE(p.Poll().ok());
    const absl::Status s = p.Commit();
    INFO(s);
    REQUIRE(s.ok());
  }
  CHECK(f.Checkpoints("passthrough") == committed);
  // A new record moves its shard's checkpoint at the next commit.
  const SequenceNumber added = f.PutOn(0, 0, 3);
  REQUIRE(p.Poll().ok());
  REQUIRE(p.Commit().ok());
  CHECK(p.records_in() == 7);
  CHECK(seen.size() == 7);
  CHECK(f.Checkpoints("passthrough") ==
        std::map<std::string, std::string>{{shard0, added.ToString()},
                                           {shard1, committed.at(shard1)}});
}

TEST_CASE("a consumer-group source's snapshot does not cover batches still queued in the source",
          "[pipeline][stream][snapshot]") {
  // One record a shard. One worker poll reads a batch of every shard; the pipeline's Poll takes
  // at most `limit` of them and leaves the others queued in the source.
  int shards = 2;
  int limit = 1;
  SECTION("Poll(1) with 2 shards") {}
  SECTION("Poll() with 20 shards") {
    shards = 20;
    limit = 16;  // Poll()'s default
  }
  GroupFixture f(shards, 10000);
  std::vector<Purchase> all;
  for (int i = 0; i < shards; ++i) {
    f.PutOn(i, i, 100 + i);
    all.emplace_back(i, 100 + i);
  }
  auto group = f.Group("passthrough");
  std::vector<Purchase> seen;
  std::string snapshot;
  {
    auto p = Passthrough(*group, "w1", f.clock, &seen);
    for (int i = 0; i < 600 && p.records_in() == 0; ++i) REQUIRE(p.Poll(limit).ok());
    REQUIRE(p.records_in() == static_cast<uint64_t>(limit));
    snapshot = p.Snapshot();
  }
  REQUIRE(seen.size() == static_cast<size_t>(limit));
  auto p = Passthrough(*group, "w2", f.clock, &seen);
  REQUIRE(p.Restore(snapshot).ok());
  for (int i = 0; i < 600; ++i) {
    f.clock->Advance(absl::Milliseconds(100));
    REQUIRE(p.Poll(limit).ok());
  }
  CHECK(p.records_in() == static_cast<uint64_t>(shards));
  std::sort(seen.begin(), seen.end());
  CHECK(seen == all);
}

TEST_CASE("a consumer-group source counts an undecodable record once the pipeline takes its batch",
          "[pipeline][stream][snapshot]") {
  GroupFixture f(2, 10000);
  f.PutOn(0, 0, 100);
  f.PutOn(1, 1, 101);
  f.PutDataOn(1, "x", "not a purchase");
  auto group = f.Group("passthrough");
  std::vector<Purchase> seen;
  std::string snapshot;
  {
    auto p = Passthrough(*group, "w1", f.clock, &seen);
    REQUIRE(p.Poll(1).ok());
    REQUIRE(p.records_in() == 1);
    CHECK(p.undecodable_records() == 0);  // it waits in the other shard's queued batch
    snapshot = p.Snapshot();
  }
  auto p = Passthrough(*group, "w2", f.clock, &seen);
  REQUIRE(p.Restore(snapshot).ok());
  for (int i = 0; i < 30; ++i) {
    f.clock->Advance(absl::Milliseconds(100));
    REQUIRE(p.Poll(1).ok());
  }
  CHECK(p.records_in() == 2);
  CHECK(p.undecodable_records() == 1);
}

TEST_CASE("Finish reads past polls whose batches hold no record that decodes",
          "[pipeline][stream]") {
  // Finish stopped at the first Poll that decoded nothing, although that Poll took batches and
  // more were waiting: here 40 batches of one undecodable record (max_records 1), then 3 good.
  GroupFixture f(1, 1);
  for (int i = 0; i < 40; ++i) f.PutDataOn(0, "x", "not a purchase");
  for (int i = 0; i < 3; ++i) f.PutOn(0, 0, i);
  auto group = f.Group("passthrough");
  std::vector<Purchase> seen;
  auto p = Passthrough(*group, "w1", f.clock, &seen);
  REQUIRE(p.Finish().ok());
  CHECK(p.undecodable_records() == 40);
  CHECK(p.records_in() == 3);
  CHECK(seen.size() == 3);
}

TEST_CASE("after its sink failed a pipeline's Commit returns the failure and moves no checkpoint",
          "[pipeline][stream]") {
  // The failed batch's results were not all delivered; Commit used to checkpoint past them.
  GroupFixture f(1, 10000);
  for (int i = 0; i < 3; ++i) f.PutOn(0, 0, i);
  auto group = f.Group("failing");
  int calls = 0;
  auto p = Built(
      Pipeline<Purchase>::From(FromConsumerGroup<Purchase>(*group, "w1", ParsePurchase), f.clock)
          .To([&calls](const Purchase&) {
            return ++calls == 2 ? absl::UnavailableError("sink down") : absl::OkStatus();
          }));
  CHECK(!p.Poll().ok());
  const std::map<std::string, std::string> before = f.Checkpoints("failing");
  CHECK(absl::IsUnavailable(p.Commit()));
  CHECK(f.Checkpoints("failing") == before);
  CHECK(before.begin()->second == "TRIM_HORIZON");
}

TEST_CASE("a consumer-group source commits no checkpoint past a batch the pipeline has not taken",
          "[pipeline][stream]") {
  GroupFixture f(2, 10000);
  for (int i = 0; i < 3; ++i) {
    f.PutOn(0, 0, i);
    f.PutOn(1, 1, 10 + i);
  }
  auto group = f.Group("passthrough");
  std::vector<Purchase> first;
  {
    auto p = Passthrough(*group, "w1", f.clock, &first);
    REQUIRE(p.Poll(1).ok());
    REQUIRE(p.records_in() == 3);  // one shard's batch; the other's waits in the source
    p.Snapshot();
    REQUIRE(p.Commit().ok());
    const std::map<std::string, std::string> checkpoints = f.Checkpoints("passthrough");
    REQUIRE(checkpoints.size() == 2);
    int at_start = 0;
    for (const auto& [shard, checkpoint] : checkpoints) at_start += checkpoint == "TRIM_HORIZON";
    CHECK(at_start == 1);
  }
  // A new pipeline without the snapshot resumes from the group's checkpoints: at-least-once
  // means it reads the batch the first one never took.
  std::vector<Purchase> second;
  auto p = Passthrough(*group, "w2", f.clock, &second);
  for (int i = 0; i < 600; ++i) {
    f.clock->Advance(absl::Milliseconds(100));
    REQUIRE(p.Poll(1).ok());
  }
  CHECK(p.records_in() == 3);
  std::vector<Purchase> all = first;
  all.insert(all.end(), second.begin(), second.end());
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<Purchase>{{0, 0}, {0, 1}, {0, 2}, {1, 10}, {1, 11}, {1, 12}});
}

using KeyCount = WindowResult<int64_t, uint64_t>;

// Counts per key in 1 s tumbling windows of arrival time. Nothing is ever late: a shard's records
// arrive in order, and with a long idle timeout no shard stops holding the watermark back.
auto KeyCounts(ConsumerGroup& group, std::string worker, std::shared_ptr<Clock> clock,
               std::vector<KeyCount>* out) {
  return Pipeline<Purchase>::From(
             FromConsumerGroup<Purchase>(group, std::move(worker), ParsePurchase), std::move(clock))
      .KeyBy([](const Purchase& p) { return p.first; })
      .Window(TumblingWindow(absl::Seconds(1)))
      .Watermark({.max_out_of_orderness = absl::ZeroDuration(), .idle_timeout = absl::Hours(1)})
      .Aggregate(Count())
      .To(ToVector(out))
      .value();
}

// "key@start=count" (start in seconds from kT0, "+" for an update), sorted.
std::vector<std::string> Sorted(const std::vector<KeyCount>& results) {
  std::vector<std::string> rows;
  for (const KeyCount& r : results) {
    rows.push_back(absl::StrCat(r.key, "@", absl::ToInt64Seconds(r.start - kT0), "=", r.value,
                                r.is_update ? "+" : ""));
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

TEST_CASE(
    "a consumer-group pipeline restored from a snapshot at any step emits exactly the "
    "uninterrupted results",
    "[pipeline][stream][snapshot]") {
  constexpr int kShards = 16;
  constexpr int kRecords = 3200;
  constexpr int kKeys = 7;
  GroupFixture f(kShards, 50);  // 200 records a shard: 4 batches each
  // Record i: key i % 7, value i, on shard i % 16 (distinct partition keys), 10 ms apart.
  std::map<std::pair<int64_t, absl::Time>, uint64_t> brute_force;
  for (int i = 0; i < kRecords; ++i) {
    f.clock->Advance(absl::Milliseconds(10));
    f.PutOn(i % kShards, i % kKeys, i);
    const absl::Time t = f.clock->Now();
    ++brute_force[{i % kKeys, kT0 + absl::Seconds(absl::ToInt64Seconds(t - kT0))}];
  }
  std::vector<KeyCount> counted;
  for (const auto& [k, n] : brute_force) {
    counted.push_back({k.first, k.second, k.second + absl::Seconds(1), n, false});
  }
  const std::vector<std::string> expected = Sorted(counted);
  // Seconds 0-31 hold every key; second 32 only record 3199's (key 0).
  REQUIRE(expected.size() == 32 * kKeys + 1);

  int runs = 0;
  // Drives a pipeline until it has taken every record (at most 600 steps), then for 20 more steps
  // (nothing more may come), then closes its windows.
  auto finish = [&](auto& p, int max_batches) {
    for (int i = 0; i < 600 && p.records_in() < kRecords; ++i) {
      f.clock->Advance(absl::Milliseconds(100));
      REQUIRE(p.Poll(max_batches).ok());
    }
    for (int i = 0; i < 20; ++i) {
      f.clock->Advance(absl::Milliseconds(100));
      REQUIRE(p.Poll(max_batches).ok());
    }
    CHECK(p.records_in() == kRecords);
    CHECK(p.late_records() == 0);
    REQUIRE(p.Finish().ok());
  };

  for (int max_batches : {1, 2, 5}) {
    for (bool commit : {false, true}) {
      INFO("Poll(" << max_batches << "), commit " << commit);
      // The uninterrupted run, and how many steps it takes to read everything.
      std::vector<KeyCount> uninterrupted;
      int steps = 0;
      {
        auto group = f.Group(absl::StrCat("run-", ++runs));
        auto p = KeyCounts(*group, "w1", f.clock, &uninterrupted);
        for (; steps < 600 && p.records_in() < kRecords; ++steps) {
          f.clock->Advance(absl::Milliseconds(100));
          REQUIRE(p.Poll(max_batches).ok());
          if (commit) {
            p.Snapshot();
            REQUIRE(p.Commit().ok());
          }
        }
        finish(p, max_batches);
      }
      REQUIRE(Sorted(uninterrupted) == expected);
      // 64 batches, max_batches a step: the worker polls again once its batches are taken.
      REQUIRE(steps == (kShards * 4 + max_batches - 1) / max_batches);

      // A snapshot after each step (committed or not), restored into a new pipeline with another
      // worker id, which runs to the end.
      for (int cut = 1; cut <= steps; ++cut) {
        INFO("snapshot after step " << cut);
        auto group = f.Group(absl::StrCat("run-", ++runs));
        std::vector<KeyCount> results;
        std::string snapshot;
        size_t at_snapshot = 0;
        {
          auto p = KeyCounts(*group, "w1", f.clock, &results);
          for (int i = 0; i < cut; ++i) {
            f.clock->Advance(absl::Milliseconds(100));
            REQUIRE(p.Poll(max_batches).ok());
            snapshot = p.Snapshot();
            at_snapshot = results.size();
            if (commit) REQUIRE(p.Commit().ok());
          }
          // Runs on a little past its last snapshot, then dies.
          f.clock->Advance(absl::Milliseconds(100));
          REQUIRE(p.Poll(max_batches).ok());
        }
        results.resize(at_snapshot);
        std::vector<KeyCount> resumed;
        auto p = KeyCounts(*group, "w2", f.clock, &resumed);
        REQUIRE(p.Restore(snapshot).ok());
        finish(p, max_batches);
        results.insert(results.end(), resumed.begin(), resumed.end());
        CHECK(Sorted(results) == expected);
      }

      // A chain of pipelines, each restored from the last snapshot of the one before, with a
      // snapshot after every step; each dies after its second step that took records (the
      // leases fail over in about a second), most of the time with batches still queued.
      std::vector<KeyCount> results;
      std::string snapshot;
      size_t at_snapshot = 0;
      auto group = f.Group(absl::StrCat("run-", ++runs));
      int lives = 0;
      uint64_t taken = 0;
      for (; lives < 200 && taken < kRecords; ++lives) {
        results.resize(at_snapshot);
        auto p = KeyCounts(*group, absl::StrCat("w", lives), f.clock, &results);
        if (!snapshot.empty()) REQUIRE(p.Restore(snapshot).ok());
        for (int i = 0, busy = 0; i < 100 && busy < 2; ++i) {
          f.clock->Advance(absl::Milliseconds(100));
          REQUIRE(p.Poll(max_batches).ok());
          snapshot = p.Snapshot();
          at_snapshot = results.size();
          busy += p.records_in() > taken ? 1 : 0;
          taken = p.records_in();
          if (commit) {
            const absl::Status committed = p.Commit();
            INFO(committed);
            REQUIRE(committed.ok());
          }
        }
      }
      // 64 batches, at most 2 * max_batches a life.
      CHECK(lives >= 64 / (2 * max_batches));
      results.resize(at_snapshot);
      auto p = KeyCounts(*group, "last", f.clock, &results);
      REQUIRE(p.Restore(snapshot).ok());
      finish(p, max_batches);
      CHECK(Sorted(results) == expected);
    }
  }
}

// Issue 13: a sink backing off from a throttled stream waits through the stream's Clock. Under
// a SimulatedClock it moves the clock forward (the write limit refills in simulated time) and
// never sleeps for real, so the retries succeed deterministically and at once.
TEST_CASE("a Stream sink backs off a throttled put in simulated time", "[pipeline][stream]") {
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions o;
  o.name = "throttled-output";
  o.shard_count = 1;
  o.clock = clock;
  o.shard_limits.write_records_per_second = 1;
  auto output = Stream::Create(o);
  REQUIRE(output.ok());
  auto sink = StreamSink(**output, "sums", EncodeResult);
  const absl::Time start = clock->Now();
  for (int64_t i = 0; i < 3; ++i) {
    const WindowResult<int64_t, int64_t> r{i, start, start + absl::Seconds(10), 10 * i};
    REQUIRE(sink(r).ok());
  }
  // One record per second: the second and third results waited about a second each, and only
  // the simulated clock moved.
  const absl::Duration waited = clock->Now() - start;
  CHECK(waited >= absl::Seconds(1));
  CHECK(waited <= absl::Seconds(3));
  std::multiset<std::string> written = ReadAll(**output);
  CHECK(written ==
        std::multiset<std::string>{"0|1704067200|0|0", "1|1704067200|10|0", "2|1704067200|20|0"});
}

// --- A whole durable pipeline on a SimulatedClock ---

// A SimulatedClock through which the test sees every wait rill makes. In a single-threaded test
// no wait may block in real time: a foreground wait (WaitFor, SleepFor) moves the simulated
// clock and is counted; a wait until a time that has not come (WaitUntil, what background
// threads do) could only be ended by another thread, so it would block for ever: it is counted
// as a failure and returns at once.
class NoRealWaitClock final : public Clock {
 public:
  explicit NoRealWaitClock(absl::Time start) : clock_(start) {}

  absl::Time Now() const override { return clock_.Now(); }
  void SleepFor(absl::Duration d) override {
    ++sleeps_;
    clock_.SleepFor(d);
  }
  bool WaitFor(absl::Duration d, internal::Waker& waker) override {
    ++waits_;
    return clock_.WaitFor(d, waker);
  }
  bool WaitUntil(absl::Time deadline, internal::Waker& waker) override {
    if (clock_.Now() < deadline) {
      ++blocking_waits_;
      return true;
    }
    return clock_.WaitUntil(deadline, waker);
  }

  void Advance(absl::Duration d) { clock_.Advance(d); }
  int sleeps() const { return sleeps_.load(); }
  int waits() const { return waits_.load(); }
  int blocking_waits() const { return blocking_waits_.load(); }

 private:
  SimulatedClock clock_;
  std::atomic<int> sleeps_{0};
  std::atomic<int> waits_{0};
  std::atomic<int> blocking_waits_{0};
};

// A purchase with the time it happened: "level,amount,milliseconds after kT0".
struct TimedPurchase {
  int64_t level = 0;
  int64_t amount = 0;
  absl::Time time;
};

std::optional<TimedPurchase> ParseTimedPurchase(const Record& r) {
  const absl::string_view data(r.data.data(), r.data.size());
  const std::vector<absl::string_view> parts = absl::StrSplit(data, ',');
  TimedPurchase p;
  int64_t millis;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &p.level) ||
      !absl::SimpleAtoi(parts[1], &p.amount) || !absl::SimpleAtoi(parts[2], &millis)) {
    return std::nullopt;
  }
  p.time = kT0 + absl::Milliseconds(millis);
  return p;
}

// Every record of a stream, by data, following each shard's iterators to its end (a reopened
// durable stream returns its records from disk a frame at a time).
std::multiset<std::string> ReadEverything(Stream* stream) {
  std::multiset<std::string> all;
  for (const ShardDescription& shard : stream->ListShards()) {
    std::optional<ShardIterator> it =
        testing::MustIterator(*stream, shard.shard_id, StartingPosition::TrimHorizon());
    while (it) {
      GetRecordsResult batch = testing::MustRead(*stream, *it);
      for (const Record& r : batch.records) all.insert(std::string(r.data));
      if (batch.records.empty() && batch.millis_behind_latest == 0) break;  // caught up
      it = batch.next_shard_iterator;
    }
  }
  return all;
}

// Sums of amounts per level and 10-second window of event time, written to `output`.
auto TimedLevelSums(Stream* input, Stream* output, std::shared_ptr<Clock> clock) {
  return Built(Pipeline<TimedPurchase>::From(FromSubscription<TimedPurchase>(
                                                 *input, AnalyticsFromStart(), ParseTimedPurchase),
                                             std::move(clock))
                   .KeyBy([](const TimedPurchase& p) { return p.level; })
                   .Window(TumblingWindow(absl::Seconds(10)))
                   .EventTime([](const TimedPurchase& p) { return p.time; })
                   .Watermark({.max_out_of_orderness = absl::ZeroDuration(),
                               .idle_timeout = absl::Seconds(10)})
                   .Aggregate(Sum<int64_t>(), [](const TimedPurchase& p) { return p.amount; })
                   .To(StreamSink(*output, "level-sums", EncodeResult)));
}

// Issue 13: a producer, a durable input stream, a windowed pipeline and a StreamSink into a
// durable output stream, driven by nothing but a SimulatedClock. The streams are throttled, so
// that the producer's Flush and the sink must wait for their limits: those waits move the clock.
TEST_CASE("a durable pipeline runs on a SimulatedClock from producer to sink without a real wait",
          "[pipeline][stream][clock]") {
  // The clock starts an hour before the events (kT0 on): a watermark moved by the clock never
  // passes a window before its records are read, so the results depend on the event times only,
  // not on how far the throttled waits moved the clock.
  auto clock = std::make_shared<NoRealWaitClock>(At(-3600));
  testing::TempDir dir("durable-pipeline");
  auto options = [&](const std::string& name, int shards, int64_t records_per_second) {
    StreamOptions o =
        testing::DurableStreamOptions(dir.File(name), clock, shards, FsyncPolicy::kInterval, name);
    o.storage->background_flush = false;  // no flusher thread: segments follow the clock too
    o.shard_limits.write_records_per_second = records_per_second;
    return o;
  };
  // Record i: level i % 3, amount i % 10, i * 100 ms after kT0; six rounds of 100 records, each
  // round one window of 10 s.
  constexpr int kRounds = 6;
  constexpr int kPerRound = 100;
  std::multiset<std::string> golden;
  {
    std::map<std::pair<int64_t, int64_t>, int64_t> sums;
    for (int i = 0; i < kRounds * kPerRound; ++i) sums[{i % 3, i / kPerRound * 10}] += i % 10;
    for (const auto& [k, v] : sums) {
      golden.insert(absl::StrCat(k.first, "|", absl::ToUnixSeconds(kT0) + k.second, "|", v, "|0"));
    }
  }
  REQUIRE(golden.size() == kRounds * 3);

  std::string snapshot;
  {
    auto input = testing::MustCreate(options("purchases", 2, 20));
    auto output = testing::MustCreate(options("level-sums", 1, 2));
    REQUIRE(input->RegisterStreamConsumer("analytics").ok());
    auto producer = Producer::Create(*input);
    REQUIRE(producer.ok());
    auto p = TimedLevelSums(input.get(), output.get(), clock);
    for (int round = 0; round < kRounds; ++round) {
      for (int i = round * kPerRound; i < (round + 1) * kPerRound; ++i) {
        (*producer)->Put(absl::StrCat("player-", i % 50),
                         absl::StrCat(i % 3, ",", i % 10, ",", i * 100), nullptr);
      }
      // 20 records a second per shard: Flush waits for retries on the clock, moving it.
      (*producer)->Flush();
      REQUIRE((*producer)->outstanding() == 0);
      // Reads the round; closes the window of the round before (its 3 results go to the sink,
      // which the output's 2 records a second make back off).
      REQUIRE(p.Poll().ok());
      CHECK(p.records_in() == static_cast<uint64_t>((round + 1) * kPerRound));
      snapshot = p.Snapshot();
      REQUIRE(p.Commit().ok());
      clock->Advance(absl::Seconds(1));
    }
    CHECK(p.sink().written() == (kRounds - 1) * 3);
    // Two hours later every source is idle and the clock, past the last window, closes it.
    clock->Advance(absl::Hours(2));
    REQUIRE(p.Poll().ok());
    snapshot = p.Snapshot();
    REQUIRE(p.Commit().ok());

    CHECK((*producer)->stats().user_records_written == kRounds * kPerRound);
    CHECK((*producer)->stats().kinesis_records_retried > 0);
    CHECK(p.records_in() == kRounds * kPerRound);
    CHECK(p.late_records() == 0);
    CHECK(p.sink().written() == kRounds * 3);
    CHECK(ReadEverything(output.get()) == golden);
    REQUIRE(input->Flush().ok());
    REQUIRE(output->Flush().ok());
  }
  // Every wait went through the clock and moved it (the producer's Flush waiting for retries, the
  // sink backing off); none would have blocked.
  CHECK(clock->waits() > 0);
  CHECK(clock->sleeps() > 0);
  CHECK(clock->blocking_waits() == 0);

  // Reopened, the streams hold the input and the results.
  auto input = Stream::Open(options("purchases", 2, 20));
  REQUIRE(input.ok());
  auto output = Stream::Open(options("level-sums", 1, 2));
  REQUIRE(output.ok());
  CHECK(ReadEverything(input->get()).size() == kRounds * kPerRound);
  CHECK(ReadEverything(output->get()) == golden);
  // A pipeline restored from the last snapshot over the reopened streams has nothing left to do.
  auto q = TimedLevelSums(input->get(), output->get(), clock);
  REQUIRE(q.Restore(snapshot).ok());
  clock->Advance(absl::Seconds(1));
  REQUIRE(q.Poll().ok());
  CHECK(q.records_in() == kRounds * kPerRound);
  CHECK(q.sink().written() == 0);
  CHECK(ReadEverything(output->get()) == golden);
  CHECK(clock->blocking_waits() == 0);
}

}  // namespace
}  // namespace rill
