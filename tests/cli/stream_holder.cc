// A process that holds a durable stream open for the cli tests, as an application would:
//   cli_test_holder DIR NAME SHARDS
// opens (or creates) the stream in DIR read-write, prints "ready <pid>" and then follows commands
// read from stdin, one per line, answering each on stdout:
//   put KEY DATA   -> "<shard id> <sequence number>"
//   flush          -> "flushed"
//   quit (or EOF)  -> closes the stream and exits 0
// Any failure prints "error: <status>" and exits 1.
#include <unistd.h>

#include <iostream>
#include <string>

#include "absl/strings/numbers.h"
#include "rill/stream/stream.h"

int main(int argc, char** argv) {
  int shards = 1;
  if (argc != 4 || !absl::SimpleAtoi(argv[3], &shards)) {
    std::cerr << "usage: cli_test_holder DIR NAME SHARDS\n";
    return 2;
  }
  rill::StreamOptions options;
  options.name = argv[2];
  options.shard_count = shards;
  rill::StorageOptions storage;
  storage.directory = argv[1];
  storage.fsync = rill::FsyncPolicy::kEveryBatch;
  options.storage = storage;
  absl::StatusOr<std::unique_ptr<rill::Stream>> stream = rill::Stream::Open(options);
  if (!stream.ok()) {
    std::cout << "error: " << stream.status() << std::endl;
    return 1;
  }
  std::cout << "ready " << ::getpid() << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "quit") break;
    if (line == "flush") {
      if (absl::Status s = (*stream)->Flush(); !s.ok()) {
        std::cout << "error: " << s << std::endl;
        return 1;
      }
      std::cout << "flushed" << std::endl;
      continue;
    }
    if (line.rfind("put ", 0) == 0) {
      const std::string rest = line.substr(4);
      const size_t space = rest.find(' ');
      const std::string key = rest.substr(0, space);
      const std::string data = space == std::string::npos ? "" : rest.substr(space + 1);
      absl::StatusOr<rill::PutRecordResult> put = (*stream)->PutRecord(key, data);
      if (!put.ok()) {
        std::cout << "error: " << put.status() << std::endl;
        return 1;
      }
      std::cout << put->shard_id << " " << put->sequence_number << std::endl;
      continue;
    }
    std::cout << "error: unknown command " << line << std::endl;
    return 1;
  }
  return 0;
}
