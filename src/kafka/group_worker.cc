// A ConsumerGroup worker on Kafka's own group protocol: a member of the consumer group
// options.application_name, with cooperative-sticky assignment and checkpoints as committed
// offsets (see Stream::MakeGroupWorker in rill/kafka/stream.h).
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kafka/rdkafka.h"
#include "kafka/stream_internal.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"
#include "rill/kafka/stream.h"

namespace rill::kafka::internal {
namespace {

using rill::internal::Mutex;
using rill::internal::MutexLock;

// Real time Poll() waits for the first record: Kafka's network, which a simulated clock does
// not drive. It also bounds how long a Start()ed worker takes to notice Shutdown().
constexpr int kPollWaitMs = 100;

std::string_view PositionName(const StartingPosition& position) {
  switch (position.type) {
    case ShardIteratorType::kTrimHorizon:
      return "TRIM_HORIZON";
    case ShardIteratorType::kAtTimestamp:
      return "AT_TIMESTAMP";
    default:
      return "LATEST";
  }
}

// Errors that mean "this member no longer owns the partition".
bool OwnershipLost(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
         err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
         err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || err == RD_KAFKA_RESP_ERR__STATE ||
         err == RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST || err == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
}

class KafkaGroupWorker final : public NativeGroupWorker {
 public:
  KafkaGroupWorker(Stream& stream, const ConsumerGroupOptions& options, std::string id,
                   RecordProcessorFactory factory)
      : stream_(stream), options_(options), id_(std::move(id)), factory_(std::move(factory)) {}

  ~KafkaGroupWorker() override { Crash(); }

