// The HTTP endpoint destination: Firehose's HTTP endpoint delivery protocol (docs/delivery.md,
// kinesis-reference §10.7) over libcurl.
//
// Each Deliver() POSTs the batch as one or more requests of at most 10,000 records and 64 MiB of
// body each:
//   {"requestId":"<GUID>","timestamp":<epoch ms>,"records":[{"data":"<base64>"},...]}
// with the X-Amz-Firehose-* headers. Only a 200 whose JSON body echoes the requestId (and has an
// integer timestamp) acknowledges a request. A request keeps its id across the retries of its
// batch, and a retry resends only the requests not yet acknowledged, so an endpoint that
// deduplicates by request id sees each record once.
//
// Example:
//   HttpEndpointDestination options{.url = "https://example.com/ingest"};
//   if (absl::Status s = ValidateHttpEndpointDestination(options); !s.ok()) return s;
//   std::unique_ptr<Destination> d = MakeHttpEndpointDestination(
//       options, "arn:aws:firehose:us-east-1:000000000000:deliverystream/events", clock);
//   if (absl::Status s = d->Open(); !s.ok()) return s;
//   DeliveryAttempt a = d->Deliver(batch, 1);  // then, for a retry, Deliver(batch, 2) ...
//
// Thread safety: a destination is used by one thread at a time (the delivery thread).
#ifndef RILL_SRC_DELIVER_HTTP_DESTINATION_H_
#define RILL_SRC_DELIVER_HTTP_DESTINATION_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "deliver/destination.h"
#include "rill/base/clock.h"
#include "rill/deliver/destinations.h"

namespace rill::deliver_internal {

// Firehose's limits on one request.
inline constexpr size_t kHttpMaxRecordsPerRequest = 10000;
inline constexpr size_t kHttpMaxBodyBytes = size_t{64} << 20;  // the JSON body, before gzip
// A response body beyond this is not read (HttpEndpoint.ResponseTooLarge).
inline constexpr size_t kHttpMaxResponseBytes = size_t{1} << 20;

// kInvalidArgument: a url that is not a well-formed http:// or https:// URL, an access_key over
// 4096 bytes or holding CR, LF or NUL (it is a header value), more than 50 common attributes.
// kValidation: retry_duration outside 0-7200 s, request_timeout outside 1 ms-900 s, buffering
// size outside 1-64 MiB, interval outside 0-900 s.
absl::Status ValidateHttpEndpointDestination(const HttpEndpointDestination& options);

// `source_arn` goes in X-Amz-Firehose-Source-Arn; `clock` stamps each request's timestamp.
// Options should have passed ValidateHttpEndpointDestination (Open() checks them again).
// The destination keeps one libcurl handle, and so its connection, for its whole life.
std::unique_ptr<Destination> MakeHttpEndpointDestination(HttpEndpointDestination options,
                                                         std::string source_arn,
                                                         std::shared_ptr<Clock> clock);

}  // namespace rill::deliver_internal

#endif  // RILL_SRC_DELIVER_HTTP_DESTINATION_H_
