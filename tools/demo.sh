#!/usr/bin/env bash
# Install what is missing, then run the main job end to end on the synthetic corpus.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "${root}/tools/install.sh"
cd "${root}/egs2/misp_avsr/avsr1"
exec ./run.sh "$@"
