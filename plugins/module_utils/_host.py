# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts about the KVM host read from /proc and /sys (no subprocess, no libvirt needed):
which virtualization the CPU offers and whether hardware-assisted KVM is usable."""

from __future__ import annotations

import os

KVM_DEVICE = '/dev/kvm'
HARDWARE_PROVIDERS = ('kvm_intel', 'kvm_amd')


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


def hardware_virt_mode() -> tuple:
    """(virt_type that ``auto`` picks, reason in plain words) for this host: kvm only with
    hardware-assisted KVM (kvm_intel/kvm_amd and /dev/kvm usable)."""
    facts = host_virt_facts(read_text('/proc/cpuinfo'), kvm_provider(), kvm_device_facts())
    return facts['auto_virt_type'], facts['virt_mode_reason']


# ---- everything kvm_host_info reports ---------------------------------------------------------
KVM_GET_API_VERSION = 0xAE00  # _IO(KVMIO, 0x00)


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read().strip()
    except OSError:
        return None


def cpu_facts(cpuinfo_text: str | None) -> dict:
    """Vendor, model, virtualization flag and whether we run inside a VM, from /proc/cpuinfo."""
    fields = {}
    for line in (cpuinfo_text or '').splitlines():
        key, sep, value = line.partition(':')
        key = key.strip()
        if sep and key not in fields:
            fields[key] = value.strip()
        if not line.strip() and fields:
            break  # the first processor is enough
    flags = set(fields.get('flags', fields.get('features', '')).split())
    vendor_id = fields.get('vendor_id', '')
    vendor = {'GenuineIntel': 'intel', 'AuthenticAMD': 'amd', 'HygonGenuine': 'hygon'}.get(vendor_id)
    if vendor is None:
        vendor = 'ibm' if 'vendor_id' in fields and 'IBM' in vendor_id else (vendor_id.lower() or None)
        if vendor is None and ('CPU implementer' in fields or 'cpu' in fields):
            vendor = 'arm' if 'CPU implementer' in fields else None
    virt_flag = 'vmx' if 'vmx' in flags else 'svm' if 'svm' in flags else 'sie' if 'sie' in flags else None
    return {
        'vendor': vendor,
        'model': fields.get('model name') or fields.get('cpu') or fields.get('machine'),
        'virt_flag': virt_flag,
        'hypervisor_flag': 'hypervisor' in flags,
    }


def module_state(name: str, sys_module: str = '/sys/module', proc_modules: str = '/proc/modules') -> str:
    """'loaded' (a loadable module), 'builtin' (in the kernel), or 'absent'."""
    if not os.path.isdir(os.path.join(sys_module, name)):
        return 'absent'
    listed = read_text(proc_modules)
    if listed is not None and any(line.split(' ', 1)[0] == name for line in listed.splitlines()):
        return 'loaded'
    if os.path.exists(os.path.join(sys_module, name, 'initstate')):
        return 'loaded'
    return 'builtin'


def kvm_device_facts(device: str = KVM_DEVICE) -> dict:
    import fcntl  # pylint: disable=import-outside-toplevel
    import grp  # pylint: disable=import-outside-toplevel
    import pwd  # pylint: disable=import-outside-toplevel
    import stat  # pylint: disable=import-outside-toplevel

    facts = {'present': False, 'usable': False, 'api_version': None, 'owner': None, 'group': None, 'mode': None}
    try:
        status = os.stat(device)
    except OSError:
        return facts
    facts['present'] = True
    facts['mode'] = f'{stat.S_IMODE(status.st_mode):04o}'
    try:
        facts['owner'] = pwd.getpwuid(status.st_uid).pw_name
    except KeyError:
        facts['owner'] = str(status.st_uid)
    try:
        facts['group'] = grp.getgrgid(status.st_gid).gr_name
    except KeyError:
        facts['group'] = str(status.st_gid)
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        facts['error'] = err.strerror
        return facts
    try:
        facts['api_version'] = fcntl.ioctl(fd, KVM_GET_API_VERSION)
        facts['usable'] = facts['api_version'] == 12
    except OSError as err:
        facts['error'] = err.strerror
    finally:
        os.close(fd)
    return facts


def nested_state(provider: str | None, sys_module: str = '/sys/module') -> bool | None:
    if not provider:
        return None
    value = read_text(os.path.join(sys_module, provider, 'parameters', 'nested'))
    if value is None:
        return None
    return value.upper() in ('Y', '1')


def host_virt_facts(cpuinfo_text: str | None, provider: str | None, kvm: dict) -> dict:
    """virt_mode for the host (kvm: KVM usable at all; qemu: emulation only), the reason in plain
    words, and the virt_type kvm_domain's ``auto`` picks (qemu under a paravirtual provider)."""
    cpu = cpu_facts(cpuinfo_text)
    flag = cpu['virt_flag']
    expected = {'vmx': 'kvm_intel', 'svm': 'kvm_amd'}.get(flag)
    if kvm['usable']:
        if provider in HARDWARE_PROVIDERS:
            reason = f"{flag or 'hardware'} virtualization with {provider}: /dev/kvm is usable"
            return {'virt_mode': 'kvm', 'virt_mode_reason': reason, 'auto_virt_type': 'kvm'}
        reason = (f'/dev/kvm is usable through {provider or "an unknown provider"} '
                  f'({"no vmx/svm flag" if not flag else flag + " flag"}); paravirtual KVM such as kvm_pvm '
                  'hangs stock guest kernels, so virt_type auto picks qemu')
        return {'virt_mode': 'kvm', 'virt_mode_reason': reason, 'auto_virt_type': 'qemu'}
    if not flag:
        reason = ('no vmx/svm flag: enable VT-x/AMD-V in the firmware (or nested virtualization on the outer '
                  'hypervisor); only QEMU emulation is available')
    elif not kvm['present']:
        reason = f'{flag} flag present but /dev/kvm is missing: load {expected or "the KVM module"}'
    else:
        reason = (f'{flag} flag present but /dev/kvm is not usable ({kvm.get("error") or "cannot open"}): '
                  f'it is {kvm["owner"]}:{kvm["group"]} {kvm["mode"]}; the qemu user needs access (group kvm, 0660)')
    return {'virt_mode': 'qemu', 'virt_mode_reason': reason, 'auto_virt_type': 'qemu'}


