#include "rill/stream/producer.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/numeric/int128.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "base/partition_key_cache.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/hash_key.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"
#include "rill/base/shard_id.h"
#include "rill/stream/list_shards.h"
#include "rill/stream/shard_description.h"
#include "rill/stream/stream_api.h"
#include "stream/producer_buffer.h"

namespace rill {
namespace {

using Result = absl::StatusOr<PutRecordResult>;
using internal::Mutex;
using internal::MutexLock;
using internal::producer::Completion;
using internal::producer::HeadState;
using internal::producer::KeyTable;
using internal::producer::kMaxSpareStringCapacity;
using internal::producer::List;
using internal::producer::Pending;
using internal::producer::RecordPool;
using internal::producer::ShardBuffer;

constexpr std::string_view kExpiredPrefix = "Expired:";

// Set while a producer runs callbacks on this thread, so that Poll, Flush and Stop called from a
// callback can refuse, and Put send nothing and never wait, instead of deadlocking on the sender
// role the callback runs under.
thread_local const void* t_in_callbacks_of = nullptr;

constexpr uint64_t kSplitMixGamma = 0x9E3779B97F4A7C15ull;

// SplitMix64's output for the state it has just stepped to (state += kSplitMixGamma).
uint64_t SplitMix64(uint64_t state) {
  uint64_t z = state + kSplitMixGamma;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The stream's open shards, sorted by starting hash key.
absl::StatusOr<std::vector<ShardDescription>> ListOpenShards(const StreamApi& stream) {
  std::vector<ShardDescription> shards;
  ListShardsRequest request;
  ShardFilter filter;
  filter.type = ShardFilterType::kAtLatest;
  request.filter = filter;
  for (;;) {
    absl::StatusOr<ListShardsResult> page = stream.ListShards(request);
    if (!page.ok()) return page.status();
    shards.insert(shards.end(), page->shards.begin(), page->shards.end());
    if (!page->next_token) break;
    request = ListShardsRequest();
    request.next_token = page->next_token;
  }
  if (shards.empty()) return InternalFailureError("the stream has no open shard");
  std::sort(shards.begin(), shards.end(), [](const ShardDescription& a, const ShardDescription& b) {
    return a.hash_key_range.starting_hash_key < b.hash_key_range.starting_hash_key;
  });
  return shards;
}

absl::Status ValidateOptions(const ProducerOptions& o) {
  if (o.max_buffered_time < absl::ZeroDuration()) {
    return InvalidArgumentError("max_buffered_time must not be negative");
  }
  if (o.max_batch_records < 1 || o.max_batch_records > kMaxPutRecordsEntries) {
    return InvalidArgumentError(absl::StrFormat("max_batch_records must be within [1, %d], not %d",
                                                kMaxPutRecordsEntries, o.max_batch_records));
  }
  if (o.max_batch_bytes < 1) return InvalidArgumentError("max_batch_bytes must be at least 1");
  if (o.record_ttl <= absl::ZeroDuration()) {
    return InvalidArgumentError("record_ttl must be positive");
  }
  if (o.initial_backoff <= absl::ZeroDuration() || o.max_backoff < o.initial_backoff ||
      o.max_backoff == absl::InfiniteDuration()) {
    return InvalidArgumentError("backoff needs 0 < initial_backoff <= max_backoff, both finite");
  }
  if (o.max_put_wait < absl::ZeroDuration()) {
    return InvalidArgumentError("max_put_wait must not be negative");
  }
  if (o.max_outstanding_records < 1) {
    return InvalidArgumentError("max_outstanding_records must be at least 1");
  }
  return absl::OkStatus();
}

}  // namespace

bool IsRecordExpired(const absl::Status& status) {
  return GetErrorCode(status) == ErrorCode::kProvisionedThroughputExceeded &&
         std::string_view(status.message().data(), status.message().size())
                 .substr(0, kExpiredPrefix.size()) == kExpiredPrefix;
}

// One prediction of where keys land: a buffer per open shard, sorted by starting hash key. A map
// is replaced (never changed) when a refresh finds the stream resharded; the old one stays
// allocated, retired and empty, until the producer is destroyed, so that a Put that raced the
// refresh can still lock a buffer of it, see it retired and try again.
struct ShardMap {
  std::vector<std::unique_ptr<ShardBuffer>> shards;
  std::vector<HashKey> starts;         // shards' starting hash keys
  const ShardMap* previous = nullptr;  // the map this one replaced (its counters still count)

