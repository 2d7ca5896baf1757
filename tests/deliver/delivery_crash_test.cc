// The crash test: a delivering process (delivery_runner) is SIGKILLed 25 times at random points
// while it puts records and delivers them to zstd objects and to PostgreSQL. After every kill no
// partial object is visible; at the end, after a last run that drains everything:
//   - every acknowledged record is in the objects at least once and in the table exactly once,
//     unless the transformation failed it;
//   - the error outputs hold exactly the records that failed (every N divisible by 97).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <zstd.h>

#include <libpq-fe.h>
#include <simdjson.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "deliver/postgres_fixture.h"
#include "testing/fixtures.h"

extern char** environ;

namespace rill {
namespace {

pid_t Spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  REQUIRE(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) == 0);
  return pid;
}

int Wait(pid_t pid) {
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return status;
}

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::filesystem::path> Objects(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> files;
  if (!std::filesystem::exists(root)) return files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.is_regular_file() && e.path().string().find(".rill-staging") == std::string::npos) {
      files.push_back(e.path());
    }
  }
  return files;
}

// The N of each record in a delivered object (JSON lines, zstd).
void ReadObject(const std::filesystem::path& path, std::multiset<int64_t>* out) {
  const std::string z = ReadAll(path);
  const unsigned long long size = ZSTD_getFrameContentSize(z.data(), z.size());
  INFO(path.string());
  REQUIRE(size != ZSTD_CONTENTSIZE_ERROR);
  REQUIRE(size != ZSTD_CONTENTSIZE_UNKNOWN);
  std::string raw(size, '\0');
  const size_t n = ZSTD_decompress(raw.data(), raw.size(), z.data(), z.size());
  REQUIRE_FALSE(ZSTD_isError(n));
  REQUIRE(n == size);
  REQUIRE((raw.empty() || raw.back() == '\n'));
  simdjson::dom::parser parser;
  std::istringstream lines(raw);
  std::string line;
  while (std::getline(lines, line)) {
    simdjson::dom::element doc = parser.parse(line);
    out->insert(doc["n"].get_int64().value());
  }
}

// The N of each record in an error output (failed-record documents, rawData base64).
void ReadErrors(const std::filesystem::path& path, std::multiset<int64_t>* out) {
  simdjson::dom::parser parser;
  std::istringstream lines(ReadAll(path));
  std::string line;
  while (std::getline(lines, line)) {
    simdjson::dom::element doc = parser.parse(line);
    CHECK(std::string(doc["errorCode"].get_string().value()) == "Lambda.ProcessingFailedStatus");
    std::string raw;
    REQUIRE(absl::Base64Unescape(std::string(doc["rawData"].get_string().value()), &raw));
    simdjson::dom::element record = parser.parse(raw);
    out->insert(record["n"].get_int64().value());
    // parse() invalidated doc; nothing of it is used after this line.
  }
}

TEST_CASE("SIGKILLed 25 times a delivering process loses no acknowledged record") {
  absl::StatusOr<testing::TemporaryPostgres*> pg = testing::TemporaryPostgres::Shared();
  INFO(pg.status().ToString());
  REQUIRE(pg.ok());
  absl::StatusOr<std::string> db = (*pg)->CreateDatabase("crash_test");
  REQUIRE(db.ok());
  {
    PGconn* conn = PQconnectdb(db->c_str());
    REQUIRE(PQstatus(conn) == CONNECTION_OK);
    PGresult* r = PQexec(conn, "CREATE TABLE events (n bigint NOT NULL, v text NOT NULL)");
    REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(conn);
  }
  testing::TempDir dir("deliver-crash");
  const std::filesystem::path root = dir.path();
  std::mt19937 rng(20261207);
  std::uniform_int_distribution<int> pause_ms(100, 900);
  for (int run = 0; run < 25; ++run) {
    const pid_t pid = Spawn({RILL_DELIVERY_RUNNER, root.string(), *db, "run", std::to_string(run)});
    // Real time: how long the process lives decides where the kill lands, mid-buffer or
    // mid-publish; what is checked holds wherever it lands.
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    REQUIRE(kill(pid, SIGKILL) == 0);
    const int status = Wait(pid);
    INFO("run " << run);
    REQUIRE(WIFSIGNALED(status));
    // No partial object: every visible object decompresses whole.
    std::multiset<int64_t> seen;
    for (const auto& object : Objects(root / "bucket" / "events")) ReadObject(object, &seen);
  }
  const int drained = Wait(Spawn({RILL_DELIVERY_RUNNER, root.string(), *db, "drain"}));
  REQUIRE(WIFEXITED(drained));
  REQUIRE(WEXITSTATUS(drained) == 0);

  std::set<int64_t> acked;
  for (const auto& e : std::filesystem::directory_iterator(root)) {
    if (e.path().filename().string().rfind("acked-", 0) != 0) continue;
    std::istringstream lines(ReadAll(e.path()));
    std::string line;
    while (std::getline(lines, line)) {
      int64_t n = 0;
      REQUIRE(absl::SimpleAtoi(line, &n));
      acked.insert(n);
    }
  }
  REQUIRE(acked.size() > 1000);

  std::multiset<int64_t> in_files;
  for (const auto& object : Objects(root / "bucket" / "events")) ReadObject(object, &in_files);
  std::multiset<int64_t> file_errors;
  for (const auto& object : Objects(root / "bucket" / "errors")) ReadErrors(object, &file_errors);
  std::multiset<int64_t> pg_errors;
  for (const auto& object : Objects(root / "pg-errors")) ReadErrors(object, &pg_errors);

  std::multiset<int64_t> in_table;
  {
    PGconn* conn = PQconnectdb(db->c_str());
    REQUIRE(PQstatus(conn) == CONNECTION_OK);
    PGresult* r = PQexec(conn, "SELECT n, v FROM events");
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); ++i) {
      int64_t n = 0;
      REQUIRE(absl::SimpleAtoi(PQgetvalue(r, i, 0), &n));
      in_table.insert(n);
      // The JSON's "\t" arrived as a tab.
      CHECK(std::string(PQgetvalue(r, i, 1)) == "value\t" + std::to_string(n));
    }
    PQclear(r);
    PQfinish(conn);
  }

  int64_t failed = 0;
  for (int64_t n : acked) {
    if (n % 97 == 0) {
      ++failed;
      CHECK(file_errors.count(n) >= 1);
      CHECK(pg_errors.count(n) >= 1);
    } else {
      CHECK(in_files.count(n) >= 1);
      CHECK(in_table.count(n) == 1);
    }
  }
  CHECK(failed > 0);
  // Nothing that failed was delivered, nothing that did not fail is in an error output, and the
  // table holds each record once.
  for (int64_t n : in_files) CHECK(n % 97 != 0);
  for (int64_t n : file_errors) CHECK(n % 97 == 0);
  for (int64_t n : pg_errors) CHECK(n % 97 == 0);
  for (int64_t n : in_table) {
    CHECK(n % 97 != 0);
    CHECK(in_table.count(n) == 1);
  }
}

}  // namespace
}  // namespace rill
