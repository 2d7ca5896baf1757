#include "deliver/postgres_destination.h"

#include <libpq-fe.h>

#include <algorithm>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/strings.h"
#include "deliver/json_path.h"
#include "rill/base/error.h"

namespace rill::deliver_internal {
namespace {

using internal::ToAbsl;

constexpr std::string_view kConnectionFailed = "PostgreSQL.ConnectionFailed";
constexpr std::string_view kCopyFailed = "PostgreSQL.CopyFailed";
constexpr std::string_view kDataError = "PostgreSQL.DataError";

// COPY data goes to libpq in pieces of about this size: few calls, bounded extra memory, and
// small enough that the server starts on the first rows while the next are extracted (with 1 MiB
// pieces a 5 MiB buffer made about three, and the server waited for the whole first one).
constexpr size_t kCopyChunkBytes = size_t{64} << 10;

// The first key of the delivery stream's advisory lock ("rill"), apart from an application's.
constexpr int kAdvisoryLockSpace = 0x72696c6c;

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

void IgnoreNotice(void*, const char*) {}

// libpq's messages end with a newline.
std::string Trimmed(const char* message) {
  std::string_view s = message != nullptr ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  return std::string(s);
}

bool IsDataError(std::string_view sqlstate) {
  return sqlstate.size() == 5 && (sqlstate.substr(0, 2) == "22" || sqlstate.substr(0, 2) == "23");
}

// Appends `text` in COPY's text format: backslash, tab, newline and carriage return escaped.
void AppendCopyText(std::string_view text, std::string& out) {
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const char* escape = nullptr;
    switch (c) {
      case '\\':
        escape = "\\\\";
        break;
      case '\t':
        escape = "\\t";
        break;
      case '\n':
        escape = "\\n";
        break;
      case '\r':
        escape = "\\r";
        break;
      default:
        continue;
    }
    out.append(text.data() + start, i - start);
    out.append(escape, 2);
    start = i + 1;
  }
  out.append(text.data() + start, text.size() - start);
}

// The line number of a COPY error's context ("COPY t, line 3, column a: ..."), 0 if none.
size_t CopyErrorLine(const PGresult* result) {
  const char* context = PQresultErrorField(result, PG_DIAG_CONTEXT);
  if (context == nullptr) return 0;
  std::string_view s = context;
  const size_t at = s.find(", line ");
  if (at == std::string_view::npos) return 0;
  s.remove_prefix(at + 7);
  size_t n = 0;
  size_t digits = 0;
  while (digits < s.size() && digits < 12 && s[digits] >= '0' && s[digits] <= '9') {
    n = n * 10 + static_cast<size_t>(s[digits] - '0');
    ++digits;
  }
  return n;
}

// "invalid input syntax for type integer: "x" (SQLSTATE 22P02)", with the detail if any.
std::string ServerMessage(const PGresult* result) {
  const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL);
  const char* sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  if (primary == nullptr) return Trimmed(PQresultErrorMessage(result));
  std::string out = primary;
  if (detail != nullptr) absl::StrAppend(&out, " ", detail);
  if (sqlstate != nullptr) absl::StrAppend(&out, " (SQLSTATE ", sqlstate, ")");
  return out;
}

class PostgresDestinationImpl final : public Destination {
 public:
  PostgresDestinationImpl(PostgresDestination options, std::string stream_name, std::string source)
      : options_(std::move(options)),
        stream_name_(std::move(stream_name)),
        source_(std::move(source)) {}
  ~PostgresDestinationImpl() override {
    if (conn_ != nullptr) PQfinish(conn_);
  }

  absl::Status Open() override;
  std::string_view metric_name() const override { return "PostgreSQL"; }
  std::string_view error_output_type() const override { return "postgresql-failed"; }
  absl::Duration retry_duration() const override { return options_.retry_duration; }
  DeliveryAttempt Deliver(const Batch& batch, int attempt) override;

 private:
  enum class Outcome { kOk, kDataError, kFailed };
  enum class Mode {
    kWhole,     // one COPY of every row
    kRowByRow,  // a savepoint per group of rows, narrowed down to the rows the table refuses
  };

