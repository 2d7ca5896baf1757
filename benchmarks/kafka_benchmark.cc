// rill::kafka::Stream against plain librdkafka loops doing the same work, on librdkafka's mock
// cluster (3 brokers on 127.0.0.1, in this process, shared by every case): records/s
// (items_per_second). Records are 100 bytes with 16-byte keys, 1,000 distinct keys, on topics of
// 4 partitions with replication 3; the baselines produce to the partitions rill routes the keys
// to. In the order they run (baselines first, so that the rill cases can report ratios):
//
//   BM_BaselineProduceSync    an idempotent librdkafka producer (enable.idempotence, linger.ms=1:
//                             rill's defaults) rd_kafka_producev's 500 records, then
//                             rd_kafka_poll's until their 500 delivery reports are in: the
//                             contract of PutRecords
//   BM_BaselineProduceAsync   the same producer, 50,000 records without waiting, then
//                             rd_kafka_flush: the ceiling
//   BM_RillPutRecords         Stream::PutRecords of 500 records (it returns once all 500 are
//                             acknowledged). vs_sync: its records/s over BM_BaselineProduceSync's
//   BM_RillProducer           rill::Producer (worker started, default options) Put()s 50,000
//                             records, then Flush(): what applications use. vs_sync, vs_async
//   BM_BaselineConsumerPoll   a librdkafka consumer assigned every partition at OFFSET_BEGINNING
//                             reads the consumers' topic to its end with rd_kafka_consumer_poll
//   BM_BaselineConsumerBatch  the same with rd_kafka_consume_batch_queue (10,000 per call)
//   BM_RillGetRecords         GetShardIterator(TRIM_HORIZON) on every shard, then GetRecords
//                             (10,000 per call) on each shard in turn until all are read.
//                             vs_consumer: its records/s over the faster baseline consumer's
//   BM_RillShardReader        one rill::ShardReader per shard from TRIM_HORIZON, 10,000 records
//                             from each in turn until all are read. vs_consumer
//
// The consumers' topic is filled once with 200,000 records; the mock broker keeps only the
// newest ~5 MB of each partition, so every consumer reads what it kept (the "records" counter,
// ~160,000). Consumers use fetch.wait.max.ms=10, since the broker holds a fetch with nothing to
// return for the whole wait.
//
// The goal: rill::kafka::Stream at 0.9x or better of the plain librdkafka loops in the same run
// (vs_sync of BM_RillPutRecords, vs_consumer of BM_RillGetRecords). Compare ratios, not absolute
// numbers: the mock brokers, librdkafka's threads and the benchmark share the machine's cores,
// and the numbers move by tens of percent from run to run on a busy machine.
//
// The command (about 35 s; with --benchmark_repetitions=3 --benchmark_report_aggregates_only=true,
// just under 2 minutes, and steadier ratios):
//   kafka_benchmark
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "rill/consume/shard_reader.h"
#include "rill/kafka/mock_cluster.h"
#include "rill/kafka/stream.h"
#include "rill/stream/producer.h"

namespace {

constexpr int kBatch = 500;
constexpr int kKeys = 1000;
constexpr size_t kDataBytes = 100;
constexpr size_t kKeyBytes = 16;
constexpr int kPartitions = 4;
constexpr int kReplication = 3;
constexpr int64_t kConsumeRecords = 200000;
// Records per iteration of the cases that do not wait per batch.
constexpr int kAsyncRecords = 50000;
// Iterations, for a run of about 35 s; each case first does the same work untimed
// (kWarmUpBatches batches for the producers, one full read for the consumers), so that
// connecting and the first metadata are not measured.
constexpr int kPutIterations = 3000;
constexpr int kAsyncIterations = 10;
constexpr int kConsumeIterations = 40;
constexpr int kWarmUpBatches = 20;

using Properties = std::vector<std::pair<std::string, std::string>>;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "kafka_benchmark: %s\n", what.c_str());
  std::abort();
}

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
  void operator()(rd_kafka_topic_t* rkt) const { rd_kafka_topic_destroy(rkt); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using KafkaTopic = std::unique_ptr<rd_kafka_topic_t, KafkaDeleter>;

// Delivery reports of a baseline producer. Served by rd_kafka_poll and rd_kafka_flush on the
// benchmark's own thread, so plain counters do.
struct Deliveries {
  int64_t done = 0;
  int64_t failed = 0;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  Deliveries* d = static_cast<Deliveries*>(opaque);
  ++d->done;
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) ++d->failed;
}

