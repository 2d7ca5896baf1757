// ShardReader: reads one shard record by record, from any starting position, and checkpoints.
//
// A reader pulls batches with StreamApi::GetRecords (a rill::Stream or a remote stream) and hands
// them out one record at a time, as zero-copy RecordViews. It follows the shard iterator for you,
// renews it transparently when it expired (a reader left alone for more than 5 minutes), stops at
// the end of a closed shard and then names its children. It tracks the last record it delivered and
// takes checkpoints under the KCL's rule (see "Checkpoints" below, and docs/semantics.md); with a
// CheckpointStore the checkpoints are stored, and a reader created later resumes after them.
//
// Example:
//   rill::ShardReaderOptions options;
//   options.application_name = "billing";
//   auto reader = rill::ShardReader::Create(*stream, shard, rill::StartingPosition::TrimHorizon(),
//                                           *store, options);  // e.g. a rill::FileCheckpointStore
//   if (!reader.ok()) return reader.status();
//   for (const rill::RecordView& record : **reader) {   // the records available now
//     Bill(record.partition_key(), record.data());
//   }
//   if (!(*reader)->status().ok()) return (*reader)->status();
//   absl::Status s = (*reader)->Checkpoint();            // the next run resumes after here
//
// Starting position and resume. Given a store, with options.resume_from_checkpoint true (the
// default), Create() reads the shard's lease row of options.application_name first:
//   - a checkpointed sequence number S: the reader starts at AFTER_SEQUENCE_NUMBER(S) and
//     `position` is ignored; last_checkpoint() is S;
//   - SHARD_END: the shard was finished; the reader starts at its end, so the first Next()
//     returns nullopt with at_shard_end() true and the children in child_shards();
//   - no row, an empty checkpoint or another sentinel (TRIM_HORIZON, LATEST, AT_TIMESTAMP):
//     nothing was checkpointed, and the reader starts at `position`.
// Without a store, or with resume_from_checkpoint false, the reader starts at `position`; in the
// latter case a stored checkpoint is neither read nor respected, and the first checkpoint this
// reader takes overwrites it.
//
// Record views. Next() returns a RecordView that points into the batch the reader holds. It is
// valid until the next call to Next() (whatever that call returns; a range-for calls it on every
// step) or the reader's destruction, whichever comes first. Copy what you keep: ToOwned(). In
// builds without NDEBUG, reading a view after that aborts the process with a message saying so
// (a generation check in every accessor); with NDEBUG, the check is compiled out and using a stale
// view is undefined behaviour, as with any dangling std::string_view. valid() tells in every
// build.
//
// Checkpoints (the KCL rule). Checkpoint(seq) accepts last_checkpoint() <= seq <= the largest
// permitted number, which is last_delivered() (or, before anything was delivered, the checkpoint
// the reader resumed from); anything else — and a sequence number of another shard — is
// kInvalidArgument. Checkpoint() checkpoints last_delivered(); once the reader is at the end of a
// closed shard (at_shard_end()) it records SHARD_END instead, and a reader resumed from that
// starts at the shard's end. With a store, a checkpoint is written to the shard's lease row (the
// row is created if absent; the update is a conditional write on the lease counter, retried when
// another writer got in between) and the reader's own state changes only once the write is done.
// A ShardReader does not take or hold the lease: do not point it at the lease table of a running
// rill::ConsumerGroup (every checkpoint bumps the lease counter, which the group reads as its
// lease being taken).
//
// Thread safety: a ShardReader is used by one thread at a time. Different readers are
// independent, including readers of the same shard. A RecordView may be read from any thread while
// its reader is not in Next().
//
// Allocation: delivering a record from the current batch allocates nothing; fetching a batch
// allocates the batch's vectors (one GetRecords call per batch_size records).
#ifndef RILL_CONSUME_SHARD_READER_H_
#define RILL_CONSUME_SHARD_READER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/stream/record.h"
#include "rill/stream/shard_description.h"
#include "rill/stream/shard_iterator.h"

