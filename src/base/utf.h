// UTF-8 helpers. Internal to rill.
#ifndef RILL_BASE_UTF_H_
#define RILL_BASE_UTF_H_

#include <cstdint>
#include <string_view>

namespace rill::internal {

// Counts the UTF-16 code units of valid UTF-8 `s` (Kinesis' measure of a partition key's
// length), or returns -1 if `s` is not valid UTF-8 (overlong forms, surrogates, values past
// U+10FFFF and truncated sequences are not).
// Inline: every put validates its key with it.
inline int Utf16Length(std::string_view s) {
  int units = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      ++units;
      continue;
    }
    int extra;
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
      return -1;
    }
    if (end - p <= extra) return -1;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return -1;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
    static constexpr uint32_t kMinForLength[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    units += extra == 3 ? 2 : 1;
    p += extra + 1;
  }
  return units;
}

}  // namespace rill::internal

#endif  // RILL_BASE_UTF_H_
