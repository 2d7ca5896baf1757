// KinesisServer: the transports. Boost.Asio runs the sockets on io_threads threads (each
// connection in its own strand); Boost.Beast parses and writes HTTP/1.1; libnghttp2 runs the
// HTTP/2 framing (h2c with prior knowledge, and h2 by ALPN over TLS); OpenSSL does TLS. What a
// request means is decided in RequestHandler, transport-free.
//
// SubscribeToShard over HTTP/2 is pulled by the client's flow control: when nghttp2 asks for the
// next DATA and the subscription has no event ready, the stream is deferred; the pump thread,
// woken by appends to the subscribed shards (Subscription::AddWaker) and every 100 ms of the
// registry's clock (heartbeats and lifetimes are judged on it), resumes deferred streams in their
// connection's strand. A slow client therefore holds no buffer beyond one batch of events: the
// shard log is the buffer, as for in-process subscribers.
#include "rill/net/kinesis_server.h"

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/strings/str_format.h"
#include "net/eventstream.h"
#include "net/kinesis_service.h"
#include "net/request_handler.h"
#include "net/sigv4.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "rill/base/internal/waker.h"
#include "rill/net/stream_registry.h"

namespace rill::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using internal::HeaderView;
using internal::HttpRequest;
using internal::HttpResponse;

constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// Event-stream bytes gathered per pull of a subscription, at most (one batch of events).
constexpr size_t kEventBatchBytes = size_t{256} << 10;
// How often the pump looks at deferred subscriptions without a wake-up (heartbeats, lifetimes).
constexpr absl::Duration kPumpInterval = absl::Milliseconds(100);

std::string_view SV(beast::string_view s) { return std::string_view(s.data(), s.size()); }

// Connection timeouts (idle_timeout) run in real time on purpose, not on the registry's Clock:
// they guard sockets against peers that live in real time, whatever clock the streams follow.
// What Kinesis times (heartbeats, subscription lifetimes) stays on the streams' clock: the pump
// waits on the registry's Clock, and the subscriptions judge their own time.
std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

class Resumable {
 public:
  virtual ~Resumable() = default;
  // Called on the pump thread: look again at deferred subscriptions (post into the strand).
  virtual void Resume() = 0;
};

}  // namespace

// What every connection shares.
struct ServerCore {
  ServerCore(KinesisServerOptions o, std::shared_ptr<StreamRegistry> r,
             std::unique_ptr<internal::RequestHandler> h)
      : options(std::move(o)), registry(std::move(r)), handler(std::move(h)) {}

  const KinesisServerOptions options;
  const std::shared_ptr<StreamRegistry> registry;
  const std::unique_ptr<internal::RequestHandler> handler;

  std::atomic<int64_t> connections_accepted{0};
  std::atomic<int64_t> connections_refused{0};
  std::atomic<int64_t> requests{0};
  std::atomic<int64_t> error_responses{0};
  std::atomic<int64_t> http2_requests{0};
  std::atomic<int64_t> subscriptions_started{0};
  std::atomic<int64_t> subscription_events{0};
  std::atomic<int> open_connections{0};
  std::atomic<int> open_subscriptions{0};

  // The pump: woken by appends to subscribed shards; resumes sessions with deferred streams.
  rill::internal::Waker waker;
  rill::internal::Mutex resumables_mu;
  std::vector<std::weak_ptr<Resumable>> resumables ABSL_GUARDED_BY(resumables_mu);

  void AddResumable(std::weak_ptr<Resumable> r) {
    rill::internal::MutexLock lock(&resumables_mu);
    resumables.push_back(std::move(r));
  }

  void ResumeAll() {
    std::vector<std::shared_ptr<Resumable>> live;
    {
      rill::internal::MutexLock lock(&resumables_mu);
      std::erase_if(resumables, [&live](const std::weak_ptr<Resumable>& w) {
        std::shared_ptr<Resumable> r = w.lock();
        if (r == nullptr) return true;
        live.push_back(std::move(r));
        return false;
      });
    }
    for (const std::shared_ptr<Resumable>& r : live) r->Resume();
  }

