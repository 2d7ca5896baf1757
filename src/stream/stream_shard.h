// One shard of a stream as the stream keeps it, and the routing table of open shards. Internal:
// shared by stream.cc and subscription.cc.
#ifndef RILL_STREAM_STREAM_SHARD_H_
#define RILL_STREAM_STREAM_SHARD_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "base/sequence_layout.h"
#include "log/shard_log.h"
#include "rill/base/hash_key.h"
#include "rill/base/shard_id.h"
#include "rill/stream/record.h"
#include "rill/stream/shard_description.h"
#include "rill/stream/stream_options.h"
#include "storage/stream_store.h"
#include "stream/rate_limiter.h"

namespace rill {
namespace internal {

struct StreamShard {
  StreamShard(ShardId id, HashKeyRange range, uint64_t first_counter, int64_t created_us,
              const ShardLimits& limits)
      : id(id),
        range(range),
        created_us(created_us),
        log(first_counter),
        write_bytes(limits.write_bytes_per_second, created_us),
        write_records(limits.write_records_per_second, created_us),
        read_calls(limits.read_calls_per_second, created_us),
        iterator_calls(limits.get_shard_iterator_calls_per_second, created_us),
        read_bytes(limits.read_bytes_per_second, created_us),
        write_limited(!write_bytes.unlimited() || !write_records.unlimited()) {}

  const ShardId id;
  const HashKeyRange range;
  std::optional<ShardId> parent;
  std::optional<ShardId> adjacent_parent;
  const int64_t created_us;
  // When the shard closed (never before its newest record's arrival); "never" while open.
  std::atomic<int64_t> closed_us{std::numeric_limits<int64_t>::max()};
  // Latched once the shard is seen expired, so that a later retention increase revives nothing.
  mutable std::atomic<bool> expired{false};
  // Set before log.Close() and read only once log.closed() is seen, so never raced on.
  std::vector<ChildShard> children;
  ShardLog log;

  TokenBucket write_bytes;
  TokenBucket write_records;
  TokenBucket read_calls;
  TokenBucket iterator_calls;
  ReadThroughput read_bytes;
  const bool write_limited;

  // Metrics the log does not keep (IncomingBytes/Records come from the log).
  std::atomic<int64_t> outgoing_bytes{0};
  std::atomic<int64_t> outgoing_records{0};
  std::atomic<int64_t> write_throttled{0};
  std::atomic<int64_t> read_throttled{0};
  std::atomic<int64_t> iterator_age_ms{0};

  // Durable mode: the shard's segment files; null in memory mode.
  std::unique_ptr<ShardStore> store;
  // Durable mode: no counter at or above this is issued before a higher ceiling is on disk
  // (StreamStore::RaiseCeilings). Touched under the log's append lock (in the journal hook), or
  // before the shard is routable.
  uint64_t counter_ceiling = 0;

