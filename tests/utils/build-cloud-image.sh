#!/usr/bin/env bash
# Usage: build-cloud-image.sh [--release 12|13] [--bare-host] [CACHE_DIR]
# Builds a Debian 12 (bookworm, the default) or Debian 13 (trixie) cloud-style qcow2 image from
# Debian's package repositories, no image download: mmdebstrap makes the root filesystem, then
# the disk is put together in a plain file, without loop devices or mounts:
#   - a GPT (sfdisk on the file), hybrid as distribution cloud images are: a 1 MiB BIOS boot
#     partition at 1 MiB, a 32 MiB EFI system partition (FAT, made with mkfs.fat and filled with
#     mtools), and the ext4 root filesystem to the end, filled by `mkfs.ext4 -d ROOTDIR -E offset=`
#     (a fixed filesystem UUID, named in /etc/fstab);
#   - GRUB for BIOS: boot.img in the protective MBR, told where core.img starts, and core.img in
#     the BIOS boot partition (what grub-bios-setup does on a block device); GRUB for UEFI:
#     /EFI/BOOT/BOOTX64.EFI on the ESP. Both are made by the image's own grub-mkimage with an
#     embedded configuration that finds the root filesystem by its UUID; both read
#     /boot/grub/grub.cfg, which boots /vmlinuz and /initrd.img at once (timeout 0,
#     `root=UUID=... ro console=tty0 console=ttyS0,115200 net.ifnames=0`); /vmlinuz and
#     /initrd.img follow kernel upgrades, so no update-grub is needed;
#   - converted to a zstd-compressed qcow2 of 2 GiB virtual size (about 220 MB).
# So it boots from its own disk like a distribution cloud image, under SeaBIOS and under OVMF
# (no <kernel> in the domain). Inside: systemd with dbus, cloud-init (datasource_list: [ NoCloud, None ]),
# openssh-server, python3, sudo, qemu-guest-agent (udev starts it when the
# org.qemu.guest_agent.0 channel appears), ifupdown with isc-dhcp-client, cloud-guest-utils,
# fdisk and e2fsprogs (cloud-init grows the partition and the filesystem to the disk), locales
# (C.UTF-8 is the default, so cloud-init generates none), grub-pc-bin, grub-efi-amd64-bin and linux-image-amd64
# (linux-image-cloud-amd64 has no AHCI driver: it cannot read the seed on the SATA CD-ROM of a
# q35 guest). The initramfs holds only the virtio, virtio-scsi, SATA/IDE disk and ext4 drivers
# (7 MB instead of 36 MB: TCG unpacks and probes it faster).
# The network is cloud-init's: a NoCloud network-config (version 1 or 2) in the seed, or else
# cloud-init's fallback, DHCP on the first NIC. net.ifnames=0 names the first NIC eth0 whatever
# its PCI slot, so a network-config can name it without knowing its MAC. The image sets no
# `network:` of its own: cloud-init ranks that above the seed's network-config, which would then
# be ignored. On Debian 13 the fallback also adds `iface eth0 inet6 dhcp`, and without a DHCPv6
# server networking.service waits 5 minutes at every boot: give Debian 13 guests a
# network-config (kvm_host_in_guest gives its hosts `eth0: {dhcp4: true}`).
# First boot belongs to each guest: no hostname, an empty /etc/machine-id, no SSH host keys
# (systemd and cloud-init's ssh module make them; ECDSA and Ed25519 only, as RSA takes 7 s
# under TCG). No resolv.conf from the build host; the apt, dpkg, e2scrub and fstrim timers and
# e2scrub_reap are off (a test image sends no traffic by itself); man pages, documentation and
# translations are left out (dpkg path-exclude, kept for later installs).
# Under QEMU emulation (TCG) a guest has its DHCP lease about 40 to 80 s after the start and
# answers SSH 15 to 35 s later, depending on the host's load; an ACPI shutdown takes about 6 s.
#
# --bare-host: a fresh server for the kvm_host role to prepare (the Molecule scenario
# kvm_host_in_guest). Everything above, and no QEMU, libvirt or their Python bindings; instead an
# offline apt repository inside the image, /var/local/kvm-host-packages, with exactly the
# packages the role installs on that release (__kvm_host_packages of
# roles/kvm_host/vars/Debian.yml) and their dependencies, as apt on this root filesystem resolves
# them (recommends included, as apt installs them by default). /etc/apt/sources.list names only
# that repository (`deb [trusted=yes] file:/var/local/kvm-host-packages ./`) and the package
# lists are empty, as on a fresh cloud image: the role's install refreshes them, then installs
# for real, and the guest sends no traffic beyond its virtual network. udev does not load the
# KVM modules at boot by CPU feature (a rule empties the CPU devices' modalias): the role loads
# them, and they come back after a reboot only if the role persisted them. An offline site does the
# same with a mirror of its own (docs/kvm-host.md).
#
# CACHE_DIR (default: $CLOUD_IMAGE_CACHE, else /var/cache/hypervisor-kvm-tests/cloud-image:
# outside the repository, where QEMU's user libvirt-qemu can read) gets the image
# debian-<release>-<flavor>-amd64.qcow2 (flavor cloud, or bare-host) and its .build-info, each
# flavor beside the others. An image is reused when this very script built it (its checksum is
# in the .build-info): nothing else runs, no apt, no network. The mmdebstrap tarball is cached
# too (rootfs-<image>-<recipe>.tar, keyed by the suite, the mirrors, the package lists and the
# initramfs settings), so a change further down rebuilds the disk from it in about 10 s
# without downloading. Builds of one image take turns (a lock per image); different images
# build at the same time. CLOUD_IMAGE_REBUILD=1 rebuilds the disk, CLOUD_IMAGE_REBUILD=all the
# tarball too. CLOUD_IMAGE_MIRROR and CLOUD_IMAGE_SECURITY_MIRROR replace deb.debian.org.
# The last line on stdout is the image's absolute path; everything else goes to stderr.
#
# A cold build (about 1.5 to 2 minutes) runs as root on Debian/Ubuntu: it installs what it lacks
# (mmdebstrap, fdisk, e2fsprogs, qemu-utils, apt-utils) with apt-get, like system-deps.sh, and
# mmdebstrap downloads the packages from the Debian repositories. It needs about 2 GB free in CACHE_DIR
# while it builds (the tarball of about 700 MB stays).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# shellcheck source=tests/utils/common.sh
. "$REPO_ROOT/tests/utils/common.sh"  # apt_get
SCRIPT=$REPO_ROOT/tests/utils/build-cloud-image.sh