  absl::Status Connect();
  bool EnsureConnected(DeliveryAttempt& result);
  absl::StatusOr<std::string> QuoteIdentifier(std::string_view name);
  absl::Status CheckCopyStatement();

  Outcome Transaction(const Batch& batch, Mode mode, DeliveryAttempt& result);
  Outcome ReadProgress(DeliveryAttempt& result);
  Outcome CopyRows(const Batch& batch, size_t begin, size_t end, DeliveryAttempt& result);
  Outcome CopyRowByRow(const Batch& batch, DeliveryAttempt& result);
  Outcome Commit(const Batch& batch, DeliveryAttempt& result);
  // Runs a statement whose result must be `expected`; else fills `result` (what: for the message).
  Outcome Exec(const char* sql, ExecStatusType expected, const char* what, DeliveryAttempt& result,
               Result* out = nullptr);
  bool PutCopyData();
  // Fills `result` with a retryable failure of `what` and rolls back what can be.
  void Fail(const char* what, const PGresult* server_result, DeliveryAttempt& result);
  void RollbackQuietly();

  // Appends the row of `record` to chunk_; false (reason_ set, chunk_ unchanged) for a record
  // that cannot be a row.
  bool AppendRow(const Batch& batch, const BatchRecord& record);

  const PostgresDestination options_;
  const std::string stream_name_;
  // Which incarnation of the source the progress is of (see MakePostgresDestination).
  const std::string source_;
  std::string source_literal_;
  PGconn* conn_ = nullptr;
  std::vector<JsonPath> paths_;

  // Built by Open().
  std::string copy_sql_;        // COPY <table> [(<columns>)] FROM STDIN [<options>]
  std::string begin_sql_;       // BEGIN; the advisory lock; the progress SELECT ... FOR UPDATE
  std::string stream_literal_;  // the stream name as an SQL string literal

  // Reused from batch to batch, so that a warm destination allocates nothing per record.
  JsonExtractor extractor_;
  std::vector<JsonValue> values_;
  std::string chunk_;                                         // COPY data not yet given to libpq
  std::vector<uint32_t> pending_;                             // records to COPY (indices)
  std::vector<uint32_t> sent_;                                // CopyRows' rows, as pending_ indices
  std::vector<std::pair<size_t, size_t>> ranges_;             // CopyRowByRow's work
  absl::flat_hash_map<uint32_t, SequenceNumber> progress_;    // shard index -> committed
  absl::flat_hash_map<uint32_t, SequenceNumber> batch_last_;  // shard index -> batch's last
  std::string sql_;
  std::string escaped_;
  std::string reason_;
  // The last COPY's data error: its message and the pending_ index of the row it names (or -1).
  std::string data_error_;
  size_t data_error_row_ = static_cast<size_t>(-1);
};

absl::Status PostgresDestinationImpl::Connect() {
  // client_encoding first: the conninfo's own setting, if any, wins (records are usually UTF-8
  // JSON; a pass-through table may want its rows read otherwise).
  const std::string application = "rill delivery stream " + stream_name_;
  const char* keywords[] = {"client_encoding", "fallback_application_name", "dbname", nullptr};
  const char* values[] = {"UTF8", application.c_str(), options_.conninfo.c_str(), nullptr};
  conn_ = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (conn_ == nullptr) {
    return MakeError(ErrorCode::kInternalFailure, "Could not connect to PostgreSQL: out of memory");
  }
  // Notices ("relation already exists, skipping") would go to stderr.
  PQsetNoticeProcessor(conn_, IgnoreNotice, nullptr);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return MakeError(ErrorCode::kInternalFailure, absl::StrCat("Could not connect to PostgreSQL: ",
                                                               Trimmed(PQerrorMessage(conn_))));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PostgresDestinationImpl::QuoteIdentifier(std::string_view name) {
  char* quoted = PQescapeIdentifier(conn_, name.data(), name.size());
  if (quoted == nullptr) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("Cannot quote the identifier \"", ToAbsl(name),
                                  "\": ", Trimmed(PQerrorMessage(conn_))));
  }
  std::string out = quoted;
  PQfreemem(quoted);
  return out;
}

