// rill::DeliveryStream against the work it cannot avoid, measured in the same run: the
// compressor alone on the bytes of one object (object store), and a plain libpq COPY of the same
// rows (PostgreSQL). Every rill case is DirectPut on a SimulatedClock that never moves (so only
// the buffer size seals buffers), driven as an application would: PutRecordBatch of 500 records,
// Poll() after each batch, Flush() at the end. In the order they run (baselines first, so that
// the rill cases can report ratios):
//
//   BM_BaselineCompress/ZSTD     deliver_internal::Compress(kZstd) of exactly the bytes one
//   BM_BaselineCompress/GZIP     delivered object holds: the first records of the event set that
//                                reach 5 MiB (the default buffer), 25,720 JSON game events of
//                                150-250 bytes (varied players, sessions, positions, event
//                                types; one per line; zstd makes them 5.4x smaller, gzip 5.9x).
//                                bytes_per_second of record data
//   BM_RillObjectStore/ZSTD      the same records into a delivery stream to an
//   BM_RillObjectStore/GZIP      ObjectStoreDestination in a temporary directory (5 MiB buffer,
//                                default interval) with that compression: each iteration puts one
//                                object's records, and the put that fills the buffer makes the
//                                Poll deliver it (compress, staging file, fsync, rename, fsync of
//                                the directory). bytes_per_second of record data; vs_compressor:
//                                over BM_BaselineCompress's of the same format. The object is
//                                checked (exactly one, of the baseline's compressed size) and
//                                removed between iterations, untimed
//   BM_RillObjectStore/UNCOMPRESSED  the same without compression: what the core, the internal
//                                stream and publishing cost on their own (no baseline)
//   BM_RillObjectStoreStarted/ZSTD|GZIP  the same records as the tutorial runs them: the
//                                delivery stream's own thread (Start()) reads and delivers while
//                                the benchmark's thread puts, kept at most two objects ahead of
//                                what is delivered (PutAllStarted). Each iteration puts a number
//                                of objects' worth (the argument) and Flush()es; time is the
//                                whole iteration. waited_ms: the putter's time spent waiting for
//                                the delivery thread, warm-up included. vs_compressor as above
//   BM_BaselineCopy              one libpq connection; per iteration BEGIN; COPY events (id,
//                                player, game, score, ts) FROM STDIN with one batch of rows in
//                                text format, built once up front and sent in 1 MiB pieces;
//                                COMMIT. A batch is as many rows as one 5 MiB buffer of their
//                                JSON form holds (~100 bytes each: 51,207 rows). items/s = rows/s
//   BM_RillPostgres              a delivery stream to a PostgresDestination on the same table,
//                                columns + json_paths over the JSON form of the same rows (so rill
//                                extracts what the baseline gets ready-made), 5 MiB buffer: one
//                                batch per iteration, COPYed with rill's progress upsert in one
//                                transaction. rows/s; vs_copy: over BM_BaselineCopy's
//   BM_RillPostgresStarted       the same with the delivery thread running, as
//                                BM_RillObjectStoreStarted (the argument: batches per iteration)
//
// The rill cases also say where their time goes, in ms per iteration: put_ms (PutRecordBatch:
// the records go into the delivery stream's internal stream), read_ms (the Polls that read them
// back and buffer them), deliver_ms (the Poll that delivers the full buffer, and Flush).
//
// Time is measured around each iteration's work only (UseManualTime): checking and removing
// objects, and TRUNCATE (the table is emptied before every iteration of both PostgreSQL cases),
// are not counted. Each baseline first does one iteration untimed, each rill case twelve.
//
// Memory: the internal stream keeps what it was given until its memory budget
// (max_buffered_bytes + 32 MiB) makes it retire the oldest records, whose chunks are then reused
// by the next puts. An application that has run for a while is in that state; so is each rill
// case here: max_buffered_bytes is 16 MiB (budget 48 MiB) and kRillWarmUpBuffers (12 buffers,
// 60 MiB) go through untimed first. Before, every put wrote into fresh memory, and the page
// faults were most of put_ms on the shared VMs rill is measured on.
//
// PostgreSQL: a throwaway server (tests/deliver/postgres_fixture.h: fsync off), or
// RILL_TEST_POSTGRES's; without PostgreSQL the two cases are skipped with the fixture's error.
// Objects are written under $TMPDIR (else /tmp): put it on the disk you care about, since the
// two fsyncs of each object are part of the cost (TMPDIR=/dev/shm leaves them out).
//
// The goals: vs_compressor >= 0.8 for ZSTD and GZIP, vs_copy >= 0.8. Compare ratios, not
// absolute numbers: the machine is shared (the PostgreSQL server runs on it too), and absolute
// figures move by tens of percent from run to run.
//
// The command (under a minute, a few hundred MB of memory; with --benchmark_repetitions=3
// --benchmark_report_aggregates_only=true about three times that, and steadier ratios):
//   build/benchmarks/deliver_benchmark
#include <libpq-fe.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "deliver/codec.h"
#include "deliver/postgres_fixture.h"
#include "rill/base/clock.h"
#include "rill/deliver/delivery_stream.h"
#include "rill/deliver/destinations.h"

