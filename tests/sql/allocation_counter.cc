// The sql tests' allocation counter: every non-aligned global operator new and delete is
// replaced (so that they pair up, also under AddressSanitizer, which checks that).
#include "sql/allocation_counter.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

// Counts operator new calls while g_count_allocations is set (any thread; the test that sets it
// runs alone). Every non-aligned form is replaced, so that new and delete always pair up (also
// under AddressSanitizer, which checks that); no code here allocates over-aligned types.
namespace rill::sql::testing {
std::atomic<bool> g_count_allocations{false};
std::atomic<int64_t> g_allocations{0};
}  // namespace rill::sql::testing

using rill::sql::testing::g_allocations;
using rill::sql::testing::g_count_allocations;

#if defined(__GNUC__) && !defined(__clang__)
// g++ sees free() in the replaced operator delete as mismatched with new expressions it inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
void* CountedAlloc(std::size_t size) noexcept {
  if (g_count_allocations.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  return std::malloc(size == 0 ? 1 : size);
}
}  // namespace

void* operator new(std::size_t size) {
  if (void* p = CountedAlloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  if (void* p = CountedAlloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return CountedAlloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return CountedAlloc(size);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
