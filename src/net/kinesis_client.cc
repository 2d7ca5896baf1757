#include "rill/net/kinesis_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "net/eventstream.h"
#include "net/json.h"
#include "net/sigv4.h"
#include "net/strings.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"
#include "simdjson.h"

namespace rill::kinesis {
namespace {

using net::JsonWriter;
using net::internal::Cat;
using rill::internal::Mutex;
using rill::internal::MutexLock;
using Element = simdjson::dom::element;

constexpr std::string_view kTargetPrefix = "Kinesis_20131202.";
// Decoded events a subscription holds ahead of its reader before it stops reading.
constexpr size_t kMaxQueuedEvents = 16;
// How often a waiting Next() looks again without a wake-up (a safety net, not the mechanism).
constexpr absl::Duration kLookInterval = absl::Milliseconds(50);

// Debian's Abseil has its own string_view.
std::string_view ToStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// ---- JSON helpers ---------------------------------------------------------------------------

std::optional<std::string_view> GetString(Element object, std::string_view key) {
  std::string_view value;
  if (object[key].get_string().get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

std::optional<int64_t> GetInt(Element object, std::string_view key) {
  Element e;
  if (object[key].get(e) != simdjson::SUCCESS) return std::nullopt;
  int64_t i;
  if (e.get_int64().get(i) == simdjson::SUCCESS) return i;
  double d;
  if (e.get_double().get(d) == simdjson::SUCCESS) return static_cast<int64_t>(d);
  return std::nullopt;
}

// Kinesis' timestamps: epoch seconds, with up to three decimals.
std::optional<absl::Time> GetTime(Element object, std::string_view key) {
  Element e;
  if (object[key].get(e) != simdjson::SUCCESS) return std::nullopt;
  int64_t i;
  if (e.get_int64().get(i) == simdjson::SUCCESS) return absl::FromUnixSeconds(i);
  double d;
  if (e.get_double().get(d) == simdjson::SUCCESS) {
    return absl::FromUnixMillis(std::llround(d * 1000.0));
  }
  return std::nullopt;
}

absl::Status Malformed(std::string_view what) {
  return InternalFailureError(Cat("the endpoint's answer is malformed: ", what));
}

absl::StatusOr<ShardId> GetShardId(Element object, std::string_view key) {
  std::optional<std::string_view> text = GetString(object, key);
  if (!text) return Malformed(Cat("no ", key));
  absl::StatusOr<ShardId> id = ShardId::Parse(*text);
  if (!id.ok()) return Malformed(Cat(key, " \"", *text, "\" is not a shard id"));
  return *id;
}

absl::StatusOr<SequenceNumber> GetSequence(Element object, std::string_view key) {
  std::optional<std::string_view> text = GetString(object, key);
  if (!text) return Malformed(Cat("no ", key));
  absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(*text);
  if (!s.ok()) return Malformed(Cat(key, " \"", *text, "\" is not a sequence number"));
  return *s;
}

absl::StatusOr<HashKeyRange> GetHashKeyRange(Element object) {
  Element range;
  if (object["HashKeyRange"].get(range) != simdjson::SUCCESS) return Malformed("no HashKeyRange");
  std::optional<std::string_view> start = GetString(range, "StartingHashKey");
  std::optional<std::string_view> end = GetString(range, "EndingHashKey");
  if (!start || !end) return Malformed("HashKeyRange without its keys");
  absl::StatusOr<HashKey> s = HashKey::FromDecimal(*start);
  absl::StatusOr<HashKey> e = HashKey::FromDecimal(*end);
  if (!s.ok() || !e.ok()) return Malformed("a hash key that is not a 128-bit decimal");
  return HashKeyRange{*s, *e};
}

absl::StatusOr<std::vector<ChildShard>> GetChildShards(Element object) {
  std::vector<ChildShard> children;
  simdjson::dom::array list;
  if (object["ChildShards"].get_array().get(list) != simdjson::SUCCESS) return children;
  for (Element c : list) {
    ChildShard child;
    absl::StatusOr<ShardId> id = GetShardId(c, "ShardId");
    if (!id.ok()) return id.status();
    child.shard_id = *id;
    simdjson::dom::array parents;
    if (c["ParentShards"].get_array().get(parents) == simdjson::SUCCESS) {
      for (Element p : parents) {
        std::string_view text;
        if (p.get_string().get(text) != simdjson::SUCCESS) return Malformed("ParentShards");
        absl::StatusOr<ShardId> parent = ShardId::Parse(text);
        if (!parent.ok()) return Malformed("ParentShards");
        child.parent_shards.push_back(*parent);
      }
    }
    absl::StatusOr<HashKeyRange> range = GetHashKeyRange(c);
    if (!range.ok()) return range.status();
    child.hash_key_range = *range;
    children.push_back(std::move(child));
  }
  return children;
}

// Decodes `list` (Kinesis' Records) into *records, keys and data into one buffer that *storage
// keeps alive. The buffer is reserved up front, so the views stay put while it fills.
absl::Status DecodeRecords(simdjson::dom::array list, std::vector<Record>* records,
                           RecordKeepAlive* storage) {
  size_t bytes = 0;
  size_t count = 0;
  for (Element r : list) {
    bytes += GetString(r, "PartitionKey").value_or("").size();
    bytes += GetString(r, "Data").value_or("").size() / 4 * 3;
    ++count;
  }
  auto buffer = std::make_shared<std::string>();
  buffer->reserve(bytes);
  records->reserve(count);
  std::string scratch;
  for (Element r : list) {
    std::optional<std::string_view> key = GetString(r, "PartitionKey");
    std::optional<std::string_view> data = GetString(r, "Data");
    if (!key || !data) return Malformed("a record without PartitionKey or Data");
    absl::StatusOr<SequenceNumber> sequence = GetSequence(r, "SequenceNumber");
    if (!sequence.ok()) return sequence.status();
    if (absl::Status s = net::DecodeBase64Strict(*data, &scratch); !s.ok()) {
      return Malformed("a record's Data is not base64");
    }
    if (buffer->size() + key->size() + scratch.size() > buffer->capacity()) {
      return Malformed("a record's Data decodes longer than its base64 allows");
    }
    const size_t key_at = buffer->size();
    buffer->append(*key);
    const size_t data_at = buffer->size();
    buffer->append(scratch);
    Record record;
    record.sequence_number = *sequence;
    record.approximate_arrival_timestamp =
        GetTime(r, "ApproximateArrivalTimestamp").value_or(absl::UnixEpoch());
    record.partition_key = std::string_view(buffer->data() + key_at, key->size());
    record.data = std::string_view(buffer->data() + data_at, scratch.size());
    records->push_back(record);
  }
  storage->Add(std::shared_ptr<const void>(std::move(buffer)));
  return absl::OkStatus();
}

absl::StatusOr<ConsumerDescription> ParseConsumer(Element c) {
  ConsumerDescription d;
  std::optional<std::string_view> name = GetString(c, "ConsumerName");
  std::optional<std::string_view> arn = GetString(c, "ConsumerARN");
  if (!name || !arn) return Malformed("a consumer without ConsumerName or ConsumerARN");
  d.name = std::string(*name);
  d.id = std::string(*arn);
  const std::string_view status = GetString(c, "ConsumerStatus").value_or("ACTIVE");
  d.status = status == "CREATING"   ? ConsumerStatus::kCreating
             : status == "DELETING" ? ConsumerStatus::kDeleting
                                    : ConsumerStatus::kActive;
  d.creation_time = GetTime(c, "ConsumerCreationTimestamp").value_or(absl::UnixEpoch());
  return d;
}

// ---- Errors ---------------------------------------------------------------------------------

// The ErrorCode for an error name the endpoint sent (with or without a "prefix#" and the
// "Exception" suffix); nullopt for a name rill has no code for.
std::optional<ErrorCode> CodeForName(std::string_view name) {
  if (size_t hash = name.rfind('#'); hash != std::string_view::npos) name.remove_prefix(hash + 1);
  if (size_t colon = name.find(':'); colon != std::string_view::npos) name = name.substr(0, colon);
  constexpr std::string_view kSuffix = "Exception";
  if (name.size() > kSuffix.size() && name.substr(name.size() - kSuffix.size()) == kSuffix) {
    name.remove_suffix(kSuffix.size());
  }
  for (ErrorCode code :
       {ErrorCode::kInvalidArgument, ErrorCode::kResourceNotFound, ErrorCode::kResourceInUse,
        ErrorCode::kLimitExceeded, ErrorCode::kProvisionedThroughputExceeded,
        ErrorCode::kExpiredIterator, ErrorCode::kExpiredNextToken, ErrorCode::kInternalFailure,
        ErrorCode::kValidation, ErrorCode::kAccessDenied}) {
    if (name == ErrorCodeName(code)) return code;
  }
  if (name == "UnrecognizedClient" || name == "InvalidSignature" ||
      name == "MissingAuthenticationToken" || name == "IncompleteSignature" ||
      name == "ExpiredToken" || name == "InvalidClientTokenId") {
    return ErrorCode::kAccessDenied;
  }
  if (name == "ServiceUnavailable") return ErrorCode::kInternalFailure;
  if (name == "Throttling") return ErrorCode::kLimitExceeded;
  if (name == "Serialization") return ErrorCode::kInvalidArgument;
  return std::nullopt;
}

// What the AWS SDKs retry: throttling by name.
bool IsThrottling(std::string_view name) {
  if (size_t hash = name.rfind('#'); hash != std::string_view::npos) name.remove_prefix(hash + 1);
  for (std::string_view t : {"ProvisionedThroughputExceededException", "LimitExceededException",
                             "ThrottlingException", "Throttling", "RequestLimitExceeded",
                             "TooManyRequestsException", "KMSThrottlingException"}) {
    if (name == t) return true;
  }
  return false;
}

absl::Status ErrorFromName(std::string_view name, std::string_view message) {
  if (std::optional<ErrorCode> code = CodeForName(name)) return MakeError(*code, message);
  return InternalFailureError(Cat(name, ": ", message));
}

// An answer that is not a 200: its __type and message (Kinesis' JSON error body), else the
// x-amzn-ErrorType header, else the HTTP status.
// *name_out, when given, gets the error's name as sent (what a retry decision reads).
absl::Status ErrorFromReply(long status, std::string_view body, std::string_view error_header,
                            std::string* name_out = nullptr) {
  std::string name;
  std::string message;
  if (absl::StatusOr<Element> parsed = net::ParseJson(body); parsed.ok()) {
    name = std::string(GetString(*parsed, "__type").value_or(""));
    message = std::string(
        GetString(*parsed, "message").value_or(GetString(*parsed, "Message").value_or("")));
  }
  if (name.empty()) name = std::string(error_header);
  if (name_out != nullptr) *name_out = name;
  if (name.empty()) {
    if (status >= 500) return InternalFailureError(Cat("the endpoint answered HTTP ", status));
    return InternalFailureError(Cat("the endpoint answered HTTP ", status, ": ", body));
  }
  return ErrorFromName(name, message);
}

// ---- The endpoint ---------------------------------------------------------------------------

struct Endpoint {
  std::string url;        // with a trailing '/'
  std::string authority;  // host[:port], as the Host header carries it
  bool tls = false;
};

absl::StatusOr<Endpoint> ParseEndpoint(std::string_view url) {
  Endpoint e;
  std::string_view rest;
  if (url.substr(0, 7) == "http://") {
    rest = url.substr(7);
  } else if (url.substr(0, 8) == "https://") {
    rest = url.substr(8);
    e.tls = true;
  } else {
    return InvalidArgumentError(
        Cat("endpoint must start with http:// or https://, not \"", url, "\""));
  }
  const size_t slash = rest.find('/');
  e.authority = std::string(rest.substr(0, slash));
  if (e.authority.empty()) return InvalidArgumentError(Cat("endpoint has no host: \"", url, "\""));
  e.url = std::string(url);
  if (slash == std::string_view::npos) e.url += '/';
  return e;
}

size_t AppendToString(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

size_t CaptureErrorType(char* data, size_t size, size_t count, void* out) {
  std::string_view line(data, size * count);
  constexpr std::string_view kName = "x-amzn-errortype:";
  if (line.size() > kName.size()) {
    std::string lower(line.substr(0, kName.size()));
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == kName) {
      std::string_view value = line.substr(kName.size());
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() &&
             (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
        value.remove_suffix(1);
      }
      *static_cast<std::string*>(out) = std::string(value);
    }
  }
  return size * count;
}

// A failed transfer worth another attempt: the connection, not the request, failed.
bool IsRetryableTransport(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

struct HttpReply {
  long status = 0;
  std::string body;
  std::string error_type;  // x-amzn-ErrorType
};

}  // namespace

// ---- Client::Impl ---------------------------------------------------------------------------

struct Client::Impl {
  ClientOptions options;
  Endpoint endpoint;
  std::string arn;

  Mutex pool_mu;
  std::vector<CURL*> idle ABSL_GUARDED_BY(pool_mu);

  Mutex random_mu;
  std::mt19937_64 random ABSL_GUARDED_BY(random_mu);

  std::atomic<int64_t> requests{0};
  std::atomic<int64_t> retries{0};
  std::atomic<int64_t> errors{0};

  ~Impl() {
    MutexLock<Mutex> lock(&pool_mu);
    for (CURL* h : idle) curl_easy_cleanup(h);
  }

  CURL* Acquire() {
    {
      MutexLock<Mutex> lock(&pool_mu);
      if (!idle.empty()) {
        CURL* h = idle.back();
        idle.pop_back();
        curl_easy_reset(h);  // options go, the open connection stays
        return h;
      }
    }
    return curl_easy_init();
  }

  void Release(CURL* h) {
    MutexLock<Mutex> lock(&pool_mu);
    if (static_cast<int>(idle.size()) < options.max_idle_connections) {
      idle.push_back(h);
      return;
    }
    curl_easy_cleanup(h);
  }

  absl::Duration Backoff(int attempt) {
    const absl::Duration cap = std::min(
        options.max_backoff, options.base_backoff * std::ldexp(1.0, std::min(attempt, 30)));
    MutexLock<Mutex> lock(&random_mu);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    return cap * unit(random);
  }

  // The request headers, signed. `headers` gets curl's list (the caller frees it).
  absl::StatusOr<curl_slist*> Headers(std::string_view operation, std::string_view body) const {
    std::vector<net::internal::HttpHeader> headers = {
        {"host", endpoint.authority},
        {"content-type", "application/x-amz-json-1.1"},
        {"x-amz-target", Cat(kTargetPrefix, operation)},
    };
    if (options.sign_requests) {
      net::internal::Credentials credentials{options.access_key_id, options.secret_access_key,
                                             options.session_token};
      net::internal::SigningParams params;
      params.region = options.region;
      params.service = "kinesis";
      // Real time on purpose: the endpoint judges a signature's age against its wall clock,
      // whatever clock the application simulates.
      params.time = absl::Now();
      absl::StatusOr<std::vector<net::internal::HttpHeader>> signature =
          net::internal::SignRequest(net::internal::SignableRequest{.method = "POST",
                                                                    .path = "/",
                                                                    .query = {},
                                                                    .headers = headers,
                                                                    .payload = body,
                                                                    .payload_sha256_hex = {}},
                                     credentials, params);
      if (!signature.ok()) return InvalidArgumentError(ToStd(signature.status().message()));
      for (net::internal::HttpHeader& h : *signature) headers.push_back(std::move(h));
    }
    curl_slist* list = nullptr;
    for (const net::internal::HttpHeader& h : headers) {
      list = curl_slist_append(list, Cat(h.name, ": ", h.value).c_str());
    }
    // No "Expect: 100-continue" round trip before large bodies.
    list = curl_slist_append(list, "Expect:");
    return list;
  }

  void CommonOptions(CURL* h, curl_slist* headers, bool streaming) const {
    curl_easy_setopt(h, CURLOPT_URL, endpoint.url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(options.connect_timeout)));
    if (!streaming) {
      curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                       static_cast<long>(absl::ToInt64Milliseconds(options.request_timeout)));
    }
    const bool http2 = streaming || options.http_version == HttpVersion::kHttp2;
    if (!http2) {
      curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    } else if (endpoint.tls) {
      curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    } else {
      curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
                       static_cast<long>(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE));
      // libcurl before 7.88.2 (Debian 12 has 7.88.1) fails the second request on a reused
      // prior-knowledge connection ("Error in the HTTP2 framing layer", curl issue 10634): there,
      // each call gets a connection of its own.
      if (curl_version_info(CURLVERSION_NOW)->version_num < 0x075802) {
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
      }
    }
    if (!options.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options.ca_file.c_str());
  }

