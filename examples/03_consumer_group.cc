// Tutorial 3: a consumer group with two workers; one crashes, the other takes over its shards
// from their last checkpoints.
//
// A billing application totals purchases from a 4-shard stream. Its two workers share the shards
// by leases kept in a checkpoint store. Worker "blue" crashes (it simply stops renewing its
// leases); after the failover time, "green" takes its shards and resumes after blue's last
// checkpoints. Records blue processed after its last checkpoint are delivered again (the
// at-least-once guarantee), and a SequenceDeduplicator-style check keeps the total exact.
// Everything runs on a SimulatedClock, polled by hand, so the output is the same on every run.
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/rill.h"

namespace {

// Totals purchases per worker; checkpoints every 30 records. Effectively-once: a record whose
// sequence number was already counted (redelivered after a failover) is skipped.
struct Ledger {
  std::map<std::string, int> processed;                   // per worker, redeliveries included
  std::map<rill::ShardId, rill::SequenceNumber> applied;  // highest counted, per shard
  long long total_cents = 0;
  int redelivered = 0;
};

class Billing : public rill::RecordProcessor {
 public:
  Billing(Ledger* ledger, std::string worker) : ledger_(ledger), worker_(std::move(worker)) {}

  void Initialize(const rill::InitializationInput& input) override {
    shard_ = input.shard_id;
    std::printf("  %s takes %s, resuming after %s\n", worker_.c_str(), shard_.ToString().c_str(),
                input.extended_sequence_number.c_str());
  }
  void ProcessRecords(const rill::ProcessRecordsInput& input) override {
    for (const rill::Record& r : input.records) {
      ++ledger_->processed[worker_];
      auto applied = ledger_->applied.find(shard_);
      if (applied != ledger_->applied.end() && r.sequence_number <= applied->second) {
        ++ledger_->redelivered;  // already counted before a failover
      } else {
        ledger_->total_cents += std::stoll(std::string(r.data));
        ledger_->applied[shard_] = r.sequence_number;
      }
      if (++since_checkpoint_ == 30) {
        since_checkpoint_ = 0;
        if (!input.checkpointer.Checkpoint(r.sequence_number).ok()) return;  // lease lost
      }
    }
  }
  void LeaseLost() override {}
  void ShardEnded(rill::Checkpointer& c) override { c.Checkpoint().IgnoreError(); }
  void ShutdownRequested(rill::Checkpointer& c) override { c.Checkpoint().IgnoreError(); }

 private:
  Ledger* ledger_;
  std::string worker_;
  rill::ShardId shard_;
  int since_checkpoint_ = 0;
};

}  // namespace

int main() {
  auto clock = std::make_shared<rill::SimulatedClock>();
  rill::StreamOptions options;
  options.name = "purchases";
  options.shard_count = 4;
  options.clock = clock;
  auto stream = rill::Stream::Create(options);
  if (!stream.ok()) return 1;

  rill::InMemoryCheckpointStore checkpoints;  // the group's lease table; outlives the group
  rill::ConsumerGroupOptions group_options;
  group_options.application_name = "billing";
  group_options.initial_position = rill::StartingPosition::TrimHorizon();
  group_options.max_records = 25;
  group_options.take_interval = absl::Seconds(2);
  auto group = rill::ConsumerGroup::Create(**stream, checkpoints, group_options);
  if (!group.ok()) {
    std::fprintf(stderr, "%s\n", group.status().ToString().c_str());
    return 1;
  }
  Ledger ledger;
  std::map<std::string, rill::Worker*> workers;
  for (const char* id : {"blue", "green"}) {
    auto w = (*group)->AddWorker(
        id, [&ledger, id](rill::ShardId) { return std::make_unique<Billing>(&ledger, id); });
    if (!w.ok()) return 1;
    workers[id] = *w;
  }
  auto round = [&] {
    clock->Advance(absl::Seconds(1));
    for (auto& [id, w] : workers) {
      if (absl::Status s = w->Poll(); !s.ok()) {
        std::fprintf(stderr, "%s: %s\n", id.c_str(), s.ToString().c_str());
      }
    }
  };

  std::printf("balancing the leases:\n");
  for (int i = 0; i < 10; ++i) round();
  long long expected_cents = 0;
  int purchase = 0;
  auto buy = [&](int n) {
    for (int i = 0; i < n; ++i, ++purchase) {
      const long long cents = 100 + purchase % 900;
      expected_cents += cents;
      if (!(*stream)
               ->PutRecord("customer-" + std::to_string(purchase % 300), std::to_string(cents))
               .ok()) {
        std::exit(1);
      }
    }
  };
  buy(2000);
  for (int i = 0; i < 5; ++i) round();
  std::printf("blue crashes after processing %d records\n", ledger.processed["blue"]);
  (*group)->CrashWorker("blue");
  workers.erase("blue");
  buy(2000);
  std::printf("green takes over after the failover time:\n");
  for (int i = 0; i < 60; ++i) round();

  std::printf("\nprocessed: blue %d, green %d; redelivered after the crash: %d\n",
              ledger.processed["blue"], ledger.processed["green"], ledger.redelivered);
  std::printf("total billed: %lld.%02lld (expected %lld.%02lld)\n", ledger.total_cents / 100,
              ledger.total_cents % 100, expected_cents / 100, expected_cents % 100);
  if (ledger.total_cents != expected_cents || workers["green"]->held_shards().size() != 4) {
    std::fprintf(stderr, "billing is wrong\n");
    return 1;
  }
  std::printf("nothing lost, nothing counted twice\n");
  return 0;
}
