// Enhanced fan-out latency: the time from PutRecord's return... to be exact, from just before the
// put to the moment a subscriber's callback sees the record, at a paced rate of 100 k and 1 M
// records/s, with 1, 4 and 16 subscribers (all served by one Dispatcher thread, as an application
// would run them), and the throughput 16 subscribers sustain. The baseline is the same run with no
// subscriber: the pacing loop's own cost.
//
// Counters: p50_us, p99_us, p999_us, max_us (latency), delivered (records seen by subscribers).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "rill/consume/dispatcher.h"
#include "rill/stream/stream.h"

namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<rill::Stream> MakeStream() {
  rill::StreamOptions options;
  options.name = "fanout-bench";
  options.shard_count = 1;
  options.enhanced_fan_out.bytes_per_second_per_shard = 0;  // measure delivery, not the limit
  options.allow_short_retention = true;
  options.retention = absl::Seconds(10);
  return std::move(*rill::Stream::Create(options));
}

// Args: records per second, subscribers.
void BM_FanOutLatency(benchmark::State& state) {
  const int64_t rate = state.range(0);
  const int subscribers = static_cast<int>(state.range(1));
  const int64_t records = rate / 2;  // half a second of traffic
  for (auto _ : state) {
    auto stream = MakeStream();
    rill::Dispatcher dispatcher;
    std::vector<std::vector<int64_t>> latencies(static_cast<size_t>(subscribers));
    std::atomic<int64_t> delivered{0};
    for (int s = 0; s < subscribers; ++s) {
      const std::string name = "c" + std::to_string(s);
      if (!stream->RegisterStreamConsumer(name).ok()) std::abort();
      rill::SubscribeOptions o;
      o.lifetime = absl::ZeroDuration();
      auto sub =
          stream->SubscribeToShard(name, rill::ShardId(0), rill::StartingPosition::Latest(), o);
      if (!sub.ok()) std::abort();
      auto& mine = latencies[static_cast<size_t>(s)];
      mine.reserve(static_cast<size_t>(records));
      dispatcher.Subscribe(
          std::move(*sub), [&mine, &delivered](const rill::SubscribeToShardEvent& e) {
            const int64_t now = NowNs();
            for (const rill::Record& r : e.records) {
              int64_t sent;
              std::memcpy(&sent, r.data.data(), sizeof(sent));
              mine.push_back(now - sent);
            }
            delivered.fetch_add(static_cast<int64_t>(e.records.size()), std::memory_order_relaxed);
          });
    }
    std::thread runner([&] { dispatcher.Run(); });
    std::string data(100, 'd');
    const int64_t start = NowNs();
    const int64_t interval_ns = 1000000000 / rate;
    for (int64_t i = 0; i < records; ++i) {
      const int64_t due = start + i * interval_ns;
      while (NowNs() < due) {
      }
      const int64_t sent = NowNs();
      std::memcpy(data.data(), &sent, sizeof(sent));
      if (!stream->PutRecord("player-42", data).ok()) std::abort();
    }
    const int64_t want = records * subscribers;
    const int64_t deadline = NowNs() + 5000000000;
    while (delivered.load() < want && NowNs() < deadline) std::this_thread::yield();
    const double seconds = static_cast<double>(NowNs() - start) / 1e9;
    dispatcher.Stop();
    runner.join();
    std::vector<int64_t> all;
    for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) {
      if (all.empty()) return 0.0;
      return static_cast<double>(
                 all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))]) /
             1000.0;
    };
    state.counters["p50_us"] = pct(0.50);
    state.counters["p99_us"] = pct(0.99);
    state.counters["p999_us"] = pct(0.999);
    state.counters["max_us"] = all.empty() ? 0 : static_cast<double>(all.back()) / 1000.0;
    state.counters["delivered"] = static_cast<double>(delivered.load());
    state.counters["delivered_per_s"] = static_cast<double>(delivered.load()) / seconds;
  }
}
BENCHMARK(BM_FanOutLatency)
    ->Args({100000, 0})
    ->Args({100000, 1})
    ->Args({100000, 4})
    ->Args({100000, 16})
    ->Args({1000000, 1})
    ->Args({1000000, 4})
    ->Args({1000000, 16})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Throughput: puts as fast as one thread can while 16 subscribers read everything.
void BM_FanOutThroughput16(benchmark::State& state) {
  auto stream = MakeStream();
  rill::Dispatcher dispatcher;
  std::atomic<int64_t> delivered{0};
  for (int s = 0; s < 16; ++s) {
    const std::string name = "c" + std::to_string(s);
    if (!stream->RegisterStreamConsumer(name).ok()) std::abort();
    rill::SubscribeOptions o;
    o.lifetime = absl::ZeroDuration();
    auto sub =
        stream->SubscribeToShard(name, rill::ShardId(0), rill::StartingPosition::Latest(), o);
    dispatcher.Subscribe(std::move(*sub), [&](const rill::SubscribeToShardEvent& e) {
      delivered.fetch_add(static_cast<int64_t>(e.records.size()), std::memory_order_relaxed);
    });
  }
  std::thread runner([&] { dispatcher.Run(); });
  const std::string data(100, 'd');
  int64_t puts = 0;
  for (auto _ : state) {
    if (!stream->PutRecord("player-42", data).ok()) std::abort();
    ++puts;
  }
  const int64_t deadline = NowNs() + 10000000000;
  while (delivered.load() < puts * 16 && NowNs() < deadline) std::this_thread::yield();
  dispatcher.Stop();
  runner.join();
  state.SetItemsProcessed(puts);
  state.counters["delivered"] = static_cast<double>(delivered.load());
}
BENCHMARK(BM_FanOutThroughput16)->UseRealTime();

}  // namespace
