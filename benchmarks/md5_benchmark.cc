// Partition-key hashing cost: rill's MD5 against OpenSSL's (one-shot legacy MD5() and EVP), on
// 16-byte keys (the common case) and longer ones.
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "rill/base/hash_key.h"
#include "rill/base/md5.h"

#if RILL_BENCH_OPENSSL
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/md5.h>
#endif

namespace {

std::vector<std::string> Keys(size_t length) {
  std::vector<std::string> keys;
  for (int i = 0; i < 1024; ++i) {
    std::string k = "player-" + std::to_string(i * 7919);
    k.resize(length, 'k');
    keys.push_back(k);
  }
  return keys;
}

void BM_RillMd5(benchmark::State& state) {
  const auto keys = Keys(static_cast<size_t>(state.range(0)));
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(rill::Md5(keys[i++ & 1023]));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RillMd5)->Arg(16)->Arg(64)->Arg(256);

void BM_RillHashKeyFromPartitionKey(benchmark::State& state) {
  const auto keys = Keys(static_cast<size_t>(state.range(0)));
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(rill::HashKey::FromPartitionKey(keys[i++ & 1023]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RillHashKeyFromPartitionKey)->Arg(16);

#if RILL_BENCH_OPENSSL
void BM_OpenSslLegacyMd5(benchmark::State& state) {
  const auto keys = Keys(static_cast<size_t>(state.range(0)));
  size_t i = 0;
  unsigned char digest[16];
  for (auto _ : state) {
    const std::string& k = keys[i++ & 1023];
    MD5(reinterpret_cast<const unsigned char*>(k.data()), k.size(), digest);
    benchmark::DoNotOptimize(digest);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_OpenSslLegacyMd5)->Arg(16)->Arg(64)->Arg(256);

void BM_OpenSslEvpMd5(benchmark::State& state) {
  const auto keys = Keys(static_cast<size_t>(state.range(0)));
  size_t i = 0;
  unsigned char digest[16];
  unsigned int size = 0;
  for (auto _ : state) {
    const std::string& k = keys[i++ & 1023];
    EVP_Digest(k.data(), k.size(), digest, &size, EVP_md5(), nullptr);
    benchmark::DoNotOptimize(digest);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_OpenSslEvpMd5)->Arg(16)->Arg(64)->Arg(256);
#endif

}  // namespace
