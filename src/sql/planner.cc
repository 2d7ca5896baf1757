// The planner and the operators it builds. See engine.h for the flow.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rill/base/error.h"
#include "rill/process/top_k.h"
#include "rill/process/window.h"
#include "rill/process/window_operator.h"
#include "sql/aggregate.h"
#include "sql/ast.h"
#include "sql/engine.h"
#include "sql/expr.h"
#include "sql/random_cut_forest.h"

namespace rill::sql {

// ---------------------------------------------------------------------------------------------
// Engine

Schema ErrorStreamSchema() {
  auto col = [](std::string name, SqlType t, uint32_t length = 0) {
    ColumnType type;
    type.type = t;
    type.length = length;
    return Column{std::move(name), type};
  };
  return {col("ERROR_TIME", SqlType::kTimestamp),   col("ERROR_LEVEL", SqlType::kVarchar, 10),
          col("ERROR_NAME", SqlType::kVarchar, 32), col("MESSAGE", SqlType::kVarchar, 4096),
          col("DATA_ROWTIME", SqlType::kTimestamp), col("DATA_ROW", SqlType::kVarchar, 65535),
          col("PUMP_NAME", SqlType::kVarchar, 128)};
}

StreamNode* Engine::Find(std::string_view name) const {
  for (const auto& s : streams) {
    if (s->name == name) return s.get();
  }
  return nullptr;
}

void Engine::Emit(Operator& op, absl::Time rowtime, std::vector<Value>& values) {
  StreamNode& target = *op.target;
  Row& row = op.out;
  row.rowtime = rowtime;
  row.values.resize(target.schema.size());
  for (size_t i = 0; i < target.schema.size(); ++i) {
    const ColumnType& type = target.schema[i].type;
    Value& v = values[i];
    const bool same = v.type == type.type &&
                      (type.type != SqlType::kDecimal || v.scale == type.scale || v.null) &&
                      (type.type != SqlType::kVarchar || v.null || v.s.size() <= type.length);
    if (same) {
      std::swap(row.values[i], v);
      continue;
    }
    if (v.null) {
      row.values[i] = Value::Null(type.type);
      continue;
    }
    std::string error;
    if (!CastValue(v, type, &row.values[i], &error)) {
      std::vector<std::string> parts;
      for (const Value& x : values) parts.push_back(x.ToString());
      Error(op.pump, "Type_conversion_error",
            absl::StrCat("column ", target.schema[i].name, ": ", error), rowtime,
            absl::StrJoin(parts, ","));
      return;
    }
  }
  Insert(target, row);
}

void Engine::Insert(StreamNode& stream, const Row& row) {
  for (const StreamNode::Reader& r : stream.readers) r.op->OnRow(r.side, row);
  for (const auto& out : stream.outputs) out(stream, row);
}

void Engine::Error(std::string_view pump, std::string_view name, std::string_view message,
                   absl::Time rowtime, std::string_view data) {
  ++error_rows;
  Row& row = error_row_;
  row.rowtime = std::max(now_, rowtime);
  if (row.rowtime == absl::InfinitePast() || row.rowtime == absl::InfiniteFuture()) {
    row.rowtime = rowtime;
  }
  row.values.clear();
  row.values.push_back(Value::Timestamp(row.rowtime));
  row.values.push_back(Value::Varchar("ERROR"));
  row.values.push_back(Value::Varchar(name));
  row.values.push_back(Value::Varchar(message.substr(0, 4096)));
  row.values.push_back(Value::Timestamp(rowtime));
  row.values.push_back(Value::Varchar(data.substr(0, 65535)));
  row.values.push_back(Value::Varchar(pump));
  Insert(*error_stream, row);
}

void Engine::AdvanceTo(absl::Time t) {
  if (t <= now_) return;
  now_ = t;
  for (const auto& op : operators) op->AdvanceTo(t);
}

namespace {

std::string RowText(const Row& row) {
  std::vector<std::string> parts;
  for (const Value& v : row.values) parts.push_back(v.ToString());
  return absl::StrJoin(parts, ",");
}

// Evaluates a condition: true only for TRUE (NULL and FALSE filter out).
bool Test(const CompiledExpr& c, EvalContext& ctx, Value& scratch, bool* error) {
  if (!c.eval(ctx, scratch)) {
    *error = true;
    return false;
  }
  return !scratch.null && scratch.i != 0;
}

// Group and partition keys compare by their encoding, so a value SQL calls equal must encode
// equally: -0.0 is written as 0.0 and every NaN as one NaN.
void PutKeyValue(std::string* out, const Value& v) {
  if (v.type == SqlType::kDouble && !v.null && (v.d == 0 || v.d != v.d)) {
    Value canonical = Value::Double(v.d == 0 ? 0.0 : std::numeric_limits<double>::quiet_NaN());
    PutValue(out, canonical);
    return;
  }
  PutValue(out, v);
}

void EncodeKey(const std::vector<Value>& values, std::string* out) {
  out->clear();
  for (const Value& v : values) PutKeyValue(out, v);
}

bool IsExactNumeric(SqlType t) {
  return t == SqlType::kInteger || t == SqlType::kBigint || t == SqlType::kDecimal;
}

// A join's hash key: exact numbers of any type and scale as one normalised DECIMAL (5, 5.0 and
// 5.00 are equal), other values as group keys are.
void EncodeJoinKey(const Value& v, std::string* out) {
  out->clear();
  if (!v.null && IsExactNumeric(v.type)) {
    int64_t unscaled = v.i;
    uint8_t scale = v.type == SqlType::kDecimal ? v.scale : 0;
    while (scale > 0 && unscaled % 10 == 0) {
      unscaled /= 10;
      --scale;
    }
    PutValue(out, Value::Decimal(unscaled, scale));
    return;
  }
  PutKeyValue(out, v);
}

bool DecodeKey(std::string_view key, size_t n, std::vector<Value>* out) {
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (!ReadValue(&key, &(*out)[i])) return false;
  }
  return key.empty();
}

// Evaluates `exprs` into `out` (resized); false on a run-time error.
bool EvalAll(const std::vector<CompiledExpr>& exprs, EvalContext& ctx, std::vector<Value>& out) {
  out.resize(exprs.size());
  for (size_t i = 0; i < exprs.size(); ++i) {
    if (!exprs[i].eval(ctx, out[i])) return false;
  }
  return true;
}

std::string ExplainExprs(const std::vector<CompiledExpr>& exprs) {
  std::vector<std::string> parts;
  for (const CompiledExpr& e : exprs) parts.push_back(e.text);
  return absl::StrJoin(parts, ", ");
}

// ---------------------------------------------------------------------------------------------
// Select: projection and filter, optionally joined with a reference table.

struct RefJoin {
  const ReferenceRows* table = nullptr;
  bool left_outer = false;
  CompiledExpr on;
  // An equality ON (stream expression = table expression) is looked up in a hash index.
  std::optional<CompiledExpr> stream_key;
  absl::flat_hash_map<std::string, std::vector<size_t>> index;
  Row null_row;
};

class SelectOp final : public Operator {
 public:
  std::optional<CompiledExpr> where;
  std::vector<CompiledExpr> items;
  std::unique_ptr<RefJoin> join;

  void OnRow(int, const Row& row) override {
    ctx_.rows[0] = &row;
    ctx_.rowtime = row.rowtime;
    if (!join) {
      Produce(row);
      return;
    }
    bool matched = false;
    if (join->stream_key) {
      if (!join->stream_key->eval(ctx_, scratch_)) return Fail(row);
      if (!scratch_.null) {
        EncodeJoinKey(scratch_, &key_);
        auto it = join->index.find(key_);
        if (it != join->index.end()) {
          for (size_t i : it->second) {
            ctx_.rows[1] = &join->table->rows[i];
            bool error = false;
            if (!Test(join->on, ctx_, scratch_, &error)) {
              if (error) return Fail(row);
              continue;
            }
            matched = true;
            Produce(row);
          }
        }
      }
    } else {
      for (const Row& r : join->table->rows) {
        ctx_.rows[1] = &r;
        bool error = false;
        if (!Test(join->on, ctx_, scratch_, &error)) {
          if (error) return Fail(row);
          continue;
        }
        matched = true;
        Produce(row);
      }
    }
    if (!matched && join->left_outer) {
      ctx_.rows[1] = &join->null_row;
      Produce(row);
    }
  }

  std::string Explain() const override {
    std::string s =
        absl::StrCat("Select -> \"", target->name, "\"\n  from \"", inputs[0]->name, "\"\n");
    if (join) {
      absl::StrAppend(&s, "  ", join->left_outer ? "left outer join" : "join",
                      " reference table \"", join->table->name, "\" (", join->table->rows.size(),
                      " rows) on ", join->on.text, join->stream_key ? " (hash lookup)" : " (scan)",
                      "\n");
    }
    if (where) absl::StrAppend(&s, "  where ", where->text, "\n");
    absl::StrAppend(&s, "  project ", ExplainExprs(items), "\n");
    return s;
  }

 private:
  void Fail(const Row& row) {
    engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
  }
  void Produce(const Row& row) {
    if (where) {
      bool error = false;
      if (!Test(*where, ctx_, scratch_, &error)) {
        if (error) Fail(row);
        return;
      }
    }
    if (!EvalAll(items, ctx_, values_)) return Fail(row);
    engine->Emit(*this, row.rowtime, values_);
  }

