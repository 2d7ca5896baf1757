// KinesisServer over real sockets on 127.0.0.1: HTTP/1.1 and HTTP/2 (h2c prior knowledge, and h2
// by ALPN over TLS with a certificate made here), SigV4 checks, the request limits, and
// SubscribeToShard as an event stream decoded frame by frame. libcurl is the client (the same
// library rill's Kinesis client uses); requests are signed with rill's signer. No test waits on
// real time beyond the network round trips themselves.
#include "rill/net/kinesis_server.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "net/eventstream.h"
#include "net/sigv4.h"
#include "rill/net/stream_registry.h"
#include "rill/stream/stream.h"

namespace rill::net {
namespace {

constexpr char kKeyId[] = "AKIDRILLTEST";
constexpr char kSecret[] = "rill-test-secret";

struct Reply {
  long status = 0;
  long http_version = 0;
  std::string body;
  std::vector<std::string> headers;

  bool HasHeader(std::string_view prefix) const {
    for (const std::string& h : headers) {
      if (h.size() >= prefix.size() &&
          absl::AsciiStrToLower(h.substr(0, prefix.size())) == prefix) {
        return true;
      }
    }
    return false;
  }
};

enum class Http { k1, k2PriorKnowledge, k2Tls };

struct RequestSpec {
  std::string method = "POST";
  std::string operation;  // X-Amz-Target: Kinesis_20131202.<operation>
  std::string body;
  bool sign = true;
  std::string secret = kSecret;
  std::string content_type = "application/x-amz-json-1.1";
  std::vector<std::string> extra_headers;
  // For event streams: called with each chunk of the body; return false to stop the transfer.
  std::function<bool(std::string_view)> on_body;

  RequestSpec(std::string op, std::string request_body)
      : operation(std::move(op)), body(std::move(request_body)) {}
  RequestSpec&& Method(std::string m) && {
    method = std::move(m);
    return std::move(*this);
  }
  RequestSpec&& Unsigned() && {
    sign = false;
    return std::move(*this);
  }
  RequestSpec&& Secret(std::string s) && {
    secret = std::move(s);
    return std::move(*this);
  }
  RequestSpec&& ContentType(std::string t) && {
    content_type = std::move(t);
    return std::move(*this);
  }
  RequestSpec&& Header(std::string h) && {
    extra_headers.push_back(std::move(h));
    return std::move(*this);
  }
  RequestSpec&& OnBody(std::function<bool(std::string_view)> f) && {
    on_body = std::move(f);
    return std::move(*this);
  }
};

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  auto* spec_and_reply = static_cast<std::pair<RequestSpec*, Reply*>*>(user);
  const std::string_view chunk(data, size * n);
  if (spec_and_reply->first->on_body) {
    return spec_and_reply->first->on_body(chunk) ? chunk.size() : 0;
  }
  spec_and_reply->second->body.append(chunk);
  return chunk.size();
}

size_t WriteHeader(char* data, size_t size, size_t n, void* user) {
  static_cast<Reply*>(user)->headers.emplace_back(data, size * n);
  return size * n;
}

class Client {
 public:
  Client(uint16_t port, Http http, std::string ca_file = "")
      : port_(port), http_(http), ca_file_(std::move(ca_file)) {}