  // One operation, retried as the SDKs do. Returns the 200 answer's body.
  absl::StatusOr<std::string> Call(std::string_view operation, std::string_view body) {
    absl::StatusOr<curl_slist*> headers_or = Headers(operation, body);
    if (!headers_or.ok()) return headers_or.status();
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(*headers_or,
                                                                        &curl_slist_free_all);
    for (int attempt = 0;; ++attempt) {
      if (attempt > 0) {
        retries.fetch_add(1, std::memory_order_relaxed);
        options.clock->SleepFor(Backoff(attempt - 1));
        // A fresh signature: the old one's date may be too old by now.
        absl::StatusOr<curl_slist*> resigned = Headers(operation, body);
        if (!resigned.ok()) return resigned.status();
        headers.reset(*resigned);
      }
      requests.fetch_add(1, std::memory_order_relaxed);
      HttpReply reply;
      CURL* h = Acquire();
      if (h == nullptr) return InternalFailureError("curl_easy_init failed");
      CommonOptions(h, headers.get(), /*streaming=*/false);
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &AppendToString);
      curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply.body);
      curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &CaptureErrorType);
      curl_easy_setopt(h, CURLOPT_HEADERDATA, &reply.error_type);
      const CURLcode rc = curl_easy_perform(h);
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply.status);
      Release(h);
      const bool last = attempt + 1 >= options.max_attempts;
      if (rc != CURLE_OK) {
        if (IsRetryableTransport(rc) && !last) continue;
        errors.fetch_add(1, std::memory_order_relaxed);
        return InternalFailureError(
            Cat(operation, " to ", endpoint.url, " failed: ", curl_easy_strerror(rc)));
      }
      if (reply.status == 200) return std::move(reply.body);
      std::string name;
      absl::Status error = ErrorFromReply(reply.status, reply.body, reply.error_type, &name);
      if (!last && (reply.status >= 500 || IsThrottling(name))) continue;
      errors.fetch_add(1, std::memory_order_relaxed);
      return error;
    }
  }

  // Call, then the answer parsed (with this thread's parser: valid until its next parse).
  absl::StatusOr<Element> CallJson(std::string_view operation, std::string_view body) {
    absl::StatusOr<std::string> reply = Call(operation, body);
    if (!reply.ok()) return reply.status();
    absl::StatusOr<Element> parsed = net::ParseJson(*reply);
    if (!parsed.ok()) return Malformed(Cat(operation, "'s answer is not JSON"));
    return *parsed;
  }

  // DescribeStreamSummary; *stream_arn gets the stream's ARN when given.
  absl::StatusOr<StreamSummary> Describe(std::string* stream_arn = nullptr) {
    std::string body;
    JsonWriter w(&body);
    w.BeginObject();
    w.Member("StreamName", options.stream_name);
    w.EndObject();
    absl::StatusOr<Element> parsed = CallJson("DescribeStreamSummary", body);
    if (!parsed.ok()) return parsed.status();
    Element d;
    if ((*parsed)["StreamDescriptionSummary"].get(d) != simdjson::SUCCESS) {
      return Malformed("no StreamDescriptionSummary");
    }
    StreamSummary s;
    s.stream_name = std::string(GetString(d, "StreamName").value_or(options.stream_name));
    const std::string_view status = GetString(d, "StreamStatus").value_or("ACTIVE");
    s.status = status == "CREATING"   ? StreamStatus::kCreating
               : status == "DELETING" ? StreamStatus::kDeleting
               : status == "UPDATING" ? StreamStatus::kUpdating
                                      : StreamStatus::kActive;
    Element mode;
    if (d["StreamModeDetails"].get(mode) == simdjson::SUCCESS &&
        GetString(mode, "StreamMode").value_or("") == "ON_DEMAND") {
      s.capacity_mode = CapacityMode::kOnDemand;
    }
    s.open_shard_count = static_cast<int>(GetInt(d, "OpenShardCount").value_or(0));
    s.retention = absl::Hours(GetInt(d, "RetentionPeriodHours").value_or(24));
    s.creation_time = GetTime(d, "StreamCreationTimestamp").value_or(absl::UnixEpoch());
    s.consumer_count = static_cast<int>(GetInt(d, "ConsumerCount").value_or(0));
    if (std::optional<int64_t> kib = GetInt(d, "MaxRecordSizeInKiB")) {
      s.max_record_bytes = static_cast<size_t>(*kib) << 10;
    } else {
      s.max_record_bytes = options.put_limits.max_record_bytes;
    }
    if (stream_arn != nullptr) *stream_arn = std::string(GetString(d, "StreamARN").value_or(""));
    return s;
  }

  // A call on the stream by name that answers nothing of interest: {"StreamName", ...fill}.
  absl::Status Simple(std::string_view operation, const std::function<void(JsonWriter&)>& fill) {
    std::string body;
    JsonWriter w(&body);
    w.BeginObject();
    w.Member("StreamName", options.stream_name);
    fill(w);
    w.EndObject();
    absl::StatusOr<std::string> reply = Call(operation, body);
    return reply.ok() ? absl::OkStatus() : reply.status();
  }

  // {"StreamARN": ..., "ConsumerName": name}: the consumer calls' body.
  std::string ConsumerBody(std::string_view name) const {
    std::string body;
    JsonWriter w(&body);
    w.BeginObject();
    w.Member("StreamARN", arn);
    w.Member("ConsumerName", name);
    w.EndObject();
    return body;
  }
};

