#!/bin/sh
# What the kvm_host role needs to know about the host besides kvm_host_info's facts, read in one
# go (a shell script costs a fraction of a Python module run):
#   host_probe.sh [--groups GROUP...] [--packages PACKAGE...] [--qemu-conf KEY...]
# prints {"udev": <udev runs>, "nested_conf": <the role's modprobe options file exists>,
#         "groups": {"GROUP": <exists>, ...}, "missing_packages": ["PACKAGE", ...],
#         "qemu_conf": {"KEY": <the last line of /etc/libvirt/qemu.conf that sets KEY, commented
#                              out or not, as the kvm_host role's lineinfile finds it; or null>}}
# A package counts as installed only when the package manager says so for that exact name (or,
# with rpm and pacman, for something that provides it); anything else is listed as missing, so
# a doubt only costs the package step a run of the package manager.
set -u
udev=false
[ -e /run/udev/control ] && udev=true
nested_conf=false
[ -e /etc/modprobe.d/kvm-nested.conf ] && nested_conf=true

installed() {
    if command -v dpkg-query >/dev/null 2>&1; then
        [ "$(dpkg-query --show --showformat='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
    elif command -v rpm >/dev/null 2>&1; then
        rpm -q --quiet --whatprovides "$1" 2>/dev/null
    elif command -v pacman >/dev/null 2>&1; then
        [ -z "$(pacman -T "$1" 2>/dev/null)" ]
    else
        return 1
    fi
}

# The last line setting $1 in qemu.conf, as a JSON string (or null).
qemu_conf_line() {
    line=$(grep -E "^[[:space:]]*#?$1[[:space:]]*=" /etc/libvirt/qemu.conf 2>/dev/null | tail -n 1)
    if [ -z "$line" ]; then
        echo null
    else
        printf '"%s"' "$(printf '%s' "$line" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g')"
    fi
}

mode=''
groups=''
missing=''
conf=''
for arg in "$@"; do
    case $arg in
        --groups) mode=groups ;;
        --packages) mode=packages ;;
        --qemu-conf) mode=qemu_conf ;;
        *)
            if [ "$mode" = groups ]; then
                if getent group "$arg" >/dev/null 2>&1; then exists=true; else exists=false; fi
                groups="$groups${groups:+, }\"$arg\": $exists"
            elif [ "$mode" = packages ]; then
                installed "$arg" || missing="$missing${missing:+, }\"$arg\""
            elif [ "$mode" = qemu_conf ]; then
                conf="$conf${conf:+, }\"$arg\": $(qemu_conf_line "$arg")"
            fi
            ;;
    esac
done
printf '{"udev": %s, "nested_conf": %s, "groups": {%s}, "missing_packages": [%s], "qemu_conf": {%s}}\n' \
    "$udev" "$nested_conf" "$groups" "$missing" "$conf"
