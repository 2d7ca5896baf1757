#include "net/request_handler.h"

#include <cstdint>
#include <random>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "net/json.h"

namespace rill::net::internal {
namespace {

constexpr std::string_view kAmzJson = "application/x-amz-json-1.1";

// ASCII case-insensitive equality (absl's takes absl::string_view, which Debian's Abseil does not
// alias to std::string_view).
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(a[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view FindHeader(std::span<const HeaderView> headers, std::string_view name) {
  for (const HeaderView& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return h.value;
  }
  return {};
}

std::string_view StripBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void AddCommonHeaders(HttpResponse* r) {
  r->headers.emplace_back("x-amzn-requestid", NewRequestId());
}

// AWS' front end answers these without JSON (kinesalite copies it): an XML body, or none.
HttpResponse XmlError(int status, std::string_view type, std::string_view message) {
  HttpResponse r;
  r.status = status;
  if (message.empty()) {
    r.body = absl::StrFormat("<%s/>\n", type);
  } else {
    r.body = absl::StrFormat("<%s>\n  <Message>%s</Message>\n</%s>\n", type, message, type);
  }
  r.headers.emplace_back("x-amzn-errortype", std::string(type));
  AddCommonHeaders(&r);
  return r;
}

HttpResponse JsonResponse(const Response& service_response) {
  HttpResponse r;
  r.status = service_response.http_status;
  r.body = service_response.body;
  r.headers.emplace_back("content-type", std::string(kAmzJson));
  if (!service_response.error_type.empty()) {
    r.headers.emplace_back("x-amzn-errortype", service_response.error_type);
  }
  AddCommonHeaders(&r);
  return r;
}

HttpResponse JsonError(int status, std::string_view type, std::string_view message) {
  Response response;
  response.http_status = status;
  response.error_type = std::string(type);
  // Kinesis' JSON errors: {"__type": ..., "message": ...}; the protocol-level ones without a
  // message (as kinesalite and AWS send SerializationException and UnknownOperationException).
  JsonWriter w(&response.body);
  w.BeginObject();
  w.Member("__type", type);
  if (!message.empty()) w.Member("message", message);
  w.EndObject();
  return JsonResponse(response);
}

}  // namespace

std::string NewRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t hi = (rng() & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;  // version 4
  const uint64_t lo = (rng() & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 10
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32, (hi >> 16) & 0xFFFF, hi & 0xFFFF,
                         lo >> 48, lo & 0xFFFFFFFFFFFFull);
}

RequestHandler::RequestHandler(std::shared_ptr<KinesisService> service,
                               std::unique_ptr<Verifier> verifier)
    : service_(std::move(service)), verifier_(std::move(verifier)) {}

void RequestHandler::SetEventStreamHead(HttpResponse* response) {
  response->status = 200;
  response->headers.emplace_back("content-type", "application/vnd.amazon.eventstream");
  AddCommonHeaders(response);
}

HttpResponse RequestHandler::Handle(const HttpRequest& request) const {
  if (request.method != "POST") {
    return XmlError(403, "AccessDeniedException",
                    "Unable to determine service/operation name to be authorized");
  }
  const std::string_view target_header = FindHeader(request.headers, "x-amz-target");
  const bool kinesis_target = KinesisService::IsOperation(target_header);
  std::string_view content_type = FindHeader(request.headers, "content-type");
  content_type = StripBlanks(content_type.substr(0, content_type.find(';')));
  if (request.body.empty()) {
    return JsonError(400, kinesis_target ? "SerializationException" : "UnknownOperationException",
                     "");
  }
  if (content_type != kAmzJson && content_type != "application/json") {
    if (target_header.find('.') == std::string_view::npos) {
      return XmlError(403, "AccessDeniedException",
                      "Unable to determine service/operation name to be authorized");
    }
    return XmlError(404, "UnknownOperationException", "");
  }
  if (!kinesis_target) return JsonError(400, "UnknownOperationException", "");

  if (verifier_ != nullptr) {
    std::string_view path = request.target;
    std::string_view query;
    if (const size_t q = path.find('?'); q != std::string_view::npos) {
      query = path.substr(q + 1);
      path = path.substr(0, q);
    }
    const VerifiableRequest v{request.method, path, query, request.headers, request.body};
    // Real time, not a Clock: X-Amz-Date was read off the signing machine's wall clock, and the
    // skew AWS allows is judged against wall time (a simulated clock would refuse every client).
    if (absl::Status s = verifier_->Verify(v, absl::Now()); !s.ok()) {
      const AuthError error = GetAuthError(s);
      const std::string_view name =
          error == AuthError::kNone ? "InvalidSignatureException" : AuthErrorName(error);
      return JsonError(400, name, std::string_view(s.message().data(), s.message().size()));
    }
  }

  if (target_header.substr(kKinesisTargetPrefix.size()) == "SubscribeToShard") {
    if (!request.http2) {
      return JsonError(400, "InvalidArgumentException",
                       "SubscribeToShard is served over HTTP/2 only, as by Kinesis");
    }
    if (request.subscriptions_full) {
      return JsonError(400, "LimitExceededException",
                       "the server streams its maximum number of subscriptions already "
                       "(max_subscriptions)");
    }
    absl::StatusOr<SubscribeStart> start = service_->StartSubscription(request.body);
    if (!start.ok()) return JsonResponse(KinesisService::ErrorResponse(start.status()));
    HttpResponse r;
    SetEventStreamHead(&r);
    r.subscription = std::move(*start);
    return r;
  }
  return JsonResponse(service_->Handle(target_header, request.body));
}

}  // namespace rill::net::internal
