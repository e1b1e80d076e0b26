# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The desired ``<domain>`` from kvm_domain's structured options, checked against the host."""

from __future__ import annotations

import copy
import os
import re
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._addresses import mac_address
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import GUEST_AGENT, resolve_machine
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_metadata import add_metadata, check_metadata
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_options import TUNING
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._host import hardware_virt_mode
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    is_local_uri,
    libvirt,
    lookup,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Observed
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import bytes_to_kib, format_size, parse_size

MAX_VCPUS = 4096  # libvirt's limit for a domain definition
MAX_NAME_BYTES = 240  # <name>-seed.iso stays a file name (255 bytes)
BUS_PREFIX = {'virtio': 'vd', 'sata': 'sd', 'scsi': 'sd', 'usb': 'sd', 'ide': 'hd'}
DISK_FORMAT_BY_SUFFIX = {'.qcow2': 'qcow2', '.qcow': 'qcow2', '.iso': 'raw', '.img': 'raw', '.raw': 'raw'}
MAXIMUM_CPU_MODE_SINCE = 7001000  # libvirt 7.1.0: <cpu mode='maximum'/>


class DomainBuilder:
    """Builds ``<domain>`` from the structured options, validating against the host."""

    def __init__(self, conn, params: dict, name: str, plan, shared: dict | None = None):
        self.conn = conn
        self.params = params
        self.name = name
        self.plan = plan  # warnings and the virt_type reason go into the plan
        self.pending = shared or {}  # check mode: pools, volumes and networks earlier steps would create

    def build(self, before: Observed) -> ET.Element:
        params, current = self.params, before.xml if before.exists else None
        new = current is None
        domain = ET.Element('domain', {'type': self.virt_type(current)})
        _xml.sub_element(domain, 'name', self.name)
        check_metadata(params)
        add_metadata(domain, params, current)
        self.add_memory(domain, new)
        self.add_vcpus(domain, new)
        self.add_os(domain, current)
        if new or params.get('firmware'):
            features = _xml.sub_element(domain, 'features')
            _xml.sub_element(features, 'acpi')
            _xml.sub_element(features, 'apic')
            if params.get('firmware') == 'efi' and params.get('secure_boot'):
                _xml.sub_element(features, 'smm', state='on')
        self.add_cpu(domain, new)
        devices = _xml.sub_element(domain, 'devices')
        self.add_disks(devices)
        self.add_interfaces(devices)
        self.add_console(devices, new)
        self.add_channels(devices, current)
        self.add_graphics(devices)
        if params.get('rng') or (new and params.get('rng') is None):
            rng = _xml.sub_element(devices, 'rng', model='virtio')
            _xml.sub_element(rng, 'backend', '/dev/urandom', model='random')
        if params.get('tpm'):
            tpm = _xml.sub_element(devices, 'tpm', model='tpm-crb')
            _xml.sub_element(tpm, 'backend', type='emulator', version='2.0')
        if any(params.get(option) is not None for option in TUNING):
            from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_tuning import (  # pylint: disable=import-outside-toplevel
                add_tuning,  # compiled only when a guest asks for one of them
            )
            add_tuning(domain, params, current, self.conn.getLibVersion(), is_local_uri(self.conn.getURI()))
        return domain

    def virt_type(self, current) -> str:
        wanted = self.params.get('virt_type') or 'auto'
        if wanted != 'auto':
            self.plan.extra['virt_type_reason'] = f'virt_type: {wanted} as asked'
            return wanted
        if current is not None:
            self.plan.extra['virt_type_reason'] = 'the existing domain keeps its type (virt_type: auto)'
            return current.get('type')
        mode, reason = self.host_virt_mode()
        self.plan.extra['virt_type_reason'] = reason
        if mode == 'qemu':
            self.plan.warnings.append(f'virt_type auto chose qemu (emulation, slower): {reason}')
        return mode

    def host_virt_mode(self) -> tuple:
        uri = self.conn.getURI()
        if is_local_uri(uri):
            return hardware_virt_mode()
        host = "libvirt's test driver" if urlsplit(uri).scheme.split('+')[0] == 'test' else 'the remote host'
        capabilities = _xml.parse_xml(self.conn.getCapabilities(), 'libvirt capabilities')
        if capabilities.find(".//guest/arch/domain[@type='kvm']") is not None:
            return 'kvm', f'{host} offers kvm domains'
        return 'qemu', f'{host} offers no kvm domains; using QEMU emulation'

    def add_memory(self, domain, new: bool) -> None:
        params = self.params
        memory, maximum = params.get('memory'), params.get('max_memory')
        if memory is None and maximum is None:
            if new:
                state = params.get('state') or 'present'
                if state == 'present' or params.get('xml'):
                    raise KvmError('memory: required to create a domain (e.g. memory: 1GiB)')
                raise KvmError(f"no domain named '{self.name}' on {self.conn.getURI()}: state {state} needs an "
                               'existing domain (is the name right?), and creating one needs memory '
                               '(e.g. memory: 1GiB)')
            return
        memory_bytes, maximum_bytes = memory_sizes(self.conn, memory, maximum)
        _xml.sub_element(domain, 'memory', bytes_to_kib(maximum_bytes), unit='KiB')
        _xml.sub_element(domain, 'currentMemory', bytes_to_kib(memory_bytes), unit='KiB')

    def add_vcpus(self, domain, new: bool) -> None:
        vcpus, maximum = self.params.get('vcpus'), self.params.get('max_vcpus')
        if vcpus is None and maximum is None:
            if not new:
                return
            vcpus = 1
        vcpus, maximum = vcpu_counts(vcpus, maximum)
        element = _xml.sub_element(domain, 'vcpu', maximum, placement='static')
        if maximum != vcpus:
            element.set('current', str(vcpus))

    def add_os(self, domain, current) -> None:
        params = self.params
        os_element = _xml.sub_element(domain, 'os')
        arch = params.get('arch') or (None if current is not None else 'x86_64')
        if params.get('machine') is not None:
            check_machine(params['machine'])
        machine = params.get('machine') or (None if current is not None else 'q35' if arch == 'x86_64' else None)
        if machine and current is not None:
            machine = resolve_machine(machine, current.find('os/type'))
        _xml.sub_element(os_element, 'type', 'hvm', arch=arch, machine=machine)
        firmware = params.get('firmware')
        if firmware == 'efi':
            os_element.set('firmware', 'efi')
            secure = params.get('secure_boot')
            if secure is None and current is None:
                # A new definition without secure_boot gets a firmware without Secure Boot: left to
                # itself, libvirt picks one with Microsoft's keys enrolled, which refuses an
                # unsigned boot loader. Existing definitions keep what they have.
                secure = False
            if secure is not None:
                enabled = 'yes' if secure else 'no'
                fw = _xml.sub_element(os_element, 'firmware')
                _xml.sub_element(fw, 'feature', enabled=enabled, name='secure-boot')
                _xml.sub_element(fw, 'feature', enabled=enabled, name='enrolled-keys')
        elif params.get('secure_boot'):
            raise KvmError('secure_boot: needs firmware: efi')
        boot = params.get('boot') or {}
        for key in ('kernel', 'initrd'):
            if boot.get(key):
                check_boot_file(self.conn, boot[key], f'boot.{key}')
        if boot.get('kernel'):
            _xml.sub_element(os_element, 'kernel', boot['kernel'])
            if boot.get('initrd'):
                _xml.sub_element(os_element, 'initrd', boot['initrd'])
            if boot.get('cmdline'):
                _xml.sub_element(os_element, 'cmdline', boot['cmdline'])
        elif boot.get('initrd') or boot.get('cmdline'):
            raise KvmError('boot: initrd and cmdline need a kernel (direct kernel boot)')
        devices = boot.get('devices')
        if devices is None and current is None and not boot.get('kernel'):
            devices = ['hd']
        for device in devices or []:
            _xml.sub_element(os_element, 'boot', dev=device)

    def add_cpu(self, domain, new: bool) -> None:
        cpu = self.params.get('cpu') or {}
        if not cpu and not new:
            return  # an existing guest's CPU is left as it is: the default below is for new guests
        mode, topology = None, None
        if cpu:
            mode, topology = check_cpu(cpu, self.params.get('max_vcpus') or self.params.get('vcpus'))
        if mode is None and new:
            mode = self.default_cpu_mode(domain.get('type'))
        if mode is None and not topology:
            return
        element = _xml.sub_element(domain, 'cpu', mode=mode)
        if mode == 'custom':
            _xml.sub_element(element, 'model', cpu['model'], fallback='allow')
        if topology:
            _xml.sub_element(element, 'topology', sockets=topology[0], dies=1, cores=topology[1], threads=topology[2])

    def default_cpu_mode(self, virt_type: str) -> str | None:
        """A new guest's CPU when ``cpu`` gives no mode: the host's own under KVM (as virt-install
        does), and everything QEMU can emulate under TCG (QEMU's ``max``; its default ``qemu64``
        lacks x86-64-v2, which current distributions need). libvirt before 7.1 has no ``maximum``
        mode: there QEMU's default stays."""
        if virt_type == 'kvm':
            return 'host-passthrough'
        if self.conn.getLibVersion() >= MAXIMUM_CPU_MODE_SINCE:
            return 'maximum'
        return None

    def add_disks(self, devices) -> None:
        disks = self.params.get('disks')
        if disks is None:
            return
        used_targets, counters = set(), {}
        for index, disk in enumerate(disks):
            where = f'disks[{index}]'
            device = disk.get('device') or 'disk'
            bus = disk.get('bus') or ('sata' if device == 'cdrom' else 'virtio')
            target = disk.get('target')
            if not target:
                prefix = BUS_PREFIX.get(bus, 'sd')
                while True:
                    target = prefix + _letters(counters.get(prefix, 0))
                    counters[prefix] = counters.get(prefix, 0) + 1
                    if target not in used_targets:
                        break
            if target in used_targets:
                raise KvmError(f'{where}.target: {target} is used by another disk')
            used_targets.add(target)
            element = ET.SubElement(devices, 'disk', {'device': device})
            driver = _xml.sub_element(element, 'driver', name='qemu', cache=disk.get('cache'))
            fmt = disk.get('format')
            if disk.get('volume'):
                if disk.get('path'):
                    raise KvmError(f'{where}: give volume (with pool) or path, not both')
                pool_name = disk.get('pool') or 'default'
                volume_format = self.volume_format(pool_name, disk['volume'], where)
                element.set('type', 'volume')
                _xml.sub_element(element, 'source', pool=pool_name, volume=disk['volume'])
                fmt = fmt or volume_format
            elif disk.get('path'):
                path = disk['path']
                if not path.startswith('/'):
                    raise KvmError(f'{where}.path: {path!r} is not an absolute path')
                if is_local_uri(self.conn.getURI()) and not os.path.exists(path):
                    raise KvmError(f'{where}.path: {path} does not exist on the host')
                block = path.startswith('/dev/')
                element.set('type', 'block' if block else 'file')
                _xml.sub_element(element, 'source', **{'dev' if block else 'file': path})
                fmt = fmt or DISK_FORMAT_BY_SUFFIX.get(os.path.splitext(path)[1].lower(), 'raw')
            elif device == 'cdrom':
                element.set('type', 'file')  # an empty drive
            else:
                raise KvmError(f'{where}: a disk needs a volume (with pool) or a path')
            if fmt:
                driver.set('type', fmt)
            _xml.sub_element(element, 'target', dev=target, bus=bus)
            if disk.get('readonly') or device == 'cdrom':
                _xml.sub_element(element, 'readonly')
            # keep <driver> first as libvirt writes it
            element.remove(driver)
            element.insert(0, driver)

    def volume_format(self, pool_name: str, volume_name: str, where: str) -> str | None:
        pending = self.pending.get('volumes', {}).get((pool_name, volume_name))
        pool = lookup(self.conn.storagePoolLookupByName, pool_name, 'pool')
        if pool is None:
            if pending is not None:
                return disk_format(pending['format'])
            raise KvmError(f"{where}.pool: storage pool '{pool_name}' does not exist")
        if not pool.isActive():
            raise KvmError(f"{where}.pool: storage pool '{pool_name}' is inactive")
        volume = lookup(pool.storageVolLookupByName, volume_name, 'volume')
        if volume is None:
            if pending is not None:
                return disk_format(pending['format'])
            raise KvmError(f"{where}.volume: no volume '{volume_name}' in storage pool '{pool_name}'")
        definition = _xml.parse_xml(volume.XMLDesc(0), 'libvirt volume XML')
        fmt = definition.find('target/format')
        return disk_format(fmt.get('type') if fmt is not None else None)

    def add_interfaces(self, devices) -> None:
        interfaces = self.params.get('interfaces')
        if interfaces is None:
            return
        for index, spec in enumerate(interfaces):
            where = f'interfaces[{index}]'
            kinds = [key for key in ('network', 'bridge', 'direct') if spec.get(key)]
            if len(kinds) != 1:
                raise KvmError(f'{where}: give exactly one of network, bridge or direct')
            kind = kinds[0]
            element = ET.SubElement(devices, 'interface', {'type': kind})
            if spec.get('mac'):
                _xml.sub_element(element, 'mac', address=mac_address(spec['mac'], f'{where}.mac'))
            if kind == 'network':
                if (lookup(self.conn.networkLookupByName, spec['network'], 'network') is None
                        and spec['network'] not in self.pending.get('networks', ())):
                    raise KvmError(f"{where}.network: network '{spec['network']}' does not exist")
                _xml.sub_element(element, 'source', network=spec['network'])
            elif kind == 'bridge':
                _xml.sub_element(element, 'source', bridge=spec['bridge'])
            else:
                _xml.sub_element(element, 'source', dev=spec['direct'], mode=spec.get('mode') or 'bridge')
            _xml.sub_element(element, 'model', type=spec.get('model') or 'virtio')

    def add_console(self, devices, new: bool) -> None:
        console = self.params.get('console')
        if console is None and not new:
            return
        console = console if console is not None else {'pty': True}  # validated by _options
        if not console.get('pty', True) and not console.get('log'):
            return
        serial = _xml.sub_element(devices, 'serial', type='pty')
        if console.get('log'):
            _xml.sub_element(serial, 'log', file=console['log'], append='on')
        _xml.sub_element(serial, 'target', port=0)
        _xml.sub_element(_xml.sub_element(devices, 'console', type='pty'), 'target', type='serial', port=0)

    def add_channels(self, devices, current) -> None:
        agent = self.params.get('guest_agent')
        if agent is None:
            return
        if current is not None:  # other channels (spice...) are not this option's business
            for channel in current.findall('devices/channel'):
                target = channel.find('target')
                if target is None or target.get('name') != GUEST_AGENT:
                    devices.append(copy.deepcopy(channel))
        if agent:
            channel = _xml.sub_element(devices, 'channel', type='unix')
            _xml.sub_element(channel, 'target', type='virtio', name=GUEST_AGENT)

    def add_graphics(self, devices) -> None:
        graphics = self.params.get('graphics')
        if graphics is None:
            return
        kind = graphics.get('type') or 'vnc'  # validated by _options
        if kind == 'none':
            return
        listen = graphics.get('listen') or '127.0.0.1'
        port = graphics.get('port')
        element = _xml.sub_element(devices, 'graphics', type=kind, listen=listen,
                                   port=port if port else None, autoport=None if port else 'yes')
        if graphics.get('password'):
            if kind == 'vnc' and len(str(graphics['password'])) > 8:
                raise KvmError('graphics.password: VNC passwords are at most 8 characters (the VNC protocol '
                               'uses only 8); use spice for longer ones')
            element.set('passwd', str(graphics['password']))
        _xml.sub_element(element, 'listen', type='address', address=listen)


