// DeliveryStream's core: the source (a consumer group over the source stream, or over the
// internal stream DirectPut writes to), the processors, the buffers, retries, the error output
// and checkpoints. The destinations are behind deliver_internal::Destination.
//
// Everything a round touches is guarded by round_mu_: Poll(), the thread's rounds, Flush() and
// Close() take turns. Puts do not take it: they write to the internal stream and count bytes in
// atomics, so a destination that blocks a round (an HTTP timeout) never blocks a put.
#include "rill/deliver/delivery_stream.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <random>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "deliver/codec.h"
#include "deliver/destination.h"
#include "deliver/http_destination.h"
#include "deliver/json_path.h"
#include "deliver/object_store.h"
#include "deliver/postgres_destination.h"
#include "deliver/simple_destinations.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"
#include "rill/consume/consumer_group.h"
#include "rill/consume/sqlite_checkpoint_store.h"
#include "rill/stream/stream.h"
#include "rill/stream/stream_summary.h"
#include "storage/file_util.h"

namespace rill {

using deliver_internal::AttemptResult;
using deliver_internal::Batch;
using deliver_internal::BatchRecord;
using deliver_internal::DeliveryAttempt;
using deliver_internal::Destination;
using deliver_internal::ErrorOutputWriter;
using deliver_internal::FailedRecord;
using deliver_internal::JsonExtractor;
using deliver_internal::JsonPath;
using deliver_internal::JsonValue;
using deliver_internal::JsonValueKind;
using internal::Mutex;
using internal::MutexLock;

namespace {

constexpr size_t kMiB = size_t{1} << 20;
// How long the thread waits before reading a stream source again after a round that read
// nothing. DirectPut wakes it at once instead.
constexpr absl::Duration kIdlePoll = absl::Milliseconds(5);
// Backoff between attempts of a failed delivery (Firehose's HTTP endpoint schedule, used for
// every destination): from 1 s, doubling, +-15 % jitter, at most 2 minutes.
constexpr absl::Duration kFirstBackoff = absl::Seconds(1);
constexpr absl::Duration kMaxBackoff = absl::Minutes(2);
// Tickets: a tracker's slot in the high bits, the record's position in its shard's queue below.
constexpr int kTicketSlotShift = 40;
// Delivered buffers kept for reuse (see spare_). One is enough for a steady stream: a buffer is
// sealed, the next one opens (taking the spare), the sealed one is delivered (and becomes the
// spare). More would keep more idle memory: a spare holds a whole buffer's capacity.
constexpr size_t kMaxSpareBatches = 1;

#define RILL_RETURN_IF_ERROR(expr)     \
  do {                                 \
    absl::Status status_ = (expr);     \
    if (!status_.ok()) return status_; \
  } while (false)

absl::Status Invalid(std::string_view message) {
  return MakeError(ErrorCode::kInvalidArgument, message);
}
absl::Status OutOfRange(std::string_view message) {
  return MakeError(ErrorCode::kValidation, message);
}

bool IsDeliveryStreamName(std::string_view name) {
  return !name.empty() && name.size() <= 64 && internal::IsKinesisName(name);
}

// "00" to "ff": a byte's two hex digits.
constexpr std::array<char, 512> kHexPairs = [] {
  constexpr char kHex[] = "0123456789abcdef";
  std::array<char, 512> pairs{};
  for (int i = 0; i < 256; ++i) {
    pairs[2 * i] = kHex[i >> 4];
    pairs[2 * i + 1] = kHex[i & 0xf];
  }
  return pairs;
}();

// The low `bytes` bytes of v as 2 * bytes hex digits, most significant first, at out.
void PutHex(uint64_t v, int bytes, char* out) {
  for (int i = bytes - 1; i >= 0; --i, v >>= 8)
    std::memcpy(out + 2 * i, &kHexPairs[2 * (v & 0xff)], 2);
}

// 8 hex digits of the shard index, then 48 of the sequence number: unique per source record,
// fixed width, written without allocating. Twice per DirectPut record (the put's answer, the
// buffer), so a byte at a time: it was 7-8 % of BM_RillPostgres's CPU a digit at a time.
void AppendRecordId(ShardId shard, SequenceNumber seq, std::string* out) {
  char buf[56];
  PutHex(shard.index(), 4, buf);
  PutHex(seq.high64(), 8, buf + 8);
  PutHex(absl::Uint128High64(seq.value()), 8, buf + 24);
  PutHex(absl::Uint128Low64(seq.value()), 8, buf + 40);
  out->append(buf, sizeof(buf));
}

std::string NewGuid(std::mt19937_64& rng) {
  const uint64_t a = rng();
  const uint64_t b = rng();
  // Version 4, variant 1.
  return absl::StrFormat(
      "%08x-%04x-4%03x-%04x-%012x", static_cast<uint32_t>(a >> 32),
      static_cast<uint32_t>((a >> 16) & 0xffff), static_cast<uint32_t>(a & 0xfff),
      static_cast<uint32_t>(0x8000 | ((b >> 48) & 0x3fff)), b & 0xffffffffffffULL);
}

const BufferingHints& HintsOf(const DeliveryDestination& d) {
  return std::visit([](const auto& x) -> const BufferingHints& { return x.buffering; }, d);
}

absl::Status CheckHints(const BufferingHints& hints, size_t max_mib, std::string_view what) {
  if (hints.size_bytes < kMiB || hints.size_bytes > max_mib * kMiB) {
    return OutOfRange(absl::StrFormat("%s buffering size must be 1-%d MiB, got %d bytes",
                                      std::string(what), max_mib, hints.size_bytes));
  }
  if (hints.interval < absl::ZeroDuration() || hints.interval > absl::Seconds(900)) {
    return OutOfRange(absl::StrCat(std::string(what), " buffering interval must be 0-900 s, got ",
                                   absl::FormatDuration(hints.interval)));
  }
  return absl::OkStatus();
}

absl::Status CheckRetryDuration(absl::Duration d, std::string_view what) {
  if (d < absl::ZeroDuration() || d > absl::Seconds(7200)) {
    return OutOfRange(absl::StrCat(std::string(what), " retry duration must be 0-7200 s, got ",
                                   absl::FormatDuration(d)));
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------------------------

class DeliveryStream::Impl {
 public:
  explicit Impl(DeliveryStreamOptions options)
      : options_(std::move(options)),
        clock_(options_.clock),
        arn_(absl::StrCat("arn:aws:firehose:", options_.region, ":", options_.account_id,
                          ":deliverystream/", options_.name)),
        rng_(std::random_device{}()) {}

  ~Impl() { StopThread(); }

  absl::Status Init();

  const std::string& name() const { return options_.name; }
  const std::string& arn() const { return arn_; }

  absl::StatusOr<std::string> PutRecord(std::string_view data);
  absl::StatusOr<PutRecordBatchResult> PutRecordBatch(absl::Span<const std::string_view> records);
  absl::Status Poll();
  absl::Status Start();
  absl::Status Flush();
  absl::Status Close();
  DeliveryMetrics metrics() const;

 private:
  // A record read from the source, waiting for the transformation (with a Lambda only).
  struct RawRecord {
    uint64_t offset;
    uint32_t size;
    absl::Time arrival;
    ShardId shard;
    SequenceNumber seq;
    uint64_t ticket;
    uint32_t key_offset;
    uint16_t key_size;
  };

  // One source shard as its current processor read it: the records not yet done (delivered,
  // dropped or in the error output), in order, so that a checkpoint never passes one of them.
  struct ShardTracker {
    ShardId shard;
    bool live = true;    // the processor still holds the lease
    bool ended = false;  // the shard is closed and read to its end
    uint64_t base = 0;   // position of pending.front()
    std::deque<std::pair<SequenceNumber, bool>> pending;
    std::optional<SequenceNumber> checkpointable;  // done through here, not yet checkpointed
  };

  // A sealed buffer on its way to the destination.
  struct Pending {
    std::unique_ptr<Batch> batch;
    int attempts = 0;
    absl::Time first_attempt = absl::InfiniteFuture();
    absl::Time next_attempt = absl::InfinitePast();
    absl::Duration backoff = kFirstBackoff;
  };

  struct ErrorEntry {
    std::string type;
    FailedRecord record;
    uint64_t ticket;
  };

  class Processor;
  friend class Processor;

  absl::Status ValidateOptions();
  absl::Status MakeDestination();
  absl::Status MakeSource();
  absl::Status MakeSourceId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);

  // A round. `flush`: seal every buffer and attempt every pending batch now.
  absl::Status Round(bool flush) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  // Flush() and Close(): rounds with flush set until what was put before is delivered.
  absl::Status FlushRounds() ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  void RunThread();
  void StopThread();

  // The processors' side, called inside worker_->Poll() (under round_mu_).
  uint32_t NewTracker(ShardId shard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  void Ingest(uint32_t slot, absl::Span<const Record> records)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  ShardTracker* Tracker(uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_) {
    return slot < trackers_.size() ? trackers_[slot].get() : nullptr;
  }
  void MarkDone(uint64_t ticket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);

  // Processing.
  void ProcessRaw(bool all) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  void InvokeTransform(size_t begin, size_t end) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  // Decompressed (if configured) data of a source record, or a failure sent to the error output.
  // Then the Lambda, metadata extraction and the delimiter; Route() adds to its buffer.
  void FinishRecord(std::string_view data, absl::Time arrival, ShardId shard, SequenceNumber seq,
                    uint64_t ticket, std::string_view partition_key,
                    absl::Span<const std::pair<std::string, std::string>> lambda_keys,
                    std::string_view raw_for_errors) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  void Route(std::string_view data, absl::Time arrival, ShardId shard, SequenceNumber seq,
             uint64_t ticket, std::string_view partition_key, std::string_view raw_for_errors)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  void Fail(std::string_view type, std::string_view code, std::string_view message, int attempts,
            absl::Time arrival, std::string_view raw, uint64_t ticket, bool with_lambda_arn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);

  // Buffers and delivery.
  std::unique_ptr<Batch> NewBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  void Recycle(std::unique_ptr<Batch> batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  void Seal(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  void SealDue(bool all) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  absl::Status DeliverPending(bool flush) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  void GiveUp(Pending& p, const DeliveryAttempt& last) ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  absl::Status WriteErrors() ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  absl::Status CheckpointDone() ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  absl::Time NextDeadline() ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);
  void PublishGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(round_mu_);

  // DirectPut: a record accepted by a put has reached the buffers. (Records recovered from a
  // durable directory were not counted by this process: the count may go below zero.)
  void Released(uint64_t bytes) {
    if (internal_stream_) {
      in_flight_bytes_.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    }
  }

  DeliveryStreamOptions options_;
  const std::shared_ptr<Clock> clock_;
  const std::string arn_;

  // The source.
  std::unique_ptr<Stream> internal_stream_;          // DirectPut
  std::unique_ptr<CheckpointStore> internal_store_;  // DirectPut
  std::unique_ptr<ConsumerGroup> group_;
  Worker* worker_ = nullptr;

  // Which incarnation of the source this is (PostgreSQL keeps its progress per source).
  std::string source_id_;

  // What the processors need.
  std::vector<JsonPath> query_paths_;
  std::vector<std::string> query_names_;
  std::vector<std::string> lambda_keys_;  // the prefix's; empty: keep every key the Lambda gave
  bool partitioned_ = false;
  bool keep_all_lambda_keys_ = false;

  std::unique_ptr<Destination> destination_;
  std::unique_ptr<ErrorOutputWriter> error_output_;
  BufferingHints hints_;

  mutable Mutex round_mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(round_mu_);
  std::vector<std::unique_ptr<ShardTracker>> trackers_ ABSL_GUARDED_BY(round_mu_);
  // Records waiting for the Lambda.
  std::string raw_arena_ ABSL_GUARDED_BY(round_mu_);
  std::vector<RawRecord> raw_ ABSL_GUARDED_BY(round_mu_);
  // Reused by the processors.
  std::string scratch_ ABSL_GUARDED_BY(round_mu_);
  std::string delimited_ ABSL_GUARDED_BY(round_mu_);
  std::string buffer_key_ ABSL_GUARDED_BY(round_mu_);
  std::vector<std::pair<std::string, std::string>> keys_ ABSL_GUARDED_BY(round_mu_);
  std::vector<JsonValue> values_ ABSL_GUARDED_BY(round_mu_);
  JsonExtractor extractor_ ABSL_GUARDED_BY(round_mu_);
  // Open buffers by partition (the joined partition keys; "" without dynamic partitioning).
  absl::flat_hash_map<std::string, std::unique_ptr<Batch>> open_ ABSL_GUARDED_BY(round_mu_);
  std::deque<Pending> ready_ ABSL_GUARDED_BY(round_mu_);
  // Delivered buffers, emptied, whose arena, ids and records keep their capacity for the next
  // buffer. Otherwise every buffer's memory (records and ids take about as much again as the data
  // for ~100-byte records) is fresh pages, the records and ids grown by doubling, and on the VMs
  // rill is measured on the page faults cost ten times as much as reading and buffering the
  // records (benchmarks/deliver_benchmark.cc, BM_RillPostgres's read_ms). At most
  // kMaxSpareBatches.
  std::vector<std::unique_ptr<Batch>> spare_ ABSL_GUARDED_BY(round_mu_);
  std::vector<ErrorEntry> errors_ ABSL_GUARDED_BY(round_mu_);
  uint64_t buffered_bytes_ ABSL_GUARDED_BY(round_mu_) = 0;  // raw + open + ready
  bool closed_round_ ABSL_GUARDED_BY(round_mu_) = false;
  absl::Time last_tick_ ABSL_GUARDED_BY(round_mu_) = absl::InfinitePast();

  // Puts and the thread.
  std::atomic<bool> closed_{false};
  std::atomic<int> puts_in_progress_{0};     // PutRecordBatch calls under way
  std::atomic<int64_t> in_flight_bytes_{0};  // DirectPut: accepted, not yet read
  // Records the current (or last) round read from the source, and bytes read in all.
  size_t read_this_round_ ABSL_GUARDED_BY(round_mu_) = 0;
  uint64_t read_bytes_ ABSL_GUARDED_BY(round_mu_) = 0;
  Mutex thread_mu_;
  std::thread thread_ ABSL_GUARDED_BY(thread_mu_);
  std::atomic<bool> stop_{false};
  internal::Waker waker_;

  // Metrics.
  std::atomic<int64_t> incoming_records_{0}, incoming_bytes_{0}, incoming_put_requests_{0},
      throttled_records_{0}, delivery_records_{0}, delivery_bytes_{0}, delivery_success_{0},
      delivery_attempts_{0}, data_freshness_ms_{0}, processing_success_{0}, processing_failure_{0},
      processed_records_{0}, processed_bytes_{0}, dropped_records_{0}, error_records_{0},
      error_failures_{0}, active_partitions_{0}, buffered_gauge_{0};
};

// ---------------------------------------------------------------------------------------------
// The consumer group's processors hand records to the core.

class DeliveryStream::Impl::Processor final : public RecordProcessor {
 public:
  explicit Processor(Impl* impl) : impl_(impl) {}

  void Initialize(const InitializationInput& input) override
      ABSL_NO_THREAD_SAFETY_ANALYSIS {  // inside worker_->Poll(), under round_mu_
    slot_ = impl_->NewTracker(input.shard_id);
  }
  void ProcessRecords(const ProcessRecordsInput& input) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    impl_->Ingest(slot_, input.records);
  }
  void LeaseLost() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (ShardTracker* t = impl_->Tracker(slot_)) t->live = false;
  }
  void ShardEnded(Checkpointer& checkpointer) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    ShardTracker* t = impl_->Tracker(slot_);
    if (t == nullptr) return;
    t->ended = true;
    // SHARD_END only once every record of the shard is done; the group asks again each round.
    if (t->pending.empty() && checkpointer.Checkpoint().ok()) {
      t->checkpointable.reset();
      t->live = false;
    }
  }
  void ShutdownRequested(Checkpointer& checkpointer) override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    ShardTracker* t = impl_->Tracker(slot_);
    if (t == nullptr) return;
    if (t->checkpointable && checkpointer.Checkpoint(*t->checkpointable).ok()) {
      t->checkpointable.reset();
    }
    t->live = false;
  }

