// rill describe, rill shards, rill groups, rill metrics: the read-only views of a stream.
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/format.h"
#include "cli/metrics_file.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/sqlite_checkpoint_store.h"
#include "rill/metrics/metrics.h"
#include "rill/stream/stream.h"

namespace rill::cli {
namespace {

namespace fs = std::filesystem;

// Counts every shard's records, with a progress bar over the shards.
absl::StatusOr<std::map<ShardId, ShardCount>> CountAll(
    const Stream& stream, const std::vector<ShardDescription>& shards) {
  Progress progress("counting records", 0, "records");
  std::map<ShardId, ShardCount> counts;
  for (const ShardDescription& shard : shards) {
    absl::StatusOr<ShardCount> count =
        CountRecords(stream, shard.shard_id, StartingPosition::TrimHorizon(), &progress);
    if (!count.ok()) return count.status();
    counts[shard.shard_id] = *count;
  }
  return counts;
}

std::string OptionalShard(const std::optional<ShardId>& id) { return id ? id->ToString() : "-"; }

}  // namespace

int RunDescribe(const DescribeOptions& options) {
  absl::StatusOr<std::unique_ptr<Stream>> stream = OpenStream(options.dir, Access::kReadOnly);
  if (!stream.ok()) return Report(stream.status());
  const StreamSummary summary = (*stream)->DescribeStreamSummary();
  const std::vector<ShardDescription> shards = (*stream)->ListShards();
  absl::StatusOr<std::map<ShardId, ShardCount>> counts = CountAll(**stream, shards);
  if (!counts.ok()) return Report(counts.status());
  uint64_t records = 0;
  uint64_t record_bytes = 0;
  for (const auto& [id, count] : *counts) {
    records += count.records;
    record_bytes += count.bytes;
  }
  uint64_t segment_bytes = 0;
  for (const ShardDescription& shard : shards) {
    segment_bytes += ShardSegmentBytes(options.dir, shard.shard_id.index());
  }
  const uint64_t disk_bytes = DirectoryBytes(options.dir);
  std::vector<std::string> consumers;
  for (const ConsumerDescription& c : (*stream)->ListStreamConsumers()) consumers.push_back(c.name);
  const int closed = static_cast<int>(std::count_if(
      shards.begin(), shards.end(), [](const ShardDescription& s) { return s.closed(); }));

  if (options.json) {
    std::vector<std::string> consumer_names;
    for (const std::string& c : consumers) consumer_names.push_back(JsonString(c));
    std::cout << JsonObject()
                     .Str("stream", summary.stream_name)
                     .Str("status", StreamStatusName(summary.status))
                     .Str("mode", CapacityModeName(summary.capacity_mode))
                     .Int("open_shards", summary.open_shard_count)
                     .Int("closed_shards", closed)
                     .Int("retention_hours", absl::ToInt64Hours(summary.retention))
                     .Int("retention_seconds", absl::ToInt64Seconds(summary.retention))
                     .Str("creation_time", TimeText(summary.creation_time))
                     .Str("encryption_type", EncryptionTypeName(summary.encryption_type))
                     .Str("key_id", summary.key_id)
                     .Int("consumer_count", summary.consumer_count)
                     .Raw("consumers", JsonArray(consumer_names))
                     .Uint("records", records)
                     .Uint("record_bytes", record_bytes)
                     .Uint("segment_bytes", segment_bytes)
                     .Uint("bytes_on_disk", disk_bytes)
                     .Line();
    return kExitOk;
  }
  std::string consumer_text = std::to_string(summary.consumer_count);
  if (!consumers.empty()) {
    consumer_text += absl::StrFormat(" (%s)", absl::StrJoin(consumers, ", "));
  }
  const std::pair<std::string, std::string> fields[] = {
      {"stream", summary.stream_name},
      {"status", std::string(StreamStatusName(summary.status))},
      {"mode", std::string(CapacityModeName(summary.capacity_mode))},
      {"open shards", std::to_string(summary.open_shard_count)},
      {"closed shards", std::to_string(closed)},
      {"retention", DurationText(summary.retention)},
      {"created", TimeText(summary.creation_time)},
      {"encryption", summary.encryption_type == EncryptionType::kNone
                         ? std::string(EncryptionTypeName(summary.encryption_type))
                         : absl::StrFormat("%s (key %s)",
                                           std::string(EncryptionTypeName(summary.encryption_type)),
                                           summary.key_id)},
      {"consumers", consumer_text},
      {"records", std::to_string(records)},
      {"record bytes", std::to_string(record_bytes)},
      {"segment bytes", std::to_string(segment_bytes)},
      {"bytes on disk", std::to_string(disk_bytes)},
  };
  for (const auto& [name, value] : fields) {
    std::cout << absl::StrFormat("%-15s%s\n", name + ":", DisplayText(value));
  }
  return kExitOk;
}

int RunShards(const ShardsOptions& options) {
  absl::StatusOr<std::unique_ptr<Stream>> stream = OpenStream(options.dir, Access::kReadOnly);
  if (!stream.ok()) return Report(stream.status());
  const std::vector<ShardDescription> shards = (*stream)->ListShards();
  absl::StatusOr<std::map<ShardId, ShardCount>> counts = CountAll(**stream, shards);
  if (!counts.ok()) return Report(counts.status());
  Table table({"SHARD", "STATE", "PARENT", "ADJACENT PARENT", "STARTING HASH KEY",
               "ENDING HASH KEY", "RECORDS", "BYTES"},
              {Align::kLeft, Align::kLeft, Align::kLeft, Align::kLeft, Align::kRight, Align::kRight,
               Align::kRight, Align::kRight});
  for (const ShardDescription& shard : shards) {
    const ShardCount& count = (*counts)[shard.shard_id];
    const uint64_t bytes = ShardSegmentBytes(options.dir, shard.shard_id.index());
    if (options.json) {
      JsonObject o;
      o.Str("shard_id", shard.shard_id.ToString()).Str("state", shard.closed() ? "closed" : "open");
      if (shard.parent_shard_id) {
        o.Str("parent_shard_id", shard.parent_shard_id->ToString());
      } else {
        o.Null("parent_shard_id");
      }
      if (shard.adjacent_parent_shard_id) {
        o.Str("adjacent_parent_shard_id", shard.adjacent_parent_shard_id->ToString());
      } else {
        o.Null("adjacent_parent_shard_id");
      }
      o.Str("starting_hash_key", shard.hash_key_range.starting_hash_key.ToString())
          .Str("ending_hash_key", shard.hash_key_range.ending_hash_key.ToString())
          .Str("starting_sequence_number",
               shard.sequence_number_range.starting_sequence_number.ToString());
      if (shard.sequence_number_range.ending_sequence_number) {
        o.Str("ending_sequence_number",
              shard.sequence_number_range.ending_sequence_number->ToString());
      } else {
        o.Null("ending_sequence_number");
      }
      o.Uint("records", count.records).Uint("record_bytes", count.bytes).Uint("disk_bytes", bytes);
      std::cout << o.Line();
      continue;
    }
    table.AddRow({shard.shard_id.ToString(), shard.closed() ? "closed" : "open",
                  OptionalShard(shard.parent_shard_id),
                  OptionalShard(shard.adjacent_parent_shard_id),
                  shard.hash_key_range.starting_hash_key.ToString(),
                  shard.hash_key_range.ending_hash_key.ToString(), std::to_string(count.records),
                  std::to_string(bytes)});
  }
  if (!options.json) std::cout << table.Render();
  return kExitOk;
}

namespace {

bool IsSqlitePath(const std::string& path) {
  return absl::EndsWith(path, ".db") || absl::EndsWith(path, ".sqlite") ||
         absl::EndsWith(path, ".sqlite3");
}

// The applications with leases in a SqliteCheckpointStore's database (read-only).
absl::StatusOr<std::vector<std::string>> SqliteApplications(const std::string& path) {
  sqlite3* db = nullptr;
  const int opened = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  auto close = [&] { sqlite3_close(db); };
  if (opened != SQLITE_OK) {
    const std::string message = db != nullptr ? sqlite3_errmsg(db) : "cannot open";
    close();
    return Failure(kExitError, absl::StrFormat("cannot open %s: %s", path, message));
  }
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT DISTINCT application FROM rill_leases ORDER BY 1", -1,
                         &statement, nullptr) != SQLITE_OK) {
    const std::string message = sqlite3_errmsg(db);
    close();
    return Failure(kExitError,
                   absl::StrFormat("%s is not a rill checkpoint database: %s", path, message));
  }
  std::vector<std::string> apps;
  while (sqlite3_step(statement) == SQLITE_ROW) {
    const auto* bytes = static_cast<const char*>(sqlite3_column_blob(statement, 0));
    apps.emplace_back(bytes == nullptr ? "" : bytes,
                      static_cast<size_t>(sqlite3_column_bytes(statement, 0)));
  }
  sqlite3_finalize(statement);
  close();
  return apps;
}