def check_domain_name(name, option: str = 'name') -> None:
    """A name libvirt and the pool's files can take: not empty, no '/', no surrounding blanks or
    control characters, short enough for ``<name>-seed.iso`` to be a file name."""
    if not isinstance(name, str) or not name.strip():
        raise KvmError(f'{option}: a domain needs a name')
    if '/' in name or name != name.strip() or any(ord(char) < 32 for char in name) \
            or len(name.encode()) > MAX_NAME_BYTES:
        raise KvmError(f"{option}: {name!r} is not a usable domain name (no '/', control characters or "
                       f'surrounding blanks, at most {MAX_NAME_BYTES} bytes)')


def check_boot_file(conn, path: str, option: str) -> None:
    """A kernel or initrd for direct kernel boot: an absolute path, and a file when this host is
    the libvirt host (on a remote URI the file is on the libvirt host, checked when it starts)."""
    if not isinstance(path, str) or not path.startswith('/'):
        raise KvmError(f'{option}: {path!r} is not an absolute path on the libvirt host')
    if is_local_uri(conn.getURI()) and not os.path.isfile(path):
        raise KvmError(f'{option}: {path} is not a file on the libvirt host')


def memory_sizes(conn, memory, maximum) -> tuple:
    """(memory, max_memory) in bytes, checked: at least 16 MiB, max not below memory, not more
    than the host has. Either may be None (it then follows the other)."""
    memory_bytes = parse_size(memory, 'memory', 'MiB') if memory is not None else None
    maximum_bytes = parse_size(maximum, 'max_memory', 'MiB') if maximum is not None else memory_bytes
    if memory_bytes is None:
        memory_bytes = maximum_bytes
    if memory_bytes < 16 * 1024 ** 2:
        raise KvmError(f'memory: {format_size(memory_bytes)} is too small for a guest (at least 16 MiB)')
    if maximum_bytes < memory_bytes:
        raise KvmError(f'max_memory: {format_size(maximum_bytes)} is less than memory {format_size(memory_bytes)}')
    host_kib = host_memory_kib(conn)
    if bytes_to_kib(maximum_bytes) > host_kib:
        raise KvmError(f'memory: {format_size(maximum_bytes)} is more than the host has '
                       f'({format_size(host_kib * 1024)})')
    return memory_bytes, maximum_bytes


