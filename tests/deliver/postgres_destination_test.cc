// The PostgreSQL destination against a real server (tests/deliver/postgres_fixture.h): one server
// per test process, one database per test case. Without PostgreSQL installed every case fails,
// saying to run scripts/install-deps.sh.
#include "deliver/postgres_destination.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "postgres_fixture.h"
#include "rill/base/error.h"
#include "testing/fixtures.h"

namespace rill::deliver_internal {
namespace {

using rill::testing::QueryPostgres;
using rill::testing::TemporaryPostgres;
using Rows = std::vector<std::vector<std::optional<std::string>>>;
using Row = std::vector<std::optional<std::string>>;

// A fresh database `name` on the shared server; its conninfo.
std::string MustDatabase(TemporaryPostgres& pg, std::string_view name) {
  absl::StatusOr<std::string> db = pg.CreateDatabase(name);
  INFO(db.status().ToString());
  REQUIRE(db.ok());
  return *db;
}

TemporaryPostgres& MustShared() {
  absl::StatusOr<TemporaryPostgres*> pg = TemporaryPostgres::Shared();
  INFO(pg.status().ToString());
  REQUIRE(pg.ok());
  return **pg;
}

std::string MustDatabase(std::string_view name) { return MustDatabase(MustShared(), name); }

Rows MustQuery(const std::string& conninfo, const std::string& sql) {
  absl::StatusOr<Rows> rows = QueryPostgres(conninfo, sql);
  INFO(sql << ": " << rows.status().ToString());
  REQUIRE(rows.ok());
  return *std::move(rows);
}

struct Rec {
  uint32_t shard = 0;
  uint64_t sequence = 0;
  std::string data;
};

Batch MakeBatch(std::string delivery_id, const std::vector<Rec>& records) {
  Batch batch;
  batch.delivery_id = std::move(delivery_id);
  for (const Rec& r : records) {
    BatchRecord record;
    record.offset = batch.arena.size();
    record.size = static_cast<uint32_t>(r.data.size());
    record.shard = ShardId(r.shard);
    record.sequence_number = SequenceNumber(absl::uint128(r.sequence));
    batch.arena += r.data;
    batch.records.push_back(record);
  }
  return batch;
}

// Records "<n>" (one integer column) for n in [first, last], shard 0, sequence number n.
Batch NumberBatch(std::string delivery_id, int first, int last, uint32_t shard = 0) {
  std::vector<Rec> records;
  for (int n = first; n <= last; ++n) {
    records.push_back({shard, static_cast<uint64_t>(n), std::to_string(n)});
  }
  return MakeBatch(std::move(delivery_id), records);
}

PostgresDestination Options(std::string conninfo, std::string table) {
  PostgresDestination options;
  options.conninfo = std::move(conninfo);
  options.table = std::move(table);
  return options;
}

std::unique_ptr<Destination> MustOpen(PostgresDestination options,
                                      std::string stream = "test-stream") {
  std::unique_ptr<Destination> destination =
      MakePostgresDestination(std::move(options), std::move(stream));
  const absl::Status opened = destination->Open();
  INFO(opened.ToString());
  REQUIRE(opened.ok());
  return destination;
}

void RequireDelivered(const DeliveryAttempt& attempt) {
  INFO(attempt.error_code << ": " << attempt.error_message);
  REQUIRE(attempt.result == AttemptResult::kDelivered);
}

// The integers of `sql`'s single column.
std::vector<int> Ints(const std::string& conninfo, const std::string& sql) {
  std::vector<int> out;
  for (const Row& row : MustQuery(conninfo, sql)) {
    REQUIRE(row.size() == 1);
    REQUIRE(row[0].has_value());
    out.push_back(std::stoi(*row[0]));
  }
  return out;
}

std::vector<int> Range(int first, int last) {
  std::vector<int> out;
  for (int n = first; n <= last; ++n) out.push_back(n);
  return out;
}

std::vector<size_t> RejectedIndices(const DeliveryAttempt& attempt) {
  std::vector<size_t> out;
  for (const auto& [index, reason] : attempt.rejected) out.push_back(index);
  return out;
}

TEST_CASE("PostgreSQL destination COPYs text rows exactly and records the progress") {
  const std::string db = MustDatabase("pg_rows");
  MustQuery(db, "CREATE TABLE t (a int, b text)");
  std::unique_ptr<Destination> destination = MustOpen(Options(db, "t"));
  CHECK(destination->metric_name() == "PostgreSQL");
  CHECK(destination->error_output_type() == "postgresql-failed");
  CHECK(destination->retry_duration() == absl::Seconds(3600));

  const Batch batch = MakeBatch(
      "delivery-1", {{0, 7, "1\tone"}, {0, 9, "2\ttwo with \\\\ and \\t\n"}, {0, 12, "3\t\\N"}});
  RequireDelivered(destination->Deliver(batch, 1));
  CHECK(MustQuery(db, "SELECT a, b FROM t ORDER BY a") ==
        Rows{{"1", "one"}, {"2", "two with \\ and \t"}, {"3", std::nullopt}});
  CHECK(MustQuery(db,
                  "SELECT delivery_stream, shard_id, sequence_number, delivery_id, "
                  "updated_at IS NOT NULL FROM rill_delivery_progress") ==
        Rows{{"test-stream", "shardId-000000000000", "12", "delivery-1", "t"}});
}

TEST_CASE("PostgreSQL destination sends a batch larger than a COPY chunk") {
  const std::string db = MustDatabase("pg_large");
  MustQuery(db, "CREATE TABLE t (n int, pad text)");
  std::unique_ptr<Destination> destination = MustOpen(Options(db, "t"));
  std::vector<Rec> records;
  const std::string pad(200, 'x');
  for (int n = 1; n <= 20000; ++n) {
    records.push_back({0, static_cast<uint64_t>(n), absl::StrCat(n, "\t", pad)});
  }
  const Batch batch = MakeBatch("big", records);
  REQUIRE(batch.bytes() > (size_t{2} << 20));
  RequireDelivered(destination->Deliver(batch, 1));
  CHECK(MustQuery(db,
                  "SELECT count(*), count(DISTINCT n), min(n), max(n), sum(length(pad)) FROM t") ==
        Rows{{"20000", "20000", "1", "20000", "4000000"}});
}

TEST_CASE("PostgreSQL destination maps JSON paths to columns and round-trips strings exactly") {
  const std::string db = MustDatabase("pg_json");
  MustQuery(db,
            "CREATE TABLE j (id int, name text, city text, tags text, meta jsonb, active boolean, "
            "price numeric, note text)");
  PostgresDestination options = Options(db, "j");
  options.columns = {"id", "name", "city", "tags", "meta", "active", "price", "note"};
  options.json_paths = {".id",   ".name",   ".address.city", ".tags",
                        ".meta", ".active", ".price",        ".\"the note\""};
  std::unique_ptr<Destination> destination = MustOpen(options);

  const Batch batch = MakeBatch(
      "json-1",
      {{0, 1,
        R"({"id":1,"name":"tab\there\nnew\\back\"q\rcr","address":{"city":"Oslo"},)"
        R"("tags":["a", "b"],"meta":{"k":"v\\n"},"active":true,"price":3.50,"the note":"\\N"})"},
       {0, 2, R"({"id":2})"},
       {0, 3, R"({"id":3,"name":null,"address":"not an object","active":false,"the note":""})"},
       {0, 4, R"({"price":-1e2,"id":4,"address":{"zip":"0150"},"name":"Ünïcødé ✓"})"}});
  RequireDelivered(destination->Deliver(batch, 1));
  CHECK(MustQuery(db,
                  "SELECT id, name, city, tags, meta->>'k', active, price, note FROM j ORDER BY "
                  "id") ==
        Rows{{"1", "tab\there\nnew\\back\"q\rcr", "Oslo", "[\"a\", \"b\"]", "v\\n", "t", "3.50",
              "\\N"},
             {"2", std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt,
              std::nullopt, std::nullopt},
             {"3", std::nullopt, std::nullopt, std::nullopt, std::nullopt, "f", std::nullopt, ""},
             {"4", "Ünïcødé ✓", std::nullopt, std::nullopt, std::nullopt, std::nullopt, "-100",
              std::nullopt}});
}

TEST_CASE("PostgreSQL destination passes CSV rows through with copy_options") {
  const std::string db = MustDatabase("pg_csv");
  MustQuery(db, "CREATE TABLE c (a int, b text)");
  PostgresDestination options = Options(db, "c");
  options.copy_options = "(FORMAT csv)";
  std::unique_ptr<Destination> destination = MustOpen(options);
  const Batch batch = MakeBatch("csv-1", {{0, 1, "1,\"hello, world\""},
                                          {0, 2, "2,\"line1\nline2\"\n"},
                                          {0, 3, "3,"},
                                          {0, 4, "4,\"\""}});
  RequireDelivered(destination->Deliver(batch, 1));
  CHECK(MustQuery(db, "SELECT a, b FROM c ORDER BY a") ==
        Rows{{"1", "hello, world"}, {"2", "line1\nline2"}, {"3", std::nullopt}, {"4", ""}});
}

TEST_CASE("PostgreSQL destination adds no rows when a batch is delivered again") {
  const std::string db = MustDatabase("pg_redeliver");
  MustQuery(db, "CREATE TABLE t (n int)");
  std::unique_ptr<Destination> destination = MustOpen(Options(db, "t"));
  RequireDelivered(destination->Deliver(NumberBatch("first", 1, 5), 1));
  // The same records under a new delivery id (a batch rebuilt after a restart), and again.
  RequireDelivered(destination->Deliver(NumberBatch("second", 1, 5), 1));
  RequireDelivered(destination->Deliver(NumberBatch("second", 1, 5), 2));
  CHECK(Ints(db, "SELECT n FROM t ORDER BY n") == Range(1, 5));
  // Nothing advanced: the progress still names the batch that wrote the rows.
  CHECK(MustQuery(db, "SELECT sequence_number, delivery_id FROM rill_delivery_progress") ==
        Rows{{"5", "first"}});
}

TEST_CASE("PostgreSQL destination delivers overlapping batches once") {
  const std::string db = MustDatabase("pg_overlap");
  MustQuery(db, "CREATE TABLE t (n int)");
  std::unique_ptr<Destination> destination = MustOpen(Options(db, "t"));
  RequireDelivered(destination->Deliver(NumberBatch("a", 1, 10), 1));
  RequireDelivered(destination->Deliver(NumberBatch("b", 5, 15), 1));
  CHECK(Ints(db, "SELECT n FROM t ORDER BY n") == Range(1, 15));
  CHECK(MustQuery(db, "SELECT sequence_number, delivery_id FROM rill_delivery_progress") ==
        Rows{{"15", "b"}});
}

TEST_CASE("PostgreSQL destination keeps each shard's progress apart") {
  const std::string db = MustDatabase("pg_shards");
  MustQuery(db, "CREATE TABLE t (shard int, n int)");
  std::unique_ptr<Destination> destination = MustOpen(Options(db, "t"));
  RequireDelivered(destination->Deliver(MakeBatch("a", {{0, 10, "0\t10"}, {0, 20, "0\t20"}}), 1));
  // Shard 1's numbers are below shard 0's progress: they are not skipped.
  RequireDelivered(destination->Deliver(MakeBatch("b", {{1, 5, "1\t5"}, {1, 15, "1\t15"}}), 1));
  RequireDelivered(destination->Deliver(
      MakeBatch("c", {{0, 20, "0\t20"}, {1, 15, "1\t15"}, {0, 30, "0\t30"}, {1, 25, "1\t25"}}), 1));
  CHECK(MustQuery(db, "SELECT shard, n FROM t ORDER BY shard, n") ==
        Rows{{"0", "10"}, {"0", "20"}, {"0", "30"}, {"1", "5"}, {"1", "15"}, {"1", "25"}});
  CHECK(MustQuery(db,
                  "SELECT shard_id, sequence_number, delivery_id FROM rill_delivery_progress "
                  "ORDER BY shard_id") ==
        Rows{{"shardId-000000000000", "30", "c"}, {"shardId-000000000001", "25", "c"}});
  // Another delivery stream into the same table has its own progress.
  std::unique_ptr<Destination> other = MustOpen(Options(db, "t"), "other-stream");
  RequireDelivered(other->Deliver(MakeBatch("d", {{0, 10, "0\t10"}}), 1));
  CHECK(Ints(db, "SELECT count(*) FROM t WHERE shard = 0 AND n = 10") == std::vector<int>{2});
}

TEST_CASE("PostgreSQL destination rejects exactly the rows the table refuses") {
  const std::string db = MustDatabase("pg_data_error");
  MustQuery(db, "CREATE TABLE e (id int, n int NOT NULL)");
  PostgresDestination options = Options(db, "e");
  options.columns = {"id", "n"};
  options.json_paths = {".id", ".n"};
  std::unique_ptr<Destination> destination = MustOpen(options);
  const Batch batch = MakeBatch("bad", {{0, 1, R"({"id":1,"n":1})"},
                                        {0, 2, R"({"id":2,"n":"abc"})"},
                                        {0, 3, R"({"id":3,"n":3})"},
                                        {0, 4, "garbage"},
                                        {0, 5, R"({"id":5})"},
                                        {0, 6, R"({"id":6,"n":6})"},
                                        {0, 7, "[1, 2]"},
                                        {0, 8, R"({"id":8,"n":99999999999})"},
                                        {0, 9, R"({"id":9,"n":9})"}});
  const DeliveryAttempt attempt = destination->Deliver(batch, 1);
  RequireDelivered(attempt);
  CHECK(RejectedIndices(attempt) == std::vector<size_t>{1, 3, 4, 6, 7});
  CHECK(attempt.rejected_error_code == "PostgreSQL.DataError");
  REQUIRE(attempt.rejected.size() == 5);
  CHECK_THAT(attempt.rejected[0].second,
             Catch::Contains("invalid input syntax for type integer") && Catch::Contains("22P02"));
  CHECK_THAT(attempt.rejected[1].second, Catch::Contains("not a JSON object"));
  CHECK_THAT(attempt.rejected[2].second, Catch::Contains("23502"));
  CHECK_THAT(attempt.rejected[3].second, Catch::Contains("not a JSON object"));
  CHECK_THAT(attempt.rejected[4].second, Catch::Contains("22003"));
  CHECK(Ints(db, "SELECT id FROM e ORDER BY id") == std::vector<int>{1, 3, 6, 9});
  CHECK(MustQuery(db, "SELECT sequence_number FROM rill_delivery_progress") == Rows{{"9"}});

  // The rejected records count as delivered: a redelivery finds nothing to do.
  const DeliveryAttempt again = destination->Deliver(batch, 1);
  RequireDelivered(again);
  CHECK(again.rejected.empty());
  CHECK(Ints(db, "SELECT count(*) FROM e") == std::vector<int>{4});
}

TEST_CASE("PostgreSQL destination narrows constraint violations down among many rows") {
  const std::string db = MustDatabase("pg_many_errors");
  MustQuery(db, "CREATE TABLE u (id int PRIMARY KEY)");
  std::unique_ptr<Destination> destination = MustOpen(Options(db, "u"));
  std::vector<Rec> records;
  for (int i = 0; i < 300; ++i) {
    std::string row = std::to_string(i);
    if (i == 100) row = "5";     // a duplicate key (23505)
    if (i == 150) row = "x";     // not an integer (22P02)
    if (i == 299) row = "1\t2";  // a column too many (22P04)
    records.push_back({0, static_cast<uint64_t>(i + 1), row});
  }
  const DeliveryAttempt attempt = destination->Deliver(MakeBatch("many", records), 1);
  RequireDelivered(attempt);
  CHECK(RejectedIndices(attempt) == std::vector<size_t>{100, 150, 299});
  REQUIRE(attempt.rejected.size() == 3);
  CHECK_THAT(attempt.rejected[0].second, Catch::Contains("23505"));
  std::vector<int> expected;
  for (int i = 0; i < 299; ++i) {
    if (i != 100 && i != 150) expected.push_back(i);
  }
  CHECK(Ints(db, "SELECT id FROM u ORDER BY id") == expected);
}

TEST_CASE("PostgreSQL destination rejects rows that break a deferred constraint") {
  const std::string db = MustDatabase("pg_deferred");
  MustQuery(db,
            "CREATE TABLE d (id int, CONSTRAINT d_unique UNIQUE (id) DEFERRABLE INITIALLY "
            "DEFERRED)");
  std::unique_ptr<Destination> destination = MustOpen(Options(db, "d"));
  const DeliveryAttempt attempt = destination->Deliver(
      MakeBatch("deferred", {{0, 1, "1"}, {0, 2, "2"}, {0, 3, "2"}, {0, 4, "3"}}), 1);
  RequireDelivered(attempt);
  CHECK(RejectedIndices(attempt) == std::vector<size_t>{2});
  CHECK(Ints(db, "SELECT id FROM d ORDER BY id") == std::vector<int>{1, 2, 3});
}

TEST_CASE("PostgreSQL destination retries while the server is down and reconnects after") {
  // A server of its own: this test stops it.
  absl::StatusOr<std::unique_ptr<TemporaryPostgres>> pg =
      TemporaryPostgres::Start(TemporaryPostgres::Where::kLocal);
  INFO(pg.status().ToString());
  REQUIRE(pg.ok());
  const std::string db = MustDatabase(**pg, "pg_down");
  MustQuery(db, "CREATE TABLE t (n int)");
  std::unique_ptr<Destination> destination = MustOpen(Options(db, "t"));
  RequireDelivered(destination->Deliver(NumberBatch("a", 1, 3), 1));

  REQUIRE((*pg)->Stop().ok());
  const Batch batch = NumberBatch("b", 4, 6);
  const DeliveryAttempt down = destination->Deliver(batch, 1);
  CHECK(down.result == AttemptResult::kRetryable);
  CHECK(down.error_code == "PostgreSQL.ConnectionFailed");
  CHECK_FALSE(down.error_message.empty());
  // Still down: the reconnection fails too.
  CHECK(destination->Deliver(batch, 2).error_code == "PostgreSQL.ConnectionFailed");

  REQUIRE((*pg)->Restart().ok());
  RequireDelivered(destination->Deliver(batch, 3));
  CHECK(Ints(db, "SELECT n FROM t ORDER BY n") == Range(1, 6));

  // A restart while idle: the dead connection is found and replaced within one attempt.
  REQUIRE((*pg)->Restart().ok());
  RequireDelivered(destination->Deliver(NumberBatch("c", 7, 8), 1));
  CHECK(Ints(db, "SELECT n FROM t ORDER BY n") == Range(1, 8));
}

TEST_CASE("PostgreSQL destination writes no duplicates when a new destination redelivers") {
  const std::string db = MustDatabase("pg_crash");
  MustQuery(db, "CREATE TABLE t (n int)");
  const Batch batch = NumberBatch("before-crash", 1, 10);
  {
    std::unique_ptr<Destination> before = MustOpen(Options(db, "t"));
    RequireDelivered(before->Deliver(batch, 1));
  }
  // The process died after the COMMIT and before the core's checkpoint: a new destination (a
  // new connection) gets the batch again, then more from the same shard.
  std::unique_ptr<Destination> after = MustOpen(Options(db, "t"));
  RequireDelivered(after->Deliver(NumberBatch("after-crash", 1, 10), 1));
  RequireDelivered(after->Deliver(NumberBatch("after-crash-2", 1, 15), 1));
  CHECK(Ints(db, "SELECT n FROM t ORDER BY n") == Range(1, 15));
}

TEST_CASE("PostgreSQL destination quotes a schema-qualified table and its columns") {
  const std::string db = MustDatabase("pg_schema");
  MustQuery(db, "CREATE SCHEMA \"Sales\"");
  MustQuery(
      db,
      "CREATE TABLE \"Sales\".\"Order Items\" (\"Item Id\" int, \"Unit \"\"Price\"\"\" numeric)");
  PostgresDestination options = Options(db, "Sales.Order Items");
  options.columns = {"Item Id", "Unit \"Price\""};
  options.json_paths = {".item", ".price"};
  std::unique_ptr<Destination> destination = MustOpen(options);
  RequireDelivered(destination->Deliver(
      MakeBatch("s", {{0, 1, R"({"item":1,"price":2.5})"}, {0, 2, R"({"item":2})"}}), 1));
  CHECK(MustQuery(db, "SELECT * FROM \"Sales\".\"Order Items\" ORDER BY 1") ==
        Rows{{"1", "2.5"}, {"2", std::nullopt}});
  // Taken literally: "sales.order items" is another (absent) table.
  const absl::Status missing =
      MakePostgresDestination(Options(db, "sales.order items"), "s")->Open();
  CHECK(GetErrorCode(missing) == ErrorCode::kResourceNotFound);
}

TEST_CASE("PostgreSQL destination Open fails for a missing table or column or server") {
  const std::string db = MustDatabase("pg_open");
  MustQuery(db, "CREATE TABLE t (n int)");
  const absl::Status no_table = MakePostgresDestination(Options(db, "absent"), "s")->Open();
  CHECK(GetErrorCode(no_table) == ErrorCode::kResourceNotFound);
  CHECK_THAT(std::string(no_table.message()), Catch::Contains("absent"));

  PostgresDestination bad_column = Options(db, "t");
  bad_column.columns = {"nope"};
  bad_column.json_paths = {".n"};
  const absl::Status no_column = MakePostgresDestination(bad_column, "s")->Open();
  CHECK(GetErrorCode(no_column) == ErrorCode::kInvalidArgument);
  CHECK_THAT(std::string(no_column.message()), Catch::Contains("nope"));

  PostgresDestination bad_options = Options(db, "t");
  bad_options.copy_options = "(FORMAT nonsense)";
  CHECK(GetErrorCode(MakePostgresDestination(bad_options, "s")->Open()) ==
        ErrorCode::kInvalidArgument);

  // Port 1 on 127.0.0.1: nothing listens there.
  const absl::Status no_server =
      MakePostgresDestination(Options("host=127.0.0.1 port=1 dbname=x connect_timeout=10", "t"),
                              "s")
          ->Open();
  CHECK(GetErrorCode(no_server) == ErrorCode::kInternalFailure);
  CHECK_THAT(std::string(no_server.message()), Catch::Contains("Could not connect"));

  // Open made the progress table.
  CHECK(MustQuery(db, "SELECT to_regclass('rill_delivery_progress') IS NOT NULL") == Rows{{"t"}});
}

TEST_CASE("PostgreSQL destination options are validated") {
  const PostgresDestination good = Options("dbname=x", "t");
  CHECK(ValidatePostgresDestination(good).ok());
  auto code = [](PostgresDestination options) {
    return GetErrorCode(ValidatePostgresDestination(options));
  };
  PostgresDestination o = good;
  o.conninfo.clear();
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o = good;
  o.table.clear();
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o = good;
  o.table = "a.b.c";
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o.table = "a.";
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o.table = "schema.table";
  CHECK(code(o) == ErrorCode::kOk);
  o = good;
  o.columns = {"a", "b"};
  o.json_paths = {".a"};
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o.json_paths = {".a", "not a path"};
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o.json_paths = {".a", ".b.c"};
  CHECK(code(o) == ErrorCode::kOk);
  o.copy_options = "(FORMAT csv)";
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o.copy_options.clear();
  o.columns = {"a", "a"};
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o.columns = {"a", ""};
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o = good;
  o.copy_options = "(FORMAT csv, HEADER true)";
  CHECK(code(o) == ErrorCode::kInvalidArgument);

  o = good;
  o.retry_duration = absl::Seconds(7201);
  CHECK(code(o) == ErrorCode::kValidation);
  o.retry_duration = absl::Seconds(-1);
  CHECK(code(o) == ErrorCode::kValidation);
  o.retry_duration = absl::ZeroDuration();
  CHECK(code(o) == ErrorCode::kOk);
  o.retry_duration = absl::Seconds(7200);
  CHECK(code(o) == ErrorCode::kOk);
  o = good;
  o.buffering.size_bytes = (size_t{1} << 20) - 1;
  CHECK(code(o) == ErrorCode::kValidation);
  o.buffering.size_bytes = (size_t{128} << 20) + 1;
  CHECK(code(o) == ErrorCode::kValidation);
  o.buffering.size_bytes = size_t{128} << 20;
  CHECK(code(o) == ErrorCode::kOk);
  o = good;
  o.buffering.interval = absl::Seconds(901);
  CHECK(code(o) == ErrorCode::kValidation);
  o.buffering.interval = absl::ZeroDuration();
  CHECK(code(o) == ErrorCode::kOk);

  // Open() checks too, before it connects.
  o = good;
  o.retry_duration = absl::Hours(3);
  CHECK(GetErrorCode(MakePostgresDestination(o, "s")->Open()) == ErrorCode::kValidation);
}

}  // namespace
}  // namespace rill::deliver_internal
