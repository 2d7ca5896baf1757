// The HTTP front of the Kinesis service, shared by the HTTP/1.1 and HTTP/2 transports: checks a
// request's method, content type, target and signature in the order Kinesis (and kinesalite)
// does, then hands it to KinesisService, and says what to answer: a complete response, or the
// start of a SubscribeToShard event stream. No sockets here, so every rule is testable with plain
// strings.
//
// Order of the checks (kinesalite's, which follows AWS): not POST -> 403 AccessDeniedException;
// empty body -> 400 SerializationException (or UnknownOperationException for an unknown target);
// a content type other than application/x-amz-json-1.1 or application/json -> 403/404 with an
// XML body, as AWS' front end answers; a target that is not Kinesis_20131202.<Operation> -> 400
// UnknownOperationException; then the signature (SigV4) unless authentication is off; then the
// service (JSON parsing and validation: SerializationException, ValidationException, ...).
//
// Thread safety: Handle may be called from any number of threads at once.
#ifndef RILL_NET_REQUEST_HANDLER_H_
#define RILL_NET_REQUEST_HANDLER_H_

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/kinesis_service.h"
#include "net/sigv4.h"

namespace rill::net::internal {

// A request as a transport received it. `target` is the request target (path and query).
struct HttpRequest {
  std::string_view method;
  std::string_view target;
  std::span<const HeaderView> headers;  // HTTP/2 pseudo-headers included
  std::string_view body;
  // SubscribeToShard streams over HTTP/2 only (as Kinesis serves it); over HTTP/1.1 it is
  // answered with InvalidArgumentException.
  bool http2 = false;
  // The server streams its most subscriptions already: SubscribeToShard is answered with
  // LimitExceededException.
  bool subscriptions_full = false;
};

// What to answer. For a SubscribeToShard that started, `subscription` is set and `status`,
// `headers` describe the event stream's response head; the body is the transport's to stream.
struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // names in lowercase
  std::string body;
  std::optional<SubscribeStart> subscription;
};

class RequestHandler {
 public:
  // `verifier` null: authentication is off.
  RequestHandler(std::shared_ptr<KinesisService> service, std::unique_ptr<Verifier> verifier);

  // Answers one request. Never fails: every problem is an error response.
  HttpResponse Handle(const HttpRequest& request) const;

  // The response head of an event stream (status 200, content type, request id), for a
  // SubscribeToShard whose subscription started.
  static void SetEventStreamHead(HttpResponse* response);

 private:
  std::shared_ptr<KinesisService> service_;
  std::unique_ptr<Verifier> verifier_;
};

// A random version-4 UUID ("3f2a...-..."), for x-amzn-RequestId. Thread-safe.
std::string NewRequestId();

}  // namespace rill::net::internal

#endif  // RILL_NET_REQUEST_HANDLER_H_
