// Tutorial 5: game telemetry — three typed pipelines over one stream, in simulated time.
//
// 300 players on 10 game levels click, move and buy for 10 minutes of simulated play, at a steady
// rate of events per simulated second (10,000 by default; the first argument sets another, e.g.
// `example_05_game_telemetry 100000`). Each event carries the time it happened on the player's
// device. Devices send with a lag of up to 3 s, so events reach the stream a little out of order;
// a few phones lose their connection for a while and send what they buffered when they reconnect:
// those events arrive very late. The events go into an 8-shard rill::Stream with the player id as
// partition key (each player's events stay in order) and three pipelines read them, each through
// its own enhanced fan-out consumer:
//   purchases-per-level  purchases per level per 5-minute tumbling window of event time. The
//                        watermark trails the newest event by 5 s; a purchase up to 1 minute late
//                        updates its closed window (is_update), a later one goes to the late side
//                        output — nothing is dropped silently;
//   leaderboard          each player's score over the last 5 minutes, every minute (hopping
//                        windows), printed as each window closes;
//   cheat-detector       each player's score per 10 s with EmitMode::kOnUpdate: the record that
//                        takes a player over the threshold raises the flag at once, not when the
//                        window closes. Two cheaters are injected: a memory hack (one huge jump)
//                        and an aimbot (every click scores far too much).
// One thread, one rill::SimulatedClock shared by the stream and the pipelines: the output is the
// same on every run (except the real-time figures). At the end the example checks every result
// against the generated data and exits with 1 if anything disagrees.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "rill/process/aggregators.h"
#include "rill/process/pipeline.h"
#include "rill/process/source.h"
#include "rill/rill.h"

namespace {

constexpr int kPlayers = 300;
constexpr int kLevels = 10;
constexpr int kShards = 8;
constexpr int64_t kDefaultEventsPerSecond = 10'000;
const absl::Duration kPlayTime = absl::Minutes(10);
// The producer's step, and how often the pipelines are polled.
const absl::Duration kTick = absl::Milliseconds(10);
constexpr int kTicksPerPoll = 10;
constexpr int kTicksPerTrim = 100;  // Stream::Tick() (retention) every simulated second

// Event time: the watermark trails the newest event by kOutOfOrderness (devices lag up to
// kMaxLag); purchases accept kAllowedLateness more.
const absl::Duration kMaxLag = absl::Seconds(3);
const absl::Duration kOutOfOrderness = absl::Seconds(5);
const absl::Duration kAllowedLateness = absl::Minutes(1);
const absl::Duration kPurchaseWindow = absl::Minutes(5);

// Connection trouble: "tunnel" phones are offline for 7 minutes (their purchases from before
// 05:00 arrive after their window expired: late side output); "flaky" ones for 40 s across
// 05:00 (their purchases from 04:40-05:00 arrive within the allowed lateness: updates).
const std::set<int64_t> kTunnelPlayers = {7, 8};
const std::set<int64_t> kFlakyPlayers = {11, 12, 13};
// The cheaters: a memory hack (one click worth 5 thresholds at 03:12.4) and an aimbot (clicks
// worth 50 times the usual from 06:30 to 07:00).
constexpr int64_t kMemoryHacker = 42;
constexpr int64_t kAimbotUser = 137;
constexpr int kGarbageRecords = 3;  // from an old client version, at 02:00

enum class Kind : uint8_t { kMove = 0, kClick = 1, kPurchase = 2 };

struct GameEvent {
  int64_t player = 0;
  int64_t level = 0;
  Kind kind = Kind::kMove;
  int64_t score = 0;         // points gained (clicks)
  int64_t amount_cents = 0;  // price (purchases)
  absl::Time time;           // when it happened, on the player's device
};

// The wire format, 24 bytes little-endian: u32 player, u8 level, u8 kind, u16 format (1),
// i32 score, u32 amount in cents, i64 event time in Unix microseconds.
constexpr size_t kWireBytes = 24;
constexpr uint64_t kWireFormat = 1;

void PutLittleEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t GetLittleEndian(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(in[at + i]);
  return v;
}

void Encode(const GameEvent& e, std::string* out) {
  out->clear();
  PutLittleEndian(out, static_cast<uint64_t>(e.player), 4);
  PutLittleEndian(out, static_cast<uint64_t>(e.level), 1);
  PutLittleEndian(out, static_cast<uint64_t>(e.kind), 1);
  PutLittleEndian(out, kWireFormat, 2);
  PutLittleEndian(out, static_cast<uint32_t>(static_cast<int32_t>(e.score)), 4);
  PutLittleEndian(out, static_cast<uint64_t>(e.amount_cents), 4);
  PutLittleEndian(out, static_cast<uint64_t>(absl::ToUnixMicros(e.time)), 8);
}

// nullopt for anything that is not a well-formed event: the pipelines count it as undecodable.
std::optional<GameEvent> Decode(const rill::Record& r) {
  const std::string_view d = r.data;
  if (d.size() != kWireBytes || GetLittleEndian(d, 6, 2) != kWireFormat) return std::nullopt;
  GameEvent e;
  e.player = static_cast<int64_t>(GetLittleEndian(d, 0, 4));
  e.level = static_cast<int64_t>(GetLittleEndian(d, 4, 1));
  const uint64_t kind = GetLittleEndian(d, 5, 1);
  if (kind > 2 || e.level < 1 || e.level > kLevels || e.player >= kPlayers) return std::nullopt;
  e.kind = static_cast<Kind>(kind);
  e.score = static_cast<int32_t>(static_cast<uint32_t>(GetLittleEndian(d, 8, 4)));
  e.amount_cents = static_cast<int64_t>(GetLittleEndian(d, 12, 4));
  e.time = absl::FromUnixMicros(static_cast<int64_t>(GetLittleEndian(d, 16, 8)));
  return e;
}

// SplitMix64: a small deterministic generator, the same sequence on every platform.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int64_t Uniform(int64_t n) { return static_cast<int64_t>(Next() % static_cast<uint64_t>(n)); }

