#include "deliver/http_destination.h"

#include <curl/curl.h>
#include <simdjson.h>

#include <cstdint>
#include <mutex>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "deliver/codec.h"
#include "rill/base/error.h"

namespace rill::deliver_internal {
namespace {

using internal::ToAbsl;

constexpr size_t kMaxAccessKeyBytes = 4096;
constexpr size_t kMaxCommonAttributes = 50;
// How much of an endpoint's answer goes into an error message.
constexpr size_t kBodyExcerptBytes = 256;

void GlobalInit() {
  // curl_global_init is not thread-safe in every libcurl; once per process is what it wants.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// A random version-4 GUID in lowercase hex, 8-4-4-4-12.
std::string NewGuid(std::mt19937_64& rng) {
  const uint64_t hi = (rng() & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  const uint64_t lo = (rng() & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32, (hi >> 16) & 0xFFFF, hi & 0xFFFF,
                         lo >> 48, lo & 0xFFFFFFFFFFFFull);
}

size_t Base64Size(size_t n) { return 4 * ((n + 2) / 3); }

// Appends `in` as padded RFC 4648 base64, written straight into *out's storage: a body of
// 10,000 records costs no allocation once the buffer has grown to its size.
void AppendBase64(std::string_view in, std::string* out) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const size_t start = out->size();
  out->resize(start + Base64Size(in.size()));
  char* o = out->data() + start;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    o[0] = kAlphabet[v >> 18];
    o[1] = kAlphabet[(v >> 12) & 63];
    o[2] = kAlphabet[(v >> 6) & 63];
    o[3] = kAlphabet[v & 63];
    o += 4;
  }
  if (n - i == 1) {
    const uint32_t v = uint32_t{p[i]} << 16;
    o[0] = kAlphabet[v >> 18];
    o[1] = kAlphabet[(v >> 12) & 63];
    o[2] = '=';
    o[3] = '=';
  } else if (n - i == 2) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    o[0] = kAlphabet[v >> 18];
    o[1] = kAlphabet[(v >> 12) & 63];
    o[2] = kAlphabet[(v >> 6) & 63];
    o[3] = '=';
  }
}

// A JSON string (with quotes). Control characters and DEL are escaped, which also keeps the
// common-attributes header free of CR and LF; other bytes pass as they are.
void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

std::string Excerpt(std::string_view body) {
  return std::string(body.substr(0, kBodyExcerptBytes));
}

absl::Status CheckUrl(const std::string& url) {
  if (!absl::StartsWithIgnoreCase(url, "http://") && !absl::StartsWithIgnoreCase(url, "https://")) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        absl::StrCat("HttpEndpointDestination.url must be an http:// or https:// URL: \"", url,
                     "\""));
  }
  // libcurl's own parser, so that what passes here is what the handle will accept.
  CURLU* u = curl_url();
  if (u == nullptr) return MakeError(ErrorCode::kInternalFailure, "curl_url failed");
  const CURLUcode rc = curl_url_set(u, CURLUPART_URL, url.c_str(), 0);
  char* host = nullptr;
  const bool has_host = rc == CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
                        host != nullptr && host[0] != '\0';
  curl_free(host);
  curl_url_cleanup(u);
  if (!has_host) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("HttpEndpointDestination.url is not a valid URL: \"", url, "\""));
  }
  return absl::OkStatus();
}

class HttpDestination final : public Destination {
 public:
  HttpDestination(HttpEndpointDestination options, std::string source_arn,
                  std::shared_ptr<Clock> clock)
      : options_(std::move(options)),
        source_arn_(std::move(source_arn)),
        clock_(std::move(clock)),
        rng_(std::random_device{}()) {
    GlobalInit();
    if (clock_ == nullptr) clock_ = SystemClock::Default();
  }

  ~HttpDestination() override {
    if (curl_ != nullptr) curl_easy_cleanup(curl_);
    if (headers_ != nullptr) curl_slist_free_all(headers_);
  }

  HttpDestination(const HttpDestination&) = delete;
  HttpDestination& operator=(const HttpDestination&) = delete;

