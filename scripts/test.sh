#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration (real binary, real
# kernel features, real peers) and attack suites.
# Installs the system packages the tests need first (scripts/setup.sh --deps-only).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --deps-only
# The SDK interoperability tests fail (instead of skipping) without their clients.
export AIRLOCK_REQUIRE_SDKS=1
exec cargo test --workspace "$@"
