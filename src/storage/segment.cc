#include "storage/segment.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rill/base/error.h"
#include "storage/crc32c.h"

namespace rill::internal {
namespace {

// Frame header field offsets (see the layout in segment.h).
constexpr size_t kOffMagic = 0;
constexpr size_t kOffStoredBytes = 4;
constexpr size_t kOffRawBytes = 8;
constexpr size_t kOffRecordCount = 12;
constexpr size_t kOffFirstCounter = 16;
constexpr size_t kOffLastCounter = 24;
constexpr size_t kOffFirstArrival = 32;
constexpr size_t kOffLastArrival = 40;
constexpr size_t kOffCodec = 48;
constexpr size_t kOffCipher = 49;
constexpr size_t kOffReserved = 50;
constexpr size_t kOffPayloadCrc = 52;
constexpr size_t kOffHeaderCrc = 56;
static_assert(kOffHeaderCrc + 4 == kFrameHeaderBytes);
// Header bytes authenticated as associated data of an encrypted frame: everything but the CRCs
// (the payload CRC covers the ciphertext, so it cannot be an input of it).
constexpr size_t kAuthenticatedHeaderBytes = kOffPayloadCrc;
constexpr uint8_t kEnvelopeVersion = 1;

// The smallest record: four one-byte varints (counter delta, arrival delta, key and data lengths).
constexpr uint64_t kMinRecordBytes = 4;

// Pieces in which a file's payloads are read to check their CRCs, and the window in which a scan
// looks for the next frame after a bad one: a scan's memory stays bounded whatever the file holds.
constexpr size_t kReadPieceBytes = size_t{1} << 20;

void Store32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
void Store64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
uint32_t Load32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t Load64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

size_t VarintLength(uint64_t v) {
  const int bits = 64 - std::countl_zero(v | 1);
  return static_cast<size_t>((bits + 6) / 7);
}

char* PutVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

// Reads a varint from [*p, end); false if it is cut short, longer than 10 bytes or overflows 64
// bits.
bool GetVarint(const char** p, const char* end, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && *p < end; shift += 7) {
    const uint64_t byte = static_cast<uint8_t>(*(*p)++);
    if (shift == 63 && byte > 1) return false;
    result |= (byte & 0x7f) << shift;
    if (byte < 0x80) {
      *v = result;
      return true;
    }
  }
  return false;
}

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1)); }

// arrival - previous, modulo 2^64: arrival times may go backwards and may be any int64.
int64_t ArrivalDelta(int64_t arrival, int64_t previous) {
  return static_cast<int64_t>(static_cast<uint64_t>(arrival) - static_cast<uint64_t>(previous));
}
int64_t AddArrival(int64_t previous, int64_t delta) {
  return static_cast<int64_t>(static_cast<uint64_t>(previous) + static_cast<uint64_t>(delta));
}

// The file header every version-1 segment starts with.
std::string FileHeader() {
  std::string header(kSegmentFileHeaderBytes, '\0');
  std::memcpy(header.data(), kSegmentFileMagic.data(), kSegmentFileMagic.size());
  Store32(header.data() + 8, kSegmentFormatVersion);
  Store32(header.data() + 12, MaskCrc32c(Crc32c(std::string_view(header.data(), 12))));
  return header;
}

// Checks a complete file header; OK, DATA_LOSS or UNIMPLEMENTED.
absl::Status CheckFileHeader(std::string_view bytes) {
  if (bytes.substr(0, kSegmentFileMagic.size()) != kSegmentFileMagic) {
    return absl::DataLossError("segment file header: bad magic (not a rill segment file)");
  }
  if (UnmaskCrc32c(Load32(bytes.data() + 12)) != Crc32c(bytes.substr(0, 12))) {
    return absl::DataLossError("segment file header: checksum mismatch");
  }
  const uint32_t version = Load32(bytes.data() + 8);
  if (version != kSegmentFormatVersion) {
    return absl::UnimplementedError(absl::StrFormat(
        "segment format version %d; this build reads version %d", version, kSegmentFormatVersion));
  }
  return absl::OkStatus();
}

