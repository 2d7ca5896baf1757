// Pipeline sinks: where a rill::Pipeline's results go.
//
// A sink is any callable taking a result (`const WindowResult<Key, R>&` for a windowed pipeline,
// the element for a record pipeline) and returning void or absl::Status; an error stops the
// pipeline (see pipeline.h). A sink that also has
//   void SavePosition(std::string* out);
//   absl::Status RestorePosition(std::string_view saved);
// takes part in snapshots. Provided:
//   ToVector(&v)            appends every result to a vector (tests, small batch jobs).
//   StreamSink(stream, name, encode)
//                           puts every result into another Stream, with a deterministic id, so
//                           that a pipeline restored from a snapshot writes no duplicates there.
//
// Thread safety: a sink is called from the thread polling its pipeline only.
#ifndef RILL_PROCESS_SINK_H_
#define RILL_PROCESS_SINK_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "rill/base/error.h"
#include "rill/base/hash_key.h"
#include "rill/base/md5.h"
#include "rill/process/window_operator.h"
#include "rill/stream/stream_api.h"

namespace rill {

// A sink appending to *out, which must outlive the pipeline.
template <typename R>
auto ToVector(std::vector<R>* out) {
  return [out](const R& r) { out->push_back(r); };
}

struct StreamSinkOptions {
  // How many times a put refused for throughput (kProvisionedThroughputExceeded) is retried,
  // backing off 1 ms, 2 ms, ... up to 100 ms through the stream's Clock (Clock::SleepFor: real
  // time for SystemClock; a SimulatedClock moves forward instead); the pipeline waits meanwhile
  // (that is its backpressure). Then the error stops the pipeline. Default: 50.
  int max_throttle_retries = 50;
};

// Puts window results into `stream`, which is borrowed: it must outlive the sink (and so the
// pipeline holding it). Each record's:
//   partition key  the result's id: 32 hex digits, the MD5 of (name, key, start, end,
//                  is_update, encoded value) — the same result always gets the same id;
//   hash key       the MD5 of the result's key, so every result of one key lands in one shard,
//                  in emission order;
//   data           encode(result): the application's format.
// Deduplication: SavePosition records the stream's time; a restored sink first reads every
// record the stream accepted since that time, and skips a result whose id it finds there (one
// the stopped pipeline had already written after its snapshot). Identical results (same key,
// window, kind and value) are one result to this sink.
template <typename Encode>
class StreamSink {
 public:
  StreamSink(StreamApi& stream, std::string name, Encode encode, StreamSinkOptions options = {})
      : stream_(stream), name_(std::move(name)), encode_(std::move(encode)), options_(options) {}

  template <typename Key, typename R>
  absl::Status operator()(const WindowResult<Key, R>& result) {
    scratch_.clear();
    KeyCodec<Key>::Encode(result.key, &scratch_);
    const HashKey route = HashKey::FromPartitionKey(scratch_);
    std::string data = encode_(result);
    std::string id_input = name_;
    id_input.push_back('\0');
    internal::PutBlob(&id_input, scratch_);
    internal::PutTime(&id_input, result.start);
    internal::PutTime(&id_input, result.end);
    internal::PutU8(&id_input, result.is_update ? 1 : 0);
    id_input.append(data);
    const std::string id = Md5Hex(Md5(id_input));
    if (!written_since_snapshot_.empty() && written_since_snapshot_.contains(id)) {
      ++duplicates_skipped_;
      return absl::OkStatus();
    }
    PutOptions put;
    put.explicit_hash_key = route;
    for (int attempt = 0;; ++attempt) {
      absl::StatusOr<PutRecordResult> r = stream_.PutRecord(id, data, put);
      if (r.ok()) {
        ++written_;
        return absl::OkStatus();
      }
      if (GetErrorCode(r.status()) != ErrorCode::kProvisionedThroughputExceeded ||
          attempt >= options_.max_throttle_retries) {
        return r.status();
      }
      // Backs off through the stream's clock: a SimulatedClock moves forward instead of the
      // thread sleeping, so the limit's bucket refills deterministically.
      stream_.clock()->SleepFor(absl::Milliseconds(std::min(100, 1 << std::min(attempt, 7))));
    }
  }

  // Also forgets the ids found by the last restore: input before this snapshot is never replayed.
  void SavePosition(std::string* out) {
    written_since_snapshot_.clear();
    internal::PutTime(out, stream_.clock()->Now());
  }

  absl::Status RestorePosition(std::string_view saved) {
    internal::ByteReader in(saved);
    absl::Time since;
    if (!internal::ReadTime(&in, &since) || !in.AtEnd()) {
      return InvalidArgumentError("not a StreamSink position");
    }
    written_since_snapshot_.clear();
    absl::StatusOr<std::vector<ShardDescription>> shards = stream_.ListShards();
    if (!shards.ok()) return shards.status();
    for (const ShardDescription& shard : *shards) {
      absl::StatusOr<ShardIterator> it =
          stream_.GetShardIterator(shard.shard_id, StartingPosition::AtTimestamp(since));
      if (!it.ok()) return it.status();
      std::optional<ShardIterator> next = *it;
      while (next) {
        absl::StatusOr<GetRecordsResult> batch = stream_.GetRecords(*next);
        if (!batch.ok()) return batch.status();
        for (const Record& r : batch->records) {
          written_since_snapshot_.insert(std::string(r.partition_key));
        }
        if (batch->records.empty() && batch->millis_behind_latest == 0) break;  // caught up
        next = batch->next_shard_iterator;
      }
    }
    return absl::OkStatus();
  }

  // Results put, and results skipped because a restored sink found them already written.
  uint64_t written() const { return written_; }
  uint64_t duplicates_skipped() const { return duplicates_skipped_; }

 private:
  StreamApi& stream_;
  const std::string name_;
  Encode encode_;
  const StreamSinkOptions options_;
  std::string scratch_;
  absl::flat_hash_set<std::string> written_since_snapshot_;
  uint64_t written_ = 0;
  uint64_t duplicates_skipped_ = 0;
};

}  // namespace rill

#endif  // RILL_PROCESS_SINK_H_
