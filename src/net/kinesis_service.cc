#include "net/kinesis_service.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "base/strings.h"
#include "base/utf.h"
#include "net/json.h"
#include "rill/base/error.h"

namespace rill::net {
namespace {

using internal::ToAbsl;
using simdjson::dom::element;
using simdjson::dom::element_type;

// ---------------------------------------------------------------------------------------------
// Errors on the wire.

// A status may carry the exact wire error (for the protocol errors that are not rill ErrorCodes:
// SerializationException, UnknownOperationException) as a payload "<type>\n<message key>", where
// the key is "message", "Message" (Kinesis' spelling for type errors) or "" (no message at all,
// as Kinesis answers malformed JSON).
constexpr char kWireErrorUrl[] = "rill.net/wire-error";

absl::Status WireError(absl::StatusCode code, std::string_view type, std::string_view message_key,
                       std::string_view message) {
  absl::Status status(code, ToAbsl(message));
  status.SetPayload(kWireErrorUrl,
                    absl::Cord(absl::StrCat(ToAbsl(type), "\n", ToAbsl(message_key))));
  return status;
}

absl::Status SerializationError(std::string_view message) {
  return WireError(absl::StatusCode::kInvalidArgument, "SerializationException", "Message",
                   message);
}

absl::Status MalformedBodyError() {
  return WireError(absl::StatusCode::kInvalidArgument, "SerializationException", "", "");
}

absl::Status UnknownOperationError(std::string_view message = "") {
  return WireError(absl::StatusCode::kUnimplemented, "UnknownOperationException",
                   message.empty() ? "" : "message", message);
}

// ---------------------------------------------------------------------------------------------
// Reading members (the type phase). Kinesis checks every member's JSON type before any value
// constraint, and reports the first type error as a SerializationException; a getter that finds
// one records it and every later getter returns nothing. null counts as absent; unknown members
// are ignored.

const char* TypeErrorForContainer(element_type t) {
  return t == element_type::ARRAY ? "Start of list found where not expected"
                                  : "Start of structure or map found where not expected.";
}

class Reader {
 public:
  Reader(simdjson::dom::object object, absl::Status* error) : object_(object), error_(error) {}

  bool failed() const { return !error_->ok(); }

  std::optional<element> Get(std::string_view name) const {
    if (failed()) return std::nullopt;
    element e;
    if (object_.at_key(name).get(e) != simdjson::SUCCESS) return std::nullopt;
    if (e.type() == element_type::NULL_VALUE) return std::nullopt;
    return e;
  }

  std::optional<std::string_view> String(std::string_view name) const {
    std::optional<element> e = Get(name);
    if (!e) return std::nullopt;
    return StringValue(*e);
  }

  std::optional<std::string_view> StringValue(element e) const {
    switch (e.type()) {
      case element_type::STRING:
        return std::string_view(e.get_string().value_unsafe());
      case element_type::BOOL:
        Fail("class java.lang.Boolean can not be converted to an String");
        return std::nullopt;
      case element_type::ARRAY:
      case element_type::OBJECT:
        Fail(TypeErrorForContainer(e.type()));
        return std::nullopt;
      default:
        Fail(
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted "
            "to an String");
        return std::nullopt;
    }
  }

  // Kinesis' Integer (kLong = false: capped at 2^31 - 1, as Kinesis truncates) or Long; a
  // fractional number is floored.
  std::optional<int64_t> Integer(std::string_view name, bool is_long = false) const {
    std::optional<element> e = Get(name);
    if (!e) return std::nullopt;
    const char* type_name = is_long ? "Long" : "Integer";
    int64_t value;
    switch (e->type()) {
      case element_type::INT64:
        value = e->get_int64().value_unsafe();
        break;
      case element_type::UINT64:
        value = INT64_MAX;
        break;
      case element_type::DOUBLE: {
        const double d = std::floor(e->get_double().value_unsafe());
        value = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : static_cast<int64_t>(d);
        break;
      }
      case element_type::BOOL:
        Fail(absl::StrCat("class java.lang.Boolean can not be converted to an ", type_name));
        return std::nullopt;
      case element_type::STRING:
        Fail(absl::StrCat("class java.lang.String can not be converted to an ", type_name));
        return std::nullopt;
      default:
        Fail(TypeErrorForContainer(e->type()));
        return std::nullopt;
    }
    if (!is_long) value = std::min<int64_t>(value, INT32_MAX);
    return value;
  }

  std::optional<bool> Boolean(std::string_view name) const {
    std::optional<element> e = Get(name);
    if (!e) return std::nullopt;
    switch (e->type()) {
      case element_type::BOOL:
        return e->get_bool().value_unsafe();
      case element_type::STRING:
        Fail(absl::StrCat("'", absl::AsciiStrToUpper(ToAbsl(e->get_string().value_unsafe())),
                          "' can not be converted to an Boolean"));
        return std::nullopt;
      case element_type::ARRAY:
      case element_type::OBJECT:
        Fail(TypeErrorForContainer(e->type()));
        return std::nullopt;
      default:
        Fail(
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted "
            "to an Boolean");
        return std::nullopt;
    }
  }

  // Epoch seconds (a JSON number, fractional for milliseconds).
  std::optional<absl::Time> Timestamp(std::string_view name) const {
    std::optional<element> e = Get(name);
    if (!e) return std::nullopt;
    return TimestampValue(*e);
  }

  std::optional<absl::Time> TimestampValue(element e) const {
    double seconds;
    switch (e.type()) {
      case element_type::INT64:
        seconds = static_cast<double>(e.get_int64().value_unsafe());
        break;
      case element_type::UINT64:
        seconds = static_cast<double>(e.get_uint64().value_unsafe());
        break;
      case element_type::DOUBLE:
        seconds = e.get_double().value_unsafe();
        break;
      case element_type::BOOL:
        Fail("class java.lang.Boolean can not be converted to milliseconds since epoch");
        return std::nullopt;
      case element_type::STRING:
        Fail("class java.lang.String can not be converted to milliseconds since epoch");
        return std::nullopt;
      default:
        Fail(TypeErrorForContainer(e.type()));
        return std::nullopt;
    }
    // Beyond a few thousand years the microsecond count would overflow: clamp, the stream then
    // judges the time (too far in the future, or before everything).
    seconds = std::clamp(seconds, -1e11, 1e11);
    return absl::FromUnixMicros(std::llround(seconds * 1e6));
  }

  // A base64 blob, decoded into *out. Returns false if absent or on error.
  bool Blob(std::string_view name, std::string* out) const {
    std::optional<element> e = Get(name);
    if (!e) return false;
    return BlobValue(*e, out);
  }

  bool BlobValue(element e, std::string* out) const {
    switch (e.type()) {
      case element_type::STRING:
        break;
      case element_type::BOOL:
        Fail("class java.lang.Boolean can not be converted to a Blob");
        return false;
      case element_type::ARRAY:
      case element_type::OBJECT:
        Fail(TypeErrorForContainer(e.type()));
        return false;
      default:
        Fail(
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted "
            "to a Blob");
        return false;
    }
    const std::string_view text = e.get_string().value_unsafe();
    if (absl::Status s = DecodeBase64Strict(text, out); !s.ok()) {
      Fail(absl::StrCat("'", ToAbsl(text), "' can not be converted to a Blob: ", s.message()));
      return false;
    }
    return true;
  }

  std::optional<simdjson::dom::array> List(std::string_view name) const {
    std::optional<element> e = Get(name);
    if (!e) return std::nullopt;
    if (e->type() == element_type::ARRAY) return e->get_array().value_unsafe();
    Fail(e->type() == element_type::OBJECT ? "Start of structure or map found where not expected."
                                           : "Expected list or null");
    return std::nullopt;
  }

  // A structure (kMap = false) or a map.
  std::optional<simdjson::dom::object> Object(std::string_view name, bool is_map = false) const {
    std::optional<element> e = Get(name);
    if (!e) return std::nullopt;
    if (e->type() == element_type::OBJECT) return e->get_object().value_unsafe();
    if (e->type() == element_type::ARRAY) {
      Fail("Start of list found where not expected");
    } else {
      Fail(is_map ? "Expected map or null" : "Expected null");
    }
    return std::nullopt;
  }

  // A member of a list of structures: the element must be an object.
  std::optional<simdjson::dom::object> StructureValue(element e) const {
    if (failed()) return std::nullopt;
    if (e.type() == element_type::OBJECT) return e.get_object().value_unsafe();
    if (e.type() == element_type::NULL_VALUE) return std::nullopt;
    Fail(e.type() == element_type::ARRAY ? "Start of list found where not expected"
                                         : "Expected null");
    return std::nullopt;
  }

  void Fail(std::string_view message) const {
    if (error_->ok()) *error_ = SerializationError(message);
  }

  absl::Status* error() const { return error_; }

