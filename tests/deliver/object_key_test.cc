// Firehose's object keys: prefix expressions, their evaluation and validation, the suffix.
#include "deliver/object_key.h"

#include <catch2/catch.hpp>

#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/civil_time.h"
#include "deliver/object_store.h"
#include "rill/base/error.h"

namespace rill::deliver_internal {
namespace {

using Keys = std::vector<std::pair<std::string, std::string>>;

absl::Time Utc(int y, int mo, int d, int h, int mi, int s) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

absl::TimeZone Zone(const std::string& name) {
  absl::StatusOr<absl::TimeZone> zone = LoadCustomTimeZone(name);
  REQUIRE(zone.ok());
  return *zone;
}

std::string Format(std::string_view pattern, absl::Time t, absl::TimeZone zone) {
  absl::StatusOr<std::string> out = FormatTimestamp(pattern, t, zone);
  REQUIRE(out.ok());
  return *out;
}

// The evaluated Prefix (a field by Firehose's rules) at `t` in UTC.
std::string EvalPrefix(std::string_view prefix, absl::Time t, const Keys& keys = {}) {
  absl::StatusOr<KeyPrefix> parsed = KeyPrefix::Parse(prefix, PrefixField::kPrefix);
  REQUIRE(parsed.ok());
  EvaluatedPrefix e = parsed->Evaluate(t, absl::UTCTimeZone(), keys, "");
  REQUIRE(e.ok());
  return e.prefix;
}

// The message of ValidatePrefixes' kInvalidArgument.
std::string ValidationError(std::string_view prefix, std::string_view error_output_prefix,
                            std::string_view zone = "UTC") {
  absl::StatusOr<PrefixNeeds> needs = ValidatePrefixes(prefix, error_output_prefix, zone);
  REQUIRE_FALSE(needs.ok());
  CHECK(GetErrorCode(needs.status()) == ErrorCode::kInvalidArgument);
  return std::string(needs.status().message());
}

bool Contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

TEST_CASE("An empty prefix is yyyy/MM/dd/HH/ of the oldest arrival in UTC") {
  CHECK(EvalPrefix("", Utc(2024, 1, 2, 3, 4, 5)) == "2024/01/02/03/");
  absl::StatusOr<KeyPrefix> parsed = KeyPrefix::Parse("", PrefixField::kPrefix);
  REQUIRE(parsed.ok());
  CHECK(parsed->text() == "!{timestamp:yyyy/MM/dd/HH/}");
  CHECK_FALSE(parsed->needs().dynamic_partitioning());
}

TEST_CASE("CustomTimeZone America/New_York moves the prefix and the suffix") {
  const absl::TimeZone ny = Zone("America/New_York");
  absl::StatusOr<KeyPrefix> parsed = KeyPrefix::Parse("", PrefixField::kPrefix);
  REQUIRE(parsed.ok());
  // 03:04:05 UTC is 22:04:05 the day before in New York (EST, UTC-5).
  const absl::Time t = Utc(2024, 1, 2, 3, 4, 5);
  CHECK(parsed->Evaluate(t, ny, {}, "").prefix == "2024/01/01/22/");
  const std::string suffix = ObjectKeySuffix("orders", t, ny, "");
  CHECK(suffix.substr(0, 29) == "orders-1-2024-01-01-22-04-05-");
  // Summer time: UTC-4.
  CHECK(parsed->Evaluate(Utc(2024, 7, 1, 3, 0, 0), ny, {}, "").prefix == "2024/06/30/23/");
  CHECK(parsed->Evaluate(t, Zone("Asia/Tokyo"), {}, "").prefix == "2024/01/02/12/");
  CHECK(parsed->Evaluate(t, Zone(""), {}, "").prefix == "2024/01/02/03/");
}

TEST_CASE("A prefix without a timestamp expression gets the default time prefix appended") {
  const absl::Time t = Utc(2018, 8, 27, 10, 30, 0);
  CHECK(EvalPrefix("myFirehosePrefix", t) == "myFirehosePrefix/2018/08/27/10/");
  CHECK(EvalPrefix("logs/", t) == "logs/2018/08/27/10/");
  CHECK(EvalPrefix("logs/!{firehose:random-string}", t).size() == 5 + 11 + 15);
  // Only partition keys: still no timestamp, so the time prefix follows, after a '/'.
  CHECK(EvalPrefix("!{partitionKeyFromQuery:team}", t, {{"team", "red"}}) == "red/2018/08/27/10/");
  absl::StatusOr<KeyPrefix> parsed =
      KeyPrefix::Parse("team=!{partitionKeyFromLambda:team}", PrefixField::kPrefix);
  REQUIRE(parsed.ok());
  CHECK(parsed->text() == "team=!{partitionKeyFromLambda:team}/!{timestamp:yyyy/MM/dd/HH/}");
  // With a timestamp expression nothing is appended.
  CHECK(EvalPrefix("y=!{timestamp:yyyy}", t) == "y=2018");
}

TEST_CASE("Firehose's documented prefix examples evaluate as documented") {
  const absl::Time t = Utc(2018, 7, 6, 23, 30, 0);
  CHECK(EvalPrefix("myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/"
                   "hour=!{timestamp:HH}/",
                   t) == "myPrefix/year=2018/month=07/day=06/hour=23/");
  absl::StatusOr<KeyPrefix> error = KeyPrefix::Parse(
      "myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/"
      "!{firehose:error-output-type}",
      PrefixField::kErrorOutputPrefix);
  REQUIRE(error.ok());
  CHECK(error->Evaluate(t, absl::UTCTimeZone(), {}, "processing-failed").prefix ==
        "myErrorPrefix/year=2018/month=07/day=06/hour=23/processing-failed");
  // The error output prefix gets no time prefix appended.
  absl::StatusOr<KeyPrefix> plain = KeyPrefix::Parse(
      "myFirehoseFailures/!{firehose:error-output-type}/", PrefixField::kErrorOutputPrefix);
  REQUIRE(plain.ok());
  CHECK(plain->Evaluate(t, absl::UTCTimeZone(), {}, "processing-failed").prefix ==
        "myFirehoseFailures/processing-failed/");
}

TEST_CASE("An empty ErrorOutputPrefix is the literal prefix then the type then the time") {
  const absl::Time t = Utc(2018, 8, 27, 10, 30, 0);
  auto eval = [t](const std::string& text) {
    absl::StatusOr<KeyPrefix> parsed = KeyPrefix::Parse(text, PrefixField::kErrorOutputPrefix);
    REQUIRE(parsed.ok());
    return parsed->Evaluate(t, absl::UTCTimeZone(), {}, "processing-failed").prefix;
  };
  CHECK(DefaultErrorOutputPrefix("myFirehosePrefix") ==
        "myFirehosePrefix/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH/}");
  CHECK(eval(DefaultErrorOutputPrefix("myFirehosePrefix")) ==
        "myFirehosePrefix/processing-failed/2018/08/27/10/");
  CHECK(eval(DefaultErrorOutputPrefix("logs/")) == "logs/processing-failed/2018/08/27/10/");
  CHECK(eval(DefaultErrorOutputPrefix("")) == "processing-failed/2018/08/27/10/");
  ObjectStoreDestination options;
  options.prefix = "myFirehosePrefix";
  CHECK(EffectiveErrorOutputPrefix(options) == DefaultErrorOutputPrefix("myFirehosePrefix"));
  options.error_output_prefix = "e/!{firehose:error-output-type}/";
  CHECK(EffectiveErrorOutputPrefix(options) == "e/!{firehose:error-output-type}/");
}

TEST_CASE("Timestamp patterns format numbers as Java's DateTimeFormatter") {
  // Friday 2018-07-06, day 187 of the year.
  const absl::Time t =
      absl::FromCivil(absl::CivilSecond(2018, 7, 6, 23, 4, 5), absl::UTCTimeZone()) +
      absl::Nanoseconds(123456789);
  const absl::TimeZone utc = absl::UTCTimeZone();
  CHECK(Format("yyyy", t, utc) == "2018");
  CHECK(Format("yy", t, utc) == "18");
  CHECK(Format("y", t, utc) == "2018");
  CHECK(Format("yyy", t, utc) == "2018");
  CHECK(Format("yyyyy", t, utc) == "02018");
  CHECK(Format("uuuu", t, utc) == "2018");
  CHECK(Format("M", t, utc) == "7");
  CHECK(Format("MM", t, utc) == "07");
  CHECK(Format("d/dd", t, utc) == "6/06");
  CHECK(Format("D", t, utc) == "187");
  CHECK(Format("H:m:s", t, utc) == "23:4:5");
  CHECK(Format("HH:mm:ss", t, utc) == "23:04:05");
  CHECK(Format("h hh a", t, utc) == "11 11 PM");
  CHECK(Format("S", t, utc) == "1");
  CHECK(Format("SSS", t, utc) == "123");
  CHECK(Format("SSSSSSSSS", t, utc) == "123456789");
  CHECK(Format("yyyy-MM-dd_HH.mm,ss", t, utc) == "2018-07-06_23.04,05");
  const absl::Time early = Utc(2024, 1, 2, 0, 7, 9);
  CHECK(Format("D DD DDD", early, utc) == "2 02 002");
  CHECK(Format("h:mm a", early, utc) == "12:07 AM");
  CHECK(Format("hh", Utc(2024, 1, 2, 3, 0, 0), utc) == "03");
  CHECK(Format("h a", Utc(2024, 1, 2, 12, 0, 0), utc) == "12 PM");
  CHECK(Format("SSS", early, utc) == "000");
  CHECK(Format("yy", Utc(2005, 1, 1, 0, 0, 0), utc) == "05");
  // Past four digits, a four-letter year gets Java's '+'.
  CHECK(Format("yyyy", Utc(12345, 1, 1, 0, 0, 0), utc) == "+12345");
  CHECK(Format("yyyy", Utc(987, 1, 1, 0, 0, 0), utc) == "0987");
}

TEST_CASE("Timestamp patterns print English month and day names") {
  const absl::Time t = Utc(2018, 7, 6, 23, 4, 5);  // a Friday
  const absl::TimeZone utc = absl::UTCTimeZone();
  CHECK(Format("MMM", t, utc) == "Jul");
  CHECK(Format("MMMM", t, utc) == "July");
  CHECK(Format("MMMMM", t, utc) == "J");
  CHECK(Format("E EE EEE", t, utc) == "Fri Fri Fri");
  CHECK(Format("EEEE", t, utc) == "Friday");
  CHECK(Format("EEEEE", t, utc) == "F");
  CHECK(Format("EEEE, MMMM d", Utc(2024, 9, 25, 0, 0, 0), utc) == "Wednesday, September 25");
  CHECK(Format("EEE MMM", Utc(2024, 12, 29, 0, 0, 0), utc) == "Sun Dec");
}

TEST_CASE("Timestamp patterns keep quoted text and non-letters literal") {
  const absl::Time t = Utc(2018, 7, 6, 23, 4, 5);
  const absl::TimeZone utc = absl::UTCTimeZone();
  CHECK(Format("'year='yyyy", t, utc) == "year=2018");
  CHECK(Format("''", t, utc) == "'");
  CHECK(Format("'it''s' yyyy", t, utc) == "it's 2018");
  CHECK(Format("yyyy'T'HH", t, utc) == "2018T23");
  CHECK(Format("'MMM dd'", t, utc) == "MMM dd");
  CHECK(Format("[yyyy]/MM", t, utc) == "2018/07");
  CHECK(Format("/-_.=+ ", t, utc) == "/-_.=+ ");
}

TEST_CASE("Timestamp patterns refuse unknown letters and malformed text") {
  auto error = [](std::string_view pattern) {
    absl::StatusOr<std::string> out =
        FormatTimestamp(pattern, Utc(2018, 7, 6, 23, 4, 5), absl::UTCTimeZone());
    REQUIRE_FALSE(out.ok());
    CHECK(GetErrorCode(out.status()) == ErrorCode::kInvalidArgument);
    return std::string(out.status().message());
  };
  CHECK(Contains(error("yyyyQ"), "letter 'Q'"));
  CHECK(Contains(error("HH:mm z"), "letter 'z'"));
  CHECK(Contains(error("dddd"), "too many pattern letters 'd'"));
  CHECK(Contains(error("MMMMMM"), "too many pattern letters 'M'"));
  CHECK(Contains(error("SSSSSSSSSS"), "too many pattern letters 'S'"));
  CHECK(Contains(error("aa"), "too many pattern letters 'a'"));
  CHECK(Contains(error("'abc"), "quoted literal"));
  CHECK(Contains(error("yyyy]"), "']'"));
  CHECK(Contains(error("#"), "reserved"));
  CHECK(Contains(error(""), "empty"));
}

TEST_CASE("Every timestamp of a prefix shows the same instant") {
  absl::StatusOr<KeyPrefix> parsed = KeyPrefix::Parse(
      "!{timestamp:HH:mm:ss.SSSSSSSSS}/!{timestamp:HH:mm:ss.SSSSSSSSS}/", PrefixField::kPrefix);
  REQUIRE(parsed.ok());
  const absl::Time t = Utc(2024, 1, 2, 3, 4, 5) + absl::Nanoseconds(999999999);
  CHECK(parsed->Evaluate(t, absl::UTCTimeZone(), {}, "").prefix ==
        "03:04:05.999999999/03:04:05.999999999/");
}

TEST_CASE("random-string is 11 alphanumeric characters and new at every use") {
  absl::StatusOr<KeyPrefix> parsed =
      KeyPrefix::Parse("!{firehose:random-string}/!{firehose:random-string}/!{timestamp:yyyy}",
                       PrefixField::kPrefix);
  REQUIRE(parsed.ok());
  const std::regex form("^([a-zA-Z0-9]{11})/([a-zA-Z0-9]{11})/2024$");
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    const std::string prefix =
        parsed->Evaluate(Utc(2024, 1, 2, 3, 4, 5), absl::UTCTimeZone(), {}, "").prefix;
    std::smatch m;
    REQUIRE(std::regex_match(prefix, m, form));
    CHECK(m[1].str() != m[2].str());
    seen.insert(m[1].str());
    seen.insert(m[2].str());
  }
  CHECK(seen.size() == 100);
  // Over many draws every character class shows up.
  std::string all;
  for (int i = 0; i < 200; ++i) all += RandomString();
  CHECK(all.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string::npos);
  CHECK(all.find_first_of("abcdefghijklmnopqrstuvwxyz") != std::string::npos);
  CHECK(all.find_first_of("0123456789") != std::string::npos);
}

TEST_CASE("Partition key expressions take their values by name") {
  absl::StatusOr<KeyPrefix> parsed = KeyPrefix::Parse(
      "a/!{partitionKeyFromQuery:x}/!{partitionKeyFromLambda:y}/!{partitionKeyFromQuery:x}/"
      "!{timestamp:yyyy}/",
      PrefixField::kPrefix);
  REQUIRE(parsed.ok());
  CHECK(parsed->needs().query_keys == std::vector<std::string>{"x"});
  CHECK(parsed->needs().lambda_keys == std::vector<std::string>{"y"});
  CHECK(parsed->needs().dynamic_partitioning());
  const absl::Time t = Utc(2024, 1, 2, 3, 4, 5);
  EvaluatedPrefix e = parsed->Evaluate(t, absl::UTCTimeZone(), Keys{{"y", "2"}, {"x", "1"}}, "");
  REQUIRE(e.ok());
  CHECK(e.prefix == "a/1/2/1/2024/");

  EvaluatedPrefix missing = parsed->Evaluate(t, absl::UTCTimeZone(), Keys{{"x", "1"}}, "");
  CHECK(missing.error_code == "DynamicPartitioning.MissingPartitionKey");
  CHECK(Contains(missing.error_message, "'y'"));
  CHECK(missing.prefix.empty());

  EvaluatedPrefix long_value =
      parsed->Evaluate(t, absl::UTCTimeZone(), Keys{{"x", std::string(300, 'v')}, {"y", "2"}}, "");
  CHECK(long_value.error_code == "S3.InvalidPrefix");
  CHECK(Contains(long_value.error_message, "512"));
  // 512 characters are allowed, counted as characters (é is one): "a//" + 502 + "//2024/".
  std::string at_limit;
  for (int i = 0; i < 502; ++i) at_limit += "\xC3\xA9";
  EvaluatedPrefix fits =
      parsed->Evaluate(t, absl::UTCTimeZone(), Keys{{"x", ""}, {"y", at_limit}}, "");
  CHECK(fits.ok());
  CHECK(CharacterCount(fits.prefix) == 512);
}

TEST_CASE("The suffix names the stream version 1 and the time and ends with a UUID") {
  const absl::Time t = Utc(2024, 1, 2, 3, 4, 5);
  const std::regex form(
      "^orders-1-2024-01-02-03-04-05-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
      "[0-9a-f]{12}\\.gz$");
  const std::string a = ObjectKeySuffix("orders", t, absl::UTCTimeZone(), ".gz");
  const std::string b = ObjectKeySuffix("orders", t, absl::UTCTimeZone(), ".gz");
  CHECK(std::regex_match(a, form));
  CHECK(std::regex_match(b, form));
  CHECK(a != b);
  CHECK(std::regex_match(ObjectKeySuffix("s", t, absl::UTCTimeZone(), ""),
                         std::regex("^s-1-2024-01-02-03-04-05-[-0-9a-f]{36}$")));
}

TEST_CASE("FileExtension and CustomTimeZone are checked") {
  CHECK(CheckFileExtension("").ok());
  CHECK(CheckFileExtension(".json").ok());
  CHECK(CheckFileExtension(".json.gz").ok());
  CHECK(GetErrorCode(CheckFileExtension("json")) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(CheckFileExtension(".")) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(CheckFileExtension(".JSON")) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(CheckFileExtension(".a/b")) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(CheckFileExtension("." + std::string(128, 'a'))) ==
        ErrorCode::kInvalidArgument);
  CHECK(LoadCustomTimeZone("Asia/Tokyo").ok());
  CHECK(GetErrorCode(LoadCustomTimeZone("Mars/Olympus_Mons").status()) ==
        ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(LoadCustomTimeZone("../../etc/passwd").status()) ==
        ErrorCode::kInvalidArgument);
}

TEST_CASE("Object keys must be safe paths under the directory") {
  CHECK(CheckObjectKey("a/b/c").ok());
  CHECK(CheckObjectKey("a").ok());
  CHECK(CheckObjectKey("a/.hidden/..x/x..").ok());
  auto refused = [](std::string_view key) {
    absl::Status s = CheckObjectKey(key);
    REQUIRE_FALSE(s.ok());
    CHECK(GetErrorCode(s) == ErrorCode::kInvalidArgument);
    return std::string(s.message());
  };
  CHECK(Contains(refused(""), "empty"));
  CHECK(Contains(refused("/etc/x"), "starts with '/'"));
  CHECK(Contains(refused(std::string("a\0b", 3)), "NUL"));
  CHECK(Contains(refused("a/../b"), "'..'"));
  CHECK(Contains(refused("../b"), "'..'"));
  CHECK(Contains(refused("a/./b"), "'.'"));
  CHECK(Contains(refused("a//b"), "empty path segment"));
  CHECK(Contains(refused("a/"), "empty path segment"));
  CHECK(Contains(refused("a/" + std::string(256, 'x')), "longer than 255"));
  CHECK(CheckObjectKey("a/" + std::string(255, 'x')).ok());
  CHECK(Contains(refused(".rill-staging/x"), "staging"));
  CHECK(CheckObjectKey("a/.rill-staging/x").ok());
}

TEST_CASE("ValidatePrefixes accepts Firehose's valid combinations") {
  absl::StatusOr<PrefixNeeds> needs = ValidatePrefixes("", "", "UTC");
  REQUIRE(needs.ok());
  CHECK_FALSE(needs->dynamic_partitioning());
  CHECK(ValidatePrefixes("myFirehosePrefix", "", "").ok());
  CHECK(ValidatePrefixes("", "myFirehoseFailures/!{firehose:error-output-type}/", "UTC").ok());
  needs = ValidatePrefixes(
      "t=!{partitionKeyFromQuery:team}/c=!{partitionKeyFromLambda:customer}/"
      "!{timestamp:yyyy}/!{firehose:random-string}/",
      "err/!{firehose:error-output-type}/!{timestamp:yyyy/MM}/!{firehose:random-string}",
      "America/New_York");
  REQUIRE(needs.ok());
  CHECK(needs->query_keys == std::vector<std::string>{"team"});
  CHECK(needs->lambda_keys == std::vector<std::string>{"customer"});
}

TEST_CASE("ValidatePrefixes names each rule it refuses") {
  const std::string e = "e/!{firehose:error-output-type}/";
  CHECK(Contains(ValidationError("", "", "Mars/Olympus_Mons"), "CustomTimeZone"));
  CHECK(Contains(ValidationError("!{timestamp:yyyy}/", ""),
                 "ErrorOutputPrefix may be empty only if Prefix has no expressions"));
  CHECK(Contains(ValidationError("", "errors/"),
                 "ErrorOutputPrefix must contain !{firehose:error-output-type}"));
  CHECK(Contains(ValidationError("p/!{firehose:error-output-type}/", e),
                 "Prefix must not contain !{firehose:error-output-type}"));
  CHECK(
      Contains(ValidationError("p/!{partitionKeyFromQuery:k}/", e + "!{partitionKeyFromQuery:k}/"),
               "partitionKey expressions are not allowed in ErrorOutputPrefix"));
  CHECK(Contains(ValidationError("p/!{timestamp:yyyy", e), "no closing '}'"));
  CHECK(Contains(ValidationError("p/!{a!{timestamp:yyyy}", e), "'!{' may only start"));
  CHECK(Contains(ValidationError("p/!{timestamp}/", e), "is not !{namespace:value}"));
  CHECK(Contains(ValidationError("p/!{foo:bar}/", e), "unknown namespace"));
  CHECK(Contains(ValidationError("p/!{firehose:uuid}/", e), "unknown firehose value"));
  CHECK(Contains(ValidationError("p/!{partitionKeyFromQuery:}/", e), "names no partition key"));
  CHECK(Contains(ValidationError("p/!{timestamp:yyyyQ}/", e), "letter 'Q'"));
  CHECK(Contains(ValidationError(std::string(1025, 'p'), e), "longer than 1024 characters"));
  CHECK(Contains(ValidationError("", "e/!{firehose:error-output-type}" + std::string(1025, 'e')),
                 "longer than 1024 characters"));
  CHECK(Contains(ValidationError(std::string(600, 'p') + "/", ""), "512"));
  CHECK(Contains(ValidationError("", "!{firehose:error-output-type}/" + std::string(500, 'e')),
                 "512"));
  // Literal parts that would leave the directory or collapse on a file system.
  CHECK(Contains(ValidationError("a/../b/", ""), "'..'"));
  CHECK(Contains(ValidationError("/abs/", ""), "starts with '/'"));
  CHECK(Contains(ValidationError("a//b/", ""), "empty path segment"));
  CHECK(Contains(ValidationError(".rill-staging/", ""), "staging"));
  CHECK(Contains(ValidationError("!{timestamp:'..'}/", e), "'..'"));
  CHECK(Contains(ValidationError("", "../!{firehose:error-output-type}/"), "'..'"));
}

}  // namespace
}  // namespace rill::deliver_internal