  Reply Send(RequestSpec spec) const {
    const std::string host = absl::StrFormat("127.0.0.1:%d", port_);
    const std::string url =
        absl::StrFormat("%s://%s/", http_ == Http::k2Tls ? "https" : "http", host);
    std::vector<std::string> lines;
    lines.push_back("Content-Type: " + spec.content_type);
    if (!spec.operation.empty())
      lines.push_back("X-Amz-Target: Kinesis_20131202." + spec.operation);
    if (spec.sign) {
      // Over HTTP/2 the SDK signs :authority; curl sends the same authority either way.
      std::vector<internal::HttpHeader> headers = {
          {http_ == Http::k1 ? "host" : ":authority", host},
          {"content-type", spec.content_type},
          {"x-amz-target", "Kinesis_20131202." + spec.operation}};
      internal::SigningParams params;
      params.region = "us-east-1";
      params.service = "kinesis";
      params.time = absl::Now();
      internal::SignableRequest request;
      request.method = spec.method;
      request.path = "/";
      request.headers = headers;
      request.payload = spec.body;
      absl::StatusOr<std::vector<internal::HttpHeader>> added =
          internal::SignRequest(request, internal::Credentials{kKeyId, spec.secret, ""}, params);
      REQUIRE(added.ok());
      for (const internal::HttpHeader& h : *added) lines.push_back(h.name + ": " + h.value);
    }
    for (const std::string& h : spec.extra_headers) lines.push_back(h);

    CURL* curl = curl_easy_init();
    REQUIRE(curl != nullptr);
    curl_slist* list = nullptr;
    for (const std::string& line : lines) list = curl_slist_append(list, line.c_str());
    Reply reply;
    std::pair<RequestSpec*, Reply*> sink{&spec, &reply};
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, spec.method.c_str());
    if (spec.method == "POST") {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, spec.body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(spec.body.size()));
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &WriteHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    switch (http_) {
      case Http::k1:
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
        break;
      case Http::k2PriorKnowledge:
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
        break;
      case Http::k2Tls:
        curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file_.c_str());
        break;
    }
    const CURLcode rc = curl_easy_perform(curl);
    // CURLE_WRITE_ERROR: on_body asked to stop.
    CHECK((rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && spec.on_body)));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_easy_getinfo(curl, CURLINFO_HTTP_VERSION, &reply.http_version);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return reply;
  }

 private:
  uint16_t port_;
  Http http_;
  std::string ca_file_;
};

struct Fixture {
  explicit Fixture(KinesisServerOptions options = {}) {
    StreamRegistryOptions registry_options;
    auto made = StreamRegistry::Create(registry_options);
    REQUIRE(made.ok());
    registry = std::shared_ptr<StreamRegistry>(std::move(*made));
    if (options.credentials.empty() && !options.allow_unauthenticated) {
      options.credentials = {{kKeyId, kSecret}};
    }
    auto started = KinesisServer::Start(registry, options);
    REQUIRE(started.ok());
    server = std::move(*started);
  }

  std::shared_ptr<StreamRegistry> registry;
  std::unique_ptr<KinesisServer> server;
};

std::string Base64(std::string_view s) {
  return absl::Base64Escape(absl::string_view(s.data(), s.size()));
}

TEST_CASE("the server answers signed requests over HTTP/1.1 and refuses unsigned ones",
          "[net][server]") {
  Fixture f;
  Client client(f.server->port(), Http::k1);

  const Reply unsigned_reply = client.Send(RequestSpec("ListStreams", "{}").Unsigned());
  CHECK(unsigned_reply.status == 400);
  CHECK(absl::StrContains(unsigned_reply.body, "MissingAuthenticationTokenException"));

  const Reply bad = client.Send(RequestSpec("ListStreams", "{}").Secret("wrong"));
  CHECK(bad.status == 400);
  CHECK(absl::StrContains(bad.body, "InvalidSignatureException"));

  const Reply created =
      client.Send(RequestSpec("CreateStream", R"({"StreamName":"s1","ShardCount":2})"));
  CHECK(created.status == 200);
  CHECK(created.http_version == CURL_HTTP_VERSION_1_1);
  CHECK(created.HasHeader("x-amzn-requestid:"));
  REQUIRE(f.registry->Find("s1") != nullptr);

  const Reply put = client.Send(RequestSpec(
      "PutRecord", absl::StrFormat(R"({"StreamName":"s1","PartitionKey":"k","Data":"%s"})",
                                   Base64(std::string("a\0b", 3)))));
  CHECK(put.status == 200);
  CHECK(absl::StrContains(put.body, "\"SequenceNumber\""));

  const Reply listed = client.Send(RequestSpec("ListStreams", "{}"));
  CHECK(listed.status == 200);
  CHECK(absl::StrContains(listed.body, R"("StreamNames":["s1"])"));

  const KinesisServerStats s = f.server->stats();
  CHECK(s.requests == 5);
  CHECK(s.error_responses == 2);
  CHECK(s.http2_requests == 0);
}

