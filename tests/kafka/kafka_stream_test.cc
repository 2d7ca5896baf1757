// rill::kafka::Stream on librdkafka's mock cluster (3 brokers on 127.0.0.1, started by each
// test), or on a real Kafka cluster when RILL_KAFKA_BOOTSTRAP names one (see kafka_fixture.h).
#include "rill/kafka/stream.h"

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "catch2/catch.hpp"
#include "kafka/kafka_fixture.h"
#include "kafka/rdkafka.h"
#include "rill/base/error.h"
#include "rill/consume/shard_reader.h"
#include "rill/consume/stream_subscriber.h"
#include "rill/stream/producer.h"
#include "rill/stream/stream.h"

namespace rill::kafka {
namespace {

using testing::KafkaCluster;

std::string Key(int i) { return "player-" + std::to_string(i); }

// Every record of every shard from TRIM_HORIZON, read with GetRecords until caught up.
std::vector<std::pair<ShardId, std::vector<std::pair<std::string, std::string>>>> ReadAll(
    Stream& stream, std::map<std::string, SequenceNumber>* numbers = nullptr) {
  std::vector<std::pair<ShardId, std::vector<std::pair<std::string, std::string>>>> out;
  auto shards = stream.ListShards();
  REQUIRE(shards.ok());
  for (const ShardDescription& d : *shards) {
    auto it = stream.GetShardIterator(d.shard_id, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    std::vector<std::pair<std::string, std::string>> records;
    SequenceNumber previous;
    for (;;) {
      auto batch = stream.GetRecords(*it, 1000);
      INFO(batch.status());
      REQUIRE(batch.ok());
      for (const Record& r : batch->records) {
        CHECK(previous < r.sequence_number);
        previous = r.sequence_number;
        records.emplace_back(std::string(r.partition_key), std::string(r.data));
        if (numbers != nullptr) (*numbers)[std::string(r.data)] = r.sequence_number;
      }
      REQUIRE(batch->next_shard_iterator.has_value());
      it = *batch->next_shard_iterator;
      if (batch->records.empty() && batch->millis_behind_latest == 0) break;
    }
    out.emplace_back(d.shard_id, std::move(records));
  }
  return out;
}

TEST_CASE("Kafka errors map onto rill's Kinesis-named codes and keep Kafka's name", "[kafka]") {
  const std::vector<std::pair<rd_kafka_resp_err_t, ErrorCode>> table = {
      {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, ErrorCode::kResourceNotFound},
      {RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, ErrorCode::kResourceNotFound},
      {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, ErrorCode::kAccessDenied},
      {RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED, ErrorCode::kAccessDenied},
      {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, ErrorCode::kInvalidArgument},
      {RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE, ErrorCode::kInvalidArgument},
      {RD_KAFKA_RESP_ERR__QUEUE_FULL, ErrorCode::kProvisionedThroughputExceeded},
      {RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED, ErrorCode::kProvisionedThroughputExceeded},
      {RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS, ErrorCode::kResourceInUse},
      {RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, ErrorCode::kInternalFailure},
      {RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, ErrorCode::kInternalFailure},
      {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, ErrorCode::kInternalFailure},
  };
  for (const auto& [err, code] : table) {
    const absl::Status s = internal::KafkaError(err, "PutRecords");
    INFO(s);
    CHECK(GetErrorCode(s) == code);
    CHECK(s.message().find(std::string("PutRecords: Kafka ") + rd_kafka_err2name(err)) == 0);
  }
}

TEST_CASE("Open refuses what it cannot use with Kinesis-named errors", "[kafka]") {
  KafkaCluster cluster;
  StreamOptions options;
  if (cluster.is_real()) {
    // (The mock cluster creates every topic a client asks about: its Metadata predates
    // allow.auto.create.topics.)
    options = cluster.Options("rill-absent-topic");
    CHECK(GetErrorCode(Stream::Open(options).status()) == ErrorCode::kResourceNotFound);
  }

  options = cluster.Options("");
  CHECK(GetErrorCode(Stream::Open(options).status()) == ErrorCode::kInvalidArgument);

  options = cluster.Options("t");
  options.properties.clear();
  auto no_bootstrap = Stream::Open(options);
  CHECK(GetErrorCode(no_bootstrap.status()) == ErrorCode::kInvalidArgument);
  CHECK(no_bootstrap.status().message().find("bootstrap.servers") != absl::string_view::npos);

  options = cluster.Options("t");
  options.properties.emplace_back("no.such.property", "1");
  auto bad = Stream::Open(options);
  CHECK(GetErrorCode(bad.status()) == ErrorCode::kInvalidArgument);
  CHECK(bad.status().message().find("no.such.property") != absl::string_view::npos);
}

TEST_CASE("records are routed by MD5 hash-key range as on a rill Stream and read back in order",
          "[kafka]") {
  KafkaCluster cluster;
  const std::string topic = cluster.CreateTopic("events", 4);
  auto stream = Stream::Open(cluster.Options(topic));
  REQUIRE(stream.ok());
  CHECK((*stream)->partition_count() == 4);
  CHECK((*stream)->name() == topic);

  // The same key lands in the same shard index as on an in-process stream of 4 shards.
  rill::StreamOptions local_options;
  local_options.name = "local";
  local_options.shard_count = 4;
  auto local = rill::Stream::Create(local_options);
  REQUIRE(local.ok());
  std::map<std::string, SequenceNumber> put_numbers;
  for (int i = 0; i < 120; ++i) {
    const std::string data = "event-" + std::to_string(i);
    auto put = (*stream)->PutRecord(Key(i % 30), data);
    INFO(put.status());
    REQUIRE(put.ok());
    auto here = (*local)->PutRecord(Key(i % 30), data);
    REQUIRE(here.ok());
    CHECK(put->shard_id == here->shard_id);
    CHECK(put->shard_id.index() == static_cast<uint32_t>((*stream)->PartitionFor(Key(i % 30))));
    put_numbers[data] = put->sequence_number;
  }

  std::map<std::string, SequenceNumber> read_numbers;
  size_t total = 0;
  for (const auto& [shard, records] : ReadAll(**stream, &read_numbers)) {
    std::map<std::string, int> last;
    for (const auto& [key, data] : records) {
      CHECK(static_cast<uint32_t>((*stream)->PartitionFor(key)) == shard.index());
      const int n = std::stoi(data.substr(6));
      auto [at, fresh] = last.try_emplace(key, n);
      if (!fresh) {
        CHECK(at->second < n);  // per-key order
        at->second = n;
      }
    }
    total += records.size();
  }
  CHECK(total == 120);
  CHECK(read_numbers == put_numbers);

  // Sequence numbers encode (partition, offset) of this topic.
  auto decoded = (*stream)->FromSequenceNumber(put_numbers["event-0"]);
  REQUIRE(decoded.ok());
  CHECK(decoded->first == (*stream)->PartitionFor(Key(0)));
  CHECK(decoded->second == 0);
  CHECK((*stream)->ToSequenceNumber(decoded->first, decoded->second) == put_numbers["event-0"]);
}

TEST_CASE("PutRecords writes a batch with per-entry results and validates as Kinesis does",
          "[kafka]") {
  KafkaCluster cluster;
  auto stream = Stream::Open(cluster.Options(cluster.CreateTopic("batch", 3)));
  REQUIRE(stream.ok());
  std::vector<PutRecordsEntry> entries;
  for (int i = 0; i < 500; ++i) {
    entries.push_back({Key(i % 11), std::to_string(i), std::nullopt});
  }
  auto result = (*stream)->PutRecords(entries);
  REQUIRE(result.ok());
  CHECK(result->failed_record_count == 0);
  REQUIRE(result->entries.size() == 500);
  std::map<std::string, SequenceNumber> last;
  for (size_t i = 0; i < entries.size(); ++i) {
    const PutRecordsResultEntry& e = result->entries[i];
    REQUIRE(e.ok());
    CHECK(e.shard_id.index() ==
          static_cast<uint32_t>((*stream)->PartitionFor(entries[i].partition_key)));
    auto [at, fresh] = last.try_emplace(entries[i].partition_key, e.sequence_number);
    if (!fresh) {
      CHECK(at->second < e.sequence_number);
      at->second = e.sequence_number;
    }
  }
  // An explicit hash key routes by itself.
  PutOptions at_max;
  at_max.explicit_hash_key = HashKey::Max();
  auto explicit_put = (*stream)->PutRecord("any", "x", at_max);
  REQUIRE(explicit_put.ok());
  CHECK(explicit_put->shard_id == ShardId(2));

  CHECK(GetErrorCode((*stream)->PutRecords({}).status()) == ErrorCode::kInvalidArgument);
  std::vector<PutRecordsEntry> too_many(501, PutRecordsEntry{"k", "v", std::nullopt});
  CHECK(GetErrorCode((*stream)->PutRecords(too_many).status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode((*stream)->PutRecord("", "v").status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode((*stream)->PutRecord(std::string(257, 'k'), "v").status()) ==
        ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode((*stream)->PutRecord("k", std::string((size_t{1} << 20), 'x')).status()) ==
        ErrorCode::kInvalidArgument);
  // Ordering by a number that is not this stream's.
  PutOptions foreign;
  foreign.sequence_number_for_ordering = SequenceNumber(absl::uint128(12345));
  CHECK(GetErrorCode((*stream)->PutRecord("k", "v", foreign).status()) ==
        ErrorCode::kInvalidArgument);
  // Nothing refused was written.
  size_t total = 0;
  for (const auto& shard : ReadAll(**stream)) total += shard.second.size();
  CHECK(total == 501);
}

TEST_CASE("every iterator type maps to an offset", "[kafka]") {
  KafkaCluster cluster;
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions options = cluster.Options(cluster.CreateTopic("positions", 1));
  options.clock = clock;
  auto stream = Stream::Open(options);
  REQUIRE(stream.ok());
  const absl::Time t0 = clock->Now();
  std::vector<SequenceNumber> numbers;
  for (int i = 0; i < 20; ++i) {
    auto put = (*stream)->PutRecord("k", std::to_string(i));
    REQUIRE(put.ok());
    numbers.push_back(put->sequence_number);
    clock->Advance(absl::Seconds(1));
  }
  auto first_data = [&](const StartingPosition& position) -> std::string {
    auto it = (*stream)->GetShardIterator(ShardId(0), position);
    INFO(it.status());
    REQUIRE(it.ok());
    auto batch = (*stream)->GetRecords(*it, 1);
    REQUIRE(batch.ok());
    if (batch->records.empty()) return "(none)";
    return std::string(batch->records[0].data);
  };
  CHECK(first_data(StartingPosition::TrimHorizon()) == "0");
  CHECK(first_data(StartingPosition::Latest()) == "(none)");
  CHECK(first_data(StartingPosition::AtSequenceNumber(numbers[7])) == "7");
  CHECK(first_data(StartingPosition::AfterSequenceNumber(numbers[7])) == "8");
  // AT_TIMESTAMP: the first record at or after the time (the mock broker does not search by
  // time, so this is rill's search over the records' timestamps; a real broker answers itself).
  CHECK(first_data(StartingPosition::AtTimestamp(t0 + absl::Seconds(5))) == "5");
  CHECK(first_data(StartingPosition::AtTimestamp(t0 + absl::Milliseconds(5500))) == "6");
  CHECK(first_data(StartingPosition::AtTimestamp(t0 - absl::Hours(1))) == "0");
  CHECK(first_data(StartingPosition::AtTimestamp(t0 + absl::Hours(1))) == "(none)");

  // The record's arrival time is the clock's when it was put.
  auto it = (*stream)->GetShardIterator(ShardId(0), StartingPosition::AtSequenceNumber(numbers[3]));
  REQUIRE(it.ok());
  // A GetRecords may return fewer records than the limit (the mock broker answers a fetch with
  // one produce request's records): read until two came.
  std::vector<Record> two;
  RecordKeepAlive keep;
  for (int i = 0; i < 10 && two.size() < 2; ++i) {
    auto batch = (*stream)->GetRecords(*it, 2 - static_cast<int>(two.size()));
    REQUIRE(batch.ok());
    CHECK(batch->millis_behind_latest > 0);
    two.insert(two.end(), batch->records.begin(), batch->records.end());
    keep.Add(batch->storage);
    it = *batch->next_shard_iterator;
  }
  REQUIRE(two.size() == 2);
  CHECK(two[0].approximate_arrival_timestamp == t0 + absl::Seconds(3));
  CHECK(two[0].sequence_number == numbers[3]);
  CHECK(two[1].sequence_number == numbers[4]);

  // Numbers of another topic, and garbage, are refused.
  KafkaCluster::TopicName other_topic = cluster.CreateTopic("other", 1);
  auto other = Stream::Open(cluster.Options(other_topic));
  REQUIRE(other.ok());
  auto other_put = (*other)->PutRecord("k", "v");
  REQUIRE(other_put.ok());
  CHECK(GetErrorCode((*stream)
                         ->GetShardIterator(ShardId(0), StartingPosition::AtSequenceNumber(
                                                            other_put->sequence_number))
                         .status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode((*stream)
                         ->GetShardIterator(ShardId(0), StartingPosition::AtSequenceNumber("12x"))
                         .status()) == ErrorCode::kInvalidArgument);
  // A number this shard has not issued yet.
  CHECK(GetErrorCode((*stream)
                         ->GetShardIterator(ShardId(0), StartingPosition::AtSequenceNumber(
                                                            (*stream)->ToSequenceNumber(0, 20)))
                         .status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(
            (*stream)->GetShardIterator(ShardId(1), StartingPosition::TrimHorizon()).status()) ==
        ErrorCode::kResourceNotFound);
  // An iterator of the other stream, and an expired one.
  auto other_it = (*other)->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(other_it.ok());
  CHECK(GetErrorCode((*stream)->GetRecords(*other_it).status()) == ErrorCode::kInvalidArgument);
  auto old = (*stream)->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(old.ok());
  clock->Advance(absl::Minutes(5) + absl::Seconds(1));
  CHECK(GetErrorCode((*stream)->GetRecords(*old).status()) == ErrorCode::kExpiredIterator);
  CHECK(GetErrorCode((*stream)->GetRecords(*old, 0).status()) == ErrorCode::kInvalidArgument);
}

TEST_CASE("what Kafka cannot do is refused and said plainly", "[kafka]") {
  KafkaCluster cluster;
  auto stream = Stream::Open(cluster.Options(cluster.CreateTopic("fixed", 4)));
  REQUIRE(stream.ok());
  auto split = (*stream)->SplitShard(ShardId(0), HashKey(absl::uint128(1) << 100));
  CHECK(GetErrorCode(split) == ErrorCode::kInvalidArgument);
  CHECK(split.message().find("cannot be split") != absl::string_view::npos);
  CHECK(GetErrorCode((*stream)->MergeShards(ShardId(0), ShardId(1))) ==
        ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode((*stream)->MergeShards(ShardId(0), ShardId(9))) ==
        ErrorCode::kResourceNotFound);
  auto scale = (*stream)->UpdateShardCount(8);
  CHECK(GetErrorCode(scale) == ErrorCode::kInvalidArgument);
  CHECK(scale.message().find("only gain partitions") != absl::string_view::npos);

  // Retention: the mock broker does not describe configurations, so Kafka's default is reported
  // and changes are refused.
  auto summary = (*stream)->DescribeStreamSummary();
  REQUIRE(summary.ok());
  CHECK(summary->open_shard_count == 4);
  if (!cluster.is_real()) {
    CHECK(summary->retention == absl::Hours(168));
    CHECK(GetErrorCode((*stream)->IncreaseStreamRetentionPeriod(absl::Hours(200))) ==
          ErrorCode::kInvalidArgument);
  }
  CHECK(GetErrorCode((*stream)->IncreaseStreamRetentionPeriod(absl::Hours(10))) ==
        ErrorCode::kInvalidArgument);

  // ListShards pages with a token, and all partitions are open.
  ListShardsRequest request;
  request.max_results = 3;
  auto page1 = (*stream)->ListShards(request);
  REQUIRE(page1.ok());
  REQUIRE(page1->shards.size() == 3);
  REQUIRE(page1->next_token.has_value());
  ListShardsRequest next;
  next.next_token = page1->next_token;
  auto page2 = (*stream)->ListShards(next);
  REQUIRE(page2.ok());
  REQUIRE(page2->shards.size() == 1);
  CHECK(page2->shards[0].shard_id == ShardId(3));
  CHECK(!page2->next_token);
  CHECK(!page2->shards[0].closed());
  CHECK(page2->shards[0].hash_key_range.ending_hash_key == HashKey::Max());
  next.next_token = "garbage";
  CHECK(GetErrorCode((*stream)->ListShards(next).status()) == ErrorCode::kInvalidArgument);
}

TEST_CASE("Producer ShardReader and StreamSubscriber run unchanged on a kafka Stream", "[kafka]") {
  KafkaCluster cluster;
  auto kafka = Stream::Open(cluster.Options(cluster.CreateTopic("seam", 3)));
  REQUIRE(kafka.ok());
  StreamApi& stream = **kafka;  // the one line an application changes

  auto consumer = stream.RegisterStreamConsumer("dash");
  REQUIRE(consumer.ok());
  CHECK(GetErrorCode(stream.RegisterStreamConsumer("dash").status()) == ErrorCode::kResourceInUse);
  StreamSubscriberOptions sub_options;
  sub_options.consumer_name = "dash";
  sub_options.initial_position = StartingPosition::TrimHorizon();
  auto subscriber = StreamSubscriber::Create(stream, sub_options);
  REQUIRE(subscriber.ok());

  auto producer = Producer::Create(stream);
  REQUIRE(producer.ok());
  std::atomic<int> acknowledged{0};
  for (int i = 0; i < 300; ++i) {
    (*producer)->Put(Key(i % 7), std::to_string(i), [&](const absl::StatusOr<PutRecordResult>& r) {
      CHECK(r.ok());
      if (r.ok()) ++acknowledged;
    });
  }
  (*producer)->Flush();
  CHECK(acknowledged.load() == 300);

  std::map<std::string, int> last;
  size_t read = 0;
  auto shards = stream.ListShards();
  REQUIRE(shards.ok());
  for (const ShardDescription& d : *shards) {
    auto reader = ShardReader::Create(stream, d.shard_id, StartingPosition::TrimHorizon());
    REQUIRE(reader.ok());
    for (const RecordView& r : **reader) {
      const int value = std::stoi(std::string(r.data()));
      auto [at, fresh] = last.try_emplace(std::string(r.partition_key()), value);
      if (!fresh) {
        CHECK(at->second < value);
        at->second = value;
      }
      ++read;
    }
    CHECK((*reader)->status().ok());
  }
  CHECK(read == 300);

  // The subscriber gets all 300, in order per key. Real time: the records cross sockets;
  // bounded, and done as soon as all arrived.
  std::map<std::string, int> pushed_last;
  int pushed = 0;
  for (int i = 0; i < 600 && pushed < 300; ++i) {
    auto event = (*subscriber)->Next(absl::Milliseconds(50));
    INFO(event.status());
    REQUIRE(event.ok());
    if (!*event) continue;
    for (const Record& r : (*event)->event.records) {
      const int value = std::stoi(std::string(r.data));
      auto [at, fresh] = pushed_last.try_emplace(std::string(r.partition_key), value);
      if (!fresh) {
        CHECK(at->second < value);
        at->second = value;
      }
      ++pushed;
    }
  }
  CHECK(pushed == 300);
  subscriber->reset();
  REQUIRE(stream.DeregisterStreamConsumer("dash").ok());
  CHECK(GetErrorCode(stream.DescribeStreamConsumer("dash").status()) ==
        ErrorCode::kResourceNotFound);
}

TEST_CASE("a newer subscription takes over and deregistering ends it", "[kafka]") {
  KafkaCluster cluster;
  auto stream = Stream::Open(cluster.Options(cluster.CreateTopic("takeover", 1)));
  REQUIRE(stream.ok());
  REQUIRE((*stream)->RegisterStreamConsumer("c").ok());
  auto first = (*stream)->SubscribeToShard("c", ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(first.ok());
  auto second = (*stream)->SubscribeToShard("c", ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(second.ok());
  CHECK(GetErrorCode((*first)->TryNext().status()) == ErrorCode::kResourceInUse);
  REQUIRE((*stream)->PutRecord("k", "v").ok());
  bool got = false;
  for (int i = 0; i < 200 && !got; ++i) {
    auto event = (*second)->Next(absl::Milliseconds(50));
    REQUIRE(event.ok());
    got = event->has_value() && !(*event)->records.empty();
    if (got) {
      CHECK((*event)->records[0].data == "v");
      CHECK((*event)->continuation_sequence_number == (*event)->records[0].sequence_number);
    }
  }
  CHECK(got);
  REQUIRE((*stream)->DeregisterStreamConsumer("c").ok());
  CHECK(GetErrorCode((*second)->TryNext().status()) == ErrorCode::kResourceNotFound);
  CHECK(GetErrorCode(
            (*stream)->SubscribeToShard("c", ShardId(0), StartingPosition::Latest()).status()) ==
        ErrorCode::kResourceNotFound);
}

TEST_CASE("a broker taken down mid-production loses no acknowledged record", "[kafka]") {
  KafkaCluster cluster;
  if (cluster.is_real()) return;  // needs the mock cluster's broker control
  const std::string topic = cluster.CreateTopic("outage", 6);
  auto stream = Stream::Open(cluster.Options(topic));
  REQUIRE(stream.ok());
  std::mutex mu;
  std::vector<std::string> acknowledged;
  std::atomic<int> round_started{-1};
  auto write_round = [&](int round) {
    round_started = round;
    std::vector<PutRecordsEntry> entries;
    for (int i = 0; i < 50; ++i) {
      entries.push_back({Key(i), std::to_string(round) + ":" + std::to_string(i), std::nullopt});
    }
    auto result = (*stream)->PutRecords(entries);
    REQUIRE(result.ok());
    std::lock_guard<std::mutex> lock(mu);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (result->entries[i].ok()) acknowledged.push_back(entries[i].data);
    }
  };
  for (int round = 0; round < 10; ++round) write_round(round);
  // Broker 2 leads some partitions. While it is down, their records wait in the producer (the
  // put waits for them) and go out when it is back: the idempotent producer retries them without
  // duplicates or reordering.
  REQUIRE(cluster.mock()->SetBrokerDown(2).ok());
  std::thread writer([&] {
    for (int round = 10; round < 30; ++round) write_round(round);
  });
  while (round_started.load() < 10) std::this_thread::yield();
  REQUIRE(cluster.mock()->SetBrokerUp(2).ok());
  writer.join();

  std::multiset<std::string> read;
  std::map<std::string, int> per_key_round;
  for (const auto& [shard, records] : ReadAll(**stream)) {
    for (const auto& [key, data] : records) {
      read.insert(data);
      const int round = std::stoi(data.substr(0, data.find(':')));
      auto [at, fresh] = per_key_round.try_emplace(key, round);
      if (!fresh) {
        CHECK(at->second < round);  // per-key order across the outage
        at->second = round;
      }
    }
  }
  for (const std::string& a : acknowledged) {
    CHECK(read.count(a) == 1);  // every acknowledged record, exactly once
  }
  CHECK(acknowledged.size() == 30 * 50);  // the outage failed nothing: it only delayed
}

TEST_CASE("a leader change does not stop puts reads or subscriptions", "[kafka]") {
  KafkaCluster cluster;
  if (cluster.is_real()) return;  // needs the mock cluster's broker control
  const std::string topic = cluster.CreateTopic("leaders", 2);
  auto stream = Stream::Open(cluster.Options(topic));
  REQUIRE(stream.ok());
  REQUIRE((*stream)->RegisterStreamConsumer("c").ok());
  auto sub = (*stream)->SubscribeToShard("c", ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(sub.ok());
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 10; ++i) {
    if ((*stream)->PartitionFor(Key(i)) == 0) keys.push_back(Key(i));
  }
  for (int i = 0; i < 10; ++i) REQUIRE((*stream)->PutRecord(keys[i], "before").ok());
  for (int32_t leader : {1, 2, 3}) {
    REQUIRE(cluster.mock()->SetPartitionLeader(topic, 0, leader).ok());
    for (int i = 0; i < 10; ++i) {
      auto put = (*stream)->PutRecord(keys[i], "leader-" + std::to_string(leader));
      INFO(put.status());
      REQUIRE(put.ok());
    }
  }
  // Producer-side errors a leader change causes are retried by the producer.
  cluster.mock()->PushRequestErrors(/*Produce=*/0, 3, /*NOT_LEADER_OR_FOLLOWER=*/6);
  REQUIRE((*stream)->PutRecord(keys[0], "after-errors").ok());

  auto all = ReadAll(**stream);
  REQUIRE(all[0].second.size() == 41);
  CHECK(all[0].second.back().second == "after-errors");
  int pushed = 0;
  for (int i = 0; i < 600 && pushed < 41; ++i) {
    auto event = (*sub)->Next(absl::Milliseconds(50));
    REQUIRE(event.ok());
    if (*event) pushed += static_cast<int>((*event)->records.size());
  }
  CHECK(pushed == 41);
}

}  // namespace
}  // namespace rill::kafka
