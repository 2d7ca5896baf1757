// KinesisService: JSON in, exact JSON out, for every operation and every class of error.
#include "net/kinesis_service.h"

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <simdjson.h>
#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "net/json.h"
#include "rill/base/clock.h"
#include "rill/net/stream_registry.h"
#include "testing/fixtures.h"

namespace rill::net {
namespace {

constexpr char kArnPrefix[] = "arn:aws:kinesis:us-east-1:000000000000:stream/";
constexpr char kTwoTo127[] = "170141183460469231731687303715884105728";
constexpr char kTwoTo127Minus1[] = "170141183460469231731687303715884105727";
constexpr char kMaxHashKey[] = "340282366920938463463374607431768211455";

// A parsed response body; members are read by JSON pointer ("/StreamDescription/Shards/0").
class Json {
 public:
  explicit Json(const std::string& text) : text_(text) {
    const simdjson::error_code error = parser_.parse(text_).get(root_);
    INFO(text_);
    REQUIRE(error == simdjson::SUCCESS);
  }
  simdjson::dom::element At(std::string_view pointer) const {
    simdjson::dom::element e;
    INFO(pointer << " in " << text_);
    REQUIRE(root_.at_pointer(pointer).get(e) == simdjson::SUCCESS);
    return e;
  }
  bool Has(std::string_view pointer) const {
    simdjson::dom::element e;
    return root_.at_pointer(pointer).get(e) == simdjson::SUCCESS;
  }
  std::string Str(std::string_view pointer) const {
    std::string_view s;
    INFO(pointer << " in " << text_);
    REQUIRE(At(pointer).get_string().get(s) == simdjson::SUCCESS);
    return std::string(s);
  }
  int64_t Int(std::string_view pointer) const {
    int64_t v = 0;
    INFO(pointer << " in " << text_);
    REQUIRE(At(pointer).get_int64().get(v) == simdjson::SUCCESS);
    return v;
  }
  double Double(std::string_view pointer) const {
    double v = 0;
    INFO(pointer << " in " << text_);
    REQUIRE(At(pointer).get_double().get(v) == simdjson::SUCCESS);
    return v;
  }
  bool Bool(std::string_view pointer) const {
    bool v = false;
    INFO(pointer << " in " << text_);
    REQUIRE(At(pointer).get_bool().get(v) == simdjson::SUCCESS);
    return v;
  }
  size_t Size(std::string_view pointer) const {
    simdjson::dom::array a;
    INFO(pointer << " in " << text_);
    REQUIRE(At(pointer).get_array().get(a) == simdjson::SUCCESS);
    return a.size();
  }
  // Member names of an object, in order.
  std::vector<std::string> Keys(std::string_view pointer) const {
    simdjson::dom::object o;
    REQUIRE(At(pointer).get_object().get(o) == simdjson::SUCCESS);
    std::vector<std::string> keys;
    for (auto field : o) keys.emplace_back(field.key);
    return keys;
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
};

std::string Decode(std::string_view base64) {
  std::string out;
  REQUIRE(DecodeBase64Strict(base64, &out).ok());
  return out;
}

std::string Encode(std::string_view bytes) {
  std::string out;
  AppendBase64(bytes, &out);
  return out;
}

struct Fixture {
  explicit Fixture(StreamRegistryOptions options = {}) {
    options.stream_template.clock = clock;
    auto made = StreamRegistry::Create(std::move(options));
    INFO(made.status().ToString());
    REQUIRE(made.ok());
    registry = std::move(*made);
    service = std::make_unique<KinesisService>(registry);
  }

