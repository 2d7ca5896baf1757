// Producer throughput against writing to the stream directly, with the same number of calling
// threads in the same run: 100-byte records with 16-byte keys (4,096 keys) on a 4-shard
// unthrottled stream.
//
//   BM_DirectPutRecords   the baseline: each thread builds entries per record and calls
//                         Stream::PutRecords with 500 of them
//   BM_DirectPutRecord    one Stream::PutRecord per record (for reference)
//   BM_ProducerPut        one shared Producer (worker Start()ed), each thread Put()s (callback
//                         form) `batch` records, then Flush(); reports vs_direct_put_records, its
//                         records/s over BM_DirectPutRecords' with the same thread count
//   BM_ProducerPutHotKeys the same with only 4 keys: one record per key per PutRecords call
//                         makes batches of about one record per shard
//   BM_ProducerLatency    one thread Puts at a fixed rate (records/s = the argument) with
//                         max_buffered_time 100 ms; reports the p50 and p99 of the time from Put
//                         to callback
// Threads 1 and 8 (the callers, on however many cores the machine has). Each reports
// items_per_second (records) and bytes_per_second (keys + data).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "rill/stream/producer.h"
#include "rill/stream/stream.h"

namespace {

constexpr size_t kDataBytes = 100;
constexpr size_t kKeyBytes = 16;

std::vector<std::string> Keys(int n) {
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) {
    std::string k = "player-" + std::to_string(100000 + i * 37);
    k.resize(kKeyBytes, '0');
    keys.push_back(k);
  }
  return keys;
}

std::unique_ptr<rill::Stream> MakeStream() {
  rill::StreamOptions options;
  options.name = "bench";
  options.shard_count = 4;
  auto stream = rill::Stream::Create(options);
  if (!stream.ok()) std::abort();
  return std::move(*stream);
}

std::unique_ptr<rill::Producer> MakeProducer(rill::Stream& stream,
                                             rill::ProducerOptions options = {}) {
  auto producer = rill::Producer::Create(stream, options);
  if (!producer.ok()) std::abort();
  return std::move(*producer);
}

void SetCounters(benchmark::State& state, int64_t records) {
  state.SetItemsProcessed(records);
  state.SetBytesProcessed(records * static_cast<int64_t>(kDataBytes + kKeyBytes));
}

// Shared by the threads of one benchmark run: set up by thread 0 before the loop's start barrier,
// torn down by it after the end barrier.
std::unique_ptr<rill::Stream> g_stream;
std::unique_ptr<rill::Producer> g_producer;
std::atomic<int64_t> g_records{0};
std::atomic<int64_t> g_failed{0};
std::atomic<int> g_finished{0};
std::chrono::steady_clock::time_point g_start;
// BM_DirectPutRecords' records/s by thread count, for the ratios.
std::map<int, double> g_direct_rate;

void StartRun(benchmark::State& state) {
  if (state.thread_index() != 0) return;
  g_records = 0;
  g_failed = 0;
  g_finished = 0;
  g_start = std::chrono::steady_clock::now();
}

// Every thread, after the loop: adds its records; thread 0 then waits for the others' and returns
// the records/s of the whole run.
double FinishRun(benchmark::State& state, int64_t records) {
  g_records += records;
  g_finished.fetch_add(1);
  if (state.thread_index() != 0) return 0;
  while (g_finished.load() < state.threads()) std::this_thread::yield();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
  return static_cast<double>(g_records.load()) / seconds;
}

void BM_DirectPutRecords(benchmark::State& state) {
  if (state.thread_index() == 0) g_stream = MakeStream();
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys(4096);
  std::vector<rill::PutRecordsEntry> entries;
  size_t i = static_cast<size_t>(state.thread_index()) * 512;
  int64_t failures = 0;
  StartRun(state);
  for (auto _ : state) {
    entries.clear();
    for (int n = 0; n < 500; ++n) {
      entries.push_back(rill::PutRecordsEntry{keys[i++ & 4095], data, std::nullopt});
    }
    auto result = g_stream->PutRecords(entries);
    if (!result.ok() || result->failed_record_count != 0) ++failures;
    benchmark::DoNotOptimize(result);
  }
  const double rate = FinishRun(state, state.iterations() * 500);
  if (failures != 0) state.SkipWithError("put failed");
  SetCounters(state, state.iterations() * 500);
  if (state.thread_index() == 0) {
    g_direct_rate[state.threads()] = rate;
    g_stream.reset();
  }
}
BENCHMARK(BM_DirectPutRecords)->Threads(1)->Threads(8)->UseRealTime();

