# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection needs to know about a guest's snapshots, read-only (kvm_snapshot,
kvm_domain, kvm_domain_info and the inventory plugin):

* :func:`snapshot_facts` - a guest's snapshots with the keys of kvm_snapshot's ``snapshot``
  return;
* :func:`overlay_bases`, :func:`follow_overlays` and :func:`rebase_disks` - an external
  snapshot points a disk's source at a new overlay file: these map it back to the disk the
  guest was defined with, so kvm_domain does not see the overlay as drift;
* :func:`external_overlay_paths` - the overlay files of a guest's external snapshots (storage
  that kvm_domain's ``remove_storage`` deletes with the guest).
"""

from __future__ import annotations

import copy

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    flags as libvirt_flags,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    is_error,
    libvirt,
)

SOURCE_KEYS = ('file', 'dev', 'pool', 'volume', 'protocol', 'name', 'dir')


# ---- reading ---------------------------------------------------------------------------------
def disk_path(disk) -> str | None:
    source = disk.find('source') if disk is not None else None
    if source is None:
        return None
    return source.get('file') or source.get('dev')


def disk_target(disk) -> str | None:
    target = disk.find('target')
    return target.get('dev') if target is not None else None


def describe_snapshot(definition, current: bool) -> dict:
    """The facts of one snapshot from its XML (``<domainsnapshot>``), as kvm_snapshot returns them."""
    memory = definition.find('memory')
    memory_mode = memory.get('snapshot') if memory is not None else None
    state = (definition.findtext('state') or '').strip() or None
    disks = []
    for disk in definition.findall('disks/disk'):
        disks.append({'target': disk.get('name'), 'snapshot': disk.get('snapshot'), 'path': disk_path(disk)})
    external = memory_mode == 'external' or any(disk['snapshot'] == 'external' for disk in disks)
    created = (definition.findtext('creationTime') or '').strip()
    description = definition.findtext('description')
    return {
        'name': (definition.findtext('name') or '').strip(),
        'parent': (definition.findtext('parent/name') or '').strip() or None,
        'created': int(created) if created.isdigit() else None,
        'state': state,
        'current': current,
        'kind': 'external' if external else 'internal',
        'description': description.strip() or None if description else None,
        'memory': memory_mode in ('internal', 'external') if memory_mode else state in ('running', 'paused'),
        'disks': disks,
    }


def current_snapshot_name(handle) -> str | None:
    try:
        return handle.snapshotCurrent(0).getName()
    except libvirt.libvirtError as err:
        if is_error(err, libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT, libvirt.VIR_ERR_NO_SUPPORT):
            return None
        raise


def read_snapshots(handle, flags: int = 0) -> list:
    """[(snapshot handle, its XML element)] of a guest; snapshots deleted meanwhile are left out."""
    found = []
    for snap in handle.listAllSnapshots(flags):
        try:
            text = snap.getXMLDesc(libvirt_flags('VIR_DOMAIN_SNAPSHOT_XML_SECURE'))
        except libvirt.libvirtError as err:
            if not is_error(err, libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT):
                raise
            continue
        found.append((snap, _xml.parse_xml(text, 'libvirt snapshot XML')))
    return found


def snapshot_facts(handle) -> list:
    """A guest's snapshots, oldest first, each with the keys of kvm_snapshot's ``snapshot``
    return: name, parent, created (epoch seconds), state, current, kind (internal/external),
    description, memory, disks (target, snapshot mode, overlay path).

    ``handle`` is a libvirt domain. One call per snapshot (its XML) plus two; a driver without
    snapshot support gives an empty list. For kvm_domain_info ``details`` and the inventory
    plugin's host variables."""
    try:
        current = current_snapshot_name(handle)
        snapshots = read_snapshots(handle)
    except libvirt.libvirtError as err:
        if is_error(err, libvirt.VIR_ERR_NO_SUPPORT):
            return []
        raise
    facts = [describe_snapshot(definition, snap.getName() == current) for snap, definition in snapshots]
    return sorted(facts, key=lambda fact: (fact['created'] or 0, fact['name']))


# ---- external snapshots and the guest's disks ---------------------------------------------------
def disk_by_target(definition, target: str):
    for disk in definition.findall('devices/disk'):
        if disk_target(disk) == target:
            return disk
    return None