  absl::Status Open() override {
    if (curl_ != nullptr) return absl::OkStatus();
    if (absl::Status s = ValidateHttpEndpointDestination(options_); !s.ok()) return s;
    if (absl::Status s = BuildHeaders(); !s.ok()) return s;
    curl_ = curl_easy_init();
    if (curl_ == nullptr) return MakeError(ErrorCode::kInternalFailure, "curl_easy_init failed");
    // Set once: the handle and its connection live as long as the destination.
    curl_easy_setopt(curl_, CURLOPT_URL, options_.url.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_POST, 1L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(options_.request_timeout)));
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &HttpDestination::OnResponseBytes);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error_buffer_);
    if (!options_.ca_file.empty())
      curl_easy_setopt(curl_, CURLOPT_CAINFO, options_.ca_file.c_str());
    return absl::OkStatus();
  }

  std::string_view metric_name() const override { return "HttpEndpoint"; }
  std::string_view error_output_type() const override { return "http-endpoint-failed"; }
  absl::Duration retry_duration() const override { return options_.retry_duration; }

  DeliveryAttempt Deliver(const Batch& batch, int /*attempt*/) override {
    if (curl_ == nullptr) {
      if (absl::Status s = Open(); !s.ok()) {
        return DeliveryAttempt::Permanent("HttpEndpoint.InvalidConfiguration",
                                          std::string(s.message()));
      }
    }
    if (batch.records.empty()) return DeliveryAttempt::Delivered();
    // A retry of the same batch keeps its split and its request ids; anything else is new.
    if (batch.delivery_id != pending_id_ || pending_.empty() ||
        pending_.back().end != batch.records.size()) {
      Plan(batch);
    }
    for (PendingRequest& request : pending_) {
      if (request.acked) continue;
      DeliveryAttempt a = Send(batch, request);
      if (a.result != AttemptResult::kDelivered) {
        if (a.result == AttemptResult::kPermanent) ClearPending();
        return a;
      }
      request.acked = true;
    }
    ClearPending();
    return DeliveryAttempt::Delivered();
  }

 private:
  struct PendingRequest {
    size_t begin = 0;  // records [begin, end) of the batch
    size_t end = 0;
    std::string id;
    bool acked = false;
  };

  static size_t OnResponseBytes(char* data, size_t size, size_t count, void* user) {
    auto* self = static_cast<HttpDestination*>(user);
    const size_t n = size * count;
    if (self->response_.size() + n > kHttpMaxResponseBytes) {
      self->response_too_large_ = true;
      return 0;  // a count short of n makes curl stop with CURLE_WRITE_ERROR
    }
    self->response_.append(data, n);
    return n;
  }

  absl::Status BuildHeaders() {
    std::vector<std::string> lines = {"Content-Type: application/json",
                                      "X-Amz-Firehose-Protocol-Version: 1.0",
                                      absl::StrCat("X-Amz-Firehose-Source-Arn: ", source_arn_),
                                      // libcurl would send "Expect: 100-continue" before a large
                                      // body and wait for an answer some endpoints never give.
                                      "Expect:"};
    if (options_.gzip) lines.push_back("Content-Encoding: gzip");
    if (!options_.access_key.empty()) {
      lines.push_back(absl::StrCat("X-Amz-Firehose-Access-Key: ", options_.access_key));
    }
    if (!options_.common_attributes.empty()) {
      std::string json = "{\"commonAttributes\":{";
      bool first = true;
      for (const auto& [name, value] : options_.common_attributes) {
        if (!first) json.push_back(',');
        first = false;
        AppendJsonString(name, &json);
        json.push_back(':');
        AppendJsonString(value, &json);
      }
      json.append("}}");
      lines.push_back(absl::StrCat("X-Amz-Firehose-Common-Attributes: ", json));
    }
    for (const std::string& line : lines) {
      curl_slist* next = curl_slist_append(headers_, line.c_str());
      if (next == nullptr)
        return MakeError(ErrorCode::kInternalFailure, "curl_slist_append failed");
      headers_ = next;
    }
    return absl::OkStatus();
  }

  // Splits the batch into requests within Firehose's limits, each with its id.
  void Plan(const Batch& batch) {
    ClearPending();
    pending_id_ = batch.delivery_id;
    // {"requestId":"<36>","timestamp":<at most 20>,"records":[ ... ]}, rounded up.
    constexpr size_t kEnvelope = 128;
    size_t begin = 0;
    size_t bytes = kEnvelope;
    for (size_t i = 0; i < batch.records.size(); ++i) {
      // {"data":"<base64>"} and a comma.
      const size_t cost = Base64Size(batch.records[i].size) + 12;
      const size_t count = i - begin;
      if (count == kHttpMaxRecordsPerRequest || (count > 0 && bytes + cost > kHttpMaxBodyBytes)) {
        pending_.push_back({begin, i, NewGuid(rng_), false});
        begin = i;
        bytes = kEnvelope;
      }
      bytes += cost;
    }
    pending_.push_back({begin, batch.records.size(), NewGuid(rng_), false});
  }

  void ClearPending() {
    pending_.clear();
    pending_id_.clear();
  }

  void BuildBody(const Batch& batch, const PendingRequest& request) {
    body_.clear();
    absl::StrAppend(&body_, "{\"requestId\":\"", request.id,
                    "\",\"timestamp\":", absl::ToUnixMillis(clock_->Now()), ",\"records\":[");
    for (size_t i = request.begin; i < request.end; ++i) {
      if (i != request.begin) body_.push_back(',');
      body_.append("{\"data\":\"");
      AppendBase64(batch.data(batch.records[i]), &body_);
      body_.append("\"}");
    }
    body_.append("]}");
  }

  DeliveryAttempt Send(const Batch& batch, const PendingRequest& request) {
    BuildBody(batch, request);
    const std::string* payload = &body_;
    if (options_.gzip) {
      gzipped_.clear();
      if (absl::Status s = Compress(CompressionFormat::kGzip, body_, &gzipped_); !s.ok()) {
        return DeliveryAttempt::Retryable("HttpEndpoint.InternalFailure", std::string(s.message()));
      }
      payload = &gzipped_;
    }
    // The request id header goes in front of the fixed ones: a list node of our own, so that
    // no header list is built per request.
    id_header_.clear();
    absl::StrAppend(&id_header_, "X-Amz-Firehose-Request-Id: ", request.id);
    curl_slist id_node{id_header_.data(), headers_};
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, &id_node);
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, payload->data());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload->size()));
    response_.clear();
    response_too_large_ = false;
    error_buffer_[0] = '\0';
    const CURLcode rc = curl_easy_perform(curl_);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);  // id_node dies with this call
    if (rc != CURLE_OK) return TransportFailure(rc, request);
    long status = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200) {
      std::string reason = CheckAnswer(request.id);
      if (reason.empty()) return DeliveryAttempt::Delivered();
      return DeliveryAttempt::Retryable(
          "HttpEndpoint.InvalidResponseFromDestination",
          absl::StrCat("The response received from the endpoint ", options_.url,
                       " is invalid: ", reason, ". 200: ", Excerpt(response_)));
    }
    if (status == 413) {
      return DeliveryAttempt::Permanent(
          "HttpEndpoint.RequestEntityTooLarge",
          absl::StrCat("The endpoint ", options_.url, " refused request ", request.id, " (",
                       request.end - request.begin, " records, ", payload->size(),
                       " bytes) as too large. 413: ", Excerpt(response_)));
    }
    return DeliveryAttempt::Retryable(
        "HttpEndpoint.DestinationException",
        absl::StrCat("The following response was received from the endpoint destination. ", status,
                     ": ", Excerpt(response_)));
  }

  // Empty if the 200's body acknowledges request `id`, else what is wrong with it.
  std::string CheckAnswer(const std::string& id) {
    // simdjson reads up to SIMDJSON_PADDING bytes past the end; room for it spares a copy.
    response_.reserve(response_.size() + simdjson::SIMDJSON_PADDING);
    simdjson::dom::element doc;
    if (parser_.parse(response_).get(doc) != simdjson::SUCCESS) return "the body is not JSON";
    simdjson::dom::object object;
    if (doc.get_object().get(object) != simdjson::SUCCESS) return "the body is not a JSON object";
    std::string_view echoed;
    if (object["requestId"].get_string().get(echoed) != simdjson::SUCCESS) {
      return "no string requestId";
    }
    if (echoed != id) {
      return absl::StrCat("requestId \"", ToAbsl(echoed), "\" is not the request's \"", id, "\"");
    }
    simdjson::dom::element timestamp;
    if (object["timestamp"].get(timestamp) != simdjson::SUCCESS) return "no timestamp";
    if (!timestamp.is_int64() && !timestamp.is_uint64()) return "the timestamp is not an integer";
    return "";
  }

  DeliveryAttempt TransportFailure(CURLcode rc, const PendingRequest& request) {
    const std::string detail = error_buffer_[0] != '\0' ? error_buffer_ : curl_easy_strerror(rc);
    const std::string what = absl::StrCat("Request ", request.id, " to ", options_.url);
    if (rc == CURLE_WRITE_ERROR && response_too_large_) {
      return DeliveryAttempt::Retryable(
          "HttpEndpoint.ResponseTooLarge",
          absl::StrCat(what, ": the response body exceeded ", kHttpMaxResponseBytes,
                       " bytes and was not read further"));
    }
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        return DeliveryAttempt::Retryable(
            "HttpEndpoint.RequestTimeout",
            absl::StrCat(what, " got no response within ",
                         absl::ToInt64Milliseconds(options_.request_timeout), " ms: ", detail));
      case CURLE_GOT_NOTHING:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_PARTIAL_FILE:
        return DeliveryAttempt::Retryable(
            "HttpEndpoint.ConnectionReset",
            absl::StrCat(what, ": the connection was closed or reset: ", detail));
      default:
        // Refused, unresolvable, TLS handshake or certificate failures, and anything else
        // that kept the request from being answered.
        return DeliveryAttempt::Retryable("HttpEndpoint.ConnectionFailed",
                                          absl::StrCat(what, " failed: ", detail));
    }
  }

  const HttpEndpointDestination options_;
  const std::string source_arn_;
  std::shared_ptr<Clock> clock_;
  std::mt19937_64 rng_;

  CURL* curl_ = nullptr;
  curl_slist* headers_ = nullptr;  // the headers every request carries
  char error_buffer_[CURL_ERROR_SIZE] = {};

  // The batch being delivered: its split and which requests the endpoint acknowledged.
  std::string pending_id_;
  std::vector<PendingRequest> pending_;

  // Reused across requests so that the steady state allocates nothing.
  std::string body_;
  std::string gzipped_;
  std::string id_header_;
  std::string response_;
  bool response_too_large_ = false;
  simdjson::dom::parser parser_;
};

}  // namespace

