// DeliveryStream's core on a SimulatedClock: limits, buffering hints, retries and backoff, the
// transformation contract, dynamic partitioning, the error output, backpressure, checkpoints of a
// stream source, and metrics. The destinations are a callback or another stream; the object
// store, PostgreSQL and HTTP destinations have their own tests.
#include "rill/deliver/delivery_stream.h"

#include <simdjson.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "deliver/codec.h"
#include "rill/base/error.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

using testing::TempDir;

// What a callback destination received: each delivered buffer's records and partition keys.
struct Received {
  struct Buffer {
    std::vector<std::string> data;
    std::vector<std::string> ids;
    std::vector<std::pair<std::string, std::string>> keys;
  };
  std::vector<Buffer> buffers;
  // Answers of the next calls (OK when empty).
  std::vector<absl::Status> script;
  int calls = 0;

  std::vector<std::string> All() const {
    std::vector<std::string> all;
    for (const Buffer& b : buffers) all.insert(all.end(), b.data.begin(), b.data.end());
    return all;
  }
};

CallbackDestination Callback(Received* received) {
  CallbackDestination d;
  d.deliver = [received](absl::Span<const DeliveredRecord> records,
                         absl::Span<const std::pair<std::string, std::string>> keys) {
    ++received->calls;
    if (!received->script.empty()) {
      absl::Status s = received->script.front();
      received->script.erase(received->script.begin());
      if (!s.ok()) return s;
    }
    Received::Buffer& b = received->buffers.emplace_back();
    for (const DeliveredRecord& r : records) {
      b.data.emplace_back(r.data);
      b.ids.emplace_back(r.record_id);
    }
    b.keys.assign(keys.begin(), keys.end());
    return absl::OkStatus();
  };
  return d;
}

struct Setup {
  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>();
  TempDir errors{"deliver-errors"};
  Received received;

  DeliveryStreamOptions Options() {
    DeliveryStreamOptions o;
    o.name = "clicks";
    o.clock = clock;
    o.destination = Callback(&received);
    o.error_output = ErrorOutput{.directory = errors.path(),
                                 .prefix = "!{firehose:error-output-type}/",
                                 .custom_time_zone = "UTC"};
    return o;
  }
};

std::unique_ptr<DeliveryStream> MustCreate(DeliveryStreamOptions options) {
  absl::StatusOr<std::unique_ptr<DeliveryStream>> d = DeliveryStream::Create(std::move(options));
  INFO(d.status().ToString());
  REQUIRE(d.ok());
  return *std::move(d);
}

// Every failed-record document under `root`, in file-name order then line order.
std::vector<std::map<std::string, std::string>> ErrorDocuments(
    const std::string& root, std::vector<std::string>* paths = nullptr) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.is_regular_file() &&
        entry.path().string().find(".rill-staging") == std::string::npos) {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<std::map<std::string, std::string>> docs;
  simdjson::dom::parser parser;
  for (const std::string& file : files) {
    if (paths != nullptr) paths->push_back(file.substr(root.size() + 1));
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      simdjson::dom::element doc = parser.parse(line);
      std::map<std::string, std::string> fields;
      for (auto [key, value] : doc.get_object()) {
        if (value.is_string()) {
          fields[std::string(key)] = std::string(value.get_string().value());
        } else {
          fields[std::string(key)] = simdjson::to_string(value);
        }
      }
      docs.push_back(std::move(fields));
    }
  }
  return docs;
}

std::string Unbase64(const std::string& s) {
  std::string out;
  REQUIRE(absl::Base64Unescape(s, &out));
  return out;
}

TEST_CASE("Create refuses bad options with Kinesis-named errors") {
  Setup s;
  auto code = [](DeliveryStreamOptions o) {
    return GetErrorCode(DeliveryStream::Create(std::move(o)).status());
  };
  DeliveryStreamOptions o = s.Options();
  o.name = "";
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o.name = std::string(65, 'a');
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o.name = "bad name";
  CHECK(code(o) == ErrorCode::kInvalidArgument);

  o = s.Options();
  o.error_output.reset();
  CHECK(code(o) == ErrorCode::kInvalidArgument);

  o = s.Options();
  std::get<CallbackDestination>(o.destination).buffering.size_bytes = 129 << 20;
  CHECK(code(o) == ErrorCode::kValidation);
  o = s.Options();
  std::get<CallbackDestination>(o.destination).buffering.interval = absl::Seconds(901);
  CHECK(code(o) == ErrorCode::kValidation);
  o = s.Options();
  std::get<CallbackDestination>(o.destination).retry_duration = absl::Seconds(7201);
  CHECK(code(o) == ErrorCode::kValidation);

  o = s.Options();
  o.processing.number_of_retries = 301;
  CHECK(code(o) == ErrorCode::kValidation);
  o = s.Options();
  o.processing.transform = [](const TransformInvocation&) {
    return absl::StatusOr<std::vector<TransformedRecord>>(std::vector<TransformedRecord>{});
  };
  o.processing.buffer_interval = absl::Seconds(59);
  CHECK(code(o) == ErrorCode::kValidation);

  o = s.Options();
  o.processing.metadata_extraction = {{"game", "not a path"}};
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o = s.Options();
  o.processing.metadata_extraction = {{"game", ".game"}, {"game", ".other"}};
  CHECK(code(o) == ErrorCode::kInvalidArgument);

  o = s.Options();
  o.max_buffered_bytes = 1 << 20;  // below the default 5 MiB buffer
  CHECK(code(o) == ErrorCode::kInvalidArgument);
  o = s.Options();
  o.max_active_partitions = 0;
  CHECK(code(o) == ErrorCode::kValidation);

  auto stream = testing::MakeStream(s.clock);
  o = s.Options();
  o.source_stream = stream.get();  // without a checkpoint store
  CHECK(code(o) == ErrorCode::kInvalidArgument);

  o = s.Options();
  o.destination = StreamDestination{};  // no stream
  CHECK(code(o) == ErrorCode::kInvalidArgument);
}

