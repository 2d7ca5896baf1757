#include "rill/consume/consumer_group.h"

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"
#include "rill/stream/stream_api.h"

namespace rill {
namespace {

using internal::Mutex;
using internal::MutexLock;

constexpr absl::Duration kEpsilon = absl::Milliseconds(25);  // the KCL's epsilonMillis

std::optional<SequenceNumber> AsSequenceNumber(std::string_view checkpoint) {
  absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(checkpoint);
  if (!s.ok()) return std::nullopt;
  return *s;
}

std::string_view SentinelFor(const StartingPosition& p) {
  switch (p.type) {
    case ShardIteratorType::kTrimHorizon:
      return kCheckpointTrimHorizon;
    case ShardIteratorType::kAtTimestamp:
      return kCheckpointAtTimestamp;
    default:
      return kCheckpointLatest;
  }
}

}  // namespace

struct ConsumerGroup::Workers {
  Mutex mu;
  std::map<std::string, std::unique_ptr<WorkerImpl>, std::less<>> by_id ABSL_GUARDED_BY(mu);
  // Workers of a stream that runs its own groups.
  std::map<std::string, std::unique_ptr<NativeGroupWorker>, std::less<>> native_by_id
      ABSL_GUARDED_BY(mu);
};

class ConsumerGroup::WorkerImpl final : public Worker {
 public:
  WorkerImpl(ConsumerGroup* group, std::string id, RecordProcessorFactory factory)
      : options_(group->options_),
        stream_(group->stream_),
        store_(group->store_),
        id_(std::move(id)),
        factory_(std::move(factory)),
        clock_(stream_.clock()),
        rng_(std::hash<std::string>()(id_)) {}

  ~WorkerImpl() override { StopThread(); }

  const std::string& id() const override { return id_; }

  absl::Status Poll() override {
    MutexLock<Mutex> lock(&poll_mu_);
    if (shut_down_) return ResourceInUseError(absl::StrFormat("worker %s is shut down", id_));
    return PollLocked();
  }

