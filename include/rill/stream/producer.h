// Producer: buffered, retrying, order-keeping writes to a stream (what the Kinesis Producer
// Library does for Kinesis): an in-process rill::Stream or a remote one through
// rill::kinesis::Client, any rill::StreamApi.
//
// Put() copies a record into a buffer and returns. The producer groups buffered records by the
// shard their partition key is predicted to land in, and sends each shard's records with
// StreamApi::PutRecords once the oldest of them has waited max_buffered_time or a batch's worth is
// waiting. A batch's worth is sent by the Put that completed it, on the caller's thread (so
// sending keeps pace with the callers, however many); the deadlines and retries by Poll() or the
// worker. Entries refused with kProvisionedThroughputExceeded (or kInternalFailure) are retried
// with exponential backoff and jitter until record_ttl has passed since their Put; entries refused
// for any other reason (kInvalidArgument: a bad key, an oversized record) fail at once.
//
// Nothing runs in the background unless the application asks: drive the producer by hand with
// Poll() (deterministic under a SimulatedClock), or Start() a worker thread that polls for you.
//
// Each predicted shard has its own buffer, lock and sender: Puts of keys in different shards share
// no lock (only two atomic counters), and different shards' records are sent, and their callbacks
// run, on different threads at once.
//
// Example:
//   auto producer = rill::Producer::Create(*stream);
//   if (!producer.ok()) return producer.status();
//   (*producer)->Start();                       // or call (*producer)->Poll() from your loop
//   std::future<absl::StatusOr<rill::PutRecordResult>> f = (*producer)->Put("player-42", event);
//   (*producer)->Put("player-7", other, [](absl::StatusOr<rill::PutRecordResult> r) {
//     if (!r.ok()) LogDropped(r.status());      // called once, on the thread that sent it
//   });
//   (*producer)->Flush();                       // everything above is now written or failed
//   f.get()->sequence_number;
//
// Ordering. A record is never sent before every earlier Put of the same partition key to this
// producer has resolved (been written, or failed for good). To keep that promise through partial
// PutRecords failures, a PutRecords call carries at most one record per partition key: Kinesis
// (and rill) may refuse one entry of a call and accept a later one — a large record throttled by
// the byte limit, then a small one that still fits — so two records of one key in one call could
// be written out of order. Records of a key therefore go out one call after another; throughput
// comes from batching many keys. ("Earlier" is the order in which Puts took their shard's lock:
// for one thread, the order of its calls. Keys are compared by their MD5 hash key, so two keys
// that collide are ordered together, which is only stricter.) Callbacks and futures of one key
// are resolved in Put order, except records refused by Put itself (see Put).
//
// Failure statuses, by GetErrorCode():
//   kInvalidArgument    the stream refused the record (bad key, record over the stream's
//                       max_record_bytes); never retried.
//   kLimitExceeded      Put found max_outstanding_records already outstanding (and none freed
//                       within max_put_wait); nothing was buffered.
//   kProvisionedThroughputExceeded with a message starting "Expired:" (IsRecordExpired()): the
//                       record's TTL passed before it could be written — KPL's "Expired". The
//                       message says after how many attempts and gives the last error. (The code is
//                       the one a throttled PutRecord returns, so that "back off and slow down"
//                       handling applies unchanged; only retried codes can lead here.)
//   kInternalFailure    the producer was destroyed before the record could be written.
//
// Time. Buffering, backoff and TTL are judged on the stream's Clock, and Flush(), a Put waiting for
// room and the worker wait through it too (Clock::WaitFor, Clock::WaitUntil): with a SystemClock
// they sleep in real time; with a SimulatedClock, Flush() and a waiting Put move the clock forward
// to the next retry instead of sleeping, and the worker sleeps until the clock is advanced (or a
// Put wakes it). Nothing sleeps in real time under a SimulatedClock.
//
// Thread safety: Put, outstanding() and stats() may be called from any number of threads at once.
// Poll, Flush, Start and Stop are thread-safe too (senders are serialised per shard: one
// PutRecords call at a time for a shard, calls for different shards at once). Callbacks run on
// the thread that resolved the record (the one in Put that sent a full batch, or refused the
// record at once, Poll, Flush, the worker, the destructor) without any buffer lock held, but in
// their shard's sender role: callbacks of one shard run one at a time, those of different shards
// may run at once on different threads, so a callback that shares state with others must
// synchronise. A callback may Put (such a Put only buffers: it sends nothing and never waits for
// room); Poll, Flush and Stop called from inside a callback do nothing; a callback must not throw
// or destroy the producer. The destructor must not race with any other call.
//
// Allocation: Put copies the key and data once into a buffered record (a record over 4 KiB is
// copied before the shard's lock is taken). Record slots, their strings (up to 8 MiB in all, or
// 1,024 slots per shard when there are many shards) and the tables of pending keys are reused, so
// a steady flow of small records allocates nothing per record beyond the future's shared state
// (future form) or what the caller's std::function holds. Each PutRecords call allocates its
// result vector; a retry allocates a backoff entry; a refresh of the shard map allocates new
// buffers (the old ones, emptied, are kept until the producer is destroyed).
#ifndef RILL_STREAM_PRODUCER_H_
#define RILL_STREAM_PRODUCER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rill/stream/record.h"