TEST_CASE("PutRecordBatch keeps Firehose's limits and fails entries on their own") {
  Setup s;
  auto firehose = MustCreate(s.Options());
  std::vector<std::string_view> none;
  CHECK(GetErrorCode(firehose->PutRecordBatch(none).status()) == ErrorCode::kInvalidArgument);
  std::vector<std::string_view> many(501, "x");
  CHECK(GetErrorCode(firehose->PutRecordBatch(many).status()) == ErrorCode::kInvalidArgument);
  const std::string mib(1 << 20, 'm');
  std::vector<std::string_view> big(5, mib);  // 5 MiB
  CHECK(GetErrorCode(firehose->PutRecordBatch(big).status()) == ErrorCode::kInvalidArgument);

  const std::string too_large(1024001, 'x');
  const std::string largest(1024000, 'y');
  std::vector<std::string_view> mixed = {"a", too_large, largest, ""};
  absl::StatusOr<PutRecordBatchResult> r = firehose->PutRecordBatch(mixed);
  REQUIRE(r.ok());
  CHECK(r->failed_put_count == 1);
  REQUIRE(r->request_responses.size() == 4);
  CHECK(r->request_responses[0].error_code.empty());
  CHECK(r->request_responses[0].record_id.size() == 56);
  CHECK(r->request_responses[1].error_code == "InvalidArgumentException");
  CHECK(r->request_responses[1].record_id.empty());
  CHECK(r->request_responses[2].error_code.empty());
  CHECK(r->request_responses[3].error_code.empty());
  CHECK(r->request_responses[0].record_id != r->request_responses[2].record_id);
  CHECK(GetErrorCode(firehose->PutRecord(too_large).status()) == ErrorCode::kInvalidArgument);

  REQUIRE(firehose->Flush().ok());
  CHECK(s.received.All() == std::vector<std::string>{"a", largest, ""});
  CHECK(s.received.buffers[0].ids[0] == r->request_responses[0].record_id);
  const DeliveryMetrics m = firehose->metrics();
  CHECK(m.incoming_records == 3);
  CHECK(m.incoming_bytes == 1 + 1024000);
  CHECK(m.incoming_put_requests == 2);
}

TEST_CASE("A buffer is delivered when its interval has passed and not before") {
  Setup s;
  DeliveryStreamOptions o = s.Options();  // default hints: 5 MiB, 300 s
  auto firehose = MustCreate(std::move(o));
  REQUIRE(firehose->PutRecord("one").ok());
  s.clock->Advance(absl::Seconds(100));
  REQUIRE(firehose->PutRecord("two").ok());
  REQUIRE(firehose->Poll().ok());
  s.clock->Advance(absl::Seconds(199));
  REQUIRE(firehose->Poll().ok());
  CHECK(s.received.calls == 0);
  CHECK(firehose->metrics().data_freshness_ms == 299000);
  // 300 s after the oldest record arrived.
  s.clock->Advance(absl::Seconds(1));
  REQUIRE(firehose->Poll().ok());
  REQUIRE(s.received.buffers.size() == 1);
  CHECK(s.received.buffers[0].data == std::vector<std::string>{"one", "two"});
  const DeliveryMetrics m = firehose->metrics();
  CHECK(m.delivery_records == 2);
  CHECK(m.delivery_bytes == 6);
  CHECK(m.delivery_success == 1);
  CHECK(m.data_freshness_ms == 0);
  CHECK(m.destination == "Callback");
}

TEST_CASE("A buffer is delivered as soon as it holds the size hint") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  std::get<CallbackDestination>(o.destination).buffering = {.size_bytes = 1 << 20,
                                                            .interval = absl::Seconds(900)};
  auto firehose = MustCreate(std::move(o));
  const std::string record(100 * 1024, 'r');
  for (int i = 0; i < 25; ++i) REQUIRE(firehose->PutRecord(record).ok());  // 2.44 MiB
  REQUIRE(firehose->Poll().ok());
  // Two full buffers (11 records reach 1 MiB), the rest waits for its interval.
  REQUIRE(s.received.buffers.size() == 2);
  CHECK(s.received.buffers[0].data.size() == 11);
  CHECK(s.received.buffers[1].data.size() == 11);
  s.clock->Advance(absl::Seconds(900));
  REQUIRE(firehose->Poll().ok());
  REQUIRE(s.received.buffers.size() == 3);
  CHECK(s.received.buffers[2].data.size() == 3);
}

TEST_CASE("Interval zero delivers on every round") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  std::get<CallbackDestination>(o.destination).buffering.interval = absl::ZeroDuration();
  auto firehose = MustCreate(std::move(o));
  REQUIRE(firehose->PutRecord("a").ok());
  REQUIRE(firehose->Poll().ok());
  REQUIRE(firehose->PutRecord("b").ok());
  REQUIRE(firehose->Poll().ok());
  REQUIRE(s.received.buffers.size() == 2);
  CHECK(s.received.All() == std::vector<std::string>{"a", "b"});
}