namespace {

using rill::CompressionFormat;

constexpr size_t kBufferBytes = size_t{5} << 20;  // BufferingHints' default size
constexpr int kBatch = rill::kMaxPutRecordBatchEntries;
constexpr size_t kCopyPieceBytes = size_t{1} << 20;
// Iterations, for a run of about 20 s on a 2-core machine; the two cases of a pair do the same
// work.
constexpr int kZstdIterations = 60;
constexpr int kGzipIterations = 12;
constexpr int kCopyIterations = 30;
// Buffers each rill case delivers untimed first: its connection, directories and first buffers.
constexpr int kRillWarmUpBuffers = 12;
// The rill cases' buffer bound: the internal stream's memory budget is this plus 32 MiB.
constexpr size_t kMaxBufferedBytes = size_t{16} << 20;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "deliver_benchmark: %s\n", what.c_str());
  std::abort();
}

// ---- Records ----

// A JSON game event of 150-250 bytes, ending in a newline (one object line, as JSON Lines).
std::string GameEvent(std::mt19937_64& rng, int64_t n) {
  static constexpr const char* kGames[] = {"chess", "go", "poker", "racer", "tetra", "quest"};
  static constexpr const char* kTypes[] = {"move", "score", "pickup", "chat", "login", "death"};
  static constexpr const char* kPlatforms[] = {"android", "ios", "windows", "linux", "switch"};
  static constexpr const char* kRegions[] = {"eu-west", "us-east", "ap-south", "sa-east"};
  static constexpr const char* kItems[] = {"sword", "shield", "potion", "key", "map", "gem"};
  static constexpr const char* kWords[] = {"gg", "nice", "move", "again", "wait", "lol", "ready"};
  auto pick = [&rng](const auto& names) {
    return names[rng() % (sizeof(names) / sizeof(names[0]))];
  };
  const int type = static_cast<int>(rng() % 6);
  const int64_t ms = 1727302942000 + n * 7 + static_cast<int64_t>(rng() % 7);
  std::string e = absl::StrFormat(
      R"({"event_id":"e-%010d","ts":%d,"game":"%s","type":"%s","player":"player-%05d",)"
      R"("session":"%012x","level":%d,"score":%d,"platform":"%s","region":"%s")",
      n, ms, pick(kGames), kTypes[type], rng() % 50000, rng() & 0xffffffffffffULL, rng() % 60,
      rng() % 100000, pick(kPlatforms), pick(kRegions));
  switch (type) {
    case 0:
      absl::StrAppendFormat(&e, R"(,"position":{"x":%.2f,"y":%.2f})",
                            static_cast<double>(rng() % 200000) / 100 - 1000,
                            static_cast<double>(rng() % 200000) / 100 - 1000);
      break;
    case 2:
      absl::StrAppendFormat(&e, R"(,"item":"%s-%d","count":%d)", pick(kItems), rng() % 100,
                            1 + rng() % 5);
      break;
    case 3: {
      std::string text;
      for (int w = 0, words = 1 + static_cast<int>(rng() % 6); w < words; ++w) {
        absl::StrAppend(&text, w == 0 ? "" : " ", pick(kWords));
      }
      absl::StrAppendFormat(&e, R"(,"text":"%s")", text);
      break;
    }
    default:
      break;
  }
  e += "}\n";
  return e;
}

// A row, as JSON of ~100 bytes (what the delivery stream is given) and as COPY text (what the
// baseline sends).
struct Row {
  std::string json;
  std::string text;
};

