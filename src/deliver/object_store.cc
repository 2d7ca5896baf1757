#include "deliver/object_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <optional>
#include <system_error>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "base/utf.h"
#include "deliver/codec.h"
#include "deliver/object_key.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "storage/file_util.h"

namespace rill::deliver_internal {
namespace {

using internal::ErrnoText;
using internal::ScopedFd;
using internal::ToAbsl;

std::atomic<int> g_write_fault{0};

// The longest !{firehose:error-output-type} Firehose has, for the length checks of Open.
constexpr std::string_view kLongestErrorOutputType = "AmazonOpenSearchService-failed";

absl::Status IoFailure(std::string_view what, std::string_view path, int error) {
  return InternalFailureError(
      absl::StrFormat("%s %s: %s", ToAbsl(what), ToAbsl(path), ErrnoText(error)));
}

int OpenRetrying(const std::string& path, int flags, int mode = 0) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// fsync of a directory: makes the creation, renaming and removal of its entries durable.
absl::Status SyncDirectory(const std::string& path) {
  ScopedFd fd(OpenRetrying(path, O_RDONLY | O_DIRECTORY));
  if (!fd.valid()) return IoFailure("cannot open directory", path, errno);
  if (::fsync(fd.get()) != 0) return IoFailure("cannot fsync directory", path, errno);
  return absl::OkStatus();
}

// Checks a parsed prefix against the worst case of what it can evaluate to: every name at its
// longest (September 25, 2024, a Wednesday, day 269, 22:22:22) and `error_output_type`; empty
// partition key values for the length and "x" for the path checks (a value's own problems are the
// batch's, found when it is delivered).
absl::Status CheckPrefixCanEvaluate(const KeyPrefix& prefix, absl::TimeZone zone,
                                    std::string_view field, std::string_view error_output_type) {
  const absl::Time sample = zone.At(absl::CivilSecond(2024, 9, 25, 22, 22, 22)).pre;
  std::vector<std::pair<std::string, std::string>> keys;
  for (const auto* names : {&prefix.needs().query_keys, &prefix.needs().lambda_keys}) {
    for (const std::string& name : *names) keys.emplace_back(name, "");
  }
  EvaluatedPrefix shortest = prefix.Evaluate(sample, zone, keys, error_output_type);
  if (!shortest.ok()) {
    return InvalidArgumentError(
        absl::StrCat(ToAbsl(field), ": ", shortest.error_message, " (Firehose's limit)"));
  }
  for (auto& kv : keys) kv.second = "x";
  EvaluatedPrefix sampled = prefix.Evaluate(sample, zone, keys, error_output_type);
  if (!sampled.ok()) {
    return InvalidArgumentError(absl::StrCat(ToAbsl(field), ": ", sampled.error_message));
  }
  // "x" stands for the suffix, which always follows.
  absl::Status key = CheckObjectKey(sampled.prefix + "x");
  if (!key.ok()) {
    return InvalidArgumentError(
        absl::StrCat(ToAbsl(field), " \"", absl::CHexEscape(ToAbsl(prefix.text())),
                     "\" makes keys a directory cannot hold: ", key.message()));
  }
  return absl::OkStatus();
}

// Checks that a suffix of `stream_name` and `extension` fits in one path segment.
absl::Status CheckSuffixFits(std::string_view stream_name, std::string_view extension) {
  const std::string suffix =
      ObjectKeySuffix(stream_name, absl::UnixEpoch(), absl::UTCTimeZone(), extension);
  absl::Status status = CheckObjectKey(suffix);
  if (!status.ok()) {
    return InvalidArgumentError(absl::StrCat(
        "the delivery stream's name and file extension make object names it cannot write: ",
        status.message()));
  }
  return absl::OkStatus();
}

// Publishes objects atomically under one directory (see MakeObjectStoreDestination). Its
// temporary files are <directory>/.rill-staging/<tag><uuid>.tmp, and Open removes those of its
// own tag only: several delivery streams (and a stream's error output) may share a directory, as
// S3 buckets are shared, and one's start must not pull a file from under another's write.
//
// Thread safety: not thread-safe; its owner serialises calls.
class ObjectPublisher {
 public:
  ObjectPublisher(std::string directory, std::string tag)
      : directory_(std::move(directory)), tag_(std::move(tag)) {
    while (directory_.size() > 1 && directory_.back() == '/') directory_.pop_back();
    staging_ = PathOf(kStagingDirectoryName);
  }

