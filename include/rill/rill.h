// rill: an embeddable, in-process Amazon Kinesis for C++. This header includes the whole public
// API; include the per-component headers instead to keep compile times down.
#ifndef RILL_RILL_H_
#define RILL_RILL_H_

#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/hash_key.h"
#include "rill/base/md5.h"
#include "rill/base/sequence_number.h"
#include "rill/base/shard_id.h"
#include "rill/consume/checkpoint_store.h"
#include "rill/consume/consumer_group.h"
#include "rill/consume/dedup.h"
#include "rill/consume/dispatcher.h"
#include "rill/consume/record_processor.h"
#include "rill/consume/shard_reader.h"
#include "rill/consume/stream_subscriber.h"
#include "rill/metrics/metrics.h"
#include "rill/process/aggregators.h"
#include "rill/process/hyperloglog.h"
#include "rill/process/quantiles.h"
#include "rill/process/top_k.h"
#include "rill/process/watermark.h"
#include "rill/process/window.h"
#include "rill/process/window_operator.h"
#include "rill/stream/list_shards.h"
#include "rill/stream/producer.h"
#include "rill/stream/record.h"
#include "rill/stream/shard_description.h"
#include "rill/stream/shard_iterator.h"
#include "rill/stream/stream.h"
#include "rill/stream/stream_options.h"
#include "rill/stream/stream_summary.h"
#include "rill/version.h"

#endif  // RILL_RILL_H_
