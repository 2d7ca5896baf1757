// ConsumerGroup: deterministic simulations on a SimulatedClock, polled by hand. Every test checks
// exactly which records each worker saw: nothing lost, per-shard order, redelivery only after the
// last checkpoint, parents before children.
#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

// What every processor of a test saw, in the order it happened.
struct Journal {
  struct Delivery {
    std::string worker;
    uint32_t shard;
    SequenceNumber sequence_number;
    std::string partition_key;
    std::string data;
    int64_t order;  // position in the journal
  };
  std::vector<Delivery> deliveries;
  std::vector<std::string> events;  // "init worker shard checkpoint", "lost ...", ...
  // Per (worker, shard): the last checkpoint written, and the deliveries since.
  std::map<std::pair<std::string, uint32_t>, std::string> checkpoints;
  int64_t next = 0;
};

class JournalingProcessor : public RecordProcessor {
 public:
  JournalingProcessor(Journal* journal, std::string worker, int checkpoint_every)
      : journal_(journal), worker_(std::move(worker)), every_(checkpoint_every) {}

  void Initialize(const InitializationInput& input) override {
    shard_ = input.shard_id.index();
    journal_->events.push_back("init " + worker_ + " " + input.shard_id.ToString() + " " +
                               input.extended_sequence_number);
  }
  void ProcessRecords(const ProcessRecordsInput& input) override {
    for (const Record& r : input.records) {
      journal_->deliveries.push_back({worker_, shard_, r.sequence_number,
                                      std::string(r.partition_key), std::string(r.data),
                                      journal_->next++});
      if (every_ > 0 && ++since_ >= every_) {
        // Checkpoint at this exact record (the KCL rule allows any delivered number).
        const absl::Status s = input.checkpointer.Checkpoint(r.sequence_number);
        if (GetErrorCode(s) == ErrorCode::kResourceInUse) {
          journal_->events.push_back("checkpoint-lost " + worker_ + " " + Id());
          return;
        }
        REQUIRE(s.ok());
        journal_->checkpoints[{worker_, shard_}] = r.sequence_number.ToString();
        since_ = 0;
      }
    }
  }
  void LeaseLost() override { journal_->events.push_back("lost " + worker_ + " " + Id()); }
  void ShardEnded(Checkpointer& c) override {
    journal_->events.push_back("ended " + worker_ + " " + Id());
    const absl::Status s = c.Checkpoint();
    if (GetErrorCode(s) == ErrorCode::kResourceInUse) {
      journal_->events.push_back("checkpoint-lost " + worker_ + " " + Id());
      return;  // the lease moved on: its new owner finishes the shard
    }
    REQUIRE(s.ok());
    CHECK(c.last_checkpoint() == "SHARD_END");
  }
  void ShutdownRequested(Checkpointer& c) override {
    journal_->events.push_back("shutdown " + worker_ + " " + Id());
    REQUIRE(c.Checkpoint().ok());
  }

 private:
  std::string Id() const { return ShardId(shard_).ToString(); }
  Journal* journal_;
  std::string worker_;
  int every_;
  int since_ = 0;
  uint32_t shard_ = 0;
};

// An InMemoryCheckpointStore that counts the calls made to it, to pin how a group's rounds use
// the store (a store's cost is per call: a file replace, an SQLite transaction).
class CountingStore final : public CheckpointStore {
 public:
  struct Calls {
    int list = 0, get = 0, create = 0, create_batch = 0, update = 0, update_batch = 0, remove = 0;
    int64_t batch_rows = 0;  // rows in UpdateLeases batches
    friend bool operator==(const Calls&, const Calls&) = default;
  };
  Calls calls;

  absl::StatusOr<std::vector<Lease>> ListLeases(std::string_view a) override {
    ++calls.list;
    return inner_.ListLeases(a);
  }
  absl::StatusOr<std::optional<Lease>> GetLease(std::string_view a, std::string_view k) override {
    ++calls.get;
    return inner_.GetLease(a, k);
  }
  absl::StatusOr<bool> CreateLeaseIfAbsent(std::string_view a, const Lease& l) override {
    ++calls.create;
    return inner_.CreateLeaseIfAbsent(a, l);
  }
  absl::StatusOr<std::vector<bool>> CreateLeasesIfAbsent(std::string_view a,
                                                         absl::Span<const Lease> l) override {
    ++calls.create_batch;
    return inner_.CreateLeasesIfAbsent(a, l);
  }
  absl::Status UpdateLease(std::string_view a, const Lease& l, int64_t e) override {
    ++calls.update;
    return inner_.UpdateLease(a, l, e);
  }
  absl::StatusOr<std::vector<absl::Status>> UpdateLeases(std::string_view a,
                                                         absl::Span<const LeaseUpdate> u) override {
    ++calls.update_batch;
    calls.batch_rows += static_cast<int64_t>(u.size());
    return inner_.UpdateLeases(a, u);
  }
  absl::Status DeleteLease(std::string_view a, std::string_view k, int64_t e) override {
    ++calls.remove;
    return inner_.DeleteLease(a, k, e);
  }

