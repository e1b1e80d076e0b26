# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domains (guests) on the engine's skeleton: power states with waiting, live changes, restarts
the user opted into, removal with NVRAM and storage."""

from __future__ import annotations

import copy
import os
import time
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import (
    definition_facts,
    disk_sources,
    domain_info,
    domain_interfaces,
    interface_addresses,
    mask_secrets,
    power_state,
    resolve_machine,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import (
    each_read,
    flags,
    is_error,
    is_local_uri,
    libvirt,
    lookup,
    wait_until,
    xml_desc,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Observed, Plan, Resource
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import bytes_to_kib, unit_factor
from ansible_collections.hypervisor.kvm.plugins.module_utils._volume_facts import volumes_backed_by

UNDEFINE_FLAGS = ('VIR_DOMAIN_UNDEFINE_MANAGED_SAVE', 'VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA',
                  'VIR_DOMAIN_UNDEFINE_NVRAM', 'VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA')


# ---- what decides a restart -----------------------------------------------------------------
# The parts of a definition that a running guest only picks up when it starts again. Live XML
# is full of runtime details (aliases, tap names, ports), so both sides are projected on these.
# currentMemory is left out: in live XML it is what the balloon reached, which a guest without
# a balloon driver never changes.
RESTART_RELEVANT = (
    ('memory', (), True), ('vcpu', ('current',), True),
    ('os', ('firmware',), False), ('os/type', ('arch', 'machine'), True), ('os/kernel', (), True),
    ('os/initrd', (), True), ('os/cmdline', (), True), ('os/boot', ('dev',), False),
    ('cpu', ('mode',), False), ('cpu/model', (), True), ('cpu/topology', ('sockets', 'cores', 'threads'), False),
    ('devices', (), False), ('devices/disk', ('type', 'device'), False),
    ('devices/disk/driver', ('type', 'cache'), False),
    ('devices/disk/source', ('file', 'dev', 'pool', 'volume'), False),
    ('devices/disk/target', ('dev', 'bus'), False), ('devices/disk/readonly', (), False),
    ('devices/interface', ('type',), False), ('devices/interface/mac', ('address',), False),
    ('devices/interface/source', ('network', 'bridge', 'dev', 'mode'), False),
    ('devices/interface/model', ('type',), False),
    ('devices/graphics', ('type',), False), ('devices/tpm', ('model',), False), ('devices/rng', ('model',), False),
)


def project(definition) -> ET.Element:
    """The restart-relevant parts of a domain definition (see RESTART_RELEVANT)."""
    result = ET.Element('domain')
    mapping = {id(definition): result}
    for path, attributes, with_text in RESTART_RELEVANT:
        parent_path, tag = path.rpartition('/')[::2]
        parents = [definition] if not parent_path else definition.findall(parent_path)
        for parent in parents:
            target_parent = mapping.get(id(parent))
            if target_parent is None:
                continue
            for element in parent.findall(tag):
                kept = {a: element.get(a) for a in attributes if element.get(a) is not None}
                copied = ET.SubElement(target_parent, tag, kept)
                if with_text and (element.text or '').strip():
                    copied.text = element.text.strip()
                mapping[id(element)] = copied
    return result


def disk_key(disk) -> str:
    """Disks pair by their target (libvirt groups them by bus, whatever order they came in)."""
    target = disk.find('target')
    return target.get('dev', '') if target is not None else ''


def external_overlays(before: Observed) -> dict:
    """The overlay files of the domain's external snapshots -> the disks they were taken over
    (``_snapshot_facts.overlay_bases``); a cheap count first, so a domain without external
    snapshots costs one call and no code."""
    if not before.exists:
        return {}
    try:
        if not before.handle.snapshotNum(libvirt.VIR_DOMAIN_SNAPSHOT_LIST_EXTERNAL):
            return {}
    except libvirt.libvirtError as err:
        if is_error(err, libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
            return {}
        raise
    from ansible_collections.hypervisor.kvm.plugins.module_utils._snapshot_facts import (  # pylint: disable=import-outside-toplevel
        overlay_bases,
    )
    return overlay_bases(before.handle)


def strip_runtime(definition) -> None:
    """Remove what only a running domain's XML has (``virsh dumpxml`` of a running guest given
    back as xml): ids, aliases, tap names, pty paths, ports picked by autoport, dynamic labels."""
    definition.attrib.pop('id', None)
    for parent in definition.iter():
        for child in list(parent):
            if child.tag == 'alias' or child.tag == 'seclabel' and child.get('type') == 'dynamic':
                parent.remove(child)
    for interface in definition.findall('devices/interface'):
        for target in interface.findall('target'):
            interface.remove(target)
        source = interface.find('source')
        if source is not None and interface.get('type') == 'network':
            source.attrib.pop('portid', None)
            source.attrib.pop('bridge', None)
    for tag in ('serial', 'console', 'channel'):
        for device in definition.findall(f'devices/{tag}'):
            device.attrib.pop('tty', None)
            source = device.find('source')
            if source is not None and device.get('type') == 'pty':
                device.remove(source)
    for graphics in definition.findall('devices/graphics'):
        if graphics.get('autoport') == 'yes':
            for key in ('port', 'tlsPort', 'websocket'):
                graphics.attrib.pop(key, None)


# ---- the resource -------------------------------------------------------------------------------


STARTING_UP_WAIT = 60  # seconds a domain libvirt is still starting may take to run


def settled_state(handle) -> tuple:
    """``handle.state()``, once a start under way has ended: a domain paused with the reason
    "starting up" is one libvirt is still starting (a run killed during its start leaves that to
    libvirtd), and planning on it would resume a guest that is about to run by itself."""
    import time  # pylint: disable=import-outside-toplevel  # only a start under way needs it

    deadline = time.monotonic() + STARTING_UP_WAIT
    state = handle.state()
    while state[0] == libvirt.VIR_DOMAIN_PAUSED and state[1] == libvirt.VIR_DOMAIN_PAUSED_STARTING_UP \
            and time.monotonic() < deadline:
        time.sleep(0.2)
        state = handle.state()
    return state


class Domain(Resource):
    kind = 'domain'
    result_key = 'domain'
    root_tag = 'domain'
    lookup_call = 'lookupByName'
    missing = 'domain'
    volatile = ('id',)

    def __init__(self, conn, params: dict, check_mode: bool = False, shared: dict | None = None):
        super().__init__(conn, params, check_mode, shared)
        owned = {'devices/disk', 'devices/interface'}
        boot = params.get('boot') or {}
        if boot.get('devices') is not None:
            owned.add('os/boot')
        if any(boot.get(key) for key in ('kernel', 'initrd', 'cmdline')):
            owned.update(('os/kernel', 'os/initrd', 'os/cmdline'))
        for option, paths in (('console', ('devices/serial', 'devices/console')),
                              ('guest_agent', ('devices/channel',)), ('graphics', ('devices/graphics',)),
                              ('rng', ('devices/rng',)), ('tpm', ('devices/tpm',))):
            if params.get(option) is not None or params.get('xml'):
                owned.update(paths)
        if params.get('xml'):
            owned -= {'devices/channel', 'devices/console', 'devices/serial', 'os/boot'}
        if params.get('disks') is None and not params.get('xml'):
            owned.discard('devices/disk')
        if params.get('interfaces') is None and not params.get('xml'):
            owned.discard('devices/interface')
        self.authoritative = {path: disk_key if path == 'devices/disk' else None for path in sorted(owned)}

    # ---- reading ------------------------------------------------------------------------------
    def read(self, handle) -> Observed:
        code, _reason = settled_state(handle)
        active = bool(handle.isActive())
        persistent = bool(handle.isPersistent())
        secure = libvirt.VIR_DOMAIN_XML_SECURE
        if persistent:
            inactive = xml_desc(handle, libvirt.VIR_DOMAIN_XML_INACTIVE | secure, 'libvirt domain XML')
        else:
            inactive = xml_desc(handle, secure, 'libvirt domain XML')
        live = xml_desc(handle, secure, 'libvirt domain XML') if active else None
        observed = Observed(exists=True, handle=handle, active=active, persistent=persistent,
                            autostart=bool(handle.autostart()) if persistent else False,
                            xml=self.clean(inactive), live_xml=self.clean(live) if live is not None else None)
        observed.facts = {'state': power_state(code), 'autostart': observed.autostart, 'persistent': persistent}
        return observed

    def display(self, element):
        return mask_secrets(element)

    def clean(self, element):
        """Normalised, with memory sizes in KiB as libvirt writes them (``<memory unit='MiB'>64``)."""
        element = super().clean(element)
        vcpu = element.find('vcpu') if element is not None else None
        if vcpu is not None and vcpu.get('current') is None and (vcpu.text or '').strip():
            vcpu.set('current', vcpu.text.strip())  # libvirt leaves it out when all vcpus are on
        for tag in ('memory', 'currentMemory', 'maxMemory'):
            size = element.find(tag) if element is not None else None
            if size is not None and size.text and size.get('unit', 'KiB') != 'KiB':
                factor = unit_factor(size.get('unit'))
                if factor:
                    size.text = str(bytes_to_kib(int(size.text) * factor))
                    size.set('unit', 'KiB')
        return element

    def info(self, observed: Observed, plan: Plan | None = None) -> dict:
        facts = domain_info(self.conn, observed.handle)
        if plan is not None and 'interfaces' in plan.context:
            facts['interfaces'] = plan.context['interfaces']  # the addresses waited for
        return facts

    def brief_info(self, observed: Observed, plan: Plan) -> dict:
        """The power state and the interfaces (with addresses when running), from what was read."""
        if 'interfaces' in plan.context:
            interfaces = plan.context['interfaces']
        elif observed.active:
            interfaces = domain_interfaces(observed.live_xml, interface_addresses(observed.handle, observed.live_xml))
        else:
            interfaces = domain_interfaces(observed.xml)
        return {'name': self.name, 'state': observed.facts['state'], 'interfaces': interfaces}

    def definition_facts(self, definition) -> dict:
        return definition_facts(definition)

    # ---- desired ------------------------------------------------------------------------------
    def desired_xml(self, before: Observed, plan: Plan):
        if self.params.get('xml'):
            desired = self.xml_document()
            if not desired.get('type'):
                raise KvmError("xml: the <domain> element needs a type ('kvm' or 'qemu')")
            plan.extra['virt_type_reason'] = 'from xml'
            # `virsh dumpxml` of a running guest: compared with the running definition too
            plan.context['runtime_xml'] = desired.get('id') is not None or desired.find('.//alias') is not None
            strip_runtime(desired)
            machine = desired.find('os/type')
            if before.exists and machine is not None and machine.get('machine'):
                machine.set('machine', resolve_machine(machine.get('machine'), before.xml.find('os/type')))
        else:
            from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_builder import (  # pylint: disable=import-outside-toplevel
                DomainBuilder,  # structured options only: an xml run never compiles it
            )
            desired = DomainBuilder(self.conn, self.params, self.name, plan, self.shared).build(before)
        bases = external_overlays(before)
        if bases:
            from ansible_collections.hypervisor.kvm.plugins.module_utils._snapshot_facts import (  # pylint: disable=import-outside-toplevel
                follow_overlays,
            )
            # an external snapshot moved a disk onto an overlay: naming the base is not drift
            follow_overlays(desired, before.xml, bases)
        return desired

    # ---- planning -----------------------------------------------------------------------------
    def check_options(self, plan: Plan) -> None:
        params = self.params
        if params.get('wait_for_ip') and params['state'] != 'running':
            raise KvmError('wait_for_ip: only with state: running')
        if params.get('remove_storage') and params['state'] != 'absent':
            raise KvmError('remove_storage: only with state: absent')
        if params.get('shutdown_timeout') is not None and params['shutdown_timeout'] < 0:
            raise KvmError('shutdown_timeout: must be 0 or more seconds')

    def plan_absent(self, before: Observed, plan: Plan) -> None:
        plan.after.facts = {}
        if not before.exists:
            return
        handle = before.handle
        if before.active:
            plan.add('destroy', f'stopping {self.label()} (hard power off)', handle.destroy)
        if self.params.get('remove_storage'):
            plan.extra['kept_storage'] = []
            removable = self.removable_storage(before, plan)
        else:
            removable = []
        if before.persistent:
            plan.add('undefine', f'undefining {self.label()} with its managed save, snapshot metadata and NVRAM',
                     lambda: undefine(handle))
        if removable:
            removed = plan.extra['removed_storage'] = []
            plan.add('remove-storage', f"deleting the storage of {self.label()}",
                     lambda: removed.extend(self.delete_storage(removable, plan)))
            if self.check_mode:
                removed.extend(source['resolved'] for source in removable)
                # what later steps of the same run must see as gone (kvm_guests)
                self.shared.setdefault('removed_paths', set()).update(removed)

    def removable_storage(self, before: Observed, plan: Plan) -> list:
        """The domain's own disks (not cdroms, not shared, not used by another domain): the base
        files it was defined with, and the overlays of its external snapshots (read now: the
        undefine drops the snapshots' metadata)."""
        bases = external_overlays(before)
        if bases:
            from ansible_collections.hypervisor.kvm.plugins.module_utils._snapshot_facts import (  # pylint: disable=import-outside-toplevel
                rebase_disks,
            )
            definition = rebase_disks(before.xml, bases)
        else:
            definition = before.xml
        mine = [source for source in disk_sources(definition)
                if source['device'] == 'disk' and not source['shareable'] and (source['path'] or source['volume'])]
        mine += [{'device': 'disk', 'path': overlay, 'pool': None, 'volume': None, 'shareable': False}
                 for overlay in sorted(bases)]
        if not mine:
            return []
        for source in mine:
            source['resolved'] = self.storage_path(source)
        elsewhere = set()
        others = [other for other in self.conn.listAllDomains(0) if other.name() != self.name]
        for _other, text in each_read(others, lambda other: other.XMLDesc(0), libvirt.VIR_ERR_NO_DOMAIN):
            for source in disk_sources(_xml.parse_xml(text, 'libvirt domain XML')):
                elsewhere.add(self.storage_path(source))
        kept = plan.extra['kept_storage']
        for source in mine:
            if source['resolved'] in elsewhere:
                kept.append({'path': source['resolved'], 'reason': 'another domain uses it too'})
        leaving = {source['resolved'] for source in mine} - {entry['path'] for entry in kept}
        users = volumes_backed_by(self.conn, leaving)
        for path in sorted(leaving):
            # overlays of this very domain (external snapshots) go in the same run
            others = [name for name in users.get(path, []) if self.volume_path(name) not in leaving]
            if others:
                kept.append({'path': path, 'reason': f"the backing file of {', '.join(others)}"})
        for entry in kept:
            plan.warnings.append(f"kept {entry['path']}: {entry['reason']}")
        kept_paths = {entry['path'] for entry in kept}
        return [source for source in mine if source['resolved'] not in kept_paths]

    def volume_path(self, name: str) -> str | None:
        """The path of volume ``pool/volume``."""
        pool, _slash, volume = name.partition('/')
        try:
            return self.conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).path()
        except libvirt.libvirtError:
            return None

    def storage_path(self, source: dict) -> str:
        """One spelling for a disk's storage: the path, also for a pool/volume disk."""
        if source['volume']:
            try:
                return self.conn.storagePoolLookupByName(source['pool']).storageVolLookupByName(
                    source['volume']).path()
            except libvirt.libvirtError:
                return f"{source['pool']}/{source['volume']}"
        return source['path']

    def delete_storage(self, sources: list, plan: Plan) -> list:
        removed = []
        for source in sources:
            if source['volume']:
                pool = self.conn.storagePoolLookupByName(source['pool'])
                volume = pool.storageVolLookupByName(source['volume'])
                path = volume.path()
                volume.delete(0)
                removed.append(path)
                continue
            volume = lookup(self.conn.storageVolLookupByPath, source['path'], 'volume')
            if volume is not None:
                volume.delete(0)
                removed.append(source['path'])
            elif is_local_uri(self.conn.getURI()) and os.path.isfile(source['path']):
                os.remove(source['path'])
                removed.append(source['path'])
            else:
                plan.warnings.append(f"{source['path']} is not a libvirt volume nor a local file: not deleted")
        return removed

    def drifted(self, before: Observed, differences: list, plan: Plan) -> bool:
        if differences and plan.context.get('runtime_xml') and before.live_xml is not None:
            # the running guest's own XML given back (with the CPU model, listen addresses and
            # resource partition libvirt filled in at start): no drift if it still runs as that
            running = copy.deepcopy(before.live_xml)
            strip_runtime(running)
            return bool(_xml.differences(plan.desired, self.clean(running), self.authoritative))
        return bool(differences)

    define_after_live = True

    def plan_live_updates(self, before: Observed, plan: Plan) -> bool:
        """With ``live: true``, apply to the running guest what it can take without a restart.
        The definition is written by define all the same (live changes touch the running guest
        only), so this never covers the whole difference."""
        running = power_state(before.handle.state()[0]) in ('running', 'paused')
        if running and self.params.get('live') and self.params['state'] not in ('shutdown', 'destroyed'):
            plan.context['live_done'] = self.plan_live_changes(before, plan)
        return False

    def plan_state(self, before: Observed, plan: Plan) -> None:
        """Power states (running, paused, shutdown with its wait, destroyed), a restart the user
        opted into, and the wait for an address."""
        params, state = self.params, self.params['state']
        power = power_state(before.handle.state()[0]) if before.exists else 'shutoff'
        running = power in ('running', 'paused')
        restart = running and before.live_xml is not None and self.needs_restart(before, plan)
        wanted = {'running': 'running', 'paused': 'paused', 'shutdown': 'shutoff', 'destroyed': 'shutoff'}.get(state)
        final = wanted or power
        if wanted == 'running':
            if power in ('shutoff', 'crashed'):
                plan.add('start', f'starting {self.label()}', lambda: plan.handle().create())
            elif power == 'paused':
                plan.add('resume', f'resuming {self.label()}', lambda: plan.handle().resume())
            elif power == 'pmsuspended':
                plan.add('wake', f'waking {self.label()}', lambda: plan.handle().pMWakeup(0))
        elif wanted == 'paused':
            if power in ('shutoff', 'crashed'):
                plan.add('start', f'starting {self.label()}', lambda: plan.handle().create())
            if power != 'paused':
                plan.add('pause', f'pausing {self.label()}', lambda: plan.handle().suspend())
        elif state == 'shutdown' and running:
            plan.add('shutdown', f'shutting down {self.label()} (ACPI)', lambda: self.shutdown(plan.handle(), plan))
        elif state == 'destroyed' and running:
            plan.add('destroy', f'stopping {self.label()} (hard power off)', lambda: plan.handle().destroy())
        if restart and final in ('running', 'paused'):
            if params.get('restart'):
                plan.add('restart', f'restarting {self.label()} to apply its new definition',
                         lambda: self.restart_domain(plan.handle(), plan, paused=final == 'paused'))
            else:
                plan.restart_required = True
        plan.after.facts = {'state': final, 'autostart': plan.after.autostart, 'persistent': True}
        if params.get('wait_for_ip') and state == 'running':
            plan.add('wait-for-ip', f'waiting up to {params["wait_for_ip"]} s for an address of {self.label()}',
                     lambda: plan.context.update(
                         interfaces=wait_for_addresses(self.conn, self.name, params['wait_for_ip'])),
                     change=False)

    def plan_autostart(self, before: Observed, plan: Plan) -> None:
        super().plan_autostart(before, plan)
        plan.after.facts['autostart'] = plan.after.autostart

    def needs_restart(self, before: Observed, plan: Plan) -> bool:
        """Whether the running guest differs from its new definition in what only a restart
        applies, after the live changes the plan makes."""
        merged, live_done = plan.merged, plan.context.get('live_done', set())
        if merged.findtext('currentMemory') != before.xml.findtext('currentMemory') and 'memory' not in live_done:
            return True  # changed now; the running guest's balloon says nothing reliable about it
        wanted, running = project(merged), project(before.live_xml)
        for tag in live_done & {'disk', 'interface'}:  # the device lists were made equal live
            for side in (wanted, running):
                devices = side.find('devices')
                for element in devices.findall(tag) if devices is not None else []:
                    devices.remove(element)
        if 'vcpu' in live_done:
            for side in (wanted, running):
                if side.find('vcpu') is not None:
                    side.find('vcpu').attrib.pop('current', None)
        return bool(_xml.differences(wanted, running, frozenset({'devices/disk', 'devices/interface'})))

    def plan_live_changes(self, before: Observed, plan: Plan) -> set:
        """Apply to the running guest what it can take without a restart (live: true)."""
        merged = plan.merged
        done = set()
        # An interface attached live and defined separately would get two different MACs from
        # libvirt: give it one here, derived from the domain and its place so check mode agrees.
        for index, interface in enumerate(merged.findall('devices/interface')):
            if interface.find('mac') is None:
                seed = f"{self.name}/{index}/{_xml.to_text(interface, pretty=False)}".encode()
                import hashlib  # pylint: disable=import-outside-toplevel  # live NIC changes only

                digest = hashlib.sha256(seed).hexdigest()
                mac = ET.Element('mac', {'address': f'52:54:00:{digest[0:2]}:{digest[2:4]}:{digest[4:6]}'})
                interface.insert(0, mac)
        live = before.live_xml
        affect = libvirt.VIR_DOMAIN_AFFECT_LIVE
        memory, old_memory = merged.findtext('currentMemory'), before.xml.findtext('currentMemory')
        maximum = live.findtext('memory')
        if memory and memory != old_memory and int(memory) <= int(maximum or 0):
            plan.add('set-memory', f'setting the memory of running {self.label()} to {memory} KiB',
                     lambda: plan.handle().setMemoryFlags(int(memory), affect))
            done.add('memory')
        vcpu, live_vcpu = merged.find('vcpu'), live.find('vcpu')
        if vcpu is not None and live_vcpu is not None:
            wanted_count = int(vcpu.get('current') or vcpu.text)
            have_count = int(live_vcpu.get('current') or live_vcpu.text)
            if wanted_count != have_count and wanted_count <= int(live_vcpu.text):
                plan.add('set-vcpus', f'setting the vcpus of running {self.label()} to {wanted_count}',
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
                plan.add(f'detach-{tag}', f'detaching a {tag} from running {self.label()}',
                         lambda text=text: plan.handle().detachDeviceFlags(text, affect))
            for element in to_attach:
                text = _xml.to_text(_xml.remove_paths(copy.deepcopy(element), ('address', 'alias', 'target')
                                                      if tag == 'interface' else ('address', 'alias')), pretty=False)
                plan.add(f'attach-{tag}', f'attaching a {tag} to running {self.label()}',
                         lambda text=text: plan.handle().attachDeviceFlags(text, affect))
            done.add(tag)
        return done

    # ---- power ------------------------------------------------------------------------------------
    def shutdown(self, handle, plan: Plan) -> None:
        """ACPI shutdown, returning only when the guest is off (or forcing it off when asked)."""
        if power_state(handle.state()[0]) == 'paused':
            handle.resume()
        handle.shutdown()
        timeout = self.params.get('shutdown_timeout')
        timeout = 120 if timeout is None else timeout
        deadline = time.monotonic() + timeout
        off = wait_until(self.conn, deadline, lambda: self.conn.lookupByName(self.name).isActive() == 0 or None,
                         interval=0.25)
        handle = plan.context['handle'] = self.conn.lookupByName(self.name)  # afresh: libvirtd may have restarted
        if off or not handle.isActive():
            return
        if self.params.get('force_off_after_timeout'):
            handle.destroy()
            plan.warnings.append(f'{self.label()} did not shut down within {timeout} s and was forced off')
            plan.extra['forced_off'] = True
            return
        raise KvmError(f'{self.label()} did not shut down within {timeout} s (ACPI shutdown sent). Set '
                       'force_off_after_timeout: true to force it off, a longer shutdown_timeout, or '
                       'state: destroyed for a hard power off.')

    def restart_domain(self, handle, plan: Plan, paused: bool) -> None:
        self.shutdown(handle, plan)
        handle = plan.handle()  # the shutdown wait looked it up again
        handle.create()
        if paused:
            handle.suspend()

    def define(self, xml_text: str):
        """Define with libvirt's schema validation where the driver has it."""
        validate = getattr(libvirt, 'VIR_DOMAIN_DEFINE_VALIDATE', 0)
        try:
            return self.conn.defineXMLFlags(xml_text, validate)
        except libvirt.libvirtError as err:
            if not is_error(err, libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                raise
            return self.conn.defineXML(xml_text)


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