 private:
  simdjson::dom::object object_;
  absl::Status* error_;
};

// ---------------------------------------------------------------------------------------------
// Constraints (the validation phase): Kinesis' "N validation errors detected: ..." message, at
// most 10 errors, in the order of the shape's members and, per member, of its constraints.

bool IsNameText(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// 0|([1-9]\d{0,max_more_digits})
bool IsDecimal(std::string_view s, size_t max_more_digits) {
  if (s == "0") return true;
  return AllDigits(s) && s[0] != '0' && s.size() <= max_more_digits + 1;
}

bool IsWhitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// arn:aws.*:kinesis:.*:\d{12}:stream/\S+ (the whole string).
bool IsStreamArnText(std::string_view s) {
  if (!s.starts_with("arn:aws")) return false;
  const size_t kinesis = s.find(":kinesis:", 7);
  if (kinesis == std::string_view::npos) return false;
  for (size_t q = s.find(":stream/", kinesis + 9); q != std::string_view::npos;
       q = s.find(":stream/", q + 1)) {
    if (q < kinesis + 9 + 12 || s[q - 13] != ':' || q - 13 < kinesis + 8) continue;
    if (!AllDigits(s.substr(q - 12, 12))) continue;
    const std::string_view rest = s.substr(q + 8);
    if (!rest.empty() && std::none_of(rest.begin(), rest.end(), IsWhitespace)) return true;
  }
  return false;
}

// ^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+\/consumer\/[a-zA-Z0-9_.-]+:[0-9]+
// (a prefix match, as the pattern has no $; checked loosely: the structure ConsumerArnParts
// parses).
struct ConsumerArnParts {
  std::string_view stream_arn;
  std::string_view consumer_name;
  int64_t creation_seconds = 0;
};
std::optional<ConsumerArnParts> ParseConsumerArn(std::string_view s) {
  const size_t consumer = s.rfind("/consumer/");
  if (consumer == std::string_view::npos) return std::nullopt;
  ConsumerArnParts parts;
  parts.stream_arn = s.substr(0, consumer);
  const std::string_view tail = s.substr(consumer + 10);
  const size_t colon = tail.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  parts.consumer_name = tail.substr(0, colon);
  const std::string_view seconds = tail.substr(colon + 1);
  if (!IsStreamArnText(parts.stream_arn) || !IsNameText(parts.consumer_name) ||
      !AllDigits(seconds) || !absl::SimpleAtoi(ToAbsl(seconds), &parts.creation_seconds)) {
    return std::nullopt;
  }
  return parts;
}

class Validator {
 public:
  bool ok() const { return errors_.empty(); }

  absl::Status status() const {
    const std::string message =
        absl::StrCat(errors_.size(), " validation error", errors_.size() > 1 ? "s" : "",
                     " detected: ", absl::StrJoin(errors_, "; "));
    return WireError(absl::StatusCode::kInvalidArgument, "ValidationException", "message", message);
  }

  // `value` is what Kinesis prints: the text in quotes, or null.
  void Fail(std::optional<std::string_view> value, std::string_view path,
            std::string_view constraint) {
    if (errors_.size() >= 10) return;
    errors_.push_back(
        absl::StrCat("Value ", value ? absl::StrCat("'", ToAbsl(*value), "'") : "null", " at '",
                     ToAbsl(path), "' failed to satisfy constraint: ", ToAbsl(constraint)));
  }

  void NotNull(bool present, std::string_view path) {
    if (!present) Fail(std::nullopt, path, "Member must not be null");
  }

  enum class Pattern { kNone, kName, kHashKey, kSequenceNumber, kStreamArn, kConsumerArn };

  // A string member: not null (if required), pattern, length (in UTF-16 units, as Kinesis
  // counts).
  void Text(std::optional<std::string_view> v, std::string_view path, bool required,
            Pattern pattern, int64_t min_length, int64_t max_length) {
    if (required) NotNull(v.has_value(), path);
    if (!v) return;
    switch (pattern) {
      case Pattern::kNone:
        break;
      case Pattern::kName:
        if (!IsNameText(*v)) {
          Fail(v, path, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
        }
        break;
      case Pattern::kHashKey:
        if (!IsDecimal(*v, 38)) {
          Fail(v, path, "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})");
        }
        break;
      case Pattern::kSequenceNumber:
        if (!IsDecimal(*v, 128)) {
          Fail(v, path, "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})");
        }
        break;
      case Pattern::kStreamArn:
        if (!IsStreamArnText(*v)) {
          Fail(v, path,
               "Member must satisfy regular expression pattern: "
               "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+");
        }
        break;
      case Pattern::kConsumerArn:
        if (!ParseConsumerArn(*v)) {
          Fail(v, path,
               "Member must satisfy regular expression pattern: "
               "^(arn):aws.*:kinesis:.*:\\d{12}:.*stream\\/[a-zA-Z0-9_.-]+\\/consumer\\/"
               "[a-zA-Z0-9_.-]+:[0-9]+");
        }
        break;
    }
    const int64_t length = Length(*v);
    if (min_length > 0 && length < min_length) {
      Fail(v, path, absl::StrCat("Member must have length greater than or equal to ", min_length));
    }
    if (max_length > 0 && length > max_length) {
      Fail(v, path, absl::StrCat("Member must have length less than or equal to ", max_length));
    }
  }

  void Enum(std::optional<std::string_view> v, std::string_view path, bool required,
            absl::Span<const std::string_view> values) {
    if (required) NotNull(v.has_value(), path);
    if (!v) return;
    if (std::find(values.begin(), values.end(), *v) == values.end()) {
      std::vector<absl::string_view> names;
      for (std::string_view n : values) names.push_back(ToAbsl(n));
      Fail(v, path,
           absl::StrCat("Member must satisfy enum value set: [", absl::StrJoin(names, ", "), "]"));
    }
  }

  void Number(std::optional<int64_t> v, std::string_view path, bool required,
              std::optional<int64_t> min, std::optional<int64_t> max) {
    if (required) NotNull(v.has_value(), path);
    if (!v) return;
    const std::string text = absl::StrCat(*v);
    if (min && *v < *min) {
      Fail(text, path, absl::StrCat("Member must have value greater than or equal to ", *min));
    }
    if (max && *v > *max) {
      Fail(text, path, absl::StrCat("Member must have value less than or equal to ", *max));
    }
  }

  static int64_t Length(std::string_view s) {
    const int units = internal::Utf16Length(s);
    return units >= 0 ? units : static_cast<int64_t>(s.size());
  }

 private:
  std::vector<std::string> errors_;
};

using Pattern = Validator::Pattern;

// ---------------------------------------------------------------------------------------------
// Writing responses.

std::string_view StatusName(StreamStatus s) { return StreamStatusName(s); }

void WriteHashKeyRange(JsonWriter& w, const HashKeyRange& range) {
  w.Key("HashKeyRange");
  w.BeginObject();
  w.Member("StartingHashKey", range.starting_hash_key.ToString());
  w.Member("EndingHashKey", range.ending_hash_key.ToString());
  w.EndObject();
}

void WriteShard(JsonWriter& w, const ShardDescription& shard) {
  w.BeginObject();
  w.Member("ShardId", shard.shard_id.ToString());
  if (shard.parent_shard_id) w.Member("ParentShardId", shard.parent_shard_id->ToString());
  if (shard.adjacent_parent_shard_id) {
    w.Member("AdjacentParentShardId", shard.adjacent_parent_shard_id->ToString());
  }
  WriteHashKeyRange(w, shard.hash_key_range);
  w.Key("SequenceNumberRange");
  w.BeginObject();
  w.Member("StartingSequenceNumber",
           shard.sequence_number_range.starting_sequence_number.ToString());
  if (shard.sequence_number_range.ending_sequence_number) {
    w.Member("EndingSequenceNumber",
             shard.sequence_number_range.ending_sequence_number->ToString());
  }
  w.EndObject();
  w.EndObject();
}

void WriteChildShards(JsonWriter& w, const std::vector<ChildShard>& children) {
  w.Key("ChildShards");
  w.BeginArray();
  for (const ChildShard& child : children) {
    w.BeginObject();
    w.Member("ShardId", child.shard_id.ToString());
    w.Key("ParentShards");
    w.BeginArray();
    for (ShardId parent : child.parent_shards) w.String(parent.ToString());
    w.EndArray();
    WriteHashKeyRange(w, child.hash_key_range);
    w.EndObject();
  }
  w.EndArray();
}

void WriteRecords(JsonWriter& w, const std::vector<Record>& records) {
  w.Key("Records");
  w.BeginArray();
  for (const Record& r : records) {
    w.BeginObject();
    w.Member("SequenceNumber", r.sequence_number.ToString());
    w.Key("ApproximateArrivalTimestamp");
    w.EpochSeconds(r.approximate_arrival_timestamp);
    w.Key("Data");
    w.Base64(r.data);
    w.Member("PartitionKey", r.partition_key);
    w.EndObject();
  }
  w.EndArray();
}

void WriteStreamMode(JsonWriter& w, CapacityMode mode) {
  w.Key("StreamModeDetails");
  w.BeginObject();
  w.Member("StreamMode", CapacityModeName(mode));
  w.EndObject();
}

// EncryptionType, and KeyId when the stream is encrypted.
void WriteEncryption(JsonWriter& w, const StreamSummary& summary) {
  w.Member("EncryptionType", EncryptionTypeName(summary.encryption_type));
  if (summary.encryption_type != EncryptionType::kNone) w.Member("KeyId", summary.key_id);
}

void WriteEnhancedMonitoring(JsonWriter& w) {
  w.Key("EnhancedMonitoring");
  w.BeginArray();
  w.BeginObject();
  w.Key("ShardLevelMetrics");
  w.BeginArray();
  w.EndArray();
  w.EndObject();
  w.EndArray();
}

int64_t RetentionHours(const Stream& stream) { return absl::ToInt64Hours(stream.retention()); }

Response Ok(std::string body = {}) {
  Response r;
  r.body = std::move(body);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Paging tokens of ListStreams and ListStreamConsumers: base64("<issued unix ms>:<position>"),
// refused 5 minutes after issue as Kinesis' tokens are.

std::string MakeToken(absl::Time now, std::string_view position) {
  std::string out;
  AppendBase64(absl::StrCat(absl::ToUnixMillis(now), ":", ToAbsl(position)), &out);
  return out;
}

absl::StatusOr<std::string> OpenToken(std::string_view token, absl::Time now) {
  std::string decoded;
  int64_t issued_ms = 0;
  if (!DecodeBase64Strict(token, &decoded).ok()) return InvalidArgumentError("Invalid NextToken.");
  const size_t colon = decoded.find(':');
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(decoded.data(), colon), &issued_ms)) {
    return InvalidArgumentError("Invalid NextToken.");
  }
  if (now - absl::FromUnixMillis(issued_ms) > kNextTokenLifetime) {
    return ExpiredNextTokenError(
        "The timestamp in the NextToken is older than 300000 milliseconds: the token has "
        "expired.");
  }
  return decoded.substr(colon + 1);
}

// ---------------------------------------------------------------------------------------------
// The operations.

class Handler {
 public:
  Handler(const StreamRegistry& registry, simdjson::dom::object body, absl::Status* error)
      : registry_(registry), r_(body, error) {}

  // StreamName / StreamARN, read in the type phase.
  void ReadStream() {
    stream_name_ = r_.String("StreamName");
    stream_arn_ = r_.String("StreamARN");
  }
  // Their constraints, in the validation phase: one of them must be given.
  // (ListShards passes required = false: its NextToken may name the stream instead.)
  void ValidateStream(Validator& v, bool required = true) {
    v.Text(stream_name_, "streamName", required && !stream_arn_, Pattern::kName, 1, 128);
    v.Text(stream_arn_, "streamARN", false, Pattern::kStreamArn, 1, 2048);
  }
  bool named() const { return stream_name_ || stream_arn_; }
  // The stream the request names. Sets name_.
  absl::StatusOr<std::shared_ptr<Stream>> ResolveStream() {
    if (stream_arn_) {
      absl::StatusOr<std::string> from_arn = registry_.StreamNameFromArn(*stream_arn_);
      if (!from_arn.ok()) {
        if (GetErrorCode(from_arn.status()) == ErrorCode::kInvalidArgument) {
          return InvalidArgumentError(
              absl::StrCat("StreamARN ", ToAbsl(*stream_arn_), " is not a valid stream ARN."));
        }
        return from_arn.status();
      }
      if (stream_name_ && *stream_name_ != *from_arn) {
        return InvalidArgumentError(absl::StrCat("StreamARN ", ToAbsl(*stream_arn_),
                                                 " and StreamName ", ToAbsl(*stream_name_),
                                                 " name different streams."));
      }
      name_ = *from_arn;
    } else if (stream_name_) {
      name_ = std::string(*stream_name_);
    } else {
      // Validation refuses this first; kept so that no path dereferences an absent name.
      return InvalidArgumentError("Either StreamName or StreamARN must be provided.");
    }
    std::shared_ptr<Stream> stream = registry_.Find(name_);
    if (stream == nullptr) return ResourceNotFoundError(registry_.NotFoundMessage(name_));
    return stream;
  }

  const Reader& r() const { return r_; }
  const std::string& name() const { return name_; }

 protected:
  const StreamRegistry& registry_;
  Reader r_;
  std::optional<std::string_view> stream_name_;
  std::optional<std::string_view> stream_arn_;
  std::string name_;
};

#define RILL_RETURN_IF_ERROR(expr)     \
  do {                                 \
    absl::Status status_ = (expr);     \
    if (!status_.ok()) return status_; \
  } while (0)

#define RILL_ASSIGN_OR_RETURN_STREAM(var, handler)                              \
  absl::StatusOr<std::shared_ptr<Stream>> var##_or = (handler).ResolveStream(); \
  if (!var##_or.ok()) return var##_or.status();                                 \
  std::shared_ptr<Stream> var = std::move(*var##_or)

using Result = absl::StatusOr<std::string>;

std::optional<CapacityMode> ParseMode(std::optional<std::string_view> mode) {
  if (mode == "PROVISIONED") return CapacityMode::kProvisioned;
  if (mode == "ON_DEMAND") return CapacityMode::kOnDemand;
  return std::nullopt;
}

std::optional<ShardIteratorType> ParseIteratorType(std::string_view t) {
  if (t == "TRIM_HORIZON") return ShardIteratorType::kTrimHorizon;
  if (t == "LATEST") return ShardIteratorType::kLatest;
  if (t == "AT_SEQUENCE_NUMBER") return ShardIteratorType::kAtSequenceNumber;
  if (t == "AFTER_SEQUENCE_NUMBER") return ShardIteratorType::kAfterSequenceNumber;
  if (t == "AT_TIMESTAMP") return ShardIteratorType::kAtTimestamp;
  return std::nullopt;
}

constexpr std::string_view kIteratorTypes[] = {"AFTER_SEQUENCE_NUMBER", "LATEST", "AT_TIMESTAMP",
                                               "AT_SEQUENCE_NUMBER", "TRIM_HORIZON"};

class Service {
 public:
  explicit Service(StreamRegistry& registry) : registry_(registry) {}

  // Each operation: the body object in, the response body (empty for no output) or an error.
  Result CreateStream(simdjson::dom::object body, absl::Status* error);
  Result DeleteStream(simdjson::dom::object body, absl::Status* error);
  Result ListStreams(simdjson::dom::object body, absl::Status* error);
  Result DescribeStream(simdjson::dom::object body, absl::Status* error);
  Result DescribeStreamSummary(simdjson::dom::object body, absl::Status* error);
  Result DescribeLimits(simdjson::dom::object body, absl::Status* error);
  Result UpdateStreamMode(simdjson::dom::object body, absl::Status* error);
  Result ListShards(simdjson::dom::object body, absl::Status* error);
  Result PutRecord(simdjson::dom::object body, absl::Status* error);
  Result PutRecords(simdjson::dom::object body, absl::Status* error);
  Result GetShardIterator(simdjson::dom::object body, absl::Status* error);
  Result GetRecords(simdjson::dom::object body, absl::Status* error);
  Result SplitShard(simdjson::dom::object body, absl::Status* error);
  Result MergeShards(simdjson::dom::object body, absl::Status* error);
  Result UpdateShardCount(simdjson::dom::object body, absl::Status* error);
  Result IncreaseStreamRetentionPeriod(simdjson::dom::object body, absl::Status* error);
  Result DecreaseStreamRetentionPeriod(simdjson::dom::object body, absl::Status* error);
  Result StartStreamEncryption(simdjson::dom::object body, absl::Status* error);
  Result StopStreamEncryption(simdjson::dom::object body, absl::Status* error);
  Result AddTagsToStream(simdjson::dom::object body, absl::Status* error);
  Result ListTagsForStream(simdjson::dom::object body, absl::Status* error);
  Result RemoveTagsFromStream(simdjson::dom::object body, absl::Status* error);
  Result RegisterStreamConsumer(simdjson::dom::object body, absl::Status* error);
  Result DescribeStreamConsumer(simdjson::dom::object body, absl::Status* error);
  Result ListStreamConsumers(simdjson::dom::object body, absl::Status* error);
  Result DeregisterStreamConsumer(simdjson::dom::object body, absl::Status* error);
  absl::StatusOr<SubscribeStart> SubscribeToShard(simdjson::dom::object body, absl::Status* error);

 private:
  Result ChangeRetention(simdjson::dom::object body, absl::Status* error, bool increase);
  Result ChangeEncryption(simdjson::dom::object body, absl::Status* error, bool start);
  // A consumer named by ConsumerARN, or by StreamARN + ConsumerName.
  struct ConsumerRef {
    std::shared_ptr<Stream> stream;
    std::string stream_arn;
    ConsumerDescription consumer;
  };
  absl::StatusOr<ConsumerRef> ReadConsumerRef(simdjson::dom::object body, absl::Status* error);
  absl::StatusOr<ConsumerRef> FindConsumer(std::optional<std::string_view> stream_arn,
                                           std::optional<std::string_view> consumer_name,
                                           std::optional<std::string_view> consumer_arn);
  std::string ConsumerArn(std::string_view stream_arn, const ConsumerDescription& c) const {
    return absl::StrCat(ToAbsl(stream_arn), "/consumer/", c.name, ":",
                        absl::ToUnixSeconds(c.creation_time));
  }
  void WriteConsumer(JsonWriter& w, std::string_view stream_arn, const ConsumerDescription& c,
                     bool with_stream_arn) const {
    w.BeginObject();
    w.Member("ConsumerName", c.name);
    w.Member("ConsumerARN", ConsumerArn(stream_arn, c));
    w.Member("ConsumerStatus", ConsumerStatusName(c.status));
    w.Key("ConsumerCreationTimestamp");
    w.EpochSeconds(c.creation_time);
    if (with_stream_arn) w.Member("StreamARN", stream_arn);
    w.EndObject();
  }

  StreamRegistry& registry_;
};

Result Service::CreateStream(simdjson::dom::object body, absl::Status* error) {
  Reader r(body, error);
  const std::optional<int64_t> shard_count = r.Integer("ShardCount");
  const std::optional<std::string_view> name = r.String("StreamName");
  std::optional<std::string_view> mode_text;
  if (std::optional<simdjson::dom::object> details = r.Object("StreamModeDetails")) {
    mode_text = Reader(*details, error).String("StreamMode");
  }
  std::vector<std::pair<std::string, std::string>> tags;
  if (std::optional<simdjson::dom::object> tag_map = r.Object("Tags", /*is_map=*/true)) {
    for (auto [key, value] : *tag_map) {
      if (value.type() == element_type::NULL_VALUE) continue;
      std::optional<std::string_view> text = r.StringValue(value);
      if (!text) break;
      tags.emplace_back(std::string(key), std::string(*text));
    }
  }
  const std::optional<int64_t> max_record_kib = r.Integer("MaxRecordSizeInKiB");
  if (r.failed()) return *error;

  Validator v;
  const std::optional<CapacityMode> mode =
      mode_text ? ParseMode(mode_text) : std::optional<CapacityMode>(CapacityMode::kProvisioned);
  // ShardCount is required in provisioned mode (an on-demand stream sizes itself).
  v.Number(shard_count, "shardCount", mode == CapacityMode::kProvisioned, 1, 100000);
  v.Text(name, "streamName", true, Pattern::kName, 1, 128);
  if (mode_text) {
    v.Enum(mode_text, "streamModeDetails.streamMode", true, {"PROVISIONED", "ON_DEMAND"});
  }
  v.Number(max_record_kib, "maxRecordSizeInKiB", false, 1024, 10240);
  if (!v.ok()) return v.status();

  CreateStreamRequest request;
  request.name = std::string(*name);
  request.shard_count = static_cast<int>(shard_count.value_or(1));
  request.mode = *mode;
  if (max_record_kib) request.max_record_bytes = static_cast<size_t>(*max_record_kib) * 1024;
  request.tags = std::move(tags);
  absl::StatusOr<std::shared_ptr<Stream>> stream = registry_.CreateStream(std::move(request));
  if (!stream.ok()) return stream.status();
  return std::string();
}

Result Service::DeleteStream(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  h.ReadStream();
  const std::optional<bool> enforce = h.r().Boolean("EnforceConsumerDeletion");
  if (h.r().failed()) return *error;
  Validator v;
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);
  const std::vector<ConsumerDescription> consumers = stream->ListStreamConsumers();
  if (!consumers.empty()) {
    if (!enforce.value_or(false)) {
      return ResourceInUseError(absl::StrFormat(
          "Stream %s under account %s has registered consumers. Deregister them first, or set "
          "EnforceConsumerDeletion.",
          h.name(), registry_.account_id()));
    }
    // Their subscriptions end now (kResourceNotFound), as Kinesis ends them.
    for (const ConsumerDescription& c : consumers) {
      (void)stream->DeregisterStreamConsumer(c.name);
    }
  }
  RILL_RETURN_IF_ERROR(registry_.DeleteStream(h.name()));
  return std::string();
}

Result Service::ListStreams(simdjson::dom::object body, absl::Status* error) {
  Reader r(body, error);
  const std::optional<int64_t> limit = r.Integer("Limit");
  const std::optional<std::string_view> start = r.String("ExclusiveStartStreamName");
  const std::optional<std::string_view> token = r.String("NextToken");
  if (r.failed()) return *error;
  Validator v;
  v.Number(limit, "limit", false, 1, 10000);
  v.Text(start, "exclusiveStartStreamName", false, Pattern::kName, 1, 128);
  v.Text(token, "nextToken", false, Pattern::kNone, 1, 1048576);
  if (!v.ok()) return v.status();

  std::string after(start.value_or(""));
  if (token) {
    if (start) {
      return InvalidArgumentError(
          "NextToken and ExclusiveStartStreamName cannot be provided together.");
    }
    absl::StatusOr<std::string> position = OpenToken(*token, registry_.clock()->Now());
    if (!position.ok()) return position.status();
    after = std::move(*position);
  }
  // Kinesis returns at most 100 streams per call, whatever the Limit.
  const int page = static_cast<int>(std::min<int64_t>(limit.value_or(100), 100));
  bool has_more = false;
  const std::vector<std::string> names = registry_.ListNames(after, page, &has_more);

  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("StreamNames");
  w.BeginArray();
  for (const std::string& n : names) w.String(n);
  w.EndArray();
  w.Member("HasMoreStreams", has_more);
  if (has_more && !names.empty()) {
    w.Member("NextToken", MakeToken(registry_.clock()->Now(), names.back()));
  }
  w.Key("StreamSummaries");
  w.BeginArray();
  for (const std::string& n : names) {
    std::shared_ptr<Stream> stream = registry_.Find(n);
    if (stream == nullptr) continue;  // deleted since the listing
    const StreamSummary summary = stream->DescribeStreamSummary();
    w.BeginObject();
    w.Member("StreamName", n);
    w.Member("StreamARN", registry_.StreamArn(n));
    w.Member("StreamStatus", StatusName(summary.status));
    WriteStreamMode(w, summary.capacity_mode);
    w.Key("StreamCreationTimestamp");
    w.EpochSeconds(summary.creation_time);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

Result Service::DescribeStream(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  const std::optional<int64_t> limit = h.r().Integer("Limit");
  const std::optional<std::string_view> start = h.r().String("ExclusiveStartShardId");
  h.ReadStream();
  if (h.r().failed()) return *error;
  Validator v;
  v.Number(limit, "limit", false, 1, 10000);
  v.Text(start, "exclusiveStartShardId", false, Pattern::kName, 1, 128);
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);

  const std::vector<ShardDescription> shards = stream->ListShards();
  const StreamSummary summary = stream->DescribeStreamSummary();
  const size_t page = static_cast<size_t>(std::min<int64_t>(limit.value_or(100), 100));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("StreamDescription");
  w.BeginObject();
  w.Member("StreamName", h.name());
  w.Member("StreamARN", registry_.StreamArn(h.name()));
  w.Member("StreamStatus", StatusName(summary.status));
  WriteStreamMode(w, summary.capacity_mode);
  w.Key("Shards");
  w.BeginArray();
  size_t written = 0;
  bool has_more = false;
  for (const ShardDescription& shard : shards) {
    // Shard ids have a fixed width, so comparing their text orders them as Kinesis does.
    if (start && shard.shard_id.ToString() <= *start) continue;
    if (written == page) {
      has_more = true;
      break;
    }
    WriteShard(w, shard);
    ++written;
  }
  w.EndArray();
  w.Member("HasMoreShards", has_more);
  w.Member("RetentionPeriodHours", RetentionHours(*stream));
  w.Key("StreamCreationTimestamp");
  w.EpochSeconds(summary.creation_time);
  WriteEnhancedMonitoring(w);
  WriteEncryption(w, summary);
  w.EndObject();
  w.EndObject();
  return out;
}

Result Service::DescribeStreamSummary(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  h.ReadStream();
  if (h.r().failed()) return *error;
  Validator v;
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);
  const StreamSummary summary = stream->DescribeStreamSummary();
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("StreamDescriptionSummary");
  w.BeginObject();
  w.Member("StreamName", h.name());
  w.Member("StreamARN", registry_.StreamArn(h.name()));
  w.Member("StreamStatus", StatusName(summary.status));
  WriteStreamMode(w, summary.capacity_mode);
  w.Member("RetentionPeriodHours", RetentionHours(*stream));
  w.Key("StreamCreationTimestamp");
  w.EpochSeconds(summary.creation_time);
  WriteEnhancedMonitoring(w);
  WriteEncryption(w, summary);
  w.Member("OpenShardCount", summary.open_shard_count);
  w.Member("ConsumerCount", summary.consumer_count);
  w.Member("MaxRecordSizeInKiB", static_cast<int64_t>(summary.max_record_bytes / 1024));
  w.EndObject();
  w.EndObject();
  return out;
}

Result Service::DescribeLimits(simdjson::dom::object, absl::Status*) {
  const AccountLimits limits = registry_.DescribeLimits();
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Member("ShardLimit", limits.shard_limit);
  w.Member("OpenShardCount", limits.open_shard_count);
  w.Member("OnDemandStreamCount", limits.on_demand_stream_count);
  w.Member("OnDemandStreamCountLimit", limits.on_demand_stream_count_limit);
  w.EndObject();
  return out;
}

Result Service::UpdateStreamMode(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  h.ReadStream();
  std::optional<std::string_view> mode_text;
  const std::optional<simdjson::dom::object> details = h.r().Object("StreamModeDetails");
  if (details) mode_text = Reader(*details, error).String("StreamMode");
  if (h.r().failed()) return *error;
  Validator v;
  // UpdateStreamMode takes the ARN only.
  v.Text(h.r().String("StreamARN"), "streamARN", true, Pattern::kStreamArn, 1, 2048);
  v.NotNull(details.has_value(), "streamModeDetails");
  if (details)
    v.Enum(mode_text, "streamModeDetails.streamMode", true, {"PROVISIONED", "ON_DEMAND"});
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);
  RILL_RETURN_IF_ERROR(stream->UpdateStreamMode(*ParseMode(mode_text)));
  return std::string();
}

Result Service::ListShards(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  const std::optional<std::string_view> start = h.r().String("ExclusiveStartShardId");
  const std::optional<int64_t> max_results = h.r().Integer("MaxResults");
  const std::optional<std::string_view> token = h.r().String("NextToken");
  const std::optional<absl::Time> created = h.r().Timestamp("StreamCreationTimestamp");
  h.ReadStream();
  std::optional<std::string_view> filter_type, filter_shard;
  std::optional<absl::Time> filter_time;
  const std::optional<simdjson::dom::object> filter = h.r().Object("ShardFilter");
  if (filter) {
    Reader f(*filter, error);
    filter_type = f.String("Type");
    filter_shard = f.String("ShardId");
    filter_time = f.Timestamp("Timestamp");
  }
  if (h.r().failed()) return *error;
  Validator v;
  v.Text(start, "exclusiveStartShardId", false, Pattern::kName, 1, 128);
  v.Number(max_results, "maxResults", false, 1, 10000);
  v.Text(token, "nextToken", false, Pattern::kNone, 1, 1048576);
  h.ValidateStream(v, /*required=*/false);
  if (filter) {
    v.Enum(filter_type, "shardFilter.type", true,
           {"AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP",
            "FROM_TIMESTAMP"});
    v.Text(filter_shard, "shardFilter.shardId", false, Pattern::kName, 1, 128);
  }
  if (!v.ok()) return v.status();
  // Kinesis' rule: the stream comes from StreamName (or StreamARN) or from NextToken, never both.
  if (token && h.named()) {
    return InvalidArgumentError(h.r().String("StreamName")
                                    ? "NextToken and StreamName cannot be provided together."
                                    : "NextToken and StreamARN cannot be provided together.");
  }
  if (!token && !h.named()) {
    return InvalidArgumentError("Either NextToken or StreamName should be provided.");
  }

  ListShardsRequest request;
  std::shared_ptr<Stream> stream;
  std::string name;
  if (token) {
    const size_t slash = token->find('/');
    if (slash == std::string_view::npos) return InvalidArgumentError("Invalid NextToken.");
    name = std::string(token->substr(0, slash));
    stream = registry_.Find(name);
    if (stream == nullptr) return ResourceNotFoundError(registry_.NotFoundMessage(name));
    request.next_token = std::string(token->substr(slash + 1));
  } else {
    RILL_ASSIGN_OR_RETURN_STREAM(found, h);
    stream = std::move(found);
    name = h.name();
  }
  if (created && absl::ToUnixMillis(*created) != absl::ToUnixMillis(stream->creation_time())) {
    return ResourceNotFoundError(absl::StrFormat(
        "Stream %s under account %s with the given StreamCreationTimestamp not found.", name,
        registry_.account_id()));
  }
  if (start) {
    absl::StatusOr<ShardId> id = ShardId::Parse(*start);
    if (!id.ok()) return id.status();
    request.exclusive_start_shard_id = *id;
  }
  if (max_results) request.max_results = static_cast<int>(*max_results);
  if (filter) {
    ShardFilter f;
    static constexpr std::pair<std::string_view, ShardFilterType> kTypes[] = {
        {"AFTER_SHARD_ID", ShardFilterType::kAfterShardId},
        {"AT_TRIM_HORIZON", ShardFilterType::kAtTrimHorizon},
        {"FROM_TRIM_HORIZON", ShardFilterType::kFromTrimHorizon},
        {"AT_LATEST", ShardFilterType::kAtLatest},
        {"AT_TIMESTAMP", ShardFilterType::kAtTimestamp},
        {"FROM_TIMESTAMP", ShardFilterType::kFromTimestamp}};
    for (const auto& [text, type] : kTypes) {
      if (filter_type == text) f.type = type;
    }
    if (filter_shard) {
      absl::StatusOr<ShardId> id = ShardId::Parse(*filter_shard);
      if (!id.ok()) return id.status();
      f.shard_id = *id;
    }
    f.timestamp = filter_time;
    request.filter = f;
  }
  absl::StatusOr<ListShardsResult> result = stream->ListShards(request);
  if (!result.ok()) return result.status();
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("Shards");
  w.BeginArray();
  for (const ShardDescription& shard : result->shards) WriteShard(w, shard);
  w.EndArray();
  if (result->next_token) w.Member("NextToken", absl::StrCat(name, "/", *result->next_token));
  w.EndObject();
  return out;
}

Result Service::PutRecord(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  const std::optional<std::string_view> ordering = h.r().String("SequenceNumberForOrdering");
  const std::optional<std::string_view> key = h.r().String("PartitionKey");
  const std::optional<std::string_view> explicit_hash = h.r().String("ExplicitHashKey");
  std::string data;
  const bool has_data = h.r().Blob("Data", &data);
  h.ReadStream();
  if (h.r().failed()) return *error;
  Validator v;
  v.Text(ordering, "sequenceNumberForOrdering", false, Pattern::kSequenceNumber, 0, 0);
  v.Text(key, "partitionKey", true, Pattern::kNone, 1, 256);
  v.Text(explicit_hash, "explicitHashKey", false, Pattern::kHashKey, 0, 0);
  v.NotNull(has_data, "data");
  if (has_data && data.size() > (size_t{10} << 20)) {
    const std::string repr =
        absl::StrFormat("java.nio.HeapByteBuffer[pos=0 lim=%d cap=%d]", data.size(), data.size());
    v.Fail(repr, "data", "Member must have length less than or equal to 10485760");
  }
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);

  PutOptions options;
  if (explicit_hash) {
    absl::StatusOr<HashKey> hash = HashKey::FromDecimal(*explicit_hash);
    if (!hash.ok()) {
      return InvalidArgumentError(absl::StrCat(
          "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
          "Specified value was ",
          ToAbsl(*explicit_hash)));
    }
    options.explicit_hash_key = *hash;
  }
  if (ordering) {
    absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(*ordering);
    if (!s.ok()) {
      return InvalidArgumentError(absl::StrFormat(
          "ExclusiveMinimumSequenceNumber %s used in PutRecord on stream %s under account %s is "
          "invalid.",
          ToAbsl(*ordering), h.name(), registry_.account_id()));
    }
    options.sequence_number_for_ordering = *s;
  }
  absl::StatusOr<PutRecordResult> put = stream->PutRecord(*key, data, options);
  if (!put.ok()) return put.status();
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Member("ShardId", put->shard_id.ToString());
  w.Member("SequenceNumber", put->sequence_number.ToString());
  w.Member("EncryptionType", EncryptionTypeName(stream->DescribeStreamSummary().encryption_type));
  w.EndObject();
  return out;
}

Result Service::PutRecords(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  const std::optional<simdjson::dom::array> records = h.r().List("Records");
  struct Entry {
    std::optional<std::string_view> key;
    std::optional<std::string_view> explicit_hash;
    bool has_data = false;
    std::string data;
  };
  std::vector<Entry> entries;
  if (records) {
    entries.reserve(records->size());
    for (element e : *records) {
      Entry& entry = entries.emplace_back();
      std::optional<simdjson::dom::object> object = h.r().StructureValue(e);
      if (!object) continue;
      Reader er(*object, error);
      entry.key = er.String("PartitionKey");
      entry.explicit_hash = er.String("ExplicitHashKey");
      entry.has_data = er.Blob("Data", &entry.data);
    }
  }
  h.ReadStream();
  if (h.r().failed()) return *error;
  Validator v;
  v.NotNull(records.has_value(), "records");
  if (records) {
    for (size_t i = 0; i < entries.size(); ++i) {
      const std::string path = absl::StrCat("records.", i + 1, ".member");
      v.Text(entries[i].key, path + ".partitionKey", true, Pattern::kNone, 1, 256);
      v.Text(entries[i].explicit_hash, path + ".explicitHashKey", false, Pattern::kHashKey, 0, 0);
      v.NotNull(entries[i].has_data, path + ".data");
    }
    if (entries.empty() || entries.size() > static_cast<size_t>(kMaxPutRecordsEntries)) {
      std::vector<std::string> members(
          entries.size(), "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310");
      const std::string repr = absl::StrCat("[", absl::StrJoin(members, ", "), "]");
      v.Fail(repr, "records",
             entries.empty() ? "Member must have length greater than or equal to 1"
                             : "Member must have length less than or equal to 500");
    }
  }
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);

