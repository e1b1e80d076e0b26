# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Guest snapshots: what kvm_snapshot plans and does (:func:`converge`: read, check, plan,
apply unless check mode, result). What the rest of the collection reads about snapshots is in
``_snapshot_facts.py``.

What libvirt 9.0 cannot do is refused before anything changes: reverting to an external
snapshot, deleting several external snapshots in one call (children are deleted one at a time,
leaf first), internal and external snapshots on one guest, internal snapshots of raw disks or of
guests booting UEFI firmware from pflash, and internal disk-only snapshots of a running guest.
"""

from __future__ import annotations

import copy
import os
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import GUEST_AGENT, power_state
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    guard,
    is_local_uri,
    libvirt,
    lookup,
    xml_desc,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Plan, apply_plan, plan_result, read_back
from ansible_collections.hypervisor.kvm.plugins.module_utils._snapshot_facts import (
    current_snapshot_name,
    describe_snapshot,
    disk_by_target,
    disk_format,
    disk_path,
    disk_target,
    read_snapshots,
)

SNAPSHOT_STATES = ('present', 'absent', 'current')
# options that mean something with one state only: given with another, they are an error
STATE_OPTIONS = {
    'present': ('description', 'memory', 'external', 'disks', 'quiesce'),
    'absent': ('children',),
    'current': ('running', 'paused', 'force'),
}
FACT_KEYS = ('name', 'parent', 'created', 'state', 'current', 'kind', 'description', 'memory', 'disks')


def snapshot_options() -> dict:
    """kvm_snapshot's options (but uri)."""
    return dict(
        domain=dict(type='str', required=True),
        name=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=list(SNAPSHOT_STATES)),
        description=dict(type='str'),
        memory=dict(type='bool'),
        external=dict(type='bool'),
        disks=dict(type='list', elements='dict', options=dict(
            target=dict(type='str', required=True),
            include=dict(type='bool', default=True),
            path=dict(type='path'),
        )),
        quiesce=dict(type='bool'),
        children=dict(type='bool'),
        force=dict(type='bool'),
        running=dict(type='bool'),
        paused=dict(type='bool'),
    )


# ---- kvm_snapshot ----------------------------------------------------------------------------------
def check_options(params: dict) -> None:
    """Refuse option combinations that cannot mean anything, before libvirt is asked."""
    state, name = params['state'], params['name']
    if not name or not name.strip():
        raise KvmError('name: a snapshot needs a name')
    if '/' in name:
        raise KvmError(f'name: {name!r} contains "/" (external snapshots name their overlay files after it)')
    for other, options in STATE_OPTIONS.items():
        if other == state:
            continue
        for option in options:
            if params.get(option) is not None:
                raise KvmError(f'{option}: only with state: {other} (state is {state})')
    if params.get('quiesce') and not params.get('external'):
        raise KvmError('quiesce: needs external: true (libvirt quiesces the guest file systems only for '
                       'disk-only external snapshots)')
    if params.get('external') and params.get('memory'):
        raise KvmError('memory: external snapshots are disk-only here; take an internal snapshot '
                       '(external: false) to keep the memory state')
    seen = set()
    for index, disk in enumerate(params.get('disks') or []):
        where = f'disks[{index}]'
        if disk['target'] in seen:
            raise KvmError(f"{where}.target: {disk['target']} is listed twice")
        seen.add(disk['target'])
        if disk.get('path') is not None:
            if not params.get('external'):
                raise KvmError(f'{where}.path: an overlay file is only for external snapshots (external: true)')
            if not disk['include']:
                raise KvmError(f'{where}.path: the disk is not included (include: false)')
            if not disk['path'].startswith('/'):
                raise KvmError(f"{where}.path: {disk['path']!r} is not an absolute path")


class Guest:
    """One guest and its snapshots, read once per run."""

    def __init__(self, conn, name: str):
        self.conn = conn
        self.name = name
        self.handle = lookup(conn.lookupByName, name, 'domain')
        if self.handle is None:
            raise KvmError(f"domain: no domain named '{name}' on {conn.getURI()}")
        self.power = power_state(self.handle.state()[0])
        self.active = bool(self.handle.isActive())
        self.definition = xml_desc(self.handle, libvirt.VIR_DOMAIN_XML_SECURE, 'libvirt domain XML')
        self.current = current_snapshot_name(self.handle)
        self.snapshots = {}  # name -> (handle, XML element, facts)
        for snap, definition in read_snapshots(self.handle):
            facts = describe_snapshot(definition, snap.getName() == self.current)
            self.snapshots[facts['name']] = (snap, definition, facts)

    def label(self) -> str:
        return f"domain '{self.name}'"

    def of_kind(self, kind: str) -> list:
        return sorted(name for name, (_s, _d, facts) in self.snapshots.items() if facts['kind'] == kind)

    def children(self, name: str) -> list:
        found = [facts for _s, _d, facts in self.snapshots.values() if facts['parent'] == name]
        return [facts['name'] for facts in sorted(found, key=lambda f: (f['created'] or 0, f['name']))]

    def descendants_leaf_first(self, name: str) -> list:
        """Every snapshot below ``name``, each after all of its own children (leaf first)."""
        order = []
        for child in self.children(name):
            order.extend(self.descendants_leaf_first(child))
            order.append(child)
        return order


