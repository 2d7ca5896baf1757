#include "log/chunk_pool.h"

#include <bit>
#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define RILL_CHUNK_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RILL_CHUNK_POOL_ASAN 1
#endif
#endif
#if defined(RILL_CHUNK_POOL_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace rill::internal {

namespace {

// Pooled chunks and the uncarved rest of a region are poisoned under AddressSanitizer, so that a
// write past a chunk's end into them, or into a freed chunk, is caught as operator new's would be.
void Poison([[maybe_unused]] const char* p, [[maybe_unused]] size_t n) {
#if defined(RILL_CHUNK_POOL_ASAN)
  ASAN_POISON_MEMORY_REGION(p, n);
#endif
}
void Unpoison([[maybe_unused]] const char* p, [[maybe_unused]] size_t n) {
#if defined(RILL_CHUNK_POOL_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
}

#if defined(__linux__)
constexpr size_t kPageBytes = 4096;  // mappings are whole pages; the pool's sizes are multiples
// Regions are reserved this many at a time (address space only, until touched).
constexpr size_t kReserveRegions = 32;

size_t RoundUpToPages(size_t n) { return (n + kPageBytes - 1) & ~(kPageBytes - 1); }

// `bytes` of fresh mapping aligned to `align` (a multiple of the page size), marked for huge
// pages when `huge`.
char* Map(size_t bytes, size_t align, bool huge) {
  const size_t span = bytes + (align > kPageBytes ? align : 0);
  void* m = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  char* begin = static_cast<char*>(m);
  char* p = begin;
  if (align > kPageBytes) {
    // Trim the mapping to the aligned span.
    p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(begin) + align - 1) & ~(align - 1));
    if (p != begin) munmap(begin, static_cast<size_t>(p - begin));
    const size_t tail = static_cast<size_t>(begin + span - (p + bytes));
    if (tail != 0) munmap(p + bytes, tail);
  }
#if defined(MADV_HUGEPAGE)
  // Advice only: where huge pages are off, the region is faulted 4 KiB at a time, as malloc's.
  if (huge) madvise(p, bytes, MADV_HUGEPAGE);
#else
  (void)huge;
#endif
  return p;
}

void Unmap(char* p, size_t bytes) {
  Unpoison(p, bytes);
  munmap(p, RoundUpToPages(bytes));
}
#endif

}  // namespace

ChunkPool::ChunkPool(size_t max_pooled_bytes) : max_pooled_bytes_(max_pooled_bytes) {}

ChunkPool::~ChunkPool() {
  MutexLock lock(&mu_);
  for (int c = 0; c < kClasses; ++c) {
    for (char* p : free_[c]) {
#if defined(__linux__)
      Unmap(p, kMinChunkBytes << c);
#else
      Unpoison(p, kMinChunkBytes << c);
      ::operator delete (p, std::align_val_t{kMinChunkBytes});
#endif
    }
  }
#if defined(__linux__)
  if (carve_left_ != 0) Unmap(carve_, carve_left_);
  if (reserve_left_ != 0) Unmap(reserve_, reserve_left_);
#endif
}

ChunkPool& ChunkPool::Default() {
  static auto* const pool = new ChunkPool();
  return *pool;
}

int ChunkPool::SizeClass(size_t capacity) {
  if (capacity < kMinChunkBytes || capacity > kRegionBytes || !std::has_single_bit(capacity)) {
    return -1;
  }
  return std::countr_zero(capacity) - std::countr_zero(kMinChunkBytes);
}

char* ChunkPool::NewRegionLocked() {
#if defined(__linux__)
  if (reserve_left_ == 0) {
    reserve_ = Map(kReserveRegions * kRegionBytes, kRegionBytes, /*huge=*/true);
    reserve_left_ = kReserveRegions * kRegionBytes;
  }
  char* region = reserve_;
  reserve_ += kRegionBytes;
  reserve_left_ -= kRegionBytes;
  ++regions_mapped_;
  return region;
#else
  ++regions_mapped_;
  return static_cast<char*>(::operator new (kRegionBytes, std::align_val_t{kMinChunkBytes}));
#endif
}

char* ChunkPool::Take(size_t capacity) {
  const int c = SizeClass(capacity);
#if defined(__linux__)
  if (c < 0) {
    return Map(RoundUpToPages(capacity), kPageBytes, /*huge=*/capacity >= kRegionBytes);
  }
  MutexLock lock(&mu_);
  if (!free_[c].empty()) {
    char* p = free_[c].back();
    free_[c].pop_back();
    pooled_bytes_ -= capacity;
    Unpoison(p, capacity);
    return p;
  }
  if (capacity == kRegionBytes) return NewRegionLocked();
  if (carve_left_ < capacity) {
    // The rest of the region goes to the pool in pieces of the sizes it can serve, largest
    // first: every piece stays a multiple of 4 KiB, as what was carved before it.
    while (carve_left_ != 0) {
      const size_t piece = std::bit_floor(carve_left_);
      if (!KeepLocked(carve_, piece)) Release(carve_, piece);
      carve_ += piece;
      carve_left_ -= piece;
    }
    carve_ = NewRegionLocked();
    carve_left_ = kRegionBytes;
    Poison(carve_, carve_left_);
  }
  char* p = carve_;
  carve_ += capacity;
  carve_left_ -= capacity;
  Unpoison(p, capacity);
  return p;
#else
  if (c >= 0) {
    MutexLock lock(&mu_);
    if (!free_[c].empty()) {
      char* p = free_[c].back();
      free_[c].pop_back();
      pooled_bytes_ -= capacity;
      Unpoison(p, capacity);
      return p;
    }
  }
  return static_cast<char*>(::operator new (capacity, std::align_val_t{kMinChunkBytes}));
#endif
}

void ChunkPool::Give(char* bytes, size_t capacity) {
  if (SizeClass(capacity) < 0) {
#if defined(__linux__)
    Unmap(bytes, capacity);
#else
    ::operator delete (bytes, std::align_val_t{kMinChunkBytes});
#endif
    return;
  }
  {
    MutexLock lock(&mu_);
    if (KeepLocked(bytes, capacity)) return;
  }
  Release(bytes, capacity);
}

bool ChunkPool::KeepLocked(char* bytes, size_t capacity) {
  if (pooled_bytes_ + capacity > max_pooled_bytes_) return false;
  free_[SizeClass(capacity)].push_back(bytes);
  pooled_bytes_ += capacity;
  Poison(bytes, capacity);
  return true;
}

void ChunkPool::Release(char* bytes, size_t capacity) {
#if defined(__linux__)
  // A carved chunk's pages go back alone; the kernel splits its region's huge page.
  Unmap(bytes, capacity);
#else
  Unpoison(bytes, capacity);
  ::operator delete (bytes, std::align_val_t{kMinChunkBytes});
#endif
}

size_t ChunkPool::pooled_bytes() const {
  MutexLock lock(&mu_);
  return pooled_bytes_;
}

uint64_t ChunkPool::regions_mapped() const {
  MutexLock lock(&mu_);
  return regions_mapped_;
}

}  // namespace rill::internal
