// ShardReader: batches from GetRecords, delivered one view at a time, and KCL-style checkpoints.
#include "rill/consume/shard_reader.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/sequence_layout.h"
#include "consume/checkpoint_store_internal.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/stream/stream_api.h"

namespace rill {
namespace internal {

void DieOnStaleRecordView() {
  std::fputs(
      "rill: a RecordView was used after its ShardReader moved on. A view is valid only until the "
      "reader's next Next() call (a range-for makes one per step) or the reader's destruction; "
      "copy what you keep with RecordView::ToOwned(). (This check runs in builds without "
      "NDEBUG.)\n",
      stderr);
  std::abort();
}

}  // namespace internal

namespace {

// Generation counters for RecordView checks. A reader takes one, bumps it on every Next() and
// when it dies, and gives it back; counters are never freed (and never go back to an old value),
// so a view can check its counter at any time, even after its reader is gone, without touching
// freed memory. The pool holds as many counters as readers ever lived at once.
class GenerationPool {
 public:
  static GenerationPool& Get() {
    static GenerationPool* pool = new GenerationPool();  // never destroyed: views may outlive it
    return *pool;
  }

  std::atomic<uint64_t>* Acquire() ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock<internal::Mutex> lock(&mu_);
    if (free_.empty()) {
      constexpr size_t kBlock = 64;
      blocks_.push_back(std::make_unique<std::atomic<uint64_t>[]>(kBlock));
      for (size_t i = 0; i < kBlock; ++i) free_.push_back(&blocks_.back()[i]);
    }
    std::atomic<uint64_t>* counter = free_.back();
    free_.pop_back();
    return counter;
  }

  void Release(std::atomic<uint64_t>* counter) ABSL_LOCKS_EXCLUDED(mu_) {
    internal::MutexLock<internal::Mutex> lock(&mu_);
    free_.push_back(counter);
  }