 private:
  Impl* const impl_;
  uint32_t slot_ = 0;
};

uint32_t DeliveryStream::Impl::NewTracker(ShardId shard) {
  auto tracker = std::make_unique<ShardTracker>();
  tracker->shard = shard;
  trackers_.push_back(std::move(tracker));
  return static_cast<uint32_t>(trackers_.size() - 1);
}

void DeliveryStream::Impl::MarkDone(uint64_t ticket) {
  ShardTracker* t = Tracker(static_cast<uint32_t>(ticket >> kTicketSlotShift));
  if (t == nullptr) return;
  const uint64_t position = ticket & ((uint64_t{1} << kTicketSlotShift) - 1);
  if (position < t->base || position - t->base >= t->pending.size()) return;
  t->pending[position - t->base].second = true;
  while (!t->pending.empty() && t->pending.front().second) {
    t->checkpointable = t->pending.front().first;
    t->pending.pop_front();
    ++t->base;
  }
}

void DeliveryStream::Impl::Ingest(uint32_t slot, absl::Span<const Record> records) {
  ShardTracker* t = Tracker(slot);
  if (t == nullptr) return;
  read_this_round_ += records.size();
  for (const Record& r : records) read_bytes_ += r.data.size();
  for (const Record& r : records) {
    const uint64_t ticket = (uint64_t{slot} << kTicketSlotShift) | (t->base + t->pending.size());
    t->pending.emplace_back(r.sequence_number, false);
    incoming_records_.fetch_add(1, std::memory_order_relaxed);
    incoming_bytes_.fetch_add(static_cast<int64_t>(r.data.size()), std::memory_order_relaxed);
    std::string_view data = r.data;
    if (options_.processing.decompress_gzip) {
      absl::Status inflated =
          deliver_internal::Gunzip(r.data, kMaxDeliveryRecordBytes * 6, &scratch_);
      if (!inflated.ok()) {
        Fail("processing-failed", "Decompression.Failed", internal::FromAbsl(inflated.message()), 1,
             r.approximate_arrival_timestamp, r.data, ticket, false);
        Released(r.data.size());
        continue;
      }
      data = scratch_;
    }
    if (!options_.processing.transform) {
      const std::string_view partition_key =
          internal_stream_ ? std::string_view() : r.partition_key;
      FinishRecord(data, r.approximate_arrival_timestamp, t->shard, r.sequence_number, ticket,
                   partition_key, {}, r.data);
      Released(r.data.size());
      continue;
    }
    RawRecord raw{raw_arena_.size(),
                  static_cast<uint32_t>(data.size()),
                  r.approximate_arrival_timestamp,
                  t->shard,
                  r.sequence_number,
                  ticket,
                  0,
                  0};
    raw_arena_.append(data);
    if (!internal_stream_) {
      raw.key_offset = static_cast<uint32_t>(raw_arena_.size());
      raw.key_size = static_cast<uint16_t>(r.partition_key.size());
      raw_arena_.append(r.partition_key);
    }
    raw_.push_back(raw);
    buffered_bytes_ += data.size();
    Released(r.data.size());
  }
}

// ---------------------------------------------------------------------------------------------
// Processing.

void DeliveryStream::Impl::Fail(std::string_view type, std::string_view code,
                                std::string_view message, int attempts, absl::Time arrival,
                                std::string_view raw, uint64_t ticket, bool with_lambda_arn) {
  ErrorEntry& e = errors_.emplace_back();
  e.type = std::string(type);
  e.ticket = ticket;
  e.record.attempts_made = attempts;
  e.record.arrival = arrival;
  e.record.error_code = std::string(code);
  e.record.error_message = std::string(message);
  e.record.attempt_ending = clock_->Now();
  e.record.raw_data = std::string(raw);
  if (with_lambda_arn) e.record.lambda_arn = options_.processing.lambda_arn;
}

void DeliveryStream::Impl::FinishRecord(
    std::string_view data, absl::Time arrival, ShardId shard, SequenceNumber seq, uint64_t ticket,
    std::string_view partition_key,
    absl::Span<const std::pair<std::string, std::string>> lambda_keys,
    std::string_view raw_for_errors) {
  keys_.clear();
  if (!query_paths_.empty()) {
    absl::Status extracted = extractor_.Extract(data, query_paths_, values_);
    if (!extracted.ok()) {
      Fail("processing-failed", "DynamicPartitioning.MetadataExtractionFailed",
           internal::FromAbsl(extracted.message()), 1, arrival, raw_for_errors, ticket, false);
      return;
    }
    for (size_t i = 0; i < query_paths_.size(); ++i) {
      const JsonValue& v = values_[i];
      if (v.kind != JsonValueKind::kString && v.kind != JsonValueKind::kNumber &&
          v.kind != JsonValueKind::kBool) {
        Fail("processing-failed", "DynamicPartitioning.MetadataExtractionFailed",
             absl::StrCat(
                 "the query ", query_paths_[i].text(), " for partition key ", query_names_[i],
                 v.kind == JsonValueKind::kMissing ? " found nothing"
                                                   : " found no string, number or boolean"),
             1, arrival, raw_for_errors, ticket, false);
        return;
      }
      keys_.emplace_back(query_names_[i], v.text);
    }
  }
  if (!lambda_keys_.empty() || keep_all_lambda_keys_) {
    if (keep_all_lambda_keys_) {
      for (const auto& kv : lambda_keys) keys_.push_back(kv);
    } else {
      for (const std::string& name : lambda_keys_) {
        auto it = std::find_if(lambda_keys.begin(), lambda_keys.end(),
                               [&](const auto& kv) { return kv.first == name; });
        if (it == lambda_keys.end()) {
          Fail("processing-failed", "DynamicPartitioning.MissingPartitionKey",
               absl::StrCat("the transformation returned no partition key ", name), 1, arrival,
               raw_for_errors, ticket, true);
          return;
        }
        keys_.push_back(*it);
      }
    }
  }
  if (options_.processing.append_delimiter) {
    delimited_.assign(data);
    delimited_.push_back('\n');
    Route(delimited_, arrival, shard, seq, ticket, partition_key, raw_for_errors);
    return;
  }
  Route(data, arrival, shard, seq, ticket, partition_key, raw_for_errors);
}

void DeliveryStream::Impl::Route(std::string_view data, absl::Time arrival, ShardId shard,
                                 SequenceNumber seq, uint64_t ticket,
                                 std::string_view partition_key, std::string_view raw_for_errors) {
  // The buffer's key: the partition keys joined ("" without dynamic partitioning).
  buffer_key_.clear();
  if (!keys_.empty()) {
    std::sort(keys_.begin(), keys_.end());
    for (const auto& [name, value] : keys_) {
      buffer_key_.append(name).append("\x1f").append(value).append("\x1e");
    }
  }
  auto it = open_.find(absl::string_view(buffer_key_.data(), buffer_key_.size()));
  if (it == open_.end()) {
    if (partitioned_ && static_cast<int>(open_.size()) >= options_.max_active_partitions) {
      Fail("processing-failed", "DynamicPartitioning.ActivePartitionsLimitExceeded",
           absl::StrCat("more than ", options_.max_active_partitions,
                        " active partitions (max_active_partitions)"),
           1, arrival, raw_for_errors, ticket, false);
      return;
    }
    std::unique_ptr<Batch> batch = NewBatch();
    batch->partition_keys = keys_;
    batch->oldest_arrival = arrival;
    it = open_.emplace(buffer_key_, std::move(batch)).first;
  }
  Batch& b = *it->second;
  BatchRecord r;
  r.offset = b.arena.size();
  r.size = static_cast<uint32_t>(data.size());
  r.arrival = arrival;
  r.shard = shard;
  r.sequence_number = seq;
  r.ticket = ticket;
  r.id_offset = static_cast<uint32_t>(b.ids.size());
  AppendRecordId(shard, seq, &b.ids);
  r.id_size = static_cast<uint16_t>(b.ids.size() - r.id_offset);
  r.key_offset = static_cast<uint32_t>(b.ids.size());
  b.ids.append(partition_key);
  r.key_size = static_cast<uint16_t>(partition_key.size());
  b.arena.append(data);
  b.records.push_back(r);
  b.oldest_arrival = std::min(b.oldest_arrival, arrival);
  buffered_bytes_ += data.size();
  if (b.bytes() >= hints_.size_bytes) Seal(it->first);
}

void DeliveryStream::Impl::ProcessRaw(bool all) {
  if (raw_.empty()) return;
  const ProcessingConfiguration& p = options_.processing;
  const absl::Time now = clock_->Now();
  size_t begin = 0;
  while (begin < raw_.size()) {
    // One invocation: records up to the processor's buffer size (at least one).
    size_t end = begin;
    uint64_t bytes = 0;
    while (end < raw_.size() && (end == begin || bytes + raw_[end].size <= p.buffer_size_bytes)) {
      bytes += raw_[end].size;
      ++end;
    }
    const bool full = bytes >= p.buffer_size_bytes || end < raw_.size();
    const bool old = now - raw_[begin].arrival >= p.buffer_interval;
    if (!all && !full && !old) break;
    InvokeTransform(begin, end);
    begin = end;
  }
  if (begin == 0) return;
  uint64_t consumed = 0;
  for (size_t i = 0; i < begin; ++i) consumed += raw_[i].size;
  buffered_bytes_ -= consumed;
  if (begin == raw_.size()) {
    raw_.clear();
    raw_arena_.clear();
    return;
  }
  // Keep the rest at the front of the arena.
  const uint64_t cut = raw_[begin].offset;
  raw_arena_.erase(0, cut);
  raw_.erase(raw_.begin(), raw_.begin() + static_cast<std::ptrdiff_t>(begin));
  for (RawRecord& r : raw_) {
    r.offset -= cut;
    if (r.key_size > 0) r.key_offset -= static_cast<uint32_t>(cut);
  }
}

void DeliveryStream::Impl::InvokeTransform(size_t begin, size_t end) {
  const ProcessingConfiguration& p = options_.processing;
  std::vector<TransformInput> inputs;
  inputs.reserve(end - begin);
  std::string ids;  // record ids back to back
  std::vector<std::string> seqs;
  seqs.reserve(end - begin);
  std::vector<std::string> shard_ids;
  shard_ids.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) AppendRecordId(raw_[i].shard, raw_[i].seq, &ids);
  for (size_t i = begin; i < end; ++i) {
    const RawRecord& r = raw_[i];
    TransformInput& in = inputs.emplace_back();
    in.record_id = std::string_view(ids).substr((i - begin) * 56, 56);
    in.approximate_arrival_timestamp = r.arrival;
    in.data = std::string_view(raw_arena_).substr(r.offset, r.size);
    if (!internal_stream_) {
      in.partition_key = std::string_view(raw_arena_).substr(r.key_offset, r.key_size);
      shard_ids.push_back(r.shard.ToString());
      seqs.push_back(r.seq.ToString());
      in.shard_id = shard_ids.back();
      in.sequence_number = seqs.back();
    }
  }
  absl::flat_hash_map<std::string_view, size_t> index;
  index.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) index.emplace(inputs[i].record_id, i);

  std::string code;
  std::string message;
  const int invocations = 1 + p.number_of_retries;
  for (int attempt = 1; attempt <= invocations; ++attempt) {
    const std::string invocation_id = NewGuid(rng_);
    TransformInvocation invocation{invocation_id, arn_, inputs};
    absl::StatusOr<std::vector<TransformedRecord>> out = p.transform(invocation);
    if (!out.ok()) {
      code = "Lambda.FunctionError";
      message = std::string(out.status().message());
      processing_failure_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    // Every record id exactly once, nothing else.
    std::vector<const TransformedRecord*> by_input(inputs.size(), nullptr);
    code.clear();
    for (const TransformedRecord& t : *out) {
      auto it = index.find(std::string_view(t.record_id));
      if (it == index.end()) {
        code = "Lambda.InvalidRecordId";
        message = absl::StrCat("the transformation returned the record id \"",
                               t.record_id.substr(0, 100), "\", which was not in its input");
        break;
      }
      if (by_input[it->second] != nullptr) {
        code = "Lambda.DuplicatedRecordId";
        message = absl::StrCat("the transformation returned the record id ", t.record_id, " twice");
        break;
      }
      if (t.result != TransformResult::kOk && t.result != TransformResult::kDropped &&
          t.result != TransformResult::kProcessingFailed) {
        code = "Lambda.InvalidResult";
        message = absl::StrCat("the transformation returned an unknown result for ", t.record_id);
        break;
      }
      if (t.result == TransformResult::kOk && t.data.size() > kMaxDeliveryRecordBytes * 6) {
        code = "Lambda.ResponseTooLarge";
        message = absl::StrCat("the transformation returned ", t.data.size(),
                               " bytes for one record; the limit is 6 MB");
        break;
      }
      by_input[it->second] = &t;
    }
    if (code.empty()) {
      for (size_t i = 0; i < by_input.size(); ++i) {
        if (by_input[i] == nullptr) {
          code = "Lambda.MissingRecordId";
          message = absl::StrCat("the transformation did not return the record id ",
                                 std::string(inputs[i].record_id));
          break;
        }
      }
    }
    if (!code.empty()) {
      processing_failure_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    processing_success_.fetch_add(1, std::memory_order_relaxed);
    for (size_t i = 0; i < by_input.size(); ++i) {
      const RawRecord& r = raw_[begin + i];
      const TransformedRecord& t = *by_input[i];
      const std::string_view raw_data = inputs[i].data;
      switch (t.result) {
        case TransformResult::kOk:
          processed_records_.fetch_add(1, std::memory_order_relaxed);
          processed_bytes_.fetch_add(static_cast<int64_t>(t.data.size()),
                                     std::memory_order_relaxed);
          FinishRecord(t.data, r.arrival, r.shard, r.seq, r.ticket, inputs[i].partition_key,
                       t.partition_keys, raw_data);
          break;
        case TransformResult::kDropped:
          dropped_records_.fetch_add(1, std::memory_order_relaxed);
          MarkDone(r.ticket);
          break;
        case TransformResult::kProcessingFailed:
          Fail("processing-failed", "Lambda.ProcessingFailedStatus",
               "the transformation returned ProcessingFailed for this record", attempt, r.arrival,
               raw_data, r.ticket, true);
          break;
      }
    }
    return;
  }
  // Every invocation failed: the whole batch goes to the error output.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const RawRecord& r = raw_[begin + i];
    Fail("processing-failed", code, message, invocations, r.arrival, inputs[i].data, r.ticket,
         true);
  }
}

