// rill groups: the leases of consumer applications in a FileCheckpointStore or a
// SqliteCheckpointStore, with each shard's lag (records after the checkpoint).
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/str_format.h"
#include "cli_testing.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/sqlite_checkpoint_store.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

using cli_testing::Rill;
using cli_testing::RunResult;

// A stream of two shards with 3 records in shard 0 and 2 in shard 1; the sequence numbers of
// shard 0's records.
std::vector<SequenceNumber> MakeStream(const std::string& dir) {
  auto stream =
      testing::MustCreate(cli_testing::DurableOptions(dir, cli_testing::RecentClock(), 2));
  std::vector<SequenceNumber> shard0;
  for (int i = 0; i < 3; ++i) {
    shard0.push_back(
        testing::MustPut(*stream, cli_testing::KeyForShard(0, 2, i), "x").sequence_number);
  }
  for (int i = 0; i < 2; ++i) testing::MustPut(*stream, cli_testing::KeyForShard(1, 2, i), "y");
  return shard0;
}

void AddLeases(CheckpointStore& store, const std::vector<SequenceNumber>& shard0) {
  Lease a{.lease_key = "shardId-000000000000",
          .owner = "worker-1",
          .counter = 7,
          .checkpoint = shard0[0].ToString(),
          .owner_switches_since_checkpoint = 0,
          .parent_shard_ids = {}};
  Lease b{.lease_key = "shardId-000000000001",
          .owner = "",
          .counter = 2,
          .checkpoint = std::string(kCheckpointTrimHorizon),
          .owner_switches_since_checkpoint = 0,
          .parent_shard_ids = {}};
  REQUIRE(*store.CreateLeaseIfAbsent("billing", a));
  REQUIRE(*store.CreateLeaseIfAbsent("billing", b));
  Lease c = a;
  c.owner = "auditor";
  c.checkpoint = std::string(kCheckpointLatest);
  c.counter = 1;
  REQUIRE(*store.CreateLeaseIfAbsent("audit", c));
}

std::vector<std::string> ExpectedTable(const std::vector<SequenceNumber>& shard0) {
  const std::string cp = shard0[0].ToString();
  return {
      absl::StrFormat("%-11s  %-20s  %-8s  %-38s  %3s  %7s", "APPLICATION", "SHARD", "OWNER",
                      "CHECKPOINT", "LAG", "COUNTER"),
      absl::StrFormat("%-11s  %-20s  %-8s  %-38s  %3s  %7s", "audit", "shardId-000000000000",
                      "auditor", "LATEST", "-", "1"),
      absl::StrFormat("%-11s  %-20s  %-8s  %-38s  %3s  %7s", "billing", "shardId-000000000000",
                      "worker-1", cp, "2", "7"),
      absl::StrFormat("%-11s  %-20s  %-8s  %-38s  %3s  %7s", "billing", "shardId-000000000001", "-",
                      "TRIM_HORIZON", "2", "2"),
  };
}

TEST_CASE("groups lists the leases of a FileCheckpointStore with their lag", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  testing::TempDir store_dir("cli-store");
  const std::vector<SequenceNumber> shard0 = MakeStream(dir.path());
  {
    auto store = FileCheckpointStore::Open(store_dir.path());
    REQUIRE(store.ok());
    AddLeases(**store, shard0);
  }
  RunResult r = Rill({"groups", dir.path(), "--store", store_dir.path()});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(r.lines() == ExpectedTable(shard0));

  r = Rill({"groups", dir.path(), "--store", store_dir.path(), "--app", "billing", "--json"});
  CHECK(r.exit_code == 0);
  CHECK(r.lines() ==
        std::vector<std::string>{
            absl::StrFormat(
                "{\"application\":\"billing\",\"shard_id\":\"shardId-000000000000\",\"owner\":"
                "\"worker-1\",\"checkpoint\":\"%s\",\"lag\":2,\"counter\":7,"
                "\"owner_switches_since_checkpoint\":0,\"parent_shard_ids\":[],"
                "\"shard_exists\":true}",
                shard0[0].ToString()),
            "{\"application\":\"billing\",\"shard_id\":\"shardId-000000000001\",\"owner\":null,"
            "\"checkpoint\":\"TRIM_HORIZON\",\"lag\":2,\"counter\":2,"
            "\"owner_switches_since_checkpoint\":0,\"parent_shard_ids\":[],"
            "\"shard_exists\":true}",
        });

  r = Rill({"groups", dir.path(), "--store", store_dir.path(), "--app", "nobody"});
  CHECK(r.exit_code == 2);
  CHECK(r.err ==
        absl::StrFormat("rill: error: application nobody has no leases in %s\n", store_dir.path()));
  r = Rill({"groups", dir.path(), "--store", store_dir.File("missing")});
  CHECK(r.exit_code == 2);
}

TEST_CASE("groups reads a SqliteCheckpointStore file", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  testing::TempDir store_dir("cli-store");
  const std::vector<SequenceNumber> shard0 = MakeStream(dir.path());
  const std::string db = store_dir.File("leases.db");
  {
    auto store = SqliteCheckpointStore::Open(db);
    REQUIRE(store.ok());
    AddLeases(**store, shard0);
  }
  RunResult r = Rill({"groups", dir.path(), "--store", db});
  CHECK(r.exit_code == 0);
  CHECK(r.lines() == ExpectedTable(shard0));
}

}  // namespace
}  // namespace rill
