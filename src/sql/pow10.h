// Powers of ten for DECIMAL arithmetic (internal): 10^0 .. 10^18, the range of DECIMAL's scale.
#ifndef RILL_SQL_POW10_H_
#define RILL_SQL_POW10_H_

#include <cstdint>

namespace rill::sql {

inline constexpr int64_t kPow10[] = {1LL,
                                     10LL,
                                     100LL,
                                     1000LL,
                                     10000LL,
                                     100000LL,
                                     1000000LL,
                                     10000000LL,
                                     100000000LL,
                                     1000000000LL,
                                     10000000000LL,
                                     100000000000LL,
                                     1000000000000LL,
                                     10000000000000LL,
                                     100000000000000LL,
                                     1000000000000000LL,
                                     10000000000000000LL,
                                     100000000000000000LL,
                                     1000000000000000000LL};

}  // namespace rill::sql

#endif  // RILL_SQL_POW10_H_
