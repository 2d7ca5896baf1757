// Dispatcher and StreamSubscriber: push delivery to callbacks, and following a whole stream
// across resharding with resumable positions.
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/base/error.h"
#include "rill/consume/dispatcher.h"
#include "rill/consume/stream_subscriber.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

struct Fixture {
  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream;

  explicit Fixture(int shards) : stream(testing::MakeStream(clock, shards, "fanout")) {}
};

TEST_CASE("a dispatcher driven by hand delivers every shard's events to callbacks",
          "[dispatcher]") {
  Fixture f(3);
  REQUIRE(f.stream->RegisterStreamConsumer("alerts").ok());
  Dispatcher dispatcher;
  std::map<uint32_t, std::vector<std::string>> got;
  for (uint32_t s = 0; s < 3; ++s) {
    auto sub = f.stream->SubscribeToShard("alerts", ShardId(s), StartingPosition::TrimHorizon());
    REQUIRE(sub.ok());
    dispatcher.Subscribe(std::move(*sub), [&got, s](const SubscribeToShardEvent& e) {
      for (const Record& r : e.records) got[s].emplace_back(r.data);
    });
  }
  CHECK(dispatcher.size() == 3);
  std::map<uint32_t, std::vector<std::string>> expected;
  for (int i = 0; i < 300; ++i) {
    auto p = f.stream->PutRecord("key-" + std::to_string(i), std::to_string(i));
    REQUIRE(p.ok());
    expected[p->shard_id.index()].push_back(std::to_string(i));
  }
  CHECK(dispatcher.RunOnce() == 3);
  CHECK(dispatcher.RunOnce() == 0);
  CHECK(got == expected);
}

TEST_CASE("a dispatcher's RunOnce delivers a burst larger than one event", "[dispatcher]") {
  // An event holds at most 10,000 records (max_records_per_event); RunOnce took one event per
  // subscription, so a loop calling it once per tick fell behind by the rest of every burst.
  Fixture f(1);
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  Dispatcher dispatcher;
  std::vector<std::string> got;
  REQUIRE(dispatcher
              .Subscribe(*f.stream, "c", ShardId(0), StartingPosition::TrimHorizon(),
                         [&](const SubscribeToShardEvent& e) {
                           for (const Record& r : e.records) got.emplace_back(r.data);
                         })
              .ok());
  std::vector<std::string> expected;
  for (int i = 0; i < 25000; ++i) {
    expected.push_back(std::to_string(i));
    REQUIRE(f.stream->PutRecord("k", expected.back()).ok());
  }
  CHECK(dispatcher.RunOnce() == 3);  // 10,000 + 10,000 + 5,000
  CHECK(got == expected);
  CHECK(dispatcher.RunOnce() == 0);
}

TEST_CASE("a dispatcher subscribes by consumer and shard in one call", "[dispatcher]") {
  Fixture f(1);
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  Dispatcher dispatcher;
  int records = 0;
  REQUIRE(dispatcher
              .Subscribe(*f.stream, "c", ShardId(0), StartingPosition::TrimHorizon(),
                         [&](const SubscribeToShardEvent& e) {
                           records += static_cast<int>(e.records.size());
                         })
              .ok());
  CHECK(GetErrorCode(dispatcher.Subscribe(*f.stream, "nobody", ShardId(0),
                                          StartingPosition::Latest(), {})) ==
        ErrorCode::kResourceNotFound);
  REQUIRE(f.stream->PutRecord("k", "v").ok());
  CHECK(dispatcher.RunOnce() == 1);
  CHECK(records == 1);
}

TEST_CASE("a dispatcher reports how each subscription ended", "[dispatcher]") {
  Fixture f(2);
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  Dispatcher dispatcher;
  std::vector<std::pair<uint32_t, ErrorCode>> ends;
  auto on_end = [&](const Subscription& s, absl::Status status) {
    ends.emplace_back(s.shard_id().index(), GetErrorCode(status));
  };
  for (uint32_t s = 0; s < 2; ++s) {
    auto sub = f.stream->SubscribeToShard("c", ShardId(s), StartingPosition::Latest());
    REQUIRE(sub.ok());
    dispatcher.Subscribe(std::move(*sub), {}, on_end);
  }
  // Shard 0 is split: its subscription ends cleanly after the last event.
  REQUIRE(f.stream->SplitShard(ShardId(0), HashKey(12345)).ok());
  dispatcher.RunOnce();
  REQUIRE(ends.size() == 1);
  CHECK(ends[0] == std::make_pair(0u, ErrorCode::kOk));
  // Deregistration ends the other with ResourceNotFound.
  REQUIRE(f.stream->DeregisterStreamConsumer("c").ok());
  dispatcher.RunOnce();
  REQUIRE(ends.size() == 2);
  CHECK(ends[1] == std::make_pair(1u, ErrorCode::kResourceNotFound));
  CHECK(dispatcher.size() == 0);
}

