// PutRecord and PutRecords: validation, routing, throttling, and the journal path of durable puts.
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

absl::Status StreamImpl::ValidateRecord(std::string_view partition_key,
                                        std::string_view data) const {
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

absl::StatusOr<uint64_t> StreamImpl::OrderingCounter(SequenceNumber s) const {
  const internal::SequenceParts parts = internal::DecodeSequenceNumber(s);
  const StreamShard* shard =
      parts.version == internal::kSequenceVersion && parts.stream_tag == stream_tag_
          ? FindShard(parts.shard_index)
          : nullptr;
  if (shard == nullptr || parts.counter >= shard->log().next_counter()) {
    return InvalidArgumentError(absl::StrFormat(
        "ExclusiveMinimumSequenceNumber %s is invalid: it was not issued by stream %s",
        s.ToString(), options_.name));
  }
  return parts.counter;
}

// What one put call owes the journal: its region (reserved at the call's first record, sized
// for all of its records), and with kEveryBatch the shards whose records wait for the sync.
struct StreamImpl::DurablePut {
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

ErrorCode StreamImpl::PutOne(std::string_view partition_key, std::string_view data,
                             const std::optional<HashKey>& explicit_hash_key,
                             uint64_t counter_floor, int64_t now_us, PutRecordResult* result,
                             std::string* error, StreamShard** shard_out, DurablePut* durable) {
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
    if (store_ == nullptr && !reject_puts_) {
      appended = shard->log().Append(partition_key, data, now_us, counter_floor, expire_before);
    } else if (store_ == nullptr) {
      // The budget is checked under the shard's append lock, where the chunk is started: each
      // shard then goes past it by one chunk at most, however many threads put.
      auto append = [&] {
        return shard->log().AppendJournaled(
            partition_key, data, now_us, counter_floor, expire_before,
            internal::ShardLog::Visibility::kNow,
            [this](uint64_t, int64_t) { return CheckMemoryBudget(); });
      };
      absl::StatusOr<std::optional<internal::ShardLog::Appended>> a = append();
      // Refused: expired records may be holding the memory, with nothing to trim them.
      if (!a.ok() && TrimForRoom(now_us)) a = append();
      if (!a.ok()) {
        Add(counters_->memory_budget_exceeded, 1);
        if (shard->write_limited) {
          shard->write_bytes.Refund(bytes);
          shard->write_records.Refund(1);
        }
        *error = std::string(a.status().message());
        return ErrorCode::kProvisionedThroughputExceeded;
      }
      appended = *a;
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

absl::StatusOr<bool> StreamImpl::AppendDurable(StreamShard* shard, std::string_view partition_key,
                                               std::string_view data, int64_t now_us,
                                               uint64_t counter_floor, int64_t expire_before,
                                               DurablePut* durable, uint64_t* counter) {
  internal::ShardStore* store = shard->storage.disk();
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
  absl::StatusOr<std::optional<internal::ShardLog::Appended>> appended =
      shard->log().AppendJournaled(partition_key, data, now_us, counter_floor, expire_before,
                                   visibility, journal_hook);
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

absl::Status StreamImpl::JournalRecord(StreamShard* shard, DurablePut* durable,
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

void StreamImpl::PutShardBatch(StreamShard* shard, absl::Span<const PutRecordsEntry> entries,
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
  bool trimmed_for_room = false;  // kRejectPuts: once per call
  size_t pos = 0;
  while (pos < batch.size()) {
    const absl::Span<ShardLog::BatchRecord> rest = absl::MakeSpan(batch).subspan(pos);
    size_t appended = 0;
    absl::Status status;
    bool retry = false;  // kRejectPuts: trimming made room for the refused record
    if (store_ == nullptr && !reject_puts_) {
      status = shard->log().AppendJournaledBatch(
          rest, now_us, expire_before, ShardLog::Visibility::kNow,
          [](const ShardLog::BatchRecord&) { return absl::OkStatus(); }, &appended);
    } else if (store_ == nullptr) {
      // As in PutOne: each entry checks the budget under the append lock; the first refused
      // stops the batch, and the loop goes on with the next.
      status = shard->log().AppendJournaledBatch(
          rest, now_us, expire_before, ShardLog::Visibility::kNow,
          [this](const ShardLog::BatchRecord&) { return CheckMemoryBudget(); }, &appended);
      // Refused: expired records may be holding the memory, with nothing to trim them; if
      // trimming makes room, the loop tries the refused record again.
      if (!status.ok() && !trimmed_for_room) {
        trimmed_for_room = true;
        retry = TrimForRoom(now_us);
      }
      if (!status.ok() && !retry) Add(counters_->memory_budget_exceeded, 1);
    } else if (shard->storage.disk() == nullptr) {
      status = InternalFailureError(absl::StrFormat(
          "shard %s of stream %s has no storage (opening its directory failed when it was "
          "created)",
          shard->id.ToString(), options_.name));
    } else if (shard->storage.disk()->failed()) {
      status = shard->storage.disk()->status();
    } else {
      DurablePut::Pending* pending = durable->deferred ? durable->Find(shard) : nullptr;
      const ShardLog::Visibility visibility = !durable->deferred ? ShardLog::Visibility::kNow
                                              : pending == nullptr
                                                  ? ShardLog::Visibility::kDeferredFirst
                                                  : ShardLog::Visibility::kDeferred;
      status = shard->log().AppendJournaledBatch(
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
    if (retry) continue;
    if (!status.ok()) {
      // Nothing of this record was written: it is neither readable nor numbered.
      const ShardLog::BatchRecord& r = batch[pos++];
      refund(r);
      PutRecordsResultEntry& out = result->entries[r.index];
      const absl::Status error = AsKinesisError(status);
      out.error_code = GetErrorCode(error);
      out.error_message = std::string(error.message());
      ++result->failed_record_count;
      if (out.error_code == ErrorCode::kProvisionedThroughputExceeded) ++*throttled;  // memory
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

absl::Status StreamImpl::FinishDurablePut(DurablePut& durable) {
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
      p.shard->log().FinishDeferred(p.start, p.end, status.ok());
    }
  }
  for (internal::Journal::File* file : durable.files) journal->Done(file);
  return AsKinesisError(status);
}

void StreamImpl::AfterDurablePut(absl::Span<StreamShard* const> touched) {
  if (store_->options().background_flush) return;
  // No flusher thread: the put writes the segments when enough waits, and recycles the journal.
  for (StreamShard* shard : touched) CommitShard(shard).IgnoreError();
  if (store_->journal()->has_sealed()) Checkpoint(/*seal=*/false).IgnoreError();
}

absl::StatusOr<PutRecordResult> StreamImpl::PutRecord(std::string_view partition_key,
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
  if (code == ErrorCode::kOk && OverMemoryBudget()) RetireOldest(ToMicros(start));
  if (sample) {
    counters_->put_record_latency.Record(absl::ToInt64Microseconds(options_.clock->Now() - start));
  }
  if (code != ErrorCode::kOk) {
    Add(counters_->put_record_failure, 1);
    return MakeError(code, error);
  }
  return result;
}

absl::StatusOr<PutRecordsResult> StreamImpl::PutRecords(absl::Span<const PutRecordsEntry> entries) {
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
    // After each shard's entries, so that a call goes past the budget by one shard's at most.
    if (OverMemoryBudget()) RetireOldest(now_us);
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

}  // namespace rill::internal