  // Kinesis refuses the whole request for a bad hash key or an oversized record; rill's
  // PutRecords would fail only that entry, so these are checked first.
  const size_t max_record = stream->options().max_record_bytes;
  std::vector<PutRecordsEntry> puts;
  puts.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    Entry& entry = entries[i];
    PutRecordsEntry& put = puts.emplace_back();
    if (entry.explicit_hash) {
      absl::StatusOr<HashKey> hash = HashKey::FromDecimal(*entry.explicit_hash);
      if (!hash.ok()) {
        return InvalidArgumentError(absl::StrCat(
            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
            "Specified value was ",
            ToAbsl(*entry.explicit_hash)));
      }
      put.explicit_hash_key = *hash;
    }
    if (entry.key->size() + entry.data.size() > max_record) {
      return InvalidArgumentError(absl::StrFormat(
          "Record %d of the request has %d bytes of partition key and data, more than the "
          "stream's maximum record size of %d bytes.",
          i, entry.key->size() + entry.data.size(), max_record));
    }
    put.partition_key = std::string(*entry.key);
    put.data = std::move(entry.data);
  }
  absl::StatusOr<PutRecordsResult> result = stream->PutRecords(puts);
  if (!result.ok()) return result.status();
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Member("FailedRecordCount", result->failed_record_count);
  w.Key("Records");
  w.BeginArray();
  for (const PutRecordsResultEntry& e : result->entries) {
    w.BeginObject();
    if (e.ok()) {
      w.Member("SequenceNumber", e.sequence_number.ToString());
      w.Member("ShardId", e.shard_id.ToString());
    } else {
      w.Member("ErrorCode", ErrorCodeExceptionName(e.error_code));
      w.Member("ErrorMessage", e.error_message);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Member("EncryptionType", EncryptionTypeName(stream->DescribeStreamSummary().encryption_type));
  w.EndObject();
  return out;
}

Result Service::GetShardIterator(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  const std::optional<std::string_view> shard = h.r().String("ShardId");
  const std::optional<std::string_view> type = h.r().String("ShardIteratorType");
  const std::optional<std::string_view> sequence = h.r().String("StartingSequenceNumber");
  h.ReadStream();
  const std::optional<absl::Time> timestamp = h.r().Timestamp("Timestamp");
  if (h.r().failed()) return *error;
  Validator v;
  v.Text(shard, "shardId", true, Pattern::kName, 1, 128);
  v.Enum(type, "shardIteratorType", true, kIteratorTypes);
  v.Text(sequence, "startingSequenceNumber", false, Pattern::kSequenceNumber, 0, 0);
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);

  StartingPosition position;
  position.type = *ParseIteratorType(*type);
  if (sequence) position.sequence_number = std::string(*sequence);
  position.timestamp = timestamp;
  absl::StatusOr<ShardIterator> it = stream->GetShardIterator(*shard, position);
  if (GetErrorCode(it.status()) == ErrorCode::kResourceNotFound) {
    // Kinesis' text (kinesalite's tests record it against the live service).
    absl::StatusOr<ShardId> id = ShardId::Parse(*shard);
    return ResourceNotFoundError(absl::StrFormat(
        "Shard %s in stream %s under account %s does not exist",
        id.ok() ? id->ToString() : std::string(ToAbsl(*shard)), h.name(), registry_.account_id()));
  }
  if (!it.ok()) return it.status();
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Member("ShardIterator", absl::StrCat(h.name(), "/", it->ToString()));
  w.EndObject();
  return out;
}

Result Service::GetRecords(simdjson::dom::object body, absl::Status* error) {
  Reader r(body, error);
  const std::optional<int64_t> limit = r.Integer("Limit");
  const std::optional<std::string_view> token = r.String("ShardIterator");
  const std::optional<std::string_view> stream_arn = r.String("StreamARN");
  if (r.failed()) return *error;
  Validator v;
  v.Number(limit, "limit", false, 1, 10000);
  v.Text(token, "shardIterator", true, Pattern::kNone, 1, 512);
  v.Text(stream_arn, "streamARN", false, Pattern::kStreamArn, 1, 2048);
  if (!v.ok()) return v.status();

  const absl::Status invalid = InvalidArgumentError("Invalid ShardIterator.");
  const size_t slash = token->find('/');
  if (slash == std::string_view::npos) return invalid;
  const std::string_view name = token->substr(0, slash);
  if (!IsNameText(name)) return invalid;
  absl::StatusOr<ShardIterator> it = ShardIterator::Parse(token->substr(slash + 1));
  if (!it.ok()) return invalid;
  if (stream_arn) {
    absl::StatusOr<std::string> arn_name = registry_.StreamNameFromArn(*stream_arn);
    if (!arn_name.ok()) return arn_name.status();
    if (*arn_name != name) return invalid;
  }
  std::shared_ptr<Stream> stream = registry_.Find(name);
  if (stream == nullptr) return ResourceNotFoundError(registry_.NotFoundMessage(name));
  absl::StatusOr<GetRecordsResult> result =
      stream->GetRecords(*it, static_cast<int>(limit.value_or(kMaxGetRecordsLimit)));
  if (!result.ok()) return result.status();

  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  WriteRecords(w, result->records);
  if (result->next_shard_iterator) {
    w.Member("NextShardIterator",
             absl::StrCat(ToAbsl(name), "/", result->next_shard_iterator->ToString()));
  }
  w.Member("MillisBehindLatest", result->millis_behind_latest);
  if (!result->child_shards.empty()) WriteChildShards(w, result->child_shards);
  w.EndObject();
  return out;
}

Result Service::SplitShard(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  const std::optional<std::string_view> key = h.r().String("NewStartingHashKey");
  h.ReadStream();
  const std::optional<std::string_view> shard = h.r().String("ShardToSplit");
  if (h.r().failed()) return *error;
  Validator v;
  v.Text(key, "newStartingHashKey", true, Pattern::kHashKey, 0, 0);
  h.ValidateStream(v);
  v.Text(shard, "shardToSplit", true, Pattern::kName, 1, 128);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);
  absl::StatusOr<HashKey> hash = HashKey::FromDecimal(*key);
  if (!hash.ok()) {
    return InvalidArgumentError(
        absl::StrCat("NewStartingHashKey ", ToAbsl(*key), " is not in the range [0, 2^128-1]."));
  }
  RILL_RETURN_IF_ERROR(registry_.CheckShardLimit(1));
  RILL_RETURN_IF_ERROR(stream->SplitShard(*shard, *hash));
  return std::string();
}