  void Count(int status) {
    requests.fetch_add(1, std::memory_order_relaxed);
    if (status >= 400) error_responses.fetch_add(1, std::memory_order_relaxed);
  }
};

namespace {

// Counts a connection while it lives.
class ConnectionSlot {
 public:
  explicit ConnectionSlot(ServerCore* core) : core_(core) {
    core_->open_connections.fetch_add(1, std::memory_order_relaxed);
  }
  ConnectionSlot(ConnectionSlot&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  ~ConnectionSlot() {
    if (core_ != nullptr) core_->open_connections.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  ServerCore* core_;
};

// The event-stream bytes of one SubscribeToShard response: an initial-response event, then one
// SubscribeToShardEvent per subscription event, and an exception frame if the subscription
// fails (taken over, consumer deregistered). Used in its connection's strand only.
class EventStreamSource {
 public:
  EventStreamSource(SubscribeStart start, ServerCore* core)
      : start_(std::move(start)), core_(core) {
    core_->open_subscriptions.fetch_add(1, std::memory_order_relaxed);
    core_->subscriptions_started.fetch_add(1, std::memory_order_relaxed);
    start_.subscription->AddWaker(&core_->waker);
  }
  EventStreamSource(const EventStreamSource&) = delete;
  EventStreamSource& operator=(const EventStreamSource&) = delete;
  ~EventStreamSource() {
    start_.subscription->RemoveWaker(&core_->waker);
    start_.subscription->Cancel();
    core_->open_subscriptions.fetch_sub(1, std::memory_order_relaxed);
  }

  // Appends the frames of whatever events are ready, up to about kEventBatchBytes. Returns
  // whether it appended anything.
  bool Fill(std::string* out) {
    const size_t before = out->size();
    while (!ended_ && out->size() - before < kEventBatchBytes) {
      if (!initial_sent_) {
        internal::AppendEventFrame("initial-response", "{}", out);
        initial_sent_ = true;
        continue;
      }
      absl::StatusOr<std::optional<SubscribeToShardEvent>> event = start_.subscription->TryNext();
      if (!event.ok()) {
        const Response error = KinesisService::ErrorResponse(event.status());
        internal::AppendExceptionFrame(error.error_type, error.body, out);
        ended_ = true;
        break;
      }
      if (!event->has_value()) {
        if (!start_.subscription->active()) ended_ = true;
        break;
      }
      json_.clear();
      AppendSubscribeToShardEventJson(**event, &json_);
      internal::AppendEventFrame("SubscribeToShardEvent", json_, out);
      core_->subscription_events.fetch_add(1, std::memory_order_relaxed);
      // The shard's end: the last event names the children and carries no continuation.
      if (!(*event)->continuation_sequence_number) ended_ = true;
    }
    return out->size() > before;
  }

  bool ended() const { return ended_; }

 private:
  SubscribeStart start_;
  ServerCore* const core_;
  bool initial_sent_ = false;
  bool ended_ = false;
  std::string json_;
};

template <class Stream>
void CloseLowest(Stream& stream) {
  beast::error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(stream).close();
}

// ---- HTTP/1.1 ----

// What one receive call of an HTTP/1.1 connection reads at most (the connection's buffer).
constexpr size_t kHttp1ReadBytes = size_t{64} << 10;

template <class Stream>
class Http1Session : public std::enable_shared_from_this<Http1Session<Stream>> {
 public:
  Http1Session(Stream stream, beast::flat_buffer buffer, ServerCore* core, ConnectionSlot slot)
      : stream_(std::move(stream)),
        buffer_(std::move(buffer)),
        core_(core),
        slot_(std::move(slot)),
        deadline_timer_(stream_.get_executor()) {}

  void Run() {
    // Beast reads into the buffer's free capacity (at least 512 bytes), and the parser moves
    // each read's body bytes out: a buffer left at its first size read a 90 KB PutRecords in
    // ~170 receive calls, each a trip through Asio. One reservation per connection.
    buffer_.reserve(kHttp1ReadBytes);
    // One timer per connection instead of the stream's per-operation expiry: a request's body
    // arrives in several reads, and arming and cancelling a timer around each cost a tenth of
    // the server's time under PutRecords load. The timer fires once per idle_timeout at most.
    beast::get_lowest_layer(stream_).expires_never();
    DoRead();
    ArmDeadline();
  }

 private:
  // Reading a request (from the end of the last response: the idle wait included) and writing a
  // response each must finish within idle_timeout of their start. Real time, as every socket
  // timeout here (see ToChrono): idle_timeout bounds what a peer may hold, not the streams' time.
  void StartPhase() { phase_start_ = std::chrono::steady_clock::now(); }

  void ArmDeadline() {
    deadline_timer_.expires_at(phase_start_ + ToChrono(core_->options.idle_timeout));
    deadline_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      const auto now = std::chrono::steady_clock::now();
      if (now - self->phase_start_ >= ToChrono(self->core_->options.idle_timeout)) {
        self->closed_ = true;
        return CloseLowest(self->stream_);
      }
      self->ArmDeadline();  // a later phase started since: wait for its deadline
    });
  }