  EvalContext ctx_;
  Value scratch_;
  std::string key_;
  std::vector<Value> values_;
};

// ---------------------------------------------------------------------------------------------
// Aggregation shared by the tumbling and stagger operators: the aggregates' arguments, and the
// select list and HAVING over a "group row" of [group values..., aggregate results...].

struct Aggregation {
  std::vector<CompiledExpr> keys;      // evaluated per input row
  std::vector<CompiledExpr> agg_args;  // one per aggregate (COUNT(*): a constant)
  SqlAggregator agg;
  std::optional<CompiledExpr> where;
  std::optional<CompiledExpr> having;  // over the group row
  std::vector<CompiledExpr> items;     // over the group row
};

// Produces the output row of one group: runs HAVING and the select list over
// [keys..., extra..., results...].
bool ProduceGroup(Operator& op, const Aggregation& a, const std::vector<Value>& keys,
                  const std::vector<Value>& extra, const SqlAggregator::Result& result,
                  absl::Time rowtime, Row& group, EvalContext& ctx, Value& scratch,
                  std::vector<Value>& values) {
  group.rowtime = rowtime;
  group.values.clear();
  group.values.insert(group.values.end(), keys.begin(), keys.end());
  group.values.insert(group.values.end(), extra.begin(), extra.end());
  group.values.insert(group.values.end(), result.values.begin(), result.values.end());
  if (!result.error.empty()) {
    op.engine->Error(op.pump, "Runtime_error", result.error, rowtime, RowText(group));
    return false;
  }
  ctx.rows[0] = &group;
  ctx.rowtime = rowtime;
  if (a.having) {
    bool error = false;
    if (!Test(*a.having, ctx, scratch, &error)) {
      if (error) op.engine->Error(op.pump, "Runtime_error", ctx.error, rowtime, RowText(group));
      return false;
    }
  }
  if (!EvalAll(a.items, ctx, values)) {
    op.engine->Error(op.pump, "Runtime_error", ctx.error, rowtime, RowText(group));
    return false;
  }
  op.engine->Emit(op, rowtime, values);
  return true;
}

// Tumbling windows on ROWTIME: GROUP BY keys..., STEP(ROWTIME BY INTERVAL ...) or FLOOR(ROWTIME
// TO unit), on rill's WindowOperator.
class TumblingOp final : public Operator {
 public:
  TumblingOp(Aggregation a, absl::Duration size)
      : a_(std::move(a)), op_(a_.agg, TumblingWindow(size)), size_(size) {}

  void OnRow(int, const Row& row) override {
    ctx_.rows[0] = &row;
    ctx_.rowtime = row.rowtime;
    if (a_.where) {
      bool error = false;
      if (!Test(*a_.where, ctx_, scratch_, &error)) {
        if (error) engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
        return;
      }
    }
    if (!EvalAll(a_.keys, ctx_, keys_) || !EvalAll(a_.agg_args, ctx_, args_)) {
      engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
      return;
    }
    EncodeKey(keys_, &key_);
    op_.Add(key_, row.rowtime, AggInput{args_.data()}, [](const auto&) {});
  }

  void AdvanceTo(absl::Time t) override {
    op_.AdvanceWatermark(t, [&](const WindowResult<std::string, SqlAggregator::Result>& r) {
      if (!DecodeKey(r.key, a_.keys.size(), &decoded_)) return;
      extra_.assign(1, Value::Timestamp(r.start));
      ProduceGroup(*this, a_, decoded_, extra_, r.value, r.end, group_, post_ctx_, scratch_,
                   values_);
    });
  }

  void Save(std::string* out) const override { op_.Snapshot(out); }
  bool Load(std::string_view in) override { return op_.Restore(in); }

  std::string Explain() const override {
    std::string s = absl::StrCat("TumblingWindow(", absl::FormatDuration(size_), ") -> \"",
                                 target->name, "\"\n  from \"", inputs[0]->name, "\"\n");
    if (a_.where) absl::StrAppend(&s, "  where ", a_.where->text, "\n");
    absl::StrAppend(&s, "  group by ", a_.keys.empty() ? "(window only)" : ExplainExprs(a_.keys),
                    "\n  aggregates ", ExplainExprs(a_.agg_args), "\n");
    if (a_.having) absl::StrAppend(&s, "  having ", a_.having->text, "\n");
    absl::StrAppend(&s, "  project ", ExplainExprs(a_.items), "\n");
    return s;
  }

 private:
  Aggregation a_;
  WindowOperator<std::string, SqlAggregator, TumblingWindow> op_;
  absl::Duration size_;
  EvalContext ctx_, post_ctx_;
  Value scratch_;
  std::vector<Value> keys_, args_, decoded_, extra_, values_;
  std::string key_;
  Row group_;
};

// WINDOWED BY STAGGER (PARTITION BY keys RANGE INTERVAL r): a window per key value opens at its
// first row (t0) and emits at t0 + r.
class StaggerOp final : public Operator {
 public:
  StaggerOp(Aggregation a, absl::Duration range) : a_(std::move(a)), range_(range) {}

  void OnRow(int, const Row& row) override {
    ctx_.rows[0] = &row;
    ctx_.rowtime = row.rowtime;
    if (a_.where) {
      bool error = false;
      if (!Test(*a_.where, ctx_, scratch_, &error)) {
        if (error) engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
        return;
      }
    }
    if (!EvalAll(a_.keys, ctx_, keys_) || !EvalAll(a_.agg_args, ctx_, args_)) {
      engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
      return;
    }
    EncodeKey(keys_, &key_);
    auto it = open_.find(key_);
    if (it == open_.end()) {
      it = open_.emplace(key_, Window{row.rowtime, a_.agg.Init()}).first;
      closing_.emplace(row.rowtime + range_, key_);
    }
    a_.agg.Add(it->second.state, AggInput{args_.data()});
  }

  void AdvanceTo(absl::Time t) override {
    while (!closing_.empty() && closing_.begin()->first <= t) {
      // Windows closing at the same time come out in key order (the set's order).
      auto first = closing_.begin();
      auto node = open_.find(first->second);
      const absl::Time end = first->first;
      if (node != open_.end()) {
        const SqlAggregator::Result r = a_.agg.Finish(node->second.state);
        if (DecodeKey(first->second, a_.keys.size(), &decoded_)) {
          extra_.assign(1, Value::Timestamp(node->second.start));
          ProduceGroup(*this, a_, decoded_, extra_, r, end, group_, post_ctx_, scratch_, values_);
        }
        open_.erase(node);
      }
      closing_.erase(first);
    }
  }

  void Save(std::string* out) const override {
    internal::PutArithmetic<uint64_t>(out, open_.size());
    std::string scratch;
    for (const auto& [end, key] : closing_) {
      const Window& w = open_.at(key);
      internal::PutArithmetic<uint32_t>(out, static_cast<uint32_t>(key.size()));
      out->append(key);
      internal::PutArithmetic<int64_t>(out, absl::ToUnixMicros(w.start));
      scratch.clear();
      a_.agg.Encode(w.state, &scratch);
      internal::PutArithmetic<uint32_t>(out, static_cast<uint32_t>(scratch.size()));
      out->append(scratch);
    }
  }
  bool Load(std::string_view in) override {
    internal::ByteReader r(in);
    uint64_t n = 0;
    if (!r.Arithmetic(&n) || n > r.remaining()) return false;
    std::map<std::string, Window> open;
    std::set<std::pair<absl::Time, std::string>> closing;
    for (uint64_t i = 0; i < n; ++i) {
      uint32_t size = 0;
      std::string_view key, state;
      int64_t start = 0;
      Window w{absl::UnixEpoch(), a_.agg.Init()};
      if (!r.Arithmetic(&size) || !r.Bytes(size, &key) || !r.Arithmetic(&start) ||
          !r.Arithmetic(&size) || !r.Bytes(size, &state) || !a_.agg.Decode(state, &w.state)) {
        return false;
      }
      w.start = absl::FromUnixMicros(start);
      closing.emplace(w.start + range_, std::string(key));
      open.emplace(std::string(key), std::move(w));
    }
    if (!r.AtEnd()) return false;
    open_ = std::move(open);
    closing_ = std::move(closing);
    return true;
  }

  std::string Explain() const override {
    std::string s = absl::StrCat("StaggerWindow(", absl::FormatDuration(range_), ") -> \"",
                                 target->name, "\"\n  from \"", inputs[0]->name, "\"\n");
    if (a_.where) absl::StrAppend(&s, "  where ", a_.where->text, "\n");
    absl::StrAppend(&s, "  partition by ", ExplainExprs(a_.keys), "\n  aggregates ",
                    ExplainExprs(a_.agg_args), "\n");
    if (a_.having) absl::StrAppend(&s, "  having ", a_.having->text, "\n");
    absl::StrAppend(&s, "  project ", ExplainExprs(a_.items), "\n");
    return s;
  }

 private:
  struct Window {
    absl::Time start;
    AggState state;
  };
  Aggregation a_;
  absl::Duration range_;
  std::map<std::string, Window> open_;
  std::set<std::pair<absl::Time, std::string>> closing_;
  EvalContext ctx_, post_ctx_;
  Value scratch_;
  std::vector<Value> keys_, args_, decoded_, extra_, values_;
  std::string key_;
  Row group_;
};

// ---------------------------------------------------------------------------------------------
// Sliding windows: one output row per input row, aggregating the partition's rows within the
// preceding RANGE (ROWTIME in [t - r, t]) or ROWS (the current row and n before), and LAG.

struct LagSpec {
  int arg = 0;  // index into the entry's values
  int64_t offset = 1;
  std::optional<CompiledExpr> default_value;
};

class SlidingOp final : public Operator {
 public:
  std::optional<CompiledExpr> where;
  std::vector<CompiledExpr> partition;
  std::optional<absl::Duration> range;
  std::optional<int64_t> rows;
  SqlAggregator agg;
  std::vector<CompiledExpr> entry_args;  // aggregate args, then LAG args
  std::vector<LagSpec> lags;
  std::vector<CompiledExpr> items;  // frame 0: the row; frame 1: [aggregates..., lags...]

  void OnRow(int, const Row& row) override {
    ctx_.rows[0] = &row;
    ctx_.rowtime = row.rowtime;
    if (where) {
      bool error = false;
      if (!Test(*where, ctx_, scratch_, &error)) {
        if (error) engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
        return;
      }
    }
    if (!EvalAll(partition, ctx_, keys_) || !EvalAll(entry_args, ctx_, args_)) {
      engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
      return;
    }
    EncodeKey(keys_, &key_);
    auto [it, inserted] = partitions_.try_emplace(key_);
    Partition& p = it->second;
    if (inserted) p.state = agg.Init();
    Evict(p, row.rowtime);
    Entry& entry = p.entries.Push();
    entry.rowtime = row.rowtime;
    entry.args.assign(args_.begin(), args_.end());  // Values reuse the slot's storage
    agg.Add(p.state, AggInput{entry.args.data()});
    if (rows) {
      while (static_cast<int64_t>(p.entries.size()) > *rows + 1) Pop(p);
    }
    if (p.recompute) Recompute(p);
    agg.FinishInto(p.state, &result_);
    if (!result_.error.empty()) {
      engine->Error(pump, "Runtime_error", result_.error, row.rowtime, RowText(row));
      return;
    }
    window_row_.rowtime = row.rowtime;
    window_row_.values.resize(result_.values.size());
    for (size_t i = 0; i < result_.values.size(); ++i) window_row_.values[i] = result_.values[i];
    for (const LagSpec& lag : lags) {
      const int64_t at = static_cast<int64_t>(p.entries.size()) - 1 - lag.offset;
      if (at >= 0) {
        window_row_.values.push_back(p.entries[at].args[lag.arg]);
      } else if (lag.default_value) {
        Value v;
        if (!lag.default_value->eval(ctx_, v)) {
          engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
          return;
        }
        window_row_.values.push_back(std::move(v));
      } else {
        window_row_.values.push_back(Value::Null(entry_args[lag.arg].type.type));
      }
    }
    ctx_.rows[1] = &window_row_;
    if (!EvalAll(items, ctx_, values_)) {
      engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
      return;
    }
    engine->Emit(*this, row.rowtime, values_);
  }