  absl::Status Open() {
    if (directory_.empty()) return InvalidArgumentError("the object store's directory is empty");
    // The directories about to be created, so that their entries can be made durable too.
    std::vector<std::filesystem::path> created;
    std::error_code ec;
    for (std::filesystem::path p = std::filesystem::path(directory_).lexically_normal();
         !p.empty() && p.has_relative_path(); p = p.parent_path()) {
      if (!p.has_filename()) continue;  // "a/b/" names "a/b"
      if (std::filesystem::exists(p, ec) || ec) break;
      created.push_back(p);
    }
    std::filesystem::create_directories(directory_, ec);
    if (ec) {
      return InternalFailureError(absl::StrFormat(
          "cannot create the object store's directory %s: %s", directory_, ec.message()));
    }
    for (const std::filesystem::path& p : created) {
      std::filesystem::path parent = p.parent_path();
      if (parent.empty()) parent = ".";
      absl::Status synced = SyncDirectory(parent.string());
      if (!synced.ok()) return synced;
    }
    if (::mkdir(staging_.c_str(), 0755) != 0 && errno != EEXIST) {
      return IoFailure("cannot create the staging directory", staging_, errno);
    }
    absl::Status synced = SyncDirectory(directory_);
    if (!synced.ok()) return synced;
    return ClearStaging();
  }

  // Writes `data` as the object `key` (which CheckObjectKey accepted). kInternalFailure naming
  // the path and errno's text; nothing is visible at `key` then.
  absl::Status Publish(std::string_view key, std::string_view data) {
    const std::string temp = absl::StrCat(staging_, "/", tag_, RandomUuid(), ".tmp");
    ScopedFd fd(OpenRetrying(temp, O_WRONLY | O_CREAT | O_EXCL, 0644));
    if (!fd.valid()) return IoFailure("cannot create", temp, errno);
    int error = WriteAll(fd.get(), data);
    const char* step = "cannot write";
    if (error == 0 && ::fsync(fd.get()) != 0) {
      error = errno;
      step = "cannot fsync";
    }
    if (error == 0 && fd.Close() != 0) {
      error = errno;
      step = "cannot close";
    }
    if (error != 0) {
      ::unlink(temp.c_str());
      return IoFailure(step, temp, error);
    }
    const size_t slash = key.rfind('/');
    const std::string target_dir =
        slash == std::string_view::npos ? directory_ : PathOf(key.substr(0, slash));
    const std::string path = PathOf(key);
    for (int round = 1;; ++round) {
      if (absl::Status made = MakeKeyDirectories(key); !made.ok()) {
        ::unlink(temp.c_str());
        return made;
      }
      if (::rename(temp.c_str(), path.c_str()) == 0) break;
      error = errno;
      // A key directory removed behind our back after we made it: forget what we made and
      // make them again, once.
      if (error == ENOENT && round == 1) {
        durable_dirs_.clear();
        continue;
      }
      ::unlink(temp.c_str());
      return IoFailure(absl::StrCat("cannot rename ", temp, " to"), path, error);
    }
    if (absl::Status synced = SyncDirectory(target_dir); !synced.ok()) {
      // Not known to be durable, so not published: the caller retries, and a second copy
      // would be a duplicate. A reader may have seen it already (at-least-once).
      ::unlink(path.c_str());
      return synced;
    }
    return absl::OkStatus();
  }

