// rill::kinesis::Client against a KinesisServer on loopback: the Kinesis operations across the
// network, and rill's readers and writers running unchanged on the client (the StreamApi seam).
#include "rill/net/kinesis_client.h"

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "catch2/catch.hpp"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/consume/shard_reader.h"
#include "rill/consume/stream_subscriber.h"
#include "rill/net/kinesis_server.h"
#include "rill/net/stream_registry.h"
#include "rill/stream/producer.h"
#include "rill/stream/stream.h"

namespace rill {
namespace {

using kinesis::Client;
using kinesis::ClientOptions;
using kinesis::HttpVersion;
using net::KinesisServer;
using net::KinesisServerOptions;
using net::StreamRegistry;
using net::StreamRegistryOptions;

constexpr const char* kKeyId = "AKIDCLIENTTEST";
constexpr const char* kSecret = "client-test-secret";

struct Endpoint {
  explicit Endpoint(StreamOptions stream_template = {}) {
    StreamRegistryOptions registry_options;
    registry_options.stream_template = std::move(stream_template);
    auto made = StreamRegistry::Create(registry_options);
    REQUIRE(made.ok());
    registry = std::shared_ptr<StreamRegistry>(std::move(*made));
    KinesisServerOptions options;
    options.credentials = {{kKeyId, kSecret}};
    auto started = KinesisServer::Start(registry, options);
    REQUIRE(started.ok());
    server = std::move(*started);
  }

  ClientOptions Options(std::string stream, HttpVersion version = HttpVersion::kHttp1_1) const {
    ClientOptions o;
    o.endpoint = server->endpoint();
    o.stream_name = std::move(stream);
    o.access_key_id = kKeyId;
    o.secret_access_key = kSecret;
    o.http_version = version;
    o.jitter_seed = 7;
    return o;
  }

  std::unique_ptr<Client> MakeStream(const std::string& name, int shards,
                                     HttpVersion version = HttpVersion::kHttp1_1) const {
    const absl::Status created = Client::CreateStream(Options(name, version), shards);
    INFO(created);
    REQUIRE(created.ok());
    auto client = Client::Create(Options(name, version));
    REQUIRE(client.ok());
    return std::move(*client);
  }

