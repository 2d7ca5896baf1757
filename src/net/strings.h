// Small string helpers for rill::net's codecs. Debian's Abseil has its own absl::string_view, which
// std::string_view does not convert to, so absl::StrCat and friends do not take rill's views;
// these do.
//
// Thread safety: every function here is thread-safe. Allocation: those returning std::string or
// std::vector allocate.
#ifndef RILL_NET_STRINGS_H_
#define RILL_NET_STRINGS_H_

#include <concepts>
#include <string>
#include <string_view>
#include <vector>

namespace rill::net::internal {

inline void AppendPiece(std::string* out, std::string_view s) { out->append(s); }
template <std::integral T>
requires(!std::same_as<T, char> && !std::same_as<T, bool>) void AppendPiece(std::string* out, T v) {
  out->append(std::to_string(v));
}

// Appends the pieces (strings, views, literals, integers in decimal) to `*out`.
template <typename... Pieces>
void Append(std::string* out, const Pieces&... pieces) {
  (AppendPiece(out, pieces), ...);
}

// The pieces concatenated.
template <typename... Pieces>
std::string Cat(const Pieces&... pieces) {
  std::string out;
  Append(&out, pieces...);
  return out;
}

// Splits at every `separator`; "" gives one empty piece, as absl::StrSplit.
inline std::vector<std::string_view> Split(std::string_view s, char separator) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == separator) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

// Splits at any character of `separators`, dropping empty pieces.
inline std::vector<std::string_view> SplitAnySkipEmpty(std::string_view s,
                                                       std::string_view separators) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || separators.find(s[i]) != std::string_view::npos) {
      if (i > start) out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

template <typename Range>
std::string Join(const Range& pieces, std::string_view separator) {
  std::string out;
  bool first = true;
  for (const auto& p : pieces) {
    if (!first) out.append(separator);
    first = false;
    out.append(std::string_view(p));
  }
  return out;
}

inline char AsciiToLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

inline std::string AsciiToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiToLower(c);
  return out;
}

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiToLower(a[i]) != AsciiToLower(b[i])) return false;
  }
  return true;
}

}  // namespace rill::net::internal

#endif  // RILL_NET_STRINGS_H_
