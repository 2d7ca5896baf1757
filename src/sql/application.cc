#include "rill/sql/application.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "rill/base/error.h"
#include "rill/base/hash_key.h"
#include "rill/base/internal/byte_codec.h"
#include "rill/base/md5.h"
#include "sql/engine.h"
#include "sql/parser.h"
#include "sql/record_decoder.h"
#include "sql/record_encoder.h"
#include "sql/reference_table.h"

namespace rill::sql {

// ---------------------------------------------------------------------------------------------
// Sources

std::unique_ptr<RecordSource> FromSubscription(StreamApi& stream, StreamSubscriberOptions options) {
  return rill::FromSubscription<std::string_view>(stream, std::move(options), [](const Record& r) {
    return std::optional<std::string_view>(r.data);
  });
}

std::unique_ptr<RecordSource> FromConsumerGroup(ConsumerGroup& group, std::string worker_id) {
  return rill::FromConsumerGroup<std::string_view>(
      group, std::move(worker_id),
      [](const Record& r) { return std::optional<std::string_view>(r.data); });
}

MemorySource::MemorySource(size_t batch_size) : batch_size_(std::max<size_t>(1, batch_size)) {}

void MemorySource::Add(std::string data, absl::Time arrival_time, ShardId shard) {
  data_.push_back(std::move(data));
  arrival_.push_back(arrival_time);
  shards_.push_back(shard);
}

absl::StatusOr<std::optional<SourceBatch<std::string_view>>> MemorySource::Next() {
  if (next_ >= data_.size()) return std::optional<SourceBatch<std::string_view>>();
  batch_.clear();
  const ShardId shard = shards_[next_];
  while (next_ < data_.size() && shards_[next_] == shard && batch_.size() < batch_size_) {
    batch_.push_back({std::string_view(data_[next_]), arrival_[next_]});
    ++next_;
  }
  return std::optional<SourceBatch<std::string_view>>(
      SourceBatch<std::string_view>{shard, absl::MakeConstSpan(batch_), false});
}

bool MemorySource::exhausted() const { return next_ >= data_.size(); }

void MemorySource::SavePosition(std::string* out) const {
  internal::PutArithmetic<uint64_t>(out, next_);
}

absl::Status MemorySource::RestorePosition(std::string_view saved) {
  internal::ByteReader r(saved);
  uint64_t next = 0;
  if (!r.Arithmetic(&next) || !r.AtEnd()) {
    return MakeError(ErrorCode::kInvalidArgument, "not a MemorySource position");
  }
  next_ = next;
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// The application

namespace {
constexpr uint8_t kSnapshotVersion = 1;
}

class Application::Impl {
 public:
  struct InputState {
    std::string name;
    std::unique_ptr<RecordSource> source;
    std::unique_ptr<RecordDecoder> decoder;
    StreamNode* stream = nullptr;
  };

  // An output to a rill stream. Each row's record has a deterministic id as its partition key
  // (the MD5 of the application's name, the output's stream and the row's ordinal on this
  // output), routed by an explicit hash key from partition_key_column (or the ROWTIME). A
  // restored application first reads what the destination accepted since the snapshot and skips
  // the rows whose ids it finds there: the stopped application had written them already.
  struct OutputState {
    Output* output = nullptr;
    int key_column = -1;
    uint64_t ordinal = 0;
    absl::flat_hash_set<std::string> written_since_snapshot;
    uint64_t duplicates_skipped = 0;
  };

  ApplicationOptions options;
  std::vector<std::unique_ptr<OutputState>> outputs;
  std::shared_ptr<Clock> default_clock;
  Clock* clock = nullptr;
  Engine engine;
  std::vector<InputState> inputs;
  std::vector<ReferenceRows> references;
  absl::Status failed;
  bool finished = false;
  bool started = false;
  absl::Time last_rowtime = absl::InfinitePast();
  ApplicationCounters counters;
  Row input_row;
  std::string encoded;
  std::string id_input;

  absl::Status Init() {
    clock = options.clock;
    if (clock == nullptr) {
      default_clock = SystemClock::Default();
      clock = default_clock.get();
    }
    if (options.inputs.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "an application needs at least one input");
    }
    // error_stream first, then the inputs' streams.
    engine.streams.push_back(std::make_unique<StreamNode>());
    engine.error_stream = engine.streams.back().get();
    engine.error_stream->name = "error_stream";
    engine.error_stream->schema = ErrorStreamSchema();
    std::set<std::string> names;
    for (Input& in : options.inputs) {
      if (in.source == nullptr) {
        return MakeError(ErrorCode::kInvalidArgument,
                         absl::StrCat("input \"", in.name_prefix, "\" has no source"));
      }
      if (in.name_prefix.empty()) {
        return MakeError(ErrorCode::kInvalidArgument, "an input's name_prefix must not be empty");
      }
      const std::string name = in.name_prefix + "_001";
      if (!names.insert(name).second) {
        return MakeError(ErrorCode::kInvalidArgument,
                         absl::StrCat("two inputs are named \"", name, "\""));
      }
      absl::StatusOr<std::unique_ptr<RecordDecoder>> decoder = RecordDecoder::Create(in.format);
      if (!decoder.ok()) return decoder.status();
      for (const RecordColumn& c : in.format.columns) {
        if (c.name == "ROWTIME" || c.name == "APPROXIMATE_ARRIVAL_TIME") {
          return MakeError(ErrorCode::kInvalidArgument,
                           absl::StrCat("input column \"", c.name, "\" is implicit"));
        }
      }
      engine.streams.push_back(std::make_unique<StreamNode>());
      StreamNode* node = engine.streams.back().get();
      node->name = name;
      node->input = true;
      node->schema = (*decoder)->schema();
      ColumnType ts;
      ts.type = SqlType::kTimestamp;
      node->schema.push_back(Column{"APPROXIMATE_ARRIVAL_TIME", ts});
      inputs.push_back(InputState{name, std::move(in.source), std::move(*decoder), node});
    }
    for (const ReferenceTable& t : options.reference_tables) {
      if (t.name.empty() || names.count(t.name) > 0) {
        return MakeError(
            ErrorCode::kInvalidArgument,
            absl::StrCat("reference table name \"", t.name, "\" is empty or already used"));
      }
      names.insert(t.name);
      absl::StatusOr<std::vector<std::vector<Value>>> rows = LoadReferenceTable(t.path, t.format);
      if (!rows.ok()) return rows.status();
      ReferenceRows ref;
      ref.name = t.name;
      ref.schema = SchemaOf(t.format);
      for (std::vector<Value>& values : *rows) {
        Row row;
        row.values = std::move(values);
        ref.rows.push_back(std::move(row));
      }
      references.push_back(std::move(ref));
    }
    absl::StatusOr<ast::Script> script = ParseScript(options.sql);
    if (!script.ok()) return script.status();
    if (script->statements.empty()) {
      return MakeError(ErrorCode::kCodeValidation, "the SQL has no statement");
    }
    absl::Status planned = PlanScript(*script, references, options.random_seed, &engine);
    if (!planned.ok()) return planned;
    for (Output& out : options.outputs) {
      StreamNode* node = engine.Find(out.stream);
      if (node == nullptr || node->hidden) {
        return MakeError(
            ErrorCode::kInvalidArgument,
            absl::StrCat("output names no in-application stream: \"", out.stream, "\""));
      }
      if ((out.callback == nullptr) == (out.destination == nullptr)) {
        return MakeError(ErrorCode::kInvalidArgument,
                         absl::StrCat("output for \"", out.stream,
                                      "\" needs exactly one of callback and destination"));
      }
      int key_column = -1;
      if (!out.partition_key_column.empty()) {
        for (size_t i = 0; i < node->schema.size(); ++i) {
          if (node->schema[i].name == out.partition_key_column) key_column = static_cast<int>(i);
        }
        if (key_column < 0) {
          return MakeError(ErrorCode::kInvalidArgument,
                           absl::StrCat("stream \"", out.stream, "\" has no column \"",
                                        out.partition_key_column, "\""));
        }
      }
      auto state = std::make_unique<OutputState>();
      state->output = &out;
      state->key_column = key_column;
      OutputState* o = state.get();
      outputs.push_back(std::move(state));
      node->outputs.push_back([this, o](const StreamNode& s, const Row& row) {
        if (!failed.ok()) return;
        absl::Status st = o->output->callback
                              ? o->output->callback(OutputRow{s.name, s.schema, row})
                              : PutToStream(*o, s, row);
        if (!st.ok()) {
          failed = st;
          return;
        }
        ++counters.rows_out;  // delivered: counted once the output took it
      });
    }
    return absl::OkStatus();
  }

  absl::Status PutToStream(OutputState& o, const StreamNode& s, const Row& row) {
    StreamApi& destination = *o.output->destination;
    id_input.clear();
    id_input.append(options.name);
    id_input.push_back('\0');
    id_input.append(s.name);
    id_input.push_back('\0');
    internal::PutArithmetic<uint64_t>(&id_input, o.ordinal++);
    const std::string id = Md5Hex(Md5(id_input));
    if (!o.written_since_snapshot.empty() && o.written_since_snapshot.contains(id)) {
      ++o.duplicates_skipped;
      return absl::OkStatus();
    }
    encoded.clear();
    if (o.output->format == RecordFormatType::kCsv) {
      EncodeCsvRow(s.schema, row, &encoded);
    } else {
      EncodeJsonRow(s.schema, row, &encoded);
    }
    const std::string key = o.key_column >= 0 ? row.values[o.key_column].ToString()
                                              : absl::StrCat(absl::ToUnixMicros(row.rowtime));
    PutOptions put;
    put.explicit_hash_key = HashKey::FromPartitionKey(key);
    for (int attempt = 0;; ++attempt) {
      absl::StatusOr<PutRecordResult> r = destination.PutRecord(id, encoded, put);
      if (r.ok()) return absl::OkStatus();
      if (GetErrorCode(r.status()) != ErrorCode::kProvisionedThroughputExceeded || attempt >= 50) {
        return r.status();
      }
      // Throttled: back off on the destination's clock (a SimulatedClock moves instead).
      destination.clock()->SleepFor(absl::Milliseconds(std::min(100, 1 << std::min(attempt, 7))));
    }
  }

  absl::Status ReadWrittenSince(OutputState& o, absl::Time since) {
    StreamApi& stream = *o.output->destination;
    o.written_since_snapshot.clear();
    absl::StatusOr<std::vector<ShardDescription>> shards = stream.ListShards();
    if (!shards.ok()) return shards.status();
    for (const ShardDescription& shard : *shards) {
      absl::StatusOr<ShardIterator> it =
          stream.GetShardIterator(shard.shard_id, StartingPosition::AtTimestamp(since));
      if (!it.ok()) return it.status();
      std::optional<ShardIterator> next = *it;
      while (next) {
        absl::StatusOr<GetRecordsResult> batch = stream.GetRecords(*next);
        if (!batch.ok()) return batch.status();
        for (const rill::Record& r : batch->records) {
          o.written_since_snapshot.insert(std::string(r.partition_key));
        }
        if (batch->records.empty() && batch->millis_behind_latest == 0) break;
        next = batch->next_shard_iterator;
      }
    }
    return absl::OkStatus();
  }

  // Maps one record to rows and runs them through the pumps.
  void Record(InputState& in, std::string_view data, absl::Time arrival) {
    ++counters.records_in;
    const absl::Time rowtime = std::max(last_rowtime, arrival);
    in.decoder->Decode(
        data,
        [&](std::vector<Value>& values) {
          ++counters.rows_in;
          last_rowtime = rowtime;
          engine.AdvanceTo(rowtime);
          input_row.rowtime = rowtime;
          input_row.values.resize(values.size() + 1);
          for (size_t i = 0; i < values.size(); ++i) std::swap(input_row.values[i], values[i]);
          input_row.values.back() = Value::Timestamp(arrival);
          engine.Insert(*in.stream, input_row);
        },
        [&](std::string_view reason) {
          engine.Error(in.name, "Type_conversion_error", reason, rowtime, data);
        });
  }

  absl::Status Poll(int max_batches) {
    if (!failed.ok()) return failed;
    if (finished) return MakeError(ErrorCode::kResourceInUse, "the application has finished");
    started = true;
    int batches = 0;
    bool read_any = true;
    while (batches < max_batches && read_any) {
      read_any = false;
      for (InputState& in : inputs) {
        if (batches >= max_batches) break;
        absl::StatusOr<std::optional<SourceBatch<std::string_view>>> batch = in.source->Next();
        if (!batch.ok()) return batch.status();
        if (!*batch) continue;
        ++batches;
        read_any = true;
        for (const SourceRecord<std::string_view>& r : (*batch)->records) {
          Record(in, r.value, r.arrival_time);
          if (!failed.ok()) return failed;
        }
      }
    }
    bool caught_up = true;
    for (const InputState& in : inputs) caught_up &= in.source->caught_up();
    if (caught_up && !read_any) {
      // ROWTIME moves to the clock, for the rows to come too: one whose arrival is earlier (put
      // a moment before, read only now) gets this ROWTIME rather than one below the windows just
      // closed, where it would be late and dropped without a trace.
      const absl::Time now = clock->Now();
      engine.AdvanceTo(now);
      last_rowtime = std::max(last_rowtime, now);
      if (!failed.ok()) return failed;
    }
    counters.error_rows = engine.error_rows;
    return absl::OkStatus();
  }

  absl::Status Finish() {
    if (!failed.ok()) return failed;
    if (finished) return absl::OkStatus();
    started = true;
    for (;;) {
      bool read_any = false;
      for (InputState& in : inputs) {
        absl::StatusOr<std::optional<SourceBatch<std::string_view>>> batch = in.source->Next();
        if (!batch.ok()) return batch.status();
        if (!*batch) continue;
        read_any = true;
        for (const SourceRecord<std::string_view>& r : (*batch)->records) {
          Record(in, r.value, r.arrival_time);
          if (!failed.ok()) return failed;
        }
      }
      if (!read_any) break;
    }
    engine.AdvanceTo(absl::InfiniteFuture());
    finished = true;
    counters.error_rows = engine.error_rows;
    return failed;
  }

  std::string Snapshot() {
    std::string out;
    internal::PutU8(&out, kSnapshotVersion);
    internal::PutArithmetic<int64_t>(
        &out, last_rowtime == absl::InfinitePast() ? INT64_MIN : absl::ToUnixMicros(last_rowtime));
    internal::PutArithmetic<int64_t>(
        &out, engine.now() == absl::InfinitePast() ? INT64_MIN : absl::ToUnixMicros(engine.now()));
    internal::PutArithmetic<uint64_t>(&out, counters.records_in);
    internal::PutArithmetic<uint64_t>(&out, counters.rows_in);
    internal::PutArithmetic<uint64_t>(&out, engine.error_rows);
    internal::PutArithmetic<uint64_t>(&out, counters.rows_out);
    std::string part;
    auto blob = [&](const std::string& b) {
      internal::PutArithmetic<uint64_t>(&out, b.size());
      out.append(b);
    };
    internal::PutArithmetic<uint32_t>(&out, static_cast<uint32_t>(inputs.size()));
    for (const InputState& in : inputs) {
      part.clear();
      in.source->SavePosition(&part);
      blob(part);
    }
    internal::PutArithmetic<uint32_t>(&out, static_cast<uint32_t>(engine.operators.size()));
    for (const auto& op : engine.operators) {
      part.clear();
      op->Save(&part);
      blob(part);
    }
    internal::PutArithmetic<uint32_t>(&out, static_cast<uint32_t>(outputs.size()));
    for (const auto& o : outputs) {
      internal::PutArithmetic<uint64_t>(&out, o->ordinal);
      const absl::Time now = o->output->destination != nullptr
                                 ? o->output->destination->clock()->Now()
                                 : absl::UnixEpoch();
      internal::PutArithmetic<int64_t>(&out, absl::ToUnixMicros(now));
      // Input before this snapshot is never replayed: the ids a restore found are done with.
      o->written_since_snapshot.clear();
    }
    return out;
  }

  absl::Status Restore(std::string_view snapshot) {
    auto bad = [](std::string_view why) {
      return MakeError(ErrorCode::kInvalidArgument,
                       absl::StrCat("not a snapshot of this application: ", std::string(why)));
    };
    if (started) {
      return MakeError(ErrorCode::kResourceInUse, "Restore must come before the first Poll");
    }
    internal::ByteReader r(snapshot);
    uint8_t version = 0;
    int64_t last = 0, now = 0;
    ApplicationCounters c;
    uint64_t errors = 0;
    uint32_t n = 0;
    if (!r.U8(&version) || version != kSnapshotVersion || !r.Arithmetic(&last) ||
        !r.Arithmetic(&now) || !r.Arithmetic(&c.records_in) || !r.Arithmetic(&c.rows_in) ||
        !r.Arithmetic(&errors) || !r.Arithmetic(&c.rows_out) || !r.Arithmetic(&n) ||
        n != inputs.size()) {
      return bad("header");
    }
    std::vector<std::string_view> positions, states;
    auto read_blob = [&](std::string_view* b) {
      uint64_t size = 0;
      return r.Arithmetic(&size) && size <= r.remaining() && r.Bytes(size, b);
    };
    for (uint32_t i = 0; i < n; ++i) {
      std::string_view b;
      if (!read_blob(&b)) return bad("input position");
      positions.push_back(b);
    }
    if (!r.Arithmetic(&n) || n != engine.operators.size()) return bad("pump count");
    for (uint32_t i = 0; i < n; ++i) {
      std::string_view b;
      if (!read_blob(&b)) return bad("pump state");
      states.push_back(b);
    }
    std::vector<std::pair<uint64_t, int64_t>> output_positions;
    if (!r.Arithmetic(&n) || n != outputs.size()) return bad("output count");
    for (uint32_t i = 0; i < n; ++i) {
      uint64_t ordinal = 0;
      int64_t since = 0;
      if (!r.Arithmetic(&ordinal) || !r.Arithmetic(&since)) return bad("output position");
      output_positions.emplace_back(ordinal, since);
    }
    if (!r.AtEnd()) return bad("trailing bytes");
    for (size_t i = 0; i < engine.operators.size(); ++i) {
      if (!engine.operators[i]->Load(states[i])) {
        return bad(absl::StrCat("state of pump \"", engine.operators[i]->pump, "\""));
      }
    }
    for (size_t i = 0; i < inputs.size(); ++i) {
      absl::Status s = inputs[i].source->RestorePosition(positions[i]);
      if (!s.ok()) return s;
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      outputs[i]->ordinal = output_positions[i].first;
      if (outputs[i]->output->destination != nullptr) {
        absl::Status s =
            ReadWrittenSince(*outputs[i], absl::FromUnixMicros(output_positions[i].second));
        if (!s.ok()) return s;
      }
    }
    last_rowtime = last == INT64_MIN ? absl::InfinitePast() : absl::FromUnixMicros(last);
    // Operators already hold their windows; move the engine's time without closing anything.
    if (now != INT64_MIN) engine.RestoreNow(absl::FromUnixMicros(now));
    counters = c;
    engine.error_rows = errors;
    counters.error_rows = errors;
    return absl::OkStatus();
  }
};

Application::Application(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Application::~Application() = default;

absl::StatusOr<std::unique_ptr<Application>> Application::Create(ApplicationOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  absl::Status s = impl->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<Application>(new Application(std::move(impl)));
}

absl::Status Application::Poll(int max_batches) { return impl_->Poll(std::max(1, max_batches)); }
absl::Status Application::Finish() { return impl_->Finish(); }

std::string Application::Explain() const {
  std::string out;
  std::string pump;
  for (const auto& op : impl_->engine.operators) {
    if (op->pump != pump) {
      pump = op->pump;
      absl::StrAppend(&out, "PUMP \"", pump, "\"\n");
    }
    absl::StrAppend(&out, "  ", op->Explain());
  }
  return out;
}

std::string Application::Snapshot() { return impl_->Snapshot(); }
absl::Status Application::Restore(std::string_view snapshot) { return impl_->Restore(snapshot); }

absl::Status Application::Commit() {
  // After a failed output, rows of what was read since were not all written: no checkpoint may
  // pass them.
  if (!impl_->failed.ok()) return impl_->failed;
  for (Impl::InputState& in : impl_->inputs) {
    absl::Status s = in.source->Commit();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

const Schema* Application::StreamSchema(std::string_view name) const {
  const StreamNode* s = impl_->engine.Find(name);
  return s == nullptr || s->hidden ? nullptr : &s->schema;
}

bool Application::caught_up() const {
  for (const Impl::InputState& in : impl_->inputs) {
    if (!in.source->caught_up()) return false;
  }
  return true;
}

ApplicationCounters Application::counters() const {
  ApplicationCounters c = impl_->counters;
  c.error_rows = impl_->engine.error_rows;
  return c;
}

}  // namespace rill::sql