 private:
  InMemoryCheckpointStore inner_;
};

struct Sim {
  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>();
  std::unique_ptr<Stream> stream;
  std::unique_ptr<CheckpointStore> store = std::make_unique<InMemoryCheckpointStore>();
  std::unique_ptr<ConsumerGroup> group;  // declared after what it borrows: destroyed first
  Journal journal;
  std::map<std::string, Worker*> workers;

  explicit Sim(int shards) : stream(testing::MakeStream(clock, shards, "events")) {}

  ConsumerGroupOptions Options() {
    ConsumerGroupOptions o;
    o.application_name = "app";
    o.initial_position = StartingPosition::TrimHorizon();
    o.failover_time = absl::Seconds(10);
    o.take_interval = absl::Seconds(2);
    o.max_records = 10;
    return o;
  }

  void StartGroup(ConsumerGroupOptions o) {
    auto g = ConsumerGroup::Create(*stream, *store, o);
    REQUIRE(g.ok());
    group = std::move(*g);
    workers.clear();
  }

  void AddWorker(const std::string& id, int checkpoint_every) {
    auto w = group->AddWorker(id, [this, id, checkpoint_every](ShardId) {
      return std::make_unique<JournalingProcessor>(&journal, id, checkpoint_every);
    });
    REQUIRE(w.ok());
    workers[id] = *w;
  }

  // One round: the clock moves one second, then every worker polls once.
  void Round() {
    clock->Advance(absl::Seconds(1));
    for (auto& [id, w] : workers) REQUIRE(w->Poll().ok());
  }

  // Puts `n` records on each shard (by explicit hash key at the shard's start).
  void PutEach(int n, const std::string& tag) {
    for (const ShardDescription& d : stream->ListShards()) {
      if (d.closed()) continue;
      PutOptions p;
      p.explicit_hash_key = d.hash_key_range.starting_hash_key;
      for (int i = 0; i < n; ++i) {
        REQUIRE(stream
                    ->PutRecord("k" + std::to_string(d.shard_id.index()),
                                tag + "-" + d.shard_id.ToString() + "-" + std::to_string(i), p)
                    .ok());
      }
    }
  }

