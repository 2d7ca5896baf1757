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
#include "deliver/destination.h"
#include "rill/deliver/destinations.h"

namespace rill::deliver_internal {

// What a prefix's expressions need from the delivery stream.
struct PrefixNeeds {
  std::vector<std::string> query_keys;   // !{partitionKeyFromQuery:k}, in order of appearance
  std::vector<std::string> lambda_keys;  // !{partitionKeyFromLambda:k}
  bool dynamic_partitioning() const { return !query_keys.empty() || !lambda_keys.empty(); }
};

// Checks Prefix and ErrorOutputPrefix by Firehose's rules (kinesis-reference §10.3; the message
// names the rule) and returns what the prefix needs. kInvalidArgument. Besides Firehose's rules
// (object_key.h): CustomTimeZone must be a known zone (empty = UTC); the fixed parts of each
// prefix must evaluate to at most 512 characters (names at their longest, the longest
// error-output-type) and make keys a directory can hold (no '.' or '..' or empty segment, no
// leading '/', nothing under .rill-staging; CheckObjectKey).
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
// (<stream>-<version>-<time>-<uuid>, uncompressed, no extension), published atomically as the
// object store destination publishes.
//
// A line holds, in this order: "attemptsMade" (integer), "arrivalTimestamp" (epoch ms),
// "errorCode", "errorMessage", "attemptEndingTimestamp" (epoch ms), "rawData" (base64) and, only
// when not empty, "lambdaArn". Strings are JSON-escaped (control characters as \u00XX); bytes that
// are not UTF-8 become U+FFFD.
//
// Thread safety: Write is thread-safe (calls are serialised).
class ErrorOutputWriter {
 public:
  // kInvalidArgument for a bad prefix (it must contain !{firehose:error-output-type}, or be empty:
  // then "<type>/" + the default time prefix; see EffectiveErrorOutputPrefix) or time zone;
  // kInternalFailure if the directory cannot be made. Like the destination's Open, it creates
  // .rill-staging and removes this stream's error-output leftovers from it. As in Firehose, an
  // ErrorOutputPrefix without a timestamp expression gets none appended.
  static absl::StatusOr<std::unique_ptr<ErrorOutputWriter>> Open(std::string directory,
                                                                 std::string prefix,
                                                                 std::string custom_time_zone,
                                                                 std::string stream_name);
  virtual ~ErrorOutputWriter() = default;
  // One object with every record, named after the oldest arrival among them (nothing for no
  // records). kInvalidArgument if `error_output_type` makes a key the directory cannot hold.
  // kInternalFailure naming errno's text (ENOSPC: "No space left on device") when it cannot be
  // written; nothing is visible then.
  virtual absl::Status Write(std::string_view error_output_type,
                             absl::Span<const FailedRecord> records) = 0;
};

// The object store destination. Open() checks the options (ValidatePrefixes, FileExtension, and
// that the object names fit: the stream name and extension in one path segment of at most 255
// bytes), creates the directory and <directory>/.rill-staging, and removes from the latter what a
// crash of this stream left: its temporary files are named data~<stream name>~<uuid>.tmp (the
// error output's error~<stream name>~<uuid>.tmp), and other streams' are left alone, as several
// streams may share a directory the way they share a bucket.
//
// Each Deliver() writes one object: the batch's record data concatenated as is (Firehose adds no
// delimiter; the AppendDelimiterToRecord processor does), compressed, under the key Firehose would
// give it (object_key.h), published atomically: written to <directory>/.rill-staging/, fsynced,
// its key's directories created and made durable, renamed into place, its directory fsynced.
// Readers see a whole object or none; .rill-staging is the only entry of the directory that is not
// part of a key, and readers must skip it.
//
// Attempts:
//   kRetryable "S3.WriteFailed": the object could not be written (the message names the path and
//     errno's text, e.g. "No space left on device"); nothing of it is visible. retry_duration()
//     is infinite: the core retries until it succeeds, as Firehose does for S3 (within the
//     source's retention).
//   kPermanent "DynamicPartitioning.MissingPartitionKey": the prefix names a partition key the
//     batch does not have.
//   kPermanent "DynamicPartitioning.InvalidPartitionKey": a partition key's value makes a key that
//     cannot be a path under the directory (a '.' or '..' segment, an empty segment as in "a//b",
//     a leading '/', a NUL, a segment over 255 bytes; see CheckObjectKey).
//   kPermanent "S3.InvalidPrefix": the evaluated prefix is longer than 512 characters.
//   kPermanent "S3.InvalidKey": the same as InvalidPartitionKey without partition keys (Open's
//     checks make it unreachable).
//   kPermanent "S3.CompressionFailed": the compression library failed.
//   kPermanent "S3.InvalidBatch": a record lies outside the batch's arena (a bug of the core).
// metric_name() is "S3". error_output_type() is "s3-failed", documented but never used: the core
// never gives up on this destination.
//
// Thread safety: as Destination (one call at a time). Deliver reuses its buffers, so a steady
// stream of batches does not allocate them anew.
std::unique_ptr<Destination> MakeObjectStoreDestination(ObjectStoreDestination options,
                                                        std::string stream_name);

// The prefix the error output of an object store destination uses, for ErrorOutputWriter::Open:
// options.error_output_prefix, or when it is empty Firehose's default
// "<prefix>[/]!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH/}" (a literal prefix
// "myFirehosePrefix" gives "myFirehosePrefix/processing-failed/2018/08/27/00/").
// REQUIRES: ValidatePrefixes accepted the options' prefixes.
std::string EffectiveErrorOutputPrefix(const ObjectStoreDestination& options);

// Test hook, process-wide: while `error` is not 0, every object write (destination and error
// output) writes half of the object to its staging file and then fails with errno `error`, as a
// full disk would. 0 turns it off. Thread-safe.
void SetObjectStoreWriteFaultForTesting(int error);

}  // namespace rill::deliver_internal

#endif  // RILL_SRC_DELIVER_OBJECT_STORE_H_
