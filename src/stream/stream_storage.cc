// Durable mode: recovery at open, group commit, the flusher thread, the memory budget and the
// stream's metadata.
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
#include "rill/metrics/metrics.h"
#include "storage/stream_store.h"
#include "stream/rate_limiter.h"
#include "stream/stream_impl.h"
#include "stream/stream_shard.h"

namespace rill::internal {

void StreamImpl::StopFlusher() {
  std::thread thread;
  {
    MutexLock lock(&flusher_mu_);
    flusher_stop_ = true;
    thread = std::move(flusher_thread_);
  }
  flusher_cv_.SignalAll();
  if (thread.joinable()) thread.join();
}

absl::Status StreamImpl::CheckWritable(std::string_view operation) const {
  if (!read_only_) return absl::OkStatus();
  return MakeError(ErrorCode::kAccessDenied,
                   absl::StrFormat("%s: stream %s was opened read-only (StorageOptions::read_only)",
                                   std::string(operation), options_.name));
}

absl::Status StreamImpl::AttachStorage(std::unique_ptr<internal::StreamStore> store,
                                       const internal::StreamMeta* meta) {
  store_ = std::move(store);
  read_only_ = store_->options().read_only;
  // Data keys of encrypted frames and journal records are unwrapped through the provider.
  keyring_ = std::make_unique<FrameKeyring>(
      [provider = options_.key_provider, name = options_.name](
          std::string_view key_id, std::string_view wrapped) -> absl::StatusOr<std::string> {
        if (provider == nullptr) {
          return MakeError(ErrorCode::kKmsAccessDenied,
                           absl::StrFormat("stream %s holds records encrypted under key %s: give "
                                           "StreamOptions::key_provider to read them",
                                           name, std::string(key_id)));
        }
        return provider->DecryptDataKey(key_id, wrapped);
      });
  if (meta != nullptr && meta->encryption_type != 0) {
    {
      MutexLock lock(&encryption_mu_);
      encryption_type_ = EncryptionType::kKms;
      key_id_ = meta->key_id;
    }
    if (!read_only_) {
      // What this process writes is encrypted under a data key of its own.
      absl::StatusOr<std::shared_ptr<const FrameWriteKey>> key = NewWriteKey(meta->key_id);
      if (!key.ok()) return key.status();
      MutexLock lock(&encryption_mu_);
      write_key_ = *std::move(key);
    }
  }
  internal::MutexLock lock(&shards_mu_);
  const int64_t now_us = ToMicros(options_.clock->Now());
  const int64_t now_ns = now_us * 1000;
  const int64_t expire_before = std::max(now_us - retention_us_.load(), trim_floor_us_.load());
  const size_t per_shard_budget =
      store_->options().memory_budget_bytes / std::max<size_t>(1, shards_.size());
  // The journal holds what acknowledged puts wrote since the segments last caught up: read it
  // first, shard by shard; each shard appends its entries after its segments' records.
  std::vector<std::vector<internal::JournalEntry>> journaled(shards_.size());
  absl::StatusOr<std::unique_ptr<internal::Journal>> journal = internal::Journal::Open(
      options_.storage->directory,
      options_.storage->fsync == FsyncPolicy::kEveryBatch ? internal::Journal::Mode::kWriteThrough
                                                          : internal::Journal::Mode::kMapped,
      [&](const internal::JournalEntry& e) {
        if (e.shard < journaled.size()) journaled[e.shard].push_back(e);
      },
      read_only_, keyring_.get());
  if (!journal.ok()) return journal.status();

  // Each shard recovers on its own: replay runs on up to one thread per core, joined here.
  struct Recovered {
    internal::ShardStorage::Recovered result;
    absl::Status status;
  };
  std::vector<Recovered> recovered(shards_.size());
  std::vector<StreamShard*> shards;  // what the recovering threads see (shards_ is guarded)
  for (const auto& shard : shards_) shards.push_back(shard.get());
  auto recover = [&](size_t i) {
    StreamShard& shard = *shards[i];
    const internal::ShardMeta* m = meta ? &meta->shards[shard.id.index()] : nullptr;
    const std::optional<uint64_t> ending =
        m && m->closed_us ? std::optional<uint64_t>(m->ending_counter) : std::nullopt;
    recovered[i].status =
        shard.storage.Recover(store_->ShardDirectory(shard.id.index()), store_->options(),
                              expire_before, per_shard_budget, journaled[i], ending, now_ns,
                              &recovered[i].result, CryptoFor(shard.id.index()));
    if (m && m->closed_us) shard.closed_us.store(*m->closed_us, std::memory_order_release);
  };
  {
    const size_t threads =
        std::min<size_t>(shards.size(), std::max<unsigned>(1, std::thread::hardware_concurrency()));
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i = next.fetch_add(1); i < shards.size(); i = next.fetch_add(1)) recover(i);
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
  }
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (!recovered[i].status.ok()) return recovered[i].status;
  }
  // Every shard has read its records: only now is anything written (the journal's records into
  // the segments), so that a shard that could not recover leaves the others untouched.
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (recovered[i].result.needs_commit) {
      if (absl::Status s = shards_[i]->storage.FinishRecovery(now_ns); !s.ok()) return s;
    }
  }
  for (size_t i = 0; i < shards_.size(); ++i) {
    const internal::ShardRecovery& recovery = recovered[i].result.recovery;
    recovered_records_ += recovery.records + recovered[i].result.journal_records;
    if (!recovery.corruption.ok() && recovery_status_.ok()) {
      recovery_status_ = InternalFailureError(absl::StrFormat(
          "shard %s of stream %s is damaged on disk; it keeps the %d records before the damage: "
          "%s",
          shards_[i]->id.ToString(), options_.name, recovery.records,
          recovery.corruption.ToString()));
    }
  }
  if (read_only_) {
    // The records are in memory (the journal's copied into the logs); nothing is written, and
    // no counter is issued, so neither the journal nor the ceilings are needed.
    journal->reset();
    if (store_->options().memory_budget_bytes != 0) {
      for (const auto& shard : shards_) shard->storage.EvictWritten();
    }
    LinkChildrenLocked();
    TrimAll();
    return absl::OkStatus();
  }
  // Every journaled record is in the segments now (written and synced above): start afresh.
  if (absl::Status s = (*journal)->Reset(); !s.ok()) return s;
  {
    MutexLock lock(&encryption_mu_);
    if (write_key_ != nullptr) {
      if (absl::Status s = (*journal)->SetEncryption(write_key_); !s.ok()) return s;
    }
  }
  store_->AttachJournal(*std::move(journal));
  if (absl::Status s = SetCounterCeilingsLocked(); !s.ok()) return s;
  if (store_->options().memory_budget_bytes != 0) {
    for (const auto& shard : shards_) shard->storage.EvictWritten();
  }
  if (meta) LinkChildrenLocked();
  TrimAll();
  if (absl::Status s = PersistMetaLocked(); !s.ok()) return s;
  const StorageOptions& storage = store_->options();
  if (storage.background_flush) {
    // Real time, not the stream's clock: the interval bounds what a power cut can take, and a
    // power cut does not follow a SimulatedClock (background_flush = false is the
    // deterministic mode).
    MutexLock lock(&flusher_mu_);
    flusher_thread_ = std::thread([this, interval = storage.fsync_interval] {
      // METRICS is refreshed about once a second: often enough for `rill top`, rarely enough
      // to cost nothing next to the puts. Real time, not the stream's clock, as for the flush
      // interval above: it paces a file read by tools watching a live process, and this thread
      // runs only with background_flush (a SimulatedClock stream sets it false and gets METRICS
      // at Flush and close only, deterministically).
      auto next_metrics = std::chrono::steady_clock::now();
      for (;;) {
        {
          MutexLock lock(&flusher_mu_);
          const auto deadline =
              std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(interval);
          while (!flusher_stop_ && flusher_cv_.WaitUntil(&flusher_mu_, deadline)) {
          }
          if (flusher_stop_) return;
        }
        // A failed store or journal fails the next put, which reports the error.
        Checkpoint(/*seal=*/false).IgnoreError();
        if (const auto now = std::chrono::steady_clock::now(); now >= next_metrics) {
          WriteMetricsFile();
          next_metrics = now + std::chrono::seconds(1);
        }
      }
    });
  }
  return absl::OkStatus();
}

