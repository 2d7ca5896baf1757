// Tutorial 6: card fraud detection, with a user aggregator whose state lives in the windows.
//
// Card payments (card id, amount, the merchant's latitude and longitude, the time of payment)
// flow into a 4-shard rill::Stream, keyed by card, for six simulated hours. Payment terminals send
// with a delay of up to 45 s, so a card's payments may reach the stream out of order. Two
// pipelines watch them:
//   impossible-travel  one session window per card (a card's payments less than 4 hours apart)
//                      aggregated by TravelCheck, a user aggregator (rill::Aggregator: Init, Add,
//                      Merge, Finish, Encode, Decode) that keeps the session's payments sorted by
//                      time and finds the fastest leg between consecutive ones. With
//                      EmitMode::kOnUpdate the payment that completes a leg faster than 900 km/h
//                      flags the card at once — whichever of the two arrives last. It reads the
//                      stream through a consumer group; half-way it takes a snapshot, commits,
//                      and crashes; a second worker restores the snapshot, and a fraud that began
//                      before the crash is caught after it, from the restored window state;
//   card-bursts        payments per card in 1-minute windows sliding by 10 s (hopping), also
//                      kOnUpdate: more than 5 flags the card on the 6th payment. It reads through
//                      an enhanced fan-out consumer.
// Known frauds are injected (three cloned cards, two card-testing bursts) with near misses that
// must not be flagged (a flight at 850 km/h, five payments in a minute) among 2,000 clean cards,
// 40 of which fly to another city. The example exits with 1 unless exactly the frauds are
// flagged. One thread and one rill::SimulatedClock: the output is the same on every run.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "rill/process/aggregators.h"
#include "rill/process/pipeline.h"
#include "rill/process/source.h"
#include "rill/rill.h"

