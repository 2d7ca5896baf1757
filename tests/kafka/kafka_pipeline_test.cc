// Pipelines on Kafka: FromKafka (a consumer-group member, offsets committed with snapshots) into
// a StreamSink on another topic; a crash and a restart from a snapshot give exactly the window
// results of an uninterrupted run, with no duplicates.
#include "rill/kafka/source.h"

#include <chrono>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "catch2/catch.hpp"
#include "kafka/kafka_fixture.h"
#include "rill/process/pipeline.h"
#include "rill/process/sink.h"

namespace rill::kafka {
namespace {

using testing::KafkaCluster;
using Purchase = std::pair<int64_t, int64_t>;  // level, amount

std::optional<Purchase> ParsePurchase(const Record& r) {
  const absl::string_view data(r.data.data(), r.data.size());
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(data, ',');
  int64_t level, amount;
  if (!absl::SimpleAtoi(parts.first, &level) || !absl::SimpleAtoi(parts.second, &amount)) {
    return std::nullopt;
  }
  return std::make_pair(level, amount);
}

std::string EncodeResult(const WindowResult<int64_t, int64_t>& r) {
  return absl::StrCat(r.key, "|", absl::ToUnixSeconds(r.start), "|", r.value, "|",
                      r.is_update ? 1 : 0);
}

template <typename P>
P Built(absl::StatusOr<P> p) {
  INFO(p.status());
  REQUIRE(p.ok());
  return std::move(*p);
}

template <typename Sink>
auto LevelSums(std::unique_ptr<Source<Purchase>> source, std::shared_ptr<Clock> clock, Sink sink) {
  return Built(Pipeline<Purchase>::From(std::move(source), std::move(clock))
                   .KeyBy([](const Purchase& p) { return p.first; })
                   .Window(TumblingWindow(absl::Seconds(10)))
                   .Watermark({.max_out_of_orderness = absl::ZeroDuration(),
                               .idle_timeout = absl::ZeroDuration()})
                   .Aggregate(Sum<int64_t>(), [](const Purchase& p) { return p.second; })
                   .To(std::move(sink)));
}

std::unique_ptr<Source<Purchase>> From(Stream& input, const std::string& group,
                                       const std::string& worker) {
  SourceOptions options;
  options.group = group;
  options.worker_id = worker;
  options.failover_time = absl::Seconds(4);  // the mock's rebalances wait about this long
  options.max_records = 50;
  auto source = FromKafka<Purchase>(input, options, ParsePurchase);
  INFO(source.status());
  REQUIRE(source.ok());
  return std::move(*source);
}

// Polls until the source has read every partition to its end (bounded real time: Kafka's network
// and the group's rebalances; done as soon as it holds).
template <typename P>
void PollUntilCaughtUp(P& p) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  do {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    REQUIRE(p.Poll().ok());
  } while (!p.caught_up());
}

std::multiset<std::string> ReadAll(Stream& stream) {
  std::multiset<std::string> all;
  auto shards = stream.ListShards();
  REQUIRE(shards.ok());
  for (const ShardDescription& d : *shards) {
    auto it = stream.GetShardIterator(d.shard_id, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    for (;;) {
      auto batch = stream.GetRecords(*it);
      REQUIRE(batch.ok());
      for (const Record& r : batch->records) all.insert(std::string(r.data));
      it = *batch->next_shard_iterator;
      if (batch->records.empty() && batch->millis_behind_latest == 0) break;
    }
  }
  return all;
}

TEST_CASE("a pipeline on Kafka restarted from a snapshot gives exactly the uninterrupted results",
          "[kafka][pipeline]") {
  KafkaCluster cluster;
  auto clock = std::make_shared<SimulatedClock>();
  StreamOptions input_options = cluster.Options(cluster.CreateTopic("purchases", 4));
  input_options.clock = clock;
  auto input = Stream::Open(input_options);
  REQUIRE(input.ok());
  // 600 purchases over 60 s of simulated time: arrival times are the Kafka timestamps.
  for (int batch = 0; batch < 12; ++batch) {
    std::vector<PutRecordsEntry> entries;
    for (int i = batch * 50; i < (batch + 1) * 50; ++i) {
      entries.push_back(
          {"player-" + std::to_string(i % 40), absl::StrCat(i % 5, ",", i % 10), std::nullopt});
    }
    auto put = (*input)->PutRecords(entries);
    REQUIRE(put.ok());
    REQUIRE(put->failed_record_count == 0);
    clock->Advance(absl::Seconds(5));
  }
  // An undecodable record is counted, not dropped silently.
  REQUIRE((*input)->PutRecord("player-x", "not a purchase").ok());

  // The reference: one pipeline that never stops.
  std::vector<WindowResult<int64_t, int64_t>> reference;
  {
    auto p = LevelSums(From(**input, "reference", "r"), clock, ToVector(&reference));
    PollUntilCaughtUp(p);
    CHECK(p.records_in() == 600);  // decoded; the undecodable one is counted apart
    CHECK(p.undecodable_records() == 1);
    REQUIRE(p.Finish().ok());
  }
  std::multiset<std::string> expected;
  int64_t total = 0;
  for (const auto& r : reference) {
    expected.insert(EncodeResult(r));
    total += r.value;
  }
  int64_t sum = 0;
  for (int i = 0; i < 600; ++i) sum += i % 10;
  REQUIRE(total == sum);

  StreamOptions output_options = cluster.Options(cluster.CreateTopic("level-sums", 2));
  output_options.clock = clock;
  auto output = Stream::Open(output_options);
  REQUIRE(output.ok());
  std::string snapshot;
  {
    auto p = LevelSums(From(**input, "exactly-once", "w1"), clock,
                       StreamSink(**output, "level-sums", EncodeResult));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (p.records_in() < 200) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      REQUIRE(p.Poll(2).ok());
    }
    snapshot = p.Snapshot();
    REQUIRE(p.Commit().ok());
    REQUIRE(p.Poll(4).ok());  // more input after the commit
    snapshot = p.Snapshot();  // saved, but the crash comes before Commit
    for (int i = 0; i < 6; ++i) REQUIRE(p.Poll(2).ok());  // results written after the snapshot
  }                                                       // a crash: no commit, no graceful leave
  CHECK(!ReadAll(**output).empty());

  // The restart restores the snapshot, rejoins the group (after the crashed member's session
  // expires) and resumes from the older committed offsets, skipping what the snapshot covers;
  // its sink skips the results the crashed run wrote after the snapshot.
  auto p = LevelSums(From(**input, "exactly-once", "w2"), clock,
                     StreamSink(**output, "level-sums", EncodeResult));
  REQUIRE(p.Restore(snapshot).ok());
  PollUntilCaughtUp(p);
  REQUIRE(p.Finish().ok());
  CHECK(p.records_in() == 600);  // decoded; the undecodable one is counted apart
  CHECK(p.late_records() == 0);
  CHECK(ReadAll(**output) == expected);
}

}  // namespace
}  // namespace rill::kafka
