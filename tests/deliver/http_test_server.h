// A real HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for the HTTP endpoint destination's
// tests: Boost.Beast on one thread, keep-alive, scripted answers, and a record of every request.
//
// Example:
//   HttpTestServer server;
//   server.Push(HttpTestServer::Behaviour::Answer(500));  // the first request gets a 500
//   // the next ones get the default: 200 echoing the requestId
//   ... deliver to server.url("/ingest") ...
//   std::vector<HttpTestServer::Request> seen = server.requests();
//
// Thread safety: every method may be called from any thread while the server runs.
#ifndef RILL_TESTS_DELIVER_HTTP_TEST_SERVER_H_
#define RILL_TESTS_DELIVER_HTTP_TEST_SERVER_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace rill::deliver_testing {

class HttpTestServer {
 public:
  // What the server does with one request. Requests take behaviours from the queue in the order
  // they arrive; when the queue is empty they get a default Behaviour (200, echo).
  struct Behaviour {
    int status = 200;
    // The response body; "${requestId}" is replaced by the request body's requestId. nullopt:
    // {"requestId":"<the request's>","timestamp":<now, epoch ms>}.
    std::optional<std::string> body = std::nullopt;
    // Real time to wait before answering (or closing). The server thread is not blocked: other
    // connections are served meanwhile, and the destructor does not wait for it.
    absl::Duration delay = absl::ZeroDuration();
    // Close the connection without answering.
    bool close = false;
    // > 0: answer 200 with a body of this many bytes instead of `body`.
    size_t oversized_body_bytes = 0;

    static Behaviour Answer(int status, std::optional<std::string> body = std::nullopt) {
      Behaviour b;
      b.status = status;
      b.body = std::move(body);
      return b;
    }
    // The default answer after `delay`.
    static Behaviour Delayed(absl::Duration delay) {
      Behaviour b;
      b.delay = delay;
      return b;
    }
    static Behaviour Close() {
      Behaviour b;
      b.close = true;
      return b;
    }
    static Behaviour Oversized(size_t bytes) {
      Behaviour b;
      b.oversized_body_bytes = bytes;
      return b;
    }
  };

  struct Request {
    std::string method;
    std::string target;
    // Header names lowercased, in the order received.
    std::vector<std::pair<std::string, std::string>> headers;
    size_t raw_body_size = 0;  // as sent (compressed when Content-Encoding: gzip)
    std::string body;          // gunzipped when Content-Encoding: gzip
    std::string body_error;    // why the body could not be gunzipped, if it could not
    std::string request_id;    // the body's requestId ("" when it has none)

    // The value of header `name` (case-insensitive), nullopt when absent.
    std::optional<std::string> Header(std::string_view name) const;
  };

  // Listens at once; throws if it cannot (a test setup failure).
  HttpTestServer();
  // Stops at once: pending delays are abandoned and connections closed.
  ~HttpTestServer();

  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  int port() const;
  // "http://127.0.0.1:<port><path>".
  std::string url(std::string_view path = "/") const;

  void Push(Behaviour behaviour);
  // Every request received so far, in order of arrival.
  std::vector<Request> requests() const;
  // Waits (real time) until at least n requests have arrived; false if `timeout` passed first.
  bool WaitForRequests(size_t n, absl::Duration timeout) const;
  // TCP connections accepted so far.
  int connections() const;

  // The Beast side, in http_test_server_fixture.cc (public so that its sessions can name it).
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// A TCP port on 127.0.0.1 that refuses connections: a socket bound to it that never listens,
// kept for the object's life so that no one else takes the port meanwhile.
class RefusingPort {
 public:
  RefusingPort();
  ~RefusingPort();
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;

  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace rill::deliver_testing

#endif  // RILL_TESTS_DELIVER_HTTP_TEST_SERVER_H_
