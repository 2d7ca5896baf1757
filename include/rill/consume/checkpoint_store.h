// CheckpointStore: where a consumer application keeps its leases and checkpoints (the KCL's lease
// table), and two implementations: InMemoryCheckpointStore and FileCheckpointStore.
//
// A store holds, per application name, one Lease row per shard. Every write is conditional on the
// row's lease counter (optimistic concurrency, as the KCL conditions its DynamoDB writes), which is
// how two workers that race for a lease learn that one of them lost. The interface is small on
// purpose, so that an external database can back it later.
//
// Example:
//   auto store = rill::FileCheckpointStore::Open("/var/lib/app/checkpoints");
//   if (!store.ok()) return store.status();
//   absl::StatusOr<std::optional<rill::Lease>> lease = (*store)->GetLease("billing",
//   "shardId-000000000000");
//
// Thread safety: every method of every implementation is thread-safe.
#ifndef RILL_CONSUME_CHECKPOINT_STORE_H_
#define RILL_CONSUME_CHECKPOINT_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rill {

// The checkpoint sentinels the KCL stores instead of a sequence number.
inline constexpr std::string_view kCheckpointTrimHorizon = "TRIM_HORIZON";
inline constexpr std::string_view kCheckpointLatest = "LATEST";
inline constexpr std::string_view kCheckpointAtTimestamp = "AT_TIMESTAMP";
inline constexpr std::string_view kCheckpointShardEnd = "SHARD_END";

// One row of the lease table (kinesis-reference.md §8.1).
struct Lease {
  // The shard id ("shardId-000000000000").
  std::string lease_key;
  // The worker holding the lease; empty when nobody does.
  std::string owner;
  // Bumped by every write: renewals, takes, checkpoints. Writes are conditional on it.
  int64_t counter = 0;
  // The last checkpoint: a decimal sequence number or one of the sentinels above.
  std::string checkpoint;
  // Times the owner changed since the last checkpoint.
  int64_t owner_switches_since_checkpoint = 0;
  // Parents that must reach SHARD_END before this shard is processed.
  std::vector<std::string> parent_shard_ids;

  friend bool operator==(const Lease&, const Lease&) = default;
};

class CheckpointStore {
 public:
  virtual ~CheckpointStore() = default;

  // Every lease of `application`, in lease-key order.
  [[nodiscard]] virtual absl::StatusOr<std::vector<Lease>> ListLeases(
      std::string_view application) = 0;

  // The lease, or nullopt if there is none.
  [[nodiscard]] virtual absl::StatusOr<std::optional<Lease>> GetLease(
      std::string_view application, std::string_view lease_key) = 0;

  // Creates `lease` (its counter as given) unless a lease with its key exists: then returns false
  // and changes nothing.
  [[nodiscard]] virtual absl::StatusOr<bool> CreateLeaseIfAbsent(std::string_view application,
                                                                 const Lease& lease) = 0;

  // Replaces the lease with key lease.lease_key if its stored counter equals `expected_counter`.
  // Errors: kResourceInUse if the counter differs (someone else wrote it: re-read and decide
  // again), kResourceNotFound if there is no such lease, kInternalFailure for storage errors.
  [[nodiscard]] virtual absl::Status UpdateLease(std::string_view application, const Lease& lease,
                                                 int64_t expected_counter) = 0;

  // Deletes the lease if its stored counter equals `expected_counter` (errors as UpdateLease).
  [[nodiscard]] virtual absl::Status DeleteLease(std::string_view application,
                                                 std::string_view lease_key,
                                                 int64_t expected_counter) = 0;
};

// A store in memory: for tests, simulations and applications that restart from scratch.
class InMemoryCheckpointStore final : public CheckpointStore { /* declared by its implementer */
 public:
  InMemoryCheckpointStore();
  ~InMemoryCheckpointStore() override;
  absl::StatusOr<std::vector<Lease>> ListLeases(std::string_view application) override;
  absl::StatusOr<std::optional<Lease>> GetLease(std::string_view application,
                                                std::string_view lease_key) override;
  absl::StatusOr<bool> CreateLeaseIfAbsent(std::string_view application,
                                           const Lease& lease) override;
  absl::Status UpdateLease(std::string_view application, const Lease& lease,
                           int64_t expected_counter) override;
  absl::Status DeleteLease(std::string_view application, std::string_view lease_key,
                           int64_t expected_counter) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace rill

#endif  // RILL_CONSUME_CHECKPOINT_STORE_H_