void StreamImpl::LinkChildrenLocked() {
  // Lineage: each closed shard's children.
  for (const auto& shard : shards_) {
    if (!shard->log().closed()) continue;
    for (const auto& child : shards_) {
      if (child->parent == shard->id || child->adjacent_parent == shard->id) {
        std::vector<ShardId> parents{*child->parent};
        if (child->adjacent_parent) parents.push_back(*child->adjacent_parent);
        shard->children.push_back(ChildShard{child->id, parents, child->range});
      }
    }
  }
}

absl::Status StreamImpl::SetCounterCeilingsLocked() {
  absl::StatusOr<std::vector<uint64_t>> ceilings = store_->LoadCeilings();
  uint64_t damaged_margin = 0;
  if (!ceilings.ok()) {
    // COUNTERS rotted: numbers issued before the crash are unknown, so jump well past them.
    damaged_margin = 64 * kCounterLease;
    ceilings = std::vector<uint64_t>();
  }
  std::vector<std::pair<uint32_t, uint64_t>> updates;
  for (const auto& shard : shards_) {
    if (shard->log().closed()) continue;
    const uint32_t index = shard->id.index();
    // Counters below the old ceiling may have been issued (and lost in a power cut): start at it.
    if (index < ceilings->size() && (*ceilings)[index] > 0) {
      shard->log().RaiseNextCounter((*ceilings)[index] - 1);
    }
    if (damaged_margin != 0)
      shard->log().RaiseNextCounter(shard->log().next_counter() + damaged_margin);
    shard->counter_ceiling = shard->log().next_counter() + kCounterLease;
    updates.emplace_back(index, shard->counter_ceiling);
  }
  if (absl::Status s = store_->RaiseCeilings(updates); !s.ok()) return s;
  return absl::OkStatus();
}

