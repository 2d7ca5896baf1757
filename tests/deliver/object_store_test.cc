// The object store destination (publishing, compression, dynamic partitioning, faults) and the
// error output's failed-record documents.
#include "deliver/object_store.h"

#include <zlib.h>
#include <zstd.h>

#include <simdjson.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/time/civil_time.h"
#include "rill/base/error.h"
#include "testing/fixtures.h"

namespace rill::deliver_internal {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr std::string_view kUuid =
    "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}";

absl::Time Utc(int y, int mo, int d, int h, int mi, int s) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

Batch MakeBatch(const std::vector<std::string>& data, absl::Time oldest,
                std::vector<std::pair<std::string, std::string>> keys = {}) {
  Batch batch;
  batch.delivery_id = "5f1d3d5e-0000-4000-8000-000000000001";
  batch.oldest_arrival = oldest;
  batch.partition_keys = std::move(keys);
  for (const std::string& d : data) {
    BatchRecord r;
    r.offset = batch.arena.size();
    r.size = static_cast<uint32_t>(d.size());
    r.arrival = oldest;
    batch.arena += d;
    batch.records.push_back(r);
  }
  return batch;
}

// The regular files under `dir`, relative and sorted, without .rill-staging.
std::vector<std::string> Objects(const std::string& dir) {
  std::vector<std::string> out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    if (it->path().filename() == ".rill-staging") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) out.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> StagingEntries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir + "/.rill-staging")) {
    out.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string Inflate(const std::string& gz) {
  z_stream z{};
  REQUIRE(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buf[4096];
  int rc;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    REQUIRE((rc == Z_OK || rc == Z_STREAM_END));
    out.append(buf, sizeof(buf) - z.avail_out);
  } while (rc != Z_STREAM_END);
  CHECK(z.avail_in == 0);
  inflateEnd(&z);
  return out;
}

std::string Unzstd(const std::string& z) {
  const unsigned long long size = ZSTD_getFrameContentSize(z.data(), z.size());
  REQUIRE(size != ZSTD_CONTENTSIZE_ERROR);
  REQUIRE(size != ZSTD_CONTENTSIZE_UNKNOWN);
  std::string out(size, '\0');
  const size_t n = ZSTD_decompress(out.data(), out.size(), z.data(), z.size());
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

// Turns the write fault on for its scope.
class WriteFault {
 public:
  explicit WriteFault(int error) { SetObjectStoreWriteFaultForTesting(error); }
  ~WriteFault() { SetObjectStoreWriteFaultForTesting(0); }
  WriteFault(const WriteFault&) = delete;
  WriteFault& operator=(const WriteFault&) = delete;
};

std::unique_ptr<Destination> OpenDestination(ObjectStoreDestination options,
                                             std::string stream = "orders") {
  std::unique_ptr<Destination> d =
      MakeObjectStoreDestination(std::move(options), std::move(stream));
  absl::Status opened = d->Open();
  INFO(opened.ToString());
  REQUIRE(opened.ok());
  return d;
}

ObjectStoreDestination Options(const std::string& dir) {
  ObjectStoreDestination options;
  options.directory = dir;
  return options;
}

TEST_CASE("Deliver writes the records concatenated as is under the default key") {
  TempDir tmp;
  const std::string bucket = tmp.File("a/bucket");  // its parents do not exist yet
  std::unique_ptr<Destination> d = OpenDestination(Options(bucket));
  CHECK(d->metric_name() == "S3");
  CHECK(d->error_output_type() == "s3-failed");
  CHECK(d->retry_duration() == absl::InfiniteDuration());
  CHECK(StagingEntries(bucket).empty());

  const Batch batch = MakeBatch({"a\n", "bc", "", "d"}, Utc(2024, 1, 2, 3, 4, 5));
  DeliveryAttempt attempt = d->Deliver(batch, 1);
  INFO(attempt.error_message);
  REQUIRE(attempt.result == AttemptResult::kDelivered);
  const std::vector<std::string> objects = Objects(bucket);
  REQUIRE(objects.size() == 1);
  CHECK(std::regex_match(objects[0], std::regex("^2024/01/02/03/orders-1-2024-01-02-03-04-05-" +
                                                std::string(kUuid) + "$")));
  CHECK(ReadAll(bucket + "/" + objects[0]) == "a\nbcd");
  CHECK(StagingEntries(bucket).empty());

  // A second batch is a second object.
  REQUIRE(d->Deliver(MakeBatch({"xyz"}, Utc(2024, 1, 2, 4, 0, 0)), 1).result ==
          AttemptResult::kDelivered);
  const std::vector<std::string> two = Objects(bucket);
  REQUIRE(two.size() == 2);
  CHECK(two[0] == objects[0]);
  CHECK(two[1].substr(0, 14) == "2024/01/02/04/");
  CHECK(ReadAll(bucket + "/" + two[1]) == "xyz");
  CHECK(StagingEntries(bucket).empty());
}

TEST_CASE("Deliver concatenates records in their order wherever they lie in the arena") {
  TempDir tmp;
  std::unique_ptr<Destination> d = OpenDestination(Options(tmp.path()));
  Batch batch = MakeBatch({}, Utc(2024, 1, 2, 3, 4, 5));
  batch.arena = "XXworldYYhello";
  BatchRecord hello;
  hello.offset = 9;
  hello.size = 5;
  BatchRecord world;
  world.offset = 2;
  world.size = 5;
  batch.records = {hello, world};
  REQUIRE(d->Deliver(batch, 1).result == AttemptResult::kDelivered);
  const std::vector<std::string> objects = Objects(tmp.path());
  REQUIRE(objects.size() == 1);
  CHECK(ReadAll(tmp.File(objects[0])) == "helloworld");

  // A record outside the arena is refused, not read.
  batch.records[0].offset = 12;
  DeliveryAttempt bad = d->Deliver(batch, 1);
  CHECK(bad.result == AttemptResult::kPermanent);
  CHECK(bad.error_code == "S3.InvalidBatch");
  CHECK(Objects(tmp.path()).size() == 1);
}

TEST_CASE("Compressed objects decompress to the records and carry the extension") {
  TempDir tmp;
  std::string records;
  std::vector<std::string> data;
  for (int i = 0; i < 1000; ++i) {
    data.push_back("{\"n\":" + std::to_string(i) + "}\n");
    records += data.back();
  }
  const Batch batch = MakeBatch(data, Utc(2024, 1, 2, 3, 4, 5));

  SECTION("gzip") {
    ObjectStoreDestination options = Options(tmp.path());
    options.compression = CompressionFormat::kGzip;
    std::unique_ptr<Destination> d = OpenDestination(options);
    // Twice: the second reuses the first's buffer and must hold only its own object.
    REQUIRE(d->Deliver(batch, 1).result == AttemptResult::kDelivered);
    REQUIRE(d->Deliver(MakeBatch({"short"}, Utc(2024, 1, 2, 5, 0, 0)), 1).result ==
            AttemptResult::kDelivered);
    const std::vector<std::string> objects = Objects(tmp.path());
    REQUIRE(objects.size() == 2);
    CHECK(std::regex_match(objects[0], std::regex("^2024/01/02/03/orders-1-2024-01-02-03-04-05-" +
                                                  std::string(kUuid) + "\\.gz$")));
    const std::string gz = ReadAll(tmp.File(objects[0]));
    CHECK(gz.size() < records.size());
    CHECK(Inflate(gz) == records);
    CHECK(Inflate(ReadAll(tmp.File(objects[1]))) == "short");
  }
  SECTION("zstd") {
    ObjectStoreDestination options = Options(tmp.path());
    options.compression = CompressionFormat::kZstd;
    std::unique_ptr<Destination> d = OpenDestination(options);
    REQUIRE(d->Deliver(batch, 1).result == AttemptResult::kDelivered);
    const std::vector<std::string> objects = Objects(tmp.path());
    REQUIRE(objects.size() == 1);
    CHECK(objects[0].substr(objects[0].size() - 4) == ".zst");
    CHECK(Unzstd(ReadAll(tmp.File(objects[0]))) == records);
  }
  SECTION("snappy names its objects .snappy") {
    ObjectStoreDestination options = Options(tmp.path());
    options.compression = CompressionFormat::kSnappy;
    std::unique_ptr<Destination> d = OpenDestination(options);
    REQUIRE(d->Deliver(batch, 1).result == AttemptResult::kDelivered);
    const std::vector<std::string> objects = Objects(tmp.path());
    REQUIRE(objects.size() == 1);
    CHECK(objects[0].substr(objects[0].size() - 7) == ".snappy");
    CHECK(ReadAll(tmp.File(objects[0])).substr(0, 10) == std::string("\xff\x06\x00\x00sNaPpY", 10));
  }
  SECTION("FileExtension replaces the compression's extension") {
    ObjectStoreDestination options = Options(tmp.path());
    options.compression = CompressionFormat::kGzip;
    options.file_extension = ".json.gz";
    options.custom_time_zone = "Asia/Tokyo";
    options.prefix = "logs/";
    std::unique_ptr<Destination> d = OpenDestination(options);
    REQUIRE(d->Deliver(batch, 1).result == AttemptResult::kDelivered);
    const std::vector<std::string> objects = Objects(tmp.path());
    REQUIRE(objects.size() == 1);
    CHECK(std::regex_match(objects[0],
                           std::regex("^logs/2024/01/02/12/orders-1-2024-01-02-12-04-05-" +
                                      std::string(kUuid) + "\\.json\\.gz$")));
    CHECK(Inflate(ReadAll(tmp.File(objects[0]))) == records);
  }
}

TEST_CASE("Dynamic partitioning puts each batch under its partition keys") {
  TempDir tmp;
  const std::string bucket = tmp.File("bucket");
  ObjectStoreDestination options = Options(bucket);
  options.prefix = "team=!{partitionKeyFromQuery:team}/!{partitionKeyFromLambda:region}/";
  options.error_output_prefix = "errors/!{firehose:error-output-type}/";
  std::unique_ptr<Destination> d = OpenDestination(options);
  const absl::Time t = Utc(2024, 1, 2, 3, 4, 5);
  REQUIRE(d->Deliver(MakeBatch({"r1"}, t, {{"region", "eu"}, {"team", "red"}}), 1).result ==
          AttemptResult::kDelivered);
  std::vector<std::string> objects = Objects(bucket);
  REQUIRE(objects.size() == 1);
  CHECK(std::regex_match(objects[0],
                         std::regex("^team=red/eu/2024/01/02/03/orders-1-2024-01-02-03-04-05-" +
                                    std::string(kUuid) + "$")));

  DeliveryAttempt missing = d->Deliver(MakeBatch({"r2"}, t, {{"team", "red"}}), 1);
  CHECK(missing.result == AttemptResult::kPermanent);
  CHECK(missing.error_code == "DynamicPartitioning.MissingPartitionKey");

  DeliveryAttempt too_long = d->Deliver(
      MakeBatch({"r3"}, t, {{"team", std::string(200, 't')}, {"region", std::string(400, 'r')}}),
      1);
  CHECK(too_long.result == AttemptResult::kPermanent);
  CHECK(too_long.error_code == "S3.InvalidPrefix");
  CHECK(Objects(bucket).size() == 1);
}

TEST_CASE("Partition key values that are not safe path segments are refused") {
  TempDir tmp;
  const std::string bucket = tmp.File("bucket");
  ObjectStoreDestination options = Options(bucket);
  options.prefix = "!{partitionKeyFromQuery:k}/";
  options.error_output_prefix = "errors/!{firehose:error-output-type}/";
  std::unique_ptr<Destination> d = OpenDestination(options);
  const absl::Time t = Utc(2024, 1, 2, 3, 4, 5);
  for (const std::string& value :
       {std::string(".."), std::string("."), std::string(""), std::string("/etc"),
        std::string("a/../.."), std::string("a//b"), std::string("x\0y", 3),
        std::string(".rill-staging"), std::string(256, 'v')}) {
    INFO(absl::CHexEscape(value));
    DeliveryAttempt attempt = d->Deliver(MakeBatch({"data"}, t, {{"k", value}}), 1);
    CHECK(attempt.result == AttemptResult::kPermanent);
    CHECK(attempt.error_code == "DynamicPartitioning.InvalidPartitionKey");
  }
  // Nothing was written anywhere: not in the bucket, not beside it.
  CHECK(Objects(bucket).empty());
  CHECK(Objects(tmp.path()).empty());
  CHECK(StagingEntries(bucket).empty());
  // A value with '/' inside makes directories, as S3 shows a '/' as a folder.
  REQUIRE(d->Deliver(MakeBatch({"data"}, t, {{"k", "a/b"}}), 1).result ==
          AttemptResult::kDelivered);
  const std::vector<std::string> objects = Objects(bucket);
  REQUIRE(objects.size() == 1);
  CHECK(objects[0].substr(0, 18) == "a/b/2024/01/02/03/");
}

TEST_CASE("A full disk leaves no object and no staging file and a later attempt succeeds") {
  TempDir tmp;
  ObjectStoreDestination options = Options(tmp.path());
  options.prefix = "p/!{timestamp:yyyy}/";
  options.error_output_prefix = "e/!{firehose:error-output-type}/";
  std::unique_ptr<Destination> d = OpenDestination(options);
  const Batch batch = MakeBatch({std::string(100000, 'x'), "tail"}, Utc(2024, 1, 2, 3, 4, 5));
  {
    WriteFault fault(ENOSPC);
    for (int attempt = 1; attempt <= 3; ++attempt) {
      DeliveryAttempt failed = d->Deliver(batch, attempt);
      CHECK(failed.result == AttemptResult::kRetryable);
      CHECK(failed.error_code == "S3.WriteFailed");
      INFO(failed.error_message);
      CHECK(failed.error_message.find("No space left on device") != std::string::npos);
      CHECK(failed.error_message.find(".rill-staging") != std::string::npos);
    }
    CHECK(Objects(tmp.path()).empty());
    CHECK(StagingEntries(tmp.path()).empty());
  }
  {
    WriteFault fault(EIO);
    DeliveryAttempt failed = d->Deliver(batch, 4);
    CHECK(failed.result == AttemptResult::kRetryable);
    CHECK(failed.error_message.find("Input/output error") != std::string::npos);
  }
  DeliveryAttempt ok = d->Deliver(batch, 5);
  REQUIRE(ok.result == AttemptResult::kDelivered);
  const std::vector<std::string> objects = Objects(tmp.path());
  REQUIRE(objects.size() == 1);
  CHECK(objects[0].substr(0, 7) == "p/2024/");
  CHECK(ReadAll(tmp.File(objects[0])) == std::string(100000, 'x') + "tail");
  CHECK(StagingEntries(tmp.path()).empty());
}

TEST_CASE("A key directory that cannot be made is a retryable failure with nothing left") {
  TempDir tmp;
  ObjectStoreDestination options = Options(tmp.path());
  options.prefix = "p/!{timestamp:yyyy}/";
  options.error_output_prefix = "e/!{firehose:error-output-type}/";
  std::unique_ptr<Destination> d = OpenDestination(options);
  // A file where the key needs a directory.
  fs::create_directories(tmp.File("p"));
  WriteAll(tmp.File("p/2024"), "in the way");
  DeliveryAttempt failed = d->Deliver(MakeBatch({"x"}, Utc(2024, 1, 2, 3, 4, 5)), 1);
  CHECK(failed.result == AttemptResult::kRetryable);
  CHECK(failed.error_code == "S3.WriteFailed");
  CHECK(StagingEntries(tmp.path()).empty());
  fs::remove(tmp.File("p/2024"));
  CHECK(d->Deliver(MakeBatch({"x"}, Utc(2024, 1, 2, 3, 4, 5)), 2).result ==
        AttemptResult::kDelivered);
  // A key directory removed after it was made is made again, within the attempt.
  fs::remove_all(tmp.File("p"));
  CHECK(d->Deliver(MakeBatch({"y"}, Utc(2024, 1, 2, 3, 4, 5)), 1).result ==
        AttemptResult::kDelivered);
  const std::vector<std::string> objects = Objects(tmp.path());
  REQUIRE(objects.size() == 1);
  CHECK(ReadAll(tmp.File(objects[0])) == "y");
}

TEST_CASE("Open clears what a crash of this stream left in staging and nothing else") {
  TempDir tmp;
  fs::create_directories(tmp.File(".rill-staging"));
  const std::string ours = "data~orders~1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b.tmp";
  const std::string our_errors = "error~orders~1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633c.tmp";
  const std::string other_stream = "data~orders2~1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633d.tmp";
  for (const std::string& name : {ours, our_errors, other_stream}) {
    WriteAll(tmp.File(".rill-staging/" + name), "half an object");
  }
  std::unique_ptr<Destination> d = OpenDestination(Options(tmp.path()));
  CHECK(StagingEntries(tmp.path()) == std::vector<std::string>{other_stream, our_errors});
  absl::StatusOr<std::unique_ptr<ErrorOutputWriter>> writer =
      ErrorOutputWriter::Open(tmp.path(), "", "UTC", "orders");
  REQUIRE(writer.ok());
  CHECK(StagingEntries(tmp.path()) == std::vector<std::string>{other_stream});
  CHECK(Objects(tmp.path()).empty());
}

TEST_CASE("Open refuses bad options and a directory it cannot make") {
  TempDir tmp;
  auto open_error = [](ObjectStoreDestination options, std::string stream = "orders") {
    std::unique_ptr<Destination> d = MakeObjectStoreDestination(std::move(options), stream);
    absl::Status s = d->Open();
    REQUIRE_FALSE(s.ok());
    // A destination that failed to open delivers nothing.
    CHECK(d->Deliver(MakeBatch({"x"}, Utc(2024, 1, 2, 3, 4, 5)), 1).result !=
          AttemptResult::kDelivered);
    return s;
  };
  ObjectStoreDestination options = Options(tmp.File("bucket"));
  options.file_extension = "json";
  CHECK(GetErrorCode(open_error(options)) == ErrorCode::kInvalidArgument);
  options = Options(tmp.File("bucket"));
  options.custom_time_zone = "Nowhere/Special";
  CHECK(GetErrorCode(open_error(options)) == ErrorCode::kInvalidArgument);
  options = Options(tmp.File("bucket"));
  options.prefix = "!{partitionKeyFromQuery:k}/";
  CHECK(GetErrorCode(open_error(options)) == ErrorCode::kInvalidArgument);  // no error prefix
  options = Options("");
  CHECK(GetErrorCode(open_error(options)) == ErrorCode::kInvalidArgument);
  options = Options(tmp.File("bucket"));
  CHECK(GetErrorCode(open_error(options, std::string(250, 's'))) == ErrorCode::kInvalidArgument);
  WriteAll(tmp.File("file"), "not a directory");
  options = Options(tmp.File("file"));
  CHECK(GetErrorCode(open_error(options)) == ErrorCode::kInternalFailure);
  options = Options(tmp.File("file/below"));
  CHECK(GetErrorCode(open_error(options)) == ErrorCode::kInternalFailure);
  CHECK_FALSE(fs::exists(tmp.File("bucket")));
}

FailedRecord Record(int attempts, absl::Time arrival, std::string code, std::string message,
                    std::string raw, std::string lambda_arn = "") {
  FailedRecord r;
  r.attempts_made = attempts;
  r.arrival = arrival;
  r.error_code = std::move(code);
  r.error_message = std::move(message);
  r.attempt_ending = arrival + absl::Milliseconds(1500);
  r.raw_data = std::move(raw);
  r.lambda_arn = std::move(lambda_arn);
  return r;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    REQUIRE(end != std::string::npos);  // every line ends with "\n"
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

TEST_CASE("The error output writes one JSON document per failed record") {
  TempDir tmp;
  absl::StatusOr<std::unique_ptr<ErrorOutputWriter>> writer = ErrorOutputWriter::Open(
      tmp.path(), "errors/!{firehose:error-output-type}/!{timestamp:yyyy}/", "UTC", "orders");
  REQUIRE(writer.ok());
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  const absl::Time later = Utc(2024, 1, 2, 3, 4, 5) + absl::Milliseconds(678);
  const absl::Time oldest = Utc(2023, 12, 31, 23, 59, 59);
  const std::vector<FailedRecord> records = {
      Record(3, later, "HttpEndpoint.ResponseCode",
             std::string("quote\" backslash\\ newline\n tab\t ctl\x01 bad\xff\xfe é end"), binary),
      Record(1, oldest, "Lambda.FunctionError", "plain", "hello",
             "arn:aws:lambda:us-east-1:123456789012:function:f"),
  };
  REQUIRE((*writer)->Write("http-endpoint-failed", records).ok());
  const std::vector<std::string> objects = Objects(tmp.path());
  REQUIRE(objects.size() == 1);
  // Named after the oldest arrival, uncompressed, no extension.
  CHECK(std::regex_match(objects[0],
                         std::regex("^errors/http-endpoint-failed/2023/orders-1-2023-12-31-23-59-"
                                    "59-" +
                                    std::string(kUuid) + "$")));
  const std::string text = ReadAll(tmp.File(objects[0]));
  const std::vector<std::string> lines = Lines(text);
  REQUIRE(lines.size() == 2);
  CHECK(lines[1] ==
        "{\"attemptsMade\":1,\"arrivalTimestamp\":1704067199000,\"errorCode\":\"Lambda."
        "FunctionError\",\"errorMessage\":\"plain\",\"attemptEndingTimestamp\":1704067200500,"
        "\"rawData\":\"aGVsbG8=\",\"lambdaArn\":\"arn:aws:lambda:us-east-1:123456789012:function:"
        "f\"}");

  simdjson::dom::parser parser;
  simdjson::padded_string first(lines[0]);
  simdjson::dom::element doc;
  REQUIRE(parser.parse(first).get(doc) == simdjson::SUCCESS);
  simdjson::dom::object object;
  REQUIRE(doc.get_object().get(object) == simdjson::SUCCESS);
  std::vector<std::string> keys;
  for (auto field : object) keys.emplace_back(field.key);
  CHECK(keys == std::vector<std::string>{"attemptsMade", "arrivalTimestamp", "errorCode",
                                         "errorMessage", "attemptEndingTimestamp", "rawData"});
  int64_t number = 0;
  REQUIRE(doc["attemptsMade"].get_int64().get(number) == simdjson::SUCCESS);
  CHECK(number == 3);
  REQUIRE(doc["arrivalTimestamp"].get_int64().get(number) == simdjson::SUCCESS);
  CHECK(number == 1704164645678);
  REQUIRE(doc["attemptEndingTimestamp"].get_int64().get(number) == simdjson::SUCCESS);
  CHECK(number == 1704164647178);
  std::string_view s;
  REQUIRE(doc["errorCode"].get_string().get(s) == simdjson::SUCCESS);
  CHECK(s == "HttpEndpoint.ResponseCode");
  REQUIRE(doc["errorMessage"].get_string().get(s) == simdjson::SUCCESS);
  // Invalid bytes became U+FFFD, one each; the rest is as it was.
  CHECK(s == "quote\" backslash\\ newline\n tab\t ctl\x01 bad\xEF\xBF\xBD\xEF\xBF\xBD é end");
  REQUIRE(doc["rawData"].get_string().get(s) == simdjson::SUCCESS);
  std::string raw;
  REQUIRE(absl::Base64Unescape(absl::string_view(s.data(), s.size()), &raw));
  CHECK(raw == binary);
  // Control characters are written as \u00XX.
  CHECK(lines[0].find("newline\\u000a tab\\u0009 ctl\\u0001") != std::string::npos);
  CHECK(StagingEntries(tmp.path()).empty());
}

TEST_CASE("The error output's default prefix is the type then the time") {
  TempDir tmp;
  absl::StatusOr<std::unique_ptr<ErrorOutputWriter>> writer =
      ErrorOutputWriter::Open(tmp.path(), "", "America/New_York", "orders");
  REQUIRE(writer.ok());
  REQUIRE(
      (*writer)
          ->Write("processing-failed", {Record(1, Utc(2024, 1, 2, 3, 4, 5), "Lambda.Failed", "m",
                                               "d", "arn:aws:lambda:us-east-1:1:function:f")})
          .ok());
  const std::vector<std::string> objects = Objects(tmp.path());
  REQUIRE(objects.size() == 1);
  CHECK(std::regex_match(objects[0],
                         std::regex("^processing-failed/2024/01/01/22/orders-1-2024-01-01-22-04-"
                                    "05-" +
                                    std::string(kUuid) + "$")));
  // No records: no object.
  REQUIRE((*writer)->Write("processing-failed", {}).ok());
  CHECK(Objects(tmp.path()).size() == 1);
  // A type that would leave the directory is refused.
  absl::Status escaped =
      (*writer)->Write("../x", {Record(1, Utc(2024, 1, 2, 3, 4, 5), "c", "m", "d")});
  CHECK(GetErrorCode(escaped) == ErrorCode::kInvalidArgument);
  CHECK(Objects(tmp.path()).size() == 1);
}

TEST_CASE("The error output refuses bad prefixes and survives a full disk") {
  TempDir tmp;
  CHECK(GetErrorCode(ErrorOutputWriter::Open(tmp.path(), "errors/", "UTC", "s").status()) ==
        ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(ErrorOutputWriter::Open(tmp.path(),
                                             "e/!{firehose:error-output-type}/"
                                             "!{partitionKeyFromQuery:k}/",
                                             "UTC", "s")
                         .status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(ErrorOutputWriter::Open(tmp.path(), "", "Nowhere/Special", "s").status()) ==
        ErrorCode::kInvalidArgument);
  absl::StatusOr<std::unique_ptr<ErrorOutputWriter>> writer =
      ErrorOutputWriter::Open(tmp.path(), "", "UTC", "s");
  REQUIRE(writer.ok());
  const std::vector<FailedRecord> records = {
      Record(1, Utc(2024, 1, 2, 3, 4, 5), "c", "m", std::string(10000, 'r'))};
  {
    WriteFault fault(ENOSPC);
    absl::Status failed = (*writer)->Write("http-endpoint-failed", records);
    CHECK(GetErrorCode(failed) == ErrorCode::kInternalFailure);
    CHECK(failed.message().find("No space left on device") != std::string_view::npos);
    CHECK(Objects(tmp.path()).empty());
    CHECK(StagingEntries(tmp.path()).empty());
  }
  REQUIRE((*writer)->Write("http-endpoint-failed", records).ok());
  CHECK(Objects(tmp.path()).size() == 1);
}

}  // namespace
}  // namespace rill::deliver_internal
