#!/usr/bin/env bash
# Unit tests: pytest over tests/unit, with the collection importable as
# ansible_collections.hypervisor.kvm (PYTHONPATH is the folder above ansible_collections).
# Extra pytest arguments: PYTEST_ARGS="-k units -x" (or "-n auto" for pytest-xdist).
set -euo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"
require_venv
use_own_home unit
link_collection

cd "$COLLECTION_DIR"
if [ ! -d tests/unit ]; then
    log "unit: 0 tests (no tests/unit yet)"
    exit 0
fi
export PYTHONPATH=$COLLECTIONS_ROOT${PYTHONPATH:+:$PYTHONPATH}
rc=0
# The fault tier (test_faults.py) writes one line per run: faults injected, faults that behaved.
export KVM_FAULTS_REPORT=$REPO_ROOT/.tmp/unit-faults.txt
mkdir -p "$REPO_ROOT/.tmp"
: >"$KVM_FAULTS_REPORT"
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
"$VENV/bin/python" -m pytest -q ${PYTEST_ARGS:-} tests/unit || rc=$?
if [ -s "$KVM_FAULTS_REPORT" ]; then
    awk '{ runs++; injected += $1; behaved += $2 }
         END { printf "unit: fault tier: %d runs, %d faults injected, %d behaved\n", runs, injected, behaved }' \
        "$KVM_FAULTS_REPORT"
fi

if [ "$rc" -eq 5 ] && [ -z "$(find tests/unit -name 'test_*.py' -o -name '*_test.py' 2>/dev/null | head -n 1)" ]; then
    # pytest exits 5 when it collects nothing: fine while there are no test files at all.
    log "unit: 0 tests (tests/unit has no test files yet)"
    exit 0
fi
exit "$rc"