TEST_CASE("the server speaks HTTP/2 with prior knowledge as the JavaScript SDK connects",
          "[net][server]") {
  Fixture f;
  Client client(f.server->port(), Http::k2PriorKnowledge);
  const Reply created =
      client.Send(RequestSpec("CreateStream", R"({"StreamName":"h2","ShardCount":1})"));
  CHECK(created.status == 200);
  CHECK(created.http_version == CURL_HTTP_VERSION_2_0);
  const Reply put = client.Send(RequestSpec(
      "PutRecord",
      absl::StrFormat(R"({"StreamName":"h2","PartitionKey":"k","Data":"%s"})", Base64("over h2"))));
  CHECK(put.status == 200);
  auto stream = f.registry->Find("h2");
  REQUIRE(stream != nullptr);
  auto it =
      stream->GetShardIterator(stream->ListShards()[0].shard_id, StartingPosition::TrimHorizon());
  REQUIRE(it.ok());
  auto records = stream->GetRecords(*it);
  REQUIRE(records.ok());
  REQUIRE(records->records.size() == 1);
  CHECK(records->records[0].data == "over h2");
  CHECK(f.server->stats().http2_requests == 2);
}

TEST_CASE("protocol errors come in Kinesis' order with Kinesis' names", "[net][server]") {
  Fixture f;
  Client client(f.server->port(), Http::k1);
  const Reply get = client.Send(RequestSpec("ListStreams", "").Method("GET").Unsigned());
  CHECK(get.status == 403);
  CHECK(absl::StrContains(get.body, "<AccessDeniedException>"));

  const Reply empty = client.Send(RequestSpec("ListStreams", "").Unsigned());
  CHECK(empty.status == 400);
  CHECK(empty.body == R"({"__type":"SerializationException"})");

  const Reply unknown = client.Send(RequestSpec("FlyToTheMoon", "{}").Unsigned());
  CHECK(unknown.status == 400);
  CHECK(unknown.body == R"({"__type":"UnknownOperationException"})");

  const Reply xml =
      client.Send(RequestSpec("ListStreams", "{}").Unsigned().ContentType("text/plain"));
  CHECK(xml.status == 404);
  CHECK(xml.body == "<UnknownOperationException/>\n");

  const Reply malformed = client.Send(RequestSpec("ListStreams", "{\"Limit\":"));
  CHECK(malformed.status == 400);
  CHECK(absl::StrContains(malformed.body, "SerializationException"));
}

TEST_CASE("requests over max_request_bytes get 413 and headers over max_header_bytes get 431",
          "[net][server]") {
  KinesisServerOptions options;
  options.max_request_bytes = 1000;
  options.max_header_bytes = 2000;
  Fixture f(options);
  for (Http http : {Http::k1, Http::k2PriorKnowledge}) {
    Client client(f.server->port(), http);
    const Reply big = client.Send(RequestSpec("ListStreams", std::string(1001, ' ')));
    CHECK(big.status == 413);
  }
  Client client(f.server->port(), Http::k1);
  const Reply fits = client.Send(RequestSpec("ListStreams", "{}" + std::string(990, ' ')));
  CHECK(fits.status == 200);
  const Reply headers =
      client.Send(RequestSpec("ListStreams", "{}").Header("X-Padding: " + std::string(3000, 'p')));
  CHECK(headers.status == 431);
}

// Registers a consumer over the wire and returns its ARN.
std::string RegisterConsumer(const Client& client, const std::string& stream,
                             const std::string& name) {
  const Reply reply = client.Send(RequestSpec(
      "RegisterStreamConsumer",
      absl::StrFormat(
          R"({"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/%s","ConsumerName":"%s"})",
          stream, name)));
  REQUIRE(reply.status == 200);
  const size_t at = reply.body.find("\"ConsumerARN\":\"");
  REQUIRE(at != std::string::npos);
  const size_t begin = at + 15;
  return reply.body.substr(begin, reply.body.find('"', begin) - begin);
}

// Decodes the event stream of a SubscribeToShard response as it arrives (on curl's thread);
// `records` may be read from other threads.
struct EventCollector {
  internal::Decoder decoder;
  std::vector<internal::Message> messages;
  std::atomic<size_t> records{0};
  size_t want_records = 0;
  absl::Status error;

  bool Feed(std::string_view chunk) {
    const size_t first = messages.size();
    error = decoder.Feed(chunk, &messages);
    for (size_t i = first; i < messages.size(); ++i) {
      const internal::Message& m = messages[i];
      if (m.GetString(":event-type") != "SubscribeToShardEvent") continue;
      size_t pos = 0;
      while ((pos = m.payload.find("\"SequenceNumber\"", pos)) != std::string::npos) {
        records.fetch_add(1);
        ++pos;
      }
    }
    return error.ok() && records.load() < want_records;
  }
};

