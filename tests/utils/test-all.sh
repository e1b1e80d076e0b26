#!/usr/bin/env bash
# `make test`: set up (system packages, .venv, libvirt), then every test tier and the linters.
# A failing step does not stop the others; the exit status is non-zero if any failed, and a
# table of every step's status and wall time ends the output.
set -uo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"
cd "$REPO_ROOT" || exit 1

steps=(deps venv libvirt-start second-host-start test-unit test-integration second-host-stop test-molecule sanity lint)
statuses=()
times=()
failed=0
venv_ok=yes
total_start=$(date +%s%N)
# The tiers keep what failed in .tmp/failures-*.txt; the end of this output repeats them.
rm -f "$REPO_ROOT"/.tmp/failures-*.txt

for step in "${steps[@]}"; do
    echo
    if [ "$venv_ok" = no ] && [ "$step" != libvirt-start ]; then
        # Every tier runs from .venv: without it there is nothing to run.
        echo "==== make $step: skipped (make venv failed)"
        statuses+=(skipped)
        times+=(0.0)
        failed=$((failed + 1))
        continue
    fi
    echo "==== make $step"
    start=$(date +%s%N)
    if "${MAKE:-make}" --no-print-directory "$step"; then
        statuses+=(ok)
    else
        statuses+=(FAILED)
        failed=$((failed + 1))
        [ "$step" = venv ] && venv_ok=no
    fi
    end=$(date +%s%N)
    times+=("$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", (e - s) / 1e9 }')")
done

total=$(awk -v s="$total_start" -v e="$(date +%s%N)" 'BEGIN { printf "%.1f", (e - s) / 1e9 }')
echo
echo "==== summary"
printf '%-18s %-7s %9s\n' step status time
for i in "${!steps[@]}"; do
    printf '%-18s %-7s %7s s\n' "${steps[$i]}" "${statuses[$i]}" "${times[$i]}"
done
printf '%-18s %-7s %7s s\n' total "$([ "$failed" -eq 0 ] && echo ok || echo FAILED)" "$total"
if [ "$failed" -ne 0 ]; then
    for file in "$REPO_ROOT"/.tmp/failures-*.txt; do
        [ -s "$file" ] || continue
        echo
        echo "==== ${file#"$REPO_ROOT"/}"
        cat "$file"
    done
    echo "$failed step(s) failed"
    exit 1
fi
