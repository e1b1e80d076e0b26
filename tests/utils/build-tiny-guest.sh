#!/usr/bin/env bash
# Usage: build-tiny-guest.sh [CACHE_DIR]
# Builds a tiny bootable guest from Debian packages, no image download: the kernel that
# `linux-image-amd64` depends on, and an initramfs made of busybox-static plus the kernel's
# virtio modules. Under QEMU emulation (TCG) it boots to a DHCP lease in seconds with
#   <kernel>vmlinuz</kernel> <initrd>initrd.img</initrd> <cmdline>console=ttyS0 quiet</cmdline>
# Its /init brings up every ethN with DHCP (udhcpc, kept running to renew the lease), prints
# "TINY-GUEST: address <ip> on <ethN>" on the console, powers off on the ACPI power button
# (`virsh shutdown`), and offers a root shell on the console (`virsh console`).
#
# CACHE_DIR (default: $TINY_GUEST_CACHE, else .cache/tiny-guest at the repository root) gets
# vmlinuz, initrd.img and build-info. What is there is reused when it was built by this very
# script (its checksum is in build-info): no apt, no network. TINY_GUEST_REBUILD=1 rebuilds.
# Prints two lines on stdout: the path of vmlinuz, then the path of initrd.img; the rest goes
# to stderr.
#
# Needs apt-get and dpkg-deb (Debian/Ubuntu) and gzip; `apt-get download` needs no root, and
# `apt-get update` runs (as root) only when apt knows no linux-image-amd64. busybox-static is
# extracted, not installed: the host is not changed. QEMU reads the kernel as libvirt-qemu,
# so for qemu:///system put CACHE_DIR where that user can traverse (not under /root).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# shellcheck source=tests/utils/common.sh
. "$REPO_ROOT/tests/utils/common.sh"  # apt_get
SCRIPT=$REPO_ROOT/tests/utils/build-tiny-guest.sh
CACHE_DIR=${1:-${TINY_GUEST_CACHE:-$REPO_ROOT/.cache/tiny-guest}}
# The modules /init loads (their dependencies are added, in order): the virtio PCI transport,
# NICs, disks, the memory balloon (live memory changes), and what the ACPI power button needs
# to reach busybox acpid (button, evdev).
ROOT_MODULES=(virtio_pci virtio_net virtio_blk virtio_balloon button evdev)

log() { printf 'tiny-guest: %s\n' "$*" >&2; }
die() { printf 'tiny-guest: ERROR: %s\n' "$*" >&2; exit 1; }

script_sum=$(sha256sum "$SCRIPT" | cut -c1-16)

cached() {
    [ -s "$CACHE_DIR/vmlinuz" ] && [ -s "$CACHE_DIR/initrd.img" ] \
        && grep -qx "script=$script_sum" "$CACHE_DIR/build-info" 2>/dev/null
}

print_paths() {
    printf '%s\n%s\n' "$CACHE_DIR/vmlinuz" "$CACHE_DIR/initrd.img"
}

mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd -P)
if [ "${TINY_GUEST_REBUILD:-0}" != 1 ] && cached; then
    log "reusing $CACHE_DIR ($(grep '^kernel=' "$CACHE_DIR/build-info" | cut -d= -f2))"
    print_paths
    exit 0
fi

# One build at a time per cache (parallel test runs); the second one reuses the first's.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_DIR/.lock"
    flock 9
    if [ "${TINY_GUEST_REBUILD:-0}" != 1 ] && cached; then
        log "reusing $CACHE_DIR (built by a concurrent run)"
        print_paths
        exit 0
    fi
fi

for tool in apt-get apt-cache dpkg-deb gzip sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (a Debian/Ubuntu host is needed)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/tiny-guest.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
start=$(date +%s%N)

# ---- the packages ------------------------------------------------------------------------
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}

package=$(kernel_package || true)
if [ -z "$package" ]; then
    [ "$(id -u)" -eq 0 ] || die "apt knows no linux-image-amd64 and only root can run apt-get update"
    log "apt knows no linux-image-amd64: apt-get update"
    apt_get update -qq >&2
    package=$(kernel_package || true)
    [ -n "$package" ] || die "apt-cache depends linux-image-amd64 names no linux-image-* package"
fi

