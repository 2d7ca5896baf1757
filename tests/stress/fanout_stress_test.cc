// Producers, a resharding and four push consumers at once: every consumer sees every record
// exactly once, each partition key in put order. Run it under ThreadSanitizer with
// `scripts/test.sh tsan`.
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/consume/stream_subscriber.h"
#include "rill/stream/stream.h"

namespace rill {
namespace {

TEST_CASE("4 stream subscribers follow 2 producers through a split", "[stress][fanout]") {
  StreamOptions options;
  options.name = "fanout-stress";
  options.shard_count = 4;
  options.enhanced_fan_out.bytes_per_second_per_shard = 0;
  auto created = Stream::Create(options);
  REQUIRE(created.ok());
  Stream& stream = **created;
  constexpr int kConsumers = 4;
  constexpr int kProducers = 2;
  constexpr int kPerProducer = 20000;
  std::vector<std::unique_ptr<StreamSubscriber>> subscribers;
  for (int c = 0; c < kConsumers; ++c) {
    REQUIRE(stream.RegisterStreamConsumer("c" + std::to_string(c)).ok());
    StreamSubscriberOptions o;
    o.consumer_name = "c" + std::to_string(c);
    o.initial_position = StartingPosition::TrimHorizon();
    o.subscribe.heartbeat_interval = absl::ZeroDuration();
    auto s = StreamSubscriber::Create(stream, o);
    REQUIRE(s.ok());
    subscribers.push_back(std::move(*s));
  }
  std::atomic<bool> done_putting{false};
  std::vector<std::map<std::string, std::vector<int>>> seen(kConsumers);
  std::vector<std::thread> readers;
  for (int c = 0; c < kConsumers; ++c) {
    readers.emplace_back([&, c] {
      size_t total = 0;
      int quiet = 0;
      while (quiet < 50) {
        auto e = subscribers[static_cast<size_t>(c)]->Next(absl::Milliseconds(10));
        if (!e.ok()) {
          FAIL_CHECK(e.status().ToString());
          return;
        }
        if (!e->has_value()) {
          if (done_putting.load() && total == kProducers * kPerProducer) ++quiet;
          if (done_putting.load()) ++quiet;
          continue;
        }
        for (const Record& r : (*e)->event.records) {
          const std::string data(r.data);
          const auto colon = data.find(':');
          seen[static_cast<size_t>(c)][std::string(r.partition_key)].push_back(
              std::stoi(data.substr(colon + 1)));
          ++total;
        }
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        const std::string key = "p" + std::to_string(p) + "-k" + std::to_string(i % 64);
        REQUIRE(stream.PutRecord(key, std::to_string(p) + ":" + std::to_string(i)).ok());
        if (p == 0 && i == kPerProducer / 2) {
          REQUIRE(
              stream.SplitShard(ShardId(1), HashKey(absl::MakeUint128(uint64_t{3} << 61, 0))).ok());
        }
      }
    });
  }
  for (std::thread& t : producers) t.join();
  done_putting = true;
  for (std::thread& t : readers) t.join();
  for (int c = 0; c < kConsumers; ++c) {
    INFO("consumer " << c);
    size_t total = 0;
    for (const auto& [key, values] : seen[static_cast<size_t>(c)]) {
      total += values.size();
      // Each key's records in put order, each once: values of one producer's key increase by 64.
      for (size_t i = 1; i < values.size(); ++i) CHECK(values[i] == values[i - 1] + 64);
    }
    CHECK(total == static_cast<size_t>(kProducers * kPerProducer));
  }
}

}  // namespace
}  // namespace rill
