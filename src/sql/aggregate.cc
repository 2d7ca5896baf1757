#include "sql/aggregate.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rill/base/internal/byte_codec.h"
#include "rill/process/aggregators.h"
#include "sql/expr.h"
#include "sql/pow10.h"

namespace rill::sql {
namespace {

constexpr uint8_t kStateVersion = 1;

ColumnType Type(SqlType t, uint8_t scale = 0) {
  ColumnType c;
  c.type = t;
  if (t == SqlType::kDecimal) {
    c.precision = 18;
    c.scale = scale;
  }
  return c;
}

}  // namespace

bool AggregateResultType(AggKind kind, const ColumnType& arg, ColumnType* result) {
  switch (kind) {
    case AggKind::kCountStar:
    case AggKind::kCount:
    case AggKind::kCountDistinct:
      *result = Type(SqlType::kBigint);
      return arg.type != SqlType::kInterval;
    case AggKind::kSum:
      if (arg.type == SqlType::kInteger || arg.type == SqlType::kBigint) {
        *result = Type(SqlType::kBigint);
      } else if (arg.type == SqlType::kDecimal) {
        *result = Type(SqlType::kDecimal, arg.scale);
      } else if (arg.type == SqlType::kDouble || arg.type == SqlType::kNull) {
        *result = Type(SqlType::kDouble);
      } else {
        return false;
      }
      return true;
    case AggKind::kAvg:
      if (arg.type == SqlType::kDecimal) {
        *result = Type(SqlType::kDecimal, arg.scale);
      } else if (IsNumeric(arg.type) || arg.type == SqlType::kNull) {
        *result = Type(SqlType::kDouble);
      } else {
        return false;
      }
      return true;
    case AggKind::kMin:
    case AggKind::kMax:
      if (arg.type == SqlType::kInterval) return false;
      *result = arg.type == SqlType::kNull ? Type(SqlType::kInteger) : arg;
      return true;
  }
  return false;
}

uint64_t ValueHash(const Value& v) {
  if (v.null) return 0x9ae16a3b2f90404fULL;
  switch (v.type) {
    case SqlType::kVarchar:
      return StableHash(v.s);
    case SqlType::kDouble:
      return StableHash(v.d);
    case SqlType::kDecimal: {
      // 1.50 and 1.5 are the same value: hash the normalised unscaled value and scale.
      int64_t i = v.i;
      uint8_t scale = v.scale;
      while (scale > 0 && i % 10 == 0) {
        i /= 10;
        --scale;
      }
      return scale == 0 ? StableHash(i) : StableHashCombine(StableHash(i), scale);
    }
    default:
      return StableHash(v.i);
  }
}

SqlAggregator::SqlAggregator(std::vector<AggSpec> specs) : specs_(std::move(specs)) {}

AggState SqlAggregator::Init() const {
  AggState s;
  s.slots.resize(specs_.size());
  for (const AggSpec& spec : specs_) {
    if (spec.kind == AggKind::kCountDistinct) s.distinct.push_back(hll_.Init());
  }
  return s;
}

void SqlAggregator::Add(State& state, const Input& input) const {
  size_t d = 0;
  for (size_t k = 0; k < specs_.size(); ++k) {
    const AggSpec& spec = specs_[k];
    AggSlot& slot = state.slots[k];
    if (spec.kind == AggKind::kCountStar) {
      ++slot.count;
      continue;
    }
    const Value& v = input.args[k];
    if (spec.kind == AggKind::kCountDistinct) {
      if (!v.null) hll_.Add(state.distinct[d], ValueHash(v));
      ++d;
      continue;
    }
    if (v.null) continue;
    ++slot.count;
    switch (spec.kind) {
      case AggKind::kSum:
      case AggKind::kAvg:
        if (v.type == SqlType::kDouble) {
          slot.dsum += v.d;
        } else if (__builtin_add_overflow(slot.sum, v.i, &slot.sum)) {
          slot.overflow = true;
        }
        break;
      case AggKind::kMin:
        if (slot.count == 1 || CompareValues(v, slot.best) < 0) slot.best = v;
        break;
      case AggKind::kMax:
        if (slot.count == 1 || CompareValues(v, slot.best) > 0) slot.best = v;
        break;
      default:
        break;
    }
  }
}

void SqlAggregator::Remove(State& state, const Input& input) const {
  for (size_t k = 0; k < specs_.size(); ++k) {
    const AggSpec& spec = specs_[k];
    AggSlot& slot = state.slots[k];
    if (spec.kind == AggKind::kCountStar) {
      --slot.count;
      continue;
    }
    const Value& v = input.args[k];
    if (v.null || spec.kind == AggKind::kCountDistinct) continue;
    --slot.count;
    if (spec.kind == AggKind::kSum || spec.kind == AggKind::kAvg) {
      if (v.type == SqlType::kDouble) {
        slot.dsum -= v.d;
      } else if (__builtin_sub_overflow(slot.sum, v.i, &slot.sum)) {
        slot.overflow = true;
      }
    }
  }
}

void SqlAggregator::Merge(State& into, const State& from) const {
  size_t d = 0;
  for (size_t k = 0; k < specs_.size(); ++k) {
    const AggSpec& spec = specs_[k];
    AggSlot& a = into.slots[k];
    const AggSlot& b = from.slots[k];
    if (spec.kind == AggKind::kCountDistinct) {
      hll_.Merge(into.distinct[d], from.distinct[d]);
      ++d;
      continue;
    }
    if ((spec.kind == AggKind::kMin || spec.kind == AggKind::kMax) && b.count > 0) {
      const int c = a.count == 0 ? 0 : CompareValues(b.best, a.best);
      if (a.count == 0 || (spec.kind == AggKind::kMin ? c < 0 : c > 0)) a.best = b.best;
    }
    a.count += b.count;
    a.dsum += b.dsum;
    if (__builtin_add_overflow(a.sum, b.sum, &a.sum)) a.overflow = true;
    a.overflow |= b.overflow;
  }
}

SqlAggregator::Result SqlAggregator::Finish(const State& state) const {
  Result r;
  FinishInto(state, &r);
  return r;
}

void SqlAggregator::FinishInto(const State& state, Result* result) const {
  Result& r = *result;
  r.error.clear();
  r.values.resize(specs_.size());
  size_t d = 0;
  for (size_t k = 0; k < specs_.size(); ++k) {
    const AggSpec& spec = specs_[k];
    const AggSlot& slot = state.slots[k];
    Value& out = r.values[k];
    switch (spec.kind) {
      case AggKind::kCountStar:
      case AggKind::kCount:
        out = Value::Bigint(slot.count);
        break;
      case AggKind::kCountDistinct:
        out = Value::Bigint(static_cast<int64_t>(hll_.Finish(state.distinct[d++])));
        break;
      case AggKind::kSum:
      case AggKind::kAvg: {
        if (slot.count == 0) {
          out = Value::Null(spec.result.type);
          break;
        }
        if (slot.overflow) {
          r.error = "numeric overflow in SUM or AVG";
          out = Value::Null(spec.result.type);
          break;
        }
        const bool is_double = spec.arg.type == SqlType::kDouble;
        if (spec.kind == AggKind::kSum) {
          if (spec.result.type == SqlType::kDouble) {
            out = Value::Double(slot.dsum);
          } else if (spec.result.type == SqlType::kDecimal) {
            out = Value::Decimal(slot.sum, spec.result.scale);
          } else {
            out = Value::Bigint(slot.sum);
          }
        } else if (spec.result.type == SqlType::kDecimal) {
          // Rounded half away from zero at the input's scale.
          const int64_t q = slot.sum / slot.count, rem = slot.sum % slot.count;
          int64_t v = q;
          if (2 * (rem < 0 ? -rem : rem) >= slot.count) v += slot.sum < 0 ? -1 : 1;
          out = Value::Decimal(v, spec.result.scale);
        } else {
          const double total =
              is_double ? slot.dsum
                        : static_cast<double>(slot.sum) /
                              static_cast<double>(
                                  spec.arg.type == SqlType::kDecimal ? kPow10[spec.arg.scale] : 1);
          out = Value::Double(total / static_cast<double>(slot.count));
        }
        break;
      }
      case AggKind::kMin:
      case AggKind::kMax:
        if (slot.count == 0) {
          out = Value::Null(spec.result.type);
        } else {
          out = slot.best;
        }
        break;
    }
  }
}

void SqlAggregator::Encode(const State& state, std::string* out) const {
  internal::PutU8(out, kStateVersion);
  internal::PutArithmetic<uint32_t>(out, static_cast<uint32_t>(state.slots.size()));
  for (const AggSlot& slot : state.slots) {
    internal::PutArithmetic(out, slot.count);
    internal::PutArithmetic(out, slot.sum);
    internal::PutArithmetic(out, slot.dsum);
    internal::PutArithmetic(out, slot.overflow);
    PutValue(out, slot.best);
  }
  std::string scratch;
  for (const HyperLogLogState& h : state.distinct) {
    scratch.clear();
    hll_.Encode(h, &scratch);
    internal::PutArithmetic<uint32_t>(out, static_cast<uint32_t>(scratch.size()));
    out->append(scratch);
  }
}

bool SqlAggregator::Decode(std::string_view bytes, State* state) const {
  internal::ByteReader in(bytes);
  uint8_t version = 0;
  uint32_t n = 0;
  if (!in.U8(&version) || version != kStateVersion || !in.Arithmetic(&n) || n != specs_.size()) {
    return false;
  }
  State s = Init();
  for (AggSlot& slot : s.slots) {
    if (!in.Arithmetic(&slot.count) || !in.Arithmetic(&slot.sum) || !in.Arithmetic(&slot.dsum) ||
        !in.Arithmetic(&slot.overflow)) {
      return false;
    }
    std::string_view rest;
    if (!in.Bytes(in.remaining(), &rest)) return false;
    if (!ReadValue(&rest, &slot.best)) return false;
    in = internal::ByteReader(rest);
  }
  for (HyperLogLogState& h : s.distinct) {
    uint32_t size = 0;
    std::string_view blob;
    if (!in.Arithmetic(&size) || !in.Bytes(size, &blob) || !hll_.Decode(blob, &h)) return false;
  }
  if (!in.AtEnd()) return false;
  *state = std::move(s);
  return true;
}

void PutValue(std::string* out, const Value& v) {
  internal::PutU8(out, static_cast<uint8_t>(v.type));
  internal::PutArithmetic(out, v.null);
  internal::PutU8(out, v.scale);
  internal::PutArithmetic(out, v.i);
  internal::PutArithmetic<uint32_t>(out, static_cast<uint32_t>(v.s.size()));
  out->append(v.s);
}

bool ReadValue(std::string_view* in, Value* v) {
  internal::ByteReader r(*in);
  uint8_t type = 0, scale = 0;
  bool null = false;
  int64_t i = 0;
  uint32_t size = 0;
  std::string_view s;
  if (!r.U8(&type) || type > static_cast<uint8_t>(SqlType::kInterval) || !r.Arithmetic(&null) ||
      !r.U8(&scale) || scale > 18 || !r.Arithmetic(&i) || !r.Arithmetic(&size) ||
      !r.Bytes(size, &s)) {
    return false;
  }
  v->type = static_cast<SqlType>(type);
  v->null = null;
  v->scale = scale;
  v->i = i;
  v->s.assign(s.data(), s.size());
  std::string_view rest;
  (void)r.Bytes(r.remaining(), &rest);
  *in = rest;
  return true;
}

}  // namespace rill::sql
