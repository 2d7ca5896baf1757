#include "net/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/time/civil_time.h"
#include "base/strings.h"
#include "net/strings.h"

namespace rill::net::internal {
namespace {

using ::rill::internal::ToAbsl;

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kTerminator = "aws4_request";
constexpr std::string_view kAuthErrorPayloadKey = "rill.net/AuthError";

constexpr std::string_view kMissingTokenMessage = "Missing Authentication Token";
constexpr std::string_view kUnrecognizedClientMessage =
    "The security token included in the request is invalid.";
constexpr std::string_view kInvalidSignatureMessage =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";

// The headers the JS SDK never signs (@smithy/signature-v4 ALWAYS_UNSIGNABLE_HEADERS), plus the
// "proxy-" and "sec-" prefixes: hop-by-hop headers and ones proxies rewrite.
bool IsUnsignable(std::string_view lower_name) {
  static constexpr std::string_view kNames[] = {
      "authorization", "cache-control",     "connection", "expect",     "from",
      "keep-alive",    "max-forwards",      "pragma",     "referer",    "te",
      "trailer",       "transfer-encoding", "upgrade",    "user-agent", "x-amzn-trace-id"};
  for (std::string_view n : kNames) {
    if (lower_name == n) return true;
  }
  return lower_name.starts_with("proxy-") || lower_name.starts_with("sec-");
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// Trims blanks at both ends and collapses inner runs of blanks (and CR/LF, as the JS SDK does)
// into one space.
void AppendCanonicalValue(std::string_view value, std::string* out) {
  bool pending_space = false;
  bool any = false;
  for (char c : value) {
    if (IsBlank(c) || c == '\r' || c == '\n') {
      pending_space = any;
      continue;
    }
    if (pending_space) out->push_back(' ');
    pending_space = false;
    any = true;
    out->push_back(c);
  }
}

bool IsUnreserved(unsigned char c) {
  return ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (in.size() - i < 3 || HexValue(in[i + 1]) < 0 || HexValue(in[i + 2]) < 0) {
      return absl::InvalidArgumentError(Cat("malformed %-escape in query string '", in, "'"));
    }
    out.push_back(static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2])));
    i += 2;
  }
  return out;
}

struct EncodedParam {
  std::string name;
  std::string value;
};

std::string CanonicalQueryFromPairs(std::vector<EncodedParam> params) {
  std::sort(params.begin(), params.end(), [](const EncodedParam& a, const EncodedParam& b) {
    return std::tie(a.name, a.value) < std::tie(b.name, b.value);
  });
  std::string out;
  for (const EncodedParam& p : params) {
    if (!out.empty()) out.push_back('&');
    Append(&out, p.name, "=", p.value);
  }
  return out;
}

bool ValidScopePart(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c == '/' || c == ',' || c == '=' || IsBlank(c) || c == '\r' || c == '\n') return false;
  }
  return true;
}

