// The jq path subset: parsing (every error with its position) and extraction from records.
#include "deliver/json_path.h"

#include <simdjson.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "rill/base/error.h"

namespace rill::deliver_internal {
namespace {

using Kind = JsonValueKind;

JsonPath MustParse(std::string_view query) {
  absl::StatusOr<JsonPath> path = JsonPath::Parse(query);
  INFO(query);
  REQUIRE(path.ok());
  return *std::move(path);
}

std::string ParseError(std::string_view query) {
  absl::StatusOr<JsonPath> path = JsonPath::Parse(query);
  INFO(query);
  REQUIRE_FALSE(path.ok());
  CHECK(GetErrorCode(path.status()) == ErrorCode::kInvalidArgument);
  return std::string(path.status().message());
}

// Extracts one path from `json`, requiring success.
JsonValue ExtractOne(std::string_view json, std::string_view query) {
  JsonExtractor extractor;
  const std::vector<JsonPath> paths = {MustParse(query)};
  std::vector<JsonValue> values;
  const absl::Status status = extractor.Extract(json, paths, values);
  INFO(json << " " << query << " " << status.ToString());
  REQUIRE(status.ok());
  REQUIRE(values.size() == 1);
  return values[0];
}

std::string ExtractError(std::string_view json) {
  JsonExtractor extractor;
  const std::vector<JsonPath> paths = {MustParse(".a")};
  std::vector<JsonValue> values;
  const absl::Status status = extractor.Extract(json, paths, values);
  INFO(json);
  REQUIRE_FALSE(status.ok());
  CHECK(GetErrorCode(status) == ErrorCode::kInvalidArgument);
  return std::string(status.message());
}

std::string InvalidJsonMessage(simdjson::error_code e) {
  return std::string("record is not valid JSON: ") + simdjson::error_message(e);
}

TEST_CASE("JsonPath parses plain and quoted field names") {
  CHECK(MustParse(".").fields().empty());
  CHECK(MustParse(".").text() == ".");
  CHECK(MustParse(".a").fields() == std::vector<std::string>{"a"});
  CHECK(MustParse(".customer.id").fields() == std::vector<std::string>{"customer", "id"});
  CHECK(MustParse(".customer.id").text() == ".customer.id");
  CHECK(MustParse("._x9.A_b").fields() == std::vector<std::string>{"_x9", "A_b"});
  CHECK(MustParse(R"(."order id".total)").fields() ==
        std::vector<std::string>{"order id", "total"});
  CHECK(MustParse(R"(."a.b"."c d")").fields() == std::vector<std::string>{"a.b", "c d"});
  CHECK(MustParse(R"(."")").fields() == std::vector<std::string>{""});
  CHECK(MustParse(R"(."9lives")").fields() == std::vector<std::string>{"9lives"});
  CHECK(MustParse(R"(."q\"uote\\back\/slash")").fields() ==
        std::vector<std::string>{"q\"uote\\back/slash"});
  CHECK(MustParse(R"(."\b\f\n\r\t")").fields() == std::vector<std::string>{"\b\f\n\r\t"});
  CHECK(MustParse(R"(."caf\u00e9")").fields() == std::vector<std::string>{"caf\xc3\xa9"});
  CHECK(MustParse(R"(."caf\u00E9")").fields() == std::vector<std::string>{"caf\xc3\xa9"});
  CHECK(MustParse(".\"caf\xc3\xa9\"").fields() == std::vector<std::string>{"caf\xc3\xa9"});
  CHECK(MustParse(R"(."\u0041\u20ac")").fields() == std::vector<std::string>{"A\xe2\x82\xac"});
  // U+1F600 as a surrogate pair.
  CHECK(MustParse(R"(."\ud83d\ude00")").fields() == std::vector<std::string>{"\xf0\x9f\x98\x80"});
  CHECK(MustParse(R"(.a."b".c)").fields() == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("JsonPath names the position and what it expected") {
  CHECK(ParseError("") == R"(bad jq path "" at 1: expected '.')");
  CHECK(ParseError("a") == R"(bad jq path "a" at 1: expected '.')");
  CHECK(ParseError("..") == R"(bad jq path ".." at 2: expected a field name)");
  CHECK(ParseError(".a..b") == R"(bad jq path ".a..b" at 4: expected a field name)");
  CHECK(ParseError(".a.") == R"(bad jq path ".a." at 4: expected a field name)");
  CHECK(ParseError(". a") == R"(bad jq path ". a" at 2: expected a field name)");
  CHECK(ParseError(".9a") == R"(bad jq path ".9a" at 2: expected a field name)");
  CHECK(ParseError(".a-b") == R"(bad jq path ".a-b" at 3: expected '.')");
  CHECK(ParseError(".a b") == R"(bad jq path ".a b" at 3: expected '.')");
  CHECK(ParseError(".a[0]") == R"(bad jq path ".a[0]" at 3: expected '.')");
  CHECK(ParseError(".[0]") == R"(bad jq path ".[0]" at 2: expected a field name)");
  CHECK(ParseError(".a | .b") == R"(bad jq path ".a | .b" at 3: expected '.')");
  CHECK(ParseError(R"(.a"b")") == R"(bad jq path ".a"b"" at 3: expected '.')");
  CHECK(ParseError(R"(."a"b)") == R"(bad jq path "."a"b" at 5: expected '.')");
  CHECK(ParseError(R"(."abc)") == R"(bad jq path "."abc" at 6: expected a closing '"')");
  CHECK(ParseError(R"(.")") == R"(bad jq path "."" at 3: expected a closing '"')");
  CHECK(ParseError(R"(."a\)") == R"(bad jq path "."a\" at 5: expected an escaped character)");
  CHECK(ParseError(R"(."a\q")") ==
        R"(bad jq path "."a\q"" at 5: expected an escape: one of " \ / b f n r t u)");
  CHECK(ParseError(R"(."\u12G4")") == R"(bad jq path "."\u12G4"" at 7: expected a hex digit)");
  CHECK(ParseError(R"(."\u12")") == R"(bad jq path "."\u12"" at 7: expected a hex digit)");
  CHECK(ParseError(R"(."\u12)") == R"(bad jq path "."\u12" at 7: expected a hex digit)");
  CHECK(
      ParseError(R"(."\udc00")") ==
      R"(bad jq path "."\udc00"" at 3: expected a \uD800-\uDBFF escape before this low surrogate)");
  CHECK(
      ParseError(R"(."\ud83d")") ==
      R"(bad jq path "."\ud83d"" at 9: expected a \uDC00-\uDFFF escape completing the surrogate pair)");
  CHECK(
      ParseError(R"(."\ud83dx")") ==
      R"(bad jq path "."\ud83dx"" at 9: expected a \uDC00-\uDFFF escape completing the surrogate pair)");
  CHECK(
      ParseError(R"(."\ud83d\u0041")") ==
      R"(bad jq path "."\ud83d\u0041"" at 9: expected a \uDC00-\uDFFF escape completing the surrogate pair)");
  CHECK(ParseError(R"(."\ud83d\ude0")") ==
        R"(bad jq path "."\ud83d\ude0"" at 14: expected a hex digit)");
  CHECK(ParseError(".\"a\tb\"") ==
        "bad jq path \".\"a\tb\"\" at 4: expected a printable character (control characters are "
        "escaped)");
  CHECK(ParseError(".\"\xff\"") == "bad jq path \".\"\xff\"\" at 3: expected valid UTF-8");
  CHECK(ParseError(".\"ab\xc3\"") == "bad jq path \".\"ab\xc3\"\" at 5: expected valid UTF-8");
  // A UTF-8-encoded surrogate is not valid UTF-8 either.
  CHECK(ParseError(".\"\xed\xa0\x80\"") ==
        "bad jq path \".\"\xed\xa0\x80\"\" at 3: expected valid UTF-8");
}

TEST_CASE("Extract returns every value kind") {
  const std::string json =
      R"({"s": "text", "i": 42, "neg": -7, "dec": 3.50, "exp": 1e3, "Exp": -2.5E+10,)"
      R"( "zero": -0, "big": 123456789012345678901234567890, "huge": 1e400,)"
      R"( "t": true, "f": false, "n": null, "o": {"x": 1, "y": [true, null]},)"
      R"( "a": [1, "two", {"three": 3}], "eo": {}, "ea": [], "es": ""})";
  JsonExtractor extractor;
  std::vector<JsonPath> paths;
  for (const char* q : {".s", ".i", ".neg", ".dec", ".exp", ".Exp", ".zero", ".big", ".huge", ".t",
                        ".f", ".n", ".o", ".a", ".eo", ".ea", ".es", ".absent"}) {
    paths.push_back(MustParse(q));
  }
  std::vector<JsonValue> values;
  REQUIRE(extractor.Extract(json, paths, values).ok());
  REQUIRE(values.size() == paths.size());
  const std::vector<std::pair<Kind, std::string>> want = {
      {Kind::kString, "text"},
      {Kind::kNumber, "42"},
      {Kind::kNumber, "-7"},
      {Kind::kNumber, "3.50"},
      {Kind::kNumber, "1e3"},
      {Kind::kNumber, "-2.5E+10"},
      {Kind::kNumber, "-0"},
      {Kind::kNumber, "123456789012345678901234567890"},
      {Kind::kNumber, "1e400"},
      {Kind::kBool, "true"},
      {Kind::kBool, "false"},
      {Kind::kNull, ""},
      {Kind::kObject, R"({"x": 1, "y": [true, null]})"},
      {Kind::kArray, R"([1, "two", {"three": 3}])"},
      {Kind::kObject, "{}"},
      {Kind::kArray, "[]"},
      {Kind::kString, ""},
      {Kind::kMissing, ""},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(paths[i].text());
    CHECK(values[i].kind == want[i].first);
    CHECK(values[i].text == want[i].second);
  }
}

TEST_CASE("Extract keeps objects and arrays as written and trims only around them") {
  const std::string json = "{ \"o\" :\n\t{ \"k\" : [ 1 ,2 ]\r\n } ,\"a\":[ ]  ,  \"n\" : 5 \n}\n";
  const JsonValue o = ExtractOne(json, ".o");
  CHECK(o.kind == Kind::kObject);
  CHECK(o.text == "{ \"k\" : [ 1 ,2 ]\r\n }");
  const JsonValue k = ExtractOne(json, ".o.k");
  CHECK(k.kind == Kind::kArray);
  CHECK(k.text == "[ 1 ,2 ]");
  CHECK(ExtractOne(json, ".a").text == "[ ]");
  CHECK(ExtractOne(json, ".n").text == "5");
  const JsonValue whole = ExtractOne(json, ".");
  CHECK(whole.kind == Kind::kObject);
  CHECK(whole.text == "{ \"o\" :\n\t{ \"k\" : [ 1 ,2 ]\r\n } ,\"a\":[ ]  ,  \"n\" : 5 \n}");
  CHECK(ExtractOne(R"({"a":1})", ".").text == R"({"a":1})");
}

TEST_CASE("Extract follows nested fields") {
  const std::string json =
      R"({"customer": {"id": "c-1", "address": {"city": "Lyon", "zip": 69001}},)"
      R"( "order": {"lines": [{"sku": "x"}], "total": 12.00}})";
  CHECK(ExtractOne(json, ".customer.id").text == "c-1");
  CHECK(ExtractOne(json, ".customer.address.city").text == "Lyon");
  CHECK(ExtractOne(json, ".customer.address.zip").text == "69001");
  CHECK(ExtractOne(json, ".order.total").text == "12.00");
  CHECK(ExtractOne(json, ".order.lines").text == R"([{"sku": "x"}])");
  CHECK(ExtractOne(json, ".customer.address").kind == Kind::kObject);
  CHECK(ExtractOne(json, ".customer.address.street").kind == Kind::kMissing);
  CHECK(ExtractOne(json, ".customer.phone.number").kind == Kind::kMissing);
  CHECK(ExtractOne(json, ".nobody.id").kind == Kind::kMissing);
  // Several paths from one record, in any order, the same path twice.
  JsonExtractor extractor;
  const std::vector<JsonPath> paths = {MustParse(".order.total"), MustParse(".customer.id"),
                                       MustParse(".customer.address.city"),
                                       MustParse(".order.total"), MustParse(".")};
  std::vector<JsonValue> values;
  REQUIRE(extractor.Extract(json, paths, values).ok());
  REQUIRE(values.size() == 5);
  CHECK(values[0].text == "12.00");
  CHECK(values[1].text == "c-1");
  CHECK(values[2].text == "Lyon");
  CHECK(values[3].text == "12.00");
  CHECK(values[4].text == json);
}

TEST_CASE("Extract matches quoted names with spaces dots and escapes") {
  const std::string json =
      R"({"order id": {"total": 5}, "a.b": 1, "a": {"b": 2}, "q\"uote": "q", "back\\slash": "b",)"
      R"( "caf\u00e9": "escaped key", "na\u00efve": "n", "tab\tkey": "t", "": "empty",)"
      R"( "smile \ud83d\ude00": "pair", "x/y": "solidus"})";
  CHECK(ExtractOne(json, R"(."order id".total)").text == "5");
  CHECK(ExtractOne(json, R"(."a.b")").text == "1");
  CHECK(ExtractOne(json, ".a.b").text == "2");
  CHECK(ExtractOne(json, R"(."a"."b")").text == "2");
  CHECK(ExtractOne(json, R"(."q\"uote")").text == "q");
  CHECK(ExtractOne(json, R"(."back\\slash")").text == "b");
  // The record's key is escaped, the path's is not, and the other way round.
  CHECK(ExtractOne(json, ".\"caf\xc3\xa9\"").text == "escaped key");
  CHECK(ExtractOne(json, R"(."caf\u00e9")").text == "escaped key");
  CHECK(ExtractOne(json, R"(."na\u00efve")").text == "n");
  CHECK(ExtractOne(json, R"(."tab\tkey")").text == "t");
  CHECK(ExtractOne(json, R"(."")").text == "empty");
  CHECK(ExtractOne(json, ".\"smile \xf0\x9f\x98\x80\"").text == "pair");
  CHECK(ExtractOne(json, R"(."smile \ud83d\ude00")").text == "pair");
  CHECK(ExtractOne(json, R"(."x\/y")").text == "solidus");
  CHECK(ExtractOne(json, R"(."order id".Total)").kind == Kind::kMissing);
  CHECK(ExtractOne(json, R"(."order")").kind == Kind::kMissing);
}

TEST_CASE("Extract tells null from missing and a step into a non-object is missing") {
  const std::string json =
      R"({"n": null, "s": "str", "i": 1, "a": [{"x": 1}], "b": false, "o": {"n": null}})";
  CHECK(ExtractOne(json, ".n").kind == Kind::kNull);
  CHECK(ExtractOne(json, ".o.n").kind == Kind::kNull);
  CHECK(ExtractOne(json, ".absent").kind == Kind::kMissing);
  CHECK(ExtractOne(json, ".o.absent").kind == Kind::kMissing);
  for (const char* q : {".n.x", ".s.x", ".i.x", ".a.x", ".b.x", ".s.length", ".o.n.x"}) {
    const JsonValue v = ExtractOne(json, q);
    INFO(q);
    CHECK(v.kind == Kind::kMissing);
    CHECK(v.text.empty());
  }
}

TEST_CASE("Extract takes the first of duplicate keys") {
  CHECK(ExtractOne(R"({"a": 1, "a": 2})", ".a").text == "1");
  CHECK(ExtractOne(R"({"a": {"b": 1}, "a": {"c": 2}})", ".a.b").text == "1");
  CHECK(ExtractOne(R"({"a": {"b": 1}, "a": {"c": 2}})", ".a.c").kind == Kind::kMissing);
  CHECK(ExtractOne(R"({"a": "x", "a": {"c": 2}})", ".a.c").kind == Kind::kMissing);
  // An escaped spelling of the same key is the same key.
  CHECK(ExtractOne(R"({"\u0061": "escaped", "a": "plain"})", ".a").text == "escaped");
}

TEST_CASE("Extract unescapes strings to UTF-8") {
  const std::string json =
      R"({"e": "caf\u00e9", "E": "caf\u00C9", "pair": "\ud83d\ude00!", "ctl": "\"\\\/\b\f\n\r\t",)"
      R"( "nul": "a\u0000b", "raw": "caf)"
      "\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"
      R"(", "mixed": "\u20ac)"
      "\xe2\x82\xac"
      R"(\u00e9x", "max": "\udbff\udfff"})";
  CHECK(ExtractOne(json, ".e").text == "caf\xc3\xa9");
  CHECK(ExtractOne(json, ".E").text == "caf\xc3\x89");
  CHECK(ExtractOne(json, ".pair").text == "\xf0\x9f\x98\x80!");
  CHECK(ExtractOne(json, ".ctl").text == "\"\\/\b\f\n\r\t");
  CHECK(ExtractOne(json, ".nul").text == std::string("a\0b", 3));
  CHECK(ExtractOne(json, ".raw").text == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  CHECK(ExtractOne(json, ".mixed").text == "\xe2\x82\xac\xe2\x82\xac\xc3\xa9x");
  CHECK(ExtractOne(json, ".max").text == "\xf4\x8f\xbf\xbf");
  // Objects keep their escapes: they are JSON text.
  CHECK(ExtractOne(R"({"o": {"k": "caf\u00e9"}})", ".o").text == R"({"k": "caf\u00e9"})");
}

TEST_CASE("Extract refuses a record whose root is not an object") {
  for (const char* json :
       {"[1, 2]", "[]", "\"text\"", "5", "-1.5", "null", "true", "false", " [ {\"a\": 1} ] "}) {
    JsonExtractor extractor;
    std::vector<JsonValue> values;
    const absl::Status status =
        extractor.Extract(json, std::vector<JsonPath>{MustParse(".")}, values);
    INFO(json);
    CHECK(GetErrorCode(status) == ErrorCode::kInvalidArgument);
    CHECK(status.message() == "record is not a JSON object");
    REQUIRE(values.size() == 1);
    CHECK(values[0].kind == Kind::kMissing);
  }
}

TEST_CASE("Extract refuses invalid JSON naming simdjson's error") {
  // Each is invalid somewhere; most of them away from the path ".a", which must not matter.
  const std::vector<std::string> invalid = {
      "",
      "   ",
      "{",
      "}",
      R"({"a":1)",
      R"({"a":1,})",
      R"({"a" 1})",
      R"({"a"})",
      R"({"a":})",
      R"({,})",
      R"({1:2})",
      R"({a:1})",
      R"({'a':1})",
      R"({"a":1 "b":2})",
      R"({"a":1,,"b":2})",
      R"({"a":1, "b":[1 2]})",
      R"({"a":1, "b":[1,]})",
      R"({"a":1, "b":[,1]})",
      R"({"a":1, "b":[1})",
      R"({"a":1, "b":{"c":[}]})",
      R"({"a":1, "b":tru})",
      R"({"a":1, "b":truex})",
      R"({"a":1, "b":fals})",
      R"({"a":1, "b":nul})",
      R"({"a":1, "b":nulll})",
      R"({"a":1, "b":01})",
      R"({"a":1, "b":1.})",
      R"({"a":1, "b":.5})",
      R"({"a":1, "b":-})",
      R"({"a":1, "b":+1})",
      R"({"a":1, "b":1e})",
      R"({"a":1, "b":1e+})",
      R"({"a":1, "b":0x10})",
      R"({"a":1, "b":NaN})",
      R"({"a":1, "b":Infinity})",
      R"({"a":1, "b":"\x"})",
      R"({"a":1, "b":"\u12"})",
      R"({"a":1, "b":"\ud800"})",
      R"({"a":1, "b":"\udc00"})",
      R"({"a":1, "b\q":2})",
      "{\"a\":1, \"b\":\"x\ty\"}",
      "{\"a\":1, \"b\":\"\xff\"}",
      "{\"a\":1, \"b\":\"\xc3\"}",
      "{\"a\":1, \"b\xed\xa0\x80\":2}",
      R"({"a":1, "b":"unterminated})",
      R"({"a":1} x)",
      R"({"a":1}})",
      R"({"a":1}])",
      R"({"a":1} {"b":2})",
      R"({"a":1} 5)",
      R"({"a":1}, {"b":2})",
  };
  for (const std::string& json : invalid) {
    const std::string message = ExtractError(json);
    INFO(json << " -> " << message);
    CHECK(message.rfind("record is not valid JSON: ", 0) == 0);
  }
  CHECK(ExtractError(R"({"a":1, "b":tru})") == InvalidJsonMessage(simdjson::T_ATOM_ERROR));
  CHECK(ExtractError(R"({"a":1, "b":fals})") == InvalidJsonMessage(simdjson::F_ATOM_ERROR));
  CHECK(ExtractError(R"({"a":1, "b":nul})") == InvalidJsonMessage(simdjson::N_ATOM_ERROR));
  CHECK(ExtractError(R"({"a":1, "b":01})") == InvalidJsonMessage(simdjson::NUMBER_ERROR));
  CHECK(ExtractError(R"({"a":1, "b":"\x"})") == InvalidJsonMessage(simdjson::STRING_ERROR));
  CHECK(ExtractError(R"({"a":1}})") == InvalidJsonMessage(simdjson::TRAILING_CONTENT));
  CHECK(ExtractError("{\"a\":\"\xff\"}") == InvalidJsonMessage(simdjson::UTF8_ERROR));
}

TEST_CASE("Extract limits nesting to 1024 levels") {
  const auto nested = [](int depth) {
    std::string json;
    for (int i = 0; i < depth - 1; ++i) json += "{\"a\":";
    json += "[]";
    for (int i = 0; i < depth - 1; ++i) json += "}";
    return json;
  };
  JsonValue v = ExtractOne(nested(1024), ".a.a.a");
  CHECK(v.kind == Kind::kObject);
  CHECK(ExtractError(nested(1025)) == InvalidJsonMessage(simdjson::DEPTH_ERROR));
  CHECK(ExtractError(nested(100000)) == InvalidJsonMessage(simdjson::DEPTH_ERROR));
  std::string arrays = "{\"a\":" + std::string(5000, '[') + std::string(5000, ']') + "}";
  CHECK(ExtractError(arrays) == InvalidJsonMessage(simdjson::DEPTH_ERROR));
}

TEST_CASE("Extract resizes and resets the values it is given") {
  JsonExtractor extractor;
  std::vector<JsonValue> values(5, JsonValue{Kind::kString, "stale"});
  const std::vector<JsonPath> paths = {MustParse(".x"), MustParse(".y")};
  REQUIRE(extractor.Extract(R"({"x": 1})", paths, values).ok());
  REQUIRE(values.size() == 2);
  CHECK(values[0].kind == Kind::kNumber);
  CHECK(values[0].text == "1");
  CHECK(values[1].kind == Kind::kMissing);
  CHECK(values[1].text.empty());
  // No paths: the record is still checked.
  REQUIRE(extractor.Extract(R"({"x": 1})", {}, values).ok());
  CHECK(values.empty());
  CHECK_FALSE(extractor.Extract(R"({"x": })", {}, values).ok());
  // A failed record leaves every value missing.
  values.assign(2, JsonValue{Kind::kString, "stale"});
  CHECK_FALSE(extractor.Extract(R"({"x": 1, "y": tru})", paths, values).ok());
  REQUIRE(values.size() == 2);
  CHECK(values[0].kind == Kind::kMissing);
  CHECK(values[1].kind == Kind::kMissing);
  // A moved extractor keeps working.
  JsonExtractor moved(std::move(extractor));
  REQUIRE(moved.Extract(R"({"y": "v"})", paths, values).ok());
  CHECK(values[1].text == "v");
  JsonExtractor assigned;
  assigned = std::move(moved);
  REQUIRE(assigned.Extract(R"({"x": true})", paths, values).ok());
  CHECK(values[0].text == "true");
}

// A record of random shape, built with the values each path should find in it.
struct Generated {
  std::string json;
  std::vector<JsonValue> want;
  bool valid = true;
};

std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

Generated Generate(std::mt19937& rng, int index) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  Generated g;
  // Paths: .id  .user.name  ."tag list"  .user.address.city  .payload  .score
  g.want.assign(6, JsonValue{});
  std::vector<std::string> members;
  std::string duplicate;
  auto scalar = [&](JsonValue* want) {
    switch (pick(6)) {
      case 0: {
        const std::string s =
            "s" + std::to_string(index) + std::string(pick(3) == 0 ? 3000 : 3, 'x');
        *want = {Kind::kString, s};
        return JsonQuote(s);
      }
      case 1: {
        const std::string n = std::to_string(index) + "." + std::to_string(pick(100)) + "0";
        *want = {Kind::kNumber, n};
        return n;
      }
      case 2:
        *want = {Kind::kBool, index % 2 == 0 ? "true" : "false"};
        return want->text;
      case 3:
        *want = {Kind::kNull, ""};
        return std::string("null");
      case 4: {
        const std::string a = "[" + std::to_string(index) + ", \"e\\u00e9\"]";
        *want = {Kind::kArray, a};
        return a;
      }
      default: {
        const std::string n = "-" + std::to_string(index) + "e" + std::to_string(pick(9));
        *want = {Kind::kNumber, n};
        return n;
      }
    }
  };
  if (pick(4) != 0) members.push_back("\"id\": " + scalar(&g.want[0]));
  if (pick(3) != 0) {
    std::vector<std::string> user;
    if (pick(4) != 0) user.push_back("\"name\": " + scalar(&g.want[1]));
    if (pick(2) == 0) {
      std::string city;
      if (pick(3) != 0) {
        city = "\"city\": " + scalar(&g.want[3]);
      }
      user.push_back("\"address\": {" + city + "}");
    } else if (pick(3) == 0) {
      user.push_back("\"address\": \"not an object\"");
    }
    for (int k = pick(4); k > 0; --k) user.push_back("\"pad" + std::to_string(k) + "\": [1, {}]");
    std::string text = "{";
    for (size_t k = 0; k < user.size(); ++k) text += (k ? ", " : "") + user[k];
    members.push_back("\"user\": " + text + "}");
  }
  if (pick(2) == 0) members.push_back("\"tag list\": " + scalar(&g.want[2]));
  if (pick(2) == 0) {
    std::string payload = "{\"k\": " + std::to_string(index);
    for (int k = pick(50); k > 0; --k) payload += ", \"f" + std::to_string(k) + "\": \"v\"";
    payload += "}";
    g.want[4] = {Kind::kObject, payload};
    members.push_back("\"payload\": " + payload);
  }
  if (pick(2) == 0) {
    members.push_back("\"score\": " + scalar(&g.want[5]));
    // A later duplicate must not win (appended after the shuffle below).
    if (pick(3) == 0) duplicate = "\"score\": \"duplicate\"";
  }
  // Some members in a random order; the extracted values do not depend on it.
  std::shuffle(members.begin(), members.end(), rng);
  if (!duplicate.empty()) members.push_back(duplicate);
  g.json = "{";
  for (size_t k = 0; k < members.size(); ++k) g.json += (k ? ",\n " : "") + members[k];
  g.json += "}";
  if (index % 37 == 36) {
    // Break it: the extractor must report it and go on with the next record.
    g.json.insert(g.json.size() - 1, members.empty() ? "\"x\"" : ", \"x\": tru");
    g.valid = false;
    g.want.assign(6, JsonValue{});
  }
  return g;
}

TEST_CASE("Extract reuses one extractor across 1000 records of varying shape") {
  const std::vector<JsonPath> paths = {MustParse(".id"),
                                       MustParse(".user.name"),
                                       MustParse(R"(."tag list")"),
                                       MustParse(".user.address.city"),
                                       MustParse(".payload"),
                                       MustParse(".score")};
  std::mt19937 rng(20240617);
  JsonExtractor extractor;
  std::vector<JsonValue> values;
  int invalid = 0;
  int found = 0;
  for (int i = 0; i < 1000; ++i) {
    const Generated g = Generate(rng, i);
    INFO("record " << i << ": " << g.json);
    const absl::Status status = extractor.Extract(g.json, paths, values);
    REQUIRE(status.ok() == g.valid);
    if (!g.valid) {
      ++invalid;
      CHECK(GetErrorCode(status) == ErrorCode::kInvalidArgument);
    }
    REQUIRE(values.size() == paths.size());
    for (size_t p = 0; p < paths.size(); ++p) {
      INFO(paths[p].text());
      CHECK(values[p].kind == g.want[p].kind);
      CHECK(values[p].text == g.want[p].text);
      if (values[p].kind != Kind::kMissing) ++found;
    }
  }
  CHECK(invalid == 27);
  // The generator reaches every path often enough to mean something.
  CHECK(found > 2000);
}

}  // namespace
}  // namespace rill::deliver_internal
