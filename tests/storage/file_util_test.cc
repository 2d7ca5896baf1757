#include "storage/file_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "testing/fixtures.h"

namespace rill::internal {
namespace {

using ::rill::testing::TempDir;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST_CASE("WriteFileAtomically creates and replaces a file", "[file_util]") {
  TempDir dir;
  const std::string path = dir.File("MANIFEST");
  REQUIRE(WriteFileAtomically(path, "first").ok());
  CHECK(*ReadFile(path) == "first");
  REQUIRE(WriteFileAtomically(path, std::string(100'000, 'x')).ok());
  CHECK(*ReadFile(path) == std::string(100'000, 'x'));
  REQUIRE(WriteFileAtomically(path, "").ok());
  CHECK(ReadFile(path)->empty());
  // No temporary file is left behind.
  size_t entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    (void)entry;
    ++entries;
  }
  CHECK(entries == 1);
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0600) == 0600);
}

TEST_CASE("WriteFileAtomically with a mode gives the file exactly that mode", "[file_util]") {
  TempDir dir;
  const std::string path = dir.File("keyring");
  // A temporary file left with wider permissions is not reused, and the umask does not apply.
  REQUIRE(WriteFileAtomically(path + ".tmp", "left by a crash").ok());
  REQUIRE(::chmod((path + ".tmp").c_str(), 0644) == 0);
  const mode_t old_umask = ::umask(0277);
  const absl::Status s = WriteFileAtomically(path, "secret", 0600);
  ::umask(old_umask);
  REQUIRE(s.ok());
  CHECK(*ReadFile(path) == "secret");
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(::access((path + ".tmp").c_str(), F_OK) != 0);
}

TEST_CASE("WriteFileAtomically fails cleanly in a missing directory", "[file_util]") {
  TempDir dir;
  const std::string path = dir.File("missing/MANIFEST");
  const absl::Status s = WriteFileAtomically(path, "x");
  CHECK(s.code() == absl::StatusCode::kInternal);
  CHECK(Msg(s).find(dir.File("missing")) != std::string::npos);
}

TEST_CASE("ReadFile reports a missing file as not found", "[file_util]") {
  TempDir dir;
  const absl::StatusOr<std::string> missing = ReadFile(dir.File("nope"));
  CHECK(absl::IsNotFound(missing.status()));
  CHECK(Msg(missing.status()).find(dir.File("nope")) != std::string::npos);
}

TEST_CASE("DirectoryOf splits paths", "[file_util]") {
  CHECK(DirectoryOf("a/b/c") == "a/b");
  CHECK(DirectoryOf("c") == ".");
  CHECK(DirectoryOf("/c") == "/");
  CHECK(DirectoryOf("/a/b") == "/a");
}

TEST_CASE("DirectoryLock excludes a second holder until released", "[file_util]") {
  TempDir dir;
  absl::StatusOr<DirectoryLock> first = DirectoryLock::Acquire(dir.path());
  REQUIRE(first.ok());
  CHECK(first->held());
  // flock locks belong to an open file description: a second open in this process conflicts.
  absl::StatusOr<DirectoryLock> second = DirectoryLock::Acquire(dir.path());
  REQUIRE(absl::IsFailedPrecondition(second.status()));
  CHECK(Msg(second.status()).find(dir.path()) != std::string::npos);
  CHECK(Msg(second.status()).find("locked") != std::string::npos);
  INFO(second.status());

  SECTION("released by Release") {
    first->Release();
    CHECK_FALSE(first->held());
    CHECK(DirectoryLock::Acquire(dir.path()).ok());
  }
  SECTION("released by destruction, and a moved lock still holds") {
    DirectoryLock moved = *std::move(first);
    CHECK(moved.held());
    CHECK_FALSE(DirectoryLock::Acquire(dir.path()).ok());
    { DirectoryLock gone = std::move(moved); }
    absl::StatusOr<DirectoryLock> third = DirectoryLock::Acquire(dir.path());
    CHECK(third.ok());
  }
}

TEST_CASE("DirectoryLock reports a missing directory", "[file_util]") {
  TempDir dir;
  const absl::StatusOr<DirectoryLock> lock = DirectoryLock::Acquire(dir.File("missing"));
  REQUIRE_FALSE(lock.ok());
  CHECK(Msg(lock.status()).find(dir.File("missing")) != std::string::npos);
}

}  // namespace
}  // namespace rill::internal
