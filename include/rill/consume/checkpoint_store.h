// CheckpointStore: where a consumer application keeps its leases and checkpoints (the KCL's lease
// table), and two implementations: InMemoryCheckpointStore and FileCheckpointStore (a third,
// SqliteCheckpointStore, is in rill/consume/sqlite_checkpoint_store.h).
//
// A store holds, per application name, one Lease row per shard. Every write is conditional on the
// row's lease counter (optimistic concurrency, as the KCL conditions its DynamoDB writes), which is
// how two workers that race for a lease learn that one of them lost. The interface is small on
// purpose, so that an external database can back it later.
//
// The store keeps rows exactly as given: it never changes a counter itself. A writer reads a row,
// builds the new row with counter + 1 and passes the counter it read as `expected_counter`; of two
// writers that read the same row, one succeeds and the other gets kResourceInUse, re-reads and
// decides again. (A writer that does not bump the counter defeats the scheme for everyone.)
//
// Lifetime: ShardReader::Create and ConsumerGroup::Create borrow a store by reference, so it must
// outlive every reader and group given it (SequenceDeduplicator::Save/Load use it only during the
// call).
//
// Application names, in both implementations: 1-128 characters of [a-zA-Z0-9_.-] (the rule
// Kinesis applies to stream and consumer names; it also makes them safe as file names). Anything
// else is kInvalidArgument. Lease keys must not be empty (kInvalidArgument).
//
// Example:
//   auto store = rill::FileCheckpointStore::Open("/var/lib/app/checkpoints");
//   if (!store.ok()) return store.status();
//   absl::StatusOr<std::optional<rill::Lease>> lease =
//       (*store)->GetLease("billing", "shardId-000000000000");
//   if (lease.ok() && *lease) {
//     rill::Lease updated = **lease;
//     updated.checkpoint = last_processed.ToString();
//     updated.counter = (*lease)->counter + 1;
//     absl::Status s = (*store)->UpdateLease("billing", updated, (*lease)->counter);
//     // kResourceInUse: somebody else wrote the row first; re-read and decide again.
//   }
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
#include "absl/types/span.h"

namespace rill {

// The checkpoint sentinels the KCL stores instead of a sequence number.
inline constexpr std::string_view kCheckpointTrimHorizon = "TRIM_HORIZON";
inline constexpr std::string_view kCheckpointLatest = "LATEST";
inline constexpr std::string_view kCheckpointAtTimestamp = "AT_TIMESTAMP";
inline constexpr std::string_view kCheckpointShardEnd = "SHARD_END";

// One row of the lease table, as the KCL keeps it (docs/semantics.md, "Consumer groups and
// checkpoints").
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

// One conditional write of a batch (CheckpointStore::UpdateLeases).
struct LeaseUpdate {
  Lease lease;
  int64_t expected_counter = 0;
};

class CheckpointStore {
 public:
  virtual ~CheckpointStore() = default;

  // Every lease of `application`, in lease-key order (byte-wise); empty for an application that
  // has none.
  [[nodiscard]] virtual absl::StatusOr<std::vector<Lease>> ListLeases(
      std::string_view application) = 0;

  // The lease, or nullopt if there is none.
  [[nodiscard]] virtual absl::StatusOr<std::optional<Lease>> GetLease(
      std::string_view application, std::string_view lease_key) = 0;

  // Creates `lease` (its counter as given) unless a lease with its key exists: then returns false
  // and changes nothing.
  [[nodiscard]] virtual absl::StatusOr<bool> CreateLeaseIfAbsent(std::string_view application,
                                                                 const Lease& lease) = 0;

  // Creates each lease as CreateLeaseIfAbsent would and returns, in order, whether each was
  // created (false: a lease with its key existed, or an earlier entry of the batch had the same
  // key). A consumer group creates the leases of all new shards with one call, so a store that can
  // should make the batch one write and one sync (the file and SQLite stores do). Errors, for the
  // whole call, before anything is written: a bad application name or an empty key
  // (kInvalidArgument); a storage error (kInternalFailure) leaves no creation known to be applied.
  // The default creates the leases one by one with CreateLeaseIfAbsent.
  [[nodiscard]] virtual absl::StatusOr<std::vector<bool>> CreateLeasesIfAbsent(
      std::string_view application, absl::Span<const Lease> leases);

  // Replaces the lease with key lease.lease_key if its stored counter equals `expected_counter`.
  // Errors: kResourceInUse if the counter differs (someone else wrote it: re-read and decide
  // again), kResourceNotFound if there is no such lease, kInternalFailure for storage errors.
  [[nodiscard]] virtual absl::Status UpdateLease(std::string_view application, const Lease& lease,
                                                 int64_t expected_counter) = 0;

  // Deletes the lease if its stored counter equals `expected_counter` (errors as UpdateLease).
  [[nodiscard]] virtual absl::Status DeleteLease(std::string_view application,
                                                 std::string_view lease_key,
                                                 int64_t expected_counter) = 0;