def hardware_facts() -> dict:
    """Everything kvm_host_info knows without libvirt."""
    cpuinfo = read_text('/proc/cpuinfo')
    provider = kvm_provider()
    kvm = kvm_device_facts()
    kvm.update({
        'provider': provider,
        'module': module_state('kvm'),
        'provider_module': module_state(provider) if provider else 'absent',
        'loadable_modules': os.path.exists('/proc/modules'),
        'nested': nested_state(provider),
    })
    sys_vendor = read_text('/sys/class/dmi/id/sys_vendor')
    product = read_text('/sys/class/dmi/id/product_name')
    cpu = cpu_facts(cpuinfo)
    vm_words = ('qemu', 'kvm', 'vmware', 'virtualbox', 'xen', 'microsoft corporation', 'amazon ec2', 'google')
    dmi_vm = any(word in f'{sys_vendor} {product}'.lower() for word in vm_words)
    hugepages = {}
    for line in (read_text('/proc/meminfo') or '').splitlines():
        key, _sep, value = line.partition(':')
        if key in ('HugePages_Total', 'HugePages_Free', 'Hugepagesize'):
            hugepages[key] = value.strip()
    groups = '/sys/kernel/iommu_groups'
    return {
        'cpu': cpu,
        'inside_vm': cpu['hypervisor_flag'] or dmi_vm,
        'dmi': {'sys_vendor': sys_vendor, 'product_name': product},
        'kvm': kvm,
        **host_virt_facts(cpuinfo, provider, kvm),
        'iommu': {'groups': len(os.listdir(groups)) if os.path.isdir(groups) else 0,
                  'enabled': os.path.isdir(groups) and bool(os.listdir(groups))},
        'hugepages': {
            'total': int(hugepages.get('HugePages_Total', 0) or 0),
            'free': int(hugepages.get('HugePages_Free', 0) or 0),
            'size_kib': int((hugepages.get('Hugepagesize', '0 kB').split() or ['0'])[0]),
        },
        'vhost_net': os.path.exists('/dev/vhost-net'),
        'tun': os.path.exists('/dev/net/tun'),
        'ipv4_routes': ipv4_routes(),
    }