  // Every record of a shard, read directly.
  std::vector<SequenceNumber> ShardContents(ShardId shard) {
    std::vector<SequenceNumber> out;
    auto it = stream->GetShardIterator(shard, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    std::optional<ShardIterator> next = *it;
    while (next) {
      auto batch = stream->GetRecords(*next);
      REQUIRE(batch.ok());
      for (const Record& r : batch->records) out.push_back(r.sequence_number);
      next = batch->next_shard_iterator;
      if (batch->records.empty()) break;
    }
    return out;
  }

  std::map<std::string, std::vector<ShardId>> Held() {
    std::map<std::string, std::vector<ShardId>> held;
    for (auto& [id, w] : workers) held[id] = w->held_shards();
    return held;
  }
};

TEST_CASE("one worker reads every shard in order from TRIM_HORIZON", "[consumer_group]") {
  Sim sim(4);
  sim.PutEach(25, "a");
  sim.StartGroup(sim.Options());
  sim.AddWorker("w1", 0);
  for (int i = 0; i < 10; ++i) sim.Round();
  CHECK(sim.workers["w1"]->held_shards().size() == 4);
  std::map<uint32_t, std::vector<SequenceNumber>> seen;
  for (const auto& d : sim.journal.deliveries) seen[d.shard].push_back(d.sequence_number);
  for (uint32_t s = 0; s < 4; ++s) CHECK(seen[s] == sim.ShardContents(ShardId(s)));
  CHECK(std::count_if(sim.journal.events.begin(), sim.journal.events.end(), [](const auto& e) {
          return e.rfind("init w1", 0) == 0 && e.find("TRIM_HORIZON") != std::string::npos;
        }) == 4);
}

TEST_CASE("leases spread evenly: 3 workers over 8 shards hold 3, 3 and 2", "[consumer_group]") {
  Sim sim(8);
  sim.StartGroup(sim.Options());
  sim.AddWorker("a", 0);
  sim.AddWorker("b", 0);
  sim.AddWorker("c", 0);
  for (int i = 0; i < 40; ++i) sim.Round();
  std::multiset<size_t> sizes;
  std::set<ShardId> all;
  for (const auto& [id, shards] : sim.Held()) {
    sizes.insert(shards.size());
    all.insert(shards.begin(), shards.end());
  }
  CHECK(sizes == std::multiset<size_t>{2, 3, 3});
  CHECK(all.size() == 8);  // every shard held by exactly one worker
  // Stable: more rounds change nothing.
  const auto before = sim.Held();
  for (int i = 0; i < 20; ++i) sim.Round();
  CHECK(sim.Held() == before);
}

TEST_CASE("a crashed worker's shards resume from its last checkpoint", "[consumer_group]") {
  Sim sim(8);
  sim.StartGroup(sim.Options());
  sim.AddWorker("a", 7);
  sim.AddWorker("b", 7);
  sim.AddWorker("c", 7);
  for (int i = 0; i < 40; ++i) sim.Round();  // balance with an empty stream: no handovers later
  const std::vector<ShardId> b_shards = sim.workers["b"]->held_shards();
  REQUIRE(b_shards.size() >= 2);
  for (int round = 0; round < 6; ++round) {
    sim.PutEach(12, "r" + std::to_string(round));
    sim.Round();
  }
  // b crashes: it stops renewing; its deliveries after its last checkpoint must come again.
  const size_t crash_at = sim.journal.deliveries.size();
  sim.group->CrashWorker("b");
  sim.workers.erase("b");
  std::map<uint32_t, std::vector<SequenceNumber>> b_uncheckpointed;
  for (const ShardId& shard : b_shards) {
    const auto cp = sim.journal.checkpoints.find({"b", shard.index()});
    for (size_t i = 0; i < crash_at; ++i) {
      const auto& d = sim.journal.deliveries[i];
      if (d.worker != "b" || d.shard != shard.index()) continue;
      if (cp == sim.journal.checkpoints.end() ||
          d.sequence_number > *SequenceNumber::Parse(cp->second)) {
        b_uncheckpointed[shard.index()].push_back(d.sequence_number);
      }
    }
  }
  size_t expected_redelivered = 0;
  for (const auto& [s, v] : b_uncheckpointed) expected_redelivered += v.size();
  REQUIRE(expected_redelivered > 0);

  for (int round = 0; round < 60; ++round) sim.Round();
  // a and c now hold all 8 shards, 4 each.
  CHECK(sim.workers["a"]->held_shards().size() == 4);
  CHECK(sim.workers["c"]->held_shards().size() == 4);

  // Per shard: every record delivered; the duplicates are exactly b's uncheckpointed ones; each
  // worker's deliveries of a shard are in order.
  for (uint32_t s = 0; s < 8; ++s) {
    INFO("shard " << s);
    std::map<SequenceNumber, int> copies;
    std::map<std::string, SequenceNumber> last_by_worker;
    for (const auto& d : sim.journal.deliveries) {
      if (d.shard != s) continue;
      ++copies[d.sequence_number];
      auto [it, fresh] = last_by_worker.try_emplace(d.worker, d.sequence_number);
      if (!fresh) {
        CHECK(d.sequence_number > it->second);
        it->second = d.sequence_number;
      }
    }
    const std::vector<SequenceNumber> contents = sim.ShardContents(ShardId(s));
    CHECK(contents.size() == 72);
    const std::vector<SequenceNumber>& dup = b_uncheckpointed[s];
    for (const SequenceNumber& seq : contents) {
      const bool duplicated = std::find(dup.begin(), dup.end(), seq) != dup.end();
      CHECK(copies[seq] == (duplicated ? 2 : 1));
    }
  }
}

TEST_CASE("graceful shutdown checkpoints and hands the leases over at once", "[consumer_group]") {
  Sim sim(4);
  sim.PutEach(5, "x");
  sim.StartGroup(sim.Options());
  sim.AddWorker("a", 0);
  for (int i = 0; i < 3; ++i) sim.Round();
  REQUIRE(sim.workers["a"]->held_shards().size() == 4);
  sim.AddWorker("b", 0);
  sim.workers["a"]->Shutdown();
  CHECK(std::count_if(sim.journal.events.begin(), sim.journal.events.end(),
                      [](const auto& e) { return e.rfind("shutdown a", 0) == 0; }) == 4);
  CHECK(GetErrorCode(sim.workers["a"]->Poll()) == ErrorCode::kResourceInUse);
  sim.workers.erase("a");
  // No failover wait: the released leases are free on b's next take.
  sim.PutEach(5, "y");
  for (int i = 0; i < 3; ++i) sim.Round();
  CHECK(sim.workers["b"]->held_shards().size() == 4);
  // b resumed after a's checkpoints: every record exactly once.
  std::map<std::string, int> copies;
  for (const auto& d : sim.journal.deliveries) ++copies[d.data];
  CHECK(copies.size() == 40);
  for (const auto& [data, n] : copies) CHECK(n == 1);
}

TEST_CASE("a stolen lease makes the old owner's processor see LeaseLost", "[consumer_group]") {
  Sim sim(4);
  sim.StartGroup(sim.Options());
  sim.AddWorker("a", 0);
  sim.Round();
  REQUIRE(sim.workers["a"]->held_shards().size() == 4);
  sim.PutEach(1, "x");
  sim.Round();  // a initialises its processors
  sim.AddWorker("b", 0);
  for (int i = 0; i < 20; ++i) sim.Round();
  CHECK(sim.workers["a"]->held_shards().size() == 2);
  CHECK(sim.workers["b"]->held_shards().size() == 2);
  CHECK(std::count_if(sim.journal.events.begin(), sim.journal.events.end(),
                      [](const auto& e) { return e.rfind("lost a", 0) == 0; }) == 2);
}

TEST_CASE("a checkpoint after a lost lease names the worker that took it", "[consumer_group]") {
  Sim sim(1);
  sim.PutEach(3, "x");
  const std::vector<SequenceNumber> seqs = sim.ShardContents(ShardId(0));
  sim.StartGroup(sim.Options());
  sim.AddWorker("w1", 0);
  sim.Round();  // takes the lease
  sim.Round();  // delivers the three records
  REQUIRE(sim.journal.deliveries.size() == 3);

  // Another worker takes the lease behind w1's back: a conditional write on the counter w1 wrote.
  const std::string key = "shardId-000000000000";
  absl::StatusOr<std::optional<Lease>> got = sim.store->GetLease("app", key);
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  Lease taken = **got;
  REQUIRE(taken.owner == "w1");
  const int64_t w1_counter = taken.counter;
  taken.owner = "w2";
  taken.counter = w1_counter + 1;
  REQUIRE(sim.store->UpdateLease("app", taken, w1_counter).ok());

  const std::string expected =
      "lease on shardId-000000000000 was lost to worker 'w2' (lease counter " +
      std::to_string(w1_counter + 1) + "; this worker last wrote " + std::to_string(w1_counter) +
      "); worker 'w1' no longer owns the shard";
  const absl::Status first = sim.workers["w1"]->Checkpoint(ShardId(0), seqs[2]);
  CHECK(GetErrorCode(first) == ErrorCode::kResourceInUse);
  CHECK(first.message() == expected);
  // A later checkpoint, before the worker's next poll drops the shard, says the same.
  const absl::Status again = sim.workers["w1"]->Checkpoint(ShardId(0), seqs[2]);
  CHECK(GetErrorCode(again) == ErrorCode::kResourceInUse);
  CHECK(again.message() == expected);
}

TEST_CASE("children are processed only after their parents reach SHARD_END", "[consumer_group]") {
  // One worker, so that no lease changes hands and every record is delivered exactly once.
  Sim sim(2);
  sim.StartGroup(sim.Options());
  sim.AddWorker("a", 0);
  // Keys spread over the whole hash space; each key's records carry increasing numbers.
  int counter = 0;
  auto put_keys = [&] {
    for (int k = 0; k < 40; ++k) {
      REQUIRE(sim.stream->PutRecord("key-" + std::to_string(k), std::to_string(counter++)).ok());
    }
  };
  put_keys();
  sim.Round();
  REQUIRE(sim.stream->SplitShard(ShardId(0), HashKey(absl::MakeUint128(uint64_t{1} << 62, 0)))
              .ok());  // 0 -> 2, 3
  put_keys();
  sim.Round();
  REQUIRE(sim.stream->MergeShards(ShardId(3), ShardId(1)).ok());  // 3 + 1 -> 4
  put_keys();
  for (int i = 0; i < 60; ++i) sim.Round();

  // Every record delivered exactly once.
  std::map<std::string, const Journal::Delivery*> by_data;
  for (const auto& d : sim.journal.deliveries) {
    CHECK(by_data.count(d.data) == 0);
    by_data[d.data] = &d;
  }
  CHECK(by_data.size() == 120);
  // For every key, its records are delivered in put order, across parents and children.
  std::map<std::string, int64_t> last_order;
  std::map<std::string, int> last_value;
  for (const auto& d : sim.journal.deliveries) {
    const int value = std::stoi(d.data);
    auto it = last_value.find(d.partition_key);
    if (it != last_value.end()) CHECK(value > it->second);
    last_value[d.partition_key] = value;
  }
  // A child's first delivery comes after its parents' last.
  auto last_of = [&](uint32_t s) {
    int64_t m = -1;
    for (const auto& d : sim.journal.deliveries) {
      if (d.shard == s) m = std::max(m, d.order);
    }
    return m;
  };
  auto first_of = [&](uint32_t s) {
    for (const auto& d : sim.journal.deliveries) {
      if (d.shard == s) return d.order;
    }
    return int64_t{-1};
  };
  CHECK(first_of(2) > last_of(0));
  CHECK(first_of(3) > last_of(0));
  CHECK(first_of(4) > last_of(3));
  CHECK(first_of(4) > last_of(1));
  for (const char* parent :
       {"shardId-000000000000", "shardId-000000000001", "shardId-000000000003"}) {
    auto lease = sim.store->GetLease("app", parent);
    REQUIRE(lease.ok());
    REQUIRE(lease->has_value());
    CHECK((*lease)->checkpoint == "SHARD_END");
  }
}

TEST_CASE("a restarted group resumes after the stored checkpoints", "[consumer_group]") {
  Sim sim(2);
  sim.PutEach(20, "first");
  sim.StartGroup(sim.Options());
  sim.AddWorker("a", 8);
  for (int i = 0; i < 5; ++i) sim.Round();
  REQUIRE(sim.journal.deliveries.size() == 40);
  // The whole application stops without a shutdown (a process crash).
  sim.group.reset();
  sim.workers.clear();
  sim.journal.checkpoints.clear();
  const size_t before = sim.journal.deliveries.size();
  sim.PutEach(5, "second");
  sim.clock->Advance(absl::Seconds(30));  // the old leases expire
  sim.StartGroup(sim.Options());
  sim.AddWorker("a2", 0);
  // a2 first sees the old leases as just renewed (KCL): they expire failover_time later.
  for (int i = 0; i < 20; ++i) sim.Round();
  // Each shard: 20 records, checkpoint at the 16th: records 17..20 come again, then the 5 new.
  std::map<uint32_t, std::vector<std::string>> again;
  for (size_t i = before; i < sim.journal.deliveries.size(); ++i) {
    again[sim.journal.deliveries[i].shard].push_back(sim.journal.deliveries[i].data);
  }
  for (uint32_t s = 0; s < 2; ++s) {
    const std::string id = ShardId(s).ToString();
    CHECK(again[s] == std::vector<std::string>{
                          "first-" + id + "-16", "first-" + id + "-17", "first-" + id + "-18",
                          "first-" + id + "-19", "second-" + id + "-0", "second-" + id + "-1",
                          "second-" + id + "-2", "second-" + id + "-3", "second-" + id + "-4"});
  }
}

TEST_CASE("a group restarted on a file store resumes after the checkpoints it wrote",
          "[consumer_group][file_store]") {
  const std::string dir = "consumer_group_test_store";
  std::filesystem::remove_all(dir);
  Sim sim(2);
  sim.PutEach(20, "first");
  {
    auto store = FileCheckpointStore::Open(dir);
    REQUIRE(store.ok());
    sim.store = std::move(*store);
    sim.StartGroup(sim.Options());
    sim.AddWorker("a", 8);
    for (int i = 0; i < 5; ++i) sim.Round();
    REQUIRE(sim.journal.deliveries.size() == 40);
    sim.group.reset();  // the process dies: no shutdown, no release
    sim.workers.clear();
    sim.store.reset();
  }
  const size_t before = sim.journal.deliveries.size();
  // A new process opens the same directory.
  auto reopened = FileCheckpointStore::Open(dir);
  REQUIRE(reopened.ok());
  sim.store = std::move(*reopened);
  auto leases = sim.store->ListLeases("app");
  REQUIRE(leases.ok());
  REQUIRE(leases->size() == 2);
  for (const Lease& l : *leases) CHECK(l.owner == "a");
  sim.StartGroup(sim.Options());
  sim.AddWorker("b", 0);
  for (int i = 0; i < 20; ++i) sim.Round();
  std::map<uint32_t, std::vector<std::string>> again;
  for (size_t i = before; i < sim.journal.deliveries.size(); ++i) {
    again[sim.journal.deliveries[i].shard].push_back(sim.journal.deliveries[i].data);
  }
  for (uint32_t s = 0; s < 2; ++s) {
    const std::string id = ShardId(s).ToString();
    CHECK(again[s] == std::vector<std::string>{"first-" + id + "-16", "first-" + id + "-17",
                                               "first-" + id + "-18", "first-" + id + "-19"});
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("initial position LATEST skips what was put before the group started",
          "[consumer_group]") {
  Sim sim(2);
  sim.PutEach(3, "old");
  ConsumerGroupOptions o = sim.Options();
  o.initial_position = StartingPosition::Latest();
  sim.StartGroup(o);
  sim.AddWorker("a", 0);
  sim.Round();  // takes the leases and positions at LATEST
  sim.PutEach(2, "new");
  for (int i = 0; i < 3; ++i) sim.Round();
  std::set<std::string> seen;
  for (const auto& d : sim.journal.deliveries) seen.insert(d.data.substr(0, 3));
  CHECK(seen == std::set<std::string>{"new"});
  CHECK(sim.journal.deliveries.size() == 4);
}

TEST_CASE("the checkpointer enforces the KCL rule", "[consumer_group]") {
  Sim sim(1);
  sim.PutEach(3, "x");
  const std::vector<SequenceNumber> seqs = sim.ShardContents(ShardId(0));
  struct Probe : RecordProcessor {
    std::vector<SequenceNumber> seqs;
    std::vector<ErrorCode> codes;
    void Initialize(const InitializationInput&) override {}
    void ProcessRecords(const ProcessRecordsInput& in) override {
      codes.push_back(GetErrorCode(in.checkpointer.Checkpoint(seqs[1])));
      codes.push_back(GetErrorCode(in.checkpointer.Checkpoint(seqs[0])));  // below the last
      codes.push_back(GetErrorCode(
          in.checkpointer.Checkpoint(SequenceNumber(seqs[2].value() + (absl::uint128(1) << 60)))));
      codes.push_back(GetErrorCode(in.checkpointer.Checkpoint()));
      CHECK(in.checkpointer.last_checkpoint() == seqs[2].ToString());
    }
    void LeaseLost() override {}
    void ShardEnded(Checkpointer&) override {}
    void ShutdownRequested(Checkpointer&) override {}
  };
  Probe* probe = nullptr;
  sim.StartGroup(sim.Options());
  auto w = sim.group->AddWorker("a", [&](ShardId) {
    auto p = std::make_unique<Probe>();
    p->seqs = seqs;
    probe = p.get();
    return p;
  });
  REQUIRE(w.ok());
  sim.clock->Advance(absl::Seconds(1));
  REQUIRE((*w)->Poll().ok());
  REQUIRE(probe != nullptr);
  CHECK(probe->codes == std::vector<ErrorCode>{ErrorCode::kOk, ErrorCode::kInvalidArgument,
                                               ErrorCode::kInvalidArgument, ErrorCode::kOk});
}

TEST_CASE("ConsumerGroup::Create validates its options", "[consumer_group]") {
  Sim sim(1);
  const auto create = [&](const ConsumerGroupOptions& o) {
    return ConsumerGroup::Create(*sim.stream, *sim.store, o);
  };
  ConsumerGroupOptions o = sim.Options();
  o.application_name = "bad name";
  CHECK(GetErrorCode(create(o).status()) == ErrorCode::kInvalidArgument);
  o = sim.Options();
  o.initial_position = StartingPosition::AtSequenceNumber("1");
  CHECK(GetErrorCode(create(o).status()) == ErrorCode::kInvalidArgument);
  o = sim.Options();
  o.renew_interval = absl::Seconds(11);
  CHECK(GetErrorCode(create(o).status()) == ErrorCode::kInvalidArgument);
  o = sim.Options();
  auto g = create(o);
  REQUIRE(g.ok());
  CHECK(&(*g)->stream() == sim.stream.get());
  CHECK(&(*g)->store() == sim.store.get());
  auto factory = [](ShardId) { return std::unique_ptr<RecordProcessor>(); };
  CHECK((*g)->AddWorker("w", factory).ok());
  // A factory that does not take the shard id works too.
  CHECK((*g)->AddWorker("w2", [] { return std::unique_ptr<RecordProcessor>(); }).ok());
  CHECK(GetErrorCode((*g)->AddWorker("w", factory).status()) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode((*g)->AddWorker("", factory).status()) == ErrorCode::kInvalidArgument);
}

// A SimulatedClock that lets the test wait until a thread has begun to wait on it (WaitUntil):
// then the test knows a Start()ed worker is idle, without sleeping itself.
class ObservedClock final : public Clock {
 public:
  absl::Time Now() const override { return clock_.Now(); }
  void SleepFor(absl::Duration d) override { clock_.SleepFor(d); }
  bool WaitFor(absl::Duration d, internal::Waker& waker) override {
    return clock_.WaitFor(d, waker);
  }
  bool WaitUntil(absl::Time deadline, internal::Waker& waker) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++waits_;
    }
    cv_.notify_all();
    return clock_.WaitUntil(deadline, waker);
  }

  void Advance(absl::Duration d) { clock_.Advance(d); }
  // Blocks until WaitUntil has been called `n` times in all.
  void AwaitWaits(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return waits_ >= n; });
  }

 private:
  SimulatedClock clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  int waits_ = 0;
};

