// rill split, rill merge, rill scale: resharding, on a stream the tool opens read-write.
#include <algorithm>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/format.h"
#include "rill/base/error.h"
#include "rill/stream/stream.h"

namespace rill::cli {
namespace {

std::optional<ShardDescription> FindShard(const std::vector<ShardDescription>& shards, ShardId id) {
  for (const ShardDescription& s : shards) {
    if (s.shard_id == id) return s;
  }
  return std::nullopt;
}

// The shard must exist and be open.
absl::StatusOr<ShardDescription> OpenShard(const Stream& stream, const std::string& dir,
                                           ShardId id) {
  const std::optional<ShardDescription> shard = FindShard(stream.ListShards(), id);
  if (!shard) {
    return Failure(kExitNotFound,
                   absl::StrFormat("shard %s does not exist in stream %s; `rill shards %s` lists "
                                   "them",
                                   id.ToString(), stream.name(), dir));
  }
  if (shard->closed()) {
    return Failure(kExitUsage,
                   absl::StrFormat("shard %s of stream %s is closed (resharded already); only "
                                   "open shards can be split or merged",
                                   id.ToString(), stream.name()));
  }
  return *shard;
}

// Resharding errors, said for the command line; the stream's own messages are kept.
absl::Status ReshardError(const absl::Status& status) {
  switch (GetErrorCode(status)) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kValidation:
    case ErrorCode::kLimitExceeded:
      return Failure(kExitUsage, status.message());
    case ErrorCode::kResourceNotFound:
      return Failure(kExitNotFound, status.message());
    default:
      return Failure(kExitError, status.message());
  }
}

std::string RangeJson(const ShardDescription& s) {
  return JsonObject()
      .Str("shard_id", s.shard_id.ToString())
      .Str("starting_hash_key", s.hash_key_range.starting_hash_key.ToString())
      .Str("ending_hash_key", s.hash_key_range.ending_hash_key.ToString())
      .str();
}

std::string RangeTable(const std::vector<ShardDescription>& shards) {
  Table table({"SHARD", "STARTING HASH KEY", "ENDING HASH KEY"},
              {Align::kLeft, Align::kRight, Align::kRight});
  for (const ShardDescription& s : shards) {
    table.AddRow({s.shard_id.ToString(), s.hash_key_range.starting_hash_key.ToString(),
                  s.hash_key_range.ending_hash_key.ToString()});
  }
  return table.Render();
}

// Flush, then the outcome: resharding is in METADATA once the call returns, Flush writes the
// records put so far (none: the tool puts nothing here), so a failure is an I/O error.
int Finish(Stream& stream) {
  if (absl::Status s = stream.Flush(); !s.ok()) return Report(Failure(kExitError, s.message()));
  return kExitOk;
}

}  // namespace

int RunSplit(const SplitOptions& options) {
  absl::StatusOr<ShardId> id = ParseShardArgument(options.shard);
  if (!id.ok()) return Report(id.status());
  std::optional<HashKey> at;
  if (!options.at.empty()) {
    absl::StatusOr<HashKey> key = HashKey::FromDecimal(options.at);
    if (!key.ok()) {
      return Report(Failure(kExitUsage, absl::StrFormat("bad --at '%s': give a hash key in "
                                                        "decimal, 0 to 2^128-1",
                                                        options.at)));
    }
    at = *key;
  }
  absl::StatusOr<std::unique_ptr<Stream>> stream = OpenStream(options.dir, Access::kReadWrite);
  if (!stream.ok()) return Report(stream.status());
  absl::StatusOr<ShardDescription> shard = OpenShard(**stream, options.dir, *id);
  if (!shard.ok()) return Report(shard.status());
  if (!at) {
    // The middle of the range: start + (end - start) / 2 + 1, which cannot overflow.
    const absl::uint128 start = shard->hash_key_range.starting_hash_key.value();
    const absl::uint128 end = shard->hash_key_range.ending_hash_key.value();
    at = HashKey(start + (end - start) / 2 + 1);
  }
  if (absl::Status s = (*stream)->SplitShard(*id, *at); !s.ok()) {
    return Report(ReshardError(s));
  }
  std::vector<ShardDescription> children;
  for (const ShardDescription& s : (*stream)->ListShards()) {
    if (s.parent_shard_id == *id && !s.adjacent_parent_shard_id) children.push_back(s);
  }
  if (options.json) {
    std::vector<std::string> json;
    for (const ShardDescription& c : children) json.push_back(RangeJson(c));
    std::cout << JsonObject()
                     .Str("stream", (*stream)->name())
                     .Str("split", id->ToString())
                     .Str("at", at->ToString())
                     .Raw("children", JsonArray(json))
                     .Line();
  } else {
    std::cout << absl::StrFormat("split %s of stream %s at hash key %s into:\n", id->ToString(),
                                 (*stream)->name(), at->ToString())
              << RangeTable(children);
  }
  return Finish(**stream);
}

