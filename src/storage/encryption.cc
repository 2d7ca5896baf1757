#include "rill/storage/encryption.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/strings.h"
#include "rill/base/error.h"
#include "rill/base/internal/mutex.h"
#include "storage/aead.h"
#include "storage/crc32c.h"
#include "storage/file_util.h"

namespace rill {

using internal::ToAbsl;

namespace {

// The wrapped data key's layout (encryption.h). Pinned: stored blobs must unwrap forever.
constexpr unsigned char kBlobFormat = 0xA1;
constexpr size_t kBlobVersionOffset = 1;
constexpr size_t kBlobNonceOffset = kBlobVersionOffset + 4;
constexpr size_t kBlobCiphertextOffset = kBlobNonceOffset + internal::kAeadNonceBytes;
constexpr size_t kBlobTagOffset = kBlobCiphertextOffset + kDataKeyBytes;
constexpr size_t kBlobBytes = kBlobTagOffset + internal::kAeadTagBytes;
static_assert(kBlobBytes == 65);
static_assert(kDataKeyBytes == internal::kAeadKeyBytes);

// The keyring file (encryption.h).
constexpr std::string_view kKeyringMagic = "rill-keyring ";
constexpr std::string_view kKeyringHeader = "rill-keyring 1\n";
constexpr std::string_view kChecksumPrefix = "crc32c ";
constexpr size_t kChecksumLineBytes = 7 + 8 + 1;  // "crc32c " + 8 hex digits + '\n'
// A bound on what is read into memory: a keyring this large is not one rill wrote (a million
// keys would fit).
constexpr size_t kMaxKeyringBytes = size_t{16} << 20;
constexpr int kKeyringMode = 0600;

constexpr char kHexDigits[] = "0123456789abcdef";

bool IsKeyIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
         c == '_' || c == ':' || c == '.' || c == '-';
}

bool IsKmsKeyId(std::string_view id) {
  if (id.empty() || id.size() > kMaxKmsKeyIdChars) return false;
  for (char c : id) {
    if (!IsKeyIdChar(c)) return false;
  }
  return true;
}

// A std::string whose bytes are overwritten when it is destroyed: for file contents that hold key
// material. Sized once, so that no reallocation leaves an unwiped copy behind.
class WipedString {
 public:
  WipedString() = default;
  explicit WipedString(size_t size) : s_(size, '\0') {}
  ~WipedString() { internal::SecureZero(s_.data(), s_.size()); }
  WipedString(const WipedString&) = delete;
  WipedString& operator=(const WipedString&) = delete;
  std::string& get() { return s_; }

 private:
  std::string s_;
};

// One version of a master key. The destructor wipes the material; copies (which std::vector makes
// when it grows: no move constructor is declared) wipe their own.
struct KeyVersion {
  KeyVersion() = default;
  KeyVersion(const KeyVersion&) = default;
  KeyVersion& operator=(const KeyVersion&) = default;
  ~KeyVersion() { internal::SecureZero(material.data(), material.size()); }

  std::string_view view() const { return std::string_view(material.data(), material.size()); }