 private:
  uint64_t state_;
};

const absl::Time kStart = rill::SimulatedClock::DefaultStart();  // 00:00, a 5-minute boundary

// "mm:ss.mmm" since the start of play.
std::string Since(absl::Time t) {
  const int64_t ms = absl::ToInt64Milliseconds(t - kStart);
  return absl::StrFormat("%02d:%02d.%03d", ms / 60000, ms / 1000 % 60, ms % 1000);
}
// "mm:ss" since the start of play.
std::string Minute(absl::Time t) {
  const int64_t s = absl::ToInt64Seconds(t - kStart);
  return absl::StrFormat("%02d:%02d", s / 60, s % 60);
}

std::string Num(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return v < 0 ? "-" + s : s;
}

// The game: generates events, holds them on the devices until they are sent, and keeps the
// truth every pipeline result is checked against.
class Game {
 public:
  explicit Game(int64_t events_per_second)
      : events_per_second_(events_per_second), random_(20240101) {
    for (int64_t id = 0; id < kPlayers; ++id) {
      Player p;
      p.level = 1 + random_.Uniform(3);
      p.next_level_up = kStart + absl::Seconds(40 + random_.Uniform(80));
      p.lag = id % 10 == 3 ? kMaxLag - absl::Milliseconds(1 + random_.Uniform(1000))  // mobile
                           : absl::Milliseconds(20 + random_.Uniform(380));
      if (kTunnelPlayers.contains(id)) {
        p.offline_from = kStart + absl::Minutes(1);
        p.offline_until = kStart + absl::Minutes(8);
      } else if (kFlakyPlayers.contains(id)) {
        p.offline_from = kStart + absl::Seconds(280);
        p.offline_until = kStart + absl::Seconds(320);
      }
      players_.push_back(p);
      keys_.push_back("player-" + std::to_string(id));
    }
    // A 10 s window normally gains about this many points per player; the threshold is 4 times
    // that (rounded up to a thousand), so an honest player never reaches it.
    const double clicks_per_second =
        static_cast<double>(events_per_second_) * kClickShare / kPlayers;
    const auto usual = static_cast<int64_t>(clicks_per_second * kMeanClickPoints * 10);
    threshold_ = (4 * usual + 999) / 1000 * 1000;
  }