  void Close() {
    closed_ = true;
    deadline_timer_.cancel();
    CloseLowest(stream_);
  }

  void DoRead() {
    parser_.emplace();
    parser_->body_limit(core_->options.max_request_bytes);
    parser_->header_limit(static_cast<uint32_t>(core_->options.max_header_bytes));
    StartPhase();
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::body_limit) return RespondAndClose(413, "Request Entity Too Large");
    if (ec == http::error::header_limit) {
      return RespondAndClose(431, "Request Header Fields Too Large");
    }
    if (ec) return Close();  // end of stream, deadline, reset, malformed HTTP
    const http::request<http::string_body>& req = parser_->get();
    headers_.clear();
    for (const auto& field : req) headers_.push_back({SV(field.name_string()), SV(field.value())});
    HttpRequest request{SV(req.method_string()), SV(req.target()), headers_, req.body()};
    request.http2 = false;
    HttpResponse r = core_->handler->Handle(request);
    core_->Count(r.status);
    keep_alive_ = req.keep_alive();
    res_ = {};
    res_.version(req.version());
    res_.result(static_cast<unsigned>(r.status));
    for (const auto& [name, value] : r.headers) res_.set(name, value);
    res_.body() = std::move(r.body);
    res_.keep_alive(keep_alive_);
    res_.prepare_payload();
    Write();
  }

  void RespondAndClose(int status, std::string_view reason) {
    core_->Count(status);
    keep_alive_ = false;
    res_ = {};
    res_.version(11);
    res_.result(static_cast<unsigned>(status));
    res_.set(http::field::content_type, "text/plain");
    res_.body() = std::string(reason) + "\n";
    res_.keep_alive(false);
    res_.prepare_payload();
    Write();
  }

  void Write() {
    StartPhase();
    http::async_write(stream_, res_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec || !self->keep_alive_) return self->Close();
                        self->DoRead();
                      });
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  ServerCore* const core_;
  ConnectionSlot slot_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::vector<HeaderView> headers_;
  http::response<http::string_body> res_;
  bool keep_alive_ = true;
  // Real time, as the idle timer of HTTP/2 connections (see ToChrono).
  asio::steady_timer deadline_timer_;
  std::chrono::steady_clock::time_point phase_start_ = std::chrono::steady_clock::now();
  bool closed_ = false;
};

// ---- HTTP/2 ----

template <class Stream>
class Http2Session : public Resumable, public std::enable_shared_from_this<Http2Session<Stream>> {
 public:
  Http2Session(Stream stream, beast::flat_buffer buffer, ServerCore* core, ConnectionSlot slot)
      : stream_(std::move(stream)),
        initial_(std::move(buffer)),
        core_(core),
        slot_(std::move(slot)),
        idle_timer_(stream_.get_executor()) {}

