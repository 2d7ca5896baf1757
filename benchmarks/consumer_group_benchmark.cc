// Records per second through a consumer group of 2 workers with a trivial processor that
// checkpoints every 1,000 records, polled by hand on one thread (deterministic) and on their own
// threads. The baseline is a bare GetRecords scan of the same records: the floor of any consumer.
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <unistd.h>

#include <benchmark/benchmark.h>

#include "rill/base/clock.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/consume/sqlite_checkpoint_store.h"
#include "rill/stream/stream.h"

namespace {

constexpr int kShards = 4;
constexpr int kRecords = 400000;

std::unique_ptr<rill::Stream> Filled() {
  rill::StreamOptions options;
  options.name = "group-bench";
  options.shard_count = kShards;
  auto stream = std::move(*rill::Stream::Create(options));
  const std::string data(100, 'd');
  for (int i = 0; i < kRecords; ++i) {
    if (!stream->PutRecord("player-" + std::to_string(i % 4096), data).ok()) std::abort();
  }
  return stream;
}

class Trivial : public rill::RecordProcessor {
 public:
  explicit Trivial(std::atomic<int64_t>* count) : count_(count) {}
  void Initialize(const rill::InitializationInput&) override {}
  void ProcessRecords(const rill::ProcessRecordsInput& in) override {
    count_->fetch_add(static_cast<int64_t>(in.records.size()), std::memory_order_relaxed);
    since_ += in.records.size();
    if (since_ >= 1000) {
      since_ = 0;
      in.checkpointer.Checkpoint().IgnoreError();
    }
  }
  void LeaseLost() override {}
  void ShardEnded(rill::Checkpointer& c) override { c.Checkpoint().IgnoreError(); }
  void ShutdownRequested(rill::Checkpointer& c) override { c.Checkpoint().IgnoreError(); }

 private:
  std::atomic<int64_t>* count_;
  size_t since_ = 0;
};

void BM_GetRecordsScanBaseline(benchmark::State& state) {
  auto stream = Filled();
  for (auto _ : state) {
    int64_t n = 0;
    for (int s = 0; s < kShards; ++s) {
      auto it = stream->GetShardIterator(rill::ShardId(static_cast<uint32_t>(s)),
                                         rill::StartingPosition::TrimHorizon());
      std::optional<rill::ShardIterator> next = *it;
      while (next) {
        auto batch = stream->GetRecords(*next, 1000);
        if (batch->records.empty()) break;
        n += static_cast<int64_t>(batch->records.size());
        next = batch->next_shard_iterator;
      }
    }
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * kRecords);
}
BENCHMARK(BM_GetRecordsScanBaseline)->Unit(benchmark::kMillisecond);

// Args: 0 = both workers polled by hand on this thread, 1 = each on its own thread.
void BM_ConsumerGroup(benchmark::State& state) {
  auto stream = Filled();
  int run = 0;
  for (auto _ : state) {
    std::atomic<int64_t> count{0};
    rill::InMemoryCheckpointStore store;
    rill::ConsumerGroupOptions options;
    options.application_name = "bench-" + std::to_string(run++);
    options.initial_position = rill::StartingPosition::TrimHorizon();
    options.max_records = 1000;
    auto group = std::move(*rill::ConsumerGroup::Create(*stream, store, options));
    std::vector<rill::Worker*> workers;
    for (const char* id : {"w1", "w2"}) {
      workers.push_back(*group->AddWorker(
          id, [&count](rill::ShardId) { return std::make_unique<Trivial>(&count); }));
    }
    if (state.range(0) == 0) {
      while (count.load() < kRecords) {
        for (rill::Worker* w : workers) w->Poll().IgnoreError();
      }
    } else {
      for (rill::Worker* w : workers) {
        if (!w->Start().ok()) std::abort();
      }
      while (count.load() < kRecords) std::this_thread::yield();
    }
    for (rill::Worker* w : workers) w->Shutdown();
  }
  state.SetItemsProcessed(state.iterations() * kRecords);
}
BENCHMARK(BM_ConsumerGroup)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// Issue 14: leases at 1,000 shards. Four workers over an empty 1,000-shard stream on a
// SimulatedClock, with the lease table in memory (the baseline), in an SQLite file or in a
// lease file. Figures: a renewal round of all four workers (each renews its 250 leases and takes
// nothing), and Shutdown of all four (1,000 checkpoints and releases). Arg: 0 in memory,
// 1 SQLite, 2 file. The goals: a round <= 100 ms, Shutdown <= 1 s, with a durable store.
constexpr int kLeaseShards = 1000;

struct LeaseBench {
  std::shared_ptr<rill::SimulatedClock> clock = std::make_shared<rill::SimulatedClock>();
  std::string dir;
  std::unique_ptr<rill::Stream> stream;
  std::unique_ptr<rill::CheckpointStore> store;
  std::unique_ptr<rill::ConsumerGroup> group;
  std::vector<rill::Worker*> workers;

  explicit LeaseBench(int kind) {
    static int instance = 0;
    dir = (std::filesystem::temp_directory_path() /
           ("rill-lease-bench-" + std::to_string(::getpid()) + "-" + std::to_string(instance++)))
              .string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    rill::StreamOptions options;
    options.name = "leases";
    options.shard_count = kLeaseShards;
    options.clock = clock;
    stream = std::move(*rill::Stream::Create(options));
    if (kind == 0) {
      store = std::make_unique<rill::InMemoryCheckpointStore>();
    } else if (kind == 1) {
      store = std::move(*rill::SqliteCheckpointStore::Open(dir + "/leases.db"));
    } else {
      store = std::move(*rill::FileCheckpointStore::Open(dir));
    }
    rill::ConsumerGroupOptions o;
    o.application_name = "archive";
    o.initial_position = rill::StartingPosition::TrimHorizon();
    group = std::move(*rill::ConsumerGroup::Create(*stream, *store, o));
    for (const char* id : {"w1", "w2", "w3", "w4"}) {
      workers.push_back(*group->AddWorker(id, [](rill::ShardId) {
        static std::atomic<int64_t> sink{0};
        return std::make_unique<Trivial>(&sink);
      }));
    }
    // Balance: everyone takes its share, then learns at a renewal what it lost.
    for (int round = 0; round < 3; ++round) {
      for (rill::Worker* w : workers) w->Poll().IgnoreError();
      clock->Advance(absl::Seconds(4));
    }
    for (rill::Worker* w : workers) {
      if (w->held_shards().size() != kLeaseShards / 4) std::abort();
    }
  }
  ~LeaseBench() {
    group.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
};

void BM_LeaseRenewalRound1000(benchmark::State& state) {
  LeaseBench bench(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    // Past renew_interval (3,308 ms) and take_interval: each poll renews 250 leases in one
    // batch and reads the table once for its take.
    bench.clock->Advance(absl::Seconds(4));
    for (rill::Worker* w : bench.workers) w->Poll().IgnoreError();
  }
  for (rill::Worker* w : bench.workers) {
    if (w->held_shards().size() != kLeaseShards / 4) std::abort();  // nothing lost
  }
  state.counters["leases"] = kLeaseShards;
}
BENCHMARK(BM_LeaseRenewalRound1000)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

void BM_LeaseShutdown1000(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    auto bench = std::make_unique<LeaseBench>(static_cast<int>(state.range(0)));
    state.ResumeTiming();
    for (rill::Worker* w : bench->workers) w->Shutdown();
    state.PauseTiming();
    bench.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_LeaseShutdown1000)
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

}  // namespace
