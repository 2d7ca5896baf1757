// SequenceDeduplicator: one high-water mark per shard.
#include "rill/consume/dedup.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/consume/checkpoint_store.h"

namespace rill {
namespace {

constexpr int kMaxStoreAttempts = 32;

}  // namespace

struct SequenceDeduplicator::State {
  mutable internal::Mutex mu;
  std::map<ShardId, SequenceNumber> marks ABSL_GUARDED_BY(mu);

  // Raises the shard's mark; returns whether it rose.
  bool Raise(ShardId shard, SequenceNumber s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto [it, inserted] = marks.emplace(shard, s);
    if (inserted) return true;
    if (s <= it->second) return false;
    it->second = s;
    return true;
  }
};

SequenceDeduplicator::SequenceDeduplicator() : state_(std::make_unique<State>()) {}
SequenceDeduplicator::~SequenceDeduplicator() = default;

bool SequenceDeduplicator::ShouldProcess(ShardId shard, SequenceNumber sequence_number) {
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  return state_->Raise(shard, sequence_number);
}

bool SequenceDeduplicator::IsProcessed(ShardId shard, SequenceNumber sequence_number) const {
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  auto it = state_->marks.find(shard);
  return it != state_->marks.end() && sequence_number <= it->second;
}

void SequenceDeduplicator::MarkProcessed(ShardId shard, SequenceNumber sequence_number) {
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  state_->Raise(shard, sequence_number);
}

std::optional<SequenceNumber> SequenceDeduplicator::high_water_mark(ShardId shard) const {
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  auto it = state_->marks.find(shard);
  if (it == state_->marks.end()) return std::nullopt;
  return it->second;
}

std::map<ShardId, SequenceNumber> SequenceDeduplicator::high_water_marks() const {
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  return state_->marks;
}

void SequenceDeduplicator::Restore(const std::map<ShardId, SequenceNumber>& marks) {
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  for (const auto& [shard, mark] : marks) state_->Raise(shard, mark);
}

void SequenceDeduplicator::Forget(ShardId shard) {
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  state_->marks.erase(shard);
}

absl::Status SequenceDeduplicator::Save(CheckpointStore& store,
                                        std::string_view application) const {
  // Copy first: the store may be slow (a file store fsyncs), and ShouldProcess must not wait.
  const std::map<ShardId, SequenceNumber> marks = high_water_marks();
  for (const auto& [shard, mark] : marks) {
    const std::string key = shard.ToString();
    bool done = false;
    for (int attempt = 0; attempt < kMaxStoreAttempts && !done; ++attempt) {
      absl::StatusOr<std::optional<Lease>> got = store.GetLease(application, key);
      if (!got.ok()) return got.status();
      if (!got->has_value()) {
        Lease lease;
        lease.lease_key = key;
        lease.checkpoint = mark.ToString();
        absl::StatusOr<bool> created = store.CreateLeaseIfAbsent(application, lease);
        if (!created.ok()) return created.status();
        done = *created;
        continue;
      }
      Lease lease = std::move(**got);
      absl::StatusOr<SequenceNumber> stored = SequenceNumber::Parse(lease.checkpoint);
      if (stored.ok() && *stored >= mark) {
        done = true;  // never lower a mark
        continue;
      }
      const int64_t expected = lease.counter;
      lease.counter = expected + 1;
      lease.checkpoint = mark.ToString();
      absl::Status s = store.UpdateLease(application, lease, expected);
      const ErrorCode code = GetErrorCode(s);
      if (code != ErrorCode::kResourceInUse && code != ErrorCode::kResourceNotFound) {
        if (!s.ok()) return s;
        done = true;
      }
    }
    if (!done) {
      return ResourceInUseError(absl::StrFormat(
          "saving the high-water mark of %s in %s: the row changed under %d attempts in a row", key,
          internal::ToAbsl(application), kMaxStoreAttempts));
    }
  }
  return absl::OkStatus();
}

absl::Status SequenceDeduplicator::Load(CheckpointStore& store, std::string_view application) {
  absl::StatusOr<std::vector<Lease>> leases = store.ListLeases(application);
  if (!leases.ok()) return leases.status();
  std::map<ShardId, SequenceNumber> marks;
  for (const Lease& lease : *leases) {
    absl::StatusOr<ShardId> shard = ShardId::Parse(lease.lease_key);
    absl::StatusOr<SequenceNumber> mark = SequenceNumber::Parse(lease.checkpoint);
    if (!shard.ok() || !mark.ok()) {
      return InternalFailureError(
          absl::StrFormat("%s is not a table of high-water marks: row '%s' has checkpoint '%s'",
                          internal::ToAbsl(application), lease.lease_key, lease.checkpoint));
    }
    marks.emplace(*shard, *mark);
  }
  Restore(marks);
  return absl::OkStatus();
}

}  // namespace rill
