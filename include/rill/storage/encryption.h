// Server-side encryption at rest: the encryption types of StartStreamEncryption, and the key
// provider that plays KMS' part.
//
// A durable stream encrypted with EncryptionType::kKms seals its frames with AES-256-GCM under
// data keys. A KeyProvider makes each data key (GenerateDataKey) and returns it twice: in the
// clear, for the stream to use and keep in memory only, and wrapped under a master key that never
// leaves the provider, for the stream to store beside its data. To read the data back, the stream
// has the provider unwrap the stored blob (DecryptDataKey). Disabling the master key, or denying
// access to it, therefore stops new data keys from being made and old ones from being unwrapped,
// as with KMS.
//
// FileKeyProvider keeps master keys in a keyring file on the local machine: KMS' role for one
// machine, managed with its static functions (so that tools, such as the `rill` command, can
// manage keys without a provider).
//
// Example:
//   const std::string keyring = "/var/lib/rill/keyring";
//   absl::Status s = rill::FileKeyProvider::CreateKeyring(keyring);   // once
//   s = rill::FileKeyProvider::CreateKey(keyring, "alias/rill");       // once
//   absl::StatusOr<std::unique_ptr<rill::FileKeyProvider>> keys =
//       rill::FileKeyProvider::Open(keyring);
//   absl::StatusOr<rill::DataKey> key = (*keys)->GenerateDataKey("alias/rill");
//   // ... encrypt with key->plaintext, store key->ciphertext_blob ...
//   absl::StatusOr<std::string> same =
//       (*keys)->DecryptDataKey("alias/rill", key->ciphertext_blob);  // == key->plaintext
//
// Thread safety: KeyProvider implementations must be safe to call from any number of threads at
// once; FileKeyProvider is. The free functions are thread-safe.
#ifndef RILL_STORAGE_ENCRYPTION_H_
#define RILL_STORAGE_ENCRYPTION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rill {

// Kinesis' EncryptionType. The numeric values are stable: they may be persisted.
enum class EncryptionType {
  kNone = 0,  // records are stored in the clear
  kKms = 1,   // records are encrypted under data keys of a KeyProvider's master key
};

// "NONE" or "KMS", Kinesis' spelling; "UNKNOWN" for a value outside the enum.
std::string_view EncryptionTypeName(EncryptionType type);

// The inverse of EncryptionTypeName: exactly "NONE" or "KMS" (case matters, as in Kinesis' API);
// kInvalidArgument for anything else.
[[nodiscard]] absl::StatusOr<EncryptionType> ParseEncryptionType(std::string_view name);

// The size of a data key in the clear: an AES-256 key.
inline constexpr size_t kDataKeyBytes = 32;

// The longest KMS key id, in characters.
inline constexpr size_t kMaxKmsKeyIdChars = 2048;

// Checks the form of a KMS key id: 1 to kMaxKmsKeyIdChars characters of [A-Za-z0-9/_:.-]. KMS'
// forms all fit: an alias ("alias/rill"), a key id (a UUID,
// "1234abcd-12ab-34cd-56ef-1234567890ab"), or either as an ARN
// ("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"). OK or
// kInvalidArgument, saying what is wrong. Every KeyProvider call checks its key id with this
// first.
[[nodiscard]] absl::Status ValidateKmsKeyId(std::string_view key_id);

// A data key made by KeyProvider::GenerateDataKey.
//
// The destructor overwrites `plaintext`, so that a data key does not linger in freed memory; what
// a caller copies out of `plaintext` is its own to wipe. (DataKey stays an aggregate, so it copies
// where it would move; every DataKey copy wipes its own bytes.)
struct DataKey {
  // The key in the clear: kDataKeyBytes bytes, to encrypt with and keep in memory only.
  std::string plaintext;
  // The same key wrapped under the master key: opaque bytes, safe to store, that only
  // DecryptDataKey with the same key id and provider can unwrap.
  std::string ciphertext_blob;

  ~DataKey();
};

// KMS' part in server-side encryption: master keys, known by id, that make and unwrap data keys.
//
// Errors are Kinesis' names for KMS' (rill/base/error.h), for every call:
//   - kInvalidArgument: `key_id` is not of ValidateKmsKeyId's form.
//   - kKmsNotFound: no key has this id (or, for FileKeyProvider, the keyring file is gone).
//   - kKmsDisabled: the key is disabled (for DecryptDataKey too, as KMS).
//   - kKmsInvalidState: the key is pending deletion.
//   - kKmsAccessDenied: the provider may not use the key store (FileKeyProvider: the keyring file
//     cannot be read or is damaged), or a blob does not unwrap under the key (DecryptDataKey).
// Messages name the key id and say what to check.
//
// Thread safety: implementations must be safe to call from any number of threads at once.
class KeyProvider {
 public:
  virtual ~KeyProvider() = default;

