// rill get, rill tail, rill put.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <simdjson.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/format.h"
#include "cli/record_writer.h"
#include "rill/base/error.h"
#include "rill/stream/stream.h"

namespace rill::cli {
namespace {

// --from's forms, as a StartingPosition.
absl::StatusOr<StartingPosition> ParseFrom(const std::string& from) {
  const std::string lower = absl::AsciiStrToLower(from);
  if (lower == "trim-horizon" || lower == "trim_horizon") return StartingPosition::TrimHorizon();
  if (lower == "latest") return StartingPosition::Latest();
  const size_t colon = from.find(':');
  const std::string kind = colon == std::string::npos ? lower : lower.substr(0, colon);
  const std::string value = colon == std::string::npos ? "" : from.substr(colon + 1);
  if (kind == "at" && !value.empty()) return StartingPosition::AtSequenceNumber(value);
  if (kind == "after" && !value.empty()) return StartingPosition::AfterSequenceNumber(value);
  if (kind == "time" && !value.empty()) {
    absl::Time t;
    if (!ParseTimeArgument(value, &t)) {
      return Failure(kExitUsage,
                     absl::StrFormat("bad time '%s' in --from: give RFC 3339 "
                                     "(2024-05-01T12:00:00Z) or seconds since the epoch",
                                     value));
    }
    return StartingPosition::AtTimestamp(t);
  }
  return Failure(kExitUsage, absl::StrFormat("bad --from '%s': give trim-horizon, latest, "
                                             "at:SEQUENCE, after:SEQUENCE or time:TIME",
                                             from));
}

// GetShardIterator's errors, said for the command line.
absl::Status IteratorError(const absl::Status& status, const std::string& dir, ShardId shard) {
  switch (GetErrorCode(status)) {
    case ErrorCode::kResourceNotFound:
      return Failure(kExitNotFound,
                     absl::StrFormat("shard %s does not exist in the stream in %s (or has "
                                     "expired); `rill shards %s` lists them",
                                     shard.ToString(), dir, dir));
    case ErrorCode::kInvalidArgument:
      return Failure(kExitUsage, status.message());
    default:
      return status;
  }
}

}  // namespace

int RunGet(const GetOptions& options) {
  absl::StatusOr<ShardId> shard = ParseShardArgument(options.shard);
  if (!shard.ok()) return Report(shard.status());
  absl::StatusOr<StartingPosition> position = ParseFrom(options.from);
  if (!position.ok()) return Report(position.status());
  absl::StatusOr<std::unique_ptr<Stream>> stream = OpenStream(options.dir, Access::kReadOnly);
  if (!stream.ok()) return Report(stream.status());
  absl::StatusOr<ShardIterator> it = (*stream)->GetShardIterator(*shard, *position);
  if (!it.ok()) return Report(IteratorError(it.status(), options.dir, *shard));
  RecordWriter writer(options.output, /*shard_column=*/false);
  int64_t printed = 0;
  int empty_reads = 0;
  while (printed < options.limit) {
    const int limit =
        static_cast<int>(std::min<int64_t>(options.limit - printed, kMaxGetRecordsLimit));
    absl::StatusOr<GetRecordsResult> batch = (*stream)->GetRecords(*it, limit);
    if (!batch.ok()) return Report(batch.status());
    for (const Record& r : batch->records) writer.Add(*shard, r);
    printed += static_cast<int64_t>(batch->records.size());
    if (!batch->next_shard_iterator) break;
    if (batch->records.empty() && (batch->millis_behind_latest == 0 || ++empty_reads > 100)) {
      break;
    }
    it = *std::move(batch->next_shard_iterator);
  }
  writer.Flush(/*header_if_empty=*/true);
  return kExitOk;
}

int RunTail(const TailOptions& options) {
  std::optional<StopSignals> signals;
  if (options.follow) signals.emplace();
  RecordWriter writer(options.output, /*shard_column=*/true);
  // Per shard index: the last sequence number printed; closed shards read to their end.
  std::map<uint32_t, SequenceNumber> last_seen;
  std::set<uint32_t> finished;
  int64_t printed = 0;
  bool first_open = true;
  while (true) {
    absl::StatusOr<std::unique_ptr<Stream>> stream =
        OpenStream(options.dir, Access::kReadOnly, /*warn_damage=*/first_open);
    if (!stream.ok()) return Report(stream.status());
    first_open = false;
    // Shard ids grow with lineage (children take the next free ids), so id order reads every
    // parent before its children.
    const std::vector<ShardDescription> shards = (*stream)->ListShards();
    std::optional<Progress> progress;
    // Not over records going to the same terminal, and not while following.
    if (!options.follow && ::isatty(STDOUT_FILENO) != 1) progress.emplace("reading", 0, "records");
    for (const ShardDescription& shard : shards) {
      if (options.max > 0 && printed >= options.max) break;
      const uint32_t index = shard.shard_id.index();
      if (finished.count(index) != 0) continue;
      auto seen = last_seen.find(index);
      const StartingPosition position = seen == last_seen.end()
                                            ? StartingPosition::TrimHorizon()
                                            : StartingPosition::AfterSequenceNumber(seen->second);
      absl::StatusOr<ShardIterator> it = (*stream)->GetShardIterator(shard.shard_id, position);
      if (!it.ok()) return Report(IteratorError(it.status(), options.dir, shard.shard_id));
      int empty_reads = 0;
      bool reached_end = false;
      while (options.max == 0 || printed < options.max) {
        int limit = kMaxGetRecordsLimit;
        if (options.max > 0)
          limit = static_cast<int>(std::min<int64_t>(limit, options.max - printed));
        absl::StatusOr<GetRecordsResult> batch = (*stream)->GetRecords(*it, limit);
        if (!batch.ok()) return Report(batch.status());
        for (const Record& r : batch->records) {
          writer.Add(shard.shard_id, r);
          last_seen[index] = r.sequence_number;
        }
        printed += static_cast<int64_t>(batch->records.size());
        if (progress) progress->Advance(batch->records.size());
        if (!batch->next_shard_iterator) {
          reached_end = true;
          break;
        }
        if (batch->records.empty() && (batch->millis_behind_latest == 0 || ++empty_reads > 100)) {
          break;
        }
        it = *std::move(batch->next_shard_iterator);
      }
      if (reached_end) finished.insert(index);
      writer.Flush();
    }
    progress.reset();
    if (!options.follow || (options.max > 0 && printed >= options.max)) break;
    if (signals->Sleep(absl::Seconds(options.interval_seconds))) break;
  }
  writer.Flush();
  return kExitOk;
}

namespace {

// The records of a put, read from stdin.
class RecordReader {
 public:
  explicit RecordReader(bool length_prefixed) : length_prefixed_(length_prefixed) {}
  // The next record: false at the end of input. *error is set for a cut-off length-prefixed
  // record.
  bool Next(std::string* out, std::string* error) {
    if (!length_prefixed_) {
      if (!std::getline(std::cin, *out)) return false;
      return true;
    }
    unsigned char length[4];
    std::cin.read(reinterpret_cast<char*>(length), 4);
    if (std::cin.gcount() == 0) return false;
    if (std::cin.gcount() != 4) {
      *error = "the input ends inside a record's 4-byte length";
      return false;
    }
    const uint32_t n = (uint32_t{length[0]} << 24) | (uint32_t{length[1]} << 16) |
                       (uint32_t{length[2]} << 8) | uint32_t{length[3]};
    out->resize(n);
    std::cin.read(out->data(), n);
    if (static_cast<uint32_t>(std::cin.gcount()) != n) {
      *error = absl::StrFormat("the input ends inside a record of %d bytes", n);
      return false;
    }
    return true;
  }

