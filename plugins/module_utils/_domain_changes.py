# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a domain run does only when something changes: removal with the domain's storage, live
device, memory and vcpu changes, ACPI shutdown with its wait, the restart the user opted into,
and the wait for an address (docs/architecture.md, "Speed": a run with nothing to do never
compiles this file). Each function takes the :class:`_domain.Domain` it works for as ``domain``.
"""

from __future__ import annotations

import copy
import os
import time
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import (
    disk_sources,
    domain_interfaces,
    interface_addresses,
    power_state,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_metadata import META_NS, META_PREFIX
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    each_read,
    flags,
    is_error,
    is_local_uri,
    libvirt,
    lookup,
    wait_until,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Observed, Plan
from ansible_collections.hypervisor.kvm.plugins.module_utils._volume_facts import volumes_backed_by

UNDEFINE_FLAGS = ('VIR_DOMAIN_UNDEFINE_MANAGED_SAVE', 'VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA',
                  'VIR_DOMAIN_UNDEFINE_NVRAM', 'VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA')


# ---- removal with storage --------------------------------------------------------------------
def removable_storage(domain, before: Observed, plan: Plan, bases: dict) -> list:
    """The domain's own disks (not cdroms, not shared, not used by another domain): the base
    files it was defined with, and the overlays of its external snapshots (``bases``, read
    before the undefine drops the snapshots' metadata)."""
    if bases:
        from ansible_collections.hypervisor.kvm.plugins.module_utils._snapshot_facts import (  # pylint: disable=import-outside-toplevel
            rebase_disks,
        )
        definition = rebase_disks(before.xml, bases)
    else:
        definition = before.xml
    mine = [source for source in disk_sources(definition)
            if source['device'] == 'disk' and not source['shareable'] and (source['path'] or source['volume'])]
    kept = plan.extra['kept_storage']
    for source in list(mine):
        reason = domain.keep_storage(source) if domain.keep_storage else None
        if reason:
            mine.remove(source)
            kept.append({'path': storage_path(domain, source), 'reason': reason})
    mine += [{'device': 'disk', 'path': overlay, 'pool': None, 'volume': None, 'shareable': False}
             for overlay in sorted(bases)]
    if not mine:
        return without_kept(mine, kept, plan)
    for source in mine:
        source['resolved'] = storage_path(domain, source)
    elsewhere = set()
    others = [other for other in domain.conn.listAllDomains(0) if other.name() != domain.name]
    for _other, text in each_read(others, lambda other: other.XMLDesc(0), libvirt.VIR_ERR_NO_DOMAIN):
        for source in disk_sources(_xml.parse_xml(text, 'libvirt domain XML')):
            elsewhere.add(storage_path(domain, source))
    for source in mine:
        if source['resolved'] in elsewhere:
            kept.append({'path': source['resolved'], 'reason': 'another domain uses it too'})
    leaving = {source['resolved'] for source in mine} - {entry['path'] for entry in kept}
    users = volumes_backed_by(domain.conn, leaving)
    for path in sorted(leaving):
        # overlays of this very domain (external snapshots) go in the same run
        others = [name for name in users.get(path, []) if volume_path(domain, name) not in leaving]
        if others:
            kept.append({'path': path, 'reason': f"the backing file of {', '.join(others)}"})
    return without_kept(mine, kept, plan)


def without_kept(mine: list, kept: list, plan: Plan) -> list:
    """``mine`` but what is kept, each kept one said in a warning."""
    for entry in kept:
        plan.warnings.append(f"kept {entry['path']}: {entry['reason']}")
    kept_paths = {entry['path'] for entry in kept}
    return [source for source in mine if source['resolved'] not in kept_paths]


def volume_path(domain, name: str) -> str | None:
    """The path of volume ``pool/volume``."""
    pool, _slash, volume = name.partition('/')
    try:
        return domain.conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).path()
    except libvirt.libvirtError:
        return None


def storage_path(domain, source: dict) -> str:
    """One spelling for a disk's storage: the path, also for a pool/volume disk."""
    if source['volume']:
        try:
            return domain.conn.storagePoolLookupByName(source['pool']).storageVolLookupByName(
                source['volume']).path()
        except libvirt.libvirtError:
            return f"{source['pool']}/{source['volume']}"
    return source['path']