  int64_t cheat_threshold() const { return threshold_; }

  // Generates the events that happen in [from, to) and holds each on its device until it is
  // sent (its event time plus the device's lag, or the reconnection for an offline device).
  void Generate(absl::Time from, absl::Time to) {
    const int64_t from_us = absl::ToUnixMicros(from);
    const int64_t span_us = absl::ToUnixMicros(to) - from_us;
    const int64_t n = events_per_second_ * span_us / 1'000'000;
    for (int64_t i = 0; i < n; ++i) {
      GameEvent e;
      e.time = absl::FromUnixMicros(from_us + span_us * i / n);
      e.player = random_.Uniform(kPlayers);
      Player& p = players_[static_cast<size_t>(e.player)];
      while (e.time >= p.next_level_up) {
        p.level = std::min<int64_t>(p.level + 1, kLevels);
        p.next_level_up += absl::Seconds(40 + random_.Uniform(80));
      }
      e.level = p.level;
      const int64_t roll = random_.Uniform(1000);
      if (roll < 10) {
        e.kind = Kind::kPurchase;
        e.amount_cents = 99 + 100 * random_.Uniform(20);
      } else if (roll < 10 + static_cast<int64_t>(kClickShare * 1000)) {
        e.kind = Kind::kClick;
        e.score = 1 + random_.Uniform(20);
        Cheat(&e);
      }
      absl::Time send = e.time + p.lag;
      if (p.offline_from <= e.time && e.time < p.offline_until) send = p.offline_until + p.lag;
      Account(e, send);
      // Into the bucket of the first tick at or after `send`. A player's later event is never
      // sent earlier, and a bucket keeps the order of generation: each player's events reach
      // the stream in the order they happened.
      const size_t tick = TickAtOrAfter(send);
      if (tick >= outbox_.size()) outbox_.resize(tick + 1);
      outbox_[tick].push_back(e);
      ++unsent_;
    }
  }

  // Puts every event sent by `now` into the stream (PutRecords, up to 500 per call; a player's
  // events go in the order they happened). At 02:00 an old client also sends a few records in a
  // format the pipelines cannot decode.
  absl::Status Send(rill::Stream& stream, absl::Time now) {
    size_t n = 0;
    auto flush = [&]() -> absl::Status {
      if (n == 0) return absl::OkStatus();
      absl::StatusOr<rill::PutRecordsResult> put =
          stream.PutRecords(absl::MakeConstSpan(batch_.data(), n));
      n = 0;
      if (!put.ok()) return put.status();
      if (put->failed_record_count != 0) {
        for (const rill::PutRecordsResultEntry& r : put->entries) {
          if (!r.ok()) return absl::InternalError("PutRecords entry failed: " + r.error_message);
        }
      }
      return absl::OkStatus();
    };
    batch_.resize(rill::kMaxPutRecordsEntries);
    if (!sent_garbage_ && now >= kStart + absl::Minutes(2)) {
      sent_garbage_ = true;
      for (int i = 0; i < kGarbageRecords; ++i) {
        batch_[n].partition_key = keys_[9];
        batch_[n++].data = R"({"v":0,"event":"click","x":17})";
      }
    }
    const size_t now_tick = TickAtOrAfter(now);
    for (; next_tick_ <= now_tick && next_tick_ < outbox_.size(); ++next_tick_) {
      for (const GameEvent& e : outbox_[next_tick_]) {
        batch_[n].partition_key = keys_[static_cast<size_t>(e.player)];
        Encode(e, &batch_[n++].data);
        if (n == batch_.size()) {
          if (absl::Status s = flush(); !s.ok()) return s;
        }
      }
      unsent_ -= outbox_[next_tick_].size();
      std::vector<GameEvent>().swap(outbox_[next_tick_]);
    }
    return flush();
  }

  bool all_sent() const { return unsent_ == 0; }

