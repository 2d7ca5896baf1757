// Crash recovery: a child process puts records into a durable stream (FsyncPolicy::kEveryBatch)
// and reports each acknowledged one on a pipe until the parent kills it with SIGKILL at a random
// moment; the parent then opens the directory and checks that every acknowledged record is there
// exactly once and in order, that nothing appears that was never put, and that the stream goes
// on. Fifty kills in a row over one directory, then one kill followed by a torn segment and one
// followed by a flipped byte.
//
// The child never touches Catch2: it reports through the pipe and its exit status only.
// RILL_CRASH_SEED=<n> repeats a run (the seed is printed when a check fails).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "rill/base/error.h"
#include "rill/storage/encryption.h"
#include "rill/stream/stream.h"
#include "storage/file_util.h"
#include "storage/segment.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

namespace fs = std::filesystem;

constexpr int kShards = 4;
constexpr int kKeys = 16;
// A child puts one PutRecords of this many entries after every 3 PutRecord calls.
constexpr int kBatchEntries = 5;
// More puts than a child can make before its kill (about 1.5 ms per fsync here); then it waits.
constexpr int kMaxPutsPerChild = 5000;

// Set by the encrypted run: the keyring every open (the parent's and the children's) reads its
// keys from.
std::string& Keyring() {
  static std::string keyring;
  return keyring;
}
constexpr char kKeyId[] = "alias/crash";

StreamOptions CrashOptions(const std::string& dir) {
  StreamOptions o = testing::DurableStreamOptions(dir, SystemClock::Default(), kShards,
                                                  FsyncPolicy::kEveryBatch, "crash");
  if (!Keyring().empty()) {
    auto provider = FileKeyProvider::Open(Keyring());
    if (provider.ok()) o.key_provider = std::move(*provider);
  }
  return o;
}

std::string KeyOf(int n) { return absl::StrCat("key-", n % kKeys); }

void WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ::_exit(5);
    done += static_cast<size_t>(n);
  }
}

// The child: puts records "<iteration>:<n>" with keys KeyOf(n), reporting each acknowledged one
// as a line "<shard index> <sequence number> <data>", then waits to be killed. Errors are
// reported as a line "E <message>".
[[noreturn]] void RunChild(const std::string& dir, int iteration, int fd) {
  auto s = Stream::Open(CrashOptions(dir));
  if (!s.ok()) {
    WriteAll(fd, absl::StrCat("E open: ", s.status().ToString(), "\n"));
    ::_exit(3);
  }
  int n = 0;
  while (n < kMaxPutsPerChild) {
    if (n % 4 == 3) {
      std::vector<PutRecordsEntry> entries;
      for (int i = 0; i < kBatchEntries; ++i) {
        entries.push_back(PutRecordsEntry{KeyOf(n + i), absl::StrCat(iteration, ":", n + i), {}});
      }
      auto result = (*s)->PutRecords(entries);
      if (!result.ok() || result->failed_record_count != 0) {
        WriteAll(fd, absl::StrCat("E PutRecords: ", result.status().ToString(), "\n"));
        ::_exit(4);
      }
      std::string lines;
      for (size_t i = 0; i < entries.size(); ++i) {
        const PutRecordsResultEntry& e = result->entries[i];
        absl::StrAppend(&lines, e.shard_id.index(), " ", e.sequence_number.ToString(), " ",
                        entries[i].data, "\n");
      }
      WriteAll(fd, lines);
      n += kBatchEntries;
    } else {
      const std::string data = absl::StrCat(iteration, ":", n);
      auto p = (*s)->PutRecord(KeyOf(n), data);
      if (!p.ok()) {
        WriteAll(fd, absl::StrCat("E PutRecord: ", p.status().ToString(), "\n"));
        ::_exit(4);
      }
      WriteAll(fd, absl::StrCat(p->shard_id.index(), " ", p->sequence_number.ToString(), " ", data,
                                "\n"));
      ++n;
    }
  }
  for (;;) ::pause();
}

