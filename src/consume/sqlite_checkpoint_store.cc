// SqliteCheckpointStore: the lease table in SQLite. Every field is stored as a BLOB, so any bytes
// survive and keys order byte-wise (memcmp), as the interface promises.
#include "rill/consume/sqlite_checkpoint_store.h"

#include <sqlite3.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "consume/checkpoint_store_internal.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"

namespace rill {
namespace {

// The parents list in one BLOB: for each id, its length (4 bytes, little-endian) then its bytes.
std::string EncodeParents(const std::vector<std::string>& parents) {
  std::string out;
  for (const std::string& p : parents) {
    const auto n = static_cast<uint32_t>(p.size());
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    out += p;
  }
  return out;
}

bool DecodeParents(std::string_view in, std::vector<std::string>* parents) {
  while (!in.empty()) {
    if (in.size() < 4) return false;
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n |= uint32_t{static_cast<unsigned char>(in[i])} << (8 * i);
    in.remove_prefix(4);
    if (in.size() < n) return false;
    parents->emplace_back(in.substr(0, n));
    in.remove_prefix(n);
  }
  return true;
}

// A prepared statement, finalized when it goes out of scope.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }
  sqlite3_stmt** out() { return &stmt_; }
  sqlite3_stmt* get() const { return stmt_; }

  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  void BindBlob(int i, std::string_view bytes) {
    // SQLITE_TRANSIENT: SQLite copies, so temporaries may be bound. A zero-length blob must
    // still be a blob, not NULL: give it a valid pointer.
    sqlite3_bind_blob(stmt_, i, bytes.empty() ? "" : bytes.data(), static_cast<int>(bytes.size()),
                      SQLITE_TRANSIENT);
  }
  void BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  std::string_view ColumnBlob(int i) const {
    const void* p = sqlite3_column_blob(stmt_, i);
    const int n = sqlite3_column_bytes(stmt_, i);
    return p == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(p), n);
  }
  int64_t ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

struct SqliteCheckpointStore::State {
  std::string path;
  internal::Mutex mu;
  // Declared before the statements, so destroyed after them: a connection with live
  // statements does not close.
  struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close(db); }
  };
  std::unique_ptr<sqlite3, Closer> connection;
  sqlite3* db = nullptr;  // connection.get(), once open
  Statement select_one ABSL_GUARDED_BY(mu);
  Statement select_all ABSL_GUARDED_BY(mu);
  Statement insert ABSL_GUARDED_BY(mu);
  Statement update ABSL_GUARDED_BY(mu);
  Statement remove ABSL_GUARDED_BY(mu);
  Statement counter_of ABSL_GUARDED_BY(mu);

  absl::Status Error(std::string_view what) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return InternalFailureError(absl::StrFormat("SqliteCheckpointStore %s: %s: %s", path,
                                                internal::ToAbsl(what), sqlite3_errmsg(db)));
  }

  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    char* message = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      const std::string text = message != nullptr ? message : sqlite3_errmsg(db);
      sqlite3_free(message);
      return InternalFailureError(
          absl::StrFormat("SqliteCheckpointStore %s: %s: %s", path, sql, text));
    }
    return absl::OkStatus();
  }

  absl::Status Prepare(const char* sql, Statement* stmt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (sqlite3_prepare_v2(db, sql, -1, stmt->out(), nullptr) != SQLITE_OK) {
      return Error(absl::StrCat("preparing ", sql));
    }
    return absl::OkStatus();
  }

  // Transactions are IMMEDIATE: the write lock is taken up front, so that two stores never
  // both read a counter and then both write. End() commits if `s` is OK, else rolls back.
  absl::Status Begin() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return Exec("BEGIN IMMEDIATE"); }
  absl::Status End(absl::Status s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) Exec("ROLLBACK").IgnoreError();
    return s;
  }

  // The stored lease, or nullopt; kInternalFailure for a damaged row.
  absl::StatusOr<std::optional<Lease>> Get(std::string_view application, std::string_view lease_key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    select_one.Reset();
    select_one.BindBlob(1, application);
    select_one.BindBlob(2, lease_key);
    const int rc = sqlite3_step(select_one.get());
    if (rc == SQLITE_DONE) return std::optional<Lease>();
    if (rc != SQLITE_ROW) return Error("reading a lease");
    absl::StatusOr<Lease> lease = RowToLease(select_one);
    if (!lease.ok()) return lease.status();
    return std::optional<Lease>(*std::move(lease));
  }

  absl::StatusOr<Lease> RowToLease(const Statement& row) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Lease lease;
    lease.lease_key = std::string(row.ColumnBlob(0));
    lease.owner = std::string(row.ColumnBlob(1));
    lease.counter = row.ColumnInt(2);
    lease.checkpoint = std::string(row.ColumnBlob(3));
    lease.owner_switches_since_checkpoint = row.ColumnInt(4);
    if (!DecodeParents(row.ColumnBlob(5), &lease.parent_shard_ids)) {
      return InternalFailureError(
          absl::StrFormat("SqliteCheckpointStore %s: lease %s has a damaged parents field", path,
                          internal::ToAbsl(lease.lease_key)));
    }
    return lease;
  }

  // INSERT OR IGNORE of one lease: whether it was created.
  absl::StatusOr<bool> InsertOne(std::string_view application, const Lease& lease)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    insert.Reset();
    insert.BindBlob(1, application);
    insert.BindBlob(2, lease.lease_key);
    insert.BindBlob(3, lease.owner);
    insert.BindInt(4, lease.counter);
    insert.BindBlob(5, lease.checkpoint);
    insert.BindInt(6, lease.owner_switches_since_checkpoint);
    insert.BindBlob(7, EncodeParents(lease.parent_shard_ids));
    if (sqlite3_step(insert.get()) != SQLITE_DONE) return Error("creating a lease");
    return sqlite3_changes(db) == 1;
  }

  // The conditional write of UpdateLease / UpdateLeases, inside a transaction.
  absl::Status UpdateOne(std::string_view application, const Lease& lease, int64_t expected_counter)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    update.Reset();
    update.BindBlob(1, lease.owner);
    update.BindInt(2, lease.counter);
    update.BindBlob(3, lease.checkpoint);
    update.BindInt(4, lease.owner_switches_since_checkpoint);
    update.BindBlob(5, EncodeParents(lease.parent_shard_ids));
    update.BindBlob(6, application);
    update.BindBlob(7, lease.lease_key);
    update.BindInt(8, expected_counter);
    if (sqlite3_step(update.get()) != SQLITE_DONE) return Error("updating a lease");
    if (sqlite3_changes(db) == 1) return absl::OkStatus();
    return Refused(application, lease.lease_key, expected_counter);
  }

  // Why a conditional write changed nothing: no such row, or another counter.
  absl::Status Refused(std::string_view application, std::string_view lease_key,
                       int64_t expected_counter) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    counter_of.Reset();
    counter_of.BindBlob(1, application);
    counter_of.BindBlob(2, lease_key);
    const int rc = sqlite3_step(counter_of.get());
    if (rc == SQLITE_DONE) {
      return ResourceNotFoundError(absl::StrFormat("application %s has no lease %s",
                                                   internal::ToAbsl(application),
                                                   internal::ToAbsl(lease_key)));
    }
    if (rc != SQLITE_ROW) return Error("reading a lease counter");
    const int64_t stored = counter_of.ColumnInt(0);
    counter_of.Reset();
    return ResourceInUseError(absl::StrFormat(
        "lease %s of application %s has counter %d, not the expected %d",
        internal::ToAbsl(lease_key), internal::ToAbsl(application), stored, expected_counter));
  }
};

