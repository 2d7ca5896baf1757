// Where a delivery stream delivers: the option structs of its destinations.
//
//   ObjectStoreDestination   a directory tree in the role of an S3 bucket: objects under
//                            Firehose's keys, compressed, published atomically
//   PostgresDestination      a PostgreSQL table, batches by COPY, exactly once
//   HttpEndpointDestination  Firehose's HTTP endpoint delivery protocol, over libcurl
//   StreamDestination        another rill stream (StreamApi)
//   CallbackDestination      a function of yours
//
// Each has its buffering hints: a buffer is delivered when it holds size_bytes (counted before
// compression) or its oldest record has waited `interval`, whichever comes first.
//
// Thread safety: plain structs; copy them freely.
#ifndef RILL_DELIVER_DESTINATIONS_H_
#define RILL_DELIVER_DESTINATIONS_H_

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace rill {

class StreamApi;

// Firehose's CompressionFormat (S3) and rill's ZSTD. Files end in .gz, .snappy or .zst.
//   kGzip    one gzip member per object (RFC 1952; `gzip -d` reads it)
//   kSnappy  the Snappy framing format, as Firehose writes it (stream identifier, then CRC-32C
//            masked chunks of at most 64 KiB)
//   kZstd    one zstd frame (`zstd -d`), rill's addition, level 3
enum class CompressionFormat { kUncompressed, kGzip, kSnappy, kZstd };

// "UNCOMPRESSED", "GZIP", "Snappy", "ZSTD".
std::string_view CompressionFormatName(CompressionFormat format);

struct BufferingHints {
  // SizeInMBs, as bytes. Range per destination (1 MiB steps are not required): object store
  // 1-128 MiB, HTTP endpoint 1-64 MiB, PostgreSQL, stream and callback 1-128 MiB. Default 5 MiB.
  size_t size_bytes = size_t{5} << 20;
  // IntervalInSeconds. Range 0-900 s; 0 delivers on every round. Default 300 s.
  absl::Duration interval = absl::Seconds(300);
};

// S3's role. Objects are files under `directory` ("the bucket"); a key's '/' are directories.
// An object appears whole or not at all: it is written to <directory>/.rill-staging/, synced,
// renamed into place and its directory synced; a restart clears what a crash left in staging.
struct ObjectStoreDestination {
  std::string directory;
  // Prefix, with Firehose's expressions (docs/delivery.md): !{timestamp:<pattern>},
  // !{firehose:random-string}, !{partitionKeyFromQuery:<key>}, !{partitionKeyFromLambda:<key>}.
  // Empty: "yyyy/MM/dd/HH/". A prefix without a timestamp expression gets
  // "!{timestamp:yyyy/MM/dd/HH/}" appended (after a '/' if it does not end with one).
  std::string prefix;
  // ErrorOutputPrefix: must contain !{firehose:error-output-type} when given; may be empty only if
  // `prefix` has no expressions (then error objects go under "<type>/yyyy/MM/dd/HH/").
  std::string error_output_prefix;
  // The time zone of timestamps in keys (CustomTimeZone), an IANA name. Default "UTC".
  std::string custom_time_zone = "UTC";
  // Replaces the compression's extension when not empty (FileExtension; must start with '.').
  std::string file_extension;
  CompressionFormat compression = CompressionFormat::kUncompressed;
  BufferingHints buffering;
};

// The role of Firehose's Redshift and DynamoDB destinations: rows COPYed into a PostgreSQL table.
//
// Exactly once: each batch's COPY and the per-shard progress of the delivery stream (the last
// sequence number delivered, per source incarnation, in the table rill_delivery_progress that
// rill creates) commit in one transaction, and records at or below that progress are skipped; so
// a crash anywhere, then redelivery from the last checkpoint, writes no row twice. Rows the table
// refuses (bad data, a constraint) go to the error output one by one ("PostgreSQL.DataError");
// the others commit. Table and column names are taken literally (quoted for the server).
struct PostgresDestination {
  // A libpq connection string, e.g. "host=127.0.0.1 port=5432 dbname=game user=rill".
  std::string conninfo;
  // The table (optionally schema-qualified); it must exist.
  std::string table;
  // With columns: each record is a JSON object and column i gets the value at json_paths[i] (the
  // jq subset of MetadataExtractionQuery; null when missing). Without: each record is one row
  // already in COPY's text format for `copy_options` (a trailing newline is added if missing).
  std::vector<std::string> columns;
  std::vector<std::string> json_paths;
  // COPY's options when rows are passed through, e.g. "(FORMAT csv)" (HEADER is refused: it
  // would skip each batch's first record). Default: text format.
  std::string copy_options;
  // How long failed batches are retried before they go to the error output. Range 0-7200 s.
  // Default 3600 s.
  absl::Duration retry_duration = absl::Seconds(3600);
  BufferingHints buffering;
};

// Firehose's HTTP endpoint delivery (POST of {"requestId","timestamp","records":[{"data"}]}).
struct HttpEndpointDestination {
  // http:// or https:// URL.
  std::string url;
  // Sent as X-Amz-Firehose-Access-Key when not empty (at most 4096 bytes).
  std::string access_key;
  // X-Amz-Firehose-Common-Attributes (at most 50).
  std::map<std::string, std::string> common_attributes;
  // Content-Encoding: gzip for the body.
  bool gzip = false;
  // A request with no answer within this (real) time is retried. Default 180 s, range 180-900 s
  // in Firehose; rill allows 1 ms-900 s so that tests need not wait.
  absl::Duration request_timeout = absl::Seconds(180);
  // RetryDurationInSeconds. Range 0-7200 s. Default 300 s.
  absl::Duration retry_duration = absl::Seconds(300);
  // A CA file for https (empty: the system's).
  std::string ca_file;
  BufferingHints buffering;
};

// Another rill stream: each record is put with its partition key (from a stream source) or its
// record id (DirectPut), in PutRecords calls of at most 500 records.
struct StreamDestination {
  StreamApi* stream = nullptr;  // borrowed; must outlive the delivery stream
  // Attempts of a throttled or failing put are retried this long, then go to the error output.
  absl::Duration retry_duration = absl::Seconds(300);
  BufferingHints buffering;
};

// One delivered record, for a CallbackDestination.
struct DeliveredRecord {
  std::string_view record_id;
  absl::Time approximate_arrival_timestamp;
  std::string_view data;
};

// A function of yours that receives each buffer. An error status is retried (with backoff, on
// the delivery stream's clock) until retry_duration, then the records go to the error output.
struct CallbackDestination {
  std::function<absl::Status(absl::Span<const DeliveredRecord> records,
                             absl::Span<const std::pair<std::string, std::string>> partition_keys)>
      deliver;
  absl::Duration retry_duration = absl::Seconds(300);
  BufferingHints buffering;
};

}  // namespace rill

#endif  // RILL_DELIVER_DESTINATIONS_H_
