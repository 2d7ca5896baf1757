// AWS Signature Version 4 (SigV4) for HTTP requests with the signature in the Authorization header:
// a Signer for rill's Kinesis client and a Verifier for rill's Kinesis server.
//
// Both build the canonical request exactly as AWS specifies it and as the JS SDK v3
// (@smithy/signature-v4) and the AWS CLI compute it:
//   <METHOD>\n<canonical URI>\n<canonical query>\n<canonical headers>\n<signed headers>\n<hex
//   sha256>
// - canonical URI: the path with empty, "." and ".." segments removed, then every byte except
//   A-Z a-z 0-9 - _ . ~ percent-encoded once more (AWS' double encoding for every service but S3);
// - canonical query: name=value pairs, each URI-encoded, sorted by name then value;
// - canonical headers: lowercase names sorted by byte value (so an HTTP/2 ":authority" comes
// first),
//   values with leading and trailing blanks removed and runs of blanks collapsed to one space, the
//   values of a repeated header joined with "," in their order.
// The string to sign is
// "AWS4-HMAC-SHA256\n<x-amz-date>\n<yyyymmdd>/<region>/<service>/aws4_request\n <hex sha256 of the
// canonical request>", and the key is derived from "AWS4" + secret through the scope's date,
// region, service and "aws4_request" with HMAC-SHA256.
//
// Not supported: presigned URLs (query-string authentication), SigV4a, chunked payload signing,
// event-stream message signing, and the "Date" header as an alternative to X-Amz-Date.
//
// Example (client):
//   std::vector<HttpHeader> headers = {{"host", "127.0.0.1:4567"},
//                                      {"content-type", "application/x-amz-json-1.1"},
//                                      {"x-amz-target", "Kinesis_20131202.PutRecord"}};
//   SigningParams params{.region = "us-east-1", .service = "kinesis", .time = absl::Now()};
//   absl::StatusOr<std::vector<HttpHeader>> added =
//       SignRequest({.method = "POST", .path = "/", .headers = headers, .payload = body},
//                   credentials, params);
//   // send headers + *added ("x-amz-date", "authorization", ...)
//
// Example (server):
//   Verifier verifier(VerifierOptions{.regions = {"us-east-1"}},
//                     [&](std::string_view key_id) -> std::optional<std::string> { ... });
//   absl::Status s = verifier.Verify(request_view, clock->Now());
//   if (!s.ok()) reply(GetAuthError(s), s.message());   // e.g. "InvalidSignatureException"
//
// Thread safety: every free function is thread-safe; a Verifier is immutable after construction and
// may be used from any number of threads at once (its lookup function must then be thread-safe).
// Allocation: signing and verifying allocate (the canonical request is built in a std::string).
#ifndef RILL_NET_SIGV4_H_
#define RILL_NET_SIGV4_H_

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rill::net::internal {

// ---------------------------------------------------------------------------------------------
// Hashes (OpenSSL 3 EVP).

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);
Sha256Digest HmacSha256(std::string_view key, std::string_view data);
// Lowercase hex of `data` (any bytes), e.g. HexEncode(Sha256("")) ==
// "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".
std::string HexEncode(std::string_view data);
std::string HexEncode(const Sha256Digest& digest);
inline std::string Sha256Hex(std::string_view data) { return HexEncode(Sha256(data)); }

// ---------------------------------------------------------------------------------------------
// Requests.

// One header as it is on the wire; names in any case (they are compared case-insensitively).
struct HttpHeader {
  std::string name;
  std::string value;
  friend bool operator==(const HttpHeader&, const HttpHeader&) = default;
};

// A view of one header (the server's parser owns the bytes).
struct HeaderView {
  std::string_view name;
  std::string_view value;
};

// A decoded query parameter (before URI encoding).
struct QueryParam {
  std::string_view name;
  std::string_view value;
};

struct Credentials {
  std::string access_key_id = {};
  std::string secret_access_key = {};
  // Empty: long-term credentials. Otherwise sent (and signed) as X-Amz-Security-Token.
  std::string session_token = {};
};

// URI-encodes `in` as SigV4 does: every byte but A-Z a-z 0-9 '-' '_' '.' '~' becomes %XX (uppercase
// hex); '/' too unless `keep_slash`.
std::string UriEncode(std::string_view in, bool keep_slash);

// The canonical URI of `path` (the request target's path as sent, without the query): see the
// file comment. "" and "/" both give "/".
std::string CanonicalUri(std::string_view path);

// Splits a raw query string ("a=1&b=%2F") into decoded parameters; '+' is kept as '+'. Returns
// InvalidArgument on a malformed %-escape.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseQueryString(
    std::string_view raw_query);

// ---------------------------------------------------------------------------------------------
// Signer.

struct SignableRequest {
  std::string_view method = {};  // "POST"
  std::string_view path = {};    // "/" (what goes on the request line, without the query)
  std::span<const QueryParam> query = {};
  // The headers the request will carry. All are signed except those the JS SDK never signs
  // (authorization, user-agent, connection, transfer-encoding, expect, te, ..., proxy-*, sec-*).
  // Any authorization, x-amz-date or date header given here is ignored (replaced). Over HTTP/1.1
  // include "host"; over HTTP/2 the SDK signs ":authority" instead, which is allowed here too.
  std::span<const HttpHeader> headers = {};
  // The body, hashed unless `payload_sha256_hex` is set.
  std::string_view payload = {};
  // The lowercase hex SHA-256 of the body, when the caller has it (or "UNSIGNED-PAYLOAD").
  std::string_view payload_sha256_hex = {};
};