absl::StatusOr<std::unique_ptr<SqliteCheckpointStore>> SqliteCheckpointStore::Open(
    std::string path, SqliteCheckpointStoreOptions options) {
  if (path.empty()) return InvalidArgumentError("SqliteCheckpointStore: empty database path");
  auto state = std::make_unique<State>();
  state->path = std::move(path);
  internal::MutexLock<internal::Mutex> lock(&state->mu);
  // FULLMUTEX is not needed (State::mu serialises the connection); NOMUTEX spares SQLite's own.
  const int rc =
      sqlite3_open_v2(state->path.c_str(), &state->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  state->connection.reset(state->db);  // closed even if opening failed half-way
  if (rc != SQLITE_OK) {
    return InternalFailureError(
        absl::StrFormat("SqliteCheckpointStore: cannot open %s: %s", state->path,
                        state->db != nullptr ? sqlite3_errmsg(state->db) : sqlite3_errstr(rc)));
  }
  sqlite3_busy_timeout(state->db,
                       static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
  // WAL: a commit appends to the log and syncs it once; readers do not block the writer.
  // synchronous=FULL: a returned write is on disk, as the other stores promise.
  for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                          "CREATE TABLE IF NOT EXISTS rill_leases ("
                          "  application BLOB NOT NULL, lease_key BLOB NOT NULL,"
                          "  owner BLOB NOT NULL, counter INTEGER NOT NULL,"
                          "  checkpoint BLOB NOT NULL, owner_switches INTEGER NOT NULL,"
                          "  parents BLOB NOT NULL,"
                          "  PRIMARY KEY (application, lease_key)) WITHOUT ROWID"}) {
    if (absl::Status s = state->Exec(sql); !s.ok()) return s;
  }
  constexpr const char* kColumns = "lease_key, owner, counter, checkpoint, owner_switches, parents";
  const std::string select_one = absl::StrCat("SELECT ", kColumns,
                                              " FROM rill_leases WHERE application = ?1 AND "
                                              "lease_key = ?2");
  const std::string select_all = absl::StrCat(
      "SELECT ", kColumns, " FROM rill_leases WHERE application = ?1 ORDER BY lease_key");
  struct {
    const char* sql;
    Statement* stmt;
  } statements[] = {
      {select_one.c_str(), &state->select_one},
      {select_all.c_str(), &state->select_all},
      {"INSERT OR IGNORE INTO rill_leases (application, lease_key, owner, counter, checkpoint,"
       " owner_switches, parents) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
       &state->insert},
      {"UPDATE rill_leases SET owner = ?1, counter = ?2, checkpoint = ?3, owner_switches = ?4,"
       " parents = ?5 WHERE application = ?6 AND lease_key = ?7 AND counter = ?8",
       &state->update},
      {"DELETE FROM rill_leases WHERE application = ?1 AND lease_key = ?2 AND counter = ?3",
       &state->remove},
      {"SELECT counter FROM rill_leases WHERE application = ?1 AND lease_key = ?2",
       &state->counter_of},
  };
  for (const auto& [sql, stmt] : statements) {
    if (absl::Status s = state->Prepare(sql, stmt); !s.ok()) return s;
  }
  return std::unique_ptr<SqliteCheckpointStore>(new SqliteCheckpointStore(std::move(state)));
}