absl::Status StreamImpl::Checkpoint(bool seal) {
  internal::Journal* journal = store_->journal();
  const FsyncPolicy policy = store_->options().fsync;
  if (seal) journal->Seal();
  // Taken before the segments are written: every record in these files is published, so the
  // writes below include them all.
  const std::vector<internal::Journal::File*> taken = journal->TakeRecyclable();
  absl::Status status;
  bool wrote = false;
  for (StreamShard* shard : shard_map_.load(std::memory_order_acquire)->all) {
    internal::ShardStorage& storage = shard->storage;
    internal::ShardStore* store = storage.disk();
    if (store == nullptr) continue;  // no record reached it (puts there fail)
    absl::Status s;
    if (store->failed()) {
      s = store->status();
    } else if (storage.NeedsCommit() || seal) {
      s = storage.Commit(/*force_sync=*/seal || policy == FsyncPolicy::kInterval,
                         absl::ToUnixNanos(options_.clock->Now()));
      wrote = true;
    }
    // Before a journal file goes, what it protected must be as durable as the policy promises.
    if (s.ok() && !taken.empty() && policy != FsyncPolicy::kNever) s = store->Sync();
    if (!s.ok() && !shard->expired.load(std::memory_order_relaxed) && status.ok()) status = s;
  }
  // The journal itself is not synced here: kInterval's promise is kept by the segments, which
  // this flush wrote and synced with everything published when it began (syncing a mapped file
  // makes the kernel write-protect its pages, and every put then faults again).
  if (status.ok()) {
    status = journal->Recycle(taken);
  } else {
    journal->Untake(taken);
  }
  if (wrote) EnforceMemoryBudget();
  return AsKinesisError(status);
}

