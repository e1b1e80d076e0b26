#!/bin/sh
# What a bare host has of what the kvm_host role brings, one line each (nothing on a bare host),
# then its CPU's virtualization flag and its Python: kvm_host_in_guest's prepare step runs it
# before and after the role's check mode and its failed run.
for package in qemu-system-x86 libvirt-daemon-system python3-libvirt python3-lxml python3-pycdlib python3-apt; do
    if [ "$(dpkg-query --show --showformat='${Status}' "$package" 2>/dev/null)" = 'install ok installed' ]; then
        echo "installed $package"
    fi
done
for module in kvm kvm_amd kvm_intel; do
    if [ -d "/sys/module/$module" ]; then echo "module $module"; fi
done
if getent group libvirt >/dev/null; then echo 'group libvirt'; fi
if [ -e /etc/modules-load.d/kvm.conf ]; then echo 'modules-load kvm.conf'; fi
flag=$(grep -o -m1 -w -e svm -e vmx /proc/cpuinfo || true)
echo "cpu ${flag:-none}"
echo "python $(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
