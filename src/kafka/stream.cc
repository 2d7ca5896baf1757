// rill::kafka::Stream: the StreamApi over a Kafka topic (see rill/kafka/stream.h for the mapping).
#include "rill/kafka/stream.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/sealed_token.h"
#include "base/strings.h"
#include "base/utf.h"
#include "kafka/rdkafka.h"
#include "kafka/stream_internal.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"

namespace rill::kafka {

using rill::internal::CondVar;
using rill::internal::Mutex;
using rill::internal::MutexLock;
using rill::internal::Waker;

namespace internal {

int TimeoutMs(absl::Duration d) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 1, INT32_MAX));
}

size_t ConsumeAvailable(rd_kafka_topic_t* topic, int partition, int wait_ms, size_t max,
                        std::vector<rd_kafka_message_t*>* out) {
  out->clear();
  if (max == 0) return 0;
  // The first message waits (up to wait_ms); the rest are only what is already fetched, so a
  // call never waits for a batch to fill.
  rd_kafka_message_t* first = rd_kafka_consume(topic, partition, wait_ms);
  if (first == nullptr) return 0;
  out->push_back(first);
  if (max > 1) {
    out->resize(max);
    const ssize_t more = rd_kafka_consume_batch(topic, partition, 0, out->data() + 1, max - 1);
    out->resize(1 + static_cast<size_t>(std::max<ssize_t>(more, 0)));
  }
  return out->size();
}

MessageCopy CopyMessages(absl::Span<rd_kafka_message_t* const> messages, size_t max_bytes) {
  MessageCopy copy;
  size_t bytes = 0;
  size_t take = 0;
  for (rd_kafka_message_t* m : messages) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) break;
    const size_t size = m->key_len + m->len;
    if (take > 0 && bytes + size > max_bytes) break;
    bytes += size;
    ++take;
  }
  copy.taken = take;
  auto buffer = std::make_shared<std::string>();
  buffer->resize(bytes);
  char* out = buffer->data();
  copy.records.reserve(take);
  for (size_t i = 0; i < take; ++i) {
    const rd_kafka_message_t* m = messages[i];
    if (m->key_len > 0) std::memcpy(out, m->key, m->key_len);
    if (m->len > 0) std::memcpy(out + m->key_len, m->payload, m->len);
    rd_kafka_timestamp_type_t type;
    const int64_t ts = rd_kafka_message_timestamp(m, &type);
    copy.records.push_back({SequenceNumber(), absl::FromUnixMillis(std::max<int64_t>(ts, 0)),
                            std::string_view(out, m->key_len),
                            std::string_view(out + m->key_len, m->len)});
    copy.offsets.push_back(m->offset);
    out += m->key_len + m->len;
  }
  copy.storage = std::move(buffer);
  if (take < messages.size()) copy.error = messages[take]->err;
  return copy;
}

}  // namespace internal

