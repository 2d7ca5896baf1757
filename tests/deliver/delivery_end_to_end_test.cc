// DeliveryStream through each outside destination, end to end: objects with their keys and
// compression, a full disk, an HTTP endpoint that fails, PostgreSQL rows the table refuses.
#include <libpq-fe.h>
#include <simdjson.h>
#include <catch2/catch.hpp>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "deliver/codec.h"
#include "deliver/http_test_server.h"
#include "deliver/object_store.h"
#include "deliver/postgres_fixture.h"
#include "rill/base/error.h"
#include "rill/deliver/delivery_stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

using testing::TempDir;

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Objects under `root` by key (path relative to root), staging left out.
std::map<std::string, std::string> Objects(const std::string& root) {
  std::map<std::string, std::string> objects;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    const std::string key = e.path().lexically_relative(root).string();
    if (e.is_regular_file() && key.rfind(".rill-staging", 0) != 0) {
      objects[key] = ReadFile(e.path());
    }
  }
  return objects;
}

// (errorCode, rawData) of every failed-record document under root/<type>.
std::vector<std::pair<std::string, std::string>> Failed(const std::string& root) {
  std::vector<std::pair<std::string, std::string>> failed;
  if (!std::filesystem::exists(root)) return failed;
  simdjson::dom::parser parser;
  for (const auto& [key, content] : Objects(root)) {
    std::istringstream lines(content);
    std::string line;
    while (std::getline(lines, line)) {
      simdjson::dom::element doc = parser.parse(line);
      std::string raw;
      REQUIRE(absl::Base64Unescape(std::string(doc["rawData"].get_string().value()), &raw));
      failed.emplace_back(std::string(doc["errorCode"].get_string().value()), raw);
    }
  }
  return failed;
}