Row EventRow(std::mt19937_64& rng, int64_t n) {
  static constexpr const char* kGames[] = {"chess", "go", "poker", "racer", "tetra", "quest"};
  const std::string player = absl::StrFormat("player-%05d", rng() % 50000);
  const char* game = kGames[rng() % 6];
  const int64_t score = static_cast<int64_t>(rng() % 1000000);
  const std::string ts = absl::StrFormat("2024-09-25T%02d:%02d:%02d.%03dZ", (n / 3600000) % 24,
                                         (n / 60000) % 60, (n / 1000) % 60, n % 1000);
  const int64_t id = 1000000000 + n;
  return {absl::StrFormat(R"({"id":%d,"player":"%s","game":"%s","score":%d,"ts":"%s"})", id, player,
                          game, score, ts),
          absl::StrFormat("%d\t%s\t%s\t%d\t%s\n", id, player, game, score, ts)};
}

// The first records whose sizes reach `bytes`: what one buffer of that size holds when it is
// sealed (the record that reaches the size is its last).
template <typename Size>
size_t RecordsToFill(size_t count, Size size_of, size_t bytes) {
  size_t total = 0;
  for (size_t i = 0; i < count; ++i) {
    total += size_of(i);
    if (total >= bytes) return i + 1;
  }
  Die("too few records to fill one buffer");
}

// ---- Rates, for the ratios ----

// The rates of the baselines' runs so far in this process (their mean, by name), for the rill
// cases' vs_* counters: the baselines are registered, and so run, first.
std::map<std::string, std::pair<double, int>> g_rates;

void RecordRate(const std::string& name, double rate) {
  auto& [sum, runs] = g_rates[name];
  sum += rate;
  ++runs;
}

void SetRatio(benchmark::State& state, const char* counter, double rate,
              const std::string& baseline) {
  if (auto it = g_rates.find(baseline); it != g_rates.end() && it->second.first > 0) {
    state.counters[counter] = rate / (it->second.first / it->second.second);
  }
}

// Sums the time of the measured parts of the iterations and reports each one (UseManualTime).
class Stopwatch {
 public:
  void Start() { start_ = std::chrono::steady_clock::now(); }
  void Stop(benchmark::State& state) {
    const std::chrono::duration<double> d = std::chrono::steady_clock::now() - start_;
    state.SetIterationTime(d.count());
    total_ += d.count();
  }
  double Rate(double items) const { return total_ > 0 ? items / total_ : 0; }

 private:
  std::chrono::steady_clock::time_point start_;
  double total_ = 0;
};