def libvirt_facts(conn) -> dict:
    """Versions, domain types, machine types and firmware as libvirt reports them."""
    from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml  # pylint: disable=import-outside-toplevel
    from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (  # pylint: disable=import-outside-toplevel
        version_text as version,
    )

    capabilities = _xml.parse_xml(conn.getCapabilities(), 'libvirt capabilities')
    guests = {}
    for guest in capabilities.findall('guest'):
        arch = guest.find('arch')
        if arch is None or guest.findtext('os_type') != 'hvm':
            continue
        entry = guests.setdefault(arch.get('name'), {'domain_types': [], 'machines': []})
        entry['domain_types'] += [d.get('type') for d in arch.findall('domain') if d.get('type') not in
                                  entry['domain_types']]
        entry['machines'] += [m.text for m in arch.findall('machine') if m.text and m.text not in entry['machines']]
    host_arch = capabilities.findtext('host/cpu/arch')
    firmware, loaders = [], []
    for virt_type in ('kvm', 'qemu'):
        if host_arch not in guests or virt_type not in guests[host_arch]['domain_types']:
            continue
        try:
            domcaps = _xml.parse_xml(conn.getDomainCapabilities(None, host_arch, None, virt_type, 0),
                                     'libvirt domain capabilities')
        except Exception:  # libvirtError: an emulator that cannot be probed
            continue
        firmware = [v.text for v in domcaps.findall("os/enum[@name='firmware']/value")] or firmware
        loaders = [v.text for v in domcaps.findall('os/loader/value')] or loaders
        break
    return {
        'reachable': True,
        'uri': conn.getURI(),
        'hostname': conn.getHostname(),
        'libvirt_version': version(conn.getLibVersion()),
        'hypervisor_version': version(conn.getVersion()),
        'host_arch': host_arch,
        'guests': guests,
        'domain_types': sorted({t for entry in guests.values() for t in entry['domain_types']}),
        'firmware': firmware,
        'uefi_available': 'efi' in firmware or bool(loaders),
        'uefi_loaders': loaders,
    }


# ---- the IPv4 subnets this host uses ------------------------------------------------------------
SIOCGIFADDR = 0x8915


def interface_ipv4(name: str) -> str | None:
    """The primary IPv4 address of a network interface of this host (SIOCGIFADDR), or None."""
    import fcntl  # pylint: disable=import-outside-toplevel  # only the route checks need these
    import socket  # pylint: disable=import-outside-toplevel
    import struct  # pylint: disable=import-outside-toplevel

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack('256s', name[:15].encode()))
    except OSError:
        return None
    return socket.inet_ntoa(packed[20:24])


def ipv4_routes(route_text: str | None = None) -> list:
    """The IPv4 routes of this host but the default route, from /proc/net/route: each with its
    ``interface``, ``network``, ``prefix`` and the interface's own ``address``. libvirt refuses
    to start a network whose subnet is exactly one of them ("Network is already in use by
    interface ...", its check of /proc/net/route)."""
    import socket  # pylint: disable=import-outside-toplevel
    import struct  # pylint: disable=import-outside-toplevel

    text = read_text('/proc/net/route') if route_text is None else route_text
    routes, addresses = [], {}
    for line in (text or '').splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, mask = int(fields[1], 16), int(fields[7], 16)
        except ValueError:
            continue
        prefix = bin(mask).count('1')
        if prefix == 0:
            continue
        interface = fields[0]
        if interface not in addresses:
            addresses[interface] = interface_ipv4(interface) if route_text is None else None
        route = {'interface': interface, 'network': socket.inet_ntoa(struct.pack('<L', destination)),
                 'prefix': prefix, 'address': addresses[interface]}
        if route not in routes:
            routes.append(route)
    return routes


def route_of_subnet(network: str, prefix: int, routes: list, except_interface: str | None = None) -> dict | None:
    """The route of ``routes`` whose subnet is exactly network/prefix (libvirt's rule), on an
    interface other than ``except_interface``; None when the subnet is free."""
    for route in routes:
        if route['network'] == network and route['prefix'] == prefix and route['interface'] != except_interface:
            return route
    return None