bool ParseAmzDate(std::string_view s, absl::Time* out) {
  // Exactly yyyymmddThhmmssZ. (absl::ParseTime's %Y takes as many digits as there are.)
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return false;
  for (size_t i = 0; i < 15; ++i) {
    if (i != 8 && (s[i] < '0' || s[i] > '9')) return false;
  }
  auto num = [&](size_t at, size_t len) {
    int v = 0;
    for (size_t i = at; i < at + len; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  const int year = num(0, 4), month = num(4, 2), day = num(6, 2);
  const int hour = num(9, 2), minute = num(11, 2), second = num(13, 2);
  const absl::CivilSecond civil(year, month, day, hour, minute, second);
  // CivilSecond normalizes out-of-range fields (month 13, second 60): such a date is invalid.
  if (civil.year() != year || civil.month() != month || civil.day() != day ||
      civil.hour() != hour || civil.minute() != minute || civil.second() != second) {
    return false;
  }
  *out = absl::FromCivil(civil, absl::UTCTimeZone());
  return true;
}

std::string SkewText(absl::Duration skew) {
  if (skew % absl::Minutes(1) == absl::ZeroDuration()) {
    return Cat(absl::ToInt64Minutes(skew), " min.");
  }
  return Cat(absl::FormatDuration(skew), ".");
}

Sha256Digest SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                        std::string_view service) {
  auto view = [](const Sha256Digest& d) {
    return std::string_view(reinterpret_cast<const char*>(d.data()), d.size());
  };
  const Sha256Digest k_date = HmacSha256(Cat("AWS4", secret), date);
  const Sha256Digest k_region = HmacSha256(view(k_date), region);
  const Sha256Digest k_service = HmacSha256(view(k_region), service);
  return HmacSha256(view(k_service), kTerminator);
}

// The value of header `lower_name` (all occurrences joined with ','), or nullopt.
std::optional<std::string> FindHeader(std::span<const HeaderView> headers,
                                      std::string_view lower_name) {
  std::optional<std::string> out;
  for (const HeaderView& h : headers) {
    if (!EqualsIgnoreCase(h.name, lower_name)) continue;
    if (out.has_value()) {
      out->push_back(',');
    } else {
      out.emplace();
    }
    AppendCanonicalValue(h.value, &*out);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Hashes.

Sha256Digest Sha256(std::string_view data) {
  Sha256Digest out{};
  unsigned int len = 0;
  // EVP_Digest with the default provider: one call, no context kept.
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

Sha256Digest HmacSha256(std::string_view key, std::string_view data) {
  Sha256Digest out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return out;
}

std::string HexEncode(std::string_view data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(data.size() * 2, '\0');
  for (size_t i = 0; i < data.size(); ++i) {
    const auto b = static_cast<unsigned char>(data[i]);
    out[2 * i] = kDigits[b >> 4];
    out[2 * i + 1] = kDigits[b & 0xf];
  }
  return out;
}

std::string HexEncode(const Sha256Digest& digest) {
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

// ---------------------------------------------------------------------------------------------
// Canonical forms.

std::string UriEncode(std::string_view in, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0xf]);
    }
  }
  return out;
}

std::string CanonicalUri(std::string_view path) {
  // As @smithy/signature-v4 getCanonicalPath: drop empty and "." segments, let ".." pop one,
  // keep a leading and (for a non-empty result) a trailing slash, then encode.
  std::vector<std::string_view> segments;
  for (std::string_view segment : Split(path, '/')) {
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
      continue;
    }
    segments.push_back(segment);
  }
  std::string normalized = path.starts_with("/") || path.empty() ? "/" : "";
  normalized += Join(segments, "/");
  if (!segments.empty() && path.ends_with("/")) normalized.push_back('/');
  return UriEncode(normalized, /*keep_slash=*/true);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseQueryString(
    std::string_view raw_query) {
  std::vector<std::pair<std::string, std::string>> out;
  if (raw_query.empty()) return out;
  for (std::string_view part : Split(raw_query, '&')) {
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    const std::string_view name = part.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? "" : part.substr(eq + 1);
    absl::StatusOr<std::string> n = PercentDecode(name);
    if (!n.ok()) return n.status();
    absl::StatusOr<std::string> v = PercentDecode(value);
    if (!v.ok()) return v.status();
    out.emplace_back(*std::move(n), *std::move(v));
  }
  return out;
}

std::string FormatAmzDate(absl::Time time) {
  return absl::FormatTime("%Y%m%dT%H%M%SZ", time, absl::UTCTimeZone());
}

absl::StatusOr<SignatureParts> ComputeSignature(
    std::string_view method, std::string_view path, std::string_view canonical_query,
    std::span<const HeaderView> headers, std::span<const std::string_view> signed_header_names,
    std::string_view payload_sha256_hex, std::string_view amz_date, std::string_view scope,
    std::string_view secret_access_key) {
  SignatureParts parts;
  std::string& creq = parts.canonical_request;
  Append(&creq, method, "\n", CanonicalUri(path), "\n", canonical_query, "\n");
  for (std::string_view name : signed_header_names) {
    std::optional<std::string> value = FindHeader(headers, name);
    if (!value.has_value()) {
      return absl::InvalidArgumentError(Cat("signed header '", name, "' is missing"));
    }
    Append(&creq, name, ":", *value, "\n");
  }
  Append(&creq, "\n", Join(signed_header_names, ";"), "\n", payload_sha256_hex);

  // The scope is "<yyyymmdd>/<region>/<service>/aws4_request".
  const std::vector<std::string_view> scope_parts = Split(scope, '/');
  if (scope_parts.size() != 4) {
    return absl::InvalidArgumentError(Cat("bad credential scope '", scope, "'"));
  }
  Append(&parts.string_to_sign, kAlgorithm, "\n", amz_date, "\n", scope, "\n", Sha256Hex(creq));
  const Sha256Digest key =
      SigningKey(secret_access_key, scope_parts[0], scope_parts[1], scope_parts[2]);
  parts.signature =
      HexEncode(HmacSha256(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()),
                           parts.string_to_sign));
  return parts;
}

