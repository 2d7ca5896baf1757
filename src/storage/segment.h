// Segment files: the on-disk form of one shard's records in durable mode.
//
// A segment is an append-only file of frames; a frame holds a batch of records (one group commit),
// optionally zstd-compressed, with checksums over its header and its payload and enough header to
// rebuild an index (counters and arrival times) without decompressing anything. A crash can only
// cut the last write short; ScanSegment tells that torn tail (truncate it and go on) from damage in
// the middle of the file (report it), and never believes a length it has not checked.
//
// File layout, format version 1. Every integer is little-endian; the layout never changes within a
// version, and a new version gets a new number.
//
//   file header (16 bytes)
//     0   8  magic "\x89RSG\r\n\x1a\n"
//     8   4  u32 format version (1)
//     12  4  u32 masked CRC-32C of bytes [0, 12)
//   frame, repeated (60-byte header, then the stored payload)
//     0   4  u32 frame magic 0x464c52d3 (bytes d3 52 4c 46)
//     4   4  u32 stored payload bytes (as written after the header)
//     8   4  u32 raw payload bytes (uncompressed); at most kMaxFramePayloadBytes
//     12  4  u32 record count (>= 1)
//     16  8  u64 first counter
//     24  8  u64 last counter
//     32  8  i64 first arrival_us (of the first record)
//     40  8  i64 last arrival_us (of the last record; arrival times need not be monotonic)
//     48  1  u8 codec: 0 = none (stored == raw), 1 = zstd (one zstd frame with its content size;
//            stored < raw); of the payload before encryption
//     49  1  u8 cipher: 0 = none, 1 = AES-256-GCM (server-side encryption; see below)
//     50  2  reserved, zero
//     52  4  u32 masked CRC-32C of the stored payload
//     56  4  u32 masked CRC-32C of header bytes [0, 56)
//   raw payload: per record, in counter order
//     varint counter delta  (first record: 0, from the header's first counter; then the difference
//                            from the previous record's counter, >= 1)
//     varint arrival delta  (zigzag of the signed difference from the previous record's
//                            arrival_us, the first record's from the header's first arrival_us,
//                            so 0; computed modulo 2^64)
//     varint key length, key bytes (at most kMaxSegmentPartitionKeyBytes)
//     varint data length, data bytes
// Varints are LEB128 (7 bits per byte, low first, at most 10 bytes). CRCs are masked as
// MaskCrc32c() describes. Counters increase strictly across the frames of a file.
//   encrypted payload (cipher 1): the stored payload is an envelope around the (compressed or
//   raw) payload:
//     u8 envelope version (1), u16 key id length, key id, u16 wrapped data key length, wrapped
//     data key (the KeyProvider's blob), 12-byte random nonce, ciphertext (the inner payload's
//     length), 16-byte GCM tag.
//   The associated data is header bytes [0, 52) (sizes, counters, arrival times, codec and
//   cipher) followed by the writer's context (the stream's seed and the shard's index), so a
//   frame altered, or moved to another shard or stream, fails authentication. The payload CRC
//   covers the envelope: a scan checks a file without any key.
//
// Example:
//   absl::StatusOr<std::unique_ptr<SegmentWriter>> w = SegmentWriter::Create(path, {});
//   absl::Status s = (*w)->Append(records);   // one frame
//   s = (*w)->Sync();
//   ...
//   absl::StatusOr<SegmentReader> r = SegmentReader::Open(path);
//   if (!r->scan().corruption.ok()) { ... }  // damaged in the middle: report
//   FrameBuffer scratch;
//   std::vector<StoredRecord> out;
//   for (const FrameInfo& f : r->frames()) s = r->ReadFrame(f, &scratch, &out);
#ifndef RILL_STORAGE_SEGMENT_H_
#define RILL_STORAGE_SEGMENT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "log/shard_log.h"
#include "rill/base/internal/mutex.h"
#include "storage/aead.h"
#include "storage/file_util.h"

