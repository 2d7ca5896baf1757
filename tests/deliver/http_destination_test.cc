// The HTTP endpoint destination against a real HTTP server on 127.0.0.1 (http_test_server.h).
// Real time only where the protocol is real time: the request timeout (200 ms against a server
// that waits 5 s, which the server's destructor does not wait for).
#include "deliver/http_destination.h"

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "deliver/http_test_server.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"

namespace rill::deliver_internal {
namespace {

using deliver_testing::HttpTestServer;
using deliver_testing::RefusingPort;
using Behaviour = HttpTestServer::Behaviour;

constexpr char kArn[] = "arn:aws:firehose:us-east-1:000000000000:deliverystream/events";
// 2024-01-01T00:00:00.123Z.
constexpr int64_t kNowMs = 1704067200123;

std::shared_ptr<SimulatedClock> TestClock() {
  return std::make_shared<SimulatedClock>(absl::FromUnixMillis(kNowMs));
}

Batch MakeBatch(std::string delivery_id, const std::vector<std::string>& records) {
  Batch batch;
  batch.delivery_id = std::move(delivery_id);
  for (const std::string& data : records) {
    BatchRecord r;
    r.offset = batch.arena.size();
    r.size = static_cast<uint32_t>(data.size());
    batch.arena += data;
    batch.records.push_back(r);
  }
  return batch;
}

std::vector<std::string> Numbered(size_t n) {
  std::vector<std::string> records;
  records.reserve(n);
  for (size_t i = 0; i < n; ++i) records.push_back(absl::StrCat("record-", i));
  return records;
}

HttpEndpointDestination Options(const HttpTestServer& server) {
  HttpEndpointDestination options;
  options.url = server.url("/ingest");
  options.request_timeout = absl::Seconds(60);
  return options;
}

std::unique_ptr<Destination> Open(HttpEndpointDestination options,
                                  std::shared_ptr<Clock> clock = TestClock()) {
  std::unique_ptr<Destination> d = MakeHttpEndpointDestination(options, kArn, std::move(clock));
  const absl::Status s = d->Open();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return d;
}

bool IsGuid(const std::string& s) {
  static const std::regex kGuid(
      "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  return std::regex_match(s, kGuid);
}

// A request body, parsed.
struct Body {
  std::string request_id;
  int64_t timestamp = -1;
  std::vector<std::string> records;
};

Body ParseBody(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(json).get(doc) == simdjson::SUCCESS);
  Body body;
  std::string_view id;
  REQUIRE(doc["requestId"].get_string().get(id) == simdjson::SUCCESS);
  body.request_id = std::string(id);
  REQUIRE(doc["timestamp"].get_int64().get(body.timestamp) == simdjson::SUCCESS);
  simdjson::dom::array records;
  REQUIRE(doc["records"].get_array().get(records) == simdjson::SUCCESS);
  for (simdjson::dom::element record : records) {
    std::string_view data;
    REQUIRE(record["data"].get_string().get(data) == simdjson::SUCCESS);
    std::string decoded;
    REQUIRE(absl::Base64Unescape(absl::string_view(data.data(), data.size()), &decoded));
    body.records.push_back(std::move(decoded));
  }
  return body;
}

std::string Get(const HttpTestServer::Request& request, std::string_view header) {
  return request.Header(header).value_or("<absent>");
}

TEST_CASE("HTTP endpoint requests carry Firehose's headers and body") {
  HttpTestServer server;
  HttpEndpointDestination options = Options(server);
  options.url = server.url("/ingest?stream=events");
  std::unique_ptr<Destination> d = Open(options);

  std::string binary;
  for (int c = 0; c < 256; ++c) binary.push_back(static_cast<char>(c));
  const std::vector<std::string> records = {"hello", "", binary, "{\"a\":1}", "xy"};
  const DeliveryAttempt a = d->Deliver(MakeBatch("batch-1", records), 1);
  INFO(a.error_code << " " << a.error_message);
  REQUIRE(a.result == AttemptResult::kDelivered);

  const std::vector<HttpTestServer::Request> seen = server.requests();
  REQUIRE(seen.size() == 1);
  const HttpTestServer::Request& r = seen[0];
  CHECK(r.method == "POST");
  CHECK(r.target == "/ingest?stream=events");
  CHECK(Get(r, "Content-Type") == "application/json");
  CHECK(Get(r, "Content-Encoding") == "<absent>");
  CHECK(Get(r, "Content-Length") == std::to_string(r.raw_body_size));
  CHECK(r.raw_body_size == r.body.size());
  CHECK(Get(r, "X-Amz-Firehose-Protocol-Version") == "1.0");
  CHECK(Get(r, "X-Amz-Firehose-Source-Arn") == kArn);
  CHECK(Get(r, "X-Amz-Firehose-Access-Key") == "<absent>");
  CHECK(Get(r, "X-Amz-Firehose-Common-Attributes") == "<absent>");
  CHECK(Get(r, "Expect") == "<absent>");
  const std::string id = Get(r, "X-Amz-Firehose-Request-Id");
  CHECK(IsGuid(id));

  const Body body = ParseBody(r.body);
  CHECK(body.request_id == id);
  CHECK(body.timestamp == kNowMs);
  CHECK(body.records == records);
  // The exact text, field order included.
  std::string expected =
      absl::StrCat("{\"requestId\":\"", id, "\",\"timestamp\":", kNowMs, ",\"records\":[");
  for (size_t i = 0; i < records.size(); ++i) {
    absl::StrAppend(&expected, i == 0 ? "" : ",", "{\"data\":\"", absl::Base64Escape(records[i]),
                    "\"}");
  }
  expected += "]}";
  CHECK(r.body == expected);

  CHECK(d->metric_name() == "HttpEndpoint");
  CHECK(d->error_output_type() == "http-endpoint-failed");
  CHECK(d->retry_duration() == absl::Seconds(300));
}

TEST_CASE("HTTP endpoint gzip bodies are sent with Content-Encoding gzip") {
  HttpTestServer server;
  HttpEndpointDestination options = Options(server);
  options.gzip = true;
  std::unique_ptr<Destination> d = Open(options);
  const std::vector<std::string> records(100, std::string(1000, 'z'));
  REQUIRE(d->Deliver(MakeBatch("batch-gz", records), 1).result == AttemptResult::kDelivered);

  const std::vector<HttpTestServer::Request> seen = server.requests();
  REQUIRE(seen.size() == 1);
  const HttpTestServer::Request& r = seen[0];
  CHECK(r.body_error.empty());
  CHECK(Get(r, "Content-Encoding") == "gzip");
  CHECK(Get(r, "Content-Type") == "application/json");
  CHECK(Get(r, "Content-Length") == std::to_string(r.raw_body_size));
  CHECK(r.raw_body_size < r.body.size() / 10);
  const Body body = ParseBody(r.body);
  CHECK(body.request_id == Get(r, "X-Amz-Firehose-Request-Id"));
  CHECK(body.timestamp == kNowMs);
  CHECK(body.records == records);
}

TEST_CASE("HTTP endpoint access key and common attributes headers") {
  HttpTestServer server;
  HttpEndpointDestination options = Options(server);
  options.access_key = "my-secret-key";
  options.common_attributes = {{"team", "data"}, {"q\"uote", "back\\slash"}, {"nl", "a\nb"}};
  std::unique_ptr<Destination> d = Open(options);
  REQUIRE(d->Deliver(MakeBatch("batch-a", {"x"}), 1).result == AttemptResult::kDelivered);

  const std::vector<HttpTestServer::Request> seen = server.requests();
  REQUIRE(seen.size() == 1);
  CHECK(Get(seen[0], "X-Amz-Firehose-Access-Key") == "my-secret-key");
  // std::map order; JSON-escaped.
  CHECK(Get(seen[0], "X-Amz-Firehose-Common-Attributes") ==
        R"({"commonAttributes":{"nl":"a\nb","q\"uote":"back\\slash","team":"data"}})");
}

