#include "rill/base/error.h"

#include <catch2/catch.hpp>

namespace rill {
namespace {

TEST_CASE("every error code round-trips through a status", "[error]") {
  const ErrorCode codes[] = {ErrorCode::kInvalidArgument,
                             ErrorCode::kResourceNotFound,
                             ErrorCode::kResourceInUse,
                             ErrorCode::kLimitExceeded,
                             ErrorCode::kProvisionedThroughputExceeded,
                             ErrorCode::kExpiredIterator,
                             ErrorCode::kExpiredNextToken,
                             ErrorCode::kInternalFailure,
                             ErrorCode::kValidation,
                             ErrorCode::kAccessDenied,
                             ErrorCode::kServiceUnavailable,
                             ErrorCode::kCodeValidation,
                             ErrorCode::kKmsDisabled,
                             ErrorCode::kKmsInvalidState,
                             ErrorCode::kKmsAccessDenied,
                             ErrorCode::kKmsNotFound,
                             ErrorCode::kKmsOptInRequired,
                             ErrorCode::kKmsThrottling};
  for (ErrorCode code : codes) {
    const absl::Status s = MakeError(code, "message");
    CHECK_FALSE(s.ok());
    CHECK(GetErrorCode(s) == code);
    CHECK(s.message() == "message");
  }
}

TEST_CASE("error names are Kinesis' names", "[error]") {
  CHECK(ErrorCodeName(ErrorCode::kInvalidArgument) == "InvalidArgument");
  CHECK(ErrorCodeName(ErrorCode::kResourceNotFound) == "ResourceNotFound");
  CHECK(ErrorCodeExceptionName(ErrorCode::kCodeValidation) == "CodeValidationException");
  CHECK(ErrorCodeExceptionName(ErrorCode::kKmsDisabled) == "KMSDisabledException");
  CHECK(ErrorCodeExceptionName(ErrorCode::kKmsInvalidState) == "KMSInvalidStateException");
  CHECK(ErrorCodeExceptionName(ErrorCode::kKmsAccessDenied) == "KMSAccessDeniedException");
  CHECK(ErrorCodeExceptionName(ErrorCode::kKmsNotFound) == "KMSNotFoundException");
  CHECK(ErrorCodeExceptionName(ErrorCode::kKmsOptInRequired) == "KMSOptInRequired");
  CHECK(ErrorCodeExceptionName(ErrorCode::kKmsThrottling) == "KMSThrottlingException");
  CHECK(ErrorCodeName(ErrorCode::kResourceInUse) == "ResourceInUse");
  CHECK(ErrorCodeName(ErrorCode::kLimitExceeded) == "LimitExceeded");
  CHECK(ErrorCodeName(ErrorCode::kProvisionedThroughputExceeded) ==
        "ProvisionedThroughputExceeded");
  CHECK(ErrorCodeName(ErrorCode::kExpiredIterator) == "ExpiredIterator");
  CHECK(ErrorCodeName(ErrorCode::kExpiredNextToken) == "ExpiredNextToken");
  CHECK(ErrorCodeName(ErrorCode::kInternalFailure) == "InternalFailure");
  CHECK(ErrorCodeName(ErrorCode::kValidation) == "Validation");
  CHECK(ErrorCodeName(ErrorCode::kOk) == "Ok");
  CHECK(ErrorCodeExceptionName(ErrorCode::kInvalidArgument) == "InvalidArgumentException");
  CHECK(ErrorCodeExceptionName(ErrorCode::kInternalFailure) == "InternalFailure");
  CHECK(ErrorCodeExceptionName(ErrorCode::kProvisionedThroughputExceeded) ==
        "ProvisionedThroughputExceededException");
}

TEST_CASE("canonical codes map to the closest Kinesis error", "[error]") {
  CHECK(GetErrorCode(absl::OkStatus()) == ErrorCode::kOk);
  CHECK(GetErrorCode(absl::InvalidArgumentError("x")) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(absl::NotFoundError("x")) == ErrorCode::kResourceNotFound);
  CHECK(GetErrorCode(absl::InternalError("x")) == ErrorCode::kInternalFailure);
  CHECK(GetErrorCode(absl::CancelledError("x")) == ErrorCode::kUnknown);
  // Codes that share a canonical code stay apart through the payload.
  CHECK(GetErrorCode(ValidationError("x")) == ErrorCode::kValidation);
  CHECK(ValidationError("x").code() == absl::StatusCode::kInvalidArgument);
  CHECK(GetErrorCode(ProvisionedThroughputExceededError("x")) ==
        ErrorCode::kProvisionedThroughputExceeded);
  CHECK(GetErrorCode(LimitExceededError("x")) == ErrorCode::kLimitExceeded);
}

TEST_CASE("MakeError never makes an OK status", "[error]") {
  const absl::Status s = MakeError(ErrorCode::kOk, "oops");
  CHECK_FALSE(s.ok());
  CHECK(GetErrorCode(s) == ErrorCode::kInternalFailure);
}

}  // namespace
}  // namespace rill