namespace {

// Writes a StartingPosition as Kinesis' loose fields, under the given names.
void WritePosition(JsonWriter& w, const StartingPosition& position, std::string_view type_key,
                   std::string_view sequence_key, std::string_view timestamp_key) {
  w.Member(type_key, ShardIteratorTypeName(position.type));
  if (position.sequence_number) w.Member(sequence_key, *position.sequence_number);
  if (position.timestamp) {
    w.Key(timestamp_key);
    w.EpochSeconds(*position.timestamp);
  }
}

absl::Status CheckOptions(const ClientOptions& o) {
  if (o.stream_name.empty() || o.stream_name.size() > 128) {
    return InvalidArgumentError("stream_name must have 1-128 characters");
  }
  if (o.sign_requests && (o.access_key_id.empty() || o.secret_access_key.empty())) {
    return InvalidArgumentError(
        "access_key_id and secret_access_key are needed to sign requests (or turn sign_requests "
        "off for an endpoint that accepts unsigned ones)");
  }
  if (o.region.empty()) return InvalidArgumentError("region must not be empty");
  if (o.max_attempts < 1 || o.max_attempts > 100) {
    return InvalidArgumentError(Cat("max_attempts must be within [1, 100], not ", o.max_attempts));
  }
  if (o.base_backoff < absl::ZeroDuration() || o.max_backoff < absl::ZeroDuration()) {
    return InvalidArgumentError("backoffs must not be negative");
  }
  if (o.connect_timeout <= absl::ZeroDuration() || o.request_timeout <= absl::ZeroDuration()) {
    return InvalidArgumentError("timeouts must be positive");
  }
  if (o.max_idle_connections < 0) {
    return InvalidArgumentError("max_idle_connections must not be negative");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Client::Impl>> MakeImpl(ClientOptions options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  absl::StatusOr<Endpoint> endpoint = ParseEndpoint(options.endpoint);
  if (!endpoint.ok()) return endpoint.status();
  GlobalInit();
  if (options.clock == nullptr) options.clock = SystemClock::Default();
  auto impl = std::make_unique<Client::Impl>();
  const uint64_t seed = options.jitter_seed != 0 ? options.jitter_seed : std::random_device{}();
  {
    MutexLock<Mutex> lock(&impl->random_mu);
    impl->random.seed(seed);
  }
  impl->options = std::move(options);
  impl->endpoint = *std::move(endpoint);
  return impl;
}

}  // namespace

// ---- Subscriptions --------------------------------------------------------------------------

namespace {

// One SubscribeToShard response, read by its own thread through a curl multi handle (so that
// Cancel() can wake it at once with curl_multi_wakeup).
class RemoteSubscription final : public Subscription {
 public:
  RemoteSubscription(std::shared_ptr<Clock> clock, ShardId shard, std::string consumer_name)
      : clock_(std::move(clock)), shard_(shard), consumer_name_(std::move(consumer_name)) {}

  ~RemoteSubscription() override {
    Cancel();
    if (reader_.joinable()) reader_.join();
    if (multi_ != nullptr) {
      if (easy_ != nullptr) curl_multi_remove_handle(multi_, easy_);
      curl_multi_cleanup(multi_);
    }
    if (easy_ != nullptr) curl_easy_cleanup(easy_);
    if (headers_ != nullptr) curl_slist_free_all(headers_);
  }

  // Sends the request and waits (real time: it is the network) for the answer's start: the
  // initial-response event, or an error.
  absl::Status Start(const Client::Impl& impl, std::string body, curl_slist* headers) {
    body_ = std::move(body);
    headers_ = headers;
    easy_ = curl_easy_init();
    multi_ = curl_multi_init();
    if (easy_ == nullptr || multi_ == nullptr) return InternalFailureError("curl init failed");
    impl.CommonOptions(easy_, headers_, /*streaming=*/true);
    curl_easy_setopt(easy_, CURLOPT_POST, 1L);
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, body_.data());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_.size()));
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &RemoteSubscription::OnData);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &CaptureErrorType);
    curl_easy_setopt(easy_, CURLOPT_HEADERDATA, &error_type_);
    curl_multi_add_handle(multi_, easy_);
    reader_ = std::thread([this] { Read(); });
    // Real time on purpose: this waits on the network (as libcurl's own timeouts do), which a
    // simulated clock does not drive.
    const auto deadline =
        std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(impl.options.request_timeout);
    {
      MutexLock<Mutex> lock(&mu_);
      while (!started_) {
        if (!started_cv_.WaitUntil(&mu_, deadline) && !started_) break;
      }
      if (started_) return start_status_;
    }
    Cancel();
    return InternalFailureError("SubscribeToShard: no answer within the request timeout");
  }

  absl::StatusOr<std::optional<SubscribeToShardEvent>> Next(absl::Duration timeout) override {
    const absl::Time deadline = clock_->Now() + timeout;
    for (;;) {
      absl::StatusOr<std::optional<SubscribeToShardEvent>> event = TryNext();
      if (!event.ok() || event->has_value() || !active()) return event;
      const absl::Time now = clock_->Now();
      if (now >= deadline) return event;
      clock_->WaitFor(std::min(deadline - now, kLookInterval), waker_);
    }
  }

  absl::StatusOr<std::optional<SubscribeToShardEvent>> TryNext() override {
    MutexLock<Mutex> lock(&mu_);
    if (!events_.empty()) {
      SubscribeToShardEvent event = std::move(events_.front());
      events_.pop_front();
      continuation_ = event.continuation_sequence_number;
      if (paused_ && multi_ != nullptr) curl_multi_wakeup(multi_);  // room again: read on
      return std::optional<SubscribeToShardEvent>(std::move(event));
    }
    if (!error_.ok()) return error_;
    return std::optional<SubscribeToShardEvent>();
  }

  bool active() const override {
    MutexLock<Mutex> lock(&mu_);
    return !(finished_ && events_.empty()) && error_.ok();
  }

  void Cancel() override {
    cancelled_.store(true, std::memory_order_seq_cst);
    if (multi_ != nullptr) curl_multi_wakeup(multi_);
    waker_.Interrupt();
  }

  ShardId shard_id() const override { return shard_; }
  const std::string& consumer_name() const override { return consumer_name_; }
  std::optional<SequenceNumber> continuation_sequence_number() const override {
    MutexLock<Mutex> lock(&mu_);
    return continuation_;
  }
  void AddWaker(rill::internal::Waker* waker) override {
    MutexLock<Mutex> lock(&mu_);
    wakers_.push_back(waker);
  }
  void RemoveWaker(rill::internal::Waker* waker) override {
    MutexLock<Mutex> lock(&mu_);
    wakers_.erase(std::remove(wakers_.begin(), wakers_.end(), waker), wakers_.end());
  }

 private:
  static size_t OnData(char* data, size_t size, size_t count, void* self) {
    return static_cast<RemoteSubscription*>(self)->Consume(std::string_view(data, size * count));
  }

  size_t Consume(std::string_view bytes) {
    if (cancelled_.load(std::memory_order_relaxed)) return 0;  // aborts the transfer
    if (status_ == 0) curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status_);
    if (status_ != 200) {
      error_body_.append(bytes);
      return bytes.size();
    }
    {
      MutexLock<Mutex> lock(&mu_);
      if (events_.size() >= kMaxQueuedEvents) {
        paused_ = true;
        return CURL_WRITEFUNC_PAUSE;  // curl hands these bytes again once unpaused
      }
      paused_ = false;
    }
    std::vector<net::internal::Message> messages;
    absl::Status fed = decoder_.Feed(bytes, &messages);
    for (net::internal::Message& m : messages) Handle(m);
    if (!fed.ok()) {
      Fail(InternalFailureError(Cat("the event stream is malformed: ", ToStd(fed.message()))));
      return 0;
    }
    return bytes.size();
  }

  void Handle(const net::internal::Message& m) {
    const std::string_view type = m.GetString(":message-type").value_or("");
    if (type == "exception") {
      const std::string_view name = m.GetString(":exception-type").value_or("InternalFailure");
      std::string message;
      if (absl::StatusOr<Element> parsed = net::ParseJson(m.payload); parsed.ok()) {
        message = std::string(GetString(*parsed, "message").value_or(""));
      }
      Fail(ErrorFromName(name, message));
      return;
    }
    if (type == "error") {
      Fail(ErrorFromName(m.GetString(":error-code").value_or("InternalFailure"),
                         m.GetString(":error-message").value_or("")));
      return;
    }
    const std::string_view event_type = m.GetString(":event-type").value_or("");
    if (event_type == "initial-response") {
      MarkStarted(absl::OkStatus());
      return;
    }
    if (event_type != "SubscribeToShardEvent") return;  // an event type added later: skip it
    absl::StatusOr<Element> parsed = net::ParseJson(m.payload);
    if (!parsed.ok()) {
      Fail(Malformed("a SubscribeToShardEvent that is not JSON"));
      return;
    }
    SubscribeToShardEvent event;
    simdjson::dom::array records;
    if ((*parsed)["Records"].get_array().get(records) == simdjson::SUCCESS) {
      if (absl::Status s = DecodeRecords(records, &event.records, &event.storage); !s.ok()) {
        Fail(s);
        return;
      }
    }
    if (GetString(*parsed, "ContinuationSequenceNumber")) {
      absl::StatusOr<SequenceNumber> c = GetSequence(*parsed, "ContinuationSequenceNumber");
      if (!c.ok()) {
        Fail(c.status());
        return;
      }
      event.continuation_sequence_number = *c;
    }
    event.millis_behind_latest = GetInt(*parsed, "MillisBehindLatest").value_or(0);
    absl::StatusOr<std::vector<ChildShard>> children = GetChildShards(*parsed);
    if (!children.ok()) {
      Fail(children.status());
      return;
    }
    event.child_shards = *std::move(children);
    MarkStarted(absl::OkStatus());  // an endpoint that sends no initial-response
    {
      MutexLock<Mutex> lock(&mu_);
      events_.push_back(std::move(event));
    }
    WakeReaders();
  }

  void MarkStarted(absl::Status status) {
    MutexLock<Mutex> lock(&mu_);
    if (started_) return;
    started_ = true;
    start_status_ = std::move(status);
    started_cv_.SignalAll();
  }

  void Fail(absl::Status status) {
    MarkStarted(status);
    {
      MutexLock<Mutex> lock(&mu_);
      if (error_.ok()) error_ = std::move(status);
      finished_ = true;
    }
    WakeReaders();
  }

  // Under mu_, so that a dispatcher's RemoveWaker (which takes mu_) cannot free a waker while
  // it is being woken.
  void WakeReaders() {
    waker_.MarkPending();
    waker_.Wake();
    MutexLock<Mutex> lock(&mu_);
    for (rill::internal::Waker* w : wakers_) {
      w->MarkPending();
      w->Wake();
    }
  }

  // The reader thread: drives the transfer until it ends or the subscription is cancelled.
  void Read() {
    int running = 1;
    CURLcode result = CURLE_OK;
    while (running > 0 && !cancelled_.load(std::memory_order_seq_cst)) {
      bool unpause = false;
      {
        MutexLock<Mutex> lock(&mu_);
        unpause = paused_ && events_.size() < kMaxQueuedEvents;
      }
      if (unpause) curl_easy_pause(easy_, CURLPAUSE_CONT);
      if (curl_multi_perform(multi_, &running) != CURLM_OK) break;
      int messages = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &messages)) {
        if (msg->msg == CURLMSG_DONE) result = msg->data.result;
      }
      if (running == 0) break;
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
    if (cancelled_.load(std::memory_order_seq_cst)) {
      MarkStarted(InternalFailureError("the subscription was cancelled"));
      MutexLock<Mutex> lock(&mu_);
      finished_ = true;
    } else if (status_ != 200 && status_ != 0) {
      Fail(ErrorFromReply(status_, error_body_, error_type_));
    } else if (result != CURLE_OK) {
      Fail(InternalFailureError(Cat("SubscribeToShard failed: ", curl_easy_strerror(result))));
    } else if (absl::Status s = decoder_.Finish(); !s.ok()) {
      Fail(InternalFailureError(Cat("the event stream ended mid-message: ", ToStd(s.message()))));
    } else {
      // The endpoint ended the subscription (its lifetime, or the shard's end).
      MarkStarted(status_ == 200 ? absl::OkStatus()
                                 : InternalFailureError("SubscribeToShard got no answer"));
      MutexLock<Mutex> lock(&mu_);
      finished_ = true;
    }
    WakeReaders();
  }

  const std::shared_ptr<Clock> clock_;
  const ShardId shard_;
  const std::string consumer_name_;

  // Owned by the reader thread once started.
  std::string body_;
  curl_slist* headers_ = nullptr;
  CURL* easy_ = nullptr;
  CURLM* multi_ = nullptr;
  long status_ = 0;
  std::string error_body_;
  std::string error_type_;
  net::internal::Decoder decoder_;
  std::thread reader_;

  std::atomic<bool> cancelled_{false};
  rill::internal::Waker waker_;

  mutable Mutex mu_;
  rill::internal::CondVar started_cv_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status start_status_ ABSL_GUARDED_BY(mu_);
  std::deque<SubscribeToShardEvent> events_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::optional<SequenceNumber> continuation_ ABSL_GUARDED_BY(mu_);
  std::vector<rill::internal::Waker*> wakers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