TEST_CASE("HTTP endpoint 500 then 200 retries with the same request id") {
  HttpTestServer server;
  server.Push(Behaviour::Answer(500, std::string("{\"error\":\"busy\"}")));
  auto clock = TestClock();
  std::unique_ptr<Destination> d = Open(Options(server), clock);
  const Batch batch = MakeBatch("batch-500", {"a", "b"});

  const DeliveryAttempt first = d->Deliver(batch, 1);
  CHECK(first.result == AttemptResult::kRetryable);
  CHECK(first.error_code == "HttpEndpoint.DestinationException");
  CHECK(first.error_message ==
        "The following response was received from the endpoint destination. 500: "
        "{\"error\":\"busy\"}");

  clock->Advance(absl::Seconds(1));
  const DeliveryAttempt second = d->Deliver(batch, 2);
  INFO(second.error_code << " " << second.error_message);
  CHECK(second.result == AttemptResult::kDelivered);

  const std::vector<HttpTestServer::Request> seen = server.requests();
  REQUIRE(seen.size() == 2);
  const std::string id = Get(seen[0], "X-Amz-Firehose-Request-Id");
  CHECK(IsGuid(id));
  CHECK(Get(seen[1], "X-Amz-Firehose-Request-Id") == id);
  CHECK(ParseBody(seen[1].body).request_id == id);
  CHECK(ParseBody(seen[0].body).timestamp == kNowMs);
  CHECK(ParseBody(seen[1].body).timestamp == kNowMs + 1000);
  CHECK(ParseBody(seen[1].body).records == std::vector<std::string>{"a", "b"});
  // One handle, one kept-alive connection.
  CHECK(server.connections() == 1);

  // A new batch gets a new id.
  REQUIRE(d->Deliver(MakeBatch("batch-next", {"c"}), 1).result == AttemptResult::kDelivered);
  const std::vector<HttpTestServer::Request> after = server.requests();
  REQUIRE(after.size() == 3);
  CHECK(Get(after[2], "X-Amz-Firehose-Request-Id") != id);
  CHECK(server.connections() == 1);
}

