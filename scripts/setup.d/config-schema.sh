#!/usr/bin/env bash
# An independent JSON Schema validator (PyPI jsonschema) and YAML reader
# (PyYAML) for the test that checks `airlock config schema` against the
# example and broken configs. Quick when already installed.
set -euo pipefail
if ! python3 -c 'import jsonschema, yaml' 2>/dev/null; then
  echo "setup: pip install jsonschema pyyaml (config schema test)"
  python3 -m pip install --quiet --disable-pip-version-check 'jsonschema>=4.18' pyyaml
fi
