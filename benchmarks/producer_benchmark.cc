// Producer throughput against writing to the stream directly: 100-byte records with 16-byte keys
// on a 4-shard unthrottled stream.
//
//   BM_DirectPutRecord          the baseline: one Stream::PutRecord per record
//   BM_DirectPutRecords         Stream::PutRecords in batches of 500 (entries built per record)
//   BM_ProducerPutFlush         Producer::Put (callback form) of `batch` records, then Flush(),
//                               driven by hand on the calling thread; 4,096 keys
//   BM_ProducerPutFlushHotKeys  the same with only 4 keys: one record per key per PutRecords call
//                               makes batches of about one record per shard
//   BM_ProducerWorker           Put from 1 or 2 threads while Start()'s worker sends; Flush per
//                               `batch` records
// Each reports items_per_second (records) and bytes_per_second (keys + data).
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
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

std::unique_ptr<rill::Producer> MakeProducer(rill::Stream& stream) {
  auto producer = rill::Producer::Create(stream);
  if (!producer.ok()) std::abort();
  return std::move(*producer);
}

void SetCounters(benchmark::State& state, int64_t records) {
  state.SetItemsProcessed(records);
  state.SetBytesProcessed(records * static_cast<int64_t>(kDataBytes + kKeyBytes));
}

std::unique_ptr<rill::Stream> g_stream;

void BM_DirectPutRecord(benchmark::State& state) {
  if (state.thread_index() == 0) g_stream = MakeStream();
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys(4096);
  size_t i = static_cast<size_t>(state.thread_index()) * 1000;
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
BENCHMARK(BM_DirectPutRecord)->Threads(1)->Threads(2)->UseRealTime();

void BM_DirectPutRecords(benchmark::State& state) {
  auto stream = MakeStream();
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys(4096);
  std::vector<rill::PutRecordsEntry> entries;
  size_t i = 0;
  int64_t failures = 0;
  for (auto _ : state) {
    entries.clear();
    for (int n = 0; n < 500; ++n) {
      entries.push_back(rill::PutRecordsEntry{keys[i++ & 4095], data, std::nullopt});
    }
    auto result = stream->PutRecords(entries);
    if (!result.ok() || result->failed_record_count != 0) ++failures;
    benchmark::DoNotOptimize(result);
  }
  if (failures != 0) state.SkipWithError("put failed");
  SetCounters(state, state.iterations() * 500);
}
BENCHMARK(BM_DirectPutRecords)->UseRealTime();

void ProducerPutFlush(benchmark::State& state, int key_count) {
  auto stream = MakeStream();
  auto producer = MakeProducer(*stream);
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys(key_count);
  const int batch = static_cast<int>(state.range(0));
  int64_t ok = 0;
  int64_t failed = 0;
  size_t i = 0;
  for (auto _ : state) {
    for (int n = 0; n < batch; ++n) {
      producer->Put(keys[i++ % keys.size()], data, [&](absl::StatusOr<rill::PutRecordResult> r) {
        if (r.ok()) {
          ++ok;
        } else {
          ++failed;
        }
      });
    }
    producer->Flush();
  }
  if (failed != 0 || ok != state.iterations() * batch) state.SkipWithError("put failed");
  SetCounters(state, state.iterations() * batch);
  const rill::ProducerStats s = producer->stats();
  state.counters["records_per_call"] =
      static_cast<double>(s.kinesis_records_sent) / static_cast<double>(s.put_records_calls);
}

void BM_ProducerPutFlush(benchmark::State& state) { ProducerPutFlush(state, 4096); }
BENCHMARK(BM_ProducerPutFlush)->Arg(1000)->Arg(10000)->UseRealTime();

void BM_ProducerPutFlushHotKeys(benchmark::State& state) { ProducerPutFlush(state, 4); }
BENCHMARK(BM_ProducerPutFlushHotKeys)->Arg(1000)->UseRealTime();

std::unique_ptr<rill::Producer> g_producer;
std::atomic<int64_t> g_failed{0};

void BM_ProducerWorker(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_stream = MakeStream();
    g_producer = MakeProducer(*g_stream);
    g_failed = 0;
    if (!g_producer->Start().ok()) std::abort();
  }
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys(4096);
  const int batch = static_cast<int>(state.range(0));
  size_t i = static_cast<size_t>(state.thread_index()) * 2048;
  for (auto _ : state) {
    for (int n = 0; n < batch; ++n) {
      g_producer->Put(keys[i++ & 4095], data, [](absl::StatusOr<rill::PutRecordResult> r) {
        if (!r.ok()) g_failed.fetch_add(1, std::memory_order_relaxed);
      });
    }
    g_producer->Flush();
  }
  SetCounters(state, state.iterations() * batch);
  if (state.thread_index() == 0) {
    g_producer.reset();
    g_stream.reset();
    if (g_failed.load() != 0) state.SkipWithError("put failed");
  }
}
BENCHMARK(BM_ProducerWorker)->Arg(10000)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
