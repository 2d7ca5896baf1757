// A per-thread cache of partition key -> hash key.
//
// MD5 is a chain of 64 dependent steps, about 120 ns per key here: half the cost of a put. Real
// traffic repeats its partition keys (a player, a device, a session sends many records), so each
// thread remembers the hash keys of the last keys it hashed in a small four-way set-associative
// table. A hit costs a short compare instead of MD5; the value is always the MD5 result, so
// routing is exactly Kinesis' whatever the hit rate.
//
// Thread safety: each thread has its own table (allocated on its first use, 4096 entries of
// 64 bytes); nothing is shared.
#ifndef RILL_BASE_PARTITION_KEY_CACHE_H_
#define RILL_BASE_PARTITION_KEY_CACHE_H_

#include <string_view>

#include "rill/base/hash_key.h"

namespace rill::internal {

// Equals HashKey::FromPartitionKey(key), cached for keys of up to 38 bytes.
HashKey CachedPartitionKeyHash(std::string_view key);

}  // namespace rill::internal

#endif  // RILL_BASE_PARTITION_KEY_CACHE_H_