absl::Status PostgresDestinationImpl::Open() {
  copy_sql_.clear();
  if (absl::Status valid = ValidatePostgresDestination(options_); !valid.ok()) return valid;
  paths_.clear();
  for (const std::string& path : options_.json_paths) {
    absl::StatusOr<JsonPath> parsed = JsonPath::Parse(path);
    if (!parsed.ok()) return parsed.status();
    paths_.push_back(*std::move(parsed));
  }
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  if (absl::Status connected = Connect(); !connected.ok()) return connected;

  std::string table;
  for (absl::string_view part : absl::StrSplit(options_.table, '.')) {
    absl::StatusOr<std::string> quoted = QuoteIdentifier(internal::FromAbsl(part));
    if (!quoted.ok()) return quoted.status();
    absl::StrAppend(&table, table.empty() ? "" : ".", *quoted);
  }

  {
    const char* params[] = {table.c_str()};
    Result exists(PQexecParams(conn_, "SELECT to_regclass($1) IS NOT NULL", 1, nullptr, params,
                               nullptr, nullptr, 0));
    if (PQresultStatus(exists.get()) != PGRES_TUPLES_OK) {
      return MakeError(ErrorCode::kInternalFailure,
                       absl::StrCat("Could not look up the table ", options_.table, ": ",
                                    Trimmed(PQerrorMessage(conn_))));
    }
    if (std::string_view(PQgetvalue(exists.get(), 0, 0)) != "t") {
      return MakeError(ErrorCode::kResourceNotFound,
                       absl::StrCat("The table ", table, " does not exist"));
    }
  }

  {
    Result created(PQexec(conn_,
                          "CREATE TABLE IF NOT EXISTS rill_delivery_progress ("
                          "delivery_stream text, source text, shard_id text, "
                          "sequence_number text, delivery_id text, "
                          "updated_at timestamptz DEFAULT now(), "
                          "PRIMARY KEY (delivery_stream, source, shard_id))"));
    if (PQresultStatus(created.get()) != PGRES_COMMAND_OK) {
      // Another delivery stream creating it at the same moment loses with one of these.
      const char* sqlstate = PQresultErrorField(created.get(), PG_DIAG_SQLSTATE);
      const bool raced = sqlstate != nullptr && (std::string_view(sqlstate) == "23505" ||
                                                 std::string_view(sqlstate) == "42P07");
      if (!raced) {
        return MakeError(ErrorCode::kInternalFailure,
                         absl::StrCat("Could not create rill_delivery_progress: ",
                                      ServerMessage(created.get())));
      }
    }
  }

  copy_sql_ = absl::StrCat("COPY ", table);
  if (!options_.columns.empty()) {
    copy_sql_ += " (";
    for (size_t i = 0; i < options_.columns.size(); ++i) {
      absl::StatusOr<std::string> quoted = QuoteIdentifier(options_.columns[i]);
      if (!quoted.ok()) return quoted.status();
      absl::StrAppend(&copy_sql_, i == 0 ? "" : ", ", *quoted);
    }
    copy_sql_ += ")";
  }
  copy_sql_ += " FROM STDIN";
  if (!options_.copy_options.empty()) absl::StrAppend(&copy_sql_, " ", options_.copy_options);

  char* literal = PQescapeLiteral(conn_, stream_name_.data(), stream_name_.size());
  if (literal == nullptr) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        absl::StrCat("Cannot quote the delivery stream name: ", Trimmed(PQerrorMessage(conn_))));
  }
  stream_literal_ = literal;
  PQfreemem(literal);
  literal = PQescapeLiteral(conn_, source_.data(), source_.size());
  if (literal == nullptr) {
    return MakeError(ErrorCode::kInvalidArgument,
                     absl::StrCat("Cannot quote the source: ", Trimmed(PQerrorMessage(conn_))));
  }
  source_literal_ = literal;
  PQfreemem(literal);
  // One round trip. The advisory lock makes two processes delivering for the same stream name
  // take turns, which FOR UPDATE alone would not for a shard's first row.
  begin_sql_ = absl::StrCat(
      "BEGIN; SELECT pg_advisory_xact_lock(", kAdvisoryLockSpace, ", hashtext(", stream_literal_,
      ")); SELECT shard_id, sequence_number FROM rill_delivery_progress WHERE delivery_stream = ",
      stream_literal_, " AND source = ", source_literal_, " FOR UPDATE");

  absl::Status checked = CheckCopyStatement();
  if (!checked.ok()) copy_sql_.clear();  // Deliver() refuses to run without a good Open()
  return checked;
}

