#include "log/shard_log.h"

#include <algorithm>
#include <bit>

#include "log/chunk_pool.h"

namespace rill::internal {

char* AllocateChunkBytes(size_t capacity) { return ChunkPool::Default().Take(capacity); }

void FreeChunkBytes(char* bytes, size_t capacity) { ChunkPool::Default().Give(bytes, capacity); }

std::optional<ShardLog::Appended> ShardLog::Append(std::string_view key, std::string_view data,
                                                   int64_t now_us, uint64_t counter_floor,
                                                   int64_t expire_before_us) {
  Appended appended;
  {
    MutexLock lock(&append_mu_);
    if (closed_.load(std::memory_order_relaxed)) return std::nullopt;
    appended.counter = NextCounterLocked(counter_floor);
    appended.arrival_us = std::max(now_us, last_arrival_us_);
    appended.ordinal = written_;
    WriteLocked(key, data, appended.counter, appended.arrival_us, /*publish=*/true);
  }
  AfterAppend(expire_before_us, true);
  return appended;
}

absl::StatusOr<std::optional<ShardLog::Appended>> ShardLog::AppendJournaled(
    std::string_view key, std::string_view data, int64_t now_us, uint64_t counter_floor,
    int64_t expire_before_us, Visibility visibility,
    absl::FunctionRef<absl::Status(uint64_t counter, int64_t arrival_us)> journal) {
  Appended appended;
  const bool publish = visibility == Visibility::kNow;
  {
    MutexLock lock(&append_mu_);
    if (closed_.load(std::memory_order_relaxed)) return std::optional<Appended>();
    appended.counter = NextCounterLocked(counter_floor);
    appended.arrival_us = std::max(now_us, last_arrival_us_);
    appended.ordinal = written_;
    if (absl::Status s = journal(appended.counter, appended.arrival_us); !s.ok()) return s;
    if (visibility == Visibility::kDeferredFirst) {
      MutexLock ledger(&ledger_mu_);
      ledger_.push_back(DeferredWriter{appended.ordinal, false, false});
    }
    WriteLocked(key, data, appended.counter, appended.arrival_us, publish);
  }
  AfterAppend(expire_before_us, publish);
  return std::optional<Appended>(appended);
}

absl::Status ShardLog::AppendJournaledBatch(
    absl::Span<BatchRecord> records, int64_t now_us, int64_t expire_before_us,
    Visibility visibility, absl::FunctionRef<absl::Status(const BatchRecord&)> journal,
    size_t* appended) {
  const bool publish = visibility == Visibility::kNow;
  absl::Status status;
  size_t n = 0;
  {
    MutexLock lock(&append_mu_);
    if (closed_.load(std::memory_order_relaxed)) {
      *appended = 0;
      return absl::OkStatus();
    }
    for (; n < records.size(); ++n) {
      BatchRecord& r = records[n];
      r.counter = next_counter_;
      r.arrival_us = std::max(now_us, last_arrival_us_);
      r.ordinal = written_;
      status = journal(r);
      if (!status.ok()) break;
      if (n == 0 && visibility == Visibility::kDeferredFirst) {
        MutexLock ledger(&ledger_mu_);
        ledger_.push_back(DeferredWriter{r.ordinal, false, false});
      }
      WriteLocked(r.key, r.data, r.counter, r.arrival_us, publish);
    }
  }
  *appended = n;
  if (n != 0) AfterAppend(expire_before_us, publish);
  return status;
}

void ShardLog::FinishDeferred(uint64_t start, uint64_t end, bool durable) {
  uint64_t publish_to = 0;
  {
    MutexLock lock(&ledger_mu_);
    for (DeferredWriter& w : ledger_) {
      if (w.start == start) {
        w.finished = true;
        w.durable = durable;
        break;
      }
    }
    if (durable) finished_end_ = std::max(finished_end_, end);
    size_t done = 0;
    while (done < ledger_.size() && ledger_[done].finished && ledger_[done].durable) ++done;
    ledger_.erase(ledger_.begin(), ledger_.begin() + static_cast<std::ptrdiff_t>(done));
    // Below the first unfinished writer's first record, every record's writer has finished.
    publish_to = ledger_.empty() ? finished_end_ : std::min(finished_end_, ledger_.front().start);
  }
  Publish(publish_to);
}

void ShardLog::Publish(uint64_t end) {
  uint64_t published = published_.load(std::memory_order_relaxed);
  while (published < end &&
         !published_.compare_exchange_weak(published, end, std::memory_order_release,
                                           std::memory_order_relaxed)) {
  }
  if (waker_count_.load(std::memory_order_relaxed) != 0) WakeReaders();
}

void ShardLog::AfterAppend(int64_t expire_before_us, bool published) {
  if (published && waker_count_.load(std::memory_order_relaxed) != 0) WakeReaders();
  if (expire_before_us > oldest_sealed_last_us_.load(std::memory_order_relaxed)) {
    TrimBefore(expire_before_us);
  }
}

void ShardLog::WriteLocked(std::string_view key, std::string_view data, uint64_t counter,
                           int64_t arrival_us, bool publish) {
  const size_t record_bytes = kRecordHeaderBytes + key.size() + data.size();
  // No chunk yet: chunk_capacity_ is 0, and nothing fits.
  if (write_offset_ + record_bytes + 4 * (chunk_count_ / kIndexStride + 1) > chunk_capacity_ ||
      counter - chunk_base_counter_ > std::numeric_limits<uint32_t>::max() ||
      arrival_us - chunk_base_us_ > std::numeric_limits<uint32_t>::max()) {
    StartChunk(record_bytes, counter, arrival_us);
  }

  const uint32_t count = chunk_count_;
  char* p = chunk_bytes_ + write_offset_;
  const auto counter_delta = static_cast<uint32_t>(counter - chunk_base_counter_);
  const auto time_delta = static_cast<uint32_t>(arrival_us - chunk_base_us_);
  const auto key_len = static_cast<uint16_t>(key.size());
  const auto data_len = static_cast<uint32_t>(data.size());
  std::memcpy(p, &counter_delta, 4);
  std::memcpy(p + 4, &time_delta, 4);
  std::memcpy(p + 8, &key_len, 2);
  std::memcpy(p + 10, &data_len, 4);
  if (!key.empty()) std::memcpy(p + kRecordHeaderBytes, key.data(), key.size());
  if (!data.empty()) std::memcpy(p + kRecordHeaderBytes + key.size(), data.data(), data.size());
  if (count % kIndexStride == 0) {
    const auto offset = static_cast<uint32_t>(write_offset_);
    std::memcpy(chunk_bytes_ + chunk_capacity_ - 4 * (count / kIndexStride + 1), &offset, 4);
  }
  write_offset_ += record_bytes;
  // The next record's lines, fetched for writing now: when the shard is one of many, its next
  // put comes after the others' and the hardware prefetcher, which follows a few streams, has
  // lost this one; without this, each put here waits for its fresh lines from memory. A
  // prefetch never faults (past the chunk's end, or into a page not yet mapped, it is dropped).
  const char* next = chunk_bytes_ + write_offset_;
  __builtin_prefetch(next, 1);
  __builtin_prefetch(next + 64, 1);
  __builtin_prefetch(next + 128, 1);
  __builtin_prefetch(next + 192, 1);
  chunk_count_ = count + 1;
  next_counter_ = counter + 1;
  last_arrival_us_ = arrival_us;
  ++written_;
  // Publication order: the record's bytes, then the chunk's count, then the log's end. A reader
  // that acquires end_ordinal() sees everything before it.
  chunk_->count_.store(count + 1, std::memory_order_release);
  next_counter_published_.store(next_counter_, std::memory_order_release);
  appended_bytes_.store(appended_bytes_.load(std::memory_order_relaxed) + key.size() + data.size(),
                        std::memory_order_relaxed);
  if (publish) published_.store(written_, std::memory_order_release);
}

void ShardLog::AddWaker(Waker* waker) {
  MutexLock lock(&wakers_mu_);
  wakers_.push_back(waker);
  waker_count_.store(wakers_.size(), std::memory_order_relaxed);
}

void ShardLog::RemoveWaker(Waker* waker) {
  MutexLock lock(&wakers_mu_);
  wakers_.erase(std::remove(wakers_.begin(), wakers_.end(), waker), wakers_.end());
  waker_count_.store(wakers_.size(), std::memory_order_relaxed);
}

void ShardLog::WakeReaders() {
  MutexLock lock(&wakers_mu_);
  for (Waker* w : wakers_) w->MarkPending();
  for (Waker* w : wakers_) w->Wake();
}

void ShardLog::StartChunk(size_t record_bytes, uint64_t counter, int64_t arrival_us) {
  const size_t max_chunk = account_ != nullptr ? account_->max_chunk_bytes() : kMaxChunkBytes;
  size_t capacity = std::min(next_chunk_bytes_, max_chunk);
  if (current_ != nullptr) {
    // Size the next chunk from the traffic that filled this one: a quiet shard keeps small chunks.
    capacity = std::clamp<size_t>(std::bit_ceil(2 * write_offset_), kMinChunkBytes, max_chunk);
  }
  // A record too large for the largest chunk gets a chunk of its own size.
  if (record_bytes + 4 > capacity) {
    capacity =
        record_bytes + 4 <= kMaxChunkBytes ? std::bit_ceil(record_bytes + 4) : record_bytes + 4;
  }
  next_chunk_bytes_ = capacity;
  auto chunk = std::make_shared<Chunk>(capacity, written_, counter, arrival_us);
  {
    MutexLock lock(&chunks_mu_);
    if (!chunks_.empty()) {
      chunk_last_us_.back() = last_arrival_us_;
      if (chunks_.size() == 1) {
        oldest_sealed_last_us_.store(chunk_last_us_.front(), std::memory_order_relaxed);
      }
    }
    chunks_.push_back(chunk);
    chunk_last_us_.push_back(std::numeric_limits<int64_t>::max());
    if (account_ != nullptr) account_->Add(capacity + sizeof(Chunk));
  }
  current_ = std::move(chunk);
  chunk_ = current_.get();
  chunk_bytes_ = chunk_->bytes_.get();
  chunk_capacity_ = capacity;
  chunk_base_counter_ = counter;
  chunk_base_us_ = arrival_us;
  chunk_count_ = 0;
  write_offset_ = 0;
}

void ShardLog::RaiseNextCounter(uint64_t floor) {
  MutexLock lock(&append_mu_);
  if (floor == std::numeric_limits<uint64_t>::max() || floor < next_counter_) return;
  next_counter_ = floor + 1;
  next_counter_published_.store(next_counter_, std::memory_order_release);
}

std::optional<uint64_t> ShardLog::Close() {
  MutexLock lock(&append_mu_);
  const bool empty = next_counter_ == first_counter_;
  ending_counter_.store(empty ? first_counter_ : next_counter_ - 1, std::memory_order_relaxed);
  last_arrival_at_close_us_.store(last_arrival_us_, std::memory_order_relaxed);
  if (!closed_.load(std::memory_order_relaxed)) {
    // The newest chunk is sealed now, so that retention can reclaim it like the others. Closed
    // under the chunk lock, so that a reclaim never sees the seal without the close.
    MutexLock chunks_lock(&chunks_mu_);
    if (!chunks_.empty()) {
      chunk_last_us_.back() = last_arrival_us_;
      oldest_sealed_last_us_.store(chunk_last_us_.front(), std::memory_order_relaxed);
    }
    closed_.store(true, std::memory_order_release);
  }
  if (waker_count_.load(std::memory_order_relaxed) != 0) WakeReaders();
  if (empty) return std::nullopt;
  return next_counter_ - 1;
}

std::shared_ptr<const Chunk> ShardLog::FindChunk(uint64_t ordinal) const {
  ReaderMutexLock lock(&chunks_mu_);
  if (chunks_.empty()) return nullptr;
  auto it = std::upper_bound(
      chunks_.begin(), chunks_.end(), ordinal,
      [](uint64_t o, const std::shared_ptr<const Chunk>& c) { return o < c->first_ordinal(); });
  if (it == chunks_.begin()) return chunks_.front();
  return *(it - 1);
}

int64_t ShardLog::ArrivalAt(uint64_t ordinal) const {
  std::shared_ptr<const Chunk> chunk = FindChunk(ordinal);
  const uint64_t clamped = std::max(ordinal, chunk->first_ordinal());
  return chunk->RecordAt(chunk->OffsetOf(static_cast<uint32_t>(clamped - chunk->first_ordinal())))
      .arrival_us;
}

void ShardLog::CountRecords(uint64_t from, uint64_t to, Trimmed* counted) const {
  while (from < to) {
    std::shared_ptr<const Chunk> chunk = FindChunk(from);
    if (chunk == nullptr) return;
    const uint64_t first = chunk->first_ordinal();
    from = std::max(from, first);  // as a Cursor: from the oldest record still in memory
    // Records below `to` are written, so the chunk holding `from` holds it and what follows it,
    // up to its count or `to`.
    const uint64_t last = std::min<uint64_t>(to, first + chunk->count());
    if (last <= from) return;  // not expected: `from` is written
    const auto begin = static_cast<uint32_t>(from - first);
    const auto end = static_cast<uint32_t>(last - first);
    counted->records += end - begin;
    counted->bytes +=
        chunk->EndOffsetOf(end) - chunk->OffsetOf(begin) - size_t{end - begin} * kRecordHeaderBytes;
    from = last;
  }
}

uint64_t ShardLog::TrimBefore(int64_t cutoff_us) {
  return TrimBefore(cutoff_us, std::numeric_limits<int64_t>::max(), nullptr);
}

uint64_t ShardLog::TrimBefore(int64_t cutoff_us, int64_t count_from_us, Trimmed* counted) {
  // Without the lock first: every read applies retention, and almost always nothing is due.
  uint64_t trim = trim_ordinal_.load(std::memory_order_acquire);
  if (!(trim < end_ordinal() && ArrivalAt(trim) < cutoff_us) &&
      cutoff_us <= oldest_sealed_last_us_.load(std::memory_order_relaxed)) {
    return trim;
  }
  MutexLock lock(&trim_mu_);
  const uint64_t end = end_ordinal();
  trim = trim_ordinal_.load(std::memory_order_acquire);
  if (trim < end && ArrivalAt(trim) < cutoff_us) {
    TrimToLocked(LowerBound([](const StoredRecord& r) { return r.arrival_us; }, cutoff_us, end),
                 count_from_us, counted);
  }
  if (cutoff_us > oldest_sealed_last_us_.load(std::memory_order_relaxed)) Reclaim();
  return trim_ordinal_.load(std::memory_order_acquire);
}

void ShardLog::TrimToLocked(uint64_t target, int64_t count_from_us, Trimmed* counted) {
  if (target <= trim_ordinal_.load(std::memory_order_relaxed)) return;
  if (counted != nullptr) {
    // Trims reclaim chunks only under trim_mu_, so the records below target are still here
    // (durable eviction does not take it, but nothing durable is counted).
    const uint64_t from =
        LowerBound([](const StoredRecord& r) { return r.arrival_us; }, count_from_us, target);
    CountRecords(from, target, counted);
  }
  trim_ordinal_.store(target, std::memory_order_release);
}

bool ShardLog::RetireOldestChunk(int64_t last_us, int64_t count_from_us, Trimmed* counted) {
  MutexLock lock(&trim_mu_);
  uint64_t target;
  {
    ReaderMutexLock chunks_lock(&chunks_mu_);
    if (chunks_.empty() || oldest_sealed_last_us_.load(std::memory_order_relaxed) != last_us) {
      return false;
    }
    // Up to the next chunk; a closed log's only chunk ends with the log.
    target = chunks_.size() > 1 ? chunks_[1]->first_ordinal() : end_ordinal();
  }
  TrimToLocked(target, count_from_us, counted);
  Reclaim();
  return true;
}

void ShardLog::Reclaim() {
  const uint64_t trim = trim_ordinal_.load(std::memory_order_acquire);
  const uint64_t end = end_ordinal();
  const bool closed = this->closed();
  MutexLock lock(&chunks_mu_);
  // The newest chunk stays while the writer may fill it; a closed log whose every record is
  // trimmed gives them all back.
  size_t drop = 0;
  while (drop + 1 < chunks_.size() && chunks_[drop + 1]->first_ordinal() <= trim) ++drop;
  if (closed && trim >= end && drop + 1 == chunks_.size()) ++drop;
  DropChunksLocked(drop);
}

void ShardLog::DropChunksLocked(size_t drop) {
  if (drop == 0) return;
  if (account_ != nullptr) {
    size_t bytes = 0;
    for (size_t i = 0; i < drop; ++i) bytes += chunks_[i]->capacity() + sizeof(Chunk);
    account_->Sub(bytes);
  }
  chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<ptrdiff_t>(drop));
  chunk_last_us_.erase(chunk_last_us_.begin(),
                       chunk_last_us_.begin() + static_cast<ptrdiff_t>(drop));
  const bool oldest_sealed = chunks_.size() > 1 || (closed() && !chunks_.empty());
  oldest_sealed_last_us_.store(
      oldest_sealed ? chunk_last_us_.front() : std::numeric_limits<int64_t>::max(),
      std::memory_order_relaxed);
}