SqliteCheckpointStore::SqliteCheckpointStore(std::unique_ptr<State> state)
    : state_(std::move(state)) {}
SqliteCheckpointStore::~SqliteCheckpointStore() = default;

const std::string& SqliteCheckpointStore::path() const { return state_->path; }

absl::StatusOr<std::vector<Lease>> SqliteCheckpointStore::ListLeases(std::string_view application) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  State& st = *state_;
  internal::MutexLock<internal::Mutex> lock(&st.mu);
  st.select_all.Reset();
  st.select_all.BindBlob(1, application);
  std::vector<Lease> leases;
  for (;;) {
    const int rc = sqlite3_step(st.select_all.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return st.Error("listing leases");
    absl::StatusOr<Lease> lease = st.RowToLease(st.select_all);
    if (!lease.ok()) return lease.status();
    leases.push_back(*std::move(lease));
  }
  st.select_all.Reset();  // ends the read transaction
  return leases;
}

absl::StatusOr<std::optional<Lease>> SqliteCheckpointStore::GetLease(std::string_view application,
                                                                     std::string_view lease_key) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease_key); !s.ok()) return s;
  internal::MutexLock<internal::Mutex> lock(&state_->mu);
  absl::StatusOr<std::optional<Lease>> lease = state_->Get(application, lease_key);
  state_->select_one.Reset();
  return lease;
}

