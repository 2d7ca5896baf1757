// Stream throughput: PutRecord and PutRecords of 100-byte records with 16-byte keys over 1, 4, 64
// and 100 shards from 1 and 2 threads, and GetRecords scans. The baseline beside them is a bare
// memcpy of the same bytes into a preallocated buffer: the floor any put path pays.
//
// Put throughput where it matters (issue 14 §5): a game server with a 24 h retention writes
// every record into memory the process never touched, over ~100 shards, from several threads.
// Three ratios, each between two cases of the same run (take medians of repetitions: this VM is
// shared and noisy):
//   100 shards vs 4       BM_PutRecord/100/real_time/threads:1 over BM_PutRecord/4/.../threads:1
//   fresh vs recycled     BM_PutRecord/N/real_time/threads:1 over
//                         BM_PutRecordSteadyState/N/real_time/threads:1, N = 4 and 100
//   two threads vs one    BM_PutRecord/100/real_time/threads:2 over .../threads:1 (items_per_second
//                         is the total of both threads; each thread writes its own keys)
// Goals: >= 0.8, >= 0.6, >= 1.6. The command:
//   stream_benchmark --benchmark_filter='BM_PutRecord(SteadyState)?/(4|100)/'
//       --benchmark_repetitions=5 --benchmark_min_time=0.5 --benchmark_report_aggregates_only=true
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <malloc.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include "rill/stream/stream.h"

namespace {

constexpr size_t kDataBytes = 100;
constexpr size_t kKeyBytes = 16;

// 4096 partition keys of kKeyBytes; each `thread` gets its own (as a game server's threads each
// serve their own players).
std::vector<std::string> Keys(int thread = 0) {
  std::vector<std::string> keys;
  for (int i = 0; i < 4096; ++i) {
    std::string k = "player-" + std::to_string(100000 + (i + 4096 * thread) * 37);
    k.resize(kKeyBytes, '0');
    keys.push_back(k);
  }
  return keys;
}

std::unique_ptr<rill::Stream> MakeStream(int shards) {
  rill::StreamOptions options;
  options.name = "bench";
  options.shard_count = shards;
  auto stream = rill::Stream::Create(options);
  if (!stream.ok()) std::abort();
  return std::move(*stream);
}

void BM_MemcpyBaseline(benchmark::State& state) {
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys();
  std::vector<char> buffer(64 << 20);
  size_t offset = 0, i = 0;
  for (auto _ : state) {
    const std::string& k = keys[i++ & 4095];
    if (offset + 130 > buffer.size()) offset = 0;
    std::memcpy(buffer.data() + offset, k.data(), k.size());
    std::memcpy(buffer.data() + offset + k.size(), data.data(), data.size());
    offset += k.size() + data.size();
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * (kDataBytes + kKeyBytes));
}
BENCHMARK(BM_MemcpyBaseline);

// The stream the threads of a multi-threaded case share: thread 0 makes it before the timed loop
// (whose start is a barrier) and drops it after (whose end is one too).
rill::Stream* g_stream = nullptr;
std::unique_ptr<rill::Stream> g_owner;

// After a case that wrote fresh memory: gives the stream's memory back to the system (the
// allocator keeps what is freed), so that the next case writes fresh memory too.
void DropStream() {
  g_owner.reset();
  g_stream = nullptr;
  malloc_trim(0);
}

// state.range(0) shards. Fresh memory: a 24 h retention keeps every record, so every put writes
// memory the process had not touched (what a game server writes all day).
void BM_PutRecord(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_owner = MakeStream(static_cast<int>(state.range(0)));
    g_stream = g_owner.get();
  }
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys(state.thread_index());
  size_t i = 0;
  int64_t failures = 0;
  for (auto _ : state) {
    auto result = g_stream->PutRecord(keys[i++ & 4095], data);
    if (!result.ok()) ++failures;
    benchmark::DoNotOptimize(result);
  }
  if (failures != 0) state.SkipWithError("put failed");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * (kDataBytes + kKeyBytes));
  if (state.thread_index() == 0) {
    state.counters["mem_bytes_per_record"] =
        benchmark::Counter(static_cast<double>(g_stream->MemoryBytes()) /
                               static_cast<double>(state.iterations() * state.threads()),
                           benchmark::Counter::kDefaults);
    DropStream();
  }
}
BENCHMARK(BM_PutRecord)->Arg(1)->Arg(4)->Arg(64)->Arg(100)->Threads(1)->Threads(2)->UseRealTime();

