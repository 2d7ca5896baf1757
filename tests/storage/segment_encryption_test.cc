// Encrypted segment frames (AES-256-GCM envelopes): what a file holds (no plaintext), what a
// reader needs (the keyring and the writer's context), and that every alteration fails
// authentication or the checksums, never decoding to other records.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rill/base/error.h"
#include "segment_testing.h"
#include "storage/aead.h"
#include "storage/file_util.h"
#include "storage/segment.h"
#include "testing/fixtures.h"

namespace rill::internal {
namespace {

using ::rill::testing::TempDir;
using testing::OwnedRecord;
using testing::SameRecord;
using testing::Views;

// A provider's stand-in: data keys wrapped as "wrapped:<n>", unwrapped by lookup.
struct FakeKms {
  std::map<std::string, std::string> keys;  // wrapped -> plaintext
  int unwraps = 0;

  std::shared_ptr<const FrameWriteKey> NewKey(const std::string& key_id) {
    std::string plaintext(kAeadKeyBytes, '\0');
    REQUIRE(RandomBytes(plaintext.data(), plaintext.size()).ok());
    const std::string wrapped = absl::StrCat("wrapped:", keys.size());
    keys[wrapped] = plaintext;
    return std::make_shared<const FrameWriteKey>(FrameWriteKey{key_id, wrapped, plaintext});
  }
  FrameKeyring Keyring() {
    return FrameKeyring(
        [this](std::string_view, std::string_view wrapped) -> absl::StatusOr<std::string> {
          ++unwraps;
          auto it = keys.find(std::string(wrapped));
          if (it == keys.end()) return MakeError(ErrorCode::kKmsAccessDenied, "not our key");
          return it->second;
        });
  }
};

std::vector<OwnedRecord> Records(uint64_t first, size_t count, const std::string& tag) {
  std::vector<OwnedRecord> out;
  for (size_t i = 0; i < count; ++i) {
    out.push_back(OwnedRecord{first + i, 1'700'000'000'000'000 + static_cast<int64_t>(i),
                              absl::StrCat("player-", tag, "-", i),
                              absl::StrCat("{\"secret\":\"", tag, "-payload-", i, "\"}")});
  }
  return out;
}

// Reads every frame of `path` through `scratch`; the first error, or the records.
absl::StatusOr<std::vector<OwnedRecord>> ReadAll(const std::string& path, FrameBuffer* scratch) {
  absl::StatusOr<SegmentReader> reader = SegmentReader::Open(path);
  if (!reader.ok()) return reader.status();
  if (!reader->scan().corruption.ok()) return reader->scan().corruption;
  if (reader->scan().torn_tail) return absl::DataLossError("torn tail");
  std::vector<OwnedRecord> all;
  std::vector<StoredRecord> out;
  for (const FrameInfo& f : reader->frames()) {
    if (absl::Status s = reader->ReadFrame(f, scratch, &out); !s.ok()) return s;
    for (const StoredRecord& r : out) {
      all.push_back(
          OwnedRecord{r.counter, r.arrival_us, std::string(r.partition_key), std::string(r.data)});
    }
  }
  return all;
}

bool Same(const std::vector<OwnedRecord>& a, const std::vector<OwnedRecord>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!SameRecord(a[i].view(), b[i].view())) return false;
  }
  return true;
}

struct Written {
  std::string path;
  std::vector<OwnedRecord> records;
};

// Three frames: plaintext, encrypted, plaintext again (encryption stopped), at `level`.
Written WriteMixed(const std::string& path, FakeKms* kms, const std::string& context, int level) {
  auto writer = SegmentWriter::Create(path, SegmentWriterOptions{.compression_level = level});
  REQUIRE(writer.ok());
  Written w{path, {}};
  const std::vector<OwnedRecord> a = Records(1, 20, "before");
  const std::vector<OwnedRecord> b = Records(21, 50, "during");
  const std::vector<OwnedRecord> c = Records(71, 5, "after");
  REQUIRE((*writer)->Append(Views(a)).ok());
  REQUIRE((*writer)->SetEncryption(kms->NewKey("alias/game"), context).ok());
  REQUIRE((*writer)->Append(Views(b)).ok());
  REQUIRE((*writer)->SetEncryption(nullptr, "").ok());
  REQUIRE((*writer)->Append(Views(c)).ok());
  REQUIRE((*writer)->Sync().ok());
  for (const auto* part : {&a, &b, &c})
    w.records.insert(w.records.end(), part->begin(), part->end());
  return w;
}

