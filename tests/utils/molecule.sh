#!/usr/bin/env bash
# Every Molecule scenario under extensions/molecule/<name>/molecule.yml, one after the other
# (`molecule test -s <name>` from extensions/). SCENARIOS="a b" runs only those.
# Molecule installs the collection into $ANSIBLE_HOME/collections, and keeps each scenario's
# state in ~/.cache/molecule: this tier has a home of its own (.tmp/home/molecule, common.sh's
# use_own_home) and ANSIBLE_HOME under .tmp, so nothing lands in root's home, nothing an
# earlier run left there is read, and `hypervisor.kvm` is always this checkout.
set -euo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"
require_venv

cd "$REPO_ROOT/extensions" 2>/dev/null || { log "molecule: no molecule scenarios yet"; exit 0; }
if [ -n "${SCENARIOS:-}" ]; then
    read -r -a scenarios <<<"$SCENARIOS"
else
    scenarios=()
    for file in molecule/*/molecule.yml; do
        [ -f "$file" ] && scenarios+=("$(basename "$(dirname "$file")")")
    done
fi
if [ "${#scenarios[@]}" -eq 0 ]; then
    log "molecule: no molecule scenarios yet"
    exit 0
fi

"$REPO_ROOT/tests/utils/libvirt-daemon.sh" start
link_collection
use_own_home molecule

export ANSIBLE_HOME=$REPO_ROOT/.tmp/molecule/ansible-home
rm -rf "$ANSIBLE_HOME"
mkdir -p "$ANSIBLE_HOME"
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS_ROOT
export MOLECULE_NO_LOG=${MOLECULE_NO_LOG:-false}

# stdin to stdout as it is, and into the file $1 with the time before each line (the log's times
# measure each step: docs/kvm-host.md's table comes from them). A builtin printf, no process per line.
stamp_into() {
    local line
    : >"$1"
    while IFS= read -r line || [ -n "$line" ]; do
        printf '%s\n' "$line"
        printf '%(%H:%M:%S)T %s\n' -1 "$line" >>"$1"
    done
}

failed=()
for scenario in "${scenarios[@]}"; do
    log "molecule: scenario $scenario"
    # The output goes to the terminal and, each line with its time, to .tmp/molecule-<scenario>.log;
    # a failure's lines are repeated at the end, where a CI log's tail shows them.
    mkdir -p "$REPO_ROOT/.tmp"
    scenario_log=$REPO_ROOT/.tmp/molecule-$scenario.log
    if ! "$REPO_ROOT/tests/utils/timed.sh" "molecule $scenario" molecule test -s "$scenario" 2>&1 | stamp_into "$scenario_log"; then
        failed+=("$scenario")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    for scenario in "${failed[@]}"; do
        log "---- the failures in .tmp/molecule-$scenario.log ----"
        sed 's/\x1b\[[0-9;]*m//g' "$REPO_ROOT/.tmp/molecule-$scenario.log" \
            | grep -E 'fatal: |failed: |FAILED!|CRITICAL|ERROR|TASK \[' \
            | grep -v 'glob failed' | grep -B1 -E 'fatal: |failed: |FAILED!|CRITICAL|ERROR' \
            | grep -v '^--$' | cut -c1-1500 | tail -n 40 \
            | tee "$REPO_ROOT/.tmp/failures-molecule-$scenario.txt" || true
    done
    die "molecule: failed scenarios: ${failed[*]}"
fi