TEST_CASE("a dispatcher on its own thread delivers as records arrive", "[dispatcher]") {
  Fixture f(2);
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  Dispatcher dispatcher;
  std::atomic<int> received{0};
  for (uint32_t s = 0; s < 2; ++s) {
    auto sub = f.stream->SubscribeToShard("c", ShardId(s), StartingPosition::Latest());
    REQUIRE(sub.ok());
    dispatcher.Subscribe(std::move(*sub), [&](const SubscribeToShardEvent& e) {
      received += static_cast<int>(e.records.size());
    });
  }
  std::thread runner([&] { dispatcher.Run(); });
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(f.stream->PutRecord("key-" + std::to_string(i), "x").ok());
  }
  const auto start = std::chrono::steady_clock::now();
  while (received < 1000 && std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  dispatcher.Stop();
  runner.join();
  CHECK(received == 1000);
}

TEST_CASE("a dispatcher's Run on a SimulatedClock wakes for appends and for the clock",
          "[dispatcher][clock]") {
  Fixture f(1);
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  DispatcherOptions options;
  options.clock = f.clock;  // Run sleeps on the stream's clock
  Dispatcher dispatcher(options);
  std::mutex mu;
  std::condition_variable cv;
  int records = 0;
  int heartbeats = 0;
  SubscribeOptions subscribe;
  subscribe.heartbeat_interval = absl::Seconds(5);
  REQUIRE(dispatcher
              .Subscribe(
                  *f.stream, "c", ShardId(0), StartingPosition::Latest(),
                  [&](const SubscribeToShardEvent& e) {
                    {
                      std::lock_guard<std::mutex> lock(mu);
                      if (e.records.empty()) {
                        ++heartbeats;
                      } else {
                        records += static_cast<int>(e.records.size());
                      }
                    }
                    cv.notify_all();
                  },
                  {}, subscribe)
              .ok());
  const absl::Time start = f.clock->Now();
  std::thread runner([&] { dispatcher.Run(); });

  // Appends wake it: the records arrive while the clock stands still.
  for (int i = 0; i < 3; ++i) testing::MustPut(*f.stream, "k", std::to_string(i));
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return records == 3; });
    CHECK(heartbeats == 0);  // due 5 s of the clock after the records, which never came
  }
  // The clock wakes it too: a heartbeat falls due only on the clock.
  f.clock->Advance(absl::Seconds(5));
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return heartbeats == 1; });
  }
  dispatcher.Stop();
  runner.join();
  CHECK(f.clock->Now() - start == absl::Seconds(5));  // Run never moves the clock itself
}

// Reads everything a subscriber has now (events until a quiet Next).
std::vector<StreamSubscriber::Event> DrainSubscriber(StreamSubscriber& s) {
  std::vector<StreamSubscriber::Event> out;
  for (int quiet = 0; quiet < 3;) {
    auto e = s.Next(absl::Milliseconds(5));
    REQUIRE(e.ok());
    if (!e->has_value()) {
      ++quiet;
      continue;
    }
    out.push_back(std::move(**e));
  }
  return out;
}

TEST_CASE("a stream subscriber follows resharding, parents before children", "[subscriber]") {
  Fixture f(2);
  REQUIRE(f.stream->RegisterStreamConsumer("archiver").ok());
  StreamSubscriberOptions options;
  options.consumer_name = "archiver";
  options.initial_position = StartingPosition::TrimHorizon();
  options.subscribe.heartbeat_interval = absl::ZeroDuration();
  auto subscriber = StreamSubscriber::Create(*f.stream, options);
  REQUIRE(subscriber.ok());

  int counter = 0;
  auto put_keys = [&] {
    for (int k = 0; k < 30; ++k) {
      REQUIRE(f.stream->PutRecord("key-" + std::to_string(k), std::to_string(counter++)).ok());
    }
  };
  std::vector<StreamSubscriber::Event> events;
  auto drain = [&] {
    for (auto& e : DrainSubscriber(**subscriber)) events.push_back(std::move(e));
  };
  put_keys();
  drain();
  REQUIRE(f.stream->SplitShard(ShardId(0), HashKey(absl::MakeUint128(uint64_t{1} << 62, 0))).ok());
  put_keys();
  REQUIRE(f.stream->MergeShards(ShardId(3), ShardId(1)).ok());
  put_keys();
  drain();
  // Every record once; for each key, in put order.
  std::map<std::string, int> last;
  std::set<std::string> seen;
  for (const auto& e : events) {
    for (const Record& r : e.event.records) {
      CHECK(seen.insert(std::string(r.data)).second);
      const int value = std::stoi(std::string(r.data));
      auto it = last.find(std::string(r.partition_key));
      if (it != last.end()) CHECK(value > it->second);
      last[std::string(r.partition_key)] = value;
    }
  }
  CHECK(seen.size() == 90);
  // Finished shards are reported as such.
  const auto positions = (*subscriber)->positions();
  CHECK(positions.at(ShardId(0)) == std::nullopt);
  CHECK(positions.at(ShardId(1)) == std::nullopt);
  CHECK(positions.at(ShardId(3)) == std::nullopt);
  CHECK(positions.at(ShardId(2)).has_value());
  CHECK(positions.at(ShardId(4)).has_value());
}

