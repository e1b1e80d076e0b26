# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volumes as several modules read and write them: their facts (kvm_volume, kvm_pool_info's
``volumes``, kvm_migration's storage copy), lookups by name and by path, and the ``<volume>``
definition kvm_volume and kvm_migration create."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    each_read,
    is_error,
    libvirt,
    lookup,
    refresh_pool,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import libvirt_size


def volume_info(handle, pool_name: str) -> dict:
    """Everything kvm_volume (and kvm_pool_info with volumes) returns about one volume."""
    definition = _xml.parse_xml(handle.XMLDesc(0), 'libvirt volume XML')
    backing = definition.find('backingStore')
    return {
        'name': handle.name(),
        'pool': pool_name,
        'path': handle.path(),
        'key': handle.key(),
        'type': definition.get('type'),
        'format': definition.find('target/format').get('type') if definition.find('target/format') is not None
        else None,
        'capacity': libvirt_size(definition.find('capacity')),
        'allocation': libvirt_size(definition.find('allocation')),
        'backing_store': None if backing is None or not backing.findtext('path') else {
            'path': backing.findtext('path'),
            'format': backing.find('format').get('type') if backing.find('format') is not None else None,
        },
        'xml': _xml.to_text(definition),
    }


def volumes_backed_by(conn, paths) -> dict:
    """``{path: ['pool/volume', ...]}``: for each of ``paths``, the volumes of the host's active
    pools whose backing file it is (a copy-on-write overlay breaks when its backing file goes).
    Paths no volume uses are left out. One bulk listing per pool."""
    wanted = {path for path in paths if path}
    found = {}
    if not wanted:
        return found
    # pools and volumes that another client removes or stops meanwhile are left out
    pools = each_read(conn.listAllStoragePools(0), lambda pool: pool.listAllVolumes(0) if pool.isActive() else [],
                      libvirt.VIR_ERR_NO_STORAGE_POOL, libvirt.VIR_ERR_OPERATION_INVALID)
    for pool, volumes in pools:
        for volume, text in each_read(volumes, lambda volume: volume.XMLDesc(0), libvirt.VIR_ERR_NO_STORAGE_VOL):
            backing = _xml.parse_xml(text, 'libvirt volume XML').findtext('backingStore/path')
            if backing in wanted:
                found.setdefault(backing, []).append(f'{pool.name()}/{volume.name()}')
    return {path: sorted(names) for path, names in found.items()}


def find_volume(pool, name: str):
    """A volume of an active pool by name (None when missing); a refresh picks up files made
    outside libvirt."""
    volume = lookup(pool.storageVolLookupByName, name, 'volume')
    if volume is None:
        refresh_pool(pool)
        volume = lookup(pool.storageVolLookupByName, name, 'volume')
    return volume


def find_volume_by_path(conn, path: str):
    """The volume at ``path`` in one of the host's pools, or None."""
    try:
        return conn.storageVolLookupByPath(path)
    except libvirt.libvirtError as err:
        if is_error(err, libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_STORAGE_POOL):
            return None
        raise


def volume_definition(name: str, capacity, fmt: str | None, backing: dict | None = None,
                      allocation=None, compat: str | None = None) -> ET.Element:
    """A ``<volume>`` to create: ``capacity`` and ``allocation`` (left out when None) in bytes,
    the format ``fmt`` and its ``compat`` level, and ``backing`` (``path``, ``format``)."""
    volume = ET.Element('volume')
    _xml.sub_element(volume, 'name', name)
    _xml.sub_element(volume, 'capacity', capacity, unit='bytes')
    if allocation is not None:
        _xml.sub_element(volume, 'allocation', allocation, unit='bytes')
    target = _xml.sub_element(volume, 'target')
    if fmt:
        _xml.sub_element(target, 'format', type=fmt)
    if compat:
        _xml.sub_element(target, 'compat', compat)
    if backing is not None:
        store = _xml.sub_element(volume, 'backingStore')
        _xml.sub_element(store, 'path', backing['path'])
        if backing.get('format'):
            _xml.sub_element(store, 'format', type=backing['format'])
    return volume