namespace {

constexpr std::string_view kIteratorDomain = "rill.kafka.shard-iterator.v1";
constexpr std::string_view kNextTokenDomain = "rill.kafka.list-shards.v1";
constexpr size_t kTokenCheckBytes = 8;
constexpr int kMaxConsumers = 20;  // Kinesis' limit per stream
// Kafka's broker default (log.retention.hours), reported when the broker does not say.
constexpr absl::Duration kKafkaDefaultRetention = absl::Hours(168);
// The high byte of a Kafka sequence number: marks it as one, so that it is never confused with a
// rill Stream's (whose high byte is its layout version, 1).
constexpr uint64_t kSequenceMark = 0x6b;

struct IteratorFields {
  uint32_t topic_tag = 0;
  uint32_t partition = 0;
  int64_t offset = 0;
  int64_t issued_us = 0;
};
static_assert(std::has_unique_object_representations_v<IteratorFields>);

struct NextTokenFields {
  uint32_t topic_tag = 0;
  uint32_t last_index = 0;
  uint32_t filter_type = 0;
  uint32_t filter_shard = 0;
  int64_t issued_us = 0;
};
static_assert(std::has_unique_object_representations_v<NextTokenFields>);

// 24 bits of the topic name's hash (FNV-1a), carried by its sequence numbers and iterators.
uint32_t TopicTag(std::string_view topic) {
  uint32_t h = 2166136261u;
  for (unsigned char c : topic) h = (h ^ c) * 16777619u;
  return h & 0xffffff;
}

std::string ShardName(int partition) {
  return ShardId(static_cast<uint32_t>(partition)).ToString();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Subscriptions: one Kafka consumer and one thread each.

class Stream::Impl {
 public:
  struct ConsumerState {
    ConsumerDescription description;
    Mutex mu;
    bool deregistered ABSL_GUARDED_BY(mu) = false;
    // Per partition, the newest subscription's generation: an older one is taken over.
    std::vector<uint64_t> generation ABSL_GUARDED_BY(mu);
  };

  // One partition's fetcher on the shared reader: positioned at `next` when started.
  struct PartitionReader {
    Mutex mu;
    bool started ABSL_GUARDED_BY(mu) = false;
    int64_t next ABSL_GUARDED_BY(mu) = -1;  // the offset the fetcher delivers next; -1: unknown
  };

  StreamOptions options;
  uint32_t topic_tag = 0;
  int partitions = 0;
  std::vector<HashKeyRange> ranges;
  absl::Time opened;
  std::atomic<int64_t> retention_ms{0};

  internal::Handle producer;
  internal::Topic producer_topic;
  std::thread delivery_thread;
  std::atomic<bool> stopping{false};

  internal::Handle reader;
  internal::Topic reader_topic;
  std::vector<std::unique_ptr<PartitionReader>> readers;

  mutable Mutex consumers_mu;
  std::vector<std::shared_ptr<ConsumerState>> consumers ABSL_GUARDED_BY(consumers_mu);

  ~Impl() {
    if (producer != nullptr) rd_kafka_flush(producer.get(), internal::TimeoutMs(options.timeout));
    stopping.store(true);
    if (delivery_thread.joinable()) delivery_thread.join();
    for (size_t p = 0; p < readers.size(); ++p) {
      MutexLock<Mutex> lock(&readers[p]->mu);
      if (readers[p]->started) rd_kafka_consume_stop(reader_topic.get(), static_cast<int32_t>(p));
    }
    reader_topic.reset();
    producer_topic.reset();
    reader.reset();
    producer.reset();
  }

  // ---- Sequence numbers, shards and tokens ----

  SequenceNumber ToSequence(int partition, int64_t offset) const {
    const uint64_t high =
        (kSequenceMark << 56) | (uint64_t{topic_tag} << 32) | static_cast<uint32_t>(partition);
    // offset + 1: the number "before the first record" (offset -1) is then still positive, for
    // a continuation that has delivered nothing yet.
    return SequenceNumber(absl::MakeUint128(high, static_cast<uint64_t>(offset + 1)));
  }

  absl::StatusOr<std::pair<int, int64_t>> FromSequence(SequenceNumber s) const {
    const uint64_t high = absl::Uint128High64(s.value());
    const uint64_t low = absl::Uint128Low64(s.value());
    const int partition = static_cast<int>(high & 0xffffffff);
    if (!s.fits_128() || (high >> 56) != kSequenceMark || ((high >> 32) & 0xffffff) != topic_tag ||
        partition >= partitions || low > static_cast<uint64_t>(INT64_MAX)) {
      return InvalidArgumentError(absl::StrFormat("sequence number %s was not issued by stream %s",
                                                  s.ToString(), options.name));
    }
    return std::make_pair(partition, static_cast<int64_t>(low) - 1);
  }

  absl::StatusOr<int> ParseShard(std::string_view shard_id) const {
    absl::StatusOr<ShardId> id = ShardId::Parse(shard_id);
    if (!id.ok()) return id.status();
    if (id->index() >= static_cast<uint32_t>(partitions)) {
      return ResourceNotFoundError(
          absl::StrFormat("Shard %s in stream %s does not exist", id->ToString(), options.name));
    }
    return static_cast<int>(id->index());
  }

  ShardIterator MakeIterator(int partition, int64_t offset) const {
    IteratorFields f;
    f.topic_tag = topic_tag;
    f.partition = static_cast<uint32_t>(partition);
    f.offset = offset;
    const absl::Time now = options.clock->Now();
    f.issued_us = absl::ToUnixMicros(now);
    return ShardIterator::FromToken(
        rill::internal::SealToken(kIteratorDomain,
                                  std::string_view(reinterpret_cast<const char*>(&f), sizeof(f)),
                                  kTokenCheckBytes),
        now);
  }

  absl::StatusOr<IteratorFields> OpenIterator(const ShardIterator& it) const {
    IteratorFields f;
    if (!it.is_remote() ||
        !rill::internal::OpenToken(kIteratorDomain, it.token(), kTokenCheckBytes, &f, sizeof(f)) ||
        f.topic_tag != topic_tag || f.partition >= static_cast<uint32_t>(partitions) ||
        f.offset < 0) {
      return InvalidArgumentError(absl::StrFormat(
          "ShardIterator is malformed or belongs to another stream than %s", options.name));
    }
    const absl::Time issued = absl::FromUnixMicros(f.issued_us);
    if (options.clock->Now() - issued > kShardIteratorLifetime) {
      return ExpiredIteratorError(
          absl::StrFormat("Iterator expired. The iterator was created at %s",
                          absl::FormatTime(issued, absl::UTCTimeZone())));
    }
    return f;
  }

  int Route(HashKey key) const {
    // The last range that starts at or below the key.
    auto it =
        std::upper_bound(ranges.begin(), ranges.end(), key,
                         [](HashKey k, const HashKeyRange& r) { return k < r.starting_hash_key; });
    return static_cast<int>(it - ranges.begin()) - 1;
  }

  ShardDescription Describe(int partition) const {
    ShardDescription d;
    d.shard_id = ShardId(static_cast<uint32_t>(partition));
    d.hash_key_range = ranges[static_cast<size_t>(partition)];
    d.sequence_number_range.starting_sequence_number = ToSequence(partition, -1);
    return d;
  }

  // ---- Offsets ----

  absl::StatusOr<std::pair<int64_t, int64_t>> Watermarks(int partition) const {
    int64_t low = 0;
    int64_t high = 0;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    // A leader that moved answers NOT_LEADER until the reader's metadata has the new one:
    // refresh it and ask again (a few times: each refresh is a round trip).
    for (int attempt = 0; attempt < 5; ++attempt) {
      // Through the producer's connections: the reader's carry fetches that a broker holds for
      // up to fetch.wait.max.ms when it has nothing new, and a ListOffsets would queue behind.
      err = rd_kafka_query_watermark_offsets(producer.get(), options.topic.c_str(), partition, &low,
                                             &high, internal::TimeoutMs(options.timeout));
      if (err != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
          err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE && err != RD_KAFKA_RESP_ERR__TRANSPORT) {
        break;
      }
      const rd_kafka_metadata_t* metadata = nullptr;
      if (rd_kafka_metadata(producer.get(), 0, producer_topic.get(), &metadata,
                            internal::TimeoutMs(options.timeout)) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(metadata);
      }
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return internal::KafkaError(err,
                                  absl::StrCat("reading the offsets of ", ShardName(partition)));
    }
    return std::make_pair(low, high);
  }

  // The timestamp (ms) of the first record at or after `offset` (offsets may have gaps), read
  // through the shared fetcher.
  absl::StatusOr<int64_t> TimestampAt(int partition, int64_t offset) const {
    PartitionReader& r = *readers[static_cast<size_t>(partition)];
    MutexLock<Mutex> lock(&r.mu);
    if (absl::Status s = PositionLocked(r, partition, offset); !s.ok()) return s;
    rd_kafka_message_t* m =
        rd_kafka_consume(reader_topic.get(), partition, internal::TimeoutMs(options.timeout));
    if (m == nullptr) {
      r.next = -1;
      return InternalFailureError(absl::StrFormat("no record of %s at offset %d within %s",
                                                  ShardName(partition), offset,
                                                  absl::FormatDuration(options.timeout)));
    }
    const rd_kafka_resp_err_t err = m->err;
    const int64_t ts = rd_kafka_message_timestamp(m, nullptr);
    r.next = err == RD_KAFKA_RESP_ERR_NO_ERROR ? m->offset + 1 : -1;
    rd_kafka_message_destroy(m);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return internal::KafkaError(err, absl::StrCat("reading ", ShardName(partition)));
    }
    return ts;
  }

  // The first offset whose record's timestamp is at or after `t`, or the high watermark.
  absl::StatusOr<int64_t> OffsetAtTime(int partition, absl::Time t, int64_t low,
                                       int64_t high) const {
    const int64_t ms = absl::ToUnixMillis(t);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, options.topic.c_str(), partition)->offset = ms;
    const rd_kafka_resp_err_t err =
        rd_kafka_offsets_for_times(producer.get(), list, internal::TimeoutMs(options.timeout));
    int64_t offset = list->elems[0].offset;
    const rd_kafka_resp_err_t part_err = list->elems[0].err;
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR || part_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return internal::KafkaError(
          err != RD_KAFKA_RESP_ERR_NO_ERROR ? err : part_err,
          absl::StrCat("finding the offset at a time in ", ShardName(partition)));
    }
    if (offset >= 0) return std::clamp(offset, low, high);
    if (low >= high) return high;
    // "No record at or after t" (-1), unless the broker does not search by time at all: then
    // the newest record is at or after t although it said none is. Search the offsets.
    absl::StatusOr<int64_t> newest = TimestampAt(partition, high - 1);
    if (!newest.ok()) return newest.status();
    if (*newest < ms) return high;
    int64_t lo = low;
    int64_t hi = high - 1;  // its record is at or after t
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      absl::StatusOr<int64_t> ts = TimestampAt(partition, mid);
      if (!ts.ok()) return ts.status();
      if (*ts >= ms) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return lo;
  }

  absl::StatusOr<int64_t> ResolvePosition(int partition, const StartingPosition& position) const {
    absl::StatusOr<std::pair<int64_t, int64_t>> marks = Watermarks(partition);
    if (!marks.ok()) return marks.status();
    const auto [low, high] = *marks;
    switch (position.type) {
      case ShardIteratorType::kTrimHorizon:
        return low;
      case ShardIteratorType::kLatest:
        return high;
      case ShardIteratorType::kAtTimestamp:
        if (!position.timestamp) {
          return InvalidArgumentError("AT_TIMESTAMP requires a Timestamp");
        }
        return OffsetAtTime(partition, *position.timestamp, low, high);
      case ShardIteratorType::kAtSequenceNumber:
      case ShardIteratorType::kAfterSequenceNumber: {
        if (!position.sequence_number) {
          return InvalidArgumentError(
              "AT_ and AFTER_SEQUENCE_NUMBER require a StartingSequenceNumber");
        }
        absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(*position.sequence_number);
        if (!s.ok()) return s.status();
        absl::StatusOr<std::pair<int, int64_t>> at = FromSequence(*s);
        if (!at.ok()) return at.status();
        const bool after = position.type == ShardIteratorType::kAfterSequenceNumber;
        const int64_t offset = at->second + (after ? 1 : 0);
        if (at->first != partition || offset < 0 || offset > high || (!after && offset == high)) {
          return InvalidArgumentError(absl::StrFormat(
              "StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s is "
              "invalid because it did not come from this stream.",
              s->ToString(), ShardName(partition), options.name));
        }
        return std::max(offset, low);  // a record retention removed: from the trim horizon
      }
    }
    return InvalidArgumentError("unknown ShardIteratorType");
  }

  // Makes the shared fetcher of `partition` deliver `offset` next. REQUIRES r.mu.
  absl::Status PositionLocked(PartitionReader& r, int partition, int64_t offset) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(r.mu) {
    if (!r.started) {
      if (rd_kafka_consume_start(reader_topic.get(), partition, offset) == -1) {
        return internal::KafkaError(rd_kafka_last_error(),
                                    absl::StrCat("starting to read ", ShardName(partition)));
      }
      r.started = true;
    } else if (r.next != offset) {
      const rd_kafka_resp_err_t err = rd_kafka_seek(reader_topic.get(), partition, offset,
                                                    internal::TimeoutMs(options.timeout));
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        r.next = -1;
        return internal::KafkaError(err, absl::StrCat("seeking in ", ShardName(partition)));
      }
    }
    r.next = offset;
    return absl::OkStatus();
  }

  absl::StatusOr<GetRecordsResult> GetRecords(const ShardIterator& iterator, int limit) const {
    if (limit < 1 || limit > kMaxGetRecordsLimit) {
      return InvalidArgumentError(
          absl::StrFormat("Limit must be within [1, %d], not %d", kMaxGetRecordsLimit, limit));
    }
    absl::StatusOr<IteratorFields> fields = OpenIterator(iterator);
    if (!fields.ok()) return fields.status();
    const int partition = static_cast<int>(fields->partition);
    const int64_t offset = fields->offset;
    PartitionReader& r = *readers[static_cast<size_t>(partition)];
    GetRecordsResult result;
    int64_t next = offset;
    int64_t high = -1;
    {
      MutexLock<Mutex> lock(&r.mu);
      if (absl::Status s = PositionLocked(r, partition, offset); !s.ok()) return s;
      // Wait for records only when the partition has some beyond the position: a caught-up
      // reader gets an empty answer at once, as from Kinesis.
      int64_t low = 0;
      if (rd_kafka_get_watermark_offsets(reader.get(), options.topic.c_str(), partition, &low,
                                         &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
          high <= offset) {
        absl::StatusOr<std::pair<int64_t, int64_t>> marks = Watermarks(partition);
        if (!marks.ok()) return marks.status();
        high = marks->second;
      }
      const int wait_ms = offset < high ? internal::TimeoutMs(options.timeout) : 0;
      std::vector<rd_kafka_message_t*> messages;
      internal::ConsumeAvailable(reader_topic.get(), partition, wait_ms, static_cast<size_t>(limit),
                                 &messages);
      // Messages before the position (fetched before a seek took effect) are skipped.
      size_t skip = 0;
      while (skip < messages.size() && messages[skip]->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
             messages[skip]->offset < offset) {
        ++skip;
      }
      internal::MessageCopy copy =
          internal::CopyMessages(absl::MakeConstSpan(messages).subspan(skip), kMaxGetRecordsBytes);
      for (size_t i = 0; i < copy.records.size(); ++i) {
        copy.records[i].sequence_number = ToSequence(partition, copy.offsets[i]);
      }
      if (!copy.records.empty()) next = copy.offsets.back() + 1;
      // Whatever was consumed but not returned (over the byte limit, or after an error) must be
      // fetched again: the fetcher's position is no longer `next`.
      r.next = skip + copy.taken == messages.size() ? next : -1;
      const rd_kafka_resp_err_t error = copy.error;
      for (rd_kafka_message_t* m : messages) rd_kafka_message_destroy(m);
      if (copy.records.empty() && error != RD_KAFKA_RESP_ERR_NO_ERROR &&
          error != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        return internal::KafkaError(error, absl::StrCat("GetRecords on ", ShardName(partition)));
      }
      result.records = std::move(copy.records);
      result.storage.Add(std::move(copy.storage));
    }
    // At least 1 while records are left, however recent: 0 says there is nothing more to read.
    // (Not after an empty read: the offsets left may be transaction markers, never records.)
    if (next < high && !result.records.empty()) {
      result.millis_behind_latest = std::max<int64_t>(
          1, absl::ToInt64Milliseconds(options.clock->Now() -
                                       result.records.back().approximate_arrival_timestamp));
    }
    result.next_shard_iterator = MakeIterator(partition, next);
    return result;
  }

  // ---- Retention (DescribeConfigs / AlterConfigs) ----

  // The topic's configuration entries: (name, value, is dynamic topic config).
  struct ConfigEntry {
    std::string name;
    std::string value;
    bool dynamic = false;
  };

  absl::StatusOr<std::vector<ConfigEntry>> DescribeTopicConfig() const {
    if (absl::Status s = internal::RequireController(producer.get()); !s.ok()) {
      return s;
    }
    internal::Queue queue(rd_kafka_queue_new(producer.get()));
    rd_kafka_ConfigResource_t* resource =
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, options.topic.c_str());
    rd_kafka_AdminOptions_t* admin =
        rd_kafka_AdminOptions_new(producer.get(), RD_KAFKA_ADMIN_OP_ANY);
    char reason[256];
    rd_kafka_AdminOptions_set_request_timeout(admin, internal::TimeoutMs(options.timeout), reason,
                                              sizeof(reason));
    rd_kafka_DescribeConfigs(producer.get(), &resource, 1, admin, queue.get());
    rd_kafka_AdminOptions_destroy(admin);
    rd_kafka_ConfigResource_destroy(resource);
    internal::Event event(
        rd_kafka_queue_poll(queue.get(), internal::TimeoutMs(options.timeout) + 1000));
    if (event == nullptr) return InternalFailureError("DescribeConfigs: no answer from Kafka");
    if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return internal::KafkaError(rd_kafka_event_error(event.get()), "DescribeConfigs");
    }
    const rd_kafka_DescribeConfigs_result_t* result =
        rd_kafka_event_DescribeConfigs_result(event.get());
    size_t count = 0;
    const rd_kafka_ConfigResource_t** resources =
        rd_kafka_DescribeConfigs_result_resources(result, &count);
    if (count != 1) return InternalFailureError("DescribeConfigs: no answer for the topic");
    if (rd_kafka_ConfigResource_error(resources[0]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return internal::KafkaError(rd_kafka_ConfigResource_error(resources[0]), "DescribeConfigs");
    }
    size_t n = 0;
    const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(resources[0], &n);
    std::vector<ConfigEntry> out;
    for (size_t i = 0; i < n; ++i) {
      const char* value = rd_kafka_ConfigEntry_value(entries[i]);
      out.push_back(
          {rd_kafka_ConfigEntry_name(entries[i]), value == nullptr ? "" : value,
           rd_kafka_ConfigEntry_source(entries[i]) == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG});
    }
    return out;
  }

  absl::StatusOr<int64_t> ReadRetentionMs() const {
    absl::StatusOr<std::vector<ConfigEntry>> config = DescribeTopicConfig();
    if (!config.ok()) return config.status();
    for (const ConfigEntry& e : *config) {
      int64_t ms = 0;
      if (e.name == "retention.ms" && absl::SimpleAtoi(rill::internal::ToAbsl(e.value), &ms)) {
        return ms;
      }
    }
    return InternalFailureError("DescribeConfigs: the topic has no retention.ms");
  }

  absl::Duration Retention() const {
    const int64_t ms = retention_ms.load(std::memory_order_relaxed);
    return ms < 0 ? absl::InfiniteDuration() : absl::Milliseconds(ms);
  }

  absl::Status ChangeRetention(absl::Duration retention, bool increase) {
    const char* op = increase ? "IncreaseStreamRetentionPeriod" : "DecreaseStreamRetentionPeriod";
    if (retention < kMinRetention || retention > kMaxRetention) {
      return InvalidArgumentError(
          absl::StrFormat("%s: the retention period must be between 24 and 8760 hours, not %s", op,
                          absl::FormatDuration(retention)));
    }
    absl::StatusOr<std::vector<ConfigEntry>> config = DescribeTopicConfig();
    if (!config.ok()) {
      return MakeError(GetErrorCode(config.status()) == ErrorCode::kInternalFailure
                           ? ErrorCode::kInternalFailure
                           : ErrorCode::kInvalidArgument,
                       absl::StrCat(op, ": the topic's configuration cannot be read: ",
                                    config.status().message()));
    }
    int64_t current_ms = kKafkaDefaultRetention / absl::Milliseconds(1);
    for (const ConfigEntry& e : *config) {
      if (e.name == "retention.ms")
        (void)absl::SimpleAtoi(rill::internal::ToAbsl(e.value), &current_ms);
    }
    const absl::Duration current =
        current_ms < 0 ? absl::InfiniteDuration() : absl::Milliseconds(current_ms);
    if (increase ? retention < current : retention > current) {
      return InvalidArgumentError(
          absl::StrFormat("%s: the requested retention %s is %s than the current %s", op,
                          absl::FormatDuration(retention), increase ? "shorter" : "longer",
                          absl::FormatDuration(current)));
    }
    // AlterConfigs replaces the topic's whole dynamic configuration: send the others unchanged.
    rd_kafka_ConfigResource_t* resource =
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, options.topic.c_str());
    const std::string ms = absl::StrCat(retention / absl::Milliseconds(1));
    for (const ConfigEntry& e : *config) {
      if (e.dynamic && e.name != "retention.ms") {
        rd_kafka_ConfigResource_set_config(resource, e.name.c_str(), e.value.c_str());
      }
    }
    rd_kafka_ConfigResource_set_config(resource, "retention.ms", ms.c_str());
    internal::Queue queue(rd_kafka_queue_new(producer.get()));
    rd_kafka_AlterConfigs(producer.get(), &resource, 1, nullptr, queue.get());
    rd_kafka_ConfigResource_destroy(resource);
    internal::Event event(
        rd_kafka_queue_poll(queue.get(), internal::TimeoutMs(options.timeout) + 1000));
    if (event == nullptr) return InternalFailureError(absl::StrCat(op, ": no answer from Kafka"));
    rd_kafka_resp_err_t err = rd_kafka_event_error(event.get());
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      size_t count = 0;
      const rd_kafka_ConfigResource_t** resources = rd_kafka_AlterConfigs_result_resources(
          rd_kafka_event_AlterConfigs_result(event.get()), &count);
      if (count == 1) err = rd_kafka_ConfigResource_error(resources[0]);
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return internal::KafkaError(err, op);
    retention_ms.store(retention / absl::Milliseconds(1));
    return absl::OkStatus();
  }

  // ---- Consumers ----

  absl::StatusOr<std::shared_ptr<ConsumerState>> FindConsumer(std::string_view name) const {
    MutexLock<Mutex> lock(&consumers_mu);
    for (const auto& c : consumers) {
      if (c->description.name == name) return c;
    }
    return ResourceNotFoundError(absl::StrFormat("consumer %s is not registered on stream %s",
                                                 rill::internal::ToAbsl(name), options.name));
  }
};