// Checks a frame header; returns nullptr and fills *header when it is sound, else what is wrong.
// Allocates nothing, so that a scan can try it at every candidate offset.
const char* CheckFrameHeader(std::string_view bytes, FrameHeader* header) {
  const char* p = bytes.data();
  if (Load32(p + kOffMagic) != kFrameMagic) return "bad frame magic";
  if (UnmaskCrc32c(Load32(p + kOffHeaderCrc)) != Crc32c(std::string_view(p, kOffHeaderCrc))) {
    return "frame header checksum mismatch";
  }
  if (p[kOffReserved] != 0 || p[kOffReserved + 1] != 0) {
    return "reserved frame header bytes are not zero";
  }
  FrameHeader h;
  h.stored_bytes = Load32(p + kOffStoredBytes);
  h.raw_bytes = Load32(p + kOffRawBytes);
  h.record_count = Load32(p + kOffRecordCount);
  h.first_counter = Load64(p + kOffFirstCounter);
  h.last_counter = Load64(p + kOffLastCounter);
  h.first_arrival_us = static_cast<int64_t>(Load64(p + kOffFirstArrival));
  h.last_arrival_us = static_cast<int64_t>(Load64(p + kOffLastArrival));
  h.payload_crc = UnmaskCrc32c(Load32(p + kOffPayloadCrc));
  const uint8_t codec = static_cast<uint8_t>(p[kOffCodec]);
  if (codec > static_cast<uint8_t>(FrameCodec::kZstd)) return "unknown frame codec";
  h.codec = static_cast<FrameCodec>(codec);
  const uint8_t cipher = static_cast<uint8_t>(p[kOffCipher]);
  if (cipher > static_cast<uint8_t>(FrameCipher::kAes256Gcm)) return "unknown frame cipher";
  h.cipher = static_cast<FrameCipher>(cipher);
  if (h.record_count == 0) return "frame has no record";
  if (h.raw_bytes > kMaxFramePayloadBytes) return "raw payload size exceeds the frame limit";
  if (h.raw_bytes < kMinRecordBytes * h.record_count) {
    return "raw payload too small for its record count";
  }
  // An encrypted frame's inner payload size is checked once its envelope is parsed.
  if (h.cipher == FrameCipher::kNone) {
    if (h.codec == FrameCodec::kNone && h.stored_bytes != h.raw_bytes) {
      return "uncompressed frame whose stored and raw sizes differ";
    }
    if (h.codec == FrameCodec::kZstd && h.stored_bytes >= h.raw_bytes) {
      return "compressed frame not smaller than its raw payload";
    }
  } else if (h.stored_bytes < EnvelopeOverhead(0, 0) ||
             h.stored_bytes > EnvelopeOverhead(0xffff, 0xffff) + h.raw_bytes) {
    return "encrypted frame's stored size does not fit its envelope";
  }
  if (h.first_counter > h.last_counter ||
      h.last_counter - h.first_counter < uint64_t{h.record_count} - 1) {
    return "frame counters inconsistent with its record count";
  }
  if (h.record_count == 1 &&
      (h.first_counter != h.last_counter || h.first_arrival_us != h.last_arrival_us)) {
    return "single-record frame with different first and last values";
  }
  *header = h;
  return nullptr;
}

absl::Status FrameError(uint64_t offset, std::string_view what) {
  return absl::DataLossError(absl::StrFormat("segment frame at offset %d: %s", offset, what));
}

// Checks `records` for a frame (after `after`, the last counter already written) and returns the
// exact size of their raw payload.
absl::Status SizePayload(std::span<const StoredRecord> records, std::optional<uint64_t> after,
                         size_t* size) {
  if (records.empty()) return InvalidArgumentError("a segment frame needs at least one record");
  uint64_t total = 0;
  uint64_t previous = records[0].counter;
  int64_t previous_arrival = records[0].arrival_us;
  if (after.has_value() && records[0].counter <= *after) {
    return InvalidArgumentError(absl::StrFormat(
        "counter %d does not follow the segment's last counter %d", records[0].counter, *after));
  }
  for (size_t i = 0; i < records.size(); ++i) {
    const StoredRecord& r = records[i];
    if (i > 0 && r.counter <= previous) {
      return InvalidArgumentError(absl::StrFormat(
          "record %d: counter %d does not follow counter %d", i, r.counter, previous));
    }
    if (r.partition_key.size() > kMaxSegmentPartitionKeyBytes) {
      return InvalidArgumentError(absl::StrFormat("record %d: partition key of %d bytes exceeds %d",
                                                  i, r.partition_key.size(),
                                                  kMaxSegmentPartitionKeyBytes));
    }
    if (r.data.size() > kMaxFramePayloadBytes) {
      return InvalidArgumentError(absl::StrFormat("record %d: %d bytes of data exceed a frame's %d",
                                                  i, r.data.size(), kMaxFramePayloadBytes));
    }
    total += VarintLength(r.counter - previous) +
             VarintLength(ZigZag(ArrivalDelta(r.arrival_us, previous_arrival))) +
             VarintLength(r.partition_key.size()) + r.partition_key.size() +
             VarintLength(r.data.size()) + r.data.size();
    if (total > kMaxFramePayloadBytes) {
      return InvalidArgumentError(
          absl::StrFormat("a frame of %d records exceeds %d bytes: split the batch", records.size(),
                          kMaxFramePayloadBytes));
    }
    previous = r.counter;
    previous_arrival = r.arrival_us;
  }
  *size = static_cast<size_t>(total);
  return absl::OkStatus();
}

// Encodes `records` at `out`, which has room for SizePayload's size; returns the end.
char* EncodePayload(std::span<const StoredRecord> records, char* out) {
  uint64_t previous = records[0].counter;
  int64_t previous_arrival = records[0].arrival_us;
  for (const StoredRecord& r : records) {
    out = PutVarint(out, r.counter - previous);
    out = PutVarint(out, ZigZag(ArrivalDelta(r.arrival_us, previous_arrival)));
    out = PutVarint(out, r.partition_key.size());
    if (!r.partition_key.empty()) std::memcpy(out, r.partition_key.data(), r.partition_key.size());
    out += r.partition_key.size();
    out = PutVarint(out, r.data.size());
    if (!r.data.empty()) std::memcpy(out, r.data.data(), r.data.size());
    out += r.data.size();
    previous = r.counter;
    previous_arrival = r.arrival_us;
  }
  return out;
}

