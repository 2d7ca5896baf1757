#!/usr/bin/env bash
# net_benchmark with kinesalite beside rill's KinesisServer, in the same run: starts kinesalite
# (npm, in memory, on 127.0.0.1; installed by tests/net/js/npm_install.sh), points
# BM_KinesalitePutRecords at it through RILL_BENCH_KINESALITE, and passes any further arguments to
# the benchmark. Usage: benchmarks/net_vs_kinesalite.sh <net_benchmark binary> [benchmark flags]
set -euo pipefail
bench="${1:?usage: net_vs_kinesalite.sh <net_benchmark binary> [benchmark flags]}"
shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$("$root/tests/net/js/npm_install.sh")"
work="$(mktemp -d)"
kinesalite_pid=""
cleanup() {
  if [ -n "$kinesalite_pid" ]; then
    kill "$kinesalite_pid" 2>/dev/null || true
    wait "$kinesalite_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
cp "$root/tests/net/js/kinesalite.mjs" "$work/"
ln -s "$cache/node_modules" "$work/node_modules"
coproc KINESALITE { cd "$work" && exec node kinesalite.mjs; }
kinesalite_pid=$KINESALITE_PID
read -r word port <&"${KINESALITE[0]}" || true
[ "${word:-}" = PORT ] || { echo "net_vs_kinesalite: kinesalite did not start" >&2; exit 1; }
RILL_BENCH_KINESALITE="http://127.0.0.1:$port" "$bench" "$@"
