#include "postgres_fixture.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "rill/base/error.h"

namespace rill::testing {
namespace {

constexpr char kBinaries[][9] = {"initdb", "pg_ctl", "postgres"};

bool HasBinaries(const std::string& dir) {
  for (const char* name : kBinaries) {
    if (access((dir + "/" + name).c_str(), X_OK) != 0) return false;
  }
  return true;
}

// PATH first, then Debian's /usr/lib/postgresql/<version>/bin, the highest version.
std::string FindBinDir() {
  if (const char* path = std::getenv("PATH")) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      if (HasBinaries(std::string(dir))) return std::string(dir);
    }
  }
  std::string best;
  std::vector<int> best_version;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    std::vector<int> version;
    bool ok = true;
    for (absl::string_view part : absl::StrSplit(name, '.')) {
      int n = 0;
      if (!absl::SimpleAtoi(part, &n)) ok = false;
      version.push_back(n);
    }
    const std::string bin = entry.path().string() + "/bin";
    if (ok && version > best_version && HasBinaries(bin)) {
      best = bin;
      best_version = std::move(version);
    }
  }
  return best;
}

// A port nobody listens on right now (it may be taken before the server binds it: the caller
// retries).
absl::StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return MakeError(ErrorCode::kInternalFailure, "socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return MakeError(ErrorCode::kInternalFailure,
                     absl::StrCat("binding 127.0.0.1:0 failed: ", std::strerror(errno)));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

struct RunAs {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  bool switch_user() const { return uid != static_cast<uid_t>(-1); }
};

// In a child between fork and exec only async-signal-safe calls are allowed: write, setgid, ...
void ChildFail(const char* what) {
  const char* err = std::strerror(errno);
  (void)!write(2, what, std::strlen(what));
  (void)!write(2, ": ", 2);
  (void)!write(2, err, std::strlen(err));
  (void)!write(2, "\n", 1);
  _exit(127);
}

void ChildBecome(const RunAs& as, const char* cwd) {
  if (as.switch_user()) {
    const gid_t gid = as.gid;
    if (setgroups(1, &gid) != 0) ChildFail("setgroups");
    if (setgid(as.gid) != 0) ChildFail("setgid");
    if (setuid(as.uid) != 0) ChildFail("setuid");
  }
  if (chdir(cwd) != 0) ChildFail("chdir");
}

std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return argv;
}

// Runs args[0] (a path) as `as` in `cwd` with stdin from /dev/null; its stdout and stderr are
// captured. kInternalFailure with the output if it cannot run or exits non-zero.
absl::StatusOr<std::string> Run(std::vector<std::string> args, const RunAs& as,
                                const std::string& cwd) {
  std::vector<char*> argv = Argv(args);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kInternalFailure, absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return MakeError(ErrorCode::kInternalFailure, absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0) {
      _exit(127);
    }
    ChildBecome(as, cwd.c_str());
    execv(argv[0], argv.data());
    ChildFail(argv[0]);
  }
  close(fds[1]);
  std::string output;
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n > 0) {
      output.append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string command;
    for (const std::string& a : args) absl::StrAppend(&command, command.empty() ? "" : " ", a);
    return MakeError(ErrorCode::kInternalFailure,
                     absl::StrCat("`", command, "` failed (status ", status, "):\n", output));
  }
  return output;
}

std::string FileTail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > max_bytes) text.erase(0, text.size() - max_bytes);
  return text;
}

// A conninfo value in single quotes, as libpq's keyword=value syntax wants.
std::string QuoteConninfoValue(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;
struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

void IgnoreNotice(void*, const char*) {}

absl::StatusOr<Conn> Connect(const std::string& conninfo) {
  Conn conn(PQconnectdb(conninfo.c_str()));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    return MakeError(ErrorCode::kInternalFailure,
                     absl::StrCat("cannot connect to PostgreSQL (", conninfo,
                                  "): ", conn ? PQerrorMessage(conn.get()) : "out of memory"));
  }
  // Notices ("... does not exist, skipping") would go to stderr.
  PQsetNoticeProcessor(conn.get(), IgnoreNotice, nullptr);
  return conn;
}

