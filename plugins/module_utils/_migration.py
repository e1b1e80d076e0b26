# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_migration: "guest X runs on destination D" (docs/several-hosts.md).

Where the guest is on both hosts decides what to do (:func:`decide`); what the destination
lacks (networks, bridges, pools, storage, memory) is found before anything changes, all
problems at once; the volumes a storage copy writes into are created first, in the pool that
holds the same directory on the destination, and removed again when the migration fails; the
migration runs in a thread so that ``timeout`` can abort it or pause the guest; the figures come
from libvirt's statistics of the completed job.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import disk_sources, power_state
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    Connection,
    connect,
    each_read,
    guard,
    is_local_uri,
    libvirt,
    libvirt_failure,
    resolve_uri,
    xml_desc,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import flags as libvirt_flags
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Plan, apply_plan, plan_result, read_back
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import format_size, libvirt_size, parse_size
from ansible_collections.hypervisor.kvm.plugins.module_utils._volume_facts import (
    find_volume,
    find_volume_by_path,
    volume_definition,
    volume_info,
)

COPY_STORAGE = ('none', 'all', 'incremental')
TIMEOUT_ACTIONS = ('abort', 'suspend')
POLL_SECONDS = 0.2  # how often a migration with a timeout is looked at


# ---- the guest on one host ---------------------------------------------------------------------
@dataclass
class Presence:
    """The guest on one host. ``state`` is ``absent`` or its power state (running, paused...)."""

    exists: bool = False
    handle: object = None
    state: str = 'absent'
    active: bool = False
    persistent: bool = False
    uuid: str | None = None

    def describe(self) -> str:
        """For the diff and the result: ``running (persistent)``, ``absent``..."""
        if not self.exists:
            return 'absent'
        return f"{self.state} ({'persistent' if self.persistent else 'transient'})"


def find_guest(conn, name: str, where: str, settle: float = 0) -> Presence:
    """The guest ``name`` on ``conn`` (``where`` names the host in errors). With ``settle``, an
    incoming migration's leftover (a transient guest paused for the migration, which libvirtd
    removes once it sees the source's connection gone, as after a killed run) is waited for up
    to that many seconds; a guest that vanishes while it is read is absent."""
    deadline = time.monotonic() + settle
    with guard(f"looking up guest '{name}' on {where}"):
        while True:
            try:
                handle = conn.lookupByName(name)
                state, reason = handle.state()
                found = Presence(exists=True, handle=handle, state=power_state(state),
                                 active=bool(handle.isActive()), persistent=bool(handle.isPersistent()),
                                 uuid=handle.UUIDString())
            except libvirt.libvirtError as err:
                if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return Presence()
                raise
            incoming = (not found.persistent and state == libvirt.VIR_DOMAIN_PAUSED
                        and reason == libvirt.VIR_DOMAIN_PAUSED_MIGRATION)
            if not incoming or time.monotonic() >= deadline:
                return found
            time.sleep(0.25)


def decide(name: str, source: Presence, target: Presence, source_uri: str, dest_uri: str) -> str:
    """What to do: ``present`` (already on the destination), ``migrate`` (the guest runs on the
    source) or ``offline`` (it is shut off on the source: its definition moves). Raises for a
    guest on neither host, active on both, or a different guest of that name on the destination."""
    if not source.exists and not target.exists:
        raise KvmError(f"guest '{name}' was found neither on the source {source_uri} nor on the "
                       f"destination {dest_uri}")
    if source.active and target.active:
        raise KvmError(f"guest '{name}' is active on both the source {source_uri} ({source.state}) and the "
                       f"destination {dest_uri} ({target.state}): two copies may be writing to the same disks. "
                       "Nothing was changed; stop the copy that should not run (hypervisor.kvm.kvm_domain "
                       "state=destroyed) and run this task again")
    if source.exists and target.exists and source.uuid != target.uuid:
        raise KvmError(f"the destination {dest_uri} has another guest named '{name}' (uuid {target.uuid}; "
                       f"the source's has uuid {source.uuid}): nothing was changed")
    if target.active:
        return 'present'
    if source.active:
        return 'migrate'
    if target.exists:
        return 'present'  # shut off on both, or only on the destination: its definition is there
    return 'offline'