  ~Http2Session() override {
    streams_.clear();
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  void Run() {
    // HTTP/2 connections carry long subscriptions: no per-operation timeout; the idle timer
    // closes a connection that has no stream open and sends nothing.
    beast::get_lowest_layer(stream_).expires_never();
    nghttp2_session_callbacks* callbacks;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &OnDataChunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &OnFrameRecv);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &OnStreamClose);
    const int rv = nghttp2_session_server_new(&session_, callbacks, this);
    nghttp2_session_callbacks_del(callbacks);
    if (rv != 0) return Close();
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         static_cast<uint32_t>(core_->options.max_header_bytes)}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    // The bytes read while telling HTTP/2 from HTTP/1.1 (the preface, perhaps more).
    const auto data = initial_.data();
    if (Receive(static_cast<const uint8_t*>(data.data()), data.size())) {
      initial_.consume(initial_.size());
      DoWrite();
      DoRead();
      ArmIdleTimer();
    }
  }

  // Pump thread: look at deferred subscriptions again, in the strand.
  void Resume() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->closed_) return;
      bool any = false;
      for (auto& [id, st] : self->streams_) {
        if (st.deferred) {
          st.deferred = false;
          nghttp2_session_resume_data(self->session_, id);
          any = true;
        }
      }
      if (any) self->DoWrite();
    });
  }

 private:
  struct H2Stream {
    std::vector<std::pair<std::string, std::string>> headers;
    size_t header_bytes = 0;
    std::string body;
    bool too_large = false;
    std::string response_body;
    size_t offset = 0;
    std::unique_ptr<EventStreamSource> events;
    bool deferred = false;
  };

  static Http2Session* Self(void* user_data) { return static_cast<Http2Session*>(user_data); }

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      Self(user_data)->streams_.try_emplace(frame->hd.stream_id);
    }
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user_data) {
    Http2Session* self = Self(user_data);
    auto it = self->streams_.find(frame->hd.stream_id);
    if (it == self->streams_.end()) return 0;
    H2Stream& st = it->second;
    st.header_bytes += namelen + valuelen;
    // Refuse the stream (RST_STREAM) rather than buffer an unbounded header block.
    if (st.header_bytes > self->core_->options.max_header_bytes) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    st.headers.emplace_back(std::string(reinterpret_cast<const char*>(name), namelen),
                            std::string(reinterpret_cast<const char*>(value), valuelen));
    return 0;
  }

  static int OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user_data) {
    Http2Session* self = Self(user_data);
    auto it = self->streams_.find(stream_id);
    if (it == self->streams_.end()) return 0;
    H2Stream& st = it->second;
    if (st.too_large || st.body.size() + len > self->core_->options.max_request_bytes) {
      st.too_large = true;
      st.body.clear();
      return 0;
    }
    st.body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      Self(user_data)->OnRequest(frame->hd.stream_id);
    }
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user_data) {
    Self(user_data)->streams_.erase(stream_id);
    return 0;
  }

  static ssize_t ReadBody(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source*, void* user_data) {
    Http2Session* self = Self(user_data);
    auto it = self->streams_.find(stream_id);
    if (it == self->streams_.end()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    H2Stream& st = it->second;
    if (st.offset == st.response_body.size() && st.events != nullptr && !st.events->ended()) {
      st.response_body.clear();
      st.offset = 0;
      st.events->Fill(&st.response_body);
    }
    const size_t n = std::min(length, st.response_body.size() - st.offset);
    std::memcpy(buf, st.response_body.data() + st.offset, n);
    st.offset += n;
    if (st.offset == st.response_body.size()) {
      if (st.events == nullptr || st.events->ended()) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      } else if (n == 0) {
        st.deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    return static_cast<ssize_t>(n);
  }

  void OnRequest(int32_t stream_id) {
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) return;
    H2Stream& st = it->second;
    core_->http2_requests.fetch_add(1, std::memory_order_relaxed);
    HttpResponse r;
    if (st.too_large) {
      r.status = 413;
      r.headers.emplace_back("content-type", "text/plain");
      r.body = "Request Entity Too Large\n";
    } else {
      std::vector<HeaderView> headers;
      headers.reserve(st.headers.size());
      std::string_view method;
      std::string_view path = "/";
      std::optional<std::string_view> authority;
      bool has_host = false;
      for (const auto& [name, value] : st.headers) {
        headers.push_back({name, value});
        if (name == ":method") method = value;
        if (name == ":path") path = value;
        if (name == ":authority") authority = value;
        if (name == "host") has_host = true;
      }
      // HTTP/2 carries the host as :authority (RFC 9113 8.3.1), so a client that signed "host"
      // (libcurl, the AWS SDK for Java) sent no host header: it is the :authority, as AWS reads
      // it.
      if (authority && !has_host) headers.push_back({"host", *authority});
      HttpRequest request{method, path, headers, st.body};
      request.http2 = true;
      request.subscriptions_full = core_->open_subscriptions.load(std::memory_order_relaxed) >=
                                   core_->options.max_subscriptions;
      r = core_->handler->Handle(request);
    }
    core_->Count(r.status);
    std::vector<std::string> storage;  // nghttp2 copies names and values on submit
    const std::string status = std::to_string(r.status);
    std::vector<nghttp2_nv> nva;
    auto add = [&nva](std::string_view name, std::string_view value) {
      nva.push_back(nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                               reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())),
                               name.size(), value.size(), NGHTTP2_NV_FLAG_NONE});
    };
    add(":status", status);
    for (const auto& [name, value] : r.headers) add(name, value);
    std::string length;
    if (!r.subscription) {
      length = std::to_string(r.body.size());
      add("content-length", length);
    }
    st.response_body = std::move(r.body);
    st.offset = 0;
    if (r.subscription) {
      st.events = std::make_unique<EventStreamSource>(std::move(*r.subscription), core_);
      if (!registered_) {
        registered_ = true;
        core_->AddResumable(this->weak_from_this());
      }
    }
    nghttp2_data_provider provider;
    provider.source.ptr = nullptr;
    provider.read_callback = &ReadBody;
    nghttp2_submit_response(session_, stream_id, nva.data(), nva.size(), &provider);
  }

  // Feeds received bytes to nghttp2. False (and the connection closed) on a protocol error.
  bool Receive(const uint8_t* data, size_t n) {
    const ssize_t rv = nghttp2_session_mem_recv(session_, data, n);
    if (rv < 0) {
      Close();
      return false;
    }
    return true;
  }

  void DoRead() {
    stream_.async_read_some(asio::buffer(read_buf_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec || self->closed_) return self->Close();
                              self->last_activity_ = std::chrono::steady_clock::now();
                              if (!self->Receive(self->read_buf_.data(), n)) return;
                              self->DoWrite();
                              if (!self->closed_) self->DoRead();
                            });
  }

  void DoWrite() {
    if (writing_ || closed_) return;
    for (;;) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) return Close();
      if (n == 0) break;
      out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
      if (out_.size() >= kEventBatchBytes) break;
    }
    if (out_.empty()) {
      if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
        Close();
      }
      return;
    }
    writing_ = true;
    asio::async_write(stream_, asio::buffer(out_),
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        self->writing_ = false;
                        self->out_.clear();
                        if (ec) return self->Close();
                        self->last_activity_ = std::chrono::steady_clock::now();
                        self->DoWrite();
                      });
  }

  // Closes the connection once idle_timeout passes with no stream open and no byte received.
  void ArmIdleTimer() {
    idle_timer_.expires_after(ToChrono(core_->options.idle_timeout));
    idle_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      const auto idle = std::chrono::steady_clock::now() - self->last_activity_;
      if (self->streams_.empty() && idle >= ToChrono(self->core_->options.idle_timeout)) {
        return self->Close();
      }
      self->ArmIdleTimer();
    });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    idle_timer_.cancel();
    CloseLowest(stream_);
    streams_.clear();  // ends the subscriptions
  }

  Stream stream_;
  beast::flat_buffer initial_;
  ServerCore* const core_;
  ConnectionSlot slot_;
  asio::steady_timer idle_timer_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, H2Stream> streams_;
  std::array<uint8_t, 16384> read_buf_{};
  std::string out_;
  bool writing_ = false;
  bool closed_ = false;
  bool registered_ = false;
  // Real time, as the idle timer (see ToChrono).
  std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
};