  std::array<char, kDataKeyBytes> material{};
};

struct Key {
  KeyState state = KeyState::kEnabled;
  // versions[i] is version i + 1; the last is current.
  std::vector<KeyVersion> versions;
};

// By id, in byte order (the file's order). std::less<> finds a std::string_view without a copy.
using Keyring = std::map<std::string, Key, std::less<>>;

// --- Errors. Each names the keyring and, where there is one, the key, and says what to check.

absl::Status MissingKeyring(const std::string& path) {
  return MakeError(ErrorCode::kKmsNotFound,
                   absl::StrFormat("keyring %s does not exist: check the path, or create the "
                                   "keyring (FileKeyProvider::CreateKeyring)",
                                   path));
}

absl::Status UnreadableKeyring(const std::string& path, std::string_view what, int error) {
  return MakeError(
      ErrorCode::kKmsAccessDenied,
      absl::StrFormat("cannot %s keyring %s: %s: check the file's owner and permissions (rill "
                      "writes it with mode 0600, for its owner only) and that this process runs "
                      "as that owner",
                      ToAbsl(what), path, internal::ErrnoText(error)));
}

absl::Status DamagedKeyring(const std::string& path, std::string_view detail) {
  return MakeError(ErrorCode::kKmsAccessDenied,
                   absl::StrFormat("keyring %s is damaged (%s): restore it from a backup; no key "
                                   "in it can be used until then",
                                   path, ToAbsl(detail)));
}

absl::Status KeyNotFound(const std::string& path, std::string_view key_id) {
  return MakeError(
      ErrorCode::kKmsNotFound,
      absl::StrFormat("KMS key %s is not in keyring %s: check the key id (ids are compared "
                      "exactly: an alias and an ARN are different keys) or create the key "
                      "(FileKeyProvider::CreateKey)",
                      ToAbsl(key_id), path));
}

absl::Status KeyDisabled(const std::string& path, std::string_view key_id) {
  return MakeError(ErrorCode::kKmsDisabled,
                   absl::StrFormat("KMS key %s in keyring %s is disabled: enable it "
                                   "(FileKeyProvider::EnableKey) to make or unwrap data keys",
                                   ToAbsl(key_id), path));
}

absl::Status KeyPendingDeletion(const std::string& path, std::string_view key_id) {
  return MakeError(
      ErrorCode::kKmsInvalidState,
      absl::StrFormat("KMS key %s in keyring %s is pending deletion: it makes and unwraps no data "
                      "keys; to use it again, cancel the deletion "
                      "(FileKeyProvider::CancelKeyDeletion) and enable it",
                      ToAbsl(key_id), path));
}

absl::Status BlobRejected(const std::string& path, std::string_view key_id,
                          std::string_view detail) {
  return MakeError(
      ErrorCode::kKmsAccessDenied,
      absl::StrFormat("the data key blob does not unwrap under KMS key %s of keyring %s (%s): "
                      "check that this key id and this keyring are the ones the data was "
                      "encrypted with (a blob made under another key id or by another keyring "
                      "never unwraps); otherwise the stored blob is damaged",
                      ToAbsl(key_id), path, ToAbsl(detail)));
}

// OK if `key` may make and unwrap data keys.
absl::Status CheckUsable(const Key& key, const std::string& path, std::string_view key_id) {
  switch (key.state) {
    case KeyState::kEnabled:
      return absl::OkStatus();
    case KeyState::kDisabled:
      return KeyDisabled(path, key_id);
    case KeyState::kPendingDeletion:
      return KeyPendingDeletion(path, key_id);
  }
  return KeyPendingDeletion(path, key_id);  // unreachable: the parser admits the three states
}

// --- The keyring file's text.

void PutLittleEndian32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t GetLittleEndian32(const char* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(in[i])} << (8 * i);
  return v;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not the file's spelling
}

