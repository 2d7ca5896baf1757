// In-memory mode: the memory limit (StreamOptions::memory_limit). kRejectPuts refuses puts once
// the stream's chunks reach the budget; kRetireOldest retires the stream's oldest records, by
// arrival across every shard, until they fit in it again.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>

#include "log/shard_log.h"
#include "stream/stream_impl.h"
#include "stream/stream_shard.h"

namespace rill::internal {

void StreamImpl::UpdateChunkCap(size_t open_shards) {
  const size_t budget = options_.memory_limit.budget_bytes;
  if (budget == 0) return;  // the default: chunks grow to ShardLog::kMaxChunkBytes
  // The chunks writers are filling (one per open shard) take at most a quarter of the budget,
  // so that most of it holds sealed chunks, which can be freed.
  const size_t share = budget / (4 * std::max<size_t>(1, open_shards));
  chunk_account_.set_max_chunk_bytes(std::clamp<size_t>(std::bit_floor(std::max<size_t>(share, 1)),
                                                        ShardLog::kMinChunkBytes,
                                                        ShardLog::kMaxChunkBytes));
}

absl::Status StreamImpl::CheckMemoryBudget() const {
  if (chunk_account_.bytes() < options_.memory_limit.budget_bytes) return absl::OkStatus();
  return memory_refusal_;
}

bool StreamImpl::TrimForRoom(int64_t now_us) {
  const int64_t expire_before = now_us - retention_us_.load(std::memory_order_relaxed);
  for (StreamShard* s : shard_map_.load(std::memory_order_acquire)->all) {
    TrimShard(*s, expire_before);
  }
  return chunk_account_.bytes() < options_.memory_limit.budget_bytes;
}

void StreamImpl::RetireOldest(int64_t now_us) {
  const size_t budget = options_.memory_limit.budget_bytes;
  MutexLock lock(&retire_mu_);
  // Records that retention has expired are not counted as retired.
  const int64_t expire_before = now_us - retention_us_.load(std::memory_order_relaxed);
  int misses = 0;
  while (chunk_account_.bytes() > budget) {
    const ShardMap* map = shard_map_.load(std::memory_order_acquire);
    // The sealed chunk whose newest record is the oldest in the stream.
    StreamShard* oldest_shard = nullptr;
    int64_t oldest = std::numeric_limits<int64_t>::max();
    for (StreamShard* s : map->all) {
      const int64_t last = s->log().oldest_sealed_last_us();
      if (last < oldest) {
        oldest = last;
        oldest_shard = s;
      }
    }
    if (oldest_shard == nullptr) return;  // only the chunks writers are filling are left
    // That chunk goes whole, and with it every record of the stream that arrived before its
    // newest: what is retired is the stream's oldest, in every shard. (Records of other shards
    // that arrived at the same microsecond stay: with a clock that does not move, retiring all
    // of them would retire the puts still to come at that instant.)
    if (oldest > retire_before_us_.load(std::memory_order_relaxed)) {
      retire_before_us_.store(oldest, std::memory_order_release);
    }
    ShardLog::Trimmed retired;
    const bool freed = oldest_shard->log().RetireOldestChunk(oldest, expire_before, &retired);
    if (retired.records != 0) {
      Add(counters_->retired_records, static_cast<int64_t>(retired.records));
      Add(counters_->retired_bytes, static_cast<int64_t>(retired.bytes));
    }
    // Every shard at once, so that the retired records are counted when they go rather than
    // when someone next reads their shard.
    for (StreamShard* s : map->all) TrimShard(*s, expire_before);
    // A concurrent trim took the chunk first (and freed it); give up only if that keeps
    // happening, rather than spin: the next put over the budget retires again.
    if (!freed && ++misses == 3) return;
  }
}

}  // namespace rill::internal