// What a processor on a worker's thread saw, for the test's thread.
struct Deliveries {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> data;
  bool shutdown_requested = false;

  size_t Count() {
    std::lock_guard<std::mutex> lock(mu);
    return data.size();
  }
  void AwaitCount(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return data.size() >= n; });
  }
};

class CollectingProcessor : public RecordProcessor {
 public:
  explicit CollectingProcessor(Deliveries* d) : d_(d) {}
  void Initialize(const InitializationInput&) override {}
  void ProcessRecords(const ProcessRecordsInput& input) override {
    {
      std::lock_guard<std::mutex> lock(d_->mu);
      for (const Record& r : input.records) d_->data.emplace_back(r.data);
    }
    d_->cv.notify_all();
  }
  void LeaseLost() override {}
  void ShardEnded(Checkpointer& c) override { REQUIRE(c.Checkpoint().ok()); }
  void ShutdownRequested(Checkpointer& c) override {
    REQUIRE(c.Checkpoint().ok());
    std::lock_guard<std::mutex> lock(d_->mu);
    d_->shutdown_requested = true;
  }

 private:
  Deliveries* const d_;
};

TEST_CASE(
    "a Start()ed worker on a SimulatedClock polls as the clock advances and Shutdown ends "
    "its wait",
    "[consumer_group][clock]") {
  auto clock = std::make_shared<ObservedClock>();
  auto stream = testing::MakeStream(clock, 1, "events");
  auto store = std::make_shared<InMemoryCheckpointStore>();
  ConsumerGroupOptions o;
  o.application_name = "app";
  o.initial_position = StartingPosition::TrimHorizon();
  o.idle_time_between_polls = absl::Seconds(1);
  auto group = ConsumerGroup::Create(*stream, *store, o);
  REQUIRE(group.ok());
  Deliveries d;
  auto worker =
      (*group)->AddWorker("w", [&d](ShardId) { return std::make_unique<CollectingProcessor>(&d); });
  REQUIRE(worker.ok());
  REQUIRE((*worker)->Start().ok());

  // The first poll takes the lease and finds nothing to read; then the worker sleeps on the clock.
  clock->AwaitWaits(1);
  CHECK((*worker)->held_shards() == std::vector<ShardId>{ShardId(0)});
  for (int i = 0; i < 3; ++i) testing::MustPut(*stream, "k", "r" + std::to_string(i));
  // Only the clock ends its sleep: no real time counts, and a move short of the idle time only
  // makes it look at the time again.
  clock->Advance(absl::Milliseconds(999));
  CHECK(d.Count() == 0);
  clock->Advance(absl::Milliseconds(1));
  d.AwaitCount(3);
  // It read something, so it polled again at once, found nothing, and sleeps again.
  clock->AwaitWaits(2);

  const absl::Time before = clock->Now();
  (*worker)->Shutdown();  // ends that sleep at once, without the clock moving
  CHECK(clock->Now() == before);
  std::lock_guard<std::mutex> lock(d.mu);
  CHECK(d.data == std::vector<std::string>{"r0", "r1", "r2"});
  CHECK(d.shutdown_requested);
  auto lease = store->GetLease("app", ShardId(0).ToString());
  REQUIRE(lease.ok());
  REQUIRE(lease->has_value());
  CHECK((*lease)->owner.empty());  // released
}