// Decodes a raw payload against its header, trusting no length in it. Replaces *out's contents
// (cleared on failure).
absl::Status DecodeRecords(const FrameHeader& h, std::string_view raw, uint64_t offset,
                           std::vector<StoredRecord>* out) {
  out->clear();
  const char* p = raw.data();
  const char* const end = p + raw.size();
  uint64_t counter = h.first_counter;
  int64_t arrival = h.first_arrival_us;
  auto fail = [&](uint32_t i, std::string_view what) {
    out->clear();
    return FrameError(offset, absl::StrFormat("record %d of %d: %s", i, h.record_count, what));
  };
  for (uint32_t i = 0; i < h.record_count; ++i) {
    uint64_t counter_delta, arrival_zigzag, key_size, data_size;
    if (!GetVarint(&p, end, &counter_delta)) return fail(i, "bad counter delta");
    if (i == 0 ? counter_delta != 0
               : counter_delta == 0 || counter_delta > h.last_counter - counter) {
      return fail(i, "counter out of the frame's range or not increasing");
    }
    counter += counter_delta;
    if (!GetVarint(&p, end, &arrival_zigzag)) return fail(i, "bad arrival delta");
    if (i == 0 && arrival_zigzag != 0) return fail(i, "arrival differs from the frame's first");
    arrival = AddArrival(arrival, UnZigZag(arrival_zigzag));
    if (!GetVarint(&p, end, &key_size)) return fail(i, "bad key length");
    if (key_size > kMaxSegmentPartitionKeyBytes || key_size > static_cast<uint64_t>(end - p)) {
      return fail(i, "key length out of bounds");
    }
    const std::string_view key(p, static_cast<size_t>(key_size));
    p += key_size;
    if (!GetVarint(&p, end, &data_size)) return fail(i, "bad data length");
    if (data_size > static_cast<uint64_t>(end - p)) return fail(i, "data length out of bounds");
    const std::string_view data(p, static_cast<size_t>(data_size));
    p += data_size;
    out->push_back(StoredRecord{counter, arrival, key, data});
  }
  if (p != end) {
    out->clear();
    return FrameError(offset, absl::StrFormat("%d bytes left after the last record", end - p));
  }
  if (counter != h.last_counter) {
    out->clear();
    return FrameError(offset, "last record's counter differs from the frame header's");
  }
  if (arrival != h.last_arrival_us) {
    out->clear();
    return FrameError(offset, "last record's arrival differs from the frame header's");
  }
  return absl::OkStatus();
}

// Where a scan reads from: the bytes of a file in memory, or a file through pread. Read returns
// [offset, offset + n), REQUIRES offset + n <= size(); the view stays valid until `buffer` is used
// again (a MemorySource ignores the buffer).
class MemorySource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const { return bytes_.size(); }
  absl::StatusOr<std::string_view> Read(uint64_t offset, size_t n, ScratchBuffer* /*buffer*/) {
    return bytes_.substr(static_cast<size_t>(offset), n);
  }

 private:
  std::string_view bytes_;
};

class FileSource {
 public:
  FileSource(int fd, uint64_t size, std::string_view path) : fd_(fd), size_(size), path_(path) {}
  uint64_t size() const { return size_; }
  absl::StatusOr<std::string_view> Read(uint64_t offset, size_t n, ScratchBuffer* buffer) {
    char* p = buffer->Reserve(n);
    absl::StatusOr<size_t> got = PreadFully(fd_, p, n, offset, path_);
    if (!got.ok()) return got.status();
    if (*got != n) {
      return absl::DataLossError(absl::StrFormat(
          "segment %s shrank while being scanned (%d bytes at offset %d)", path_, n, offset));
    }
    return std::string_view(p, n);
  }

 private:
  int fd_;
  uint64_t size_;
  std::string_view path_;
};

// The scan described at SegmentScan, over either source.
template <typename Source>
class Scanner {
 public:
  explicit Scanner(Source* source) : source_(source) {}

  absl::StatusOr<SegmentScan> Run() {
    SegmentScan scan;
    const uint64_t size = source_->size();
    scan.file_size = size;
    const std::string expected = FileHeader();
    if (size < kSegmentFileHeaderBytes) {
      absl::StatusOr<std::string_view> head = source_->Read(0, size, &header_buffer_);
      if (!head.ok()) return head.status();
      if (std::string_view(expected).substr(0, static_cast<size_t>(size)) == *head) {
        scan.torn_tail = true;  // the header itself was cut: the file was never created fully
      } else {
        scan.corruption = absl::DataLossError(absl::StrFormat(
            "segment file of %d bytes is shorter than a header and is not a header's start", size));
      }
      return scan;
    }
    absl::StatusOr<std::string_view> head =
        source_->Read(0, kSegmentFileHeaderBytes, &header_buffer_);
    if (!head.ok()) return head.status();
    if (absl::Status s = CheckFileHeader(*head); !s.ok()) {
      scan.corruption = std::move(s);
      return scan;
    }
    uint64_t offset = kSegmentFileHeaderBytes;
    while (offset < size) {
      absl::StatusOr<Check> check = CheckFrameAt(offset);
      if (!check.ok()) return check.status();
      const FrameHeader& h = check->header;
      if (check->verdict == Verdict::kValid) {
        if (!scan.frames.empty() && h.first_counter <= scan.frames.back().last_counter) {
          // Checksums cannot catch this (the frame is intact), and a crash cannot produce it.
          scan.corruption = FrameError(
              offset, absl::StrFormat("first counter %d does not follow the previous frame's %d",
                                      h.first_counter, scan.frames.back().last_counter));
          break;
        }
        const uint64_t total = kFrameHeaderBytes + h.stored_bytes;
        scan.frames.push_back(FrameInfo{offset, total, h.first_counter, h.last_counter,
                                        h.record_count, h.first_arrival_us, h.last_arrival_us});
        offset += total;
        continue;
      }
      if (check->verdict == Verdict::kTruncated) {
        scan.torn_tail = true;  // an intact header whose payload the end of the file cuts
        break;
      }
      // A bad frame: damage if a valid frame follows, else the torn last write. An intact header's
      // length is trusted, so the search starts after its payload; otherwise anywhere after it.
      const uint64_t from =
          check->header_ok ? offset + kFrameHeaderBytes + h.stored_bytes : offset + 1;
      absl::StatusOr<std::optional<uint64_t>> next = FindValidFrame(from);
      if (!next.ok()) return next.status();
      if (next->has_value()) {
        scan.corruption = FrameError(
            offset,
            absl::StrFormat("%s, and a valid frame follows at offset %d", check->reason, **next));
      } else {
        scan.torn_tail = true;
      }
      break;
    }
    scan.valid_bytes = offset;
    return scan;
  }

