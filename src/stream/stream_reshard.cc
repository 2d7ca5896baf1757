// Resharding (SplitShard, MergeShards, UpdateShardCount), UpdateStreamMode, Tick and on-demand
// scaling.
#include <algorithm>
#include <cstddef>
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
#include "stream/uniform_scaling.h"

namespace rill::internal {

namespace {

// Drops entries older than a day from `times` and says whether fewer than `quota` remain.
bool WithinDailyQuota(std::vector<int64_t>& times, int quota, int64_t now_us) {
  std::erase_if(times, [&](int64_t t) { return t <= now_us - kMicrosPerDay; });
  return static_cast<int>(times.size()) < quota;
}

}  // namespace

int StreamImpl::OpenShardCount() const {
  return static_cast<int>(shard_map_.load(std::memory_order_acquire)->open.size());
}

absl::Status StreamImpl::CheckCanReshard(int64_t now_us) const {
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

void StreamImpl::MarkUpdated(int64_t now_us) {
  updating_until_us_.store(now_us + absl::ToInt64Microseconds(options_.update_duration),
                           std::memory_order_release);
}

// A resharding in progress: the open shards as they will be once it is published. Steps close
// parents and open children in memory only; CommitReshard makes them durable and visible at once.
struct StreamImpl::ReshardPlan {
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

absl::Status StreamImpl::Reshard(const std::vector<StreamShard*>& parents,
                                 const std::vector<HashKeyRange>& child_ranges, int64_t now_us) {
  ReshardPlan plan(shard_map_.load(std::memory_order_acquire));
  ReshardStep(plan, parents, child_ranges, now_us);
  return CommitReshard(plan, now_us);
}

void StreamImpl::ReshardStep(ReshardPlan& plan, const std::vector<StreamShard*>& parents,
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
    p->log().Close();
    // Expiry is judged from the close time, which must not precede any record's arrival (a
    // clock set back leaves arrivals ahead of it).
    p->closed_us.store(std::max(now_us, p->log().last_arrival_at_close_us()),
                       std::memory_order_release);
    ending = std::max(ending, p->log().ending_counter());
    plan.closed.push_back(p);
  }

  // Children number above every parent record.
  for (const ChildShard& c : children) {
    auto shard = std::make_unique<StreamShard>(c.shard_id, c.hash_key_range, ending + 1, now_us,
                                               options_.shard_limits, &chunk_account_);
    shard->parent = parent_ids[0];
    if (parent_ids.size() > 1) shard->adjacent_parent = parent_ids[1];
    plan.opened.push_back(shard.get());
    shards_.push_back(std::move(shard));
  }
  // The children take their parents' place: the parents are adjacent in the plan, the first
  // starting where the first child does. (An UpdateShardCount takes thousands of steps.)
  const auto first = std::lower_bound(
      plan.open.begin(), plan.open.end(), child_ranges.front().starting_hash_key,
      [](const StreamShard* s, HashKey k) { return s->range.starting_hash_key < k; });
  const auto at = plan.open.erase(first, first + static_cast<std::ptrdiff_t>(parents.size()));
  plan.open.insert(at, plan.opened.end() - static_cast<std::ptrdiff_t>(children.size()),
                   plan.opened.end());
}

absl::Status StreamImpl::CommitReshard(ReshardPlan& plan, int64_t /*now_us*/) {
  // Durable mode: the disk learns of the children (and of the parents' ends) before any record
  // can reach a child, in one metadata write: after a crash the whole resharding (every step of
  // an UpdateShardCount) has happened or none of it has.
  absl::Status stored;
  if (store_ != nullptr) {
    std::vector<std::pair<uint32_t, uint64_t>> ceilings;
    for (StreamShard* c : plan.opened) {
      absl::Status opened = c->storage.OpenDisk(store_->ShardDirectory(c->id.index()),
                                                store_->options(), CryptoFor(c->id.index()));
      if (!opened.ok() && stored.ok()) stored = AsKinesisError(opened);
      c->counter_ceiling = c->log().next_counter() + kCounterLease;
      ceilings.emplace_back(c->id.index(), c->counter_ceiling);
    }
    // Parents' records to their segments (a parent opened by an earlier step of this plan is
    // empty and has its store only now).
    for (StreamShard* p : plan.closed) {
      if (stored.ok() && p->storage.disk() != nullptr) stored = CommitShard(p, true);
    }
    if (stored.ok()) stored = AsKinesisError(store_->RaiseCeilings(ceilings));
    if (stored.ok()) stored = PersistMetaLocked();
  }

  auto map = std::make_unique<ShardMap>();
  map->open = plan.open;
  for (StreamShard* s : map->open) map->starts.push_back(s->range.starting_hash_key);
  map->Index();
  for (const auto& s : shards_) map->all.push_back(s.get());
  UpdateChunkCap(map->open.size());
  shard_map_.store(map.get(), std::memory_order_release);
  shard_map_.notify_all();
  // Old maps stay alive: a put may still be routing through one.
  shard_maps_.push_back(std::move(map));
  return stored;
}

absl::Status StreamImpl::SplitLocked(StreamShard* shard, HashKey key, int64_t now_us) {
  if (shard->log().closed()) {
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

absl::Status StreamImpl::MergeLocked(StreamShard* shard, StreamShard* adjacent, int64_t now_us) {
  for (const StreamShard* s : {shard, adjacent}) {
    if (s->log().closed()) {
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

absl::Status StreamImpl::SplitShard(ShardId shard_id, HashKey new_starting_hash_key) {
  const int64_t now_us = ToMicros(options_.clock->Now());
  internal::MutexLock lock(&shards_mu_);
  absl::StatusOr<StreamShard*> shard = FindLiveShard(shard_id.index(), now_us);
  if (!shard.ok()) return shard.status();
  if (absl::Status s = CheckCanReshard(now_us); !s.ok()) return s;
  if (absl::Status s = SplitLocked(*shard, new_starting_hash_key, now_us); !s.ok()) return s;
  MarkUpdated(now_us);
  return absl::OkStatus();
}

absl::Status StreamImpl::MergeShards(ShardId shard_id, ShardId adjacent_shard_id) {
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

absl::Status StreamImpl::UpdateShardCount(int target_shard_count) {
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

  // Uniform scaling (uniform_scaling.h plans it): each run of adjacent open shards merges into
  // one, grown from its widest shard so that no merge is narrower than that, which then splits
  // into the run's even pieces by halving (parents before children, log2(pieces) deep). The
  // steps are planned in memory and published (and written to disk) as one.
  ReshardPlan plan(shard_map_.load(std::memory_order_acquire));
  const std::vector<StreamShard*> current = plan.open;
  std::vector<HashKeyRange> ranges;
  for (const StreamShard* s : current) ranges.push_back(s->range);
  const auto width_less = [](const StreamShard* a, const StreamShard* b) {
    return a->range.ending_hash_key.value() - a->range.starting_hash_key.value() <
           b->range.ending_hash_key.value() - b->range.starting_hash_key.value();
  };
  for (const ScalingRun& run : PlanUniformScaling(ranges, target_shard_count)) {
    if (run.shards == 1 && run.pieces == 1) continue;
    const auto begin = current.begin() + run.first;
    const auto end = begin + run.shards;
    const HashKeyRange range{(*begin)->range.starting_hash_key,
                             (*(end - 1))->range.ending_hash_key};
    StreamShard* merged = *std::max_element(begin, end, width_less);
    while (merged->range != range) {
      StreamShard* left = merged->range.starting_hash_key == range.starting_hash_key
                              ? nullptr
                              : plan.Route(HashKey(merged->range.starting_hash_key.value() - 1));
      StreamShard* right = merged->range.ending_hash_key == range.ending_hash_key
                               ? nullptr
                               : plan.Route(HashKey(merged->range.ending_hash_key.value() + 1));
      const bool take_left = right == nullptr || (left != nullptr && !width_less(left, right));
      StreamShard* low = take_left ? left : merged;
      StreamShard* high = take_left ? merged : right;
      ReshardStep(plan, {low, high},
                  {HashKeyRange{low->range.starting_hash_key, high->range.ending_hash_key}},
                  now_us);
      merged = plan.Route(low->range.starting_hash_key);
    }
    struct Part {
      StreamShard* shard;
      int first_piece;
      int end_piece;
    };
    std::vector<Part> parts{{merged, 0, run.pieces}};
    while (!parts.empty()) {
      const Part part = parts.back();
      parts.pop_back();
      if (part.end_piece - part.first_piece < 2) continue;
      const int middle = part.first_piece + (part.end_piece - part.first_piece) / 2;
      const HashKey key = PieceStart(range, run.pieces, middle);
      const HashKeyRange whole = part.shard->range;
      ReshardStep(plan, {part.shard},
                  {HashKeyRange{whole.starting_hash_key, HashKey(key.value() - 1)},
                   HashKeyRange{key, whole.ending_hash_key}},
                  now_us);
      parts.push_back({plan.Route(key), middle, part.end_piece});
      parts.push_back({plan.Route(whole.starting_hash_key), part.first_piece, middle});
    }
  }
  if (absl::Status s = CommitReshard(plan, now_us); !s.ok()) return s;
  MarkUpdated(now_us);
  return absl::OkStatus();
}

absl::Status StreamImpl::UpdateStreamMode(CapacityMode mode) {
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
    s->tick_records = s->log().end_ordinal();
    s->tick_bytes = s->log().appended_bytes();
    s->hot_since_us = s->cold_since_us = -1;
  }
  last_tick_us_ = now_us;
  MarkUpdated(now_us);
  return PersistMetaLocked();
}

void StreamImpl::Tick() {
  const int64_t now_us = ToMicros(options_.clock->Now());
  TrimAll();
  if (OverMemoryBudget()) RetireOldest(now_us);
  internal::MutexLock lock(&shards_mu_);
  for (StreamShard* s : shard_map_.load(std::memory_order_acquire)->all) {
    Expired(*s, now_us);
    // Durable mode: a group commit that is due although no put came to trigger it.
    if (s->storage.disk() != nullptr && !s->expired.load(std::memory_order_relaxed)) {
      CommitShard(s).IgnoreError();  // a failed store fails the next put, which reports it
    }
  }
  if (capacity_mode_.load(std::memory_order_acquire) == CapacityMode::kOnDemand && !read_only_) {
    AutoScaleLocked(now_us);
  }
  last_tick_us_ = std::max(last_tick_us_, now_us);
}

void StreamImpl::AutoScaleLocked(int64_t now_us) {
  const int64_t elapsed_us = now_us - last_tick_us_;
  if (elapsed_us <= 0) return;
  const OnDemandPolicy& policy = options_.on_demand;
  const std::vector<StreamShard*> open = shard_map_.load(std::memory_order_acquire)->open;
  // Classify every open shard by its ingress over [last tick, now].
  std::vector<bool> hot(open.size()), cold(open.size());
  for (size_t i = 0; i < open.size(); ++i) {
    StreamShard* s = open[i];
    const uint64_t records = s->log().end_ordinal();
    const uint64_t bytes = s->log().appended_bytes();
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
    if (open[i]->log().closed() || open[i + 1]->log().closed()) continue;
    if (MergeLocked(open[i], open[i + 1], now_us).ok()) {
      --open_count;
      changed = true;
      ++i;  // each shard takes part in one resharding per tick
    }
  }
  if (changed) MarkUpdated(now_us);
}

absl::Status StreamImpl::StartHousekeeping(absl::Duration interval) {
  if (interval <= absl::ZeroDuration()) {
    return InvalidArgumentError("StartHousekeeping needs a positive interval");
  }
  MutexLock lock(&housekeeping_mu_);
  if (housekeeping_thread_.joinable()) {
    return ResourceInUseError("the housekeeping thread is already running");
  }
  housekeeping_stop_ = false;
  // The first interval counts from now, on the caller's thread: a clock advanced right after
  // this call reaches the first tick whenever the thread gets to run.
  const absl::Time first = options_.clock->Now() + interval;
  housekeeping_thread_ = std::thread([this, interval, first] {
    const std::shared_ptr<Clock>& clock = options_.clock;
    absl::Time next = first;
    for (;;) {
      // On the stream's clock: under a SimulatedClock the thread ticks when a test moves the
      // clock past the next interval, never on real time.
      if (!clock->WaitUntil(next, housekeeping_waker_)) next = clock->Now() + interval;
      {
        MutexLock lock(&housekeeping_mu_);
        if (housekeeping_stop_) return;
      }
      Tick();
    }
  });
  return absl::OkStatus();
}

void StreamImpl::StopHousekeeping() {
  std::thread thread;
  {
    MutexLock lock(&housekeeping_mu_);
    housekeeping_stop_ = true;
    thread = std::move(housekeeping_thread_);
  }
  housekeeping_waker_.Interrupt();  // ends the thread's wait at once, on any clock
  if (thread.joinable()) thread.join();
}

}  // namespace rill::internal
