#include "rill/storage/encryption.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "rill/base/error.h"
#include "storage/aead.h"
#include "storage/crc32c.h"
#include "storage/file_util.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

using ::rill::testing::TempDir;

constexpr std::string_view kKey = "alias/rill";
constexpr size_t kBlobBytes = 65;

bool Mentions(const absl::Status& s, std::string_view text) {
  return std::string_view(s.message().data(), s.message().size()).find(text) !=
         std::string_view::npos;
}

// An empty keyring at dir/name.
std::string MakeKeyring(const TempDir& dir, std::string_view name = "keyring") {
  const std::string path = dir.File(name);
  const absl::Status s = FileKeyProvider::CreateKeyring(path);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return path;
}

void MustCreateKey(const std::string& path, std::string_view key_id) {
  const absl::Status s = FileKeyProvider::CreateKey(path, key_id);
  INFO(s.ToString());
  REQUIRE(s.ok());
}

std::unique_ptr<FileKeyProvider> MustOpen(const std::string& path) {
  absl::StatusOr<std::unique_ptr<FileKeyProvider>> p = FileKeyProvider::Open(path);
  INFO(p.status().ToString());
  REQUIRE(p.ok());
  return *std::move(p);
}

DataKey MustGenerate(KeyProvider& keys, std::string_view key_id) {
  absl::StatusOr<DataKey> key = keys.GenerateDataKey(key_id);
  INFO(key.status().ToString());
  REQUIRE(key.ok());
  return *key;
}

std::string MustDecrypt(KeyProvider& keys, std::string_view key_id, std::string_view blob) {
  absl::StatusOr<std::string> key = keys.DecryptDataKey(key_id, blob);
  INFO(key.status().ToString());
  REQUIRE(key.ok());
  return *key;
}

// The key version field of a wrapped data key: offset 1, 4 bytes, little-endian.
uint32_t BlobVersion(std::string_view blob) {
  REQUIRE(blob.size() == kBlobBytes);
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(blob[1 + i])} << (8 * i);
  return v;
}

