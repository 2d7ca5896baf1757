// The object store destination (S3's role: a directory tree), Firehose's object keys, atomic
// publishing, and the error output's failed-record documents.
#ifndef RILL_SRC_DELIVER_OBJECT_STORE_H_
#define RILL_SRC_DELIVER_OBJECT_STORE_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "rill/deliver/destinations.h"
#include "deliver/destination.h"

namespace rill::deliver_internal {

// What a prefix's expressions need from the delivery stream.
struct PrefixNeeds {
  std::vector<std::string> query_keys;   // !{partitionKeyFromQuery:k}, in order of appearance
  std::vector<std::string> lambda_keys;  // !{partitionKeyFromLambda:k}
  bool dynamic_partitioning() const { return !query_keys.empty() || !lambda_keys.empty(); }
};

// Checks Prefix and ErrorOutputPrefix by Firehose's rules (kinesis-reference §10.3; the message
// names the rule) and returns what the prefix needs. kInvalidArgument.
absl::StatusOr<PrefixNeeds> ValidatePrefixes(std::string_view prefix,
                                             std::string_view error_output_prefix,
                                             std::string_view custom_time_zone);

// One record the error output keeps: Firehose's failed-record document.
struct FailedRecord {
  int attempts_made = 0;
  absl::Time arrival;
  std::string error_code;
  std::string error_message;
  absl::Time attempt_ending;
  std::string raw_data;
  std::string lambda_arn;  // processing-failed only, empty otherwise
};

// Writes failed records as objects of JSON lines (one document per record) under
// `prefix` evaluated with !{firehose:error-output-type}, named as delivered objects are
// (<stream>-<version>-<time>-<uuid>, uncompressed).
class ErrorOutputWriter {
 public:
  // kInvalidArgument for a bad prefix (it must contain !{firehose:error-output-type}, or be empty:
  // then "<type>/" + the default time prefix); kInternalFailure if the directory cannot be made.
  static absl::StatusOr<std::unique_ptr<ErrorOutputWriter>> Open(std::string directory,
                                                                 std::string prefix,
                                                                 std::string custom_time_zone,
                                                                 std::string stream_name);
  virtual ~ErrorOutputWriter() = default;
  // One object with every record, named after the oldest arrival among them. kInternalFailure
  // naming errno's text (ENOSPC: "No space left on device") when it cannot be written; nothing is
  // visible then.
  virtual absl::Status Write(std::string_view error_output_type,
                             absl::Span<const FailedRecord> records) = 0;
};

// The object store destination. Open() creates the directory and clears its staging area.
std::unique_ptr<Destination> MakeObjectStoreDestination(ObjectStoreDestination options,
                                                        std::string stream_name);

}  // namespace rill::deliver_internal

#endif  // RILL_SRC_DELIVER_OBJECT_STORE_H_