// ---------------------------------------------------------------------------------------------
// Buffers and delivery.

std::unique_ptr<Batch> DeliveryStream::Impl::NewBatch() {
  if (spare_.empty()) {
    auto batch = std::make_unique<Batch>();
    batch->arena.reserve(std::min<size_t>(hints_.size_bytes + hints_.size_bytes / 8, 8 * kMiB));
    return batch;
  }
  std::unique_ptr<Batch> batch = std::move(spare_.back());
  spare_.pop_back();
  return batch;
}

void DeliveryStream::Impl::Recycle(std::unique_ptr<Batch> batch) {
  if (batch == nullptr || spare_.size() >= kMaxSpareBatches) return;
  batch->delivery_id.clear();
  batch->partition_keys.clear();
  batch->oldest_arrival = absl::Time();
  batch->arena.clear();
  batch->ids.clear();
  batch->records.clear();
  spare_.push_back(std::move(batch));
}

void DeliveryStream::Impl::Seal(const std::string& key) {
  auto it = open_.find(key);
  if (it == open_.end()) return;
  Pending p;
  p.batch = std::move(it->second);
  p.batch->delivery_id = NewGuid(rng_);
  open_.erase(it);
  ready_.push_back(std::move(p));
}

void DeliveryStream::Impl::SealDue(bool all) {
  const absl::Time now = clock_->Now();
  std::vector<std::pair<absl::Time, std::string>> due;
  for (const auto& [key, batch] : open_) {
    if (all || batch->bytes() >= hints_.size_bytes ||
        now - batch->oldest_arrival >= hints_.interval) {
      due.emplace_back(batch->oldest_arrival, key);
    }
  }
  // Oldest first, so that a shard's records stay in order across partitions' batches.
  std::sort(due.begin(), due.end());
  for (const auto& [oldest, key] : due) Seal(key);
}