  absl::Status Connect() {
    const absl::Duration session = options_.failover_time;
    const absl::Duration heartbeat =
        options_.renew_interval > absl::ZeroDuration() ? options_.renew_interval : session / 3;
    const bool earliest = options_.initial_position.type != ShardIteratorType::kLatest;
    Properties defaults = {
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"session.timeout.ms", absl::StrCat(std::max<int64_t>(1, session / absl::Milliseconds(1)))},
        {"heartbeat.interval.ms",
         absl::StrCat(std::max<int64_t>(1, heartbeat / absl::Milliseconds(1)))},
        {"auto.offset.reset", earliest ? "earliest" : "latest"},
        {"log_level", "3"},
    };
    Properties required = stream_.options().properties;
    required.emplace_back("group.id", options_.application_name);
    required.emplace_back("client.id", absl::StrCat("rill-", id_));
    // Checkpoints are the processors' to make: nothing is committed or stored behind them.
    required.emplace_back("enable.auto.commit", "false");
    required.emplace_back("enable.auto.offset.store", "false");
    required.emplace_back("enable.partition.eof", "false");
    absl::StatusOr<Conf> conf = MakeConf(defaults, required);
    if (!conf.ok()) return conf.status();
    rd_kafka_conf_set_rebalance_cb(conf->get(), &KafkaGroupWorker::OnRebalance);
    rd_kafka_conf_set_opaque(conf->get(), this);
    absl::StatusOr<Handle> handle = MakeHandle(RD_KAFKA_CONSUMER, std::move(*conf));
    if (!handle.ok()) return handle.status();
    consumer_ = std::move(*handle);
    rd_kafka_poll_set_consumer(consumer_.get());
    queue_.reset(rd_kafka_queue_get_consumer(consumer_.get()));
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, stream_.topic().c_str(), RD_KAFKA_PARTITION_UA);
    const rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer_.get(), topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return KafkaError(err, absl::StrCat("joining consumer group ", options_.application_name));
    }
    return absl::OkStatus();
  }

  const std::string& id() const override { return id_; }

  absl::Status Poll() override {
    MutexLock<Mutex> lock(&poll_mu_);
    if (shut_down_) return ResourceInUseError(absl::StrFormat("worker %s is shut down", id_));
    return PollLocked().status();
  }

  absl::Status Start() override {
    MutexLock<Mutex> lock(&thread_mu_);
    if (thread_.joinable()) return ResourceInUseError("worker already started");
    stop_ = false;
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  void Shutdown() override {
    StopThread();
    MutexLock<Mutex> lock(&poll_mu_);
    if (shut_down_ || consumer_ == nullptr) return;
    shut_down_ = true;
    // Leaves the group: the revocation calls ShutdownRequested (processors checkpoint) and the
    // partitions go to the other members at once.
    rd_kafka_consumer_close(consumer_.get());
    queue_.reset();
    consumer_.reset();
  }

  void Crash() override {
    StopThread();
    MutexLock<Mutex> lock(&poll_mu_);
    shut_down_ = true;
    {
      MutexLock<Mutex> state_lock(&state_mu_);
      held_.clear();  // no callbacks
    }
    queue_.reset();
    if (consumer_ != nullptr) {
      // Without leaving the group: the others take the partitions when the session expires.
      rd_kafka_destroy_flags(consumer_.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
  }

  std::vector<ShardId> held_shards() const override {
    MutexLock<Mutex> lock(&state_mu_);
    std::vector<ShardId> out;
    for (const auto& [p, h] : held_) out.push_back(ShardId(static_cast<uint32_t>(p)));
    return out;
  }

  absl::Status Checkpoint(ShardId shard, SequenceNumber sequence_number) override {
    MutexLock<Mutex> lock(&poll_mu_);
    return CheckpointAt(static_cast<int>(shard.index()), sequence_number);
  }

 private:
  struct Held {
    std::unique_ptr<RecordProcessor> processor;
    int64_t delivered = -1;   // offset of the last record delivered; -1: none
    int64_t checkpoint = -1;  // offset of the last record checkpointed; -1: none
    std::string last_checkpoint;
  };

  class PartitionCheckpointer final : public Checkpointer {
   public:
    PartitionCheckpointer(KafkaGroupWorker* worker, int partition)
        : worker_(worker), partition_(partition) {}
    absl::Status Checkpoint() override { return worker_->CheckpointDelivered(partition_); }
    absl::Status Checkpoint(SequenceNumber s) override {
      return worker_->CheckpointAt(partition_, s);
    }
    std::string last_checkpoint() const override {
      MutexLock<Mutex> lock(&worker_->state_mu_);
      auto it = worker_->held_.find(partition_);
      return it == worker_->held_.end() ? "" : it->second.last_checkpoint;
    }

   private:
    KafkaGroupWorker* const worker_;
    const int partition_;
  };

  void StopThread() {
    MutexLock<Mutex> lock(&thread_mu_);
    stop_ = true;
    waker_.Interrupt();
    if (thread_.joinable()) thread_.join();
  }

  void Run() {
    const std::shared_ptr<Clock>& clock = stream_.clock();
    while (!stop_.load()) {
      const absl::Time polled = clock->Now();
      bool read = false;
      {
        MutexLock<Mutex> lock(&poll_mu_);
        if (shut_down_) return;
        absl::StatusOr<bool> r = PollLocked();
        read = r.ok() && *r;
      }
      if (!read && !stop_.load()) {
        clock->WaitUntil(polled + options_.idle_time_between_polls, waker_);
      }
    }
  }

  // One round; whether any record was handed to a processor. REQUIRES poll_mu_.
  absl::StatusOr<bool> PollLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(poll_mu_) {
    // The first message (or rebalance) waits; the rest is what has arrived.
    std::vector<rd_kafka_message_t*> messages;
    rd_kafka_message_t* first = rd_kafka_consumer_poll(consumer_.get(), kPollWaitMs);
    if (first != nullptr) {
      messages.push_back(first);
      const size_t more = static_cast<size_t>(options_.max_records) - 1;
      if (more > 0) {
        messages.resize(1 + more);
        const ssize_t n = rd_kafka_consume_batch_queue(queue_.get(), 0, messages.data() + 1, more);
        messages.resize(1 + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      }
    }
    // A partition assigned with records to read gets its first batch in the round it was
    // assigned, as a rill lease does (its first GetRecords): until then the processor could not
    // tell "nothing to read" from "not fetched yet" (a ConsumerGroupSource would call itself
    // caught up). Bounded by the stream's timeout (real time: the fetch).
    if (!awaiting_first_.empty()) {
      for (rd_kafka_message_t* m : messages) awaiting_first_.erase(m->partition);
      // Real time on purpose: this waits for a fetch on the network, which a simulated clock
      // does not drive (bounded by the stream's timeout, as every other wait on Kafka).
      const auto deadline =
          std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(stream_.options().timeout);
      while (!awaiting_first_.empty() && std::chrono::steady_clock::now() < deadline) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_.get(), kPollWaitMs);
        if (m == nullptr) continue;
        awaiting_first_.erase(m->partition);
        messages.push_back(m);
      }
      awaiting_first_.clear();
    }
    absl::Status status;
    // Each partition's messages, in order.
    std::map<int, std::vector<rd_kafka_message_t*>> by_partition;
    for (rd_kafka_message_t* m : messages) {
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        // librdkafka retries what can be retried; report the rest after the round.
        if (status.ok() && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          status = KafkaError(m->err, absl::StrCat("consumer group ", options_.application_name));
        }
        continue;
      }
      by_partition[m->partition].push_back(m);
    }
    bool read = false;
    for (auto& [partition, list] : by_partition) {
      bool held = false;
      {
        MutexLock<Mutex> lock(&state_mu_);
        held = held_.count(partition) != 0;
      }
      if (!held) continue;  // revoked meanwhile: the new owner reads them
      MessageCopy copy = CopyMessages(absl::MakeConstSpan(list), SIZE_MAX);
      for (size_t i = 0; i < copy.records.size(); ++i) {
        copy.records[i].sequence_number = stream_.ToSequenceNumber(partition, copy.offsets[i]);
      }
      if (copy.records.empty()) continue;
      RecordProcessor* processor = nullptr;
      {
        MutexLock<Mutex> lock(&state_mu_);
        Held& h = held_[partition];
        h.delivered = copy.offsets.back();
        processor = h.processor.get();
      }
      int64_t behind = 0;
      int64_t low = 0;
      int64_t high = 0;
      if (rd_kafka_get_watermark_offsets(consumer_.get(), stream_.topic().c_str(), partition, &low,
                                         &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          copy.offsets.back() + 1 < high) {
        behind = std::max<int64_t>(
            0, absl::ToInt64Milliseconds(stream_.clock()->Now() -
                                         copy.records.back().approximate_arrival_timestamp));
      }
      PartitionCheckpointer checkpointer(this, partition);
      processor->ProcessRecords({absl::MakeConstSpan(copy.records), behind, checkpointer});
      read = true;
    }
    for (rd_kafka_message_t* m : messages) rd_kafka_message_destroy(m);
    if (!status.ok()) return status;
    return read;
  }

  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    static_cast<KafkaGroupWorker*>(opaque)->Rebalance(rk, err, partitions);
  }

  // Called from inside rd_kafka_consumer_poll or rd_kafka_consumer_close, on the thread that
  // holds poll_mu_.
  void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                 rd_kafka_topic_partition_list_t* partitions) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      // Where each partition resumes: its committed offset, else the initial position.
      rd_kafka_committed(rk, partitions, TimeoutMs(stream_.options().timeout));
      std::vector<std::pair<int, int64_t>> assigned;
      for (int i = 0; i < partitions->cnt; ++i) {
        rd_kafka_topic_partition_t& tp = partitions->elems[i];
        const int64_t committed = tp.err == RD_KAFKA_RESP_ERR_NO_ERROR ? tp.offset : -1;
        assigned.emplace_back(tp.partition, committed);
        if (committed < 0) {
          tp.offset = RD_KAFKA_OFFSET_INVALID;  // auto.offset.reset: earliest or latest
          if (options_.initial_position.type == ShardIteratorType::kAtTimestamp) {
            absl::StatusOr<int64_t> at =
                stream_.ResolveOffset(tp.partition, options_.initial_position);
            if (at.ok()) tp.offset = *at;
          }
        }
      }
      if (cooperative) {
        if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, partitions)) {
          rd_kafka_error_destroy(e);
        }
      } else {
        rd_kafka_assign(rk, partitions);
      }
      for (const auto& [partition, committed] : assigned) {
        // Whether the partition has records from where it starts (see PollLocked).
        int64_t low = 0;
        int64_t high = 0;
        if (rd_kafka_query_watermark_offsets(rk, stream_.topic().c_str(), partition, &low, &high,
                                             TimeoutMs(stream_.options().timeout)) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
          int64_t start = committed;
          if (start < 0) {
            start = options_.initial_position.type == ShardIteratorType::kLatest ? high : low;
            for (int i = 0; i < partitions->cnt; ++i) {
              if (partitions->elems[i].partition == partition && partitions->elems[i].offset >= 0) {
                start = partitions->elems[i].offset;  // AT_TIMESTAMP
              }
            }
          }
          if (start < high) awaiting_first_.insert(partition);
        }
        Held h;
        h.processor = factory_(ShardId(static_cast<uint32_t>(partition)));
        if (h.processor == nullptr) continue;
        h.delivered = committed - 1;
        h.checkpoint = committed - 1;
        h.last_checkpoint = committed > 0
                                ? stream_.ToSequenceNumber(partition, committed - 1).ToString()
                                : std::string(PositionName(options_.initial_position));
        InitializationInput input{ShardId(static_cast<uint32_t>(partition)), h.last_checkpoint};
        RecordProcessor* processor = h.processor.get();
        {
          MutexLock<Mutex> lock(&state_mu_);
          held_[partition] = std::move(h);
        }
        processor->Initialize(input);
      }
      return;
    }
    // Revoked (handed over: the processor checkpoints) or lost (the session expired: it stops).
    const bool lost = err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS || rd_kafka_assignment_lost(rk);
    for (int i = 0; i < partitions->cnt; ++i) {
      const int partition = partitions->elems[i].partition;
      RecordProcessor* processor = nullptr;
      {
        MutexLock<Mutex> lock(&state_mu_);
        auto it = held_.find(partition);
        if (it != held_.end()) processor = it->second.processor.get();
      }
      if (processor != nullptr) {
        if (lost) {
          processor->LeaseLost();
        } else {
          PartitionCheckpointer checkpointer(this, partition);
          processor->ShutdownRequested(checkpointer);
        }
      }
      awaiting_first_.erase(partition);
      MutexLock<Mutex> lock(&state_mu_);
      held_.erase(partition);
    }
    if (cooperative) {
      if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, partitions)) {
        rd_kafka_error_destroy(e);
      }
    } else {
      rd_kafka_assign(rk, nullptr);
    }
  }

  absl::Status CheckpointDelivered(int partition) {
    int64_t delivered = -1;
    {
      MutexLock<Mutex> lock(&state_mu_);
      auto it = held_.find(partition);
      if (it == held_.end()) return NotHeld(partition);
      if (it->second.delivered <= it->second.checkpoint) return absl::OkStatus();
      delivered = it->second.delivered;
    }
    return Commit(partition, delivered);
  }

  absl::Status CheckpointAt(int partition, SequenceNumber s) {
    absl::StatusOr<std::pair<int, int64_t>> at = stream_.FromSequenceNumber(s);
    if (!at.ok()) return at.status();
    {
      MutexLock<Mutex> lock(&state_mu_);
      auto it = held_.find(partition);
      if (it == held_.end()) return NotHeld(partition);
      if (at->first != partition || at->second < it->second.checkpoint ||
          at->second > it->second.delivered) {
        return InvalidArgumentError(absl::StrFormat(
            "checkpoint %s is not between the last checkpoint and the last record delivered on "
            "shard %s",
            s.ToString(), ShardId(static_cast<uint32_t>(partition)).ToString()));
      }
    }
    return Commit(partition, at->second);
  }

  absl::Status NotHeld(int partition) const {
    return ResourceInUseError(
        absl::StrFormat("worker %s does not own shard %s (any more)", id_,
                        ShardId(static_cast<uint32_t>(partition)).ToString()));
  }

  // Commits "resume after `offset`" (Kafka's committed offset is the next record's).
  absl::Status Commit(int partition, int64_t offset) {
    if (consumer_ == nullptr) return NotHeld(partition);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, stream_.topic().c_str(), partition)->offset =
        offset + 1;
    rd_kafka_resp_err_t err = rd_kafka_commit(consumer_.get(), list, /*async=*/0);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = list->elems[0].err;
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (OwnershipLost(err)) {
        return ResourceInUseError(absl::StrCat("checkpoint refused: ", rd_kafka_err2name(err),
                                               " (the partition is being reassigned)"));
      }
      return KafkaError(err, "checkpoint");
    }
    MutexLock<Mutex> lock(&state_mu_);
    if (auto it = held_.find(partition); it != held_.end()) {
      it->second.checkpoint = offset;
      it->second.last_checkpoint = stream_.ToSequenceNumber(partition, offset).ToString();
    }
    return absl::OkStatus();
  }

  Stream& stream_;
  const ConsumerGroupOptions options_;
  const std::string id_;
  const RecordProcessorFactory factory_;

  Mutex thread_mu_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  rill::internal::Waker waker_;

  Mutex poll_mu_;
  bool shut_down_ = false;
  Handle consumer_;
  Queue queue_;
  // Partitions assigned with records to read whose first batch has not come yet.
  std::set<int> awaiting_first_;

  mutable Mutex state_mu_;
  std::map<int, Held> held_ ABSL_GUARDED_BY(state_mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<NativeGroupWorker>> MakeKafkaGroupWorker(
    Stream& stream, const ConsumerGroupOptions& options, std::string worker_id,
    RecordProcessorFactory factory) {
  auto worker =
      std::make_unique<KafkaGroupWorker>(stream, options, std::move(worker_id), std::move(factory));
  if (absl::Status s = worker->Connect(); !s.ok()) return s;
  return std::unique_ptr<NativeGroupWorker>(std::move(worker));
}

}  // namespace rill::kafka::internal
