#!/usr/bin/env bash
# ruff over the Python code (ruff.toml), ansible-lint (.ansible-lint, production profile,
# offline) over roles/, playbooks/ and the integration targets, and antsibull-changelog lint
# over the changelog fragments. Runs them all and fails if any fails.
set -uo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"
require_venv
# ansible-lint keeps its cache in ~/.cache/ansible-compat: ~ is .tmp/home/lint (common.sh).
use_own_home lint
cd "$REPO_ROOT" || exit 1
rc=0

python_paths=()
for path in plugins tests extensions; do
    [ -n "$(find "$path" -name '*.py' 2>/dev/null | head -n 1)" ] && python_paths+=("$path")
done
if [ "${#python_paths[@]}" -eq 0 ]; then
    log "lint: no Python files yet; ruff skipped"
else
    log "lint: ruff check ${python_paths[*]}"
    if "$VENV/bin/ruff" check "${python_paths[@]}"; then log "lint: ruff clean"; else rc=1; fi
fi

ansible_paths=()
for path in roles playbooks extensions tests/integration/targets; do
    [ -n "$(find "$path" -type f 2>/dev/null | head -n 1)" ] && ansible_paths+=("$path")
done
if [ "${#ansible_paths[@]}" -eq 0 ]; then
    log "lint: no roles, playbooks or integration targets yet; ansible-lint skipped"
else
    link_collection
    # Resolves hypervisor.kvm's own modules to this checkout without installing anything.
    export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS_ROOT
    log "lint: ansible-lint ${ansible_paths[*]}"
    "$VENV/bin/ansible-lint" --offline --profile production "${ansible_paths[@]}" || rc=1
fi
log "lint: antsibull-changelog lint"
if "$VENV/bin/antsibull-changelog" lint; then log "lint: changelog fragments clean"; else rc=1; fi
exit "$rc"