  void AdvanceTo(absl::Time t) override {
    // Forget partitions whose rows have all left a RANGE window (every 4096 advances).
    if (!range || ++advances_ % 4096 != 0) return;
    for (auto it = partitions_.begin(); it != partitions_.end();) {
      if (!it->second.entries.empty() && it->second.entries.back().rowtime < t - *range) {
        partitions_.erase(it++);
      } else {
        ++it;
      }
    }
  }

  void Save(std::string* out) const override {
    internal::PutArithmetic<uint64_t>(out, partitions_.size());
    std::map<std::string_view, const Partition*> ordered;
    for (const auto& [k, p] : partitions_) ordered.emplace(k, &p);
    for (const auto& [k, p] : ordered) {
      internal::PutArithmetic<uint32_t>(out, static_cast<uint32_t>(k.size()));
      out->append(k);
      internal::PutArithmetic<uint64_t>(out, p->entries.size());
      for (size_t k = 0; k < p->entries.size(); ++k) {
        const Entry& e = p->entries[k];
        internal::PutArithmetic<int64_t>(out, absl::ToUnixMicros(e.rowtime));
        for (const Value& v : e.args) PutValue(out, v);
      }
    }
  }
  bool Load(std::string_view in) override {
    internal::ByteReader r(in);
    uint64_t n = 0;
    if (!r.Arithmetic(&n) || n > r.remaining()) return false;
    absl::flat_hash_map<std::string, Partition> parts;
    for (uint64_t i = 0; i < n; ++i) {
      uint32_t size = 0;
      std::string_view key;
      uint64_t count = 0;
      if (!r.Arithmetic(&size) || !r.Bytes(size, &key) || !r.Arithmetic(&count) ||
          count > r.remaining()) {
        return false;
      }
      Partition& p = parts[std::string(key)];
      p.state = agg.Init();
      for (uint64_t k = 0; k < count; ++k) {
        int64_t t = 0;
        if (!r.Arithmetic(&t)) return false;
        Entry e{absl::FromUnixMicros(t), std::vector<Value>(entry_args.size())};
        std::string_view rest;
        if (!r.Bytes(r.remaining(), &rest)) return false;
        for (Value& v : e.args) {
          if (!ReadValue(&rest, &v)) return false;
        }
        r = internal::ByteReader(rest);
        agg.Add(p.state, AggInput{e.args.data()});
        p.entries.Push() = std::move(e);
      }
    }
    if (!r.AtEnd()) return false;
    partitions_ = std::move(parts);
    return true;
  }

  std::string Explain() const override {
    std::string s =
        absl::StrCat("SlidingWindow(",
                     range ? absl::StrCat("RANGE ", absl::FormatDuration(*range), " PRECEDING")
                           : absl::StrCat("ROWS ", *rows, " PRECEDING"),
                     ") -> \"", target->name, "\"\n  from \"", inputs[0]->name, "\"\n");
    if (where) absl::StrAppend(&s, "  where ", where->text, "\n");
    absl::StrAppend(&s, "  partition by ", partition.empty() ? "()" : ExplainExprs(partition),
                    "\n  window values ", ExplainExprs(entry_args), "\n  project ",
                    ExplainExprs(items), "\n");
    return s;
  }

 private:
  struct Entry {
    absl::Time rowtime;
    std::vector<Value> args;
  };
  // The partition's rows, oldest first, in a ring whose slots (and their values' storage) are
  // reused: a sliding window in steady state allocates nothing per row.
  class EntryRing {
   public:
    size_t size() const { return count_; }
    bool empty() const { return count_ == 0; }
    Entry& operator[](size_t i) { return slots_[(head_ + i) % slots_.size()]; }
    const Entry& operator[](size_t i) const { return slots_[(head_ + i) % slots_.size()]; }
    Entry& front() { return (*this)[0]; }
    const Entry& back() const { return (*this)[count_ - 1]; }
    Entry& Push() {
      if (count_ == slots_.size()) Grow();
      ++count_;
      return (*this)[count_ - 1];
    }
    void PopFront() {
      head_ = (head_ + 1) % slots_.size();
      --count_;
    }

   private:
    void Grow() {
      std::vector<Entry> bigger(std::max<size_t>(4, 2 * slots_.size()));
      for (size_t i = 0; i < count_; ++i) bigger[i] = std::move((*this)[i]);
      slots_.swap(bigger);
      head_ = 0;
    }
    std::vector<Entry> slots_;
    size_t head_ = 0;
    size_t count_ = 0;
  };
  struct Partition {
    EntryRing entries;
    AggState state;
    bool recompute = false;
  };

  void Pop(Partition& p) {
    const Entry& e = p.entries.front();
    agg.Remove(p.state, AggInput{e.args.data()});
    for (size_t k = 0; k < agg.specs().size(); ++k) {
      const AggKind kind = agg.specs()[k].kind;
      if ((kind == AggKind::kMin || kind == AggKind::kMax) && !e.args[k].null &&
          CompareValues(e.args[k], p.state.slots[k].best) == 0) {
        p.recompute = true;
      }
      if (kind == AggKind::kCountDistinct) p.recompute = true;
    }
    p.entries.PopFront();
  }
  void Evict(Partition& p, absl::Time t) {
    if (!range) return;
    while (!p.entries.empty() && p.entries.front().rowtime < t - *range) Pop(p);
  }
  void Recompute(Partition& p) {
    p.state = agg.Init();
    for (size_t k = 0; k < p.entries.size(); ++k) {
      agg.Add(p.state, AggInput{p.entries[k].args.data()});
    }
    p.recompute = false;
  }

  absl::flat_hash_map<std::string, Partition> partitions_;
  EvalContext ctx_;
  Value scratch_;
  std::vector<Value> keys_, args_, values_;
  std::string key_;
  Row window_row_;
  SqlAggregator::Result result_;
  uint64_t advances_ = 0;
};

// ---------------------------------------------------------------------------------------------
// A join of two streams over windows: a row of either side joins the other side's rows with
// ROWTIME in [t - range, t] (that side's OVER RANGE; 0 without OVER). The output keeps the
// arriving row's ROWTIME.

class StreamJoinOp final : public Operator {
 public:
  absl::Duration range[2];
  bool left_outer = false;
  CompiledExpr on;
  std::optional<CompiledExpr> where;
  std::vector<CompiledExpr> items;  // frame 0: left, frame 1: right
  Row null_row[2];

  void OnRow(int side, const Row& row) override {
    const int other = 1 - side;
    Evict(other, row.rowtime);
    bool matched = false;
    ctx_.rowtime = row.rowtime;
    for (const Row& o : buffer_[other]) {
      ctx_.rows[side] = &row;
      ctx_.rows[other] = &o;
      bool error = false;
      if (!Test(on, ctx_, scratch_, &error)) {
        if (error) {
          engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
          return;
        }
        continue;
      }
      matched = true;
      Produce(row);
    }
    if (!matched && left_outer && side == 0) {
      ctx_.rows[0] = &row;
      ctx_.rows[1] = &null_row[1];
      Produce(row);
    }
    buffer_[side].push_back(row);
  }

  void AdvanceTo(absl::Time t) override {
    Evict(0, t);
    Evict(1, t);
  }

  void Save(std::string* out) const override {
    for (int s = 0; s < 2; ++s) {
      internal::PutArithmetic<uint64_t>(out, buffer_[s].size());
      for (const Row& r : buffer_[s]) {
        internal::PutArithmetic<int64_t>(out, absl::ToUnixMicros(r.rowtime));
        internal::PutArithmetic<uint32_t>(out, static_cast<uint32_t>(r.values.size()));
        for (const Value& v : r.values) PutValue(out, v);
      }
    }
  }
  bool Load(std::string_view in) override {
    std::deque<Row> buffers[2];
    for (int s = 0; s < 2; ++s) {
      internal::ByteReader r(in);
      uint64_t n = 0;
      if (!r.Arithmetic(&n) || n > r.remaining()) return false;
      for (uint64_t i = 0; i < n; ++i) {
        int64_t t = 0;
        uint32_t count = 0;
        if (!r.Arithmetic(&t) || !r.Arithmetic(&count) || count > r.remaining()) return false;
        Row row;
        row.rowtime = absl::FromUnixMicros(t);
        row.values.resize(count);
        std::string_view rest;
        if (!r.Bytes(r.remaining(), &rest)) return false;
        for (Value& v : row.values) {
          if (!ReadValue(&rest, &v)) return false;
        }
        r = internal::ByteReader(rest);
        buffers[s].push_back(std::move(row));
      }
      std::string_view rest;
      if (!r.Bytes(r.remaining(), &rest)) return false;
      in = rest;
    }
    if (!in.empty()) return false;
    buffer_[0] = std::move(buffers[0]);
    buffer_[1] = std::move(buffers[1]);
    return true;
  }

  std::string Explain() const override {
    std::string s =
        absl::StrCat("StreamJoin -> \"", target->name, "\"\n  ",
                     left_outer ? "left outer join" : "join", " \"", inputs[0]->name,
                     "\" over RANGE ", absl::FormatDuration(range[0]), " and \"", inputs[1]->name,
                     "\" over RANGE ", absl::FormatDuration(range[1]), "\n  on ", on.text, "\n");
    if (where) absl::StrAppend(&s, "  where ", where->text, "\n");
    absl::StrAppend(&s, "  project ", ExplainExprs(items), "\n");
    return s;
  }

 private:
  void Evict(int side, absl::Time t) {
    std::deque<Row>& b = buffer_[side];
    while (!b.empty() && b.front().rowtime < t - range[side]) b.pop_front();
  }
  void Produce(const Row& row) {
    if (where) {
      bool error = false;
      if (!Test(*where, ctx_, scratch_, &error)) {
        if (error) engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
        return;
      }
    }
    if (!EvalAll(items, ctx_, values_)) {
      engine->Error(pump, "Runtime_error", ctx_.error, row.rowtime, RowText(row));
      return;
    }
    engine->Emit(*this, row.rowtime, values_);
  }

