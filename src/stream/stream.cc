#include "rill/stream/stream.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_format.h"
#include "base/partition_key_cache.h"
#include "base/sealed_token.h"
#include "base/sequence_layout.h"
#include "base/strings.h"
#include "base/utf.h"
#include "log/shard_log.h"
#include "rill/base/md5.h"
#include "storage/stream_store.h"
#include "stream/rate_limiter.h"
#include "stream/stream_shard.h"

namespace rill {

namespace {

using internal::ShardMap;
using internal::StreamShard;

constexpr int64_t kMicrosPerDay = int64_t{86400} * 1000000;
// Durable mode: counters a shard may issue beyond the ceiling on disk before writing a higher
// one (one small synced write per 16 M records per shard; the gap a reopen leaves).
constexpr uint64_t kCounterLease = uint64_t{1} << 24;

int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }

absl::Status ValidateRetention(absl::Duration retention, bool allow_short) {
  const absl::Duration min = allow_short ? absl::Milliseconds(1) : kMinRetention;
  if (retention < min || retention > kMaxRetention) {
    return InvalidArgumentError(absl::StrFormat("retention %s is outside [%s, 8760h]",
                                                absl::FormatDuration(retention),
                                                absl::FormatDuration(min)));
  }
  return absl::OkStatus();
}

absl::Status ValidateLimits(const ShardLimits& l) {
  for (int64_t v : {l.write_bytes_per_second, l.write_records_per_second, l.read_calls_per_second,
                    l.read_bytes_per_second, l.get_shard_iterator_calls_per_second}) {
    // The upper bound keeps the token arithmetic (rate * 10^6 micro-tokens) in 64 bits.
    if (v < 0 || v > (int64_t{1} << 40)) {
      return InvalidArgumentError("shard limits must be within [0, 2^40] (0 = unlimited)");
    }
  }
  return absl::OkStatus();
}

uint64_t Mix64(const Md5Digest& d, size_t offset) {
  uint64_t v;
  std::memcpy(&v, d.data() + offset, 8);
  return v;
}

// Adds `v` to a relaxed counter.
void Add(std::atomic<int64_t>& counter, int64_t v) {
  counter.fetch_add(v, std::memory_order_relaxed);
}

// Drops entries older than a day from `times` and says whether fewer than `quota` remain.
bool WithinDailyQuota(std::vector<int64_t>& times, int quota, int64_t now_us) {
  std::erase_if(times, [&](int64_t t) { return t <= now_us - kMicrosPerDay; });
  return static_cast<int>(times.size()) < quota;
}

// The self-checking next_token of ListShards: the stream, the request's filter and the last
// shard index returned, and when it was issued.
struct NextToken {
  uint64_t stream_instance = 0;
  uint32_t filter_type = 0;  // ShardFilterType, or kNoFilter
  uint32_t filter_shard = 0;
  int64_t filter_time_us = 0;
  uint32_t has_filter_shard = 0;
  uint32_t has_filter_time = 0;
  uint32_t last_index = 0;
  uint32_t reserved = 0;  // no padding: every byte of the token is a defined field
  int64_t issued_us = 0;
};
static_assert(std::has_unique_object_representations_v<NextToken>);

constexpr uint32_t kNoFilter = 0xffffffff;
constexpr std::string_view kTokenDomain = "rill.list-shards.v1";
constexpr size_t kTokenCheckBytes = 8;

std::string EncodeNextToken(const NextToken& t) {
  return internal::SealToken(kTokenDomain,
                             std::string_view(reinterpret_cast<const char*>(&t), sizeof(t)),
                             kTokenCheckBytes);
}

std::optional<NextToken> DecodeNextToken(std::string_view token) {
  NextToken t;
  if (!internal::OpenToken(kTokenDomain, token, kTokenCheckBytes, &t, sizeof(t))) {
    return std::nullopt;
  }
  return t;
}

}  // namespace

std::string_view CapacityModeName(CapacityMode mode) {
  return mode == CapacityMode::kOnDemand ? "ON_DEMAND" : "PROVISIONED";
}

std::string_view StreamStatusName(StreamStatus status) {
  switch (status) {
    case StreamStatus::kCreating:
      return "CREATING";
    case StreamStatus::kDeleting:
      return "DELETING";
    case StreamStatus::kActive:
      return "ACTIVE";
    case StreamStatus::kUpdating:
      return "UPDATING";
  }
  return "UNKNOWN";
}

std::string_view ShardFilterTypeName(ShardFilterType type) {
  switch (type) {
    case ShardFilterType::kAfterShardId:
      return "AFTER_SHARD_ID";
    case ShardFilterType::kAtTrimHorizon:
      return "AT_TRIM_HORIZON";
    case ShardFilterType::kFromTrimHorizon:
      return "FROM_TRIM_HORIZON";
    case ShardFilterType::kAtLatest:
      return "AT_LATEST";
    case ShardFilterType::kAtTimestamp:
      return "AT_TIMESTAMP";
    case ShardFilterType::kFromTimestamp:
      return "FROM_TIMESTAMP";
  }
  return "UNKNOWN";
}

// Per-call counters. Each is one relaxed add per call (PutRecords and GetRecords amortise it over
// their records; PutRecord's success count is derived instead, see metrics()).
struct Stream::Counters {
  std::atomic<int64_t> put_record_failure{0};
  std::atomic<int64_t> put_records_success{0};
  std::atomic<int64_t> put_records_total{0};
  std::atomic<int64_t> put_records_successful{0};
  std::atomic<int64_t> put_records_failed{0};
  std::atomic<int64_t> put_records_throttled{0};
  std::atomic<int64_t> get_records_success{0};
  struct Latency {
    std::atomic<int64_t> count{0};
    std::atomic<int64_t> sum_us{0};
    std::atomic<int64_t> max_us{0};
    void Record(int64_t us) {
      Add(count, 1);
      Add(sum_us, us);
      int64_t seen = max_us.load(std::memory_order_relaxed);
      while (us > seen && !max_us.compare_exchange_weak(seen, us, std::memory_order_relaxed)) {
      }
    }
    LatencySummary Get() const {
      return LatencySummary{count.load(std::memory_order_relaxed),
                            sum_us.load(std::memory_order_relaxed),
                            max_us.load(std::memory_order_relaxed)};
    }
  };
  Latency put_record_latency;
  Latency put_records_latency;
  Latency get_records_latency;
};

namespace {
absl::Status ValidateStreamOptions(StreamOptions& options);
}  // namespace

absl::StatusOr<std::unique_ptr<Stream>> Stream::Create(StreamOptions options) {
  if (absl::Status s = ValidateStreamOptions(options); !s.ok()) return s;
  if (!options.storage) return std::unique_ptr<Stream>(new Stream(std::move(options), nullptr));
  return OpenDurable(std::move(options), /*create_only=*/true);
}

absl::StatusOr<std::unique_ptr<Stream>> Stream::Open(StreamOptions options) {
  if (!options.storage) {
    return InvalidArgumentError("Stream::Open needs options.storage (a durable stream)");
  }
  if (absl::Status s = ValidateStreamOptions(options); !s.ok()) return s;
  return OpenDurable(std::move(options), /*create_only=*/false);
}

absl::StatusOr<std::unique_ptr<Stream>> Stream::OpenDurable(StreamOptions options,
                                                            bool create_only) {
  absl::StatusOr<std::unique_ptr<internal::StreamStore>> store =
      internal::StreamStore::Open(*options.storage);
  if (!store.ok()) return AsKinesisError(store.status());
  absl::StatusOr<std::optional<internal::StreamMeta>> meta = (*store)->LoadMeta();
  if (!meta.ok()) return AsKinesisError(meta.status());
  if (*meta && create_only) {
    return ResourceInUseError(
        absl::StrFormat("directory %s already holds stream %s: open it with Stream::Open",
                        options.storage->directory, (*meta)->name));
  }
  if (*meta && (*meta)->name != options.name) {
    return InvalidArgumentError(absl::StrFormat("directory %s holds stream %s, not %s",
                                                options.storage->directory, (*meta)->name,
                                                options.name));
  }
  const internal::StreamMeta* recovered = *meta ? &**meta : nullptr;
  std::unique_ptr<Stream> stream(new Stream(std::move(options), recovered));
  if (absl::Status s = stream->AttachStorage(std::move(*store), recovered); !s.ok()) {
    return AsKinesisError(s);
  }
  return stream;
}

namespace {

absl::Status ValidateStreamOptions(StreamOptions& options) {
  if (!internal::IsKinesisName(options.name)) {
    return InvalidArgumentError("stream name must be 1 to 128 characters of [a-zA-Z0-9_.-]");
  }
  if (options.max_shards < 1) return InvalidArgumentError("max_shards must be at least 1");
  if (options.shard_count < 1) return InvalidArgumentError("shard_count must be at least 1");
  if (options.capacity_mode == CapacityMode::kOnDemand) {
    const OnDemandPolicy& p = options.on_demand;
    if (p.min_shards < 1 || p.max_shards < p.min_shards || p.max_shards > options.max_shards) {
      return InvalidArgumentError(
          "on_demand needs 1 <= min_shards <= max_shards <= StreamOptions::max_shards");
    }
    options.shard_count = std::max(options.shard_count, p.min_shards);
  }
  if (options.shard_count > options.max_shards) {
    return LimitExceededError(absl::StrFormat("shard_count %d exceeds the shard limit %d",
                                              options.shard_count, options.max_shards));
  }
  if (absl::Status s = ValidateRetention(options.retention, options.allow_short_retention);
      !s.ok()) {
    return s;
  }
  if (options.max_record_bytes < (size_t{1} << 20) ||
      options.max_record_bytes > (size_t{10} << 20)) {
    return ValidationError("max_record_bytes must be within [1 MiB, 10 MiB]");
  }
  if (options.max_put_records_bytes < (size_t{1} << 20)) {
    return InvalidArgumentError("max_put_records_bytes must be at least 1 MiB");
  }
  if (absl::Status s = ValidateLimits(options.shard_limits); !s.ok()) return s;
  if (options.max_shard_count_updates_per_day < 1 || options.max_mode_updates_per_day < 1) {
    return InvalidArgumentError("the daily update quotas must be at least 1");
  }
  if (options.update_duration < absl::ZeroDuration()) {
    return InvalidArgumentError("update_duration must not be negative");
  }
  if (options.clock == nullptr) options.clock = SystemClock::Default();
  return absl::OkStatus();
}

// Names one stream among all a process creates: the name, the creation time and a process-wide
// ordinal, so that two streams of one name created at the same simulated instant still refuse
// each other's iterators and sequence numbers. Deterministic for a program that creates its
// streams in the same order.
Md5Digest StreamSeed(std::string_view name, absl::Time creation_time) {
  static std::atomic<uint64_t> streams_created{0};
  const std::string seed = absl::StrFormat("%s/%d/%d", absl::string_view(name.data(), name.size()),
                                           absl::ToUnixNanos(creation_time),
                                           streams_created.fetch_add(1, std::memory_order_relaxed));
  return Md5(seed);
}

}  // namespace