void BM_PutRecords(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_owner = MakeStream(static_cast<int>(state.range(0)));
    g_stream = g_owner.get();
  }
  const auto keys = Keys();
  std::vector<rill::PutRecordsEntry> entries(500);
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].partition_key = keys[(i * 7 + static_cast<size_t>(state.thread_index())) & 4095];
    entries[i].data.assign(kDataBytes, 'd');
  }
  int64_t failures = 0;
  for (auto _ : state) {
    auto result = g_stream->PutRecords(entries);
    if (!result.ok() || result->failed_record_count != 0) ++failures;
    benchmark::DoNotOptimize(result);
  }
  if (failures != 0) state.SkipWithError("put failed");
  state.SetItemsProcessed(state.iterations() * 500);
  state.SetBytesProcessed(state.iterations() * 500 * (kDataBytes + kKeyBytes));
}
BENCHMARK(BM_PutRecords)->Arg(1)->Arg(4)->Arg(64)->Threads(1)->Threads(2)->UseRealTime();

// Scans a shard of 1M records with GetRecords(limit = state.range(0)).
void BM_GetRecordsScan(benchmark::State& state) {
  auto stream = MakeStream(1);
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys();
  constexpr int kRecords = 1000000;
  for (int i = 0; i < kRecords; ++i) {
    if (!stream->PutRecord(keys[static_cast<size_t>(i) & 4095], data).ok()) std::abort();
  }
  const int limit = static_cast<int>(state.range(0));
  int64_t records = 0;
  auto it = stream->GetShardIterator(rill::ShardId(0), rill::StartingPosition::TrimHorizon());
  rill::ShardIterator iterator = *it;
  for (auto _ : state) {
    auto batch = stream->GetRecords(iterator, limit);
    if (!batch.ok()) {
      state.SkipWithError("GetRecords failed");
      break;
    }
    records += static_cast<int64_t>(batch->records.size());
    if (batch->records.empty()) {
      iterator = *stream->GetShardIterator(rill::ShardId(0), rill::StartingPosition::TrimHorizon());
    } else {
      iterator = *batch->next_shard_iterator;
    }
  }
  state.SetItemsProcessed(records);
  state.SetBytesProcessed(records * static_cast<int64_t>(kDataBytes + kKeyBytes));
}
BENCHMARK(BM_GetRecordsScan)->Arg(100)->Arg(10000);

}  // namespace

namespace {

// Every key distinct: the per-thread hash-key cache never hits, so each put pays for MD5.
void BM_PutRecordDistinctKeys(benchmark::State& state) {
  auto stream = MakeStream(static_cast<int>(state.range(0)));
  const std::string data(kDataBytes, 'd');
  char key[kKeyBytes + 1];
  uint64_t i = 0;
  for (auto _ : state) {
    std::snprintf(key, sizeof(key), "dev-%012llu", static_cast<unsigned long long>(i++));
    auto result = stream->PutRecord(std::string_view(key, kKeyBytes), data);
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * (kDataBytes + kKeyBytes));
}
BENCHMARK(BM_PutRecordDistinctKeys)->Arg(4);

}  // namespace