def check_cpu(cpu: dict, max_vcpus, option: str = 'cpu') -> tuple:
    """(mode, (sockets, cores, threads) or None) of a ``cpu`` option, checked: a model only with
    mode custom (implied by a model alone), and a topology that adds up to the domain's vcpus."""
    mode = cpu.get('mode') or ('custom' if cpu.get('model') else None)
    if mode == 'custom' and not cpu.get('model'):
        raise KvmError(f'{option}.model: required with {option}.mode custom (e.g. Skylake-Client)')
    if mode != 'custom' and cpu.get('model'):
        raise KvmError(f'{option}.model: only with {option}.mode custom, not {mode}')
    if not any(cpu.get(key) for key in ('sockets', 'cores', 'threads')):
        return mode, None
    topology = tuple(int(cpu.get(key) or 1) for key in ('sockets', 'cores', 'threads'))
    product = topology[0] * topology[1] * topology[2]
    if max_vcpus and product != max_vcpus:
        raise KvmError(f'{option}: sockets * cores * threads = {product}, '
                       f'but the domain has {max_vcpus} vcpus (max_vcpus)')
    return mode, topology


def check_machine(machine, option: str = 'machine') -> str:
    """A machine type as libvirt's schema spells one (``q35``, ``pc-i440fx-7.2``...)."""
    if not isinstance(machine, str) or not re.fullmatch(r'[A-Za-z0-9_.-]+', machine):
        raise KvmError(f'{option}: {machine!r} is not a machine type (letters, digits, _ . -; for example q35 or pc)')
    return machine


