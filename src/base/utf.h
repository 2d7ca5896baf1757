// UTF-8 helpers. Internal to rill.
#ifndef RILL_BASE_UTF_H_
#define RILL_BASE_UTF_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rill::internal {

// Decodes the UTF-8 sequence at the start of `s` (which must not be empty): returns its length
// in bytes (1-4) and sets *code_point, or returns 0 if `s` does not start with a valid sequence
// (a stray continuation byte, a truncated sequence, an overlong form, a surrogate, a value past
// U+10FFFF). Inline: every put validates its key through it.
inline size_t DecodeUtf8(std::string_view s, uint32_t* code_point) {
  const auto c = static_cast<unsigned char>(s[0]);
  if (c < 0x80) {
    *code_point = c;
    return 1;
  }
  size_t extra;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    extra = 1;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    extra = 2;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    extra = 3;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (s.size() <= extra) return 0;
  for (size_t i = 1; i <= extra; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  static constexpr uint32_t kMinForLength[4] = {0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  *code_point = cp;
  return extra + 1;
}

// Counts the UTF-16 code units of valid UTF-8 `s` (Kinesis' measure of a partition key's
// length), or returns -1 if `s` is not valid UTF-8 (see DecodeUtf8).
inline int Utf16Length(std::string_view s) {
  int units = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {  // the common case, without the call
      ++i;
      ++units;
      continue;
    }
    uint32_t cp;
    const size_t n = DecodeUtf8(s.substr(i), &cp);
    if (n == 0) return -1;
    units += n == 4 ? 2 : 1;
    i += n;
  }
  return units;
}

}  // namespace rill::internal

#endif  // RILL_BASE_UTF_H_
