# Environment for the recipe: our venv, the plugin on PYTHONPATH, byte-order sorting.
MAIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
export MAIN_ROOT
if [ -f "${MAIN_ROOT}/tools/venv/bin/activate" ]; then
    # shellcheck disable=SC1091
    . "${MAIN_ROOT}/tools/venv/bin/activate"
else
    echo "path.sh: ${MAIN_ROOT}/tools/venv is missing; run tools/install.sh first" >&2
fi
export PYTHONPATH="${MAIN_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
export LC_ALL=C
export PYTHONIOENCODING=utf-8
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export PATH="${PWD}/utils:${PATH}"