// Issue 14: at 1,000 shards a round must cost a few store calls, not one per lease.
TEST_CASE("1000 shards and 4 workers: every round is a few batched store calls",
          "[consumer_group][scale]") {
  Sim sim(1000);
  auto counting = std::make_unique<CountingStore>();
  CountingStore& store = *counting;
  sim.store = std::move(counting);
  ConsumerGroupOptions o = sim.Options();
  o.take_interval = absl::Milliseconds(250);  // the default
  sim.StartGroup(o);
  for (const char* id : {"w1", "w2", "w3", "w4"}) sim.AddWorker(id, 0);

  // The first poll creates the 1,000 leases in one call and takes them all in one.
  REQUIRE(sim.workers["w1"]->Poll().ok());
  CHECK(store.calls ==
        CountingStore::Calls{.list = 1, .create_batch = 1, .update_batch = 1, .batch_rows = 1000});
  CHECK(sim.workers["w1"]->held_shards().size() == 1000);
  // The others steal their share, each in one call: 500, then 333 (leaving w1 333 and w2 334),
  // then 250.
  for (const char* id : {"w2", "w3", "w4"}) REQUIRE(sim.workers[id]->Poll().ok());
  CHECK(sim.workers["w2"]->held_shards().size() == 500);
  CHECK(sim.workers["w3"]->held_shards().size() == 333);
  CHECK(sim.workers["w4"]->held_shards().size() == 250);
  CHECK(store.calls.update_batch == 4);
  CHECK(store.calls.create_batch == 1);  // the others found the leases there
  // After one renewal round everyone learnt what it lost: 250 each, every shard once.
  sim.clock->Advance(absl::Seconds(4));
  for (auto& [id, w] : sim.workers) REQUIRE(w->Poll().ok());
  std::set<ShardId> all;
  for (auto& [id, w] : sim.workers) {
    CHECK(w->held_shards().size() == 250);
    for (ShardId shard : w->held_shards()) CHECK(all.insert(shard).second);
  }
  CHECK(all.size() == 1000);
  // A steady round: per worker one read of the table (the take) and one renewal batch of its
  // 250 leases; no single-row calls at all.
  sim.clock->Advance(absl::Seconds(4));
  const CountingStore::Calls before = store.calls;
  for (auto& [id, w] : sim.workers) REQUIRE(w->Poll().ok());
  CHECK(store.calls.list - before.list == 4);
  CHECK(store.calls.update_batch - before.update_batch == 4);
  CHECK(store.calls.batch_rows - before.batch_rows == 1000);
  CHECK(store.calls.get == 0);
  CHECK(store.calls.create == 0);
  CHECK(store.calls.update == 0);
  CHECK(store.calls.remove == 0);
  // Between takes and renewals a poll does not touch the store.
  const CountingStore::Calls quiet = store.calls;
  for (auto& [id, w] : sim.workers) REQUIRE(w->Poll().ok());
  CHECK(store.calls == quiet);
}