uint64_t ShardLog::memory_start_ordinal() const {
  {
    ReaderMutexLock lock(&chunks_mu_);
    if (!chunks_.empty()) return chunks_.front()->first_ordinal();
  }
  return end_ordinal();
}

size_t ShardLog::EvictBefore(uint64_t ordinal, size_t max_bytes) {
  MutexLock lock(&chunks_mu_);
  size_t drop = 0;
  size_t bytes = 0;
  while (bytes < max_bytes && drop + 1 < chunks_.size() &&
         chunks_[drop + 1]->first_ordinal() <= ordinal) {
    bytes += chunks_[drop]->capacity() + sizeof(Chunk);
    ++drop;
  }
  DropChunksLocked(drop);
  return bytes;
}

void ShardLog::RaiseTrim(uint64_t ordinal) {
  ordinal = std::min(ordinal, end_ordinal());
  MutexLock lock(&trim_mu_);
  if (ordinal > trim_ordinal_.load(std::memory_order_relaxed)) {
    trim_ordinal_.store(ordinal, std::memory_order_release);
  }
}

template <typename Projection, typename Key>
uint64_t ShardLog::LowerBound(Projection project, Key target, uint64_t end) const {
  const uint64_t trim = trim_ordinal();
  if (trim >= end) return end;
  std::shared_ptr<const Chunk> chunk;
  std::shared_ptr<const Chunk> next;
  {
    ReaderMutexLock lock(&chunks_mu_);
    // The last chunk whose first record is below the target holds the answer, or the answer is
    // the first record of the chunk after it.
    auto it = std::partition_point(
        chunks_.begin(), chunks_.end(), [&](const std::shared_ptr<const Chunk>& c) {
          return c->first_ordinal() < end && project(c->RecordAt(0)) < target;
        });
    if (it == chunks_.begin()) return trim;
    chunk = *(it - 1);
    if (it != chunks_.end()) next = *it;
  }
  const uint64_t first = chunk->first_ordinal();
  const auto count = static_cast<uint32_t>(std::min<uint64_t>(chunk->count(), end - first));
  // Binary search over the sparse index, then a short scan.
  uint32_t lo = 0, hi = (count + kIndexStride - 1) / kIndexStride;  // entries
  while (hi - lo > 1) {
    const uint32_t mid = (lo + hi) / 2;
    if (project(chunk->RecordAt(chunk->IndexEntry(mid))) < target) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  uint32_t i = lo * kIndexStride;
  size_t offset = chunk->IndexEntry(lo);
  while (i < count && project(chunk->RecordAt(offset)) < target) {
    offset += chunk->RecordSizeAt(offset);
    ++i;
  }
  const uint64_t result = i < count ? first + i : (next ? next->first_ordinal() : end);
  return std::clamp(result, trim, end);
}

uint64_t ShardLog::LowerBoundCounter(uint64_t counter, uint64_t end) const {
  return LowerBound([](const StoredRecord& r) { return r.counter; }, counter, end);
}

uint64_t ShardLog::LowerBoundTime(int64_t time_us, uint64_t end) const {
  return LowerBound([](const StoredRecord& r) { return r.arrival_us; }, time_us, end);
}

size_t ShardLog::MemoryBytes() const {
  ReaderMutexLock lock(&chunks_mu_);
  size_t bytes = 0;
  for (const auto& c : chunks_) bytes += c->capacity() + sizeof(Chunk);
  return bytes;
}

ShardLog::Cursor::Cursor(const ShardLog& log, uint64_t ordinal, uint64_t end)
    : log_(&log), ordinal_(ordinal), end_(end) {
  if (ordinal_ < end_) Load(ordinal_);
}

void ShardLog::Cursor::Load(uint64_t ordinal) {
  chunk_ = log_->FindChunk(ordinal);
  if (chunk_ == nullptr) {
    ordinal_ = end_;
    return;
  }
  ordinal_ = std::max(ordinal, chunk_->first_ordinal());
  if (ordinal_ >= end_) return;
  offset_ = chunk_->OffsetOf(static_cast<uint32_t>(ordinal_ - chunk_->first_ordinal()));
}

void ShardLog::Cursor::Next() {
  offset_ += chunk_->RecordSizeAt(offset_);
  ++ordinal_;
  if (ordinal_ < end_ && ordinal_ - chunk_->first_ordinal() >= chunk_->count()) Load(ordinal_);
}

}  // namespace rill::internal