TEST_CASE("SubscribeToShard streams an initial response then the shard's records over HTTP/2",
          "[net][server][subscribe]") {
  Fixture f;
  Client client(f.server->port(), Http::k2PriorKnowledge);
  REQUIRE(
      client.Send(RequestSpec("CreateStream", R"({"StreamName":"sub","ShardCount":1})")).status ==
      200);
  const std::string consumer_arn = RegisterConsumer(client, "sub", "c1");
  auto stream = f.registry->Find("sub");
  REQUIRE(stream != nullptr);
  for (int i = 0; i < 3; ++i) REQUIRE(stream->PutRecord("k", "before-" + std::to_string(i)).ok());

  EventCollector events;
  events.want_records = 3;
  const Reply reply = client.Send(
      RequestSpec(
          "SubscribeToShard",
          absl::StrFormat(
              R"({"ConsumerARN":"%s","ShardId":"shardId-000000000000","StartingPosition":{"Type":"TRIM_HORIZON"}})",
              consumer_arn))
          .OnBody([&](std::string_view chunk) { return events.Feed(chunk); }));
  CHECK(reply.status == 200);
  CHECK(reply.http_version == CURL_HTTP_VERSION_2_0);
  REQUIRE(events.error.ok());
  REQUIRE(events.messages.size() >= 2);
  CHECK(events.messages[0].GetString(":event-type") == "initial-response");
  CHECK(events.messages[0].GetString(":message-type") == "event");
  CHECK(events.messages[1].GetString(":event-type") == "SubscribeToShardEvent");
  CHECK(events.records == 3);
  CHECK(absl::StrContains(events.messages[1].payload, Base64("before-0")));
  CHECK(absl::StrContains(events.messages[1].payload, "\"ContinuationSequenceNumber\""));
  CHECK(f.server->stats().subscriptions_started == 1);
}

TEST_CASE(
    "records put while a subscription waits reach it and deregistering ends it with an "
    "exception frame",
    "[net][server][subscribe]") {
  Fixture f;
  Client client(f.server->port(), Http::k2PriorKnowledge);
  REQUIRE(
      client.Send(RequestSpec("CreateStream", R"({"StreamName":"live","ShardCount":1})")).status ==
      200);
  auto stream = f.registry->Find("live");
  REQUIRE(stream != nullptr);
  const std::string consumer_arn = RegisterConsumer(client, "live", "c1");

  EventCollector events;
  events.want_records = 1000;     // ended by the deregistration
  std::atomic<bool> done{false};  // the response ended, whatever happened
  std::thread producer([&] {
    // Put once the subscription is streaming (its position, LATEST, is fixed by then).
    while (f.server->stats().open_subscriptions == 0 && !done.load()) std::this_thread::yield();
    for (int i = 0; i < 5; ++i) CHECK(stream->PutRecord("k", "live-" + std::to_string(i)).ok());
  });
  std::thread ender([&] {
    // Once the five records are delivered, deregistering the consumer ends its subscriptions
    // (kResourceNotFound), which the server sends as an exception frame.
    while (events.records.load() < 5 && !done.load()) std::this_thread::yield();
    CHECK(stream->DeregisterStreamConsumer("c1").ok());
  });
  const Reply reply = client.Send(
      RequestSpec(
          "SubscribeToShard",
          absl::StrFormat(
              R"({"ConsumerARN":"%s","ShardId":"shardId-000000000000","StartingPosition":{"Type":"LATEST"}})",
              consumer_arn))
          .OnBody([&](std::string_view chunk) { return events.Feed(chunk); }));
  done.store(true);
  producer.join();
  ender.join();
  CHECK(reply.status == 200);
  REQUIRE(events.error.ok());
  CHECK(events.records == 5);
  REQUIRE(!events.messages.empty());
  const internal::Message& last = events.messages.back();
  CHECK(last.GetString(":message-type") == "exception");
  CHECK(last.GetString(":exception-type") == "ResourceNotFoundException");
}