int RunMerge(const MergeOptions& options) {
  absl::StatusOr<ShardId> id = ParseShardArgument(options.shard);
  if (!id.ok()) return Report(id.status());
  absl::StatusOr<ShardId> adjacent = ParseShardArgument(options.adjacent);
  if (!adjacent.ok()) return Report(adjacent.status());
  absl::StatusOr<std::unique_ptr<Stream>> stream = OpenStream(options.dir, Access::kReadWrite);
  if (!stream.ok()) return Report(stream.status());
  for (ShardId s : {*id, *adjacent}) {
    absl::StatusOr<ShardDescription> shard = OpenShard(**stream, options.dir, s);
    if (!shard.ok()) return Report(shard.status());
  }
  if (absl::Status s = (*stream)->MergeShards(*id, *adjacent); !s.ok()) {
    return Report(ReshardError(s));
  }
  std::optional<ShardDescription> child;
  for (const ShardDescription& s : (*stream)->ListShards()) {
    if (s.parent_shard_id == *id && s.adjacent_parent_shard_id == *adjacent) child = s;
  }
  if (!child) return Report(Failure(kExitError, "the merge's child shard is not listed"));
  if (options.json) {
    std::cout << JsonObject()
                     .Str("stream", (*stream)->name())
                     .Str("merged", id->ToString())
                     .Str("adjacent", adjacent->ToString())
                     .Raw("child", RangeJson(*child))
                     .Line();
  } else {
    std::cout << absl::StrFormat("merged %s and %s of stream %s into:\n", id->ToString(),
                                 adjacent->ToString(), (*stream)->name())
              << RangeTable({*child});
  }
  return Finish(**stream);
}

int RunScale(const ScaleOptions& options) {
  absl::StatusOr<std::unique_ptr<Stream>> stream = OpenStream(options.dir, Access::kReadWrite);
  if (!stream.ok()) return Report(stream.status());
  const int before = (*stream)->DescribeStreamSummary().open_shard_count;
  if (absl::Status s = (*stream)->UpdateShardCount(options.count); !s.ok()) {
    return Report(ReshardError(s));
  }
  std::vector<ShardDescription> open;
  for (const ShardDescription& s : (*stream)->ListShards()) {
    if (!s.closed()) open.push_back(s);
  }
  if (options.json) {
    std::vector<std::string> json;
    for (const ShardDescription& s : open) json.push_back(RangeJson(s));
    std::cout << JsonObject()
                     .Str("stream", (*stream)->name())
                     .Int("from", before)
                     .Int("to", static_cast<int64_t>(open.size()))
                     .Raw("open_shards", JsonArray(json))
                     .Line();
  } else {
    std::cout << absl::StrFormat("scaled stream %s from %d to %d open shards:\n", (*stream)->name(),
                                 before, open.size())
              << RangeTable(open);
  }
  return Finish(**stream);
}

}  // namespace rill::cli
