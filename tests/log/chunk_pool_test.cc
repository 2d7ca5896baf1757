#include "log/chunk_pool.h"

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <catch2/catch.hpp>

namespace rill {
namespace {

using internal::ChunkPool;

constexpr size_t kKiB = 1024;
constexpr size_t kRegion = ChunkPool::kRegionBytes;

uintptr_t Address(const char* p) { return reinterpret_cast<uintptr_t>(p); }

// Whether [p, p + bytes) is mapped: msync fails with ENOMEM on unmapped pages.
bool Mapped([[maybe_unused]] char* p, [[maybe_unused]] size_t bytes) {
#if defined(__linux__)
  return msync(p, bytes, MS_ASYNC) == 0;
#else
  return true;
#endif
}

#if defined(__linux__)

TEST_CASE("small chunks are carved one after another from a region aligned to 2 MiB",
          "[chunk_pool]") {
  ChunkPool pool;
  char* a = pool.Take(4 * kKiB);
  char* b = pool.Take(8 * kKiB);
  char* c = pool.Take(64 * kKiB);
  CHECK(Address(a) % kRegion == 0);
  CHECK(b == a + 4 * kKiB);
  CHECK(c == b + 8 * kKiB);
  CHECK(pool.regions_mapped() == 1);
  CHECK(pool.pooled_bytes() == 0);
  // Writable, and each its own.
  std::memset(a, 'a', 4 * kKiB);
  std::memset(b, 'b', 8 * kKiB);
  std::memset(c, 'c', 64 * kKiB);
  CHECK(a[4 * kKiB - 1] == 'a');
  CHECK(b[0] == 'b');
  CHECK(b[8 * kKiB - 1] == 'b');
  CHECK(c[0] == 'c');
  pool.Give(a, 4 * kKiB);
  pool.Give(b, 8 * kKiB);
  pool.Give(c, 64 * kKiB);
  CHECK(pool.pooled_bytes() == 76 * kKiB);
}

TEST_CASE("a 2 MiB chunk is a region of its own, aligned to 2 MiB", "[chunk_pool]") {
  ChunkPool pool;
  char* small = pool.Take(4 * kKiB);
  char* big = pool.Take(kRegion);
  CHECK(Address(big) % kRegion == 0);
  CHECK(pool.regions_mapped() == 2);
  CHECK((Address(big) + kRegion <= Address(small) || Address(small) + kRegion <= Address(big)));
  std::memset(big, 'x', kRegion);
  CHECK(big[kRegion - 1] == 'x');
  // The carving region goes on where it was.
  CHECK(pool.Take(4 * kKiB) == small + 4 * kKiB);
  pool.Give(big, kRegion);
  CHECK(pool.pooled_bytes() == kRegion);
}

TEST_CASE("a chunk given back is the next one taken of its size, and only of its size",
          "[chunk_pool]") {
  ChunkPool pool;
  char* a = pool.Take(8 * kKiB);
  char* b = pool.Take(8 * kKiB);
  pool.Give(a, 8 * kKiB);
  pool.Give(b, 8 * kKiB);
  CHECK(pool.pooled_bytes() == 16 * kKiB);
  char* c = pool.Take(16 * kKiB);  // another size: carved, not pooled
  CHECK(c == b + 8 * kKiB);
  CHECK(pool.Take(8 * kKiB) == b);  // last given, first taken
  CHECK(pool.Take(8 * kKiB) == a);
  CHECK(pool.pooled_bytes() == 0);
  CHECK(pool.regions_mapped() == 1);
}

TEST_CASE("past the cap, a chunk given back is returned to the system", "[chunk_pool]") {
  ChunkPool pool(16 * kKiB);
  char* a = pool.Take(8 * kKiB);
  char* b = pool.Take(8 * kKiB);
  char* c = pool.Take(8 * kKiB);
  char* big = pool.Take(kRegion);
  pool.Give(a, 8 * kKiB);
  pool.Give(b, 8 * kKiB);
  CHECK(pool.pooled_bytes() == 16 * kKiB);
  pool.Give(c, 8 * kKiB);
  pool.Give(big, kRegion);
  CHECK(pool.pooled_bytes() == 16 * kKiB);
  CHECK(Mapped(a, 8 * kKiB));
  CHECK(Mapped(b, 8 * kKiB));
  CHECK_FALSE(Mapped(c, 8 * kKiB));
  CHECK_FALSE(Mapped(big, kRegion));
  // Its neighbours in the region are untouched by that.
  CHECK(Mapped(c + 8 * kKiB, 4 * kKiB));
}

TEST_CASE("what a region cannot serve any more is pooled in the sizes it can", "[chunk_pool]") {
  ChunkPool pool;
  char* first = pool.Take(1024 * kKiB);
  char* second = pool.Take(512 * kKiB);
  CHECK(second == first + 1024 * kKiB);
  // 512 KiB are left: a 1 MiB chunk needs a new region, and the 512 KiB go to the pool.
  char* third = pool.Take(1024 * kKiB);
  CHECK(Address(third) % kRegion == 0);
  CHECK(pool.regions_mapped() == 2);
  CHECK(pool.pooled_bytes() == 512 * kKiB);
  CHECK(pool.Take(512 * kKiB) == first + 1536 * kKiB);
  CHECK(pool.pooled_bytes() == 0);

  // The rest is split into powers of two, largest first, each at its place in the region.
  ChunkPool other;
  char* p = other.Take(4 * kKiB);
  other.Take(8 * kKiB);
  other.Take(1024 * kKiB);  // 1012 KiB left: 512 + 256 + 128 + 64 + 32 + 16 + 4
  other.Take(1024 * kKiB);  // does not fit
  CHECK(other.pooled_bytes() == 1012 * kKiB);
  CHECK(other.Take(512 * kKiB) == p + 1036 * kKiB);
  CHECK(other.Take(256 * kKiB) == p + 1548 * kKiB);
  CHECK(other.Take(4 * kKiB) == p + (2048 - 4) * kKiB);
  CHECK(other.pooled_bytes() == (1012 - 512 - 256 - 4) * kKiB);
}

TEST_CASE("a chunk of no pooled size gets a mapping of its own", "[chunk_pool]") {
  ChunkPool pool;
  const size_t odd = kRegion + 4 + 1000;
  char* p = pool.Take(odd);
  std::memset(p, 'o', odd);
  CHECK(p[odd - 1] == 'o');
  CHECK(pool.regions_mapped() == 0);
  pool.Give(p, odd);
  CHECK(pool.pooled_bytes() == 0);
  CHECK_FALSE(Mapped(p, odd));
}

#endif  // __linux__

TEST_CASE("threads taking and giving chunks never share one", "[chunk_pool]") {
  ChunkPool pool(1 << 20);
  constexpr int kThreads = 2;
  std::vector<std::thread> threads;
  std::vector<int> errors(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&pool, &errors, t] {
      std::vector<std::pair<char*, size_t>> held;
      for (int i = 0; i < 4000; ++i) {
        const size_t size = ChunkPool::kMinChunkBytes << ((i * 7 + t) % 8);
        char* p = pool.Take(size);
        std::memset(p, 'A' + t, size);
        held.emplace_back(p, size);
        if (held.size() > 8) {
          // The oldest held chunk still holds only this thread's mark, then goes back.
          auto [q, n] = held.front();
          for (size_t j = 0; j < n; j += 512) errors[static_cast<size_t>(t)] += q[j] != 'A' + t;
          pool.Give(q, n);
          held.erase(held.begin());
        }
      }
      for (auto [q, n] : held) pool.Give(q, n);
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(errors == std::vector<int>(kThreads, 0));
  CHECK(pool.pooled_bytes() <= size_t{1} << 20);
}

}  // namespace
}  // namespace rill