  // On-demand scaling state, touched only by Tick() under the stream's shards_mu_.
  uint64_t tick_records = 0;
  uint64_t tick_bytes = 0;
  int64_t hot_since_us = -1;
  int64_t cold_since_us = -1;
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

// One read of a shard's published records, as GetRecords and push subscriptions both do it.
struct ShardRead {
  uint64_t next = 0;            // the ordinal after the last record read
  int64_t bytes_with_keys = 0;  // throughput limits and metrics count keys and data
  int64_t millis_behind = 0;    // now minus the arrival of the first record not read; 0 if none
  absl::Status status;          // durable mode: a cold read that failed (DATA_LOSS, I/O)
};

// Trims the shard to `cutoff_us` (retention): the memory log, and in durable mode the records
// evicted to disk, which the memory log cannot judge. Returns the first visible ordinal.
inline uint64_t TrimShard(StreamShard& shard, int64_t cutoff_us) {
  uint64_t trim = shard.log.TrimBefore(cutoff_us);
  if (shard.store == nullptr) return trim;
  const uint64_t memory_start = shard.log.memory_start_ordinal();
  if (trim >= memory_start) return trim;
  // Records below the disk's first one were deleted with their segments.
  uint64_t target = std::min(shard.store->first_disk_ordinal(), memory_start);
  if (shard.store->oldest_arrival_us() < cutoff_us) {
    absl::StatusOr<uint64_t> t = shard.store->LowerBoundTime(cutoff_us, memory_start);
    if (t.ok()) target = std::max(target, *t);
  }
  if (target > trim) shard.log.RaiseTrim(target);
  return shard.log.trim_ordinal();
}

// Reads `shard` from ordinal `from` (clamped up to the oldest record in memory) to `end`: at most
// `limit` records and `max_data_bytes` of data, but always at least one record. Appends the views
// to `records` and the chunks they point into to `storage`, and counts OutgoingRecords/Bytes.
inline ShardRead ReadShard(StreamShard& shard, uint32_t stream_tag, uint64_t from, uint64_t end,
                           size_t limit, size_t max_data_bytes, int64_t now_us,
                           std::vector<Record>* records, RecordKeepAlive* storage) {
  ShardRead read;
  if (shard.store != nullptr && from < end) {
    // Durable mode: records evicted from memory are read back from their segment.
    const uint64_t memory_start = shard.log.memory_start_ordinal();
    if (from < memory_start) {
      ShardStore::ColdRead cold;
      read.status =
          shard.store->ReadCold(from, std::min(end, memory_start), limit, max_data_bytes, &cold);
      read.next = from;
      if (!read.status.ok()) return read;
      if (!cold.records.empty()) {
        storage->Add(cold.keep_alive);
        for (const StoredRecord& r : cold.records) {
          read.bytes_with_keys += static_cast<int64_t>(r.data.size() + r.partition_key.size());
          records->push_back(Record{MakeSequenceNumber(r.counter, shard.id.index(), stream_tag),
                                    absl::FromUnixMicros(r.arrival_us), r.partition_key, r.data});
        }
        read.next = cold.next;
        if (read.next < end) {
          read.millis_behind =
              std::max<int64_t>(0, (now_us - cold.records.back().arrival_us) / 1000);
        }
        shard.outgoing_records.fetch_add(static_cast<int64_t>(cold.records.size()),
                                         std::memory_order_relaxed);
        shard.outgoing_bytes.fetch_add(read.bytes_with_keys, std::memory_order_relaxed);
        return read;
      }
      from = std::max(from, std::min(cold.next, memory_start));
      if (from < memory_start) from = memory_start;  // nothing on disk there any more
    }
  }
  ShardLog::Cursor cursor(shard.log, from, end);
  size_t data_bytes = 0;
  size_t count = 0;
  const void* pinned = nullptr;
  while (cursor.Valid() && count < limit) {
    const StoredRecord r = cursor.Get();
    if (count > 0 && data_bytes + r.data.size() > max_data_bytes) break;
    if (cursor.chunk().get() != pinned) {
      pinned = cursor.chunk().get();
      storage->Add(cursor.chunk());
    }
    data_bytes += r.data.size();
    read.bytes_with_keys += static_cast<int64_t>(r.data.size() + r.partition_key.size());
    records->push_back(Record{MakeSequenceNumber(r.counter, shard.id.index(), stream_tag),
                              absl::FromUnixMicros(r.arrival_us), r.partition_key, r.data});
    ++count;
    cursor.Next();
  }
  read.next = cursor.ordinal();
  if (cursor.Valid())
    read.millis_behind = std::max<int64_t>(0, (now_us - cursor.Get().arrival_us) / 1000);
  shard.outgoing_records.fetch_add(static_cast<int64_t>(count), std::memory_order_relaxed);
  shard.outgoing_bytes.fetch_add(read.bytes_with_keys, std::memory_order_relaxed);
  return read;
}

}  // namespace internal
}  // namespace rill

#endif  // RILL_STREAM_STREAM_SHARD_H_
