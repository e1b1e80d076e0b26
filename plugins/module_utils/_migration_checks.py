# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvm_migration's pre-flight: where the guest is on each host and what that means
(:func:`decide`), the option combinations and hosts refused before any change, and what the
destination lacks for the guest's networks, boot files and memory (its disks are checked by
``_migration_storage.py``). A check adds each problem to a list, so that the refusal names them all.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import power_state
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    guard,
    is_error,
    is_local_uri,
    libvirt,
    lookup,
    resolve_uri,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Plan
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import format_size, libvirt_size, parse_size


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
                if is_error(err, libvirt.VIR_ERR_NO_DOMAIN):
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


# ---- options and hosts ----------------------------------------------------------------------------
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


def host_uuid(conn) -> str | None:
    """The host UUID libvirt reports (None where the driver has none, like the test driver)."""
    uuid = _xml.parse_xml(conn.getCapabilities(), 'libvirt capabilities').findtext('host/uuid')
    return uuid.strip() if uuid else None


def refuse_same_host(conn, dest, source_uri: str, dest_uri: str) -> None:
    """Refuse a destination that is the source host under another URI (the same host UUID)."""
    with guard('reading the host UUIDs'):
        source_host, dest_host = host_uuid(conn), host_uuid(dest)
    if source_host and source_host == dest_host:
        raise KvmError(f'uri {source_uri} and dest_uri {dest_uri} reach the same libvirt host '
                       f'(host uuid {source_host}): a guest cannot migrate to the host it is on')


# ---- what the destination lacks -------------------------------------------------------------------
def check_networks(dest, definition, mode: str, problems: list, plan: Plan) -> None:
    """Every libvirt network, bridge or host device the guest's interfaces use exists on the
    destination (and a network is active there when the guest runs)."""
    for interface in definition.findall('devices/interface'):
        kind = interface.get('type')
        source = interface.find('source')
        if source is None:
            continue
        if kind == 'network':
            name = source.get('network')
            network = lookup(dest.networkLookupByName, name, 'network')
            if network is None:
                problems.append(f"it lacks network '{name}'")
                continue
            if mode == 'migrate' and not network.isActive():
                problems.append(f"its network '{name}' is not active")
        elif kind in ('bridge', 'direct'):
            device = source.get('bridge') if kind == 'bridge' else source.get('dev')
            what = 'bridge' if kind == 'bridge' else 'host interface'
            try:
                dest.interfaceLookupByName(device)
            except libvirt.libvirtError as err:
                if is_error(err, libvirt.VIR_ERR_NO_INTERFACE):
                    problems.append(f"it lacks the {what} '{device}'")
                else:  # no interface driver there: libvirt will say at migration time
                    plan.warnings.append(f"could not check the {what} '{device}' on the destination: "
                                         f'{err.get_error_message()}')


def check_boot_files(dest_uri: str, definition, problems: list) -> None:
    """Kernel, initrd and firmware files are never copied: on a local destination they must
    exist (a remote one is asked through libvirt only for pool volumes, so not here)."""
    if not is_local_uri(dest_uri):
        return
    for tag in ('os/kernel', 'os/initrd', 'os/dtb', 'os/loader'):
        path = (definition.findtext(tag) or '').strip()
        if path and not os.path.exists(path):
            problems.append(f"{tag.split('/')[1]} {path}: the storage path is missing")


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


def check_memory(params: dict, definition, mode: str, problems: list, plan: Plan) -> None:
    """With reserve_memory: the destination's free memory minus the reserve holds the guest."""
    if params.get('reserve_memory') is None or mode != 'migrate':
        return
    reserve = plan.extra['destination_memory']['reserve']
    needed = guest_memory(definition)
    free = plan.extra['destination_memory']['free']
    if free is None:
        plan.warnings.append('the destination does not report its free memory: reserve_memory was not checked')
    elif free - reserve < needed:
        problems.append(f"it lacks room: the guest needs {format_size(needed)}, the destination has "
                        f'{format_size(free)} free minus the reserve of {format_size(reserve)}')