def _description(value: str | None) -> str | None:
    """A description as it is stored: without surrounding white space (the XML is normalised),
    an empty one is none."""
    return (value or '').strip() or None


def _bool(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def diff_side(facts: dict | None, extra: dict | None = None) -> str:
    """One side of ``--diff``: the snapshot's facts (and the guest's where they change), one per
    line; not its creation time, which check mode cannot know and which never changes."""
    if not facts:
        return ''
    lines = []
    for key in FACT_KEYS:
        if key == 'created':
            continue
        value = facts.get(key)
        if key == 'disks':
            value = ', '.join(f"{disk['target']} {disk['snapshot']}" + (f" {disk['path']}" if disk.get('path') else '')
                              for disk in value or []) or None
        if key == 'description' and value and '\n' in value:
            value = value.replace('\n', '\\n')
        lines.append(f'{key}: {_bool(value) if value is not None else "null"}')
    for key, value in (extra or {}).items():
        lines.append(f'{key}: {_bool(value) if value is not None else "null"}')
    return '\n'.join(lines) + '\n'


def converge(conn, params: dict, check_mode: bool, diff: bool = False) -> dict:
    """kvm_snapshot: read the guest, check, plan, apply unless in check mode, return the result
    (with a diff when the run asked for one)."""
    check_options(params)
    guest = Guest(conn, params['domain'])
    planner = {'present': plan_present, 'absent': plan_absent, 'current': plan_current}[params['state']]
    plan = Plan()
    before, after, predicted = planner(guest, params, plan)
    apply_plan(plan, check_mode)
    result = plan_result(plan, f"snapshot '{params['name']}' of {guest.label()}",
                         (diff_side(*before), diff_side(*after)) if diff else None)
    if check_mode or not plan.names():
        result['snapshot'] = predicted
        result['domain_state'] = after[1]['domain_state'] if after[1] else guest.power
    else:
        fresh = read_back(plan, lambda: Guest(conn, guest.name),
                          f'reading {guest.label()} and its snapshots after the changes')
        entry = fresh.snapshots.get(params['name'])
        result['snapshot'] = entry[2] if entry else {'name': params['name'], 'state': 'absent'}
        result['domain_state'] = fresh.power
    return result


# ---- state: present ----------------------------------------------------------------------------
def plan_present(guest: Guest, params: dict, plan: Plan):
    name = params['name']
    entry = guest.snapshots.get(name)
    if entry is not None:
        return plan_existing(guest, params, plan, entry)
    facts, xml, flags = new_snapshot(guest, params)
    text = _xml.to_text(xml, pretty=False)
    plan.add('create', f"creating snapshot '{name}' of {guest.label()}",
             lambda: guest.handle.snapshotCreateXML(text, flags))
    return (None, None), (facts, None), facts


def plan_existing(guest: Guest, params: dict, plan: Plan, entry):
    _snap, definition, facts = entry
    name = params['name']
    differences = []
    if params.get('external') is not None and (facts['kind'] == 'external') != params['external']:
        differences.append(f"external: {_bool(params['external'])} (the snapshot is {facts['kind']})")
    if params.get('memory') is not None and facts['memory'] != params['memory']:
        differences.append(f"memory: {_bool(params['memory'])} (the snapshot "
                           f"{'has' if facts['memory'] else 'has no'} memory state)")
    disks = {disk['target']: disk for disk in facts['disks']}
    for index, wanted in enumerate(params.get('disks') or []):
        have = disks.get(wanted['target'])
        included = have is not None and have['snapshot'] not in (None, 'no')
        if included != wanted['include']:
            differences.append(f"disks[{index}].include: {_bool(wanted['include'])} (disk {wanted['target']} is "
                               f"{'in' if included else 'not in'} the snapshot)")
        elif wanted.get('path') and have and have['path'] != wanted['path']:
            differences.append(f"disks[{index}].path: {wanted['path']} (the overlay of {wanted['target']} is "
                               f"{have['path']})")
    if differences:
        raise KvmError(f"snapshot '{name}' of {guest.label()} exists with other settings: "
                       f"{'; '.join(differences)}. A snapshot is never taken again: remove it first "
                       "(state: absent) or choose another name", differences=differences)
    wanted_description = _description(params.get('description'))
    after = dict(facts)
    if params.get('description') is not None and wanted_description != facts['description']:
        after['description'] = wanted_description
        updated = copy.deepcopy(definition)
        for element in updated.findall('description'):
            updated.remove(element)
        if wanted_description:
            element = ET.Element('description')
            element.text = wanted_description
            position = list(updated).index(updated.find('name')) + 1 if updated.find('name') is not None else 0
            updated.insert(position, element)
        text = _xml.to_text(updated, pretty=False)
        flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE
        if facts['current']:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT  # a redefinition must not drop current-ness
        plan.add('update-description', f"updating the description of snapshot '{name}' of {guest.label()}",
                 lambda: guest.handle.snapshotCreateXML(text, flags))
    return (facts, None), (after, None), after


def _disks(guest: Guest) -> list:
    """The guest's disks: (index, element, target, writable, path)."""
    found = []
    for index, disk in enumerate(guest.definition.findall('devices/disk')):
        readonly = disk.find('readonly') is not None or disk.get('device') in ('cdrom', 'floppy')
        writable = not readonly and disk.find('source') is not None
        found.append((index, disk, disk_target(disk), writable, disk_path(disk)))
    return found


def _uses_pflash(definition) -> bool:
    loader = definition.find('os/loader')
    os_element = definition.find('os')
    return (loader is not None and loader.get('type') == 'pflash') or (
        os_element is not None and os_element.get('firmware') == 'efi')


def new_snapshot(guest: Guest, params: dict):
    """Check a new snapshot against the guest; return (predicted facts, its XML, create flags)."""
    name, external = params['name'], bool(params.get('external'))
    kind = 'external' if external else 'internal'
    other = guest.of_kind('internal' if external else 'external')
    if other:
        raise KvmError(
            f"{guest.label()} has {'internal' if external else 'external'} snapshots ({', '.join(other)}): "
            f"kvm_snapshot does not add {kind} ones to them, since a chain mixing both can be neither reverted "
            "nor deleted by libvirt. Remove them first, or take the same kind"
            f" (external: {_bool(not external)})")
    disks = _disks(guest)
    by_target = {target: (index, disk, writable, path) for index, disk, target, writable, path in disks}
    options = {}
    for index, wanted in enumerate(params.get('disks') or []):
        if wanted['target'] not in by_target:
            known = ', '.join(sorted(t for t in by_target if t)) or 'none'
            raise KvmError(f"disks[{index}].target: {guest.label()} has no disk {wanted['target']} "
                           f"(its disks: {known})")
        if wanted['include'] and not by_target[wanted['target']][2]:
            raise KvmError(f"disks[{index}]: disk {wanted['target']} is read-only or empty (a cdrom...) "
                           "and is never part of a snapshot")
        if not external and not wanted['include'] and by_target[wanted['target']][2]:
            raise KvmError(f"disks[{index}].include: libvirt cannot leave writable disk {wanted['target']} out of "
                           "an internal snapshot; use external: true to snapshot some disks only")
        options[wanted['target']] = (index, wanted)
    included = [(target, path, disk) for _i, disk, target, writable, path in disks
                if writable and options.get(target, (0, {'include': True}))[1]['include']]
    if not included:
        raise KvmError(f"{guest.label()} has no writable disk to snapshot"
                       + (' (disks excludes them all)' if options else ''))

    memory = params.get('memory')
    if external:
        memory = False
        xml, flags, disk_facts = external_disks(guest, params, disks, options)
        state = 'disk-snapshot' if guest.active else 'shutoff'  # as libvirt records them
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
    else:
        if _uses_pflash(guest.definition):
            raise KvmError(f"{guest.label()} boots UEFI firmware from pflash: libvirt cannot take internal "
                           "snapshots of such a guest (its NVRAM is not qcow2); use external: true")
        for target, path, disk in included:
            if disk_format(disk) != 'qcow2':
                raise KvmError(f"disk {target} ({path or 'no file'}) is {disk_format(disk) or 'of unknown format'}: "
                               "internal snapshots need qcow2 disks; use external: true (a qcow2 overlay over it)")
        if memory is None:
            memory = guest.active
        if guest.active and not memory:
            raise KvmError(f"memory: false: {guest.label()} is {guest.power}, and libvirt cannot take an internal "
                           "disk-only snapshot of a running guest; use memory: true, or external: true")
        if memory and not guest.active:
            raise KvmError(f"memory: true: {guest.label()} is {guest.power}, it has no memory state to save")
        xml = ET.Element('domainsnapshot')
        _xml.sub_element(xml, 'name', name)
        _xml.sub_element(xml, 'memory', snapshot='internal' if memory else 'no')
        element = _xml.sub_element(xml, 'disks')
        disk_facts = []
        for _i, _disk, target, writable, _path in disks:
            mode = 'internal' if writable else 'no'
            _xml.sub_element(element, 'disk', name=target, snapshot=mode)
            disk_facts.append({'target': target, 'snapshot': mode, 'path': None})
        flags = 0
        state = guest.power if guest.power in ('running', 'paused') else 'shutoff'
    if _description(params.get('description')):
        description = ET.Element('description')
        description.text = _description(params['description'])
        xml.insert(1, description)
    facts = {'name': name, 'parent': guest.current, 'created': None, 'state': state, 'current': True,
             'kind': kind, 'description': _description(params.get('description')), 'memory': bool(memory),
             'disks': disk_facts}
    return facts, xml, flags


def _overlay_path(guest: Guest, disk, name: str, where: str) -> str:
    """Where libvirt would put the overlay: the disk's file with its suffix replaced by the
    snapshot name (``disk.qcow2`` -> ``disk.<name>``); a pool volume's file, the same way."""
    source = disk.find('source')
    path = source.get('file') if source is not None else None
    if disk.get('type') == 'volume' and source is not None and source.get('volume'):
        with guard(f"finding volume '{source.get('volume')}' of pool '{source.get('pool')}'"):
            path = guest.conn.storagePoolLookupByName(source.get('pool')).storageVolLookupByName(
                source.get('volume')).path()
    if not path or disk.get('type') not in ('file', 'volume'):
        raise KvmError(f"{where}: disk {disk_target(disk)} is a {disk.get('type')} disk: give the overlay file "
                       "of the external snapshot in disks[].path")
    stem, dot, suffix = path.rpartition('.')
    if dot and '/' not in suffix:
        return f'{stem}.{name}'
    return f'{path}.{name}'


def external_disks(guest: Guest, params: dict, disks: list, options: dict):
    """The <domainsnapshot> of a disk-only external snapshot with an overlay path per disk."""
    name = params['name']
    xml = ET.Element('domainsnapshot')
    _xml.sub_element(xml, 'name', name)
    _xml.sub_element(xml, 'memory', snapshot='no')
    element = _xml.sub_element(xml, 'disks')
    flags, facts, overlays = 0, [], {}
    local = is_local_uri(guest.conn.getURI())
    for _i, disk, target, writable, _path in disks:
        index, wanted = options.get(target, (None, {'include': writable}))
        if not writable or not wanted['include']:
            _xml.sub_element(element, 'disk', name=target, snapshot='no')
            facts.append({'target': target, 'snapshot': 'no', 'path': None})
            continue
        where = f'disks[{index}]' if index is not None else 'disks'
        if not guest.active and disk.get('type') == 'volume':
            raise KvmError(f"{where}: disk {target} of the shut-off {guest.label()} is a pool volume: libvirt 9.0 "
                           'could never delete an external snapshot taken of it now (it cannot merge such an offline '
                           'overlay back); take it while the guest runs, or define the disk by its path')
        overlay = wanted.get('path') or _overlay_path(guest, disk, name, where)
        if overlay in overlays:
            raise KvmError(f"{where}: disks {overlays[overlay]} and {target} would both get the overlay {overlay}; "
                           "give each its own disks[].path")
        overlays[overlay] = target
        if local and os.path.exists(overlay):
            raise KvmError(f"{where}: the overlay file {overlay} of disk {target} exists already; "
                           "remove it or give another disks[].path")
        entry = _xml.sub_element(element, 'disk', name=target, snapshot='external', type='file')
        _xml.sub_element(entry, 'driver', type='qcow2')
        _xml.sub_element(entry, 'source', file=overlay)
        facts.append({'target': target, 'snapshot': 'external', 'path': overlay})
    if params.get('quiesce'):
        if not guest.active:
            raise KvmError(f"quiesce: {guest.label()} is {guest.power}; only a running guest's agent can freeze "
                           "its file systems")
        channel = next((target for target in guest.definition.findall('devices/channel/target')
                        if target.get('name') == GUEST_AGENT), None)
        if channel is None:
            raise KvmError(f"quiesce: {guest.label()} has no guest agent channel ({GUEST_AGENT})")
        if channel.get('state') == 'disconnected':
            raise KvmError(f"quiesce: the guest agent of {guest.label()} is not connected (is qemu-guest-agent "
                           "running in the guest?)")
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
    return xml, flags, facts


# ---- state: absent -----------------------------------------------------------------------------
def plan_absent(guest: Guest, params: dict, plan: Plan):
    name = params['name']
    entry = guest.snapshots.get(name)
    plan.extra['deleted'] = []
    if entry is None:
        return (None, None), (None, None), {'name': name, 'state': 'absent'}
    facts = entry[2]
    below = guest.descendants_leaf_first(name)
    if below and not params.get('children'):
        raise KvmError(f"snapshot '{name}' of {guest.label()} has children: {', '.join(below)}. "
                       "children: true deletes them with it"
                       + (' (one at a time, leaf first)' if facts['kind'] == 'external' else ''),
                       children=below)
    for doomed in below + [name]:
        check_external_delete(guest, doomed)
    for child in below:
        plan.add('delete-child', f"deleting snapshot '{child}' of {guest.label()} (a child of '{name}')",
                 _deleter(guest, child))
    plan.add('delete', f"deleting snapshot '{name}' of {guest.label()}", _deleter(guest, name))
    plan.extra['deleted'] = below + [name]
    before = dict(facts)
    extra = {'children': ', '.join(below)} if below else None
    return (before, extra), (None, None), {'name': name, 'state': 'absent'}


def check_external_delete(guest: Guest, name: str) -> None:
    """libvirt 9.0 cannot delete an external snapshot that was taken of a shut-off guest over a
    disk defined as a pool volume ("snapshot VM disk source and parent disk source are not the
    same"), running or not. kvm_snapshot does not take such snapshots; one taken by other means
    is refused here, before anything is deleted."""
    _snap, definition, facts = guest.snapshots[name]
    domain = definition.find('domain')
    if facts['kind'] != 'external' or facts['state'] != 'shutoff' or domain is None:
        return
    for disk in definition.findall('disks/disk'):
        if disk.get('snapshot') != 'external':
            continue
        was = disk_by_target(domain, disk.get('name'))
        if was is not None and was.get('type') == 'volume':
            raise KvmError(f"snapshot '{name}' of {guest.label()}: it was taken of the shut-off guest over disk "
                           f"{disk.get('name')}, a pool volume, and libvirt 9.0 cannot merge such an overlay back; "
                           'its metadata can only be dropped with the guest (kvm_domain state: absent)')


def _deleter(guest: Guest, name: str):
    """One snapshot deleted, by itself (libvirt merges an external one's overlay into the disk
    under it, so the guest keeps its current data)."""
    return lambda: guest.handle.snapshotLookupByName(name, 0).delete(0)


# ---- state: current ----------------------------------------------------------------------------
def plan_current(guest: Guest, params: dict, plan: Plan):
    name = params['name']
    entry = guest.snapshots.get(name)
    if entry is None:
        known = ', '.join(sorted(guest.snapshots)) or 'none'
        raise KvmError(f"snapshot '{name}' of {guest.label()} does not exist, nothing to revert to "
                       f"(its snapshots: {known})")
    snap, _definition, facts = entry
    if facts['kind'] == 'external':
        raise KvmError(f"snapshot '{name}' of {guest.label()} is external (disk-only overlays): libvirt 9.0 "
                       "cannot revert to external snapshots. Only internal snapshots can be reverted to")
    external = guest.of_kind('external')
    if external:
        raise KvmError(f"{guest.label()} also has external snapshots ({', '.join(external)}): a revert would "
                       "leave their overlays behind; remove them first")
    if facts['current'] and not params.get('force'):
        extra = {'domain_state': guest.power, 'current_snapshot': guest.current}
        return (facts, extra), (facts, extra), facts
    flags = 0
    if params.get('running'):
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING
        power = 'running'
    elif params.get('paused'):
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED
        power = 'paused'
    else:
        power = facts['state'] if facts['state'] in ('running', 'paused') else 'shutoff'
    if params.get('force'):
        flags |= libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE

    plan.add('revert', f"reverting {guest.label()} to snapshot '{name}'",
             lambda: guest.handle.revertToSnapshot(snap, flags))
    after = dict(facts, current=True)
    # a forced revert to the current snapshot changes what libvirt cannot see: say it was reverted
    return ((facts, {'domain_state': guest.power, 'current_snapshot': guest.current}),
            (after, {'domain_state': power, 'current_snapshot': name, 'reverted': True}), after)