TEST_CASE("A failed delivery is retried after a backoff and then delivered once") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  std::get<CallbackDestination>(o.destination).buffering.interval = absl::ZeroDuration();
  s.received.script = {MakeError(ErrorCode::kServiceUnavailable, "down"),
                       MakeError(ErrorCode::kServiceUnavailable, "still down")};
  auto firehose = MustCreate(std::move(o));
  REQUIRE(firehose->PutRecord("a").ok());
  CHECK(GetErrorCode(firehose->Poll()) == ErrorCode::kServiceUnavailable);
  CHECK(s.received.calls == 1);
  // The first backoff is 1 s +- 15 %: not yet after 0.8 s, surely after 1.2 s.
  s.clock->Advance(absl::Milliseconds(800));
  REQUIRE(firehose->Poll().ok());
  CHECK(s.received.calls == 1);
  s.clock->Advance(absl::Milliseconds(400));
  CHECK(GetErrorCode(firehose->Poll()) == ErrorCode::kServiceUnavailable);
  CHECK(s.received.calls == 2);
  // Then 2 s +- 15 %.
  s.clock->Advance(absl::Milliseconds(1600));
  REQUIRE(firehose->Poll().ok());
  CHECK(s.received.calls == 2);
  s.clock->Advance(absl::Milliseconds(800));
  REQUIRE(firehose->Poll().ok());
  CHECK(s.received.calls == 3);
  CHECK(s.received.All() == std::vector<std::string>{"a"});
  const DeliveryMetrics m = firehose->metrics();
  CHECK(m.delivery_attempts == 3);
  CHECK(m.delivery_success == 1);
  CHECK(m.error_output_records == 0);
}

TEST_CASE("Records whose retries run out go to the error output as failed-record documents") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  auto& callback = std::get<CallbackDestination>(o.destination);
  callback.buffering.interval = absl::ZeroDuration();
  callback.retry_duration = absl::Seconds(10);
  for (int i = 0; i < 10; ++i)
    s.received.script.push_back(MakeError(ErrorCode::kInternalFailure, "broken"));
  auto firehose = MustCreate(std::move(o));
  const absl::Time arrival = s.clock->Now();
  REQUIRE(firehose->PutRecord("first").ok());
  REQUIRE(firehose->PutRecord(std::string("\x00\xff", 2)).ok());
  // Attempts at 0, ~1, ~3, ~7 and ~15 s: the fifth is past the 10 s retry duration.
  for (int i = 0; i < 40; ++i) {
    firehose->Poll().IgnoreError();
    s.clock->Advance(absl::Milliseconds(500));
  }
  CHECK(s.received.calls == 5);
  std::vector<std::string> paths;
  auto docs = ErrorDocuments(s.errors.path(), &paths);
  REQUIRE(docs.size() == 2);
  REQUIRE(paths.size() == 1);
  CHECK(absl::StartsWith(paths[0], "callback-failed/clicks-1-2024-01-01-00-00-00-"));
  CHECK(docs[0]["attemptsMade"] == "5");
  CHECK(docs[0]["errorCode"] == "Callback.InternalFailure");
  CHECK(docs[0]["errorMessage"] == "broken");
  CHECK(docs[0]["arrivalTimestamp"] == std::to_string(absl::ToUnixMillis(arrival)));
  CHECK(Unbase64(docs[0]["rawData"]) == "first");
  CHECK(Unbase64(docs[1]["rawData"]) == std::string("\x00\xff", 2));
  CHECK(docs[0].count("lambdaArn") == 0);
  CHECK(std::stoll(docs[0]["attemptEndingTimestamp"]) >=
        absl::ToUnixMillis(arrival + absl::Seconds(10)));
  const DeliveryMetrics m = firehose->metrics();
  CHECK(m.error_output_records == 2);
  CHECK(m.delivery_records == 0);
  CHECK(m.buffered_bytes == 0);
}

TransformFunction Transformer(std::vector<std::string>* invocation_ids, int* calls) {
  return
      [invocation_ids, calls](
          const TransformInvocation& invocation) -> absl::StatusOr<std::vector<TransformedRecord>> {
        ++*calls;
        invocation_ids->emplace_back(invocation.invocation_id);
        std::vector<TransformedRecord> out;
        for (const TransformInput& in : invocation.records) {
          TransformedRecord& t = out.emplace_back();
          t.record_id = std::string(in.record_id);
          if (in.data == "drop") {
            t.result = TransformResult::kDropped;
          } else if (in.data == "fail") {
            t.result = TransformResult::kProcessingFailed;
          } else {
            t.result = TransformResult::kOk;
            t.data = "<" + std::string(in.data) + ">";
          }
        }
        return out;
      };
}

TEST_CASE("The transformation's Ok Dropped and ProcessingFailed results") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  std::vector<std::string> invocations;
  int calls = 0;
  o.processing.transform = Transformer(&invocations, &calls);
  o.processing.lambda_arn = "arn:aws:lambda:us-east-1:123456789012:function:shape";
  auto firehose = MustCreate(std::move(o));
  for (const char* r : {"a", "drop", "fail", "b"}) REQUIRE(firehose->PutRecord(r).ok());
  REQUIRE(firehose->Poll().ok());
  CHECK(calls == 0);  // the processor's buffer (1 MiB, 60 s) is not full yet
  s.clock->Advance(absl::Seconds(60));
  REQUIRE(firehose->Poll().ok());
  CHECK(calls == 1);
  REQUIRE(firehose->Flush().ok());
  CHECK(s.received.All() == std::vector<std::string>{"<a>", "<b>"});
  auto docs = ErrorDocuments(s.errors.path());
  REQUIRE(docs.size() == 1);
  CHECK(Unbase64(docs[0]["rawData"]) == "fail");
  CHECK(docs[0]["errorCode"] == "Lambda.ProcessingFailedStatus");
  CHECK(docs[0]["lambdaArn"] == "arn:aws:lambda:us-east-1:123456789012:function:shape");
  CHECK(docs[0]["attemptsMade"] == "1");
  const DeliveryMetrics m = firehose->metrics();
  CHECK(m.execute_processing_success == 1);
  CHECK(m.succeed_processing_records == 2);
  CHECK(m.succeed_processing_bytes == 6);
  CHECK(m.dropped_records == 1);
  CHECK(m.error_output_records == 1);
}

