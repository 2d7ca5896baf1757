// metrics(): Kinesis' metric names over the shards' and the stream's counters.
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_format.h"
#include "base/partition_key_cache.h"
#include "base/sealed_token.h"
#include "base/sequence_layout.h"
#include "base/strings.h"
#include "base/utf.h"
#include "log/shard_log.h"
#include "rill/base/md5.h"
#include "storage/stream_store.h"
#include "stream/rate_limiter.h"
#include "stream/stream_impl.h"
#include "stream/stream_shard.h"

namespace rill::internal {

MetricsSnapshot StreamImpl::metrics() const {
  const absl::Time now = options_.clock->Now();
  const int64_t now_us = ToMicros(now);
  MetricsSnapshot m;
  m.stream_name = options_.name;
  m.taken_at = now;
  for (const StreamShard* s : shard_map_.load(std::memory_order_acquire)->all) {
    ShardMetrics sm;
    sm.shard_id = s->id;
    sm.incoming_records = static_cast<int64_t>(s->log().end_ordinal());
    sm.incoming_bytes = static_cast<int64_t>(s->log().appended_bytes());
    sm.outgoing_records = s->outgoing_records.load(std::memory_order_relaxed);
    sm.outgoing_bytes = s->outgoing_bytes.load(std::memory_order_relaxed);
    sm.write_provisioned_throughput_exceeded = s->write_throttled.load(std::memory_order_relaxed);
    sm.read_provisioned_throughput_exceeded = s->read_throttled.load(std::memory_order_relaxed);
    sm.iterator_age_milliseconds = s->iterator_age_ms.load(std::memory_order_relaxed);
    m.incoming_records += sm.incoming_records;
    m.incoming_bytes += sm.incoming_bytes;
    m.outgoing_records += sm.outgoing_records;
    m.outgoing_bytes += sm.outgoing_bytes;
    m.write_provisioned_throughput_exceeded += sm.write_provisioned_throughput_exceeded;
    m.read_provisioned_throughput_exceeded += sm.read_provisioned_throughput_exceeded;
    if (!Expired(*s, now_us)) {
      m.iterator_age_milliseconds =
          std::max(m.iterator_age_milliseconds, sm.iterator_age_milliseconds);
      m.shards.push_back(sm);
    }
  }
  const Counters& c = *counters_;
  m.put_records_total_records = c.put_records_total.load(std::memory_order_relaxed);
  m.put_records_successful_records = c.put_records_successful.load(std::memory_order_relaxed);
  m.put_records_failed_records = c.put_records_failed.load(std::memory_order_relaxed);
  m.put_records_throttled_records = c.put_records_throttled.load(std::memory_order_relaxed);
  m.put_records_success = c.put_records_success.load(std::memory_order_relaxed);
  // Every record in a shard came from a PutRecord or a PutRecords entry.
  // (Read a moment apart from the PutRecords counter, so clamped.)
  m.put_record_success =
      std::max<int64_t>(0, m.incoming_records - m.put_records_successful_records);
  m.put_record_failure = c.put_record_failure.load(std::memory_order_relaxed);
  m.get_records_success = c.get_records_success.load(std::memory_order_relaxed);
  m.get_records_records = m.outgoing_records;
  m.get_records_bytes = m.outgoing_bytes;
  m.put_record_latency = c.put_record_latency.Get();
  m.put_records_latency = c.put_records_latency.Get();
  m.get_records_latency = c.get_records_latency.Get();
  m.memory_bytes = static_cast<int64_t>(MemoryBytes());
  m.memory_budget_exceeded = c.memory_budget_exceeded.load(std::memory_order_relaxed);
  m.retired_records = c.retired_records.load(std::memory_order_relaxed);
  m.retired_bytes = c.retired_bytes.load(std::memory_order_relaxed);
  return m;
}

}  // namespace rill::internal
