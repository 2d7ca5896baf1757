// The Producer's buffer (producer.cc): the outstanding records, the intrusive lists that file them
// per shard, the table of partition keys with outstanding records, and the pool that reuses
// records. Not public API; everything here is guarded by the Producer's buffer lock (Impl::mu_),
// and nothing here is thread-safe on its own.
//
// Why a separate file: producer.cc is the sending protocol (Put, Poll, retries, Flush, the
// worker); this is the data structure it works on. The hot paths (list links, key lookups, taking
// a record from the pool) are inline here.
#ifndef RILL_STREAM_PRODUCER_BUFFER_H_
#define RILL_STREAM_PRODUCER_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rill/base/error.h"
#include "rill/base/hash_key.h"
#include "rill/stream/producer.h"

namespace rill::internal::producer {

using PutResult = absl::StatusOr<PutRecordResult>;

// Reuse pools: large enough that a steady flow (tens of thousands of records between flushes)
// allocates nothing per record, bounded so that a burst does not pin its memory for ever: at most
// kMaxSpareRecords slots (a few hundred bytes each) holding at most kMaxSpareStringBytes of string
// capacity in all, no string above kMaxSpareStringCapacity.
inline constexpr size_t kMaxSpareRecords = 16384;
inline constexpr size_t kMaxSpareStringCapacity = 4096;
inline constexpr size_t kMaxSpareStringBytes = size_t{8} << 20;

struct Pending;
struct Link {
  Pending* prev = nullptr;
  Pending* next = nullptr;
};

// Where the head (oldest outstanding record) of a partition key stands. Only heads are ever sent:
// the records behind a head wait in their key's chain until it resolves.
enum class HeadState : uint8_t {
  kReady,     // in its shard's ready list, to be sent when the shard is due
  kBackoff,   // refused with a retryable code; in its shard's backoff map until retry_at
  kInFlight,  // part of a PutRecords call right now
};

struct Pending {
  // Owned copies of the caller's bytes. While in flight they are swapped into the request.
  std::string key;
  std::string data;
  size_t bytes = 0;  // key.size() + data.size(), kept while the strings are lent out
  HashKey hash;
  uint64_t id = 0;  // Put order: 1, 2, 3, ...
  absl::Time put_time;
  absl::Time retry_at;  // kBackoff only
  int attempts = 0;
  uint32_t shard = 0;     // index of the predicted shard in Impl::shards_
  bool head = false;      // the oldest outstanding record of its key
  bool in_fresh = false;  // in its shard's fresh list (never attempted)
  HeadState state = HeadState::kReady;
  ErrorCode last_code = ErrorCode::kOk;
  std::string last_message;
  std::optional<std::promise<PutResult>> promise;
  Producer::Callback callback;
  Pending* key_next = nullptr;  // the next record of the same key
  Link all;                     // Impl::all_: every outstanding record, in Put order
  Link fresh;                   // ShardBuffer::fresh
  Link ready;                   // ShardBuffer::ready
  std::multimap<absl::Time, Pending*>::iterator backoff_it;
};

// An intrusive doubly-linked list threaded through one Link member of Pending: no allocation.
template <Link Pending::*L>
class List {
 public:
  Pending* front() const { return head_; }
  bool empty() const { return head_ == nullptr; }
  size_t size() const { return size_; }
  static Pending* Next(const Pending* r) { return (r->*L).next; }

  void PushBack(Pending* r) {
    Link& link = r->*L;
    link.prev = tail_;
    link.next = nullptr;
    if (tail_ != nullptr) {
      (tail_->*L).next = r;
    } else {
      head_ = r;
    }
    tail_ = r;
    ++size_;
  }
  void PushFront(Pending* r) {
    Link& link = r->*L;
    link.prev = nullptr;
    link.next = head_;
    if (head_ != nullptr) {
      (head_->*L).prev = r;
    } else {
      tail_ = r;
    }
    head_ = r;
    ++size_;
  }
  void Remove(Pending* r) {
    Link& link = r->*L;
    if (link.prev != nullptr) {
      (link.prev->*L).next = link.next;
    } else {
      head_ = link.next;
    }
    if (link.next != nullptr) {
      (link.next->*L).prev = link.prev;
    } else {
      tail_ = link.prev;
    }
    link.prev = link.next = nullptr;
    --size_;
  }