struct Entry {
  SequenceNumber sequence_number;
  std::string partition_key;
  std::string data;

  friend bool operator==(const Entry&, const Entry&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Entry& e) {
    return os << "{" << e.sequence_number << " " << e.partition_key << " " << e.data << "}";
  }
};

using Shards = std::map<uint32_t, std::vector<Entry>>;

struct ChildRun {
  Shards acked;  // per shard, in acknowledgement order
  int acked_count = 0;
  std::vector<std::string> errors;
};

// Forks a child for `iteration`, kills it after `delay`, and returns what it acknowledged.
ChildRun RunAndKill(const std::string& dir, int iteration, std::chrono::microseconds delay) {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    RunChild(dir, iteration, fds[1]);
  }
  ::close(fds[1]);
  // Read while the child runs (so that it never blocks on a full pipe), kill it, read the rest.
  std::string text;
  char buffer[1 << 16];
  const auto deadline = std::chrono::steady_clock::now() + delay;
  bool killed = false;
  for (;;) {
    int timeout_ms = -1;
    if (!killed) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        REQUIRE(::kill(pid, SIGKILL) == 0);
        killed = true;
      } else {
        timeout_ms = static_cast<int>(left.count()) + 1;
      }
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = ::poll(&p, 1, killed ? -1 : timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    REQUIRE(ready >= 0);
    if (ready == 0) continue;
    const ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    REQUIRE(n >= 0);
    if (n == 0) break;  // the child is gone (killed, or exited after an error)
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (!killed) ::kill(pid, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);

  ChildRun run;
  // Each write() is shorter than PIPE_BUF, so its lines arrive whole or not at all.
  const std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  for (const std::string& line : lines) {
    if (line.starts_with("E ")) {
      run.errors.push_back(line);
      continue;
    }
    const std::vector<std::string> parts = absl::StrSplit(line, ' ');
    uint32_t shard = 0;
    REQUIRE(parts.size() == 3);
    REQUIRE(absl::SimpleAtoi(parts[0], &shard));
    auto sequence = SequenceNumber::Parse(parts[1]);
    REQUIRE(sequence.ok());
    int n = 0;
    REQUIRE(absl::SimpleAtoi(parts[2].substr(parts[2].find(':') + 1), &n));
    run.acked[shard].push_back(Entry{*sequence, KeyOf(n), parts[2]});
    ++run.acked_count;
  }
  if (WIFEXITED(status)) {
    run.errors.push_back(absl::StrCat("the child exited with status ", WEXITSTATUS(status)));
  }
  return run;
}

Shards ReadEverything(const Stream& s) {
  Shards out;
  for (const ShardDescription& d : s.ListShards()) {
    std::vector<Entry>& records = out[d.shard_id.index()];
    auto it = s.GetShardIterator(d.shard_id, StartingPosition::TrimHorizon());
    REQUIRE(it.ok());
    std::optional<ShardIterator> next = *it;
    while (next) {
      auto batch = s.GetRecords(*next);
      REQUIRE(batch.ok());
      for (const Record& r : batch->records) {
        records.push_back(
            Entry{r.sequence_number, std::string(r.partition_key), std::string(r.data)});
      }
      next = batch->next_shard_iterator;
      if (batch->records.empty() && batch->millis_behind_latest == 0) break;
    }
  }
  return out;
}

// Whether `data` is "<iteration>:<n>" of a record the child may have put but not acknowledged:
// the next one after its acknowledged ones (or one of the batch that was in flight).
bool MayBeInFlight(const Entry& e, int iteration, int acked_count) {
  const std::string prefix = absl::StrCat(iteration, ":");
  int n = 0;
  if (!e.data.starts_with(prefix) || !absl::SimpleAtoi(e.data.substr(prefix.size()), &n)) {
    return false;
  }
  return n >= acked_count && n < acked_count + kBatchEntries && e.partition_key == KeyOf(n);
}

