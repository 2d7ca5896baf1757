#include <fcntl.h>
#include <unistd.h>

// Durable streams: ingest, recovery and cold read-back, against the in-memory stream and plain
// zstd level 1 of the same bytes, measured in the same run.
//
//   BM_ZstdLevel1Baseline   ZSTD_compressCCtx(level 1) of each PutRecords batch's bytes: what
//                           compression alone costs (the goal: durable ingest >= 0.7x of it)
//   BM_InMemoryIngest       PutRecords of the same batches into an in-memory stream
//   BM_DurableIngest/<level>/<fsync>
//                           the same into a durable stream (fsync: 0 never, 1 every 5 ms,
//                           2 every batch), in its steady state: filled past its memory budget
//                           (256 MiB) before the measurement, so that it evicts what it takes in
//   BM_EncryptedIngest/<level>/<fsync>
//                           BM_DurableIngest of a stream encrypted at rest (StartStreamEncryption
//                           with a FileKeyProvider): AES-256-GCM of every journal record and
//                           segment frame. The goal: >= 0.8x of BM_DurableIngest with the same
//                           arguments.
//   BM_EveryBatch20Shards   kEveryBatch PutRecords over 20 shards (one journal sync per call;
//                           threads:4, concurrent callers sharing syncs: group commit)
//   BM_SyncPerShardBaseline its baseline: 20 writes and 20 fdatasyncs per call, one per shard
//   BM_JournalSyncFloor     the I/O alone of a kEveryBatch call: one pwrite, one fdatasync
//   BM_Recovery/<MiB>       Stream::Open of a directory holding that much record data
//   BM_ColdReadBack         reading everything back through GetRecords from a reopened stream
//                           whose memory budget holds almost none of it
// Records are ~170-byte JSON telemetry readings of 1,000 devices, 500 per PutRecords call.
// Counters: bytes_per_second (record bytes), items_per_second (records), ratio (record bytes /
// bytes on disk). Wall-clock time: the durable stream's flusher thread works beside the putter.
#include <zstd.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "absl/strings/str_format.h"
#include "rill/storage/encryption.h"
#include "rill/stream/stream.h"

namespace {

constexpr int kBatch = 500;

std::vector<rill::PutRecordsEntry> TelemetryBatch(uint64_t* seq) {
  std::vector<rill::PutRecordsEntry> batch;
  batch.reserve(kBatch);
  for (int i = 0; i < kBatch; ++i) {
    const uint64_t n = (*seq)++;
    const uint64_t x = n * 0x9E3779B97F4A7C15ull;
    std::string device = absl::StrFormat("device-%04d", n % 1000);
    std::string data = absl::StrFormat(
        R"({"device":"%s","ts":%d,"temp":%.2f,"humidity":%.1f,"battery":%d,"status":"%s"})", device,
        1767225600000 + n * 10, 18 + (x >> 40) % 1000 / 100.0, 30 + (x >> 20) % 400 / 10.0,
        (x >> 50) % 100, (x >> 13) % 17 == 0 ? "warn" : "ok");
    batch.push_back({std::move(device), std::move(data), std::nullopt});
  }
  return batch;
}

size_t BatchBytes(const std::vector<rill::PutRecordsEntry>& batch) {
  size_t bytes = 0;
  for (const auto& e : batch) bytes += e.partition_key.size() + e.data.size();
  return bytes;
}

std::string TempDir(const char* name) {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           absl::StrFormat("rill-bench-%s-%d", name, ::getpid()))
                              .string();
  std::filesystem::remove_all(dir);
  return dir;
}

rill::StreamOptions Options(const std::string& dir, int level, rill::FsyncPolicy fsync,
                            int shards = 4) {
  rill::StreamOptions o;
  o.name = "telemetry";
  o.shard_count = shards;
  o.retention = absl::Hours(24);
  if (!dir.empty()) {
    o.storage = rill::StorageOptions{};
    o.storage->directory = dir;
    o.storage->compression_level = level;
    o.storage->fsync = fsync;
    o.storage->fsync_interval = absl::Milliseconds(5);
  }
  return o;
}

// A pool of distinct batches, cycled, so that compression sees varied data.
struct Batches {
  std::vector<std::vector<rill::PutRecordsEntry>> pool;
  Batches() {
    uint64_t seq = 0;
    for (int i = 0; i < 64; ++i) pool.push_back(TelemetryBatch(&seq));
  }
};
const Batches& Pool() {
  static const Batches* batches = new Batches;
  return *batches;
}