// The cluster, the records and the pre-filled topic the consumers read: made once per process.
struct Fixture {
  std::unique_ptr<rill::kafka::MockCluster> cluster;
  std::vector<std::string> keys;
  std::vector<int> partitions;  // of each key, as rill routes it
  std::string data = std::string(kDataBytes, 'd');
  std::vector<rill::PutRecordsEntry> batches[2];  // keys 0-499 and 500-999
  std::string consume_topic = "bench-consume";
  std::vector<int64_t> consume_counts;  // records in each partition of consume_topic
  int64_t consume_total = 0;
  int topics = 0;
};

Fixture& TheFixture();

Properties Bootstrap() {
  return {{"bootstrap.servers", TheFixture().cluster->bootstrap_servers()}};
}

Properties ConsumerProperties() {
  Properties p = Bootstrap();
  p.emplace_back("fetch.wait.max.ms", "10");
  return p;
}

std::string NewTopic(const char* prefix) {
  Fixture& f = TheFixture();
  std::string topic = std::string(prefix) + "-" + std::to_string(++f.topics);
  if (absl::Status s = f.cluster->CreateTopic(topic, kPartitions, kReplication); !s.ok()) {
    Die(s.ToString());
  }
  return topic;
}

std::unique_ptr<rill::kafka::Stream> OpenStream(const std::string& topic, Properties properties) {
  rill::kafka::StreamOptions options;
  options.topic = topic;
  options.properties = std::move(properties);
  auto stream = rill::kafka::Stream::Open(options);
  if (!stream.ok()) Die(stream.status().ToString());
  return std::move(*stream);
}

KafkaHandle NewClient(rd_kafka_type_t type, const Properties& properties,
                      Deliveries* deliveries = nullptr) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char error[512];
  for (const auto& [name, value] : properties) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof(error)) !=
        RD_KAFKA_CONF_OK) {
      Die(error);
    }
  }
  if (deliveries != nullptr) {
    rd_kafka_conf_set_dr_msg_cb(conf, &OnDelivery);
    rd_kafka_conf_set_opaque(conf, deliveries);
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, error, sizeof(error));  // owns conf when it succeeds
  if (rk == nullptr) Die(error);
  return KafkaHandle(rk);
}

// Rill's producer defaults, without rill.
KafkaHandle NewBaselineProducer(Deliveries* deliveries) {
  Properties p = Bootstrap();
  p.emplace_back("enable.idempotence", "true");
  p.emplace_back("linger.ms", "1");
  p.emplace_back("log_level", "3");
  return NewClient(RD_KAFKA_PRODUCER, p, deliveries);
}

// Produces record `i` of the workload (key i % kKeys) to its partition, without waiting.
rd_kafka_resp_err_t ProduceOne(rd_kafka_t* rk, rd_kafka_topic_t* rkt, int64_t i) {
  const Fixture& f = TheFixture();
  const size_t k = static_cast<size_t>(i % kKeys);
  return rd_kafka_producev(
      rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(f.partitions[k]),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(f.keys[k].data(), f.keys[k].size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(f.data.data()), f.data.size()), RD_KAFKA_V_END);
}