void BM_DirectPutRecord(benchmark::State& state) {
  if (state.thread_index() == 0) g_stream = MakeStream();
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys(4096);
  size_t i = static_cast<size_t>(state.thread_index()) * 512;
  int64_t failures = 0;
  for (auto _ : state) {
    auto result = g_stream->PutRecord(keys[i++ & 4095], data);
    if (!result.ok()) ++failures;
    benchmark::DoNotOptimize(result);
  }
  if (failures != 0) state.SkipWithError("put failed");
  SetCounters(state, state.iterations());
  if (state.thread_index() == 0) g_stream.reset();
}
BENCHMARK(BM_DirectPutRecord)->Threads(1)->Threads(8)->UseRealTime();

void ProducerPut(benchmark::State& state, int key_count) {
  if (state.thread_index() == 0) {
    g_stream = MakeStream();
    g_producer = MakeProducer(*g_stream);
    if (!g_producer->Start().ok()) std::abort();
  }
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys(key_count);
  const int batch = static_cast<int>(state.range(0));
  size_t i = static_cast<size_t>(state.thread_index()) * 512;
  StartRun(state);
  for (auto _ : state) {
    for (int n = 0; n < batch; ++n) {
      g_producer->Put(keys[i++ % keys.size()], data, [](absl::StatusOr<rill::PutRecordResult> r) {
        if (!r.ok()) g_failed.fetch_add(1, std::memory_order_relaxed);
      });
    }
    g_producer->Flush();
  }
  const double rate = FinishRun(state, state.iterations() * batch);
  SetCounters(state, state.iterations() * batch);
  if (state.thread_index() == 0) {
    const rill::ProducerStats s = g_producer->stats();
    g_producer.reset();
    g_stream.reset();
    if (g_failed.load() != 0) state.SkipWithError("put failed");
    state.counters["records_per_call"] =
        static_cast<double>(s.kinesis_records_sent) / static_cast<double>(s.put_records_calls);
    if (auto it = g_direct_rate.find(state.threads()); it != g_direct_rate.end()) {
      state.counters["vs_direct_put_records"] = rate / it->second;
    }
  }
}

void BM_ProducerPut(benchmark::State& state) { ProducerPut(state, 4096); }
BENCHMARK(BM_ProducerPut)->Arg(10000)->Threads(1)->Threads(8)->UseRealTime();

void BM_ProducerPutHotKeys(benchmark::State& state) { ProducerPut(state, 4); }
BENCHMARK(BM_ProducerPutHotKeys)->Arg(1000)->Threads(1)->UseRealTime();

void BM_ProducerLatency(benchmark::State& state) {
  auto stream = MakeStream();
  auto producer = MakeProducer(*stream);  // max_buffered_time 100 ms
  if (!producer->Start().ok()) std::abort();
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys(4096);
  const int64_t rate = state.range(0);
  constexpr int kRecords = 100000;
  using Clock = std::chrono::steady_clock;
  std::vector<Clock::time_point> put_at(kRecords);
  std::vector<double> waited_ms(kRecords);
  for (auto _ : state) {
    const Clock::time_point start = Clock::now();
    for (int n = 0; n < kRecords; ++n) {
      const Clock::time_point due = start + std::chrono::nanoseconds(n * 1000000000LL / rate);
      while (Clock::now() < due) std::this_thread::yield();
      put_at[n] = Clock::now();
      producer->Put(keys[n & 4095], data, [&put_at, &waited_ms, n](auto) {
        waited_ms[n] = std::chrono::duration<double, std::milli>(Clock::now() - put_at[n]).count();
      });
    }
    producer->Flush();
  }
  std::sort(waited_ms.begin(), waited_ms.end());
  state.counters["p50_ms"] = waited_ms[kRecords / 2];
  state.counters["p99_ms"] = waited_ms[kRecords * 99 / 100];
  SetCounters(state, state.iterations() * kRecords);
}
BENCHMARK(BM_ProducerLatency)->Arg(20000)->Arg(200000)->Iterations(1)->UseRealTime();

}  // namespace