namespace {

constexpr int kCleanCards = 2000;
constexpr int kTravellers = 40;  // clean cards whose holders fly somewhere
constexpr int kShards = 4;
const absl::Time kStart = rill::SimulatedClock::DefaultStart() + absl::Hours(8);  // 08:00
const absl::Time kEnd = kStart + absl::Hours(6);                                  // 14:00
const absl::Time kSnapshotAt = kStart + absl::Hours(3);                           // 11:00
const absl::Time kCrashAt = kSnapshotAt + absl::Seconds(30);
const absl::Duration kTick = absl::Seconds(1);
constexpr int kTicksPerPoll = 5;

constexpr double kMaxKmh = 900;    // faster than an airliner: impossible
constexpr double kMinLegKm = 100;  // closer payments are one metro area: never compared
const absl::Duration kSessionGap = absl::Hours(4);
constexpr uint64_t kBurstLimit = 5;  // payments per card per minute

// --- The data ---

struct Transaction {
  int64_t card = 0;
  int64_t amount_cents = 0;
  double lat = 0;  // the merchant's location, degrees
  double lon = 0;
  absl::Time time;  // when the card was used
};

// "card,amount_cents,lat,lon,unix_micros".
std::string Encode(const Transaction& t) {
  return absl::StrFormat("%d,%d,%.5f,%.5f,%d", t.card, t.amount_cents, t.lat, t.lon,
                         absl::ToUnixMicros(t.time));
}

std::optional<Transaction> Decode(const rill::Record& r) {
  // (This Abseil's string_view may be its own type, not std::string_view.)
  const std::vector<absl::string_view> f =
      absl::StrSplit(absl::string_view(r.data.data(), r.data.size()), ',');
  Transaction t;
  int64_t micros;
  if (f.size() != 5 || !absl::SimpleAtoi(f[0], &t.card) ||
      !absl::SimpleAtoi(f[1], &t.amount_cents) || !absl::SimpleAtod(f[2], &t.lat) ||
      !absl::SimpleAtod(f[3], &t.lon) || !absl::SimpleAtoi(f[4], &micros) ||
      !(std::abs(t.lat) <= 90) || !(std::abs(t.lon) <= 180)) {
    return std::nullopt;
  }
  t.time = absl::FromUnixMicros(micros);
  return t;
}

struct City {
  const char* name;
  double lat;
  double lon;
};
constexpr City kCities[] = {
    {"London", 51.5074, -0.1278},        {"Paris", 48.8566, 2.3522},
    {"Madrid", 40.4168, -3.7038},        {"Berlin", 52.5200, 13.4050},
    {"Rome", 41.9028, 12.4964},          {"Stockholm", 59.3293, 18.0686},
    {"Istanbul", 41.0082, 28.9784},      {"Cairo", 30.0444, 31.2357},
    {"Dubai", 25.2048, 55.2708},         {"Mumbai", 19.0760, 72.8777},
    {"Singapore", 1.3521, 103.8198},     {"Hong Kong", 22.3193, 114.1694},
    {"Seoul", 37.5665, 126.9780},        {"Tokyo", 35.6762, 139.6503},
    {"Sydney", -33.8688, 151.2093},      {"Johannesburg", -26.2041, 28.0473},
    {"Sao Paulo", -23.5505, -46.6333},   {"Mexico City", 19.4326, -99.1332},
    {"Los Angeles", 34.0522, -118.2437}, {"Chicago", 41.8781, -87.6298},
    {"Toronto", 43.6532, -79.3832},      {"New York", 40.7128, -74.0060},
};
constexpr int kCityCount = static_cast<int>(std::size(kCities));
const City& CityNamed(std::string_view name) {
  for (const City& c : kCities) {
    if (name == c.name) return c;
  }
  return kCities[0];
}

// Great-circle distance (haversine), km.
double DistanceKm(double lat1, double lon1, double lat2, double lon2) {
  constexpr double kEarthRadiusKm = 6371.0;
  constexpr double kRad = 3.14159265358979323846 / 180;
  const double dlat = (lat2 - lat1) * kRad, dlon = (lon2 - lon1) * kRad;
  const double a =
      std::sin(dlat / 2) * std::sin(dlat / 2) +
      std::cos(lat1 * kRad) * std::cos(lat2 * kRad) * std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * kEarthRadiusKm * std::asin(std::min(1.0, std::sqrt(a)));
}

const char* NearestCity(double lat, double lon) {
  const City* best = &kCities[0];
  for (const City& c : kCities) {
    if (DistanceKm(lat, lon, c.lat, c.lon) < DistanceKm(lat, lon, best->lat, best->lon)) best = &c;
  }
  return best->name;
}

// --- The user aggregator ---

// Where and when a card was used.
struct Sighting {
  absl::Time time;
  double lat = 0;
  double lon = 0;
};
bool Earlier(const Sighting& a, const Sighting& b) {
  return std::tie(a.time, a.lat, a.lon) < std::tie(b.time, b.lat, b.lon);
}

// Two consecutive sightings of a card, and the speed needed to get from one to the other.
struct Leg {
  Sighting from;
  Sighting to;
  double km = 0;
  double kmh = 0;
};

struct TravelResult {
  size_t sightings = 0;
  // The fastest leg of at least kMinLegKm between consecutive sightings, if any.
  std::optional<Leg> fastest;
  bool impossible() const { return fastest.has_value() && fastest->kmh > kMaxKmh; }
};

// Finds the fastest leg between consecutive sightings of a session. The State is the sightings
// sorted by time, so Add and Merge give the same State whatever the order of the input (Merge is
// exactly associative and commutative), and a sighting that arrives late still lands between its
// neighbours. Only consecutive sightings need comparing: if A -> C is too fast, so is A -> B or
// B -> C for any B in between (the distance A -> C is at most A -> B -> C).
//
// Bounded: a session keeps its kMaxSightings newest sightings (a card used every few hours has a
// session that never closes). Dropping the oldest keeps Merge exact; the flag, with kOnUpdate,
// was raised when the leg was seen.
class TravelCheck {
 public:
  static constexpr size_t kMaxSightings = 64;
  using Input = Sighting;
  struct State {
    std::vector<Sighting> sightings;  // sorted by Earlier
  };
  using Result = TravelResult;

  State Init() const { return {}; }
  void Add(State& s, const Sighting& x) const {
    s.sightings.insert(std::upper_bound(s.sightings.begin(), s.sightings.end(), x, Earlier), x);
    Trim(s);
  }
  void Merge(State& into, const State& from) const {
    std::vector<Sighting> merged;
    merged.reserve(into.sightings.size() + from.sightings.size());
    std::merge(into.sightings.begin(), into.sightings.end(), from.sightings.begin(),
               from.sightings.end(), std::back_inserter(merged), Earlier);
    into.sightings = std::move(merged);
    Trim(into);
  }
  Result Finish(const State& s) const {
    Result r;
    r.sightings = s.sightings.size();
    for (size_t i = 1; i < s.sightings.size(); ++i) {
      const Sighting& a = s.sightings[i - 1];
      const Sighting& b = s.sightings[i];
      const double km = DistanceKm(a.lat, a.lon, b.lat, b.lon);
      if (km < kMinLegKm) continue;
      // Two places at the same instant: as if one second apart (speed stays finite).
      const double hours = std::max(absl::ToDoubleHours(b.time - a.time), 1.0 / 3600);
      if (!r.fastest || km / hours > r.fastest->kmh) r.fastest = Leg{a, b, km, km / hours};
    }
    return r;
  }
  // Optional: lets WindowOperator::state_bytes() count the vector's heap.
  size_t StateBytes(const State& s) const {
    return sizeof(State) + s.sightings.capacity() * sizeof(Sighting);
  }