 private:
  bool length_prefixed_;
};

// The partition key of `line` from its JSON field `field`: a string as it is, a number or
// boolean as its JSON text. False with *error set otherwise.
bool KeyFromJson(simdjson::dom::parser& parser, const std::string& line, const std::string& field,
                 std::string* key, std::string* error) {
  simdjson::dom::element root;
  if (parser.parse(line.data(), line.size()).get(root) != simdjson::SUCCESS) {
    *error = "the line is not JSON";
    return false;
  }
  simdjson::dom::element value;
  if (root.at_key(field).get(value) != simdjson::SUCCESS) {
    *error = absl::StrFormat("the line has no field \"%s\"", field);
    return false;
  }
  std::string_view text;
  if (value.get(text) == simdjson::SUCCESS) {
    *key = std::string(text);
    return true;
  }
  if (value.is_number() || value.is_bool()) {
    *key = simdjson::minify(value);
    return true;
  }
  *error = absl::StrFormat("field \"%s\" is not a string, number or boolean", field);
  return false;
}

struct ShardPut {
  uint64_t records = 0;
  SequenceNumber first;
  SequenceNumber last;
};

}  // namespace

int RunPut(const PutOptions& options) {
  if (options.key.empty() && options.key_field.empty()) {
    return Report(Failure(kExitUsage,
                          "give the records' partition key with --key KEY, or take it from a "
                          "JSON field of each line with --key-field FIELD"));
  }
  if (!options.key_field.empty() && options.length_prefixed) {
    return Report(Failure(kExitUsage,
                          "--key-field reads JSON lines; it does not go with "
                          "--length-prefixed"));
  }
  absl::StatusOr<std::unique_ptr<Stream>> opened = OpenStream(options.dir, Access::kReadWrite);
  if (!opened.ok()) return Report(opened.status());
  Stream& stream = **opened;
  const PutLimits limits = stream.put_limits();

  std::map<ShardId, ShardPut> per_shard;
  uint64_t put = 0;
  uint64_t failed = 0;
  uint64_t record_number = 0;  // 1-based position in the input
  std::vector<PutRecordsEntry> batch;
  std::vector<uint64_t> batch_numbers;
  size_t batch_bytes = 0;
  absl::Status fatal;

  auto send = [&]() {
    std::vector<PutRecordsEntry> entries = std::move(batch);
    std::vector<uint64_t> numbers = std::move(batch_numbers);
    batch.clear();
    batch_numbers.clear();
    batch_bytes = 0;
    // Throttled entries are retried (rate limits are off by default, but a stream may have them).
    for (int attempt = 0; !entries.empty(); ++attempt) {
      absl::StatusOr<PutRecordsResult> result = stream.PutRecords(entries);
      if (!result.ok()) {
        fatal = result.status();
        failed += entries.size();
        return;
      }
      std::vector<PutRecordsEntry> retry;
      std::vector<uint64_t> retry_numbers;
      for (size_t i = 0; i < entries.size(); ++i) {
        const PutRecordsResultEntry& e = result->entries[i];
        if (e.ok()) {
          ShardPut& s = per_shard[e.shard_id];
          if (s.records == 0) s.first = e.sequence_number;
          s.last = e.sequence_number;
          ++s.records;
          ++put;
        } else if (e.error_code == ErrorCode::kProvisionedThroughputExceeded && attempt < 50) {
          retry.push_back(std::move(entries[i]));
          retry_numbers.push_back(numbers[i]);
        } else {
          ++failed;
          std::cerr << absl::StrFormat("rill: error: record %d was not put: %s: %s\n", numbers[i],
                                       std::string(ErrorCodeName(e.error_code)), e.error_message);
        }
      }
      entries = std::move(retry);
      numbers = std::move(retry_numbers);
      if (!entries.empty()) stream.clock()->SleepFor(absl::Milliseconds(20 * (attempt + 1)));
    }
  };

  simdjson::dom::parser parser;
  RecordReader reader(options.length_prefixed);
  std::string data;
  std::string read_error;
  while (fatal.ok() && reader.Next(&data, &read_error)) {
    ++record_number;
    std::string key = options.key;
    if (!options.key_field.empty()) {
      std::string error;
      if (!KeyFromJson(parser, data, options.key_field, &key, &error) && options.key.empty()) {
        ++failed;
        std::cerr << absl::StrFormat("rill: error: record %d was not put: %s\n", record_number,
                                     error);
        continue;
      }
    }
    const size_t bytes = key.size() + data.size();
    if (!batch.empty() && (batch.size() == kMaxPutRecordsEntries ||
                           batch_bytes + bytes > limits.max_put_records_bytes)) {
      send();
    }
    batch_bytes += bytes;
    batch.push_back(PutRecordsEntry{.partition_key = std::move(key),
                                    .data = std::move(data),
                                    .explicit_hash_key = std::nullopt});
    batch_numbers.push_back(record_number);
    data.clear();
  }
  if (fatal.ok() && !batch.empty()) send();
  if (!read_error.empty()) {
    std::cerr << absl::StrFormat("rill: error: after record %d: %s\n", record_number, read_error);
    ++failed;
  }
  const absl::Status flushed = stream.Flush();

  if (options.json) {
    std::vector<std::string> shards;
    for (const auto& [id, s] : per_shard) {
      shards.push_back(JsonObject()
                           .Str("shard_id", id.ToString())
                           .Uint("records", s.records)
                           .Str("first_sequence_number", s.first.ToString())
                           .Str("last_sequence_number", s.last.ToString())
                           .str());
    }
    std::cout << JsonObject()
                     .Str("stream", stream.name())
                     .Uint("put", put)
                     .Uint("failed", failed)
                     .Raw("shards", JsonArray(shards))
                     .Line();
  } else {
    std::cout << absl::StrFormat("put %d records to stream %s", put, stream.name());
    if (failed > 0) std::cout << absl::StrFormat(" (%d failed)", failed);
    std::cout << "\n";
    if (!per_shard.empty()) {
      Table table({"SHARD", "RECORDS", "FIRST SEQUENCE", "LAST SEQUENCE"},
                  {Align::kLeft, Align::kRight});
      for (const auto& [id, s] : per_shard) {
        table.AddRow(
            {id.ToString(), std::to_string(s.records), s.first.ToString(), s.last.ToString()});
      }
      std::cout << table.Render();
    }
  }
  if (!fatal.ok()) return Report(fatal);
  if (!flushed.ok()) {
    return Report(Failure(kExitError, absl::StrFormat("the records were put but could not be "
                                                      "written to disk: %s",
                                                      flushed.message())));
  }
  if (failed > 0) {
    return Report(Failure(kExitError, absl::StrFormat("%d of %d records were not put (see the "
                                                      "errors above)",
                                                      failed, put + failed)));
  }
  return kExitOk;
}

}  // namespace rill::cli
