#!/usr/bin/env bash
# Builds rill and runs every test with ctest.
#   scripts/test.sh          the normal build (RelWithDebInfo), then the package checks (an outside
#                            project using an installed rill, and one using add_subdirectory)
#   scripts/test.sh asan     the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/test.sh tsan     the same suite under ThreadSanitizer
#   scripts/test.sh fuzz     builds the libFuzzer targets with clang++ (build-fuzz) and runs each
#                            tests/fuzz/<name>_fuzzer for FUZZ_SECONDS (default 60) from its seeds
#                            in tests/fuzz/corpus/<name>/; crashes land in build-fuzz/artifacts/
#   scripts/test.sh ci       what CI runs (.ci/run): with warnings as errors (RILL_WERROR=ON),
#                            the normal build and its tests and the package checks, then a Release
#                            build (-O3) running the examples, then asan and tsan builds and their
#                            tests (see the ci stages below for what each leaves out)
# Environment: CXX picks the compiler (g++ by default; clang++ works too), JOBS the parallelism,
# RILL_WERROR=ON makes warnings errors in the single modes too (ci always does).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

mode="${1:-normal}"
case "$mode" in
  normal | asan | tsan | fuzz | ci) ;;
  *) echo "usage: $0 [normal|asan|tsan|fuzz|ci]" >&2; exit 2 ;;
esac
scripts/install-deps.sh

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # Paths below the clone's root are hashed relative to it, so that a clone in another folder
  # (CI's) still hits the cache.
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}"
  export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
fi
jobs="${JOBS:-$(nproc)}"
werror="${RILL_WERROR:-OFF}"
[ "$mode" = ci ] && werror=ON

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

summary=()
stage_start=0
begin() {
  echo "== $1"
  stage_start=$SECONDS
}
end() {
  local line="$1: $(($SECONDS - stage_start)) s"
  summary+=("$line")
  echo "== $line"
}

# configure_and_build <dir> <build type> [cmake options...]
configure_and_build() {
  local dir="$1" type="$2"
  shift 2
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DRILL_WERROR="$werror" \
    "${launcher[@]}" "$@" &&
    cmake --build "$dir" -j "$jobs"
}

# run_tests <dir> [ctest options...]: the suite, and its closing line kept for the summary.
run_tests() {
  local dir="$1"
  shift
  local log="$dir/ctest.log"
  local status=0
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" "$@" 2>&1 | tee "$log" || status=1
  local closing
  closing="$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1 || true)"
  if [ -n "$closing" ]; then
    local failed_count="${closing#*tests passed, }"
    failed_count="${failed_count%% tests failed*}"
    local out_of="${closing##* out of }"
    passed_total=$((passed_total + out_of - failed_count))
    failed_total=$((failed_total + failed_count))
  else
    closing="ctest did not finish"
    status=1
  fi
  summary+=("$dir: $closing")
  return "$status"
}
passed_total=0
failed_total=0

# rill works for an outside project both ways tests/package uses it: installed, then found with
# find_package(rill) from the prefix; and its source tree taken in with add_subdirectory, which
# builds librill once more inside the consumer's build (unoptimized). That build directory is
# kept between runs and configured afresh each time (--fresh: a new cache, so the checks in
# tests/package/CMakeLists.txt see what rill does to it), so a rerun recompiles only what changed.
# ci: the add_subdirectory check builds the core library only (the optional layers are what the
# installed-package check links; building them all again unoptimised took CI minutes).
subdirectory_options=""
install_check() {
  local dir="$1"
  local prefix="$root/$dir/install-check/prefix"
  rm -rf "$dir/install-check" &&
    cmake --install "$dir" --prefix "$prefix" >/dev/null &&
    cmake -S tests/package -B "$dir/install-check/consumer" -G Ninja \
      -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" &&
    cmake --build "$dir/install-check/consumer" &&
    "$dir/install-check/consumer/rill_package_consumer" &&
    cmake --fresh -S tests/package -B "$dir/subdirectory-check" -G Ninja \
      -DRILL_SOURCE_DIR="$root" -DRILL_WERROR="$werror" "${launcher[@]}" $subdirectory_options &&
    cmake --build "$dir/subdirectory-check" -j "$jobs" &&
    "$dir/subdirectory-check/rill_package_consumer"
}

# The sanitizer builds compile at -O1 with line tables only (-g1): stack traces still name files
# and lines, and a cold build takes about half the time of RelWithDebInfo's -O2 -g (ASan+UBSan
# compiled rill::net's server 2.5x faster, measured on this project's largest files).
sanitizer_flags=("-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")