  uint32_t Route(HashKey hash) const {
    auto it = std::upper_bound(starts.begin(), starts.end(), hash);
    return it == starts.begin() ? 0 : static_cast<uint32_t>(it - starts.begin() - 1);
  }
};

std::unique_ptr<ShardMap> MakeShardMap(const std::vector<ShardDescription>& open) {
  auto map = std::make_unique<ShardMap>();
  for (const ShardDescription& d : open) {
    map->shards.push_back(std::make_unique<ShardBuffer>(d.shard_id, open.size()));
    map->starts.push_back(d.hash_key_range.starting_hash_key);
  }
  return map;
}

struct Producer::Impl {
  Impl(StreamApi& stream, const ProducerOptions& options)
      : stream_(&stream),
        options_(options),
        clock_(stream.clock()),
        max_record_bytes_(stream.put_limits().max_record_bytes),
        batch_bytes_(std::min(options.max_batch_bytes, stream.put_limits().max_put_records_bytes)),
        rng_(options.jitter_seed) {}

  enum class Round { kEmpty, kSent, kThrottled };

  // ---- Put ----

  void Put(std::string_view key, std::string_view data, std::optional<std::promise<Result>> promise,
           Callback callback) {
    absl::Status refused;
    if (key.size() + data.size() > max_record_bytes_) {
      refused = InvalidArgumentError(
          absl::StrFormat("record of %d bytes (key and data) exceeds the stream's maximum of %d "
                          "bytes",
                          key.size() + data.size(), max_record_bytes_));
    } else if (!Reserve() && !WaitForRoom()) {
      refused =
          LimitExceededError(absl::StrFormat("the producer already holds %d outstanding records "
                                             "(max_outstanding_records)",
                                             options_.max_outstanding_records));
    }
    if (!refused.ok()) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      // Resolved at once, on the caller's thread, with no lock held.
      const void* saved = t_in_callbacks_of;
      t_in_callbacks_of = this;
      if (promise) {
        promise->set_value(std::move(refused));
      } else if (callback) {
        callback(std::move(refused));
      }
      t_in_callbacks_of = saved;
      return;
    }
    // The stream's per-thread cache of recent keys' MD5: the same value, without rehashing a
    // key that the thread put a moment ago.
    const HashKey hash = internal::CachedPartitionKeyHash(key);
    // A large record is copied before taking the lock, so that other threads' Puts do not wait
    // for the copy; small ones go straight into a reused slot's strings.
    std::string large_data;
    if (data.size() > kMaxSpareStringCapacity) large_data.assign(data);
    for (;;) {
      const ShardMap* map = map_.load(std::memory_order_acquire);
      const uint32_t index = map->Route(hash);
      ShardBuffer& s = *map->shards[index];
      bool full;
      bool wake;
      {
        MutexLock lock(&s.mu);
        if (s.retired) continue;  // a refresh replaced the map since it was read
        EnqueueLocked(s, index, key, data, large_data, hash, std::move(promise),
                      std::move(callback), full, wake);
      }
      // A full batch is sent by the Put that filled it, unless the shard's sender is busy (then
      // the next Put, Poll or the worker sends it) or this Put runs inside a callback (which may
      // hold that very sender role).
      if (full && t_in_callbacks_of != this && s.send_mu.TryLock()) {
        SendRound(s, std::numeric_limits<uint64_t>::max());
        s.send_mu.Unlock();
      }
      if (wake && worker_running_.load(std::memory_order_acquire)) WakeWorker();
      return;
    }
  }