namespace rill {

class StreamApi;

struct ProducerOptions {
  // How long a record may wait in the buffer for others to join its batch (KPL
  // RecordMaxBufferedTime): a shard's records are sent once its oldest unsent record has waited
  // this long. Zero sends at the next Poll. InfiniteDuration() sends only full batches and on
  // Flush. Range: >= 0. Default: 100 ms.
  absl::Duration max_buffered_time = absl::Milliseconds(100);

  // Most records per PutRecords call (KPL CollectionMaxCount). A shard whose unsent records reach
  // this count is sent at once. Range: 1..500. Default: 500.
  int max_batch_records = 500;

  // Most bytes (partition keys plus data) per PutRecords call (KPL CollectionMaxSize); a record
  // larger than this goes alone. The stream's max_put_records_bytes caps it too. A shard whose
  // unsent records reach this many bytes is sent at once. Range: >= 1. Default: 5 MiB.
  size_t max_batch_bytes = size_t{5} << 20;

  // How long after its Put a record may keep being retried (KPL RecordTtl). When it passes, the
  // record fails with the "Expired:" status. InfiniteDuration() retries for ever. Range: > 0.
  // Default: 30 s.
  absl::Duration record_ttl = absl::Seconds(30);

  // Backoff before retrying a refused entry: after its n-th failed attempt a record waits a time
  // drawn uniformly from [d/2, d], d = min(max_backoff, initial_backoff * 2^(n-1)) ("equal
  // jitter"). Ranges: 0 < initial_backoff <= max_backoff, both finite. Defaults: 100 ms, 5 s.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);

  // Seed of the jitter's pseudo-random sequence (a SplitMix64 generator): the same seed and the
  // same sequence of events give the same retry times, run after run. Any value. Default: 1.
  uint64_t jitter_seed = 1;

  // Most records outstanding (buffered, in flight or waiting to retry) at once. A Put beyond it
  // waits up to max_put_wait for room, then fails with kLimitExceeded and buffers nothing, so that
  // memory stays bounded when the stream cannot keep up. Range: >= 1. Default: 1,000,000.
  size_t max_outstanding_records = 1000000;

  // How long a Put that finds max_outstanding_records outstanding waits for room, on the stream's
  // clock, before it fails with kLimitExceeded. While it waits it sends what is buffered itself
  // (as Flush does) and sleeps until the next retry is due or another thread resolves records
  // (Clock::WaitFor: under a SimulatedClock the clock moves forward instead, so the wait is
  // instant and deterministic, and ends with the clock at most max_put_wait later). Zero fails at
  // once; InfiniteDuration() waits as long as it takes. A Put inside a callback never waits.
  // Range: >= 0. Default: zero.
  absl::Duration max_put_wait = absl::ZeroDuration();
};

// Counters since the producer was created (KPL's summary metrics). Every Put ends in exactly one
// of written or failed, so user_records_put == written + failed + outstanding().
struct ProducerStats {
  int64_t user_records_put = 0;         // Put calls
  int64_t user_records_written = 0;     // resolved with a sequence number
  int64_t user_records_failed = 0;      // resolved with an error (the next two included)
  int64_t user_records_expired = 0;     // ... because their TTL passed
  int64_t user_records_refused = 0;     // ... by Put itself (oversized, or the outstanding bound)
  int64_t put_records_calls = 0;        // Stream::PutRecords calls made
  int64_t kinesis_records_sent = 0;     // entries in those calls, retries included
  int64_t kinesis_records_retried = 0;  // entries refused with a retryable code
  int64_t shard_map_refreshes = 0;      // times the shard map was re-read (a result landed in an
                                        // unexpected shard, e.g. after resharding)
};

// True for the status of a record whose TTL passed before it could be written: code
// kProvisionedThroughputExceeded and a message starting "Expired:".
bool IsRecordExpired(const absl::Status& status);

class Producer {
 public:
  using Callback = std::function<void(absl::StatusOr<PutRecordResult>)>;

