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

# Create (or refresh) the ansible_collections/hypervisor/kvm symlink to the repository. Tiers may
# call this at the same moment: the link is made under a name of its own, then renamed over
# the old one (rename(2) is atomic), so no caller ever sees it missing or half made.
link_collection() {
    mkdir -p "$(dirname "$COLLECTION_DIR")"
    [ "$(readlink "$COLLECTION_DIR" 2>/dev/null)" = "$REPO_ROOT" ] && return 0
    local new_link=$COLLECTION_DIR.new.$$
    ln -sfn "$REPO_ROOT" "$new_link"
    if [ -d "$COLLECTION_DIR" ] && [ ! -L "$COLLECTION_DIR" ]; then
        rm -rf "$COLLECTION_DIR"
    fi
    mv -Tf "$new_link" "$COLLECTION_DIR"
}

# Give this tier a home directory of its own, .tmp/home/NAME (kept between runs of the same
# checkout, so caches stay warm; a fresh clone starts with none). ansible-test, Molecule and
# ansible-lint create their state in the home directory on first use (~/.ansible/test/venv and
# the get-pip stand-in, ~/.cache/molecule, ~/.cache/ansible-compat): a tier would otherwise depend
# on what an earlier run left in root's home, and tiers running at once would share it. OpenSSH
# is not affected: it finds ~/.ssh through the password database, not $HOME (the tests give it
# known_hosts files of their own). Ansible's async jobs go to an absolute directory under it:
# async_status looks for them in the remote user's home from the password database.
use_own_home() {
    HOME=$REPO_ROOT/.tmp/home/$1
    mkdir -p "$HOME"
    ANSIBLE_HOME=$HOME/.ansible
    ANSIBLE_ASYNC_DIR=$HOME/.ansible_async
    XDG_CACHE_HOME=$HOME/.cache
    XDG_CONFIG_HOME=$HOME/.config
    XDG_DATA_HOME=$HOME/.local/share
    export HOME ANSIBLE_HOME ANSIBLE_ASYNC_DIR XDG_CACHE_HOME XDG_CONFIG_HOME XDG_DATA_HOME
}

# apt-get, one call at a time across the test scripts (make deps installs everything up front;
# these are the fallbacks of scripts that also run alone): two integration streams, or Molecule
# beside them, could otherwise meet on dpkg's lock and the second would fail at once. dpkg's
# own lock is waited for too (an unattended upgrade).
apt_get() {
    DEBIAN_FRONTEND=noninteractive flock -w 1200 /var/lock/hypervisor-kvm-tests-apt.lock \
        apt-get -o DPkg::Lock::Timeout=600 "$@"
}

# Does git see at least one file under $1? (tracked, or untracked but not ignored)
git_sees() {
    [ -n "$(git -C "$REPO_ROOT" ls-files --cached --others --exclude-standard -- "$1" | head -n 1)" ]
}
