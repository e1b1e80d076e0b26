# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domains (guests): options -> XML, power states with waiting, live changes, restarts the
user opted into, removal with NVRAM and storage, and facts (single and bulk)."""

from __future__ import annotations

import copy
import hashlib
import os
import re
import time
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._host import hardware_virt_mode
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import is_local_uri, libvirt, xml_desc
from ansible_collections.hypervisor.kvm.plugins.module_utils._network import mac_address
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Plan, Resource, Snapshot
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import (
    bytes_to_kib,
    format_size,
    parse_size,
    unit_factor,
)

DOMAIN_STATES = ('present', 'running', 'shutdown', 'destroyed', 'paused', 'absent')
# virDomainState -> the names kvm_domain and kvm_domain_info report
POWER_STATES = {0: 'shutoff', 1: 'running', 2: 'running', 3: 'paused', 4: 'running', 5: 'shutoff',
                6: 'crashed', 7: 'pmsuspended'}
SHUTOFF_REASONS = {0: 'unknown', 1: 'shutdown', 2: 'destroyed', 3: 'crashed', 4: 'migrated', 5: 'saved',
                   6: 'failed', 7: 'from-snapshot', 8: 'daemon'}
RUNNING_REASONS = {0: 'unknown', 1: 'booted', 2: 'migrated', 3: 'restored', 4: 'from-snapshot', 5: 'unpaused',
                   6: 'migration-canceled', 7: 'save-canceled', 8: 'wakeup', 9: 'crashed', 10: 'post-copy'}
PAUSED_REASONS = {0: 'unknown', 1: 'user', 2: 'migration', 3: 'save', 4: 'dump', 5: 'ioerror', 6: 'watchdog',
                  7: 'from-snapshot', 8: 'shutting-down', 9: 'snapshot', 10: 'api-error', 11: 'starting-up'}
BUS_PREFIX = {'virtio': 'vd', 'sata': 'sd', 'scsi': 'sd', 'usb': 'sd', 'ide': 'hd'}
DISK_FORMAT_BY_SUFFIX = {'.qcow2': 'qcow2', '.qcow': 'qcow2', '.iso': 'raw', '.img': 'raw', '.raw': 'raw'}
GUEST_AGENT = 'org.qemu.guest_agent.0'
UNDEFINE_FLAGS = ('VIR_DOMAIN_UNDEFINE_MANAGED_SAVE', 'VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA',
                  'VIR_DOMAIN_UNDEFINE_NVRAM', 'VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA')


def power_state(code: int) -> str:
    return POWER_STATES.get(code, 'unknown')


def state_reason(code: int, reason: int) -> str:
    table = {5: SHUTOFF_REASONS, 1: RUNNING_REASONS, 3: PAUSED_REASONS}.get(code, {})
    return table.get(reason, str(reason))


def _flags(*names) -> int:
    value = 0
    for name in names:
        value |= getattr(libvirt, name, 0)
    return value


# ---- what decides a restart -----------------------------------------------------------------
# The parts of a definition that a running guest only picks up when it starts again. Live XML
# is full of runtime details (aliases, tap names, ports), so both sides are projected on these.
# currentMemory is left out: in live XML it is what the balloon reached, which a guest without
# a balloon driver never changes.
RESTART_RELEVANT = (
    ('memory', (), True), ('vcpu', ('current',), True),
    ('os', ('firmware',), False), ('os/type', ('arch', 'machine'), True), ('os/kernel', (), True),
    ('os/initrd', (), True), ('os/cmdline', (), True), ('os/boot', ('dev',), False),
    ('cpu', ('mode',), False), ('cpu/model', (), True), ('cpu/topology', ('sockets', 'cores', 'threads'), False),
    ('devices', (), False), ('devices/disk', ('type', 'device'), False),
    ('devices/disk/driver', ('type', 'cache'), False),
    ('devices/disk/source', ('file', 'dev', 'pool', 'volume'), False),
    ('devices/disk/target', ('dev', 'bus'), False), ('devices/disk/readonly', (), False),
    ('devices/interface', ('type',), False), ('devices/interface/mac', ('address',), False),
    ('devices/interface/source', ('network', 'bridge', 'dev', 'mode'), False),
    ('devices/interface/model', ('type',), False),
    ('devices/graphics', ('type',), False), ('devices/tpm', ('model',), False), ('devices/rng', ('model',), False),
)


def project(definition) -> ET.Element:
    """The restart-relevant parts of a domain definition (see RESTART_RELEVANT)."""
    result = ET.Element('domain')
    mapping = {id(definition): result}
    for path, attributes, with_text in RESTART_RELEVANT:
        parent_path, tag = path.rpartition('/')[::2]
        parents = [definition] if not parent_path else definition.findall(parent_path)
        for parent in parents:
            target_parent = mapping.get(id(parent))
            if target_parent is None:
                continue
            for element in parent.findall(tag):
                kept = {a: element.get(a) for a in attributes if element.get(a) is not None}
                copied = ET.SubElement(target_parent, tag, kept)
                if with_text and (element.text or '').strip():
                    copied.text = element.text.strip()
                mapping[id(element)] = copied
    return result


# ---- the desired definition from structured options ----------------------------------------------
class DomainBuilder:
    """Builds ``<domain>`` from the structured options, validating against the host."""

    def __init__(self, resource):
        self.resource = resource
        self.conn = resource.conn
        self.params = resource.params
        self.warnings = []

    def build(self, before: Snapshot) -> ET.Element:
        params, current = self.params, before.xml if before.exists else None
        new = current is None
        domain = ET.Element('domain', {'type': self.virt_type(current)})
        _xml.sub_element(domain, 'name', self.resource.name)
        self.add_memory(domain, new)
        self.add_vcpus(domain, new)
        self.add_os(domain, current)
        if new or params.get('firmware'):
            features = _xml.sub_element(domain, 'features')
            _xml.sub_element(features, 'acpi')
            _xml.sub_element(features, 'apic')
            if params.get('firmware') == 'efi' and params.get('secure_boot'):
                _xml.sub_element(features, 'smm', state='on')
        self.add_cpu(domain)
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
        return domain

    def virt_type(self, current) -> str:
        wanted = self.params.get('virt_type') or 'auto'
        if wanted != 'auto':
            self.resource.virt_reason = f'virt_type: {wanted} as asked'
            return wanted
        if current is not None:
            self.resource.virt_reason = 'the existing domain keeps its type (virt_type: auto)'
            return current.get('type')
        mode, reason = self.host_virt_mode()
        self.resource.virt_reason = reason
        if mode == 'qemu':
            self.warnings.append(f'virt_type auto chose qemu (emulation, slower): {reason}')
        return mode

    def host_virt_mode(self) -> tuple:
        if is_local_uri(self.conn.getURI()):
            return hardware_virt_mode()
        capabilities = _xml.parse_xml(self.conn.getCapabilities(), 'libvirt capabilities')
        if capabilities.find(".//guest/arch/domain[@type='kvm']") is not None:
            return 'kvm', 'the remote host offers kvm domains'
        return 'qemu', 'the remote host offers no kvm domains; using QEMU emulation'

    def add_memory(self, domain, new: bool) -> None:
        params = self.params
        memory = params.get('memory')
        maximum = params.get('max_memory')
        if memory is None and maximum is None:
            if new:
                raise KvmError('memory: required to create a domain (e.g. memory: 1GiB)')
            return
        memory_bytes = parse_size(memory, 'memory', 'MiB') if memory is not None else None
        maximum_bytes = parse_size(maximum, 'max_memory', 'MiB') if maximum is not None else memory_bytes
        if memory_bytes is None:
            memory_bytes = maximum_bytes
        if memory_bytes < 16 * 1024 ** 2:
            raise KvmError(f'memory: {format_size(memory_bytes)} is too small for a guest (at least 16 MiB)')
        if maximum_bytes < memory_bytes:
            raise KvmError(f'max_memory: {format_size(maximum_bytes)} is less than memory {format_size(memory_bytes)}')
        host_kib = host_memory_kib(self.conn)
        if bytes_to_kib(maximum_bytes) > host_kib:
            raise KvmError(f'memory: {format_size(maximum_bytes)} is more than the host has '
                           f'({format_size(host_kib * 1024)})')
        _xml.sub_element(domain, 'memory', bytes_to_kib(maximum_bytes), unit='KiB')
        _xml.sub_element(domain, 'currentMemory', bytes_to_kib(memory_bytes), unit='KiB')

    def add_vcpus(self, domain, new: bool) -> None:
        vcpus, maximum = self.params.get('vcpus'), self.params.get('max_vcpus')
        if vcpus is None and maximum is None:
            if not new:
                return
            vcpus = 1
        vcpus = vcpus if vcpus is not None else maximum
        maximum = maximum if maximum is not None else vcpus
        if vcpus < 1:
            raise KvmError(f'vcpus: {vcpus} is not a number of CPUs (at least 1)')
        if vcpus > maximum:
            raise KvmError(f'vcpus: {vcpus} is more than max_vcpus {maximum}')
        element = _xml.sub_element(domain, 'vcpu', maximum, placement='static')
        if maximum != vcpus:
            element.set('current', str(vcpus))

    def add_os(self, domain, current) -> None:
        params = self.params
        os_element = _xml.sub_element(domain, 'os')
        arch = params.get('arch') or (None if current is not None else 'x86_64')
        machine = params.get('machine') or (None if current is not None else 'q35' if arch == 'x86_64' else None)
        if machine and current is not None:
            machine = resolve_machine(machine, current.find('os/type'))
        _xml.sub_element(os_element, 'type', 'hvm', arch=arch, machine=machine)
        firmware = params.get('firmware')
        if firmware == 'efi':
            os_element.set('firmware', 'efi')
            if params.get('secure_boot') is not None:
                fw = _xml.sub_element(os_element, 'firmware')
                _xml.sub_element(fw, 'feature', enabled='yes' if params['secure_boot'] else 'no', name='secure-boot')
                _xml.sub_element(fw, 'feature', enabled='yes' if params['secure_boot'] else 'no',
                                 name='enrolled-keys')
        elif params.get('secure_boot'):
            raise KvmError('secure_boot: needs firmware: efi')
        boot = params.get('boot') or {}
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

    def add_cpu(self, domain) -> None:
        cpu = self.params.get('cpu')
        if not cpu:
            return
        mode = cpu.get('mode') or ('custom' if cpu.get('model') else None)
        element = _xml.sub_element(domain, 'cpu', mode=mode)
        if mode == 'custom':
            if not cpu.get('model'):
                raise KvmError('cpu.model: required with cpu.mode custom (e.g. Skylake-Client)')
            _xml.sub_element(element, 'model', cpu['model'], fallback='allow')
        elif cpu.get('model'):
            raise KvmError(f'cpu.model: only with cpu.mode custom, not {mode}')
        topology = {key: cpu.get(key) for key in ('sockets', 'cores', 'threads') if cpu.get(key)}
        if topology:
            sockets, cores, threads = (topology.get(k, 1) for k in ('sockets', 'cores', 'threads'))
            maximum = self.params.get('max_vcpus') or self.params.get('vcpus')
            if maximum and sockets * cores * threads != maximum:
                raise KvmError(f'cpu: sockets * cores * threads = {sockets * cores * threads}, '
                               f'but the domain has {maximum} vcpus (max_vcpus)')
            _xml.sub_element(element, 'topology', sockets=sockets, dies=1, cores=cores, threads=threads)

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
        try:
            pool = self.conn.storagePoolLookupByName(pool_name)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise KvmError(f"{where}.pool: storage pool '{pool_name}' does not exist") from None
            raise
        if not pool.isActive():
            raise KvmError(f"{where}.pool: storage pool '{pool_name}' is inactive")
        try:
            volume = pool.storageVolLookupByName(volume_name)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise KvmError(f"{where}.volume: no volume '{volume_name}' in storage pool '{pool_name}'") from None
            raise
        definition = _xml.parse_xml(volume.XMLDesc(0), 'libvirt volume XML')
        fmt = definition.find('target/format')
        fmt = fmt.get('type') if fmt is not None else None
        return 'raw' if fmt == 'iso' else fmt

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
                try:
                    self.conn.networkLookupByName(spec['network'])
                except libvirt.libvirtError as err:
                    if err.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                        raise KvmError(f"{where}.network: network '{spec['network']}' does not exist") from None
                    raise
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
        console = console if console is not None else {'pty': True}
        if isinstance(console, bool):
            console = {'pty': console}
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
        if isinstance(graphics, str):
            graphics = {'type': graphics}
        kind = graphics.get('type') or 'vnc'
        if kind not in ('none', 'vnc', 'spice'):
            raise KvmError(f"graphics.type: {kind!r} is not one of none, vnc, spice")
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


def disk_key(disk) -> str:
    """Disks pair by their target (libvirt groups them by bus, whatever order they came in)."""
    target = disk.find('target')
    return target.get('dev', '') if target is not None else ''


def strip_runtime(definition) -> None:
    """Remove what only a running domain's XML has (``virsh dumpxml`` of a running guest given
    back as xml): ids, aliases, tap names, pty paths, ports picked by autoport, dynamic labels."""
    definition.attrib.pop('id', None)
    for parent in definition.iter():
        for child in list(parent):
            if child.tag == 'alias' or child.tag == 'seclabel' and child.get('type') == 'dynamic':
                parent.remove(child)
    for interface in definition.findall('devices/interface'):
        for target in interface.findall('target'):
            interface.remove(target)
        source = interface.find('source')
        if source is not None and interface.get('type') == 'network':
            source.attrib.pop('portid', None)
            source.attrib.pop('bridge', None)
    for tag in ('serial', 'console', 'channel'):
        for device in definition.findall(f'devices/{tag}'):
            device.attrib.pop('tty', None)
            source = device.find('source')
            if source is not None and device.get('type') == 'pty':
                device.remove(source)
    for graphics in definition.findall('devices/graphics'):
        if graphics.get('autoport') == 'yes':
            for key in ('port', 'tlsPort', 'websocket'):
                graphics.attrib.pop(key, None)


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


def resolve_machine(wanted: str, current_type) -> str:
    """``q35`` or ``pc`` as libvirt expanded it (``pc-q35-7.2``), so an alias is not drift."""
    have = current_type.get('machine') if current_type is not None else None
    if have and (have == wanted or re.fullmatch(rf'pc-{"q35" if wanted == "q35" else "i440fx"}-[\d.]+', have)
                 and wanted in ('q35', 'pc')):
        return have
    return wanted


def disk_sources(definition) -> list:
    """The storage a domain's own disks use: dicts with path, pool, volume, device."""
    found = []
    for disk in definition.findall('devices/disk'):
        source = disk.find('source')
        if source is None:
            continue
        found.append({
            'device': disk.get('device', 'disk'),
            'path': source.get('file') or source.get('dev'),
            'pool': source.get('pool'),
            'volume': source.get('volume'),
            'readonly': disk.find('readonly') is not None,
            'shareable': disk.find('shareable') is not None,
            'target': disk.find('target').get('dev') if disk.find('target') is not None else None,
            'bus': disk.find('target').get('bus') if disk.find('target') is not None else None,
            'format': disk.find('driver').get('type') if disk.find('driver') is not None else None,
        })
    return found


