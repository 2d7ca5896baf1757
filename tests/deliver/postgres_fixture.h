// A throwaway PostgreSQL server for tests and examples: initdb into a temporary directory, a
// server on a free 127.0.0.1 port with fsync off, removed when done. No Catch2 here: an example
// program uses it too.
//
// Where the binaries come from: initdb, pg_ctl and postgres in one directory of PATH, else the
// highest version under /usr/lib/postgresql/<version>/bin (Debian's layout). Without them Start()
// fails saying to run scripts/install-deps.sh. Run as root, the server runs as the `postgres`
// system user (else `nobody`), since initdb and postgres refuse root.
//
// RILL_TEST_POSTGRES: set to a libpq connection string (e.g. "host=db port=5432 user=rill
// dbname=postgres"; the user must be allowed to create databases) and Start() uses that server
// instead of starting one. Stop() and Restart() then fail (kInvalidArgument): tests that take the
// server down ask for a local one (Where::kLocal).
//
// If the process dies without running destructors (a crash, a kill), a watchdog process started
// with the server stops it and removes its directory.
//
// Example:
//   using rill::testing::TemporaryPostgres;
//   absl::StatusOr<TemporaryPostgres*> pg = TemporaryPostgres::Shared();
//   if (!pg.ok()) return Fail(pg.status());
//   absl::StatusOr<std::string> db = (*pg)->CreateDatabase("my_test");
//   PGconn* conn = PQconnectdb(db->c_str());
//
// Thread safety: none; one thread uses a TemporaryPostgres (Shared() itself is thread-safe).
#ifndef RILL_TESTS_DELIVER_POSTGRES_FIXTURE_H_
#define RILL_TESTS_DELIVER_POSTGRES_FIXTURE_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rill::testing {

class TemporaryPostgres {
 public:
  enum class Where {
    kEnvironmentOrLocal,  // RILL_TEST_POSTGRES when set, else a local server
    kLocal,               // always a local server (for tests that stop it)
  };

  // Starts a server (or takes RILL_TEST_POSTGRES's). Errors (rill::MakeError): kResourceNotFound
  // when no PostgreSQL binaries are installed; kInternalFailure with initdb's or pg_ctl's output
  // when they fail.
  static absl::StatusOr<std::unique_ptr<TemporaryPostgres>> Start(
      Where where = Where::kEnvironmentOrLocal);

  // One server for the whole process, started by the first call and stopped at exit. Tests that
  // share it use their own databases (CreateDatabase) or tables.
  static absl::StatusOr<TemporaryPostgres*> Shared();

  ~TemporaryPostgres();
  TemporaryPostgres(const TemporaryPostgres&) = delete;
  TemporaryPostgres& operator=(const TemporaryPostgres&) = delete;

  // "host=127.0.0.1 port=N user=rill dbname=postgres" (or RILL_TEST_POSTGRES's string).
  const std::string& conninfo() const { return conninfo_; }
  int port() const { return port_; }
  bool external() const { return data_dir_.empty(); }

  // Drops database `name` if it exists, creates it empty and returns conninfo() with
  // dbname=`name`. `name` is an identifier taken literally (quoted for the server).
  absl::StatusOr<std::string> CreateDatabase(std::string_view name);

  // pg_ctl stop -m fast: connections are cut, clients see the server gone.
  absl::Status Stop();
  // Starts the stopped server again on the same port (Stop() first if it runs).
  absl::Status Restart();

 private:
  TemporaryPostgres() = default;
  absl::Status StartServer();

  std::string conninfo_;
  int port_ = 0;
  std::string bin_dir_;   // initdb, pg_ctl, postgres
  std::string root_dir_;  // the temporary directory: data/, the socket, server.log
  std::string data_dir_;  // empty for an external server
  // The user the server runs as when we are root (uid/gid), else -1.
  uid_t run_uid_ = static_cast<uid_t>(-1);
  gid_t run_gid_ = static_cast<gid_t>(-1);
  bool running_ = false;
  pid_t watchdog_pid_ = -1;
  int watchdog_fd_ = -1;  // closing it tells the watchdog to clean up
};

// Runs `sql` (one statement, or several without results that matter) on a new connection to
// `conninfo`; returns the rows of the last result as text, std::nullopt for NULL.
// kInternalFailure with the server's message when it fails.
absl::StatusOr<std::vector<std::vector<std::optional<std::string>>>> QueryPostgres(
    const std::string& conninfo, const std::string& sql);

}  // namespace rill::testing

#endif  // RILL_TESTS_DELIVER_POSTGRES_FIXTURE_H_