void SetBlobVersion(std::string* blob, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*blob)[1 + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

unsigned FileMode(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::string MustRead(const std::string& path) {
  absl::StatusOr<std::string> contents = internal::ReadFile(path);
  REQUIRE(contents.ok());
  return *contents;
}

// Replaces the file's contents without syncing (tests write many versions).
void Overwrite(const std::string& path, std::string_view contents) {
  REQUIRE(internal::ReplaceFile(path, contents).ok());
}

// `body` (from the header line on) followed by its correct checksum line.
std::string WithChecksum(std::string_view body) {
  return std::string(body) + absl::StrFormat("crc32c %08x\n", internal::Crc32c(body));
}

const std::string kHexZeros(64, '0');

// Key ids of KMS' forms, and strings that are not key ids.
const std::vector<std::string> kGoodKeyIds = {
    "alias/rill",
    "1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:us-east-1:111122223333:alias/rill",
    "a",
    "alias/a_b.c-d:e/F9",
    std::string(kMaxKmsKeyIdChars, 'k'),
};
const std::vector<std::string> kBadKeyIds = {
    "",
    std::string(kMaxKmsKeyIdChars + 1, 'k'),
    "alias rill",
    "alias/r\xc3\xafll",
    std::string("alias\0rill", 10),
    "key*",
    "key\n",
    "alias/rill\r",
    "key+1",
};

TEST_CASE("EncryptionTypeName and ParseEncryptionType use Kinesis' names", "[encryption]") {
  CHECK(static_cast<int>(EncryptionType::kNone) == 0);
  CHECK(static_cast<int>(EncryptionType::kKms) == 1);
  CHECK(EncryptionTypeName(EncryptionType::kNone) == "NONE");
  CHECK(EncryptionTypeName(EncryptionType::kKms) == "KMS");
  CHECK(EncryptionTypeName(static_cast<EncryptionType>(7)) == "UNKNOWN");
  CHECK(*ParseEncryptionType("NONE") == EncryptionType::kNone);
  CHECK(*ParseEncryptionType("KMS") == EncryptionType::kKms);
  for (std::string_view bad : {"", "kms", "Kms", "none", "KMS ", " NONE", "AES", "UNKNOWN"}) {
    INFO(bad);
    CHECK(GetErrorCode(ParseEncryptionType(bad).status()) == ErrorCode::kInvalidArgument);
  }
  CHECK(KeyStateName(KeyState::kEnabled) == "Enabled");
  CHECK(KeyStateName(KeyState::kDisabled) == "Disabled");
  CHECK(KeyStateName(KeyState::kPendingDeletion) == "PendingDeletion");
  CHECK(KeyStateName(static_cast<KeyState>(9)) == "Unknown");
}

TEST_CASE("ValidateKmsKeyId accepts aliases, UUIDs and ARNs and nothing else", "[encryption]") {
  for (const std::string& id : kGoodKeyIds) {
    INFO(id);
    CHECK(ValidateKmsKeyId(id).ok());
  }
  for (const std::string& id : kBadKeyIds) {
    INFO(id);
    CHECK(GetErrorCode(ValidateKmsKeyId(id)) == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("A generated data key unwraps to the same bytes", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  CHECK(keys->path() == path);
  CHECK(keys->CheckKey(kKey).ok());

  const DataKey key = MustGenerate(*keys, kKey);
  CHECK(key.plaintext.size() == kDataKeyBytes);
  REQUIRE(key.ciphertext_blob.size() == kBlobBytes);
  CHECK(static_cast<unsigned char>(key.ciphertext_blob[0]) == 0xA1);
  CHECK(BlobVersion(key.ciphertext_blob) == 1);
  // The blob does not carry the key in the clear.
  CHECK(key.ciphertext_blob.find(key.plaintext) == std::string::npos);
  CHECK(MustDecrypt(*keys, kKey, key.ciphertext_blob) == key.plaintext);

  // Another provider on the same keyring unwraps it too.
  CHECK(MustDecrypt(*MustOpen(path), kKey, key.ciphertext_blob) == key.plaintext);

  // Every key id form works as a plain name.
  for (const std::string& id : kGoodKeyIds) {
    INFO(id.substr(0, 80));
    if (id != kKey) MustCreateKey(path, id);
    const DataKey k = MustGenerate(*keys, id);
    CHECK(MustDecrypt(*keys, id, k.ciphertext_blob) == k.plaintext);
  }
}

TEST_CASE("Two generated data keys differ", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  const DataKey a = MustGenerate(*keys, kKey);
  const DataKey b = MustGenerate(*keys, kKey);
  CHECK(a.plaintext != b.plaintext);
  CHECK(a.ciphertext_blob != b.ciphertext_blob);
  // Fresh nonces (offset 5, 12 bytes), not only fresh keys.
  CHECK(a.ciphertext_blob.substr(5, 12) != b.ciphertext_blob.substr(5, 12));
  CHECK(MustDecrypt(*keys, kKey, a.ciphertext_blob) == a.plaintext);
  CHECK(MustDecrypt(*keys, kKey, b.ciphertext_blob) == b.plaintext);
}

TEST_CASE("A rotated key wraps under its new version and unwraps under its old ones",
          "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  const DataKey v1 = MustGenerate(*keys, kKey);
  CHECK(BlobVersion(v1.ciphertext_blob) == 1);

  absl::StatusOr<uint32_t> rotated = FileKeyProvider::RotateKey(path, kKey);
  REQUIRE(rotated.ok());
  CHECK(*rotated == 2);
  // The provider opened before the rotation uses the new version at once.
  const DataKey v2 = MustGenerate(*keys, kKey);
  CHECK(BlobVersion(v2.ciphertext_blob) == 2);
  CHECK(MustDecrypt(*keys, kKey, v1.ciphertext_blob) == v1.plaintext);
  CHECK(MustDecrypt(*keys, kKey, v2.ciphertext_blob) == v2.plaintext);

  rotated = FileKeyProvider::RotateKey(path, kKey);
  REQUIRE(rotated.ok());
  CHECK(*rotated == 3);
  const DataKey v3 = MustGenerate(*keys, kKey);
  CHECK(BlobVersion(v3.ciphertext_blob) == 3);
  std::unique_ptr<FileKeyProvider> reopened = MustOpen(path);
  CHECK(MustDecrypt(*reopened, kKey, v1.ciphertext_blob) == v1.plaintext);
  CHECK(MustDecrypt(*reopened, kKey, v2.ciphertext_blob) == v2.plaintext);
  CHECK(MustDecrypt(*reopened, kKey, v3.ciphertext_blob) == v3.plaintext);

  absl::StatusOr<std::vector<KeyMetadata>> listed = FileKeyProvider::ListKeys(path);
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].key_id == kKey);
  CHECK((*listed)[0].state == KeyState::kEnabled);
  CHECK((*listed)[0].current_version == 3);
}

TEST_CASE("A disabled key makes and unwraps nothing until it is enabled again", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  const DataKey before = MustGenerate(*keys, kKey);

  REQUIRE(FileKeyProvider::DisableKey(path, kKey).ok());
  const absl::Status check = keys->CheckKey(kKey);
  CHECK(GetErrorCode(check) == ErrorCode::kKmsDisabled);
  CHECK(Mentions(check, kKey));
  CHECK(Mentions(check, path));
  CHECK(Mentions(check, "EnableKey"));
  CHECK(GetErrorCode(keys->GenerateDataKey(kKey).status()) == ErrorCode::kKmsDisabled);
  CHECK(GetErrorCode(keys->DecryptDataKey(kKey, before.ciphertext_blob).status()) ==
        ErrorCode::kKmsDisabled);
  CHECK(GetErrorCode(FileKeyProvider::RotateKey(path, kKey).status()) == ErrorCode::kKmsDisabled);
  // Disabling again changes nothing.
  CHECK(FileKeyProvider::DisableKey(path, kKey).ok());
  CHECK(FileKeyProvider::ListKeys(path)->at(0).state == KeyState::kDisabled);

  REQUIRE(FileKeyProvider::EnableKey(path, kKey).ok());
  CHECK(keys->CheckKey(kKey).ok());
  CHECK(MustDecrypt(*keys, kKey, before.ciphertext_blob) == before.plaintext);
  const DataKey after = MustGenerate(*keys, kKey);
  CHECK(MustDecrypt(*keys, kKey, after.ciphertext_blob) == after.plaintext);
  CHECK(FileKeyProvider::EnableKey(path, kKey).ok());  // already enabled: a no-op
}

TEST_CASE("A key pending deletion is in an invalid state until the deletion is cancelled",
          "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  const DataKey before = MustGenerate(*keys, kKey);

  REQUIRE(FileKeyProvider::ScheduleKeyDeletion(path, kKey).ok());
  const absl::Status check = keys->CheckKey(kKey);
  CHECK(GetErrorCode(check) == ErrorCode::kKmsInvalidState);
  CHECK(Mentions(check, kKey));
  CHECK(Mentions(check, "pending deletion"));
  CHECK(GetErrorCode(keys->GenerateDataKey(kKey).status()) == ErrorCode::kKmsInvalidState);
  CHECK(GetErrorCode(keys->DecryptDataKey(kKey, before.ciphertext_blob).status()) ==
        ErrorCode::kKmsInvalidState);
  CHECK(GetErrorCode(FileKeyProvider::ScheduleKeyDeletion(path, kKey)) ==
        ErrorCode::kKmsInvalidState);
  CHECK(GetErrorCode(FileKeyProvider::EnableKey(path, kKey)) == ErrorCode::kKmsInvalidState);
  CHECK(GetErrorCode(FileKeyProvider::DisableKey(path, kKey)) == ErrorCode::kKmsInvalidState);
  CHECK(GetErrorCode(FileKeyProvider::RotateKey(path, kKey).status()) ==
        ErrorCode::kKmsInvalidState);
  CHECK(FileKeyProvider::ListKeys(path)->at(0).state == KeyState::kPendingDeletion);

  // Cancelling leaves the key disabled, as KMS does.
  REQUIRE(FileKeyProvider::CancelKeyDeletion(path, kKey).ok());
  CHECK(FileKeyProvider::ListKeys(path)->at(0).state == KeyState::kDisabled);
  CHECK(GetErrorCode(keys->GenerateDataKey(kKey).status()) == ErrorCode::kKmsDisabled);
  CHECK(GetErrorCode(FileKeyProvider::CancelKeyDeletion(path, kKey)) ==
        ErrorCode::kKmsInvalidState);
  REQUIRE(FileKeyProvider::EnableKey(path, kKey).ok());
  CHECK(MustDecrypt(*keys, kKey, before.ciphertext_blob) == before.plaintext);
}

TEST_CASE("An unknown key id is not found", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  const DataKey key = MustGenerate(*keys, kKey);
  const std::string other = "alias/other";

  const absl::Status check = keys->CheckKey(other);
  CHECK(GetErrorCode(check) == ErrorCode::kKmsNotFound);
  CHECK(Mentions(check, other));
  CHECK(Mentions(check, path));
  CHECK(GetErrorCode(keys->GenerateDataKey(other).status()) == ErrorCode::kKmsNotFound);
  CHECK(GetErrorCode(keys->DecryptDataKey(other, key.ciphertext_blob).status()) ==
        ErrorCode::kKmsNotFound);
  // Ids are compared exactly.
  CHECK(GetErrorCode(keys->CheckKey("alias/RILL")) == ErrorCode::kKmsNotFound);
  CHECK(GetErrorCode(FileKeyProvider::RotateKey(path, other).status()) == ErrorCode::kKmsNotFound);
  CHECK(GetErrorCode(FileKeyProvider::DisableKey(path, other)) == ErrorCode::kKmsNotFound);
  CHECK(GetErrorCode(FileKeyProvider::EnableKey(path, other)) == ErrorCode::kKmsNotFound);
  CHECK(GetErrorCode(FileKeyProvider::ScheduleKeyDeletion(path, other)) == ErrorCode::kKmsNotFound);
  CHECK(GetErrorCode(FileKeyProvider::CancelKeyDeletion(path, other)) == ErrorCode::kKmsNotFound);
}

TEST_CASE("A blob altered anywhere does not unwrap", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  REQUIRE(FileKeyProvider::RotateKey(path, kKey).ok());
  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  const DataKey key = MustGenerate(*keys, kKey);
  REQUIRE(BlobVersion(key.ciphertext_blob) == 2);

  auto expect_denied = [&](const std::string& blob) {
    const absl::StatusOr<std::string> got = keys->DecryptDataKey(kKey, blob);
    CHECK(GetErrorCode(got.status()) == ErrorCode::kKmsAccessDenied);
    CHECK(Mentions(got.status(), kKey));
    CHECK(Mentions(got.status(), path));
  };
  // Each region of the layout: format byte, key version, nonce, ciphertext, tag.
  auto flip_each_byte = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      for (unsigned mask : {0x01u, 0x80u}) {
        INFO("byte " << i << " ^ " << mask);
        std::string blob = key.ciphertext_blob;
        blob[i] = static_cast<char>(static_cast<unsigned char>(blob[i]) ^ mask);
        expect_denied(blob);
      }
    }
  };
  SECTION("the format byte") { flip_each_byte(0, 1); }
  SECTION("the key version") {
    flip_each_byte(1, 5);
    // Another version the key has: that version's material does not authenticate it.
    std::string blob = key.ciphertext_blob;
    SetBlobVersion(&blob, 1);
    expect_denied(blob);
    CHECK(Mentions(keys->DecryptDataKey(kKey, blob).status(), "authentication failed"));
    // Versions the key does not have.
    for (uint32_t v : {0u, 3u, 0xffffffffu}) {
      SetBlobVersion(&blob, v);
      expect_denied(blob);
    }
  }
  SECTION("the nonce") { flip_each_byte(5, 17); }
  SECTION("the ciphertext") { flip_each_byte(17, 49); }
  SECTION("the tag") { flip_each_byte(49, 65); }
  SECTION("the length") {
    expect_denied("");
    expect_denied(key.ciphertext_blob.substr(0, kBlobBytes - 1));
    expect_denied(key.ciphertext_blob + "x");
    expect_denied(std::string(kBlobBytes, '\0'));
  }
  // The untouched blob still unwraps.
  CHECK(MustDecrypt(*keys, kKey, key.ciphertext_blob) == key.plaintext);
}

TEST_CASE("A blob made under one key does not unwrap under another", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  MustCreateKey(path, "alias/other");
  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  const DataKey key = MustGenerate(*keys, kKey);
  const absl::StatusOr<std::string> got = keys->DecryptDataKey("alias/other", key.ciphertext_blob);
  CHECK(GetErrorCode(got.status()) == ErrorCode::kKmsAccessDenied);
  CHECK(Mentions(got.status(), "alias/other"));
  CHECK(Mentions(got.status(), "another key id"));
  CHECK(MustDecrypt(*keys, kKey, key.ciphertext_blob) == key.plaintext);
}

TEST_CASE("A blob from another keyring with the same key id does not unwrap", "[encryption]") {
  TempDir dir;
  const std::string first = MakeKeyring(dir, "first");
  const std::string second = MakeKeyring(dir, "second");
  MustCreateKey(first, kKey);
  MustCreateKey(second, kKey);
  const DataKey key = MustGenerate(*MustOpen(first), kKey);
  std::unique_ptr<FileKeyProvider> keys = MustOpen(second);
  const absl::StatusOr<std::string> got = keys->DecryptDataKey(kKey, key.ciphertext_blob);
  CHECK(GetErrorCode(got.status()) == ErrorCode::kKmsAccessDenied);
  CHECK(Mentions(got.status(), second));
  CHECK(Mentions(got.status(), "another keyring"));
}

TEST_CASE("A blob laid out by hand as documented unwraps", "[encryption]") {
  // Pins the wrapped data key's format: a keyring whose key material is 00 01 ... 1f, and a blob
  // built from encryption.h's layout with the AEAD directly.
  TempDir dir;
  const std::string path = dir.File("keyring");
  std::string material, hex;
  for (int i = 0; i < 32; ++i) {
    material.push_back(static_cast<char>(i));
    hex += absl::StrFormat("%02x", i);
  }
  Overwrite(path, WithChecksum(absl::StrFormat("rill-keyring 1\nkey %s Enabled\nversion 1 %s\n",
                                               std::string(kKey), hex)));
  const std::string data_key = "0123456789abcdef0123456789ABCDEF";
  const std::string nonce = "twelve-bytes";
  std::string blob(kBlobBytes, '\0');
  blob[0] = static_cast<char>(0xA1);
  SetBlobVersion(&blob, 1);
  blob.replace(5, 12, nonce);
  absl::StatusOr<internal::Aes256Gcm> aead = internal::Aes256Gcm::Create(material);
  REQUIRE(aead.ok());
  REQUIRE(aead->Seal(nonce.data(), kKey, data_key, &blob[17], &blob[49]).ok());

  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  CHECK(MustDecrypt(*keys, kKey, blob) == data_key);
}

TEST_CASE("The keyring file has the documented format", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  const std::string empty = MustRead(path);
  CHECK(empty == WithChecksum("rill-keyring 1\n"));

  MustCreateKey(path, kKey);
  MustCreateKey(path, "alias/a");
  REQUIRE(FileKeyProvider::RotateKey(path, kKey).ok());
  REQUIRE(FileKeyProvider::DisableKey(path, "alias/a").ok());
  const std::string text = MustRead(path);
  std::vector<std::string> lines;
  for (size_t start = 0; start < text.size();) {
    const size_t end = text.find('\n', start);
    REQUIRE(end != std::string::npos);
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  REQUIRE(lines.size() == 7);
  CHECK(lines[0] == "rill-keyring 1");
  CHECK(lines[1] == "key alias/a Disabled");
  CHECK(lines[3] == "key alias/rill Enabled");
  auto is_version = [](const std::string& line, int v) {
    const std::string prefix = absl::StrFormat("version %d ", v);
    if (line.substr(0, prefix.size()) != prefix || line.size() != prefix.size() + 64) return false;
    return line.find_first_not_of("0123456789abcdef", prefix.size()) == std::string::npos;
  };
  CHECK(is_version(lines[2], 1));
  CHECK(is_version(lines[4], 1));
  CHECK(is_version(lines[5], 2));
  CHECK(lines[4].substr(10) != lines[5].substr(10));  // a rotation makes new material
  CHECK(lines[2].substr(10) != lines[4].substr(10));
  CHECK(text == WithChecksum(text.substr(0, text.size() - 16)));
}

TEST_CASE("Keyring files are written with mode 0600", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  CHECK(FileMode(path) == 0600);
  CHECK((FileMode(path + ".lock") & 077) == 0);
  MustCreateKey(path, kKey);
  CHECK(FileMode(path) == 0600);

  SECTION("whatever the umask") {
    const mode_t old = ::umask(0277);
    const absl::StatusOr<uint32_t> rotated = FileKeyProvider::RotateKey(path, kKey);
    ::umask(old);
    REQUIRE(rotated.ok());
    CHECK(FileMode(path) == 0600);
  }
  SECTION("over a temporary file left with wider permissions") {
    Overwrite(path + ".tmp", "left by a crash");
    REQUIRE(::chmod((path + ".tmp").c_str(), 0644) == 0);
    REQUIRE(FileKeyProvider::DisableKey(path, kKey).ok());
    CHECK(FileMode(path) == 0600);
    REQUIRE(FileKeyProvider::EnableKey(path, kKey).ok());
    REQUIRE(FileKeyProvider::ScheduleKeyDeletion(path, kKey).ok());
    REQUIRE(FileKeyProvider::CancelKeyDeletion(path, kKey).ok());
    CHECK(FileMode(path) == 0600);
  }
  CHECK(::access((path + ".tmp").c_str(), F_OK) != 0);
}

TEST_CASE("A running provider sees the changes of other providers and processes", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  std::unique_ptr<FileKeyProvider> first = MustOpen(path);
  std::unique_ptr<FileKeyProvider> second = MustOpen(path);
  const DataKey key = MustGenerate(*first, kKey);

  REQUIRE(FileKeyProvider::DisableKey(path, kKey).ok());
  CHECK(GetErrorCode(first->GenerateDataKey(kKey).status()) == ErrorCode::kKmsDisabled);
  CHECK(GetErrorCode(second->DecryptDataKey(kKey, key.ciphertext_blob).status()) ==
        ErrorCode::kKmsDisabled);
  REQUIRE(FileKeyProvider::EnableKey(path, kKey).ok());
  CHECK(MustDecrypt(*second, kKey, key.ciphertext_blob) == key.plaintext);

  // A key created after the provider opened is usable at once.
  CHECK(GetErrorCode(first->CheckKey("alias/new")) == ErrorCode::kKmsNotFound);
  MustCreateKey(path, "alias/new");
  CHECK(first->CheckKey("alias/new").ok());

  SECTION("a keyring removed, then restored") {
    const std::string saved = MustRead(path);
    REQUIRE(::unlink(path.c_str()) == 0);
    const absl::Status gone = first->CheckKey(kKey);
    CHECK(GetErrorCode(gone) == ErrorCode::kKmsNotFound);
    CHECK(Mentions(gone, path));
    CHECK(Mentions(gone, "CreateKeyring"));
    Overwrite(path, saved);
    CHECK(MustDecrypt(*first, kKey, key.ciphertext_blob) == key.plaintext);
  }
  SECTION("a keyring damaged, then restored") {
    const std::string saved = MustRead(path);
    std::string damaged = saved;
    damaged[20] ^= 0x01;
    Overwrite(path, damaged);
    const absl::Status s = first->GenerateDataKey(kKey).status();
    CHECK(GetErrorCode(s) == ErrorCode::kKmsAccessDenied);
    CHECK(Mentions(s, path));
    CHECK(GetErrorCode(first->DecryptDataKey(kKey, key.ciphertext_blob).status()) ==
          ErrorCode::kKmsAccessDenied);
    Overwrite(path, saved);
    CHECK(MustDecrypt(*first, kKey, key.ciphertext_blob) == key.plaintext);
  }
}

TEST_CASE("A damaged keyring is refused, naming the file", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  MustCreateKey(path, "alias/b");
  REQUIRE(FileKeyProvider::RotateKey(path, kKey).ok());
  const std::string good = MustRead(path);

  auto expect_damaged = [&](const std::string& contents) {
    Overwrite(path, contents);
    const absl::Status s = FileKeyProvider::Open(path).status();
    CHECK(GetErrorCode(s) == ErrorCode::kKmsAccessDenied);
    CHECK(Mentions(s, path));
    CHECK(Mentions(s, "damaged"));
  };
  SECTION("truncated anywhere") {
    for (size_t n = 0; n < good.size(); ++n) {
      INFO("first " << n << " bytes");
      expect_damaged(good.substr(0, n));
    }
  }
  SECTION("a byte flipped anywhere") {
    for (size_t i = 0; i < good.size(); ++i) {
      for (unsigned mask : {0x01u, 0x20u, 0x80u, 0xffu}) {
        INFO("byte " << i << " ^ " << mask);
        std::string damaged = good;
        damaged[i] = static_cast<char>(static_cast<unsigned char>(damaged[i]) ^ mask);
        expect_damaged(damaged);
      }
    }
  }
  SECTION("bytes appended") { expect_damaged(good + "key alias/c Enabled\n"); }
  SECTION("management calls and ListKeys refuse it and leave it as it is") {
    std::string damaged = good;
    damaged[30] ^= 0x01;
    Overwrite(path, damaged);
    for (const absl::Status& s :
         {FileKeyProvider::CreateKey(path, "alias/c"), FileKeyProvider::DisableKey(path, kKey),
          FileKeyProvider::RotateKey(path, kKey).status(),
          FileKeyProvider::ListKeys(path).status()}) {
      CHECK(GetErrorCode(s) == ErrorCode::kKmsAccessDenied);
      CHECK(Mentions(s, path));
    }
    CHECK(MustRead(path) == damaged);
  }
}

TEST_CASE("A keyring with a correct checksum but a broken layout is refused", "[encryption]") {
  TempDir dir;
  const std::string path = dir.File("keyring");
  const std::string v1 = "version 1 " + kHexZeros + "\n";
  const std::string v2 = "version 2 " + kHexZeros + "\n";
  const std::vector<std::string> bodies = {
      // Headers other than "rill-keyring 1".
      "rill-keyring 2\n",
      "rill-keyring 1 \n",
      "RILL-KEYRING 1\n",
      // A key without versions: alone, or followed by another.
      "rill-keyring 1\nkey alias/rill Enabled\n",
      "rill-keyring 1\nkey alias/rill Enabled\nkey alias/s Enabled\n" + v1,
      // Versions before any key, not starting at 1, repeated, out of order.
      "rill-keyring 1\n" + v1,
      "rill-keyring 1\nkey alias/rill Enabled\n" + v2,
      "rill-keyring 1\nkey alias/rill Enabled\n" + v1 + v1,
      "rill-keyring 1\nkey alias/rill Enabled\n" + v2 + v1,
      "rill-keyring 1\nkey alias/rill Enabled\nversion 01 " + kHexZeros + "\n",
      // Key material of the wrong length or spelling, fields not separated by single spaces.
      "rill-keyring 1\nkey alias/rill Enabled\nversion 1 " + std::string(62, '0') + "\n",
      "rill-keyring 1\nkey alias/rill Enabled\nversion 1 " + std::string(64, 'A') + "\n",
      "rill-keyring 1\nkey alias/rill Enabled\nversion 1 " + std::string(64, 'g') + "\n",
      "rill-keyring 1\nkey alias/rill Enabled\nversion 1  " + kHexZeros + "\n",
      "rill-keyring 1\nkey alias/rill Enabled\nversion 1 " + kHexZeros + " x\n",
      // An unknown state, an extra field, an invalid key id.
      "rill-keyring 1\nkey alias/rill enabled\n" + v1,
      "rill-keyring 1\nkey alias/rill Enabled extra\n" + v1,
      "rill-keyring 1\nkey alias*rill Enabled\n" + v1,
      // Keys out of order, or twice.
      "rill-keyring 1\nkey alias/b Enabled\n" + v1 + "key alias/a Enabled\n" + v1,
      "rill-keyring 1\nkey alias/a Enabled\n" + v1 + "key alias/a Enabled\n" + v1,
      // Lines that are neither keys nor versions.
      "rill-keyring 1\n\nkey alias/rill Enabled\n" + v1,
      "rill-keyring 1\nsomething else\n",
  };
  for (const std::string& body : bodies) {
    INFO(body);
    Overwrite(path, WithChecksum(body));
    const absl::Status s = FileKeyProvider::Open(path).status();
    CHECK(GetErrorCode(s) == ErrorCode::kKmsAccessDenied);
    CHECK(Mentions(s, path));
  }
  // The same files are accepted once well-formed.
  Overwrite(path, WithChecksum("rill-keyring 1\nkey alias/a Disabled\n" + v1 + v2 +
                               "key alias/b PendingDeletion\n" + v1));
  const absl::StatusOr<std::vector<KeyMetadata>> listed = FileKeyProvider::ListKeys(path);
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 2);
  CHECK((*listed)[0].key_id == "alias/a");
  CHECK((*listed)[0].state == KeyState::kDisabled);
  CHECK((*listed)[0].current_version == 2);
  CHECK((*listed)[1].state == KeyState::kPendingDeletion);
  CHECK((*listed)[1].current_version == 1);
}

TEST_CASE("An unreadable keyring is refused with KMSAccessDenied", "[encryption]") {
  if (::geteuid() == 0) {
    WARN("skipped: running as root, which reads any file whatever its mode");
    return;
  }
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  REQUIRE(::chmod(path.c_str(), 0) == 0);

  const absl::Status open = FileKeyProvider::Open(path).status();
  CHECK(GetErrorCode(open) == ErrorCode::kKmsAccessDenied);
  CHECK(Mentions(open, path));
  CHECK(Mentions(open, "permissions"));
  // A provider opened before loses access too.
  CHECK(GetErrorCode(keys->GenerateDataKey(kKey).status()) == ErrorCode::kKmsAccessDenied);
  CHECK(GetErrorCode(FileKeyProvider::ListKeys(path).status()) == ErrorCode::kKmsAccessDenied);
  CHECK(GetErrorCode(FileKeyProvider::RotateKey(path, kKey).status()) ==
        ErrorCode::kKmsAccessDenied);

  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  CHECK(keys->CheckKey(kKey).ok());
}

TEST_CASE("Malformed key ids are invalid arguments and change nothing", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  const DataKey key = MustGenerate(*keys, kKey);
  const std::string before = MustRead(path);
  for (const std::string& id : kBadKeyIds) {
    INFO(id.substr(0, 80));
    CHECK(GetErrorCode(keys->CheckKey(id)) == ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(keys->GenerateDataKey(id).status()) == ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(keys->DecryptDataKey(id, key.ciphertext_blob).status()) ==
          ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(FileKeyProvider::CreateKey(path, id)) == ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(FileKeyProvider::RotateKey(path, id).status()) ==
          ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(FileKeyProvider::DisableKey(path, id)) == ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(FileKeyProvider::EnableKey(path, id)) == ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(FileKeyProvider::ScheduleKeyDeletion(path, id)) ==
          ErrorCode::kInvalidArgument);
    CHECK(GetErrorCode(FileKeyProvider::CancelKeyDeletion(path, id)) ==
          ErrorCode::kInvalidArgument);
  }
  CHECK(MustRead(path) == before);
}

TEST_CASE("Keyrings and keys are created once", "[encryption]") {
  TempDir dir;
  const std::string path = dir.File("keyring");

  const absl::Status missing = FileKeyProvider::Open(path).status();
  CHECK(GetErrorCode(missing) == ErrorCode::kKmsNotFound);
  CHECK(Mentions(missing, path));
  CHECK(Mentions(missing, "CreateKeyring"));
  CHECK(GetErrorCode(FileKeyProvider::CreateKey(path, kKey)) == ErrorCode::kKmsNotFound);
  CHECK(GetErrorCode(FileKeyProvider::ListKeys(path).status()) == ErrorCode::kKmsNotFound);
  CHECK(GetErrorCode(FileKeyProvider::CreateKey(dir.File("no/such/keyring"), kKey)) ==
        ErrorCode::kKmsNotFound);
  CHECK(GetErrorCode(FileKeyProvider::CreateKeyring(dir.File("no/such/keyring"))) ==
        ErrorCode::kInternalFailure);

  REQUIRE(FileKeyProvider::CreateKeyring(path).ok());
  CHECK(FileKeyProvider::ListKeys(path)->empty());
  MustCreateKey(path, kKey);
  const std::string before = MustRead(path);
  const absl::Status again = FileKeyProvider::CreateKeyring(path);
  CHECK(GetErrorCode(again) == ErrorCode::kResourceInUse);
  CHECK(Mentions(again, path));
  const absl::Status key_again = FileKeyProvider::CreateKey(path, kKey);
  CHECK(GetErrorCode(key_again) == ErrorCode::kResourceInUse);
  CHECK(Mentions(key_again, kKey));
  CHECK(MustRead(path) == before);
}

TEST_CASE("Concurrent callers share one provider while the key rotates", "[encryption]") {
  TempDir dir;
  const std::string path = MakeKeyring(dir);
  MustCreateKey(path, kKey);
  std::unique_ptr<FileKeyProvider> keys = MustOpen(path);
  constexpr int kThreads = 4;
  constexpr int kRounds = 50;
  std::vector<int> failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        absl::StatusOr<DataKey> key = keys->GenerateDataKey(kKey);
        if (!key.ok()) {
          ++failures[t];
          continue;
        }
        absl::StatusOr<std::string> same = keys->DecryptDataKey(kKey, key->ciphertext_blob);
        if (!same.ok() || *same != key->plaintext) ++failures[t];
      }
    });
  }
  for (int i = 0; i < 5; ++i) REQUIRE(FileKeyProvider::RotateKey(path, kKey).ok());
  for (std::thread& t : threads) t.join();
  CHECK(failures == std::vector<int>(kThreads, 0));
  CHECK(BlobVersion(MustGenerate(*keys, kKey).ciphertext_blob) == 6);
}

}  // namespace
}  // namespace rill