// Starts the COPY and abandons it: the server checks the columns and options now rather than
// failing every batch later.
absl::Status PostgresDestinationImpl::CheckCopyStatement() {
  Result begin(PQexec(conn_, "BEGIN"));
  Result copy(PQexec(conn_, copy_sql_.c_str()));
  absl::Status status;
  if (PQresultStatus(copy.get()) == PGRES_COPY_IN) {
    PQputCopyEnd(conn_, "rill checks the COPY statement");
    for (int i = 0; i < 16; ++i) {
      Result r(PQgetResult(conn_));
      if (r == nullptr) break;
    }
  } else {
    const char* sqlstate = PQresultErrorField(copy.get(), PG_DIAG_SQLSTATE);
    const std::string_view state = sqlstate != nullptr ? sqlstate : "";
    const ErrorCode code = state == "42P01"   ? ErrorCode::kResourceNotFound
                           : state == "42501" ? ErrorCode::kAccessDenied
                           : state.empty()    ? ErrorCode::kInternalFailure
                                              : ErrorCode::kInvalidArgument;
    status = MakeError(
        code, absl::StrCat("PostgreSQL refuses `", copy_sql_, "`: ", ServerMessage(copy.get())));
  }
  Result rollback(PQexec(conn_, "ROLLBACK"));
  return status;
}

// PQreset: the same connection reconnects with the same parameters (and notice processor).
bool PostgresDestinationImpl::EnsureConnected(DeliveryAttempt& result) {
  if (PQstatus(conn_) != CONNECTION_OK) PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    result = DeliveryAttempt::Retryable(
        std::string(kConnectionFailed),
        absl::StrCat("Could not connect to PostgreSQL: ", Trimmed(PQerrorMessage(conn_))));
    return false;
  }
  return true;
}

DeliveryAttempt PostgresDestinationImpl::Deliver(const Batch& batch, int /*attempt*/) {
  DeliveryAttempt result;
  if (conn_ == nullptr || copy_sql_.empty()) {
    // Open() did not succeed: nothing is known about the table.
    return DeliveryAttempt::Retryable(std::string(kConnectionFailed),
                                      "The PostgreSQL destination is not open");
  }
  const bool was_connected = PQstatus(conn_) == CONNECTION_OK;
  if (!EnsureConnected(result)) return result;
  Outcome outcome = Transaction(batch, Mode::kWhole, result);
  if (outcome == Outcome::kFailed && was_connected && PQstatus(conn_) == CONNECTION_BAD) {
    // An idle connection that died (a server restart) is only found by using it: reconnect now
    // rather than after a backoff.
    result = DeliveryAttempt{};
    if (!EnsureConnected(result)) return result;
    outcome = Transaction(batch, Mode::kWhole, result);
  }
  if (outcome == Outcome::kDataError) outcome = Transaction(batch, Mode::kRowByRow, result);
  if (outcome != Outcome::kOk) {
    result.rejected.clear();
    if (outcome == Outcome::kDataError) {
      // Only a data error the row-by-row pass could not pin on a row (at COMMIT, say).
      result = DeliveryAttempt::Retryable(std::string(kCopyFailed), data_error_);
    }
    return result;
  }
  if (!result.rejected.empty()) {
    std::sort(result.rejected.begin(), result.rejected.end());
    result.rejected_error_code = std::string(kDataError);
  }
  return result;
}