// A directory under $TMPDIR (else /tmp), removed with what it holds.
class TempDirectory {
 public:
  explicit TempDirectory(const std::string& tag) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/rill-bench-", tag, "-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) Die("mkdtemp " + pattern + " failed");
    path_ = pattern;
  }
  ~TempDirectory() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDirectory(const TempDirectory&) = delete;
  TempDirectory& operator=(const TempDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Delivery streams of the cases that ran, kept until the process ends (each holds at most its
// memory budget), so that no case writes into memory another case just freed.
std::vector<std::unique_ptr<rill::DeliveryStream>>& Retired() {
  static auto* retired = new std::vector<std::unique_ptr<rill::DeliveryStream>>;
  return *retired;
}

std::unique_ptr<rill::DeliveryStream> MustCreate(rill::DeliveryStreamOptions options) {
  absl::StatusOr<std::unique_ptr<rill::DeliveryStream>> d =
      rill::DeliveryStream::Create(std::move(options));
  if (!d.ok()) Die("DeliveryStream::Create: " + d.status().ToString());
  return *std::move(d);
}

// Where a rill case's time goes, in seconds: PutRecordBatch calls; Poll calls that only read
// and buffer; the Poll that delivers (the last one: the last record fills the buffer) and Flush.
struct Phases {
  double put = 0;
  double read = 0;
  double deliver = 0;

  // As counters: milliseconds per iteration.
  void Report(benchmark::State& state) const {
    const double n = static_cast<double>(state.iterations());
    state.counters["put_ms"] = put * 1e3 / n;
    state.counters["read_ms"] = read * 1e3 / n;
    state.counters["deliver_ms"] = deliver * 1e3 / n;
  }
};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Puts `records` in batches of 500, polling after each, then flushes: the application's loop.
// Adds the time of each step to *phases, if not null.
void PutAll(rill::DeliveryStream& firehose, absl::Span<const std::string_view> records,
            Phases* phases = nullptr) {
  Phases local;
  if (phases == nullptr) phases = &local;
  for (size_t i = 0; i < records.size(); i += kBatch) {
    const size_t n = std::min<size_t>(kBatch, records.size() - i);
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<rill::PutRecordBatchResult> put = firehose.PutRecordBatch(records.subspan(i, n));
    phases->put += SecondsSince(start);
    if (!put.ok()) Die("PutRecordBatch: " + put.status().ToString());
    if (put->failed_put_count != 0) {
      Die(absl::StrCat("PutRecordBatch: ", put->failed_put_count, " records failed, e.g. ",
                       put->request_responses[0].error_message));
    }
    start = std::chrono::steady_clock::now();
    if (absl::Status polled = firehose.Poll(); !polled.ok()) Die("Poll: " + polled.ToString());
    (i + n == records.size() ? phases->deliver : phases->read) += SecondsSince(start);
  }
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status flushed = firehose.Flush(); !flushed.ok()) Die("Flush: " + flushed.ToString());
  phases->deliver += SecondsSince(start);
}

// ---- Object store ----

// Started (pipelined) cases: the delivery stream's own thread (Start()) reads and delivers while
// this thread puts, as the tutorial runs it. `copies` times `records`, in order. Before each batch
// the putter waits, sleeping 100 us at a time, until at most kAheadBuffers copies are put but not
// delivered: that keeps the unread bytes under max_buffered_bytes, so PutRecordBatch never says
// "Slow down." and every record goes in once and in order (the objects are then exactly the
// baseline's). Ends with Flush(), which waits for the thread to deliver the rest.
constexpr int64_t kAheadBuffers = 2;
double g_waited = 0;

void PutAllStarted(rill::DeliveryStream& firehose, absl::Span<const std::string_view> records,
                   int copies) {
  const auto per_copy = static_cast<int64_t>(records.size());
  const int64_t delivered_before = firehose.metrics().delivery_records;
  int64_t put = 0;
  for (int c = 0; c < copies; ++c) {
    for (size_t i = 0; i < records.size(); i += kBatch) {
      while (put - (firehose.metrics().delivery_records - delivered_before) >
             kAheadBuffers * per_copy) {
        const auto slept = std::chrono::steady_clock::now();
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        g_waited += SecondsSince(slept);
      }
      const size_t n = std::min<size_t>(kBatch, records.size() - i);
      absl::StatusOr<rill::PutRecordBatchResult> result =
          firehose.PutRecordBatch(records.subspan(i, n));
      if (!result.ok()) Die("PutRecordBatch: " + result.status().ToString());
      if (result->failed_put_count != 0) {
        Die(absl::StrCat("PutRecordBatch: ", result->failed_put_count, " records failed, e.g. ",
                         result->request_responses[0].error_message));
      }
      put += static_cast<int64_t>(n);
    }
  }
  if (absl::Status flushed = firehose.Flush(); !flushed.ok()) Die("Flush: " + flushed.ToString());
}

struct ObjectFixture {
  std::vector<std::string> records;     // one object's
  std::vector<std::string_view> views;  // of records
  std::string object;                   // records back to back: the object's bytes
  std::map<CompressionFormat, size_t> compressed_size;
};

const ObjectFixture& Objects() {
  static const ObjectFixture* fixture = [] {
    auto* f = new ObjectFixture;
    std::mt19937_64 rng(20240925);
    std::vector<std::string> events;
    size_t total = 0;
    for (int64_t n = 0; total < kBufferBytes; ++n) {
      events.push_back(GameEvent(rng, n));
      total += events.back().size();
    }
    const size_t count = RecordsToFill(
        events.size(), [&](size_t i) { return events[i].size(); }, kBufferBytes);
    events.resize(count);
    f->records = std::move(events);
    for (const std::string& r : f->records) {
      f->object += r;
      f->views.push_back(r);
    }
    for (CompressionFormat format : {CompressionFormat::kZstd, CompressionFormat::kGzip}) {
      std::string out;
      if (absl::Status s = rill::deliver_internal::Compress(format, f->object, &out); !s.ok()) {
        Die("Compress: " + s.ToString());
      }
      f->compressed_size[format] = out.size();
    }
    f->compressed_size[CompressionFormat::kUncompressed] = f->object.size();
    return f;
  }();
  return *fixture;
}

std::string FormatName(CompressionFormat format) {
  return std::string(rill::CompressionFormatName(format));
}

void BM_BaselineCompress(benchmark::State& state, CompressionFormat format) {
  const ObjectFixture& f = Objects();
  std::string out;
  auto compress = [&] {
    out.clear();
    if (absl::Status s = rill::deliver_internal::Compress(format, f.object, &out); !s.ok()) {
      Die("Compress: " + s.ToString());
    }
    benchmark::DoNotOptimize(out.data());
  };
  compress();  // untimed: the output's capacity
  Stopwatch watch;
  for (auto _ : state) {
    watch.Start();
    compress();
    watch.Stop(state);
  }
  const double bytes =
      static_cast<double>(f.object.size()) * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["records"] = static_cast<double>(f.records.size());
  state.counters["ratio"] = static_cast<double>(f.object.size()) / static_cast<double>(out.size());
  RecordRate("compress/" + FormatName(format), watch.Rate(bytes));
}

BENCHMARK_CAPTURE(BM_BaselineCompress, ZSTD, CompressionFormat::kZstd)
    ->UseManualTime()
    ->Iterations(kZstdIterations);
BENCHMARK_CAPTURE(BM_BaselineCompress, GZIP, CompressionFormat::kGzip)
    ->UseManualTime()
    ->Iterations(kGzipIterations);

// Removes every object under `root` (not the key directories, which the destination remembers
// as made, nor its staging directory); returns how many there were and checks their size.
int RemoveObjects(const std::string& root, size_t expected_size) {
  int objects = 0;
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory() && it->path().filename() == ".rill-staging") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) files.push_back(it->path());
  }
  if (ec) Die("listing " + root + ": " + ec.message());
  for (const std::filesystem::path& file : files) {
    const uintmax_t size = std::filesystem::file_size(file);
    if (size != expected_size) {
      Die(absl::StrCat(file.string(), " holds ", size, " bytes, not the ", expected_size,
                       " of the baseline's compressed object"));
    }
    std::filesystem::remove(file);
    ++objects;
  }
  return objects;
}

