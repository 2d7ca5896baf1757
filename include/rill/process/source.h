// Pipeline sources: where a rill::Pipeline reads its input, batch by batch.
//
// A source hands out batches of records of one source shard at a time (the watermark is tracked
// per source shard). It also knows its input position — what it has delivered so far — as bytes
// that go into the pipeline's snapshot, so that a pipeline restored from a snapshot resumes
// reading exactly after the input that snapshot covers.
//
// Provided:
//   VectorSource<T>           in-memory records, for tests and simulations; any shard and
//                             arrival time per record.
//   SubscriptionSource<T, D>  a Stream through a registered consumer's enhanced fan-out
//                             subscriptions (rill::StreamSubscriber), with a decoder D turning a
//                             rill::Record into std::optional<T> (nullopt: undecodable).
//   ConsumerGroupSource<T, D> a Stream through a consumer-group worker that holds shard leases;
//                             checkpoints are written when the pipeline commits a snapshot.
//
// A source is driven by one pipeline, from one thread: sources are not thread-safe.
#ifndef RILL_PROCESS_SOURCE_H_
#define RILL_PROCESS_SOURCE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "rill/base/error.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/consume/consumer_group.h"
#include "rill/consume/record_processor.h"
#include "rill/consume/stream_subscriber.h"
#include "rill/process/internal/aggregator_encoding.h"
#include "rill/stream/record.h"
#include "rill/stream/stream_api.h"

namespace rill {

// One input record: its value and when it reached the source (a stream's approximate arrival
// timestamp), which is its event time unless the pipeline extracts one.
template <typename T>
struct SourceRecord {
  T value;
  absl::Time arrival_time;
};

// Records of one source shard, in order. The span is valid until the source's next Next().
// The pipeline advances the watermark once per batch, so the batch size (VectorSource's
// batch_size, a subscription's max_records_per_event, a group's max_records) is how far a shard
// may get ahead within one step; see "Watermark and batches" in pipeline.h.
template <typename T>
struct SourceBatch {
  ShardId shard;
  absl::Span<const SourceRecord<T>> records;
  // The shard has ended (a closed shard read to its end): it no longer holds the watermark back.
  bool shard_ended = false;
};

template <typename T>
class Source {
 public:
  using Element = T;
  virtual ~Source() = default;

  // The next batch, or nullopt when nothing is available now. Never blocks for long.
  [[nodiscard]] virtual absl::StatusOr<std::optional<SourceBatch<T>>> Next() = 0;

  // True once a bounded source has delivered everything (it never will for a stream).
  virtual bool exhausted() const { return false; }

  // True when the source has delivered everything there is to read now, so that a pipeline
  // reading input to its current end may Finish(): a bounded source once exhausted(); a stream
  // source once it reads every shard it should (see each source) and its last Next() found
  // nothing, with every shard's last batch up to the shard's newest record (millis_behind_latest
  // 0). It may turn false again when new records come. Default: exhausted().
  virtual bool caught_up() const { return exhausted(); }

  // Shards known before their first record; each holds the watermark back until it goes idle.
  virtual std::vector<ShardId> known_shards() const { return {}; }

  // Appends the position covering everything Next() has returned so far (and nothing more).
  virtual void SavePosition(std::string* out) const = 0;

  // Resumes after a saved position. Called at most once, before the first Next().
  // Errors: kInvalidArgument for bytes that are not a position of this kind of source.
  [[nodiscard]] virtual absl::Status RestorePosition(std::string_view saved) = 0;

  // Called once a snapshot covering everything delivered so far is safe with the application:
  // a stream source may move its checkpoints there. Default: nothing to do.
  [[nodiscard]] virtual absl::Status Commit() { return absl::OkStatus(); }

  // Records the source could not decode (they are counted, never silently dropped).
  virtual uint64_t undecodable_records() const { return 0; }
};

// In-memory input. Records are delivered in the order added, in batches of consecutive records
// of the same shard (at most batch_size each).
template <typename T>
class VectorSource final : public Source<T> {
 public:
  // batch_size: records per batch at most. Range: >= 1. Default: 1024.
  explicit VectorSource(size_t batch_size = 1024) : batch_size_(batch_size < 1 ? 1 : batch_size) {}

