// Fuzzes the segment reader: ScanSegment over arbitrary bytes, then DecodeFrame over every frame
// the scan reports, checking the scan's invariants. Each input is tried three ways: as it is; with
// its checksums recomputed (so that mutations reach the frame fields and record decoding instead
// of stopping at a checksum); and as one frame whose sizes and checksums are fixed up, which fuzzes
// DecodeFrame's header checks, zstd and record parsing directly.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "storage/crc32c.h"
#include "storage/segment.h"
#include "storage/segment_testing.h"

namespace rill::internal {
namespace {

FrameBuffer& Scratch() {
  static FrameBuffer* scratch = new FrameBuffer();
  return *scratch;
}

std::vector<StoredRecord>& Records() {
  static auto* records = new std::vector<StoredRecord>();
  return *records;
}

void CheckDecoded(const FrameHeader& h, const std::vector<StoredRecord>& out) {
  FUZZ_CHECK(out.size() == h.record_count);
  FUZZ_CHECK(out.front().counter == h.first_counter);
  FUZZ_CHECK(out.back().counter == h.last_counter);
  FUZZ_CHECK(out.front().arrival_us == h.first_arrival_us);
  FUZZ_CHECK(out.back().arrival_us == h.last_arrival_us);
  size_t bytes = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (i > 0) FUZZ_CHECK(out[i].counter > out[i - 1].counter);
    FUZZ_CHECK(out[i].partition_key.size() <= kMaxSegmentPartitionKeyBytes);
    bytes += out[i].partition_key.size() + out[i].data.size();
  }
  FUZZ_CHECK(bytes <= h.raw_bytes);
}

void CheckScan(std::string_view file) {
  const SegmentScan scan = ScanSegment(file);
  FUZZ_CHECK(scan.file_size == file.size());
  FUZZ_CHECK(scan.valid_bytes <= file.size());
  FUZZ_CHECK(scan.corruption.ok() || !scan.torn_tail);
  FUZZ_CHECK(scan.corruption.ok() || absl::IsDataLoss(scan.corruption) ||
             absl::IsUnimplemented(scan.corruption));
  // A clean scan covers the whole file.
  if (scan.corruption.ok() && !scan.torn_tail) FUZZ_CHECK(scan.valid_bytes == file.size());
  if (scan.frames.empty()) {
    FUZZ_CHECK(scan.valid_bytes == 0 || scan.valid_bytes == kSegmentFileHeaderBytes);
    if (scan.valid_bytes == 0) FUZZ_CHECK(scan.torn_tail || !scan.corruption.ok());
  } else {
    FUZZ_CHECK(scan.frames.front().offset == kSegmentFileHeaderBytes);
    FUZZ_CHECK(scan.frames.back().offset + scan.frames.back().total_size == scan.valid_bytes);
  }
  for (size_t i = 0; i < scan.frames.size(); ++i) {
    const FrameInfo& f = scan.frames[i];
    FUZZ_CHECK(f.total_size >= kFrameHeaderBytes);
    FUZZ_CHECK(f.offset <= file.size() && f.total_size <= file.size() - f.offset);
    FUZZ_CHECK(f.first_counter <= f.last_counter);
    FUZZ_CHECK(f.record_count >= 1);
    if (i > 0) {
      FUZZ_CHECK(f.offset == scan.frames[i - 1].offset + scan.frames[i - 1].total_size);
      FUZZ_CHECK(f.first_counter > scan.frames[i - 1].last_counter);
    }
    const std::string_view bytes = file.substr(f.offset, f.total_size);
    FUZZ_CHECK(ParseFrameHeader(bytes).ok());
    FrameHeader h;
    const absl::Status s = DecodeFrame(bytes, f.offset, &Scratch(), &Records(), &h);
    if (s.ok()) {
      FUZZ_CHECK(h.first_counter == f.first_counter && h.last_counter == f.last_counter);
      FUZZ_CHECK(h.record_count == f.record_count);
      CheckDecoded(h, Records());
    } else {
      FUZZ_CHECK(absl::IsDataLoss(s) || absl::IsResourceExhausted(s));
      FUZZ_CHECK(Records().empty());
    }
  }
}

// Treats `input` as one frame: fixes its stored size and both checksums, then decodes it.
void CheckSingleFrame(std::string_view input) {
  if (input.size() < kFrameHeaderBytes) return;
  std::string frame(input);
  testing::StoreLe32(frame.data(), kFrameMagic);
  testing::StoreLe32(frame.data() + 4, static_cast<uint32_t>(frame.size() - kFrameHeaderBytes));
  testing::StoreLe32(frame.data() + 52, MaskCrc32c(Crc32c(std::string_view(frame).substr(60))));
  testing::StoreLe32(frame.data() + 56, MaskCrc32c(Crc32c(std::string_view(frame).substr(0, 56))));
  FrameHeader h;
  const absl::Status s = DecodeFrame(frame, 0, &Scratch(), &Records(), &h);
  if (s.ok()) {
    CheckDecoded(h, Records());
  } else {
    FUZZ_CHECK(absl::IsDataLoss(s) || absl::IsResourceExhausted(s));
  }
}

}  // namespace
}  // namespace rill::internal

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  rill::internal::CheckScan(input);
  std::string repaired(input);
  rill::internal::testing::RepairSegmentChecksums(&repaired);
  rill::internal::CheckScan(repaired);
  rill::internal::CheckSingleFrame(input);
  return 0;
}
