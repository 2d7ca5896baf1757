// rill::kinesis::Client: a stream behind any Kinesis endpoint, as a rill::StreamApi.
//
// The client speaks the Kinesis JSON 1.1 protocol over libcurl (HTTP/1.1, or HTTP/2: prior
// knowledge on http://, ALPN on https://), signs every request with AWS Signature Version 4, and
// retries what the AWS SDKs retry (throttling, 5xx answers and failed connections) with
// exponential backoff and full jitter. It talks to a rill::net::KinesisServer (`rill serve`),
// to kinesalite, or to Amazon Kinesis itself, and gives every rill reader and writer (Producer,
// ShardReader, ConsumerGroup, StreamSubscriber, Dispatcher, the pipeline's sources and sinks) the
// same stream they would have in process:
//
//   rill::kinesis::ClientOptions options;
//   options.endpoint = "http://127.0.0.1:4567";
//   options.stream_name = "clicks";
//   options.access_key_id = "AKIDEXAMPLE";
//   options.secret_access_key = "secret";
//   absl::StatusOr<std::unique_ptr<rill::kinesis::Client>> stream =
//       rill::kinesis::Client::Create(options);
//   if (!stream.ok()) return stream.status();
//   auto put = (*stream)->PutRecord("user-1", "{\"page\": \"/home\"}");
//   auto producer = rill::Producer::Create(**stream);   // as with a rill::Stream
//
// What travels: record data as base64, timestamps as epoch seconds, sequence numbers as the
// endpoint's decimals (Kinesis' have 56 digits; SequenceNumber holds them), shard iterators as
// the endpoint's tokens (ShardIterator::FromToken), consumers by ARN (the client looks up the
// stream's ARN when created). Errors are the endpoint's, by Kinesis name (rill/base/error.h);
// an error name rill has no code for (e.g. KMS errors) is kInternalFailure with the name at the
// start of the message; authentication failures (UnrecognizedClientException,
// InvalidSignatureException, ...) are kAccessDenied; a connection that failed after the retries
// is kInternalFailure naming libcurl's reason.
//
// Retries: a call is sent up to max_attempts times. Between attempts it sleeps on
// options.clock (a SimulatedClock moves forward instead), a random time in
// [0, min(max_backoff, base_backoff * 2^attempt)). PutRecords' per-record failures are not
// retried here (the answer is a success listing them); a rill::Producer retries those.
//
// Subscriptions (SubscribeToShard) stream over their own connection, read by one thread per
// subscription, which holds at most 16 decoded events ahead of the reader before it stops
// reading (and the endpoint's flow control holds the rest).
//
// Thread safety: every method may be called from any number of threads at once; connections
// are pooled (up to max_idle_connections are kept open between calls).
//
// Allocation: every call builds its request and parses its answer (allocates). GetRecords
// decodes every record's key and data into one buffer per call, which the result's
// RecordKeepAlive holds.
#ifndef RILL_NET_KINESIS_CLIENT_H_
#define RILL_NET_KINESIS_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rill/base/clock.h"
#include "rill/stream/stream_api.h"

namespace rill::kinesis {

enum class HttpVersion {
  kHttp1_1,
  // HTTP/2: with prior knowledge on an http:// endpoint (as the AWS SDK for JavaScript does),
  // negotiated by ALPN on https:// (falling back to HTTP/1.1 if the server does not offer h2).
  kHttp2,
};

struct ClientOptions {
  // The endpoint's URL: "http://127.0.0.1:4567", "https://kinesis.eu-west-1.amazonaws.com".
  // Required.
  std::string endpoint;
  // The stream this client is. Required (1-128 characters of [a-zA-Z0-9_.-]).
  std::string stream_name;
  // The signing region. Default: "us-east-1".
  std::string region = "us-east-1";

  // Credentials for SigV4. Both needed unless sign_requests is false.
  std::string access_key_id;
  std::string secret_access_key;
  // For temporary credentials: sent and signed as X-Amz-Security-Token. Default: empty.
  std::string session_token;
  // Sign requests. Turn off only for an endpoint that accepts unsigned requests (a
  // KinesisServer with allow_unauthenticated). Default: true.
  bool sign_requests = true;

  // Default: HTTP/1.1 (what every endpoint, kinesalite included, serves). SubscribeToShard
  // always uses HTTP/2, which Kinesis (and KinesisServer) require for it.
  HttpVersion http_version = HttpVersion::kHttp1_1;
  // TLS: a PEM file of CA certificates to trust instead of the system's (e.g. a test server's
  // self-signed certificate). Default: empty (the system's).
  std::string ca_file;

  // Attempts per call (1 = no retry). Range: 1..100. Default: 3 (the AWS SDKs' standard mode).
  int max_attempts = 3;
  // Backoff before attempt n+1: a random time in [0, min(max_backoff, base_backoff * 2^n)).
  // Defaults: 100 ms and 20 s (the AWS SDKs').
  absl::Duration base_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(20);
  // Real time allowed to connect, and for a whole call (not a subscription). Defaults: 10 s, 60 s.
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration request_timeout = absl::Seconds(60);
  // Connections kept open between calls. Default: 16.
  int max_idle_connections = 16;