  // Appends a record of `shard` (default: shard 0) that arrived at `arrival_time`.
  void Add(T value, absl::Time arrival_time, ShardId shard = ShardId(0)) {
    records_.push_back({std::move(value), arrival_time});
    shards_.push_back(shard);
  }

  absl::StatusOr<std::optional<SourceBatch<T>>> Next() override {
    if (next_ >= records_.size()) return std::optional<SourceBatch<T>>();
    const size_t begin = next_;
    const ShardId shard = shards_[begin];
    size_t end = begin + 1;
    while (end < records_.size() && end - begin < batch_size_ && shards_[end] == shard) ++end;
    next_ = end;
    return std::optional<SourceBatch<T>>(
        SourceBatch<T>{shard, absl::MakeConstSpan(records_.data() + begin, end - begin), false});
  }

  bool exhausted() const override { return next_ >= records_.size(); }

  std::vector<ShardId> known_shards() const override {
    std::vector<ShardId> all(shards_.begin(), shards_.end());
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    return all;
  }

  void SavePosition(std::string* out) const override {
    internal::PutLittleEndian(out, static_cast<uint64_t>(next_));
  }

  absl::Status RestorePosition(std::string_view saved) override {
    internal::ByteReader in(saved);
    uint64_t next;
    if (!in.LittleEndian(&next) || !in.AtEnd() || next > records_.size()) {
      return InvalidArgumentError("not a VectorSource position for this input");
    }
    next_ = static_cast<size_t>(next);
    return absl::OkStatus();
  }

  size_t size() const { return records_.size(); }

 private:
  size_t batch_size_;
  std::vector<SourceRecord<T>> records_;
  std::vector<ShardId> shards_;
  size_t next_ = 0;
};

namespace internal {

// Per-shard input positions of a stream source: the last sequence number delivered (nullopt:
// none yet) and whether the shard was read to its end. Encoded sorted by shard, so that equal
// positions give equal bytes.
struct ShardPositions {
  struct Position {
    std::optional<SequenceNumber> last;
    bool ended = false;
  };
  std::map<ShardId, Position> shards;

  void Encode(std::string* out) const {
    PutLittleEndian(out, static_cast<uint32_t>(shards.size()));
    for (const auto& [shard, p] : shards) {
      const std::string id = shard.ToString();
      PutLittleEndian(out, static_cast<uint32_t>(id.size()));
      out->append(id);
      PutU8(out, static_cast<uint8_t>((p.last ? 1 : 0) | (p.ended ? 2 : 0)));
      const std::string seq = p.last ? p.last->ToString() : std::string();
      PutLittleEndian(out, static_cast<uint32_t>(seq.size()));
      out->append(seq);
    }
  }

