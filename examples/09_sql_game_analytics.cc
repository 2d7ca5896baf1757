// Tutorial 9: game analytics in streaming SQL — rill::sql, the Kinesis Data Analytics for SQL
// dialect, over an in-process stream.
//
// The game company's events (JSON: kind purchase / login / level_up / kill, player, level, amount,
// product, ts) go into a 4-shard rill::Stream, as the game servers would put them. One SQL
// application reads the stream through an enhanced fan-out consumer and runs four pumps:
//   PURCHASES_PER_LEVEL  purchases and revenue per game level per 5 minutes (tumbling window);
//   TOP_PRODUCTS         the 3 best-selling products per 5 minutes (TOP_K_ITEMS_TUMBLING);
//   KILLS_PER_PLAYER     each kill with the player's kills in the 10 seconds up to it (sliding
//                        window), and CHEAT_ALERTS, a second pump over it that keeps the rows
//                        above the threshold: SQL's HAVING for sliding windows;
// plus error_stream, where the few malformed records the old client sends end up, with the
// reason. 20 minutes of play run on a rill::SimulatedClock: nothing sleeps, the run takes about
// a second and prints the same tables every time. One player uses an aimbot from 12:00 for 20 s.
// At the end the example checks the results against what it put and exits with 1 if anything
// disagrees.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "rill/rill.h"
#include "rill/sql/application.h"

namespace {

using rill::sql::SqlType;

constexpr int kPlayers = 100;
constexpr int kShards = 4;
const absl::Duration kPlayTime = absl::Minutes(20);
const absl::Duration kTick = absl::Milliseconds(100);  // the game servers put every 100 ms
constexpr int kTicksPerPoll = 10;                      // the application polls every second
constexpr int kCheater = 42;
const absl::Duration kCheatFrom = absl::Minutes(12);
const absl::Duration kCheatFor = absl::Seconds(20);
constexpr int kKillThreshold = 10;  // kills in 10 s; honest players make about one

const absl::Time kStart = rill::SimulatedClock::DefaultStart();  // 00:00, a 5-minute boundary

// ---- Step 1: the SQL ----
//
// Unquoted names are upper case in SQL, so the input's columns are named in upper case below.
// In-application streams are declared with CREATE STREAM; each pump is one continuous
// INSERT INTO ... SELECT STREAM. ROWTIME is each record's arrival time in the stream; a window's
// result has the window's end as its ROWTIME.
constexpr char kSql[] = R"(
-- Purchases only: the two 5-minute pumps read this stream.
CREATE OR REPLACE STREAM "PURCHASES" (player VARCHAR(16), game_level INTEGER,
                                      product VARCHAR(24), amount DOUBLE);
CREATE OR REPLACE PUMP "PURCHASES_PUMP" AS INSERT INTO "PURCHASES"
  SELECT STREAM player, game_level, product, amount
  FROM SOURCE_SQL_STREAM_001 WHERE kind = 'purchase';

-- Tumbling window: one row per level per 5 minutes, when the window closes.
CREATE OR REPLACE STREAM "PURCHASES_PER_LEVEL" (window_start TIMESTAMP, game_level INTEGER,
                                                purchases BIGINT, revenue DOUBLE);
CREATE OR REPLACE PUMP "PER_LEVEL_PUMP" AS INSERT INTO "PURCHASES_PER_LEVEL"
  SELECT STREAM STEP("PURCHASES".ROWTIME BY INTERVAL '5' MINUTE), game_level, COUNT(*),
         SUM(amount)
  FROM "PURCHASES"
  GROUP BY game_level, STEP("PURCHASES".ROWTIME BY INTERVAL '5' MINUTE);

-- The 3 most sold products per 300-second tumbling window.
CREATE OR REPLACE STREAM "TOP_PRODUCTS" (product VARCHAR(24), sold BIGINT);
CREATE OR REPLACE PUMP "TOP_PRODUCTS_PUMP" AS INSERT INTO "TOP_PRODUCTS"
  SELECT STREAM ITEM, ITEM_COUNT FROM TABLE(TOP_K_ITEMS_TUMBLING(
    CURSOR(SELECT STREAM * FROM "PURCHASES"), 'PRODUCT', 3, 300));

-- Sliding window: every kill, with its player's kills in the 10 seconds up to it.
CREATE OR REPLACE STREAM "KILLS_PER_PLAYER" (player VARCHAR(16), kills BIGINT);
CREATE OR REPLACE PUMP "KILLS_PUMP" AS INSERT INTO "KILLS_PER_PLAYER"
  SELECT STREAM player,
         COUNT(*) OVER (PARTITION BY player RANGE INTERVAL '10' SECOND PRECEDING)
  FROM SOURCE_SQL_STREAM_001 WHERE kind = 'kill';

-- HAVING for a sliding window: a second pump filters the first one's rows.
CREATE OR REPLACE STREAM "CHEAT_ALERTS" (player VARCHAR(16), kills BIGINT);
CREATE OR REPLACE PUMP "CHEAT_PUMP" AS INSERT INTO "CHEAT_ALERTS"
  SELECT STREAM player, kills FROM "KILLS_PER_PLAYER" WHERE kills > 10;
)";
static_assert(kKillThreshold == 10, "the threshold is written in CHEAT_PUMP");