# ---- options --------------------------------------------------------------------------------------
def check_options(params: dict) -> None:
    """Refuse combinations the argument spec cannot express, before any connection."""
    problems = []
    source_uri = resolve_uri(params.get('uri'))
    if params['dest_uri'] == source_uri:
        problems.append(f"dest_uri: {params['dest_uri']!r} is the source uri too; give the destination host's URI")
    copying = params['copy_storage'] != 'none'
    if params.get('remove_source_storage') and not copying:
        problems.append('remove_source_storage: needs copy_storage all or incremental (with shared storage '
                        'the destination uses the very same disks)')
    if params.get('remove_source_storage') and not params['undefine_source']:
        problems.append("remove_source_storage: needs undefine_source=true (the source's definition would "
                        'point to deleted disks)')
    if params.get('replace_storage') and not copying:
        problems.append('replace_storage: only means something with copy_storage all or incremental')
    if not params['persistent'] and params['undefine_source']:
        problems.append('persistent=false with undefine_source=true would leave the guest defined nowhere once it '
                        'stops; set undefine_source=false to keep the source definition, or persistent=true')
    for option in ('bandwidth', 'timeout'):
        if params.get(option) is not None and params[option] < 1:
            problems.append(f'{option}: must be at least 1, got {params[option]}')
    if params.get('reserve_memory') is not None:
        try:
            parse_size(params['reserve_memory'], 'reserve_memory')
        except KvmError as err:
            problems.append(err.msg)
    if problems:
        raise KvmError('; '.join(problems))


def migration_flags(params: dict, mode: str, source_persistent: bool) -> list:
    """The VIR_MIGRATE_* flag names for a ``migrate`` or ``offline`` run, in a fixed order."""
    names = []
    if mode == 'offline':
        names.append('VIR_MIGRATE_OFFLINE')
    elif params['live']:
        names.append('VIR_MIGRATE_LIVE')
    if params['peer2peer']:
        names.append('VIR_MIGRATE_PEER2PEER')
    if params['persistent'] or mode == 'offline':
        names.append('VIR_MIGRATE_PERSIST_DEST')
    if params['undefine_source'] and source_persistent:
        names.append('VIR_MIGRATE_UNDEFINE_SOURCE')
    if mode != 'offline':
        names += {'none': [], 'all': ['VIR_MIGRATE_NON_SHARED_DISK'],
                  'incremental': ['VIR_MIGRATE_NON_SHARED_INC']}[params['copy_storage']]
        if params['auto_converge']:
            names.append('VIR_MIGRATE_AUTO_CONVERGE')
        if params['compressed']:
            names.append('VIR_MIGRATE_COMPRESSED')
    if params['unsafe']:
        names.append('VIR_MIGRATE_UNSAFE')
    return names


def flag_value(names: list) -> int:
    """The OR of VIR_MIGRATE_* names; a name this libvirt-python lacks is an error (not 0)."""
    value = 0
    for name in names:
        if not hasattr(libvirt, name):
            raise KvmError(f'this libvirt-python has no {name}: it is too old for this migration')
        value |= getattr(libvirt, name)
    return value


def flag_words(names: list) -> list:
    """VIR_MIGRATE_NON_SHARED_DISK -> non-shared-disk (the result's ``flags``)."""
    return [name[len('VIR_MIGRATE_'):].lower().replace('_', '-') for name in names]