  bool Decode(std::string_view bytes) {
    ByteReader in(bytes);
    uint32_t n;
    if (!in.LittleEndian(&n) || n > bytes.size()) return false;
    std::map<ShardId, Position> decoded;
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t id_len, seq_len;
      std::string_view id, seq;
      uint8_t flags;
      if (!in.LittleEndian(&id_len) || !in.Bytes(id_len, &id) || !in.U8(&flags) || flags > 3 ||
          !in.LittleEndian(&seq_len) || !in.Bytes(seq_len, &seq)) {
        return false;
      }
      absl::StatusOr<ShardId> shard = ShardId::Parse(id);
      if (!shard.ok()) return false;
      Position p;
      p.ended = (flags & 2) != 0;
      if (flags & 1) {
        absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(seq);
        if (!s.ok()) return false;
        p.last = *s;
      } else if (!seq.empty()) {
        return false;
      }
      if (!decoded.emplace(*shard, p).second) return false;
    }
    if (!in.AtEnd()) return false;
    shards = std::move(decoded);
    return true;
  }
};

// The stream's shards not read to their end yet: a stream source announces them up front, so
// that the watermark waits for every shard (until it goes idle) instead of running ahead with
// the first shard that delivers. When a remote stream cannot list its shards, the shards the
// positions know of and have not finished.
inline std::vector<ShardId> UnfinishedShards(const StreamApi& stream,
                                             const ShardPositions& positions) {
  std::vector<ShardId> shards;
  absl::StatusOr<std::vector<ShardDescription>> listed = stream.ListShards();
  if (!listed.ok()) {
    for (const auto& [id, p] : positions.shards) {
      if (!p.ended) shards.push_back(id);
    }
    return shards;
  }
  for (const ShardDescription& d : *listed) {
    auto it = positions.shards.find(d.shard_id);
    if (it == positions.shards.end() || !it->second.ended) shards.push_back(d.shard_id);
  }
  return shards;
}

// Decodes a batch of stream records into `out`, skipping those at or before `after` (already
// covered by a restored snapshot). Returns the number that did not decode.
template <typename T, typename Decode>
uint64_t DecodeRecords(absl::Span<const Record> records, const std::optional<SequenceNumber>& after,
                       Decode& decode, std::vector<SourceRecord<T>>* out) {
  uint64_t undecodable = 0;
  out->clear();
  for (const Record& r : records) {
    if (after && r.sequence_number <= *after) continue;
    std::optional<T> value = decode(r);
    if (!value) {
      ++undecodable;
      continue;
    }
    out->push_back({std::move(*value), r.approximate_arrival_timestamp});
  }
  return undecodable;
}

}  // namespace internal

// A stream (any StreamApi) read through enhanced fan-out: one subscription per shard, children
// after parents. `decode(const rill::Record&)` returns std::optional<T>; nullopt counts as
// undecodable. The position is the subscriber's per-shard positions; restoring one resumes each
// shard after it (and finished shards are not read again).
template <typename T, typename Decode>
class SubscriptionSource final : public Source<T> {
 public:
  // `stream` is borrowed: it must outlive the source. options.consumer_name must be registered on
  // it (checked at the first Next(), which creates the StreamSubscriber).
  SubscriptionSource(StreamApi& stream, StreamSubscriberOptions options, Decode decode)
      : stream_(stream), options_(std::move(options)), decode_(std::move(decode)) {}

  absl::StatusOr<std::optional<SourceBatch<T>>> Next() override {
    if (!subscriber_) {
      absl::StatusOr<std::unique_ptr<StreamSubscriber>> s =
          StreamSubscriber::Create(stream_, options_);
      if (!s.ok()) return s.status();
      subscriber_ = std::move(*s);
    }
    absl::StatusOr<std::optional<StreamSubscriber::Event>> event =
        subscriber_->Next(absl::ZeroDuration());
    if (!event.ok()) return event.status();
    drained_ = !*event;
    if (!*event) return std::optional<SourceBatch<T>>();
    current_ = std::move(**event);  // keeps the records' storage alive until the next call
    behind_[current_.shard_id] = current_.event.millis_behind_latest;
    internal::ShardPositions::Position& p = positions_.shards[current_.shard_id];
    const std::optional<SequenceNumber> skip_after = p.last;
    undecodable_ += internal::DecodeRecords<T>(absl::MakeConstSpan(current_.event.records),
                                               skip_after, decode_, &buffer_);
    if (!current_.event.records.empty()) {
      const SequenceNumber newest = current_.event.records.back().sequence_number;
      if (!p.last || *p.last < newest) p.last = newest;
    }
    const bool ended = !current_.event.continuation_sequence_number;
    if (ended) p.ended = true;
    return std::optional<SourceBatch<T>>(
        SourceBatch<T>{current_.shard_id, absl::MakeConstSpan(buffer_), ended});
  }

  std::vector<ShardId> known_shards() const override {
    return UnfinishedShards(stream_, positions_);
  }

