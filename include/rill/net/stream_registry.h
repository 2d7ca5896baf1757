// StreamRegistry: the streams a Kinesis endpoint serves, by name, with what Kinesis keeps beside
// a stream (tags, the account's ARNs and limits).
//
// A registry makes streams on request (CreateStream: in memory, or durable under
// root_directory/<name>), or adopts streams the application already has, owned or borrowed, so
// that an application can serve the very stream it writes to in process.
//
// Example:
//   rill::net::StreamRegistryOptions options;
//   options.region = "eu-west-1";
//   options.stream_template.clock = clock;
//   auto registry = rill::net::StreamRegistry::Create(options);
//   rill::net::CreateStreamRequest request;
//   request.name = "clicks";
//   request.shard_count = 2;
//   auto stream = (*registry)->CreateStream(request);
//   std::shared_ptr<rill::Stream> same = (*registry)->Find("clicks");
//   (*registry)->StreamArn("clicks");  // "arn:aws:kinesis:eu-west-1:000000000000:stream/clicks"
//
// Thread safety: every method is thread-safe (a reader/writer lock; lookups take it shared).
// Streams are handed out as shared_ptr, so a request in flight keeps its stream alive after
// DeleteStream removed it; a deleted durable stream's directory is removed when the last such
// reference goes.
//
// Tags live in the registry; those of the durable streams it made are also kept in
// root_directory/<name>/TAGS.json, which Create() reads back.
//
// Allocation: Find() allocates nothing (the registry's map is keyed by name, looked up by view).
// The listing and tag calls return fresh containers.
#ifndef RILL_NET_STREAM_REGISTRY_H_
#define RILL_NET_STREAM_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rill/base/internal/mutex.h"
#include "rill/storage/storage_options.h"
#include "rill/stream/stream.h"
#include "rill/stream/stream_options.h"

namespace rill::net {

// Kinesis' tag limits.
inline constexpr int kMaxTagsPerStream = 50;
inline constexpr int kMaxTagsPerCall = 50;
inline constexpr int kMaxTagKeyLength = 128;
inline constexpr int kMaxTagValueLength = 256;

struct StreamRegistryOptions {
  // The region and 12-digit account id in ARNs and messages. Defaults: "us-east-1" and
  // "000000000000" (what kinesalite and the AWS examples use).
  std::string region = "us-east-1";
  std::string account_id = "000000000000";

  // What every stream CreateStream makes starts from: clock, shard limits, retention, fan-out
  // options, memory limit... Its name, shard_count, capacity_mode and storage are replaced per
  // stream. Default: StreamOptions's defaults.
  StreamOptions stream_template;

  // When set, CreateStream makes durable streams, each in root_directory/<name> with
  // storage_template's settings, and Create() opens every stream already there. Default: none
  // (streams live in memory).
  std::optional<std::string> root_directory;
  // Storage settings of durable streams (its directory is replaced per stream).
  StorageOptions storage_template;

  // Kinesis' account limits, reported by DescribeLimits. CreateStream, SplitShard and
  // UpdateShardCount are refused (kLimitExceeded) past shard_limit open shards in the whole
  // registry, and CreateStream in on-demand mode past on_demand_stream_count_limit on-demand
  // streams. Defaults: 500 and 50 (Kinesis' defaults in its largest regions).
  int shard_limit = 500;
  int on_demand_stream_count_limit = 50;
};

// How CreateStream makes a stream.
struct CreateStreamRequest {
  // 1-128 characters of [a-zA-Z0-9_.-]. Required.
  std::string name;
  // Shards it starts with (an on-demand stream starts with at least the template's
  // on_demand.min_shards). Default: 1.
  int shard_count = 1;
  CapacityMode mode = CapacityMode::kProvisioned;
  // Largest record, in bytes (Kinesis' MaxRecordSizeInKiB x 1024). Default: the template's.
  std::optional<size_t> max_record_bytes;
  // Tags to start with (AddTags' rules).
  std::vector<std::pair<std::string, std::string>> tags;
};

// DescribeLimits' answer.
struct AccountLimits {
  int shard_limit = 0;
  int open_shard_count = 0;
  int on_demand_stream_count = 0;
  int on_demand_stream_count_limit = 0;
};

class StreamRegistry {
 public:
  // Makes a registry. With root_directory, creates the directory if missing and opens every
  // stream found in its subdirectories (those holding a stream's METADATA); an error opening one
  // fails the call (kInternalFailure for I/O, or Stream::Open's error).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<StreamRegistry>> Create(
      StreamRegistryOptions options);

  StreamRegistry(const StreamRegistry&) = delete;
  StreamRegistry& operator=(const StreamRegistry&) = delete;
  ~StreamRegistry();

  // Makes and registers a stream. Errors: kResourceInUse if the name is taken (or its deleted
  // predecessor's directory is still in use); kLimitExceeded past the account's shard or
  // on-demand stream limits; Stream::Create's errors (kInvalidArgument for a bad name or shard
  // count, kValidation for a record size out of range); the tags' errors (see AddTags).
  [[nodiscard]] absl::StatusOr<std::shared_ptr<Stream>> CreateStream(CreateStreamRequest request);