Stream::Stream(StreamOptions options, const internal::StreamMeta* recovered)
    : options_(std::move(options)),
      creation_time_(recovered != nullptr ? absl::FromUnixNanos(recovered->creation_ns)
                                          : options_.clock->Now()),
      seed_(recovered != nullptr ? recovered->seed : StreamSeed(options_.name, creation_time_)),
      instance_(Mix64(seed_, 0) | 1),  // never 0, which marks "no stream"
      stream_tag_(static_cast<uint32_t>(Mix64(seed_, 8)) & internal::kStreamTagMask),
      retention_us_(recovered != nullptr ? recovered->retention_us
                                         : absl::ToInt64Microseconds(options_.retention)),
      capacity_mode_(recovered != nullptr ? static_cast<CapacityMode>(recovered->capacity_mode)
                                          : options_.capacity_mode),
      counters_(std::make_unique<Counters>()) {
  auto map = std::make_unique<ShardMap>();
  internal::MutexLock lock(&shards_mu_);
  if (recovered == nullptr) {
    const std::vector<HashKeyRange> ranges = SplitHashKeySpace(options_.shard_count);
    const int64_t now_us = ToMicros(creation_time_);
    last_tick_us_ = now_us;
    for (size_t i = 0; i < ranges.size(); ++i) {
      // Counters start at 1: counter 0 is below every record, for "from the start" positions.
      shards_.push_back(std::make_unique<StreamShard>(ShardId(static_cast<uint32_t>(i)), ranges[i],
                                                      1, now_us, options_.shard_limits));
    }
  } else {
    // The shards as they were; their records are replayed by AttachStorage.
    last_tick_us_ = ToMicros(options_.clock->Now());
    trim_floor_us_.store(recovered->trim_floor_us);
    for (const internal::ShardMeta& m : recovered->shards) {
      auto shard = std::make_unique<StreamShard>(ShardId(m.index), m.range, m.first_counter,
                                                 m.created_us, options_.shard_limits);
      if (m.parent) shard->parent = ShardId(*m.parent);
      if (m.adjacent_parent) shard->adjacent_parent = ShardId(*m.adjacent_parent);
      shards_.push_back(std::move(shard));
    }
    RestoreConsumers(*recovered);
  }
  for (const auto& shard : shards_) {
    if (recovered == nullptr || !recovered->shards[shard->id.index()].closed_us) {
      map->open.push_back(shard.get());
    }
    map->all.push_back(shard.get());
  }
  std::sort(map->open.begin(), map->open.end(), [](const StreamShard* a, const StreamShard* b) {
    return a->range.starting_hash_key < b->range.starting_hash_key;
  });
  for (const StreamShard* s : map->open) map->starts.push_back(s->range.starting_hash_key);
  shard_map_.store(map.get(), std::memory_order_release);
  shard_maps_.push_back(std::move(map));
}

Stream::~Stream() {
  StopAutoScaling();
  StopFlusher();
  if (store_ != nullptr) Flush().IgnoreError();  // what a clean shutdown owes the disk
}

void Stream::StopFlusher() {
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(flusher_mu_);
    flusher_stop_ = true;
    thread = std::move(flusher_thread_);
  }
  flusher_cv_.notify_all();
  if (thread.joinable()) thread.join();
}

absl::Status Stream::AttachStorage(std::unique_ptr<internal::StreamStore> store,
                                   const internal::StreamMeta* meta) {
  store_ = std::move(store);
  internal::MutexLock lock(&shards_mu_);
  const int64_t now_us = ToMicros(options_.clock->Now());
  const int64_t now_ns = now_us * 1000;
  const int64_t expire_before = std::max(now_us - retention_us_.load(), trim_floor_us_.load());
  const size_t per_shard_budget =
      store_->options().memory_budget_bytes / std::max<size_t>(1, shards_.size());
  // The journal holds what acknowledged puts wrote since the segments last caught up: read it
  // first, shard by shard; each shard appends its entries after its segments' records.
  std::vector<std::vector<internal::JournalEntry>> journaled(shards_.size());
  absl::StatusOr<std::unique_ptr<internal::Journal>> journal = internal::Journal::Open(
      options_.storage->directory,
      options_.storage->fsync == FsyncPolicy::kEveryBatch ? internal::Journal::Mode::kWriteThrough
                                                          : internal::Journal::Mode::kMapped,
      [&](const internal::JournalEntry& e) {
        if (e.shard < journaled.size()) journaled[e.shard].push_back(e);
      });
  if (!journal.ok()) return journal.status();
  // Each shard recovers on its own: replay runs on up to one thread per core, joined here.
  struct Recovered {
    internal::ShardRecovery recovery;
    uint64_t journal_records = 0;
    absl::Status status;
  };
  std::vector<Recovered> recovered(shards_.size());
  std::vector<StreamShard*> shards;  // what the recovering threads see (shards_ is guarded)
  for (const auto& shard : shards_) shards.push_back(shard.get());
  auto recover = [&](size_t i) {
    StreamShard& shard = *shards[i];
    internal::ShardLog& log = shard.log;
    internal::ShardRecovery& recovery = recovered[i].recovery;
    absl::StatusOr<std::unique_ptr<internal::ShardStore>> shard_store = internal::ShardStore::Open(
        store_->ShardDirectory(shard.id.index()), store_->options(),
        [&log, expire_before](const internal::StoredRecord& r) {
          // Exactly the stored counter and arrival: the floor is the counter minus one.
          log.Append(r.partition_key, r.data, r.arrival_us, r.counter - 1, expire_before);
        },
        &recovery,
        [&log, per_shard_budget](uint64_t safe) {
          // Recovery holds no more memory than the budget allows a shard either.
          if (per_shard_budget != 0 && log.MemoryBytes() > per_shard_budget) {
            log.EvictBefore(safe);
          }
        });
    if (!shard_store.ok()) {
      recovered[i].status = shard_store.status();
      return;
    }
    shard.store = std::move(*shard_store);
    // Records on disk end here; what the journal adds after them must be written again.
    const uint64_t segments_end = log.end_ordinal();
    std::vector<internal::JournalEntry>& entries = journaled[i];
    std::stable_sort(entries.begin(), entries.end(),
                     [](const internal::JournalEntry& a, const internal::JournalEntry& b) {
                       return a.counter < b.counter;
                     });
    for (const internal::JournalEntry& e : entries) {
      // Entries the segments already hold (or that a damaged frame's counters cover) are not
      // new; neither is anything above a closed shard's end.
      if (e.counter < log.next_counter() || e.counter <= recovery.counter_floor) continue;
      if (meta && meta->shards[shard.id.index()].closed_us &&
          e.counter > meta->shards[shard.id.index()].ending_counter) {
        continue;
      }
      log.Append(e.partition_key, e.data, e.arrival_us, e.counter - 1, expire_before);
      ++recovered[i].journal_records;
    }
    if (recovery.counter_floor > 0) log.RaiseNextCounter(recovery.counter_floor);
    shard.store->set_persisted_ordinal(recovery.rewrite_from_record ? *recovery.rewrite_from_record
                                                                    : segments_end);
    if (meta && meta->shards[shard.id.index()].closed_us) {
      const internal::ShardMeta& m = meta->shards[shard.id.index()];
      log.RaiseNextCounter(m.ending_counter);
      log.Close();
      shard.closed_us.store(*m.closed_us, std::memory_order_release);
    }
    if (recovery.rewrite_from_record || recovered[i].journal_records != 0) {
      recovered[i].status = shard.store->Commit(log, /*force_sync=*/true, now_ns);
    }
  };
  {
    const size_t threads =
        std::min<size_t>(shards.size(), std::max<unsigned>(1, std::thread::hardware_concurrency()));
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i = next.fetch_add(1); i < shards.size(); i = next.fetch_add(1)) recover(i);
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
  }
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (!recovered[i].status.ok()) return recovered[i].status;
    const internal::ShardRecovery& recovery = recovered[i].recovery;
    recovered_records_ += recovery.records + recovered[i].journal_records;
    if (!recovery.corruption.ok() && recovery_status_.ok()) {
      recovery_status_ = InternalFailureError(absl::StrFormat(
          "shard %s of stream %s is damaged on disk; it keeps the %d records before the damage: "
          "%s",
          shards_[i]->id.ToString(), options_.name, recovery.records,
          recovery.corruption.ToString()));
    }
  }
  // Every journaled record is in the segments now (written and synced above): start afresh.
  if (absl::Status s = (*journal)->Reset(); !s.ok()) return s;
  store_->AttachJournal(*std::move(journal));
  if (absl::Status s = SetCounterCeilingsLocked(); !s.ok()) return s;
  if (store_->options().memory_budget_bytes != 0) {
    for (const auto& shard : shards_) shard->log.EvictBefore(shard->store->persisted_ordinal());
  }
  if (meta) {
    // Lineage: each closed shard's children.
    for (const auto& shard : shards_) {
      if (!shard->log.closed()) continue;
      for (const auto& child : shards_) {
        if (child->parent == shard->id || child->adjacent_parent == shard->id) {
          std::vector<ShardId> parents{*child->parent};
          if (child->adjacent_parent) parents.push_back(*child->adjacent_parent);
          shard->children.push_back(ChildShard{child->id, parents, child->range});
        }
      }
    }
  }
  TrimAll();
  if (absl::Status s = PersistMetaLocked(); !s.ok()) return s;
  const StorageOptions& storage = store_->options();
  if (storage.background_flush) {
    flusher_thread_ = std::thread([this, interval = storage.fsync_interval] {
      std::unique_lock<std::mutex> lock(flusher_mu_);
      while (!flusher_cv_.wait_for(lock, absl::ToChronoNanoseconds(interval),
                                   [this] { return flusher_stop_; })) {
        lock.unlock();
        // A failed store or journal fails the next put, which reports the error.
        Checkpoint(/*seal=*/false).IgnoreError();
        lock.lock();
      }
    });
  }
  return absl::OkStatus();
}

absl::Status Stream::SetCounterCeilingsLocked() {
  absl::StatusOr<std::vector<uint64_t>> ceilings = store_->LoadCeilings();
  uint64_t damaged_margin = 0;
  if (!ceilings.ok()) {
    // COUNTERS rotted: numbers issued before the crash are unknown, so jump well past them.
    damaged_margin = 64 * kCounterLease;
    ceilings = std::vector<uint64_t>();
  }
  std::vector<std::pair<uint32_t, uint64_t>> updates;
  for (const auto& shard : shards_) {
    if (shard->log.closed()) continue;
    const uint32_t index = shard->id.index();
    // Counters below the old ceiling may have been issued (and lost in a power cut): start at it.
    if (index < ceilings->size() && (*ceilings)[index] > 0) {
      shard->log.RaiseNextCounter((*ceilings)[index] - 1);
    }
    if (damaged_margin != 0)
      shard->log.RaiseNextCounter(shard->log.next_counter() + damaged_margin);
    shard->counter_ceiling = shard->log.next_counter() + kCounterLease;
    updates.emplace_back(index, shard->counter_ceiling);
  }
  if (absl::Status s = store_->RaiseCeilings(updates); !s.ok()) return s;
  return absl::OkStatus();
}