Result Service::MergeShards(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  const std::optional<std::string_view> shard = h.r().String("ShardToMerge");
  const std::optional<std::string_view> adjacent = h.r().String("AdjacentShardToMerge");
  h.ReadStream();
  if (h.r().failed()) return *error;
  Validator v;
  v.Text(shard, "shardToMerge", true, Pattern::kName, 1, 128);
  v.Text(adjacent, "adjacentShardToMerge", true, Pattern::kName, 1, 128);
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);
  RILL_RETURN_IF_ERROR(stream->MergeShards(*shard, *adjacent));
  return std::string();
}

Result Service::UpdateShardCount(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  h.ReadStream();
  const std::optional<int64_t> target = h.r().Integer("TargetShardCount");
  const std::optional<std::string_view> scaling = h.r().String("ScalingType");
  if (h.r().failed()) return *error;
  Validator v;
  h.ValidateStream(v);
  v.Number(target, "targetShardCount", true, 1, std::nullopt);
  v.Enum(scaling, "scalingType", true, {"UNIFORM_SCALING"});
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);
  const int current = stream->DescribeStreamSummary().open_shard_count;
  if (*target > current) {
    RILL_RETURN_IF_ERROR(registry_.CheckShardLimit(static_cast<int>(*target - current)));
  }
  RILL_RETURN_IF_ERROR(stream->UpdateShardCount(static_cast<int>(*target)));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Member("StreamName", h.name());
  w.Member("CurrentShardCount", current);
  w.Member("TargetShardCount", *target);
  w.Member("StreamARN", registry_.StreamArn(h.name()));
  w.EndObject();
  return out;
}