  // Registers a stream the application made; the registry owns it from now on (Adopt) or shares
  // it. AdoptBorrowed registers a stream the application keeps owning: it must outlive every
  // use through the registry (remove it with DeleteStream first). Errors: kResourceInUse if the
  // stream's name is taken; kInvalidArgument for a null stream.
  [[nodiscard]] absl::Status Adopt(std::unique_ptr<Stream> stream);
  [[nodiscard]] absl::Status Adopt(std::shared_ptr<Stream> stream);
  [[nodiscard]] absl::Status AdoptBorrowed(Stream* stream);

  // Removes a stream. Requests holding it finish on it; a durable stream the registry created
  // has its directory removed once the last reference is dropped (adopted streams are only
  // removed from the registry, their files stay). Errors: kResourceNotFound.
  [[nodiscard]] absl::Status DeleteStream(std::string_view name);

  // The stream called `name`, or null.
  std::shared_ptr<Stream> Find(std::string_view name) const;

  // Every stream, sorted by name.
  std::vector<std::shared_ptr<Stream>> List() const;
  // The names of up to `limit` streams after `exclusive_start` (all when empty), sorted, and
  // whether more follow.
  std::vector<std::string> ListNames(std::string_view exclusive_start, int limit,
                                     bool* has_more) const;

  // Tags. AddTags adds or overwrites: at most kMaxTagsPerCall per call, keys of 1-128 and values
  // of 0-256 characters (UTF-16 units, as Kinesis counts) of Unicode letters, digits, white
  // space and _ . / = + - @, at most kMaxTagsPerStream per stream afterwards. Errors:
  // kResourceNotFound; kInvalidArgument with Kinesis' messages.
  [[nodiscard]] absl::Status AddTags(std::string_view name,
                                     const std::vector<std::pair<std::string, std::string>>& tags);
  // Removes the keys (absent ones are ignored). Errors: kResourceNotFound; kInvalidArgument for
  // a key with characters a tag cannot hold.
  [[nodiscard]] absl::Status RemoveTags(std::string_view name,
                                        const std::vector<std::string>& keys);
  // The stream's tags sorted by key. Errors: kResourceNotFound.
  [[nodiscard]] absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListTags(
      std::string_view name) const;

  // "arn:aws:kinesis:<region>:<account>:stream/<name>".
  std::string StreamArn(std::string_view name) const;
  // The stream name in a stream ARN of this registry's region and account. kInvalidArgument for
  // text that is no stream ARN; kResourceNotFound for another region or account (Kinesis'
  // "Stream ... not found" message).
  [[nodiscard]] absl::StatusOr<std::string> StreamNameFromArn(std::string_view arn) const;
  // Kinesis' message for an unknown stream: "Stream <name> under account <account> not found."
  std::string NotFoundMessage(std::string_view name) const;

  // The account's limits and usage (open shards of every stream, on-demand streams).
  AccountLimits DescribeLimits() const;
  // kLimitExceeded (Kinesis' message) if `additional_shards` more open shards would pass
  // shard_limit.
  [[nodiscard]] absl::Status CheckShardLimit(int additional_shards) const;

  const std::string& region() const { return options_.region; }
  const std::string& account_id() const { return options_.account_id; }
  const StreamRegistryOptions& options() const { return options_; }
  // The template's clock (never null): what paging tokens are timed with.
  const std::shared_ptr<Clock>& clock() const { return clock_; }

 private:
  struct Entry {
    std::shared_ptr<Stream> stream;
    std::map<std::string, std::string> tags;
    // The registry made this durable stream in root_directory: deleting it removes its files.
    bool owns_directory = false;
    // That directory (empty for other streams): the tags are kept in its TAGS.json.
    std::string directory;
  };
  // Names of deleted durable streams whose directories are not removed yet; shared with the
  // deleters, which may run after the registry is gone.
  struct PendingDeletions {
    rill::internal::Mutex mu;
    absl::flat_hash_set<std::string> names ABSL_GUARDED_BY(mu);
  };

  explicit StreamRegistry(StreamRegistryOptions options);
  absl::Status Insert(std::shared_ptr<Stream> stream, std::string directory = {},
                      std::map<std::string, std::string> tags = {});
  // Writes `tags` to entry.directory/TAGS.json (replaced atomically), if the entry has a
  // directory. kInternalFailure on an I/O error.
  static absl::Status SaveTags(const Entry& entry, const std::map<std::string, std::string>& tags);
  absl::Status OpenExisting();
  // A shared_ptr whose deleter destroys the stream, then removes `directory`.
  std::shared_ptr<Stream> WithDirectoryRemoval(std::unique_ptr<Stream> stream,
                                               std::string directory);
  absl::Status CheckShardLimitLocked(int additional_shards) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const StreamRegistryOptions options_;
  const std::shared_ptr<Clock> clock_;
  const std::shared_ptr<PendingDeletions> pending_deletions_;

  mutable rill::internal::SharedMutex mu_;
  // std::less<> lets Find look up by string_view without making a string.
  std::map<std::string, Entry, std::less<>> streams_ ABSL_GUARDED_BY(mu_);
  // Names being created outside the lock (a durable stream's Create does I/O).
  absl::flat_hash_set<std::string> creating_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rill::net

#endif  // RILL_NET_STREAM_REGISTRY_H_
