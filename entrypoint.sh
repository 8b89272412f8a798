#!/usr/bin/env bash
# Container entrypoint.
#
#   entrypoint.sh github-action   the GitHub Action: action.yml's `runs.args`; the runner sets
#                                 INPUT_<NAME> for every input (defaults applied), and they become
#                                 `secretsync pipeline` flags
#   entrypoint.sh ARGS…           anything else: `secretsync ARGS…` unchanged
#                                 (`docker run IMAGE plan -c /config/pipeline.yaml`)
#
# Input text is only ever passed on as whole arguments, built in an array: nothing is evaluated,
# expanded or globbed, so `; rm -rf /`, `$(…)`, backquotes or newlines in an input reach
# secretsync as literal text (and fail its validation) instead of running. The `args` input is
# split on whitespace only — no quotes, no expansion; values with spaces go in SECRETSYNC_*
# variables instead.
set -euo pipefail
shopt -s extglob

bin="${SECRETSYNC_BIN:-secretsync}"

fail() {
  printf '::error::secretsync action: %s\n' "$1" >&2
  exit 2
}

# The value of input $1. GitHub passes `dry-run` as INPUT_DRY-RUN (not a shell name, hence
# printenv); INPUT_DRY_RUN is accepted too.
input() {
  local upper="${1^^}"
  printenv "INPUT_${upper}" 2>/dev/null || printenv "INPUT_${upper//-/_}" 2>/dev/null || true
}

# Adds FLAG when boolean input $1 is true; an unrecognised value is an error.
flag() {
  local value
  value="$(input "$1")"
  case "${value,,}" in
    true | yes | 1) args+=("$2") ;;
    '' | false | no | 0) ;;
    *) fail "input '$1' must be true or false, not '${value}'" ;;
  esac
}

# Adds FLAG VALUE when input $1 is set.
option() {
  local value
  value="$(input "$1")"
  if [[ -n "$value" ]]; then
    args+=("$2" "$value")
  fi
}

if [[ "${1:-}" != github-action ]]; then
  exec "$bin" "$@"
fi
shift

args=(pipeline)
workdir="$(input working-directory)"
if [[ -n "$workdir" ]]; then
  cd -- "$workdir" || fail "working-directory '${workdir}' does not exist"
fi
option config --config
option targets --targets
option output --output
flag dry-run --dry-run
flag exit-code --exit-code
flag discover --discover
flag show-values --show-values
flag adopt --adopt
flag comment --pr-comment
# The comment's token: the job's token by default (the input's default is `github.token`).
token="$(input github-token)"
if [[ -n "$token" && -z "${GITHUB_TOKEN:-}" ]]; then
  export GITHUB_TOKEN="$token"
fi
max_deletes="$(input max-deletes)"
if [[ -n "$max_deletes" ]]; then
  [[ "$max_deletes" == +([0-9]) ]] || fail "input 'max-deletes' must be a whole number, not '${max_deletes}'"
  args+=(--max-deletes "$max_deletes")
fi
option report --report

extra=()
raw_args="$(input args)"
if [[ -n "$raw_args" ]]; then
  # read splits on whitespace and never expands; -d '' reads every line.
  IFS=$' \t\n' read -r -d '' -a extra <<<"$raw_args" || true
fi

exec "$bin" "${args[@]}" "${extra[@]}" "$@"
