// Bridges between rill streams and Kafka topics (see rill/kafka/bridge.h for how each resumes).
#include "rill/kafka/bridge.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/strings.h"
#include "kafka/rdkafka.h"
#include "kafka/stream_internal.h"
#include "rill/base/error.h"
#include "storage/file_util.h"

namespace rill::kafka {
namespace {

using rill::internal::ToAbsl;

constexpr char kToTopicMagic[] = "rill-bridge-to-topic v1";
constexpr char kToStreamMagic[] = "rill-bridge-to-stream v1";
constexpr char kHeaderStream[] = "rill.stream";
constexpr char kHeaderShard[] = "rill.shard";
constexpr char kHeaderSeq[] = "rill.seq";

absl::Status ValidateOptions(const BridgeOptions& options) {
  if (options.checkpoint_path.empty()) {
    return InvalidArgumentError("BridgeOptions::checkpoint_path is required");
  }
  if (options.max_records < 1 || options.max_records > kMaxGetRecordsLimit) {
    return InvalidArgumentError(
        absl::StrFormat("BridgeOptions::max_records must be within [1, %d]", kMaxGetRecordsLimit));
  }
  return absl::OkStatus();
}

// The checkpoint file's lines, or none when it does not exist.
absl::StatusOr<std::optional<std::vector<std::string>>> ReadCheckpoint(const std::string& path,
                                                                       std::string_view magic) {
  std::error_code missing;
  if (!std::filesystem::exists(path, missing) && !missing) {
    return std::optional<std::vector<std::string>>();
  }
  absl::StatusOr<std::string> text = rill::internal::ReadFile(path);
  if (!text.ok()) return text.status();
  std::vector<std::string> lines = absl::StrSplit(ToAbsl(*text), '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0] != magic) {
    return InvalidArgumentError(
        absl::StrCat(path, " is not a checkpoint of this kind of bridge (", ToAbsl(magic), ")"));
  }
  return std::optional<std::vector<std::string>>(std::move(lines));
}

absl::Status Malformed(const std::string& path, std::string_view line) {
  return InvalidArgumentError(
      absl::StrCat(path, ": malformed checkpoint line '", ToAbsl(line), "'"));
}

// The lines both bridges' checkpoints have: the stream's and the topic's names (which must be
// these) and per-partition offsets. Sets *handled when `f` is one of them.
absl::Status ParseCommonLine(const std::vector<std::string>& f, const std::string& path,
                             std::string_view line, std::string_view stream_name,
                             std::string_view topic_name, std::map<int, int64_t>* offsets,
                             bool* handled) {
  *handled = true;
  if (f.size() == 2 && (f[0] == "stream" || f[0] == "topic")) {
    const std::string_view expected = f[0] == "stream" ? stream_name : topic_name;
    if (f[1] != expected) {
      return InvalidArgumentError(absl::StrCat(path, " is a bridge checkpoint of ", f[0], " ", f[1],
                                               ", not of ", ToAbsl(expected)));
    }
    return absl::OkStatus();
  }
  if (f.size() == 3 && f[0] == "offset") {
    int partition = 0;
    int64_t offset = 0;
    if (!absl::SimpleAtoi(f[1], &partition) || !absl::SimpleAtoi(f[2], &offset)) {
      return Malformed(path, line);
    }
    (*offsets)[partition] = offset;
    return absl::OkStatus();
  }
  *handled = false;
  return absl::OkStatus();
}

// Writes a checkpoint atomically (temporary file, fsync, rename, fsync of the directory).
absl::Status WriteCheckpointFile(const std::string& path, std::string_view text,
                                 BridgeStats* stats) {
  if (absl::Status s = rill::internal::WriteFileAtomically(path, text); !s.ok()) return s;
  ++stats->checkpoints;
  return absl::OkStatus();
}

// The shards whose parents are done (read to their end, or expired): a child is mirrored only
// after its parents, so that a key's records keep their order across a resharding.
template <typename Done>
bool ParentsDone(const ShardDescription& d, const std::set<ShardId>& listed, Done done) {
  for (const std::optional<ShardId>& parent : {d.parent_shard_id, d.adjacent_parent_shard_id}) {
    if (parent && listed.count(*parent) != 0 && !done(*parent)) return false;
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// StreamToTopic

class StreamToTopic::Impl {
 public:
  struct Position {
    std::optional<SequenceNumber> last;
    bool ended = false;
  };

  Impl(StreamApi& source, Stream& topic, BridgeOptions options)
      : source_(source), topic_(topic), options_(std::move(options)) {}

  ~Impl() {
    if (producer_ != nullptr) {
      rd_kafka_flush(producer_.get(), internal::TimeoutMs(topic_.options().timeout));
    }
  }

  absl::Status Start() {
    absl::StatusOr<internal::Conf> conf =
        internal::MakeConf(internal::ProducerDefaults(), topic_.options().properties);
    if (!conf.ok()) return conf.status();
    rd_kafka_conf_set_dr_msg_cb(conf->get(), &Impl::OnDelivery);
    absl::StatusOr<internal::Handle> producer =
        internal::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
    if (!producer.ok()) return producer.status();
    producer_ = std::move(*producer);

    absl::StatusOr<std::optional<std::vector<std::string>>> lines =
        ReadCheckpoint(options_.checkpoint_path, kToTopicMagic);
    if (!lines.ok()) return lines.status();
    if (!*lines) {
      // A first start: the topic's records so far are not ours. Recovery after a crash starts
      // where the topic ends now.
      for (int p = 0; p < topic_.partition_count(); ++p) {
        absl::StatusOr<int64_t> end = topic_.ResolveOffset(p, StartingPosition::Latest());
        if (!end.ok()) return end.status();
        end_offsets_[p] = *end;
      }
      return WriteCheckpoint();
    }
    for (size_t i = 1; i < (*lines)->size(); ++i) {
      const std::string& line = (**lines)[i];
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      bool handled = false;
      if (absl::Status c = ParseCommonLine(f, options_.checkpoint_path, line, source_.name(),
                                           topic_.topic(), &end_offsets_, &handled);
          !c.ok()) {
        return c;
      }
      if (handled) continue;
      if (f.size() == 4 && f[0] == "shard") {
        absl::StatusOr<ShardId> shard = ShardId::Parse(f[1]);
        if (!shard.ok()) return Malformed(options_.checkpoint_path, line);
        Position& pos = positions_[*shard];
        if (f[2] != "-") {
          absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(f[2]);
          if (!s.ok()) return Malformed(options_.checkpoint_path, line);
          pos.last = *s;
        }
        pos.ended = f[3] == "1";
      } else if (f.size() == 3 && f[0] == "skip") {
        absl::StatusOr<ShardId> shard = ShardId::Parse(f[1]);
        absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(f[2]);
        if (!shard.ok() || !s.ok()) return Malformed(options_.checkpoint_path, line);
        skip_[*shard].insert(*s);
      } else {
        return Malformed(options_.checkpoint_path, line);
      }
    }
    return Recover();
  }

  absl::StatusOr<int64_t> Poll() {
    // 0 means caught up. A round that only reached the end of shards (no record after their
    // last one) makes their children readable: look again at once, or a caller polling until 0
    // would stop with the children's records unmirrored. Each such round ends shards for good.
    bool ended = false;
    absl::StatusOr<int64_t> written = Round(ended);
    while (written.ok() && *written == 0 && ended) {
      ended = false;
      written = Round(ended);
    }
    return written;
  }

  // One round; sets `ended` if a shard was read to its end.
  absl::StatusOr<int64_t> Round(bool& ended) {
    if (needs_recovery_) {
      if (absl::Status s = Recover(); !s.ok()) return s;
    }
    absl::StatusOr<std::vector<ShardDescription>> shards = source_.ListShards();
    if (!shards.ok()) return shards.status();
    std::set<ShardId> listed;
    for (const ShardDescription& d : *shards) listed.insert(d.shard_id);
    auto done = [&](ShardId s) {
      auto it = positions_.find(s);
      return it != positions_.end() && it->second.ended;
    };

    // Read a batch of every shard that may be read, then write them all.
    struct Read {
      ShardId shard;
      GetRecordsResult batch;
    };
    std::vector<Read> reads;
    size_t total = 0;
    for (const ShardDescription& d : *shards) {
      if (done(d.shard_id) || !ParentsDone(d, listed, done)) continue;
      const Position& pos = positions_[d.shard_id];
      absl::StatusOr<ShardIterator> it = source_.GetShardIterator(
          d.shard_id, pos.last ? StartingPosition::AfterSequenceNumber(*pos.last)
                               : StartingPosition::TrimHorizon());
      if (!it.ok()) return it.status();
      absl::StatusOr<GetRecordsResult> batch = source_.GetRecords(*it, options_.max_records);
      if (!batch.ok()) return batch.status();
      total += batch->records.size();
      reads.push_back({d.shard_id, std::move(*batch)});
    }

    // Produce, each record to the partition its key routes to, with its source position.
    std::vector<Delivery> deliveries(total);
    size_t n = 0;
    size_t skipped = 0;
    for (const Read& r : reads) {
      const std::string shard = r.shard.ToString();
      auto skip = skip_.find(r.shard);
      for (const Record& record : r.batch.records) {
        if (skip != skip_.end() && skip->second.count(record.sequence_number) != 0) {
          ++skipped;  // written before a failure, after one that was not: not written again
          continue;
        }
        const std::string seq = record.sequence_number.ToString();
        Delivery& d = deliveries[n++];
        d.impl = this;
        const rd_kafka_resp_err_t err = rd_kafka_producev(
            producer_.get(), RD_KAFKA_V_TOPIC(topic_.topic().c_str()),
            RD_KAFKA_V_PARTITION(topic_.PartitionFor(record.partition_key)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(record.partition_key.data(), record.partition_key.size()),
            RD_KAFKA_V_VALUE(const_cast<char*>(record.data.data()), record.data.size()),
            RD_KAFKA_V_TIMESTAMP(absl::ToUnixMillis(record.approximate_arrival_timestamp)),
            RD_KAFKA_V_HEADER(kHeaderStream, source_.name().data(),
                              static_cast<ssize_t>(source_.name().size())),
            RD_KAFKA_V_HEADER(kHeaderShard, shard.data(), static_cast<ssize_t>(shard.size())),
            RD_KAFKA_V_HEADER(kHeaderSeq, seq.data(), static_cast<ssize_t>(seq.size())),
            RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          d.err = err;
          d.done = true;
        }
      }
    }
    // Every acknowledgement (or failure) comes within message.timeout.ms.
    rd_kafka_flush(producer_.get(), -1);
    deliveries.resize(n);
    for (const Delivery& d : deliveries) {
      if (!d.done || d.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        // Some may be written: the next Poll finds them in the topic first, reading from the
        // end offsets before this round (none of this round's may move them, or recovery
        // would not see what they passed).
        needs_recovery_ = true;
        return internal::KafkaError(d.done ? d.err : RD_KAFKA_RESP_ERR__TIMED_OUT,
                                    "mirroring into the topic");
      }
    }
    for (const Delivery& d : deliveries) {
      end_offsets_[d.partition] = std::max(end_offsets_[d.partition], d.offset + 1);
    }
    for (const Read& r : reads) {
      Position& pos = positions_[r.shard];
      if (!r.batch.records.empty()) pos.last = r.batch.records.back().sequence_number;
      // The skipped records are behind the position now (not before: a failed round reads them
      // again, and the topic is not searched again before its end offsets).
      if (auto skip = skip_.find(r.shard); skip != skip_.end() && pos.last) {
        skip->second.erase(skip->second.begin(), skip->second.upper_bound(*pos.last));
        if (skip->second.empty()) skip_.erase(skip);
      }
      if (!r.batch.next_shard_iterator) {
        pos.ended = true;
        ended = true;
      }
    }
    stats_.records_written += static_cast<int64_t>(total - skipped);
    stats_.records_recovered += static_cast<int64_t>(skipped);
    if (total > 0 || std::any_of(reads.begin(), reads.end(),
                                 [](const Read& r) { return !r.batch.next_shard_iterator; })) {
      if (absl::Status s = WriteCheckpoint(); !s.ok()) return s;
    }
    return static_cast<int64_t>(total);
  }

  std::map<ShardId, std::optional<SequenceNumber>> positions() const {
    std::map<ShardId, std::optional<SequenceNumber>> out;
    for (const auto& [shard, pos] : positions_) out[shard] = pos.last;
    return out;
  }
  BridgeStats stats() const { return stats_; }

 private:
  struct Delivery {
    Impl* impl = nullptr;
    bool done = false;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int32_t partition = 0;
    int64_t offset = 0;
  };

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    Delivery* d = static_cast<Delivery*>(m->_private);
    d->done = true;
    d->err = m->err;
    d->partition = m->partition;
    d->offset = m->offset;
  }

  // Reads the topic from the checkpointed offsets to its end: the records of this source found
  // there were written before a crash (or a failed round) and move the positions on.
  absl::Status Recover() {
    absl::StatusOr<internal::Conf> conf =
        internal::MakeConf(internal::ReaderDefaults(), topic_.options().properties);
    if (!conf.ok()) return conf.status();
    absl::StatusOr<internal::Handle> reader =
        internal::MakeHandle(RD_KAFKA_CONSUMER, std::move(*conf));
    if (!reader.ok()) return reader.status();
    internal::Topic topic(rd_kafka_topic_new(reader->get(), topic_.topic().c_str(), nullptr));
    const int timeout_ms = internal::TimeoutMs(topic_.options().timeout);
    // What an earlier recovery found after a gap is still written, though the topic is now read
    // from after it.
    std::map<ShardId, std::set<SequenceNumber>> found = std::move(skip_);
    skip_.clear();
    for (int p = 0; p < topic_.partition_count(); ++p) {
      absl::StatusOr<int64_t> high = topic_.ResolveOffset(p, StartingPosition::Latest());
      if (!high.ok()) return high.status();
      int64_t next = end_offsets_.count(p) != 0 ? end_offsets_[p] : 0;
      if (next >= *high) continue;
      if (rd_kafka_consume_start(topic.get(), p, next) == -1) {
        return internal::KafkaError(rd_kafka_last_error(), "recovering the bridge");
      }
      absl::Status status;
      while (next < *high && status.ok()) {
        rd_kafka_message_t* m = rd_kafka_consume(topic.get(), p, timeout_ms);
        if (m == nullptr) {
          status = InternalFailureError(absl::StrFormat(
              "recovering the bridge: no record of partition %d at offset %d", p, next));
          break;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            status = internal::KafkaError(m->err, "recovering the bridge");
          }
        } else {
          next = m->offset + 1;
          Note(m, p, found);
        }
        rd_kafka_message_destroy(m);
      }
      rd_kafka_consume_stop(topic.get(), p);
      if (!status.ok()) return status;
    }
    for (auto& [shard, sequence_numbers] : found) {
      if (absl::Status s = Advance(shard, std::move(sequence_numbers)); !s.ok()) return s;
    }
    needs_recovery_ = false;
    return WriteCheckpoint();
  }

  // Moves `shard`'s position over the records after it that recovery found in the topic, in the
  // source's order, up to the first one not found: a round writes to several partitions, and a
  // failure (or crash) can leave a later record of a shard written and an earlier one not. The
  // found records after that gap are kept in skip_, so the next round does not write them again.
  absl::Status Advance(ShardId shard, std::set<SequenceNumber> found) {
    Position& pos = positions_[shard];
    absl::StatusOr<ShardIterator> it =
        source_.GetShardIterator(shard, pos.last ? StartingPosition::AfterSequenceNumber(*pos.last)
                                                 : StartingPosition::TrimHorizon());
    if (GetErrorCode(it.status()) == ErrorCode::kResourceNotFound) {
      return absl::OkStatus();  // the shard expired: no round reads it again
    }
    if (!it.ok()) return it.status();
    std::optional<ShardIterator> next = *it;
    while (next && !found.empty()) {
      absl::StatusOr<GetRecordsResult> batch = source_.GetRecords(*next, options_.max_records);
      if (!batch.ok()) return batch.status();
      for (const Record& r : batch->records) {
        auto f = found.find(r.sequence_number);
        if (f == found.end()) {
          skip_[shard] = std::move(found);
          return absl::OkStatus();
        }
        found.erase(f);
        pos.last = r.sequence_number;
        ++stats_.records_recovered;
      }
      if (batch->records.empty() && batch->millis_behind_latest == 0) break;
      next = batch->next_shard_iterator;
    }
    if (!found.empty()) skip_[shard] = std::move(found);
    return absl::OkStatus();
  }

  // A record found at recovery: if it is this source's and after its shard's position, it is
  // added to `found`.
  void Note(rd_kafka_message_t* m, int partition,
            std::map<ShardId, std::set<SequenceNumber>>& found) {
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    auto get = [&](const char* name) -> std::optional<std::string_view> {
      const void* value = nullptr;
      size_t size = 0;
      if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return std::nullopt;
      }
      return std::string_view(static_cast<const char*>(value), size);
    };
    std::optional<std::string_view> stream = get(kHeaderStream);
    std::optional<std::string_view> shard = get(kHeaderShard);
    std::optional<std::string_view> seq = get(kHeaderSeq);
    if (!stream || *stream != source_.name() || !shard || !seq) return;
    absl::StatusOr<ShardId> id = ShardId::Parse(*shard);
    absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(*seq);
    if (!id.ok() || !s.ok()) return;
    const Position& pos = positions_[*id];
    if (!pos.last || *pos.last < *s) found[*id].insert(*s);
    end_offsets_[partition] = std::max(end_offsets_[partition], m->offset + 1);
  }

  absl::Status WriteCheckpoint() {
    std::string text =
        absl::StrCat(kToTopicMagic, "\nstream ", source_.name(), "\ntopic ", topic_.topic(), "\n");
    for (const auto& [shard, pos] : positions_) {
      absl::StrAppend(&text, "shard ", shard.index(), " ",
                      pos.last ? pos.last->ToString() : std::string("-"), " ", pos.ended ? 1 : 0,
                      "\n");
    }
    for (const auto& [shard, sequence_numbers] : skip_) {
      for (const SequenceNumber& s : sequence_numbers) {
        absl::StrAppend(&text, "skip ", shard.index(), " ", s.ToString(), "\n");
      }
    }
    for (const auto& [partition, offset] : end_offsets_) {
      absl::StrAppend(&text, "offset ", partition, " ", offset, "\n");
    }
    return WriteCheckpointFile(options_.checkpoint_path, text, &stats_);
  }

  StreamApi& source_;
  Stream& topic_;
  const BridgeOptions options_;
  internal::Handle producer_;
  std::map<ShardId, Position> positions_;
  std::map<int, int64_t> end_offsets_;  // per partition, after the bridge's last record
  // Per shard, records found in the topic at recovery after one that was not (see Advance).
  std::map<ShardId, std::set<SequenceNumber>> skip_;
  bool needs_recovery_ = false;
  BridgeStats stats_;
};

absl::StatusOr<std::unique_ptr<StreamToTopic>> StreamToTopic::Create(StreamApi& source,
                                                                     Stream& topic,
                                                                     BridgeOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(source, topic, std::move(options));
  if (absl::Status s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<StreamToTopic>(new StreamToTopic(std::move(impl)));
}

StreamToTopic::StreamToTopic(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StreamToTopic::~StreamToTopic() = default;
absl::StatusOr<int64_t> StreamToTopic::Poll() { return impl_->Poll(); }
std::map<ShardId, std::optional<SequenceNumber>> StreamToTopic::positions() const {
  return impl_->positions();
}
BridgeStats StreamToTopic::stats() const { return impl_->stats(); }

// ---------------------------------------------------------------------------------------------
// TopicToStream

class TopicToStream::Impl {
 public:
  Impl(Stream& topic, StreamApi& destination, BridgeOptions options)
      : topic_(topic), dest_(destination), options_(std::move(options)) {}

  absl::Status Start() {
    absl::StatusOr<std::optional<std::vector<std::string>>> lines =
        ReadCheckpoint(options_.checkpoint_path, kToStreamMagic);
    if (!lines.ok()) return lines.status();
    if (!*lines) {
      for (int p = 0; p < topic_.partition_count(); ++p) {
        absl::StatusOr<int64_t> start = topic_.ResolveOffset(p, StartingPosition::TrimHorizon());
        if (!start.ok()) return start.status();
        offsets_[p] = *start;
      }
      checkpoint_time_ = dest_.clock()->Now();
      return WriteCheckpoint();
    }
    for (size_t i = 1; i < (*lines)->size(); ++i) {
      const std::string& line = (**lines)[i];
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      bool handled = false;
      if (absl::Status c = ParseCommonLine(f, options_.checkpoint_path, line, dest_.name(),
                                           topic_.topic(), &offsets_, &handled);
          !c.ok()) {
        return c;
      }
      if (handled) continue;
      if (f.size() == 2 && f[0] == "time") {
        int64_t us = 0;
        if (!absl::SimpleAtoi(f[1], &us)) return Malformed(options_.checkpoint_path, line);
        checkpoint_time_ = absl::FromUnixMicros(us);
      } else if (f.size() == 3 && f[0] == "last") {
        absl::StatusOr<ShardId> shard = ShardId::Parse(f[1]);
        absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(f[2]);
        if (!shard.ok() || !s.ok()) return Malformed(options_.checkpoint_path, line);
        last_[*shard] = *s;
        checkpointed_last_[*shard] = *s;
      } else {
        return Malformed(options_.checkpoint_path, line);
      }
    }
    return Recover();
  }

  absl::StatusOr<int64_t> Poll() {
    if (needs_recovery_) {
      if (absl::Status s = Recover(); !s.ok()) return s;
    }
    // Read every partition's batch, in offset order.
    struct Item {
      int partition;
      int64_t offset;
      std::string key;
      std::string data;
    };
    std::vector<Item> items;
    for (int p = 0; p < topic_.partition_count(); ++p) {
      // The iterator the last round ended with, else one from the checkpointed offset (a
      // round trip for the partition's offsets).
      auto kept = iterators_.find(p);
      if (kept == iterators_.end()) {
        const int64_t next = offsets_.count(p) != 0 ? offsets_[p] : 0;
        absl::StatusOr<ShardIterator> it = topic_.GetShardIterator(
            ShardId(static_cast<uint32_t>(p)),
            StartingPosition::AfterSequenceNumber(topic_.ToSequenceNumber(p, next - 1)));
        if (!it.ok()) {
          iterators_.clear();  // the partitions read before are read again next round
          return it.status();
        }
        kept = iterators_.emplace(p, *it).first;
      }
      absl::StatusOr<GetRecordsResult> batch =
          topic_.GetRecords(kept->second, options_.max_records);
      if (!batch.ok()) {
        // Expired or failed, and the partitions read before this one not put: every iterator is
        // made again from the checkpointed offsets next round.
        iterators_.clear();
        return batch.status();
      }
      kept->second = *batch->next_shard_iterator;
      for (const Record& r : batch->records) {
        absl::StatusOr<std::pair<int, int64_t>> at = topic_.FromSequenceNumber(r.sequence_number);
        if (!at.ok()) return at.status();
        std::string key = r.partition_key.empty() ? absl::StrCat(topic_.topic(), "-", p)
                                                  : std::string(r.partition_key);
        items.push_back({p, at->second, std::move(key), std::string(r.data)});
      }
    }
    // Put them in calls where a key appears at most once (a failed entry is retried before the
    // key's next record), checkpointing after each call.
    int64_t written = 0;
    size_t i = 0;
    while (i < items.size()) {
      std::vector<PutRecordsEntry> entries;
      std::set<std::string> keys;
      size_t bytes = 0;
      size_t j = i;
      for (; j < items.size(); ++j) {
        const Item& item = items[j];
        auto skip = skip_.find({item.key, item.data});
        if (skip != skip_.end()) {  // written before the crash
          skip_.erase(skip);
          ++stats_.records_recovered;
          continue;
        }
        const size_t size = item.key.size() + item.data.size();
        if (keys.count(item.key) != 0 || entries.size() == kMaxPutRecordsEntries ||
            (bytes + size > dest_.put_limits().max_put_records_bytes && !entries.empty())) {
          break;
        }
        keys.insert(item.key);
        bytes += size;
        entries.push_back({item.key, item.data, std::nullopt});
      }
      if (!entries.empty()) {
        if (absl::Status s = PutAll(entries); !s.ok()) {
          needs_recovery_ = true;
          iterators_.clear();  // the next round reads again from the checkpointed offsets
          return s;
        }
        written += static_cast<int64_t>(entries.size());
      }
      for (size_t k = i; k < j; ++k) offsets_[items[k].partition] = items[k].offset + 1;
      i = j;
      checkpoint_time_ = dest_.clock()->Now();
      if (absl::Status s = WriteCheckpoint(); !s.ok()) {
        iterators_.clear();  // the rest of this round's records were read but not put
        return s;
      }
    }
    stats_.records_written += written;
    // Records handled, found already written included: 0 means caught up.
    return static_cast<int64_t>(items.size());
  }

  std::map<int, int64_t> positions() const { return offsets_; }
  BridgeStats stats() const { return stats_; }

 private:
  // Puts every entry, retrying the ones refused for throughput (backing off on the
  // destination's clock) until all are in.
  absl::Status PutAll(std::vector<PutRecordsEntry> entries) {
    for (int attempt = 0;; ++attempt) {
      absl::StatusOr<PutRecordsResult> result = dest_.PutRecords(entries);
      if (!result.ok()) return result.status();
      std::vector<PutRecordsEntry> failed;
      absl::Status last_error;
      for (size_t k = 0; k < entries.size(); ++k) {
        const PutRecordsResultEntry& e = result->entries[k];
        if (e.ok()) {
          auto [it, fresh] = last_.try_emplace(e.shard_id, e.sequence_number);
          if (!fresh && it->second < e.sequence_number) it->second = e.sequence_number;
        } else {
          failed.push_back(std::move(entries[k]));
          last_error = MakeError(e.error_code, e.error_message);
        }
      }
      if (failed.empty()) return absl::OkStatus();
      if (attempt >= 50 || GetErrorCode(last_error) != ErrorCode::kProvisionedThroughputExceeded) {
        return last_error;
      }
      entries = std::move(failed);
      dest_.clock()->SleepFor(absl::Milliseconds(std::min(100, 1 << std::min(attempt, 7))));
    }
  }

  // The destination's records after the checkpoint: the part of the call in flight at a crash
  // that was written. The topic's records matching them are skipped once each.
  absl::Status Recover() {
    skip_.clear();
    // From the checkpointed numbers: entries a failed call's earlier attempt put (and last_
    // counts) were not checkpointed either, and their records are read again.
    last_ = checkpointed_last_;
    absl::StatusOr<std::vector<ShardDescription>> shards = dest_.ListShards();
    if (!shards.ok()) return shards.status();
    for (const ShardDescription& d : *shards) {
      auto last = last_.find(d.shard_id);
      absl::StatusOr<ShardIterator> it = dest_.GetShardIterator(
          d.shard_id, last != last_.end() ? StartingPosition::AfterSequenceNumber(last->second)
                                          : StartingPosition::AtTimestamp(checkpoint_time_));
      if (!it.ok()) return it.status();
      std::optional<ShardIterator> next = *it;
      while (next) {
        absl::StatusOr<GetRecordsResult> batch = dest_.GetRecords(*next);
        if (!batch.ok()) return batch.status();
        for (const Record& r : batch->records) {
          skip_.insert({std::string(r.partition_key), std::string(r.data)});
          auto [at, fresh] = last_.try_emplace(d.shard_id, r.sequence_number);
          if (!fresh && at->second < r.sequence_number) at->second = r.sequence_number;
        }
        if (batch->records.empty() && batch->millis_behind_latest == 0) break;
        next = batch->next_shard_iterator;
      }
    }
    needs_recovery_ = false;
    return absl::OkStatus();
  }

  absl::Status WriteCheckpoint() {
    std::string text =
        absl::StrCat(kToStreamMagic, "\ntopic ", topic_.topic(), "\nstream ", dest_.name(),
                     "\ntime ", absl::ToUnixMicros(checkpoint_time_), "\n");
    for (const auto& [partition, offset] : offsets_) {
      absl::StrAppend(&text, "offset ", partition, " ", offset, "\n");
    }
    for (const auto& [shard, s] : last_) {
      absl::StrAppend(&text, "last ", shard.index(), " ", s.ToString(), "\n");
    }
    absl::Status written = WriteCheckpointFile(options_.checkpoint_path, text, &stats_);
    if (written.ok()) checkpointed_last_ = last_;
    return written;
  }

  Stream& topic_;
  StreamApi& dest_;
  const BridgeOptions options_;
  std::map<int, int64_t> offsets_;          // per partition, the next offset to mirror
  std::map<ShardId, SequenceNumber> last_;  // per destination shard, the last number written
  std::map<ShardId, SequenceNumber> checkpointed_last_;  // last_ as the checkpoint holds it
  absl::Time checkpoint_time_;
  std::multiset<std::pair<std::string, std::string>> skip_;
  // Per partition, where the last round's read ended (kept while every round succeeds).
  std::map<int, ShardIterator> iterators_;
  bool needs_recovery_ = false;
  BridgeStats stats_;
};

absl::StatusOr<std::unique_ptr<TopicToStream>> TopicToStream::Create(Stream& topic,
                                                                     StreamApi& destination,
                                                                     BridgeOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(topic, destination, std::move(options));
  if (absl::Status s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<TopicToStream>(new TopicToStream(std::move(impl)));
}

TopicToStream::TopicToStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TopicToStream::~TopicToStream() = default;
absl::StatusOr<int64_t> TopicToStream::Poll() { return impl_->Poll(); }
std::map<int, int64_t> TopicToStream::positions() const { return impl_->positions(); }
BridgeStats TopicToStream::stats() const { return impl_->stats(); }

}  // namespace rill::kafka