  Response Call(std::string_view operation, std::string_view body) const {
    return service->Handle(absl::StrCat("Kinesis_20131202.", internal::ToAbsl(operation)), body);
  }
  // The call must succeed; returns its parsed body (an empty body parses as {}).
  std::unique_ptr<Json> Ok(std::string_view operation, std::string_view body) const {
    Response r = Call(operation, body);
    INFO(operation << " " << body << " -> " << r.http_status << " " << r.body);
    REQUIRE(r.http_status == 200);
    REQUIRE(r.error_type.empty());
    return std::make_unique<Json>(r.body.empty() ? std::string("{}") : r.body);
  }
  void Create(std::string_view name, int shards) const {
    Response r = Call("CreateStream", absl::StrCat(R"({"StreamName":")", internal::ToAbsl(name),
                                                   R"(","ShardCount":)", shards, "}"));
    INFO(r.body);
    REQUIRE(r.http_status == 200);
    CHECK(r.body.empty());
  }
  std::shared_ptr<Stream> Find(std::string_view name) const {
    std::shared_ptr<Stream> s = registry->Find(name);
    REQUIRE(s != nullptr);
    return s;
  }

  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>();
  std::shared_ptr<StreamRegistry> registry;
  std::unique_ptr<KinesisService> service;
};

// The response must be the error `type` with HTTP `status` and exactly this body.
void CheckError(const Response& r, std::string_view type, std::string_view message,
                int status = 400) {
  INFO(r.body);
  CHECK(r.http_status == status);
  CHECK(r.error_type == type);
  std::string expected;
  JsonWriter w(&expected);
  w.BeginObject();
  w.Member("__type", type);
  w.Member("message", message);
  w.EndObject();
  CHECK(r.body == expected);
}

// A SerializationException for a wrong member type: Kinesis spells the key "Message".
void CheckTypeError(const Response& r, std::string_view message) {
  INFO(r.body);
  CHECK(r.http_status == 400);
  CHECK(r.error_type == "SerializationException");
  std::string expected;
  JsonWriter w(&expected);
  w.BeginObject();
  w.Member("__type", "SerializationException");
  w.Member("Message", message);
  w.EndObject();
  CHECK(r.body == expected);
}

TEST_CASE("JsonWriter escapes strings per RFC 8259 and replaces invalid UTF-8", "[net]") {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Member("a\"b", std::string_view("q\"\\/\b\f\n\r\t\x01\x1f\x7f", 12));
  w.Member("utf8", "caf\xc3\xa9 \xf0\x9f\x98\x80");
  w.Member("bad", "x\xff\xc3y\xed\xa0\x80z");
  w.Key("list");
  w.BeginArray();
  w.Int(-5);
  w.Bool(true);
  w.Null();
  w.BeginObject();
  w.EndObject();
  w.BeginArray();
  w.EndArray();
  w.EndArray();
  w.EndObject();
  CHECK(out ==
        "{\"a\\\"b\":\"q\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\","
        "\"utf8\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\","
        "\"bad\":\"x\xef\xbf\xbd\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\","
        "\"list\":[-5,true,null,{},[]]}");
  // What it writes parses back to the same text.
  Json parsed(out);
  CHECK(parsed.Str("/a\"b") == std::string("q\"\\/\b\f\n\r\t\x01\x1f\x7f"));
}

TEST_CASE("JsonWriter writes epoch seconds with millisecond precision", "[net]") {
  auto text = [](absl::Time t) {
    std::string out;
    JsonWriter(&out).EpochSeconds(t);
    return out;
  };
  CHECK(text(absl::FromUnixSeconds(1704067200)) == "1704067200");
  CHECK(text(absl::FromUnixMillis(1704067200123)) == "1704067200.123");
  CHECK(text(absl::FromUnixMillis(1704067200500)) == "1704067200.5");
  CHECK(text(absl::FromUnixMillis(1704067200050)) == "1704067200.05");
  CHECK(text(absl::FromUnixMicros(1704067200123999)) == "1704067200.123");
  CHECK(text(absl::FromUnixMillis(-1500)) == "-2.5");
  CHECK(text(absl::UnixEpoch()) == "0");
}

TEST_CASE("Base64 decoding is as strict as Kinesis", "[net]") {
  std::string out;
  REQUIRE(DecodeBase64Strict("AAH/AHJpbGwA", &out).ok());
  CHECK(out == std::string("\0\x01\xff\0rill\0", 9));
  CHECK(Encode(std::string("\0\x01\xff\0rill\0", 9)) == "AAH/AHJpbGwA");
  REQUIRE(DecodeBase64Strict("", &out).ok());
  CHECK(out.empty());
  REQUIRE(DecodeBase64Strict("aGk=", &out).ok());
  CHECK(out == "hi");
  auto message = [](std::string_view text) {
    std::string ignored;
    return std::string(DecodeBase64Strict(text, &ignored).message());
  };
  CHECK(message("abc") == "Base64 encoded length is expected a multiple of 4 bytes but found: 3");
  CHECK(message("ab!c") == "Invalid Base64 character: '!'");
  CHECK(message("ab=c") == "Invalid Base64 character: '='");
  CHECK(message("aGl=") == "Invalid last non-pad Base64 character dectected");
  CHECK(message("aR==") == "Invalid last non-pad Base64 character dectected");
  CHECK(message("a===") == "Invalid last non-pad Base64 character dectected");
  CHECK(message("====") == "Invalid last non-pad Base64 character dectected");
}

TEST_CASE("Base64 decoding agrees with a reference on every length and on every mutation",
          "[net]") {
  // The reference: absl's decoder, plus Kinesis' rule that only canonical padded text is valid
  // (it re-encodes what it decoded and refuses a difference).
  auto reference = [](std::string_view text) -> std::optional<std::string> {
    std::string decoded;
    if (text.size() % 4 != 0) return std::nullopt;
    if (!absl::Base64Unescape(absl::string_view(text.data(), text.size()), &decoded)) {
      return std::nullopt;
    }
    if (absl::Base64Escape(decoded) != absl::string_view(text.data(), text.size())) {
      return std::nullopt;
    }
    return decoded;
  };
  std::mt19937 random(7);
  const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=!- \n";
  for (size_t length = 0; length < 64; ++length) {
    std::string bytes(length, '\0');
    for (char& c : bytes) c = static_cast<char>(random());
    std::string text = Encode(bytes);
    std::string out;
    REQUIRE(DecodeBase64Strict(text, &out).ok());
    CHECK(out == bytes);
    // Every single-character change, valid or not, is judged as the reference judges it.
    for (size_t i = 0; i < text.size(); ++i) {
      for (int k = 0; k < 3; ++k) {
        std::string mutated = text;
        mutated[i] = alphabet[random() % alphabet.size()];
        const std::optional<std::string> expected = reference(mutated);
        std::string got;
        const absl::Status status = DecodeBase64Strict(mutated, &got);
        INFO("input " << mutated);
        REQUIRE(status.ok() == expected.has_value());
        if (expected) CHECK(got == *expected);
      }
    }
  }
}

TEST_CASE("CreateStream then DescribeStream gives the stream as Kinesis describes it", "[net]") {
  Fixture f;
  f.Create("orders", 2);
  auto d = f.Ok("DescribeStream", R"({"StreamName":"orders"})");
  CHECK(d->Keys("/StreamDescription") ==
        std::vector<std::string>{"StreamName", "StreamARN", "StreamStatus", "StreamModeDetails",
                                 "Shards", "HasMoreShards", "RetentionPeriodHours",
                                 "StreamCreationTimestamp", "EnhancedMonitoring",
                                 "EncryptionType"});
  CHECK(d->Str("/StreamDescription/StreamName") == "orders");
  CHECK(d->Str("/StreamDescription/StreamARN") == absl::StrCat(kArnPrefix, "orders"));
  CHECK(d->Str("/StreamDescription/StreamStatus") == "ACTIVE");
  CHECK(d->Str("/StreamDescription/StreamModeDetails/StreamMode") == "PROVISIONED");
  CHECK(d->Bool("/StreamDescription/HasMoreShards") == false);
  CHECK(d->Int("/StreamDescription/RetentionPeriodHours") == 24);
  CHECK(d->Int("/StreamDescription/StreamCreationTimestamp") == 1704067200);
  CHECK(d->Size("/StreamDescription/EnhancedMonitoring/0/ShardLevelMetrics") == 0);
  CHECK(d->Str("/StreamDescription/EncryptionType") == "NONE");
  REQUIRE(d->Size("/StreamDescription/Shards") == 2);
  const std::vector<ShardDescription> shards = f.Find("orders")->ListShards();
  CHECK(d->Keys("/StreamDescription/Shards/0") ==
        std::vector<std::string>{"ShardId", "HashKeyRange", "SequenceNumberRange"});
  CHECK(d->Str("/StreamDescription/Shards/0/ShardId") == "shardId-000000000000");
  CHECK(d->Str("/StreamDescription/Shards/0/HashKeyRange/StartingHashKey") == "0");
  CHECK(d->Str("/StreamDescription/Shards/0/HashKeyRange/EndingHashKey") == kTwoTo127Minus1);
  CHECK(d->Str("/StreamDescription/Shards/0/SequenceNumberRange/StartingSequenceNumber") ==
        shards[0].sequence_number_range.starting_sequence_number.ToString());
  CHECK_FALSE(d->Has("/StreamDescription/Shards/0/SequenceNumberRange/EndingSequenceNumber"));
  CHECK(d->Str("/StreamDescription/Shards/1/ShardId") == "shardId-000000000001");
  CHECK(d->Str("/StreamDescription/Shards/1/HashKeyRange/StartingHashKey") == kTwoTo127);
  CHECK(d->Str("/StreamDescription/Shards/1/HashKeyRange/EndingHashKey") == kMaxHashKey);
  CHECK(d->Str("/StreamDescription/Shards/1/SequenceNumberRange/StartingSequenceNumber") ==
        shards[1].sequence_number_range.starting_sequence_number.ToString());

  // By ARN as well.
  auto by_arn =
      f.Ok("DescribeStream", absl::StrCat(R"({"StreamARN":")", kArnPrefix, R"(orders"})"));
  CHECK(by_arn->text() == d->text());
}

TEST_CASE("CreateStream refuses what Kinesis refuses", "[net]") {
  StreamRegistryOptions options;
  options.shard_limit = 10;
  Fixture f(options);
  f.Create("s", 2);
  CheckError(f.Call("CreateStream", R"({"StreamName":"s","ShardCount":1})"),
             "ResourceInUseException", "Stream s under account 000000000000 already exists.");
  CheckError(f.Call("CreateStream", "{}"), "ValidationException",
             "2 validation errors detected: Value null at 'shardCount' failed to satisfy "
             "constraint: Member must not be null; Value null at 'streamName' failed to satisfy "
             "constraint: Member must not be null");
  CheckError(f.Call("CreateStream", R"({"StreamName":"","ShardCount":0})"), "ValidationException",
             "3 validation errors detected: Value '0' at 'shardCount' failed to satisfy "
             "constraint: Member must have value greater than or equal to 1; Value '' at "
             "'streamName' failed to satisfy constraint: Member must satisfy regular expression "
             "pattern: [a-zA-Z0-9_.-]+; Value '' at 'streamName' failed to satisfy constraint: "
             "Member must have length greater than or equal to 1");
  CheckError(
      f.Call("CreateStream",
             R"({"StreamName":"x","ShardCount":1,"StreamModeDetails":{"StreamMode":"BIG"}})"),
      "ValidationException",
      "1 validation error detected: Value 'BIG' at 'streamModeDetails.streamMode' failed "
      "to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, "
      "ON_DEMAND]");
  CheckError(f.Call("CreateStream", R"({"StreamName":"big","ShardCount":9})"),
             "LimitExceededException",
             "This request would exceed the shard limit for the account 000000000000 in "
             "us-east-1. Current shard count for the account: 2. Limit: 10. Number of additional "
             "shards that would have resulted from this request: 9. Refer to the AWS Service "
             "Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) "
             "for current limits and how to request higher limits.");
  CheckTypeError(f.Call("CreateStream", R"({"StreamName":7,"ShardCount":1})"),
                 "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be "
                 "converted to an String");
  CheckTypeError(f.Call("CreateStream", R"({"StreamName":"x","ShardCount":"1"})"),
                 "class java.lang.String can not be converted to an Integer");
  // A fractional count is floored, as Kinesis does.
  f.Ok("CreateStream", R"({"StreamName":"frac","ShardCount":1.9})");
  CHECK(f.Find("frac")->DescribeStreamSummary().open_shard_count == 1);
  // An on-demand stream needs no ShardCount.
  f.Ok("CreateStream", R"({"StreamName":"od","StreamModeDetails":{"StreamMode":"ON_DEMAND"}})");
}

TEST_CASE("DescribeStreamSummary and DescribeLimits report the stream and the account", "[net]") {
  Fixture f;
  f.Create("a", 3);
  f.Ok("CreateStream", R"({"StreamName":"b","StreamModeDetails":{"StreamMode":"ON_DEMAND"}})");
  auto s = f.Ok("DescribeStreamSummary", R"({"StreamName":"a"})");
  CHECK(s->Keys("/StreamDescriptionSummary") ==
        std::vector<std::string>{"StreamName", "StreamARN", "StreamStatus", "StreamModeDetails",
                                 "RetentionPeriodHours", "StreamCreationTimestamp",
                                 "EnhancedMonitoring", "EncryptionType", "OpenShardCount",
                                 "ConsumerCount", "MaxRecordSizeInKiB"});
  CHECK(s->Str("/StreamDescriptionSummary/StreamName") == "a");
  CHECK(s->Str("/StreamDescriptionSummary/StreamARN") == absl::StrCat(kArnPrefix, "a"));
  CHECK(s->Str("/StreamDescriptionSummary/StreamStatus") == "ACTIVE");
  CHECK(s->Int("/StreamDescriptionSummary/RetentionPeriodHours") == 24);
  CHECK(s->Int("/StreamDescriptionSummary/StreamCreationTimestamp") == 1704067200);
  CHECK(s->Int("/StreamDescriptionSummary/OpenShardCount") == 3);
  CHECK(s->Int("/StreamDescriptionSummary/ConsumerCount") == 0);
  CHECK(s->Int("/StreamDescriptionSummary/MaxRecordSizeInKiB") == 1024);
  auto od = f.Ok("DescribeStreamSummary", R"({"StreamName":"b"})");
  CHECK(od->Str("/StreamDescriptionSummary/StreamModeDetails/StreamMode") == "ON_DEMAND");
  CHECK(od->Int("/StreamDescriptionSummary/OpenShardCount") == 4);  // on_demand.min_shards

  auto limits = f.Ok("DescribeLimits", "{}");
  CHECK(limits->text() == R"({"ShardLimit":500,"OpenShardCount":7,"OnDemandStreamCount":1,)"
                          R"("OnDemandStreamCountLimit":50})");
}

TEST_CASE("ListStreams pages by Limit NextToken and ExclusiveStartStreamName", "[net]") {
  Fixture f;
  for (const char* name : {"e", "b", "d", "a", "c"}) f.Create(name, 1);
  auto page1 = f.Ok("ListStreams", R"({"Limit":2})");
  CHECK(page1->Size("/StreamNames") == 2);
  CHECK(page1->Str("/StreamNames/0") == "a");
  CHECK(page1->Str("/StreamNames/1") == "b");
  CHECK(page1->Bool("/HasMoreStreams") == true);
  CHECK(page1->Size("/StreamSummaries") == 2);
  CHECK(page1->Str("/StreamSummaries/1/StreamName") == "b");
  CHECK(page1->Str("/StreamSummaries/1/StreamARN") == absl::StrCat(kArnPrefix, "b"));
  CHECK(page1->Str("/StreamSummaries/1/StreamStatus") == "ACTIVE");
  CHECK(page1->Str("/StreamSummaries/1/StreamModeDetails/StreamMode") == "PROVISIONED");
  CHECK(page1->Int("/StreamSummaries/1/StreamCreationTimestamp") == 1704067200);
  const std::string token = page1->Str("/NextToken");

  auto page2 = f.Ok("ListStreams", absl::StrCat(R"({"Limit":2,"NextToken":")", token, R"("})"));
  CHECK(page2->Str("/StreamNames/0") == "c");
  CHECK(page2->Str("/StreamNames/1") == "d");
  CHECK(page2->Bool("/HasMoreStreams") == true);
  auto page3 = f.Ok("ListStreams", R"({"ExclusiveStartStreamName":"d"})");
  CHECK(page3->Size("/StreamNames") == 1);
  CHECK(page3->Str("/StreamNames/0") == "e");
  CHECK(page3->Bool("/HasMoreStreams") == false);
  CHECK_FALSE(page3->Has("/NextToken"));
  auto all = f.Ok("ListStreams", "{}");
  CHECK(all->Size("/StreamNames") == 5);

  CheckError(f.Call("ListStreams", R"({"NextToken":"garbage!"})"), "InvalidArgumentException",
             "Invalid NextToken.");
  CheckError(f.Call("ListStreams", R"({"Limit":0})"), "ValidationException",
             "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: "
             "Member must have value greater than or equal to 1");
  f.clock->Advance(absl::Minutes(5) + absl::Milliseconds(1));
  const Response expired = f.Call("ListStreams", absl::StrCat(R"({"NextToken":")", token, R"("})"));
  CHECK(expired.http_status == 400);
  CHECK(expired.error_type == "ExpiredNextTokenException");
}

TEST_CASE("DescribeStream pages shards by Limit and ExclusiveStartShardId", "[net]") {
  Fixture f;
  f.Create("s", 3);
  auto p1 = f.Ok("DescribeStream", R"({"StreamName":"s","Limit":2})");
  CHECK(p1->Size("/StreamDescription/Shards") == 2);
  CHECK(p1->Bool("/StreamDescription/HasMoreShards") == true);
  CHECK(p1->Str("/StreamDescription/Shards/1/ShardId") == "shardId-000000000001");
  auto p2 = f.Ok("DescribeStream",
                 R"({"StreamName":"s","Limit":2,"ExclusiveStartShardId":"shardId-000000000001"})");
  CHECK(p2->Size("/StreamDescription/Shards") == 1);
  CHECK(p2->Str("/StreamDescription/Shards/0/ShardId") == "shardId-000000000002");
  CHECK(p2->Str("/StreamDescription/Shards/0/HashKeyRange/EndingHashKey") == kMaxHashKey);
  CHECK(p2->Bool("/StreamDescription/HasMoreShards") == false);
}

TEST_CASE("ListShards pages with MaxResults and NextToken and filters", "[net]") {
  Fixture f;
  f.Create("s", 3);
  auto p1 = f.Ok("ListShards", R"({"StreamName":"s","MaxResults":2})");
  REQUIRE(p1->Size("/Shards") == 2);
  CHECK(p1->Str("/Shards/0/ShardId") == "shardId-000000000000");
  CHECK(p1->Str("/Shards/1/ShardId") == "shardId-000000000001");
  const std::string token = p1->Str("/NextToken");
  CHECK(token.starts_with("s/"));
  auto p2 = f.Ok("ListShards", absl::StrCat(R"({"NextToken":")", token, R"("})"));
  REQUIRE(p2->Size("/Shards") == 1);
  CHECK(p2->Str("/Shards/0/ShardId") == "shardId-000000000002");
  CHECK_FALSE(p2->Has("/NextToken"));

  auto by_arn =
      f.Ok("ListShards", absl::StrCat(R"({"StreamARN":")", kArnPrefix,
                                      R"(s","ExclusiveStartShardId":"shardId-000000000000"})"));
  CHECK(by_arn->Size("/Shards") == 2);