 private:
  internal::Mutex mu_;
  std::vector<std::unique_ptr<std::atomic<uint64_t>[]>> blocks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::atomic<uint64_t>*> free_ ABSL_GUARDED_BY(mu_);
};

// Bumps a generation counter. Only the owning reader writes it (one thread at a time), so a
// relaxed load and store suffice; the views only compare.
void Bump(std::atomic<uint64_t>* generation) {
  generation->store(generation->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

constexpr int kMaxStoreAttempts = 32;

}  // namespace

struct ShardReader::State {
  State(StreamApi& s, ShardId id, CheckpointStore* st, ShardReaderOptions o)
      : stream(s),
        store(st),
        shard_id(id),
        options(std::move(o)),
        generation(GenerationPool::Get().Acquire()) {}
  ~State() {
    Bump(generation);
    GenerationPool::Get().Release(generation);
  }

  StreamApi& stream;
  CheckpointStore* const store;  // null: checkpoints live in the reader only
  const ShardId shard_id;
  const ShardReaderOptions options;
  std::atomic<uint64_t>* const generation;

  StartingPosition start;
  ShardIterator iterator;  // where the next batch comes from (unless end_fetched)
  GetRecordsResult batch;  // the records being delivered, and their storage
  size_t next_in_batch = 0;
  // The batch in hand is the shard's last (GetRecords returned no next iterator); its children.
  bool end_fetched = false;
  std::vector<ChildShard> end_children;
  // The last batch has been delivered too; child_shards() now names the children.
  bool at_shard_end = false;
  std::vector<ChildShard> children;
  int64_t millis_behind_latest = 0;
  absl::Status status;

  std::optional<SequenceNumber> last_delivered;
  std::optional<SequenceNumber> last_checkpoint;
  bool shard_end_checkpointed = false;

  absl::StatusOr<std::optional<RecordView>> Fail(absl::Status s) {
    status = s;
    return s;
  }

  RecordView Deliver() {
    const Record& r = batch.records[next_in_batch++];
    last_delivered = r.sequence_number;
    status = absl::OkStatus();
    return RecordView(&r, generation, generation->load(std::memory_order_relaxed));
  }

  // A fresh iterator for the position after everything delivered (see Next()).
  absl::Status RenewIterator() {
    StartingPosition position = start;
    if (last_delivered) {
      position = StartingPosition::AfterSequenceNumber(*last_delivered);
    } else if (start.type == ShardIteratorType::kLatest) {
      // Nothing delivered, so every read since the start came back empty: the records after the
      // starting point all arrived at or after the latest read (the clock does not go back).
      // Clamped to now in case a simulated clock was set back since.
      position =
          StartingPosition::AtTimestamp(std::min(iterator.issued_at(), stream.clock()->Now()));
    }
    absl::StatusOr<ShardIterator> renewed = stream.GetShardIterator(shard_id, position);
    if (!renewed.ok()) return renewed.status();
    iterator = *renewed;
    return absl::OkStatus();
  }

  // The shard's parents, for a lease row this reader creates.
  absl::StatusOr<std::vector<std::string>> ParentIds() const {
    absl::StatusOr<std::vector<ShardDescription>> shards = stream.ListShards();
    if (!shards.ok()) return shards.status();
    std::vector<std::string> parents;
    for (const ShardDescription& d : *shards) {
      if (d.shard_id != shard_id) continue;
      if (d.parent_shard_id) parents.push_back(d.parent_shard_id->ToString());
      if (d.adjacent_parent_shard_id) parents.push_back(d.adjacent_parent_shard_id->ToString());
    }
    return parents;
  }

  // Writes `checkpoint` into the shard's lease row: creates the row if absent, else a conditional
  // update on its counter, retried while other writers get in between.
  absl::Status Store(const std::string& checkpoint) {
    if (store == nullptr) return absl::OkStatus();
    const std::string key = shard_id.ToString();
    for (int attempt = 0; attempt < kMaxStoreAttempts; ++attempt) {
      absl::StatusOr<std::optional<Lease>> got = store->GetLease(options.application_name, key);
      if (!got.ok()) return got.status();
      if (!got->has_value()) {
        Lease lease;
        lease.lease_key = key;
        lease.checkpoint = checkpoint;
        absl::StatusOr<std::vector<std::string>> parents = ParentIds();
        if (!parents.ok()) return parents.status();
        lease.parent_shard_ids = *std::move(parents);
        absl::StatusOr<bool> created = store->CreateLeaseIfAbsent(options.application_name, lease);
        if (!created.ok()) return created.status();
        if (*created) return absl::OkStatus();
        continue;  // somebody created it first: update theirs
      }
      Lease lease = std::move(**got);
      const int64_t expected = lease.counter;
      lease.counter = expected + 1;
      lease.checkpoint = checkpoint;
      lease.owner_switches_since_checkpoint = 0;
      absl::Status s = store->UpdateLease(options.application_name, lease, expected);
      const ErrorCode code = GetErrorCode(s);
      if (code != ErrorCode::kResourceInUse && code != ErrorCode::kResourceNotFound) return s;
    }
    return ResourceInUseError(absl::StrFormat(
        "checkpoint of %s for application %s: the lease row changed under %d attempts in a row",
        key, options.application_name, kMaxStoreAttempts));
  }
};

absl::StatusOr<std::unique_ptr<ShardReader>> ShardReader::Create(StreamApi& stream,
                                                                 ShardId shard_id,
                                                                 StartingPosition position,
                                                                 ShardReaderOptions options) {
  return Make(stream, shard_id, std::move(position), nullptr, std::move(options));
}

absl::StatusOr<std::unique_ptr<ShardReader>> ShardReader::Create(StreamApi& stream,
                                                                 ShardId shard_id,
                                                                 StartingPosition position,
                                                                 CheckpointStore& store,
                                                                 ShardReaderOptions options) {
  return Make(stream, shard_id, std::move(position), &store, std::move(options));
}

absl::StatusOr<std::unique_ptr<ShardReader>> ShardReader::Make(StreamApi& stream, ShardId shard_id,
                                                               StartingPosition position,
                                                               CheckpointStore* store,
                                                               ShardReaderOptions options) {
  if (options.batch_size < 1 || options.batch_size > kMaxGetRecordsLimit) {
    return InvalidArgumentError(
        absl::StrFormat("ShardReaderOptions::batch_size must be within [1, %d], not %d",
                        kMaxGetRecordsLimit, options.batch_size));
  }
  if (store != nullptr) {
    if (absl::Status s = internal::ValidateApplicationName(options.application_name); !s.ok()) {
      return InvalidArgumentError(
          absl::StrCat("ShardReaderOptions::application_name: ", s.message()));
    }
  }
  auto state = std::make_unique<State>(stream, shard_id, store, std::move(options));
  state->start = std::move(position);
  const ShardReaderOptions& o = state->options;
  if (store != nullptr && o.resume_from_checkpoint) {
    absl::StatusOr<std::optional<Lease>> lease =
        store->GetLease(o.application_name, shard_id.ToString());
    if (!lease.ok()) return lease.status();
    if (lease->has_value()) {
      const std::string& checkpoint = (*lease)->checkpoint;
      if (checkpoint == kCheckpointShardEnd) {
        state->start = StartingPosition::Latest();
        state->shard_end_checkpointed = true;
      } else if (!checkpoint.empty() && checkpoint != kCheckpointTrimHorizon &&
                 checkpoint != kCheckpointLatest && checkpoint != kCheckpointAtTimestamp) {
        absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(checkpoint);
        if (!s.ok()) {
          return InternalFailureError(absl::StrFormat(
              "the lease of %s in application %s has checkpoint '%s', which is neither a "
              "sequence number nor a sentinel",
              shard_id.ToString(), o.application_name, checkpoint));
        }
        state->start = StartingPosition::AfterSequenceNumber(*s);
        state->last_checkpoint = *s;
      }
    }
  }
  absl::StatusOr<ShardIterator> iterator = stream.GetShardIterator(shard_id, state->start);
  if (!iterator.ok()) return iterator.status();
  state->iterator = *iterator;
  return std::unique_ptr<ShardReader>(new ShardReader(std::move(state)));
}

ShardReader::ShardReader(std::unique_ptr<State> state) : state_(std::move(state)) {}

ShardReader::~ShardReader() = default;

absl::StatusOr<std::optional<RecordView>> ShardReader::Next() {
  State& s = *state_;
  Bump(s.generation);
  if (s.next_in_batch < s.batch.records.size()) return std::optional<RecordView>(s.Deliver());
  if (s.end_fetched) {
    s.at_shard_end = true;
    s.children = s.end_children;
    s.status = absl::OkStatus();
    return std::optional<RecordView>();
  }
  absl::StatusOr<GetRecordsResult> got = s.stream.GetRecords(s.iterator, s.options.batch_size);
  if (!got.ok() && GetErrorCode(got.status()) == ErrorCode::kExpiredIterator) {
    if (absl::Status renewed = s.RenewIterator(); !renewed.ok()) return s.Fail(renewed);
    got = s.stream.GetRecords(s.iterator, s.options.batch_size);
  }
  if (!got.ok()) return s.Fail(got.status());
  s.batch = std::move(*got);
  s.next_in_batch = 0;
  s.millis_behind_latest = s.batch.millis_behind_latest;
  if (s.batch.next_shard_iterator) {
    s.iterator = *s.batch.next_shard_iterator;
  } else {
    s.end_fetched = true;
    s.end_children = s.batch.child_shards;
  }
  if (s.batch.records.empty()) {
    s.at_shard_end = s.end_fetched;
    if (s.at_shard_end) s.children = s.end_children;
    s.status = absl::OkStatus();
    return std::optional<RecordView>();
  }
  return std::optional<RecordView>(s.Deliver());
}

void ShardReader::Iterator::Advance() {
  current_.reset();
  absl::StatusOr<std::optional<RecordView>> next = reader_->Next();
  if (next.ok() && next->has_value()) current_ = **next;
}

const absl::Status& ShardReader::status() const { return state_->status; }
ShardId ShardReader::shard_id() const { return state_->shard_id; }
const StartingPosition& ShardReader::starting_position() const { return state_->start; }
const std::optional<SequenceNumber>& ShardReader::last_delivered() const {
  return state_->last_delivered;
}
const std::optional<SequenceNumber>& ShardReader::last_checkpoint() const {
  return state_->last_checkpoint;
}
bool ShardReader::shard_end_checkpointed() const { return state_->shard_end_checkpointed; }
bool ShardReader::at_shard_end() const { return state_->at_shard_end; }
const std::vector<ChildShard>& ShardReader::child_shards() const { return state_->children; }
int64_t ShardReader::millis_behind_latest() const { return state_->millis_behind_latest; }

absl::Status ShardReader::Checkpoint() {
  State& s = *state_;
  if (s.at_shard_end) {
    if (s.shard_end_checkpointed) return absl::OkStatus();
    if (absl::Status stored = s.Store(std::string(kCheckpointShardEnd)); !stored.ok()) {
      return stored;
    }
    s.shard_end_checkpointed = true;
    return absl::OkStatus();
  }
  if (!s.last_delivered || s.last_delivered == s.last_checkpoint) return absl::OkStatus();
  return Checkpoint(*s.last_delivered);
}

absl::Status ShardReader::Checkpoint(SequenceNumber sequence_number) {
  State& s = *state_;
  const std::string text = sequence_number.ToString();
  if (s.shard_end_checkpointed) {
    return InvalidArgumentError(
        absl::StrFormat("cannot checkpoint %s on %s: SHARD_END is already checkpointed", text,
                        s.shard_id.ToString()));
  }
  // A rill stream's numbers name their shard; a remote Kinesis' (wider than 128 bits) do not,
  // and are judged by the order rule below alone.
  const internal::SequenceParts parts = internal::DecodeSequenceNumber(sequence_number);
  if (sequence_number.fits_128() &&
      (parts.version != internal::kSequenceVersion || parts.shard_index != s.shard_id.index())) {
    return InvalidArgumentError(absl::StrFormat(
        "cannot checkpoint %s on %s: it is not of this shard", text, s.shard_id.ToString()));
  }
  const std::optional<SequenceNumber> largest =
      s.last_delivered ? s.last_delivered : s.last_checkpoint;
  if (!largest) {
    return InvalidArgumentError(
        absl::StrFormat("cannot checkpoint %s on %s: no record has been delivered yet", text,
                        s.shard_id.ToString()));
  }
  if (sequence_number > *largest) {
    return InvalidArgumentError(
        absl::StrFormat("cannot checkpoint %s on %s: it is above the last delivered record %s",
                        text, s.shard_id.ToString(), largest->ToString()));
  }
  if (s.last_checkpoint && sequence_number < *s.last_checkpoint) {
    return InvalidArgumentError(
        absl::StrFormat("cannot checkpoint %s on %s: it is below the last checkpoint %s", text,
                        s.shard_id.ToString(), s.last_checkpoint->ToString()));
  }
  if (s.last_checkpoint == sequence_number) return absl::OkStatus();
  if (absl::Status stored = s.Store(text); !stored.ok()) return stored;
  s.last_checkpoint = sequence_number;
  return absl::OkStatus();
}

}  // namespace rill
