#include "rill/base/hash_key.h"

#include <compare>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "base/partition_key_cache.h"
#include "rill/base/error.h"

namespace rill {
namespace {

constexpr const char* kMaxDecimal = "340282366920938463463374607431768211455";  // 2^128 - 1

struct GoldenRange {
  const char* start;
  const char* end;
};

// Checks SplitHashKeySpace(golden.size()) against ranges computed with python3:
//   step = 2**128 // N; start = i*step; end = (i+1)*step - 1, and 2**128 - 1 for the last shard.
void CheckSplit(const std::vector<GoldenRange>& golden) {
  const std::vector<HashKeyRange> ranges = SplitHashKeySpace(static_cast<int>(golden.size()));
  REQUIRE(ranges.size() == golden.size());
  for (size_t i = 0; i < golden.size(); ++i) {
    INFO("shard " << i << " of " << golden.size());
    CHECK(ranges[i].starting_hash_key.ToString() == golden[i].start);
    CHECK(ranges[i].ending_hash_key.ToString() == golden[i].end);
  }
}

// The contiguous, gap-free, overlap-free tiling of [0, 2^128 - 1] that CreateStream promises.
void CheckTiles(const std::vector<HashKeyRange>& ranges) {
  REQUIRE_FALSE(ranges.empty());
  CHECK(ranges.front().starting_hash_key == HashKey());
  CHECK(ranges.back().ending_hash_key == HashKey::Max());
  for (size_t i = 0; i < ranges.size(); ++i) {
    INFO("shard " << i << " of " << ranges.size());
    CHECK(ranges[i].starting_hash_key <= ranges[i].ending_hash_key);
    if (i + 1 < ranges.size()) {
      CHECK(ranges[i].ending_hash_key.value() + 1 == ranges[i + 1].starting_hash_key.value());
    }
  }
}

TEST_CASE("SplitHashKeySpace(1) gives the whole space", "[hash_key]") {
  CheckSplit({{"0", kMaxDecimal}});
  CheckTiles(SplitHashKeySpace(1));
}

TEST_CASE("SplitHashKeySpace(2) matches the Kinesis ranges", "[hash_key]") {
  CheckSplit({
      {"0", "170141183460469231731687303715884105727"},
      {"170141183460469231731687303715884105728", kMaxDecimal},
  });
  CheckTiles(SplitHashKeySpace(2));
}

TEST_CASE("SplitHashKeySpace(3) matches the ranges AWS returns", "[hash_key]") {
  CheckSplit({
      {"0", "113427455640312821154458202477256070484"},
      {"113427455640312821154458202477256070485", "226854911280625642308916404954512140969"},
      {"226854911280625642308916404954512140970", kMaxDecimal},
  });
  CheckTiles(SplitHashKeySpace(3));
  // The reference's ends, recorded from AWS by kinesalite's tests.
  const std::vector<HashKeyRange> r = SplitHashKeySpace(3);
  CHECK(r[0].ending_hash_key.ToString() == "113427455640312821154458202477256070484");
  CHECK(r[1].ending_hash_key.ToString() == "226854911280625642308916404954512140969");
  CHECK(r[2].ending_hash_key.ToString() == "340282366920938463463374607431768211455");
}

TEST_CASE("SplitHashKeySpace(4) steps by exactly 2^126", "[hash_key]") {
  // A power of two is where floor(2^128 / N) and floor((2^128 - 1) / N) differ.
  CheckSplit({
      {"0", "85070591730234615865843651857942052863"},
      {"85070591730234615865843651857942052864", "170141183460469231731687303715884105727"},
      {"170141183460469231731687303715884105728", "255211775190703847597530955573826158591"},
      {"255211775190703847597530955573826158592", kMaxDecimal},
  });
  CheckTiles(SplitHashKeySpace(4));
  CHECK(SplitHashKeySpace(4)[1].starting_hash_key.value() ==
        absl::MakeUint128(uint64_t{1} << 62, 0));
}

TEST_CASE("SplitHashKeySpace(7) gives the remainder to the last shard", "[hash_key]") {
  CheckSplit({
      {"0", "48611766702991209066196372490252601635"},
      {"48611766702991209066196372490252601636", "97223533405982418132392744980505203271"},
      {"97223533405982418132392744980505203272", "145835300108973627198589117470757804907"},
      {"145835300108973627198589117470757804908", "194447066811964836264785489961010406543"},
      {"194447066811964836264785489961010406544", "243058833514956045330981862451263008179"},
      {"243058833514956045330981862451263008180", "291670600217947254397178234941515609815"},
      {"291670600217947254397178234941515609816", kMaxDecimal},
  });
  CheckTiles(SplitHashKeySpace(7));
}

TEST_CASE("SplitHashKeySpace tiles the space with step floor(2^128 / N) for N up to 256",
          "[hash_key]") {
  for (int n = 2; n <= 256; ++n) {
    INFO("N = " << n);
    const std::vector<HashKeyRange> ranges = SplitHashKeySpace(n);
    REQUIRE(ranges.size() == static_cast<size_t>(n));
    CheckTiles(ranges);
    // Every shard but the last is exactly `step` wide; the last is step + r wide, where
    // 2^128 = N * step + r with 0 <= r < N, which pins step to floor(2^128 / N).
    const absl::uint128 step = ranges[1].starting_hash_key.value();
    for (int i = 0; i + 1 < n; ++i) {
      const HashKeyRange& r = ranges[static_cast<size_t>(i)];
      CHECK(r.starting_hash_key.value() == step * static_cast<uint64_t>(i));
      CHECK(r.ending_hash_key.value() - r.starting_hash_key.value() + 1 == step);
    }
    const HashKeyRange& last = ranges.back();
    const absl::uint128 last_width =
        last.ending_hash_key.value() - last.starting_hash_key.value() + 1;
    REQUIRE(last_width >= step);
    CHECK(last_width - step < static_cast<uint64_t>(n));
  }
}

TEST_CASE("partition keys hash to the MD5 of their UTF-8 bytes, big-endian", "[hash_key]") {
  // The first two are the reference's test vectors; the others were computed with python3:
  //   int.from_bytes(hashlib.md5(k.encode('utf-8')).digest(), 'big')
  CHECK(HashKey::FromPartitionKey("a").ToString() == "16955237001963240173058271559858726497");
  CHECK(HashKey::FromPartitionKey("user-1").ToString() ==
        "285573413173782752570879317399258818820");
  CHECK(HashKey::FromPartitionKey("b").ToString() == "195289424170611159128911017612795795343");
  CHECK(HashKey::FromPartitionKey("partition-key-42").ToString() ==
        "83989209188138350449592802230066768018");
  // "jötunn-🙂" spelled as its UTF-8 bytes, so the test does not depend on the source charset.
  CHECK(HashKey::FromPartitionKey("j\xc3\xb6tunn-\xf0\x9f\x99\x82").ToString() ==
        "195849292035777299933340513730935424466");
  // The longest partition key Kinesis accepts (256 characters) takes several MD5 blocks.
  CHECK(HashKey::FromPartitionKey(std::string(256, 'x')).ToString() ==
        "265353499944959180620795534685136097465");
}

TEST_CASE("the reference's keys land on the shards Kinesis picks", "[hash_key]") {
  const std::vector<HashKeyRange> two = SplitHashKeySpace(2);
  const HashKey a = HashKey::FromPartitionKey("a");
  const HashKey user1 = HashKey::FromPartitionKey("user-1");
  CHECK(two[0].Contains(a));
  CHECK_FALSE(two[1].Contains(a));
  CHECK_FALSE(two[0].Contains(user1));
  CHECK(two[1].Contains(user1));
}

TEST_CASE("FromDecimal accepts Kinesis' explicit hash keys", "[hash_key]") {
  absl::StatusOr<HashKey> zero = HashKey::FromDecimal("0");
  REQUIRE(zero.ok());
  CHECK(*zero == HashKey());
  CHECK(zero->value() == 0);

  absl::StatusOr<HashKey> max = HashKey::FromDecimal(kMaxDecimal);
  REQUIRE(max.ok());
  CHECK(*max == HashKey::Max());
  CHECK(max->value() == absl::Uint128Max());

  absl::StatusOr<HashKey> two64 = HashKey::FromDecimal("18446744073709551616");
  REQUIRE(two64.ok());
  CHECK(two64->value() == absl::MakeUint128(1, 0));

  absl::StatusOr<HashKey> nine = HashKey::FromDecimal("9");
  REQUIRE(nine.ok());
  CHECK(nine->value() == 9);
}

TEST_CASE("FromDecimal rejects anything but a canonical decimal in [0, 2^128 - 1]", "[hash_key]") {
  const std::string forty_digits = "1" + std::string(39, '0');
  const std::string rejected[] = {
      "",
      "-1",
      "+1",
      "01",
      "00",
      " 1",
      "1 ",
      "abc",
      "12a",
      "1.0",
      "0x10",
      "340282366920938463463374607431768211456",  // 2^128
      "999999999999999999999999999999999999999",  // 39 digits, above the maximum
      forty_digits,
      std::string("1\0", 2),
  };
  for (const std::string& text : rejected) {
    INFO("input \"" << text << "\" (" << text.size() << " bytes)");
    absl::StatusOr<HashKey> parsed = HashKey::FromDecimal(text);
    CHECK_FALSE(parsed.ok());
    CHECK(GetErrorCode(parsed.status()) == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("ToString and FromDecimal round-trip", "[hash_key]") {
  const absl::uint128 values[] = {
      0,
      1,
      9,
      10,
      std::numeric_limits<uint64_t>::max(),
      absl::MakeUint128(1, 0),
      absl::MakeUint128(0x0123456789abcdefULL, 0xfedcba9876543210ULL),
      absl::Uint128Max() - 1,
      absl::Uint128Max(),
  };
  for (absl::uint128 v : values) {
    const HashKey k(v);
    INFO("value " << k.ToString());
    absl::StatusOr<HashKey> back = HashKey::FromDecimal(k.ToString());
    REQUIRE(back.ok());
    CHECK(*back == k);
  }
  CHECK(HashKey().ToString() == "0");
  CHECK(HashKey(10).ToString() == "10");
  CHECK(HashKey(std::numeric_limits<uint64_t>::max()).ToString() == "18446744073709551615");
  CHECK(HashKey(absl::MakeUint128(1, 0)).ToString() == "18446744073709551616");
  CHECK(HashKey::Max().ToString() == kMaxDecimal);
  for (const char* text : {"1", "42", "18446744073709551615",
                           "113427455640312821154458202477256070484", kMaxDecimal}) {
    absl::StatusOr<HashKey> k = HashKey::FromDecimal(text);
    REQUIRE(k.ok());
    CHECK(k->ToString() == text);
  }
}

TEST_CASE("hash keys compare as 128-bit unsigned integers", "[hash_key]") {
  const HashKey zero;
  const HashKey one(1);
  const HashKey low_max(std::numeric_limits<uint64_t>::max());
  const HashKey high_one(absl::MakeUint128(1, 0));
  CHECK(zero < one);
  CHECK(one > zero);
  CHECK(one <= one);
  CHECK(one >= one);
  CHECK(zero != one);
  CHECK(HashKey(1) == one);
  // The high 64 bits decide before the low ones.
  CHECK(low_max < high_one);
  CHECK(HashKey(absl::MakeUint128(1, 0)) < HashKey(absl::MakeUint128(1, 1)));
  CHECK(HashKey(absl::MakeUint128(2, 0)) > HashKey(absl::MakeUint128(1, ~uint64_t{0})));
  CHECK(HashKey::Max() > high_one);
  CHECK((zero <=> one) == std::strong_ordering::less);
  CHECK((one <=> one) == std::strong_ordering::equal);
  CHECK((HashKey::Max() <=> low_max) == std::strong_ordering::greater);
  // Numerically, not by their decimal text: "9" sorts after "10" as text.
  CHECK(HashKey(9) < HashKey(10));
}

TEST_CASE("HashKeyRange::Contains is inclusive at both ends", "[hash_key]") {
  const HashKeyRange r{HashKey(10), HashKey(20)};
  CHECK_FALSE(r.Contains(HashKey(9)));
  CHECK(r.Contains(HashKey(10)));
  CHECK(r.Contains(HashKey(15)));
  CHECK(r.Contains(HashKey(20)));
  CHECK_FALSE(r.Contains(HashKey(21)));

  const HashKeyRange single{HashKey(7), HashKey(7)};
  CHECK(single.Contains(HashKey(7)));
  CHECK_FALSE(single.Contains(HashKey(6)));
  CHECK_FALSE(single.Contains(HashKey(8)));

  const HashKeyRange all{HashKey(), HashKey::Max()};
  CHECK(all.Contains(HashKey()));
  CHECK(all.Contains(HashKey::Max()));

  // Adjacent shards of a split: each boundary key belongs to exactly one of them.
  const std::vector<HashKeyRange> three = SplitHashKeySpace(3);
  const HashKey end0 = three[0].ending_hash_key;
  const HashKey start1 = three[1].starting_hash_key;
  CHECK(three[0].Contains(end0));
  CHECK_FALSE(three[1].Contains(end0));
  CHECK_FALSE(three[0].Contains(start1));
  CHECK(three[1].Contains(start1));
  CHECK(three[2].Contains(HashKey::Max()));
  CHECK_FALSE(three[1].Contains(HashKey::Max()));
}

TEST_CASE("hash keys and ranges print in decimal", "[hash_key]") {
  std::ostringstream os;
  os << HashKey(42) << " " << HashKeyRange{HashKey(1), HashKey(2)};
  CHECK(os.str() == "42 [1, 2]");
  CHECK((HashKeyRange{HashKey(1), HashKey(2)} == HashKeyRange{HashKey(1), HashKey(2)}));
  CHECK_FALSE((HashKeyRange{HashKey(1), HashKey(2)} == HashKeyRange{HashKey(1), HashKey(3)}));
}

}  // namespace
}  // namespace rill

namespace rill {
namespace {

// The cache must never change routing: whatever hits, misses and evictions happen, it returns
// exactly the MD5 hash key.
TEST_CASE("CachedPartitionKeyHash equals FromPartitionKey through hits, misses and evictions",
          "[hash_key]") {
  std::vector<std::string> keys;
  for (int i = 0; i < 6000; ++i) keys.push_back("device-" + std::to_string(i));  // > the table
  for (int len = 1; len <= 45; ++len) keys.push_back(std::string(static_cast<size_t>(len), 'k'));
  keys.push_back("player-1");
  keys.push_back("player-1 ");  // a prefix of another key, then the longer one
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < keys.size(); ++i) {
      // Cycles through the keys in a different order each round.
      const std::string& key = keys[(i * (2 * round + 1)) % keys.size()];
      REQUIRE(internal::CachedPartitionKeyHash(key) == HashKey::FromPartitionKey(key));
    }
  }
}

}  // namespace
}  // namespace rill
