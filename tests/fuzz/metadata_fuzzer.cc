// Fuzzes the METADATA decoder: DecodeStreamMeta over arbitrary bytes must never crash nor fail
// with anything but DATA_LOSS (or UNIMPLEMENTED for another format version), and whatever it
// accepts must be exactly what EncodeStreamMeta writes for the result, so that rewriting a
// METADATA never changes what it says. Each input is tried three ways: as it is; with its magic,
// version, length and checksum fixed up (so that mutations of the seeds reach the payload instead
// of stopping at the checksum); and as a bare payload wrapped in a valid header and checksum.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "storage/crc32c.h"
#include "storage/stream_store.h"

namespace rill::internal {
namespace {

// METADATA's framing (stream_store.h): magic, u32 version, u32 payload length, payload, u32
// masked CRC-32C of everything before it.
constexpr std::string_view kMagic = "RILLMETA";
constexpr size_t kHeaderBytes = 16;
constexpr uint32_t kVersion = 1;

void StoreLe32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(v >> (8 * i));
}

void Check(std::string_view bytes) {
  absl::StatusOr<StreamMeta> meta = DecodeStreamMeta(bytes);
  if (!meta.ok()) {
    FUZZ_CHECK(absl::IsDataLoss(meta.status()) || absl::IsUnimplemented(meta.status()));
    return;
  }
  FUZZ_CHECK(!meta->shards.empty());
  for (size_t i = 0; i < meta->shards.size(); ++i) {
    const ShardMeta& s = meta->shards[i];
    FUZZ_CHECK(s.index == i);
    FUZZ_CHECK(s.range.starting_hash_key <= s.range.ending_hash_key);
    FUZZ_CHECK(!s.parent || *s.parent < i);
    FUZZ_CHECK(!s.adjacent_parent || *s.adjacent_parent < i);
  }
  const std::string encoded = EncodeStreamMeta(*meta);
  FUZZ_CHECK(encoded == bytes);
}

// `input` with a valid magic, version, length and checksum (when it is long enough to have them).
void CheckRepaired(std::string_view input) {
  if (input.size() < kHeaderBytes + 4) return;
  std::string file(input);
  file.replace(0, kMagic.size(), kMagic);
  StoreLe32(file.data() + 8, kVersion);
  StoreLe32(file.data() + 12, static_cast<uint32_t>(file.size() - kHeaderBytes - 4));
  StoreLe32(file.data() + file.size() - 4,
            MaskCrc32c(Crc32c(std::string_view(file).substr(0, file.size() - 4))));
  Check(file);
}

// `input` as a payload, in a valid METADATA frame.
void CheckAsPayload(std::string_view input) {
  std::string file(kMagic);
  file.resize(kHeaderBytes);
  StoreLe32(file.data() + 8, kVersion);
  StoreLe32(file.data() + 12, static_cast<uint32_t>(input.size()));
  file.append(input);
  file.resize(file.size() + 4);
  StoreLe32(file.data() + file.size() - 4,
            MaskCrc32c(Crc32c(std::string_view(file).substr(0, file.size() - 4))));
  Check(file);
}

}  // namespace
}  // namespace rill::internal

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  rill::internal::Check(input);
  rill::internal::CheckRepaired(input);
  rill::internal::CheckAsPayload(input);
  return 0;
}