TEST_CASE("HTTP endpoint a 200 that does not acknowledge the request is retryable") {
  HttpTestServer server;
  std::string body;
  SECTION("another requestId") {
    body = R"({"requestId":"00000000-0000-4000-8000-000000000000","timestamp":1704067200000})";
  }
  SECTION("no timestamp") { body = R"({"requestId":"${requestId}"})"; }
  SECTION("a timestamp that is not an integer") {
    body = R"({"requestId":"${requestId}","timestamp":"1704067200000"})";
  }
  SECTION("not JSON") { body = "OK"; }
  SECTION("empty") { body = ""; }
  server.Push(Behaviour::Answer(200, body));
  std::unique_ptr<Destination> d = Open(Options(server));
  const Batch batch = MakeBatch("batch-bad", {"a"});
  const DeliveryAttempt a = d->Deliver(batch, 1);
  CHECK(a.result == AttemptResult::kRetryable);
  CHECK(a.error_code == "HttpEndpoint.InvalidResponseFromDestination");
  CHECK(absl::StrContains(a.error_message, server.url("/ingest")));
  // The well-formed echo that follows acknowledges it.
  CHECK(d->Deliver(batch, 2).result == AttemptResult::kDelivered);
  const std::vector<HttpTestServer::Request> seen = server.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].request_id == seen[1].request_id);
}

TEST_CASE("HTTP endpoint 413 is permanent") {
  HttpTestServer server;
  server.Push(Behaviour::Answer(413, std::string("too big")));
  std::unique_ptr<Destination> d = Open(Options(server));
  const DeliveryAttempt a = d->Deliver(MakeBatch("batch-413", {"a"}), 1);
  CHECK(a.result == AttemptResult::kPermanent);
  CHECK(a.error_code == "HttpEndpoint.RequestEntityTooLarge");
  CHECK(absl::StrContains(a.error_message, "413: too big"));
}

TEST_CASE("HTTP endpoint other statuses are retryable DestinationException") {
  HttpTestServer server;
  const int status = GENERATE(400, 401, 404, 429, 503);
  server.Push(Behaviour::Answer(status, std::string(300, 'e')));
  std::unique_ptr<Destination> d = Open(Options(server));
  const DeliveryAttempt a = d->Deliver(MakeBatch("batch-status", {"a"}), 1);
  CHECK(a.result == AttemptResult::kRetryable);
  CHECK(a.error_code == "HttpEndpoint.DestinationException");
  // The body is cut at 256 bytes.
  CHECK(a.error_message ==
        absl::StrCat("The following response was received from the endpoint destination. ", status,
                     ": ", std::string(256, 'e')));
}