// A DirectPut delivery stream to an ObjectStoreDestination in `directory`, on a SimulatedClock
// that never moves (only the buffer size seals buffers).
std::unique_ptr<rill::DeliveryStream> ObjectStoreFirehose(const std::string& name,
                                                          const std::string& directory,
                                                          CompressionFormat format) {
  rill::DeliveryStreamOptions options;
  options.name = name;
  options.clock = std::make_shared<rill::SimulatedClock>();
  options.max_buffered_bytes = kMaxBufferedBytes;
  rill::ObjectStoreDestination destination;
  destination.directory = directory;
  destination.compression = format;
  options.destination = destination;
  return MustCreate(std::move(options));
}

void BM_RillObjectStore(benchmark::State& state, CompressionFormat format) {
  const ObjectFixture& f = Objects();
  TempDirectory dir("objects");
  std::unique_ptr<rill::DeliveryStream> firehose =
      ObjectStoreFirehose("bench-objects", dir.path(), format);

  const size_t object_size = f.compressed_size.at(format);
  auto one_object = [&] {
    if (RemoveObjects(dir.path(), object_size) != 1) Die("an iteration did not make one object");
  };
  for (int i = 0; i < kRillWarmUpBuffers; ++i) {
    PutAll(*firehose, f.views);
    one_object();
  }
  Stopwatch watch;
  Phases phases;
  for (auto _ : state) {
    watch.Start();
    PutAll(*firehose, f.views, &phases);
    watch.Stop(state);
    one_object();
  }
  phases.Report(state);
  const rill::DeliveryMetrics m = firehose->metrics();
  const int64_t objects = state.iterations() + kRillWarmUpBuffers;
  if (m.delivery_success != objects ||
      m.delivery_records != objects * static_cast<int64_t>(f.records.size())) {
    Die(absl::StrCat("delivered ", m.delivery_records, " records in ", m.delivery_success,
                     " objects; expected ", objects, " objects"));
  }
  const double bytes =
      static_cast<double>(f.object.size()) * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["records"] = static_cast<double>(f.records.size());
  if (format != CompressionFormat::kUncompressed) {
    SetRatio(state, "vs_compressor", watch.Rate(bytes), "compress/" + FormatName(format));
  }
  Retired().push_back(std::move(firehose));
}

