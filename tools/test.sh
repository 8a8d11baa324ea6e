#!/usr/bin/env bash
# Install what is missing, then run the test suite (this is what .ci/run calls).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "${root}/tools/install.sh"
cd "${root}"
# pytest exits 5 when it collects no tests; set -e turns that into a failure.
exec tools/venv/bin/python -m pytest tests "$@"
