#!/usr/bin/env bash
# Install what is missing, then run the test suite (this is what .ci/run calls).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "${root}/tools/install.sh"
cd "${root}"
# Two pytest-xdist workers, each test file on one worker (its module fixtures are built once):
# much of the suite is single-threaded process start-up (avsr.sh steps, ESPnet imports), so two
# workers on 2 cores finish in ~14 min against ~18 min for one (README, "Tests").
# MISP_AVSR_TEST_WORKERS=0 runs in one process.
workers="${MISP_AVSR_TEST_WORKERS:-2}"
xdist=()
[ "${workers}" = 0 ] || xdist=(-n "${workers}" --dist loadfile)
# pytest exits 5 when it collects no tests; set -e turns that into a failure.
exec tools/venv/bin/python -m pytest tests "${xdist[@]}" "$@"
