# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_domain's shared folders, devices and tuning as XML: ``filesystems`` (virtiofs),
``watchdog``, ``video``, ``hostdevs``, ``memory_backing``, ``numa`` and ``cputune``; the paths
each owns once given, and their checks. No libvirt here: the builder passes what it knows of the
host (the libvirt version, whether the URI is local)."""

from __future__ import annotations

import os
import re

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._addresses import pci_address
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import bytes_to_kib, parse_size

# libvirt 11.0.0 passes a virtiofs share's <readonly/> to virtiofsd; earlier releases refuse it
VIRTIOFS_READONLY_SINCE = 11000000
USB_ID = re.compile(r'^(?:0x)?([0-9a-fA-F]{1,4})$')
MAX_CPUS = 16384  # libvirt's CPU bitmaps (VIR_DOMAIN_CPUMASK_LEN)
CPUSET = re.compile(r'^\^?\d+(-\d+)?(,\^?\d+(-\d+)?)*$')


def filesystem_key(element) -> str:
    """Shared folders pair by their mount tag."""
    target = element.find('target')
    return target.get('dir') if target is not None else ''


def hostdev_key(element) -> str:
    """Host devices pair by what they are (a PCI address, a USB vendor and product)."""
    return _xml.to_text(element.find('source'), pretty=False) if element.find('source') is not None else ''


def vcpupin_key(element) -> str:
    return element.get('vcpu') or ''


def owned_paths(params: dict) -> dict:
    """The paths the options own when given (an empty list or dict removes what they own; a
    watchdog, video or memory backing given is the only one)."""
    owned = {}
    if params.get('filesystems') is not None:
        owned['devices/filesystem'] = filesystem_key
    if params.get('watchdog') is not None:
        owned['devices/watchdog'] = None
    if params.get('video') is not None:
        owned['devices/video'] = None
    if params.get('hostdevs') is not None:
        owned['devices/hostdev'] = hostdev_key
    if params.get('memory_backing') is not None:
        owned.update(dict.fromkeys(('memoryBacking', 'memoryBacking/hugepages', 'memoryBacking/source',
                                    'memoryBacking/access', 'memoryBacking/locked')))
    if params.get('numa') is not None:
        owned['cpu/numa'] = None
        owned['cpu/numa/cell'] = None
    if params.get('cputune') is not None:
        owned['cputune'] = None
        owned['cputune/vcpupin'] = vcpupin_key
        owned['cputune/emulatorpin'] = None
    return owned


def add_tuning(domain, params: dict, current, lib_version: int, local: bool) -> None:
    """``memoryBacking``, ``cpu/numa`` and ``cputune`` under ``domain``, and the devices under its
    ``devices`` (``current`` is the definition today, None for a new domain)."""
    shares = params.get('filesystems') or []
    add_memory_backing(domain, params.get('memory_backing'), bool(shares), current)
    count = params.get('max_vcpus') or params.get('vcpus')
    if not count and current is not None and (current.findtext('vcpu') or '').strip().isdigit():
        count = int(current.findtext('vcpu').strip())  # the guest's vCPUs as defined today
    add_numa(domain, params.get('numa'), count)
    add_cputune(domain, params.get('cputune'))
    devices = domain.find('devices')
    if devices is None:
        devices = _xml.sub_element(domain, 'devices')
    add_filesystems(devices, params.get('filesystems'), lib_version, local)
    watchdog = params.get('watchdog')
    if watchdog and any(value is not None for value in watchdog.values()):  # {}: no watchdog
        _xml.sub_element(devices, 'watchdog', model=watchdog.get('model') or 'i6300esb',
                         action=watchdog.get('action') or 'reset')
    add_video(devices, params.get('video'))
    add_hostdevs(devices, params.get('hostdevs'))


def add_memory_backing(domain, backing, shares: bool, current) -> None:
    if backing is None:
        if shares and not shared_already(current):
            # virtiofs needs the guest's memory shared with virtiofsd
            element = _xml.sub_element(domain, 'memoryBacking')
            _xml.sub_element(element, 'source', type='memfd')
            _xml.sub_element(element, 'access', mode='shared')
        return
    if shares and backing.get('shared') is False:
        raise KvmError('memory_backing.shared: filesystems (virtiofs) need the memory shared; '
                       'leave shared out or set it true')
    element = _xml.sub_element(domain, 'memoryBacking')
    if backing.get('hugepages') or backing.get('hugepage_size'):
        pages = _xml.sub_element(element, 'hugepages')
        if backing.get('hugepage_size'):
            size = bytes_to_kib(parse_size(backing['hugepage_size'], 'memory_backing.hugepage_size', 'KiB'))
            if size <= 0:
                raise KvmError('memory_backing.hugepage_size: a page size must be above 0')
            _xml.sub_element(pages, 'page', size=size, unit='KiB')
    source = backing.get('source') or ('memfd' if shares else None)
    if source:
        _xml.sub_element(element, 'source', type=source)
    if backing.get('shared') or shares:
        _xml.sub_element(element, 'access', mode='shared')
    if backing.get('locked'):
        _xml.sub_element(element, 'locked')
    if not len(element):
        domain.remove(element)  # memory_backing: {} removes what there was


def shared_already(current) -> bool:
    access = current.find('memoryBacking/access') if current is not None else None
    return access is not None and access.get('mode') == 'shared'


def add_numa(domain, cells, count) -> None:
    if cells is None:
        return
    cpu = domain.find('cpu')
    if cpu is None:
        cpu = _xml.sub_element(domain, 'cpu')
    numa = _xml.sub_element(cpu, 'numa')
    seen = set()
    for index, cell in enumerate(cells):
        where = f'numa[{index}]'
        cpus = check_cpuset(cell['cpus'], f'{where}.cpus')
        for number in cpuset_numbers(cpus):
            if number in seen:
                raise KvmError(f'{where}.cpus: vCPU {number} is in another cell too')
            if count and number >= count:
                raise KvmError(f'{where}.cpus: vCPU {number} does not exist (the guest has {count})')
            seen.add(number)
        memory = bytes_to_kib(parse_size(cell['memory'], f'{where}.memory', 'MiB'))
        if memory <= 0:
            raise KvmError(f'{where}.memory: a cell needs memory')
        _xml.sub_element(numa, 'cell', id=index, cpus=cpus, memory=memory, unit='KiB')
    if not cells:
        cpu.remove(numa)  # numa: [] removes the cells (under the <cpu> it leaves)


def add_cputune(domain, cputune) -> None:
    if cputune is None:
        return
    element = _xml.sub_element(domain, 'cputune')
    pinned = set()
    for index, pin in enumerate(cputune.get('vcpupin') or []):
        where = f'cputune.vcpupin[{index}]'
        if pin['vcpu'] < 0 or pin['vcpu'] in pinned:
            raise KvmError(f"{where}.vcpu: {pin['vcpu']} is negative or pinned twice")
        pinned.add(pin['vcpu'])
        _xml.sub_element(element, 'vcpupin', vcpu=pin['vcpu'], cpuset=check_cpuset(pin['cpuset'], f'{where}.cpuset'))
    if cputune.get('emulatorpin'):
        _xml.sub_element(element, 'emulatorpin', cpuset=check_cpuset(cputune['emulatorpin'], 'cputune.emulatorpin'))
    if not len(element):
        domain.remove(element)  # cputune: {} removes the pinning


def check_cpuset(value, option: str) -> str:
    """A CPU list as libvirt writes it (``0-3,^2,6``)."""
    text = str(value).replace(' ', '')
    if not CPUSET.match(text) or any(int(a) > int(b) for a, b in re.findall(r'(\d+)-(\d+)', text)):
        raise KvmError(f"{option}: {value!r} is not a CPU list (such as '0-3' or '0,2,4-5')")
    if max(int(number) for number in re.findall(r'\d+', text)) >= MAX_CPUS:
        raise KvmError(f'{option}: {value!r} names a CPU beyond libvirt\'s limit ({MAX_CPUS - 1})')
    return text


def cpuset_numbers(text: str) -> set:
    numbers, excluded = set(), set()
    for part in text.split(','):
        target = excluded if part.startswith('^') else numbers
        low, _dash, high = part.lstrip('^').partition('-')
        target.update(range(int(low), int(high or low) + 1))
    return numbers - excluded


def add_filesystems(devices, shares, lib_version: int, local: bool) -> None:
    tags = set()
    for index, share in enumerate(shares or []):
        where = f'filesystems[{index}]'
        source, target = share['source'], share['target']
        if not source.startswith('/'):
            raise KvmError(f'{where}.source: {source!r} is not an absolute path on the libvirt host')
        if local and not os.path.isdir(source):
            raise KvmError(f'{where}.source: {source} is not a directory on the libvirt host')
        if not target or not target.strip() or any(char.isspace() for char in target) or len(target) > 36:
            raise KvmError(f'{where}.target: {target!r} is not a mount tag (no blanks, at most 36 characters: '
                           'the guest mounts it with mount -t virtiofs TAG DIR)')
        if target in tags:
            raise KvmError(f'{where}.target: {target!r} is the tag of another share too')
        tags.add(target)
        if share.get('readonly') and lib_version < VIRTIOFS_READONLY_SINCE:
            major, minor = lib_version // 1000000, lib_version // 1000 % 1000
            raise KvmError(f'{where}.readonly: libvirt {major}.{minor} cannot make a virtiofs share read-only '
                           '(libvirt 11.0 and later can); leave readonly out, or make the files read-only on the host')
        element = _xml.sub_element(devices, 'filesystem', type='mount', accessmode='passthrough')
        _xml.sub_element(element, 'driver', type='virtiofs')
        _xml.sub_element(element, 'source', dir=source)
        _xml.sub_element(element, 'target', dir=target)
        if share.get('readonly'):
            _xml.sub_element(element, 'readonly')


def add_video(devices, video) -> None:
    if not video:
        return
    element = _xml.sub_element(devices, 'video')
    attributes = {'type': video['model']}
    if video.get('heads') is not None:
        if video['heads'] < 1 or video['heads'] > 16:
            raise KvmError(f"video.heads: {video['heads']} is not between 1 and 16")
        attributes['heads'] = video['heads']
    if video.get('vram'):
        attributes['vram'] = bytes_to_kib(parse_size(video['vram'], 'video.vram', 'KiB'))
    if video['model'] == 'none' and len(attributes) > 1:
        raise KvmError('video: model none takes no heads or vram')
    _xml.sub_element(element, 'model', **attributes)


def add_hostdevs(devices, hostdevs) -> None:
    for index, hostdev in enumerate(hostdevs or []):
        where = f'hostdevs[{index}]'
        if bool(hostdev.get('pci')) == bool(hostdev.get('usb')):
            raise KvmError(f'{where}: give one of pci (an address such as 0000:03:00.0) or usb ({{vendor, product}})')
        managed = 'yes' if hostdev.get('managed', True) else 'no'
        if hostdev.get('pci'):
            address = pci_address(hostdev['pci'], f'{where}.pci')
            del address['type']  # a hostdev's source address has none
            element = _xml.sub_element(devices, 'hostdev', mode='subsystem', type='pci', managed=managed)
            _xml.sub_element(_xml.sub_element(element, 'source'), 'address', **address)
            continue
        ids = {}
        for key in ('vendor', 'product'):
            match = USB_ID.match(str(hostdev['usb'][key]).strip())
            if not match:
                raise KvmError(f"{where}.usb.{key}: {hostdev['usb'][key]!r} is not a USB id "
                               '(4 hex digits, as lsusb shows)')
            ids[key] = f'0x{int(match.group(1), 16):04x}'
        element = _xml.sub_element(devices, 'hostdev', mode='subsystem', type='usb', managed=managed)
        source = _xml.sub_element(element, 'source')
        _xml.sub_element(source, 'vendor', id=ids['vendor'])
        _xml.sub_element(source, 'product', id=ids['product'])