Result Service::ChangeRetention(simdjson::dom::object body, absl::Status* error, bool increase) {
  Handler h(registry_, body, error);
  const std::optional<int64_t> hours = h.r().Integer("RetentionPeriodHours");
  h.ReadStream();
  if (h.r().failed()) return *error;
  Validator v;
  v.Number(hours, "retentionPeriodHours", true, std::nullopt, std::nullopt);
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);
  const absl::Duration retention = absl::Hours(*hours);
  RILL_RETURN_IF_ERROR(increase ? stream->IncreaseStreamRetentionPeriod(retention)
                                : stream->DecreaseStreamRetentionPeriod(retention));
  return std::string();
}

Result Service::ChangeEncryption(simdjson::dom::object body, absl::Status* error, bool start) {
  Handler h(registry_, body, error);
  const std::optional<std::string_view> type = h.r().String("EncryptionType");
  const std::optional<std::string_view> key_id = h.r().String("KeyId");
  h.ReadStream();
  if (h.r().failed()) return *error;
  Validator v;
  static constexpr std::string_view kTypes[] = {"NONE", "KMS"};
  v.Enum(type, "encryptionType", true, kTypes);
  v.Text(key_id, "keyId", true, Validator::Pattern::kNone, 1, 2048);
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);
  const EncryptionType t = *type == "KMS" ? EncryptionType::kKms : EncryptionType::kNone;
  RILL_RETURN_IF_ERROR(start ? stream->StartStreamEncryption(t, *key_id)
                             : stream->StopStreamEncryption(t, *key_id));
  return std::string();
}