TEST_CASE("a stream subscriber resumes from its positions without gaps or duplicates",
          "[subscriber]") {
  Fixture f(3);
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  StreamSubscriberOptions options;
  options.consumer_name = "c";
  options.initial_position = StartingPosition::TrimHorizon();
  options.subscribe.max_records_per_event = 7;
  options.subscribe.heartbeat_interval = absl::ZeroDuration();
  std::vector<std::string> all;
  for (int i = 0; i < 100; ++i) {
    REQUIRE(f.stream->PutRecord("key-" + std::to_string(i), std::to_string(i)).ok());
  }
  std::multiset<std::string> got;
  std::map<ShardId, std::optional<SequenceNumber>> saved;
  {
    auto first = StreamSubscriber::Create(*f.stream, options);
    REQUIRE(first.ok());
    for (int i = 0; i < 5; ++i) {  // a few events, then "crash"
      auto e = (*first)->Next(absl::Milliseconds(50));
      REQUIRE(e.ok());
      REQUIRE(e->has_value());
      for (const Record& r : (*e)->event.records) got.insert(std::string(r.data));
    }
    saved = (*first)->positions();
  }
  for (int i = 100; i < 120; ++i) {
    REQUIRE(f.stream->PutRecord("key-" + std::to_string(i), std::to_string(i)).ok());
  }
  f.clock->Advance(absl::Seconds(6));  // past the resubscribe interval
  options.resume_from = saved;
  auto second = StreamSubscriber::Create(*f.stream, options);
  REQUIRE(second.ok());
  for (auto& e : DrainSubscriber(**second)) {
    for (const Record& r : e.event.records) got.insert(std::string(r.data));
  }
  CHECK(got.size() == 120);
  for (int i = 0; i < 120; ++i) CHECK(got.count(std::to_string(i)) == 1);
}

TEST_CASE("a stream subscriber renews subscriptions whose lifetime passed", "[subscriber]") {
  Fixture f(1);
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  StreamSubscriberOptions options;
  options.consumer_name = "c";
  options.initial_position = StartingPosition::TrimHorizon();
  options.subscribe.lifetime = absl::Seconds(10);
  options.subscribe.heartbeat_interval = absl::ZeroDuration();
  auto subscriber = StreamSubscriber::Create(*f.stream, options);
  REQUIRE(subscriber.ok());
  std::vector<std::string> got;
  for (int round = 0; round < 5; ++round) {
    REQUIRE(f.stream->PutRecord("k", std::to_string(round)).ok());
    for (auto& e : DrainSubscriber(**subscriber)) {
      for (const Record& r : e.event.records) got.emplace_back(r.data);
    }
    f.clock->Advance(absl::Seconds(11));  // each round outlives a subscription
  }
  CHECK(got == std::vector<std::string>{"0", "1", "2", "3", "4"});
}

TEST_CASE("a stream subscriber's Next on a SimulatedClock moves the clock instead of blocking",
          "[subscriber][clock]") {
  Fixture f(1);
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  StreamSubscriberOptions options;
  options.consumer_name = "c";
  options.initial_position = StartingPosition::TrimHorizon();
  options.subscribe.heartbeat_interval = absl::ZeroDuration();
  auto first = StreamSubscriber::Create(*f.stream, options);
  REQUIRE(first.ok());
  absl::Time start = f.clock->Now();
  auto quiet = (*first)->Next(absl::Seconds(1));  // subscribes; nothing to read
  REQUIRE(quiet.ok());
  CHECK_FALSE(quiet->has_value());
  CHECK(f.clock->Now() - start == absl::Seconds(1));

  // A second subscriber of the same consumer is refused for 5 s of the clock (the resubscribe
  // interval), and retries on the clock: its wait moves the clock until it may take over.
  testing::MustPut(*f.stream, "k", "x");
  auto second = StreamSubscriber::Create(*f.stream, options);
  REQUIRE(second.ok());
  start = f.clock->Now();
  auto event = (*second)->Next(absl::Minutes(1));
  REQUIRE(event.ok());
  REQUIRE(event->has_value());
  REQUIRE((*event)->event.records.size() == 1);
  CHECK((*event)->event.records[0].data == "x");
  CHECK(f.clock->Now() - start >= absl::Seconds(4));  // 5 s after the first subscription
  CHECK(f.clock->Now() - start < absl::Seconds(5));
}

TEST_CASE("StreamSubscriber::Create validates", "[subscriber]") {
  Fixture f(1);
  StreamSubscriberOptions options;
  options.consumer_name = "missing";
  CHECK(GetErrorCode(StreamSubscriber::Create(*f.stream, options).status()) ==
        ErrorCode::kResourceNotFound);
  REQUIRE(f.stream->RegisterStreamConsumer("c").ok());
  options.consumer_name = "c";
  options.initial_position = StartingPosition::AtSequenceNumber("1");
  CHECK(GetErrorCode(StreamSubscriber::Create(*f.stream, options).status()) ==
        ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace rill