  // OK if `key_id` can make data keys now (it exists and is enabled). StartStreamEncryption
  // calls it, so that a stream is not switched to a key it cannot use.
  [[nodiscard]] virtual absl::Status CheckKey(std::string_view key_id) = 0;

  // A fresh random data key, and the same key wrapped under the current version of `key_id`
  // (KMS GenerateDataKey). Requires the key to be enabled.
  [[nodiscard]] virtual absl::StatusOr<DataKey> GenerateDataKey(std::string_view key_id) = 0;

  // Unwraps `ciphertext_blob`, made by GenerateDataKey(key_id) under any version of the key,
  // current or rotated out (KMS Decrypt), and returns the data key in the clear
  // (kDataKeyBytes bytes; the caller wipes it). Requires the key to be enabled. kKmsAccessDenied
  // when the blob was made by another provider or keyring, under another key id, or was altered.
  [[nodiscard]] virtual absl::StatusOr<std::string> DecryptDataKey(
      std::string_view key_id, std::string_view ciphertext_blob) = 0;
};

// A master key's state, KMS' KeyState names. The numeric values are stable.
enum class KeyState {
  kEnabled = 0,          // makes and unwraps data keys
  kDisabled = 1,         // does neither (kKmsDisabled) until enabled again
  kPendingDeletion = 2,  // does neither (kKmsInvalidState); CancelKeyDeletion makes it kDisabled
};

// "Enabled", "Disabled" or "PendingDeletion"; "Unknown" for a value outside the enum.
std::string_view KeyStateName(KeyState state);

// What FileKeyProvider::ListKeys says of a key: nothing secret.
struct KeyMetadata {
  std::string key_id;
  KeyState state = KeyState::kEnabled;
  // The version new data keys are wrapped under: 1 when created, one more per RotateKey.
  // Versions 1..current_version can all unwrap.
  uint32_t current_version = 1;
};

// A KeyProvider whose master keys live in a keyring file: KMS' role for one machine.
//
// Keys. Each key is known by exactly one id, the string given to CreateKey; the provider does not
// resolve aliases or ARNs to keys, so "alias/rill" and an ARN are two different keys. A key has
// one or more versions, each 32 random bytes (an AES-256 key); RotateKey adds a version, which
// becomes the current one, and keeps the old ones so that data keys wrapped under them still
// unwrap.
//
// Changes by others. The provider checks the file (one stat) on every call and reads it again
// when its inode, size, modification or change time differ from the copy it holds, so a key
// disabled, enabled, rotated or scheduled for deletion by another process or another provider
// affects the next call of this one; so does a keyring made unreadable (chmod) or removed. The
// management functions replace the file by renaming a new one over it, which always gives it a
// new inode (the provider keeps the file it read open, so that inode number cannot be reused).
// An edit made in place, keeping size and times within the file system's timestamp
// granularity, could go unseen until the next change; rill never writes the file that way.
//
// Failing closed. A keyring that cannot be read, or is damaged, fails every call with
// kKmsAccessDenied naming the file; the provider does not fall back on the copy it read before.
//
// Secrets in memory. The provider holds the keyring's key material (and nothing else secret) and
// overwrites it when the keyring is read again and in the destructor; buffers holding the file's
// contents are overwritten after use. Secrets are not locked in memory (no mlock), so they may
// reach swap.
//
// The keyring file (format version 1). Text, '\n'-terminated lines, holding the master keys in the
// clear: its protection is its permissions (0600, the owner only) and those of its directory.
//   rill-keyring 1
//   key <key id> <Enabled|Disabled|PendingDeletion>
//   version 1 <64 lowercase hex digits: the 32 bytes of key material>
//   version 2 <...>
//   key <next key id> ...
//   crc32c <8 lowercase hex digits>
// Keys appear in byte order of their ids, each id once; each key's versions are 1, 2, ... in
// order, without gaps, and the last is current. The final line holds the CRC-32C (Castagnoli,
// unmasked) of every byte before it. Anything else (a wrong CRC, a truncated file, an unknown
// header, a malformed line, a file over 16 MiB) is a damaged keyring.
//
// The wrapped data key (ciphertext_blob; format 1), 65 bytes:
//   offset  0  1 byte    format: 0xA1
//   offset  1  4 bytes   the key version that wrapped it, unsigned, little-endian
//   offset  5  12 bytes  the GCM nonce, random
//   offset 17  32 bytes  the data key, encrypted with AES-256-GCM under that version's material
//   offset 49  16 bytes  the GCM tag
// The GCM associated data is the key id, so a blob presented under another key id does not
// authenticate. Nonces are random: NIST's bound for random 96-bit nonces, 2^32 wraps per key
// version, is far beyond a data key per segment; rotating the key starts a new count.
//
// Managing keys. The static functions below change the keyring at `path`, which names the file
// itself (a symbolic link there is replaced by a regular file at the first change). Each reads the
// keyring, changes it and replaces the file atomically (write a temporary file, fsync, rename,
// fsync the directory) with mode 0600; a crash leaves the old keyring or the new one. They
// serialise with each other, across processes too, through an exclusive lock (flock) on the file
// `<path>.lock`, which is created beside the keyring with mode 0600 and never removed; the
// temporary file is `<path>.tmp`. They need write access to the keyring's directory. Errors common
// to them: kInvalidArgument for a malformed key id (nothing is touched); kKmsNotFound when `path`
// does not exist (CreateKeyring aside) or the key does not; kKmsAccessDenied when the keyring
// cannot be read or is damaged, or when permissions forbid creating `<path>.lock`; kInternalFailure
// for an I/O error writing the new file (naming it and the errno text). Each is thread-safe and
// allocates.
//
// Not protected against: someone who can read the keyring (it holds the master keys in the
// clear), or write it. Old key material may remain in freed disk blocks after a rewrite.
//
// Thread safety: every member function is thread-safe; calls are serialised on one mutex, which
// is fine for data keys, made and unwrapped rarely (per segment or stream, not per record). Each
// call does one stat(2), more I/O when the keyring changed, and allocates.
class FileKeyProvider final : public KeyProvider {
 public:
  // Opens the keyring at `path` and reads it. kKmsNotFound when it does not exist (naming the
  // path and saying to create it with CreateKeyring); kKmsAccessDenied when it cannot be read
  // (permissions: the message says to check the file's owner and mode) or is damaged.
  // Keeps one descriptor open on the keyring for the provider's lifetime.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FileKeyProvider>> Open(std::string path);

