// GetShardIterator and GetRecords, and retention.
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
#include "stream/stream_impl.h"
#include "stream/stream_shard.h"

namespace rill::internal {

absl::StatusOr<ShardIterator> StreamImpl::GetShardIterator(ShardId shard_id,
                                                           const StartingPosition& position) const {
  return GetShardIteratorImpl(shard_id.index(), position);
}

absl::StatusOr<ShardIterator> StreamImpl::GetShardIteratorImpl(uint32_t shard_index,
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

  internal::ShardLog& log = shard->log();
  const uint64_t end = log.end_ordinal();
  const uint64_t trim = TrimShard(*shard, now_us - retention_us_.load(std::memory_order_relaxed));
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
      // Issued: below the next counter, or the shard's own starting or ending number.
      if (parts.counter >= log.next_counter() && parts.counter != log.first_counter() &&
          !(log.closed() && parts.counter == log.ending_counter())) {
        return InvalidArgumentError(
            absl::StrFormat("StartingSequenceNumber %s has not been issued by shard %s yet",
                            *position.sequence_number, shard->id.ToString()));
      }
      const uint64_t target =
          position.type == ShardIteratorType::kAtSequenceNumber ? parts.counter : parts.counter + 1;
      absl::StatusOr<uint64_t> found = shard->storage.LowerBoundCounter(target, trim, end);
      if (!found.ok()) return AsKinesisError(found.status());
      ordinal = *found;
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
      absl::StatusOr<uint64_t> found = shard->storage.LowerBoundTime(at_us, trim, end);
      if (!found.ok()) return AsKinesisError(found.status());
      ordinal = *found;
      break;
  }
  return ShardIterator(instance_, shard_index, ordinal, now_us);
}

absl::StatusOr<GetRecordsResult> StreamImpl::GetRecords(const ShardIterator& iterator,
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

  internal::ShardLog& log = shard->log();
  // Closedness first: if it is closed, the end read next is final.
  const bool closed = log.closed();
  const uint64_t end = log.end_ordinal();
  const uint64_t trim = TrimShard(*shard, now_us - retention_us_.load(std::memory_order_relaxed));

  GetRecordsResult result;
  const uint64_t from = std::max(iterator.ordinal_, trim);
  // One allocation for the result, not a doubling series of them (each a copy of every record
  // so far): at most `limit`, at most what is published.
  result.records.reserve(static_cast<size_t>(
      std::min<uint64_t>(static_cast<uint64_t>(limit), end > from ? end - from : 0)));
  const internal::ShardRead read =
      internal::ReadShard(*shard, stream_tag_, from, end, static_cast<size_t>(limit),
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

void StreamImpl::TrimAll() {
  const int64_t now_us = ToMicros(options_.clock->Now());
  const int64_t cutoff = std::max(now_us - retention_us_.load(), trim_floor_us_.load());
  for (StreamShard* shard : shard_map_.load(std::memory_order_acquire)->all) {
    TrimShard(*shard, cutoff);
    shard->storage.DropExpired(cutoff, Expired(*shard, now_us));
  }
}

uint64_t StreamImpl::TrimShard(StreamShard& shard, int64_t expire_before_us) const {
  const int64_t retire_before = retire_before_us_.load(std::memory_order_acquire);
  if (retire_before <= expire_before_us) return shard.storage.Trim(expire_before_us);
  // The memory limit retires more than retention expires: what it alone takes is counted.
  ShardLog::Trimmed retired;
  const uint64_t trim = shard.storage.Trim(retire_before, expire_before_us, &retired);
  if (retired.records != 0) {
    Add(counters_->retired_records, static_cast<int64_t>(retired.records));
    Add(counters_->retired_bytes, static_cast<int64_t>(retired.bytes));
  }
  return trim;
}

absl::Status StreamImpl::IncreaseStreamRetentionPeriod(absl::Duration retention) {
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

absl::Status StreamImpl::DecreaseStreamRetentionPeriod(absl::Duration retention) {
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

}  // namespace rill::internal