// Decodes exactly out_size * 2 lowercase hex digits into `out`.
bool DecodeHex(std::string_view hex, char* out, size_t out_size) {
  if (hex.size() != out_size * 2) return false;
  for (size_t i = 0; i < out_size; ++i) {
    const int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return true;
}

// A version number as the file spells it: decimal, no sign, no leading zero, 1..2^32-1.
bool ParseVersion(std::string_view text, uint32_t* out) {
  if (text.empty() || text.size() > 10 || text[0] == '0') return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > std::numeric_limits<uint32_t>::max()) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool ParseKeyState(std::string_view text, KeyState* out) {
  for (KeyState s : {KeyState::kEnabled, KeyState::kDisabled, KeyState::kPendingDeletion}) {
    if (text == KeyStateName(s)) {
      *out = s;
      return true;
    }
  }
  return false;
}

// Splits `line` at single spaces into exactly `n` non-empty fields.
template <size_t n>
bool SplitFields(std::string_view line, std::array<std::string_view, n>* fields) {
  for (size_t i = 0; i < n; ++i) {
    const size_t space = i + 1 < n ? line.find(' ') : std::string_view::npos;
    if (i + 1 < n && space == std::string_view::npos) return false;
    (*fields)[i] = line.substr(0, space);
    if ((*fields)[i].empty()) return false;
    line = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
  }
  return (*fields)[n - 1].find(' ') == std::string_view::npos;
}

// Parses a keyring file's contents into `keyring` (which must be empty). On failure the message
// says what is wrong, by line number; it never quotes a line, which may hold key material.
absl::Status ParseKeyring(std::string_view text, Keyring* keyring) {
  if (text.size() > kMaxKeyringBytes) return absl::DataLossError("larger than 16 MiB");
  if (text.substr(0, kKeyringMagic.size()) != kKeyringMagic) {
    return absl::DataLossError(text.empty() ? "empty" : "no 'rill-keyring' header");
  }
  if (text.substr(0, kKeyringHeader.size()) != kKeyringHeader) {
    const std::string_view version = text.substr(kKeyringMagic.size(), 10);
    return absl::DataLossError(absl::StrCat(
        "unsupported format version ",
        absl::CHexEscape(ToAbsl(version.substr(0, version.find('\n')))), ": this rill reads 1"));
  }
  if (text.back() != '\n') return absl::DataLossError("truncated: no newline at the end");
  const size_t last_line = text.rfind('\n', text.size() - 2) + 1;
  const std::string_view checksum_line = text.substr(last_line);
  uint32_t stored = 0;
  char stored_bytes[4];
  if (last_line < kKeyringHeader.size() || checksum_line.size() != kChecksumLineBytes ||
      checksum_line.substr(0, kChecksumPrefix.size()) != kChecksumPrefix ||
      !DecodeHex(checksum_line.substr(kChecksumPrefix.size(), 8), stored_bytes, 4)) {
    return absl::DataLossError("truncated: no crc32c line at the end");
  }
  for (char b : stored_bytes) stored = stored << 8 | static_cast<unsigned char>(b);
  const uint32_t computed = internal::Crc32c(text.substr(0, last_line));
  if (stored != computed) {
    return absl::DataLossError(absl::StrFormat(
        "checksum mismatch: the file says %08x, its contents give %08x", stored, computed));
  }

  // The checksum matched, so what follows finds only what a writer put there: these checks
  // catch a file written wrongly, not damage.
  std::string_view body = text.substr(kKeyringHeader.size(), last_line - kKeyringHeader.size());
  Key* key = nullptr;
  std::string_view previous_id;
  int line_number = 1;
  auto bad = [&](std::string_view what) {
    return absl::DataLossError(absl::StrFormat("line %d: %s", line_number, ToAbsl(what)));
  };
  while (!body.empty()) {
    ++line_number;
    const size_t end = body.find('\n');  // found: the body ends with the checksum line's '\n'
    const std::string_view line = body.substr(0, end);
    body.remove_prefix(end + 1);
    std::array<std::string_view, 3> f;
    if (!SplitFields(line, &f)) return bad("not three fields separated by single spaces");
    if (f[0] == "key") {
      if (key != nullptr && key->versions.empty()) return bad("the previous key has no version");
      if (!IsKmsKeyId(f[1])) return bad("a key id that is not a valid KMS key id");
      if (key != nullptr && !(previous_id < f[1])) return bad("key ids not in increasing order");
      KeyState state;
      if (!ParseKeyState(f[2], &state)) return bad("an unknown key state");
      auto [it, inserted] = keyring->try_emplace(std::string(f[1]));
      (void)inserted;  // order was checked: ids are distinct
      key = &it->second;
      key->state = state;
      previous_id = it->first;
    } else if (f[0] == "version") {
      if (key == nullptr) return bad("a version before any key");
      uint32_t version;
      if (!ParseVersion(f[1], &version) || version != key->versions.size() + 1) {
        return bad("versions not numbered 1, 2, ... in order");
      }
      KeyVersion& v = key->versions.emplace_back();
      if (!DecodeHex(f[2], v.material.data(), v.material.size())) {
        return bad("key material that is not 64 lowercase hex digits");
      }
    } else {
      return bad("neither a key nor a version");
    }
  }
  if (key != nullptr && key->versions.empty()) return bad("the last key has no version");
  return absl::OkStatus();
}

// The keyring file's text, written into `out` (sized once: it holds key material).
void SerializeKeyring(const Keyring& keyring, WipedString* out) {
  size_t size = kKeyringHeader.size() + kChecksumLineBytes;
  for (const auto& [id, key] : keyring) {
    size += 4 + id.size() + 1 + KeyStateName(key.state).size() + 1;
    size += key.versions.size() * (8 + 10 + 1 + 2 * kDataKeyBytes + 1);
  }
  std::string& s = out->get();
  s.reserve(size);
  s.append(kKeyringHeader);
  for (const auto& [id, key] : keyring) {
    s.append("key ").append(id).append(" ").append(KeyStateName(key.state)).append("\n");
    for (size_t i = 0; i < key.versions.size(); ++i) {
      s.append("version ").append(std::to_string(i + 1)).append(" ");
      for (char c : key.versions[i].material) {
        const auto b = static_cast<unsigned char>(c);
        s.push_back(kHexDigits[b >> 4]);
        s.push_back(kHexDigits[b & 0xf]);
      }
      s.push_back('\n');
    }
  }
  s.append(absl::StrFormat("crc32c %08x\n", internal::Crc32c(s)));
}

// --- Reading the file.

// What tells one state of the keyring file from another without reading it.
struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  struct timespec mtime = {};
  struct timespec ctime = {};

  static FileIdentity Of(const struct stat& st) {
    FileIdentity id;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    id.size = st.st_size;
    id.mtime = st.st_mtim;
    id.ctime = st.st_ctim;
    return id;
  }
  bool operator==(const FileIdentity& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec &&
           ctime.tv_nsec == o.ctime.tv_nsec;
  }
};