def mask_secrets(element):
    """A copy with graphics passwords hidden (they are compared, never shown)."""
    if element is None:
        return None
    masked = copy.deepcopy(element)
    for graphics in masked.iter('graphics'):
        if graphics.get('passwd') is not None:
            graphics.set('passwd', '********')
    return masked


# ---- the resource -------------------------------------------------------------------------------
class Domain(Resource):
    kind = 'domain'
    result_key = 'domain'
    volatile = ('id',)

    def __init__(self, conn, params: dict, check_mode: bool = False):
        super().__init__(conn, params, check_mode)
        owned = {'devices/disk', 'devices/interface'}
        boot = params.get('boot') or {}
        if boot.get('devices') is not None:
            owned.add('os/boot')
        if any(boot.get(key) for key in ('kernel', 'initrd', 'cmdline')):
            owned.update(('os/kernel', 'os/initrd', 'os/cmdline'))
        for option, paths in (('console', ('devices/serial', 'devices/console')),
                              ('guest_agent', ('devices/channel',)), ('graphics', ('devices/graphics',)),
                              ('rng', ('devices/rng',)), ('tpm', ('devices/tpm',))):
            if params.get(option) is not None or params.get('xml'):
                owned.update(paths)
        if params.get('xml'):
            owned -= {'devices/channel', 'devices/console', 'devices/serial', 'os/boot'}
        if params.get('disks') is None and not params.get('xml'):
            owned.discard('devices/disk')
        if params.get('interfaces') is None and not params.get('xml'):
            owned.discard('devices/interface')
        self.authoritative = {path: disk_key if path == 'devices/disk' else None for path in sorted(owned)}
        self.virt_reason = None
        self.waited_interfaces = None
        self.warnings_extra = []

    def label(self) -> str:
        return f"domain '{self.name}'"

    # ---- reading ------------------------------------------------------------------------------
    def lookup(self):
        try:
            return self.conn.lookupByName(self.name)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def read(self, handle) -> Snapshot:
        code, _reason = handle.state()
        active = bool(handle.isActive())
        persistent = bool(handle.isPersistent())
        secure = libvirt.VIR_DOMAIN_XML_SECURE
        if persistent:
            inactive = xml_desc(handle, libvirt.VIR_DOMAIN_XML_INACTIVE | secure, 'libvirt domain XML')
        else:
            inactive = xml_desc(handle, secure, 'libvirt domain XML')
        live = xml_desc(handle, secure, 'libvirt domain XML') if active else None
        snapshot = Snapshot(exists=True, handle=handle, active=active, persistent=persistent,
                            autostart=bool(handle.autostart()) if persistent else False,
                            xml=self.clean(inactive), live_xml=self.clean(live) if live is not None else None)
        snapshot.facts = {'state': power_state(code), 'autostart': snapshot.autostart, 'persistent': persistent}
        return snapshot

    def display(self, element):
        return mask_secrets(element)

    def clean(self, element):
        """Normalised, with memory sizes in KiB as libvirt writes them (``<memory unit='MiB'>64``)."""
        element = super().clean(element)
        vcpu = element.find('vcpu') if element is not None else None
        if vcpu is not None and vcpu.get('current') is None and (vcpu.text or '').strip():
            vcpu.set('current', vcpu.text.strip())  # libvirt leaves it out when all vcpus are on
        for tag in ('memory', 'currentMemory', 'maxMemory'):
            size = element.find(tag) if element is not None else None
            if size is not None and size.text and size.get('unit', 'KiB') != 'KiB':
                factor = unit_factor(size.get('unit'))
                if factor:
                    size.text = str(bytes_to_kib(int(size.text) * factor))
                    size.set('unit', 'KiB')
        return element

    def info(self, snapshot: Snapshot) -> dict:
        facts = domain_info(self.conn, snapshot.handle)
        if self.waited_interfaces is not None:
            facts['interfaces'] = self.waited_interfaces
        return facts

    def definition_facts(self, definition) -> dict:
        return definition_facts(definition)

    # ---- desired ------------------------------------------------------------------------------
    def desired_xml(self, before: Snapshot):
        if self.params.get('xml'):
            desired = _xml.parse_xml(self.params['xml'], 'xml')
            if desired.tag != 'domain':
                raise KvmError(f'xml: expected a <domain> document, got <{desired.tag}>')
            if not desired.get('type'):
                raise KvmError("xml: the <domain> element needs a type ('kvm' or 'qemu')")
            self.virt_reason = 'from xml'
            # `virsh dumpxml` of a running guest: compared with the running definition too
            self.runtime_xml = desired.get('id') is not None or desired.find('.//alias') is not None
            strip_runtime(desired)
            machine = desired.find('os/type')
            if before.exists and machine is not None and machine.get('machine'):
                machine.set('machine', resolve_machine(machine.get('machine'), before.xml.find('os/type')))
            return desired
        builder = DomainBuilder(self)
        desired = builder.build(before)
        self.builder_warnings = builder.warnings
        return desired

    # ---- planning -----------------------------------------------------------------------------
    def plan(self, before: Snapshot) -> Plan:
        self.check_options()
        if self.params['state'] == 'absent':
            return self.plan_absent(before)
        return self.plan_present(before)

    def check_options(self) -> None:
        params = self.params
        if params.get('wait_for_ip') and params['state'] != 'running':
            raise KvmError('wait_for_ip: only with state: running')
        if params.get('remove_storage') and params['state'] != 'absent':
            raise KvmError('remove_storage: only with state: absent')
        if params.get('shutdown_timeout') is not None and params['shutdown_timeout'] < 0:
            raise KvmError('shutdown_timeout: must be 0 or more seconds')

    def plan_absent(self, before: Snapshot) -> Plan:
        plan = Plan()
        plan.after.facts = {}
        self.warnings_extra = plan.warnings
        if not before.exists:
            return plan
        handle = before.handle
        if before.active:
            plan.add('destroy', f'stopping {self.label()} (hard power off)', handle.destroy)
        removable = self.removable_storage(before) if self.params.get('remove_storage') else []
        if before.persistent:
            plan.add('undefine', f'undefining {self.label()} with its managed save, snapshot metadata and NVRAM',
                     lambda: undefine(handle))
        if removable:
            removed = plan.extra['removed_storage'] = []
            plan.add('remove-storage', f"deleting the storage of {self.label()}",
                     lambda: removed.extend(self.delete_storage(removable)))
            if self.check_mode:
                removed.extend(source['resolved'] for source in removable)
        return plan

    def removable_storage(self, before: Snapshot) -> list:
        """The domain's own disks: not cdroms, not shared, not used by another domain."""
        mine = [source for source in disk_sources(before.xml)
                if source['device'] == 'disk' and not source['shareable'] and (source['path'] or source['volume'])]
        if not mine:
            return []
        for source in mine:
            source['resolved'] = self.storage_path(source)
        elsewhere = set()
        for other in self.conn.listAllDomains(0):
            if other.name() == self.name:
                continue
            for source in disk_sources(_xml.parse_xml(other.XMLDesc(0), 'libvirt domain XML')):
                elsewhere.add(self.storage_path(source))
        kept = [source for source in mine if source['resolved'] in elsewhere]
        for source in kept:
            self.warnings_extra.append(f"kept {source['path'] or source['volume']}: another domain uses it too")
        return [source for source in mine if source not in kept]

    def storage_path(self, source: dict) -> str:
        """One spelling for a disk's storage: the path, also for a pool/volume disk."""
        if source['volume']:
            try:
                return self.conn.storagePoolLookupByName(source['pool']).storageVolLookupByName(
                    source['volume']).path()
            except libvirt.libvirtError:
                return f"{source['pool']}/{source['volume']}"
        return source['path']

    def delete_storage(self, sources: list) -> list:
        removed = []
        for source in sources:
            if source['volume']:
                pool = self.conn.storagePoolLookupByName(source['pool'])
                volume = pool.storageVolLookupByName(source['volume'])
                path = volume.path()
                volume.delete(0)
                removed.append(path)
                continue
            try:
                volume = self.conn.storageVolLookupByPath(source['path'])
            except libvirt.libvirtError as err:
                if err.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                    raise
                volume = None
            if volume is not None:
                volume.delete(0)
                removed.append(source['path'])
            elif is_local_uri(self.conn.getURI()) and os.path.isfile(source['path']):
                os.remove(source['path'])
                removed.append(source['path'])
            else:
                self.warnings_extra.append(f"{source['path']} is not a libvirt volume nor a local file: not deleted")
        return removed

    def plan_present(self, before: Snapshot) -> Plan:
        params, state = self.params, self.params['state']
        desired = self.clean(self.desired_xml(before))
        merged = self.clean(_xml.merge(desired, before.xml, self.authoritative))
        plan = Plan(desired=desired)
        self.warnings_extra = plan.warnings
        plan.warnings.extend(getattr(self, 'builder_warnings', []))
        handle = {'object': before.handle}

        def current():
            return handle['object']

        new = not before.exists or not before.persistent
        drift = not new and bool(_xml.differences(desired, before.xml, self.authoritative))
        if drift and getattr(self, 'runtime_xml', False) and before.live_xml is not None:
            # the running guest's own XML given back (with the CPU model, listen addresses and
            # resource partition libvirt filled in at start): no drift if it still runs as that
            running = copy.deepcopy(before.live_xml)
            strip_runtime(running)
            drift = bool(_xml.differences(desired, self.clean(running), self.authoritative))
        if new or drift:
            def define():
                handle['object'] = define_domain(self.conn, _xml.to_text(merged, pretty=False))
            plan.add('define', f'defining {self.label()}', define)

        power = power_state(before.handle.state()[0]) if before.exists else 'shutoff'
        running = power in ('running', 'paused')
        live_done = set()
        if running and drift and params.get('live') and state not in ('shutdown', 'destroyed'):
            live_done = self.plan_live_changes(before, merged, plan, current)
        restart = running and before.live_xml is not None and self.needs_restart(before, merged, live_done)
        wanted = {'running': 'running', 'paused': 'paused', 'shutdown': 'shutoff', 'destroyed': 'shutoff'}.get(state)
        final = wanted or power
        if wanted == 'running':
            if power == 'shutoff' or power == 'crashed':
                plan.add('start', f'starting {self.label()}', lambda: current().create())
            elif power == 'paused':
                plan.add('resume', f'resuming {self.label()}', lambda: current().resume())
            elif power == 'pmsuspended':
                plan.add('wake', f'waking {self.label()}', lambda: current().pMWakeup(0))
        elif wanted == 'paused':
            if power in ('shutoff', 'crashed'):
                plan.add('start', f'starting {self.label()}', lambda: current().create())
            if power != 'paused':
                plan.add('pause', f'pausing {self.label()}', lambda: current().suspend())
        elif state == 'shutdown' and running:
            plan.add('shutdown', f'shutting down {self.label()} (ACPI)', lambda: self.shutdown(current(), plan))
        elif state == 'destroyed' and running:
            plan.add('destroy', f'stopping {self.label()} (hard power off)', lambda: current().destroy())
        if restart and final in ('running', 'paused') and power in ('running', 'paused'):
            if params.get('restart'):
                plan.add('restart', f'restarting {self.label()} to apply its new definition',
                         lambda: self.restart_domain(current(), plan, paused=final == 'paused'))
            else:
                plan.restart_required = True

        autostart = params.get('autostart')
        after_autostart = before.autostart
        if autostart is not None and (autostart != before.autostart or new and autostart):
            plan.add('autostart' if autostart else 'disable-autostart',
                     f"{'enabling' if autostart else 'disabling'} autostart of {self.label()}",
                     lambda: current().setAutostart(1 if autostart else 0))
            after_autostart = autostart
        after = plan.after
        after.exists, after.persistent = True, True
        after.xml = merged if new or drift else before.xml
        after.facts = {'state': final, 'autostart': after_autostart, 'persistent': True}
        return plan

    def needs_restart(self, before: Snapshot, merged, live_done: set) -> bool:
        """Whether the running guest differs from its new definition in what only a restart
        applies, after the live changes planned in ``live_done``."""
        if merged.findtext('currentMemory') != before.xml.findtext('currentMemory') and 'memory' not in live_done:
            return True  # changed now; the running guest's balloon says nothing reliable about it
        wanted, running = project(merged), project(before.live_xml)
        for tag in live_done & {'disk', 'interface'}:  # the device lists were made equal live
            for side in (wanted, running):
                devices = side.find('devices')
                for element in devices.findall(tag) if devices is not None else []:
                    devices.remove(element)
        if 'vcpu' in live_done:
            for side in (wanted, running):
                if side.find('vcpu') is not None:
                    side.find('vcpu').attrib.pop('current', None)
        return bool(_xml.differences(wanted, running, frozenset({'devices/disk', 'devices/interface'})))

    def plan_live_changes(self, before: Snapshot, merged, plan: Plan, current) -> set:
        """Apply to the running guest what it can take without a restart (live: true)."""
        done = set()
        # An interface attached live and defined separately would get two different MACs from
        # libvirt: give it one here, derived from the domain and its place so check mode agrees.
        for index, interface in enumerate(merged.findall('devices/interface')):
            if interface.find('mac') is None:
                seed = f"{self.name}/{index}/{_xml.to_text(interface, pretty=False)}".encode()
                digest = hashlib.sha256(seed).hexdigest()
                mac = ET.Element('mac', {'address': f'52:54:00:{digest[0:2]}:{digest[2:4]}:{digest[4:6]}'})
                interface.insert(0, mac)
        live = before.live_xml
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
        config = before.xml
        memory, old_memory = merged.findtext('currentMemory'), config.findtext('currentMemory')
        maximum = live.findtext('memory')
        if memory and memory != old_memory and int(memory) <= int(maximum or 0):
            plan.add('set-memory', f'setting the memory of running {self.label()} to {memory} KiB',
                     lambda: current().setMemoryFlags(int(memory), flags))
            done.add('memory')
        vcpu, live_vcpu = merged.find('vcpu'), live.find('vcpu')
        if vcpu is not None and live_vcpu is not None:
            wanted_count = int(vcpu.get('current') or vcpu.text)
            have_count = int(live_vcpu.get('current') or live_vcpu.text)
            if wanted_count != have_count and wanted_count <= int(live_vcpu.text):
                plan.add('set-vcpus', f'setting the vcpus of running {self.label()} to {wanted_count}',
                         lambda: current().setVcpusFlags(wanted_count, flags))
                done.add('vcpu')
        for tag in ('interface', 'disk'):
            want = [(project_device(e), e) for e in merged.findall(f'devices/{tag}')]
            have = [(project_device(e), e) for e in live.findall(f'devices/{tag}')]
            want_keys = [pair[0] for pair in want]
            have_keys = [pair[0] for pair in have]
            to_detach = [element for key, element in have if key not in want_keys]
            to_attach = [element for key, element in want if key not in have_keys]
            if not to_detach and not to_attach:
                continue
            for element in to_detach:
                text = _xml.to_text(element, pretty=False)
                plan.add(f'detach-{tag}', f'detaching a {tag} from running {self.label()}',
                         lambda text=text: current().detachDeviceFlags(text, flags))
            for element in to_attach:
                text = _xml.to_text(_xml.remove_paths(copy.deepcopy(element), ('address', 'alias', 'target')
                                                      if tag == 'interface' else ('address', 'alias')), pretty=False)
                plan.add(f'attach-{tag}', f'attaching a {tag} to running {self.label()}',
                         lambda text=text: current().attachDeviceFlags(text, flags))
            done.add(tag)
        return done

    # ---- power ------------------------------------------------------------------------------------
    def shutdown(self, handle, plan: Plan) -> None:
        """ACPI shutdown, returning only when the guest is off (or forcing it off when asked)."""
        if power_state(handle.state()[0]) == 'paused':
            handle.resume()
        handle.shutdown()
        timeout = self.params.get('shutdown_timeout')
        timeout = 120 if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not handle.isActive():
                return
            time.sleep(0.25)
        if not handle.isActive():
            return
        if self.params.get('force_off_after_timeout'):
            handle.destroy()
            plan.warnings.append(f'{self.label()} did not shut down within {timeout} s and was forced off')
            plan.extra['forced_off'] = True
            return
        raise KvmError(f'{self.label()} did not shut down within {timeout} s (ACPI shutdown sent). Set '
                       'force_off_after_timeout: true to force it off, a longer shutdown_timeout, or '
                       'state: destroyed for a hard power off.')

    def restart_domain(self, handle, plan: Plan, paused: bool) -> None:
        self.shutdown(handle, plan)
        handle.create()
        if paused:
            handle.suspend()

    def converge(self) -> dict:
        result = super().converge()
        wait = self.params.get('wait_for_ip')
        if wait and self.params['state'] == 'running' and not self.check_mode:
            handle = self.lookup()
            self.waited_interfaces = wait_for_addresses(self.conn, handle, wait)
            result['domain']['interfaces'] = self.waited_interfaces
        if self.virt_reason:
            result['virt_type_reason'] = self.virt_reason
        return result


