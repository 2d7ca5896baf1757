#include "net/eventstream.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

namespace rill::net::internal {
namespace {

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// An independent bitwise CRC-32 (IEEE 802.3, reflected 0xEDB88320), to build frames by hand and to
// check the codec's zlib-based one.
uint32_t ReferenceCrc32(std::string_view data) {
  uint32_t crc = 0xffffffffu;
  for (char ch : data) {
    crc ^= static_cast<unsigned char>(ch);
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void PutBe32(uint32_t v, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

uint32_t GetBe32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

// A frame with the given raw headers section and payload and correct CRCs; `total` and
// `headers_length` override the true lengths (the prelude CRC still matches what is written).
std::string RawFrame(std::string_view headers, std::string_view payload, int64_t total = -1,
                     int64_t headers_length = -1) {
  std::string f;
  PutBe32(static_cast<uint32_t>(total >= 0 ? total : 16 + headers.size() + payload.size()), &f);
  PutBe32(static_cast<uint32_t>(headers_length >= 0 ? headers_length : headers.size()), &f);
  PutBe32(ReferenceCrc32(f), &f);
  f.append(headers);
  f.append(payload);
  PutBe32(ReferenceCrc32(f), &f);
  return f;
}

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out.push_back(kDigits[static_cast<unsigned char>(c) >> 4]);
    out.push_back(kDigits[static_cast<unsigned char>(c) & 0xf]);
  }
  return out;
}

std::string EncodeOrDie(const Message& m) {
  absl::StatusOr<std::string> e = Encode(m);
  REQUIRE(e.ok());
  return *e;
}

constexpr std::string_view kRecordsJson =
    R"({"Records":[{"SequenceNumber":"49680901281829132986750564613529646861259661714053398530",)"
    R"("ApproximateArrivalTimestamp":1733500000.123,"Data":"aGVsbG8=","PartitionKey":"pk1"}],)"
    R"("ContinuationSequenceNumber":"49680901281829132986750564613529646861259661714053398530",)"
    R"("MillisBehindLatest":0})";

Message EveryHeaderType() {
  Message m;
  m.headers = {{"t", true},
               {"f", false},
               {"byte", int8_t{-5}},
               {"short", int16_t{-300}},
               {"int", int32_t{70000}},
               {"long", int64_t{-1234567890123}},
               {"bytes", HeaderBytes{std::string("\x00\x01\xfe\xff", 4)}},
               {"string", std::string("h\xc3\xa9llo")},
               {"timestamp", HeaderTimestamp{1700000000123}},
               {"uuid", HeaderUuid{{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23,
                                    0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}}}};
  m.payload = std::string("\x00\xff\x10\x80", 4);
  return m;
}

struct GoldenFrame {
  const char* name;
  const char* hex;
};

// Frames written by the JS SDK's EventStreamCodec (tests/net/golden/eventstream_golden.js).
constexpr GoldenFrame kGolden[] = {
#include "net/golden/eventstream_golden.inc"
};

Message ExpectedGolden(std::string_view name) {
  if (name == "initial_response") return MakeEvent("initial-response", "{}");
  if (name == "subscribe_to_shard_event") {
    return MakeEvent("SubscribeToShardEvent", std::string(kRecordsJson));
  }
  if (name == "resource_in_use_exception") {
    return MakeException("ResourceInUseException",
                         R"({"message":"Another active subscription exists"})");
  }
  if (name == "empty") return Message{};
  if (name == "every_header_type") return EveryHeaderType();
  FAIL("unknown golden frame " << name);
  return {};
}

std::string AllGoldenBytes() {
  std::string all;
  for (const GoldenFrame& g : kGolden) all += Unhex(g.hex);
  return all;
}

TEST_CASE("The encoder writes the JS SDK's exact bytes and decodes them back", "[eventstream]") {
  REQUIRE(std::size(kGolden) == 5);
  for (const GoldenFrame& g : kGolden) {
    INFO(g.name);
    const Message expected = ExpectedGolden(g.name);
    CHECK(Hex(EncodeOrDie(expected)) == g.hex);
    absl::StatusOr<Message> decoded = DecodeMessage(Unhex(g.hex));
    REQUIRE(decoded.ok());
    CHECK(*decoded == expected);
  }
}

TEST_CASE("Kinesis event and exception frames carry the headers the SDK dispatches on",
          "[eventstream]") {
  std::string out = "prefix";
  AppendEventFrame("SubscribeToShardEvent", kRecordsJson, &out);
  CHECK(out.substr(0, 6) == "prefix");
  CHECK(out.substr(6) ==
        EncodeOrDie(MakeEvent("SubscribeToShardEvent", std::string(kRecordsJson))));
  absl::StatusOr<Message> event = DecodeMessage(std::string_view(out).substr(6));
  REQUIRE(event.ok());
  CHECK(event->GetString(":message-type") == "event");
  CHECK(event->GetString(":event-type") == "SubscribeToShardEvent");
  CHECK(event->GetString(":content-type") == "application/json");
  CHECK(event->payload == kRecordsJson);

  std::string exception;
  AppendExceptionFrame("ResourceNotFoundException", R"({"message":"gone"})", &exception);
  CHECK(exception ==
        EncodeOrDie(MakeException("ResourceNotFoundException", R"({"message":"gone"})")));
  absl::StatusOr<Message> decoded = DecodeMessage(exception);
  REQUIRE(decoded.ok());
  CHECK(decoded->GetString(":message-type") == "exception");
  CHECK(decoded->GetString(":exception-type") == "ResourceNotFoundException");
  CHECK(decoded->GetString(":event-type") == std::nullopt);
  CHECK(decoded->Find("missing") == nullptr);

  // The CRCs are zlib's CRC-32, the one the reference implementation computes.
  CHECK(GetBe32(exception, 8) == ReferenceCrc32(std::string_view(exception).substr(0, 8)));
  CHECK(GetBe32(exception, exception.size() - 4) ==
        ReferenceCrc32(std::string_view(exception).substr(0, exception.size() - 4)));
}

TEST_CASE("Every header type round-trips including extreme values", "[eventstream]") {
  Message m = EveryHeaderType();
  m.headers.push_back({"min-byte", std::numeric_limits<int8_t>::min()});
  m.headers.push_back({"max-short", std::numeric_limits<int16_t>::max()});
  m.headers.push_back({"min-int", std::numeric_limits<int32_t>::min()});
  m.headers.push_back({"max-long", std::numeric_limits<int64_t>::max()});
  m.headers.push_back({"min-long", std::numeric_limits<int64_t>::min()});
  m.headers.push_back({"negative-time", HeaderTimestamp{-1}});
  m.headers.push_back({"empty-string", std::string()});
  m.headers.push_back({"empty-bytes", HeaderBytes{}});
  m.headers.push_back({"largest-string", std::string(kMaxHeaderValueBytes, 'x')});
  m.headers.push_back({std::string(kMaxHeaderNameBytes, 'n'), true});
  m.headers.push_back({"t", false});  // a repeated name: Find returns the last
  const std::string bytes = EncodeOrDie(m);
  absl::StatusOr<Message> decoded = DecodeMessage(bytes);
  REQUIRE(decoded.ok());
  CHECK(*decoded == m);
  REQUIRE(decoded->Find("t") != nullptr);
  CHECK(std::get<bool>(*decoded->Find("t")) == false);
  CHECK(decoded->GetString("long") == std::nullopt);  // not a string
}

TEST_CASE("The encoder rejects headers the format cannot hold", "[eventstream]") {
  std::string out = "keep";
  Message m;
  m.headers = {{"", true}};
  CHECK(absl::IsInvalidArgument(AppendEncoded(m, &out)));
  m.headers = {{std::string(kMaxHeaderNameBytes + 1, 'n'), true}};
  CHECK(absl::IsInvalidArgument(AppendEncoded(m, &out)));
  m.headers = {{"s", std::string(kMaxHeaderValueBytes + 1, 'x')}};
  CHECK(absl::IsInvalidArgument(AppendEncoded(m, &out)));
  m.headers = {{"b", HeaderBytes{std::string(kMaxHeaderValueBytes + 1, 'x')}}};
  CHECK(absl::IsInvalidArgument(Encode(m).status()));
  CHECK(out == "keep");
}

TEST_CASE("The decoder yields the same messages for any split of the stream", "[eventstream]") {
  const std::string all = AllGoldenBytes();
  std::vector<Message> expected;
  for (const GoldenFrame& g : kGolden) expected.push_back(ExpectedGolden(g.name));

  SECTION("all at once") {
    Decoder decoder;
    std::vector<Message> got;
    REQUIRE(decoder.Feed(all, &got).ok());
    CHECK(got == expected);
    CHECK(decoder.Finish().ok());
  }
  SECTION("one byte at a time") {
    size_t largest = 0;
    for (const GoldenFrame& g : kGolden) largest = std::max(largest, Unhex(g.hex).size());
    Decoder decoder;
    std::vector<Message> got;
    for (size_t i = 0; i < all.size(); ++i) {
      REQUIRE(decoder.Feed(std::string_view(all).substr(i, 1), &got).ok());
      CHECK(decoder.buffered_bytes() < largest);
    }
    CHECK(got == expected);
    CHECK(decoder.buffered_bytes() == 0);
    CHECK(decoder.Finish().ok());
  }
  SECTION("random splits") {
    std::mt19937 rng(15);
    for (int round = 0; round < 200; ++round) {
      Decoder decoder;
      std::vector<Message> got;
      size_t pos = 0;
      while (pos < all.size()) {
        const size_t n = std::uniform_int_distribution<size_t>(0, 64)(rng);
        REQUIRE(decoder.Feed(std::string_view(all).substr(pos, n), &got).ok());
        pos += std::min(n, all.size() - pos);
      }
      REQUIRE(got == expected);
      REQUIRE(decoder.Finish().ok());
    }
  }
}

std::string FlipByte(std::string s, size_t at) {
  s[at] = static_cast<char>(s[at] ^ 0x40);
  return s;
}

// Feeds `bytes` to a fresh decoder and returns the error (checking that one happened).
absl::Status FeedError(std::string_view bytes, size_t max = kDefaultMaxMessageBytes) {
  Decoder decoder(max);
  std::vector<Message> got;
  const absl::Status s = decoder.Feed(bytes, &got);
  CHECK(got.empty());
  CHECK(absl::IsInvalidArgument(s));
  // The decoder stays failed, and says so at the end of the stream too.
  CHECK(decoder.Feed(EncodeOrDie(Message{}), &got) == s);
  CHECK(got.empty());
  CHECK(decoder.Finish() == s);
  return s;
}

bool Contains(const absl::Status& s, std::string_view text) {
  return Msg(s).find(text) != std::string::npos;
}

TEST_CASE("The decoder rejects every corruption with a clear status", "[eventstream]") {
  const std::string good = EncodeOrDie(MakeEvent("SubscribeToShardEvent", "{}"));

  SECTION("prelude CRC") {
    for (size_t at = 0; at < kPreludeBytes; ++at) {
      CHECK(Contains(FeedError(FlipByte(good, at)), "prelude CRC mismatch"));
    }
  }
  SECTION("message CRC") {
    for (size_t at = kPreludeBytes; at < good.size(); ++at) {
      CHECK(Contains(FeedError(FlipByte(good, at)), "message CRC mismatch"));
    }
  }
  SECTION("total length below 16") {
    for (int64_t total : {0, 12, 15}) {
      CHECK(Msg(FeedError(RawFrame("", "", total, 0))) ==
            "event stream: total length " + std::to_string(total) + " is below the minimum of 16");
    }
  }
  SECTION("total length above the maximum, rejected from the prelude alone") {
    const std::string big = RawFrame("", std::string(100, 'p'));
    CHECK(Msg(FeedError(std::string_view(big).substr(0, kPreludeBytes), 115)) ==
          "event stream: total length 116 exceeds the maximum of 115");
    Decoder exact(116);
    std::vector<Message> got;
    CHECK(exact.Feed(big, &got).ok());
    CHECK(got.size() == 1);
    CHECK(Msg(FeedError(RawFrame("", "", 0xffffffff, 0))) ==
          "event stream: total length 4294967295 exceeds the maximum of " +
              std::to_string(kDefaultMaxMessageBytes));
  }
  SECTION("headers length beyond the total") {
    CHECK(Msg(FeedError(RawFrame("", "abcd", 20, 5))) ==
          "event stream: headers length 5 does not fit in total length 20");
    CHECK(Contains(FeedError(RawFrame("", "", 16, 0xffffffff)), "does not fit"));
  }
  SECTION("unknown header type") {
    for (char type : {'\x0a', '\x7f', '\xff'}) {
      const std::string headers = std::string("\x01x", 2) + type;
      CHECK(Msg(FeedError(RawFrame(headers, ""))) ==
            "event stream: unknown header value type " +
                std::to_string(static_cast<unsigned char>(type)) + " of header 'x'");
    }
  }
  SECTION("truncated headers") {
    const std::vector<std::string> cases = {
        std::string("\x05"
                    "ab",
                    3),  // name runs past the section
        std::string("\x02"
                    "ab",
                    3),  // no type byte
        std::string("\x01"
                    "a\x02",
                    3),  // byte without its value
        std::string("\x01"
                    "a\x03\x00",
                    4),  // short cut short
        std::string("\x01"
                    "a\x04\x00\x00\x00",
                    6),  // int cut short
        std::string("\x01"
                    "a\x05\x00\x00\x00\x00",
                    7),  // long cut short
        std::string("\x01"
                    "a\x08\x00",
                    4),  // timestamp cut short
        std::string("\x01"
                    "a\x09\x00\x00",
                    5),  // uuid cut short
        std::string("\x01"
                    "a\x07\x00",
                    4),  // string length cut short
        std::string("\x01"
                    "a\x07\x00\x05"
                    "abc",
                    8),  // string value cut short
        std::string("\x01"
                    "a\x06\xff\xff"
                    "abc",
                    8),  // bytes value cut short
    };
    for (const std::string& headers : cases) {
      INFO(Hex(headers));
      // The section ends where the payload begins: the header must not read into it.
      CHECK(Contains(FeedError(RawFrame(headers, "payload")), "truncated header"));
    }
  }
  SECTION("empty header name") {
    CHECK(Msg(FeedError(RawFrame(std::string("\x00\x00", 2), ""))) ==
          "event stream: empty header name at offset 0 of the headers section");
  }
  SECTION("a corruption after good messages keeps the good ones") {
    Decoder decoder;
    std::vector<Message> got;
    const absl::Status s = decoder.Feed(good + good + FlipByte(good, 20), &got);
    CHECK(absl::IsInvalidArgument(s));
    CHECK(got.size() == 2);
  }
}

TEST_CASE("A stream cut inside a message is reported at the end", "[eventstream]") {
  const std::string good = EncodeOrDie(MakeEvent("SubscribeToShardEvent", "{}"));
  for (size_t cut : {size_t{1}, kPreludeBytes - 1, kPreludeBytes, good.size() - 1}) {
    Decoder decoder;
    std::vector<Message> got;
    REQUIRE(decoder.Feed(std::string_view(good).substr(0, cut), &got).ok());
    CHECK(got.empty());
    CHECK(decoder.buffered_bytes() == cut);
    const absl::Status s = decoder.Finish();
    CHECK(absl::IsInvalidArgument(s));
    CHECK(Contains(s, "truncated"));
  }
}

TEST_CASE("DecodeMessage wants exactly one whole message", "[eventstream]") {
  const std::string good = EncodeOrDie(MakeEvent("e", "{}"));
  CHECK(DecodeMessage(good).ok());
  CHECK(Msg(DecodeMessage(std::string_view(good).substr(0, 11)).status()) ==
        "event stream: truncated prelude: 11 bytes");
  CHECK(Msg(DecodeMessage(good + "x").status()) ==
        "event stream: frame of " + std::to_string(good.size() + 1) + " bytes holds a message of " +
            std::to_string(good.size()) + " bytes");
  CHECK(absl::IsInvalidArgument(
      DecodeMessage(std::string_view(good).substr(0, good.size() - 1)).status()));
}

// Writes the fuzzer's seeds: RILL_EVENTSTREAM_CORPUS_DIR=tests/fuzz/corpus/eventstream
// build/tests/net_tests "[corpus]".
TEST_CASE("Write the eventstream fuzzer seeds", "[.][corpus]") {
  const char* dir = std::getenv("RILL_EVENTSTREAM_CORPUS_DIR");
  REQUIRE(dir != nullptr);
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::FILE* f = std::fopen((std::string(dir) + "/" + name).c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size());
    std::fclose(f);
  };
  for (const GoldenFrame& g : kGolden) write(g.name, Unhex(g.hex));
  write("all_golden_frames", AllGoldenBytes());
  write("truncated_header", RawFrame(std::string("\x01"
                                                 "a\x07\x00\x05"
                                                 "abc",
                                                 8),
                                     "p"));
}

}  // namespace
}  // namespace rill::net::internal
