// rill's error vocabulary: Kinesis' exception names carried inside absl::Status.
//
// Every fallible rill call returns absl::Status or absl::StatusOr<T>. The status' canonical code is
// the closest absl code, and the Kinesis exception name travels as a payload, so that
// GetErrorCode() recovers exactly what Kinesis would have thrown.
//
// Example:
//   absl::StatusOr<rill::PutRecordResult> put = stream->PutRecord("", "data");
//   if (rill::GetErrorCode(put.status()) == rill::ErrorCode::kInvalidArgument) { ... }
//
// Thread safety: every function here is thread-safe.
#ifndef RILL_BASE_ERROR_H_
#define RILL_BASE_ERROR_H_

#include <string_view>

#include "absl/status/status.h"

namespace rill {

// The Kinesis Data Streams error names (see the Kinesis API reference). Which one to expect:
//   - kInvalidArgument: a semantically bad argument: a partition key of the wrong length, an
//     unparsable hash key or sequence number, an iterator type given the wrong arguments, a
//     retention outside its bounds.
//   - kResourceNotFound: the stream, shard or consumer does not exist (an expired shard no longer
//     does).
//   - kResourceInUse: the resource exists but is busy or in the wrong state (a consumer group's
//     lease that another worker took is one).
//   - kLimitExceeded: a quota (shards, consumers, operations per day) would be exceeded.
//   - kProvisionedThroughputExceeded: a per-shard rate limit refused the call; retry later.
//   - kExpiredIterator: the shard iterator is older than 5 minutes.
//   - kExpiredNextToken: a paging token is older than 5 minutes.
//   - kInternalFailure: rill failed internally, or (durable mode) an I/O error or a damaged file;
//     a put that returns it wrote nothing readable.
//   - kValidation: a value outside the API's schema (e.g. a maximum record size outside
//     1 MiB..10 MiB).
//   - kAccessDenied: the network endpoint refused the caller's credentials or signature.
//   - kServiceUnavailable: busy now, retry later (Firehose's ServiceUnavailableException: a
//     delivery stream whose buffers are full).
//   - kCodeValidation: application code that does not compile (Kinesis Data Analytics'
//     CodeValidationException: a SQL syntax error, an unknown column, a type mismatch).
//   - kKmsDisabled, kKmsInvalidState, kKmsAccessDenied, kKmsNotFound, kKmsOptInRequired,
//     kKmsThrottling: server-side encryption's key (KMSDisabledException, ...; see
//     rill/storage/encryption.h).
// The numeric values are stable: they may be persisted.
enum class ErrorCode : int {
  kOk = 0,
  kInvalidArgument = 1,
  kResourceNotFound = 2,
  kResourceInUse = 3,
  kLimitExceeded = 4,
  kProvisionedThroughputExceeded = 5,
  kExpiredIterator = 6,
  kExpiredNextToken = 7,
  kInternalFailure = 8,
  kValidation = 9,
  kAccessDenied = 10,
  // Not a Kinesis name: a status that did not come from rill and has no closer match.
  kUnknown = 11,
  kServiceUnavailable = 12,
  kCodeValidation = 13,
  // Server-side encryption (a KeyProvider, KMS' role): the key is disabled, in a state that
  // forbids its use (pending deletion), refused to this caller, not found, not opted into, or
  // throttled. Kinesis' names for the KMS errors of Put, Get and StartStreamEncryption.
  kKmsDisabled = 14,
  kKmsInvalidState = 15,
  kKmsAccessDenied = 16,
  kKmsNotFound = 17,
  kKmsOptInRequired = 18,
  kKmsThrottling = 19,
};

// Returns the Kinesis name without the "Exception" suffix: "InvalidArgument", "ResourceNotFound",
// "ProvisionedThroughputExceeded", ... and "Ok" for kOk, "Unknown" for anything else.
std::string_view ErrorCodeName(ErrorCode code);

// Returns the name Kinesis puts on the wire: "InvalidArgumentException", ..., and "InternalFailure"
// (which Kinesis spells without the suffix).
std::string_view ErrorCodeExceptionName(ErrorCode code);

// Returns the Kinesis error carried by `status`: kOk for an OK status, the payload's code for a
// status made by MakeError(), and otherwise the closest match to the canonical absl code.
ErrorCode GetErrorCode(const absl::Status& status);

// Makes a status for `code` (which must not be kOk) with `message`; the canonical code is the
// closest absl code (kInvalidArgument -> INVALID_ARGUMENT, kResourceNotFound -> NOT_FOUND, ...).
absl::Status MakeError(ErrorCode code, std::string_view message);

// `status` if it is OK or already carries a Kinesis name; otherwise (an I/O or data-loss status
// from below the API) kInternalFailure whose message keeps the original code and message.
absl::Status AsKinesisError(const absl::Status& status);

// Shorthands for the errors rill returns most.
absl::Status InvalidArgumentError(std::string_view message);
absl::Status ResourceNotFoundError(std::string_view message);
absl::Status ResourceInUseError(std::string_view message);
absl::Status LimitExceededError(std::string_view message);
absl::Status ProvisionedThroughputExceededError(std::string_view message);
absl::Status ExpiredIteratorError(std::string_view message);
absl::Status ExpiredNextTokenError(std::string_view message);
absl::Status InternalFailureError(std::string_view message);
absl::Status ValidationError(std::string_view message);

}  // namespace rill

#endif  // RILL_BASE_ERROR_H_
