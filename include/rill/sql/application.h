// rill::sql::Application: a streaming SQL application in the dialect of Kinesis Data Analytics
// for SQL, over rill streams.
//
//   rill::sql::ApplicationOptions options;
//   options.sql = R"(
//     CREATE OR REPLACE STREAM "DEST" ("level" INTEGER, "purchases" BIGINT);
//     CREATE OR REPLACE PUMP "P" AS INSERT INTO "DEST"
//       SELECT STREAM "level", COUNT(*) FROM "SOURCE_SQL_STREAM_001"
//       WHERE "kind" = 'purchase'
//       GROUP BY "level", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '5' MINUTE);)";
//   rill::sql::Input input;                            // -> SOURCE_SQL_STREAM_001
//   input.format.columns = {{"kind", {SqlType::kVarchar, 16}}, {"level", {SqlType::kInteger}}};
//   input.source = rill::sql::FromSubscription(stream, {.consumer_name = "sql"});
//   options.inputs.push_back(std::move(input));
//   options.outputs.push_back({.stream = "DEST", .callback = [](const OutputRow& r) {...}});
//   auto app = rill::sql::Application::Create(std::move(options));   // kCodeValidation for bad SQL
//   app.value()->Poll();                                // reads what is there, runs the pumps
//
// Model (reference §11). An input maps records to rows of the in-application stream
// `<name_prefix>_001` with a JSON or CSV mapping (record_format.h). Rows that do not convert go to
// `error_stream` with the reason: nothing is dropped silently. CREATE STREAM declares an
// in-application stream; a pump (CREATE PUMP ... AS INSERT INTO s SELECT STREAM ...) runs one
// query continuously from the streams it reads into s. Outputs attach callbacks or rill streams
// to in-application streams (error_stream included).
//
// ROWTIME. Each row of an input gets ROWTIME = its record's approximate arrival time, raised to
// the previous row's ROWTIME if earlier, so it is monotonic and a replay gives the same ROWTIMEs
// (KDA stamps the wall time of entry instead; see docs/sql.md). APPROXIMATE_ARRIVAL_TIME is the
// record's arrival time. A pump's output keeps its input row's ROWTIME; a window's result has
// its window's end. Windows close when ROWTIME passes their end: driven by arriving rows and, when
// the inputs are caught up, by the application's clock (a SimulatedClock drives it in tests).
//
// Supported queries, one per pump: projections and WHERE; tumbling GROUP BY (a STEP or FLOOR of
// ROWTIME among the GROUP BY expressions; others may group by event time); sliding windows (OVER
// w with RANGE INTERVAL or ROWS n PRECEDING, LAG); WINDOWED BY STAGGER; a join with a reference
// table (inner or LEFT OUTER); a join of two streams over windows; TOP_K_ITEMS_TUMBLING and
// RANDOM_CUT_FOREST[_WITH_EXPLANATION] in FROM TABLE(...). Explain() prints each pump's plan.
//
// Thread safety: an Application is driven by one thread at a time (Poll, Finish, Snapshot,
// Restore are not synchronised); callbacks run on that thread and must not call back into it.
// Allocation: rows are decoded into reused buffers and expressions evaluate into reused values;
// window state, new keys and emitted results allocate.
#ifndef RILL_SQL_APPLICATION_H_
#define RILL_SQL_APPLICATION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rill/base/clock.h"
#include "rill/consume/consumer_group.h"
#include "rill/consume/stream_subscriber.h"
#include "rill/process/source.h"
#include "rill/sql/record_format.h"
#include "rill/sql/value.h"
#include "rill/stream/stream_api.h"

namespace rill::sql {

// Records as the application reads them: each record's data (valid until the source's next
// Next()) and its arrival time.
using RecordSource = rill::Source<std::string_view>;

// A stream read through enhanced fan-out (options.consumer_name must be registered), or through
// a consumer-group worker (checkpoints move when the application commits a snapshot). The stream
// or group is borrowed: it must outlive the application.
std::unique_ptr<RecordSource> FromSubscription(StreamApi& stream, StreamSubscriberOptions options);
std::unique_ptr<RecordSource> FromConsumerGroup(ConsumerGroup& group, std::string worker_id);

// In-memory records, for tests and simulations: records are copied in and delivered in the order
// added, in batches of at most batch_size per shard run.
class MemorySource final : public RecordSource {
 public:
  explicit MemorySource(size_t batch_size = 1024);
  void Add(std::string data, absl::Time arrival_time, ShardId shard = ShardId(0));

  absl::StatusOr<std::optional<SourceBatch<std::string_view>>> Next() override;
  bool exhausted() const override;
  void SavePosition(std::string* out) const override;
  absl::Status RestorePosition(std::string_view saved) override;