def delete_storage(domain, sources: list, plan: Plan) -> list:
    removed = []
    for source in sources:
        if source['volume']:
            pool = domain.conn.storagePoolLookupByName(source['pool'])
            volume = pool.storageVolLookupByName(source['volume'])
            path = volume.path()
            volume.delete(0)
            removed.append(path)
            continue
        volume = lookup(domain.conn.storageVolLookupByPath, source['path'], 'volume')
        if volume is not None:
            volume.delete(0)
            removed.append(source['path'])
        elif is_local_uri(domain.conn.getURI()) and os.path.isfile(source['path']):
            os.remove(source['path'])
            removed.append(source['path'])
        else:
            plan.warnings.append(f"{source['path']} is not a libvirt volume nor a local file: not deleted")
    return removed


# ---- live changes --------------------------------------------------------------------------
def plan_live_changes(domain, before: Observed, plan: Plan) -> set:
    """Apply to the running guest what it can take without a restart (live: true)."""
    merged = plan.merged
    done = set()
    # An interface attached live and defined separately would get two different MACs from
    # libvirt: give it one here, derived from the domain and its place so check mode agrees.
    for index, interface in enumerate(merged.findall('devices/interface')):
        if interface.find('mac') is None:
            seed = f"{domain.name}/{index}/{_xml.to_text(interface, pretty=False)}".encode()
            import hashlib  # pylint: disable=import-outside-toplevel  # live NIC changes only

            digest = hashlib.sha256(seed).hexdigest()
            mac = ET.Element('mac', {'address': f'52:54:00:{digest[0:2]}:{digest[2:4]}:{digest[4:6]}'})
            interface.insert(0, mac)
    live = before.live_xml
    affect = libvirt.VIR_DOMAIN_AFFECT_LIVE
    memory, old_memory = merged.findtext('currentMemory'), before.xml.findtext('currentMemory')
    maximum = live.findtext('memory')
    if memory and memory != old_memory and int(memory) <= int(maximum or 0):
        plan.add('set-memory', f'setting the memory of running {domain.label()} to {memory} KiB',
                 lambda: plan.handle().setMemoryFlags(int(memory), affect))
        done.add('memory')
    vcpu, live_vcpu = merged.find('vcpu'), live.find('vcpu')
    if vcpu is not None and live_vcpu is not None:
        wanted_count = int(vcpu.get('current') or vcpu.text)
        have_count = int(live_vcpu.get('current') or live_vcpu.text)
        if wanted_count != have_count and wanted_count <= int(live_vcpu.text):
            plan.add('set-vcpus', f'setting the vcpus of running {domain.label()} to {wanted_count}',
                     lambda: plan.handle().setVcpusFlags(wanted_count, affect))
            done.add('vcpu')
    for tag in ('interface', 'disk'):
        want = [(project_device(e), e) for e in merged.findall(f'devices/{tag}')]
        have = [(project_device(e), e) for e in live.findall(f'devices/{tag}')]
        want_keys = [pair[0] for pair in want]
        have_keys = [pair[0] for pair in have]
        to_detach = [element for key, element in have if key not in want_keys]
        to_attach = [element for key, element in want if key not in have_keys]
        if not to_detach and not to_attach:
            continue
        for element in to_detach:
            text = _xml.to_text(element, pretty=False)
            plan.add(f'detach-{tag}', f'detaching a {tag} from running {domain.label()}',
                     lambda text=text: plan.handle().detachDeviceFlags(text, affect))
        for element in to_attach:
            text = _xml.to_text(_xml.remove_paths(copy.deepcopy(element), ('address', 'alias', 'target')
                                                  if tag == 'interface' else ('address', 'alias')), pretty=False)
            plan.add(f'attach-{tag}', f'attaching a {tag} to running {domain.label()}',
                     lambda text=text: plan.handle().attachDeviceFlags(text, affect))
        done.add(tag)
    return done