BENCHMARK_CAPTURE(BM_RillObjectStore, ZSTD, CompressionFormat::kZstd)
    ->UseManualTime()
    ->Iterations(kZstdIterations);
BENCHMARK_CAPTURE(BM_RillObjectStore, GZIP, CompressionFormat::kGzip)
    ->UseManualTime()
    ->Iterations(kGzipIterations);
BENCHMARK_CAPTURE(BM_RillObjectStore, UNCOMPRESSED, CompressionFormat::kUncompressed)
    ->UseManualTime()
    ->Iterations(kZstdIterations);

void BM_RillObjectStoreStarted(benchmark::State& state, CompressionFormat format) {
  const ObjectFixture& f = Objects();
  TempDirectory dir("objects-started");
  std::unique_ptr<rill::DeliveryStream> firehose =
      ObjectStoreFirehose("bench-objects-started", dir.path(), format);
  if (absl::Status started = firehose->Start(); !started.ok()) Die(started.ToString());
  const size_t object_size = f.compressed_size.at(format);
  const int copies = static_cast<int>(state.range(0));
  PutAllStarted(*firehose, f.views, kRillWarmUpBuffers);
  RemoveObjects(dir.path(), object_size);
  Stopwatch watch;
  for (auto _ : state) {
    watch.Start();
    PutAllStarted(*firehose, f.views, copies);
    watch.Stop(state);
    const int objects = RemoveObjects(dir.path(), object_size);
    if (objects != copies) Die(absl::StrCat(objects, " objects, expected ", copies));
  }
  const double bytes =
      static_cast<double>(f.object.size()) * copies * static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["records"] = static_cast<double>(f.records.size()) * copies;
  state.counters["waited_ms"] = g_waited * 1e3;
  SetRatio(state, "vs_compressor", watch.Rate(bytes), "compress/" + FormatName(format));
  if (absl::Status closed = firehose->Close(); !closed.ok()) Die(closed.ToString());
  Retired().push_back(std::move(firehose));
}

BENCHMARK_CAPTURE(BM_RillObjectStoreStarted, ZSTD, CompressionFormat::kZstd)
    ->Arg(kZstdIterations / 4)
    ->UseManualTime()
    ->Iterations(4);
BENCHMARK_CAPTURE(BM_RillObjectStoreStarted, GZIP, CompressionFormat::kGzip)
    ->Arg(kGzipIterations / 3)
    ->UseManualTime()
    ->Iterations(3);

// ---- PostgreSQL ----

constexpr const char* kTable = "events";
constexpr const char* kColumns = "id, player, game, score, ts";

struct PostgresFixture {
  std::string error;                     // why the cases are skipped; empty when the server is up
  std::string conninfo;                  // of the benchmark's database
  std::vector<Row> rows;                 // one batch
  std::vector<std::string_view> json;    // of rows
  std::vector<std::string> copy_pieces;  // the rows' text, in pieces of ~1 MiB
  int64_t score_sum = 0;
};

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using Connection = std::unique_ptr<PGconn, ConnDeleter>;

Connection MustConnect(const std::string& conninfo) {
  Connection conn(PQconnectdb(conninfo.c_str()));
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    Die("cannot connect to " + conninfo + ": " + PQerrorMessage(conn.get()));
  }
  return conn;
}

// Runs `sql`; dies unless its result is `expected`. Returns the first value, if any.
std::string MustExec(PGconn* conn, const std::string& sql,
                     ExecStatusType expected = PGRES_COMMAND_OK) {
  PGresult* r = PQexec(conn, sql.c_str());
  const bool ok = PQresultStatus(r) == expected;
  std::string value = ok && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
  const std::string message = PQresultErrorMessage(r);
  PQclear(r);
  if (!ok) Die("`" + sql + "` failed: " + message);
  return value;
}

