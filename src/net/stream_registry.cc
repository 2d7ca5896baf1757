#include "rill/net/stream_registry.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "base/utf.h"
#include "net/json.h"
#include "rill/base/error.h"

namespace rill::net {
namespace {

// Decodes the code point at s[*i] and advances *i; -1 (advancing one byte) for invalid UTF-8.
int32_t NextCodePoint(std::string_view s, size_t* i) {
  uint32_t cp;
  const size_t n = rill::internal::DecodeUtf8(s.substr(*i), &cp);
  if (n == 0) {
    ++*i;
    return -1;
  }
  *i += n;
  return static_cast<int32_t>(cp);
}

enum class TagText { kOk, kInvalidCharacter, kPercent };

// Kinesis' tag alphabet (as kinesalite recorded it): letters, digits, white space and
// _ . / = + - @ %, where "letters" beyond ASCII are the ranges U+00C0-U+1FFF and U+2C00-U+D7FF;
// '%' passes the first check and is then refused with a message of its own.
TagText CheckTagText(std::string_view s) {
  bool percent = false;
  for (size_t i = 0; i < s.size();) {
    const int32_t cp = NextCodePoint(s, &i);
    const bool ascii_ok = (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
                          (cp >= '0' && cp <= '9') || cp == '_' || cp == '.' || cp == '/' ||
                          cp == '=' || cp == '+' || cp == '-' || cp == ' ' || cp == '@';
    if (ascii_ok) continue;
    if (cp == '%') {
      percent = true;
      continue;
    }
    if ((cp >= 0xC0 && cp <= 0x1FFF) || (cp >= 0x2C00 && cp <= 0xD7FF)) continue;
    return TagText::kInvalidCharacter;
  }
  return percent ? TagText::kPercent : TagText::kOk;
}

constexpr char kInvalidTagCharacters[] =
    "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white "
    "space, _ . / = + - % @.";
constexpr char kIllegalTagCharactersTail[] =
    " because some tags contained illegal characters. The allowed characters are Unicode "
    "letters, white-spaces, '_',',','/','=','+','-','@'.";

// Kinesis' rules for the tags of one AddTagsToStream call; *percent is set when a tag holds '%',
// which Kinesis refuses with a message naming the stream.
absl::Status ValidateTags(const std::vector<std::pair<std::string, std::string>>& tags,
                          bool* percent) {
  if (tags.empty() || static_cast<int>(tags.size()) > kMaxTagsPerCall) {
    return InvalidArgumentError(
        absl::StrFormat("between 1 and %d tags may be added per call", kMaxTagsPerCall));
  }
  for (const auto& [key, value] : tags) {
    const int key_length = rill::internal::Utf16Length(key);
    const int value_length = rill::internal::Utf16Length(value);
    if (key_length < 1 || key_length > kMaxTagKeyLength || value_length < 0 ||
        value_length > kMaxTagValueLength) {
      return InvalidArgumentError(
          absl::StrFormat("tag keys must have 1-%d characters and values 0-%d", kMaxTagKeyLength,
                          kMaxTagValueLength));
    }
    for (std::string_view text : {std::string_view(key), std::string_view(value)}) {
      const TagText check = CheckTagText(text);
      if (check == TagText::kInvalidCharacter) return InvalidArgumentError(kInvalidTagCharacters);
      if (check == TagText::kPercent) *percent = true;
    }
  }
  return absl::OkStatus();
}

constexpr char kTagsFile[] = "TAGS.json";
constexpr char kTagsTempFile[] = "TAGS.json.tmp";

// The whole of a small file, or nullopt if it cannot be read.
std::optional<std::string> ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return std::nullopt;
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0) out.append(buffer, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return std::nullopt;
  return out;
}

// The tags a TAGS.json holds ({"key": "value", ...}).
absl::StatusOr<std::map<std::string, std::string>> LoadTags(const std::string& directory) {
  std::map<std::string, std::string> tags;
  const std::string path = directory + "/" + kTagsFile;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return tags;
  std::optional<std::string> text = ReadFile(path);
  if (!text) return InternalFailureError(absl::StrCat("cannot read ", path));
  absl::StatusOr<simdjson::dom::element> doc = ParseJson(*text);
  simdjson::dom::object object;
  if (!doc.ok() || doc->get_object().get(object) != simdjson::SUCCESS) {
    return InternalFailureError(absl::StrCat(path, " is damaged"));
  }
  for (auto [key, value] : object) {
    std::string_view v;
    if (value.get_string().get(v) != simdjson::SUCCESS) {
      return InternalFailureError(absl::StrCat(path, " is damaged"));
    }
    tags.emplace(std::string(key), std::string(v));
  }
  return tags;
}

int OpenShards(const Stream& stream) { return stream.DescribeStreamSummary().open_shard_count; }

}  // namespace

StreamRegistry::StreamRegistry(StreamRegistryOptions options)
    : options_(std::move(options)),
      clock_(options_.stream_template.clock != nullptr ? options_.stream_template.clock
                                                       : SystemClock::Default()),
      pending_deletions_(std::make_shared<PendingDeletions>()) {}

StreamRegistry::~StreamRegistry() = default;

absl::StatusOr<std::unique_ptr<StreamRegistry>> StreamRegistry::Create(
    StreamRegistryOptions options) {
  if (options.account_id.size() != 12 ||
      !std::all_of(options.account_id.begin(), options.account_id.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidArgumentError("account_id must be 12 decimal digits");
  }
  if (options.region.empty() || options.region.find(':') != std::string::npos) {
    return InvalidArgumentError("region must be non-empty and hold no ':'");
  }
  std::unique_ptr<StreamRegistry> registry(new StreamRegistry(std::move(options)));
  if (registry->options_.root_directory) {
    if (absl::Status s = registry->OpenExisting(); !s.ok()) return s;
  }
  return registry;
}

absl::Status StreamRegistry::OpenExisting() {
  namespace fs = std::filesystem;
  const fs::path root(*options_.root_directory);
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) {
    return InternalFailureError(
        absl::StrFormat("cannot create %s: %s", root.string(), ec.message()));
  }
  std::vector<std::string> names;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;
    if (!it->is_directory(entry_ec)) continue;
    if (!fs::exists(it->path() / "METADATA", entry_ec)) continue;
    names.push_back(it->path().filename().string());
  }
  if (ec) {
    return InternalFailureError(absl::StrFormat("cannot list %s: %s", root.string(), ec.message()));
  }
  for (const std::string& name : names) {
    StreamOptions stream_options = options_.stream_template;
    stream_options.name = name;
    stream_options.memory_limit = {};  // durable streams bound memory with storage instead
    stream_options.storage = options_.storage_template;
    stream_options.storage->directory = (root / name).string();
    absl::StatusOr<std::unique_ptr<Stream>> stream = Stream::Open(stream_options);
    if (!stream.ok()) return stream.status();
    const std::string directory = (root / name).string();
    absl::StatusOr<std::map<std::string, std::string>> tags = LoadTags(directory);
    if (!tags.ok()) return tags.status();
    if (absl::Status s = Insert(WithDirectoryRemoval(std::move(*stream), directory), directory,
                                std::move(*tags));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

std::shared_ptr<Stream> StreamRegistry::WithDirectoryRemoval(std::unique_ptr<Stream> stream,
                                                             std::string directory) {
  std::shared_ptr<PendingDeletions> pending = pending_deletions_;
  return std::shared_ptr<Stream>(
      stream.release(), [pending, directory = std::move(directory)](Stream* s) {
        const std::string name = s->name();
        bool deleted;
        {
          rill::internal::MutexLock lock(&pending->mu);
          deleted = pending->names.contains(name);
        }
        // Destroy first: the stream holds its directory's lock and files.
        delete s;
        if (!deleted) return;
        std::error_code ec;
        std::filesystem::remove_all(directory, ec);  // best effort: nothing to report it to
        rill::internal::MutexLock lock(&pending->mu);
        pending->names.erase(name);
      });
}

absl::Status StreamRegistry::CheckShardLimitLocked(int additional_shards) const {
  int open = 0;
  for (const auto& [name, entry] : streams_) open += OpenShards(*entry.stream);
  if (static_cast<int64_t>(open) + additional_shards <= options_.shard_limit) {
    return absl::OkStatus();
  }
  return LimitExceededError(absl::StrFormat(
      "This request would exceed the shard limit for the account %s in %s. Current shard count "
      "for the account: %d. Limit: %d. Number of additional shards that would have resulted "
      "from this request: %d. Refer to the AWS Service Limits page "
      "(http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits "
      "and how to request higher limits.",
      options_.account_id, options_.region, open, options_.shard_limit, additional_shards));
}

absl::Status StreamRegistry::CheckShardLimit(int additional_shards) const {
  rill::internal::ReaderMutexLock lock(&mu_);
  return CheckShardLimitLocked(additional_shards);
}

absl::StatusOr<std::shared_ptr<Stream>> StreamRegistry::CreateStream(CreateStreamRequest request) {
  if (!rill::internal::IsKinesisName(request.name)) {
    return InvalidArgumentError(absl::StrFormat(
        "invalid stream name '%s': 1-128 characters of [a-zA-Z0-9_.-]", request.name));
  }
  if (!request.tags.empty()) {
    bool percent = false;
    if (absl::Status s = ValidateTags(request.tags, &percent); !s.ok()) return s;
    if (percent) {
      return InvalidArgumentError(absl::StrCat("Failed to add tags to stream ", request.name,
                                               " under account ", options_.account_id,
                                               kIllegalTagCharactersTail));
    }
    absl::flat_hash_set<std::string_view> keys;
    for (const auto& [key, value] : request.tags) keys.insert(key);
    if (keys.size() > static_cast<size_t>(kMaxTagsPerStream)) {
      return InvalidArgumentError(absl::StrFormat(
          "Failed to add tags to stream %s under account %s because a given stream cannot have "
          "more than %d tags associated with it.",
          request.name, options_.account_id, kMaxTagsPerStream));
    }
  }
  StreamOptions stream_options = options_.stream_template;
  stream_options.name = request.name;
  stream_options.shard_count = request.shard_count;
  stream_options.capacity_mode = request.mode;
  if (request.max_record_bytes) stream_options.max_record_bytes = *request.max_record_bytes;
  const int initial_shards =
      request.mode == CapacityMode::kOnDemand
          ? std::max(request.shard_count, stream_options.on_demand.min_shards)
          : request.shard_count;
  {
    rill::internal::MutexLock<rill::internal::SharedMutex> lock(&mu_);
    bool pending_deletion;
    {
      rill::internal::MutexLock pending_lock(&pending_deletions_->mu);
      pending_deletion = pending_deletions_->names.contains(request.name);
    }
    if (streams_.contains(request.name) || creating_.contains(request.name) || pending_deletion) {
      return ResourceInUseError(absl::StrFormat("Stream %s under account %s already exists.",
                                                request.name, options_.account_id));
    }
    if (absl::Status s = CheckShardLimitLocked(initial_shards); !s.ok()) return s;
    if (request.mode == CapacityMode::kOnDemand) {
      int on_demand = 0;
      for (const auto& [name, entry] : streams_) {
        if (entry.stream->DescribeStreamSummary().capacity_mode == CapacityMode::kOnDemand) {
          ++on_demand;
        }
      }
      if (on_demand >= options_.on_demand_stream_count_limit) {
        return LimitExceededError(absl::StrFormat(
            "This request would exceed the on-demand stream count limit for the account %s in "
            "%s. Limit: %d.",
            options_.account_id, options_.region, options_.on_demand_stream_count_limit));
      }
    }
    creating_.insert(request.name);
  }
  // Made outside the lock: a durable stream creates files, and puts to other streams must not
  // wait for that. creating_ keeps the name reserved meanwhile.
  std::shared_ptr<Stream> stream;
  absl::Status status;
  if (options_.root_directory) {
    const std::string directory =
        (std::filesystem::path(*options_.root_directory) / request.name).string();
    stream_options.memory_limit = {};
    stream_options.storage = options_.storage_template;
    stream_options.storage->directory = directory;
    absl::StatusOr<std::unique_ptr<Stream>> made = Stream::Create(stream_options);
    if (made.ok()) {
      stream = WithDirectoryRemoval(std::move(*made), directory);
    } else {
      status = made.status();
    }
  } else {
    absl::StatusOr<std::unique_ptr<Stream>> made = Stream::Create(stream_options);
    if (made.ok()) {
      stream = std::move(*made);
    } else {
      status = made.status();
    }
  }
  rill::internal::MutexLock<rill::internal::SharedMutex> lock(&mu_);
  creating_.erase(request.name);
  if (!status.ok()) return status;
  Entry& entry = streams_[request.name];
  entry.stream = stream;
  entry.owns_directory = options_.root_directory.has_value();
  if (entry.owns_directory) {
    entry.directory = (std::filesystem::path(*options_.root_directory) / request.name).string();
  }
  std::map<std::string, std::string> tags;
  for (auto& [key, value] : request.tags) tags[key] = std::move(value);
  if (!tags.empty()) {
    // The stream exists either way; a tag file that cannot be written is reported.
    absl::Status saved = SaveTags(entry, tags);
    entry.tags = std::move(tags);
    if (!saved.ok()) return saved;
  }
  return stream;
}

absl::Status StreamRegistry::SaveTags(const Entry& entry,
                                      const std::map<std::string, std::string>& tags) {
  if (entry.directory.empty()) return absl::OkStatus();
  std::string json;
  JsonWriter w(&json);
  w.BeginObject();
  for (const auto& [key, value] : tags) w.Member(key, value);
  w.EndObject();
  const std::string temp = entry.directory + "/" + kTagsTempFile;
  std::FILE* f = std::fopen(temp.c_str(), "wb");
  if (f == nullptr) return InternalFailureError(absl::StrCat("cannot write ", temp));
  const bool written = std::fwrite(json.data(), 1, json.size(), f) == json.size();
  if (std::fclose(f) != 0 || !written) {
    return InternalFailureError(absl::StrCat("cannot write ", temp));
  }
  std::error_code ec;
  std::filesystem::rename(temp, entry.directory + "/" + kTagsFile, ec);
  if (ec) return InternalFailureError(absl::StrCat("cannot replace tags: ", ec.message()));
  return absl::OkStatus();
}

absl::Status StreamRegistry::Insert(std::shared_ptr<Stream> stream, std::string directory,
                                    std::map<std::string, std::string> tags) {
  if (stream == nullptr) return InvalidArgumentError("cannot adopt a null stream");
  const std::string name = stream->name();
  rill::internal::MutexLock<rill::internal::SharedMutex> lock(&mu_);
  if (streams_.contains(name) || creating_.contains(name)) {
    return ResourceInUseError(
        absl::StrFormat("Stream %s under account %s already exists.", name, options_.account_id));
  }
  Entry& entry = streams_[name];
  entry.stream = std::move(stream);
  entry.owns_directory = !directory.empty();
  entry.directory = std::move(directory);
  entry.tags = std::move(tags);
  return absl::OkStatus();
}

absl::Status StreamRegistry::Adopt(std::unique_ptr<Stream> stream) {
  return Insert(std::shared_ptr<Stream>(std::move(stream)));
}

absl::Status StreamRegistry::Adopt(std::shared_ptr<Stream> stream) {
  return Insert(std::move(stream));
}

absl::Status StreamRegistry::AdoptBorrowed(Stream* stream) {
  // A shared_ptr that owns nothing: the application keeps the stream.
  return Insert(std::shared_ptr<Stream>(stream, [](Stream*) {}));
}

absl::Status StreamRegistry::DeleteStream(std::string_view name) {
  std::shared_ptr<Stream> removed;
  {
    rill::internal::MutexLock<rill::internal::SharedMutex> lock(&mu_);
    auto it = streams_.find(name);
    if (it == streams_.end()) return ResourceNotFoundError(NotFoundMessage(name));
    removed = std::move(it->second.stream);
    const bool owns_directory = it->second.owns_directory;
    streams_.erase(it);
    if (owns_directory) {
      // Marks the name so that the deleter removes the directory (only deleters made by
      // WithDirectoryRemoval look) and CreateStream refuses the name until it has.
      rill::internal::MutexLock pending_lock(&pending_deletions_->mu);
      pending_deletions_->names.insert(std::string(name));
    }
  }
  // `removed` goes here, outside the lock: if it was the last reference, the stream is destroyed
  // (and a durable one's files removed) without holding up other requests.
  return absl::OkStatus();
}

std::shared_ptr<Stream> StreamRegistry::Find(std::string_view name) const {
  rill::internal::ReaderMutexLock lock(&mu_);
  auto it = streams_.find(name);
  return it == streams_.end() ? nullptr : it->second.stream;
}

std::vector<std::shared_ptr<Stream>> StreamRegistry::List() const {
  rill::internal::ReaderMutexLock lock(&mu_);
  std::vector<std::shared_ptr<Stream>> out;
  out.reserve(streams_.size());
  for (const auto& [name, entry] : streams_) out.push_back(entry.stream);
  return out;
}

std::vector<std::string> StreamRegistry::ListNames(std::string_view exclusive_start, int limit,
                                                   bool* has_more) const {
  rill::internal::ReaderMutexLock lock(&mu_);
  std::vector<std::string> out;
  auto it = exclusive_start.empty() ? streams_.begin() : streams_.upper_bound(exclusive_start);
  for (; it != streams_.end() && static_cast<int>(out.size()) < limit; ++it) {
    out.push_back(it->first);
  }
  if (has_more != nullptr) *has_more = it != streams_.end();
  return out;
}

absl::Status StreamRegistry::AddTags(std::string_view name,
                                     const std::vector<std::pair<std::string, std::string>>& tags) {
  bool percent = false;
  if (absl::Status s = ValidateTags(tags, &percent); !s.ok()) return s;
  rill::internal::MutexLock<rill::internal::SharedMutex> lock(&mu_);
  auto it = streams_.find(name);
  if (it == streams_.end()) return ResourceNotFoundError(NotFoundMessage(name));
  if (percent) {
    return InvalidArgumentError(absl::StrCat("Failed to add tags to stream ",
                                             internal::ToAbsl(name), " under account ",
                                             options_.account_id, kIllegalTagCharactersTail));
  }
  std::map<std::string, std::string>& current = it->second.tags;
  size_t after = current.size();
  for (const auto& [key, value] : tags) {
    if (!current.contains(key)) ++after;
  }
  // Keys repeated within the call count once: count distinct new keys.
  if (after > static_cast<size_t>(kMaxTagsPerStream)) {
    absl::flat_hash_set<std::string_view> fresh;
    for (const auto& [key, value] : tags) {
      if (!current.contains(key)) fresh.insert(key);
    }
    after = current.size() + fresh.size();
  }
  if (after > static_cast<size_t>(kMaxTagsPerStream)) {
    return InvalidArgumentError(absl::StrFormat(
        "Failed to add tags to stream %s under account %s because a given stream cannot have "
        "more than %d tags associated with it.",
        internal::ToAbsl(name), options_.account_id, kMaxTagsPerStream));
  }
  std::map<std::string, std::string> updated = current;
  for (const auto& [key, value] : tags) updated[key] = value;
  if (absl::Status s = SaveTags(it->second, updated); !s.ok()) return s;
  current = std::move(updated);
  return absl::OkStatus();
}

absl::Status StreamRegistry::RemoveTags(std::string_view name,
                                        const std::vector<std::string>& keys) {
  bool percent = false;
  for (const std::string& key : keys) {
    const TagText check = CheckTagText(key);
    if (check == TagText::kInvalidCharacter) return InvalidArgumentError(kInvalidTagCharacters);
    if (check == TagText::kPercent) percent = true;
  }
  rill::internal::MutexLock<rill::internal::SharedMutex> lock(&mu_);
  auto it = streams_.find(name);
  if (it == streams_.end()) return ResourceNotFoundError(NotFoundMessage(name));
  if (percent) {
    return InvalidArgumentError(absl::StrCat("Failed to remove tags from stream ",
                                             internal::ToAbsl(name), " under account ",
                                             options_.account_id, kIllegalTagCharactersTail));
  }
  std::map<std::string, std::string> updated = it->second.tags;
  for (const std::string& key : keys) updated.erase(key);
  if (absl::Status s = SaveTags(it->second, updated); !s.ok()) return s;
  it->second.tags = std::move(updated);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> StreamRegistry::ListTags(
    std::string_view name) const {
  rill::internal::ReaderMutexLock lock(&mu_);
  auto it = streams_.find(name);
  if (it == streams_.end()) return ResourceNotFoundError(NotFoundMessage(name));
  return std::vector<std::pair<std::string, std::string>>(it->second.tags.begin(),
                                                          it->second.tags.end());
}

std::string StreamRegistry::StreamArn(std::string_view name) const {
  return absl::StrCat("arn:aws:kinesis:", options_.region, ":", options_.account_id, ":stream/",
                      internal::ToAbsl(name));
}

absl::StatusOr<std::string> StreamRegistry::StreamNameFromArn(std::string_view arn) const {
  // arn:<partition>:kinesis:<region>:<account>:stream/<name>
  std::string_view parts[6];
  std::string_view rest = arn;
  for (int i = 0; i < 5; ++i) {
    const size_t colon = rest.find(':');
    if (colon == std::string_view::npos) return InvalidArgumentError("invalid stream ARN");
    parts[i] = rest.substr(0, colon);
    rest.remove_prefix(colon + 1);
  }
  parts[5] = rest;
  constexpr std::string_view kStreamPrefix = "stream/";
  if (parts[0] != "arn" || !parts[1].starts_with("aws") || parts[2] != "kinesis" ||
      !parts[5].starts_with(kStreamPrefix)) {
    return InvalidArgumentError("invalid stream ARN");
  }
  const std::string_view name = parts[5].substr(kStreamPrefix.size());
  if (!rill::internal::IsKinesisName(name)) return InvalidArgumentError("invalid stream ARN");
  if (parts[3] != options_.region || parts[4] != options_.account_id) {
    // Kinesis names the account the ARN gives: that is where it looked.
    return ResourceNotFoundError(absl::StrFormat("Stream %s under account %s not found.",
                                                 internal::ToAbsl(name),
                                                 internal::ToAbsl(parts[4])));
  }
  return std::string(name);
}

std::string StreamRegistry::NotFoundMessage(std::string_view name) const {
  return absl::StrFormat("Stream %s under account %s not found.", internal::ToAbsl(name),
                         options_.account_id);
}

AccountLimits StreamRegistry::DescribeLimits() const {
  AccountLimits limits;
  limits.shard_limit = options_.shard_limit;
  limits.on_demand_stream_count_limit = options_.on_demand_stream_count_limit;
  rill::internal::ReaderMutexLock lock(&mu_);
  for (const auto& [name, entry] : streams_) {
    const StreamSummary summary = entry.stream->DescribeStreamSummary();
    limits.open_shard_count += summary.open_shard_count;
    if (summary.capacity_mode == CapacityMode::kOnDemand) ++limits.on_demand_stream_count;
  }
  return limits;
}

}  // namespace rill::net