 private:
  Pending* head_ = nullptr;
  Pending* tail_ = nullptr;
  size_t size_ = 0;
};

// The records predicted to land in one open shard.
struct ShardBuffer {
  ShardId id;
  // Records never attempted yet (heads or not), in Put order: the front is the oldest, which
  // decides when the shard is due; the count and bytes decide when a batch's worth is waiting.
  List<&Pending::fresh> fresh;
  size_t fresh_bytes = 0;
  // Heads ready to send, and how many of them are retries (a retry makes the shard due at once).
  List<&Pending::ready> ready;
  size_t ready_retries = 0;
  // Heads waiting out a backoff, by retry time.
  std::multimap<absl::Time, Pending*> backoff;
};

// Keys with outstanding records: hash key -> the chain of its records, oldest (the head) first.
// An absl::flat_hash_map (it measured as fast as the hand-written open-addressing table it
// replaced) hashed by the MD5's low 64 bits, which are uniform already. It shrinks again after a
// burst of many distinct keys. Iterators it returns are valid until the next FindOrInsert or Erase.
class KeyTable {
 public:
  struct Chain {
    Pending* head = nullptr;
    Pending* tail = nullptr;
  };
  struct LowBits {
    size_t operator()(absl::uint128 key) const {
      return static_cast<size_t>(absl::Uint128Low64(key));
    }
  };
  using Map = absl::flat_hash_map<absl::uint128, Chain, LowBits>;

  KeyTable() { chains_.reserve(kMinKeys); }

  // The key's chain; if the key had none, a new one holding r alone (second: true).
  std::pair<Map::iterator, bool> FindOrInsert(absl::uint128 key, Pending* r) {
    return chains_.try_emplace(key, Chain{r, r});
  }

  // REQUIRES: the key has a chain.
  Map::iterator Find(absl::uint128 key) { return chains_.find(key); }

  // `it` must come from Find or FindOrInsert.
  void Erase(Map::iterator it) {
    chains_.erase(it);
    if (chains_.capacity() > kMinCapacity && chains_.size() * 8 < chains_.capacity()) Shrink();
  }

 private:
  // The map is made for kMinKeys keys and never shrinks below; kMinCapacity is its capacity then.
  static constexpr size_t kMinKeys = 512;
  static constexpr size_t kMinCapacity = 1023;

  void Shrink();  // rare: out of line

  Map chains_;
};

// Resolved records kept for reuse, with their strings' capacity (within the bounds above), so
// that a steady flow of Puts allocates nothing per record.
class RecordPool {
 public:
  RecordPool() = default;
  RecordPool(const RecordPool&) = delete;
  RecordPool& operator=(const RecordPool&) = delete;
  ~RecordPool();

  // A record with empty strings and default fields (bar put_time, retry_at and backoff_it, which
  // the caller sets before use).
  Pending* New() {
    if (spare_.empty()) return new Pending;
    Pending* r = spare_.back();
    spare_.pop_back();
    spare_string_bytes_ -= StringBytes(*r);
    return r;
  }

  // Takes back a resolved record (unlinked from every list), keeping small strings' capacity for
  // the next Put; deletes it if the pool is full.
  void Release(Pending* r);

 private:
  static size_t StringBytes(const Pending& r) {
    return r.key.capacity() + r.data.capacity() + r.last_message.capacity();
  }

  std::vector<Pending*> spare_;
  size_t spare_string_bytes_ = 0;  // string capacity held by spare_
};

}  // namespace rill::internal::producer

#endif  // RILL_STREAM_PRODUCER_BUFFER_H_
