#!/usr/bin/env bash
# `make demo` (and `make demo-clean` with DEMO_STATE=absent): playbooks/site.yml against this
# machine with playbooks/vars/demo.yml. kvm_host prepares the host, then kvm_guest creates the
# pool `kvmdemo`, the NAT network `kvmdemo` (192.168.150.0/24, bridge kvmdemobr0) and the guest
# `kvmdemo-tiny`: a kernel + busybox initramfs built from Debian packages by
# build-tiny-guest.sh (cached in $DEMO_CACHE; no internet), booted under QEMU emulation, waited
# for until it has its DHCP address. Re-running changes nothing.
# demo-clean runs playbooks/teardown.yml with the same variables: exactly those three go; it
# first runs demo-debian.sh the same way, which removes what `make demo-debian` made.
# DEMO_ARGS passes more ansible-playbook arguments, for example a real cloud image instead:
#   make demo DEMO_ARGS='-e @my-guests.yml'
set -euo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"
require_venv

# QEMU reads the kernel as libvirt-qemu: the cache must be where that user can read.
DEMO_CACHE=${DEMO_CACHE:-/var/cache/hypervisor-kvm-demo/tiny-guest}
mapfile -t tiny < <("$REPO_ROOT/tests/utils/build-tiny-guest.sh" "$DEMO_CACHE")
[ "${#tiny[@]}" -eq 2 ] || die "build-tiny-guest.sh did not print the kernel and initrd paths"

link_collection
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS_ROOT
cd "$REPO_ROOT"
if [ "${DEMO_STATE:-present}" = absent ]; then
    # DEMO_ARGS describe `make demo`'s guests, not the Debian demo's.
    DEMO_ARGS='' "$REPO_ROOT/tests/utils/demo-debian.sh"
    playbook=playbooks/teardown.yml
else
    playbook=playbooks/site.yml
fi
read -r -a extra <<<"${DEMO_ARGS:-}"
"$VENV/bin/ansible-playbook" -i localhost, -c local \
    -e @playbooks/vars/demo.yml -e "demo_kernel=${tiny[0]}" -e "demo_initrd=${tiny[1]}" \
    "${extra[@]}" "$playbook"
