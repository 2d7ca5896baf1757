#include "storage/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "storage/crc32c.h"
#include "storage/file_util.h"
#include "testing/fixtures.h"

namespace rill::internal {
namespace {

using ::rill::testing::TempDir;
using Mode = Journal::Mode;

struct Replayed {
  uint32_t shard;
  uint64_t counter;
  int64_t arrival_us;
  std::string key;
  std::string data;
};

std::unique_ptr<Journal> OpenJournal(const std::string& dir, Mode mode,
                                     std::vector<Replayed>* out = nullptr) {
  auto journal = Journal::Open(dir, mode, [&](const JournalEntry& e) {
    if (out != nullptr) {
      out->push_back(
          {e.shard, e.counter, e.arrival_us, std::string(e.partition_key), std::string(e.data)});
    }
  });
  REQUIRE(journal.ok());
  return *std::move(journal);
}

JournalEntry Entry(uint32_t shard, uint64_t counter, std::string_view key, std::string_view data) {
  return JournalEntry{shard, counter, static_cast<int64_t>(1000 + counter), key, data};
}

size_t Bytes(std::string_view key, std::string_view data) {
  return Journal::BlockBytes(key.size(), data.size());
}

std::vector<uint64_t> Counters(const std::vector<Replayed>& r) {
  std::vector<uint64_t> c;
  for (const Replayed& e : r) c.push_back(e.counter);
  return c;
}

// The single journal file of `dir`.
std::string OnlyFile(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/journal")) {
    files.push_back(e.path().string());
  }
  REQUIRE(files.size() == 1);
  return files[0];
}

TEST_CASE("Journal regions replay every record in order, in both modes", "[journal]") {
  const Mode mode = GENERATE(Mode::kMapped, Mode::kWriteThrough);
  TempDir dir;
  {
    auto journal = OpenJournal(dir.path(), mode);
    for (uint64_t call = 0; call < 3; ++call) {
      Journal::Region region;
      REQUIRE(journal->Reserve(3 * Bytes("key-0", "value-000"), &region).ok());
      for (uint64_t i = 0; i < 3; ++i) {
        const std::string data = "value-" + std::to_string(100 + call * 3 + i);
        REQUIRE(region.Fits(5, data.size()));
        region.Put(
            Entry(static_cast<uint32_t>(i), call * 3 + i + 1, "key-" + std::to_string(i), data));
      }
      CHECK_FALSE(region.Fits(0, 0));  // exactly full
      Journal::File* file = Journal::FileOf(region);
      auto ticket = journal->Finish(&region);
      REQUIRE(ticket.ok());
      CHECK(*ticket == call + 1);
      CHECK_FALSE(region.active());
      REQUIRE(journal->SyncTo(*ticket).ok());
      journal->Done(file);
    }
  }
  std::vector<Replayed> replayed;
  OpenJournal(dir.path(), mode, &replayed);
  REQUIRE(Counters(replayed) == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(replayed[4].shard == 1);
  CHECK(replayed[4].key == "key-1");
  CHECK(replayed[4].data == "value-104");
  CHECK(replayed[4].arrival_us == 1005);
}

TEST_CASE("Journal: the unused rest of a region is void and later regions still count",
          "[journal]") {
  const Mode mode = GENERATE(Mode::kMapped, Mode::kWriteThrough);
  TempDir dir;
  {
    auto journal = OpenJournal(dir.path(), mode);
    Journal::Region a;
    REQUIRE(journal->Reserve(10 * Bytes("k", "0123456789"), &a).ok());
    a.Put(Entry(0, 1, "k", "0123456789"));  // nine more reserved, never used (entries failed)
    REQUIRE(journal->Finish(&a).ok());
    Journal::Region b;
    REQUIRE(journal->Reserve(Bytes("k", "x"), &b).ok());
    b.Put(Entry(1, 7, "k", "x"));
    REQUIRE(journal->Finish(&b).ok());
  }
  std::vector<Replayed> replayed;
  OpenJournal(dir.path(), mode, &replayed);
  CHECK(Counters(replayed) == std::vector<uint64_t>{1, 7});
}

TEST_CASE("Journal: a call that never finished is stepped over (mapped)", "[journal]") {
  // A region reserved first and left half written (its writer died) must not hide the region
  // of a call that finished after it.
  TempDir dir;
  {
    auto journal = OpenJournal(dir.path(), Mode::kMapped);
    Journal::Region dying;
    REQUIRE(journal->Reserve(4 * Bytes("k", "abc"), &dying).ok());
    dying.Put(Entry(0, 1, "k", "abc"));  // written and visible before the death
    Journal::Region other;
    REQUIRE(journal->Reserve(Bytes("k", "def"), &other).ok());
    other.Put(Entry(1, 5, "k", "def"));
    REQUIRE(journal->Finish(&other).ok());
    // `dying` is never finished: the journal goes away as with a SIGKILL (the mapping's bytes
    // stay in the page cache).
  }
  std::vector<Replayed> replayed;
  OpenJournal(dir.path(), Mode::kMapped, &replayed);
  CHECK(Counters(replayed) == std::vector<uint64_t>{1, 5});
}

TEST_CASE("Journal: written through, an unfinished call writes nothing and hides nothing",
          "[journal]") {
  TempDir dir;
  {
    auto journal = OpenJournal(dir.path(), Mode::kWriteThrough);
    Journal::Region dying;
    REQUIRE(journal->Reserve(4 * Bytes("k", "abc"), &dying).ok());
    dying.Put(Entry(0, 1, "k", "abc"));  // in the caller's buffer only: never acknowledged
    Journal::Region other;
    REQUIRE(journal->Reserve(Bytes("k", "def"), &other).ok());
    other.Put(Entry(1, 5, "k", "def"));
    auto ticket = journal->Finish(&other);
    REQUIRE(ticket.ok());
    REQUIRE(journal->SyncTo(*ticket).ok());
  }
  std::vector<Replayed> replayed;
  OpenJournal(dir.path(), Mode::kWriteThrough, &replayed);
  CHECK(Counters(replayed) == std::vector<uint64_t>{5});
}

TEST_CASE("Journal: a damaged record is skipped, its neighbours are kept", "[journal]") {
  TempDir dir;
  {
    auto journal = OpenJournal(dir.path(), Mode::kWriteThrough);
    Journal::Region r;
    REQUIRE(journal->Reserve(3 * Bytes("key", "payload-1"), &r).ok());
    r.Put(Entry(0, 1, "key", "payload-1"));
    r.Put(Entry(0, 2, "key", "payload-2"));
    r.Put(Entry(0, 3, "key", "payload-3"));
    REQUIRE(journal->Finish(&r).ok());
  }
  const std::string path = OnlyFile(dir.path());
  {
    std::string bytes = *ReadFile(path);
    const size_t at = bytes.find("payload-2");
    REQUIRE(at != std::string::npos);
    const int fd = ::open(path.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, "X", 1, static_cast<off_t>(at)) == 1);
    ::close(fd);
  }
  std::vector<Replayed> replayed;
  OpenJournal(dir.path(), Mode::kWriteThrough, &replayed);
  CHECK(Counters(replayed) == std::vector<uint64_t>{1, 3});
}

TEST_CASE("Journal: recycled and reset files replay nothing of their earlier life", "[journal]") {
  const Mode mode = GENERATE(Mode::kMapped, Mode::kWriteThrough);
  TempDir dir;
  {
    auto journal = OpenJournal(dir.path(), mode);
    Journal::Region r;
    REQUIRE(journal->Reserve(Bytes("k", "old"), &r).ok());
    r.Put(Entry(0, 1, "k", "old"));
    Journal::File* file = Journal::FileOf(r);
    REQUIRE(journal->Finish(&r).ok());
    journal->Done(file);
    journal->Seal();
    const std::vector<Journal::File*> taken = journal->TakeRecyclable();
    REQUIRE(taken.size() == 1);
    REQUIRE(journal->Recycle(taken).ok());
    // The recycled file is reused for the next region, under a new seq.
    Journal::Region again;
    REQUIRE(journal->Reserve(Bytes("k", "new"), &again).ok());
    CHECK(Journal::FileOf(again) == file);
    again.Put(Entry(0, 2, "k", "new"));
    REQUIRE(journal->Finish(&again).ok());
  }
  std::vector<Replayed> replayed;
  {
    auto journal = OpenJournal(dir.path(), mode, &replayed);
    CHECK(Counters(replayed) == std::vector<uint64_t>{2});
    REQUIRE(journal->Reset().ok());
  }
  replayed.clear();
  OpenJournal(dir.path(), mode, &replayed);
  CHECK(replayed.empty());
}

// Every file switch costs the flusher a recycle, which syncs every shard's segments: a new
// region goes to the largest recycled file, never a small one that fits fewer calls.
TEST_CASE("Journal: regions go to the largest recycled file", "[journal]") {
  TempDir dir;
  auto journal = OpenJournal(dir.path(), Mode::kMapped);
  const std::string data(size_t{100} << 10, 'd');
  uint64_t counter = 0;
  auto put = [&] {
    Journal::Region r;
    REQUIRE(journal->Reserve(Bytes("k", data), &r).ok());
    r.Put(Entry(0, ++counter, "k", data));
    Journal::File* file = Journal::FileOf(r);
    REQUIRE(journal->Finish(&r).ok());
    journal->Done(file);
  };
  // Two calls fill the first file (256 KiB); the third starts the second (512 KiB).
  put();
  put();
  put();
  journal->Seal();
  std::vector<Journal::File*> taken = journal->TakeRecyclable();
  REQUIRE(taken.size() == 2);
  const uint64_t disk_bytes = journal->disk_bytes();
  // The small file recycled last, so that it is the newest free one.
  std::reverse(taken.begin(), taken.end());
  REQUIRE(journal->Recycle(taken).ok());
  // Three calls fit in the 512 KiB file alone: no file switch, so nothing sealed.
  put();
  put();
  put();
  CHECK_FALSE(journal->has_sealed());
  CHECK(journal->disk_bytes() == disk_bytes);
}

TEST_CASE("Journal: a file is not recyclable while a region in it is unfinished", "[journal]") {
  TempDir dir;
  auto journal = OpenJournal(dir.path(), Mode::kMapped);
  Journal::Region r;
  REQUIRE(journal->Reserve(Bytes("k", "v"), &r).ok());
  Journal::File* file = Journal::FileOf(r);
  journal->Seal();
  CHECK(journal->TakeRecyclable().empty());
  r.Put(Entry(0, 1, "k", "v"));
  REQUIRE(journal->Finish(&r).ok());
  CHECK(journal->TakeRecyclable().empty());  // finished, but not yet published (Done)
  journal->Done(file);
  CHECK(journal->TakeRecyclable().size() == 1);
}

TEST_CASE("Journal: a region larger than a file gets a file of its own", "[journal]") {
  TempDir dir;
  const std::string big(Journal::kMaxFileBytes, 'b');
  {
    auto journal = OpenJournal(dir.path(), Mode::kWriteThrough);
    Journal::Region r;
    REQUIRE(journal->Reserve(Bytes("k", big), &r).ok());
    r.Put(Entry(0, 1, "k", big));
    REQUIRE(journal->Finish(&r).ok());
  }
  std::vector<Replayed> replayed;
  OpenJournal(dir.path(), Mode::kWriteThrough, &replayed);
  REQUIRE(replayed.size() == 1);
  CHECK(replayed[0].data == big);
}

// The first journal format held bare record blocks, one per put: files a process of that
// version left behind must still replay.
TEST_CASE("Journal replays files of the first format (bare blocks)", "[journal]") {
  TempDir dir;
  {
    auto journal = OpenJournal(dir.path(), Mode::kMapped);  // creates the directory
  }
  // A file header for seq 1, then two bare blocks.
  std::string file(Journal::kFileHeaderBytes, '\0');
  std::memcpy(file.data(), "RILLJRNL", 8);
  const uint32_t version = 1;
  const uint64_t seq = 1;
  std::memcpy(file.data() + 8, &version, 4);
  std::memcpy(file.data() + 16, &seq, 8);
  const uint32_t header_crc = MaskCrc32c(Crc32c(file));
  std::memcpy(file.data() + 12, &header_crc, 4);
  auto block = [&](uint32_t shard, uint64_t counter, std::string_view key, std::string_view data) {
    std::string b(Journal::BlockBytes(key.size(), data.size()), '\0');
    const uint32_t magic = 0x31424a52, bytes = static_cast<uint32_t>(b.size());
    const auto key16 = static_cast<uint16_t>(key.size());
    const uint64_t arrival = 77;
    const auto data32 = static_cast<uint32_t>(data.size());
    std::memcpy(b.data(), &magic, 4);
    std::memcpy(b.data() + 4, &bytes, 4);
    std::memcpy(b.data() + 8, &seq, 8);
    std::memcpy(b.data() + 16, &shard, 4);
    std::memcpy(b.data() + 20, &key16, 2);
    std::memcpy(b.data() + 24, &counter, 8);
    std::memcpy(b.data() + 32, &arrival, 8);
    std::memcpy(b.data() + 40, &data32, 4);
    std::memcpy(b.data() + 48, key.data(), key.size());
    std::memcpy(b.data() + 48 + key.size(), data.data(), data.size());
    uint32_t crc = Crc32c(std::string_view(b.data(), 44));
    crc = Crc32cExtend(crc, key);
    crc = Crc32cExtend(crc, data);
    crc = MaskCrc32c(crc);
    std::memcpy(b.data() + 44, &crc, 4);
    file += b;
  };
  block(0, 3, "a", "first");
  block(2, 9, "bb", "second");
  file.resize(Journal::kMinFileBytes, '\0');
  REQUIRE(WriteFileAtomically(dir.path() + "/journal/00000000000000000001.jnl", file).ok());
  std::vector<Replayed> replayed;
  OpenJournal(dir.path(), Mode::kMapped, &replayed);
  REQUIRE(Counters(replayed) == std::vector<uint64_t>{3, 9});
  CHECK(replayed[1].shard == 2);
  CHECK(replayed[1].key == "bb");
  CHECK(replayed[1].data == "second");
  CHECK(replayed[1].arrival_us == 77);
}

TEST_CASE("Journal group commit: concurrent writers through, every acknowledged record replays",
          "[journal][stress]") {
  TempDir dir;
  constexpr int kThreads = 4, kCalls = 200, kPerCall = 5;
  {
    auto journal = OpenJournal(dir.path(), Mode::kWriteThrough);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int c = 0; c < kCalls; ++c) {
          Journal::Region r;
          std::string data(static_cast<size_t>(10 + (c * 37 + t) % 300), 'd');
          REQUIRE(journal->Reserve(kPerCall * Bytes("key", data), &r).ok());
          for (int i = 0; i < kPerCall; ++i) {
            const auto counter = static_cast<uint64_t>((t * kCalls + c) * kPerCall + i + 1);
            r.Put(Entry(static_cast<uint32_t>(t), counter, "key", data));
          }
          Journal::File* file = Journal::FileOf(r);
          auto ticket = journal->Finish(&r);
          REQUIRE(ticket.ok());
          REQUIRE(journal->SyncTo(*ticket).ok());
          journal->Done(file);
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  std::vector<Replayed> replayed;
  OpenJournal(dir.path(), Mode::kWriteThrough, &replayed);
  REQUIRE(replayed.size() == size_t{kThreads} * kCalls * kPerCall);
  std::vector<uint64_t> counters = Counters(replayed);
  std::sort(counters.begin(), counters.end());
  for (size_t i = 0; i < counters.size(); ++i) REQUIRE(counters[i] == i + 1);
}

// Issue 21 §5: group commit. Calls that finish their regions while a sync is in flight are all
// made durable by the one sync that follows it, not by one sync each.
TEST_CASE("Journal group commit: calls finished during a sync share the next one", "[journal]") {
  TempDir dir;
  auto journal = OpenJournal(dir.path(), Mode::kWriteThrough);
  uint64_t next_counter = 1;
  // Reserves, writes and finishes one region; returns its ticket (0 on failure) and file.
  auto finish_one = [&](uint64_t counter, Journal::File** file) -> uint64_t {
    Journal::Region r;
    if (!journal->Reserve(Bytes("key", "value"), &r).ok()) return 0;
    r.Put(Entry(0, counter, "key", "value"));
    *file = Journal::FileOf(r);
    absl::StatusOr<uint64_t> ticket = journal->Finish(&r);
    return ticket.ok() ? *ticket : 0;
  };
  {
    // The first region creates the journal's file (and syncs its directory): not counted below.
    Journal::File* file = nullptr;
    const uint64_t ticket = finish_one(next_counter++, &file);
    REQUIRE(ticket != 0);
    REQUIRE(journal->SyncTo(ticket).ok());
    journal->Done(file);
  }
  constexpr int kFollowers = 3;
  std::atomic<bool> leader_syncing{false};
  std::atomic<int> followers_finished{0};
  bool first_sync = true;  // read by sync leaders only, which take turns under the journal's lock
  journal->SetBeforeSyncForTesting([&] {
    if (!std::exchange(first_sync, false)) return;
    // Hold the leader's sync in flight until every follower has finished its region.
    leader_syncing.store(true);
    while (followers_finished.load() < kFollowers) std::this_thread::yield();
  });
  const uint64_t syncs_before = SyncCount();
  std::atomic<int> acknowledged{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&, counter = next_counter++] {
    Journal::File* file = nullptr;
    const uint64_t ticket = finish_one(counter, &file);
    if (ticket != 0 && journal->SyncTo(ticket).ok()) acknowledged.fetch_add(1);
    if (file != nullptr) journal->Done(file);
  });
  for (int f = 0; f < kFollowers; ++f) {
    threads.emplace_back([&, counter = next_counter++] {
      while (!leader_syncing.load()) std::this_thread::yield();
      Journal::File* file = nullptr;
      const uint64_t ticket = finish_one(counter, &file);
      followers_finished.fetch_add(1);
      if (ticket != 0 && journal->SyncTo(ticket).ok()) acknowledged.fetch_add(1);
      if (file != nullptr) journal->Done(file);
    });
  }
  for (std::thread& t : threads) t.join();
  journal->SetBeforeSyncForTesting(nullptr);
  CHECK(acknowledged.load() == 1 + kFollowers);
  // The leader's sync, then one for the three followers (one sync each would make four).
  CHECK(SyncCount() - syncs_before == 2);
  journal.reset();
  std::vector<Replayed> replayed;
  OpenJournal(dir.path(), Mode::kWriteThrough, &replayed);
  std::vector<uint64_t> counters = Counters(replayed);
  std::sort(counters.begin(), counters.end());
  CHECK(counters == std::vector<uint64_t>{1, 2, 3, 4, 5});
}

}  // namespace
}  // namespace rill::internal
