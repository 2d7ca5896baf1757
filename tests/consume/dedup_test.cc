// SequenceDeduplicator: exact answers, a failover redelivery, persistence, and concurrency.
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/base/error.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/dedup.h"
#include "rill/consume/shard_reader.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

SequenceNumber Seq(uint64_t n) { return SequenceNumber(absl::uint128(n)); }

TEST_CASE("ShouldProcess answers true once per sequence number, per shard", "[dedup]") {
  SequenceDeduplicator dedup;
  const ShardId a(0);
  const ShardId b(1);
  CHECK_FALSE(dedup.high_water_mark(a).has_value());
  CHECK(dedup.ShouldProcess(a, Seq(10)));
  CHECK_FALSE(dedup.ShouldProcess(a, Seq(10)));  // the same again
  CHECK_FALSE(dedup.ShouldProcess(a, Seq(5)));   // below the mark
  CHECK(dedup.ShouldProcess(a, Seq(11)));
  CHECK(dedup.ShouldProcess(a, Seq(100)));  // numbers need not be dense
  CHECK_FALSE(dedup.ShouldProcess(a, Seq(99)));
  CHECK(dedup.high_water_mark(a) == Seq(100));
  // Shards are independent.
  CHECK(dedup.ShouldProcess(b, Seq(5)));
  CHECK_FALSE(dedup.ShouldProcess(b, Seq(5)));
  CHECK(dedup.high_water_mark(b) == Seq(5));
  CHECK(dedup.high_water_marks() == std::map<ShardId, SequenceNumber>{{a, Seq(100)}, {b, Seq(5)}});

  // The two-phase form: check, apply, then mark.
  CHECK_FALSE(dedup.IsProcessed(b, Seq(6)));
  CHECK_FALSE(dedup.IsProcessed(b, Seq(6)));  // checking does not mark
  dedup.MarkProcessed(b, Seq(6));
  CHECK(dedup.IsProcessed(b, Seq(6)));
  CHECK(dedup.IsProcessed(b, Seq(1)));
  dedup.MarkProcessed(b, Seq(2));  // never lowers
  CHECK(dedup.high_water_mark(b) == Seq(6));
  CHECK_FALSE(dedup.IsProcessed(ShardId(9), Seq(0)));

  // Restore merges, keeping the higher mark; Forget drops a shard.
  dedup.Restore({{a, Seq(50)}, {b, Seq(60)}, {ShardId(2), Seq(7)}});
  CHECK(dedup.high_water_marks() ==
        std::map<ShardId, SequenceNumber>{{a, Seq(100)}, {b, Seq(60)}, {ShardId(2), Seq(7)}});
  dedup.Forget(a);
  CHECK_FALSE(dedup.high_water_mark(a).has_value());
  CHECK(dedup.ShouldProcess(a, Seq(1)));
}

TEST_CASE("after a failover, redelivered records are skipped and the rest applied once",
          "[dedup]") {
  auto clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream = testing::MakeStream(clock, 1, "payments");
  std::vector<SequenceNumber> put;
  for (int i = 0; i < 10; ++i) {
    auto p = stream->PutRecord("k", "payment-" + std::to_string(i));
    REQUIRE(p.ok());
    put.push_back(p->sequence_number);
  }
  InMemoryCheckpointStore checkpoints;
  InMemoryCheckpointStore marks;
  ShardReaderOptions reader_options;
  reader_options.application_name = "payments";
  std::vector<std::string> applied;  // the side effect

  SequenceDeduplicator first;
  {
    auto reader = ShardReader::Create(*stream, ShardId(0), StartingPosition::TrimHorizon(),
                                      checkpoints, reader_options);
    REQUIRE(reader.ok());
    for (int i = 0; i < 8; ++i) {
      auto r = (*reader)->Next();
      REQUIRE(r.ok());
      REQUIRE(r->has_value());
      if (first.ShouldProcess(ShardId(0), (*r)->sequence_number())) {
        applied.emplace_back((*r)->data());
      }
      if (i == 4) REQUIRE((*reader)->Checkpoint().ok());  // checkpoint after payment-4
    }
    REQUIRE(first.Save(marks, "payments.dedup").ok());
    // The worker dies here: payments 5-7 were applied but not checkpointed.
  }
  SequenceDeduplicator second;
  REQUIRE(second.Load(marks, "payments.dedup").ok());
  CHECK(second.high_water_mark(ShardId(0)) == put[7]);
  auto reader = ShardReader::Create(*stream, ShardId(0), StartingPosition::TrimHorizon(),
                                    checkpoints, reader_options);
  REQUIRE(reader.ok());
  std::vector<std::string> redelivered;
  std::vector<std::string> skipped;
  for (const RecordView& r : **reader) {
    redelivered.emplace_back(r.data());
    if (second.ShouldProcess(ShardId(0), r.sequence_number())) {
      applied.emplace_back(r.data());
    } else {
      skipped.emplace_back(r.data());
    }
  }
  CHECK(redelivered ==
        std::vector<std::string>{"payment-5", "payment-6", "payment-7", "payment-8", "payment-9"});
  CHECK(skipped == std::vector<std::string>{"payment-5", "payment-6", "payment-7"});
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) expected.push_back("payment-" + std::to_string(i));
  CHECK(applied == expected);
}

