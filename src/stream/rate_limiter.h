// Token buckets on a stream's Clock, with exact integer arithmetic so that a SimulatedClock test
// can predict every refusal.
//
// A bucket of rate r (tokens per second) holds at most r tokens (one second of burst) and gains
// r tokens per second continuously. Levels are kept in micro-tokens: one token is 1,000,000 units
// and one microsecond of refill adds exactly r units, so no rounding ever happens.
//
// Thread safety: every method takes the bucket's own lock.
#ifndef RILL_STREAM_RATE_LIMITER_H_
#define RILL_STREAM_RATE_LIMITER_H_

#include <algorithm>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "rill/base/internal/mutex.h"

namespace rill::internal {

inline constexpr int64_t kUnitsPerToken = 1000000;

// One token bucket. Starts full. A rate of 0 means unlimited: every call succeeds.
class TokenBucket {
 public:
  explicit TokenBucket(int64_t rate_per_second, int64_t now_us)
      : rate_(rate_per_second), level_(rate_per_second * kUnitsPerToken), last_us_(now_us) {}

  bool unlimited() const { return rate_ == 0; }

  // Takes `tokens` if the bucket holds them; otherwise takes nothing and returns false.
  bool TryTake(int64_t tokens, int64_t now_us) {
    if (unlimited()) return true;
    MutexLock lock(&mu_);
    Refill(now_us);
    const int64_t cost = tokens * kUnitsPerToken;
    if (level_ < cost) return false;
    level_ -= cost;
    return true;
  }

  // Gives back tokens taken by a call that did not happen after all.
  void Refund(int64_t tokens) {
    if (unlimited()) return;
    MutexLock lock(&mu_);
    level_ = std::min(level_ + tokens * kUnitsPerToken, rate_ * kUnitsPerToken);
  }

  // Whether the bucket holds anything (it may be in debt after Charge).
  bool HoldsAny(int64_t now_us) {
    if (unlimited()) return true;
    MutexLock lock(&mu_);
    Refill(now_us);
    return level_ > 0;
  }

  // Takes `tokens` whether or not the bucket holds them: for costs known only after the call
  // (the bytes a read returned). The debt is repaid by the refill before HoldsAny is true again.
  void Charge(int64_t tokens, int64_t now_us) {
    if (unlimited()) return;
    MutexLock lock(&mu_);
    Refill(now_us);
    level_ -= tokens * kUnitsPerToken;
  }

 private:
  void Refill(int64_t now_us) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (now_us <= last_us_) return;  // a clock set backwards refills nothing
    // Comparing with the room left before multiplying keeps elapsed * rate in range, however
    // long the bucket sat idle or deep the debt it was in.
    const int64_t cap = rate_ * kUnitsPerToken;
    const int64_t elapsed = now_us - last_us_;
    level_ = elapsed > (cap - level_) / rate_ ? cap : level_ + elapsed * rate_;
    last_us_ = now_us;
  }

  const int64_t rate_;
  Mutex mu_;
  int64_t level_ ABSL_GUARDED_BY(mu_);
  int64_t last_us_ ABSL_GUARDED_BY(mu_);
};

// A write limiter for two buckets at once (bytes and records): both must have room, and either
// both are charged or neither.
inline bool TryTakeBoth(TokenBucket& a, int64_t a_tokens, TokenBucket& b, int64_t b_tokens,
                        int64_t now_us) {
  if (!a.TryTake(a_tokens, now_us)) return false;
  if (!b.TryTake(b_tokens, now_us)) {
    a.Refund(a_tokens);
    return false;
  }
  return true;
}

// Read throughput with Kinesis' rules: the shard has a bucket of one second of read bytes, and a
// call is allowed while the bucket is not empty; the bytes a call returns are charged after it,
// so the bucket may go into debt. A single call may return up to 10 MiB, more than the bucket
// holds: then the shard refuses reads until the rate has paid for the whole call (10 MiB at
// 2 MiB/s: the next 5 seconds, as Kinesis documents).
class ReadThroughput {
 public:
  ReadThroughput(int64_t bytes_per_second, int64_t now_us)
      : rate_(bytes_per_second), bucket_(bytes_per_second, now_us) {}

  bool unlimited() const { return bucket_.unlimited(); }

  bool Allowed(int64_t now_us) {
    if (unlimited()) return true;
    {
      MutexLock lock(&mu_);
      if (now_us < busy_until_us_) return false;
    }
    return bucket_.HoldsAny(now_us);
  }

  void Charge(int64_t bytes, int64_t now_us) {
    if (unlimited() || bytes <= 0) return;
    bucket_.Charge(bytes, now_us);
    if (bytes > rate_) {
      MutexLock lock(&mu_);
      // Rounded up, so that the penalty is never shorter than the rate allows.
      busy_until_us_ = now_us + (bytes * 1000000 + rate_ - 1) / rate_;
    }
  }

 private:
  const int64_t rate_;
  TokenBucket bucket_;
  Mutex mu_;
  int64_t busy_until_us_ ABSL_GUARDED_BY(mu_) = INT64_MIN;
};

}  // namespace rill::internal

#endif  // RILL_STREAM_RATE_LIMITER_H_
