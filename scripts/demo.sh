#!/usr/bin/env bash
# Set up nightwatch and run it on its embedded defaults (SQLite file, in-process lock, local process
# runner) in a scratch directory: submit the original system's two sample tasks (sleeps shortened)
# plus one that fails, and show the task table until every task is terminal.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
NW="$REPO/.venv/bin/nightwatch"

WORK=$(mktemp -d -t nightwatch-demo.XXXXXX)
cd "$WORK"
export NIGHTWATCH_RUNNER__ALLOWED_NAMESPACES='["default","demo"]'
export NIGHTWATCH_HTTP__PORT=0
echo "== working in $WORK (database nightwatch.db, Job state in .nightwatch/)"

"$NW" submit --name demo-task-1 --namespace default --image alpine -- sleep 3
"$NW" submit --name demo-task-2 --namespace demo --image busybox -- sleep 5
"$NW" submit --name demo-task-3 --namespace default --image busybox -- sh -c 'echo "disk full" >&2; exit 3'

"$NW" run >run.log 2>&1 &
RUN_PID=$!
trap 'kill -TERM $RUN_PID 2>/dev/null; wait $RUN_PID 2>/dev/null || true' EXIT

for _ in $(seq 1 60); do
    echo "== $(date +%T)"
    "$NW" list
    in_flight=$("$NW" list --status Normal --status Pending --status Running --json)
    if [ -z "$in_flight" ]; then
        break
    fi
    sleep 1
done
echo "== $(date +%T): every task is terminal"
"$NW" list
echo "== the service log:"
kill -TERM $RUN_PID
wait $RUN_PID || true
trap - EXIT
grep -E "leader|dispatch|sync|stopped" run.log || true