 private:
  size_t batch_size_;
  std::vector<std::string> data_;
  std::vector<absl::Time> arrival_;
  std::vector<ShardId> shards_;
  size_t next_ = 0;
  std::vector<SourceRecord<std::string_view>> batch_;
};

struct Input {
  // The in-application stream is "<name_prefix>_001". Default: SOURCE_SQL_STREAM.
  std::string name_prefix = "SOURCE_SQL_STREAM";
  RecordFormat format;
  std::unique_ptr<RecordSource> source;
};

// A reference table (KDA's S3 reference data source): a local CSV or JSON-lines file loaded
// whole at Create. Its name is used in SQL like a stream's.
struct ReferenceTable {
  std::string name;
  std::string path;
  RecordFormat format;
};

// One row of an in-application stream as outputs see it.
struct OutputRow {
  std::string_view stream;
  const Schema& schema;
  const Row& row;
};

struct Output {
  // The in-application stream (exact name), or "error_stream".
  std::string stream;
  // Either a callback (an error stops the application: Poll returns it from then on) ...
  std::function<absl::Status(const OutputRow&)> callback;
  // ... or a rill stream (borrowed), which receives each row as one record in `format` (JSON:
  // an object by column name; CSV: one line), routed by the hash of partition_key_column's text
  // (default: the row's ROWTIME in microseconds). The record's partition key is the row's id
  // (the MD5 of the application's name, the stream and the row's ordinal on this output), so
  // that an application restored from a snapshot writes no row twice: it skips the rows the
  // stopped one had written after the snapshot (as a pipeline's StreamSink does). A put refused
  // for throughput is retried 50 times with backoff on the destination's clock.
  StreamApi* destination = nullptr;
  RecordFormatType format = RecordFormatType::kJson;
  std::string partition_key_column;
};

struct ApplicationOptions {
  std::string name = "rill-sql";
  // One or more statements: CREATE STREAM and CREATE PUMP.
  std::string sql;
  // At least one. Names must differ.
  std::vector<Input> inputs;
  std::vector<ReferenceTable> reference_tables;
  std::vector<Output> outputs;
  // Default: the system clock. Borrowed.
  Clock* clock = nullptr;
  // Seed of RANDOM_CUT_FOREST's random numbers (fixed so that results repeat). Default: 42.
  uint64_t random_seed = 42;
};

struct ApplicationCounters {
  uint64_t records_in = 0;  // records read from inputs
  uint64_t rows_in = 0;     // rows they mapped to
  uint64_t error_rows = 0;  // rows sent to error_stream (mapping and run-time errors)
  uint64_t rows_out = 0;    // rows delivered to outputs
};

class Application {
 public:
  // Parses, checks and plans the SQL, loads the reference tables and checks the outputs.
  // Errors: kCodeValidation for SQL that does not compile (line, column, token or problem);
  // kInvalidArgument for bad options (no input, a bad format, an output naming no stream);
  // kResourceNotFound for a missing reference file.
  static absl::StatusOr<std::unique_ptr<Application>> Create(ApplicationOptions options);
  ~Application();

  // Reads at most max_batches batches from the inputs and runs every pump on their rows; when
  // the inputs are caught up, advances ROWTIME to the clock so that windows close. Returns the
  // first output callback's error, then that error from every later call.
  absl::Status Poll(int max_batches = 64);

  // For bounded inputs: reads everything, then closes every open window (as if ROWTIME reached
  // infinity). The application accepts no more input afterwards. For stream inputs, wait for
  // caught_up() first: a consumer-group worker that holds no lease yet has read nothing.
  absl::Status Finish();

  // Whether every input has delivered everything there is to read now (rill::Source::caught_up):
  // each shard read to its current end, for a consumer group under a lease this worker holds.
  bool caught_up() const;

  // Each pump's plan, one block per pump: the operator, its window, keys, aggregates, filters.
  std::string Explain() const;

  // A snapshot of the inputs' positions, ROWTIME and every pump's state (windows, sliding rows,
  // stagger windows, join buffers, forests). An application created with the same options and
  // given Restore(snapshot) before its first Poll produces exactly the rows the original would
  // have produced after the snapshot. Commit() then lets consumer-group inputs checkpoint there.
  // Not const: it also ends the deduplication a restore started (input before the snapshot is
  // never read again). After an output failed, Commit() returns that failure and moves no
  // checkpoint (rows of what was read since were not all written), and a snapshot taken since
  // must not be restored from.
  std::string Snapshot();
  absl::Status Restore(std::string_view snapshot);
  absl::Status Commit();

  // The schema of an in-application stream (nullptr if none).
  const Schema* StreamSchema(std::string_view name) const;
  ApplicationCounters counters() const;

  class Impl;

 private:
  explicit Application(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rill::sql

#endif  // RILL_SQL_APPLICATION_H_