 private:
  // Bounds the memory of durable_dirs_ (dynamic partitioning may make many directories).
  static constexpr size_t kMaxRememberedDirectories = 10000;

  std::string PathOf(std::string_view relative) const {
    return directory_ == "/" ? absl::StrCat("/", ToAbsl(relative))
                             : absl::StrCat(directory_, "/", ToAbsl(relative));
  }

  // Writes all of `data`; returns 0 or an errno value. The test hook's fault writes half first.
  static int WriteAll(int fd, std::string_view data) {
    const int fault = g_write_fault.load(std::memory_order_relaxed);
    std::string_view rest = fault != 0 ? data.substr(0, data.size() / 2) : data;
    while (!rest.empty()) {
      const ssize_t n = ::write(fd, rest.data(), rest.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      rest.remove_prefix(static_cast<size_t>(n));
    }
    return fault;
  }

  // Creates the directories of `key` and makes their entries durable, so that the rename into
  // them survives a power loss. A directory is synced when this publisher creates it or first
  // meets it (another writer, or this process before a crash, may have created it without the
  // sync yet); later publishes into it cost no system call.
  absl::Status MakeKeyDirectories(std::string_view key) {
    const size_t last = key.rfind('/');
    if (last == std::string_view::npos) return absl::OkStatus();
    if (durable_dirs_.contains(ToAbsl(key.substr(0, last)))) return absl::OkStatus();
    std::vector<std::string> met;  // relative paths, outermost first
    for (size_t slash = key.find('/'); slash != std::string_view::npos && slash <= last;
         slash = key.find('/', slash + 1)) {
      const std::string_view relative = key.substr(0, slash);
      if (durable_dirs_.contains(ToAbsl(relative))) continue;
      const std::string path = PathOf(relative);
      if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
        return IoFailure("cannot create directory", path, errno);
      }
      met.emplace_back(relative);
    }
    // Sync each one (which also finds a file where a directory should be) and its parent, where
    // its entry lives. Parents repeat along a chain: sync each directory once.
    std::vector<std::string> to_sync;
    auto add = [&to_sync](std::string dir) {
      if (std::find(to_sync.begin(), to_sync.end(), dir) == to_sync.end()) {
        to_sync.push_back(std::move(dir));
      }
    };
    for (const std::string& relative : met) {
      const size_t slash = relative.rfind('/');
      add(PathOf(relative));
      add(slash == std::string::npos ? directory_
                                     : PathOf(std::string_view(relative).substr(0, slash)));
    }
    for (const std::string& dir : to_sync) {
      if (absl::Status synced = SyncDirectory(dir); !synced.ok()) return synced;
    }
    if (durable_dirs_.size() + met.size() > kMaxRememberedDirectories) durable_dirs_.clear();
    for (std::string& relative : met) durable_dirs_.insert(std::move(relative));
    return absl::OkStatus();
  }

  // Removes this publisher's temporary files that a crash left.
  absl::Status ClearStaging() {
    DIR* dir = ::opendir(staging_.c_str());
    if (dir == nullptr) return IoFailure("cannot list", staging_, errno);
    absl::Status status;
    errno = 0;
    while (const dirent* entry = ::readdir(dir)) {
      const std::string_view name = entry->d_name;
      if (name.size() > tag_.size() + 4 && name.substr(0, tag_.size()) == tag_ &&
          name.substr(name.size() - 4) == ".tmp") {
        const std::string path = absl::StrCat(staging_, "/", ToAbsl(name));
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
          status = IoFailure("cannot remove the leftover", path, errno);
          break;
        }
      }
      errno = 0;
    }
    if (status.ok() && errno != 0) status = IoFailure("cannot list", staging_, errno);
    ::closedir(dir);
    return status;
  }

