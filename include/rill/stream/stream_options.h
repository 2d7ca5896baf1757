// StreamOptions: everything a stream is created with, and the per-shard limits and on-demand
// scaling policy it enforces.
//
// Example:
//   rill::StreamOptions options;  // or StreamOptions::KinesisLimits(): throttle as Kinesis does
//   options.name = "player-actions";
//   options.shard_count = 4;
//   options.clock = std::make_shared<rill::SimulatedClock>();
//   absl::StatusOr<std::unique_ptr<rill::Stream>> stream = rill::Stream::Create(options);
//
// Thread safety: plain structs; copy them freely.
#ifndef RILL_STREAM_STREAM_OPTIONS_H_
#define RILL_STREAM_STREAM_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "rill/base/clock.h"
#include "rill/storage/encryption.h"
#include "rill/storage/storage_options.h"

namespace rill {

// How the stream's shard count is managed (Kinesis' StreamMode).
enum class CapacityMode {
  // The application sets the shard count: SplitShard, MergeShards, UpdateShardCount.
  kProvisioned,
  // The stream splits hot shards and merges cold ones itself (OnDemandPolicy), on Tick().
  kOnDemand,
};

// "PROVISIONED" or "ON_DEMAND".
std::string_view CapacityModeName(CapacityMode mode);

// Per-shard rate limits, enforced with token buckets on the stream's Clock. A bucket holds one
// second of its rate and refills continuously, so a shard accepts a burst of one second's quota
// and then the rate. A refused call is kProvisionedThroughputExceeded; in PutRecords only the
// refused entries fail. kUnlimited switches a limit off (and costs nothing on the hot path).
struct ShardLimits {
  static constexpr int64_t kUnlimited = 0;

  // Bytes of partition keys plus data written per second. Kinesis: 1 MiB. Default: kUnlimited.
  int64_t write_bytes_per_second = kUnlimited;
  // Records written per second. Kinesis: 1,000. Default: kUnlimited.
  int64_t write_records_per_second = kUnlimited;
  // GetRecords calls per second, shared by every reader of the shard. Kinesis: 5.
  // Default: kUnlimited.
  int64_t read_calls_per_second = kUnlimited;
  // Bytes returned by GetRecords per second. A call may return up to 10 MiB at once; the shard
  // then refuses reads until the rate has paid for it (10 MiB at 2 MiB/s: the next 5 seconds, as
  // Kinesis documents). Kinesis: 2 MiB. Default: kUnlimited.
  int64_t read_bytes_per_second = kUnlimited;
  // GetShardIterator calls per second. Kinesis: 5. Default: kUnlimited.
  int64_t get_shard_iterator_calls_per_second = kUnlimited;

  // Every limit off: what a game server that owns its whole machine wants.
  static ShardLimits Unlimited() { return ShardLimits{}; }
  // Kinesis' provisioned-mode limits per shard.
  static ShardLimits Kinesis() {
    return ShardLimits{.write_bytes_per_second = int64_t{1} << 20,
                       .write_records_per_second = 1000,
                       .read_calls_per_second = 5,
                       .read_bytes_per_second = int64_t{2} << 20,
                       .get_shard_iterator_calls_per_second = 5};
  }
};

// How an on-demand stream resizes itself. Tick() (called by the application, or by the thread
// StartHousekeeping() starts) measures each open shard's ingress since the previous Tick():
//   - a shard whose ingress stays at or above a hot threshold for `hot_for` is split at the middle
//     of its hash-key range (while the stream has fewer than max_shards open shards);
//   - two adjacent open shards whose ingress both stays below the cold thresholds for `cold_for`
//     are merged (while the stream has more than min_shards open shards).
// At most one resharding per shard per Tick(). Kinesis splits a shard above about 500 KB/s within
// about 15 minutes; these defaults follow it.
struct OnDemandPolicy {
  // Hot: ingress at or above either threshold. Defaults: 512 KiB/s, 500 records/s.
  int64_t split_bytes_per_second = int64_t{512} << 10;
  int64_t split_records_per_second = 500;
  // How long a shard must stay hot before it is split. Default: 15 minutes.
  absl::Duration hot_for = absl::Minutes(15);
  // Cold: ingress below both thresholds. Defaults: 64 KiB/s, 50 records/s.
  int64_t merge_bytes_per_second = int64_t{64} << 10;
  int64_t merge_records_per_second = 50;
  // How long two neighbours must stay cold before they are merged. Default: 1 hour.
  absl::Duration cold_for = absl::Hours(1);
  // Bounds on the open shard count. Defaults: 4 (Kinesis' initial on-demand capacity) and 200.
  int min_shards = 4;
  int max_shards = 200;
};

// Enhanced fan-out settings (docs/semantics.md, "Enhanced fan-out").
struct EnhancedFanOutOptions {
  // Consumers registered at once. Kinesis: 20. Range: >= 1. Default: 20.
  int max_consumers = 20;
  // Read throughput per consumer per shard, dedicated (not shared with GetRecords or other
  // consumers), in bytes of keys and data per second; a subscriber that reads faster waits. A
  // bucket holds one second's worth. Kinesis: 2 MiB/s (Kinesis()). 0 = unlimited. Default: 0,
  // like every rate limit (see StreamOptions::KinesisLimits()): a subscriber of a busy shard is
  // never slowed by surprise.
  int64_t bytes_per_second_per_shard = 0;
  // A consumer subscribing again to a shard within this time of its previous successful
  // SubscribeToShard gets kResourceInUse; later, the new subscription takes over. Kinesis: 5 s.
  // Range: >= 0. Default: 5 s.
  absl::Duration resubscribe_interval = absl::Seconds(5);

