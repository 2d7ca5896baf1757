#!/usr/bin/env bash
# Installs the npm packages of tests/net/js (package-lock.json: the AWS SDK for JavaScript v3 and
# kinesalite) once per lock file, into ${RILL_NPM_CACHE:-~/.cache/rill-js-tests}/<hash>, and prints
# that directory (its node_modules is ready to use). Used by tests/net/js_sdk_test.sh and
# benchmarks/net_vs_kinesalite.sh. Progress goes to stderr.
set -euo pipefail
js="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for tool in node npm; do
  if ! command -v "$tool" > /dev/null; then
    echo "npm_install: $tool is missing (Debian's nodejs and npm packages)" >&2
    exit 1
  fi
done
cache_root="${RILL_NPM_CACHE:-${HOME:-/tmp}/.cache/rill-js-tests}"
cache="$cache_root/$(sha256sum "$js/package-lock.json" | cut -c1-16)"
# Installed beside the final directory and renamed into place, so an interrupted or concurrent
# install never leaves a half-filled cache.
if [ ! -f "$cache/node_modules/.rill-installed" ]; then
  start=$(date +%s)
  mkdir -p "$cache_root"
  staging="$(mktemp -d "$cache_root/.install.XXXXXX")"
  cp "$js/package.json" "$js/package-lock.json" "$staging/"
  # No install scripts: none of these packages needs one (kinesalite keeps its streams in
  # memdown; leveldown, which it does not load then, would try to build).
  if ! (cd "$staging" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) >&2; then
    rm -rf "$staging"
    echo "npm_install: npm ci failed" >&2
    exit 1
  fi
  touch "$staging/node_modules/.rill-installed"
  mv -T "$staging" "$cache" 2>/dev/null || rm -rf "$staging"  # another run may have won the race
  echo "npm_install: installed the npm packages in $cache ($(($(date +%s) - start)) s)" >&2
fi
echo "$cache"