// The applications with a lease file in a FileCheckpointStore's directory.
std::vector<std::string> FileApplications(const std::string& dir) {
  std::vector<std::string> apps;
  std::error_code error;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (absl::EndsWith(name, ".leases")) apps.push_back(name.substr(0, name.size() - 7));
  }
  std::sort(apps.begin(), apps.end());
  return apps;
}

// Records after `checkpoint` in `shard`, or nullopt when the checkpoint does not say (LATEST,
// AT_TIMESTAMP, none) or the shard is gone.
std::optional<uint64_t> Lag(const Stream& stream, const std::optional<ShardId>& shard,
                            const std::string& checkpoint) {
  if (!shard) return std::nullopt;
  if (checkpoint == kCheckpointShardEnd) return 0;
  StartingPosition position;
  if (checkpoint == kCheckpointTrimHorizon) {
    position = StartingPosition::TrimHorizon();
  } else if (!checkpoint.empty() && SequenceNumber::Parse(checkpoint).ok()) {
    position = StartingPosition::AfterSequenceNumber(checkpoint);
  } else {
    return std::nullopt;
  }
  absl::StatusOr<ShardCount> count = CountRecords(stream, *shard, position);
  if (!count.ok()) return std::nullopt;
  return count->records;
}

}  // namespace