TEST_CASE("HTTP endpoint request timeout is retryable RequestTimeout") {
  HttpTestServer server;
  server.Push(Behaviour::Delayed(absl::Seconds(5)));
  HttpEndpointDestination options = Options(server);
  options.request_timeout = absl::Milliseconds(200);
  std::unique_ptr<Destination> d = Open(options);
  const Batch batch = MakeBatch("batch-slow", {"a"});
  const DeliveryAttempt a = d->Deliver(batch, 1);
  CHECK(a.result == AttemptResult::kRetryable);
  CHECK(a.error_code == "HttpEndpoint.RequestTimeout");
  CHECK(absl::StrContains(a.error_message, server.url("/ingest")));
  CHECK(absl::StrContains(a.error_message, "200 ms"));
  REQUIRE(server.WaitForRequests(1, absl::Seconds(30)));

  // The retry, answered at once, is the same request.
  const DeliveryAttempt b = d->Deliver(batch, 2);
  INFO(b.error_code << " " << b.error_message);
  CHECK(b.result == AttemptResult::kDelivered);
  const std::vector<HttpTestServer::Request> seen = server.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].request_id == seen[1].request_id);
}

TEST_CASE("HTTP endpoint connection refused is retryable ConnectionFailed") {
  RefusingPort refusing;
  HttpEndpointDestination options;
  options.url = absl::StrCat("http://127.0.0.1:", refusing.port(), "/ingest");
  std::unique_ptr<Destination> d = Open(options);
  const DeliveryAttempt a = d->Deliver(MakeBatch("batch-refused", {"a"}), 1);
  CHECK(a.result == AttemptResult::kRetryable);
  CHECK(a.error_code == "HttpEndpoint.ConnectionFailed");
  INFO(a.error_message);
  CHECK(absl::StrContains(a.error_message, options.url));
  CHECK(absl::StrContains(a.error_message, "Failed to connect"));
}

TEST_CASE("HTTP endpoint connection closed without an answer is retryable ConnectionReset") {
  HttpTestServer server;
  server.Push(Behaviour::Close());
  std::unique_ptr<Destination> d = Open(Options(server));
  const Batch batch = MakeBatch("batch-closed", {"a"});
  const DeliveryAttempt a = d->Deliver(batch, 1);
  CHECK(a.result == AttemptResult::kRetryable);
  CHECK(a.error_code == "HttpEndpoint.ConnectionReset");
  CHECK(absl::StrContains(a.error_message, server.url("/ingest")));
  CHECK(d->Deliver(batch, 2).result == AttemptResult::kDelivered);
  CHECK(server.connections() == 2);
}

TEST_CASE("HTTP endpoint response over 1 MiB is retryable ResponseTooLarge") {
  HttpTestServer server;
  server.Push(Behaviour::Oversized((size_t{1} << 20) + 1));
  std::unique_ptr<Destination> d = Open(Options(server));
  const DeliveryAttempt a = d->Deliver(MakeBatch("batch-large-answer", {"a"}), 1);
  CHECK(a.result == AttemptResult::kRetryable);
  CHECK(a.error_code == "HttpEndpoint.ResponseTooLarge");
  CHECK(absl::StrContains(a.error_message, server.url("/ingest")));
}

