#include "testing/fixtures.h"

#include <stdlib.h>

#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "absl/status/statusor.h"

namespace rill::testing {
namespace {

namespace fs = std::filesystem;

// A new empty directory <tmp>/rill-<tag>-XXXXXX.
std::string MakeUniqueDir(std::string_view tag) {
  std::string pattern =
      (fs::temp_directory_path() / ("rill-" + std::string(tag) + "-XXXXXX")).string();
  INFO("mkdtemp " << pattern);
  REQUIRE(::mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

}  // namespace

TempDir::TempDir(std::string_view tag, Start start)
    : root_(MakeUniqueDir(tag)), path_(start == kEmpty ? root_ : root_ + "/" + std::string(tag)) {}

TempDir::~TempDir() {
  std::error_code ec;
  fs::permissions(root_, fs::perms::owner_all, fs::perm_options::add, ec);
  if (path_ != root_) fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(root_, ec);
}

std::string TempDir::File(std::string_view name) const { return path_ + "/" + std::string(name); }

std::string TempDir::Shard(int index) const { return path_ + "/shard-" + std::to_string(index); }

StreamOptions MemoryStreamOptions(std::shared_ptr<Clock> clock, int shard_count, std::string name) {
  StreamOptions options;
  options.name = std::move(name);
  options.shard_count = shard_count;
  options.clock = std::move(clock);
  return options;
}

StreamOptions DurableStreamOptions(std::string directory, std::shared_ptr<Clock> clock,
                                   int shard_count, FsyncPolicy fsync, std::string name) {
  StreamOptions options = MemoryStreamOptions(std::move(clock), shard_count, std::move(name));
  options.storage = StorageOptions{};
  options.storage->directory = std::move(directory);
  options.storage->fsync = fsync;
  return options;
}

std::unique_ptr<Stream> MustCreate(StreamOptions options) {
  absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Create(std::move(options));
  INFO(stream.status().ToString());
  REQUIRE(stream.ok());
  return std::move(*stream);
}

std::unique_ptr<Stream> MakeStream(std::shared_ptr<Clock> clock, int shard_count,
                                   std::string name) {
  return MustCreate(MemoryStreamOptions(std::move(clock), shard_count, std::move(name)));
}

PutRecordResult MustPut(Stream& stream, std::string_view key, std::string_view data,
                        const PutOptions& options) {
  absl::StatusOr<PutRecordResult> put = stream.PutRecord(key, data, options);
  INFO("key of " << key.size() << " bytes, data of " << data.size()
                 << " bytes: " << put.status().ToString());
  REQUIRE(put.ok());
  return *put;
}

ShardIterator MustIterator(const Stream& stream, ShardId shard, const StartingPosition& position) {
  absl::StatusOr<ShardIterator> it = stream.GetShardIterator(shard, position);
  INFO(it.status().ToString());
  REQUIRE(it.ok());
  return *it;
}

GetRecordsResult MustRead(const Stream& stream, const ShardIterator& it, int limit) {
  absl::StatusOr<GetRecordsResult> batch = stream.GetRecords(it, limit);
  INFO(batch.status().ToString());
  REQUIRE(batch.ok());
  return std::move(*batch);
}

}  // namespace rill::testing
