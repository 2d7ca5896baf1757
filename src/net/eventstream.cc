#include "net/eventstream.h"

#include <zlib.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "net/strings.h"

namespace rill::net::internal {
namespace {

uint32_t Crc32(uint32_t crc, std::string_view bytes) {
  return static_cast<uint32_t>(
      crc32_z(crc, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

void PutBe(uint64_t v, int bytes, std::string* out) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void StoreBe32(uint32_t v, char* p) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

uint64_t LoadBe(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

size_t EncodedValueSize(const HeaderValue& value) {
  switch (value.index()) {
    case 0:  // bool
      return 1;
    case 1:  // int8_t
      return 2;
    case 2:  // int16_t
      return 3;
    case 3:  // int32_t
      return 5;
    case 4:  // int64_t
      return 9;
    case 5:
      return 3 + std::get<HeaderBytes>(value).data.size();
    case 6:
      return 3 + std::get<std::string>(value).size();
    case 7:  // timestamp
      return 9;
    default:  // uuid
      return 17;
  }
}

void AppendValue(const HeaderValue& value, std::string* out) {
  switch (value.index()) {
    case 0:
      out->push_back(static_cast<char>(std::get<bool>(value) ? HeaderType::kBoolTrue
                                                             : HeaderType::kBoolFalse));
      return;
    case 1:
      out->push_back(static_cast<char>(HeaderType::kByte));
      out->push_back(static_cast<char>(std::get<int8_t>(value)));
      return;
    case 2:
      out->push_back(static_cast<char>(HeaderType::kShort));
      PutBe(static_cast<uint16_t>(std::get<int16_t>(value)), 2, out);
      return;
    case 3:
      out->push_back(static_cast<char>(HeaderType::kInt));
      PutBe(static_cast<uint32_t>(std::get<int32_t>(value)), 4, out);
      return;
    case 4:
      out->push_back(static_cast<char>(HeaderType::kLong));
      PutBe(static_cast<uint64_t>(std::get<int64_t>(value)), 8, out);
      return;
    case 5: {
      const std::string& d = std::get<HeaderBytes>(value).data;
      out->push_back(static_cast<char>(HeaderType::kBytes));
      PutBe(d.size(), 2, out);
      out->append(d);
      return;
    }
    case 6: {
      const std::string& s = std::get<std::string>(value);
      out->push_back(static_cast<char>(HeaderType::kString));
      PutBe(s.size(), 2, out);
      out->append(s);
      return;
    }
    case 7:
      out->push_back(static_cast<char>(HeaderType::kTimestamp));
      PutBe(static_cast<uint64_t>(std::get<HeaderTimestamp>(value).millis_since_epoch), 8, out);
      return;
    default: {
      out->push_back(static_cast<char>(HeaderType::kUuid));
      const auto& b = std::get<HeaderUuid>(value).bytes;
      out->append(reinterpret_cast<const char*>(b.data()), b.size());
      return;
    }
  }
}

// Grows `out` to hold `size` bytes, geometrically: an exact reserve per appended frame would copy
// the whole buffer for every frame.
void Reserve(size_t size, std::string* out) {
  if (out->capacity() < size) out->reserve(std::max(size, 2 * out->capacity()));
}

// Writes the prelude for a message of `total` bytes with `headers` header bytes at `p`.
void WritePrelude(uint32_t total, uint32_t headers, char* p) {
  StoreBe32(total, p);
  StoreBe32(headers, p + 4);
  StoreBe32(Crc32(0, std::string_view(p, 8)), p + 8);
}

// Appends a string header (name < 256, value < 65536 bytes) without building a Message.
void AppendStringHeader(std::string_view name, std::string_view value, std::string* out) {
  out->push_back(static_cast<char>(name.size()));
  out->append(name);
  out->push_back(static_cast<char>(HeaderType::kString));
  PutBe(value.size(), 2, out);
  out->append(value);
}

void AppendKinesisFrame(std::string_view type_header, std::string_view message_type,
                        std::string_view type, std::string_view json, std::string* out) {
  static constexpr std::string_view kContentType = "application/json";
  assert(type.size() <= kMaxHeaderValueBytes);
  const size_t headers = (1 + 13 + 3 + message_type.size()) +
                         (1 + type_header.size() + 3 + type.size()) +
                         (1 + 13 + 3 + kContentType.size());
  const size_t total = kPreludeBytes + headers + json.size() + 4;
  assert(total <= std::numeric_limits<uint32_t>::max());
  const size_t start = out->size();
  Reserve(start + total, out);
  out->resize(start + kPreludeBytes);
  WritePrelude(static_cast<uint32_t>(total), static_cast<uint32_t>(headers), out->data() + start);
  AppendStringHeader(":message-type", message_type, out);
  AppendStringHeader(type_header, type, out);
  AppendStringHeader(":content-type", kContentType, out);
  out->append(json);
  const uint32_t crc = Crc32(0, std::string_view(*out).substr(start));
  PutBe(crc, 4, out);
}

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(Cat("event stream: ", what));
}

std::string Hex32(uint32_t v) {
  char buf[11];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

// Checks the 12-byte prelude at `p`; on success sets the lengths.
absl::Status CheckPrelude(const char* p, size_t max_message_bytes, uint32_t* total,
                          uint32_t* headers) {
  const auto stored = static_cast<uint32_t>(LoadBe(p + 8, 4));
  const uint32_t computed = Crc32(0, std::string_view(p, 8));
  if (stored != computed) {
    return Malformed(
        Cat("prelude CRC mismatch (stored ", Hex32(stored), ", computed ", Hex32(computed), ")"));
  }
  *total = static_cast<uint32_t>(LoadBe(p, 4));
  *headers = static_cast<uint32_t>(LoadBe(p + 4, 4));
  if (*total < kMinMessageBytes) {
    return Malformed(Cat("total length ", *total, " is below the minimum of ", kMinMessageBytes));
  }
  if (*total > max_message_bytes) {
    return Malformed(Cat("total length ", *total, " exceeds the maximum of ", max_message_bytes));
  }
  if (*headers > *total - kMinMessageBytes) {
    return Malformed(Cat("headers length ", *headers, " does not fit in total length ", *total));
  }
  return absl::OkStatus();
}

absl::Status ParseHeaders(std::string_view h, std::vector<Header>* out) {
  size_t pos = 0;
  auto need = [&](size_t n, std::string_view what) -> absl::Status {
    if (h.size() - pos < n) {
      return Malformed(
          Cat("truncated header ", what, " at offset ", pos, " of the headers section"));
    }
    return absl::OkStatus();
  };
  while (pos < h.size()) {
    const auto name_len = static_cast<unsigned char>(h[pos++]);
    if (name_len == 0) {
      // The encoder cannot write one either: names are 1 to 255 bytes.
      return Malformed(Cat("empty header name at offset ", pos - 1, " of the headers section"));
    }
    if (absl::Status s = need(name_len + size_t{1}, "name"); !s.ok()) return s;
    Header header;
    header.name.assign(h.substr(pos, name_len));
    pos += name_len;
    const auto type = static_cast<unsigned char>(h[pos++]);
    switch (static_cast<HeaderType>(type)) {
      case HeaderType::kBoolTrue:
        header.value = true;
        break;
      case HeaderType::kBoolFalse:
        header.value = false;
        break;
      case HeaderType::kByte:
        if (absl::Status s = need(1, "value"); !s.ok()) return s;
        header.value = static_cast<int8_t>(h[pos]);
        pos += 1;
        break;
      case HeaderType::kShort:
        if (absl::Status s = need(2, "value"); !s.ok()) return s;
        header.value = static_cast<int16_t>(static_cast<uint16_t>(LoadBe(h.data() + pos, 2)));
        pos += 2;
        break;
      case HeaderType::kInt:
        if (absl::Status s = need(4, "value"); !s.ok()) return s;
        header.value = static_cast<int32_t>(static_cast<uint32_t>(LoadBe(h.data() + pos, 4)));
        pos += 4;
        break;
      case HeaderType::kLong:
      case HeaderType::kTimestamp: {
        if (absl::Status s = need(8, "value"); !s.ok()) return s;
        const auto v = static_cast<int64_t>(LoadBe(h.data() + pos, 8));
        pos += 8;
        if (static_cast<HeaderType>(type) == HeaderType::kLong) {
          header.value = v;
        } else {
          header.value = HeaderTimestamp{v};
        }
        break;
      }
      case HeaderType::kBytes:
      case HeaderType::kString: {
        if (absl::Status s = need(2, "value length"); !s.ok()) return s;
        const auto len = static_cast<size_t>(LoadBe(h.data() + pos, 2));
        pos += 2;
        if (absl::Status s = need(len, "value"); !s.ok()) return s;
        std::string v(h.substr(pos, len));
        pos += len;
        if (static_cast<HeaderType>(type) == HeaderType::kBytes) {
          header.value = HeaderBytes{std::move(v)};
        } else {
          header.value = std::move(v);
        }
        break;
      }
      case HeaderType::kUuid: {
        if (absl::Status s = need(16, "value"); !s.ok()) return s;
        HeaderUuid u;
        std::memcpy(u.bytes.data(), h.data() + pos, 16);
        pos += 16;
        header.value = u;
        break;
      }
      default:
        return Malformed(Cat("unknown header value type ", type, " of header '", header.name, "'"));
    }
    out->push_back(std::move(header));
  }
  return absl::OkStatus();
}

// Decodes a whole message whose prelude CheckPrelude accepted; `frame` is exactly `total` bytes.
absl::StatusOr<Message> DecodeChecked(std::string_view frame, uint32_t headers) {
  const auto stored = static_cast<uint32_t>(LoadBe(frame.data() + frame.size() - 4, 4));
  const uint32_t computed = Crc32(0, frame.substr(0, frame.size() - 4));
  if (stored != computed) {
    return Malformed(
        Cat("message CRC mismatch (stored ", Hex32(stored), ", computed ", Hex32(computed), ")"));
  }
  Message m;
  if (absl::Status s = ParseHeaders(frame.substr(kPreludeBytes, headers), &m.headers); !s.ok()) {
    return s;
  }
  m.payload.assign(
      frame.substr(kPreludeBytes + headers, frame.size() - kMinMessageBytes - headers));
  return m;
}

}  // namespace

const HeaderValue* Message::Find(std::string_view name) const {
  for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
    if (it->name == name) return &it->value;
  }
  return nullptr;
}

std::optional<std::string_view> Message::GetString(std::string_view name) const {
  const HeaderValue* v = Find(name);
  if (v == nullptr || !std::holds_alternative<std::string>(*v)) return std::nullopt;
  return std::string_view(std::get<std::string>(*v));
}

absl::Status AppendEncoded(const Message& message, std::string* out) {
  size_t headers = 0;
  for (const Header& h : message.headers) {
    if (h.name.empty() || h.name.size() > kMaxHeaderNameBytes) {
      return absl::InvalidArgumentError(
          Cat("event stream: header name must be 1 to 255 bytes, got ", h.name.size()));
    }
    const size_t value_size = EncodedValueSize(h.value);
    if (value_size > 3 + kMaxHeaderValueBytes) {
      return absl::InvalidArgumentError(
          Cat("event stream: value of header '", h.name, "' exceeds 65535 bytes"));
    }
    headers += 1 + h.name.size() + value_size;
  }
  const size_t total = kMinMessageBytes + headers + message.payload.size();
  if (total > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(
        Cat("event stream: message of ", total, " bytes exceeds 4 GiB"));
  }
  const size_t start = out->size();
  Reserve(start + total, out);
  out->resize(start + kPreludeBytes);
  WritePrelude(static_cast<uint32_t>(total), static_cast<uint32_t>(headers), out->data() + start);
  for (const Header& h : message.headers) {
    out->push_back(static_cast<char>(h.name.size()));
    out->append(h.name);
    AppendValue(h.value, out);
  }
  out->append(message.payload);
  PutBe(Crc32(0, std::string_view(*out).substr(start)), 4, out);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Encode(const Message& message) {
  std::string out;
  if (absl::Status s = AppendEncoded(message, &out); !s.ok()) return s;
  return out;
}

void AppendEventFrame(std::string_view event_type, std::string_view json_payload,
                      std::string* out) {
  AppendKinesisFrame(":event-type", "event", event_type, json_payload, out);
}

void AppendExceptionFrame(std::string_view exception_type, std::string_view json_payload,
                          std::string* out) {
  AppendKinesisFrame(":exception-type", "exception", exception_type, json_payload, out);
}

Message MakeEvent(std::string_view event_type, std::string json_payload) {
  Message m;
  m.headers = {{":message-type", std::string("event")},
               {":event-type", std::string(event_type)},
               {":content-type", std::string("application/json")}};
  m.payload = std::move(json_payload);
  return m;
}

Message MakeException(std::string_view exception_type, std::string json_payload) {
  Message m;
  m.headers = {{":message-type", std::string("exception")},
               {":exception-type", std::string(exception_type)},
               {":content-type", std::string("application/json")}};
  m.payload = std::move(json_payload);
  return m;
}

absl::StatusOr<Message> DecodeMessage(std::string_view frame, size_t max_message_bytes) {
  if (frame.size() < kPreludeBytes) {
    return Malformed(Cat("truncated prelude: ", frame.size(), " bytes"));
  }
  uint32_t total = 0, headers = 0;
  if (absl::Status s = CheckPrelude(frame.data(), max_message_bytes, &total, &headers); !s.ok()) {
    return s;
  }
  if (frame.size() != total) {
    return Malformed(Cat("frame of ", frame.size(), " bytes holds a message of ", total, " bytes"));
  }
  return DecodeChecked(frame, headers);
}

Decoder::Decoder(size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

absl::Status Decoder::Feed(std::string_view bytes, std::vector<Message>* out) {
  if (!error_.ok()) return error_;
  // Compact before appending, so that the buffer holds at most one partial message plus `bytes`.
  if (consumed_ > 0) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  // Fast path: decode straight from `bytes` while nothing is buffered.
  std::string_view input = bytes;
  const bool from_buffer = !buffer_.empty();
  if (from_buffer) {
    buffer_.append(bytes);
    input = buffer_;
  }
  size_t pos = 0;
  while (input.size() - pos >= kPreludeBytes) {
    uint32_t total = 0, headers = 0;
    error_ = CheckPrelude(input.data() + pos, max_message_bytes_, &total, &headers);
    if (!error_.ok()) break;
    if (input.size() - pos < total) break;
    absl::StatusOr<Message> m = DecodeChecked(input.substr(pos, total), headers);
    if (!m.ok()) {
      error_ = m.status();
      break;
    }
    out->push_back(*std::move(m));
    pos += total;
  }
  if (!error_.ok()) {
    buffer_.clear();
    consumed_ = 0;
    return error_;
  }
  if (from_buffer) {
    consumed_ = pos;
  } else {
    buffer_.assign(input.substr(pos));
  }
  return absl::OkStatus();
}

absl::Status Decoder::Finish() const {
  if (!error_.ok()) return error_;
  if (buffered_bytes() > 0) {
    return Malformed(
        Cat("stream truncated inside a message (", buffered_bytes(), " bytes buffered)"));
  }
  return absl::OkStatus();
}

}  // namespace rill::net::internal