void DeliveryStream::Impl::GiveUp(Pending& p, const DeliveryAttempt& last) {
  const std::string_view type = destination_->error_output_type();
  const std::vector<BatchRecord>& records = p.batch->records;
  std::vector<const std::string*> refused(records.size(), nullptr);
  for (const auto& [index, reason] : last.rejected) {
    if (index < records.size()) refused[index] = &reason;
  }
  // What the destination took before it failed is delivered, not failed: the error output holds
  // exactly the records that did not arrive.
  int64_t delivered = 0;
  int64_t delivered_bytes = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const BatchRecord& r = records[i];
    if (refused[i] != nullptr) {
      Fail(type, last.rejected_error_code, *refused[i], p.attempts, r.arrival, p.batch->data(r),
           r.ticket, false);
    } else if (i < last.delivered) {
      ++delivered;
      delivered_bytes += static_cast<int64_t>(r.size);
      MarkDone(r.ticket);
    } else {
      Fail(type, last.error_code, last.error_message, p.attempts, r.arrival, p.batch->data(r),
           r.ticket, false);
    }
  }
  delivery_records_.fetch_add(delivered, std::memory_order_relaxed);
  delivery_bytes_.fetch_add(delivered_bytes, std::memory_order_relaxed);
  buffered_bytes_ -= p.batch->bytes();
}