  absl::Status Start() override {
    MutexLock<Mutex> lock(&thread_mu_);
    if (thread_.joinable()) return ResourceInUseError("worker already started");
    stop_ = false;
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  void Shutdown() override {
    StopThread();
    MutexLock<Mutex> lock(&poll_mu_);
    if (shut_down_) return;
    shut_down_ = true;
    // Every processor checkpoints first; their checkpoints and the releases then go to the store
    // in one batch, so that a worker holding 1,000 leases shuts down with one write, not 2,000.
    std::vector<ShardConsumer*> release;
    for (auto& [key, c] : held_) {
      if (c.processor && !c.lost && !c.done) {
        c.defer_writes = true;
        ShardCheckpointer checkpointer(this, &c);
        c.processor->ShutdownRequested(checkpointer);
      }
      if (!c.lost) release.push_back(&c);
    }
    ReleaseAll(release);
    held_.clear();
  }

  // A crash: no callbacks, no release; the leases expire.
  void Crash() {
    StopThread();
    MutexLock<Mutex> lock(&poll_mu_);
    shut_down_ = true;
    held_.clear();
  }

  std::vector<ShardId> held_shards() const override {
    MutexLock<Mutex> lock(&held_view_mu_);
    return held_view_;
  }

  absl::Status Checkpoint(ShardId shard, SequenceNumber sequence_number) override {
    MutexLock<Mutex> lock(&poll_mu_);
    auto it = held_.find(shard.ToString());
    if (!shut_down_ && it != held_.end() && it->second.lost) {
      return ResourceInUseError(it->second.lost_reason);
    }
    if (shut_down_ || it == held_.end()) {
      return ResourceInUseError(
          absl::StrFormat("worker %s does not hold the lease of %s", id_, shard.ToString()));
    }
    ShardCheckpointer checkpointer(this, &it->second);
    return checkpointer.Checkpoint(sequence_number);
  }

 private:
  // One held lease and the processing of its shard.
  struct ShardConsumer {
    ShardId shard;
    Lease lease;  // as last written by this worker
    std::unique_ptr<RecordProcessor> processor;
    std::optional<ShardIterator> iterator;
    std::optional<SequenceNumber> last_delivered;
    // When a LATEST lease first got its iterator: re-obtained before any record was delivered
    // (an expired iterator), it starts at this time, so nothing put in between is skipped.
    std::optional<absl::Time> latest_at;
    bool at_end = false;      // read to its end; waiting for the SHARD_END checkpoint
    bool done = false;        // SHARD_END checkpointed
    bool lost = false;        // a write found someone else's counter
    std::string lost_reason;  // when lost: to whom, for the errors of later checkpoints
    // During Shutdown: checkpoints are kept here and written with the release, in one batch.
    bool defer_writes = false;
    std::optional<std::string> deferred_checkpoint;

    // The checkpoint as the processor last set it (written or deferred).
    const std::string& checkpoint() const {
      return deferred_checkpoint ? *deferred_checkpoint : lease.checkpoint;
    }
  };

  class ShardCheckpointer final : public Checkpointer {
   public:
    ShardCheckpointer(WorkerImpl* worker, ShardConsumer* c) : worker_(worker), c_(c) {}

    absl::Status Checkpoint() override {
      if (c_->at_end) return worker_->WriteCheckpoint(*c_, std::string(kCheckpointShardEnd));
      if (!c_->last_delivered) return absl::OkStatus();
      if (c_->checkpoint() == c_->last_delivered->ToString()) return absl::OkStatus();
      return worker_->WriteCheckpoint(*c_, c_->last_delivered->ToString());
    }

    absl::Status Checkpoint(SequenceNumber sequence_number) override {
      const std::optional<SequenceNumber> last = AsSequenceNumber(c_->checkpoint());
      if ((last && sequence_number < *last) || !c_->last_delivered ||
          sequence_number > *c_->last_delivered) {
        return InvalidArgumentError(absl::StrFormat(
            "checkpoint %s is outside [last checkpoint %s, last delivered %s] for shard %s",
            sequence_number.ToString(), c_->checkpoint(),
            c_->last_delivered ? c_->last_delivered->ToString() : "none", c_->shard.ToString()));
      }
      return worker_->WriteCheckpoint(*c_, sequence_number.ToString());
    }

    std::string last_checkpoint() const override { return c_->checkpoint(); }

   private:
    WorkerImpl* const worker_;
    ShardConsumer* const c_;
  };

  // What this worker has seen of a lease, to judge expiry on its own clock (KCL).
  struct Observed {
    int64_t counter;
    std::string owner;
    absl::Time last_change;
  };

  // Writes `updated` (a changed copy of `*lease`) with the next counter, conditional on the
  // counter `*lease` holds — every lease write of a worker goes through here — and on success
  // makes it the worker's view.
  absl::Status WriteLease(Lease* lease, Lease updated) {
    updated.counter = lease->counter + 1;
    absl::Status s = store_.UpdateLease(options_.application_name, updated, lease->counter);
    if (s.ok()) *lease = std::move(updated);
    return s;
  }

  // kResourceInUse / kResourceNotFound from a conditional write: someone else owns the lease now.
  static bool LeaseTaken(const absl::Status& s) {
    return GetErrorCode(s) == ErrorCode::kResourceInUse ||
           GetErrorCode(s) == ErrorCode::kResourceNotFound;
  }

  // Why `c`'s lease is no longer this worker's, for the checkpoint that found out and the ones
  // after it: the lease as the store holds it now names who took it.
  std::string LostLeaseReason(const ShardConsumer& c) {
    const std::string shard = c.shard.ToString();
    absl::StatusOr<std::optional<Lease>> now =
        store_.GetLease(options_.application_name, c.lease.lease_key);
    if (!now.ok()) {
      return absl::StrFormat(
          "lease on %s was lost: its counter is no longer %d, the one this worker last wrote "
          "(reading the new owner failed: %s); worker '%s' no longer owns the shard",
          shard, c.lease.counter, now.status().ToString(), id_);
    }
    if (!now->has_value()) {
      return absl::StrFormat(
          "lease on %s was lost: it was deleted from the checkpoint store; worker '%s' no longer "
          "owns the shard",
          shard, id_);
    }
    const Lease& theirs = **now;
    const std::string to = theirs.owner.empty() ? std::string("no worker (it was released)")
                                                : absl::StrFormat("worker '%s'", theirs.owner);
    return absl::StrFormat(
        "lease on %s was lost to %s (lease counter %d; this worker last wrote %d); worker '%s' no "
        "longer owns the shard",
        shard, to, theirs.counter, c.lease.counter, id_);
  }

  absl::Status WriteCheckpoint(ShardConsumer& c, std::string checkpoint) {
    if (c.lost) return ResourceInUseError(c.lost_reason);
    if (c.defer_writes) {
      c.deferred_checkpoint = std::move(checkpoint);
      return absl::OkStatus();
    }
    Lease updated = c.lease;
    updated.checkpoint = std::move(checkpoint);
    updated.owner_switches_since_checkpoint = 0;
    absl::Status s = WriteLease(&c.lease, std::move(updated));
    if (LeaseTaken(s)) {
      c.lost = true;
      c.lost_reason = LostLeaseReason(c);
      return ResourceInUseError(c.lost_reason);
    }
    return s;
  }

  // Gives the leases back to the table (owner cleared, with any deferred checkpoint) in one
  // batch: one write and one sync for the stores that batch. Failures are left alone: a lease
  // someone else took is theirs; one the store could not write expires after failover_time.
  void ReleaseAll(const std::vector<ShardConsumer*>& consumers) {
    std::vector<LeaseUpdate> updates;
    updates.reserve(consumers.size());
    for (ShardConsumer* c : consumers) {
      Lease updated = c->lease;
      if (c->deferred_checkpoint) {
        updated.checkpoint = std::move(*c->deferred_checkpoint);
        updated.owner_switches_since_checkpoint = 0;
        c->deferred_checkpoint.reset();
      }
      updated.owner.clear();
      updated.counter = c->lease.counter + 1;
      updates.push_back(LeaseUpdate{std::move(updated), c->lease.counter});
    }
    if (updates.empty()) return;
    absl::StatusOr<std::vector<absl::Status>> results =
        store_.UpdateLeases(options_.application_name, updates);
    if (!results.ok()) return;
    for (size_t i = 0; i < consumers.size(); ++i) {
      if ((*results)[i].ok()) consumers[i]->lease = std::move(updates[i].lease);
    }
  }

  void StopThread() ABSL_LOCKS_EXCLUDED(thread_mu_) {
    std::thread thread;
    {
      MutexLock<Mutex> lock(&thread_mu_);
      stop_ = true;
      thread = std::move(thread_);
    }
    waker_.Interrupt();  // ends the thread's idle wait at once, on any clock
    if (thread.joinable()) thread.join();
  }

  bool stopping() ABSL_LOCKS_EXCLUDED(thread_mu_) {
    MutexLock<Mutex> lock(&thread_mu_);
    return stop_;
  }

  void Run() {
    for (;;) {
      bool read_any = false;
      // Read before the poll: the next one is due idle_time_between_polls after it, so a clock
      // moved on during the poll (a test advancing a SimulatedClock) brings it at once.
      const absl::Time polled = clock_->Now();
      {
        MutexLock<Mutex> lock(&poll_mu_);
        if (shut_down_) return;
        PollLocked().IgnoreError();  // retried on the next round
        read_any = read_any_;
      }
      if (stopping()) return;
      if (!read_any) {
        // On the group's clock: under a SimulatedClock the next poll comes when the test has
        // advanced the clock by the idle time, never on real time.
        clock_->WaitUntil(polled + options_.idle_time_between_polls, waker_);
        if (stopping()) return;
      }
    }
  }

  absl::Duration renew_interval() const {
    return options_.renew_interval > absl::ZeroDuration() ? options_.renew_interval
                                                          : options_.failover_time / 3 - kEpsilon;
  }
  absl::Duration take_interval() const {
    return options_.take_interval > absl::ZeroDuration() ? options_.take_interval
                                                         : 2 * (options_.failover_time + kEpsilon);
  }

  // What identifies the stream's shard list: shard indices only grow, and a list changes only
  // by new shards, closed shards or expired ones, so (count, newest index, closed) tells whether
  // the lease table needs a sync without reading it.
  struct ShardsSeen {
    size_t count = 0;
    uint32_t newest = 0;
    size_t closed = 0;
    friend bool operator==(const ShardsSeen&, const ShardsSeen&) = default;
  };
  static ShardsSeen Fingerprint(const std::vector<ShardDescription>& shards) {
    ShardsSeen seen;
    seen.count = shards.size();
    for (const ShardDescription& d : shards) {
      seen.newest = std::max(seen.newest, d.shard_id.index());
      seen.closed += d.closed() ? 1 : 0;
    }
    return seen;
  }

  // A held shard whose processing waits for its parents to finish.
  bool WaitingOnParents() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    for (const auto& [key, c] : held_) {
      if (!c.processor && !c.done && !c.lost && !c.lease.parent_shard_ids.empty()) return true;
    }
    return false;
  }

