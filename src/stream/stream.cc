#include "rill/stream/stream.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "base/partition_key_cache.h"
#include "log/shard_log.h"
#include "rill/base/internal/sequence_layout.h"
#include "rill/base/md5.h"

namespace rill {
namespace internal {

struct StreamShard {
  StreamShard(ShardId id, HashKeyRange range, uint64_t first_counter)
      : id(id), range(range), log(first_counter) {}

  const ShardId id;
  const HashKeyRange range;
  std::optional<ShardId> parent;
  std::optional<ShardId> adjacent_parent;
  std::vector<ChildShard> children;  // set when the shard closes
  ShardLog log;
};

// The routing table: open shards sorted by starting hash key, and every shard by index.
struct ShardMap {
  std::vector<HashKey> starts;
  std::vector<StreamShard*> open;
  std::vector<StreamShard*> all;

  StreamShard* Route(HashKey key) const {
    // The last open shard starting at or below the key; the open shards tile the key space.
    const auto it = std::upper_bound(starts.begin(), starts.end(), key);
    return open[static_cast<size_t>(it - starts.begin()) - 1];
  }
};

}  // namespace internal

namespace {

using internal::ShardMap;
using internal::StreamShard;

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
  });
}

// Counts the UTF-16 code units of valid UTF-8 `s` (Kinesis' measure of a partition key), or
// returns -1 if `s` is not valid UTF-8.
int Utf16Length(std::string_view s) {
  int units = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      ++units;
      continue;
    }
    int extra;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return -1;
    }
    if (end - p <= extra) return -1;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return -1;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
    static constexpr uint32_t kMinForLength[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    units += extra == 3 ? 2 : 1;
    p += extra + 1;
  }
  return units;
}

int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }

absl::Status ValidateRetention(absl::Duration retention, bool allow_short) {
  const absl::Duration min = allow_short ? absl::Milliseconds(1) : kMinRetention;
  if (retention < min || retention > kMaxRetention) {
    return InvalidArgumentError(absl::StrFormat(
        "retention %s is outside [%s, 8760h]", absl::FormatDuration(retention),
        absl::FormatDuration(min)));
  }
  return absl::OkStatus();
}