namespace {

// Puts (untimed) until the stream's memory stops growing: no new high in 2^18 puts twice in a
// row, or 2^24 puts. From then on, a stream with a short retention writes into chunks it freed.
void WarmUp(rill::Stream& stream, const std::vector<std::string>& keys, const std::string& data) {
  size_t high = 0, i = 0;
  for (int quiet = 0; quiet < 2 && i < (size_t{1} << 24);) {
    for (int k = 0; k < (1 << 18); ++k) {
      if (!stream.PutRecord(keys[i++ & 4095], data).ok()) std::abort();
    }
    const size_t now = stream.MemoryBytes();
    quiet = now > high ? 0 : quiet + 1;
    high = std::max(high, now);
  }
}

// Steady state: a 50 ms retention makes the stream free chunks as fast as it fills them, so puts
// write into recycled memory: BM_PutRecord's baseline for the cost of fresh memory. The stream
// is warmed up first: 100 shards hold 200 MiB of chunks before the first is freed.
void BM_PutRecordSteadyState(benchmark::State& state) {
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys(state.thread_index());
  if (state.thread_index() == 0) {
    rill::StreamOptions options;
    options.name = "bench";
    options.shard_count = static_cast<int>(state.range(0));
    options.allow_short_retention = true;
    options.retention = absl::Milliseconds(50);
    g_owner = *rill::Stream::Create(options);
    g_stream = g_owner.get();
    WarmUp(*g_stream, keys, data);
  }
  size_t i = 0;
  for (auto _ : state) {
    auto result = g_stream->PutRecord(keys[i++ & 4095], data);
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * (kDataBytes + kKeyBytes));
  if (state.thread_index() == 0) {
    state.counters["mem_mb"] = static_cast<double>(g_stream->MemoryBytes()) / 1e6;
    g_owner.reset();
    g_stream = nullptr;
  }
}
BENCHMARK(BM_PutRecordSteadyState)
    ->Arg(1)
    ->Arg(4)
    ->Arg(64)
    ->Arg(100)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

}  // namespace