TEST_CASE("HTTP endpoint 25000 records go as 3 requests and a retry resends the unacknowledged") {
  HttpTestServer server;
  server.Push(Behaviour::Answer(200));
  server.Push(Behaviour::Answer(500));
  std::unique_ptr<Destination> d = Open(Options(server));
  const std::vector<std::string> records = Numbered(25000);
  const Batch batch = MakeBatch("batch-big", records);

  const DeliveryAttempt first = d->Deliver(batch, 1);
  CHECK(first.result == AttemptResult::kRetryable);
  CHECK(first.error_code == "HttpEndpoint.DestinationException");
  const DeliveryAttempt second = d->Deliver(batch, 2);
  INFO(second.error_code << " " << second.error_message);
  CHECK(second.result == AttemptResult::kDelivered);

  const std::vector<HttpTestServer::Request> seen = server.requests();
  REQUIRE(seen.size() == 4);  // 1, 2 (500); then 2, 3
  std::vector<Body> bodies;
  for (const HttpTestServer::Request& r : seen) {
    bodies.push_back(ParseBody(r.body));
    CHECK(bodies.back().request_id == Get(r, "X-Amz-Firehose-Request-Id"));
    CHECK(IsGuid(bodies.back().request_id));
  }
  CHECK(bodies[0].records.size() == 10000);
  CHECK(bodies[1].records.size() == 10000);
  CHECK(bodies[2].records.size() == 10000);
  CHECK(bodies[3].records.size() == 5000);
  CHECK(bodies[2].request_id == bodies[1].request_id);
  CHECK(bodies[2].records == bodies[1].records);
  CHECK(bodies[0].request_id != bodies[1].request_id);
  CHECK(bodies[3].request_id != bodies[0].request_id);
  CHECK(bodies[3].request_id != bodies[1].request_id);
  // Every record once, in order, across the acknowledged requests.
  std::vector<std::string> delivered = bodies[0].records;
  delivered.insert(delivered.end(), bodies[2].records.begin(), bodies[2].records.end());
  delivered.insert(delivered.end(), bodies[3].records.begin(), bodies[3].records.end());
  CHECK(delivered == records);

  // Once delivered the state is gone: the same records under a new delivery id get new ids.
  REQUIRE(d->Deliver(MakeBatch("batch-big-2", records), 1).result == AttemptResult::kDelivered);
  const std::vector<HttpTestServer::Request> later = server.requests();
  REQUIRE(later.size() == 7);
  for (size_t i = 4; i < 7; ++i) {
    for (size_t j = 0; j < 4; ++j) CHECK(later[i].request_id != seen[j].request_id);
  }
}

TEST_CASE("HTTP endpoint a new delivery id drops the state of an unfinished batch") {
  HttpTestServer server;
  server.Push(Behaviour::Answer(503));
  std::unique_ptr<Destination> d = Open(Options(server));
  CHECK(d->Deliver(MakeBatch("batch-x", {"a"}), 1).result == AttemptResult::kRetryable);
  CHECK(d->Deliver(MakeBatch("batch-y", {"b"}), 1).result == AttemptResult::kDelivered);
  CHECK(d->Deliver(MakeBatch("batch-x", {"a"}), 1).result == AttemptResult::kDelivered);
  const std::vector<HttpTestServer::Request> seen = server.requests();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].request_id != seen[1].request_id);
  CHECK(seen[2].request_id != seen[0].request_id);
}

TEST_CASE("HTTP endpoint bodies over 64 MiB are split") {
  HttpTestServer server;
  std::unique_ptr<Destination> d = Open(Options(server));
  // 51 records of 1,000,000 bytes: 68,000,000 bytes of base64, over 64 MiB (67,108,864); the
  // first 50 fit in one body.
  const std::vector<std::string> records(51, std::string(1000000, 'r'));
  const DeliveryAttempt a = d->Deliver(MakeBatch("batch-huge", records), 1);
  INFO(a.error_code << " " << a.error_message);
  REQUIRE(a.result == AttemptResult::kDelivered);
  const std::vector<HttpTestServer::Request> seen = server.requests();
  REQUIRE(seen.size() == 2);
  // Counted, not parsed: a DOM of 64 MiB would cost the test gigabytes.
  auto count = [](const std::string& body) {
    size_t n = 0;
    for (size_t at = body.find("{\"data\":\""); at != std::string::npos;
         at = body.find("{\"data\":\"", at + 1)) {
      ++n;
    }
    return n;
  };
  CHECK(seen[0].body.size() <= kHttpMaxBodyBytes);
  CHECK(seen[1].body.size() <= kHttpMaxBodyBytes);
  CHECK(count(seen[0].body) == 50);
  CHECK(count(seen[1].body) == 1);
  CHECK(seen[0].request_id != seen[1].request_id);
}