debs=$work/debs
mkdir -p "$debs"
# apt downloads as _apt when it can write there (no "unsandboxed" warning).
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
    chmod 0755 "$work"
    chown _apt "$debs" 2>/dev/null || true
fi
log "downloading $package and busybox-static"
if ! (cd "$debs" && apt_get download -q "$package" busybox-static >&2); then
    [ "$(id -u)" -eq 0 ] || die "apt-get download $package busybox-static failed"
    log "download failed: apt-get update, then again"
    apt_get update -qq >&2
    (cd "$debs" && apt_get download -q "$package" busybox-static >&2) \
        || die "apt-get download $package busybox-static failed"
fi

kernel_deb=$(find "$debs" -name "${package}_*.deb" | head -n 1)
busybox_deb=$(find "$debs" -name 'busybox-static_*.deb' | head -n 1)
if [ -z "$kernel_deb" ] || [ -z "$busybox_deb" ]; then
    die "the downloaded packages are not in $debs"
fi

mkdir -p "$work/kernel" "$work/busybox"
dpkg-deb -x "$kernel_deb" "$work/kernel"
dpkg-deb -x "$busybox_deb" "$work/busybox"
busybox=$work/busybox/bin/busybox
[ -x "$busybox" ] || die "no bin/busybox in $busybox_deb"

vmlinuz=$(find "$work/kernel/boot" -name 'vmlinuz-*' | head -n 1)
[ -n "$vmlinuz" ] || die "no /boot/vmlinuz-* in $kernel_deb"
kver=${vmlinuz##*/vmlinuz-}
moddir=$work/kernel/lib/modules/$kver
[ -d "$moddir" ] || moddir=$work/kernel/usr/lib/modules/$kver
[ -d "$moddir" ] || die "no lib/modules/$kver in $kernel_deb"

# ---- the modules, in dependency order --------------------------------------------------------
# name -> file (module names use _, some files use -), from the package itself: it has no
# modules.dep (depmod writes it on install), so each module's own "depends=" field is read.
declare -A module_file=()
while IFS= read -r file; do
    name=${file##*/}
    name=${name%%.ko*}
    module_file[${name//-/_}]=$file
done < <(find "$moddir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')

module_depends() {
    local file=$1 text
    case "$file" in
        *.ko.xz) text=$("$busybox" unxz -c "$file" | tr '\0' '\n' | grep -a '^depends=' || true) ;;
        *.ko.gz) text=$(gzip -dc "$file" | tr '\0' '\n' | grep -a '^depends=' || true) ;;
        *.ko.zst) text=$(zstd -dc "$file" | tr '\0' '\n' | grep -a '^depends=' || true) ;;
        *) text=$(tr '\0' '\n' <"$file" | grep -a '^depends=' || true) ;;
    esac
    text=${text%%$'\n'*}
    text=${text#depends=}
    printf '%s\n' "${text//,/ }"
}

declare -A visited=()
ordered=()
add_module() {
    local name=$1 dep
    [ -z "${visited[$name]:-}" ] || return 0
    visited[$name]=1
    if [ -z "${module_file[$name]:-}" ]; then
        # Not a module of this kernel: built in (nothing to load), or a name that changed.
        if grep -q "/$name.ko" "$moddir/modules.builtin" 2>/dev/null; then
            log "module $name is built into $kver"
            return 0
        fi
        die "module $name is neither in $package nor built into it"
    fi
    for dep in $(module_depends "${module_file[$name]}"); do
        add_module "${dep//-/_}"
    done
    ordered+=("$name")
}
for name in "${ROOT_MODULES[@]}"; do
    add_module "$name"
done
log "kernel $kver, modules: ${ordered[*]}"

# ---- the initramfs ---------------------------------------------------------------------------
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,etc/acpi/PWRF,lib/modules,root}
cp "$busybox" "$root/bin/busybox"
# Only the applets /init and its scripts use (`busybox --install` needs /proc at build time).
for applet in sh ash cat echo mount mkdir insmod ip ifconfig route udhcpc acpid poweroff sleep \
    setsid cttyhack ls ps dmesg uname grep sed awk cut tr head tail kill sync true false test '[' \
    hostname date uptime free df rm mv cp ln chmod vi less ping nslookup wget hexdump; do
    ln -s busybox "$root/bin/$applet"
done
for name in "${ordered[@]}"; do
    case "${module_file[$name]}" in
        *.ko.xz) "$busybox" unxz -c "${module_file[$name]}" >"$root/lib/modules/$name.ko" ;;
        *.ko.gz) gzip -dc "${module_file[$name]}" >"$root/lib/modules/$name.ko" ;;
        *.ko.zst) zstd -dc "${module_file[$name]}" >"$root/lib/modules/$name.ko" ;;
        *) cp "${module_file[$name]}" "$root/lib/modules/$name.ko" ;;
    esac