  // The truth.
  struct PurchaseTruth {
    std::map<std::pair<int64_t, absl::Time>, uint64_t> on_time;  // (level, window start)
    uint64_t produced = 0;
    uint64_t updates = 0;  // arrive after their window closed, within the allowed lateness
    uint64_t late = 0;     // arrive after their window expired
  };
  const PurchaseTruth& purchases() const { return purchases_; }
  uint64_t events() const { return events_; }
  uint64_t clicks() const { return clicks_; }
  uint64_t moves() const { return events_ - clicks_ - purchases_.produced; }
  // Each player's score in [05:00, 10:00), the last full leaderboard window.
  const std::map<int64_t, int64_t>& last_window_scores() const { return last_window_scores_; }
  // When each cheat began (event time).
  const std::map<int64_t, absl::Time>& cheats() const { return cheats_; }

 private:
  static constexpr double kClickShare = 0.34;
  static constexpr double kMeanClickPoints = 10.5;

  struct Player {
    int64_t level = 1;
    absl::Time next_level_up;
    absl::Duration lag;
    absl::Time offline_from = absl::InfiniteFuture();
    absl::Time offline_until = absl::InfiniteFuture();
  };

  // The index of the first tick boundary at or after t (in whole microseconds).
  static size_t TickAtOrAfter(absl::Time t) {
    const int64_t tick_us = absl::ToInt64Microseconds(kTick);
    return static_cast<size_t>((absl::ToUnixMicros(t) - absl::ToUnixMicros(kStart) + tick_us - 1) /
                               tick_us);
  }

  void Cheat(GameEvent* e) {
    const absl::Time hack = kStart + absl::Seconds(192) + absl::Milliseconds(400);
    if (e->player == kMemoryHacker && e->time >= hack && !cheats_.contains(kMemoryHacker)) {
      e->score = 5 * threshold_;
      cheats_[kMemoryHacker] = e->time;
    }
    if (e->player == kAimbotUser && e->time >= kStart + absl::Seconds(390) &&
        e->time < kStart + absl::Seconds(420)) {
      e->score *= 50;
      cheats_.try_emplace(kAimbotUser, e->time);
    }
  }

  // What each pipeline should find. A purchase's fate depends on when it reaches the stream
  // relative to its window's end: within kOutOfOrderness it is on time (the watermark trails the
  // newest event by that much); by then plus kAllowedLateness it updates the closed window;
  // later it is late. (The offline periods are chosen far from these boundaries.)
  void Account(const GameEvent& e, absl::Time send) {
    ++events_;
    if (e.kind == Kind::kClick) {
      ++clicks_;
      if (e.time >= kStart + absl::Minutes(5)) last_window_scores_[e.player] += e.score;
    }
    if (e.kind != Kind::kPurchase) return;
    ++purchases_.produced;
    const rill::WindowBounds w = rill::TumblingWindow(kPurchaseWindow).WindowOf(e.time);
    if (send - w.end >= kOutOfOrderness + kAllowedLateness) {
      ++purchases_.late;
      return;
    }
    if (send - w.end >= kOutOfOrderness) ++purchases_.updates;
    ++purchases_.on_time[{e.level, w.start}];
  }

  const int64_t events_per_second_;
  Random random_;
  std::vector<Player> players_;
  std::vector<std::string> keys_;
  int64_t threshold_ = 0;
  std::vector<std::vector<GameEvent>> outbox_;  // events held on the devices, by send tick
  size_t next_tick_ = 0;                        // the first bucket not sent yet
  uint64_t unsent_ = 0;
  std::vector<rill::PutRecordsEntry> batch_;
  bool sent_garbage_ = false;
  uint64_t events_ = 0;
  uint64_t clicks_ = 0;
  PurchaseTruth purchases_;
  std::map<int64_t, int64_t> last_window_scores_;
  std::map<int64_t, absl::Time> cheats_;
};

// Polls a pipeline until it has read everything available now.
template <typename Pipeline>
absl::Status Drain(Pipeline& p) {
  while (true) {
    absl::StatusOr<size_t> n = p.Poll();
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::OkStatus();
  }
}

// A pipeline's figures, taken at the end of play (before Finish closes every window).
struct Figures {
  size_t live_keys = 0;
  double bytes_per_key = 0;
  size_t snapshot_bytes = 0;
};
template <typename Pipeline>
Figures Measure(Pipeline& p) {
  return {p.live_keys(), p.state_bytes_per_live_key(), p.Snapshot().size()};
}

