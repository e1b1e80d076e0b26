# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume facts, for kvm_volume and kvm_pool_info's ``volumes``."""

from __future__ import annotations

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import each_read, libvirt
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