  CheckError(
      f.Call("ListShards", absl::StrCat(R"({"StreamName":"s","NextToken":")", token, R"("})")),
      "InvalidArgumentException", "NextToken and StreamName cannot be provided together.");
  CheckError(f.Call("ListShards", absl::StrCat(R"({"StreamARN":")", kArnPrefix,
                                               R"(s","NextToken":")", token, R"("})")),
             "InvalidArgumentException", "NextToken and StreamARN cannot be provided together.");
  CheckError(f.Call("ListShards", "{}"), "InvalidArgumentException",
             "Either NextToken or StreamName should be provided.");
  CheckError(f.Call("ListShards", R"({"NextToken":"nope/x"})"), "ResourceNotFoundException",
             "Stream nope under account 000000000000 not found.");

  // After a split, AT_LATEST lists only the open shards.
  f.Ok("SplitShard", absl::StrCat(R"({"StreamName":"s","ShardToSplit":"shardId-000000000000",)",
                                  R"("NewStartingHashKey":"1000"})"));
  auto latest = f.Ok("ListShards", R"({"StreamName":"s","ShardFilter":{"Type":"AT_LATEST"}})");
  REQUIRE(latest->Size("/Shards") == 4);
  CHECK(latest->Str("/Shards/0/ShardId") == "shardId-000000000001");
  CHECK(latest->Str("/Shards/2/ShardId") == "shardId-000000000003");
  CHECK(latest->Str("/Shards/2/ParentShardId") == "shardId-000000000000");
  CHECK(latest->Str("/Shards/2/HashKeyRange/EndingHashKey") == "999");
  auto everything = f.Ok("ListShards", R"({"StreamName":"s"})");
  CHECK(everything->Size("/Shards") == 5);
  CHECK(everything->Has("/Shards/0/SequenceNumberRange/EndingSequenceNumber"));
  CheckError(f.Call("ListShards", R"({"StreamName":"s","ShardFilter":{}})"), "ValidationException",
             "1 validation error detected: Value null at 'shardFilter.type' failed to satisfy "
             "constraint: Member must not be null");
}

TEST_CASE("PutRecord and GetRecords round-trip binary data and timestamps", "[net]") {
  Fixture f;
  f.Create("s", 2);
  const std::string data("\0\x01\xff\0rill\0", 9);
  f.clock->Advance(absl::Milliseconds(123));
  auto put = f.Ok("PutRecord", absl::StrCat(R"({"StreamName":"s","PartitionKey":"a","Data":")",
                                            Encode(data), R"("})"));
  CHECK(put->Keys("") == std::vector<std::string>{"ShardId", "SequenceNumber", "EncryptionType"});
  CHECK(put->Str("/ShardId") == "shardId-000000000000");  // MD5("a") is in the lower half
  CHECK(put->Str("/EncryptionType") == "NONE");
  const std::string seq1 = put->Str("/SequenceNumber");
  f.clock->Advance(absl::Milliseconds(377));
  auto put2 = f.Ok("PutRecord", absl::StrCat(R"({"StreamName":"s","PartitionKey":"a","Data":"",)",
                                             R"("SequenceNumberForOrdering":")", seq1, R"("})"));
  const std::string seq2 = put2->Str("/SequenceNumber");
  CHECK(SequenceNumber::Parse(seq2).value() > SequenceNumber::Parse(seq1).value());
  // ExplicitHashKey routes to the upper shard.
  auto put3 =
      f.Ok("PutRecord", absl::StrCat(R"({"StreamName":"s","PartitionKey":"a","Data":"eA==",)",
                                     R"("ExplicitHashKey":")", kTwoTo127, R"("})"));
  CHECK(put3->Str("/ShardId") == "shardId-000000000001");

  auto it = f.Ok(
      "GetShardIterator",
      R"({"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"})");
  const std::string iterator = it->Str("/ShardIterator");
  CHECK(iterator.starts_with("s/"));
  auto got = f.Ok("GetRecords", absl::StrCat(R"({"ShardIterator":")", iterator, R"("})"));
  REQUIRE(got->Size("/Records") == 2);
  CHECK(got->Keys("/Records/0") == std::vector<std::string>{"SequenceNumber",
                                                            "ApproximateArrivalTimestamp", "Data",
                                                            "PartitionKey"});
  CHECK(got->Str("/Records/0/SequenceNumber") == seq1);
  CHECK(Decode(got->Str("/Records/0/Data")) == data);
  CHECK(got->Str("/Records/0/PartitionKey") == "a");
  CHECK(got->Double("/Records/0/ApproximateArrivalTimestamp") == 1704067200.123);
  CHECK(got->text().find("\"ApproximateArrivalTimestamp\":1704067200.123,") != std::string::npos);
  CHECK(got->Str("/Records/1/SequenceNumber") == seq2);
  CHECK(got->Str("/Records/1/Data").empty());
  CHECK(got->Double("/Records/1/ApproximateArrivalTimestamp") == 1704067200.5);
  CHECK(got->Int("/MillisBehindLatest") == 0);
  CHECK_FALSE(got->Has("/ChildShards"));
  // The next iterator continues after the last record: nothing new yet.
  const std::string next = got->Str("/NextShardIterator");
  auto empty = f.Ok("GetRecords", absl::StrCat(R"({"ShardIterator":")", next, R"(","Limit":5})"));
  CHECK(empty->Size("/Records") == 0);
  CHECK(empty->Has("/NextShardIterator"));

  // Limit 1 returns one record.
  auto one = f.Ok("GetRecords", absl::StrCat(R"({"ShardIterator":")", iterator, R"(","Limit":1})"));
  CHECK(one->Size("/Records") == 1);
}