done
printf '%s\n' "${ordered[@]}" >"$root/etc/modules"
echo tiny-guest >"$root/etc/hostname"
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"

cat >"$root/init" <<'EOF'
#!/bin/sh
# Tiny guest init: virtio modules, DHCP on every NIC, ACPI power button -> power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
echo "TINY-GUEST: init on $(uname -r), $(cut -d' ' -f1 /proc/uptime) s after boot"
hostname "$(cat /etc/hostname)"
for module in $(cat /etc/modules); do
    insmod "/lib/modules/$module.ko" || echo "TINY-GUEST: insmod $module failed"
done

# The power button (virsh shutdown): busybox acpid's built-in map runs /etc/acpi/PWRF/00000080
# (an /etc/acpid.conf, even an empty one, would replace that map).
acpid -c /etc/acpi -l /dev/console

ip link set lo up
# NICs appear while virtio_net probes: wait up to 5 s for the first one.
tries=0
while [ "$tries" -lt 50 ] && ! ls /sys/class/net | grep -q '^eth'; do
    sleep 0.1
    tries=$((tries + 1))
done
for path in /sys/class/net/eth*; do
    [ -e "$path" ] || continue
    nic=${path##*/}
    ip link set "$nic" up
    # In the foreground of a background job: it retries until it gets a lease, then renews it.
    udhcpc -f -i "$nic" -s /etc/udhcpc.sh -t 10 -T 1 -A 2 -x hostname:tiny-guest >/dev/null 2>&1 &
done
echo "TINY-GUEST: ready"

# A root shell on the console (virsh console), respawned; else sleep forever.
while true; do
    setsid cttyhack sh -l || sleep 5
    sleep 1
done
EOF

cat >"$root/etc/udhcpc.sh" <<'EOF'
#!/bin/sh
# udhcpc's hook: $1 is the event, the lease is in the environment ($interface, $ip, $subnet...).
case "$1" in
    deconfig)
        ip addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/"; then
            ip addr flush dev "$interface"
            ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
            for gateway in $router; do
                route add default gw "$gateway" dev "$interface" && break
            done
            : >/etc/resolv.conf
            for server in $dns; do
                echo "nameserver $server" >>/etc/resolv.conf
            done
            echo "TINY-GUEST: address $ip on $interface" >/dev/console
        fi
        ;;
esac
exit 0
EOF

cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "TINY-GUEST: power button, powering off" >/dev/console
sync
poweroff -f
EOF
chmod 0755 "$root/init" "$root/etc/udhcpc.sh" "$root/etc/acpi/PWRF/00000080"

(cd "$root" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) \
    | gzip -9n >"$work/initrd.img"

# ---- into the cache, atomically --------------------------------------------------------------
cp "$vmlinuz" "$work/vmlinuz"
chmod 0644 "$work/vmlinuz" "$work/initrd.img"
{
    echo "script=$script_sum"
    echo "kernel=$kver"
    echo "kernel_package=$(basename "$kernel_deb")"
    echo "busybox_package=$(basename "$busybox_deb")"
    echo "modules=${ordered[*]}"
} >"$work/build-info"
rm -f "$CACHE_DIR/build-info"  # not "cached" until both files are in place
mv -f "$work/vmlinuz" "$CACHE_DIR/vmlinuz"
mv -f "$work/initrd.img" "$CACHE_DIR/initrd.img"
mv -f "$work/build-info" "$CACHE_DIR/build-info"
chmod 0755 "$CACHE_DIR"

end=$(date +%s%N)
log "built in $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", (e - s) / 1e9 }') s:" \
    "vmlinuz $(du -h "$CACHE_DIR/vmlinuz" | cut -f1), initrd.img $(du -h "$CACHE_DIR/initrd.img" | cut -f1)"
print_paths