// Produces `count` records from record `*next` on, serving delivery reports every batch and
// whenever librdkafka's queue is full, without waiting for the last ones.
bool ProduceAsync(rd_kafka_t* rk, rd_kafka_topic_t* rkt, int64_t count, int64_t* next) {
  for (int64_t n = 0; n < count; ++n) {
    rd_kafka_resp_err_t err;
    while ((err = ProduceOne(rk, rkt, *next)) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(rk, 1);
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return false;
    ++*next;
    if (n % kBatch == 0) rd_kafka_poll(rk, 0);
  }
  return true;
}

Fixture* MakeFixture() {
  auto* f = new Fixture();
  auto cluster = rill::kafka::MockCluster::Create(3);
  if (!cluster.ok()) Die(cluster.status().ToString());
  f->cluster = std::move(*cluster);
  if (absl::Status s = f->cluster->CreateTopic(f->consume_topic, kPartitions, kReplication);
      !s.ok()) {
    Die(s.ToString());
  }
  for (int i = 0; i < kKeys; ++i) {
    std::string key = "player-" + std::to_string(100000 + i * 37);
    key.resize(kKeyBytes, '0');
    f->keys.push_back(std::move(key));
  }
  for (int i = 0; i < kKeys; ++i) {
    f->batches[i / kBatch].push_back(
        rill::PutRecordsEntry{f->keys[static_cast<size_t>(i)], f->data, std::nullopt});
  }
  return f;
}

Fixture& TheFixture() {
  static Fixture* fixture = MakeFixture();  // lives until exit: clients go before the cluster
  return *fixture;
}

// The routing of the keys (rill's, so that the baseline writes where rill would) and the
// consumers' topic, filled by the baseline producer. Once, before the first case that needs it.
const Fixture& Prepared() {
  static const bool prepared = [] {
    Fixture& f = TheFixture();
    {
      auto stream = OpenStream(f.consume_topic, Bootstrap());
      for (const std::string& key : f.keys) f.partitions.push_back(stream->PartitionFor(key));
    }
    Deliveries deliveries;
    KafkaHandle rk = NewBaselineProducer(&deliveries);
    KafkaTopic rkt(rd_kafka_topic_new(rk.get(), f.consume_topic.c_str(), nullptr));
    int64_t next = 0;
    if (!ProduceAsync(rk.get(), rkt.get(), kConsumeRecords, &next) ||
        rd_kafka_flush(rk.get(), 60000) != RD_KAFKA_RESP_ERR_NO_ERROR || deliveries.failed != 0) {
      Die("filling " + f.consume_topic);
    }
    // The mock broker keeps only the newest ~5 MB of each partition (it drops older message
    // sets): what it kept is what every reader reads.
    for (int p = 0; p < kPartitions; ++p) {
      int64_t low = 0;
      int64_t high = 0;
      if (rd_kafka_query_watermark_offsets(rk.get(), f.consume_topic.c_str(), p, &low, &high,
                                           10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        Die("reading the offsets of " + f.consume_topic);
      }
      f.consume_counts.push_back(high - low);
      f.consume_total += high - low;
    }
    return true;
  }();
  (void)prepared;
  return TheFixture();
}

// The records/s of the baselines' runs so far in this process (their mean, by case), for the
// rill cases' vs_* counters: the baselines are registered, and so run, first.
std::map<std::string, std::pair<double, int>> g_rates;

// Times the benchmark loop itself, so that a case can record its rate for the ratios.
class RunTimer {
 public:
  double Rate(int64_t items) const {
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
    return static_cast<double>(items) / elapsed.count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

void RecordRate(const std::string& name, double rate) {
  auto& [sum, runs] = g_rates[name];
  sum += rate;
  ++runs;
}

// rate over the mean rate of the fastest of `baselines` that has run.
void SetRatio(benchmark::State& state, const char* counter, double rate,
              std::initializer_list<const char*> baselines) {
  double best = 0;
  for (const char* name : baselines) {
    if (auto it = g_rates.find(name); it != g_rates.end()) {
      best = std::max(best, it->second.first / it->second.second);
    }
  }
  if (best > 0) state.counters[counter] = rate / best;
}

// ---- Produce ----

void BM_BaselineProduceSync(benchmark::State& state) {
  Prepared();
  const std::string topic = NewTopic("sync");
  Deliveries deliveries;
  KafkaHandle rk = NewBaselineProducer(&deliveries);
  KafkaTopic rkt(rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr));
  int64_t next = 0;
  // 500 records, then their 500 delivery reports.
  auto put_batch = [&] {
    for (int n = 0; n < kBatch; ++n) {
      if (ProduceOne(rk.get(), rkt.get(), next++) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        Die("rd_kafka_producev");
      }
    }
    while (deliveries.done < next) rd_kafka_poll(rk.get(), 1000);
  };
  for (int i = 0; i < kWarmUpBatches; ++i) put_batch();
  const RunTimer timer;
  for (auto _ : state) put_batch();
  if (deliveries.failed != 0) state.SkipWithError("records failed");
  state.SetItemsProcessed(state.iterations() * kBatch);
  RecordRate("sync", timer.Rate(state.iterations() * kBatch));
}
BENCHMARK(BM_BaselineProduceSync)->UseRealTime()->Iterations(kPutIterations);

void BM_BaselineProduceAsync(benchmark::State& state) {
  Prepared();
  const std::string topic = NewTopic("async");
  Deliveries deliveries;
  KafkaHandle rk = NewBaselineProducer(&deliveries);
  KafkaTopic rkt(rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr));
  int64_t next = 0;
  auto produce = [&](int64_t count) {
    if (!ProduceAsync(rk.get(), rkt.get(), count, &next) ||
        rd_kafka_flush(rk.get(), 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      Die("producing to " + topic);
    }
  };
  produce(kWarmUpBatches * kBatch);
  const RunTimer timer;
  for (auto _ : state) produce(kAsyncRecords);
  if (deliveries.failed != 0) state.SkipWithError("records failed");
  state.SetItemsProcessed(state.iterations() * kAsyncRecords);
  RecordRate("async", timer.Rate(state.iterations() * kAsyncRecords));
}
BENCHMARK(BM_BaselineProduceAsync)->UseRealTime()->Iterations(kAsyncIterations);

void BM_RillPutRecords(benchmark::State& state) {
  const Fixture& f = Prepared();
  auto stream = OpenStream(NewTopic("put-records"), Bootstrap());
  int64_t failed = 0;
  size_t i = 0;
  auto put_batch = [&] {
    auto result = stream->PutRecords(f.batches[i++ & 1]);
    if (!result.ok()) Die(result.status().ToString());
    failed += result->failed_record_count;
  };
  for (int n = 0; n < kWarmUpBatches; ++n) put_batch();
  const RunTimer timer;
  for (auto _ : state) put_batch();
  if (failed != 0) state.SkipWithError("records failed");
  state.SetItemsProcessed(state.iterations() * kBatch);
  SetRatio(state, "vs_sync", timer.Rate(state.iterations() * kBatch), {"sync"});
}
BENCHMARK(BM_RillPutRecords)->UseRealTime()->Iterations(kPutIterations);

void BM_RillProducer(benchmark::State& state) {
  const Fixture& f = Prepared();
  auto stream = OpenStream(NewTopic("producer"), Bootstrap());
  auto producer = rill::Producer::Create(*stream);
  if (!producer.ok()) Die(producer.status().ToString());
  if (!(*producer)->Start().ok()) Die("Producer::Start");
  std::atomic<int64_t> failed{0};
  size_t i = 0;
  auto produce = [&](int count) {
    for (int n = 0; n < count; ++n) {
      (*producer)->Put(f.keys[i++ % kKeys], f.data,
                       [&failed](absl::StatusOr<rill::PutRecordResult> r) {
                         if (!r.ok()) failed.fetch_add(1, std::memory_order_relaxed);
                       });
    }
    (*producer)->Flush();
  };
  produce(kWarmUpBatches * kBatch);
  const rill::ProducerStats before = (*producer)->stats();
  const RunTimer timer;
  for (auto _ : state) produce(kAsyncRecords);
  const double rate = timer.Rate(state.iterations() * kAsyncRecords);
  const rill::ProducerStats after = (*producer)->stats();
  producer->reset();
  if (failed.load() != 0) state.SkipWithError("records failed");
  state.SetItemsProcessed(state.iterations() * kAsyncRecords);
  // At most one record per key per call (Producer's ordering rule): ~250 of a shard's keys.
  state.counters["records_per_call"] =
      static_cast<double>(after.kinesis_records_sent - before.kinesis_records_sent) /
      static_cast<double>(after.put_records_calls - before.put_records_calls);
  SetRatio(state, "vs_sync", rate, {"sync"});
  SetRatio(state, "vs_async", rate, {"async"});
}
BENCHMARK(BM_RillProducer)->UseRealTime()->Iterations(kAsyncIterations);

// ---- Consume ----

// A plain consumer reading every partition of the consumers' topic from the beginning to the
// end, per iteration; `batch` selects rd_kafka_consume_batch_queue over rd_kafka_consumer_poll.
void BaselineConsume(benchmark::State& state, bool batch) {
  const Fixture& f = Prepared();
  Properties p = ConsumerProperties();
  // assign() needs no group membership, but the consumer API wants a group id.
  p.emplace_back("group.id", "bench-baseline");
  p.emplace_back("enable.auto.commit", "false");
  p.emplace_back("enable.partition.eof", "false");
  p.emplace_back("log_level", "3");
  KafkaHandle rk = NewClient(RD_KAFKA_CONSUMER, p);
  rd_kafka_poll_set_consumer(rk.get());
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(rk.get());
  std::vector<rd_kafka_message_t*> messages(rill::kMaxGetRecordsLimit);
  size_t bytes = 0;
  auto read_all = [&] {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(kPartitions);
    for (int i = 0; i < kPartitions; ++i) {
      rd_kafka_topic_partition_list_add(list, f.consume_topic.c_str(), i)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
    }
    if (rd_kafka_assign(rk.get(), list) != RD_KAFKA_RESP_ERR_NO_ERROR) Die("rd_kafka_assign");
    rd_kafka_topic_partition_list_destroy(list);
    int64_t read = 0;
    std::vector<int64_t> left = f.consume_counts;
    int open = kPartitions;
    auto take = [&](rd_kafka_message_t* m) {
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ++read;
        bytes += m->len;
        if (--left[static_cast<size_t>(m->partition)] == 0) --open;
      }
      rd_kafka_message_destroy(m);
    };
    while (open > 0) {
      if (batch) {
        // It waits until the batch is full or the timeout passed: a short timeout, so that the
        // last, partial batch does not wait long.
        const ssize_t n = rd_kafka_consume_batch_queue(queue, 10, messages.data(), messages.size());
        for (ssize_t i = 0; i < n; ++i) take(messages[static_cast<size_t>(i)]);
      } else if (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 1000); m != nullptr) {
        take(m);
      }
    }
    rd_kafka_assign(rk.get(), nullptr);
    return read;
  };
  read_all();
  const RunTimer timer;
  int64_t read = 0;
  for (auto _ : state) read += read_all();
  const double rate = timer.Rate(read);
  rd_kafka_queue_destroy(queue);
  rd_kafka_consumer_close(rk.get());
  benchmark::DoNotOptimize(bytes);
  if (read != state.iterations() * f.consume_total) state.SkipWithError("wrong record count");
  state.SetItemsProcessed(read);
  state.counters["records"] = static_cast<double>(f.consume_total);
  RecordRate(batch ? "consume_batch" : "consume_poll", rate);
}

void BM_BaselineConsumerPoll(benchmark::State& state) { BaselineConsume(state, false); }
BENCHMARK(BM_BaselineConsumerPoll)->UseRealTime()->Iterations(kConsumeIterations);

void BM_BaselineConsumerBatch(benchmark::State& state) { BaselineConsume(state, true); }
BENCHMARK(BM_BaselineConsumerBatch)->UseRealTime()->Iterations(kConsumeIterations);

void BM_RillGetRecords(benchmark::State& state) {
  const Fixture& f = Prepared();
  auto stream = OpenStream(f.consume_topic, ConsumerProperties());
  auto read_all = [&] {
    std::vector<rill::ShardIterator> iterators;
    for (int p = 0; p < kPartitions; ++p) {
      auto it = stream->GetShardIterator(rill::ShardId(static_cast<uint32_t>(p)),
                                         rill::StartingPosition::TrimHorizon());
      if (!it.ok()) Die(it.status().ToString());
      iterators.push_back(std::move(*it));
    }
    int64_t read = 0;
    std::vector<int64_t> left = f.consume_counts;
    // One call per shard in turn, until every shard is read to the end.
    for (int open = kPartitions; open > 0;) {
      for (size_t p = 0; p < iterators.size(); ++p) {
        if (left[p] <= 0) continue;
        auto result = stream->GetRecords(iterators[p]);
        if (!result.ok()) Die(result.status().ToString());
        const auto n = static_cast<int64_t>(result->records.size());
        read += n;
        left[p] -= n;
        if (left[p] <= 0) --open;
        iterators[p] = std::move(*result->next_shard_iterator);
      }
    }
    return read;
  };
  read_all();
  const RunTimer timer;
  int64_t read = 0;
  for (auto _ : state) read += read_all();
  if (read != state.iterations() * f.consume_total) state.SkipWithError("wrong record count");
  state.SetItemsProcessed(read);
  state.counters["records"] = static_cast<double>(f.consume_total);
  SetRatio(state, "vs_consumer", timer.Rate(read), {"consume_poll", "consume_batch"});
}
BENCHMARK(BM_RillGetRecords)->UseRealTime()->Iterations(kConsumeIterations);

void BM_RillShardReader(benchmark::State& state) {
  const Fixture& f = Prepared();
  auto stream = OpenStream(f.consume_topic, ConsumerProperties());
  rill::ShardReaderOptions options;
  options.batch_size = rill::kMaxGetRecordsLimit;
  size_t bytes = 0;
  auto read_all = [&] {
    std::vector<std::unique_ptr<rill::ShardReader>> readers;
    for (int p = 0; p < kPartitions; ++p) {
      auto reader = rill::ShardReader::Create(*stream, rill::ShardId(static_cast<uint32_t>(p)),
                                              rill::StartingPosition::TrimHorizon(), options);
      if (!reader.ok()) Die(reader.status().ToString());
      readers.push_back(std::move(*reader));
    }
    int64_t read = 0;
    std::vector<int64_t> left = f.consume_counts;
    // A batch's worth from each shard in turn, as the GetRecords case reads, until every shard
    // is read to the end.
    for (int open = kPartitions; open > 0;) {
      for (size_t p = 0; p < readers.size(); ++p) {
        for (int n = 0; n < rill::kMaxGetRecordsLimit && left[p] > 0; ++n) {
          absl::StatusOr<std::optional<rill::RecordView>> record = readers[p]->Next();
          if (!record.ok()) Die(record.status().ToString());
          if (!record->has_value()) Die("a shard ended early");
          bytes += (*record)->data().size();
          ++read;
          if (--left[p] == 0) --open;
        }
      }
    }
    return read;
  };
  read_all();
  const RunTimer timer;
  int64_t read = 0;
  for (auto _ : state) read += read_all();
  benchmark::DoNotOptimize(bytes);
  if (read != state.iterations() * f.consume_total) state.SkipWithError("wrong record count");
  state.SetItemsProcessed(read);
  state.counters["records"] = static_cast<double>(f.consume_total);
  SetRatio(state, "vs_consumer", timer.Rate(read), {"consume_poll", "consume_batch"});
}
BENCHMARK(BM_RillShardReader)->UseRealTime()->Iterations(kConsumeIterations);

}  // namespace