absl::Status DeliveryStream::Impl::DeliverPending(bool flush) {
  absl::Status first_error;
  // In order: a batch that waits for its retry holds back the ones behind it, so that each
  // shard's records reach the destination in order.
  while (!ready_.empty()) {
    Pending& p = ready_.front();
    const absl::Time now = clock_->Now();
    if (!flush && now < p.next_attempt) break;
    if (p.attempts == 0) p.first_attempt = now;
    ++p.attempts;
    delivery_attempts_.fetch_add(1, std::memory_order_relaxed);
    DeliveryAttempt attempt = destination_->Deliver(*p.batch, p.attempts);
    if (attempt.result == AttemptResult::kDelivered) {
      // Records the destination refused one by one go to the error output; the rest are done.
      std::vector<bool> refused(attempt.rejected.empty() ? 0 : p.batch->records.size(), false);
      int64_t refused_bytes = 0;
      for (const auto& [index, reason] : attempt.rejected) {
        if (index >= p.batch->records.size() || refused[index]) continue;
        refused[index] = true;
        const BatchRecord& r = p.batch->records[index];
        refused_bytes += r.size;
        Fail(destination_->error_output_type(), attempt.rejected_error_code, reason, p.attempts,
             r.arrival, p.batch->data(r), r.ticket, false);
      }
      delivery_success_.fetch_add(1, std::memory_order_relaxed);
      delivery_records_.fetch_add(static_cast<int64_t>(p.batch->records.size()) -
                                      static_cast<int64_t>(attempt.rejected.size()),
                                  std::memory_order_relaxed);
      delivery_bytes_.fetch_add(static_cast<int64_t>(p.batch->bytes()) - refused_bytes,
                                std::memory_order_relaxed);
      for (size_t i = 0; i < p.batch->records.size(); ++i) {
        if (refused.empty() || !refused[i]) MarkDone(p.batch->records[i].ticket);
      }
      buffered_bytes_ -= p.batch->bytes();
      Recycle(std::move(p.batch));
      ready_.pop_front();
      continue;
    }
    const absl::Time after = clock_->Now();
    const bool out_of_time = attempt.result == AttemptResult::kPermanent ||
                             after - p.first_attempt >= destination_->retry_duration();
    if (out_of_time) {
      GiveUp(p, attempt);
      Recycle(std::move(p.batch));
      ready_.pop_front();
      continue;
    }
    if (first_error.ok()) {
      first_error = MakeError(ErrorCode::kServiceUnavailable,
                              absl::StrCat("delivery to ", std::string(destination_->metric_name()),
                                           " failed (attempt ", p.attempts,
                                           "): ", attempt.error_code, ": ", attempt.error_message));
    }
    // Full jitter of +-15 % around the doubling backoff.
    std::uniform_real_distribution<double> jitter(0.85, 1.15);
    p.next_attempt = after + p.backoff * jitter(rng_);
    p.backoff = std::min(p.backoff * 2, kMaxBackoff);
    break;
  }
  return first_error;
}

absl::Status DeliveryStream::Impl::WriteErrors() {
  if (errors_.empty()) return absl::OkStatus();
  absl::Status first_error;
  // One object per error type; what fails to be written stays for the next round.
  std::vector<ErrorEntry> keep;
  std::vector<std::string> types;
  for (const ErrorEntry& e : errors_) {
    if (std::find(types.begin(), types.end(), e.type) == types.end()) types.push_back(e.type);
  }
  for (const std::string& type : types) {
    std::vector<FailedRecord> records;
    std::vector<uint64_t> tickets;
    for (ErrorEntry& e : errors_) {
      if (e.type != type) continue;
      records.push_back(e.record);
      tickets.push_back(e.ticket);
    }
    absl::Status written = error_output_->Write(type, records);
    if (written.ok()) {
      error_records_.fetch_add(static_cast<int64_t>(records.size()), std::memory_order_relaxed);
      for (uint64_t ticket : tickets) MarkDone(ticket);
    } else {
      error_failures_.fetch_add(1, std::memory_order_relaxed);
      if (first_error.ok()) first_error = written;
      for (ErrorEntry& e : errors_) {
        if (e.type == type) keep.push_back(std::move(e));
      }
    }
  }
  errors_ = std::move(keep);
  return first_error;
}

absl::Status DeliveryStream::Impl::CheckpointDone() {
  absl::Status first_error;
  for (auto& t : trackers_) {
    if (t == nullptr) continue;
    if (t->live && !t->ended && t->checkpointable) {
      absl::Status s = worker_->Checkpoint(t->shard, *t->checkpointable);
      if (s.ok()) {
        t->checkpointable.reset();
      } else if (GetErrorCode(s) == ErrorCode::kResourceInUse) {
        t->live = false;  // the lease went to another worker
      } else if (first_error.ok()) {
        first_error = s;
      }
    }
    // A tracker whose processor is gone and whose records are all done is forgotten.
    if (!t->live && t->pending.empty()) t.reset();
  }
  while (!trackers_.empty() && trackers_.back() == nullptr) trackers_.pop_back();
  return first_error;
}

absl::Time DeliveryStream::Impl::NextDeadline() {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [key, batch] : open_)
    next = std::min(next, batch->oldest_arrival + hints_.interval);
  if (!ready_.empty()) next = std::min(next, ready_.front().next_attempt);
  if (!raw_.empty())
    next = std::min(next, raw_.front().arrival + options_.processing.buffer_interval);
  if (!errors_.empty()) next = std::min(next, clock_->Now() + kFirstBackoff);
  return next;
}

void DeliveryStream::Impl::PublishGauges() {
  absl::Time oldest = absl::InfiniteFuture();
  for (const auto& [key, batch] : open_) oldest = std::min(oldest, batch->oldest_arrival);
  for (const Pending& p : ready_) oldest = std::min(oldest, p.batch->oldest_arrival);
  if (!raw_.empty()) oldest = std::min(oldest, raw_.front().arrival);
  const absl::Time now = clock_->Now();
  data_freshness_ms_.store(oldest == absl::InfiniteFuture()
                               ? 0
                               : std::max<int64_t>(0, absl::ToInt64Milliseconds(now - oldest)),
                           std::memory_order_relaxed);
  active_partitions_.store(static_cast<int64_t>(open_.size()), std::memory_order_relaxed);
  buffered_gauge_.store(static_cast<int64_t>(buffered_bytes_), std::memory_order_relaxed);
}