  std::deque<Row> buffer_[2];
  EvalContext ctx_;
  Value scratch_;
  std::vector<Value> values_;
};

// ---------------------------------------------------------------------------------------------
// TOP_K_ITEMS_TUMBLING(cursor, 'column', k, windowSizeSeconds): the k most frequent values of a
// column per tumbling window of ROWTIME, as (ITEM, ITEM_COUNT) rows at the window's end. Counts
// come from rill's Space-Saving TopK (exact while a window has at most `capacity` distinct
// values, else each count is an upper bound, as KDA documents the function as approximate).

class TopKOp final : public Operator {
 public:
  TopKOp(int column, size_t k, absl::Duration size, size_t capacity)
      : column_(column),
        k_(k),
        size_(size),
        op_(TopK<std::string>(k, capacity), TumblingWindow(size)) {}

  void OnRow(int, const Row& row) override {
    const Value& v = row.values[column_];
    if (v.null) return;
    text_ = v.type == SqlType::kVarchar ? v.s : v.ToString();
    op_.Add(0, row.rowtime, text_, [](const auto&) {});
  }

  void AdvanceTo(absl::Time t) override {
    op_.AdvanceWatermark(t, [&](const WindowResult<int, TopKResult<std::string>>& r) {
      for (const TopKEntry<std::string>& e : r.value.entries) {
        values_.clear();
        values_.push_back(Value::Varchar(e.value));
        values_.push_back(Value::Bigint(static_cast<int64_t>(e.count)));
        engine->Emit(*this, r.end, values_);
      }
    });
  }

  void Save(std::string* out) const override { op_.Snapshot(out); }
  bool Load(std::string_view in) override { return op_.Restore(in); }

  std::string Explain() const override {
    return absl::StrCat("TopKItemsTumbling(k=", k_, ", window ", absl::FormatDuration(size_),
                        ", column \"", inputs[0]->schema[column_].name, "\") -> \"", target->name,
                        "\"\n  from \"", inputs[0]->name, "\"\n");
  }

 private:
  int column_;
  size_t k_;
  absl::Duration size_;
  WindowOperator<int, TopKAggregator<std::string>, TumblingWindow> op_;
  std::string text_;
  std::vector<Value> values_;
};

// RANDOM_CUT_FOREST[_WITH_EXPLANATION](cursor, numberOfTrees, subSampleSize, timeDecay,
// shingleSize[, withDirectionality]): every row of the cursor with ANOMALY_SCORE (and
// ANOMALY_EXPLANATION) appended, computed over its numeric columns (INTEGER, BIGINT, DOUBLE). A
// row with a NULL in one of them is passed on with a NULL score and is not learned.
class ForestOp final : public Operator {
 public:
  ForestOp(RandomCutForest forest, std::vector<int> columns, bool explain)
      : forest_(std::move(forest)), columns_(std::move(columns)), explain_(explain) {}

  void OnRow(int, const Row& row) override {
    values_.assign(row.values.begin(), row.values.end());
    point_.clear();
    bool has_null = false;
    for (int c : columns_) {
      has_null |= row.values[c].null;
      point_.push_back(row.values[c].AsDouble());
    }
    if (has_null) {
      values_.push_back(Value::Null(SqlType::kDouble));
      if (explain_) values_.push_back(Value::Null(SqlType::kVarchar));
    } else if (!explain_) {
      values_.push_back(Value::Double(forest_.ScoreAndUpdate(point_)));
    } else {
      const double score = forest_.ScoreAndUpdate(point_, &attribution_);
      values_.push_back(Value::Double(score));
      std::string json = "{";
      for (size_t i = 0; i < columns_.size(); ++i) {
        const RandomCutForest::Attribution& a = attribution_[i];
        if (i > 0) json += ",";
        absl::StrAppend(&json, "\"", inputs[0]->schema[columns_[i]].name, "\":{\"DIRECTION\":\"",
                        a.high >= a.low ? "HIGH" : "LOW", "\",\"STRENGTH\":\"",
                        Value::Double(a.high + a.low).ToString(), "\",\"ATTRIBUTION_SCORE\":\"",
                        Value::Double(a.high + a.low).ToString(), "\"}");
      }
      json += "}";
      values_.push_back(Value::Varchar(json));
    }
    engine->Emit(*this, row.rowtime, values_);
  }

  void Save(std::string* out) const override { forest_.Encode(out); }
  bool Load(std::string_view in) override {
    absl::StatusOr<RandomCutForest> f = RandomCutForest::Decode(in);
    if (!f.ok()) return false;
    forest_ = std::move(*f);
    return true;
  }

  std::string Explain() const override {
    std::vector<std::string> names;
    for (int c : columns_) names.push_back(absl::StrCat("\"", inputs[0]->schema[c].name, "\""));
    const RandomCutForestOptions& o = forest_.options();
    return absl::StrCat("RandomCutForest", explain_ ? "WithExplanation" : "",
                        "(trees=", o.number_of_trees, ", sample=", o.sub_sample_size,
                        ", time_decay=", o.time_decay, ", shingle=", o.shingle_size, ") -> \"",
                        target->name, "\"\n  from \"", inputs[0]->name, "\"\n  numeric columns ",
                        absl::StrJoin(names, ", "), "\n");
  }

 private:
  RandomCutForest forest_;
  std::vector<int> columns_;
  bool explain_;
  std::vector<Value> values_;
  std::vector<double> point_;
  std::vector<RandomCutForest::Attribution> attribution_;
};

// ---------------------------------------------------------------------------------------------
// The planner.

ColumnType Type(SqlType t) {
  ColumnType c;
  c.type = t;
  if (t == SqlType::kVarchar) c.length = 65535;
  return c;
}

class Planner {
 public:
  Planner(const std::vector<ReferenceRows>& refs, uint64_t seed, Engine* engine)
      : refs_(refs), seed_(seed), engine_(engine) {}

  absl::Status Plan(const ast::Script& script) {
    for (const ast::Statement& st : script.statements) {
      absl::Status s = st.kind == ast::Statement::Kind::kCreateStream
                           ? CreateStream(st.create_stream)
                           : CreatePump(st.create_pump);
      if (!s.ok()) return s;
    }
    return Order();
  }

 private:
  absl::Status CreateStream(const ast::CreateStream& c) {
    if (c.name == "error_stream" || engine_->Find(c.name) != nullptr || FindRef(c.name)) {
      StreamNode* existing = engine_->Find(c.name);
      if (!(c.or_replace && existing != nullptr && !existing->hidden && existing->readers.empty() &&
            Writers(existing) == 0 && !IsInput(existing))) {
        return CodeError(c.pos, absl::StrCat("stream \"", c.name, "\" already exists"));
      }
      existing->schema.clear();
    }
    if (c.columns.empty()) return CodeError(c.pos, "a stream needs at least one column");
    Schema schema;
    std::set<std::string> names;
    for (const ast::ColumnDef& col : c.columns) {
      if (col.name == "ROWTIME") {
        return CodeError(col.pos, "ROWTIME is implicit: it cannot be declared as a column");
      }
      if (!names.insert(col.name).second) {
        return CodeError(col.pos, absl::StrCat("column \"", col.name, "\" is declared twice"));
      }
      schema.push_back(Column{col.name, col.type});
    }
    StreamNode* node = engine_->Find(c.name);
    if (node == nullptr) {
      engine_->streams.push_back(std::make_unique<StreamNode>());
      node = engine_->streams.back().get();
      node->name = c.name;
    }
    node->schema = std::move(schema);
    return absl::OkStatus();
  }

  int Writers(const StreamNode* s) const {
    int n = 0;
    for (const auto& op : engine_->operators) n += op->target == s;
    return n;
  }
  static bool IsInput(const StreamNode* s) { return s->input; }
  const ReferenceRows* FindRef(std::string_view name) const {
    for (const ReferenceRows& r : refs_) {
      if (r.name == name) return &r;
    }
    return nullptr;
  }

  absl::Status CreatePump(const ast::CreatePump& p) {
    if (!pumps_.insert(p.name).second) {
      return CodeError(p.pos, absl::StrCat("pump \"", p.name, "\" already exists"));
    }
    StreamNode* target = engine_->Find(p.target);
    if (target == nullptr || target->hidden) {
      return CodeError(p.pos, absl::StrCat("INSERT INTO an unknown stream \"", p.target,
                                           "\": create it first with CREATE STREAM"));
    }
    if (target == engine_->error_stream || IsInput(target)) {
      return CodeError(p.pos, absl::StrCat("a pump cannot insert into \"", p.target, "\""));
    }
    // The target's columns the select list fills, in order.
    std::vector<int> columns;
    if (p.target_columns.empty()) {
      for (size_t i = 0; i < target->schema.size(); ++i) columns.push_back(static_cast<int>(i));
    } else {
      for (const std::string& name : p.target_columns) {
        int found = -1;
        for (size_t i = 0; i < target->schema.size(); ++i) {
          if (target->schema[i].name == name) found = static_cast<int>(i);
        }
        if (found < 0) {
          return CodeError(p.pos,
                           absl::StrCat("stream \"", p.target, "\" has no column \"", name, "\""));
        }
        columns.push_back(found);
      }
    }
    return PlanSelect(p.select, p.name, target, columns);
  }