  ~FileKeyProvider() override;
  FileKeyProvider(const FileKeyProvider&) = delete;
  FileKeyProvider& operator=(const FileKeyProvider&) = delete;

  [[nodiscard]] absl::Status CheckKey(std::string_view key_id) override;
  [[nodiscard]] absl::StatusOr<DataKey> GenerateDataKey(std::string_view key_id) override;
  [[nodiscard]] absl::StatusOr<std::string> DecryptDataKey(
      std::string_view key_id, std::string_view ciphertext_blob) override;

  // The keyring file this provider reads.
  const std::string& path() const;

  // Creates an empty keyring at `path` (mode 0600). kResourceInUse when `path` already exists
  // (it is left alone); kInternalFailure when the file cannot be written (e.g. a missing
  // directory).
  [[nodiscard]] static absl::Status CreateKeyring(const std::string& path);

  // Adds key `key_id`: version 1 of 32 random bytes, enabled. kResourceInUse when the keyring
  // already has a key with this id.
  [[nodiscard]] static absl::Status CreateKey(const std::string& path, std::string_view key_id);

  // Adds a version of 32 random bytes to `key_id`, which becomes its current version (new data
  // keys are wrapped under it); the old versions stay, to unwrap the data keys wrapped under
  // them. Returns the new version number. kKmsDisabled for a disabled key, kKmsInvalidState for
  // one pending deletion (as KMS' RotateKeyOnDemand); kLimitExceeded past 2^32 - 1 versions.
  [[nodiscard]] static absl::StatusOr<uint32_t> RotateKey(const std::string& path,
                                                          std::string_view key_id);

  // Disables `key_id`: GenerateDataKey and DecryptDataKey fail with kKmsDisabled until EnableKey.
  // A no-op for a key already disabled; kKmsInvalidState for a key pending deletion.
  [[nodiscard]] static absl::Status DisableKey(const std::string& path, std::string_view key_id);

  // Enables `key_id` again. A no-op for a key already enabled; kKmsInvalidState for a key
  // pending deletion (CancelKeyDeletion first).
  [[nodiscard]] static absl::Status EnableKey(const std::string& path, std::string_view key_id);

  // Marks `key_id` pending deletion: every call with it fails with kKmsInvalidState. Its material
  // stays in the keyring (KMS deletes after a waiting period; this keyring deletes nothing), so
  // CancelKeyDeletion can undo it. kKmsInvalidState when the key is already pending deletion.
  [[nodiscard]] static absl::Status ScheduleKeyDeletion(const std::string& path,
                                                        std::string_view key_id);

  // Undoes ScheduleKeyDeletion: the key becomes disabled (as in KMS), to be enabled with
  // EnableKey. kKmsInvalidState when the key is not pending deletion.
  [[nodiscard]] static absl::Status CancelKeyDeletion(const std::string& path,
                                                      std::string_view key_id);

  // The keys of the keyring at `path`, in byte order of their ids: ids, states and current
  // versions, no key material. Takes no lock and writes nothing.
  [[nodiscard]] static absl::StatusOr<std::vector<KeyMetadata>> ListKeys(const std::string& path);

 private:
  struct Impl;
  explicit FileKeyProvider(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rill

#endif  // RILL_STORAGE_ENCRYPTION_H_
