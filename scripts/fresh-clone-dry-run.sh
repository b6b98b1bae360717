#!/usr/bin/env bash
# `wrangler deploy --dry-run` on a fresh clone of HEAD, as a Workers user (or Workers Builds from
# Git) runs it: nothing built, no node_modules, no worker/gen/. wrangler.toml's [build] command
# must build the component and the jco glue from nothing, and the upload must come out whole.
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone --quiet --no-local "$root" "$tmp/clone"
cd "$tmp/clone"
# The lockfile's wrangler (and Node 22, which it needs), installed as the README says.
(cd worker && npm ci --no-audit --no-fund --loglevel=error)
started=$SECONDS
PATH="$PWD/worker/node_modules/.bin:$PATH" WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false \
  CLOUDFLARE_CF_FETCH_ENABLED=false wrangler deploy --dry-run --outdir dist > "$tmp/wrangler.log" 2>&1 ||
  { cat "$tmp/wrangler.log"; echo "fresh clone: wrangler deploy --dry-run failed"; exit 1; }
grep -q -- '--dry-run: exiting now' "$tmp/wrangler.log" || { cat "$tmp/wrangler.log"; exit 1; }
grep -q '\[custom build\]' "$tmp/wrangler.log" || { echo "wrangler did not run the [build] command"; exit 1; }
test -s dist/index.js || { echo "no dist/index.js"; exit 1; }
cores=$(find dist -name '*wacht_admin.core*.wasm' | wc -l)
[ "$cores" -ge 1 ] || { echo "no core module in dist/"; exit 1; }
echo "fresh clone: wrangler deploy --dry-run built the component and bundled the Worker ($cores core modules, $((SECONDS - started)) s)"
