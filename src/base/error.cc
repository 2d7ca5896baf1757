#include "rill/base/error.h"

#include <array>
#include <optional>
#include <string>

#include "absl/strings/cord.h"
#include "absl/types/optional.h"
#include "base/strings.h"

namespace rill {
namespace {

// The payload's type URL; the payload is the ErrorCode's name.
constexpr std::string_view kPayloadUrl = "rill/error-code";

struct CodeInfo {
  ErrorCode code;
  std::string_view name;
  std::string_view exception_name;
  absl::StatusCode canonical;
};

constexpr std::array<CodeInfo, 20> kCodes = {{
    {ErrorCode::kOk, "Ok", "Ok", absl::StatusCode::kOk},
    {ErrorCode::kInvalidArgument, "InvalidArgument", "InvalidArgumentException",
     absl::StatusCode::kInvalidArgument},
    {ErrorCode::kResourceNotFound, "ResourceNotFound", "ResourceNotFoundException",
     absl::StatusCode::kNotFound},
    {ErrorCode::kResourceInUse, "ResourceInUse", "ResourceInUseException",
     absl::StatusCode::kFailedPrecondition},
    {ErrorCode::kLimitExceeded, "LimitExceeded", "LimitExceededException",
     absl::StatusCode::kResourceExhausted},
    {ErrorCode::kProvisionedThroughputExceeded, "ProvisionedThroughputExceeded",
     "ProvisionedThroughputExceededException", absl::StatusCode::kResourceExhausted},
    {ErrorCode::kExpiredIterator, "ExpiredIterator", "ExpiredIteratorException",
     absl::StatusCode::kOutOfRange},
    {ErrorCode::kExpiredNextToken, "ExpiredNextToken", "ExpiredNextTokenException",
     absl::StatusCode::kOutOfRange},
    {ErrorCode::kInternalFailure, "InternalFailure", "InternalFailure",
     absl::StatusCode::kInternal},
    {ErrorCode::kValidation, "Validation", "ValidationException",
     absl::StatusCode::kInvalidArgument},
    {ErrorCode::kAccessDenied, "AccessDenied", "AccessDeniedException",
     absl::StatusCode::kPermissionDenied},
    {ErrorCode::kServiceUnavailable, "ServiceUnavailable", "ServiceUnavailableException",
     absl::StatusCode::kUnavailable},
    {ErrorCode::kCodeValidation, "CodeValidation", "CodeValidationException",
     absl::StatusCode::kInvalidArgument},
    {ErrorCode::kKmsDisabled, "KMSDisabled", "KMSDisabledException",
     absl::StatusCode::kFailedPrecondition},
    {ErrorCode::kKmsInvalidState, "KMSInvalidState", "KMSInvalidStateException",
     absl::StatusCode::kFailedPrecondition},
    {ErrorCode::kKmsAccessDenied, "KMSAccessDenied", "KMSAccessDeniedException",
     absl::StatusCode::kPermissionDenied},
    {ErrorCode::kKmsNotFound, "KMSNotFound", "KMSNotFoundException", absl::StatusCode::kNotFound},
    {ErrorCode::kKmsOptInRequired, "KMSOptInRequired", "KMSOptInRequired",
     absl::StatusCode::kFailedPrecondition},
    {ErrorCode::kKmsThrottling, "KMSThrottling", "KMSThrottlingException",
     absl::StatusCode::kResourceExhausted},
    // Last: what Info() answers for a code it does not know.
    {ErrorCode::kUnknown, "Unknown", "UnknownException", absl::StatusCode::kUnknown},
}};

const CodeInfo& Info(ErrorCode code) {
  for (const CodeInfo& info : kCodes) {
    if (info.code == code) return info;
  }
  return kCodes.back();
}

}  // namespace

std::string_view ErrorCodeName(ErrorCode code) { return Info(code).name; }

std::string_view ErrorCodeExceptionName(ErrorCode code) { return Info(code).exception_name; }

ErrorCode GetErrorCode(const absl::Status& status) {
  if (status.ok()) return ErrorCode::kOk;
  if (absl::optional<absl::Cord> payload = status.GetPayload(internal::ToAbsl(kPayloadUrl))) {
    const std::string name(*payload);
    for (const CodeInfo& info : kCodes) {
      if (info.name == name) return info.code;
    }
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      return ErrorCode::kInvalidArgument;
    case absl::StatusCode::kNotFound:
      return ErrorCode::kResourceNotFound;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      return ErrorCode::kResourceInUse;
    case absl::StatusCode::kResourceExhausted:
      return ErrorCode::kLimitExceeded;
    case absl::StatusCode::kPermissionDenied:
      return ErrorCode::kAccessDenied;
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnavailable:
      return ErrorCode::kInternalFailure;
    default:
      return ErrorCode::kUnknown;
  }
}

absl::Status MakeError(ErrorCode code, std::string_view message) {
  if (code == ErrorCode::kOk) code = ErrorCode::kInternalFailure;  // An error must not read as OK.
  const CodeInfo& info = Info(code);
  absl::Status status(info.canonical, internal::ToAbsl(message));
  status.SetPayload(internal::ToAbsl(kPayloadUrl), absl::Cord(internal::ToAbsl(info.name)));
  return status;
}

absl::Status InvalidArgumentError(std::string_view message) {
  return MakeError(ErrorCode::kInvalidArgument, message);
}
absl::Status ResourceNotFoundError(std::string_view message) {
  return MakeError(ErrorCode::kResourceNotFound, message);
}
absl::Status ResourceInUseError(std::string_view message) {
  return MakeError(ErrorCode::kResourceInUse, message);
}
absl::Status LimitExceededError(std::string_view message) {
  return MakeError(ErrorCode::kLimitExceeded, message);
}
absl::Status ProvisionedThroughputExceededError(std::string_view message) {
  return MakeError(ErrorCode::kProvisionedThroughputExceeded, message);
}
absl::Status ExpiredIteratorError(std::string_view message) {
  return MakeError(ErrorCode::kExpiredIterator, message);
}
absl::Status ExpiredNextTokenError(std::string_view message) {
  return MakeError(ErrorCode::kExpiredNextToken, message);
}
absl::Status InternalFailureError(std::string_view message) {
  return MakeError(ErrorCode::kInternalFailure, message);
}
absl::Status ValidationError(std::string_view message) {
  return MakeError(ErrorCode::kValidation, message);
}

absl::Status AsKinesisError(const absl::Status& status) {
  if (status.ok() || status.GetPayload(internal::ToAbsl(kPayloadUrl)).has_value()) return status;
  return InternalFailureError(status.ToString());
}

}  // namespace rill
