// The records a stream takes and gives back, and the results of putting them.
//
// Example:
//   absl::StatusOr<rill::PutRecordResult> put = stream->PutRecord("player-42", payload);
//   if (put.ok()) std::cout << put->shard_id << " " << put->sequence_number << "\n";
//
// Thread safety: plain values. A Record's views point into memory that the GetRecordsResult it
// came from keeps alive (see Record).
#ifndef RILL_STREAM_RECORD_H_
#define RILL_STREAM_RECORD_H_

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "rill/base/error.h"
#include "rill/base/hash_key.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"

namespace rill {

// Optional arguments of Stream::PutRecord.
struct PutOptions {
  // Routes the record by this hash key instead of the MD5 of its partition key. Default: none.
  std::optional<HashKey> explicit_hash_key;
  // The sequence number of the previous record the caller put (usually with the same partition
  // key): the new record gets a strictly greater sequence number. It must be a number this
  // stream issued, else kInvalidArgument. Default: none.
  std::optional<SequenceNumber> sequence_number_for_ordering;
};

struct PutRecordResult {
  ShardId shard_id;
  SequenceNumber sequence_number;
};

// One entry of a PutRecords request. The strings are owned, so building a request from
// temporaries is safe.
struct PutRecordsEntry {
  std::string partition_key;
  std::string data;
  std::optional<HashKey> explicit_hash_key;
};

// The outcome of one PutRecords entry: on success shard_id and sequence_number are set and
// error_code is kOk; on failure error_code and error_message say why and nothing was written.
struct PutRecordsResultEntry {
  ShardId shard_id;
  SequenceNumber sequence_number;
  ErrorCode error_code = ErrorCode::kOk;
  std::string error_message;

  bool ok() const { return error_code == ErrorCode::kOk; }
};

struct PutRecordsResult {
  // Number of entries that failed.
  int failed_record_count = 0;
  // One result per request entry, in request order.
  std::vector<PutRecordsResultEntry> entries;
};

// A record read back from a shard. partition_key and data are views into the stream's storage,
// valid for as long as the GetRecordsResult that returned them, or a copy of it, is alive (the
// result holds a reference on the storage, so retention cannot free it underneath). Copy them
// into your own strings to keep them longer. Where Abseil has its own absl::string_view (Debian's
// does), Abseil functions do not take them as they are: pass
// absl::string_view(r.data.data(), r.data.size()).
struct Record {
  SequenceNumber sequence_number;
  // When the stream accepted the record (microsecond precision), as read from its Clock. Never
  // earlier than the previous record's in the same shard.
  absl::Time approximate_arrival_timestamp;
  std::string_view partition_key;
  std::string_view data;
};

// Keeps alive the storage that a read's Records point into: chunks of a shard's memory log and,
// for a durable stream, frames decoded from disk. A GetRecordsResult or SubscribeToShardEvent
// holds one; copying it shares the storage (reference counts, no record bytes are copied), so
// the records stay valid for as long as any copy lives.
//
// Thread safety: like a std::vector of std::shared_ptr (distinct objects may be used from
// different threads). Add() may allocate; copying allocates one vector.
class RecordKeepAlive {
 public:
  // Holds `storage` too (for rill's readers; a null pointer is ignored).
  void Add(std::shared_ptr<const void> storage) {
    if (storage != nullptr) held_.push_back(std::move(storage));
  }
  // Holds everything `other` holds too: records gathered from several reads stay valid together.
  void Add(const RecordKeepAlive& other) {
    held_.insert(held_.end(), other.held_.begin(), other.held_.end());
  }
  // Releases the storage (the records read with it may dangle after this).
  void clear() { held_.clear(); }
  bool empty() const { return held_.empty(); }
  // How many pieces of storage are held (each a chunk or a decoded frame).
  size_t size() const { return held_.size(); }

 private:
  std::vector<std::shared_ptr<const void>> held_;
};

}  // namespace rill

#endif  // RILL_STREAM_RECORD_H_
