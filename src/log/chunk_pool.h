// ChunkPool: the memory of ShardLog's chunks. Internal.
//
// Every chunk a log starts is a power of two from 4 KiB to 2 MiB, and all of them come out of
// 2 MiB regions, aligned to 2 MiB and marked for transparent huge pages: a 2 MiB chunk is a
// region of its own, smaller chunks are carved from a shared region one after the other. The
// first touch of a region then costs one page fault for 2 MiB instead of 512 of 4 KiB. Why it
// matters: on the shared VMs rill is measured on, a 4 KiB fault costs about 13 µs, 400 ns per
// 130-byte record written into fresh memory, three times a whole put; a 100-shard stream spends
// its first seconds in small chunks (each shard's chunks grow from 4 KiB), which malloc served
// from 4 KiB pages.
//
// Freed chunks are kept by size for reuse, up to a cap: writing into recycled memory skips the
// kernel's zeroing. Past the cap, a chunk's pages go back to the system (a carved chunk alone,
// splitting its region's huge page). A record larger than 2 MiB gets a mapping of its own.
//
// Example:
//   char* p = ChunkPool::Default().Take(64 << 10);
//   ...
//   ChunkPool::Default().Give(p, 64 << 10);
//
// Thread safety: thread-safe; Take and Give take the pool's lock (once per chunk, not per record).
#ifndef RILL_LOG_CHUNK_POOL_H_
#define RILL_LOG_CHUNK_POOL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "rill/base/internal/mutex.h"

namespace rill::internal {

class ChunkPool {
 public:
  static constexpr size_t kMinChunkBytes = size_t{4} << 10;
  static constexpr size_t kRegionBytes = size_t{2} << 20;  // also the largest pooled chunk
  // Default: the process-wide pool's cap on kept chunks.
  static constexpr size_t kDefaultMaxPooledBytes = size_t{64} << 20;

  // `max_pooled_bytes`: the most freed chunk bytes kept for reuse (carved leftovers included).
  explicit ChunkPool(size_t max_pooled_bytes = kDefaultMaxPooledBytes);
  ChunkPool(const ChunkPool&) = delete;
  ChunkPool& operator=(const ChunkPool&) = delete;
  // Returns the pooled chunks and the unused part of the carving region to the system. Chunks
  // still taken must not be given back after (the process-wide pool is never destroyed).
  ~ChunkPool();

  // The pool ShardLog's chunks come from (leaked: chunks may be freed during exit).
  static ChunkPool& Default();

  // `capacity` bytes, writable. A power of two in [kMinChunkBytes, kRegionBytes] is aligned to
  // its size when it is a region, to 4 KiB otherwise; any other size gets a mapping of its own.
  // Throws std::bad_alloc when the system has no memory (as operator new).
  char* Take(size_t capacity) ABSL_LOCKS_EXCLUDED(mu_);
  // Gives back what Take(capacity) returned.
  void Give(char* bytes, size_t capacity) ABSL_LOCKS_EXCLUDED(mu_);

  // Freed bytes kept for reuse (at most max_pooled_bytes).
  size_t pooled_bytes() const ABSL_LOCKS_EXCLUDED(mu_);
  // 2 MiB regions taken from the system so far (whole-region chunks and carving regions).
  uint64_t regions_mapped() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  static constexpr int kClasses = 10;  // 4 KiB << 0 .. 4 KiB << 9 = 2 MiB
  // The class of a pooled size, or -1.
  static int SizeClass(size_t capacity);
  // A fresh region (from the current reservation, reserving more when it is used up).
  char* NewRegionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps `bytes` of `capacity` for reuse; false if that would pass the cap.
  bool KeepLocked(char* bytes, size_t capacity) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns `bytes` of `capacity` to the system.
  static void Release(char* bytes, size_t capacity);

  const size_t max_pooled_bytes_;
  mutable Mutex mu_;
  std::vector<char*> free_[kClasses] ABSL_GUARDED_BY(mu_);
  size_t pooled_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Smaller chunks are carved from [carve_, carve_ + carve_left_).
  char* carve_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t carve_left_ ABSL_GUARDED_BY(mu_) = 0;
  // Address space reserved for regions, [reserve_, reserve_ + reserve_left_): one mapping for
  // many regions, so that a region costs no system call (the kernel maps pages on first touch).
  char* reserve_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t reserve_left_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t regions_mapped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rill::internal

#endif  // RILL_LOG_CHUNK_POOL_H_
