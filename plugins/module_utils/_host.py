# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts about the KVM host read from /proc and /sys (no subprocess, no libvirt needed):
which virtualization the CPU offers and whether hardware-assisted KVM is usable."""

from __future__ import annotations

import os

KVM_DEVICE = '/dev/kvm'
HARDWARE_PROVIDERS = ('kvm_intel', 'kvm_amd')


def cpu_flags(cpuinfo: str = '/proc/cpuinfo') -> set:
    """The flags of the first CPU."""
    try:
        with open(cpuinfo, encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def kvm_provider(sys_module: str = '/sys/module') -> str | None:
    """The loaded KVM provider module (kvm_intel, kvm_amd, kvm_pvm...), or None."""
    try:
        names = sorted(os.listdir(sys_module))
    except OSError:
        return None
    for name in HARDWARE_PROVIDERS + tuple(n for n in names if n.startswith('kvm_')):
        if name in names:
            return name
    return None


def kvm_device_usable(device: str = KVM_DEVICE) -> bool:
    """True when /dev/kvm exists and this process can open it read-write."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def hardware_virt_mode(flags: set | None = None, provider: str | None = None,
                       device_usable: bool | None = None) -> tuple:
    """('kvm' or 'qemu', reason in plain words) for this host.

    ``kvm`` needs hardware-assisted KVM: the vmx (Intel VT-x) or svm (AMD-V) flag, kvm_intel
    or kvm_amd loaded, and /dev/kvm usable. A paravirtual provider such as kvm_pvm also gives
    /dev/kvm, but stock guest kernels hang under it, so that is ``qemu`` too.
    """
    flags = cpu_flags() if flags is None else flags
    provider = kvm_provider() if provider is None else provider
    device_usable = kvm_device_usable() if device_usable is None else device_usable
    vendor_flag = 'vmx' if 'vmx' in flags else 'svm' if 'svm' in flags else None
    if vendor_flag is None:
        if provider and provider not in HARDWARE_PROVIDERS and device_usable:
            return 'qemu', (f'no vmx/svm flag: /dev/kvm comes from {provider} (paravirtual KVM), under which '
                            'stock guest kernels hang; using QEMU emulation (TCG)')
        return 'qemu', ('no vmx/svm flag: the CPU offers no hardware virtualization here (enable VT-x/AMD-V in '
                        'the firmware, or nested virtualization on the outer hypervisor); using QEMU emulation (TCG)')
    expected = 'kvm_intel' if vendor_flag == 'vmx' else 'kvm_amd'
    if not os.path.exists(KVM_DEVICE) and device_usable is False:
        return 'qemu', f'{vendor_flag} flag present but /dev/kvm is missing: load {expected}; using QEMU emulation'
    if not device_usable:
        return 'qemu', f'{vendor_flag} flag present but /dev/kvm cannot be opened (permissions?); using QEMU emulation'
    return 'kvm', f'{vendor_flag} flag present, {provider or expected} loaded and /dev/kvm usable'
