#!/usr/bin/env bash
# Install the system packages the tests need, but only the missing ones (apt-get update runs
# only then). Debian/Ubuntu, as root. Elsewhere, or without root, it only checks.
set -euo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"

packages=(
    # libvirt and QEMU: the daemon the integration tests and Molecule scenarios talk to
    libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
    # UEFI firmware and the emulated TPM (kvm_domain's firmware: efi and tpm; the UEFI guest test)
    ovmf swtpm swtpm-tools
    # libvirt networks: DHCP/DNS and NAT rules
    dnsmasq-base iptables
    # pip builds libvirt-python from source
    libvirt-dev pkg-config gcc python3-dev
    # `python3 -m venv` on Debian's own python
    python3-venv
    # ansible-test sanity's shellcheck test (skipped with a warning when it is missing)
    shellcheck
    # the Debian cloud image (build-cloud-image.sh): root filesystem, partition table, ext4
    mmdebstrap fdisk e2fsprogs
    # ... and its EFI system partition (FAT, filled without a mount)
    dosfstools mtools
    # the test sshd of qemu+ssh:// (remote-ssh.sh); its own service is not started (below)
    openssh-server
)
# Installed here, before any tier runs, so that no test installs a package while another tier
# runs (the tiers' own installs are fallbacks for when they run alone).

if ! command -v dpkg-query >/dev/null 2>&1; then
    log "deps: not a Debian-family system; skipping. Install the equivalents of: ${packages[*]}"
    exit 0
fi

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)
    [ "${status:0:2}" = "ii" ] || missing+=("$package")
done

# build-tiny-guest.sh downloads (never installs) linux-image-amd64's kernel and busybox-static:
# apt's package lists must know them.
apt_knows() { apt-cache show "$1" >/dev/null 2>&1; }
lists_ok=yes
apt_knows linux-image-amd64 && apt_knows busybox-static || lists_ok=no

if [ "${#missing[@]}" -eq 0 ] && [ "$lists_ok" = yes ]; then
    log "deps: all ${#packages[@]} system packages are installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    die "deps: missing packages (${missing[*]}) or stale package lists, and not root: run 'sudo make deps'"
fi

apt_get update -qq
[ "${#missing[@]}" -eq 0 ] && exit 0
log "deps: installing ${missing[*]}"
# A package's postinst must not start a service on this machine (openssh-server would listen on
# every address): policy-rc.d refuses service starts for the duration of the install.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# system-deps.sh: no service starts during its install\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt_get install -y -qq --no-install-recommends "${missing[@]}"