  // Kinesis' numbers, including its 2 MiB/s per consumer per shard.
  static EnhancedFanOutOptions Kinesis() {
    EnhancedFanOutOptions options;
    options.bytes_per_second_per_shard = int64_t{2} << 20;
    return options;
  }
};

// What an in-memory stream does once its record memory (Stream::MemoryBytes()) reaches
// MemoryLimit::budget_bytes.
enum class MemoryLimitPolicy {
  // Backpressure: refuse puts with kProvisionedThroughputExceeded, a message naming the memory
  // budget, until retention frees memory; a refused put or PutRecords entry writes nothing, and
  // a producer retrying throttled records backs off and retries it. Nothing put is lost. A
  // refused call first applies retention to every shard (O(shards), on the refusal path only),
  // so a stream that is only written to takes puts again once records expire. MemoryBytes() stays
  // below budget_bytes plus one chunk per shard (each shard checks the
  // budget and starts its chunk under its append lock).
  kRejectPuts,
  // Retention by size, as Kafka's retention.bytes: past the budget, the stream retires its oldest
  // records early, until MemoryBytes() is within the budget again. Each step takes the sealed
  // chunk (one no writer fills any more) whose newest record is the oldest in the stream, whole,
  // and with it every record of every shard that arrived before that newest record: what goes
  // is the stream's oldest data by arrival (records that arrived in the same microsecond may
  // fall on either side), never round-robin over shards. The chunks writers are filling are
  // never taken. Retired records are gone exactly as expired ones are:
  // TRIM_HORIZON moves past them, an iterator below them continues at the first remaining
  // record, and retention increases do not bring them back. They are counted in
  // DescribeStreamSummary().retired_records / retired_bytes and the RetiredRecords /
  // RetiredBytes metrics. A departure from Kinesis, which keeps every record for the retention
  // period (docs/departures.md). When no put is running, MemoryBytes() <= budget_bytes, unless
  // the chunks being filled (one per shard) alone exceed it.
  kRetireOldest,
};

// A bound on the memory an in-memory stream holds for its records. Durable streams bound their
// memory with StorageOptions::memory_budget_bytes instead, which evicts chunks already on disk
// and loses nothing (Create refuses a durable stream with a MemoryLimit).
//
// The stream keeps a stream-wide count of its chunk bytes as chunks are allocated and freed, so
// the check costs a put one relaxed atomic load. With a budget set, chunks are at most
// budget_bytes / (4 x open shards), rounded down to a power of two within [4 KiB, 2 MiB] (a record
// larger than that gets a chunk of its own size): the chunks writers are filling then take at
// most a quarter of the budget, and memory is refused and retired in steps of that size. A budget
// below 16 KiB per open shard cannot be kept that way; it still refuses or retires, coarsely.
struct MemoryLimit {
  // Bytes of record chunks (Stream::MemoryBytes()) the stream may hold. 0 = unbounded.
  // Default: 0.
  size_t budget_bytes = 0;
  // What happens at the budget. Default: kRejectPuts (nothing is lost).
  MemoryLimitPolicy policy = MemoryLimitPolicy::kRejectPuts;
};

// Defaults follow one rule. Every rate Kinesis limits is unlimited: writes and reads per shard
// (shard_limits), GetRecords and GetShardIterator calls, and enhanced fan-out's read rate per
// consumer; an in-process application is never slowed down by surprise. Kinesis' count and size
// rules, which refuse a call with Kinesis' error rather than slow it down, apply as Kinesis has
// them: record and request sizes, retention bounds, 10,000 shards, 20 registered consumers, the
// 5 s resubscription rule, 10 UpdateShardCount and 2 UpdateStreamMode calls per rolling day.
// KinesisLimits() turns on every rate limit as well (ConsumerGroupOptions::KinesisLimits() is
// its consumer-group half: the KCL's lease timing).
struct StreamOptions {
  // Every Kinesis limit on: ShardLimits::Kinesis() and EnhancedFanOutOptions::Kinesis(), the
  // rest as the defaults. Set the name and shard count on the result:
  //   rill::StreamOptions options = rill::StreamOptions::KinesisLimits();
  //   options.name = "telemetry";
  //   options.shard_count = 4;
  static StreamOptions KinesisLimits() {
    StreamOptions options;
    options.shard_limits = ShardLimits::Kinesis();
    options.enhanced_fan_out = EnhancedFanOutOptions::Kinesis();
    return options;
  }

