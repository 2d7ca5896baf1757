// Firehose's S3 object keys (kinesis-reference §10.3): the expressions of Prefix and
// ErrorOutputPrefix, their evaluation, the key suffix, and the checks that keep a key a safe path
// under the object store's directory.
//
// Example:
//   absl::StatusOr<KeyPrefix> p =
//       KeyPrefix::Parse("logs/!{partitionKeyFromQuery:team}", PrefixField::kPrefix);
//   // p->text() == "logs/!{partitionKeyFromQuery:team}/!{timestamp:yyyy/MM/dd/HH/}"
//   EvaluatedPrefix e = p->Evaluate(batch.oldest_arrival, zone, batch.partition_keys, "");
//   if (!e.ok()) return DeliveryAttempt::Permanent(e.error_code, e.error_message);
//   std::string key = e.prefix + ObjectKeySuffix("orders", batch.oldest_arrival, zone, ".gz");
//
// Thread safety: TimestampPattern and KeyPrefix are immutable after Parse; their const methods
// may be called from any thread. Random values come from a thread-local generator.
#ifndef RILL_SRC_DELIVER_OBJECT_KEY_H_
#define RILL_SRC_DELIVER_OBJECT_KEY_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "deliver/object_store.h"

namespace rill::deliver_internal {

// The API's limit on the Prefix and ErrorOutputPrefix fields, in characters (code points).
inline constexpr size_t kMaxPrefixLength = 1024;
// The limit on an evaluated prefix, in characters (code points).
inline constexpr size_t kMaxEvaluatedPrefixLength = 512;
// The longest path segment (a directory or file name) a key may have: Linux's NAME_MAX, in bytes.
inline constexpr size_t kMaxKeySegmentBytes = 255;
// The <stream version> of the suffix: rill has no UpdateDestination, so it stays 1.
inline constexpr int kDeliveryStreamVersion = 1;
// What an empty Prefix means and what a Prefix without a timestamp expression gets appended.
inline constexpr std::string_view kDefaultTimePrefix = "!{timestamp:yyyy/MM/dd/HH/}";
// The directory entry under the object store's directory that holds objects being written. It is
// the only entry there that is not an object (or a directory of a key); readers skip it, and no
// key may start with it.
inline constexpr std::string_view kStagingDirectoryName = ".rill-staging";

// Firehose's error codes for a batch whose key cannot be made (each a kPermanent attempt).
inline constexpr std::string_view kMissingPartitionKeyCode =
    "DynamicPartitioning.MissingPartitionKey";
inline constexpr std::string_view kInvalidPartitionKeyCode =
    "DynamicPartitioning.InvalidPartitionKey";
inline constexpr std::string_view kInvalidPrefixCode = "S3.InvalidPrefix";

// A Java DateTimeFormatter pattern, the value of !{timestamp:...}. Supported letters (count =
// how many times the letter repeats):
//   y, u   year (of era / proleptic): yy = 2 digits (2000-based); otherwise at least `count`
//          digits, and from yyyy on a '+' when the year needs more (Java's EXCEEDS_PAD)
//   M      month: M, MM numeric; MMM "Jan"; MMMM "January"; MMMMM "J"
//   d      day of month (d, dd);  D  day of year (D, DD, DDD)
//   H      hour 0-23;  h  hour 1-12;  m  minute;  s  second (1 or 2 letters each)
//   S      fraction of second, `count` digits (1-9), truncated
//   E      day of week: E, EE, EEE "Mon"; EEEE "Monday"; EEEEE "M"
//   a      "AM" / "PM"
// Text in single quotes is literal ('' is a quote, inside or outside quotes); '[' and ']'
// (optional sections, which always print since every field is known) are dropped; '#', '{' and
// '}' are reserved; any other non-letter is literal. Any other letter, or too many of one, is
// kInvalidArgument naming it. English names, as Firehose's default locale.
class TimestampPattern {
 public:
  static absl::StatusOr<TimestampPattern> Parse(std::string_view pattern);

  // Appends the time `civil` (which holds a time in some zone) formatted by the pattern.
  void Format(const absl::TimeZone::CivilInfo& civil, std::string* out) const;