void BM_ZstdLevel1Baseline(benchmark::State& state) {
  const Batches& b = Pool();
  std::vector<std::string> raw;
  for (const auto& batch : b.pool) {
    std::string bytes;
    for (const auto& e : batch) bytes += e.partition_key + e.data;
    raw.push_back(std::move(bytes));
  }
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::string out(ZSTD_compressBound(raw[0].size() * 2), '\0');
  size_t i = 0, in_bytes = 0, out_bytes = 0;
  for (auto _ : state) {
    const std::string& r = raw[i++ % raw.size()];
    const size_t n = ZSTD_compressCCtx(cctx, out.data(), out.size(), r.data(), r.size(), 1);
    benchmark::DoNotOptimize(n);
    in_bytes += r.size();
    out_bytes += n;
  }
  ZSTD_freeCCtx(cctx);
  state.SetBytesProcessed(static_cast<int64_t>(in_bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
  state.counters["ratio"] = static_cast<double>(in_bytes) / static_cast<double>(out_bytes);
}
BENCHMARK(BM_ZstdLevel1Baseline)->UseRealTime();

// Streams kept across the calls Google Benchmark makes of one benchmark (it calls each several
// times to size the run), so that a durable stream is measured in its steady state: past its
// memory budget, evicting as much as it takes in, as a gateway that has run for a while is.
struct WarmStreams {
  std::map<std::string, std::unique_ptr<rill::Stream>> streams;
  std::vector<std::string> dirs;
  ~WarmStreams() {
    streams.clear();
    for (const std::string& dir : dirs) std::filesystem::remove_all(dir);
  }
};
WarmStreams& Warm() {
  static WarmStreams warm;
  return warm;
}

// The durable stream for `name`, created and filled past its memory budget on first use.
rill::Stream* WarmStream(const std::string& name, int level, rill::FsyncPolicy fsync, int shards,
                         bool encrypted = false) {
  WarmStreams& warm = Warm();
  auto it = warm.streams.find(name);
  if (it != warm.streams.end()) return it->second.get();
  const std::string dir = TempDir(name.c_str());
  warm.dirs.push_back(dir);
  rill::StreamOptions o = Options(dir, level, fsync, shards);
  if (encrypted) {
    const std::string keys = TempDir((name + "-keys").c_str());
    warm.dirs.push_back(keys);
    std::filesystem::create_directories(keys);
    const std::string keyring = keys + "/keyring";
    if (!rill::FileKeyProvider::CreateKeyring(keyring).ok() ||
        !rill::FileKeyProvider::CreateKey(keyring, "alias/bench").ok()) {
      return nullptr;
    }
    auto provider = rill::FileKeyProvider::Open(keyring);
    if (!provider.ok()) return nullptr;
    o.key_provider = std::move(*provider);
  }
  auto stream = rill::Stream::Create(o);
  if (!stream.ok()) return nullptr;
  if (encrypted &&
      !(*stream)->StartStreamEncryption(rill::EncryptionType::kKms, "alias/bench").ok()) {
    return nullptr;
  }
  const Batches& b = Pool();
  uint64_t bytes = 0;
  const uint64_t fill = o.storage->memory_budget_bytes + (o.storage->memory_budget_bytes >> 3);
  for (size_t i = 0; bytes < fill; ++i) {
    const auto& batch = b.pool[i % b.pool.size()];
    if (!(*stream)->PutRecords(batch).ok()) return nullptr;
    bytes += BatchBytes(batch);
  }
  return warm.streams.emplace(name, *std::move(stream)).first->second.get();
}

void Ingest(benchmark::State& state, rill::Stream* stream) {
  const Batches& b = Pool();
  if (stream == nullptr) {
    state.SkipWithError("cannot create the stream");
    return;
  }
  const uint64_t disk_before = stream->DiskBytes();
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const auto& batch = b.pool[i++ % b.pool.size()];
    auto r = stream->PutRecords(batch);
    if (!r.ok() || r->failed_record_count != 0) {
      state.SkipWithError("put failed");
      break;
    }
    bytes += BatchBytes(batch);
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
  // With several threads, the counters are summed over them: the ratio is left out.
  if (stream->options().storage && state.threads() == 1) {
    (void)stream->Flush();
    state.counters["ratio"] =
        static_cast<double>(bytes) /
        static_cast<double>(std::max<uint64_t>(1, stream->DiskBytes() - disk_before));
  }
}

void BM_InMemoryIngest(benchmark::State& state) {
  auto stream = rill::Stream::Create(Options("", 0, rill::FsyncPolicy::kNever));
  Ingest(state, stream.ok() ? stream->get() : nullptr);
}
BENCHMARK(BM_InMemoryIngest)->UseRealTime();

void BM_DurableIngest(benchmark::State& state) {
  const auto fsync = static_cast<rill::FsyncPolicy>(state.range(1));
  const auto level = static_cast<int>(state.range(0));
  Ingest(state,
         WarmStream(absl::StrFormat("ingest-%d-%d", level, state.range(1)), level, fsync, 4));
}
BENCHMARK(BM_DurableIngest)
    ->UseRealTime()
    ->Args({1, static_cast<int>(rill::FsyncPolicy::kNever)})
    ->Args({1, static_cast<int>(rill::FsyncPolicy::kInterval)})
    ->Args({0, static_cast<int>(rill::FsyncPolicy::kInterval)})
    ->Args({1, static_cast<int>(rill::FsyncPolicy::kEveryBatch)});

void BM_EncryptedIngest(benchmark::State& state) {
  const auto fsync = static_cast<rill::FsyncPolicy>(state.range(1));
  const auto level = static_cast<int>(state.range(0));
  Ingest(state, WarmStream(absl::StrFormat("encrypted-%d-%d", level, state.range(1)), level, fsync,
                           4, /*encrypted=*/true));
}
BENCHMARK(BM_EncryptedIngest)
    ->UseRealTime()
    ->Args({1, static_cast<int>(rill::FsyncPolicy::kNever)})
    ->Args({1, static_cast<int>(rill::FsyncPolicy::kInterval)})
    ->Args({0, static_cast<int>(rill::FsyncPolicy::kInterval)})
    ->Args({1, static_cast<int>(rill::FsyncPolicy::kEveryBatch)});

// Group commit across shards (issue 21): PutRecords of 500 records spread over 20 shards with
// kEveryBatch. Each call is acknowledged after one journal fdatasync, whatever the shard count;
// with several calling threads, the calls that finish while a sync is in flight share the next
// one (threads:N: N threads put into one stream; items_per_second is their sum).
void BM_EveryBatch20Shards(benchmark::State& state) {
  Ingest(state, WarmStream("every-batch-20", 1, rill::FsyncPolicy::kEveryBatch, 20));
}
void WarmEveryBatch20(const benchmark::State&) {
  WarmStream("every-batch-20", 1, rill::FsyncPolicy::kEveryBatch, 20);
}
BENCHMARK(BM_EveryBatch20Shards)->UseRealTime();
BENCHMARK(BM_EveryBatch20Shards)->Setup(WarmEveryBatch20)->Threads(4)->UseRealTime();

// Its baseline in the same run: what one sync per shard costs — each call writes its records'
// bytes to 20 files (one per shard) and fdatasyncs each, as kEveryBatch did before the journal.
// threads:N: N threads, each with its own 20 files, sync side by side.
void BM_SyncPerShardBaseline(benchmark::State& state) {
  const Batches& b = Pool();
  const std::string dir =
      TempDir(absl::StrFormat("sync-per-shard-%d", state.thread_index()).c_str());
  std::filesystem::create_directories(dir);
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    fds.push_back(::open((dir + "/" + std::to_string(i)).c_str(), O_RDWR | O_CREAT, 0644));
  }
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const auto& batch = b.pool[i++ % b.pool.size()];
    std::vector<std::string> per_shard(20);
    for (size_t e = 0; e < batch.size(); ++e) {
      per_shard[e % 20] += batch[e].partition_key + batch[e].data;
    }
    for (int f = 0; f < 20; ++f) {
      if (::write(fds[f], per_shard[f].data(), per_shard[f].size()) < 0 || ::fdatasync(fds[f])) {
        state.SkipWithError("write failed");
      }
    }
    bytes += BatchBytes(batch);
  }
  for (int fd : fds) ::close(fd);
  std::filesystem::remove_all(dir);
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
}
BENCHMARK(BM_SyncPerShardBaseline)->UseRealTime();
BENCHMARK(BM_SyncPerShardBaseline)->Threads(4)->UseRealTime();