  // Caught up: the last Next() found no event, every shard of the stream not read to its end is
  // subscribed (a child waits for its parents' ends), and each one's last event was at its
  // newest record. (A shard whose reads were throttled before its first event looks caught up.)
  bool caught_up() const override {
    if (!subscriber_ || !drained_) return false;
    const std::map<ShardId, std::optional<SequenceNumber>> started = subscriber_->positions();
    for (ShardId shard : UnfinishedShards(stream_, positions_)) {
      if (!started.contains(shard)) return false;
      auto it = behind_.find(shard);
      if (it != behind_.end() && it->second > 0) return false;
    }
    return true;
  }

  void SavePosition(std::string* out) const override { positions_.Encode(out); }

  absl::Status RestorePosition(std::string_view saved) override {
    if (subscriber_) return InvalidArgumentError("RestorePosition after the source started");
    internal::ShardPositions decoded;
    if (!decoded.Decode(saved)) {
      return InvalidArgumentError("not a SubscriptionSource position");
    }
    positions_ = std::move(decoded);
    for (const auto& [shard, p] : positions_.shards) {
      if (p.ended) {
        options_.resume_from[shard] = std::nullopt;
      } else if (p.last) {
        options_.resume_from[shard] = *p.last;
      }
    }
    return absl::OkStatus();
  }

  uint64_t undecodable_records() const override { return undecodable_; }

 private:
  StreamApi& stream_;
  StreamSubscriberOptions options_;
  Decode decode_;
  std::unique_ptr<StreamSubscriber> subscriber_;
  StreamSubscriber::Event current_;
  std::vector<SourceRecord<T>> buffer_;
  internal::ShardPositions positions_;
  uint64_t undecodable_ = 0;
  // For caught_up(): whether the last Next() found no event, and each shard's last
  // millis_behind_latest.
  bool drained_ = false;
  std::map<ShardId, int64_t> behind_;
};

// A Stream read through a consumer group: the source adds one worker to `group` and takes
// leases like any KCL worker. One worker poll reads a batch of every held shard; the batches wait
// in the source until Next() hands them out, and only then does the position cover them (a
// Poll(max_batches) of the pipeline may end with some still waiting). Checkpoints follow the
// pipeline's snapshots: Commit() checkpoints every held shard at the last record the pipeline
// took, and a shard that ended gets its SHARD_END checkpoint (which lets its children start
// elsewhere) only once a snapshot covers its end. Restoring a position skips records the
// snapshot already covers, so a group checkpoint older than the snapshot (a crash between saving
// the snapshot and Commit) causes no double counting.
// The worker is polled only from Next(), so its processor callbacks run on the pipeline's thread,
// inside Next(): nothing here needs a lock (and the source is not thread-safe, as every source).
template <typename T, typename Decode>
class ConsumerGroupSource final : public Source<T> {
 public:
  // `group` is borrowed: it must outlive the source. worker_id: unique in the group.
  ConsumerGroupSource(ConsumerGroup& group, std::string worker_id, Decode decode)
      : group_(group), worker_id_(std::move(worker_id)), decode_(std::move(decode)) {}

  ~ConsumerGroupSource() override {
    // Hand the leases back without a final checkpoint: everything after the last commit is
    // read again by whoever takes the shards, and covered by nothing yet.
    if (worker_ != nullptr) group_.CrashWorker(worker_id_);
  }

  absl::StatusOr<std::optional<SourceBatch<T>>> Next() override {
    if (worker_ == nullptr) {
      absl::StatusOr<Worker*> w =
          group_.AddWorker(worker_id_, [this](ShardId) -> std::unique_ptr<RecordProcessor> {
            return std::make_unique<Processor>(this);
          });
      if (!w.ok()) return w.status();
      worker_ = *w;
    }
    if (next_pending_ >= queued_) {
      queued_ = 0;
      next_pending_ = 0;
      drained_ = false;
      absl::Status polled = worker_->Poll();
      if (!polled.ok()) return polled;
      if (queued_ == 0) {
        drained_ = true;
        return std::optional<SourceBatch<T>>();
      }
    }
    const Pending& batch = pending_[next_pending_++];
    // The pipeline takes the batch now: only from here on may a snapshot or a checkpoint cover
    // it. (Batches still queued are read again after a restart, from the group or the snapshot.)
    internal::ShardPositions::Position& taken = taken_.shards[batch.shard];
    if (batch.last) taken.last = batch.last;  // beyond taken.last: batches come in order
    if (batch.ended) taken.ended = true;
    undecodable_ += batch.undecodable;
    return std::optional<SourceBatch<T>>(
        SourceBatch<T>{batch.shard, absl::MakeConstSpan(batch.records), batch.ended});
  }