PostgresDestinationImpl::Outcome PostgresDestinationImpl::Transaction(const Batch& batch, Mode mode,
                                                                      DeliveryAttempt& result) {
  result.rejected.clear();
  if (Outcome read = ReadProgress(result); read != Outcome::kOk) return read;

  // The records above their shard's progress, and each shard's last sequence number.
  pending_.clear();
  batch_last_.clear();
  for (size_t i = 0; i < batch.records.size(); ++i) {
    const BatchRecord& r = batch.records[i];
    auto [last, inserted] = batch_last_.try_emplace(r.shard.index(), r.sequence_number);
    if (!inserted && r.sequence_number > last->second) last->second = r.sequence_number;
    const auto done = progress_.find(r.shard.index());
    if (done != progress_.end() && r.sequence_number <= done->second) continue;
    pending_.push_back(static_cast<uint32_t>(i));
  }

  if (!pending_.empty()) {
    Outcome copied = Outcome::kOk;
    if (mode == Mode::kWhole) {
      copied = CopyRows(batch, 0, pending_.size(), result);
      if (copied == Outcome::kDataError) RollbackQuietly();
    } else {
      copied = CopyRowByRow(batch, result);
    }
    if (copied != Outcome::kOk) return copied;
  }
  return Commit(batch, result);
}

PostgresDestinationImpl::Outcome PostgresDestinationImpl::ReadProgress(DeliveryAttempt& result) {
  Result progress;
  if (Outcome o = Exec(begin_sql_.c_str(), PGRES_TUPLES_OK, "reading rill_delivery_progress",
                       result, &progress);
      o != Outcome::kOk) {
    return o;
  }
  progress_.clear();
  const int rows = PQntuples(progress.get());
  for (int i = 0; i < rows; ++i) {
    const std::string_view shard_text = PQgetvalue(progress.get(), i, 0);
    const std::string_view sequence_text = PQgetvalue(progress.get(), i, 1);
    absl::StatusOr<ShardId> shard = ShardId::Parse(shard_text);
    absl::StatusOr<SequenceNumber> sequence = SequenceNumber::Parse(sequence_text);
    if (!shard.ok() || !sequence.ok()) {
      // Someone edited the table: guessing could write rows twice or lose them.
      result = DeliveryAttempt::Retryable(
          std::string(kCopyFailed),
          absl::StrCat("rill_delivery_progress holds a malformed row for delivery stream ",
                       stream_name_, ": shard_id '", ToAbsl(shard_text), "', sequence_number '",
                       ToAbsl(sequence_text), "'"));
      RollbackQuietly();
      return Outcome::kFailed;
    }
    progress_[shard->index()] = *sequence;
  }
  return Outcome::kOk;
}

bool PostgresDestinationImpl::AppendRow(const Batch& batch, const BatchRecord& record) {
  const std::string_view data = batch.data(record);
  if (options_.columns.empty()) {
    chunk_.append(data);
    if (data.empty() || data.back() != '\n') chunk_.push_back('\n');
    return true;
  }
  absl::Status extracted = extractor_.Extract(data, paths_, values_);
  if (!extracted.ok()) {
    reason_ = absl::StrCat("The record is not a JSON object: ", extracted.message());
    return false;
  }
  for (size_t i = 0; i < values_.size(); ++i) {
    if (i > 0) chunk_.push_back('\t');
    const JsonValue& v = values_[i];
    if (v.kind == JsonValueKind::kMissing || v.kind == JsonValueKind::kNull) {
      chunk_.append("\\N");
    } else {
      AppendCopyText(v.text, chunk_);
    }
  }
  chunk_.push_back('\n');
  return true;
}

bool PostgresDestinationImpl::PutCopyData() {
  if (chunk_.empty()) return true;
  const bool ok = PQputCopyData(conn_, chunk_.data(), static_cast<int>(chunk_.size())) == 1;
  chunk_.clear();
  return ok;
}