// Whether SignRequest adds (and signs) an x-amz-content-sha256 header. The JS SDK does; the AWS
// CLI does not; Kinesis accepts both.
enum class ContentSha256Header { kOmit, kAdd };

struct SigningParams {
  std::string region = {};   // "us-east-1"
  std::string service = {};  // "kinesis"
  absl::Time time = {};      // the signing time, to the second (sub-seconds are dropped)
  ContentSha256Header content_sha256 = ContentSha256Header::kOmit;
};

// Returns the headers to add to the request, names in lowercase (as HTTP/2 requires):
// "x-amz-date", then "x-amz-security-token" when the credentials have a session token, then
// "x-amz-content-sha256" when asked, then "authorization". Never fails on a well-formed
// request; InvalidArgument when credentials, region or service are empty or contain characters
// a credential scope cannot hold ('/', blanks, ',').
[[nodiscard]] absl::StatusOr<std::vector<HttpHeader>> SignRequest(const SignableRequest& request,
                                                                  const Credentials& credentials,
                                                                  const SigningParams& params);

// The pieces of a signature, for tests and debugging. `signed_headers` is the lowercase names of
// `headers` that are signed, in canonical order, ';'-joined.
struct SignatureParts {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  // lowercase hex
};

// Computes the canonical request over exactly `signed_header_names` (lowercase, sorted, unique;
// each must be in `headers`, else InvalidArgument), the string to sign and the signature.
[[nodiscard]] absl::StatusOr<SignatureParts> ComputeSignature(
    std::string_view method, std::string_view path, std::string_view canonical_query,
    std::span<const HeaderView> headers, std::span<const std::string_view> signed_header_names,
    std::string_view payload_sha256_hex, std::string_view amz_date, std::string_view scope,
    std::string_view secret_access_key);

// "20150830T123600Z" for 2015-08-30 12:36:00 UTC.
std::string FormatAmzDate(absl::Time time);

// ---------------------------------------------------------------------------------------------
// Verifier.

// The AWS error a failed verification maps to. Kinesis answers all of them with HTTP 400 except
// kMissingAuthenticationToken (403 on AWS; kinesalite says 400); the service layer decides.
// The numeric values are stable.
enum class AuthError : int {
  kNone = 0,
  kMissingAuthenticationToken = 1,  // no Authorization header, or not a SigV4 one
  kIncompleteSignature = 2,         // a malformed Authorization header, or no X-Amz-Date
  kUnrecognizedClient = 3,          // unknown access key id
  kInvalidSignature = 4,            // wrong signature, wrong scope, or outside the allowed skew
};

// "MissingAuthenticationTokenException", "IncompleteSignatureException",
// "UnrecognizedClientException", "InvalidSignatureException"; "" for kNone.
std::string_view AuthErrorName(AuthError error);

// The AuthError a status from Verifier::Verify carries (as a payload); kNone for OK or any other
// status. The status' message is AWS' message, to be sent as is.
AuthError GetAuthError(const absl::Status& status);

// Makes the status Verify returns: code UNAUTHENTICATED, `message`, and `error` as payload.
absl::Status MakeAuthError(AuthError error, std::string_view message);

// A request as the server received it.
struct VerifiableRequest {
  std::string_view method = {};
  std::string_view path = {};   // without the query
  std::string_view query = {};  // the raw query string, without '?' ("" for none)
  // Every header received, HTTP/2 pseudo-headers (":authority", ":path", ...) included; names in
  // any case.
  std::span<const HeaderView> headers = {};
  std::string_view body = {};
};

struct VerifierOptions {
  // The service name the credential scope must name. Default: "kinesis".
  std::string service = "kinesis";
  // The regions the credential scope may name. Empty: any region. Default: empty.
  std::vector<std::string> regions = {};
  // How far X-Amz-Date may be from the server's clock, either way. Default: 5 minutes (as AWS).
  // Range: >= 0.
  absl::Duration max_skew = absl::Minutes(5);
};

// Returns the secret access key of an access key id, or nullopt for an unknown one.
using SecretLookup = std::function<std::optional<std::string>(std::string_view access_key_id)>;

class Verifier {
 public:
  Verifier(VerifierOptions options, SecretLookup lookup);

  // Verifies the request's SigV4 Authorization header at server time `now`. OK, or a status made
  // by MakeAuthError with AWS' error name and message. The canonical request is built from
  // exactly the headers SignedHeaders names; headers it does not name may change freely. A
  // signed header that is missing is an InvalidSignatureException (the signature cannot match).
  // The payload hash is always computed from `body` (Kinesis does not accept UNSIGNED-PAYLOAD), so
  // a changed body, or a signed x-amz-content-sha256 that does not match it, fails.
  [[nodiscard]] absl::Status Verify(const VerifiableRequest& request, absl::Time now) const;

  const VerifierOptions& options() const { return options_; }

 private:
  VerifierOptions options_;
  SecretLookup lookup_;
};

}  // namespace rill::net::internal

#endif  // RILL_NET_SIGV4_H_