def migration_params(params: dict, persist_xml: str | None) -> dict:
    """The typed parameters of migrate3/migrateToURI3."""
    typed = {}
    if params.get('bandwidth'):
        typed[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(params['bandwidth'])
    if params.get('migrate_uri'):
        typed[libvirt.VIR_MIGRATE_PARAM_URI] = params['migrate_uri']
    if persist_xml:
        typed[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = persist_xml
    return typed


# ---- hosts -----------------------------------------------------------------------------------------
def destination(uri: str):
    """The second connection of the run: the destination host."""
    return connect(uri, f'the destination {uri}')


def host_uuid(conn) -> str | None:
    """The host UUID libvirt reports (None where the driver has none, like the test driver)."""
    uuid = _xml.parse_xml(conn.getCapabilities(), 'libvirt capabilities').findtext('host/uuid')
    return uuid.strip() if uuid else None


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
        if err.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN_METADATA, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED):
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
        if err.get_error_code() not in (libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED, libvirt.VIR_ERR_NO_SUPPORT,
                                        libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_NO_DOMAIN):
            raise


def paths_in_use(conn) -> set:
    """Every disk source path of every guest on ``conn``."""
    used = set()
    listed = conn.listAllDomains(0)
    for _domain, definition in each_read(listed, lambda domain: xml_desc(domain, 0, 'libvirt domain XML'),
                                         libvirt.VIR_ERR_NO_DOMAIN):
        used.update(disk['path'] for disk in disk_sources(definition) if disk['path'])
    return used


def node_memory(conn) -> dict:
    """The host's memory in bytes: ``total`` and ``free`` (free + buffers + cached: what guests
    can get without swapping); ``free`` is None where libvirt cannot say."""
    try:
        stats = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
        return {'total': int(stats['total']) * 1024,
                'free': sum(int(stats.get(key, 0)) for key in ('free', 'buffers', 'cached')) * 1024}
    except (libvirt.libvirtError, KeyError, TypeError):
        pass
    total = conn.getInfo()[1] * 1024 * 1024
    try:
        free = int(conn.getFreeMemory())
    except libvirt.libvirtError:
        free = None
    return {'total': total, 'free': free}


def guest_memory(definition) -> int:
    """The most memory the guest can use (its ``<memory>``), in bytes."""
    return libvirt_size(definition.find('memory')) or 0


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


def timed_out_message(name: str, dest_uri: str, timeout: int) -> str:
    return (f"migrating guest '{name}' to {dest_uri} did not finish within {timeout} s and was aborted "
            '(timeout_action=abort)')


# ---- the migration ---------------------------------------------------------------------------------
class Migration:
    """One kvm_migration run over the source connection ``conn`` and the destination ``dest``."""

    def __init__(self, conn, dest, params: dict, check_mode: bool = False):
        self.conn = conn
        self.dest = dest
        self.params = params
        self.check_mode = check_mode
        self.name = params['name']
        self.source_uri = resolve_uri(params.get('uri'))
        self.dest_uri = params['dest_uri']
        self.dest_uuid = None  # the destination's host UUID, read when a storage copy needs it

    # ---- planning -----------------------------------------------------------------------------
    def converge(self) -> dict:
        """Plan, apply unless in check mode, and build the result."""
        self.refuse_same_host()
        source = find_guest(self.conn, self.name, f'the source {self.source_uri}')
        target = find_guest(self.dest, self.name, f'the destination {self.dest_uri}', settle=30)
        mode = decide(self.name, source, target, self.source_uri, self.dest_uri)
        plan = Plan()
        plan.context.update(source=source, target=target, mode=mode, created=[], removed=[])
        with guard(f'reading the memory of the destination {self.dest_uri}'):
            plan.extra['destination_memory'] = node_memory(self.dest)
        reserve = self.params.get('reserve_memory')
        plan.extra['destination_memory']['reserve'] = parse_size(reserve, 'reserve_memory') if reserve else 0
        with guard(f"reading the memory of guest '{self.name}'"):
            plan.extra['guest_memory'] = (source if source.exists else target).handle.maxMemory() * 1024
        if mode == 'present':
            if source.exists:
                plan.warnings.append(
                    f"guest '{self.name}' is already on the destination, but the source {self.source_uri} still "
                    f'has a {source.describe()} definition of it; remove it with hypervisor.kvm.kvm_domain '
                    'state=absent (its disks are kept) if it is a leftover')
        else:
            self.plan_migration(source, mode, plan)
        try:
            apply_plan(plan, self.check_mode)
        except KvmError as failure:
            # leftover destination volumes count among actions_done (apply_plan, not_reverted)
            failure.details.setdefault('created_volumes', [volume['path'] for volume in plan.context['created']])
            raise
        return self.result(plan)

    def refuse_same_host(self) -> None:
        with guard('reading the host UUIDs'):
            source_host, dest_host = host_uuid(self.conn), host_uuid(self.dest)
        if source_host and source_host == dest_host:
            raise KvmError(f'uri {self.source_uri} and dest_uri {self.dest_uri} reach the same libvirt host '
                           f'(host uuid {source_host}): a guest cannot migrate to the host it is on')

    def plan_migration(self, source: Presence, mode: str, plan: Plan) -> None:
        params = self.params
        if mode == 'offline' and params['copy_storage'] != 'none':
            raise KvmError(f"guest '{self.name}' is shut off on the source: an offline migration moves only its "
                           'definition, and libvirt cannot copy the storage of a guest that does not run. Set '
                           'copy_storage=none (and copy its disks yourself), or start the guest first')
        handle = source.handle
        with guard(f"reading guest '{self.name}' on the source {self.source_uri}"):
            migratable = libvirt_flags('VIR_DOMAIN_XML_MIGRATABLE', 'VIR_DOMAIN_XML_SECURE')
            definition = xml_desc(handle, migratable, 'libvirt domain XML')
            persist_xml = None
            if source.persistent and mode == 'migrate' and params['persistent']:
                # The persistent definition, not the running one: changes waiting for a restart
                # (restart_required) stay waiting on the destination.
                persist_xml = _xml.to_text(xml_desc(
                    handle, migratable | libvirt.VIR_DOMAIN_XML_INACTIVE, 'libvirt domain XML'), pretty=False)
        problems = []
        with guard(f'checking what the destination {self.dest_uri} has for guest {self.name!r}'):
            self.check_networks(definition, mode, problems, plan)
            volumes = self.check_storage(source, definition, mode, problems, plan)
            self.check_boot_files(definition, problems)
            self.check_memory(definition, mode, problems, plan)
        if problems:
            raise KvmError(f"the destination {self.dest_uri} cannot take guest '{self.name}': " + '; '.join(problems),
                           problems=problems,
                           destination={'uri': self.dest_uri, 'memory': plan.extra['destination_memory']},
                           domain={'name': self.name, 'memory': plan.extra['guest_memory']})

        names = migration_flags(params, mode, source.persistent)
        flags = flag_value(names)
        typed = migration_params(params, persist_xml)
        plan.extra.update(flags=flag_words(names),
                          mode='offline' if mode == 'offline' else ('live' if params['live'] else 'non-live'),
                          destination_volumes=[volume['path'] for volume in volumes])
        if volumes:
            plan.add('create-destination-volumes',
                     f"creating {len(volumes)} volume(s) on the destination {self.dest_uri} for guest "
                     f"'{self.name}': {', '.join(volume['path'] for volume in volumes)}",
                     lambda: self.create_volumes(volumes, plan))
        verb = 'migrate-offline' if mode == 'offline' else 'migrate'
        plan.add(verb, f"migrating guest '{self.name}' to {self.dest_uri}",
                 lambda: self.migrate(handle, flags, typed, plan), reverts=('create-destination-volumes',))
        if params['remove_source_storage']:
            copied = [disk for disk in disk_sources(definition) if is_copied(disk) and (disk['path'] or disk['pool'])]
            if copied:
                plan.add('remove-source-storage',
                         f"deleting the source's copy of the disks of guest '{self.name}' on {self.source_uri}",
                         lambda: self.remove_source_storage(copied, plan))

    def check_networks(self, definition, mode: str, problems: list, plan: Plan) -> None:
        """Every libvirt network, bridge or host device the guest's interfaces use exists on the
        destination (and a network is active there when the guest runs)."""
        for interface in definition.findall('devices/interface'):
            kind = interface.get('type')
            source = interface.find('source')
            if source is None:
                continue
            if kind == 'network':
                name = source.get('network')
                try:
                    network = self.dest.networkLookupByName(name)
                except libvirt.libvirtError as err:
                    if err.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                        raise
                    problems.append(f"it lacks network '{name}'")
                    continue
                if mode == 'migrate' and not network.isActive():
                    problems.append(f"its network '{name}' is not active")
            elif kind in ('bridge', 'direct'):
                device = source.get('bridge') if kind == 'bridge' else source.get('dev')
                what = 'bridge' if kind == 'bridge' else 'host interface'
                try:
                    self.dest.interfaceLookupByName(device)
                except libvirt.libvirtError as err:
                    if err.get_error_code() == libvirt.VIR_ERR_NO_INTERFACE:
                        problems.append(f"it lacks the {what} '{device}'")
                    else:  # no interface driver there: libvirt will say at migration time
                        plan.warnings.append(f"could not check the {what} '{device}' on the destination: "
                                             f'{err.get_error_message()}')

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
            copied = copying and is_copied(disk)
            if disk['pool']:
                found = self.destination_volume_in_pool(disk, dest_pools, label, problems)
                if found is None:
                    continue
                pool, existing = found
            else:
                pool, existing = self.destination_volume_at(disk['path'], dest_pools)
            if copied:
                if existing is not None and existing.path() in leftovers:
                    self.plan_remove_partial_copy(existing, plan)
                    existing = None
                if existing is not None:
                    if not self.params['replace_storage']:
                        problems.append(f'{label}: a volume is already at {existing.path()} (a copy left by an earlier '
                                        'migration?); the storage copy would overwrite it. Delete it, or set '
                                        'replace_storage=true')
                    continue
                if pool is None:
                    problems.append(f'{label}: no storage pool holds {os.path.dirname(disk["path"])}, so the copy has '
                                    'nowhere to go; define a pool with that target path there')
                    continue
                if not pool['active']:
                    problems.append(f"{label}: its pool '{pool['name']}' is not active")
                    continue
                volumes.append(self.volume_to_create(source, disk, pool, label, problems))
            elif existing is None:
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
        return [volume for volume in volumes if volume is not None]

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

    def check_boot_files(self, definition, problems: list) -> None:
        """Kernel, initrd and firmware files are never copied: on a local destination they must
        exist (a remote one is asked through libvirt only for pool volumes, so not here)."""
        if not is_local_uri(self.dest_uri):
            return
        for tag in ('os/kernel', 'os/initrd', 'os/dtb', 'os/loader'):
            path = (definition.findtext(tag) or '').strip()
            if path and not os.path.exists(path):
                problems.append(f"{tag.split('/')[1]} {path}: the storage path is missing")

    def check_memory(self, definition, mode: str, problems: list, plan: Plan) -> None:
        """With reserve_memory: the destination's free memory minus the reserve holds the guest."""
        if self.params.get('reserve_memory') is None or mode != 'migrate':
            return
        reserve = plan.extra['destination_memory']['reserve']
        needed = guest_memory(definition)
        free = plan.extra['destination_memory']['free']
        if free is None:
            plan.warnings.append('the destination does not report its free memory: reserve_memory was not checked')
        elif free - reserve < needed:
            problems.append(f"it lacks room: the guest needs {format_size(needed)}, the destination has "
                            f'{format_size(free)} free minus the reserve of {format_size(reserve)}')

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

    def migrate(self, handle, flags: int, typed: dict, plan: Plan) -> None:
        outcome = self.run_migration(handle, flags, typed)
        plan.context['elapsed_ms'] = outcome['elapsed_ms']
        plan.context['timeout_action_taken'] = outcome.get('timeout_action_taken')
        if 'error' in outcome and self.reconnected_after_restart() and self.landed():
            del outcome['error']  # a daemon restarted at the very end: the guest runs on the destination
            outcome.pop('domain', None)
        if 'error' in outcome:
            self.fail_migration(outcome, plan)
        new = outcome.get('domain')
        with guard(f"reading guest '{self.name}' on the destination {self.dest_uri}"):
            if new is None:
                new = self.dest.lookupByName(self.name)
            source = plan.context['source']
            if outcome.get('timeout_action_taken') == 'suspend' and source.state == 'running' \
                    and power_state(new.state()[0]) == 'paused':
                new.resume()  # paused to finish the migration, not by the user
        if plan.context['created']:
            record_copies(new, self.dest_uuid, [])  # the copies are the guest's disks now
        plan.context['stats'] = completed_job_stats(new)

    def run_migration(self, handle, flags: int, typed: dict) -> dict:
        """migrate3 (the module drives both hosts) or migrateToURI3 (peer to peer: the source's
        libvirtd drives it) in a thread, so that ``timeout`` can abort or pause it."""
        outcome = {}

        def work():
            try:
                if self.params['peer2peer']:
                    handle.migrateToURI3(self.dest_uri, typed, flags)
                else:
                    outcome['domain'] = handle.migrate3(self.dest, typed, flags)
            except Exception as err:  # pylint: disable=broad-exception-caught  # reported by the caller
                outcome['error'] = err

        timeout = self.params.get('timeout')
        started = time.monotonic()
        worker = threading.Thread(target=work, name='kvm-migration', daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(POLL_SECONDS if timeout else None)
            if timeout and worker.is_alive() and 'timeout_action_taken' not in outcome \
                    and time.monotonic() - started >= timeout:
                action = self.params['timeout_action']
                outcome['timeout_action_taken'] = action
                try:
                    if action == 'abort':
                        handle.abortJob()
                    else:
                        handle.suspend()
                except libvirt.libvirtError:
                    pass  # it finished just now; the outcome says how
        outcome['elapsed_ms'] = int((time.monotonic() - started) * 1000)
        return outcome

    def reconnected_after_restart(self) -> bool:
        """When a libvirtd restarted during the migration (a connection dropped), connect again
        (within a minute) so that where the guest is can be told. True when one was reopened."""
        reopened = False
        deadline = time.monotonic() + 60
        for conn in (self.conn, self.dest):
            if isinstance(conn, Connection) and not conn.alive():
                conn.reopen(deadline)
                reopened = True
        return reopened

    def landed(self) -> bool:
        """Whether the guest is active on the destination and not on the source."""
        target = find_guest(self.dest, self.name, f'the destination {self.dest_uri}')
        source = find_guest(self.conn, self.name, f'the source {self.source_uri}')
        return target.active and not source.active

    def fail_migration(self, outcome: dict, plan: Plan) -> None:
        err = outcome['error']
        leftover = self.remove_created_volumes(plan)
        now = find_guest(self.conn, self.name, f'the source {self.source_uri}')
        if not leftover and now.active:
            try:
                record_copies(now.handle, self.dest_uuid, [])  # nothing left for a later run to remove
            except libvirt.libvirtError:
                pass  # the record names volumes that are gone: a later run finds nothing to remove
        if outcome.get('timeout_action_taken') == 'abort':
            message = timed_out_message(self.name, self.dest_uri, self.params['timeout'])
        elif isinstance(err, libvirt.libvirtError):
            message = libvirt_failure(f"migrating guest '{self.name}' to {self.dest_uri}", err).msg
        else:
            message = f"migrating guest '{self.name}' to {self.dest_uri} failed: {type(err).__name__}: {err}"
        where = (f'It is still on the source {self.source_uri} ({now.state}).' if now.exists
                 else f'It is no longer on the source {self.source_uri}.')
        if plan.context.get('timeout_action_taken') == 'suspend' and now.state == 'paused' \
                and plan.context['source'].state == 'running':
            try:
                now.handle.resume()
                where = f'It is still on the source {self.source_uri} (running again after the timeout pause).'
            except libvirt.libvirtError:
                where += ' It was paused by timeout_action=suspend; resume it with kvm_domain state=running.'
        details = {'source_state': now.state, 'elapsed_ms': outcome['elapsed_ms'],
                   'timeout_action_taken': outcome.get('timeout_action_taken')}
        if isinstance(err, libvirt.libvirtError):
            details['libvirt_error'] = libvirt_failure('', err).details['libvirt_error']
        cleanup = ''
        if leftover:
            cleanup = f" The volumes it created on the destination could not be removed: {', '.join(leftover)}."
            details['leftover_volumes'] = leftover
        raise KvmError(f'{message}. {where}{cleanup}', **details)

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

    # ---- the result ----------------------------------------------------------------------------
    def result(self, plan: Plan) -> dict:
        source, target, mode = plan.context['source'], plan.context['target'], plan.context['mode']
        if self.check_mode or mode == 'present':
            source_after, target_after = self.predicted(plan)
        else:
            source_after, target_after = read_back(
                plan, lambda: (find_guest(self.conn, self.name, f'the source {self.source_uri}'),
                               find_guest(self.dest, self.name, f'the destination {self.dest_uri}')),
                f"reading where guest '{self.name}' is after the migration")
        stats = plan.context.get('stats') or {}
        # the facts planning gathered go into the result's own keys, not beside them
        fact_keys = ('guest_memory', 'destination_memory', 'mode', 'flags', 'destination_volumes')
        facts = {key: plan.extra.pop(key, None) for key in fact_keys}
        result = plan_result(plan, where_text(self.source_uri, source, self.dest_uri, target),
                             where_text(self.source_uri, source_after, self.dest_uri, target_after),
                             f"where guest '{self.name}' is")
        result.update({
            'domain': {'name': self.name, 'uuid': target_after.uuid or source.uuid, 'state': target_after.state,
                       'persistent': target_after.persistent, 'uri': self.dest_uri, 'memory': facts['guest_memory']},
            'source': {'uri': self.source_uri, 'before': source.describe(), 'after': source_after.describe()},
            'destination': {'uri': self.dest_uri, 'before': target.describe(), 'after': target_after.describe(),
                            'memory': facts['destination_memory']},
            'mode': facts['mode'],
            'flags': facts['flags'] or [],
            'elapsed_ms': plan.context.get('elapsed_ms'),
            'downtime_ms': stats.get('downtime'),
            'transferred_bytes': stats.get('data_processed'),
            'timeout_action_taken': plan.context.get('timeout_action_taken'),
            'created_volumes': [volume['path'] for volume in plan.context['created']] if not self.check_mode
            else facts['destination_volumes'] or [],
            'removed_source_volumes': plan.context['removed'],
        })
        return result

    def predicted(self, plan: Plan) -> tuple:
        """Where the guest will be after the plan (check mode), as Presence values."""
        source, target, mode = plan.context['source'], plan.context['target'], plan.context['mode']
        if mode == 'present':
            return source, target
        undefine = self.params['undefine_source'] or not source.persistent
        source_after = Presence() if undefine else Presence(
            exists=True, handle=source.handle, state='shutoff', persistent=True, uuid=source.uuid)
        if mode == 'offline':
            target_after = Presence(exists=True, state='shutoff', persistent=True, uuid=source.uuid)
            if not self.params['undefine_source']:
                source_after = source
        else:
            target_after = Presence(exists=True, state=source.state, active=True,
                                    persistent=self.params['persistent'], uuid=source.uuid)
        return source_after, target_after


def completed_job_stats(handle) -> dict:
    """libvirt's statistics of the migration that just completed (downtime, bytes), as the
    destination knows them; empty where the driver keeps none (offline migrations)."""
    try:
        stats = handle.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        return {}
    return stats or {}


def where_text(source_uri: str, source: Presence, dest_uri: str, target: Presence) -> str:
    """One side of ``--diff``: the guest on each host."""
    return f'source {source_uri}: {source.describe()}\ndestination {dest_uri}: {target.describe()}\n'


def converge(conn, params: dict, check_mode: bool) -> dict:
    """kvm_migration's work over the source connection ``conn``."""
    check_options(params)
    with destination(params['dest_uri']) as dest:
        return Migration(conn, dest, params, check_mode).converge()