// COPYs pending_[begin, end), handing rows to libpq kCopyChunkBytes at a time. Records that
// cannot be rows are added to result.rejected (and removed again if the COPY fails: a retry of
// these rows finds them again). The COPY starts with the first good row, so a range of only
// rejected records sends nothing.
PostgresDestinationImpl::Outcome PostgresDestinationImpl::CopyRows(const Batch& batch, size_t begin,
                                                                   size_t end,
                                                                   DeliveryAttempt& result) {
  const size_t rejected_before = result.rejected.size();
  chunk_.clear();
  sent_.clear();
  bool started = false;
  bool put_ok = true;
  auto start = [&]() {
    Result copy(PQexec(conn_, copy_sql_.c_str()));
    if (PQresultStatus(copy.get()) == PGRES_COPY_IN) {
      started = true;
      return true;
    }
    result.rejected.resize(rejected_before);
    Fail("starting the COPY", copy.get(), result);
    return false;
  };
  for (size_t k = begin; k < end && put_ok; ++k) {
    const uint32_t index = pending_[k];
    const size_t size_before = chunk_.size();
    if (!AppendRow(batch, batch.records[index])) {
      chunk_.resize(size_before);
      result.rejected.emplace_back(index, reason_);
      continue;
    }
    sent_.push_back(static_cast<uint32_t>(k));
    if (chunk_.size() >= kCopyChunkBytes) {
      if (!started && !start()) return Outcome::kFailed;
      put_ok = PutCopyData();
    }
  }
  if (sent_.empty()) return Outcome::kOk;
  if (!started && !start()) return Outcome::kFailed;
  // After a failed put libpq may have seen the server's error (the server ends a COPY at its
  // first bad row): the results tell which.
  if (put_ok) put_ok = PutCopyData();
  if (put_ok) put_ok = PQputCopyEnd(conn_, nullptr) == 1;
  Result error;
  for (int guard = 0; guard < 64; ++guard) {
    Result r(PQgetResult(conn_));
    if (r == nullptr) break;
    const ExecStatusType status = PQresultStatus(r.get());
    if (status == PGRES_COPY_IN) {
      if (PQputCopyEnd(conn_, "rill abandons the COPY") != 1) break;
      continue;
    }
    if (status != PGRES_COMMAND_OK && error == nullptr) error = std::move(r);
  }
  if (error == nullptr && put_ok && PQstatus(conn_) == CONNECTION_OK) return Outcome::kOk;

  result.rejected.resize(rejected_before);
  const char* sqlstate =
      error != nullptr ? PQresultErrorField(error.get(), PG_DIAG_SQLSTATE) : nullptr;
  if (sqlstate != nullptr && IsDataError(sqlstate) && PQstatus(conn_) == CONNECTION_OK) {
    data_error_ = ServerMessage(error.get());
    const size_t line = CopyErrorLine(error.get());
    data_error_row_ = line >= 1 && line <= sent_.size() ? sent_[line - 1] : static_cast<size_t>(-1);
    return Outcome::kDataError;
  }
  Fail("during the COPY", error.get(), result);
  return Outcome::kFailed;
}

// The batch again, a savepoint per group: a group the table refuses is rolled back to its
// savepoint and split (around the row the server named, else in halves) until each refused
// row stands alone and is rejected. Every other row commits.
PostgresDestinationImpl::Outcome PostgresDestinationImpl::CopyRowByRow(const Batch& batch,
                                                                       DeliveryAttempt& result) {
  // Deferred constraints would otherwise fail at COMMIT, past every savepoint.
  if (Outcome o =
          Exec("SET CONSTRAINTS ALL IMMEDIATE", PGRES_COMMAND_OK, "setting constraints", result);
      o != Outcome::kOk) {
    return o;
  }
  // The whole pass's COPY failed already: start from its split rather than repeat it.
  ranges_.clear();
  const size_t named_first = data_error_row_;
  if (named_first < pending_.size()) {
    if (named_first + 1 < pending_.size()) ranges_.emplace_back(named_first + 1, pending_.size());
    ranges_.emplace_back(named_first, named_first + 1);
    if (named_first > 0) ranges_.emplace_back(0, named_first);
  } else {
    ranges_.emplace_back(0, pending_.size());
  }
  while (!ranges_.empty()) {
    const auto [begin, end] = ranges_.back();
    ranges_.pop_back();
    if (Outcome o = Exec("SAVEPOINT rill_rows", PGRES_COMMAND_OK, "making a savepoint", result);
        o != Outcome::kOk) {
      return o;
    }
    const Outcome copied = CopyRows(batch, begin, end, result);
    if (copied == Outcome::kFailed) return copied;
    if (copied == Outcome::kOk) {
      if (Outcome o = Exec("RELEASE SAVEPOINT rill_rows", PGRES_COMMAND_OK, "releasing a savepoint",
                           result);
          o != Outcome::kOk) {
        return o;
      }
      continue;
    }
    if (Outcome o = Exec("ROLLBACK TO SAVEPOINT rill_rows", PGRES_COMMAND_OK,
                         "rolling back to a savepoint", result);
        o != Outcome::kOk) {
      return o;
    }
    if (end - begin == 1) {
      result.rejected.emplace_back(pending_[begin], data_error_);
      continue;
    }
    // Pushed last first: the ranges are copied in order. The named row, if right, passes alone
    // only if the server was wrong about it; either way each range is smaller than this one.
    const size_t named = data_error_row_;
    if (named >= begin && named < end) {
      if (named + 1 < end) ranges_.emplace_back(named + 1, end);
      ranges_.emplace_back(named, named + 1);
      if (named > begin) ranges_.emplace_back(begin, named);
    } else {
      const size_t middle = begin + (end - begin) / 2;
      ranges_.emplace_back(middle, end);
      ranges_.emplace_back(begin, middle);
    }
  }
  return Outcome::kOk;
}

