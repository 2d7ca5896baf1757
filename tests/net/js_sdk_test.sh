#!/usr/bin/env bash
# The AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis, pinned in js/package-lock.json) against
# KinesisServer, and the same scenario against kinesalite (npm) as a reference: create, put,
# put-records, get-shard-iterator, get-records, list-shards, split, merge, describe, errors, tags
# and delete over HTTP/1.1 (@smithy/node-http-handler); against rill also enhanced fan-out, with
# SubscribeToShard over HTTP/2 (the SDK's NodeHttp2Handler). The two results must agree except at
# the known differences (js/compare.mjs, js/known_differences.md).
# Usage: js_sdk_test.sh <net_test_server binary>
# Needs node and npm; installs the npm packages itself (npm ci) into
# ${RILL_NPM_CACHE:-~/.cache/rill-js-tests}/<hash of package-lock.json>, reused by later runs.
# Exits 0 on success; prints what differed otherwise.
set -euo pipefail
server_bin="${1:?usage: js_sdk_test.sh <net_test_server binary>}"
js="$(cd "$(dirname "${BASH_SOURCE[0]}")/js" && pwd)"
for tool in node npm; do
  if ! command -v "$tool" > /dev/null; then
    echo "js_sdk_test: $tool is missing (Debian's nodejs and npm packages)" >&2
    exit 1
  fi
done
now() { date +%s%N; }
elapsed() { echo "$(( ($(now) - $1) / 1000000 )) ms"; }

# The packages, once per package-lock.json (js/npm_install.sh prints where).
cache="$("$js/npm_install.sh")"

work="$(mktemp -d)"
rill_pid=""
kinesalite_pid=""
cleanup() {
  # A server stops when its standard input closes (below); one still running here is killed.
  for pid in "$rill_pid" "$kinesalite_pid"; do
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
# The scripts run from $work, beside a link to the cached node_modules.
cp "$js/scenario.mjs" "$js/compare.mjs" "$js/kinesalite.mjs" "$work/"
ln -s "$cache/node_modules" "$work/node_modules"

# Nothing may reach the network or read the user's AWS configuration.
export AWS_ACCESS_KEY_ID=AKIDJSSDK AWS_SECRET_ACCESS_KEY=js-sdk-secret AWS_REGION=us-east-1 \
  AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_KINESIS

# run_scenario <mode> <port>: the scenario's document in $work/<mode>.json.
run_scenario() {
  local start
  start=$(now)
  if ! node "$work/scenario.mjs" "http://127.0.0.1:$2" "$1" > "$work/$1.json"; then
    echo "js_sdk_test: the scenario failed against $1" >&2
    exit 1
  fi
  echo "js_sdk_test: scenario against $1: ok ($(elapsed "$start"))"
}

# rill's KinesisServer. (The coprocess's own variables vanish when it ends: copies are kept.)
coproc SERVER { exec "$server_bin" --key AKIDJSSDK js-sdk-secret; }
rill_pid=$SERVER_PID
exec {rill_in}>&"${SERVER[1]}" {rill_out}<&"${SERVER[0]}"
read -r word port <&"$rill_out" || true
[ "${word:-}" = PORT ] || { echo "js_sdk_test: net_test_server did not start" >&2; exit 1; }
run_scenario rill "$port"
exec {rill_in}>&- {rill_out}<&- {SERVER[1]}>&- {SERVER[0]}<&-
wait "$rill_pid" 2>/dev/null || true
rill_pid=""

# kinesalite, in memory, on the loopback address.
coproc KINESALITE { cd "$work" && exec node kinesalite.mjs; }
kinesalite_pid=$KINESALITE_PID
exec {kinesalite_in}>&"${KINESALITE[1]}" {kinesalite_out}<&"${KINESALITE[0]}"
read -r word port <&"$kinesalite_out" || true
[ "${word:-}" = PORT ] || { echo "js_sdk_test: kinesalite did not start" >&2; exit 1; }
run_scenario kinesalite "$port"
exec {kinesalite_in}>&- {kinesalite_out}<&- {KINESALITE[1]}>&- {KINESALITE[0]}<&-
wait "$kinesalite_pid" 2>/dev/null || true
kinesalite_pid=""

if ! node "$work/compare.mjs" "$work/rill.json" "$work/kinesalite.json"; then
  kept="$(mktemp -d "${TMPDIR:-/tmp}/js_sdk_test.XXXXXX")"
  cp "$work/rill.json" "$work/kinesalite.json" "$kept/"
  echo "js_sdk_test: rill and kinesalite differ (their documents are kept in $kept)" >&2
  exit 1
fi
echo "js_sdk_test: ok"
