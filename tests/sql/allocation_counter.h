// Counts global operator new calls while g_count_allocations is set (any thread; a test that
// sets it must not run beside others that allocate). Defined in allocation_counter.cc, which
// replaces the global allocation functions of sql_tests.
#ifndef RILL_TESTS_SQL_ALLOCATION_COUNTER_H_
#define RILL_TESTS_SQL_ALLOCATION_COUNTER_H_

#include <atomic>
#include <cstdint>

namespace rill::sql::testing {
extern std::atomic<bool> g_count_allocations;
extern std::atomic<int64_t> g_allocations;
}  // namespace rill::sql::testing

#endif  // RILL_TESTS_SQL_ALLOCATION_COUNTER_H_
