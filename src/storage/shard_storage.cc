#include "storage/shard_storage.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace rill::internal {

absl::Status ShardStorage::OpenDisk(const std::string& dir, const StorageOptions& options,
                                    ShardCrypto crypto) {
  ShardRecovery none;
  absl::StatusOr<std::unique_ptr<ShardStore>> disk = ShardStore::Open(
      dir, options, [](const StoredRecord&) {}, &none, nullptr, std::move(crypto));
  if (!disk.ok()) return disk.status();
  disk_ = *std::move(disk);
  return absl::OkStatus();
}

absl::Status ShardStorage::Recover(const std::string& dir, const StorageOptions& options,
                                   int64_t expire_before_us, size_t memory_budget,
                                   std::vector<JournalEntry>& entries,
                                   std::optional<uint64_t> ending_counter, int64_t now_ns,
                                   Recovered* out, ShardCrypto crypto) {
  ShardRecovery& recovery = out->recovery;
  absl::StatusOr<std::unique_ptr<ShardStore>> disk = ShardStore::Open(
      dir, options,
      [this, expire_before_us](const StoredRecord& r) {
        // Exactly the stored counter and arrival: the floor is the counter minus one.
        log_.Append(r.partition_key, r.data, r.arrival_us, r.counter - 1, expire_before_us);
      },
      &recovery,
      [this, memory_budget](uint64_t safe) {
        // Recovery holds no more memory than the budget allows a shard either.
        if (memory_budget != 0 && log_.MemoryBytes() > memory_budget) log_.EvictBefore(safe);
      },
      std::move(crypto));
  if (!disk.ok()) return disk.status();
  disk_ = *std::move(disk);
  // Records on disk end here; what the journal adds after them must be written again.
  const uint64_t segments_end = log_.end_ordinal();
  std::stable_sort(
      entries.begin(), entries.end(),
      [](const JournalEntry& a, const JournalEntry& b) { return a.counter < b.counter; });
  for (const JournalEntry& e : entries) {
    // Entries the segments already hold (or that a damaged frame's counters cover) are not
    // new; neither is anything above a closed shard's end.
    if (e.counter < log_.next_counter() || e.counter <= recovery.counter_floor) continue;
    if (ending_counter && e.counter > *ending_counter) continue;
    log_.Append(e.partition_key, e.data, e.arrival_us, e.counter - 1, expire_before_us);
    ++out->journal_records;
  }
  if (recovery.counter_floor > 0) log_.RaiseNextCounter(recovery.counter_floor);
  disk_->set_persisted_ordinal(recovery.rewrite_from_record ? *recovery.rewrite_from_record
                                                            : segments_end);
  if (ending_counter) {
    log_.RaiseNextCounter(*ending_counter);
    log_.Close();
  }
  (void)now_ns;
  out->needs_commit =
      !options.read_only && (recovery.rewrite_from_record || out->journal_records != 0);
  return absl::OkStatus();
}

absl::Status ShardStorage::FinishRecovery(int64_t now_ns) {
  return disk_->Commit(log_, /*force_sync=*/true, now_ns);
}

uint64_t ShardStorage::Trim(int64_t cutoff_us) {
  return Trim(cutoff_us, std::numeric_limits<int64_t>::max(), nullptr);
}

uint64_t ShardStorage::Trim(int64_t cutoff_us, int64_t count_from_us, ShardLog::Trimmed* counted) {
  const uint64_t trim = log_.TrimBefore(cutoff_us, count_from_us, counted);
  if (disk_ == nullptr) return trim;
  // Records evicted to disk: the memory log cannot judge their age.
  const uint64_t memory_start = log_.memory_start_ordinal();
  if (trim >= memory_start) return trim;
  // Records below the disk's first one were deleted with their segments.
  uint64_t target = std::min(disk_->first_disk_ordinal(), memory_start);
  if (disk_->oldest_arrival_us() < cutoff_us) {
    absl::StatusOr<uint64_t> t = disk_->LowerBoundTime(cutoff_us, memory_start);
    if (t.ok()) target = std::max(target, *t);
  }
  if (target > trim) log_.RaiseTrim(target);
  return log_.trim_ordinal();
}

void ShardStorage::DropExpired(int64_t cutoff_us, bool expired) {
  if (disk_ == nullptr) return;
  // Retention on disk deletes whole segments; an expired closed shard goes entirely. A failure
  // leaves files behind that the next round deletes; nothing readable depends on it.
  if (expired) {
    disk_->DropAll().IgnoreError();
  } else {
    disk_->DropBefore(cutoff_us).IgnoreError();
  }
}

absl::StatusOr<uint64_t> ShardStorage::LowerBoundCounter(uint64_t counter, uint64_t from,
                                                         uint64_t end) const {
  uint64_t ordinal = log_.LowerBoundCounter(counter, end);
  const uint64_t memory_start = disk_ != nullptr ? log_.memory_start_ordinal() : 0;
  if (ordinal <= std::max(from, memory_start) && from < memory_start) {
    absl::StatusOr<uint64_t> cold = disk_->LowerBoundCounter(counter, memory_start);
    if (!cold.ok()) return cold.status();
    ordinal = *cold;
  }
  return std::max(from, ordinal);
}

absl::StatusOr<uint64_t> ShardStorage::LowerBoundTime(int64_t time_us, uint64_t from,
                                                      uint64_t end) const {
  uint64_t ordinal = log_.LowerBoundTime(time_us, end);
  const uint64_t memory_start = disk_ != nullptr ? log_.memory_start_ordinal() : 0;
  if (ordinal <= std::max(from, memory_start) && from < memory_start) {
    absl::StatusOr<uint64_t> cold = disk_->LowerBoundTime(time_us, memory_start);
    if (!cold.ok()) return cold.status();
    ordinal = *cold;
  }
  return std::max(from, ordinal);
}

}  // namespace rill::internal
