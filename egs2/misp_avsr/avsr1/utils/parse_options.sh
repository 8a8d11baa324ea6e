#!/usr/bin/env bash
# Parse "--name value" / "--name=value" options into shell variables of the sourcing script.
#
# Source it AFTER declaring defaults:   stage=0; nj=4; . utils/parse_options.sh
# Every option must name a variable that is already set (a typo is an error, not a
# silent new variable); "-" in names maps to "_"; a variable whose default is
# true/false only accepts true/false. Parsing stops at the first non-option argument
# or at "--"; the remaining arguments stay in "$@". "--help" prints $help_message.
# (Written for this recipe; same calling convention as Kaldi's parse_options.sh.)

while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        -h|--help)
            printf '%s\n' "${help_message:-No help available for $0}"
            exit 0 ;;
        --*=*)
            _po_name="${1%%=*}"; _po_name="${_po_name#--}"; _po_value="${1#*=}"; _po_n=1 ;;
        --*)
            _po_name="${1#--}"
            if [ $# -lt 2 ]; then
                echo "$0: option --${_po_name} needs a value" >&2; exit 1
            fi
            _po_value="$2"; _po_n=2 ;;
        *) break ;;
    esac
    _po_name="${_po_name//-/_}"
    if ! [[ "${_po_name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        echo "$0: invalid option name --${_po_name}" >&2; exit 1
    fi
    if [ -z "${!_po_name+set}" ]; then
        echo "$0: unknown option --${_po_name} (no variable '${_po_name}' declared)" >&2; exit 1
    fi
    case "${!_po_name}" in
        true|false)
            if [ "${_po_value}" != true ] && [ "${_po_value}" != false ]; then
                echo "$0: option --${_po_name} takes true or false, got '${_po_value}'" >&2; exit 1
            fi ;;
    esac
    printf -v "${_po_name}" '%s' "${_po_value}"
    shift "${_po_n}"
done
unset _po_name _po_value _po_n
true
