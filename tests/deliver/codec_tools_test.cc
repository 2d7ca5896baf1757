// Compress's outputs read back by independent decoders: the gzip and zstd command-line tools, and
// python-snappy's framing decoder (tests/deliver/snappy_frames.py, which says why it patches the
// library's CRC-32C). Each tool runs through posix_spawn with its stdout and stderr in files.
// A missing tool fails the test, naming scripts/install-deps.sh: these checks must not silently
// vanish from a machine that lacks them.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "deliver/codec.h"
#include "testing/fixtures.h"

extern char** environ;

namespace rill::deliver_internal {
namespace {

constexpr char kInstallHint[] = "run scripts/install-deps.sh";
constexpr char kPython[] = "/usr/bin/python3";  // Debian's, which has python3-snappy
const std::string kSnappyFrames = std::string(RILL_DELIVER_TEST_DIR) + "/snappy_frames.py";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  REQUIRE(out.good());
}

struct ToolResult {
  int exit_code = -1;  // the tool's exit status; -1 if it died of a signal
  std::string out;     // its stdout
  std::string err;     // its stderr
};

// Runs argv (argv[0] looked up in PATH unless it holds a '/') with stdin from /dev/null and
// stdout, stderr in files of `dir`, and waits for it. Fails the test, naming the install script,
// if the program cannot be started.
ToolResult Run(const testing::TempDir& dir, const std::vector<std::string>& argv) {
  const std::string out_path = dir.File("tool.stdout");
  const std::string err_path = dir.File("tool.stderr");
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    FAIL(argv[0] << " cannot be started (" << std::strerror(rc) << "): " << kInstallHint);
  }
  int status = 0;
  pid_t waited;
  do {
    waited = waitpid(pid, &status, 0);
  } while (waited < 0 && errno == EINTR);
  REQUIRE(waited == pid);
  ToolResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  // 127: the shell's and glibc's "command not found", should the exec fail after the fork.
  if (result.exit_code == 127) {
    FAIL(argv[0] << " was not found: " << kInstallHint << "\n" << result.err);
  }
  return result;
}

// Fails the test unless `program` runs (`program --version` exits 0), naming the install script.
void RequireTool(const testing::TempDir& dir, const std::string& program) {
  const ToolResult r = Run(dir, {program, "--version"});
  if (r.exit_code != 0) {
    FAIL(program << " --version failed (exit " << r.exit_code << "): " << kInstallHint << "\n"
                 << r.err);
  }
}

std::string Text(size_t size, uint32_t seed) {
  static const char* const kWords[] = {
      "delivery", "stream", "record", "shard", "buffer", "firehose", "object",
      "gzip",     "the",    "a",      "of",    "to",     "42",       "\xc3\xa9t\xc3\xa9"};
  std::mt19937 rng(seed);
  std::string text;
  while (text.size() < size) {
    text += kWords[rng() % std::size(kWords)];
    text += rng() % 12 == 0 ? '\n' : ' ';
  }
  text.resize(size);
  return text;
}

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
  return bytes;
}

struct Input {
  std::string name;
  std::string data;
  // What snappy_frames.py --chunks reports for Compress(kSnappy) of it: one line per chunk.
  std::string snappy_chunks;
};

std::string Repeat(const std::string& line, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += line;
  return out;
}

const std::vector<Input>& Inputs() {
  static const std::vector<Input> inputs = {
      {"empty", "", ""},
      {"one byte", "x", "uncompressed 1\n"},
      {"100 KiB of text", Text(100 * 1024, 1), "compressed 65536\ncompressed 36864\n"},
      {"3 MiB of random bytes", RandomBytes(3 * 1024 * 1024, 2),
       Repeat("uncompressed 65536\n", 48)},
      {"65536 bytes of text", Text(65536, 3), "compressed 65536\n"},
      {"65537 bytes of text", Text(65537, 4), "compressed 65536\nuncompressed 1\n"},
      {"65536 random bytes", RandomBytes(65536, 5), "uncompressed 65536\n"},
      {"65537 random bytes", RandomBytes(65537, 6), "uncompressed 65536\nuncompressed 1\n"},
      {"65538 bytes of text", Text(65538, 7), "compressed 65536\nuncompressed 2\n"},
  };
  return inputs;
}

std::string Compressed(CompressionFormat format, std::string_view data) {
  std::string out;
  const absl::Status status = Compress(format, data, &out);
  INFO(status.ToString());
  REQUIRE(status.ok());
  return out;
}

TEST_CASE("gzip -t and gzip -dc read what Compress(kGzip) wrote") {
  testing::TempDir dir("codec-tools");
  RequireTool(dir, "gzip");
  for (const Input& input : Inputs()) {
    INFO(input.name);
    const std::string file = dir.File("in.gz");
    WriteFile(file, Compressed(CompressionFormat::kGzip, input.data));
    const ToolResult test = Run(dir, {"gzip", "-t", file});
    INFO(test.err);
    CHECK(test.exit_code == 0);
    const ToolResult d = Run(dir, {"gzip", "-dc", file});
    INFO(d.err);
    REQUIRE(d.exit_code == 0);
    CHECK(d.out.size() == input.data.size());
    CHECK(d.out == input.data);
  }
}