PostgresDestinationImpl::Outcome PostgresDestinationImpl::Commit(const Batch& batch,
                                                                 DeliveryAttempt& result) {
  sql_.clear();
  bool first = true;
  for (const auto& [shard, last] : batch_last_) {
    const auto done = progress_.find(shard);
    if (done != progress_.end() && last <= done->second) continue;
    if (first) {
      escaped_.resize(batch.delivery_id.size() * 2 + 1);
      int error = 0;
      escaped_.resize(PQescapeStringConn(conn_, escaped_.data(), batch.delivery_id.data(),
                                         batch.delivery_id.size(), &error));
      sql_ =
          "INSERT INTO rill_delivery_progress (delivery_stream, source, shard_id, "
          "sequence_number, delivery_id) VALUES ";
    }
    absl::StrAppend(&sql_, first ? "" : ", ", "(", stream_literal_, ", ", source_literal_, ", '",
                    ShardId(shard).ToString(), "', '", last.ToString(), "', '", escaped_, "')");
    first = false;
  }
  if (!first) {
    sql_ +=
        " ON CONFLICT (delivery_stream, source, shard_id) DO UPDATE SET sequence_number = "
        "EXCLUDED.sequence_number, delivery_id = EXCLUDED.delivery_id, updated_at = now(); ";
  }
  sql_ += "COMMIT";
  Result committed(PQexec(conn_, sql_.c_str()));
  if (PQresultStatus(committed.get()) == PGRES_COMMAND_OK &&
      std::string_view(PQcmdStatus(committed.get())) == "COMMIT") {
    return Outcome::kOk;
  }
  // A deferred constraint fails here: the row-by-row pass checks constraints row by row.
  const char* sqlstate = PQresultErrorField(committed.get(), PG_DIAG_SQLSTATE);
  if (sqlstate != nullptr && IsDataError(sqlstate) && PQstatus(conn_) == CONNECTION_OK) {
    data_error_ = ServerMessage(committed.get());
    data_error_row_ = static_cast<size_t>(-1);
    RollbackQuietly();
    return Outcome::kDataError;
  }
  Fail("committing", committed.get(), result);
  return Outcome::kFailed;
}

PostgresDestinationImpl::Outcome PostgresDestinationImpl::Exec(const char* sql,
                                                               ExecStatusType expected,
                                                               const char* what,
                                                               DeliveryAttempt& result,
                                                               Result* out) {
  Result r(PQexec(conn_, sql));
  if (PQresultStatus(r.get()) != expected) {
    Fail(what, r.get(), result);
    return Outcome::kFailed;
  }
  if (out != nullptr) *out = std::move(r);
  return Outcome::kOk;
}