// The directory's state as the test expects it: per shard, every record that must be there, in
// order. Checks a reopened stream against it and extends it.
class Model {
 public:
  // Checks `got` (everything readable after iteration `iteration`'s child was killed, having
  // acknowledged `run`) and adopts it. A shard in `kept` was damaged on purpose: it must hold
  // exactly that many records, a prefix of what was on disk.
  void Check(const Shards& got, int iteration, const ChildRun& run,
             const std::map<uint32_t, size_t>& kept = {}) {
    for (uint32_t shard = 0; shard < kShards; ++shard) {
      INFO("shard " << shard);
      const std::vector<Entry> empty;
      const std::vector<Entry>& records = got.count(shard) ? got.at(shard) : empty;
      // Order: strictly increasing sequence numbers.
      for (size_t i = 1; i < records.size(); ++i) {
        CHECK(records[i - 1].sequence_number < records[i].sequence_number);
      }
      // What must be there: the records known before, then this child's acknowledged ones in
      // acknowledgement order.
      std::vector<Entry> must = known_[shard];
      if (run.acked.count(shard)) {
        const std::vector<Entry>& acked = run.acked.at(shard);
        must.insert(must.end(), acked.begin(), acked.end());
      }
      // A damaged shard keeps exactly the records of its frames before the damage; after them
      // the journal may restore acknowledged records it still holds (those not yet recycled),
      // in order, so the shard reads as that prefix, then a subsequence of what was acked.
      const bool damaged = kept.count(shard) > 0;
      size_t common = 0;
      if (damaged) {
        REQUIRE(records.size() >= kept.at(shard));
        REQUIRE(kept.at(shard) <= must.size());
        for (size_t i = 0; i < kept.at(shard); ++i) {
          if (!(records[i] == must[i])) FAIL("record " << i << " is " << records[i]);
        }
        size_t j = kept.at(shard);
        common = kept.at(shard);
        while (common < records.size()) {
          while (j < must.size() && !(must[j] == records[common])) ++j;
          if (j == must.size()) break;
          ++common;
          ++j;
        }
      } else {
        REQUIRE(records.size() >= must.size());
        common = must.size();
        for (size_t i = 0; i < common; ++i) {
          if (records[i] == must[i]) continue;
          FAIL("record " << i << " of " << records.size() << " is " << records[i] << ", not "
                         << must[i]);
        }
      }
      // After them, only records that were put but not acknowledged yet, each once.
      std::set<std::string> extra;
      for (size_t i = common; i < records.size(); ++i) {
        INFO("unexpected " << records[i]);
        CHECK(MayBeInFlight(records[i], iteration, run.acked_count));
        CHECK(extra.insert(records[i].data).second);
      }
      in_flight_found_ += extra.size();
      known_[shard] = records;
    }
  }

  // Puts a few records from the parent (acknowledged: they must survive like the child's).
  void PutFromParent(Stream& s, int iteration) {
    for (int j = 0; j < 8; ++j) {
      const std::string key = KeyOf(j);
      const std::string data = absl::StrCat("parent-", iteration, ":", j);
      auto p = s.PutRecord(key, data);
      REQUIRE(p.ok());
      std::vector<Entry>& shard = known_[p->shard_id.index()];
      if (!shard.empty()) CHECK(shard.back().sequence_number < p->sequence_number);
      shard.push_back(Entry{p->sequence_number, key, data});
    }
  }

  const std::vector<Entry>& known(uint32_t shard) { return known_[shard]; }
  size_t in_flight_found() const { return in_flight_found_; }
  size_t total() const {
    size_t n = 0;
    for (const auto& [shard, records] : known_) n += records.size();
    return n;
  }

 private:
  std::map<uint32_t, std::vector<Entry>> known_;
  size_t in_flight_found_ = 0;
};

