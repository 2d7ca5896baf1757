#!/usr/bin/env bash
# Builds rill and runs every test with ctest.
#   scripts/test.sh          the normal build (RelWithDebInfo), then the install/find_package check
#   scripts/test.sh asan     the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/test.sh tsan     the same suite under ThreadSanitizer
#   scripts/test.sh fuzz     builds the libFuzzer targets with clang++ (build-fuzz) and runs each
#                            tests/fuzz/<name>_fuzzer for FUZZ_SECONDS (default 60) from its seeds
#                            in tests/fuzz/corpus/<name>/; crashes land in build-fuzz/artifacts/
# Environment: CXX picks the compiler (g++ by default; clang++ works too), JOBS the parallelism.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-normal}"
"$(dirname "$0")/install-deps.sh"

launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
jobs="${JOBS:-$(nproc)}"

case "$mode" in
  normal) build=build; extra=() ;;
  asan) build=build-asan; extra=(-DRILL_SANITIZE=asan -DRILL_BUILD_BENCHMARKS=OFF) ;;
  tsan) build=build-tsan; extra=(-DRILL_SANITIZE=tsan -DRILL_BUILD_BENCHMARKS=OFF) ;;
  fuzz) build=build-fuzz
        extra=(-DRILL_BUILD_FUZZERS=ON -DRILL_BUILD_TESTS=OFF -DRILL_BUILD_BENCHMARKS=OFF
               -DRILL_BUILD_EXAMPLES=OFF)
        export CXX=clang++ ;;
  *) echo "usage: $0 [asan|tsan|fuzz]" >&2; exit 2 ;;
esac

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" "${extra[@]}"
cmake --build "$build" -j "$jobs"

if [ "$mode" = fuzz ]; then
  # New inputs go to build-fuzz/corpus/<name>/, so the committed seeds stay as they are.
  seconds="${FUZZ_SECONDS:-60}"
  failed=0
  for source in tests/fuzz/*_fuzzer.cc; do
    fuzzer="$(basename "$source" .cc)"
    name="${fuzzer%_fuzzer}"
    mkdir -p "$build/corpus/$name" "$build/artifacts/$fuzzer"
    echo "== $fuzzer for ${seconds}s"
    "$build/tests/fuzz/$fuzzer" -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$fuzzer/" "$build/corpus/$name" "tests/fuzz/corpus/$name" ||
      failed=1
  done
  exit "$failed"
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
ctest --test-dir "$build" --output-on-failure -j "$jobs"

if [ "$mode" = normal ]; then
  # The installed package works for an outside project: install, then build tests/package
  # against the prefix with find_package(rill).
  prefix="$PWD/$build/install-check/prefix"
  rm -rf "$build/install-check"
  cmake --install "$build" --prefix "$prefix" >/dev/null
  cmake -S tests/package -B "$build/install-check/consumer" -G Ninja \
    -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}"
  cmake --build "$build/install-check/consumer"
  "$build/install-check/consumer/rill_package_consumer"
fi