  // The clock backoffs sleep on and iterators are stamped with. Default: the system clock.
  std::shared_ptr<Clock> clock;
  // What a Producer batches within. Default: Kinesis' (1 MiB records, 5 MiB requests).
  PutLimits put_limits;
  // Seeds the backoff jitter. Default: 0, seeded from the system.
  uint64_t jitter_seed = 0;
};

// Counters since the client was created.
struct ClientStats {
  int64_t requests = 0;  // HTTP requests sent, retries included
  int64_t retries = 0;   // of `requests`, sent again after a retryable failure
  int64_t errors = 0;    // calls the endpoint refused or that failed to reach it
};

class Client final : public StreamApi {
 public:
  // A client of options.stream_name on options.endpoint. Describes the stream once (to learn its
  // ARN and check it is there). Errors: kInvalidArgument for a bad option; the endpoint's error
  // as is (kResourceNotFound when the stream does not exist).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Client>> Create(ClientOptions options);

  // Stream administration on the endpoint, for options.stream_name (not part of StreamApi).
  // CreateStream waits until the stream is ACTIVE (polling DescribeStreamSummary with the
  // backoff, up to `timeout` on options.clock); shard_count 0 creates an on-demand stream.
  [[nodiscard]] static absl::Status CreateStream(const ClientOptions& options, int shard_count,
                                                 absl::Duration timeout = absl::Seconds(30));
  [[nodiscard]] static absl::Status DeleteStream(const ClientOptions& options);

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() override;

  const std::string& name() const override;
  const std::shared_ptr<Clock>& clock() const override;
  PutLimits put_limits() const override;
  // The stream's ARN, as the endpoint reported it.
  const std::string& arn() const;

  [[nodiscard]] absl::StatusOr<PutRecordResult> PutRecord(std::string_view partition_key,
                                                          std::string_view data,
                                                          const PutOptions& options = {}) override;
  [[nodiscard]] absl::StatusOr<PutRecordsResult> PutRecords(
      absl::Span<const PutRecordsEntry> entries) override;
  using StreamApi::ListShards;
  [[nodiscard]] absl::StatusOr<ListShardsResult> ListShards(
      const ListShardsRequest& request) const override;
  using StreamApi::GetShardIterator;
  [[nodiscard]] absl::StatusOr<ShardIterator> GetShardIterator(
      std::string_view shard_id, const StartingPosition& position) const override;
  [[nodiscard]] absl::StatusOr<GetRecordsResult> GetRecords(
      const ShardIterator& iterator, int limit = kMaxGetRecordsLimit) const override;
  using StreamApi::SplitShard;
  [[nodiscard]] absl::Status SplitShard(std::string_view shard_id,
                                        HashKey new_starting_hash_key) override;
  using StreamApi::MergeShards;
  [[nodiscard]] absl::Status MergeShards(std::string_view shard_id,
                                         std::string_view adjacent_shard_id) override;
  [[nodiscard]] absl::Status UpdateShardCount(int target_shard_count) override;
  // Kinesis counts retention in whole hours: anything else is kInvalidArgument.
  [[nodiscard]] absl::Status IncreaseStreamRetentionPeriod(absl::Duration retention) override;
  [[nodiscard]] absl::Status DecreaseStreamRetentionPeriod(absl::Duration retention) override;
  [[nodiscard]] absl::StatusOr<ConsumerDescription> RegisterStreamConsumer(
      std::string_view name) override;
  [[nodiscard]] absl::Status DeregisterStreamConsumer(std::string_view name) override;
  [[nodiscard]] absl::StatusOr<ConsumerDescription> DescribeStreamConsumer(
      std::string_view name) const override;
  using StreamApi::SubscribeToShard;
  // options.lifetime and heartbeat_interval are the endpoint's to decide (Kinesis: 5 minutes,
  // and a heartbeat when idle); options.max_records_per_event likewise. A subscription that the
  // endpoint ends (its lifetime) leaves active() false; resubscribe from its continuation.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Subscription>> SubscribeToShard(
      std::string_view consumer_name, std::string_view shard_id, const StartingPosition& position,
      const SubscribeOptions& options = {}) override;

  // Any other operation: sends `json_body` as Kinesis_20131202.<operation> (signed, retried)
  // and returns the answer's JSON body.
  [[nodiscard]] absl::StatusOr<std::string> Call(std::string_view operation,
                                                 std::string_view json_body) const;

  ClientStats stats() const;

 protected:
  absl::StatusOr<StreamSummary> DescribeStreamSummaryOrError() const override;
  absl::StatusOr<std::vector<ConsumerDescription>> ListStreamConsumersOrError() const override;

 public:
  // Internal: the client's state (src/net/kinesis_client.cc).
  struct Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rill::kinesis

#endif  // RILL_NET_KINESIS_CLIENT_H_
