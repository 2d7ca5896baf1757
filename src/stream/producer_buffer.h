// The Producer's buffer (producer.cc): the outstanding records, filed per predicted shard. Each
// ShardBuffer holds its records, the intrusive lists that order them, the table of its partition
// keys with outstanding records, a pool that reuses records, and its own two locks, so that Puts
// to different shards never share a lock and each shard has its own sender. Not public API.
//
// Why a separate file: producer.cc is the sending protocol (Put, Poll, retries, Flush, the
// worker); this is the data structure it works on. The hot paths (list links, key lookups, taking
// a record from the pool) are inline here.
#ifndef RILL_STREAM_PRODUCER_BUFFER_H_
#define RILL_STREAM_PRODUCER_BUFFER_H_

#include <algorithm>
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
#include "rill/base/internal/mutex.h"
#include "rill/base/shard_id.h"
#include "rill/stream/producer.h"
#include "rill/stream/record.h"

namespace rill::internal::producer {

using PutResult = absl::StatusOr<PutRecordResult>;

// Reuse pools, one per shard buffer: large enough that a steady flow (thousands of records per
// shard between flushes) allocates nothing per record, bounded so that a burst does not pin its
// memory for ever. The producer-wide bounds below are divided among the shards (see
// RecordPool's constructor): at most kMaxSpareRecords slots (a few hundred bytes each) holding
// at most kMaxSpareStringBytes of string capacity in all, no string above kMaxSpareStringCapacity.
inline constexpr size_t kMaxSpareRecords = 16384;
inline constexpr size_t kMaxSpareStringCapacity = 4096;
inline constexpr size_t kMaxSpareStringBytes = size_t{8} << 20;
// A shard's pool keeps at least this many slots, however many shards share the bounds above.
inline constexpr size_t kMinSpareRecordsPerShard = 1024;

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
  uint64_t id = 0;  // Put order, producer-wide: 1, 2, 3, ... (increasing along a shard's lists)
  absl::Time put_time;
  absl::Time retry_at;  // kBackoff only
  int attempts = 0;
  uint32_t shard = 0;     // index of the predicted shard in its ShardMap
  bool head = false;      // the oldest outstanding record of its key
  bool in_fresh = false;  // in its shard's fresh list (never attempted)
  HeadState state = HeadState::kReady;
  ErrorCode last_code = ErrorCode::kOk;
  std::string last_message;
  std::optional<std::promise<PutResult>> promise;
  Producer::Callback callback;
  Pending* key_next = nullptr;  // the next record of the same key
  Link all;                     // ShardBuffer::all: the shard's outstanding records, in Put order
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

  // Drops every chain and the memory of the table (a retired shard buffer keeps no memory).
  void Clear() { Map().swap(chains_); }

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
  // A pool for one of `shards` shard buffers: its share of the producer-wide bounds.
  explicit RecordPool(size_t shards)
      : max_records_(
            std::max(kMinSpareRecordsPerShard, kMaxSpareRecords / std::max<size_t>(1, shards))),
        max_string_bytes_(kMaxSpareStringBytes / std::max<size_t>(1, shards)) {}
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

  // Frees every spare record (a retired shard buffer keeps no memory).
  void Clear();

 private:
  static size_t StringBytes(const Pending& r) {
    return r.key.capacity() + r.data.capacity() + r.last_message.capacity();
  }

  const size_t max_records_;
  const size_t max_string_bytes_;
  std::vector<Pending*> spare_;
  size_t spare_string_bytes_ = 0;  // string capacity held by spare_
};

struct Completion {
  std::optional<std::promise<PutResult>> promise;
  Producer::Callback callback;
  PutResult result;
};

// The records predicted to land in one open shard, with the shard's locks.
//
// send_mu is the shard's sender role: whoever holds it (a Put that filled a batch, Poll, Flush,
// the worker, a refresh of the shard map) is the only one sending this shard's records and
// running their completions, so that one key's records go out one call after another and its
// callbacks run in Put order. It is held across the PutRecords call and the callbacks. mu guards
// the records and is held only briefly, never across a call to the stream or a callback.
// Order: send_mu, then mu. A Put takes mu only (and try-locks send_mu after releasing it).
struct ShardBuffer {
  ShardBuffer(ShardId shard_id, size_t shard_count) : id(shard_id), pool(shard_count) {}

  internal::Mutex send_mu;
  internal::Mutex mu ABSL_ACQUIRED_AFTER(send_mu);

  const ShardId id;
  // Set (under every shard's locks) when a newer shard map replaced this one's map: a Put that
  // finds it set retries with the new map. A retired buffer is empty and stays so.
  bool retired ABSL_GUARDED_BY(mu) = false;
  // Every outstanding record of the shard, in Put order (increasing id).
  List<&Pending::all> all ABSL_GUARDED_BY(mu);
  // Records never attempted yet (heads or not), in Put order: the front is the oldest, which
  // decides when the shard is due; the count and bytes decide when a batch's worth is waiting.
  List<&Pending::fresh> fresh ABSL_GUARDED_BY(mu);
  size_t fresh_bytes ABSL_GUARDED_BY(mu) = 0;
  // Heads ready to send, and how many of them are retries (a retry makes the shard due at once).
  List<&Pending::ready> ready ABSL_GUARDED_BY(mu);
  size_t ready_retries ABSL_GUARDED_BY(mu) = 0;
  // Heads waiting out a backoff, by retry time.
  std::multimap<absl::Time, Pending*> backoff ABSL_GUARDED_BY(mu);
  KeyTable keys ABSL_GUARDED_BY(mu);
  RecordPool pool ABSL_GUARDED_BY(mu);
  // This shard's share of the counters (user_records_refused and shard_map_refreshes are kept
  // producer-wide).
  ProducerStats stats ABSL_GUARDED_BY(mu);
  // Records resolved under mu whose count is not yet taken off Impl::outstanding_ (taken once per
  // locked section, not per record).
  size_t resolved ABSL_GUARDED_BY(mu) = 0;
  // Records in the PutRecords call under way (whoever holds send_mu is sending them).
  size_t in_flight_count ABSL_GUARDED_BY(mu) = 0;

  // The sender's scratch, reused from call to call.
  std::vector<PutRecordsEntry> batch ABSL_GUARDED_BY(send_mu);
  std::vector<Pending*> in_flight ABSL_GUARDED_BY(send_mu);
  std::vector<Pending*> deferred ABSL_GUARDED_BY(send_mu);
  // Resolved records' outcomes, queued under mu, delivered by the sender once mu is released.
  std::vector<Completion> done ABSL_GUARDED_BY(send_mu);
};

}  // namespace rill::internal::producer

#endif  // RILL_STREAM_PRODUCER_BUFFER_H_
