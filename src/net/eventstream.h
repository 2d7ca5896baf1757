// The AWS event stream message codec (content type "application/vnd.amazon.eventstream"), the
// framing of Kinesis' SubscribeToShard response.
//
// One message on the wire, all integers big-endian:
//   total length   u32   the whole message, these 4 bytes and the trailing CRC included
//   headers length u32   the bytes of the headers section
//   prelude CRC    u32   CRC-32 (IEEE, as zlib) of the 8 bytes above
//   headers              each: name length u8, name, type u8, value (see HeaderType)
//   payload              total - headers - 16 bytes
//   message CRC    u32   CRC-32 of everything before it, prelude CRC included
// This is what the JS SDK v3's EventStreamCodec (@smithy/core event-streams) writes and reads.
//
// Example (server, one frame per SubscribeToShardEvent, no allocation once `out` has grown):
//   std::string out;
//   AppendEventFrame("SubscribeToShardEvent", json, &out);
//   write(out); out.clear();
//
// Example (client):
//   Decoder decoder;
//   std::vector<Message> messages;
//   absl::Status s = decoder.Feed(chunk, &messages);   // any split of the byte stream
//   for (const Message& m : messages) { ... m.GetString(":event-type") ... }
//
// Thread safety: the free functions are thread-safe; a Decoder is not (one per stream).
#ifndef RILL_NET_EVENTSTREAM_H_
#define RILL_NET_EVENTSTREAM_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rill::net::internal {

// The header value type bytes. Pinned by the wire format: never renumber.
enum class HeaderType : uint8_t {
  kBoolTrue = 0,   // no value bytes
  kBoolFalse = 1,  // no value bytes
  kByte = 2,       // i8
  kShort = 3,      // i16
  kInt = 4,        // i32
  kLong = 5,       // i64
  kBytes = 6,      // u16 length + bytes
  kString = 7,     // u16 length + UTF-8 bytes
  kTimestamp = 8,  // i64 milliseconds since the Unix epoch
  kUuid = 9,       // 16 bytes
};

// Distinct types for the values whose C++ representation would otherwise collide.
struct HeaderBytes {
  std::string data;
  friend bool operator==(const HeaderBytes&, const HeaderBytes&) = default;
};
struct HeaderTimestamp {
  int64_t millis_since_epoch = 0;
  friend bool operator==(const HeaderTimestamp&, const HeaderTimestamp&) = default;
};
struct HeaderUuid {
  std::array<uint8_t, 16> bytes{};
  friend bool operator==(const HeaderUuid&, const HeaderUuid&) = default;
};

// bool -> kBoolTrue/kBoolFalse, int8_t -> kByte, int16_t -> kShort, int32_t -> kInt,
// int64_t -> kLong, HeaderBytes -> kBytes, std::string -> kString, HeaderTimestamp -> kTimestamp,
// HeaderUuid -> kUuid.
using HeaderValue = std::variant<bool, int8_t, int16_t, int32_t, int64_t, HeaderBytes, std::string,
                                 HeaderTimestamp, HeaderUuid>;

struct Header {
  std::string name;  // 1..255 bytes on encode
  HeaderValue value;
  friend bool operator==(const Header&, const Header&) = default;
};

struct Message {
  std::vector<Header> headers;  // in wire order; names may repeat (the SDK keeps the last)
  std::string payload;

  // The value of the last header named `name`, or nullptr.
  const HeaderValue* Find(std::string_view name) const;
  // The value of the last string header named `name`; nullopt if absent or not a string.
  std::optional<std::string_view> GetString(std::string_view name) const;

  friend bool operator==(const Message&, const Message&) = default;
};

inline constexpr size_t kPreludeBytes = 12;     // two lengths and the prelude CRC
inline constexpr size_t kMinMessageBytes = 16;  // prelude and message CRC, nothing else
inline constexpr size_t kMaxHeaderNameBytes = 255;
inline constexpr size_t kMaxHeaderValueBytes = 65535;  // u16 length of kBytes and kString
// The default largest message a Decoder accepts: a 16 MiB payload plus 128 KiB of headers and
// framing (AWS' limit for event stream messages is 16 MiB of payload).
inline constexpr size_t kDefaultMaxMessageBytes = (size_t{16} << 20) + (size_t{128} << 10);

// Appends the encoded message to `*out`. InvalidArgument if a header name is empty or longer than
// 255 bytes, a kBytes/kString value is longer than 65535 bytes, or the message exceeds 4 GiB;
// `*out` is then unchanged. Allocates only if `*out` must grow.
[[nodiscard]] absl::Status AppendEncoded(const Message& message, std::string* out);

// The encoded message (see AppendEncoded).
[[nodiscard]] absl::StatusOr<std::string> Encode(const Message& message);

// Kinesis frames, as the SDK's deserializer dispatches them:
//   event:     :message-type "event", :event-type <event_type>, :content-type "application/json"
//   exception: :message-type "exception", :exception-type <exception_type>,
//              :content-type "application/json"
// The type names must be at most 65535 bytes and the whole frame below 4 GiB (not checked beyond
// a debug assertion: callers pass constants such as "SubscribeToShardEvent" and bounded JSON).
// The Append* functions write straight into `*out`, allocating only if it must grow.
void AppendEventFrame(std::string_view event_type, std::string_view json_payload, std::string* out);
void AppendExceptionFrame(std::string_view exception_type, std::string_view json_payload,
                          std::string* out);
Message MakeEvent(std::string_view event_type, std::string json_payload);
Message MakeException(std::string_view exception_type, std::string json_payload);

// Decodes exactly one message occupying all of `frame`. InvalidArgument on any malformation
// (see Decoder), or if `frame` holds more or less than the message's total length.
[[nodiscard]] absl::StatusOr<Message> DecodeMessage(
    std::string_view frame, size_t max_message_bytes = kDefaultMaxMessageBytes);

// An incremental decoder: feed it the byte stream in chunks of any size; it yields each message
// once all its bytes have arrived. It buffers at most one incomplete message (and rejects one
// whose declared length exceeds `max_message_bytes` as soon as the 12-byte prelude is in, before
// buffering it).
//
// Errors (InvalidArgument, with a message naming the fault): prelude CRC mismatch, total length
// < 16 or > max_message_bytes, headers length > total - 16, message CRC mismatch, a header that
// runs past the headers section, an empty header name, an unknown header type. After an error the
// decoder is failed: every later Feed returns the same error and yields nothing. It never reads out
// of bounds.
//
// Thread safety: not thread-safe. Allocation: buffers the bytes of an incomplete message and
// builds each Message (its strings and vector).
class Decoder {
 public:
  // REQUIRES: max_message_bytes >= kMinMessageBytes.
  explicit Decoder(size_t max_message_bytes = kDefaultMaxMessageBytes);

  // Consumes `bytes`, appending every message it completes to `*out` (in order). Messages
  // completed before an error in the same chunk are still appended.
  [[nodiscard]] absl::Status Feed(std::string_view bytes, std::vector<Message>* out);

  // At the end of the stream: OK if no partial message is buffered (and no error happened),
  // otherwise InvalidArgument ("truncated").
  [[nodiscard]] absl::Status Finish() const;

  // Bytes of the incomplete message buffered so far.
  size_t buffered_bytes() const { return buffer_.size() - consumed_; }
  size_t max_message_bytes() const { return max_message_bytes_; }

 private:
  size_t max_message_bytes_;
  std::string buffer_;
  size_t consumed_ = 0;  // bytes of buffer_ already decoded
  absl::Status error_;
};

}  // namespace rill::net::internal

#endif  // RILL_NET_EVENTSTREAM_H_