// ---- Client ---------------------------------------------------------------------------------

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  absl::StatusOr<std::unique_ptr<Impl>> impl = MakeImpl(std::move(options));
  if (!impl.ok()) return impl.status();
  absl::StatusOr<StreamSummary> summary = (*impl)->Describe(&(*impl)->arn);
  if (!summary.ok()) return summary.status();
  if ((*impl)->arn.empty()) return Malformed("DescribeStreamSummary without StreamARN");
  return std::unique_ptr<Client>(new Client(*std::move(impl)));
}

absl::Status Client::CreateStream(const ClientOptions& options, int shard_count,
                                  absl::Duration timeout) {
  if (shard_count < 0) return InvalidArgumentError("shard_count must not be negative");
  absl::StatusOr<std::unique_ptr<Impl>> impl = MakeImpl(options);
  if (!impl.ok()) return impl.status();
  Impl& c = **impl;
  absl::Status created = c.Simple("CreateStream", [&](JsonWriter& w) {
    if (shard_count > 0) {
      w.Member("ShardCount", shard_count);
    } else {
      w.Key("StreamModeDetails");
      w.BeginObject();
      w.Member("StreamMode", "ON_DEMAND");
      w.EndObject();
    }
  });
  if (!created.ok()) return created;
  const absl::Time deadline = c.options.clock->Now() + timeout;
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<StreamSummary> s = c.Describe();
    if (s.ok() && s->status == StreamStatus::kActive) return absl::OkStatus();
    if (!s.ok() && GetErrorCode(s.status()) != ErrorCode::kResourceNotFound) return s.status();
    if (c.options.clock->Now() >= deadline) {
      return ResourceInUseError(Cat("stream ", c.options.stream_name, " is not ACTIVE after ",
                                    ToStd(absl::FormatDuration(timeout))));
    }
    c.options.clock->SleepFor(
        std::min(absl::Milliseconds(50) * (attempt + 1), absl::Milliseconds(500)));
  }
}