// zstd's contexts, declared here so that this header does not include <zstd.h>.
struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace rill::internal {

// Format constants. Pinned forever for format version 1.
inline constexpr uint32_t kSegmentFormatVersion = 1;
inline constexpr size_t kSegmentFileHeaderBytes = 16;
inline constexpr std::string_view kSegmentFileMagic{"\x89RSG\r\n\x1a\n", 8};
inline constexpr size_t kFrameHeaderBytes = 60;
inline constexpr uint32_t kFrameMagic = 0x464c52d3u;
// The largest raw payload a frame may hold; a larger batch must be split into several frames.
inline constexpr size_t kMaxFramePayloadBytes = size_t{256} << 20;
// Kinesis' partition-key limit, which the decoder enforces too.
// Kinesis counts 256 UTF-16 units, which UTF-8 may spell in up to 768 bytes.
inline constexpr size_t kMaxSegmentPartitionKeyBytes = 1024;

// How a frame's payload is stored. The values are part of the format.
enum class FrameCodec : uint8_t { kNone = 0, kZstd = 1 };
enum class FrameCipher : uint8_t { kNone = 0, kAes256Gcm = 1 };

// The bytes of a GCM envelope around an inner payload, besides the inner payload itself.
size_t EnvelopeOverhead(size_t key_id_bytes, size_t wrapped_key_bytes);

// A data key a SegmentWriter encrypts frames with: the KeyProvider's key id, its wrapped form
// (stored in every frame) and the 32 plaintext bytes. Immutable once made; shared.
struct FrameWriteKey {
  std::string key_id;
  std::string wrapped;
  std::string plaintext;
};

// Unwraps the data keys of encrypted frames (the KeyProvider's DecryptDataKey), caching each
// plaintext key by its wrapped form, so that a stream asks its provider once per data key.
// Thread-safe.
class FrameKeyring {
 public:
  using Unwrap =
      std::function<absl::StatusOr<std::string>(std::string_view key_id, std::string_view wrapped)>;
  explicit FrameKeyring(Unwrap unwrap) : unwrap_(std::move(unwrap)) {}
  // The plaintext data key; the provider's error (a KMS error code) if it cannot be unwrapped.
  [[nodiscard]] absl::StatusOr<std::string> Key(std::string_view key_id, std::string_view wrapped);

 private:
  Unwrap unwrap_;
  Mutex mu_;
  std::map<std::string, std::string, std::less<>> cache_ ABSL_GUARDED_BY(mu_);
};

// Whether `status` is a key error (one of the KMS error codes: a missing, disabled or wrong
// key), as opposed to damage: recovery fails on a key error instead of setting data aside.
bool IsKeyError(const absl::Status& status);

// A frame header's fields (the magic and the header CRC are implied).
struct FrameHeader {
  uint32_t stored_bytes = 0;
  uint32_t raw_bytes = 0;
  uint32_t record_count = 0;
  uint64_t first_counter = 0;
  uint64_t last_counter = 0;
  int64_t first_arrival_us = 0;
  int64_t last_arrival_us = 0;
  FrameCodec codec = FrameCodec::kNone;
  uint32_t payload_crc = 0;  // unmasked CRC-32C of the stored payload
  FrameCipher cipher = FrameCipher::kNone;
};

// Writes the 60-byte header for `header` (magic and header CRC included) to `out`.
void EncodeFrameHeader(const FrameHeader& header, char* out);

// Parses and checks a frame header: magic, header CRC, reserved bytes, codec, and the consistency
// of its fields (counts, sizes, counters); reads the first kFrameHeaderBytes of `bytes` and does
// not look at the payload. DATA_LOSS saying what failed (fewer bytes than a header included).
[[nodiscard]] absl::StatusOr<FrameHeader> ParseFrameHeader(std::string_view bytes);

// Appends the raw payload encoding of `records` to `out` (exposed for benchmarks and tests; the
// writer encodes into its own buffer). REQUIRES: records as SegmentWriter::Append requires.
void AppendRawPayload(std::span<const StoredRecord> records, std::string* out);

// A grow-only byte buffer that does not initialise what it allocates. Not thread-safe.
class ScratchBuffer {
 public:
  // Returns a buffer of at least `size` bytes; its contents are lost when it grows.
  char* Reserve(size_t size) {
    if (size > capacity_) Grow(size);
    return data_.get();
  }
  char* data() const { return data_.get(); }
  size_t capacity() const { return capacity_; }

 private:
  void Grow(size_t size);

  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
};

class FrameBuffer;

// Decodes one whole frame, `frame_bytes` = its header and stored payload, checking everything:
// header (as ParseFrameHeader), payload CRC, decompression to exactly the raw size, and a strict
// decode of every record (lengths within the payload, counters and arrival times matching the
// header, the record count exact, no bytes left over). Replaces *out's contents with views into
// `frame_bytes` (uncompressed frames) or into *scratch (compressed ones). `offset` only labels
// error messages. Fills *header when non-null. DATA_LOSS naming the offset and what failed.
// Allocates only while scratch and *out grow.
[[nodiscard]] absl::Status DecodeFrame(std::string_view frame_bytes, uint64_t offset,
                                       FrameBuffer* scratch, std::vector<StoredRecord>* out,
                                       FrameHeader* header = nullptr);

// Reusable memory for decoding frames: the frame's bytes as read from a file, the decompressed
// payload, a zstd decompression context and, for encrypted frames, the keyring and the context
// they were sealed with (SetDecryption). Records decoded through a FrameBuffer point into it
// and stay valid until it is used again. Once its buffers have grown to the largest frame, decoding
// allocates nothing.
//
// Thread safety: not thread-safe; use one FrameBuffer per thread.
class FrameBuffer {
 public:
  FrameBuffer();
  ~FrameBuffer();
  FrameBuffer(FrameBuffer&&) noexcept;
  FrameBuffer& operator=(FrameBuffer&&) noexcept;

  // Encrypted frames decoded through this buffer are opened with keys from `keyring` (not owned;
  // must outlive the buffer's use) and `context` as the writer's context. Without a keyring an
  // encrypted frame fails with kKmsAccessDenied.
  void SetDecryption(FrameKeyring* keyring, std::string context);

 private:
  friend absl::Status DecodeFrame(std::string_view, uint64_t, FrameBuffer*,
                                  std::vector<StoredRecord>*, FrameHeader*);
  friend class SegmentReader;
  struct DCtxDeleter {
    void operator()(ZSTD_DCtx_s* dctx) const;
  };
  // Parses and opens an encrypted frame's envelope (its CRC already checked): the inner payload,
  // decrypted into decrypted_. DATA_LOSS for a malformed envelope or a failed authentication;
  // the keyring's KMS error when the data key cannot be unwrapped.
  absl::StatusOr<std::string_view> OpenEnvelope(std::string_view frame_bytes, uint64_t offset);

  ScratchBuffer frame_;      // a frame read from a file
  ScratchBuffer raw_;        // a decompressed payload
  ScratchBuffer decrypted_;  // a decrypted inner payload
  std::unique_ptr<ZSTD_DCtx_s, DCtxDeleter> dctx_;
  FrameKeyring* keyring_ = nullptr;
  std::string context_;
  std::string cipher_wrapped_;  // the wrapped key cipher_ holds
  std::optional<Aes256Gcm> cipher_;
};

// One frame found by a scan: where it is and what its header says.
struct FrameInfo {
  uint64_t offset = 0;      // of the frame header, from the start of the file
  uint64_t total_size = 0;  // header and stored payload
  uint64_t first_counter = 0;
  uint64_t last_counter = 0;
  uint32_t record_count = 0;
  int64_t first_arrival_us = 0;
  int64_t last_arrival_us = 0;

  friend bool operator==(const FrameInfo&, const FrameInfo&) = default;
};

// What a scan of a segment found.
//  - A clean file: frames = all of them, valid_bytes = the file size, torn_tail = false, corruption
//    OK.
//  - A torn tail (the crash cut the last write): the frames before the torn one, valid_bytes = its
//    offset, torn_tail = true, corruption OK. Truncating to valid_bytes repairs the file
//    (SegmentWriter::OpenForAppend does). A file shorter than its header that is a prefix of a
//    valid header is a torn tail with valid_bytes = 0: the file was never completely created.
//  - Damage in the middle (a bad frame that a valid frame follows, or valid frames whose counters
//    do not increase): the frames before the damage, valid_bytes = the bad frame's offset,
//    corruption = DATA_LOSS naming the offset and what failed. Records after the damage are not
//    returned.
//  - A damaged file header: no frames, valid_bytes = 0, corruption = DATA_LOSS (UNIMPLEMENTED for
//    an intact header of a newer format version).
// A frame is valid when its header parses (ParseFrameHeader), its payload lies within the file and
// matches its CRC. A scan does not decompress; DecodeFrame / SegmentReader::ReadFrame check the
// records themselves.
struct SegmentScan {
  std::vector<FrameInfo> frames;
  uint64_t valid_bytes = 0;
  bool torn_tail = false;
  absl::Status corruption;
  uint64_t file_size = 0;  // the size scanned
};

// Scans a segment held in memory. Never reads outside `file_bytes`, never allocates more than the
// frame list, and never fails: what it finds is in the result.
SegmentScan ScanSegment(std::string_view file_bytes);

// Options of a SegmentWriter.
struct SegmentWriterOptions {
  // zstd level for frame payloads; 0 stores payloads uncompressed. Whatever the level, a frame
  // whose compressed payload is not smaller than its raw payload is stored uncompressed.
  // Default: 1 (zstd's fastest regular level). Range: 0, or ZSTD_minCLevel() (negative: faster,
  // larger) .. ZSTD_maxCLevel() (22). Fixed for the writer's life.
  int compression_level = 1;
};

// Appends frames to one segment file.
//
// Each Append writes exactly one frame with one pwrite at the end of the valid part of the file,
// so a crash leaves at most one torn frame, which a scan recognises. Appends are not durable until
// Sync(). After an I/O error the writer is failed: the error is returned by that call and by every
// later Append and Sync, because what reached the file is unknown (recover by scanning the file
// and reopening with OpenForAppend).
//
// Thread safety: not thread-safe; one thread at a time (the shard's group commit) uses a writer.
// Only one writer may have a file open.
class SegmentWriter {
 public:
  // Creates `path` with a file header. ALREADY_EXISTS if the file exists (a segment is never
  // overwritten); kInternalFailure on an I/O error; INVALID_ARGUMENT for a bad option.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SegmentWriter>> Create(
      const std::string& path, SegmentWriterOptions options = {});

  // Reopens an existing segment to append to it after recovery: `valid_bytes` is the scan's
  // valid_bytes (>= kSegmentFileHeaderBytes), `last_counter` the last frame's last counter
  // (nullopt when the segment has no frame). Truncates the file to valid_bytes (made durable
  // before returning) and appends after it. DATA_LOSS if the file header is damaged;
  // INVALID_ARGUMENT if valid_bytes is outside the file.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SegmentWriter>> OpenForAppend(
      const std::string& path, uint64_t valid_bytes, std::optional<uint64_t> last_counter,
      SegmentWriterOptions options = {});

  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;
  // Closes the file without syncing it.
  ~SegmentWriter();

  // Writes `records` as one frame. REQUIRES (else INVALID_ARGUMENT, and the writer stays usable):
  // records non-empty, counters strictly increasing and greater than every counter written before,
  // keys at most kMaxSegmentPartitionKeyBytes, raw payload at most kMaxFramePayloadBytes.
  // kInternalFailure on an I/O error (the writer is then failed). FAILED_PRECONDITION after Close.
  // Allocates only while its buffers grow to the largest frame so far.
  [[nodiscard]] absl::Status Append(std::span<const StoredRecord> records);

  // Makes every appended frame durable (fdatasync; the first Sync of a created file also fsyncs
  // its directory, so that the file's name survives a crash). DATA_LOSS if the sync fails: the
  // kernel may have dropped the unsynced frames, so the writer is failed.
  [[nodiscard]] absl::Status Sync();

  // Closes the file (without syncing: call Sync first for durability). Returns close()'s error, or
  // the writer's earlier error. Idempotent.
  [[nodiscard]] absl::Status Close();

  // Frames appended from now on are encrypted with `key` (AES-256-GCM) and bound to `context`
  // (see the format); a null key writes plaintext frames again. INVALID_ARGUMENT for a key that
  // is not 32 bytes.
  [[nodiscard]] absl::Status SetEncryption(std::shared_ptr<const FrameWriteKey> key,
                                           std::string context);

  // Bytes of the file that hold the header and complete frames written by this process.
  uint64_t size_bytes() const { return size_bytes_; }
  // The last counter written, nullopt if the file has no frame.
  std::optional<uint64_t> last_counter() const { return last_counter_; }
  const std::string& path() const { return path_; }

 private:
  struct CCtxDeleter {
    void operator()(ZSTD_CCtx_s* cctx) const;
  };

  SegmentWriter(std::string path, ScopedFd fd, uint64_t size_bytes,
                std::optional<uint64_t> last_counter, SegmentWriterOptions options, bool created);
  static absl::Status ValidateOptions(const SegmentWriterOptions& options);
  absl::Status Usable() const;

  const std::string path_;
  ScopedFd fd_;
  uint64_t size_bytes_;
  std::optional<uint64_t> last_counter_;
  const SegmentWriterOptions options_;
  bool directory_synced_;  // false until a created file's directory entry is durable
  bool closed_ = false;
  absl::Status error_;  // sticky: the I/O error that failed the writer
  std::unique_ptr<ZSTD_CCtx_s, CCtxDeleter> cctx_;
  ScratchBuffer raw_;         // frame header slot + raw payload
  ScratchBuffer compressed_;  // frame header slot + compressed payload
  ScratchBuffer sealed_;      // frame header slot + encrypted envelope
  std::shared_ptr<const FrameWriteKey> key_;
  std::optional<Aes256Gcm> cipher_;
  std::string context_;
};

