#include "rill/base/md5.h"

#include <string>
#include <string_view>

#include <catch2/catch.hpp>

namespace rill {
namespace {

// The deterministic input pattern of the length tests: byte i is 'a' + i % 26.
std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

std::string HexOf(std::string_view data) { return Md5Hex(Md5(data)); }

TEST_CASE("MD5 matches the RFC 1321 appendix A.5 test suite", "[md5]") {
  CHECK(HexOf("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(HexOf("a") == "0cc175b9c0f1b6a831c399e269772661");
  CHECK(HexOf("abc") == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(HexOf("message digest") == "f96b697d7cb7938d525a2f31aaf161d0");
  CHECK(HexOf("abcdefghijklmnopqrstuvwxyz") == "c3fcd3d76192e4007dfb496cca67e13b");
  CHECK(HexOf("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") ==
        "d174ab98d277d9f5a5611c2c9f419d9f");
  CHECK(HexOf("1234567890123456789012345678901234567890"
              "1234567890123456789012345678901234567890") == "57edf4a22be3c955ac49da2e2107b67a");
}

TEST_CASE("MD5 is right at the padding and block boundaries", "[md5]") {
  // Digests computed with python3: hashlib.md5(pattern(n).encode()).hexdigest(). 55 bytes is the
  // longest input that fits one padded block; 56..63 need a second block; 64 is exactly one block
  // of data plus a padding block.
  struct Case {
    size_t length;
    const char* hex;
  };
  const Case cases[] = {
      {0, "d41d8cd98f00b204e9800998ecf8427e"},   {1, "0cc175b9c0f1b6a831c399e269772661"},
      {54, "5e59320acd5b076d5079518a91bf23ca"},  {55, "0d7ae056b2f015cd7dc67494efd658f1"},
      {56, "31fcfb5165169eb55898e7e4cf34d19a"},  {57, "fd62afaf3aa1e2a52882cb464f5ccc4d"},
      {63, "1b30c0670c15e7da3c2ba7bce77ebe99"},  {64, "a2eaf6295c32adc403865fd96a2f182b"},
      {65, "eba2cce0ca8df47e62414a736b3105a2"},  {119, "b05187e08da41fa3ef16bd56afaafd99"},
      {120, "62af9b597a9f55e16ab2b897387fc052"}, {128, "3e8c1ccbd71838ef3df4b72e57fb9bf6"},
      {200, "32cce8c4f2bf6f04dbb71b5cb9e37c30"},
  };
  for (const Case& c : cases) {
    INFO("length " << c.length);
    CHECK(HexOf(Pattern(c.length)) == c.hex);
  }
}

TEST_CASE("MD5 is right for every input length from 0 to 200", "[md5]") {
  // The digests of all 201 prefixes of pattern(200), concatenated as hex, then hashed once more;
  // python3: md5(''.join(md5(p[:n]).hexdigest() for n in range(201))).
  const std::string pattern = Pattern(200);
  std::string concatenated;
  for (size_t n = 0; n <= 200; ++n) concatenated += HexOf(std::string_view(pattern).substr(0, n));
  REQUIRE(concatenated.size() == 201 * 32);
  CHECK(HexOf(concatenated) == "b9bb1a6d332927316b11c4a1579eefbf");
}

TEST_CASE("MD5 hashes every byte value, including NUL and bytes above 0x7f", "[md5]") {
  std::string all_bytes(256, '\0');
  for (int i = 0; i < 256; ++i) all_bytes[static_cast<size_t>(i)] = static_cast<char>(i);
  // python3: hashlib.md5(bytes(range(256))).hexdigest()
  CHECK(HexOf(all_bytes) == "e2c865db4162bed963bfaa9ef6ac18f0");
  // An embedded NUL is data, not a terminator. python3: hashlib.md5(b"a\x00b").hexdigest()
  CHECK(HexOf(std::string_view("a\0b", 3)) == "70350f6027bce3713f6b76473084309b");
}

TEST_CASE("MD5 reads only the bytes of the view it is given", "[md5]") {
  const std::string text = "abcdef";
  CHECK(HexOf(std::string_view(text).substr(0, 3)) == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(HexOf(std::string_view(text).substr(3, 0)) == "d41d8cd98f00b204e9800998ecf8427e");
}

TEST_CASE("the digest bytes are in md5sum order and Md5Hex prints them in lower case", "[md5]") {
  const Md5Digest d = Md5("abc");
  const Md5Digest expected = {0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0,
                              0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1, 0x7f, 0x72};
  CHECK(d == expected);

  Md5Digest all_nibbles{};
  for (size_t i = 0; i < all_nibbles.size(); ++i) {
    all_nibbles[i] = static_cast<uint8_t>(i * 0x11);
  }
  CHECK(Md5Hex(all_nibbles) == "00112233445566778899aabbccddeeff");
  Md5Digest ones;
  ones.fill(0xff);
  CHECK(Md5Hex(ones) == "ffffffffffffffffffffffffffffffff");
}

}  // namespace
}  // namespace rill