// The segment files of a shard, oldest first.
std::vector<std::string> Segments(const std::string& dir, uint32_t shard) {
  std::vector<std::string> paths;
  const std::string shard_dir = absl::StrCat(dir, "/shard-", shard);
  for (const auto& entry : fs::directory_iterator(shard_dir)) {
    if (entry.path().extension() == ".seg") paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

struct SegmentFrames {
  std::string path;
  std::vector<internal::FrameInfo> frames;
  uint64_t records_before = 0;  // in the shard's older segments
  uint64_t size = 0;
};

// The newest segment of the shard whose newest segment has the most frames.
SegmentFrames PickSegment(const std::string& dir) {
  SegmentFrames best;
  for (uint32_t shard = 0; shard < kShards; ++shard) {
    const std::vector<std::string> paths = Segments(dir, shard);
    if (paths.empty()) continue;
    uint64_t before = 0;
    for (size_t i = 0; i + 1 < paths.size(); ++i) {
      auto reader = internal::SegmentReader::Open(paths[i]);
      REQUIRE(reader.ok());
      for (const internal::FrameInfo& f : reader->frames()) before += f.record_count;
    }
    auto reader = internal::SegmentReader::Open(paths.back());
    REQUIRE(reader.ok());
    if (reader->frames().size() > best.frames.size()) {
      best = SegmentFrames{paths.back(), reader->frames(), before, reader->scan().file_size};
    }
  }
  return best;
}

uint32_t ShardOf(const std::string& segment_path) {
  const std::string dir = fs::path(segment_path).parent_path().filename().string();
  uint32_t shard = 0;
  REQUIRE(absl::SimpleAtoi(dir.substr(dir.find('-') + 1), &shard));
  return shard;
}

// `kills` plain kills, then one whose newest segment is cut short, one with a flipped byte and a
// last plain one. `encrypted`: the stream is encrypted at rest from the start (every child
// writes its journal regions and segment frames sealed, under a data key of its own).
void CrashLoop(int kills, bool encrypted) {
  uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("RILL_CRASH_SEED")) REQUIRE(absl::SimpleAtoi(env, &seed));
  INFO("RILL_CRASH_SEED=" << seed);
  std::mt19937_64 rng(seed);
  const testing::TempDir scoped("crash", testing::TempDir::kAbsent);
  const testing::TempDir keys("crash_keys");
  const std::string& dir = scoped.path();
  Keyring().clear();
  if (encrypted) {
    Keyring() = keys.path() + "/keyring";
    REQUIRE(FileKeyProvider::CreateKeyring(Keyring()).ok());
    REQUIRE(FileKeyProvider::CreateKey(Keyring(), kKeyId).ok());
  }
  {
    auto created = Stream::Create(CrashOptions(dir));
    REQUIRE(created.ok());
    if (encrypted) {
      REQUIRE((*created)->StartStreamEncryption(EncryptionType::kKms, kKeyId).ok());
    }
  }
  Model model;
  const auto start = std::chrono::steady_clock::now();
  int total_acked = 0;
  const int kKills = kills;
  for (int iteration = 0; iteration < kKills + 3; ++iteration) {
    const bool truncate = iteration == kKills;
    const bool flip = iteration == kKills + 1;
    INFO("iteration " << iteration);
    const auto delay =
        std::chrono::microseconds(std::uniform_int_distribution<int>(3000, 100000)(rng));
    const ChildRun run = RunAndKill(dir, iteration, delay);
    for (const std::string& error : run.errors) FAIL_CHECK("child: " << error);
    total_acked += run.acked_count;

    std::map<uint32_t, size_t> kept;
    std::optional<uint32_t> damaged_shard;
    if (truncate || flip) {
      const SegmentFrames segment = PickSegment(dir);
      REQUIRE(segment.frames.size() >= 3);
      const uint32_t shard = ShardOf(segment.path);
      damaged_shard = shard;
      uint64_t records = segment.records_before;
      if (truncate) {
        // Cut 1 byte up to everything after the first frame.
        const uint64_t first_end = segment.frames[0].offset + segment.frames[0].total_size;
        const uint64_t cut_to =
            std::uniform_int_distribution<uint64_t>(first_end, segment.size - 1)(rng);
        INFO("cut " << segment.path << " to " << cut_to << " of " << segment.size << " bytes");
        fs::resize_file(segment.path, cut_to);
        for (const internal::FrameInfo& f : segment.frames) {
          if (f.offset + f.total_size <= cut_to) records += f.record_count;
        }
      } else {
        // A byte of a frame that is neither the first nor the last.
        const size_t frame =
            std::uniform_int_distribution<size_t>(1, segment.frames.size() - 2)(rng);
        const internal::FrameInfo& f = segment.frames[frame];
        const uint64_t at =
            std::uniform_int_distribution<uint64_t>(f.offset, f.offset + f.total_size - 1)(rng);
        absl::StatusOr<std::string> bytes = internal::ReadFile(segment.path);
        REQUIRE(bytes.ok());
        (*bytes)[at] = static_cast<char>((*bytes)[at] ^ 0x04);
        REQUIRE(internal::WriteFileAtomically(segment.path, *bytes).ok());
        for (size_t i = 0; i < frame; ++i) records += segment.frames[i].record_count;
      }
      kept[shard] = records;
    }

    auto s = Stream::Open(CrashOptions(dir));
    REQUIRE(s.ok());
    if (flip) {
      const absl::Status recovery = (*s)->recovery_status();
      CHECK(GetErrorCode(recovery) == ErrorCode::kInternalFailure);
      CHECK_THAT(std::string(recovery.message()),
                 Catch::Contains(ShardId(*damaged_shard).ToString()));
    } else {
      CHECK((*s)->recovery_status() == absl::OkStatus());
    }
    // The highest sequence number on disk in the damaged shard before the damage.
    std::optional<SequenceNumber> highest;
    if (damaged_shard) {
      const std::vector<Entry>& before = model.known(*damaged_shard);
      if (!before.empty()) highest = before.back().sequence_number;
      if (run.acked.count(*damaged_shard)) {
        highest = run.acked.at(*damaged_shard).back().sequence_number;
      }
    }
    model.Check(ReadEverything(**s), iteration, run, kept);
    model.PutFromParent(**s, iteration);
    if (flip && highest) {
      // New records number above every record that was on disk, readable or not.
      CHECK(model.known(*damaged_shard).back().sequence_number > *highest);
    }
    s->reset();
    if (flip) {
      // The damage was set aside: a second reopen is clean and has the prefix and the new ones.
      auto again = Stream::Open(CrashOptions(dir));
      REQUIRE(again.ok());
      CHECK((*again)->recovery_status() == absl::OkStatus());
      model.Check(ReadEverything(**again), iteration, ChildRun{});
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("crash test" << (encrypted ? " (encrypted)" : "") << ": " << kKills + 3 << " kills, "
                    << total_acked << " acknowledged puts, " << model.in_flight_found()
                    << " unacknowledged records found, " << model.total() << " records at the end, "
                    << seconds << " s");
  CHECK(total_acked > kKills);
  if (encrypted) {
    auto s = Stream::Open(CrashOptions(dir));
    REQUIRE(s.ok());
    CHECK((*s)->DescribeStreamSummary().encryption_type == EncryptionType::kKms);
  }
  Keyring().clear();
}

TEST_CASE("acknowledged records survive SIGKILL at random moments", "[stress][durable][crash]") {
  CrashLoop(50, /*encrypted=*/false);
}

TEST_CASE("acknowledged records survive SIGKILL at random moments with encryption at rest",
          "[stress][durable][crash][encryption]") {
  CrashLoop(20, /*encrypted=*/true);
}

}  // namespace
}  // namespace rill