TEST_CASE("GetShardIterator takes every iterator type", "[net]") {
  Fixture f;
  f.Create("s", 1);
  std::vector<std::string> seqs;
  for (int i = 0; i < 3; ++i) {
    f.clock->Advance(absl::Seconds(1));
    seqs.push_back(
        f.Ok("PutRecord", absl::StrCat(R"({"StreamName":"s","PartitionKey":"k","Data":")",
                                       Encode(absl::StrCat("r", i)), R"("})"))
            ->Str("/SequenceNumber"));
  }
  auto first_of = [&](std::string_view request) {
    auto it = f.Ok("GetShardIterator", request);
    auto got = f.Ok("GetRecords",
                    absl::StrCat(R"({"ShardIterator":")", it->Str("/ShardIterator"), R"("})"));
    return got->Size("/Records") == 0 ? std::string() : got->Str("/Records/0/SequenceNumber");
  };
  const std::string base = R"({"StreamName":"s","ShardId":"shardId-000000000000",)";
  CHECK(first_of(absl::StrCat(
            base, R"("ShardIteratorType":"AT_SEQUENCE_NUMBER","StartingSequenceNumber":")", seqs[1],
            R"("})")) == seqs[1]);
  CHECK(first_of(absl::StrCat(
            base, R"("ShardIteratorType":"AFTER_SEQUENCE_NUMBER","StartingSequenceNumber":")",
            seqs[1], R"("})")) == seqs[2]);
  CHECK(first_of(absl::StrCat(base, R"("ShardIteratorType":"LATEST"})")).empty());
  // Records arrived at 1704067201, ...202, ...203: AT_TIMESTAMP 1704067201.5 starts at the second.
  CHECK(first_of(absl::StrCat(
            base, R"("ShardIteratorType":"AT_TIMESTAMP","Timestamp":1704067201.5})")) == seqs[1]);
  // The bare shard number is accepted, as Kinesis accepts it.
  CHECK(first_of(R"({"StreamName":"s","ShardId":"0","ShardIteratorType":"TRIM_HORIZON"})") ==
        seqs[0]);

  const Response both =
      f.Call("GetShardIterator",
             absl::StrCat(base, R"("ShardIteratorType":"TRIM_HORIZON","StartingSequenceNumber":")",
                          seqs[0], R"("})"));
  CHECK(both.http_status == 400);
  CHECK(both.error_type == "InvalidArgumentException");
  // Kinesis' message (kinesalite's tests record it against the live service), the shard named
  // in full even when given as a bare number.
  CheckError(
      f.Call("GetShardIterator",
             R"({"StreamName":"s","ShardId":"shardId-000000000009","ShardIteratorType":"LATEST"})"),
      "ResourceNotFoundException",
      "Shard shardId-000000000009 in stream s under account 000000000000 does not exist");
  CheckError(f.Call("GetShardIterator",
                    R"({"StreamName":"s","ShardId":"9","ShardIteratorType":"LATEST"})"),
             "ResourceNotFoundException",
             "Shard shardId-000000000009 in stream s under account 000000000000 does not exist");
  CheckError(
      f.Call("GetShardIterator",
             R"({"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"OLDEST"})"),
      "ValidationException",
      "1 validation error detected: Value 'OLDEST' at 'shardIteratorType' failed to "
      "satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, "
      "LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]");
  CheckTypeError(
      f.Call("GetShardIterator",
             absl::StrCat(base, R"("ShardIteratorType":"AT_TIMESTAMP","Timestamp":"now"})")),
      "class java.lang.String can not be converted to milliseconds since epoch");
}

TEST_CASE("GetRecords refuses bad and expired iterators", "[net]") {
  Fixture f;
  f.Create("s", 1);
  CheckError(f.Call("GetRecords", R"({"ShardIterator":"s/not-a-token"})"),
             "InvalidArgumentException", "Invalid ShardIterator.");
  CheckError(f.Call("GetRecords", R"({"ShardIterator":"no-slash"})"), "InvalidArgumentException",
             "Invalid ShardIterator.");
  CheckError(f.Call("GetRecords", "{}"), "ValidationException",
             "1 validation error detected: Value null at 'shardIterator' failed to satisfy "
             "constraint: Member must not be null");
  auto it =
      f.Ok("GetShardIterator",
           R"({"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"LATEST"})");
  const std::string iterator = it->Str("/ShardIterator");
  f.clock->Advance(absl::Minutes(5) + absl::Seconds(1));
  const Response expired =
      f.Call("GetRecords", absl::StrCat(R"({"ShardIterator":")", iterator, R"("})"));
  CHECK(expired.http_status == 400);
  CHECK(expired.error_type == "ExpiredIteratorException");
  f.Ok("DeleteStream", R"({"StreamName":"s"})");
  CheckError(f.Call("GetRecords", absl::StrCat(R"({"ShardIterator":")", iterator, R"("})")),
             "ResourceNotFoundException", "Stream s under account 000000000000 not found.");
}

TEST_CASE("PutRecords reports each entry and a partial failure", "[net]") {
  StreamRegistryOptions options;
  options.stream_template.shard_limits.write_records_per_second = 2;
  Fixture f(options);
  f.Create("s", 1);
  auto r = f.Ok("PutRecords",
                R"({"StreamName":"s","Records":[{"PartitionKey":"a","Data":"AA=="},)"
                R"({"PartitionKey":"b","Data":"AQ=="},{"PartitionKey":"c","Data":"Ag=="}]})");
  CHECK(r->Keys("") == std::vector<std::string>{"FailedRecordCount", "Records", "EncryptionType"});
  CHECK(r->Int("/FailedRecordCount") == 1);
  REQUIRE(r->Size("/Records") == 3);
  CHECK(r->Keys("/Records/0") == std::vector<std::string>{"SequenceNumber", "ShardId"});
  CHECK(r->Str("/Records/0/ShardId") == "shardId-000000000000");
  CHECK(r->Keys("/Records/2") == std::vector<std::string>{"ErrorCode", "ErrorMessage"});
  CHECK(r->Str("/Records/2/ErrorCode") == "ProvisionedThroughputExceededException");
  CHECK_FALSE(r->Str("/Records/2/ErrorMessage").empty());
  CHECK(r->Str("/EncryptionType") == "NONE");

  // What was written reads back in request order.
  auto it = f.Ok(
      "GetShardIterator",
      R"({"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"})");
  auto got =
      f.Ok("GetRecords", absl::StrCat(R"({"ShardIterator":")", it->Str("/ShardIterator"), R"("})"));
  REQUIRE(got->Size("/Records") == 2);
  CHECK(got->Str("/Records/0/SequenceNumber") == r->Str("/Records/0/SequenceNumber"));
  CHECK(got->Str("/Records/1/SequenceNumber") == r->Str("/Records/1/SequenceNumber"));
  CHECK(Decode(got->Str("/Records/1/Data")) == std::string("\x01", 1));

  CheckError(f.Call("PutRecords", R"({"StreamName":"s","Records":[]})"), "ValidationException",
             "1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: "
             "Member must have length greater than or equal to 1");
  CheckError(f.Call("PutRecords", R"({"StreamName":"s","Records":[{"Data":"AA=="}]})"),
             "ValidationException",
             "1 validation error detected: Value null at 'records.1.member.partitionKey' failed "
             "to satisfy constraint: Member must not be null");
  CheckError(
      f.Call("PutRecords", R"({"StreamName":"s","Records":[{"PartitionKey":"a","Data":"AA==",)"
                           R"("ExplicitHashKey":"340282366920938463463374607431768211456"}]})"),
      "InvalidArgumentException",
      "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
      "Specified value was 340282366920938463463374607431768211456");
}

