// Two workers on their own threads consume while producers put and leases move: every record is
// delivered at least once, and each worker sees each shard in order. Run it under
// ThreadSanitizer with `scripts/test.sh tsan`.
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/stream/stream.h"

namespace rill {
namespace {

struct Seen {
  std::mutex mu;
  std::set<std::string> distinct;
  int64_t deliveries = 0;
};

class Counting : public RecordProcessor {
 public:
  explicit Counting(Seen* seen) : seen_(seen) {}
  void Initialize(const InitializationInput&) override {}
  void ProcessRecords(const ProcessRecordsInput& in) override {
    std::lock_guard<std::mutex> lock(seen_->mu);
    for (const Record& r : in.records) {
      // In order within what this processor sees of its shard.
      if (last_) CHECK(r.sequence_number > *last_);
      last_ = r.sequence_number;
      seen_->distinct.insert(std::string(r.data));
      ++seen_->deliveries;
    }
    if (++batches_ % 3 == 0) in.checkpointer.Checkpoint().IgnoreError();
  }
  void LeaseLost() override {}
  void ShardEnded(Checkpointer& c) override { c.Checkpoint().IgnoreError(); }
  void ShutdownRequested(Checkpointer& c) override { c.Checkpoint().IgnoreError(); }

 private:
  Seen* seen_;
  std::optional<SequenceNumber> last_;
  int batches_ = 0;
};

TEST_CASE("two threaded workers consume everything while producers put",
          "[stress][consumer_group]") {
  StreamOptions options;
  options.name = "group-stress";
  options.shard_count = 4;
  auto stream = Stream::Create(options);
  REQUIRE(stream.ok());
  InMemoryCheckpointStore store;
  ConsumerGroupOptions g;
  g.application_name = "stress";
  g.initial_position = StartingPosition::TrimHorizon();
  g.failover_time = absl::Milliseconds(300);
  g.renew_interval = absl::Milliseconds(50);
  g.take_interval = absl::Milliseconds(20);
  g.max_records = 100;
  auto group = ConsumerGroup::Create(**stream, store, g);
  REQUIRE(group.ok());
  Seen seen;
  std::vector<Worker*> workers;
  for (const char* id : {"w1", "w2"}) {
    auto w =
        (*group)->AddWorker(id, [&seen](ShardId) { return std::make_unique<Counting>(&seen); });
    REQUIRE(w.ok());
    REQUIRE((*w)->Start().ok());
    workers.push_back(*w);
  }
  constexpr int kRecords = 20000;
  std::thread producer([&] {
    for (int i = 0; i < kRecords; ++i) {
      REQUIRE((*stream)->PutRecord("key-" + std::to_string(i % 97), std::to_string(i)).ok());
      if (i == kRecords / 2) {
        REQUIRE((*stream)
                    ->SplitShard(ShardId(2), HashKey(absl::MakeUint128(uint64_t{9} << 60, 0)))
                    .ok());
      }
    }
  });
  producer.join();
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(seen.mu);
      if (seen.distinct.size() == kRecords) break;
    }
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(60)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (Worker* w : workers) w->Shutdown();
  std::lock_guard<std::mutex> lock(seen.mu);
  CHECK(seen.distinct.size() == kRecords);
  CHECK(seen.deliveries >= kRecords);
}

}  // namespace
}  // namespace rill
