#!/usr/bin/env bash
# `make test` N times in a row (default 5) with a busy loop spinning on every core beside it the
# whole time: the check that the suite passes on a busy machine (issue 24). Run it in a clean
# clone; it prints one line per run and exits non-zero if any run failed.
#   bash tools/suite_under_load.sh 5 2>&1 | tee suite-under-load.log
set -u
runs=${1:-5}
loops=()
for _ in $(seq "$(nproc)"); do python3 -c "while True: pass" & loops+=($!); done
trap 'kill "${loops[@]}" 2>/dev/null' EXIT
failed=0
for i in $(seq "$runs"); do
  start=$(date +%s)
  make test > "suite-run-$i.log" 2>&1
  rc=$?
  [ "$rc" -eq 0 ] || failed=1
  echo "run=$i rc=$rc seconds=$(( $(date +%s) - start )) busy_loops=${#loops[@]} $(grep -E '[0-9]+ passed' "suite-run-$i.log" | tail -1)"
done
exit $failed
