// What rill says, and which exit code it returns, for a missing directory, a directory that holds
// no stream, a bad command line, and --help.
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "cli_testing.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

using cli_testing::Rill;
using cli_testing::RunResult;

TEST_CASE("a missing directory is exit 2 for every command, and put creates nothing", "[cli]") {
  testing::TempDir parent("cli");
  const std::string missing = parent.File("nowhere");
  const std::string message = absl::StrFormat(
      "rill: error: no such directory: %s (give the directory of a durable stream, as its "
      "StorageOptions::directory names it)\n",
      missing);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"describe", missing},
           {"shards", missing},
           {"get", missing, "--shard", "0"},
           {"tail", missing},
           {"put", missing, "--key", "k"},
           {"split", missing, "--shard", "0"},
           {"merge", missing, "--shard", "0", "--adjacent", "1"},
           {"scale", missing, "--count", "2"},
           {"metrics", missing},
           {"verify", missing},
           {"top", missing},
       }) {
    INFO(args[0]);
    RunResult r = Rill(args, "record\n");
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err == message);
  }
  CHECK(!std::filesystem::exists(missing));
}

TEST_CASE("a directory without a stream is exit 2, naming what is missing", "[cli]") {
  testing::TempDir empty("cli");
  RunResult r = Rill({"describe", empty.path()});
  CHECK(r.exit_code == 2);
  CHECK(r.err == absl::StrFormat("rill: error: %s holds no rill stream (it has no METADATA file): "
                                 "is it the directory a durable stream was created in?\n",
                                 empty.path()));
  r = Rill({"put", empty.path(), "--key", "k"}, "x\n");
  CHECK(r.exit_code == 2);
  CHECK(!std::filesystem::exists(empty.File("LOCK")));
  // A file, not a directory.
  r = Rill({"describe", "/etc/hostname"});
  CHECK(r.exit_code == 2);
  CHECK(absl::StrContains(r.err, "/etc/hostname is not a directory"));
}

TEST_CASE("a damaged METADATA is exit 4", "[cli]") {
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  testing::MustCreate(cli_testing::DurableOptions(dir.path(), cli_testing::RecentClock(), 1));
  cli_testing::WriteFileAtomically(dir.File("METADATA"), "RILLMETA garbage");
  RunResult r = Rill({"describe", dir.path()});
  CHECK(r.exit_code == 4);
  CHECK(absl::StrContains(r.err, "METADATA"));
  CHECK(absl::StrContains(r.err, "rill verify"));
  r = Rill({"verify", dir.path()});
  CHECK(r.exit_code == 4);
  CHECK(
      absl::StrContains(r.out, "damage: " + dir.File("METADATA") + ": stream METADATA is damaged"));
}

TEST_CASE("bad command lines are exit 1, --help is exit 0 and documents the exit codes", "[cli]") {
  RunResult r = Rill({});
  CHECK(r.exit_code == 1);
  CHECK(absl::StrContains(r.err, "rill: error: A subcommand is required"));
  r = Rill({"frobnicate"});
  CHECK(r.exit_code == 1);
  r = Rill({"get", "/tmp"});
  CHECK(r.exit_code == 1);
  CHECK(absl::StrContains(r.err, "--shard is required"));
  r = Rill({"metrics", "/tmp", "--format", "xml"});
  CHECK(r.exit_code == 1);
  r = Rill({"serve", "/tmp", "--no-auth", "--access-key", "a", "--secret-key", "b"});
  CHECK(r.exit_code == 1);

  r = Rill({"--help"});
  CHECK(r.exit_code == 0);
  for (const char* text : {"describe", "shards", "get", "tail", "put", "split", "merge", "scale",
                           "groups", "metrics", "verify", "serve", "top",
                           "Exit codes:", "  3  locked: another process has the stream open"}) {
    CHECK(absl::StrContains(r.out, text));
  }
  r = Rill({"get", "--help"});
  CHECK(r.exit_code == 0);
  CHECK(absl::StrContains(r.out, "trim-horizon | latest | at:SEQ | after:SEQ | time:T"));
  r = Rill({"--version"});
  CHECK(r.exit_code == 0);
  CHECK(absl::StartsWith(r.out, "rill "));
}

}  // namespace
}  // namespace rill