namespace rill {

class CheckpointStore;
class StreamApi;
class ShardReader;

namespace internal {
// Prints why a RecordView was used after its reader moved on, and aborts. Debug builds only.
[[noreturn]] void DieOnStaleRecordView();
}  // namespace internal

// A record with its own copies of the key and the data: keep it as long as you like.
struct OwnedRecord {
  SequenceNumber sequence_number;
  absl::Time approximate_arrival_timestamp;
  std::string partition_key;
  std::string data;

  friend bool operator==(const OwnedRecord&, const OwnedRecord&) = default;
};

// A zero-copy view of the record a ShardReader delivered. Cheap to copy (copies share the same
// validity). See the file comment for how long it is valid.
class RecordView {
 public:
  std::string_view partition_key() const { return record().partition_key; }
  std::string_view data() const { return record().data; }
  SequenceNumber sequence_number() const { return record().sequence_number; }
  absl::Time approximate_arrival_timestamp() const {
    return record().approximate_arrival_timestamp;
  }

  // The stream's Record, whose string views point into the same storage (and are valid exactly
  // as long as this view).
  const Record& record() const {
#ifndef NDEBUG
    if (!valid()) internal::DieOnStaleRecordView();
#endif
    return *record_;
  }

  // Copies the record into strings of its own. Allocates.
  OwnedRecord ToOwned() const {
    const Record& r = record();
    return OwnedRecord{r.sequence_number, r.approximate_arrival_timestamp,
                       std::string(r.partition_key), std::string(r.data)};
  }

  // Whether the view may still be read: false once its reader has called Next() again or has
  // been destroyed. Works in every build; never touches the record.
  bool valid() const { return generation_->load(std::memory_order_relaxed) == expected_; }

 private:
  friend class ShardReader;
  RecordView(const Record* record, const std::atomic<uint64_t>* generation, uint64_t expected)
      : record_(record), generation_(generation), expected_(expected) {}

  const Record* record_;
  // The reader's generation counter. Counters are pooled and never freed, so a view can check
  // its counter even after its reader is gone.
  const std::atomic<uint64_t>* generation_;
  uint64_t expected_;
};

struct ShardReaderOptions {
  // Records asked for per GetRecords call. Range: 1..10,000 (kInvalidArgument otherwise).
  // Default: 1,000.
  int batch_size = 1000;

  // The application whose lease table holds the checkpoints: 1-128 characters of
  // [a-zA-Z0-9_.-]. Required when the reader is created with a store (kInvalidArgument), ignored
  // otherwise. Default: empty.
  std::string application_name;

  // With a store: whether Create() resumes after the shard's stored checkpoint (true) or always
  // starts at the position it is given (false). Default: true.
  bool resume_from_checkpoint = true;
};

class ShardReader {
 public:
  // Reads `shard_id` of `stream` from `position`; checkpoints live in the reader only. The stream
  // is borrowed: it must outlive the reader. The shard iterator is taken here, so a LATEST reader
  // starts after the newest record at the time of this call. Errors: kInvalidArgument for bad
  // options or a position that breaks StartingPosition's rules; kResourceNotFound for a shard that
  // does not exist (or has expired).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ShardReader>> Create(
      StreamApi& stream, ShardId shard_id, StartingPosition position,
      ShardReaderOptions options = {});