  // One round. The lease table is read at most once (ListLeases), and only when something needs
  // it: a sync (the shard list changed), a take, or a shard waiting on its parents; renewals,
  // takes, creations and releases are each one batched write. So a round's cost with a store
  // that batches does not grow with the number of shards' writes.
  absl::Status PollLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    read_any_ = false;
    const absl::Time now = clock_->Now();
    const bool take_due = !last_take_ || now - *last_take_ >= take_interval();
    // A remote stream's ListShards may fail: then this round renews and reads what it holds, and
    // the shard sync waits for a round that lists.
    absl::Status status;
    absl::StatusOr<std::vector<ShardDescription>> listed = stream_.ListShards();
    if (!listed.ok()) status = listed.status();
    const std::vector<ShardDescription> shards =
        listed.ok() ? *std::move(listed) : std::vector<ShardDescription>();
    const ShardsSeen seen = Fingerprint(shards);
    const bool sync_due = listed.ok() && (!synced_ || !(*synced_ == seen));
    std::optional<std::vector<Lease>> table;
    if (take_due || sync_due || WaitingOnParents()) {
      absl::StatusOr<std::vector<Lease>> leases = store_.ListLeases(options_.application_name);
      if (leases.ok()) {
        table = std::move(*leases);
      } else {
        status = leases.status();
      }
    }
    if (table && sync_due) {
      if (absl::Status s = SyncLeases(shards, &*table); s.ok()) {
        synced_ = seen;
      } else if (status.ok()) {
        status = s;
      }
    }
    if (!last_renew_ || now - *last_renew_ >= renew_interval()) {
      Renew();
      last_renew_ = now;
    }
    if (take_due && table) {
      if (absl::Status s = TakeLeases(now, *table); !s.ok() && status.ok()) status = s;
      last_take_ = now;
    }
    if (absl::Status s = ProcessShards(table ? &*table : nullptr); !s.ok() && status.ok()) {
      status = s;
    }
    PublishHeld();
    return status;
  }