int RunGroups(const GroupsOptions& options) {
  std::error_code error;
  const fs::file_status status = fs::status(options.store, error);
  if (!fs::exists(status)) {
    return Report(Failure(kExitNotFound,
                          absl::StrFormat("no checkpoint store at %s: give a FileCheckpointStore "
                                          "directory or a SqliteCheckpointStore file",
                                          options.store)));
  }
  absl::StatusOr<std::unique_ptr<Stream>> stream = OpenStream(options.dir, Access::kReadOnly);
  if (!stream.ok()) return Report(stream.status());

  std::unique_ptr<CheckpointStore> store;
  std::vector<std::string> apps;
  if (fs::is_directory(status)) {
    absl::StatusOr<std::unique_ptr<FileCheckpointStore>> file =
        FileCheckpointStore::Open(options.store);
    if (!file.ok()) return Report(file.status());
    store = *std::move(file);
    if (options.app.empty()) apps = FileApplications(options.store);
  } else {
    if (!IsSqlitePath(options.store)) {
      Warn(absl::StrFormat("%s is a file: reading it as a SqliteCheckpointStore database",
                           options.store));
    }
    if (options.app.empty()) {
      absl::StatusOr<std::vector<std::string>> found = SqliteApplications(options.store);
      if (!found.ok()) return Report(found.status());
      apps = *std::move(found);
    }
    absl::StatusOr<std::unique_ptr<SqliteCheckpointStore>> sqlite =
        SqliteCheckpointStore::Open(options.store);
    if (!sqlite.ok()) return Report(sqlite.status());
    store = *std::move(sqlite);
  }
  if (!options.app.empty()) apps = {options.app};

  const std::vector<ShardDescription> shards = (*stream)->ListShards();
  Table table(
      {"APPLICATION", "SHARD", "OWNER", "CHECKPOINT", "LAG", "COUNTER"},
      {Align::kLeft, Align::kLeft, Align::kLeft, Align::kLeft, Align::kRight, Align::kRight});
  std::string json_lines;  // printed once the progress bar is gone
  std::optional<Progress> progress;
  progress.emplace("reading leases", apps.size(), "applications");
  for (const std::string& app : apps) {
    absl::StatusOr<std::vector<Lease>> leases = store->ListLeases(app);
    if (!leases.ok()) return Report(leases.status());
    if (leases->empty() && !options.app.empty()) {
      return Report(Failure(kExitNotFound, absl::StrFormat("application %s has no leases in %s",
                                                           app, options.store)));
    }
    for (const Lease& lease : *leases) {
      std::optional<ShardId> shard;
      if (absl::StatusOr<ShardId> id = ShardId::Parse(lease.lease_key); id.ok()) {
        if (std::any_of(shards.begin(), shards.end(),
                        [&](const ShardDescription& s) { return s.shard_id == *id; })) {
          shard = *id;
        }
      }
      const std::optional<uint64_t> lag = Lag(**stream, shard, lease.checkpoint);
      if (options.json) {
        JsonObject o;
        o.Str("application", app).Str("shard_id", lease.lease_key);
        if (lease.owner.empty()) {
          o.Null("owner");
        } else {
          o.Str("owner", lease.owner);
        }
        o.Str("checkpoint", lease.checkpoint);
        if (lag) {
          o.Uint("lag", *lag);
        } else {
          o.Null("lag");
        }
        std::vector<std::string> parents;
        for (const std::string& p : lease.parent_shard_ids) parents.push_back(JsonString(p));
        o.Int("counter", lease.counter)
            .Int("owner_switches_since_checkpoint", lease.owner_switches_since_checkpoint)
            .Raw("parent_shard_ids", JsonArray(parents))
            .Bool("shard_exists", shard.has_value());
        json_lines += o.Line();
      } else {
        table.AddRow({DisplayText(app), DisplayText(lease.lease_key),
                      lease.owner.empty() ? "-" : DisplayText(lease.owner),
                      lease.checkpoint.empty() ? "-" : DisplayText(lease.checkpoint),
                      lag ? std::to_string(*lag) : "-", std::to_string(lease.counter)});
      }
    }
    progress->Advance();
  }
  progress.reset();
  std::cout << json_lines;
  if (!options.json) {
    if (apps.empty()) {
      std::cout << absl::StrFormat("no consumer application has leases in %s\n", options.store);
    } else {
      std::cout << table.Render();
    }
  }
  return kExitOk;
}

int RunMetrics(const MetricsOptions& options) {
  // The directory must hold a stream, whether or not a process has written metrics.
  absl::StatusOr<internal::StreamMeta> meta = ReadStreamMeta(options.dir);
  if (!meta.ok()) return Report(meta.status());
  absl::StatusOr<MetricsFile> file = ReadMetricsFile(options.dir);
  if (!file.ok()) return Report(file.status());
  if (options.format == "json") {
    std::cout << file->line << "\n";
  } else {
    std::cout << ToPrometheusText(file->snapshot);
  }
  return kExitOk;
}

}  // namespace rill::cli