// The device's floor under a kEveryBatch call, in the same run: one pwrite of what one call puts
// in the journal (500 record blocks, ~100 KB) into a preallocated file, then one fdatasync —
// the I/O of a call without any of its CPU work. Where a sync costs about as much as one of the
// baseline's per-shard syncs, BM_EveryBatch20Shards can beat the baseline by at most ~20x.
void BM_JournalSyncFloor(benchmark::State& state) {
  const Batches& b = Pool();
  const std::string dir = TempDir("sync-floor");
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/journal";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  constexpr size_t kFileBytes = size_t{32} << 20;
  const std::string zeros(kFileBytes, '\0');
  if (fd < 0 || ::pwrite(fd, zeros.data(), zeros.size(), 0) < 0 || ::fsync(fd) != 0) {
    state.SkipWithError("cannot create the file");
  }
  size_t i = 0, bytes = 0, offset = 0;
  std::string region;
  for (auto _ : state) {
    const auto& batch = b.pool[i++ % b.pool.size()];
    region.clear();
    for (const auto& e : batch) {
      // A journal block: a 48-byte header, key and data, padded to 8 bytes.
      region.resize(region.size() + 48);
      region += e.partition_key;
      region += e.data;
      region.resize((region.size() + 7) & ~size_t{7});
    }
    if (offset + region.size() > kFileBytes) offset = 0;
    if (::pwrite(fd, region.data(), region.size(), static_cast<off_t>(offset)) < 0 ||
        ::fdatasync(fd) != 0) {
      state.SkipWithError("write failed");
    }
    offset += region.size();
    bytes += BatchBytes(batch);
  }
  ::close(fd);
  std::filesystem::remove_all(dir);
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
}
BENCHMARK(BM_JournalSyncFloor)->UseRealTime();