// ---- accepting ----

// Reads the first bytes of a plain connection: the HTTP/2 preface (h2c with prior knowledge)
// or anything else (HTTP/1.1).
class PlainDetector : public std::enable_shared_from_this<PlainDetector> {
 public:
  PlainDetector(tcp::socket socket, ServerCore* core, ConnectionSlot slot)
      : stream_(std::move(socket)), core_(core), slot_(std::move(slot)) {}

  void Run() {
    stream_.expires_after(ToChrono(core_->options.idle_timeout));
    stream_.async_read_some(buffer_.prepare(kHttp2Preface.size()),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return CloseLowest(self->stream_);
                              self->buffer_.commit(n);
                              self->Decide();
                            });
  }

 private:
  void Decide() {
    const auto data = buffer_.data();
    const std::string_view seen(static_cast<const char*>(data.data()), data.size());
    const size_t n = std::min(seen.size(), kHttp2Preface.size());
    if (seen.substr(0, n) != kHttp2Preface.substr(0, n)) {
      std::make_shared<Http1Session<beast::tcp_stream>>(std::move(stream_), std::move(buffer_),
                                                        core_, std::move(slot_))
          ->Run();
    } else if (seen.size() >= kHttp2Preface.size()) {
      std::make_shared<Http2Session<beast::tcp_stream>>(std::move(stream_), std::move(buffer_),
                                                        core_, std::move(slot_))
          ->Run();
    } else {
      Run();  // a prefix of the preface so far: read on
    }
  }

  beast::tcp_stream stream_;
  ServerCore* const core_;
  ConnectionSlot slot_;
  beast::flat_buffer buffer_;
};

