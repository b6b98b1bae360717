#!/usr/bin/env bash
# Refreshes wit/deps/*.wit from the source of the pinned `wasip2` crate.
# WIT registries (wkg, wit-deps) are not reachable from our machines; the crate registry is,
# and the wasip2 crate ships the WASI 0.2 WIT files it was generated from.
set -euo pipefail
version="${WASIP2_VERSION:-=1.0.4}"
here="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src"
cat >"$tmp/Cargo.toml" <<TOML
[package]
name = "wit-refresh"
version = "0.0.0"
edition = "2021"
[dependencies]
wasip2 = "$version"
TOML
echo 'fn main() {}' >"$tmp/src/main.rs"
(cd "$tmp" && cargo fetch --quiet)
src="$(cd "$tmp" && cargo metadata --format-version 1 | python3 -c '
import json, sys, os
m = json.load(sys.stdin)
p = next(p for p in m["packages"] if p["name"] == "wasip2")
print(os.path.join(os.path.dirname(p["manifest_path"]), "wit", "deps"))')"
for pkg in cli clocks filesystem http io random sockets; do
  cp "$src/$pkg.wit" "$here/wit/deps/$pkg.wit"
done
echo "wit/deps refreshed from $src"