Result Service::StartStreamEncryption(simdjson::dom::object body, absl::Status* error) {
  return ChangeEncryption(body, error, true);
}

Result Service::StopStreamEncryption(simdjson::dom::object body, absl::Status* error) {
  return ChangeEncryption(body, error, false);
}

Result Service::IncreaseStreamRetentionPeriod(simdjson::dom::object body, absl::Status* error) {
  return ChangeRetention(body, error, true);
}

Result Service::DecreaseStreamRetentionPeriod(simdjson::dom::object body, absl::Status* error) {
  return ChangeRetention(body, error, false);
}

Result Service::AddTagsToStream(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  const std::optional<simdjson::dom::object> tag_map = h.r().Object("Tags", /*is_map=*/true);
  std::vector<std::pair<std::string, std::string>> tags;
  if (tag_map) {
    for (auto [key, value] : *tag_map) {
      if (value.type() == element_type::NULL_VALUE) continue;
      std::optional<std::string_view> text = h.r().StringValue(value);
      if (!text) break;
      tags.emplace_back(std::string(key), std::string(*text));
    }
  }
  h.ReadStream();
  if (h.r().failed()) return *error;
  Validator v;
  v.NotNull(tag_map.has_value(), "tags");
  if (tag_map) {
    std::vector<std::string> shown;
    for (const auto& [key, value] : tags) shown.push_back(absl::StrCat(key, "=", value));
    const std::string repr = absl::StrCat("{", absl::StrJoin(shown, ", "), "}");
    if (tags.empty()) {
      v.Fail(repr, "tags", "Member must have length greater than or equal to 1");
    }
    if (tags.size() > static_cast<size_t>(kMaxTagsPerCall)) {
      v.Fail(repr, "tags",
             absl::StrCat("Member must have length less than or equal to ", kMaxTagsPerCall));
    }
    const bool keys_ok = std::all_of(tags.begin(), tags.end(), [](const auto& t) {
      const int64_t n = Validator::Length(t.first);
      return n >= 1 && n <= kMaxTagKeyLength;
    });
    if (!keys_ok) {
      v.Fail(repr, "tags",
             "Map keys must satisfy constraint: [Member must have length less than or equal to "
             "128, Member must have length greater than or equal to 1]");
    }
    const bool values_ok = std::all_of(tags.begin(), tags.end(), [](const auto& t) {
      return Validator::Length(t.second) <= kMaxTagValueLength;
    });
    if (!values_ok) {
      v.Fail(repr, "tags",
             "Map value must satisfy constraint: [Member must have length less than or equal to "
             "256, Member must have length greater than or equal to 0]");
    }
  }
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);
  RILL_RETURN_IF_ERROR(registry_.AddTags(h.name(), tags));
  return std::string();
}