def vcpu_counts(vcpus, maximum) -> tuple:
    """(vcpus, max_vcpus), checked: at least 1, vcpus not above the max, the max within libvirt's."""
    vcpus = vcpus if vcpus is not None else maximum
    maximum = maximum if maximum is not None else vcpus
    for option, value in (('vcpus', vcpus), ('max_vcpus', maximum)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise KvmError(f'{option}: expected a number of CPUs, got {value!r}')
    if vcpus < 1:
        raise KvmError(f'vcpus: {vcpus} is not a number of CPUs (at least 1)')
    if vcpus > maximum:
        raise KvmError(f'vcpus: {vcpus} is more than max_vcpus {maximum}')
    if maximum > MAX_VCPUS:
        raise KvmError(f'max_vcpus: {maximum} is more than libvirt allows ({MAX_VCPUS})')
    return vcpus, maximum


def disk_format(volume_format: str | None) -> str | None:
    """The disk driver type for a volume format: libvirt reports a file holding an ISO image as
    format 'iso', which QEMU reads as raw."""
    return 'raw' if volume_format == 'iso' else volume_format


def host_memory_kib(conn) -> int:
    """The host's memory: all NUMA cells (getInfo reports one cell on some hosts)."""
    try:
        return int(conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)['total'])
    except (libvirt.libvirtError, KeyError, TypeError):
        return conn.getInfo()[1] * 1024


def _letters(index: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa (as libvirt names disks)."""
    name = ''
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        name = chr(ord('a') + remainder) + name
    return name