// open(2) or stat(2) of the keyring failed with `error`.
absl::Status KeyringAccessError(const std::string& path, std::string_view what, int error) {
  if (error == ENOENT) return MissingKeyring(path);
  return UnreadableKeyring(path, what, error);
}

struct LoadedKeyring {
  internal::ScopedFd fd;  // the file read, kept open (FileKeyProvider says why)
  FileIdentity identity;
  Keyring keys;
};

// Reads and parses the keyring at `path` into `out`. kKmsNotFound, or kKmsAccessDenied.
absl::Status LoadKeyring(const std::string& path, LoadedKeyring* out) {
  int raw;
  do {
    raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0) return KeyringAccessError(path, "open", errno);
  internal::ScopedFd fd(raw);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return UnreadableKeyring(path, "stat", errno);
  if (!S_ISREG(st.st_mode)) return DamagedKeyring(path, "not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxKeyringBytes) {
    return DamagedKeyring(path, "larger than 16 MiB");
  }
  WipedString contents(static_cast<size_t>(st.st_size));
  absl::StatusOr<size_t> n =
      internal::PreadFully(fd.get(), contents.get().data(), contents.get().size(), 0, path);
  if (!n.ok()) {
    return MakeError(ErrorCode::kKmsAccessDenied,
                     absl::StrCat(n.status().message(), ": the keyring cannot be used"));
  }
  if (*n != contents.get().size()) return DamagedKeyring(path, "shorter than its size");
  Keyring keys;
  if (absl::Status s = ParseKeyring(contents.get(), &keys); !s.ok()) {
    return DamagedKeyring(path, internal::FromAbsl(s.message()));
  }
  out->fd = std::move(fd);
  out->identity = FileIdentity::Of(st);
  out->keys = std::move(keys);
  return absl::OkStatus();
}

