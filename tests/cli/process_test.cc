// rill with another process holding the stream: the read-only commands work through a read-only
// open, put fails naming the holder's pid, tail -f sees records put after it started, serve
// holds the stream itself and answers the Kinesis API.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "cli_testing.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

using cli_testing::Child;
using cli_testing::Rill;
using cli_testing::RunResult;

TEST_CASE("a stream held by another process: reads work, put fails naming its pid", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  Child holder(cli_testing::HolderBinary(), {dir.path(), "clicks", "2"});
  const std::optional<std::string> ready = holder.ReadLine();
  REQUIRE(ready == absl::StrFormat("ready %d", holder.pid()));
  holder.Write("put a one\nput b two\n");
  REQUIRE(holder.ReadLine().has_value());
  REQUIRE(holder.ReadLine().has_value());

  RunResult r = Rill({"describe", dir.path(), "--json"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  simdjson::dom::parser parser;
  simdjson::dom::element o = parser.parse(r.out);
  CHECK(std::string_view(o["stream"]) == "clicks");
  CHECK(int64_t(o["records"]) == 2);  // acknowledged, read back from the holder's journal

  r = Rill({"tail", dir.path(), "--raw"});
  CHECK(r.exit_code == 0);
  CHECK((r.out == "one\ntwo\n" || r.out == "two\none\n"));  // one record per shard
  CHECK(Rill({"shards", dir.path()}).exit_code == 0);
  CHECK(Rill({"verify", dir.path()}).exit_code == 0);

  r = Rill({"put", dir.path(), "--key", "k"}, "three\n");
  CHECK(r.exit_code == 3);
  CHECK(r.out.empty());
  CHECK(absl::StrContains(
      r.err, absl::StrFormat("rill: error: stream clicks in %s is locked by process %d (per "
                             "%s/LOCK), which has it open;",
                             dir.path(), holder.pid(), dir.path())));
  CHECK(absl::StrContains(r.err, "use the read-only commands"));
  r = Rill({"split", dir.path(), "--shard", "0"});
  CHECK(r.exit_code == 3);

  holder.Write("quit\n");
  CHECK(holder.Wait() == 0);
  // Once it has gone, put takes the stream.
  r = Rill({"put", dir.path(), "--key", "k"}, "three\n");
  CHECK(r.exit_code == 0);
}

TEST_CASE("tail -f prints records put after it started, until SIGINT", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  auto stream =
      testing::MustCreate(cli_testing::DurableOptions(dir.path(), SystemClock::Default(), 2));
  testing::MustPut(*stream, "k", "before");

  Child tail(cli_testing::RillBinary(), {"tail", dir.path(), "-f", "--raw", "--interval", "0.05"});
  REQUIRE(tail.WaitForOutput([](const std::string& out) { return out == "before\n"; }));
  // The test process holds the stream and keeps putting; tail re-opens it read-only.
  testing::MustPut(*stream, "k", "after-1");
  testing::MustPut(*stream, cli_testing::KeyForShard(1, 2), "other-shard");
  REQUIRE(tail.WaitForOutput([](const std::string& out) {
    return absl::StrContains(out, "after-1\n") && absl::StrContains(out, "other-shard\n");
  }));
  // Resharding while it follows: the children's records come too.
  REQUIRE(stream->SplitShard(ShardId(0), HashKey(absl::uint128(1) << 126)).ok());
  testing::MustPut(*stream, cli_testing::KeyForShard(0, 2), "child");
  REQUIRE(
      tail.WaitForOutput([](const std::string& out) { return absl::StrContains(out, "child\n"); }));
  tail.Signal(SIGINT);
  CHECK(tail.Wait() == 0);
  // Each record once.
  CHECK(tail.out().size() == std::string("before\nafter-1\nother-shard\nchild\n").size());
  CHECK(tail.err().empty());

  // --max ends a follow by itself.
  Child bounded(cli_testing::RillBinary(),
                {"tail", dir.path(), "-f", "--raw", "--max", "5", "--interval", "0.05"});
  REQUIRE(bounded.WaitForOutput([](const std::string& out) { return out.size() > 0; }));
  testing::MustPut(*stream, "k", "fifth");
  CHECK(bounded.Wait() == 0);
  CHECK(absl::EndsWith(bounded.out(), "fifth\n"));
}

// One HTTP/1.1 request to 127.0.0.1:port; the whole response.
std::string HttpPost(int port, const std::string& target, const std::string& body) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  const std::string request = absl::StrFormat(
      "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: Kinesis_20131202.%s\r\n"
      "Content-Type: application/x-amz-json-1.1\r\nContent-Length: %d\r\nConnection: close\r\n"
      "\r\n%s",
      target, body.size(), body);
  REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  ::close(fd);
  return response;
}

TEST_CASE("serve answers the Kinesis API for its streams until SIGTERM", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  {
    auto stream =
        testing::MustCreate(cli_testing::DurableOptions(dir.path(), cli_testing::RecentClock(), 1));
    testing::MustPut(*stream, "k", "served");
  }
  Child serve(cli_testing::RillBinary(), {"serve", dir.path(), "--port", "0", "--no-auth"});
  const std::optional<std::string> first = serve.ReadLine();
  REQUIRE(first.has_value());
  // "serving 1 stream on http://127.0.0.1:<port> (region us-east-1)"
  const std::string prefix = "serving 1 stream on http://127.0.0.1:";
  const std::string suffix = " (region us-east-1)";
  INFO(*first);
  REQUIRE(absl::StartsWith(*first, prefix));
  REQUIRE(absl::EndsWith(*first, suffix));
  const std::string port_text =
      first->substr(prefix.size(), first->size() - prefix.size() - suffix.size());
  int port = 0;
  REQUIRE(absl::SimpleAtoi(port_text, &port));
  REQUIRE(port > 0);
  CHECK(serve.ReadLine() == "  clicks");

  const std::string response = HttpPost(port, "ListStreams", "{}");
  CHECK(absl::StartsWith(response, "HTTP/1.1 200"));
  CHECK(absl::StrContains(response, "\"StreamNames\":[\"clicks\"]"));
  const std::string put = HttpPost(
      port, "PutRecord", R"({"StreamName":"clicks","PartitionKey":"k","Data":"b3Zlcg=="})");
  CHECK(absl::StartsWith(put, "HTTP/1.1 200"));

  // serve holds the stream: put is refused, reads work.
  RunResult r = Rill({"put", dir.path(), "--key", "k"}, "x\n");
  CHECK(r.exit_code == 3);
  CHECK(absl::StrContains(r.err, absl::StrFormat("locked by process %d", serve.pid())));
  r = Rill({"tail", dir.path(), "--raw"});
  CHECK(r.out == "served\nover\n");

  serve.Signal(SIGTERM);
  CHECK(serve.Wait() == 0);
  CHECK(absl::EndsWith(serve.out(), "stopped\n"));
}

}  // namespace
}  // namespace rill