// ---------------------------------------------------------------------------------------------
// Delivery reports: every produced message carries a Slot; the delivery thread fills it in.

namespace {

struct PutBatch {
  Mutex mu;
  CondVar done;
  int remaining ABSL_GUARDED_BY(mu) = 0;
  PutRecordsResultEntry* results = nullptr;
  const Stream::Impl* impl = nullptr;
};

struct Slot {
  PutBatch* batch;
  size_t index;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  Slot* slot = static_cast<Slot*>(m->_private);
  PutBatch* batch = slot->batch;
  PutRecordsResultEntry& out = batch->results[slot->index];
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    out.shard_id = ShardId(static_cast<uint32_t>(m->partition));
    out.sequence_number = batch->impl->ToSequence(m->partition, m->offset);
  } else {
    const absl::Status error = internal::KafkaError(m->err, "PutRecords");
    out.error_code = GetErrorCode(error);
    out.error_message = std::string(error.message());
  }
  MutexLock<Mutex> lock(&batch->mu);
  if (--batch->remaining == 0) batch->done.SignalAll();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// A subscription: its own Kafka consumer, read by its own thread into a short queue of events.

class KafkaSubscription final : public Subscription {
 public:
  KafkaSubscription(const Stream::Impl& stream, std::shared_ptr<Stream::Impl::ConsumerState> state,
                    uint64_t generation, int partition, int64_t offset,
                    const SubscribeOptions& options)
      : stream_(stream),
        state_(std::move(state)),
        generation_(generation),
        partition_(partition),
        options_(options),
        started_(stream.options.clock->Now()),
        last_event_(started_),
        continuation_(stream.ToSequence(partition, offset - 1)) {}

