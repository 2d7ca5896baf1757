// KinesisServer: rill's streams on the Kinesis wire API, for the AWS CLI, the AWS SDKs and any
// other Kinesis client.
//
// The server answers the Kinesis JSON 1.1 protocol (POST, X-Amz-Target: Kinesis_20131202.<Op>,
// Content-Type: application/x-amz-json-1.1) over HTTP/1.1 and HTTP/2 (h2c with prior knowledge
// on a plain port, as the AWS SDK for JavaScript v3 connects; h2 by ALPN over TLS), for the
// streams of a StreamRegistry. SubscribeToShard answers with an application/vnd.amazon.eventstream
// body: an initial-response event, then SubscribeToShardEvent events as records arrive (and
// heartbeats), until the subscription's lifetime ends, the shard ends or the client goes away. As
// on Kinesis, it is served over HTTP/2 only (over HTTP/1.1 it is InvalidArgumentException).
//
// Example:
//   std::shared_ptr<rill::net::StreamRegistry> registry =
//       *rill::net::StreamRegistry::Create({});                      // in-memory streams
//   rill::net::KinesisServerOptions options;
//   options.port = 4567;
//   options.credentials = {{"AKIDEXAMPLE", "secret"}};
//   auto server = rill::net::KinesisServer::Start(registry, options);
//   if (!server.ok()) return server.status();
//   // aws kinesis list-streams --endpoint-url http://127.0.0.1:4567
//
// Security: every request must carry a valid AWS Signature Version 4 made with one of
// `credentials` (unsigned: MissingAuthenticationTokenException; malformed:
// IncompleteSignatureException; unknown key: UnrecognizedClientException; wrong signature or a
// clock skew over max_clock_skew: InvalidSignatureException), unless allow_unauthenticated is set
// explicitly. The server binds 127.0.0.1 by default; TLS is on when a certificate and key are
// given.
//
// Resources: io_threads threads serve every connection (Asio); requests run on them, so a
// durable stream's kEveryBatch sync holds one thread while it waits. One more thread wakes
// subscriptions' streams when records arrive. Requests, headers, idle connections and slow
// senders are bounded by the options below.
//
// Thread safety: Start, port, endpoint and stats may be called from any thread; Stop and the
// destructor from any one thread. The server shares the registry.
#ifndef RILL_NET_KINESIS_SERVER_H_
#define RILL_NET_KINESIS_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rill::net {

class StreamRegistry;

// An access key the server accepts (AWS' access key id and secret access key).
struct ServerCredentials {
  std::string access_key_id;
  std::string secret_access_key;
};

struct KinesisServerOptions {
  // Address and port to listen on. Port 0 takes a free port (see KinesisServer::port()).
  // Default: 127.0.0.1, port 0.
  std::string host = "127.0.0.1";
  uint16_t port = 0;

  // Threads serving connections. Range: 1..256. Default: 2.
  int io_threads = 2;

  // The keys requests may be signed with (SigV4, service "kinesis", the registry's region).
  // At least one is needed unless allow_unauthenticated is set (kInvalidArgument otherwise).
  std::vector<ServerCredentials> credentials;
  // Accept requests without checking their signature. Off by default; turning it on is the only
  // way to serve without credentials.
  bool allow_unauthenticated = false;
  // How far a request's X-Amz-Date may be from the server's clock, either way (AWS: 5 minutes).
  // Judged on the system clock. Default: 5 minutes.
  absl::Duration max_clock_skew = absl::Minutes(5);

  // TLS: PEM files of the certificate chain and its private key. Both empty: plain TCP. One
  // without the other, or a file that does not load, is kInvalidArgument. ALPN offers h2 and
  // http/1.1. Default: empty.
  std::string tls_certificate_chain_file;
  std::string tls_private_key_file;

  // Largest request body. A larger one is answered with 413 and the connection closed. Kinesis'
  // largest request (PutRecords: 500 records, 5 MiB of data, base64) fits in 7 MiB, kinesalite's
  // limit. Default: 7 MiB.
  size_t max_request_bytes = size_t{7} << 20;
  // Largest request header block (all header names and values). A larger one is answered with
  // 431 (HTTP/1.1) or refused (HTTP/2). Default: 16 KiB.
  size_t max_header_bytes = size_t{16} << 10;
  // A connection with no request in progress and no open subscription is closed after this long
  // without a byte from the client; a request must arrive in full within it too (slow senders).
  // Real time. Default: 60 s.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Most connections open at once; more are closed as soon as they are accepted. Each holds a
  // read buffer: 64 KiB for HTTP/1.1, 16 KiB for HTTP/2 (64 MiB at 1,024 connections), plus the
  // request and response in progress. Default: 1,024.
  int max_connections = 1024;
  // Most SubscribeToShard responses streaming at once; more are answered with
  // LimitExceededException. Default: 1,024.
  int max_subscriptions = 1024;
};

// Counters since Start, for tests and dashboards.
struct KinesisServerStats {
  int64_t connections_accepted = 0;
  int64_t connections_refused = 0;  // over max_connections
  int64_t requests = 0;             // complete requests answered (subscriptions included)
  int64_t error_responses = 0;      // answered with a 4xx or 5xx status
  int64_t http2_requests = 0;       // of `requests`, over HTTP/2
  int64_t subscriptions_started = 0;
  int64_t subscription_events = 0;  // SubscribeToShardEvent events sent
  int open_connections = 0;
  int open_subscriptions = 0;
};

class KinesisServer {
 public:
  // Binds, listens and starts the threads. Errors: kInvalidArgument for an option out of range,
  // missing credentials or TLS files that do not load; kInternalFailure when the address cannot
  // be bound (the message names it and the system's reason).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KinesisServer>> Start(
      std::shared_ptr<StreamRegistry> registry, KinesisServerOptions options);

  KinesisServer(const KinesisServer&) = delete;
  KinesisServer& operator=(const KinesisServer&) = delete;
  // Stop().
  ~KinesisServer();

  // The port it listens on (the one chosen when options.port was 0).
  uint16_t port() const;
  // "http://<host>:<port>" or "https://...": what to give a client's --endpoint-url.
  std::string endpoint() const;

  KinesisServerStats stats() const;

  // Stops listening, closes every connection (subscriptions end) and joins the threads. Requests
  // in progress finish first. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit KinesisServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rill::net

#endif  // RILL_NET_KINESIS_SERVER_H_