absl::Status Stream::Checkpoint(bool seal) {
  internal::Journal* journal = store_->journal();
  const FsyncPolicy policy = store_->options().fsync;
  if (seal) journal->Seal();
  // Taken before the segments are written: every record in these files is published, so the
  // writes below include them all.
  const std::vector<internal::Journal::File*> taken = journal->TakeRecyclable();
  absl::Status status;
  bool wrote = false;
  for (StreamShard* shard : shard_map_.load(std::memory_order_acquire)->all) {
    internal::ShardStore* store = shard->store.get();
    if (store == nullptr) continue;  // no record reached it (puts there fail)
    absl::Status s;
    if (store->failed()) {
      s = store->status();
    } else if (store->persisted_ordinal() < shard->log.end_ordinal() || seal) {
      s = store->Commit(shard->log, /*force_sync=*/seal || policy == FsyncPolicy::kInterval,
                        absl::ToUnixNanos(options_.clock->Now()));
      wrote = true;
    }
    // Before a journal file goes, what it protected must be as durable as the policy promises.
    if (s.ok() && !taken.empty() && policy != FsyncPolicy::kNever) s = store->Sync();
    if (!s.ok() && !shard->expired.load(std::memory_order_relaxed) && status.ok()) status = s;
  }
  // The journal itself is not synced here: kInterval's promise is kept by the segments, which
  // this flush wrote and synced with everything published when it began (syncing a mapped file
  // makes the kernel write-protect its pages, and every put then faults again).
  if (status.ok()) {
    status = journal->Recycle(taken);
  } else {
    journal->Untake(taken);
  }
  if (wrote) EnforceMemoryBudget();
  return AsKinesisError(status);
}

internal::StreamMeta Stream::BuildMetaLocked() const {
  internal::StreamMeta meta;
  meta.name = options_.name;
  meta.seed = seed_;
  meta.creation_ns = absl::ToUnixNanos(creation_time_);
  meta.retention_us = retention_us_.load();
  meta.capacity_mode = static_cast<uint8_t>(capacity_mode_.load());
  meta.trim_floor_us = trim_floor_us_.load();
  for (const auto& shard : shards_) {
    internal::ShardMeta m;
    m.index = shard->id.index();
    m.range = shard->range;
    if (shard->parent) m.parent = shard->parent->index();
    if (shard->adjacent_parent) m.adjacent_parent = shard->adjacent_parent->index();
    m.first_counter = shard->log.first_counter();
    m.created_us = shard->created_us;
    if (shard->log.closed()) {
      m.closed_us = shard->closed_us.load(std::memory_order_acquire);
      m.ending_counter = shard->log.ending_counter();
    }
    meta.shards.push_back(m);
  }
  AppendConsumers(&meta);
  return meta;
}

absl::Status Stream::PersistMetaLocked() {
  if (store_ == nullptr) return absl::OkStatus();
  if (absl::Status s = store_->SaveMeta(BuildMetaLocked()); !s.ok()) return AsKinesisError(s);
  return absl::OkStatus();
}

absl::Status Stream::PersistMeta() {
  if (store_ == nullptr) return absl::OkStatus();
  internal::MutexLock lock(&shards_mu_);
  return PersistMetaLocked();
}

absl::Status Stream::CommitShard(StreamShard* shard, bool force_sync) {
  internal::ShardStore* store = shard->store.get();
  if (store == nullptr) {
    if (store_ == nullptr) return absl::OkStatus();
    return InternalFailureError(absl::StrFormat(
        "shard %s of stream %s has no storage (opening its directory failed when it was created)",
        shard->id.ToString(), options_.name));
  }
  if (!force_sync) {
    // The journal already holds the records; the segments are written behind, by the flusher
    // thread or (without one) here, in large group commits.
    if (store_->options().background_flush ||
        !store->ShouldCommit(shard->log, absl::ToUnixNanos(options_.clock->Now()))) {
      return AsKinesisError(store->status());
    }
  }
  if (absl::Status s =
          store->Commit(shard->log, force_sync, absl::ToUnixNanos(options_.clock->Now()));
      !s.ok()) {
    return AsKinesisError(s);
  }
  EnforceMemoryBudget();
  return absl::OkStatus();
}

void Stream::EnforceMemoryBudget() {
  const size_t budget = options_.storage->memory_budget_bytes;
  if (budget == 0) return;
  const size_t used = MemoryBytes();
  if (used <= budget) return;
  // Evict a little below the budget, oldest chunks first, not whole shards: what is freed
  // then matches what new records need, and the chunk pool hands it back without the kernel
  // zeroing fresh pages.
  size_t excess = used - budget + budget / 32;
  const std::vector<StreamShard*>& all = shard_map_.load(std::memory_order_acquire)->all;
  const size_t start = evict_round_.fetch_add(1, std::memory_order_relaxed);
  for (size_t i = 0; i < all.size() && excess > 0; ++i) {
    StreamShard* s = all[(start + i) % all.size()];
    if (s->store == nullptr) continue;
    excess -= std::min(excess, s->log.EvictBefore(s->store->persisted_ordinal(), excess));
  }
}

absl::Status Stream::Flush() {
  if (store_ == nullptr) return absl::OkStatus();
  // Everything to the segments, synced (kNever: written), and the journal emptied.
  return Checkpoint(/*seal=*/true);
}

uint64_t Stream::DiskBytes() const {
  uint64_t bytes = 0;
  for (const StreamShard* shard : shard_map_.load(std::memory_order_acquire)->all) {
    if (shard->store != nullptr) bytes += shard->store->disk_bytes();
  }
  return bytes;
}

absl::Duration Stream::retention() const {
  return absl::Microseconds(retention_us_.load(std::memory_order_relaxed));
}

StreamShard* Stream::FindShard(uint32_t index) const {
  const ShardMap* map = shard_map_.load(std::memory_order_acquire);
  return index < map->all.size() ? map->all[index] : nullptr;
}

bool Stream::Expired(const StreamShard& shard, int64_t now_us) const {
  // Every record of a closed shard arrived before it closed, so once the retention period has
  // passed since then, nothing in it is readable any more.
  if (shard.expired.load(std::memory_order_relaxed)) return true;
  if (shard.closed_us.load(std::memory_order_acquire) <
      now_us - retention_us_.load(std::memory_order_relaxed)) {
    shard.expired.store(true, std::memory_order_relaxed);
    return true;
  }
  return false;
}

absl::StatusOr<StreamShard*> Stream::FindLiveShard(uint32_t index, int64_t now_us) const {
  StreamShard* shard = FindShard(index);
  if (shard == nullptr || Expired(*shard, now_us)) {
    return ResourceNotFoundError(absl::StrFormat("shard %s does not exist in stream %s",
                                                 ShardId(index).ToString(), options_.name));
  }
  return shard;
}