Result Service::ListTagsForStream(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  const std::optional<int64_t> limit = h.r().Integer("Limit");
  const std::optional<std::string_view> start = h.r().String("ExclusiveStartTagKey");
  h.ReadStream();
  if (h.r().failed()) return *error;
  Validator v;
  v.Number(limit, "limit", false, 1, 50);
  v.Text(start, "exclusiveStartTagKey", false, Pattern::kNone, 1, 128);
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> tags =
      registry_.ListTags(h.name());
  if (!tags.ok()) return tags.status();
  const size_t page = static_cast<size_t>(limit.value_or(kMaxTagsPerStream));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("Tags");
  w.BeginArray();
  size_t written = 0;
  bool has_more = false;
  for (const auto& [key, value] : *tags) {
    if (start && key <= *start) continue;
    if (written == page) {
      has_more = true;
      break;
    }
    w.BeginObject();
    w.Member("Key", key);
    w.Member("Value", value);
    w.EndObject();
    ++written;
  }
  w.EndArray();
  w.Member("HasMoreTags", has_more);
  w.EndObject();
  return out;
}

Result Service::RemoveTagsFromStream(simdjson::dom::object body, absl::Status* error) {
  Handler h(registry_, body, error);
  const std::optional<simdjson::dom::array> list = h.r().List("TagKeys");
  std::vector<std::string> keys;
  if (list) {
    for (element e : *list) {
      if (e.type() == element_type::NULL_VALUE) continue;
      std::optional<std::string_view> key = h.r().StringValue(e);
      if (!key) break;
      keys.emplace_back(*key);
    }
  }
  h.ReadStream();
  if (h.r().failed()) return *error;
  Validator v;
  v.NotNull(list.has_value(), "tagKeys");
  if (list) {
    const std::string repr = absl::StrCat("[", absl::StrJoin(keys, ", "), "]");
    if (keys.empty()) v.Fail(repr, "tagKeys", "Member must have length greater than or equal to 1");
    if (keys.size() > static_cast<size_t>(kMaxTagsPerCall)) {
      v.Fail(repr, "tagKeys",
             absl::StrCat("Member must have length less than or equal to ", kMaxTagsPerCall));
    }
    const bool lengths_ok = std::all_of(keys.begin(), keys.end(), [](const std::string& k) {
      const int64_t n = Validator::Length(k);
      return n >= 1 && n <= kMaxTagKeyLength;
    });
    if (!lengths_ok) {
      v.Fail(repr, "tagKeys",
             "Member must satisfy constraint: [Member must have length less than or equal to "
             "128, Member must have length greater than or equal to 1]");
    }
  }
  h.ValidateStream(v);
  if (!v.ok()) return v.status();
  RILL_ASSIGN_OR_RETURN_STREAM(stream, h);
  RILL_RETURN_IF_ERROR(registry_.RemoveTags(h.name(), keys));
  return std::string();
}

absl::StatusOr<Service::ConsumerRef> Service::FindConsumer(
    std::optional<std::string_view> stream_arn, std::optional<std::string_view> consumer_name,
    std::optional<std::string_view> consumer_arn) {
  std::string_view arn;
  std::string_view name;
  std::optional<int64_t> seconds;
  if (consumer_arn) {
    const std::optional<ConsumerArnParts> parts = ParseConsumerArn(*consumer_arn);
    if (!parts) {
      return InvalidArgumentError(
          absl::StrCat("ConsumerARN ", ToAbsl(*consumer_arn), " is not a valid consumer ARN."));
    }
    arn = parts->stream_arn;
    name = parts->consumer_name;
    seconds = parts->creation_seconds;
  } else if (stream_arn && consumer_name) {
    arn = *stream_arn;
    name = *consumer_name;
  } else {
    return InvalidArgumentError(
        "Either ConsumerARN, or StreamARN and ConsumerName, must be provided.");
  }
  absl::StatusOr<std::string> stream_name = registry_.StreamNameFromArn(arn);
  if (!stream_name.ok()) return stream_name.status();
  ConsumerRef ref;
  ref.stream = registry_.Find(*stream_name);
  if (ref.stream == nullptr) return ResourceNotFoundError(registry_.NotFoundMessage(*stream_name));
  ref.stream_arn = registry_.StreamArn(*stream_name);
  absl::StatusOr<ConsumerDescription> consumer = ref.stream->DescribeStreamConsumer(name);
  // A consumer registered again under the same name has another ARN: the old one names nothing.
  if (!consumer.ok() || (seconds && absl::ToUnixSeconds(consumer->creation_time) != *seconds)) {
    return ResourceNotFoundError(absl::StrFormat(
        "Consumer %s under stream %s under account %s not found.",
        consumer_arn ? ToAbsl(*consumer_arn) : ToAbsl(name), *stream_name, registry_.account_id()));
  }
  ref.consumer = std::move(*consumer);
  return ref;
}

Result Service::RegisterStreamConsumer(simdjson::dom::object body, absl::Status* error) {
  Reader r(body, error);
  const std::optional<std::string_view> stream_arn = r.String("StreamARN");
  const std::optional<std::string_view> consumer_name = r.String("ConsumerName");
  if (r.failed()) return *error;
  Validator v;
  v.Text(stream_arn, "streamARN", true, Pattern::kStreamArn, 1, 2048);
  v.Text(consumer_name, "consumerName", true, Pattern::kName, 1, 128);
  if (!v.ok()) return v.status();
  absl::StatusOr<std::string> name = registry_.StreamNameFromArn(*stream_arn);
  if (!name.ok()) return name.status();
  std::shared_ptr<Stream> stream = registry_.Find(*name);
  if (stream == nullptr) return ResourceNotFoundError(registry_.NotFoundMessage(*name));
  absl::StatusOr<ConsumerDescription> consumer = stream->RegisterStreamConsumer(*consumer_name);
  if (!consumer.ok()) return consumer.status();
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("Consumer");
  WriteConsumer(w, registry_.StreamArn(*name), *consumer, /*with_stream_arn=*/false);
  w.EndObject();
  return out;
}

// The consumer that Describe- and DeregisterStreamConsumer name: by StreamARN and ConsumerName,
// or by ConsumerARN, validated as Kinesis does.
absl::StatusOr<Service::ConsumerRef> Service::ReadConsumerRef(simdjson::dom::object body,
                                                              absl::Status* error) {
  Reader r(body, error);
  const std::optional<std::string_view> stream_arn = r.String("StreamARN");
  const std::optional<std::string_view> consumer_name = r.String("ConsumerName");
  const std::optional<std::string_view> consumer_arn = r.String("ConsumerARN");
  if (r.failed()) return *error;
  Validator v;
  v.Text(stream_arn, "streamARN", false, Pattern::kStreamArn, 1, 2048);
  v.Text(consumer_name, "consumerName", false, Pattern::kName, 1, 128);
  v.Text(consumer_arn, "consumerARN", false, Pattern::kConsumerArn, 1, 2048);
  if (!v.ok()) return v.status();
  return FindConsumer(stream_arn, consumer_name, consumer_arn);
}

Result Service::DescribeStreamConsumer(simdjson::dom::object body, absl::Status* error) {
  absl::StatusOr<ConsumerRef> ref = ReadConsumerRef(body, error);
  if (!ref.ok()) return ref.status();
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("ConsumerDescription");
  WriteConsumer(w, ref->stream_arn, ref->consumer, /*with_stream_arn=*/true);
  w.EndObject();
  return out;
}

Result Service::ListStreamConsumers(simdjson::dom::object body, absl::Status* error) {
  Reader r(body, error);
  const std::optional<std::string_view> stream_arn = r.String("StreamARN");
  const std::optional<std::string_view> token = r.String("NextToken");
  const std::optional<int64_t> max_results = r.Integer("MaxResults");
  const std::optional<absl::Time> created = r.Timestamp("StreamCreationTimestamp");
  if (r.failed()) return *error;
  Validator v;
  v.Text(stream_arn, "streamARN", true, Pattern::kStreamArn, 1, 2048);
  v.Text(token, "nextToken", false, Pattern::kNone, 1, 1048576);
  v.Number(max_results, "maxResults", false, 1, 10000);
  if (!v.ok()) return v.status();
  absl::StatusOr<std::string> name = registry_.StreamNameFromArn(*stream_arn);
  if (!name.ok()) return name.status();
  std::shared_ptr<Stream> stream = registry_.Find(*name);
  if (stream == nullptr) return ResourceNotFoundError(registry_.NotFoundMessage(*name));
  if (created && absl::ToUnixMillis(*created) != absl::ToUnixMillis(stream->creation_time())) {
    return ResourceNotFoundError(absl::StrFormat(
        "Stream %s under account %s with the given StreamCreationTimestamp not found.", *name,
        registry_.account_id()));
  }
  // The token holds how many consumers earlier pages returned (registration order).
  size_t offset = 0;
  if (token) {
    absl::StatusOr<std::string> position = OpenToken(*token, registry_.clock()->Now());
    if (!position.ok()) return position.status();
    if (!absl::SimpleAtoi(*position, &offset)) return InvalidArgumentError("Invalid NextToken.");
  }
  const std::vector<ConsumerDescription> consumers = stream->ListStreamConsumers();
  const size_t page = static_cast<size_t>(std::min<int64_t>(max_results.value_or(100), 100));
  const std::string arn = registry_.StreamArn(*name);
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("Consumers");
  w.BeginArray();
  size_t i = offset;
  for (; i < consumers.size() && i < offset + page; ++i) {
    WriteConsumer(w, arn, consumers[i], /*with_stream_arn=*/false);
  }
  w.EndArray();
  if (i < consumers.size()) {
    w.Member("NextToken", MakeToken(registry_.clock()->Now(), absl::StrCat(i)));
  }
  w.EndObject();
  return out;
}