  std::vector<ShardId> known_shards() const override {
    return UnfinishedShards(group_.stream(), taken_);
  }

  // Caught up: every shard of the stream not read to its end is held by this worker, has its
  // processor (a child waits for its parents) and was read up to its newest record (its last
  // batch under this lease, if any, had millis_behind_latest 0 or reached its end), and the last
  // worker poll delivered nothing. That is the whole stream read: what an application whose one
  // pipeline worker reads the stream (a new worker taking over from a crashed one included:
  // until the old leases expire and it holds them all, it is not caught up) waits for before
  // Finish(). A worker of a group with several live workers holds only its share: it is never
  // caught up. (A shard whose reads were throttled before its first batch looks read.)
  bool caught_up() const override {
    if (worker_ == nullptr || !drained_) return false;
    const std::vector<ShardId> held = worker_->held_shards();  // in shard-id order
    for (ShardId shard : UnfinishedShards(group_.stream(), taken_)) {
      if (!std::binary_search(held.begin(), held.end(), shard)) return false;
      auto it = leases_.find(shard);
      if (it == leases_.end() || !it->second.initialized) return false;
      if (!it->second.ended && it->second.behind > 0) return false;
    }
    return true;
  }

  void SavePosition(std::string* out) const override { taken_.Encode(out); }

  absl::Status RestorePosition(std::string_view saved) override {
    if (worker_ != nullptr) return InvalidArgumentError("RestorePosition after the source started");
    internal::ShardPositions decoded;
    if (!decoded.Decode(saved)) return InvalidArgumentError("not a ConsumerGroupSource position");
    taken_ = std::move(decoded);
    read_ = taken_;
    return absl::OkStatus();
  }

  absl::Status Commit() override {
    committed_ = taken_;
    if (worker_ == nullptr) return absl::OkStatus();
    absl::Status status;
    for (const auto& [shard, p] : committed_.shards) {
      if (p.ended || !p.last) continue;  // SHARD_END is written from ShardEnded
      // Worker::Checkpoint refuses anything past the last record delivered under the current
      // lease. A restored snapshot may be ahead of it (the group delivers those records again,
      // and they are skipped), or a shard has nothing new: checkpoint no further than that, and
      // not at all before the lease delivered anything.
      auto delivered = delivered_.find(shard);
      if (delivered == delivered_.end() || !delivered->second) continue;
      absl::Status s = worker_->Checkpoint(shard, std::min(*p.last, *delivered->second));
      // A shard whose lease moved on is another worker's now: not an error of this commit.
      if (!s.ok() && GetErrorCode(s) != ErrorCode::kResourceInUse && status.ok()) status = s;
    }
    return status;
  }

  uint64_t undecodable_records() const override { return undecodable_; }

 private:
  struct Pending {
    ShardId shard;
    std::vector<SourceRecord<T>> records;
    bool ended = false;
    std::optional<SequenceNumber> last;  // the newest record, if it moved read_ on
    uint64_t undecodable = 0;
  };

