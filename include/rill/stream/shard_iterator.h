// StartingPosition says where in a shard to start reading; ShardIterator is the resulting position,
// handed back by every GetRecords for the next call.
//
// The iterator types are Kinesis': TRIM_HORIZON (the oldest record still retained), LATEST (just
// after the newest record at the time of the call), AT_SEQUENCE_NUMBER / AFTER_SEQUENCE_NUMBER (at
// or just after a record), AT_TIMESTAMP (the first record that arrived at or after a time; before
// the trim horizon it means TRIM_HORIZON).
//
// Example:
//   auto it = stream->GetShardIterator(shard, rill::StartingPosition::TrimHorizon());
//   auto batch = stream->GetRecords(*it, 1000);
//   // ... use batch->records, then continue from *batch->next_shard_iterator
//
// An iterator of a rill::Stream is a self-contained value: it names its stream, shard and position
// and the time it was issued, and expires 5 minutes (of the stream's Clock) after that. ToString()
// and Parse() turn it into an opaque token and back, for applications that hand iterators around
// as text. An iterator of a remote stream (rill::kinesis::Client) holds the endpoint's token
// instead (FromToken): only that endpoint can read it, and a Stream rejects it.
//
// Thread safety: plain values.
#ifndef RILL_STREAM_SHARD_ITERATOR_H_
#define RILL_STREAM_SHARD_ITERATOR_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rill/base/sequence_number.h"

namespace rill {

namespace internal {
class StreamImpl;
}  // namespace internal

enum class ShardIteratorType {
  kTrimHorizon,
  kLatest,
  kAtSequenceNumber,
  kAfterSequenceNumber,
  kAtTimestamp,
};

// "TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "AT_TIMESTAMP".
std::string_view ShardIteratorTypeName(ShardIteratorType type);

// Where to start reading. Build it with the factory functions; the fields are public so that a
// request arriving as Kinesis' loose fields (type, StartingSequenceNumber, Timestamp) can be passed
// through unchanged and judged by Kinesis' rules in GetShardIterator:
//   TRIM_HORIZON, LATEST          take neither a sequence number nor a timestamp;
//   AT_/AFTER_SEQUENCE_NUMBER     take a sequence number (decimal text) of this shard, and no
//                                 timestamp;
//   AT_TIMESTAMP                  takes a timestamp not in the future, and no sequence number.
// Breaking a rule is kInvalidArgument.
struct StartingPosition {
  ShardIteratorType type = ShardIteratorType::kTrimHorizon;
  std::optional<std::string> sequence_number;
  std::optional<absl::Time> timestamp;

  static StartingPosition TrimHorizon() { return {ShardIteratorType::kTrimHorizon, {}, {}}; }
  static StartingPosition Latest() { return {ShardIteratorType::kLatest, {}, {}}; }
  static StartingPosition AtSequenceNumber(SequenceNumber s) {
    return {ShardIteratorType::kAtSequenceNumber, s.ToString(), {}};
  }
  static StartingPosition AtSequenceNumber(std::string_view decimal) {
    return {ShardIteratorType::kAtSequenceNumber, std::string(decimal), {}};
  }
  static StartingPosition AfterSequenceNumber(SequenceNumber s) {
    return {ShardIteratorType::kAfterSequenceNumber, s.ToString(), {}};
  }
  static StartingPosition AfterSequenceNumber(std::string_view decimal) {
    return {ShardIteratorType::kAfterSequenceNumber, std::string(decimal), {}};
  }
  static StartingPosition AtTimestamp(absl::Time t) {
    return {ShardIteratorType::kAtTimestamp, {}, t};
  }
};

class ShardIterator {
 public:
  // An iterator that names no stream: GetRecords rejects it with kInvalidArgument.
  ShardIterator() = default;

  // Parses a token made by ToString(). A malformed or altered token is kInvalidArgument.
  [[nodiscard]] static absl::StatusOr<ShardIterator> Parse(std::string_view token);

  // An iterator of a remote stream: the endpoint's own token, and when it was received (on the
  // client's clock; Kinesis' expire 5 minutes after they were issued).
  static ShardIterator FromToken(std::string token, absl::Time issued_at) {
    ShardIterator it;
    it.token_ = std::move(token);
    it.issued_at_us_ = absl::ToUnixMicros(issued_at);
    return it;
  }

  // The opaque token: 80 characters for a rill::Stream's iterator, the endpoint's token for a
  // remote one.
  std::string ToString() const;
  // True for an iterator made by FromToken.
  bool is_remote() const { return !token_.empty(); }
  // The endpoint's token (empty for a rill::Stream's iterator).
  const std::string& token() const { return token_; }

  // When the stream issued the iterator; it expires 5 minutes later.
  absl::Time issued_at() const { return absl::FromUnixMicros(issued_at_us_); }

  friend bool operator==(const ShardIterator&, const ShardIterator&) = default;
  friend std::ostream& operator<<(std::ostream& os, const ShardIterator& it) {
    return os << it.ToString();
  }

 private:
  friend class Stream;
  friend class internal::StreamImpl;
  ShardIterator(uint64_t stream_instance, uint32_t shard_index, uint64_t ordinal,
                int64_t issued_at_us)
      : stream_instance_(stream_instance),
        shard_index_(shard_index),
        ordinal_(ordinal),
        issued_at_us_(issued_at_us) {}

  uint64_t stream_instance_ = 0;  // 0 = no stream
  uint32_t shard_index_ = 0;
  uint64_t ordinal_ = 0;  // the position: the shard's n-th record ever appended
  int64_t issued_at_us_ = 0;
  std::string token_;  // a remote stream's token; empty for a rill::Stream's iterator
};

}  // namespace rill

#endif  // RILL_STREAM_SHARD_ITERATOR_H_