 private:
  struct Token {
    char letter = 0;  // 0: `literal`
    int count = 0;
    std::string literal;
  };
  std::vector<Token> tokens_;
};

// Formats `time` in `zone` by a DateTimeFormatter pattern (see TimestampPattern).
absl::StatusOr<std::string> FormatTimestamp(std::string_view pattern, absl::Time time,
                                            absl::TimeZone zone);

enum class PrefixField { kPrefix, kErrorOutputPrefix };

// An evaluated prefix, or why the batch cannot have one (error_code is one of the codes above).
struct EvaluatedPrefix {
  std::string prefix;
  std::string error_code;
  std::string error_message;
  bool ok() const { return error_code.empty(); }
};

// A parsed Prefix or ErrorOutputPrefix.
class KeyPrefix {
 public:
  // Parses one field by its own rules (ValidatePrefixes adds the rules between the two fields):
  // at most kMaxPrefixLength characters; "!{" only as the start of a well-formed expression of a
  // known namespace and value; a Prefix must not hold !{firehose:error-output-type}; an
  // ErrorOutputPrefix must hold it and no partitionKey expression. A Prefix gets Firehose's
  // defaults: empty means kDefaultTimePrefix, and one without a timestamp expression gets
  // kDefaultTimePrefix appended (after a '/' unless it ends with one). An ErrorOutputPrefix is
  // taken as is; an empty one is kInvalidArgument here (see DefaultErrorOutputPrefix).
  static absl::StatusOr<KeyPrefix> Parse(std::string_view text, PrefixField field);

  // The prefix with the defaults applied.
  const std::string& text() const { return text_; }
  const PrefixNeeds& needs() const { return needs_; }

  // Evaluates the prefix: every timestamp expression at `time` in `zone`, a new random string for
  // each !{firehose:random-string}, `error_output_type` for !{firehose:error-output-type}, and the
  // partition keys by name from `partition_keys` (query and Lambda keys share one list). Fails
  // with kMissingPartitionKeyCode when a key is not in the list and kInvalidPrefixCode when the
  // result has more than kMaxEvaluatedPrefixLength characters. Allocates the result.
  EvaluatedPrefix Evaluate(absl::Time time, absl::TimeZone zone,
                           absl::Span<const std::pair<std::string, std::string>> partition_keys,
                           std::string_view error_output_type) const;

 private:
  enum class Kind {
    kLiteral,
    kTimestamp,
    kRandomString,
    kErrorOutputType,
    kQueryKey,
    kLambdaKey,
  };
  struct Part {
    Kind kind = Kind::kLiteral;
    std::string text;  // the literal, the timestamp pattern or the partition key's name
    TimestampPattern pattern;
  };
  std::vector<Part> parts_;
  std::string text_;
  PrefixNeeds needs_;
};

// Whether `text` holds any expression (any "!{").
bool HasExpressions(std::string_view text);

// Firehose's ErrorOutputPrefix when the field is empty (allowed only when Prefix has no
// expressions): "<Prefix>[/]<error-output-type>/yyyy/MM/dd/HH/", i.e.
// "myFirehosePrefix/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH/}", and for an empty
// Prefix "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH/}".
std::string DefaultErrorOutputPrefix(std::string_view literal_prefix);

// The key suffix "<stream name>-<version>-<yyyy>-<MM>-<dd>-<HH>-<mm>-<ss>-<uuid><extension>" for
// `time` in `zone`, with a new random UUID.
std::string ObjectKeySuffix(std::string_view stream_name, absl::Time time, absl::TimeZone zone,
                            std::string_view extension);

// A random version-4 UUID, lowercase ("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b").
std::string RandomUuid();
// Firehose's random-string: 11 characters of [a-zA-Z0-9].
std::string RandomString();

// kInvalidArgument naming the problem unless `key` can be a file's path under the object store's
// directory: not empty, no NUL, no leading '/', no segment that is empty ("a//b", which S3 would
// keep but a file system collapses), "." or "..", none longer than kMaxKeySegmentBytes, and not
// under kStagingDirectoryName.
absl::Status CheckObjectKey(std::string_view key);

// CustomTimeZone: an IANA name ("America/New_York"); empty means UTC. kInvalidArgument for an
// unknown zone.
absl::StatusOr<absl::TimeZone> LoadCustomTimeZone(std::string_view name);

// FileExtension: empty, or '.' then 1-127 characters of 0-9, a-z and !-_.*'() (Firehose's
// pattern). kInvalidArgument otherwise.
absl::Status CheckFileExtension(std::string_view extension);

// The number of characters (code points) of `s`; an invalid UTF-8 byte counts as one.
size_t CharacterCount(std::string_view s);

}  // namespace rill::deliver_internal

#endif  // RILL_SRC_DELIVER_OBJECT_KEY_H_
