#!/usr/bin/env bash
# Stage bookkeeping for avsr.sh: banners with timing, bounds, skip-if-done markers.
#
# Needs: stage, stop_stage, force_stage ("3 7" = redo those stages), marker_dir;
# optional skip_stages ("10 11" = never run those: avsr.sh's --skip_* switches).
#   if stage_begin 3 "lip ROIs"; then ...; stage_end; fi
#   unit <name> <output path> <command...>   run once; later calls skip while
#                                             the marker and the output both exist.
#   keyed <input_key options...>              the next unit records this key of its inputs
#                                             (espnet_avsr/bin/input_key.py) and reruns when
#                                             it changed, logging what changed
#   clears <paths...>                         what the next unit must delete before a redo
#                                             (forced, changed key): files it would keep otherwise

_stage_now=""; _stage_t0=0

log_msg() { echo "$(date '+%Y-%m-%d %H:%M:%S') ($(basename "$0")) $*"; }

die() { log_msg "ERROR: $*" >&2; exit 1; }

# see_log <log>: a hint that names the log only when it was written.
see_log() {
    if [ -s "$1" ]; then echo "see $1"; else echo "no log was written at $1 (the job did not start; see the messages above)"; fi
}

stage_forced() {
    local s
    for s in ${force_stage:-}; do [ "${s}" = "$1" ] && return 0; done
    return 1
}

# stage_begin N "description": true when N is inside [stage, stop_stage].
stage_begin() {
    local n="$1" desc="$2"
    if [ "${n}" -lt "${stage}" ] || [ "${n}" -gt "${stop_stage}" ]; then return 1; fi
    local s; for s in ${skip_stages:-}; do [ "${s}" = "${n}" ] && return 1; done   # --skip_* switches
    _stage_now="${n}"; _stage_t0=$(date +%s)
    echo "=== Stage ${n}: ${desc} === ($(date '+%Y-%m-%d %H:%M:%S'))"
    if stage_forced "${n}" && [ -d "${marker_dir}/stage${n}" ]; then
        log_msg "--force_stage ${n}: removing its done-markers"
        rm -rf "${marker_dir:?}/stage${n}"
    fi
    mkdir -p "${marker_dir}/stage${n}"
    return 0
}

stage_end() {
    local dt=$(( $(date +%s) - _stage_t0 ))
    echo "=== Stage ${_stage_now} finished in ${dt}s === ($(date '+%Y-%m-%d %H:%M:%S'))"
    printf '%s\t%s\t%s\n' "${_stage_now}" "${dt}" "$(date '+%Y-%m-%dT%H:%M:%S')" \
        >> "${marker_dir}/stage_times.tsv"
}

_marker_path() { echo "${marker_dir}/stage${_stage_now}/${1//\//_}.done"; }

unit_is_done() {
    local m; m="$(_marker_path "$1")"
    [ -f "${m}" ] && [ -e "$2" ]
}

_unit_key=(); _unit_clear=()
keyed() { _unit_key=("$@"); }
clears() { _unit_clear=("$@"); }

# unit <name> <output> <command...>
unit() {
    local name="$1" out="$2"; shift 2
    local m; m="$(_marker_path "${name}")"
    local key=("${_unit_key[@]}") clear=("${_unit_clear[@]}") redo=false changes=""
    _unit_key=(); _unit_clear=()
    stage_forced "${_stage_now}" && redo=true
    if [ "${#key[@]}" -gt 0 ]; then
        changes="$("${python:-python}" -m espnet_avsr.bin.input_key --log_level WARNING "${key[@]}" \
            --out "${m%.done}.key" --against "${m}")" || die "stage ${_stage_now}: cannot compute the input key of ${name}"
        if [ -f "${m}" ] && [ -n "${changes}" ]; then
            log_msg "[rerun] ${name}: its inputs changed since it was done: $(echo "${changes}" | paste -sd ';' | sed 's/;/; /g')"
            rm -f "${m}"; redo=true
        elif [ ! -f "${m}" ] && [ -f "${m%.done}.started" ] && ! cmp -s "${m%.done}.started" "${m%.done}.key"; then
            log_msg "[rerun] ${name}: an unfinished (killed or failed) run had other inputs; its partial outputs are removed"
            redo=true
        fi
    fi
    if unit_is_done "${name}" "${out}"; then
        log_msg "[skip] ${name}: done already (${m})"
        return 0
    fi
    if ${redo} && [ "${#clear[@]}" -gt 0 ]; then
        log_msg "[clear] ${name}: removing ${clear[*]}"
        rm -rf "${clear[@]}"
    fi
    [ "${#key[@]}" -gt 0 ] && cp "${m%.done}.key" "${m%.done}.started"
    log_msg "[run] ${name}"
    # A subshell outside any "||" so that `set -e` holds inside shell functions too.
    local rc
    set +e
    ( set -e; "$@" )
    rc=$?
    set -e
    [ "${rc}" -eq 0 ] || die "stage ${_stage_now}, ${name} failed (exit ${rc}; command: $*)"
    { echo "$(date '+%Y-%m-%dT%H:%M:%S') ${out}"; [ "${#key[@]}" -eq 0 ] || cat "${m%.done}.key"; } > "${m}"
    rm -f "${m%.done}.started"
}
