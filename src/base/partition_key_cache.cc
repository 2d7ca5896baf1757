#include "base/partition_key_cache.h"

#include <cstdint>
#include <cstring>
#include <memory>

namespace rill::internal {
namespace {

constexpr size_t kMaxCachedKeyBytes = 38;
constexpr size_t kEntries = 4096;  // a power of two: 256 KiB per thread
constexpr size_t kWays = 4;        // entries per set

struct alignas(64) Entry {
  HashKey hash_key;                  // 16 bytes
  uint8_t length = 0;                // 0 = empty (keys are never empty)
  char key[kMaxCachedKeyBytes + 9];  // pads the entry to one cache line
};
static_assert(sizeof(Entry) == 64);

struct Table {
  Entry entries[kEntries];
};

// Mixes the key's length and up to its first and last 8 bytes: cheap, and enough to spread
// keys that share a prefix ("player-1", "player-2", ...).
size_t Slot(std::string_view key) {
  uint64_t head = 0, tail = 0;
  std::memcpy(&head, key.data(), key.size() < 8 ? key.size() : 8);
  if (key.size() > 8) {
    const size_t n = key.size() - 8 < 8 ? key.size() - 8 : 8;
    std::memcpy(&tail, key.data() + key.size() - n, n);
  }
  uint64_t h = (head ^ (tail * 0x9E3779B97F4A7C15ull) ^ key.size()) * 0xFF51AFD7ED558CCDull;
  h ^= h >> 29;
  return static_cast<size_t>(h >> 32) & (kEntries - 1);
}

}  // namespace

HashKey CachedPartitionKeyHash(std::string_view key) {
  if (key.empty() || key.size() > kMaxCachedKeyBytes) return HashKey::FromPartitionKey(key);
  thread_local std::unique_ptr<Table> table;
  if (table == nullptr) table = std::make_unique<Table>();
  // Four-way: a key may sit in any entry of its set of four, so keys whose slots collide (a
  // fifth of 1,000 keys would in a direct-mapped table) keep their places.
  const size_t slot = Slot(key);
  Entry* set = &table->entries[slot & ~size_t{kWays - 1}];
  for (size_t w = 0; w < kWays; ++w) {
    const Entry& e = set[w];
    if (e.length == key.size() && std::memcmp(e.key, key.data(), key.size()) == 0) {
      return e.hash_key;
    }
  }
  // A miss: an empty entry of the set, else the one the key's slot names.
  Entry* victim = &set[slot & (kWays - 1)];
  for (size_t w = 0; w < kWays; ++w) {
    if (set[w].length == 0) {
      victim = &set[w];
      break;
    }
  }
  victim->hash_key = HashKey::FromPartitionKey(key);
  victim->length = static_cast<uint8_t>(key.size());
  std::memcpy(victim->key, key.data(), key.size());
  return victim->hash_key;
}

}  // namespace rill::internal