TEST_CASE("zstd -dc reads what Compress(kZstd) wrote and finds the content size") {
  testing::TempDir dir("codec-tools");
  RequireTool(dir, "zstd");
  for (const Input& input : Inputs()) {
    INFO(input.name);
    const std::string file = dir.File("in.zst");
    WriteFile(file, Compressed(CompressionFormat::kZstd, input.data));
    const ToolResult d = Run(dir, {"zstd", "-q", "-dc", file});
    INFO(d.err);
    REQUIRE(d.exit_code == 0);
    CHECK(d.out.size() == input.data.size());
    CHECK(d.out == input.data);
    // zstd -lv prints "Decompressed Size: 3.00 MiB (3145728 B)" only for a frame that says it.
    const ToolResult list = Run(dir, {"zstd", "-lv", file});
    INFO(list.out << list.err);
    REQUIRE(list.exit_code == 0);
    std::istringstream lines(list.out);
    std::string line;
    std::string size_line;
    while (std::getline(lines, line)) {
      if (line.rfind("Decompressed Size:", 0) == 0) size_line = line;
    }
    const std::string want = "(" + std::to_string(input.data.size()) + " B)";
    CHECK(size_line.size() >= want.size());
    CHECK(size_line.substr(size_line.size() - std::min(size_line.size(), want.size())) == want);
  }
}

TEST_CASE("python-snappy's framing decoder reads what Compress(kSnappy) wrote") {
  testing::TempDir dir("codec-tools");
  if (access(kPython, X_OK) != 0) FAIL(kPython << " is missing: " << kInstallHint);
  for (const Input& input : Inputs()) {
    INFO(input.name);
    const std::string file = dir.File("in.snappy");
    WriteFile(file, Compressed(CompressionFormat::kSnappy, input.data));
    const ToolResult d = Run(dir, {kPython, kSnappyFrames, "--chunks", file});
    INFO(d.err);
    REQUIRE(d.exit_code == 0);
    CHECK(d.out.size() == input.data.size());
    CHECK(d.out == input.data);
    // The chunking: 64 KiB of input at most a chunk, stored as is when compression does not pay.
    CHECK(d.err == input.snappy_chunks);
  }
}

TEST_CASE("The checkers refuse damaged files") {
  // Without this, a checker that accepted anything would pass the tests above.
  testing::TempDir dir("codec-tools");
  RequireTool(dir, "gzip");
  RequireTool(dir, "zstd");
  const std::string data = Text(100000, 8) + RandomBytes(70000, 9);
  for (const auto& [format, name] :
       {std::pair{CompressionFormat::kGzip, "gzip"}, std::pair{CompressionFormat::kZstd, "zstd"},
        std::pair{CompressionFormat::kSnappy, "snappy"}}) {
    INFO(name);
    const std::string whole = Compressed(format, data);
    // A byte of the last chunk's data flipped (random data: stored as is, so only a checksum
    // can tell), then a truncated copy.
    std::string flipped = whole;
    flipped[flipped.size() - 100] ^= 0x10;
    const std::string file = dir.File(std::string("damaged.") + name);
    for (const std::string& bytes : {flipped, whole.substr(0, 1000)}) {
      const bool truncated = bytes.size() == 1000;
      INFO((truncated ? "truncated" : "flipped"));
      WriteFile(file, bytes);
      const ToolResult r = format == CompressionFormat::kGzip ? Run(dir, {"gzip", "-dc", file})
                           : format == CompressionFormat::kZstd
                               ? Run(dir, {"zstd", "-q", "-dc", file})
                               : Run(dir, {kPython, kSnappyFrames, file});
      INFO(r.err);
      // Every format catches both: zstd through the content checksum Compress(kZstd) writes.
      CHECK(r.exit_code != 0);
      CHECK_FALSE(r.err.empty());
    }
  }
  // The Snappy damage is caught by python-snappy's masked CRC-32C, so the patched CRC is in use.
  std::string damaged = Compressed(CompressionFormat::kSnappy, RandomBytes(1000, 10));
  damaged[damaged.size() - 1] ^= 0x01;
  WriteFile(dir.File("crc.snappy"), damaged);
  const ToolResult r = Run(dir, {kPython, kSnappyFrames, dir.File("crc.snappy")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("UncompressError: crc mismatch") != std::string::npos);
}

TEST_CASE("Gunzip reads a multi-member file made by cat of gzip files") {
  testing::TempDir dir("codec-tools");
  RequireTool(dir, "gzip");
  const std::string a = Text(100 * 1024, 11);
  const std::string b = RandomBytes(70000, 12);
  const std::string c = "made by the gzip tool\n" + Text(5000, 13);
  WriteFile(dir.File("a.gz"), Compressed(CompressionFormat::kGzip, a));
  WriteFile(dir.File("b.gz"), Compressed(CompressionFormat::kGzip, b));
  WriteFile(dir.File("empty.gz"), Compressed(CompressionFormat::kGzip, ""));
  // A member written by gzip itself (a file name in its header: -N).
  WriteFile(dir.File("c.txt"), c);
  const ToolResult made = Run(dir, {"gzip", "-c", "-N", dir.File("c.txt")});
  REQUIRE(made.exit_code == 0);
  WriteFile(dir.File("c.gz"), made.out);

  const ToolResult cat =
      Run(dir, {"cat", dir.File("a.gz"), dir.File("empty.gz"), dir.File("b.gz"), dir.File("c.gz")});
  REQUIRE(cat.exit_code == 0);
  const std::string expected = a + b + c;
  std::string out;
  const absl::Status status = Gunzip(cat.out, expected.size(), &out);
  INFO(status.ToString());
  REQUIRE(status.ok());
  CHECK(out.size() == expected.size());
  CHECK(out == expected);
  // gzip agrees on the same file.
  WriteFile(dir.File("all.gz"), cat.out);
  const ToolResult d = Run(dir, {"gzip", "-dc", dir.File("all.gz")});
  REQUIRE(d.exit_code == 0);
  CHECK(d.out == expected);
  // One byte short of the whole is refused.
  CHECK(GetErrorCode(Gunzip(cat.out, expected.size() - 1, &out)) == ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace rill::deliver_internal