// TLS: the handshake, then ALPN decides (h2, else HTTP/1.1).
class TlsDetector : public std::enable_shared_from_this<TlsDetector> {
 public:
  TlsDetector(tcp::socket socket, ssl::context& context, ServerCore* core, ConnectionSlot slot)
      : stream_(std::move(socket), context), core_(core), slot_(std::move(slot)) {}

  void Run() {
    beast::get_lowest_layer(stream_).expires_after(ToChrono(core_->options.idle_timeout));
    stream_.async_handshake(ssl::stream_base::server,
                            [self = shared_from_this()](beast::error_code ec) {
                              if (ec) return CloseLowest(self->stream_);
                              self->Decide();
                            });
  }

 private:
  void Decide() {
    const unsigned char* protocol = nullptr;
    unsigned int length = 0;
    SSL_get0_alpn_selected(stream_.native_handle(), &protocol, &length);
    using Tls = beast::ssl_stream<beast::tcp_stream>;
    if (length == 2 && std::memcmp(protocol, "h2", 2) == 0) {
      std::make_shared<Http2Session<Tls>>(std::move(stream_), beast::flat_buffer(), core_,
                                          std::move(slot_))
          ->Run();
    } else {
      std::make_shared<Http1Session<Tls>>(std::move(stream_), beast::flat_buffer(), core_,
                                          std::move(slot_))
          ->Run();
    }
  }

  beast::ssl_stream<beast::tcp_stream> stream_;
  ServerCore* const core_;
  ConnectionSlot slot_;
};

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  // h2 if offered, else http/1.1 (nghttp2's helper walks the client's list).
  if (nghttp2_select_next_protocol(&selected, outlen, in, inlen) < 0) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

