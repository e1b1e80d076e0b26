# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage pool facts for kvm_pool, kvm_pool_info and kvm_volume: one pool, or every pool in bulk."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    each_read,
    libvirt,
    read_all,
    xml_desc,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._volume_facts import volume_info

POOL_STATES = {
    0: 'inactive',  # VIR_STORAGE_POOL_INACTIVE
    1: 'building',
    2: 'active',
    3: 'degraded',
    4: 'inaccessible',
}


def inactive_xml(handle, active: bool, live: ET.Element) -> ET.Element:
    """The persistent definition (the live one is it while the pool is stopped)."""
    return xml_desc(handle, libvirt.VIR_STORAGE_XML_INACTIVE, 'libvirt pool XML') if active else live


def definition_facts(definition) -> dict:
    """The facts that follow from a pool definition alone."""
    return {'type': definition.get('type'), 'target': definition.findtext('target/path')}


def pool_info(handle, volume_details: bool = False) -> dict:
    """Everything kvm_pool and kvm_pool_info return about one pool; ``volumes`` lists the
    volume names, or with ``volume_details`` each volume's facts (sizes, format, backing store)."""
    state, capacity, allocation, available = handle.info()
    active = bool(handle.isActive())
    live = _xml.parse_xml(handle.XMLDesc(0), 'libvirt pool XML')
    definition = inactive_xml(handle, active, live)
    if not active:
        volumes = None
    elif volume_details:
        listed = sorted(handle.listAllVolumes(0), key=lambda volume: volume.name())
        read = each_read(listed, lambda volume: volume_info(volume, handle.name()), libvirt.VIR_ERR_NO_STORAGE_VOL)
        volumes = [info for _volume, info in read]
    else:
        volumes = sorted(handle.listVolumes())
    return {
        'name': handle.name(),
        'uuid': handle.UUIDString(),
        **definition_facts(definition),
        'state': 'active' if active else 'inactive',
        'status': POOL_STATES.get(state, str(state)),
        'active': active,
        'autostart': bool(handle.autostart()),
        'persistent': bool(handle.isPersistent()),
        'capacity': capacity if active else None,
        'allocation': allocation if active else None,
        'available': available if active else None,
        'volume_count': len(volumes) if volumes is not None else None,
        'volumes': volumes,
        'xml': _xml.to_text(definition),
    }


def list_pools(conn, name: str | None = None, volume_details: bool = False) -> list:
    """kvm_pool_info: one pool (none when missing) or every pool, read with one bulk call."""
    return read_all(conn.storagePoolLookupByName, lambda: conn.listAllStoragePools(0), name,
                    lambda handle: pool_info(handle, volume_details), libvirt.VIR_ERR_NO_STORAGE_POOL)
