#include "rill/stream/producer.h"

#include <algorithm>
#include <atomic>
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
#include "rill/stream/stream.h"
#include "stream/producer_buffer.h"

namespace rill {
namespace {

using Result = absl::StatusOr<PutRecordResult>;
using internal::Mutex;
using internal::MutexLock;
using internal::producer::HeadState;
using internal::producer::KeyTable;
using internal::producer::kMaxSpareStringCapacity;
using internal::producer::List;
using internal::producer::Pending;
using internal::producer::RecordPool;
using internal::producer::ShardBuffer;

constexpr std::string_view kExpiredPrefix = "Expired:";

// Set while a producer runs callbacks on this thread, so that Poll, Flush and Stop called from a
// callback can refuse instead of deadlocking on the sender lock the callback runs under.
thread_local const void* t_in_callbacks_of = nullptr;

struct Completion {
  std::optional<std::promise<Result>> promise;
  Producer::Callback callback;
  Result result;
};

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The stream's open shards, sorted by starting hash key.
absl::StatusOr<std::vector<ShardDescription>> ListOpenShards(const Stream& stream) {
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

struct Producer::Impl {
  Impl(Stream& stream, const ProducerOptions& options)
      : stream_(&stream),
        options_(options),
        clock_(stream.options().clock),
        max_record_bytes_(stream.options().max_record_bytes),
        batch_bytes_(std::min(options.max_batch_bytes, stream.options().max_put_records_bytes)),
        rng_(options.jitter_seed) {}

  // ---- Put ----

  void Put(std::string_view key, std::string_view data, std::optional<std::promise<Result>> promise,
           Callback callback) {
    absl::Status refused;
    if (key.size() + data.size() > max_record_bytes_) {
      refused = InvalidArgumentError(
          absl::StrFormat("record of %d bytes (key and data) exceeds the stream's maximum of %d "
                          "bytes",
                          key.size() + data.size(), max_record_bytes_));
    }
    // The stream's per-thread cache of recent keys' MD5: the same value, without rehashing a
    // key that the thread put a moment ago.
    const HashKey hash = refused.ok() ? internal::CachedPartitionKeyHash(key) : HashKey();
    // A large record is copied before taking the lock, so that other threads' Puts do not wait
    // for the copy; small ones go straight into a reused slot's strings.
    std::string large_data;
    if (refused.ok() && data.size() > kMaxSpareStringCapacity) large_data.assign(data);
    bool wake = false;
    {
      MutexLock lock(&mu_);
      ++stats_.user_records_put;
      if (refused.ok() &&
          outstanding_.load(std::memory_order_relaxed) >= options_.max_outstanding_records) {
        refused =
            LimitExceededError(absl::StrFormat("the producer already holds %d outstanding records "
                                               "(max_outstanding_records)",
                                               options_.max_outstanding_records));
      }
      if (!refused.ok()) {
        ++stats_.user_records_failed;
        ++stats_.user_records_refused;
      } else {
        wake = EnqueueLocked(key, data, large_data, hash, std::move(promise), std::move(callback));
      }
    }
    if (!refused.ok()) {
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
    if (wake && worker_running_.load(std::memory_order_acquire)) WakeWorker();
  }

  // Buffers a record (its data already copied into `large_data` if large; the slot's old buffer
  // is left there, to be freed outside the lock); returns whether the worker should look at the
  // buffer now.
  bool EnqueueLocked(std::string_view key, std::string_view data, std::string& large_data,
                     HashKey hash, std::optional<std::promise<Result>> promise, Callback callback)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Pending* r = pool_.New();
    r->key.assign(key.data(), key.size());
    if (data.size() > kMaxSpareStringCapacity) {
      r->data.swap(large_data);
    } else {
      r->data.assign(data.data(), data.size());
    }
    r->bytes = key.size() + data.size();
    r->hash = hash;
    r->id = ++last_id_;
    // Read under the lock, so that Put order and put times agree (the TTL scan relies on it).
    r->put_time = clock_->Now();
    r->promise = std::move(promise);
    r->callback = std::move(callback);
    r->shard = RouteLocked(hash);
    ShardBuffer& s = *shards_[r->shard];

    if (const auto [chain, inserted] = keys_.FindOrInsert(hash.value(), r); !inserted) {
      chain->second.tail->key_next = r;
      chain->second.tail = r;
    } else {
      r->head = true;
      r->state = HeadState::kReady;
      s.ready.PushBack(r);
    }
    r->in_fresh = true;
    s.fresh.PushBack(r);
    const bool bytes_crossed =
        s.fresh_bytes < batch_bytes_ && s.fresh_bytes + r->bytes >= batch_bytes_;
    s.fresh_bytes += r->bytes;
    const bool was_empty = all_.empty();
    all_.PushBack(r);
    outstanding_.fetch_add(1, std::memory_order_relaxed);
    return was_empty || bytes_crossed ||
           s.fresh.size() == static_cast<size_t>(options_.max_batch_records) ||
           options_.max_buffered_time == absl::ZeroDuration();
  }

  uint32_t RouteLocked(HashKey hash) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = std::upper_bound(starts_.begin(), starts_.end(), hash);
    return it == starts_.begin() ? 0 : static_cast<uint32_t>(it - starts_.begin() - 1);
  }

  // ---- shard map ----

  // Replaces the shard map and files every outstanding record under its new predicted shard, in
  // Put order so that each fresh list stays in Put order. No record is in flight.
  void InstallShardsLocked(const std::vector<ShardDescription>& open)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::unique_ptr<ShardBuffer>> shards;
    std::vector<HashKey> starts;
    for (const ShardDescription& d : open) {
      shards.push_back(std::make_unique<ShardBuffer>());
      shards.back()->id = d.shard_id;
      starts.push_back(d.hash_key_range.starting_hash_key);
    }
    shards_.swap(shards);
    starts_.swap(starts);
    for (Pending* r = all_.front(); r != nullptr; r = List<&Pending::all>::Next(r)) {
      r->shard = RouteLocked(r->hash);
      ShardBuffer& s = *shards_[r->shard];
      if (r->in_fresh) {
        s.fresh.PushBack(r);
        s.fresh_bytes += r->bytes;
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

  void RefreshShardMap() ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    map_stale_.store(false, std::memory_order_relaxed);
    absl::StatusOr<std::vector<ShardDescription>> open = ListOpenShards(*stream_);
    if (!open.ok()) return;  // keep predicting with the old map; records still land correctly
    MutexLock lock(&mu_);
    ++stats_.shard_map_refreshes;
    InstallShardsLocked(*open);
  }

  // ---- resolution ----

  // Resolves `r`, which is the head of its key and not in flight unless the caller just took it
  // out of a call: unlinks it, promotes the next record of its key, queues the completion.
  void ResolveHeadLocked(Pending* r, Result result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_, mu_) {
    if (result.ok()) {
      ++stats_.user_records_written;
    } else {
      ++stats_.user_records_failed;
    }
    ShardBuffer& s = *shards_[r->shard];
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
    const auto chain = keys_.Find(r->hash.value());
    if (Pending* next = r->key_next) {
      chain->second.head = next;
      next->head = true;
      next->state = HeadState::kReady;
      shards_[next->shard]->ready.PushBack(next);  // never attempted: not a retry
    } else {
      keys_.Erase(chain);
    }
    all_.Remove(r);
    outstanding_.fetch_sub(1, std::memory_order_relaxed);
    done_.push_back(Completion{std::move(r->promise), std::move(r->callback), std::move(result)});
    pool_.Release(r);
  }

  void ExpireHeadLocked(Pending* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_, mu_) {
    ++stats_.user_records_expired;
    std::string message = absl::StrFormat("%s record TTL of %s passed after %d attempt%s",
                                          kExpiredPrefix, absl::FormatDuration(options_.record_ttl),
                                          r->attempts, r->attempts == 1 ? "" : "s");
    if (r->attempts > 0) {
      absl::StrAppendFormat(&message, "; last error: %s: %s", ErrorCodeName(r->last_code),
                            r->last_message);
    }
    ResolveHeadLocked(r, ProvisionedThroughputExceededError(message));
  }

  // Fails every record whose TTL has passed. The oldest outstanding record is always the head of
  // its key (a key's records are in Put order), so the scan from the front only meets heads.
  void ExpireLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_, mu_) {
    while (Pending* r = all_.front()) {
      if (now < r->put_time + options_.record_ttl || !r->head) break;
      ExpireHeadLocked(r);
    }
  }

  absl::Duration BackoffLocked(int attempts) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::Duration d = options_.initial_backoff;
    for (int i = 1; i < attempts && d < options_.max_backoff; ++i) d *= 2;
    d = std::min(d, options_.max_backoff);
    const int64_t ns = absl::ToInt64Nanoseconds(d);
    const int64_t half = ns / 2;
    const auto span = static_cast<uint64_t>(ns - half) + 1;
    return absl::Nanoseconds(half + static_cast<int64_t>(SplitMix64(rng_) % span));
  }