def project_device(element) -> str:
    """What identifies a disk or interface for live attach/detach (runtime details left out)."""
    source = element.find('source')
    if element.tag == 'interface':
        mac = element.find('mac')
        kind = element.get('type') or ''
        # a running network interface also names its bridge: only the network identifies it
        key = {'network': 'network', 'bridge': 'bridge', 'direct': 'dev'}.get(kind, 'network')
        return '|'.join([kind, mac.get('address') if mac is not None else '',
                         source.get(key) or '' if source is not None else ''])
    target = element.find('target')
    keys = [element.get('device') or 'disk']
    keys += [source.get(key) or '' for key in ('file', 'dev', 'pool', 'volume')] if source is not None else []
    keys.append(target.get('dev') if target is not None else '')
    return '|'.join(keys)


def define_domain(conn, text: str):
    """Define with libvirt's schema validation where the driver has it."""
    flag = getattr(libvirt, 'VIR_DOMAIN_DEFINE_VALIDATE', 0)
    try:
        return conn.defineXMLFlags(text, flag)
    except libvirt.libvirtError as err:
        if err.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        return conn.defineXML(text)


def undefine(handle) -> None:
    """Undefine with everything that would block it: managed save, snapshot metadata, NVRAM."""
    try:
        handle.undefineFlags(_flags(*UNDEFINE_FLAGS))
    except libvirt.libvirtError as err:
        if err.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        handle.undefine()