absl::Status DeliveryStream::Impl::Round(bool flush) {
  absl::Status first_error;
  auto note = [&](absl::Status s) {
    if (first_error.ok() && !s.ok()) first_error = std::move(s);
  };
  // 1. Read, unless the buffers are full (a slow destination pushes back on the source).
  read_this_round_ = 0;
  if (!closed_round_ && buffered_bytes_ < options_.max_buffered_bytes) note(worker_->Poll());
  // The internal stream's retention (24 h, Firehose's for DirectPut) is applied by its Tick().
  if (internal_stream_ && clock_->Now() - last_tick_ >= absl::Minutes(1)) {
    internal_stream_->Tick();
    last_tick_ = clock_->Now();
  }
  // 2. Process and seal what is due, 3. deliver, 4. error output, 5. checkpoint.
  ProcessRaw(flush);
  SealDue(flush);
  note(DeliverPending(flush));
  note(WriteErrors());
  note(CheckpointDone());
  PublishGauges();
  return first_error;
}

// ---------------------------------------------------------------------------------------------
// Setup.

absl::Status DeliveryStream::Impl::ValidateOptions() {
  const DeliveryStreamOptions& o = options_;
  if (!IsDeliveryStreamName(o.name)) {
    return Invalid(
        absl::StrCat("DeliveryStreamName must be 1-64 characters of [a-zA-Z0-9_.-], got \"",
                     o.name.substr(0, 80), "\""));
  }
  if (o.clock == nullptr) return Invalid("clock must not be null");
  if (o.source_stream != nullptr && o.checkpoint_store == nullptr) {
    return Invalid("a delivery stream with a source stream needs a checkpoint_store");
  }
  if (o.source_stream != nullptr && !o.direct_put_directory.empty()) {
    return Invalid("direct_put_directory is for DirectPut; a source stream keeps its own records");
  }
  if (o.source_stream == nullptr && o.checkpoint_store != nullptr) {
    return Invalid("checkpoint_store is for a source stream; DirectPut keeps its own");
  }
  const ProcessingConfiguration& p = o.processing;
  if (p.number_of_retries < 0 || p.number_of_retries > 300) {
    return OutOfRange(absl::StrCat("NumberOfRetries must be 0-300, got ", p.number_of_retries));
  }
  if (p.transform) {
    if (p.buffer_size_bytes < 200 * 1024 || p.buffer_size_bytes > 3 * kMiB) {
      return OutOfRange(absl::StrCat("the processor's BufferSizeInMBs must be 0.2-3 MB, got ",
                                     p.buffer_size_bytes, " bytes"));
    }
    if (p.buffer_interval < absl::Seconds(60) || p.buffer_interval > absl::Seconds(900)) {
      return OutOfRange(absl::StrCat("the processor's BufferIntervalInSeconds must be 60-900, got ",
                                     absl::FormatDuration(p.buffer_interval)));
    }
  }
  for (size_t i = 0; i < p.metadata_extraction.size(); ++i) {
    const MetadataExtractionQuery& q = p.metadata_extraction[i];
    if (q.name.empty()) return Invalid("a MetadataExtraction query needs a partition key name");
    for (size_t j = 0; j < i; ++j) {
      if (p.metadata_extraction[j].name == q.name) {
        return Invalid(
            absl::StrCat("MetadataExtraction names the partition key ", q.name, " twice"));
      }
    }
    absl::StatusOr<JsonPath> path = JsonPath::Parse(q.query);
    if (!path.ok()) {
      return Invalid(
          absl::StrCat("MetadataExtraction query for ", q.name, ": ", path.status().message()));
    }
    query_paths_.push_back(*std::move(path));
    query_names_.push_back(q.name);
  }
  if (o.max_active_partitions < 1 || o.max_active_partitions > 5000) {
    return OutOfRange(
        absl::StrCat("max_active_partitions must be 1-5000, got ", o.max_active_partitions));
  }
  hints_ = HintsOf(o.destination);
  if (o.max_buffered_bytes < hints_.size_bytes) {
    return Invalid(absl::StrCat("max_buffered_bytes (", o.max_buffered_bytes,
                                ") must be at least the destination's buffer size (",
                                hints_.size_bytes, ")"));
  }
  const bool object_store = std::holds_alternative<ObjectStoreDestination>(o.destination);
  const bool callback = std::holds_alternative<CallbackDestination>(o.destination);
  if (object_store) {
    const ObjectStoreDestination& d = std::get<ObjectStoreDestination>(o.destination);
    if (d.directory.empty()) return Invalid("ObjectStoreDestination needs a directory");
    RILL_RETURN_IF_ERROR(CheckHints(d.buffering, 128, "the object store's"));
    absl::StatusOr<deliver_internal::PrefixNeeds> needs =
        deliver_internal::ValidatePrefixes(d.prefix, d.error_output_prefix, d.custom_time_zone);
    if (!needs.ok()) return needs.status();
    for (const std::string& key : needs->query_keys) {
      if (std::find(query_names_.begin(), query_names_.end(), key) == query_names_.end()) {
        return Invalid(absl::StrCat("the prefix uses !{partitionKeyFromQuery:", key,
                                    "} but MetadataExtraction has no query named ", key));
      }
    }
    for (const std::string& key : query_names_) {
      if (std::find(needs->query_keys.begin(), needs->query_keys.end(), key) ==
          needs->query_keys.end()) {
        return Invalid(
            absl::StrCat("MetadataExtraction's partition key ", key, " is not used in the prefix"));
      }
    }
    if (!needs->lambda_keys.empty() && !p.transform) {
      return Invalid("the prefix uses !{partitionKeyFromLambda:...} but there is no transform");
    }
    lambda_keys_ = needs->lambda_keys;
    partitioned_ = needs->dynamic_partitioning();
  } else if (callback) {
    const CallbackDestination& d = std::get<CallbackDestination>(o.destination);
    if (!d.deliver) return Invalid("CallbackDestination needs a deliver function");
    RILL_RETURN_IF_ERROR(CheckHints(d.buffering, 128, "the callback's"));
    RILL_RETURN_IF_ERROR(CheckRetryDuration(d.retry_duration, "the callback's"));
    // A callback sees every partition key there is.
    keep_all_lambda_keys_ = static_cast<bool>(p.transform);
    partitioned_ = !query_paths_.empty() || keep_all_lambda_keys_;
  } else if (!query_paths_.empty()) {
    return Invalid(
        "dynamic partitioning (MetadataExtraction) needs an object store or callback "
        "destination");
  }
  if (const auto* d = std::get_if<StreamDestination>(&o.destination)) {
    if (d->stream == nullptr) return Invalid("StreamDestination needs a stream");
    RILL_RETURN_IF_ERROR(CheckHints(d->buffering, 128, "the stream destination's"));
    RILL_RETURN_IF_ERROR(CheckRetryDuration(d->retry_duration, "the stream destination's"));
  }
  if (const auto* d = std::get_if<HttpEndpointDestination>(&o.destination)) {
    RILL_RETURN_IF_ERROR(deliver_internal::ValidateHttpEndpointDestination(*d));
  }
  if (const auto* d = std::get_if<PostgresDestination>(&o.destination)) {
    RILL_RETURN_IF_ERROR(deliver_internal::ValidatePostgresDestination(*d));
  }
  if (!object_store) {
    if (!o.error_output || o.error_output->directory.empty()) {
      return Invalid(
          "this destination needs error_output (a directory for records that cannot "
          "be delivered)");
    }
  }
  return absl::OkStatus();
}

