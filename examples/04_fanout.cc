// Tutorial 4: one clickstream, three independent push consumers.
//
// A web shop's clicks go into a 4-shard stream. Three consumers are registered with enhanced
// fan-out, each with its own read throughput, so none slows the others:
//   - "alerts" gets events pushed to a callback by a Dispatcher on its own thread, and flags
//     checkout errors the moment they arrive;
//   - "dashboard" pulls with a StreamSubscriber and counts page views per page;
//   - "archiver" also uses a StreamSubscriber, stops half-way (as if redeployed), and resumes
//     from its saved positions without losing or repeating a click.
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "rill/consume/dispatcher.h"
#include "rill/consume/stream_subscriber.h"
#include "rill/rill.h"

namespace {

constexpr int kClicks = 20000;
const char* const kPages[] = {"/home", "/search", "/product", "/cart", "/checkout"};

std::string Click(int i) {
  const bool error = i % 997 == 0;
  return std::string(R"({"page":")") + kPages[i % 5] + R"(","status":)" + (error ? "500" : "200") +
         "}";
}

// Reads everything a subscriber delivers within `quiet` of silence.
template <typename Fn>
absl::Status Pump(rill::StreamSubscriber& subscriber, int max_records, Fn on_record) {
  int taken = 0;
  while (taken < max_records) {
    absl::StatusOr<std::optional<rill::StreamSubscriber::Event>> e =
        subscriber.Next(absl::Milliseconds(200));
    if (!e.ok()) return e.status();
    if (!*e) break;  // quiet: caught up
    for (const rill::Record& r : (*e)->event.records) {
      on_record(r);
      ++taken;
    }
  }
  return absl::OkStatus();
}

}  // namespace

int main() {
  rill::StreamOptions options;
  options.name = "clickstream";
  options.shard_count = 4;
  absl::StatusOr<std::unique_ptr<rill::Stream>> created = rill::Stream::Create(options);
  if (!created.ok()) {
    std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
    return 1;
  }
  rill::Stream& stream = **created;
  for (const char* name : {"alerts", "dashboard", "archiver"}) {
    if (absl::StatusOr<rill::ConsumerDescription> c = stream.RegisterStreamConsumer(name);
        !c.ok()) {
      std::fprintf(stderr, "register %s: %s\n", name, c.status().ToString().c_str());
      return 1;
    }
  }

  // Alerts: a dispatcher thread with one callback per shard, from the latest click on.
  rill::Dispatcher dispatcher;
  std::atomic<int> alerts{0};
  for (const rill::ShardDescription& shard : stream.ListShards()) {
    auto sub = stream.SubscribeToShard("alerts", shard.shard_id, rill::StartingPosition::Latest());
    if (!sub.ok()) {
      std::fprintf(stderr, "subscribe: %s\n", sub.status().ToString().c_str());
      return 1;
    }
    dispatcher.Subscribe(std::move(*sub), [&alerts](const rill::SubscribeToShardEvent& e) {
      for (const rill::Record& r : e.records) {
        if (r.data.find("\"status\":500") != std::string_view::npos) ++alerts;
      }
    });
  }
  std::thread alerting([&] { dispatcher.Run(); });

  // The shop: users click.
  for (int i = 0; i < kClicks; ++i) {
    if (!stream.PutRecord("user-" + std::to_string(i % 1500), Click(i)).ok()) return 1;
  }

  // Dashboard: page views per page, from the beginning.
  rill::StreamSubscriberOptions dash_options;
  dash_options.consumer_name = "dashboard";
  dash_options.initial_position = rill::StartingPosition::TrimHorizon();
  auto dashboard = rill::StreamSubscriber::Create(stream, dash_options);
  if (!dashboard.ok()) return 1;
  std::map<std::string, int> views;
  if (!Pump(**dashboard, kClicks, [&](const rill::Record& r) {
         const auto start = r.data.find("\"page\":\"") + 8;
         ++views[std::string(r.data.substr(start, r.data.find('"', start) - start))];
       }).ok()) {
    return 1;
  }

  // Archiver: half the clicks, a redeploy, then the rest from the saved positions.
  rill::StreamSubscriberOptions arch_options;
  arch_options.consumer_name = "archiver";
  arch_options.initial_position = rill::StartingPosition::TrimHorizon();
  std::map<rill::ShardId, std::optional<rill::SequenceNumber>> saved;
  int archived = 0;
  {
    auto archiver = rill::StreamSubscriber::Create(stream, arch_options);
    if (!archiver.ok() ||
        !Pump(**archiver, kClicks / 2, [&](const rill::Record&) { ++archived; }).ok()) {
      return 1;
    }
    saved = (*archiver)->positions();
  }
  std::printf("archiver stopped after %d clicks; positions saved for %zu shards\n", archived,
              saved.size());
  // A new subscription of the same consumer to a shard waits 5 s after the last one (Kinesis'
  // rule); a real redeploy takes longer than that anyway.
  std::this_thread::sleep_for(std::chrono::seconds(5));
  arch_options.resume_from = saved;
  auto resumed = rill::StreamSubscriber::Create(stream, arch_options);
  if (!resumed.ok() || !Pump(**resumed, kClicks, [&](const rill::Record&) { ++archived; }).ok()) {
    return 1;
  }

  // Wait for the alerts to catch up, then stop the dispatcher.
  const int expected_alerts = (kClicks + 996) / 997;
  for (int i = 0; i < 1000 && alerts.load() < expected_alerts; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  dispatcher.Stop();
  alerting.join();

  std::printf("dashboard: ");
  int total_views = 0;
  for (const auto& [page, n] : views) {
    std::printf("%s=%d ", page.c_str(), n);
    total_views += n;
  }
  std::printf("\nalerts: %d checkout errors flagged\narchiver: %d clicks archived\n", alerts.load(),
              archived);
  if (total_views != kClicks || archived != kClicks || alerts.load() != expected_alerts) {
    std::fprintf(stderr, "a consumer missed clicks\n");
    return 1;
  }
  std::printf("every consumer saw every click exactly once\n");
  return 0;
}
