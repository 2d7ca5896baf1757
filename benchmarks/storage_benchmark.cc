// Segment storage cost: appending frames of JSON telemetry (about 150 bytes a record, 256 records a
// frame) with SegmentWriter, against the baseline of zstd alone compressing the same raw payloads
// (ZSTD_compressCCtx, level 1): what the segment adds is encoding, CRCs and the write() into the
// page cache (no fsync). Reading back (ReadFrame: pread, CRC, decompress, decode) has zstd's
// decompression beside it. bytes_per_second counts raw payload bytes in every case, so the figures
// compare directly; `ratio` is raw payload bytes over bytes stored. Rates are per CPU second (user
// and system time of the process, so write() counts): steadier than wall time on a shared machine.
#include <stdlib.h>
#include <unistd.h>
#include <zstd.h>

#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "absl/strings/str_format.h"
#include "log/shard_log.h"
#include "storage/crc32c.h"
#include "storage/segment.h"

namespace {

using rill::internal::FrameBuffer;
using rill::internal::SegmentReader;
using rill::internal::SegmentWriter;
using rill::internal::SegmentWriterOptions;
using rill::internal::StoredRecord;

constexpr size_t kRecordsPerFrame = 256;
constexpr size_t kFrames = 64;
// A writer's file is replaced when it reaches this size, outside the timed region.
constexpr uint64_t kMaxFileBytes = uint64_t{256} << 20;

// kFrames frames of telemetry records, with their raw payloads.
struct Dataset {
  std::vector<std::string> keys;
  std::vector<std::string> data;
  std::vector<std::vector<StoredRecord>> frames;
  std::vector<std::string> raw_payloads;
  size_t raw_bytes = 0;  // all frames' raw payloads
  size_t records = 0;
};

const Dataset& Telemetry() {
  static const Dataset* dataset = [] {
    auto* d = new Dataset;
    std::mt19937_64 rng(42);
    const size_t n = kFrames * kRecordsPerFrame;
    d->keys.reserve(n);
    d->data.reserve(n);
    int64_t ts = 1'700'000'000'000'000;
    for (size_t i = 0; i < n; ++i) {
      const int device = static_cast<int>(rng() % 500);
      ts += static_cast<int64_t>(rng() % 2000);
      d->keys.push_back(absl::StrFormat("sensor-%04d", device));
      d->data.push_back(absl::StrFormat(
          R"({"device":"sensor-%04d","ts":%d,"temp":%.2f,"humidity":%.1f,"pressure":%.2f,)"
          R"("battery":%d,"status":"%s","fw":"2.4.%d"})",
          device, ts, 15.0 + static_cast<double>(rng() % 1500) / 100.0,
          30.0 + static_cast<double>(rng() % 500) / 10.0,
          990.0 + static_cast<double>(rng() % 4000) / 100.0, static_cast<int>(rng() % 101),
          rng() % 20 == 0 ? "low-battery" : "ok", static_cast<int>(rng() % 3)));
    }
    uint64_t counter = 1;
    ts = 1'700'000'000'000'000;
    for (size_t f = 0; f < kFrames; ++f) {
      std::vector<StoredRecord> frame;
      for (size_t r = 0; r < kRecordsPerFrame; ++r) {
        const size_t i = f * kRecordsPerFrame + r;
        ts += static_cast<int64_t>(rng() % 50);
        frame.push_back(StoredRecord{counter++, ts, d->keys[i], d->data[i]});
      }
      std::string raw;
      rill::internal::AppendRawPayload(frame, &raw);
      d->raw_bytes += raw.size();
      d->records += frame.size();
      d->raw_payloads.push_back(std::move(raw));
      d->frames.push_back(std::move(frame));
    }
    return d;
  }();
  return *dataset;
}

// A temporary directory for the benchmark's files, removed at exit of the benchmark.
class BenchDir {
 public:
  BenchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "rill-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~BenchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Counters shared by the append-side benchmarks: raw payload bytes and records per second.
void SetThroughput(benchmark::State& state, size_t frames_done, uint64_t stored_bytes) {
  const Dataset& d = Telemetry();
  const double per_frame_raw = static_cast<double>(d.raw_bytes) / kFrames;
  const double raw = per_frame_raw * static_cast<double>(frames_done);
  state.SetBytesProcessed(static_cast<int64_t>(raw));
  state.SetItemsProcessed(static_cast<int64_t>(frames_done * kRecordsPerFrame));
  state.counters["record_bytes"] =
      static_cast<double>(d.raw_bytes) / static_cast<double>(d.records);
  if (stored_bytes > 0) state.counters["ratio"] = raw / static_cast<double>(stored_bytes);
}

std::unique_ptr<SegmentWriter> NewWriter(const BenchDir& dir, int level, int* generation) {
  const std::string path = dir.File(absl::StrFormat("segment-%d", (*generation)++));
  absl::StatusOr<std::unique_ptr<SegmentWriter>> writer =
      SegmentWriter::Create(path, SegmentWriterOptions{.compression_level = level});
  if (!writer.ok()) std::abort();
  return *std::move(writer);
}

void BM_SegmentAppend(benchmark::State& state) {
  const Dataset& d = Telemetry();
  const int level = static_cast<int>(state.range(0));
  BenchDir dir;
  int generation = 0;
  std::unique_ptr<SegmentWriter> writer = NewWriter(dir, level, &generation);
  // The frames are written again and again; their counters move on by a lap each time, since a
  // segment's counters must increase (about one addition per record, not worth pausing for).
  std::vector<std::vector<StoredRecord>> frames = d.frames;
  size_t frames_done = 0;
  uint64_t stored = 0;  // frame bytes written, headers included
  for (auto _ : state) {
    const size_t f = frames_done % kFrames;
    if (f == 0 && frames_done > 0) {
      for (auto& frame : frames) {
        for (StoredRecord& r : frame) r.counter += kFrames * kRecordsPerFrame;
      }
    }
    const uint64_t before = writer->size_bytes();
    if (absl::Status s = writer->Append(frames[f]); !s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
    stored += writer->size_bytes() - before;
    ++frames_done;
    if (writer->size_bytes() > kMaxFileBytes) {
      state.PauseTiming();
      const std::string path = writer->path();
      if (!writer->Close().ok()) std::abort();
      ::unlink(path.c_str());
      writer = NewWriter(dir, level, &generation);
      state.ResumeTiming();
    }
  }
  SetThroughput(state, frames_done, stored);
}
BENCHMARK(BM_SegmentAppend)->ArgName("level")->Arg(1)->Arg(0)->Arg(3);

// The baseline: zstd level 1 on the same raw payloads, into memory, with one reused context.
void BM_ZstdCompressBaseline(benchmark::State& state) {
  const Dataset& d = Telemetry();
  const int level = static_cast<int>(state.range(0));
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  std::string out(ZSTD_compressBound(d.raw_payloads[0].size() * 2), '\0');
  size_t frames_done = 0;
  uint64_t stored = 0;
  for (auto _ : state) {
    const std::string& raw = d.raw_payloads[frames_done % kFrames];
    const size_t n =
        ZSTD_compressCCtx(cctx.get(), out.data(), out.size(), raw.data(), raw.size(), level);
    if (ZSTD_isError(n)) {
      state.SkipWithError("ZSTD_compressCCtx failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    stored += n;
    ++frames_done;
  }
  SetThroughput(state, frames_done, stored);
}
BENCHMARK(BM_ZstdCompressBaseline)->ArgName("level")->Arg(1)->Arg(3);

// Reads every frame of a segment back: pread, CRC, decompress, decode to StoredRecord views.
void BM_SegmentReadFrame(benchmark::State& state) {
  const Dataset& d = Telemetry();
  const int level = static_cast<int>(state.range(0));
  BenchDir dir;
  int generation = 0;
  std::unique_ptr<SegmentWriter> writer = NewWriter(dir, level, &generation);
  for (const auto& frame : d.frames) {
    if (!writer->Append(frame).ok()) std::abort();
  }
  if (!writer->Close().ok()) std::abort();
  absl::StatusOr<SegmentReader> reader = SegmentReader::Open(writer->path());
  if (!reader.ok() || reader->frames().size() != kFrames) std::abort();
  FrameBuffer scratch;
  std::vector<StoredRecord> out;
  size_t frames_done = 0;
  for (auto _ : state) {
    if (!reader->ReadFrame(reader->frames()[frames_done % kFrames], &scratch, &out).ok()) {
      state.SkipWithError("ReadFrame failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    ++frames_done;
  }
  SetThroughput(state, frames_done, 0);
  state.counters["ratio"] =
      static_cast<double>(d.raw_bytes) /
      static_cast<double>(reader->scan().valid_bytes - rill::internal::kSegmentFileHeaderBytes);
}
BENCHMARK(BM_SegmentReadFrame)->ArgName("level")->Arg(1)->Arg(0);

// The read baseline: zstd decompression alone of the same payloads, from memory.
void BM_ZstdDecompressBaseline(benchmark::State& state) {
  const Dataset& d = Telemetry();
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  std::vector<std::string> compressed;
  for (const std::string& raw : d.raw_payloads) {
    std::string c(ZSTD_compressBound(raw.size()), '\0');
    c.resize(ZSTD_compressCCtx(cctx.get(), c.data(), c.size(), raw.data(), raw.size(), 1));
    compressed.push_back(std::move(c));
  }
  std::string out(d.raw_payloads[0].size() * 2, '\0');
  size_t frames_done = 0;
  for (auto _ : state) {
    const std::string& c = compressed[frames_done % kFrames];
    const size_t n = ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(), c.data(), c.size());
    if (ZSTD_isError(n)) {
      state.SkipWithError("ZSTD_decompressDCtx failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    ++frames_done;
  }
  SetThroughput(state, frames_done, 0);
}
BENCHMARK(BM_ZstdDecompressBaseline);

// CRC-32C over 64 KiB: the dispatched implementation (SSE4.2 where the CPU has it) and the
// portable slicing-by-8 tables.
void BM_Crc32c(benchmark::State& state) {
  const std::string data(64 << 10, 'x');
  const bool portable = state.range(0) != 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(portable
                                 ? rill::internal::Crc32cExtendPortable(0, data.data(), data.size())
                                 : rill::internal::Crc32cExtend(0, data.data(), data.size()));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
  state.SetLabel(portable                                        ? "portable"
                 : rill::internal::Crc32cIsHardwareAccelerated() ? "sse4.2"
                                                                 : "portable (no sse4.2)");
}
BENCHMARK(BM_Crc32c)->ArgName("portable")->Arg(0)->Arg(1);

}  // namespace
