#include "base/utf.h"

#include <string>

#include <catch2/catch.hpp>

namespace rill::internal {
namespace {

TEST_CASE("Utf16Length counts UTF-16 code units of valid UTF-8", "[utf]") {
  CHECK(Utf16Length("") == 0);
  CHECK(Utf16Length("player-1") == 8);
  CHECK(Utf16Length("\xC3\xA9") == 1);          // é: two bytes, one unit
  CHECK(Utf16Length("\xE2\x82\xAC") == 1);      // €: three bytes, one unit
  CHECK(Utf16Length("\xF0\x9F\x8E\xAE") == 2);  // 🎮: four bytes, a surrogate pair
  CHECK(Utf16Length("a\xF0\x9F\x8E\xAE\xC3\xA9z") == 5);
  CHECK(Utf16Length(std::string(256, 'k')) == 256);
}

TEST_CASE("Utf16Length rejects what is not UTF-8", "[utf]") {
  CHECK(Utf16Length("\x80") == -1);                  // a continuation byte first
  CHECK(Utf16Length("\xC3") == -1);                  // truncated
  CHECK(Utf16Length("\xE2\x82") == -1);              // truncated
  CHECK(Utf16Length("\xC0\xAF") == -1);              // overlong '/'
  CHECK(Utf16Length("\xE0\x80\xAF") == -1);          // overlong
  CHECK(Utf16Length("\xED\xA0\x80") == -1);          // a surrogate, U+D800
  CHECK(Utf16Length("\xF4\x90\x80\x80") == -1);      // past U+10FFFF
  CHECK(Utf16Length("\xF8\x88\x80\x80\x80") == -1);  // a five-byte form
  CHECK(Utf16Length("ok\xC3(") == -1);               // a bad continuation
}

}  // namespace
}  // namespace rill::internal