  // Takes one of the max_outstanding_records places, if one is free.
  bool Reserve() {
    size_t n = outstanding_.load(std::memory_order_relaxed);
    while (n < options_.max_outstanding_records) {
      if (outstanding_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }

  // A Put that found no place free: for up to max_put_wait on the clock, sends what it can
  // itself (as Flush does) and waits for records to resolve (Clock::WaitFor: a SimulatedClock
  // moves forward to the next retry instead of sleeping). Returns whether it took a place.
  bool WaitForRoom() ABSL_LOCKS_EXCLUDED(waiters_mu_) {
    if (options_.max_put_wait <= absl::ZeroDuration() || t_in_callbacks_of == this) return false;
    internal::Waker waker;
    AddWaiter(&waker);
    const absl::Time deadline = clock_->Now() + options_.max_put_wait;
    bool reserved = false;
    for (;;) {
      if (Reserve()) {
        reserved = true;
        break;
      }
      absl::Time now = clock_->Now();
      if (now >= deadline) break;
      PollAll(/*all=*/true);
      if (Reserve()) {
        reserved = true;
        break;
      }
      now = clock_->Now();
      const absl::Time wake = std::min(NextEvent(now, /*all=*/true), deadline);
      if (wake <= now) continue;
      if (wake == absl::InfiniteFuture()) {
        // Nothing buffered to wait for: the places are taken by Puts between Reserve and their
        // shard's lock. They are buffered in a moment.
        std::this_thread::yield();
        continue;
      }
      // As in Flush: a clock that stood still through the wait (no rill clock does) would make
      // this loop spin for ever; give up instead.
      if (!clock_->WaitFor(wake - now, waker) && clock_->Now() == now) break;
    }
    RemoveWaiter(&waker);
    return reserved;
  }

  // Buffers a record (its data already copied into `large_data` if large; the slot's old buffer
  // is left there, to be freed outside the lock). Sets `full` if the shard now has a batch's
  // worth waiting, `wake` if the worker should look at the buffer (a new deadline).
  void EnqueueLocked(ShardBuffer& s, uint32_t index, std::string_view key, std::string_view data,
                     std::string& large_data, HashKey hash,
                     std::optional<std::promise<Result>> promise, Callback callback, bool& full,
                     bool& wake) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    Pending* r = s.pool.New();
    r->key.assign(key.data(), key.size());
    if (data.size() > kMaxSpareStringCapacity) {
      r->data.swap(large_data);
    } else {
      r->data.assign(data.data(), data.size());
    }
    r->bytes = key.size() + data.size();
    r->hash = hash;
    // Taken under the shard's lock, so that ids increase along the shard's lists.
    r->id = last_id_.fetch_add(1, std::memory_order_acq_rel) + 1;
    // Read under the lock, so that Put order and put times agree (the TTL scan relies on it).
    r->put_time = clock_->Now();
    r->promise = std::move(promise);
    r->callback = std::move(callback);
    r->shard = index;
    ++s.stats.user_records_put;

    if (const auto [chain, inserted] = s.keys.FindOrInsert(hash.value(), r); !inserted) {
      chain->second.tail->key_next = r;
      chain->second.tail = r;
    } else {
      r->head = true;
      r->state = HeadState::kReady;
      s.ready.PushBack(r);
    }
    const bool was_empty = s.fresh.empty();
    r->in_fresh = true;
    s.fresh.PushBack(r);
    s.fresh_bytes += r->bytes;
    s.all.PushBack(r);
    full = FullLocked(s);
    // The worker sleeps until the earliest deadline it saw: a shard that had no fresh record
    // gets a new one (never earlier than another shard's, but possibly earlier than a retry).
    wake = (was_empty && options_.max_buffered_time != absl::InfiniteDuration()) ||
           options_.max_buffered_time == absl::ZeroDuration();
  }

  // ---- shard map ----

  // Files `records` (every outstanding record, none in flight, in Put order) under `map`.
  static void FileRecordsLocked(ShardMap& map, const std::vector<Pending*>& records)
      ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (Pending* r : records) {
      r->shard = map.Route(r->hash);
      ShardBuffer& s = *map.shards[r->shard];
      s.all.PushBack(r);
      if (r->in_fresh) {
        s.fresh.PushBack(r);
        s.fresh_bytes += r->bytes;
      }
      if (const auto [chain, inserted] = s.keys.FindOrInsert(r->hash.value(), r); !inserted) {
        chain->second.tail = r;  // key_next already links the key's records
      }
      if (!r->head) continue;
      switch (r->state) {
        case HeadState::kReady:
          s.ready.PushBack(r);
          if (r->attempts > 0) ++s.ready_retries;
          break;
        case HeadState::kBackoff:
          r->backoff_it = s.backoff.emplace(r->retry_at, r);
          break;
        case HeadState::kInFlight:
          break;
      }
    }
  }

  // Re-reads the stream's shards and moves every outstanding record to a buffer of the new map.
  // Holds every shard's sender role and lock meanwhile (taken in index order; nobody else holds
  // more than one shard's), so no record is in flight.
  void RefreshShardMap() ABSL_LOCKS_EXCLUDED(refresh_mu_) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    MutexLock refresh_lock(&refresh_mu_);
    if (!map_stale_.exchange(false, std::memory_order_relaxed)) return;  // another thread did it
    absl::StatusOr<std::vector<ShardDescription>> open = ListOpenShards(*stream_);
    if (!open.ok()) return;  // keep predicting with the old map; records still land correctly
    std::unique_ptr<ShardMap> next = MakeShardMap(*open);
    ShardMap* old = maps_.back().get();
    for (const std::unique_ptr<ShardBuffer>& s : old->shards) s->send_mu.Lock();
    for (const std::unique_ptr<ShardBuffer>& s : old->shards) s->mu.Lock();
    std::vector<Pending*> records;
    for (const std::unique_ptr<ShardBuffer>& s : old->shards) {
      while (Pending* r = s->all.front()) {
        s->all.Remove(r);
        records.push_back(r);
      }
      s->fresh = List<&Pending::fresh>();
      s->fresh_bytes = 0;
      s->ready = List<&Pending::ready>();
      s->ready_retries = 0;
      s->backoff.clear();
      s->keys.Clear();
      s->pool.Clear();
      s->retired = true;
    }
    std::sort(records.begin(), records.end(),
              [](const Pending* a, const Pending* b) { return a->id < b->id; });
    FileRecordsLocked(*next, records);
    next->previous = old;
    map_.store(next.get(), std::memory_order_release);
    maps_.push_back(std::move(next));
    refreshes_.fetch_add(1, std::memory_order_relaxed);
    for (const std::unique_ptr<ShardBuffer>& s : old->shards) s->mu.Unlock();
    for (const std::unique_ptr<ShardBuffer>& s : old->shards) s->send_mu.Unlock();
  }

