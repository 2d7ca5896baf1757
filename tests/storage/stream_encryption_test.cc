// Server-side encryption of durable streams, end to end: StartStreamEncryption /
// StopStreamEncryption with Kinesis' semantics, no plaintext of encrypted records in any file,
// reopen and cold reads through the key provider, the KMS errors, damage, and a crash.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rill/base/error.h"
#include "rill/storage/encryption.h"
#include "rill/stream/stream.h"
#include "segment_testing.h"
#include "storage/file_util.h"
#include "storage/segment.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

constexpr char kKey[] = "alias/game-events";

// Every byte of every file under `dir`, concatenated.
std::string AllBytes(const std::string& dir) {
  std::string all;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) all += *internal::ReadFile(e.path().string());
  }
  return all;
}

struct Seen {
  std::string sequence;
  std::string data;
  friend bool operator==(const Seen&, const Seen&) = default;
};

std::map<std::string, std::vector<Seen>> ReadAll(const Stream& s) {
  std::map<std::string, std::vector<Seen>> out;
  for (const ShardDescription& d : s.ListShards()) {
    auto it = s.GetShardIterator(d.shard_id, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    std::optional<ShardIterator> next = *it;
    while (next) {
      auto batch = s.GetRecords(*next);
      REQUIRE(batch.ok());
      for (const Record& r : batch->records) {
        out[d.shard_id.ToString()].push_back(
            Seen{r.sequence_number.ToString(), std::string(r.data)});
      }
      next = batch->next_shard_iterator;
      if (batch->records.empty() && batch->millis_behind_latest == 0) break;
    }
  }
  return out;
}

struct Fixture {
  std::shared_ptr<SimulatedClock> clock = std::make_shared<SimulatedClock>();
  TempDir dir{"sse", TempDir::kAbsent};
  TempDir keys{"sse_keys"};
  std::string keyring = keys.path() + "/keyring";
  std::map<std::string, std::vector<Seen>> expected;

  Fixture() {
    REQUIRE(FileKeyProvider::CreateKeyring(keyring).ok());
    REQUIRE(FileKeyProvider::CreateKey(keyring, kKey).ok());
  }
  std::shared_ptr<KeyProvider> Provider() {
    auto p = FileKeyProvider::Open(keyring);
    REQUIRE(p.ok());
    return std::shared_ptr<KeyProvider>(std::move(*p));
  }
  StreamOptions Options(std::shared_ptr<KeyProvider> provider) {
    StreamOptions o =
        testing::DurableStreamOptions(dir.path(), clock, 2, FsyncPolicy::kEveryBatch, "events");
    o.storage->compression_level = 0;  // so that plaintext would show if it were there
    o.storage->background_flush = false;
    o.key_provider = std::move(provider);
    return o;
  }
  void Put(Stream& s, const std::string& data) {
    auto p = s.PutRecord(absl::StrCat("player-", expected.size() * 7 + data.size()), data);
    REQUIRE(p.ok());
    expected[p->shard_id.ToString()].push_back(Seen{p->sequence_number.ToString(), data});
  }
};

TEST_CASE("records put after StartStreamEncryption are encrypted at rest, earlier ones not",
          "[durable][encryption]") {
  Fixture f;
  {
    auto s = Stream::Create(f.Options(f.Provider()));
    REQUIRE(s.ok());
    for (int i = 0; i < 5; ++i) f.Put(**s, absl::StrCat("plain-before-", i));
    REQUIRE((*s)->Flush().ok());
    REQUIRE((*s)->StartStreamEncryption(EncryptionType::kKms, kKey).ok());
    const StreamSummary summary = (*s)->DescribeStreamSummary();
    CHECK(summary.encryption_type == EncryptionType::kKms);
    CHECK(summary.key_id == kKey);
    for (int i = 0; i < 30; ++i) f.Put(**s, absl::StrCat("secret-score-", i));
    REQUIRE((*s)->Flush().ok());  // into the segments
    for (int i = 30; i < 40; ++i) f.Put(**s, absl::StrCat("secret-score-", i));  // journal only
    const std::string bytes = AllBytes(f.dir.path());
    CHECK(bytes.find("secret-score") == std::string::npos);
    CHECK(bytes.find("plain-before-3") != std::string::npos);
    CHECK(ReadAll(**s) == f.expected);
  }
  // After a clean close, and without one (the journal's records are encrypted too): every file.
  CHECK(AllBytes(f.dir.path()).find("secret-score") == std::string::npos);
  auto s = Stream::Open(f.Options(f.Provider()));
  REQUIRE(s.ok());
  CHECK((*s)->recovery_status().ok());
  CHECK((*s)->DescribeStreamSummary().encryption_type == EncryptionType::kKms);
  CHECK((*s)->DescribeStreamSummary().key_id == kKey);
  CHECK(ReadAll(**s) == f.expected);

  // Stopping: later records are stored in the clear, earlier ones stay encrypted and readable.
  REQUIRE((*s)->StopStreamEncryption(EncryptionType::kKms, kKey).ok());
  CHECK((*s)->DescribeStreamSummary().encryption_type == EncryptionType::kNone);
  CHECK((*s)->DescribeStreamSummary().key_id.empty());
  f.Put(**s, "plain-after-stop");
  REQUIRE((*s)->Flush().ok());
  const std::string bytes = AllBytes(f.dir.path());
  CHECK(bytes.find("plain-after-stop") != std::string::npos);
  CHECK(bytes.find("secret-score") == std::string::npos);
  s->reset();
  auto again = Stream::Open(f.Options(f.Provider()));
  REQUIRE(again.ok());
  CHECK((*again)->DescribeStreamSummary().encryption_type == EncryptionType::kNone);
  CHECK(ReadAll(**again) == f.expected);
}

TEST_CASE("an encrypted stream does not open without its key, and says why",
          "[durable][encryption]") {
  Fixture f;
  {
    auto s = Stream::Create(f.Options(f.Provider()));
    REQUIRE(s.ok());
    REQUIRE((*s)->StartStreamEncryption(EncryptionType::kKms, kKey).ok());
    for (int i = 0; i < 10; ++i) f.Put(**s, absl::StrCat("secret-", i));
  }
  // No provider at all.
  auto none = Stream::Open(f.Options(nullptr));
  CHECK(GetErrorCode(none.status()) == ErrorCode::kKmsNotFound);
  CHECK_THAT(std::string(none.status().message()), Catch::Contains(kKey));
  // Another keyring that has a key of the same name: its data keys do not unwrap.
  TempDir other_dir("sse_other");
  const std::string other = other_dir.path() + "/keyring";
  REQUIRE(FileKeyProvider::CreateKeyring(other).ok());
  REQUIRE(FileKeyProvider::CreateKey(other, kKey).ok());
  auto other_provider = FileKeyProvider::Open(other);
  REQUIRE(other_provider.ok());
  auto wrong = Stream::Open(f.Options(std::shared_ptr<KeyProvider>(std::move(*other_provider))));
  CHECK(GetErrorCode(wrong.status()) == ErrorCode::kKmsAccessDenied);
  // A disabled key.
  REQUIRE(FileKeyProvider::DisableKey(f.keyring, kKey).ok());
  auto disabled = Stream::Open(f.Options(f.Provider()));
  CHECK(GetErrorCode(disabled.status()) == ErrorCode::kKmsDisabled);
  // Nothing was set aside or lost by those failed opens.
  REQUIRE(FileKeyProvider::EnableKey(f.keyring, kKey).ok());
  auto s = Stream::Open(f.Options(f.Provider()));
  REQUIRE(s.ok());
  CHECK((*s)->recovery_status().ok());
  CHECK(ReadAll(**s) == f.expected);

  // A read-only open reads it with the provider too.
  StreamOptions ro = f.Options(f.Provider());
  ro.storage->read_only = true;
  ro.name.clear();
  auto reader = Stream::Open(ro);
  REQUIRE(reader.ok());
  CHECK(ReadAll(**reader) == f.expected);
}

TEST_CASE("StartStreamEncryption's errors carry Kinesis' names", "[durable][encryption]") {
  Fixture f;
  auto s = Stream::Create(f.Options(f.Provider()));
  REQUIRE(s.ok());
  CHECK(GetErrorCode((*s)->StartStreamEncryption(EncryptionType::kNone, kKey)) ==
        ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode((*s)->StartStreamEncryption(EncryptionType::kKms, "")) ==
        ErrorCode::kInvalidArgument);
  CHECK(GetErrorCode((*s)->StartStreamEncryption(EncryptionType::kKms, "alias/missing")) ==
        ErrorCode::kKmsNotFound);
  REQUIRE(FileKeyProvider::CreateKey(f.keyring, "alias/off").ok());
  REQUIRE(FileKeyProvider::DisableKey(f.keyring, "alias/off").ok());
  CHECK(GetErrorCode((*s)->StartStreamEncryption(EncryptionType::kKms, "alias/off")) ==
        ErrorCode::kKmsDisabled);
  REQUIRE(FileKeyProvider::CreateKey(f.keyring, "alias/going").ok());
  REQUIRE(FileKeyProvider::ScheduleKeyDeletion(f.keyring, "alias/going").ok());
  CHECK(GetErrorCode((*s)->StartStreamEncryption(EncryptionType::kKms, "alias/going")) ==
        ErrorCode::kKmsInvalidState);
  CHECK((*s)->DescribeStreamSummary().encryption_type == EncryptionType::kNone);

  // Stopping with another key than the stream's is refused; stopping an unencrypted one is not.
  CHECK((*s)->StopStreamEncryption(EncryptionType::kKms, kKey).ok());
  REQUIRE((*s)->StartStreamEncryption(EncryptionType::kKms, kKey).ok());
  CHECK(GetErrorCode((*s)->StopStreamEncryption(EncryptionType::kKms, "alias/other")) ==
        ErrorCode::kInvalidArgument);

  // 25 key changes or stops per 24 hours.
  REQUIRE(FileKeyProvider::CreateKey(f.keyring, "alias/b").ok());
  int changes = 1;  // the start above
  for (; changes < 25; ++changes) {
    REQUIRE((*s)->StartStreamEncryption(EncryptionType::kKms, changes % 2 == 1 ? "alias/b" : kKey)
                .ok());
  }
  CHECK(GetErrorCode((*s)->StartStreamEncryption(EncryptionType::kKms, "alias/b")) ==
        ErrorCode::kLimitExceeded);
  f.clock->Advance(absl::Hours(24));
  CHECK((*s)->StartStreamEncryption(EncryptionType::kKms, "alias/b").ok());

  // Without a provider: the key cannot be found.
  StreamOptions memory = testing::MemoryStreamOptions(f.clock, 1, "m");
  auto m = Stream::Create(memory);
  REQUIRE(m.ok());
  CHECK(GetErrorCode((*m)->StartStreamEncryption(EncryptionType::kKms, kKey)) ==
        ErrorCode::kKmsNotFound);
}

TEST_CASE("an in-memory stream records its encryption setting", "[encryption]") {
  Fixture f;
  StreamOptions o = testing::MemoryStreamOptions(f.clock, 1, "m");
  o.key_provider = f.Provider();
  auto s = Stream::Create(o);
  REQUIRE(s.ok());
  REQUIRE((*s)->StartStreamEncryption(EncryptionType::kKms, kKey).ok());
  CHECK((*s)->DescribeStreamSummary().encryption_type == EncryptionType::kKms);
  REQUIRE((*s)->PutRecord("k", "v").ok());
  REQUIRE((*s)->StopStreamEncryption(EncryptionType::kKms, kKey).ok());
  CHECK((*s)->DescribeStreamSummary().encryption_type == EncryptionType::kNone);
}

TEST_CASE("encrypted records evicted from memory are read back through the key",
          "[durable][encryption]") {
  Fixture f;
  StreamOptions o = f.Options(f.Provider());
  o.storage->memory_budget_bytes = 64 << 10;
  o.storage->fsync = FsyncPolicy::kNever;  // many puts; durability is not what this checks
  auto s = Stream::Create(o);
  REQUIRE(s.ok());
  REQUIRE((*s)->StartStreamEncryption(EncryptionType::kKms, kKey).ok());
  const std::string pad(900, 'x');
  for (int i = 0; i < 16000; ++i) {
    f.Put(**s, absl::StrCat("secret-", i, pad));
    if (i % 500 == 499) REQUIRE((*s)->Flush().ok());
  }
  REQUIRE((*s)->Flush().ok());
  // Chunks of up to 2 MiB per shard stay; the rest of these 14 MB lives on disk only.
  CHECK((*s)->MemoryBytes() < 16000u * 900 / 3);
  CHECK(ReadAll(**s) == f.expected);
  // Resharding: the children write encrypted too.
  REQUIRE((*s)->SplitShard(ShardId(0), HashKey(absl::uint128(1) << 126)).ok());
  for (int i = 0; i < 20; ++i) f.Put(**s, absl::StrCat("child-secret-", i));
  REQUIRE((*s)->Flush().ok());
  CHECK(AllBytes(f.dir.path()).find("secret-") == std::string::npos);
}

TEST_CASE("a bit flipped in an encrypted segment is reported as damage", "[durable][encryption]") {
  // With the checksums left as they are (a disk's rot), and repaired (a deliberate edit, which
  // only authentication catches).
  const bool repair = GENERATE(false, true);
  INFO((repair ? "checksums repaired" : "checksums left"));
  Fixture f;
  StreamOptions o = f.Options(f.Provider());
  o.shard_count = 1;
  {
    auto s = Stream::Create(o);
    REQUIRE(s.ok());
    REQUIRE((*s)->StartStreamEncryption(EncryptionType::kKms, kKey).ok());
    for (int i = 0; i < 3; ++i) {
      REQUIRE((*s)->PutRecord("same-key", absl::StrCat("secret-", i)).ok());
      REQUIRE((*s)->Flush().ok());  // a frame each
    }
  }
  std::string segment;
  for (const auto& e : fs::directory_iterator(f.dir.Shard(0))) segment = e.path().string();
  REQUIRE(!segment.empty());
  std::string bytes = *internal::ReadFile(segment);
  auto scan = internal::ScanSegment(bytes);
  REQUIRE(scan.frames.size() == 3);
  // The first frame's tag (its last bytes): frames after it are intact.
  const internal::FrameInfo& first = scan.frames[0];
  bytes[first.offset + first.total_size - 3] ^= 0x01;
  if (repair) internal::testing::RepairSegmentChecksums(&bytes);
  {
    std::ofstream out(segment, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  auto s = Stream::Open(o);
  REQUIRE(s.ok());
  const absl::Status damage = (*s)->recovery_status();
  CHECK(GetErrorCode(damage) == ErrorCode::kInternalFailure);
  CHECK_THAT(std::string(damage.message()), Catch::Contains("shardId-000000000000"));
  CHECK_THAT(std::string(damage.message()),
             Catch::Contains(repair ? "authentication failed" : "checksum mismatch"));
  CHECK((*s)->recovered_records() == 0);  // nothing before the damage; nothing after is believed
  CHECK(ReadAll(**s).empty());
}

TEST_CASE("a process killed while encrypting loses nothing acknowledged", "[durable][encryption]") {
  Fixture f;
  const std::string done = f.keys.path() + "/acknowledged";
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto provider = FileKeyProvider::Open(f.keyring);
    if (!provider.ok()) ::_exit(2);
    StreamOptions o = f.Options(std::shared_ptr<KeyProvider>(std::move(*provider)));
    o.storage->background_flush = true;
    auto s = Stream::Create(o);
    if (!s.ok() || !(*s)->StartStreamEncryption(EncryptionType::kKms, kKey).ok()) ::_exit(3);
    std::ofstream log(done);
    for (int i = 0; i < 500; ++i) {
      auto p = (*s)->PutRecord(absl::StrCat("device-", i % 13), absl::StrCat("secret-", i));
      if (!p.ok()) ::_exit(4);
      log << p->sequence_number.ToString() << " secret-" << i << "\n";
    }
    log.flush();
    ::_exit(0);  // no Flush, no destructor: as a crash
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  CHECK(AllBytes(f.dir.path()).find("secret-") == std::string::npos);
  std::map<std::string, std::string> acknowledged;
  {
    std::ifstream in(done);
    std::string seq, data;
    while (in >> seq >> data) acknowledged[seq] = data;
  }
  REQUIRE(acknowledged.size() == 500);
  auto s = Stream::Open(f.Options(f.Provider()));
  REQUIRE(s.ok());
  CHECK((*s)->recovery_status().ok());
  std::map<std::string, std::string> recovered;
  for (const auto& [shard, records] : ReadAll(**s)) {
    for (const Seen& r : records) recovered[r.sequence] = r.data;
  }
  CHECK(recovered == acknowledged);
}

}  // namespace
}  // namespace rill
