// The byte layout of WindowOperator snapshots, and the time / duration / blob codecs that pipeline
// and sink snapshots reuse. Not public API.
//
// Why a separate header: the layout is pinned (snapshots outlive the binary that wrote them), so
// it lives in one place, apart from the engines whose state it encodes; pipeline.h and sink.h
// use the same primitives.
//
// Layout of a WindowOperator snapshot (all integers little-endian):
//   magic "RWOP", version u8 (1), assigner kind u8 (AssignerKind),
//   the assigner's durations (tumbling: size; hopping: size, slide; session: gap),
//   allowed lateness (duration), watermark (time), late records u64, entry count u64,
//   then per entry: key (KeyCodec), start (time), end (time), State (u32-length blob, the
//   aggregator's Encode).
// A time is a tag u8 (0 infinite past, 1 finite, 2 infinite future) and, if finite, Unix seconds
// (u64) and the sub-second remainder in absl's quarter-nanosecond ticks (u32); a duration is the
// time epoch + duration.
#ifndef RILL_PROCESS_INTERNAL_SNAPSHOT_CODEC_H_
#define RILL_PROCESS_INTERNAL_SNAPSHOT_CODEC_H_

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "rill/base/internal/byte_codec.h"
#include "rill/process/window.h"

namespace rill::internal {

// Snapshot layout, pinned: magic, version, assigner kind.
inline constexpr char kWindowSnapshotMagic[4] = {'R', 'W', 'O', 'P'};
inline constexpr uint8_t kWindowSnapshotVersion = 1;
enum class AssignerKind : uint8_t { kTumbling = 1, kHopping = 2, kSession = 3 };

template <typename Assigner>
inline constexpr AssignerKind kAssignerKind =
    std::same_as<Assigner, TumblingWindow>  ? AssignerKind::kTumbling
    : std::same_as<Assigner, HoppingWindow> ? AssignerKind::kHopping
                                            : AssignerKind::kSession;

// absl::Time exactly: a tag (0 infinite past, 1 finite, 2 infinite future), Unix seconds and the
// sub-second remainder in absl's quarter-nanosecond ticks.
inline void PutTime(std::string* out, absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) {
    PutU8(out, t == absl::InfinitePast() ? 0 : 2);
    return;
  }
  PutU8(out, 1);
  const int64_t s = absl::ToUnixSeconds(t);  // floor
  absl::Duration rem;
  const int64_t ticks =
      absl::IDivDuration(t - absl::FromUnixSeconds(s), absl::Nanoseconds(1) / 4, &rem);
  PutLittleEndian(out, static_cast<uint64_t>(s));
  PutLittleEndian(out, static_cast<uint32_t>(ticks));
}

inline bool ReadTime(ByteReader* in, absl::Time* t) {
  uint8_t tag;
  if (!in->U8(&tag) || tag > 2) return false;
  if (tag != 1) {
    *t = tag == 0 ? absl::InfinitePast() : absl::InfiniteFuture();
    return true;
  }
  uint64_t s;
  uint32_t ticks;
  if (!in->LittleEndian(&s) || !in->LittleEndian(&ticks) || ticks >= 4'000'000'000u) return false;
  const absl::Time decoded = absl::FromUnixSeconds(static_cast<int64_t>(s)) +
                             (absl::Nanoseconds(1) / 4) * static_cast<int64_t>(ticks);
  if (decoded == absl::InfinitePast() || decoded == absl::InfiniteFuture()) return false;
  *t = decoded;
  return true;
}

inline void PutDuration(std::string* out, absl::Duration d) { PutTime(out, absl::UnixEpoch() + d); }

inline bool ReadDuration(ByteReader* in, absl::Duration* d) {
  absl::Time t;
  if (!ReadTime(in, &t)) return false;
  *d = t - absl::UnixEpoch();
  return true;
}

inline void PutBlob(std::string* out, std::string_view bytes) {
  PutLittleEndian(out, static_cast<uint32_t>(bytes.size()));
  out->append(bytes);
}

inline bool ReadBlob(ByteReader* in, std::string_view* bytes) {
  uint32_t n;
  return in->LittleEndian(&n) && in->Bytes(n, bytes);
}

// The assigner's durations, as the snapshot header holds them.
inline void PutAssigner(std::string* out, const TumblingWindow& w) { PutDuration(out, w.size()); }
inline void PutAssigner(std::string* out, const HoppingWindow& w) {
  PutDuration(out, w.size());
  PutDuration(out, w.slide());
}
inline void PutAssigner(std::string* out, const SessionWindow& w) { PutDuration(out, w.gap()); }

// Whether the snapshot's assigner durations are w's.
inline bool CheckAssigner(ByteReader* in, const TumblingWindow& w) {
  absl::Duration size;
  return ReadDuration(in, &size) && size == w.size();
}
inline bool CheckAssigner(ByteReader* in, const HoppingWindow& w) {
  absl::Duration size, slide;
  return ReadDuration(in, &size) && ReadDuration(in, &slide) && size == w.size() &&
         slide == w.slide();
}
inline bool CheckAssigner(ByteReader* in, const SessionWindow& w) {
  absl::Duration gap;
  return ReadDuration(in, &gap) && gap == w.gap();
}

// The snapshot header after the magic, version and kind.
struct WindowSnapshotHeader {
  absl::Duration allowed_lateness;
  absl::Time watermark;
  uint64_t late_records = 0;
  uint64_t entries = 0;
};

// Appends magic, version, kind, the assigner's durations and the header.
template <typename Assigner>
void PutWindowSnapshotHeader(std::string* out, const Assigner& assigner,
                             const WindowSnapshotHeader& h) {
  out->append(kWindowSnapshotMagic, sizeof(kWindowSnapshotMagic));
  PutU8(out, kWindowSnapshotVersion);
  PutU8(out, static_cast<uint8_t>(kAssignerKind<Assigner>));
  PutAssigner(out, assigner);
  PutDuration(out, h.allowed_lateness);
  PutTime(out, h.watermark);
  PutLittleEndian(out, h.late_records);
  PutLittleEndian(out, h.entries);
}

// Reads what PutWindowSnapshotHeader wrote; false unless the magic, version, kind and assigner
// durations are the ones expected (the lateness is returned, for the caller to compare).
template <typename Assigner>
bool ReadWindowSnapshotHeader(ByteReader* in, const Assigner& assigner, WindowSnapshotHeader* h) {
  std::string_view magic;
  uint8_t version, kind;
  return in->Bytes(sizeof(kWindowSnapshotMagic), &magic) &&
         magic == std::string_view(kWindowSnapshotMagic, sizeof(kWindowSnapshotMagic)) &&
         in->U8(&version) && version == kWindowSnapshotVersion && in->U8(&kind) &&
         kind == static_cast<uint8_t>(kAssignerKind<Assigner>) && CheckAssigner(in, assigner) &&
         ReadDuration(in, &h->allowed_lateness) && ReadTime(in, &h->watermark) &&
         in->LittleEndian(&h->late_records) && in->LittleEndian(&h->entries);
}

}  // namespace rill::internal

#endif  // RILL_PROCESS_INTERNAL_SNAPSHOT_CODEC_H_
