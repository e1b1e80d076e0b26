# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain facts for kvm_domain, kvm_domain_info and the inventory plugin: power states,
definitions, interfaces with their addresses, and a bulk summary of many domains."""

from __future__ import annotations

import copy
import ipaddress
import re

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_metadata import metadata_facts
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    flags,
    is_error,
    libvirt,
    xml_desc,
)

GUEST_AGENT = 'org.qemu.guest_agent.0'  # the virtio channel of the QEMU guest agent
# virDomainState -> the names kvm_domain and kvm_domain_info report
POWER_STATES = {0: 'shutoff', 1: 'running', 2: 'running', 3: 'paused', 4: 'running', 5: 'shutoff',
                6: 'crashed', 7: 'pmsuspended'}
SHUTOFF_REASONS = {0: 'unknown', 1: 'shutdown', 2: 'destroyed', 3: 'crashed', 4: 'migrated', 5: 'saved',
                   6: 'failed', 7: 'from-snapshot', 8: 'daemon'}
RUNNING_REASONS = {0: 'unknown', 1: 'booted', 2: 'migrated', 3: 'restored', 4: 'from-snapshot', 5: 'unpaused',
                   6: 'migration-canceled', 7: 'save-canceled', 8: 'wakeup', 9: 'crashed', 10: 'post-copy'}
PAUSED_REASONS = {0: 'unknown', 1: 'user', 2: 'migration', 3: 'save', 4: 'dump', 5: 'ioerror', 6: 'watchdog',
                  7: 'from-snapshot', 8: 'shutting-down', 9: 'snapshot', 10: 'api-error', 11: 'starting-up'}


def resolve_machine(wanted: str, current_type) -> str:
    """``q35`` or ``pc`` as libvirt expanded it (``pc-q35-7.2``), so an alias is not drift."""
    have = current_type.get('machine') if current_type is not None else None
    if have and (have == wanted or re.fullmatch(rf'pc-{"q35" if wanted == "q35" else "i440fx"}-[\d.]+', have)
                 and wanted in ('q35', 'pc')):
        return have
    return wanted


def power_state(code: int) -> str:
    return POWER_STATES.get(code, 'unknown')


def state_reason(code: int, reason: int) -> str:
    table = {5: SHUTOFF_REASONS, 1: RUNNING_REASONS, 3: PAUSED_REASONS}.get(code, {})
    return table.get(reason, str(reason))


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


# ---- addresses ------------------------------------------------------------------------------------


ADDRESS_SOURCES = {'lease': 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE',
                   'agent': 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT',
                   'arp': 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP'}


def agent_connected(definition) -> bool:
    """True when a running guest's definition has a guest agent channel not known to be
    disconnected (libvirt marks its target ``state='connected'`` while the agent answers)."""
    for channel in definition.findall('devices/channel'):
        target = channel.find('target')
        if target is not None and target.get('name') == GUEST_AGENT:
            return target.get('state') != 'disconnected'
    return False


def source_addresses(handle, source: str, definition=None) -> dict:
    """mac -> addresses from one of libvirt's sources (``lease``, ``agent``, ``arp``); {} when it
    cannot answer. With the running ``definition``, the agent is asked only while its channel is
    connected: otherwise libvirt would wait for its agent timeout."""
    if source == 'agent' and definition is not None and not agent_connected(definition):
        return {}
    try:
        answer = handle.interfaceAddresses(getattr(libvirt, ADDRESS_SOURCES[source]), 0) or {}
    except libvirt.libvirtError:
        return {}  # no agent, no lease support, no ARP entry
    found = {}
    for details in answer.values():
        mac = (details.get('hwaddr') or '').lower()
        if not mac or mac == '00:00:00:00:00:00':
            continue  # the guest's loopback
        known = found.setdefault(mac, [])
        known.extend(entry['addr'] for entry in details.get('addrs') or []
                     if usable_address(entry.get('addr')) and entry['addr'] not in known)
    # IPv4 first: the address a login most likely uses
    return {mac: sorted(addresses, key=lambda address: ':' in address) for mac, addresses in found.items() if addresses}


def usable_address(text) -> bool:
    """An address another host could reach the guest on: not loopback, link-local or unspecified
    (the guest agent reports those too)."""
    try:
        address = ipaddress.ip_address(str(text).split('%', 1)[0])
    except ValueError:
        return False
    return not (address.is_loopback or address.is_link_local or address.is_unspecified)


def interface_addresses(handle, definition=None, sources=('lease', 'agent')) -> dict:
    """mac -> addresses, from the first of ``sources`` that knows any."""
    for source in sources:
        found = source_addresses(handle, source, definition)
        if found:
            return found
    return {}


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
        **metadata_facts(definition),
    }


def domain_info(conn, handle, snapshots: bool = False) -> dict:
    """Everything kvm_domain (and kvm_domain_info for one domain) returns; with ``snapshots``, the
    guest's snapshots too (kvm_domain_info's details)."""
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
        'interfaces': domain_interfaces(live, interface_addresses(handle, live) if handle.isActive() else {}),
        'has_managed_save': bool(handle.hasManagedSaveImage(0)) if persistent else False,
        'snapshot_count': snapshot_count(handle),
        'xml': _xml.to_text(definition),
    }
    if snapshots:
        from ansible_collections.hypervisor.kvm.plugins.module_utils._snapshot_facts import (  # pylint: disable=import-outside-toplevel
            snapshot_facts,  # kvm_domain_info's details only
        )
        facts['snapshots'] = snapshot_facts(handle) if facts['snapshot_count'] else []
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
            if not is_error(err, libvirt.VIR_ERR_NO_DOMAIN):
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
                found.append(domain_info(conn, handle, snapshots=True))
            except libvirt.libvirtError as err:
                if not is_error(err, libvirt.VIR_ERR_NO_DOMAIN):
                    raise  # else it was removed while we read
        return sorted(found, key=lambda domain: domain['name'])
    return bulk_summary(conn, handles)


def bulk_summary(conn, handles: list) -> list:
    """The summary of many domains from libvirt's bulk calls: no call per domain."""
    stats_flags = flags('VIR_DOMAIN_STATS_STATE', 'VIR_DOMAIN_STATS_VCPU', 'VIR_DOMAIN_STATS_BALLOON',
                        'VIR_DOMAIN_STATS_BLOCK')
    try:
        stats = {dom.UUIDString(): values for dom, values in conn.domainListGetStats(handles, stats_flags, 0)} \
            if handles else {}
    except libvirt.libvirtError as err:
        if not is_error(err, libvirt.VIR_ERR_NO_SUPPORT):
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
