#include "rill/base/shard_id.h"

#include <compare>
#include <sstream>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include "rill/base/error.h"

namespace rill {
namespace {

ErrorCode ParseError(std::string_view text) { return GetErrorCode(ShardId::Parse(text).status()); }

TEST_CASE("ToString is shardId- and 12 zero-padded digits", "[shard_id]") {
  CHECK(ShardId().ToString() == "shardId-000000000000");
  CHECK(ShardId(0).ToString() == "shardId-000000000000");
  CHECK(ShardId(1).ToString() == "shardId-000000000001");
  CHECK(ShardId(3).ToString() == "shardId-000000000003");
  CHECK(ShardId(42).ToString() == "shardId-000000000042");
  CHECK(ShardId(123456789).ToString() == "shardId-000123456789");
  CHECK(ShardId(ShardId::kMaxIndex).ToString() == "shardId-002147483647");
  CHECK(ShardId(ShardId::kMaxIndex).ToString().size() == 20);
  CHECK(ShardId(7).index() == 7);

  std::ostringstream os;
  os << ShardId(9);
  CHECK(os.str() == "shardId-000000000009");
}

TEST_CASE("Parse accepts the Kinesis spelling, a short spelling and the bare number",
          "[shard_id]") {
  struct Case {
    const char* text;
    uint32_t index;
  };
  const Case cases[] = {
      {"shardId-000000000005", 5},
      {"shardId-5", 5},
      {"5", 5},
      {"shardId-000000000000", 0},
      {"shardId-0", 0},
      {"0", 0},
      {"000000000005", 5},
      {"shardId-000000000042", 42},
      {"shardId-2147483647", ShardId::kMaxIndex},
      {"shardId-002147483647", ShardId::kMaxIndex},
      {"2147483647", ShardId::kMaxIndex},
  };
  for (const Case& c : cases) {
    INFO("input " << c.text);
    absl::StatusOr<ShardId> id = ShardId::Parse(c.text);
    REQUIRE(id.ok());
    CHECK(id->index() == c.index);
    CHECK(*id == ShardId(c.index));
  }
}

TEST_CASE("Parse round-trips ToString", "[shard_id]") {
  for (uint32_t index : {0u, 1u, 9u, 10u, 999999u, 1000000000u, ShardId::kMaxIndex}) {
    const ShardId id(index);
    absl::StatusOr<ShardId> back = ShardId::Parse(id.ToString());
    REQUIRE(back.ok());
    CHECK(*back == id);
  }
}

TEST_CASE("a valid shard id that names no shard is ResourceNotFound", "[shard_id]") {
  for (std::string_view text : {
           "shardId-abc",
           "shardId-2147483648",    // kMaxIndex + 1
           "2147483648",            // bare, kMaxIndex + 1
           "shardId-4294967296",    // 2^32: must not wrap to 0
           "shardId-999999999999",  // 12 digits
           "99999999999999999999",  // would overflow 64 bits
           "foo",
           "shardId-",
           "shardId",
           "shardid-5",
           "ShardId-5",
           "shardId-5-",
           "shardId--5",
           "shardId-5.0",
           "shard_5",
           "-5",
           "5a",
           "a",
           "_",
           ".",
           "-",
       }) {
    INFO("input \"" << text << "\"");
    CHECK(ParseError(text) == ErrorCode::kResourceNotFound);
  }
  // The longest valid id, 128 characters.
  CHECK(ParseError(std::string(128, 'a')) == ErrorCode::kResourceNotFound);
}

// ShardId::Parse used to answer kResourceNotFound for any number of more than 12 digits, even
// when leading zeros keep its value within [0, kMaxIndex]. shard_id.h and the reference (1.1,
// kinesalite's /^\d+$/ + parseInt) both accept "shardId-<n>" for such n.
TEST_CASE("Parse accepts numbers of more than 12 digits whose value is in range", "[shard_id]") {
  for (const std::string& text :
       {std::string("shardId-0000000000005"), std::string("0000000000005"),
        "shardId-" + std::string(100, '0') + "5"}) {
    INFO("input " << text);
    absl::StatusOr<ShardId> id = ShardId::Parse(text);
    CHECK(id.ok());
    if (id.ok()) CHECK(id->index() == 5);
  }
}

TEST_CASE("a string that is no shard id at all is InvalidArgument", "[shard_id]") {
  for (std::string_view text : {
           "", "shard id", "shard/1", "shardId-5 ", " 5", "5\n", "shardId:5", "shardId+5", "+5",
           "sh@rd",
           "j\xc3\xb6tunn",  // non-ASCII letters are outside [a-zA-Z0-9_.-]
       }) {
    INFO("input \"" << text << "\"");
    CHECK(ParseError(text) == ErrorCode::kInvalidArgument);
  }
  CHECK(ParseError(std::string_view("5\0", 2)) == ErrorCode::kInvalidArgument);
  CHECK(ParseError(std::string(129, 'a')) == ErrorCode::kInvalidArgument);
  // Too long even though it would otherwise name shard 5.
  CHECK(ParseError(std::string(128, '0') + "5") == ErrorCode::kInvalidArgument);
}

TEST_CASE("shard ids compare by index", "[shard_id]") {
  CHECK(ShardId(1) == ShardId(1));
  CHECK(ShardId(1) != ShardId(2));
  CHECK(ShardId(1) < ShardId(2));
  CHECK(ShardId(2) > ShardId(1));
  CHECK(ShardId(2) <= ShardId(2));
  CHECK(ShardId(2) >= ShardId(2));
  // By number, not by text: index 9 sorts before index 10.
  CHECK(ShardId(9) < ShardId(10));
  CHECK(ShardId(ShardId::kMaxIndex) > ShardId(0));
  CHECK((ShardId(3) <=> ShardId(4)) == std::strong_ordering::less);
  CHECK((ShardId(4) <=> ShardId(4)) == std::strong_ordering::equal);
  CHECK((ShardId(5) <=> ShardId(4)) == std::strong_ordering::greater);
}

TEST_CASE("a shard id equals only its Kinesis spelling as a string", "[shard_id]") {
  const ShardId id(3);
  CHECK(id == std::string_view("shardId-000000000003"));
  CHECK(id == "shardId-000000000003");
  CHECK(id == std::string("shardId-000000000003"));
  // Spellings Parse accepts are still not equal: the comparison is with ToString().
  CHECK_FALSE(id == std::string_view("shardId-3"));
  CHECK_FALSE(id == std::string_view("3"));
  CHECK_FALSE(id == std::string_view("shardId-000000000004"));
  CHECK_FALSE(id == std::string_view("shardId-0000000000003"));
  CHECK_FALSE(id == std::string_view(""));
  CHECK(id != std::string_view("shardId-000000000030"));
}

}  // namespace
}  // namespace rill
