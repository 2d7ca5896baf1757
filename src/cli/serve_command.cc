// rill serve: durable streams on the Kinesis wire API (rill::net::KinesisServer) until SIGINT or
// SIGTERM.
#include <iostream>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/common.h"

#ifdef RILL_CLI_NET
#include "rill/net/kinesis_server.h"
#include "rill/net/stream_registry.h"
#endif

namespace rill::cli {

#ifdef RILL_CLI_NET

int RunServe(const ServeOptions& options) {
  if (!options.no_auth && options.access_key.empty()) {
    return Report(Failure(kExitUsage,
                          "give the key clients sign with (--access-key ID --secret-key "
                          "SECRET), or --no-auth to accept unsigned requests"));
  }
  absl::StatusOr<std::unique_ptr<net::StreamRegistry>> registry =
      net::StreamRegistry::Create(net::StreamRegistryOptions{});
  if (!registry.ok()) return Report(registry.status());
  std::shared_ptr<net::StreamRegistry> shared = *std::move(registry);
  for (const std::string& dir : options.dirs) {
    absl::StatusOr<std::unique_ptr<Stream>> stream = OpenStream(dir, Access::kReadWrite);
    if (!stream.ok()) return Report(stream.status());
    const std::string name = (*stream)->name();
    if (absl::Status s = shared->Adopt(*std::move(stream)); !s.ok()) {
      return Report(Failure(kExitUsage, absl::StrFormat("cannot serve %s: %s (two directories "
                                                        "hold streams of the same name)",
                                                        dir, s.message())));
    }
  }
  net::KinesisServerOptions server_options;
  server_options.host = options.host;
  server_options.port = static_cast<uint16_t>(options.port);
  server_options.allow_unauthenticated = options.no_auth;
  if (!options.access_key.empty()) {
    server_options.credentials.push_back(net::ServerCredentials{
        .access_key_id = options.access_key, .secret_access_key = options.secret_key});
  }
  StopSignals signals;
  absl::StatusOr<std::unique_ptr<net::KinesisServer>> server =
      net::KinesisServer::Start(shared, server_options);
  if (!server.ok()) return Report(Failure(kExitError, server.status().message()));
  std::cout << absl::StrFormat("serving %d stream%s on %s (region %s)\n", options.dirs.size(),
                               options.dirs.size() == 1 ? "" : "s", (*server)->endpoint(),
                               shared->region());
  for (const auto& stream : shared->List()) std::cout << "  " << stream->name() << "\n";
  std::cout << "Ctrl-C or SIGTERM stops.\n";
  std::cout.flush();
  while (!signals.Sleep(absl::Hours(1))) {
  }
  (*server)->Stop();
  int code = kExitOk;
  for (const auto& stream : shared->List()) {
    if (absl::Status s = stream->Flush(); !s.ok()) code = Report(Failure(kExitError, s.message()));
  }
  std::cout << "stopped\n";
  return code;
}

#else

int RunServe(const ServeOptions&) {
  return Report(Failure(kExitError,
                        "this rill was built without rill::net (RILL_BUILD_NET=OFF), so it "
                        "cannot serve the Kinesis API"));
}

#endif

}  // namespace rill::cli
