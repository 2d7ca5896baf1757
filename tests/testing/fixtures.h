// Fixtures shared by rill's tests (the rill_testing library, linked into every <area>_tests):
// a temporary directory, stream setup, and the calls that must succeed for a test to go on.
// Each Must... helper fails the test case (REQUIRE) when its call fails, printing the status.
#ifndef RILL_TESTS_TESTING_FIXTURES_H_
#define RILL_TESTS_TESTING_FIXTURES_H_

#include <memory>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/shard_id.h"
#include "rill/stream/record.h"
#include "rill/stream/shard_iterator.h"
#include "rill/stream/stream.h"
#include "rill/stream/stream_options.h"

namespace Catch {
// A failed CHECK shows an ErrorCode by its Kinesis name ("ResourceNotFound").
template <>
struct StringMaker<rill::ErrorCode> {
  static std::string convert(rill::ErrorCode code) {
    return std::string(rill::ErrorCodeName(code));
  }
};
}  // namespace Catch

namespace rill::testing {

// A directory of one test under the system's temporary directory, unique to it (mkdtemp), and
// removed with everything in it on destruction (owner permissions restored first, so a test may
// make it unwritable).
//   TempDir dir;                                 // <tmp>/rill-test-XXXXXX, created empty
//   TempDir dir("reopen", TempDir::kAbsent);     // <tmp>/rill-reopen-XXXXXX/reopen, not created:
//                                                // for what creates its directory (Stream::Open)
class TempDir {
 public:
  enum Start {
    kEmpty,   // path() exists and is empty
    kAbsent,  // path() does not exist yet (its parent, removed with it, does)
  };
  explicit TempDir(std::string_view tag = "test", Start start = kEmpty);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name.
  std::string File(std::string_view name) const;
  // path()/shard-<index>: the directory of shard `index` of a durable stream in path().
  std::string Shard(int index) const;

 private:
  std::string root_;  // what the destructor removes: path() or its parent
  std::string path_;
};

// The options of an in-memory stream: `name`, `shard_count` shards, `clock`, and every other
// option at its default.
StreamOptions MemoryStreamOptions(std::shared_ptr<Clock> clock, int shard_count = 1,
                                  std::string name = "test-stream");

// The options of a durable stream in `directory` (StreamOptions::storage set, with `fsync` and
// every other storage option at its default).
StreamOptions DurableStreamOptions(std::string directory, std::shared_ptr<Clock> clock,
                                   int shard_count, FsyncPolicy fsync, std::string name);

// Stream::Create(options), which must succeed.
std::unique_ptr<Stream> MustCreate(StreamOptions options);

// MustCreate(MemoryStreamOptions(clock, shard_count, name)).
std::unique_ptr<Stream> MakeStream(std::shared_ptr<Clock> clock, int shard_count = 1,
                                   std::string name = "test-stream");

// stream.PutRecord(key, data, options), which must succeed.
PutRecordResult MustPut(Stream& stream, std::string_view key, std::string_view data,
                        const PutOptions& options = {});

// stream.GetShardIterator(shard, position), which must succeed.
ShardIterator MustIterator(const Stream& stream, ShardId shard, const StartingPosition& position);

// stream.GetRecords(it, limit), which must succeed.
GetRecordsResult MustRead(const Stream& stream, const ShardIterator& it,
                          int limit = kMaxGetRecordsLimit);

}  // namespace rill::testing

#endif  // RILL_TESTS_TESTING_FIXTURES_H_
