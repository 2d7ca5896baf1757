// What DescribeStreamSummary says about a stream.
//
// Example:
//   rill::StreamSummary s = stream->DescribeStreamSummary();
//   std::cout << s.stream_name << " " << rill::StreamStatusName(s.status) << " "
//             << s.open_shard_count << " open shards\n";
//
// Thread safety: plain values.
#ifndef RILL_STREAM_STREAM_SUMMARY_H_
#define RILL_STREAM_STREAM_SUMMARY_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "rill/storage/encryption.h"
#include "rill/stream/stream_options.h"

namespace rill {

// Kinesis' StreamStatus. An in-process stream is created ACTIVE; it is UPDATING while a
// resharding or mode switch runs (and for StreamOptions::update_duration after it).
enum class StreamStatus { kCreating, kDeleting, kActive, kUpdating };

// "CREATING", "DELETING", "ACTIVE", "UPDATING".
std::string_view StreamStatusName(StreamStatus status);

struct StreamSummary {
  std::string stream_name;
  StreamStatus status = StreamStatus::kActive;
  CapacityMode capacity_mode = CapacityMode::kProvisioned;
  int open_shard_count = 0;
  absl::Duration retention;
  absl::Time creation_time;
  size_t max_record_bytes = 0;
  // Registered enhanced fan-out consumers.
  int consumer_count = 0;
  // MemoryLimitPolicy::kRetireOldest: records retired before their retention period to keep the
  // stream within its memory budget, and their partition-key plus data bytes, since the stream
  // was created. Records that expired by retention are not counted. rill's addition.
  int64_t retired_records = 0;
  int64_t retired_bytes = 0;
  // Server-side encryption: kKms with the key id after StartStreamEncryption, kNone after
  // StopStreamEncryption (and before any start).
  EncryptionType encryption_type = EncryptionType::kNone;
  std::string key_id;
};

}  // namespace rill

#endif  // RILL_STREAM_STREAM_SUMMARY_H_
