#include "rill/base/sequence_number.h"

#include <compare>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "base/sequence_layout.h"
#include "rill/base/error.h"

namespace rill {
namespace {

using internal::DecodeSequenceNumber;
using internal::MakeSequenceNumber;
using internal::SequenceParts;

constexpr const char* kMaxDecimal = "340282366920938463463374607431768211455";  // 2^128 - 1

SequenceNumber MustParse(const std::string& text) {
  absl::StatusOr<SequenceNumber> s = SequenceNumber::Parse(text);
  INFO("input " << text);
  REQUIRE(s.ok());
  return *s;
}

TEST_CASE("sequence numbers parse and print in canonical decimal", "[sequence_number]") {
  CHECK(MustParse("0") == SequenceNumber());
  CHECK(MustParse("0").value() == 0);
  CHECK(MustParse("1").value() == 1);
  CHECK(MustParse("18446744073709551615").value() == std::numeric_limits<uint64_t>::max());
  CHECK(MustParse("18446744073709551616").value() == absl::MakeUint128(1, 0));
  CHECK(MustParse(kMaxDecimal).value() == absl::Uint128Max());

  CHECK(SequenceNumber().ToString() == "0");
  CHECK(SequenceNumber(absl::Uint128Max()).ToString() == kMaxDecimal);
  CHECK(SequenceNumber(absl::MakeUint128(1, 0)).ToString() == "18446744073709551616");

  for (const char* text : {"0", "1", "9", "10", "18446744073709551615", "18446744073709551616",
                           "42535295865117307934074747433577873408",
                           "340282366920938463463374607431768211454", kMaxDecimal}) {
    CHECK(MustParse(text).ToString() == text);
  }
  const absl::uint128 values[] = {0, 1, 1000000, absl::MakeUint128(0x2000000000000000ULL, 0x1234),
                                  absl::Uint128Max()};
  for (absl::uint128 v : values) {
    const SequenceNumber s(v);
    CHECK(MustParse(s.ToString()) == s);
  }
}

TEST_CASE("Parse rejects anything but a canonical decimal in [0, 2^192 - 1]", "[sequence_number]") {
  const std::string rejected[] = {
      "",
      "abc",
      "-5",
      "+5",
      "01",
      "00",
      "1e10",
      "1.5",
      " 1",
      "1 ",
      "0x1f",
      "6277101735386680763835789423207666416102355444464034512896",  // 2^192
      "9999999999999999999999999999999999999999999999999999999999",  // 58 digits, above 2^192
      "1" + std::string(58, '0'),                                    // 59 digits
      "1" + std::string(128, '0'),  // 129 digits: Kinesis' longest pattern
      std::string(129, '9'),
      "1" + std::string(200, '0'),
      std::string("7\0", 2),
  };
  for (const std::string& text : rejected) {
    INFO("input \"" << text << "\" (" << text.size() << " bytes)");
    absl::StatusOr<SequenceNumber> parsed = SequenceNumber::Parse(text);
    CHECK_FALSE(parsed.ok());
    CHECK(GetErrorCode(parsed.status()) == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("Kinesis' 56-digit sequence numbers parse print and compare above rill's 128-bit ones",
          "[sequence_number]") {
  // A sequence number as Kinesis (and kinesalite) issue them: 56 digits, about 185 bits.
  const std::string kinesis = "49590338271490256608559692538361571095921575989136588898";
  const SequenceNumber s = MustParse(kinesis);
  CHECK(s.ToString() == kinesis);
  CHECK_FALSE(s.fits_128());
  CHECK(s.high64() == 145732906233757696u);  // floor(kinesis / 2^128)
  CHECK(s > MustParse(kMaxDecimal));
  CHECK(MustParse("49590338271490256608559692538361571095921575989136588899") > s);
  CHECK(MustParse("49590338271490256608559692538361571095921575989136588897") < s);

  // Across the 128-bit boundary, and at the top of the range.
  CHECK(MustParse("340282366920938463463374607431768211456") ==
        SequenceNumber::FromParts(1, 0));  // 2^128
  CHECK(SequenceNumber::FromParts(1, 0).ToString() == "340282366920938463463374607431768211456");
  const std::string max192 = "6277101735386680763835789423207666416102355444464034512895";
  CHECK(MustParse(max192) ==
        SequenceNumber::FromParts(std::numeric_limits<uint64_t>::max(), absl::Uint128Max()));
  CHECK(MustParse(max192).ToString() == max192);
  CHECK(SequenceNumber::FromParts(0, absl::Uint128Max()) < SequenceNumber::FromParts(1, 0));
  CHECK(SequenceNumber::FromParts(2, 0) > SequenceNumber::FromParts(1, absl::Uint128Max()));

  // No rill shard takes one: it decodes as no version.
  CHECK(DecodeSequenceNumber(s).version == 0);
}

TEST_CASE("sequence numbers compare numerically, not as text", "[sequence_number]") {
  // As text "9" > "10" and "100" < "99"; as numbers they are the other way round.
  CHECK(MustParse("9") < MustParse("10"));
  CHECK(MustParse("99") < MustParse("100"));
  CHECK(MustParse("18446744073709551615") < MustParse("18446744073709551616"));
  CHECK(MustParse("42535295865117307932921825928971026432") <
        MustParse("340282366920938463463374607431768211455"));
  CHECK(MustParse("10") > MustParse("9"));
  CHECK(MustParse("10") == MustParse("10"));
  CHECK(MustParse("10") != MustParse("11"));
  CHECK(MustParse("10") <= MustParse("10"));
  CHECK(MustParse("10") >= MustParse("10"));
  CHECK((SequenceNumber(1) <=> SequenceNumber(2)) == std::strong_ordering::less);
  CHECK((SequenceNumber(2) <=> SequenceNumber(2)) == std::strong_ordering::equal);
  CHECK((SequenceNumber(absl::MakeUint128(1, 0)) <=>
         SequenceNumber(std::numeric_limits<uint64_t>::max())) == std::strong_ordering::greater);
  // Zero, the default, is below everything else.
  CHECK(SequenceNumber() < SequenceNumber(1));

  std::ostringstream os;
  os << SequenceNumber(12345);
  CHECK(os.str() == "12345");
}

TEST_CASE("the internal layout decodes back to its parts", "[sequence_number]") {
  struct Case {
    uint64_t counter;
    uint32_t shard_index;
    uint32_t stream_tag;
  };
  const Case cases[] = {
      {0, 0, 0},
      {1, 0, 0},
      {1, 3, 42},
      {12345, 7, 0xabcde},
      {std::numeric_limits<uint64_t>::max(), 0, 0},
      {0, std::numeric_limits<uint32_t>::max(), 0},
      {0, 0, internal::kStreamTagMask},
      {std::numeric_limits<uint64_t>::max(), std::numeric_limits<uint32_t>::max(),
       internal::kStreamTagMask},
      {0x8000000000000001ULL, 0x80000001u, 0x8000001u},
  };
  for (const Case& c : cases) {
    INFO("counter " << c.counter << " shard " << c.shard_index << " tag " << c.stream_tag);
    const SequenceParts parts =
        DecodeSequenceNumber(MakeSequenceNumber(c.counter, c.shard_index, c.stream_tag));
    CHECK(parts.version == internal::kSequenceVersion);
    CHECK(parts.counter == c.counter);
    CHECK(parts.shard_index == c.shard_index);
    CHECK(parts.stream_tag == c.stream_tag);
  }
}

TEST_CASE("the stream tag keeps only its low 28 bits", "[sequence_number]") {
  const SequenceParts parts = DecodeSequenceNumber(MakeSequenceNumber(5, 6, (1u << 28) + 5));
  CHECK(parts.stream_tag == 5);
  CHECK(parts.shard_index == 6);
  CHECK(parts.counter == 5);
  CHECK(MakeSequenceNumber(0, 0, (1u << 28) + 5) == MakeSequenceNumber(0, 0, 5));
}

TEST_CASE("the internal layout has exact decimal values", "[sequence_number]") {
  // python3: (2 << 124) | (counter << 60) | (shard << 28) | (tag & (2**28 - 1))
  CHECK(MakeSequenceNumber(0, 0, 0).ToString() == "42535295865117307932921825928971026432");
  CHECK(MakeSequenceNumber(1, 0, 0).ToString() == "42535295865117307934074747433577873408");
  CHECK(MakeSequenceNumber(1, 3, 42).ToString() == "42535295865117307934074747434383179818");
  CHECK(MakeSequenceNumber(12345, 7, 0xabcde).ToString() ==
        "42535295865117322165737800302376697054");
  CHECK(MakeSequenceNumber(std::numeric_limits<uint64_t>::max(),
                           std::numeric_limits<uint32_t>::max(), internal::kStreamTagMask)
            .ToString() == "63802943797675961899382738893456539647");
}

TEST_CASE("sequence numbers order by counter first, then by shard index", "[sequence_number]") {
  // A higher counter wins whatever the shard index and tag.
  CHECK(MakeSequenceNumber(1, 0, 0) >
        MakeSequenceNumber(0, std::numeric_limits<uint32_t>::max(), internal::kStreamTagMask));
  CHECK(MakeSequenceNumber(100, 0, 0) > MakeSequenceNumber(99, 5, 7));
  CHECK(MakeSequenceNumber(0x10, 0, 0) > MakeSequenceNumber(0x0f, 0xffffffffu, 0));
  CHECK(MakeSequenceNumber(std::numeric_limits<uint64_t>::max(), 0, 0) >
        MakeSequenceNumber(std::numeric_limits<uint64_t>::max() - 1, 1, 1));
  // Same counter: the shard index decides.
  CHECK(MakeSequenceNumber(7, 2, 0) > MakeSequenceNumber(7, 1, internal::kStreamTagMask));
  CHECK(MakeSequenceNumber(7, 0x80000000u, 0) > MakeSequenceNumber(7, 0x7fffffffu, 0));
  // Same counter and shard: the tag tells streams apart, so the numbers differ.
  CHECK(MakeSequenceNumber(7, 2, 1) != MakeSequenceNumber(7, 2, 2));

  // Within a shard, numbers strictly increase with the counter.
  SequenceNumber previous = MakeSequenceNumber(0, 3, 99);
  for (uint64_t counter = 1; counter < 1000; ++counter) {
    const SequenceNumber next = MakeSequenceNumber(counter, 3, 99);
    CHECK(next > previous);
    previous = next;
  }
}

TEST_CASE("typical sequence numbers print as 38 decimal digits", "[sequence_number]") {
  const SequenceNumber samples[] = {
      MakeSequenceNumber(0, 0, 0),
      MakeSequenceNumber(1, 0, 1),
      MakeSequenceNumber(123456789, 17, 4242),
      MakeSequenceNumber(uint64_t{1} << 40, 100000, 0xfffffff),
      MakeSequenceNumber(std::numeric_limits<uint64_t>::max(), std::numeric_limits<uint32_t>::max(),
                         internal::kStreamTagMask),
  };
  for (const SequenceNumber& s : samples) {
    const std::string text = s.ToString();
    INFO(text);
    CHECK(text.size() == 38);
    CHECK(MustParse(text) == s);
  }
}

}  // namespace
}  // namespace rill