// ---------------------------------------------------------------------------------------------
// Signer.

absl::StatusOr<std::vector<HttpHeader>> SignRequest(const SignableRequest& request,
                                                    const Credentials& credentials,
                                                    const SigningParams& params) {
  if (!ValidScopePart(credentials.access_key_id) || credentials.secret_access_key.empty() ||
      !ValidScopePart(params.region) || !ValidScopePart(params.service)) {
    return absl::InvalidArgumentError(
        "SigV4: access key id, secret, region and service must be non-empty, and the key id, "
        "region and service must not contain '/', ',', '=' or blanks");
  }
  const std::string amz_date = FormatAmzDate(params.time);
  const std::string scope =
      Cat(amz_date.substr(0, 8), "/", params.region, "/", params.service, "/", kTerminator);
  const std::string payload_hash = request.payload_sha256_hex.empty()
                                       ? Sha256Hex(request.payload)
                                       : std::string(request.payload_sha256_hex);

  std::vector<HttpHeader> added;
  added.push_back({"x-amz-date", amz_date});
  if (!credentials.session_token.empty()) {
    added.push_back({"x-amz-security-token", credentials.session_token});
  }
  bool has_content_sha = false;
  for (const HttpHeader& h : request.headers) {
    if (EqualsIgnoreCase(h.name, "x-amz-content-sha256")) has_content_sha = true;
  }
  if (params.content_sha256 == ContentSha256Header::kAdd && !has_content_sha) {
    added.push_back({"x-amz-content-sha256", payload_hash});
  }

  // Every header to sign, as views; the generated ones (authorization, date, x-amz-date) and the
  // session token given by the caller are replaced.
  std::vector<HeaderView> views;
  std::vector<std::string> names;
  for (const HttpHeader& h : request.headers) {
    std::string lower = AsciiToLower(h.name);
    if (lower == "authorization" || lower == "date" || lower == "x-amz-date" ||
        (lower == "x-amz-security-token" && !credentials.session_token.empty())) {
      continue;
    }
    views.push_back({h.name, h.value});
    if (!IsUnsignable(lower)) names.push_back(std::move(lower));
  }
  for (const HttpHeader& h : added) {
    views.push_back({h.name, h.value});
    names.push_back(h.name);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<std::string_view> name_views(names.begin(), names.end());

  std::vector<EncodedParam> query;
  for (const QueryParam& q : request.query) {
    query.push_back({UriEncode(q.name, false), UriEncode(q.value, false)});
  }
  absl::StatusOr<SignatureParts> parts = ComputeSignature(
      request.method, request.path, CanonicalQueryFromPairs(std::move(query)), views, name_views,
      payload_hash, amz_date, scope, credentials.secret_access_key);
  if (!parts.ok()) return parts.status();
  added.push_back({"authorization", Cat(kAlgorithm, " Credential=", credentials.access_key_id, "/",
                                        scope, ", SignedHeaders=", Join(name_views, ";"),
                                        ", Signature=", parts->signature)});
  return added;
}

// ---------------------------------------------------------------------------------------------
// Errors.

std::string_view AuthErrorName(AuthError error) {
  switch (error) {
    case AuthError::kNone:
      return "";
    case AuthError::kMissingAuthenticationToken:
      return "MissingAuthenticationTokenException";
    case AuthError::kIncompleteSignature:
      return "IncompleteSignatureException";
    case AuthError::kUnrecognizedClient:
      return "UnrecognizedClientException";
    case AuthError::kInvalidSignature:
      return "InvalidSignatureException";
  }
  return "";
}

absl::Status MakeAuthError(AuthError error, std::string_view message) {
  absl::Status status(absl::StatusCode::kUnauthenticated, ToAbsl(message));
  status.SetPayload(ToAbsl(kAuthErrorPayloadKey), absl::Cord(ToAbsl(AuthErrorName(error))));
  return status;
}

AuthError GetAuthError(const absl::Status& status) {
  if (status.ok()) return AuthError::kNone;
  const auto payload = status.GetPayload(ToAbsl(kAuthErrorPayloadKey));
  if (!payload.has_value()) return AuthError::kNone;
  for (AuthError e : {AuthError::kMissingAuthenticationToken, AuthError::kIncompleteSignature,
                      AuthError::kUnrecognizedClient, AuthError::kInvalidSignature}) {
    if (*payload == ToAbsl(AuthErrorName(e))) return e;
  }
  return AuthError::kNone;
}

// ---------------------------------------------------------------------------------------------
// Verifier.

Verifier::Verifier(VerifierOptions options, SecretLookup lookup)
    : options_(std::move(options)), lookup_(std::move(lookup)) {}

absl::Status Verifier::Verify(const VerifiableRequest& request, absl::Time now) const {
  const std::optional<std::string> authorization = FindHeader(request.headers, "authorization");
  if (!authorization.has_value() || authorization->empty()) {
    return MakeAuthError(AuthError::kMissingAuthenticationToken, kMissingTokenMessage);
  }
  const std::string& auth = *authorization;
  auto incomplete = [](std::string_view message) {
    return MakeAuthError(AuthError::kIncompleteSignature, message);
  };
  auto invalid = [](std::string_view message) {
    return MakeAuthError(AuthError::kInvalidSignature, message);
  };

  // "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...". Another scheme (or none)
  // leaves every parameter missing, which is what AWS reports.
  std::string_view credential, signed_headers, signature;
  bool have_credential = false, have_signed_headers = false, have_signature = false;
  std::string_view rest = auth;
  if (rest.starts_with(kAlgorithm) &&
      (rest.size() == kAlgorithm.size() || IsBlank(rest[kAlgorithm.size()]))) {
    rest.remove_prefix(kAlgorithm.size());
    for (std::string_view token : SplitAnySkipEmpty(rest, ", \t")) {
      if (token.empty()) continue;
      const size_t eq = token.find('=');
      if (eq == std::string_view::npos) {
        return incomplete(Cat("'", token,
                              "' not a valid key=value pair (missing equal-sign) in "
                              "Authorization header: '",
                              auth, "'."));
      }
      const std::string_view key = token.substr(0, eq);
      const std::string_view value = token.substr(eq + 1);
      if (key == "Credential") {
        credential = value;
        have_credential = true;
      } else if (key == "SignedHeaders") {
        signed_headers = value;
        have_signed_headers = true;
      } else if (key == "Signature") {
        signature = value;
        have_signature = true;
      }
    }
  }
  const std::optional<std::string> amz_date = FindHeader(request.headers, "x-amz-date");
  {
    std::string missing;
    if (!have_credential)
      Append(&missing, "Authorization header requires 'Credential' parameter. ");
    if (!have_signature) Append(&missing, "Authorization header requires 'Signature' parameter. ");
    if (!have_signed_headers) {
      Append(&missing, "Authorization header requires 'SignedHeaders' parameter. ");
    }
    if (!amz_date.has_value()) {
      Append(&missing,
             "Authorization header requires existence of either a 'X-Amz-Date' or a "
             "'Date' header. ");
    }
    if (!missing.empty()) return incomplete(Cat(missing, "Authorization=", auth));
  }

  absl::Time signed_at;
  if (!ParseAmzDate(*amz_date, &signed_at)) {
    return incomplete(Cat("Date must be in ISO-8601 'basic format'. Got '", *amz_date,
                          "'. See http://en.wikipedia.org/wiki/ISO_8601"));
  }

  const std::vector<std::string_view> scope = Split(credential, '/');
  if (scope.size() != 5) {
    return incomplete(
        Cat("Credential must have exactly 5 slash-delimited elements, e.g. "
            "keyid/date/region/service/term, got '",
            credential, "'"));
  }
  const std::string_view key_id = scope[0], date = scope[1], region = scope[2], service = scope[3],
                         terminator = scope[4];
  if (date != std::string_view(*amz_date).substr(0, 8)) {
    return invalid(Cat(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: '",
        date, "' != '", std::string_view(*amz_date).substr(0, 8), "', from '", *amz_date, "'."));
  }
  if (!options_.regions.empty() && std::find(options_.regions.begin(), options_.regions.end(),
                                             region) == options_.regions.end()) {
    return invalid(Cat("Credential should be scoped to a valid region, not '", region, "'."));
  }
  if (service != options_.service) {
    return invalid(
        Cat("Credential should be scoped to correct service: '", options_.service, "'."));
  }
  if (terminator != kTerminator) {
    return invalid(Cat("Credential should be scoped with a valid terminator: '", kTerminator,
                       "', not '", terminator, "'."));
  }

  // SignedHeaders: lowercase names, ';'-separated; AWS insists that the host is signed.
  std::vector<std::string_view> names = Split(signed_headers, ';');
  bool host_signed = false;
  for (std::string_view n : names) {
    if (n == "host" || n == ":authority") host_signed = true;
  }
  if (!host_signed) {
    return incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  }

  const std::optional<std::string> secret = lookup_ ? lookup_(key_id) : std::nullopt;
  if (!secret.has_value()) {
    return MakeAuthError(AuthError::kUnrecognizedClient, kUnrecognizedClientMessage);
  }

  if (signed_at < now - options_.max_skew) {
    return invalid(Cat("Signature expired: ", *amz_date, " is now earlier than ",
                       FormatAmzDate(now - options_.max_skew), " (", FormatAmzDate(now), " - ",
                       SkewText(options_.max_skew), ")"));
  }
  if (signed_at > now + options_.max_skew) {
    return invalid(Cat("Signature not yet current: ", *amz_date, " is still later than ",
                       FormatAmzDate(now + options_.max_skew), " (", FormatAmzDate(now), " + ",
                       SkewText(options_.max_skew), ")"));
  }

  // The canonical request over exactly the listed headers, in the order given (a client that
  // listed them unsorted signed them unsorted); the payload hash is always the body's own.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> query =
      ParseQueryString(request.query);
  if (!query.ok()) return invalid(kInvalidSignatureMessage);
  std::vector<EncodedParam> encoded;
  for (const auto& [n, v] : *query) {
    if (n == "X-Amz-Signature") continue;
    encoded.push_back({UriEncode(n, false), UriEncode(v, false)});
  }
  absl::StatusOr<SignatureParts> parts =
      ComputeSignature(request.method, request.path, CanonicalQueryFromPairs(std::move(encoded)),
                       request.headers, names, Sha256Hex(request.body), *amz_date,
                       Cat(date, "/", region, "/", service, "/", terminator), *secret);
  if (!parts.ok()) return invalid(kInvalidSignatureMessage);  // a signed header is missing
  if (parts->signature.size() != signature.size() ||
      CRYPTO_memcmp(parts->signature.data(), signature.data(), signature.size()) != 0) {
    return invalid(kInvalidSignatureMessage);
  }
  return absl::OkStatus();
}

}  // namespace rill::net::internal
