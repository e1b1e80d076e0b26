# Copyright: hypervisor.kvm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domains (guests) on the engine's skeleton: reading, the desired definition, and the plan of
power states with waiting, live changes, restarts the user opted into, and removal with NVRAM and
storage. The steps that only a change takes are in ``_domain_changes``, which a run with nothing
to do never imports (docs/architecture.md, "Speed")."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

from ansible_collections.hypervisor.kvm.plugins.module_utils import _xml
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_facts import (
    definition_facts,
    domain_info,
    domain_interfaces,
    interface_addresses,
    mask_secrets,
    power_state,
    resolve_machine,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_metadata import (
    authoritative_paths,
    live_metadata_calls,
)
from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_options import TUNING
from ansible_collections.hypervisor.kvm.plugins.module_utils._errors import KvmError
from ansible_collections.hypervisor.kvm.plugins.module_utils._libvirt import is_error, libvirt, xml_desc
from ansible_collections.hypervisor.kvm.plugins.module_utils._resource import Observed, Plan, Resource
from ansible_collections.hypervisor.kvm.plugins.module_utils._units import bytes_to_kib, unit_factor

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
    ('memoryBacking', (), False), ('memoryBacking/hugepages', (), False),
    ('memoryBacking/hugepages/page', ('size',), False),
    ('memoryBacking/source', ('type',), False), ('memoryBacking/access', ('mode',), False),
    ('memoryBacking/locked', (), False), ('cpu/numa', (), False), ('cpu/numa/cell', ('cpus', 'memory'), False),
    ('cputune', (), False), ('cputune/vcpupin', ('vcpu', 'cpuset'), False), ('cputune/emulatorpin', ('cpuset',), False),
    ('devices/filesystem', (), False), ('devices/filesystem/source', ('dir',), False),
    ('devices/filesystem/target', ('dir',), False), ('devices/filesystem/readonly', (), False),
    ('devices/watchdog', ('model', 'action'), False), ('devices/video', (), False),
    ('devices/video/model', ('type', 'heads', 'vram'), False), ('devices/hostdev', ('type',), False),
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

    def __init__(self, conn, params: dict, check_mode: bool = False, shared: dict | None = None, diff: bool = False):
        super().__init__(conn, params, check_mode, shared, diff)
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
        self.authoritative.update(authoritative_paths(params))
        if any(params.get(option) is not None for option in TUNING):
            from ansible_collections.hypervisor.kvm.plugins.module_utils._domain_tuning import (  # pylint: disable=import-outside-toplevel
                owned_paths,
            )
            self.authoritative.update(owned_paths(params))

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
            removable = changes().removable_storage(self, before, plan, external_overlays(before))
        else:
            removable = []
        if before.persistent:
            plan.add('undefine', f'undefining {self.label()} with its managed save, snapshot metadata and NVRAM',
                     lambda: changes().undefine(handle))
        if removable:
            removed = plan.extra['removed_storage'] = []
            plan.add('remove-storage', f"deleting the storage of {self.label()}",
                     lambda: removed.extend(changes().delete_storage(self, removable, plan)))
            if self.check_mode:
                removed.extend(source['resolved'] for source in removable)
                # what later steps of the same run must see as gone (kvm_guests)
                self.shared.setdefault('removed_paths', set()).update(removed)

    def drifted(self, before: Observed, differences: list, plan: Plan) -> bool:
        if differences and plan.context.get('runtime_xml') and before.live_xml is not None:
            # the running guest's own XML given back (with the CPU model, listen addresses and
            # resource partition libvirt filled in at start): no drift if it still runs as that
            running = copy.deepcopy(before.live_xml)
            strip_runtime(running)
            return bool(_xml.differences(plan.desired, self.clean(running), self.authoritative))
        return bool(differences)

    define_after_live = True
    # with remove_storage: a caller's rule, source -> the reason to keep that disk, or None
    # (kvm_guests keeps what it did not make)
    keep_storage = None

    def plan_live_updates(self, before: Observed, plan: Plan) -> bool:
        """With ``live: true``, apply to the running guest what it can take without a restart.
        The definition is written by define all the same (live changes touch the running guest
        only), so this never covers the whole difference."""
        running = power_state(before.handle.state()[0]) in ('running', 'paused')
        if running and self.params.get('live') and self.params['state'] not in ('shutdown', 'destroyed'):
            plan.context['live_done'] = changes().plan_live_changes(self, before, plan)
        calls = live_metadata_calls(self.params, plan.merged, before.live_xml) if before.live_xml is not None else []
        if calls and running:
            # a title, description or the collection's metadata: told to the running guest as
            # well, always (it changes nothing the guest sees)
            plan.add('set-metadata', f"setting {', '.join(kind for kind, _value in calls)} of running {self.label()}",
                     lambda: changes().set_live_metadata(plan.handle(), calls))
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
            plan.add('shutdown', f'shutting down {self.label()} (ACPI)',
                     lambda: changes().shutdown(self, plan.handle(), plan))
        elif state == 'destroyed' and running:
            plan.add('destroy', f'stopping {self.label()} (hard power off)', lambda: plan.handle().destroy())
        if restart and final in ('running', 'paused'):
            if params.get('restart'):
                plan.add('restart', f'restarting {self.label()} to apply its new definition',
                         lambda: changes().restart_domain(self, plan.handle(), plan, paused=final == 'paused'))
            else:
                plan.restart_required = True
        plan.after.facts = {'state': final, 'autostart': plan.after.autostart, 'persistent': True}
        if params.get('wait_for_ip') and state == 'running':
            plan.add('wait-for-ip', f'waiting up to {params["wait_for_ip"]} s for an address of {self.label()}',
                     lambda: plan.context.update(
                         interfaces=changes().wait_for_addresses(self.conn, self.name, params['wait_for_ip'])),
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
        if self.params.get('xml_patches') and self.patched_live_differs(before.live_xml):
            return True
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

    def patched_live_differs(self, live) -> bool:
        """Whether an ``xml_patches`` item would still change the running guest's definition:
        what a patch reaches can be anything, so a patch the running guest does not have yet
        asks for a restart."""
        for patch in self.patches('domain'):
            try:
                if patch.apply(copy.deepcopy(live), create=True) is not None:
                    return True
            except KvmError:
                return True
        return False

    def define(self, xml_text: str):
        """Define with libvirt's schema validation where the driver has it."""
        validate = getattr(libvirt, 'VIR_DOMAIN_DEFINE_VALIDATE', 0)
        try:
            return self.conn.defineXMLFlags(xml_text, validate)
        except libvirt.libvirtError as err:
            if not is_error(err, libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                raise
            return self.conn.defineXML(xml_text)


def changes():
    """``_domain_changes``, imported when a step that changes something runs."""
    from ansible_collections.hypervisor.kvm.plugins.module_utils import (  # pylint: disable=import-outside-toplevel
        _domain_changes,
    )
    return _domain_changes