  // ---- resolution ----

  // Resolves `r`, which is the head of its key and not in flight unless the caller just took it
  // out of a call: unlinks it, promotes the next record of its key, queues the completion.
  void ResolveHeadLocked(ShardBuffer& s, Pending* r, Result result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.send_mu, s.mu) {
    if (result.ok()) {
      ++s.stats.user_records_written;
    } else {
      ++s.stats.user_records_failed;
    }
    if (r->in_fresh) {
      s.fresh.Remove(r);
      s.fresh_bytes -= r->bytes;
      r->in_fresh = false;
    }
    switch (r->state) {
      case HeadState::kReady:
        s.ready.Remove(r);
        if (r->attempts > 0) --s.ready_retries;
        break;
      case HeadState::kBackoff:
        s.backoff.erase(r->backoff_it);
        break;
      case HeadState::kInFlight:
        break;
    }
    const auto chain = s.keys.Find(r->hash.value());
    if (Pending* next = r->key_next) {
      // A key's records all live in one shard: the same hash, the same prediction.
      chain->second.head = next;
      next->head = true;
      next->state = HeadState::kReady;
      s.ready.PushBack(next);  // never attempted: not a retry
    } else {
      s.keys.Erase(chain);
    }
    s.all.Remove(r);
    ++s.resolved;
    s.done.push_back(Completion{std::move(r->promise), std::move(r->callback), std::move(result)});
    s.pool.Release(r);
  }

  // Takes the records resolved in this locked section off the outstanding count, at once.
  void TakeResolvedLocked(ShardBuffer& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    if (s.resolved == 0) return;
    outstanding_.fetch_sub(s.resolved, std::memory_order_relaxed);
    s.resolved = 0;
  }

  void ExpireHeadLocked(ShardBuffer& s, Pending* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.send_mu, s.mu) {
    ++s.stats.user_records_expired;
    std::string message = absl::StrFormat("%s record TTL of %s passed after %d attempt%s",
                                          kExpiredPrefix, absl::FormatDuration(options_.record_ttl),
                                          r->attempts, r->attempts == 1 ? "" : "s");
    if (r->attempts > 0) {
      absl::StrAppendFormat(&message, "; last error: %s: %s", ErrorCodeName(r->last_code),
                            r->last_message);
    }
    ResolveHeadLocked(s, r, ProvisionedThroughputExceededError(message));
  }

  // Fails every record of the shard whose TTL has passed. The shard's oldest outstanding record
  // is always the head of its key (a key's records are in Put order, all in this shard), so the
  // scan from the front only meets heads.
  void ExpireLocked(ShardBuffer& s, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.send_mu, s.mu) {
    while (Pending* r = s.all.front()) {
      if (now < r->put_time + options_.record_ttl || !r->head) break;
      ExpireHeadLocked(s, r);
    }
  }

  // SplitMix64 over an atomic state: the same seed and the same sequence of retries give the same
  // backoffs, with no lock.
  absl::Duration Backoff(int attempts) {
    absl::Duration d = options_.initial_backoff;
    for (int i = 1; i < attempts && d < options_.max_backoff; ++i) d *= 2;
    d = std::min(d, options_.max_backoff);
    const int64_t ns = absl::ToInt64Nanoseconds(d);
    const int64_t half = ns / 2;
    const auto span = static_cast<uint64_t>(ns - half) + 1;
    uint64_t state = rng_.fetch_add(kSplitMixGamma, std::memory_order_relaxed);
    return absl::Nanoseconds(half + static_cast<int64_t>(SplitMix64(state) % span));
  }

  // Handles a refused entry of an in-flight head. Returns whether it was a retryable refusal
  // (which stops the shard's sending for this Poll).
  bool RetryOrFailLocked(ShardBuffer& s, Pending* r, ErrorCode code, std::string_view message,
                         absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.send_mu, s.mu) {
    if (code != ErrorCode::kProvisionedThroughputExceeded && code != ErrorCode::kInternalFailure) {
      ResolveHeadLocked(
          s, r, MakeError(code == ErrorCode::kOk ? ErrorCode::kInternalFailure : code, message));
      return false;
    }
    ++s.stats.kinesis_records_retried;
    ++r->attempts;
    r->last_code = code;
    r->last_message.assign(message.data(), message.size());
    if (now >= r->put_time + options_.record_ttl) {
      ExpireHeadLocked(s, r);
      return true;
    }
    r->retry_at = now + Backoff(r->attempts);
    r->state = HeadState::kBackoff;
    r->backoff_it = s.backoff.emplace(r->retry_at, r);
    return true;
  }

