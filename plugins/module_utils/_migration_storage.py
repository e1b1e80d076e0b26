# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_migration's disks: each one checked against the destination, and for a storage copy the
volumes it writes into, created before the migration in the destination's pool that holds the same
directory (or the pool of the same name) and removed again when it fails. They are named in the
running source guest's metadata meanwhile (:func:`record_copies`), so that a later run removes what
a killed one left. After a copy, ``remove_source_storage`` deletes the source's volumes.
"""

from __future__ import annotations

import os

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import disk_sources
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    each_read,
    guard,
    is_error,
    is_local_uri,
    libvirt,
    xml_desc,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._migration_checks import Presence, host_uuid
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Plan
from ansible_collections.hypervisor.kvm.plugins.module_utils._volume_facts import (
    find_volume,
    find_volume_by_path,
    volume_definition,
    volume_info,
)

# The volumes a storage copy creates on the destination are named in the running source guest's
# metadata before they are made (live only: nothing is written to its definition). A run killed
# during the copy leaves them; the next run of the same migration finds them by that record, and
# deletes what no guest on the destination uses before it copies again.
COPIES_NS = 'https://hypervisor.kvm/migration/copies'


def recorded_copies(handle, dest_uuid: str | None) -> list:
    """The destination paths an interrupted storage copy to the host ``dest_uuid`` created."""
    try:
        text = handle.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, COPIES_NS, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as err:
        if is_error(err, libvirt.VIR_ERR_NO_DOMAIN_METADATA, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED):
            return []
        raise
    record = _xml.parse_xml(text, 'the storage copy record')
    if dest_uuid is None or record.get('destination') != dest_uuid:
        return []
    return [volume.get('path') for volume in record.findall('volume') if volume.get('path')]


def record_copies(handle, dest_uuid: str | None, paths: list) -> None:
    """Name ``paths`` in the running guest's metadata (None: forget them). Best effort: a driver
    without metadata support only loses the clean-up after a kill."""
    if dest_uuid is None:
        return
    if paths:
        record = _xml.ET.Element('copies', destination=dest_uuid)
        for path in paths:
            _xml.ET.SubElement(record, 'volume', path=path)
        text, key = _xml.to_text(record, pretty=False), 'kvmcopies'
    else:
        text, key = None, None
    try:
        handle.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, key, COPIES_NS, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as err:
        if not is_error(err, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, libvirt.VIR_ERR_NO_SUPPORT,
                        libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_NO_DOMAIN):
            raise


def paths_in_use(conn) -> set:
    """Every disk source path of every guest on ``conn``."""
    used = set()
    listed = conn.listAllDomains(0)  # a guest undefined meanwhile is left out
    for _domain, definition in each_read(listed, lambda domain: xml_desc(domain, 0, 'libvirt domain XML'),
                                         libvirt.VIR_ERR_NO_DOMAIN):
        used.update(disk['path'] for disk in disk_sources(definition) if disk['path'])
    return used


def pool_paths(conn) -> list:
    """Every storage pool of a host: name, handle, active, target path (no trailing slash)."""
    found = []
    for pool in conn.listAllStoragePools(0):
        target = _xml.parse_xml(pool.XMLDesc(0), 'libvirt pool XML').findtext('target/path') or ''
        found.append({'name': pool.name(), 'handle': pool, 'active': bool(pool.isActive()),
                      'path': target.rstrip('/') or target})
    return found


def volume_xml(name: str, capacity: int, fmt: str | None, backing_path: str | None = None,
               backing_format: str | None = None) -> str:
    """The definition of an empty destination volume a storage copy writes into."""
    backing = {'path': backing_path, 'format': backing_format} if backing_path else None
    return _xml.to_text(volume_definition(name, capacity, fmt, backing, allocation=0), pretty=False)


def is_copied(disk: dict) -> bool:
    """Does libvirt copy this disk with copy_storage? Not read-only, shareable or CD-ROM disks."""
    return disk['device'] != 'cdrom' and not disk['readonly'] and not disk['shareable']


class StorageCopy:
    """The disks of one kvm_migration run, from the source connection ``conn`` to ``dest``."""

    def __init__(self, conn, dest, params: dict):
        self.conn = conn
        self.dest = dest
        self.params = params
        self.name = params['name']
        self.dest_uri = params['dest_uri']
        self.dest_uuid = None  # the destination's host UUID, read when a storage copy needs it

    # ---- planning -----------------------------------------------------------------------------
    def check_storage(self, source: Presence, definition, mode: str, problems: list, plan: Plan) -> list:
        """Check every disk against the destination; return the volumes to create there."""
        copying = mode == 'migrate' and self.params['copy_storage'] != 'none'
        dest_pools = pool_paths(self.dest)
        volumes = []
        leftovers = self.interrupted_copies(source) if copying else set()
        for disk in disk_sources(definition):
            if not disk['path'] and not disk['pool']:
                continue  # an empty CD-ROM, or network storage both hosts reach
            label = f"disk {disk['target']} ({disk['path'] or disk['pool'] + '/' + disk['volume']})"
            if disk['pool']:
                found = self.destination_volume_in_pool(disk, dest_pools, label, problems)
                if found is None:
                    continue
                pool, existing = found
            else:
                pool, existing = self.destination_volume_at(disk['path'], dest_pools)
            if copying and is_copied(disk):
                if existing is not None and existing.path() in leftovers:
                    self.plan_remove_partial_copy(existing, plan)
                    existing = None
                volumes.append(self.copy_target(source, disk, pool, existing, label, problems))
            elif existing is None:
                self.check_in_place(disk, pool, label, problems, plan)
        return [volume for volume in volumes if volume is not None]

    def copy_target(self, source: Presence, disk: dict, pool: dict | None, existing, label: str, problems: list):
        """The volume a copied disk is written into, or None: over an ``existing`` one (a problem
        unless replace_storage), or when no active pool on the destination can hold it (a problem)."""
        if existing is not None:
            if not self.params['replace_storage']:
                problems.append(f'{label}: a volume is already at {existing.path()} (a copy left by an earlier '
                                'migration?); the storage copy would overwrite it. Delete it, or set '
                                'replace_storage=true')
            return None
        if pool is None:
            problems.append(f'{label}: no storage pool holds {os.path.dirname(disk["path"])}, so the copy has '
                            'nowhere to go; define a pool with that target path there')
            return None
        if not pool['active']:
            problems.append(f"{label}: its pool '{pool['name']}' is not active")
            return None
        return self.volume_to_create(source, disk, pool, label, problems)

    def check_in_place(self, disk: dict, pool: dict | None, label: str, problems: list, plan: Plan) -> None:
        """A disk that is not copied and is no volume on the destination must be there all the same."""
        if pool is not None:
            problems.append(f"{label}: the storage path is missing (not in pool '{pool['name']}'); copy the "
                            'disk there first or set copy_storage=all')
        elif is_local_uri(self.dest_uri):
            if not os.path.exists(disk['path']):
                problems.append(f'{label}: the storage path is missing; copy the disk there first or set '
                                'copy_storage=all')
        else:
            plan.warnings.append(f"{label}: not in a storage pool on the destination, so its presence "
                                 'there could not be checked')

    def interrupted_copies(self, source: Presence) -> set:
        """Destination volumes an interrupted copy of this guest to this destination left, and no
        guest there uses."""
        if not source.active:
            return set()
        self.dest_uuid = host_uuid(self.dest)
        recorded = set(recorded_copies(source.handle, self.dest_uuid))
        return recorded - paths_in_use(self.dest) if recorded else set()

    def plan_remove_partial_copy(self, volume, plan: Plan) -> None:
        path = volume.path()
        plan.extra.setdefault('removed_partial_copies', []).append(path)
        plan.add('remove-partial-copy',
                 f'deleting {path} on the destination {self.dest_uri}, the partial storage copy an interrupted '
                 f"migration of guest '{self.name}' left", lambda: volume.delete(0))

    def destination_volume_in_pool(self, disk: dict, dest_pools: list, label: str, problems: list):
        """A ``<source pool= volume=>`` disk: the destination's pool of that name and the volume."""
        pool = next((pool for pool in dest_pools if pool['name'] == disk['pool']), None)
        if pool is None:
            problems.append(f"{label}: it lacks pool '{disk['pool']}'")
            return None
        if not pool['active']:
            problems.append(f"{label}: its pool '{disk['pool']}' is not active")
            return None
        return pool, find_volume(pool['handle'], disk['volume'])

    def destination_volume_at(self, path: str, dest_pools: list) -> tuple:
        """A disk given by path: the destination pool holding its directory, and its volume."""
        existing = find_volume_by_path(self.dest, path)
        directory = os.path.dirname(path).rstrip('/')
        pool = next((pool for pool in dest_pools if pool['path'] == directory), None)
        if existing is None and pool is not None and pool['active']:
            existing = find_volume(pool['handle'], os.path.basename(path))
        return pool, existing

    def volume_to_create(self, source: Presence, disk: dict, pool: dict, label: str, problems: list):
        """The destination volume a copied disk is written into: same name, size and format; with
        copy_storage=incremental, the same backing image (which must be on the destination)."""
        source_volume = self.source_volume(disk)
        facts = volume_info(source_volume, disk['pool']) if source_volume is not None else {
            'capacity': None, 'format': None, 'backing_store': None}
        capacity = facts['capacity']
        if capacity is None:
            capacity = source.handle.blockInfo(disk['target'])[0]
        stored = facts['backing_store'] or {}
        backing = None
        if self.params['copy_storage'] == 'incremental' and stored.get('path'):
            backing = stored['path']
            if find_volume_by_path(self.dest, backing) is None and not (
                    is_local_uri(self.dest_uri) and os.path.exists(backing)):
                problems.append(f'{label}: copy_storage=incremental copies only the top image, and its backing image '
                                f'{backing} is not on the destination (not in any storage pool there); copy it '
                                'first or set copy_storage=all')
                return None
        name = disk['volume'] or os.path.basename(disk['path'])
        return {
            'pool': pool['name'], 'handle': pool['handle'], 'name': name,
            'path': disk['path'] or f"{pool['path']}/{name}",
            'xml': volume_xml(name, capacity, disk['format'] or facts['format'], backing,
                              stored.get('format') if backing else None),
        }

    def source_volume(self, disk: dict):
        """The source's volume of a disk (by pool and name, or by path), or None."""
        if disk['pool']:
            return find_volume(self.conn.storagePoolLookupByName(disk['pool']), disk['volume'])
        return find_volume_by_path(self.conn, disk['path'])

    # ---- applying -----------------------------------------------------------------------------
    def create_volumes(self, volumes: list, plan: Plan) -> None:
        """Create the destination volumes; when one fails, those created before it go again. They
        are named in the source guest's metadata first (:func:`record_copies`)."""
        source = plan.context['source']
        if self.dest_uuid is None:
            self.dest_uuid = host_uuid(self.dest)
        record_copies(source.handle, self.dest_uuid, [volume['path'] for volume in volumes])
        for volume in volumes:
            try:
                with guard(f"creating volume {volume['path']} in pool '{volume['pool']}' on the destination"):
                    handle = volume['handle'].createXML(volume['xml'], 0)
            except KvmError as failure:
                leftover = self.remove_created_volumes(plan)
                if leftover:
                    failure.details['leftover_volumes'] = leftover
                raise
            plan.context['created'].append({'path': handle.path(), 'handle': handle})

    def remove_created_volumes(self, plan: Plan) -> list:
        """Undo create_volumes after a failed migration; return what could not be removed."""
        leftover = []
        for volume in plan.context['created']:
            try:
                # looked up again: a daemon restart during the migration made the old handle stale
                found = find_volume_by_path(self.dest, volume['path'])
                if found is not None:
                    found.delete(0)
            except libvirt.libvirtError:
                leftover.append(volume['path'])
        plan.context['created'] = []
        plan.context['leftover_volumes'] = leftover
        if leftover:  # what the migration step would undo is still there: it counts as done
            plan.context['not_reverted'] = True
        return leftover

    def forget_copies(self, handle) -> None:
        """Empty the record of the copies in ``handle``'s metadata (they are its disks now, or gone)."""
        record_copies(handle, self.dest_uuid, [])

    def remove_source_storage(self, disks: list, plan: Plan) -> None:
        for disk in disks:
            volume = self.source_volume(disk)
            if volume is None:
                plan.warnings.append(f"disk {disk['target']} ({disk['path']}) is not a storage pool volume on the "
                                     'source: left in place')
                continue
            path = volume.path()
            volume.delete(0)
            plan.context['removed'].append(path)