const PostgresFixture& Postgres() {
  static const PostgresFixture* fixture = [] {
    auto* f = new PostgresFixture;
    absl::StatusOr<rill::testing::TemporaryPostgres*> pg =
        rill::testing::TemporaryPostgres::Shared();
    if (!pg.ok()) {
      f->error = "no PostgreSQL: " + pg.status().ToString();
      return f;
    }
    absl::StatusOr<std::string> db = (*pg)->CreateDatabase("rill_deliver_benchmark");
    if (!db.ok()) {
      f->error = "no database: " + db.status().ToString();
      return f;
    }
    f->conninfo = *db;
    Connection conn = MustConnect(f->conninfo);
    MustExec(conn.get(), absl::StrCat("CREATE TABLE ", kTable,
                                      " (id bigint, player text, game text, score integer, "
                                      "ts timestamptz)"));
    std::mt19937_64 rng(17);
    std::vector<Row> rows;
    size_t total = 0;
    for (int64_t n = 0; total < kBufferBytes; ++n) {
      rows.push_back(EventRow(rng, n));
      total += rows.back().json.size();
    }
    rows.resize(RecordsToFill(
        rows.size(), [&](size_t i) { return rows[i].json.size(); }, kBufferBytes));
    f->rows = std::move(rows);
    std::string piece;
    for (const Row& r : f->rows) {
      f->json.push_back(r.json);
      piece += r.text;
      if (piece.size() >= kCopyPieceBytes) {
        f->copy_pieces.push_back(std::move(piece));
        piece.clear();
      }
    }
    if (!piece.empty()) f->copy_pieces.push_back(std::move(piece));
    for (const Row& r : f->rows) {
      const size_t score_at = r.text.find('\t', r.text.find('\t', r.text.find('\t') + 1) + 1);
      f->score_sum += std::stoll(r.text.substr(score_at + 1));
    }
    return f;
  }();
  return *fixture;
}

// Checks that the table holds exactly `copies` batches (the last iteration's).
void CheckTable(PGconn* conn, const PostgresFixture& f, int copies = 1) {
  const std::string got = MustExec(
      conn, absl::StrCat("SELECT count(*) || ' ' || sum(score) FROM ", kTable), PGRES_TUPLES_OK);
  const std::string expected =
      absl::StrCat(f.rows.size() * static_cast<size_t>(copies), " ", f.score_sum * copies);
  if (got != expected) Die("the table holds (rows, score sum) " + got + ", expected " + expected);
}

void BM_BaselineCopy(benchmark::State& state) {
  const PostgresFixture& f = Postgres();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  Connection conn = MustConnect(f.conninfo);
  Connection admin = MustConnect(f.conninfo);
  const std::string copy = absl::StrCat("COPY ", kTable, " (", kColumns, ") FROM STDIN");
  auto batch = [&] {
    MustExec(conn.get(), "BEGIN");
    MustExec(conn.get(), copy, PGRES_COPY_IN);
    for (const std::string& piece : f.copy_pieces) {
      if (PQputCopyData(conn.get(), piece.data(), static_cast<int>(piece.size())) != 1) {
        Die(std::string("PQputCopyData: ") + PQerrorMessage(conn.get()));
      }
    }
    if (PQputCopyEnd(conn.get(), nullptr) != 1) {
      Die(std::string("PQputCopyEnd: ") + PQerrorMessage(conn.get()));
    }
    while (PGresult* r = PQgetResult(conn.get())) {
      const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      const std::string message = PQresultErrorMessage(r);
      PQclear(r);
      if (!ok) Die("COPY: " + message);
    }
    MustExec(conn.get(), "COMMIT");
  };
  const std::string truncate = absl::StrCat("TRUNCATE ", kTable);
  MustExec(admin.get(), truncate);
  batch();  // untimed: the connection's first COPY
  Stopwatch watch;
  for (auto _ : state) {
    MustExec(admin.get(), truncate);
    watch.Start();
    batch();
    watch.Stop(state);
  }
  CheckTable(admin.get(), f);
  const double rows = static_cast<double>(f.rows.size()) * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<int64_t>(rows));
  state.counters["rows_per_batch"] = static_cast<double>(f.rows.size());
  RecordRate("copy", watch.Rate(rows));
}
BENCHMARK(BM_BaselineCopy)->UseManualTime()->Iterations(kCopyIterations);

// A DirectPut delivery stream to a PostgresDestination on the benchmark's table (columns +
// json_paths over the rows' JSON form), on a SimulatedClock that never moves.
std::unique_ptr<rill::DeliveryStream> PostgresFirehose(const std::string& name,
                                                       const PostgresFixture& f,
                                                       const std::string& error_directory) {
  rill::DeliveryStreamOptions options;
  options.name = name;
  options.clock = std::make_shared<rill::SimulatedClock>();
  options.max_buffered_bytes = kMaxBufferedBytes;
  rill::PostgresDestination destination;
  destination.conninfo = f.conninfo;
  destination.table = kTable;
  destination.columns = {"id", "player", "game", "score", "ts"};
  destination.json_paths = {".id", ".player", ".game", ".score", ".ts"};
  options.destination = destination;
  options.error_output = rill::ErrorOutput{.directory = error_directory,
                                           .prefix = "!{firehose:error-output-type}/",
                                           .custom_time_zone = "UTC"};
  return MustCreate(std::move(options));
}

