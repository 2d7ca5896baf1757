// A rill stream on the Kinesis wire API: serve a durable stream, feed it from the AWS CLI, read
// it back with rill::kinesis::Client.
//
//   example_10_kinesis_endpoint serve DIR [PORT]      serves DIR's durable streams on 127.0.0.1
//                                                     (creates the stream "events" in it)
//   aws kinesis put-record --endpoint-url http://127.0.0.1:4567 --stream-name events
//       --partition-key sensor-1 --data "hello from the CLI" --cli-binary-format raw-in-base64-out
//   example_10_kinesis_endpoint read ENDPOINT         reads "events" from every shard
//
// The CLI signs with AWS_ACCESS_KEY_ID=AKIDEXAMPLE, AWS_SECRET_ACCESS_KEY=example-secret and
// AWS_DEFAULT_REGION=us-east-1 (the credentials below). Without arguments the example does all
// three in one process: it serves a durable stream in a temporary directory, writes to it with a
// client (standing in for the CLI), reads it back, then reopens the directory to show that the
// records survived.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include <unistd.h>

#include "rill/base/error.h"
#include "rill/net/kinesis_client.h"
#include "rill/net/kinesis_server.h"
#include "rill/net/stream_registry.h"
#include "rill/stream/stream_api.h"

namespace {

constexpr const char* kKeyId = "AKIDEXAMPLE";
constexpr const char* kSecret = "example-secret";
constexpr const char* kStream = "events";

absl::StatusOr<std::unique_ptr<rill::net::KinesisServer>> Serve(const std::string& dir,
                                                                uint16_t port) {
  rill::net::StreamRegistryOptions registry_options;
  registry_options.root_directory = dir;  // durable: every stream in DIR/<name>
  auto registry = rill::net::StreamRegistry::Create(registry_options);
  if (!registry.ok()) return registry.status();
  if ((*registry)->Find(kStream) == nullptr) {
    rill::net::CreateStreamRequest request;
    request.name = kStream;
    request.shard_count = 2;
    if (auto made = (*registry)->CreateStream(request); !made.ok()) return made.status();
  }
  rill::net::KinesisServerOptions options;
  options.port = port;
  options.credentials = {{kKeyId, kSecret}};
  return rill::net::KinesisServer::Start(std::move(*registry), options);
}

rill::kinesis::ClientOptions ClientFor(const std::string& endpoint) {
  rill::kinesis::ClientOptions options;
  options.endpoint = endpoint;
  options.stream_name = kStream;
  options.access_key_id = kKeyId;
  options.secret_access_key = kSecret;
  return options;
}

// Everything in the stream, shard by shard. Works on any rill::StreamApi.
absl::Status PrintAll(rill::StreamApi& stream, int* count) {
  auto shards = stream.ListShards();
  if (!shards.ok()) return shards.status();
  for (const rill::ShardDescription& shard : *shards) {
    auto it = stream.GetShardIterator(shard.shard_id, rill::StartingPosition::TrimHorizon());
    if (!it.ok()) return it.status();
    std::optional<rill::ShardIterator> next = *it;
    while (next) {
      auto batch = stream.GetRecords(*next);
      if (!batch.ok()) return batch.status();
      for (const rill::Record& r : batch->records) {
        std::cout << shard.shard_id << " " << r.sequence_number << " " << r.partition_key << " "
                  << r.data << "\n";
        ++*count;
      }
      if (batch->records.empty() && batch->millis_behind_latest == 0) break;
      next = batch->next_shard_iterator;
    }
  }
  return absl::OkStatus();
}

int Fail(const absl::Status& status) {
  std::cerr << status << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "serve" && argc >= 3) {
    auto server = Serve(argv[2], static_cast<uint16_t>(argc > 3 ? std::atoi(argv[3]) : 4567));
    if (!server.ok()) return Fail(server.status());
    std::cout << "serving stream \"" << kStream << "\" at " << (*server)->endpoint()
              << " (Ctrl-D or Ctrl-C to stop)" << std::endl;
    std::string line;
    while (std::getline(std::cin, line)) {
    }
    return 0;
  }
  if (mode == "read" && argc >= 3) {
    auto client = rill::kinesis::Client::Create(ClientFor(argv[2]));
    if (!client.ok()) return Fail(client.status());
    int count = 0;
    if (absl::Status s = PrintAll(**client, &count); !s.ok()) return Fail(s);
    std::cout << count << " records\n";
    return 0;
  }
  if (!mode.empty()) {
    std::cerr << "usage: " << argv[0] << " [serve DIR [PORT] | read ENDPOINT]\n";
    return 2;
  }

  // The whole tour in one process, on a free port.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("rill-example-10-" + std::to_string(::getpid()));
  int count = 0;
  for (int run = 0; run < 2; ++run) {
    auto server = Serve(dir.string(), 0);
    if (!server.ok()) return Fail(server.status());
    auto client = rill::kinesis::Client::Create(ClientFor((*server)->endpoint()));
    if (!client.ok()) return Fail(client.status());
    if (run == 0) {
      for (int i = 0; i < 5; ++i) {
        auto put =
            (*client)->PutRecord("sensor-" + std::to_string(i), "reading " + std::to_string(i));
        if (!put.ok()) return Fail(put.status());
      }
      std::cout << "wrote 5 records through " << (*server)->endpoint() << "\n";
    } else {
      std::cout << "after a restart, read back:\n";
      if (absl::Status s = PrintAll(**client, &count); !s.ok()) return Fail(s);
    }
  }
  std::filesystem::remove_all(dir);
  if (count != 5) {
    std::cerr << "expected 5 records after the restart, read " << count << "\n";
    return 1;
  }
  return 0;
}