absl::Status DeliveryStream::Impl::MakeDestination() {
  if (const auto* d = std::get_if<ObjectStoreDestination>(&options_.destination)) {
    destination_ = deliver_internal::MakeObjectStoreDestination(*d, options_.name);
    absl::StatusOr<std::unique_ptr<ErrorOutputWriter>> writer =
        ErrorOutputWriter::Open(d->directory, deliver_internal::EffectiveErrorOutputPrefix(*d),
                                d->custom_time_zone, options_.name);
    if (!writer.ok()) return writer.status();
    error_output_ = *std::move(writer);
  } else {
    if (const auto* d = std::get_if<PostgresDestination>(&options_.destination)) {
      destination_ = deliver_internal::MakePostgresDestination(*d, options_.name, source_id_);
    } else if (const auto* d = std::get_if<HttpEndpointDestination>(&options_.destination)) {
      destination_ = deliver_internal::MakeHttpEndpointDestination(*d, arn_, clock_);
    } else if (const auto* d = std::get_if<StreamDestination>(&options_.destination)) {
      destination_ = deliver_internal::MakeStreamDestination(*d);
    } else {
      destination_ = deliver_internal::MakeCallbackDestination(
          std::get<CallbackDestination>(options_.destination));
    }
    absl::StatusOr<std::unique_ptr<ErrorOutputWriter>> writer =
        ErrorOutputWriter::Open(options_.error_output->directory, options_.error_output->prefix,
                                options_.error_output->custom_time_zone, options_.name);
    if (!writer.ok()) return writer.status();
    error_output_ = *std::move(writer);
  }
  return destination_->Open();
}

absl::Status DeliveryStream::Impl::MakeSource() {
  StreamApi* source = options_.source_stream;
  CheckpointStore* store = options_.checkpoint_store;
  StartingPosition start = options_.starting_position;
  if (source == nullptr) {
    // DirectPut: an internal stream of one shard keeps what PutRecord accepted until delivered.
    StreamOptions stream_options;
    stream_options.name = options_.name;
    stream_options.clock = clock_;
    stream_options.max_record_bytes = kMiB;
    const bool durable = !options_.direct_put_directory.empty();
    if (durable) {
      std::error_code ec;
      std::filesystem::create_directories(options_.direct_put_directory, ec);
      if (ec) {
        return MakeError(
            ErrorCode::kInternalFailure,
            absl::StrCat("cannot create ", options_.direct_put_directory, ": ", ec.message()));
      }
      StorageOptions storage;
      storage.directory =
          (std::filesystem::path(options_.direct_put_directory) / "stream").string();
      stream_options.storage = storage;
      absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Open(std::move(stream_options));
      if (!stream.ok()) return stream.status();
      internal_stream_ = *std::move(stream);
      absl::StatusOr<std::unique_ptr<SqliteCheckpointStore>> checkpoints =
          SqliteCheckpointStore::Open(
              (std::filesystem::path(options_.direct_put_directory) / "checkpoints.db").string());
      if (!checkpoints.ok()) return checkpoints.status();
      internal_store_ = *std::move(checkpoints);
    } else {
      // Records stay in the stream after they were read; past this budget the oldest are retired
      // early (they were all read: puts keep the unread ones under max_buffered_bytes, and the
      // 32 MiB beyond are read ones, many chunks' worth), so that a long-running DirectPut does
      // not hold 24 h of records in memory, and its puts write into recycled chunks.
      stream_options.memory_limit =
          MemoryLimit{.budget_bytes = options_.max_buffered_bytes + 32 * kMiB,
                      .policy = MemoryLimitPolicy::kRetireOldest};
      absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create(std::move(stream_options));
      if (!stream.ok()) return stream.status();
      internal_stream_ = *std::move(stream);
      internal_store_ = std::make_unique<InMemoryCheckpointStore>();
    }
    source = internal_stream_.get();
    store = internal_store_.get();
    start = StartingPosition::TrimHorizon();
  }
  ConsumerGroupOptions group_options;
  group_options.application_name = options_.name;
  group_options.initial_position = start;
  absl::StatusOr<std::unique_ptr<ConsumerGroup>> group =
      ConsumerGroup::Create(*source, *store, group_options);
  if (!group.ok()) return group.status();
  group_ = *std::move(group);
  // One worker, named after the delivery stream: after a restart it takes its own leases back at
  // once instead of waiting for them to expire.
  absl::StatusOr<Worker*> worker = group_->AddWorker(
      options_.name, [this](ShardId) { return std::make_unique<Processor>(this); });
  if (!worker.ok()) return worker.status();
  worker_ = *worker;
  return absl::OkStatus();
}

absl::Status DeliveryStream::Impl::MakeSourceId() {
  if (options_.source_stream != nullptr) {
    // The stream's name and creation time: a stream deleted and created again under its name
    // numbers its records anew, and must not meet its predecessor's progress.
    absl::StatusOr<StreamSummary> summary = options_.source_stream->DescribeStreamSummary();
    if (!summary.ok()) return summary.status();
    source_id_ =
        absl::StrCat(summary->stream_name, "@", absl::ToUnixMicros(summary->creation_time));
    return absl::OkStatus();
  }
  if (options_.direct_put_directory.empty()) {
    // An in-memory internal stream is new in every process.
    source_id_ = absl::StrCat("directput/", NewGuid(rng_));
    return absl::OkStatus();
  }
  // A durable one lives as long as its directory, and so does this id.
  const std::string path =
      (std::filesystem::path(options_.direct_put_directory) / "source-id").string();
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    absl::StatusOr<std::string> id = internal::ReadFile(path);
    if (!id.ok()) return id.status();
    source_id_ = *std::move(id);
    return absl::OkStatus();
  }
  std::filesystem::create_directories(options_.direct_put_directory, ec);
  source_id_ = absl::StrCat("directput/", NewGuid(rng_));
  return internal::WriteFileAtomically(path, source_id_);
}

absl::Status DeliveryStream::Impl::Init() {
  RILL_RETURN_IF_ERROR(ValidateOptions());
  {
    MutexLock<Mutex> lock(&round_mu_);  // rng_
    RILL_RETURN_IF_ERROR(MakeSourceId());
  }
  RILL_RETURN_IF_ERROR(MakeDestination());
  return MakeSource();
}

// ---------------------------------------------------------------------------------------------
// The API.

absl::StatusOr<std::string> DeliveryStream::Impl::PutRecord(std::string_view data) {
  std::string_view one[] = {data};
  absl::StatusOr<PutRecordBatchResult> result = PutRecordBatch(one);
  if (!result.ok()) return result.status();
  PutRecordBatchResponseEntry& e = result->request_responses[0];
  if (!e.error_code.empty()) {
    const ErrorCode code =
        e.error_code == "ServiceUnavailableException" ? ErrorCode::kServiceUnavailable
        : e.error_code == "InvalidArgumentException"  ? ErrorCode::kInvalidArgument
                                                      : ErrorCode::kInternalFailure;
    return MakeError(code, e.error_message);
  }
  return std::move(e.record_id);
}

absl::StatusOr<PutRecordBatchResult> DeliveryStream::Impl::PutRecordBatch(
    absl::Span<const std::string_view> records) {
  if (internal_stream_ == nullptr) {
    return Invalid(
        absl::StrCat("delivery stream ", options_.name,
                     " reads a stream (KinesisStreamAsSource): PutRecord is not allowed"));
  }
  // Counted in before closed_ is looked at (both sequentially consistent): Close either sees this
  // put under way and waits for it, or the put sees the stream closed. So whatever a put
  // acknowledges is read by Close's flush.
  puts_in_progress_.fetch_add(1);
  struct Done {
    std::atomic<int>& puts;
    ~Done() { puts.fetch_sub(1); }
  } done{puts_in_progress_};
  if (closed_.load()) {
    return MakeError(ErrorCode::kResourceInUse,
                     absl::StrCat("delivery stream ", options_.name, " is closed"));
  }
  if (records.empty()) return Invalid("PutRecordBatch needs at least one record");
  if (records.size() > static_cast<size_t>(kMaxPutRecordBatchEntries)) {
    return Invalid(absl::StrCat("PutRecordBatch takes at most 500 records, got ", records.size()));
  }
  size_t total = 0;
  for (std::string_view r : records) total += r.size();
  if (total > kMaxPutRecordBatchBytes) {
    return Invalid(absl::StrCat("PutRecordBatch takes at most 4 MiB, got ", total, " bytes"));
  }
  incoming_put_requests_.fetch_add(1, std::memory_order_relaxed);
  PutRecordBatchResult result;
  result.request_responses.resize(records.size());
  bool any = false;
  for (size_t i = 0; i < records.size(); ++i) {
    PutRecordBatchResponseEntry& e = result.request_responses[i];
    const std::string_view data = records[i];
    if (data.size() > kMaxDeliveryRecordBytes) {
      e.error_code = "InvalidArgumentException";
      e.error_message =
          absl::StrCat("record size ", data.size(), " bytes exceeds the limit of 1,024,000 bytes");
      ++result.failed_put_count;
      continue;
    }
    // Room in the buffers? Counted before the put, so that concurrent puts cannot overshoot.
    const int64_t size = static_cast<int64_t>(data.size());
    const int64_t before = in_flight_bytes_.fetch_add(size);
    if (before + size > static_cast<int64_t>(options_.max_buffered_bytes)) {
      in_flight_bytes_.fetch_sub(size);
      throttled_records_.fetch_add(1, std::memory_order_relaxed);
      e.error_code = "ServiceUnavailableException";
      e.error_message = "Slow down.";
      ++result.failed_put_count;
      continue;
    }
    absl::StatusOr<PutRecordResult> put = internal_stream_->PutRecord("d", data);
    if (!put.ok()) {
      in_flight_bytes_.fetch_sub(size);
      const ErrorCode code = GetErrorCode(put.status());
      e.error_code =
          code == ErrorCode::kProvisionedThroughputExceeded || code == ErrorCode::kLimitExceeded
              ? "ServiceUnavailableException"
              : "InternalFailure";
      e.error_message = std::string(put.status().message());
      ++result.failed_put_count;
      continue;
    }
    e.record_id.reserve(56);
    AppendRecordId(put->shard_id, put->sequence_number, &e.record_id);
    any = true;
  }
  if (any) {
    waker_.MarkPending();
    waker_.Wake();
  }
  return result;
}

