// Server-side encryption: StartStreamEncryption / StopStreamEncryption, the data keys a durable
// stream writes with, and the keyring it reads with.
#include <cstring>

#include "absl/strings/str_format.h"
#include "rill/base/error.h"
#include "storage/stream_store.h"
#include "stream/stream_impl.h"
#include "stream/stream_shard.h"

namespace rill::internal {
namespace {

// Kinesis: 25 key changes or disables per rolling 24 hours.
constexpr size_t kKeyChangesPerDay = 25;
constexpr int64_t kDayMicros = int64_t{24} * 3600 * 1000 * 1000;

}  // namespace

std::string StreamImpl::ShardContext(uint32_t index) const {
  return ShardEncryptionContext(seed_, index);
}

ShardCrypto StreamImpl::CryptoFor(uint32_t index) const {
  MutexLock lock(&encryption_mu_);
  return ShardCrypto{keyring_.get(), ShardContext(index), write_key_};
}

absl::StatusOr<std::shared_ptr<const FrameWriteKey>> StreamImpl::NewWriteKey(
    std::string_view key_id) const {
  if (options_.key_provider == nullptr) {
    return MakeError(ErrorCode::kKmsNotFound,
                     absl::StrFormat("stream %s has no KeyProvider (StreamOptions::key_provider) "
                                     "to find key %s",
                                     options_.name, std::string(key_id)));
  }
  absl::StatusOr<DataKey> key = options_.key_provider->GenerateDataKey(key_id);
  if (!key.ok()) return key.status();
  if (key->plaintext.size() != kAeadKeyBytes || key->ciphertext_blob.size() > 0xffff) {
    return MakeError(ErrorCode::kKmsInvalidState,
                     "the KeyProvider returned a data key that is not a 32-byte AES-256 key");
  }
  return std::make_shared<const FrameWriteKey>(
      FrameWriteKey{std::string(key_id), key->ciphertext_blob, key->plaintext});
}

absl::Status StreamImpl::ApplyWriteKeyLocked(std::shared_ptr<const FrameWriteKey> key) {
  if (store_ != nullptr) {
    // The journal first: records put from now on are encrypted there, then in the segments.
    if (absl::Status s = store_->journal()->SetEncryption(key); !s.ok()) return AsKinesisError(s);
    for (const auto& shard : shards_) {
      if (ShardStore* disk = shard->storage.disk(); disk != nullptr) {
        if (absl::Status s = disk->SetWriteKey(key); !s.ok()) return AsKinesisError(s);
      }
    }
  }
  MutexLock lock(&encryption_mu_);
  write_key_ = std::move(key);
  return absl::OkStatus();
}

absl::Status StreamImpl::StartStreamEncryption(EncryptionType type, std::string_view key_id) {
  if (type != EncryptionType::kKms) {
    return InvalidArgumentError("StartStreamEncryption: EncryptionType must be KMS");
  }
  if (absl::Status s = ValidateKmsKeyId(key_id); !s.ok()) return s;
  if (options_.key_provider == nullptr) return NewWriteKey(key_id).status();
  if (absl::Status s = options_.key_provider->CheckKey(key_id); !s.ok()) return s;
  // A durable stream writes with a data key under it; an in-memory one holds nothing at rest.
  std::shared_ptr<const FrameWriteKey> key;
  if (store_ != nullptr) {
    absl::StatusOr<std::shared_ptr<const FrameWriteKey>> made = NewWriteKey(key_id);
    if (!made.ok()) return made.status();
    key = *std::move(made);
  }
  MutexLock shards(&shards_mu_);
  const int64_t now_us = ToMicros(options_.clock->Now());
  {
    MutexLock lock(&encryption_mu_);
    while (!key_changes_us_.empty() && key_changes_us_.front() <= now_us - kDayMicros) {
      key_changes_us_.pop_front();
    }
    if (encryption_type_ == EncryptionType::kKms && key_id_ == key_id) return absl::OkStatus();
    if (key_changes_us_.size() >= kKeyChangesPerDay) {
      return LimitExceededError(
          absl::StrFormat("stream %s: at most %d encryption key changes or disables per 24 hours",
                          options_.name, kKeyChangesPerDay));
    }
  }
  if (absl::Status s = ApplyWriteKeyLocked(key); !s.ok()) return s;
  {
    MutexLock lock(&encryption_mu_);
    encryption_type_ = EncryptionType::kKms;
    key_id_ = std::string(key_id);
    key_changes_us_.push_back(now_us);
  }
  return PersistMetaLocked();
}

absl::Status StreamImpl::StopStreamEncryption(EncryptionType type, std::string_view key_id) {
  if (type != EncryptionType::kKms) {
    return InvalidArgumentError("StopStreamEncryption: EncryptionType must be KMS");
  }
  if (absl::Status s = ValidateKmsKeyId(key_id); !s.ok()) return s;
  MutexLock shards(&shards_mu_);
  const int64_t now_us = ToMicros(options_.clock->Now());
  {
    MutexLock lock(&encryption_mu_);
    if (encryption_type_ == EncryptionType::kNone) return absl::OkStatus();
    if (key_id_ != key_id) {
      return InvalidArgumentError(absl::StrFormat("stream %s is encrypted with key %s, not %s",
                                                  options_.name, key_id_, std::string(key_id)));
    }
    while (!key_changes_us_.empty() && key_changes_us_.front() <= now_us - kDayMicros) {
      key_changes_us_.pop_front();
    }
    if (key_changes_us_.size() >= kKeyChangesPerDay) {
      return LimitExceededError(
          absl::StrFormat("stream %s: at most %d encryption key changes or disables per 24 hours",
                          options_.name, kKeyChangesPerDay));
    }
  }
  if (absl::Status s = ApplyWriteKeyLocked(nullptr); !s.ok()) return s;
  {
    MutexLock lock(&encryption_mu_);
    encryption_type_ = EncryptionType::kNone;
    key_id_.clear();
    key_changes_us_.push_back(now_us);
  }
  return PersistMetaLocked();
}

}  // namespace rill::internal
