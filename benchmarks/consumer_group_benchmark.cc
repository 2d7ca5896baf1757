// Records per second through a consumer group of 2 workers with a trivial processor that
// checkpoints every 1,000 records, polled by hand on one thread (deterministic) and on their own
// threads. The baseline is a bare GetRecords scan of the same records: the floor of any consumer.
#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <benchmark/benchmark.h>

#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
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

}  // namespace
