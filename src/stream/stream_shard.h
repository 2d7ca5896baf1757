// One shard of a stream as the stream keeps it, and the routing table of open shards. Internal:
// shared by stream.cc and subscription.cc.
#ifndef RILL_STREAM_STREAM_SHARD_H_
#define RILL_STREAM_STREAM_SHARD_H_

#include <algorithm>
#include <atomic>
#include <bit>
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
#include "storage/shard_storage.h"
#include "stream/rate_limiter.h"

namespace rill {
namespace internal {

struct StreamShard {
  // `account`: the stream's chunk memory, which must outlive the shard.
  StreamShard(ShardId id, HashKeyRange range, uint64_t first_counter, int64_t created_us,
              const ShardLimits& limits, ChunkAccount* account)
      : id(id),
        write_limited(limits.write_bytes_per_second != 0 || limits.write_records_per_second != 0),
        range(range),
        created_us(created_us),
        storage(first_counter, account),
        write_bytes(limits.write_bytes_per_second, created_us),
        write_records(limits.write_records_per_second, created_us),
        read_calls(limits.read_calls_per_second, created_us),
        iterator_calls(limits.get_shard_iterator_calls_per_second, created_us),
        read_bytes(limits.read_bytes_per_second, created_us) {}

  const ShardId id;
  // Whether a write limit is set (a rate of 0 is none): beside the id, in the line a put reads
  // first, rather than after the buckets.
  const bool write_limited;
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
  // The records: in memory, and in durable mode on disk.
  ShardStorage storage;
  ShardLog& log() { return storage.log(); }
  const ShardLog& log() const { return storage.log(); }

  TokenBucket write_bytes;
  TokenBucket write_records;
  TokenBucket read_calls;
  TokenBucket iterator_calls;
  ReadThroughput read_bytes;

  // Metrics the log does not keep (IncomingBytes/Records come from the log).
  std::atomic<int64_t> outgoing_bytes{0};
  std::atomic<int64_t> outgoing_records{0};
  std::atomic<int64_t> write_throttled{0};
  std::atomic<int64_t> read_throttled{0};
  std::atomic<int64_t> iterator_age_ms{0};

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
// Build with Index() once `starts` and `open` are filled; immutable after.
struct ShardMap {
  std::vector<HashKey> starts;
  std::vector<StreamShard*> open;
  std::vector<StreamShard*> all;

  // Buckets of the key space by its top bits (about four per open shard, at most 2^16): each
  // names the open shard holding the bucket's first key. A key's shard is its bucket's or one
  // after, up to the next bucket's: with the even ranges streams are made with, a step or none,
  // where a binary search over 100 shards takes seven unpredictable branches (a tenth of a put).
  std::vector<uint32_t> bucket_first;  // buckets + 1 entries, the last the last open shard
  int bucket_shift = 64;               // a key's bucket: its high 64 bits >> bucket_shift

  void Index() {
    const size_t buckets =
        std::min<size_t>(std::bit_ceil(4 * std::max<size_t>(open.size(), 1)), size_t{1} << 16);
    bucket_shift = 64 - std::countr_zero(buckets);
    bucket_first.assign(buckets + 1, static_cast<uint32_t>(open.size() - 1));
    for (size_t b = 0; b < buckets; ++b) {
      const HashKey first(absl::MakeUint128(static_cast<uint64_t>(b) << bucket_shift, 0));
      const auto it = std::upper_bound(starts.begin(), starts.end(), first);
      bucket_first[b] = static_cast<uint32_t>(it - starts.begin()) - 1;
    }
  }

  StreamShard* Route(HashKey key) const {
    // The last open shard starting at or below the key; the open shards tile the key space.
    const uint64_t high = absl::Uint128High64(key.value());
    const size_t b = bucket_shift == 64 ? 0 : static_cast<size_t>(high >> bucket_shift);
    size_t i = bucket_first[b];
    const size_t last = bucket_first[b + 1];
    while (i < last && starts[i + 1] <= key) ++i;
    return open[i];
  }
};

// Reads `shard` from ordinal `from` to `end` (ShardStorage::Read's rules) as Records of the
// stream: appends them to `records` and what they point into to `storage`, and counts
// OutgoingRecords/Bytes.
inline ShardRead ReadShard(StreamShard& shard, uint32_t stream_tag, uint64_t from, uint64_t end,
                           size_t limit, size_t max_data_bytes, int64_t now_us,
                           std::vector<Record>* records, RecordKeepAlive* storage) {
  const uint32_t index = shard.id.index();
  const ShardRead read = shard.storage.Read(
      from, end, limit, max_data_bytes, now_us,
      [storage](std::shared_ptr<const void> chunk) { storage->Add(std::move(chunk)); },
      [records, index, stream_tag](const StoredRecord& r) {
        records->push_back(Record{MakeSequenceNumber(r.counter, index, stream_tag),
                                  absl::FromUnixMicros(r.arrival_us), r.partition_key, r.data});
      });
  shard.outgoing_records.fetch_add(static_cast<int64_t>(read.records), std::memory_order_relaxed);
  shard.outgoing_bytes.fetch_add(read.bytes_with_keys, std::memory_order_relaxed);
  return read;
}

}  // namespace internal
}  // namespace rill

#endif  // RILL_STREAM_STREAM_SHARD_H_