TEST_CASE("Bad base64 and wrong member types are SerializationExceptions", "[net]") {
  Fixture f;
  f.Create("s", 1);
  CheckTypeError(f.Call("PutRecord", R"({"StreamName":"s","PartitionKey":"a","Data":"abc"})"),
                 "'abc' can not be converted to a Blob: Base64 encoded length is expected a "
                 "multiple of 4 bytes but found: 3");
  CheckTypeError(f.Call("PutRecord", R"({"StreamName":"s","PartitionKey":"a","Data":"ab!c"})"),
                 "'ab!c' can not be converted to a Blob: Invalid Base64 character: '!'");
  CheckTypeError(f.Call("PutRecord", R"({"StreamName":"s","PartitionKey":"a","Data":"aGl="})"),
                 "'aGl=' can not be converted to a Blob: Invalid last non-pad Base64 character "
                 "dectected");
  CheckTypeError(f.Call("PutRecord", R"({"StreamName":"s","PartitionKey":"a","Data":true})"),
                 "class java.lang.Boolean can not be converted to a Blob");
  CheckTypeError(f.Call("PutRecord", R"({"StreamName":"s","PartitionKey":["a"],"Data":"AA=="})"),
                 "Start of list found where not expected");
  CheckTypeError(f.Call("PutRecord", R"({"StreamName":{},"PartitionKey":"a","Data":"AA=="})"),
                 "Start of structure or map found where not expected.");
  CheckTypeError(f.Call("PutRecords", R"({"StreamName":"s","Records":{}})"),
                 "Start of structure or map found where not expected.");
  CheckTypeError(f.Call("PutRecords", R"({"StreamName":"s","Records":"x"})"),
                 "Expected list or null");
  CheckTypeError(f.Call("DeleteStream", R"({"StreamName":"s","EnforceConsumerDeletion":"yes"})"),
                 "'YES' can not be converted to an Boolean");
  CheckTypeError(f.Call("DescribeStream", R"({"StreamName":"s","Limit":true})"),
                 "class java.lang.Boolean can not be converted to an Integer");
  CheckTypeError(f.Call("AddTagsToStream", R"({"StreamName":"s","Tags":[]})"),
                 "Start of list found where not expected");
  // A type error wins over a validation error in an earlier member.
  CheckTypeError(f.Call("PutRecord", R"({"StreamName":"","PartitionKey":"a","Data":1})"),
                 "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be "
                 "converted to a Blob");
  // Missing members of PutRecord, in Kinesis' order.
  CheckError(f.Call("PutRecord", "{}"), "ValidationException",
             "3 validation errors detected: Value null at 'partitionKey' failed to satisfy "
             "constraint: Member must not be null; Value null at 'data' failed to satisfy "
             "constraint: Member must not be null; Value null at 'streamName' failed to satisfy "
             "constraint: Member must not be null");
  CheckError(f.Call("PutRecord", absl::StrCat(R"({"StreamName":"s","Data":"","PartitionKey":")",
                                              std::string(257, 'k'), R"("})")),
             "ValidationException",
             absl::StrCat("1 validation error detected: Value '", std::string(257, 'k'),
                          "' at 'partitionKey' failed to satisfy constraint: Member must have "
                          "length less than or equal to 256"));
}

TEST_CASE("Malformed bodies and unknown operations answer as Kinesis", "[net]") {
  Fixture f;
  const std::string serialization = R"({"__type":"SerializationException"})";
  for (std::string_view body : {"{", "nope", "[]", "1", "\"x\"", "null", "{\"a\":}"}) {
    const Response r = f.Call("ListStreams", body);
    INFO(body);
    CHECK(r.http_status == 400);
    CHECK(r.error_type == "SerializationException");
    CHECK(r.body == serialization);
  }
  // Invalid UTF-8 is malformed JSON.
  CHECK(f.Call("ListStreams", "{\"a\":\"\xff\"}").body == serialization);
  CHECK(f.Call("ListStreams", "").body == serialization);

  const std::string unknown = R"({"__type":"UnknownOperationException"})";
  const Response r1 = f.service->Handle("Kinesis_20131202.FlyToTheMoon", "{}");
  CHECK(r1.http_status == 400);
  CHECK(r1.error_type == "UnknownOperationException");
  CHECK(r1.body == unknown);
  CHECK(f.service->Handle("DynamoDB_20120810.ListTables", "{}").body == unknown);
  CHECK(f.service->Handle("", "{}").body == unknown);
  CHECK(f.service->Handle("Kinesis_20131202.FlyToTheMoon", "").body == unknown);
  // A body that is not JSON is judged before the target.
  CHECK(f.service->Handle("Kinesis_20131202.FlyToTheMoon", "{").body == serialization);
  const Response subscribe = f.service->Handle("Kinesis_20131202.SubscribeToShard", "{}");
  CHECK(subscribe.error_type == "UnknownOperationException");

  CheckError(f.Call("DescribeStream", R"({"StreamName":"nope"})"), "ResourceNotFoundException",
             "Stream nope under account 000000000000 not found.");
  CheckError(f.Call("DescribeStream",
                    R"({"StreamARN":"arn:aws:kinesis:eu-west-1:123456789012:stream/x"})"),
             "ResourceNotFoundException", "Stream x under account 123456789012 not found.");
  CheckError(f.Call("DescribeStream", R"({"StreamARN":"arn:aws:s3:::bucket"})"),
             "ValidationException",
             "1 validation error detected: Value 'arn:aws:s3:::bucket' at 'streamARN' failed to "
             "satisfy constraint: Member must satisfy regular expression pattern: "
             "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+");
  f.Create("s", 1);
  const Response mismatch = f.Call(
      "DescribeStream", absl::StrCat(R"({"StreamName":"t","StreamARN":")", kArnPrefix, R"(s"})"));
  CHECK(mismatch.error_type == "InvalidArgumentException");
}

TEST_CASE("Handle never crashes on hostile input for any operation", "[net]") {
  Fixture f;
  f.Create("s", 2);
  const std::vector<std::string_view> operations = KinesisService::OperationNames();
  REQUIRE(operations.size() == 27);
  const std::vector<std::string> bodies = {
      "{}",
      R"({"StreamName":null,"StreamARN":null,"ShardId":null})",
      R"({"StreamName":"s","ShardCount":-9223372036854775808,"Limit":1e308,"MaxResults":-1})",
      R"({"StreamName":"s","Records":[null,1,"x",[],{}],"Tags":{"k":null,"":"v"},"TagKeys":[null,""]})",
      R"({"StreamName":"s","ShardIterator":"s/","ShardToSplit":"shardId-999999999999","NewStartingHashKey":"99999999999999999999999999999999999999999"})",
      R"({"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":-1e300})",
      R"({"StreamName":"s","ShardId":"x","StartingSequenceNumber":"0","RetentionPeriodHours":18446744073709551615})",
      R"({"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","ConsumerName":"c","ConsumerARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:99999999999999999999"})",
      R"({"StreamName":"s","ShardFilter":{"Type":"AFTER_SHARD_ID","Timestamp":1},"NextToken":"","StreamModeDetails":[]})",
      R"({"StreamName":"s","TargetShardCount":0,"ScalingType":"UNIFORM_SCALING","ShardToMerge":"0","AdjacentShardToMerge":"0"})",
      std::string("{\"StreamName\":\"s\",\"PartitionKey\":\"\\u0000\",\"Data\":\"\"}"),
  };
  for (std::string_view op : operations) {
    for (const std::string& body : bodies) {
      const Response r = f.Call(op, body);
      INFO(op << " " << body << " -> " << r.body);
      CHECK((r.http_status == 200 || r.http_status == 400));
      if (!r.body.empty()) Json parsed(r.body);
    }
  }
  // The stream may have been deleted by the loop; whatever is left is consistent.
  f.Ok("ListStreams", "{}");
}

// Byte-level mutations of valid requests (a fixed seed, so every run sees the same inputs): each
// must get a well-formed answer.
TEST_CASE("Handle answers every mutation of valid requests with well-formed JSON", "[net]") {
  Fixture f;
  f.Create("s", 2);
  const std::string consumer_arn =
      f.Ok("RegisterStreamConsumer",
           absl::StrCat(R"({"StreamARN":")", kArnPrefix, R"(s","ConsumerName":"c"})"))
          ->Str("/Consumer/ConsumerARN");
  const std::string iterator =
      f.Ok("GetShardIterator",
           R"({"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"LATEST"})")
          ->Str("/ShardIterator");
  const std::vector<std::pair<std::string_view, std::string>> seeds = {
      {"PutRecord", R"({"StreamName":"s","PartitionKey":"k","Data":"AAEC","ExplicitHashKey":"7"})"},
      {"PutRecords", R"({"StreamName":"s","Records":[{"PartitionKey":"a","Data":"eA=="}]})"},
      {"GetRecords", absl::StrCat(R"({"ShardIterator":")", iterator, R"(","Limit":10})")},
      {"ListShards", R"({"StreamName":"s","ShardFilter":{"Type":"AT_TIMESTAMP","Timestamp":1.5}})"},
      {"AddTagsToStream", R"({"StreamName":"s","Tags":{"k":"v"}})"},
      {"DescribeStreamConsumer", absl::StrCat(R"({"ConsumerARN":")", consumer_arn, R"("})")},
      {"SplitShard",
       R"({"StreamName":"s","ShardToSplit":"shardId-000000000001","NewStartingHashKey":"5"})"},
  };
  uint64_t state = 0x9E3779B97F4A7C15u;
  auto next = [&state] {  // splitmix64
    uint64_t z = (state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
  };
  constexpr char kAlphabet[] = "{}[]\",:0123456789.eE-+ntrufalsAZaz=/\\\x00\xff";
  int answered = 0;
  for (int round = 0; round < 300; ++round) {
    for (const auto& [operation, seed] : seeds) {
      std::string body = seed;
      const int edits = 1 + static_cast<int>(next() % 4);
      for (int e = 0; e < edits && !body.empty(); ++e) {
        const size_t at = next() % body.size();
        const char c = kAlphabet[next() % (sizeof(kAlphabet) - 1)];
        switch (next() % 3) {
          case 0:
            body[at] = c;
            break;
          case 1:
            body.insert(body.begin() + static_cast<std::ptrdiff_t>(at), c);
            break;
          default:
            body.erase(at, 1);
        }
      }
      const Response r = f.Call(operation, body);
      INFO(operation << " " << body << " -> " << r.body);
      REQUIRE((r.http_status == 200 || r.http_status == 400));
      if (!r.body.empty()) Json parsed(r.body);
      ++answered;
    }
  }
  CHECK(answered == 300 * 7);
}

