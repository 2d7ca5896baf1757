// StreamOptions: everything a stream is created with.
//
// Example:
//   rill::StreamOptions options;
//   options.name = "player-actions";
//   options.shard_count = 4;
//   options.clock = std::make_shared<rill::SimulatedClock>();
//   absl::StatusOr<std::unique_ptr<rill::Stream>> stream = rill::Stream::Create(options);
//
// Thread safety: a plain struct; copy it freely.
#ifndef RILL_STREAM_STREAM_OPTIONS_H_
#define RILL_STREAM_STREAM_OPTIONS_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "rill/base/clock.h"

namespace rill {

struct StreamOptions {
  // The stream's name: 1-128 characters of [a-zA-Z0-9_.-]. Required.
  std::string name;

  // Number of shards the stream starts with. Range: 1..max_shards. Default: 1.
  int shard_count = 1;

  // How long records stay readable after they arrive. Range: 24 h..8760 h (365 days), unless
  // allow_short_retention is set. Default: 24 h. Change it later with
  // Stream::IncreaseStreamRetentionPeriod / DecreaseStreamRetentionPeriod.
  absl::Duration retention = absl::Hours(24);

  // For tests and simulations only: accept any retention from 1 ms up, so that expiry can be
  // exercised without simulating a day. Default: false.
  bool allow_short_retention = false;

  // Largest record accepted, counting partition-key bytes plus data bytes. Range: 1 MiB..10 MiB
  // (Kinesis' MaxRecordSizeInKiB 1024..10240); outside it Create() returns kValidation.
  // Default: 1 MiB (1,048,576 bytes).
  size_t max_record_bytes = size_t{1} << 20;

  // Largest PutRecords request, counting partition keys and data of every entry. Range: >= 1 MiB.
  // Default: 5 MiB (Kinesis' classic limit).
  size_t max_put_records_bytes = size_t{5} << 20;

  // Shard quota: creating or growing the stream past it is kLimitExceeded. Range: >= 1.
  // Default: 10,000 (Kinesis' per-stream maximum).
  int max_shards = 10000;

  // Where the stream reads the time from. Default: SystemClock::Default(); a null clock also
  // means the system clock.
  std::shared_ptr<Clock> clock = SystemClock::Default();
};

}  // namespace rill

#endif  // RILL_STREAM_STREAM_OPTIONS_H_
