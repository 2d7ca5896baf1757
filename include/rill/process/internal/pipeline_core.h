// The machinery under the Pipeline builder (pipeline.h): the element stages as composable
// transforms, PipelineCore (what every runner shares: source, clock, sink error, counters), the
// pinned snapshot envelope of both kinds of pipeline, and the builder's parameter checks. Not
// public API.
//
// Why a separate header: pipeline.h is the builder and the two runners, the API users read;
// this is how they are put together, and the snapshot layout here is pinned (snapshots outlive the
// binary that wrote them). Header-only: the stages are templates composed at compile time, so
// that a record goes through inlined calls.
//
// Snapshot layout (all integers little-endian): magic "RPIP", version u8 (1), kind u8
// (PipelineKind), then u32-length blobs of the source position, the pipeline's own state (empty
// for a record pipeline; for a windowed one the WindowOperator snapshot as a blob, then the
// shard watermarks) and the sink position, then records_in, results_out and undecodable records
// as u64.
#ifndef RILL_PROCESS_INTERNAL_PIPELINE_CORE_H_
#define RILL_PROCESS_INTERNAL_PIPELINE_CORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "rill/base/clock.h"
#include "rill/base/error.h"
#include "rill/base/internal/byte_codec.h"
#include "rill/base/shard_id.h"
#include "rill/process/internal/snapshot_codec.h"
#include "rill/process/source.h"
#include "rill/process/watermark.h"

namespace rill::internal {

template <typename F>
struct IsStdFunction : std::false_type {};
template <typename Signature>
struct IsStdFunction<std::function<Signature>> : std::true_type {};

// Whether f is a callable that can be null and is: a null function pointer or an empty
// std::function.
template <typename F>
bool IsNullCallable(const F& f) {
  if constexpr (std::is_pointer_v<F> || std::is_member_pointer_v<F>) {
    return f == nullptr;
  } else if constexpr (IsStdFunction<F>::value) {
    return !f;
  } else {
    return false;
  }
}

// kInvalidArgument "<stage>: the <what> is null".
inline absl::Status NullInStage(const char* stage, const char* what) {
  return InvalidArgumentError(absl::StrCat(stage, ": the ", what, " is null"));
}

// `status` (not OK) with "<stage>: " before its message.
inline absl::Status InStage(const char* stage, const absl::Status& status) {
  return MakeError(GetErrorCode(status), absl::StrCat(stage, ": ", status.message()));
}

// Stage transforms: Xf(v, out) calls out(w) for each element w that v becomes. Check() is OK, or
// kInvalidArgument for the first stage given a null function.
struct IdentityTransform {
  template <typename V, typename Out>
  void operator()(const V& v, Out&& out) {
    out(v);
  }
  absl::Status Check() const { return absl::OkStatus(); }
};

template <typename Prev, typename F>
struct FilterTransform {
  Prev prev;
  F f;
  template <typename V, typename Out>
  void operator()(const V& v, Out&& out) {
    prev(v, [&](const auto& x) {
      if (f(x)) out(x);
    });
  }
  absl::Status Check() const {
    if (absl::Status s = prev.Check(); !s.ok()) return s;
    return IsNullCallable(f) ? NullInStage("Filter", "function") : absl::OkStatus();
  }
};

template <typename Prev, typename F>
struct MapTransform {
  Prev prev;
  F f;
  template <typename V, typename Out>
  void operator()(const V& v, Out&& out) {
    prev(v, [&](const auto& x) { out(f(x)); });
  }
  absl::Status Check() const {
    if (absl::Status s = prev.Check(); !s.ok()) return s;
    return IsNullCallable(f) ? NullInStage("Map", "function") : absl::OkStatus();
  }
};

template <typename Prev, typename F>
struct FlatMapTransform {
  Prev prev;
  F f;
  template <typename V, typename Out>
  void operator()(const V& v, Out&& out) {
    prev(v, [&](const auto& x) {
      for (const auto& y : f(x)) out(y);
    });
  }
  absl::Status Check() const {
    if (absl::Status s = prev.Check(); !s.ok()) return s;
    return IsNullCallable(f) ? NullInStage("FlatMap", "function") : absl::OkStatus();
  }
};

// The event time is the source's arrival time.
struct ArrivalTime {};

// Calls a sink; an error (from a sink returning absl::Status) is returned, void means success.
template <typename Sink, typename V>
absl::Status CallSink(Sink& sink, const V& v) {
  if constexpr (std::is_void_v<std::invoke_result_t<Sink&, const V&>>) {
    sink(v);
    return absl::OkStatus();
  } else {
    return sink(v);
  }
}

template <typename Sink>
concept PositionedSink = requires(Sink& s, std::string* out, std::string_view in) {
  s.SavePosition(out);
  { s.RestorePosition(in) } -> std::convertible_to<absl::Status>;
};

inline constexpr char kPipelineSnapshotMagic[4] = {'R', 'P', 'I', 'P'};
inline constexpr uint8_t kPipelineSnapshotVersion = 1;
enum class PipelineKind : uint8_t { kRecords = 1, kWindowed = 2 };

// What every pipeline runner shares: the source, the clock, the sink's error and counters.
template <typename In>
struct PipelineCore {
  std::unique_ptr<Source<In>> source;
  std::shared_ptr<Clock> clock;
  absl::Status failed;
  bool started = false;
  uint64_t records_in = 0;
  uint64_t results_out = 0;
  // Batches the last PollBatches took. "Found nothing" is this being 0, not the records read
  // being 0: batches may hold no record that decodes (or only records a restored snapshot
  // already covers), and the source still has more.
  size_t last_batches = 0;
  uint64_t undecodable_before = 0;  // counted by the source of the run a snapshot came from