TEST_CASE("Shutdown writes every checkpoint and release in one batch", "[consumer_group][scale]") {
  Sim sim(100);
  auto counting = std::make_unique<CountingStore>();
  CountingStore& store = *counting;
  sim.store = std::move(counting);
  sim.PutEach(3, "x");
  sim.StartGroup(sim.Options());
  sim.AddWorker("a", 0);  // checkpoints only when asked to shut down
  sim.Round();
  REQUIRE(sim.workers["a"]->held_shards().size() == 100);
  REQUIRE(sim.journal.deliveries.size() == 300);
  const CountingStore::Calls before = store.calls;
  sim.workers["a"]->Shutdown();
  CHECK(store.calls.update_batch - before.update_batch == 1);
  CHECK(store.calls.batch_rows - before.batch_rows == 100);
  CHECK(store.calls.update == before.update);
  // Each lease is free and checkpointed at its shard's last record.
  auto leases = store.ListLeases("app");
  REQUIRE(leases.ok());
  REQUIRE(leases->size() == 100);
  for (const Lease& l : *leases) {
    auto shard = ShardId::Parse(l.lease_key);
    REQUIRE(shard.ok());
    CHECK(l.owner.empty());
    CHECK(l.checkpoint == sim.ShardContents(*shard).back().ToString());
    CHECK(l.owner_switches_since_checkpoint == 0);
  }
  // A new worker resumes after those checkpoints: nothing is delivered twice.
  sim.workers.erase("a");
  sim.AddWorker("b", 0);
  sim.PutEach(1, "y");
  sim.Round();
  sim.Round();
  std::map<std::string, int> copies;
  for (const auto& d : sim.journal.deliveries) ++copies[d.data];
  CHECK(copies.size() == 400);
  for (const auto& [data, n] : copies) CHECK(n == 1);
}