def overlay_bases(handle) -> dict:
    """``{overlay path: <disk> element}`` for every overlay file of the guest's external
    snapshots: the disk as it was before the first external snapshot of its chain (its type,
    source and format as the guest was defined, a pool volume stays a pool volume).

    libvirt keeps the definition each snapshot was taken from; an overlay taken over an earlier
    overlay is followed down to the disk under the first one. Read-only: one listing of the
    external snapshots and one XML per snapshot (nothing at all for a guest without them)."""
    taken_over = {}
    try:
        snapshots = read_snapshots(handle, libvirt_flags('VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL'))
    except libvirt.libvirtError as err:
        if is_error(err, libvirt.VIR_ERR_NO_SUPPORT):
            return {}  # a driver without snapshots has no overlays
        raise
    for _snap, definition in snapshots:
        domain = definition.find('domain')
        if domain is None:
            continue
        for disk in definition.findall('disks/disk'):
            overlay = disk_path(disk)
            if disk.get('snapshot') != 'external' or not overlay:
                continue
            was = disk_by_target(domain, disk.get('name'))
            if was is not None:
                taken_over[overlay] = was
    bases = {}
    for overlay, disk in taken_over.items():
        seen = {overlay}
        while disk_path(disk) in taken_over and disk_path(disk) not in seen:
            seen.add(disk_path(disk))
            disk = taken_over[disk_path(disk)]
        base = copy.deepcopy(disk)
        for child in base.findall('backingStore'):
            base.remove(child)
        bases[overlay] = base
    return bases


def external_overlay_paths(handle) -> list:
    """The overlay files of the guest's external snapshots, sorted: storage the guest owns
    besides its disks' base files (kvm_domain ``remove_storage`` deletes them too)."""
    return sorted(overlay_bases(handle))


def _source_attributes(disk) -> dict:
    source = disk.find('source')
    if source is None:
        return {}
    return {key: value for key, value in source.attrib.items() if key in SOURCE_KEYS}


def disk_format(disk) -> str | None:
    driver = disk.find('driver')
    return driver.get('type') if driver is not None else None


def _names_base(disk, base) -> bool:
    """True when ``disk`` (desired) names the same storage as ``base`` (type, source, format)."""
    wanted = _source_attributes(disk)
    if not wanted or any(_source_attributes(base).get(key) != value for key, value in wanted.items()):
        return False
    if disk.get('type') and base.get('type') and disk.get('type') != base.get('type'):
        return False
    return not (disk_format(disk) and disk_format(base) and disk_format(disk) != disk_format(base))


def _point_at(disk, model) -> None:
    """Give ``disk`` the type, source and format of ``model`` (other elements stay)."""
    if model.get('type'):
        disk.set('type', model.get('type'))
    source, wanted = disk.find('source'), model.find('source')
    if source is not None and wanted is not None:
        source.attrib.clear()
        source.attrib.update({key: value for key, value in wanted.attrib.items() if key != 'index'})
    driver = disk.find('driver')
    if driver is not None and disk_format(model):
        driver.set('type', disk_format(model))


def follow_overlays(desired, actual, bases: dict) -> list:
    """In place: every disk of the ``desired`` domain definition that names the base of an
    external snapshot's overlay which the ``actual`` definition's disk of the same target uses
    now is pointed at that overlay (its type, source and format). An external snapshot is then
    not drift of the disk's source, and a redefinition keeps the guest on its overlay (its
    current data). A disk naming other storage is left alone: that is a real change.

    ``bases`` comes from :func:`overlay_bases`. Returns the targets that were followed."""
    followed = []
    if not bases or desired is None or actual is None:
        return followed
    for disk in desired.findall('devices/disk'):
        target = disk_target(disk)
        have = disk_by_target(actual, target) if target else None
        base = bases.get(disk_path(have)) if have is not None else None
        if base is not None and _names_base(disk, base):
            _point_at(disk, have)
            followed.append(target)
    return followed


def rebase_disks(definition, bases: dict):
    """A copy of a domain definition whose overlay disks name their base storage again, without
    the backing chain: the disks as the guest was defined (for a list of its own storage)."""
    result = copy.deepcopy(definition)
    for disk in result.findall('devices/disk'):
        base = bases.get(disk_path(disk))
        if base is None:
            continue
        _point_at(disk, base)
        for child in disk.findall('backingStore'):
            disk.remove(child)
    return result
