#include "storage/crc32c.h"

#include <catch2/catch.hpp>
#include <random>
#include <string>

namespace rill::internal {
namespace {

TEST_CASE("CRC-32C matches the RFC 3720 B.4 vectors", "[crc32c]") {
  CHECK(Crc32c(std::string(32, '\0')) == 0x8A9136AAu);
  CHECK(Crc32c(std::string(32, '\xff')) == 0x62A8AB43u);
  std::string ascending(32, '\0');
  std::string descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<char>(i);
    descending[i] = static_cast<char>(31 - i);
  }
  CHECK(Crc32c(ascending) == 0x46DD794Eu);
  CHECK(Crc32c(descending) == 0x113FDB5Cu);
  CHECK(Crc32c("123456789") == 0xE3069283u);
  CHECK(Crc32c("") == 0u);
}

TEST_CASE("CRC-32C extends incrementally at every split point", "[crc32c]") {
  std::mt19937 rng(7);
  std::string data(1000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  const uint32_t whole = Crc32c(data);
  for (size_t split = 0; split <= data.size(); split += 7) {
    const std::string_view a = std::string_view(data).substr(0, split);
    const std::string_view b = std::string_view(data).substr(split);
    CHECK(Crc32cExtend(Crc32c(a), b) == whole);
  }
  // Byte at a time too.
  uint32_t crc = 0;
  for (char c : data) crc = Crc32cExtend(crc, &c, 1);
  CHECK(crc == whole);
}

TEST_CASE("CRC-32C portable and dispatched implementations agree", "[crc32c]") {
  INFO("hardware accelerated: " << Crc32cIsHardwareAccelerated());
  std::mt19937 rng(11);
  std::string data(4096 + 13, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  // Every length and misalignment in a range, so that both the word loop and the tails run.
  for (size_t start = 0; start < 16; ++start) {
    for (size_t size = 0; start + size <= data.size(); size += 1 + size / 3) {
      const char* p = data.data() + start;
      REQUIRE(Crc32cExtend(0x12345678u, p, size) == Crc32cExtendPortable(0x12345678u, p, size));
    }
  }
}

TEST_CASE("CRC-32C masking round-trips and changes the value", "[crc32c]") {
  for (uint32_t crc : {0u, 1u, 0xE3069283u, 0xffffffffu, 0x80000000u}) {
    CHECK(UnmaskCrc32c(MaskCrc32c(crc)) == crc);
    CHECK(MaskCrc32c(crc) != crc);
    CHECK(MaskCrc32c(MaskCrc32c(crc)) != crc);
  }
  // Pinned: the mask is part of the segment format.
  CHECK(MaskCrc32c(0xE3069283u) == (((0xE3069283u >> 15) | (0xE3069283u << 17)) + 0xa282ead8u));
}

}  // namespace
}  // namespace rill::internal
