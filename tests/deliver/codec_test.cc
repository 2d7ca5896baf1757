// Compression round trips through rill's own code; tests/deliver/codec_tools_test.cc checks the
// outputs with the real command-line tools.
#include "deliver/codec.h"

#include <catch2/catch.hpp>

#include <string>

#include "rill/base/error.h"

namespace rill::deliver_internal {
namespace {

TEST_CASE("Gunzip inflates what Compress(kGzip) wrote, members concatenated") {
  std::string a;
  REQUIRE(Compress(CompressionFormat::kGzip, "hello ", &a).ok());
  REQUIRE(Compress(CompressionFormat::kGzip, "world", &a).ok());
  std::string out;
  REQUIRE(Gunzip(a, 1000, &out).ok());
  CHECK(out == "hello world");
}

TEST_CASE("Gunzip refuses data that is not gzip or is truncated or too large") {
  std::string out;
  CHECK(GetErrorCode(Gunzip("not gzip", 1000, &out)) == ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(Gunzip("", 1000, &out)) == ErrorCode::kInvalidArgument);
  std::string z;
  REQUIRE(Compress(CompressionFormat::kGzip, std::string(10000, 'x'), &z).ok());
  CHECK(GetErrorCode(Gunzip(std::string_view(z).substr(0, z.size() - 5), 100000, &out)) ==
        ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode(Gunzip(z, 9999, &out)) == ErrorCode::kInvalidArgument);
  CHECK(Gunzip(z, 10000, &out).ok());
  CHECK(out.size() == 10000);
}

TEST_CASE("Compress appends and names its extensions") {
  std::string out = "prefix";
  REQUIRE(Compress(CompressionFormat::kUncompressed, "abc", &out).ok());
  CHECK(out == "prefixabc");
  CHECK(CompressionExtension(CompressionFormat::kGzip) == ".gz");
  CHECK(CompressionExtension(CompressionFormat::kSnappy) == ".snappy");
  CHECK(CompressionExtension(CompressionFormat::kZstd) == ".zst");
  CHECK(CompressionExtension(CompressionFormat::kUncompressed).empty());
  CHECK(CompressionFormatName(CompressionFormat::kSnappy) == "Snappy");
  std::string snappy;
  REQUIRE(Compress(CompressionFormat::kSnappy, "", &snappy).ok());
  CHECK(snappy == std::string("\xff\x06\x00\x00sNaPpY", 10));
}

}  // namespace
}  // namespace rill::deliver_internal
