// Tutorial 2: a game launch. Load ramps 10x, the stream throttles, the operator scales it from
// 100 to 1,000 shards, and the producer delivers everything it buffered meanwhile.
//
// The stream enforces Kinesis' per-shard limits (1,000 records/s and 1 MiB/s of writes), and runs
// on a SimulatedClock: four simulated seconds of launch traffic take a couple of real seconds,
// and every number printed is the same on every run.
#include <cstdio>
#include <memory>
#include <string>

#include "rill/rill.h"

namespace {

constexpr int kPlayers = 200000;

struct Phase {
  const char* name;
  int records_per_second;
  int seconds;
};

}  // namespace

int main() {
  auto clock = std::make_shared<rill::SimulatedClock>();
  rill::StreamOptions options;
  options.name = "game-launch";
  options.shard_count = 100;
  options.clock = clock;
  options.shard_limits = rill::ShardLimits::Kinesis();
  absl::StatusOr<std::unique_ptr<rill::Stream>> created = rill::Stream::Create(options);
  if (!created.ok()) {
    std::fprintf(stderr, "cannot create the stream: %s\n", created.status().ToString().c_str());
    return 1;
  }
  rill::Stream& stream = **created;

  // The producer batches records per shard and retries throttled ones with backoff. It runs on
  // this thread: Poll() after each slice of traffic.
  rill::ProducerOptions producer_options;
  producer_options.max_buffered_time = absl::Milliseconds(50);
  absl::StatusOr<std::unique_ptr<rill::Producer>> made =
      rill::Producer::Create(stream, producer_options);
  if (!made.ok()) {
    std::fprintf(stderr, "cannot create the producer: %s\n", made.status().ToString().c_str());
    return 1;
  }
  rill::Producer& producer = **made;
  int64_t failed = 0;
  auto on_done = [&failed](absl::StatusOr<rill::PutRecordResult> r) {
    if (!r.ok()) ++failed;
  };

  std::printf("%-26s %7s %10s %12s %12s %12s\n", "phase", "shards", "offered/s", "written",
              "throttled", "outstanding");
  const Phase phases[] = {
      {"1. before launch", 50000, 1},
      {"2. launch: 10x traffic", 500000, 1},
      {"3. scaled to 1000 shards", 500000, 2},
  };
  int64_t player = 0;
  for (const Phase& phase : phases) {
    if (phase.name[0] == '3') {
      // The operator scales up: UpdateShardCount doubles at most per call (Kinesis' rule).
      for (int target : {200, 400, 800, 1000}) {
        if (absl::Status s = stream.UpdateShardCount(target); !s.ok()) {
          std::fprintf(stderr, "UpdateShardCount(%d): %s\n", target, s.ToString().c_str());
          return 1;
        }
      }
    }
    const rill::MetricsSnapshot before = stream.metrics();
    // Traffic in 10 ms slices: put the slice's records, let the producer send, move the clock.
    const int per_slice = phase.records_per_second / 100;
    for (int slice = 0; slice < phase.seconds * 100; ++slice) {
      for (int i = 0; i < per_slice; ++i) {
        const std::string key = "player-" + std::to_string(player++ % kPlayers);
        producer.Put(key, R"({"event":"match_start","map":"harbor","elo":1520})", on_done);
      }
      producer.Poll();
      clock->Advance(absl::Milliseconds(10));
    }
    const rill::MetricsSnapshot after = stream.metrics();
    std::printf("%-26s %7d %10d %12lld %12lld %12zu\n", phase.name,
                stream.DescribeStreamSummary().open_shard_count, phase.records_per_second,
                static_cast<long long>(after.incoming_records - before.incoming_records),
                static_cast<long long>(after.write_provisioned_throughput_exceeded -
                                       before.write_provisioned_throughput_exceeded),
                producer.outstanding());
  }

  // Drain: keep polling while the clock moves until every buffered record is written.
  for (int i = 0; i < 3000 && producer.outstanding() > 0; ++i) {
    producer.Poll();
    clock->Advance(absl::Milliseconds(10));
  }
  producer.Flush();
  const rill::ProducerStats stats = producer.stats();
  const rill::MetricsSnapshot m = stream.metrics();
  std::printf("\nproducer: %lld put, %lld written, %lld failed, %lld retried entries, %lld calls\n",
              static_cast<long long>(stats.user_records_put),
              static_cast<long long>(stats.user_records_written),
              static_cast<long long>(stats.user_records_failed),
              static_cast<long long>(stats.kinesis_records_retried),
              static_cast<long long>(stats.put_records_calls));
  std::printf(
      "stream: IncomingRecords %lld, WriteProvisionedThroughputExceeded %lld, "
      "%zu shards listed (%d open)\n",
      static_cast<long long>(m.incoming_records),
      static_cast<long long>(m.write_provisioned_throughput_exceeded), m.shards.size(),
      stream.DescribeStreamSummary().open_shard_count);
  if (stats.user_records_written != stats.user_records_put || failed != 0 ||
      m.incoming_records != stats.user_records_put) {
    std::fprintf(stderr, "records were lost: %lld put, %lld written\n",
                 static_cast<long long>(stats.user_records_put),
                 static_cast<long long>(stats.user_records_written));
    return 1;
  }
  // The first lines of the Prometheus exposition, as a scraper would see them.
  const std::string text = rill::ToPrometheusText(m);
  std::printf("\nPrometheus exposition (first lines):\n%.*s...\n",
              static_cast<int>(text.find("rill_outgoing")), text.c_str());
  std::printf("nothing lost: every record put was written exactly once\n");
  return 0;
}