  uint64_t undecodable() const { return undecodable_before + source->undecodable_records(); }

  // Reads up to `max_batches` batches (fewer once the source has none), giving each to
  // process(batch); stops at the first error, or once a sink failed. Returns the records read.
  template <typename Process>
  absl::StatusOr<size_t> PollBatches(int max_batches, Process&& process) {
    started = true;
    size_t read = 0;
    last_batches = 0;
    for (int i = 0; i < max_batches && failed.ok(); ++i) {
      absl::StatusOr<std::optional<SourceBatch<In>>> batch = source->Next();
      if (!batch.ok()) return batch.status();
      if (!*batch) break;
      ++last_batches;
      process(**batch);
      read += (*batch)->records.size();
      records_in += (*batch)->records.size();
    }
    if (!failed.ok()) return failed;
    return read;
  }

  // Snapshot layout, shared by both kinds of pipeline: magic, version, kind, then blobs of the
  // source position, the pipeline's own state (empty for a record pipeline) and the sink
  // position, then the counters.
  template <typename Sink>
  std::string Snapshot(PipelineKind kind, std::string_view state, Sink& sink) const {
    std::string out(kPipelineSnapshotMagic, 4);
    PutU8(&out, kPipelineSnapshotVersion);
    PutU8(&out, static_cast<uint8_t>(kind));
    std::string part;
    source->SavePosition(&part);
    PutBlob(&out, part);
    PutBlob(&out, state);
    part.clear();
    if constexpr (PositionedSink<Sink>) sink.SavePosition(&part);
    PutBlob(&out, part);
    PutLittleEndian(&out, records_in);
    PutLittleEndian(&out, results_out);
    PutLittleEndian(&out, undecodable());
    return out;
  }

  // A snapshot's parts, views into its bytes.
  struct Saved {
    std::string_view source, state, sink;
    uint64_t records_in = 0, results_out = 0, undecodable = 0;
  };
  static bool Decode(std::string_view bytes, PipelineKind kind, Saved* saved) {
    ByteReader in(bytes);
    std::string_view magic;
    uint8_t version, found_kind;
    return in.Bytes(4, &magic) && magic == std::string_view(kPipelineSnapshotMagic, 4) &&
           in.U8(&version) && version == kPipelineSnapshotVersion && in.U8(&found_kind) &&
           found_kind == static_cast<uint8_t>(kind) && ReadBlob(&in, &saved->source) &&
           ReadBlob(&in, &saved->state) && ReadBlob(&in, &saved->sink) &&
           in.LittleEndian(&saved->records_in) && in.LittleEndian(&saved->results_out) &&
           in.LittleEndian(&saved->undecodable) && in.AtEnd();
  }

  // Restores the source's position, the sink's and the counters from a decoded snapshot.
  template <typename Sink>
  absl::Status Apply(const Saved& saved, Sink& sink) {
    if (absl::Status s = source->RestorePosition(saved.source); !s.ok()) return s;
    if constexpr (PositionedSink<Sink>) {
      if (absl::Status s = sink.RestorePosition(saved.sink); !s.ok()) return s;
    }
    records_in = saved.records_in;
    results_out = saved.results_out;
    undecodable_before = saved.undecodable;
    return absl::OkStatus();
  }
};

inline void PutShardWatermarks(std::string* out, const WatermarkTracker& tracker) {
  PutTime(out, tracker.current());
  PutLittleEndian(out, static_cast<uint32_t>(tracker.sources().size()));
  for (const auto& [shard, s] : tracker.sources()) {
    PutBlob(out, shard.ToString());
    PutTime(out, s.max_event_time);
    PutTime(out, s.last_seen);
  }
}

inline bool ReadShardWatermarks(ByteReader* in, WatermarkTracker* tracker) {
  absl::Time current;
  uint32_t n;
  if (!ReadTime(in, &current) || !in->LittleEndian(&n)) return false;
  std::map<ShardId, WatermarkTracker::Source> sources;
  for (uint32_t i = 0; i < n; ++i) {
    std::string_view id;
    WatermarkTracker::Source s;
    if (!ReadBlob(in, &id) || !ReadTime(in, &s.max_event_time) || !ReadTime(in, &s.last_seen)) {
      return false;
    }
    absl::StatusOr<ShardId> shard = ShardId::Parse(id);
    if (!shard.ok() || !sources.emplace(*shard, s).second) return false;
  }
  tracker->Restore(std::move(sources), current);
  return true;
}

// A windowed pipeline's own state: the WindowOperator snapshot as a blob, then the shard
// watermarks.
inline std::string EncodeWindowedState(std::string_view op_state, const WatermarkTracker& tracker) {
  std::string state;
  PutBlob(&state, op_state);
  PutShardWatermarks(&state, tracker);
  return state;
}

// Splits what EncodeWindowedState wrote: *op_state views into `state`; false on anything else.
inline bool DecodeWindowedState(std::string_view state, std::string_view* op_state,
                                WatermarkTracker* tracker) {
  ByteReader in(state);
  return ReadBlob(&in, op_state) && ReadShardWatermarks(&in, tracker) && in.AtEnd();
}

// The source and the element stages: OK, or kInvalidArgument for the first one that is null.
template <typename In, typename Xf>
absl::Status CheckStages(const PipelineCore<In>& core, const Xf& xf) {
  if (core.source == nullptr) return NullInStage("From", "source");
  return xf.Check();
}

}  // namespace rill::internal

#endif  // RILL_PROCESS_INTERNAL_PIPELINE_CORE_H_