 private:
  enum class Verdict { kValid, kTruncated, kBad };
  struct Check {
    Verdict verdict = Verdict::kBad;
    bool header_ok = false;
    FrameHeader header;
    const char* reason = "";
  };

  absl::StatusOr<Check> CheckFrameAt(uint64_t offset) {
    Check check;
    const uint64_t remaining = source_->size() - offset;
    if (remaining < kFrameHeaderBytes) {
      check.reason = "incomplete frame header";
      return check;
    }
    absl::StatusOr<std::string_view> bytes =
        source_->Read(offset, kFrameHeaderBytes, &header_buffer_);
    if (!bytes.ok()) return bytes.status();
    if (const char* reason = CheckFrameHeader(*bytes, &check.header); reason != nullptr) {
      check.reason = reason;
      return check;
    }
    check.header_ok = true;
    if (check.header.stored_bytes > remaining - kFrameHeaderBytes) {
      check.verdict = Verdict::kTruncated;
      check.reason = "payload cut by the end of the file";
      return check;
    }
    absl::StatusOr<bool> crc_ok = PayloadCrcMatches(offset + kFrameHeaderBytes, check.header);
    if (!crc_ok.ok()) return crc_ok.status();
    if (!*crc_ok) {
      check.reason = "payload checksum mismatch";
      return check;
    }
    check.verdict = Verdict::kValid;
    return check;
  }

  absl::StatusOr<bool> PayloadCrcMatches(uint64_t offset, const FrameHeader& h) {
    uint32_t crc = 0;
    for (uint64_t done = 0; done < h.stored_bytes;) {
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>(kReadPieceBytes, h.stored_bytes - done));
      absl::StatusOr<std::string_view> piece = source_->Read(offset + done, n, &payload_buffer_);
      if (!piece.ok()) return piece.status();
      crc = Crc32cExtend(crc, *piece);
      done += n;
    }
    return crc == h.payload_crc;
  }

  // The offset of the first valid frame at or after `from`, if any.
  absl::StatusOr<std::optional<uint64_t>> FindValidFrame(uint64_t from) {
    const uint64_t size = source_->size();
    char magic[4];
    Store32(magic, kFrameMagic);
    uint64_t pos = from;
    while (pos < size && size - pos >= kFrameHeaderBytes) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kReadPieceBytes, size - pos));
      absl::StatusOr<std::string_view> window = source_->Read(pos, n, &window_buffer_);
      if (!window.ok()) return window.status();
      // Candidates that start in this window; the last 3 bytes are looked at again by the next.
      for (size_t i = 0; i + sizeof(magic) <= n;) {
        const void* hit = std::memchr(window->data() + i, magic[0], n - sizeof(magic) + 1 - i);
        if (hit == nullptr) break;
        i = static_cast<size_t>(static_cast<const char*>(hit) - window->data());
        if (std::memcmp(window->data() + i, magic, sizeof(magic)) == 0) {
          const uint64_t candidate = pos + i;
          if (size - candidate < kFrameHeaderBytes) return std::optional<uint64_t>();
          absl::StatusOr<Check> check = CheckFrameAt(candidate);
          if (!check.ok()) return check.status();
          if (check->verdict == Verdict::kValid) return std::optional<uint64_t>(candidate);
        }
        ++i;
      }
      if (n == size - pos) break;
      pos += n - (sizeof(magic) - 1);
    }
    return std::optional<uint64_t>();
  }

  Source* source_;
  ScratchBuffer header_buffer_;
  ScratchBuffer payload_buffer_;
  ScratchBuffer window_buffer_;
};

absl::Status WithPath(const absl::Status& status, std::string_view path) {
  absl::Status out(status.code(), absl::StrFormat("segment %s: %s", path, status.message()));
  // Payloads too: a KMS error keeps its Kinesis name.
  status.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

}  // namespace

void ScratchBuffer::Grow(size_t size) {
  const size_t capacity = std::max(size, capacity_ + capacity_ / 2);
  data_ = std::make_unique_for_overwrite<char[]>(capacity);
  capacity_ = capacity;
}