log() { printf 'cloud-image: %s\n' "$*" >&2; }
die() { printf 'cloud-image: ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v s="$1" -v e="$(date +%s%N)" 'BEGIN { printf "%.1f", (e - s) / 1e9 }'; }

USAGE='build-cloud-image.sh [--release 12|13] [--bare-host] [CACHE_DIR]'
RELEASE=12
BARE_HOST=no
cache_arg=''
while [ "$#" -gt 0 ]; do
    case $1 in
        --release) [ "$#" -ge 2 ] || die "--release needs 12 or 13 (usage: $USAGE)"; RELEASE=$2; shift 2 ;;
        --release=*) RELEASE=${1#*=}; shift ;;
        --bare-host) BARE_HOST=yes; shift ;;
        -h | --help) printf 'usage: %s\n' "$USAGE"; exit 0 ;;
        -*) die "unknown option $1 (usage: $USAGE)" ;;
        *) [ -z "$cache_arg" ] || die "one CACHE_DIR only (usage: $USAGE)"; cache_arg=$1; shift ;;
    esac
done
case $RELEASE in
    12) SUITE=bookworm ;;
    13) SUITE=trixie ;;
    *) die "--release $RELEASE: 12 (bookworm) or 13 (trixie)" ;;
esac
FLAVOR=cloud
[ "$BARE_HOST" = yes ] && FLAVOR=bare-host
STEM=debian-$RELEASE-$FLAVOR-amd64
IMAGE_NAME=$STEM.qcow2
CACHE_DIR=${cache_arg:-${CLOUD_IMAGE_CACHE:-/var/cache/hypervisor-kvm-tests/cloud-image}}
MIRROR=${CLOUD_IMAGE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${CLOUD_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DISK_SIZE_MIB=2048
# The partitions, in 512-byte sectors (see "the disk" below).
BIOS_BOOT_START=2048
BIOS_BOOT_SECTORS=2048
ESP_START=4096
ESP_SECTORS=65536
ROOT_START=69632
# Fixed, so that the build is repeatable; every guest of the image shares it, as with any
# distribution cloud image (the guest's disk is its own overlay).
ROOT_UUID=6c1d0a3e-5e2b-4f7a-9a51-2d8c3f0b7e10
PACKAGES=(
    systemd-sysv udev dbus                    # init (minbase has none); dbus for hostnamectl & co
    cloud-init cloud-guest-utils fdisk e2fsprogs  # NoCloud seed, growpart + resize2fs
    openssh-server python3 sudo               # what Ansible needs to manage the guest
    qemu-guest-agent                          # virsh domifaddr --source agent, fs freeze, ...
    ifupdown isc-dhcp-client netbase iproute2  # cloud-init renders /etc/network/interfaces.d
    locales procps
    linux-image-amd64 grub-pc-bin grub-efi-amd64-bin  # the kernel (AHCI, for the seed CD-ROM), GRUB for BIOS and UEFI
)
# Left out of the image (dpkg path-exclude: kept in /etc/dpkg/dpkg.cfg.d for later installs).
DPKG_OPTS=(
    'path-exclude=/usr/share/man/*'
    'path-exclude=/usr/share/doc/*'
    'path-include=/usr/share/doc/*/copyright'
    'path-exclude=/usr/share/locale/*'
    'path-include=/usr/share/locale/locale.alias'
    'path-exclude=/usr/share/info/*'
)
# Units (their links under /etc/systemd/system) that would make a test guest talk to the internet
# or scan its disk while a test runs: the apt, dpkg, e2scrub and fstrim timers, and e2scrub_reap
# (LVM snapshots: there are none; it takes 25 s of CPU under TCG during the boot).
DISABLED_UNITS=(
    timers.target.wants/apt-daily.timer timers.target.wants/apt-daily-upgrade.timer
    timers.target.wants/dpkg-db-backup.timer timers.target.wants/e2scrub_all.timer
    timers.target.wants/fstrim.timer multi-user.target.wants/e2scrub_reap.service
)
# The bare host's offline repository, and what goes into it: the kvm_host role's own package list.
REPO_DIR=/var/local/kvm-host-packages
HOST_PACKAGES=()
if [ "$BARE_HOST" = yes ]; then
    role_vars=$REPO_ROOT/roles/kvm_host/vars/Debian.yml
    mapfile -t HOST_PACKAGES < <(awk '/^__kvm_host_packages:/ { inlist = 1; next }
        inlist && /^ *- / { print $2; next } inlist { exit }' "$role_vars")
    [ "${#HOST_PACKAGES[@]}" -gt 0 ] || die "no __kvm_host_packages list in $role_vars"
fi

script_sum=$(sha256sum "$SCRIPT" | cut -c1-16)
sources=(
    "deb $MIRROR $SUITE main"
    "deb $MIRROR $SUITE-updates main"
    "deb $SECURITY_MIRROR $SUITE-security main"
)
FSTAB="UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1"
# The drivers the initramfs needs to mount the root filesystem from a virtio, virtio-scsi,
# SATA (AHCI) or IDE disk; MODULES=list keeps it to those (7 MB instead of 36 MB with
# MODULES=most, which TCG unpacks and probes slowly). crc32c: ext4's metadata checksums.
# sr_mod: the seed's CD-ROM is there before cloud-init's first stage looks for it (on Debian 13
# it started 2 s before udev loaded sr_mod from the root filesystem, found no seed, and the
# guest came up as "localhost" without its user).
INITRAMFS_MODULES=(virtio_pci virtio_blk virtio_scsi sd_mod sr_mod ahci ata_piix ext4 crc32c_generic)
# Runs in mmdebstrap before any package is installed, so that the kernel's postinst builds the
# initramfs with these settings and with e2fsck for the root filesystem from /etc/fstab.
SETUP_HOOK="echo '$FSTAB' >\"\$1/etc/fstab\" \
&& mkdir -p \"\$1/etc/initramfs-tools/conf.d\" \"\$1/usr/share/initramfs-tools/modules.d\" \
&& echo MODULES=list >\"\$1/etc/initramfs-tools/conf.d/hypervisor-kvm.conf\" \
&& printf '%s\\n' ${INITRAMFS_MODULES[*]} >\"\$1/usr/share/initramfs-tools/modules.d/hypervisor-kvm\""
# The bare host: after the packages are installed, apt downloads what the kvm_host role would
# install (recommends included) into the offline repository's directory, inside the chroot;
# mmdebstrap's own .debs stay where they are and are cleaned up as usual.
CUSTOMIZE_HOOK=''
if [ "$BARE_HOST" = yes ]; then
    CUSTOMIZE_HOOK="mkdir -p \"\$1$REPO_DIR/partial\" \
&& chroot \"\$1\" apt-get install --download-only --yes -o APT::Install-Recommends=true \
-o Dir::Cache::Archives=$REPO_DIR/ ${HOST_PACKAGES[*]} \
&& rm -rf \"\$1$REPO_DIR/partial\" \"\$1$REPO_DIR/lock\""
fi
recipe_sum=$(printf '%s\n' "$SUITE" "${sources[@]}" "${PACKAGES[@]}" "${DPKG_OPTS[@]}" "$SETUP_HOOK" "$CUSTOMIZE_HOOK" \
    | sha256sum | cut -c1-16)
BUILD_INFO=$STEM.build-info

cached() {
    [ -s "$CACHE_DIR/$IMAGE_NAME" ] && grep -qx "script=$script_sum" "$CACHE_DIR/$BUILD_INFO" 2>/dev/null
}

mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd -P)
IMAGE=$CACHE_DIR/$IMAGE_NAME
rebuild=${CLOUD_IMAGE_REBUILD:-0}
if [ "$rebuild" = 0 ] && cached; then
    log "reusing $IMAGE ($(grep '^kernel=' "$CACHE_DIR/$BUILD_INFO" | cut -d= -f2))"
    printf '%s\n' "$IMAGE"
    exit 0
fi

# One build of an image at a time (parallel test runs); the second one reuses the first's.
exec 9>"$CACHE_DIR/.lock-$STEM"
flock 9
if [ "$rebuild" = 0 ] && cached; then
    log "reusing $IMAGE (built by a concurrent run)"
    printf '%s\n' "$IMAGE"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "building the image needs root (mmdebstrap, file ownership, chroot)"
command -v dpkg-query >/dev/null 2>&1 || die "not a Debian-family host: mmdebstrap and apt are needed"
start=$(date +%s%N)

# ---- build dependencies, only the missing ones -----------------------------------------------
missing=()
for package in mmdebstrap fdisk e2fsprogs qemu-utils apt-utils dosfstools mtools; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null || true)
    [ "${status:0:2}" = "ii" ] || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_get update -qq >&2
    apt_get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# mkfs.ext4 -d (populate from a directory) and -E offset need e2fsprogs 1.43 or later.
mkfs.ext4 -V 2>&1 | awk 'NR == 1 { split($2, v, "."); exit !(v[1] > 1 || (v[1] == 1 && v[2] >= 43)) }' \
    || die "mkfs.ext4 is older than 1.43 (no -d): $(mkfs.ext4 -V 2>&1 | head -n 1)"

# What a killed build of this image left (this one holds its lock: no other build of it runs),
# and what versions of this script before the per-image names left: the shared build-info of
# debian-12-cloud-amd64.qcow2 and root filesystem tarballs named rootfs-<recipe>.tar.
rm -rf "$CACHE_DIR"/.build."$STEM".*
rm -f "$CACHE_DIR/build-info" "$CACHE_DIR/.lock"
find "$CACHE_DIR" -maxdepth 1 -regextype posix-extended -regex '.*/rootfs-[0-9a-f]{16}[.]tar' -delete
work=$(mktemp -d "$CACHE_DIR/.build.$STEM.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

# ---- the root filesystem: mmdebstrap's tarball, cached by recipe ------------------------------
tarball=$CACHE_DIR/rootfs-$STEM-$recipe_sum.tar
if [ "$rebuild" = all ] || [ ! -s "$tarball" ]; then
    log "mmdebstrap $SUITE (${#PACKAGES[@]} packages and their dependencies)"
    tar_start=$(date +%s%N)
    dpkg_args=()
    for opt in "${DPKG_OPTS[@]}"; do
        dpkg_args+=("--dpkgopt=$opt")
    done
    # --skip=output/dev: no device nodes in the tarball (devtmpfs provides them at boot).
    hooks=(--setup-hook="$SETUP_HOOK")
    [ -z "$CUSTOMIZE_HOOK" ] || hooks+=(--customize-hook="$CUSTOMIZE_HOOK")
    mmdebstrap --quiet --variant=minbase --format=tar --skip=output/dev "${hooks[@]}" \
        --include="$(IFS=,; echo "${PACKAGES[*]}")" "${dpkg_args[@]}" \
        "$SUITE" "$work/rootfs.tar" "${sources[@]}" >&2 \
        || die "mmdebstrap failed (are the Debian repositories reachable?)"
    rm -f "$CACHE_DIR"/rootfs-"$STEM"-*.tar
    mv "$work/rootfs.tar" "$tarball"
    log "root filesystem tarball in $(elapsed "$tar_start") s: $(du -h "$tarball" | cut -f1)"
else
    log "reusing the root filesystem tarball $tarball"
fi

root=$work/root
mkdir "$root"
tar -C "$root" -xpf "$tarball" --numeric-owner --xattrs --xattrs-include='*'
# The mount point of devtmpfs (the tarball has no /dev).
mkdir -m 0755 "$root/dev"

# ---- the bare host's offline repository --------------------------------------------------------
repo_count=0
repo_size=''
if [ "$BARE_HOST" = yes ]; then
    repo=$root$REPO_DIR
    repo_count=$(find "$repo" -maxdepth 1 -name '*.deb' | wc -l)
    [ "$repo_count" -gt 0 ] || die "the root filesystem has no .deb in $REPO_DIR (mmdebstrap's customize hook)"
    # A flat repository: Packages and an (unsigned) Release; the source says trusted=yes.
    (cd "$repo" && apt-ftparchive packages . >Packages && gzip -9kf Packages && apt-ftparchive release . >Release)
    repo_size=$(du -sh "$repo" | cut -f1)
    printf '# hypervisor.kvm test image (tests/utils/build-cloud-image.sh --bare-host): only the offline\n# repository with what the kvm_host role installs; no network mirror.\ndeb [trusted=yes] file:%s ./\n' \
        "$REPO_DIR" >"$root/etc/apt/sources.list"
    rm -f "$root"/etc/apt/sources.list.d/*.list "$root"/etc/apt/sources.list.d/*.sources
    # Empty package lists, as on a fresh cloud image: the role refreshes them before it installs.
    find "$root/var/lib/apt/lists" -mindepth 1 -maxdepth 1 -type f -delete
    # dpkg without an fsync per unpacked file, as in container images: the role's install of
    # about 400 packages under QEMU emulation is the longest step of the test that uses this
    # image, and a test host that crashes mid-install is thrown away anyway.
    printf '# hypervisor.kvm test image: no fsync per file (a throw-away test host)\nforce-unsafe-io\n' \
        >"$root/etc/dpkg/dpkg.cfg.d/hypervisor-kvm-unsafe-io"
    # udev would load kvm_amd/kvm_intel at boot by the CPU's svm/vmx feature (the CPU devices'
    # modalias). This rule empties that modalias, so nothing loads them by CPU feature: they are
    # absent until the role loads them, and back after a reboot only because the role wrote
    # /etc/modules-load.d/kvm.conf. (A modprobe.d blacklist would not do: systemd-modules-load
    # honours it too, and the modules would never come back.)
    cat >"$root/etc/udev/rules.d/70-hypervisor-kvm-no-cpu-modalias.rules" <<'EOF'
# hypervisor.kvm test image (build-cloud-image.sh --bare-host): no module is loaded by CPU feature,
# so the kvm_host role is the one that loads (and persists) kvm and kvm_amd/kvm_intel.
ACTION=="add", SUBSYSTEM=="cpu", ENV{MODALIAS}=""
EOF
    log "offline repository $REPO_DIR: $repo_count packages, $repo_size (${HOST_PACKAGES[*]} and their dependencies)"
fi

# ---- first boot belongs to each guest ---------------------------------------------------------
rm -f "$root"/etc/ssh/ssh_host_*_key "$root"/etc/ssh/ssh_host_*_key.pub
rm -f "$root/etc/hostname" "$root/etc/resolv.conf" "$root/var/lib/dbus/machine-id"
: >"$root/etc/machine-id"
for unit in "${DISABLED_UNITS[@]}"; do
    if [ -L "$root/etc/systemd/system/$unit" ]; then
        rm -f "$root/etc/systemd/system/$unit"
    else
        log "Debian $RELEASE enables no $unit: nothing to disable"
    fi
done
find "$root/var/log" -type f -delete
rm -rf "$root"/var/lib/cloud/* "$root"/tmp/* "$root"/var/tmp/*

printf '# <file system> <mount point> <type> <options> <dump> <pass>\n%s\n' "$FSTAB" >"$root/etc/fstab"
# C.UTF-8 is built into glibc: cloud-init's locale module finds it set and generates nothing.
echo 'LANG=C.UTF-8' >"$root/etc/default/locale"
cat >"$root/etc/network/interfaces" <<'EOF'
# The loopback here; cloud-init writes the NICs' configuration to interfaces.d/50-cloud-init
# (DHCP on the first NIC, or the NoCloud seed's network-config).
auto lo
iface lo inet loopback

source /etc/network/interfaces.d/*
EOF
cat >"$root/etc/cloud/cloud.cfg.d/90_hypervisor_kvm.cfg" <<'EOF'
# hypervisor.kvm test image (tests/utils/build-cloud-image.sh)
# Only a NoCloud seed (a CD-ROM labelled cidata), never a network metadata service.
datasource_list: [ NoCloud, None ]
# Already the default locale: nothing to generate.
locale: C.UTF-8
# The hostname resolves without DNS (sudo, Ansible facts).
manage_etc_hosts: true
# Host keys of the kinds OpenSSH prefers; RSA (7 s under TCG) and DSA would delay SSH.
ssh_genkeytypes: [ecdsa, ed25519]
# No grub-pc package (GRUB is embedded by the image build): nothing to tell debconf.
grub_dpkg:
  enabled: false
EOF

# ---- GRUB for BIOS and UEFI: configuration, modules and images from the image's own GRUB -------
# Both GRUBs find the root filesystem by its UUID (an embedded early configuration), so neither
# depends on how the firmware numbers the disks (the seed CD-ROM comes first under UEFI).
mkdir -p "$root/boot/grub"
cp -a "$root/usr/lib/grub/i386-pc" "$root/boot/grub/"
cp -a "$root/usr/lib/grub/x86_64-efi" "$root/boot/grub/"
cat >"$root/boot/grub/grub.cfg" <<EOF
# Written by tests/utils/build-cloud-image.sh (no update-grub: /vmlinuz and /initrd.img follow
# kernel upgrades).
if serial --unit=0 --speed=115200; then
    terminal_input serial console
    terminal_output serial console
fi
set default=0
set timeout=0
menuentry 'Debian GNU/Linux $RELEASE ($FLAVOR image)' {
    linux /vmlinuz root=UUID=$ROOT_UUID ro console=tty0 console=ttyS0,115200 net.ifnames=0
    initrd /initrd.img
}
EOF
cat >"$root/boot/grub/early.cfg" <<EOF
search --no-floppy --fs-uuid --set=root $ROOT_UUID
set prefix=(\$root)/boot/grub
EOF
GRUB_MODULES="part_gpt ext2 normal linux boot configfile serial terminal echo test search search_fs_uuid"
# shellcheck disable=SC2086  # GRUB_MODULES is a list of words
chroot "$root" /usr/bin/grub-mkimage -O i386-pc -d /usr/lib/grub/i386-pc -c /boot/grub/early.cfg \
    -p /boot/grub -o /boot/grub/i386-pc/core.img biosdisk $GRUB_MODULES \
    || die "grub-mkimage (i386-pc) failed"
# shellcheck disable=SC2086
chroot "$root" /usr/bin/grub-mkimage -O x86_64-efi -d /usr/lib/grub/x86_64-efi -c /boot/grub/early.cfg \
    -p /boot/grub -o /boot/grub/x86_64-efi/BOOTX64.EFI $GRUB_MODULES efi_gop \
    || die "grub-mkimage (x86_64-efi) failed"
core=$root/boot/grub/i386-pc/core.img
core_size=$(stat -c %s "$core")
# core.img lives in the BIOS boot partition.
[ "$core_size" -le $((BIOS_BOOT_SECTORS * 512)) ] || die "core.img ($core_size bytes) does not fit its partition"
cp "$root/usr/lib/grub/i386-pc/boot.img" "$work/boot.img"
cp "$core" "$work/core.img"
cp "$root/boot/grub/x86_64-efi/BOOTX64.EFI" "$work/BOOTX64.EFI"

kver=$(readlink "$root/vmlinuz")
kver=${kver##*/vmlinuz-}
if [ ! -e "$root/boot/vmlinuz-$kver" ] || [ ! -e "$root/initrd.img" ]; then
    die "no /vmlinuz or /initrd.img in the root filesystem"
fi

# ---- the disk: GPT with a BIOS boot partition, an EFI system partition and ext4 -----------------
# Sectors of 512 bytes: 2048-4095 the BIOS boot partition (GRUB's core.img), then the ESP (FAT,
# /EFI/BOOT/BOOTX64.EFI: the removable-media path every UEFI firmware boots), then the root
# filesystem to the end (cloud-init's growpart grows it, the last partition, to the disk).
raw=$work/disk.raw
truncate -s "${DISK_SIZE_MIB}M" "$raw"
{
    printf 'label: gpt\nunit: sectors\n\n'
    printf 'start=%s, size=%s, type=21686148-6449-6E6F-744E-656564454649, name=bios\n' \
        "$BIOS_BOOT_START" "$BIOS_BOOT_SECTORS"
    printf 'start=%s, size=%s, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\n' "$ESP_START" "$ESP_SECTORS"
    printf 'start=%s, type=0FC63DAF-8483-4772-8E47-7D2E2D4A3F85, name=root\n' "$ROOT_START"
} | sfdisk --quiet "$raw" >&2
root_sectors=$(sfdisk --json "$raw" | python3 -c "import json, sys
print(next(p['size'] for p in json.load(sys.stdin)['partitiontable']['partitions'] if p['start'] == $ROOT_START))")
mkfs.ext4 -q -F -L cloudimg-rootfs -U "$ROOT_UUID" -E offset=$((ROOT_START * 512)),nodiscard -d "$root" \
    "$raw" "$((root_sectors / 2))k" >&2
# The ESP, made as a file and written into place.
esp=$work/esp.img
truncate -s $((ESP_SECTORS * 512)) "$esp"
mkfs.fat -F 16 -n ESP -i 6c1d0a3e "$esp" >/dev/null
MTOOLS_SKIP_CHECK=1 mmd -i "$esp" ::/EFI ::/EFI/BOOT
MTOOLS_SKIP_CHECK=1 mcopy -i "$esp" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
dd if="$esp" of="$raw" bs=512 seek="$ESP_START" conv=notrunc status=none
# BIOS: boot.img's code in the protective MBR (440 bytes: the disk signature and the partition
# table stay), told where core.img starts (its kernel sector, 8 bytes at 0x5c); core.img in the
# BIOS boot partition, its first sector's block list told where the rest of it starts (8 bytes
# at 0x1f4). grub-bios-setup does both on a block device; this is a plain file.
le64() {
    local value=$1 i
    for i in 0 1 2 3 4 5 6 7; do
        # shellcheck disable=SC2059  # an octal escape built on purpose
        printf "\\$(printf '%03o' $(((value >> (8 * i)) & 255)))"
    done
}
dd if="$work/boot.img" of="$raw" bs=440 count=1 conv=notrunc status=none
le64 "$BIOS_BOOT_START" | dd of="$raw" bs=1 seek=$((0x5c)) count=8 conv=notrunc status=none
# As grub-bios-setup does for a hard disk: no check of the BIOS boot drive number (nop nop).
printf '\x90\x90' | dd of="$raw" bs=1 seek=102 count=2 conv=notrunc status=none
le64 $((BIOS_BOOT_START + 1)) | dd of="$work/core.img" bs=1 seek=$((0x1f4)) count=8 conv=notrunc status=none
dd if="$work/core.img" of="$raw" bs=512 seek="$BIOS_BOOT_START" conv=notrunc status=none
log "disk written ($(elapsed "$start") s), compressing it into qcow2"

# zstd compresses 7 times faster than qcow2's default zlib (QEMU 5.1 and later read it).
if ! qemu-img convert -c -O qcow2 -o compression_type=zstd "$raw" "$work/$IMAGE_NAME" 2>/dev/null; then
    log "this qemu-img has no zstd compression: zlib"
    qemu-img convert -c -O qcow2 "$raw" "$work/$IMAGE_NAME"
fi
chmod 0644 "$work/$IMAGE_NAME"

# ---- into the cache, atomically ---------------------------------------------------------------
{
    echo "script=$script_sum"
    echo "recipe=$recipe_sum"
    echo "kernel=$kver"
    echo "root_uuid=$ROOT_UUID"
    echo "release=$RELEASE"
    echo "flavor=$FLAVOR"
    echo "packages=${PACKAGES[*]}"
    [ "$BARE_HOST" = no ] || echo "offline_repository=$REPO_DIR: ${HOST_PACKAGES[*]} ($repo_count packages, $repo_size)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$work/build-info"
rm -f "$CACHE_DIR/$BUILD_INFO"  # not "cached" until the image is in place
mv -f "$work/$IMAGE_NAME" "$IMAGE"
mv -f "$work/build-info" "$CACHE_DIR/$BUILD_INFO"
chmod 0755 "$CACHE_DIR"

log "built in $(elapsed "$start") s: $IMAGE, $(du -h "$IMAGE" | cut -f1) on disk," \
    "virtual size ${DISK_SIZE_MIB} MiB, kernel $kver"
printf '%s\n' "$IMAGE"
