// SqliteCheckpointStore: a lease table in an SQLite database file, for consumer groups of many
// shards.
//
// Why SQLite: FileCheckpointStore rewrites an application's whole table and syncs it twice on
// every write, so a renewal round of 1,000 leases costs 1,000 rewrites. Here a write changes only
// its row, and UpdateLeases applies a whole round in one transaction: one WAL append and one sync,
// whatever the number of shards. SQLite also gives the cross-process locking and crash-safe
// commits a lease table needs, and it is on every Debian system (libsqlite3).
//
// Layout: one database file (created if missing) holding every application's leases, in WAL
// mode (a `-wal` and a `-shm` file appear beside it while it is open). Durability: a write that
// returns OK is on disk (synchronous=FULL: each transaction syncs the WAL).
//
// Several stores, in this process or in others, may open the same file: writes are conditional
// on the lease counter inside an IMMEDIATE transaction, so they stay exact across processes.
// A writer that finds the database locked by another waits for it (SQLite's busy handler, up to
// `busy_timeout`, in real time: it waits on a file lock, not on rill's clock), then fails with
// kInternalFailure.
//
// Errors: kInvalidArgument for bad names and empty lease keys (as every CheckpointStore);
// kInternalFailure for a file that is not an SQLite database, damaged, or unwritable, naming the
// file and SQLite's message.
//
// Example:
//   auto store = rill::SqliteCheckpointStore::Open("/var/lib/app/leases.db");
//   if (!store.ok()) return store.status();
//   auto group = rill::ConsumerGroup::Create(*stream, **store, options);
//
// Thread safety: thread-safe (one connection per store, calls serialised on a mutex).
#ifndef RILL_CONSUME_SQLITE_CHECKPOINT_STORE_H_
#define RILL_CONSUME_SQLITE_CHECKPOINT_STORE_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "rill/consume/checkpoint_store.h"

namespace rill {

struct SqliteCheckpointStoreOptions {
  // How long a write waits for another connection's transaction. Default: 5 s.
  absl::Duration busy_timeout = absl::Seconds(5);
};

class SqliteCheckpointStore final : public CheckpointStore {
 public:
  // Opens (creating if missing) the database at `path`; its directory must exist. Errors:
  // kInvalidArgument for an empty path; kInternalFailure if the file cannot be opened or is not
  // a lease database.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SqliteCheckpointStore>> Open(
      std::string path, SqliteCheckpointStoreOptions options = {});

  ~SqliteCheckpointStore() override;
  SqliteCheckpointStore(const SqliteCheckpointStore&) = delete;
  SqliteCheckpointStore& operator=(const SqliteCheckpointStore&) = delete;

  // The path given to Open().
  const std::string& path() const;

  absl::StatusOr<std::vector<Lease>> ListLeases(std::string_view application) override;
  absl::StatusOr<std::optional<Lease>> GetLease(std::string_view application,
                                                std::string_view lease_key) override;
  absl::StatusOr<bool> CreateLeaseIfAbsent(std::string_view application,
                                           const Lease& lease) override;
  absl::Status UpdateLease(std::string_view application, const Lease& lease,
                           int64_t expected_counter) override;
  absl::Status DeleteLease(std::string_view application, std::string_view lease_key,
                           int64_t expected_counter) override;
  // One transaction, one sync for the whole batch.
  absl::StatusOr<std::vector<absl::Status>> UpdateLeases(
      std::string_view application, absl::Span<const LeaseUpdate> updates) override;
  // The same: one transaction for the whole batch.
  absl::StatusOr<std::vector<bool>> CreateLeasesIfAbsent(std::string_view application,
                                                         absl::Span<const Lease> leases) override;

 private:
  struct State;
  explicit SqliteCheckpointStore(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace rill

#endif  // RILL_CONSUME_SQLITE_CHECKPOINT_STORE_H_