  // Snapshot: u8 kind (200: a user kind, rill's are below 128), u8 format (1), u32 count, then
  // per sighting i64 Unix microseconds and the IEEE-754 bits of latitude and longitude, all
  // little-endian.
  void Encode(const State& s, std::string* out) const {
    out->push_back(static_cast<char>(kKind));
    out->push_back(static_cast<char>(kFormat));
    Put(out, s.sightings.size(), 4);
    for (const Sighting& x : s.sightings) {
      Put(out, static_cast<uint64_t>(absl::ToUnixMicros(x.time)), 8);
      Put(out, std::bit_cast<uint64_t>(x.lat), 8);
      Put(out, std::bit_cast<uint64_t>(x.lon), 8);
    }
  }
  // False (leaving *s alone) for anything Encode could not have written.
  bool Decode(std::string_view in, State* s) const {
    if (in.size() < 6 || static_cast<uint8_t>(in[0]) != kKind ||
        static_cast<uint8_t>(in[1]) != kFormat) {
      return false;
    }
    const uint64_t n = Get(in, 2, 4);
    if (n > kMaxSightings || in.size() != 6 + 24 * n) return false;
    State decoded;
    for (size_t i = 0; i < n; ++i) {
      const size_t at = 6 + 24 * i;
      Sighting x{absl::FromUnixMicros(static_cast<int64_t>(Get(in, at, 8))),
                 std::bit_cast<double>(Get(in, at + 8, 8)),
                 std::bit_cast<double>(Get(in, at + 16, 8))};
      if (!(std::abs(x.lat) <= 90) || !(std::abs(x.lon) <= 180)) return false;
      if (!decoded.sightings.empty() && Earlier(x, decoded.sightings.back())) return false;
      decoded.sightings.push_back(x);
    }
    *s = std::move(decoded);
    return true;
  }

 private:
  static constexpr uint8_t kKind = 200;
  static constexpr uint8_t kFormat = 1;

  static void Trim(State& s) {
    if (s.sightings.size() <= kMaxSightings) return;
    s.sightings.erase(
        s.sightings.begin(),
        s.sightings.begin() + static_cast<std::ptrdiff_t>(s.sightings.size() - kMaxSightings));
  }
  static void Put(std::string* out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
  }
  static uint64_t Get(std::string_view in, size_t at, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(in[at + i]);
    return v;
  }
};
static_assert(rill::AggregatorFor<TravelCheck, Sighting>);

// --- The simulation ---

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
  double Unit() { return static_cast<double>(Next() >> 11) / 9007199254740992.0; }  // [0, 1)

 private:
  uint64_t state_;
};

