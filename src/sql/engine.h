// The SQL engine's in-application streams and operators (internal). A pump is planned
// (planner.cc) into one operator that reads one or two in-application streams and inserts rows
// into one; table functions and subqueries become operators writing into hidden streams.
//
// Flow. Inserting a row into a stream hands it, synchronously, to every operator reading the
// stream (depth first) and to the outputs attached to it. Time moves by AdvanceTo(t), called
// before any row with ROWTIME t enters: every operator, in the order of the stream graph, closes
// what ends at or before t, so each stream sees its rows in ROWTIME order.
#ifndef RILL_SQL_ENGINE_H_
#define RILL_SQL_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "rill/sql/value.h"
#include "sql/expr.h"

namespace rill::sql {

class Engine;
class Operator;

struct StreamNode {
  std::string name;
  Schema schema;
  bool hidden = false;  // a table function's or subquery's stream
  bool input = false;   // an application input's stream (its last column is
                        // APPROXIMATE_ARRIVAL_TIME, which SELECT * leaves out)
  struct Reader {
    Operator* op;
    int side;
  };
  std::vector<Reader> readers;
  std::vector<std::function<void(const StreamNode&, const Row&)>> outputs;
};

class Operator {
 public:
  virtual ~Operator() = default;
  virtual void OnRow(int side, const Row& row) = 0;
  // Closes what ends at or before t (t only grows; InfiniteFuture closes everything).
  virtual void AdvanceTo(absl::Time) {}
  virtual void Save(std::string*) const {}
  virtual bool Load(std::string_view in) { return in.empty(); }
  virtual std::string Explain() const = 0;

  std::string pump;  // the pump's name (for error_stream and Explain)
  Engine* engine = nullptr;
  StreamNode* target = nullptr;
  std::vector<StreamNode*> inputs;
  Row out;  // Emit's buffer (per operator: emits nest as rows flow downstream)
};

class Engine {
 public:
  // Casts `values` (in the target's column order) into the target's types and inserts the row.
  // A value that does not convert sends the row to error_stream instead.
  void Emit(Operator& op, absl::Time rowtime, std::vector<Value>& values);
  void Insert(StreamNode& stream, const Row& row);
  // A row that failed: to error_stream with the reason.
  void Error(std::string_view pump, std::string_view name, std::string_view message,
             absl::Time rowtime, std::string_view data);
  void AdvanceTo(absl::Time t);

  absl::Time now() const { return now_; }
  // Sets the time a restored snapshot had reached (the operators hold its state already).
  void RestoreNow(absl::Time t) { now_ = t; }
  StreamNode* error_stream = nullptr;
  std::vector<std::unique_ptr<StreamNode>> streams;
  std::vector<std::unique_ptr<Operator>> operators;  // in the stream graph's order
  uint64_t error_rows = 0;

  StreamNode* Find(std::string_view name) const;

 private:
  absl::Time now_ = absl::InfinitePast();
  Row error_row_;
};

// A loaded reference table.
struct ReferenceRows {
  std::string name;
  Schema schema;
  std::vector<Row> rows;
};

// Plans every statement of `script` into `engine`: its streams (CREATE STREAM, the inputs' and
// error_stream already there) and one operator per pump (plus hidden ones for table functions
// and subqueries), ordered so that a stream's writers come before its readers. Errors:
// kCodeValidation naming the line, column and problem.
namespace ast {
struct Script;
}
absl::Status PlanScript(const ast::Script& script, const std::vector<ReferenceRows>& references,
                        uint64_t seed, Engine* engine);

// The error_stream's columns (as KDA's): ERROR_TIME, ERROR_LEVEL, ERROR_NAME, MESSAGE,
// DATA_ROWTIME, DATA_ROW, PUMP_NAME.
Schema ErrorStreamSchema();

}  // namespace rill::sql

#endif  // RILL_SQL_ENGINE_H_
