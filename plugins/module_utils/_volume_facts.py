# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume facts, for kvm_volume and kvm_pool_info's ``volumes``."""

from __future__ import annotations

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
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