void EncodeFrameHeader(const FrameHeader& header, char* out) {
  Store32(out + kOffMagic, kFrameMagic);
  Store32(out + kOffStoredBytes, header.stored_bytes);
  Store32(out + kOffRawBytes, header.raw_bytes);
  Store32(out + kOffRecordCount, header.record_count);
  Store64(out + kOffFirstCounter, header.first_counter);
  Store64(out + kOffLastCounter, header.last_counter);
  Store64(out + kOffFirstArrival, static_cast<uint64_t>(header.first_arrival_us));
  Store64(out + kOffLastArrival, static_cast<uint64_t>(header.last_arrival_us));
  out[kOffCodec] = static_cast<char>(header.codec);
  out[kOffCipher] = static_cast<char>(header.cipher);
  out[kOffReserved] = out[kOffReserved + 1] = 0;
  Store32(out + kOffPayloadCrc, MaskCrc32c(header.payload_crc));
  Store32(out + kOffHeaderCrc, MaskCrc32c(Crc32c(std::string_view(out, kOffHeaderCrc))));
}

absl::StatusOr<FrameHeader> ParseFrameHeader(std::string_view bytes) {
  if (bytes.size() < kFrameHeaderBytes) {
    return absl::DataLossError(
        absl::StrFormat("frame header of %d bytes is incomplete", bytes.size()));
  }
  FrameHeader header;
  if (const char* reason = CheckFrameHeader(bytes, &header); reason != nullptr) {
    return absl::DataLossError(reason);
  }
  return header;
}

void AppendRawPayload(std::span<const StoredRecord> records, std::string* out) {
  size_t size = 0;
  if (!SizePayload(records, std::nullopt, &size).ok()) return;
  const size_t start = out->size();
  out->resize(start + size);
  EncodePayload(records, out->data() + start);
}

FrameBuffer::FrameBuffer() = default;
FrameBuffer::~FrameBuffer() = default;
FrameBuffer::FrameBuffer(FrameBuffer&&) noexcept = default;
FrameBuffer& FrameBuffer::operator=(FrameBuffer&&) noexcept = default;

void FrameBuffer::DCtxDeleter::operator()(ZSTD_DCtx_s* dctx) const { ZSTD_freeDCtx(dctx); }

size_t EnvelopeOverhead(size_t key_id_bytes, size_t wrapped_key_bytes) {
  return 1 + 2 + key_id_bytes + 2 + wrapped_key_bytes + kAeadNonceBytes + kAeadTagBytes;
}

absl::StatusOr<std::string> FrameKeyring::Key(std::string_view key_id, std::string_view wrapped) {
  std::string cache_key =
      absl::StrCat(key_id.size(), ":", std::string(key_id), std::string(wrapped));
  {
    MutexLock lock(&mu_);
    if (auto it = cache_.find(cache_key); it != cache_.end()) return it->second;
  }
  // Unwrapped outside the lock: a provider may be slow (KMS is a network call).
  absl::StatusOr<std::string> key = unwrap_(key_id, wrapped);
  if (!key.ok()) return key.status();
  MutexLock lock(&mu_);
  cache_.emplace(std::move(cache_key), *key);
  return key;
}

bool IsKeyError(const absl::Status& status) {
  switch (GetErrorCode(status)) {
    case ErrorCode::kKmsDisabled:
    case ErrorCode::kKmsInvalidState:
    case ErrorCode::kKmsAccessDenied:
    case ErrorCode::kKmsNotFound:
    case ErrorCode::kKmsOptInRequired:
    case ErrorCode::kKmsThrottling:
      return true;
    default:
      return false;
  }
}

void FrameBuffer::SetDecryption(FrameKeyring* keyring, std::string context) {
  keyring_ = keyring;
  context_ = std::move(context);
  cipher_.reset();
  cipher_wrapped_.clear();
}

absl::StatusOr<std::string_view> FrameBuffer::OpenEnvelope(std::string_view frame_bytes,
                                                           uint64_t offset) {
  FrameBuffer* scratch = this;
  const std::string_view env = frame_bytes.substr(kFrameHeaderBytes);
  const char* p = env.data();
  const char* const end = p + env.size();
  if (static_cast<uint8_t>(*p) != kEnvelopeVersion) {
    return FrameError(offset, "unknown encryption envelope version");
  }
  ++p;
  std::string_view parts[2];
  for (std::string_view& part : parts) {
    if (end - p < 2) return FrameError(offset, "encryption envelope cut short");
    uint16_t n;
    std::memcpy(&n, p, 2);
    p += 2;
    if (static_cast<size_t>(end - p) < n)
      return FrameError(offset, "encryption envelope cut short");
    part = std::string_view(p, n);
    p += n;
  }
  if (static_cast<size_t>(end - p) < kAeadNonceBytes + kAeadTagBytes) {
    return FrameError(offset, "encryption envelope cut short");
  }
  const char* nonce = p;
  p += kAeadNonceBytes;
  const std::string_view ciphertext(p, static_cast<size_t>(end - p) - kAeadTagBytes);
  const char* tag = end - kAeadTagBytes;
  const std::string_view key_id = parts[0];
  const std::string_view wrapped = parts[1];
  if (scratch->keyring_ == nullptr) {
    return MakeError(ErrorCode::kKmsAccessDenied,
                     absl::StrFormat("segment frame at offset %d is encrypted under key %s and no "
                                     "KeyProvider was given to read it",
                                     offset, std::string(key_id)));
  }
  if (!scratch->cipher_ || scratch->cipher_wrapped_ != wrapped) {
    absl::StatusOr<std::string> key = scratch->keyring_->Key(key_id, wrapped);
    if (!key.ok()) return key.status();
    absl::StatusOr<Aes256Gcm> cipher = Aes256Gcm::Create(*key);
    if (!cipher.ok()) return FrameError(offset, "the data key is not an AES-256 key");
    scratch->cipher_.emplace(*std::move(cipher));
    scratch->cipher_wrapped_.assign(wrapped.data(), wrapped.size());
  }
  std::string aad(frame_bytes.substr(0, kAuthenticatedHeaderBytes));
  aad += scratch->context_;
  char* out = scratch->decrypted_.Reserve(std::max<size_t>(ciphertext.size(), 1));
  if (absl::Status s = scratch->cipher_->Open(nonce, aad, ciphertext, tag, out); !s.ok()) {
    return FrameError(offset,
                      "authentication failed: the frame was altered, moved from another "
                      "shard or stream, or sealed under another key");
  }
  return std::string_view(out, ciphertext.size());
}