# ---- addresses ------------------------------------------------------------------------------------
def interface_addresses(handle) -> dict:
    """mac -> addresses, from the DHCP leases, else from the guest agent."""
    found = {}
    for source in ('VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE', 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT'):
        try:
            answer = handle.interfaceAddresses(getattr(libvirt, source), 0)
        except libvirt.libvirtError:
            continue  # no agent, or no lease support: try the next source
        for _name, details in (answer or {}).items():
            mac = (details.get('hwaddr') or '').lower()
            addresses = [entry['addr'] for entry in details.get('addrs') or [] if entry.get('addr')]
            if mac and addresses and mac != '00:00:00:00:00:00':
                found.setdefault(mac, [])
                found[mac].extend(a for a in addresses if a not in found[mac] and not a.startswith('127.'))
        if found:
            break
    return found


def wait_for_addresses(conn, handle, timeout: int) -> list:
    """Wait until the guest has an address on one of its interfaces; return its interfaces."""
    deadline = time.monotonic() + timeout
    while True:
        interfaces = domain_interfaces(_xml.parse_xml(handle.XMLDesc(0), 'libvirt domain XML'),
                                       interface_addresses(handle))
        if any(interface['addresses'] for interface in interfaces):
            return interfaces
        if time.monotonic() >= deadline:
            raise KvmError(f"domain '{handle.name()}' got no IP address within {timeout} s (checked the DHCP "
                           "leases and the guest agent); is its network serving DHCP, and does the guest ask?",
                           interfaces=interfaces)
        time.sleep(1)


def domain_interfaces(definition, addresses: dict | None = None) -> list:
    addresses = addresses or {}
    found = []
    for interface in definition.findall('devices/interface'):
        mac = interface.find('mac').get('address').lower() if interface.find('mac') is not None else None
        source = interface.find('source')
        target = interface.find('target')
        found.append({
            'type': interface.get('type'),
            'mac': mac,
            'network': source.get('network') if source is not None else None,
            'bridge': source.get('bridge') if source is not None else None,
            'device': target.get('dev') if target is not None else None,
            'model': interface.find('model').get('type') if interface.find('model') is not None else None,
            'addresses': addresses.get(mac, []),
        })
    return found


# ---- facts ------------------------------------------------------------------------------------------
def definition_facts(definition) -> dict:
    vcpu = definition.find('vcpu')
    memory = definition.findtext('currentMemory') or definition.findtext('memory')
    return {
        'virt_type': definition.get('type'),
        'vcpus': int(vcpu.get('current') or vcpu.text) if vcpu is not None else None,
        'max_vcpus': int(vcpu.text) if vcpu is not None else None,
        'memory': int(memory) * 1024 if memory else None,
        'max_memory': int(definition.findtext('memory')) * 1024 if definition.findtext('memory') else None,
        'disks': [{key: source[key] for key in ('device', 'path', 'pool', 'volume', 'target', 'bus', 'format')}
                  for source in disk_sources(definition)],
    }


def domain_info(conn, handle, details: bool = True) -> dict:
    """Everything kvm_domain (and kvm_domain_info for one domain) returns."""
    code, reason = handle.state()
    persistent = bool(handle.isPersistent())
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE if persistent else 0
    definition = mask_secrets(xml_desc(handle, flags, 'libvirt domain XML'))
    live = _xml.parse_xml(handle.XMLDesc(0), 'libvirt domain XML') if handle.isActive() else definition
    facts = {
        'name': handle.name(),
        'uuid': handle.UUIDString(),
        'state': power_state(code),
        'state_reason': state_reason(code, reason),
        'autostart': bool(handle.autostart()) if persistent else False,
        'persistent': persistent,
        **definition_facts(definition),
        'interfaces': domain_interfaces(live, interface_addresses(handle) if handle.isActive() else {}),
        'has_managed_save': bool(handle.hasManagedSaveImage(0)) if persistent else False,
        'snapshot_count': snapshot_count(handle),
        'xml': _xml.to_text(definition),
    }
    return facts


def snapshot_count(handle) -> int:
    try:
        return handle.snapshotNum(0)
    except libvirt.libvirtError:
        return 0


def list_domains(conn, name: str | None = None, details: bool | None = None) -> list:
    """kvm_domain_info. Every domain with a constant number of libvirt calls (bulk stats and
    flag-filtered listings); ``details`` (default: only for a single named domain) adds what
    needs one definition read per domain: interfaces with addresses, disk buses, snapshot count, xml."""
    if name is not None:
        try:
            handles = [conn.lookupByName(name)]
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            return []
        details = True if details is None else details
    else:
        handles = conn.listAllDomains(0)
        details = False if details is None else details
    if details:
        found = []
        for handle in handles:
            try:
                found.append(domain_info(conn, handle))
            except libvirt.libvirtError as err:
                if err.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise  # else it was removed while we read
        return sorted(found, key=lambda domain: domain['name'])
    return bulk_summary(conn, handles)


def bulk_summary(conn, handles: list) -> list:
    """The summary of many domains from libvirt's bulk calls: no call per domain."""
    stats_flags = _flags('VIR_DOMAIN_STATS_STATE', 'VIR_DOMAIN_STATS_VCPU', 'VIR_DOMAIN_STATS_BALLOON',
                         'VIR_DOMAIN_STATS_BLOCK')
    try:
        stats = {dom.UUIDString(): values for dom, values in conn.domainListGetStats(handles, stats_flags, 0)} \
            if handles else {}
    except libvirt.libvirtError as err:
        if err.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            raise
        stats = {}
    listed = {}
    for flag in ('AUTOSTART', 'PERSISTENT', 'MANAGEDSAVE', 'HAS_SNAPSHOT'):
        value = getattr(libvirt, f'VIR_CONNECT_LIST_DOMAINS_{flag}', None)
        try:
            listed[flag] = {dom.UUIDString() for dom in conn.listAllDomains(value)} if value else set()
        except libvirt.libvirtError:
            listed[flag] = set()
    summary = []
    for handle in handles:
        uuid = handle.UUIDString()
        values = stats.get(uuid, {})
        code = values.get('state.state', 0)
        summary.append({
            'name': handle.name(),
            'uuid': uuid,
            'state': power_state(code),
            'state_reason': state_reason(code, values.get('state.reason', 0)),
            'autostart': uuid in listed['AUTOSTART'],
            'persistent': uuid in listed['PERSISTENT'],
            'vcpus': values.get('vcpu.current'),
            'max_vcpus': values.get('vcpu.maximum'),
            'memory': values['balloon.current'] * 1024 if 'balloon.current' in values else None,
            'max_memory': values['balloon.maximum'] * 1024 if 'balloon.maximum' in values else None,
            'disks': [
                {'target': values.get(f'block.{index}.name'), 'path': values.get(f'block.{index}.path'),
                 'capacity': values.get(f'block.{index}.capacity')}
                for index in range(values.get('block.count', 0))
            ],
            'has_managed_save': uuid in listed['MANAGEDSAVE'],
            'has_snapshots': uuid in listed['HAS_SNAPSHOT'],
        })
    return sorted(summary, key=lambda domain: domain['name'])