internal::StreamMeta StreamImpl::BuildMetaLocked() const {
  internal::StreamMeta meta;
  meta.name = options_.name;
  meta.seed = seed_;
  meta.creation_ns = absl::ToUnixNanos(creation_time_);
  meta.retention_us = retention_us_.load();
  meta.capacity_mode = static_cast<uint8_t>(capacity_mode_.load());
  meta.trim_floor_us = trim_floor_us_.load();
  {
    MutexLock lock(&encryption_mu_);
    meta.encryption_type = encryption_type_ == EncryptionType::kKms ? 1 : 0;
    meta.key_id = key_id_;
  }
  for (const auto& shard : shards_) {
    internal::ShardMeta m;
    m.index = shard->id.index();
    m.range = shard->range;
    if (shard->parent) m.parent = shard->parent->index();
    if (shard->adjacent_parent) m.adjacent_parent = shard->adjacent_parent->index();
    m.first_counter = shard->log().first_counter();
    m.created_us = shard->created_us;
    if (shard->log().closed()) {
      m.closed_us = shard->closed_us.load(std::memory_order_acquire);
      m.ending_counter = shard->log().ending_counter();
    }
    meta.shards.push_back(m);
  }
  AppendConsumers(&meta);
  return meta;
}

absl::Status StreamImpl::PersistMetaLocked() {
  if (store_ == nullptr || read_only_) return absl::OkStatus();
  if (absl::Status s = store_->SaveMeta(BuildMetaLocked()); !s.ok()) return AsKinesisError(s);
  return absl::OkStatus();
}

absl::Status StreamImpl::PersistMeta() {
  if (store_ == nullptr) return absl::OkStatus();
  internal::MutexLock lock(&shards_mu_);
  return PersistMetaLocked();
}

absl::Status StreamImpl::CommitShard(StreamShard* shard, bool force_sync) {
  if (read_only_) return absl::OkStatus();  // nothing was put: nothing to write
  internal::ShardStore* store = shard->storage.disk();
  if (store == nullptr) {
    if (store_ == nullptr) return absl::OkStatus();
    return InternalFailureError(absl::StrFormat(
        "shard %s of stream %s has no storage (opening its directory failed when it was created)",
        shard->id.ToString(), options_.name));
  }
  if (!force_sync) {
    // The journal already holds the records; the segments are written behind, by the flusher
    // thread or (without one) here, in large group commits.
    if (store_->options().background_flush ||
        !shard->storage.ShouldCommit(absl::ToUnixNanos(options_.clock->Now()))) {
      return AsKinesisError(store->status());
    }
  }
  if (absl::Status s = shard->storage.Commit(force_sync, absl::ToUnixNanos(options_.clock->Now()));
      !s.ok()) {
    return AsKinesisError(s);
  }
  EnforceMemoryBudget();
  return absl::OkStatus();
}

void StreamImpl::EnforceMemoryBudget() {
  const size_t budget = options_.storage->memory_budget_bytes;
  if (budget == 0) return;
  const size_t used = MemoryBytes();
  if (used <= budget) return;
  // Evict a little below the budget, oldest chunks first, not whole shards: what is freed
  // then matches what new records need, and the chunk pool hands it back without the kernel
  // zeroing fresh pages.
  size_t excess = used - budget + budget / 32;
  const std::vector<StreamShard*>& all = shard_map_.load(std::memory_order_acquire)->all;
  const size_t start = evict_round_.fetch_add(1, std::memory_order_relaxed);
  for (size_t i = 0; i < all.size() && excess > 0; ++i) {
    StreamShard* s = all[(start + i) % all.size()];
    if (s->storage.disk() == nullptr) continue;
    excess -= std::min(excess, s->storage.EvictWritten(excess));
  }
}

absl::Status StreamImpl::Flush() {
  if (store_ == nullptr) return absl::OkStatus();
  if (absl::Status s = CheckWritable("Flush"); !s.ok()) return s;
  // Everything to the segments, synced (kNever: written), and the journal emptied.
  absl::Status status = Checkpoint(/*seal=*/true);
  WriteMetricsFile();
  return status;
}

void StreamImpl::WriteMetricsFile() {
  if (store_ == nullptr || read_only_) return;
  std::string text = ToJson(metrics());
  text.push_back('\n');
  MutexLock lock(&metrics_file_mu_);
  internal::ReplaceFile(options_.storage->directory + "/METRICS", text).IgnoreError();
}

uint64_t StreamImpl::DiskBytes() const {
  uint64_t bytes = 0;
  for (const StreamShard* shard : shard_map_.load(std::memory_order_acquire)->all) {
    bytes += shard->storage.disk_bytes();
  }
  return bytes;
}

}  // namespace rill::internal