TEST_CASE(
    "A transformation that loses a record id is retried then its batch goes to the error output") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  int calls = 0;
  std::vector<std::string> ids;
  o.processing.number_of_retries = 2;
  o.processing.transform =
      [&](const TransformInvocation& invocation) -> absl::StatusOr<std::vector<TransformedRecord>> {
    ++calls;
    ids.emplace_back(invocation.invocation_id);
    std::vector<TransformedRecord> out;
    // Answers for the first record only.
    TransformedRecord& t = out.emplace_back();
    t.record_id = std::string(invocation.records[0].record_id);
    t.data = "x";
    return out;
  };
  auto firehose = MustCreate(std::move(o));
  REQUIRE(firehose->PutRecord("one").ok());
  REQUIRE(firehose->PutRecord("two").ok());
  REQUIRE(firehose->Flush().ok());
  CHECK(calls == 3);
  CHECK(ids[0] != ids[1]);
  CHECK(s.received.calls == 0);
  auto docs = ErrorDocuments(s.errors.path());
  REQUIRE(docs.size() == 2);
  CHECK(docs[0]["errorCode"] == "Lambda.MissingRecordId");
  CHECK(docs[0]["attemptsMade"] == "3");
  CHECK(Unbase64(docs[0]["rawData"]) == "one");
  CHECK(Unbase64(docs[1]["rawData"]) == "two");
  CHECK(firehose->metrics().execute_processing_failure == 3);
}

TEST_CASE("A transformation error is retried and the retry's answer is used") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  int calls = 0;
  std::vector<std::string> ids;
  TransformFunction ok = Transformer(&ids, &calls);
  o.processing.transform =
      [&, ok](
          const TransformInvocation& invocation) -> absl::StatusOr<std::vector<TransformedRecord>> {
    if (calls == 0) {
      ++calls;
      return MakeError(ErrorCode::kInternalFailure, "cold start");
    }
    return ok(invocation);
  };
  auto firehose = MustCreate(std::move(o));
  REQUIRE(firehose->PutRecord("a").ok());
  REQUIRE(firehose->Flush().ok());
  CHECK(calls == 2);
  CHECK(s.received.All() == std::vector<std::string>{"<a>"});
  CHECK(ErrorDocuments(s.errors.path()).empty());
}

TEST_CASE("A transformation that answers an unknown or repeated record id fails") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  o.processing.number_of_retries = 0;
  bool repeat = false;
  o.processing.transform =
      [&](const TransformInvocation& invocation) -> absl::StatusOr<std::vector<TransformedRecord>> {
    std::vector<TransformedRecord> out;
    for (const TransformInput& in : invocation.records) {
      out.push_back({std::string(in.record_id), TransformResult::kOk, "x", {}});
      if (repeat) out.push_back({std::string(in.record_id), TransformResult::kOk, "y", {}});
    }
    if (!repeat) out.push_back({"made-up", TransformResult::kOk, "z", {}});
    return out;
  };
  auto firehose = MustCreate(std::move(o));
  REQUIRE(firehose->PutRecord("a").ok());
  REQUIRE(firehose->Flush().ok());
  repeat = true;
  REQUIRE(firehose->PutRecord("b").ok());
  REQUIRE(firehose->Flush().ok());
  auto docs = ErrorDocuments(s.errors.path());
  REQUIRE(docs.size() == 2);
  std::vector<std::string> codes = {docs[0]["errorCode"], docs[1]["errorCode"]};
  std::sort(codes.begin(), codes.end());
  CHECK(codes == std::vector<std::string>{"Lambda.DuplicatedRecordId", "Lambda.InvalidRecordId"});
  CHECK(s.received.calls == 0);
}

TEST_CASE(
    "MetadataExtraction partitions buffers by JSON fields and sends bad records to the error "
    "output") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  o.processing.metadata_extraction = {{"game", ".game"}, {"level", ".meta.level"}};
  o.processing.append_delimiter = true;
  auto firehose = MustCreate(std::move(o));
  for (const char* r :
       {R"({"game":"chess","meta":{"level":1}})", R"({"game":"go","meta":{"level":1}})",
        R"({"game":"chess","meta":{"level":1},"x":2})", "not json", R"({"game":"chess"})"}) {
    REQUIRE(firehose->PutRecord(r).ok());
  }
  REQUIRE(firehose->Flush().ok());
  REQUIRE(s.received.buffers.size() == 2);
  std::map<std::string, std::vector<std::string>> by_game;
  for (const auto& b : s.received.buffers) {
    REQUIRE(b.keys.size() == 2);
    CHECK(b.keys[1] == std::pair<std::string, std::string>("level", "1"));
    by_game[b.keys[0].second] = b.data;
  }
  CHECK(by_game["chess"] ==
        std::vector<std::string>{"{\"game\":\"chess\",\"meta\":{\"level\":1}}\n",
                                 "{\"game\":\"chess\",\"meta\":{\"level\":1},\"x\":2}\n"});
  CHECK(by_game["go"].size() == 1);
  auto docs = ErrorDocuments(s.errors.path());
  REQUIRE(docs.size() == 2);
  for (auto& d : docs) CHECK(d["errorCode"] == "DynamicPartitioning.MetadataExtractionFailed");
  std::vector<std::string> raws = {Unbase64(docs[0]["rawData"]), Unbase64(docs[1]["rawData"])};
  std::sort(raws.begin(), raws.end());
  CHECK(raws == std::vector<std::string>{"not json", "{\"game\":\"chess\"}"});
}