  // Plans `select` into an operator writing `target`'s `columns` (the others get NULL).
  absl::Status PlanSelect(const ast::Select& select, const std::string& pump, StreamNode* target,
                          const std::vector<int>& columns) {
    if (!select.stream) {
      return CodeError(select.pos, "a query on a stream must be SELECT STREAM");
    }
    if (select.distinct) return CodeError(select.pos, "SELECT STREAM DISTINCT is not supported");
    // Rows come out in ROWTIME order; ORDER BY may say so, and nothing else.
    for (const ast::OrderItem& o : select.order_by) {
      const ast::Expr& e = *o.expr;
      const bool rowtime = e.kind == ast::ExprKind::kColumn && e.name == "ROWTIME";
      if (!rowtime || o.descending) {
        return CodeError(e.pos,
                         "ORDER BY on a stream is supported only as ORDER BY ROWTIME "
                         "(rows come out in ROWTIME order)");
      }
    }
    // FROM: a stream, a table function or a subquery (the latter two through hidden streams).
    absl::StatusOr<StreamNode*> from = Source(select.from, pump);
    if (!from.ok()) return from.status();
    const std::string from_alias = select.from.alias.empty()
                                       ? ((*from)->hidden ? std::string() : (*from)->name)
                                       : select.from.alias;
    if (select.joins.size() > 1) {
      return CodeError(select.joins[1].pos, "only one JOIN per query is supported");
    }
    Scope scope;
    AddColumns(&scope, **from, from_alias, 0);
    if (!from_alias.empty()) scope.qualifiers.push_back(from_alias);
    if ((*from)->hidden && !select.from.alias.empty()) scope.qualifiers.push_back(from_alias);

    if (!select.joins.empty()) {
      return PlanJoin(select, pump, target, columns, *from, from_alias);
    }
    if (select.stagger) return PlanStagger(select, pump, target, columns, *from, scope);
    bool over = false;
    for (const ast::SelectItem& item : select.items) over |= HasOver(*item.expr);
    bool aggregate = !select.group_by.empty() || select.having != nullptr;
    for (const ast::SelectItem& item : select.items) aggregate |= ContainsAggregate(*item.expr);
    if (over && aggregate) {
      return CodeError(select.pos,
                       "a query cannot mix GROUP BY aggregates with OVER window functions");
    }
    if (over) return PlanSliding(select, pump, target, columns, *from, scope);
    if (aggregate) return PlanTumbling(select, pump, target, columns, *from, scope);
    auto op = std::make_unique<SelectOp>();
    if (select.where) {
      absl::StatusOr<CompiledExpr> w = Condition(*select.where, scope, "WHERE");
      if (!w.ok()) return w.status();
      op->where = std::move(*w);
    }
    absl::StatusOr<std::vector<CompiledExpr>> items = Items(select, scope, columns, target);
    if (!items.ok()) return items.status();
    op->items = std::move(*items);
    return Add(std::move(op), pump, target, {*from});
  }

  static bool HasOver(const ast::Expr& e) {
    if (e.kind == ast::ExprKind::kFunction && (!e.over.empty() || e.over_window)) return true;
    for (const ast::ExprPtr& a : e.args) {
      if (a && HasOver(*a)) return true;
    }
    return false;
  }

  void AddColumns(Scope* scope, const StreamNode& s, const std::string& qualifier, int frame) {
    for (size_t i = 0; i < s.schema.size(); ++i) {
      scope->columns.push_back(
          ScopeColumn{qualifier, s.schema[i].name, s.schema[i].type, frame, static_cast<int>(i)});
    }
    ColumnType ts;
    ts.type = SqlType::kTimestamp;
    scope->columns.push_back(ScopeColumn{qualifier, "ROWTIME", ts, frame, -1});
  }

  absl::StatusOr<CompiledExpr> Condition(const ast::Expr& e, const Scope& scope,
                                         std::string_view clause) {
    if (ContainsAggregate(e) && clause == "WHERE") {
      return CodeError(e.pos, "aggregates are not allowed in WHERE (use HAVING)");
    }
    absl::StatusOr<CompiledExpr> c = Compile(e, scope);
    if (!c.ok()) return c.status();
    if (c->type.type != SqlType::kBoolean && c->type.type != SqlType::kNull) {
      return CodeError(e.pos, absl::StrCat(std::string(clause), " needs a BOOLEAN condition, not ",
                                           ColumnTypeName(c->type)));
    }
    return c;
  }

  // Compiles the select list (with * expanded) against `scope` and lines it up with the target's
  // columns: one value per target column (NULL for columns the INSERT does not name).
  absl::StatusOr<std::vector<CompiledExpr>> Items(const ast::Select& select, const Scope& scope,
                                                  const std::vector<int>& columns,
                                                  const StreamNode* target) {
    std::vector<CompiledExpr> compiled;
    for (const ast::SelectItem& item : select.items) {
      if (item.expr->kind == ast::ExprKind::kStar) {
        for (const ScopeColumn& c : scope.columns) {
          if (c.index < 0 || c.name == "APPROXIMATE_ARRIVAL_TIME") continue;
          if (!item.expr->qualifier.empty() && c.qualifier != item.expr->qualifier) continue;
          const int frame = c.frame, index = c.index;
          compiled.push_back(CompiledExpr{c.type,
                                          [frame, index](EvalContext& ctx, Value& out) {
                                            out = ctx.rows[frame]->values[index];
                                            return true;
                                          },
                                          absl::StrCat("\"", c.name, "\"")});
        }
        continue;
      }
      absl::StatusOr<CompiledExpr> c = Compile(*item.expr, scope);
      if (!c.ok()) return c.status();
      compiled.push_back(std::move(*c));
    }
    last_item_types_.clear();
    for (const CompiledExpr& c : compiled) last_item_types_.push_back(c.type);
    if (compiled.size() != columns.size()) {
      return CodeError(select.pos,
                       absl::StrCat("the query gives ", compiled.size(), " columns but \"",
                                    target->name, "\" takes ", columns.size()));
    }
    std::vector<CompiledExpr> out(target->schema.size());
    for (size_t i = 0; i < target->schema.size(); ++i) {
      const SqlType t = target->schema[i].type.type;
      out[i] = CompiledExpr{target->schema[i].type,
                            [t](EvalContext&, Value& v) {
                              v = Value::Null(t);
                              return true;
                            },
                            "NULL"};
    }
    for (size_t i = 0; i < columns.size(); ++i) {
      const ColumnType& want = target->schema[columns[i]].type;
      const SqlType have = compiled[i].type.type;
      const bool ok = have == SqlType::kNull || have == want.type ||
                      (IsNumeric(have) && IsNumeric(want.type)) || want.type == SqlType::kVarchar ||
                      (have == SqlType::kBoolean && IsNumeric(want.type));
      if (!ok) {
        const ast::Position pos = i < select.items.size() ? select.items[i].expr->pos : select.pos;
        return CodeError(
            pos, absl::StrCat("column \"", target->schema[columns[i]].name, "\" of \"",
                              target->name, "\" is ", ColumnTypeName(want), " but the query gives ",
                              ColumnTypeName(compiled[i].type), " (", compiled[i].text, ")"));
      }
      out[columns[i]] = std::move(compiled[i]);
    }
    return out;
  }

  absl::StatusOr<StreamNode*> Source(const ast::TableRef& ref, const std::string& pump) {
    switch (ref.kind) {
      case ast::TableRef::Kind::kNamed: {
        StreamNode* s = engine_->Find(ref.name);
        if (s == nullptr || s->hidden) {
          if (FindRef(ref.name) != nullptr) {
            return CodeError(ref.pos, absl::StrCat("reference table \"", ref.name,
                                                   "\" can only be JOINed to a stream"));
          }
          return CodeError(ref.pos, absl::StrCat("unknown stream \"", ref.name, "\""));
        }
        if (s == engine_->error_stream) {
          return CodeError(ref.pos, "error_stream cannot be read by a pump");
        }
        return s;
      }
      case ast::TableRef::Kind::kSubquery:
        return Hidden(*ref.subquery, pump, ref.pos);
      case ast::TableRef::Kind::kTableFunction:
        return TableFunction(*ref.function, pump);
    }
    return CodeError(ref.pos, "unsupported FROM");
  }

  // Plans a cursor's or subquery's SELECT into a hidden stream with its select list's columns.
  absl::StatusOr<StreamNode*> Hidden(const ast::Select& select, const std::string& pump,
                                     const ast::Position& pos) {
    // The hidden stream's schema is what the select list gives: plan it once into a scratch
    // target to learn the types, then for real.
    absl::StatusOr<Schema> schema = SelectSchema(select, pump);
    if (!schema.ok()) return schema.status();
    (void)pos;
    StreamNode* node = NewHidden(*schema);
    std::vector<int> columns;
    for (size_t i = 0; i < schema->size(); ++i) columns.push_back(static_cast<int>(i));
    absl::Status s = PlanSelect(select, pump, node, columns);
    if (!s.ok()) return s;
    return node;
  }

  StreamNode* NewHidden(Schema schema) {
    engine_->streams.push_back(std::make_unique<StreamNode>());
    StreamNode* node = engine_->streams.back().get();
    node->name = absl::StrCat("$", ++hidden_);
    node->hidden = true;
    node->schema = std::move(schema);
    return node;
  }

  // The columns a select list gives: names from aliases or column names (else EXPR$n), types
  // from compiling it against a permissive target.
  absl::StatusOr<Schema> SelectSchema(const ast::Select& select, const std::string& pump) {
    // A target of VARCHAR columns accepts any value; plan into it without keeping the operator.
    Schema loose;
    size_t n = 0;
    // Count the items (stars need the FROM's columns).
    absl::StatusOr<StreamNode*> from = Source(select.from, pump);
    if (!from.ok()) return from.status();
    std::vector<std::pair<std::string, ColumnType>> star_columns;
    for (const Column& c : (*from)->schema) {
      if (c.name != "APPROXIMATE_ARRIVAL_TIME") star_columns.emplace_back(c.name, c.type);
    }
    for (const ast::SelectItem& item : select.items) {
      n += item.expr->kind == ast::ExprKind::kStar ? star_columns.size() : 1;
    }
    for (size_t i = 0; i < n; ++i)
      loose.push_back(Column{absl::StrCat("EXPR$", i), Type(SqlType::kVarchar)});
    StreamNode* probe = NewHidden(loose);
    std::vector<int> columns;
    for (size_t i = 0; i < n; ++i) columns.push_back(static_cast<int>(i));
    const size_t ops_before = engine_->operators.size();
    absl::Status s = PlanSelect(select, pump, probe, columns);
    if (!s.ok()) return s;
    // The probe's compiled items carry the real types: read them, then drop the probe (and the
    // operators it made).
    const std::vector<ColumnType> types = last_item_types_;
    Schema schema;
    size_t i = 0;
    for (const ast::SelectItem& item : select.items) {
      if (item.expr->kind == ast::ExprKind::kStar) {
        for (const auto& [name, type] : star_columns) schema.push_back(Column{name, type});
        i += star_columns.size();
        continue;
      }
      std::string name = item.alias;
      if (name.empty() && item.expr->kind == ast::ExprKind::kColumn) name = item.expr->name;
      if (name.empty()) name = absl::StrCat("EXPR$", i);
      schema.push_back(Column{name, i < types.size() ? types[i] : Type(SqlType::kVarchar)});
      ++i;
    }
    engine_->operators.resize(ops_before);
    for (auto& st : engine_->streams) {
      auto& rd = st->readers;
      rd.erase(std::remove_if(rd.begin(), rd.end(),
                              [&](const StreamNode::Reader& r) {
                                for (size_t k = 0; k < engine_->operators.size(); ++k) {
                                  if (engine_->operators[k].get() == r.op) return false;
                                }
                                return true;
                              }),
               rd.end());
    }
    return schema;
  }