// ---- A tiny table printer ----

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

// Prints `table` with each column as wide as its widest cell; numbers right-aligned. Shows at
// most max_rows rows and says how many more there are.
void Print(const std::string& title, const Table& table, size_t max_rows = 40) {
  std::vector<size_t> width(table.header.size());
  std::vector<bool> numeric(table.header.size(), true);
  for (size_t c = 0; c < table.header.size(); ++c) width[c] = table.header[c].size();
  for (const auto& row : table.rows) {
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
      if (row[c].find_first_not_of("0123456789.-") != std::string::npos) numeric[c] = false;
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out = "  ";
    for (size_t c = 0; c < width.size(); ++c) {
      const std::string& cell = c < cells.size() ? cells[c] : "";
      const std::string pad(width[c] - cell.size(), ' ');
      const bool last = c + 1 == width.size();
      out += numeric[c] ? pad + cell : last ? cell : cell + pad;
      if (!last) out += " | ";
    }
    std::printf("%s\n", out.c_str());
  };
  std::printf("\n%s (%zu rows)\n", title.c_str(), table.rows.size());
  line(table.header);
  std::string rule = "  ";
  for (size_t c = 0; c < width.size(); ++c) {
    rule += std::string(width[c], '-') + (c + 1 < width.size() ? "-+-" : "");
  }
  std::printf("%s\n", rule.c_str());
  for (size_t r = 0; r < table.rows.size() && r < max_rows; ++r) line(table.rows[r]);
  if (table.rows.size() > max_rows) {
    std::printf("  ... and %zu more rows\n", table.rows.size() - max_rows);
  }
}

// "hh:mm:ss" of a time (the simulation starts at midnight).
std::string Clock(absl::Time t) { return absl::FormatTime("%H:%M:%S", t, absl::UTCTimeZone()); }

// ---- The game: a seeded generator ----

// SplitMix64: the same sequence on every platform.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int Uniform(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }

 private:
  uint64_t state_;
};

struct Product {
  const char* name;
  double price;  // multiples of 0.25: sums of them are exact in a DOUBLE
  int weight;    // how often it sells
};
constexpr Product kProducts[] = {
    {"health_potion", 0.50, 40}, {"mana_potion", 0.75, 20}, {"skin_dragon", 9.75, 12},
    {"loot_box", 2.50, 10},      {"xp_boost", 1.25, 8},     {"sword_legend", 19.50, 5},
    {"pet_phoenix", 14.25, 5},
};

// What the example put, to check the application's results against.
struct Truth {
  int64_t purchases = 0;
  double revenue = 0;
  int64_t malformed = 0;
  int64_t records = 0;
  std::map<absl::Time, std::map<std::string, int64_t>> sold;  // by window start, by product
};