TEST_CASE("HTTP endpoint an empty batch sends nothing") {
  HttpTestServer server;
  std::unique_ptr<Destination> d = Open(Options(server));
  CHECK(d->Deliver(MakeBatch("batch-empty", {}), 1).result == AttemptResult::kDelivered);
  CHECK(server.requests().empty());
}

TEST_CASE("HTTP endpoint options are validated") {
  HttpEndpointDestination ok;
  ok.url = "https://example.com/ingest";
  CHECK(ValidateHttpEndpointDestination(ok).ok());

  auto code = [](const HttpEndpointDestination& o) {
    return GetErrorCode(ValidateHttpEndpointDestination(o));
  };
  HttpEndpointDestination o = ok;
  SECTION("url") {
    for (const char* url :
         {"", "ftp://example.com/", "example.com", "http://", "http://exa mple.com/"}) {
      o.url = url;
      INFO(url);
      CHECK(code(o) == ErrorCode::kInvalidArgument);
    }
    o.url = "HTTP://127.0.0.1:8080/x?y=z";
    CHECK(code(o) == ErrorCode::kOk);
  }
  SECTION("access key") {
    o.access_key = std::string(4096, 'k');
    CHECK(code(o) == ErrorCode::kOk);
    o.access_key = std::string(4097, 'k');
    CHECK(code(o) == ErrorCode::kInvalidArgument);
    o.access_key = "a\r\nX-Injected: 1";
    CHECK(code(o) == ErrorCode::kInvalidArgument);
  }
  SECTION("common attributes") {
    for (int i = 0; i < 50; ++i) o.common_attributes[absl::StrCat("k", i)] = "v";
    CHECK(code(o) == ErrorCode::kOk);
    o.common_attributes["k50"] = "v";
    CHECK(code(o) == ErrorCode::kInvalidArgument);
  }
  SECTION("retry duration") {
    o.retry_duration = absl::ZeroDuration();
    CHECK(code(o) == ErrorCode::kOk);
    o.retry_duration = absl::Seconds(7200);
    CHECK(code(o) == ErrorCode::kOk);
    o.retry_duration = absl::Seconds(7201);
    CHECK(code(o) == ErrorCode::kValidation);
    o.retry_duration = absl::Seconds(-1);
    CHECK(code(o) == ErrorCode::kValidation);
  }
  SECTION("request timeout") {
    o.request_timeout = absl::Milliseconds(1);
    CHECK(code(o) == ErrorCode::kOk);
    o.request_timeout = absl::Seconds(900);
    CHECK(code(o) == ErrorCode::kOk);
    o.request_timeout = absl::ZeroDuration();
    CHECK(code(o) == ErrorCode::kValidation);
    o.request_timeout = absl::Seconds(901);
    CHECK(code(o) == ErrorCode::kValidation);
  }
  SECTION("buffering size") {
    o.buffering.size_bytes = size_t{1} << 20;
    CHECK(code(o) == ErrorCode::kOk);
    o.buffering.size_bytes = size_t{64} << 20;
    CHECK(code(o) == ErrorCode::kOk);
    o.buffering.size_bytes = (size_t{1} << 20) - 1;
    CHECK(code(o) == ErrorCode::kValidation);
    o.buffering.size_bytes = (size_t{64} << 20) + 1;
    CHECK(code(o) == ErrorCode::kValidation);
  }
  SECTION("buffering interval") {
    o.buffering.interval = absl::ZeroDuration();
    CHECK(code(o) == ErrorCode::kOk);
    o.buffering.interval = absl::Seconds(900);
    CHECK(code(o) == ErrorCode::kOk);
    o.buffering.interval = absl::Seconds(901);
    CHECK(code(o) == ErrorCode::kValidation);
    o.buffering.interval = absl::Seconds(-1);
    CHECK(code(o) == ErrorCode::kValidation);
  }
  SECTION("Open refuses what validation refuses and Deliver does not send") {
    o.url = "ftp://example.com/";
    std::unique_ptr<Destination> d = MakeHttpEndpointDestination(o, kArn, TestClock());
    CHECK(GetErrorCode(d->Open()) == ErrorCode::kInvalidArgument);
    CHECK(d->Deliver(MakeBatch("batch-never", {"a"}), 1).result == AttemptResult::kPermanent);
  }
}

}  // namespace
}  // namespace rill::deliver_internal
