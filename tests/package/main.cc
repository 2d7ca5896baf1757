// Puts and reads one record through rill as an outside project uses it
// (tests/package/CMakeLists.txt: an installed rill found with find_package, or rill's source tree
// added with add_subdirectory).
#include <unistd.h>

#include <iostream>

#include "rill/rill.h"
#if RILL_PACKAGE_HAS_NET
#include "rill/net/kinesis_client.h"
#include "rill/net/kinesis_server.h"
#include "rill/net/stream_registry.h"
#endif
#if RILL_PACKAGE_HAS_KAFKA
#include "rill/kafka/mock_cluster.h"
#include "rill/kafka/stream.h"
#endif
#if RILL_PACKAGE_HAS_DELIVER
#include <filesystem>

#include "rill/deliver/delivery_stream.h"
#endif
#if RILL_PACKAGE_HAS_SQL
#include "rill/sql/application.h"
#endif

int main() {
  rill::StreamOptions options;
  options.name = "package-check";
  auto stream = rill::Stream::Create(options);
  if (!stream.ok()) {
    std::cerr << stream.status() << "\n";
    return 1;
  }
  auto put = (*stream)->PutRecord("key", "value");
  if (!put.ok()) return 1;
  auto it = (*stream)->GetShardIterator(put->shard_id, rill::StartingPosition::TrimHorizon());
  if (!it.ok()) return 1;
  auto batch = (*stream)->GetRecords(*it);
  if (!batch.ok() || batch->records.size() != 1 || batch->records[0].data != "value") return 1;
#if RILL_PACKAGE_HAS_NET
  // The same through the wire API: a server on a free loopback port and a client of it.
  auto registry = rill::net::StreamRegistry::Create({});
  if (!registry.ok()) return 1;
  rill::net::KinesisServerOptions server_options;
  server_options.credentials = {{"AKIDPACKAGE", "package-secret"}};
  auto server = rill::net::KinesisServer::Start(std::move(*registry), server_options);
  if (!server.ok()) return 1;
  rill::kinesis::ClientOptions client_options;
  client_options.endpoint = (*server)->endpoint();
  client_options.stream_name = "package-check";
  client_options.access_key_id = "AKIDPACKAGE";
  client_options.secret_access_key = "package-secret";
  if (!rill::kinesis::Client::CreateStream(client_options, 1).ok()) return 1;
  auto client = rill::kinesis::Client::Create(client_options);
  if (!client.ok()) return 1;
  auto remote = (*client)->PutRecord("key", "over the wire");
  if (!remote.ok()) return 1;
  std::cout << "rill::net package check: OK\n";
#endif
#if RILL_PACKAGE_HAS_KAFKA
  // The same on Kafka: librdkafka's mock cluster in this process, and a stream on a topic of it.
  auto cluster = rill::kafka::MockCluster::Create(1);
  if (!cluster.ok() || !(*cluster)->CreateTopic("package-check", 2, 1).ok()) return 1;
  rill::kafka::StreamOptions kafka_options;
  kafka_options.topic = "package-check";
  kafka_options.properties = {{"bootstrap.servers", (*cluster)->bootstrap_servers()}};
  auto kafka = rill::kafka::Stream::Open(kafka_options);
  if (!kafka.ok()) return 1;
  if (!(*kafka)->PutRecord("key", "on kafka").ok()) return 1;
  kafka->reset();
  std::cout << "rill::kafka package check: OK\n";
#endif
#if RILL_PACKAGE_HAS_DELIVER
  // A delivery stream to gzip objects in a temporary directory.
  const std::filesystem::path bucket =
      std::filesystem::temp_directory_path() / ("rill-package-check-" + std::to_string(getpid()));
  {
    rill::DeliveryStreamOptions delivery;
    delivery.name = "package-check";
    rill::ObjectStoreDestination files;
    files.directory = bucket.string();
    files.compression = rill::CompressionFormat::kGzip;
    delivery.destination = files;
    auto firehose = rill::DeliveryStream::Create(delivery);
    if (!firehose.ok()) {
      std::cerr << firehose.status() << "\n";
      return 1;
    }
    if (!(*firehose)->PutRecord("delivered").ok() || !(*firehose)->Close().ok()) return 1;
    if ((*firehose)->metrics().delivery_records != 1) return 1;
  }
  std::filesystem::remove_all(bucket);
  std::cout << "rill::deliver package check: OK\n";
#endif
#if RILL_PACKAGE_HAS_SQL
  {
    // The README's streaming SQL example: purchases per level per 5 minutes.
    rill::SimulatedClock clock;
    rill::StreamOptions game_options;
    game_options.name = "game";
    game_options.clock = std::shared_ptr<rill::Clock>(&clock, [](rill::Clock*) {});
    auto game = rill::Stream::Create(game_options);
    if (!game.ok() || !(*game)->RegisterStreamConsumer("sql").ok()) return 1;
    rill::StreamSubscriberOptions subscriber_options;
    subscriber_options.consumer_name = "sql";
    subscriber_options.initial_position = rill::StartingPosition::TrimHorizon();
    rill::sql::ApplicationOptions options;
    options.sql = R"(
      CREATE OR REPLACE STREAM "PER_LEVEL" (win_start TIMESTAMP, lvl INTEGER, purchases BIGINT);
      CREATE OR REPLACE PUMP "COUNT_PUMP" AS INSERT INTO "PER_LEVEL"
        SELECT STREAM STEP(s.ROWTIME BY INTERVAL '5' MINUTE), s.lvl, COUNT(*)
        FROM SOURCE_SQL_STREAM_001 AS s WHERE s.kind = 'purchase'
        GROUP BY s.lvl, STEP(s.ROWTIME BY INTERVAL '5' MINUTE);)";
    rill::sql::Input input;
    input.format.columns = {{"KIND", {rill::sql::SqlType::kVarchar, 16, 0, 0}, "$.kind"},
                            {"LVL", {rill::sql::SqlType::kInteger, 0, 0, 0}, "$.level"}};
    input.source = rill::sql::FromSubscription(**game, subscriber_options);
    options.inputs.push_back(std::move(input));
    int64_t purchases = 0;
    rill::sql::Output out;
    out.stream = "PER_LEVEL";
    out.callback = [&purchases](const rill::sql::OutputRow& r) {
      purchases += r.row.values[2].i;
      return absl::OkStatus();
    };
    options.outputs.push_back(std::move(out));
    options.clock = &clock;
    auto app = rill::sql::Application::Create(std::move(options));
    if (!app.ok()) {
      std::cerr << app.status() << "\n";
      return 1;
    }
    for (const char* json : {R"({"kind":"purchase","level":3})", R"({"kind":"login","level":3})",
                             R"({"kind":"purchase","level":4})"}) {
      if (!(*game)->PutRecord("player", json).ok()) return 1;
    }
    if (!(*app)->Poll().ok()) return 1;
    clock.Advance(absl::Minutes(6));
    if (!(*app)->Poll().ok() || purchases != 2) return 1;
  }
  std::cout << "rill::sql package check: OK\n";
#endif
  std::cout << "rill " << RILL_VERSION_STRING << " package check: OK\n";
  return 0;
}
