#!/usr/bin/env bash
# Soak test: does the suite pass again and again while another run loads the machine?
#   scripts/soak.sh [N]        (or `make soak N=5`)
# Clones the current commit twice into a temporary directory (clean clones: no venv, no
# caches), keeps `CI=true make test` running in a loop in the second clone as the load, and
# runs `CI=true make test` N times in a row (default 5) in the first, stopping at the first
# failure. Prints the commit, each run's result, duration and pytest summary, and the load
# runs' results (a load run that fails is a collision too). Exit 0 when all N runs passed.
# Logs stay in $SOAK_LOGS (default: a new /tmp/mtasts-soak-logs-* directory); the clones
# are removed at the end, however the script ends. SOAK_ARGS (e.g. "tests/hosting -x") goes
# to pytest in both clones, to soak a part of the suite.
set -euo pipefail
{ # read whole before it runs: editing this file during a soak does not disturb it
n=${1:-5}
if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/soak.sh [N]   (N >= 1 runs of CI=true make test under load)" >&2
  exit 2
fi
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse HEAD)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  echo "soak: uncommitted changes in $repo are not tested (commit $commit is)" >&2
fi
work=$(mktemp -d /tmp/mtasts-soak-XXXXXX)
logs=${SOAK_LOGS:-$(mktemp -d /tmp/mtasts-soak-logs-XXXXXX)}
mkdir -p "$logs"
load_pid= run_pid=
# Each run (and the load loop) leads a process group of its own (setsid), so that it ends as
# one with make, pytest and the servers it started. TERM, since background jobs of a script
# ignore INT; a run in progress is cut short.
stop_group() {
  [ -n "$1" ] || return 0
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 -- "-$1" 2>/dev/null || break; sleep 1; done
  kill -KILL -- "-$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  stop_group "$run_pid"
  stop_group "$load_pid"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for clone in soak load; do
  git clone -q --no-hardlinks "$repo" "$work/$clone"
  git -C "$work/$clone" checkout -q --detach "$commit"
done
# tests/protocol/test_corpus.py reads the shared corpus next to the project (../shared):
# the clones read the same one
if [ -d "$repo/../shared" ]; then ln -s "$(cd "$repo/../shared" && pwd)" "$work/shared"; fi
echo "soak: commit $commit, $n runs of CI=true make test in $work/soak"
echo "soak: load: CI=true make test in a loop in $work/load; logs in $logs"

setsid bash -c '
  i=0
  while :; do
    i=$((i + 1)); start=$(date +%s)
    if (cd "$1" && CI=true make test ARGS="$3") >"$2/load-$i.log" 2>&1; then r=PASS; else r=FAIL; fi
    echo "$(date -u +%H:%M:%S) load run $i: $r in $(($(date +%s) - start)) s" >>"$2/load.txt"
  done' load "$work/load" "$logs" "${SOAK_ARGS:-}" &
load_pid=$!

summary() { grep -E '^=+ .*(passed|failed|error).* =+$' "$1" | tail -1 | tr -d '=' | xargs; }
passed=0
for i in $(seq 1 "$n"); do
  start=$(date +%s)
  log="$logs/run-$i.log"
  setsid bash -c 'cd "$1" && CI=true make test ARGS="$2"' run "$work/soak" "${SOAK_ARGS:-}" \
    >"$log" 2>&1 &
  run_pid=$!
  if wait "$run_pid"; then result=PASS; else result=FAIL; fi # a signal interrupts the wait
  run_pid=
  echo "$(date -u +%H:%M:%S) run $i/$n: $result in $(($(date +%s) - start)) s ($(summary "$log"))"
  if [ $result = FAIL ]; then
    grep -E '^(FAILED|ERROR) ' "$log" | head -20 || tail -30 "$log"
    break
  fi
  passed=$((passed + 1))
done
echo "soak: load runs meanwhile:"
cat "$logs/load.txt" 2>/dev/null || echo "  (none finished)"
for f in "$logs"/load-*.log; do
  grep -HE '^(FAILED|ERROR) ' "$f" 2>/dev/null || true
done
echo "soak: $passed/$n runs passed in a row at $commit (logs: $logs)"
[ "$passed" = "$n" ]
exit
}