// A self-signed certificate for 127.0.0.1, written as PEM files into `dir`.
void WriteSelfSignedCertificate(const std::filesystem::path& dir) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  REQUIRE(key != nullptr);
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600 * 24);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name,
                                            const_cast<char*>("IP:127.0.0.1"));
  REQUIRE(san != nullptr);
  X509_add_ext(cert, san, -1);
  X509_EXTENSION_free(san);
  REQUIRE(X509_sign(cert, key, EVP_sha256()) > 0);
  FILE* c = std::fopen((dir / "cert.pem").c_str(), "w");
  FILE* k = std::fopen((dir / "key.pem").c_str(), "w");
  REQUIRE(c != nullptr);
  REQUIRE(k != nullptr);
  PEM_write_X509(c, cert);
  PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(c);
  std::fclose(k);
  X509_free(cert);
  EVP_PKEY_free(key);
}

TEST_CASE("over TLS the server negotiates h2 by ALPN and HTTP/1.1 for clients that ask for it",
          "[net][server][tls]") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrFormat("rill-tls-%d", ::getpid());
  std::filesystem::create_directories(dir);
  WriteSelfSignedCertificate(dir);
  KinesisServerOptions options;
  options.tls_certificate_chain_file = dir / "cert.pem";
  options.tls_private_key_file = dir / "key.pem";
  Fixture f(options);
  CHECK(absl::StartsWith(f.server->endpoint(), "https://127.0.0.1:"));

  Client h2(f.server->port(), Http::k2Tls, dir / "cert.pem");
  const Reply r2 = h2.Send(RequestSpec("ListStreams", "{}"));
  CHECK(r2.status == 200);
  CHECK(r2.http_version == CURL_HTTP_VERSION_2_0);

  KinesisServerOptions bad;
  bad.tls_certificate_chain_file = dir / "missing.pem";
  bad.tls_private_key_file = dir / "key.pem";
  bad.credentials = {{kKeyId, kSecret}};
  auto refused = KinesisServer::Start(f.registry, bad);
  CHECK(GetErrorCode(refused.status()) == ErrorCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

TEST_CASE("Start refuses to serve without credentials unless told to", "[net][server]") {
  auto registry = StreamRegistry::Create({});
  REQUIRE(registry.ok());
  std::shared_ptr<StreamRegistry> shared(std::move(*registry));
  auto refused = KinesisServer::Start(shared, {});
  CHECK(GetErrorCode(refused.status()) == ErrorCode::kInvalidArgument);
  KinesisServerOptions open;
  open.allow_unauthenticated = true;
  auto server = KinesisServer::Start(shared, open);
  REQUIRE(server.ok());
  Client client((*server)->port(), Http::k1);
  CHECK(client.Send(RequestSpec("ListStreams", "{}").Unsigned()).status == 200);
}

// A raw TCP connection to the server, for what a client library would not do: stall.
int ConnectRaw(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  // A bound on the test, not on the server: it closes within idle_timeout (0.2 s).
  timeval bound{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound));
  return fd;
}

// Reads until the server closes the connection; returns what it sent, or "TIMEOUT".
std::string ReadUntilClosed(int fd) {
  std::string got;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n > 0) {
      got.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return "TIMEOUT";
    return got;  // 0: closed; ECONNRESET: closed too
  }
}

TEST_CASE("idle and slow HTTP/1.1 connections are closed after idle_timeout", "[net][server]") {
  KinesisServerOptions options;
  options.allow_unauthenticated = true;
  options.idle_timeout = absl::Milliseconds(200);
  Fixture f(options);

  // Nothing sent at all.
  const int idle = ConnectRaw(f.server->port());
  CHECK(ReadUntilClosed(idle).empty());
  ::close(idle);

  // A request whose body never arrives in full.
  const int slow = ConnectRaw(f.server->port());
  const std::string partial =
      "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\n"
      "X-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Length: 100\r\n\r\n{";
  REQUIRE(::send(slow, partial.data(), partial.size(), 0) == static_cast<ssize_t>(partial.size()));
  CHECK(ReadUntilClosed(slow).empty());
  ::close(slow);

  // A complete request is answered, and the kept-alive connection closes once idle.
  const int kept = ConnectRaw(f.server->port());
  const std::string full =
      "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-amz-json-1.1\r\n"
      "X-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Length: 2\r\n\r\n{}";
  REQUIRE(::send(kept, full.data(), full.size(), 0) == static_cast<ssize_t>(full.size()));
  const std::string answer = ReadUntilClosed(kept);
  CHECK(absl::StartsWith(answer, "HTTP/1.1 200"));
  CHECK(absl::StrContains(answer, "\"StreamNames\":[]"));
  ::close(kept);
}

}  // namespace
}  // namespace rill::net