struct KinesisServer::Impl {
  Impl(KinesisServerOptions options, std::shared_ptr<StreamRegistry> registry,
       std::unique_ptr<internal::RequestHandler> handler)
      : core(std::move(options), std::move(registry), std::move(handler)),
        ioc(std::make_unique<asio::io_context>(core.options.io_threads)) {
    acceptor.emplace(*ioc);
  }

  void DoAccept() {
    acceptor->async_accept(asio::make_strand(*ioc),
                           [this](beast::error_code ec, tcp::socket socket) {
                             if (ec == asio::error::operation_aborted || !acceptor->is_open())
                               return;
                             if (!ec) OnAccept(std::move(socket));
                             DoAccept();
                           });
  }

  void OnAccept(tcp::socket socket) {
    if (core.open_connections.load(std::memory_order_relaxed) >= core.options.max_connections) {
      core.connections_refused.fetch_add(1, std::memory_order_relaxed);
      beast::error_code ignored;
      socket.close(ignored);
      return;
    }
    core.connections_accepted.fetch_add(1, std::memory_order_relaxed);
    ConnectionSlot slot(&core);
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (tls) {
      std::make_shared<TlsDetector>(std::move(socket), *tls, &core, std::move(slot))->Run();
    } else {
      std::make_shared<PlainDetector>(std::move(socket), &core, std::move(slot))->Run();
    }
  }

  void PumpLoop() {
    Clock& clock = *core.registry->clock();
    while (!stopping.load(std::memory_order_acquire)) {
      clock.WaitUntil(clock.Now() + kPumpInterval, core.waker);
      if (stopping.load(std::memory_order_acquire)) return;
      core.ResumeAll();
    }
  }

  ServerCore core;
  std::optional<ssl::context> tls;
  std::unique_ptr<asio::io_context> ioc;
  std::optional<tcp::acceptor> acceptor;  // reset before ioc
  uint16_t port = 0;
  std::vector<std::thread> threads;
  std::thread pump;
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};
};

absl::StatusOr<std::unique_ptr<KinesisServer>> KinesisServer::Start(
    std::shared_ptr<StreamRegistry> registry, KinesisServerOptions options) {
  if (registry == nullptr) return InvalidArgumentError("KinesisServer needs a registry");
  if (options.io_threads < 1 || options.io_threads > 256) {
    return InvalidArgumentError(
        absl::StrFormat("io_threads must be within [1, 256], not %d", options.io_threads));
  }
  if (options.credentials.empty() && !options.allow_unauthenticated) {
    return InvalidArgumentError(
        "KinesisServer needs credentials to verify requests against, or allow_unauthenticated "
        "set explicitly");
  }
  for (const ServerCredentials& c : options.credentials) {
    if (c.access_key_id.empty() || c.secret_access_key.empty()) {
      return InvalidArgumentError("a credential needs an access key id and a secret access key");
    }
  }
  if (options.max_clock_skew < absl::ZeroDuration() ||
      options.idle_timeout <= absl::ZeroDuration() || options.max_request_bytes < 1 ||
      options.max_header_bytes < 1 || options.max_connections < 1 ||
      options.max_subscriptions < 0) {
    return InvalidArgumentError(
        "max_clock_skew >= 0, idle_timeout > 0, max_request_bytes, max_header_bytes and "
        "max_connections >= 1 and max_subscriptions >= 0 are required");
  }
  if (options.tls_certificate_chain_file.empty() != options.tls_private_key_file.empty()) {
    return InvalidArgumentError(
        "TLS needs both tls_certificate_chain_file and tls_private_key_file");
  }

  std::unique_ptr<internal::Verifier> verifier;
  if (!options.allow_unauthenticated) {
    internal::VerifierOptions v;
    v.regions = {registry->region()};
    v.max_skew = options.max_clock_skew;
    std::vector<ServerCredentials> keys = options.credentials;
    verifier = std::make_unique<internal::Verifier>(
        v, [keys = std::move(keys)](std::string_view id) -> std::optional<std::string> {
          for (const ServerCredentials& c : keys) {
            if (c.access_key_id == id) return c.secret_access_key;
          }
          return std::nullopt;
        });
  }
  auto service = std::make_shared<KinesisService>(registry);
  auto handler =
      std::make_unique<internal::RequestHandler>(std::move(service), std::move(verifier));
  auto impl = std::make_unique<Impl>(options, registry, std::move(handler));

  if (!options.tls_certificate_chain_file.empty()) {
    impl->tls.emplace(ssl::context::tls_server);
    beast::error_code ec;
    impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                           ssl::context::no_tlsv1_1);
    impl->tls->use_certificate_chain_file(options.tls_certificate_chain_file, ec);
    if (ec) {
      return InvalidArgumentError(absl::StrFormat("cannot load the TLS certificate chain %s: %s",
                                                  options.tls_certificate_chain_file,
                                                  ec.message()));
    }
    impl->tls->use_private_key_file(options.tls_private_key_file, ssl::context::pem, ec);
    if (ec) {
      return InvalidArgumentError(absl::StrFormat("cannot load the TLS private key %s: %s",
                                                  options.tls_private_key_file, ec.message()));
    }
    SSL_CTX_set_alpn_select_cb(impl->tls->native_handle(), &SelectAlpn, nullptr);
  }

  beast::error_code ec;
  const asio::ip::address address = asio::ip::make_address(options.host, ec);
  if (ec) {
    return InvalidArgumentError(
        absl::StrFormat("host %s is not an IP address: %s", options.host, ec.message()));
  }
  const tcp::endpoint endpoint(address, options.port);
  impl->acceptor->open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor->bind(endpoint, ec);
  if (!ec) impl->acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return InternalFailureError(
        absl::StrFormat("cannot listen on %s:%d: %s", options.host, options.port, ec.message()));
  }
  impl->port = impl->acceptor->local_endpoint().port();
  impl->DoAccept();
  for (int i = 0; i < options.io_threads; ++i) {
    impl->threads.emplace_back([ioc = impl->ioc.get()] { ioc->run(); });
  }
  impl->pump = std::thread([p = impl.get()] { p->PumpLoop(); });
  return std::unique_ptr<KinesisServer>(new KinesisServer(std::move(impl)));
}