// Writes `mib` MiB of records into `dir` and closes the stream.
uint64_t Fill(const std::string& dir, int64_t mib) {
  auto stream = rill::Stream::Create(Options(dir, 1, rill::FsyncPolicy::kNever));
  if (!stream.ok()) return 0;
  const Batches& b = Pool();
  uint64_t bytes = 0;
  for (size_t i = 0; bytes < static_cast<uint64_t>(mib) << 20; ++i) {
    const auto& batch = b.pool[i % b.pool.size()];
    if (!(*stream)->PutRecords(batch).ok()) return 0;
    bytes += BatchBytes(batch);
  }
  return bytes;
}

void BM_Recovery(benchmark::State& state) {
  const std::string dir = TempDir("recovery");
  const uint64_t bytes = Fill(dir, state.range(0));
  uint64_t records = 0;
  for (auto _ : state) {
    auto stream = rill::Stream::Open(Options(dir, 1, rill::FsyncPolicy::kNever));
    if (!stream.ok()) {
      state.SkipWithError(stream.status().ToString().c_str());
      break;
    }
    records = (*stream)->recovered_records();
    state.PauseTiming();
    stream->reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes * state.iterations()));
  state.counters["records"] = static_cast<double>(records);
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_Recovery)->Arg(64)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_ColdReadBack(benchmark::State& state) {
  const std::string dir = TempDir("cold");
  const uint64_t bytes = Fill(dir, 64);
  rill::StreamOptions o = Options(dir, 1, rill::FsyncPolicy::kNever);
  o.storage->memory_budget_bytes = 1 << 20;
  auto stream = rill::Stream::Open(o);
  if (!stream.ok()) {
    state.SkipWithError(stream.status().ToString().c_str());
    return;
  }
  uint64_t records = 0;
  for (auto _ : state) {
    for (const rill::ShardDescription& shard : (*stream)->ListShards()) {
      auto it = (*stream)->GetShardIterator(shard.shard_id, rill::StartingPosition::TrimHorizon());
      std::optional<rill::ShardIterator> next = *it;
      while (next) {
        auto r = (*stream)->GetRecords(*next);
        if (!r.ok() || r->records.empty()) break;
        records += r->records.size();
        next = r->next_shard_iterator;
      }
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes * state.iterations()));
  state.SetItemsProcessed(static_cast<int64_t>(records));
  stream->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_ColdReadBack)->Unit(benchmark::kMillisecond);

}  // namespace