absl::StatusOr<Result> Exec(PGconn* conn, const std::string& sql) {
  Result result(PQexec(conn, sql.c_str()));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return MakeError(ErrorCode::kInternalFailure,
                     absl::StrCat("`", sql, "` failed: ", PQerrorMessage(conn)));
  }
  return result;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TemporaryPostgres>> TemporaryPostgres::Start(Where where) {
  std::unique_ptr<TemporaryPostgres> pg(new TemporaryPostgres());
  if (const char* env = std::getenv("RILL_TEST_POSTGRES");
      env != nullptr && *env != '\0' && where == Where::kEnvironmentOrLocal) {
    pg->conninfo_ = env;
    absl::StatusOr<Conn> conn = Connect(pg->conninfo_);
    if (!conn.ok()) return conn.status();
    pg->port_ = std::atoi(PQport(conn->get()));
    return pg;
  }

  pg->bin_dir_ = FindBinDir();
  if (pg->bin_dir_.empty()) {
    return MakeError(ErrorCode::kResourceNotFound,
                     "the PostgreSQL server (initdb, pg_ctl, postgres) is not installed: not in "
                     "PATH nor in /usr/lib/postgresql/*/bin. Run scripts/install-deps.sh (or set "
                     "RILL_TEST_POSTGRES to a server's connection string).");
  }

  // initdb and postgres refuse to run as root.
  if (geteuid() == 0) {
    const passwd* user = getpwnam("postgres");
    if (user == nullptr) user = getpwnam("nobody");
    if (user == nullptr) {
      return MakeError(ErrorCode::kInternalFailure,
                       "running as root, and neither the user postgres nor nobody exists to run "
                       "the PostgreSQL server as");
    }
    pg->run_uid_ = user->pw_uid;
    pg->run_gid_ = user->pw_gid;
  }

  // Short, and reachable by the server's user: the socket's path must fit in 107 bytes, and
  // root's TMPDIR may be private.
  std::string base = "/tmp";
  if (const char* tmp = std::getenv("TMPDIR");
      tmp != nullptr && *tmp != '\0' && std::strlen(tmp) < 60 && geteuid() != 0) {
    base = tmp;
  }
  std::string root = base + "/rill-pg-XXXXXX";
  if (mkdtemp(root.data()) == nullptr) {
    return MakeError(ErrorCode::kInternalFailure,
                     absl::StrCat("mkdtemp(", root, "): ", std::strerror(errno)));
  }
  pg->root_dir_ = root;
  pg->data_dir_ = root + "/data";
  if (pg->run_uid_ != static_cast<uid_t>(-1) &&
      chown(root.c_str(), pg->run_uid_, pg->run_gid_) != 0) {
    return MakeError(ErrorCode::kInternalFailure,
                     absl::StrCat("chown(", root, "): ", std::strerror(errno)));
  }

  const RunAs as{pg->run_uid_, pg->run_gid_};
  // --locale=C: a minimal container may lack the locale LANG names, which initdb would refuse.
  absl::StatusOr<std::string> initdb =
      Run({pg->bin_dir_ + "/initdb", "-D", pg->data_dir_, "-A", "trust", "-U", "rill", "--no-sync",
           "-E", "UTF8", "--locale=C"},
          as, pg->root_dir_);
  if (!initdb.ok()) return initdb.status();

  // The watchdog: a shell, in its own session so that a signal to our process group spares it,
  // waits for EOF on a pipe whose write end only we hold; when we exit in any way it stops the
  // server and removes the directory.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kInternalFailure, absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  std::vector<std::string> args = {
      "/bin/sh",
      "-c",
      "cat >/dev/null; \"$0\" -D \"$1\" -m fast -w stop >/dev/null 2>&1; rm -rf \"$2\"",
      pg->bin_dir_ + "/pg_ctl",
      pg->data_dir_,
      pg->root_dir_};
  std::vector<char*> argv = Argv(args);
  const pid_t watchdog = fork();
  if (watchdog < 0) {
    close(fds[0]);
    close(fds[1]);
    return MakeError(ErrorCode::kInternalFailure, absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (watchdog == 0) {
    const int null_fd = open("/dev/null", O_WRONLY);
    if (null_fd < 0 || dup2(fds[0], 0) < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0) {
      _exit(127);
    }
    setsid();
    ChildBecome(as, "/");
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[0]);
  pg->watchdog_pid_ = watchdog;
  pg->watchdog_fd_ = fds[1];

  if (absl::Status started = pg->StartServer(); !started.ok()) return started;
  return pg;
}

absl::Status TemporaryPostgres::StartServer() {
  const bool same_port = port_ != 0;
  absl::Status last;
  // A free port may be taken before the server binds it: try another.
  for (int tries = 0; tries < (same_port ? 1 : 3); ++tries) {
    if (!same_port) {
      absl::StatusOr<int> port = FreePort();
      if (!port.ok()) return port.status();
      port_ = *port;
    }
    const std::string log = root_dir_ + "/server.log";
    absl::StatusOr<std::string> started =
        Run({bin_dir_ + "/pg_ctl", "-D", data_dir_, "-l", log, "-w", "-t", "120", "-o",
             absl::StrCat("-p ", port_, " -k ", root_dir_,
                          " -c listen_addresses=127.0.0.1 -c fsync=off"),
             "start"},
            RunAs{run_uid_, run_gid_}, root_dir_);
    if (started.ok()) {
      running_ = true;
      conninfo_ = absl::StrCat("host=127.0.0.1 port=", port_, " user=rill dbname=postgres");
      return absl::OkStatus();
    }
    last =
        MakeError(ErrorCode::kInternalFailure,
                  absl::StrCat(started.status().message(), "\nserver.log:\n", FileTail(log, 4000)));
    if (!same_port) port_ = 0;
  }
  return last;
}

absl::Status TemporaryPostgres::Stop() {
  if (external()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the server of RILL_TEST_POSTGRES is not ours to stop");
  }
  if (!running_) return absl::OkStatus();
  absl::StatusOr<std::string> stopped =
      Run({bin_dir_ + "/pg_ctl", "-D", data_dir_, "-m", "fast", "-w", "-t", "120", "stop"},
          RunAs{run_uid_, run_gid_}, root_dir_);
  if (!stopped.ok()) return stopped.status();
  running_ = false;
  return absl::OkStatus();
}

absl::Status TemporaryPostgres::Restart() {
  if (absl::Status stopped = Stop(); !stopped.ok()) return stopped;
  return StartServer();
}

TemporaryPostgres::~TemporaryPostgres() {
  if (external()) return;
  (void)Stop();
  std::error_code ec;
  if (!root_dir_.empty()) std::filesystem::remove_all(root_dir_, ec);
  if (watchdog_fd_ >= 0) close(watchdog_fd_);
  if (watchdog_pid_ > 0) {
    while (waitpid(watchdog_pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

absl::StatusOr<TemporaryPostgres*> TemporaryPostgres::Shared() {
  static std::mutex mu;
  static std::unique_ptr<TemporaryPostgres> shared;
  static absl::Status failed;
  std::lock_guard<std::mutex> lock(mu);
  if (shared != nullptr) return shared.get();
  // A failure is kept: each test reports it at once instead of retrying a slow start.
  if (!failed.ok()) return failed;
  absl::StatusOr<std::unique_ptr<TemporaryPostgres>> started = Start();
  if (!started.ok()) {
    failed = started.status();
    return failed;
  }
  shared = std::move(*started);
  return shared.get();
}

absl::StatusOr<std::string> TemporaryPostgres::CreateDatabase(std::string_view name) {
  absl::StatusOr<Conn> conn = Connect(conninfo_);
  if (!conn.ok()) return conn.status();
  char* quoted = PQescapeIdentifier(conn->get(), name.data(), name.size());
  if (quoted == nullptr) {
    return MakeError(ErrorCode::kInternalFailure, PQerrorMessage(conn->get()));
  }
  const std::string identifier = quoted;
  PQfreemem(quoted);
  for (const std::string& sql : {absl::StrCat("DROP DATABASE IF EXISTS ", identifier),
                                 absl::StrCat("CREATE DATABASE ", identifier)}) {
    absl::StatusOr<Result> result = Exec(conn->get(), sql);
    if (!result.ok()) return result.status();
  }
  // conninfo_ with its dbname replaced (it may be a URI: parse rather than append).
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo_.c_str(), &error);
  if (options == nullptr) {
    std::string message = error != nullptr ? error : "out of memory";
    PQfreemem(error);
    return MakeError(ErrorCode::kInternalFailure, message);
  }
  std::string out;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || std::string_view(o->keyword) == "dbname") continue;
    absl::StrAppend(&out, o->keyword, "=", QuoteConninfoValue(o->val), " ");
  }
  PQconninfoFree(options);
  absl::StrAppend(&out, "dbname=", QuoteConninfoValue(name));
  return out;
}

absl::StatusOr<std::vector<std::vector<std::optional<std::string>>>> QueryPostgres(
    const std::string& conninfo, const std::string& sql) {
  absl::StatusOr<Conn> conn = Connect(conninfo);
  if (!conn.ok()) return conn.status();
  absl::StatusOr<Result> result = Exec(conn->get(), sql);
  if (!result.ok()) return result.status();
  std::vector<std::vector<std::optional<std::string>>> rows;
  PGresult* r = result->get();
  for (int i = 0; i < PQntuples(r); ++i) {
    std::vector<std::optional<std::string>>& row = rows.emplace_back();
    for (int j = 0; j < PQnfields(r); ++j) {
      if (PQgetisnull(r, i, j)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(r, i, j), PQgetlength(r, i, j)));
      }
    }
  }
  return rows;
}

}  // namespace rill::testing
