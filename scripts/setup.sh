#!/usr/bin/env bash
# Installs the system packages airlock's tests need (scripts/apt-packages.txt),
# runs any extra installers in scripts/setup.d/ (test clients and peers), and
# builds the release binary unless called with --deps-only.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t wanted < <(grep -v '^\s*#' scripts/apt-packages.txt | awk 'NF {print $1}')
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
for hook in scripts/setup.d/*.sh; do
  [ -e "$hook" ] && bash "$hook"
done
[ "${1:-}" = "--deps-only" ] && exit 0
cargo build --release -p airlock
echo "setup: done; the binary is target/release/airlock"