  // Applies each update as UpdateLease would, each on its own condition, and returns one status
  // per update, in order (kResourceInUse, kResourceNotFound, kInvalidArgument for an empty key).
  // A consumer group renews all its leases with one call per round, so a store that can should
  // make the batch one write and one sync (the file and SQLite stores do). The whole call fails
  // only for a bad application name or a storage error; then no update is known to be applied.
  // The default applies the updates one by one with UpdateLease.
  [[nodiscard]] virtual absl::StatusOr<std::vector<absl::Status>> UpdateLeases(
      std::string_view application, absl::Span<const LeaseUpdate> updates);
};

// A store in memory: for tests, simulations and applications that restart from scratch. Every
// call takes one mutex; reads copy the rows they return.
class InMemoryCheckpointStore final : public CheckpointStore {
 public:
  // An empty store. A plain constructor: there is nothing that could fail.
  InMemoryCheckpointStore();
  ~InMemoryCheckpointStore() override;
  InMemoryCheckpointStore(const InMemoryCheckpointStore&) = delete;
  InMemoryCheckpointStore& operator=(const InMemoryCheckpointStore&) = delete;

  absl::StatusOr<std::vector<Lease>> ListLeases(std::string_view application) override;
  absl::StatusOr<std::optional<Lease>> GetLease(std::string_view application,
                                                std::string_view lease_key) override;
  absl::StatusOr<bool> CreateLeaseIfAbsent(std::string_view application,
                                           const Lease& lease) override;
  absl::Status UpdateLease(std::string_view application, const Lease& lease,
                           int64_t expected_counter) override;
  absl::Status DeleteLease(std::string_view application, std::string_view lease_key,
                           int64_t expected_counter) override;
  absl::StatusOr<std::vector<absl::Status>> UpdateLeases(
      std::string_view application, absl::Span<const LeaseUpdate> updates) override;
  absl::StatusOr<std::vector<bool>> CreateLeasesIfAbsent(std::string_view application,
                                                         absl::Span<const Lease> leases) override;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A store in a directory, for leases and checkpoints that survive a restart.
//
// Layout: one file per application, `<directory>/<application>.leases`, holding that
// application's whole lease table, plus an empty `<application>.lock` beside it. The file is text
// (format version 1): a header line, the application name, one line per lease with every field
// length-prefixed (so any bytes survive), and a final line with the MD5 of everything before it.
//
// Durability: every write is an atomic replace. The new table goes to
// `<application>.leases.tmp`, which is fsync'ed and renamed over the old file, and then the
// directory is fsync'ed; a crash at any point leaves either the old table or the new one, never a
// mix. When a write returns OK, it is on disk. A write costs two fsyncs.
//
// Reads are not cached: every call reads the application's file (a small file, normally in the
// page cache), so that several stores on one directory — in this process or in others — see each
// other's writes at once. Writes hold an exclusive flock(2) on the lock file around the
// read-modify-write, so conditional writes stay exact across stores and processes (on local file
// systems; flock over NFS is not reliable).
//
// A damaged file (empty, truncated, bytes changed, not a lease file, another application's file)
// fails every call that reads it with kInternalFailure, naming the file and what is wrong; it is
// never overwritten by a write that could not read it, and never crashes the process. Move it
// away (or restore it) to recover. An I/O error is kInternalFailure with the file and errno text.
//
// Thread safety: thread-safe. Any number of stores, in any number of processes, may share a
// directory.
class FileCheckpointStore final : public CheckpointStore {
 public:
  // Opens the store in `directory`, creating the directory (and missing parents) if needed.
  // Errors: kInvalidArgument for an empty path; kInternalFailure if the directory cannot be
  // created or opened (e.g. the path names a file, or permission is denied).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FileCheckpointStore>> Open(
      std::string directory);

  ~FileCheckpointStore() override;
  FileCheckpointStore(const FileCheckpointStore&) = delete;
  FileCheckpointStore& operator=(const FileCheckpointStore&) = delete;

  // The directory given to Open().
  const std::string& directory() const;

  absl::StatusOr<std::vector<Lease>> ListLeases(std::string_view application) override;
  absl::StatusOr<std::optional<Lease>> GetLease(std::string_view application,
                                                std::string_view lease_key) override;
  absl::StatusOr<bool> CreateLeaseIfAbsent(std::string_view application,
                                           const Lease& lease) override;
  absl::Status UpdateLease(std::string_view application, const Lease& lease,
                           int64_t expected_counter) override;
  absl::Status DeleteLease(std::string_view application, std::string_view lease_key,
                           int64_t expected_counter) override;
  // One read-modify-write of the table (one replace, two syncs) for the whole batch.
  absl::StatusOr<std::vector<absl::Status>> UpdateLeases(
      std::string_view application, absl::Span<const LeaseUpdate> updates) override;
  // The same: one read-modify-write for the whole batch (none if every lease exists).
  absl::StatusOr<std::vector<bool>> CreateLeasesIfAbsent(std::string_view application,
                                                         absl::Span<const Lease> leases) override;

 private:
  struct State;
  explicit FileCheckpointStore(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace rill

#endif  // RILL_CONSUME_CHECKPOINT_STORE_H_