absl::Status ValidateHttpEndpointDestination(const HttpEndpointDestination& options) {
  if (absl::Status s = CheckUrl(options.url); !s.ok()) return s;
  if (options.access_key.size() > kMaxAccessKeyBytes) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        absl::StrCat("HttpEndpointDestination.access_key is ", options.access_key.size(),
                     " bytes; at most ", kMaxAccessKeyBytes));
  }
  if (options.access_key.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "HttpEndpointDestination.access_key must not hold CR, LF or NUL");
  }
  if (options.common_attributes.size() > kMaxCommonAttributes) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        absl::StrCat("HttpEndpointDestination.common_attributes has ",
                     options.common_attributes.size(), " entries; at most ", kMaxCommonAttributes));
  }
  if (options.retry_duration < absl::ZeroDuration() ||
      options.retry_duration > absl::Seconds(7200)) {
    return MakeError(
        ErrorCode::kValidation,
        absl::StrCat("HttpEndpointDestination.retry_duration ",
                     absl::FormatDuration(options.retry_duration), " is outside 0-7200 s"));
  }
  if (options.request_timeout < absl::Milliseconds(1) ||
      options.request_timeout > absl::Seconds(900)) {
    return MakeError(
        ErrorCode::kValidation,
        absl::StrCat("HttpEndpointDestination.request_timeout ",
                     absl::FormatDuration(options.request_timeout), " is outside 1 ms-900 s"));
  }
  if (options.buffering.size_bytes < (size_t{1} << 20) ||
      options.buffering.size_bytes > (size_t{64} << 20)) {
    return MakeError(ErrorCode::kValidation,
                     absl::StrCat("HttpEndpointDestination.buffering.size_bytes ",
                                  options.buffering.size_bytes, " is outside 1-64 MiB"));
  }
  if (options.buffering.interval < absl::ZeroDuration() ||
      options.buffering.interval > absl::Seconds(900)) {
    return MakeError(
        ErrorCode::kValidation,
        absl::StrCat("HttpEndpointDestination.buffering.interval ",
                     absl::FormatDuration(options.buffering.interval), " is outside 0-900 s"));
  }
  return absl::OkStatus();
}

std::unique_ptr<Destination> MakeHttpEndpointDestination(HttpEndpointDestination options,
                                                         std::string source_arn,
                                                         std::shared_ptr<Clock> clock) {
  return std::make_unique<HttpDestination>(std::move(options), std::move(source_arn),
                                           std::move(clock));
}

}  // namespace rill::deliver_internal