  std::shared_ptr<StreamRegistry> registry;
  std::unique_ptr<KinesisServer> server;
};

std::vector<Record> ReadAll(StreamApi& stream, ShardId shard) {
  std::vector<Record> out;
  auto it = stream.GetShardIterator(shard, StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  std::optional<ShardIterator> next = *it;
  static std::vector<RecordKeepAlive> keep;  // the views stay valid for the test's checks
  while (next) {
    auto batch = stream.GetRecords(*next, 1000);
    REQUIRE(batch.ok());
    keep.push_back(batch->storage);
    out.insert(out.end(), batch->records.begin(), batch->records.end());
    if (batch->records.empty() && batch->millis_behind_latest == 0) break;
    next = batch->next_shard_iterator;
  }
  return out;
}

TEST_CASE("the client puts and reads records on a KinesisServer over HTTP/1.1 and HTTP/2",
          "[net][client]") {
  Endpoint e;
  for (HttpVersion version : {HttpVersion::kHttp1_1, HttpVersion::kHttp2}) {
    const std::string name = version == HttpVersion::kHttp1_1 ? "h1" : "h2";
    std::unique_ptr<Client> client = e.MakeStream(name, 2, version);
    CHECK(client->name() == name);
    CHECK(client->arn() == "arn:aws:kinesis:us-east-1:000000000000:stream/" + name);

    auto put = client->PutRecord("user-1", std::string("bytes\0with nul", 14));
    REQUIRE(put.ok());
    // The in-process stream behind the server holds exactly what the client was told.
    std::shared_ptr<Stream> local = e.registry->Find(name);
    REQUIRE(local != nullptr);
    auto it = local->GetShardIterator(put->shard_id, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    auto local_batch = local->GetRecords(*it);
    REQUIRE(local_batch.ok());
    REQUIRE(local_batch->records.size() == 1);
    CHECK(local_batch->records[0].sequence_number == put->sequence_number);
    CHECK(local_batch->records[0].data == std::string_view("bytes\0with nul", 14));

    std::vector<PutRecordsEntry> entries;
    for (int i = 0; i < 500; ++i) {
      entries.push_back({"key-" + std::to_string(i), "value-" + std::to_string(i), {}});
    }
    auto batch = client->PutRecords(entries);
    REQUIRE(batch.ok());
    CHECK(batch->failed_record_count == 0);
    REQUIRE(batch->entries.size() == 500);

    // Every record back, per shard in sequence order, with the numbers PutRecords returned.
    std::map<std::string, SequenceNumber> expected;
    for (size_t i = 0; i < entries.size(); ++i) {
      expected[entries[i].partition_key] = batch->entries[i].sequence_number;
    }
    auto shards = client->ListShards();
    REQUIRE(shards.ok());
    REQUIRE(shards->size() == 2);
    size_t seen = 0;
    for (const ShardDescription& d : *shards) {
      std::vector<Record> records = ReadAll(*client, d.shard_id);
      for (size_t i = 1; i < records.size(); ++i) {
        CHECK(records[i - 1].sequence_number < records[i].sequence_number);
      }
      for (const Record& r : records) {
        if (r.partition_key == "user-1") {
          CHECK(r.sequence_number == put->sequence_number);
          CHECK(r.data == std::string_view("bytes\0with nul", 14));
          continue;
        }
        auto found = expected.find(std::string(r.partition_key));
        REQUIRE(found != expected.end());
        CHECK(found->second == r.sequence_number);
        CHECK(r.data == "value-" + std::string(r.partition_key.substr(4)));
        CHECK(r.approximate_arrival_timestamp > absl::UnixEpoch());
        ++seen;
      }
    }
    CHECK(seen == 500);

    auto summary = client->DescribeStreamSummary();
    REQUIRE(summary.ok());
    CHECK(summary->stream_name == name);
    CHECK(summary->open_shard_count == 2);
    CHECK(summary->status == StreamStatus::kActive);
    CHECK(summary->retention == absl::Hours(24));
  }
  CHECK(e.server->stats().http2_requests > 0);
}

TEST_CASE("the client reports the endpoint's errors by Kinesis name", "[net][client]") {
  Endpoint e;
  auto missing = Client::Create(e.Options("nope"));
  CHECK(GetErrorCode(missing.status()) == ErrorCode::kResourceNotFound);

  ClientOptions wrong = e.Options("nope");
  wrong.secret_access_key = "not-the-secret";
  CHECK(GetErrorCode(Client::Create(wrong).status()) == ErrorCode::kAccessDenied);

  ClientOptions unsigned_options = e.Options("nope");
  unsigned_options.access_key_id.clear();
  CHECK(GetErrorCode(Client::Create(unsigned_options).status()) == ErrorCode::kInvalidArgument);
  unsigned_options.sign_requests = false;
  CHECK(GetErrorCode(Client::Create(unsigned_options).status()) == ErrorCode::kAccessDenied);

  ClientOptions bad_url = e.Options("s");
  bad_url.endpoint = "ftp://127.0.0.1:1";
  CHECK(GetErrorCode(Client::Create(bad_url).status()) == ErrorCode::kInvalidArgument);

  std::unique_ptr<Client> client = e.MakeStream("s", 1);
  CHECK(GetErrorCode(client->PutRecord("", "x").status()) == ErrorCode::kValidation);
  CHECK(
      GetErrorCode(client->GetShardIterator("shardId-000000000009", StartingPosition::TrimHorizon())
                       .status()) == ErrorCode::kResourceNotFound);
  // An iterator of an in-process stream means nothing to an endpoint, and the other way round.
  StreamOptions local_options;
  local_options.name = "local";
  auto local = Stream::Create(local_options);
  REQUIRE(local.ok());
  auto local_it = (*local)->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(local_it.ok());
  CHECK(GetErrorCode(client->GetRecords(*local_it).status()) == ErrorCode::kInvalidArgument);
  auto remote_it = client->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(remote_it.ok());
  CHECK(remote_it->is_remote());
  CHECK(GetErrorCode((*local)->GetRecords(*remote_it).status()) == ErrorCode::kInvalidArgument);

  CHECK(GetErrorCode(client->IncreaseStreamRetentionPeriod(absl::Minutes(90))) ==
        ErrorCode::kInvalidArgument);
  CHECK(client->IncreaseStreamRetentionPeriod(absl::Hours(48)).ok());
  CHECK(client->DescribeStreamSummary()->retention == absl::Hours(48));
  // The endpoint's refusals; the calls refused before sending are not counted.
  CHECK(client->stats().errors == 2);
}

TEST_CASE("the client retries throttling with backoff on its clock and gives up after max_attempts",
          "[net][client]") {
  auto clock = std::make_shared<SimulatedClock>(absl::FromUnixSeconds(1700000000));
  StreamOptions stream_template;
  stream_template.clock = clock;
  stream_template.shard_limits.write_records_per_second = 2;
  Endpoint e(stream_template);
  ClientOptions options = e.Options("throttled");
  options.clock = clock;  // the backoff moves the simulated clock, which refills the bucket
  options.max_attempts = 10;
  REQUIRE(Client::CreateStream(options, 1).ok());
  auto client = Client::Create(options);
  REQUIRE(client.ok());
  for (int i = 0; i < 6; ++i) {
    auto put = (*client)->PutRecord("k", "v" + std::to_string(i));
    REQUIRE(put.ok());
  }
  CHECK((*client)->stats().retries > 0);
  CHECK(e.registry->Find("throttled")->metrics().incoming_records == 6);

  // One attempt only: the throttling comes back as is.
  options.max_attempts = 1;
  auto once = Client::Create(options);
  REQUIRE(once.ok());
  absl::Status last;
  for (int i = 0; i < 5 && last.ok(); ++i) last = (*once)->PutRecord("k", "x").status();
  CHECK(GetErrorCode(last) == ErrorCode::kProvisionedThroughputExceeded);
  CHECK((*once)->stats().retries == 0);
}

TEST_CASE("a connection that fails is retried then reported as kInternalFailure", "[net][client]") {
  auto clock = std::make_shared<SimulatedClock>(absl::FromUnixSeconds(1700000000));
  ClientOptions options;
  // A port nothing listens on: a server started and stopped leaves one behind.
  {
    Endpoint e;
    options = e.Options("gone");
  }
  options.clock = clock;
  options.max_attempts = 4;
  const absl::Time before = clock->Now();
  auto client = Client::Create(options);
  CHECK(GetErrorCode(client.status()) == ErrorCode::kInternalFailure);
  // Three backoffs, each at most base * 2^n: on the simulated clock, not in real time.
  CHECK(clock->Now() - before <= absl::Milliseconds(100 + 200 + 400));
}

TEST_CASE("resharding paging and child shards are followed across the network", "[net][client]") {
  Endpoint e;
  std::unique_ptr<Client> client = e.MakeStream("r", 4);
  ListShardsRequest request;
  request.max_results = 3;
  auto first = client->ListShards(request);
  REQUIRE(first.ok());
  CHECK(first->shards.size() == 3);
  REQUIRE(first->next_token.has_value());
  ListShardsRequest next;
  next.next_token = first->next_token;
  auto second = client->ListShards(next);
  REQUIRE(second.ok());
  REQUIRE(second->shards.size() == 1);
  CHECK(second->shards[0].shard_id == ShardId(3));

  PutOptions low;
  low.explicit_hash_key = HashKey(5);
  REQUIRE(client->PutRecord("before", "1", low).ok());
  REQUIRE(
      client->SplitShard(ShardId(0), HashKey(absl::MakeUint128(0x2000000000000000ULL, 0))).ok());
  auto shards = client->ListShards();
  REQUIRE(shards.ok());
  REQUIRE(shards->size() == 6);
  CHECK((*shards)[0].closed());
  CHECK((*shards)[4].parent_shard_id == ShardId(0));
  CHECK((*shards)[5].parent_shard_id == ShardId(0));

  // Reading the closed parent to its end names the children and gives no next iterator.
  auto it = client->GetShardIterator(ShardId(0), StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  auto batch = client->GetRecords(*it);
  REQUIRE(batch.ok());
  REQUIRE(batch->records.size() == 1);
  CHECK(batch->records[0].partition_key == "before");
  CHECK_FALSE(batch->next_shard_iterator.has_value());
  REQUIRE(batch->child_shards.size() == 2);
  CHECK(batch->child_shards[0].shard_id == ShardId(4));
  CHECK(batch->child_shards[0].parent_shards == std::vector<ShardId>{ShardId(0)});

  REQUIRE(client->MergeShards(ShardId(4), ShardId(5)).ok());
  auto merged = client->ListShards();
  REQUIRE(merged.ok());
  REQUIRE(merged->size() == 7);
  CHECK(merged->back().shard_id == ShardId(6));
  CHECK(merged->back().parent_shard_id == ShardId(4));
  CHECK(merged->back().adjacent_parent_shard_id == ShardId(5));
}

TEST_CASE("Producer ShardReader and ConsumerGroup run unchanged on a Client", "[net][client]") {
  Endpoint e;
  std::unique_ptr<Client> client = e.MakeStream("seam", 3);
  StreamApi& stream = *client;  // the one line an application changes

  auto producer = Producer::Create(stream);
  REQUIRE(producer.ok());
  for (int i = 0; i < 300; ++i) {
    (*producer)->Put("player-" + std::to_string(i % 7), std::to_string(i),
                     [](const absl::StatusOr<PutRecordResult>& r) { CHECK(r.ok()); });
  }
  (*producer)->Flush();
  CHECK((*producer)->stats().user_records_written == 300);

  // Per key, the order of the puts.
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

  // A consumer group: every record once, checkpointed through the network's sequence numbers.
  InMemoryCheckpointStore store;
  ConsumerGroupOptions options;
  options.application_name = "app";
  options.initial_position = StartingPosition::TrimHorizon();
  auto group = ConsumerGroup::Create(stream, store, options);
  REQUIRE(group.ok());
  struct Counter final : RecordProcessor {
    explicit Counter(std::atomic<int>* n) : n_(n) {}
    void Initialize(const InitializationInput&) override {}
    void ProcessRecords(const ProcessRecordsInput& input) override {
      *n_ += static_cast<int>(input.records.size());
      (void)input.checkpointer.Checkpoint();
    }
    void LeaseLost() override {}
    void ShardEnded(Checkpointer& c) override { (void)c.Checkpoint(); }
    void ShutdownRequested(Checkpointer& c) override { (void)c.Checkpoint(); }
    std::atomic<int>* n_;
  };
  std::atomic<int> processed{0};
  auto worker =
      (*group)->AddWorker("w1", [&](ShardId) { return std::make_unique<Counter>(&processed); });
  REQUIRE(worker.ok());
  for (int round = 0; round < 20 && processed.load() < 300; ++round) {
    REQUIRE((*worker)->Poll().ok());
  }
  CHECK(processed.load() == 300);
  (*worker)->Shutdown();
  auto leases = store.ListLeases("app");
  REQUIRE(leases.ok());
  CHECK(leases->size() == 3);
}

TEST_CASE("StreamSubscriber receives records over a Client's SubscribeToShard", "[net][client]") {
  Endpoint e;
  for (HttpVersion version : {HttpVersion::kHttp1_1, HttpVersion::kHttp2}) {
    const std::string name = version == HttpVersion::kHttp1_1 ? "fan1" : "fan2";
    std::unique_ptr<Client> client = e.MakeStream(name, 2, version);
    auto consumer = client->RegisterStreamConsumer("dash");
    REQUIRE(consumer.ok());
    CHECK(consumer->name == "dash");
    auto described = client->DescribeStreamConsumer("dash");
    REQUIRE(described.ok());
    CHECK(described->id == consumer->id);
    auto listed = client->ListStreamConsumers();
    REQUIRE(listed.ok());
    REQUIRE(listed->size() == 1);

    for (int i = 0; i < 40; ++i) {
      REQUIRE(client->PutRecord("k" + std::to_string(i), "v" + std::to_string(i)).ok());
    }
    StreamSubscriberOptions options;
    options.consumer_name = "dash";
    options.initial_position = StartingPosition::TrimHorizon();
    auto subscriber = StreamSubscriber::Create(*client, options);
    REQUIRE(subscriber.ok());
    std::set<std::string> got;
    // Real time: the events cross a socket. Bounded, and done as soon as all 40 arrived.
    for (int i = 0; i < 200 && got.size() < 40; ++i) {
      auto event = (*subscriber)->Next(absl::Milliseconds(100));
      INFO(event.status());
      REQUIRE(event.ok());
      if (!*event) continue;
      for (const Record& r : (*event)->event.records) got.insert(std::string(r.partition_key));
    }
    CHECK(got.size() == 40);

    // Unknown consumers are the endpoint's kResourceNotFound.
    CHECK(GetErrorCode(client->SubscribeToShard("nobody", ShardId(0), StartingPosition::Latest())
                           .status()) == ErrorCode::kResourceNotFound);
    REQUIRE(client->DeregisterStreamConsumer("dash").ok());
  }
}

}  // namespace
}  // namespace rill