absl::Status Client::DeleteStream(const ClientOptions& options) {
  absl::StatusOr<std::unique_ptr<Impl>> impl = MakeImpl(options);
  if (!impl.ok()) return impl.status();
  return (*impl)->Simple("DeleteStream", [](JsonWriter&) {});
}

const std::string& Client::name() const { return impl_->options.stream_name; }
const std::shared_ptr<Clock>& Client::clock() const { return impl_->options.clock; }
PutLimits Client::put_limits() const { return impl_->options.put_limits; }
const std::string& Client::arn() const { return impl_->arn; }

ClientStats Client::stats() const {
  return ClientStats{.requests = impl_->requests.load(std::memory_order_relaxed),
                     .retries = impl_->retries.load(std::memory_order_relaxed),
                     .errors = impl_->errors.load(std::memory_order_relaxed)};
}

absl::StatusOr<std::string> Client::Call(std::string_view operation,
                                         std::string_view json_body) const {
  return impl_->Call(operation, json_body);
}

absl::StatusOr<PutRecordResult> Client::PutRecord(std::string_view partition_key,
                                                  std::string_view data,
                                                  const PutOptions& options) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Member("StreamName", impl_->options.stream_name);
  w.Member("PartitionKey", partition_key);
  w.Key("Data");
  w.Base64(data);
  if (options.explicit_hash_key) {
    w.Member("ExplicitHashKey", options.explicit_hash_key->ToString());
  }
  if (options.sequence_number_for_ordering) {
    w.Member("SequenceNumberForOrdering", options.sequence_number_for_ordering->ToString());
  }
  w.EndObject();
  absl::StatusOr<Element> parsed = impl_->CallJson("PutRecord", body);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<ShardId> shard = GetShardId(*parsed, "ShardId");
  if (!shard.ok()) return shard.status();
  absl::StatusOr<SequenceNumber> sequence = GetSequence(*parsed, "SequenceNumber");
  if (!sequence.ok()) return sequence.status();
  return PutRecordResult{*shard, *sequence};
}

