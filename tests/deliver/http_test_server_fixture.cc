#include "http_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "deliver/codec.h"

namespace rill::deliver_testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Room for the destination's largest request (64 MiB of JSON) and then some.
constexpr uint64_t kMaxRequestBody = uint64_t{200} << 20;

std::string ToStd(beast::string_view s) { return std::string(s.data(), s.size()); }

// The body's requestId by a plain search, not a JSON parse: simdjson's DOM would want several
// times the size of a 64 MiB body, and a test that checks the body parses it itself.
std::string FindRequestId(std::string_view body) {
  constexpr std::string_view kKey = "\"requestId\":\"";
  const size_t start = body.find(kKey);
  if (start == std::string_view::npos) return "";
  const size_t end = body.find('"', start + kKey.size());
  if (end == std::string_view::npos) return "";
  return std::string(body.substr(start + kKey.size(), end - start - kKey.size()));
}

}  // namespace

struct HttpTestServer::Impl {
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  int port = 0;

  mutable std::mutex mu;
  mutable std::condition_variable arrived;
  std::deque<Behaviour> script;
  std::vector<Request> requests;
  int connections = 0;

  void Accept();
  // Records a request and takes the behaviour it gets.
  Behaviour Take(Request request) {
    std::lock_guard<std::mutex> lock(mu);
    requests.push_back(std::move(request));
    arrived.notify_all();
    if (script.empty()) return Behaviour();
    Behaviour b = std::move(script.front());
    script.pop_front();
    return b;
  }
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpTestServer::Impl* server)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), server_(server) {}

  void Read() {
    parser_.emplace();
    parser_->body_limit(kMaxRequestBody);
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) return Close();
    http::request<http::string_body> req = parser_->release();
    HttpTestServer::Request r;
    r.method = ToStd(req.method_string());
    r.target = ToStd(req.target());
    for (const auto& field : req) {
      r.headers.emplace_back(absl::AsciiStrToLower(ToStd(field.name_string())),
                             ToStd(field.value()));
    }
    r.raw_body_size = req.body().size();
    if (std::optional<std::string> encoding = r.Header("content-encoding");
        encoding.has_value() && *encoding == "gzip") {
      absl::Status s = deliver_internal::Gunzip(req.body(), kMaxRequestBody * 4, &r.body);
      if (!s.ok()) r.body_error = std::string(s.message());
    } else {
      r.body = std::move(req.body());
    }
    r.request_id = FindRequestId(r.body);
    const std::string request_id = r.request_id;
    const HttpTestServer::Behaviour b = server_->Take(std::move(r));

    keep_alive_ = req.keep_alive();
    close_ = b.close;
    response_ = {};
    response_.version(11);
    response_.result(static_cast<unsigned>(b.oversized_body_bytes > 0 ? 200 : b.status));
    response_.set(http::field::content_type, "application/json");
    response_.keep_alive(keep_alive_);
    if (b.oversized_body_bytes > 0) {
      response_.body().assign(b.oversized_body_bytes, 'x');
    } else if (b.body.has_value()) {
      response_.body() = absl::StrReplaceAll(*b.body, {{"${requestId}", request_id}});
    } else {
      response_.body() = absl::StrCat("{\"requestId\":\"", request_id,
                                      "\",\"timestamp\":", absl::ToUnixMillis(absl::Now()), "}");
    }
    response_.prepare_payload();

    if (b.delay > absl::ZeroDuration()) {
      // A timer rather than a sleep: the thread goes on serving, and stopping the io_context
      // abandons the wait.
      timer_.expires_after(std::chrono::nanoseconds(absl::ToInt64Nanoseconds(b.delay)));
      timer_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
        if (!wait_ec) self->Answer();
      });
    } else {
      Answer();
    }
  }

  void Answer() {
    if (close_) return Close();
    http::async_write(socket_, response_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec || !self->keep_alive_) return self->Close();
                        self->Read();
                      });
  }

  void Close() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  HttpTestServer::Impl* server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  bool keep_alive_ = true;
  bool close_ = false;
};

}  // namespace

void HttpTestServer::Impl::Accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ++connections;
      }
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), this)->Read();
    }
    Accept();
  });
}

std::optional<std::string> HttpTestServer::Request::Header(std::string_view name) const {
  const std::string lower = absl::AsciiStrToLower(std::string(name));
  for (const auto& [n, v] : headers) {
    if (n == lower) return v;
  }
  return std::nullopt;
}

HttpTestServer::HttpTestServer() : impl_(std::make_unique<Impl>()) {
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->Accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->ioc.run(); });
}

HttpTestServer::~HttpTestServer() {
  // stop() makes run() return without waiting for timers; the sessions the pending handlers
  // hold are destroyed (their sockets closed) with the io_context.
  impl_->ioc.stop();
  impl_->thread.join();
}

int HttpTestServer::port() const { return impl_->port; }

std::string HttpTestServer::url(std::string_view path) const {
  return absl::StrCat("http://127.0.0.1:", impl_->port, std::string(path));
}

void HttpTestServer::Push(Behaviour behaviour) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->script.push_back(std::move(behaviour));
}

std::vector<HttpTestServer::Request> HttpTestServer::requests() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->requests;
}

bool HttpTestServer::WaitForRequests(size_t n, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  return impl_->arrived.wait_for(lock, std::chrono::nanoseconds(absl::ToInt64Nanoseconds(timeout)),
                                 [&] { return impl_->requests.size() >= n; });
}

int HttpTestServer::connections() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->connections;
}

RefusingPort::RefusingPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) throw std::runtime_error("RefusingPort: socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd_);
    throw std::runtime_error("RefusingPort: bind failed");
  }
  port_ = ntohs(addr.sin_port);
}

RefusingPort::~RefusingPort() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace rill::deliver_testing
