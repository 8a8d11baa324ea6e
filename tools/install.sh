#!/usr/bin/env bash
# One installer for the whole misp_avsr stack. Idempotent: a second run only checks stamps.
#
#   bash tools/install.sh                 # Debian packages + tools/venv + editable install
#   bash tools/install.sh --no-apt        # skip Debian packages (no root)
#   bash tools/install.sh --build-wheelhouse DIR [--python-version 3.12] [--skip-file F]
#        on a connected machine: download every wheel of the stack except torch/CUDA
#        (and the names listed in F, e.g. what the offline node already has) for the
#        node's Python, plus the Debian .debs espeak-ng needs, into DIR
#   bash tools/install.sh --offline DIR   # on a node with no network: a venv on top of the
#        node's own CUDA torch 2.11 (--system-site-packages), installed from DIR only;
#        espeak-ng is unpacked from DIR/debs into tools/debroot when the system lacks it
#
# What it installs: Debian espeak-ng (speech for the synthetic corpus) and sctk (NIST sclite,
# ESPnet's scorer: score_cer writes ESPnet's result.txt with it); a virtualenv at
# tools/venv with torch 2.11.0, torchaudio 2.11.0, espnet 202511 and the field libraries
# in requirements.txt; this package in editable mode; pytest (with pytest-timeout and pytest-xdist).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${root}/tools/venv"
python="${PYTHON:-python3.11}"
command -v "${python}" >/dev/null 2>&1 || python=python3
apt=true
wheelhouse=""
offline=""
pyver=""
skip_file=""

while [ $# -gt 0 ]; do
  case "$1" in
    --no-apt) apt=false ;;
    --build-wheelhouse) wheelhouse="$2"; shift ;;
    --python-version) pyver="$2"; shift ;;
    --skip-file) skip_file="$2"; shift ;;
    --offline) offline="$(cd "$2" && pwd)"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[install] $*"; }

# ---- wheelhouse for offline nodes ----------------------------------------------------
if [ -n "${wheelhouse}" ]; then
  [ -x "${venv}/bin/python" ] || { echo "install.sh: build tools/venv first (run without options)" >&2; exit 1; }
  mkdir -p "${wheelhouse}/debs"
  pyver="${pyver:-$("${venv}/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}"
  # The known-good closure is what tools/venv holds; torch and CUDA come from the node.
  "${venv}/bin/python" - "${skip_file}" > "${wheelhouse}/packages.txt" <<'PY'
import re, sys
from importlib import metadata
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
skip = {"torch", "torchaudio", "triton", "pyworld", "espnet-avsr", "pip", "setuptools", "wheel"}
if sys.argv[1]:
    skip |= {norm(l.split("==")[0].strip()) for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")}
for d in sorted(metadata.distributions(), key=lambda d: norm(d.metadata["Name"])):
    n = norm(d.metadata["Name"])
    if n in skip or n.startswith(("nvidia-", "cuda-")):
        continue
    print(f"{d.metadata['Name']}=={d.version}")
PY
  plat=(--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_27_x86_64
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux1_x86_64
        --platform manylinux_2_5_x86_64 --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64)
  while read -r req; do
    "${venv}/bin/pip" download -q --no-deps --only-binary=:all: --python-version "${pyver}" \
        --implementation cp "${plat[@]}" -d "${wheelhouse}" "${req}" 2>/dev/null \
      || "${venv}/bin/pip" wheel -q --no-deps --no-build-isolation -w "${wheelhouse}" "${req}" \
      || { echo "install.sh: cannot get a wheel for ${req}" >&2; exit 1; }
  done < "${wheelhouse}/packages.txt"
  if command -v apt-get >/dev/null; then
    debs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
             --no-replaces --no-enhances espeak-ng | grep -v '^ ' | grep -v '^<' | sort -u \
             | grep -vE '^(libc6|libgcc-s1|gcc-[0-9]+-base|libzstd1|liblzma5)$')
    (cd "${wheelhouse}/debs" && apt-get download ${debs} >/dev/null)
  fi
  log "wheelhouse ready: $(ls "${wheelhouse}"/*.whl | wc -l) wheels, $(ls "${wheelhouse}"/debs | wc -l) debs, $(du -sh "${wheelhouse}" | cut -f1)"
  exit 0
fi

if [ -n "${offline}" ]; then
  "${python}" -c "import torch" 2>/dev/null || { echo "install.sh --offline: ${python} has no torch" >&2; exit 1; }
  if [ ! -x "${venv}/bin/python" ]; then
    "${python}" -m venv "${venv}"
  fi
  # The node's torch may itself live in a venv, which --system-site-packages would not see:
  # a .pth file adds the node interpreter's site dirs (and their own .pth hooks) after ours.
  "${python}" -c 'import site; print("\n".join(f"import site; site.addsitedir({d!r})" for d in site.getsitepackages()))' \
    > "$("${venv}/bin/python" -c 'import site; print(site.getsitepackages()[0])')/node_site.pth"
  "${venv}/bin/pip" install -q --no-index --no-deps --no-compile "${offline}"/*.whl
  # The package itself: a .pth path entry is the editable install that needs no build tools.
  echo "${root}" > "$("${venv}/bin/python" -c 'import site; print(site.getsitepackages()[0])')/espnet_avsr.pth"
  if ! command -v espeak-ng >/dev/null && [ -d "${offline}/debs" ]; then
    mkdir -p "${root}/tools/debroot"
    for f in "${offline}"/debs/*.deb; do dpkg -x "$f" "${root}/tools/debroot"; done
    # A wrapper scopes the unpacked libraries to espeak-ng alone, not to every process.
    mkdir -p "${root}/tools/debroot/wrap"
    cat > "${root}/tools/debroot/wrap/espeak-ng" <<'SH'
#!/bin/sh
d="$(cd "$(dirname "$0")/.." && pwd)"
LD_LIBRARY_PATH="$d/usr/lib/x86_64-linux-gnu:$d/usr/lib/x86_64-linux-gnu/pulseaudio:$d/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
ESPEAK_DATA_PATH="$d/usr/lib/x86_64-linux-gnu" exec "$d/usr/bin/espeak-ng" "$@"
SH
    chmod +x "${root}/tools/debroot/wrap/espeak-ng"
    log "espeak-ng unpacked into tools/debroot (path.sh puts it on PATH)"
  fi
  "${venv}/bin/python" -c "import espnet, torch, espnet_avsr; print('[install] offline: espnet', espnet.__version__, 'torch', torch.__version__)"
  exit 0
fi

# ---- Debian packages ---------------------------------------------------------------
debs=(espeak-ng sctk)
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
  "${venv}/bin/pip" install -q -r "${root}/requirements.txt" pytest pytest-timeout pytest-xdist
  "${venv}/bin/pip" install -q --no-deps -e "${root}"
  "${venv}/bin/python" -c "import espnet, torch, torchaudio, espnet_avsr; print('[install] espnet', espnet.__version__, 'torch', torch.__version__)"
  echo "${want}" > "${stamp}"
fi
