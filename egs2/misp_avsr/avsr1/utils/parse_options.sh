#!/usr/bin/env bash
# Parse "--name value" / "--name=value" options into shell variables of the sourcing script.
#
# Source it AFTER declaring defaults:   stage=0; nj=4; . utils/parse_options.sh
# Every option must name a variable that is already set (a typo is an error, not a
# silent new variable); "-" in names maps to "_"; a variable whose default is
# true/false only accepts true/false. Parsing stops at the first non-option argument
# or at "--"; the remaining arguments stay in "$@".
# (Written for this recipe; same calling convention as Kaldi's parse_options.sh.)
#
# Optional settings of the sourcing script (declare them before sourcing):
#   option_aliases="inference_nj=decode_nj ..."  extra names for variables (alias=variable)
#   option_passthrough=true   unknown "--name value" pairs are collected, in order, into the
#                             array passthrough_args instead of failing (run.sh -> avsr.sh)
#   options_from=FILE         "--help" prints $help_message, then every option declared in
#                             FILE between the lines "# <options>" and "# </options>", with
#                             its default (the variable's value now) and its trailing comment;
#                             "# ---- title" lines there become section titles.

# Print the option table of $options_from (see above).
_po_help_table() {
    local file="$1" inside=false line name value comment aliases a
    while IFS= read -r line || [ -n "${line}" ]; do
        case "${line}" in
            "# <options>"*) inside=true; continue ;;
            "# </options>"*) inside=false; continue ;;
        esac
        ${inside} || continue
        if [[ "${line}" =~ ^#\ ----\ (.*)$ ]]; then
            printf '\n  %s\n' "${BASH_REMATCH[1]}"
        elif [[ "${line}" =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]]; then
            name="${BASH_REMATCH[1]}"
            comment=""
            [[ "${line}" =~ [[:space:]]#[[:space:]]?(.*)$ ]] && comment="${BASH_REMATCH[1]}"
            value="${!name-}"
            value="$(printf '%s' "${value}" | tr -s ' \t\n' ' ' | sed 's/^ //; s/ $//')"
            aliases=""
            for a in ${option_aliases:-}; do
                [ "${a#*=}" = "${name}" ] && aliases="${aliases} | --${a%%=*}"
            done
            printf '    %-44s %s\n' "--${name}${aliases} \"${value}\"" "${comment}"
        elif [[ "${line}" =~ ^#\ ?(.*)$ ]]; then
            printf '        %s\n' "${BASH_REMATCH[1]}"
        fi
    done < "${file}"
}

passthrough_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        -h|--help)
            printf '%s\n' "${help_message:-No help available for $0}"
            if [ -n "${options_from:-}" ]; then
                printf '\nOptions (--name value or --name=value; default in quotes):\n'
                _po_help_table "${options_from}"
            fi
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
    for _po_a in ${option_aliases:-}; do
        [ "${_po_a%%=*}" = "${_po_name}" ] && { _po_name="${_po_a#*=}"; break; }
    done
    if [ -z "${!_po_name+set}" ]; then
        if [ "${option_passthrough:-false}" = true ]; then
            passthrough_args+=("--${_po_name}" "${_po_value}")
            shift "${_po_n}"
            continue
        fi
        echo "$0: unknown option --${_po_name} (no variable '${_po_name}' declared; see $0 --help)" >&2; exit 1
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
unset _po_name _po_value _po_n _po_a
true

# print_options FILE: "name=value" of every option declared in FILE (see options_from),
# whitespace collapsed; for --show_options.
print_options() {
    local line name value inside=false
    while IFS= read -r line || [ -n "${line}" ]; do
        case "${line}" in
            "# <options>"*) inside=true; continue ;;
            "# </options>"*) inside=false; continue ;;
        esac
        ${inside} && [[ "${line}" =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]] || continue
        name="${BASH_REMATCH[1]}"
        value="$(printf '%s' "${!name-}" | tr -s ' \t\n' ' ' | sed 's/^ //; s/ $//')"
        printf '%s=%s\n' "${name}" "${value}"
    done < "$1"
}
