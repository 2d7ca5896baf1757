// Puts and reads one record through rill as an outside project uses it
// (tests/package/CMakeLists.txt: an installed rill found with find_package, or rill's source tree
// added with add_subdirectory).
#include <iostream>

#include "rill/rill.h"

int main() {
  rill::StreamOptions options;
  options.name = "package-check";
  auto stream = rill::Stream::Create(options);
  if (!stream.ok()) {
    std::cerr << stream.status() << "\n";
    return 1;
  }
  auto put = (*stream)->PutRecord("key", "value");
  if (!put.ok()) return 1;
  auto it = (*stream)->GetShardIterator(put->shard_id, rill::StartingPosition::TrimHorizon());
  if (!it.ok()) return 1;
  auto batch = (*stream)->GetRecords(*it);
  if (!batch.ok() || batch->records.size() != 1 || batch->records[0].data != "value") return 1;
  std::cout << "rill " << RILL_VERSION_STRING << " package check: OK\n";
  return 0;
}