// --- Management.

// An exclusive flock on `<path>.lock`, held while a management call reads, changes and rewrites
// the keyring: writers of one path must be serialised (WriteFileAtomically shares `<path>.tmp`),
// and a read-modify-write must not lose another's change.
absl::StatusOr<internal::ScopedFd> LockKeyring(const std::string& path, bool creating) {
  const std::string lock_path = path + ".lock";
  int raw;
  do {
    raw = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kKeyringMode);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0) {
    const int error = errno;
    // No directory: no keyring either, unless this call is to create one.
    if (error == ENOENT && !creating) return MissingKeyring(path);
    if (error == EACCES || error == EPERM || error == EROFS) {
      return MakeError(ErrorCode::kKmsAccessDenied,
                       absl::StrFormat("cannot create the lock file %s: %s: managing keys needs "
                                       "write access to the keyring's directory",
                                       lock_path, internal::ErrnoText(error)));
    }
    return internal::IoError("cannot create the lock file", lock_path, error);
  }
  internal::ScopedFd fd(raw);
  int locked;
  do {
    locked = ::flock(fd.get(), LOCK_EX);
  } while (locked != 0 && errno == EINTR);
  if (locked != 0) return internal::IoError("cannot lock", lock_path, errno);
  return fd;
}

// Validates `key_id`, locks the keyring, reads it, lets `change` change it, and writes it back.
// `change` gets the key (kKmsNotFound if there is none) and returns OK to write.
template <typename Change>
absl::Status ChangeKey(const std::string& path, std::string_view key_id, Change change) {
  if (absl::Status s = ValidateKmsKeyId(key_id); !s.ok()) return s;
  absl::StatusOr<internal::ScopedFd> lock = LockKeyring(path, /*creating=*/false);
  if (!lock.ok()) return lock.status();
  LoadedKeyring keyring;
  if (absl::Status s = LoadKeyring(path, &keyring); !s.ok()) return s;
  const auto it = keyring.keys.find(key_id);
  if (it == keyring.keys.end()) return KeyNotFound(path, key_id);
  if (absl::Status s = change(it->second); !s.ok()) return s;
  WipedString text;
  SerializeKeyring(keyring.keys, &text);
  return internal::WriteFileAtomically(path, text.get(), kKeyringMode);
}

// 32 random bytes, appended to `key` as its new current version.
absl::Status AddVersion(Key& key) {
  KeyVersion& v = key.versions.emplace_back();
  if (absl::Status s = internal::RandomBytes(v.material.data(), v.material.size()); !s.ok()) {
    key.versions.pop_back();
    return s;
  }
  return absl::OkStatus();
}

}  // namespace

// --- Free functions.

std::string_view EncryptionTypeName(EncryptionType type) {
  switch (type) {
    case EncryptionType::kNone:
      return "NONE";
    case EncryptionType::kKms:
      return "KMS";
  }
  return "UNKNOWN";
}

absl::StatusOr<EncryptionType> ParseEncryptionType(std::string_view name) {
  for (EncryptionType t : {EncryptionType::kNone, EncryptionType::kKms}) {
    if (name == EncryptionTypeName(t)) return t;
  }
  return InvalidArgumentError(
      absl::StrFormat("unknown encryption type \"%s\": expected NONE or KMS",
                      absl::CHexEscape(ToAbsl(name.substr(0, 64)))));
}

std::string_view KeyStateName(KeyState state) {
  switch (state) {
    case KeyState::kEnabled:
      return "Enabled";
    case KeyState::kDisabled:
      return "Disabled";
    case KeyState::kPendingDeletion:
      return "PendingDeletion";
  }
  return "Unknown";
}