absl::Status DecodeFrame(std::string_view frame_bytes, uint64_t offset, FrameBuffer* scratch,
                         std::vector<StoredRecord>* out, FrameHeader* header) {
  out->clear();
  if (frame_bytes.size() < kFrameHeaderBytes) {
    return FrameError(offset,
                      absl::StrFormat("%d bytes, fewer than a frame header", frame_bytes.size()));
  }
  FrameHeader h;
  if (const char* reason = CheckFrameHeader(frame_bytes, &h); reason != nullptr) {
    return FrameError(offset, reason);
  }
  if (frame_bytes.size() - kFrameHeaderBytes != h.stored_bytes) {
    return FrameError(offset,
                      absl::StrFormat("%d payload bytes where the header says %d",
                                      frame_bytes.size() - kFrameHeaderBytes, h.stored_bytes));
  }
  std::string_view stored = frame_bytes.substr(kFrameHeaderBytes);
  if (Crc32c(stored) != h.payload_crc) return FrameError(offset, "payload checksum mismatch");
  if (h.cipher == FrameCipher::kAes256Gcm) {
    absl::StatusOr<std::string_view> inner = scratch->OpenEnvelope(frame_bytes, offset);
    if (!inner.ok()) return inner.status();
    stored = *inner;
    if (h.codec == FrameCodec::kNone && stored.size() != h.raw_bytes) {
      return FrameError(offset, "uncompressed frame whose stored and raw sizes differ");
    }
    if (h.codec == FrameCodec::kZstd && stored.size() >= h.raw_bytes) {
      return FrameError(offset, "compressed frame not smaller than its raw payload");
    }
  }
  std::string_view raw = stored;
  if (h.codec == FrameCodec::kZstd) {
    // The content size written in the zstd frame, and the zstd frame's own length, must agree
    // with the header before anything is decompressed.
    if (ZSTD_getFrameContentSize(stored.data(), stored.size()) != h.raw_bytes ||
        ZSTD_findFrameCompressedSize(stored.data(), stored.size()) != stored.size()) {
      return FrameError(offset, "zstd frame does not match the frame header");
    }
    if (scratch->dctx_ == nullptr) {
      scratch->dctx_.reset(ZSTD_createDCtx());
      if (scratch->dctx_ == nullptr) {
        return absl::ResourceExhaustedError("cannot allocate a zstd decompression context");
      }
    }
    char* dst = scratch->raw_.Reserve(h.raw_bytes);
    const size_t n =
        ZSTD_decompressDCtx(scratch->dctx_.get(), dst, h.raw_bytes, stored.data(), stored.size());
    if (ZSTD_isError(n)) {
      return FrameError(offset, absl::StrFormat("zstd: %s", ZSTD_getErrorName(n)));
    }
    if (n != h.raw_bytes) {
      return FrameError(offset, absl::StrFormat("decompressed to %d bytes where the header says %d",
                                                n, h.raw_bytes));
    }
    raw = std::string_view(dst, h.raw_bytes);
  }
  if (absl::Status s = DecodeRecords(h, raw, offset, out); !s.ok()) return s;
  if (header != nullptr) *header = h;
  return absl::OkStatus();
}

SegmentScan ScanSegment(std::string_view file_bytes) {
  MemorySource source(file_bytes);
  // A MemorySource never fails, so neither does the scan.
  absl::StatusOr<SegmentScan> scan = Scanner<MemorySource>(&source).Run();
  return *std::move(scan);
}

// ---- SegmentWriter ----

void SegmentWriter::CCtxDeleter::operator()(ZSTD_CCtx_s* cctx) const { ZSTD_freeCCtx(cctx); }

SegmentWriter::SegmentWriter(std::string path, ScopedFd fd, uint64_t size_bytes,
                             std::optional<uint64_t> last_counter, SegmentWriterOptions options,
                             bool created)
    : path_(std::move(path)),
      fd_(std::move(fd)),
      size_bytes_(size_bytes),
      last_counter_(last_counter),
      options_(options),
      directory_synced_(!created) {}

SegmentWriter::~SegmentWriter() = default;

