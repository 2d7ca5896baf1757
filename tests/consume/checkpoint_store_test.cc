// CheckpointStore: conditional-write semantics (both stores), races, and the file store's
// durability and damage reports.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <latch>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/base/error.h"
#include "rill/base/md5.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/sqlite_checkpoint_store.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

std::string ReadFile(const std::string& path) {
  if (fs::is_directory(path)) return "<a directory>";
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::set<std::string> ListDir(const std::string& path) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(path)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

Lease MakeLease(std::string key, int64_t counter = 0, std::string checkpoint = "TRIM_HORIZON") {
  Lease lease;
  lease.lease_key = std::move(key);
  lease.counter = counter;
  lease.checkpoint = std::move(checkpoint);
  return lease;
}

std::unique_ptr<FileCheckpointStore> OpenFileStore(const std::string& dir) {
  auto store = FileCheckpointStore::Open(dir);
  REQUIRE(store.ok());
  return std::move(*store);
}

std::unique_ptr<SqliteCheckpointStore> OpenSqliteStore(const std::string& path) {
  auto store = SqliteCheckpointStore::Open(path);
  REQUIRE(store.ok());
  return std::move(*store);
}

// UpdateLeases: every update on its own condition, one status each, in order.
void CheckBatchedUpdates(CheckpointStore& store) {
  REQUIRE(*store.CreateLeaseIfAbsent("batch", MakeLease("shardId-000000000000", 3)));
  REQUIRE(*store.CreateLeaseIfAbsent("batch", MakeLease("shardId-000000000001", 5)));
  REQUIRE(*store.CreateLeaseIfAbsent("batch", MakeLease("shardId-000000000002", 9)));
  Lease a = MakeLease("shardId-000000000000", 4, "100");
  a.owner = "w";
  Lease b = MakeLease("shardId-000000000001", 6, "200");  // expected counter wrong below
  Lease c = MakeLease("shardId-000000000002", 10, "300");
  c.parent_shard_ids = {"p1", std::string("p\0x", 4)};
  const std::vector<LeaseUpdate> updates = {
      {a, 3}, {b, 4}, {MakeLease("shardId-000000000007", 1), 0}, {MakeLease("", 1), 0}, {c, 9}};
  absl::StatusOr<std::vector<absl::Status>> results = store.UpdateLeases("batch", updates);
  REQUIRE(results.ok());
  REQUIRE(results->size() == 5);
  CHECK((*results)[0].ok());
  CHECK(GetErrorCode((*results)[1]) == ErrorCode::kResourceInUse);
  CHECK(GetErrorCode((*results)[2]) == ErrorCode::kResourceNotFound);
  CHECK(GetErrorCode((*results)[3]) == ErrorCode::kInvalidArgument);
  CHECK((*results)[4].ok());
  CHECK(**store.GetLease("batch", "shardId-000000000000") == a);
  CHECK(store.GetLease("batch", "shardId-000000000001")->value().counter == 5);
  CHECK(**store.GetLease("batch", "shardId-000000000002") == c);
  CHECK_FALSE(store.GetLease("batch", "shardId-000000000007")->has_value());
  // An empty batch, and a bad application name for the whole call.
  absl::StatusOr<std::vector<absl::Status>> none = store.UpdateLeases("batch", {});
  REQUIRE(none.ok());
  CHECK(none->empty());
  CHECK(GetErrorCode(store.UpdateLeases("a/b", updates).status()) == ErrorCode::kInvalidArgument);
}

// CreateLeasesIfAbsent: each lease created unless its key exists, answered in order; a bad
// name or an empty key fails the whole call before anything is written.
void CheckBatchedCreates(CheckpointStore& store) {
  Lease existing = MakeLease("shardId-000000000001", 7, "42");
  REQUIRE(*store.CreateLeaseIfAbsent("batch", existing));
  Lease a = MakeLease("shardId-000000000000", 0, "TRIM_HORIZON");
  a.parent_shard_ids = {"shardId-000000000009"};
  const Lease b = MakeLease("shardId-000000000001", 0, "LATEST");  // exists: not replaced
  const Lease c = MakeLease("shardId-000000000002", 0, "LATEST");
  const Lease c_again = MakeLease("shardId-000000000002", 5, "AT_TIMESTAMP");  // same key
  absl::StatusOr<std::vector<bool>> created =
      store.CreateLeasesIfAbsent("batch", std::vector<Lease>{a, b, c, c_again});
  REQUIRE(created.ok());
  CHECK(*created == std::vector<bool>{true, false, true, false});
  absl::StatusOr<std::vector<Lease>> all = store.ListLeases("batch");
  REQUIRE(all.ok());
  CHECK(*all == std::vector<Lease>{a, existing, c});
  // Whole-call errors write nothing.
  const Lease d = MakeLease("shardId-000000000003", 0, "LATEST");
  CHECK(GetErrorCode(store.CreateLeasesIfAbsent("batch", std::vector<Lease>{d, MakeLease("", 0)})
                         .status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(store.CreateLeasesIfAbsent("a/b", std::vector<Lease>{d}).status()) ==
        ErrorCode::kInvalidArgument);
  CHECK_FALSE(store.GetLease("batch", "shardId-000000000003")->has_value());
  absl::StatusOr<std::vector<bool>> none = store.CreateLeasesIfAbsent("batch", {});
  REQUIRE(none.ok());
  CHECK(none->empty());
}

// The semantics every CheckpointStore must have; run against every implementation.
void CheckConditionalWrites(CheckpointStore& store) {
  // Nothing yet.
  auto empty = store.ListLeases("app");
  REQUIRE(empty.ok());
  CHECK(empty->empty());
  auto missing = store.GetLease("app", "shardId-000000000000");
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());

  // Create, keeping the counter as given; a second create changes nothing.
  Lease b = MakeLease("shardId-000000000001", 7);
  b.owner = "worker-1";
  b.parent_shard_ids = {"shardId-000000000000"};
  auto created = store.CreateLeaseIfAbsent("app", b);
  REQUIRE(created.ok());
  CHECK(*created);
  Lease other = MakeLease("shardId-000000000001", 99, "LATEST");
  auto again = store.CreateLeaseIfAbsent("app", other);
  REQUIRE(again.ok());
  CHECK_FALSE(*again);
  auto got = store.GetLease("app", "shardId-000000000001");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK(**got == b);

  // Listed in lease-key order.
  REQUIRE(*store.CreateLeaseIfAbsent("app", MakeLease("shardId-000000000000")));
  REQUIRE(*store.CreateLeaseIfAbsent("app", MakeLease("shardId-000000000002")));
  auto all = store.ListLeases("app");
  REQUIRE(all.ok());
  REQUIRE(all->size() == 3);
  CHECK((*all)[0].lease_key == "shardId-000000000000");
  CHECK((*all)[1] == b);
  CHECK((*all)[2].lease_key == "shardId-000000000002");

  // Update: only with the stored counter; the row is stored exactly as given.
  Lease updated = b;
  updated.counter = 8;
  updated.checkpoint = "12345";
  updated.owner_switches_since_checkpoint = 2;
  absl::Status stale = store.UpdateLease("app", updated, 6);
  CHECK(GetErrorCode(stale) == ErrorCode::kResourceInUse);
  CHECK(**store.GetLease("app", "shardId-000000000001") == b);
  REQUIRE(store.UpdateLease("app", updated, 7).ok());
  CHECK(**store.GetLease("app", "shardId-000000000001") == updated);
  CHECK(GetErrorCode(store.UpdateLease("app", updated, 7)) == ErrorCode::kResourceInUse);
  CHECK(GetErrorCode(store.UpdateLease("app", MakeLease("shardId-000000000009"), 0)) ==
        ErrorCode::kResourceNotFound);

  // Delete: only with the stored counter.
  CHECK(GetErrorCode(store.DeleteLease("app", "shardId-000000000001", 7)) ==
        ErrorCode::kResourceInUse);
  REQUIRE(store.DeleteLease("app", "shardId-000000000001", 8).ok());
  CHECK_FALSE(store.GetLease("app", "shardId-000000000001")->has_value());
  CHECK(GetErrorCode(store.DeleteLease("app", "shardId-000000000001", 8)) ==
        ErrorCode::kResourceNotFound);
  CHECK(store.ListLeases("app")->size() == 2);

  // Applications are separate tables.
  CHECK(store.ListLeases("other-app")->empty());
  CHECK_FALSE(store.GetLease("other-app", "shardId-000000000000")->has_value());
  CHECK(GetErrorCode(store.UpdateLease("other-app", MakeLease("shardId-000000000000"), 0)) ==
        ErrorCode::kResourceNotFound);
  REQUIRE(*store.CreateLeaseIfAbsent("other-app", MakeLease("shardId-000000000000", 5)));
  CHECK(store.GetLease("other-app", "shardId-000000000000")->value().counter == 5);
  CHECK(store.GetLease("app", "shardId-000000000000")->value().counter == 0);
}

void CheckValidation(CheckpointStore& store) {
  const std::string too_long(129, 'a');
  for (const std::string& bad : {std::string(), too_long, std::string("a/b"), std::string("../x"),
                                 std::string("a b"), std::string("caf\xc3\xa9")}) {
    INFO("application '" << bad << "'");
    CHECK(GetErrorCode(store.ListLeases(bad).status()) == ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(store.GetLease(bad, "k").status()) == ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(store.CreateLeaseIfAbsent(bad, MakeLease("k")).status()) ==
          ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(store.UpdateLease(bad, MakeLease("k"), 0)) == ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(store.DeleteLease(bad, "k", 0)) == ErrorCode::kInvalidArgument);
  }
  CHECK(store.ListLeases(std::string(128, 'a')).ok());
  CHECK(store.ListLeases("A.z_0-9").ok());
  CHECK(GetErrorCode(store.GetLease("app", "").status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(store.CreateLeaseIfAbsent("app", MakeLease("")).status()) ==
        ErrorCode::kInvalidArgument);
}

// Each thread increments the lease `writes` times with read / conditional-update loops. The
// checkpoint holds a count incremented by the same writes, so a lost update would show.
void RaceCounters(CheckpointStore& a, CheckpointStore& b, int writes) {
  REQUIRE(*a.CreateLeaseIfAbsent("race", MakeLease("shardId-000000000000", 0, "0")));
  std::atomic<int> successes{0};
  std::atomic<int> conflicts{0};
  // Both threads read the row, wait for each other, then write: the first round always
  // conflicts, so the race is real however the threads are scheduled afterwards.
  std::latch both_read(2);
  auto writer = [&](CheckpointStore* store, const std::string& name) {
    for (int done = 0, round = 0; done < writes; ++round) {
      absl::StatusOr<std::optional<Lease>> got = store->GetLease("race", "shardId-000000000000");
      if (!got.ok() || !got->has_value()) return;
      if (round == 0) both_read.arrive_and_wait();
      Lease next = **got;
      next.counter = (*got)->counter + 1;
      next.owner = name;
      next.checkpoint = std::to_string(std::stoll((*got)->checkpoint) + 1);
      absl::Status s = store->UpdateLease("race", next, (*got)->counter);
      if (s.ok()) {
        ++done;
        ++successes;
      } else if (GetErrorCode(s) == ErrorCode::kResourceInUse) {
        ++conflicts;
      } else {
        FAIL_CHECK(s.ToString());
        return;
      }
    }
  };
  std::thread t1(writer, &a, "one");
  std::thread t2(writer, &b, "two");
  t1.join();
  t2.join();
  CHECK(successes.load() == 2 * writes);
  CHECK(conflicts.load() >= 1);
  auto final_lease = a.GetLease("race", "shardId-000000000000");
  REQUIRE(final_lease.ok());
  CHECK((*final_lease)->counter == 2 * writes);
  CHECK((*final_lease)->checkpoint == std::to_string(2 * writes));
}

TEST_CASE("in-memory store: writes are conditional on the lease counter", "[checkpoint_store]") {
  InMemoryCheckpointStore store;
  CheckConditionalWrites(store);
}

TEST_CASE("file store: writes are conditional on the lease counter", "[checkpoint_store]") {
  TempDir dir;
  auto store = OpenFileStore(dir.path());
  CheckConditionalWrites(*store);
}

TEST_CASE("both stores reject bad application names and empty lease keys", "[checkpoint_store]") {
  SECTION("in memory") {
    InMemoryCheckpointStore store;
    CheckValidation(store);
  }
  SECTION("file") {
    TempDir dir;
    auto store = OpenFileStore(dir.path());
    CheckValidation(*store);
    // Nothing was created for the rejected names.
    CHECK(ListDir(dir.path()) == std::set<std::string>{});
  }
}

TEST_CASE("in-memory store: two threads racing conditional writes lose no update",
          "[checkpoint_store][race]") {
  InMemoryCheckpointStore store;
  RaceCounters(store, store, 5000);
}

TEST_CASE("file store: two stores on one directory racing conditional writes lose no update",
          "[checkpoint_store][race]") {
  // Two store objects stand for two processes: each call takes its own flock.
  TempDir dir;
  auto a = OpenFileStore(dir.path());
  auto b = OpenFileStore(dir.path());
  RaceCounters(*a, *b, 100);
  CHECK(ListDir(dir.path()) == std::set<std::string>{"race.leases", "race.lock"});
}

TEST_CASE("file store: two processes racing conditional writes lose no update",
          "[checkpoint_store][race]") {
  TempDir dir;
  constexpr int kWrites = 100;
  REQUIRE(*OpenFileStore(dir.path())->CreateLeaseIfAbsent("race", MakeLease("k", 0, "0")));
  // Each process opens its own store and increments the row kWrites times.
  auto increment = [&dir]() -> int {
    auto store = FileCheckpointStore::Open(dir.path());
    if (!store.ok()) return 2;
    for (int done = 0; done < kWrites;) {
      auto got = (*store)->GetLease("race", "k");
      if (!got.ok() || !got->has_value()) return 3;
      Lease next = **got;
      next.counter += 1;
      next.checkpoint = std::to_string(std::stoll(next.checkpoint) + 1);
      absl::Status s = (*store)->UpdateLease("race", next, (*got)->counter);
      if (s.ok()) {
        ++done;
      } else if (GetErrorCode(s) != ErrorCode::kResourceInUse) {
        return 4;
      }
    }
    return 0;
  };
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) std::_Exit(increment());
  const int mine = increment();
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(mine == 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  auto lease = OpenFileStore(dir.path())->GetLease("race", "k");
  REQUIRE(lease.ok());
  CHECK((*lease)->counter == 2 * kWrites);
  CHECK((*lease)->checkpoint == std::to_string(2 * kWrites));
}

TEST_CASE("file store: leases survive re-opening, byte for byte", "[checkpoint_store][file]") {
  TempDir dir;
  std::vector<Lease> written;
  {
    auto store = OpenFileStore(dir.path());
    Lease odd = MakeLease("shardId-000000000003", -4, "");
    odd.owner = "worker with spaces\nand a newline: 12:34 \xff";
    odd.owner_switches_since_checkpoint = 3;
    odd.parent_shard_ids = {"shardId-000000000001", "", "x y"};
    Lease plain = MakeLease("shardId-000000000001", 41, "SHARD_END");
    plain.owner = "w1";
    Lease big = MakeLease("shardId-000000000002", INT64_MAX,
                          "49590338271490256608559692538361571095921575989136588898");
    for (const Lease& l : {odd, plain, big}) REQUIRE(*store->CreateLeaseIfAbsent("billing", l));
    REQUIRE(*store->CreateLeaseIfAbsent("audit", MakeLease("k", INT64_MIN)));
    written = {plain, big, odd};
    // A second store on the same directory sees the writes at once.
    auto peer = OpenFileStore(dir.path());
    CHECK(*peer->ListLeases("billing") == written);
  }
  auto reopened = OpenFileStore(dir.path() + "/");
  CHECK(reopened->directory() == dir.path() + "/");
  auto leases = reopened->ListLeases("billing");
  REQUIRE(leases.ok());
  CHECK(*leases == written);
  CHECK(reopened->GetLease("audit", "k")->value().counter == INT64_MIN);
  // And it keeps working: a conditional update on what the first store wrote.
  Lease next = written[0];
  next.counter = 42;
  REQUIRE(reopened->UpdateLease("billing", next, 41).ok());
  CHECK(OpenFileStore(dir.path())->GetLease("billing", "shardId-000000000001")->value() == next);
}

TEST_CASE("file store: Open creates missing directories", "[checkpoint_store][file]") {
  TempDir dir;
  const std::string nested = dir.File("a/b/c");
  auto store = OpenFileStore(nested);
  REQUIRE(*store->CreateLeaseIfAbsent("app", MakeLease("k")));
  CHECK(fs::is_regular_file(nested + "/app.leases"));
}

TEST_CASE("file store: every write replaces the file atomically and leaves no temp file",
          "[checkpoint_store][file]") {
  TempDir dir;
  auto store = OpenFileStore(dir.path());
  REQUIRE(*store->CreateLeaseIfAbsent("app", MakeLease("shardId-000000000000")));
  const std::string first = ReadFile(dir.File("app.leases"));
  CHECK(first.rfind("rill-leases 1\napplication 3:app\nleases 1\n", 0) == 0);
  // The last line is the checksum line: "md5 " + 32 hex digits.
  REQUIRE(first.size() > 37);
  CHECK(first.substr(first.size() - 37, 4) == "md5 ");
  CHECK(first.back() == '\n');

  // A new file is renamed over the old one; a reader holding the old one still sees it whole.
  struct stat before;
  REQUIRE(::stat(dir.File("app.leases").c_str(), &before) == 0);
  std::ifstream old_reader(dir.File("app.leases"), std::ios::binary);
  REQUIRE(store->UpdateLease("app", MakeLease("shardId-000000000000", 1, "0"), 0).ok());
  struct stat after;
  REQUIRE(::stat(dir.File("app.leases").c_str(), &after) == 0);
  CHECK(before.st_ino != after.st_ino);
  CHECK(std::string(std::istreambuf_iterator<char>(old_reader), std::istreambuf_iterator<char>()) ==
        first);
  CHECK(ReadFile(dir.File("app.leases")) != first);
  for (int i = 1; i < 20; ++i) {
    Lease l = MakeLease("shardId-000000000000", i + 1, std::to_string(i));
    REQUIRE(store->UpdateLease("app", l, i).ok());
    CHECK(ListDir(dir.path()) == std::set<std::string>{"app.leases", "app.lock"});
  }
  REQUIRE(store->DeleteLease("app", "shardId-000000000000", 20).ok());
  CHECK(store->ListLeases("app")->empty());
  CHECK(ListDir(dir.path()) == std::set<std::string>{"app.leases", "app.lock"});

  // A temp file left by a crash mid-write changes nothing and is replaced by the next write.
  WriteFile(dir.File("app.leases.tmp"), "half a tab");
  CHECK(store->ListLeases("app")->empty());
  REQUIRE(*store->CreateLeaseIfAbsent("app", MakeLease("k")));
  CHECK(ListDir(dir.path()) == std::set<std::string>{"app.leases", "app.lock"});
  CHECK(store->ListLeases("app")->size() == 1);
}

// Every call that reads `application`'s file fails with kInternalFailure naming the file and
// saying `what`, and the file is left exactly as it was.
void CheckEveryCallFails(FileCheckpointStore& store, const std::string& path,
                         const std::string& what) {
  const std::string bytes = ReadFile(path);
  std::vector<absl::Status> results = {
      store.ListLeases("app").status(),
      store.GetLease("app", "shardId-000000000000").status(),
      store.CreateLeaseIfAbsent("app", MakeLease("shardId-000000000009")).status(),
      store.UpdateLease("app", MakeLease("shardId-000000000000", 1), 0),
      store.DeleteLease("app", "shardId-000000000000", 0),
  };
  for (const absl::Status& s : results) {
    INFO(s.ToString());
    CHECK(GetErrorCode(s) == ErrorCode::kInternalFailure);
    CHECK_THAT(std::string(s.message()), Catch::Contains(path) && Catch::Contains(what));
  }
  CHECK(ReadFile(path) == bytes);
  // Other applications are unaffected.
  CHECK(store.ListLeases("other").ok());
}

TEST_CASE("file store: a damaged file is reported clearly by every call",
          "[checkpoint_store][file]") {
  TempDir dir;
  auto store = OpenFileStore(dir.path());
  const std::string path = dir.File("app.leases");
  for (int i = 0; i < 3; ++i) {
    Lease l = MakeLease("shardId-00000000000" + std::to_string(i), 5, "4959033827149025660");
    l.owner = "worker-" + std::to_string(i);
    REQUIRE(*store->CreateLeaseIfAbsent("app", l));
  }
  const std::string good = ReadFile(path);
  REQUIRE(good.size() > 150);

  SECTION("a flipped byte in the body") {
    std::string bad = good;
    bad[60] ^= 0x01;
    WriteFile(path, bad);
    CheckEveryCallFails(*store, path, "checksum mismatch");
  }
  SECTION("a flipped byte in the checksum") {
    std::string bad = good;
    bad[bad.size() - 5] = bad[bad.size() - 5] == '0' ? '1' : '0';
    WriteFile(path, bad);
    CheckEveryCallFails(*store, path, "checksum mismatch");
  }
  SECTION("truncated") {
    const size_t size = GENERATE_COPY(size_t{3}, size_t{20}, good.size() / 2, good.size() - 37,
                                      good.size() - 10, good.size() - 1);
    INFO("truncated to " << size << " of " << good.size() << " bytes");
    WriteFile(path, good.substr(0, size));
    CheckEveryCallFails(*store, path, "truncated");
  }
  SECTION("empty") {
    WriteFile(path, "");
    CheckEveryCallFails(*store, path, "empty");
  }
  SECTION("garbage") {
    std::string garbage;
    for (int i = 0; i < 500; ++i) garbage += static_cast<char>((i * 7919) % 256);
    WriteFile(path, garbage);
    CheckEveryCallFails(*store, path, "not a rill lease file");
  }
  SECTION("another application's file") {
    REQUIRE(*store->CreateLeaseIfAbsent("other", MakeLease("k")));
    fs::copy_file(dir.File("other.leases"), path, fs::copy_options::overwrite_existing);
    CheckEveryCallFails(*store, path, "holds the leases of application 'other', not 'app'");
  }
  SECTION("a future format version") {
    std::string bad = good;
    bad[12] = '2';  // "rill-leases 2"
    WriteFile(path, bad);
    CheckEveryCallFails(*store, path, "format version 2 is not supported");
  }
  SECTION("a correct checksum over a malformed body") {
    // What a buggy writer, or a hand edit followed by a re-hash, would produce.
    const std::string body = "rill-leases 1\napplication 3:app\nleases 1\nlease 999:x\n";
    WriteFile(path, body + "md5 " + Md5Hex(Md5(body)) + "\n");
    CheckEveryCallFails(*store, path, "malformed at byte 51: string runs past the end of the file");
  }
  SECTION("a correct checksum over duplicate keys") {
    const std::string row = "lease 1:k 0: 0 0: 0 0\n";
    const std::string body = "rill-leases 1\napplication 3:app\nleases 2\n" + row + row;
    WriteFile(path, body + "md5 " + Md5Hex(Md5(body)) + "\n");
    CheckEveryCallFails(*store, path, "lease 1 has an empty or duplicate key");
  }
  SECTION("the lease file is a directory") {
    fs::remove(path);
    fs::create_directory(path);
    CheckEveryCallFails(*store, path, "not a regular file");
  }
  // Restoring the good bytes recovers everything.
  fs::remove_all(path);
  WriteFile(path, good);
  CHECK(store->ListLeases("app")->size() == 3);
}

TEST_CASE("file store: unusable directories give clear errors", "[checkpoint_store][file]") {
  TempDir dir;
  SECTION("the path is a file") {
    WriteFile(dir.File("plain"), "x");
    auto store = FileCheckpointStore::Open(dir.File("plain"));
    REQUIRE_FALSE(store.ok());
    CHECK(GetErrorCode(store.status()) == ErrorCode::kInternalFailure);
    CHECK_THAT(std::string(store.status().message()), Catch::Contains(dir.File("plain")));
    auto below = FileCheckpointStore::Open(dir.File("plain/sub"));
    CHECK(GetErrorCode(below.status()) == ErrorCode::kInternalFailure);
  }
  SECTION("an empty path") {
    CHECK(GetErrorCode(FileCheckpointStore::Open("").status()) == ErrorCode::kInvalidArgument);
  }
  SECTION("the directory is removed while the store is open") {
    const std::string sub = dir.File("gone");
    auto store = OpenFileStore(sub);
    REQUIRE(*store->CreateLeaseIfAbsent("app", MakeLease("k")));
    fs::remove_all(sub);
    auto listed = store->ListLeases("app");
    CHECK(GetErrorCode(listed.status()) == ErrorCode::kInternalFailure);
    CHECK_THAT(std::string(listed.status().message()), Catch::Contains("was removed"));
    CHECK(GetErrorCode(store->CreateLeaseIfAbsent("app", MakeLease("j")).status()) ==
          ErrorCode::kInternalFailure);
  }
  SECTION("no permission") {
    if (::geteuid() == 0) {
      WARN("running as root, which permissions do not stop: skipped");
      return;
    }
    const std::string locked = dir.File("locked");
    auto store = OpenFileStore(locked);
    REQUIRE(*store->CreateLeaseIfAbsent("app", MakeLease("k")));
    fs::permissions(locked, fs::perms::none);
    auto listed = store->ListLeases("app");
    CHECK(GetErrorCode(listed.status()) == ErrorCode::kInternalFailure);
    CHECK_THAT(std::string(listed.status().message()), Catch::Contains(locked));
    auto reopened = FileCheckpointStore::Open(locked);
    CHECK(GetErrorCode(reopened.status()) == ErrorCode::kInternalFailure);
    fs::permissions(locked, fs::perms::owner_all);
  }
}

TEST_CASE("every store applies batched lease updates each on its own condition",
          "[checkpoint_store]") {
  SECTION("in memory") {
    InMemoryCheckpointStore store;
    CheckBatchedUpdates(store);
  }
  SECTION("file") {
    TempDir dir;
    auto store = OpenFileStore(dir.path());
    CheckBatchedUpdates(*store);
  }
  SECTION("sqlite") {
    TempDir dir;
    auto store = OpenSqliteStore(dir.File("leases.db"));
    CheckBatchedUpdates(*store);
  }
}

TEST_CASE("every store creates a batch of leases each unless present", "[checkpoint_store]") {
  SECTION("in memory") {
    InMemoryCheckpointStore store;
    CheckBatchedCreates(store);
  }
  SECTION("file") {
    TempDir dir;
    auto store = OpenFileStore(dir.path());
    CheckBatchedCreates(*store);
  }
  SECTION("sqlite") {
    TempDir dir;
    auto store = OpenSqliteStore(dir.File("leases.db"));
    CheckBatchedCreates(*store);
  }
  SECTION("the default of the interface") {
    // A store that implements only the single-row calls gets the loop.
    InMemoryCheckpointStore inner;
    struct SingleRowStore final : CheckpointStore {
      InMemoryCheckpointStore* inner;
      absl::StatusOr<std::vector<Lease>> ListLeases(std::string_view a) override {
        return inner->ListLeases(a);
      }
      absl::StatusOr<std::optional<Lease>> GetLease(std::string_view a,
                                                    std::string_view k) override {
        return inner->GetLease(a, k);
      }
      absl::StatusOr<bool> CreateLeaseIfAbsent(std::string_view a, const Lease& l) override {
        return inner->CreateLeaseIfAbsent(a, l);
      }
      absl::Status UpdateLease(std::string_view a, const Lease& l, int64_t e) override {
        return inner->UpdateLease(a, l, e);
      }
      absl::Status DeleteLease(std::string_view a, std::string_view k, int64_t e) override {
        return inner->DeleteLease(a, k, e);
      }
    } store;
    store.inner = &inner;
    CheckBatchedCreates(store);
  }
}

TEST_CASE("sqlite store: writes are conditional on the lease counter", "[checkpoint_store]") {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("leases.db"));
  CheckConditionalWrites(*store);
}

TEST_CASE("sqlite store: bad names and keys are rejected", "[checkpoint_store]") {
  TempDir dir;
  auto store = OpenSqliteStore(dir.File("leases.db"));
  CheckValidation(*store);
}

TEST_CASE("sqlite store: two stores on one file racing conditional writes lose no update",
          "[checkpoint_store][race]") {
  TempDir dir;
  auto a = OpenSqliteStore(dir.File("leases.db"));
  auto b = OpenSqliteStore(dir.File("leases.db"));
  RaceCounters(*a, *b, 100);
}

TEST_CASE("sqlite store: leases survive re-opening byte for byte", "[checkpoint_store]") {
  TempDir dir;
  const std::string path = dir.File("leases.db");
  Lease odd = MakeLease(std::string("key\0with\xff"
                                    "bytes",
                                    15),
                        42, std::string("\0\1", 2));
  odd.owner = std::string("own\0er", 6);
  odd.owner_switches_since_checkpoint = 3;
  odd.parent_shard_ids = {"", "shardId-000000000001", std::string(1000, 'p')};
  {
    auto store = OpenSqliteStore(path);
    REQUIRE(*store->CreateLeaseIfAbsent("app", odd));
    REQUIRE(*store->CreateLeaseIfAbsent("app", MakeLease("a")));
  }
  auto store = OpenSqliteStore(path);
  auto all = store->ListLeases("app");
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0] == MakeLease("a"));
  CHECK((*all)[1] == odd);
}

TEST_CASE("sqlite store: a file that is not a database is a clear error", "[checkpoint_store]") {
  TempDir dir;
  const std::string path = dir.File("leases.db");
  WriteFile(path, std::string(4096, 'x'));
  auto store = SqliteCheckpointStore::Open(path);
  REQUIRE_FALSE(store.ok());
  CHECK(GetErrorCode(store.status()) == ErrorCode::kInternalFailure);
  CHECK(std::string(store.status().message()).find(path) != std::string::npos);
  CHECK(GetErrorCode(SqliteCheckpointStore::Open("").status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(SqliteCheckpointStore::Open(dir.File("missing/dir/leases.db")).status()) ==
        ErrorCode::kInternalFailure);
}

}  // namespace
}  // namespace rill
