# shellcheck shell=bash
# Sourced by the scripts in tests/utils: the paths and names the build/test harness shares.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
VENV=${VENV:-$REPO_ROOT/.venv}
# ansible-test, pytest and ansible-lint need the collection at
# <root>/ansible_collections/hypervisor/kvm: a symlink to the repository under .tmp (git-ignored).
COLLECTIONS_ROOT=$REPO_ROOT/.tmp/collections
COLLECTION_DIR=$COLLECTIONS_ROOT/ansible_collections/hypervisor/kvm
# Every libvirt object and scratch directory the tests create starts with this prefix.
KVMTEST_PREFIX=${KVMTEST_PREFIX:-kvmtest}
LIBVIRT_URI=${LIBVIRT_URI:-qemu:///system}

# Tools from the venv come first; Ansible's interpreter discovery would otherwise pick a
# broken pyenv shim on the build machines, so modules run under the venv's python
# (it has libvirt-python and lxml).
PATH=$VENV/bin:$PATH
export PATH
export ANSIBLE_PYTHON_INTERPRETER=${ANSIBLE_PYTHON_INTERPRETER:-$VENV/bin/python}

log() { printf '%s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

require_venv() {
    [ -x "$VENV/bin/python" ] || die "no virtualenv at $VENV: run 'make venv' first"
}

# Create (or refresh) the ansible_collections/hypervisor/kvm symlink to the repository.
link_collection() {
    mkdir -p "$(dirname "$COLLECTION_DIR")"
    if [ "$(readlink "$COLLECTION_DIR" 2>/dev/null)" != "$REPO_ROOT" ]; then
        rm -rf "$COLLECTION_DIR"
        ln -s "$REPO_ROOT" "$COLLECTION_DIR"
    fi
}

# Does git see at least one file under $1? (tracked, or untracked but not ignored)
git_sees() {
    [ -n "$(git -C "$REPO_ROOT" ls-files --cached --others --exclude-standard -- "$1" | head -n 1)" ]
}