TEST_CASE("Save and Load persist marks in a store and never lower them", "[dedup]") {
  const std::string kind = GENERATE(std::string("memory"), std::string("file"));
  INFO(kind << " store");
  const testing::TempDir dir("dedup", testing::TempDir::kAbsent);
  std::unique_ptr<CheckpointStore> store;
  if (kind == "memory") {
    store = std::make_unique<InMemoryCheckpointStore>();
  } else {
    auto opened = FileCheckpointStore::Open(dir.path());
    REQUIRE(opened.ok());
    store = std::move(*opened);
  }

  SequenceDeduplicator one;
  one.MarkProcessed(ShardId(0), Seq(100));
  one.MarkProcessed(ShardId(3), Seq(7));
  REQUIRE(one.Save(*store, "app.dedup").ok());
  auto rows = store->ListLeases("app.dedup");
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 2);
  CHECK((*rows)[0].lease_key == "shardId-000000000000");
  CHECK((*rows)[0].checkpoint == "100");
  CHECK((*rows)[1].lease_key == "shardId-000000000003");
  CHECK((*rows)[1].checkpoint == "7");

  // Another deduplicator with a lower mark for shard 0 and a higher one for shard 3.
  SequenceDeduplicator two;
  two.MarkProcessed(ShardId(0), Seq(90));
  two.MarkProcessed(ShardId(3), Seq(8));
  REQUIRE(two.Save(*store, "app.dedup").ok());
  CHECK((*store->GetLease("app.dedup", "shardId-000000000000"))->checkpoint == "100");
  CHECK((*store->GetLease("app.dedup", "shardId-000000000003"))->checkpoint == "8");
  CHECK((*store->GetLease("app.dedup", "shardId-000000000003"))->counter == 1);
  CHECK((*store->GetLease("app.dedup", "shardId-000000000000"))->counter == 0);

  // Load merges into what is there.
  SequenceDeduplicator three;
  three.MarkProcessed(ShardId(5), Seq(1));
  three.MarkProcessed(ShardId(3), Seq(20));
  REQUIRE(three.Load(*store, "app.dedup").ok());
  CHECK(three.high_water_marks() == std::map<ShardId, SequenceNumber>{{ShardId(0), Seq(100)},
                                                                      {ShardId(3), Seq(20)},
                                                                      {ShardId(5), Seq(1)}});
  SequenceDeduplicator empty;
  REQUIRE(empty.Load(*store, "nothing-here").ok());
  CHECK(empty.high_water_marks().empty());

  // A table that is not one of marks: an error, and nothing merged.
  Lease bad;
  bad.lease_key = "shardId-000000000009";
  bad.checkpoint = "TRIM_HORIZON";
  REQUIRE(*store->CreateLeaseIfAbsent("app.dedup", bad));
  SequenceDeduplicator four;
  absl::Status loaded = four.Load(*store, "app.dedup");
  CHECK(GetErrorCode(loaded) == ErrorCode::kInternalFailure);
  CHECK(four.high_water_marks().empty());
  CHECK(GetErrorCode(four.Load(*store, "bad/name")) == ErrorCode::kInvalidArgument);
}

TEST_CASE("two threads offering the same sequence numbers process each exactly once",
          "[dedup][race]") {
  SequenceDeduplicator dedup;
  constexpr int kNumbers = 20000;
  std::atomic<int> processed{0};
  auto offer = [&] {
    int mine = 0;
    for (int i = 1; i <= kNumbers; ++i) {
      if (dedup.ShouldProcess(ShardId(0), Seq(static_cast<uint64_t>(i)))) ++mine;
    }
    processed += mine;
  };
  std::thread t1(offer);
  std::thread t2(offer);
  t1.join();
  t2.join();
  // Each thread offers the numbers in order, so every number is taken by exactly one of them.
  CHECK(processed.load() == kNumbers);
  CHECK(dedup.high_water_mark(ShardId(0)) == Seq(kNumbers));
}

}  // namespace
}  // namespace rill
