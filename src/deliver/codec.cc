#include "deliver/codec.h"

#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "rill/base/error.h"
#include "storage/crc32c.h"

namespace rill {

std::string_view CompressionFormatName(CompressionFormat format) {
  switch (format) {
    case CompressionFormat::kUncompressed:
      return "UNCOMPRESSED";
    case CompressionFormat::kGzip:
      return "GZIP";
    case CompressionFormat::kSnappy:
      return "Snappy";
    case CompressionFormat::kZstd:
      return "ZSTD";
  }
  return "UNKNOWN";
}

namespace deliver_internal {
namespace {

// zlib counts in uInt; feed it at most this much per call.
constexpr size_t kZlibStep = size_t{1} << 30;

absl::Status GzipAppend(std::string_view input, std::string* out) {
  z_stream z{};
  // windowBits 15 + 16: a gzip header and trailer rather than zlib's.
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return MakeError(ErrorCode::kInternalFailure, "gzip: deflateInit2 failed");
  }
  const size_t start = out->size();
  out->resize(start + deflateBound(&z, static_cast<uLong>(std::min(input.size(), kZlibStep))) + 64);
  size_t produced = start;
  size_t consumed = 0;
  int rc = Z_OK;
  do {
    const size_t in_step = std::min(input.size() - consumed, kZlibStep);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data() + consumed));
    z.avail_in = static_cast<uInt>(in_step);
    const int flush = consumed + in_step == input.size() ? Z_FINISH : Z_NO_FLUSH;
    do {
      if (out->size() - produced < 64 * 1024)
        out->resize(out->size() + std::max<size_t>(out->size() / 2, 1 << 16));
      z.next_out = reinterpret_cast<Bytef*>(out->data() + produced);
      const size_t room = std::min(out->size() - produced, kZlibStep);
      z.avail_out = static_cast<uInt>(room);
      rc = deflate(&z, flush);
      produced += room - z.avail_out;
      if (rc == Z_STREAM_ERROR) {
        deflateEnd(&z);
        out->resize(start);
        return MakeError(ErrorCode::kInternalFailure, "gzip: deflate failed");
      }
    } while (z.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
    consumed += in_step;
  } while (consumed < input.size());
  deflateEnd(&z);
  out->resize(produced);
  return absl::OkStatus();
}

void PutLe24(std::string* out, size_t v) {
  out->push_back(static_cast<char>(v & 0xff));
  out->push_back(static_cast<char>((v >> 8) & 0xff));
  out->push_back(static_cast<char>((v >> 16) & 0xff));
}

void PutLe32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// https://github.com/google/snappy/blob/main/framing_format.txt
void SnappyFramedAppend(std::string_view input, std::string* out) {
  static constexpr char kStreamIdentifier[] = "\xff\x06\x00\x00sNaPpY";
  out->append(kStreamIdentifier, sizeof(kStreamIdentifier) - 1);
  constexpr size_t kMaxChunk = 65536;
  std::string compressed;
  compressed.reserve(snappy::MaxCompressedLength(kMaxChunk));
  for (size_t at = 0; at < input.size(); at += kMaxChunk) {
    const std::string_view chunk = input.substr(at, kMaxChunk);
    char crc[4];
    PutLe32(crc, internal::MaskCrc32c(internal::Crc32c(chunk)));
    compressed.clear();
    snappy::Compress(chunk.data(), chunk.size(), &compressed);
    // Compression that does not save at least 1/8 is stored as is, as the reference encoder does.
    const bool keep_compressed = compressed.size() < chunk.size() - chunk.size() / 8;
    const std::string_view payload = keep_compressed ? std::string_view(compressed) : chunk;
    out->push_back(keep_compressed ? '\x00' : '\x01');
    PutLe24(out, payload.size() + 4);
    out->append(crc, 4);
    out->append(payload);
  }
}

absl::Status ZstdAppend(std::string_view input, std::string* out) {
  // One context per thread, reused; with a content checksum (as the zstd tool writes), so that a
  // damaged object fails to decompress instead of decoding into wrong bytes.
  thread_local std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(),
                                                                       ZSTD_freeCCtx);
  if (cctx == nullptr) return MakeError(ErrorCode::kInternalFailure, "zstd: no context");
  ZSTD_CCtx_reset(cctx.get(), ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
  const size_t start = out->size();
  out->resize(start + ZSTD_compressBound(input.size()));
  const size_t n = ZSTD_compress2(cctx.get(), out->data() + start, out->size() - start,
                                  input.data(), input.size());
  if (ZSTD_isError(n)) {
    out->resize(start);
    return MakeError(ErrorCode::kInternalFailure, absl::StrCat("zstd: ", ZSTD_getErrorName(n)));
  }
  out->resize(start + n);
  return absl::OkStatus();
}

}  // namespace

absl::Status Compress(CompressionFormat format, std::string_view input, std::string* out) {
  switch (format) {
    case CompressionFormat::kUncompressed:
      out->append(input);
      return absl::OkStatus();
    case CompressionFormat::kGzip:
      return GzipAppend(input, out);
    case CompressionFormat::kSnappy:
      SnappyFramedAppend(input, out);
      return absl::OkStatus();
    case CompressionFormat::kZstd:
      return ZstdAppend(input, out);
  }
  return MakeError(ErrorCode::kInvalidArgument, "unknown compression format");
}

std::string_view CompressionExtension(CompressionFormat format) {
  switch (format) {
    case CompressionFormat::kUncompressed:
      return "";
    case CompressionFormat::kGzip:
      return ".gz";
    case CompressionFormat::kSnappy:
      return ".snappy";
    case CompressionFormat::kZstd:
      return ".zst";
  }
  return "";
}

absl::Status Gunzip(std::string_view input, size_t max_output, std::string* out) {
  out->clear();
  if (input.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "gzip: empty input is not a gzip member");
  }
  size_t consumed = 0;
  char buffer[64 * 1024];
  // One member after another, as gzip -d reads concatenated members.
  while (consumed < input.size()) {
    z_stream z{};
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
      return MakeError(ErrorCode::kInternalFailure, "gzip: inflateInit2 failed");
    }
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      const size_t in_step = std::min(input.size() - consumed, kZlibStep);
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data() + consumed));
      z.avail_in = static_cast<uInt>(in_step);
      z.next_out = reinterpret_cast<Bytef*>(buffer);
      z.avail_out = sizeof(buffer);
      rc = inflate(&z, Z_NO_FLUSH);
      consumed += in_step - z.avail_in;
      const size_t produced = sizeof(buffer) - z.avail_out;
      if (rc != Z_OK && rc != Z_STREAM_END) {
        const std::string why = rc == Z_BUF_ERROR  ? "truncated input"
                                : z.msg != nullptr ? z.msg
                                                   : absl::StrCat("inflate error ", rc);
        inflateEnd(&z);
        return MakeError(ErrorCode::kInvalidArgument, absl::StrCat("gzip: ", why));
      }
      if (out->size() + produced > max_output) {
        inflateEnd(&z);
        return MakeError(ErrorCode::kInvalidArgument,
                         absl::StrCat("gzip: inflates beyond ", max_output, " bytes"));
      }
      out->append(buffer, produced);
      if (rc == Z_OK && produced == 0 && z.avail_in == 0 && consumed == input.size()) {
        inflateEnd(&z);
        return MakeError(ErrorCode::kInvalidArgument, "gzip: truncated input");
      }
    }
    inflateEnd(&z);
  }
  return absl::OkStatus();
}

}  // namespace deliver_internal
}  // namespace rill
