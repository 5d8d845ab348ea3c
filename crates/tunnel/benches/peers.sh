#!/usr/bin/env bash
# Installs the peer tunnels (rathole, bore) into target/bench-peers and runs
# the tunnel benchmark with them on PATH. On demand only; never in CI.
# rathole is installed without --locked: its lock file does not build on
# current rustc.
set -euo pipefail
cd "$(dirname "$0")/../../.."
root="$PWD/target/bench-peers"
command -v "$root/bin/rathole" >/dev/null || cargo install --root "$root" rathole
command -v "$root/bin/bore" >/dev/null || cargo install --root "$root" --locked bore-cli
PATH="$root/bin:$PATH" cargo bench -p airlock-tunnel --bench tunnel