// <prefix>clicks-1-2024-01-02-03-04-05-<uuid v4>[.gz] with one of the prefixes the test expects
// (std::regex is avoided: GCC 12 warns inside it under ASan).
bool IsObjectKey(const std::string& name) {
  std::string_view rest = name;
  bool gz = true;
  if (rest.starts_with("game=chess/2024/01/02/")) {
    rest.remove_prefix(22);
  } else if (rest.starts_with("game=go/2024/01/02/")) {
    rest.remove_prefix(19);
  } else if (rest.starts_with("errors/processing-failed/")) {
    rest.remove_prefix(25);
    gz = false;
  } else {
    return false;
  }
  constexpr std::string_view kStem = "clicks-1-2024-01-02-03-04-05-";
  if (!rest.starts_with(kStem)) return false;
  rest.remove_prefix(kStem.size());
  if (gz) {
    if (!rest.ends_with(".gz")) return false;
    rest.remove_suffix(3);
  }
  // 8-4-4-4-12 lowercase hex, version 4, variant 8-b.
  if (rest.size() != 36) return false;
  for (size_t i = 0; i < rest.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = rest[i];
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return rest[14] == '4' && std::string_view("89ab").find(rest[19]) != std::string_view::npos;
}

TEST_CASE("Objects are named by Firehose's keys per partition and compressed") {
  auto clock =
      std::make_shared<SimulatedClock>(absl::FromUnixSeconds(1704164645));  // 2024-01-02T03:04:05Z
  TempDir bucket("deliver-bucket");
  DeliveryStreamOptions o;
  o.name = "clicks";
  o.clock = clock;
  o.processing.metadata_extraction = {{"game", ".game"}};
  o.processing.append_delimiter = true;
  o.destination = ObjectStoreDestination{
      .directory = bucket.path(),
      .prefix = "game=!{partitionKeyFromQuery:game}/!{timestamp:yyyy/MM/dd}/",
      .error_output_prefix = "errors/!{firehose:error-output-type}/",
      .custom_time_zone = "UTC",
      .file_extension = "",
      .compression = CompressionFormat::kGzip,
      .buffering = {}};
  auto firehose = DeliveryStream::Create(std::move(o));
  REQUIRE(firehose.ok());
  for (const char* r : {R"({"game":"chess","n":1})", R"({"game":"go","n":2})",
                        R"({"game":"chess","n":3})", R"({"n":4})"}) {
    REQUIRE((*firehose)->PutRecord(r).ok());
  }
  REQUIRE((*firehose)->Flush().ok());
  const std::map<std::string, std::string> objects = Objects(bucket.path());
  REQUIRE(objects.size() == 3);
  std::map<std::string, std::string> by_prefix;
  for (const auto& [name, content] : objects) {
    INFO(name);
    CHECK(IsObjectKey(name));
    by_prefix[name.substr(0, name.find("/clicks-") + 1)] = content;
  }
  std::string chess;
  REQUIRE(deliver_internal::Gunzip(by_prefix["game=chess/2024/01/02/"], 1 << 20, &chess).ok());
  CHECK(chess == "{\"game\":\"chess\",\"n\":1}\n{\"game\":\"chess\",\"n\":3}\n");
  std::string go;
  REQUIRE(deliver_internal::Gunzip(by_prefix["game=go/2024/01/02/"], 1 << 20, &go).ok());
  CHECK(go == "{\"game\":\"go\",\"n\":2}\n");
  // The error output is not compressed.
  CHECK(by_prefix["errors/processing-failed/"].find(
            "DynamicPartitioning.MetadataExtractionFailed") != std::string::npos);
  CHECK((*firehose)->metrics().destination == "S3");
  CHECK((*firehose)->metrics().delivery_records == 3);
}

TEST_CASE("A full disk holds objects back without losing or exposing any") {
  auto clock = std::make_shared<SimulatedClock>();
  TempDir bucket("deliver-bucket");
  DeliveryStreamOptions o;
  o.name = "clicks";
  o.clock = clock;
  ObjectStoreDestination files;
  files.directory = bucket.path();
  files.compression = CompressionFormat::kZstd;
  files.buffering.interval = absl::ZeroDuration();
  o.destination = files;
  auto firehose = DeliveryStream::Create(std::move(o));
  REQUIRE(firehose.ok());
  REQUIRE((*firehose)->PutRecord("kept").ok());
  deliver_internal::SetObjectStoreWriteFaultForTesting(ENOSPC);
  const absl::Status failed = (*firehose)->Poll();
  deliver_internal::SetObjectStoreWriteFaultForTesting(0);
  CHECK(GetErrorCode(failed) == ErrorCode::kServiceUnavailable);
  CHECK(failed.message().find("No space left on device") != absl::string_view::npos);
  CHECK(Objects(bucket.path()).empty());
  CHECK(std::filesystem::is_empty(std::filesystem::path(bucket.path()) / ".rill-staging"));
  // After the backoff, the same buffer is delivered once.
  clock->Advance(absl::Seconds(2));
  REQUIRE((*firehose)->Poll().ok());
  const auto objects = Objects(bucket.path());
  REQUIRE(objects.size() == 1);
  CHECK(objects.begin()->first.rfind("2024/01/01/00/clicks-1-2024-01-01-00-00-00-", 0) == 0);
  CHECK((*firehose)->metrics().delivery_attempts == 2);
}

TEST_CASE(
    "An HTTP endpoint that fails is retried with one request id then its records go to the error "
    "output") {
  auto clock = std::make_shared<SimulatedClock>();
  TempDir errors("deliver-errors");
  auto options = [&](std::string name, const deliver_testing::HttpTestServer& server) {
    DeliveryStreamOptions o;
    o.name = std::move(name);
    o.clock = clock;
    HttpEndpointDestination http;
    http.url = server.url("/ingest");
    http.access_key = "secret-key";
    http.request_timeout = absl::Seconds(30);
    http.retry_duration = absl::Seconds(20);
    http.buffering.interval = absl::ZeroDuration();
    o.destination = http;
    o.error_output = ErrorOutput{.directory = errors.path(),
                                 .prefix = "!{firehose:error-output-type}/",
                                 .custom_time_zone = "UTC"};
    return o;
  };
  {
    deliver_testing::HttpTestServer server;
    auto firehose = DeliveryStream::Create(options("recovers", server));
    REQUIRE(firehose.ok());
    server.Push(deliver_testing::HttpTestServer::Behaviour::Answer(503));
    server.Push(deliver_testing::HttpTestServer::Behaviour::Answer(500));
    REQUIRE((*firehose)->PutRecord("a").ok());
    CHECK(GetErrorCode((*firehose)->Poll()) == ErrorCode::kServiceUnavailable);
    clock->Advance(absl::Seconds(2));
    CHECK(GetErrorCode((*firehose)->Poll()) == ErrorCode::kServiceUnavailable);
    clock->Advance(absl::Seconds(3));
    REQUIRE((*firehose)->Poll().ok());
    const auto requests = server.requests();
    REQUIRE(requests.size() == 3);
    CHECK(requests[0].request_id == requests[1].request_id);
    CHECK(requests[1].request_id == requests[2].request_id);
    CHECK(requests[0].Header("X-Amz-Firehose-Source-Arn") ==
          "arn:aws:firehose:local:000000000000:deliverystream/recovers");
    CHECK(requests[0].Header("X-Amz-Firehose-Access-Key") == "secret-key");
    CHECK((*firehose)->metrics().destination == "HttpEndpoint");
    CHECK((*firehose)->metrics().delivery_records == 1);
  }
  {
    deliver_testing::HttpTestServer server;
    auto firehose = DeliveryStream::Create(options("gives-up", server));
    REQUIRE(firehose.ok());
    for (int i = 0; i < 20; ++i)
      server.Push(deliver_testing::HttpTestServer::Behaviour::Answer(503));
    REQUIRE((*firehose)->PutRecord("lost-cause").ok());
    for (int i = 0; i < 60 && (*firehose)->metrics().error_output_records == 0; ++i) {
      (*firehose)->Poll().IgnoreError();
      clock->Advance(absl::Seconds(1));
    }
    const auto failed = Failed(errors.path() + "/http-endpoint-failed");
    REQUIRE(failed.size() == 1);
    CHECK(failed[0].first == "HttpEndpoint.DestinationException");
    CHECK(failed[0].second == "lost-cause");
  }
  // A 413 is not retried.
  {
    deliver_testing::HttpTestServer server;
    auto firehose = DeliveryStream::Create(options("too-large", server));
    REQUIRE(firehose.ok());
    server.Push(deliver_testing::HttpTestServer::Behaviour::Answer(413));
    REQUIRE((*firehose)->PutRecord("big").ok());
    REQUIRE((*firehose)->Poll().ok());
    CHECK(server.requests().size() == 1);
    CHECK(Failed(errors.path() + "/http-endpoint-failed").size() == 2);
  }
}

TEST_CASE("PostgreSQL rows the table refuses go to the error output and the rest arrive once") {
  absl::StatusOr<testing::TemporaryPostgres*> pg = testing::TemporaryPostgres::Shared();
  INFO(pg.status().ToString());
  REQUIRE(pg.ok());
  absl::StatusOr<std::string> db = (*pg)->CreateDatabase("end_to_end");
  REQUIRE(db.ok());
  PGconn* conn = PQconnectdb(db->c_str());
  REQUIRE(PQstatus(conn) == CONNECTION_OK);
  PQclear(PQexec(conn, "CREATE TABLE scores (player text NOT NULL, score int NOT NULL)"));
  auto clock = std::make_shared<SimulatedClock>();
  TempDir errors("deliver-errors");
  DeliveryStreamOptions o;
  o.name = "scores";
  o.clock = clock;
  PostgresDestination table;
  table.conninfo = *db;
  table.table = "scores";
  table.columns = {"player", "score"};
  table.json_paths = {".player", ".score"};
  o.destination = table;
  o.error_output = ErrorOutput{.directory = errors.path(),
                               .prefix = "!{firehose:error-output-type}/",
                               .custom_time_zone = "UTC"};
  auto firehose = DeliveryStream::Create(std::move(o));
  REQUIRE(firehose.ok());
  for (const char* r : {R"({"player":"ann","score":3})", R"({"player":"bob","score":"lots"})",
                        R"({"player":"cy","score":5})", R"({"score":7})"}) {
    REQUIRE((*firehose)->PutRecord(r).ok());
  }
  REQUIRE((*firehose)->Flush().ok());
  REQUIRE((*firehose)->Flush().ok());
  PGresult* rows = PQexec(conn, "SELECT player, score FROM scores ORDER BY player");
  REQUIRE(PQntuples(rows) == 2);
  CHECK(std::string(PQgetvalue(rows, 0, 0)) == "ann");
  CHECK(std::string(PQgetvalue(rows, 1, 1)) == "5");
  PQclear(rows);
  PQfinish(conn);
  auto failed = Failed(errors.path() + "/postgresql-failed");
  REQUIRE(failed.size() == 2);
  std::sort(failed.begin(), failed.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  CHECK(failed[0].first == "PostgreSQL.DataError");
  CHECK(failed[0].second == R"({"player":"bob","score":"lots"})");
  CHECK(failed[1].second == R"({"score":7})");
  const DeliveryMetrics m = (*firehose)->metrics();
  CHECK(m.delivery_records == 2);
  CHECK(m.error_output_records == 2);
  CHECK(m.destination == "PostgreSQL");
}

}  // namespace
}  // namespace rill

