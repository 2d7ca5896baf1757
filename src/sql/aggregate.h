// SQL aggregates (internal): COUNT(*), COUNT, SUM, AVG, MIN, MAX and COUNT(DISTINCT) over SQL
// values, as one rill::Aggregator (process/aggregators.h) holding a state per aggregate, so that
// a GROUP BY query runs on rill's WindowOperator with its snapshots. COUNT(DISTINCT) is rill's
// HyperLogLog (DistinctCount, precision 14: 0.81% standard error), documented as approximate.
//
// NULLs are skipped (COUNT(*) counts every row); SUM, AVG, MIN and MAX of no non-NULL value are
// NULL. SUM of INTEGER or BIGINT is BIGINT, of DECIMAL a DECIMAL of the same scale, of DOUBLE a
// DOUBLE; an integer SUM that overflows 64 bits gives an error row. AVG is DOUBLE (DECIMAL for
// DECIMAL input, at the input's scale, rounded half away from zero).
#ifndef RILL_SQL_AGGREGATE_H_
#define RILL_SQL_AGGREGATE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rill/process/hyperloglog.h"
#include "rill/sql/value.h"

namespace rill::sql {

enum class AggKind : uint8_t { kCountStar, kCount, kSum, kAvg, kMin, kMax, kCountDistinct };

struct AggSpec {
  AggKind kind = AggKind::kCountStar;
  ColumnType arg;     // the argument's type (unused by COUNT(*))
  ColumnType result;  // the result's type
};

// The result type of an aggregate over `arg`; false when the type does not fit (SUM of VARCHAR).
bool AggregateResultType(AggKind kind, const ColumnType& arg, ColumnType* result);

// Values of the aggregates' arguments for one row, by aggregate index.
struct AggInput {
  const Value* args = nullptr;
};

struct AggSlot {
  int64_t count = 0;  // non-NULL values (rows for COUNT(*))
  int64_t sum = 0;    // integer and DECIMAL sums (unscaled)
  double dsum = 0;    // DOUBLE sums
  bool overflow = false;
  Value best;  // MIN / MAX
};

struct AggState {
  std::vector<AggSlot> slots;
  std::vector<HyperLogLogState> distinct;  // one per COUNT(DISTINCT), in order
};

// Hash of a value for COUNT(DISTINCT): equal values (across integer types too) hash equally.
uint64_t ValueHash(const Value& v);

class SqlAggregator {
 public:
  using Input = AggInput;
  using State = AggState;
  // One value per aggregate; an entry is a NULL of the result type when there is nothing to
  // aggregate. A failed aggregate (an integer SUM overflow) makes `error` non-empty.
  struct Result {
    std::vector<Value> values;
    std::string error;
  };

  SqlAggregator() = default;
  explicit SqlAggregator(std::vector<AggSpec> specs);

  State Init() const;
  void Add(State& state, const Input& input) const;
  void Merge(State& into, const State& from) const;
  Result Finish(const State& state) const;
  // Finish into a reused result (no allocation once its vector has grown).
  void FinishInto(const State& state, Result* result) const;
  void Encode(const State& state, std::string* out) const;
  bool Decode(std::string_view bytes, State* state) const;

  // Removes one row's values (for sliding windows: COUNT, SUM and AVG only; MIN and MAX are
  // recomputed by the caller when the removed value was the extreme).
  void Remove(State& state, const Input& input) const;

  const std::vector<AggSpec>& specs() const { return specs_; }

 private:
  std::vector<AggSpec> specs_;
  DistinctCountAggregator<uint64_t> hll_;
};

// Snapshot encoding of a Value (shared by the operators' snapshots).
void PutValue(std::string* out, const Value& v);
bool ReadValue(std::string_view* in, Value* v);

}  // namespace rill::sql

#endif  // RILL_SQL_AGGREGATE_H_