  // Handles a refused entry of an in-flight head. Returns whether it was a retryable refusal
  // (which stops the shard's sending for this Poll).
  bool RetryOrFailLocked(Pending* r, ErrorCode code, std::string_view message, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_, mu_) {
    if (code != ErrorCode::kProvisionedThroughputExceeded && code != ErrorCode::kInternalFailure) {
      ResolveHeadLocked(
          r, MakeError(code == ErrorCode::kOk ? ErrorCode::kInternalFailure : code, message));
      return false;
    }
    ++stats_.kinesis_records_retried;
    ++r->attempts;
    r->last_code = code;
    r->last_message.assign(message.data(), message.size());
    if (now >= r->put_time + options_.record_ttl) {
      ExpireHeadLocked(r);
      return true;
    }
    r->retry_at = now + BackoffLocked(r->attempts);
    r->state = HeadState::kBackoff;
    r->backoff_it = shards_[r->shard]->backoff.emplace(r->retry_at, r);
    return true;
  }

  // Runs the queued completions, outside mu_ (so callbacks may Put) but under poll_mu_ (so one
  // key's completions run in order), then wakes the Flush calls waiting for progress.
  void RunCompletions() ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) ABSL_LOCKS_EXCLUDED(mu_) {
    if (done_.empty()) return;
    const void* saved = t_in_callbacks_of;
    t_in_callbacks_of = this;
    for (Completion& c : done_) {
      if (c.promise) {
        c.promise->set_value(std::move(c.result));
      } else if (c.callback) {
        c.callback(std::move(c.result));
      }
    }
    t_in_callbacks_of = saved;
    done_.clear();
    for (internal::Waker* waker : flush_waiters_) {
      waker->MarkPending();
      waker->Wake();
    }
  }

