#include "net/sigv4.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/time/civil_time.h"

namespace rill::net::internal {
namespace {

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

constexpr std::string_view kAkid = "AKIDEXAMPLE";
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr std::string_view kEmptySha =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

absl::Time At(int y, int mo, int d, int h, int mi, int s) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

// The AWS SigV4 test suite's time: 20150830T123600Z.
const absl::Time kSuiteTime = At(2015, 8, 30, 12, 36, 0);

Credentials SuiteCredentials(std::string token = "") {
  return {std::string(kAkid), std::string(kSecret), std::move(token)};
}

std::optional<std::string> SuiteLookup(std::string_view key) {
  if (key == kAkid) return std::string(kSecret);
  return std::nullopt;
}

std::vector<HeaderView> Views(const std::vector<HttpHeader>& headers) {
  std::vector<HeaderView> out;
  for (const HttpHeader& h : headers) out.push_back({h.name, h.value});
  return out;
}

std::string SignatureOf(const std::string& authorization) {
  return authorization.substr(authorization.find("Signature=") + 10);
}

// Signs a test-suite request and returns the Authorization header.
std::string SignSuite(std::string_view method, std::string_view path, std::vector<QueryParam> query,
                      std::vector<HttpHeader> headers, std::string token = "") {
  SignableRequest request{.method = method, .path = path, .query = query, .headers = headers};
  absl::StatusOr<std::vector<HttpHeader>> added =
      SignRequest(request, SuiteCredentials(std::move(token)),
                  {.region = "us-east-1", .service = "service", .time = kSuiteTime});
  REQUIRE(added.ok());
  REQUIRE(added->back().name == "authorization");
  CHECK(added->front() == HttpHeader{"x-amz-date", "20150830T123600Z"});
  return added->back().value;
}

TEST_CASE("SHA-256 and HMAC-SHA256 match the FIPS 180-2 and RFC 4231 vectors", "[sigv4]") {
  CHECK(Sha256Hex("") == kEmptySha);
  CHECK(Sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // RFC 4231 test case 2.
  CHECK(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(HexEncode(std::string_view("\x00\xff\x10", 3)) == "00ff10");
}

TEST_CASE("get-vanilla from the AWS SigV4 test suite: canonical request and signature", "[sigv4]") {
  const std::vector<HeaderView> headers = {{"Host", "example.amazonaws.com"},
                                           {"X-Amz-Date", "20150830T123600Z"}};
  const std::vector<std::string_view> names = {"host", "x-amz-date"};
  absl::StatusOr<SignatureParts> parts =
      ComputeSignature("GET", "/", "", headers, names, kEmptySha, "20150830T123600Z",
                       "20150830/us-east-1/service/aws4_request", kSecret);
  REQUIRE(parts.ok());
  CHECK(parts->canonical_request ==
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(parts->string_to_sign ==
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  CHECK(parts->signature == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");

  CHECK(SignSuite("GET", "/", {}, {{"Host", "example.amazonaws.com"}}) ==
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST_CASE("The signer reproduces more AWS SigV4 test-suite vectors", "[sigv4]") {
  const HttpHeader host{"Host", "example.amazonaws.com"};
  SECTION("post-vanilla") {
    CHECK(SignatureOf(SignSuite("POST", "/", {}, {host})) ==
          "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
  }
  SECTION("get-vanilla-query-order-key-case") {
    CHECK(
        SignatureOf(SignSuite("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}, {host})) ==
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  }
  SECTION("get-header-value-trim") {
    const std::string auth = SignSuite(
        "GET", "/", {}, {host, {"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}});
    CHECK(auth.find("SignedHeaders=host;my-header1;my-header2;x-amz-date,") != std::string::npos);
    CHECK(SignatureOf(auth) == "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
  }
  SECTION("get-header-key-duplicate") {
    CHECK(SignatureOf(SignSuite("GET", "/", {},
                                {host,
                                 {"My-Header1", "value2"},
                                 {"My-Header1", "value2"},
                                 {"My-Header1", "value1"}})) ==
          "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");
  }
  SECTION("get-utf8") {
    CHECK(SignatureOf(SignSuite("GET", "/\xe1\x88\xb4", {}, {host})) ==
          "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
  }
  SECTION("get-vanilla-with-session-token") {
    const std::string auth = SignSuite(
        "GET", "/", {}, {host}, "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267");
    CHECK(auth.find("SignedHeaders=host;x-amz-date;x-amz-security-token,") != std::string::npos);
    CHECK(SignatureOf(auth) == "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8");
  }
}

TEST_CASE("Canonical URIs and query strings follow the SigV4 encoding rules", "[sigv4]") {
  CHECK(CanonicalUri("") == "/");
  CHECK(CanonicalUri("/") == "/");
  CHECK(CanonicalUri("//example//") == "/example/");
  CHECK(CanonicalUri("/./a/../b") == "/b");
  CHECK(CanonicalUri("/example space/") == "/example%20space/");
  CHECK(CanonicalUri("/%20") == "/%2520");  // encoded twice, as for every service but S3
  CHECK(UriEncode("-_.~AZaz09 /+=", false) == "-_.~AZaz09%20%2F%2B%3D");
  CHECK(UriEncode("a/b", true) == "a/b");

  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> q =
      ParseQueryString("b=2&a=%2F&flag&=x");
  REQUIRE(q.ok());
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"b", "2"}, {"a", "/"}, {"flag", ""}, {"", "x"}};
  CHECK(*q == expected);
  CHECK(absl::IsInvalidArgument(ParseQueryString("a=%2").status()));
  CHECK(absl::IsInvalidArgument(ParseQueryString("a=%zz").status()));
}

TEST_CASE("The signer rejects unusable credentials and scopes", "[sigv4]") {
  const std::vector<HttpHeader> headers = {{"host", "h"}};
  const SignableRequest request{.method = "POST", .path = "/", .headers = headers};
  const SigningParams params{.region = "us-east-1", .service = "kinesis", .time = kSuiteTime};
  CHECK(absl::IsInvalidArgument(SignRequest(request, {"", "s", ""}, params).status()));
  CHECK(absl::IsInvalidArgument(SignRequest(request, {"a/b", "s", ""}, params).status()));
  CHECK(absl::IsInvalidArgument(SignRequest(request, {"a", "", ""}, params).status()));
  SigningParams bad_region = params;
  bad_region.region = "us east";
  CHECK(absl::IsInvalidArgument(SignRequest(request, SuiteCredentials(), bad_region).status()));
}

// ---------------------------------------------------------------------------------------------
// The real JS SDK's signatures (tests/net/golden/sigv4_golden.js).

struct GoldenSignature {
  const char* name;
  const char* region;
  const char* session_token;
  const char* body;
  std::vector<HttpHeader> headers;
  std::vector<HttpHeader> added;
};

const std::vector<GoldenSignature>& Golden() {
  static const auto* golden = new std::vector<GoldenSignature>{
#include "net/golden/sigv4_golden.inc"
  };
  return *golden;
}

const absl::Time kGoldenTime = At(2026, 12, 6, 20, 13, 22);

TEST_CASE("The signer produces the JS SDK's exact headers for Kinesis requests", "[sigv4]") {
  REQUIRE(Golden().size() == 4);
  for (const GoldenSignature& g : Golden()) {
    INFO(g.name);
    SignableRequest request{.method = "POST", .path = "/", .headers = g.headers, .payload = g.body};
    absl::StatusOr<std::vector<HttpHeader>> added =
        SignRequest(request, SuiteCredentials(g.session_token),
                    {.region = g.region,
                     .service = "kinesis",
                     .time = kGoldenTime,
                     .content_sha256 = ContentSha256Header::kAdd});
    REQUIRE(added.ok());
    CHECK(*added == g.added);
  }
}

TEST_CASE("The verifier accepts the JS SDK's signatures over HTTP/1.1 and HTTP/2", "[sigv4]") {
  Verifier verifier({.regions = {"us-east-1", "eu-west-1"}}, SuiteLookup);
  bool saw_authority = false;
  for (const GoldenSignature& g : Golden()) {
    INFO(g.name);
    std::vector<HttpHeader> all = g.headers;
    all.insert(all.end(), g.added.begin(), g.added.end());
    // What an HTTP/2 server also sees: the other pseudo-headers, unsigned.
    all.push_back({":method", "POST"});
    all.push_back({":path", "/"});
    for (const HttpHeader& h : g.headers) saw_authority |= h.name == ":authority";
    const std::vector<HeaderView> views = Views(all);
    const absl::Status s = verifier.Verify(
        {.method = "POST", .path = "/", .headers = views, .body = g.body}, kGoldenTime);
    CHECK(s.ok());
    CHECK(GetAuthError(s) == AuthError::kNone);
  }
  CHECK(saw_authority);
}

// ---------------------------------------------------------------------------------------------
// Verifier errors, on a PutRecord signed by our signer (checked against the SDK above).

struct SignedRequest {
  std::vector<HttpHeader> headers;
  std::string body = R"({"StreamName":"s1","PartitionKey":"pk1","Data":"aGVsbG8="})";
};

SignedRequest SignedPutRecord(absl::Time at) {
  SignedRequest r;
  r.headers = {{"host", "127.0.0.1:4567"},
               {"content-type", "application/x-amz-json-1.1"},
               {"x-amz-target", "Kinesis_20131202.PutRecord"},
               {"user-agent", "test/1.0"}};
  const SignableRequest request{
      .method = "POST", .path = "/", .headers = r.headers, .payload = r.body};
  absl::StatusOr<std::vector<HttpHeader>> added = SignRequest(
      request, SuiteCredentials(), {.region = "us-east-1", .service = "kinesis", .time = at});
  REQUIRE(added.ok());
  r.headers.insert(r.headers.end(), added->begin(), added->end());
  return r;
}

HttpHeader* Find(std::vector<HttpHeader>& headers, std::string_view name) {
  for (HttpHeader& h : headers) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

absl::Status VerifyAt(const SignedRequest& r, absl::Time now,
                      VerifierOptions options = {.regions = {"us-east-1"}}) {
  Verifier verifier(std::move(options), SuiteLookup);
  const std::vector<HeaderView> views = Views(r.headers);
  return verifier.Verify({.method = "POST", .path = "/", .headers = views, .body = r.body}, now);
}

constexpr std::string_view kInvalidSignatureMessage =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";

void CheckError(const absl::Status& s, AuthError error, std::string_view message) {
  CHECK(absl::IsUnauthenticated(s));
  CHECK(GetAuthError(s) == error);
  CHECK(Msg(s) == message);
}

TEST_CASE("A correctly signed request verifies and unsigned headers may change", "[sigv4]") {
  SignedRequest r = SignedPutRecord(kGoldenTime);
  CHECK(VerifyAt(r, kGoldenTime).ok());
  Find(r.headers, "user-agent")->value = "something/else";  // not signed
  r.headers.push_back({"x-extra", "added later"});          // not signed
  CHECK(VerifyAt(r, kGoldenTime).ok());
  // Any region is accepted when none is configured; header name case does not matter.
  Find(r.headers, "content-type")->name = "Content-Type";
  CHECK(VerifyAt(r, kGoldenTime, VerifierOptions{}).ok());
}

TEST_CASE("Tampering with the body or a signed header is InvalidSignatureException", "[sigv4]") {
  SignedRequest r = SignedPutRecord(kGoldenTime);
  SECTION("body") {
    r.body[r.body.size() - 3] = 'X';
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kInvalidSignature, kInvalidSignatureMessage);
  }
  SECTION("signed header") {
    Find(r.headers, "x-amz-target")->value = "Kinesis_20131202.DeleteStream";
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kInvalidSignature, kInvalidSignatureMessage);
  }
  SECTION("signed header removed") {
    Find(r.headers, "x-amz-target")->name = "x-other";
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kInvalidSignature, kInvalidSignatureMessage);
  }
  SECTION("signature") {
    std::string& auth = Find(r.headers, "authorization")->value;
    auth.back() = auth.back() == '0' ? '1' : '0';
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kInvalidSignature, kInvalidSignatureMessage);
    auth.pop_back();  // a shorter signature
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kInvalidSignature, kInvalidSignatureMessage);
  }
  SECTION("wrong secret") {
    Verifier verifier({}, [](std::string_view) { return std::optional<std::string>("other"); });
    const std::vector<HeaderView> views = Views(r.headers);
    CheckError(verifier.Verify({.method = "POST", .path = "/", .headers = views, .body = r.body},
                               kGoldenTime),
               AuthError::kInvalidSignature, kInvalidSignatureMessage);
  }
}

TEST_CASE("No Authorization header is MissingAuthenticationTokenException", "[sigv4]") {
  SignedRequest r = SignedPutRecord(kGoldenTime);
  Find(r.headers, "authorization")->name = "x-not-authorization";
  CheckError(VerifyAt(r, kGoldenTime), AuthError::kMissingAuthenticationToken,
             "Missing Authentication Token");
  CHECK(AuthErrorName(AuthError::kMissingAuthenticationToken) ==
        "MissingAuthenticationTokenException");
}

TEST_CASE("A malformed Authorization header is IncompleteSignatureException", "[sigv4]") {
  SignedRequest r = SignedPutRecord(kGoldenTime);
  std::string& auth = Find(r.headers, "authorization")->value;
  SECTION("another scheme") {
    auth = "Bearer abc";
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kIncompleteSignature,
               "Authorization header requires 'Credential' parameter. Authorization header "
               "requires 'Signature' parameter. Authorization header requires 'SignedHeaders' "
               "parameter. Authorization=Bearer abc");
  }
  SECTION("no Signature") {
    auth = auth.substr(0, auth.find(", Signature="));
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kIncompleteSignature,
               "Authorization header requires 'Signature' parameter. Authorization=" + auth);
  }
  SECTION("no X-Amz-Date") {
    Find(r.headers, "x-amz-date")->name = "x-amz-not-date";
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kIncompleteSignature,
               "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
               "header. Authorization=" +
                   auth);
  }
  SECTION("a pair without =") {
    auth =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE /20261206/us-east-1/kinesis/aws4_request, "
        "SignedHeaders=host, Signature=00";
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kIncompleteSignature,
               "'/20261206/us-east-1/kinesis/aws4_request' not a valid key=value pair (missing "
               "equal-sign) in Authorization header: '" +
                   auth + "'.");
  }
  SECTION("a credential with four elements") {
    auth =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/kinesis/aws4_request, "
        "SignedHeaders=host, Signature=00";
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kIncompleteSignature,
               "Credential must have exactly 5 slash-delimited elements, e.g. "
               "keyid/date/region/service/term, got 'AKIDEXAMPLE/20261206/kinesis/aws4_request'");
  }
  SECTION("a date not in basic format") {
    Find(r.headers, "x-amz-date")->value = "2026-12-06T20:13:22Z";
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kIncompleteSignature,
               "Date must be in ISO-8601 'basic format'. Got '2026-12-06T20:13:22Z'. See "
               "http://en.wikipedia.org/wiki/ISO_8601");
    Find(r.headers, "x-amz-date")->value = "20261306T201322Z";  // month 13
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kIncompleteSignature,
               "Date must be in ISO-8601 'basic format'. Got '20261306T201322Z'. See "
               "http://en.wikipedia.org/wiki/ISO_8601");
  }
  SECTION("the host not signed") {
    const size_t at = auth.find("host;");
    auth.erase(at, 5);
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kIncompleteSignature,
               "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  }
}

TEST_CASE("An unknown access key is UnrecognizedClientException", "[sigv4]") {
  SignedRequest r = SignedPutRecord(kGoldenTime);
  std::string& auth = Find(r.headers, "authorization")->value;
  auth.replace(auth.find("AKIDEXAMPLE"), 11, "AKIDUNKNOWN");
  CheckError(VerifyAt(r, kGoldenTime), AuthError::kUnrecognizedClient,
             "The security token included in the request is invalid.");
}

TEST_CASE("A wrong credential scope is InvalidSignatureException", "[sigv4]") {
  SECTION("region") {
    SignedRequest r = SignedPutRecord(kGoldenTime);
    CheckError(VerifyAt(r, kGoldenTime, {.regions = {"eu-west-1"}}), AuthError::kInvalidSignature,
               "Credential should be scoped to a valid region, not 'us-east-1'.");
  }
  SECTION("service") {
    SignedRequest r = SignedPutRecord(kGoldenTime);
    CheckError(VerifyAt(r, kGoldenTime, {.service = "dynamodb"}), AuthError::kInvalidSignature,
               "Credential should be scoped to correct service: 'dynamodb'.");
  }
  SECTION("terminator") {
    SignedRequest r = SignedPutRecord(kGoldenTime);
    std::string& auth = Find(r.headers, "authorization")->value;
    auth.replace(auth.find("aws4_request"), 12, "aws5_request");
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kInvalidSignature,
               "Credential should be scoped with a valid terminator: 'aws4_request', not "
               "'aws5_request'.");
  }
  SECTION("date") {
    SignedRequest r = SignedPutRecord(kGoldenTime);
    Find(r.headers, "x-amz-date")->value = "20261207T000100Z";
    CheckError(VerifyAt(r, kGoldenTime), AuthError::kInvalidSignature,
               "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
               "from HTTP: '20261206' != '20261207', from '20261207T000100Z'.");
  }
}

TEST_CASE("The allowed clock skew is 5 minutes either way", "[sigv4]") {
  const SignedRequest r = SignedPutRecord(kGoldenTime);
  CHECK(VerifyAt(r, kGoldenTime + absl::Minutes(5)).ok());
  CHECK(VerifyAt(r, kGoldenTime - absl::Minutes(5)).ok());
  CheckError(VerifyAt(r, kGoldenTime + absl::Minutes(5) + absl::Seconds(1)),
             AuthError::kInvalidSignature,
             "Signature expired: 20261206T201322Z is now earlier than 20261206T201323Z "
             "(20261206T201823Z - 5 min.)");
  CheckError(VerifyAt(r, kGoldenTime - absl::Minutes(5) - absl::Seconds(1)),
             AuthError::kInvalidSignature,
             "Signature not yet current: 20261206T201322Z is still later than 20261206T201321Z "
             "(20261206T200821Z + 5 min.)");
  // A configured skew.
  CHECK(VerifyAt(r, kGoldenTime + absl::Minutes(15),
                 {.regions = {"us-east-1"}, .max_skew = absl::Minutes(15)})
            .ok());
}

TEST_CASE("The verifier accepts the AWS test-suite requests", "[sigv4]") {
  std::vector<HttpHeader> headers = {{"Host", "example.amazonaws.com"},
                                     {"My-Header1", "value2"},
                                     {"My-Header1", "value2"},
                                     {"My-Header1", "value1"},
                                     {"X-Amz-Date", "20150830T123600Z"},
                                     {"Authorization",
                                      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
                                      "service/aws4_request, SignedHeaders=host;my-header1;"
                                      "x-amz-date, Signature=c9d5ea9f3f72853aea855b47ea873832890dbd"
                                      "d183b4468f858259531a5138ea"}};
  Verifier verifier({.service = "service"}, SuiteLookup);
  std::vector<HeaderView> views = Views(headers);
  CHECK(verifier.Verify({.method = "GET", .path = "/", .headers = views}, kSuiteTime).ok());

  headers = {{"Host", "example.amazonaws.com"},
             {"X-Amz-Date", "20150830T123600Z"},
             {"Authorization",
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
              "SignedHeaders=host;x-amz-date, "
              "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"}};
  views = Views(headers);
  CHECK(verifier
            .Verify({.method = "GET",
                     .path = "/",
                     .query = "Param2=value2&Param1=value1",
                     .headers = views},
                    kSuiteTime)
            .ok());
  // The same signature does not cover another query.
  CHECK(
      GetAuthError(verifier.Verify(
          {.method = "GET", .path = "/", .query = "Param2=value2&Param1=value3", .headers = views},
          kSuiteTime)) == AuthError::kInvalidSignature);
}

TEST_CASE("GetAuthError reads only statuses made by MakeAuthError", "[sigv4]") {
  CHECK(GetAuthError(absl::OkStatus()) == AuthError::kNone);
  CHECK(GetAuthError(absl::UnauthenticatedError("x")) == AuthError::kNone);
  for (AuthError e : {AuthError::kMissingAuthenticationToken, AuthError::kIncompleteSignature,
                      AuthError::kUnrecognizedClient, AuthError::kInvalidSignature}) {
    CHECK(GetAuthError(MakeAuthError(e, "m")) == e);
  }
  CHECK(AuthErrorName(AuthError::kIncompleteSignature) == "IncompleteSignatureException");
  CHECK(AuthErrorName(AuthError::kUnrecognizedClient) == "UnrecognizedClientException");
  CHECK(AuthErrorName(AuthError::kInvalidSignature) == "InvalidSignatureException");
}

}  // namespace
}  // namespace rill::net::internal
