// The journal's encrypted record blocks: no plaintext in its files, exact replay with the keys,
// a KMS error (not silently skipped records) without them, and alterations caught.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rill/base/error.h"
#include "storage/aead.h"
#include "storage/crc32c.h"
#include "storage/file_util.h"
#include "storage/journal.h"
#include "testing/fixtures.h"

namespace rill::internal {
namespace {

using ::rill::testing::TempDir;
using Mode = Journal::Mode;

struct Replayed {
  uint32_t shard;
  uint64_t counter;
  std::string key;
  std::string data;
  friend bool operator==(const Replayed&, const Replayed&) = default;
};

std::shared_ptr<const FrameWriteKey> NewKey(std::map<std::string, std::string>* kms,
                                            const std::string& wrapped) {
  std::string plaintext(kAeadKeyBytes, '\0');
  REQUIRE(RandomBytes(plaintext.data(), plaintext.size()).ok());
  (*kms)[wrapped] = plaintext;
  return std::make_shared<const FrameWriteKey>(FrameWriteKey{"alias/iot", wrapped, plaintext});
}

FrameKeyring Keyring(const std::map<std::string, std::string>* kms) {
  return FrameKeyring(
      [kms](std::string_view, std::string_view wrapped) -> absl::StatusOr<std::string> {
        auto it = kms->find(std::string(wrapped));
        if (it == kms->end()) return MakeError(ErrorCode::kKmsAccessDenied, "unknown data key");
        return it->second;
      });
}

absl::StatusOr<std::unique_ptr<Journal>> Replay(const std::string& dir, Mode mode,
                                                FrameKeyring* keyring, std::vector<Replayed>* out) {
  return Journal::Open(
      dir, mode,
      [&](const JournalEntry& e) {
        out->push_back({e.shard, e.counter, std::string(e.partition_key), std::string(e.data)});
      },
      /*read_only=*/false, keyring);
}

// Puts `records` in one region (reserved for them all).
void PutAll(Journal* journal, const std::vector<Replayed>& records) {
  size_t bytes = 0;
  for (const Replayed& r : records) bytes += Journal::BlockBytes(r.key.size(), r.data.size());
  Journal::Region region;
  REQUIRE(journal->Reserve(bytes, &region).ok());
  for (const Replayed& r : records) {
    REQUIRE(region.Fits(r.key.size(), r.data.size()));
    region.Put(JournalEntry{r.shard, r.counter, 7, r.key, r.data});
  }
  CHECK_FALSE(region.Fits(0, 0));  // exactly the room the records needed
  Journal::File* file = Journal::FileOf(region);
  auto ticket = journal->Finish(&region);
  REQUIRE(ticket.ok());
  REQUIRE(journal->SyncTo(*ticket).ok());
  journal->Done(file);
}

std::vector<Replayed> Records(uint64_t first, int count, const std::string& tag) {
  std::vector<Replayed> out;
  for (int i = 0; i < count; ++i) {
    out.push_back({static_cast<uint32_t>(i % 3), first + static_cast<uint64_t>(i),
                   absl::StrCat("meter-", tag, i), absl::StrCat("kWh=", tag, "-reading-", i)});
  }
  return out;
}

std::string JournalBytes(const std::string& dir) {
  std::string all;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/journal")) {
    all += *ReadFile(e.path().string());
  }
  return all;
}

TEST_CASE("journal records written while encrypting hold no plaintext and replay exactly",
          "[journal][encryption]") {
  const Mode mode = GENERATE(Mode::kMapped, Mode::kWriteThrough);
  TempDir dir;
  std::map<std::string, std::string> kms;
  std::vector<Replayed> expected;
  {
    std::vector<Replayed> none;
    auto journal = Replay(dir.path(), mode, nullptr, &none);
    REQUIRE(journal.ok());
    const std::vector<Replayed> clear = Records(1, 4, "clear");
    PutAll(journal->get(), clear);
    REQUIRE((*journal)->SetEncryption(NewKey(&kms, "wrapped-1")).ok());
    const std::vector<Replayed> secret = Records(5, 20, "secret");
    PutAll(journal->get(), secret);
    // A second key (StartStreamEncryption with another key): its own slot.
    REQUIRE((*journal)->SetEncryption(NewKey(&kms, "wrapped-2")).ok());
    const std::vector<Replayed> other = Records(25, 3, "other");
    PutAll(journal->get(), other);
    REQUIRE((*journal)->SetEncryption(nullptr).ok());
    const std::vector<Replayed> after = Records(28, 2, "after");
    PutAll(journal->get(), after);
    for (const auto* part : {&clear, &secret, &other, &after}) {
      expected.insert(expected.end(), part->begin(), part->end());
    }
  }
  const std::string bytes = JournalBytes(dir.path());
  CHECK(bytes.find("secret-reading") == std::string::npos);
  CHECK(bytes.find("meter-secret") == std::string::npos);
  CHECK(bytes.find("other-reading") == std::string::npos);
  CHECK(bytes.find("clear-reading-2") != std::string::npos);  // written before: as it was
  CHECK(bytes.find("after-reading-1") != std::string::npos);

  FrameKeyring keyring = Keyring(&kms);
  std::vector<Replayed> replayed;
  auto journal = Replay(dir.path(), mode, &keyring, &replayed);
  REQUIRE(journal.ok());
  CHECK(replayed == expected);
}

TEST_CASE("replaying encrypted journal records without their key fails with a KMS error",
          "[journal][encryption]") {
  TempDir dir;
  std::map<std::string, std::string> kms;
  {
    std::vector<Replayed> none;
    auto journal = Replay(dir.path(), Mode::kMapped, nullptr, &none);
    REQUIRE(journal.ok());
    REQUIRE((*journal)->SetEncryption(NewKey(&kms, "wrapped-1")).ok());
    PutAll(journal->get(), Records(1, 5, "s"));
  }
  std::vector<Replayed> replayed;
  auto no_keyring = Replay(dir.path(), Mode::kMapped, nullptr, &replayed);
  CHECK(GetErrorCode(no_keyring.status()) == ErrorCode::kKmsAccessDenied);
  CHECK_THAT(std::string(no_keyring.status().message()), Catch::Contains("alias/iot"));
  std::map<std::string, std::string> other_kms;
  FrameKeyring wrong = Keyring(&other_kms);
  auto wrong_key = Replay(dir.path(), Mode::kMapped, &wrong, &replayed);
  CHECK(GetErrorCode(wrong_key.status()) == ErrorCode::kKmsAccessDenied);
}

TEST_CASE("an altered or unfinished encrypted region counts for nothing, and later ones do",
          "[journal][encryption]") {
  const Mode mode = GENERATE(Mode::kMapped, Mode::kWriteThrough);
  TempDir dir;
  std::map<std::string, std::string> kms;
  const std::vector<Replayed> first = Records(1, 3, "a");
  const std::vector<Replayed> unfinished = Records(4, 2, "b");
  const std::vector<Replayed> last = Records(6, 2, "c");
  {
    std::vector<Replayed> none;
    auto journal = Replay(dir.path(), mode, nullptr, &none);
    REQUIRE(journal.ok());
    REQUIRE((*journal)->SetEncryption(NewKey(&kms, "wrapped-1")).ok());
    PutAll(journal->get(), first);
    // A call that dies before Finish: its region is reserved (header written), never sealed.
    Journal::Region dying;
    REQUIRE((*journal)->Reserve(2 * Journal::BlockBytes(10, 20), &dying).ok());
    for (const Replayed& r : unfinished)
      dying.Put(JournalEntry{r.shard, r.counter, 7, r.key, r.data});
    PutAll(journal->get(), last);
    CHECK(JournalBytes(dir.path()).find("b-reading") == std::string::npos);  // never in the clear
  }
  FrameKeyring keyring = Keyring(&kms);
  {
    std::vector<Replayed> replayed;
    auto journal = Replay(dir.path(), mode, &keyring, &replayed);
    REQUIRE(journal.ok());
    std::vector<Replayed> expected = first;
    expected.insert(expected.end(), last.begin(), last.end());
    CHECK(replayed == expected);
  }
  // A byte of the first region's ciphertext changed: that region is not believed, the last is.
  std::string path;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() + "/journal")) {
    if (e.path().extension() == ".jnl") path = e.path().string();
  }
  REQUIRE(!path.empty());
  std::string bytes = *ReadFile(path);
  bytes[Journal::kFileHeaderBytes + Journal::kRegionHeaderBytes + 30] ^= 0x01;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::vector<Replayed> replayed;
  auto journal = Replay(dir.path(), mode, &keyring, &replayed);
  REQUIRE(journal.ok());
  CHECK(replayed == last);
}

}  // namespace
}  // namespace rill::internal