std::string Num(uint64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string Round(double v) { return Num(static_cast<uint64_t>(std::llround(v))); }

std::string Hms(absl::Time t) { return absl::FormatTime("%H:%M:%S", t, absl::UTCTimeZone()); }
std::string CardName(int64_t card) { return absl::StrFormat("card-%04d", card); }

// A payment as the stream will see it: its record, and when its terminal sends it.
struct Planned {
  std::string partition_key;
  std::string data;
  absl::Time send;
};

// What must be flagged, and by when: the arrival of the payment that completes the fraud.
struct Fraud {
  const char* story;
  absl::Time complete;  // when the last payment needed reaches the stream
};

class Bank {
 public:
  Bank() : random_(6) {
    PlanCleanCards();
    PlanScenarios();
    // The one record no pipeline can read: a misconfigured terminal.
    planned_.push_back({"terminal-7", "CHARGE 12.00 EUR", kStart + absl::Minutes(30)});
    std::stable_sort(planned_.begin(), planned_.end(),
                     [](const Planned& a, const Planned& b) { return a.send < b.send; });
  }

  const std::vector<Planned>& planned() const { return planned_; }
  uint64_t payments() const { return payments_; }
  const std::map<int64_t, Fraud>& travel_frauds() const { return travel_frauds_; }
  const std::map<int64_t, Fraud>& burst_frauds() const { return burst_frauds_; }

 private:
  // Adds a payment of `card` at time t near (lat, lon), sent `delay` later.
  absl::Time Pay(int64_t card, absl::Time t, double lat, double lon, absl::Duration delay,
                 int64_t amount_cents) {
    Transaction txn{card, amount_cents, lat, lon, t};
    planned_.push_back({CardName(card), Encode(txn), t + delay});
    ++payments_;
    return t + delay;
  }
  absl::Time Pay(int64_t card, absl::Time t, const char* city, absl::Duration delay) {
    const City& c = CityNamed(city);
    return Pay(card, t, c.lat, c.lon, delay, 500 + 100 * random_.Uniform(200));
  }
  absl::Duration NetworkDelay() {
    return random_.Uniform(100) < 3 ? absl::Seconds(10 + random_.Uniform(35))
                                    : absl::Milliseconds(200 + random_.Uniform(4800));
  }

  // Clean cards pay near home about every 30 minutes (exponential gaps); travellers fly to
  // another city at 750 km/h plus 2 hours at airports, and pay there after landing.
  void PlanCleanCards() {
    for (int64_t card = 1000; card < 1000 + kCleanCards; ++card) {
      const City& home = kCities[random_.Uniform(kCityCount)];
      absl::Time depart = absl::InfiniteFuture(), land = absl::InfiniteFuture();
      const City* destination = &home;
      if (card < 1000 + kTravellers) {
        destination =
            &kCities[(&home - kCities + 1 + random_.Uniform(kCityCount - 1)) % kCityCount];
        depart = kStart + absl::Minutes(30 + random_.Uniform(180));
        const double km = DistanceKm(home.lat, home.lon, destination->lat, destination->lon);
        land = depart + absl::Hours(2) + absl::Seconds(static_cast<int64_t>(km / 750 * 3600));
      }
      for (absl::Time t = kStart + absl::Seconds(static_cast<int64_t>(random_.Unit() * 1800));
           t < kEnd;
           t += absl::Seconds(static_cast<int64_t>(-std::log(1 - random_.Unit()) * 1800))) {
        if (t >= depart && t < land) continue;  // in the air
        const City* here = t >= land ? destination : &home;
        Pay(card, t, here->lat + (random_.Unit() - 0.5) * 0.2,
            here->lon + (random_.Unit() - 0.5) * 0.2, NetworkDelay(), 100 + random_.Uniform(20000));
      }
    }
  }

  void PlanScenarios() {
    const absl::Duration s = absl::Seconds(2);  // a normal terminal delay
    // 101: cloned in Singapore while its holder shops in London.
    Pay(101, kStart + absl::Minutes(40), "London", s);
    Pay(101, kStart + absl::Minutes(90), "London", s);
    travel_frauds_[101] = {"London, then Singapore 45 minutes later",
                           Pay(101, kStart + absl::Minutes(135), "Singapore", s)};
    Pay(101, kStart + absl::Minutes(225), "London", s);
    // 102: its holder shops in Los Angeles; a clone is used in New York 30 s before one of those
    // payments, but that terminal sends 50 s late: the Los Angeles payment arrives first, and the
    // New York one, when it comes, is sorted in before it.
    Pay(102, kStart + absl::Minutes(70), "Los Angeles", s);
    const absl::Time la = Pay(102, kStart + absl::Minutes(160), "Los Angeles", absl::Seconds(1));
    const absl::Time ny =
        Pay(102, kStart + absl::Minutes(160) - absl::Seconds(30), "New York", absl::Seconds(50));
    travel_frauds_[102] = {"a clone in New York 30 s before, arriving 19 s after",
                           std::max(la, ny)};
    // 103: Sydney before the crash, Tokyo 12 minutes after the snapshot: only the window state
    // restored from the snapshot knows about Sydney.
    Pay(103, kStart + absl::Minutes(140), "Sydney", s);
    Pay(103, kSnapshotAt - absl::Minutes(2), "Sydney", s);
    travel_frauds_[103] = {"Sydney before the restart, Tokyo after it",
                           Pay(103, kSnapshotAt + absl::Minutes(10), "Tokyo", s)};
    // 104 and 105: card testing, many small payments in under a minute.
    Pay(104, kStart + absl::Minutes(60), "Chicago", s);
    absl::Time sixth;
    for (int i = 0; i < 9; ++i) {
      const absl::Time sent = Pay(104, kStart + absl::Minutes(260) + absl::Seconds(5 * i),
                                  CityNamed("Chicago").lat, CityNamed("Chicago").lon, s, 100);
      if (i == 5) sixth = sent;
    }
    burst_frauds_[104] = {"9 payments of $1.00 in 40 s", sixth};
    for (int i = 0; i < 7; ++i) {
      const absl::Time sent = Pay(105, kStart + absl::Minutes(305) + absl::Seconds(8 * i),
                                  CityNamed("Mumbai").lat, CityNamed("Mumbai").lon, s, 250);
      if (i == 5) sixth = sent;
    }
    burst_frauds_[105] = {"7 payments in 48 s", sixth};
    // Near misses. 106: five payments in 50 s (the limit is more than five).
    for (int i = 0; i < 5; ++i)
      Pay(106, kStart + absl::Minutes(280) + absl::Seconds(12 * i), "Rome", s);
    // 107: Madrid to Berlin at 850 km/h, gate to gate.
    const City& madrid = CityNamed("Madrid");
    const City& berlin = CityNamed("Berlin");
    const double km = DistanceKm(madrid.lat, madrid.lon, berlin.lat, berlin.lon);
    const absl::Time gate = kStart + absl::Minutes(60);
    Pay(107, gate, "Madrid", s);
    Pay(107, gate + absl::Seconds(static_cast<int64_t>(km / 850 * 3600)), "Berlin", s);
    Pay(107, kStart + absl::Minutes(300), "Berlin", s);
  }

  Random random_;
  std::vector<Planned> planned_;
  uint64_t payments_ = 0;
  std::map<int64_t, Fraud> travel_frauds_;
  std::map<int64_t, Fraud> burst_frauds_;
};

// " (+3 s)": how long after the payment that completed the fraud reached the stream.
std::string AfterArrival(absl::Time flagged, const Fraud& fraud) {
  return absl::StrFormat(" (+%d s)", absl::ToInt64Seconds(flagged - fraud.complete));
}

template <typename Pipeline>
absl::Status Drain(Pipeline& p) {
  while (true) {
    absl::StatusOr<size_t> n = p.Poll();
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::OkStatus();
  }
}

int Fail(const char* what, const absl::Status& s) {
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  return 1;
}

}  // namespace