  std::string directory_;
  std::string staging_;
  std::string tag_;
  // Key directories (relative to directory_) whose entries are known to be durable.
  absl::flat_hash_set<std::string> durable_dirs_;
};

// The temporary files' tag: the role, then the stream name, each followed by '~', which Kinesis
// names cannot hold, so that no tag is the start of another.
std::string StagingTag(std::string_view role, std::string_view stream_name) {
  return absl::StrCat(ToAbsl(role), "~", ToAbsl(stream_name), "~");
}

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        out->push_back('\\');
        out->push_back(static_cast<char>(c));
      } else if (c < 0x20) {
        absl::StrAppendFormat(out, "\\u%04x", c);
      } else {
        out->push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    uint32_t code_point;
    const size_t n = internal::DecodeUtf8(s.substr(i), &code_point);
    if (n == 0) {
      out->append("\xEF\xBF\xBD");  // U+FFFD for each byte that starts no valid sequence
      ++i;
    } else {
      out->append(s.substr(i, n));
      i += n;
    }
  }
  out->push_back('"');
}

void AppendFailedRecord(const FailedRecord& r, std::string* out) {
  absl::StrAppend(out, "{\"attemptsMade\":", r.attempts_made,
                  ",\"arrivalTimestamp\":", absl::ToUnixMillis(r.arrival), ",\"errorCode\":");
  AppendJsonString(r.error_code, out);
  out->append(",\"errorMessage\":");
  AppendJsonString(r.error_message, out);
  absl::StrAppend(out, ",\"attemptEndingTimestamp\":", absl::ToUnixMillis(r.attempt_ending),
                  ",\"rawData\":\"", absl::Base64Escape(r.raw_data), "\"");
  if (!r.lambda_arn.empty()) {
    out->append(",\"lambdaArn\":");
    AppendJsonString(r.lambda_arn, out);
  }
  out->append("}\n");
}

class ErrorOutputWriterImpl : public ErrorOutputWriter {
 public:
  ErrorOutputWriterImpl(std::string directory, KeyPrefix prefix, absl::TimeZone zone,
                        std::string stream_name)
      : publisher_(std::move(directory), StagingTag("error", stream_name)),
        prefix_(std::move(prefix)),
        zone_(zone),
        stream_name_(std::move(stream_name)) {}

  absl::Status Open() {
    internal::MutexLock lock(&mu_);
    return publisher_.Open();
  }

  absl::Status Write(std::string_view error_output_type,
                     absl::Span<const FailedRecord> records) override {
    if (records.empty()) return absl::OkStatus();
    internal::MutexLock lock(&mu_);
    absl::Time oldest = records.front().arrival;
    for (const FailedRecord& r : records) oldest = std::min(oldest, r.arrival);
    EvaluatedPrefix evaluated = prefix_.Evaluate(oldest, zone_, {}, error_output_type);
    if (!evaluated.ok()) {
      return InvalidArgumentError(absl::StrCat("error output: ", evaluated.error_message));
    }
    const std::string key = evaluated.prefix + ObjectKeySuffix(stream_name_, oldest, zone_, "");
    if (absl::Status checked = CheckObjectKey(key); !checked.ok()) {
      return InvalidArgumentError(absl::StrCat("error output: ", checked.message()));
    }
    buffer_.clear();
    for (const FailedRecord& r : records) AppendFailedRecord(r, &buffer_);
    absl::Status published = publisher_.Publish(key, buffer_);
    if (!published.ok()) {
      return InternalFailureError(
          absl::StrCat("writing error output ", key, ": ", published.message()));
    }
    return absl::OkStatus();
  }

 private:
  internal::Mutex mu_;
  ObjectPublisher publisher_ ABSL_GUARDED_BY(mu_);
  const KeyPrefix prefix_;
  const absl::TimeZone zone_;
  const std::string stream_name_;
  std::string buffer_ ABSL_GUARDED_BY(mu_);  // reused: its capacity stays
};