TEST_CASE("SplitShard MergeShards and UpdateShardCount reshard and report lineage", "[net]") {
  Fixture f;
  f.Create("s", 1);
  f.Ok("PutRecord", R"({"StreamName":"s","PartitionKey":"a","Data":"AA=="})");
  f.Ok("SplitShard", absl::StrCat(R"({"StreamName":"s","ShardToSplit":"shardId-000000000000",)",
                                  R"("NewStartingHashKey":")", kTwoTo127, R"("})"));
  auto d = f.Ok("DescribeStream", R"({"StreamName":"s"})");
  REQUIRE(d->Size("/StreamDescription/Shards") == 3);
  CHECK(d->Has("/StreamDescription/Shards/0/SequenceNumberRange/EndingSequenceNumber"));
  CHECK(d->Str("/StreamDescription/Shards/1/ParentShardId") == "shardId-000000000000");
  CHECK(d->Str("/StreamDescription/Shards/1/HashKeyRange/EndingHashKey") == kTwoTo127Minus1);
  CHECK(d->Str("/StreamDescription/Shards/2/HashKeyRange/StartingHashKey") == kTwoTo127);

  // Reading the closed parent to its end gives its children and no next iterator.
  auto it = f.Ok(
      "GetShardIterator",
      R"({"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"})");
  auto got =
      f.Ok("GetRecords", absl::StrCat(R"({"ShardIterator":")", it->Str("/ShardIterator"), R"("})"));
  CHECK(got->Size("/Records") == 1);
  CHECK_FALSE(got->Has("/NextShardIterator"));
  REQUIRE(got->Size("/ChildShards") == 2);
  CHECK(got->Str("/ChildShards/0/ShardId") == "shardId-000000000001");
  CHECK(got->Size("/ChildShards/0/ParentShards") == 1);
  CHECK(got->Str("/ChildShards/0/ParentShards/0") == "shardId-000000000000");
  CHECK(got->Str("/ChildShards/1/HashKeyRange/StartingHashKey") == kTwoTo127);
  CHECK(got->Str("/ChildShards/1/HashKeyRange/EndingHashKey") == kMaxHashKey);

  f.Ok("MergeShards", R"({"StreamName":"s","ShardToMerge":"shardId-000000000001",)"
                      R"("AdjacentShardToMerge":"shardId-000000000002"})");
  auto merged = f.Ok("ListShards", R"({"StreamName":"s","ShardFilter":{"Type":"AT_LATEST"}})");
  REQUIRE(merged->Size("/Shards") == 1);
  CHECK(merged->Str("/Shards/0/ShardId") == "shardId-000000000003");
  CHECK(merged->Str("/Shards/0/ParentShardId") == "shardId-000000000001");
  CHECK(merged->Str("/Shards/0/AdjacentParentShardId") == "shardId-000000000002");
  CHECK(merged->Str("/Shards/0/HashKeyRange/StartingHashKey") == "0");
  CHECK(merged->Str("/Shards/0/HashKeyRange/EndingHashKey") == kMaxHashKey);

  auto scaled = f.Ok("UpdateShardCount",
                     R"({"StreamName":"s","TargetShardCount":2,"ScalingType":"UNIFORM_SCALING"})");
  CHECK(scaled->text() == absl::StrCat(R"({"StreamName":"s","CurrentShardCount":1,)",
                                       R"("TargetShardCount":2,"StreamARN":")", kArnPrefix,
                                       R"(s"})"));
  CHECK(f.Find("s")->DescribeStreamSummary().open_shard_count == 2);

  const Response closed = f.Call(
      "SplitShard",
      R"({"StreamName":"s","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"5"})");
  CHECK(closed.error_type == "InvalidArgumentException");
  const Response not_adjacent =
      f.Call("MergeShards", R"({"StreamName":"s","ShardToMerge":"shardId-000000000004",)"
                            R"("AdjacentShardToMerge":"shardId-000000000004"})");
  CHECK(not_adjacent.error_type == "InvalidArgumentException");
  CheckError(
      f.Call("UpdateShardCount", R"({"StreamName":"s","TargetShardCount":2,"ScalingType":"FAST"})"),
      "ValidationException",
      "1 validation error detected: Value 'FAST' at 'scalingType' failed to satisfy "
      "constraint: Member must satisfy enum value set: [UNIFORM_SCALING]");
}

TEST_CASE("Retention changes and UpdateStreamMode show in the summary", "[net]") {
  Fixture f;
  f.Create("s", 1);
  f.Ok("IncreaseStreamRetentionPeriod", R"({"StreamName":"s","RetentionPeriodHours":48})");
  CHECK(f.Ok("DescribeStreamSummary", R"({"StreamName":"s"})")
            ->Int("/StreamDescriptionSummary/RetentionPeriodHours") == 48);
  f.Ok("DecreaseStreamRetentionPeriod", R"({"StreamName":"s","RetentionPeriodHours":36})");
  CHECK(f.Ok("DescribeStream", R"({"StreamName":"s"})")
            ->Int("/StreamDescription/RetentionPeriodHours") == 36);
  CHECK(f.Call("DecreaseStreamRetentionPeriod", R"({"StreamName":"s","RetentionPeriodHours":12})")
            .error_type == "InvalidArgumentException");
  CHECK(f.Call("IncreaseStreamRetentionPeriod", R"({"StreamName":"s","RetentionPeriodHours":24})")
            .error_type == "InvalidArgumentException");

  CheckError(f.Call("UpdateStreamMode", R"({"StreamName":"s"})"), "ValidationException",
             "2 validation errors detected: Value null at 'streamARN' failed to satisfy "
             "constraint: Member must not be null; Value null at 'streamModeDetails' failed to "
             "satisfy constraint: Member must not be null");
  f.Ok("UpdateStreamMode", absl::StrCat(R"({"StreamARN":")", kArnPrefix,
                                        R"(s","StreamModeDetails":{"StreamMode":"ON_DEMAND"}})"));
  CHECK(f.Ok("DescribeStreamSummary", R"({"StreamName":"s"})")
            ->Str("/StreamDescriptionSummary/StreamModeDetails/StreamMode") == "ON_DEMAND");
  CHECK(f.Ok("DescribeLimits", "{}")->Int("/OnDemandStreamCount") == 1);
}

TEST_CASE("Tags are added listed in pages and removed within Kinesis' limits", "[net]") {
  Fixture f;
  f.Create("s", 1);
  f.Ok("AddTagsToStream", R"({"StreamName":"s","Tags":{"b":"2","a":"1","c":""}})");
  auto all = f.Ok("ListTagsForStream", R"({"StreamName":"s"})");
  CHECK(all->text() ==
        R"({"Tags":[{"Key":"a","Value":"1"},{"Key":"b","Value":"2"},{"Key":"c","Value":""}],)"
        R"("HasMoreTags":false})");
  auto p1 = f.Ok("ListTagsForStream", R"({"StreamName":"s","Limit":2})");
  CHECK(p1->text() ==
        R"({"Tags":[{"Key":"a","Value":"1"},{"Key":"b","Value":"2"}],"HasMoreTags":true})");
  auto p2 = f.Ok("ListTagsForStream", R"({"StreamName":"s","Limit":2,"ExclusiveStartTagKey":"b"})");
  CHECK(p2->text() == R"({"Tags":[{"Key":"c","Value":""}],"HasMoreTags":false})");
  f.Ok("AddTagsToStream", R"({"StreamName":"s","Tags":{"a":"one"}})");
  f.Ok("RemoveTagsFromStream", R"({"StreamName":"s","TagKeys":["b","zzz"]})");
  CHECK(f.Ok("ListTagsForStream", R"({"StreamName":"s"})")->text() ==
        R"({"Tags":[{"Key":"a","Value":"one"},{"Key":"c","Value":""}],"HasMoreTags":false})");

  // 48 more: 50 in all is the limit, one more is refused.
  std::string tags;
  for (int i = 0; i < 48; ++i) absl::StrAppend(&tags, i ? "," : "", "\"k", i, "\":\"v\"");
  f.Ok("AddTagsToStream", absl::StrCat(R"({"StreamName":"s","Tags":{)", tags, "}}"));
  CheckError(f.Call("AddTagsToStream", R"({"StreamName":"s","Tags":{"one-more":"x"}})"),
             "InvalidArgumentException",
             "Failed to add tags to stream s under account 000000000000 because a given stream "
             "cannot have more than 50 tags associated with it.");
  CheckError(f.Call("AddTagsToStream", R"({"StreamName":"s","Tags":{"a":"50%"}})"),
             "InvalidArgumentException",
             "Failed to add tags to stream s under account 000000000000 because some tags "
             "contained illegal characters. The allowed characters are Unicode letters, "
             "white-spaces, '_',',','/','=','+','-','@'.");
  CheckError(f.Call("AddTagsToStream", R"({"StreamName":"s","Tags":{"a":"x*y"}})"),
             "InvalidArgumentException",
             "Some tags contain invalid characters. Valid characters: Unicode letters, digits, "
             "white space, _ . / = + - % @.");
  CheckError(f.Call("AddTagsToStream", absl::StrCat(R"({"StreamName":"s","Tags":{")",
                                                    std::string(129, 'k'), R"(":"v"}})")),
             "ValidationException",
             absl::StrCat("1 validation error detected: Value '{", std::string(129, 'k'),
                          "=v}' at 'tags' failed to satisfy constraint: Map keys must satisfy "
                          "constraint: [Member must have length less than or equal to 128, "
                          "Member must have length greater than or equal to 1]"));
  CheckError(f.Call("AddTagsToStream", R"({"StreamName":"s","Tags":{}})"), "ValidationException",
             "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: "
             "Member must have length greater than or equal to 1");
  CheckError(f.Call("RemoveTagsFromStream", R"({"StreamName":"s","TagKeys":[]})"),
             "ValidationException",
             "1 validation error detected: Value '[]' at 'tagKeys' failed to satisfy constraint: "
             "Member must have length greater than or equal to 1");
  CheckError(f.Call("ListTagsForStream", R"({"StreamName":"gone"})"), "ResourceNotFoundException",
             "Stream gone under account 000000000000 not found.");
}

