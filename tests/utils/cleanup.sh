#!/usr/bin/env bash
# Remove everything the tests leave behind: libvirt domains, networks, pools and volumes whose
# name starts with $KVMTEST_PREFIX (default "kvmtest"), and /var/tmp/<prefix>* directories.
# Objects without the prefix are never touched. Nothing to clean, or no libvirt: not an error.
set -uo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"

[ -n "$KVMTEST_PREFIX" ] || die "KVMTEST_PREFIX is empty"
removed=0

v() { timeout 60 virsh -q -c "$LIBVIRT_URI" "$@"; }
quiet() { "$@" >/dev/null 2>&1; }

# The names from a virsh list command that start with the prefix.
prefixed() { v "$@" 2>/dev/null | awk -v p="$KVMTEST_PREFIX" 'index($1, p) == 1 { print $1 }'; }

clean_libvirt() {
    local name pool vol

    for name in $(prefixed list --all --name); do
        quiet v destroy "$name"
        # Undefine what libvirt allows; a transient domain is gone once destroyed.
        quiet v undefine "$name" --nvram --managed-save --snapshots-metadata --checkpoints-metadata \
            || quiet v undefine "$name" --nvram --managed-save --snapshots-metadata \
            || quiet v undefine "$name" --managed-save --snapshots-metadata \
            || quiet v undefine "$name"
        log "cleanup: domain $name"
        removed=$((removed + 1))
    done

    for name in $(prefixed net-list --all --name); do
        quiet v net-destroy "$name"
        quiet v net-undefine "$name"
        log "cleanup: network $name"
        removed=$((removed + 1))
    done

    for pool in $(v pool-list --all --name 2>/dev/null); do
        if [ "${pool#"$KVMTEST_PREFIX"}" != "$pool" ]; then
            # A test pool: all its volumes go, then the pool (its directory stays unless it
            # is one of the /var/tmp/<prefix>* scratch directories removed below).
            quiet v pool-start "$pool"
            for vol in $(v vol-list "$pool" 2>/dev/null | awk '{ print $1 }'); do
                quiet v vol-delete --pool "$pool" "$vol" && log "cleanup: volume $pool/$vol"
            done
            quiet v pool-destroy "$pool"
            quiet v pool-undefine "$pool"
            log "cleanup: pool $pool"
            removed=$((removed + 1))
        else
            # Someone else's pool: only volumes with the prefix (tests may put volumes in
            # an existing pool). Inactive pools are left as they are.
            for vol in $(v vol-list "$pool" 2>/dev/null | awk -v p="$KVMTEST_PREFIX" 'index($1, p) == 1 { print $1 }'); do
                quiet v vol-delete --pool "$pool" "$vol" && log "cleanup: volume $pool/$vol" \
                    && removed=$((removed + 1))
            done
        fi
    done
}

if ! command -v virsh >/dev/null 2>&1; then
    log "cleanup: virsh not installed; no libvirt objects to remove"
elif ! quiet timeout 10 virsh -c "$LIBVIRT_URI" version; then
    log "cleanup: libvirt does not answer on $LIBVIRT_URI; no libvirt objects removed"
else
    clean_libvirt
fi

for dir in /var/tmp/"$KVMTEST_PREFIX"*; do
    [ -e "$dir" ] || continue
    rm -rf -- "$dir" && log "cleanup: $dir"
    removed=$((removed + 1))
done

log "cleanup: removed $removed object(s) with prefix '$KVMTEST_PREFIX'"
exit 0