// Reads a segment file: Open scans it (reading frame headers and payloads with pread, in pieces of
// bounded size, verifying the payload CRCs), and ReadFrame reads and decodes one frame. Memory use
// is proportional to the frame list and the largest frame, not to the file.
//
// The reader sees the file as it was when opened: frames appended later are not in frames().
//
// Thread safety: after Open, const methods are thread-safe; concurrent ReadFrame calls need
// distinct FrameBuffers.
class SegmentReader {
 public:
  // Opens and scans `path`. A damaged file is not an error here: check scan().corruption and
  // scan().torn_tail. NOT_FOUND if the file does not exist; kInternalFailure on an I/O error.
  [[nodiscard]] static absl::StatusOr<SegmentReader> Open(const std::string& path);

  SegmentReader(SegmentReader&&) noexcept = default;
  SegmentReader& operator=(SegmentReader&&) noexcept = default;

  const SegmentScan& scan() const { return scan_; }
  const std::vector<FrameInfo>& frames() const { return scan_.frames; }
  const std::string& path() const { return path_; }

  // Reads `frame` (one of frames()) and decodes it as DecodeFrame does, checking again that the
  // header matches `frame` and the payload its CRC (the disk may have rotted since Open). Replaces
  // *out's contents with views into *scratch, valid until scratch is used again. DATA_LOSS on any
  // mismatch or if the file has shrunk; kInternalFailure on an I/O error. Allocates only while
  // scratch and *out grow.
  [[nodiscard]] absl::Status ReadFrame(const FrameInfo& frame, FrameBuffer* scratch,
                                       std::vector<StoredRecord>* out) const;

 private:
  SegmentReader(std::string path, ScopedFd fd, SegmentScan scan)
      : path_(std::move(path)), fd_(std::move(fd)), scan_(std::move(scan)) {}

  std::string path_;
  ScopedFd fd_;
  SegmentScan scan_;
};

}  // namespace rill::internal

#endif  // RILL_STORAGE_SEGMENT_H_