class Game {
 public:
  Game() : random_(20260101), level_(kPlayers, 1) {}

  // The events of one tick at `now`, as PutRecords entries (partition key: the player, so that
  // each player's events stay in order).
  std::vector<rill::PutRecordsEntry> Tick(absl::Time now, Truth* truth) {
    std::vector<rill::PutRecordsEntry> out;
    const int events = random_.Uniform(5);  // 0..4 per 100 ms: about 20 events per second
    for (int e = 0; e < events; ++e) out.push_back(Event(random_.Uniform(kPlayers), now, truth));
    // The aimbot: a kill every tick, 10 per second, for kCheatFor.
    if (now >= kStart + kCheatFrom && now < kStart + kCheatFrom + kCheatFor) {
      out.push_back(Kill(kCheater, now));
    }
    // At 07:00 an old client version sends three records the input schema cannot read.
    if (now == kStart + absl::Minutes(7)) {
      for (const char* bad : {R"({"kind":"purchase","player":"player-007","level":"seven"})",
                              R"({"kind":"login","player":)", "not json at all"}) {
        out.push_back({"player-007", bad, std::nullopt});
        ++truth->malformed;
      }
    }
    truth->records += static_cast<int64_t>(out.size());
    return out;
  }

 private:
  static std::string Name(int player) { return absl::StrFormat("player-%03d", player); }

  rill::PutRecordsEntry Json(int player, absl::Time now, const std::string& kind,
                             const std::string& extra) {
    return {Name(player),
            absl::StrCat(R"({"kind":")", kind, R"(","player":")", Name(player), R"(","level":)",
                         level_[player], extra, R"(,"ts":)", absl::ToUnixMillis(now), "}"),
            std::nullopt};
  }

  rill::PutRecordsEntry Kill(int player, absl::Time now) { return Json(player, now, "kill", ""); }

  rill::PutRecordsEntry Event(int player, absl::Time now, Truth* truth) {
    const int roll = random_.Uniform(100);
    if (roll < 50) return Kill(player, now);  // honest players: about 0.1 kills per second
    if (roll < 75) {
      int pick = random_.Uniform(100);
      const Product* p = &kProducts[0];
      for (const Product& candidate : kProducts) {
        if (pick < candidate.weight) {
          p = &candidate;
          break;
        }
        pick -= candidate.weight;
      }
      ++truth->purchases;
      truth->revenue += p->price;
      ++truth->sold[now - (now - kStart) % absl::Minutes(5)][p->name];
      return Json(player, now, "purchase",
                  absl::StrFormat(R"(,"product":"%s","amount":%.2f)", p->name, p->price));
    }
    if (roll < 97) return Json(player, now, "login", "");
    if (level_[player] < 10) ++level_[player];  // 10 levels
    return Json(player, now, "level_up", "");
  }

  Random random_;
  std::vector<int> level_;
};

