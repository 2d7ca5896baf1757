// Fuzzes request parsing of the Kinesis wire API: RequestHandler (method, content type, target,
// SigV4 Authorization header) and KinesisService (every operation's JSON body), as a transport
// hands them requests. The input's first byte picks the operation, the second the request's
// shape (content type, HTTP/2, a signature to verify); an Authorization header, when the shape
// asks for one, runs up to the first '\n'; the rest is the body. Every answer must be a
// well-formed HTTP status with a JSON body naming an error type when it is not a 200 (the XML
// answers of a wrong method or content type aside). The streams the requests act on exist from the
// start and are made again when a request deletes them.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "net/kinesis_service.h"
#include "net/request_handler.h"
#include "net/sigv4.h"
#include "rill/net/stream_registry.h"
#include "simdjson.h"

namespace rill::net::internal {
namespace {

// Every operation, and one that does not exist.
const std::vector<std::string_view>& Operations() {
  static const std::vector<std::string_view>* operations = [] {
    auto* names = new std::vector<std::string_view>(rill::net::KinesisService::OperationNames());
    names->push_back("NoSuchOperation");
    return names;
  }();
  return *operations;
}

struct World {
  World() {
    StreamRegistryOptions options;
    // Bounded memory whatever the fuzzer puts.
    options.stream_template.memory_limit.budget_bytes = size_t{8} << 20;
    options.stream_template.memory_limit.policy = MemoryLimitPolicy::kRetireOldest;
    options.shard_limit = 64;
    auto made = StreamRegistry::Create(options);
    FUZZ_CHECK(made.ok());
    registry = std::shared_ptr<StreamRegistry>(std::move(*made));
    service = std::make_shared<KinesisService>(registry);
    open = std::make_unique<RequestHandler>(service, nullptr);
    signed_handler = std::make_unique<RequestHandler>(
        service, std::make_unique<Verifier>(VerifierOptions{}, [](std::string_view key) {
          return key == "AKIDFUZZ" ? std::optional<std::string>("fuzz-secret") : std::nullopt;
        }));
  }

  // The streams the seeds name: "s" (2 shards, a consumer "c") and "t".
  void Restock() {
    for (const char* name : {"s", "t"}) {
      if (registry->Find(name) != nullptr) continue;
      CreateStreamRequest request;
      request.name = name;
      request.shard_count = 2;
      auto stream = registry->CreateStream(request);
      if (!stream.ok()) continue;  // the shard limit, after the fuzzer made many streams
      if (std::string_view(name) == "s") (void)(*stream)->RegisterStreamConsumer("c");
    }
  }

  std::shared_ptr<StreamRegistry> registry;
  std::shared_ptr<KinesisService> service;
  std::unique_ptr<RequestHandler> open;
  std::unique_ptr<RequestHandler> signed_handler;
};

void CheckResponse(const HttpResponse& r) {
  FUZZ_CHECK(r.status == 200 || r.status == 400 || r.status == 403 || r.status == 404 ||
             r.status == 413 || r.status == 500);
  if (r.subscription) {
    FUZZ_CHECK(r.status == 200);
    FUZZ_CHECK(r.subscription->subscription != nullptr);
    return;
  }
  // The front's answers to a wrong method or content type are XML, as AWS' front end answers
  // them: 403 or 404, named in x-amzn-errortype.
  if (!r.body.empty() && r.body[0] == '<') {
    FUZZ_CHECK(r.status == 403 || r.status == 404);
    bool named = false;
    for (const auto& [name, value] : r.headers) named = named || name == "x-amzn-errortype";
    FUZZ_CHECK(named);
    return;
  }
  if (r.status == 200) return;
  simdjson::dom::parser parser;
  simdjson::dom::element element;
  if (parser.parse(r.body).get(element) != simdjson::SUCCESS) {
    std::fprintf(stderr, "status %d, body is not JSON: %s\n", r.status, r.body.c_str());
    std::abort();
  }
  std::string_view type;
  FUZZ_CHECK(element["__type"].get_string().get(type) == simdjson::SUCCESS);
  FUZZ_CHECK(!type.empty());
}

}  // namespace
}  // namespace rill::net::internal

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rill::net::internal;
  static World* world = new World();
  world->Restock();
  if (size < 2) return 0;
  const std::vector<std::string_view>& operations = Operations();
  const std::string_view operation = operations[data[0] % operations.size()];
  const uint8_t shape = data[1];
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);

  const std::string target = std::string(rill::net::kKinesisTargetPrefix) + std::string(operation);
  const char* content_types[] = {"application/x-amz-json-1.1", "application/json", "text/plain",
                                 "application/x-amz-json-1.0"};
  std::vector<HeaderView> headers = {
      {"content-type", content_types[shape & 3]},
      {"x-amz-target", target},
      {"host", "127.0.0.1:4567"},
  };
  std::string authorization;
  const bool with_signature = (shape & 8) != 0;
  if (with_signature) {
    const size_t newline = rest.find('\n');
    authorization = std::string(rest.substr(0, newline));
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
    headers.push_back({"authorization", authorization});
    headers.push_back({"x-amz-date", "20261206T120000Z"});
  }
  HttpRequest request;
  request.method = (shape & 16) != 0 ? "GET" : "POST";
  request.target = "/";
  request.headers = headers;
  request.body = rest;
  request.http2 = (shape & 4) != 0;
  request.subscriptions_full = (shape & 32) != 0;
  const RequestHandler& handler = with_signature ? *world->signed_handler : *world->open;
  HttpResponse response = handler.Handle(request);
  CheckResponse(response);
  // The subscription, if one started, ends here; its stream is kept alive until then.
  response.subscription.reset();
  return 0;
}
