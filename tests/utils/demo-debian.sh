#!/usr/bin/env bash
# `make demo-debian` (and, with DEMO_STATE=absent, the part of `make demo-clean` that removes it):
# playbooks/site.yml against this machine with playbooks/vars/demo-debian.yml. kvm_host prepares
# the host, then kvm_guest creates the pool `kvmdemo-debian`, the NAT network `kvmdemo-debian`
# (192.168.151.0/24, bridge kvmdemobr1, no DNS) and the guest `kvmdemo-debian`: an overlay on the
# Debian 12 cloud image that build-cloud-image.sh builds from Debian's package repositories
# (cached in its cache, CLOUD_IMAGE_CACHE; no image download), booted from its own disk, with
# cloud-init giving the user `debian` an SSH key generated here ($DEMO_DEBIAN_DIR/id_ed25519).
# It waits (bounded) until that user can log in, then prints the ssh command line.
# Re-running changes nothing and prints the line again.
# DEMO_STATE=absent runs playbooks/teardown.yml with the same variables (the guest, its volumes,
# the network and the pool go, nothing else) and removes the key pair.
# DEMO_ARGS passes more ansible-playbook arguments.
set -euo pipefail
# shellcheck source=tests/utils/common.sh
. "$(dirname "$0")/common.sh"
require_venv

GUEST=kvmdemo-debian
DEMO_USER=debian
DEMO_DEBIAN_DIR=${DEMO_DEBIAN_DIR:-$REPO_ROOT/.tmp/demo-debian}
KEY=$DEMO_DEBIAN_DIR/id_ed25519
SSH_WAIT=${DEMO_DEBIAN_SSH_WAIT:-300}

link_collection
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS_ROOT
cd "$REPO_ROOT"
read -r -a extra <<<"${DEMO_ARGS:-}"
playbook() {
    "$VENV/bin/ansible-playbook" -i localhost, -c local -e @playbooks/vars/demo-debian.yml "$@" "${extra[@]}"
}

if [ "${DEMO_STATE:-present}" = absent ]; then
    # teardown.yml reads only the names (guest, base volume, network, pool) from the variables.
    playbook -e demo_debian_image=none -e demo_debian_pubkey=none playbooks/teardown.yml
    rm -rf -- "$DEMO_DEBIAN_DIR"
    exit 0
fi

image=$("$REPO_ROOT/tests/utils/build-cloud-image.sh" | tail -n 1)
[ -f "$image" ] || die "build-cloud-image.sh did not print the image's path"

mkdir -p "$DEMO_DEBIAN_DIR"
chmod 0700 "$DEMO_DEBIAN_DIR"
[ -f "$KEY" ] || ssh-keygen -q -t ed25519 -N '' -C "$GUEST demo" -f "$KEY"

# As JSON: the key has spaces, which key=value extra vars would split.
printf '{"demo_debian_image": "%s", "demo_debian_pubkey": "%s"}' "$image" "$(cat "$KEY.pub")" \
    >"$DEMO_DEBIAN_DIR/vars.json"
playbook -e "@$DEMO_DEBIAN_DIR/vars.json" playbooks/site.yml

# The guest's address from its DHCP lease (the role waited for it).
address=$(virsh -c "$LIBVIRT_URI" domifaddr "$GUEST" --source lease \
    | awk '$3 == "ipv4" { sub("/.*", "", $4); print $4; exit }')
[ -n "$address" ] || die "$GUEST has no DHCP lease on the network kvmdemo-debian"

# sshd answers some seconds after the lease, and cloud-init installs the key before sshd starts:
# try the login itself, only on the guest's address, bounded in time.
ssh_opts=(-i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null)
deadline=$((SECONDS + SSH_WAIT))
until ssh "${ssh_opts[@]}" -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR \
        "$DEMO_USER@$address" true 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "no SSH login as $DEMO_USER@$address within ${SSH_WAIT} s (console: virsh console $GUEST)"
    sleep 3
done
log "$GUEST is up; log in with:"
log "ssh ${ssh_opts[*]} $DEMO_USER@$address"