  // A producer writing to `stream`. The stream is borrowed: it must outlive the producer. Reads
  // the stream's open shards to predict where keys land. Errors: kInvalidArgument for an option
  // outside its range; a ListShards error as is.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Producer>> Create(
      StreamApi& stream, ProducerOptions options = {});

  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Stops the worker if started, then Flush(): delivers what it can. Whatever is still outstanding
  // afterwards (only possible with a clock that stands still while Flush waits, see Flush) fails
  // with kInternalFailure. Every future gets a value and every callback is called exactly once
  // before it returns. With a shard that stays throttled, this can take up to record_ttl on the
  // clock (under a SimulatedClock: moved forward, at no real time).
  ~Producer();

  // Buffers a copy of the record and returns a future of its outcome. If the record completes a
  // batch's worth for its shard and no other thread is sending that shard, sends the batch (one
  // PutRecords call) before returning, and runs the callbacks it resolves; otherwise returns at
  // once. A record whose key plus data exceed the stream's max_record_bytes is refused at once
  // (kInvalidArgument), and so is a record that finds max_outstanding_records outstanding for
  // longer than max_put_wait (kLimitExceeded; with the default zero, at once): the future is then
  // ready before Put returns. The stream validates the key itself when the record is sent.
  // Thread-safe.
  std::future<absl::StatusOr<PutRecordResult>> Put(std::string_view partition_key,
                                                   std::string_view data);

  // The same, calling `callback` exactly once with the outcome: later, on a sending thread, or
  // before Put returns (on the calling thread) when the record is refused, or when this Put sent
  // it. Thread-safe.
  void Put(std::string_view partition_key, std::string_view data, Callback callback);

  // Sends everything buffered, without waiting for max_buffered_time, and keeps retrying until
  // every record Put before the call is written or has failed; records Put meanwhile are sent but
  // not waited for. Between retries it waits on the stream's clock (Clock::WaitFor) until the next
  // retry time, or until another thread resolves records: a SystemClock sleeps; a SimulatedClock
  // is moved forward to the retry time, so Flush finishes at once and deterministically, having
  // advanced the simulated time as far as the retries needed (at most record_ttl). Either way it
  // returns only when it is done. A clock that stands still while Flush waits (a Clock whose
  // WaitFor neither sleeps nor moves it) would make no progress: Flush then returns with those
  // records still outstanding, in backoff; move the clock and Poll() (or Flush() again) to finish
  // them. Thread-safe; a no-op inside a callback.
  void Flush();

  // One step, as the worker takes it: fails records whose TTL has passed; then, for every shard
  // whose oldest unsent record has waited max_buffered_time, that has a batch's worth waiting, or
  // that has retries whose backoff has passed, sends its records (in rounds, one record per key
  // per call, until it has none left that were buffered when Poll began, or is throttled). Never
  // sleeps. Deterministic under a SimulatedClock. Thread-safe; a no-op inside a callback.
  void Poll();

  // Starts a worker thread that calls Poll() whenever something may be due, sleeping on the
  // stream's clock in between (Clock::WaitUntil: until the next record is due, or until a Put when
  // none is; under a SimulatedClock, until the clock is advanced that far or a Put comes).
  // Errors: kResourceInUse if already started. Thread-safe.
  [[nodiscard]] absl::Status Start();

  // Stops and joins the worker, if running. Buffered records stay buffered (Flush or Poll sends
  // them; the destructor flushes). Start() may be called again. Thread-safe; a no-op inside a
  // callback.
  void Stop();

  // Records not yet resolved: buffered, in flight or waiting to retry. Thread-safe, cheap.
  size_t outstanding() const;

  // A copy of the counters. Thread-safe.
  ProducerStats stats() const;

  const ProducerOptions& options() const;

 private:
  struct Impl;
  explicit Producer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace rill

#endif  // RILL_STREAM_PRODUCER_H_
