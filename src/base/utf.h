// UTF-8 helpers. Internal to rill.
#ifndef RILL_BASE_UTF_H_
#define RILL_BASE_UTF_H_

#include <string_view>

namespace rill::internal {

// Counts the UTF-16 code units of valid UTF-8 `s` (Kinesis' measure of a partition key's
// length), or returns -1 if `s` is not valid UTF-8 (overlong forms, surrogates, values past
// U+10FFFF and truncated sequences are not).
int Utf16Length(std::string_view s);

}  // namespace rill::internal

#endif  // RILL_BASE_UTF_H_