// Dies unless the delivery stream delivered exactly `batches` batches of the fixture's rows, and
// nothing to the error output.
void CheckBatches(const rill::DeliveryStream& firehose, int64_t batches, const PostgresFixture& f) {
  const rill::DeliveryMetrics m = firehose.metrics();
  if (m.delivery_success != batches ||
      m.delivery_records != batches * static_cast<int64_t>(f.rows.size()) ||
      m.error_output_records != 0) {
    Die(absl::StrCat("delivered ", m.delivery_records, " rows in ", m.delivery_success,
                     " batches (", m.error_output_records, " to the error output); expected ",
                     batches, " batches"));
  }
}

void BM_RillPostgres(benchmark::State& state) {
  const PostgresFixture& f = Postgres();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  TempDirectory errors("pg-errors");
  // A name of its own per run: a new internal stream numbers its records from the start again,
  // and under an earlier run's name PostgreSQL's progress row would make rill skip them.
  static int runs = 0;
  std::unique_ptr<rill::DeliveryStream> firehose =
      PostgresFirehose(absl::StrCat("bench-postgres-", ++runs), f, errors.path());
  Connection admin = MustConnect(f.conninfo);
  const std::string truncate = absl::StrCat("TRUNCATE ", kTable);
  MustExec(admin.get(), truncate);
  for (int i = 0; i < kRillWarmUpBuffers; ++i) PutAll(*firehose, f.json);
  Stopwatch watch;
  Phases phases;
  for (auto _ : state) {
    MustExec(admin.get(), truncate);
    watch.Start();
    PutAll(*firehose, f.json, &phases);
    watch.Stop(state);
  }
  phases.Report(state);
  CheckTable(admin.get(), f);
  CheckBatches(*firehose, state.iterations() + kRillWarmUpBuffers, f);
  const double rows = static_cast<double>(f.rows.size()) * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<int64_t>(rows));
  state.counters["rows_per_batch"] = static_cast<double>(f.rows.size());
  SetRatio(state, "vs_copy", watch.Rate(rows), "copy");
  Retired().push_back(std::move(firehose));
}
BENCHMARK(BM_RillPostgres)->UseManualTime()->Iterations(kCopyIterations);

void BM_RillPostgresStarted(benchmark::State& state) {
  const PostgresFixture& f = Postgres();
  if (!f.error.empty()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  TempDirectory errors("pg-errors-started");
  static int runs = 0;
  std::unique_ptr<rill::DeliveryStream> firehose =
      PostgresFirehose(absl::StrCat("bench-postgres-started-", ++runs), f, errors.path());
  if (absl::Status started = firehose->Start(); !started.ok()) Die(started.ToString());
  Connection admin = MustConnect(f.conninfo);
  const std::string truncate = absl::StrCat("TRUNCATE ", kTable);
  const int copies = static_cast<int>(state.range(0));
  MustExec(admin.get(), truncate);
  PutAllStarted(*firehose, f.json, kRillWarmUpBuffers);
  Stopwatch watch;
  for (auto _ : state) {
    MustExec(admin.get(), truncate);
    watch.Start();
    PutAllStarted(*firehose, f.json, copies);
    watch.Stop(state);
  }
  CheckTable(admin.get(), f, copies);
  CheckBatches(*firehose, state.iterations() * copies + kRillWarmUpBuffers, f);
  const double rows =
      static_cast<double>(f.rows.size()) * copies * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<int64_t>(rows));
  state.counters["rows_per_batch"] = static_cast<double>(f.rows.size());
  SetRatio(state, "vs_copy", watch.Rate(rows), "copy");
  if (absl::Status closed = firehose->Close(); !closed.ok()) Die(closed.ToString());
  Retired().push_back(std::move(firehose));
}
BENCHMARK(BM_RillPostgresStarted)->Arg(kCopyIterations / 5)->UseManualTime()->Iterations(5);

}  // namespace
