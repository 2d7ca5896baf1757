// Compression for delivered objects and HTTP bodies, and gzip inflation for the Decompression
// processor. zlib for gzip, libsnappy for Snappy (framed here, as Firehose writes it), zstd.
#ifndef RILL_SRC_DELIVER_CODEC_H_
#define RILL_SRC_DELIVER_CODEC_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "rill/deliver/destinations.h"

namespace rill::deliver_internal {

// Appends `input` compressed as `format` to *out (kUncompressed appends it as is):
//   kGzip: one gzip member (RFC 1952), deflate level 6, readable by `gzip -d`;
//   kSnappy: the Snappy framing format (stream identifier chunk "sNaPpY", then compressed or,
//            when compression does not pay, uncompressed chunks of at most 65,536 input bytes,
//            each with the masked CRC-32C of its input), readable by any framing decoder;
//   kZstd: one zstd frame, level 3, with the content size, readable by `zstd -d`.
// Empty input gives a valid empty object in each format. kInternalFailure if the library fails.
absl::Status Compress(CompressionFormat format, std::string_view input, std::string* out);

// The file extension Firehose gives objects of `format`: "", ".gz", ".snappy", ".zst".
std::string_view CompressionExtension(CompressionFormat format);

// Inflates gzip `input` (one or more concatenated members, as `gzip -d` does) into *out
// (replaced). kInvalidArgument naming the problem for data that is not gzip, is truncated or
// fails its CRC, or would inflate beyond max_output bytes.
absl::Status Gunzip(std::string_view input, size_t max_output, std::string* out);

}  // namespace rill::deliver_internal

#endif  // RILL_SRC_DELIVER_CODEC_H_