absl::StatusOr<bool> SqliteCheckpointStore::CreateLeaseIfAbsent(std::string_view application,
                                                                const Lease& lease) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease.lease_key); !s.ok()) return s;
  State& st = *state_;
  internal::MutexLock<internal::Mutex> lock(&st.mu);
  // A single statement is its own transaction (autocommit).
  return st.InsertOne(application, lease);
}

absl::StatusOr<std::vector<bool>> SqliteCheckpointStore::CreateLeasesIfAbsent(
    std::string_view application, absl::Span<const Lease> leases) {
  if (absl::Status s = internal::ValidateLeases(application, leases); !s.ok()) return s;
  State& st = *state_;
  internal::MutexLock<internal::Mutex> lock(&st.mu);
  if (absl::Status s = st.Begin(); !s.ok()) return s;
  std::vector<bool> created;
  created.reserve(leases.size());
  absl::Status failure;
  for (const Lease& lease : leases) {
    absl::StatusOr<bool> c = st.InsertOne(application, lease);
    if (!c.ok()) {
      failure = c.status();
      break;
    }
    created.push_back(*c);
  }
  if (absl::Status s = st.End(std::move(failure)); !s.ok()) return s;
  return created;
}

absl::Status SqliteCheckpointStore::UpdateLease(std::string_view application, const Lease& lease,
                                                int64_t expected_counter) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease.lease_key); !s.ok()) return s;
  State& st = *state_;
  internal::MutexLock<internal::Mutex> lock(&st.mu);
  if (absl::Status s = st.Begin(); !s.ok()) return s;
  absl::Status refused = st.UpdateOne(application, lease, expected_counter);
  // A refusal is an answer, not a failure of the transaction.
  const bool failed = GetErrorCode(refused) == ErrorCode::kInternalFailure;
  if (absl::Status s = st.End(failed ? refused : absl::OkStatus()); !s.ok()) return s;
  return refused;
}

absl::Status SqliteCheckpointStore::DeleteLease(std::string_view application,
                                                std::string_view lease_key,
                                                int64_t expected_counter) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  if (absl::Status s = internal::ValidateLeaseKey(lease_key); !s.ok()) return s;
  State& st = *state_;
  internal::MutexLock<internal::Mutex> lock(&st.mu);
  if (absl::Status s = st.Begin(); !s.ok()) return s;
  st.remove.Reset();
  st.remove.BindBlob(1, application);
  st.remove.BindBlob(2, lease_key);
  st.remove.BindInt(3, expected_counter);
  absl::Status refused;
  if (sqlite3_step(st.remove.get()) != SQLITE_DONE) {
    refused = st.Error("deleting a lease");
  } else if (sqlite3_changes(st.db) != 1) {
    refused = st.Refused(application, lease_key, expected_counter);
  }
  const bool failed = GetErrorCode(refused) == ErrorCode::kInternalFailure;
  if (absl::Status s = st.End(failed ? refused : absl::OkStatus()); !s.ok()) return s;
  return refused;
}

absl::StatusOr<std::vector<absl::Status>> SqliteCheckpointStore::UpdateLeases(
    std::string_view application, absl::Span<const LeaseUpdate> updates) {
  if (absl::Status s = internal::ValidateApplicationName(application); !s.ok()) return s;
  State& st = *state_;
  internal::MutexLock<internal::Mutex> lock(&st.mu);
  if (absl::Status s = st.Begin(); !s.ok()) return s;
  std::vector<absl::Status> results;
  results.reserve(updates.size());
  absl::Status failure;
  for (const LeaseUpdate& u : updates) {
    absl::Status r = internal::ValidateLeaseKey(u.lease.lease_key);
    if (r.ok()) r = st.UpdateOne(application, u.lease, u.expected_counter);
    if (GetErrorCode(r) == ErrorCode::kInternalFailure) {
      failure = std::move(r);
      break;
    }
    results.push_back(std::move(r));
  }
  if (absl::Status s = st.End(std::move(failure)); !s.ok()) return s;
  return results;
}

}  // namespace rill