TEST_CASE("Records for a partition beyond max_active_partitions go to the error output") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  o.processing.metadata_extraction = {{"k", ".k"}};
  o.max_active_partitions = 2;
  auto firehose = MustCreate(std::move(o));
  for (const char* r : {R"({"k":"a"})", R"({"k":"b"})", R"({"k":"c"})", R"({"k":"a"})"}) {
    REQUIRE(firehose->PutRecord(r).ok());
  }
  REQUIRE(firehose->Poll().ok());
  CHECK(firehose->metrics().active_partitions == 2);
  REQUIRE(firehose->Flush().ok());
  auto docs = ErrorDocuments(s.errors.path());
  REQUIRE(docs.size() == 1);
  CHECK(docs[0]["errorCode"] == "DynamicPartitioning.ActivePartitionsLimitExceeded");
  CHECK(Unbase64(docs[0]["rawData"]) == R"({"k":"c"})");
  CHECK(s.received.All().size() == 3);
}

TEST_CASE("Decompression inflates gzip records and refuses others") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  o.processing.decompress_gzip = true;
  auto firehose = MustCreate(std::move(o));
  std::string gz;
  REQUIRE(deliver_internal::Compress(CompressionFormat::kGzip, "inflated", &gz).ok());
  REQUIRE(firehose->PutRecord(gz).ok());
  REQUIRE(firehose->PutRecord("plain").ok());
  REQUIRE(firehose->Flush().ok());
  CHECK(s.received.All() == std::vector<std::string>{"inflated"});
  auto docs = ErrorDocuments(s.errors.path());
  REQUIRE(docs.size() == 1);
  CHECK(docs[0]["errorCode"] == "Decompression.Failed");
  CHECK(Unbase64(docs[0]["rawData"]) == "plain");
}

TEST_CASE("Full buffers push back: puts fail with ServiceUnavailable until deliveries make room") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  auto& callback = std::get<CallbackDestination>(o.destination);
  callback.buffering = {.size_bytes = 1 << 20, .interval = absl::ZeroDuration()};
  o.max_buffered_bytes = 1 << 20;
  for (int i = 0; i < 3; ++i)
    s.received.script.push_back(MakeError(ErrorCode::kInternalFailure, "down"));
  auto firehose = MustCreate(std::move(o));
  const std::string record(256 * 1024, 'x');
  int accepted = 0;
  int refused = 0;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<std::string> put = firehose->PutRecord(record);
    if (put.ok()) {
      ++accepted;
    } else {
      CHECK(GetErrorCode(put.status()) == ErrorCode::kServiceUnavailable);
      ++refused;
    }
    firehose->Poll().IgnoreError();
  }
  // The destination is down: at most 1 MiB buffered, 1 MiB waiting to be read.
  CHECK(accepted <= 8);
  CHECK(refused >= 12);
  CHECK(firehose->metrics().throttled_records == refused);
  for (int i = 0; i < 20; ++i) {
    s.clock->Advance(absl::Seconds(10));
    firehose->Poll().IgnoreError();
  }
  REQUIRE(firehose->Flush().ok());
  CHECK(static_cast<int>(s.received.All().size()) == accepted);
  CHECK(firehose->PutRecord(record).ok());
}

TEST_CASE("Flush delivers everything now and Close refuses later puts") {
  Setup s;
  auto firehose = MustCreate(s.Options());
  REQUIRE(firehose->PutRecord("a").ok());
  REQUIRE(firehose->Flush().ok());
  CHECK(s.received.All() == std::vector<std::string>{"a"});
  REQUIRE(firehose->PutRecord("b").ok());
  REQUIRE(firehose->Close().ok());
  CHECK(s.received.All() == std::vector<std::string>{"a", "b"});
  CHECK(GetErrorCode(firehose->PutRecord("c").status()) == ErrorCode::kResourceInUse);
  CHECK(GetErrorCode(firehose->Start()) == ErrorCode::kResourceInUse);
}

TEST_CASE("A stream source is checkpointed only after delivery so a crash loses nothing") {
  Setup s;
  auto source = testing::MakeStream(s.clock, 2, "events");
  InMemoryCheckpointStore store;
  auto options = [&] {
    DeliveryStreamOptions o = s.Options();
    o.source_stream = source.get();
    o.checkpoint_store = &store;
    o.starting_position = StartingPosition::TrimHorizon();
    return o;
  };
  for (int i = 0; i < 10; ++i)
    testing::MustPut(*source, "k" + std::to_string(i), "r" + std::to_string(i));
  {
    auto firehose = MustCreate(options());
    CHECK(GetErrorCode(firehose->PutRecord("x").status()) == ErrorCode::kInvalidArgument);
    REQUIRE(firehose->Poll().ok());
    CHECK(firehose->metrics().incoming_records == 10);
    CHECK(s.received.calls == 0);
    // Destroyed without Close: a crash with 10 records buffered.
  }
  {
    auto firehose = MustCreate(options());
    REQUIRE(firehose->Poll().ok());
    REQUIRE(firehose->Flush().ok());
    auto all = s.received.All();
    std::sort(all.begin(), all.end());
    CHECK(all.size() == 10);
    CHECK(all.front() == "r0");
    for (int i = 10; i < 13; ++i)
      testing::MustPut(*source, "k" + std::to_string(i), "r" + std::to_string(i));
    REQUIRE(firehose->Poll().ok());
    REQUIRE(firehose->Flush().ok());
    CHECK(s.received.All().size() == 13);
  }
  // Everything was delivered and checkpointed: a new instance delivers nothing again.
  s.received.buffers.clear();
  auto firehose = MustCreate(options());
  REQUIRE(firehose->Poll().ok());
  REQUIRE(firehose->Flush().ok());
  CHECK(s.received.buffers.empty());
}