Result Service::DeregisterStreamConsumer(simdjson::dom::object body, absl::Status* error) {
  absl::StatusOr<ConsumerRef> ref = ReadConsumerRef(body, error);
  if (!ref.ok()) return ref.status();
  RILL_RETURN_IF_ERROR(ref->stream->DeregisterStreamConsumer(ref->consumer.name));
  return std::string();
}

absl::StatusOr<SubscribeStart> Service::SubscribeToShard(simdjson::dom::object body,
                                                         absl::Status* error) {
  Reader r(body, error);
  const std::optional<std::string_view> consumer_arn = r.String("ConsumerARN");
  const std::optional<std::string_view> shard = r.String("ShardId");
  std::optional<std::string_view> type, sequence;
  std::optional<absl::Time> timestamp;
  const std::optional<simdjson::dom::object> start = r.Object("StartingPosition");
  if (start) {
    Reader s(*start, error);
    type = s.String("Type");
    sequence = s.String("SequenceNumber");
    timestamp = s.Timestamp("Timestamp");
  }
  if (r.failed()) return *error;
  Validator v;
  v.Text(consumer_arn, "consumerARN", true, Pattern::kConsumerArn, 1, 2048);
  v.Text(shard, "shardId", true, Pattern::kName, 1, 128);
  v.NotNull(start.has_value(), "startingPosition");
  if (start) {
    v.Enum(type, "startingPosition.type", true, kIteratorTypes);
    v.Text(sequence, "startingPosition.sequenceNumber", false, Pattern::kSequenceNumber, 0, 0);
  }
  if (!v.ok()) return v.status();
  absl::StatusOr<ConsumerRef> ref = FindConsumer(std::nullopt, std::nullopt, consumer_arn);
  if (!ref.ok()) return ref.status();
  StartingPosition position;
  position.type = *ParseIteratorType(*type);
  if (sequence) position.sequence_number = std::string(*sequence);
  position.timestamp = timestamp;
  absl::StatusOr<std::unique_ptr<Subscription>> subscription =
      ref->stream->SubscribeToShard(ref->consumer.name, *shard, position);
  if (!subscription.ok()) return subscription.status();
  SubscribeStart out;
  out.stream = std::move(ref->stream);
  out.subscription = std::move(*subscription);
  return out;
}

using Operation = Result (Service::*)(simdjson::dom::object, absl::Status*);

struct OperationEntry {
  std::string_view name;
  Operation operation;
};

constexpr OperationEntry kOperations[] = {
    {"AddTagsToStream", &Service::AddTagsToStream},
    {"CreateStream", &Service::CreateStream},
    {"DecreaseStreamRetentionPeriod", &Service::DecreaseStreamRetentionPeriod},
    {"DeleteStream", &Service::DeleteStream},
    {"DeregisterStreamConsumer", &Service::DeregisterStreamConsumer},
    {"DescribeLimits", &Service::DescribeLimits},
    {"DescribeStream", &Service::DescribeStream},
    {"DescribeStreamConsumer", &Service::DescribeStreamConsumer},
    {"DescribeStreamSummary", &Service::DescribeStreamSummary},
    {"GetRecords", &Service::GetRecords},
    {"GetShardIterator", &Service::GetShardIterator},
    {"IncreaseStreamRetentionPeriod", &Service::IncreaseStreamRetentionPeriod},
    {"ListShards", &Service::ListShards},
    {"ListStreamConsumers", &Service::ListStreamConsumers},
    {"ListStreams", &Service::ListStreams},
    {"ListTagsForStream", &Service::ListTagsForStream},
    {"MergeShards", &Service::MergeShards},
    {"PutRecord", &Service::PutRecord},
    {"PutRecords", &Service::PutRecords},
    {"RegisterStreamConsumer", &Service::RegisterStreamConsumer},
    {"RemoveTagsFromStream", &Service::RemoveTagsFromStream},
    {"SplitShard", &Service::SplitShard},
    {"StartStreamEncryption", &Service::StartStreamEncryption},
    {"StopStreamEncryption", &Service::StopStreamEncryption},
    {"UpdateShardCount", &Service::UpdateShardCount},
    {"UpdateStreamMode", &Service::UpdateStreamMode},
};

// The operation a target names, or null. `known` is set for SubscribeToShard too.
Operation FindOperation(std::string_view target, bool* known) {
  *known = false;
  if (!target.starts_with(kKinesisTargetPrefix)) return nullptr;
  const std::string_view name = target.substr(kKinesisTargetPrefix.size());
  if (name == "SubscribeToShard") {
    *known = true;
    return nullptr;
  }
  for (const OperationEntry& entry : kOperations) {
    if (entry.name == name) {
      *known = true;
      return entry.operation;
    }
  }
  return nullptr;
}

// Parses a request body as Kinesis does: empty or not a JSON object is a SerializationException.
absl::StatusOr<simdjson::dom::object> ParseBody(std::string_view body) {
  if (body.empty()) return MalformedBodyError();
  absl::StatusOr<element> doc = ParseJson(body);
  if (!doc.ok() || doc->type() != element_type::OBJECT) return MalformedBodyError();
  return doc->get_object().value_unsafe();
}

}  // namespace

bool KinesisService::IsOperation(std::string_view target) {
  bool known = false;
  FindOperation(target, &known);
  return known;
}

std::vector<std::string_view> KinesisService::OperationNames() {
  std::vector<std::string_view> names;
  for (const OperationEntry& entry : kOperations) names.push_back(entry.name);
  names.push_back("SubscribeToShard");
  std::sort(names.begin(), names.end());
  return names;
}

KinesisService::KinesisService(std::shared_ptr<StreamRegistry> registry)
    : registry_(std::move(registry)) {}

Response KinesisService::ErrorResponse(const absl::Status& status) {
  Response response;
  std::string type;
  std::string message_key = "message";
  if (absl::optional<absl::Cord> wire = status.GetPayload(kWireErrorUrl)) {
    const std::string text(*wire);
    const size_t newline = text.find('\n');
    type = text.substr(0, newline);
    message_key = newline == std::string::npos ? "" : text.substr(newline + 1);
  } else {
    ErrorCode code = GetErrorCode(status);
    if (code == ErrorCode::kUnknown || code == ErrorCode::kOk) code = ErrorCode::kInternalFailure;
    type = std::string(ErrorCodeExceptionName(code));
  }
  response.http_status = type == "InternalFailure" ? 500 : 400;
  JsonWriter w(&response.body);
  w.BeginObject();
  w.Member("__type", type);
  if (!message_key.empty()) {
    w.Member(message_key, std::string_view(status.message().data(), status.message().size()));
  }
  w.EndObject();
  response.error_type = std::move(type);
  return response;
}

Response KinesisService::Handle(std::string_view target, std::string_view body) const {
  bool known = false;
  const Operation operation = FindOperation(target, &known);
  // Kinesis judges the body before the target: an empty body is a SerializationException for a
  // known operation and UnknownOperationException otherwise; a body that is not a JSON object
  // is a SerializationException whatever the target.
  if (body.empty()) return ErrorResponse(known ? MalformedBodyError() : UnknownOperationError());
  absl::StatusOr<simdjson::dom::object> object = ParseBody(body);
  if (!object.ok()) return ErrorResponse(object.status());
  if (!known) return ErrorResponse(UnknownOperationError());
  if (operation == nullptr) {
    return ErrorResponse(UnknownOperationError(
        "SubscribeToShard answers with an event stream: the transport calls StartSubscription"));
  }
  Service service(*registry_);
  absl::Status error;
  Result result = (service.*operation)(*object, &error);
  if (!result.ok()) return ErrorResponse(result.status());
  return Ok(std::move(*result));
}

absl::StatusOr<SubscribeStart> KinesisService::StartSubscription(std::string_view body) const {
  absl::StatusOr<simdjson::dom::object> object = ParseBody(body);
  if (!object.ok()) return object.status();
  Service service(*registry_);
  absl::Status error;
  return service.SubscribeToShard(*object, &error);
}

void AppendSubscribeToShardEventJson(const SubscribeToShardEvent& event, std::string* out) {
  JsonWriter w(out);
  w.BeginObject();
  WriteRecords(w, event.records);
  if (event.continuation_sequence_number) {
    w.Member("ContinuationSequenceNumber", event.continuation_sequence_number->ToString());
  }
  w.Member("MillisBehindLatest", event.millis_behind_latest);
  if (!event.child_shards.empty()) WriteChildShards(w, event.child_shards);
  w.EndObject();
}

}  // namespace rill::net