  // The same, with checkpoints stored in `store` under options.application_name, and resumed
  // from (see the file comment). The stream and the store are borrowed: both must outlive the
  // reader. Errors: those above; kInvalidArgument for a bad application_name; the store's errors
  // when resuming; kInternalFailure for a stored checkpoint that is neither a sequence number nor
  // a sentinel.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<ShardReader>> Create(
      StreamApi& stream, ShardId shard_id, StartingPosition position, CheckpointStore& store,
      ShardReaderOptions options = {});

  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  // The next record, or nullopt when no record is available now: either the reader has caught up
  // with an open shard (call again later: records put meanwhile come next), or it has read a
  // closed shard to its end (then at_shard_end() is true, child_shards() names the children,
  // and every later call returns nullopt too). An iterator that expired is renewed without a
  // word: at AFTER_SEQUENCE_NUMBER(last_delivered()), or, before anything was delivered, at the
  // starting position (a LATEST reader restarts at AT_TIMESTAMP of its last read, which loses
  // nothing, but may also deliver records that arrived in that very microsecond before the point
  // where it started). Errors are GetRecords' and GetShardIterator's
  // (kProvisionedThroughputExceeded when throttled, kResourceNotFound once the shard has expired,
  // ...); the reader stays usable and the next call tries again from the same place. Invalidates
  // every RecordView handed out before.
  [[nodiscard]] absl::StatusOr<std::optional<RecordView>> Next();

  // Range-for over the records available now: each step calls Next(), and the loop ends when
  // Next() returns nullopt or an error (then in status()). Iterating again continues where the
  // previous loop stopped.
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using difference_type = std::ptrdiff_t;
    using value_type = RecordView;
    using reference = const RecordView&;
    using pointer = const RecordView*;

    Iterator() = default;
    const RecordView& operator*() const { return *current_; }
    const RecordView* operator->() const { return &*current_; }
    Iterator& operator++() {
      Advance();
      return *this;
    }
    void operator++(int) { Advance(); }
    friend bool operator==(const Iterator& it, std::default_sentinel_t) {
      return !it.current_.has_value();
    }

   private:
    friend class ShardReader;
    explicit Iterator(ShardReader* reader) : reader_(reader) { Advance(); }
    void Advance();

    ShardReader* reader_ = nullptr;
    std::optional<RecordView> current_;
  };
  Iterator begin() { return Iterator(this); }
  std::default_sentinel_t end() { return std::default_sentinel; }

  // The outcome of the latest Next() (also those a range-for made): OK, or its error.
  const absl::Status& status() const;

  ShardId shard_id() const;
  // Where the reader started: the position given to Create(), or AFTER_SEQUENCE_NUMBER of the
  // checkpoint it resumed from (LATEST for a shard checkpointed at SHARD_END).
  const StartingPosition& starting_position() const;
  // The sequence number of the last record Next() returned; nullopt before the first.
  const std::optional<SequenceNumber>& last_delivered() const;
  // The last sequence number checkpointed by this reader or resumed from; nullopt if none.
  const std::optional<SequenceNumber>& last_checkpoint() const;
  // Whether SHARD_END has been checkpointed (by this reader, or found in the store at Create()).
  bool shard_end_checkpointed() const;
  // Whether the reader has read a closed shard to its end.
  bool at_shard_end() const;
  // The children of the closed shard, once at_shard_end(); empty before.
  const std::vector<ChildShard>& child_shards() const;
  // GetRecords' millis_behind_latest of the latest batch fetched (0 before the first).
  int64_t millis_behind_latest() const;

  // Checkpoints last_delivered() — or SHARD_END once at_shard_end(). With nothing delivered since
  // the last checkpoint (and not at the shard's end) it does nothing and returns OK. Errors: the
  // store's (the reader's checkpoint state is then unchanged).
  [[nodiscard]] absl::Status Checkpoint();
  // Checkpoints `sequence_number` under the KCL rule (see the file comment): kInvalidArgument if
  // it is below last_checkpoint(), above last_delivered(), of another shard, or if SHARD_END was
  // already checkpointed. Re-checkpointing last_checkpoint() is accepted and writes nothing.
  [[nodiscard]] absl::Status Checkpoint(SequenceNumber sequence_number);

 private:
  struct State;
  // Both Create()s; a null store keeps the checkpoints in the reader only.
  static absl::StatusOr<std::unique_ptr<ShardReader>> Make(StreamApi& stream, ShardId shard_id,
                                                           StartingPosition position,
                                                           CheckpointStore* store,
                                                           ShardReaderOptions options);
  explicit ShardReader(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace rill

#endif  // RILL_CONSUME_SHARD_READER_H_
