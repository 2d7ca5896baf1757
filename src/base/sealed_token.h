// Self-checking opaque tokens (shard iterators, ListShards' next tokens): fixed-size fields in
// lower-case hex, followed by a check over them, so that a mistyped or altered token is refused
// rather than read as some other position. Not a security boundary: the library trusts its
// caller.
#ifndef RILL_BASE_SEALED_TOKEN_H_
#define RILL_BASE_SEALED_TOKEN_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace rill::internal {

// hex(fields) followed by hex(the first `check_bytes` of MD5(domain ‖ fields)).
// REQUIRES: check_bytes <= 16.
std::string SealToken(std::string_view domain, std::string_view fields, size_t check_bytes);

// The inverse: writes the `field_bytes` fields of a token sealed with the same domain and
// check_bytes into `fields`; false, writing nothing, if the token is malformed or altered.
bool OpenToken(std::string_view domain, std::string_view token, size_t check_bytes, void* fields,
               size_t field_bytes);

}  // namespace rill::internal

#endif  // RILL_BASE_SEALED_TOKEN_H_