TEST_CASE("encrypted frames round-trip and hold no plaintext", "[segment][encryption]") {
  const int level = GENERATE(0, 1);
  INFO("compression level " << level);
  TempDir dir("enc_roundtrip");
  FakeKms kms;
  const Written w = WriteMixed(dir.path() + "/a.seg", &kms, "stream-1/shard-0", level);
  const std::string file = *ReadFile(w.path);
  // The encrypted frame's records appear nowhere; the plaintext frames' do.
  CHECK(file.find("during-payload") == std::string::npos);
  CHECK(file.find("player-during") == std::string::npos);
  if (level == 0) CHECK(file.find("before-payload-3") != std::string::npos);

  // A scan needs no key: the CRCs cover the envelopes.
  const SegmentScan scan = ScanSegment(file);
  CHECK(scan.corruption.ok());
  CHECK(scan.frames.size() == 3);
  CHECK_FALSE(scan.torn_tail);

  FrameKeyring keyring = kms.Keyring();
  FrameBuffer scratch;
  scratch.SetDecryption(&keyring, "stream-1/shard-0");
  absl::StatusOr<std::vector<OwnedRecord>> read = ReadAll(w.path, &scratch);
  REQUIRE(read.ok());
  CHECK(Same(*read, w.records));
  // Read again: the data key is unwrapped once, then cached.
  REQUIRE(ReadAll(w.path, &scratch).ok());
  FrameBuffer other;
  other.SetDecryption(&keyring, "stream-1/shard-0");
  REQUIRE(ReadAll(w.path, &other).ok());
  CHECK(kms.unwraps == 1);
}

TEST_CASE("an encrypted frame without its key fails with a KMS error, not as damage",
          "[segment][encryption]") {
  TempDir dir("enc_nokey");
  FakeKms kms;
  const Written w = WriteMixed(dir.path() + "/a.seg", &kms, "ctx", 1);
  FrameBuffer no_keyring;
  absl::StatusOr<std::vector<OwnedRecord>> read = ReadAll(w.path, &no_keyring);
  CHECK(GetErrorCode(read.status()) == ErrorCode::kKmsAccessDenied);
  CHECK(IsKeyError(read.status()));
  CHECK_THAT(std::string(read.status().message()), Catch::Contains("alias/game"));

  FakeKms stranger;  // knows no key of this file
  FrameKeyring keyring = stranger.Keyring();
  FrameBuffer wrong;
  wrong.SetDecryption(&keyring, "ctx");
  read = ReadAll(w.path, &wrong);
  CHECK(GetErrorCode(read.status()) == ErrorCode::kKmsAccessDenied);
  CHECK(IsKeyError(read.status()));
}

TEST_CASE("a frame read under another shard's context fails authentication",
          "[segment][encryption]") {
  TempDir dir("enc_context");
  FakeKms kms;
  const Written w = WriteMixed(dir.path() + "/a.seg", &kms, "stream-1/shard-0", 1);
  FrameKeyring keyring = kms.Keyring();
  FrameBuffer scratch;
  scratch.SetDecryption(&keyring, "stream-1/shard-1");
  absl::StatusOr<std::vector<OwnedRecord>> read = ReadAll(w.path, &scratch);
  CHECK(read.status().code() == absl::StatusCode::kDataLoss);
  CHECK_FALSE(IsKeyError(read.status()));
  CHECK_THAT(std::string(read.status().message()), Catch::Contains("authentication failed"));
}

TEST_CASE("every altered byte of an encrypted frame is caught", "[segment][encryption]") {
  TempDir dir("enc_flip");
  FakeKms kms;
  auto writer = SegmentWriter::Create(dir.path() + "/a.seg", SegmentWriterOptions{});
  REQUIRE(writer.ok());
  REQUIRE((*writer)->SetEncryption(kms.NewKey("k"), "ctx").ok());
  const std::vector<OwnedRecord> records = Records(1, 30, "x");
  REQUIRE((*writer)->Append(Views(records)).ok());
  REQUIRE((*writer)->Sync().ok());
  const std::string original = *ReadFile(dir.path() + "/a.seg");
  FrameKeyring keyring = kms.Keyring();
  // Every byte of the frame (header and envelope), flipped; with the checksums left as they
  // are, and with them repaired (as someone altering the file on purpose would).
  int auth_failures = 0;
  for (size_t at = kSegmentFileHeaderBytes; at < original.size(); ++at) {
    for (bool repair : {false, true}) {
      std::string bytes = original;
      bytes[at] ^= 0x04;
      if (repair) testing::RepairSegmentChecksums(&bytes);
      const std::string path = dir.path() + "/flipped.seg";
      {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      }
      FrameBuffer scratch;
      scratch.SetDecryption(&keyring, "ctx");
      absl::StatusOr<std::vector<OwnedRecord>> read = ReadAll(path, &scratch);
      INFO("byte " << at << (repair ? " with checksums repaired" : ""));
      // Either the damage is found, or (a flip in the wrapped key id's bytes that the keyring
      // does not care about) the records are exactly the originals. Never other records.
      if (read.ok()) {
        CHECK(Same(*read, records));
      } else if (absl::StrContains(read.status().message(), "authentication failed")) {
        ++auth_failures;
      }
    }
  }
  // The ciphertext, the tag, the nonce and the authenticated header fields, once repaired, are
  // caught by authentication: most of the frame.
  CHECK(auth_failures > 100);
}

}  // namespace
}  // namespace rill::internal
