// Stream: creation and durable open, the shard table, and the public facade that forwards to
// StreamImpl (see stream/stream_impl.h for where each concern lives).
#include "rill/stream/stream.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "rill/base/md5.h"
#include "storage/stream_store.h"
#include "stream/stream_impl.h"
#include "stream/stream_shard.h"

namespace rill {

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

namespace internal {

absl::Status ValidateRetention(absl::Duration retention, bool allow_short) {
  const absl::Duration min = allow_short ? absl::Milliseconds(1) : kMinRetention;
  if (retention < min || retention > kMaxRetention) {
    return InvalidArgumentError(absl::StrFormat("retention %s is outside [%s, 8760h]",
                                                absl::FormatDuration(retention),
                                                absl::FormatDuration(min)));
  }
  return absl::OkStatus();
}

namespace {

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
  if (options.memory_limit.budget_bytes != 0 && options.storage) {
    return InvalidArgumentError(
        "memory_limit is for in-memory streams: a durable stream's memory is bounded by "
        "storage->memory_budget_bytes, which evicts to disk and loses nothing");
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

absl::StatusOr<std::unique_ptr<StreamImpl>> StreamImpl::OpenDurable(StreamOptions options,
                                                                    bool create_only,
                                                                    bool any_name) {
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
  if (!*meta && (options.storage->read_only || any_name)) {
    return ResourceNotFoundError(absl::StrFormat("directory %s holds no stream (no METADATA file)",
                                                 options.storage->directory));
  }
  if (any_name) options.name = (*meta)->name;
  if (*meta && (*meta)->name != options.name) {
    return InvalidArgumentError(absl::StrFormat("directory %s holds stream %s, not %s",
                                                options.storage->directory, (*meta)->name,
                                                options.name));
  }
  const internal::StreamMeta* recovered = *meta ? &**meta : nullptr;
  if (recovered != nullptr) {
    // options() shows the stream as it is stored, not what this caller asked for.
    options.retention = absl::Microseconds(recovered->retention_us);
    options.capacity_mode = static_cast<CapacityMode>(recovered->capacity_mode);
  }
  std::unique_ptr<StreamImpl> stream = std::make_unique<StreamImpl>(std::move(options), recovered);
  if (absl::Status s = stream->AttachStorage(std::move(*store), recovered); !s.ok()) {
    return AsKinesisError(s);
  }
  return stream;
}

absl::StatusOr<std::unique_ptr<StreamImpl>> StreamImpl::Create(StreamOptions options) {
  if (absl::Status s = ValidateStreamOptions(options); !s.ok()) return s;
  if (!options.storage) return std::make_unique<StreamImpl>(std::move(options), nullptr);
  if (options.storage->read_only) {
    return InvalidArgumentError(
        "storage.read_only opens an existing stream: use Stream::Open, not Stream::Create");
  }
  return OpenDurable(std::move(options), /*create_only=*/true, /*any_name=*/false);
}

absl::StatusOr<std::unique_ptr<StreamImpl>> StreamImpl::Open(StreamOptions options) {
  if (!options.storage) {
    return InvalidArgumentError("Stream::Open needs options.storage (a durable stream)");
  }
  // An empty name opens whatever stream the directory holds (tools that only know the path).
  const bool any_name = options.name.empty();
  if (any_name) options.name = "any";  // a valid placeholder; replaced by the stored name
  if (absl::Status s = ValidateStreamOptions(options); !s.ok()) return s;
  return OpenDurable(std::move(options), /*create_only=*/false, any_name);
}

absl::Duration StreamImpl::retention() const {
  return absl::Microseconds(retention_us_.load(std::memory_order_relaxed));
}

StreamShard* StreamImpl::FindShard(uint32_t index) const {
  const ShardMap* map = shard_map_.load(std::memory_order_acquire);
  return index < map->all.size() ? map->all[index] : nullptr;
}

bool StreamImpl::Expired(const StreamShard& shard, int64_t now_us) const {
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

absl::StatusOr<StreamShard*> StreamImpl::FindLiveShard(uint32_t index, int64_t now_us) const {
  StreamShard* shard = FindShard(index);
  if (shard == nullptr || Expired(*shard, now_us)) {
    return ResourceNotFoundError(absl::StrFormat("shard %s does not exist in stream %s",
                                                 ShardId(index).ToString(), options_.name));
  }
  return shard;
}

size_t StreamImpl::MemoryBytes() const { return chunk_account_.bytes(); }

StreamImpl::StreamImpl(StreamOptions options, const internal::StreamMeta* recovered)
    : options_(std::move(options)),
      creation_time_(recovered != nullptr ? absl::FromUnixNanos(recovered->creation_ns)
                                          : options_.clock->Now()),
      seed_(recovered != nullptr ? recovered->seed : StreamSeed(options_.name, creation_time_)),
      instance_(Mix64(seed_, 0) | 1),  // never 0, which marks "no stream"
      stream_tag_(static_cast<uint32_t>(Mix64(seed_, 8)) & internal::kStreamTagMask),
      retention_us_(recovered != nullptr ? recovered->retention_us
                                         : absl::ToInt64Microseconds(options_.retention)),
      reject_puts_(options_.memory_limit.budget_bytes != 0 &&
                   options_.memory_limit.policy == MemoryLimitPolicy::kRejectPuts),
      retire_oldest_(options_.memory_limit.budget_bytes != 0 &&
                     options_.memory_limit.policy == MemoryLimitPolicy::kRetireOldest),
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
                                                      1, now_us, options_.shard_limits,
                                                      &chunk_account_));
    }
  } else {
    // The shards as they were; their records are replayed by AttachStorage.
    last_tick_us_ = ToMicros(options_.clock->Now());
    trim_floor_us_.store(recovered->trim_floor_us);
    for (const internal::ShardMeta& m : recovered->shards) {
      auto shard =
          std::make_unique<StreamShard>(ShardId(m.index), m.range, m.first_counter, m.created_us,
                                        options_.shard_limits, &chunk_account_);
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
  map->Index();
  UpdateChunkCap(map->open.size());
  if (reject_puts_) {
    memory_refusal_ = ProvisionedThroughputExceededError(absl::StrFormat(
        "Rate exceeded for stream %s: its memory budget of %d bytes (StreamOptions::memory_limit) "
        "is used up; retry once retention frees memory",
        options_.name, options_.memory_limit.budget_bytes));
  }
  shard_map_.store(map.get(), std::memory_order_release);
  shard_maps_.push_back(std::move(map));
}

StreamImpl::~StreamImpl() {
  StopHousekeeping();
  StopFlusher();
  // What a clean shutdown owes the disk.
  // (Not after a failed open, which never attached its journal: nothing was put.)
  if (store_ != nullptr && !read_only_ && store_->journal() != nullptr) Flush().IgnoreError();
}

}  // namespace internal

// --- Stream: the public face ------------------------------------------------------------------

Stream::Stream(std::unique_ptr<internal::StreamImpl> impl) : impl_(std::move(impl)) {}
Stream::~Stream() = default;

absl::StatusOr<std::unique_ptr<Stream>> Stream::Create(StreamOptions options) {
  absl::StatusOr<std::unique_ptr<internal::StreamImpl>> impl =
      internal::StreamImpl::Create(std::move(options));
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<Stream>(new Stream(*std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Stream>> Stream::Open(StreamOptions options) {
  absl::StatusOr<std::unique_ptr<internal::StreamImpl>> impl =
      internal::StreamImpl::Open(std::move(options));
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<Stream>(new Stream(*std::move(impl)));
}

const std::string& Stream::name() const { return impl_->options().name; }
const StreamOptions& Stream::options() const { return impl_->options(); }
const std::shared_ptr<Clock>& Stream::clock() const { return impl_->options().clock; }
PutLimits Stream::put_limits() const {
  return PutLimits{.max_record_bytes = impl_->options().max_record_bytes,
                   .max_put_records_bytes = impl_->options().max_put_records_bytes};
}
absl::Duration Stream::retention() const { return impl_->retention(); }
absl::Time Stream::creation_time() const { return impl_->creation_time(); }

absl::StatusOr<PutRecordResult> Stream::PutRecord(std::string_view partition_key,
                                                  std::string_view data,
                                                  const PutOptions& options) {
  if (absl::Status s = impl_->CheckWritable("PutRecord"); !s.ok()) return s;
  return impl_->PutRecord(partition_key, data, options);
}

absl::StatusOr<PutRecordsResult> Stream::PutRecords(absl::Span<const PutRecordsEntry> entries) {
  if (absl::Status s = impl_->CheckWritable("PutRecords"); !s.ok()) return s;
  return impl_->PutRecords(entries);
}

std::vector<ShardDescription> Stream::ListShards() const { return impl_->ListShards(); }

absl::StatusOr<ListShardsResult> Stream::ListShards(const ListShardsRequest& request) const {
  return impl_->ListShards(request);
}

StreamSummary Stream::DescribeStreamSummary() const { return impl_->DescribeStreamSummary(); }

absl::Status Stream::SplitShard(ShardId shard_id, HashKey new_starting_hash_key) {
  if (absl::Status s = impl_->CheckWritable("SplitShard"); !s.ok()) return s;
  return impl_->SplitShard(shard_id, new_starting_hash_key);
}

absl::Status Stream::SplitShard(std::string_view shard_id, HashKey new_starting_hash_key) {
  absl::StatusOr<ShardId> id = ShardId::Parse(shard_id);
  if (!id.ok()) return id.status();
  return impl_->SplitShard(*id, new_starting_hash_key);
}

absl::Status Stream::MergeShards(ShardId shard_id, ShardId adjacent_shard_id) {
  if (absl::Status s = impl_->CheckWritable("MergeShards"); !s.ok()) return s;
  return impl_->MergeShards(shard_id, adjacent_shard_id);
}

absl::Status Stream::MergeShards(std::string_view shard_id, std::string_view adjacent_shard_id) {
  absl::StatusOr<ShardId> a = ShardId::Parse(shard_id);
  if (!a.ok()) return a.status();
  absl::StatusOr<ShardId> b = ShardId::Parse(adjacent_shard_id);
  if (!b.ok()) return b.status();
  return impl_->MergeShards(*a, *b);
}

absl::Status Stream::UpdateShardCount(int target_shard_count) {
  if (absl::Status s = impl_->CheckWritable("UpdateShardCount"); !s.ok()) return s;
  return impl_->UpdateShardCount(target_shard_count);
}

absl::Status Stream::UpdateStreamMode(CapacityMode mode) {
  if (absl::Status s = impl_->CheckWritable("UpdateStreamMode"); !s.ok()) return s;
  return impl_->UpdateStreamMode(mode);
}

void Stream::Tick() { impl_->Tick(); }

absl::Status Stream::StartHousekeeping(absl::Duration interval) {
  return impl_->StartHousekeeping(interval);
}

void Stream::StopHousekeeping() { impl_->StopHousekeeping(); }

absl::Status Stream::StartAutoScaling(absl::Duration interval) {
  if (absl::Status s = impl_->CheckWritable("StartAutoScaling"); !s.ok()) return s;
  return impl_->StartHousekeeping(interval);
}

void Stream::StopAutoScaling() { impl_->StopHousekeeping(); }

absl::StatusOr<ConsumerDescription> Stream::RegisterStreamConsumer(std::string_view name) {
  if (absl::Status s = impl_->CheckWritable("RegisterStreamConsumer"); !s.ok()) return s;
  return impl_->RegisterStreamConsumer(name);
}

absl::Status Stream::DeregisterStreamConsumer(std::string_view name) {
  if (absl::Status s = impl_->CheckWritable("DeregisterStreamConsumer"); !s.ok()) return s;
  return impl_->DeregisterStreamConsumer(name);
}

absl::StatusOr<ConsumerDescription> Stream::DescribeStreamConsumer(std::string_view name) const {
  return impl_->DescribeStreamConsumer(name);
}

std::vector<ConsumerDescription> Stream::ListStreamConsumers() const {
  return impl_->ListStreamConsumers();
}

absl::StatusOr<std::unique_ptr<Subscription>> Stream::SubscribeToShard(
    std::string_view consumer_name, ShardId shard_id, const StartingPosition& position,
    const SubscribeOptions& options) {
  return impl_->SubscribeToShard(consumer_name, shard_id, position, options);
}

absl::StatusOr<std::unique_ptr<Subscription>> Stream::SubscribeToShard(
    std::string_view consumer_name, std::string_view shard_id, const StartingPosition& position,
    const SubscribeOptions& options) {
  absl::StatusOr<ShardId> id = ShardId::Parse(shard_id);
  if (!id.ok()) return id.status();
  return impl_->SubscribeToShard(consumer_name, *id, position, options);
}

MetricsSnapshot Stream::metrics() const { return impl_->metrics(); }

absl::StatusOr<ShardIterator> Stream::GetShardIterator(ShardId shard_id,
                                                       const StartingPosition& position) const {
  return impl_->GetShardIterator(shard_id, position);
}

absl::StatusOr<ShardIterator> Stream::GetShardIterator(std::string_view shard_id,
                                                       const StartingPosition& position) const {
  absl::StatusOr<ShardId> id = ShardId::Parse(shard_id);
  if (!id.ok()) return id.status();
  return impl_->GetShardIterator(*id, position);
}

absl::StatusOr<GetRecordsResult> Stream::GetRecords(const ShardIterator& iterator,
                                                    int limit) const {
  return impl_->GetRecords(iterator, limit);
}

absl::Status Stream::StartStreamEncryption(EncryptionType type, std::string_view key_id) {
  if (absl::Status s = impl_->CheckWritable("StartStreamEncryption"); !s.ok()) return s;
  return impl_->StartStreamEncryption(type, key_id);
}

absl::Status Stream::StopStreamEncryption(EncryptionType type, std::string_view key_id) {
  if (absl::Status s = impl_->CheckWritable("StopStreamEncryption"); !s.ok()) return s;
  return impl_->StopStreamEncryption(type, key_id);
}

absl::Status Stream::IncreaseStreamRetentionPeriod(absl::Duration retention) {
  if (absl::Status s = impl_->CheckWritable("IncreaseStreamRetentionPeriod"); !s.ok()) return s;
  return impl_->IncreaseStreamRetentionPeriod(retention);
}

absl::Status Stream::DecreaseStreamRetentionPeriod(absl::Duration retention) {
  if (absl::Status s = impl_->CheckWritable("DecreaseStreamRetentionPeriod"); !s.ok()) return s;
  return impl_->DecreaseStreamRetentionPeriod(retention);
}

size_t Stream::MemoryBytes() const { return impl_->MemoryBytes(); }
absl::Status Stream::Flush() { return impl_->Flush(); }
absl::Status Stream::recovery_status() const { return impl_->recovery_status(); }
uint64_t Stream::recovered_records() const { return impl_->recovered_records(); }
uint64_t Stream::DiskBytes() const { return impl_->DiskBytes(); }

}  // namespace rill