class ObjectStoreDestinationImpl : public Destination {
 public:
  ObjectStoreDestinationImpl(ObjectStoreDestination options, std::string stream_name)
      : options_(std::move(options)),
        stream_name_(std::move(stream_name)),
        publisher_(options_.directory, StagingTag("data", stream_name_)) {}

  absl::Status Open() override {
    absl::StatusOr<PrefixNeeds> needs =
        ValidatePrefixes(options_.prefix, options_.error_output_prefix, options_.custom_time_zone);
    if (!needs.ok()) return needs.status();
    if (absl::Status s = CheckFileExtension(options_.file_extension); !s.ok()) return s;
    extension_ = options_.file_extension.empty()
                     ? std::string(CompressionExtension(options_.compression))
                     : options_.file_extension;
    if (absl::Status s = CheckSuffixFits(stream_name_, extension_); !s.ok()) return s;
    absl::StatusOr<absl::TimeZone> zone = LoadCustomTimeZone(options_.custom_time_zone);
    if (!zone.ok()) return zone.status();
    zone_ = *zone;
    absl::StatusOr<KeyPrefix> prefix = KeyPrefix::Parse(options_.prefix, PrefixField::kPrefix);
    if (!prefix.ok()) return prefix.status();
    prefix_ = *std::move(prefix);
    if (absl::Status s = publisher_.Open(); !s.ok()) return s;
    open_ = true;
    return absl::OkStatus();
  }

  std::string_view metric_name() const override { return "S3"; }
  std::string_view error_output_type() const override { return "s3-failed"; }
  absl::Duration retry_duration() const override { return absl::InfiniteDuration(); }

  DeliveryAttempt Deliver(const Batch& batch, int /*attempt*/) override {
    if (!open_) {
      return DeliveryAttempt::Retryable("S3.WriteFailed",
                                        "the object store destination is not open");
    }
    EvaluatedPrefix evaluated =
        prefix_->Evaluate(batch.oldest_arrival, zone_, batch.partition_keys, "");
    if (!evaluated.ok()) {
      return DeliveryAttempt::Permanent(std::move(evaluated.error_code),
                                        std::move(evaluated.error_message));
    }
    std::string key = std::move(evaluated.prefix);
    key.append(ObjectKeySuffix(stream_name_, batch.oldest_arrival, zone_, extension_));
    if (absl::Status checked = CheckObjectKey(key); !checked.ok()) {
      return DeliveryAttempt::Permanent(prefix_->needs().dynamic_partitioning()
                                            ? std::string(kInvalidPartitionKeyCode)
                                            : std::string("S3.InvalidKey"),
                                        std::string(checked.message()));
    }
    std::string_view data;
    if (!Concatenate(batch, &data)) {
      return DeliveryAttempt::Permanent("S3.InvalidBatch",
                                        "a record lies outside the batch's data (a rill bug)");
    }
    if (options_.compression != CompressionFormat::kUncompressed) {
      compressed_.clear();
      absl::Status compressed = Compress(options_.compression, data, &compressed_);
      if (!compressed.ok()) {
        return DeliveryAttempt::Permanent("S3.CompressionFailed",
                                          std::string(compressed.message()));
      }
      data = compressed_;
    }
    absl::Status published = publisher_.Publish(key, data);
    if (!published.ok()) {
      return DeliveryAttempt::Retryable("S3.WriteFailed",
                                        absl::StrCat("writing ", key, ": ", published.message()));
    }
    return DeliveryAttempt::Delivered();
  }

 private:
  // Points *data at the records' data back to back: the arena itself when the records cover it
  // in order (the usual case), otherwise a copy in concatenated_. False if a record is out of
  // the arena's bounds.
  bool Concatenate(const Batch& batch, std::string_view* data) {
    uint64_t next = 0;
    bool whole_arena = true;
    for (const BatchRecord& r : batch.records) {
      if (r.offset > batch.arena.size() || r.size > batch.arena.size() - r.offset) return false;
      if (r.offset != next) whole_arena = false;
      next = r.offset + r.size;
    }
    if (whole_arena && next == batch.arena.size()) {
      *data = batch.arena;
      return true;
    }
    concatenated_.clear();
    for (const BatchRecord& r : batch.records) concatenated_.append(batch.data(r));
    *data = concatenated_;
    return true;
  }