TEST_CASE("A stream source's resharded shards are delivered parents first") {
  Setup s;
  auto source = testing::MakeStream(s.clock, 1, "events");
  InMemoryCheckpointStore store;
  DeliveryStreamOptions o = s.Options();
  o.source_stream = source.get();
  o.checkpoint_store = &store;
  o.starting_position = StartingPosition::TrimHorizon();
  std::get<CallbackDestination>(o.destination).buffering.interval = absl::ZeroDuration();
  auto firehose = MustCreate(std::move(o));
  testing::MustPut(*source, "k", "before");
  REQUIRE(source->UpdateShardCount(2).ok());
  testing::MustPut(*source, "k", "after");
  for (int i = 0; i < 10; ++i) {
    REQUIRE(firehose->Poll().ok());
    s.clock->Advance(absl::Seconds(1));
  }
  CHECK(s.received.All() == std::vector<std::string>{"before", "after"});
}

TEST_CASE("The stream destination puts each record with its source partition key") {
  Setup s;
  auto source = testing::MakeStream(s.clock, 1, "events");
  auto target = testing::MakeStream(s.clock, 1, "copy");
  InMemoryCheckpointStore store;
  DeliveryStreamOptions o = s.Options();
  o.source_stream = source.get();
  o.checkpoint_store = &store;
  o.starting_position = StartingPosition::TrimHorizon();
  o.destination = StreamDestination{
      .stream = target.get(), .retry_duration = absl::Seconds(300), .buffering = {}};
  auto firehose = MustCreate(std::move(o));
  testing::MustPut(*source, "player-1", "a");
  testing::MustPut(*source, "player-2", "b");
  REQUIRE(firehose->Poll().ok());
  REQUIRE(firehose->Flush().ok());
  auto read = testing::MustRead(
      *target, testing::MustIterator(*target, ShardId(0), StartingPosition::TrimHorizon()));
  REQUIRE(read.records.size() == 2);
  CHECK(read.records[0].partition_key == "player-1");
  CHECK(read.records[0].data == "a");
  CHECK(read.records[1].partition_key == "player-2");
  CHECK(firehose->metrics().destination == "Stream");
}

TEST_CASE("The stream destination's error output holds exactly the records that did not arrive") {
  // A record the target refuses (too large for it) goes to the error output on its own, and the
  // rest of the buffer is delivered; when retries run out, what was put before the failure stays
  // delivered. The whole buffer used to go to the error output in both cases, duplicating the
  // records the target already held.
  Setup s;
  StreamOptions source_options = testing::MemoryStreamOptions(s.clock, 1, "events");
  source_options.max_record_bytes = size_t{2} << 20;
  absl::StatusOr<std::unique_ptr<Stream>> source = Stream::Create(source_options);
  REQUIRE(source.ok());
  StreamOptions target_options = testing::MemoryStreamOptions(s.clock, 1, "copy");
  target_options.shard_limits.write_records_per_second = 5;  // a bucket of 5 records
  absl::StatusOr<std::unique_ptr<Stream>> target = Stream::Create(target_options);
  REQUIRE(target.ok());
  InMemoryCheckpointStore store;
  DeliveryStreamOptions o = s.Options();
  o.source_stream = source->get();
  o.checkpoint_store = &store;
  o.starting_position = StartingPosition::TrimHorizon();
  o.destination = StreamDestination{
      .stream = target->get(), .retry_duration = absl::ZeroDuration(), .buffering = {}};
  auto firehose = MustCreate(std::move(o));
  const std::string big(size_t{3} << 19, 'x');  // 1.5 MiB: over the target's 1 MiB
  for (std::string_view data : {std::string_view("a"), std::string_view(big), std::string_view("b"),
                                std::string_view("c"), std::string_view("d"), std::string_view("e"),
                                std::string_view("f"), std::string_view("g")}) {
    testing::MustPut(**source, "k", data);
  }
  REQUIRE(firehose->Poll().ok());
  REQUIRE(firehose->Flush().ok());

  auto read = testing::MustRead(
      **target, testing::MustIterator(**target, ShardId(0), StartingPosition::TrimHorizon()));
  std::vector<std::string> delivered;
  for (const Record& r : read.records) delivered.emplace_back(r.data);
  CHECK(delivered == std::vector<std::string>{"a", "b", "c", "d", "e"});
  auto docs = ErrorDocuments(s.errors.path());
  REQUIRE(docs.size() == 3);
  CHECK(Unbase64(docs[0]["rawData"]) == big);
  CHECK(docs[0]["errorCode"] == "Stream.InvalidArgument");
  CHECK(Unbase64(docs[1]["rawData"]) == "f");
  CHECK(docs[1]["errorCode"] == "Stream.ProvisionedThroughputExceeded");
  CHECK(Unbase64(docs[2]["rawData"]) == "g");
  const DeliveryMetrics m = firehose->metrics();
  CHECK(m.delivery_records == 5);
  CHECK(m.error_output_records == 3);
  CHECK(m.buffered_bytes == 0);
}