  // One lease per unexpired shard, created in one batch and added to `table` (kept in lease-key
  // order); leases of shards gone from the stream are deleted.
  absl::Status SyncLeases(const std::vector<ShardDescription>& shards, std::vector<Lease>* table)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    std::set<std::string, std::less<>> have;
    for (const Lease& l : *table) have.insert(l.lease_key);
    std::set<uint32_t> listed;
    for (const ShardDescription& d : shards) listed.insert(d.shard_id.index());
    std::vector<Lease> missing;
    for (const ShardDescription& d : shards) {
      std::string key = d.shard_id.ToString();
      if (have.count(key) != 0) continue;
      Lease lease;
      lease.lease_key = std::move(key);
      bool parent_listed = false;
      for (const std::optional<ShardId>& p : {d.parent_shard_id, d.adjacent_parent_shard_id}) {
        if (!p) continue;
        lease.parent_shard_ids.push_back(p->ToString());
        parent_listed = parent_listed || listed.count(p->index()) != 0;
      }
      // A child of a shard still in the stream starts at its beginning: its parent's consumers
      // hand over to it at SHARD_END, and nothing may fall between them.
      lease.checkpoint = std::string(parent_listed ? kCheckpointTrimHorizon
                                                   : SentinelFor(options_.initial_position));
      missing.push_back(std::move(lease));
    }
    absl::Status status;
    if (!missing.empty()) {
      absl::StatusOr<std::vector<bool>> created =
          store_.CreateLeasesIfAbsent(options_.application_name, missing);
      if (created.ok()) {
        // Leases another worker created first are left out: their counters are unknown here,
        // and the next read of the table has them.
        for (size_t i = 0; i < missing.size(); ++i) {
          if ((*created)[i]) table->push_back(std::move(missing[i]));
        }
        std::sort(table->begin(), table->end(),
                  [](const Lease& a, const Lease& b) { return a.lease_key < b.lease_key; });
      } else {
        status = created.status();
      }
    }
    for (const Lease& l : *table) {
      absl::StatusOr<ShardId> id = ShardId::Parse(l.lease_key);
      if (id.ok() && listed.count(id->index()) != 0) continue;
      if (held_.count(l.lease_key) != 0) continue;
      // The shard expired from the stream: its lease has nothing left to do. A concurrent write
      // makes the delete fail harmlessly; a later sync retries.
      if (!store_.DeleteLease(options_.application_name, l.lease_key, l.counter).ok()) {
        synced_.reset();
      }
    }
    return status;
  }

  void LoseLease(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    auto it = held_.find(key);
    if (it == held_.end()) return;
    if (it->second.processor && !it->second.done) it->second.processor->LeaseLost();
    held_.erase(it);
  }

  // Renews every held lease with one batched write.
  void Renew() ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    std::vector<std::string> lost;
    std::vector<ShardConsumer*> renewing;
    std::vector<LeaseUpdate> updates;
    for (auto& [key, c] : held_) {
      if (c.lost) {
        lost.push_back(key);
        continue;
      }
      Lease renewed = c.lease;
      renewed.counter = c.lease.counter + 1;
      updates.push_back(LeaseUpdate{std::move(renewed), c.lease.counter});
      renewing.push_back(&c);
    }
    if (!updates.empty()) {
      absl::StatusOr<std::vector<absl::Status>> results =
          store_.UpdateLeases(options_.application_name, updates);
      // A failed call (the store is unavailable): keep the leases and retry next time; if one
      // expires meanwhile, the next write finds out.
      if (results.ok()) {
        for (size_t i = 0; i < renewing.size(); ++i) {
          if ((*results)[i].ok()) {
            renewing[i]->lease = std::move(updates[i].lease);
          } else if (LeaseTaken((*results)[i])) {
            lost.push_back(renewing[i]->lease.lease_key);
          }
        }
      }
    }
    for (const std::string& key : lost) LoseLease(key);
  }

  absl::Status TakeLeases(absl::Time now, const std::vector<Lease>& leases)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    // Observe counters: a lease is expired when its counter has not moved for failover_time.
    std::map<std::string, Observed, std::less<>> seen;
    for (const Lease& l : leases) {
      auto it = observed_.find(l.lease_key);
      if (it == observed_.end() || it->second.counter != l.counter || it->second.owner != l.owner) {
        seen[l.lease_key] = Observed{l.counter, l.owner, now};
      } else {
        seen[l.lease_key] = it->second;
      }
    }
    observed_ = std::move(seen);

    std::vector<const Lease*> active;  // unfinished leases
    for (const Lease& l : leases) {
      if (l.checkpoint != kCheckpointShardEnd) active.push_back(&l);
    }
    auto expired = [&](const Lease& l) ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
      return l.owner.empty() ||
             now - observed_.at(l.lease_key).last_change > options_.failover_time;
    };
    std::map<std::string, int> load;  // live owner -> leases
    for (const Lease* l : active) {
      if (!expired(*l) && l->owner != id_) ++load[l->owner];
    }
    int mine = 0;
    for (const auto& [key, c] : held_) mine += c.done ? 0 : 1;
    const int workers = static_cast<int>(load.size()) + 1;
    const int total = static_cast<int>(active.size());
    int target = total >= workers ? (total + workers - 1) / workers : 1;
    target = std::min(target, options_.max_leases_per_worker);
    if (mine >= target) return absl::OkStatus();
    int needed = target - mine;

    std::vector<const Lease*> chosen;
    std::vector<const Lease*> available;
    for (const Lease* l : active) {
      if (held_.count(l->lease_key) != 0) continue;
      if (expired(*l) || l->owner == id_) available.push_back(l);
    }
    if (!available.empty()) {
      std::shuffle(available.begin(), available.end(), rng_);
      if (static_cast<int>(available.size()) > needed) available.resize(needed);
      chosen = std::move(available);
    } else {
      // Nothing free: steal from the most loaded workers while they are above the target (or at
      // it while this worker needs more than one), up to max_leases_to_steal.
      std::map<std::string, std::vector<const Lease*>> theirs;
      for (const Lease* l : active) {
        if (!expired(*l) && l->owner != id_) theirs[l->owner].push_back(l);
      }
      for (auto& [owner, owned] : theirs) std::shuffle(owned.begin(), owned.end(), rng_);
      const int max_steal = options_.max_leases_to_steal;
      while (needed > 0 && static_cast<int>(chosen.size()) < max_steal) {
        std::string victim;
        int most = 0;
        for (const auto& [owner, count] : load) {
          if (count > most) {
            most = count;
            victim = owner;
          }
        }
        if (victim.empty() || !(most > target || (most == target && needed > 1))) break;
        std::vector<const Lease*>& owned = theirs[victim];
        if (owned.empty()) break;
        chosen.push_back(owned.back());
        owned.pop_back();
        --load[victim];
        --needed;
      }
    }
    return Take(chosen);
  }

  // Takes the leases in one batched write; those written become held.
  absl::Status Take(const std::vector<const Lease*>& leases)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    if (leases.empty()) return absl::OkStatus();
    std::vector<ShardId> shards;
    std::vector<LeaseUpdate> updates;
    for (const Lease* lease : leases) {
      absl::StatusOr<ShardId> shard = ShardId::Parse(lease->lease_key);
      if (!shard.ok()) continue;  // not a shard's lease: never taken
      Lease updated = *lease;
      if (updated.owner != id_) ++updated.owner_switches_since_checkpoint;
      updated.owner = id_;
      updated.counter = lease->counter + 1;
      shards.push_back(*shard);
      updates.push_back(LeaseUpdate{std::move(updated), lease->counter});
    }
    absl::StatusOr<std::vector<absl::Status>> results =
        store_.UpdateLeases(options_.application_name, updates);
    if (!results.ok()) return results.status();
    absl::Status status;
    for (size_t i = 0; i < updates.size(); ++i) {
      const absl::Status& s = (*results)[i];
      if (!s.ok()) {
        // kResourceInUse: another worker wrote it first.
        if (GetErrorCode(s) != ErrorCode::kResourceInUse && status.ok()) status = s;
        continue;
      }
      ShardConsumer c;
      c.shard = shards[i];
      c.lease = std::move(updates[i].lease);
      std::string key = c.lease.lease_key;
      held_.emplace(std::move(key), std::move(c));
    }
    return status;
  }

  // True when every parent of the lease has checkpointed SHARD_END (or is gone): from this
  // worker's own state for parents it holds, else from `table` (this round's read of the lease
  // table, in lease-key order; null: not read this round, so the shard waits for a round that
  // reads it).
  bool ParentsDone(const Lease& lease, const std::vector<Lease>* table) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    for (const std::string& parent : lease.parent_shard_ids) {
      auto held = held_.find(parent);
      if (held != held_.end() && !held->second.lost) {
        if (held->second.lease.checkpoint != kCheckpointShardEnd) return false;
        continue;
      }
      if (table == nullptr) return false;
      auto it = std::lower_bound(
          table->begin(), table->end(), parent,
          [](const Lease& l, const std::string& key) { return l.lease_key < key; });
      if (it != table->end() && it->lease_key == parent && it->checkpoint != kCheckpointShardEnd) {
        return false;
      }
    }
    return true;
  }

  absl::StatusOr<ShardIterator> IteratorFor(const ShardConsumer& c) {
    StartingPosition position = StartingPosition::Latest();
    if (c.last_delivered) {
      position = StartingPosition::AfterSequenceNumber(*c.last_delivered);
    } else if (std::optional<SequenceNumber> s = AsSequenceNumber(c.lease.checkpoint)) {
      position = StartingPosition::AfterSequenceNumber(*s);
    } else if (c.lease.checkpoint == kCheckpointTrimHorizon) {
      position = StartingPosition::TrimHorizon();
    } else if (c.lease.checkpoint == kCheckpointAtTimestamp) {
      position = options_.initial_position;
    } else if (c.latest_at) {
      position = StartingPosition::AtTimestamp(*c.latest_at);
    }
    return stream_.GetShardIterator(c.shard, position);
  }

  absl::Status ProcessShards(const std::vector<Lease>* table)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    absl::Status status;
    std::vector<std::string> lost;
    std::vector<std::string> finished;
    for (auto& [key, c] : held_) {
      absl::Status s = ProcessShard(c, table);
      if (c.lost) lost.push_back(key);
      if (c.done) finished.push_back(key);
      if (!s.ok() && status.ok()) status = s;
    }
    for (const std::string& key : lost) LoseLease(key);
    // A finished shard's lease goes back to the table, where nobody takes it again.
    std::vector<ShardConsumer*> release;
    for (const std::string& key : finished) {
      auto it = held_.find(key);
      if (it != held_.end()) release.push_back(&it->second);
    }
    ReleaseAll(release);
    for (const std::string& key : finished) held_.erase(key);
    return status;
  }

  absl::Status ProcessShard(ShardConsumer& c, const std::vector<Lease>* table)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    if (c.done || c.lost) return absl::OkStatus();
    if (!c.processor) {
      if (c.lease.checkpoint == kCheckpointShardEnd) {
        c.done = true;
        return absl::OkStatus();
      }
      if (!ParentsDone(c.lease, table)) return absl::OkStatus();  // waiting on parent shards
      c.processor = factory_(c.shard);
      if (!c.processor) {
        return InternalFailureError(
            absl::StrFormat("the processor factory of worker %s "
                            "returned no processor for %s",
                            id_, c.shard.ToString()));
      }
      c.processor->Initialize(InitializationInput{c.shard, c.lease.checkpoint});
    }
    ShardCheckpointer checkpointer(this, &c);
    if (c.at_end) {
      // The processor has not checkpointed SHARD_END yet: ask again.
      c.processor->ShardEnded(checkpointer);
      c.done = c.lease.checkpoint == kCheckpointShardEnd;
      return absl::OkStatus();
    }
    if (!c.iterator) {
      absl::StatusOr<ShardIterator> it = IteratorFor(c);
      if (!it.ok()) return it.status();
      c.iterator = *it;
      if (!c.latest_at && c.lease.checkpoint == kCheckpointLatest) c.latest_at = it->issued_at();
    }
    absl::StatusOr<GetRecordsResult> batch = stream_.GetRecords(*c.iterator, options_.max_records);
    if (!batch.ok()) {
      if (GetErrorCode(batch.status()) == ErrorCode::kExpiredIterator) {
        c.iterator.reset();  // re-obtained after the last delivered record next time
        return absl::OkStatus();
      }
      if (GetErrorCode(batch.status()) == ErrorCode::kProvisionedThroughputExceeded) {
        return absl::OkStatus();  // back off until the next poll
      }
      return batch.status();
    }
    if (!batch->records.empty()) {
      read_any_ = true;
      c.last_delivered = batch->records.back().sequence_number;
      c.processor->ProcessRecords(ProcessRecordsInput{absl::MakeConstSpan(batch->records),
                                                      batch->millis_behind_latest, checkpointer});
      if (c.lost) return absl::OkStatus();
    }
    c.iterator = batch->next_shard_iterator;
    if (!c.iterator) {
      c.at_end = true;
      c.processor->ShardEnded(checkpointer);
      c.done = c.lease.checkpoint == kCheckpointShardEnd;
    }
    return absl::OkStatus();
  }

  void PublishHeld() ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    std::vector<ShardId> shards;
    for (const auto& [key, c] : held_) shards.push_back(c.shard);
    std::sort(shards.begin(), shards.end());
    MutexLock<Mutex> lock(&held_view_mu_);
    held_view_ = std::move(shards);
  }

  const ConsumerGroupOptions& options_;
  StreamApi& stream_;
  CheckpointStore& store_;
  const std::string id_;
  const RecordProcessorFactory factory_;
  const std::shared_ptr<Clock> clock_;

  // Serialises polls (Poll, the Start()ed thread, Shutdown, Checkpoint) and guards their state.
  Mutex poll_mu_;
  std::map<std::string, ShardConsumer, std::less<>> held_ ABSL_GUARDED_BY(poll_mu_);
  std::map<std::string, Observed, std::less<>> observed_ ABSL_GUARDED_BY(poll_mu_);
  std::optional<absl::Time> last_renew_ ABSL_GUARDED_BY(poll_mu_);
  std::optional<absl::Time> last_take_ ABSL_GUARDED_BY(poll_mu_);
  // The shard list the lease table was last synced with (PollLocked).
  std::optional<ShardsSeen> synced_ ABSL_GUARDED_BY(poll_mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(poll_mu_);
  bool read_any_ ABSL_GUARDED_BY(poll_mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(poll_mu_) = false;

  // held_shards()' copy of the held shards, so that it need not wait for a poll.
  mutable Mutex held_view_mu_ ABSL_ACQUIRED_AFTER(poll_mu_);
  std::vector<ShardId> held_view_ ABSL_GUARDED_BY(held_view_mu_);

  // The Start()ed thread; it sleeps on waker_ between idle polls.
  Mutex thread_mu_;
  bool stop_ ABSL_GUARDED_BY(thread_mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(thread_mu_);
  internal::Waker waker_;
};

absl::StatusOr<std::unique_ptr<ConsumerGroup>> ConsumerGroup::Create(StreamApi& stream,
                                                                     CheckpointStore& store,
                                                                     ConsumerGroupOptions options) {
  if (!internal::IsKinesisName(options.application_name)) {
    return InvalidArgumentError("application_name must be 1 to 128 characters of [a-zA-Z0-9_.-]");
  }
  const ShardIteratorType type = options.initial_position.type;
  if (type == ShardIteratorType::kAtSequenceNumber ||
      type == ShardIteratorType::kAfterSequenceNumber || options.initial_position.sequence_number ||
      (type == ShardIteratorType::kAtTimestamp) != options.initial_position.timestamp.has_value()) {
    return InvalidArgumentError(
        "initial_position must be TRIM_HORIZON, LATEST or AT_TIMESTAMP with a timestamp");
  }
  if (options.failover_time <= absl::ZeroDuration() ||
      options.renew_interval < absl::ZeroDuration() ||
      options.renew_interval >= options.failover_time ||
      options.take_interval < absl::ZeroDuration() ||
      options.idle_time_between_polls < absl::ZeroDuration()) {
    return InvalidArgumentError(
        "need failover_time > 0, 0 <= renew_interval < failover_time, take_interval >= 0");
  }
  if (options.renew_interval == absl::ZeroDuration() && options.failover_time / 3 <= kEpsilon) {
    return InvalidArgumentError("failover_time must exceed 75 ms, or set renew_interval");
  }
  if (options.max_records < 1 || options.max_records > kMaxGetRecordsLimit) {
    return InvalidArgumentError("max_records must be within [1, 10000]");
  }
  if (options.max_leases_to_steal < 1) {
    return InvalidArgumentError("max_leases_to_steal must be at least 1");
  }
  if (options.max_leases_per_worker < 1) {
    return InvalidArgumentError("max_leases_per_worker must be at least 1");
  }
  return std::unique_ptr<ConsumerGroup>(new ConsumerGroup(stream, store, std::move(options)));
}

ConsumerGroup::ConsumerGroup(StreamApi& stream, CheckpointStore& store,
                             ConsumerGroupOptions options)
    : stream_(stream),
      store_(store),
      options_(std::move(options)),
      native_(dynamic_cast<NativeConsumerGroups*>(&stream)),
      workers_(std::make_unique<Workers>()) {}

ConsumerGroup::~ConsumerGroup() {
  // Stop every thread before any worker goes away.
  MutexLock<Mutex> lock(&workers_->mu);
  for (auto& [id, w] : workers_->by_id) w->Crash();
  for (auto& [id, w] : workers_->native_by_id) w->Crash();
}

absl::StatusOr<Worker*> ConsumerGroup::AddWorker(std::string worker_id,
                                                 RecordProcessorFactory factory) {
  if (worker_id.empty()) return InvalidArgumentError("worker id must not be empty");
  if (!factory) return InvalidArgumentError("a processor factory is required");
  MutexLock<Mutex> lock(&workers_->mu);
  if (workers_->by_id.count(worker_id) != 0 || workers_->native_by_id.count(worker_id) != 0) {
    return InvalidArgumentError(absl::StrFormat("worker %s already exists", worker_id));
  }
  if (native_ != nullptr) {
    absl::StatusOr<std::unique_ptr<NativeGroupWorker>> native =
        native_->MakeGroupWorker(options_, worker_id, std::move(factory));
    if (!native.ok()) return native.status();
    Worker* raw = native->get();
    workers_->native_by_id.emplace(std::move(worker_id), std::move(*native));
    return raw;
  }
  auto worker = std::make_unique<WorkerImpl>(this, worker_id, std::move(factory));
  Worker* raw = worker.get();
  workers_->by_id.emplace(std::move(worker_id), std::move(worker));
  return raw;
}

absl::StatusOr<Worker*> ConsumerGroup::AddWorker(
    std::string worker_id, std::function<std::unique_ptr<RecordProcessor>()> factory) {
  if (!factory) return InvalidArgumentError("a processor factory is required");
  return AddWorker(std::move(worker_id),
                   RecordProcessorFactory([f = std::move(factory)](ShardId) { return f(); }));
}

void ConsumerGroup::CrashWorker(std::string_view worker_id) {
  std::unique_ptr<WorkerImpl> worker;
  std::unique_ptr<NativeGroupWorker> native;
  {
    MutexLock<Mutex> lock(&workers_->mu);
    if (auto it = workers_->by_id.find(worker_id); it != workers_->by_id.end()) {
      worker = std::move(it->second);
      workers_->by_id.erase(it);
    } else if (auto n = workers_->native_by_id.find(worker_id); n != workers_->native_by_id.end()) {
      native = std::move(n->second);
      workers_->native_by_id.erase(n);
    }
  }
  if (worker != nullptr) worker->Crash();
  if (native != nullptr) native->Crash();
}

}  // namespace rill
