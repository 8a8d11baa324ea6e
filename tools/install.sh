#!/usr/bin/env bash
# One installer for the whole misp_avsr stack. Idempotent: a second run only checks stamps.
#
#   bash tools/install.sh                 # Debian packages + tools/venv + editable install
#   bash tools/install.sh --no-apt        # skip Debian packages (no root)
#
# What it installs: Debian espeak-ng (speech for the synthetic corpus); a virtualenv at
# tools/venv with torch 2.11.0, torchaudio 2.11.0, espnet 202511 and the field libraries
# in requirements.txt; this package in editable mode; pytest.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${root}/tools/venv"
python="${PYTHON:-python3.11}"
command -v "${python}" >/dev/null 2>&1 || python=python3
apt=true

while [ $# -gt 0 ]; do
  case "$1" in
    --no-apt) apt=false ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[install] $*"; }

# ---- Debian packages ---------------------------------------------------------------
debs=(espeak-ng)
missing=()
for p in "${debs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! ${apt}; then
    log "missing Debian packages: ${missing[*]} (run without --no-apt as root to install)"
  else
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    log "installing Debian packages: ${missing[*]}"
    ${sudo} apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
      || { ${sudo} apt-get update -q >/dev/null && ${sudo} apt-get install -y -q "${missing[@]}" >/dev/null; }
  fi
fi

# ---- Python virtualenv -------------------------------------------------------------
if [ ! -x "${venv}/bin/python" ]; then
  log "creating ${venv}"
  "${python}" -m venv "${venv}"
fi
stamp="${venv}/.misp_avsr_stamp"
want="$(cat "${root}/requirements.txt" "${root}/setup.py" "$0" | sha256sum | cut -d' ' -f1)"
if [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ]; then
  log "tools/venv is up to date"
else
  log "installing Python packages into tools/venv (first time: a few minutes, ~5 GB)"
  "${venv}/bin/pip" install -q --upgrade "pip<25" wheel
  "${venv}/bin/pip" install -q -r "${root}/requirements.txt" pytest pytest-timeout
  "${venv}/bin/pip" install -q --no-deps -e "${root}"
  "${venv}/bin/python" -c "import espnet, torch, torchaudio, espnet_avsr; print('[install] espnet', espnet.__version__, 'torch', torch.__version__)"
  echo "${want}" > "${stamp}"
fi