  // The stream's name: 1-128 characters of [a-zA-Z0-9_.-]. Required.
  std::string name;

  // Number of shards the stream starts with. Range: 1..max_shards. Default: 1. In on-demand
  // mode the stream starts with max(shard_count, on_demand.min_shards).
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

  // Shard quota: more open shards than this (at creation or by resharding) is kLimitExceeded.
  // Range: >= 1. Default: 10,000 (Kinesis' per-stream maximum).
  int max_shards = 10000;

  // Provisioned (the default) or on-demand; change it later with Stream::UpdateStreamMode.
  CapacityMode capacity_mode = CapacityMode::kProvisioned;

  // Per-shard throughput limits, in either mode. Default: ShardLimits::Unlimited(), so that an
  // application is never throttled by surprise; ShardLimits::Kinesis() (or KinesisLimits())
  // reproduces Kinesis.
  ShardLimits shard_limits;

  // The on-demand scaling policy (used in kOnDemand mode). Default: see OnDemandPolicy.
  OnDemandPolicy on_demand;

  // UpdateShardCount calls allowed per rolling 24 hours. Kinesis: 10. Range: >= 1. Default: 10.
  int max_shard_count_updates_per_day = 10;

  // UpdateStreamMode calls allowed per rolling 24 hours. Kinesis: 2. Range: >= 1. Default: 2.
  int max_mode_updates_per_day = 2;

  // How long the stream reports UPDATING after a resharding or a mode switch, refusing other
  // such operations with kResourceInUse meanwhile. Records keep flowing while it is UPDATING, and
  // the new shards take records at once. Default: zero (the operation completes in the call, as
  // an in-process stream can; set e.g. 500 ms to reproduce an emulator's delay). Range: >= 0.
  absl::Duration update_duration = absl::ZeroDuration();

  // Registered consumers and push subscriptions. Default: see EnhancedFanOutOptions.
  EnhancedFanOutOptions enhanced_fan_out;

  // Where the stream reads the time from. Default: SystemClock::Default(); a null clock also
  // means the system clock.
  std::shared_ptr<Clock> clock = SystemClock::Default();

  // In-memory streams: a bound on record memory and what to do at it (see MemoryLimit).
  // Default: unbounded. Must stay unset with `storage` (kInvalidArgument): a durable stream's
  // memory is bounded by storage->memory_budget_bytes, which evicts to disk and loses nothing.
  MemoryLimit memory_limit;

  // Durable mode: records, shards, lineage, retention and consumers kept in a directory and
  // recovered by Stream::Open. Default: none (in memory only).
  std::optional<StorageOptions> storage;

  // Server-side encryption's keys (KMS' role): StartStreamEncryption checks its key and asks it
  // for data keys, and opening an encrypted durable stream unwraps them through it. Needed by
  // any stream that is, or will be, encrypted; shared, and called from the stream's threads
  // (implementations are thread-safe). Default: none (StartStreamEncryption fails with
  // kKmsNotFound; opening an encrypted durable stream fails with kKmsAccessDenied).
  std::shared_ptr<KeyProvider> key_provider;
};

}  // namespace rill

#endif  // RILL_STREAM_STREAM_OPTIONS_H_
