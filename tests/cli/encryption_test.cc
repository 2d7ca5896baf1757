// An encrypted stream (server-side encryption under a FileKeyProvider keyring): the read commands
// and verify need its keyring, given with --keyring or RILL_KEYRING, and say so without it.
#include <simdjson.h>

#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "cli_testing.h"
#include "rill/storage/encryption.h"
#include "rill/stream/stream.h"
#include "testing/fixtures.h"

namespace rill {
namespace {

using cli_testing::Rill;
using cli_testing::RunResult;

TEST_CASE("an encrypted stream is read and verified with its keyring", "[cli]") {
  testing::TempDir keys("cli-keys");
  const std::string keyring = keys.File("keyring");
  REQUIRE(FileKeyProvider::CreateKeyring(keyring).ok());
  REQUIRE(FileKeyProvider::CreateKey(keyring, "alias/rill").ok());
  testing::TempDir dir("cli", testing::TempDir::kAbsent);
  {
    StreamOptions options = cli_testing::DurableOptions(dir.path(), cli_testing::RecentClock(), 1);
    options.key_provider = std::shared_ptr<KeyProvider>(*FileKeyProvider::Open(keyring));
    auto stream = testing::MustCreate(options);
    REQUIRE(stream->StartStreamEncryption(EncryptionType::kKms, "alias/rill").ok());
    testing::MustPut(*stream, "k", "secret-1");
    REQUIRE(stream->Flush().ok());
    testing::MustPut(*stream, "k", "secret-2");
    REQUIRE(stream->Flush().ok());
  }

  RunResult r = Rill({"tail", dir.path(), "--raw"});
  CHECK(r.exit_code == 5);
  CHECK(absl::StrContains(r.err,
                          "it is encrypted: give its keyring with --keyring PATH or "
                          "RILL_KEYRING"));
  r = Rill({"--keyring", keyring, "tail", dir.path(), "--raw"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "secret-1\nsecret-2\n");
  r = Rill({"describe", dir.path(), "--keyring", keyring, "--json"});  // after the command too
  CHECK(r.exit_code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element o = parser.parse(r.out);
  CHECK(std::string_view(o["encryption_type"]) == "KMS");
  CHECK(std::string_view(o["key_id"]) == "alias/rill");
  CHECK(int64_t(o["records"]) == 2);

  // verify checks the checksums without the key, and decodes the records with it.
  r = Rill({"verify", dir.path()});
  CHECK(r.exit_code == 0);
  CHECK(absl::StrContains(r.out,
                          "encrypted frames: their checksums are checked, their records "
                          "are not decoded (give the stream's keyring with --keyring to "
                          "check them too)"));
  r = Rill({"verify", dir.path(), "--keyring", keyring});
  CHECK(r.exit_code == 0);
  CHECK(absl::StrContains(r.out,
                          "is ok: 1 shards, 1 segments, 2 frames, 2 records checked (0 "
                          "notes)"));

  r = Rill({"describe", dir.path(), "--keyring", keys.File("missing")});
  CHECK(r.exit_code == 5);
  CHECK(absl::StrContains(r.err, "cannot open the keyring " + keys.File("missing")));
}

}  // namespace
}  // namespace rill