void PostgresDestinationImpl::Fail(const char* what, const PGresult* server_result,
                                   DeliveryAttempt& result) {
  result.rejected.clear();
  if (PQstatus(conn_) != CONNECTION_OK) {
    result = DeliveryAttempt::Retryable(std::string(kConnectionFailed),
                                        absl::StrCat("The connection to PostgreSQL failed ", what,
                                                     ": ", Trimmed(PQerrorMessage(conn_))));
    return;
  }
  const std::string message =
      server_result != nullptr && PQresultErrorField(server_result, PG_DIAG_SQLSTATE) != nullptr
          ? ServerMessage(server_result)
          : Trimmed(PQerrorMessage(conn_));
  result = DeliveryAttempt::Retryable(std::string(kCopyFailed),
                                      absl::StrCat("PostgreSQL failed ", what, ": ", message));
  RollbackQuietly();
}

void PostgresDestinationImpl::RollbackQuietly() {
  if (PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    Result r(PQexec(conn_, "ROLLBACK"));
  }
}

}  // namespace

absl::Status ValidatePostgresDestination(const PostgresDestination& options) {
  auto invalid = [](std::string message) {
    return MakeError(ErrorCode::kInvalidArgument, message);
  };
  if (options.conninfo.empty()) return invalid("PostgresDestination.conninfo must not be empty");
  if (options.table.empty()) return invalid("PostgresDestination.table must not be empty");
  const std::vector<absl::string_view> parts = absl::StrSplit(options.table, '.');
  if (parts.size() > 2 ||
      std::any_of(parts.begin(), parts.end(), [](absl::string_view p) { return p.empty(); })) {
    return invalid(absl::StrCat("PostgresDestination.table '", options.table,
                                "' must be a name or schema.name"));
  }
  if (options.columns.size() != options.json_paths.size()) {
    return invalid(absl::StrCat("PostgresDestination has ", options.columns.size(), " columns but ",
                                options.json_paths.size(), " json_paths: one path per column"));
  }
  absl::flat_hash_set<std::string_view> seen;
  for (const std::string& column : options.columns) {
    if (column.empty()) return invalid("PostgresDestination.columns: a column name is empty");
    if (!seen.insert(column).second) {
      return invalid(absl::StrCat("PostgresDestination.columns: '", column, "' appears twice"));
    }
  }
  for (const std::string& path : options.json_paths) {
    absl::StatusOr<JsonPath> parsed = JsonPath::Parse(path);
    if (!parsed.ok()) {
      return invalid(absl::StrCat("PostgresDestination.json_paths: '", path,
                                  "': ", parsed.status().message()));
    }
  }
  if (!options.columns.empty() && !options.copy_options.empty()) {
    return invalid(
        "PostgresDestination.copy_options applies to rows passed through; with columns rill "
        "writes COPY's text format itself");
  }
  if (absl::StrContains(absl::AsciiStrToLower(options.copy_options), "header")) {
    return invalid(
        "PostgresDestination.copy_options must not ask for a HEADER: each record is one row");
  }
  auto out_of_range = [](std::string message) {
    return MakeError(ErrorCode::kValidation, message);
  };
  if (options.retry_duration < absl::ZeroDuration() ||
      options.retry_duration > absl::Seconds(7200)) {
    return out_of_range(absl::StrCat("PostgresDestination.retry_duration ",
                                     absl::FormatDuration(options.retry_duration),
                                     " is outside 0-7200 s"));
  }
  if (options.buffering.size_bytes < (size_t{1} << 20) ||
      options.buffering.size_bytes > (size_t{128} << 20)) {
    return out_of_range(absl::StrCat("PostgresDestination.buffering.size_bytes ",
                                     options.buffering.size_bytes, " is outside 1-128 MiB"));
  }
  if (options.buffering.interval < absl::ZeroDuration() ||
      options.buffering.interval > absl::Seconds(900)) {
    return out_of_range(absl::StrCat("PostgresDestination.buffering.interval ",
                                     absl::FormatDuration(options.buffering.interval),
                                     " is outside 0-900 s"));
  }
  return absl::OkStatus();
}

std::unique_ptr<Destination> MakePostgresDestination(PostgresDestination options,
                                                     std::string delivery_stream_name,
                                                     std::string source) {
  return std::make_unique<PostgresDestinationImpl>(
      std::move(options), std::move(delivery_stream_name), std::move(source));
}

}  // namespace rill::deliver_internal