absl::Status DeliveryStream::Impl::Poll() {
  {
    MutexLock<Mutex> lock(&thread_mu_);
    if (thread_.joinable()) return MakeError(ErrorCode::kResourceInUse, "the delivery thread runs");
  }
  MutexLock<Mutex> lock(&round_mu_);
  return Round(false);
}

absl::Status DeliveryStream::Impl::Flush() {
  MutexLock<Mutex> lock(&round_mu_);
  return FlushRounds();
}

absl::Status DeliveryStream::Impl::FlushRounds() {
  // DirectPut: what was put before the call is read too, however much: a round reads at most the
  // consumer group's max_records, so one round would leave the rest of a burst (and Close would
  // drop it). Bounded by the bytes unread now, so that puts racing the call cannot keep it going.
  const uint64_t target = read_bytes_ + static_cast<uint64_t>(std::max<int64_t>(
                                            0, in_flight_bytes_.load(std::memory_order_relaxed)));
  absl::Status status;
  auto note = [&](absl::Status s) {
    if (status.ok() && !s.ok()) status = std::move(s);
  };
  for (;;) {
    // Rounds do not read while the buffers hold max_buffered_bytes; the flushing round below
    // empties them, so a pass that starts full is followed by one that reads.
    const bool full = buffered_bytes_ >= options_.max_buffered_bytes;
    size_t read = 0;
    // First ordinary rounds (only what the hints make due is delivered), so that buffers are
    // cut where the hints say, not wherever a round's read happened to end.
    while (internal_stream_ != nullptr && read_bytes_ < target) {
      note(Round(false));
      read += read_this_round_;
      if (!status.ok() || read_this_round_ == 0) break;
    }
    note(Round(true));
    read += read_this_round_;
    // Done once everything put before the call is read, at the first failed round (a retry is
    // the next round's job), or when a pass that had room read nothing.
    if (internal_stream_ == nullptr || !status.ok() || read_bytes_ >= target ||
        (read == 0 && !full)) {
      break;
    }
  }
  return status;
}

absl::Status DeliveryStream::Impl::Start() {
  MutexLock<Mutex> lock(&thread_mu_);
  if (thread_.joinable() || closed_.load()) {
    return MakeError(ErrorCode::kResourceInUse,
                     "the delivery thread was already started or closed");
  }
  stop_.store(false);
  thread_ = std::thread([this] { RunThread(); });
  return absl::OkStatus();
}

void DeliveryStream::Impl::RunThread() {
  while (!stop_.load()) {
    absl::Time deadline;
    bool more;
    {
      MutexLock<Mutex> lock(&round_mu_);
      // Errors stay in the metrics and the retry state; the next round tries again.
      Round(false).IgnoreError();
      // A round reads one batch per shard (at most the group's max_records): after one that
      // read anything, more may be waiting, so the next round starts at once unless the buffers
      // are full (then a delivery has to make room first, and the deadlines say when).
      more = read_this_round_ > 0 && buffered_bytes_ < options_.max_buffered_bytes;
      deadline = NextDeadline();
      if (internal_stream_ == nullptr) deadline = std::min(deadline, clock_->Now() + kIdlePoll);
    }
    if (stop_.load()) break;
    if (more) continue;
    clock_->WaitUntil(deadline, waker_);
  }
}

void DeliveryStream::Impl::StopThread() {
  std::thread thread;
  {
    MutexLock<Mutex> lock(&thread_mu_);
    thread = std::move(thread_);
  }
  if (!thread.joinable()) return;
  stop_.store(true);
  waker_.Interrupt();
  thread.join();
}

absl::Status DeliveryStream::Impl::Close() {
  if (closed_.exchange(true)) return absl::OkStatus();
  // Puts that began before: they finish first, so that what they acknowledge is flushed below.
  // A put never waits for anything (it copies at most 4 MiB into the internal stream), so this
  // yields for a few microseconds at most.
  while (puts_in_progress_.load() != 0) std::this_thread::yield();
  StopThread();
  MutexLock<Mutex> lock(&round_mu_);
  absl::Status status = FlushRounds();
  closed_round_ = true;
  // The processors checkpoint what is done; the leases are released.
  worker_->Shutdown();
  return status;
}

DeliveryMetrics DeliveryStream::Impl::metrics() const {
  DeliveryMetrics m;
  m.delivery_stream = options_.name;
  m.taken_at = clock_->Now();
  auto get = [](const std::atomic<int64_t>& a) { return a.load(std::memory_order_relaxed); };
  m.incoming_records = get(incoming_records_);
  m.incoming_bytes = get(incoming_bytes_);
  m.incoming_put_requests = get(incoming_put_requests_);
  m.throttled_records = get(throttled_records_);
  m.destination = destination_ ? std::string(destination_->metric_name()) : "";
  m.delivery_records = get(delivery_records_);
  m.delivery_bytes = get(delivery_bytes_);
  m.delivery_success = get(delivery_success_);
  m.delivery_attempts = get(delivery_attempts_);
  m.data_freshness_ms = get(data_freshness_ms_);
  m.execute_processing_success = get(processing_success_);
  m.execute_processing_failure = get(processing_failure_);
  m.succeed_processing_records = get(processed_records_);
  m.succeed_processing_bytes = get(processed_bytes_);
  m.dropped_records = get(dropped_records_);
  m.error_output_records = get(error_records_);
  m.error_output_failures = get(error_failures_);
  m.active_partitions = get(active_partitions_);
  m.buffered_bytes = get(buffered_gauge_);
  return m;
}

// ---------------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<DeliveryStream>> DeliveryStream::Create(
    DeliveryStreamOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  RILL_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<DeliveryStream>(new DeliveryStream(std::move(impl)));
}

DeliveryStream::DeliveryStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeliveryStream::~DeliveryStream() = default;
const std::string& DeliveryStream::name() const { return impl_->name(); }
const std::string& DeliveryStream::arn() const { return impl_->arn(); }
absl::StatusOr<std::string> DeliveryStream::PutRecord(std::string_view data) {
  return impl_->PutRecord(data);
}
absl::StatusOr<PutRecordBatchResult> DeliveryStream::PutRecordBatch(
    absl::Span<const std::string_view> records) {
  return impl_->PutRecordBatch(records);
}
absl::Status DeliveryStream::Poll() { return impl_->Poll(); }
absl::Status DeliveryStream::Start() { return impl_->Start(); }
absl::Status DeliveryStream::Flush() { return impl_->Flush(); }
absl::Status DeliveryStream::Close() { return impl_->Close(); }
DeliveryMetrics DeliveryStream::metrics() const { return impl_->metrics(); }

}  // namespace rill
