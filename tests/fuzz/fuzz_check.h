// FUZZ_CHECK: a check that stays on in every build (assert does not, under NDEBUG), and aborts
// so that libFuzzer records the input.
#ifndef RILL_TESTS_FUZZ_FUZZ_CHECK_H_
#define RILL_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                            \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

#endif  // RILL_TESTS_FUZZ_FUZZ_CHECK_H_
