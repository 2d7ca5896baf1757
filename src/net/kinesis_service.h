// KinesisService: the Kinesis Data Streams JSON 1.1 API over a StreamRegistry, without a
// transport: the bytes of a request in (the X-Amz-Target operation and the JSON body), an HTTP
// status and the bytes of the response out. The HTTP/1.1 and HTTP/2 servers call it per request;
// tests and fuzzers call it directly.
//
// Example:
//   rill::net::KinesisService service(registry);
//   rill::net::Response r = service.Handle("Kinesis_20131202.CreateStream",
//                                          R"({"StreamName": "s", "ShardCount": 2})");
//   // r.http_status == 200, r.body == ""
//   r = service.Handle("Kinesis_20131202.DescribeStream", R"({"StreamName": "nope"})");
//   // r.http_status == 400, r.error_type == "ResourceNotFoundException",
//   // r.body == {"__type":"ResourceNotFoundException","message":"Stream nope under account ..."}
//
// What it answers, as Kinesis does (names, shapes, messages as botocore's service model and
// kinesalite's recordings of AWS show them):
//   - a body that is not JSON, or whose JSON is not an object: SerializationException (no
//     message, as Kinesis); a member of the wrong type: SerializationException with "Message";
//   - a missing or out-of-range member: ValidationException, "1 validation error detected: Value
//     null at 'streamName' failed to satisfy constraint: Member must not be null" (up to 10,
//     joined by "; ");
//   - an unknown operation (or service prefix): UnknownOperationException;
//   - rill's own errors under their Kinesis names (rill::ErrorCodeExceptionName), HTTP 400,
//     except InternalFailure, which is HTTP 500.
// Streams are ACTIVE from creation (rill creates them at once), so waiters such as
// `aws kinesis wait stream-exists` return at the first poll. StreamARN is accepted wherever
// Kinesis accepts it instead of StreamName.
//
// Shard iterators and ListShards' NextToken are "<stream name>/<rill token>": rill's tokens name
// a stream instance, not a stream, and a request that carries only the token (GetRecords,
// ListShards with NextToken) must find its stream.
//
// Where it departs from Kinesis (on purpose, or where Kinesis is undocumented):
//   - the messages of semantic errors that rill itself finds (a bad iterator position, a
//     retention out of bounds, non-adjacent shards...) are rill's wording; the exception names
//     are Kinesis'. Stream-not-found, tag, hash-key and paging messages are Kinesis' text;
//   - validation messages follow kinesalite's recordings of AWS: members in the order AWS
//     reported them then, StreamName required unless StreamARN is given;
//   - PutRecords with an entry larger than the stream's record limit fails as a whole
//     (InvalidArgumentException), like a bad ExplicitHashKey, rather than per entry;
//   - ListStreamConsumers' NextToken counts consumers already returned, so a consumer
//     deregistered between pages shifts the next page by one;
//   - EnhancedMonitoring is always empty and EncryptionType always NONE; StreamStatus is rill's
//     (ACTIVE, or UPDATING while a reshard's update_duration runs).
//
// Thread safety: Handle and StartSubscription may be called from any number of threads at once.
// No input makes them throw or abort.
//
// Allocation: a response body is a fresh string; parsing reuses a per-thread simdjson parser.
#ifndef RILL_NET_KINESIS_SERVICE_H_
#define RILL_NET_KINESIS_SERVICE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rill/net/stream_registry.h"
#include "rill/stream/stream.h"
#include "rill/stream/subscription.h"

namespace rill::net {

// The X-Amz-Target prefix of every Kinesis operation: "Kinesis_20131202.<Operation>".
inline constexpr std::string_view kKinesisTargetPrefix = "Kinesis_20131202.";

struct Response {
  // 200 on success, 400 for a client error, 500 for InternalFailure.
  int http_status = 200;
  // The JSON body (application/x-amz-json-1.1). Empty for operations without output, as Kinesis.
  std::string body;
  // The error's __type ("ResourceNotFoundException"), empty on success: for the transport's
  // x-amzn-ErrorType header and its logs.
  std::string error_type;
};

// What StartSubscription hands the transport: the subscription and the stream it reads, which
// the subscription must not outlive (members are destroyed in reverse order: subscription
// first).
struct SubscribeStart {
  std::shared_ptr<Stream> stream;
  std::unique_ptr<Subscription> subscription;
};

class KinesisService {
 public:
  // `registry` must not be null.
  explicit KinesisService(std::shared_ptr<StreamRegistry> registry);

  // Answers one request. `target` is the X-Amz-Target header's value; `body` the request body
  // (any bytes). SubscribeToShard is answered with UnknownOperationException and a message
  // pointing to StartSubscription: its response is an event stream, which the transport frames.
  Response Handle(std::string_view target, std::string_view body) const;

  // SubscribeToShard's request (ConsumerARN, ShardId, StartingPosition{Type, SequenceNumber,
  // Timestamp}): validated as Handle validates, then Stream::SubscribeToShard. An error status
  // turns into the response to send with ErrorResponse() (it carries the exception name).
  [[nodiscard]] absl::StatusOr<SubscribeStart> StartSubscription(std::string_view body) const;

  // The error response for a status from StartSubscription (or any rill status): its Kinesis
  // exception name as __type, HTTP 400 (500 for InternalFailure and statuses without a Kinesis
  // name).
  static Response ErrorResponse(const absl::Status& status);

  // Whether `target` (an X-Amz-Target value) names an operation this service answers,
  // SubscribeToShard included: the front checks it before the signature, as Kinesis does.
  static bool IsOperation(std::string_view target);
  // The names of the operations this service answers (without the target prefix), SubscribeToShard
  // included, in alphabetical order: for tests and fuzzers that try every one.
  static std::vector<std::string_view> OperationNames();

  const std::shared_ptr<StreamRegistry>& registry() const { return registry_; }

 private:
  std::shared_ptr<StreamRegistry> registry_;
};

// Appends the JSON payload of one SubscribeToShardEvent event-stream message: {"Records": [...],
// "ContinuationSequenceNumber": "...", "MillisBehindLatest": n, "ChildShards": [...]}, with
// records as GetRecords writes them; ContinuationSequenceNumber is left out at a shard's end,
// ChildShards when there are none.
void AppendSubscribeToShardEventJson(const SubscribeToShardEvent& event, std::string* out);

}  // namespace rill::net

#endif  // RILL_NET_KINESIS_SERVICE_H_