  class Processor final : public RecordProcessor {
   public:
    explicit Processor(ConsumerGroupSource* source) : source_(source) {}
    void Initialize(const InitializationInput& input) override {
      shard_ = input.shard_id;
      delivered_ = &source_->delivered_[shard_];
      delivered_->reset();  // a new lease: nothing delivered under it yet
      source_->leases_[shard_] = LeaseProgress{.initialized = true};
    }
    void ProcessRecords(const ProcessRecordsInput& input) override {
      if (!input.records.empty()) *delivered_ = input.records.back().sequence_number;
      source_->leases_[shard_].behind = input.millis_behind_latest;
      source_->Deliver(shard_, input.records, false);
    }
    void LeaseLost() override {
      if (delivered_ != nullptr) delivered_->reset();
      source_->leases_.erase(shard_);
    }
    void ShardEnded(Checkpointer& checkpointer) override {
      source_->leases_[shard_].ended = true;
      if (!announced_end_) {
        announced_end_ = true;
        source_->Deliver(shard_, {}, true);
      }
      // Only once a committed snapshot covers the end may the children start.
      auto it = source_->committed_.shards.find(shard_);
      if (it != source_->committed_.shards.end() && it->second.ended) {
        checkpointer.Checkpoint().IgnoreError();
      }
    }
    void ShutdownRequested(Checkpointer&) override {}

   private:
    ConsumerGroupSource* const source_;
    ShardId shard_;
    std::optional<SequenceNumber>* delivered_ = nullptr;  // source_->delivered_[shard_]
    bool announced_end_ = false;
  };

  // Queues a batch the worker delivered. Skipping goes by read_, which also covers the batches
  // still queued: a shard whose lease was lost and taken again is delivered again from its
  // checkpoint, and nothing may reach the pipeline twice.
  void Deliver(ShardId shard, absl::Span<const Record> records, bool ended) {
    internal::ShardPositions::Position& read = read_.shards[shard];
    if (read.ended) return;  // covered entirely by the restored snapshot
    if (queued_ == pending_.size()) pending_.emplace_back();
    Pending& batch = pending_[queued_++];  // a reused slot keeps its records' capacity
    batch.shard = shard;
    batch.ended = ended;
    batch.last.reset();
    batch.undecodable = internal::DecodeRecords<T>(records, read.last, decode_, &batch.records);
    if (!records.empty() && (!read.last || *read.last < records.back().sequence_number)) {
      read.last = batch.last = records.back().sequence_number;
    }
    if (ended) read.ended = true;
  }

  ConsumerGroup& group_;
  const std::string worker_id_;
  Decode decode_;
  Worker* worker_ = nullptr;
  // Batches of the last worker poll: pending_[next_pending_, queued_) wait for Next(); the
  // slots are reused from poll to poll.
  std::vector<Pending> pending_;
  size_t queued_ = 0;
  size_t next_pending_ = 0;
  // taken_: up to where the pipeline took each shard's records — the position snapshots save
  // and Commit checkpoints. read_: up to where the worker delivered them (taken_ plus the batches
  // still queued).
  internal::ShardPositions taken_;
  internal::ShardPositions read_;
  internal::ShardPositions committed_;
  // Per shard, the last record the worker delivered under its current lease: Worker::Checkpoint
  // accepts nothing beyond it.
  std::map<ShardId, std::optional<SequenceNumber>> delivered_;
  uint64_t undecodable_ = 0;
  // For caught_up(): whether the last worker poll delivered nothing, and per shard under its
  // current lease whether its processor started, its last batch's millis_behind_latest and
  // whether it reached the shard's end.
  struct LeaseProgress {
    bool initialized = false;
    int64_t behind = 0;
    bool ended = false;
  };
  bool drained_ = false;
  std::map<ShardId, LeaseProgress> leases_;
};

// Factories that deduce the decoder type. The stream or group is borrowed, as by the sources'
// constructors: it must outlive the source (and so the pipeline reading it).
template <typename T, typename Decode>
std::unique_ptr<Source<T>> FromSubscription(StreamApi& stream, StreamSubscriberOptions options,
                                            Decode decode) {
  return std::make_unique<SubscriptionSource<T, Decode>>(stream, std::move(options),
                                                         std::move(decode));
}
template <typename T, typename Decode>
std::unique_ptr<Source<T>> FromConsumerGroup(ConsumerGroup& group, std::string worker_id,
                                             Decode decode) {
  return std::make_unique<ConsumerGroupSource<T, Decode>>(group, std::move(worker_id),
                                                          std::move(decode));
}

}  // namespace rill

#endif  // RILL_PROCESS_SOURCE_H_
