#!/usr/bin/env bash
# Install the system packages the tests need, but only the missing ones (apt-get update runs
# only then). Debian/Ubuntu, as root. Elsewhere, or without root, it only checks.
set -euo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"

packages=(
    # libvirt and QEMU: the daemon the integration tests and Molecule scenarios talk to
    libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
    # libvirt networks: DHCP/DNS and NAT rules
    dnsmasq-base iptables
    # pip builds libvirt-python from source
    libvirt-dev pkg-config gcc python3-dev
    # `python3 -m venv` on Debian's own python
    python3-venv
    # ansible-test sanity's shellcheck test (skipped with a warning when it is missing)
    shellcheck
)

if ! command -v dpkg-query >/dev/null 2>&1; then
    log "deps: not a Debian-family system; skipping. Install the equivalents of: ${packages[*]}"
    exit 0
fi

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)
    [ "${status:0:2}" = "ii" ] || missing+=("$package")
done

if [ "${#missing[@]}" -eq 0 ]; then
    log "deps: all ${#packages[@]} system packages are installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    die "deps: missing packages (${missing[*]}) and not root: run 'sudo make deps'"
fi

log "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