namespace {

// Puts while another thread reshapes the stream every millisecond (UpdateShardCount 4 <-> 8, a
// thousand times Kinesis' daily quota per second): what a producer pays when its shard closes
// under it (a wait for the new routing table), against BM_PutRecordSteadyState/4.
void BM_PutRecordDuringReshard(benchmark::State& state) {
  rill::StreamOptions options;
  options.name = "bench";
  options.shard_count = 4;
  options.allow_short_retention = true;
  options.retention = absl::Milliseconds(50);
  options.max_shard_count_updates_per_day = 1 << 30;
  auto stream = *rill::Stream::Create(options);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> reshards{0};
  std::thread resharder([&] {
    for (int target = 8; !stop.load(std::memory_order_relaxed); target = 12 - target) {
      if (stream->UpdateShardCount(target).ok()) reshards.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys();
  size_t i = 0;
  for (auto _ : state) {
    auto result = stream->PutRecord(keys[i++ & 4095], data);
    benchmark::DoNotOptimize(result);
  }
  stop = true;
  resharder.join();
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * (kDataBytes + kKeyBytes));
  state.counters["reshards"] = static_cast<double>(reshards.load());
}
BENCHMARK(BM_PutRecordDuringReshard)->UseRealTime();

// The cost of enforcing Kinesis' write limits on the put path, with limits high enough never to
// refuse: two token buckets (each a lock and a little arithmetic) per put.
void BM_PutRecordLimited(benchmark::State& state) {
  rill::StreamOptions options;
  options.name = "bench";
  options.shard_count = 4;
  options.allow_short_retention = true;
  options.retention = absl::Milliseconds(50);
  options.shard_limits.write_bytes_per_second = int64_t{1} << 40;
  options.shard_limits.write_records_per_second = int64_t{1} << 40;
  auto stream = *rill::Stream::Create(options);
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys();
  size_t i = 0;
  for (auto _ : state) {
    auto result = stream->PutRecord(keys[i++ & 4095], data);
    benchmark::DoNotOptimize(result);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * (kDataBytes + kKeyBytes));
}
BENCHMARK(BM_PutRecordLimited);

}  // namespace

namespace {

// The memory limit on the put path, against BM_PutRecordSteadyState/4 in the same run.
// Arg 0: kRejectPuts with a budget never reached (the check under the append lock on every
// put); arg 1: kRetireOldest, never reached (one relaxed load per put); arg 2: kRetireOldest at
// a 64 MiB budget with a retention of 24 h, so that retirement, not retention, frees the chunks
// the puts refill.
void BM_PutRecordMemoryLimit(benchmark::State& state) {
  rill::StreamOptions options;
  options.name = "bench";
  options.shard_count = 4;
  options.allow_short_retention = true;
  options.retention = state.range(0) == 2 ? absl::Hours(24) : absl::Milliseconds(50);
  options.memory_limit.budget_bytes = state.range(0) == 2 ? size_t{64} << 20 : size_t{1} << 40;
  options.memory_limit.policy = state.range(0) == 0 ? rill::MemoryLimitPolicy::kRejectPuts
                                                    : rill::MemoryLimitPolicy::kRetireOldest;
  auto stream = *rill::Stream::Create(options);
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys();
  size_t i = 0;
  int64_t failures = 0;
  for (auto _ : state) {
    auto result = stream->PutRecord(keys[i++ & 4095], data);
    if (!result.ok()) ++failures;
    benchmark::DoNotOptimize(result);
  }
  if (failures != 0) state.SkipWithError("put failed");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * (kDataBytes + kKeyBytes));
  state.counters["mem_mb"] = static_cast<double>(stream->MemoryBytes()) / 1e6;
  state.counters["retired"] = static_cast<double>(stream->DescribeStreamSummary().retired_records);
}
BENCHMARK(BM_PutRecordMemoryLimit)->Arg(0)->Arg(1)->Arg(2);

// The resident set of the process, from /proc/self/statm (its second field, in pages); 0 where
// there is no such file.
size_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int read = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return read == 2 ? static_cast<size_t>(resident) * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// Memory per record beyond its key and data: 16-byte keys and 100-byte data over 100 shards,
// state.range(0) records per shard. The records go round-robin over the shards (by explicit
// hash key), so that every shard's chunks fill in step: the counters taken at the last round
// before the shards started new chunks measure full chunks only (the record headers, the sparse
// index, each chunk's unusable tail), what a long retention holds per record:
//   overhead_B_per_record       MemoryBytes() per record, minus the 116 bytes of key and data
//   rss_overhead_B_per_record   the growth of the resident set per record, minus the same
// and at the end, with every shard's newest chunk part-filled (up to 2 MiB per shard on top):
//   end_overhead_B_per_record
// The resident set is the process'. Run the benchmark on its own
// (--benchmark_filter=BM_MemoryPerRecord): chunks that earlier benchmarks freed are pooled or
// kept by the allocator, and reusing them would not grow it.
void BM_MemoryPerRecord(benchmark::State& state) {
  constexpr int kShards = 100;
  const int64_t per_shard = state.range(0);
  const std::string data(kDataBytes, 'd');
  const auto keys = Keys();
  for (auto _ : state) {
    const size_t rss_before = ResidentBytes();
    auto stream = MakeStream(kShards);
    std::vector<rill::PutOptions> to_shard(kShards);
    for (const rill::ShardDescription& shard : stream->ListShards()) {
      to_shard[shard.shard_id.index()].explicit_hash_key = shard.hash_key_range.starting_hash_key;
    }
    size_t memory = 0, rss = 0;
    size_t full_memory = 0, full_rss = 0;
    int64_t full_records = 0;
    size_t i = 0;
    for (int64_t round = 0; round < per_shard; ++round) {
      for (int s = 0; s < kShards; ++s) {
        if (!stream->PutRecord(keys[i++ & 4095], data, to_shard[static_cast<size_t>(s)]).ok()) {
          state.SkipWithError("put failed");
          return;
        }
      }
      const size_t now = stream->MemoryBytes();
      if (now != memory && round > 0) {
        // This round started new chunks: the previous one ended with every chunk full.
        full_memory = memory;
        full_rss = rss;
        full_records = round * kShards;
      }
      memory = now;
      rss = ResidentBytes();
    }
    const auto per_record = [](double bytes, int64_t records) {
      return records == 0 ? 0.0
                          : bytes / static_cast<double>(records) -
                                static_cast<double>(kKeyBytes + kDataBytes);
    };
    state.counters["overhead_B_per_record"] =
        per_record(static_cast<double>(full_memory), full_records);
    state.counters["rss_overhead_B_per_record"] =
        per_record(static_cast<double>(full_rss) - static_cast<double>(rss_before), full_records);
    state.counters["end_overhead_B_per_record"] =
        per_record(static_cast<double>(memory), per_shard * kShards);
    state.counters["full_records"] = static_cast<double>(full_records);
  }
  state.SetItemsProcessed(state.iterations() * per_shard * kShards);
}
BENCHMARK(BM_MemoryPerRecord)
    ->Arg(20000)
    ->Arg(100000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