  absl::StatusOr<StreamNode*> TableFunction(const ast::Expr& f, const std::string& pump) {
    if (f.kind != ast::ExprKind::kFunction || f.args.empty() ||
        f.args[0]->kind != ast::ExprKind::kCursor) {
      return CodeError(f.pos, "a table function takes CURSOR(SELECT STREAM ...) first");
    }
    absl::StatusOr<StreamNode*> cursor = Hidden(*f.args[0]->cursor, pump, f.pos);
    if (!cursor.ok()) return cursor.status();
    auto int_arg = [&](size_t i, int64_t fallback, int64_t* out) -> absl::Status {
      if (i >= f.args.size()) {
        *out = fallback;
        return absl::OkStatus();
      }
      const ast::Expr& a = *f.args[i];
      if (a.kind != ast::ExprKind::kLiteral || a.literal.null ||
          (a.literal.type != SqlType::kInteger && a.literal.type != SqlType::kBigint)) {
        return CodeError(a.pos,
                         absl::StrCat(f.name, " argument ", i + 1, " must be an integer literal"));
      }
      *out = a.literal.i;
      return absl::OkStatus();
    };
    if (f.name == "TOP_K_ITEMS_TUMBLING") {
      if (f.args.size() != 4) {
        return CodeError(f.pos,
                         "TOP_K_ITEMS_TUMBLING(cursor, 'column', k, windowSizeSeconds) "
                         "takes 4 arguments");
      }
      const ast::Expr& col = *f.args[1];
      if (col.kind != ast::ExprKind::kLiteral || col.literal.type != SqlType::kVarchar) {
        return CodeError(col.pos, "TOP_K_ITEMS_TUMBLING's column must be a string literal");
      }
      int column = -1;
      for (size_t i = 0; i < (*cursor)->schema.size(); ++i) {
        if ((*cursor)->schema[i].name == col.literal.s) column = static_cast<int>(i);
      }
      if (column < 0) {
        return CodeError(col.pos, absl::StrCat("the cursor has no column \"", col.literal.s, "\""));
      }
      int64_t k = 0, seconds = 0;
      absl::Status s = int_arg(2, 0, &k);
      if (!s.ok()) return s;
      s = int_arg(3, 0, &seconds);
      if (!s.ok()) return s;
      if (k < 1 || k > 100000) return CodeError(f.args[2]->pos, "k must be in 1..100000");
      if (seconds < 1 || seconds > 86400 * 31) {
        return CodeError(f.args[3]->pos, "windowSizeSeconds must be in 1..2678400");
      }
      ColumnType item = Type(SqlType::kVarchar);
      ColumnType count = Type(SqlType::kBigint);
      StreamNode* out = NewHidden({Column{"ITEM", item}, Column{"ITEM_COUNT", count}});
      auto op = std::make_unique<TopKOp>(column, static_cast<size_t>(k), absl::Seconds(seconds),
                                         std::max<size_t>(4096, static_cast<size_t>(k) * 16));
      absl::Status added = Add(std::move(op), pump, out, {*cursor});
      if (!added.ok()) return added;
      return out;
    }
    if (f.name == "RANDOM_CUT_FOREST" || f.name == "RANDOM_CUT_FOREST_WITH_EXPLANATION") {
      const bool explain = f.name == "RANDOM_CUT_FOREST_WITH_EXPLANATION";
      if (f.args.size() > (explain ? 7u : 6u)) {
        return CodeError(f.pos,
                         absl::StrCat(f.name, " takes at most ", explain ? 7 : 6, " arguments"));
      }
      RandomCutForestOptions o;
      int64_t v = 0;
      absl::Status s = int_arg(1, o.number_of_trees, &v);
      if (!s.ok()) return s;
      o.number_of_trees = static_cast<int>(v);
      s = int_arg(2, o.sub_sample_size, &v);
      if (!s.ok()) return s;
      o.sub_sample_size = static_cast<int>(v);
      s = int_arg(3, o.time_decay, &v);
      if (!s.ok()) return s;
      o.time_decay = v;
      s = int_arg(4, o.shingle_size, &v);
      if (!s.ok()) return s;
      o.shingle_size = static_cast<int>(v);
      o.seed = seed_ + hidden_;
      std::vector<int> numeric;
      for (size_t i = 0; i < (*cursor)->schema.size(); ++i) {
        const SqlType t = (*cursor)->schema[i].type.type;
        if (t == SqlType::kInteger || t == SqlType::kBigint || t == SqlType::kDouble) {
          numeric.push_back(static_cast<int>(i));
        }
      }
      if (numeric.empty()) {
        return CodeError(f.pos, absl::StrCat(f.name,
                                             " needs at least one numeric column "
                                             "(INTEGER, BIGINT or DOUBLE) in its cursor"));
      }
      absl::StatusOr<RandomCutForest> forest = RandomCutForest::Create(o, numeric.size());
      if (!forest.ok()) return CodeError(f.pos, std::string(forest.status().message()));
      Schema schema = (*cursor)->schema;
      schema.push_back(Column{"ANOMALY_SCORE", Type(SqlType::kDouble)});
      if (explain) schema.push_back(Column{"ANOMALY_EXPLANATION", Type(SqlType::kVarchar)});
      StreamNode* out = NewHidden(std::move(schema));
      auto op = std::make_unique<ForestOp>(std::move(*forest), std::move(numeric), explain);
      absl::Status added = Add(std::move(op), pump, out, {*cursor});
      if (!added.ok()) return added;
      return out;
    }
    return CodeError(f.pos, absl::StrCat("unknown table function ", f.name,
                                         " (rill has TOP_K_ITEMS_TUMBLING, RANDOM_CUT_FOREST "
                                         "and RANDOM_CUT_FOREST_WITH_EXPLANATION)"));
  }

  absl::Status Add(std::unique_ptr<Operator> op, const std::string& pump, StreamNode* target,
                   std::vector<StreamNode*> inputs) {
    op->pump = pump;
    op->engine = engine_;
    op->target = target;
    op->inputs = inputs;
    for (size_t i = 0; i < inputs.size(); ++i) {
      inputs[i]->readers.push_back({op.get(), static_cast<int>(i)});
    }
    engine_->operators.push_back(std::move(op));
    return absl::OkStatus();
  }