  // ---- sending ----

  void ReleaseBackoffsLocked(ShardBuffer& s, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!s.backoff.empty() && s.backoff.begin()->first <= now) {
      Pending* r = s.backoff.begin()->second;
      s.backoff.erase(s.backoff.begin());
      r->state = HeadState::kReady;
      s.ready.PushBack(r);
      ++s.ready_retries;
    }
  }

  bool FullLocked(const ShardBuffer& s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return s.fresh.size() >= static_cast<size_t>(options_.max_batch_records) ||
           s.fresh_bytes >= batch_bytes_;
  }

  bool DueLocked(const ShardBuffer& s, absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return s.ready_retries > 0 || FullLocked(s) ||
           (!s.fresh.empty() && s.fresh.front()->put_time + options_.max_buffered_time <= now);
  }

  // When the next Poll may have something to do: `now` if at once, InfiniteFuture() if only a Put
  // can change anything. `all`: Flush's view, where any ready record is due.
  absl::Time NextEventLocked(absl::Time now, bool all) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::Time t = absl::InfiniteFuture();
    if (const Pending* oldest = all_.front()) t = oldest->put_time + options_.record_ttl;
    for (const std::unique_ptr<ShardBuffer>& sp : shards_) {
      const ShardBuffer& s = *sp;
      if (!s.backoff.empty()) t = std::min(t, s.backoff.begin()->first);
      if (s.ready.empty()) continue;
      if (all || s.ready_retries > 0 || FullLocked(s)) return now;
      if (!s.fresh.empty()) t = std::min(t, s.fresh.front()->put_time + options_.max_buffered_time);
    }
    return t;
  }

  void PollLocked(bool all) ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    if (map_stale_.load(std::memory_order_relaxed)) RefreshShardMap();
    uint64_t snapshot;
    due_.clear();
    {
      MutexLock lock(&mu_);
      const absl::Time now = clock_->Now();
      ExpireLocked(now);
      snapshot = last_id_;
      for (uint32_t i = 0; i < shards_.size(); ++i) {
        ShardBuffer& s = *shards_[i];
        ReleaseBackoffsLocked(s, now);
        if (!s.ready.empty() && (all || DueLocked(s, now))) due_.push_back(i);
      }
    }
    RunCompletions();
    for (uint32_t index : due_) SendShard(index, snapshot);
  }

  // Puts the heads set aside (Put after the Poll began) back at the front of the ready list.
  void RestoreDeferredLocked(ShardBuffer& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_, mu_) {
    for (auto it = deferred_.rbegin(); it != deferred_.rend(); ++it) {
      s.ready.PushFront(*it);
      if ((*it)->attempts > 0) ++s.ready_retries;
    }
    deferred_.clear();
  }

  // Sends one shard's ready heads in rounds of one PutRecords call, until none that were buffered
  // when the Poll began are left, or an entry is refused with a retryable code.
  void SendShard(uint32_t index, uint64_t snapshot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    deferred_.clear();
    const auto max_records = static_cast<size_t>(options_.max_batch_records);
    for (;;) {
      size_t n = 0;
      ShardId predicted;
      {
        MutexLock lock(&mu_);
        ShardBuffer& s = *shards_[index];
        predicted = s.id;
        size_t bytes = 0;
        while (n < max_records && !s.ready.empty()) {
          Pending* r = s.ready.front();
          s.ready.Remove(r);
          if (r->attempts > 0) --s.ready_retries;
          if (r->id > snapshot) {
            deferred_.push_back(r);
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
          if (batch_.size() == n) batch_.emplace_back();
          if (in_flight_.size() == n) in_flight_.push_back(nullptr);
          PutRecordsEntry& e = batch_[n];
          e.partition_key.swap(r->key);
          e.data.swap(r->data);
          // The MD5 is already known; as an explicit hash key it routes exactly the same.
          e.explicit_hash_key = r->hash;
          in_flight_[n++] = r;
        }
        if (n == 0) {
          RestoreDeferredLocked(s);
          return;
        }
        ++stats_.put_records_calls;
        stats_.kinesis_records_sent += static_cast<int64_t>(n);
      }

      const absl::StatusOr<PutRecordsResult> result =
          stream_->PutRecords(absl::MakeConstSpan(batch_.data(), n));

      bool stop = false;
      {
        MutexLock lock(&mu_);
        const absl::Time now = clock_->Now();
        for (size_t k = 0; k < n; ++k) {
          in_flight_[k]->key.swap(batch_[k].partition_key);
          in_flight_[k]->data.swap(batch_[k].data);
        }
        for (size_t k = 0; k < n; ++k) {
          Pending* r = in_flight_[k];
          if (!result.ok()) {
            stop |= RetryOrFailLocked(r, GetErrorCode(result.status()),
                                      std::string_view(result.status().message().data(),
                                                       result.status().message().size()),
                                      now);
          } else if (k >= result->entries.size()) {
            stop |= RetryOrFailLocked(r, ErrorCode::kInternalFailure,
                                      "PutRecords returned too few results", now);
          } else if (const PutRecordsResultEntry& e = result->entries[k]; e.ok()) {
            if (e.shard_id != predicted) map_stale_.store(true, std::memory_order_relaxed);
            ResolveHeadLocked(r, PutRecordResult{e.shard_id, e.sequence_number});
          } else {
            stop |= RetryOrFailLocked(r, e.error_code, e.error_message, now);
          }
        }
        if (stop) RestoreDeferredLocked(*shards_[index]);
      }
      RunCompletions();
      if (stop) return;
    }
  }

  // ---- Flush, worker, teardown ----

  void Poll() {
    if (t_in_callbacks_of == this) return;
    MutexLock lock(&poll_mu_);
    PollLocked(/*all=*/false);
  }

  void Flush() ABSL_LOCKS_EXCLUDED(poll_mu_, mu_) {
    if (t_in_callbacks_of == this) return;
    uint64_t target;
    {
      MutexLock lock(&mu_);
      target = last_id_;
    }
    // Woken when records resolve (RunCompletions), on whichever thread.
    internal::Waker waker;
    {
      MutexLock lock(&poll_mu_);
      flush_waiters_.push_back(&waker);
    }
    FlushUntil(target, waker);
    MutexLock lock(&poll_mu_);
    flush_waiters_.erase(std::find(flush_waiters_.begin(), flush_waiters_.end(), &waker));
  }

  // Flush's loop: sends, then waits on the clock (Clock::WaitFor: a SimulatedClock moves
  // forward) until the next retry is due or another thread resolves records, until every record
  // up to `target` has resolved.
  void FlushUntil(uint64_t target, internal::Waker& waker) ABSL_LOCKS_EXCLUDED(poll_mu_, mu_) {
    for (;;) {
      absl::Time now;
      absl::Time wake;
      {
        MutexLock poll_lock(&poll_mu_);
        PollLocked(/*all=*/true);
        MutexLock lock(&mu_);
        const Pending* oldest = all_.front();
        if (oldest == nullptr || oldest->id > target) return;
        now = clock_->Now();
        wake = NextEventLocked(now, /*all=*/true);
      }
      if (wake <= now) continue;
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

  void WorkerLoop() ABSL_LOCKS_EXCLUDED(poll_mu_, mu_) {
    for (;;) {
      absl::Time now;
      absl::Time wake;
      {
        MutexLock poll_lock(&poll_mu_);
        PollLocked(/*all=*/false);
        MutexLock lock(&mu_);
        now = clock_->Now();
        wake = NextEventLocked(now, /*all=*/false);
      }
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
    MutexLock poll_lock(&poll_mu_);
    {
      MutexLock lock(&mu_);
      while (Pending* r = all_.front()) {
        ResolveHeadLocked(r, InternalFailureError(absl::StrFormat(
                                 "the Producer was destroyed before the record was written (%d "
                                 "attempt%s)",
                                 r->attempts, r->attempts == 1 ? "" : "s")));
      }
    }
    RunCompletions();
  }

  Stream* const stream_;
  const ProducerOptions options_;
  const std::shared_ptr<Clock> clock_;
  const size_t max_record_bytes_;
  const size_t batch_bytes_;

  // poll_mu_ serialises the senders (Poll, Flush, the worker, the destructor): one PutRecords call
  // at a time, completions in order. mu_ guards the buffer and is held only briefly, never across
  // a call to the stream or a callback. Order: poll_mu_, then mu_.
  Mutex poll_mu_;
  Mutex mu_ ABSL_ACQUIRED_AFTER(poll_mu_);

  std::vector<std::unique_ptr<ShardBuffer>> shards_ ABSL_GUARDED_BY(mu_);
  std::vector<HashKey> starts_ ABSL_GUARDED_BY(mu_);  // shards_' starting hash keys
  KeyTable keys_ ABSL_GUARDED_BY(mu_);
  RecordPool pool_ ABSL_GUARDED_BY(mu_);
  List<&Pending::all> all_ ABSL_GUARDED_BY(mu_);
  uint64_t last_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rng_ ABSL_GUARDED_BY(mu_);
  ProducerStats stats_ ABSL_GUARDED_BY(mu_);
  std::atomic<size_t> outstanding_{0};
  std::atomic<bool> map_stale_{false};

  // Scratch of the sender, reused from call to call.
  std::vector<PutRecordsEntry> batch_ ABSL_GUARDED_BY(poll_mu_);
  std::vector<Pending*> in_flight_ ABSL_GUARDED_BY(poll_mu_);
  std::vector<Pending*> deferred_ ABSL_GUARDED_BY(poll_mu_);
  std::vector<uint32_t> due_ ABSL_GUARDED_BY(poll_mu_);
  std::vector<Completion> done_ ABSL_GUARDED_BY(poll_mu_);
  // The wakers of the Flush calls in progress (RunCompletions wakes them).
  std::vector<internal::Waker*> flush_waiters_ ABSL_GUARDED_BY(poll_mu_);

  // The worker. worker_mu_ serialises Start and Stop; the worker sleeps on worker_waker_, which
  // a Put (WakeWorker) and Stop wake.
  Mutex worker_mu_;
  std::thread worker_ ABSL_GUARDED_BY(worker_mu_);
  std::atomic<bool> worker_running_{false};
  std::atomic<bool> stop_{false};
  internal::Waker worker_waker_;
};

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(Stream& stream,
                                                           ProducerOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  absl::StatusOr<std::vector<ShardDescription>> open = ListOpenShards(stream);
  if (!open.ok()) return open.status();
  auto impl = std::make_unique<Impl>(stream, options);
  {
    MutexLock lock(&impl->mu_);
    impl->InstallShardsLocked(*open);
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

ProducerStats Producer::stats() const {
  MutexLock lock(&impl_->mu_);
  return impl_->stats_;
}

const ProducerOptions& Producer::options() const { return impl_->options_; }

}  // namespace rill
