#!/usr/bin/env bash
# Installs the Debian packages rill builds with, if any is missing. Idempotent; quiet when all
# are present. Needs root (or sudo) only when something must be installed.
set -euo pipefail

packages=(cmake ninja-build g++ ccache libabsl-dev libfmt-dev catch2 libbenchmark-dev libzstd-dev
          libsqlite3-dev
          # rill::net (the Kinesis wire API) and its tests with real clients
          libboost-dev libnghttp2-dev libssl-dev zlib1g-dev libsimdjson-dev pkg-config
          libcurl4-openssl-dev awscli
          # rill::kafka (Kafka under rill's streams), tested on librdkafka's mock cluster
          librdkafka-dev
          # rill::deliver (delivery streams, Firehose's role): gzip, Snappy, PostgreSQL (client
          # and the server its tests start), and the command-line tools the tests decompress with
          libsnappy-dev libpq-dev postgresql python3-snappy zstd gzip
          # rill::sql (streaming SQL): the PEGTL grammar library (header-only)
          tao-pegtl-dev
          # the rill command (operations): CLI11, and tmux for the tests of `rill top`
          libcli11-dev tmux)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js and npm for the JavaScript SDK and kinesalite scenario (tests/net/js_sdk_test.sh installs
# those from npm). Looked for as commands: a machine may have Node.js from elsewhere than Debian,
# whose npm package would then conflict with it.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
