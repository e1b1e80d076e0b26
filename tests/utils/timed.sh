#!/usr/bin/env bash
# Usage: timed.sh NAME COMMAND [ARG...]
# Runs COMMAND, then prints its wall time as "== NAME: 12.3 s" (also when it fails) and exits
# with COMMAND's status.
set -uo pipefail
name=$1
shift
start=$(date +%s%N)
"$@"
rc=$?
end=$(date +%s%N)
secs=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", (e - s) / 1e9 }')
if [ "$rc" -eq 0 ]; then
    echo "== $name: $secs s"
else
    echo "== $name: $secs s (FAILED, exit $rc)"
fi
exit "$rc"