  ~KafkaSubscription() override {
    Cancel();
    if (thread_.joinable()) thread_.join();
    if (topic_ != nullptr) rd_kafka_consume_stop(topic_.get(), partition_);
    topic_.reset();
    handle_.reset();
  }

  absl::Status Start(int64_t offset) {
    absl::StatusOr<internal::Conf> conf =
        internal::MakeConf(internal::ReaderDefaults(), stream_.options.properties);
    if (!conf.ok()) return conf.status();
    absl::StatusOr<internal::Handle> handle =
        internal::MakeHandle(RD_KAFKA_CONSUMER, std::move(*conf));
    if (!handle.ok()) return handle.status();
    handle_ = std::move(*handle);
    topic_.reset(rd_kafka_topic_new(handle_.get(), stream_.options.topic.c_str(), nullptr));
    if (rd_kafka_consume_start(topic_.get(), partition_, offset) == -1) {
      return internal::KafkaError(rd_kafka_last_error(), "SubscribeToShard");
    }
    thread_ = std::thread([this] { Read(); });
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<SubscribeToShardEvent>> Next(absl::Duration timeout) override {
    const Clock& clock = *stream_.options.clock;
    const absl::Time deadline = clock.Now() + timeout;
    for (;;) {
      absl::StatusOr<std::optional<SubscribeToShardEvent>> event = TryNext();
      if (!event.ok() || event->has_value() || !active()) return event;
      const absl::Time now = clock.Now();
      if (now >= deadline) return event;
      stream_.options.clock->WaitFor(deadline - now, waker_);
    }
  }

  absl::StatusOr<std::optional<SubscribeToShardEvent>> TryNext() override {
    {
      MutexLock<Mutex> lock(&state_->mu);
      if (state_->deregistered) {
        return ResourceNotFoundError(
            absl::StrFormat("consumer %s was deregistered", state_->description.name));
      }
      if (state_->generation[static_cast<size_t>(partition_)] != generation_) {
        return ResourceInUseError(
            absl::StrFormat("a newer subscription of consumer %s took over %s",
                            state_->description.name, ShardName(partition_)));
      }
    }
    const absl::Time now = stream_.options.clock->Now();
    MutexLock<Mutex> lock(&mu_);
    if (ended_) return std::optional<SubscribeToShardEvent>();
    if (options_.lifetime > absl::ZeroDuration() && now >= started_ + options_.lifetime) {
      ended_ = true;
      return std::optional<SubscribeToShardEvent>();
    }
    if (!events_.empty()) {
      SubscribeToShardEvent event = std::move(events_.front());
      events_.pop_front();
      room_.SignalAll();
      continuation_ = event.continuation_sequence_number;
      last_event_ = now;
      return std::optional<SubscribeToShardEvent>(std::move(event));
    }
    if (!error_.ok()) return error_;
    if (options_.heartbeat_interval > absl::ZeroDuration() &&
        now - last_event_ >= options_.heartbeat_interval) {
      last_event_ = now;
      SubscribeToShardEvent heartbeat;
      heartbeat.continuation_sequence_number = continuation_;
      return std::optional<SubscribeToShardEvent>(std::move(heartbeat));
    }
    return std::optional<SubscribeToShardEvent>();
  }

  bool active() const override {
    MutexLock<Mutex> lock(&mu_);
    return !ended_ && error_.ok();
  }

  void Cancel() override {
    {
      MutexLock<Mutex> lock(&mu_);
      ended_ = true;
      room_.SignalAll();
    }
    waker_.Interrupt();
  }

  ShardId shard_id() const override { return ShardId(static_cast<uint32_t>(partition_)); }
  const std::string& consumer_name() const override { return state_->description.name; }
  std::optional<SequenceNumber> continuation_sequence_number() const override {
    MutexLock<Mutex> lock(&mu_);
    return continuation_;
  }
  void AddWaker(rill::internal::Waker* waker) override {
    MutexLock<Mutex> lock(&mu_);
    wakers_.push_back(waker);
  }
  void RemoveWaker(rill::internal::Waker* waker) override {
    MutexLock<Mutex> lock(&mu_);
    wakers_.erase(std::remove(wakers_.begin(), wakers_.end(), waker), wakers_.end());
  }

 private:
  // At most this many events wait for the subscriber; then the thread stops reading (and
  // librdkafka's prefetch stops at queued.max.messages.kbytes).
  static constexpr size_t kMaxQueuedEvents = 16;
  // Real time the reading thread waits for a record before it looks whether it was cancelled:
  // it only bounds how long Cancel() takes to be noticed.
  static constexpr int kReadWaitMs = 50;

  void Read() {
    std::vector<rd_kafka_message_t*> messages;
    for (;;) {
      {
        MutexLock<Mutex> lock(&mu_);
        while (!ended_ && events_.size() >= kMaxQueuedEvents) room_.Wait(&mu_);
        if (ended_) return;
      }
      internal::ConsumeAvailable(topic_.get(), partition_, kReadWaitMs,
                                 static_cast<size_t>(options_.max_records_per_event), &messages);
      if (messages.empty()) continue;
      internal::MessageCopy copy =
          internal::CopyMessages(absl::MakeConstSpan(messages), kMaxGetRecordsBytes);
      const bool truncated =
          copy.taken < messages.size() && copy.error == RD_KAFKA_RESP_ERR_NO_ERROR;
      const int64_t last = copy.records.empty() ? -1 : copy.offsets.back();
      for (rd_kafka_message_t* m : messages) rd_kafka_message_destroy(m);
      messages.clear();
      absl::Status failure;
      if (copy.error == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
          copy.error == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
          copy.error == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        failure = internal::KafkaError(copy.error, "SubscribeToShard");
      }
      if (truncated) {
        // Over the byte limit: the rest is read again from the next offset.
        rd_kafka_seek(topic_.get(), partition_, last + 1,
                      internal::TimeoutMs(stream_.options.timeout));
      }
      // Other errors (a broker down, a leader moving) are librdkafka's to retry: it keeps
      // fetching, and the subscription goes on.
      if (copy.records.empty() && failure.ok()) continue;
      SubscribeToShardEvent event;
      if (!copy.records.empty()) {
        for (size_t i = 0; i < copy.records.size(); ++i) {
          copy.records[i].sequence_number = stream_.ToSequence(partition_, copy.offsets[i]);
        }
        int64_t low = 0;
        int64_t high = 0;
        if (rd_kafka_get_watermark_offsets(handle_.get(), stream_.options.topic.c_str(), partition_,
                                           &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            last + 1 < high) {
          event.millis_behind_latest = std::max<int64_t>(  // at least 1: records are left
              1, absl::ToInt64Milliseconds(stream_.options.clock->Now() -
                                           copy.records.back().approximate_arrival_timestamp));
        }
        event.continuation_sequence_number = copy.records.back().sequence_number;
        event.records = std::move(copy.records);
        event.storage.Add(std::move(copy.storage));
      }
      {
        MutexLock<Mutex> lock(&mu_);
        if (!failure.ok()) {
          error_ = failure;
        } else {
          events_.push_back(std::move(event));
        }
        for (rill::internal::Waker* w : wakers_) {
          w->MarkPending();
          w->Wake();
        }
      }
      waker_.MarkPending();
      waker_.Wake();
      if (!failure.ok()) return;
    }
  }

  const Stream::Impl& stream_;
  const std::shared_ptr<Stream::Impl::ConsumerState> state_;
  const uint64_t generation_;
  const int partition_;
  const SubscribeOptions options_;
  const absl::Time started_;
  internal::Handle handle_;
  internal::Topic topic_;
  std::thread thread_;
  Waker waker_;

  mutable Mutex mu_;
  CondVar room_;
  std::deque<SubscribeToShardEvent> events_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_event_ ABSL_GUARDED_BY(mu_);
  std::optional<SequenceNumber> continuation_ ABSL_GUARDED_BY(mu_);
  std::vector<rill::internal::Waker*> wakers_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------------------------
// Stream

namespace internal {

Properties ProducerDefaults() {
  // allow.auto.create.topics=false: a stream that does not exist is kResourceNotFound, as in
  // Kinesis, not a topic the broker makes up.
  return {{"enable.idempotence", "true"},
          {"linger.ms", "1"},
          {"allow.auto.create.topics", "false"},
          {"log_level", "3"}};
}

Properties ReaderDefaults() {
  // fetch.wait.max.ms=100: a broker holds a fetch that finds nothing new this long (Kafka's
  // default is 500 ms), and a GetRecords that moves a partition's fetcher waits for the fetch in
  // flight to come back.
  return {{"auto.offset.reset", "earliest"},
          {"enable.partition.eof", "false"},
          {"fetch.wait.max.ms", "100"},
          // Per partition for this (simple) consumer: about one GetRecords' worth ahead.
          {"queued.max.messages.kbytes", "10240"},
          {"log_level", "3"}};
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<Stream>> Stream::Open(StreamOptions options) {
  if (options.topic.empty()) return InvalidArgumentError("StreamOptions::topic is required");
  if (options.name.empty()) options.name = options.topic;
  if (options.clock == nullptr) options.clock = std::make_shared<SystemClock>();
  if (options.timeout <= absl::ZeroDuration()) {
    return InvalidArgumentError("StreamOptions::timeout must be positive");
  }
  if (options.max_record_bytes < 1) {
    return InvalidArgumentError("StreamOptions::max_record_bytes must be positive");
  }
  bool has_bootstrap = false;
  for (const auto& [name, value] : options.properties) {
    if (name == "bootstrap.servers" || name == "metadata.broker.list") has_bootstrap = true;
  }
  if (!has_bootstrap) {
    return InvalidArgumentError("StreamOptions::properties must set bootstrap.servers");
  }

  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  const StreamOptions& o = impl->options;
  impl->topic_tag = TopicTag(o.topic);
  impl->opened = o.clock->Now();

  absl::StatusOr<internal::Conf> conf =
      internal::MakeConf(internal::ProducerDefaults(), o.properties);
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_dr_msg_cb(conf->get(), &OnDelivery);
  absl::StatusOr<internal::Handle> producer =
      internal::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
  if (!producer.ok()) return producer.status();
  impl->producer = std::move(*producer);
  impl->producer_topic.reset(rd_kafka_topic_new(impl->producer.get(), o.topic.c_str(), nullptr));

  // The topic's partitions (creating the topic first if asked and missing).
  for (int attempt = 0;; ++attempt) {
    const rd_kafka_metadata_t* metadata = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(impl->producer.get(), 0, impl->producer_topic.get(),
                                                &metadata, internal::TimeoutMs(o.timeout));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (metadata->topic_cnt == 1) {
        err = metadata->topics[0].err;
        impl->partitions = metadata->topics[0].partition_cnt;
      } else {
        err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
      }
      rd_kafka_metadata_destroy(metadata);
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && impl->partitions > 0) break;
    const bool missing = err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                         err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                         (err == RD_KAFKA_RESP_ERR_NO_ERROR && impl->partitions == 0);
    if (!missing) return internal::KafkaError(err, absl::StrCat("opening topic ", o.topic));
    if (o.create_partitions <= 0 || attempt > 0) {
      return ResourceNotFoundError(
          absl::StrFormat("Stream %s not found: Kafka has no topic %s", o.name, o.topic));
    }
    if (absl::Status s = internal::CreateTopic(impl->producer.get(), o.topic, o.create_partitions,
                                               o.replication_factor, o.timeout);
        !s.ok() && GetErrorCode(s) != ErrorCode::kResourceInUse) {
      return s;
    }
  }
  impl->ranges = SplitHashKeySpace(impl->partitions);

  absl::StatusOr<internal::Conf> reader_conf =
      internal::MakeConf(internal::ReaderDefaults(), o.properties);
  if (!reader_conf.ok()) return reader_conf.status();
  absl::StatusOr<internal::Handle> reader =
      internal::MakeHandle(RD_KAFKA_CONSUMER, std::move(*reader_conf));
  if (!reader.ok()) return reader.status();
  impl->reader = std::move(*reader);
  impl->reader_topic.reset(rd_kafka_topic_new(impl->reader.get(), o.topic.c_str(), nullptr));
  for (int p = 0; p < impl->partitions; ++p) {
    impl->readers.push_back(std::make_unique<Impl::PartitionReader>());
  }

  absl::StatusOr<int64_t> retention = impl->ReadRetentionMs();
  impl->retention_ms.store(retention.ok() ? *retention
                                          : kKafkaDefaultRetention / absl::Milliseconds(1));

  Impl* raw = impl.get();
  impl->delivery_thread = std::thread([raw] {
    // rd_kafka_poll serves delivery reports the moment they arrive; its timeout only bounds how
    // long shutting down takes to be noticed (real time: it waits on the network).
    while (!raw->stopping.load()) rd_kafka_poll(raw->producer.get(), 50);
    rd_kafka_poll(raw->producer.get(), 0);
  });
  return std::unique_ptr<Stream>(new Stream(std::move(impl)));
}

Stream::Stream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Stream::~Stream() = default;

const StreamOptions& Stream::options() const { return impl_->options; }
const std::string& Stream::topic() const { return impl_->options.topic; }
absl::StatusOr<int64_t> Stream::ResolveOffset(int partition,
                                              const StartingPosition& position) const {
  if (partition < 0 || partition >= impl_->partitions) {
    return ResourceNotFoundError(absl::StrFormat("Shard %s in stream %s does not exist",
                                                 ShardName(partition), impl_->options.name));
  }
  return impl_->ResolvePosition(partition, position);
}
int Stream::partition_count() const { return impl_->partitions; }
int Stream::PartitionFor(std::string_view partition_key) const {
  return impl_->Route(HashKey::FromPartitionKey(partition_key));
}
int Stream::PartitionFor(HashKey hash_key) const { return impl_->Route(hash_key); }
SequenceNumber Stream::ToSequenceNumber(int partition, int64_t offset) const {
  return impl_->ToSequence(partition, offset);
}
absl::StatusOr<std::pair<int, int64_t>> Stream::FromSequenceNumber(
    SequenceNumber sequence_number) const {
  return impl_->FromSequence(sequence_number);
}

const std::string& Stream::name() const { return impl_->options.name; }
const std::shared_ptr<Clock>& Stream::clock() const { return impl_->options.clock; }
PutLimits Stream::put_limits() const {
  PutLimits limits;
  limits.max_record_bytes = impl_->options.max_record_bytes;
  return limits;
}

absl::StatusOr<PutRecordResult> Stream::PutRecord(std::string_view partition_key,
                                                  std::string_view data,
                                                  const PutOptions& options) {
  if (options.sequence_number_for_ordering) {
    // Kafka orders a key's records by itself (one partition, acknowledged before the next put);
    // the number must still be this stream's.
    if (absl::StatusOr<std::pair<int, int64_t>> s =
            impl_->FromSequence(*options.sequence_number_for_ordering);
        !s.ok()) {
      return InvalidArgumentError(absl::StrFormat(
          "ExclusiveMinimumSequenceNumber %s is invalid: it was not issued by stream %s",
          options.sequence_number_for_ordering->ToString(), impl_->options.name));
    }
  }
  PutRecordsEntry entry{std::string(partition_key), std::string(data), options.explicit_hash_key};
  absl::StatusOr<PutRecordsResult> result = PutRecords(absl::MakeConstSpan(&entry, 1));
  if (!result.ok()) return result.status();
  const PutRecordsResultEntry& e = result->entries[0];
  if (!e.ok()) return MakeError(e.error_code, e.error_message);
  return PutRecordResult{e.shard_id, e.sequence_number};
}

absl::StatusOr<PutRecordsResult> Stream::PutRecords(absl::Span<const PutRecordsEntry> entries) {
  const StreamOptions& o = impl_->options;
  if (entries.empty() || entries.size() > kMaxPutRecordsEntries) {
    return InvalidArgumentError(absl::StrFormat("PutRecords takes 1 to %d entries, not %d",
                                                kMaxPutRecordsEntries, entries.size()));
  }
  size_t total = 0;
  for (const PutRecordsEntry& e : entries) {
    const int units = rill::internal::Utf16Length(e.partition_key);
    if (e.partition_key.empty() || units < 1 || units > kMaxPartitionKeyChars) {
      if (units < 0) return InvalidArgumentError("partition key is not valid UTF-8");
      return InvalidArgumentError(
          absl::StrFormat("partition key must have 1 to 256 characters, not %d", units));
    }
    const size_t size = e.partition_key.size() + e.data.size();
    if (size > o.max_record_bytes) {
      return InvalidArgumentError(absl::StrFormat(
          "record of %d bytes (key and data) exceeds the stream's maximum of %d bytes", size,
          o.max_record_bytes));
    }
    total += size;
  }
  const PutLimits limits = put_limits();
  if (total > limits.max_put_records_bytes) {
    return InvalidArgumentError(
        absl::StrFormat("PutRecords request of %d bytes exceeds the limit of %d bytes", total,
                        limits.max_put_records_bytes));
  }

  PutRecordsResult result;
  result.entries.resize(entries.size());
  PutBatch batch;
  batch.results = result.entries.data();
  batch.impl = impl_.get();
  std::vector<Slot> slots(entries.size());
  const int64_t timestamp_ms = absl::ToUnixMillis(o.clock->Now());
  {
    MutexLock<Mutex> lock(&batch.mu);
    batch.remaining = static_cast<int>(entries.size());
  }
  int refused = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const PutRecordsEntry& e = entries[i];
    const HashKey key =
        e.explicit_hash_key ? *e.explicit_hash_key : HashKey::FromPartitionKey(e.partition_key);
    slots[i] = Slot{&batch, i};
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        impl_->producer.get(), RD_KAFKA_V_RKT(impl_->producer_topic.get()),
        RD_KAFKA_V_PARTITION(impl_->Route(key)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(e.partition_key.data(), e.partition_key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(e.data.data()), e.data.size()),
        RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_OPAQUE(&slots[i]), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Refused before sending (queue full, too large): never written.
      const absl::Status error = internal::KafkaError(err, "PutRecords");
      result.entries[i].error_code = GetErrorCode(error);
      result.entries[i].error_message = std::string(error.message());
      ++refused;
    }
  }
  {
    MutexLock<Mutex> lock(&batch.mu);
    batch.remaining -= refused;
    while (batch.remaining > 0) batch.done.Wait(&batch.mu);
  }
  for (const PutRecordsResultEntry& e : result.entries) {
    if (!e.ok()) ++result.failed_record_count;
  }
  return result;
}

absl::StatusOr<ListShardsResult> Stream::ListShards(const ListShardsRequest& request) const {
  if (request.max_results < 1 || request.max_results > 10000) {
    return InvalidArgumentError(
        absl::StrFormat("MaxResults must be within [1, 10000], not %d", request.max_results));
  }
  const int64_t now_us = absl::ToUnixMicros(impl_->options.clock->Now());
  int64_t after = -1;
  std::optional<ShardFilter> filter = request.filter;
  if (request.next_token) {
    if (request.exclusive_start_shard_id) {
      return InvalidArgumentError("NextToken and ExclusiveStartShardId cannot be used together");
    }
    NextTokenFields t;
    if (!rill::internal::OpenToken(kNextTokenDomain, *request.next_token, kTokenCheckBytes, &t,
                                   sizeof(t)) ||
        t.topic_tag != impl_->topic_tag) {
      return InvalidArgumentError("NextToken is malformed or belongs to another stream");
    }
    if (now_us - t.issued_us > absl::ToInt64Microseconds(kNextTokenLifetime)) {
      return ExpiredNextTokenError("NextToken has expired");
    }
    after = t.last_index;
    if (t.filter_type == static_cast<uint32_t>(ShardFilterType::kAfterShardId)) {
      filter = ShardFilter{ShardFilterType::kAfterShardId, ShardId(t.filter_shard), {}};
    }
  } else if (request.exclusive_start_shard_id) {
    after = request.exclusive_start_shard_id->index();
  }
  if (filter) {
    if (filter->type == ShardFilterType::kAfterShardId) {
      if (!filter->shard_id)
        return InvalidArgumentError("ShardFilter AFTER_SHARD_ID requires a ShardId");
      after = std::max<int64_t>(after, filter->shard_id->index());
    }
    if ((filter->type == ShardFilterType::kAtTimestamp ||
         filter->type == ShardFilterType::kFromTimestamp) &&
        !filter->timestamp) {
      return InvalidArgumentError(absl::StrFormat("ShardFilter %s requires a Timestamp",
                                                  ShardFilterTypeName(filter->type)));
    }
  }
  // Every partition is open for the stream's whole life: each filter but AFTER_SHARD_ID lists
  // them all.
  ListShardsResult result;
  const int page = std::min(request.max_results, kMaxListShardsResults);
  for (int p = static_cast<int>(after + 1); p < impl_->partitions; ++p) {
    if (static_cast<int>(result.shards.size()) == page) {
      NextTokenFields t;
      t.topic_tag = impl_->topic_tag;
      t.last_index = static_cast<uint32_t>(p - 1);
      if (filter && filter->type == ShardFilterType::kAfterShardId) {
        t.filter_type = static_cast<uint32_t>(ShardFilterType::kAfterShardId);
        t.filter_shard = filter->shard_id->index();
      } else {
        t.filter_type = static_cast<uint32_t>(ShardFilterType::kFromTrimHorizon);
      }
      t.issued_us = now_us;
      result.next_token = rill::internal::SealToken(
          kNextTokenDomain, std::string_view(reinterpret_cast<const char*>(&t), sizeof(t)),
          kTokenCheckBytes);
      break;
    }
    result.shards.push_back(impl_->Describe(p));
  }
  return result;
}

absl::StatusOr<std::vector<ShardDescription>> Stream::ListAllShardsOrError() const {
  std::vector<ShardDescription> shards;
  for (int p = 0; p < impl_->partitions; ++p) shards.push_back(impl_->Describe(p));
  return shards;
}

absl::StatusOr<ShardIterator> Stream::GetShardIterator(std::string_view shard_id,
                                                       const StartingPosition& position) const {
  absl::StatusOr<int> partition = impl_->ParseShard(shard_id);
  if (!partition.ok()) return partition.status();
  absl::StatusOr<int64_t> offset = impl_->ResolvePosition(*partition, position);
  if (!offset.ok()) return offset.status();
  return impl_->MakeIterator(*partition, *offset);
}

absl::StatusOr<GetRecordsResult> Stream::GetRecords(const ShardIterator& iterator,
                                                    int limit) const {
  return impl_->GetRecords(iterator, limit);
}

absl::Status Stream::SplitShard(std::string_view shard_id, HashKey) {
  if (absl::StatusOr<int> p = impl_->ParseShard(shard_id); !p.ok()) return p.status();
  return InvalidArgumentError(absl::StrFormat(
      "SplitShard is not supported on stream %s: a Kafka partition cannot be split", name()));
}

absl::Status Stream::MergeShards(std::string_view shard_id, std::string_view adjacent_shard_id) {
  if (absl::StatusOr<int> p = impl_->ParseShard(shard_id); !p.ok()) return p.status();
  if (absl::StatusOr<int> p = impl_->ParseShard(adjacent_shard_id); !p.ok()) return p.status();
  return InvalidArgumentError(absl::StrFormat(
      "MergeShards is not supported on stream %s: Kafka partitions cannot be merged", name()));
}

absl::Status Stream::UpdateShardCount(int target_shard_count) {
  return InvalidArgumentError(absl::StrFormat(
      "UpdateShardCount(%d) is not supported on stream %s: a Kafka topic can only gain "
      "partitions, which would move partition keys to other partitions and break their order; "
      "create a topic with the new count and bridge to it",
      target_shard_count, name()));
}

absl::Status Stream::IncreaseStreamRetentionPeriod(absl::Duration retention) {
  return impl_->ChangeRetention(retention, /*increase=*/true);
}

absl::Status Stream::DecreaseStreamRetentionPeriod(absl::Duration retention) {
  return impl_->ChangeRetention(retention, /*increase=*/false);
}

absl::StatusOr<StreamSummary> Stream::DescribeStreamSummaryOrError() const {
  StreamSummary s;
  s.stream_name = impl_->options.name;
  s.status = StreamStatus::kActive;
  s.capacity_mode = CapacityMode::kProvisioned;
  s.open_shard_count = impl_->partitions;
  s.retention = impl_->Retention();
  s.creation_time = impl_->opened;
  s.max_record_bytes = impl_->options.max_record_bytes;
  MutexLock<Mutex> lock(&impl_->consumers_mu);
  s.consumer_count = static_cast<int>(impl_->consumers.size());
  return s;
}

absl::StatusOr<ConsumerDescription> Stream::RegisterStreamConsumer(std::string_view name) {
  if (!rill::internal::IsKinesisName(name)) {
    return InvalidArgumentError(
        absl::StrFormat("consumer name must be 1-128 characters of [a-zA-Z0-9_.-]: '%s'",
                        rill::internal::ToAbsl(name)));
  }
  const absl::Time now = impl_->options.clock->Now();
  auto state = std::make_shared<Impl::ConsumerState>();
  state->description.name = std::string(name);
  state->description.status = ConsumerStatus::kActive;
  state->description.creation_time = now;
  state->description.id =
      absl::StrFormat("arn:aws:kinesis:kafka:000000000000:stream/%s/consumer/%s:%d",
                      impl_->options.name, rill::internal::ToAbsl(name), absl::ToUnixSeconds(now));
  {
    MutexLock<Mutex> lock(&state->mu);
    state->generation.assign(static_cast<size_t>(impl_->partitions), 0);
  }
  MutexLock<Mutex> lock(&impl_->consumers_mu);
  for (const auto& c : impl_->consumers) {
    if (c->description.name == name) {
      return ResourceInUseError(absl::StrFormat("consumer %s is already registered on stream %s",
                                                rill::internal::ToAbsl(name), impl_->options.name));
    }
  }
  if (static_cast<int>(impl_->consumers.size()) >= kMaxConsumers) {
    return LimitExceededError(absl::StrFormat("stream %s already has %d consumers",
                                              impl_->options.name, impl_->consumers.size()));
  }
  impl_->consumers.push_back(state);
  return state->description;
}

absl::Status Stream::DeregisterStreamConsumer(std::string_view name) {
  std::shared_ptr<Impl::ConsumerState> state;
  {
    MutexLock<Mutex> lock(&impl_->consumers_mu);
    auto it = std::find_if(impl_->consumers.begin(), impl_->consumers.end(),
                           [&](const auto& c) { return c->description.name == name; });
    if (it == impl_->consumers.end()) {
      return ResourceNotFoundError(absl::StrFormat("consumer %s is not registered on stream %s",
                                                   rill::internal::ToAbsl(name),
                                                   impl_->options.name));
    }
    state = *it;
    impl_->consumers.erase(it);
  }
  MutexLock<Mutex> lock(&state->mu);
  state->deregistered = true;
  return absl::OkStatus();
}

absl::StatusOr<ConsumerDescription> Stream::DescribeStreamConsumer(std::string_view name) const {
  absl::StatusOr<std::shared_ptr<Impl::ConsumerState>> state = impl_->FindConsumer(name);
  if (!state.ok()) return state.status();
  return (*state)->description;
}

absl::StatusOr<std::vector<ConsumerDescription>> Stream::ListStreamConsumersOrError() const {
  MutexLock<Mutex> lock(&impl_->consumers_mu);
  std::vector<ConsumerDescription> out;
  for (const auto& c : impl_->consumers) out.push_back(c->description);
  return out;
}

absl::StatusOr<std::unique_ptr<NativeGroupWorker>> Stream::MakeGroupWorker(
    const ConsumerGroupOptions& options, std::string worker_id, RecordProcessorFactory factory) {
  return internal::MakeKafkaGroupWorker(*this, options, std::move(worker_id), std::move(factory));
}

absl::StatusOr<std::unique_ptr<Subscription>> Stream::SubscribeToShard(
    std::string_view consumer_name, std::string_view shard_id, const StartingPosition& position,
    const SubscribeOptions& options) {
  if (options.max_records_per_event < 1 || options.max_records_per_event > kMaxGetRecordsLimit) {
    return InvalidArgumentError(
        absl::StrFormat("max_records_per_event must be within [1, %d], not %d", kMaxGetRecordsLimit,
                        options.max_records_per_event));
  }
  absl::StatusOr<std::shared_ptr<Impl::ConsumerState>> state = impl_->FindConsumer(consumer_name);
  if (!state.ok()) return state.status();
  absl::StatusOr<int> partition = impl_->ParseShard(shard_id);
  if (!partition.ok()) return partition.status();
  absl::StatusOr<int64_t> offset = impl_->ResolvePosition(*partition, position);
  if (!offset.ok()) return offset.status();
  uint64_t generation = 0;
  {
    MutexLock<Mutex> lock(&(*state)->mu);
    if ((*state)->deregistered) {
      return ResourceNotFoundError(
          absl::StrFormat("consumer %s was deregistered", rill::internal::ToAbsl(consumer_name)));
    }
    generation = ++(*state)->generation[static_cast<size_t>(*partition)];
  }
  auto subscription =
      std::make_unique<KafkaSubscription>(*impl_, *state, generation, *partition, *offset, options);
  if (absl::Status s = subscription->Start(*offset); !s.ok()) return s;
  return std::unique_ptr<Subscription>(std::move(subscription));
}

}  // namespace rill::kafka