  // Runs the shard's queued completions, outside its lock (so callbacks may Put) but in its
  // sender role (so one key's completions run in order), then wakes the Flush calls and blocked
  // Puts waiting for progress.
  void RunCompletions(ShardBuffer& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.send_mu)
      ABSL_LOCKS_EXCLUDED(s.mu, waiters_mu_) {
    if (s.done.empty()) return;
    const void* saved = t_in_callbacks_of;
    t_in_callbacks_of = this;
    for (Completion& c : s.done) {
      if (c.promise) {
        c.promise->set_value(std::move(c.result));
      } else if (c.callback) {
        c.callback(std::move(c.result));
      }
    }
    t_in_callbacks_of = saved;
    s.done.clear();
    NotifyWaiters();
  }

  void AddWaiter(internal::Waker* waker) ABSL_LOCKS_EXCLUDED(waiters_mu_) {
    MutexLock lock(&waiters_mu_);
    waiters_.push_back(waker);
    waiter_count_.fetch_add(1, std::memory_order_seq_cst);
  }

  void RemoveWaiter(internal::Waker* waker) ABSL_LOCKS_EXCLUDED(waiters_mu_) {
    MutexLock lock(&waiters_mu_);
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), waker));
    waiter_count_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Takes no lock while nobody waits. (A waiter registers before it looks at the buffer, under
  // the shard locks that the resolving thread takes afterwards, so it is counted here.)
  void NotifyWaiters() ABSL_LOCKS_EXCLUDED(waiters_mu_) {
    if (waiter_count_.load(std::memory_order_seq_cst) == 0) return;
    MutexLock lock(&waiters_mu_);
    for (internal::Waker* waker : waiters_) {
      waker->MarkPending();
      waker->Wake();
    }
  }

  // ---- sending ----

  void ReleaseBackoffsLocked(ShardBuffer& s, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    while (!s.backoff.empty() && s.backoff.begin()->first <= now) {
      Pending* r = s.backoff.begin()->second;
      s.backoff.erase(s.backoff.begin());
      r->state = HeadState::kReady;
      s.ready.PushBack(r);
      ++s.ready_retries;
    }
  }

  bool FullLocked(const ShardBuffer& s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    return s.fresh.size() >= static_cast<size_t>(options_.max_batch_records) ||
           s.fresh_bytes >= batch_bytes_;
  }

  bool DueLocked(const ShardBuffer& s, absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    return s.ready_retries > 0 || FullLocked(s) ||
           (!s.fresh.empty() && s.fresh.front()->put_time + options_.max_buffered_time <= now);
  }

  // When the next Poll may have something to do for this shard: `now` if at once,
  // InfiniteFuture() if only a Put can change anything. `all`: the view of Flush and of a Put
  // waiting for room, where any ready record is due, and so is a call another thread is making
  // (they wait for it on the shard's sender role, in PollShard, not on the clock: a
  // SimulatedClock must not move because another thread was sending).
  absl::Time NextEventLocked(const ShardBuffer& s, absl::Time now, bool all) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    if (all && s.in_flight_count > 0) return now;
    absl::Time t = absl::InfiniteFuture();
    if (const Pending* oldest = s.all.front()) t = oldest->put_time + options_.record_ttl;
    if (!s.backoff.empty()) t = std::min(t, s.backoff.begin()->first);
    if (s.ready.empty()) return t;
    if (all || s.ready_retries > 0 || FullLocked(s)) return now;
    if (!s.fresh.empty()) t = std::min(t, s.fresh.front()->put_time + options_.max_buffered_time);
    return t;
  }

  // The earliest NextEventLocked over the shards of the current map.
  absl::Time NextEvent(absl::Time now, bool all) const {
    absl::Time t = absl::InfiniteFuture();
    const ShardMap* map = map_.load(std::memory_order_acquire);
    for (const std::unique_ptr<ShardBuffer>& sp : map->shards) {
      MutexLock lock(&sp->mu);
      t = std::min(t, NextEventLocked(*sp, now, all));
      if (t <= now) return now;
    }
    // A refresh moved the records meanwhile: look again at once.
    if (map != map_.load(std::memory_order_acquire)) return now;
    return t;
  }

  // Puts the heads set aside (Put after the Poll began) back at the front of the ready list.
  void RestoreDeferredLocked(ShardBuffer& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.send_mu, s.mu) {
    for (auto it = s.deferred.rbegin(); it != s.deferred.rend(); ++it) {
      s.ready.PushFront(*it);
      if ((*it)->attempts > 0) ++s.ready_retries;
    }
    s.deferred.clear();
  }

  // One PutRecords call of the shard's ready heads (at most one per key), skipping those Put
  // after `snapshot` (set aside in s.deferred; restored when the shard has nothing more to send
  // or is throttled).
  Round SendRound(ShardBuffer& s, uint64_t snapshot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.send_mu)
      ABSL_LOCKS_EXCLUDED(s.mu) {
    const auto max_records = static_cast<size_t>(options_.max_batch_records);
    size_t n = 0;
    {
      MutexLock lock(&s.mu);
      if (s.retired) return Round::kEmpty;
      size_t bytes = 0;
      while (n < max_records && !s.ready.empty()) {
        Pending* r = s.ready.front();
        s.ready.Remove(r);
        if (r->attempts > 0) --s.ready_retries;
        if (r->id > snapshot) {
          s.deferred.push_back(r);
          continue;
        }
        if (n > 0 && bytes + r->bytes > batch_bytes_) {
          s.ready.PushFront(r);
          if (r->attempts > 0) ++s.ready_retries;
          break;
        }
        if (r->in_fresh) {
          s.fresh.Remove(r);
          s.fresh_bytes -= r->bytes;
          r->in_fresh = false;
        }
        r->state = HeadState::kInFlight;
        bytes += r->bytes;
        if (s.batch.size() == n) s.batch.emplace_back();
        if (s.in_flight.size() == n) s.in_flight.push_back(nullptr);
        PutRecordsEntry& e = s.batch[n];
        e.partition_key.swap(r->key);
        e.data.swap(r->data);
        // The MD5 is already known; as an explicit hash key it routes exactly the same.
        e.explicit_hash_key = r->hash;
        s.in_flight[n++] = r;
      }
      if (n == 0) {
        RestoreDeferredLocked(s);
        return Round::kEmpty;
      }
      ++s.stats.put_records_calls;
      s.stats.kinesis_records_sent += static_cast<int64_t>(n);
      s.in_flight_count = n;
    }

    const absl::StatusOr<PutRecordsResult> result =
        stream_->PutRecords(absl::MakeConstSpan(s.batch.data(), n));

    bool stop = false;
    {
      MutexLock lock(&s.mu);
      s.in_flight_count = 0;
      const absl::Time now = clock_->Now();
      for (size_t k = 0; k < n; ++k) {
        s.in_flight[k]->key.swap(s.batch[k].partition_key);
        s.in_flight[k]->data.swap(s.batch[k].data);
      }
      for (size_t k = 0; k < n; ++k) {
        Pending* r = s.in_flight[k];
        if (!result.ok()) {
          stop |= RetryOrFailLocked(
              s, r, GetErrorCode(result.status()),
              std::string_view(result.status().message().data(), result.status().message().size()),
              now);
        } else if (k >= result->entries.size()) {
          stop |= RetryOrFailLocked(s, r, ErrorCode::kInternalFailure,
                                    "PutRecords returned too few results", now);
        } else if (const PutRecordsResultEntry& e = result->entries[k]; e.ok()) {
          if (e.shard_id != s.id) map_stale_.store(true, std::memory_order_relaxed);
          ResolveHeadLocked(s, r, PutRecordResult{e.shard_id, e.sequence_number});
        } else {
          stop |= RetryOrFailLocked(s, r, e.error_code, e.error_message, now);
        }
      }
      if (stop) RestoreDeferredLocked(s);
      TakeResolvedLocked(s);
    }
    RunCompletions(s);
    return stop ? Round::kThrottled : Round::kSent;
  }

  // One shard's step of a Poll: expires, releases passed backoffs, and if the shard is due (any
  // ready head, with `all`) sends its heads buffered up to `snapshot`, in rounds, until none are
  // left or it is throttled. Waits for the shard's sender role if a Put holds it.
  void PollShard(ShardBuffer& s, bool all, uint64_t snapshot) ABSL_LOCKS_EXCLUDED(s.send_mu) {
    MutexLock role(&s.send_mu);
    bool due;
    {
      MutexLock lock(&s.mu);
      if (s.retired) return;
      const absl::Time now = clock_->Now();
      ExpireLocked(s, now);
      ReleaseBackoffsLocked(s, now);
      due = !s.ready.empty() && (all || DueLocked(s, now));
      TakeResolvedLocked(s);
    }
    RunCompletions(s);
    if (!due) return;
    s.deferred.clear();
    while (SendRound(s, snapshot) == Round::kSent) {
    }
  }

  void PollAll(bool all) {
    if (map_stale_.load(std::memory_order_relaxed)) RefreshShardMap();
    const uint64_t snapshot = last_id_.load(std::memory_order_acquire);
    const ShardMap* map = map_.load(std::memory_order_acquire);
    for (const std::unique_ptr<ShardBuffer>& s : map->shards) PollShard(*s, all, snapshot);
  }

  // ---- Flush, worker, teardown ----

  void Poll() {
    if (t_in_callbacks_of == this) return;
    PollAll(/*all=*/false);
  }

  void Flush() ABSL_LOCKS_EXCLUDED(waiters_mu_) {
    if (t_in_callbacks_of == this) return;
    const uint64_t target = last_id_.load(std::memory_order_acquire);
    // Woken when records resolve (RunCompletions), on whichever thread.
    internal::Waker waker;
    AddWaiter(&waker);
    FlushUntil(target, waker);
    RemoveWaiter(&waker);
  }

  // Whether a record Put up to `target` is outstanding; sets `wake` to NextEvent's answer.
  bool PendingUpTo(uint64_t target, absl::Time now, absl::Time& wake) const {
    for (;;) {
      const ShardMap* map = map_.load(std::memory_order_acquire);
      bool pending = false;
      wake = absl::InfiniteFuture();
      for (const std::unique_ptr<ShardBuffer>& sp : map->shards) {
        MutexLock lock(&sp->mu);
        if (const Pending* oldest = sp->all.front(); oldest != nullptr && oldest->id <= target) {
          pending = true;
        }
        wake = std::min(wake, NextEventLocked(*sp, now, /*all=*/true));
      }
      if (map == map_.load(std::memory_order_acquire)) return pending;
    }
  }

  // Flush's loop: sends, then waits on the clock (Clock::WaitFor: a SimulatedClock moves
  // forward) until the next retry is due or another thread resolves records, until every record
  // up to `target` has resolved.
  void FlushUntil(uint64_t target, internal::Waker& waker) {
    for (;;) {
      PollAll(/*all=*/true);
      const absl::Time now = clock_->Now();
      absl::Time wake;
      if (!PendingUpTo(target, now, wake)) return;
      if (wake <= now) continue;
      if (wake == absl::InfiniteFuture()) {  // not expected: a pending record has an event
        std::this_thread::yield();
        continue;
      }
      const bool woken = clock_->WaitFor(wake - now, waker);
      // The wait ended unwoken with the clock where it was: a clock that stands still while one
      // waits (neither SystemClock nor SimulatedClock does; a Clock whose time only the
      // application moves may). Nothing more can happen until someone moves it: return rather
      // than hang.
      if (!woken && clock_->Now() == now) return;
    }
  }

  // Tells the worker to look at the buffer now. Takes no lock while the worker is busy.
  void WakeWorker() {
    worker_waker_.MarkPending();
    worker_waker_.Wake();
  }

  void WorkerLoop() {
    for (;;) {
      PollAll(/*all=*/false);
      const absl::Time now = clock_->Now();
      const absl::Time wake = NextEvent(now, /*all=*/false);
      if (stop_.load(std::memory_order_acquire)) return;
      // Until the next record is due on the clock (InfiniteFuture: until a Put), or a Put or Stop
      // wakes it. Under a SimulatedClock the worker sleeps until the clock is advanced.
      if (wake > now) clock_->WaitUntil(wake, worker_waker_);
      if (stop_.load(std::memory_order_acquire)) return;
    }
  }

  absl::Status Start() ABSL_LOCKS_EXCLUDED(worker_mu_) {
    MutexLock lock(&worker_mu_);
    if (worker_.joinable()) return ResourceInUseError("the producer's worker is already running");
    stop_.store(false, std::memory_order_relaxed);
    worker_running_.store(true, std::memory_order_release);
    worker_ = std::thread([this] { WorkerLoop(); });
    return absl::OkStatus();
  }

  void Stop() ABSL_LOCKS_EXCLUDED(worker_mu_) {
    if (t_in_callbacks_of == this) return;
    MutexLock lock(&worker_mu_);
    if (!worker_.joinable()) return;
    stop_.store(true, std::memory_order_release);
    worker_waker_.Interrupt();
    worker_.join();
    worker_ = std::thread();
    worker_running_.store(false, std::memory_order_release);
  }

  // The destructor's last step: fails whatever Flush could not resolve.
  void FailAll() {
    const ShardMap* map = map_.load(std::memory_order_acquire);
    for (const std::unique_ptr<ShardBuffer>& sp : map->shards) {
      ShardBuffer& s = *sp;
      MutexLock role(&s.send_mu);
      {
        MutexLock lock(&s.mu);
        while (Pending* r = s.all.front()) {
          ResolveHeadLocked(s, r,
                            InternalFailureError(absl::StrFormat(
                                "the Producer was destroyed before the record was written (%d "
                                "attempt%s)",
                                r->attempts, r->attempts == 1 ? "" : "s")));
        }
        TakeResolvedLocked(s);
      }
      RunCompletions(s);
    }
  }

  ProducerStats Stats() const {
    ProducerStats total;
    for (const ShardMap* map = map_.load(std::memory_order_acquire); map != nullptr;
         map = map->previous) {
      for (const std::unique_ptr<ShardBuffer>& sp : map->shards) {
        MutexLock lock(&sp->mu);
        const ProducerStats s = sp->stats;
        total.user_records_put += s.user_records_put;
        total.user_records_written += s.user_records_written;
        total.user_records_failed += s.user_records_failed;
        total.user_records_expired += s.user_records_expired;
        total.put_records_calls += s.put_records_calls;
        total.kinesis_records_sent += s.kinesis_records_sent;
        total.kinesis_records_retried += s.kinesis_records_retried;
      }
    }
    const int64_t refused = refused_.load(std::memory_order_relaxed);
    total.user_records_put += refused;
    total.user_records_failed += refused;
    total.user_records_refused = refused;
    total.shard_map_refreshes = refreshes_.load(std::memory_order_relaxed);
    return total;
  }

  StreamApi* const stream_;
  const ProducerOptions options_;
  const std::shared_ptr<Clock> clock_;
  const size_t max_record_bytes_;
  const size_t batch_bytes_;

  // The current shard map (the newest of maps_). Read without a lock by Put; replaced by
  // RefreshShardMap.
  std::atomic<ShardMap*> map_{nullptr};
  // Every map this producer has had, oldest first. refresh_mu_ serialises the refreshes; it is
  // taken before any shard's locks, and by nothing that may hold one.
  Mutex refresh_mu_;
  std::vector<std::unique_ptr<ShardMap>> maps_ ABSL_GUARDED_BY(refresh_mu_);
  std::atomic<bool> map_stale_{false};

  // The two counters every Put touches, on a line of their own.
  alignas(64) std::atomic<size_t> outstanding_{0};
  std::atomic<uint64_t> last_id_{0};  // the last id handed to a record (Put order)
  alignas(64) std::atomic<uint64_t> rng_;
  std::atomic<int64_t> refused_{0};
  std::atomic<int64_t> refreshes_{0};

  // The wakers of the Flush calls and blocked Puts in progress (RunCompletions wakes them).
  Mutex waiters_mu_;
  std::vector<internal::Waker*> waiters_ ABSL_GUARDED_BY(waiters_mu_);
  std::atomic<int> waiter_count_{0};

  // The worker. worker_mu_ serialises Start and Stop; the worker sleeps on worker_waker_, which
  // a Put (WakeWorker) and Stop wake.
  Mutex worker_mu_;
  std::thread worker_ ABSL_GUARDED_BY(worker_mu_);
  std::atomic<bool> worker_running_{false};
  std::atomic<bool> stop_{false};
  internal::Waker worker_waker_;
};

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(StreamApi& stream,
                                                           ProducerOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  absl::StatusOr<std::vector<ShardDescription>> open = ListOpenShards(stream);
  if (!open.ok()) return open.status();
  auto impl = std::make_unique<Impl>(stream, options);
  {
    MutexLock lock(&impl->refresh_mu_);
    impl->maps_.push_back(MakeShardMap(*open));
    impl->map_.store(impl->maps_.back().get(), std::memory_order_release);
  }
  return std::unique_ptr<Producer>(new Producer(std::move(impl)));
}

Producer::Producer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Producer::~Producer() {
  impl_->Stop();
  impl_->Flush();
  impl_->FailAll();
}

std::future<absl::StatusOr<PutRecordResult>> Producer::Put(std::string_view partition_key,
                                                           std::string_view data) {
  std::promise<Result> promise;
  std::future<Result> future = promise.get_future();
  impl_->Put(partition_key, data, std::move(promise), nullptr);
  return future;
}

void Producer::Put(std::string_view partition_key, std::string_view data, Callback callback) {
  impl_->Put(partition_key, data, std::nullopt, std::move(callback));
}

void Producer::Flush() { impl_->Flush(); }

void Producer::Poll() { impl_->Poll(); }

absl::Status Producer::Start() { return impl_->Start(); }

void Producer::Stop() { impl_->Stop(); }

size_t Producer::outstanding() const { return impl_->outstanding_.load(std::memory_order_relaxed); }

ProducerStats Producer::stats() const { return impl_->Stats(); }

const ProducerOptions& Producer::options() const { return impl_->options_; }

}  // namespace rill