TEST_CASE("Consumers are registered described listed in pages and deregistered", "[net]") {
  Fixture f;
  f.Create("s", 1);
  const std::string stream_arn = absl::StrCat(kArnPrefix, "s");
  f.clock->Advance(absl::Seconds(10));
  auto c1 = f.Ok("RegisterStreamConsumer",
                 absl::StrCat(R"({"StreamARN":")", stream_arn, R"(","ConsumerName":"c1"})"));
  const std::string arn1 = absl::StrCat(stream_arn, "/consumer/c1:1704067210");
  CHECK(c1->text() == absl::StrCat(R"({"Consumer":{"ConsumerName":"c1","ConsumerARN":")", arn1,
                                   R"(","ConsumerStatus":"ACTIVE","ConsumerCreationTimestamp":)",
                                   "1704067210}}"));
  f.clock->Advance(absl::Seconds(1));
  f.Ok("RegisterStreamConsumer",
       absl::StrCat(R"({"StreamARN":")", stream_arn, R"(","ConsumerName":"c2"})"));
  CheckError(f.Call("RegisterStreamConsumer",
                    absl::StrCat(R"({"StreamARN":")", stream_arn, R"(","ConsumerName":"c1"})")),
             "ResourceInUseException",
             std::string(f.Find("s")->RegisterStreamConsumer("c1").status().message()));

  auto by_arn = f.Ok("DescribeStreamConsumer", absl::StrCat(R"({"ConsumerARN":")", arn1, R"("})"));
  CHECK(by_arn->text() ==
        absl::StrCat(R"({"ConsumerDescription":{"ConsumerName":"c1","ConsumerARN":")", arn1,
                     R"(","ConsumerStatus":"ACTIVE","ConsumerCreationTimestamp":1704067210,)",
                     R"("StreamARN":")", stream_arn, R"("}})"));
  auto by_name = f.Ok("DescribeStreamConsumer",
                      absl::StrCat(R"({"StreamARN":")", stream_arn, R"(","ConsumerName":"c1"})"));
  CHECK(by_name->text() == by_arn->text());
  CHECK(f.Call("DescribeStreamConsumer",
               absl::StrCat(R"({"ConsumerARN":")", stream_arn, R"(/consumer/c1:1"})"))
            .error_type == "ResourceNotFoundException");

  auto p1 = f.Ok("ListStreamConsumers",
                 absl::StrCat(R"({"StreamARN":")", stream_arn, R"(","MaxResults":1})"));
  REQUIRE(p1->Size("/Consumers") == 1);
  CHECK(p1->Str("/Consumers/0/ConsumerName") == "c1");
  CHECK(p1->Str("/Consumers/0/ConsumerARN") == arn1);
  auto p2 = f.Ok("ListStreamConsumers",
                 absl::StrCat(R"({"StreamARN":")", stream_arn, R"(","MaxResults":1,"NextToken":")",
                              p1->Str("/NextToken"), R"("})"));
  REQUIRE(p2->Size("/Consumers") == 1);
  CHECK(p2->Str("/Consumers/0/ConsumerName") == "c2");
  CHECK_FALSE(p2->Has("/NextToken"));
  CHECK(f.Ok("DescribeStreamSummary", R"({"StreamName":"s"})")
            ->Int("/StreamDescriptionSummary/ConsumerCount") == 2);

  f.Ok("DeregisterStreamConsumer", absl::StrCat(R"({"ConsumerARN":")", arn1, R"("})"));
  CHECK(f.Call("DescribeStreamConsumer", absl::StrCat(R"({"ConsumerARN":")", arn1, R"("})"))
            .error_type == "ResourceNotFoundException");

  // A stream with consumers is deleted only with EnforceConsumerDeletion.
  CheckError(f.Call("DeleteStream", R"({"StreamName":"s"})"), "ResourceInUseException",
             "Stream s under account 000000000000 has registered consumers. Deregister them "
             "first, or set EnforceConsumerDeletion.");
  f.Ok("DeleteStream", R"({"StreamName":"s","EnforceConsumerDeletion":true})");
  CHECK(f.registry->Find("s") == nullptr);
  CheckError(f.Call("DeleteStream", R"({"StreamName":"s"})"), "ResourceNotFoundException",
             "Stream s under account 000000000000 not found.");
}

TEST_CASE("StartSubscription subscribes and events serialize as SubscribeToShardEvent", "[net]") {
  Fixture f;
  f.Create("s", 1);
  const std::string stream_arn = absl::StrCat(kArnPrefix, "s");
  auto consumer = f.Ok("RegisterStreamConsumer",
                       absl::StrCat(R"({"StreamARN":")", stream_arn, R"(","ConsumerName":"c"})"));
  const std::string consumer_arn = consumer->Str("/Consumer/ConsumerARN");
  f.clock->Advance(absl::Milliseconds(250));
  auto put = f.Ok("PutRecord", R"({"StreamName":"s","PartitionKey":"pk","Data":"AAE="})");

  absl::StatusOr<SubscribeStart> start = f.service->StartSubscription(absl::StrCat(
      R"({"ConsumerARN":")", consumer_arn,
      R"(","ShardId":"shardId-000000000000","StartingPosition":{"Type":"TRIM_HORIZON"}})"));
  INFO(start.status().ToString());
  REQUIRE(start.ok());
  REQUIRE(start->subscription != nullptr);
  CHECK(start->stream == f.Find("s"));
  absl::StatusOr<std::optional<SubscribeToShardEvent>> event = start->subscription->TryNext();
  REQUIRE(event.ok());
  REQUIRE(event->has_value());
  std::string payload;
  AppendSubscribeToShardEventJson(**event, &payload);
  const std::string seq = put->Str("/SequenceNumber");
  CHECK(payload == absl::StrCat(R"({"Records":[{"SequenceNumber":")", seq,
                                R"(","ApproximateArrivalTimestamp":1704067200.25,"Data":"AAE=",)",
                                R"("PartitionKey":"pk"}],"ContinuationSequenceNumber":")", seq,
                                R"(","MillisBehindLatest":0})"));

  // At a shard's end: no continuation, the children instead.
  SubscribeToShardEvent end;
  end.child_shards.push_back(
      ChildShard{ShardId(1), {ShardId(0)}, HashKeyRange{HashKey(), HashKey::Max()}});
  std::string end_payload;
  AppendSubscribeToShardEventJson(end, &end_payload);
  CHECK(end_payload == absl::StrCat(R"({"Records":[],"MillisBehindLatest":0,"ChildShards":[)",
                                    R"({"ShardId":"shardId-000000000001","ParentShards":)",
                                    R"(["shardId-000000000000"],"HashKeyRange":)",
                                    R"({"StartingHashKey":"0","EndingHashKey":")", kMaxHashKey,
                                    R"("}}]})"));

  // Errors come back as statuses that ErrorResponse turns into Kinesis' answers.
  absl::StatusOr<SubscribeStart> bad = f.service->StartSubscription("{");
  REQUIRE_FALSE(bad.ok());
  CHECK(KinesisService::ErrorResponse(bad.status()).body ==
        R"({"__type":"SerializationException"})");
  bad = f.service->StartSubscription(R"({"ShardId":"shardId-000000000000"})");
  REQUIRE_FALSE(bad.ok());
  CheckError(KinesisService::ErrorResponse(bad.status()), "ValidationException",
             "2 validation errors detected: Value null at 'consumerARN' failed to satisfy "
             "constraint: Member must not be null; Value null at 'startingPosition' failed to "
             "satisfy constraint: Member must not be null");
  bad = f.service->StartSubscription(absl::StrCat(
      R"({"ConsumerARN":")", stream_arn,
      R"(/consumer/other:1","ShardId":"shardId-000000000000","StartingPosition":{"Type":"LATEST"}})"));
  REQUIRE_FALSE(bad.ok());
  CHECK(KinesisService::ErrorResponse(bad.status()).error_type == "ResourceNotFoundException");
  bad = f.service->StartSubscription(
      absl::StrCat(R"({"ConsumerARN":")", consumer_arn,
                   R"(","ShardId":"shardId-000000000000","StartingPosition":{"Type":"LATEST"}})"));
  REQUIRE_FALSE(bad.ok());  // within 5 s of the first subscription
  CHECK(KinesisService::ErrorResponse(bad.status()).error_type == "ResourceInUseException");
}

TEST_CASE("ErrorResponse maps rill errors to Kinesis names and status codes", "[net]") {
  CheckError(KinesisService::ErrorResponse(InternalFailureError("disk on fire")), "InternalFailure",
             "disk on fire", 500);
  CheckError(KinesisService::ErrorResponse(absl::UnknownError("what")), "InternalFailure", "what",
             500);
  CheckError(KinesisService::ErrorResponse(ExpiredIteratorError("old")), "ExpiredIteratorException",
             "old");
  CheckError(KinesisService::ErrorResponse(LimitExceededError("many")), "LimitExceededException",
             "many");
  CheckError(KinesisService::ErrorResponse(ProvisionedThroughputExceededError("slow down")),
             "ProvisionedThroughputExceededException", "slow down");
}

