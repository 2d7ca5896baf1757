// The Kinesis wire API over loopback (issue 15): PutRecords of 500 records of 100 bytes (16-byte
// keys) through rill::kinesis::Client into a KinesisServer, beside the same batches put in
// process (the baseline), and a GetRecords scan over the network. Every case reports
// items_per_second (records).
//
//   BM_InProcessPutRecords            Stream::PutRecords of the batches: what the network costs
//                                     is the ratio of the server cases to this one
//   BM_ServerPutRecords/threads:N     the client's PutRecords into the server, N client threads
//                                     (load generator and server share the machine's 2 cores)
//   BM_KinesalitePutRecords/threads:N the same against kinesalite, when RILL_BENCH_KINESALITE
//                                     names its endpoint (benchmarks/net_vs_kinesalite.sh starts
//                                     one); skipped otherwise
//   BM_ServerGetRecords               a scan of 100,000 records, 10,000 per GetRecords
//
// The command (ratios between cases of the same run; take medians):
//   net_benchmark --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "rill/base/error.h"
#include "rill/net/kinesis_client.h"
#include "rill/net/kinesis_server.h"
#include "rill/net/stream_registry.h"
#include "rill/stream/stream.h"

namespace {

constexpr int kBatch = 500;
constexpr size_t kDataBytes = 100;
constexpr size_t kKeyBytes = 16;
constexpr int kShards = 4;

std::vector<rill::PutRecordsEntry> Batch(int salt) {
  std::vector<rill::PutRecordsEntry> entries;
  for (int i = 0; i < kBatch; ++i) {
    std::string key = "player-" + std::to_string(100000 + (i + kBatch * salt) * 37);
    key.resize(kKeyBytes, '0');
    entries.push_back(
        {std::move(key), std::string(kDataBytes, static_cast<char>('a' + i % 26)), {}});
  }
  return entries;
}

// A stream that forgets old records, so that a long run does not grow without bound.
rill::StreamOptions Template() {
  rill::StreamOptions options;
  options.memory_limit.budget_bytes = size_t{256} << 20;
  options.memory_limit.policy = rill::MemoryLimitPolicy::kRetireOldest;
  return options;
}

struct Server {
  Server() {
    rill::net::StreamRegistryOptions registry_options;
    registry_options.stream_template = Template();
    auto registry = rill::net::StreamRegistry::Create(registry_options);
    if (!registry.ok()) std::abort();
    rill::net::CreateStreamRequest request;
    request.name = "bench";
    request.shard_count = kShards;
    if (!(*registry)->CreateStream(request).ok()) std::abort();
    rill::net::KinesisServerOptions options;
    options.credentials = {{"AKIDBENCH", "bench-secret"}};
    auto server = rill::net::KinesisServer::Start(std::move(*registry), options);
    if (!server.ok()) std::abort();
    this->server = std::move(*server);
  }
  std::unique_ptr<rill::net::KinesisServer> server;
};

Server& TheServer() {
  static Server* server = new Server();  // lives until exit: every case shares it
  return *server;
}

rill::kinesis::ClientOptions ClientFor(std::string endpoint) {
  rill::kinesis::ClientOptions options;
  options.endpoint = std::move(endpoint);
  options.stream_name = "bench";
  options.access_key_id = "AKIDBENCH";
  options.secret_access_key = "bench-secret";
  return options;
}

void PutThroughClient(benchmark::State& state, const std::string& endpoint) {
  auto client = rill::kinesis::Client::Create(ClientFor(endpoint));
  if (!client.ok()) {
    state.SkipWithError(std::string(client.status().message()).c_str());
    return;
  }
  const auto batch = Batch(state.thread_index());
  int64_t failed = 0;
  for (auto _ : state) {
    auto put = (*client)->PutRecords(batch);
    if (!put.ok()) {
      state.SkipWithError(std::string(put.status().message()).c_str());
      return;
    }
    failed += put->failed_record_count;
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["failed"] = static_cast<double>(failed);
}

void BM_InProcessPutRecords(benchmark::State& state) {
  rill::StreamOptions options = Template();
  options.name = "bench";
  options.shard_count = kShards;
  auto stream = rill::Stream::Create(options);
  if (!stream.ok()) std::abort();
  const auto batch = Batch(0);
  for (auto _ : state) {
    auto put = (*stream)->PutRecords(batch);
    benchmark::DoNotOptimize(put);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_InProcessPutRecords)->UseRealTime();

void BM_ServerPutRecords(benchmark::State& state) {
  PutThroughClient(state, TheServer().server->endpoint());
}
BENCHMARK(BM_ServerPutRecords)->UseRealTime()->Threads(1)->Threads(2)->Threads(4);

void BM_KinesalitePutRecords(benchmark::State& state) {
  const char* endpoint = std::getenv("RILL_BENCH_KINESALITE");
  if (endpoint == nullptr) {
    state.SkipWithError("RILL_BENCH_KINESALITE is not set (benchmarks/net_vs_kinesalite.sh)");
    return;
  }
  // kinesalite starts empty: the first thread to get here makes the stream (the others wait).
  static std::once_flag created;
  std::call_once(created, [&] {
    absl::Status s = rill::kinesis::Client::CreateStream(ClientFor(endpoint), kShards);
    if (!s.ok() && rill::GetErrorCode(s) != rill::ErrorCode::kResourceInUse) std::abort();
  });
  PutThroughClient(state, endpoint);
}
BENCHMARK(BM_KinesalitePutRecords)->UseRealTime()->Threads(1)->Threads(2)->Threads(4);

void BM_ServerGetRecords(benchmark::State& state) {
  rill::net::StreamRegistryOptions registry_options;
  auto registry = rill::net::StreamRegistry::Create(registry_options);
  if (!registry.ok()) std::abort();
  rill::net::CreateStreamRequest request;
  request.name = "bench";
  request.shard_count = 1;
  auto stream = (*registry)->CreateStream(request);
  if (!stream.ok()) std::abort();
  constexpr int kRecords = 100000;
  for (int i = 0; i < kRecords / kBatch; ++i) {
    if (!(*stream)->PutRecords(Batch(i)).ok()) std::abort();
  }
  rill::net::KinesisServerOptions options;
  options.credentials = {{"AKIDBENCH", "bench-secret"}};
  auto server = rill::net::KinesisServer::Start(std::move(*registry), options);
  if (!server.ok()) std::abort();
  auto client = rill::kinesis::Client::Create(ClientFor((*server)->endpoint()));
  if (!client.ok()) std::abort();
  int64_t records = 0;
  for (auto _ : state) {
    auto it = (*client)->GetShardIterator(rill::ShardId(0), rill::StartingPosition::TrimHorizon());
    if (!it.ok()) std::abort();
    std::optional<rill::ShardIterator> next = *it;
    int64_t read = 0;
    while (next && read < kRecords) {
      auto got = (*client)->GetRecords(*next, 10000);
      if (!got.ok()) std::abort();
      read += static_cast<int64_t>(got->records.size());
      next = got->next_shard_iterator;
    }
    records += read;
  }
  state.SetItemsProcessed(records);
}
BENCHMARK(BM_ServerGetRecords)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