TEST_CASE("A started delivery stream delivers when the simulated time reaches the interval") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  std::get<CallbackDestination>(o.destination).buffering.interval = absl::Seconds(60);
  // The callback runs on the delivery thread; the test reads what it saw through an atomic.
  std::atomic<int> delivered{0};
  std::get<CallbackDestination>(o.destination).deliver =
      [&](absl::Span<const DeliveredRecord> records,
          absl::Span<const std::pair<std::string, std::string>>) {
        delivered += static_cast<int>(records.size());
        return absl::OkStatus();
      };
  auto firehose = MustCreate(std::move(o));
  REQUIRE(firehose->Start().ok());
  CHECK(GetErrorCode(firehose->Poll()) == ErrorCode::kResourceInUse);
  REQUIRE(firehose->PutRecord("a").ok());
  REQUIRE(firehose->PutRecord("b").ok());
  // Wait until the thread has read both (it is woken by the puts), without moving the time.
  for (int i = 0; i < 3000 && firehose->metrics().buffered_bytes < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // real time: the thread's pace
  }
  REQUIRE(firehose->metrics().buffered_bytes == 2);
  CHECK(delivered.load() == 0);
  s.clock->Advance(absl::Seconds(60));
  for (int i = 0; i < 3000 && delivered.load() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(delivered.load() == 2);
  REQUIRE(firehose->Close().ok());
}

TEST_CASE("A started delivery stream reads a burst larger than one round's batch at once") {
  // A round reads at most 10,000 records (the consumer group's max_records). The thread used to
  // sleep after every round until the next deadline or put, so the rest of a burst waited for the
  // buffering interval (for ever on a clock that stands still, as here).
  Setup s;
  DeliveryStreamOptions o = s.Options();
  std::get<CallbackDestination>(o.destination).buffering.size_bytes = size_t{1} << 20;
  std::atomic<int> delivered{0};
  std::atomic<int> buffers{0};
  std::get<CallbackDestination>(o.destination).deliver =
      [&](absl::Span<const DeliveredRecord> records,
          absl::Span<const std::pair<std::string, std::string>>) {
        delivered += static_cast<int>(records.size());
        ++buffers;
        return absl::OkStatus();
      };
  auto firehose = MustCreate(std::move(o));
  REQUIRE(firehose->Start().ok());
  // 25,000 records of 100 bytes: 2.4 MiB, two full 1 MiB buffers (10,486 records each) and
  // 4,028 records left in the third, which only the interval or Flush delivers.
  const std::string data(100, 'x');
  std::vector<std::string_view> batch(500, data);
  for (int i = 0; i < 50; ++i) {
    absl::StatusOr<PutRecordBatchResult> put = firehose->PutRecordBatch(batch);
    REQUIRE(put.ok());
    REQUIRE(put->failed_put_count == 0);
  }
  // Real time only bounds the wait for the thread; the clock never moves.
  for (int i = 0; i < 6000 && delivered.load() < 2 * 10486; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(delivered.load() == 2 * 10486);
  CHECK(buffers.load() == 2);
  for (int i = 0; i < 6000 && firehose->metrics().buffered_bytes < 4028 * 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(firehose->metrics().buffered_bytes == 4028 * 100);
  REQUIRE(firehose->Flush().ok());
  CHECK(delivered.load() == 25000);
  CHECK(buffers.load() == 3);
  REQUIRE(firehose->Close().ok());
}

TEST_CASE("Flush and Close deliver a DirectPut burst larger than one round's read") {
  // A round reads at most 10,000 records; Flush and Close used to run one round, so Flush left
  // the rest of a burst unread and Close lost it although every put had been acknowledged.
  const bool close = GENERATE(false, true);
  INFO((close ? "Close" : "Flush"));
  Setup s;
  auto firehose = MustCreate(s.Options());
  std::vector<std::string> records;
  for (int i = 0; i < 25000; ++i) records.push_back(absl::StrCat("r", i));
  const std::vector<std::string_view> views(records.begin(), records.end());
  for (size_t i = 0; i < views.size(); i += 500) {
    absl::StatusOr<PutRecordBatchResult> put =
        firehose->PutRecordBatch(absl::MakeConstSpan(views).subspan(i, 500));
    REQUIRE(put.ok());
    REQUIRE(put->failed_put_count == 0);
  }
  REQUIRE((close ? firehose->Close() : firehose->Flush()).ok());
  CHECK(s.received.All() == records);
  // One buffer (5 MiB holds them all), not one per round's read.
  CHECK(s.received.buffers.size() == 1);
  CHECK(firehose->metrics().delivery_records == 25000);
}

TEST_CASE("Close delivers records accepted while the buffers were full") {
  // max_buffered_bytes bounds what is read and not yet delivered; puts are bounded by what is
  // unread. So with a full buffer waiting for its retry, another max_buffered_bytes can be
  // accepted. Close's flushing round delivered the retry and stopped, its read skipped for the
  // full buffers: the unread records of an in-memory DirectPut were lost.
  Setup s;
  DeliveryStreamOptions o = s.Options();
  std::get<CallbackDestination>(o.destination).buffering.size_bytes = size_t{1} << 20;
  o.max_buffered_bytes = size_t{1} << 20;
  s.received.script = {MakeError(ErrorCode::kServiceUnavailable, "down")};
  auto firehose = MustCreate(std::move(o));
  std::vector<std::string> records;
  for (int i = 0; i < 20486; ++i) records.push_back(absl::StrFormat("%0100d", i));
  const std::vector<std::string_view> views(records.begin(), records.end());
  auto put = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; i += 500) {
      absl::StatusOr<PutRecordBatchResult> r = firehose->PutRecordBatch(
          absl::MakeConstSpan(views).subspan(i, std::min<size_t>(500, end - i)));
      REQUIRE(r.ok());
      REQUIRE(r->failed_put_count == 0);
    }
  };
  // 10,486 records of 100 bytes fill the 1 MiB buffer; its delivery fails and waits to retry.
  put(0, 10000);
  REQUIRE(firehose->Poll().ok());
  put(10000, 10486);
  CHECK(GetErrorCode(firehose->Poll()) == ErrorCode::kServiceUnavailable);
  CHECK(s.received.calls == 1);
  CHECK(firehose->metrics().buffered_bytes == 10486 * 100);
  // 10,000 more are accepted (unread: 1,000,000 bytes) while the buffers are full.
  put(10486, 20486);
  REQUIRE(firehose->Close().ok());
  CHECK(s.received.All() == records);
  CHECK(firehose->metrics().delivery_records == 20486);
}