int Fail(const std::string& what) {
  std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main() {
  // ---- Step 2: the stream, on a simulated clock ----
  auto clock = std::make_shared<rill::SimulatedClock>(kStart);
  rill::StreamOptions stream_options;
  stream_options.name = "game-events";
  stream_options.shard_count = kShards;
  stream_options.clock = clock;
  absl::StatusOr<std::unique_ptr<rill::Stream>> created = rill::Stream::Create(stream_options);
  if (!created.ok()) return Fail(created.status().ToString());
  rill::Stream& stream = **created;

  // The application reads through its own enhanced fan-out consumer, from the oldest record.
  if (absl::StatusOr<rill::ConsumerDescription> c = stream.RegisterStreamConsumer("sql-analytics");
      !c.ok()) {
    return Fail(c.status().ToString());
  }
  rill::StreamSubscriberOptions subscriber;
  subscriber.consumer_name = "sql-analytics";
  subscriber.initial_position = rill::StartingPosition::TrimHorizon();

  // ---- Step 3: the input schema: JSON paths to typed columns of SOURCE_SQL_STREAM_001 ----
  rill::sql::Input input;
  input.format.columns = {
      {"KIND", {SqlType::kVarchar, 16, 0, 0}, "$.kind"},
      {"PLAYER", {SqlType::kVarchar, 16, 0, 0}, "$.player"},
      {"GAME_LEVEL", {SqlType::kInteger, 0, 0, 0}, "$.level"},
      {"AMOUNT", {SqlType::kDouble, 0, 0, 0}, "$.amount"},      // NULL when absent
      {"PRODUCT", {SqlType::kVarchar, 24, 0, 0}, "$.product"},  // likewise
      {"EVENT_TIME", {SqlType::kTimestamp, 0, 0, 0}, "$.ts"},   // milliseconds since the epoch
  };
  input.source = rill::sql::FromSubscription(stream, subscriber);

  // ---- Step 4: the outputs: a callback per in-application stream, collecting table rows ----
  rill::sql::ApplicationOptions options;
  options.name = "game-analytics";
  options.sql = kSql;
  options.clock = clock.get();
  options.inputs.push_back(std::move(input));
  std::map<std::string, Table> tables;
  for (const char* name : {"PURCHASES_PER_LEVEL", "TOP_PRODUCTS", "CHEAT_ALERTS", "error_stream"}) {
    rill::sql::Output output;
    output.stream = name;
    output.callback = [&tables](const rill::sql::OutputRow& r) {
      Table& t = tables[std::string(r.stream)];
      if (t.header.empty()) {
        t.header.push_back("ROWTIME");
        for (const rill::sql::Column& c : r.schema) t.header.push_back(c.name);
      }
      std::vector<std::string> cells = {Clock(r.row.rowtime)};
      for (const rill::sql::Value& v : r.row.values) {
        cells.push_back(v.type == SqlType::kTimestamp && !v.null ? Clock(v.time()) : v.ToString());
      }
      t.rows.push_back(std::move(cells));
      return absl::OkStatus();
    };
    options.outputs.push_back(std::move(output));
  }

  // ---- Step 5: create the application (the SQL is parsed, checked and planned here) ----
  absl::StatusOr<std::unique_ptr<rill::sql::Application>> app =
      rill::sql::Application::Create(std::move(options));
  if (!app.ok()) return Fail(app.status().ToString());
  std::printf("The application's plan:\n%s\n", (*app)->Explain().c_str());

  // ---- Step 6: play. Put each tick's events; poll the application every simulated second ----
  Game game;
  Truth truth;
  const int ticks = static_cast<int>(kPlayTime / kTick);
  for (int tick = 0; tick < ticks; ++tick) {
    std::vector<rill::PutRecordsEntry> events = game.Tick(clock->Now(), &truth);
    if (!events.empty()) {
      absl::StatusOr<rill::PutRecordsResult> put = stream.PutRecords(absl::MakeConstSpan(events));
      if (!put.ok()) return Fail(put.status().ToString());
      if (put->failed_record_count != 0) return Fail("a PutRecords entry failed");
    }
    clock->Advance(kTick);
    if ((tick + 1) % kTicksPerPoll == 0) {
      if (absl::Status s = (*app)->Poll(); !s.ok()) return Fail(s.ToString());
    }
  }
  // Play ends at 20:00. Once the application has read everything, ROWTIME follows the clock, so
  // the last windows (15:00-20:00) close without another record.
  for (int i = 0; i < 100 && (*app)->counters().records_in < static_cast<uint64_t>(truth.records);
       ++i) {
    if (absl::Status s = (*app)->Poll(); !s.ok()) return Fail(s.ToString());
  }
  clock->Advance(absl::Seconds(1));
  if (absl::Status s = (*app)->Poll(); !s.ok()) return Fail(s.ToString());

  // ---- Step 7: the results ----
  Print("PURCHASES_PER_LEVEL (5-minute tumbling windows; ROWTIME is the window's end)",
        tables["PURCHASES_PER_LEVEL"]);
  Print("TOP_PRODUCTS (TOP_K_ITEMS_TUMBLING, 3 per 5 minutes)", tables["TOP_PRODUCTS"]);
  Print("CHEAT_ALERTS (more than 10 kills in 10 seconds)", tables["CHEAT_ALERTS"], 8);
  Print("error_stream", tables["error_stream"]);
  const rill::sql::ApplicationCounters counters = (*app)->counters();
  std::printf("\n%llu records in, %llu rows, %llu error rows, %llu rows out\n",
              static_cast<unsigned long long>(counters.records_in),
              static_cast<unsigned long long>(counters.rows_in),
              static_cast<unsigned long long>(counters.error_rows),
              static_cast<unsigned long long>(counters.rows_out));

  // ---- Step 8: check them against what was put ----
  // Every purchase is counted once, in one level's window, and the revenue adds up.
  int64_t counted = 0;
  double revenue = 0;
  std::map<std::string, int> windows;
  for (const auto& row : tables["PURCHASES_PER_LEVEL"].rows) {
    counted += std::stoll(row[3]);
    revenue += std::stod(row[4]);
    ++windows[row[1]];
  }
  if (counted != truth.purchases) {
    return Fail(
        absl::StrCat("the windows count ", counted, " purchases; ", truth.purchases, " were put"));
  }
  if (std::abs(revenue - truth.revenue) > 1e-6) {
    return Fail(absl::StrFormat("revenue %.2f, expected %.2f", revenue, truth.revenue));
  }
  if (windows.size() != 4) return Fail(absl::StrCat(windows.size(), " windows, expected 4"));
  // Each window's best seller is the one most sold in it.
  std::map<std::string, std::vector<std::string>> top;  // by window end
  for (const auto& row : tables["TOP_PRODUCTS"].rows) top[row[0]].push_back(row[1]);
  if (top.size() != truth.sold.size()) return Fail("TOP_PRODUCTS: wrong number of windows");
  for (const auto& [start, sold] : truth.sold) {
    const auto best = std::max_element(
        sold.begin(), sold.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    const std::vector<std::string>& got = top[Clock(start + absl::Minutes(5))];
    if (got.empty() || got.size() > 3 || got[0] != best->first) {
      return Fail("TOP_PRODUCTS: the window to " + Clock(start + absl::Minutes(5)) +
                  " should start with " + best->first);
    }
  }
  // The cheater, and only the cheater, is flagged: during the aimbot's 20 seconds, or in the
  // 10 seconds after, when an honest kill's window still holds the aimbot's kills.
  const std::string cheater = absl::StrFormat("player-%03d", kCheater);
  if (tables["CHEAT_ALERTS"].rows.empty()) return Fail("the cheater was not flagged");
  for (const auto& row : tables["CHEAT_ALERTS"].rows) {
    if (row[1] != cheater) return Fail(row[1] + " was flagged, but plays fair");
    if (row[0] < Clock(kStart + kCheatFrom) ||
        row[0] > Clock(kStart + kCheatFrom + kCheatFor + absl::Seconds(10))) {
      return Fail("an alert at " + row[0] + ", long after the aimbot's 20 seconds");
    }
  }
  // The malformed records are in error_stream, not lost.
  if (static_cast<int64_t>(tables["error_stream"].rows.size()) != truth.malformed) {
    return Fail(absl::StrCat(tables["error_stream"].rows.size(), " error rows, expected ",
                             truth.malformed));
  }
  if (counters.records_in != static_cast<uint64_t>(truth.records)) {
    return Fail(absl::StrCat(counters.records_in, " records read, ", truth.records, " put"));
  }
  std::printf(
      "All checks passed: %lld purchases in the windows, %s flagged, %lld malformed "
      "records in error_stream.\n",
      static_cast<long long>(counted), cheater.c_str(), static_cast<long long>(truth.malformed));
  return 0;
}