namespace rill {
namespace {

TEST_CASE(
    "A new incarnation of a DirectPut delivery stream to PostgreSQL skips none of its records") {
  absl::StatusOr<testing::TemporaryPostgres*> pg = testing::TemporaryPostgres::Shared();
  INFO(pg.status().ToString());
  REQUIRE(pg.ok());
  absl::StatusOr<std::string> db = (*pg)->CreateDatabase("incarnations");
  REQUIRE(db.ok());
  PGconn* conn = PQconnectdb(db->c_str());
  REQUIRE(PQstatus(conn) == CONNECTION_OK);
  PQclear(PQexec(conn, "CREATE TABLE events (n int NOT NULL)"));
  TempDir errors("deliver-errors");
  // Each incarnation's internal stream numbers its records from the start again, on the same
  // simulated time: the progress of the first must not hide the records of the second.
  for (int incarnation = 0; incarnation < 2; ++incarnation) {
    auto clock = std::make_shared<SimulatedClock>();
    DeliveryStreamOptions o;
    o.name = "events";
    o.clock = clock;
    PostgresDestination table;
    table.conninfo = *db;
    table.table = "events";
    table.columns = {"n"};
    table.json_paths = {".n"};
    o.destination = table;
    o.error_output = ErrorOutput{.directory = errors.path(),
                                 .prefix = "!{firehose:error-output-type}/",
                                 .custom_time_zone = "UTC"};
    auto firehose = DeliveryStream::Create(std::move(o));
    REQUIRE(firehose.ok());
    for (int i = 0; i < 10; ++i) {
      REQUIRE((*firehose)->PutRecord("{\"n\":" + std::to_string(incarnation * 10 + i) + "}").ok());
    }
    REQUIRE((*firehose)->Close().ok());
  }
  PGresult* count = PQexec(conn, "SELECT count(*), count(DISTINCT n) FROM events");
  CHECK(std::string(PQgetvalue(count, 0, 0)) == "20");
  CHECK(std::string(PQgetvalue(count, 0, 1)) == "20");
  PQclear(count);
  PQfinish(conn);
}

}  // namespace
}  // namespace rill