absl::Status Stream::ValidateRecord(std::string_view partition_key, std::string_view data) const {
  // Kinesis counts a key's characters in UTF-16 units, and the key must be valid UTF-8.
  int units = 0;
  if (partition_key.empty() || (units = internal::Utf16Length(partition_key)) < 1 ||
      units > kMaxPartitionKeyChars) {
    if (units < 0) return InvalidArgumentError("partition key is not valid UTF-8");
    return InvalidArgumentError(
        absl::StrFormat("partition key must have 1 to 256 characters, not %d", units));
  }
  if (partition_key.size() + data.size() > options_.max_record_bytes) {
    return InvalidArgumentError(absl::StrFormat(
        "record of %d bytes (key and data) exceeds the stream's maximum of %d bytes",
        partition_key.size() + data.size(), options_.max_record_bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Stream::OrderingCounter(SequenceNumber s) const {
  const internal::SequenceParts parts = internal::DecodeSequenceNumber(s);
  const StreamShard* shard =
      parts.version == internal::kSequenceVersion && parts.stream_tag == stream_tag_
          ? FindShard(parts.shard_index)
          : nullptr;
  if (shard == nullptr || parts.counter >= shard->log.next_counter()) {
    return InvalidArgumentError(absl::StrFormat(
        "ExclusiveMinimumSequenceNumber %s is invalid: it was not issued by stream %s",
        s.ToString(), options_.name));
  }
  return parts.counter;
}

// What one put call owes the journal: its region (reserved at the call's first record, sized
// for all of its records), and with kEveryBatch the shards whose records wait for the sync.
struct Stream::DurablePut {
  size_t reserve_bytes = 0;  // journal bytes the call's records not yet put may need
  bool deferred = false;     // kEveryBatch: records become visible after the sync
  internal::Journal::Region region;
  absl::InlinedVector<internal::Journal::File*, 1> files;  // Done() owed, one per region
  uint64_t ticket = 0;                                     // sync up to
  absl::Status error;                                      // a region that failed to finish
  struct Pending {
    StreamShard* shard;
    uint64_t start;  // ordinal of the call's first record there
    uint64_t end;    // after its last
  };
  absl::InlinedVector<Pending, 4> pending;

  bool empty() const { return files.empty(); }
  Pending* Find(StreamShard* shard) {
    for (Pending& p : pending) {
      if (p.shard == shard) return &p;
    }
    return nullptr;
  }
};

ErrorCode Stream::PutOne(std::string_view partition_key, std::string_view data,
                         const std::optional<HashKey>& explicit_hash_key, uint64_t counter_floor,
                         int64_t now_us, PutRecordResult* result, std::string* error,
                         StreamShard** shard_out, DurablePut* durable) {
  const HashKey hash_key =
      explicit_hash_key ? *explicit_hash_key : internal::CachedPartitionKeyHash(partition_key);
  const int64_t expire_before = now_us - retention_us_.load(std::memory_order_relaxed);
  const auto bytes = static_cast<int64_t>(partition_key.size() + data.size());
  for (;;) {
    const ShardMap* map = shard_map_.load(std::memory_order_acquire);
    StreamShard* shard = map->Route(hash_key);
    if (shard->write_limited &&
        !internal::TryTakeBoth(shard->write_bytes, bytes, shard->write_records, 1, now_us)) {
      Add(shard->write_throttled, 1);
      *error = absl::StrFormat(
          "Rate exceeded for shard %s in stream %s: the shard's write limit (%d bytes/s, %d "
          "records/s) is used up",
          shard->id.ToString(), options_.name, options_.shard_limits.write_bytes_per_second,
          options_.shard_limits.write_records_per_second);
      return ErrorCode::kProvisionedThroughputExceeded;
    }
    std::optional<internal::ShardLog::Appended> appended;
    if (store_ == nullptr) {
      appended = shard->log.Append(partition_key, data, now_us, counter_floor, expire_before);
    } else {
      uint64_t counter = 0;
      absl::StatusOr<bool> a = AppendDurable(shard, partition_key, data, now_us, counter_floor,
                                             expire_before, durable, &counter);
      if (!a.ok()) {
        // Nothing was written: the record is neither readable nor numbered.
        if (shard->write_limited) {
          shard->write_bytes.Refund(bytes);
          shard->write_records.Refund(1);
        }
        *error = std::string(a.status().message());
        return GetErrorCode(AsKinesisError(a.status()));
      }
      if (*a) appended = internal::ShardLog::Appended{counter, 0, 0};
    }
    if (appended) {
      if (shard_out != nullptr) *shard_out = shard;
      result->shard_id = shard->id;
      result->sequence_number =
          internal::MakeSequenceNumber(appended->counter, shard->id.index(), stream_tag_);
      return ErrorCode::kOk;
    }
    // The shard closed after we routed to it: a resharding is publishing its successors. It
    // publishes the new map right after closing the parents, without blocking in between, so
    // waiting for the map to change waits only for the map that routes this key to a child.
    if (shard->write_limited) {
      shard->write_bytes.Refund(bytes);
      shard->write_records.Refund(1);
    }
    shard_map_.wait(map, std::memory_order_acquire);
  }
}

absl::StatusOr<bool> Stream::AppendDurable(StreamShard* shard, std::string_view partition_key,
                                           std::string_view data, int64_t now_us,
                                           uint64_t counter_floor, int64_t expire_before,
                                           DurablePut* durable, uint64_t* counter) {
  internal::ShardStore* store = shard->store.get();
  if (store == nullptr) {
    return InternalFailureError(absl::StrFormat(
        "shard %s of stream %s has no storage (opening its directory failed when it was created)",
        shard->id.ToString(), options_.name));
  }
  if (store->failed()) return store->status();
  DurablePut::Pending* pending = durable->deferred ? durable->Find(shard) : nullptr;
  auto journal_hook = [&](uint64_t counter, int64_t arrival_us) {
    return JournalRecord(shard, durable, partition_key, data, counter, arrival_us);
  };
  using Visibility = internal::ShardLog::Visibility;
  const Visibility visibility = !durable->deferred   ? Visibility::kNow
                                : pending == nullptr ? Visibility::kDeferredFirst
                                                     : Visibility::kDeferred;
  absl::StatusOr<std::optional<internal::ShardLog::Appended>> appended = shard->log.AppendJournaled(
      partition_key, data, now_us, counter_floor, expire_before, visibility, journal_hook);
  if (!appended.ok()) return appended.status();
  if (!appended->has_value()) return false;
  *counter = (*appended)->counter;
  if (durable->deferred) {
    const uint64_t ordinal = (*appended)->ordinal;
    if (pending == nullptr) {
      durable->pending.push_back(DurablePut::Pending{shard, ordinal, ordinal + 1});
    } else {
      pending->end = ordinal + 1;
    }
  }
  return true;
}

absl::Status Stream::JournalRecord(StreamShard* shard, DurablePut* durable,
                                   std::string_view partition_key, std::string_view data,
                                   uint64_t counter, int64_t arrival_us) {
  if (counter >= shard->counter_ceiling) {
    const uint64_t ceiling = counter + kCounterLease;
    const std::pair<uint32_t, uint64_t> update{shard->id.index(), ceiling};
    if (absl::Status s = store_->RaiseCeilings({&update, 1}); !s.ok()) return s;
    shard->counter_ceiling = ceiling;
  }
  internal::Journal* journal = store_->journal();
  internal::Journal::Region& region = durable->region;
  const size_t need = internal::Journal::BlockBytes(partition_key.size(), data.size());
  if (!region.Fits(partition_key.size(), data.size())) {
    // The call's first record (or, should a region run out, the next one).
    if (region.active()) {
      absl::StatusOr<uint64_t> ticket = journal->Finish(&region);
      if (!ticket.ok()) {
        durable->error = ticket.status();
        return ticket.status();
      }
      durable->ticket = *ticket;
    }
    if (absl::Status s = journal->Reserve(std::max(durable->reserve_bytes, need), &region);
        !s.ok()) {
      return s;
    }
    durable->files.push_back(internal::Journal::FileOf(region));
  }
  region.Put(internal::JournalEntry{shard->id.index(), counter, arrival_us, partition_key, data});
  durable->reserve_bytes -= std::min(durable->reserve_bytes, need);
  return absl::OkStatus();
}

void Stream::PutShardBatch(StreamShard* shard, absl::Span<const PutRecordsEntry> entries,
                           absl::Span<const uint32_t> indices, int64_t now_us,
                           PutRecordsResult* result, int64_t* throttled,
                           std::vector<StreamShard*>* touched, DurablePut* durable) {
  using internal::ShardLog;
  thread_local std::vector<ShardLog::BatchRecord> batch;
  batch.clear();
  for (const uint32_t i : indices) {
    const PutRecordsEntry& e = entries[i];
    const auto bytes = static_cast<int64_t>(e.partition_key.size() + e.data.size());
    if (shard->write_limited &&
        !internal::TryTakeBoth(shard->write_bytes, bytes, shard->write_records, 1, now_us)) {
      Add(shard->write_throttled, 1);
      PutRecordsResultEntry& out = result->entries[i];
      out.error_code = ErrorCode::kProvisionedThroughputExceeded;
      out.error_message = absl::StrFormat(
          "Rate exceeded for shard %s in stream %s: the shard's write limit (%d bytes/s, %d "
          "records/s) is used up",
          shard->id.ToString(), options_.name, options_.shard_limits.write_bytes_per_second,
          options_.shard_limits.write_records_per_second);
      ++result->failed_record_count;
      ++*throttled;
      continue;
    }
    batch.push_back(ShardLog::BatchRecord{e.partition_key, e.data, i});
  }
  auto refund = [&](const ShardLog::BatchRecord& r) {
    if (shard->write_limited) {
      shard->write_bytes.Refund(static_cast<int64_t>(r.key.size() + r.data.size()));
      shard->write_records.Refund(1);
    }
  };
  const int64_t expire_before = now_us - retention_us_.load(std::memory_order_relaxed);
  bool wrote = false;
  size_t pos = 0;
  while (pos < batch.size()) {
    const absl::Span<ShardLog::BatchRecord> rest = absl::MakeSpan(batch).subspan(pos);
    size_t appended = 0;
    absl::Status status;
    if (store_ == nullptr) {
      status = shard->log.AppendJournaledBatch(
          rest, now_us, expire_before, ShardLog::Visibility::kNow,
          [](const ShardLog::BatchRecord&) { return absl::OkStatus(); }, &appended);
    } else if (shard->store == nullptr) {
      status = InternalFailureError(absl::StrFormat(
          "shard %s of stream %s has no storage (opening its directory failed when it was "
          "created)",
          shard->id.ToString(), options_.name));
    } else if (shard->store->failed()) {
      status = shard->store->status();
    } else {
      DurablePut::Pending* pending = durable->deferred ? durable->Find(shard) : nullptr;
      const ShardLog::Visibility visibility = !durable->deferred ? ShardLog::Visibility::kNow
                                              : pending == nullptr
                                                  ? ShardLog::Visibility::kDeferredFirst
                                                  : ShardLog::Visibility::kDeferred;
      status = shard->log.AppendJournaledBatch(
          rest, now_us, expire_before, visibility,
          [&](const ShardLog::BatchRecord& r) {
            return JournalRecord(shard, durable, r.key, r.data, r.counter, r.arrival_us);
          },
          &appended);
      if (durable->deferred && appended != 0) {
        const uint64_t end = rest[appended - 1].ordinal + 1;
        if (pending == nullptr) {
          durable->pending.push_back(DurablePut::Pending{shard, rest[0].ordinal, end});
        } else {
          pending->end = end;
        }
      }
    }
    for (size_t j = 0; j < appended; ++j) {
      PutRecordsResultEntry& out = result->entries[rest[j].index];
      out.shard_id = shard->id;
      out.sequence_number =
          internal::MakeSequenceNumber(rest[j].counter, shard->id.index(), stream_tag_);
    }
    wrote = wrote || appended != 0;
    pos += appended;
    if (!status.ok()) {
      // Nothing of this record was written: it is neither readable nor numbered.
      const ShardLog::BatchRecord& r = batch[pos++];
      refund(r);
      PutRecordsResultEntry& out = result->entries[r.index];
      const absl::Status error = AsKinesisError(status);
      out.error_code = GetErrorCode(error);
      out.error_message = std::string(error.message());
      ++result->failed_record_count;
    } else if (pos < batch.size()) {
      // The shard closed (a resharding): the rest is routed again, one by one, to its children.
      for (; pos < batch.size(); ++pos) {
        const ShardLog::BatchRecord& r = batch[pos];
        refund(r);
        const PutRecordsEntry& e = entries[r.index];
        PutRecordsResultEntry& out = result->entries[r.index];
        PutRecordResult put;
        StreamShard* child = nullptr;
        out.error_code = PutOne(e.partition_key, e.data, e.explicit_hash_key, 0, now_us, &put,
                                &out.error_message, &child, durable);
        if (out.ok()) {
          out.shard_id = put.shard_id;
          out.sequence_number = put.sequence_number;
          if (std::find(touched->begin(), touched->end(), child) == touched->end()) {
            touched->push_back(child);
          }
        } else {
          ++result->failed_record_count;
          if (out.error_code == ErrorCode::kProvisionedThroughputExceeded) ++*throttled;
        }
      }
    }
  }
  if (wrote && std::find(touched->begin(), touched->end(), shard) == touched->end()) {
    touched->push_back(shard);
  }
}

absl::Status Stream::FinishDurablePut(DurablePut& durable) {
  internal::Journal* journal = store_->journal();
  absl::Status status = durable.error;
  if (durable.region.active()) {
    absl::StatusOr<uint64_t> ticket = journal->Finish(&durable.region);
    if (ticket.ok()) {
      durable.ticket = *ticket;
    } else if (status.ok()) {
      status = ticket.status();
    }
  }
  if (durable.deferred) {
    // kEveryBatch: one journal sync for everything this call wrote (shared with concurrent
    // callers), then the records become visible. A failed sync leaves them invisible for good.
    if (status.ok()) status = journal->SyncTo(durable.ticket);
    for (const DurablePut::Pending& p : durable.pending) {
      p.shard->log.FinishDeferred(p.start, p.end, status.ok());
    }
  }
  for (internal::Journal::File* file : durable.files) journal->Done(file);
  return AsKinesisError(status);
}

void Stream::AfterDurablePut(absl::Span<StreamShard* const> touched) {
  if (store_->options().background_flush) return;
  // No flusher thread: the put writes the segments when enough waits, and recycles the journal.
  for (StreamShard* shard : touched) CommitShard(shard).IgnoreError();
  if (store_->journal()->has_sealed()) Checkpoint(/*seal=*/false).IgnoreError();
}

absl::StatusOr<PutRecordResult> Stream::PutRecord(std::string_view partition_key,
                                                  std::string_view data,
                                                  const PutOptions& options) {
  absl::Status status = ValidateRecord(partition_key, data);
  uint64_t floor = 0;
  if (status.ok() && options.sequence_number_for_ordering) {
    absl::StatusOr<uint64_t> counter = OrderingCounter(*options.sequence_number_for_ordering);
    if (counter.ok()) {
      floor = *counter;
    } else {
      status = counter.status();
    }
  }
  if (!status.ok()) {
    Add(counters_->put_record_failure, 1);
    return status;
  }
  // Latency is sampled: reading the clock twice per put would cost more than the rest of it.
  thread_local uint32_t calls = 0;
  const bool sample = (calls++ & 63) == 0;
  const absl::Time start = options_.clock->Now();
  PutRecordResult result;
  std::string error;
  StreamShard* shard = nullptr;
  DurablePut durable;
  if (store_ != nullptr) {
    durable.deferred = store_->options().fsync == FsyncPolicy::kEveryBatch;
    durable.reserve_bytes = internal::Journal::BlockBytes(partition_key.size(), data.size());
  }
  const ErrorCode code = PutOne(partition_key, data, options.explicit_hash_key, floor,
                                ToMicros(start), &result, &error, &shard, &durable);
  if (store_ != nullptr) {
    if (!durable.empty()) {
      if (absl::Status s = FinishDurablePut(durable); !s.ok()) {
        Add(counters_->put_record_failure, 1);
        return s;
      }
    }
    if (code == ErrorCode::kOk) AfterDurablePut({&shard, 1});
  }
  if (sample) {
    counters_->put_record_latency.Record(absl::ToInt64Microseconds(options_.clock->Now() - start));
  }
  if (code != ErrorCode::kOk) {
    Add(counters_->put_record_failure, 1);
    return MakeError(code, error);
  }
  return result;
}

absl::StatusOr<PutRecordsResult> Stream::PutRecords(absl::Span<const PutRecordsEntry> entries) {
  if (entries.empty() || entries.size() > kMaxPutRecordsEntries) {
    return InvalidArgumentError(absl::StrFormat("PutRecords takes 1 to %d entries, not %d",
                                                kMaxPutRecordsEntries, entries.size()));
  }
  size_t total = 0;
  for (const PutRecordsEntry& e : entries) total += e.partition_key.size() + e.data.size();
  if (total > options_.max_put_records_bytes) {
    return InvalidArgumentError(
        absl::StrFormat("PutRecords request of %d bytes exceeds the limit of %d bytes", total,
                        options_.max_put_records_bytes));
  }
  PutRecordsResult result;
  result.entries.resize(entries.size());
  const absl::Time start = options_.clock->Now();
  const int64_t now_us = ToMicros(start);
  int64_t throttled = 0;
  std::vector<StreamShard*> touched;
  DurablePut durable;
  if (store_ != nullptr) {
    durable.deferred = store_->options().fsync == FsyncPolicy::kEveryBatch;
    // One journal region for the whole call: what every entry may need.
    for (const PutRecordsEntry& e : entries) {
      durable.reserve_bytes += internal::Journal::BlockBytes(e.partition_key.size(), e.data.size());
    }
  }
  // Route every valid entry, then append each shard's entries (in the call's order, which
  // their sequence numbers follow) under one acquisition of its lock. A counting sort by
  // shard: the buffers are the thread's, reused, so a call allocates nothing here.
  thread_local std::vector<uint32_t> shard_of;  // per entry: shard index, or kNone (invalid)
  thread_local std::vector<uint32_t> group_of;  // per shard index: group, or kNone
  thread_local std::vector<std::pair<uint32_t, uint32_t>> groups;  // (shard index, offset)
  thread_local std::vector<uint32_t> order;                        // entry indices grouped by shard
  constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  const ShardMap* map = shard_map_.load(std::memory_order_acquire);
  if (group_of.size() < map->all.size()) group_of.resize(map->all.size(), kNone);
  shard_of.assign(entries.size(), kNone);
  groups.clear();
  for (size_t i = 0; i < entries.size(); ++i) {
    const PutRecordsEntry& e = entries[i];
    if (absl::Status s = ValidateRecord(e.partition_key, e.data); !s.ok()) {
      PutRecordsResultEntry& out = result.entries[i];
      out.error_code = GetErrorCode(s);
      out.error_message = std::string(s.message());
      ++result.failed_record_count;
      continue;
    }
    const HashKey hash_key = e.explicit_hash_key
                                 ? *e.explicit_hash_key
                                 : internal::CachedPartitionKeyHash(e.partition_key);
    const uint32_t shard = map->Route(hash_key)->id.index();
    shard_of[i] = shard;
    if (group_of[shard] == kNone) {
      group_of[shard] = static_cast<uint32_t>(groups.size());
      groups.emplace_back(shard, 0);
    }
    ++groups[group_of[shard]].second;  // a count for now
  }
  uint32_t offset = 0;
  for (auto& [shard, start] : groups) {
    const uint32_t count = start;
    start = offset;
    offset += count;
  }
  order.resize(offset);
  {
    thread_local std::vector<uint32_t> fill;
    fill.clear();
    for (const auto& g : groups) fill.push_back(g.second);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (shard_of[i] != kNone) order[fill[group_of[shard_of[i]]]++] = static_cast<uint32_t>(i);
    }
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto [shard, start] = groups[g];
    const uint32_t end = g + 1 < groups.size() ? groups[g + 1].second : offset;
    group_of[shard] = kNone;
    PutShardBatch(map->all[shard], entries, absl::MakeConstSpan(order).subspan(start, end - start),
                  now_us, &result, &throttled, &touched, &durable);
  }
  if (store_ != nullptr) {
    // kEveryBatch: the entries written are acknowledged only after the journal sync; if it
    // fails, they are reported failed and never become readable.
    if (!durable.empty()) {
      if (absl::Status s = FinishDurablePut(durable); !s.ok()) {
        for (PutRecordsResultEntry& out : result.entries) {
          if (!out.ok()) continue;
          out.error_code = ErrorCode::kInternalFailure;
          out.error_message = std::string(s.message());
          out.sequence_number = SequenceNumber();
          ++result.failed_record_count;
        }
      }
    }
    AfterDurablePut(touched);
  }
  const auto n = static_cast<int64_t>(entries.size());
  Counters& c = *counters_;
  Add(c.put_records_total, n);
  Add(c.put_records_successful, n - result.failed_record_count);
  Add(c.put_records_failed, result.failed_record_count - throttled);
  Add(c.put_records_throttled, throttled);
  if (result.failed_record_count < n) Add(c.put_records_success, 1);
  c.put_records_latency.Record(absl::ToInt64Microseconds(options_.clock->Now() - start));
  return result;
}

ShardDescription Stream::Describe(const StreamShard& shard) const {
  ShardDescription d;
  d.shard_id = shard.id;
  d.hash_key_range = shard.range;
  d.parent_shard_id = shard.parent;
  d.adjacent_parent_shard_id = shard.adjacent_parent;
  d.sequence_number_range.starting_sequence_number =
      internal::MakeSequenceNumber(shard.log.first_counter(), shard.id.index(), stream_tag_);
  if (shard.log.closed()) {
    d.sequence_number_range.ending_sequence_number =
        internal::MakeSequenceNumber(shard.log.ending_counter(), shard.id.index(), stream_tag_);
  }
  return d;
}

std::vector<ShardDescription> Stream::ListShards() const {
  const ShardMap* map = shard_map_.load(std::memory_order_acquire);
  const int64_t now_us = ToMicros(options_.clock->Now());
  std::vector<ShardDescription> shards;
  shards.reserve(map->all.size());
  for (const StreamShard* shard : map->all) {
    if (!Expired(*shard, now_us)) shards.push_back(Describe(*shard));
  }
  return shards;
}

absl::StatusOr<ListShardsResult> Stream::ListShards(const ListShardsRequest& request) const {
  if (request.max_results < 1 || request.max_results > 10000) {
    return InvalidArgumentError(
        absl::StrFormat("MaxResults must be within [1, 10000], not %d", request.max_results));
  }
  const int64_t now_us = ToMicros(options_.clock->Now());
  ShardFilter filter;
  int64_t after_index = -1;  // list shards with a greater index
  if (request.next_token) {
    if (request.exclusive_start_shard_id) {
      return InvalidArgumentError("NextToken and ExclusiveStartShardId cannot be used together");
    }
    std::optional<NextToken> token = DecodeNextToken(*request.next_token);
    if (!token || token->stream_instance != instance_ ||
        (token->filter_type != kNoFilter &&
         token->filter_type > static_cast<uint32_t>(ShardFilterType::kFromTimestamp))) {
      return InvalidArgumentError("NextToken is malformed or belongs to another stream");
    }
    if (now_us - token->issued_us > absl::ToInt64Microseconds(kNextTokenLifetime)) {
      return ExpiredNextTokenError(
          absl::StrFormat("NextToken issued at %s has expired",
                          absl::FormatTime(absl::FromUnixMicros(token->issued_us))));
    }
    if (token->filter_type != kNoFilter) {
      filter.type = static_cast<ShardFilterType>(token->filter_type);
      if (token->has_filter_shard) filter.shard_id = ShardId(token->filter_shard);
      if (token->has_filter_time) filter.timestamp = absl::FromUnixMicros(token->filter_time_us);
    }
    after_index = token->last_index;
  } else {
    if (request.filter) filter = *request.filter;
    if (request.exclusive_start_shard_id) after_index = request.exclusive_start_shard_id->index();
  }
  if (filter.type == ShardFilterType::kAfterShardId && !filter.shard_id) {
    return InvalidArgumentError("ShardFilter AFTER_SHARD_ID requires a ShardId");
  }
  if ((filter.type == ShardFilterType::kAtTimestamp ||
       filter.type == ShardFilterType::kFromTimestamp) &&
      !filter.timestamp) {
    return InvalidArgumentError(
        absl::StrFormat("ShardFilter %s requires a Timestamp", ShardFilterTypeName(filter.type)));
  }

  const int64_t creation_us = ToMicros(creation_time_);
  int64_t at_us = 0;  // for the AT_ filters: the moment whose open shards are listed
  if (filter.type == ShardFilterType::kAtTrimHorizon) {
    at_us = std::max(now_us - retention_us_.load(std::memory_order_relaxed), creation_us);
  } else if (filter.type == ShardFilterType::kAtTimestamp) {
    at_us = std::max(ToMicros(*filter.timestamp), creation_us);
  }
  auto selected = [&](const StreamShard& shard) {
    const int64_t closed_us = shard.closed_us.load(std::memory_order_acquire);
    switch (filter.type) {
      case ShardFilterType::kAfterShardId:
        return shard.id.index() > filter.shard_id->index();
      case ShardFilterType::kAtTrimHorizon:
      case ShardFilterType::kAtTimestamp:
        return shard.created_us <= at_us && at_us <= closed_us;
      case ShardFilterType::kFromTrimHorizon:
        return true;
      case ShardFilterType::kAtLatest:
        return !shard.log.closed();
      case ShardFilterType::kFromTimestamp:
        return closed_us >= ToMicros(*filter.timestamp);
    }
    return false;
  };

  const ShardMap* map = shard_map_.load(std::memory_order_acquire);
  const size_t page = static_cast<size_t>(std::min(request.max_results, kMaxListShardsResults));
  ListShardsResult result;
  for (const StreamShard* shard : map->all) {
    if (static_cast<int64_t>(shard->id.index()) <= after_index) continue;
    if (Expired(*shard, now_us) || !selected(*shard)) continue;
    if (result.shards.size() == page) {
      NextToken token;
      token.stream_instance = instance_;
      token.filter_type =
          request.next_token || request.filter ? static_cast<uint32_t>(filter.type) : kNoFilter;
      if (filter.shard_id) {
        token.has_filter_shard = 1;
        token.filter_shard = filter.shard_id->index();
      }
      if (filter.timestamp) {
        token.has_filter_time = 1;
        token.filter_time_us = ToMicros(*filter.timestamp);
      }
      token.last_index = result.shards.back().shard_id.index();
      token.issued_us = now_us;
      result.next_token = EncodeNextToken(token);
      break;
    }
    result.shards.push_back(Describe(*shard));
  }
  return result;
}

StreamSummary Stream::DescribeStreamSummary() const {
  const int64_t now_us = ToMicros(options_.clock->Now());
  StreamSummary summary;
  summary.stream_name = options_.name;
  summary.status = now_us < updating_until_us_.load(std::memory_order_acquire)
                       ? StreamStatus::kUpdating
                       : StreamStatus::kActive;
  summary.capacity_mode = capacity_mode_.load(std::memory_order_acquire);
  summary.open_shard_count =
      static_cast<int>(shard_map_.load(std::memory_order_acquire)->open.size());
  summary.retention = retention();
  summary.creation_time = creation_time_;
  summary.max_record_bytes = options_.max_record_bytes;
  {
    std::lock_guard<std::mutex> lock(consumers_mu_);
    summary.consumer_count = static_cast<int>(consumers_.size());
  }
  return summary;
}

absl::StatusOr<ShardIterator> Stream::GetShardIterator(ShardId shard_id,
                                                       const StartingPosition& position) const {
  return GetShardIteratorImpl(shard_id.index(), position);
}

absl::StatusOr<ShardIterator> Stream::GetShardIterator(std::string_view shard_id,
                                                       const StartingPosition& position) const {
  absl::StatusOr<ShardId> id = ShardId::Parse(shard_id);
  if (!id.ok()) return id.status();
  return GetShardIteratorImpl(id->index(), position);
}

absl::StatusOr<ShardIterator> Stream::GetShardIteratorImpl(uint32_t shard_index,
                                                           const StartingPosition& position,
                                                           bool rate_limited) const {
  const absl::Time now = options_.clock->Now();
  const int64_t now_us = ToMicros(now);
  absl::StatusOr<StreamShard*> found = FindLiveShard(shard_index, now_us);
  if (!found.ok()) return found.status();
  StreamShard* shard = *found;
  const std::string_view type_name = ShardIteratorTypeName(position.type);
  const bool wants_sequence = position.type == ShardIteratorType::kAtSequenceNumber ||
                              position.type == ShardIteratorType::kAfterSequenceNumber;
  const bool wants_timestamp = position.type == ShardIteratorType::kAtTimestamp;
  if (wants_sequence != position.sequence_number.has_value()) {
    return InvalidArgumentError(
        wants_sequence
            ? absl::StrFormat("%s requires a StartingSequenceNumber", type_name)
            : absl::StrFormat("StartingSequenceNumber is not allowed with %s", type_name));
  }
  if (wants_timestamp != position.timestamp.has_value()) {
    return InvalidArgumentError(
        wants_timestamp ? std::string("AT_TIMESTAMP requires a Timestamp")
                        : absl::StrFormat("Timestamp is not allowed with %s", type_name));
  }
  if (rate_limited && !shard->iterator_calls.TryTake(1, now_us)) {
    Add(shard->read_throttled, 1);
    return ProvisionedThroughputExceededError(
        absl::StrFormat("Rate exceeded for GetShardIterator on shard %s in stream %s (%d calls/s)",
                        shard->id.ToString(), options_.name,
                        options_.shard_limits.get_shard_iterator_calls_per_second));
  }

  internal::ShardLog& log = shard->log;
  const uint64_t end = log.end_ordinal();
  const uint64_t trim =
      internal::TrimShard(*shard, now_us - retention_us_.load(std::memory_order_relaxed));
  uint64_t ordinal = trim;
  // Durable mode: a position below the records in memory is looked up on disk.
  const uint64_t memory_start = shard->store != nullptr ? log.memory_start_ordinal() : 0;
  switch (position.type) {
    case ShardIteratorType::kTrimHorizon:
      ordinal = trim;
      break;
    case ShardIteratorType::kLatest:
      ordinal = end;
      break;
    case ShardIteratorType::kAtSequenceNumber:
    case ShardIteratorType::kAfterSequenceNumber: {
      absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(*position.sequence_number);
      if (!s.ok()) return s.status();
      const internal::SequenceParts parts = internal::DecodeSequenceNumber(*s);
      if (parts.version != internal::kSequenceVersion || parts.stream_tag != stream_tag_ ||
          parts.shard_index != shard_index) {
        return InvalidArgumentError(absl::StrFormat(
            "StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s is "
            "invalid because it did not come from this shard",
            *position.sequence_number, shard->id.ToString(), options_.name));
      }
      // Issued: below the next counter, or the shard's own starting or ending number.
      if (parts.counter >= log.next_counter() && parts.counter != log.first_counter() &&
          !(log.closed() && parts.counter == log.ending_counter())) {
        return InvalidArgumentError(
            absl::StrFormat("StartingSequenceNumber %s has not been issued by shard %s yet",
                            *position.sequence_number, shard->id.ToString()));
      }
      const uint64_t target =
          position.type == ShardIteratorType::kAtSequenceNumber ? parts.counter : parts.counter + 1;
      ordinal = log.LowerBoundCounter(target, end);
      if (ordinal <= std::max(trim, memory_start) && trim < memory_start) {
        absl::StatusOr<uint64_t> cold = shard->store->LowerBoundCounter(target, memory_start);
        if (!cold.ok()) return AsKinesisError(cold.status());
        ordinal = std::max(trim, *cold);
      }
      break;
    }
    case ShardIteratorType::kAtTimestamp:
      if (*position.timestamp > now) {
        return InvalidArgumentError("AT_TIMESTAMP Timestamp is in the future");
      }
      // Arrival times are whole microseconds: round the timestamp up, so that a record that
      // arrived before it (even by a nanosecond) is not returned.
      int64_t at_us = ToMicros(*position.timestamp);
      if (absl::FromUnixMicros(at_us) < *position.timestamp) ++at_us;
      ordinal = log.LowerBoundTime(at_us, end);
      if (ordinal <= std::max(trim, memory_start) && trim < memory_start) {
        absl::StatusOr<uint64_t> cold = shard->store->LowerBoundTime(at_us, memory_start);
        if (!cold.ok()) return AsKinesisError(cold.status());
        ordinal = std::max(trim, *cold);
      }
      break;
  }
  return ShardIterator(instance_, shard_index, ordinal, now_us);
}

absl::StatusOr<GetRecordsResult> Stream::GetRecords(const ShardIterator& iterator,
                                                    int limit) const {
  if (iterator.stream_instance_ != instance_) {
    return InvalidArgumentError(
        absl::StrFormat("shard iterator does not belong to stream %s", options_.name));
  }
  if (limit < 1 || limit > kMaxGetRecordsLimit) {
    return InvalidArgumentError(
        absl::StrFormat("limit must be within [1, %d], not %d", kMaxGetRecordsLimit, limit));
  }
  const absl::Time now = options_.clock->Now();
  const int64_t now_us = ToMicros(now);
  if (now_us - iterator.issued_at_us_ > absl::ToInt64Microseconds(kShardIteratorLifetime)) {
    return ExpiredIteratorError(absl::StrFormat(
        "iterator issued at %s expired at %s", absl::FormatTime(iterator.issued_at()),
        absl::FormatTime(iterator.issued_at() + kShardIteratorLifetime)));
  }
  absl::StatusOr<StreamShard*> found = FindLiveShard(iterator.shard_index_, now_us);
  if (!found.ok()) return found.status();
  StreamShard* shard = *found;
  if (!shard->read_bytes.Allowed(now_us) || !shard->read_calls.TryTake(1, now_us)) {
    Add(shard->read_throttled, 1);
    return ProvisionedThroughputExceededError(absl::StrFormat(
        "Rate exceeded for GetRecords on shard %s in stream %s (%d calls/s, %d bytes/s)",
        shard->id.ToString(), options_.name, options_.shard_limits.read_calls_per_second,
        options_.shard_limits.read_bytes_per_second));
  }

  internal::ShardLog& log = shard->log;
  // Closedness first: if it is closed, the end read next is final.
  const bool closed = log.closed();
  const uint64_t end = log.end_ordinal();
  const uint64_t trim =
      internal::TrimShard(*shard, now_us - retention_us_.load(std::memory_order_relaxed));

  GetRecordsResult result;
  const internal::ShardRead read = internal::ReadShard(
      *shard, stream_tag_, std::max(iterator.ordinal_, trim), end, static_cast<size_t>(limit),
      kMaxGetRecordsBytes, now_us, &result.records, &result.storage);
  if (!read.status.ok()) return AsKinesisError(read.status);
  const uint64_t next = std::max(read.next, std::max(iterator.ordinal_, trim));
  result.millis_behind_latest = read.millis_behind;
  if (closed && next >= end) {
    result.child_shards = shard->children;
  } else {
    result.next_shard_iterator = ShardIterator(instance_, iterator.shard_index_, next, now_us);
  }

  shard->read_bytes.Charge(read.bytes_with_keys, now_us);
  shard->iterator_age_ms.store(
      result.records.empty()
          ? 0
          : std::max<int64_t>(
                0, (now_us - ToMicros(result.records.back().approximate_arrival_timestamp)) / 1000),
      std::memory_order_relaxed);
  Add(counters_->get_records_success, 1);
  counters_->get_records_latency.Record(absl::ToInt64Microseconds(options_.clock->Now() - now));
  return result;
}

void Stream::TrimAll() const {
  const int64_t now_us = ToMicros(options_.clock->Now());
  const int64_t cutoff = std::max(now_us - retention_us_.load(), trim_floor_us_.load());
  for (StreamShard* shard : shard_map_.load(std::memory_order_acquire)->all) {
    internal::TrimShard(*shard, cutoff);
    if (shard->store != nullptr) {
      // Retention on disk deletes whole segments; an expired closed shard goes entirely.
      if (Expired(*shard, now_us)) {
        shard->store->DropAll().IgnoreError();
      } else {
        shard->store->DropBefore(cutoff).IgnoreError();
      }
    }
  }
}

absl::Status Stream::IncreaseStreamRetentionPeriod(absl::Duration retention) {
  if (absl::Status s = ValidateRetention(retention, options_.allow_short_retention); !s.ok()) {
    return s;
  }
  internal::MutexLock lock(&shards_mu_);
  if (retention < this->retention()) {
    return InvalidArgumentError(
        absl::StrFormat("IncreaseStreamRetentionPeriod: %s is below the current retention %s",
                        absl::FormatDuration(retention), absl::FormatDuration(this->retention())));
  }
  TrimAll();  // What is past the old period stays gone.
  const int64_t cutoff = ToMicros(options_.clock->Now()) - retention_us_.load();
  if (cutoff > trim_floor_us_.load()) trim_floor_us_.store(cutoff);
  retention_us_.store(absl::ToInt64Microseconds(retention));
  return PersistMetaLocked();
}

absl::Status Stream::DecreaseStreamRetentionPeriod(absl::Duration retention) {
  if (absl::Status s = ValidateRetention(retention, options_.allow_short_retention); !s.ok()) {
    return s;
  }
  internal::MutexLock lock(&shards_mu_);
  if (retention > this->retention()) {
    return InvalidArgumentError(
        absl::StrFormat("DecreaseStreamRetentionPeriod: %s is above the current retention %s",
                        absl::FormatDuration(retention), absl::FormatDuration(this->retention())));
  }
  retention_us_.store(absl::ToInt64Microseconds(retention));
  TrimAll();
  return PersistMetaLocked();
}

size_t Stream::MemoryBytes() const {
  size_t bytes = 0;
  for (const StreamShard* shard : shard_map_.load(std::memory_order_acquire)->all) {
    bytes += shard->log.MemoryBytes();
  }
  return bytes;
}

// --- Resharding -------------------------------------------------------------------------------

int Stream::OpenShardCount() const {
  return static_cast<int>(shard_map_.load(std::memory_order_acquire)->open.size());
}

absl::Status Stream::CheckCanReshard(int64_t now_us) const {
  if (capacity_mode_.load(std::memory_order_acquire) == CapacityMode::kOnDemand) {
    return ValidationError(absl::StrFormat(
        "stream %s is in ON_DEMAND mode: resharding is for PROVISIONED streams", options_.name));
  }
  if (now_us < updating_until_us_.load(std::memory_order_acquire)) {
    return ResourceInUseError(
        absl::StrFormat("stream %s is not ACTIVE: it is UPDATING", options_.name));
  }
  return absl::OkStatus();
}

void Stream::MarkUpdated(int64_t now_us) {
  updating_until_us_.store(now_us + absl::ToInt64Microseconds(options_.update_duration),
                           std::memory_order_release);
}

// A resharding in progress: the open shards as they will be once it is published. Steps close
// parents and open children in memory only; CommitReshard makes them durable and visible at once.
struct Stream::ReshardPlan {
  std::vector<StreamShard*> open;    // sorted by starting hash key
  std::vector<StreamShard*> closed;  // parents closed by the plan's steps
  std::vector<StreamShard*> opened;  // children opened by the plan's steps

  explicit ReshardPlan(const ShardMap* map) : open(map->open) {}
  StreamShard* Route(HashKey key) const {
    const auto it = std::upper_bound(
        open.begin(), open.end(), key,
        [](HashKey k, const StreamShard* s) { return k < s->range.starting_hash_key; });
    return *(it - 1);
  }
};

absl::Status Stream::Reshard(const std::vector<StreamShard*>& parents,
                             const std::vector<HashKeyRange>& child_ranges, int64_t now_us) {
  ReshardPlan plan(shard_map_.load(std::memory_order_acquire));
  ReshardStep(plan, parents, child_ranges, now_us);
  return CommitReshard(plan, now_us);
}

void Stream::ReshardStep(ReshardPlan& plan, const std::vector<StreamShard*>& parents,
                         const std::vector<HashKeyRange>& child_ranges, int64_t now_us) {
  auto next_index = static_cast<uint32_t>(shards_.size());
  std::vector<ShardId> parent_ids;
  for (const StreamShard* p : parents) parent_ids.push_back(p->id);
  std::vector<ChildShard> children;
  for (const HashKeyRange& range : child_ranges) {
    children.push_back(ChildShard{ShardId(next_index++), parent_ids, range});
  }

  // Close the parents. From here until the new map is published, a put routed to a parent
  // waits for the map (see PutOne), so no record can land in a parent after a child.
  uint64_t ending = 0;
  for (StreamShard* p : parents) {
    p->children = children;
    p->log.Close();
    // Expiry is judged from the close time, which must not precede any record's arrival (a
    // clock set back leaves arrivals ahead of it).
    p->closed_us.store(std::max(now_us, p->log.last_arrival_at_close_us()),
                       std::memory_order_release);
    ending = std::max(ending, p->log.ending_counter());
    plan.closed.push_back(p);
  }

  // Children number above every parent record.
  for (const ChildShard& c : children) {
    auto shard = std::make_unique<StreamShard>(c.shard_id, c.hash_key_range, ending + 1, now_us,
                                               options_.shard_limits);
    shard->parent = parent_ids[0];
    if (parent_ids.size() > 1) shard->adjacent_parent = parent_ids[1];
    plan.opened.push_back(shard.get());
    plan.open.push_back(shard.get());
    shards_.push_back(std::move(shard));
  }
  std::erase_if(plan.open, [&](const StreamShard* s) {
    return std::find(parents.begin(), parents.end(), s) != parents.end();
  });
  std::sort(plan.open.begin(), plan.open.end(), [](const StreamShard* a, const StreamShard* b) {
    return a->range.starting_hash_key < b->range.starting_hash_key;
  });
}

absl::Status Stream::CommitReshard(ReshardPlan& plan, int64_t /*now_us*/) {
  // Durable mode: the disk learns of the children (and of the parents' ends) before any record
  // can reach a child, in one metadata write: after a crash the whole resharding (every step of
  // an UpdateShardCount) has happened or none of it has.
  absl::Status stored;
  if (store_ != nullptr) {
    std::vector<std::pair<uint32_t, uint64_t>> ceilings;
    for (StreamShard* c : plan.opened) {
      internal::ShardRecovery none;
      absl::StatusOr<std::unique_ptr<internal::ShardStore>> child_store =
          internal::ShardStore::Open(
              store_->ShardDirectory(c->id.index()), store_->options(),
              [](const internal::StoredRecord&) {}, &none);
      if (child_store.ok()) {
        c->store = std::move(*child_store);
      } else if (stored.ok()) {
        stored = AsKinesisError(child_store.status());
      }
      c->counter_ceiling = c->log.next_counter() + kCounterLease;
      ceilings.emplace_back(c->id.index(), c->counter_ceiling);
    }
    // Parents' records to their segments (a parent opened by an earlier step of this plan is
    // empty and has its store only now).
    for (StreamShard* p : plan.closed) {
      if (stored.ok() && p->store != nullptr) stored = CommitShard(p, true);
    }
    if (stored.ok()) stored = AsKinesisError(store_->RaiseCeilings(ceilings));
    if (stored.ok()) stored = PersistMetaLocked();
  }

  auto map = std::make_unique<ShardMap>();
  map->open = plan.open;
  for (StreamShard* s : map->open) map->starts.push_back(s->range.starting_hash_key);
  for (const auto& s : shards_) map->all.push_back(s.get());
  shard_map_.store(map.get(), std::memory_order_release);
  shard_map_.notify_all();
  // Old maps stay alive: a put may still be routing through one.
  shard_maps_.push_back(std::move(map));
  return stored;
}

absl::Status Stream::SplitLocked(StreamShard* shard, HashKey key, int64_t now_us) {
  if (shard->log.closed()) {
    return InvalidArgumentError(absl::StrFormat(
        "Shard %s in stream %s has already been merged or split, and thus is not eligible for "
        "merging or splitting",
        shard->id.ToString(), options_.name));
  }
  const absl::uint128 start = shard->range.starting_hash_key.value();
  const absl::uint128 end = shard->range.ending_hash_key.value();
  // Kinesis: start + 1 < new_starting_hash_key < end (computed without overflow).
  if (key.value() <= start || key.value() - start <= 1 || key.value() >= end) {
    return InvalidArgumentError(absl::StrFormat(
        "NewStartingHashKey %s used in SplitShard on shard %s in stream %s is not both greater "
        "than one plus the shard's StartingHashKey %s and less than its EndingHashKey %s",
        key.ToString(), shard->id.ToString(), options_.name,
        shard->range.starting_hash_key.ToString(), shard->range.ending_hash_key.ToString()));
  }
  if (OpenShardCount() + 1 > options_.max_shards) {
    return LimitExceededError(absl::StrFormat(
        "SplitShard would exceed the shard limit of %d open shards", options_.max_shards));
  }
  return Reshard({shard},
                 {HashKeyRange{shard->range.starting_hash_key, HashKey(key.value() - 1)},
                  HashKeyRange{key, shard->range.ending_hash_key}},
                 now_us);
}

absl::Status Stream::MergeLocked(StreamShard* shard, StreamShard* adjacent, int64_t now_us) {
  for (const StreamShard* s : {shard, adjacent}) {
    if (s->log.closed()) {
      return InvalidArgumentError(absl::StrFormat(
          "Shard %s in stream %s has already been merged or split, and thus is not eligible "
          "for merging or splitting",
          s->id.ToString(), options_.name));
    }
  }
  const StreamShard* low =
      shard->range.starting_hash_key < adjacent->range.starting_hash_key ? shard : adjacent;
  const StreamShard* high = low == shard ? adjacent : shard;
  if (shard == adjacent ||
      low->range.ending_hash_key.value() + 1 != high->range.starting_hash_key.value()) {
    return InvalidArgumentError(absl::StrFormat(
        "Shards %s and %s in stream %s are not an adjacent pair of shards eligible for merging",
        shard->id.ToString(), adjacent->id.ToString(), options_.name));
  }
  return Reshard({shard, adjacent},
                 {HashKeyRange{low->range.starting_hash_key, high->range.ending_hash_key}}, now_us);
}

absl::Status Stream::SplitShard(ShardId shard_id, HashKey new_starting_hash_key) {
  const int64_t now_us = ToMicros(options_.clock->Now());
  internal::MutexLock lock(&shards_mu_);
  absl::StatusOr<StreamShard*> shard = FindLiveShard(shard_id.index(), now_us);
  if (!shard.ok()) return shard.status();
  if (absl::Status s = CheckCanReshard(now_us); !s.ok()) return s;
  if (absl::Status s = SplitLocked(*shard, new_starting_hash_key, now_us); !s.ok()) return s;
  MarkUpdated(now_us);
  return absl::OkStatus();
}

absl::Status Stream::SplitShard(std::string_view shard_id, HashKey new_starting_hash_key) {
  absl::StatusOr<ShardId> id = ShardId::Parse(shard_id);
  if (!id.ok()) return id.status();
  return SplitShard(*id, new_starting_hash_key);
}

absl::Status Stream::MergeShards(ShardId shard_id, ShardId adjacent_shard_id) {
  const int64_t now_us = ToMicros(options_.clock->Now());
  internal::MutexLock lock(&shards_mu_);
  absl::StatusOr<StreamShard*> shard = FindLiveShard(shard_id.index(), now_us);
  if (!shard.ok()) return shard.status();
  absl::StatusOr<StreamShard*> adjacent = FindLiveShard(adjacent_shard_id.index(), now_us);
  if (!adjacent.ok()) return adjacent.status();
  if (absl::Status s = CheckCanReshard(now_us); !s.ok()) return s;
  if (absl::Status s = MergeLocked(*shard, *adjacent, now_us); !s.ok()) return s;
  MarkUpdated(now_us);
  return absl::OkStatus();
}

absl::Status Stream::MergeShards(std::string_view shard_id, std::string_view adjacent_shard_id) {
  absl::StatusOr<ShardId> a = ShardId::Parse(shard_id);
  if (!a.ok()) return a.status();
  absl::StatusOr<ShardId> b = ShardId::Parse(adjacent_shard_id);
  if (!b.ok()) return b.status();
  return MergeShards(*a, *b);
}

absl::Status Stream::UpdateShardCount(int target_shard_count) {
  const int64_t now_us = ToMicros(options_.clock->Now());
  internal::MutexLock lock(&shards_mu_);
  if (absl::Status s = CheckCanReshard(now_us); !s.ok()) return s;
  const int open = OpenShardCount();
  if (target_shard_count < 1 || target_shard_count > 2 * open ||
      2 * int64_t{target_shard_count} < open) {
    return InvalidArgumentError(absl::StrFormat(
        "UpdateShardCount: target %d must be within [half, twice] the %d open shards",
        target_shard_count, open));
  }
  if (target_shard_count > options_.max_shards) {
    return LimitExceededError(
        absl::StrFormat("UpdateShardCount: target %d exceeds the shard limit %d",
                        target_shard_count, options_.max_shards));
  }
  if (!WithinDailyQuota(shard_count_updates_us_, options_.max_shard_count_updates_per_day,
                        now_us)) {
    return LimitExceededError(
        absl::StrFormat("UpdateShardCount may run at most %d times per rolling 24 hours",
                        options_.max_shard_count_updates_per_day));
  }
  shard_count_updates_us_.push_back(now_us);

  // Uniform scaling: end with exactly the ranges CreateStream gives the target count. First split
  // every open shard that a target boundary cuts, then merge each target range's pieces. The
  // steps are planned in memory and published (and written to disk) as one.
  const std::vector<HashKeyRange> target = SplitHashKeySpace(target_shard_count);
  ReshardPlan plan(shard_map_.load(std::memory_order_acquire));
  for (size_t i = 1; i < target.size(); ++i) {
    const HashKey boundary = target[i].starting_hash_key;
    StreamShard* shard = plan.Route(boundary);
    if (shard->range.starting_hash_key == boundary) continue;
    // Target boundaries are at least floor(2^128 / 20,000) apart, so the Kinesis rule
    // (start + 1 < key < end) only fails for shards already cut near a boundary by hand;
    // a step itself needs only start < key <= end.
    ReshardStep(plan, {shard},
                {HashKeyRange{shard->range.starting_hash_key, HashKey(boundary.value() - 1)},
                 HashKeyRange{boundary, shard->range.ending_hash_key}},
                now_us);
  }
  for (const HashKeyRange& range : target) {
    for (;;) {
      StreamShard* first = plan.Route(range.starting_hash_key);
      if (first->range.ending_hash_key == range.ending_hash_key) break;
      StreamShard* second = plan.Route(HashKey(first->range.ending_hash_key.value() + 1));
      ReshardStep(plan, {first, second},
                  {HashKeyRange{first->range.starting_hash_key, second->range.ending_hash_key}},
                  now_us);
    }
  }
  if (absl::Status s = CommitReshard(plan, now_us); !s.ok()) return s;
  MarkUpdated(now_us);
  return absl::OkStatus();
}

absl::Status Stream::UpdateStreamMode(CapacityMode mode) {
  const int64_t now_us = ToMicros(options_.clock->Now());
  internal::MutexLock lock(&shards_mu_);
  if (now_us < updating_until_us_.load(std::memory_order_acquire)) {
    return ResourceInUseError(
        absl::StrFormat("stream %s is not ACTIVE: it is UPDATING", options_.name));
  }
  if (capacity_mode_.load(std::memory_order_acquire) == mode) return absl::OkStatus();
  if (!WithinDailyQuota(mode_updates_us_, options_.max_mode_updates_per_day, now_us)) {
    return LimitExceededError(
        absl::StrFormat("UpdateStreamMode may run at most %d times per rolling 24 hours",
                        options_.max_mode_updates_per_day));
  }
  mode_updates_us_.push_back(now_us);
  capacity_mode_.store(mode, std::memory_order_release);
  // Start the on-demand measurements afresh from now.
  for (StreamShard* s : shard_map_.load(std::memory_order_acquire)->open) {
    s->tick_records = s->log.end_ordinal();
    s->tick_bytes = s->log.appended_bytes();
    s->hot_since_us = s->cold_since_us = -1;
  }
  last_tick_us_ = now_us;
  MarkUpdated(now_us);
  return PersistMetaLocked();
}

// --- Tick and on-demand scaling ---------------------------------------------------------------

void Stream::Tick() {
  const int64_t now_us = ToMicros(options_.clock->Now());
  TrimAll();
  internal::MutexLock lock(&shards_mu_);
  for (StreamShard* s : shard_map_.load(std::memory_order_acquire)->all) {
    Expired(*s, now_us);
    // Durable mode: a group commit that is due although no put came to trigger it.
    if (s->store != nullptr && !s->expired.load(std::memory_order_relaxed)) {
      CommitShard(s).IgnoreError();  // a failed store fails the next put, which reports it
    }
  }
  if (capacity_mode_.load(std::memory_order_acquire) == CapacityMode::kOnDemand) {
    AutoScaleLocked(now_us);
  }
  last_tick_us_ = std::max(last_tick_us_, now_us);
}

void Stream::AutoScaleLocked(int64_t now_us) {
  const int64_t elapsed_us = now_us - last_tick_us_;
  if (elapsed_us <= 0) return;
  const OnDemandPolicy& policy = options_.on_demand;
  const std::vector<StreamShard*> open = shard_map_.load(std::memory_order_acquire)->open;
  // Classify every open shard by its ingress over [last tick, now].
  std::vector<bool> hot(open.size()), cold(open.size());
  for (size_t i = 0; i < open.size(); ++i) {
    StreamShard* s = open[i];
    const uint64_t records = s->log.end_ordinal();
    const uint64_t bytes = s->log.appended_bytes();
    // Rates in units per second, exactly: delta * 10^6 / elapsed microseconds.
    const auto rate = [&](uint64_t delta) {
      return static_cast<int64_t>(absl::uint128(delta) * 1000000 /
                                  static_cast<uint64_t>(elapsed_us));
    };
    const int64_t record_rate = rate(records - s->tick_records);
    const int64_t byte_rate = rate(bytes - s->tick_bytes);
    s->tick_records = records;
    s->tick_bytes = bytes;
    const bool is_hot = byte_rate >= policy.split_bytes_per_second ||
                        record_rate >= policy.split_records_per_second;
    const bool is_cold =
        byte_rate < policy.merge_bytes_per_second && record_rate < policy.merge_records_per_second;
    // The interval just measured counts: a shard hot since the last tick has been hot since then.
    if (!is_hot) s->hot_since_us = -1;
    if (is_hot && s->hot_since_us < 0) s->hot_since_us = last_tick_us_;
    if (!is_cold) s->cold_since_us = -1;
    if (is_cold && s->cold_since_us < 0) s->cold_since_us = std::max(last_tick_us_, s->created_us);
    hot[i] = is_hot && now_us - s->hot_since_us >= absl::ToInt64Microseconds(policy.hot_for);
    cold[i] = is_cold && now_us - s->cold_since_us >= absl::ToInt64Microseconds(policy.cold_for);
  }
  bool changed = false;
  int open_count = static_cast<int>(open.size());
  for (size_t i = 0; i < open.size(); ++i) {
    if (!hot[i] || open_count >= policy.max_shards || open_count >= options_.max_shards) continue;
    StreamShard* s = open[i];
    const absl::uint128 start = s->range.starting_hash_key.value();
    const absl::uint128 end = s->range.ending_hash_key.value();
    if (end - start < 3) continue;  // too narrow to split by Kinesis' rule
    const HashKey middle(start + (end - start) / 2 + 1);
    if (SplitLocked(s, middle, now_us).ok()) {
      ++open_count;
      changed = true;
    }
  }
  for (size_t i = 0; i + 1 < open.size(); ++i) {
    if (!cold[i] || !cold[i + 1] || open_count <= policy.min_shards) continue;
    if (open[i]->log.closed() || open[i + 1]->log.closed()) continue;
    if (MergeLocked(open[i], open[i + 1], now_us).ok()) {
      --open_count;
      changed = true;
      ++i;  // each shard takes part in one resharding per tick
    }
  }
  if (changed) MarkUpdated(now_us);
}

absl::Status Stream::StartAutoScaling(absl::Duration interval) {
  if (interval <= absl::ZeroDuration()) {
    return InvalidArgumentError("StartAutoScaling needs a positive interval");
  }
  std::lock_guard<std::mutex> lock(auto_scaling_mu_);
  if (auto_scaling_thread_.joinable()) {
    return ResourceInUseError("the auto-scaling thread is already running");
  }
  auto_scaling_stop_ = false;
  const auto period = absl::ToChronoNanoseconds(interval);
  auto_scaling_thread_ = std::thread([this, period] {
    std::unique_lock<std::mutex> lock(auto_scaling_mu_);
    while (!auto_scaling_cv_.wait_for(lock, period, [this] { return auto_scaling_stop_; })) {
      lock.unlock();
      Tick();
      lock.lock();
    }
  });
  return absl::OkStatus();
}

void Stream::StopAutoScaling() {
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(auto_scaling_mu_);
    auto_scaling_stop_ = true;
    thread = std::move(auto_scaling_thread_);
  }
  auto_scaling_cv_.notify_all();
  if (thread.joinable()) thread.join();
}

// --- Metrics ----------------------------------------------------------------------------------

MetricsSnapshot Stream::metrics() const {
  const absl::Time now = options_.clock->Now();
  const int64_t now_us = ToMicros(now);
  MetricsSnapshot m;
  m.stream_name = options_.name;
  m.taken_at = now;
  for (const StreamShard* s : shard_map_.load(std::memory_order_acquire)->all) {
    ShardMetrics sm;
    sm.shard_id = s->id;
    sm.incoming_records = static_cast<int64_t>(s->log.end_ordinal());
    sm.incoming_bytes = static_cast<int64_t>(s->log.appended_bytes());
    sm.outgoing_records = s->outgoing_records.load(std::memory_order_relaxed);
    sm.outgoing_bytes = s->outgoing_bytes.load(std::memory_order_relaxed);
    sm.write_provisioned_throughput_exceeded = s->write_throttled.load(std::memory_order_relaxed);
    sm.read_provisioned_throughput_exceeded = s->read_throttled.load(std::memory_order_relaxed);
    sm.iterator_age_milliseconds = s->iterator_age_ms.load(std::memory_order_relaxed);
    m.incoming_records += sm.incoming_records;
    m.incoming_bytes += sm.incoming_bytes;
    m.outgoing_records += sm.outgoing_records;
    m.outgoing_bytes += sm.outgoing_bytes;
    m.write_provisioned_throughput_exceeded += sm.write_provisioned_throughput_exceeded;
    m.read_provisioned_throughput_exceeded += sm.read_provisioned_throughput_exceeded;
    if (!Expired(*s, now_us)) {
      m.iterator_age_milliseconds =
          std::max(m.iterator_age_milliseconds, sm.iterator_age_milliseconds);
      m.shards.push_back(sm);
    }
  }
  const Counters& c = *counters_;
  m.put_records_total_records = c.put_records_total.load(std::memory_order_relaxed);
  m.put_records_successful_records = c.put_records_successful.load(std::memory_order_relaxed);
  m.put_records_failed_records = c.put_records_failed.load(std::memory_order_relaxed);
  m.put_records_throttled_records = c.put_records_throttled.load(std::memory_order_relaxed);
  m.put_records_success = c.put_records_success.load(std::memory_order_relaxed);
  // Every record in a shard came from a PutRecord or a PutRecords entry.
  // (Read a moment apart from the PutRecords counter, so clamped.)
  m.put_record_success =
      std::max<int64_t>(0, m.incoming_records - m.put_records_successful_records);
  m.put_record_failure = c.put_record_failure.load(std::memory_order_relaxed);
  m.get_records_success = c.get_records_success.load(std::memory_order_relaxed);
  m.get_records_records = m.outgoing_records;
  m.get_records_bytes = m.outgoing_bytes;
  m.put_record_latency = c.put_record_latency.Get();
  m.put_records_latency = c.put_records_latency.Get();
  m.get_records_latency = c.get_records_latency.Get();
  return m;
}

}  // namespace rill
