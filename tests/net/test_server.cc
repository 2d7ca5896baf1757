// A KinesisServer for the scripted tests with real clients (the AWS CLI, the JavaScript SDK):
//   net_test_server [--dir DIR] [--port N] [--tls CERT KEY] [--key ID SECRET] [--open]
// Serves in-memory streams (or durable ones under DIR) on 127.0.0.1, prints "PORT <n>" on
// stdout once it listens, and serves until its standard input closes (so a script that dies
// takes the server with it). --key adds credentials (default AKIDRILLTEST / rill-test-secret);
// --open accepts unsigned requests.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "rill/net/kinesis_server.h"
#include "rill/net/stream_registry.h"

int main(int argc, char** argv) {
  rill::net::StreamRegistryOptions registry_options;
  rill::net::KinesisServerOptions options;
  bool own_key = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--dir" && i + 1 < argc) {
      registry_options.root_directory = argv[++i];
    } else if (arg == "--port" && i + 1 < argc) {
      options.port = static_cast<uint16_t>(std::atoi(argv[++i]));
    } else if (arg == "--tls" && i + 2 < argc) {
      options.tls_certificate_chain_file = argv[++i];
      options.tls_private_key_file = argv[++i];
    } else if (arg == "--key" && i + 2 < argc) {
      options.credentials.push_back({argv[i + 1], argv[i + 2]});
      own_key = true;
      i += 2;
    } else if (arg == "--open") {
      options.allow_unauthenticated = true;
    } else {
      std::cerr << "usage: " << argv[0]
                << " [--dir DIR] [--port N] [--tls CERT KEY] [--key ID SECRET] [--open]\n";
      return 2;
    }
  }
  if (!own_key) options.credentials.push_back({"AKIDRILLTEST", "rill-test-secret"});
  auto registry = rill::net::StreamRegistry::Create(registry_options);
  if (!registry.ok()) {
    std::cerr << registry.status() << "\n";
    return 1;
  }
  auto server = rill::net::KinesisServer::Start(std::move(*registry), options);
  if (!server.ok()) {
    std::cerr << server.status() << "\n";
    return 1;
  }
  std::cout << "PORT " << (*server)->port() << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  (*server)->Stop();
  return 0;
}