  const ObjectStoreDestination options_;
  const std::string stream_name_;
  ObjectPublisher publisher_;
  bool open_ = false;
  std::optional<KeyPrefix> prefix_;
  absl::TimeZone zone_;
  std::string extension_;
  // Reused from batch to batch: their capacity stays.
  std::string concatenated_;
  std::string compressed_;
};

}  // namespace

absl::StatusOr<PrefixNeeds> ValidatePrefixes(std::string_view prefix,
                                             std::string_view error_output_prefix,
                                             std::string_view custom_time_zone) {
  absl::StatusOr<absl::TimeZone> zone = LoadCustomTimeZone(custom_time_zone);
  if (!zone.ok()) return zone.status();
  absl::StatusOr<KeyPrefix> parsed = KeyPrefix::Parse(prefix, PrefixField::kPrefix);
  if (!parsed.ok()) return parsed.status();
  if (absl::Status s = CheckPrefixCanEvaluate(*parsed, *zone, "Prefix", ""); !s.ok()) return s;
  std::string error_text;
  if (error_output_prefix.empty()) {
    if (HasExpressions(prefix)) {
      return InvalidArgumentError(
          "ErrorOutputPrefix may be empty only if Prefix has no expressions");
    }
    error_text = DefaultErrorOutputPrefix(prefix);
  } else {
    error_text = std::string(error_output_prefix);
  }
  absl::StatusOr<KeyPrefix> error_parsed =
      KeyPrefix::Parse(error_text, PrefixField::kErrorOutputPrefix);
  if (!error_parsed.ok()) return error_parsed.status();
  if (absl::Status s = CheckPrefixCanEvaluate(*error_parsed, *zone, "ErrorOutputPrefix",
                                              kLongestErrorOutputType);
      !s.ok()) {
    return s;
  }
  return parsed->needs();
}

absl::StatusOr<std::unique_ptr<ErrorOutputWriter>> ErrorOutputWriter::Open(
    std::string directory, std::string prefix, std::string custom_time_zone,
    std::string stream_name) {
  absl::StatusOr<absl::TimeZone> zone = LoadCustomTimeZone(custom_time_zone);
  if (!zone.ok()) return zone.status();
  if (prefix.empty()) prefix = DefaultErrorOutputPrefix("");
  absl::StatusOr<KeyPrefix> parsed = KeyPrefix::Parse(prefix, PrefixField::kErrorOutputPrefix);
  if (!parsed.ok()) return parsed.status();
  if (absl::Status s =
          CheckPrefixCanEvaluate(*parsed, *zone, "ErrorOutputPrefix", kLongestErrorOutputType);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckSuffixFits(stream_name, ""); !s.ok()) return s;
  auto writer = std::make_unique<ErrorOutputWriterImpl>(std::move(directory), *std::move(parsed),
                                                        *zone, std::move(stream_name));
  if (absl::Status s = writer->Open(); !s.ok()) return s;
  return std::unique_ptr<ErrorOutputWriter>(std::move(writer));
}

std::unique_ptr<Destination> MakeObjectStoreDestination(ObjectStoreDestination options,
                                                        std::string stream_name) {
  return std::make_unique<ObjectStoreDestinationImpl>(std::move(options), std::move(stream_name));
}

std::string EffectiveErrorOutputPrefix(const ObjectStoreDestination& options) {
  if (!options.error_output_prefix.empty()) return options.error_output_prefix;
  return DefaultErrorOutputPrefix(options.prefix);
}

void SetObjectStoreWriteFaultForTesting(int error) {
  g_write_fault.store(error, std::memory_order_relaxed);
}

}  // namespace rill::deliver_internal