uint64_t Mix64(const Md5Digest& d, size_t offset) {
  uint64_t v;
  std::memcpy(&v, d.data() + offset, 8);
  return v;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Stream>> Stream::Create(StreamOptions options) {
  if (!IsValidName(options.name)) {
    return InvalidArgumentError("stream name must be 1 to 128 characters of [a-zA-Z0-9_.-]");
  }
  if (options.max_shards < 1) return InvalidArgumentError("max_shards must be at least 1");
  if (options.shard_count < 1) return InvalidArgumentError("shard_count must be at least 1");
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
  if (options.clock == nullptr) options.clock = SystemClock::Default();
  return std::unique_ptr<Stream>(new Stream(std::move(options)));
}

Stream::Stream(StreamOptions options)
    : options_(std::move(options)),
      creation_time_(options_.clock->Now()),
      instance_([this] {
        // Deterministic under a SimulatedClock: the name and the creation time.
        const std::string seed =
            absl::StrFormat("%s/%d", options_.name, absl::ToUnixNanos(creation_time_));
        return Mix64(Md5(seed), 0) | 1;  // never 0, which marks "no stream"
      }()),
      stream_tag_([this] {
        const std::string seed =
            absl::StrFormat("%s/%d", options_.name, absl::ToUnixNanos(creation_time_));
        return static_cast<uint32_t>(Mix64(Md5(seed), 8)) & internal::kStreamTagMask;
      }()),
      retention_us_(absl::ToInt64Microseconds(options_.retention)) {
  const std::vector<HashKeyRange> ranges = SplitHashKeySpace(options_.shard_count);
  auto map = std::make_unique<ShardMap>();
  internal::MutexLock lock(&shards_mu_);
  for (size_t i = 0; i < ranges.size(); ++i) {
    // Counters start at 1: counter 0 is below every record, for "from the start" positions.
    shards_.push_back(
        std::make_unique<StreamShard>(ShardId(static_cast<uint32_t>(i)), ranges[i], 1));
    map->starts.push_back(ranges[i].starting_hash_key);
    map->open.push_back(shards_.back().get());
    map->all.push_back(shards_.back().get());
  }
  shard_map_.store(map.get(), std::memory_order_release);
  shard_maps_.push_back(std::move(map));
}

Stream::~Stream() = default;

absl::Duration Stream::retention() const {
  return absl::Microseconds(retention_us_.load(std::memory_order_relaxed));
}

StreamShard* Stream::FindShard(uint32_t index) const {
  const ShardMap* map = shard_map_.load(std::memory_order_acquire);
  return index < map->all.size() ? map->all[index] : nullptr;
}

absl::Status Stream::ValidateRecord(std::string_view partition_key, std::string_view data) const {
  // Up to 256 bytes the key has at most 256 UTF-16 units; only longer keys need counting.
  int units = 0;
  if (partition_key.empty() ||
      (units = Utf16Length(partition_key)) < 1 || units > kMaxPartitionKeyChars) {
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
  const StreamShard* shard = parts.version == internal::kSequenceVersion &&
                                     parts.stream_tag == stream_tag_
                                 ? FindShard(parts.shard_index)
                                 : nullptr;
  if (shard == nullptr || parts.counter >= shard->log.next_counter()) {
    return InvalidArgumentError(absl::StrFormat(
        "ExclusiveMinimumSequenceNumber %s is invalid: it was not issued by stream %s",
        s.ToString(), options_.name));
  }
  return parts.counter;
}

ErrorCode Stream::PutOne(std::string_view partition_key, std::string_view data,
                         const std::optional<HashKey>& explicit_hash_key, uint64_t counter_floor,
                         int64_t now_us, PutRecordResult* result, std::string* error) {
  const HashKey hash_key =
      explicit_hash_key ? *explicit_hash_key : internal::CachedPartitionKeyHash(partition_key);
  const int64_t expire_before = now_us - retention_us_.load(std::memory_order_relaxed);
  for (;;) {
    StreamShard* shard = shard_map_.load(std::memory_order_acquire)->Route(hash_key);
    std::optional<internal::ShardLog::Appended> appended =
        shard->log.Append(partition_key, data, now_us, counter_floor, expire_before);
    if (appended) {
      result->shard_id = shard->id;
      result->sequence_number =
          internal::MakeSequenceNumber(appended->counter, shard->id.index(), stream_tag_);
      return ErrorCode::kOk;
    }
    // The shard closed after we routed to it; a newer map routes to its successor. The map is
    // published before the shard closes, so this loop ends.
    if (shard_map_.load(std::memory_order_acquire)->Route(hash_key) == shard) {
      *error = "shard closed without a successor";
      return ErrorCode::kInternalFailure;
    }
  }
}

absl::StatusOr<PutRecordResult> Stream::PutRecord(std::string_view partition_key,
                                                  std::string_view data,
                                                  const PutOptions& options) {
  if (absl::Status s = ValidateRecord(partition_key, data); !s.ok()) return s;
  uint64_t floor = 0;
  if (options.sequence_number_for_ordering) {
    absl::StatusOr<uint64_t> counter = OrderingCounter(*options.sequence_number_for_ordering);
    if (!counter.ok()) return counter.status();
    floor = *counter;
  }
  PutRecordResult result;
  std::string error;
  const ErrorCode code = PutOne(partition_key, data, options.explicit_hash_key, floor,
                                ToMicros(options_.clock->Now()), &result, &error);
  if (code != ErrorCode::kOk) return MakeError(code, error);
  return result;
}

absl::StatusOr<PutRecordsResult> Stream::PutRecords(absl::Span<const PutRecordsEntry> entries) {
  if (entries.empty() || entries.size() > kMaxPutRecordsEntries) {
    return InvalidArgumentError(absl::StrFormat(
        "PutRecords takes 1 to %d entries, not %d", kMaxPutRecordsEntries, entries.size()));
  }
  size_t total = 0;
  for (const PutRecordsEntry& e : entries) total += e.partition_key.size() + e.data.size();
  if (total > options_.max_put_records_bytes) {
    return InvalidArgumentError(absl::StrFormat(
        "PutRecords request of %d bytes exceeds the limit of %d bytes", total,
        options_.max_put_records_bytes));
  }
  PutRecordsResult result;
  result.entries.resize(entries.size());
  const int64_t now_us = ToMicros(options_.clock->Now());
  for (size_t i = 0; i < entries.size(); ++i) {
    const PutRecordsEntry& e = entries[i];
    PutRecordsResultEntry& out = result.entries[i];
    if (absl::Status s = ValidateRecord(e.partition_key, e.data); !s.ok()) {
      out.error_code = GetErrorCode(s);
      out.error_message = std::string(s.message());
      ++result.failed_record_count;
      continue;
    }
    PutRecordResult put;
    out.error_code =
        PutOne(e.partition_key, e.data, e.explicit_hash_key, 0, now_us, &put, &out.error_message);
    if (out.ok()) {
      out.shard_id = put.shard_id;
      out.sequence_number = put.sequence_number;
    } else {
      ++result.failed_record_count;
    }
  }
  return result;
}

std::vector<ShardDescription> Stream::ListShards() const {
  const ShardMap* map = shard_map_.load(std::memory_order_acquire);
  std::vector<ShardDescription> shards;
  shards.reserve(map->all.size());
  for (const StreamShard* shard : map->all) {
    ShardDescription d;
    d.shard_id = shard->id;
    d.hash_key_range = shard->range;
    d.parent_shard_id = shard->parent;
    d.adjacent_parent_shard_id = shard->adjacent_parent;
    d.sequence_number_range.starting_sequence_number =
        internal::MakeSequenceNumber(shard->log.first_counter(), shard->id.index(), stream_tag_);
    shards.push_back(std::move(d));
  }
  return shards;
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

absl::StatusOr<ShardIterator> Stream::GetShardIteratorImpl(
    uint32_t shard_index, const StartingPosition& position) const {
  StreamShard* shard = FindShard(shard_index);
  if (shard == nullptr) {
    return ResourceNotFoundError(absl::StrFormat("shard %s does not exist in stream %s",
                                                 ShardId(shard_index).ToString(), options_.name));
  }
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

  const absl::Time now = options_.clock->Now();
  const int64_t now_us = ToMicros(now);
  internal::ShardLog& log = shard->log;
  const uint64_t end = log.end_ordinal();
  const uint64_t trim = log.TrimBefore(now_us - retention_us_.load(std::memory_order_relaxed));
  uint64_t ordinal = trim;
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
      if (parts.counter > log.next_counter()) {
        return InvalidArgumentError(absl::StrFormat(
            "StartingSequenceNumber %s has not been issued by shard %s yet",
            *position.sequence_number, shard->id.ToString()));
      }
      const uint64_t target =
          position.type == ShardIteratorType::kAtSequenceNumber ? parts.counter : parts.counter + 1;
      ordinal = log.LowerBoundCounter(target, end);
      break;
    }
    case ShardIteratorType::kAtTimestamp:
      if (*position.timestamp > now) {
        return InvalidArgumentError("AT_TIMESTAMP Timestamp is in the future");
      }
      ordinal = log.LowerBoundTime(ToMicros(*position.timestamp), end);
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
  StreamShard* shard = FindShard(iterator.shard_index_);
  if (shard == nullptr) {
    return ResourceNotFoundError(absl::StrFormat("shard %s does not exist",
                                                 ShardId(iterator.shard_index_).ToString()));
  }
  const absl::Time now = options_.clock->Now();
  const int64_t now_us = ToMicros(now);
  if (now_us - iterator.issued_at_us_ > absl::ToInt64Microseconds(kShardIteratorLifetime)) {
    return ExpiredIteratorError(absl::StrFormat(
        "iterator issued at %s expired at %s", absl::FormatTime(iterator.issued_at()),
        absl::FormatTime(iterator.issued_at() + kShardIteratorLifetime)));
  }

  internal::ShardLog& log = shard->log;
  // Closedness first: if it is closed, the end read next is final.
  const bool closed = log.closed();
  const uint64_t end = log.end_ordinal();
  const uint64_t trim = log.TrimBefore(now_us - retention_us_.load(std::memory_order_relaxed));

  GetRecordsResult result;
  internal::ShardLog::Cursor cursor(log, std::max(iterator.ordinal_, trim), end);
  size_t bytes = 0;
  const void* pinned = nullptr;
  while (cursor.Valid() && result.records.size() < static_cast<size_t>(limit)) {
    const internal::StoredRecord r = cursor.Get();
    if (!result.records.empty() && bytes + r.data.size() > kMaxGetRecordsBytes) break;
    if (cursor.chunk().get() != pinned) {
      pinned = cursor.chunk().get();
      result.storage.push_back(cursor.chunk());
    }
    bytes += r.data.size();
    result.records.push_back(Record{
        internal::MakeSequenceNumber(r.counter, shard->id.index(), stream_tag_),
        absl::FromUnixMicros(r.arrival_us), r.partition_key, r.data});
    cursor.Next();
  }
  const uint64_t next = std::max(cursor.ordinal(), std::max(iterator.ordinal_, trim));
  if (cursor.Valid()) {
    result.millis_behind_latest = std::max<int64_t>(0, (now_us - cursor.Get().arrival_us) / 1000);
  }
  if (closed && next >= end) {
    result.child_shards = shard->children;
  } else {
    result.next_shard_iterator = ShardIterator(instance_, iterator.shard_index_, next, now_us);
  }
  return result;
}

void Stream::TrimAll() const {
  const int64_t cutoff = ToMicros(options_.clock->Now()) - retention_us_.load();
  for (StreamShard* shard : shard_map_.load(std::memory_order_acquire)->all) {
    shard->log.TrimBefore(cutoff);
  }
}

absl::Status Stream::IncreaseStreamRetentionPeriod(absl::Duration retention) {
  if (absl::Status s = ValidateRetention(retention, options_.allow_short_retention); !s.ok()) {
    return s;
  }
  internal::MutexLock lock(&shards_mu_);
  if (retention < this->retention()) {
    return InvalidArgumentError(absl::StrFormat(
        "IncreaseStreamRetentionPeriod: %s is below the current retention %s",
        absl::FormatDuration(retention), absl::FormatDuration(this->retention())));
  }
  TrimAll();  // What is past the old period stays gone.
  retention_us_.store(absl::ToInt64Microseconds(retention));
  return absl::OkStatus();
}

absl::Status Stream::DecreaseStreamRetentionPeriod(absl::Duration retention) {
  if (absl::Status s = ValidateRetention(retention, options_.allow_short_retention); !s.ok()) {
    return s;
  }
  internal::MutexLock lock(&shards_mu_);
  if (retention > this->retention()) {
    return InvalidArgumentError(absl::StrFormat(
        "DecreaseStreamRetentionPeriod: %s is above the current retention %s",
        absl::FormatDuration(retention), absl::FormatDuration(this->retention())));
  }
  retention_us_.store(absl::ToInt64Microseconds(retention));
  TrimAll();
  return absl::OkStatus();
}

size_t Stream::MemoryBytes() const {
  size_t bytes = 0;
  for (const StreamShard* shard : shard_map_.load(std::memory_order_acquire)->all) {
    bytes += shard->log.MemoryBytes();
  }
  return bytes;
}

}  // namespace rill