absl::Status ValidateKmsKeyId(std::string_view key_id) {
  if (key_id.empty()) return InvalidArgumentError("the KMS key id is empty");
  if (key_id.size() > kMaxKmsKeyIdChars) {
    return InvalidArgumentError(
        absl::StrFormat("the KMS key id is %d characters long; at most %d are allowed",
                        key_id.size(), kMaxKmsKeyIdChars));
  }
  for (size_t i = 0; i < key_id.size(); ++i) {
    if (!IsKeyIdChar(key_id[i])) {
      return InvalidArgumentError(absl::StrFormat(
          "the KMS key id \"%s\" has a character outside [A-Za-z0-9/_:.-] at offset %d: use an "
          "alias (alias/name), a key id (a UUID) or an ARN",
          absl::CHexEscape(ToAbsl(key_id.substr(0, 128))), i));
    }
  }
  return absl::OkStatus();
}

DataKey::~DataKey() { internal::SecureZero(plaintext.data(), plaintext.size()); }

// --- FileKeyProvider.

struct FileKeyProvider::Impl {
  explicit Impl(std::string p) : path(std::move(p)) {}

  // Makes `keyring` the file's current contents: reads it again if it changed since it was read.
  // On failure nothing is held (fail closed: no call uses a keyring that can no longer be read).
  absl::Status Refresh() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      const int error = errno;
      keyring = LoadedKeyring();
      return KeyringAccessError(path, "stat", error);
    }
    // The file read is held open, so its inode number cannot be given to a new file: an equal
    // identity is the same file, unchanged.
    if (keyring.fd.valid() && FileIdentity::Of(st) == keyring.identity) return absl::OkStatus();
    LoadedKeyring fresh;
    absl::Status s = LoadKeyring(path, &fresh);
    keyring = std::move(fresh);  // empty on failure
    return s;
  }

  // Refreshes and finds `key_id`, which must be usable.
  absl::StatusOr<const Key*> UsableKey(std::string_view key_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (absl::Status s = ValidateKmsKeyId(key_id); !s.ok()) return s;
    if (absl::Status s = Refresh(); !s.ok()) return s;
    const auto it = keyring.keys.find(key_id);
    if (it == keyring.keys.end()) return KeyNotFound(path, key_id);
    if (absl::Status s = CheckUsable(it->second, path, key_id); !s.ok()) return s;
    return &it->second;
  }

  const std::string path;
  internal::Mutex mu;
  LoadedKeyring keyring ABSL_GUARDED_BY(mu);
};