TEST_CASE("Handle serves many threads at once", "[net]") {
  Fixture f;
  f.Create("s", 4);
  constexpr int kThreads = 4;
  constexpr int kPuts = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPuts; ++i) {
        const Response r =
            f.Call("PutRecord", absl::StrCat(R"({"StreamName":"s","PartitionKey":"k)", t, "-", i,
                                             R"(","Data":"AA=="})"));
        if (r.http_status != 200) failures.fetch_add(1);
        if (f.Call("DescribeStreamSummary", R"({"StreamName":"s"})").http_status != 200) {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(failures.load() == 0);
  int records = 0;
  auto listed = f.Ok("ListShards", R"({"StreamName":"s"})");
  for (size_t i = 0; i < listed->Size("/Shards"); ++i) {
    auto it =
        f.Ok("GetShardIterator",
             absl::StrCat(R"({"StreamName":"s","ShardIteratorType":"TRIM_HORIZON","ShardId":")",
                          listed->Str(absl::StrCat("/Shards/", i, "/ShardId")), R"("})"));
    auto got = f.Ok("GetRecords",
                    absl::StrCat(R"({"ShardIterator":")", it->Str("/ShardIterator"), R"("})"));
    records += static_cast<int>(got->Size("/Records"));
  }
  CHECK(records == kThreads * kPuts);
}

TEST_CASE("StreamRegistry adopts streams and keeps deleted ones alive for requests in flight",
          "[net]") {
  auto clock = std::make_shared<SimulatedClock>();
  StreamRegistryOptions options;
  options.stream_template.clock = clock;
  auto registry = StreamRegistry::Create(options).value();
  std::unique_ptr<Stream> owned = testing::MakeStream(clock, 1, "owned");
  REQUIRE(registry->Adopt(std::move(owned)).ok());
  std::unique_ptr<Stream> borrowed = testing::MakeStream(clock, 1, "borrowed");
  REQUIRE(registry->AdoptBorrowed(borrowed.get()).ok());
  CHECK(GetErrorCode(registry->Adopt(testing::MakeStream(clock, 1, "owned"))) ==
        ErrorCode::kResourceInUse);
  CHECK(registry->Find("borrowed").get() == borrowed.get());
  bool has_more = true;
  CHECK(registry->ListNames("", 10, &has_more) == std::vector<std::string>{"borrowed", "owned"});
  CHECK_FALSE(has_more);

  std::shared_ptr<Stream> in_flight = registry->Find("owned");
  REQUIRE(registry->DeleteStream("owned").ok());
  CHECK(registry->Find("owned") == nullptr);
  CHECK(in_flight->PutRecord("k", "still here").ok());
  REQUIRE(registry->DeleteStream("borrowed").ok());
  CHECK(borrowed->PutRecord("k", "mine").ok());
  CHECK(GetErrorCode(registry->DeleteStream("borrowed")) == ErrorCode::kResourceNotFound);

  CHECK(registry->StreamNameFromArn("arn:aws:kinesis:us-east-1:000000000000:stream/x").value() ==
        "x");
  CHECK(GetErrorCode(registry->StreamNameFromArn("arn:aws:kinesis:us-east-1:000000000000:table/x")
                         .status()) == ErrorCode::kInvalidArgument);
  StreamRegistryOptions bad_account;
  bad_account.account_id = "12";
  CHECK(!StreamRegistry::Create(bad_account).ok());
}

TEST_CASE("A durable registry keeps streams in directories and reopens them", "[net]") {
  testing::TempDir dir;
  auto clock = std::make_shared<SimulatedClock>();
  StreamRegistryOptions options;
  options.stream_template.clock = clock;
  options.root_directory = dir.path();
  options.storage_template.background_flush = false;
  std::string seq;
  {
    auto registry = StreamRegistry::Create(options).value();
    KinesisService service(std::shared_ptr<StreamRegistry>(std::move(registry)));
    REQUIRE(service.Handle("Kinesis_20131202.CreateStream", R"({"StreamName":"d","ShardCount":1})")
                .http_status == 200);
    REQUIRE(
        service.Handle("Kinesis_20131202.CreateStream", R"({"StreamName":"gone","ShardCount":1})")
            .http_status == 200);
    const Response put = service.Handle("Kinesis_20131202.PutRecord",
                                        R"({"StreamName":"d","PartitionKey":"k","Data":"AQID"})");
    REQUIRE(put.http_status == 200);
    seq = Json(put.body).Str("/SequenceNumber");
    REQUIRE(service
                .Handle("Kinesis_20131202.AddTagsToStream",
                        R"({"StreamName":"d","Tags":{"team":"data","env":"test"}})")
                .http_status == 200);
    REQUIRE(service
                .Handle("Kinesis_20131202.RemoveTagsFromStream",
                        R"({"StreamName":"d","TagKeys":["env"]})")
                .http_status == 200);
    REQUIRE(service.registry()->Find("d")->Flush().ok());
    CHECK(std::filesystem::exists(dir.File("gone")));
    REQUIRE(
        service.Handle("Kinesis_20131202.DeleteStream", R"({"StreamName":"gone"})").http_status ==
        200);
    CHECK_FALSE(std::filesystem::exists(dir.File("gone")));
  }
  auto reopened = StreamRegistry::Create(options).value();
  // An adopted in-memory stream is only removed from the registry: its name is free again at once,
  // also for a durable stream of the registry's own.
  REQUIRE(reopened->Adopt(testing::MakeStream(clock, 1, "mem")).ok());
  REQUIRE(reopened->DeleteStream("mem").ok());
  CreateStreamRequest mem;
  mem.name = "mem";
  REQUIRE(reopened->CreateStream(mem).ok());
  CHECK(std::filesystem::exists(dir.File("mem")));
  REQUIRE(reopened->DeleteStream("mem").ok());
  CHECK_FALSE(std::filesystem::exists(dir.File("mem")));
  bool has_more = false;
  CHECK(reopened->ListNames("", 10, &has_more) == std::vector<std::string>{"d"});
  // Its tags came back with it.
  CHECK(reopened->ListTags("d").value() ==
        std::vector<std::pair<std::string, std::string>>{{"team", "data"}});
  std::shared_ptr<Stream> d = reopened->Find("d");
  REQUIRE(d != nullptr);
  GetRecordsResult got =
      testing::MustRead(*d, testing::MustIterator(*d, ShardId(0), StartingPosition::TrimHorizon()));
  REQUIRE(got.records.size() == 1);
  CHECK(got.records[0].sequence_number.ToString() == seq);
  CHECK(got.records[0].data == "\x01\x02\x03");
}

}  // namespace
}  // namespace rill::net

namespace rill::net {
namespace {

TEST_CASE("StartStreamEncryption and StopStreamEncryption over the wire", "[net][encryption]") {
  testing::TempDir keys("wire_keys");
  const std::string keyring = keys.path() + "/keyring";
  REQUIRE(FileKeyProvider::CreateKeyring(keyring).ok());
  REQUIRE(FileKeyProvider::CreateKey(keyring, "alias/wire").ok());
  StreamRegistryOptions options;
  auto provider = FileKeyProvider::Open(keyring);
  REQUIRE(provider.ok());
  options.stream_template.key_provider = std::move(*provider);
  Fixture f(std::move(options));
  f.Create("secure", 1);
  CHECK(f.Ok("DescribeStreamSummary", R"({"StreamName":"secure"})")
            ->Str("/StreamDescriptionSummary/EncryptionType") == "NONE");
  CHECK_FALSE(f.Ok("DescribeStreamSummary", R"({"StreamName":"secure"})")
                  ->Has("/StreamDescriptionSummary/KeyId"));

  f.Ok("StartStreamEncryption",
       R"({"StreamName":"secure","EncryptionType":"KMS","KeyId":"alias/wire"})");
  auto summary = f.Ok("DescribeStreamSummary", R"({"StreamName":"secure"})");
  CHECK(summary->Str("/StreamDescriptionSummary/EncryptionType") == "KMS");
  CHECK(summary->Str("/StreamDescriptionSummary/KeyId") == "alias/wire");
  auto described = f.Ok("DescribeStream", R"({"StreamName":"secure"})");
  CHECK(described->Str("/StreamDescription/EncryptionType") == "KMS");
  CHECK(described->Str("/StreamDescription/KeyId") == "alias/wire");
  auto put = f.Ok("PutRecord", R"({"StreamName":"secure","PartitionKey":"k","Data":"aGk="})");
  CHECK(put->Str("/EncryptionType") == "KMS");

  CheckError(
      f.Call("StartStreamEncryption",
             R"({"StreamName":"secure","EncryptionType":"KMS","KeyId":"alias/none"})"),
      "KMSNotFoundException",
      std::string(
          f.Find("secure")->StartStreamEncryption(EncryptionType::kKms, "alias/none").message()));
  const Response bad_type = f.Call("StartStreamEncryption",
                                   R"({"StreamName":"secure","EncryptionType":"AES","KeyId":"k"})");
  CHECK(bad_type.http_status == 400);
  CHECK(bad_type.error_type == "ValidationException");

  f.Ok("StopStreamEncryption",
       R"({"StreamName":"secure","EncryptionType":"KMS","KeyId":"alias/wire"})");
  CHECK(f.Ok("DescribeStreamSummary", R"({"StreamName":"secure"})")
            ->Str("/StreamDescriptionSummary/EncryptionType") == "NONE");
}

}  // namespace
}  // namespace rill::net