int main() {
  auto clock = std::make_shared<rill::SimulatedClock>(kStart);
  rill::StreamOptions options;
  options.name = "card-payments";
  options.shard_count = kShards;
  options.clock = clock;
  absl::StatusOr<std::unique_ptr<rill::Stream>> created = rill::Stream::Create(options);
  if (!created.ok()) return Fail("create the stream", created.status());
  rill::Stream& stream = **created;
  if (absl::StatusOr<rill::ConsumerDescription> c = stream.RegisterStreamConsumer("card-bursts");
      !c.ok()) {
    return Fail("register", c.status());
  }
  rill::InMemoryCheckpointStore checkpoints;  // the group's lease table; outlives the group
  rill::ConsumerGroupOptions group_options;
  group_options.application_name = "impossible-travel";
  group_options.initial_position = rill::StartingPosition::TrimHorizon();
  absl::StatusOr<std::unique_ptr<rill::ConsumerGroup>> group =
      rill::ConsumerGroup::Create(stream, checkpoints, group_options);
  if (!group.ok()) return Fail("create the consumer group", group.status());

  const Bank bank;
  // Terminals delay payments by up to 45 s; idle shards wait 2 minutes (longer than a failover)
  // before they stop holding the watermark back.
  const rill::WatermarkOptions watermark{.max_out_of_orderness = absl::Minutes(1),
                                         .idle_timeout = absl::Minutes(2)};

  // Impossible travel. The sink sees the session's result after every payment; the first
  // impossible one flags the card. The sink outlives the pipelines (both workers use it).
  struct TravelFlag {
    absl::Time at;
    Leg leg;
    std::string worker;
  };
  std::map<int64_t, TravelFlag> travel_flags;
  std::map<int64_t, Leg> fastest_leg;  // per card, from the latest result
  std::string worker;                  // the worker running now
  auto travel_sink = [&](const rill::WindowResult<int64_t, TravelResult>& r) {
    if (r.value.fastest) fastest_leg[r.key] = *r.value.fastest;
    if (!r.value.impossible() || travel_flags.contains(r.key)) return;
    const Leg& leg = *r.value.fastest;
    travel_flags[r.key] = {clock->Now(), leg, worker};
    std::printf("[%s] IMPOSSIBLE TRAVEL %s: %s at %s, %s at %s: %s km in %s = %s km/h (%s)\n",
                Hms(clock->Now()).c_str(), CardName(r.key).c_str(),
                NearestCity(leg.from.lat, leg.from.lon), Hms(leg.from.time).c_str(),
                NearestCity(leg.to.lat, leg.to.lon), Hms(leg.to.time).c_str(),
                Round(leg.km).c_str(), absl::FormatDuration(leg.to.time - leg.from.time).c_str(),
                Round(leg.kmh).c_str(), worker.c_str());
  };
  // Both workers build the same pipeline: absl::StatusOr of it (kInvalidArgument for a bad
  // parameter).
  auto travel_pipeline = [&](std::string worker_id) {
    return rill::Pipeline<Transaction>::From(
               rill::FromConsumerGroup<Transaction>(**group, std::move(worker_id), Decode), clock)
        .KeyBy([](const Transaction& t) { return t.card; })
        .Window(rill::SessionWindow(kSessionGap))
        .EventTime([](const Transaction& t) { return t.time; })
        .Watermark(watermark)
        .Emit(rill::EmitMode::kOnUpdate)
        .Aggregate(TravelCheck(),
                   [](const Transaction& t) {
                     return Sighting{t.time, t.lat, t.lon};
                   })
        .To(travel_sink);
  };

  // Bursts: payments per card per minute, every 10 s, flagged on the payment over the limit.
  struct BurstFlag {
    absl::Time at;
    uint64_t most = 0;  // the highest count seen in one window
    rill::WindowBounds window;
  };
  std::map<int64_t, BurstFlag> burst_flags;
  std::map<int64_t, uint64_t> busiest;  // per card, the highest count in one window
  rill::StreamSubscriberOptions burst_consumer;
  burst_consumer.consumer_name = "card-bursts";
  burst_consumer.initial_position = rill::StartingPosition::TrimHorizon();
  auto built_bursts =
      rill::Pipeline<Transaction>::From(
          rill::FromSubscription<Transaction>(stream, burst_consumer, Decode), clock)
          .KeyBy([](const Transaction& t) { return t.card; })
          .Window(rill::HoppingWindow(absl::Minutes(1), absl::Seconds(10)))
          .EventTime([](const Transaction& t) { return t.time; })
          .Watermark(watermark)
          .Emit(rill::EmitMode::kOnUpdate)
          .Aggregate(rill::Count())
          .To([&](const rill::WindowResult<int64_t, uint64_t>& r) {
            busiest[r.key] = std::max(busiest[r.key], r.value);
            if (r.value <= kBurstLimit) return;
            auto [it, first] = burst_flags.try_emplace(r.key, BurstFlag{clock->Now(), 0, {}});
            if (r.value > it->second.most) it->second = {it->second.at, r.value, {r.start, r.end}};
            if (first) {
              std::printf("[%s] BURST %s: %llu payments in [%s, %s)\n", Hms(clock->Now()).c_str(),
                          CardName(r.key).c_str(), static_cast<unsigned long long>(r.value),
                          Hms(r.start).c_str(), Hms(r.end).c_str());
            }
          });
  if (!built_bursts.ok()) return Fail("build", built_bursts.status());
  auto& bursts = *built_bursts;

  // Sends the payments due by each tick and polls the pipelines every few ticks, until `until`.
  size_t next = 0;
  int ticks = 0;
  std::vector<rill::PutRecordsEntry> batch;
  auto run = [&](absl::Time until, auto& travel) -> absl::Status {
    while (clock->Now() < until) {
      clock->Advance(kTick);
      batch.clear();
      while (next < bank.planned().size() && bank.planned()[next].send <= clock->Now()) {
        const Planned& p = bank.planned()[next++];
        batch.push_back({p.partition_key, p.data, std::nullopt});
      }
      for (size_t from = 0; from < batch.size(); from += rill::kMaxPutRecordsEntries) {
        absl::StatusOr<rill::PutRecordsResult> put = stream.PutRecords(absl::MakeConstSpan(
            batch.data() + from,
            std::min<size_t>(rill::kMaxPutRecordsEntries, batch.size() - from)));
        if (!put.ok()) return put.status();
        if (put->failed_record_count != 0) return absl::InternalError("a payment was refused");
      }
      if (++ticks % kTicksPerPoll == 0) {
        if (absl::Status s = Drain(travel); !s.ok()) return s;
        if (absl::Status s = Drain(bursts); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  };

  std::printf(
      "%s payments of %s cards from %s to %s into %d shards; impossible travel: over %.0f "
      "km/h; burst: more than %llu payments in a minute\n",
      Num(bank.payments()).c_str(), Num(kCleanCards + 7).c_str(), Hms(kStart).c_str(),
      Hms(kEnd).c_str(), kShards, kMaxKmh, static_cast<unsigned long long>(kBurstLimit));

  // Worker 1 runs until 11:00, snapshots and commits, runs 30 s more, and crashes.
  std::string snapshot;
  uint64_t read_at_snapshot = 0, read_after_snapshot = 0;
  size_t live_cards = 0;
  double bytes_per_card = 0;
  {
    worker = "worker-1";
    auto built_travel = travel_pipeline(worker);
    if (!built_travel.ok()) return Fail("build", built_travel.status());
    auto& travel = *built_travel;
    if (absl::Status s = run(kSnapshotAt, travel); !s.ok()) return Fail("run", s);
    snapshot = travel.Snapshot();
    if (absl::Status s = travel.Commit(); !s.ok()) return Fail("commit", s);
    read_at_snapshot = travel.records_in();
    live_cards = travel.live_keys();
    bytes_per_card = travel.state_bytes_per_live_key();
    std::printf(
        "[%s] impossible-travel: snapshot of %s bytes (%s payments read, %s cards' "
        "sessions, %.0f bytes of state per card), committed\n",
        Hms(clock->Now()).c_str(), Num(snapshot.size()).c_str(), Num(read_at_snapshot).c_str(),
        Num(live_cards).c_str(), bytes_per_card);
    if (absl::Status s = run(kCrashAt, travel); !s.ok()) return Fail("run", s);
    read_after_snapshot = travel.records_in() - read_at_snapshot;
    std::printf("[%s] worker-1 crashes; it had read %s payments since its snapshot\n",
                Hms(clock->Now()).c_str(), std::to_string(read_after_snapshot).c_str());
  }
  // Worker 2 restores the snapshot; it gets the shards once worker-1's leases expire and reads
  // from the committed checkpoints: the 30 s worker-1 read after its snapshot are read again.
  worker = "worker-2";
  auto built_travel = travel_pipeline(worker);
  if (!built_travel.ok()) return Fail("build", built_travel.status());
  auto& travel = *built_travel;
  if (absl::Status s = travel.Restore(snapshot); !s.ok()) return Fail("restore", s);
  std::printf("[%s] worker-2 restores the snapshot\n", Hms(clock->Now()).c_str());
  if (absl::Status s = run(kEnd + absl::Minutes(2), travel); !s.ok()) return Fail("run", s);
  if (absl::Status s = travel.Finish(); !s.ok()) return Fail("finish", s);
  if (absl::Status s = bursts.Finish(); !s.ok()) return Fail("finish", s);

  // --- Summary ---
  std::printf("\n%-18s %-22s %10s %9s %5s %12s\n", "pipeline", "source", "records in", "results",
              "late", "undecodable");
  auto row = [](const char* name, const char* source, auto& p) {
    std::printf("%-18s %-22s %10s %9s %5s %12s\n", name, source, Num(p.records_in()).c_str(),
                Num(p.results_out()).c_str(), Num(p.late_records()).c_str(),
                Num(p.undecodable_records()).c_str());
  };
  row("impossible-travel", "consumer group", travel);
  row("card-bursts", "fan-out subscription", bursts);
  std::printf("(impossible-travel: worker-2's figures; its counters continue from the snapshot)\n");

  std::printf("\nflagged for impossible travel:\n");
  for (const auto& [card, f] : travel_flags) {
    auto fraud = bank.travel_frauds().find(card);
    std::printf(
        "  %s  %-9s -> %-11s %6s km in %-4s = %7s km/h, flagged %s%s by %s: %s\n",
        CardName(card).c_str(), NearestCity(f.leg.from.lat, f.leg.from.lon),
        NearestCity(f.leg.to.lat, f.leg.to.lon), Round(f.leg.km).c_str(),
        absl::FormatDuration(f.leg.to.time - f.leg.from.time).c_str(), Round(f.leg.kmh).c_str(),
        Hms(f.at).c_str(),
        fraud == bank.travel_frauds().end() ? "" : AfterArrival(f.at, fraud->second).c_str(),
        f.worker.c_str(),
        fraud == bank.travel_frauds().end() ? "NOT A FRAUD" : fraud->second.story);
  }
  std::printf("flagged for bursts:\n");
  for (const auto& [card, f] : burst_flags) {
    auto fraud = bank.burst_frauds().find(card);
    std::printf("  %s  up to %llu payments in [%s, %s), flagged %s%s: %s\n", CardName(card).c_str(),
                static_cast<unsigned long long>(f.most), Hms(f.window.start).c_str(),
                Hms(f.window.end).c_str(), Hms(f.at).c_str(),
                fraud == bank.burst_frauds().end() ? "" : AfterArrival(f.at, fraud->second).c_str(),
                fraud == bank.burst_frauds().end() ? "NOT A FRAUD" : fraud->second.story);
  }
  // How close honest cards came to the limits.
  std::optional<std::pair<int64_t, uint64_t>> busiest_honest;
  for (const auto& [card, most] : busiest) {
    if (!burst_flags.contains(card) && (!busiest_honest || most > busiest_honest->second)) {
      busiest_honest = {card, most};
    }
  }
  if (busiest_honest) {
    std::printf("busiest honest card: %s, %llu payments in one minute (not flagged)\n",
                CardName(busiest_honest->first).c_str(),
                static_cast<unsigned long long>(busiest_honest->second));
  }
  std::optional<std::pair<int64_t, Leg>> closest;
  for (const auto& [card, leg] : fastest_leg) {
    if (!travel_flags.contains(card) && (!closest || leg.kmh > closest->second.kmh)) {
      closest = {card, leg};
    }
  }
  if (closest) {
    std::printf("fastest honest leg: %s %s -> %s, %s km in %s = %s km/h (not flagged)\n",
                CardName(closest->first).c_str(),
                NearestCity(closest->second.from.lat, closest->second.from.lon),
                NearestCity(closest->second.to.lat, closest->second.to.lon),
                Round(closest->second.km).c_str(),
                absl::FormatDuration(closest->second.to.time - closest->second.from.time).c_str(),
                Round(closest->second.kmh).c_str());
  }

  // --- Checks ---
  std::vector<std::string> errors;
  auto check_flags = [&](const char* kind, const std::map<int64_t, Fraud>& frauds,
                         const auto& flags) {
    for (const auto& [card, flag] : flags) {
      if (!frauds.contains(card))
        errors.push_back(absl::StrFormat("%s: clean %s flagged", kind, CardName(card)));
    }
    for (const auto& [card, fraud] : frauds) {
      auto f = flags.find(card);
      if (f == flags.end()) {
        errors.push_back(absl::StrFormat("%s: %s missed", kind, CardName(card)));
      } else if (f->second.at < fraud.complete ||
                 f->second.at > fraud.complete + absl::Seconds(10)) {
        errors.push_back(absl::StrFormat("%s: %s flagged at %s, its last payment arrived at %s",
                                         kind, CardName(card), Hms(f->second.at),
                                         Hms(fraud.complete)));
      }
    }
  };
  check_flags("impossible travel", bank.travel_frauds(), travel_flags);
  check_flags("burst", bank.burst_frauds(), burst_flags);
  if (auto f = travel_flags.find(103); f == travel_flags.end() || f->second.worker != "worker-2") {
    errors.push_back("card-0103 should be flagged by worker-2, from the restored state");
  }
  if (travel.records_in() != bank.payments() || bursts.records_in() != bank.payments()) {
    errors.push_back("a pipeline did not read every payment exactly once");
  }
  if (travel.undecodable_records() != 1 || bursts.undecodable_records() != 1 ||
      travel.late_records() != 0 || bursts.late_records() != 0) {
    errors.push_back("unexpected late or undecodable records");
  }
  if (!errors.empty()) {
    for (const std::string& e : errors) std::fprintf(stderr, "CHECK FAILED: %s\n", e.c_str());
    return 1;
  }
  std::printf(
      "\nevery injected fraud was flagged on time, no clean card was, and every payment "
      "was counted once across the restart\n");
  return 0;
}