FileKeyProvider::FileKeyProvider(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

// The key material is wiped by ~KeyVersion.
FileKeyProvider::~FileKeyProvider() = default;

const std::string& FileKeyProvider::path() const { return impl_->path; }

absl::StatusOr<std::unique_ptr<FileKeyProvider>> FileKeyProvider::Open(std::string path) {
  auto impl = std::make_unique<Impl>(std::move(path));
  {
    internal::MutexLock<internal::Mutex> lock(&impl->mu);
    if (absl::Status s = impl->Refresh(); !s.ok()) return s;
  }
  return std::unique_ptr<FileKeyProvider>(new FileKeyProvider(std::move(impl)));
}

absl::Status FileKeyProvider::CheckKey(std::string_view key_id) {
  internal::MutexLock<internal::Mutex> lock(&impl_->mu);
  return impl_->UsableKey(key_id).status();
}

absl::StatusOr<DataKey> FileKeyProvider::GenerateDataKey(std::string_view key_id) {
  internal::MutexLock<internal::Mutex> lock(&impl_->mu);
  absl::StatusOr<const Key*> key = impl_->UsableKey(key_id);
  if (!key.ok()) return key.status();
  const KeyVersion& current = (*key)->versions.back();
  const auto version = static_cast<uint32_t>((*key)->versions.size());

  DataKey data_key;
  data_key.plaintext.assign(kDataKeyBytes, '\0');
  std::string& blob = data_key.ciphertext_blob;
  blob.assign(kBlobBytes, '\0');
  blob[0] = static_cast<char>(kBlobFormat);
  PutLittleEndian32(&blob[kBlobVersionOffset], version);
  if (absl::Status s = internal::RandomBytes(data_key.plaintext.data(), kDataKeyBytes); !s.ok()) {
    return s;
  }
  if (absl::Status s = internal::RandomBytes(&blob[kBlobNonceOffset], internal::kAeadNonceBytes);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<internal::Aes256Gcm> cipher = internal::Aes256Gcm::Create(current.view());
  if (!cipher.ok()) return AsKinesisError(cipher.status());
  if (absl::Status s = cipher->Seal(&blob[kBlobNonceOffset], key_id, data_key.plaintext,
                                    &blob[kBlobCiphertextOffset], &blob[kBlobTagOffset]);
      !s.ok()) {
    return s;
  }
  return data_key;
}

absl::StatusOr<std::string> FileKeyProvider::DecryptDataKey(std::string_view key_id,
                                                            std::string_view ciphertext_blob) {
  internal::MutexLock<internal::Mutex> lock(&impl_->mu);
  absl::StatusOr<const Key*> key = impl_->UsableKey(key_id);
  if (!key.ok()) return key.status();
  const std::string_view blob = ciphertext_blob;
  if (blob.size() != kBlobBytes) {
    return BlobRejected(
        impl_->path, key_id,
        absl::StrFormat("%d bytes, where a wrapped data key has %d", blob.size(), kBlobBytes));
  }
  if (static_cast<unsigned char>(blob[0]) != kBlobFormat) {
    return BlobRejected(
        impl_->path, key_id,
        absl::StrFormat("unknown format byte 0x%02x", static_cast<unsigned char>(blob[0])));
  }
  const uint32_t version = GetLittleEndian32(&blob[kBlobVersionOffset]);
  const std::vector<KeyVersion>& versions = (*key)->versions;
  if (version == 0 || version > versions.size()) {
    return BlobRejected(impl_->path, key_id,
                        absl::StrFormat("wrapped under key version %d; the key has versions 1 to "
                                        "%d",
                                        version, versions.size()));
  }
  absl::StatusOr<internal::Aes256Gcm> cipher =
      internal::Aes256Gcm::Create(versions[version - 1].view());
  if (!cipher.ok()) return AsKinesisError(cipher.status());
  std::string plaintext(kDataKeyBytes, '\0');
  absl::Status s = cipher->Open(&blob[kBlobNonceOffset], key_id,
                                blob.substr(kBlobCiphertextOffset, kDataKeyBytes),
                                &blob[kBlobTagOffset], plaintext.data());
  if (!s.ok()) {
    internal::SecureZero(plaintext.data(), plaintext.size());
    if (absl::IsDataLoss(s)) {
      return BlobRejected(impl_->path, key_id,
                          absl::StrFormat("authentication failed under key version %d", version));
    }
    return s;
  }
  return plaintext;
}

// --- Management.

absl::Status FileKeyProvider::CreateKeyring(const std::string& path) {
  absl::StatusOr<internal::ScopedFd> lock = LockKeyring(path, /*creating=*/true);
  if (!lock.ok()) return lock.status();
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    return ResourceInUseError(absl::StrFormat(
        "%s already exists: a keyring is created only where there is no file (it was left "
        "unchanged)",
        path));
  }
  if (errno != ENOENT) return internal::IoError("cannot stat", path, errno);
  WipedString text;
  SerializeKeyring(Keyring(), &text);
  return internal::WriteFileAtomically(path, text.get(), kKeyringMode);
}

absl::Status FileKeyProvider::CreateKey(const std::string& path, std::string_view key_id) {
  if (absl::Status s = ValidateKmsKeyId(key_id); !s.ok()) return s;
  absl::StatusOr<internal::ScopedFd> lock = LockKeyring(path, /*creating=*/false);
  if (!lock.ok()) return lock.status();
  LoadedKeyring keyring;
  if (absl::Status s = LoadKeyring(path, &keyring); !s.ok()) return s;
  auto [it, inserted] = keyring.keys.try_emplace(std::string(key_id));
  if (!inserted) {
    return ResourceInUseError(absl::StrFormat(
        "KMS key %s already exists in keyring %s (in state %s): pick another id, or rotate the "
        "existing key (FileKeyProvider::RotateKey)",
        ToAbsl(key_id), path, ToAbsl(KeyStateName(it->second.state))));
  }
  if (absl::Status s = AddVersion(it->second); !s.ok()) return s;
  WipedString text;
  SerializeKeyring(keyring.keys, &text);
  return internal::WriteFileAtomically(path, text.get(), kKeyringMode);
}

absl::StatusOr<uint32_t> FileKeyProvider::RotateKey(const std::string& path,
                                                    std::string_view key_id) {
  uint32_t new_version = 0;
  absl::Status s = ChangeKey(path, key_id, [&](Key& key) -> absl::Status {
    if (absl::Status usable = CheckUsable(key, path, key_id); !usable.ok()) return usable;
    if (key.versions.size() >= std::numeric_limits<uint32_t>::max()) {
      return LimitExceededError(absl::StrFormat(
          "KMS key %s of keyring %s has %d versions, the most a key can have: create a new key",
          ToAbsl(key_id), path, key.versions.size()));
    }
    if (absl::Status added = AddVersion(key); !added.ok()) return added;
    new_version = static_cast<uint32_t>(key.versions.size());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return new_version;
}

absl::Status FileKeyProvider::DisableKey(const std::string& path, std::string_view key_id) {
  return ChangeKey(path, key_id, [&](Key& key) {
    if (key.state == KeyState::kPendingDeletion) return KeyPendingDeletion(path, key_id);
    key.state = KeyState::kDisabled;
    return absl::OkStatus();
  });
}

absl::Status FileKeyProvider::EnableKey(const std::string& path, std::string_view key_id) {
  return ChangeKey(path, key_id, [&](Key& key) {
    if (key.state == KeyState::kPendingDeletion) return KeyPendingDeletion(path, key_id);
    key.state = KeyState::kEnabled;
    return absl::OkStatus();
  });
}

absl::Status FileKeyProvider::ScheduleKeyDeletion(const std::string& path,
                                                  std::string_view key_id) {
  return ChangeKey(path, key_id, [&](Key& key) {
    if (key.state == KeyState::kPendingDeletion) {
      return MakeError(ErrorCode::kKmsInvalidState,
                       absl::StrFormat("KMS key %s in keyring %s is already pending deletion",
                                       ToAbsl(key_id), path));
    }
    key.state = KeyState::kPendingDeletion;
    return absl::OkStatus();
  });
}

absl::Status FileKeyProvider::CancelKeyDeletion(const std::string& path, std::string_view key_id) {
  return ChangeKey(path, key_id, [&](Key& key) {
    if (key.state != KeyState::kPendingDeletion) {
      return MakeError(
          ErrorCode::kKmsInvalidState,
          absl::StrFormat("KMS key %s in keyring %s is not pending deletion (it is %s): there is "
                          "no deletion to cancel",
                          ToAbsl(key_id), path, ToAbsl(KeyStateName(key.state))));
    }
    key.state = KeyState::kDisabled;
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<KeyMetadata>> FileKeyProvider::ListKeys(const std::string& path) {
  LoadedKeyring keyring;
  if (absl::Status s = LoadKeyring(path, &keyring); !s.ok()) return s;
  std::vector<KeyMetadata> keys;
  keys.reserve(keyring.keys.size());
  for (const auto& [id, key] : keyring.keys) {
    KeyMetadata& m = keys.emplace_back();
    m.key_id = id;
    m.state = key.state;
    m.current_version = static_cast<uint32_t>(key.versions.size());
  }
  return keys;
}

}  // namespace rill
