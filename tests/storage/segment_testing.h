// Helpers shared by the storage tests and the segment fuzzer: owned records and a checksum
// "repair" that lets tests and the fuzzer build frames whose checksums are right but whose
// contents are not. (The temporary directory is rill::testing::TempDir, testing/fixtures.h.)
#ifndef RILL_TESTS_STORAGE_SEGMENT_TESTING_H_
#define RILL_TESTS_STORAGE_SEGMENT_TESTING_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "log/shard_log.h"
#include "storage/crc32c.h"
#include "storage/segment.h"

namespace rill::internal::testing {

// A record that owns its bytes.
struct OwnedRecord {
  uint64_t counter = 0;
  int64_t arrival_us = 0;
  std::string partition_key;
  std::string data;

  StoredRecord view() const { return StoredRecord{counter, arrival_us, partition_key, data}; }
};

inline std::vector<StoredRecord> Views(const std::vector<OwnedRecord>& records) {
  std::vector<StoredRecord> views;
  views.reserve(records.size());
  for (const OwnedRecord& r : records) views.push_back(r.view());
  return views;
}

inline bool SameRecord(const StoredRecord& a, const StoredRecord& b) {
  return a.counter == b.counter && a.arrival_us == b.arrival_us &&
         a.partition_key == b.partition_key && a.data == b.data;
}

inline uint32_t LoadLe32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline void StoreLe32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

// Walks `file` as a segment and recomputes every checksum it can reach: the file header's (if its
// magic is there), then each frame's payload and header CRC while frames start with the frame
// magic and their stored payload fits. Whatever else is wrong stays wrong.
inline void RepairSegmentChecksums(std::string* file) {
  if (file->size() < kSegmentFileHeaderBytes ||
      std::string_view(*file).substr(0, kSegmentFileMagic.size()) != kSegmentFileMagic) {
    return;
  }
  char* p = file->data();
  StoreLe32(p + 12, MaskCrc32c(Crc32c(std::string_view(p, 12))));
  size_t offset = kSegmentFileHeaderBytes;
  while (file->size() - offset >= kFrameHeaderBytes) {
    char* h = p + offset;
    if (LoadLe32(h) != kFrameMagic) return;
    const uint64_t stored = LoadLe32(h + 4);
    const bool fits = stored <= file->size() - offset - kFrameHeaderBytes;
    if (fits) {
      StoreLe32(h + 52, MaskCrc32c(Crc32c(std::string_view(h + kFrameHeaderBytes, stored))));
    }
    StoreLe32(h + 56, MaskCrc32c(Crc32c(std::string_view(h, 56))));
    if (!fits) return;
    offset += kFrameHeaderBytes + stored;
  }
}

}  // namespace rill::internal::testing

#endif  // RILL_TESTS_STORAGE_SEGMENT_TESTING_H_