case "$mode" in
  normal)
    configure_and_build build RelWithDebInfo
    run_tests build
    install_check build
    ;;
  asan | tsan)
    configure_and_build "build-$mode" RelWithDebInfo "${sanitizer_flags[@]}" \
      -DRILL_SANITIZE="$mode" -DRILL_BUILD_BENCHMARKS=OFF
    run_tests "build-$mode"
    ;;
  fuzz)
    # New inputs go to build-fuzz/corpus/<name>/, so the committed seeds stay as they are.
    export CXX=clang++
    configure_and_build build-fuzz RelWithDebInfo -DRILL_BUILD_FUZZERS=ON -DRILL_BUILD_TESTS=OFF \
      -DRILL_BUILD_BENCHMARKS=OFF -DRILL_BUILD_EXAMPLES=OFF
    seconds="${FUZZ_SECONDS:-60}"
    failed=0
    for source in tests/fuzz/*_fuzzer.cc; do
      fuzzer="$(basename "$source" .cc)"
      name="${fuzzer%_fuzzer}"
      mkdir -p "build-fuzz/corpus/$name" "build-fuzz/artifacts/$fuzzer"
      echo "== $fuzzer for ${seconds}s"
      "build-fuzz/tests/fuzz/$fuzzer" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="build-fuzz/artifacts/$fuzzer/" "build-fuzz/corpus/$name" \
        "tests/fuzz/corpus/$name" || failed=1
    done
    exit "$failed"
    ;;
  ci)
    # Every stage runs even when an earlier one failed, so one run reports them all; the exit
    # status is non-zero when any failed. The examples (single-threaded tutorials, run as tests)
    # are built and run by the RelWithDebInfo and Release stages; the sanitizer stages leave them
    # out to keep a cold run well inside CI's time.
    failed=()
    stage() {
      local name="$1"
      shift
      begin "$name"
      if ! "$@"; then failed+=("$name"); fi
      end "$name"
    }
    # Line tables only (-g1) in CI's RelWithDebInfo build: stack traces keep files and lines,
    # and the compile is faster than with full debug information.
    normal_stage() {
      configure_and_build build RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" &&
        run_tests build
    }
    # The Release stage compiles everything at -O3 with warnings as errors and runs the examples
    # (the tutorials); the unit tests ran in the RelWithDebInfo stage and run again under the
    # sanitizers. The compile-only check that every public header stands alone runs once, in the
    # RelWithDebInfo stage: it does not depend on the optimisation level.
    release_stage() {
      configure_and_build build-release Release -DRILL_BUILD_BENCHMARKS=OFF \
        -DRILL_BUILD_EXAMPLES=ON -DRILL_HEADER_CHECK=OFF && run_tests build-release -R '^example:'
    }
    # The sanitizer stages leave out the tests with real outside clients (label external: the AWS
    # CLI and the JavaScript SDK against the server, minutes under a sanitizer); the server's
    # own tests and its fuzzer cover its memory and threads. The ASan stage leaves out the rill
    # command (a process around the library; its tests run in the other stages).
    asan_stage() {
      configure_and_build build-asan RelWithDebInfo "${sanitizer_flags[@]}" -DRILL_SANITIZE=asan \
        -DRILL_BUILD_BENCHMARKS=OFF -DRILL_BUILD_EXAMPLES=OFF -DRILL_BUILD_CLI=OFF \
        -DRILL_HEADER_CHECK=OFF && run_tests build-asan -LE external
    }
    # rill::sql runs on its caller's thread and starts none, and the rill command is a
    # single-threaded process around the library, so the TSan stage leaves both out to stay within
    # CI's time (ASan+UBSan and the other stages run all of it).
    tsan_stage() {
      configure_and_build build-tsan RelWithDebInfo "${sanitizer_flags[@]}" -DRILL_SANITIZE=tsan \
        -DRILL_BUILD_BENCHMARKS=OFF -DRILL_BUILD_EXAMPLES=OFF -DRILL_BUILD_SQL=OFF \
        -DRILL_BUILD_CLI=OFF -DRILL_HEADER_CHECK=OFF && run_tests build-tsan -LE external
    }
    subdirectory_options="-DRILL_BUILD_NET=OFF -DRILL_BUILD_KAFKA=OFF -DRILL_BUILD_DELIVER=OFF -DRILL_BUILD_SQL=OFF"
    total_start=$SECONDS
    stage "RelWithDebInfo build + tests" normal_stage
    stage "package checks" install_check build
    stage "Release build + tests" release_stage
    stage "asan build + tests" asan_stage
    stage "tsan build + tests" tsan_stage
    echo
    echo "== summary (total $(($SECONDS - total_start)) s)"
    printf '%s\n' "${summary[@]}"
    if command -v ccache >/dev/null 2>&1; then ccache -s | grep -iE 'hits|misses' || true; fi
    [ ${#failed[@]} -eq 0 ] || echo "FAILED stages: ${failed[*]}"
    # The closing line: every test of the four suites.
    echo "ci: $passed_total passed, $failed_total failed"
    [ ${#failed[@]} -eq 0 ]
    ;;
esac