TEST_CASE("Close delivers every record a put racing it acknowledged") {
  // A put looked at `closed` once, then put its records; Close, meanwhile, took the flush's
  // target and stopped reading, so records acknowledged after that were never delivered.
  for (int run = 0; run < 20; ++run) {
    INFO("run " << run);
    Setup s;
    DeliveryStreamOptions o = s.Options();
    std::atomic<int64_t> delivered{0};
    std::get<CallbackDestination>(o.destination).deliver =
        [&](absl::Span<const DeliveredRecord> records,
            absl::Span<const std::pair<std::string, std::string>>) {
          delivered += static_cast<int64_t>(records.size());
          return absl::OkStatus();
        };
    auto firehose = MustCreate(std::move(o));
    const std::string data(64, 'x');
    const std::vector<std::string_view> batch(50, data);
    std::atomic<int64_t> accepted{0};
    std::vector<std::thread> putters;
    for (int t = 0; t < 3; ++t) {
      putters.emplace_back([&] {
        for (;;) {
          absl::StatusOr<PutRecordBatchResult> put = firehose->PutRecordBatch(batch);
          if (!put.ok()) return;  // closed
          for (const PutRecordBatchResponseEntry& e : put->request_responses) {
            if (e.error_code.empty()) ++accepted;
          }
        }
      });
    }
    while (accepted.load() < 500) std::this_thread::yield();
    REQUIRE(firehose->Close().ok());
    for (std::thread& t : putters) t.join();
    CHECK(delivered.load() == accepted.load());
  }
}

TEST_CASE("Metrics are exposed under Firehose's names") {
  Setup s;
  auto firehose = MustCreate(s.Options());
  REQUIRE(firehose->PutRecord("abc").ok());
  REQUIRE(firehose->Flush().ok());
  const DeliveryMetrics m = firehose->metrics();
  const std::string json = ToJson(m);
  CHECK(absl::StartsWith(
      json,
      R"({"delivery_stream":"clicks","destination":"Callback","taken_at":"2024-01-01T00:00:00Z","metrics":{"IncomingRecords":1,"IncomingBytes":3,"IncomingPutRequests":1,"ThrottledRecords":0,"DeliveryToCallback.Records":1,"DeliveryToCallback.Bytes":3,"DeliveryToCallback.Success":1,)"));
  const std::string text = ToPrometheusText(m);
  CHECK(text.find("# TYPE rill_firehose_incoming_records_total counter\n"
                  "rill_firehose_incoming_records_total{delivery_stream=\"clicks\",destination="
                  "\"Callback\"} 1\n") != std::string::npos);
  CHECK(text.find("(Firehose: DeliveryToCallback.DataFreshness)") != std::string::npos);
}

}  // namespace
}  // namespace rill

namespace rill {
namespace {

TEST_CASE("A long DirectPut run keeps memory bounded and delivers every record") {
  Setup s;
  DeliveryStreamOptions o = s.Options();
  int64_t delivered = 0;
  int64_t delivered_bytes = 0;
  auto& callback = std::get<CallbackDestination>(o.destination);
  callback.buffering = {.size_bytes = 1 << 20, .interval = absl::ZeroDuration()};
  callback.deliver = [&](absl::Span<const DeliveredRecord> records,
                         absl::Span<const std::pair<std::string, std::string>>) {
    for (const DeliveredRecord& r : records) {
      // Each record says its own number in its first bytes: checked in order.
      CHECK(r.data.substr(0, 8) == absl::StrFormat("%08d", delivered));
      ++delivered;
      delivered_bytes += static_cast<int64_t>(r.data.size());
    }
    return absl::OkStatus();
  };
  o.max_buffered_bytes = 1 << 20;
  auto firehose = MustCreate(std::move(o));
  // 80 MiB through a stream whose memory budget is 1 MiB + 32 MiB.
  std::string record(64 * 1024, 'x');
  for (int i = 0; i < 1280; ++i) {
    const std::string number = absl::StrFormat("%08d", i);
    record.replace(0, 8, number);
    absl::StatusOr<std::string> put = firehose->PutRecord(record);
    while (!put.ok()) {
      REQUIRE(GetErrorCode(put.status()) == ErrorCode::kServiceUnavailable);
      REQUIRE(firehose->Poll().ok());
      put = firehose->PutRecord(record);
    }
    REQUIRE(firehose->Poll().ok());
  }
  REQUIRE(firehose->Flush().ok());
  CHECK(delivered == 1280);
  CHECK(delivered_bytes == 1280 * 64 * 1024);
}

}  // namespace
}  // namespace rill