KinesisServer::KinesisServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KinesisServer::~KinesisServer() { Stop(); }

uint16_t KinesisServer::port() const { return impl_->port; }

std::string KinesisServer::endpoint() const {
  return absl::StrFormat("%s://%s:%d", impl_->tls ? "https" : "http", impl_->core.options.host,
                         impl_->port);
}

KinesisServerStats KinesisServer::stats() const {
  const ServerCore& c = impl_->core;
  KinesisServerStats s;
  s.connections_accepted = c.connections_accepted.load(std::memory_order_relaxed);
  s.connections_refused = c.connections_refused.load(std::memory_order_relaxed);
  s.requests = c.requests.load(std::memory_order_relaxed);
  s.error_responses = c.error_responses.load(std::memory_order_relaxed);
  s.http2_requests = c.http2_requests.load(std::memory_order_relaxed);
  s.subscriptions_started = c.subscriptions_started.load(std::memory_order_relaxed);
  s.subscription_events = c.subscription_events.load(std::memory_order_relaxed);
  s.open_connections = c.open_connections.load(std::memory_order_relaxed);
  s.open_subscriptions = c.open_subscriptions.load(std::memory_order_relaxed);
  return s;
}

void KinesisServer::Stop() {
  if (impl_->stopped.exchange(true)) return;
  // Stop accepting, let the running handlers finish, then drop every connection: destroying the
  // io_context destroys the sessions its pending operations hold (subscriptions end).
  asio::post(*impl_->ioc, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor->close(ignored);
  });
  impl_->ioc->stop();
  for (std::thread& t : impl_->threads) t.join();
  impl_->threads.clear();
  impl_->stopping.store(true, std::memory_order_release);
  impl_->core.waker.Interrupt();
  if (impl_->pump.joinable()) impl_->pump.join();
  impl_->acceptor.reset();
  impl_->ioc.reset();
}

}  // namespace rill::net
