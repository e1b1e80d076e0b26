#!/usr/bin/env bash
# ansible-test integration against the real libvirtd (qemu:///system) on this machine, no
# containers: the controller and the target are the venv's python, which has libvirt-python
# and lxml. TARGETS="kvm_pool kvm_pool_info" runs only those targets (names of folders under
# tests/integration/targets, or ansible-test aliases such as "destructive/"); the default is
# every target. Extra arguments go to ansible-test (e.g. --list-targets, --start-at-task).
#
# Which targets run: ansible-test lists the folders under tests/integration/targets that
# git knows (tracked, or untracked and not git-ignored) and skips those whose `aliases` file
# says disabled, unsupported, unstable or hidden. --allow-destructive is passed: the targets
# change this host's libvirt (objects named kvmtest*, which `make test-clean` removes).
set -euo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"
require_venv

targets_dir=$REPO_ROOT/tests/integration/targets
if [ -z "$(find "$targets_dir" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1)" ]; then
    log "integration: no integration targets yet (tests/integration/targets is empty)"
    exit 0
fi
if ! git_sees tests/integration/targets; then
    die "integration: git sees no file under tests/integration/targets (git-ignored?); ansible-test would find no target"
fi

"$REPO_ROOT/tests/utils/libvirt-daemon.sh" start
# Leftovers of an earlier, failed run would spoil the "first run changed" assertions.
"$REPO_ROOT/tests/utils/cleanup.sh"

link_collection
cd "$COLLECTION_DIR"
# ansible-test resolves its working directory to the real path, outside ansible_collections/:
# this tells it where the collection is.
export ANSIBLE_TEST_CONTENT_ROOT=$COLLECTION_DIR
# shellcheck disable=SC2086  # TARGETS is a list of words
exec "$VENV/bin/ansible-test" integration -v --allow-destructive \
    --python-interpreter "$VENV/bin/python" "$@" ${TARGETS:-}