TEST_CASE("two workers started together split 100 shards in one take by default",
          "[consumer_group][balance]") {
  Sim sim(100);
  ConsumerGroupOptions o = sim.Options();
  o.take_interval = ConsumerGroupOptions().take_interval;
  sim.StartGroup(o);
  sim.AddWorker("a", 0);
  sim.AddWorker("b", 0);
  sim.Round();  // a takes all 100, then b steals 50
  CHECK(sim.workers["b"]->held_shards().size() == 50);
  // a hears of it at its next renewal (renew_interval: 3,308 ms).
  for (int i = 0; i < 4; ++i) sim.Round();
  CHECK(sim.workers["a"]->held_shards().size() == 50);
  CHECK(sim.workers["b"]->held_shards().size() == 50);
}

TEST_CASE("ConsumerGroupOptions::KinesisLimits is the KCL's timing", "[consumer_group][balance]") {
  const ConsumerGroupOptions kcl = ConsumerGroupOptions::KinesisLimits();
  CHECK(kcl.take_interval == absl::ZeroDuration());  // 2 * (failover_time + 25 ms)
  CHECK(kcl.max_leases_to_steal == 1);
  CHECK(kcl.failover_time == absl::Seconds(10));
  const ConsumerGroupOptions defaults;
  CHECK(defaults.take_interval == absl::Milliseconds(250));
  CHECK(defaults.max_leases_to_steal == std::numeric_limits<int>::max());
}

TEST_CASE("KclTiming: one steal per take every 20 s", "[consumer_group][balance]") {
  Sim sim(100);
  ConsumerGroupOptions o = ConsumerGroupOptions::KclTiming();
  o.application_name = "app";
  CHECK(o.take_interval == absl::ZeroDuration());
  CHECK(o.max_leases_to_steal == 1);
  sim.StartGroup(o);
  sim.AddWorker("a", 0);
  sim.AddWorker("b", 0);
  sim.Round();
  CHECK(sim.workers["b"]->held_shards().size() == 1);
  // The next take is 2 * (10 s + 25 ms) later.
  for (int i = 0; i < 20; ++i) sim.Round();
  CHECK(sim.workers["b"]->held_shards().size() == 1);
  sim.Round();
  CHECK(sim.workers["b"]->held_shards().size() == 2);
  // max_leases_to_steal below 1 is refused.
  o.max_leases_to_steal = 0;
  CHECK(GetErrorCode(ConsumerGroup::Create(*sim.stream, *sim.store, o).status()) ==
        ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace rill