absl::Status SegmentWriter::ValidateOptions(const SegmentWriterOptions& options) {
  if (options.compression_level != 0 && (options.compression_level < ZSTD_minCLevel() ||
                                         options.compression_level > ZSTD_maxCLevel())) {
    return InvalidArgumentError(
        absl::StrFormat("SegmentWriterOptions::compression_level %d is outside 0 and %d..%d",
                        options.compression_level, ZSTD_minCLevel(), ZSTD_maxCLevel()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SegmentWriter>> SegmentWriter::Create(const std::string& path,
                                                                     SegmentWriterOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  int raw;
  do {
    raw = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0) {
    const int error = errno;
    if (error == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrFormat("segment %s already exists: a segment is never overwritten", path));
    }
    return IoError("cannot create segment", path, error);
  }
  ScopedFd fd(raw);
  if (absl::Status s = PwriteFully(fd.get(), FileHeader(), 0, path); !s.ok()) {
    ::unlink(path.c_str());
    return s;
  }
  std::unique_ptr<SegmentWriter> writer(new SegmentWriter(
      path, std::move(fd), kSegmentFileHeaderBytes, std::nullopt, options, /*created=*/true));
  return writer;
}

absl::StatusOr<std::unique_ptr<SegmentWriter>> SegmentWriter::OpenForAppend(
    const std::string& path, uint64_t valid_bytes, std::optional<uint64_t> last_counter,
    SegmentWriterOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  absl::StatusOr<ScopedFd> fd = OpenFile(path, O_RDWR);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return IoError("cannot stat segment", path, errno);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (valid_bytes < kSegmentFileHeaderBytes || valid_bytes > size) {
    return InvalidArgumentError(
        absl::StrFormat("segment %s: valid_bytes %d is outside %d..%d (the file's size)", path,
                        valid_bytes, kSegmentFileHeaderBytes, size));
  }
  char header[kSegmentFileHeaderBytes];
  absl::StatusOr<size_t> got = PreadFully(fd->get(), header, sizeof(header), 0, path);
  if (!got.ok()) return got.status();
  if (absl::Status s = CheckFileHeader(std::string_view(header, *got)); !s.ok()) {
    return WithPath(s, path);
  }
  if (size > valid_bytes) {
    // The cut must be durable before new frames land after it: otherwise a crash could leave the
    // new frames followed by the old torn bytes.
    if (::ftruncate(fd->get(), static_cast<off_t>(valid_bytes)) != 0) {
      return IoError("cannot truncate segment", path, errno);
    }
    if (DataSync(fd->get()) != 0) return IoError("cannot sync segment", path, errno);
  }
  std::unique_ptr<SegmentWriter> writer(new SegmentWriter(path, *std::move(fd), valid_bytes,
                                                          last_counter, options,
                                                          /*created=*/false));
  return writer;
}

absl::Status SegmentWriter::Usable() const {
  if (!error_.ok()) return error_;
  if (closed_) {
    return absl::FailedPreconditionError(absl::StrFormat("segment %s is closed", path_));
  }
  return absl::OkStatus();
}

absl::Status SegmentWriter::Append(std::span<const StoredRecord> records) {
  if (absl::Status s = Usable(); !s.ok()) return s;
  size_t raw_size = 0;
  if (absl::Status s = SizePayload(records, last_counter_, &raw_size); !s.ok()) {
    return absl::Status(s.code(), absl::StrFormat("segment %s: %s", path_, s.message()));
  }
  // Both buffers keep a header's room in front of the payload, so that the frame goes out in
  // one write whichever of them holds it.
  char* const raw_frame = raw_.Reserve(kFrameHeaderBytes + raw_size);
  EncodePayload(records, raw_frame + kFrameHeaderBytes);
  FrameHeader h;
  h.raw_bytes = static_cast<uint32_t>(raw_size);
  h.record_count = static_cast<uint32_t>(records.size());
  h.first_counter = records.front().counter;
  h.last_counter = records.back().counter;
  h.first_arrival_us = records.front().arrival_us;
  h.last_arrival_us = records.back().arrival_us;
  h.codec = FrameCodec::kNone;
  char* frame = raw_frame;
  size_t stored_size = raw_size;
  if (options_.compression_level != 0) {
    if (cctx_ == nullptr) cctx_.reset(ZSTD_createCCtx());
    if (cctx_ != nullptr) {  // without a context (out of memory), store the frame raw
      const size_t bound = ZSTD_compressBound(raw_size);
      char* const compressed_frame = compressed_.Reserve(kFrameHeaderBytes + bound);
      const size_t n =
          ZSTD_compressCCtx(cctx_.get(), compressed_frame + kFrameHeaderBytes, bound,
                            raw_frame + kFrameHeaderBytes, raw_size, options_.compression_level);
      if (!ZSTD_isError(n) && n < raw_size) {
        frame = compressed_frame;
        stored_size = n;
        h.codec = FrameCodec::kZstd;
      }
    }
  }
  if (key_ != nullptr) {
    // The envelope: key id, wrapped key, a fresh random nonce, ciphertext, tag. The header is
    // encoded first (its CRCs filled in afterwards), since it is the associated data.
    const size_t total_stored =
        EnvelopeOverhead(key_->key_id.size(), key_->wrapped.size()) + stored_size;
    char* const sealed = sealed_.Reserve(kFrameHeaderBytes + total_stored);
    char* e = sealed + kFrameHeaderBytes;
    *e++ = static_cast<char>(kEnvelopeVersion);
    for (const std::string* part : {&key_->key_id, &key_->wrapped}) {
      const auto n = static_cast<uint16_t>(part->size());
      std::memcpy(e, &n, 2);
      std::memcpy(e + 2, part->data(), part->size());
      e += 2 + part->size();
    }
    if (absl::Status s = RandomBytes(e, kAeadNonceBytes); !s.ok()) return s;
    const char* nonce = e;
    e += kAeadNonceBytes;
    h.cipher = FrameCipher::kAes256Gcm;
    h.stored_bytes = static_cast<uint32_t>(total_stored);
    EncodeFrameHeader(h, sealed);
    std::string aad(sealed, kAuthenticatedHeaderBytes);
    aad += context_;
    if (absl::Status s =
            cipher_->Seal(nonce, aad, std::string_view(frame + kFrameHeaderBytes, stored_size), e,
                          e + stored_size);
        !s.ok()) {
      return s;
    }
    frame = sealed;
    stored_size = total_stored;
  }
  h.stored_bytes = static_cast<uint32_t>(stored_size);
  h.payload_crc = Crc32c(std::string_view(frame + kFrameHeaderBytes, stored_size));
  EncodeFrameHeader(h, frame);
  const size_t total = kFrameHeaderBytes + stored_size;
  if (absl::Status s = PwriteFully(fd_.get(), std::string_view(frame, total), size_bytes_, path_);
      !s.ok()) {
    // Part of the frame may be in the file; a later scan sees it as a torn tail. Trimming it now
    // is only a courtesy (it may fail too): the writer stays failed either way.
    if (::ftruncate(fd_.get(), static_cast<off_t>(size_bytes_)) != 0) {
      // Nothing more to do: the scan at recovery handles the torn frame.
    }
    error_ = s;
    return error_;
  }
  size_bytes_ += total;
  last_counter_ = h.last_counter;
  return absl::OkStatus();
}

absl::Status SegmentWriter::SetEncryption(std::shared_ptr<const FrameWriteKey> key,
                                          std::string context) {
  if (key == nullptr) {
    key_.reset();
    cipher_.reset();
    return absl::OkStatus();
  }
  if (key->key_id.size() > 0xffff || key->wrapped.size() > 0xffff) {
    return absl::InvalidArgumentError("a key id or wrapped data key longer than 65535 bytes");
  }
  absl::StatusOr<Aes256Gcm> cipher = Aes256Gcm::Create(key->plaintext);
  if (!cipher.ok()) return cipher.status();
  cipher_.emplace(*std::move(cipher));
  key_ = std::move(key);
  context_ = std::move(context);
  return absl::OkStatus();
}

absl::Status SegmentWriter::Sync() {
  if (absl::Status s = Usable(); !s.ok()) return s;
  if (DataSync(fd_.get()) != 0) {
    // After a failed fdatasync the kernel may have dropped the dirty pages and cleared the error:
    // a retry could "succeed" without the data. So the writer fails for good.
    const int error = errno;
    error_ = absl::DataLossError(absl::StrFormat(
        "cannot sync segment %s: %s; appended frames may be lost", path_, ErrnoText(error)));
    return error_;
  }
  if (!directory_synced_) {
    if (absl::Status s = SyncDirectory(DirectoryOf(path_)); !s.ok()) return s;
    directory_synced_ = true;
  }
  return absl::OkStatus();
}

absl::Status SegmentWriter::Close() {
  if (closed_) return error_;
  closed_ = true;
  cctx_.reset();
  if (fd_.Close() != 0 && error_.ok()) error_ = IoError("cannot close segment", path_, errno);
  return error_;
}

// ---- SegmentReader ----

absl::StatusOr<SegmentReader> SegmentReader::Open(const std::string& path) {
  absl::StatusOr<ScopedFd> fd = OpenFile(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return IoError("cannot stat segment", path, errno);
  FileSource source(fd->get(), static_cast<uint64_t>(st.st_size), path);
  absl::StatusOr<SegmentScan> scan = Scanner<FileSource>(&source).Run();
  if (!scan.ok()) return scan.status();
  if (!scan->corruption.ok()) scan->corruption = WithPath(scan->corruption, path);
  return SegmentReader(path, *std::move(fd), *std::move(scan));
}

absl::Status SegmentReader::ReadFrame(const FrameInfo& frame, FrameBuffer* scratch,
                                      std::vector<StoredRecord>* out) const {
  out->clear();
  if (frame.total_size < kFrameHeaderBytes ||
      frame.total_size > kFrameHeaderBytes + kMaxFramePayloadBytes) {
    return InvalidArgumentError(absl::StrFormat(
        "segment %s: a frame of %d bytes is not one of this reader's", path_, frame.total_size));
  }
  const size_t total = static_cast<size_t>(frame.total_size);
  char* bytes = scratch->frame_.Reserve(total);
  absl::StatusOr<size_t> got = PreadFully(fd_.get(), bytes, total, frame.offset, path_);
  if (!got.ok()) return got.status();
  if (*got != total) {
    return absl::DataLossError(
        absl::StrFormat("segment %s: frame at offset %d: the file ends after %d of its %d bytes",
                        path_, frame.offset, *got, total));
  }
  FrameHeader h;
  if (absl::Status s = DecodeFrame(std::string_view(bytes, total), frame.offset, scratch, out, &h);
      !s.ok()) {
    return WithPath(s, path_);
  }
  FrameInfo found;
  found.offset = frame.offset;
  found.total_size = total;
  found.first_counter = h.first_counter;
  found.last_counter = h.last_counter;
  found.record_count = h.record_count;
  found.first_arrival_us = h.first_arrival_us;
  found.last_arrival_us = h.last_arrival_us;
  if (found != frame) {
    out->clear();
    return absl::DataLossError(
        absl::StrFormat("segment %s: frame at offset %d no longer matches what the scan found",
                        path_, frame.offset));
  }
  return absl::OkStatus();
}

}  // namespace rill::internal