  // Collects aggregate calls (outside OVER) of `e` into `aggs` by canonical text.
  absl::Status CollectAggregates(const ast::Expr& e, const Scope& scope,
                                 std::vector<std::pair<std::string, const ast::Expr*>>* aggs) {
    if (e.kind == ast::ExprKind::kFunction && IsAggregateFunction(e.name) && e.over.empty() &&
        !e.over_window) {
      const std::string key = ExprText(e);
      for (const auto& a : *aggs) {
        if (a.first == key) return absl::OkStatus();
      }
      for (const ast::ExprPtr& a : e.args) {
        if (ContainsAggregate(*a)) return CodeError(a->pos, "aggregates cannot be nested");
      }
      (void)scope;
      aggs->emplace_back(key, &e);
      return absl::OkStatus();
    }
    if (e.kind == ast::ExprKind::kCursor) return absl::OkStatus();
    for (const ast::ExprPtr& a : e.args) {
      if (!a) continue;
      absl::Status s = CollectAggregates(*a, scope, aggs);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // The aggregate specs and argument expressions of `aggs`.
  absl::Status AggregateSpecs(const std::vector<std::pair<std::string, const ast::Expr*>>& aggs,
                              const Scope& scope, std::vector<AggSpec>* specs,
                              std::vector<CompiledExpr>* args) {
    for (const auto& [key, e] : aggs) {
      AggSpec spec;
      const std::string& n = e->name;
      if (n == "COUNT" && (e->star || e->args.empty())) {
        spec.kind = AggKind::kCountStar;
        args->push_back(CompiledExpr{Type(SqlType::kBigint),
                                     [](EvalContext&, Value& out) {
                                       out = Value::Bigint(1);
                                       return true;
                                     },
                                     "*"});
      } else {
        if (e->args.size() != 1) {
          return CodeError(e->pos, absl::StrCat(n, " takes one argument"));
        }
        if (e->args[0]->kind == ast::ExprKind::kStar) {
          return CodeError(e->pos, absl::StrCat(n, "(*) is not allowed; only COUNT(*)"));
        }
        absl::StatusOr<CompiledExpr> a = Compile(*e->args[0], scope);
        if (!a.ok()) return a.status();
        spec.arg = a->type;
        if (n == "COUNT") {
          spec.kind = e->distinct ? AggKind::kCountDistinct : AggKind::kCount;
        } else if (e->distinct) {
          return CodeError(e->pos, absl::StrCat(n,
                                                "(DISTINCT ...) is not supported; only "
                                                "COUNT(DISTINCT ...)"));
        } else if (n == "SUM") {
          spec.kind = AggKind::kSum;
        } else if (n == "AVG") {
          spec.kind = AggKind::kAvg;
        } else if (n == "MIN") {
          spec.kind = AggKind::kMin;
        } else {
          spec.kind = AggKind::kMax;
        }
        args->push_back(std::move(*a));
      }
      if (!AggregateResultType(spec.kind, spec.arg, &spec.result)) {
        return CodeError(e->pos, absl::StrCat(n, " cannot take ", ColumnTypeName(spec.arg)));
      }
      specs->push_back(spec);
    }
    return absl::OkStatus();
  }

  // Is `e` STEP(<ROWTIME> BY INTERVAL ...) or FLOOR(<ROWTIME> TO unit)? Then its window size.
  std::optional<absl::Duration> RowtimeBucket(const ast::Expr& e) {
    if (e.kind != ast::ExprKind::kFunction || e.args.empty()) return std::nullopt;
    const ast::Expr& x = *e.args[0];
    if (x.kind != ast::ExprKind::kColumn || x.name != "ROWTIME") return std::nullopt;
    if (e.name == "STEP" && e.args.size() == 2 && e.args[1]->kind == ast::ExprKind::kLiteral &&
        e.args[1]->literal.type == SqlType::kInterval && e.args[1]->literal.i > 0) {
      return absl::Microseconds(e.args[1]->literal.i);
    }
    if (e.name == "FLOOR" && e.unit) {
      switch (*e.unit) {
        case ast::TimeUnit::kMillisecond:
          return absl::Milliseconds(1);
        case ast::TimeUnit::kSecond:
          return absl::Seconds(1);
        case ast::TimeUnit::kMinute:
          return absl::Minutes(1);
        case ast::TimeUnit::kHour:
          return absl::Hours(1);
        case ast::TimeUnit::kDay:
          return absl::Hours(24);
        default:
          return std::nullopt;
      }
    }
    return std::nullopt;
  }

  // Builds the aggregation shared by tumbling and stagger: `keys` grouped by, `bucket` (the
  // window start, or the stagger window's start) as an extra slot for `bucket_key`.
  absl::StatusOr<Aggregation> BuildAggregation(const ast::Select& select, const Scope& scope,
                                               const std::vector<const ast::Expr*>& keys,
                                               const std::string& bucket_key,
                                               const std::vector<int>& columns,
                                               StreamNode* target) {
    Aggregation a;
    if (select.where) {
      absl::StatusOr<CompiledExpr> w = Condition(*select.where, scope, "WHERE");
      if (!w.ok()) return w.status();
      a.where = std::move(*w);
    }
    Scope post;
    post.aggregates_replaced = true;
    int slot = 0;
    for (const ast::Expr* k : keys) {
      absl::StatusOr<CompiledExpr> c = Compile(*k, scope);
      if (!c.ok()) return c.status();
      post.slots.push_back(Scope::Slot{ExprText(*k), c->type, 0, slot++});
      a.keys.push_back(std::move(*c));
    }
    ColumnType ts = Type(SqlType::kTimestamp);
    if (!bucket_key.empty()) post.slots.push_back(Scope::Slot{bucket_key, ts, 0, slot});
    ++slot;
    std::vector<std::pair<std::string, const ast::Expr*>> aggs;
    for (const ast::SelectItem& item : select.items) {
      absl::Status s = CollectAggregates(*item.expr, scope, &aggs);
      if (!s.ok()) return s;
    }
    if (select.having) {
      absl::Status s = CollectAggregates(*select.having, scope, &aggs);
      if (!s.ok()) return s;
    }
    std::vector<AggSpec> specs;
    absl::Status s = AggregateSpecs(aggs, scope, &specs, &a.agg_args);
    if (!s.ok()) return s;
    for (size_t i = 0; i < aggs.size(); ++i) {
      post.slots.push_back(Scope::Slot{aggs[i].first, specs[i].result, 0, slot++});
    }
    a.agg = SqlAggregator(std::move(specs));
    // ROWTIME in the select list of an aggregate is the window's end (ctx.rowtime).
    for (const ast::SelectItem& item : select.items) {
      if (item.expr->kind == ast::ExprKind::kStar) {
        return CodeError(item.expr->pos, "'*' is not allowed in an aggregate query");
      }
    }
    absl::StatusOr<std::vector<CompiledExpr>> items = ItemsOrHint(select, post, columns, target);
    if (!items.ok()) return items.status();
    a.items = std::move(*items);
    if (select.having) {
      absl::StatusOr<CompiledExpr> h = CompileOrHint(*select.having, post);
      if (!h.ok()) return h.status();
      if (h->type.type != SqlType::kBoolean && h->type.type != SqlType::kNull) {
        return CodeError(select.having->pos, "HAVING needs a BOOLEAN condition");
      }
      a.having = std::move(*h);
    }
    return a;
  }

  absl::StatusOr<CompiledExpr> CompileOrHint(const ast::Expr& e, const Scope& post) {
    absl::StatusOr<CompiledExpr> c = Compile(e, post);
    if (!c.ok() && absl::StrContains(c.status().message(), "unknown column")) {
      return MakeError(ErrorCode::kCodeValidation,
                       absl::StrCat(c.status().message(),
                                    ": in an aggregate query a column must be grouped by or "
                                    "inside an aggregate"));
    }
    return c;
  }

  absl::StatusOr<std::vector<CompiledExpr>> ItemsOrHint(const ast::Select& select,
                                                        const Scope& post,
                                                        const std::vector<int>& columns,
                                                        StreamNode* target) {
    absl::StatusOr<std::vector<CompiledExpr>> items = Items(select, post, columns, target);
    if (!items.ok() && absl::StrContains(items.status().message(), "unknown column")) {
      return MakeError(ErrorCode::kCodeValidation,
                       absl::StrCat(items.status().message(),
                                    ": in an aggregate query a column must be grouped by or "
                                    "inside an aggregate"));
    }
    return items;
  }

  absl::Status PlanTumbling(const ast::Select& select, const std::string& pump, StreamNode* target,
                            const std::vector<int>& columns, StreamNode* from, const Scope& scope) {
    std::optional<absl::Duration> size;
    std::string bucket_key;
    std::vector<const ast::Expr*> keys;
    for (const ast::ExprPtr& g : select.group_by) {
      std::optional<absl::Duration> b = RowtimeBucket(*g);
      if (b) {
        if (size) {
          return CodeError(g->pos, "GROUP BY may have only one STEP or FLOOR of ROWTIME");
        }
        size = b;
        bucket_key = ExprText(*g);
      } else {
        if (ContainsAggregate(*g)) return CodeError(g->pos, "GROUP BY cannot hold an aggregate");
        keys.push_back(g.get());
      }
    }
    if (!size) {
      return CodeError(select.group_by.empty() ? select.pos : select.group_by[0]->pos,
                       "an aggregate query on a stream needs a window: GROUP BY a STEP(ROWTIME "
                       "BY INTERVAL ...) or FLOOR(ROWTIME TO unit) (tumbling), WINDOWED BY "
                       "STAGGER, or OVER a sliding WINDOW");
    }
    absl::StatusOr<Aggregation> a =
        BuildAggregation(select, scope, keys, bucket_key, columns, target);
    if (!a.ok()) return a.status();
    return Add(std::make_unique<TumblingOp>(std::move(*a), *size), pump, target, {from});
  }

  absl::Status PlanStagger(const ast::Select& select, const std::string& pump, StreamNode* target,
                           const std::vector<int>& columns, StreamNode* from, const Scope& scope) {
    if (!select.group_by.empty()) {
      return CodeError(select.group_by[0]->pos, "WINDOWED BY STAGGER replaces GROUP BY");
    }
    const ast::Stagger& st = *select.stagger;
    if (st.range_micros <= 0) return CodeError(st.pos, "STAGGER needs a positive RANGE");
    if (st.partition_by.empty()) return CodeError(st.pos, "STAGGER needs PARTITION BY");
    std::vector<const ast::Expr*> keys;
    for (const ast::ExprPtr& k : st.partition_by) keys.push_back(k.get());
    absl::StatusOr<Aggregation> a = BuildAggregation(select, scope, keys, "", columns, target);
    if (!a.ok()) return a.status();
    return Add(std::make_unique<StaggerOp>(std::move(*a), absl::Microseconds(st.range_micros)),
               pump, target, {from});
  }

  // Collects OVER calls (aggregates and LAG) in `e`.
  void CollectOver(const ast::Expr& e, std::vector<const ast::Expr*>* out) {
    if (e.kind == ast::ExprKind::kFunction && (!e.over.empty() || e.over_window)) {
      const std::string key = ExprText(e);
      for (const ast::Expr* x : *out) {
        if (ExprText(*x) == key) return;
      }
      out->push_back(&e);
      return;
    }
    for (const ast::ExprPtr& a : e.args) {
      if (a) CollectOver(*a, out);
    }
  }

  absl::Status PlanSliding(const ast::Select& select, const std::string& pump, StreamNode* target,
                           const std::vector<int>& columns, StreamNode* from, const Scope& scope) {
    std::vector<const ast::Expr*> calls;
    for (const ast::SelectItem& item : select.items) CollectOver(*item.expr, &calls);
    // One window per query: every OVER must name or spell the same window.
    const ast::WindowSpec* window = nullptr;
    std::string window_text;
    for (const ast::Expr* c : calls) {
      const ast::WindowSpec* w = c->over_window.get();
      if (!c->over.empty()) {
        for (const ast::WindowSpec& named : select.windows) {
          if (named.name == c->over) w = &named;
        }
        if (w == nullptr) {
          return CodeError(c->pos, absl::StrCat("unknown window \"", c->over, "\""));
        }
      }
      std::string text =
          absl::StrCat(w->range_micros ? *w->range_micros : -1, "/", w->rows ? *w->rows : -1);
      for (const ast::ExprPtr& p : w->partition_by) absl::StrAppend(&text, "/", ExprText(*p));
      if (window != nullptr && text != window_text) {
        return CodeError(c->pos,
                         "a query may use only one window (all OVER clauses must be "
                         "the same)");
      }
      window = w;
      window_text = text;
    }
    auto op = std::make_unique<SlidingOp>();
    if (window->range_micros) {
      if (*window->range_micros < 0) return CodeError(window->pos, "RANGE must not be negative");
      if (*window->range_micros > int64_t{3600} * 1000000 * 24) {
        return CodeError(window->pos,
                         "RANGE must be at most 24 hours (KDA advises at most 1 "
                         "hour)");
      }
      op->range = absl::Microseconds(*window->range_micros);
    } else if (window->rows) {
      if (*window->rows < 0 || *window->rows > 100000) {
        return CodeError(window->pos, "ROWS must be in 0..100000");
      }
      op->rows = *window->rows;
    } else {
      return CodeError(window->pos,
                       "a window needs RANGE INTERVAL ... PRECEDING or ROWS n "
                       "PRECEDING");
    }
    if (select.where) {
      absl::StatusOr<CompiledExpr> w = Condition(*select.where, scope, "WHERE");
      if (!w.ok()) return w.status();
      op->where = std::move(*w);
    }
    for (const ast::ExprPtr& p : window->partition_by) {
      absl::StatusOr<CompiledExpr> c = Compile(*p, scope);
      if (!c.ok()) return c.status();
      op->partition.push_back(std::move(*c));
    }
    // Aggregates first (their args are entry values 0..n-1), then LAG args.
    std::vector<AggSpec> specs;
    std::vector<std::pair<std::string, const ast::Expr*>> aggs;
    std::vector<const ast::Expr*> lags;
    for (const ast::Expr* c : calls) {
      if (IsAggregateFunction(c->name)) {
        aggs.emplace_back(ExprText(*c), c);
      } else if (c->name == "LAG") {
        lags.push_back(c);
      } else {
        return CodeError(c->pos, absl::StrCat(c->name, " cannot be used OVER a window"));
      }
    }
    absl::Status s = AggregateSpecs(aggs, scope, &specs, &op->entry_args);
    if (!s.ok()) return s;
    Scope post = scope;
    int slot = 0;
    for (size_t i = 0; i < aggs.size(); ++i) {
      post.slots.push_back(Scope::Slot{aggs[i].first, specs[i].result, 1, slot++});
    }
    for (const ast::Expr* lag : lags) {
      if (lag->args.empty() || lag->args.size() > 3) {
        return CodeError(lag->pos, "LAG takes 1 to 3 arguments: LAG(expr[, n[, default]])");
      }
      absl::StatusOr<CompiledExpr> arg = Compile(*lag->args[0], scope);
      if (!arg.ok()) return arg.status();
      LagSpec spec;
      spec.arg = static_cast<int>(op->entry_args.size());
      if (lag->args.size() > 1) {
        const ast::Expr& n = *lag->args[1];
        if (n.kind != ast::ExprKind::kLiteral || n.literal.null || n.literal.i < 0 ||
            (n.literal.type != SqlType::kInteger && n.literal.type != SqlType::kBigint)) {
          return CodeError(n.pos, "LAG's offset must be a non-negative integer literal");
        }
        spec.offset = n.literal.i;
      }
      if (lag->args.size() > 2) {
        absl::StatusOr<CompiledExpr> d = Compile(*lag->args[2], scope);
        if (!d.ok()) return d.status();
        spec.default_value = std::move(*d);
      }
      post.slots.push_back(Scope::Slot{ExprText(*lag), arg->type, 1, slot++});
      op->entry_args.push_back(std::move(*arg));
      op->lags.push_back(std::move(spec));
    }
    // LAG args enter the entries too; the aggregator sees only the first specs.size() values.
    op->agg = SqlAggregator(std::move(specs));
    absl::StatusOr<std::vector<CompiledExpr>> items = Items(select, post, columns, target);
    if (!items.ok()) return items.status();
    op->items = std::move(*items);
    return Add(std::move(op), pump, target, {from});
  }

  absl::Status PlanJoin(const ast::Select& select, const std::string& pump, StreamNode* target,
                        const std::vector<int>& columns, StreamNode* from,
                        const std::string& from_alias) {
    const ast::Join& j = select.joins[0];
    if (!select.group_by.empty() || select.stagger || select.having) {
      return CodeError(j.pos,
                       "a JOIN query cannot aggregate: join in one pump, aggregate in "
                       "the next");
    }
    for (const ast::SelectItem& item : select.items) {
      if (ContainsAggregate(*item.expr) || HasOver(*item.expr)) {
        return CodeError(item.expr->pos,
                         "a JOIN query cannot aggregate: join in one pump, "
                         "aggregate in the next");
      }
    }
    if (j.table.kind != ast::TableRef::Kind::kNamed) {
      return CodeError(j.table.pos, "JOIN a stream or a reference table by name");
    }
    const std::string right_alias = j.table.alias.empty() ? j.table.name : j.table.alias;
    if (right_alias == from_alias) {
      return CodeError(j.table.pos, "the two sides of a JOIN need different aliases");
    }
    if (!j.on) return CodeError(j.pos, "JOIN needs ON");
    if (const ReferenceRows* ref = FindRef(j.table.name)) {
      Scope scope;
      AddColumns(&scope, *from, from_alias, 0);
      scope.qualifiers.push_back(from_alias);
      for (size_t i = 0; i < ref->schema.size(); ++i) {
        scope.columns.push_back(ScopeColumn{right_alias, ref->schema[i].name, ref->schema[i].type,
                                            1, static_cast<int>(i)});
      }
      auto op = std::make_unique<SelectOp>();
      op->join = std::make_unique<RefJoin>();
      RefJoin& join = *op->join;
      join.table = ref;
      join.left_outer = j.kind == ast::Join::Kind::kLeftOuter;
      for (const Column& c : ref->schema) join.null_row.values.push_back(Value::Null(c.type.type));
      absl::StatusOr<CompiledExpr> on = Condition(*j.on, scope, "ON");
      if (!on.ok()) return on.status();
      join.on = std::move(*on);
      // An equality between a stream expression and a table expression: a hash index.
      const ast::Expr& e = *j.on;
      if (e.kind == ast::ExprKind::kBinary && e.op == "=") {
        Scope left_only, right_only;
        AddColumns(&left_only, *from, from_alias, 0);
        left_only.qualifiers.push_back(from_alias);
        for (const ScopeColumn& c : scope.columns) {
          if (c.frame == 1)
            right_only.columns.push_back(ScopeColumn{c.qualifier, c.name, c.type, 0, c.index});
        }
        for (int side = 0; side < 2 && !join.stream_key; ++side) {
          absl::StatusOr<CompiledExpr> l = Compile(*e.args[side], left_only);
          absl::StatusOr<CompiledExpr> r = Compile(*e.args[1 - side], right_only);
          if (!l.ok() || !r.ok()) continue;
          const SqlType lt = l->type.type, rt = r->type.type;
          if (lt != rt && !(IsExactNumeric(lt) && IsExactNumeric(rt))) continue;
          EvalContext ctx;
          Value v;
          for (size_t i = 0; i < ref->rows.size(); ++i) {
            ctx.rows[0] = &ref->rows[i];
            ctx.rowtime = ref->rows[i].rowtime;
            if (!r->eval(ctx, v) || v.null) continue;
            std::string key;
            EncodeJoinKey(v, &key);
            join.index[key].push_back(i);
          }
          join.stream_key = std::move(*l);
        }
      }
      if (select.where) {
        absl::StatusOr<CompiledExpr> w = Condition(*select.where, scope, "WHERE");
        if (!w.ok()) return w.status();
        op->where = std::move(*w);
      }
      absl::StatusOr<std::vector<CompiledExpr>> items = Items(select, scope, columns, target);
      if (!items.ok()) return items.status();
      op->items = std::move(*items);
      return Add(std::move(op), pump, target, {from});
    }
    // A stream-to-stream join over windows.
    StreamNode* right = engine_->Find(j.table.name);
    if (right == nullptr || right->hidden || right == engine_->error_stream) {
      return CodeError(j.table.pos,
                       absl::StrCat("unknown stream or reference table \"", j.table.name, "\""));
    }
    if (right == from) {
      return CodeError(j.table.pos, "a stream cannot be joined with itself");
    }
    auto op = std::make_unique<StreamJoinOp>();
    const ast::WindowSpec* windows[2] = {select.from.over.get(), j.table.over.get()};
    for (int s = 0; s < 2; ++s) {
      op->range[s] = absl::ZeroDuration();
      if (windows[s] != nullptr) {
        if (!windows[s]->range_micros || *windows[s]->range_micros < 0 ||
            !windows[s]->partition_by.empty()) {
          return CodeError(windows[s]->pos,
                           "a joined stream's window is OVER (RANGE INTERVAL "
                           "'n' unit PRECEDING)");
        }
        op->range[s] = absl::Microseconds(*windows[s]->range_micros);
      }
    }
    if (windows[0] == nullptr && windows[1] == nullptr) {
      return CodeError(j.pos,
                       "a join of two streams needs a window on at least one side: "
                       "\"S\" OVER (RANGE INTERVAL '1' MINUTE PRECEDING) AS s");
    }
    op->left_outer = j.kind == ast::Join::Kind::kLeftOuter;
    Scope scope;
    AddColumns(&scope, *from, from_alias, 0);
    AddColumns(&scope, *right, right_alias, 1);
    scope.qualifiers = {from_alias, right_alias};
    for (int s = 0; s < 2; ++s) {
      const StreamNode* node = s == 0 ? from : right;
      for (const Column& c : node->schema)
        op->null_row[s].values.push_back(Value::Null(c.type.type));
    }
    absl::StatusOr<CompiledExpr> on = Condition(*j.on, scope, "ON");
    if (!on.ok()) return on.status();
    op->on = std::move(*on);
    if (select.where) {
      absl::StatusOr<CompiledExpr> w = Condition(*select.where, scope, "WHERE");
      if (!w.ok()) return w.status();
      op->where = std::move(*w);
    }
    absl::StatusOr<std::vector<CompiledExpr>> items = Items(select, scope, columns, target);
    if (!items.ok()) return items.status();
    op->items = std::move(*items);
    return Add(std::move(op), pump, target, {from, right});
  }

  // Orders the operators so that every stream's writers run before its readers (AdvanceTo's
  // order); a cycle is an error.
  absl::Status Order() {
    std::vector<std::unique_ptr<Operator>>& ops = engine_->operators;
    std::vector<std::unique_ptr<Operator>> ordered;
    std::vector<bool> placed(ops.size(), false);
    while (ordered.size() < ops.size()) {
      bool progress = false;
      for (size_t i = 0; i < ops.size(); ++i) {
        if (placed[i]) continue;
        bool ready = true;
        for (StreamNode* in : ops[i]->inputs) {
          for (size_t k = 0; k < ops.size(); ++k) {
            if (!placed[k] && k != i && ops[k]->target == in) ready = false;
          }
          if (ops[i]->target == in) {
            return MakeError(ErrorCode::kCodeValidation,
                             absl::StrCat("pump \"", ops[i]->pump, "\" reads the stream \"",
                                          in->name, "\" it inserts into"));
          }
        }
        if (!ready) continue;
        placed[i] = true;
        progress = true;
        ordered.push_back(nullptr);
        ordered.back().swap(ops[i]);
      }
      if (!progress) {
        return MakeError(ErrorCode::kCodeValidation,
                         "the pumps form a cycle: a stream feeds back into itself");
      }
    }
    ops = std::move(ordered);
    return absl::OkStatus();
  }

  const std::vector<ReferenceRows>& refs_;
  uint64_t seed_;
  Engine* engine_;
  std::set<std::string> pumps_;
  int hidden_ = 0;
  std::vector<ColumnType> last_item_types_;  // of the select list Items() compiled last
};

}  // namespace

absl::Status PlanScript(const ast::Script& script, const std::vector<ReferenceRows>& references,
                        uint64_t seed, Engine* engine) {
  Planner planner(references, seed, engine);
  return planner.Plan(script);
}

}  // namespace rill::sql
