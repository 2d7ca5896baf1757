// StorageOptions and FsyncPolicy: how a durable stream keeps its records on disk, and what an
// acknowledged put survives. Set StreamOptions::storage to make a stream durable.
//
// Thread safety: plain structs; copy them freely.
#ifndef RILL_STORAGE_STORAGE_OPTIONS_H_
#define RILL_STORAGE_STORAGE_OPTIONS_H_

#include <cstddef>
#include <string>

#include "absl/time/time.h"

namespace rill {

// What an acknowledged put (a returned sequence number) of a durable stream survives.
//
// A put is acknowledged once its record is in the stream's journal: files whose bytes are in the
// kernel's page cache as soon as they are written (memory-mapped for kNever and kInterval, one
// pwrite per call for kEveryBatch), which outlive the process. The segment files are written
// behind it by the flusher. So under every policy a process crash (SIGKILL, abort, a segfault)
// loses nothing acknowledged; the policy decides what is synced, and so what a power cut may take:
//
//   policy        process crash loses    power cut / kernel crash loses
//   kNever        nothing acknowledged   what the OS had not yet written back (no bound)
//   kInterval     nothing acknowledged   at most the last fsync_interval (plus one flush's time)
//   kEveryBatch   nothing acknowledged   nothing acknowledged
//
// Sequence numbers are never reused under any policy, even after a power cut (a persisted
// counter ceiling). A put that returned an error wrote nothing readable.
enum class FsyncPolicy {
  // Nothing is synced: the journal and the segments reach the disk when the OS writes them back.
  kNever,
  // The flusher writes and syncs the segments every fsync_interval, with every record
  // acknowledged before it began; the journal is not synced.
  kInterval,
  // Every PutRecord / PutRecords call syncs the journal (one fdatasync however many shards it
  // wrote; concurrent callers share one) before its records become visible and it returns.
  kEveryBatch,
};

// Durable mode (Stream::Open, or Create with storage set). A stream without it never touches
// the disk.
struct StorageOptions {
  // The stream's directory: created if missing; one open stream per directory at a time (a lock
  // file). Required.
  std::string directory;
  // A shard's segment file is closed and a new one started past this size; retention deletes
  // whole segments. Range: >= 64 KiB. Default: 64 MiB.
  size_t segment_bytes = size_t{64} << 20;
  // zstd level of the record frames; 0 stores them uncompressed. Range: 0..19. Default: 1.
  int compression_level = 1;
  // Default: kInterval.
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  // How often the flusher writes the segments and recycles the journal, and (kInterval) syncs
  // (real time, not the stream's clock).
  // Range: >= 0. Default: 5 ms.
  absl::Duration fsync_interval = absl::Milliseconds(5);
  // true = a thread owned by the stream writes (and syncs) the segments every fsync_interval and
  // recycles the journal, so puts wait for the disk only for kEveryBatch's journal sync; false =
  // nothing runs in the background: a put writes the segments when 256 KiB are waiting or
  // fsync_interval has passed, as do Tick() and Flush() — deterministic, for simulations (the
  // journal files are recycled by later puts).
  // Default: true.
  bool background_flush = true;
  // Record memory the stream keeps (Stream::MemoryBytes()): past it, the oldest chunks already
  // on disk leave memory and are read back from their segments on demand, so that retention can
  // hold far more than memory; nothing is lost. 0 = keep everything in memory. Default: 256 MiB.
  // (In-memory streams, which have nowhere to evict to, refuse puts or retire records at
  // StreamOptions::memory_limit instead.)
  size_t memory_budget_bytes = size_t{256} << 20;
  // true = open an existing durable stream for reading only (Stream::Open; Stream::Create
  // refuses it with kInvalidArgument). For tools that inspect a stream that another process may
  // hold (the `rill` command): no lock is taken and nothing in the directory is written,
  // truncated, renamed or deleted. The stream shows what was acknowledged when it was opened —
  // the segments and the journal of the holder as they were then — and does not follow later
  // puts (open it again to see them). Every call that would change the stream (puts, resharding,
  // retention, consumers, encryption, Flush) fails with kAccessDenied. Damage is reported by
  // recovery_status() as for a normal open, but the damaged segment is left where it is. No
  // thread is started; background_flush and fsync do not apply. Default: false.
  //
  // (The owner of a durable stream also keeps <directory>/METRICS: one line, ToJson(metrics()),
  // replaced about once a second by the flusher thread and at every Flush and close, so that
  // tools outside the process can show its counters. It is advisory and never synced.)
  bool read_only = false;
};

}  // namespace rill

#endif  // RILL_STORAGE_STORAGE_OPTIONS_H_
