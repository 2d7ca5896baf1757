// Fuzzes the event stream decoder (application/vnd.amazon.eventstream): the input is fed whole,
// then again in chunks whose sizes come from the input itself, and both runs must agree. Each input
// is also tried with its CRCs recomputed as one message, so that mutations reach the length checks
// and the header parser instead of stopping at a checksum. Every decoded message must re-encode to
// the very bytes it came from.
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "net/eventstream.h"

namespace rill::net::internal {
namespace {

// A small maximum, so that large declared lengths are exercised without large allocations.
constexpr size_t kMax = 1 << 16;

void StoreBe32(uint32_t v, char* p) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}

uint32_t Crc(std::string_view s) {
  return static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(s.data()), s.size()));
}

void CheckStream(std::string_view input) {
  Decoder whole(kMax);
  std::vector<Message> a;
  const absl::Status sa = whole.Feed(input, &a);
  FUZZ_CHECK(sa.ok() || absl::IsInvalidArgument(sa));
  size_t consumed = 0;
  for (const Message& m : a) {
    absl::StatusOr<std::string> bytes = Encode(m);
    FUZZ_CHECK(bytes.ok());
    FUZZ_CHECK(input.substr(consumed, bytes->size()) == *bytes);
    consumed += bytes->size();
  }
  if (sa.ok()) FUZZ_CHECK(consumed + whole.buffered_bytes() == input.size());

  Decoder chunked(kMax);
  std::vector<Message> b;
  absl::Status sb;
  size_t pos = 0, i = 0;
  while (pos < input.size() && sb.ok()) {
    const size_t n = 1 + static_cast<unsigned char>(input[i++ % input.size()]) % 37;
    sb = chunked.Feed(input.substr(pos, n), &b);
    pos += std::min(n, input.size() - pos);
  }
  FUZZ_CHECK(sa.ok() == sb.ok());
  FUZZ_CHECK(a == b);
  FUZZ_CHECK(whole.Finish().ok() == chunked.Finish().ok());
}

// Treats `input` as one message: fixes its total length (not the headers length) and both CRCs.
void CheckSingleMessage(std::string_view input) {
  if (input.size() < kMinMessageBytes || input.size() > kMax) return;
  std::string frame(input);
  StoreBe32(static_cast<uint32_t>(frame.size()), frame.data());
  StoreBe32(Crc(std::string_view(frame).substr(0, 8)), frame.data() + 8);
  StoreBe32(Crc(std::string_view(frame).substr(0, frame.size() - 4)),
            frame.data() + frame.size() - 4);
  absl::StatusOr<Message> m = DecodeMessage(frame, kMax);
  if (m.ok()) {
    absl::StatusOr<std::string> bytes = Encode(*m);
    FUZZ_CHECK(bytes.ok() && *bytes == frame);
  } else {
    FUZZ_CHECK(absl::IsInvalidArgument(m.status()));
  }
}

}  // namespace
}  // namespace rill::net::internal

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  rill::net::internal::CheckStream(input);
  rill::net::internal::CheckSingleMessage(input);
  return 0;
}