absl::StatusOr<PutRecordsResult> Client::PutRecords(absl::Span<const PutRecordsEntry> entries) {
  std::string body;
  size_t bytes = 64;
  for (const PutRecordsEntry& e : entries)
    bytes += e.partition_key.size() + e.data.size() * 4 / 3 + 64;
  body.reserve(bytes);
  JsonWriter w(&body);
  w.BeginObject();
  w.Member("StreamName", impl_->options.stream_name);
  w.Key("Records");
  w.BeginArray();
  for (const PutRecordsEntry& e : entries) {
    w.BeginObject();
    w.Key("Data");
    w.Base64(e.data);
    w.Member("PartitionKey", e.partition_key);
    if (e.explicit_hash_key) w.Member("ExplicitHashKey", e.explicit_hash_key->ToString());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  absl::StatusOr<Element> parsed = impl_->CallJson("PutRecords", body);
  if (!parsed.ok()) return parsed.status();
  simdjson::dom::array records;
  if ((*parsed)["Records"].get_array().get(records) != simdjson::SUCCESS) {
    return Malformed("PutRecords without Records");
  }
  PutRecordsResult result;
  result.entries.reserve(entries.size());
  for (Element r : records) {
    PutRecordsResultEntry entry;
    if (std::optional<std::string_view> code = GetString(r, "ErrorCode")) {
      const std::optional<ErrorCode> known = CodeForName(*code);
      entry.error_code = known.value_or(ErrorCode::kInternalFailure);
      entry.error_message = std::string(GetString(r, "ErrorMessage").value_or(""));
      if (!known) entry.error_message = Cat(*code, ": ", entry.error_message);
      ++result.failed_record_count;
    } else {
      absl::StatusOr<ShardId> shard = GetShardId(r, "ShardId");
      if (!shard.ok()) return shard.status();
      absl::StatusOr<SequenceNumber> sequence = GetSequence(r, "SequenceNumber");
      if (!sequence.ok()) return sequence.status();
      entry.shard_id = *shard;
      entry.sequence_number = *sequence;
    }
    result.entries.push_back(std::move(entry));
  }
  if (result.entries.size() != entries.size()) {
    return Malformed(
        Cat("PutRecords answered ", result.entries.size(), " records for ", entries.size()));
  }
  return result;
}

absl::StatusOr<ListShardsResult> Client::ListShards(const ListShardsRequest& request) const {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  if (request.next_token) {
    w.Member("NextToken", *request.next_token);
  } else {
    w.Member("StreamName", impl_->options.stream_name);
  }
  if (request.exclusive_start_shard_id) {
    w.Member("ExclusiveStartShardId", request.exclusive_start_shard_id->ToString());
  }
  w.Member("MaxResults", request.max_results);
  if (request.filter) {
    w.Key("ShardFilter");
    w.BeginObject();
    w.Member("Type", ShardFilterTypeName(request.filter->type));
    if (request.filter->shard_id) w.Member("ShardId", request.filter->shard_id->ToString());
    if (request.filter->timestamp) {
      w.Key("Timestamp");
      w.EpochSeconds(*request.filter->timestamp);
    }
    w.EndObject();
  }
  w.EndObject();
  absl::StatusOr<Element> parsed = impl_->CallJson("ListShards", body);
  if (!parsed.ok()) return parsed.status();
  ListShardsResult result;
  simdjson::dom::array shards;
  if ((*parsed)["Shards"].get_array().get(shards) != simdjson::SUCCESS) {
    return Malformed("ListShards without Shards");
  }
  for (Element s : shards) {
    ShardDescription d;
    absl::StatusOr<ShardId> id = GetShardId(s, "ShardId");
    if (!id.ok()) return id.status();
    d.shard_id = *id;
    for (auto [key, field] : {std::pair{"ParentShardId", &d.parent_shard_id},
                              std::pair{"AdjacentParentShardId", &d.adjacent_parent_shard_id}}) {
      if (!GetString(s, key)) continue;
      absl::StatusOr<ShardId> parent = GetShardId(s, key);
      if (!parent.ok()) return parent.status();
      *field = *parent;
    }
    absl::StatusOr<HashKeyRange> range = GetHashKeyRange(s);
    if (!range.ok()) return range.status();
    d.hash_key_range = *range;
    Element sequence_range;
    if (s["SequenceNumberRange"].get(sequence_range) != simdjson::SUCCESS) {
      return Malformed("a shard without SequenceNumberRange");
    }
    absl::StatusOr<SequenceNumber> start = GetSequence(sequence_range, "StartingSequenceNumber");
    if (!start.ok()) return start.status();
    d.sequence_number_range.starting_sequence_number = *start;
    if (GetString(sequence_range, "EndingSequenceNumber")) {
      absl::StatusOr<SequenceNumber> end = GetSequence(sequence_range, "EndingSequenceNumber");
      if (!end.ok()) return end.status();
      d.sequence_number_range.ending_sequence_number = *end;
    }
    result.shards.push_back(std::move(d));
  }
  if (std::optional<std::string_view> token = GetString(*parsed, "NextToken")) {
    result.next_token = std::string(*token);
  }
  return result;
}

absl::StatusOr<StreamSummary> Client::DescribeStreamSummaryOrError() const {
  return impl_->Describe();
}

absl::StatusOr<ShardIterator> Client::GetShardIterator(std::string_view shard_id,
                                                       const StartingPosition& position) const {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Member("StreamName", impl_->options.stream_name);
  w.Member("ShardId", shard_id);
  WritePosition(w, position, "ShardIteratorType", "StartingSequenceNumber", "Timestamp");
  w.EndObject();
  const absl::Time now = impl_->options.clock->Now();
  absl::StatusOr<Element> parsed = impl_->CallJson("GetShardIterator", body);
  if (!parsed.ok()) return parsed.status();
  std::optional<std::string_view> token = GetString(*parsed, "ShardIterator");
  if (!token || token->empty()) return Malformed("GetShardIterator without ShardIterator");
  return ShardIterator::FromToken(std::string(*token), now);
}

absl::StatusOr<GetRecordsResult> Client::GetRecords(const ShardIterator& iterator,
                                                    int limit) const {
  if (!iterator.is_remote()) {
    return InvalidArgumentError(
        "the shard iterator was not issued by a Kinesis endpoint (it is a rill::Stream's)");
  }
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Member("ShardIterator", iterator.token());
  w.Member("Limit", limit);
  w.EndObject();
  const absl::Time now = impl_->options.clock->Now();
  absl::StatusOr<Element> parsed = impl_->CallJson("GetRecords", body);
  if (!parsed.ok()) return parsed.status();
  GetRecordsResult result;
  simdjson::dom::array records;
  if ((*parsed)["Records"].get_array().get(records) != simdjson::SUCCESS) {
    return Malformed("GetRecords without Records");
  }
  if (absl::Status s = DecodeRecords(records, &result.records, &result.storage); !s.ok()) return s;
  if (std::optional<std::string_view> next = GetString(*parsed, "NextShardIterator")) {
    result.next_shard_iterator = ShardIterator::FromToken(std::string(*next), now);
  }
  result.millis_behind_latest = GetInt(*parsed, "MillisBehindLatest").value_or(0);
  absl::StatusOr<std::vector<ChildShard>> children = GetChildShards(*parsed);
  if (!children.ok()) return children.status();
  result.child_shards = *std::move(children);
  return result;
}

absl::Status Client::SplitShard(std::string_view shard_id, HashKey new_starting_hash_key) {
  return impl_->Simple("SplitShard", [&](JsonWriter& w) {
    w.Member("ShardToSplit", shard_id);
    w.Member("NewStartingHashKey", new_starting_hash_key.ToString());
  });
}

absl::Status Client::MergeShards(std::string_view shard_id, std::string_view adjacent_shard_id) {
  return impl_->Simple("MergeShards", [&](JsonWriter& w) {
    w.Member("ShardToMerge", shard_id);
    w.Member("AdjacentShardToMerge", adjacent_shard_id);
  });
}

absl::Status Client::UpdateShardCount(int target_shard_count) {
  return impl_->Simple("UpdateShardCount", [&](JsonWriter& w) {
    w.Member("TargetShardCount", target_shard_count);
    w.Member("ScalingType", "UNIFORM_SCALING");
  });
}

namespace {
absl::StatusOr<int64_t> WholeHours(absl::Duration retention) {
  const int64_t hours = absl::ToInt64Hours(retention);
  if (absl::Hours(hours) != retention) {
    return InvalidArgumentError(Cat("Kinesis counts retention in whole hours, not ",
                                    ToStd(absl::FormatDuration(retention))));
  }
  return hours;
}
}  // namespace

absl::Status Client::IncreaseStreamRetentionPeriod(absl::Duration retention) {
  absl::StatusOr<int64_t> hours = WholeHours(retention);
  if (!hours.ok()) return hours.status();
  return impl_->Simple("IncreaseStreamRetentionPeriod",
                       [&](JsonWriter& w) { w.Member("RetentionPeriodHours", *hours); });
}

absl::Status Client::DecreaseStreamRetentionPeriod(absl::Duration retention) {
  absl::StatusOr<int64_t> hours = WholeHours(retention);
  if (!hours.ok()) return hours.status();
  return impl_->Simple("DecreaseStreamRetentionPeriod",
                       [&](JsonWriter& w) { w.Member("RetentionPeriodHours", *hours); });
}

absl::StatusOr<ConsumerDescription> Client::RegisterStreamConsumer(std::string_view name) {
  absl::StatusOr<Element> parsed =
      impl_->CallJson("RegisterStreamConsumer", impl_->ConsumerBody(name));
  if (!parsed.ok()) return parsed.status();
  Element c;
  if ((*parsed)["Consumer"].get(c) != simdjson::SUCCESS) {
    return Malformed("RegisterStreamConsumer without Consumer");
  }
  return ParseConsumer(c);
}

absl::Status Client::DeregisterStreamConsumer(std::string_view name) {
  // No answer body, as every operation without output.
  absl::StatusOr<std::string> reply =
      impl_->Call("DeregisterStreamConsumer", impl_->ConsumerBody(name));
  return reply.ok() ? absl::OkStatus() : reply.status();
}

absl::StatusOr<ConsumerDescription> Client::DescribeStreamConsumer(std::string_view name) const {
  absl::StatusOr<Element> parsed =
      impl_->CallJson("DescribeStreamConsumer", impl_->ConsumerBody(name));
  if (!parsed.ok()) return parsed.status();
  Element c;
  if ((*parsed)["ConsumerDescription"].get(c) != simdjson::SUCCESS) {
    return Malformed("DescribeStreamConsumer without ConsumerDescription");
  }
  return ParseConsumer(c);
}

absl::StatusOr<std::vector<ConsumerDescription>> Client::ListStreamConsumersOrError() const {
  std::vector<ConsumerDescription> consumers;
  std::optional<std::string> token;
  for (;;) {
    std::string body;
    JsonWriter w(&body);
    w.BeginObject();
    w.Member("StreamARN", impl_->arn);
    if (token) w.Member("NextToken", *token);
    w.EndObject();
    absl::StatusOr<Element> parsed = impl_->CallJson("ListStreamConsumers", body);
    if (!parsed.ok()) return parsed.status();
    simdjson::dom::array list;
    if ((*parsed)["Consumers"].get_array().get(list) != simdjson::SUCCESS) {
      return Malformed("ListStreamConsumers without Consumers");
    }
    for (Element c : list) {
      absl::StatusOr<ConsumerDescription> d = ParseConsumer(c);
      if (!d.ok()) return d.status();
      consumers.push_back(*std::move(d));
    }
    std::optional<std::string_view> next = GetString(*parsed, "NextToken");
    if (!next) return consumers;
    token = std::string(*next);
  }
}

absl::StatusOr<std::unique_ptr<Subscription>> Client::SubscribeToShard(
    std::string_view consumer_name, std::string_view shard_id, const StartingPosition& position,
    const SubscribeOptions& /*options*/) {
  absl::StatusOr<ShardId> shard = ShardId::Parse(shard_id);
  if (!shard.ok()) return shard.status();
  absl::StatusOr<ConsumerDescription> consumer = DescribeStreamConsumer(consumer_name);
  if (!consumer.ok()) return consumer.status();
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Member("ConsumerARN", consumer->id);
  w.Member("ShardId", shard_id);
  w.Key("StartingPosition");
  w.BeginObject();
  WritePosition(w, position, "Type", "SequenceNumber", "Timestamp");
  w.EndObject();
  w.EndObject();
  absl::StatusOr<curl_slist*> headers = impl_->Headers("SubscribeToShard", body);
  if (!headers.ok()) return headers.status();
  impl_->requests.fetch_add(1, std::memory_order_relaxed);
  auto subscription = std::make_unique<RemoteSubscription>(impl_->options.clock, *shard,
                                                           std::string(consumer_name));
  if (absl::Status s = subscription->Start(*impl_, std::move(body), *headers); !s.ok()) {
    impl_->errors.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  return std::unique_ptr<Subscription>(std::move(subscription));
}

}  // namespace rill::kinesis
