#!/usr/bin/env bash
# Builds rill and runs the main demo example.
set -euo pipefail
cd "$(dirname "$0")/.."
"$(dirname "$0")/install-deps.sh"
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" >/dev/null
cmake --build build --target example_05_game_telemetry
# The issue's rate: 100,000 events per simulated second (ctest runs it at 10,000).
./build/examples/example_05_game_telemetry 100000