def project_device(element) -> str:
    """What identifies a disk or interface for live attach/detach (runtime details left out)."""
    source = element.find('source')
    if element.tag == 'interface':
        mac = element.find('mac')
        kind = element.get('type') or ''
        # a running network interface also names its bridge: only the network identifies it
        key = {'network': 'network', 'bridge': 'bridge', 'direct': 'dev'}.get(kind, 'network')
        return '|'.join([kind, mac.get('address') if mac is not None else '',
                         source.get(key) or '' if source is not None else ''])
    target = element.find('target')
    keys = [element.get('device') or 'disk']
    keys += [source.get(key) or '' for key in ('file', 'dev', 'pool', 'volume')] if source is not None else []
    keys.append(target.get('dev') if target is not None else '')
    return '|'.join(keys)


# ---- power ----------------------------------------------------------------------------------
# ---- power ------------------------------------------------------------------------------------
def shutdown(domain, handle, plan: Plan) -> None:
    """ACPI shutdown, returning only when the guest is off (or forcing it off when asked)."""
    if power_state(handle.state()[0]) == 'paused':
        handle.resume()
    handle.shutdown()
    timeout = domain.params.get('shutdown_timeout')
    timeout = 120 if timeout is None else timeout
    deadline = time.monotonic() + timeout
    off = wait_until(domain.conn, deadline, lambda: domain.conn.lookupByName(domain.name).isActive() == 0 or None,
                     interval=0.25)
    handle = plan.context['handle'] = domain.conn.lookupByName(domain.name)  # afresh: libvirtd may have restarted
    if off or not handle.isActive():
        return
    if domain.params.get('force_off_after_timeout'):
        handle.destroy()
        plan.warnings.append(f'{domain.label()} did not shut down within {timeout} s and was forced off')
        plan.extra['forced_off'] = True
        return
    raise KvmError(f'{domain.label()} did not shut down within {timeout} s (ACPI shutdown sent). Set '
                   'force_off_after_timeout: true to force it off, a longer shutdown_timeout, or '
                   'state: destroyed for a hard power off.')


def restart_domain(domain, handle, plan: Plan, paused: bool) -> None:
    shutdown(domain, handle, plan)
    handle = plan.handle()  # the shutdown wait looked it up again
    handle.create()
    if paused:
        handle.suspend()


def undefine(handle) -> None:
    """Undefine with everything that would block it: managed save, snapshot metadata, NVRAM."""
    try:
        handle.undefineFlags(flags(*UNDEFINE_FLAGS))
    except libvirt.libvirtError as err:
        if not is_error(err, libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        handle.undefine()


def current_interfaces(conn, name: str) -> list:
    """The guest's interfaces with the addresses libvirt knows now (looked up afresh)."""
    handle = conn.lookupByName(name)
    live = _xml.parse_xml(handle.XMLDesc(0), 'libvirt domain XML')
    return domain_interfaces(live, interface_addresses(handle, live))


def wait_for_addresses(conn, name: str, timeout: int) -> list:
    """Wait until the guest has an address on one of its interfaces; return its interfaces. A
    libvirtd restart meanwhile reconnects and carries on (_libvirt.wait_until)."""
    deadline = time.monotonic() + timeout
    found = wait_until(conn, deadline, lambda: addressed(current_interfaces(conn, name)))
    if found is None:
        raise KvmError(f"domain '{name}' got no IP address within {timeout} s (checked the DHCP "
                       "leases and the guest agent); is its network serving DHCP, and does the guest ask?",
                       interfaces=current_interfaces(conn, name))
    return found


def addressed(interfaces: list) -> list | None:
    """The interfaces when one has an address, else None (still waiting)."""
    return interfaces if any(interface['addresses'] for interface in interfaces) else None


def set_live_metadata(handle, calls: list) -> None:
    """Tell the running guest its new title, description or collection metadata (see
    ``_domain_metadata.live_metadata_calls``); its definition is written by define."""
    kinds = {'title': libvirt.VIR_DOMAIN_METADATA_TITLE, 'description': libvirt.VIR_DOMAIN_METADATA_DESCRIPTION,
             'meta': libvirt.VIR_DOMAIN_METADATA_ELEMENT}
    for kind, value in calls:
        if kind == 'meta':
            handle.setMetadata(kinds[kind], value, META_PREFIX, META_NS, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        else:
            handle.setMetadata(kinds[kind], value or None, None, None, libvirt.VIR_DOMAIN_AFFECT_LIVE)