int Fail(const char* what, const absl::Status& s) {
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t events_per_second = kDefaultEventsPerSecond;
  // Below 10,000 events/s too few purchases fall into the connection troubles to check them;
  // 100,000 takes about 40 s.
  if (argc > 1 && (!absl::SimpleAtoi(argv[1], &events_per_second) || events_per_second < 10'000 ||
                   events_per_second > 1'000'000)) {
    std::fprintf(stderr, "usage: %s [events per simulated second, 10000..1000000]\n", argv[0]);
    return 2;
  }

  auto clock = std::make_shared<rill::SimulatedClock>(kStart);
  rill::StreamOptions options;
  options.name = "game-telemetry";
  options.shard_count = kShards;
  options.clock = clock;
  // A simulation's shortcut: the stream keeps 2 minutes of records instead of 24 hours, and
  // Tick() trims it every simulated second, so memory stays bounded (the pipelines read every
  // record within 100 ms of its arrival).
  options.allow_short_retention = true;
  options.retention = absl::Minutes(2);
  absl::StatusOr<std::unique_ptr<rill::Stream>> created = rill::Stream::Create(options);
  if (!created.ok()) return Fail("create the stream", created.status());
  rill::Stream& stream = **created;
  auto fan_out = [&stream](const char* consumer) -> absl::StatusOr<rill::StreamSubscriberOptions> {
    if (absl::StatusOr<rill::ConsumerDescription> c = stream.RegisterStreamConsumer(consumer);
        !c.ok()) {
      return c.status();
    }
    rill::StreamSubscriberOptions o;
    o.consumer_name = consumer;
    o.initial_position = rill::StartingPosition::TrimHorizon();
    return o;
  };
  absl::StatusOr<rill::StreamSubscriberOptions> purchases_consumer = fan_out("purchases-per-level");
  absl::StatusOr<rill::StreamSubscriberOptions> leaderboard_consumer = fan_out("leaderboard");
  absl::StatusOr<rill::StreamSubscriberOptions> cheat_consumer = fan_out("cheat-detector");
  if (!purchases_consumer.ok()) return Fail("register", purchases_consumer.status());
  if (!leaderboard_consumer.ok()) return Fail("register", leaderboard_consumer.status());
  if (!cheat_consumer.ok()) return Fail("register", cheat_consumer.status());

  Game game(events_per_second);
  const rill::WatermarkOptions watermark{.max_out_of_orderness = kOutOfOrderness,
                                         .idle_timeout = absl::Seconds(30)};

  // 1. Purchases per level per 5 minutes. Results are upserted by (level, window): a late
  //    purchase within the allowed lateness re-emits its window with is_update = true.
  std::map<std::pair<int64_t, absl::Time>, uint64_t> purchase_table;
  uint64_t purchase_updates = 0;
  auto built_purchases =
      rill::Pipeline<GameEvent>::From(
          rill::FromSubscription<GameEvent>(stream, *purchases_consumer, Decode), clock)
          .Filter([](const GameEvent& e) { return e.kind == Kind::kPurchase; })
          .KeyBy([](const GameEvent& e) { return e.level; })
          .Window(rill::TumblingWindow(kPurchaseWindow))
          .EventTime([](const GameEvent& e) { return e.time; })
          .Watermark(watermark)
          .AllowedLateness(kAllowedLateness)
          .Aggregate(rill::Count())
          .To([&](const rill::WindowResult<int64_t, uint64_t>& r) {
            purchase_table[{r.key, r.start}] = r.value;
            if (r.is_update) ++purchase_updates;
          });
  if (!built_purchases.ok()) return Fail("build", built_purchases.status());
  auto& purchases = *built_purchases;

  // 2. The leaderboard: score per player over the last 5 minutes, every minute. A window's
  //    results all come in one watermark step; they are printed after the Poll that brought them.
  std::map<absl::Time, std::vector<std::pair<int64_t, int64_t>>> boards;  // by window end
  auto built_leaderboard =
      rill::Pipeline<GameEvent>::From(
          rill::FromSubscription<GameEvent>(stream, *leaderboard_consumer, Decode), clock)
          .Filter([](const GameEvent& e) { return e.kind == Kind::kClick; })
          .KeyBy([](const GameEvent& e) { return e.player; })
          .Window(rill::HoppingWindow(absl::Minutes(5), absl::Minutes(1)))
          .EventTime([](const GameEvent& e) { return e.time; })
          .Watermark(watermark)
          .Aggregate(rill::Sum<int64_t>(), [](const GameEvent& e) { return e.score; })
          .To([&](const rill::WindowResult<int64_t, int64_t>& r) {
            boards[r.end].emplace_back(r.key, r.value);
          });
  if (!built_leaderboard.ok()) return Fail("build", built_leaderboard.status());
  auto& leaderboard = *built_leaderboard;

  // 3. The cheat detector: score per player per 10 s, every update; the first result over the
  //    threshold flags the player, at the simulated time the offending record is processed.
  struct Flag {
    absl::Time at;  // processing time (the simulated clock)
    rill::WindowBounds window;
    int64_t points;
  };
  std::map<int64_t, Flag> flagged;
  const int64_t threshold = game.cheat_threshold();
  auto built_cheat_detector =
      rill::Pipeline<GameEvent>::From(
          rill::FromSubscription<GameEvent>(stream, *cheat_consumer, Decode), clock)
          .Filter([](const GameEvent& e) { return e.kind == Kind::kClick; })
          .KeyBy([](const GameEvent& e) { return e.player; })
          .Window(rill::TumblingWindow(absl::Seconds(10)))
          .EventTime([](const GameEvent& e) { return e.time; })
          .Watermark(watermark)
          .Emit(rill::EmitMode::kOnUpdate)
          .Aggregate(rill::Sum<int64_t>(), [](const GameEvent& e) { return e.score; })
          .To([&](const rill::WindowResult<int64_t, int64_t>& r) {
            if (r.value <= threshold || flagged.contains(r.key)) return;
            flagged[r.key] = Flag{clock->Now(), {r.start, r.end}, r.value};
            std::printf("[%s] CHEAT  player-%lld gained %s points in [%s, %s), over %s\n",
                        Since(clock->Now()).c_str(), static_cast<long long>(r.key),
                        Num(r.value).c_str(), Since(r.start).c_str(), Since(r.end).c_str(),
                        Num(threshold).c_str());
          });
  if (!built_cheat_detector.ok()) return Fail("build", built_cheat_detector.status());
  auto& cheat_detector = *built_cheat_detector;

  const absl::Time end_of_play = kStart + kPlayTime;
  std::vector<std::pair<int64_t, int64_t>> last_board;  // [05:00, 10:00)
  auto print_boards = [&] {
    for (auto& [end, scores] : boards) {
      std::sort(scores.begin(), scores.end(), [](const auto& a, const auto& b) {
        return a.second != b.second ? a.second > b.second : a.first < b.first;
      });
      // Windows ending after the end of play are partial (Finish closes them): not shown.
      if (end > end_of_play) continue;
      std::string line;
      for (size_t i = 0; i < std::min<size_t>(3, scores.size()); ++i) {
        line +=
            absl::StrFormat("  %zu. player-%-3d %9s%s", i + 1, scores[i].first,
                            Num(scores[i].second), flagged.contains(scores[i].first) ? "*" : "");
      }
      std::printf("[%s] TOP 3 of the 5 minutes to %s:%s\n", Since(clock->Now()).c_str(),
                  Minute(end).c_str(), line.c_str());
      if (end == end_of_play) last_board = scores;
    }
    boards.clear();
  };
  auto poll_all = [&]() -> absl::Status {
    if (absl::Status s = Drain(purchases); !s.ok()) return s;
    if (absl::Status s = Drain(leaderboard); !s.ok()) return s;
    if (absl::Status s = Drain(cheat_detector); !s.ok()) return s;
    print_boards();
    return absl::OkStatus();
  };

  std::printf(
      "%d players on %d levels, %s events per simulated second for %lld simulated minutes, into "
      "%d shards; cheat threshold %s points per 10 s (* = flagged)\n",
      kPlayers, kLevels, Num(events_per_second).c_str(),
      static_cast<long long>(absl::ToInt64Minutes(kPlayTime)), kShards, Num(threshold).c_str());
  const auto real_start = std::chrono::steady_clock::now();
  int ticks = 0;
  for (absl::Time t = kStart; !(t >= end_of_play && game.all_sent()); t += kTick) {
    if (t < end_of_play) game.Generate(t, t + kTick);
    clock->Advance(kTick);
    if (absl::Status s = game.Send(stream, clock->Now()); !s.ok()) return Fail("put", s);
    if (ticks % kTicksPerTrim == 0) stream.Tick();
    if (++ticks % kTicksPerPoll == 0) {
      if (absl::Status s = poll_all(); !s.ok()) return Fail("poll", s);
    }
  }
  if (absl::Status s = poll_all(); !s.ok()) return Fail("poll", s);
  const Figures figures[] = {Measure(purchases), Measure(leaderboard), Measure(cheat_detector)};
  // Every event was sent: close the windows still open.
  if (absl::Status s = purchases.Finish(); !s.ok()) return Fail("finish", s);
  if (absl::Status s = leaderboard.Finish(); !s.ok()) return Fail("finish", s);
  if (absl::Status s = cheat_detector.Finish(); !s.ok()) return Fail("finish", s);
  print_boards();
  const double real_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - real_start).count();

  // --- Summary ---
  const Game::PurchaseTruth& truth = game.purchases();
  const double simulated_seconds = absl::ToDoubleSeconds(kPlayTime);
  std::printf("\nevents produced   %s (%s moves, %s clicks, %s purchases) + %d undecodable\n",
              Num(static_cast<int64_t>(game.events())).c_str(),
              Num(static_cast<int64_t>(game.moves())).c_str(),
              Num(static_cast<int64_t>(game.clicks())).c_str(),
              Num(static_cast<int64_t>(truth.produced)).c_str(), kGarbageRecords);
  std::printf(
      "rate              %s events/s simulated; %s events/s real (%.2f s, %.0fx faster "
      "than the game)\n",
      Num(static_cast<int64_t>(static_cast<double>(game.events()) / simulated_seconds)).c_str(),
      Num(static_cast<int64_t>(static_cast<double>(game.events()) / real_seconds)).c_str(),
      real_seconds, simulated_seconds / real_seconds);
  std::printf("\n%-20s %11s %10s %8s %12s %10s %11s %10s\n", "pipeline", "records in", "results",
              "late", "undecodable", "live keys", "state B/key", "snapshot");
  auto row = [](const char* name, auto& p, const Figures& f) {
    std::printf("%-20s %11s %10s %8s %12s %10zu %11.0f %10s\n", name,
                Num(static_cast<int64_t>(p.records_in())).c_str(),
                Num(static_cast<int64_t>(p.results_out())).c_str(),
                Num(static_cast<int64_t>(p.late_records())).c_str(),
                Num(static_cast<int64_t>(p.undecodable_records())).c_str(), f.live_keys,
                f.bytes_per_key, (Num(static_cast<int64_t>(f.snapshot_bytes)) + " B").c_str());
  };
  row("purchases-per-level", purchases, figures[0]);
  row("leaderboard", leaderboard, figures[1]);
  row("cheat-detector", cheat_detector, figures[2]);
  std::printf("(live keys, state and snapshot size at the end of play, before Finish)\n");

  std::printf("\npurchases per level, 5-minute windows (final, late updates included):\n");
  std::set<absl::Time> windows;
  for (const auto& [key, n] : purchase_table) windows.insert(key.second);
  std::printf("  level");
  for (absl::Time w : windows)
    std::printf("  [%s, %s)", Minute(w).c_str(), Minute(w + kPurchaseWindow).c_str());
  std::printf("\n");
  uint64_t counted = 0;
  for (int64_t level = 1; level <= kLevels; ++level) {
    std::printf("  %5lld", static_cast<long long>(level));
    for (absl::Time w : windows) {
      auto it = purchase_table.find({level, w});
      const uint64_t n = it == purchase_table.end() ? 0 : it->second;
      counted += n;
      std::printf("  %14s", Num(static_cast<int64_t>(n)).c_str());
    }
    std::printf("\n");
  }
  std::set<int64_t> late_players;
  for (const auto& late : purchases.LateRecords()) late_players.insert(late.value.player);
  std::string late_from;
  for (int64_t p : late_players) late_from += " player-" + std::to_string(p);
  std::printf(
      "  %s purchases counted; %s arrived after their window closed but within the "
      "allowed lateness (updates); %s arrived too late (side output, from%s)\n",
      Num(static_cast<int64_t>(counted)).c_str(),
      Num(static_cast<int64_t>(purchase_updates)).c_str(),
      Num(static_cast<int64_t>(purchases.LateRecords().size())).c_str(), late_from.c_str());

  std::printf("\nleaderboard, top 5 of [05:00, 10:00):\n");
  for (size_t i = 0; i < std::min<size_t>(5, last_board.size()); ++i) {
    std::printf("  %zu. player-%-3lld %10s%s\n", i + 1, static_cast<long long>(last_board[i].first),
                Num(last_board[i].second).c_str(),
                flagged.contains(last_board[i].first) ? "  (flagged as a cheater)" : "");
  }

  std::printf("\ncheaters flagged:\n");
  for (const auto& [player, flag] : flagged) {
    auto began = game.cheats().find(player);
    std::printf("  player-%lld: %s points in [%s, %s); flagged at %s",
                static_cast<long long>(player), Num(flag.points).c_str(),
                Since(flag.window.start).c_str(), Since(flag.window.end).c_str(),
                Since(flag.at).c_str());
    if (began != game.cheats().end()) {
      std::printf(", %.3f s after the cheat began (%s)\n",
                  absl::ToDoubleSeconds(flag.at - began->second), Since(began->second).c_str());
    } else {
      std::printf(" -- but this player never cheated\n");
    }
  }

  // --- Checks against the generated data ---
  std::vector<std::string> errors;
  auto check = [&errors](bool ok, std::string what) {
    if (!ok) errors.push_back(std::move(what));
  };
  std::map<std::pair<int64_t, absl::Time>, uint64_t> table_nonzero;
  for (const auto& [k, n] : purchase_table) {
    if (n != 0) table_nonzero[k] = n;
  }
  check(table_nonzero == truth.on_time, "purchases per level and window differ from the data");
  check(counted + purchases.LateRecords().size() == truth.produced,
        "purchases counted plus late ones != purchases produced");
  check(purchases.LateRecords().size() == truth.late && purchases.late_records() == truth.late,
        "late purchases: " + std::to_string(purchases.late_records()) + ", expected " +
            std::to_string(truth.late));
  check(purchase_updates == truth.updates, "purchase updates: " + std::to_string(purchase_updates) +
                                               ", expected " + std::to_string(truth.updates));
  check(truth.late > 0 && truth.updates > 0, "the scenario should have late purchases and updates");
  for (int64_t p : late_players) {
    check(kTunnelPlayers.contains(p), "a late purchase from player " + std::to_string(p));
  }
  check(purchases.records_in() == game.events() && leaderboard.records_in() == game.events() &&
            cheat_detector.records_in() == game.events(),
        "a pipeline did not read every event");
  check(purchases.undecodable_records() == kGarbageRecords &&
            leaderboard.undecodable_records() == kGarbageRecords &&
            cheat_detector.undecodable_records() == kGarbageRecords,
        "undecodable records miscounted");
  std::map<int64_t, int64_t> board_scores(last_board.begin(), last_board.end());
  check(board_scores == game.last_window_scores(), "the last leaderboard differs from the data");
  std::set<int64_t> flagged_players, cheaters;
  for (const auto& [player, flag] : flagged) flagged_players.insert(player);
  for (const auto& [player, began] : game.cheats()) {
    cheaters.insert(player);
    auto f = flagged.find(player);
    check(f != flagged.end() && f->second.at - began < absl::Seconds(5),
          "player " + std::to_string(player) + " was not flagged within 5 s");
  }
  check(flagged_players == cheaters && cheaters.size() == 2, "flagged players != cheaters");

  if (!errors.empty()) {
    for (const std::string& e : errors) std::fprintf(stderr, "CHECK FAILED: %s\n", e.c_str());
    return 1;
  }
  std::printf(
      "\nchecked against the generated data: every count, late record, leaderboard score "
      "and flag is right\n");
  return 0;
}
