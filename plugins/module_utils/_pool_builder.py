# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_pool's options -> ``<pool>`` (docs/architecture.md, "Speed": a run given ``xml`` never
compiles this file). Each function takes the :class:`_pool.StoragePool` it builds for as
``pool``."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._files import permissions_element, sanitise_path
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import is_remote_uri

# What each structured type needs in ``source`` (libvirt refuses to define or start without it).
REQUIRED_SOURCE = {
    'fs': ('device',),
    'netfs': ('host', 'dir'),
    'disk': ('device',),
    'iscsi': ('host', 'device'),
}


def build(pool, before) -> ET.Element:
    """The ``<pool>`` the options describe; ``before`` (an Observed) is the pool as it is."""
    params = pool.params
    pool_type = params.get('type')
    if pool_type is None:
        pool_type = before.xml.get('type') if before.exists else 'dir'
    desired = ET.Element('pool', {'type': pool_type})
    _xml.sub_element(desired, 'name', pool.name)
    add_source(pool, desired, pool_type, params.get('source') or {}, before)
    target = params.get('target') or {}
    if target.get('path') is None and not before.exists and pool_type in ('dir', 'fs', 'netfs'):
        raise KvmError(f"target.path is required to create a {pool_type} storage pool ('{pool.name}')")
    if any(target.get(key) is not None for key in ('path', 'owner', 'group', 'mode')):
        target_el = _xml.sub_element(desired, 'target')
        if target.get('path') is not None:
            if not target['path'].startswith('/'):
                raise KvmError(f"target.path: {target['path']!r} is not an absolute path")
            _xml.sub_element(target_el, 'path', sanitise_path(target['path']))
        permissions_element(target_el, target, 'target', remote=is_remote_uri(pool.conn.getURI()))
    return desired


def add_source(pool, element: ET.Element, pool_type: str, source: dict, before) -> None:
    """``<source>`` from the ``source`` option, with what the pool type needs."""
    given = {key for key, value in source.items() if value not in (None, [])}
    if not before.exists:
        missing = [key for key in REQUIRED_SOURCE.get(pool_type, ()) if key not in given]
        if missing:
            raise KvmError(
                f"a {pool_type} storage pool needs source.{' and source.'.join(missing)} "
                f"('{pool.name}')")
    if pool_type == 'dir' and given:
        raise KvmError(f"source: a dir storage pool has no source, got {', '.join(sorted(given))}")
    if not given:
        return
    src = _xml.sub_element(element, 'source')
    if source.get('host'):
        _xml.sub_element(src, 'host', name=source['host'], port=source.get('port'))
    for device in source.get('device') or ():
        _xml.sub_element(src, 'device', path=device)
    if source.get('dir'):
        _xml.sub_element(src, 'dir', path=source['dir'])
    if source.get('name'):
        _xml.sub_element(src, 'name', source['name'])
    if source.get('format'):
        _xml.sub_element(src, 'format', type=source['format'])
    if source.get('initiator'):
        _xml.sub_element(_xml.sub_element(src, 'initiator'), 'iqn', name=source['initiator'])
